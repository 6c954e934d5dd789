package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"carefhir/store"
)

// writer holds the write statements, prepared once on the writer connection.
type writer struct {
	begin, commitStmt, rollbackStmt *sql.Stmt
	current, insertVersion          *sql.Stmt
	supersede                       *sql.Stmt
	insertResource, updateResource  *sql.Stmt
	recomputeDates                  *sql.Stmt
	index                           *indexStmts
}

func newWriter(ctx context.Context, c *sql.Conn, params *paramCache) (*writer, error) {
	w := &writer{}
	for _, s := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		// IMMEDIATE takes the write lock at once: a transaction never has to
		// upgrade a read lock, which is where SQLITE_BUSY comes from.
		{&w.begin, `BEGIN IMMEDIATE`},
		{&w.commitStmt, `COMMIT`},
		{&w.rollbackStmt, `ROLLBACK`},
		{&w.current, `SELECT rid, version, seq FROM resources WHERE type = ? AND id = ?`},
		{&w.insertVersion, `INSERT INTO versions (type, id, version, last_updated, deleted, json) VALUES (?, ?, ?, ?, ?, ?)`},
		{&w.supersede, `UPDATE versions SET superseded_at = ? WHERE seq = ?`},
		{&w.insertResource, `INSERT INTO resources (type, id, version, deleted, seq) VALUES (?, ?, ?, ?, ?)`},
		{&w.updateResource, `UPDATE resources SET version = ?, deleted = ?, seq = ? WHERE rid = ?`},
		{&w.recomputeDates, recomputeDatesSQL},
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
	index.params.shared = params
	w.index = index
	return w, nil
}

func (w *writer) close() {
	for _, s := range []*sql.Stmt{w.begin, w.commitStmt, w.rollbackStmt, w.current, w.insertVersion,
		w.supersede, w.insertResource, w.updateResource, w.recomputeDates} {
		if s != nil {
			s.Close()
		}
	}
	if w.index != nil {
		w.index.close()
	}
}

// commit commits the open transaction.
func (w *writer) commit(ctx context.Context) error {
	if _, err := w.commitStmt.ExecContext(ctx); err != nil {
		return err
	}
	w.index.params.committed()
	return nil
}

// rollback rolls the open transaction back. Its error is not reported: if
// the rollback fails, SQLite rolls back itself (an error that fails a
// statement in a transaction it cannot continue ends the transaction), and
// the next BEGIN says so if it cannot.
func (w *writer) rollback() {
	w.rollbackStmt.ExecContext(context.Background())
	w.index.params.forget()
}

// resourceState is a resource's row in resources: rid 0 when it has none.
type resourceState struct {
	rid, version, seq int64
}

// state returns the current state of typ/id.
func (w *writer) state(ctx context.Context, typ, id string) (resourceState, error) {
	var st resourceState
	err := w.current.QueryRowContext(ctx, typ, id).Scan(&st.rid, &st.version, &st.seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return st, err
	}
	return st, nil
}

// put writes one version inside the open transaction. It checks the expected
// version before it changes anything, so a *store.ConflictError leaves the
// transaction as it was.
func (w *writer) put(ctx context.Context, wr *store.Write) error {
	cur, err := w.state(ctx, wr.Type, wr.ID)
	if err != nil {
		return err
	}
	if cur.version != wr.Expected {
		return &store.ConflictError{Type: wr.Type, ID: wr.ID, Expected: wr.Expected, Current: cur.version}
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
	seq, err := res.LastInsertId()
	if err != nil {
		return err
	}
	rid := cur.rid
	if rid == 0 {
		res, err := w.insertResource.ExecContext(ctx, wr.Type, wr.ID, wr.VersionID(), wr.Deleted, seq)
		if err != nil {
			return err
		}
		if rid, err = res.LastInsertId(); err != nil {
			return err
		}
	} else {
		if _, err := w.supersede.ExecContext(ctx, ms, cur.seq); err != nil {
			return err
		}
		if _, err := w.updateResource.ExecContext(ctx, wr.VersionID(), wr.Deleted, seq, rid); err != nil {
			return err
		}
		if err := w.index.remove(ctx, rid); err != nil {
			return err
		}
	}
	if wr.Deleted {
		return nil
	}
	return w.index.add(ctx, wr.Type, rid, &wr.Index)
}

// putRequest is one Put waiting for the writer.
type putRequest struct {
	ctx      context.Context
	w        *store.Write
	ready    func() error  // when set, w commits only once it returns nil (see PutGated)
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
			w.rollback()
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
	// A gated write refused now fails the batch, which commitBatch then
	// retries write by write: its write alone is left out.
	for _, req := range batch {
		if req.ready == nil || req.err != nil {
			continue
		}
		if req.err = req.ready(); req.err != nil {
			return req.err
		}
	}
	if err = w.commit(ctx); err != nil {
		return err
	}
	s.obs.Commit(len(batch))
	s.notifyCommit()
	return nil
}
