package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"carefhir/store"
	"carefhir/store/sqlite"
	"carefhir/store/storetest"
)

// The child process of TestTransactKill is the test binary run with these
// set: the data directory, and where the child stops to be killed ("half":
// after half the unit's writes; "returning": as the unit's function returns;
// "committed": once Transact has returned).
const (
	txKillDirEnv  = "CAREFHIR_SQLITE_TX_KILL_DIR"
	txKillStopEnv = "CAREFHIR_SQLITE_TX_KILL_STOP"
)

// txKillEntries is the size of the unit of work the child commits.
const txKillEntries = 1000

// TestTransactKill runs a 1,000-write unit of work in a child process, kills
// the child with SIGKILL part-way, and checks that the reopened store holds
// all of the unit or none of it.
func TestTransactKill(t *testing.T) {
	if dir := os.Getenv(txKillDirEnv); dir != "" {
		txKillChild(dir, os.Getenv(txKillStopEnv))
		return
	}
	if testing.Short() {
		t.Skip("starts child processes")
	}
	tests := []struct {
		name string
		stop string
		want storetest.Outcome
	}{
		{name: "half written", stop: "half", want: storetest.None},
		{name: "committing", stop: "returning", want: storetest.AllOrNone},
		{name: "committed", stop: "committed", want: storetest.All},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			storetest.Kill(t, "TestTransactKill", txKillDirEnv+"="+dir, txKillStopEnv+"="+tt.stop)
			s, err := sqlite.Open(dir)
			if err != nil {
				t.Fatalf("reopen after kill: %v", err)
			}
			defer s.Close()
			storetest.CheckUnit(t, s, storetest.CrashUnit(txKillEntries), tt.want)
		})
	}
}

// txKillChild commits the unit of work in the store in dir, and stops to be
// killed at stop.
func txKillChild(dir, stop string) {
	s, err := sqlite.Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	err = s.Transact(ctx, func(tx store.Tx) error {
		for i, w := range storetest.CrashUnit(txKillEntries) {
			if i == txKillEntries/2 && stop == "half" {
				storetest.Stop()
			}
			if err := tx.Put(ctx, w); err != nil {
				return err
			}
		}
		if stop == "returning" {
			storetest.Signal()
		}
		return nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	storetest.Stop()
}
