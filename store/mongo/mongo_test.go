package mongo_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"carefhir/store"
	storemongo "carefhir/store/mongo"
	"carefhir/store/mongo/ferrettest"
	"carefhir/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, ferrettest.Start(t))
	})
}

// open opens the engine at uri and closes it when the test ends, before the
// server started by ferrettest.Start stops.
func open(t testing.TB, uri string, opts ...storemongo.Option) *storemongo.Store {
	t.Helper()
	s, err := storemongo.Open(context.Background(), uri, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// reopen opens the engine at uri as a process whose clock is an hour ahead,
// lets an hour pass on that clock and sweeps, so that it has seen every
// unit of work left in the journal held for far longer than a lease and
// settles it, as a process running after a crash does once it has seen the
// crashed process's unit unrenewed for a lease.
func reopen(t testing.TB, uri string, opts ...storemongo.Option) *storemongo.Store {
	t.Helper()
	clock := newClock(time.Hour)
	s := open(t, uri, append(opts, storemongo.WithClock(clock.now))...)
	clock.advance(time.Hour)
	if err := storemongo.Sweep(t.Context(), s); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	return s
}

// clock is the clock of a process, some time apart from the machine's.
type clock struct{ apart atomic.Int64 }

// newClock returns a clock apart from the machine's.
func newClock(apart time.Duration) *clock {
	c := &clock{}
	c.apart.Store(int64(apart))
	return c
}

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.apart.Load())) }
func (c *clock) advance(d time.Duration) { c.apart.Add(int64(d)) }

// connect returns a client of its own on uri, to look at what the engine
// stored.
func connect(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

var t0 = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)

// putAll writes ws in order and fails the test if s refuses one.
func putAll(t *testing.T, s store.Writer, ws ...*store.Write) {
	t.Helper()
	for _, w := range ws {
		if err := s.Put(t.Context(), w); err != nil {
			t.Fatalf("Put %s/%s expected %d: %v", w.Type, w.ID, w.Expected, err)
		}
	}
}

func TestOperatorInjection(t *testing.T) {
	s := open(t, ferrettest.Start(t))
	ctx := t.Context()
	ids := []string{"$where", "a.b", `{"$gt":""}`, "$gt", "$**", "a/b/1", "id with space"}
	// Plain resources an injected operator would match.
	for _, id := range []string{"plain1", "plain2"} {
		w := &store.Write{Type: "Patient", ID: id, LastUpdated: t0, JSON: []byte(`{}`),
			Index: store.Index{Tokens: []store.Token{{Param: "identifier", System: "s", Code: "c"}}}}
		if err := s.Put(ctx, w); err != nil {
			t.Fatalf("Put %s: %v", id, err)
		}
	}
	for _, id := range ids {
		t.Run(id, func(t *testing.T) {
			if _, err := s.Read(ctx, "Patient", id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Read before create: %v, want ErrNotFound", err)
			}
			if _, err := s.VRead(ctx, "Patient", id, 1); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("VRead before create: %v, want ErrNotFound", err)
			}
			found, err := s.Search(ctx, store.Query{Type: "Patient", Where: []store.Clause{
				{Param: "_id", Tokens: []store.TokenMatch{{Code: id, AnySystem: true}}}}})
			if err != nil || len(found) != 0 {
				t.Errorf("Search _id before create: %d found, %v", len(found), err)
			}
			json := []byte(fmt.Sprintf(`{"id":%q}`, id))
			w := &store.Write{Type: "Patient", ID: id, LastUpdated: t0, JSON: json,
				Index: store.Index{Tokens: []store.Token{{Param: id, System: id, Code: id}}}}
			if err := s.Put(ctx, w); err != nil {
				t.Fatalf("Put: %v", err)
			}
			v, err := s.Read(ctx, "Patient", id)
			if err != nil || v.ID != id || string(v.JSON) != string(json) {
				t.Fatalf("Read: %+v, %v", v, err)
			}
			u := *w
			u.Expected = 1
			if err := s.Put(ctx, &u); err != nil {
				t.Fatalf("update: %v", err)
			}
			if v, err := s.VRead(ctx, "Patient", id, 1); err != nil || v.ID != id {
				t.Errorf("VRead: %+v, %v", v, err)
			}
			queries := []struct {
				name  string
				where []store.Clause
			}{
				{name: "_id", where: []store.Clause{{Param: "_id", Tokens: []store.TokenMatch{{Code: id, AnySystem: true}}}}},
				{name: "system|code", where: []store.Clause{{Param: id, Tokens: []store.TokenMatch{{System: id, Code: id}}}}},
				{name: "code", where: []store.Clause{{Param: id, Tokens: []store.TokenMatch{{Code: id, AnySystem: true}}}}},
				{name: "system|", where: []store.Clause{{Param: id, Tokens: []store.TokenMatch{{System: id, AnyCode: true}}}}},
			}
			for _, q := range queries {
				found, err := s.Search(ctx, store.Query{Type: "Patient", Where: q.where})
				if err != nil {
					t.Fatalf("Search %s: %v", q.name, err)
				}
				if len(found) != 1 || found[0].ID != id {
					t.Errorf("Search %s found %d resources, want only %s", q.name, len(found), id)
				}
			}
			page, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: id, Count: 10})
			if err != nil || page.Total != 2 {
				t.Errorf("History: %+v, %v", page, err)
			}
		})
	}
	t.Run("code as operator", func(t *testing.T) {
		found, err := s.Search(ctx, store.Query{Type: "Patient", Where: []store.Clause{
			{Param: "identifier", Tokens: []store.TokenMatch{{Code: `{"$ne":null}`, AnySystem: true}, {System: "$gt", Code: ""}}}}})
		if err != nil || len(found) != 0 {
			t.Errorf("Search: %d found, %v; want none", len(found), err)
		}
	})
	t.Run("type", func(t *testing.T) {
		for _, typ := range []string{"$cmd", "history", "system.users", "Patient.x", "", "patient"} {
			err := s.Put(ctx, &store.Write{Type: typ, ID: "x", LastUpdated: t0, JSON: []byte(`{}`)})
			if err == nil {
				t.Errorf("Put of type %q accepted", typ)
			}
			if _, err := s.Read(ctx, typ, "plain1"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Read of type %q: %v, want ErrNotFound", typ, err)
			}
			if found, err := s.Search(ctx, store.Query{Type: typ}); err != nil || len(found) != 0 {
				t.Errorf("Search of type %q: %d found, %v", typ, len(found), err)
			}
		}
	})
}

func TestOpen(t *testing.T) {
	uri := ferrettest.Start(t)
	tests := []struct {
		name    string
		uri     string
		wantErr bool
	}{
		{name: "database in path", uri: uri},
		{name: "not a URI", uri: "http://example.com/", wantErr: true},
		{name: "empty", uri: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := storemongo.Open(t.Context(), tt.uri)
			if err == nil {
				defer s.Close()
			}
			if (err != nil) != tt.wantErr {
				t.Errorf("Open(%q): %v, want error %v", tt.uri, err, tt.wantErr)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		if s, err := storemongo.Open(ctx, "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500"); err == nil {
			s.Close()
			t.Error("Open of an unreachable server succeeded")
		}
	})
}

func TestDefaultDatabase(t *testing.T) {
	uri := ferrettest.Start(t)
	root := uri[:len(uri)-len(ferrettest.Database)]
	s := open(t, root)
	w := &store.Write{Type: "Patient", ID: "p", LastUpdated: t0, JSON: []byte(`{}`)}
	if err := s.Put(t.Context(), w); err != nil {
		t.Fatalf("Put: %v", err)
	}
	n, err := connect(t, uri).Database(storemongo.DefaultDatabase).Collection("Patient").CountDocuments(t.Context(), bson.D{})
	if err != nil || n != 1 {
		t.Errorf("%s.Patient holds %d documents (%v), want 1", storemongo.DefaultDatabase, n, err)
	}
}

func TestIndexes(t *testing.T) {
	uri := ferrettest.Start(t)
	s := open(t, uri)
	db := connect(t, uri).Database(ferrettest.Database)
	keys := func(coll string) []string {
		t.Helper()
		cur, err := db.Collection(coll).Indexes().List(t.Context())
		if err != nil {
			t.Fatalf("list indexes of %s: %v", coll, err)
		}
		var idx []struct {
			Key bson.D `bson:"key"`
		}
		if err := cur.All(t.Context(), &idx); err != nil {
			t.Fatalf("list indexes of %s: %v", coll, err)
		}
		var out []string
		for _, i := range idx {
			var k string
			for _, e := range i.Key {
				k += fmt.Sprintf("%s:%v,", e.Key, e.Value)
			}
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	want := []string{"_id:1,", "pend:1,", "ts:-1,type:-1,id:-1,v:-1,", "type:1,id:1,ts:-1,v:-1,", "type:1,ts:-1,id:-1,v:-1,"}
	if got := keys("history"); !slices.Equal(got, want) {
		t.Errorf("history indexes after Open: %q, want %q", got, want)
	}
	// The indexes of the plan are made by Open, before any write.
	want = []string{"_id:1,", "ix_gender:1,_id:1,", "ix_identifier:1,_id:1,", "ix_telecom:1,_id:1,",
		"ixa_birthdate:1,_id:1,", "ixa_family:1,_id:1,", "ixdh_birthdate:1,", "ixdl_birthdate:1,",
		"ixr_general-practitioner:1,_id:1,", "ixr_organization:1,_id:1,", "ixs_address-postalcode:1,_id:1,",
		"ixs_family:1,_id:1,", "ixs_given:1,_id:1,", "ixs_name:1,_id:1,", "ixz_birthdate:-1,_id:1,",
		"ixz_family:-1,_id:1,", "ts:-1,_id:1,", "ts:1,_id:1,"}
	if got := keys("Patient"); !slices.Equal(got, want) {
		t.Errorf("Patient indexes after Open: %q, want %q", got, want)
	}
	// A write creates none, whatever search fields it carries.
	w := &store.Write{Type: "Patient", ID: "p", LastUpdated: t0, JSON: []byte(`{}`), Index: store.Index{Tokens: []store.Token{
		{Param: "identifier", System: "s", Code: "1"}, {Param: "general-practitioner", Code: "Practitioner/1"}, {Param: "a.b$", Code: "x"}}}}
	if err := s.Put(t.Context(), w); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got := keys("Patient"); !slices.Equal(got, want) {
		t.Errorf("Patient indexes after Put: %q, want %q", got, want)
	}
	// Settings in the database add a parameter and take one out; the next
	// start creates the index added (dropping is for migrate).
	_, err := db.Collection("settings").InsertOne(t.Context(), bson.D{{Key: "_id", Value: "indexes"},
		{Key: "add", Value: bson.A{bson.D{{Key: "type", Value: "Patient"}, {Key: "param", Value: "a.b$"}, {Key: "kind", Value: "token"}}}},
		{Key: "drop", Value: bson.A{bson.D{{Key: "type", Value: "Patient"}, {Key: "param", Value: "telecom"}}}}})
	if err != nil {
		t.Fatalf("insert settings: %v", err)
	}
	open(t, uri)
	want = append(want, "ix_a~2eb~24:1,_id:1,")
	slices.Sort(want)
	if got := keys("Patient"); !slices.Equal(got, want) {
		t.Errorf("Patient indexes after a restart with settings: %q, want %q", got, want)
	}
}

// canon writes a document with its fields sorted.
func canon(m bson.M) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "%s=%v ", k, m[k])
	}
	return b.String()
}

// TestStored pins the documents the engine writes, which other tools
// reading the database rely on.
func TestStored(t *testing.T) {
	uri := ferrettest.Start(t)
	s := open(t, uri)
	ctx := t.Context()
	w1 := &store.Write{Type: "Patient", ID: "p", LastUpdated: t0, JSON: []byte(`{"a":1.50}`), Index: store.Index{Tokens: []store.Token{
		{Param: "identifier", System: "a|b", Code: "1"}, {Param: "identifier", System: "a|b", Code: "1"}}}}
	w2 := &store.Write{Type: "Patient", ID: "p", Expected: 1, LastUpdated: t0.Add(time.Second), Deleted: true}
	putAll(t, s, w1, w2)
	db := connect(t, uri).Database(ferrettest.Database)
	var cur bson.M
	if err := db.Collection("Patient").FindOne(ctx, bson.D{{Key: "_id", Value: "p"}}).Decode(&cur); err != nil {
		t.Fatalf("find current: %v", err)
	}
	want := bson.M{"_id": "p", "v": int64(2), "ts": bson.NewDateTimeFromTime(w2.LastUpdated), "del": true}
	if canon(cur) != canon(want) {
		t.Errorf("current document %s, want %s", canon(cur), canon(want))
	}
	var h1 bson.M
	if err := db.Collection("history").FindOne(ctx, bson.D{{Key: "_id", Value: "Patient/p/1"}}).Decode(&h1); err != nil {
		t.Fatalf("find history: %v", err)
	}
	want = bson.M{"_id": "Patient/p/1", "type": "Patient", "id": "p", "v": int64(1), "ts": bson.NewDateTimeFromTime(t0),
		"del": false, "json": bson.Binary{Data: w1.JSON}, "end": bson.NewDateTimeFromTime(w2.LastUpdated)}
	if canon(h1) != canon(want) {
		t.Errorf("history document %s, want %s", canon(h1), canon(want))
	}

	// The search values of a live version, one array per parameter.
	w3 := &store.Write{Type: "Patient", ID: "p", Expected: 2, LastUpdated: t0.Add(2 * time.Second), JSON: []byte(`{}`), Index: w1.Index}
	putAll(t, s, w3)
	var live struct {
		Identifier []string `bson:"ix_identifier"`
	}
	if err := db.Collection("Patient").FindOne(ctx, bson.D{{Key: "_id", Value: "p"}}).Decode(&live); err != nil {
		t.Fatalf("find current: %v", err)
	}
	if want := []string{`pa\|b|1`, "c1"}; !slices.Equal(live.Identifier, want) {
		t.Errorf("ix_identifier %q, want %q", live.Identifier, want)
	}
}

// TestRepairAfterCrash simulates a crash between the two steps of a write:
// the current document was replaced but history was not written.
func TestRepairAfterCrash(t *testing.T) {
	uri := ferrettest.Start(t)
	s := open(t, uri)
	ctx := t.Context()
	putAll(t, s, &store.Write{Type: "Patient", ID: "p", LastUpdated: t0, JSON: []byte(`{"v":1}`)})
	putAll(t, s, &store.Write{Type: "Patient", ID: "p", Expected: 1, LastUpdated: t0.Add(time.Second), JSON: []byte(`{"v":2}`)})
	history := connect(t, uri).Database(ferrettest.Database).Collection("history")
	if _, err := history.DeleteOne(ctx, bson.D{{Key: "_id", Value: "Patient/p/2"}}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	v, err := s.VRead(ctx, "Patient", "p", 2)
	if err != nil || string(v.JSON) != `{"v":2}` {
		t.Fatalf("VRead of the current version missing from history: %+v, %v", v, err)
	}
	w3 := &store.Write{Type: "Patient", ID: "p", Expected: 2, LastUpdated: t0.Add(2 * time.Second), JSON: []byte(`{"v":3}`)}
	putAll(t, s, w3)
	page, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "p", Count: 10})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	var got []string
	for _, v := range page.Versions {
		got = append(got, string(v.JSON))
	}
	if want := []string{`{"v":3}`, `{"v":2}`, `{"v":1}`}; !slices.Equal(got, want) {
		t.Errorf("history after the next update %q, want %q", got, want)
	}
	// Version 2 is known to have been replaced at w3's time again.
	page, err = s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "p", Count: 10, AtLow: t0.Add(2500 * time.Millisecond)})
	if err != nil || len(page.Versions) != 1 || page.Versions[0].VersionID != 3 {
		t.Errorf("History at a time after the update: %+v, %v", page, err)
	}
}

func TestHistoryBadCursor(t *testing.T) {
	s := open(t, ferrettest.Start(t))
	for _, c := range []string{"!!", "e30", "bm90IGpzb24"} {
		if _, err := s.History(t.Context(), store.HistoryQuery{Count: 1, Cursor: c}); err == nil {
			t.Errorf("History with cursor %q: no error", c)
		}
	}
}

// openWithP returns a new store holding version 1 of Patient/p.
func openWithP(t *testing.T) *storemongo.Store {
	s := open(t, ferrettest.Start(t))
	putAll(t, s, &store.Write{Type: "Patient", ID: "p", LastUpdated: t0, JSON: []byte(`{"v":1}`)})
	return s
}

func TestTransactHistory(t *testing.T) {
	s := openWithP(t)
	ctx := t.Context()
	err := s.Transact(ctx, func(tx store.Tx) error {
		w2 := &store.Write{Type: "Patient", ID: "p", Expected: 1, LastUpdated: t0.Add(time.Second), JSON: []byte(`{"v":2}`)}
		w3 := &store.Write{Type: "Patient", ID: "q", LastUpdated: t0.Add(time.Second), JSON: []byte(`{"q":1}`)}
		for _, w := range []*store.Write{w2, w3} {
			if err := tx.Put(ctx, w); err != nil {
				return err
			}
		}
		tests := []struct {
			name string
			q    store.HistoryQuery
			want []string
		}{
			{name: "system", q: store.HistoryQuery{Count: 2}, want: []string{`{"q":1}`, `{"v":2}`, `{"v":1}`}},
			{name: "instance", q: store.HistoryQuery{Type: "Patient", ID: "p", Count: 1}, want: []string{`{"v":2}`, `{"v":1}`}},
			{name: "at after update", q: store.HistoryQuery{Count: 5, AtLow: t0.Add(1500 * time.Millisecond)}, want: []string{`{"q":1}`, `{"v":2}`}},
			{name: "at before update", q: store.HistoryQuery{Count: 5, AtLow: t0, AtHigh: t0.Add(500 * time.Millisecond)}, want: []string{`{"v":1}`}},
		}
		for _, tt := range tests {
			var got []string
			q := tt.q
			for {
				page, err := tx.History(ctx, q)
				if err != nil {
					return err
				}
				if page.Total != len(tt.want) {
					t.Errorf("%s: Total %d, want %d", tt.name, page.Total, len(tt.want))
				}
				for _, v := range page.Versions {
					got = append(got, string(v.JSON))
				}
				if page.Next == "" || len(got) > 10 {
					break
				}
				q.Cursor = page.Next
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("%s: history %q, want %q", tt.name, got, tt.want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Transact: %v", err)
	}
}

func TestTransactLateConflict(t *testing.T) {
	s := openWithP(t)
	ctx := t.Context()
	err := s.Transact(ctx, func(tx store.Tx) error {
		if err := tx.Put(ctx, &store.Write{Type: "Patient", ID: "new", LastUpdated: t0, JSON: []byte(`{}`)}); err != nil {
			return err
		}
		if err := tx.Put(ctx, &store.Write{Type: "Patient", ID: "p", Expected: 1, LastUpdated: t0, JSON: []byte(`{"tx":1}`)}); err != nil {
			return err
		}
		// Another writer gets in before the unit is applied.
		return s.Put(ctx, &store.Write{Type: "Patient", ID: "p", Expected: 1, LastUpdated: t0, JSON: []byte(`{"other":1}`)})
	})
	var ce *store.ConflictError
	if !errors.As(err, &ce) || ce.ID != "p" || ce.Current != 2 {
		t.Fatalf("Transact: %v, want a conflict on Patient/p at version 2", err)
	}
	if _, err := s.Read(ctx, "Patient", "new"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Read of a create in the refused unit: %v, want ErrNotFound", err)
	}
}

func TestStartStop(t *testing.T) {
	var uri string
	t.Run("server", func(t *testing.T) {
		uri = ferrettest.Start(t)
		open(t, uri)
	})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	s, err := storemongo.Open(ctx, uri+"?serverSelectionTimeoutMS=300")
	if err == nil {
		s.Close()
		t.Error("the server still answers after its test ended")
	}
}

func BenchmarkPut(b *testing.B) {
	s := open(b, ferrettest.Start(b))
	ctx := context.Background()
	json := []byte(`{"resourceType":"Patient","name":[{"family":"Smith","given":["Ann"]}],"birthDate":"1970-01-01"}`)
	for i := 0; b.Loop(); i++ {
		w := &store.Write{Type: "Patient", ID: fmt.Sprintf("p%d", i), LastUpdated: t0, JSON: json,
			Index: store.Index{Tokens: []store.Token{{Param: "identifier", System: "https://fhir.nhs.uk/Id/nhs-number", Code: fmt.Sprint(9000000000 + i)}}}}
		if err := s.Put(ctx, w); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRead(b *testing.B) {
	s := open(b, ferrettest.Start(b))
	ctx := context.Background()
	json := []byte(`{"resourceType":"Patient","name":[{"family":"Smith","given":["Ann"]}],"birthDate":"1970-01-01"}`)
	const n = 100
	for i := range n {
		if err := s.Put(ctx, &store.Write{Type: "Patient", ID: fmt.Sprintf("p%d", i), LastUpdated: t0, JSON: json}); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; b.Loop(); i++ {
		if _, err := s.Read(ctx, "Patient", fmt.Sprintf("p%d", i%n)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestHistoryTotalOnFirstPage checks that history is counted for its first
// page only: the next pages carry that total in their cursor rather than
// counting every version again.
func TestHistoryTotalOnFirstPage(t *testing.T) {
	s := openWithP(t)
	ctx := t.Context()
	putAll(t, s, &store.Write{Type: "Patient", ID: "p", Expected: 1, LastUpdated: t0.Add(time.Second), JSON: []byte(`{"v":2}`)})
	first, err := s.History(ctx, store.HistoryQuery{Type: "Patient", Count: 1})
	if err != nil || first.Total != 2 || first.Next == "" {
		t.Fatalf("first page: %+v, %v; want a total of 2 and a next page", first, err)
	}
	putAll(t, s, &store.Write{Type: "Patient", ID: "q", LastUpdated: t0.Add(-time.Hour), JSON: []byte(`{}`)})
	next, err := s.History(ctx, store.HistoryQuery{Type: "Patient", Count: 1, Cursor: first.Next})
	if err != nil || next.Total != 2 {
		t.Errorf("next page: total %d, %v; want the first page's 2", next.Total, err)
	}
	again, err := s.History(ctx, store.HistoryQuery{Type: "Patient", Count: 1})
	if err != nil || again.Total != 3 {
		t.Errorf("a new first page: total %d, %v; want 3", again.Total, err)
	}
}

// TestReferenceKeysByID checks that documents written before references
// were stored once, which hold a key by id alone beside each reference,
// answer every search as documents written after.
func TestReferenceKeysByID(t *testing.T) {
	uri := ferrettest.Start(t)
	storetest.ReferenceKeysByID(t, open(t, uri), func(t *testing.T, s store.Store) store.Store {
		db := connect(t, uri).Database(ferrettest.Database)
		added := 0
		for _, typ := range []string{"CarePlan", "Observation", "Organization", "Patient", "Practitioner"} {
			coll := db.Collection(typ)
			cur, err := coll.Find(t.Context(), bson.D{})
			if err != nil {
				t.Fatal(err)
			}
			var docs []bson.M
			if err := cur.All(t.Context(), &docs); err != nil {
				t.Fatal(err)
			}
			for _, doc := range docs {
				set := bson.D{}
				for name, v := range doc {
					if !strings.HasPrefix(name, "ixr_") {
						continue
					}
					// One value is stored alone, several as an array.
					keys, ok := v.(bson.A)
					if !ok {
						keys = bson.A{v}
					}
					for _, k := range slices.Clone(keys) {
						if ref, ok := strings.CutPrefix(k.(string), store.RefTyped); ok {
							_, id, _ := strings.Cut(ref, "/")
							keys = append(keys, "i"+id)
							added++
						}
					}
					set = append(set, bson.E{Key: name, Value: keys})
				}
				if len(set) > 0 {
					if _, err := coll.UpdateOne(t.Context(), bson.D{{Key: "_id", Value: doc["_id"]}}, bson.D{{Key: "$set", Value: set}}); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		if added == 0 {
			t.Fatal("no document holds a reference to add a key by id alone to")
		}
		return s
	})
}
