package mongo_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"carefhir/fhir/search"
	"carefhir/server"
	storemongo "carefhir/store/mongo"
	"carefhir/store/mongo/ferrettest"
)

// TestDefaultIndexesInRegistry checks the index plan against the official
// search parameters: every parameter it indexes exists on its type with the
// kind the plan gives it, and pairs with a date parameter that exists.
func TestDefaultIndexesInRegistry(t *testing.T) {
	var types []string
	for _, p := range storemongo.DefaultIndexes() {
		if !slices.Contains(types, p.Type) {
			types = append(types, p.Type)
		}
	}
	reg, err := search.Load(types)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range storemongo.DefaultIndexes() {
		def, ok := reg.Param(p.Type, p.Param)
		if !ok {
			t.Errorf("%s.%s: no such search parameter", p.Type, p.Param)
			continue
		}
		if def.Type != p.Kind {
			t.Errorf("%s.%s: indexed as %s, but it is a %s parameter", p.Type, p.Param, p.Kind, def.Type)
		}
		if p.With != "" {
			if with, ok := reg.Param(p.Type, p.With); !ok || with.Type != "date" {
				t.Errorf("%s.%s: paired with %s, which is not a date parameter of the type", p.Type, p.Param, p.With)
			}
		}
	}
}

// indexKeys returns the keys of the indexes of coll, written
// field:direction, sorted.
func indexKeys(t *testing.T, coll *mongo.Collection) []string {
	t.Helper()
	cur, err := coll.Indexes().List(t.Context())
	if err != nil {
		t.Fatalf("list indexes of %s: %v", coll.Name(), err)
	}
	var idx []struct {
		Key bson.D `bson:"key"`
	}
	if err := cur.All(t.Context(), &idx); err != nil {
		t.Fatalf("list indexes of %s: %v", coll.Name(), err)
	}
	var out []string
	for _, i := range idx {
		var parts []string
		for _, e := range i.Key {
			parts = append(parts, fmt.Sprintf("%s:%v", e.Key, e.Value))
		}
		out = append(out, strings.Join(parts, ","))
	}
	slices.Sort(out)
	return out
}

// TestMigrate runs the migration on a database holding an index of an
// earlier plan: it makes the indexes of the plan, drops the one no longer
// planned, reports both, and does nothing when run again. Sharding needs a
// mongos.
func TestMigrate(t *testing.T) {
	uri := ferrettest.Start(t)
	db := connect(t, uri).Database(ferrettest.Database)
	patients := db.Collection("Patient")
	if _, err := patients.Indexes().CreateOne(t.Context(), mongo.IndexModel{Keys: bson.D{{Key: "ixp", Value: 1}}}); err != nil {
		t.Fatal(err)
	}
	lines, err := storemongo.Migrate(t.Context(), uri, false)
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	for _, want := range []string{"Patient: dropped 1 indexes no longer planned", "Patient: created 17 indexes", "Observation: created 15 indexes"} {
		if !slices.Contains(lines, want) {
			t.Errorf("Migrate said %q, want a line %q", lines, want)
		}
	}
	if got := indexKeys(t, patients); slices.Contains(got, "ixp:1") || !slices.Contains(got, "ix_identifier:1,_id:1") {
		t.Errorf("Patient indexes after Migrate: %q", got)
	}
	if got := indexKeys(t, db.Collection("Observation")); !slices.Contains(got, "ixr_subject:1,ixz_date:-1,_id:1") {
		t.Errorf("Observation indexes after Migrate: %q, want subject then date, newest first", got)
	}
	lines, err = storemongo.Migrate(t.Context(), uri, false)
	if err != nil || len(lines) != 0 {
		t.Errorf("Migrate again: %q, %v; want nothing done", lines, err)
	}
	if _, err := storemongo.Migrate(t.Context(), uri, true); err == nil || !strings.Contains(err.Error(), "mongos") {
		t.Errorf("Migrate --shard on a server that is no mongos: %v, want an error naming mongos", err)
	}
}

// TestTooManyIndexes has the settings index more parameters of one type
// than MongoDB has indexes for: opening and migrating fail, saying so,
// rather than leaving parameters unindexed.
func TestTooManyIndexes(t *testing.T) {
	uri := ferrettest.Start(t)
	db := connect(t, uri).Database(ferrettest.Database)
	add := bson.A{}
	for i := range 25 {
		add = append(add, bson.D{{Key: "type", Value: "Observation"}, {Key: "param", Value: fmt.Sprintf("p%d", i)},
			{Key: "kind", Value: "date"}, {Key: "sort", Value: true}})
	}
	if _, err := db.Collection("settings").InsertOne(t.Context(), bson.D{{Key: "_id", Value: "indexes"}, {Key: "add", Value: add}}); err != nil {
		t.Fatal(err)
	}
	if s, err := storemongo.Open(t.Context(), uri); !errors.Is(err, storemongo.ErrTooManyIndexes) {
		if err == nil {
			s.Close()
		}
		t.Errorf("Open: %v, want ErrTooManyIndexes", err)
	} else if !strings.Contains(err.Error(), "Observation needs 116") {
		t.Errorf("Open: %v, want it to name the type and the count", err)
	}
	if _, err := storemongo.Migrate(t.Context(), uri, false); !errors.Is(err, storemongo.ErrTooManyIndexes) {
		t.Errorf("Migrate: %v, want ErrTooManyIndexes", err)
	}
	if n, err := db.Collection("Observation").CountDocuments(t.Context(), bson.D{}); err != nil || n != 0 {
		t.Errorf("Observation: %d documents, %v", n, err)
	}
}

// TestDefaultIndexesCoverServedTypes checks that every resource type the
// API serves has parameters in the index plan, but for those never
// searched by their content: a type left out is answered by scanning its
// whole collection, however large, for every search of it.
func TestDefaultIndexesCoverServedTypes(t *testing.T) {
	planned := map[string]bool{}
	for _, p := range storemongo.DefaultIndexes() {
		planned[p.Type] = true
	}
	unsearched := []string{"Binary", "CapabilityStatement", "OperationOutcome", "Parameters"}
	for _, typ := range server.ServedTypes() {
		if !planned[typ] && !slices.Contains(unsearched, typ) {
			t.Errorf("%s is served but has no parameter in the default index plan", typ)
		}
	}
}

// TestOpenIndexesMedicationRequest checks on a real server that the plan's
// indexes of a type are made at start-up, before the type is written.
func TestOpenIndexesMedicationRequest(t *testing.T) {
	uri := ferrettest.Start(t)
	open(t, uri)
	got := indexKeys(t, connect(t, uri).Database(ferrettest.Database).Collection("MedicationRequest"))
	for _, want := range []string{"ixr_patient:1,_id:1", "ix_status:1,_id:1", "ixa_authoredon:1,_id:1"} {
		if !slices.ContainsFunc(got, func(k string) bool { return strings.HasPrefix(k, want) }) {
			t.Errorf("MedicationRequest indexes after Open: %q, want one keyed %s", got, want)
		}
	}
}
