package mongo

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"carefhir/store"
)

// fieldPresent holds the names of the parameters a document has values of,
// for :missing.
const fieldPresent = "ixp"

// Quantity units are stored as a system|code pair and as the code and the
// displayed unit, in the form of tokenKeys.
func unitKeys(q store.Quantity) []string {
	keys := []string{formPair + systemEscaper.Replace(q.System) + "|" + q.Code}
	if q.Code != "" {
		keys = append(keys, formCode+q.Code)
	}
	if q.Unit != "" {
		keys = append(keys, formCode+q.Unit)
	}
	return keys
}

func unitKey(m store.QuantityMatch) string {
	if m.System == "" {
		return formCode + m.Code
	}
	return formPair + systemEscaper.Replace(m.System) + "|" + m.Code
}

// fields accumulates the search fields of one document.
type fields struct {
	m       map[string]bson.A
	present map[string]bool
	sortMin map[string]any
	sortMax map[string]any
}

// add appends v to the field, once.
func (f *fields) add(name string, v any) {
	if !slices.Contains(f.m[name], v) {
		f.m[name] = append(f.m[name], v)
	}
}

// addParallel appends v to the field even if it is there: the field is one
// of several whose arrays line up element by element.
func (f *fields) addParallel(name string, v any) {
	f.m[name] = append(f.m[name], v)
}

// sortKey records v as a value of param for sorting.
func (f *fields) sortKey(param string, lo, hi any, less func(a, b any) bool) {
	if strings.Contains(param, ":") {
		return // derived parameters are not sort keys
	}
	if cur, ok := f.sortMin[param]; !ok || less(lo, cur) {
		f.sortMin[param] = lo
	}
	if cur, ok := f.sortMax[param]; !ok || less(cur, hi) {
		f.sortMax[param] = hi
	}
}

func lessString(a, b any) bool { return a.(string) < b.(string) }
func lessFloat(a, b any) bool  { return a.(float64) < b.(float64) }
func lessTime(a, b any) bool   { return a.(bson.DateTime) < b.(bson.DateTime) }

// searchFields returns the search fields of a document holding ix, sorted by
// field name: per parameter one array of normalised scalars per kind, the
// names of the parameters present, and scalar sort keys. Dates and
// quantities keep their parts in parallel arrays, element i of each
// belonging to the same value, so that correlated conditions can be checked
// on the document (see docIndex).
func searchFields(ix *store.Index) bson.D {
	f := &fields{m: map[string]bson.A{}, present: map[string]bool{},
		sortMin: map[string]any{}, sortMax: map[string]any{}}
	for _, t := range ix.Tokens {
		f.present[t.Param] = true
		for _, k := range tokenKeys(t) {
			f.add(indexField(t.Param), k)
		}
		f.sortKey(t.Param, t.Code, t.Code, lessString)
	}
	for _, s := range ix.Strings {
		f.present[s.Param] = true
		f.add(field("s", s.Param), s.Value)
		f.add(field("e", s.Param), s.Exact)
		f.sortKey(s.Param, s.Value, s.Value, lessString)
	}
	for _, d := range ix.Dates {
		f.present[d.Param] = true
		lo, hi := bson.NewDateTimeFromTime(d.Low), bson.NewDateTimeFromTime(d.High)
		f.addParallel(field("dl", d.Param), lo)
		f.addParallel(field("dh", d.Param), hi)
		f.sortKey(d.Param, lo, hi, lessTime)
	}
	for _, n := range ix.Numbers {
		f.present[n.Param] = true
		f.add(field("n", n.Param), n.Value)
		f.sortKey(n.Param, n.Value, n.Value, lessFloat)
	}
	// The high ends of a parameter's values, in "qh" beside "q", when one
	// is a Range: a Quantity's is its value.
	ranges := map[string]bool{}
	for _, q := range ix.Quantities {
		ranges[q.Param] = ranges[q.Param] || q.Range
	}
	for _, c := range ix.Composites {
		ranges[c.Param] = ranges[c.Param] || c.Quantity != nil && c.Quantity.Range
	}
	for _, q := range ix.Quantities {
		f.present[q.Param] = true
		low, high := q.Ends()
		f.addParallel(field("q", q.Param), low)
		if ranges[q.Param] {
			f.addParallel(field("qh", q.Param), high)
		}
		f.addParallel(field("qs", q.Param), q.System)
		f.addParallel(field("qc", q.Param), q.Code)
		f.addParallel(field("qu", q.Param), q.Unit)
		for _, k := range unitKeys(q) {
			f.add(field("qk", q.Param), k)
		}
		f.sortKey(q.Param, low, high, lessFloat)
	}
	for _, r := range ix.References {
		f.present[r.Param] = true
		for _, k := range r.Keys() {
			f.add(field("r", r.Param), k)
		}
		f.sortKey(r.Param, r.Target(), r.Target(), lessString)
	}
	for _, u := range ix.URIs {
		f.present[u.Param] = true
		f.add(field("u", u.Param), u.Value)
		f.sortKey(u.Param, u.Value, u.Value, lessString)
	}
	for _, c := range ix.Composites {
		f.present[c.Param] = true
		key := store.CompositeKey(c.Parts)
		f.add(field("c", c.Param), key)
		if q := c.Quantity; q != nil {
			f.addParallel(field("cqk", c.Param), key)
			f.addParallel(field("cq", c.Param), q.Value)
			if _, high := q.Ends(); ranges[c.Param] {
				f.addParallel(field("cqh", c.Param), high)
			}
			f.addParallel(field("cqs", c.Param), q.System)
			f.addParallel(field("cqc", c.Param), q.Code)
			f.addParallel(field("cqu", c.Param), q.Unit)
		}
		if d := c.Date; d != nil {
			f.addParallel(field("cdk", c.Param), key)
			f.addParallel(field("cdl", c.Param), bson.NewDateTimeFromTime(d.Low))
			f.addParallel(field("cdh", c.Param), bson.NewDateTimeFromTime(d.High))
		}
	}
	d := make(bson.D, 0, len(f.m)+2*len(f.sortMin)+1)
	for _, name := range slices.Sorted(maps.Keys(f.m)) {
		// One value is stored as a scalar: queries match it as they
		// match an array holding it, and an index none of whose
		// documents holds an array for its field is not multikey, so a
		// range on it reads exactly the keys between its bounds.
		if v := f.m[name]; len(v) == 1 {
			d = append(d, bson.E{Key: name, Value: v[0]})
		} else {
			d = append(d, bson.E{Key: name, Value: v})
		}
	}
	for _, p := range slices.Sorted(maps.Keys(f.sortMin)) {
		d = append(d, bson.E{Key: field("a", p), Value: f.sortMin[p]}, bson.E{Key: field("z", p), Value: f.sortMax[p]})
	}
	if present := slices.Sorted(maps.Keys(f.present)); len(present) == 1 {
		d = append(d, bson.E{Key: fieldPresent, Value: present[0]})
	} else if len(present) > 1 {
		d = append(d, bson.E{Key: fieldPresent, Value: present})
	}
	slices.SortFunc(d, func(a, b bson.E) int { return cmp.Compare(a.Key, b.Key) })
	return d
}

// docIndex returns the values of parameter param held in the search fields
// of doc, as far as store.Match needs them: dates and quantities from their
// parallel arrays, numbers, tokens, references, uris, and strings
// (normalised and exact as separate values, each what one mode compares).
// and composites.
func docIndex(doc bson.Raw, param string) *store.Index {
	ix := &store.Index{}
	for _, v := range array(doc, indexField(param)) {
		if system, code, ok := splitPair(v.StringValue()); ok {
			ix.Tokens = append(ix.Tokens, store.Token{Param: param, System: system, Code: code})
		}
	}
	for _, v := range array(doc, field("s", param)) {
		ix.Strings = append(ix.Strings, store.String{Param: param, Value: v.StringValue()})
	}
	for _, v := range array(doc, field("e", param)) {
		ix.Strings = append(ix.Strings, store.String{Param: param, Exact: v.StringValue()})
	}
	for _, v := range array(doc, field("r", param)) {
		k := v.StringValue()
		switch {
		case strings.HasPrefix(k, store.RefTyped):
			typ, id, _ := strings.Cut(k[len(store.RefTyped):], "/")
			ix.References = append(ix.References, store.Reference{Param: param, Type: typ, ID: id})
		case strings.HasPrefix(k, store.RefURL):
			ix.References = append(ix.References, store.Reference{Param: param, URL: k[len(store.RefURL):]})
		}
	}
	for _, v := range array(doc, field("u", param)) {
		ix.URIs = append(ix.URIs, store.URI{Param: param, Value: v.StringValue()})
	}
	ix.Dates = dates(doc, param, "d")
	for _, v := range array(doc, field("n", param)) {
		if n, ok := v.DoubleOK(); ok {
			ix.Numbers = append(ix.Numbers, store.Number{Param: param, Value: n})
		}
	}
	ix.Quantities = quantities(doc, param, "q")
	for _, v := range array(doc, field("c", param)) {
		ix.Composites = append(ix.Composites, store.Composite{Param: param, Parts: store.SplitCompositeKey(v.StringValue())})
	}
	for i, q := range quantities(doc, param, "cq") {
		if k := array(doc, field("cqk", param)); i < len(k) {
			ix.Composites = append(ix.Composites, store.Composite{Param: param, Parts: store.SplitCompositeKey(k[i].StringValue()), Quantity: &q})
		}
	}
	for i, d := range dates(doc, param, "cd") {
		if k := array(doc, field("cdk", param)); i < len(k) {
			ix.Composites = append(ix.Composites, store.Composite{Param: param, Parts: store.SplitCompositeKey(k[i].StringValue()), Date: &d})
		}
	}
	return ix
}

// dates reads the dates of param from the parallel arrays of kind+"l" and
// kind+"h".
func dates(doc bson.Raw, param, kind string) []store.Date {
	var out []store.Date
	lo, hi := array(doc, field(kind+"l", param)), array(doc, field(kind+"h", param))
	for i := range min(len(lo), len(hi)) {
		l, ok1 := lo[i].DateTimeOK()
		h, ok2 := hi[i].DateTimeOK()
		if ok1 && ok2 {
			out = append(out, store.Date{Param: param, Low: fromMillis(l), High: fromMillis(h)})
		}
	}
	return out
}

// quantities reads the quantities of param from the parallel arrays of
// kind, kind+"s", kind+"c" and kind+"u", and the high ends of their
// intervals from kind+"h" when it is there (some value is a Range).
func quantities(doc bson.Raw, param, kind string) []store.Quantity {
	var out []store.Quantity
	qv, qs, qc, qu := array(doc, field(kind, param)), array(doc, field(kind+"s", param)), array(doc, field(kind+"c", param)), array(doc, field(kind+"u", param))
	qh := array(doc, field(kind+"h", param))
	for i := range min(len(qv), len(qs), len(qc), len(qu)) {
		if v, ok := qv[i].DoubleOK(); ok {
			q := store.Quantity{Param: param, Value: v,
				System: qs[i].StringValue(), Code: qc[i].StringValue(), Unit: qu[i].StringValue()}
			if len(qh) == len(qv) {
				q.High, q.Range = qh[i].DoubleOK()
			}
			out = append(out, q)
		}
	}
	return out
}

// splitPair reads the "p" form of a token key (see tokenKeys).
func splitPair(k string) (system, code string, ok bool) {
	rest, ok := strings.CutPrefix(k, formPair)
	if !ok {
		return "", "", false
	}
	var b strings.Builder
	for i := 0; i < len(rest); i++ {
		switch rest[i] {
		case '\\':
			if i+1 < len(rest) {
				i++
				b.WriteByte(rest[i])
			}
		case '|':
			return b.String(), rest[i+1:], true
		default:
			b.WriteByte(rest[i])
		}
	}
	return "", "", false
}

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// array returns the values of the search field name of doc: the elements
// of an array, or the one value stored as a scalar.
func array(doc bson.Raw, name string) []bson.RawValue {
	v, err := doc.LookupErr(name)
	if err != nil {
		return nil
	}
	a, ok := v.ArrayOK()
	if !ok {
		return []bson.RawValue{v}
	}
	vals, err := a.Values()
	if err != nil {
		return nil
	}
	return vals
}
