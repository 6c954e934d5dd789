package sqlite_test

import (
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"carefhir/store"
	"carefhir/store/sqlite"
	"carefhir/store/sqlite/internal/powercut"
)

// A power cut loses what the disk had not been told to keep. These tests run
// the store through the powercut VFS, which keeps beside each file what a
// power cut would leave of it (its contents as of its last fsync), under a
// load of creates and transactions from 8 goroutines; they cut the power
// many times while the load runs, at random moments and at the steps of a
// checkpoint, write what each cut leaves to a fresh directory, reopen it
// with the ordinary engine and check every write acknowledged before the
// cut.

// TestPowerCutKeepsAcknowledgedWrites is SyncFull (--sync full): every
// acknowledged write survives every cut, and so does every write a reader
// found, acknowledged or not: under synchronous=FULL, COMMIT fsyncs the
// WAL before it publishes the commit to readers.
func TestPowerCutKeepsAcknowledgedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("writes under load for a few seconds")
	}
	// Checkpoints every few milliseconds, so that cuts land on every step
	// of one.
	run := runPowerCuts(t, sqlite.Options{SyncFull: true, CheckpointInterval: 3 * time.Millisecond}, allCuts...)
	seen := 0
	for _, c := range run.cuts {
		if len(c.lost) > 0 {
			t.Errorf("cut %s: %d of the %d writes acknowledged before it are lost, such as %s",
				c.at, len(c.lost), c.acked, strings.Join(c.lost[:min(3, len(c.lost))], ", "))
		}
		if len(c.unseen) > 0 {
			t.Errorf("cut %s: %d of the %d writes read before it are lost, such as %s: a reader was told of writes not yet on the disk",
				c.at, len(c.unseen), c.seen, strings.Join(c.unseen[:min(3, len(c.unseen))], ", "))
		}
		seen = max(seen, c.seen)
	}
	if seen == 0 {
		t.Error("the readers found no write in flight before any cut")
	}
	for _, at := range allCuts {
		if run.kinds[at] == 0 {
			t.Errorf("no cut %s: the load never reached that step", at)
		}
	}
}

// TestPowerCutNormalLosesAcknowledgedWrites shows what the test above
// guards against: with synchronous=NORMAL, the default, a commit is acknowledged before
// its WAL frames are fsynced (that happens at the next checkpoint, here
// none after the first), so a power cut loses acknowledged writes. The
// database stays consistent.
func TestPowerCutNormalLosesAcknowledgedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("writes under load for a few seconds")
	}
	run := runPowerCuts(t, sqlite.Options{CheckpointInterval: time.Hour}, cutTimed)
	lost := 0
	for _, c := range run.cuts {
		lost += len(c.lost)
	}
	if lost == 0 {
		t.Errorf("no acknowledged write lost in %d cuts with synchronous=NORMAL: the cuts do not drop what was not fsynced", len(run.cuts))
	}
}

// Where a cut lands.
const (
	cutTimed            = "at a random moment"
	cutCommitSync       = "as a commit's fsync of the WAL returns"
	cutCheckpointWrite  = "while a checkpoint copies pages into the database file"
	cutCheckpointSynced = "once a checkpoint has fsynced the database file"
	cutWALRestart       = "as the WAL restarts from its beginning after a checkpoint"
)

var allCuts = []string{cutTimed, cutCommitSync, cutCheckpointWrite, cutCheckpointSynced, cutWALRestart}

// powerCut is one cut and what reopening its image found.
type powerCut struct {
	at    string
	acked int      // writes acknowledged before the cut
	lost  []string // of those, the ones missing or wrong after it
	seen  int      // writes read back before the cut
	// unseen are the writes read back before the cut, acknowledged or
	// not, that are missing after it: a reader was told of a write the
	// cut undid.
	unseen []string
	image  powercut.Image
}

// cutRun is the outcome of runPowerCuts.
type cutRun struct {
	cuts  []*powerCut
	kinds map[string]int // cuts by where they landed
}

// ledger records the writes the load has made and had acknowledged.
type ledger struct {
	mu    sync.Mutex
	acked []string   // ids, in the order their Put or Transact returned
	units [][]string // the ids of each unit of work begun
	seen  []string   // ids a reader found, in the order it first did
	found map[string]bool
}

func (l *ledger) see(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.found[id] {
		l.found[id] = true
		l.seen = append(l.seen, id)
	}
}

// counts returns how many writes have been acknowledged and seen.
func (l *ledger) counts() (acked, seen int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked), len(l.seen)
}

func (l *ledger) ack(ids ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acked = append(l.acked, ids...)
}

func (l *ledger) begin(ids []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.units = append(l.units, ids)
}

func (l *ledger) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// Sizes of the load and of the cuts.
const (
	powerCutCreators   = 6  // goroutines creating one resource per Put
	powerCutTransactor = 2  // goroutines committing units of work
	powerCutUnit       = 5  // creates in each unit of work
	powerCutsTimed     = 8  // cuts at random moments
	powerCutsPerStep   = 2  // cuts at each step of a checkpoint or commit
	powerCutMinAcks    = 50 // acknowledged writes before the first cut
	powerCutReaders    = 2  // goroutines reading the creators' writes in flight
)

// runPowerCuts runs the load on a store opened with opts through the
// powercut VFS, cuts the power at the moments above while it runs (until it
// has cut at each of the moments required, or for 20 s), and
// checks what each cut leaves: the database is intact, each unit of work is
// all there or not at all, and each acknowledged write is listed in lost
// unless it reads back as written.
func runPowerCuts(t *testing.T, opts sqlite.Options, required ...string) *cutRun {
	fs, err := powercut.New()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := fs.Close(); err != nil {
			t.Error(err)
		}
	}()
	dir := t.TempDir()
	opts.VFS = fs.Name()
	s := mustOpen(t, dir, opts)
	var (
		l       = ledger{found: map[string]bool{}}
		cutsMu  sync.Mutex
		run     = &cutRun{kinds: map[string]int{}}
		allDone = make(chan struct{})
	)
	// want reports whether to cut at, and keeps a cut's place if so.
	want := func(at string) bool {
		cutsMu.Lock()
		defer cutsMu.Unlock()
		return l.ackedCount() >= powerCutMinAcks && run.kinds[at] < powerCutsPerStep
	}
	record := func(at string, acked, seen int, im powercut.Image) {
		cutsMu.Lock()
		defer cutsMu.Unlock()
		run.cuts = append(run.cuts, &powerCut{at: at, acked: acked, seen: seen, image: im})
		run.kinds[at]++
		for _, at := range required {
			if run.kinds[at] == 0 || at == cutTimed && run.kinds[at] < powerCutsTimed {
				return
			}
		}
		if !closed(allDone) {
			close(allDone)
		}
	}
	// cutNow cuts the power from a watcher: no write can start or finish
	// while it runs, and each write acknowledged by then had its commit
	// return.
	cutNow := func(at string, cut func() powercut.Image) {
		if want(at) {
			acked, seen := l.counts()
			record(at, acked, seen, cut())
		}
	}
	dbPath, walPath := filepath.Join(dir, sqlite.FileName), filepath.Join(dir, sqlite.FileName+"-wal")
	var dbWrites, walSyncs int
	fs.Watch(func(e powercut.Event, cut func() powercut.Image) {
		switch {
		case e.Path == dbPath && e.Op == powercut.Write:
			// Every 40th page a checkpoint copies, from the 20th on.
			if dbWrites++; dbWrites%40 == 20 {
				cutNow(cutCheckpointWrite, cut)
			}
		case e.Path == dbPath && e.Op == powercut.Sync:
			cutNow(cutCheckpointSynced, cut)
		case e.Path == walPath && e.Op == powercut.Write && e.Off == 0:
			cutNow(cutWALRestart, cut)
		case e.Path == walPath && e.Op == powercut.Sync:
			if walSyncs++; walSyncs%25 == 0 {
				cutNow(cutCommitSync, cut)
			}
		}
	})

	stop := make(chan struct{})
	var (
		wg sync.WaitGroup
		// pause holds the writers back for a moment now and then: a
		// checkpoint copies the whole WAL only when writes leave it
		// time to, and only then does the next write restart the WAL.
		pause sync.RWMutex
	)
	ctx := t.Context()
	// inFlight holds the id each creator is writing, which readers look
	// for: they find it between its commit and its acknowledgement.
	var inFlight [powerCutCreators]atomic.Pointer[string]
	for g := range powerCutCreators {
		wg.Go(func() {
			for i := 0; !closed(stop); i++ {
				id := fmt.Sprintf("c%d-%d", g, i)
				inFlight[g].Store(&id)
				pause.RLock()
				err := s.Put(ctx, powerCutWrite(id))
				pause.RUnlock()
				if err != nil {
					t.Error(err)
					return
				}
				l.ack(id)
			}
		})
	}
	for g := range powerCutTransactor {
		wg.Go(func() {
			for i := 0; !closed(stop); i++ {
				ids := make([]string, powerCutUnit)
				for j := range ids {
					ids[j] = fmt.Sprintf("t%d-%d-%d", g, i, j)
				}
				l.begin(ids)
				pause.RLock()
				err := s.Transact(ctx, func(tx store.Tx) error {
					for _, id := range ids {
						if err := tx.Put(ctx, powerCutWrite(id)); err != nil {
							return err
						}
					}
					return nil
				})
				pause.RUnlock()
				if err != nil {
					t.Error(err)
					return
				}
				l.ack(ids...)
			}
		})
	}
	for range powerCutReaders {
		wg.Go(func() {
			for !closed(stop) {
				for g := range inFlight {
					id := inFlight[g].Load()
					if id == nil {
						continue
					}
					switch _, err := s.Read(ctx, "Patient", *id); {
					case err == nil:
						l.see(*id)
					case !errors.Is(err, store.ErrNotFound):
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		for timed := 0; timed < powerCutsTimed; {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(5+rng.IntN(60)) * time.Millisecond):
			}
			// The count comes first: each write acknowledged by then has
			// had its commit return before the cut.
			if acked, seen := l.counts(); acked >= powerCutMinAcks {
				record(cutTimed, acked, seen, fs.Cut())
				timed++
			}
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			pause.Lock()
			time.Sleep(50 * time.Millisecond)
			pause.Unlock()
		}
	})
	select {
	case <-allDone:
	case <-time.After(20 * time.Second):
	}
	close(stop)
	wg.Wait()
	fs.Watch(nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	t.Logf("%d writes acknowledged, %d read while in flight, %d cuts", len(l.acked), len(l.seen), len(run.cuts))
	for _, c := range run.cuts {
		checkCut(t, c, l.acked[:c.acked], l.seen[:c.seen], l.units)
		t.Logf("cut %s: %d acknowledged before it, %d lost", c.at, c.acked, len(c.lost))
		c.image = nil
	}
	return run
}

// checkCut reopens what cut c left and fills in c.lost from acked: the
// writes acknowledged before it, and c.unseen from seen: those read. It fails t if the database is damaged or a
// unit of work is there in part.
func checkCut(t *testing.T, c *powerCut, acked, seen []string, units [][]string) {
	t.Helper()
	dir := t.TempDir()
	if err := c.image.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	var check string
	err = db.QueryRow(`PRAGMA integrity_check`).Scan(&check)
	db.Close()
	if err != nil || check != "ok" {
		t.Fatalf("cut %s: integrity check: %q, %v", c.at, check, err)
	}
	s, err := sqlite.Open(dir)
	if err != nil {
		t.Fatalf("cut %s: reopen: %v", c.at, err)
	}
	defer s.Close()
	present := func(id string) bool {
		v, err := s.Read(t.Context(), "Patient", id)
		return err == nil && v.VersionID == 1 && string(v.JSON) == string(crashBody(id))
	}
	for _, id := range acked {
		if !present(id) {
			c.lost = append(c.lost, id)
		}
	}
	for _, id := range seen {
		if !present(id) {
			c.unseen = append(c.unseen, id)
		}
	}
	for _, unit := range units {
		n := 0
		for _, id := range unit {
			if present(id) {
				n++
			}
		}
		if n != 0 && n != len(unit) {
			t.Errorf("cut %s: %d of the %d writes of a unit of work are there (%s…)", c.at, n, len(unit), unit[0])
		}
	}
}

// powerCutWrite is the create of Patient id.
func powerCutWrite(id string) *store.Write {
	return &store.Write{Type: "Patient", ID: id, LastUpdated: time.Now().UTC().Truncate(time.Millisecond),
		JSON: crashBody(id), Index: store.Index{Tokens: []store.Token{{Param: "identifier", System: "s", Code: id}}}}
}

// closed reports whether ch is closed.
func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
