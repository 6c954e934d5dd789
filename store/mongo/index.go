package mongo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"carefhir/store"
)

// indexField returns the field of a current-version document that holds the
// values of search parameter param: indexPrefix followed by param, with every
// byte other than an ASCII letter, digit, '_' or '-' written as "~xx" (hex),
// so that the field name never contains '.' or starts with '$'.
func indexField(param string) string {
	var b strings.Builder
	b.WriteString(indexPrefix)
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

// Token values are stored as strings in three forms, each marked by its first
// byte, so that every form of token match is an equality on one field:
//
//	"p" + system + "|" + code   system|code and |code (system "")
//	"c" + code                  code, in any system
//	"s" + system                system|, any code
//
// In the "p" form '\' and '|' in the system are escaped with '\', so that the
// first unescaped '|' ends the system.
const (
	formPair   = "p"
	formCode   = "c"
	formSystem = "s"
)

var systemEscaper = strings.NewReplacer(`\`, `\\`, `|`, `\|`)

// tokenKeys returns the stored forms of a token.
func tokenKeys(t store.Token) []string {
	return []string{
		formPair + systemEscaper.Replace(t.System) + "|" + t.Code,
		formCode + t.Code,
		formSystem + t.System,
	}
}

// matchKey returns the stored form a token match looks for; ok is false when
// the match is met by any token of the parameter.
func matchKey(m store.TokenMatch) (key string, ok bool) {
	switch {
	case m.AnySystem && m.AnyCode:
		return "", false
	case m.AnySystem:
		return formCode + m.Code, true
	case m.AnyCode:
		return formSystem + m.System, true
	default:
		return formPair + systemEscaper.Replace(m.System) + "|" + m.Code, true
	}
}

// indexFields returns the search fields of a document holding ix, one per
// parameter, sorted by field name, each value an array of distinct keys.
func indexFields(ix store.Index) bson.D {
	keys := map[string][]string{}
	for _, t := range ix.Tokens {
		f := indexField(t.Param)
		for _, k := range tokenKeys(t) {
			if !slices.Contains(keys[f], k) {
				keys[f] = append(keys[f], k)
			}
		}
	}
	d := make(bson.D, 0, len(keys))
	for _, f := range slices.Sorted(maps.Keys(keys)) {
		d = append(d, bson.E{Key: f, Value: keys[f]})
	}
	return d
}

// ensureIndexes creates the indexes of the search fields w carries that this
// Store has not yet seen indexed.
func (s *Store) ensureIndexes(ctx context.Context, w *store.Write) error {
	if w.Deleted {
		return nil
	}
	var keys []bson.D
	var names []string
	for _, e := range indexFields(w.Index) {
		name := w.Type + "\x00" + e.Key
		if _, ok := s.indexed.Load(name); ok {
			continue
		}
		keys = append(keys, bson.D{{Key: e.Key, Value: 1}})
		names = append(names, name)
	}
	if len(keys) == 0 {
		return nil
	}
	if err := ensure(ctx, s.db.Collection(w.Type), keys); err != nil {
		return fmt.Errorf("mongo: index %s: %w", w.Type, err)
	}
	for _, name := range names {
		s.indexed.Store(name, struct{}{})
	}
	return nil
}

// ensure creates the indexes with the given keys that coll lacks. It asks
// for none that exist, because FerretDB v1 fails a createIndexes command
// that has nothing to create (MongoDB accepts it). Several processes may
// still race to create one index, which both servers accept.
func ensure(ctx context.Context, coll *mongo.Collection, keys []bson.D) error {
	existing, err := indexKeys(ctx, coll)
	if err != nil {
		return err
	}
	var missing []mongo.IndexModel
	for _, k := range keys {
		if !slices.Contains(existing, keyString(k)) {
			missing = append(missing, mongo.IndexModel{Keys: k})
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = coll.Indexes().CreateMany(ctx, missing)
	return err
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

// searchFilter returns the filter selecting the current, non-deleted
// versions that match q.
func searchFilter(q store.Query) bson.D {
	and := bson.A{bson.D{{Key: fieldDeleted, Value: false}}}
	for _, c := range q.Where {
		and = append(and, clauseFilter(c))
	}
	return bson.D{{Key: "$and", Value: and}}
}

// clauseFilter returns the filter of one clause: an $in of the keys its
// matches look for, or $exists when a match accepts any token.
func clauseFilter(c store.Clause) bson.D {
	if c.Param == "_id" {
		ids := bson.A{}
		for _, m := range c.Tokens {
			if m.AnyCode {
				return bson.D{{Key: "_id", Value: bson.D{{Key: "$exists", Value: true}}}}
			}
			ids = append(ids, m.Code)
		}
		return bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}
	}
	field := indexField(c.Param)
	keys := bson.A{}
	for _, m := range c.Tokens {
		k, ok := matchKey(m)
		if !ok {
			return bson.D{{Key: field, Value: bson.D{{Key: "$exists", Value: true}}}}
		}
		keys = append(keys, k)
	}
	// An empty $in matches nothing, as a clause without matches should.
	return bson.D{{Key: field, Value: bson.D{{Key: "$in", Value: keys}}}}
}

// matches reports whether the current version written by w matches q, by
// the same rules as searchFilter; it serves reads inside a unit of work that
// must see the unit's own writes.
func matches(w *store.Write, q store.Query) bool {
	if w.Deleted || w.Type != q.Type {
		return false
	}
	for _, c := range q.Where {
		if !slices.ContainsFunc(c.Tokens, func(m store.TokenMatch) bool { return tokenMatch(w, c.Param, m) }) {
			return false
		}
	}
	return true
}

func tokenMatch(w *store.Write, param string, m store.TokenMatch) bool {
	if param == "_id" {
		return m.AnyCode || m.Code == w.ID
	}
	return slices.ContainsFunc(w.Index.Tokens, func(t store.Token) bool {
		return t.Param == param &&
			(m.AnySystem || m.System == t.System) &&
			(m.AnyCode || m.Code == t.Code)
	})
}
