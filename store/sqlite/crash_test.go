package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"carefhir/store"
	"carefhir/store/sqlite"
	"carefhir/store/storetest"
)

// crashChildEnv switches the test binary into the child of
// TestCrashDurability; its value is the data directory.
const crashChildEnv = "CAREFHIR_SQLITE_CRASH_CHILD"

// crashBody is the JSON of resource id in the crash test.
func crashBody(id string) []byte {
	return []byte(fmt.Sprintf(`{"resourceType":"Patient","id":%q,"active":true,"weight":72.50}`, id))
}

// TestCrashDurability kills a process that is writing with SIGKILL and
// checks that every write it acknowledged is in the database.
func TestCrashDurability(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	var acked []string
	for _, line := range storetest.Kill(t, "TestCrashDurability", crashChildEnv+"="+dir) {
		if id, ok := strings.CutPrefix(line, "ack "); ok {
			acked = append(acked, id)
		}
	}
	if len(acked) < crashAcks {
		t.Fatalf("child acknowledged only %d writes before it was killed", len(acked))
	}

	s, err := sqlite.Open(dir)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	for _, id := range acked {
		v, err := s.Read(t.Context(), "Patient", id)
		if err != nil {
			t.Fatalf("acknowledged Patient/%s lost: %v", id, err)
		}
		if v.VersionID != 1 || string(v.JSON) != string(crashBody(id)) {
			t.Fatalf("acknowledged Patient/%s reads back as version %d %s", id, v.VersionID, v.JSON)
		}
	}
}

// crashAcks is how many acknowledged writes the child makes before it asks
// to be killed.
const crashAcks = 400

// crashChild creates resources from a few goroutines, so that group commit
// is in play, prints each id once its Put has returned, and asks to be
// killed after crashAcks of them while it goes on writing. It stops on its
// own after a while in case the parent never kills it.
func crashChild(dir string) {
	s, err := sqlite.Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var mu sync.Mutex
	acks := 0
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				id := fmt.Sprintf("g%d-%d", g, i)
				w := &store.Write{Type: "Patient", ID: id, LastUpdated: time.Now().UTC().Truncate(time.Millisecond),
					JSON: crashBody(id), Index: store.Index{Tokens: []store.Token{{Param: "identifier", System: "s", Code: id}}}}
				if err := s.Put(ctx, w); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return
				}
				mu.Lock()
				fmt.Printf("ack %s\n", id)
				if acks++; acks == crashAcks {
					storetest.Signal()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	os.Exit(0)
}
