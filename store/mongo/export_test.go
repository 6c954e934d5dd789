package mongo

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
