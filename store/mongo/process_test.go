package mongo_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"carefhir/store"
	storemongo "carefhir/store/mongo"
	"carefhir/store/mongo/ferrettest"
)

// The child processes of TestJournalProcesses are the test binary run
// with these set: the role of the child, the URI of the FerretDB all share
// and, for the unit's owner, the step of the commit at which it stops.
const (
	procRoleEnv = "CAREFHIR_MONGO_PROC_ROLE"
	procURIEnv  = "CAREFHIR_MONGO_PROC_URI"
	procStopEnv = "CAREFHIR_MONGO_PROC_STOP"
	// procConflictEnv set makes the owner's unit meet a write of another
	// process while it is applied, so that it is undone.
	procConflictEnv = "CAREFHIR_MONGO_PROC_CONFLICT"
)

// Roles of the child processes.
const (
	roleOwner   = "owner"   // commits unit, stopping at a step
	roleOther   = "other"   // starts while the owner is stopped and commits otherUnit
	roleSettler = "settler" // starts, lets an hour pass on its clock and sweeps
)

// otherUnit is the unit of work of the other process: an update of a
// resource the owner's unit also updates, and a create.
var otherUnit = []*store.Write{patient("a", 1, 3000, "a-by-other"), patient("y", 0, 3000, "y1")}

// TestJournalProcesses runs units of work in child processes sharing one
// FerretDB. The owner commits unit and stops at a step of the protocol;
// meanwhile another process starts and commits a unit that overlaps it.
// Then the owner is either killed with SIGKILL, or left stalled while a
// process whose clock has passed the owner's lease takes the unit over, and
// then resumed. Whatever the step: each unit ends all or nothing, every
// process that answered said success exactly when its unit ended applied,
// and the journal ends empty.
func TestJournalProcesses(t *testing.T) {
	if role := os.Getenv(procRoleEnv); role != "" {
		procChild(t, role)
		return
	}
	if testing.Short() {
		t.Skip("starts child processes")
	}
	type step struct {
		stop     string
		conflict bool
	}
	steps := []step{{stop: storemongo.StageRecorded + " 0"}, {stop: fmt.Sprintf("%s %d", storemongo.StageJournaled, len(unit))},
		{stop: storemongo.StageCommitted + " 0"}, {stop: storemongo.StageFinished + " 0"}}
	for n := 1; n <= len(unit); n++ {
		steps = append(steps, step{stop: fmt.Sprintf("%s %d", storemongo.StageApplied, n)})
	}
	for n := 1; n <= 2; n++ {
		steps = append(steps, step{stop: fmt.Sprintf("%s %d", storemongo.StageUndone, n), conflict: true})
	}
	for _, st := range steps {
		for _, kill := range []bool{true, false} {
			name := st.stop
			if kill {
				name += ", killed"
			} else {
				name += ", stalled and taken over"
			}
			t.Run(name, func(t *testing.T) {
				uri, _ := openBase(t)
				env := []string{procURIEnv + "=" + uri, procStopEnv + "=" + st.stop}
				if st.conflict {
					env = append(env, procConflictEnv+"=1")
				}
				owner := startProc(t, roleOwner, env...)
				if !owner.waitFor("stop") {
					t.Fatalf("the owner ended before its stop: %q", owner.lines)
				}
				otherSaid := runProc(t, roleOther, env...)
				var ownerSaid string
				if kill {
					owner.kill()
				} else {
					runProc(t, roleSettler, env...)
					ownerSaid = owner.resume()
				}
				// A process starting later settles what is left.
				after := reopen(t, uri)
				ownerApplied := unitOutcome(t, after, committedWrites(unit))
				otherApplied := unitOutcome(t, after, otherUnit)
				checkSaid(t, "the owner", ownerSaid, ownerApplied)
				checkSaid(t, "the other process", otherSaid, otherApplied)
				db := connect(t, uri).Database(ferrettest.Database)
				for _, coll := range []string{"journal", "journal_writes"} {
					if n, err := db.Collection(coll).CountDocuments(t.Context(), bson.D{}); err != nil || n != 0 {
						t.Errorf("%s holds %d documents (%v), want none", coll, n, err)
					}
				}
			})
		}
	}
}

// committedWrites returns the writes of ws that give each resource its
// last version.
func committedWrites(ws []*store.Write) []*store.Write {
	var out []*store.Write
	for i, w := range ws {
		last := true
		for _, later := range ws[i+1:] {
			last = last && (later.Type != w.Type || later.ID != w.ID)
		}
		if last {
			out = append(out, w)
		}
	}
	return out
}

// unitOutcome reports whether the unit that wrote ws ended applied (every
// version it wrote is stored) and fails the test if it ended partly
// applied.
func unitOutcome(t *testing.T, s store.Reader, ws []*store.Write) bool {
	t.Helper()
	var applied, missing []string
	for _, w := range ws {
		v, err := s.VRead(t.Context(), w.Type, w.ID, w.VersionID())
		if err == nil && v.Deleted == w.Deleted && string(v.JSON) == string(w.JSON) {
			applied = append(applied, w.ID)
		} else {
			missing = append(missing, w.ID)
		}
	}
	if len(applied) > 0 && len(missing) > 0 {
		t.Errorf("unit partly applied: versions of %v stored, of %v not", applied, missing)
	}
	return len(missing) == 0
}

// checkSaid fails the test if a process that answered said success when
// its unit was not applied, or failure when it was.
func checkSaid(t *testing.T, who, said string, applied bool) {
	t.Helper()
	switch {
	case said == "":
		// Killed: no answer.
	case said == "ok" && !applied:
		t.Errorf("%s said its unit succeeded, but it was not applied", who)
	case said != "ok" && applied:
		t.Errorf("%s said its unit failed (%s), but it ended applied", who, said)
	}
}

// proc is a running child process.
type proc struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Scanner
	lines []string
}

// startProc runs this test again in a child process in role, with env.
func startProc(t *testing.T, role string, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestJournalProcesses$")
	cmd.Env = append(append(os.Environ(), procRoleEnv+"="+role), env...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, in: in, out: bufio.NewScanner(out)}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return p
}

// waitFor reads the child's lines until one is line, and reports whether
// one was before the child ended.
func (p *proc) waitFor(line string) bool {
	for p.out.Scan() {
		if p.out.Text() == line {
			return true
		}
		p.lines = append(p.lines, p.out.Text())
	}
	return false
}

// result reads the child's lines to its end and returns what it said of
// its unit: "ok", or the error.
func (p *proc) result() string {
	said := ""
	for p.out.Scan() {
		if r, ok := strings.CutPrefix(p.out.Text(), "result "); ok {
			said = r
		}
	}
	_ = p.cmd.Wait()
	if said == "" {
		p.t.Fatalf("the child said nothing of its unit")
	}
	return said
}

// kill kills the child with SIGKILL (Process.Kill).
func (p *proc) kill() {
	if err := p.cmd.Process.Kill(); err != nil {
		p.t.Fatal(err)
	}
	_ = p.cmd.Wait()
}

// resume lets a stopped child go on, and returns what it said of its unit.
func (p *proc) resume() string {
	if _, err := io.WriteString(p.in, "go\n"); err != nil {
		p.t.Fatal(err)
	}
	return p.result()
}

// runProc runs a child in role to its end and returns what it said of its
// unit ("" for the settler, which has none).
func runProc(t *testing.T, role string, env ...string) string {
	t.Helper()
	p := startProc(t, role, env...)
	if role == roleSettler {
		_ = p.cmd.Wait()
		if p.cmd.ProcessState.ExitCode() != 0 {
			t.Fatalf("the settler failed")
		}
		return ""
	}
	return p.result()
}

// procChild is the body of a child process of TestJournalProcesses.
func procChild(t *testing.T, role string) {
	ctx := context.Background()
	uri := os.Getenv(procURIEnv)
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var opts []storemongo.Option
	clock := newClock(time.Hour)
	if role == roleSettler {
		opts = append(opts, storemongo.WithClock(clock.now))
	}
	s, err := storemongo.Open(ctx, uri, opts...)
	if err != nil {
		fail(err)
	}
	defer s.Close()
	var ws []*store.Write
	switch role {
	case roleSettler:
		// Open saw the units in the journal; an hour later by this
		// process's clock, they are taken for those of a dead process.
		clock.advance(time.Hour)
		if err := storemongo.Sweep(ctx, s); err != nil {
			fail(err)
		}
		return
	case roleOther:
		ws = otherUnit
	case roleOwner:
		ws = unit
		other, err := storemongo.Open(ctx, uri)
		if err != nil {
			fail(err)
		}
		defer other.Close()
		stop := os.Getenv(procStopEnv)
		stdin := bufio.NewScanner(os.Stdin)
		storemongo.SetHook(s, func(stage string, n int) error {
			if os.Getenv(procConflictEnv) != "" && stage == storemongo.StageApplied && n == 4 {
				if err := other.Put(ctx, patient("x", 1, 2000, "x-other")); err != nil {
					fail(err)
				}
			}
			if fmt.Sprintf("%s %d", stage, n) == stop {
				fmt.Println("stop")
				stdin.Scan() // killed here, or told to go on
			}
			return nil
		})
	}
	err = s.Transact(ctx, func(tx store.Tx) error {
		for _, w := range ws {
			if err := tx.Put(ctx, w); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		fmt.Printf("result %v\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return
	}
	fmt.Println("result ok")
}
