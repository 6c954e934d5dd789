package mongo_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"carefhir/store"
	storemongo "carefhir/store/mongo"
	"carefhir/store/mongo/ferrettest"
	"carefhir/store/storetest"
)

// The child process of TestJournalKill is the test binary run with these
// set: the data directory of its FerretDB, and the stage of the commit at
// which it stops to be killed ("" for as soon as the unit's function
// returns).
const (
	killDirEnv  = "CAREFHIR_MONGO_KILL_DIR"
	killStopEnv = "CAREFHIR_MONGO_KILL_STOP"
)

// killEntries is the size of the unit of work the child commits.
const killEntries = 1000

// TestJournalKill runs a 1,000-write unit of work in a child process, on an
// embedded FerretDB of its own whose data is on disk, kills the child with
// SIGKILL part-way, and checks that a server and a store started again on
// the same data hold all of the unit or none of it, and an empty journal.
func TestJournalKill(t *testing.T) {
	if dir := os.Getenv(killDirEnv); dir != "" {
		killChild(t, dir, os.Getenv(killStopEnv))
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
		{name: "journaled, not committed", stop: fmt.Sprintf("%s %d", storemongo.StageJournaled, killEntries), want: storetest.None},
		{name: "half applied", stop: fmt.Sprintf("%s %d", storemongo.StageApplied, killEntries/2), want: storetest.All},
		{name: "committing", want: storetest.AllOrNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			storetest.Kill(t, "TestJournalKill", killDirEnv+"="+dir, killStopEnv+"="+tt.stop)
			uri := ferrettest.StartDir(t, dir)
			storetest.CheckUnitRestamped(t, reopen(t, uri), storetest.CrashUnit(killEntries), tt.want)
			db := connect(t, uri).Database(ferrettest.Database)
			for _, coll := range []string{"journal", "journal_writes"} {
				if n, err := db.Collection(coll).CountDocuments(t.Context(), bson.D{}); err != nil || n != 0 {
					t.Errorf("%s holds %d documents (%v), want none", coll, n, err)
				}
			}
		})
	}
}

// killChild commits the unit of work on a FerretDB with its data in dir,
// and stops to be killed at stop.
func killChild(t *testing.T, dir, stop string) {
	ctx := context.Background()
	s, err := storemongo.Open(ctx, ferrettest.StartDir(t, dir))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	storemongo.SetHook(s, func(stage string, n int) error {
		if fmt.Sprintf("%s %d", stage, n) == stop {
			storetest.Stop()
		}
		return nil
	})
	err = s.Transact(ctx, func(tx store.Tx) error {
		for _, w := range storetest.CrashUnit(killEntries) {
			if err := tx.Put(ctx, w); err != nil {
				return err
			}
		}
		if stop == "" {
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
