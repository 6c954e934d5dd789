package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"carefhir/store"
	"carefhir/store/sqlite"
)

// TestReadsSeeEveryCommit checks, through the ways a version changes, that
// a read after a write has been acknowledged finds that write, and a read
// after a unit of work failed finds what was there before it, however
// often the resource was read in between.
func TestReadsSeeEveryCommit(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, t.TempDir(), sqlite.Options{})
	defer s.Close()
	body := func(v int) string { return fmt.Sprintf(`{"resourceType":"Patient","id":"p1","gender":"v%d"}`, v) }
	want := func(step string, version int64, deleted bool, json string) {
		t.Helper()
		for range 2 { // the first read may fill a cache, the second find it there
			v, err := s.Read(ctx, "Patient", "p1")
			if err != nil {
				t.Fatalf("%s: %v", step, err)
			}
			if v.VersionID != version || v.Deleted != deleted || string(v.JSON) != json {
				t.Fatalf("%s: read version %d (deleted %v) %s, want %d (deleted %v) %s", step, v.VersionID, v.Deleted, v.JSON, version, deleted, json)
			}
			// A caller that changes what it was given changes nothing stored.
			for i := range v.JSON {
				v.JSON[i] = 'x'
			}
		}
	}

	if err := s.Put(ctx, patient("p1", 0, body(1))); err != nil {
		t.Fatal(err)
	}
	want("create", 1, false, body(1))

	if err := s.Put(ctx, patient("p1", 1, body(2))); err != nil {
		t.Fatal(err)
	}
	want("update by Put", 2, false, body(2))

	if err := s.Transact(ctx, func(tx store.Tx) error { return tx.Put(ctx, patient("p1", 2, body(3))) }); err != nil {
		t.Fatal(err)
	}
	want("update in a unit of work", 3, false, body(3))

	failed := errors.New("refused")
	err := s.Transact(ctx, func(tx store.Tx) error {
		if err := tx.Put(ctx, patient("p1", 3, body(4))); err != nil {
			return err
		}
		// Inside the unit, its own write is what a read finds.
		if v, err := tx.Read(ctx, "Patient", "p1"); err != nil || v.VersionID != 4 {
			t.Errorf("read inside the unit: %v, %v", v, err)
		}
		return failed
	})
	if !errors.Is(err, failed) {
		t.Fatalf("failed unit: %v", err)
	}
	want("unit of work rolled back", 3, false, body(3))

	del := patient("p1", 3, "")
	del.Deleted = true
	if err := s.Put(ctx, del); err != nil {
		t.Fatal(err)
	}
	want("delete", 4, true, "")

	if err := s.Put(ctx, patient("p1", 4, body(5))); err != nil {
		t.Fatal(err)
	}
	want("recreate", 5, false, body(5))
}

// TestReadsUnderConcurrentWrites checks that no read returns a version
// older than one whose write was acknowledged before the read began,
// while writers update resources that readers read over and over.
func TestReadsUnderConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, t.TempDir(), sqlite.Options{})
	defer s.Close()
	const resources, updates = 4, 150
	acked := make([]atomic.Int64, resources)
	for i := range resources {
		if err := s.Put(ctx, patient(fmt.Sprint("p", i), 0, `{"resourceType":"Patient"}`)); err != nil {
			t.Fatal(err)
		}
		acked[i].Store(1)
	}
	var writers, readers sync.WaitGroup
	done := make(chan struct{})
	var stale atomic.Int64
	var reads atomic.Int64
	updateEach(t, s, &writers, acked, updates)
	for r := range 4 {
		readers.Go(func() {
			for n := r; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				i := n % resources
				min := acked[i].Load()
				v, err := s.Read(ctx, "Patient", fmt.Sprint("p", i))
				if err != nil {
					t.Error(err)
					return
				}
				reads.Add(1)
				if v.VersionID < min {
					if stale.Add(1) <= 3 {
						t.Errorf("p%d: read version %d after version %d was acknowledged", i, v.VersionID, min)
					}
				}
			}
		})
	}
	writers.Wait()
	close(done)
	readers.Wait()
	if n := stale.Load(); n > 0 {
		t.Errorf("%d of %d reads found a version older than an acknowledged one", n, reads.Load())
	}
	for i := range resources {
		if v, err := s.Read(ctx, "Patient", fmt.Sprint("p", i)); err != nil || v.VersionID != updates+1 {
			t.Errorf("p%d at the end: %v, %v", i, v, err)
		}
	}
}

// TestSearchesSeeEveryCommit checks that a search repeated after a write
// has been acknowledged finds that write, whether the write changed a
// match or only a resource a match includes, and that a unit of work that
// failed leaves what a search finds as it was.
func TestSearchesSeeEveryCommit(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, t.TempDir(), sqlite.Options{})
	defer s.Close()
	observation := func(id string) *store.Write {
		return &store.Write{Type: "Observation", ID: id, JSON: []byte(`{"resourceType":"Observation","id":"` + id + `"}`),
			LastUpdated: time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC),
			Index:       store.Index{References: []store.Reference{{Param: "subject", Type: "Patient", ID: "p1"}}}}
	}
	byIdentifier := store.Query{Type: "Patient", Count: 10, Total: store.TotalAccurate,
		Where: []store.Clause{{Param: "identifier", Tokens: []store.TokenMatch{{System: "s", Code: "p1"}, {System: "s", Code: "p2"}}}}}
	withSubject := store.Query{Type: "Observation", Count: 10,
		Where:   []store.Clause{{Param: "subject", References: []store.ReferenceMatch{{Type: "Patient", ID: "p1"}}}},
		Include: []store.Include{{Type: "Observation", Param: "subject"}}}
	// The same with the include's target named, and Patients that some
	// Observation refers to: searches that read two types.
	withPatient := withSubject
	withPatient.Include = []store.Include{{Type: "Observation", Param: "subject", Target: "Patient"}}
	observed := store.Query{Type: "Patient", Count: 10,
		Where: []store.Clause{{Param: "_has", Has: &store.Has{Type: "Observation", Param: "subject"}}}}
	want := func(step string, q store.Query, wantJSON ...string) {
		t.Helper()
		for range 3 { // the first search may fill a cache, the others find it there
			p, err := s.Find(ctx, q)
			if err != nil {
				t.Fatalf("%s: %v", step, err)
			}
			var got []string
			for _, v := range append(p.Matches, p.Included...) {
				got = append(got, string(v.JSON))
				// A caller that changes what it was given changes nothing stored.
				for i := range v.JSON {
					v.JSON[i] = 'x'
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(wantJSON) {
				t.Fatalf("%s: found %s, want %s", step, got, wantJSON)
			}
			if q.Total == store.TotalAccurate && p.Total != len(wantJSON) {
				t.Fatalf("%s: total %d, want %d", step, p.Total, len(wantJSON))
			}
		}
	}
	body := func(id string, v int) string {
		return fmt.Sprintf(`{"resourceType":"Patient","id":"%s","gender":"v%d"}`, id, v)
	}

	want("nothing stored", byIdentifier)
	if err := s.Put(ctx, patient("p1", 0, body("p1", 1))); err != nil {
		t.Fatal(err)
	}
	want("create", byIdentifier, body("p1", 1))
	if err := s.Put(ctx, patient("p2", 0, body("p2", 1))); err != nil {
		t.Fatal(err)
	}
	want("another create", byIdentifier, body("p1", 1), body("p2", 1))
	if err := s.Put(ctx, patient("p1", 1, body("p1", 2))); err != nil {
		t.Fatal(err)
	}
	want("update", byIdentifier, body("p1", 2), body("p2", 1))

	want("none observed", observed)
	if err := s.Put(ctx, observation("o1")); err != nil {
		t.Fatal(err)
	}
	want("a match with its include", withSubject, `{"resourceType":"Observation","id":"o1"}`, body("p1", 2))
	want("a match with its Patient", withPatient, `{"resourceType":"Observation","id":"o1"}`, body("p1", 2))
	want("one observed", observed, body("p1", 2))
	if err := s.Put(ctx, patient("p1", 2, body("p1", 3))); err != nil {
		t.Fatal(err)
	}
	want("the included resource updated", withSubject, `{"resourceType":"Observation","id":"o1"}`, body("p1", 3))
	want("the included Patient updated", withPatient, `{"resourceType":"Observation","id":"o1"}`, body("p1", 3))
	want("the observed Patient updated", observed, body("p1", 3))

	failed := errors.New("refused")
	err := s.Transact(ctx, func(tx store.Tx) error {
		if err := tx.Put(ctx, patient("p2", 1, body("p2", 2))); err != nil {
			return err
		}
		return failed
	})
	if !errors.Is(err, failed) {
		t.Fatalf("failed unit: %v", err)
	}
	want("unit of work rolled back", byIdentifier, body("p1", 3), body("p2", 1))

	del := patient("p2", 1, "")
	del.Deleted = true
	if err := s.Put(ctx, del); err != nil {
		t.Fatal(err)
	}
	want("delete", byIdentifier, body("p1", 3))
}

// TestSearchesUnderConcurrentWrites checks that no search returns a
// version older than one whose write was acknowledged before the search
// began, nor misses a resource created before it, while writers update
// and create the resources searches look for over and over.
func TestSearchesUnderConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, t.TempDir(), sqlite.Options{})
	defer s.Close()
	const resources, updates = 4, 150
	acked := make([]atomic.Int64, resources)
	var created atomic.Int64 // Patients c0, c1, ... acknowledged
	var ids []store.TokenMatch
	for i := range resources {
		id := fmt.Sprint("p", i)
		ids = append(ids, store.TokenMatch{Code: id})
		if err := s.Put(ctx, patient(id, 0, `{"resourceType":"Patient"}`)); err != nil {
			t.Fatal(err)
		}
		acked[i].Store(1)
	}
	byID := store.Query{Type: "Patient", Count: 10, Where: []store.Clause{{Param: "_id", Tokens: ids}}}
	created0 := store.Query{Type: "Patient", Count: 1000, IDsOnly: true,
		Where: []store.Clause{{Param: "identifier", Tokens: []store.TokenMatch{{System: "s", AnyCode: true}}}}}
	var writers, readers sync.WaitGroup
	done := make(chan struct{})
	var stale, searches atomic.Int64
	report := func(format string, args ...any) {
		if stale.Add(1) <= 3 {
			t.Errorf(format, args...)
		}
	}
	updateEach(t, s, &writers, acked, updates)
	writers.Go(func() {
		for n := range int64(updates) {
			if err := s.Put(ctx, patient(fmt.Sprint("c", n), 0, `{"resourceType":"Patient"}`)); err != nil {
				t.Error(err)
				return
			}
			created.Store(n + 1)
		}
	})
	for range 3 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				var min [resources]int64
				for i := range resources {
					min[i] = acked[i].Load()
				}
				minCreated := created.Load()
				p, err := s.Find(ctx, byID)
				if err != nil {
					t.Error(err)
					return
				}
				for _, v := range p.Matches {
					var i int
					fmt.Sscanf(v.ID, "p%d", &i)
					if v.VersionID < min[i] {
						report("%s: search found version %d after version %d was acknowledged", v.ID, v.VersionID, min[i])
					}
				}
				p, err = s.Find(ctx, created0)
				if err != nil {
					t.Error(err)
					return
				}
				if n := int64(len(p.Matches)) - resources; n < minCreated {
					report("search found %d created Patients after %d were acknowledged", n, minCreated)
				}
				searches.Add(1)
			}
		})
	}
	writers.Wait()
	close(done)
	readers.Wait()
	if n := stale.Load(); n > 0 {
		t.Errorf("%d of %d searches found less than was acknowledged", n, searches.Load())
	}
}

// updateEach updates Patients p0, p1, … (one for each of acked, created at
// version 1) updates times each, in goroutines of writers, storing in
// acked the version of each last acknowledged.
func updateEach(t *testing.T, s *sqlite.Store, writers *sync.WaitGroup, acked []atomic.Int64, updates int64) {
	for i := range acked {
		writers.Go(func() {
			for v := int64(1); v <= updates; v++ {
				if err := s.Put(t.Context(), patient(fmt.Sprint("p", i), v, fmt.Sprintf(`{"resourceType":"Patient","gender":"%d"}`, v+1))); err != nil {
					t.Error(err)
					return
				}
				acked[i].Store(v + 1)
			}
		})
	}
}

// TestSearchesSeeReindex checks that a search repeated after Reindex
// replaced a resource's search values, without a new version, finds what
// the new values select.
func TestSearchesSeeReindex(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, t.TempDir(), sqlite.Options{})
	defer s.Close()
	if err := s.Put(ctx, patient("p1", 0, `{"resourceType":"Patient","id":"p1"}`)); err != nil {
		t.Fatal(err)
	}
	byCode := func(code string) store.Query {
		return store.Query{Type: "Patient", Count: 10, IDsOnly: true,
			Where: []store.Clause{{Param: "identifier", Tokens: []store.TokenMatch{{System: "s", Code: code}}}}}
	}
	found := func(step, code string, want int) {
		t.Helper()
		for range 2 {
			p, err := s.Find(ctx, byCode(code))
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Matches) != want {
				t.Fatalf("%s: identifier %s found %d, want %d", step, code, len(p.Matches), want)
			}
		}
	}
	found("before", "p1", 1)
	found("before", "q1", 0)
	v, err := s.Read(ctx, "Patient", "p1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reindex(ctx, v, store.Index{Tokens: []store.Token{{Param: "identifier", System: "s", Code: "q1"}}}); err != nil {
		t.Fatal(err)
	}
	found("after the reindex", "p1", 0)
	found("after the reindex", "q1", 1)
}
