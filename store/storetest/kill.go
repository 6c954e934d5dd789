package storetest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"carefhir/store"
)

// Crash tests run a unit of work in a child process, the test binary run
// again with an environment variable set, and kill it with SIGKILL part-way.
// The child calls Stop where it is to be killed; the parent calls Kill and
// then, on the reopened store, CheckUnit:
//
//	func TestTransactKill(t *testing.T) {
//		if dir := os.Getenv(dirEnv); dir != "" {
//			child(dir) // opens the store, runs the unit, calls Stop
//			return
//		}
//		dir := t.TempDir()
//		storetest.Kill(t, "TestTransactKill", dirEnv+"="+dir)
//		storetest.CheckUnit(t, reopen(dir), storetest.CrashUnit(1000), storetest.AllOrNone)
//	}

// CrashUnit returns the writes of the unit of work of a crash test: n
// creates of Patient/k0000, k0001…, each with a body and an identifier of
// its own.
func CrashUnit(n int) []*store.Write {
	ws := make([]*store.Write, n)
	for i := range ws {
		id := fmt.Sprintf("k%04d", i)
		ws[i] = create("Patient", id, at(i), id, tok("identifier", "s", id))
	}
	return ws
}

// Stop tells the parent of a crash test's child that the child has reached
// the point where it is to be killed, and waits for that. It ends the process
// after a minute in case the parent never kills it.
func Stop() {
	Signal()
	time.Sleep(time.Minute)
	os.Exit(3)
}

// Signal tells the parent of a crash test's child to kill it now, and
// returns: the child goes on with its work until the kill lands.
func Signal() {
	fmt.Println(stopLine)
}

// stopLine is the line of a child's output that asks to be killed.
const stopLine = "stop"

// Kill runs the test named test again in a child process, with env added to
// the environment, and kills the child with SIGKILL as soon as it calls
// Stop or Signal. It fails t if the child ends before. It returns the other
// lines the child printed, those before the stop and those it printed before
// the kill landed.
func Kill(t *testing.T, test string, env ...string) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var printed []string
	stopped := false
	lines := bufio.NewScanner(out)
	for !stopped && lines.Scan() {
		if stopped = lines.Text() == stopLine; !stopped {
			printed = append(printed, lines.Text())
		}
	}
	if !stopped {
		cmd.Wait()
		t.Fatal("the child ended before reaching its stop")
	}
	// Process.Kill sends SIGKILL.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for lines.Scan() {
		if lines.Text() != stopLine {
			printed = append(printed, lines.Text())
		}
	}
	cmd.Wait()
	return printed
}

// Outcome is what a crash test accepts of a unit of work after the crash.
type Outcome int

// The outcomes a crash test can accept.
const (
	AllOrNone Outcome = iota // all of the unit's writes, or none
	All                      // all of them
	None                     // none of them
)

func (o Outcome) String() string {
	return [...]string{"all or none", "all", "none"}[o]
}

// CheckUnit fails the test unless s holds what want allows of ws, the
// creates of CrashUnit, and no other version.
func CheckUnit(t *testing.T, s store.Reader, ws []*store.Write, want Outcome) {
	t.Helper()
	checkUnit(t, s, ws, want, false)
}

// CheckUnitRestamped is CheckUnit for an engine that may stamp anew, later,
// the writes of a unit that it completes after the crash (store/mongo,
// whose journal another process completes a lease after it was stamped).
func CheckUnitRestamped(t *testing.T, s store.Reader, ws []*store.Write, want Outcome) {
	t.Helper()
	checkUnit(t, s, ws, want, true)
}

func checkUnit(t *testing.T, s store.Reader, ws []*store.Write, want Outcome, restamped bool) {
	t.Helper()
	found, err := s.Search(t.Context(), store.Query{Type: "Patient"})
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	switch {
	case len(found) == 0 && want != All:
	case len(found) == len(ws) && want != None:
		for i, v := range found {
			w := written(ws[i])
			if restamped && v.LastUpdated.After(w.LastUpdated) {
				w.LastUpdated = v.LastUpdated
			}
			if d := diff(v, w); d != "" {
				t.Fatalf("after the crash: %s", d)
			}
		}
	default:
		t.Fatalf("%d of the unit's %d resources after the crash, want %s", len(found), len(ws), want)
	}
	page, err := s.History(t.Context(), store.HistoryQuery{Count: 1})
	if err != nil || page.Total != len(found) {
		t.Errorf("history holds %d versions (%v), want %d", page.Total, err, len(found))
	}
}
