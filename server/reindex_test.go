package server_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"carefhir/server"
	"carefhir/store"
)

// Resources stored without search values (as by an older release) are
// found after Reindex.
func TestReindex(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		st := c.st
		lu := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		for _, p := range []struct{ id, body string }{
			{"r1", `{"resourceType":"Patient","id":"r1","meta":{"versionId":"1","lastUpdated":"2025-01-01T00:00:00.000Z"},"name":[{"family":"Ndlovu"}],"birthDate":"1990-05-05"}`},
			{"r2", `{"resourceType":"Patient","id":"r2","meta":{"versionId":"1","lastUpdated":"2025-01-01T00:00:00.000Z"},"name":[{"family":"Nowak"}]}`},
		} {
			if err := st.Put(t.Context(), &store.Write{Type: "Patient", ID: p.id, LastUpdated: lu, JSON: []byte(p.body)}); err != nil {
				t.Fatal(err)
			}
		}
		if got := c.do("GET", "/Patient?family=n", "").searchset(t).ids("match"); got != "" {
			t.Fatalf("before reindexing, family=n finds %q", got)
		}
		ix, err := server.NewIndexer("")
		if err != nil {
			t.Fatal(err)
		}
		var reports int
		spy := &finishSpy{Store: st, Reindexer: st.(store.Reindexer), Finder: st.(store.Finder)}
		n, err := server.Reindex(t.Context(), spy, ix, func(typ string, done, total int) {
			if typ == "Patient" && total != 2 {
				t.Errorf("Patient total %d, want 2", total)
			}
			reports++
		})
		if err != nil || n != 2 {
			t.Fatalf("Reindex = %d, %v; want 2 resources", n, err)
		}
		if reports == 0 {
			t.Error("no progress reported")
		}
		if !slices.Contains(spy.finished, "Patient") {
			t.Errorf("FinishReindex called for %v, not Patient", spy.finished)
		}
		b := c.do("GET", "/Patient?family=n&_sort=family", "").searchset(t)
		if got := b.ids("match"); got != "Patient/r1 Patient/r2" {
			t.Errorf("after reindexing, family=n finds %q", got)
		}
		c.do("GET", "/Patient/r1/_history", "").want(t, http.StatusOK)
	})
}

// finishSpy is an engine that records the types Reindex finishes, and
// finishes them in the engine underneath when it keeps summaries.
type finishSpy struct {
	store.Store
	store.Reindexer
	store.Finder
	finished []string
}

func (s *finishSpy) FinishReindex(ctx context.Context, typ string) error {
	s.finished = append(s.finished, typ)
	if f, ok := s.Store.(interface {
		FinishReindex(context.Context, string) error
	}); ok {
		return f.FinishReindex(ctx, typ)
	}
	return nil
}

// An Observation whose subject is by identifier alone, stored with the
// index an older release made (no mark that the subject has a value), is
// found by subject:missing=true and not by subject:missing=false, the two
// still splitting every resource between them, until Reindex marks it.
func TestReindexMissingMark(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("PUT", "/Observation/new", `{"resourceType":"Observation","id":"new","status":"final","code":{"text":"weight"},`+
			`"subject":{"identifier":{"value":"9000000009"}}}`).want(t, http.StatusCreated)
		body := `{"resourceType":"Observation","id":"old","meta":{"versionId":"1","lastUpdated":"2025-01-01T00:00:00.000Z"},` +
			`"status":"final","code":{"text":"weight"},"subject":{"identifier":{"value":"9000000009"}}}`
		w := &store.Write{Type: "Observation", ID: "old", LastUpdated: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), JSON: []byte(body),
			Index: store.Index{Tokens: []store.Token{{Param: "status", Code: "final"}, {Param: "subject:identifier", Code: "9000000009"}}}}
		if err := c.st.Put(t.Context(), w); err != nil {
			t.Fatal(err)
		}
		wantMatches(t, c, []searchCase{
			{"/Observation?subject:missing=true", "Observation/old"},
			{"/Observation?subject:missing=false", "Observation/new"},
		})
		ix, err := server.NewIndexer("")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := server.Reindex(t.Context(), c.st, ix, nil); err != nil {
			t.Fatal(err)
		}
		wantMatches(t, c, []searchCase{
			{"/Observation?subject:missing=true", ""},
			{"/Observation?subject:missing=false", "Observation/new Observation/old"},
		})
	})
}
