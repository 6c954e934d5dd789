package mongo

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"carefhir/store"
)

// metaParam is one of the search parameters MetaInUse lists, as the
// engine stores it.
type metaParam struct {
	param string
	// field holds the values: a token's stored forms (see tokenKeys), of
	// which those from form up to the next byte are listed, or a
	// profile's URL, form "".
	field, form string
	// min, for _profile, is the field holding the smallest of a
	// document's values as a scalar (its sort key; see searchFields): a
	// profile is an array only when a resource claims several, and a
	// range on the field of one scalar reads exactly its keys.
	min string
}

var metaParams = []metaParam{
	{param: "_profile", field: field("u", "_profile"), min: field("a", "_profile")},
	{param: "_tag", field: indexField("_tag"), form: formPair},
	{param: "_security", field: indexField("_security"), form: formPair},
}

// indexes returns the keys of the indexes the skip scan of p reads, in
// the order it reads them, as the plan makes them (see paramIndexes).
func (p metaParam) indexes() []bson.D {
	var out []bson.D
	if p.min != "" {
		out = append(out, bson.D{{Key: p.min, Value: 1}, {Key: "_id", Value: 1}})
	}
	return append(out, bson.D{{Key: p.field, Value: 1}, {Key: "_id", Value: 1}})
}

// skipScans reports whether p's values are read by skipScan, given the
// keys of the collection's indexes (written by keyString): only if every
// index it reads exists: an operator added the parameter to the plan,
// which leaves all three out by default. Without one, the values are
// grouped by an aggregation reading every document holding the field.
func (p metaParam) skipScans(existing []string) bool {
	for _, k := range p.indexes() {
		if !slices.Contains(existing, keyString(k)) {
			return false
		}
	}
	return true
}

// MetaInUse implements store.MetaLister over the search fields of
// _profile, _tag and _security of each type's collection, which holds
// current versions only, a tombstone without search fields. Where the
// parameters are indexed (an operator's settings add them), the distinct
// values are read by a skip scan of the index (see skipScan), whose cost
// grows with the values listed, not with the resources holding them;
// otherwise by an aggregation reading every document holding the field.
// No further collection is asked once there are more than limit.
func (s *Store) MetaInUse(ctx context.Context, types []string, limit int) (*store.MetaValues, error) {
	found := store.NewMetaCollector(limit)
	for _, typ := range types {
		if !validType(typ) {
			continue
		}
		if !found.More() {
			break
		}
		coll := s.db.Collection(typ)
		existing, err := indexKeys(ctx, coll)
		if err != nil {
			return nil, fmt.Errorf("mongo: meta in use: %s: indexes: %w", typ, err)
		}
		for _, p := range metaParams {
			if !found.More() {
				return found.Values(), nil
			}
			if p.skipScans(existing) {
				err = skipScan(ctx, coll, p, found)
			} else {
				err = s.groupMeta(ctx, typ, p, limit, found)
			}
			if err != nil {
				return nil, fmt.Errorf("mongo: meta in use: %s %s: %w", typ, p.param, err)
			}
		}
	}
	return found.Values(), nil
}

// groupMeta adds the values of p in typ's collection to found, read by
// an aggregation.
func (s *Store) groupMeta(ctx context.Context, typ string, p metaParam, limit int, found *store.MetaCollector) error {
	values, err := s.distinct(ctx, typ, p.field, p.form, limit+1)
	if err != nil {
		return err
	}
	for _, v := range values {
		t, ok := metaValue(p.param, v)
		if ok && !found.Add(t) {
			break
		}
	}
	return nil
}

// skipScan adds the distinct values of p in coll to found, in order, until
// it takes no more: each the smallest value past the last one found (see
// nextMeta).
func skipScan(ctx context.Context, coll *mongo.Collection, p metaParam, found *store.MetaCollector) error {
	last := p.form // every value of the form sorts after the form's byte alone
	for found.More() {
		v, ok, err := nextMeta(ctx, coll, p, last)
		if err != nil || !ok {
			return err
		}
		if t, ok := metaValue(p.param, v); ok {
			found.Add(t)
		}
		last = v
	}
	return nil
}

// nextMeta returns the smallest value of p held by a document of coll
// that is after last (and of p's form); ok is false when there is none.
//
// It asks for a document holding a value between last and an upper bound,
// takes the smallest such value the document holds as the new bound, and
// asks again until no document holds one: the last bound is the answer.
// For profiles it asks the index of each document's smallest profile
// first (a profile alone is a scalar, which $elemMatch does not match),
// then the multikey index of all of them, between last and what the first
// found. The range of a multikey index is in $elemMatch, so that MongoDB
// bounds its scan by both ends, and every key in it is then of a
// document that $elemMatch matches: a scalar there would be a smaller
// smallest profile. MongoDB returns an index's keys in order, so the
// first document read already holds the answer and the queries after it
// read no key: a few reads of one key each, however many resources hold
// the value. The answer does not depend on that order: FerretDB, and a
// sharded cluster's router merging its shards, return some document, and
// each further query narrows the range.
func nextMeta(ctx context.Context, coll *mongo.Collection, p metaParam, last string) (v string, ok bool, err error) {
	var hi string // "" is no bound
	if p.form != "" {
		hi = string(rune(p.form[0] + 1))
	}
	for narrowed := true; narrowed; {
		narrowed = false
		for _, ix := range p.indexes() {
			w, found, err := firstMeta(ctx, coll, ix, p.field, last, hi)
			if err != nil {
				return "", false, err
			}
			if found {
				v, ok, hi, narrowed = w, true, w, true
			}
		}
	}
	return v, ok, nil
}

// firstMeta returns the smallest value of field between last and hi (no
// bound if "") held by the first document that index, keyed by field or
// by the smallest of its values, finds holding one.
func firstMeta(ctx context.Context, coll *mongo.Collection, index bson.D, field, last, hi string) (string, bool, error) {
	bounds := bson.D{{Key: "$gt", Value: last}}
	if hi != "" {
		bounds = append(bounds, bson.E{Key: "$lt", Value: hi})
	}
	filter := bson.D{{Key: index[0].Key, Value: bounds}}
	if index[0].Key == field {
		filter = bson.D{{Key: field, Value: bson.D{{Key: "$elemMatch", Value: bounds}}}}
	}
	// A document is read at a time, and on MongoDB the first holds a
	// value in range; FerretDB v1 answers $elemMatch of an array of
	// scalars as it answers the range on the field, which an array
	// holding values either side of it meets, so a document holding none
	// is passed over.
	cur, err := coll.Find(ctx, filter, options.Find().SetHint(index).SetBatchSize(1).
		SetProjection(bson.D{{Key: "_id", Value: 0}, {Key: field, Value: 1}}))
	if err != nil {
		return "", false, err
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var best string
		found := false
		for _, rv := range array(cur.Current, field) {
			v, isString := rv.StringValueOK()
			if isString && v > last && (hi == "" || v < hi) && (!found || v < best) {
				best, found = v, true
			}
		}
		if found {
			return best, true, nil
		}
	}
	return "", false, cur.Err()
}

// metaValue returns the value of param that v, a value of its search
// field, holds: a profile's URL as it is, a token from its system|code
// form (see tokenKeys); ok is false for a token's form by code alone.
func metaValue(param, v string) (t store.Token, ok bool) {
	t.Param = param
	if param == "_profile" {
		t.Code = v
		return t, true
	}
	pair, ok := strings.CutPrefix(v, formPair)
	if !ok {
		return t, false
	}
	var system strings.Builder
	for i := 0; i < len(pair); i++ {
		switch c := pair[i]; {
		case c == '\\' && i+1 < len(pair):
			i++
			system.WriteByte(pair[i])
		case c == '|':
			t.System, t.Code = system.String(), pair[i+1:]
			return t, true
		default:
			system.WriteByte(c)
		}
	}
	return t, false
}

// distinct returns at most limit distinct values of field in typ's
// collection, of those whose first byte is form, when form is set: an
// aggregation, as FerretDB's distinct takes no maxTimeMS.
func (s *Store) distinct(ctx context.Context, typ, field, form string, limit int) ([]string, error) {
	values := bson.D{{Key: "$exists", Value: true}}
	if form != "" {
		values = bson.D{{Key: "$gte", Value: form}, {Key: "$lt", Value: string(rune(form[0] + 1))}}
	}
	pipeline := bson.A{
		bson.D{{Key: "$match", Value: bson.D{{Key: field, Value: bson.D{{Key: "$exists", Value: true}}}}}},
		bson.D{{Key: "$project", Value: bson.D{{Key: field, Value: 1}}}},
		bson.D{{Key: "$unwind", Value: "$" + field}},
		bson.D{{Key: "$match", Value: bson.D{{Key: field, Value: values}}}},
		bson.D{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$" + field}}}},
		bson.D{{Key: "$limit", Value: limit}},
	}
	cur, err := s.db.Collection(typ).Aggregate(ctx, pipeline)
	if err != nil {
		return nil, err
	}
	var docs []struct {
		Value string `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	out := make([]string, len(docs))
	for i, d := range docs {
		out[i] = d.Value
	}
	return out, nil
}
