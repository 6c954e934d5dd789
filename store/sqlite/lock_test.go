package sqlite_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"carefhir/store/sqlite"
)

// TestDataDirectoryHeldByOneStore checks that while a store is open, its
// data directory cannot be opened, migrated or locked (for a restore) by
// anyone else, and that it can be once the store is closed.
func TestDataDirectoryHeldByOneStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := mustOpen(t, dir, sqlite.Options{})
	if err := s.Put(ctx, patient("p1", 0, `{"resourceType":"Patient","id":"p1"}`)); err != nil {
		t.Fatal(err)
	}

	if other, err := sqlite.Open(dir); !errors.Is(err, sqlite.ErrInUse) || !strings.Contains(err.Error(), dir) {
		if other != nil {
			other.Close()
		}
		t.Errorf("second open: %v, want ErrInUse naming %s", err, dir)
	}
	if _, err := sqlite.Migrate(ctx, dir); !errors.Is(err, sqlite.ErrInUse) {
		t.Errorf("migrate beside the store: %v, want ErrInUse", err)
	}
	if _, err := sqlite.LockDir(dir); !errors.Is(err, sqlite.ErrInUse) {
		t.Errorf("lock beside the store: %v, want ErrInUse", err)
	}
	// The refusals changed nothing the store serves.
	if v, err := s.Read(ctx, "Patient", "p1"); err != nil || v.VersionID != 1 {
		t.Fatalf("read after the refusals: %v, %v", v, err)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	unlock, err := sqlite.LockDir(dir)
	if err != nil {
		t.Fatalf("lock once the store is closed: %v", err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlite.Migrate(ctx, dir); err != nil {
		t.Fatalf("migrate once the store is closed: %v", err)
	}
	s = mustOpen(t, dir, sqlite.Options{})
	defer s.Close()
	if v, err := s.Read(ctx, "Patient", "p1"); err != nil || v.VersionID != 1 {
		t.Fatalf("read after reopening: %v, %v", v, err)
	}
}
