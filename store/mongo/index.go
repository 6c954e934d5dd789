package mongo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"carefhir/store"
)

// indexField returns the field of a current-version document that holds the
// token values of search parameter param (see field).
func indexField(param string) string { return field("", param) }

// field returns the field of a current-version document that holds the
// values of one kind of search parameter param: "ix", the kind, "_", and
// param with every byte other than an ASCII letter, digit, '_' or '-'
// written as "~xx" (hex), so that the field name never contains '.' or
// starts with '$'. Kinds: "" tokens, "s" normalised strings, "e" exact
// strings, "dl" and "dh" the low and high ends of dates, "n" numbers, "q"
// quantity values (a Range's low end) with "qh" the high ends when a value
// is a Range, "qs", "qc" and "qu" their unit systems, codes and
// displayed units, "r" references, "u" uris, "c" composites, "a" and "z"
// the ascending and descending sort keys.
func field(kind, param string) string {
	var b strings.Builder
	b.WriteString("ix")
	b.WriteString(kind)
	b.WriteString("_")
	for i := 0; i < len(param); i++ {
		c := param[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "~%02x", c)
		}
	}
	return b.String()
}

// Token values are stored as strings in two forms, each marked by its first
// byte, so that every form of token match reads one index range:
//
//	"p" + system + "|" + code   system|code and |code (system "") by
//	                            equality, system| by the prefix
//	                            "p" + system + "|"
//	"c" + code                  code, in any system, by equality
//
// In the "p" form '\' and '|' in the system are escaped with '\', so that the
// first unescaped '|' ends the system.
const (
	formPair = "p"
	formCode = "c"
)

var systemEscaper = strings.NewReplacer(`\`, `\\`, `|`, `\|`)

// tokenKeys returns the stored forms of a token.
func tokenKeys(t store.Token) []string {
	return []string{
		formPair + systemEscaper.Replace(t.System) + "|" + t.Code,
		formCode + t.Code,
	}
}

// matchKey returns the stored form a token match looks for, or for
// system| (AnyCode) the prefix of the stored forms it looks for; ok is false
// when the match is met by any token of the parameter.
func matchKey(m store.TokenMatch) (key string, ok bool) {
	switch {
	case m.AnySystem && m.AnyCode:
		return "", false
	case m.AnySystem:
		return formCode + m.Code, true
	case m.AnyCode:
		return formPair + systemEscaper.Replace(m.System) + "|", true
	default:
		return formPair + systemEscaper.Replace(m.System) + "|" + m.Code, true
	}
}

// indexFields returns the search fields of a document holding ix, sorted
// by field name (see values.go).
func indexFields(ix store.Index) bson.D {
	return searchFields(&ix)
}

// ensure creates the indexes with the given keys that coll lacks, and
// returns how many it created. It asks for none that exist, because
// FerretDB v1 fails a createIndexes command that has nothing to create
// (MongoDB accepts it). Several processes may race to create one index,
// which both servers accept. It fails, creating nothing, when coll would
// have more indexes than MongoDB allows.
func ensure(ctx context.Context, coll *mongo.Collection, keys []bson.D) (int, error) {
	existing, err := indexKeys(ctx, coll)
	if err != nil {
		return 0, err
	}
	var missing []mongo.IndexModel
	for _, k := range keys {
		if !slices.Contains(existing, keyString(k)) {
			missing = append(missing, mongo.IndexModel{Keys: k})
		}
	}
	if len(missing) == 0 {
		return 0, nil
	}
	if n := max(len(existing), 1) + len(missing); n > maxIndexes { // a new collection gets _id's
		return 0, fmt.Errorf("%w: %s would have %d; drop indexes no longer planned with carefhir migrate",
			ErrTooManyIndexes, coll.Name(), n)
	}
	if _, err := coll.Indexes().CreateMany(ctx, missing); err != nil {
		return 0, err
	}
	return len(missing), nil
}

// indexKeys returns the keys of coll's indexes, written by keyString.
func indexKeys(ctx context.Context, coll *mongo.Collection) ([]string, error) {
	cur, err := coll.Indexes().List(ctx)
	var ce mongo.CommandError
	if errors.As(err, &ce) && ce.Code == codeNamespaceNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var specs []struct {
		Key bson.D `bson:"key"`
	}
	if err := cur.All(ctx, &specs); err != nil {
		return nil, err
	}
	keys := make([]string, len(specs))
	for i, spec := range specs {
		keys[i] = keyString(spec.Key)
	}
	return keys, nil
}

// maxIndexes is the most indexes MongoDB allows on one collection.
const maxIndexes = 64

// codeNamespaceNotFound is the error code of listing the indexes of a
// collection that does not exist.
const codeNamespaceNotFound = 26

// keyString writes an index key as "field:direction,…"; directions may come
// back from the server as any numeric type.
func keyString(key bson.D) string {
	var b strings.Builder
	for _, e := range key {
		fmt.Fprintf(&b, "%s:%v,", e.Key, e.Value)
	}
	return b.String()
}

// matches reports whether the current version written by w matches q, by
// the meaning store.Match gives clauses; it serves reads inside a unit of
// work that must see the unit's own writes. Chains and _has, which depend
// on other resources, do not match written versions.
func matches(w *store.Write, q store.Query) bool {
	if w.Deleted || w.Type != q.Type {
		return false
	}
	for i := range q.Where {
		if ok, known := store.Match(&q.Where[i], w.ID, w.LastUpdated, &w.Index); !ok || !known {
			return false
		}
	}
	return true
}
