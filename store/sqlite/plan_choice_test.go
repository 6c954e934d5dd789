package sqlite

import (
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"carefhir/fhir/search"
	"carefhir/store"
)

// Whichever plan a search takes — driven by its rarest condition, or a
// walk of the type when every condition is common, with two date bounds
// merged into one range or not — the answer is the same: every match,
// once, in id order, across pages.
func TestSearchPlanChoiceKeepsAnswers(t *testing.T) {
	s, reg, ix := openIndexed(t, "CarePlan", "Goal", "Patient")
	put := func(tx store.Tx, typ, id, body string) {
		t.Helper()
		index, err := ix.IndexJSON(typ, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Put(t.Context(), &store.Write{Type: typ, ID: id, LastUpdated: time.Now(), JSON: []byte(body), Index: index}); err != nil {
			t.Fatal(err)
		}
	}
	// 3,000 care plans: every third draft, the rest active; plan i is
	// for patient i%50, born on day i%400 from 1970-01-01.
	const plans = 3000
	var wantActive, wantP7Draft, wantBorn []string
	err := s.Transact(t.Context(), func(tx store.Tx) error {
		for i := range plans {
			id := fmt.Sprintf("cp%05d", i)
			status := "active"
			if i%3 == 0 {
				status = "draft"
			}
			put(tx, "CarePlan", id, fmt.Sprintf(`{"resourceType":"CarePlan","status":%q,"intent":"plan","subject":{"reference":"Patient/p%03d"}}`, status, i%50))
			switch {
			case status == "active":
				wantActive = append(wantActive, id)
			case i%50 == 7:
				wantP7Draft = append(wantP7Draft, id)
			}
		}
		for i := range 400 {
			id := fmt.Sprintf("p%03d", i)
			born := time.Date(1970, 1, 1+i, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
			put(tx, "Patient", id, fmt.Sprintf(`{"resourceType":"Patient","birthDate":%q}`, born))
			if born >= "1970-03-01" && born < "1970-04-01" {
				wantBorn = append(wantBorn, id)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Written after the day-precise birth dates: a year-precise one, which
	// overlaps March 1970, and so must widen what the range scans. And
	// deleted: an active care plan, which no plan may find.
	if err := s.Transact(t.Context(), func(tx store.Tx) error {
		put(tx, "Patient", "year", `{"resourceType":"Patient","birthDate":"1970"}`)
		return tx.Put(t.Context(), &store.Write{Type: "CarePlan", ID: wantActive[0], Expected: 1, LastUpdated: time.Now(), Deleted: true})
	}); err != nil {
		t.Fatal(err)
	}
	wantBorn = append(wantBorn, "year")
	wantActive = wantActive[1:]

	walk := func(t *testing.T, typ, query string, count int) []string {
		t.Helper()
		values, err := url.ParseQuery(query)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := reg.Parse(typ, values, search.Options{Strict: true, Now: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		q := plan.Query
		q.Count = count
		// Forwards by Next to the last page, then back by Previous: both
		// ways give the same matches.
		var ids []string
		var last *store.Page
		for pages := 0; ; pages++ {
			page, err := s.Find(t.Context(), q)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range page.Matches {
				ids = append(ids, v.ID)
			}
			if page.Next == "" || pages > plans {
				last = page
				break
			}
			q.Cursor = page.Next
		}
		back := []string{}
		for page := last; ; {
			for _, v := range slices.Backward(page.Matches) {
				back = append(back, v.ID)
			}
			if page.Prev == "" || len(back) > len(ids) {
				break
			}
			q.Cursor = page.Prev
			if page, err = s.Find(t.Context(), q); err != nil {
				t.Fatal(err)
			}
		}
		slices.Reverse(back)
		if !slices.Equal(back, ids) {
			t.Errorf("%s?%s: %d matches forwards, %d backwards", typ, query, len(ids), len(back))
		}
		return ids
	}
	// A list of references long enough to be looked up through a JSON
	// table: p007 and 19 patients without plans.
	longList := "Patient/p007"
	for i := 100; i < 119; i++ {
		longList += fmt.Sprintf(",Patient/p%03d", i)
	}
	tests := []struct {
		name, typ, query string
		count            int
		want             []string
	}{
		// 2,000 active plans: a walk of CarePlan, probing status.
		{"common status walks", "CarePlan", "status=active", 20, wantActive},
		{"common status in large pages", "CarePlan", "status=active", 1000, wantActive},
		// The subject is rarer than the status: it drives.
		{"rare subject drives", "CarePlan", "status=draft&subject=Patient/p007", 20, wantP7Draft},
		{"rare chain drives", "CarePlan", "status=draft&subject:Patient.birthdate=1970-01-08", 20, wantP7Draft},
		{"long list of subjects drives", "CarePlan", "status=draft&subject=" + longList, 7, wantP7Draft},
		{"long list of subjects probed", "CarePlan", "_id=cp00007,cp00057,cp00008&subject=" + longList, 1, []string{"cp00007", "cp00057"}},
		{"merged date range", "Patient", "birthdate=ge1970-03-01&birthdate=lt1970-04-01", 7, wantBorn},
		{"merged date range with _has", "Patient", "birthdate=ge1970-01-01&birthdate=lt1970-01-11&_has:CarePlan:subject:status=draft",
			20, []string{"p000", "p001", "p002", "p003", "p004", "p005", "p006", "p007", "p008", "p009"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := walk(t, tt.typ, tt.query, tt.count)
			want := slices.Sorted(slices.Values(tt.want))
			if !slices.Equal(got, want) {
				t.Errorf("%s?%s: %d matches %v…, want %d %v…", tt.typ, tt.query, len(got), got[:min(5, len(got))], len(want), want[:min(5, len(want))])
			}
		})
	}

	// A Goal with two target dates, one before and one after a range,
	// matches both bounds given as repeated parameters, each by another
	// value: the bounds are not merged into one row for that parameter.
	if err := s.Transact(t.Context(), func(tx store.Tx) error {
		put(tx, "Goal", "g2", `{"resourceType":"Goal","lifecycleStatus":"active","description":{"text":"walk"},"subject":{"reference":"Patient/p1"},`+
			`"target":[{"dueDate":"2020-01-01"},{"dueDate":"2022-01-01"}]}`)
		put(tx, "Goal", "g1", `{"resourceType":"Goal","lifecycleStatus":"active","description":{"text":"swim"},"subject":{"reference":"Patient/p1"},`+
			`"target":[{"dueDate":"2021-06-01"}]}`)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := walk(t, "Goal", "target-date=ge2021-01-01&target-date=lt2021-12-31", 20); !slices.Equal(got, []string{"g1", "g2"}) {
		t.Errorf("Goal?target-date=ge2021-01-01&target-date=lt2021-12-31: %v, want [g1 g2]", got)
	}
}

// A walk looks at a bounded number of resources: when the matches of a
// common condition all come late in id order, the page is read again
// driven by the condition, and is still the first matches in id order.
func TestSearchWalkGivesUp(t *testing.T) {
	s, reg, ix := openIndexed(t, "CarePlan")
	// With pages of 1 a search walks from 1,000 matches, looking at 4,000
	// resources at most: the 1,200 active plans come after 4,000 drafts.
	const drafts, active = 4000, 1200
	err := s.Transact(t.Context(), func(tx store.Tx) error {
		for i := range drafts + active {
			status := "draft"
			if i >= drafts {
				status = "active"
			}
			body := fmt.Sprintf(`{"resourceType":"CarePlan","status":%q,"intent":"plan","subject":{"reference":"Patient/p1"}}`, status)
			index, err := ix.IndexJSON("CarePlan", []byte(body))
			if err != nil {
				return err
			}
			w := &store.Write{Type: "CarePlan", ID: fmt.Sprintf("cp%05d", i), LastUpdated: time.Now(), JSON: []byte(body), Index: index}
			if err := tx.Put(t.Context(), w); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := reg.Parse("CarePlan", url.Values{"status": {"active"}, "_count": {"1"}}, search.Options{Strict: true, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	q := plan.Query
	if pq, err := pageSQL(q, s.reader.lookup(t.Context()), s.reader.estimator(t.Context()), true); err != nil || !pq.walked {
		t.Fatalf("the search does not walk (err %v): the test no longer tests giving up", err)
	}
	var got []string
	for range 3 {
		page, err := s.Find(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Matches {
			got = append(got, v.ID)
		}
		q.Cursor = page.Next
	}
	if want := []string{"cp04000", "cp04001", "cp04002"}; !slices.Equal(got, want) {
		t.Errorf("pages %v, want %v", got, want)
	}
}

// openIndexed opens a store for the test, with the search registry of
// types and its indexer.
func openIndexed(t testing.TB, types ...string) (*Store, *search.Registry, *search.Indexer) {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	reg, err := search.Load(types)
	if err != nil {
		t.Fatal(err)
	}
	return s, reg, search.NewIndexer(reg, search.FHIRPath, "")
}
