package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"carefhir/store"
)

// createAt makes a database in dir at schema version v, as the carefhir that
// wrote version v made it (migrations are never edited), holding Patient/p1
// with a token the search for gender=female finds.
func createAt(t *testing.T, dir string, v int) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stmts := []string{`CREATE TABLE schema_version (version INTEGER NOT NULL)`}
	for _, m := range migrations[:v] {
		stmts = append(stmts, m.sql)
	}
	stmts = append(stmts,
		`INSERT INTO schema_version (version) VALUES (`+strconv.Itoa(v)+`)`,
		`INSERT INTO versions (seq, type, id, version, last_updated, deleted, json) VALUES (1, 'Patient', 'p1', 1, 1700000000000, 0, '{"resourceType":"Patient","id":"p1","gender":"female"}')`,
		`INSERT INTO resources (rid, type, id, version, deleted, seq) VALUES (1, 'Patient', 'p1', 1, 0, 1)`,
		`INSERT INTO params (pid, type, name, kinds) VALUES (1, 'Patient', 'gender', 1)`,
		`INSERT INTO tokens (pid, code, system, rid) VALUES (1, 'female', 'http://hl7.org/fhir/administrative-gender', 1)`,
	)
	for _, stmt := range stmts {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("schema version %d: %s: %v", v, stmt, err)
		}
	}
}

func schemaVersionIn(t *testing.T, dir string) int {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow(`SELECT version FROM schema_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// Every released schema version opens at the current one, by Open (its
// migrations are all additive) and by Migrate, with what it stored still
// readable and searchable.
func TestMigrateFromEveryVersion(t *testing.T) {
	for v := 1; v < len(migrations); v++ {
		for _, how := range []string{"Open", "Migrate"} {
			t.Run(how+" from "+strconv.Itoa(v), func(t *testing.T) {
				dir := t.TempDir()
				createAt(t, dir, v)
				if how == "Migrate" {
					done, err := Migrate(t.Context(), dir)
					if err != nil {
						t.Fatal(err)
					}
					if len(done) != len(migrations)-v || !strings.HasPrefix(done[0], "schema version "+strconv.Itoa(v)+" to ") {
						t.Errorf("Migrate reported %q; want one line per migration from version %d", done, v)
					}
				}
				var migrated []string
				s, err := OpenWith(dir, Options{Migrated: func(line string) { migrated = append(migrated, line) }})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				if want := map[string]int{"Open": len(migrations) - v, "Migrate": 0}[how]; len(migrated) != want {
					t.Errorf("Open reported the migrations %q; want %d", migrated, want)
				}
				if got := schemaVersionIn(t, dir); got != SchemaVersion() {
					t.Errorf("schema version %d after %s, want %d", got, how, SchemaVersion())
				}
				got, err := s.Read(t.Context(), "Patient", "p1")
				if err != nil || got.VersionID != 1 || !strings.Contains(string(got.JSON), `"female"`) {
					t.Fatalf("Read after migrating: %+v, %v", got, err)
				}
				found, err := s.Search(t.Context(), store.Query{Type: "Patient", Where: []store.Clause{{Param: "gender", Tokens: []store.TokenMatch{{Code: "female", AnySystem: true}}}}})
				if err != nil || len(found) != 1 {
					t.Errorf("search after migrating: %d found, %v; want Patient/p1", len(found), err)
				}
				if err := s.Probe(t.Context()); err != nil {
					t.Errorf("Probe after migrating: %v", err)
				}
			})
		}
	}
}

func TestMigrateCurrentDoesNothing(t *testing.T) {
	dir := t.TempDir()
	done, err := Migrate(t.Context(), dir)
	if err != nil || len(done) != len(migrations) {
		t.Fatalf("Migrate on an empty directory: %q, %v; want every migration made", done, err)
	}
	done, err = Migrate(t.Context(), dir)
	if err != nil || len(done) != 1 || !strings.Contains(done[0], "nothing to do") {
		t.Errorf("Migrate again: %q, %v; want nothing to do", done, err)
	}
}

// An explicit migration is refused on an existing database unless all
// migrations are asked for, and nothing is changed by the refusal.
func TestMigrateExplicit(t *testing.T) {
	list := append(slices.Clip(migrations), migration{summary: "rewrite everything", explicit: true, sql: `CREATE TABLE rewritten (x)`})
	dir := t.TempDir()
	createAt(t, dir, len(migrations))
	db, conn, err := openFile(t.Context(), dir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	defer conn.Close()
	_, err = migrate(t.Context(), conn, list, false)
	if !errors.Is(err, ErrMigrationNeeded) || !strings.Contains(err.Error(), "rewrite everything") || !strings.Contains(err.Error(), "carefhir migrate") {
		t.Errorf("migrate with an explicit migration: %v; want ErrMigrationNeeded naming it", err)
	}
	if got := schemaVersionIn(t, dir); got != len(migrations) {
		t.Errorf("schema version %d after the refusal, want %d unchanged", got, len(migrations))
	}
	done, err := migrate(t.Context(), conn, list, true)
	if err != nil || len(done) != 1 || !strings.Contains(done[0], "rewrite everything") {
		t.Errorf("migrate with all: %q, %v", done, err)
	}
	// A new database gets every migration, explicit ones too.
	db2, conn2, err := openFile(t.Context(), t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	defer conn2.Close()
	if done, err := migrate(t.Context(), conn2, list, false); err != nil || len(done) != len(list) {
		t.Errorf("migrate a new database: %d made, %v; want %d", len(done), err, len(list))
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	dir := t.TempDir()
	createAt(t, dir, len(migrations))
	db, err := sql.Open("sqlite", filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE schema_version SET version = version + 1`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(dir); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("Open of a newer schema: %v, want ErrSchemaTooNew", err)
	}
	if _, err := Migrate(t.Context(), dir); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("Migrate of a newer schema: %v, want ErrSchemaTooNew", err)
	}
}

// The probe writes through the writer, so it waits for a unit of work and
// fails by its deadline while one holds the writer; it fails too once the
// schema has moved on under the running store.
func TestProbe(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Probe(t.Context()); err != nil {
		t.Fatalf("Probe: %v", err)
	}
	var at int64
	if err := s.rdb.QueryRow(`SELECT at FROM probe WHERE id = 1`).Scan(&at); err != nil || at == 0 {
		t.Errorf("probe row: %d, %v; want the probe's time", at, err)
	}

	inTx, release := make(chan struct{}), make(chan struct{})
	txDone := make(chan error, 1)
	go func() {
		txDone <- s.Transact(context.Background(), func(store.Tx) error { close(inTx); <-release; return nil })
	}()
	<-inTx
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	err = s.Probe(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Probe while the writer is held: %v, want the deadline", err)
	}
	close(release)
	if err := <-txDone; err != nil {
		t.Fatal(err)
	}

	other, err := sql.Open("sqlite", filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Exec(`UPDATE schema_version SET version = version + 1`); err != nil {
		t.Fatal(err)
	}
	if err := s.Probe(t.Context()); err == nil || !strings.Contains(err.Error(), "schema version") {
		t.Errorf("Probe after a newer program migrated: %v, want a schema version error", err)
	}
}

type countingObserver struct {
	ops     map[string]int
	commits []int
}

func (o *countingObserver) Operation(op string, _ time.Duration) { o.ops[op]++ }
func (o *countingObserver) Commit(n int)                         { o.commits = append(o.commits, n) }

// putP1 writes Patient/p1 to s.
func putP1(t *testing.T, s *Store) {
	t.Helper()
	w := &store.Write{Type: "Patient", ID: "p1", LastUpdated: time.Now(), JSON: []byte(`{"resourceType":"Patient","id":"p1"}`)}
	if err := s.Put(t.Context(), w); err != nil {
		t.Fatal(err)
	}
}

func TestObserverAndStats(t *testing.T) {
	obs := &countingObserver{ops: map[string]int{}}
	s, err := OpenWith(t.TempDir(), Options{Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	putP1(t, s)
	if _, err := s.Read(t.Context(), "Patient", "p1"); err != nil {
		t.Fatal(err)
	}
	if obs.ops["put"] != 1 || obs.ops["read"] != 1 || !slices.Equal(obs.commits, []int{1}) {
		t.Errorf("observed %v and commits %v; want a put, a read and a commit of 1", obs.ops, obs.commits)
	}
	st := s.Stats()
	if st.QueueDepth != 0 || st.DatabaseBytes == 0 {
		t.Errorf("Stats() = %+v; want an empty queue and a database file", st)
	}
}

// The database a store makes, and its WAL and shared-memory files, are
// the owner's alone whatever the umask and the mode of a data directory
// made before (a host directory mounted in a container, 0755): each holds
// every record, which the other users of the host read when SQLite's
// default mode, 0644, let them.
func TestNewDatabaseIsPrivate(t *testing.T) {
	for name, migrate := range map[string]bool{"open": false, "migrate": true} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if migrate {
				if _, err := Migrate(t.Context(), dir); err != nil {
					t.Fatal(err)
				}
			}
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			putP1(t, s)
			for _, file := range []string{FileName, FileName + "-wal", FileName + "-shm"} {
				info, err := os.Stat(filepath.Join(dir, file))
				if err != nil {
					t.Fatal(err)
				}
				if perm := info.Mode().Perm(); perm&0o077 != 0 {
					t.Errorf("%s: mode %v, want none for the group and others", file, perm)
				}
			}
		})
	}
}
