package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"carefhir/store"
	"carefhir/store/sqlite"
)

// A backup taken while clients keep writing holds every write acknowledged
// before it started; restored into an empty directory, it verifies clean
// and serves those writes.
func TestBackupUnderLoadAndRestore(t *testing.T) {
	data := t.TempDir()
	p := start(t, "--data", data)

	var (
		mu    sync.Mutex
		acked []string
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	for w := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for n := uint64(w * 100000); ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				status, id, err := createPatient(p.base, r, n+1)
				if err != nil || status != http.StatusCreated {
					t.Errorf("create under load: %d, %v", status, err)
					return
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		})
	}
	// Let some writes land, then back up while they go on.
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 200 || t.Failed() {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	before := append([]string(nil), acked...)
	mu.Unlock()
	archive := filepath.Join(t.TempDir(), "carefhir.tar.gz")
	out, err := runCmd(t, "backup", "--data", data, "--to", archive)
	mu.Lock()
	during := len(acked) - len(before)
	mu.Unlock()
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if !strings.HasPrefix(out, "backed up ") || !strings.Contains(out, "sha256 ") {
		t.Errorf("backup printed %q", out)
	}
	t.Logf("%d writes acknowledged before the backup, %d while it ran; %s", len(before), during, out)

	restored := filepath.Join(t.TempDir(), "restored")
	out, err = runCmd(t, "restore", "--from", archive, "--data", restored)
	if err != nil || !strings.HasPrefix(out, "restored ") {
		t.Fatalf("restore: %q, %v", out, err)
	}
	out, err = runCmd(t, "verify", "--data", restored)
	if err != nil || !strings.Contains(out, "no problem found") {
		t.Errorf("verify the restored store: %q, %v", out, err)
	}
	st, err := sqlite.Open(restored)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	missing := 0
	for _, id := range before {
		if _, err := st.Read(context.Background(), "Patient", id); err != nil {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of the %d writes acknowledged before the backup are not in it", missing, len(before))
	}
}

// storeOfOnePatient returns a SQLite data directory holding Patient/p1,
// closed.
func storeOfOnePatient(t *testing.T) string {
	t.Helper()
	data := t.TempDir()
	st, err := sqlite.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	w := &store.Write{Type: "Patient", ID: "p1", JSON: []byte(`{"resourceType":"Patient","id":"p1","meta":{"versionId":"1"}}`)}
	if err := st.Put(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	st.Close()
	return data
}

func TestRestoreRefusals(t *testing.T) {
	data := storeOfOnePatient(t)
	archive := filepath.Join(t.TempDir(), "b.tar.gz")
	if _, err := runCmd(t, "backup", "--data", data, "--to", archive); err != nil {
		t.Fatal(err)
	}
	if _, err := runCmd(t, "backup", "--data", data, "--to", archive); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("backup over an existing file: %v, want a refusal", err)
	}

	// Not into a directory that holds something, unless forced.
	busy := t.TempDir()
	os.WriteFile(filepath.Join(busy, "keep.txt"), []byte("x"), 0o600)
	if _, err := runCmd(t, "restore", "--from", archive, "--data", busy); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("restore into a directory that is not empty: %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(busy, sqlite.FileName)); err == nil {
		t.Errorf("a refused restore wrote the database")
	}
	if out, err := runCmd(t, "restore", "--from", archive, "--data", data, "--force"); err != nil {
		t.Errorf("restore --force over the store: %q, %v", out, err)
	}

	// A damaged archive is refused and leaves nothing behind.
	b, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	damaged := filepath.Join(t.TempDir(), "damaged.tar.gz")
	os.WriteFile(damaged, b, 0o600)
	empty := filepath.Join(t.TempDir(), "empty")
	if _, err := runCmd(t, "restore", "--from", damaged, "--data", empty); err == nil {
		t.Errorf("restore of a damaged archive succeeded")
	}
	if entries, err := os.ReadDir(empty); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused restore left the directory it was to make, holding %v", entries)
	}
}

// verify reports a search row that does not match its resource, one of a
// resource that does not exist, and a version of a resource that does not
// exist.
func TestVerifyFindsProblems(t *testing.T) {
	data := t.TempDir()
	// Short deadlines: an export waits for the writes of requests still
	// within them before it reads.
	p := start(t, "--data", data, "--request-deadline", "1s", "--unit-of-work-timeout", "1s")
	if status, _, err := createPatient(p.base, rand.New(rand.NewPCG(1, 1)), 1); err != nil || status != http.StatusCreated {
		t.Fatalf("create: %d, %v", status, err)
	}
	// A bulk export keeps its job in the store beside the resources: a
	// record of the server's own, which verify does not read as FHIR.
	export(t, p.base+"/$export")
	p.cmd.Process.Signal(os.Interrupt)
	p.wait(t)
	if out, err := runCmd(t, "verify", "--data", data); err != nil {
		t.Fatalf("verify a sound store: %q, %v", out, err)
	}
	db, err := sql.Open("sqlite", filepath.Join(data, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`DELETE FROM tokens WHERE (pid, code, system, rid) IN (SELECT pid, code, system, rid FROM tokens LIMIT 1)`,
		`INSERT INTO uris (pid, value, rid) VALUES (1, 'http://example.org', 999)`,
		// A version whose resource row is gone: vread and history
		// would serve it while read says the resource is not known.
		`INSERT INTO versions (type, id, version, last_updated, deleted, json) VALUES ('Patient', 'gone', 1, 0, 0, '{"resourceType":"Patient","id":"gone","meta":{"versionId":"1"}}')`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			db.Close()
			t.Fatal(err)
		}
	}
	db.Close()
	out, err := runCmd(t, "verify", "--data", data)
	if err == nil || exitCode(err, io.Discard) != 1 {
		t.Errorf("verify a damaged store: %v, want exit 1", err)
	}
	for _, want := range []string{"tokens: ", "search rows differ", "uris: 1 rows of deleted or unknown resources", "Patient/gone: 1 versions after its current version, or of no resource"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
}

// While a server serves a data directory, the commands that would write
// or replace its database from another process are refused, and the
// server goes on serving what it had; once it has stopped, they run.
func TestDataDirectoryOfARunningServer(t *testing.T) {
	data := t.TempDir()
	p := start(t, "--data", data)
	status, id, err := createPatient(p.base, rand.New(rand.NewPCG(3, 3)), 1)
	if err != nil || status != http.StatusCreated {
		t.Fatalf("create: %d, %v", status, err)
	}
	archive := filepath.Join(t.TempDir(), "b.tar.gz")
	if _, err := runCmd(t, "backup", "--data", data, "--to", archive); err != nil {
		t.Fatalf("backup beside the server: %v", err)
	}
	if status, _, err := createPatient(p.base, rand.New(rand.NewPCG(4, 4)), 2); err != nil || status != http.StatusCreated {
		t.Fatalf("create after the backup: %d, %v", status, err)
	}
	ndjson := filepath.Join(t.TempDir(), "Patient.ndjson")
	os.WriteFile(ndjson, []byte(`{"resourceType":"Patient","id":"from-import"}`+"\n"), 0o600)

	for _, args := range [][]string{
		{"restore", "--from", archive, "--data", data, "--force"},
		{"migrate", "--data", data},
		{"import", "--data", data, "--format", "ndjson", ndjson},
		{"reindex", "--data", data},
		{"serve", "--data", data, "--addr", "127.0.0.1:0", "--insecure-no-auth"},
	} {
		_, err := runCmd(t, args...)
		t.Logf("%s: %v", args[0], err)
		if err == nil || !strings.Contains(err.Error(), "in use") {
			t.Errorf("%s beside the server: %v, want a refusal saying the directory is in use", args[0], err)
		}
	}
	// The server still has both Patients and takes writes.
	var patients struct{ Total int }
	if getJSON(t, p.base+"/Patient?_total=accurate", &patients); patients.Total != 2 {
		t.Errorf("Patients served after the refusals: %d, want 2", patients.Total)
	}
	if status, _, err := createPatient(p.base, rand.New(rand.NewPCG(5, 5)), 3); err != nil || status != http.StatusCreated {
		t.Errorf("create after the refusals: %d, %v", status, err)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t); err != nil {
		t.Fatalf("serve after SIGTERM: %v", err)
	}
	if out, err := runCmd(t, "restore", "--from", archive, "--data", data, "--force"); err != nil {
		t.Fatalf("restore once the server has stopped: %q, %v", out, err)
	}
	st, err := sqlite.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Read(context.Background(), "Patient", id); err != nil {
		t.Errorf("the backed-up Patient after the restore: %v", err)
	}
}

// export starts the bulk export kickoff url names and waits until it has
// completed.
func export(t *testing.T, kickoff string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, kickoff, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("Prefer", "respond-async")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	status := resp.Header.Get("Content-Location")
	if resp.StatusCode != http.StatusAccepted || status == "" {
		t.Fatalf("export kickoff: %s, Content-Location %q", resp.Status, status)
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		code, body := httpGet(t, status)
		switch code {
		case http.StatusAccepted:
			continue
		case http.StatusOK:
			return
		}
		t.Fatalf("export status: %d %s", code, body)
	}
	t.Fatal("the export did not complete within a minute")
}

// verify beside a server that updates and deletes resources while it reads
// finds nothing wrong: it reads the store as of one commit.
func TestVerifyBesideWrites(t *testing.T) {
	data := t.TempDir()
	p := start(t, "--data", data)
	put := func(id string, n int) error {
		body := fmt.Sprintf(`{"resourceType":"Patient","id":%q,"name":[{"family":"Family%d"}],"birthDate":"19%02d-01-01"}`, id, n, n%100)
		req, err := http.NewRequest(http.MethodPut, p.base+"/Patient/"+id, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/fhir+json")
		if n%5 == 4 {
			req, err = http.NewRequest(http.MethodDelete, p.base+"/Patient/"+id, nil)
			if err != nil {
				return err
			}
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			return fmt.Errorf("%s %s: %s", req.Method, req.URL, resp.Status)
		}
		return nil
	}
	for i := range 100 {
		if err := put(fmt.Sprintf("p%d", i), 0); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for n := 1; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := put(fmt.Sprintf("p%d", (w*25+n)%100), n); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 5 {
		if out, err := runCmd(t, "verify", "--data", data); err != nil {
			t.Errorf("verify beside writes: %v\n%s", err, out)
			break
		}
	}
	close(stop)
	wg.Wait()
}

// verify finds nothing wrong in a store written before references were
// stored once, which holds a row by id alone beside each reference that
// no search reads, and still reports a reference row that is missing.
func TestVerifyStoreWithReferencesByIDAlone(t *testing.T) {
	data := t.TempDir()
	if out, err := runCmd(t, "synth", "--data", data, "--patients", "2", "--clients", "1"); err != nil {
		t.Fatalf("synth: %q, %v", out, err)
	}
	db, err := sql.Open("sqlite", filepath.Join(data, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustExec := func(stmt string) int64 {
		t.Helper()
		res, err := db.Exec(stmt)
		if err != nil {
			t.Fatal(err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Each "rType/id" key with the "iid" key that earlier versions wrote
	// beside it.
	if n := mustExec(`INSERT INTO refs (pid, key, rid) SELECT pid, 'i' || substr(key, instr(key, '/') + 1), rid FROM refs WHERE key LIKE 'r%'`); n == 0 {
		t.Fatal("the store holds no reference to add a row by id alone to")
	}
	if out, err := runCmd(t, "verify", "--data", data); err != nil {
		t.Fatalf("verify a store with rows by id alone: %v\n%s", err, out)
	}
	mustExec(`DELETE FROM refs WHERE (pid, key, rid) IN (SELECT pid, key, rid FROM refs WHERE key LIKE 'r%' LIMIT 1)`)
	out, err := runCmd(t, "verify", "--data", data)
	if err == nil || exitCode(err, io.Discard) != 1 || !strings.Contains(out, "refs: ") {
		t.Errorf("verify a store missing a reference row: %v, want exit 1 naming refs:\n%s", err, out)
	}
}

// verify reads every version the store serves, not only the current
// ones: an earlier version that does not parse, or holds another
// versionId than it is stored under, is what vread and history would
// serve.
func TestVerifyChecksEarlierVersions(t *testing.T) {
	data := patientVersions(t, 3)
	out, err := runCmd(t, "verify", "--data", data)
	if err != nil || !strings.Contains(out, "and 2 earlier versions") {
		t.Fatalf("verify a sound store: %q, %v; want its 2 earlier versions counted", out, err)
	}
	db, err := sql.Open("sqlite", filepath.Join(data, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`UPDATE versions SET json = CAST('{"resourceType":"Patient","id":"p1","meta":{"versionId":"1"},"gender":7}' AS BLOB) WHERE type = 'Patient' AND id = 'p1' AND version = 1`,
		`UPDATE versions SET json = CAST('{"resourceType":"Patient","id":"p1","meta":{"versionId":"3"}}' AS BLOB) WHERE type = 'Patient' AND id = 'p1' AND version = 2`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			db.Close()
			t.Fatal(err)
		}
	}
	db.Close()
	out, err = runCmd(t, "verify", "--data", data)
	if err == nil || exitCode(err, io.Discard) != 1 {
		t.Errorf("verify a store with damaged earlier versions: %v, want exit 1", err)
	}
	for _, want := range []string{"Patient/p1 version 1: does not parse as Patient", `Patient/p1 version 2: holds id "p1" and meta.versionId "3"`} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
}

// A version an older release stored with a date on a day its month lacks
// (born 2023-02-29), which writes now refuse and the server still serves,
// is no problem to verify.
func TestVerifyStoredDaylessDate(t *testing.T) {
	data := patientVersions(t, 2)
	db, err := sql.Open("sqlite", filepath.Join(data, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`UPDATE versions SET json = CAST('{"resourceType":"Patient","id":"p1","meta":{"versionId":"1"},"birthDate":"2023-02-29"}' AS BLOB) WHERE type = 'Patient' AND id = 'p1' AND version = 1`)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := runCmd(t, "verify", "--data", data); err != nil || !strings.Contains(out, "no problem found") {
		t.Errorf("verify a store with a version born 2023-02-29: %v\n%s", err, out)
	}
}

// patientVersions returns a data directory whose store holds n versions of
// Patient/p1, written through a server that has since stopped.
func patientVersions(t *testing.T, n int) string {
	t.Helper()
	data := t.TempDir()
	p := start(t, "--data", data)
	for i := range n {
		body := fmt.Sprintf(`{"resourceType":"Patient","id":"p1","name":[{"family":"Family%d"}]}`, i)
		status, err := sendFHIR(http.MethodPut, p.base+"/Patient/p1", body)
		if err != nil {
			t.Fatal(err)
		}
		if status >= 300 {
			t.Fatalf("PUT Patient/p1: %d", status)
		}
	}
	p.cmd.Process.Signal(os.Interrupt)
	p.wait(t)
	return data
}

// A backup to standard output makes its snapshot in the data directory,
// which is sized for one, and so works where the temporary directory
// cannot be written, as in a container whose root file system is read
// only (docs/operations.md, Kubernetes).
func TestBackupToStdoutWithoutTempDir(t *testing.T) {
	data := t.TempDir()
	if out, err := runCmd(t, "synth", "--data", data, "--patients", "2", "--clients", "1"); err != nil {
		t.Fatalf("synth: %q, %v", out, err)
	}
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "read-only-root", "tmp"))
	archive, err := runCmd(t, "backup", "--data", data, "--to", "-")
	if err != nil {
		t.Fatalf("backup --to - with no temporary directory: %v", err)
	}
	file := filepath.Join(t.TempDir(), "backup.tar.gz")
	if err := os.WriteFile(file, []byte(archive), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runCmd(t, "restore", "--from", file, "--data", filepath.Join(t.TempDir(), "restored")); err != nil {
		t.Errorf("restore the backup written to standard output: %q, %v", out, err)
	}
	if entries, _ := os.ReadDir(data); len(entries) != 2 {
		t.Errorf("the data directory after the backup holds %d entries, want the database and its lock alone", len(entries))
	}
}

// A backup removes the snapshot directories that backups killed before
// they could remove their own left in the data directory (--to -), and
// leaves one that a running backup holds, and one just made.
func TestBackupRemovesWorkOfKilledBackups(t *testing.T) {
	data := t.TempDir()
	if out, err := runCmd(t, "synth", "--data", data, "--patients", "2", "--clients", "1"); err != nil {
		t.Fatalf("synth: %q, %v", out, err)
	}
	killed, running, fresh := leaveBackupWork(t, data)
	if _, err := runCmd(t, "backup", "--data", data, "--to", "-"); err != nil {
		t.Fatalf("backup --to -: %v", err)
	}
	checkBackupWork(t, killed, running, fresh)
}

// A server removes, when it opens its data directory, the snapshot
// directories that backups killed before they could remove their own left
// there, as a backup does: with no further backup, each stayed for good.
func TestServeRemovesWorkOfKilledBackups(t *testing.T) {
	data := t.TempDir()
	killed, running, fresh := leaveBackupWork(t, data)
	p := start(t, "--data", data)
	checkBackupWork(t, killed, running, fresh)
	if !strings.Contains(p.logs.String(), killed) {
		t.Errorf("the server did not log removing %s", killed)
	}
}

// leaveBackupWork leaves in data the snapshot directories of three
// backups: one killed an hour ago, one as old that a backup still locks
// (until the test ends), and one just made.
func leaveBackupWork(t *testing.T, data string) (killed, running, fresh string) {
	t.Helper()
	long := time.Now().Add(-time.Hour)
	leave := func(name string, at time.Time) string {
		dir := filepath.Join(data, name)
		db := filepath.Join(dir, sqlite.FileName)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(db, []byte("a copy of the database"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{db, dir} {
			if err := os.Chtimes(p, at, at); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	killed = leave(".carefhir-backup-111", long)
	running = leave(".carefhir-backup-222", long)
	unlock, err := sqlite.LockDir(running)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unlock() })
	for _, p := range []string{filepath.Join(running, sqlite.LockFileName), running} {
		if err := os.Chtimes(p, long, long); err != nil {
			t.Fatal(err)
		}
	}
	fresh = leave(".carefhir-backup-333", time.Now())
	return killed, running, fresh
}

// checkBackupWork fails the test unless the directory of the killed
// backup is gone and the two others are left.
func checkBackupWork(t *testing.T, killed, running, fresh string) {
	t.Helper()
	if _, err := os.Stat(killed); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the directory of a killed backup: %v, want it removed", err)
	}
	for _, dir := range []string{running, fresh} {
		if _, err := os.Stat(filepath.Join(dir, sqlite.FileName)); err != nil {
			t.Errorf("%s: %v, want it left", filepath.Base(dir), err)
		}
	}
}

// On a MongoDB deployment (CAREFHIR_MONGO_URI set) whose data directory
// comes from CAREFHIR_DATA, as in the container image, backup, restore and
// verify refuse, naming the variable, rather than act on a SQLite database
// left in that directory; a --data typed on the command line is acted on.
func TestSQLiteCommandsRefuseMongoDeployment(t *testing.T) {
	data := storeOfOnePatient(t)
	vars := map[string]string{"CAREFHIR_DATA": data, "CAREFHIR_MONGO_URI": "mongodb://db.example:27017/carefhir"}
	runEnv := func(args ...string) (string, error) {
		var out strings.Builder
		err := run(context.Background(), args, env(vars), &out, io.Discard)
		return out.String(), err
	}
	archive := filepath.Join(t.TempDir(), "b.tar.gz")
	for _, args := range [][]string{{"backup", "--to", archive}, {"verify"}, {"restore", "--from", archive, "--force"}} {
		out, err := runEnv(args...)
		var usage *usageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), "CAREFHIR_MONGO_URI names a MongoDB store") {
			t.Errorf("%s with CAREFHIR_MONGO_URI and CAREFHIR_DATA set: %q, %v; want a usage error naming CAREFHIR_MONGO_URI", args[0], out, err)
		}
	}
	if _, err := os.Stat(archive); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused backup wrote %s: %v", archive, err)
	}
	if out, err := runEnv("backup", "--data", data, "--to", archive); err != nil || !strings.HasPrefix(out, "backed up 1 resources") {
		t.Errorf("backup with --data typed: %q, %v", out, err)
	}
}

// TestPublishNeverReplacesAFile: the archive takes its name only if no
// file has it. One created while the backup ran (by another backup to
// the same name, or anything else) is kept as it was, and the backup
// fails saying so.
func TestPublishNeverReplacesAFile(t *testing.T) {
	dir := t.TempDir()
	partial, to := filepath.Join(dir, "partial"), filepath.Join(dir, "nightly.tar")
	if err := os.WriteFile(partial, []byte("archive"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, []byte("another's"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := publish(partial, to)
	if err == nil || !strings.Contains(err.Error(), "was created while the backup ran") {
		t.Errorf("publish onto an existing file: %v, want it refused", err)
	}
	if b, _ := os.ReadFile(to); string(b) != "another's" {
		t.Errorf("the existing file holds %q after publish, want it unchanged", b)
	}
	if err := os.Remove(to); err != nil {
		t.Fatal(err)
	}
	if err := publish(partial, to); err != nil {
		t.Fatalf("publish to a free name: %v", err)
	}
	if b, _ := os.ReadFile(to); string(b) != "archive" {
		t.Errorf("the archive holds %q, want the partial's content", b)
	}
}
