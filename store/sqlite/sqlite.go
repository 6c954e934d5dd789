// Package sqlite is the embedded storage engine: a store.Store kept in one
// SQLite database file (modernc.org/sqlite, pure Go) in WAL mode.
//
// Every version of every resource is a row of one table; a second table
// points at each resource's current version and numbers the resource, and
// the search values of current versions sit in typed index tables (tokens,
// strings, dates, numbers, quantities, references, uris, composites) keyed by
// parameter number and value, whose keys make every common search an index
// range scan (search.go compiles search plans into SQL over them; schema.go
// describes the tables). Writes go through one writer connection, used by one
// goroutine at a time, which commits concurrent Puts and units of work
// together (group commit, group.go); reads use a pool of reader connections, which WAL lets run
// alongside the writer, and a checkpointer keeps the WAL short off the write
// path.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"carefhir/store"
	"carefhir/store/sqlite/internal/walbuf"
)

// FileName is the name of the database file inside the data directory.
const FileName = "carefhir.db"

var _ store.Store = (*Store)(nil)

// errClosed reports a write to a closed store.
var errClosed = errors.New("store is closed")

// Options tune a Store. The zero value is the default.
type Options struct {
	// SyncFull makes every commit wait for fsync (PRAGMA synchronous=FULL).
	//
	// By default (synchronous=NORMAL) a commit is appended to the WAL with
	// write(2) and fsynced at the next checkpoint: an acknowledged write is
	// in the operating system's page cache, which outlives the process, so
	// it survives the process being killed (kill -9, a crash, an OOM kill),
	// but a power cut or a kernel panic loses the commits since the last
	// checkpoint. The database stays consistent either way. SyncFull closes
	// that window: every commit fsyncs the WAL before it returns, so an
	// acknowledged write survives losing power too; group commit shares
	// that fsync between the writes and units of work that arrive together.
	// It is not the default because it costs more than a fifth of the
	// throughput of single creates from 8 clients (docs/benchmarks.md,
	// "Durability: synchronous=FULL against NORMAL").
	SyncFull bool
	// MaxBatch is the most Puts written in one batch; 0 means 256. 1 turns
	// group commit off: every Put and unit of work commits on its own.
	MaxBatch int
	// CheckpointInterval is the least time between two checkpoints, which
	// copy committed pages from the WAL into the database file; 0 means
	// 100ms.
	CheckpointInterval time.Duration
	// Readers is the size of the reader connection pool; 0 means
	// 2×GOMAXPROCS, at least 4.
	Readers int
	// Observer, when set, receives measurements of the engine's work, for
	// metrics.
	Observer Observer
	// Migrated, when set, is told of each migration Open makes, such as
	// "schema version 2 to 3: …", for the log.
	Migrated func(line string)
	// VFS, when set, names the registered SQLite VFS the database is opened
	// through instead of the operating system's: tests use one that
	// simulates power cuts.
	VFS string
	// SearchPages bounds the bytes of the pages kept for searches repeated
	// before the next commit (current.go); 0 means 16 MiB, and a negative
	// value keeps none, so that every search runs its query (benchmarks of
	// the search plans).
	SearchPages int
}

// Store is a store.Store kept in a SQLite database. Its methods are safe for
// concurrent use.
type Store struct {
	path   string   // of the database file
	obs    Observer // never nil
	rdb    *sql.DB  // reader pool
	wdb    *sql.DB  // holds the one writer connection
	wconn  *sql.Conn
	reader *reader // statements on the reader pool
	writer *writer // write statements on the writer connection
	txRead *reader // read statements on the writer connection, for Transact
	vfs    *walbuf.VFS
	lock   *dirLock // of the data directory, held until Close
	// current caches the current versions reads found; nil where the
	// directory cannot be locked (current.go).
	current *currentCache

	// writerHeld holds a value while someone uses the writer connection: a
	// Put leading a batch, a Transact, the committer, or Close, which keeps
	// it.
	writerHeld chan struct{}
	batch      []*putRequest // the batch being written, under writerHeld
	maxBatch   int
	quit       chan struct{} // closed by Close

	// Group commit across units of work (group.go).
	group      *group        // the writer's open transaction, under writerHeld
	waiting    atomic.Int32  // callers waiting for the writer to join the group
	groupOpen  chan struct{} // tells the committer a group was left open
	commitDone chan struct{} // closed when the committer ends

	qmu    sync.Mutex
	queue  []*putRequest // Puts waiting for a batch, oldest first
	closed bool

	ckdb       *sql.DB       // the checkpointer's connection
	ckInterval time.Duration // the least time between two checkpoints
	committed  chan struct{} // the writer tells the checkpointer of a commit
	ckDone     chan struct{} // closed when the checkpointer ends
	close      sync.Once
}

// Open opens the store in dir, creating dir and the database if needed, with
// the default Options.
func Open(dir string) (*Store, error) {
	return OpenWith(dir, Options{})
}

// OpenWith opens the store in dir, creating dir and the database if needed.
func OpenWith(dir string, opts Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = 100 * time.Millisecond
	}
	opts.Readers = readers(opts)
	syncMode := "NORMAL"
	if opts.SyncFull {
		syncMode = "FULL"
	}
	lock, locked, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, FileName)
	if err := createPrivate(path); err != nil {
		lock.release()
		return nil, err
	}
	// Every connection opens the database through a VFS of its own that
	// writes a transaction's WAL frames in one call (see walbuf).
	vfs, err := walbuf.Register(opts.VFS)
	if err != nil {
		lock.release()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// pragmas returns the DSN of a connection with a page cache of cacheMiB
	// (each pragma once: the driver runs its pragmas sorted, so of two values
	// of one the later in that order would win).
	pragmas := func(cacheMiB int, extra ...string) string {
		q := url.Values{"_pragma": append([]string{
			// Only another process can make SQLite busy here: this process
			// has one writer. Wait for it rather than fail at once.
			"busy_timeout(10000)",
			"journal_mode(WAL)",
			"synchronous(" + syncMode + ")",
			"temp_store(MEMORY)",
			// No memory map of the file: SQLite unmaps it whole in every
			// connection whose next read finds the database changed, and
			// with a write every 100 ms (the audit trail, the checkpoints)
			// tearing down the pages the last reads touched cost more than
			// reading them again (a caseload of 200 patients among
			// 100,000 took 75 ms without the map and 135 ms with it).
			"mmap_size(0)",
			fmt.Sprintf("cache_size(%d)", -1024*cacheMiB),
		}, extra...)}
		q.Set("vfs", vfs.Name())
		return path + "?" + q.Encode()
	}

	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	s := &Store{
		path:       path,
		vfs:        vfs,
		lock:       lock,
		obs:        opts.Observer,
		writerHeld: make(chan struct{}, 1),
		quit:       make(chan struct{}),
		maxBatch:   opts.MaxBatch,

		groupOpen:  make(chan struct{}, 1),
		commitDone: make(chan struct{}),

		ckInterval: opts.CheckpointInterval,
		committed:  make(chan struct{}, 1),
		ckDone:     make(chan struct{}),
	}
	ctx := context.Background()
	fail := func(err error) (*Store, error) {
		s.closeAll()
		return nil, err
	}
	// The writer checkpoints only as a backstop, when the WAL has grown
	// past walBackstop pages; normally the checkpointer has done it first,
	// on its own connection and off the write path. Its cache holds the
	// pages a large unit of work changes: when they do not fit, SQLite
	// writes them to the WAL before the commit and reads them back from it
	// with a system call each.
	if s.wdb, err = sql.Open("sqlite", pragmas(writerCacheMiB, fmt.Sprintf("wal_autocheckpoint(%d)", walBackstop))); err != nil {
		return fail(fmt.Errorf("sqlite: open %s: %w", path, err))
	}
	s.wdb.SetMaxOpenConns(1)
	if s.wconn, err = s.wdb.Conn(ctx); err != nil {
		return fail(fmt.Errorf("sqlite: open %s: %w", path, err))
	}
	done, err := migrate(ctx, s.wconn, migrations, false)
	if err != nil {
		return fail(err)
	}
	if opts.Migrated != nil {
		for _, line := range done {
			opts.Migrated(line)
		}
	}
	params := newParamCache()
	if s.writer, err = newWriter(ctx, s.wconn, params); err != nil {
		return fail(err)
	}
	if locked {
		pages := pageCacheBytes
		if opts.SearchPages != 0 {
			pages = max(opts.SearchPages, 0)
		}
		s.current = newCurrentCache(currentCacheBytes, pages)
		s.writer.cache = s.current
	}
	if s.txRead, err = newReader(ctx, s.wconn, nil); err != nil {
		return fail(err)
	}
	if s.rdb, err = sql.Open("sqlite", pragmas(readerCacheMiB, "query_only(1)")); err != nil {
		return fail(fmt.Errorf("sqlite: open %s: %w", path, err))
	}
	s.rdb.SetMaxOpenConns(opts.Readers)
	s.rdb.SetMaxIdleConns(opts.Readers)
	if s.reader, err = newReader(ctx, s.rdb, params); err != nil {
		return fail(err)
	}
	s.reader.counts = newCountCache()
	if s.ckdb, err = sql.Open("sqlite", pragmas(readerCacheMiB)); err != nil {
		return fail(fmt.Errorf("sqlite: open %s: %w", path, err))
	}
	s.ckdb.SetMaxOpenConns(1)
	go s.checkpoints()
	go s.commits()
	return s, nil
}

// Close waits for the batch or unit of work in progress, commits the group
// it is in, and closes the database. Writes queued but not yet started
// fail.
func (s *Store) Close() error {
	var err error
	s.close.Do(func() {
		s.qmu.Lock()
		s.closed = true
		queued := s.queue
		s.queue = nil
		s.qmu.Unlock()
		close(s.quit)
		s.writerHeld <- struct{}{} // and never let go
		for _, req := range queued {
			req.answer(errClosed)
		}
		s.commitGroup()
		<-s.commitDone
		<-s.ckDone
		err = s.closeAll()
	})
	return err
}

func (s *Store) closeAll() error {
	var errs []error
	if s.reader != nil {
		s.reader.close()
	}
	if s.txRead != nil {
		s.txRead.close()
	}
	if s.writer != nil {
		s.writer.close()
	}
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	if s.ckdb != nil {
		errs = append(errs, s.ckdb.Close())
	}
	if s.wconn != nil {
		errs = append(errs, s.wconn.Close())
	}
	if s.wdb != nil {
		errs = append(errs, s.wdb.Close())
	}
	// Every connection through the VFS is closed by now.
	if s.vfs != nil {
		errs = append(errs, s.vfs.Close())
	}
	// The database is closed: another process may have it.
	errs = append(errs, s.lock.release())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// Read implements store.Reader.
func (s *Store) Read(ctx context.Context, typ, id string) (*store.Version, error) {
	defer s.observe("read", time.Now())
	if s.current == nil {
		return s.reader.Read(ctx, typ, id)
	}
	v, gen := s.current.get(typ, id)
	if v != nil {
		return v, nil
	}
	v, err := s.reader.Read(ctx, typ, id)
	if err == nil {
		s.current.fill(v, gen)
	}
	return v, err
}

// VRead implements store.Reader.
func (s *Store) VRead(ctx context.Context, typ, id string, version int64) (*store.Version, error) {
	defer s.observe("vread", time.Now())
	return s.reader.VRead(ctx, typ, id, version)
}

// History implements store.Reader.
func (s *Store) History(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	defer s.observe("history", time.Now())
	return s.reader.History(ctx, q)
}

// Search implements store.Reader.
func (s *Store) Search(ctx context.Context, q store.Query) ([]*store.Version, error) {
	defer s.observe("search", time.Now())
	return s.reader.Search(ctx, q)
}

// Put implements store.Writer. It queues w and returns once the transaction
// holding w has committed, committing that transaction itself if the writer
// is free (see lead). If ctx ends while w is queued, Put returns its error
// and w is not stored; once a leader has taken w, Put returns the outcome
// of the group holding it, which commits without waiting for any one
// caller.
func (s *Store) Put(ctx context.Context, w *store.Write) error {
	defer s.observe("put", time.Now())
	if err := s.put(ctx, w); err != nil {
		return fmt.Errorf("sqlite: put %s/%s: %w", w.Type, w.ID, err)
	}
	return nil
}

// PutGated implements store.GatedWriter. A write that finds the writer
// free begins at once, and its unit of work waits for ready before it is
// kept in the group (and so before any commit holds it): the caller's
// checks run while the engine inserts. A write that would join a batch
// waits for ready before it queues instead, so that no batch ever waits on
// a check while the writer is in demand.
func (s *Store) PutGated(ctx context.Context, w *store.Write, ready func() error) error {
	defer s.observe("put", time.Now())
	if err := s.putGated(ctx, w, ready); err != nil {
		return fmt.Errorf("sqlite: put %s/%s: %w", w.Type, w.ID, err)
	}
	return nil
}

var _ store.GatedWriter = (*Store)(nil)

func (s *Store) put(ctx context.Context, w *store.Write) error {
	return s.putGated(ctx, w, nil)
}

// writerIdle reports whether no write is queued, waiting for the writer
// or holding it: a moment's view, good only as a hint.
func (s *Store) writerIdle() bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return len(s.queue) == 0 && len(s.writerHeld) == 0 && s.waiting.Load() == 0
}

func (s *Store) putGated(ctx context.Context, w *store.Write, ready func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ready != nil && !s.writerIdle() {
		if err := ready(); err != nil {
			return err
		}
		ready = nil
	}
	req := &putRequest{ctx: ctx, w: w, ready: ready, answered: make(chan struct{})}
	s.qmu.Lock()
	if s.closed {
		s.qmu.Unlock()
		return errClosed
	}
	s.queue = append(s.queue, req)
	s.qmu.Unlock()
	s.waiting.Add(1)
	select {
	case <-req.answered:
		s.waiting.Add(-1)
	case s.writerHeld <- struct{}{}:
		s.waiting.Add(-1)
		s.lead(req)
		s.release()
		<-req.answered
	case <-ctx.Done():
		s.waiting.Add(-1)
		if s.dequeue(req) {
			return ctx.Err()
		}
		// A leader has taken req into its batch: the group holding it
		// decides its outcome. Returning now could tell the caller the
		// write failed while it commits a moment later, after the
		// caller's request has ended and a history read has been dated
		// past it.
		<-req.answered
	}
	return req.err
}

// dequeue takes req out of the queue of Puts waiting for the writer, and
// reports whether it was there: if not, a leader has taken it.
func (s *Store) dequeue(req *putRequest) bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	i := slices.Index(s.queue, req)
	if i < 0 {
		return false
	}
	s.queue = slices.Delete(s.queue, i, i+1)
	return true
}

// Transact implements store.Store with a unit of work on the writer
// connection, a savepoint in the writer's group (group.go): puts wait while
// fn runs, reads from other goroutines do not (they see the state before
// the unit until its group commits). fn must use tx, not s: a Put on s from
// inside fn waits for fn to return. Transact returns once the group has
// committed.
func (s *Store) Transact(ctx context.Context, fn func(tx store.Tx) error) (err error) {
	defer s.observe("transact", time.Now())
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: transact: %w", err)
	}
	if err := s.awaitWriter(ctx); err != nil {
		return fmt.Errorf("sqlite: transact: %w", err)
	}
	g, err := s.join(ctx)
	if err != nil {
		s.release()
		return fmt.Errorf("sqlite: transact: %w", err)
	}
	t := &tx{s: s}
	kept := false
	defer func() {
		if !kept { // fn failed, or panicked
			t.end()
			s.leave(false)
			s.release()
		}
	}()
	if err := fn(t); err != nil {
		return err
	}
	if err := t.end(); err != nil {
		return fmt.Errorf("sqlite: transact: %w", err)
	}
	kept = true
	err = s.leave(true)
	if err == nil && s.group == g {
		g.writes += t.writes
	}
	s.release()
	if err != nil {
		return fmt.Errorf("sqlite: transact: %w", err)
	}
	<-g.done
	if g.err != nil {
		return fmt.Errorf("sqlite: transact: %w", g.err)
	}
	return nil
}

// tx is the store.Tx of a Transact: reads and writes on the writer
// connection inside its transaction.
type tx struct {
	s      *Store
	mu     sync.Mutex // a SQLite connection runs one statement sequence at a time
	ended  bool
	failed error // a write that failed part-way, which fails the unit of work
	writes int   // versions written, counted in the group's commit
}

var errTxEnded = errors.New("unit of work has ended")

// end ends the unit of work and returns the failure of a write that failed
// part-way, if any.
func (t *tx) end() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ended = true
	return t.failed
}

// do runs f while the unit of work is open and has not failed.
func (t *tx) do(f func() error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.ended:
		return errTxEnded
	case t.failed != nil:
		return fmt.Errorf("unit of work failed: %w", t.failed)
	}
	return f()
}

func (t *tx) Read(ctx context.Context, typ, id string) (v *store.Version, err error) {
	err = t.do(func() error { v, err = t.s.txRead.Read(ctx, typ, id); return err })
	return v, err
}

func (t *tx) VRead(ctx context.Context, typ, id string, version int64) (v *store.Version, err error) {
	err = t.do(func() error { v, err = t.s.txRead.VRead(ctx, typ, id, version); return err })
	return v, err
}

func (t *tx) History(ctx context.Context, q store.HistoryQuery) (p *store.HistoryPage, err error) {
	err = t.do(func() error { p, err = t.s.txRead.History(ctx, q); return err })
	return p, err
}

func (t *tx) Search(ctx context.Context, q store.Query) (vs []*store.Version, err error) {
	err = t.do(func() error {
		if err := t.flush(); err != nil {
			return err
		}
		vs, err = t.s.txRead.Search(ctx, q)
		return err
	})
	return vs, err
}

// flush inserts the search rows the unit's writes have held back, so that
// a search sees them; the caller holds t.mu. Reads by id and of history
// read no search rows, and need none. A failure may leave some rows
// inserted and others not, so it fails the unit of work.
func (t *tx) flush() error {
	// Not cancelled with a context, which would stop it half-way.
	if err := t.s.writer.index.flush(context.Background()); err != nil {
		t.failed = fmt.Errorf("insert search rows: %w", err)
		return t.failed
	}
	return nil
}

// Put writes w in the unit of work. A conflict is found before anything is
// written, so fn may carry on after one. Any other error may leave the write
// half-done, so it fails the unit of work: Transact rolls it back and
// returns that error whatever fn returns. (A savepoint around each write
// would let fn carry on, but it copies every page the write touches that
// the unit of work had already changed, which made a large unit of work
// about 10% slower.)
func (t *tx) Put(ctx context.Context, w *store.Write) error {
	err := t.do(func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Not cancelled with ctx, which would stop it half-way.
		err := t.s.writer.put(context.Background(), w)
		var conflict *store.ConflictError
		if err != nil && !errors.As(err, &conflict) {
			t.failed = fmt.Errorf("put %s/%s: %w", w.Type, w.ID, err)
		}
		if err == nil {
			t.writes++
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: put %s/%s: %w", w.Type, w.ID, err)
	}
	return nil
}

// readers returns the size of the reader pool of a store opened with opts.
func readers(opts Options) int {
	if opts.Readers > 0 {
		return opts.Readers
	}
	return max(4, 2*runtime.GOMAXPROCS(0))
}

// PageMemoryMiB returns the most that the page caches of a store opened
// with opts hold, in MiB: the page memory (UsePageMemory) for one store.
func PageMemoryMiB(opts Options) int {
	return writerCacheMiB + readerCacheMiB*(readers(opts)+1) // +1: the checkpointer
}

// The page cache of each connection, in MiB.
const (
	writerCacheMiB = 64
	readerCacheMiB = 8
)

// walBackstop is the WAL size, in pages, at which the writer checkpoints
// itself because the checkpointer has fallen behind.
const walBackstop = 16384

// checkpoints is the checkpointer goroutine. A checkpoint copies the pages
// committed to the WAL into the database file and fsyncs both; done at
// commit, as SQLite does by default every 1000 pages, it stalls the writer
// and every Put waiting on it. Here it runs on its own connection, at most
// once per ckInterval while writes come in, and writers carry on meanwhile:
// a PASSIVE checkpoint takes no lock that a writer needs. Hot pages written
// many times between two checkpoints are copied once.
func (s *Store) checkpoints() {
	defer close(s.ckDone)
	for {
		select {
		case <-s.quit:
			return
		case <-s.committed:
		}
		// A failed checkpoint leaves the WAL as it was, and nothing is
		// lost: the next one retries, and the writer's backstop bounds the
		// WAL meanwhile.
		s.ckdb.ExecContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`)
		select {
		case <-s.quit:
			return
		case <-time.After(s.ckInterval):
		}
	}
}

// notifyCommit wakes the checkpointer if it is waiting for a commit.
func (s *Store) notifyCommit() {
	select {
	case s.committed <- struct{}{}:
	default:
	}
}
