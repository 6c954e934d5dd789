package search

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"carefhir/fhir"
	"carefhir/fhir/lexical"
	"carefhir/store/query"
)

// Count limits of a page.
const (
	DefaultCount = 20
	MaxCount     = 1000
)

// Limits keep a request from building an unbounded plan. Each is a bound
// a search may reach, not exceed; exceeding one is a 400 naming it. A zero
// field takes the default of DefaultLimits.
type Limits struct {
	// Params bounds the filter parameters of one search (name=value
	// pairs, each of which the engine ANDs).
	Params int
	// Values bounds the values ORed in one parameter (a,b,c).
	Values int
	// Chain bounds the depth of chains and nested _has.
	Chain int
	// Elements bounds the names of _elements.
	Elements int
	// Includes bounds the distinct _include and _revinclude parameters.
	Includes int
	// Count bounds _count: a larger one is lowered to it.
	Count int
	// Terms bounds the size of the whole plan: its values, each counted
	// once for every type a chain reaches it through (a chain over the
	// forty types Provenance.target refers to repeats its values forty
	// times, and nested chains multiply).
	Terms int
}

// DefaultLimits are the limits of a parse whose Options set none.
var DefaultLimits = Limits{Params: 100, Values: 1000, Chain: 4, Elements: 200, Includes: 20, Count: MaxCount, Terms: 5000}

// WithDefaults returns l with DefaultLimits where it sets none (0 or
// less): the limits a parse with l applies.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits
	for _, f := range []struct{ v, def *int }{
		{&l.Params, &d.Params}, {&l.Values, &d.Values}, {&l.Chain, &d.Chain},
		{&l.Elements, &d.Elements}, {&l.Includes, &d.Includes}, {&l.Count, &d.Count}, {&l.Terms, &d.Terms},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return l
}

// Options are the settings of one parse.
type Options struct {
	// Strict refuses unknown and unsupported parameters with a 400
	// (Prefer: handling=strict); otherwise they are ignored and reported.
	Strict bool
	// Base is the server's base URL, so that absolute references to it
	// search as local ones.
	Base string
	// Unindexed says the index does not know Base: the server was given
	// no base URL and Base is the one a request came in by, so the
	// absolute references under it were indexed as the URLs they are. A
	// reference to a resource held here then matches such a URL too.
	Unindexed bool
	// Now is the time "ap" dates are approximate relative to; zero: time.Now.
	Now time.Time
	// Limits bound the plan; zero fields take DefaultLimits'.
	Limits Limits
}

// Plan is a parsed search: the store query, and how to shape the results.
type Plan struct {
	Query query.Query
	// Summary is the _summary mode: "", "true", "text", "data", "count" or
	// "false".
	Summary string
	// Elements are the top-level elements _elements keeps.
	Elements []string
	// Ignored are the parameters left out under lenient handling, each
	// with the reason, for the outcome entry of the searchset.
	Ignored []*Error
	// Params are the parameters applied, for the self link.
	Params url.Values
}

// Parse compiles the search parameters q of resource type typ into a plan.
// A value that cannot be read (a bad date, a negative _count) is an *Error
// with status 400; an unknown or unsupported parameter is one too under
// Strict, and is otherwise ignored and listed in Plan.Ignored.
func (r *Registry) Parse(typ string, q url.Values, opt Options) (*Plan, error) {
	if !r.Served(typ) {
		return nil, &Error{Status: 404, Code: "not-supported", Expression: typ, Diagnostics: "resource type " + typ + " is not served"}
	}
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	opt.Limits = opt.Limits.WithDefaults()
	p := &parser{r: r, opt: opt, elements: map[string]bool{}}
	plan := &Plan{Query: query.Query{Type: typ, Count: min(DefaultCount, opt.Limits.Count)}, Params: url.Values{}}
	if n := countFilters(q); n > opt.Limits.Params {
		return nil, &Error{Status: 400, Code: "too-costly", fatal: true,
			Diagnostics: fmt.Sprintf("the search has %d parameters; at most %d are allowed", n, opt.Limits.Params)}
	}
	for _, name := range sortedKeys(q) {
		if n := distinct(q[name]); n > 1 && onceOnly[name] {
			// Which value the client meant is not known, and the links
			// would state them all while one was applied.
			return nil, invalid(name, "%s is given %d times with different values: a search takes it once", name, n)
		}
		applied := map[string]bool{}
		for _, value := range q[name] {
			if !utf8.ValidString(name) || !utf8.ValidString(value) {
				// URLs carry UTF-8 percent-encoded. Any other bytes (a
				// Latin-1 ü sent as %FC) compare as nothing stored holds,
				// or as U+FFFD wherever a value is carried as JSON.
				return nil, invalid(strings.ToValidUTF8(name, "\uFFFD"),
					"%s=%q is not UTF-8 once %%-decoded: send each character as the %%-escapes of its UTF-8 bytes (ü as %%C3%%BC)",
					strings.ToValidUTF8(name, "\uFFFD"), clip(value))
			}
			if applied[value] {
				continue // a repeat adds nothing: an include, or a criterion ANDed with itself
			}
			applied[value] = true
			err := p.param(plan, typ, name, value)
			var e *Error
			if errors.As(err, &e) && e.Code == "not-supported" && !e.fatal && !opt.Strict {
				plan.Ignored = append(plan.Ignored, e)
				continue
			}
			if err != nil {
				return nil, err
			}
			if name == "_count" {
				// The page size used, which may be lower than asked: the
				// self link says what was done.
				value = strconv.Itoa(plan.Query.Count)
			}
			if name != "_format" && name != "_pretty" && name != "_cursor" {
				plan.Params.Add(name, value)
			}
		}
	}
	if n := terms(plan.Query.Where, opt.Limits.Terms); n > opt.Limits.Terms {
		return nil, &Error{Status: 400, Code: "too-costly", fatal: true,
			Diagnostics: fmt.Sprintf("the search expands to more than %d terms (values, repeated for each type a chain reaches, and a reference by id alone once for each type it may name); narrow its chains or value lists, or write references as Type/id", opt.Limits.Terms)}
	}
	if plan.Summary == "count" || plan.Query.Count == 0 {
		// A count alone (_summary=count, _count=0): no entries to include.
		plan.Query.Count = 0
		plan.Query.Include, plan.Query.RevInclude = nil, nil
		if plan.Query.Total == query.TotalNone {
			plan.Query.Total = query.TotalAccurate
		}
	}
	return plan, nil
}

// Compartment returns the clause that keeps the resources of typ in the
// compartment of Patient id: any of the compartment's parameters of typ
// refers to the patient. ok is false when typ is not in the compartment.
func (r *Registry) Compartment(typ, id string) (c query.Clause, ok bool) {
	return r.compartmentClause(typ, id)
}

// AnyCompartment returns the clause that keeps the resources of typ in the
// compartment of some Patient: any of the compartment's parameters of typ
// refers to a Patient, whichever. ok is false when typ is not in the
// compartment. The clause is of references only: every Patient is in its
// own compartment, so a caller keeping the compartments of all Patients
// keeps every Patient, with no clause.
func (r *Registry) AnyCompartment(typ string) (c query.Clause, ok bool) {
	return r.compartmentClause(typ, "")
}

// compartmentClause is Compartment of Patient id, or AnyCompartment when
// id is empty.
func (r *Registry) compartmentClause(typ, id string) (c query.Clause, ok bool) {
	params := r.compartment[typ]
	if len(params) == 0 {
		return query.Clause{}, false
	}
	c.Param = "_compartment"
	for _, p := range params {
		if p == "{def}" { // the Patient itself
			if id != "" {
				c.Any = append(c.Any, query.Clause{Param: "_id", Tokens: []query.TokenMatch{{Code: id, AnySystem: true}}})
			}
			continue
		}
		c.Any = append(c.Any, query.Clause{Param: p, References: []query.ReferenceMatch{{Type: "Patient", ID: id}}})
	}
	return c, true
}

// terms counts the terms of clauses, stopping once past limit (nested
// chains multiply, so the count could otherwise overflow).
func terms(clauses []query.Clause, limit int) int {
	n := 0
	for i := range clauses {
		c := &clauses[i]
		// A long token list (a ValueSet's expansion) is one lookup in a
		// list, not a term per code.
		n += 1 + min(len(c.Tokens), 64) + len(c.Strings) + len(c.Dates) + len(c.Numbers) + len(c.Quantities) +
			referenceTerms(c.References) + len(c.URIs) + len(c.Composites)
		n += terms(c.Any, limit)
		if c.Chain != nil {
			n += len(c.Chain.Types) * terms(c.Chain.Where, limit)
		}
		if c.Has != nil {
			n += terms(c.Has.Where, limit)
		}
		if n > limit {
			return n
		}
	}
	return n
}

// referenceTerms counts the reference matches of refs, but not the match
// of an absolute URL that addLocal puts after the match of the resource
// it names (Options.Unindexed): it is one reference written another way,
// looked up in the same index, and a search must not reach the limit
// sooner on a server given no base URL.
func referenceTerms(refs []query.ReferenceMatch) int {
	n := len(refs)
	for i := 1; i < len(refs); i++ {
		local, r := refs[i-1], refs[i]
		if local.URL == "" && r.URL != "" && strings.HasSuffix(r.URL, "/"+local.Type+"/"+local.ID) {
			n--
		}
	}
	return n
}

// countFilters counts the name=value pairs of q that filter: all but the
// result parameters, which cost little however many there are (the
// includes and _elements have bounds of their own).
func countFilters(q url.Values) int {
	n := 0
	for name, values := range q {
		if !strings.HasPrefix(name, "_") || name == "_id" || name == "_lastUpdated" || strings.HasPrefix(name, "_has") ||
			strings.HasPrefix(name, "_id:") || strings.HasPrefix(name, "_lastUpdated:") {
			n += len(values)
		}
	}
	return n
}

func sortedKeys(q url.Values) []string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

type parser struct {
	r   *Registry
	opt Options
	// elements and includes are what the plan has of each, to add each
	// once in constant time.
	elements map[string]bool
	includes map[includeKey]bool
	revs     map[includeKey]bool
}

// includeKey is an include without what the parser derives from it
// (query.Include.Canonical).
type includeKey struct {
	typ, param, target string
	iterate            bool
}

// param applies one name=value pair to plan.
func (p *parser) param(plan *Plan, typ, name, value string) error {
	base, modifier, _ := strings.Cut(name, ":")
	switch base {
	case "_format", "_pretty":
		return nil
	case "_cursor":
		plan.Query.Cursor = value
		return nil
	case "_count":
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 {
			return invalid(name, "_count must be a whole number, 0 or more, not %q", clip(value))
		}
		plan.Query.Count = min(n, p.opt.Limits.Count)
		return nil
	case "_total":
		switch value {
		case "none":
			plan.Query.Total = query.TotalNone
		case "estimate":
			plan.Query.Total = query.TotalEstimate
		case "accurate":
			plan.Query.Total = query.TotalAccurate
		default:
			return invalid(name, "_total must be none, estimate or accurate, not %q", clip(value))
		}
		return nil
	case "_summary":
		switch value {
		case "true", "text", "data", "count", "false":
			plan.Summary = value
		default:
			return invalid(name, "_summary must be true, text, data, count or false, not %q", clip(value))
		}
		return nil
	case "_elements":
		for _, e := range strings.Split(value, ",") {
			e = strings.TrimSpace(e)
			if e == "" || !isElementName(e) {
				return invalid(name, "_elements lists element names such as name,birthDate, not %q", clip(value))
			}
			if !p.elements[e] {
				if len(plan.Elements) == p.opt.Limits.Elements {
					return tooMany(name, "_elements names more than %d elements", p.opt.Limits.Elements)
				}
				p.elements[e] = true
				plan.Elements = append(plan.Elements, e)
			}
		}
		return nil
	case "_sort":
		return p.sort(plan, typ, name, value)
	case "_include", "_revinclude":
		return p.include(plan, typ, name, base, modifier, value)
	case "_query":
		return refused(name, "named query %q is not known here", clip(value))
	case "_contained", "_containedType", "_list", "_text", "_content", "_filter", "_graph", "_type":
		return unsupported(name, "parameter %s is not supported", base)
	}
	if value == "" {
		return unsupported(name, "parameter %s has no value and is ignored", name)
	}
	if base == "_id" || base == "_lastUpdated" {
		if modifier == "missing" && value == "false" {
			return nil // every resource has an id and a lastUpdated
		}
	}
	c, err := p.clause(typ, name, value, 0)
	if err != nil {
		return err
	}
	plan.Query.Where = append(plan.Query.Where, conjuncts(c)...)
	return nil
}

// present returns the clause of the resources whose element of param has
// a value: one the index holds a value of param from, or one it could
// index nothing from and marked under query.PresentParam. Its complement is
// :missing=true.
func present(param string) query.Clause {
	return query.Clause{Param: param, Any: []query.Clause{
		{Param: param, Presence: query.Present},
		{Param: query.PresentParam(param), Presence: query.Present},
	}}
}

// onceOnly are the parameters of a search that take one value: a page
// size, a total, a summary, a place to page from.
var onceOnly = map[string]bool{"_count": true, "_total": true, "_summary": true, "_cursor": true}

// distinct counts the different values of values.
func distinct(values []string) int {
	seen := make(map[string]bool, len(values))
	for _, v := range values {
		seen[v] = true
	}
	return len(seen)
}

func isElementName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) <= 80 {
		return s
	}
	return s[:80] + "…"
}

func (p *parser) sort(plan *Plan, typ, name, value string) error {
	for _, k := range strings.Split(value, ",") {
		key := query.SortKey{Param: strings.TrimSpace(k)}
		if strings.HasPrefix(key.Param, "-") {
			key.Param, key.Desc = key.Param[1:], true
		}
		if key.Param == "" {
			return invalid(name, "_sort lists parameters such as birthdate,-_lastUpdated, not %q", clip(value))
		}
		if key.Param != "_id" && key.Param != "_lastUpdated" {
			sp, ok := p.r.Param(typ, key.Param)
			if !ok {
				return unsupported(name, "cannot sort by %s: %s has no such search parameter", key.Param, typ)
			}
			if sp.Type == "composite" {
				return unsupported(name, "cannot sort by the composite parameter %s", key.Param)
			}
		}
		if !slices.ContainsFunc(plan.Query.Sort, func(s query.SortKey) bool { return s.Param == key.Param }) {
			plan.Query.Sort = append(plan.Query.Sort, key)
		}
	}
	return nil
}

// include reads _include and _revinclude: "Type:param", "Type:param:Target",
// "*" or "Type:*", with the modifier iterate (or its R3 name recurse).
// "Type:*" in a _revinclude stands for each reference parameter of Type
// that may point to the searched type (any of them with iterate); a bare
// "*" names no type to look in, and is not supported there.
func (p *parser) include(plan *Plan, typ, name, base, modifier, value string) error {
	inc := query.Include{}
	switch modifier {
	case "":
	case "iterate", "recurse":
		inc.Iterate = true
	default:
		return refused(name, "%s has no modifier %q (only iterate)", base, modifier)
	}
	parts := strings.Split(value, ":")
	switch {
	case value == "*" && base == "_revinclude":
		return unsupported(name, "_revinclude=* names no type whose resources to include: name one, as in _revinclude=Observation:* or _revinclude=Observation:subject")
	case value == "*":
		inc.Type, inc.Param = typ, "*"
	case (len(parts) == 2 || len(parts) == 3) && !slices.Contains(parts, ""):
		inc.Type, inc.Param = parts[0], parts[1]
		if len(parts) == 3 {
			inc.Target = parts[2]
		}
	default:
		return invalid(name, "%s takes Type:parameter or Type:parameter:TargetType, not %q", base, clip(value))
	}
	// What no server could include (a type R4 does not have, a parameter
	// that is not a reference, a target it cannot refer to) is invalid,
	// under lenient handling too, as a bad value of any parameter is;
	// what another server might serve is not supported here, and ignored
	// under lenient handling as an unknown parameter is.
	for _, t := range []string{inc.Type, inc.Target} {
		if t != "" && !fhir.IsResourceType(t) {
			return invalid(name, "%s=%s: %q is not an R4 resource type", base, clip(value), clip(t))
		}
	}
	if !p.r.Served(inc.Type) {
		return unsupported(name, "%s: resource type %q is not served", base, inc.Type)
	}
	if inc.Param != "*" {
		sp, ok := p.r.Param(inc.Type, inc.Param)
		switch {
		case !ok:
			return unsupported(name, "%s: %s has no reference parameter %q", base, inc.Type, clip(inc.Param))
		case sp.Type != "reference":
			return invalid(name, "%s=%s: %s is a %s parameter, and only a reference parameter is followed", base, clip(value), inc.Param, sp.Type)
		case inc.Target != "" && !sp.mayRefer(inc.Target):
			return invalid(name, "%s=%s: %s.%s cannot refer to a %s (it refers to %s)", base, clip(value), inc.Type, inc.Param, inc.Target, clip(strings.Join(sp.Targets, ", ")))
		}
	}
	if inc.Target != "" && !p.r.Served(inc.Target) {
		return unsupported(name, "%s: target type %q is not served", base, inc.Target)
	}
	if base == "_include" && inc.Type != typ && !inc.Iterate {
		return invalid(name, "_include=%s names %s, not the searched type %s (use _include:iterate)", clip(value), inc.Type, typ)
	}
	if base == "_revinclude" && inc.Param == "*" {
		for _, sp := range p.r.Params(inc.Type) {
			if sp.Type != "reference" || !inc.Iterate && !slices.Contains(p.r.targets(sp), typ) {
				continue
			}
			one := inc
			one.Param = sp.Code
			if err := p.addInclude(plan, name, base, one); err != nil {
				return err
			}
		}
		return nil
	}
	return p.addInclude(plan, name, base, inc)
}

// addInclude adds inc to the _include or _revinclude list of plan, once,
// within the limit on their number.
func (p *parser) addInclude(plan *Plan, name, base string, inc query.Include) error {
	seen, list := &p.includes, &plan.Query.Include
	if base == "_revinclude" {
		seen, list = &p.revs, &plan.Query.RevInclude
	}
	key := includeKey{inc.Type, inc.Param, inc.Target, inc.Iterate}
	if (*seen)[key] {
		return nil // the same include twice includes the same resources
	}
	if len(plan.Query.Include)+len(plan.Query.RevInclude) == p.opt.Limits.Includes {
		return tooMany(name, "more than %d distinct _include and _revinclude parameters", p.opt.Limits.Includes)
	}
	if *seen == nil {
		*seen = map[includeKey]bool{}
	}
	(*seen)[key] = true
	inc.Canonical = p.r.canonicalTargets(inc)
	*list = append(*list, inc)
	return nil
}

// clause compiles one filter parameter of typ: "param", "param:modifier",
// a chain "ref[:Type].param…" or a reverse chain "_has:Type:ref:param…".
// depth counts the chain links so far.
func (p *parser) clause(typ, name, value string, depth int) (query.Clause, error) {
	if depth > p.opt.Limits.Chain {
		return query.Clause{}, tooMany(name, "chains and _has nest at most %d deep", p.opt.Limits.Chain)
	}
	if rest, ok := strings.CutPrefix(name, "_has:"); ok {
		c, err := p.has(typ, name, rest, value, depth)
		return c, named(err, name)
	}
	head, chained, isChain := strings.Cut(name, ".")
	code, modifier, _ := strings.Cut(head, ":")
	sp, ok := p.r.Param(typ, code)
	if !ok {
		return query.Clause{}, unsupported(name, "%s has no search parameter %q", typ, code)
	}
	if isChain {
		c, err := p.chain(typ, name, sp, modifier, chained, value, depth)
		return c, named(err, name)
	}
	if modifier == "missing" {
		always := code == "_id" || code == "_lastUpdated"
		switch {
		case value == "true" && always:
			// None misses them: an empty Any matches nothing.
			return query.Clause{Param: code, Any: []query.Clause{}}, nil
		case value == "false" && always:
			return query.Clause{Param: code, Not: true, Any: []query.Clause{}}, nil
		}
		switch value {
		case "true":
			c := present(code)
			c.Not = true
			return c, nil
		case "false":
			return present(code), nil
		}
		return query.Clause{}, invalid(name, ":missing takes true or false, not %q", clip(value))
	}
	values := splitUnescaped(value, ',')
	if len(values) > p.opt.Limits.Values {
		return query.Clause{}, tooMany(name, "%d values; at most %d may be ORed in one parameter", len(values), p.opt.Limits.Values)
	}
	c := query.Clause{Param: code}
	var err error
	switch sp.Type {
	case "string":
		err = p.strings(&c, name, modifier, values)
	case "token":
		err = p.tokens(&c, name, sp, modifier, values)
	case "date":
		err = p.dates(&c, name, modifier, values)
	case "number":
		err = p.numbers(&c, name, modifier, values)
	case "quantity":
		err = p.quantities(&c, name, sp, modifier, values)
	case "reference":
		err = p.references(&c, name, sp, modifier, values)
	case "uri":
		err = p.uris(&c, name, typ, modifier, values)
	case "composite":
		err = p.composites(&c, name, sp, modifier, values)
	default:
		err = unsupported(name, "parameters of type %s are not supported", sp.Type)
	}
	return c, err
}

// chain compiles "ref[:Type].rest": rest is a parameter of the referenced
// types, itself possibly chained.
func (p *parser) chain(typ, name string, sp *Param, modifier, rest, value string, depth int) (query.Clause, error) {
	if sp.Type != "reference" {
		return query.Clause{}, invalid(name, "only reference parameters chain; %s is a %s parameter", sp.Code, sp.Type)
	}
	targets := p.r.targets(sp)
	if modifier != "" {
		switch {
		case !sp.mayRefer(modifier):
			return query.Clause{}, invalid(name, "%s cannot refer to %q (it refers to %s)", sp.Code, modifier, strings.Join(sp.Targets, ", "))
		case !slices.Contains(targets, modifier):
			return query.Clause{}, invalid(name, "%s may refer to a %s, but %s is not served here, so no chain goes through it", sp.Code, modifier, modifier)
		}
		targets = []string{modifier}
	}
	inner, _, _ := strings.Cut(rest, ".")
	innerCode, _, _ := strings.Cut(inner, ":")
	// The inner parameter may be of another kind on each target type
	// (performer is a reference on CarePlan, a token on Task), so each
	// type is searched with its own compiled clause; types whose clauses
	// agree share one chain.
	type group struct {
		where query.Clause
		types []string
	}
	var groups []group
	var firstErr error
	for _, t := range targets {
		if _, ok := p.r.Param(t, innerCode); !ok && innerCode != "_has" {
			continue
		}
		c, err := p.clause(t, rest, value, depth+1)
		if err != nil {
			firstErr = cmp(firstErr, err)
			continue
		}
		i := slices.IndexFunc(groups, func(g group) bool { return reflect.DeepEqual(g.where, c) })
		if i < 0 {
			groups = append(groups, group{where: c})
			i = len(groups) - 1
		}
		groups[i].types = append(groups[i].types, t)
	}
	if len(groups) == 0 {
		if firstErr != nil {
			return query.Clause{}, firstErr
		}
		return query.Clause{}, unsupported(name, "none of the types %s refers to has a search parameter %q", sp.Code, innerCode)
	}
	chains := make([]query.Clause, len(groups))
	for i, g := range groups {
		chains[i] = query.Clause{Param: sp.Code, Chain: &query.Chain{Types: g.types, Where: []query.Clause{g.where}}}
	}
	if len(chains) == 1 {
		return chains[0], nil
	}
	return query.Clause{Param: sp.Code, Any: chains}, nil
}

// named sets the expression of a parse error of a chain's inner parameter
// to the whole parameter as the client wrote it.
func named(err error, name string) error {
	var e *Error
	if errors.As(err, &e) {
		e.Expression = name
	}
	return err
}

func cmp(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// has compiles the rest of "_has:Type:ref:param…" (after "_has:").
func (p *parser) has(typ, name, rest, value string, depth int) (query.Clause, error) {
	parts := strings.SplitN(rest, ":", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return query.Clause{}, invalid(name, "_has takes the form _has:Type:reference:parameter, e.g. _has:Observation:patient:code")
	}
	other, ref, inner := parts[0], parts[1], parts[2]
	if !p.r.Served(other) {
		// As a chain to a type not served (invalid, not ignored):
		// ignoring it under lenient handling would answer every
		// resource the rest of the search finds.
		return query.Clause{}, invalid(name, "_has: %q is not a resource type served here, so no _has goes through it", clip(other))
	}
	sp, ok := p.r.Param(other, ref)
	if !ok || sp.Type != "reference" {
		return query.Clause{}, unsupported(name, "_has: %s has no reference parameter %q", other, ref)
	}
	if !slices.Contains(p.r.targets(sp), typ) {
		return query.Clause{}, invalid(name, "_has: %s.%s cannot refer to a %s", other, ref, typ)
	}
	c, err := p.clause(other, inner, value, depth+1)
	if err != nil {
		return query.Clause{}, err
	}
	return query.Clause{Param: "_has", Has: &query.Has{Type: other, Param: ref, Where: []query.Clause{c}}}, nil
}

func (p *parser) strings(c *query.Clause, name, modifier string, values []string) error {
	mode := query.StringPrefix
	switch modifier {
	case "":
	case "exact":
		mode = query.StringExact
	case "contains":
		mode = query.StringContains
	default:
		return refused(name, "string parameters have no modifier %q (exact, contains, missing)", modifier)
	}
	for _, v := range values {
		v = unescape(v)
		if mode == query.StringExact {
			v = ExactString(v)
		} else {
			v = NormalizeString(v)
		}
		if v == "" {
			return invalid(name, "empty value in %q", name)
		}
		c.Strings = append(c.Strings, query.StringMatch{Mode: mode, Value: v})
	}
	return nil
}

func (p *parser) tokens(c *query.Clause, name string, sp *Param, modifier string, values []string) error {
	code := sp.Code
	switch modifier {
	case "", "not":
		c.Not = modifier == "not"
		for _, v := range values {
			m, err := parseToken(name, v)
			if err != nil {
				return err
			}
			if code == "_id" {
				if !lexical.ValidID(m.Code) || !m.AnySystem {
					return invalid(name, "%q is not a resource id", clip(v))
				}
			}
			c.Tokens = append(c.Tokens, m)
			if p.implicitSystem(sp, m) {
				// An element of type code holds the code alone; its system
				// is the one its binding draws on (R4 search.html, token:
				// "the system is defined in the value set").
				c.Tokens = append(c.Tokens, query.TokenMatch{Code: m.Code})
			}
		}
		return nil
	case "text":
		c.Param = code + ":text"
		for _, v := range values {
			s := NormalizeString(unescape(v))
			if s == "" {
				return invalid(name, "empty value in %q", name)
			}
			c.Strings = append(c.Strings, query.StringMatch{Mode: query.StringPrefix, Value: s})
		}
		return nil
	case "of-type":
		if !sp.identifiers {
			// R4 defines :of-type on Identifiers alone.
			return refused(name, "%s searches no identifiers, so it has no modifier :of-type", code)
		}
		c.Param = code + ":of-type"
		for _, v := range values {
			parts := splitUnescaped(v, '|')
			if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
				return invalid(name, ":of-type takes system|code|value, not %q", clip(v))
			}
			c.Tokens = append(c.Tokens, query.TokenMatch{
				System: OfTypeSystem(unescape(parts[0]), unescape(parts[1])),
				Code:   unescape(parts[2]),
			})
		}
		return nil
	case "in", "not-in", "above", "below":
		return p.terminology(c, name, modifier, values)
	}
	return refused(name, "token parameters have no modifier %q (not, text, of-type, in, not-in, above, below, missing)", modifier)
}

// OfTypeSystem is the system under which an identifier is indexed for
// :of-type: its type's coding system and code.
func OfTypeSystem(system, code string) string { return system + "|" + code }

// parseToken reads system|code, |code, code or system|.
func parseToken(name, v string) (query.TokenMatch, error) {
	if v == "" {
		return query.TokenMatch{}, invalid(name, "empty value in %q", name)
	}
	parts := splitUnescaped(v, '|')
	switch len(parts) {
	case 1:
		return query.TokenMatch{Code: unescape(parts[0]), AnySystem: true}, nil
	case 2:
		m := query.TokenMatch{System: unescape(parts[0]), Code: unescape(parts[1])}
		if m.Code == "" {
			if m.System == "" {
				return query.TokenMatch{}, invalid(name, "%q names neither a system nor a code", v)
			}
			m.AnyCode = true
		}
		return m, nil
	}
	return query.TokenMatch{}, invalid(name, "token %q has more than one unescaped '|'", clip(v))
}

// prefix splits a leading comparator off an ordered value.
func prefix(v string) (query.Prefix, string) {
	if len(v) > 2 {
		switch pr := query.Prefix(v[:2]); pr {
		case query.Eq, query.Ne, query.Gt, query.Lt, query.Ge, query.Le, query.Sa, query.Eb, query.Ap:
			return pr, v[2:]
		}
	}
	return query.Eq, v
}

// noModifier refuses any modifier on types that take none but :missing.
func noModifier(name, typ, modifier string) error {
	if modifier != "" {
		return refused(name, "%s parameters have no modifier %q", typ, modifier)
	}
	return nil
}

func (p *parser) dates(c *query.Clause, name, modifier string, values []string) error {
	if err := noModifier(name, "date", modifier); err != nil {
		return err
	}
	for _, v := range values {
		m, err := p.dateMatch(name, v)
		if err != nil {
			return err
		}
		c.Dates = append(c.Dates, m)
	}
	c.Dates = notEqual(c.Dates, notEqualDate)
	return nil
}

// dateMatch reads one date value with its prefix.
func (p *parser) dateMatch(name, v string) (query.DateMatch, error) {
	pr, d := prefix(v)
	low, high, ok := ParseDate(d)
	if !ok {
		return query.DateMatch{}, invalid(name, "%q is not a date: use YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss][Z|±hh:mm], optionally after a prefix such as ge", clip(v))
	}
	if pr == query.Ap {
		// Approximately: within a tenth of the distance from now, and at
		// least the value's own precision. In seconds, not a
		// time.Duration, which holds some 292 years: a distance beyond
		// it saturated, widening the range too little, or, for a date
		// that far ahead, turned negative and emptied the range.
		gap := p.opt.Now.Unix() - low.Unix()
		if gap < 0 {
			gap = -gap
		}
		low = time.Unix(low.Unix()-gap/10, int64(low.Nanosecond())).In(low.Location())
		high = time.Unix(high.Unix()+gap/10, int64(high.Nanosecond())).In(high.Location())
	}
	return query.DateMatch{Prefix: pr, Low: low, High: high}, nil
}

// notEqual replaces each ne match of ms by the two matches either side of
// the range of its value, which outside returns (ok false for a match of
// another prefix).
//
// R4 defines ne as "the value for the parameter in the resource is not
// equal to the provided value", and a resource with several values of a
// parameter (the components of an Observation) matches when any of them
// does. So ne matches a resource with some value outside the range, in the
// unit the search names if it names one: not one whose only values equal
// it, and not one without a value, which only :not (of tokens) is defined
// to include. Written as a Not of eq, ne would say "no value is equal",
// which takes in resources without a value and in other units, and leaves
// out one with an equal value beside an unequal one.
func notEqual[M any](ms []M, outside func(M) (below, above M, ok bool)) []M {
	out := make([]M, 0, len(ms))
	for _, m := range ms {
		below, above, ok := outside(m)
		if !ok {
			out = append(out, m)
			continue
		}
		out = append(out, below, above)
	}
	return out
}

// notEqualDate is a date ne as the dates that start before its range or
// end after it.
func notEqualDate(m query.DateMatch) (below, above query.DateMatch, ok bool) {
	if m.Prefix != query.Ne {
		return m, m, false
	}
	below, above = m, m
	below.Prefix, above.Prefix = query.Lt, query.Gt
	return below, above, true
}

// notEqualNumber is a number ne as the numbers below its range [Low, High)
// and those from High up.
func notEqualNumber(m query.NumberMatch) (below, above query.NumberMatch, ok bool) {
	if m.Prefix != query.Ne {
		return m, m, false
	}
	below, above = m, m
	below.Prefix, below.Value = query.Lt, m.Low
	above.Prefix, above.Value = query.Ge, m.High
	return below, above, true
}

// notEqualQuantity is notEqualNumber in the quantity's unit.
func notEqualQuantity(m query.QuantityMatch) (below, above query.QuantityMatch, ok bool) {
	below, above = m, m
	below.NumberMatch, above.NumberMatch, ok = notEqualNumber(m.NumberMatch)
	return below, above, ok
}

// notEqualComposite is a composite whose last part, a quantity or a date,
// has the prefix ne, as the composites of equal other parts and a last
// part either side of its range.
func notEqualComposite(m query.CompositeMatch) (below, above query.CompositeMatch, ok bool) {
	below, above = m, m
	switch {
	case m.Quantity != nil:
		var bq, aq query.QuantityMatch
		if bq, aq, ok = notEqualQuantity(*m.Quantity); ok {
			below.Quantity, above.Quantity = &bq, &aq
		}
	case m.Date != nil:
		var bd, ad query.DateMatch
		if bd, ad, ok = notEqualDate(*m.Date); ok {
			below.Date, above.Date = &bd, &ad
		}
	}
	return below, above, ok
}

func (p *parser) numbers(c *query.Clause, name, modifier string, values []string) error {
	if err := noModifier(name, "number", modifier); err != nil {
		return err
	}
	for _, v := range values {
		m, err := numberMatch(name, v)
		if err != nil {
			return err
		}
		c.Numbers = append(c.Numbers, m)
	}
	c.Numbers = notEqual(c.Numbers, notEqualNumber)
	return nil
}

func numberMatch(name, v string) (query.NumberMatch, error) {
	pr, n := prefix(v)
	value, low, high, ok := ParseNumber(n)
	if !ok {
		if decimalSyntax.MatchString(n) {
			// A number, but one no stored value can be compared with.
			return query.NumberMatch{}, invalid(name, "%q is beyond the numbers searched here: below 1.8e308 in magnitude, with an exponent from -400 to 400", clip(v))
		}
		return query.NumberMatch{}, invalid(name, "%q is not a number, optionally after a prefix such as gt", clip(v))
	}
	if pr == query.Ap {
		d := math.Abs(value) / 10
		low, high = math.Min(low, value-d), math.Max(high, value+d)
	}
	return query.NumberMatch{Prefix: pr, Value: value, Low: low, High: high}, nil
}

func (p *parser) quantities(c *query.Clause, name string, sp *Param, modifier string, values []string) error {
	if err := noModifier(name, "quantity", modifier); err != nil {
		return err
	}
	// Values in UCUM units compare in canonical units, under the
	// parameter's CanonicalParam; others as written.
	var plain, canonical []query.QuantityMatch
	for _, v := range values {
		q, err := quantityMatch(name, v)
		if err != nil {
			return err
		}
		q.Ranges = selectsRanges(sp.Expression)
		if cq, ok := canonicalMatch(q, splitUnescaped(v, '|')[0]); ok {
			cq.Ranges = q.Ranges
			canonical = append(canonical, cq)
			continue
		}
		plain = append(plain, q)
	}
	plain, canonical = notEqual(plain, notEqualQuantity), notEqual(canonical, notEqualQuantity)
	split(c, len(plain) > 0, len(canonical) > 0, func(c *query.Clause) { c.Quantities = plain }, func(c *query.Clause) { c.Quantities = canonical })
	return nil
}

// split sets the matches of a clause whose values are in plain units,
// canonical UCUM units, or both: both make an Any of a clause on the
// parameter and one on its CanonicalParam.
func split(c *query.Clause, plain, canonical bool, setPlain, setCanonical func(*query.Clause)) {
	switch {
	case plain && canonical:
		p, q := query.Clause{Param: c.Param}, query.Clause{Param: CanonicalParam(c.Param)}
		setPlain(&p)
		setCanonical(&q)
		c.Any = []query.Clause{p, q}
	case canonical:
		c.Param = CanonicalParam(c.Param)
		setCanonical(c)
	default:
		setPlain(c)
	}
}

// selectsRanges reports whether a quantity parameter's expression selects
// Ranges (Condition.onset.as(Range), useContext.value as Range), which are
// indexed as intervals.
func selectsRanges(expression string) bool { return strings.Contains(expression, "Range") }

// quantityMatch reads one quantity value: [prefix]number[|system|code].
func quantityMatch(name, v string) (query.QuantityMatch, error) {
	parts := splitUnescaped(v, '|')
	if len(parts) != 1 && len(parts) != 3 {
		return query.QuantityMatch{}, invalid(name, "a quantity is number, number|system|code or number||code, not %q", clip(v))
	}
	m, err := numberMatch(name, parts[0])
	if err != nil {
		return query.QuantityMatch{}, err
	}
	q := query.QuantityMatch{NumberMatch: m}
	if len(parts) == 3 {
		q.System, q.Code = unescape(parts[1]), unescape(parts[2])
		if q.System != "" && q.Code == "" {
			return query.QuantityMatch{}, invalid(name, "quantity %q names a unit system but no unit code", clip(v))
		}
	}
	return q, nil
}

func (p *parser) references(c *query.Clause, name string, sp *Param, modifier string, values []string) error {
	switch {
	case modifier == "identifier":
		c.Param = sp.Code + ":identifier"
		for _, v := range values {
			m, err := parseToken(name, v)
			if err != nil {
				return err
			}
			c.Tokens = append(c.Tokens, m)
		}
		return nil
	case modifier != "" && !isTypeName(modifier):
		return refused(name, "reference parameters have no modifier %q (Type, identifier, missing)", modifier)
	case modifier != "" && !sp.mayRefer(modifier):
		return invalid(name, "%s cannot refer to %q (it refers to %s)", sp.Code, modifier, strings.Join(sp.Targets, ", "))
	}
	for _, v := range values {
		v = unescape(v)
		ref := ParseReference(v, p.opt.Base)
		switch {
		case ref.URL == "":
			if modifier != "" && ref.Type != modifier {
				return invalid(name, "%q is not a reference to a %s", clip(v), modifier)
			}
			if !sp.mayRefer(ref.Type) {
				return invalid(name, "%s cannot refer to a %s", sp.Code, ref.Type)
			}
			p.addLocal(c, ref.Type, ref.ID)
		case lexical.ValidID(v) && modifier != "":
			p.addLocal(c, modifier, v)
		case lexical.ValidID(v):
			for _, t := range refTypes(sp) {
				p.addLocal(c, t, v)
			}
		case strings.Contains(v, ":"):
			c.References = append(c.References, query.ReferenceMatch{URL: v})
		default:
			return invalid(name, "%q is not a reference: use id, Type/id or an absolute URL", clip(v))
		}
	}
	return nil
}

// addLocal adds to c a match of references to the resource typ/id held
// here, and of those written absolute under a base the index does not know.
func (p *parser) addLocal(c *query.Clause, typ, id string) {
	c.References = append(c.References, query.ReferenceMatch{Type: typ, ID: id})
	if p.opt.Unindexed && p.opt.Base != "" {
		abs := strings.TrimSuffix(p.opt.Base, "/") + "/" + typ + "/" + id
		c.References = append(c.References, query.ReferenceMatch{URL: abs})
	}
}

// refTypes returns every type a reference of sp may name, served or not.
// References are stored by type and id only, so an id alone is a match for
// each of them.
// mayRefer reports whether a reference of sp may name a resource of typ,
// as its definition lists the types, served or not: a stored resource may
// refer to a type this server does not serve.
func (sp *Param) mayRefer(typ string) bool {
	return len(sp.Targets) == 0 || sp.targetsAny() || slices.Contains(sp.Targets, typ)
}

func refTypes(sp *Param) []string {
	if len(sp.Targets) == 0 || sp.targetsAny() {
		return fhir.ResourceTypes()
	}
	return sp.Targets
}

func (p *parser) uris(c *query.Clause, name, typ, modifier string, values []string) error {
	mode := query.URIExact
	switch modifier {
	case "":
	case "below":
		mode = query.URIBelow
	case "above":
		mode = query.URIAbove
	default:
		return refused(name, "uri parameters have no modifier %q (below, above, missing)", modifier)
	}
	versioned := mode == query.URIExact && p.r.versioned(typ, c.Param)
	var withVersion []query.Clause // a clause for each value with a version
	for _, v := range values {
		if url, version, ok := cutVersion(v); ok && versioned {
			withVersion = append(withVersion, allOf(
				query.Clause{Param: c.Param, URIs: []query.URIMatch{{Mode: query.URIExact, Value: url}}},
				query.Clause{Param: "version", Tokens: []query.TokenMatch{{Code: version, AnySystem: true}}}))
			continue
		}
		v = unescape(v)
		if v == "" {
			return invalid(name, "empty value in %q", name)
		}
		if mode == query.URIAbove {
			// A value is above v when v starts with it: the prefixes of v.
			for _, u := range uriAbove(v) {
				c.URIs = append(c.URIs, query.URIMatch{Mode: query.URIExact, Value: u})
			}
			continue
		}
		c.URIs = append(c.URIs, query.URIMatch{Mode: mode, Value: v})
	}
	if len(withVersion) > 0 {
		if len(c.URIs) > 0 {
			withVersion = append(withVersion, query.Clause{Param: c.Param, URIs: c.URIs})
		}
		*c = query.Clause{Param: c.Param, Any: withVersion}
		if len(withVersion) == 1 {
			*c = withVersion[0]
		}
	}
	return nil
}

// cutVersion splits a canonical url search value at its last unescaped
// '|' into the url and the version, which R4 has servers search for as
// the resource's version (a SHOULD of its uri parameters). ok is false
// without a version.
func cutVersion(v string) (url, version string, ok bool) {
	parts := splitUnescaped(v, '|')
	n := len(parts)
	if n < 2 {
		return "", "", false
	}
	url, version = unescape(strings.Join(parts[:n-1], "|")), unescape(parts[n-1])
	return url, version, url != "" && version != ""
}

// allOf is the clause that holds when every one of clauses holds: a plan
// ANDs its top-level clauses only, so it is written as none of their
// negations holding. Parse hands a top-level one over as its clauses
// (conjuncts).
func allOf(clauses ...query.Clause) query.Clause {
	c := query.Clause{Param: clauses[0].Param, Not: true}
	for _, x := range clauses {
		x.Not = !x.Not
		c.Any = append(c.Any, x)
	}
	return c
}

// conjuncts returns the clauses that c, if allOf wrote it, holds all of;
// else c alone.
func conjuncts(c query.Clause) []query.Clause {
	if !c.Not || len(c.Any) == 0 || slices.ContainsFunc(c.Any, func(x query.Clause) bool { return !x.Not || x.Presence != query.PresenceAny }) {
		return []query.Clause{c}
	}
	out := make([]query.Clause, len(c.Any))
	for i, x := range c.Any {
		x.Not = false
		out[i] = x
	}
	return out
}

// composites reads "a$b" values of a composite parameter: token and string
// components compare as keys, and a last component that is a quantity or a
// date takes its prefixes, e.g. Observation
// code-value-quantity=http://loinc.org|8480-6$gt140|http://unitsofmeasure.org|mm[Hg].
func (p *parser) composites(c *query.Clause, name string, sp *Param, modifier string, values []string) error {
	if err := noModifier(name, "composite", modifier); err != nil {
		return err
	}
	if !Searchable(sp) {
		return unsupported(name, "composite %s has components of types this server cannot correlate", sp.Code)
	}
	var plain, canonical []query.CompositeMatch
	for _, v := range values {
		parts := splitUnescaped(v, '$')
		if len(parts) != len(sp.Components) {
			return invalid(name, "%s takes %d values joined by $, not %q", sp.Code, len(sp.Components), clip(v))
		}
		var m query.CompositeMatch
		for i, comp := range sp.Components {
			switch comp.Type {
			case "string":
				key := StringKey(unescape(parts[i]))
				if key == "" {
					// Refused, as a string parameter's empty value is: the
					// empty key matches nothing, an answer to no search asked.
					return invalid(name, "empty value in %q", name)
				}
				m.Parts = append(m.Parts, key)
				// A string is matched by prefix, as a string parameter's
				// value is, when it is the last part (R4's one string part,
				// of Observation's code-value-string, is); an earlier one is
				// compared whole.
				m.Prefix = i == len(sp.Components)-1
			case "quantity":
				q, err := quantityMatch(name, parts[i])
				if err != nil {
					return err
				}
				q.Ranges = selectsRanges(comp.Expression)
				m.Quantity = &q
			case "date":
				d, err := p.dateMatch(name, parts[i])
				if err != nil {
					return err
				}
				m.Date = &d
			default:
				t, err := parseToken(name, parts[i])
				if err != nil {
					return err
				}
				if t.AnyCode {
					return invalid(name, "composite values need a code, not %q", clip(v))
				}
				m.Parts = append(m.Parts, TokenKey(t.System, t.Code, t.AnySystem))
			}
		}
		if m.Quantity != nil {
			if cq, ok := canonicalMatch(*m.Quantity, splitUnescaped(parts[len(parts)-1], '|')[0]); ok {
				cq.Ranges = m.Quantity.Ranges
				m.Quantity = &cq
				canonical = append(canonical, m)
				continue
			}
		}
		plain = append(plain, m)
	}
	plain, canonical = notEqual(plain, notEqualComposite), notEqual(canonical, notEqualComposite)
	split(c, len(plain) > 0, len(canonical) > 0, func(c *query.Clause) { c.Composites = plain }, func(c *query.Clause) { c.Composites = canonical })
	return nil
}

// Searchable reports whether the composite parameter p can be searched:
// its components are tokens or strings, but for a last one that may be a
// quantity or a date.
func Searchable(p *Param) bool {
	last := len(p.Components) - 1
	for i, comp := range p.Components {
		switch {
		case comp.Type == "token" || comp.Type == "string":
		case i == last && (comp.Type == "quantity" || comp.Type == "date"):
		default:
			return false
		}
	}
	return true
}

// TokenKey is the key of a token in a composite: "system|code"; "|code"
// when anySystem; and for a code without a system (searched as "|code"),
// `\|code` with the code's '\' and '|' escaped, which no key of the other
// forms is, as each has an unescaped '|'. The index holds the key of the
// token's own system (or of its absence) and the anySystem key.
func TokenKey(system, code string, anySystem bool) string {
	switch {
	case anySystem:
		return "|" + code
	case system == "":
		return `\|` + keyEscaper.Replace(code)
	}
	return keyEscaper.Replace(system) + "|" + code
}

// StringKey is the key of a string in a composite: its normalised form.
func StringKey(s string) string { return NormalizeString(s) }

// keyEscaper keeps a system's '|' from ending it early.
var keyEscaper = strings.NewReplacer(`\`, `\\`, `|`, `\|`)

// splitUnescaped splits s at sep, except where sep is escaped with '\'.
func splitUnescaped(s string, sep byte) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// EscapeValue escapes what a search value gives a meaning to, so that
// s is matched as written: ',' between values, '|' between a system and
// a code, '$' between a composite's parts, and '\' itself
// (https://hl7.org/fhir/R4/search.html#escaping); unescape undoes it.
func EscapeValue(s string) string { return valueEscaper.Replace(s) }

var valueEscaper = strings.NewReplacer(`\`, `\\`, `,`, `\,`, `|`, `\|`, `$`, `\$`)

// unescape removes the search escapes \, \| \$ and \\.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
