package search

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"carefhir/fhir/fhirpath"
	"carefhir/store/query"
)

// Value is one item an expression selects: its FHIR type name ("HumanName",
// "date", "CodeableConcept"…; "" when the evaluator does not know it, and
// the shape of the JSON decides) and its JSON, as encoding/json decodes it
// with UseNumber.
type Value struct {
	Type string
	JSON any
	// node is the evaluator's own handle on the value, passed back to it
	// when a composite's components are evaluated on the value.
	node any
}

// Expression is a compiled FHIRPath expression.
type Expression interface {
	// Evaluate returns what the expression selects from ctx: a resource,
	// or for composite components an element of one.
	Evaluate(ctx Value) ([]Value, error)
}

// Compiler compiles a FHIRPath expression.
type Compiler func(expr string) (Expression, error)

// Indexer extracts the search values of resources: it evaluates every
// parameter's official expression and normalises what it selects. It is
// read-only after NewIndexer and safe for concurrent use.
type Indexer struct {
	reg   *Registry
	base  string
	exprs map[string][]compiled // type → its parameters' expressions
	// Failed lists the parameters whose expression did not compile; they
	// are not indexed.
	Failed []Skipped
}

type compiled struct {
	param      *Param
	expr       Expression
	components []Expression
}

// native are the parameters engines answer from the version itself.
var native = map[string]bool{"_id": true, "_lastUpdated": true}

// NewIndexer compiles the expressions of every parameter of reg with
// compile. base is the server's base URL: absolute references under it are
// indexed as local ones.
func NewIndexer(reg *Registry, compile Compiler, base string) *Indexer {
	ix := &Indexer{reg: reg, base: base, exprs: map[string][]compiled{}}
	cache := map[string]Expression{}
	get := func(e string) (Expression, error) {
		if x, ok := cache[e]; ok {
			return x, nil
		}
		x, err := compile(e)
		if err == nil {
			cache[e] = x
		}
		return x, err
	}
	for _, typ := range reg.Types() {
		for _, p := range reg.Params(typ) {
			if native[p.Code] {
				continue
			}
			c := compiled{param: p}
			x, err := get(p.Expression)
			for _, comp := range p.Components {
				if err != nil {
					break
				}
				var cx Expression
				cx, err = get(comp.Expression)
				c.components = append(c.components, cx)
			}
			if err != nil {
				ix.Failed = append(ix.Failed, Skipped{typ + "." + p.Code, err.Error()})
				continue
			}
			c.expr = x
			ix.exprs[typ] = append(ix.exprs[typ], c)
		}
	}
	return ix
}

// Registry returns the registry whose parameters the indexer extracts.
func (ix *Indexer) Registry() *Registry { return ix.reg }

// IndexJSON returns the search values of the resource of type typ encoded
// in body.
func (ix *Indexer) IndexJSON(typ string, body []byte) (query.Index, error) {
	v, err := fhirpath.DecodeJSON(body)
	if err != nil {
		return query.Index{}, fmt.Errorf("search: index %s: %w", typ, err)
	}
	res, ok := v.(map[string]any)
	if !ok && v != nil { // null indexes nothing, as an empty object
		return query.Index{}, fmt.Errorf("search: index %s: the JSON is not an object", typ)
	}
	return ix.Index(typ, res)
}

// Index returns the search values of res, a resource of type typ decoded
// from JSON.
func (ix *Indexer) Index(typ string, res map[string]any) (query.Index, error) {
	var out query.Index
	root := Value{Type: typ, JSON: res}
	for _, c := range ix.exprs[typ] {
		values, err := c.expr.Evaluate(root)
		if err != nil {
			return query.Index{}, fmt.Errorf("search: index %s %s: %w", typ, c.param.Code, err)
		}
		before := out
		if err := ix.add(&out, c, values); err != nil {
			return query.Index{}, fmt.Errorf("search: index %s %s: %w", typ, c.param.Code, err)
		}
		// An element that has a value makes the parameter present for
		// :missing even when nothing of it could be indexed: a Reference
		// by identifier or display alone, or to a contained resource, a
		// CodeableConcept of text alone, a Quantity without a value. Not
		// a composite's: its expression selects the resource or a part of
		// it, and its value is the combination of its components.
		if c.param.Type != "composite" && len(values) > 0 && !query.HasValue(added(&out, &before), c.param.Code) && slices.ContainsFunc(values, hasValue) {
			out.Tokens = append(out.Tokens, query.Token{Param: query.PresentParam(c.param.Code)})
		}
	}
	dedupe(&out)
	return out, nil
}

// added returns the values appended to ix since it was before.
func added(ix, before *query.Index) *query.Index {
	return &query.Index{
		Tokens:     ix.Tokens[len(before.Tokens):],
		Strings:    ix.Strings[len(before.Strings):],
		Dates:      ix.Dates[len(before.Dates):],
		Numbers:    ix.Numbers[len(before.Numbers):],
		Quantities: ix.Quantities[len(before.Quantities):],
		References: ix.References[len(before.References):],
		URIs:       ix.URIs[len(before.URIs):],
		Composites: ix.Composites[len(before.Composites):],
	}
}

// hasValue reports whether v, an element an expression selected, has a
// value: a primitive's own value, or a child that has one. A primitive
// with extensions alone has no value (R4 json.html#primitive, as with a
// data-absent-reason in place of it), and neither, read alike, has a
// complex element holding nothing but an id and extensions.
func hasValue(v Value) bool { return jsonHasValue(v.JSON) }

func jsonHasValue(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case string:
		return x != ""
	case []any:
		return slices.ContainsFunc(x, jsonHasValue)
	case map[string]any:
		for k, c := range x {
			// "_name" holds the id and extensions of primitive name.
			if k != "id" && k != "extension" && !strings.HasPrefix(k, "_") && jsonHasValue(c) {
				return true
			}
		}
		return false
	}
	return true
}

func (ix *Indexer) add(out *query.Index, c compiled, values []Value) error {
	p := c.param
	for _, v := range values {
		switch p.Type {
		case "string":
			addStrings(out, p.Code, v)
		case "token":
			addTokens(out, p.Code, v)
		case "date":
			addDates(out, p.Code, v)
		case "number":
			if text, f, ok := number(v.JSON); ok {
				out.Numbers = append(out.Numbers, query.Number{Param: p.Code, Value: f, Text: text})
			}
		case "quantity":
			addQuantity(out, p.Code, v)
		case "reference":
			ix.addReference(out, p.Code, v)
		case "uri":
			if s, ok := v.JSON.(string); ok && s != "" {
				out.URIs = append(out.URIs, query.URI{Param: p.Code, Value: s})
			}
		case "composite":
			values, err := ix.composites(c, v)
			if err != nil {
				return err
			}
			out.Composites = append(out.Composites, values...)
		}
	}
	return nil
}

// addStrings indexes a string, or the text parts of a HumanName, Address or
// other element: each part is searched on its own ("name=jo" finds a given
// name John).
func addStrings(out *query.Index, param string, v Value) {
	add := func(s string) {
		if n := NormalizeString(s); n != "" {
			out.Strings = append(out.Strings, query.String{Param: param, Value: n, Exact: ExactString(s)})
		}
	}
	switch x := v.JSON.(type) {
	case string:
		add(x)
	case map[string]any:
		for _, k := range []string{"text", "family", "given", "prefix", "suffix",
			"line", "city", "district", "state", "postalCode", "country", "display", "value"} {
			switch y := x[k].(type) {
			case string:
				add(y)
			case []any:
				for _, e := range y {
					if s, ok := e.(string); ok {
						add(s)
					}
				}
			}
		}
	}
}

// addTokens indexes codes, Codings, CodeableConcepts, Identifiers,
// ContactPoints and booleans; display text goes under "param:text", the
// type of an identifier under "param:of-type".
func addTokens(out *query.Index, param string, v Value) {
	text := func(s string) {
		if n := NormalizeString(s); n != "" {
			out.Strings = append(out.Strings, query.String{Param: param + ":text", Value: n, Exact: ExactString(s)})
		}
	}
	token := func(system, code string) {
		if code != "" || system != "" {
			out.Tokens = append(out.Tokens, query.Token{Param: param, System: system, Code: code})
		}
	}
	coding := func(m map[string]any) {
		token(str(m["system"]), str(m["code"]))
		text(str(m["display"]))
	}
	switch x := v.JSON.(type) {
	case string:
		token("", x)
	case bool:
		token("", strconv.FormatBool(x))
	case json.Number:
		token("", x.String())
	case map[string]any:
		switch {
		case v.Type == "CodeableConcept" || x["coding"] != nil || (v.Type == "" && x["text"] != nil && x["value"] == nil):
			for _, c := range list(x["coding"]) {
				if m, ok := c.(map[string]any); ok {
					coding(m)
				}
			}
			text(str(x["text"]))
		case v.Type == "Identifier" || v.Type == "ContactPoint" || x["value"] != nil:
			value := str(x["value"])
			token(str(x["system"]), value)
			if t, ok := x["type"].(map[string]any); ok && value != "" {
				for _, c := range list(t["coding"]) {
					if m, ok := c.(map[string]any); ok && str(m["code"]) != "" {
						out.Tokens = append(out.Tokens, query.Token{Param: param + ":of-type",
							System: OfTypeSystem(str(m["system"]), str(m["code"])), Code: value})
					}
				}
				text(str(t["text"]))
			}
		default: // Coding
			coding(x)
		}
	}
}

func addDates(out *query.Index, param string, v Value) {
	switch x := v.JSON.(type) {
	case string:
		if low, high, ok := dateRange(x, x); ok {
			out.Dates = append(out.Dates, query.Date{Param: param, Low: low, High: high})
		}
	case map[string]any:
		if x["start"] != nil || x["end"] != nil { // Period
			if low, high, ok := dateRange(str(x["start"]), str(x["end"])); ok {
				out.Dates = append(out.Dates, query.Date{Param: param, Low: low, High: high})
			}
			return
		}
		addTiming(out, param, x)
	}
}

// dateRange is the range from the start of low to the end of high, an
// empty one open; not ok when both are empty or either is not a date.
func dateRange(low, high string) (lo, hi time.Time, ok bool) {
	if low == "" && high == "" {
		return lo, hi, false
	}
	lo, hi = query.MinTime, query.MaxTime
	if low != "" {
		if lo, _, ok = ParseDate(low); !ok {
			return lo, hi, false
		}
	}
	if high != "" {
		if _, hi, ok = ParseDate(high); !ok {
			return lo, hi, false
		}
	}
	return lo, hi, true
}

// addTiming indexes a Timing by its outer limits alone, as R4's date
// search has it ("the specified scheduling details are ignored and only
// the outer limits matter"): one range from the earliest of its events and
// the start of its boundsPeriod to the latest of its events and the end of
// its bounds, an open end of the bounds open. Were its events values of
// their own, events of January and March would be found by a search for
// January, and as starting after February.
func addTiming(out *query.Index, param string, timing map[string]any) {
	var low, high time.Time
	found := false
	widen := func(l, h time.Time) {
		if !found || l.Before(low) {
			low = l
		}
		if !found || h.After(high) {
			high = h
		}
		found = true
	}
	for _, e := range list(timing["event"]) {
		if s, ok := e.(string); ok {
			if l, h, ok := dateRange(s, s); ok {
				widen(l, h)
			}
		}
	}
	if r, ok := timing["repeat"].(map[string]any); ok {
		if b, ok := r["boundsPeriod"].(map[string]any); ok {
			if l, h, ok := dateRange(str(b["start"]), str(b["end"])); ok {
				widen(l, h)
			}
		}
	}
	if found {
		out.Dates = append(out.Dates, query.Date{Param: param, Low: low, High: high})
	}
}

func addQuantity(out *query.Index, param string, v Value) {
	m, ok := v.JSON.(map[string]any)
	if !ok {
		return
	}
	if m["value"] == nil && (m["low"] != nil || m["high"] != nil) {
		addRange(out, param, m)
		return
	}
	text, f, ok := number(m["value"])
	if !ok {
		return
	}
	q := query.Quantity{Param: param, Value: f, Text: text, System: str(m["system"]), Code: str(m["code"]), Unit: str(m["unit"])}
	if c := str(m["currency"]); c != "" { // Money
		q.System, q.Code = "urn:iso:std:iso:4217", c
	}
	out.Quantities = append(out.Quantities, q)
	if cq, ok := canonicalQuantity(param, text, q.System, q.Code); ok {
		out.Quantities = append(out.Quantities, cq)
	}
}

// addRange indexes a Range as the interval from its low to its high
// Quantity, an absent end open, in the unit both ends share; and in
// canonical form when that unit is UCUM's. A Range whose ends are in
// different units, or whose low is above its high, has no interval to
// compare and is not indexed.
func addRange(out *query.Index, param string, r map[string]any) {
	low, _ := r["low"].(map[string]any)
	high, _ := r["high"].(map[string]any)
	lowText, lo, hasLow := number(low["value"])
	highText, hi, hasHigh := number(high["value"])
	unit := low
	switch {
	case !hasLow && !hasHigh:
		return
	case !hasLow:
		unit, lo = high, -math.MaxFloat64
	case !hasHigh:
		hi = math.MaxFloat64
	case str(low["system"]) != str(high["system"]) || str(low["code"]) != str(high["code"]):
		return
	}
	if lo > hi {
		return
	}
	q := query.Quantity{Param: param, Value: lo, High: hi, Range: true, Text: lowText,
		System: str(unit["system"]), Code: str(unit["code"]), Unit: str(unit["unit"])}
	out.Quantities = append(out.Quantities, q)
	cq := query.Quantity{Param: CanonicalParam(param), Value: -math.MaxFloat64, High: math.MaxFloat64, Range: true}
	if hasLow {
		c, ok := canonicalQuantity(param, lowText, q.System, q.Code)
		if !ok {
			return
		}
		cq.Value, cq.Text, cq.System, cq.Code = c.Value, c.Text, c.System, c.Code
	}
	if hasHigh {
		c, ok := canonicalQuantity(param, highText, q.System, q.Code)
		if !ok {
			return
		}
		cq.High, cq.System, cq.Code = c.Value, c.System, c.Code
	}
	if cq.Value <= cq.High {
		out.Quantities = append(out.Quantities, cq)
	}
}

func (ix *Indexer) addReference(out *query.Index, param string, v Value) {
	switch x := v.JSON.(type) {
	case string: // canonical or uri
		if x != "" {
			r := ParseReference(x, ix.base)
			r.Param = param
			out.References = append(out.References, r)
		}
		// A canonical naming a version is found by its url alone too:
		// R4 (search.html, references to canonical) has url match every
		// version, and url|version that version only.
		if i := strings.LastIndexByte(x, '|'); v.Type == "canonical" && i > 0 && i < len(x)-1 {
			out.References = append(out.References, query.Reference{Param: param, URL: x[:i]})
		}
	case map[string]any:
		if ref := str(x["reference"]); ref != "" && !strings.HasPrefix(ref, "#") {
			r := ParseReference(ref, ix.base)
			r.Param = param
			out.References = append(out.References, r)
		}
		if id, ok := x["identifier"].(map[string]any); ok {
			if value := str(id["value"]); value != "" {
				out.Tokens = append(out.Tokens, query.Token{Param: param + ":identifier", System: str(id["system"]), Code: value})
			}
		}
	}
}

// maxCompositeKeys bounds the key combinations one element indexes.
const maxCompositeKeys = 64

// composites returns the composite values of one element: every
// combination of its components' values. A token component has the keys
// "system|code" and "|code"; a last component that is a quantity or a date
// is kept as a value to compare, and a quantity in UCUM units also in
// canonical form, under the composite's CanonicalParam.
func (ix *Indexer) composites(c compiled, v Value) ([]query.Composite, error) {
	combos := []query.Composite{{Param: c.param.Code}}
	var canonical []query.Composite
	last := len(c.param.Components) - 1
	for i, comp := range c.param.Components {
		values, err := c.components[i].Evaluate(v)
		if err != nil {
			return nil, err
		}
		var part query.Index
		for _, cv := range values {
			switch comp.Type {
			case "token":
				addTokens(&part, "", cv)
			case "string":
				addStrings(&part, "", cv)
			case "quantity":
				addQuantity(&part, "", cv)
			case "date":
				addDates(&part, "", cv)
			}
		}
		// Each way this component can be, applied to a combination.
		var ways []func(query.Composite) query.Composite
		var keys []string
		for _, t := range part.Tokens {
			if t.Code != "" {
				keys = append(keys, TokenKey(t.System, t.Code, false), TokenKey("", t.Code, true))
			}
		}
		for _, s := range part.Strings {
			if s.Param == "" {
				keys = append(keys, s.Value)
			}
		}
		slices.Sort(keys)
		for _, k := range slices.Compact(keys) {
			ways = append(ways, func(x query.Composite) query.Composite {
				x.Parts = append(slices.Clip(x.Parts), k)
				return x
			})
		}
		for _, q := range part.Quantities {
			if q.Param == CanonicalParam("") {
				q.Param = "" // as the plain quantities of composites
				for _, combo := range combos {
					if i == last && len(canonical) < maxCompositeKeys {
						canonical = append(canonical, query.Composite{Param: CanonicalParam(c.param.Code), Parts: combo.Parts, Quantity: &q})
					}
				}
				continue
			}
			ways = append(ways, func(x query.Composite) query.Composite { x.Quantity = &q; return x })
		}
		for _, d := range part.Dates {
			ways = append(ways, func(x query.Composite) query.Composite { x.Date = &d; return x })
		}
		var next []query.Composite
		for _, combo := range combos {
			for _, w := range ways {
				if len(next) == maxCompositeKeys {
					break
				}
				next = append(next, w(combo))
			}
		}
		combos = next
	}
	return append(combos, canonical...), nil
}

// number reads a JSON number (or a numeric string) keeping its text.
func number(v any) (string, float64, bool) {
	var text string
	switch x := v.(type) {
	case json.Number:
		text = x.String()
	case float64:
		text = strconv.FormatFloat(x, 'f', -1, 64)
	case string:
		text = x
	default:
		return "", 0, false
	}
	// The value alone: ParseNumber's, without the range it also works out.
	r, _, ok := parseDecimal(text)
	if !ok {
		// A decimal beyond float64 (1e309) is still a valid FHIR decimal
		// and stored: it is indexed at the largest float of its sign, so
		// searches for large values find it rather than nothing.
		if f, err := strconv.ParseFloat(text, 64); err != nil && math.IsInf(f, 0) {
			return text, math.Copysign(math.MaxFloat64, f), true
		}
		return text, 0, false
	}
	f, _ := r.Float64()
	return text, f, true
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func list(v any) []any {
	switch x := v.(type) {
	case []any:
		return x
	case nil:
		return nil
	}
	return []any{v}
}

// dedupe removes repeated values, which engines would store twice.
func dedupe(ix *query.Index) {
	ix.Tokens = uniq(ix.Tokens)
	ix.Strings = uniq(ix.Strings)
	ix.Dates = uniq(ix.Dates)
	ix.Numbers = uniq(ix.Numbers)
	ix.Quantities = uniq(ix.Quantities)
	ix.References = uniq(ix.References)
	ix.URIs = uniq(ix.URIs)
	ix.Composites = slices.CompactFunc(ix.Composites, func(a, b query.Composite) bool {
		return a.Param == b.Param && slices.Equal(a.Parts, b.Parts) &&
			ptrEqual(a.Quantity, b.Quantity) && ptrEqual(a.Date, b.Date)
	})
}

func ptrEqual[T comparable](a, b *T) bool {
	return a == b || a != nil && b != nil && *a == *b
}

func uniq[T comparable](s []T) []T {
	if len(s) < 2 {
		return s
	}
	seen := make(map[T]bool, len(s))
	out := s[:0]
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
