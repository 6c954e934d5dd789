package walbuf_test

import (
	"bytes"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	_ "modernc.org/sqlite"

	"carefhir/store/sqlite/internal/powercut"
	"carefhir/store/sqlite/internal/walbuf"
)

// open opens the database in dir through v in WAL mode.
func open(t *testing.T, v *walbuf.VFS, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, "x.db")+"?vfs="+v.Name()+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// counted registers walbuf over a powercut VFS and returns it with a count
// of the writes that reach the WAL file, and of the bytes.
func counted(t *testing.T) (v *walbuf.VFS, writes func() (n, bytes int)) {
	t.Helper()
	pc, err := powercut.New()
	if err != nil {
		t.Fatal(err)
	}
	v, err = walbuf.Register(pc.Name())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var n, size int
	pc.Watch(func(e powercut.Event, _ func() powercut.Image) {
		if e.Op == powercut.Write && strings.HasSuffix(e.Path, "-wal") {
			mu.Lock()
			n, size = n+1, size+e.Len
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		if err := v.Close(); err != nil {
			t.Error(err)
		}
		if err := pc.Close(); err != nil {
			t.Error(err)
		}
	})
	return v, func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return n, size
	}
}

// TestTransactionOneWrite checks that a transaction's frames reach the WAL
// in as few writes as the length limit allows, not two a page.
func TestTransactionOneWrite(t *testing.T) {
	v, writes := counted(t)
	db := open(t, v, t.TempDir())
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT); CREATE INDEX tv ON t (v)`); err != nil {
		t.Fatal(err)
	}
	n0, b0 := writes()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		if _, err := tx.Exec(`INSERT INTO t VALUES (?, ?)`, i, strings.Repeat(fmt.Sprint(i%10), 3000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	n1, b1 := writes()
	n, size := n1-n0, b1-b0
	frames := size / (4096 + 24)
	if frames < 20 {
		t.Fatalf("the transaction wrote %d frames: too few to tell", frames)
	}
	if most := (size + 124<<10 - 1) / (124 << 10); n > most {
		t.Errorf("%d frames reached the WAL in %d writes, want at most %d", frames, n, most)
	}
}

// TestReadersSeeEachCommit checks that another connection finds each
// transaction in the WAL as soon as its commit has returned: the frames
// were written before SQLite published them.
func TestReadersSeeEachCommit(t *testing.T) {
	v, err := walbuf.Register("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	dir := t.TempDir()
	w := open(t, v, dir)
	w.SetMaxOpenConns(1)
	if _, err := w.Exec(`CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)`); err != nil {
		t.Fatal(err)
	}
	r := open(t, v, dir)
	for i := 1; i <= 200; i++ {
		if _, err := w.Exec(`INSERT INTO t VALUES (?, ?)`, i, bytes.Repeat([]byte{byte(i)}, 100*i)); err != nil {
			t.Fatal(err)
		}
		var n, size int
		if err := r.QueryRow(`SELECT count(*), coalesce(sum(length(v)), 0) FROM t`).Scan(&n, &size); err != nil {
			t.Fatal(err)
		}
		if n != i || size != 100*i*(i+1)/2 {
			t.Fatalf("after commit %d a reader finds %d rows of %d bytes", i, n, size)
		}
	}
}

// TestLargeTransaction writes a transaction far larger than what a WAL
// file keeps in memory and than one write may be, rolls one back, and
// checks what the database holds after reopening.
func TestLargeTransaction(t *testing.T) {
	v, err := walbuf.Register("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	dir := t.TempDir()
	db := open(t, v, dir)
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)`); err != nil {
		t.Fatal(err)
	}
	insert := func(from, to int, commit bool) {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for i := from; i < to; i++ {
			if _, err := tx.Exec(`INSERT INTO t VALUES (?, ?)`, i, bytes.Repeat([]byte{byte(i)}, 50_000)); err != nil {
				t.Fatal(err)
			}
		}
		if commit {
			err = tx.Commit()
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	insert(0, 400, true)    // 20 MB
	insert(400, 800, false) // rolled back
	insert(800, 1000, true) // 10 MB
	db.Close()

	db = open(t, v, dir)
	var n, bad int
	if err := db.QueryRow(`SELECT count(*), count(*) FILTER (WHERE v <> zeroblob(0) AND length(v) <> 50000) FROM t`).Scan(&n, &bad); err != nil {
		t.Fatal(err)
	}
	var ok string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	if n != 600 || bad != 0 || ok != "ok" {
		t.Fatalf("after reopening: %d rows (want 600), %d of the wrong length, integrity %q", n, bad, ok)
	}
	var wrong int
	if err := db.QueryRow(`SELECT count(*) FROM t WHERE (k >= 400 AND k < 800) OR substr(v, 50000, 1) <> substr(v, 1, 1)`).Scan(&wrong); err != nil {
		t.Fatal(err)
	}
	if wrong != 0 {
		t.Fatalf("%d rows rolled back or torn", wrong)
	}
}
