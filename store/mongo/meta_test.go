package mongo_test

import (
	"fmt"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"carefhir/store"
	storemongo "carefhir/store/mongo"
	"carefhir/store/mongo/ferrettest"
)

// metaIndexed starts a server whose settings add _profile, _tag and
// _security of Patient and Binary to the index plan, as an operator
// does for $meta to read them by a skip scan, and returns its URI.
func metaIndexed(t *testing.T) string {
	t.Helper()
	uri := ferrettest.Start(t)
	var add bson.A
	for _, typ := range []string{"Patient", "Binary"} {
		for param, kind := range map[string]string{"_profile": "uri", "_tag": "token", "_security": "token"} {
			add = append(add, bson.D{{Key: "type", Value: typ}, {Key: "param", Value: param}, {Key: "kind", Value: kind}})
		}
	}
	_, err := connect(t, uri).Database(ferrettest.Database).Collection("settings").InsertOne(t.Context(),
		bson.D{{Key: "_id", Value: "indexes"}, {Key: "add", Value: add}})
	if err != nil {
		t.Fatal(err)
	}
	return uri
}

// TestMetaIndexesAdded checks that the default plan leaves _profile, _tag
// and _security out, which would cost every write of every collection
// four index keys, and that an operator's settings adding them have Open
// make them on a real server, the smallest profile's index with the
// profiles'.
func TestMetaIndexesAdded(t *testing.T) {
	for _, p := range storemongo.DefaultIndexes() {
		if p.Param == "_profile" || p.Param == "_tag" || p.Param == "_security" {
			t.Errorf("%s.%s is in the default plan", p.Type, p.Param)
		}
	}
	uri := metaIndexed(t)
	open(t, uri)
	db := connect(t, uri).Database(ferrettest.Database)
	for _, typ := range []string{"Patient", "Binary"} {
		got := indexKeys(t, db.Collection(typ))
		for _, want := range []string{"ixu__profile:1,_id:1", "ixa__profile:1,_id:1", "ix__tag:1,_id:1", "ix__security:1,_id:1"} {
			if !slices.Contains(got, want) {
				t.Errorf("%s indexes after Open: %q, want %s", typ, got, want)
			}
		}
	}
}

// metaWrites are Patients each holding several tags and profiles, or one
// (stored as a scalar), written so that the first document in the
// collection's order is not the one holding the smallest value past the
// first: a is the smallest tag and profile, b the next, held alone by
// the second resource. Every tag is also stored by its code alone, a
// form the list leaves out.
func metaWrites() []*store.Write {
	const sys = "http://example.org/tags"
	tag := func(codes ...string) []store.Token {
		var out []store.Token
		for _, c := range codes {
			out = append(out, store.Token{Param: "_tag", System: sys, Code: c})
		}
		return out
	}
	profile := func(urls ...string) []store.URI {
		var out []store.URI
		for _, u := range urls {
			out = append(out, store.URI{Param: "_profile", Value: "http://example.org/" + u})
		}
		return out
	}
	w := func(id string, tags []store.Token, profiles []store.URI) *store.Write {
		return &store.Write{Type: "Patient", ID: id, LastUpdated: t0, JSON: []byte(`{}`),
			Index: store.Index{Tokens: tags, URIs: profiles}}
	}
	return []*store.Write{
		w("1", tag("a", "d"), profile("a", "d")),
		w("2", tag("b"), profile("b")),
		w("3", append(tag("c", "a"), store.Token{Param: "_security", System: sys, Code: "s"}), profile("c")),
		w("4", tag("d"), profile("d", "c")),
	}
}

// TestMetaSkipScan lists the profiles, tags and security labels of
// resources holding several each: every value once, in order, and with a
// limit the smallest values first, whether each value is held by one
// resource or several.
func TestMetaSkipScan(t *testing.T) {
	s := open(t, metaIndexed(t))
	putAll(t, s, metaWrites()...)
	const sys = "http://example.org/tags"
	tags := func(codes ...string) []store.Label {
		var out []store.Label
		for _, c := range codes {
			out = append(out, store.Label{System: sys, Code: c})
		}
		return out
	}
	profiles := func(urls ...string) []string {
		var out []string
		for _, u := range urls {
			out = append(out, "http://example.org/"+u)
		}
		return out
	}
	for _, c := range []struct {
		limit int
		want  store.MetaValues
	}{
		{100, store.MetaValues{Profiles: profiles("a", "b", "c", "d"), Tags: tags("a", "b", "c", "d"),
			Security: []store.Label{{System: sys, Code: "s"}}}},
		{9, store.MetaValues{Profiles: profiles("a", "b", "c", "d"), Tags: tags("a", "b", "c", "d"),
			Security: []store.Label{{System: sys, Code: "s"}}}},
		{2, store.MetaValues{Profiles: profiles("a", "b", "c")}},
		{5, store.MetaValues{Profiles: profiles("a", "b", "c", "d"), Tags: tags("a", "b")}},
	} {
		got, err := s.MetaInUse(t.Context(), []string{"Patient"}, c.limit)
		if err != nil {
			t.Fatalf("MetaInUse(%d): %v", c.limit, err)
		}
		if metaString(got) != metaString(&c.want) {
			t.Errorf("MetaInUse(%d) = %s, want %s", c.limit, metaString(got), metaString(&c.want))
		}
	}
}

// TestMetaUnindexed lists the tags of Patients under the default plan,
// which indexes none of _profile, _tag and _security: they are read by an
// aggregation, and the values are the same.
func TestMetaUnindexed(t *testing.T) {
	uri := ferrettest.Start(t)
	s := open(t, uri)
	putAll(t, s, metaWrites()...)
	if got := indexKeys(t, connect(t, uri).Database(ferrettest.Database).Collection("Patient")); slices.Contains(got, "ix__tag:1,_id:1") {
		t.Fatalf("Patient indexes: %q, want none of _tag", got)
	}
	got, err := s.MetaInUse(t.Context(), []string{"Patient"}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if want := `["http://example.org/tags|a" "http://example.org/tags|b" "http://example.org/tags|c" "http://example.org/tags|d"]`; fmt.Sprintf("%q", labels(got.Tags)) != want {
		t.Errorf("tags in use: %q, want %s", labels(got.Tags), want)
	}
}

func labels(ls []store.Label) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.System+"|"+l.Code)
	}
	return out
}

// metaString writes m for comparison, empty lists as nil.
func metaString(m *store.MetaValues) string {
	return fmt.Sprintf("profiles %q tags %q security %q", m.Profiles, labels(m.Tags), labels(m.Security))
}
