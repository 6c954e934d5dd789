// Package storetest is the conformance suite that every store.Store engine
// passes. An engine's test is a few lines:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			s, err := sqlite.Open(t.TempDir())
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// The suite pins the contracts documented in package store: optimistic
// concurrency, tombstones and version sequences, exact bytes, history order,
// paging and time filters, token search, units of work (rolled back whatever
// entry fails, run concurrently, searching then creating) and cancellation.
// It keeps its data small (a few dozen resources) so that it also runs
// quickly against slow engines. Engines' crash tests, which kill a child
// process in the middle of a unit of work, share the helpers of kill.go.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"carefhir/store"
)

// Run runs the conformance suite against the engine that open returns. Each
// subtest calls open once and must receive a new, empty store; Run closes that
// store when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) store.Store, opts ...Option) {
	o := options{scale: 150}
	for _, opt := range opts {
		opt(&o)
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateRead", testCreateRead},
		{"CreateExisting", testCreateExisting},
		{"Update", testUpdate},
		{"StaleExpected", testStaleExpected},
		{"Delete", testDelete},
		{"NotFound", testNotFound},
		{"ExactBytes", testExactBytes},
		{"TypesIsolated", testTypesIsolated},
		{"History", testHistory},
		{"HistoryMethod", testHistoryMethod},
		{"Search", testSearch},
		{"Find", testFind},
		{"FindInclude", testFindInclude},
		{"FindIncludeCanonical", testFindIncludeCanonical},
		{"FindIncludeManyCanonicals", testFindIncludeManyCanonicals},
		{"FindRevincludeBound", testFindRevincludeBound},
		{"FindByIDAlone", testFindByIDAlone},
		{"FindCompositeSystems", testFindCompositeSystems},
		{"FindCompositeString", testFindCompositeString},
		{"FindCanonicalVersions", testFindCanonicalVersions},
		{"FindPaging", testFindPaging},
		{"Reindex", testReindex},
		{"FindPagingUnderWrites", func(t *testing.T, s store.Store) { testPagingUnderWrites(t, s, o.scale) }},
		{"TransactCommit", testTransactCommit},
		{"TransactRollback", testTransactRollback},
		{"TransactRewrite", testTransactRewrite},
		{"TransactFailsAtEntry", testTransactFailsAtEntry},
		{"ConcurrentTransacts", testConcurrentTransacts},
		{"ConditionalCreateRace", testConditionalCreateRace},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"ConcurrentCreates", testConcurrentCreates},
		{"Gated", testGated},
		{"Purge", testPurge},
		{"MetaInUse", testMetaInUse},
		{"Cancelled", testCancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// Option tunes the suite to an engine.
type Option func(*options)

type options struct {
	scale int // resources of the paging-under-writes test
}

// SearchScale sets how many resources the paging-under-writes test pages
// through (default 150): engines that search in time independent of the
// collection size take 1,000 or more.
func SearchScale(n int) Option { return func(o *options) { o.scale = n } }

// t0 is the base of every LastUpdated the suite writes.
var t0 = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)

// at returns t0 plus ms milliseconds.
func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// body returns a small resource whose bytes differ per type, id and note.
func body(typ, id, note string) []byte {
	return []byte(fmt.Sprintf(`{"resourceType":%q,"id":%q,"note":%q}`, typ, id, note))
}

func create(typ, id string, lu time.Time, note string, tokens ...store.Token) *store.Write {
	return &store.Write{Type: typ, ID: id, LastUpdated: lu, JSON: body(typ, id, note),
		Index: store.Index{Tokens: tokens}}
}

func update(typ, id string, expected int64, lu time.Time, note string, tokens ...store.Token) *store.Write {
	w := create(typ, id, lu, note, tokens...)
	w.Expected = expected
	return w
}

func tombstone(typ, id string, expected int64, lu time.Time) *store.Write {
	return &store.Write{Type: typ, ID: id, Expected: expected, LastUpdated: lu, Deleted: true}
}

// put writes w and fails the test if the store refuses it.
func put(t *testing.T, s store.Writer, w *store.Write) {
	t.Helper()
	if err := s.Put(t.Context(), w); err != nil {
		t.Fatalf("Put %s/%s expected %d: %v", w.Type, w.ID, w.Expected, err)
	}
}

// written is the version that w creates.
func written(w *store.Write) *store.Version {
	return &store.Version{Type: w.Type, ID: w.ID, VersionID: w.VersionID(),
		LastUpdated: w.LastUpdated, Deleted: w.Deleted, JSON: w.JSON}
}

// diff describes how got differs from want, or returns "".
func diff(got, want *store.Version) string {
	if got == nil {
		return "nil version"
	}
	var d []string
	if got.Type != want.Type || got.ID != want.ID || got.VersionID != want.VersionID {
		d = append(d, fmt.Sprintf("is %s/%s/_history/%d, want %s/%s/_history/%d",
			got.Type, got.ID, got.VersionID, want.Type, want.ID, want.VersionID))
	}
	if !got.LastUpdated.Equal(want.LastUpdated) {
		d = append(d, fmt.Sprintf("LastUpdated %v, want %v", got.LastUpdated, want.LastUpdated))
	} else if got.LastUpdated.Location() != time.UTC {
		d = append(d, fmt.Sprintf("LastUpdated in %v, want UTC", got.LastUpdated.Location()))
	}
	if got.Deleted != want.Deleted {
		d = append(d, fmt.Sprintf("Deleted %v, want %v", got.Deleted, want.Deleted))
	}
	if !bytes.Equal(got.JSON, want.JSON) {
		d = append(d, fmt.Sprintf("JSON %q, want %q", clip(got.JSON), clip(want.JSON)))
	}
	return strings.Join(d, "; ")
}

func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// checkRead fails the test unless Read returns want.
func checkRead(t *testing.T, s store.Reader, want *store.Version) {
	t.Helper()
	got, err := s.Read(t.Context(), want.Type, want.ID)
	if err != nil {
		t.Fatalf("Read %s/%s: %v", want.Type, want.ID, err)
	}
	if d := diff(got, want); d != "" {
		t.Errorf("Read %s/%s: %s", want.Type, want.ID, d)
	}
}

// checkVRead fails the test unless VRead of want's version returns want.
func checkVRead(t *testing.T, s store.Reader, want *store.Version) {
	t.Helper()
	got, err := s.VRead(t.Context(), want.Type, want.ID, want.VersionID)
	if err != nil {
		t.Fatalf("VRead %s/%s/%d: %v", want.Type, want.ID, want.VersionID, err)
	}
	if d := diff(got, want); d != "" {
		t.Errorf("VRead %s/%s/%d: %s", want.Type, want.ID, want.VersionID, d)
	}
}

// checkConflict fails the test unless err is a *ConflictError naming the
// resource and the expected and current versions.
func checkConflict(t *testing.T, err error, typ, id string, expected, current int64) {
	t.Helper()
	var ce *store.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v, want a *store.ConflictError", err)
	}
	want := store.ConflictError{Type: typ, ID: id, Expected: expected, Current: current}
	if *ce != want {
		t.Errorf("ConflictError %+v, want %+v", *ce, want)
	}
}

func checkNotFound(t *testing.T, err error, what string) {
	t.Helper()
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("%s: error %v, want store.ErrNotFound", what, err)
	}
}

func testCreateRead(t *testing.T, s store.Store) {
	w := create("Patient", "p1", at(0), "first")
	put(t, s, w)
	checkRead(t, s, written(w))
	checkVRead(t, s, written(w))
}

func testCreateExisting(t *testing.T, s store.Store) {
	w := create("Patient", "p1", at(0), "first")
	put(t, s, w)
	err := s.Put(t.Context(), create("Patient", "p1", at(1), "again"))
	checkConflict(t, err, "Patient", "p1", 0, 1)
	checkRead(t, s, written(w))
}

func testUpdate(t *testing.T, s store.Store) {
	w1 := create("Patient", "p1", at(0), "first")
	put(t, s, w1)
	w2 := update("Patient", "p1", 1, at(1000), "second")
	put(t, s, w2)
	v2 := written(w2)
	if v2.VersionID != 2 {
		t.Fatalf("Write.VersionID %d, want 2", v2.VersionID)
	}
	checkRead(t, s, v2)
	checkVRead(t, s, written(w1))
	checkVRead(t, s, v2)
}

func testStaleExpected(t *testing.T, s store.Store) {
	put(t, s, create("Patient", "p1", at(0), "first"))
	w2 := update("Patient", "p1", 1, at(1000), "second")
	put(t, s, w2)
	tests := []struct {
		name     string
		expected int64
	}{
		{name: "stale", expected: 1},
		{name: "ahead", expected: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Put(t.Context(), update("Patient", "p1", tt.expected, at(2000), "lost"))
			checkConflict(t, err, "Patient", "p1", tt.expected, 2)
			checkRead(t, s, written(w2))
			_, err = s.VRead(t.Context(), "Patient", "p1", 3)
			checkNotFound(t, err, "VRead of a refused version")
		})
	}
	t.Run("missing", func(t *testing.T) {
		err := s.Put(t.Context(), update("Patient", "nobody", 3, at(2000), "lost"))
		checkConflict(t, err, "Patient", "nobody", 3, 0)
		_, err = s.Read(t.Context(), "Patient", "nobody")
		checkNotFound(t, err, "Read after refused update")
	})
	page, err := s.History(t.Context(), store.HistoryQuery{Type: "Patient", ID: "p1", Count: 10})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if page.Total != 2 || len(page.Versions) != 2 {
		t.Errorf("History has %d versions (Total %d), want 2", len(page.Versions), page.Total)
	}
}

func testDelete(t *testing.T, s store.Store) {
	w1 := create("Patient", "p1", at(0), "first", store.Token{Param: "identifier", System: "s", Code: "1"})
	put(t, s, w1)
	w2 := tombstone("Patient", "p1", 1, at(1000))
	put(t, s, w2)
	checkRead(t, s, written(w2))
	checkVRead(t, s, written(w1))
	checkVRead(t, s, written(w2))

	err := s.Put(t.Context(), create("Patient", "p1", at(2000), "again"))
	checkConflict(t, err, "Patient", "p1", 0, 2)

	w3 := update("Patient", "p1", 2, at(3000), "recreated")
	put(t, s, w3)
	checkRead(t, s, written(w3))
	for _, w := range []*store.Write{w1, w2, w3} {
		checkVRead(t, s, written(w))
	}
}

func testNotFound(t *testing.T, s store.Store) {
	put(t, s, create("Patient", "p1", at(0), "first"))
	put(t, s, update("Patient", "p1", 1, at(1), "second"))
	ctx := t.Context()
	_, err := s.Read(ctx, "Patient", "p2")
	checkNotFound(t, err, "Read of an unknown id")
	_, err = s.Read(ctx, "Observation", "p1")
	checkNotFound(t, err, "Read of an id known only under another type")
	_, err = s.VRead(ctx, "Patient", "p2", 1)
	checkNotFound(t, err, "VRead of an unknown id")
	_, err = s.VRead(ctx, "Patient", "p1", 3)
	checkNotFound(t, err, "VRead of a version not yet written")
	_, err = s.VRead(ctx, "Patient", "p1", 0)
	checkNotFound(t, err, "VRead of version 0")
}

func testExactBytes(t *testing.T, s store.Store) {
	large := `{"resourceType":"Binary","data":"` + strings.Repeat("QUJD", 50_000) + `"}`
	tests := []struct {
		name string
		json string
	}{
		{name: "whitespace", json: "{ \"resourceType\" :\t\"Observation\",\n  \"id\":\"ws\" ,\r\n\"x\" : [ 1 ,2 ] }\n"},
		{name: "decimals", json: `{"resourceType":"Observation","valueQuantity":{"value":72.50},"a":1.0,"b":0.000100,"c":1e3,"d":-0.0}`},
		{name: "key order", json: `{"z":1,"id":"ko","resourceType":"Observation","a":{"y":2,"b":3}}`},
		{name: "unicode", json: `{"resourceType":"Observation","text":"Zoë Ó Dónaill ✓ 😀","esc":"\u00e9\n\"\\/"}`},
		{name: "large", json: large},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("b%d", i)
			src := []byte(tt.json)
			w := &store.Write{Type: "Observation", ID: id, LastUpdated: at(i), JSON: src}
			put(t, s, w)
			want := written(w)
			want.JSON = []byte(tt.json)
			// Neither the caller's buffer nor a returned one is the stored copy.
			for j := range src {
				src[j] = 'x'
			}
			got, err := s.Read(t.Context(), "Observation", id)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if d := diff(got, want); d != "" {
				t.Fatalf("Read: %s", d)
			}
			for j := range got.JSON {
				got.JSON[j] = 'y'
			}
			checkRead(t, s, want)
			checkVRead(t, s, want)
		})
	}
}

func testTypesIsolated(t *testing.T, s store.Store) {
	p := create("Patient", "1", at(0), "patient", store.Token{Param: "code", System: "s", Code: "c"})
	o := create("Observation", "1", at(0), "observation", store.Token{Param: "code", System: "s", Code: "c"})
	put(t, s, p)
	put(t, s, o)
	p2 := update("Patient", "1", 1, at(1000), "patient again", store.Token{Param: "code", System: "s", Code: "c"})
	put(t, s, p2)
	checkRead(t, s, written(p2))
	checkRead(t, s, written(o))
	put(t, s, tombstone("Observation", "1", 1, at(2000)))
	checkRead(t, s, written(p2))

	got, err := s.Search(t.Context(), store.Query{Type: "Patient", Where: []store.Clause{
		{Param: "code", Tokens: []store.TokenMatch{{System: "s", Code: "c"}}}}})
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	if ids := idsOf(got); !slices.Equal(ids, []string{"1"}) {
		t.Errorf("Search Patient found %v, want [1]", ids)
	}
	page, err := s.History(t.Context(), store.HistoryQuery{Type: "Patient", Count: 10})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	for _, v := range page.Versions {
		if v.Type != "Patient" {
			t.Errorf("Patient history holds %s/%s", v.Type, v.ID)
		}
	}
	if page.Total != 2 {
		t.Errorf("Patient history Total %d, want 2", page.Total)
	}
}

func idsOf(vs []*store.Version) []string {
	ids := make([]string, 0, len(vs))
	for _, v := range vs {
		ids = append(ids, v.ID)
	}
	return ids
}

// model records what the suite wrote so that it can compute the expected
// answer of any history query.
type model struct {
	versions []*version
}

type version struct {
	store.Version
	superseded time.Time // LastUpdated of the next version; zero while current
}

func (m *model) put(t *testing.T, s store.Writer, w *store.Write) {
	t.Helper()
	put(t, s, w)
	for _, v := range m.versions {
		if v.Type == w.Type && v.ID == w.ID && v.VersionID == w.Expected {
			v.superseded = w.LastUpdated
		}
	}
	m.versions = append(m.versions, &version{Version: *written(w)})
}

// newer orders versions as history pages do: newest LastUpdated first, ties
// broken by type, id and version, all descending.
func newer(a, b *version) int {
	if c := b.LastUpdated.Compare(a.LastUpdated); c != 0 {
		return c
	}
	if c := strings.Compare(b.Type, a.Type); c != 0 {
		return c
	}
	if c := strings.Compare(b.ID, a.ID); c != 0 {
		return c
	}
	return int(b.VersionID - a.VersionID)
}

func (m *model) history(q store.HistoryQuery) []*version {
	var out []*version
	for _, v := range m.versions {
		switch {
		case q.Type != "" && v.Type != q.Type,
			q.Type == "" && q.Types != nil && !slices.Contains(q.Types, v.Type),
			q.ID != "" && v.ID != q.ID,
			!q.Since.IsZero() && v.LastUpdated.Before(q.Since),
			!q.AtHigh.IsZero() && !v.LastUpdated.Before(q.AtHigh),
			!q.AtLow.IsZero() && !v.superseded.IsZero() && !v.superseded.After(q.AtLow):
			continue
		}
		out = append(out, v)
	}
	slices.SortFunc(out, newer)
	return out
}

func testHistory(t *testing.T, s store.Store) {
	var m model
	id := store.Token{Param: "identifier", System: "s", Code: "x"}
	// Ties in LastUpdated across types, ids and within one resource, a
	// tombstone, a re-create and a resource that stays at version 1.
	m.put(t, s, create("Patient", "a", at(0), "a1", id))
	m.put(t, s, create("Patient", "b", at(0), "b1"))
	m.put(t, s, create("Observation", "a", at(0), "oa1"))
	m.put(t, s, update("Patient", "a", 1, at(1000), "a2"))
	m.put(t, s, tombstone("Patient", "b", 1, at(1000)))
	m.put(t, s, update("Patient", "a", 2, at(2000), "a3"))
	m.put(t, s, update("Observation", "a", 1, at(2000), "oa2"))
	m.put(t, s, create("Patient", "c", at(3000), "c1"))
	m.put(t, s, update("Patient", "b", 2, at(3000), "b3"))
	m.put(t, s, create("Patient", "d", at(4000), "d1"))
	m.put(t, s, update("Patient", "d", 1, at(4000), "d2"))
	m.put(t, s, create("Encounter", "e", at(5000), "e1"))

	queries := []struct {
		name string
		q    store.HistoryQuery
	}{
		{name: "instance", q: store.HistoryQuery{Type: "Patient", ID: "a"}},
		{name: "instance deleted and recreated", q: store.HistoryQuery{Type: "Patient", ID: "b"}},
		{name: "instance same millisecond", q: store.HistoryQuery{Type: "Patient", ID: "d"}},
		{name: "instance unknown", q: store.HistoryQuery{Type: "Patient", ID: "zz"}},
		{name: "type", q: store.HistoryQuery{Type: "Patient"}},
		{name: "type unknown", q: store.HistoryQuery{Type: "Group"}},
		{name: "system", q: store.HistoryQuery{}},
		{name: "system of types", q: store.HistoryQuery{Types: []string{"Encounter", "Observation", "Group"}}},
		{name: "system of no type", q: store.HistoryQuery{Types: []string{}}},
		{name: "types since and at", q: store.HistoryQuery{Types: []string{"Observation"}, Since: at(1000), AtLow: at(1000), AtHigh: at(3000)}},
		{name: "since", q: store.HistoryQuery{Since: at(2000)}},
		{name: "since between", q: store.HistoryQuery{Since: at(1500)}},
		{name: "type since", q: store.HistoryQuery{Type: "Patient", Since: at(1000)}},
		{name: "instance since", q: store.HistoryQuery{Type: "Patient", ID: "a", Since: at(1000)}},
		{name: "since future", q: store.HistoryQuery{Since: at(9000)}},
		// Patient/a v1 was current in [0, 1000): AtHigh excludes versions
		// created at it, AtLow excludes versions replaced exactly at it
		// (v1 at 1000), which were current up to it but not at it.
		{name: "at first instant", q: store.HistoryQuery{AtLow: at(0), AtHigh: at(1)}},
		{name: "at the instant of a replacement", q: store.HistoryQuery{Type: "Patient", ID: "a", AtLow: at(1000), AtHigh: at(1001)}},
		{name: "at the millisecond before a replacement", q: store.HistoryQuery{Type: "Patient", ID: "a", AtLow: at(999), AtHigh: at(1000)}},
		{name: "at window", q: store.HistoryQuery{AtLow: at(1000), AtHigh: at(2000)}},
		{name: "at inside", q: store.HistoryQuery{AtLow: at(1500), AtHigh: at(1600)}},
		{name: "at instance", q: store.HistoryQuery{Type: "Patient", ID: "a", AtLow: at(2500), AtHigh: at(2600)}},
		{name: "at type", q: store.HistoryQuery{Type: "Patient", AtLow: at(500), AtHigh: at(3000)}},
		{name: "at before everything", q: store.HistoryQuery{AtLow: at(-5000), AtHigh: at(-1000)}},
		{name: "at low only", q: store.HistoryQuery{AtLow: at(3500)}},
		{name: "at high only", q: store.HistoryQuery{AtHigh: at(1000)}},
		{name: "since and at", q: store.HistoryQuery{Since: at(1000), AtLow: at(1000), AtHigh: at(3000)}},
	}
	for _, qq := range queries {
		want := m.history(qq.q)
		for _, count := range []int{1, 2, 3, 5, 100} {
			t.Run(fmt.Sprintf("%s/count=%d", qq.name, count), func(t *testing.T) {
				q := qq.q
				q.Count = count
				got := allPages(t, s, q, len(want))
				if len(got) != len(want) {
					t.Errorf("got %d versions, want %d:\n got %s\nwant %s", len(got), len(want), listOf(got), listOfModel(want))
					return
				}
				for i := range want {
					if d := diff(got[i], &want[i].Version); d != "" {
						t.Errorf("entry %d: %s\n got %s\nwant %s", i, d, listOf(got), listOfModel(want))
						return
					}
				}
			})
		}
	}
	// The model's rule said once by hand: at the millisecond Patient/a v2
	// replaced v1, v2 alone was current.
	q := store.HistoryQuery{Type: "Patient", ID: "a", AtLow: at(1000), AtHigh: at(1001), Count: 10}
	if got := allPages(t, s, q, 1); len(got) != 1 || got[0].VersionID != 2 {
		t.Errorf("at the instant v2 replaced v1: %s, want v2 alone", listOf(got))
	}
	// So too in the unit of work that replaces it, before it ends.
	put(t, s, create("Patient", "t", at(6000), "t1"))
	err := s.Transact(t.Context(), func(tx store.Tx) error {
		if err := tx.Put(t.Context(), update("Patient", "t", 1, at(7000), "t2")); err != nil {
			return err
		}
		q := store.HistoryQuery{Type: "Patient", ID: "t", AtLow: at(7000), AtHigh: at(7001), Count: 10}
		if got := allPages(t, tx, q, 1); len(got) != 1 || got[0].VersionID != 2 {
			t.Errorf("in the unit of work, at the instant v2 replaced v1: %s, want v2 alone", listOf(got))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Transact: %v", err)
	}
}

// allPages follows the cursor from the first page to the last, checking the
// invariants of every page, and returns the versions of all pages.
// testHistoryMethod: History returns each version with the method of the
// interaction that wrote it, as the write gave it, whether it was put
// alone or in a unit of work; "" for a write that gave none.
func testHistoryMethod(t *testing.T, s store.Store) {
	withMethod := func(w *store.Write, method string) *store.Write {
		w.Method = method
		return w
	}
	put(t, s, withMethod(create("Patient", "m", at(0), "1"), "PUT"))
	put(t, s, withMethod(update("Patient", "m", 1, at(1), "2"), "PATCH"))
	put(t, s, withMethod(tombstone("Patient", "m", 2, at(2)), "DELETE"))
	put(t, s, create("Patient", "none", at(3), "1"))
	err := s.Transact(t.Context(), func(tx store.Tx) error {
		if err := tx.Put(t.Context(), withMethod(create("Patient", "tx", at(4), "1"), "POST")); err != nil {
			return err
		}
		return tx.Put(t.Context(), withMethod(update("Patient", "m", 3, at(4), "4"), "PUT"))
	})
	if err != nil {
		t.Fatalf("Transact: %v", err)
	}
	page, err := s.History(t.Context(), store.HistoryQuery{Type: "Patient", Count: 10})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	var got []string
	for _, v := range page.Versions {
		got = append(got, fmt.Sprintf("%s/%d %s", v.ID, v.VersionID, v.Method))
	}
	want := []string{"tx/1 POST", "m/4 PUT", "none/1 ", "m/3 DELETE", "m/2 PATCH", "m/1 PUT"}
	if !slices.Equal(got, want) {
		t.Errorf("History gives the methods %q, want %q", got, want)
	}
}

func allPages(t *testing.T, s store.Reader, q store.HistoryQuery, total int) []*store.Version {
	t.Helper()
	var all []*store.Version
	for page := 0; ; page++ {
		if page > total+1 {
			t.Fatalf("more than %d pages for %d versions", page, total)
		}
		p, err := s.History(t.Context(), q)
		if err != nil {
			t.Fatalf("History page %d: %v", page, err)
		}
		if p.Total != total {
			t.Errorf("page %d: Total %d, want %d", page, p.Total, total)
		}
		if len(p.Versions) > q.Count {
			t.Errorf("page %d: %d versions, more than Count %d", page, len(p.Versions), q.Count)
		}
		if page > 0 && len(p.Versions) == 0 {
			t.Errorf("page %d is empty: the previous page should have had no Next", page)
		}
		all = append(all, p.Versions...)
		if p.Next == "" {
			return all
		}
		q.Cursor = p.Next
	}
}

func listOf(vs []*store.Version) string {
	var b strings.Builder
	for _, v := range vs {
		fmt.Fprintf(&b, " %s/%s/%d@%d", v.Type, v.ID, v.VersionID, v.LastUpdated.Sub(t0).Milliseconds())
	}
	return b.String()
}

func listOfModel(vs []*version) string {
	out := make([]*store.Version, len(vs))
	for i, v := range vs {
		out[i] = &v.Version
	}
	return listOf(out)
}

func tok(param, system, code string) store.Token {
	return store.Token{Param: param, System: system, Code: code}
}

// Token matches in the FHIR forms "system|code", "|code", "code" and "system|".
func sysCode(system, code string) store.TokenMatch {
	return store.TokenMatch{System: system, Code: code}
}
func noSysCode(code string) store.TokenMatch { return store.TokenMatch{Code: code} }
func anyCode(system string) store.TokenMatch { return store.TokenMatch{System: system, AnyCode: true} }
func code(code string) store.TokenMatch      { return store.TokenMatch{Code: code, AnySystem: true} }

func clause(param string, m ...store.TokenMatch) store.Clause {
	return store.Clause{Param: param, Tokens: m}
}

func testSearch(t *testing.T, s store.Store) {
	const nhs, other, lab, gender = "https://fhir.nhs.uk/Id/nhs-number", "urn:other", "http://loinc.org", "http://hl7.org/fhir/administrative-gender"
	current := map[string]*store.Write{}
	write := func(w *store.Write) {
		t.Helper()
		put(t, s, w)
		current[w.ID] = w
	}
	write(create("Patient", "p1", at(0), "p1",
		tok("identifier", nhs, "111"), tok("identifier", nhs, "111"), tok("identifier", other, "222"),
		tok("gender", gender, "female"), tok("active", "", "true")))
	write(create("Patient", "p2", at(0), "p2",
		tok("identifier", nhs, "333"), tok("gender", gender, "male"), tok("active", "", "true")))
	write(create("Patient", "p3", at(0), "p3",
		tok("identifier", other, "111"), tok("gender", gender, "female"), tok("active", "", "false")))
	write(create("Patient", "p4", at(0), "p4", tok("identifier", nhs, "444"), tok("gender", gender, "female")))
	write(tombstone("Patient", "p4", 1, at(1000)))
	write(create("Patient", "p5", at(0), "p5", tok("identifier", nhs, "555"), tok("gender", gender, "male")))
	write(update("Patient", "p5", 1, at(1000), "p5 renumbered", tok("identifier", nhs, "556")))
	write(create("Patient", "p6", at(0), "p6", tok("identifier", "", "111")))
	write(create("Patient", "p7", at(0), "p7", tok("identifier", nhs, "777")))
	write(update("Patient", "p7", 1, at(1000), "p7 without identifier"))
	put(t, s, create("Observation", "o1", at(0), "o1", tok("identifier", nhs, "111"), tok("code", lab, "8867-4")))

	queries := []struct {
		name  string
		want  []string
		typ   string
		where []store.Clause
		count int
	}{
		{name: "all", want: []string{"p1", "p2", "p3", "p5", "p6", "p7"}},
		{name: "all count", count: 2, want: []string{"p1", "p2"}},
		{name: "system|code", where: []store.Clause{clause("identifier", sysCode(nhs, "111"))}, want: []string{"p1"}},
		{name: "|code", where: []store.Clause{clause("identifier", noSysCode("111"))}, want: []string{"p6"}},
		{name: "code", where: []store.Clause{clause("identifier", code("111"))}, want: []string{"p1", "p3", "p6"}},
		{name: "system|", where: []store.Clause{clause("identifier", anyCode(other))}, want: []string{"p1", "p3"}},
		{name: "|code empty system only", where: []store.Clause{clause("active", noSysCode("true"))}, want: []string{"p1", "p2"}},
		{name: "system| unknown", where: []store.Clause{clause("identifier", anyCode("urn:none"))}},
		{name: "code of another param", where: []store.Clause{clause("gender", code("111"))}},
		{name: "unknown param", where: []store.Clause{clause("family", code("111"))}},
		{name: "or within clause", where: []store.Clause{clause("identifier", sysCode(nhs, "111"), sysCode(nhs, "333"))}, want: []string{"p1", "p2"}},
		{name: "or matching one resource twice", where: []store.Clause{clause("identifier", sysCode(nhs, "111"), code("222"), code("111"))}, want: []string{"p1", "p3", "p6"}},
		{name: "and of clauses", where: []store.Clause{clause("gender", code("female")), clause("identifier", anyCode(nhs))}, want: []string{"p1"}},
		{name: "and with nothing common", where: []store.Clause{clause("gender", code("male")), clause("active", code("false"))}},
		{name: "and count", count: 1, where: []store.Clause{clause("gender", code("female"))}, want: []string{"p1"}},
		{name: "deleted not matched", where: []store.Clause{clause("identifier", sysCode(nhs, "444"))}},
		{name: "superseded not matched", where: []store.Clause{clause("identifier", sysCode(nhs, "555"))}},
		{name: "index replaced", where: []store.Clause{clause("identifier", sysCode(nhs, "556"))}, want: []string{"p5"}},
		{name: "index cleared", where: []store.Clause{clause("identifier", code("777"))}},
		{name: "id", where: []store.Clause{clause("_id", code("p2"))}, want: []string{"p2"}},
		{name: "id or", where: []store.Clause{clause("_id", code("p3"), code("p2"), code("zz"))}, want: []string{"p2", "p3"}},
		{name: "id deleted", where: []store.Clause{clause("_id", code("p4"))}},
		{name: "id of another type", where: []store.Clause{clause("_id", code("o1"))}},
		{name: "id and token", where: []store.Clause{clause("_id", code("p1"), code("p2")), clause("gender", code("female"))}, want: []string{"p1"}},
		{name: "other type", typ: "Observation", where: []store.Clause{clause("identifier", code("111"))}, want: []string{"o1"}},
		{name: "unknown type", typ: "Group"},
	}
	for _, tt := range queries {
		t.Run(tt.name, func(t *testing.T) {
			q := store.Query{Type: "Patient", Where: tt.where, Count: tt.count}
			if tt.typ != "" {
				q.Type = tt.typ
			}
			got, err := s.Search(t.Context(), q)
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			want := tt.want
			if want == nil {
				want = []string{}
			}
			if ids := idsOf(got); !slices.Equal(ids, want) {
				t.Fatalf("found %v, want %v", ids, want)
			}
			if q.Type != "Patient" {
				return
			}
			for _, v := range got {
				if d := diff(v, written(current[v.ID])); d != "" {
					t.Errorf("%s: %s", v.ID, d)
				}
			}
		})
	}
}

func testTransactCommit(t *testing.T, s store.Store) {
	x1 := create("Patient", "x", at(0), "x1", tok("identifier", "s", "x1"))
	put(t, s, x1)
	t1 := create("Patient", "t1", at(1000), "t1", tok("identifier", "s", "t1"))
	t2 := create("Patient", "t2", at(1000), "t2")
	x2 := update("Patient", "x", 1, at(1000), "x2", tok("identifier", "s", "x2"))
	err := s.Transact(t.Context(), func(tx store.Tx) error {
		for _, w := range []*store.Write{t1, t2, x2} {
			if err := tx.Put(t.Context(), w); err != nil {
				return err
			}
		}
		// Reads inside the unit of work see its own writes.
		checkRead(t, tx, written(t1))
		checkRead(t, tx, written(x2))
		checkVRead(t, tx, written(x1))
		got, err := tx.Search(t.Context(), store.Query{Type: "Patient",
			Where: []store.Clause{clause("identifier", anyCode("s"))}})
		if err != nil {
			return err
		}
		if ids := idsOf(got); !slices.Equal(ids, []string{"t1", "x"}) {
			t.Errorf("Search inside the unit of work found %v, want [t1 x]", ids)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Transact: %v", err)
	}
	for _, w := range []*store.Write{t1, t2, x2} {
		checkRead(t, s, written(w))
	}
	checkVRead(t, s, written(x1))
	got, err := s.Search(t.Context(), store.Query{Type: "Patient", Where: []store.Clause{clause("identifier", code("x2"))}})
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	if ids := idsOf(got); !slices.Equal(ids, []string{"x"}) {
		t.Errorf("Search after commit found %v, want [x]", ids)
	}
}

func testTransactRollback(t *testing.T, s store.Store) {
	x1 := create("Patient", "x", at(0), "x1", tok("identifier", "s", "x1"))
	put(t, s, x1)
	put(t, s, create("Patient", "y", at(0), "y1"))
	errStop := errors.New("stop")
	writes := []*store.Write{
		create("Patient", "t1", at(1000), "t1", tok("identifier", "s", "t1")),
		update("Patient", "x", 1, at(1000), "x2", tok("identifier", "s", "x2")),
		tombstone("Patient", "y", 1, at(1000)),
	}
	tests := []struct {
		name  string
		last  func(tx store.Tx) error // what fn does after writes
		check func(t *testing.T, err error)
	}{
		{
			name: "fn error",
			last: func(store.Tx) error { return fmt.Errorf("giving up: %w", errStop) },
			check: func(t *testing.T, err error) {
				if !errors.Is(err, errStop) {
					t.Errorf("Transact returned %v, want the error of fn", err)
				}
			},
		},
		{
			// The conflict is judged against the unit of work's own update.
			name:  "conflict inside",
			last:  func(tx store.Tx) error { return tx.Put(t.Context(), create("Patient", "x", at(1000), "x again")) },
			check: func(t *testing.T, err error) { checkConflict(t, err, "Patient", "x", 0, 2) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Transact(t.Context(), func(tx store.Tx) error {
				for _, w := range writes {
					if err := tx.Put(t.Context(), w); err != nil {
						return err
					}
				}
				return tt.last(tx)
			})
			tt.check(t, err)
			_, err = s.Read(t.Context(), "Patient", "t1")
			checkNotFound(t, err, "Read of a rolled-back create")
			checkRead(t, s, written(x1))
			_, err = s.VRead(t.Context(), "Patient", "x", 2)
			checkNotFound(t, err, "VRead of a rolled-back update")
			y, err := s.Read(t.Context(), "Patient", "y")
			if err != nil || y.Deleted || y.VersionID != 1 {
				t.Errorf("Read of Patient/y after a rolled-back delete: %+v, %v", y, err)
			}
			checkFound(t, s, found{"t1", []string{}}, found{"x2", []string{}}, found{"x1", []string{"x"}})
			page, err := s.History(t.Context(), store.HistoryQuery{Count: 10})
			if err != nil {
				t.Fatalf("History: %v", err)
			}
			if page.Total != 2 {
				t.Errorf("system history Total %d after rollback, want 2:%s", page.Total, listOf(page.Versions))
			}
		})
	}
}

// writers is how many goroutines the concurrency tests run.
const writers = 20

// testConcurrentUpdates has writers race to update one resource, each reading
// the current version and retrying on conflict until its write lands: no
// update may be lost.
func testConcurrentUpdates(t *testing.T, s store.Store) {
	ctx := t.Context()
	var wg sync.WaitGroup
	got := make([]int64, writers) // the version each writer created
	for n := range writers {
		wg.Go(func() {
			for attempt := 0; attempt < 100*writers; attempt++ {
				var expected int64
				v, err := s.Read(ctx, "Patient", "race")
				switch {
				case err == nil:
					expected = v.VersionID
				case !errors.Is(err, store.ErrNotFound):
					t.Errorf("writer %d: Read: %v", n, err)
					return
				}
				err = s.Put(ctx, update("Patient", "race", expected, at(n), fmt.Sprintf("writer %d", n)))
				var ce *store.ConflictError
				switch {
				case err == nil:
					got[n] = expected + 1
					return
				case !errors.As(err, &ce):
					t.Errorf("writer %d: Put: %v", n, err)
					return
				}
			}
			t.Errorf("writer %d never got its write in", n)
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	cur, err := s.Read(ctx, "Patient", "race")
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if cur.VersionID != writers {
		t.Errorf("current version %d after %d successful writes", cur.VersionID, writers)
	}
	sorted := slices.Sorted(slices.Values(got))
	for i, v := range sorted {
		if v != int64(i+1) {
			t.Fatalf("writers created versions %v, want 1..%d each once", sorted, writers)
		}
	}
	seen := map[string]int64{}
	for n := range writers {
		v, err := s.VRead(ctx, "Patient", "race", got[n])
		if err != nil {
			t.Fatalf("VRead %d: %v", got[n], err)
		}
		if want := body("Patient", "race", fmt.Sprintf("writer %d", n)); !bytes.Equal(v.JSON, want) {
			t.Errorf("version %d holds %s, want the bytes of writer %d", got[n], v.JSON, n)
		}
		seen[string(v.JSON)] = v.VersionID
	}
	page, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "race", Count: 2 * writers})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if page.Total != writers || len(page.Versions) != writers {
		t.Errorf("history holds %d versions (Total %d), want %d", len(page.Versions), page.Total, writers)
	}
	for _, v := range page.Versions {
		if seen[string(v.JSON)] != v.VersionID {
			t.Errorf("history version %d holds %s, which VRead found as version %d", v.VersionID, v.JSON, seen[string(v.JSON)])
		}
	}
}

// testConcurrentCreates has writers race to create the same resource (exactly
// one wins) and then create distinct resources side by side.
func testConcurrentCreates(t *testing.T, s store.Store) {
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for n := range writers {
		wg.Go(func() {
			errs[n] = s.Put(ctx, create("Patient", "solo", at(0), fmt.Sprintf("writer %d", n)))
		})
	}
	wg.Wait()
	winner := -1
	for n, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Errorf("writers %d and %d both created Patient/solo", winner, n)
			}
			winner = n
			continue
		}
		checkConflict(t, err, "Patient", "solo", 0, 1)
	}
	if winner < 0 {
		t.Fatal("no writer created Patient/solo")
	}
	checkRead(t, s, written(create("Patient", "solo", at(0), fmt.Sprintf("writer %d", winner))))

	const each = 3
	for n := range writers {
		wg.Go(func() {
			for i := range each {
				w := create("Patient", fmt.Sprintf("w%d-%d", n, i), at(i), "distinct", tok("identifier", "s", "shared"))
				if err := s.Put(ctx, w); err != nil {
					t.Errorf("Put %s: %v", w.ID, err)
				}
			}
		})
	}
	wg.Wait()
	got, err := s.Search(ctx, store.Query{Type: "Patient", Where: []store.Clause{clause("identifier", sysCode("s", "shared"))}})
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	if len(got) != writers*each {
		t.Errorf("found %d resources, want %d", len(got), writers*each)
	}
	for n := range writers {
		for i := range each {
			checkRead(t, s, written(create("Patient", fmt.Sprintf("w%d-%d", n, i), at(i), "distinct")))
		}
	}
}

// testCancelled checks that every method given a cancelled context returns an
// error rather than hanging, and that the store still works afterwards.
func testCancelled(t *testing.T, s store.Store) {
	w := create("Patient", "p1", at(0), "first", tok("identifier", "s", "1"))
	put(t, s, w)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		call func() error
	}{
		{name: "Read", call: func() error { _, err := s.Read(ctx, "Patient", "p1"); return err }},
		{name: "VRead", call: func() error { _, err := s.VRead(ctx, "Patient", "p1", 1); return err }},
		{name: "History", call: func() error {
			_, err := s.History(ctx, store.HistoryQuery{Count: 10})
			return err
		}},
		{name: "Search", call: func() error {
			_, err := s.Search(ctx, store.Query{Type: "Patient", Where: []store.Clause{clause("identifier", code("1"))}})
			return err
		}},
		{name: "Put", call: func() error { return s.Put(ctx, create("Patient", "p2", at(1), "second")) }},
		{name: "Transact", call: func() error {
			return s.Transact(ctx, func(tx store.Tx) error {
				return tx.Put(ctx, create("Patient", "p3", at(1), "third"))
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { done <- tt.call() }()
			select {
			case err := <-done:
				if err == nil {
					t.Error("no error with a cancelled context")
				}
			case <-time.After(time.Minute):
				t.Fatal("hangs with a cancelled context")
			}
		})
	}
	checkRead(t, s, written(w))
	put(t, s, update("Patient", "p1", 1, at(2000), "after cancellations"))
}
