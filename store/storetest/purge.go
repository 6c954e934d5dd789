package storetest

import (
	"fmt"
	"testing"

	"carefhir/store"
)

// testPurge checks store.Purger, for engines that implement it: a purged
// resource reads as never stored, in every version, in search and in
// history, and may be created again; PurgeDeleted takes only tombstones
// older than its bound, at most as many as asked; the rest is untouched.
func testPurge(t *testing.T, s store.Store) {
	p, ok := s.(store.Purger)
	if !ok {
		t.Skip("the engine does not implement store.Purger")
	}
	ctx := t.Context()
	tag := store.Token{Param: "state", Code: "pending"}
	put(t, s, create("Record", "live", at(0), "live", tag))
	put(t, s, create("Record", "kept", at(0), "kept", tag))
	for _, id := range []string{"old1", "old2", "old3", "young"} {
		put(t, s, create("Record", id, at(0), id, tag))
	}
	for _, id := range []string{"old1", "old2", "old3"} {
		put(t, s, tombstone("Record", id, 1, at(1000)))
	}
	young := tombstone("Record", "young", 1, at(5000))
	put(t, s, young)
	other := create("Patient", "live", at(0), "another type")
	put(t, s, other)

	if err := p.Purge(ctx, "Record", []string{"live", "never"}); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	_, err := s.Read(ctx, "Record", "live")
	checkNotFound(t, err, "Read of a purged resource")
	_, err = s.VRead(ctx, "Record", "live", 1)
	checkNotFound(t, err, "VRead of a purged version")
	checkRead(t, s, written(other))

	// A limit of none removes none, on every engine.
	for _, most := range []int{0, -1} {
		if n, err := p.PurgeDeleted(ctx, "Record", at(2000), most); err != nil || n != 0 {
			t.Fatalf("PurgeDeleted of at most %d = %d, %v, want 0", most, n, err)
		}
	}
	n, err := p.PurgeDeleted(ctx, "Record", at(2000), 2)
	if err != nil || n != 2 {
		t.Fatalf("PurgeDeleted of 2 = %d, %v", n, err)
	}
	n, err = p.PurgeDeleted(ctx, "Record", at(2000), 10)
	if err != nil || n != 1 {
		t.Fatalf("PurgeDeleted of the rest = %d, %v, want the third old tombstone", n, err)
	}
	for _, id := range []string{"old1", "old2", "old3"} {
		_, err := s.VRead(ctx, "Record", id, 1)
		checkNotFound(t, err, "VRead of a purged tombstone's resource")
	}
	checkRead(t, s, written(young))

	got, err := s.Search(ctx, store.Query{Type: "Record", Where: []store.Clause{clause("state", code("pending"))}})
	if err != nil {
		t.Fatal(err)
	}
	if ids := idsOf(got); len(ids) != 1 || ids[0] != "kept" {
		t.Errorf("search after purges: %v, want [kept]", ids)
	}
	h, err := s.History(ctx, store.HistoryQuery{Type: "Record", Count: 100})
	if err != nil {
		t.Fatal(err)
	}
	if h.Total != 3 { // kept, and young's two versions
		t.Errorf("history after purges: %s (total %d), want kept/1, young/1, young/2", listOf(h.Versions), h.Total)
	}

	again := create("Record", "live", at(9000), "created again", tag)
	put(t, s, again)
	checkRead(t, s, written(again))

	// PurgeEarlier keeps the current version alone, of that resource alone.
	count := create("Record", "count", at(0), "0")
	put(t, s, count)
	for v := int64(1); v <= 3; v++ {
		count = update("Record", "count", v, at(int(v)*1000), fmt.Sprint(v))
		put(t, s, count)
	}
	for _, id := range []string{"count", "never"} {
		if err := p.PurgeEarlier(ctx, "Record", id); err != nil {
			t.Fatalf("PurgeEarlier of %s: %v", id, err)
		}
	}
	checkRead(t, s, written(count))
	h, err = s.History(ctx, store.HistoryQuery{Type: "Record", ID: "count", Count: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Versions) != 1 || h.Versions[0].VersionID != 4 {
		t.Errorf("history after PurgeEarlier: %s, want count/4 alone", listOf(h.Versions))
	}
	_, err = s.VRead(ctx, "Record", "count", 3)
	checkNotFound(t, err, "VRead of a version before the current one, purged")
	if _, err := s.VRead(ctx, "Record", "young", 1); err != nil {
		t.Errorf("another resource's earlier version, after PurgeEarlier: %v", err)
	}
	// The next write follows the current version.
	put(t, s, update("Record", "count", 4, at(9000), "4"))
}
