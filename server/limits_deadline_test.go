package server

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A request's deadline context ends as context.WithDeadline's would: at
// its deadline, when its parent ends, and when the request is over,
// whenever it is first asked.
func TestDeadlineContextEndsAsWithDeadline(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		ctx := &deadlineContext{Context: context.Background(), deadline: time.Now().Add(20 * time.Millisecond)}
		defer ctx.stop()
		if err := ctx.Err(); err != nil {
			t.Fatalf("Err before the deadline: %v", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("not done 5 s after a deadline of 20 ms")
		}
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Errorf("Err %v, want DeadlineExceeded", ctx.Err())
		}
	})
	t.Run("deadline passed before asked", func(t *testing.T) {
		ctx := &deadlineContext{Context: context.Background(), deadline: time.Now().Add(-time.Millisecond)}
		defer ctx.stop()
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Errorf("Err %v, want DeadlineExceeded", ctx.Err())
		}
	})
	t.Run("parent", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKeyForTest{}, "v"))
		ctx := &deadlineContext{Context: parent, deadline: time.Now().Add(time.Hour)}
		defer ctx.stop()
		child, stopChild := context.WithCancel(ctx)
		defer stopChild()
		cancel()
		select {
		case <-child.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("a child is not done when the parent is")
		}
		if !errors.Is(ctx.Err(), context.Canceled) || ctx.Value(ctxKeyForTest{}) != "v" {
			t.Errorf("Err %v, value %v: want Canceled and the parent's value", ctx.Err(), ctx.Value(ctxKeyForTest{}))
		}
	})
	t.Run("stopped", func(t *testing.T) {
		for _, askFirst := range []bool{true, false} {
			ctx := &deadlineContext{Context: context.Background(), deadline: time.Now().Add(time.Hour)}
			if askFirst {
				ctx.Done()
			}
			ctx.stop()
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
				t.Fatalf("asked first %v: not done once stopped", askFirst)
			}
			if !errors.Is(ctx.Err(), context.Canceled) {
				t.Errorf("asked first %v: Err %v, want Canceled", askFirst, ctx.Err())
			}
		}
	})
	t.Run("earlier parent deadline", func(t *testing.T) {
		soon := time.Now().Add(time.Minute)
		parent, cancel := context.WithDeadline(context.Background(), soon)
		defer cancel()
		ctx := &deadlineContext{Context: parent, deadline: time.Now().Add(time.Hour)}
		defer ctx.stop()
		if d, ok := ctx.Deadline(); !ok || !d.Equal(soon) {
			t.Errorf("Deadline %v %v, want the parent's %v", d, ok, soon)
		}
	})
}

type ctxKeyForTest struct{}
