package logbuf

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a destination that can be read while lines are written.
type syncBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCloseWritesEveryLine logs from many goroutines up to the moment of
// Close, as requests do up to shutdown: every line is there, whole, and
// each goroutine's lines are in the order it logged them.
func TestCloseWritesEveryLine(t *testing.T) {
	var out syncBuffer
	w := New(&out, time.Hour) // nothing is written before Close but bursts
	log := slog.New(slog.NewTextHandler(w, nil))
	const goroutines, lines = 8, 5000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range lines {
				log.Info("request", "g", g, "i", i, "path", "/fhir/Patient/"+strings.Repeat("x", i%50))
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) != goroutines*lines {
		t.Fatalf("%d lines written, want %d", len(got), goroutines*lines)
	}
	next := make([]int, goroutines)
	for _, line := range got {
		var g, i int
		if _, err := fmt.Sscanf(line[strings.Index(line, " g="):], " g=%d i=%d", &g, &i); err != nil || !strings.HasSuffix(line, strings.Repeat("x", i%50)) {
			t.Fatalf("line %q is not whole (%v)", line, err)
		}
		if i != next[g] {
			t.Fatalf("goroutine %d: line %d written where %d was due", g, i, next[g])
		}
		next[g]++
	}
	if out.writes >= goroutines*lines/10 {
		t.Errorf("%d writes for %d lines: lines are not batched", out.writes, len(got))
	}
}

// TestLinesGoOutWithoutClose: a line waits at most about the interval.
func TestLinesGoOutWithoutClose(t *testing.T) {
	var out syncBuffer
	w := New(&out, time.Millisecond)
	defer w.Close()
	fmt.Fprintln(w, "started")
	for !strings.Contains(out.String(), "started\n") {
		time.Sleep(time.Millisecond) // the test fails by its timeout if never
	}
}

// TestWritesAfterCloseFollow: a line logged after Close (a late goroutine)
// is written at once, after those written by Close.
func TestWritesAfterCloseFollow(t *testing.T) {
	var out syncBuffer
	w := New(&out, time.Hour)
	fmt.Fprintln(w, "one")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(w, "two")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "one\ntwo\n" {
		t.Fatalf("got %q", got)
	}
}
