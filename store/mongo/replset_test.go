package mongo_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"carefhir/store"
	storemongo "carefhir/store/mongo"
	"carefhir/store/storetest"
)

// realMongoEnv names a MongoDB deployment, a replica set or a mongos, to run
// the tests below against: FerretDB has no transactions and no sharding,
// so only a real deployment runs the engine's transaction and sharding
// paths for real.
//
//	CAREFHIR_TEST_MONGO_URI=mongodb://localhost:27017/?replicaSet=rs0 go test ./store/mongo/
const realMongoEnv = "CAREFHIR_TEST_MONGO_URI"

// realMongo returns a URI naming a new database on the deployment
// CAREFHIR_TEST_MONGO_URI names, dropped when the test ends, or skips the
// test when the variable is not set.
func realMongo(t testing.TB) string {
	t.Helper()
	base := os.Getenv(realMongoEnv)
	if base == "" {
		t.Skip(realMongoEnv + " is not set: no MongoDB replica set to run against")
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", realMongoEnv, err)
	}
	name := "carefhirtest_" + bson.NewObjectID().Hex()
	u.Path = "/" + name
	t.Cleanup(func() {
		c, err := mongo.Connect(options.Client().ApplyURI(base))
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer c.Disconnect(context.Background())
		if err := c.Database(name).Drop(context.Background()); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	return u.String()
}

func TestConformanceReplicaSet(t *testing.T) {
	realMongo(t) // skips when no deployment is given
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, realMongo(t))
	}, storetest.SearchScale(1000))
}

// TestConditionalCreatesReplicaSet races conditional creates of one
// identifier on different criteria, each in a transaction, and plain
// creates of it: the identity documents make the conditional creates see
// each other, so exactly one of them creates.
func TestConditionalCreatesReplicaSet(t *testing.T) {
	raceConditionalCreates(t, []*storemongo.Store{open(t, realMongo(t))}, [][]store.Clause{
		{identifierIs("once")},
		{identifierIs("once"), {Param: "family", Strings: []store.StringMatch{{Value: "x"}}}},
		{identifierIs("once"), {Param: "_id", Tokens: []store.TokenMatch{{Code: "none", AnySystem: true}}, Not: true}},
	})
}

// TestTransactKillReplicaSet kills a process in the middle of a 1,000-write
// transaction: a store opened again holds all of it or none.
func TestTransactKillReplicaSet(t *testing.T) {
	if uri := os.Getenv(killURIEnv); uri != "" {
		killChildURI(uri)
		return
	}
	uri := realMongo(t)
	if testing.Short() {
		t.Skip("starts a child process")
	}
	storetest.Kill(t, "TestTransactKillReplicaSet", killURIEnv+"="+uri)
	storetest.CheckUnit(t, open(t, uri), storetest.CrashUnit(killEntries), storetest.AllOrNone)
}

// killURIEnv gives the child of TestTransactKillReplicaSet its database.
const killURIEnv = "CAREFHIR_MONGO_KILL_URI"

func killChildURI(uri string) {
	ctx := context.Background()
	s, err := storemongo.Open(ctx, uri)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	err = s.Transact(ctx, func(tx store.Tx) error {
		for i, w := range storetest.CrashUnit(killEntries) {
			if i == killEntries/2 {
				storetest.Signal()
			}
			if err := tx.Put(ctx, w); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	storetest.Stop()
}

// TestMigrateShard runs the migration with sharding: on a mongos every
// collection ends sharded on its key, and a second run does nothing; on a
// replica set the migration refuses.
func TestMigrateShard(t *testing.T) {
	uri := realMongo(t)
	s := open(t, uri)
	lines, err := storemongo.Migrate(t.Context(), uri, true)
	if err != nil {
		if strings.Contains(err.Error(), "not a mongos") {
			t.Skipf("%s is a replica set, not a mongos: %v", realMongoEnv, err)
		}
		t.Fatalf("Migrate: %v", err)
	}
	for _, want := range []string{"Patient: sharded on _id:hashed,", "history: sharded on type:1,id:hashed,", "keys: sharded on _id:hashed,"} {
		if !slices.Contains(lines, want) {
			t.Errorf("Migrate said %q, want a line %q", lines, want)
		}
	}
	if lines, err := storemongo.Migrate(t.Context(), uri, true); err != nil || len(lines) != 0 {
		t.Errorf("Migrate again: %q, %v; want nothing done", lines, err)
	}
	// The sharded collections serve reads, writes and history.
	putAll(t, s, patient("a", 0, 0, "a1"), patient("a", 1, 1000, "a2"))
	if v, err := s.VRead(t.Context(), "Patient", "a", 1); err != nil || !strings.Contains(string(v.JSON), "a1") {
		t.Errorf("VRead: %v, %v", v, err)
	}
	if page, err := s.History(t.Context(), store.HistoryQuery{Type: "Patient", ID: "a", Count: 10}); err != nil || page.Total != 2 {
		t.Errorf("History: %+v, %v", page, err)
	}
	if err := s.Put(t.Context(), patient("a", 0, 0, "again")); !errors.As(err, new(*store.ConflictError)) {
		t.Errorf("Put of an existing resource: %v, want a conflict", err)
	}
}
