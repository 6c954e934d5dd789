package lease

import (
	"testing"
	"time"
)

func TestExpired(t *testing.T) {
	const lease = time.Minute
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	var w Watch[int]
	steps := []struct {
		what string
		v    int
		at   time.Duration
		want bool
	}{
		{"first seen", 1, 0, false},
		{"seen within the lease", 1, 59 * time.Second, false},
		{"renewed just before the lease ends", 2, lease, false},
		{"a lease after the first sight, but not after the renewal", 2, lease + 30*time.Second, false},
		{"unchanged for a lease since the renewal", 2, 2 * lease, true},
		{"seen anew once reported", 2, 2*lease + time.Second, false},
	}
	for _, s := range steps {
		if got := w.Expired("u1", s.v, t0.Add(s.at), lease); got != s.want {
			t.Fatalf("%s: Expired = %v, want %v", s.what, got, s.want)
		}
	}
}

func TestForget(t *testing.T) {
	const lease = time.Minute
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	var w Watch[struct{}]
	w.Expired("gone", struct{}{}, t0, lease)
	w.Expired("kept", struct{}{}, t0, lease)
	w.Forget(func(id string, first time.Time) bool { return id == "gone" })
	if w.Expired("kept", struct{}{}, t0.Add(lease), lease) != true {
		t.Error("a record kept by Forget lost its first sight")
	}
	if w.Expired("gone", struct{}{}, t0.Add(lease), lease) != false {
		t.Error("a record Forget dropped kept its first sight")
	}
}

func TestSince(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	var w Watch[int]
	if got := w.Since("j1", 1, t0); !got.Equal(t0) {
		t.Errorf("first sight: %v, want %v", got, t0)
	}
	if got := w.Since("j1", 1, t0.Add(time.Minute)); !got.Equal(t0) {
		t.Errorf("seen again unchanged: %v, want the first sight %v", got, t0)
	}
	if got := w.Since("j1", 2, t0.Add(2*time.Minute)); !got.Equal(t0.Add(2 * time.Minute)) {
		t.Errorf("seen changed: %v, want the new sight", got)
	}
}
