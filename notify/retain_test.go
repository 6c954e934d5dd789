package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"carefhir/notify"
	"carefhir/store"
)

// versionsOf returns how many versions of records of typ the engine holds,
// tombstones included.
func versionsOf(t *testing.T, st store.Store, typ string) int {
	t.Helper()
	h, err := st.History(context.Background(), store.HistoryQuery{Type: typ, Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	return h.Total
}

// stored reports whether the engine holds record typ/id.
func stored(t *testing.T, st store.Store, typ, id string) bool {
	t.Helper()
	_, err := st.Read(context.Background(), typ, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// TestPurge: a purge pass removes the outbox rows delivered and the
// claims released once older than the lease, the events $events no
// longer serves (older than KeepEvents beyond the latest KeepLastEvents),
// and all that is recorded for a deleted Subscription; a row still to
// deliver, the events kept and a live subscription's records stay, and
// $events still serves the events kept.
func TestPurge(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		st := eng.open(t, eng.place(t))
		e := newEnv(t, st, map[string]map[string]any{}, func(c *notify.Config) {
			c.KeepEvents, c.KeepLastEvents = time.Hour, 2
		})
		purge := func() {
			t.Helper()
			if _, err := e.n.Purge(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		rx, failing := newReceiver(t), newReceiver(t)
		topic := func() string {
			return idOf(t, e.do("admin", "POST", "/Subscription", topicSubscription("appointment-booked", "", rx.URL+"/hook", "id-only", 0)))
		}
		kept, deleted := topic(), topic()
		plain := idOf(t, e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", failing.URL+"/hook", "")))
		e.deliver()
		for range 4 {
			e.do("admin", "POST", "/Appointment", appointment("p1", "booked"))
		}
		e.deliver()
		e.clock.Advance(2 * time.Hour)
		failing.setStatus(503)
		last := idOf(t, e.do("admin", "POST", "/Appointment", appointment("p1", "booked")))
		e.deliver()
		rx.take()

		purge()
		// Events 1 to 3 are older than an hour and not among the latest 2.
		evs := readNotification(t, e.do("admin", "GET", "/Subscription/"+kept+"/$events", "").body)
		if evs.Since != "5" || len(evs.Events) != 2 || evs.Events[1] != "5:"+last {
			t.Errorf("$events after the purge: %+v, want events 4 and 5 of 5", evs)
		}
		if n := versionsOf(t, st, "NotifyEvent"); n != 4 {
			t.Errorf("%d events kept, want 4 (2 of each topic subscription)", n)
		}
		// The counters, written at each of the 5 events, keep their
		// current version alone.
		if n := versionsOf(t, st, "NotifyCounter"); n != 2 {
			t.Errorf("%d counter versions kept, want 2 (one of each topic subscription)", n)
		}
		// The rows delivered before the last write are gone; the last
		// write's, delivered within the lease or failing, stay.
		if n := versionsOf(t, st, "NotifyOutbox"); n != 6 {
			t.Errorf("%d outbox row versions kept, want 6 (of two rows delivered and one failing, 2 each)", n)
		}
		if n, err := e.n.Backlog(context.Background()); err != nil || n != 1 {
			t.Errorf("backlog %d, %v: the failing row must stay", n, err)
		}

		if r := e.do("admin", "DELETE", "/Subscription/"+deleted, ""); r.status != 200 && r.status != 204 {
			t.Fatalf("delete: %d %s", r.status, r.body)
		}
		e.clock.Advance(2 * time.Minute)
		failing.setStatus(200)
		e.deliver()
		purge()
		if n := versionsOf(t, st, "NotifyEvent"); n != 2 {
			t.Errorf("%d events kept, want the 2 of the live subscription", n)
		}
		for _, typ := range []string{"NotifyCounter", "NotifyOwner"} {
			if stored(t, st, typ, deleted) {
				t.Errorf("%s of the deleted subscription kept", typ)
			}
		}
		for _, id := range []string{kept, plain} {
			if !stored(t, st, "NotifyOwner", id) {
				t.Errorf("owner of live subscription %s purged", id)
			}
		}
		if !stored(t, st, "NotifyCounter", kept) {
			t.Errorf("counter of live subscription %s purged", kept)
		}

		e.clock.Advance(2 * time.Minute)
		purge()
		for _, typ := range []string{"NotifyOutbox", "NotifyClaim"} {
			if n := versionsOf(t, st, typ); n != 0 {
				t.Errorf("%d versions of %s kept once all are delivered, want none", n, typ)
			}
		}
		evs = readNotification(t, e.do("admin", "GET", "/Subscription/"+kept+"/$events", "").body)
		if len(evs.Events) != 2 || evs.Events[1] != "5:"+last {
			t.Errorf("$events at the end: %+v, want events 4 and 5", evs)
		}
	})
}

// TestEventsFromOldestKept: once older events are purged, $events answers
// from the oldest event kept, not with the 100 numbers after
// eventsSinceNumber, all purged; a range wholly purged is empty.
func TestEventsFromOldestKept(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{}, func(c *notify.Config) {
			c.KeepEvents, c.KeepLastEvents = time.Hour, 2
		})
		rx := newReceiver(t)
		sub := idOf(t, e.do("admin", "POST", "/Subscription", topicSubscription("appointment-booked", "", rx.URL+"/hook", "id-only", 0)))
		e.deliver()
		var entries []string
		for range 103 {
			entries = append(entries, `{"resource":`+appointment("p1", "booked")+`,"request":{"method":"POST","url":"Appointment"}}`)
		}
		if r := e.do("admin", "POST", "", `{"resourceType":"Bundle","type":"transaction","entry":[`+strings.Join(entries, ",")+`]}`); r.status != 200 {
			t.Fatalf("transaction: %d %s", r.status, r.body)
		}
		e.deliver()
		e.clock.Advance(2 * time.Hour)
		if _, err := e.n.Purge(context.Background()); err != nil {
			t.Fatal(err)
		}
		evs := readNotification(t, e.do("admin", "GET", "/Subscription/"+sub+"/$events", "").body)
		if evs.Since != "103" || len(evs.Events) != 2 || !strings.HasPrefix(evs.Events[0], "102:") || !strings.HasPrefix(evs.Events[1], "103:") {
			t.Errorf("$events: since %s, events %v, want 102 and 103 of 103", evs.Since, evs.Events)
		}
		evs = readNotification(t, e.do("admin", "GET", "/Subscription/"+sub+"/$events?eventsSinceNumber=50&eventsUntilNumber=60", "").body)
		if len(evs.Events) != 0 {
			t.Errorf("$events of purged numbers: %v, want none", evs.Events)
		}
	})
}

// TestTwoProcessesPurge: two servers on one MongoDB database deliver and
// purge at once, each purging what the other delivered in the rounds
// before: each notification is still delivered once, in order, the purges
// fail nothing, and in the end nothing of the outbox or its claims is
// left.
func TestTwoProcessesPurge(t *testing.T) {
	eng := engines[1]
	uri := eng.place(t)
	st := eng.open(t, uri)
	a := newEnv(t, st, map[string]map[string]any{}, func(c *notify.Config) { c.Holder = "a" })
	b := newEnv(t, eng.open(t, uri), map[string]map[string]any{}, func(c *notify.Config) { c.Holder = "b" })
	rx := newReceiver(t)
	a.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/hook", "application/fhir+json"))
	var ids []string
	for range 20 {
		ids = append(ids, idOf(t, a.do("admin", "POST", "/Appointment", appointment("p1", "booked"))))
	}
	for range 3 {
		var wg sync.WaitGroup
		for _, e := range []*env{a, b} {
			wg.Go(func() {
				if err := e.n.DeliverPending(context.Background()); err != nil {
					t.Error(err)
				}
			})
			wg.Go(func() {
				if _, err := e.n.Purge(context.Background()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		a.clock.Advance(2 * time.Minute)
		b.clock.Advance(2 * time.Minute)
	}
	var paths []string
	for _, g := range rx.take() {
		paths = append(paths, g.Path)
	}
	want := []string{"/hook"}
	for _, id := range ids {
		want = append(want, "/hook/Appointment/"+id)
	}
	if strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Errorf("deliveries:\n got %v\nwant %v (each once, in order)", paths, want)
	}
	for _, e := range []*env{a, b} {
		if _, err := e.n.Purge(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for _, typ := range []string{"NotifyOutbox", "NotifyClaim"} {
		if n := versionsOf(t, st, typ); n != 0 {
			t.Errorf("%d versions of %s left, want none", n, typ)
		}
	}
}

// TestPurgeReportsMore: a pass removes at most PurgeBatch records of a
// kind and says when it stopped there, so that the deliverer makes the
// next pass at once rather than a minute later; the last pass, which
// removes what is left, says it is done.
func TestPurgeReportsMore(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		st := eng.open(t, eng.place(t))
		e := newEnv(t, st, map[string]map[string]any{}, func(c *notify.Config) { c.PurgeBatch = 3 })
		rx := newReceiver(t)
		e.do("admin", "POST", "/Subscription", subscription("Appointment?status=booked", rx.URL+"/hook", ""))
		for range 7 {
			e.do("admin", "POST", "/Appointment", appointment("p1", "booked"))
		}
		e.deliver()
		e.clock.Advance(2 * time.Minute)
		for i, want := range []struct {
			more bool
			left int
		}{{true, 10}, {true, 4}, {false, 0}} { // 8 rows of 2 versions
			more, err := e.n.Purge(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if left := versionsOf(t, st, "NotifyOutbox"); more != want.more || left != want.left {
				t.Errorf("pass %d: more %v, %d versions left; want %v, %d", i+1, more, left, want.more, want.left)
			}
		}
	})
}

// TestPurgeOwnersGates: the versions an owner's gate gains as it makes
// Subscriptions live are removed once the gate has been left alone for a
// lease, and the owner's limit still holds after.
func TestPurgeOwnersGates(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		st := eng.open(t, eng.place(t))
		e := newEnv(t, st, map[string]map[string]any{}, func(c *notify.Config) { c.MaxPerOwner = 4 })
		sub := subscription("Appointment?status=booked", "https://rx.test/hook", "")
		for range 3 {
			idOf(t, e.do("admin", "POST", "/Subscription", sub))
		}
		if n := versionsOf(t, st, "NotifyOwnerGate"); n != 3 {
			t.Fatalf("%d versions of the owner's gate, want 3", n)
		}
		for range 2 { // seen, then seen unchanged a lease later
			if _, err := e.n.Purge(context.Background()); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(time.Minute + time.Second)
		}
		if n := versionsOf(t, st, "NotifyOwnerGate"); n != 0 {
			t.Errorf("%d versions of the owner's gate kept once left alone for a lease, want none", n)
		}
		idOf(t, e.do("admin", "POST", "/Subscription", sub))
		if r := e.do("admin", "POST", "/Subscription", sub); r.status != 422 || !strings.Contains(r.body, "too-costly") {
			t.Errorf("a 5th live Subscription once the gate was purged: %d %s, want 422 too-costly", r.status, r.body)
		}
	})
}

// TestOwnerRecordedBeforeIndexed: the owner record of a live Subscription
// written before owner records were indexed is indexed by a purge pass,
// and from then on counts towards its owner's limit.
func TestOwnerRecordedBeforeIndexed(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng engine) {
		st := eng.open(t, eng.place(t))
		e := newEnv(t, st, map[string]map[string]any{}, func(c *notify.Config) { c.MaxPerOwner = 1 })
		sub := subscription("Appointment?status=booked", "https://rx.test/hook", "")
		id := idOf(t, e.do("admin", "POST", "/Subscription", sub))
		// As an earlier version of carefhir recorded it: no party, not
		// indexed.
		v, err := st.Read(context.Background(), "NotifyOwner", id)
		if err != nil {
			t.Fatal(err)
		}
		var old map[string]any
		if err := json.Unmarshal(v.JSON, &old); err != nil {
			t.Fatal(err)
		}
		delete(old, "party")
		delete(old, "live")
		body, _ := json.Marshal(old)
		if err := st.Put(context.Background(), &store.Write{Type: "NotifyOwner", ID: id, Expected: v.VersionID, LastUpdated: time.Now().UTC().Truncate(time.Millisecond), JSON: body}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.n.Purge(context.Background()); err != nil {
			t.Fatal(err)
		}
		if r := e.do("admin", "POST", "/Subscription", sub); r.status != 422 || !strings.Contains(r.body, "too-costly") {
			t.Errorf("a 2nd live Subscription beside one whose owner was recorded before: %d %s, want 422 too-costly", r.status, r.body)
		}
	})
}
