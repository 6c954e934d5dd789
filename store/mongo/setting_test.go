package mongo_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	storemongo "carefhir/store/mongo"
	"carefhir/store/mongo/ferrettest"
)

// Stores sharing one database that ask for a setting at once, each with a
// value of its own to store when there is none, all get the one value
// stored; a replace naming a value no longer held changes nothing.
func TestSettingStoredOnce(t *testing.T) {
	uri := ferrettest.Start(t)
	stores := []*storemongo.Store{open(t, uri), open(t, uri), open(t, uri)}
	got := make([][]byte, 12)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			v, err := stores[i%len(stores)].Setting(t.Context(), "signing-keys", fmt.Appendf(nil, "keys of %d", i))
			if err != nil {
				t.Errorf("Setting %d: %v", i, err)
			}
			got[i] = v
		})
	}
	wg.Wait()
	for i, v := range got {
		if !bytes.Equal(v, got[0]) || len(v) == 0 {
			t.Fatalf("Setting %d: %q, Setting 0: %q; want one value stored for all", i, v, got[0])
		}
	}
	if err := stores[1].ReplaceSetting(t.Context(), "signing-keys", got[0], []byte("rotated")); err != nil {
		t.Fatalf("ReplaceSetting: %v", err)
	}
	err := stores[2].ReplaceSetting(t.Context(), "signing-keys", got[0], []byte("rotated again"))
	if !errors.Is(err, storemongo.ErrSettingChanged) {
		t.Errorf("ReplaceSetting of a value replaced already: %v, want ErrSettingChanged", err)
	}
	if v, err := stores[0].Setting(t.Context(), "signing-keys", []byte("unused")); err != nil || string(v) != "rotated" {
		t.Errorf("Setting after the replace: %q, %v; want rotated", v, err)
	}
}
