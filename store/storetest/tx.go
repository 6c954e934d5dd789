package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"carefhir/store"
)

// testTransactRewrite writes a resource twice, and creates and deletes
// another, in one unit of work: searches inside it and after it find each
// by the values of its last version only.
func testTransactRewrite(t *testing.T, s store.Store) {
	ctx := t.Context()
	check := func(where string, r store.Reader) {
		t.Helper()
		for value, want := range map[string][]string{"r1": nil, "r2": {"r"}, "d1": nil} {
			got, err := r.Search(ctx, store.Query{Type: "Patient", Where: []store.Clause{clause("identifier", code(value))}})
			if err != nil {
				t.Fatalf("Search %s: %v", where, err)
			}
			if ids := idsOf(got); !slices.Equal(ids, want) {
				t.Errorf("Patient?identifier=%s %s found %v, want %v", value, where, ids, want)
			}
		}
	}
	err := s.Transact(ctx, func(tx store.Tx) error {
		for _, w := range []*store.Write{
			create("Patient", "r", at(0), "r1", tok("identifier", "s", "r1")),
			create("Patient", "d", at(0), "d1", tok("identifier", "s", "d1")),
			update("Patient", "r", 1, at(1000), "r2", tok("identifier", "s", "r2")),
			tombstone("Patient", "d", 1, at(1000)),
		} {
			if err := tx.Put(ctx, w); err != nil {
				return err
			}
		}
		check("inside the unit of work", tx)
		return nil
	})
	if err != nil {
		t.Fatalf("Transact: %v", err)
	}
	check("after it", s)
}

// testTransactFailsAtEntry has a unit of work fail at its entry n, after
// n-1 writes (creates, updates and a delete) that must leave no trace.
func testTransactFailsAtEntry(t *testing.T, s store.Store) {
	const size = 12
	put(t, s, create("Patient", "base", at(0), "base1", tok("identifier", "s", "base1")))
	put(t, s, create("Patient", "gone", at(0), "gone1"))
	// entry returns the unit's write number i (1-based); entry n is made to
	// conflict: it creates the resource that exists.
	entry := func(i, n int) *store.Write {
		switch {
		case i == n:
			return create("Patient", "base", at(1000), "again")
		case i == 2:
			return update("Patient", "base", 1, at(1000), "base2", tok("identifier", "s", "base2"))
		case i == 3:
			return tombstone("Patient", "gone", 1, at(1000))
		}
		id := fmt.Sprintf("new%d", i)
		return create("Patient", id, at(1000), id, tok("identifier", "s", "new"))
	}
	for _, n := range []int{1, 2, 4, size / 2, size} {
		t.Run(fmt.Sprintf("entry %d", n), func(t *testing.T) {
			err := s.Transact(t.Context(), func(tx store.Tx) error {
				for i := 1; i <= size; i++ {
					if err := tx.Put(t.Context(), entry(i, n)); err != nil {
						return fmt.Errorf("entry %d: %w", i, err)
					}
				}
				return nil
			})
			var ce *store.ConflictError
			if !errors.As(err, &ce) || ce.ID != "base" {
				t.Fatalf("Transact: %v, want a conflict on Patient/base", err)
			}
			for i := 1; i < n; i++ {
				if w := entry(i, n); w.ID != "base" && w.ID != "gone" {
					_, err := s.Read(t.Context(), "Patient", w.ID)
					checkNotFound(t, err, "Read of "+w.ID)
				}
			}
			checkRead(t, s, written(create("Patient", "base", at(0), "base1")))
			checkRead(t, s, written(create("Patient", "gone", at(0), "gone1")))
			checkFound(t, s, found{"new", []string{}}, found{"base2", []string{}}, found{"base1", []string{"base"}})
			page, err := s.History(t.Context(), store.HistoryQuery{Count: 50})
			if err != nil {
				t.Fatalf("History: %v", err)
			}
			if page.Total != 2 {
				t.Errorf("system history holds %d versions, want 2:%s", page.Total, listOf(page.Versions))
			}
		})
	}
}

// found is what a search of Patients by identifier code finds: their ids.
type found struct {
	code string
	ids  []string
}

// checkFound fails the test unless searching s for Patients by each code
// finds the ids given.
func checkFound(t *testing.T, s store.Reader, want ...found) {
	t.Helper()
	for _, f := range want {
		got, err := s.Search(t.Context(), store.Query{Type: "Patient", Where: []store.Clause{clause("identifier", code(f.code))}})
		if err != nil {
			t.Fatalf("Search: %v", err)
		}
		if ids := idsOf(got); !slices.Equal(ids, f.ids) {
			t.Errorf("Search identifier=%s found %v, want %v", f.code, ids, f.ids)
		}
	}
}

// testConcurrentTransacts has writers run units of work that each update
// the same few resources, reading them in the unit and retrying on
// conflict. No update may be lost, versions must have no gaps, and the
// units must not interleave: version k of every resource comes from the
// same unit.
func testConcurrentTransacts(t *testing.T, s store.Store) {
	const (
		units    = 4 // per writer
		txWriter = 6
	)
	ids := []string{"r1", "r2", "r3"}
	for _, id := range ids {
		put(t, s, create("Patient", id, at(1), "created"))
	}
	ctx := t.Context()
	var wg sync.WaitGroup
	for n := range txWriter {
		wg.Go(func() {
			for u := 0; u < units; u++ {
				note := fmt.Sprintf("writer %d unit %d", n, u)
				var err error
				for attempt := 0; attempt < 100*txWriter; attempt++ {
					err = s.Transact(ctx, func(tx store.Tx) error {
						for _, id := range ids {
							v, err := tx.Read(ctx, "Patient", id)
							if err != nil {
								return err
							}
							next := int(v.VersionID) + 1
							if err := tx.Put(ctx, update("Patient", id, v.VersionID, at(next), note)); err != nil {
								return err
							}
						}
						return nil
					})
					var ce *store.ConflictError
					if !errors.As(err, &ce) {
						break
					}
				}
				if err != nil {
					t.Errorf("%s: Transact: %v", note, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	const last = 1 + units*txWriter
	var byVersion [][]string // per resource, the note of each version
	for _, id := range ids {
		page, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: id, Count: 2 * last})
		if err != nil {
			t.Fatalf("History %s: %v", id, err)
		}
		var versions []int64
		var notes []string
		for _, v := range slices.Backward(page.Versions) {
			versions = append(versions, v.VersionID)
			notes = append(notes, noteOf(t, v.JSON, id))
		}
		want := make([]int64, last)
		for i := range want {
			want[i] = int64(i + 1)
		}
		if !slices.Equal(versions, want) {
			t.Fatalf("Patient/%s has versions %v, want 1..%d", id, versions, last)
		}
		byVersion = append(byVersion, notes)
	}
	// The same unit wrote version k of every resource.
	for i, notes := range byVersion[1:] {
		if !slices.Equal(notes, byVersion[0]) {
			t.Errorf("Patient/%s versions come from %q, Patient/%s versions from %q", ids[i+1], notes, ids[0], byVersion[0])
		}
	}
	// Every unit wrote exactly one version.
	seen := map[string]int{}
	for _, note := range byVersion[0][1:] {
		seen[note]++
	}
	for n := range txWriter {
		for u := range units {
			if note := fmt.Sprintf("writer %d unit %d", n, u); seen[note] != 1 {
				t.Errorf("%s wrote %d versions, want 1", note, seen[note])
			}
		}
	}
}

// noteOf returns the note of Patient/id's body, as written by body.
func noteOf(t *testing.T, b []byte, id string) string {
	t.Helper()
	var v struct{ Note string }
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("body %s of Patient/%s: %v", b, id, err)
	}
	return v.Note
}

// testConditionalCreateRace has writers race to create a resource only if
// none matches the same criteria, each in a unit of work, as conditional
// create does: exactly one creates.
func testConditionalCreateRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	criteria := store.Query{Type: "Patient", Count: 2, Where: []store.Clause{clause("identifier", sysCode("s", "once"))}}
	var wg sync.WaitGroup
	for n := range writers {
		wg.Go(func() {
			err := s.Transact(ctx, func(tx store.Tx) error {
				found, err := tx.Search(ctx, criteria)
				if err != nil || len(found) > 0 {
					return err
				}
				return tx.Put(ctx, create("Patient", fmt.Sprintf("c%d", n), at(n), "once", tok("identifier", "s", "once")))
			})
			if err != nil {
				t.Errorf("writer %d: Transact: %v", n, err)
			}
		})
	}
	wg.Wait()
	found, err := s.Search(ctx, criteria)
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	if len(found) != 1 {
		t.Errorf("%d resources match after racing conditional creates, want 1: %v", len(found), idsOf(found))
	}
}
