package mongo_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"carefhir/store"
	storemongo "carefhir/store/mongo"
	"carefhir/store/mongo/ferrettest"
)

// The transaction path of the engine runs on replica sets and sharded
// clusters only, which FerretDB is not. These tests reach it on FerretDB
// through fake sessions that run a unit's function as the driver's
// WithTransaction does, without a transaction: what they check is the
// engine's side (the reads and writes a unit makes, the options it asks
// for), not MongoDB's isolation, which the tests against
// CAREFHIR_TEST_MONGO_URI check.

// fakeSession is a session that runs fn once, outside any transaction, and
// records how it was used.
type fakeSession struct {
	opts  *options.TransactionOptions
	runs  int
	ended bool
}

func (f *fakeSession) WithTransaction(ctx context.Context, fn func(ctx context.Context) (any, error),
	opts ...options.Lister[options.TransactionOptions]) (any, error) {
	f.opts = &options.TransactionOptions{}
	for _, o := range opts {
		for _, set := range o.List() {
			if err := set(f.opts); err != nil {
				return nil, err
			}
		}
	}
	f.runs++
	return fn(ctx)
}

func (f *fakeSession) Context(ctx context.Context) context.Context { return ctx }
func (f *fakeSession) EndSession(context.Context)                  { f.ended = true }

// fakes is the sessions a Store started, of transactions and snapshots.
type fakes struct{ tx, snapshot []*fakeSession }

// openNative returns a store on a new FerretDB database that runs the
// transaction path through fake sessions, and the sessions it starts.
func openNative(t *testing.T) (*storemongo.Store, *fakes, *mongo.Database) {
	uri := ferrettest.Start(t)
	s, f := native(t, uri)
	return s, f, connect(t, uri).Database(ferrettest.Database)
}

// native returns a store on the database at uri that runs the transaction
// path through fake sessions, and the sessions it starts.
func native(t *testing.T, uri string, opts ...storemongo.Option) (*storemongo.Store, *fakes) {
	s := open(t, uri, opts...)
	f := &fakes{}
	storemongo.SetSessions(s,
		func() (storemongo.Session, error) { f.tx = append(f.tx, &fakeSession{}); return f.tx[len(f.tx)-1], nil },
		func() (storemongo.Session, error) {
			f.snapshot = append(f.snapshot, &fakeSession{})
			return f.snapshot[len(f.snapshot)-1], nil
		})
	return s, f
}

func TestTransactionOptions(t *testing.T) {
	s, f, _ := openNative(t)
	err := s.Transact(t.Context(), func(tx store.Tx) error {
		return tx.Put(t.Context(), patient("p", 0, 0, "p1"))
	})
	if err != nil {
		t.Fatalf("Transact: %v", err)
	}
	if len(f.tx) != 1 {
		t.Fatalf("%d sessions started, want 1", len(f.tx))
	}
	sess := f.tx[0]
	if !sess.ended {
		t.Error("session not ended")
	}
	if rc := sess.opts.ReadConcern; rc == nil || rc.Level != "snapshot" {
		t.Errorf("read concern %+v, want snapshot", rc)
	}
	if wc := sess.opts.WriteConcern; wc == nil || wc.W != "majority" || wc.Journal == nil || !*wc.Journal {
		t.Errorf("write concern %+v, want majority, journaled", wc)
	}
	// A conflict reaches the caller as one, and the session is ended.
	err = s.Transact(t.Context(), func(tx store.Tx) error {
		return tx.Put(t.Context(), patient("p", 0, 0, "again"))
	})
	var ce *store.ConflictError
	if !errors.As(err, &ce) || ce.ID != "p" || ce.Current != 1 {
		t.Errorf("Transact of a create of an existing resource: %v, want a conflict", err)
	}
	if !f.tx[1].ended {
		t.Error("session of a failed unit not ended")
	}
}

// seedSearch writes Patients p0…p4 (family f0…f4) and one Observation per
// Patient referencing it.
func seedSearch(t *testing.T, s store.Store) {
	for i := range 5 {
		id := fmt.Sprintf("p%d", i)
		w := patient(id, 0, i, id)
		w.Index.Strings = []store.String{{Param: "family", Value: fmt.Sprintf("f%d", 4-i), Exact: fmt.Sprintf("F%d", 4-i)}}
		putAll(t, s, w)
		putAll(t, s, &store.Write{Type: "Observation", ID: "o" + id, LastUpdated: t0,
			JSON:  []byte(fmt.Sprintf(`{"resourceType":"Observation","id":"o%s"}`, id)),
			Index: store.Index{References: []store.Reference{{Param: "subject", Type: "Patient", ID: id}}}})
	}
}

// ids returns "Type/id" of each version.
func ids(vs []*store.Version) []string {
	out := []string{}
	for _, v := range vs {
		out = append(out, v.Type+"/"+v.ID)
	}
	return out
}

// TestTransactionFind pages through a sorted search with includes inside
// a unit of work: every page is the one Find gives outside.
func TestTransactionFind(t *testing.T) {
	s, f, _ := openNative(t)
	seedSearch(t, s)
	q := store.Query{Type: "Patient", Count: 2, Sort: []store.SortKey{{Param: "family"}}, Total: store.TotalAccurate,
		RevInclude: []store.Include{{Type: "Observation", Param: "subject"}}}
	var outside, inside []string
	for c := ""; ; {
		q.Cursor = c
		page, err := s.Find(t.Context(), q)
		if err != nil {
			t.Fatalf("Find: %v", err)
		}
		outside = append(outside, fmt.Sprint(ids(page.Matches), ids(page.Included), page.Total))
		if c = page.Next; c == "" {
			break
		}
	}
	snapshots := len(f.snapshot)
	if snapshots != len(outside) {
		t.Errorf("%d snapshot sessions for %d pages with totals and includes, want one each", snapshots, len(outside))
	}
	err := s.Transact(t.Context(), func(tx store.Tx) error {
		finder, ok := tx.(store.Finder)
		if !ok {
			t.Fatal("the unit of work has no Find")
		}
		for c := ""; ; {
			q.Cursor = c
			page, err := finder.Find(t.Context(), q)
			if err != nil {
				return err
			}
			inside = append(inside, fmt.Sprint(ids(page.Matches), ids(page.Included), page.Total))
			if c = page.Next; c == "" {
				return nil
			}
		}
	})
	if err != nil {
		t.Fatalf("Transact: %v", err)
	}
	if !slices.Equal(inside, outside) {
		t.Errorf("pages inside a unit of work %q, outside %q", inside, outside)
	}
	if want := []string{"[Patient/p4 Patient/p3] [Observation/op3 Observation/op4] 5"}; outside[0] != want[0] {
		t.Errorf("first page %q, want %q", outside[0], want[0])
	}
	if len(f.snapshot) != snapshots {
		t.Errorf("a search inside a unit of work started a snapshot session of its own")
	}
}

// keyIDs returns the _id of every document of the keys collection.
func keyIDs(t *testing.T, db *mongo.Database) []string {
	t.Helper()
	cur, err := db.Collection("keys").Find(t.Context(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(t.Context(), &docs); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range docs {
		out = append(out, d.ID)
	}
	slices.Sort(out)
	return out
}

func identifierIs(code string) store.Clause {
	return store.Clause{Param: "identifier", Tokens: []store.TokenMatch{{System: "s", Code: code}}}
}

// TestTransactionClaims checks the documents a unit of work writes to make
// concurrent units conflict: a search claims its criteria only when it
// finds nothing, and every version written claims its identifiers, so two
// conditional creates of one identifier, whatever their criteria, write
// a document in common.
func TestTransactionClaims(t *testing.T) {
	s, _, db := openNative(t)
	putAll(t, s, patient("a", 0, 0, "known"))
	claimed := keyIDs(t, db)
	err := s.Transact(t.Context(), func(tx store.Tx) error {
		found, err := tx.Search(t.Context(), store.Query{Type: "Patient", Count: 2, Where: []store.Clause{identifierIs("known")}})
		if err != nil || len(found) != 1 {
			return fmt.Errorf("search found %d, %v", len(found), err)
		}
		page, err := tx.(store.Finder).Find(t.Context(), store.Query{Type: "Patient", Count: 2, Where: []store.Clause{identifierIs("known")}})
		if err != nil || len(page.Matches) != 1 {
			return fmt.Errorf("find found %d, %v", len(page.Matches), err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Transact: %v", err)
	}
	if got := keyIDs(t, db); !slices.Equal(got, claimed) {
		t.Errorf("searches that found a resource wrote key documents %q", got)
	}

	// conditionalCreate runs a conditional create of Patient/id, with
	// identifier "new", on criteria, and returns the key documents it
	// added.
	conditionalCreate := func(id string, criteria ...store.Clause) []string {
		before := keyIDs(t, db)
		err := s.Transact(t.Context(), func(tx store.Tx) error {
			found, err := tx.Search(t.Context(), store.Query{Type: "Patient", Count: 2, Where: criteria})
			if err != nil || len(found) > 0 {
				return err
			}
			return tx.Put(t.Context(), patient(id, 0, 0, "new"))
		})
		if err != nil {
			t.Fatalf("Transact: %v", err)
		}
		return slices.DeleteFunc(keyIDs(t, db), func(k string) bool { return slices.Contains(before, k) })
	}
	family := store.Clause{Param: "family", Strings: []store.StringMatch{{Value: "x"}}}
	first := conditionalCreate("b", identifierIs("new"), family)
	if len(first) != 2 {
		t.Fatalf("a conditional create that found nothing wrote key documents %q, want its criteria and its identifier", first)
	}
	// Another database, so that the second search finds nothing too, as
	// it would in a transaction running beside the first.
	s, _, db = openNative(t)
	second := conditionalCreate("c", identifierIs("new"))
	common := slices.DeleteFunc(slices.Clone(second), func(k string) bool { return !slices.Contains(first, k) })
	if len(common) != 1 {
		t.Errorf("conditional creates of one identifier on different criteria wrote %q and %q, want one document in common", first, second)
	}
}

// counter is an Observer counting the commands named op.
type counter struct {
	op string
	n  atomic.Int64
}

func (c *counter) Operation(op string, _ time.Duration) {
	if op == c.op {
		c.n.Add(1)
	}
}

// A unit of work in a transaction that writes a resource whose next
// version another write holds, pending (begun and not finished, or cut
// short by a crash), is refused with a pending conflict before it inserts
// that version: the insert's duplicate key aborts a MongoDB transaction,
// so on a replica set the unit failed with the error of a later command,
// a 500 over HTTP, and was run again until its deadline.
func TestTransactionMeetsPendingVersion(t *testing.T) {
	uri := ferrettest.Start(t)
	writes := leavePending(t, uri)
	inserts := &counter{op: "insert"}
	n, _ := native(t, uri, storemongo.WithObserver(inserts))
	for _, w := range writes {
		inserts.n.Store(0)
		err := n.Transact(t.Context(), func(tx store.Tx) error { return tx.Put(t.Context(), w) })
		var conflict *store.ConflictError
		if !errors.As(err, &conflict) || !conflict.Pending || conflict.Current != w.Expected {
			t.Errorf("unit writing %s/%s from version %d with version %d pending: %v, want a pending conflict",
				w.Type, w.ID, w.Expected, w.VersionID(), err)
		}
		if got := inserts.n.Load(); got != 0 {
			t.Errorf("unit writing %s/%s: %d inserts, want none", w.Type, w.ID, got)
		}
	}
}
