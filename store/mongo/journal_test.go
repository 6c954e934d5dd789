package mongo_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"carefhir/store"
	storemongo "carefhir/store/mongo"
	"carefhir/store/mongo/ferrettest"
)

// errCrash stops a journaled commit through the test hook, leaving the
// database as a crash would.
var errCrash = errors.New("simulated crash")

// patient returns a write of Patient/id whose body and identifier are note.
func patient(id string, expected int64, ms int, note string) *store.Write {
	return &store.Write{Type: "Patient", ID: id, Expected: expected, LastUpdated: t0.Add(time.Duration(ms) * time.Millisecond),
		JSON:  []byte(fmt.Sprintf(`{"resourceType":"Patient","id":%q,"note":%q}`, id, note)),
		Index: store.Index{Tokens: []store.Token{{Param: "identifier", System: "s", Code: note}}}}
}

// The journal tests start from base and run unit: creates, updates, two
// writes to one resource and a delete.
var (
	base = []*store.Write{patient("a", 0, 0, "a1"), patient("b", 0, 0, "b1"), patient("x", 0, 0, "x1")}
	unit = []*store.Write{
		patient("c", 0, 1000, "c1"),
		patient("a", 1, 1000, "a2"),
		patient("a", 2, 1000, "a3"),
		{Type: "Patient", ID: "b", Expected: 1, LastUpdated: t0.Add(time.Second), Deleted: true},
		patient("x", 1, 1000, "x2"),
		patient("c", 1, 1000, "c2"),
	}
	// committed is the state after unit.
	committed = []*store.Write{unit[2], unit[3], unit[4], unit[5]}
)

// transactUnit runs unit on s.
func transactUnit(t *testing.T, s store.Store) error {
	return s.Transact(t.Context(), func(tx store.Tx) error {
		for _, w := range unit {
			if err := tx.Put(t.Context(), w); err != nil {
				return err
			}
		}
		return nil
	})
}

// openBase returns the uri of a new database holding base and a store on it.
func openBase(t *testing.T) (string, *storemongo.Store) {
	uri := ferrettest.Start(t)
	s := open(t, uri)
	putAll(t, s, base...)
	return uri, s
}

// checkState fails the test unless the writes in current, one per resource,
// made the current versions of a, b, c and x (a resource no write names does
// not exist), history holds versions versions, and the journal is empty.
func checkState(t *testing.T, s store.Store, uri string, current []*store.Write, versions int) {
	t.Helper()
	ctx := t.Context()
	for _, id := range []string{"a", "b", "c", "x"} {
		i := slices.IndexFunc(current, func(w *store.Write) bool { return w.ID == id })
		v, err := s.Read(ctx, "Patient", id)
		if i < 0 {
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Read Patient/%s: %+v, %v; want not found", id, v, err)
			}
			continue
		}
		w := current[i]
		if err != nil {
			t.Errorf("Read Patient/%s: %v", id, err)
			continue
		}
		if v.VersionID != w.VersionID() || v.Deleted != w.Deleted || string(v.JSON) != string(w.JSON) {
			t.Errorf("Read Patient/%s: version %d %s, want version %d %s", id, v.VersionID, v.JSON, w.VersionID(), w.JSON)
		}
		if w.Deleted {
			continue
		}
		note := w.Index.Tokens[0].Code
		found, err := s.Search(ctx, store.Query{Type: "Patient", Where: []store.Clause{
			{Param: "identifier", Tokens: []store.TokenMatch{{Code: note, AnySystem: true}}}}})
		if err != nil || len(found) != 1 || found[0].ID != id {
			t.Errorf("Search identifier=%s: %d found, %v; want Patient/%s", note, len(found), err, id)
		}
	}
	// No version of the unit but the current ones is searchable.
	for _, w := range unit {
		if w.Deleted || slices.Contains(current, w) {
			continue
		}
		note := w.Index.Tokens[0].Code
		found, err := s.Search(ctx, store.Query{Type: "Patient", Where: []store.Clause{
			{Param: "identifier", Tokens: []store.TokenMatch{{Code: note, AnySystem: true}}}}})
		if err != nil || len(found) != 0 {
			t.Errorf("Search identifier=%s: %d found, %v; want none", note, len(found), err)
		}
	}
	page, err := s.History(ctx, store.HistoryQuery{Count: 50})
	if err != nil || page.Total != versions {
		t.Errorf("system history: %d versions, %v; want %d", page.Total, err, versions)
	}
	// Versions current from an hour hence (after the unit's time, and
	// after any time a process completing it stamped it with): each
	// resource's current one, which checks the ends history records.
	page, err = s.History(ctx, store.HistoryQuery{Count: 50, AtLow: time.Now().Add(time.Hour)})
	if err != nil || page.Total != len(current) {
		t.Errorf("history at a later time: %d versions, %v; want one per resource", page.Total, err)
	}
	db := connect(t, uri).Database(ferrettest.Database)
	for _, coll := range []string{"journal", "journal_writes"} {
		if n, err := db.Collection(coll).CountDocuments(ctx, bson.D{}); err != nil || n != 0 {
			t.Errorf("%s holds %d documents (%v), want none", coll, n, err)
		}
	}
}

// baseWith returns base with the resources ws write replaced by them.
func baseWith(ws ...*store.Write) []*store.Write {
	out := slices.Clone(base)
	for _, w := range ws {
		if i := slices.IndexFunc(out, func(b *store.Write) bool { return b.ID == w.ID }); i >= 0 {
			out[i] = w
		} else {
			out = append(out, w)
		}
	}
	return out
}

// TestJournalCrash stops a journaled commit at each stage, as a crash
// would, and checks that opening the database again completes the unit or
// discards it.
func TestJournalCrash(t *testing.T) {
	tests := []struct {
		name  string
		stage string
		n     int
		all   bool
	}{
		{name: "journaled, not committed", stage: storemongo.StageJournaled, n: len(unit), all: false},
		{name: "committed", stage: storemongo.StageCommitted, all: true},
		{name: "first write applied", stage: storemongo.StageApplied, n: 1, all: true},
		{name: "half applied", stage: storemongo.StageApplied, n: 3, all: true},
		{name: "all applied", stage: storemongo.StageApplied, n: len(unit), all: true},
		{name: "record deleted", stage: storemongo.StageFinished, all: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uri, s := openBase(t)
			storemongo.SetHook(s, func(stage string, n int) error {
				if stage == tt.stage && n == tt.n {
					return errCrash
				}
				return nil
			})
			if err := transactUnit(t, s); !errors.Is(err, errCrash) {
				t.Fatalf("Transact: %v, want the simulated crash", err)
			}
			after := reopen(t, uri)
			if tt.all {
				checkState(t, after, uri, committed, len(base)+len(unit))
			} else {
				checkState(t, after, uri, base, len(base))
			}
			// The resources take writes again, at the versions that follow.
			putAll(t, after, patient("a", int64(1+2*btoi(tt.all)), 5000, "a-after"))
		})
	}
}

// A unit of work whose process stopped part-way through applying it, and
// which another process completes a lease later, has the versions that
// process makes stamped when it makes them, in their lastUpdated and their
// bytes: a client that polls history from a time before it began sees them
// all, where their stamp from before the stop would date them before its
// poll. The versions made before the stop keep their stamp.
func TestJournalTakenOverStamped(t *testing.T) {
	uri, s := openBase(t)
	const before = 2 // of the unit's writes, applied before the stop
	storemongo.SetHook(s, func(stage string, n int) error {
		if stage == storemongo.StageApplied && n == before {
			return errCrash
		}
		return nil
	})
	if err := transactUnit(t, s); !errors.Is(err, errCrash) {
		t.Fatalf("Transact: %v, want the simulated crash", err)
	}
	polled := time.Now().UTC().Truncate(time.Millisecond)
	stamp := func(typ string, json []byte, at time.Time) ([]byte, error) {
		return fmt.Appendf(bytes.TrimSuffix(json, []byte("}")), `,"stamped":%q}`, at.Format(time.RFC3339Nano)), nil
	}
	after := reopen(t, uri, storemongo.WithStamp(stamp))
	page, err := after.History(t.Context(), store.HistoryQuery{Since: polled, Count: 50})
	if err != nil {
		t.Fatalf("History since the stop: %v", err)
	}
	if len(page.Versions) != len(unit)-before {
		t.Errorf("History since the stop: %d versions, want the %d made after it", len(page.Versions), len(unit)-before)
	}
	for _, v := range page.Versions {
		want := fmt.Sprintf(`"stamped":%q`, v.LastUpdated.Format(time.RFC3339Nano))
		if !v.Deleted && !bytes.Contains(v.JSON, []byte(want)) {
			t.Errorf("%s/%s/%d stamped %v holds %s, want it stamped so in its bytes", v.Type, v.ID, v.VersionID, v.LastUpdated, v.JSON)
		}
	}
	for _, w := range unit[:before] {
		v, err := after.VRead(t.Context(), w.Type, w.ID, w.VersionID())
		if err != nil || !v.LastUpdated.Equal(w.LastUpdated) || string(v.JSON) != string(w.JSON) {
			t.Errorf("VRead %s/%s/%d made before the stop: %+v, %v; want it as written", w.Type, w.ID, w.VersionID(), v, err)
		}
	}
	// Every version current from an hour hence is a resource's current one.
	later, err := after.History(t.Context(), store.HistoryQuery{Count: 50, AtLow: time.Now().Add(time.Hour)})
	if err != nil || later.Total != 4 {
		t.Errorf("history an hour hence: %d versions, %v; want one per resource", later.Total, err)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestJournalOtherWriter has another process write the resource of entry n
// while the unit is applied: the unit fails with a conflict and leaves no
// trace of entries 1..n-1, and the other write stands.
func TestJournalOtherWriter(t *testing.T) {
	tests := []struct {
		name  string
		n     int            // the entry the other write conflicts with
		other *store.Write   // the other process's write
		want  []*store.Write // the resources after
	}{
		{name: "first entry", n: 1, other: patient("c", 0, 2000, "c-other")},
		{name: "second entry", n: 2, other: patient("a", 1, 2000, "a-other")},
		{name: "delete", n: 4, other: patient("b", 1, 2000, "b-other")},
		{name: "fifth entry", n: 5, other: patient("x", 1, 2000, "x-other")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uri, s := openBase(t)
			other := open(t, uri)
			storemongo.SetHook(s, func(stage string, n int) error {
				if (tt.n == 1 && stage == storemongo.StageCommitted) || (stage == storemongo.StageApplied && n == tt.n-1) {
					return other.Put(t.Context(), tt.other)
				}
				return nil
			})
			err := transactUnit(t, s)
			var ce *store.ConflictError
			if !errors.As(err, &ce) || ce.ID != tt.other.ID {
				t.Fatalf("Transact: %v, want a conflict on Patient/%s", err, tt.other.ID)
			}
			checkState(t, s, uri, baseWith(tt.other), len(base)+1)
		})
	}
}

// TestJournalWrittenOver has another process write over a version the unit
// applied, and then conflict with a later entry: the unit cannot be undone
// whole, is undone where it can be, and is kept in the journal as failed.
func TestJournalWrittenOver(t *testing.T) {
	uri, s := openBase(t)
	other := open(t, uri)
	storemongo.SetHook(s, func(stage string, n int) error {
		if stage == storemongo.StageApplied && n == 5 {
			// Over the unit's version 1 of Patient/c, which entry 6 updates.
			return other.Put(t.Context(), patient("c", 1, 2000, "c-other"))
		}
		return nil
	})
	err := transactUnit(t, s)
	var ce *store.ConflictError
	if !errors.As(err, &ce) || ce.ID != "c" {
		t.Fatalf("Transact: %v, want a conflict on Patient/c", err)
	}
	ctx := t.Context()
	for _, w := range base {
		v, err := s.Read(ctx, "Patient", w.ID)
		if err != nil {
			t.Errorf("Read Patient/%s: %v", w.ID, err)
		} else if v.VersionID != 1 || string(v.JSON) != string(w.JSON) {
			t.Errorf("Read Patient/%s: version %d %s, want it undone to version 1 %s", w.ID, v.VersionID, v.JSON, w.JSON)
		}
	}
	if v, err := s.Read(ctx, "Patient", "c"); err != nil {
		t.Errorf("Read Patient/c: %v", err)
	} else if v.VersionID != 2 {
		t.Errorf("Read Patient/c: version %d, want the other process's version 2", v.VersionID)
	}
	journal := connect(t, uri).Database(ferrettest.Database).Collection("journal")
	var rec struct {
		State string `bson:"state"`
	}
	if err := journal.FindOne(ctx, bson.D{}).Decode(&rec); err != nil || rec.State != "failed" {
		t.Errorf("journal record: %+v, %v; want one failed", rec, err)
	}
	// A failed unit is left to an operator: the store opens.
	open(t, uri)
}

// TestJournalCrashDuringUndo stops the undo of a unit that another process
// conflicted with, as a crash would: opening the database again finishes the
// undo.
func TestJournalCrashDuringUndo(t *testing.T) {
	uri, s := openBase(t)
	other := open(t, uri)
	xOther := patient("x", 1, 2000, "x-other")
	storemongo.SetHook(s, func(stage string, n int) error {
		switch {
		case stage == storemongo.StageApplied && n == 4:
			return other.Put(t.Context(), xOther)
		case stage == storemongo.StageUndone && n == 1:
			return errCrash
		}
		return nil
	})
	if err := transactUnit(t, s); err == nil {
		t.Fatal("Transact succeeded, want the simulated crash")
	}
	after := reopen(t, uri)
	checkState(t, after, uri, baseWith(xOther), len(base)+1)
}

// TestJournalOtherStart has another process start, and sweep the journal,
// while a unit is committed: it leaves the unit alone, whose lease is live,
// and the unit commits.
func TestJournalOtherStart(t *testing.T) {
	tests := []struct {
		name  string
		stage string
		n     int
	}{
		{name: "recorded", stage: storemongo.StageRecorded},
		{name: "journaled", stage: storemongo.StageJournaled, n: len(unit)},
		{name: "committed", stage: storemongo.StageCommitted},
		{name: "applying", stage: storemongo.StageApplied, n: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uri, s := openBase(t)
			storemongo.SetHook(s, func(stage string, n int) error {
				if stage == tt.stage && n == tt.n {
					open(t, uri)
				}
				return nil
			})
			if err := transactUnit(t, s); err != nil {
				t.Fatalf("Transact: %v", err)
			}
			checkState(t, s, uri, committed, len(base)+len(unit))
		})
	}
}

// TestJournalUndoWhileOtherStarts has a unit conflict with another process
// while applied, and a third process start while the unit is undone: the
// third leaves the unit alone, the unit is undone whole and reported as a
// conflict. (Without leases, the process starting re-applied writes of the
// unit being undone and left it partly applied.)
func TestJournalUndoWhileOtherStarts(t *testing.T) {
	uri, s := openBase(t)
	other := open(t, uri)
	xOther := patient("x", 1, 2000, "x-other")
	storemongo.SetHook(s, func(stage string, n int) error {
		switch {
		case stage == storemongo.StageApplied && n == 4:
			return other.Put(t.Context(), xOther)
		case stage == storemongo.StageUndone && n == 1:
			open(t, uri)
		}
		return nil
	})
	err := transactUnit(t, s)
	var ce *store.ConflictError
	if !errors.As(err, &ce) || ce.ID != "x" {
		t.Fatalf("Transact: %v, want a conflict on Patient/x", err)
	}
	checkState(t, s, uri, baseWith(xOther), len(base)+1)
}

// TestJournalTakeOver has another process take a unit over, its lease
// expired, at each stage of its commit and undo, forced by the test hook:
// the unit ends all or nothing, and its first owner reports what it ended
// as: success when applied, failure when not.
func TestJournalTakeOver(t *testing.T) {
	xOther := patient("x", 1, 2000, "x-other")
	tests := []struct {
		name     string
		stage    string
		n        int
		conflict bool // another process writes Patient/x while the unit is applied
		all      bool
	}{
		{name: "recorded", stage: storemongo.StageRecorded},
		{name: "journaled", stage: storemongo.StageJournaled, n: len(unit)},
		{name: "committed", stage: storemongo.StageCommitted, all: true},
		{name: "applying", stage: storemongo.StageApplied, n: 2, all: true},
		{name: "all applied", stage: storemongo.StageApplied, n: len(unit), all: true},
		{name: "undoing", stage: storemongo.StageUndone, n: 1, conflict: true},
		{name: "undoing, further", stage: storemongo.StageUndone, n: 2, conflict: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uri, s := openBase(t)
			other := open(t, uri)
			storemongo.SetHook(s, func(stage string, n int) error {
				if tt.conflict && stage == storemongo.StageApplied && n == 4 {
					return other.Put(t.Context(), xOther)
				}
				if stage == tt.stage && n == tt.n {
					// A process that has seen the unit unrenewed for a lease sweeps.
					if err := storemongo.Sweep(t.Context(), reopen(t, uri)); err != nil {
						t.Errorf("Sweep: %v", err)
					}
				}
				return nil
			})
			err := transactUnit(t, s)
			switch {
			case tt.all:
				if err != nil {
					t.Fatalf("Transact: %v, want success: the unit ended applied", err)
				}
				checkState(t, s, uri, committed, len(base)+len(unit))
			case tt.conflict:
				var ce *store.ConflictError
				if !errors.As(err, &ce) || ce.ID != "x" {
					t.Fatalf("Transact: %v, want a conflict on Patient/x", err)
				}
				checkState(t, s, uri, baseWith(xOther), len(base)+1)
			default:
				if err == nil {
					t.Fatal("Transact succeeded, but the unit was rolled back")
				}
				checkState(t, s, uri, base, len(base))
			}
		})
	}
}

// TestJournalClocksApart: two processes on one database whose clocks are
// two hours apart. The one whose clock is ahead sweeps while the other
// commits a unit: it does not take the live unit over, and it does when
// the unit's owner has died, once it has seen the unit unrenewed for a
// lease by its own clock.
func TestJournalClocksApart(t *testing.T) {
	t.Run("live", func(t *testing.T) {
		uri, s := openBase(t)
		clock := newClock(2 * time.Hour)
		ahead := open(t, uri, storemongo.WithClock(clock.now))
		storemongo.SetHook(s, func(stage string, n int) error {
			switch {
			case stage == storemongo.StageRecorded:
			case stage == storemongo.StageApplied && n == 1:
				// The owner renewed its lease since the last sweep.
				clock.advance(time.Hour)
			default:
				return nil
			}
			if err := storemongo.Sweep(t.Context(), ahead); err != nil {
				t.Errorf("Sweep: %v", err)
			}
			return nil
		})
		if err := transactUnit(t, s); err != nil {
			t.Fatalf("Transact: %v, want success: no process took the live unit over", err)
		}
		checkState(t, s, uri, committed, len(base)+len(unit))
	})
	t.Run("dead", func(t *testing.T) {
		uri, s := openBase(t)
		clock := newClock(2 * time.Hour)
		ahead := open(t, uri, storemongo.WithClock(clock.now))
		storemongo.SetHook(s, func(stage string, n int) error {
			if stage == storemongo.StageApplied && n == 2 {
				return errCrash
			}
			return nil
		})
		if err := transactUnit(t, s); !errors.Is(err, errCrash) {
			t.Fatalf("Transact: %v, want the simulated crash", err)
		}
		if err := storemongo.Sweep(t.Context(), ahead); err != nil {
			t.Fatalf("Sweep: %v", err)
		}
		journal := connect(t, uri).Database(ferrettest.Database).Collection("journal")
		if n, err := journal.CountDocuments(t.Context(), bson.D{}); err != nil || n != 1 {
			t.Fatalf("journal holds %d records (%v) once the unit is first seen, want it left to its owner", n, err)
		}
		clock.advance(2 * time.Minute) // longer than the lease
		if err := storemongo.Sweep(t.Context(), ahead); err != nil {
			t.Fatalf("Sweep: %v", err)
		}
		checkState(t, ahead, uri, committed, len(base)+len(unit))
	})
}
