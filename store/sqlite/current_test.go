package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"carefhir/store"
	"carefhir/store/sqlite"
)

// TestReadsSeeEveryCommit checks, through the ways a version changes, that
// a read after a write has been acknowledged finds that write, and a read
// after a unit of work failed finds what was there before it, however
// often the resource was read in between.
func TestReadsSeeEveryCommit(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, t.TempDir(), sqlite.Options{})
	defer s.Close()
	body := func(v int) string { return fmt.Sprintf(`{"resourceType":"Patient","id":"p1","gender":"v%d"}`, v) }
	want := func(step string, version int64, deleted bool, json string) {
		t.Helper()
		for range 2 { // the first read may fill a cache, the second find it there
			v, err := s.Read(ctx, "Patient", "p1")
			if err != nil {
				t.Fatalf("%s: %v", step, err)
			}
			if v.VersionID != version || v.Deleted != deleted || string(v.JSON) != json {
				t.Fatalf("%s: read version %d (deleted %v) %s, want %d (deleted %v) %s", step, v.VersionID, v.Deleted, v.JSON, version, deleted, json)
			}
			// A caller that changes what it was given changes nothing stored.
			for i := range v.JSON {
				v.JSON[i] = 'x'
			}
		}
	}

	if err := s.Put(ctx, patient("p1", 0, body(1))); err != nil {
		t.Fatal(err)
	}
	want("create", 1, false, body(1))

	if err := s.Put(ctx, patient("p1", 1, body(2))); err != nil {
		t.Fatal(err)
	}
	want("update by Put", 2, false, body(2))

	if err := s.Transact(ctx, func(tx store.Tx) error { return tx.Put(ctx, patient("p1", 2, body(3))) }); err != nil {
		t.Fatal(err)
	}
	want("update in a unit of work", 3, false, body(3))

	failed := errors.New("refused")
	err := s.Transact(ctx, func(tx store.Tx) error {
		if err := tx.Put(ctx, patient("p1", 3, body(4))); err != nil {
			return err
		}
		// Inside the unit, its own write is what a read finds.
		if v, err := tx.Read(ctx, "Patient", "p1"); err != nil || v.VersionID != 4 {
			t.Errorf("read inside the unit: %v, %v", v, err)
		}
		return failed
	})
	if !errors.Is(err, failed) {
		t.Fatalf("failed unit: %v", err)
	}
	want("unit of work rolled back", 3, false, body(3))

	del := patient("p1", 3, "")
	del.Deleted = true
	if err := s.Put(ctx, del); err != nil {
		t.Fatal(err)
	}
	want("delete", 4, true, "")

	if err := s.Put(ctx, patient("p1", 4, body(5))); err != nil {
		t.Fatal(err)
	}
	want("recreate", 5, false, body(5))
}

// TestReadsUnderConcurrentWrites checks that no read returns a version
// older than one whose write was acknowledged before the read began,
// while writers update resources that readers read over and over.
func TestReadsUnderConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, t.TempDir(), sqlite.Options{})
	defer s.Close()
	const resources, updates = 4, 150
	acked := make([]atomic.Int64, resources)
	for i := range resources {
		if err := s.Put(ctx, patient(fmt.Sprint("p", i), 0, `{"resourceType":"Patient"}`)); err != nil {
			t.Fatal(err)
		}
		acked[i].Store(1)
	}
	var writers, readers sync.WaitGroup
	done := make(chan struct{})
	var stale atomic.Int64
	var reads atomic.Int64
	for i := range resources {
		writers.Go(func() {
			for v := int64(1); v <= updates; v++ {
				if err := s.Put(ctx, patient(fmt.Sprint("p", i), v, fmt.Sprintf(`{"resourceType":"Patient","gender":"%d"}`, v+1))); err != nil {
					t.Error(err)
					return
				}
				acked[i].Store(v + 1)
			}
		})
	}
	for r := range 4 {
		readers.Go(func() {
			for n := r; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				i := n % resources
				min := acked[i].Load()
				v, err := s.Read(ctx, "Patient", fmt.Sprint("p", i))
				if err != nil {
					t.Error(err)
					return
				}
				reads.Add(1)
				if v.VersionID < min {
					if stale.Add(1) <= 3 {
						t.Errorf("p%d: read version %d after version %d was acknowledged", i, v.VersionID, min)
					}
				}
			}
		})
	}
	writers.Wait()
	close(done)
	readers.Wait()
	if n := stale.Load(); n > 0 {
		t.Errorf("%d of %d reads found a version older than an acknowledged one", n, reads.Load())
	}
	for i := range resources {
		if v, err := s.Read(ctx, "Patient", fmt.Sprint("p", i)); err != nil || v.VersionID != updates+1 {
			t.Errorf("p%d at the end: %v, %v", i, v, err)
		}
	}
}
