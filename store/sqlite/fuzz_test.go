package sqlite

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"carefhir/store"
	"carefhir/store/storetest"
)

// FuzzSearch runs any query string a client may send, as a search of a
// few types (storetest.FuzzTypes), on a store that holds resources of them: the search layer
// may refuse it, but no search may panic or fail in SQL, and every plan
// the counts can choose gives the same page.
//
//	go test -run '^$' -fuzz '^FuzzSearch$' ./store/sqlite/
func FuzzSearch(f *testing.F) {
	for _, q := range []string{
		"name=smi&birthdate=ge1970-03-01&birthdate=lt1970-04-01",
		"status=active&_include=CarePlan:subject&subject:Patient.name=ab",
		"_has:CarePlan:subject:status=active&birthdate=1970",
		"subject:Patient.general-practitioner.name=riv&_sort=-date&_count=1",
		"_id=a,b&_lastUpdated=gt2020&date=ap2025-03&_revinclude=CareTeam:patient",
		"birthdate=ne1970&gender:missing=true&name:exact=Ó Briain&_total=accurate",
		"date=sa2025&date=eb2026&_count=1000&_include:iterate=*",
		"category:not=x&status=active,draft&_has:Goal:patient:_has:CarePlan:goal:status=active",
	} {
		for _, typ := range storetest.FuzzTypes {
			f.Add(typ, q)
		}
	}
	s, reg, ix := openIndexed(f, "CarePlan", "CareTeam", "Goal", "Observation", "Patient")
	err := s.Transact(f.Context(), func(tx store.Tx) error {
		for _, r := range []struct{ typ, id, json string }{
			{"Patient", "a", `{"resourceType":"Patient","name":[{"family":"Abbott"}],"birthDate":"1970-03-15","gender":"female"}`},
			{"Patient", "b", `{"resourceType":"Patient","name":[{"family":"Ó Briain"}],"birthDate":"1970"}`},
			{"CarePlan", "c", `{"resourceType":"CarePlan","status":"active","intent":"plan","subject":{"reference":"Patient/a"},"period":{"start":"2025-03-01"}}`},
			{"Observation", "o", `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"subject":{"reference":"Patient/a"},"effectiveDateTime":"2025-01-01T10:30:00+01:00","valueQuantity":{"value":125,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}`},
			{"Goal", "g", `{"resourceType":"Goal","lifecycleStatus":"active","description":{"text":"walk"},"subject":{"reference":"Patient/a"},"target":[{"dueDate":"2025-01-01"},{"dueDate":"2026-01-01"}]}`},
		} {
			index, err := ix.IndexJSON(r.typ, []byte(r.json))
			if err != nil {
				return err
			}
			if err := tx.Put(f.Context(), &store.Write{Type: r.typ, ID: r.id, LastUpdated: time.Now(), JSON: []byte(r.json), Index: index}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, typ, query string) {
		q, ok := storetest.FuzzQuery(reg, typ, query, time.Now())
		if !ok {
			return
		}
		// Every plan the counts can choose: as found, as if every term
		// were rare, and as if every term were common. All give the same
		// page (the store holds far fewer resources than a walk's budget,
		// so no walk gives up).
		var first []string
		firstPlan := ""
		for _, n := range []int{-1, 0, 1_000_000} {
			estimate := s.reader.estimator(t.Context())
			if n >= 0 {
				estimate = func(string, []any) (int, error) { return n, nil }
			}
			for _, walk := range []bool{true, false} {
				pq, err := pageSQL(q, s.reader.lookup(t.Context()), estimate, walk)
				if errors.Is(err, store.ErrBadCursor) {
					continue
				}
				if err != nil {
					t.Fatalf("%s?%s: %v", typ, query, err)
				}
				matches, _, more, err := s.reader.page(t.Context(), pq, q)
				if err != nil {
					t.Fatalf("%s?%s: %v\nsql: %s", typ, query, err, pq.query)
				}
				ids := []string{fmt.Sprint(more)}
				for _, v := range matches {
					ids = append(ids, v.ID)
				}
				if firstPlan == "" {
					first, firstPlan = ids, pq.query
				} else if !slices.Equal(ids, first) {
					t.Fatalf("%s?%s: plans disagree: %v (more, ids) from\n%s\nbut %v from\n%s", typ, query, first, firstPlan, ids, pq.query)
				}
			}
		}
		if _, err := s.Find(t.Context(), q); err != nil && !errors.Is(err, store.ErrBadCursor) {
			t.Fatalf("%s?%s: %v", typ, query, err)
		}
	})
}
