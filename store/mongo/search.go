package mongo

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"carefhir/store"
)

var _ store.Finder = (*Store)(nil)

// Limits that keep one search from growing without bound.
const (
	// maxLinked is the most resources a chain or _has may select: their ids
	// become an $in list.
	maxLinked = 10000
	// maxIncludeRounds bounds the rounds of :iterate includes.
	maxIncludeRounds = store.MaxIncludeRounds
	// maxIncluded is the most resources includes add to one page.
	maxIncluded = store.MaxIncluded
)

// tooBroad returns the error of a chain or _has, of parameter param, that
// selects more resources than maxLinked.
func tooBroad(param string) error {
	return &store.TooCostlyError{Param: param,
		Reason: fmt.Sprintf("selects more than %d resources, the most one search links; narrow it", maxLinked)}
}

// compiled is a filter with the clauses whose exact meaning the filter only
// approximates: those are checked on each document the filter selects.
type compiled struct {
	filter bson.D
	checks []*store.Clause
}

// check reports whether doc, selected by the filter, meets the clauses the
// filter approximates.
func (c *compiled) check(doc bson.Raw) bool {
	if len(c.checks) == 0 {
		return true
	}
	id, _ := doc.Lookup("_id").StringValueOK()
	for _, cl := range c.checks {
		ix := &store.Index{}
		for _, p := range params(cl, nil) {
			one := docIndex(doc, p)
			ix.Dates = append(ix.Dates, one.Dates...)
			ix.Numbers = append(ix.Numbers, one.Numbers...)
			ix.Quantities = append(ix.Quantities, one.Quantities...)
			ix.Strings = append(ix.Strings, one.Strings...)
			ix.Tokens = append(ix.Tokens, one.Tokens...)
			ix.References = append(ix.References, one.References...)
			ix.URIs = append(ix.URIs, one.URIs...)
			ix.Composites = append(ix.Composites, one.Composites...)
		}
		if ok, _ := store.Match(cl, id, timeOf(doc), ix); !ok {
			return false
		}
	}
	return true
}

// params appends the parameters cl and the clauses of its Any compare.
func params(cl *store.Clause, out []string) []string {
	out = append(out, cl.Param)
	for i := range cl.Any {
		out = params(&cl.Any[i], out)
	}
	return out
}

// timeOf returns the lastUpdated of a current-version document.
func timeOf(doc bson.Raw) time.Time {
	if v, err := doc.LookupErr(fieldTime); err == nil {
		if ms, ok := v.DateTimeOK(); ok {
			return fromMillis(ms)
		}
	}
	return time.Time{}
}

// compile returns the filter of the current, non-deleted resources of typ
// that meet every clause of where.
//
// Every clause becomes a filter on flat fields. A clause on multi-valued
// fields whose meaning needs two conditions on one value (a date within a
// range, a quantity with a unit) cannot be said without $elemMatch, so its
// filter selects a superset and the clause is checked again on the
// document's parallel arrays (see docIndex).
func (s *Store) compile(ctx context.Context, typ string, where []store.Clause) (*compiled, error) {
	c := &compiled{}
	and := bson.A{bson.D{{Key: fieldDeleted, Value: false}}}
	for i := range where {
		cl := &where[i]
		f, exact, err := s.clause(ctx, typ, cl)
		if err != nil {
			return nil, err
		}
		if !exact {
			c.checks = append(c.checks, cl)
		}
		switch {
		case cl.Not && exact:
			and = append(and, bson.D{{Key: "$nor", Value: bson.A{f}}})
		case cl.Not:
			// The superset's complement would lose matches: check alone.
		default:
			and = append(and, f)
		}
	}
	c.filter = bson.D{{Key: "$and", Value: and}}
	return c, nil
}

// clause returns the filter of the matches of cl (ignoring Not), and
// whether it is exact.
func (s *Store) clause(ctx context.Context, typ string, cl *store.Clause) (bson.D, bool, error) {
	switch {
	case cl.Presence == store.Present:
		return bson.D{{Key: fieldPresent, Value: cl.Param}}, true, nil
	case cl.Presence == store.Missing:
		return bson.D{{Key: "$nor", Value: bson.A{bson.D{{Key: fieldPresent, Value: cl.Param}}}}}, true, nil
	case cl.Chain != nil:
		f, err := s.chain(ctx, cl)
		return f, true, err
	case cl.Has != nil:
		f, err := s.has(ctx, typ, cl.Has)
		return f, true, err
	case cl.Any != nil:
		return s.anyOf(ctx, typ, cl.Any)
	case cl.Param == "_id":
		return idFilter(cl.Tokens), true, nil
	case cl.Param == "_lastUpdated":
		return dateFilter(fieldTime, fieldTime, cl.Dates)
	}
	or := bson.A{}
	exact := true
	// Token keys are equalities on one field: one $in, however many (an
	// expanded ValueSet may hold thousands).
	keys := bson.A{}
	for _, m := range cl.Tokens {
		k, ok := matchKey(m)
		switch {
		case !ok:
			or = append(or, bson.D{{Key: fieldPresent, Value: cl.Param}})
		case m.AnyCode:
			// system|: the pair forms that start with the system, an
			// anchored prefix that reads one index range.
			or = append(or, bson.D{{Key: indexField(cl.Param), Value: bson.Regex{Pattern: "^" + literal(k)}}})
		default:
			keys = append(keys, k)
		}
	}
	switch len(keys) {
	case 0:
	case 1:
		or = append(or, bson.D{{Key: indexField(cl.Param), Value: keys[0]}})
	default:
		or = append(or, bson.D{{Key: indexField(cl.Param), Value: bson.D{{Key: "$in", Value: keys}}}})
	}
	for _, m := range cl.Strings {
		switch m.Mode {
		case store.StringExact:
			or = append(or, bson.D{{Key: field("e", cl.Param), Value: m.Value}})
		case store.StringContains:
			or = append(or, bson.D{{Key: field("s", cl.Param), Value: bson.Regex{Pattern: literal(m.Value)}}})
		default:
			or = append(or, bson.D{{Key: field("s", cl.Param), Value: bson.Regex{Pattern: "^" + literal(m.Value)}}})
		}
	}
	if len(cl.Dates) > 0 {
		f, ok, _ := dateFilter(field("dl", cl.Param), field("dh", cl.Param), cl.Dates)
		or = append(or, f)
		exact = exact && ok
	}
	for _, m := range cl.Numbers {
		f, ok := numberFilter(field("n", cl.Param), m)
		or = append(or, f)
		exact = exact && ok
	}
	for _, m := range cl.Quantities {
		f, _ := numberFilter(field("q", cl.Param), m.NumberMatch)
		if m.Ranges {
			f = rangeFilter(field("q", cl.Param), field("qh", cl.Param), m.NumberMatch)
		}
		if m.Code != "" {
			f = bson.D{{Key: "$and", Value: bson.A{f, bson.D{{Key: field("qk", cl.Param), Value: unitKey(m)}}}}}
		}
		or = append(or, f)
		exact = false // value and unit must belong to one quantity
	}
	for _, m := range cl.References {
		if m.AnyID() {
			// A reference to any resource of a type: the keys that start
			// with the type's, a range of the index.
			or = append(or, bson.D{{Key: field("r", cl.Param), Value: bson.Regex{Pattern: "^" + literal(m.Key())}}})
			continue
		}
		or = append(or, bson.D{{Key: field("r", cl.Param), Value: m.Key()}})
	}
	for _, m := range cl.URIs {
		if m.Mode == store.URIBelow {
			or = append(or, bson.D{{Key: field("u", cl.Param), Value: bson.Regex{Pattern: "^" + literal(m.Value)}}})
			continue
		}
		or = append(or, bson.D{{Key: field("u", cl.Param), Value: m.Value}})
	}
	for _, m := range cl.Composites {
		// The key narrows; a quantity or date part is checked on the
		// document's parallel arrays.
		if m.Prefix {
			// The key's last part is the string's.
			or = append(or, bson.D{{Key: field("c", cl.Param), Value: bson.Regex{Pattern: "^" + literal(store.CompositeKey(m.Parts))}}})
			continue
		}
		or = append(or, bson.D{{Key: field("c", cl.Param), Value: store.CompositeKey(m.Parts)}})
		exact = exact && m.Quantity == nil && m.Date == nil
	}
	switch len(or) {
	case 0:
		// A clause without matches matches nothing.
		return bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{}}}}}, true, nil
	case 1:
		return or[0].(bson.D), exact, nil
	}
	return bson.D{{Key: "$or", Value: or}}, exact, nil
}

// anyOf returns the filter of clauses of which any must hold.
func (s *Store) anyOf(ctx context.Context, typ string, clauses []store.Clause) (bson.D, bool, error) {
	or := bson.A{}
	exact := true
	for i := range clauses {
		cl := &clauses[i]
		f, ok, err := s.clause(ctx, typ, cl)
		if err != nil {
			return nil, false, err
		}
		if cl.Not {
			if !ok {
				// The complement of a superset loses matches: let every
				// document through and leave the clause to the check.
				f = bson.D{{Key: "_id", Value: bson.D{{Key: "$exists", Value: true}}}}
			} else {
				f = bson.D{{Key: "$nor", Value: bson.A{f}}}
			}
		}
		exact = exact && ok
		or = append(or, f)
	}
	if len(or) == 0 {
		return bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{}}}}}, true, nil
	}
	return bson.D{{Key: "$or", Value: or}}, exact, nil
}

func idFilter(tokens []store.TokenMatch) bson.D {
	ids := bson.A{}
	for _, m := range tokens {
		if m.AnyCode {
			return bson.D{{Key: "_id", Value: bson.D{{Key: "$exists", Value: true}}}}
		}
		ids = append(ids, m.Code)
	}
	return bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}
}

// dateFilter returns the filter of date matches on the low and high fields.
// Conditions on one end are exact; eq and ap bound both ends of one value,
// which flat arrays approximate.
func dateFilter(lowField, highField string, ms []store.DateMatch) (bson.D, bool, error) {
	or := bson.A{}
	exact := true
	for _, m := range ms {
		bounds := m.Bounds()
		and := bson.A{}
		for _, b := range bounds {
			name := lowField
			if b.High {
				name = highField
			}
			and = append(and, bson.D{{Key: name, Value: bson.D{{Key: mongoOps[b.Op], Value: bson.NewDateTimeFromTime(b.At.(time.Time))}}}})
		}
		// _lastUpdated is one scalar: both ends are the same field.
		exact = exact && (len(bounds) == 1 || lowField == highField)
		if m.Prefix == store.Eq && lowField != highField {
			// Implied (a value's start is before its end), and what lets
			// an index on the start read [Low, High] rather than half of
			// itself.
			and = append(and, bson.D{{Key: lowField, Value: bson.D{{Key: "$lte", Value: bson.NewDateTimeFromTime(m.High)}}}})
		}
		or = append(or, bson.D{{Key: "$and", Value: and}})
	}
	if len(or) == 1 {
		return or[0].(bson.D), exact, nil
	}
	return bson.D{{Key: "$or", Value: or}}, exact, nil
}

// mongoOps are the query operators of the comparisons of store.Bound.
var mongoOps = map[string]string{"<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}

// numberFilter returns the filter of a number match; a range (eq, ap) on an
// array field may be met by two different values, so it is not exact.
func numberFilter(name string, m store.NumberMatch) (bson.D, bool) {
	bounds := m.Bounds()
	and := bson.A{}
	for _, b := range bounds {
		and = append(and, bson.D{{Key: name, Value: bson.D{{Key: mongoOps[b.Op], Value: b.At}}}})
	}
	return bson.D{{Key: "$and", Value: and}}, len(bounds) == 1
}

// rangeFilter returns a filter that selects, as a superset, the values
// whose intervals, their low ends in field low and, for Ranges, their
// high ends in field high, meet m. Every bound is on low but one above a
// high end: a high end below x implies a low end below x, and a high end
// above x is a low end above x, or, for a Range, the high end itself.
func rangeFilter(low, high string, m store.NumberMatch) bson.D {
	and := bson.A{}
	for _, b := range m.Bounds() {
		f := bson.D{{Key: low, Value: bson.D{{Key: mongoOps[b.Op], Value: b.At}}}}
		if b.High && (b.Op == ">" || b.Op == ">=") {
			f = bson.D{{Key: "$or", Value: bson.A{f, bson.D{{Key: high, Value: bson.D{{Key: mongoOps[b.Op], Value: b.At}}}}}}}
		}
		and = append(and, f)
	}
	return bson.D{{Key: "$and", Value: and}}
}

// chain returns the filter of a chained clause: the ids the chained query
// selects in each of its types, as references.
func (s *Store) chain(ctx context.Context, cl *store.Clause) (bson.D, error) {
	keys := bson.A{}
	for _, typ := range cl.Chain.Types {
		ids, ok, err := s.ids(ctx, typ, cl.Chain.Where, maxLinked-len(keys))
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, tooBroad(cl.Param)
		}
		for _, id := range ids {
			keys = append(keys, store.RefTyped+typ+"/"+id)
		}
	}
	return bson.D{{Key: field("r", cl.Param), Value: bson.D{{Key: "$in", Value: keys}}}}, nil
}

// has returns the filter of a _has clause: the ids of typ that the
// resources h selects reference through h.Param.
func (s *Store) has(ctx context.Context, typ string, h *store.Has) (bson.D, error) {
	if !validType(h.Type) {
		return nil, fmt.Errorf("_has: invalid resource type %q", h.Type)
	}
	f, err := s.compile(ctx, h.Type, h.Where)
	if err != nil {
		return nil, err
	}
	refs := field("r", h.Param)
	opts := options.Find()
	if len(f.checks) == 0 {
		// Only the references are read (the checks need the values).
		opts.SetProjection(bson.D{{Key: refs, Value: 1}})
	}
	cur, err := s.db.Collection(h.Type).Find(ctx, f.filter, opts)
	if err != nil {
		return nil, err
	}
	defer cur.Close(ctx)
	prefix := store.RefTyped + typ + "/"
	ids := bson.A{}
	seen := map[string]bool{}
	for cur.Next(ctx) {
		if !f.check(cur.Current) {
			continue
		}
		for _, v := range array(cur.Current, refs) {
			if id, ok := strings.CutPrefix(v.StringValue(), prefix); ok && !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		if len(ids) > maxLinked {
			return nil, tooBroad("_has:" + h.Type + ":" + h.Param)
		}
	}
	if err := cur.Err(); err != nil {
		return nil, err
	}
	return bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, nil
}

// ids returns the ids of the resources of typ that where selects; ok is
// false when it selects more than limit.
func (s *Store) ids(ctx context.Context, typ string, where []store.Clause, limit int) (ids []string, ok bool, err error) {
	if !validType(typ) {
		return nil, true, nil
	}
	f, err := s.compile(ctx, typ, where)
	if err != nil {
		return nil, false, err
	}
	opts := options.Find()
	if len(f.checks) == 0 {
		opts.SetProjection(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit) + 1)
	}
	cur, err := s.db.Collection(typ).Find(ctx, f.filter, opts)
	if err != nil {
		return nil, false, err
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		if f.check(cur.Current) {
			ids = append(ids, cur.Current.Lookup("_id").StringValue())
		}
		if len(ids) > limit {
			return nil, false, nil
		}
	}
	return ids, true, cur.Err()
}

// sortFields returns the fields a search sorts on, in order, with their
// directions (1 or -1), ending with _id ascending.
func sortFields(keys []store.SortKey) bson.D {
	d := bson.D{}
	for _, k := range keys {
		dir := 1
		if k.Desc {
			dir = -1
		}
		switch k.Param {
		case "_id":
			if !k.Desc {
				return append(d, bson.E{Key: "_id", Value: 1})
			}
			d = append(d, bson.E{Key: "_id", Value: -1})
			return d
		case "_lastUpdated":
			d = append(d, bson.E{Key: fieldTime, Value: dir})
		default:
			name := field("a", k.Param)
			if k.Desc {
				name = field("z", k.Param)
			}
			d = append(d, bson.E{Key: name, Value: dir})
		}
	}
	return append(d, bson.E{Key: "_id", Value: 1})
}

// Find returns a page of the current, non-deleted versions that q selects,
// in q.Sort order and then by id, from q.Cursor on, with the resources q
// includes. A page holds at most q.Count matches; Count 0 asks for the total
// alone.
//
// Paging is by keyset: the cursor holds the sort values and id of the last
// match of the page, and the next page starts after them, so a resource
// written between pages is neither repeated nor lost unless its own sort
// values move it across the cursor.
func (s *Store) Find(ctx context.Context, q store.Query) (*store.Page, error) {
	page := &store.Page{Total: -1, Matches: []*store.Version{}}
	if s.native && ctx.Value(inTransaction{}) == nil && multiQuery(q) {
		// The queries of one page read one point in time: a chain, a count
		// and the page, the page and its includes agree.
		sess, err := s.snapshots()
		if err != nil {
			return nil, fmt.Errorf("mongo: search %s: %w", q.Type, err)
		}
		defer sess.EndSession(context.WithoutCancel(ctx))
		ctx = sess.Context(ctx)
	}
	if !validType(q.Type) {
		if q.Total != store.TotalNone {
			page.Total = 0
		}
		return page, nil
	}
	f, err := s.compile(ctx, q.Type, q.Where)
	if err != nil {
		return nil, fmt.Errorf("mongo: search %s: %w", q.Type, err)
	}
	coll := s.db.Collection(q.Type)
	if q.Total != store.TotalNone {
		n, err := s.count(ctx, q.Type, f)
		if err != nil {
			return nil, fmt.Errorf("mongo: search %s: count: %w", q.Type, err)
		}
		page.Total = n
	}
	if q.Count <= 0 {
		return page, nil
	}
	sort := sortFields(q.Sort)
	// walk is the order documents are read in: the page order, or its
	// reverse for a page before a Prev cursor.
	walk, back := sort, false
	filter := f.filter
	if q.Cursor != "" {
		after, backward, err := decodeSearchCursor(q.Cursor, len(sort))
		if err != nil {
			return nil, fmt.Errorf("mongo: search %s: %w", q.Type, err)
		}
		if back = backward; back {
			walk = reverse(sort)
		}
		filter = bson.D{{Key: "$and", Value: bson.A{filter, keyset(walk, after)}}}
	}
	opts := options.Find().SetSort(walk)
	if len(f.checks) == 0 {
		opts.SetLimit(int64(q.Count) + 1)
	}
	if q.IDsOnly {
		opts.SetProjection(bson.D{{Key: fieldJSON, Value: 0}})
	}
	cur, err := coll.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("mongo: search %s: %w", q.Type, err)
	}
	defer cur.Close(ctx)
	var docs []bson.Raw
	for len(docs) <= q.Count && cur.Next(ctx) {
		if f.check(cur.Current) {
			docs = append(docs, slices.Clone(cur.Current))
		}
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("mongo: search %s: %w", q.Type, err)
	}
	more := len(docs) > q.Count
	if more {
		docs = docs[:q.Count]
	}
	if back {
		slices.Reverse(docs)
	}
	if len(docs) > 0 {
		first, last := docs[0], docs[len(docs)-1]
		if more || back {
			page.Next = encodeSearchCursor(sort, last, false)
		}
		if more && back || !back && q.Cursor != "" {
			page.Prev = encodeSearchCursor(sort, first, true)
		}
	}
	for _, d := range docs {
		v, err := rawVersion(q.Type, d)
		if err != nil {
			return nil, fmt.Errorf("mongo: search %s: %w", q.Type, err)
		}
		if q.IDsOnly {
			v.LastUpdated = time.Time{}
		}
		page.Matches = append(page.Matches, v)
	}
	if len(q.Include) > 0 || len(q.RevInclude) > 0 {
		if page.Included, page.IncludedCut, err = s.include(ctx, q, docs); err != nil {
			return nil, fmt.Errorf("mongo: search %s: include: %w", q.Type, err)
		}
	}
	return page, nil
}

// multiQuery reports whether answering q takes more than one query: a
// total and a page, includes, chains or _has.
func multiQuery(q store.Query) bool {
	if q.Total != store.TotalNone && q.Count > 0 || len(q.Include) > 0 || len(q.RevInclude) > 0 {
		return true
	}
	var linked func([]store.Clause) bool
	linked = func(cs []store.Clause) bool {
		return slices.ContainsFunc(cs, func(c store.Clause) bool { return c.Chain != nil || c.Has != nil || linked(c.Any) })
	}
	return linked(q.Where)
}

// count returns the number of resources f selects.
func (s *Store) count(ctx context.Context, typ string, f *compiled) (int, error) {
	coll := s.db.Collection(typ)
	if len(f.checks) == 0 {
		n, err := coll.CountDocuments(ctx, f.filter)
		return int(n), err
	}
	cur, err := coll.Find(ctx, f.filter)
	if err != nil {
		return 0, err
	}
	defer cur.Close(ctx)
	n := 0
	for cur.Next(ctx) {
		if f.check(cur.Current) {
			n++
		}
	}
	return n, cur.Err()
}

func rawVersion(typ string, doc bson.Raw) (*store.Version, error) {
	var d versionDoc
	if err := bson.Unmarshal(doc, &d); err != nil {
		return nil, err
	}
	return d.version(typ, d.Key), nil
}

// keyset returns the filter of the documents after the cursor values in the
// order sort: for some key, equal on the keys before it and after on it. A
// missing sort value sorts below every value, as MongoDB sorts.
func keyset(sort bson.D, after []bson.RawValue) bson.D {
	or := bson.A{}
	for i, e := range sort {
		and := bson.A{}
		for j, before := range sort[:i] {
			and = append(and, equalTo(before.Key, after[j]))
		}
		f, ok := beyond(e.Key, e.Value.(int) < 0, after[i])
		if !ok {
			continue
		}
		or = append(or, bson.D{{Key: "$and", Value: append(and, f)}})
	}
	if len(or) == 0 {
		return bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{}}}}}
	}
	return bson.D{{Key: "$or", Value: or}}
}

func equalTo(name string, v bson.RawValue) bson.D {
	if v.Type == bson.TypeNull {
		return bson.D{{Key: name, Value: bson.D{{Key: "$exists", Value: false}}}}
	}
	return bson.D{{Key: name, Value: v}}
}

// beyond returns the filter of the values after v in the direction given;
// ok is false when nothing comes after.
func beyond(name string, desc bool, v bson.RawValue) (bson.D, bool) {
	missing := bson.D{{Key: name, Value: bson.D{{Key: "$exists", Value: false}}}}
	switch {
	case v.Type == bson.TypeNull && desc:
		return nil, false
	case v.Type == bson.TypeNull:
		return bson.D{{Key: name, Value: bson.D{{Key: "$exists", Value: true}}}}, true
	case desc:
		return bson.D{{Key: "$or", Value: bson.A{bson.D{{Key: name, Value: bson.D{{Key: "$lt", Value: v}}}}, missing}}}, true
	}
	return bson.D{{Key: name, Value: bson.D{{Key: "$gt", Value: v}}}}, true
}

// reverse returns sort with every direction reversed.
func reverse(sort bson.D) bson.D {
	r := make(bson.D, len(sort))
	for i, e := range sort {
		r[i] = bson.E{Key: e.Key, Value: -e.Value.(int)}
	}
	return r
}

// A search cursor is the BSON document {k: [values of the sort fields],
// b: true for a Prev cursor}, base64url-encoded; a missing value is null.
func encodeSearchCursor(sort bson.D, doc bson.Raw, back bool) string {
	values := bson.A{}
	for _, e := range sort {
		v, err := doc.LookupErr(e.Key)
		if err != nil {
			values = append(values, nil)
			continue
		}
		values = append(values, v)
	}
	d := bson.D{{Key: "k", Value: values}}
	if back {
		d = append(d, bson.E{Key: "b", Value: true})
	}
	b, _ := bson.Marshal(d)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeSearchCursor returns the n sort values of a cursor and whether it
// is a Prev cursor. Only scalar values of the kinds sort fields hold are
// accepted, so a forged cursor cannot carry an operator into a filter.
func decodeSearchCursor(s string, n int) ([]bson.RawValue, bool, error) {
	bad := fmt.Errorf("search cursor %q: %w", s, store.ErrBadCursor)
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || bson.Raw(b).Validate() != nil {
		return nil, false, bad
	}
	a, ok := bson.Raw(b).Lookup("k").ArrayOK()
	if !ok {
		return nil, false, bad
	}
	back := false
	if v, err := bson.Raw(b).LookupErr("b"); err == nil {
		if back, ok = v.BooleanOK(); !ok {
			return nil, false, bad
		}
	}
	values, err := a.Values()
	if err != nil || len(values) != n {
		return nil, false, bad
	}
	for i, v := range values {
		switch v.Type {
		case bson.TypeString, bson.TypeDouble, bson.TypeDateTime, bson.TypeInt64, bson.TypeInt32, bson.TypeNull:
		default:
			return nil, false, bad
		}
		if i == n-1 && v.Type != bson.TypeString { // the id
			return nil, false, bad
		}
	}
	return values, back, nil
}

// include returns the resources that q's Include and RevInclude add to a
// page of matches docs, each once and none of the matches, and whether it
// stopped at maxIncluded or maxIncludeRounds with more to add.
func (s *Store) include(ctx context.Context, q store.Query, docs []bson.Raw) (out []*store.Version, cut bool, err error) {
	type source struct {
		typ string
		doc bson.Raw
	}
	seen := map[string]bool{}
	var frontier []source
	for _, d := range docs {
		id := d.Lookup("_id").StringValue()
		seen[q.Type+"/"+id] = true
		frontier = append(frontier, source{q.Type, d})
	}
	// Included resources are read whole only when an :iterate rule may
	// follow their references.
	iterate := slices.ContainsFunc(q.Include, func(i store.Include) bool { return i.Iterate }) ||
		slices.ContainsFunc(q.RevInclude, func(i store.Include) bool { return i.Iterate })
	round := 0
	for ; round < maxIncludeRounds && len(frontier) > 0; round++ {
		var next []source
		// One more than fits tells that the includes were cut, past
		// those already seen, which add skips: the page's matches, and
		// what earlier rounds added.
		readAtMost := func() int { return maxIncluded - len(out) + len(seen) + 1 }
		add := func(typ string, d bson.Raw) error {
			key := typ + "/" + d.Lookup("_id").StringValue()
			if seen[key] {
				return nil
			}
			if len(out) >= maxIncluded {
				return errIncludedFull // and stop reading
			}
			seen[key] = true
			v, err := rawVersion(typ, d)
			if err != nil {
				return err
			}
			out = append(out, v)
			next = append(next, source{typ, d})
			return nil
		}
		// Includes: follow the references of the frontier.
		targets := map[string][]string{}  // type → ids
		canonicals := map[string]bson.A{} // type → filters of their url
		for _, inc := range q.Include {
			if round > 0 && !inc.Iterate {
				continue
			}
			for _, src := range frontier {
				if src.typ != inc.Type {
					continue
				}
				for _, ref := range references(src.doc, inc.Param) {
					typ, id, _ := strings.Cut(ref, "/")
					if (inc.Target == "" || inc.Target == typ) && validType(typ) && !seen[ref] {
						targets[typ] = append(targets[typ], id)
					}
				}
				if len(inc.Canonical) > 0 {
					if f := canonicalFilter(src.doc, inc.Param); f != nil {
						for _, typ := range inc.Canonical {
							canonicals[typ] = append(canonicals[typ], f)
						}
					}
				}
			}
		}
		for _, typ := range slices.Sorted(maps.Keys(targets)) {
			filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: targets[typ]}}}, {Key: fieldDeleted, Value: false}}
			if err := s.each(ctx, typ, filter, readAtMost(), iterate, add); err != nil {
				return out, errors.Is(err, errIncludedFull), ignoreFull(err)
			}
		}
		for _, typ := range slices.Sorted(maps.Keys(canonicals)) {
			if !validType(typ) {
				continue
			}
			filter := bson.D{{Key: "$or", Value: canonicals[typ]}, {Key: fieldDeleted, Value: false}}
			if err := s.each(ctx, typ, filter, readAtMost(), iterate, add); err != nil {
				return out, errors.Is(err, errIncludedFull), ignoreFull(err)
			}
		}
		// Revincludes: the resources that reference the frontier.
		for _, inc := range q.RevInclude {
			if (round > 0 && !inc.Iterate) || !validType(inc.Type) {
				continue
			}
			keys := bson.A{}
			var canonical bson.A
			for _, src := range frontier {
				if inc.Target == "" || inc.Target == src.typ {
					keys = append(keys, store.RefTyped+src.typ+"/"+src.doc.Lookup("_id").StringValue())
				}
				if slices.Contains(inc.Canonical, src.typ) {
					canonical = append(canonical, referringFilters(src.doc, inc.Param)...)
				}
			}
			if len(keys) == 0 && len(canonical) == 0 {
				continue
			}
			refs := bson.D{{Key: field("r", inc.Param), Value: bson.D{{Key: "$in", Value: keys}}}}
			if len(canonical) > 0 {
				refs = bson.D{{Key: "$or", Value: append(canonical, refs)}}
			}
			filter := append(refs, bson.E{Key: fieldDeleted, Value: false})
			if err := s.each(ctx, inc.Type, filter, readAtMost(), iterate, add); err != nil {
				return out, errors.Is(err, errIncludedFull), ignoreFull(err)
			}
		}
		frontier = next
	}
	return out, round == maxIncludeRounds && len(frontier) > 0 && q.Iterates(), nil
}

// errIncludedFull stops include reading once it has maxIncluded resources.
var errIncludedFull = errors.New("includes are full")

// ignoreFull returns err unless it is errIncludedFull.
func ignoreFull(err error) error {
	if errors.Is(err, errIncludedFull) {
		return nil
	}
	return err
}

// each calls fn with the first limit documents of typ that filter selects,
// in id order, with their search fields only if whole.
func (s *Store) each(ctx context.Context, typ string, filter bson.D, limit int, whole bool, fn func(typ string, doc bson.Raw) error) error {
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(max(limit, 1)))
	if !whole {
		opts.SetProjection(currentProjection)
	}
	cur, err := s.db.Collection(typ).Find(ctx, filter, opts)
	if err != nil {
		return err
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		if err := fn(typ, slices.Clone(cur.Current)); err != nil {
			return err
		}
	}
	return cur.Err()
}

// references returns the "Type/id" references a document holds in
// parameter param, or in every reference parameter for "*".
func references(doc bson.Raw, param string) []string {
	var out []string
	collect := func(name string) {
		for _, v := range array(doc, name) {
			if ref, ok := strings.CutPrefix(v.StringValue(), store.RefTyped); ok {
				out = append(out, ref)
			}
		}
	}
	if param != "*" {
		collect(field("r", param))
		return out
	}
	elems, err := doc.Elements()
	if err != nil {
		return nil
	}
	for _, e := range elems {
		if strings.HasPrefix(e.Key(), "ixr_") {
			collect(e.Key())
		}
	}
	return out
}

// canonicalFilter returns the filter of the resources that the canonical
// urls in parameter param of doc name (see store.Include): by url and
// version, or by url alone; nil when it holds none.
func canonicalFilter(doc bson.Raw, param string) bson.D {
	var keys []string
	for _, v := range array(doc, field("r", param)) {
		if k, ok := v.StringValueOK(); ok {
			keys = append(keys, k)
		}
	}
	urls, versions := store.CanonicalKeys(keys)
	or, plain := bson.A{}, bson.A{}
	for i, url := range urls {
		if versions[i] == "" {
			plain = append(plain, url)
			continue
		}
		or = append(or, bson.D{{Key: field("u", "url"), Value: url}, {Key: indexField("version"), Value: formCode + versions[i]}})
	}
	if len(plain) > 0 {
		or = append(or, bson.D{{Key: field("u", "url"), Value: bson.D{{Key: "$in", Value: plain}}}})
	}
	if len(or) == 0 {
		return nil
	}
	return bson.D{{Key: "$or", Value: or}}
}

// referringFilters returns the filters of the resources whose parameter
// param names doc, a resource with a canonical url, by that url (see
// store.Include): with doc's version, or alone where they name no version
// of the url.
func referringFilters(doc bson.Raw, param string) bson.A {
	refs := field("r", param)
	var out bson.A
	for _, u := range array(doc, field("u", "url")) {
		url, ok := u.StringValueOK()
		if !ok {
			continue
		}
		plain := store.RefURL + url
		out = append(out, bson.D{{Key: refs, Value: plain}, {Key: "$nor", Value: bson.A{
			bson.D{{Key: refs, Value: bson.Regex{Pattern: "^" + literal(plain+"|") + "."}}},
		}}})
		for _, v := range array(doc, indexField("version")) {
			s, _ := v.StringValueOK()
			if version, ok := strings.CutPrefix(s, formCode); ok && version != "" {
				out = append(out, bson.D{{Key: refs, Value: plain + "|" + version}})
			}
		}
	}
	return out
}

// literal returns a regular expression that matches s as it is. A regular
// expression travels in BSON as a C string, which cannot hold a NUL byte,
// so NUL is written as the escape \x00 (which MongoDB's PCRE and
// FerretDB's RE2 both read).
func literal(s string) string {
	return strings.ReplaceAll(regexp.QuoteMeta(s), "\x00", `\x00`)
}
