package walbuf_test

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	_ "modernc.org/sqlite"

	"carefhir/store/sqlite/internal/powercut"
	"carefhir/store/sqlite/internal/walbuf"
)

// register registers a walbuf VFS over the operating system's for the
// test.
func register(t *testing.T) *walbuf.VFS {
	t.Helper()
	v, err := walbuf.Register("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// open opens the database in dir through v in WAL mode, with the URI
// parameters params besides. Without a synchronous pragma among them,
// SQLite's default applies: FULL, an fsync in every commit. (The driver
// runs its pragmas sorted: of two values of one, the later in that order
// wins, so none is set here that a test may want to change.)
func open(t *testing.T, v *walbuf.VFS, dir string, params ...string) *sql.DB {
	t.Helper()
	params = append([]string{"vfs=" + v.Name(), "_pragma=journal_mode(WAL)", "_pragma=busy_timeout(10000)"}, params...)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "x.db")+"?"+strings.Join(params, "&"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// writer opens the database in dir through v as open does, on one
// connection, and creates table t with columns k, the key, and v of type
// typ.
func writer(t *testing.T, v *walbuf.VFS, dir, typ string, params ...string) *sql.DB {
	t.Helper()
	db := open(t, v, dir, params...)
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE t (k INTEGER PRIMARY KEY, v ` + typ + `)`); err != nil {
		t.Fatal(err)
	}
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
	v, dir := register(t), t.TempDir()
	w := writer(t, v, dir, "BLOB")
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
	v, dir := register(t), t.TempDir()
	db := writer(t, v, dir, "BLOB")
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

// TestCommitOnFileAtReturn checks that when a commit returns, the files
// hold it as a killed process would leave them, including a transaction
// that wrote pages to the WAL before its commit (a page cache too small for
// it) and wrote some of them again, which SQLite does in place and then
// rewrites the checksums of the frames up to the commit frame's.
func TestCommitOnFileAtReturn(t *testing.T) {
	v, dir := register(t), t.TempDir()
	// A page cache of 10 pages: the transaction spills. NORMAL: no fsync in
	// the commit writes out what walbuf might still keep.
	db := writer(t, v, dir, "TEXT", "_pragma=cache_size(10)", "_pragma=synchronous(NORMAL)")
	for round := 1; round <= 3; round++ {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2000 {
			if _, err := tx.Exec(`INSERT OR REPLACE INTO t VALUES (?, ?)`, i, strings.Repeat(fmt.Sprint(round), 400)); err != nil {
				t.Fatal(err)
			}
		}
		// Pages written to the WAL already, changed again.
		if _, err := tx.Exec(`UPDATE t SET v = v || ? WHERE k % 7 = 0`, fmt.Sprint(round)); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		// What the files hold now is what a process killed here leaves.
		crashed := t.TempDir()
		for _, name := range []string{"x.db", "x.db-wal"} {
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(crashed, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		after, err := sql.Open("sqlite", filepath.Join(crashed, "x.db"))
		if err != nil {
			t.Fatal(err)
		}
		var n, updated int
		err = after.QueryRow(`SELECT count(*), count(*) FILTER (WHERE length(v) = 401 AND substr(v, 1, 1) = ?) FROM t`, fmt.Sprint(round)).Scan(&n, &updated)
		after.Close()
		if err != nil {
			t.Fatal(err)
		}
		if n != 2000 || updated != 286 {
			t.Fatalf("round %d: after a crash at the commit's return, %d rows (want 2000), %d of this round's updated (want 286)", round, n, updated)
		}
	}
}

// TestPaddedCommits checks commits under synchronous=FULL on a file that
// does not declare powersafe overwrite: SQLite then pads each commit with
// copies of its commit frame to a sector boundary, fsyncing part-way
// through one of them. Readers must still find each commit, and the
// padding must be on the file.
func TestPaddedCommits(t *testing.T) {
	v, writes := counted(t)
	dir := t.TempDir()
	params := []string{"psow=0"} // and synchronous FULL, the default
	w := writer(t, v, dir, "INTEGER", params...)
	r := open(t, v, dir, params...)
	_, b0 := writes()
	for i := 1; i <= 30; i++ {
		if _, err := w.Exec(`INSERT INTO t (k) VALUES (?)`, i); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := r.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != i {
			t.Fatalf("after commit %d a reader finds %d rows", i, n)
		}
	}
	if _, size := writes(); (size-b0)/(4096+24) < 2*30 {
		t.Fatalf("30 commits of one page wrote %d frames to the WAL: no padding to tell", (size-b0)/(4096+24))
	}
}
