package mongo_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

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

// commands counts the commands a Store sends, by name.
type commands struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *commands) Operation(op string, _ time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[op]++
}

func (c *commands) count(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[op]
}

// The first Store to ask for a setting stores its value and returns it
// with that one insert, reading nothing back; a Store asking for it once
// it is stored reads the value stored.
func TestSettingStoredNotReadBack(t *testing.T) {
	uri := ferrettest.Start(t)
	seen := &commands{}
	s := open(t, uri, storemongo.WithObserver(seen))
	finds := seen.count("find")
	v, err := s.Setting(t.Context(), "signing-keys", []byte("first"))
	if err != nil || string(v) != "first" {
		t.Fatalf("Setting of none stored: %q, %v; want first", v, err)
	}
	if n := seen.count("find") - finds; n != 0 {
		t.Errorf("Setting of none stored sent %d finds, want none", n)
	}
	v, err = open(t, uri).Setting(t.Context(), "signing-keys", []byte("second"))
	if err != nil || string(v) != "first" {
		t.Errorf("Setting once stored: %q, %v; want first", v, err)
	}
}
