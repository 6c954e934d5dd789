package mongo

import (
	"context"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"

	"carefhir/store"
)

// MetaInUse implements store.MetaLister with an aggregation over the
// search fields of _profile, _tag and _security of each type's collection,
// which holds current versions only, a tombstone without search fields:
// the documents holding the field (found by its index where the parameter
// is indexed, else by reading the collection on the server), their
// values grouped, at most limit+1 of them returned. No further collection
// is asked once there are more than limit.
func (s *Store) MetaInUse(ctx context.Context, types []string, limit int) (*store.MetaValues, error) {
	found := store.NewMetaCollector(limit)
	for _, typ := range types {
		if !validType(typ) {
			continue
		}
		for _, p := range []struct{ param, field, form string }{
			{"_profile", field("u", "_profile"), ""},
			{"_tag", indexField("_tag"), formPair},
			{"_security", indexField("_security"), formPair},
		} {
			if !found.More() {
				return found.Values(), nil
			}
			values, err := s.distinct(ctx, typ, p.field, p.form, limit+1)
			if err != nil {
				return nil, fmt.Errorf("mongo: meta in use: %s %s: %w", typ, p.param, err)
			}
			for _, v := range values {
				t, ok := metaValue(p.param, v)
				if ok && !found.Add(t) {
					break
				}
			}
		}
	}
	return found.Values(), nil
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
