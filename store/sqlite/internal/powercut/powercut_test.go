package powercut_test

import (
	"database/sql"
	"path/filepath"
	"slices"
	"testing"

	_ "modernc.org/sqlite"

	"carefhir/store/sqlite/internal/powercut"
)

func newFS(t *testing.T) *powercut.FS {
	t.Helper()
	fs, err := powercut.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fs.Close(); err != nil {
			t.Error(err)
		}
	})
	return fs
}

func exec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// rowsAfterCut writes im to a fresh directory, opens it without the VFS and
// returns the values of table t.
func rowsAfterCut(t *testing.T, im powercut.Image) []int {
	t.Helper()
	dir := t.TempDir()
	if err := im.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity check after the cut: %q, %v", check, err)
	}
	rows, err := db.Query(`SELECT v FROM t ORDER BY v`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestCutDropsWhatWasNotSynced commits rows with and without an fsync, in
// WAL and rollback-journal mode, and checks that a cut keeps exactly the
// fsynced ones, while the live database has them all.
func TestCutDropsWhatWasNotSynced(t *testing.T) {
	for _, journal := range []string{"WAL", "DELETE"} {
		t.Run(journal, func(t *testing.T) {
			fs := newFS(t)
			path := filepath.Join(t.TempDir(), "test.db")
			db, err := sql.Open("sqlite", "file:"+path+"?vfs="+fs.Name())
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			exec(t, db, `PRAGMA journal_mode=`+journal, `PRAGMA synchronous=FULL`,
				`CREATE TABLE t (v INTEGER)`, `INSERT INTO t VALUES (1)`,
				`PRAGMA synchronous=OFF`, `INSERT INTO t VALUES (2)`)

			var live int
			if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&live); err != nil || live != 2 {
				t.Fatalf("live database holds %d rows (%v), want 2", live, err)
			}
			if got := rowsAfterCut(t, fs.Cut()); !slices.Equal(got, []int{1}) {
				t.Errorf("after the cut, rows %v, want [1]: the row committed without an fsync is lost", got)
			}

			exec(t, db, `PRAGMA synchronous=FULL`, `INSERT INTO t VALUES (3)`)
			// In WAL mode the fsync of the third commit covers the second's
			// frames too, written earlier to the same file; a rollback
			// journal wrote the second commit into the database file, which
			// the third commit fsyncs as well.
			if got := rowsAfterCut(t, fs.Cut()); !slices.Equal(got, []int{1, 2, 3}) {
				t.Errorf("after the second cut, rows %v, want [1 2 3]", got)
			}
		})
	}
}

// TestWatchCutsBetweenChanges cuts the power from inside a watcher at the
// first write to the database file, during a checkpoint, and checks that the
// image holds what had been fsynced before.
func TestWatchCutsBetweenChanges(t *testing.T) {
	fs := newFS(t)
	path := filepath.Join(t.TempDir(), "test.db")
	db, err := sql.Open("sqlite", "file:"+path+"?vfs="+fs.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	exec(t, db, `PRAGMA journal_mode=WAL`, `PRAGMA synchronous=FULL`, `PRAGMA wal_autocheckpoint=0`,
		`CREATE TABLE t (v INTEGER)`, `PRAGMA wal_checkpoint(TRUNCATE)`,
		`INSERT INTO t VALUES (1)`, `INSERT INTO t VALUES (2)`)
	var ops []powercut.Op
	var im powercut.Image
	fs.Watch(func(e powercut.Event, cut func() powercut.Image) {
		if e.Path == path {
			ops = append(ops, e.Op)
			if im == nil && e.Op == powercut.Write {
				im = cut()
			}
		}
	})
	exec(t, db, `PRAGMA wal_checkpoint(TRUNCATE)`)
	fs.Watch(nil)
	if im == nil {
		t.Fatalf("the checkpoint made no write to the database file; changes to it: %v", ops)
	}
	if !slices.Contains(ops, powercut.Sync) {
		t.Errorf("the checkpoint never fsynced the database file; changes to it: %v", ops)
	}
	if got := rowsAfterCut(t, im); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("after a cut in the middle of the checkpoint, rows %v, want [1 2]", got)
	}
}
