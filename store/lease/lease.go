// Package lease tells when a record that another process holds in a
// database shared by several processes was left by one that died or
// stalled: once this process has itself seen the record unchanged for a
// lease, by its own clock. The time written in such a record, by its
// writer's clock, is never compared with this process's: the clocks of
// processes sharing a database may be minutes or hours apart, and a
// process whose clock is ahead would take a live record for a dead one.
// It imports nothing of ours.
package lease

import (
	"sync"
	"time"
)

// Watch notes when this process first saw each record held, by id, as a
// value of type V shows it (the record itself, or struct{} when any sight
// of it will do). The zero Watch is ready to use; it is safe for
// concurrent use.
type Watch[V comparable] struct {
	mu   sync.Mutex
	seen map[string]sighting[V]
}

// sighting is how a record was first seen held: as v, at first.
type sighting[V comparable] struct {
	v     V
	first time.Time
}

// Expired reports whether record id, held as v shows it, has been seen
// held unchanged for lease by now: it notes when it first sees id as v,
// and measures from then; a v other than the one noted (a renewal) starts
// the measure again. A process that starts while a dead one's record is
// held thus waits a lease before taking it over, as the others do. Once
// it reports true it forgets id.
func (w *Watch[V]) Expired(id string, v V, now time.Time, lease time.Duration) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if now.Sub(w.since(id, v, now)) < lease {
		return false
	}
	delete(w.seen, id)
	return true
}

// Since returns when this process first saw record id held as v, by its
// own clock: now when it has not seen it so before (or saw it as another
// value, which starts the measure again). A record that expires a lease
// after it is first seen expires at Since plus the lease, by this
// process's clock.
func (w *Watch[V]) Since(id string, v V, now time.Time) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.since(id, v, now)
}

func (w *Watch[V]) since(id string, v V, now time.Time) time.Time {
	seen, ok := w.seen[id]
	if !ok || seen.v != v {
		if w.seen == nil {
			w.seen = map[string]sighting[V]{}
		}
		seen = sighting[V]{v: v, first: now}
		w.seen[id] = seen
	}
	return seen.first
}

// Forget forgets the records for which drop, given the id and when it
// was first seen held, reports true: those no longer held, so that the
// Watch does not grow with every record it ever saw.
func (w *Watch[V]) Forget(drop func(id string, first time.Time) bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, seen := range w.seen {
		if drop(id, seen.first) {
			delete(w.seen, id)
		}
	}
}
