package mongo

import (
	"context"
	"time"
)

// SetHook makes s call hook at the stages of a journaled commit; an error
// from hook stops the commit there, leaving the database as a crash would.
func SetHook(s *Store, hook func(stage string, n int) error) { s.hook = hook }

// Stages of a journaled commit, as SetHook's hook receives them.
const (
	StageJournaled = stageJournaled
	StageCommitted = stageCommitted
	StageApplied   = stageApplied
	StageUndone    = stageUndone
	StageFinished  = stageFinished
)

// StageRecorded is the stage of a journaled commit whose record is written
// and whose writes are not yet.
const StageRecorded = stageRecorded

// StagePurgeFound is when PurgeDeleted has found the tombstones it is to
// remove.
const StagePurgeFound = stagePurgeFound

// WithClock makes a Store tell the time of leases by now: a Store takes a
// unit over once it has seen it unrenewed for a lease by now.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.clock = now } }

// Sweep settles the journaled units s has seen unrenewed for a lease, as
// the sweeper does.
func Sweep(ctx context.Context, s *Store) error { return s.sweep(ctx) }

// Session is what the engine needs of a driver session, for fakes.
type Session = session

// SetSessions makes s run units of work as on a deployment with
// transactions, in the sessions tx starts, and multi-query searches in the
// sessions snapshot starts.
func SetSessions(s *Store, tx, snapshot func() (Session, error)) {
	s.native, s.locking = true, false
	s.sessions, s.snapshots = tx, snapshot
}
