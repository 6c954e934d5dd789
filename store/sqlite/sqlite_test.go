package sqlite_test

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"carefhir/store"
	"carefhir/store/sqlite"
	"carefhir/store/storetest"
)

func mustOpen(t testing.TB, dir string, opts sqlite.Options) *sqlite.Store {
	t.Helper()
	s, err := sqlite.OpenWith(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, storetest.SearchScale(1200))
}

// TestConformanceOptions runs the suite with group commit off and with
// fsync on every commit, which take other paths through the writer.
func TestConformanceOptions(t *testing.T) {
	tests := []struct {
		name string
		opts sqlite.Options
	}{
		{name: "no group commit", opts: sqlite.Options{MaxBatch: 1}},
		{name: "sync full", opts: sqlite.Options{SyncFull: true, Readers: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Store { return mustOpen(t, t.TempDir(), tt.opts) })
		})
	}
}

func patient(id string, expected int64, json string) *store.Write {
	return &store.Write{Type: "Patient", ID: id, Expected: expected, JSON: []byte(json),
		LastUpdated: time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC),
		Index:       store.Index{Tokens: []store.Token{{Param: "identifier", System: "s", Code: id}}}}
}

func TestReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "data")
	s := mustOpen(t, dir, sqlite.Options{})
	if err := s.Put(t.Context(), patient("p1", 0, `{"resourceType":"Patient","id":"p1"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, sqlite.FileName)); err != nil {
		t.Fatalf("database file: %v", err)
	}
	s = mustOpen(t, dir, sqlite.Options{})
	defer s.Close()
	v, err := s.Read(t.Context(), "Patient", "p1")
	if err != nil || string(v.JSON) != `{"resourceType":"Patient","id":"p1"}` {
		t.Fatalf("Read after reopen: %v, %v", v, err)
	}
	got, err := s.Search(t.Context(), store.Query{Type: "Patient", Where: []store.Clause{
		{Param: "identifier", Tokens: []store.TokenMatch{{System: "s", Code: "p1"}}}}})
	if err != nil || len(got) != 1 {
		t.Fatalf("Search after reopen: %d found, %v", len(got), err)
	}
	if err := s.Put(t.Context(), patient("p1", 1, `{"resourceType":"Patient","id":"p1","active":true}`)); err != nil {
		t.Fatalf("update after reopen: %v", err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	dir := t.TempDir()
	if err := mustOpen(t, dir, sqlite.Options{}).Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE schema_version SET version = 1000`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := sqlite.Open(dir)
	if err == nil {
		s.Close()
		t.Fatal("opened a database with a newer schema")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Errorf("error %q does not say the schema is newer", err)
	}
}

func TestClosed(t *testing.T) {
	s := mustOpen(t, t.TempDir(), sqlite.Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Put(t.Context(), patient("p1", 0, `{}`)); err == nil {
		t.Error("Put on a closed store succeeded")
	}
	if err := s.Transact(t.Context(), func(store.Tx) error { return nil }); err == nil {
		t.Error("Transact on a closed store succeeded")
	}
	if _, err := s.Read(t.Context(), "Patient", "p1"); err == nil {
		t.Error("Read on a closed store succeeded")
	}
}

func TestBadCursor(t *testing.T) {
	s := mustOpen(t, t.TempDir(), sqlite.Options{})
	defer s.Close()
	tests := []struct {
		name   string
		cursor string
	}{
		{name: "not base64", cursor: "%%%"},
		{name: "not json", cursor: "bm90IGpzb24"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.History(t.Context(), store.HistoryQuery{Count: 10, Cursor: tt.cursor})
			if err == nil {
				t.Error("no error")
			}
		})
	}
	if _, err := s.History(t.Context(), store.HistoryQuery{}); err == nil {
		t.Error("History with Count 0: no error")
	}
}

func TestTransactPanic(t *testing.T) {
	s := mustOpen(t, t.TempDir(), sqlite.Options{})
	defer s.Close()
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Transact swallowed the panic of fn")
			}
		}()
		s.Transact(t.Context(), func(tx store.Tx) error {
			if err := tx.Put(t.Context(), patient("p1", 0, `{}`)); err != nil {
				t.Fatal(err)
			}
			panic("fn fails")
		})
	}()
	if _, err := s.Read(t.Context(), "Patient", "p1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Read after a panicking unit of work: %v, want ErrNotFound", err)
	}
	if err := s.Put(t.Context(), patient("p1", 0, `{}`)); err != nil {
		t.Errorf("Put after a panicking unit of work: %v", err)
	}
}

func TestTxAfterTransact(t *testing.T) {
	s := mustOpen(t, t.TempDir(), sqlite.Options{})
	defer s.Close()
	var kept store.Tx
	if err := s.Transact(t.Context(), func(tx store.Tx) error { kept = tx; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := kept.Put(t.Context(), patient("p1", 0, `{}`)); err == nil {
		t.Error("Put on a finished unit of work succeeded")
	}
	if _, err := kept.Read(t.Context(), "Patient", "p1"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Read on a finished unit of work: %v, want an error other than ErrNotFound", err)
	}
}

// TestCloseWhileWriting closes the store under concurrent writers: every Put
// returns, and every write acknowledged before Close is there on reopening.
func TestCloseWhileWriting(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, sqlite.Options{})
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("g%d-%d", g, i)
				if err := s.Put(t.Context(), patient(id, 0, `{}`)); err != nil {
					return
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		})
	}
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 100 {
			break
		}
		runtime.Gosched()
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	s = mustOpen(t, dir, sqlite.Options{})
	defer s.Close()
	for _, id := range acked {
		if _, err := s.Read(t.Context(), "Patient", id); err != nil {
			t.Fatalf("acknowledged Patient/%s: %v", id, err)
		}
	}
}

// Searches see parameters that had no values when they were first searched,
// and parameters first written by a unit of work that was rolled back and
// then written again.
func TestSearchParametersAppear(t *testing.T) {
	s := mustOpen(t, t.TempDir(), sqlite.Options{})
	defer s.Close()
	ctx := t.Context()
	withString := func(id string, expected int64, param, value string) *store.Write {
		w := patient(id, expected, `{"resourceType":"Patient"}`)
		w.Index.Strings = []store.String{{Param: param, Value: value, Exact: value}}
		return w
	}
	find := func(param string, sort bool) []string {
		t.Helper()
		q := store.Query{Type: "Patient", Count: 10, Where: []store.Clause{
			{Param: param, Strings: []store.StringMatch{{Value: "a"}}}}}
		if sort {
			q.Sort = []store.SortKey{{Param: param}}
		}
		page, err := s.Find(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, v := range page.Matches {
			ids = append(ids, v.ID)
		}
		return ids
	}
	missing := func(param string) []string {
		t.Helper()
		got, err := s.Search(ctx, store.Query{Type: "Patient", Where: []store.Clause{{Param: param, Presence: store.Missing}}})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, v := range got {
			ids = append(ids, v.ID)
		}
		return ids
	}
	if err := s.Put(ctx, patient("p0", 0, `{}`)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		param  string
		before func() error // writes that must leave no trace
	}{
		{name: "first searched without values", param: "family"},
		{name: "first written by a rolled-back unit of work", param: "given", before: func() error {
			err := s.Transact(ctx, func(tx store.Tx) error {
				if err := tx.Put(ctx, withString("gone", 0, "given", "abc")); err != nil {
					return err
				}
				return errors.New("give up")
			})
			if err == nil {
				return errors.New("Transact did not fail")
			}
			return nil
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := find(tt.param, true); len(got) != 0 {
				t.Errorf("before any value: found %v", got)
			}
			if got := missing(tt.param); len(got) < 1 {
				t.Errorf("before any value: missing found %v, want every Patient", got)
			}
			if tt.before != nil {
				if err := tt.before(); err != nil {
					t.Fatal(err)
				}
			}
			id := fmt.Sprintf("p%d", i+1)
			if err := s.Put(ctx, withString(id, 0, tt.param, "abc")); err != nil {
				t.Fatal(err)
			}
			for _, sort := range []bool{false, true} {
				if got := find(tt.param, sort); len(got) != 1 || got[0] != id {
					t.Errorf("after a write (sorted %v): found %v, want [%s]", sort, got, id)
				}
			}
			if got := missing(tt.param); slices.Contains(got, id) {
				t.Errorf("after a write: missing found %v, which has a value", got)
			}
		})
	}
}

// TestReferencesStoredOnce checks that a reference is one row, by type and
// id (or by URL). TestReferenceKeysByID checks that the row by id alone
// which databases written before still hold changes no search.
func TestReferencesStoredOnce(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, sqlite.Options{})
	w := &store.Write{Type: "Observation", ID: "o1", JSON: []byte(`{"resourceType":"Observation","id":"o1"}`),
		LastUpdated: time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC),
		Index: store.Index{References: []store.Reference{
			{Param: "subject", Type: "Patient", ID: "p1"},
			{Param: "subject", URL: "https://elsewhere.example/fhir/Patient/p9"},
		}}}
	if err := s.Put(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys := func() []string {
		rows, err := db.Query(`SELECT key FROM refs ORDER BY key`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				t.Fatal(err)
			}
			out = append(out, k)
		}
		return out
	}
	if got, want := keys(), []string{"rPatient/p1", "uhttps://elsewhere.example/fhir/Patient/p9"}; !slices.Equal(got, want) {
		t.Fatalf("refs keys = %q, want %q", got, want)
	}
}

// TestReferenceKeysByID checks that a database written before references
// were stored once, which holds a row by id alone beside each reference,
// answers every search as one written after.
func TestReferenceKeysByID(t *testing.T) {
	dir := t.TempDir()
	storetest.ReferenceKeysByID(t, mustOpen(t, dir, sqlite.Options{}), func(t *testing.T, s store.Store) store.Store {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open("sqlite", filepath.Join(dir, sqlite.FileName))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		res, err := db.Exec(`INSERT INTO refs (pid, key, rid) SELECT pid, 'i' || substr(key, instr(key, '/') + 1), rid FROM refs WHERE key LIKE 'r%'`)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			t.Fatalf("rows by id alone added: %d, %v", n, err)
		}
		s = mustOpen(t, dir, sqlite.Options{})
		t.Cleanup(func() { s.Close() })
		return s
	})
}
