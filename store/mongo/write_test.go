package mongo_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"carefhir/store"
	storemongo "carefhir/store/mongo"
	"carefhir/store/mongo/ferrettest"
)

// Writers in two processes (two Stores on one database) that update one
// resource from the same version at once: exactly one of them writes the
// next version, the others are refused with a *store.ConflictError, and
// history holds each version once, as the current document does.
func TestConditionalUpdateAcrossProcesses(t *testing.T) {
	uri := ferrettest.Start(t)
	stores := []*storemongo.Store{open(t, uri), open(t, uri)}
	ctx := t.Context()
	putAll(t, stores[0], &store.Write{Type: "Patient", ID: "p", LastUpdated: t0, JSON: []byte(`{"n":0}`)})
	const rounds, writers = 20, 8
	for round := 1; round <= rounds; round++ {
		var won atomic.Int64
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				w := &store.Write{Type: "Patient", ID: "p", Expected: int64(round),
					LastUpdated: t0.Add(time.Duration(round) * time.Second), JSON: fmt.Appendf(nil, `{"n":%d,"by":%d}`, round, i)}
				err := stores[i%len(stores)].Put(ctx, w)
				var conflict *store.ConflictError
				switch {
				case err == nil:
					won.Add(1)
				case !errors.As(err, &conflict):
					t.Errorf("round %d, writer %d: %v", round, i, err)
				}
			})
		}
		wg.Wait()
		if n := won.Load(); n != 1 {
			t.Fatalf("round %d: %d writers wrote version %d from version %d, want 1", round, n, round+1, round)
		}
	}
	cur, err := stores[1].Read(ctx, "Patient", "p")
	if err != nil || cur.VersionID != rounds+1 {
		t.Fatalf("Read: %+v, %v; want version %d", cur, err, rounds+1)
	}
	page, err := stores[0].History(ctx, store.HistoryQuery{Type: "Patient", ID: "p", Count: 100})
	if err != nil || len(page.Versions) != rounds+1 || string(page.Versions[0].JSON) != string(cur.JSON) {
		t.Fatalf("History: %d versions, newest %q, %v; want %d, newest %q", len(page.Versions), page.Versions[0].JSON, err, rounds+1, cur.JSON)
	}
}

// Units of work in two processes that each read a counter and write it
// again, one more, all at once: every unit that commits adds one version,
// so no increment is lost however many are refused.
func TestUnitsOfWorkAcrossProcesses(t *testing.T) {
	uri := ferrettest.Start(t)
	stores := []*storemongo.Store{open(t, uri), open(t, uri)}
	ctx := t.Context()
	putAll(t, stores[0], &store.Write{Type: "Patient", ID: "p", LastUpdated: t0, JSON: []byte(`{"n":1}`)})
	var committed atomic.Int64
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			err := stores[i%len(stores)].Transact(ctx, func(tx store.Tx) error {
				v, err := tx.Read(ctx, "Patient", "p")
				if err != nil {
					return err
				}
				return tx.Put(ctx, &store.Write{Type: "Patient", ID: "p", Expected: v.VersionID,
					LastUpdated: t0.Add(time.Duration(v.VersionID) * time.Second), JSON: fmt.Appendf(nil, `{"n":%d}`, v.VersionID+1)})
			})
			var conflict *store.ConflictError
			switch {
			case err == nil:
				committed.Add(1)
			case !errors.As(err, &conflict):
				t.Errorf("unit %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	cur, err := stores[1].Read(ctx, "Patient", "p")
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if n := committed.Load(); cur.VersionID != n+1 {
		t.Errorf("%d units committed an increment, and version %d is current, want %d", n, cur.VersionID, n+1)
	}
}

// Conditional creates of one identifier in two processes at once (a
// search that finds nothing, then a create), on the same criteria or on
// others that match what the first creates: exactly one creates, and
// every other finds its resource.
func TestConditionalCreatesAcrossProcesses(t *testing.T) {
	uri := ferrettest.Start(t)
	raceConditionalCreates(t, []*storemongo.Store{open(t, uri), open(t, uri)}, [][]store.Clause{
		{identifierIs("once")},
		{identifierIs("once"), {Param: "_id", Tokens: []store.TokenMatch{{Code: "none", AnySystem: true}}, Not: true}},
	})
}

// raceConditionalCreates runs 12 conditional creates of a Patient with
// the identifier "once" at once, each in a unit of work, spread over
// stores and criteria, and fails the test unless exactly one Patient has
// the identifier after them.
func raceConditionalCreates(t *testing.T, stores []*storemongo.Store, criteria [][]store.Clause) {
	t.Helper()
	ctx := t.Context()
	var wg sync.WaitGroup
	for n := range 12 {
		wg.Go(func() {
			where := criteria[n/len(stores)%len(criteria)]
			err := stores[n%len(stores)].Transact(ctx, func(tx store.Tx) error {
				found, err := tx.Search(ctx, store.Query{Type: "Patient", Count: 2, Where: where})
				if err != nil || len(found) > 0 {
					return err
				}
				return tx.Put(ctx, patient(fmt.Sprintf("c%d", n), 0, n, "once"))
			})
			if err != nil {
				t.Errorf("writer %d: %v", n, err)
			}
		})
	}
	wg.Wait()
	found, err := stores[0].Search(ctx, store.Query{Type: "Patient", Where: []store.Clause{identifierIs("once")}})
	if err != nil || len(found) != 1 {
		t.Errorf("%d Patients with the identifier after racing conditional creates (%v), want 1", len(found), err)
	}
}

// cutAfter is an Observer that cancels a write once the command op has
// succeeded n times after it is armed: the next command fails, as if the
// process had died between the two.
type cutAfter struct {
	mu     sync.Mutex
	op     string
	n      int
	cancel context.CancelFunc
}

func (c *cutAfter) arm(op string, n int, cancel context.CancelFunc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.op, c.n, c.cancel = op, n, cancel
}

func (c *cutAfter) Operation(op string, _ time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel == nil || op != c.op {
		return
	}
	if c.n--; c.n == 0 {
		c.cancel()
		c.cancel = nil
	}
}

// historyOf returns the bodies of the versions of Patient/p in history,
// newest first.
func historyOf(t *testing.T, s store.Reader, q store.HistoryQuery) []string {
	t.Helper()
	q.Type, q.ID, q.Count = "Patient", "p", 10
	page, err := s.History(t.Context(), q)
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	var got []string
	for _, v := range page.Versions {
		got = append(got, string(v.JSON))
	}
	return got
}

// cutUpdate writes version 1 of Patient/p to a new database, then version
// 2, cut short once the command op has succeeded, and returns what Put
// said of version 2.
func cutUpdate(t *testing.T, op string) (string, *storemongo.Store, error) {
	uri := ferrettest.Start(t)
	cut := &cutAfter{}
	s := open(t, uri, storemongo.WithObserver(cut))
	putAll(t, s, &store.Write{Type: "Patient", ID: "p", LastUpdated: t0, JSON: []byte(`{"v":1}`)})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cut.arm(op, 1, cancel)
	w2 := &store.Write{Type: "Patient", ID: "p", Expected: 1, LastUpdated: t0.Add(time.Second), JSON: []byte(`{"v":2}`)}
	return uri, s, s.Put(ctx, w2)
}

// A write cut short once its current version is written, and before
// anything else: the version it made current is in history, the version it
// replaced is known to have ended once a process has settled what the
// write left, and the resource takes the next update.
func TestWriteCutAfterCurrent(t *testing.T) {
	uri, s, err := cutUpdate(t, "findAndModify")
	if err == nil {
		t.Fatal("Put cut short: no error")
	}
	if v, err := s.Read(t.Context(), "Patient", "p"); err != nil || v.VersionID != 2 {
		t.Fatalf("Read: %+v, %v; want version 2, made current before the cut", v, err)
	}
	if got, want := historyOf(t, s, store.HistoryQuery{}), []string{`{"v":2}`, `{"v":1}`}; !slices.Equal(got, want) {
		t.Fatalf("history after the cut %q, want %q", got, want)
	}
	settled := reopen(t, uri)
	if got := historyOf(t, settled, store.HistoryQuery{AtLow: t0.Add(1500 * time.Millisecond)}); !slices.Equal(got, []string{`{"v":2}`}) {
		t.Errorf("history current after version 2 was written: %q, want version 2 alone", got)
	}
	putAll(t, s, &store.Write{Type: "Patient", ID: "p", Expected: 2, LastUpdated: t0.Add(2 * time.Second), JSON: []byte(`{"v":3}`)})
	if got, want := historyOf(t, s, store.HistoryQuery{}), []string{`{"v":3}`, `{"v":2}`, `{"v":1}`}; !slices.Equal(got, want) {
		t.Errorf("history after the next update %q, want %q", got, want)
	}
}

// A write cut short after its first command: whatever it left, once a
// process has settled it, history and the current version agree, and the
// resource takes the next update from the version current.
func TestWriteCutBeforeCurrent(t *testing.T) {
	// Cut short: either outcome is allowed, as the writer was never answered.
	uri, s, _ := cutUpdate(t, "insert")
	settled := reopen(t, uri)
	v, err := settled.Read(t.Context(), "Patient", "p")
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	want := []string{`{"v":2}`, `{"v":1}`}[2-v.VersionID:]
	if got := historyOf(t, settled, store.HistoryQuery{}); !slices.Equal(got, want) {
		t.Fatalf("history with version %d current: %q, want %q", v.VersionID, got, want)
	}
	putAll(t, s, &store.Write{Type: "Patient", ID: "p", Expected: v.VersionID, LastUpdated: t0.Add(2 * time.Second), JSON: []byte(`{"v":3}`)})
	if got := historyOf(t, s, store.HistoryQuery{}); len(got) != len(want)+1 || got[0] != `{"v":3}` {
		t.Errorf("history after the next update %q", got)
	}
}

// A write cut short once it has claimed its version, before that version
// is made current: the claim is the commit point, so history and vread
// show the version from then on while the current version is still the
// one it replaces; every update of the resource is refused as a conflict
// until a process that has seen the claim pending for a lease settles it,
// making it current.
func TestWriteCutAfterClaim(t *testing.T) {
	uri, s, err := cutUpdate(t, "insert")
	if err == nil {
		t.Fatal("Put cut short: no error")
	}
	ctx := t.Context()
	if v, err := s.Read(ctx, "Patient", "p"); err != nil || v.VersionID != 1 {
		t.Fatalf("Read: %+v, %v; want version 1, the cut coming before version 2 was made current", v, err)
	}
	if v, err := s.VRead(ctx, "Patient", "p", 2); err != nil || string(v.JSON) != `{"v":2}` {
		t.Fatalf("VRead version 2: %+v, %v; want the version claimed", v, err)
	}
	if got, want := historyOf(t, s, store.HistoryQuery{}), []string{`{"v":2}`, `{"v":1}`}; !slices.Equal(got, want) {
		t.Fatalf("history after the cut %q, want %q", got, want)
	}
	for _, expected := range []int64{1, 2} {
		err := s.Put(ctx, &store.Write{Type: "Patient", ID: "p", Expected: expected, LastUpdated: t0.Add(2 * time.Second), JSON: []byte(`{"v":3}`)})
		var conflict *store.ConflictError
		if !errors.As(err, &conflict) {
			t.Fatalf("update from version %d before the claim is settled: %v, want a conflict", expected, err)
		}
		// From version 1, still current, the refusal is the pending
		// version 2's; from version 2, not current yet, it is not.
		if conflict.Pending != (expected == 1) {
			t.Errorf("update from version %d: conflict %+v, want Pending %v", expected, conflict, expected == 1)
		}
	}
	settled := reopen(t, uri)
	if v, err := settled.Read(ctx, "Patient", "p"); err != nil || string(v.JSON) != `{"v":2}` {
		t.Fatalf("Read once settled: %+v, %v; want version 2", v, err)
	}
	putAll(t, s, &store.Write{Type: "Patient", ID: "p", Expected: 2, LastUpdated: t0.Add(2 * time.Second), JSON: []byte(`{"v":3}`)})
	if got, want := historyOf(t, s, store.HistoryQuery{}), []string{`{"v":3}`, `{"v":2}`, `{"v":1}`}; !slices.Equal(got, want) {
		t.Errorf("history after the next update %q, want %q", got, want)
	}
}

// leavePending leaves two writes on the database at uri cut short once
// they have inserted their versions into history: the create of
// Patient/p, and the update of Patient/q from version 1. It returns a
// write of each resource that those pending versions refuse.
func leavePending(t *testing.T, uri string) []*store.Write {
	cut := &cutAfter{}
	s := open(t, uri, storemongo.WithObserver(cut))
	putAll(t, s, &store.Write{Type: "Patient", ID: "q", LastUpdated: t0, JSON: []byte(`{"v":1}`)})
	for _, w := range []*store.Write{
		{Type: "Patient", ID: "p", LastUpdated: t0, JSON: []byte(`{"v":1}`)},
		{Type: "Patient", ID: "q", Expected: 1, LastUpdated: t0.Add(time.Second), JSON: []byte(`{"v":2}`)},
	} {
		ctx, cancel := context.WithCancel(t.Context())
		cut.arm("insert", 1, cancel)
		if err := s.Put(ctx, w); err == nil {
			t.Fatalf("Put of %s/%s cut short: no error", w.Type, w.ID)
		}
		cancel()
	}
	return []*store.Write{
		{Type: "Patient", ID: "p", LastUpdated: t0.Add(time.Second), JSON: []byte(`{"v":"again"}`)},
		{Type: "Patient", ID: "q", Expected: 1, LastUpdated: t0.Add(2 * time.Second), JSON: []byte(`{"v":3}`)},
	}
}

// A create meeting the first version of its resource pending, as an
// update meeting the next, is refused as a pending conflict (409 with
// Retry-After over HTTP), alone or in a unit of work, where it was a
// conflict with version 0 said to be current, telling the client to retry
// with a version that does not exist.
func TestWriteMeetsPendingVersion(t *testing.T) {
	uri := ferrettest.Start(t)
	writes := leavePending(t, uri)
	s := open(t, uri)
	for _, w := range writes {
		for how, write := range map[string]func() error{
			"Put": func() error { return s.Put(t.Context(), w) },
			"Transact": func() error {
				return s.Transact(t.Context(), func(tx store.Tx) error { return tx.Put(t.Context(), w) })
			},
		} {
			err := write()
			var conflict *store.ConflictError
			if !errors.As(err, &conflict) || !conflict.Pending || conflict.Current != w.Expected {
				t.Errorf("%s of %s/%s from version %d with version %d pending: %v, want a pending conflict",
					how, w.Type, w.ID, w.Expected, w.VersionID(), err)
			}
		}
	}
}

// A unit of work whose search finds nothing because of its own writes (it
// deleted the one resource that matched) commits: the resources it
// writes are not another unit's.
func TestUnitSearchingWhatItDeletes(t *testing.T) {
	s := open(t, ferrettest.Start(t))
	ctx := t.Context()
	putAll(t, s, &store.Write{Type: "Patient", ID: "p", LastUpdated: t0, JSON: []byte(`{"v":1}`)})
	err := s.Transact(ctx, func(tx store.Tx) error {
		if err := tx.Put(ctx, &store.Write{Type: "Patient", ID: "p", Expected: 1, LastUpdated: t0.Add(time.Second), Deleted: true}); err != nil {
			return err
		}
		found, err := tx.Search(ctx, store.Query{Type: "Patient"})
		if err != nil || len(found) > 0 {
			return fmt.Errorf("search after deleting: %d found, %v", len(found), err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Transact: %v", err)
	}
	if v, err := s.Read(ctx, "Patient", "p"); err != nil || !v.Deleted {
		t.Errorf("Read: %+v, %v; want the deletion", v, err)
	}
}

// TestPurgeRacingCreate checks that a resource found deleted by
// PurgeDeleted, then created again by another process before it is
// removed, is kept whole: its new version current, and in history.
func TestPurgeRacingCreate(t *testing.T) {
	ctx := context.Background()
	uri := ferrettest.Start(t)
	purger, writer := open(t, uri), open(t, uri)
	old := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	body := `{"resourceType":"Patient","id":"p1"}`
	for _, w := range []*store.Write{
		{Type: "Patient", ID: "p1", LastUpdated: old, JSON: []byte(body)},
		{Type: "Patient", ID: "p1", Expected: 1, LastUpdated: old, Deleted: true},
		{Type: "Patient", ID: "p2", LastUpdated: old, JSON: []byte(`{"resourceType":"Patient","id":"p2"}`)},
		{Type: "Patient", ID: "p2", Expected: 1, LastUpdated: old, Deleted: true},
	} {
		if err := writer.Put(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	storemongo.SetHook(purger, func(stage string, n int) error {
		if stage == storemongo.StagePurgeFound {
			return writer.Put(ctx, &store.Write{Type: "Patient", ID: "p1", Expected: 2, LastUpdated: time.Now().UTC().Truncate(time.Millisecond), JSON: []byte(body)})
		}
		return nil
	})
	n, err := purger.PurgeDeleted(ctx, "Patient", time.Now(), 10)
	if err != nil || n != 1 {
		t.Fatalf("PurgeDeleted = %d, %v, want 1 (p2)", n, err)
	}
	v, err := writer.Read(ctx, "Patient", "p1")
	if err != nil || v.VersionID != 3 || v.Deleted {
		t.Fatalf("p1 created again while purged: %+v, %v", v, err)
	}
	h, err := writer.History(ctx, store.HistoryQuery{Type: "Patient", ID: "p1", Count: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Versions) != 1 || h.Versions[0].VersionID != 3 {
		t.Errorf("history of p1: %d versions, want version 3 alone", len(h.Versions))
	}
	if _, err := writer.Read(ctx, "Patient", "p2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("p2, purged: %v, want not found", err)
	}
}
