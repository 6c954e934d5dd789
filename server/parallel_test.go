package server

import (
	"strconv"
	"sync/atomic"
	"testing"
)

// TestParallel checks that every item runs once, whether a goroutine or
// the caller runs it, and that a panic reaches the caller of wait.
func TestParallel(t *testing.T) {
	for _, n := range []int{0, 1, 2, 100} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			runs := make([]atomic.Int32, n)
			p := startParallel(n, func(i int) { runs[i].Add(1) })
			for i := range n {
				p.wait(i)
				if runs[i].Load() != 1 {
					t.Fatalf("item %d has run %d times when waited for", i, runs[i].Load())
				}
			}
			p.stop()
			for i := range runs {
				if got := runs[i].Load(); got != 1 {
					t.Errorf("item %d ran %d times", i, got)
				}
			}
		})
	}
	t.Run("panic", func(t *testing.T) {
		p := startParallel(10, func(i int) {
			if i == 7 {
				panic("item 7")
			}
		})
		defer p.stop()
		for i := range 7 {
			p.wait(i)
		}
		defer func() {
			if r := recover(); r != "item 7" {
				t.Errorf("wait(7) panicked with %v, want item 7", r)
			}
		}()
		p.wait(7)
	})
	t.Run("stop without waiting", func(t *testing.T) {
		p := startParallel(1000, func(int) {})
		p.stop()
	})
}
