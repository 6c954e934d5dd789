package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// Observer receives measurements of the engine's work, for metrics. Its
// methods are called concurrently and on the path of requests: they must
// return at once.
type Observer interface {
	// Operation reports one call of a store method that took took: op is
	// read, vread, history, search, find, put or transact.
	Operation(op string, took time.Duration)
	// Commit reports a group commit of writes Puts in one transaction.
	Commit(writes int)
}

type nopObserver struct{}

func (nopObserver) Operation(string, time.Duration) {}
func (nopObserver) Commit(int)                      {}

func (s *Store) observe(op string, start time.Time) {
	s.obs.Operation(op, time.Since(start))
}

// Stats is a snapshot of the engine's state.
type Stats struct {
	// QueueDepth is the number of Puts waiting for the writer.
	QueueDepth int
	// DatabaseBytes and WALBytes are the sizes of the database file and of
	// its write-ahead log (0 when absent).
	DatabaseBytes, WALBytes int64
}

// Stats returns the engine's state now.
func (s *Store) Stats() Stats {
	s.qmu.Lock()
	st := Stats{QueueDepth: len(s.queue)}
	s.qmu.Unlock()
	st.DatabaseBytes = fileSize(s.path)
	st.WALBytes = fileSize(s.path + "-wal")
	return st
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Probe checks that the store answers: a read on the reader pool, which
// also checks that the schema is still the one this program knows (a newer
// carefhir may have migrated it since Open), and a write through the writer
// connection, which waits its turn behind the batch being committed. It is
// cheap enough to run every second.
func (s *Store) Probe(ctx context.Context) error {
	var version int
	if err := s.rdb.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&version); err != nil {
		return fmt.Errorf("read probe: %w", err)
	}
	if version != len(migrations) {
		return fmt.Errorf("schema version %d, this program's is %d", version, len(migrations))
	}
	select {
	case s.writerHeld <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("write probe: waiting for the writer: %w", ctx.Err())
	case <-s.quit:
		return fmt.Errorf("write probe: %w", errClosed)
	}
	defer func() { <-s.writerHeld }()
	// The probe commits on its own, so a group left open for a writer to
	// join is committed first.
	s.commitGroup()
	if _, err := s.wconn.ExecContext(ctx, `INSERT OR REPLACE INTO probe (id, at) VALUES (1, ?)`, time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("write probe: %w", err)
	}
	return nil
}

// openFile opens the database in dir on one connection, without migrating
// it, for the tools that work on a database file rather than serve it
// (migrate, backup, verify). It refuses a directory without a database
// unless create is set.
func openFile(ctx context.Context, dir string, create bool) (*sql.DB, *sql.Conn, error) {
	path := filepath.Join(dir, FileName)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && !create {
		return nil, nil, fmt.Errorf("sqlite: no database in %s", dir)
	}
	if err := createPrivate(path); err != nil {
		return nil, nil, err
	}
	q := url.Values{"_pragma": {"busy_timeout(10000)", "journal_mode(WAL)"}}
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return db, conn, nil
}

// createPrivate makes the empty database file at path, which SQLite reads
// as a database of no tables, readable and writable by its owner alone,
// when there is none. SQLite would make it readable by everyone the umask
// lets read (0644 by default), and gives its WAL and shared-memory files
// the database file's mode, so that every record would be theirs to read
// in a data directory whose own mode lets them in.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	return f.Close()
}

// Migrate brings the database in dir to this program's schema, making
// every migration Open would refuse to make too, and returns a line per
// migration made. It creates the directory and the database when missing.
// Run it with the server stopped, after a backup: it fails with ErrInUse
// while a server holds dir.
func Migrate(ctx context.Context, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("sqlite: migrate: %w", err)
	}
	lock, _, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer lock.release()
	db, conn, err := openFile(ctx, dir, true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	defer conn.Close()
	done, err := migrate(ctx, conn, migrations, true)
	if err != nil {
		return nil, err
	}
	if len(done) == 0 {
		done = []string{fmt.Sprintf("schema version %d is current: nothing to do", len(migrations))}
	}
	return done, nil
}
