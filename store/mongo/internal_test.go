package mongo

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"carefhir/store"
)

func TestHasTransactions(t *testing.T) {
	tests := []struct {
		name    string
		setName string
		msg     string
		want    bool
	}{
		{name: "standalone or FerretDB", want: false},
		{name: "replica set member", setName: "rs0", want: true},
		{name: "mongos", msg: "isdbgrid", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hasTransactions(tt.setName, tt.msg); got != tt.want {
				t.Errorf("hasTransactions(%q, %q) = %v, want %v", tt.setName, tt.msg, got, tt.want)
			}
		})
	}
}

func TestIndexField(t *testing.T) {
	tests := []struct {
		name, param, want string
	}{
		{name: "plain", param: "identifier", want: "ix_identifier"},
		{name: "hyphen and underscore", param: "_general-practitioner", want: "ix__general-practitioner"},
		{name: "dot and dollar", param: "$a.b", want: "ix_~24a~2eb"},
		{name: "escape character", param: "a~2e", want: "ix_a~7e2e"},
		{name: "non-ASCII", param: "é", want: "ix_~c3~a9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := indexField(tt.param); got != tt.want {
				t.Errorf("indexField(%q) = %q, want %q", tt.param, got, tt.want)
			}
		})
	}
}

// TestTokenKeys checks that each form of match finds exactly the tokens it
// should, also when systems and codes contain the separators.
func TestTokenKeys(t *testing.T) {
	tokens := []store.Token{
		{System: "a|b", Code: "c"},
		{System: "a", Code: "b|c"},
		{System: `a\`, Code: "|c"},
		{System: "", Code: "a|b|c"},
		{System: "a|b|c", Code: ""},
	}
	for _, tok := range tokens {
		for _, m := range []store.TokenMatch{
			{System: tok.System, Code: tok.Code},
			{Code: tok.Code, AnySystem: true},
			{System: tok.System, AnyCode: true},
		} {
			key, _ := matchKey(m)
			for _, other := range tokens {
				want := (m.AnySystem || m.System == other.System) && (m.AnyCode || m.Code == other.Code)
				got := false
				for _, k := range tokenKeys(other) {
					// system| matches by prefix, the others by equality.
					got = got || k == key || m.AnyCode && strings.HasPrefix(k, key)
				}
				if got != want {
					t.Errorf("match %+v against token %+v: %v, want %v", m, other, got, want)
				}
			}
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	v := &store.Version{Type: "Patient", ID: `a/"b"`, VersionID: 3, LastUpdated: time.UnixMilli(1709287200123)}
	c, err := decodeCursor(position(v).encode())
	if err != nil {
		t.Fatalf("decodeCursor: %v", err)
	}
	if *c != position(v) {
		t.Errorf("cursor %+v, want %+v", *c, position(v))
	}
}

func TestSplitPair(t *testing.T) {
	tests := []struct{ name, system, code string }{
		{"plain", "http://loinc.org", "8480-6"},
		{"no system", "", "x"},
		{"bar in system", `a|b`, "c"},
		{"backslash in system", `a\b`, "c|d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := tokenKeys(store.Token{System: tt.system, Code: tt.code})[0]
			system, code, ok := splitPair(k)
			if !ok || system != tt.system || code != tt.code {
				t.Errorf("splitPair(%q) = %q, %q, %v", k, system, code, ok)
			}
		})
	}
}

func TestCriteriaKey(t *testing.T) {
	identifier := store.Clause{Param: "identifier", Tokens: []store.TokenMatch{{System: "s", Code: "1"}}}
	family := store.Clause{Param: "family", Strings: []store.StringMatch{{Value: "smith"}}}
	key := func(q store.Query) string {
		t.Helper()
		k, ok := criteriaKey(q)
		if !ok {
			t.Fatalf("criteriaKey(%+v): nothing to claim", q)
		}
		return k
	}
	base := key(store.Query{Type: "Patient", Where: []store.Clause{identifier, family}})
	tests := []struct {
		name string
		q    store.Query
		same bool
	}{
		{name: "clauses in another order", q: store.Query{Type: "Patient", Where: []store.Clause{family, identifier}}, same: true},
		{name: "paging and sorting", q: store.Query{Type: "Patient", Where: []store.Clause{identifier, family}, Count: 2,
			Sort: []store.SortKey{{Param: "family"}}, Cursor: "c"}, same: true},
		{name: "other type", q: store.Query{Type: "Practitioner", Where: []store.Clause{identifier, family}}},
		{name: "fewer clauses", q: store.Query{Type: "Patient", Where: []store.Clause{identifier}}},
		{name: "other value", q: store.Query{Type: "Patient", Where: []store.Clause{identifier,
			{Param: "family", Strings: []store.StringMatch{{Value: "smyth"}}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := key(tt.q); (got == base) != tt.same {
				t.Errorf("key %q, base %q: same %v, want %v", got, base, got == base, tt.same)
			}
		})
	}
	if _, ok := criteriaKey(store.Query{Type: "$cmd"}); ok {
		t.Error("criteriaKey of an invalid type has a key")
	}
}

// TestPlanLimit checks the index plan against MongoDB's limit at its edge:
// 64 indexes on a collection, _id's included, are allowed, 65 are not.
func TestPlanLimit(t *testing.T) {
	params := func(n int) []IndexedParam {
		var out []IndexedParam
		for i := range n {
			out = append(out, IndexedParam{Type: "Observation", Param: fmt.Sprintf("p%d", i), Kind: "token"})
		}
		return out
	}
	// _id's and the two lastUpdated indexes, then one per token parameter.
	if _, err := planIndexes(params(61)); err != nil {
		t.Errorf("64 indexes: %v", err)
	}
	if _, err := planIndexes(params(62)); !errors.Is(err, ErrTooManyIndexes) || !strings.Contains(err.Error(), "Observation needs 65") {
		t.Errorf("65 indexes: %v, want ErrTooManyIndexes naming the type and count", err)
	}
	if _, err := planIndexes([]IndexedParam{{Type: "Observation", Param: "code", Kind: "special"}}); err == nil {
		t.Error("a parameter of an unknown kind is accepted")
	}
}

func TestShardKeys(t *testing.T) {
	keys := shardKeys([]string{"Patient", "Observation"})
	want := map[string]string{
		"Patient":     "_id:hashed,",
		"Observation": "_id:hashed,",
		"keys":        "_id:hashed,",
		"history":     "type:1,id:hashed,",
	}
	if len(keys) != len(want) {
		t.Errorf("shard keys of %d collections, want %d: %v", len(keys), len(want), keys)
	}
	for coll, k := range want {
		if got := keyString(keys[coll]); got != k {
			t.Errorf("shard key of %s: %s, want %s", coll, got, k)
		}
	}
	if _, ok := keys["journal"]; ok {
		t.Error("the journal is sharded")
	}
}

// TestMetaSkipScans checks which way MetaInUse reads each of _profile,
// _tag and _security: by the aggregation under the default plan, which
// indexes none of them, and by the skip scan where an operator's settings
// add the parameter.
func TestMetaSkipScans(t *testing.T) {
	keys := func(params []IndexedParam, typ string) []string {
		t.Helper()
		plan, err := planIndexes(params)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, k := range plan[typ] {
			out = append(out, keyString(k))
		}
		return out
	}
	for _, typ := range []string{"Patient", "Binary", "Observation"} {
		existing := keys(DefaultIndexes(), typ)
		for _, p := range metaParams {
			if p.skipScans(existing) {
				t.Errorf("%s %s: read by the skip scan under the default plan, want the aggregation", typ, p.param)
			}
		}
	}
	kinds := map[string]string{"_profile": "uri", "_tag": "token", "_security": "token"}
	for added, kind := range kinds {
		existing := keys(append(DefaultIndexes(), IndexedParam{Type: "Patient", Param: added, Kind: kind}), "Patient")
		for _, p := range metaParams {
			if got := p.skipScans(existing); got != (p.param == added) {
				t.Errorf("%s added: %s read by the skip scan %v", added, p.param, got)
			}
		}
	}
}
