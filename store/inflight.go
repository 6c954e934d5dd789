package store

import (
	"sync"
	"time"
)

// InFlight keeps the writes of one process that are under way: begun, so
// stamped with their lastUpdated or about to be, and not yet committed or
// failed. A version's lastUpdated is taken before it commits (a create
// is validated, a transaction Bundle runs all its entries, the audit
// trail waits for a batch), so a reader of history at time t may miss a
// version stamped before t that commits after it; a poll _since t would
// miss it too. Settled tells up to when nothing can still arrive. The
// zero value is ready to use.
type InFlight struct {
	mu    sync.Mutex
	next  uint64
	began map[uint64]time.Time
}

// Begin records a write beginning now, before any of its versions is
// stamped; end, called once the write has committed or failed, forgets
// it. end may be called more than once.
func (f *InFlight) Begin() (end func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.began == nil {
		f.began = make(map[uint64]time.Time)
	}
	f.next++
	key := f.next
	f.began[key] = time.Now()
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.began, key)
	}
}

// Settled returns the time before which every write has committed or
// failed: the beginning of the oldest write of the process under way, or
// now less margin when that is earlier. margin covers the writes of other
// processes sharing the database, which the process does not see: the
// longest one may take from its stamp to its commit. A version stamped
// before the time returned and committed is visible to a read that
// starts after Settled returns, and a write that begins later is stamped
// at or after it.
func (f *InFlight) Settled(margin time.Duration) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	settled := time.Now().Add(-margin)
	for _, t := range f.began {
		if t.Before(settled) {
			settled = t
		}
	}
	return settled
}
