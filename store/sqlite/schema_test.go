package sqlite

import (
	"database/sql"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"carefhir/fhir/search"
	"carefhir/store"
)

// A database made at schema version 1 opens at the current version, and
// the date widths and multiplicities a search relies on are computed from
// the rows it already holds.
func TestMigrateFromVersion1(t *testing.T) {
	dir := t.TempDir()
	db, err := sql.Open("sqlite", filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		migrations[0].sql,
		`CREATE TABLE schema_version (version INTEGER NOT NULL)`,
		`INSERT INTO schema_version (version) VALUES (1)`,
		`INSERT INTO params (pid, type, name, kinds) VALUES (1, 'Patient', 'birthdate', 4), (2, 'Goal', 'target-date', 4), (3, 'Patient', 'gender', 1)`,
		// Patient 1 born in a day, patient 2 in a year; goal 3 due on two days.
		`INSERT INTO dates (pid, low, high, rid) VALUES (1, 0, 86399999, 1), (1, 0, 31535999999, 2), (2, 0, 86399999, 3), (2, 86400000, 172799999, 3)`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	db.Close()

	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var version int
	if err := s.rdb.QueryRowContext(t.Context(), `SELECT version FROM schema_version`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version != len(migrations) {
		t.Errorf("schema version %d, want %d", version, len(migrations))
	}
	lookup := s.reader.lookup(t.Context())
	for _, tt := range []struct {
		typ, name string
		width     int64
		multi     bool
	}{
		{"Patient", "birthdate", 31535999999, false},
		{"Goal", "target-date", 86399999, true},
		{"Patient", "gender", 0, false},
	} {
		p, err := lookup(tt.typ, tt.name)
		if err != nil {
			t.Fatal(err)
		}
		if p.dateWidth != tt.width || p.dateMulti != tt.multi {
			t.Errorf("%s %s: width %d, multi %t; want %d, %t", tt.typ, tt.name, p.dateWidth, p.dateMulti, tt.width, tt.multi)
		}
	}
}

// A period with no end widens its parameter's dates for good; once the
// resource is gone and the type reindexed, the width is that of the rows
// left, and a search still finds what it should.
func TestFinishReindexNarrowsDates(t *testing.T) {
	s, reg, ix := openIndexed(t, "CarePlan")
	put := func(id, period string, deleted bool) {
		t.Helper()
		body := `{"resourceType":"CarePlan","status":"active","intent":"plan","subject":{"reference":"Patient/p1"},"period":` + period + `}`
		w := &store.Write{Type: "CarePlan", ID: id, LastUpdated: time.Now(), JSON: []byte(body)}
		var err error
		if deleted {
			w = &store.Write{Type: "CarePlan", ID: id, Expected: 1, LastUpdated: time.Now(), Deleted: true}
		} else if w.Index, err = ix.IndexJSON("CarePlan", []byte(body)); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(t.Context(), w); err != nil {
			t.Fatal(err)
		}
	}
	put("open", `{"start":"2020-01-01"}`, false)
	put("day", `{"start":"2025-03-10","end":"2025-03-10"}`, false)
	put("open", "", true)
	width := func() int64 {
		t.Helper()
		p, err := s.reader.lookup(t.Context())("CarePlan", "date")
		if err != nil {
			t.Fatal(err)
		}
		return p.dateWidth
	}
	if w := width(); w < 100*365*86400000 {
		t.Fatalf("width %d before reindexing: the open period did not widen it", w)
	}
	if err := s.FinishReindex(t.Context(), "CarePlan"); err != nil {
		t.Fatal(err)
	}
	if w := width(); w != 86400000-1 {
		t.Errorf("width %d after reindexing, want one day (%d)", w, 86400000-1)
	}
	plan, err := reg.Parse("CarePlan", url.Values{"date": {"ge2025-03-01", "lt2025-04-01"}}, search.Options{Strict: true, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	page, err := s.Find(t.Context(), plan.Query)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Matches) != 1 || page.Matches[0].ID != "day" {
		t.Errorf("CarePlan?date=ge2025-03-01&date=lt2025-04-01: %d matches, want CarePlan/day", len(page.Matches))
	}
	// A write after the reindex widens again from the recomputed width.
	put("open2", `{"start":"2021-01-01"}`, false)
	if w := width(); w < 100*365*86400000 {
		t.Errorf("width %d after a new open period", w)
	}
}
