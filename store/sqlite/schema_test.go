package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"
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
		migrations[0],
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
