package sqlite

import (
	"context"
	"fmt"
)

// Group commit across units of work.
//
// With synchronous=FULL a commit waits for an fsync, which takes
// milliseconds on a real disk. Batching concurrent Puts shares it between
// them, but a unit of work (Transact, which the server uses for every write
// that runs hooks) would still commit on its own, one fsync each, one after
// another. So the writer keeps its SQLite transaction open across units:
// each unit (a Transact, or a batch of Puts) runs inside a savepoint of the
// open transaction, the group, and when it ends, the holder of the writer
// either commits the group, if no one else is waiting for the writer, or
// hands the writer on with the group still open, so that the next unit
// joins it and one commit (one fsync) covers them all. Every unit of a
// group learns its outcome only after the group's COMMIT has returned, so
// nothing is acknowledged before it is durable; a unit that fails is rolled
// back to its savepoint and leaves the others in the group as they were.
//
// A group left open is always committed: the committer goroutine is told
// whenever the writer is handed on with a group open, and takes its turn
// for the writer behind whoever was waiting; Close commits the group it
// finds open.

// maxGroupUnits bounds the units of work in one group, and so the time the
// first of them waits for its commit.
const maxGroupUnits = 64

// group is the writer's open SQLite transaction and what waits for its
// commit. It is used by the holder of the writer only, until done is
// closed.
type group struct {
	units  int           // units of work that have succeeded in it
	puts   []*putRequest // Puts in those units, answered at the commit
	writes int           // versions the Transacts among those units wrote
	err    error         // the commit's error, once done is closed
	done   chan struct{} // closed once the group has committed or failed
	// bare is true while the unit that began the group runs: it has no
	// savepoint, as rolling it back is rolling back the whole group.
	bare bool
}

// join opens a unit of work in the writer's group, beginning the group if
// none is open. The caller holds the writer.
//
// The unit that begins a group runs without a savepoint. While a savepoint
// is open, SQLite copies every page a write changes for the first time into
// a journal held in memory, so that the page can be put back, allocating
// and freeing that memory for each unit: on a lone writer (the audit trail,
// a single client) that copying was about half the CPU of a write. The first
// unit needs none, since nothing else in the group can be lost with it.
func (s *Store) join(ctx context.Context) (*group, error) {
	if s.group == nil {
		if _, err := s.writer.begin.ExecContext(ctx); err != nil {
			return nil, fmt.Errorf("begin: %w", err)
		}
		s.group = &group{done: make(chan struct{}), bare: true}
		return s.group, nil
	}
	if _, err := s.writer.savepoint.ExecContext(context.Background()); err != nil {
		err = fmt.Errorf("savepoint: %w", err)
		s.failGroup(err)
		return nil, err
	}
	return s.group, nil
}

// leave ends the caller's unit of work in the group: it keeps it if ok,
// and rolls it back otherwise. If the unit cannot be kept (the search rows
// it held back cannot be inserted), it is rolled back, and leave returns
// why. If the unit cannot be ended (SQLite has rolled the whole
// transaction back after an I/O error, say), the group fails, and leave
// returns that error. The caller holds the writer.
func (s *Store) leave(ok bool) error {
	g := s.group
	if g == nil {
		s.writer.index.discard()
		return nil // the group has failed already
	}
	var flushErr error
	if ok {
		if flushErr = s.writer.index.flush(context.Background()); flushErr != nil {
			flushErr = fmt.Errorf("insert search rows: %w", flushErr)
			ok = false
		}
	}
	if !ok {
		s.writer.index.discard()
	}
	if g.bare {
		g.bare = false
		if ok {
			g.units++
			return nil
		}
		// The unit began the group: roll the group back with it. Nothing
		// waits for it (no other unit has joined), and the next unit
		// begins a group of its own.
		s.group = nil
		s.writer.rollback()
		close(g.done)
		return flushErr
	}
	if ok {
		if _, err := s.writer.releaseSavepoint.ExecContext(context.Background()); err != nil {
			err = fmt.Errorf("release savepoint: %w", err)
			s.failGroup(err)
			return err
		}
		g.units++
		return nil
	}
	_, err := s.writer.rollbackToSavepoint.ExecContext(context.Background())
	if err == nil {
		_, err = s.writer.releaseSavepoint.ExecContext(context.Background())
	}
	// The unit may have added search parameters that are now undone.
	s.writer.index.params.forgetUnit()
	if err != nil {
		err = fmt.Errorf("roll back unit of work: %w", err)
		s.failGroup(err)
		return err
	}
	return flushErr
}

// release lets the writer go. It commits the open group unless another
// writer is waiting to join it (and it is not full, and group commit is
// on), in which case the committer is told, and returns the group, which
// the caller's unit, if it joined one, waits for. The caller holds the
// writer.
func (s *Store) release() *group {
	g := s.group
	switch {
	case g == nil:
	case g.units == 0 && len(g.puts) == 0:
		// Nothing to commit.
		s.writer.rollback()
		s.group = nil
		close(g.done)
	case s.maxBatch > 1 && s.waiting.Load() > 0 && g.units < maxGroupUnits:
		select {
		case s.groupOpen <- struct{}{}:
		default:
		}
	default:
		s.commitGroup()
	}
	<-s.writerHeld
	return g
}

// commitGroup commits the open group and answers everything waiting for
// it. The caller holds the writer.
func (s *Store) commitGroup() {
	g := s.group
	if g == nil {
		return
	}
	s.group = nil
	// Not cancelled by any one caller's context: the group is shared.
	if err := s.writer.commit(context.Background()); err != nil {
		s.writer.rollback()
		g.err = fmt.Errorf("commit: %w", err)
	} else {
		if n := len(g.puts) + g.writes; n > 0 {
			s.obs.Commit(n)
		}
		s.notifyCommit()
	}
	s.finishGroup(g)
}

// failGroup rolls the open group back and fails everything in it. The
// caller holds the writer.
func (s *Store) failGroup(err error) {
	g := s.group
	if g == nil {
		return
	}
	s.group = nil
	s.writer.rollback()
	g.err = err
	s.finishGroup(g)
}

func (s *Store) finishGroup(g *group) {
	for _, req := range g.puts {
		if req.err == nil {
			req.err = g.err
		}
		req.answer(req.err)
	}
	close(g.done)
}

// commits is the committer goroutine: it commits a group the writer was
// handed on with, once it gets its turn, unless a holder before it has.
func (s *Store) commits() {
	defer close(s.commitDone)
	for {
		select {
		case <-s.quit:
			return
		case <-s.groupOpen:
		}
		select {
		case <-s.quit:
			return
		case s.writerHeld <- struct{}{}:
		}
		s.commitGroup()
		<-s.writerHeld
	}
}

// awaitWriter takes the writer, counted as waiting meanwhile so that the
// holder leaves its group open for this caller to join. It fails if ctx
// ends or the store closes first.
func (s *Store) awaitWriter(ctx context.Context) error {
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	select {
	case s.writerHeld <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.quit:
		return errClosed
	}
}
