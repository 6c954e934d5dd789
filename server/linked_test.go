package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodriver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"carefhir/store/mongo"
	"carefhir/store/mongo/ferrettest"
)

// On MongoDB a chain or _has becomes the list of the ids it selects, at
// most 10,000: one that selects more is refused with 400 too-costly naming
// its parameter, a search the client can narrow, not a failure of the
// server.
func TestTooBroadLinkIs400(t *testing.T) {
	uri := ferrettest.Start(t)
	db, err := mongodriver.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Disconnect(context.Background()) })
	st, err := mongo.Open(t.Context(), uri)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, st)
	patient := str(c.create("Patient", robustPatient), "id")
	c.create("Observation", fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/%s"}}`, patient))

	// 10,001 copies of each, made in the database: every Patient is
	// female, and every Observation is about a Patient of its own.
	copies := func(typ string, edit func(i int, doc bson.D) bson.D) {
		coll := db.Database(ferrettest.Database).Collection(typ)
		var seed bson.D
		if err := coll.FindOne(t.Context(), bson.D{}).Decode(&seed); err != nil {
			t.Fatal(err)
		}
		docs := make([]any, 10001)
		for i := range docs {
			doc := append(bson.D{{Key: "_id", Value: fmt.Sprintf("c%05d", i)}}, seed[1:]...)
			docs[i] = edit(i, doc)
		}
		if _, err := coll.InsertMany(t.Context(), docs); err != nil {
			t.Fatal(err)
		}
	}
	copies("Patient", func(_ int, doc bson.D) bson.D { return doc })
	copies("Observation", func(i int, doc bson.D) bson.D {
		for j, e := range doc {
			if ref, ok := e.Value.(string); ok && e.Key == "ixr_subject" {
				doc[j].Value = strings.TrimSuffix(ref, patient) + fmt.Sprintf("p%05d", i)
			}
		}
		return doc
	})

	for _, tt := range []struct{ query, expression string }{
		{"/Observation?subject:Patient.gender=female", "subject"},
		{"/Patient?_has:Observation:subject:status=final", "_has:Observation:subject"},
	} {
		r := c.do("GET", tt.query, "")
		r.want(t, http.StatusBadRequest).outcome(t, "too-costly", tt.expression)
	}
	// Narrowed, they are answered.
	r := c.do("GET", "/Observation?subject:Patient._id="+patient, "").want(t, http.StatusOK)
	if n := len(entries(t, r, "match")); n != 1 {
		t.Errorf("a chain to one Patient: %d matches, want 1", n)
	}
}
