package cause

import (
	"context"
	"errors"
	"testing"
)

func TestRecord(t *testing.T) {
	first, second := errors.New("first"), errors.New("second")
	ctx, got := With(context.Background())
	if got() != nil {
		t.Fatalf("a cause before any was recorded: %v", got())
	}
	Record(ctx, nil)
	Record(ctx, first)
	Record(ctx, second)
	if got() != first {
		t.Errorf("cause %v, want the first recorded, %v", got(), first)
	}
	Record(context.Background(), first) // no place for it: ignored
}
