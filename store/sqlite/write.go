package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"carefhir/store"
)

// writer holds the write statements, prepared once on the writer connection.
type writer struct {
	conn                           *sql.Conn
	begin, commit, rollback        *sql.Stmt
	savepoint, release, rollbackTo *sql.Stmt
	current, insertVersion         *sql.Stmt
	supersede                      *sql.Stmt
	insertResource, updateResource *sql.Stmt
	deleteTokens                   *sql.Stmt
	index                          *indexStmts
	insertToken                    [tokenRows]*sql.Stmt // [n-1] inserts n tokens
}

func newWriter(ctx context.Context, c *sql.Conn) (*writer, error) {
	w := &writer{conn: c}
	for _, s := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		// IMMEDIATE takes the write lock at once: a transaction never has to
		// upgrade a read lock, which is where SQLITE_BUSY comes from.
		{&w.begin, `BEGIN IMMEDIATE`},
		{&w.commit, `COMMIT`},
		{&w.rollback, `ROLLBACK`},
		{&w.savepoint, `SAVEPOINT put`},
		{&w.release, `RELEASE put`},
		{&w.rollbackTo, `ROLLBACK TO put`},
		{&w.current, `SELECT version, seq FROM resources WHERE type = ? AND id = ?`},
		{&w.insertVersion, `INSERT INTO versions (type, id, version, last_updated, deleted, json) VALUES (?, ?, ?, ?, ?, ?)`},
		{&w.supersede, `UPDATE versions SET superseded_at = ? WHERE seq = ?`},
		{&w.insertResource, `INSERT INTO resources (type, id, version, deleted, seq) VALUES (?, ?, ?, ?, ?)`},
		{&w.updateResource, `UPDATE resources SET version = ?, deleted = ?, seq = ? WHERE type = ? AND id = ?`},
		{&w.deleteTokens, `DELETE FROM tokens WHERE type = ? AND id = ?`},
	} {
		stmt, err := c.PrepareContext(ctx, s.sql)
		if err != nil {
			w.close()
			return nil, fmt.Errorf("sqlite: prepare: %w", err)
		}
		*s.stmt = stmt
	}
	index, err := prepareIndex(ctx, c)
	if err != nil {
		w.close()
		return nil, err
	}
	w.index = index
	return w, nil
}

func (w *writer) close() {
	stmts := []*sql.Stmt{w.begin, w.commit, w.rollback, w.savepoint, w.release, w.rollbackTo, w.current, w.insertVersion,
		w.supersede, w.insertResource, w.updateResource, w.deleteTokens}
	for _, s := range append(stmts, w.insertToken[:]...) {
		if s != nil {
			s.Close()
		}
	}
	if w.index != nil {
		w.index.close()
	}
}

// put writes one version inside the open transaction. It checks the expected
// version before it changes anything, so a *store.ConflictError leaves the
// transaction as it was.
func (w *writer) put(ctx context.Context, wr *store.Write) error {
	var current, seq int64
	err := w.current.QueryRowContext(ctx, wr.Type, wr.ID).Scan(&current, &seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if current != wr.Expected {
		return &store.ConflictError{Type: wr.Type, ID: wr.ID, Expected: wr.Expected, Current: current}
	}
	ms := wr.LastUpdated.UnixMilli()
	var body []byte
	if !wr.Deleted {
		body = wr.JSON
	}
	res, err := w.insertVersion.ExecContext(ctx, wr.Type, wr.ID, wr.VersionID(), ms, wr.Deleted, body)
	if err != nil {
		return err
	}
	newSeq, err := res.LastInsertId()
	if err != nil {
		return err
	}
	if current == 0 {
		if _, err := w.insertResource.ExecContext(ctx, wr.Type, wr.ID, wr.VersionID(), wr.Deleted, newSeq); err != nil {
			return err
		}
	} else {
		if _, err := w.supersede.ExecContext(ctx, ms, seq); err != nil {
			return err
		}
		if _, err := w.updateResource.ExecContext(ctx, wr.VersionID(), wr.Deleted, newSeq, wr.Type, wr.ID); err != nil {
			return err
		}
		if _, err := w.deleteTokens.ExecContext(ctx, wr.Type, wr.ID); err != nil {
			return err
		}
		if err := w.index.remove(ctx, wr.Type, wr.ID); err != nil {
			return err
		}
	}
	if wr.Deleted {
		return nil
	}
	if err := w.insertTokens(ctx, wr); err != nil {
		return err
	}
	return w.index.add(ctx, wr.Type, wr.ID, &wr.Index)
}

// tokenRows is the most tokens one INSERT statement writes.
const tokenRows = 16

// insertTokens writes the tokens of wr, up to tokenRows per statement: one
// statement costs about as much as one row.
func (w *writer) insertTokens(ctx context.Context, wr *store.Write) error {
	tokens := wr.Index.Tokens
	args := make([]any, 0, 5*min(len(tokens), tokenRows))
	for len(tokens) > 0 {
		n := min(len(tokens), tokenRows)
		args = args[:0]
		for _, t := range tokens[:n] {
			args = append(args, wr.Type, t.Param, t.Code, t.System, wr.ID)
		}
		stmt, err := w.tokenInsert(ctx, n)
		if err != nil {
			return err
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return err
		}
		tokens = tokens[n:]
	}
	return nil
}

// tokenInsert returns the statement that inserts n tokens, preparing it the
// first time.
func (w *writer) tokenInsert(ctx context.Context, n int) (*sql.Stmt, error) {
	if s := w.insertToken[n-1]; s != nil {
		return s, nil
	}
	q := `INSERT OR IGNORE INTO tokens (type, param, code, system, id) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?), ", n), ", ")
	s, err := w.conn.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	w.insertToken[n-1] = s
	return s, nil
}

// putRequest is one Put waiting for the writer.
type putRequest struct {
	ctx      context.Context
	w        *store.Write
	err      error         // the outcome, once answered is closed
	answered chan struct{} // closed once the batch holding w has committed
}

func (r *putRequest) answer(err error) {
	r.err = err
	close(r.answered)
}

// lead commits the queued writes, in batches in arrival order, until req
// has its outcome. The caller holds the writer. It returns false if req
// left the queue without an outcome, which only Close does; Close then
// answers req itself once the caller lets the writer go.
//
// This is group commit without a writer goroutine: whoever gets the writer
// commits, in one transaction and one WAL append, every write that queued up
// while the previous batch was committing. A lone writer commits its own
// write on its own goroutine, with no hand-over; under load, batches grow by
// themselves. Each caller still learns its own outcome, and only after the
// commit. A leader stops once its own write is answered: the owners of the
// writes still queued are each waiting for the writer, so one of them takes
// over (an owner whose context ended has left; a later leader skips its
// write).
func (s *Store) lead(req *putRequest) bool {
	for {
		select {
		case <-req.answered:
			return true
		default:
		}
		s.qmu.Lock()
		n := min(len(s.queue), s.maxBatch)
		s.batch = append(s.batch[:0], s.queue[:n]...)
		rest := copy(s.queue, s.queue[n:])
		clear(s.queue[rest:])
		s.queue = s.queue[:rest]
		s.qmu.Unlock()
		if n == 0 {
			return false
		}
		s.commitBatch(s.batch)
		clear(s.batch)
	}
}

// commitBatch commits batch and tells each caller its outcome. If something
// other than a conflict goes wrong, it retries the writes one by one so that
// one bad write cannot fail the others.
func (s *Store) commitBatch(batch []*putRequest) {
	if err := s.applyBatch(batch); err != nil {
		if len(batch) == 1 {
			batch[0].answer(err)
			return
		}
		for i := range batch {
			s.commitBatch(batch[i : i+1])
		}
		return
	}
	for _, req := range batch {
		req.answer(req.err)
	}
}

// applyBatch runs batch in one transaction. Statements run under a
// background context: the transaction is shared, so no one caller's
// cancellation may abort it; a caller that has gone is skipped instead.
func (s *Store) applyBatch(batch []*putRequest) (err error) {
	ctx := context.Background()
	w := s.writer
	if _, err := w.begin.ExecContext(ctx); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			w.rollback.ExecContext(ctx)
		}
	}()
	for _, req := range batch {
		if req.err = req.ctx.Err(); req.err != nil {
			continue
		}
		req.err = w.put(ctx, req.w)
		var conflict *store.ConflictError
		if req.err != nil && !errors.As(req.err, &conflict) {
			return req.err
		}
	}
	if _, err = w.commit.ExecContext(ctx); err != nil {
		return err
	}
	s.notifyCommit()
	return nil
}
