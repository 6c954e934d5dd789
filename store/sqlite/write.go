package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	sqlitedriver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"carefhir/store"
)

// writer holds the write statements, prepared once on the writer connection.
type writer struct {
	begin, commitStmt, rollbackStmt *sql.Stmt
	// A savepoint around each unit of work of a group (group.go).
	savepoint, releaseSavepoint, rollbackToSavepoint *sql.Stmt
	current, insertVersion                           *sql.Stmt
	supersede                                        *sql.Stmt
	insertResource, updateResource                   *sql.Stmt
	recomputeDates                                   *sql.Stmt
	purgeResource, purgeVersions, purgeEarlier       *sql.Stmt // purge.go
	index                                            *indexStmts

	// cache, when set, is the store's cache of current versions, and
	// touched the resources the open transaction has written, which its
	// end drops from the cache.
	cache   *currentCache
	touched []versionKey
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
		{&w.savepoint, `SAVEPOINT unit`},
		{&w.releaseSavepoint, `RELEASE unit`},
		{&w.rollbackToSavepoint, `ROLLBACK TO unit`},
		{&w.current, `SELECT rid, version, seq FROM resources WHERE type = ? AND id = ?`},
		{&w.insertVersion, `INSERT INTO versions (type, id, version, last_updated, deleted, json, method) VALUES (?, ?, ?, ?, ?, ?, ?)`},
		{&w.supersede, `UPDATE versions SET superseded_at = ? WHERE seq = ?`},
		{&w.insertResource, `INSERT INTO resources (type, id, version, deleted, seq) VALUES (?, ?, ?, ?, ?)`},
		{&w.updateResource, `UPDATE resources SET version = ?, deleted = ?, seq = ? WHERE rid = ?`},
		{&w.recomputeDates, recomputeDatesSQL},
		{&w.purgeResource, `DELETE FROM resources WHERE rid = ?`},
		{&w.purgeVersions, `DELETE FROM versions WHERE type = ? AND id = ?`},
		{&w.purgeEarlier, `DELETE FROM versions WHERE type = ? AND id = ? AND version < ?`},
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
	for _, s := range []*sql.Stmt{w.begin, w.commitStmt, w.rollbackStmt, w.savepoint, w.releaseSavepoint, w.rollbackToSavepoint, w.current, w.insertVersion,
		w.supersede, w.insertResource, w.updateResource, w.recomputeDates, w.purgeResource, w.purgeVersions, w.purgeEarlier} {
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
	// Even a COMMIT that fails may have made the transaction durable (an
	// I/O error after the WAL was written): the cache forgets either way.
	defer w.forgetTouched()
	if _, err := w.commitStmt.ExecContext(ctx); err != nil {
		return err
	}
	w.index.params.committed()
	return nil
}

// forgetTouched drops what the transaction wrote from the cache of
// current versions, once it has ended and before any of its writes is
// acknowledged.
func (w *writer) forgetTouched() {
	if w.cache != nil {
		w.cache.forget(w.touched)
	}
	clear(w.touched)
	w.touched = w.touched[:0]
}

// rollback rolls the open transaction back. Its error is not reported: if
// the rollback fails, SQLite rolls back itself (an error that fails a
// statement in a transaction it cannot continue ends the transaction), and
// the next BEGIN says so if it cannot.
func (w *writer) rollback() {
	w.rollbackStmt.ExecContext(context.Background())
	w.index.discard()
	w.index.params.forget()
	w.forgetTouched()
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
//
// A create (no version expected) is not looked up first: its first
// version's row is inserted at once, and the unique index of versions
// refuses it if the resource has ever existed (a version is removed only
// with its resource, by a purge), the failed statement changing nothing. Creates are most writes (every
// request's AuditEvent is one), and the lookup was one statement in eight
// of an audit event's.
func (w *writer) put(ctx context.Context, wr *store.Write) error {
	var cur resourceState
	if wr.Expected != 0 {
		var err error
		if cur, err = w.state(ctx, wr.Type, wr.ID); err != nil {
			return err
		}
		if cur.version != wr.Expected {
			return &store.ConflictError{Type: wr.Type, ID: wr.ID, Expected: wr.Expected, Current: cur.version}
		}
	}
	if w.cache != nil {
		w.touched = append(w.touched, versionKey{wr.Type, wr.ID})
	}
	ms := wr.LastUpdated.UnixMilli()
	var body []byte
	if !wr.Deleted {
		body = wr.JSON
	}
	// A write of no interaction records no method: NULL, as in the
	// versions written before the column was.
	var method any
	if wr.Method != "" {
		method = wr.Method
	}
	res, err := w.insertVersion.ExecContext(ctx, wr.Type, wr.ID, wr.VersionID(), ms, wr.Deleted, body, method)
	if err != nil {
		var serr *sqlitedriver.Error
		if wr.Expected != 0 || !errors.As(err, &serr) || serr.Code() != sqlite3.SQLITE_CONSTRAINT_UNIQUE {
			return err
		}
		if cur, err = w.state(ctx, wr.Type, wr.ID); err != nil {
			return err
		}
		return &store.ConflictError{Type: wr.Type, ID: wr.ID, Expected: wr.Expected, Current: cur.version}
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
	ready    func() error  // when set, w is kept only once it returns nil (see PutGated)
	applied  bool          // w is in the open group, waiting for its commit
	err      error         // the outcome, once answered is closed
	answered chan struct{} // closed once the group holding w has committed
}

func (r *putRequest) answer(err error) {
	r.err = err
	close(r.answered)
}

// lead writes the queued Puts into the writer's group (group.go), in
// batches in arrival order, until req is among them. The caller holds the
// writer, and lets it go with release, which commits the group or hands it
// on; req is answered once the group has committed. lead returns early if
// req has left the queue without being written, which only Close does;
// Close then answers req itself.
//
// This is group commit without a writer goroutine: whoever gets the writer
// writes every Put that queued up while the previous holder had it, in one
// batch inside one savepoint. A lone writer commits its own write on its
// own goroutine with no hand-over; under load, batches and groups grow by
// themselves. Each caller still learns its own outcome, and only after the
// commit. A leader stops once its own write is in: the owners of the
// writes still queued are each waiting for the writer, so one of them takes
// over (an owner whose context ended has taken its write out of the queue,
// or, if a leader took it first, waits for that leader's group; a leader
// skips a write whose owner's context ended before it was written).
func (s *Store) lead(req *putRequest) {
	for !req.applied {
		select {
		case <-req.answered:
			return
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
			return
		}
		s.writeBatch(s.batch)
		clear(s.batch)
	}
}

// writeBatch writes batch into the writer's group. If something other
// than a conflict goes wrong, it retries the writes one by one so that one
// bad write cannot fail the others; a write that fails on its own is
// answered at once, the others when the group commits.
func (s *Store) writeBatch(batch []*putRequest) {
	if err := s.applyBatch(batch); err != nil {
		if len(batch) == 1 {
			batch[0].answer(err)
			return
		}
		for i := range batch {
			s.writeBatch(batch[i : i+1])
		}
		return
	}
	for _, req := range batch {
		req.applied = true
	}
	s.group.puts = append(s.group.puts, batch...)
}

// applyBatch runs batch as one unit of work in the writer's group.
// Statements run under a background context: the transaction is shared,
// so no one caller's cancellation may abort it; a caller that has gone is
// skipped instead.
func (s *Store) applyBatch(batch []*putRequest) error {
	ctx := context.Background()
	if _, err := s.join(ctx); err != nil {
		return err
	}
	var err error
	for _, req := range batch {
		if req.err = req.ctx.Err(); req.err != nil {
			continue
		}
		req.err = s.writer.put(ctx, req.w)
		var conflict *store.ConflictError
		if req.err != nil && !errors.As(req.err, &conflict) {
			err = req.err
			break
		}
	}
	// A gated write refused now fails the batch, which writeBatch then
	// retries write by write: its write alone is left out.
	for _, req := range batch {
		if err != nil {
			break
		}
		if req.ready == nil || req.err != nil {
			continue
		}
		if req.err = req.ready(); req.err != nil {
			err = req.err
		}
	}
	if lerr := s.leave(err == nil); err == nil {
		err = lerr
	}
	return err
}
