package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"carefhir/store"
)

// errRefused is what the ready of a gated write refused by its caller
// returns.
var errRefused = errors.New("refused by the caller")

// testGated checks store.GatedWriter, for engines that implement it: a
// write whose ready refuses it fails with that error and stores nothing,
// alone or among concurrent writes, which are kept.
func testGated(t *testing.T, s store.Store) {
	g, ok := s.(store.GatedWriter)
	if !ok {
		t.Skip("the engine does not implement store.GatedWriter")
	}
	ctx := t.Context()
	refuse := func() error { return errRefused }
	allow := func() error { return nil }

	if err := g.PutGated(ctx, create("Patient", "refused", at(0), "refused"), refuse); !errors.Is(err, errRefused) {
		t.Errorf("PutGated refused: %v, want the error of ready", err)
	}
	_, err := s.Read(ctx, "Patient", "refused")
	checkNotFound(t, err, "Read of the refused write")
	kept := create("Patient", "kept", at(0), "kept")
	if err := g.PutGated(ctx, kept, allow); err != nil {
		t.Fatalf("PutGated allowed: %v", err)
	}
	checkRead(t, s, written(kept))

	// Concurrent writes, gated and not, commit together in batches: one
	// refused leaves the others as they would have been.
	const n = 3 * writers
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		w := create("Patient", fmt.Sprintf("c%d", i), at(i), "concurrent")
		wg.Go(func() {
			switch i % 3 {
			case 0:
				errs[i] = g.PutGated(ctx, w, refuse)
			case 1:
				errs[i] = g.PutGated(ctx, w, allow)
			default:
				errs[i] = s.Put(ctx, w)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		id := fmt.Sprintf("c%d", i)
		if i%3 == 0 {
			if !errors.Is(err, errRefused) {
				t.Errorf("%s: %v, want the error of ready", id, err)
			}
			_, err := s.Read(ctx, "Patient", id)
			checkNotFound(t, err, "Read of refused "+id)
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", id, err)
			continue
		}
		checkRead(t, s, written(create("Patient", id, at(i), "concurrent")))
	}
}
