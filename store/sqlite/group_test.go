package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"carefhir/store"
	"carefhir/store/sqlite"
	"carefhir/store/sqlite/internal/powercut"
)

// TestGroupedUnitsStandAlone runs units of work and Puts from 8 goroutines
// at once, so that they share commits, with every third unit failing after
// its writes and some writes conflicting: each unit that succeeded is there
// whole, search rows included, each that failed is not there at all, and a
// conflict or failure takes nothing else with it.
func TestGroupedUnitsStandAlone(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts sqlite.Options
	}{
		{"sync full", sqlite.Options{SyncFull: true}},
		{"sync normal", sqlite.Options{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := mustOpen(t, t.TempDir(), tt.opts)
			defer s.Close()
			ctx := t.Context()
			errAbandon := errors.New("abandoned")
			var (
				mu               sync.Mutex
				kept, abandoned  []string
				putOK, conflicts int
				wg               sync.WaitGroup
			)
			for g := range 8 {
				wg.Go(func() {
					for i := range 30 {
						a, b := fmt.Sprintf("u%d-%d-a", g, i), fmt.Sprintf("u%d-%d-b", g, i)
						err := s.Transact(ctx, func(tx store.Tx) error {
							for _, id := range []string{a, b} {
								if err := tx.Put(ctx, patient(id, 0, `{}`)); err != nil {
									return err
								}
							}
							if i%3 == 0 {
								return errAbandon
							}
							return nil
						})
						mu.Lock()
						switch {
						case err == nil:
							kept = append(kept, a, b)
						case errors.Is(err, errAbandon):
							abandoned = append(abandoned, a, b)
						default:
							t.Errorf("unit %s: %v", a, err)
						}
						mu.Unlock()
						// A Put of a new resource, and one that conflicts.
						id := fmt.Sprintf("p%d-%d", g, i)
						if err := s.Put(ctx, patient(id, 0, `{}`)); err != nil {
							t.Errorf("Put %s: %v", id, err)
						}
						err = s.Put(ctx, patient(id, 0, `{}`))
						var conflict *store.ConflictError
						mu.Lock()
						putOK++
						if errors.As(err, &conflict) {
							conflicts++
						}
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if conflicts != putOK {
				t.Errorf("%d of %d second creates of the same id conflicted, want all", conflicts, putOK)
			}
			for _, id := range kept {
				if _, err := s.Read(ctx, "Patient", id); err != nil {
					t.Errorf("Patient/%s of a unit that succeeded: %v", id, err)
				}
				checkIdentifierFinds(t, s, id, id)
			}
			for _, id := range abandoned {
				if _, err := s.Read(ctx, "Patient", id); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("Patient/%s of a unit that failed: %v, want ErrNotFound", id, err)
				}
				// The resources written after it took its row numbers:
				// none of them may carry its search rows.
				checkIdentifierFinds(t, s, id)
			}
			for g := range 8 {
				for i := range 30 {
					if _, err := s.Read(ctx, "Patient", fmt.Sprintf("p%d-%d", g, i)); err != nil {
						t.Errorf("Patient/p%d-%d: %v", g, i, err)
					}
				}
			}
		})
	}
}

// checkIdentifierFinds checks that Patient?identifier=s|code finds the
// Patients ids.
func checkIdentifierFinds(t *testing.T, s store.Store, code string, ids ...string) {
	t.Helper()
	got, err := s.Search(t.Context(), store.Query{Type: "Patient", Where: []store.Clause{{Param: "identifier", Tokens: []store.TokenMatch{{System: "s", Code: code}}}}})
	if err != nil {
		t.Fatalf("Patient?identifier=s|%s: %v", code, err)
	}
	var found []string
	for _, v := range got {
		found = append(found, v.ID)
	}
	if !slices.Equal(found, ids) {
		t.Errorf("Patient?identifier=s|%s found %v, want %v", code, found, ids)
	}
}

// TestLoneUnitRolledBack runs units of work one at a time, so that each
// begins a group of its own (and so has no savepoint): a unit that fails,
// after writes that added a search parameter the store had not seen, leaves
// neither its resources nor their search values, and the units before and
// after it are kept whole.
func TestLoneUnitRolledBack(t *testing.T) {
	s := mustOpen(t, t.TempDir(), sqlite.Options{})
	defer s.Close()
	ctx := t.Context()
	errAbandon := errors.New("abandoned")
	unit := func(id, param string, fail bool) error {
		return s.Transact(ctx, func(tx store.Tx) error {
			w := patient(id, 0, `{}`)
			w.Index.Tokens = append(w.Index.Tokens, store.Token{Param: param, System: "s", Code: id})
			if err := tx.Put(ctx, w); err != nil {
				return err
			}
			if fail {
				return errAbandon
			}
			return nil
		})
	}
	if err := unit("before", "identifier", false); err != nil {
		t.Fatal(err)
	}
	if err := unit("failed", "new-param", true); !errors.Is(err, errAbandon) {
		t.Fatalf("failing unit: %v, want %v", err, errAbandon)
	}
	if err := unit("after", "new-param", false); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]error{"before": nil, "failed": store.ErrNotFound, "after": nil} {
		if _, err := s.Read(ctx, "Patient", id); !errors.Is(err, want) {
			t.Errorf("Patient/%s: %v, want %v", id, err, want)
		}
	}
	for code, want := range map[string]int{"failed": 0, "after": 1} {
		got, err := s.Search(ctx, store.Query{Type: "Patient", Where: []store.Clause{{Param: "new-param", Tokens: []store.TokenMatch{{System: "s", Code: code}}}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != want {
			t.Errorf("Patient?new-param=s|%s: %d matches, want %d", code, len(got), want)
		}
	}
}

// TestGroupedUnitsShareFsync counts the fsyncs of the WAL while units of
// work of one write each come from 8 goroutines at once with
// synchronous=FULL: they share them, fewer fsyncs than units, and with
// group commit off (MaxBatch 1) each unit has its own.
func TestGroupedUnitsShareFsync(t *testing.T) {
	const goroutines, each = 8, 40
	for _, tt := range []struct {
		name   string
		opts   sqlite.Options
		shared bool
	}{
		{"group commit", sqlite.Options{SyncFull: true}, true},
		{"group commit off", sqlite.Options{SyncFull: true, MaxBatch: 1}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := powercut.New()
			if err != nil {
				t.Fatal(err)
			}
			defer fs.Close()
			dir := t.TempDir()
			opts := tt.opts
			opts.VFS = fs.Name()
			s := mustOpen(t, dir, opts)
			wal := filepath.Join(dir, sqlite.FileName+"-wal")
			var syncs atomic.Int64
			fs.Watch(func(e powercut.Event, _ func() powercut.Image) {
				if e.Path == wal && e.Op == powercut.Sync {
					syncs.Add(1)
				}
			})
			ctx := t.Context()
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for i := range each {
						err := s.Transact(ctx, func(tx store.Tx) error {
							return tx.Put(ctx, patient(fmt.Sprintf("g%d-%d", g, i), 0, `{}`))
						})
						if err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			fs.Watch(nil)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// Checkpoints fsync the WAL too, at most every 100 ms.
			units, n := int64(goroutines*each), syncs.Load()
			t.Logf("%d units of work, %d fsyncs of the WAL", units, n)
			if tt.shared && n > units*3/4 {
				t.Errorf("%d fsyncs of the WAL for %d units of work from %d goroutines: they do not share commits", n, units, goroutines)
			}
			if !tt.shared && n < units {
				t.Errorf("%d fsyncs of the WAL for %d units of work with group commit off, want one each at least", n, units)
			}
		})
	}
}

// A Put whose context ends while it waits for the writer is either not
// stored, and returns the context's error, or waits for the group that
// holds it and returns its outcome: it never returns an error while its
// write commits after, which a reader dating history by the writes under
// way would miss.
func TestPutCancelledWhileGrouped(t *testing.T) {
	s := mustOpen(t, t.TempDir(), sqlite.Options{SyncFull: true})
	defer s.Close()
	var (
		mu     sync.Mutex
		failed []string
		wg     sync.WaitGroup
	)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				id := fmt.Sprintf("p%d-%d", g, i)
				ctx, cancel := context.WithCancel(t.Context())
				if i%2 == 1 {
					// Cancelled while it queues, or while its group
					// commits.
					go cancel()
				}
				err := s.Put(ctx, patient(id, 0, `{}`))
				cancel()
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						t.Errorf("Put %s: %v", id, err)
					}
					mu.Lock()
					failed = append(failed, id)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	stored := 0
	for _, id := range failed {
		if _, err := s.Read(t.Context(), "Patient", id); err == nil {
			stored++
		}
	}
	if stored > 0 {
		t.Errorf("%d of %d Puts that returned an error were stored", stored, len(failed))
	}
}
