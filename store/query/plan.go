// Package query holds what the search layer and the storage engines agree
// on: the search values of a resource version (Index), extracted and
// normalised by fhir/search when a resource is written, and the search plan
// (Query) it compiles FHIR search parameters into, which engines execute
// against those values. Match evaluates a clause in memory.
//
// It imports nothing of carefhir, so that fhir/search and store both use it
// without either importing the other; package store names its types too
// (store.Query is query.Query).
package query

import (
	"slices"
	"strings"
	"time"
)

// Query selects the current, non-deleted versions of one resource type: it
// is the backend-neutral search plan that the search layer compiles FHIR
// search parameters into and that engines execute.
type Query struct {
	Type  string
	Where []Clause // all must hold (AND)
	Count int      // at most this many results; 0 means no limit

	// Sort orders the results by these keys, then by id; empty means by id.
	Sort []SortKey
	// Cursor continues a search after the page that returned it.
	Cursor string
	// Total asks for the number of matches over all pages.
	Total Total
	// Include and RevInclude add the resources that matches reference, or
	// that reference matches, to a page (store.Page.Included).
	Include    []Include
	RevInclude []Include
	// IDsOnly asks for which resources match, not what they hold: the
	// matches carry their type, id and version, JSON nil and LastUpdated
	// zero, which spares the engine reading every body when an operation
	// goes through a population. Included resources are whole.
	IDsOnly bool
	// Unordered asks for the matches in whatever order the engine finds
	// them cheapest, for a caller that reads them all and orders nothing
	// by them (an operation going through a population). Cursors work as
	// for any search; with Sort set it has no effect.
	Unordered bool
}

// Clause holds when any of its matches holds (OR) for its parameter. A
// clause carries one kind of match (Tokens, Strings, Dates, Numbers,
// Quantities, References, URIs or Composites), or is a Presence test, a
// Chain, a Has or an Any. The parameter "_id" matches the resource id against the
// Code of Tokens; "_lastUpdated" matches Dates against the version's
// lastUpdated.
type Clause struct {
	Param  string
	Tokens []TokenMatch
	// Not inverts the clause: it holds when none of its matches holds,
	// including when the parameter has no value (token :not).
	Not        bool
	Presence   Presence
	Strings    []StringMatch
	Dates      []DateMatch
	Numbers    []NumberMatch
	Quantities []QuantityMatch
	References []ReferenceMatch
	URIs       []URIMatch
	Composites []CompositeMatch
	// Chain holds when the parameter, a reference, points to a resource that
	// the chained query selects.
	Chain *Chain
	// Has holds when a resource that Has selects references this one.
	Has *Has
	// Any holds when any of its clauses holds, whatever their parameters
	// (e.g. a compartment: subject or performer is the Patient).
	Any []Clause
}

// TokenMatch matches a Token of the clause's parameter. The FHIR forms map
// as: "system|code" (both set), "|code" (System "" and not AnySystem), "code"
// (AnySystem), "system|" (AnyCode).
type TokenMatch struct {
	System    string
	AnySystem bool
	Code      string
	AnyCode   bool
}

// Presence tests whether a parameter has a value (:missing).
type Presence int

// The presence tests.
const (
	PresenceAny Presence = iota // no test
	Missing                     // :missing=true: the parameter has no value
	Present                     // :missing=false: it has at least one
)

// Prefix is the comparator of an ordered search value (FHIR R4 search,
// 3.1.1.4.6).
type Prefix string

// The prefixes of ordered values.
const (
	Eq Prefix = "eq"
	Ne Prefix = "ne"
	Gt Prefix = "gt"
	Lt Prefix = "lt"
	Ge Prefix = "ge"
	Le Prefix = "le"
	Sa Prefix = "sa"
	Eb Prefix = "eb"
	Ap Prefix = "ap"
)

// StringMode is how a string match compares.
type StringMode int

// The string modes.
const (
	StringPrefix   StringMode = iota // the normalised value starts with Value
	StringExact                      // the value as written equals Value
	StringContains                   // the normalised value contains Value
)

// StringMatch matches a String of the clause's parameter.
type StringMatch struct {
	Mode  StringMode
	Value string // normalised, but as written for StringExact
}

// DateMatch compares a Date of the parameter, by Prefix, with [Low, High]:
// the range of the search value at its precision, both ends included. For
// Ap the range comes widened already, and a value matches when it overlaps.
//
// Prefix semantics on a value [lo, hi]: Eq lo >= Low and hi <= High; Gt
// hi > High; Lt lo < Low; Ge hi >= Low; Le lo <= High; Sa lo > High; Eb
// hi < Low; Ap lo <= High and hi >= Low. Ne is not a prefix of a plan: the
// parser writes it as an Lt and a Gt match of the same range.
type DateMatch struct {
	Prefix    Prefix
	Low, High time.Time
}

// NumberMatch compares a Number of the parameter with a search value: Value,
// and [Low, High), the range its precision implies (for Ap, widened).
//
// Prefix semantics on a value v: Eq and Ap Low <= v < High; Gt and Sa
// v > Value; Lt and Eb v < Value; Ge v >= Value; Le v <= Value. R4 ignores
// the search value's precision for gt, lt, ge, le, sa and eb: they compare
// with Value exactly, and only eq, ne and ap use [Low, High). Ne is not a
// prefix of a plan: the parser writes it as Lt Low and Ge High.
//
// On the interval [lo, hi] of a Range, as on a date's: Eq Low <= lo and
// hi < High (the search range contains it); Gt hi > Value; Lt lo < Value;
// Ge hi >= Value; Le lo <= Value; Sa lo > Value (it starts after); Eb hi <
// Value (it ends before); Ap lo < High and hi >= Low (they overlap). A
// number or a Quantity is the interval [v, v], where these are the
// semantics above.
type NumberMatch struct {
	Prefix    Prefix
	Value     float64
	Low, High float64
}

// QuantityMatch is a NumberMatch on a Quantity, restricted to a unit when
// Code is set: System and Code equal, or, with System "", Code equals the
// quantity's code or its displayed unit.
type QuantityMatch struct {
	NumberMatch
	System string
	Code   string
	// Ranges is set when the parameter's values may be Ranges, whose high
	// ends an engine then looks at too.
	Ranges bool
}

// ReferenceMatch matches a Reference of the parameter: by URL when set, else
// by Type and ID, else by Type alone: any reference to a resource of Type
// (the Patient-level export keeps what refers to some Patient; a search
// value always names an id). A search by id alone is one match for each
// type the parameter can refer to: references are stored by type and id
// only (see Reference.Keys).
type ReferenceMatch struct {
	Type string
	ID   string
	URL  string
}

// URIMode is how a uri match compares.
type URIMode int

// The uri modes.
const (
	URIExact URIMode = iota
	URIBelow         // the value starts with the search value
	URIAbove         // the search value starts with the value
)

// URIMatch matches a URI of the parameter.
type URIMatch struct {
	Mode  URIMode
	Value string
}

// CompositeMatch matches a Composite of the parameter with equal Parts and,
// when set, a Quantity or Date that meets Quantity or Date. With Prefix,
// the last of Parts, a string, need only start the Composite's last part,
// as a string parameter's value starts a string (R4 search.html: each part
// of a composite is matched as its type is).
type CompositeMatch struct {
	Parts    []string
	Prefix   bool
	Quantity *QuantityMatch
	Date     *DateMatch
}

// Chain is a chained search: the referenced resource is of one of Types and
// matches Where.
type Chain struct {
	Types []string
	Where []Clause
}

// Has is a reverse chain (_has): a resource of Type that matches Where
// references the searched resource through its parameter Param.
type Has struct {
	Type  string
	Param string
	Where []Clause
}

// SortKey orders results by a parameter: ascending by each resource's
// smallest value, descending by its largest (for dates, the start and the end
// of their ranges). A resource without a value sorts below every value: first
// ascending, last descending. "_id" and "_lastUpdated" sort by the
// resource's own. Ties are broken by id, ascending.
type SortKey struct {
	Param string
	Desc  bool
}

// Total is how a search counts its matches.
type Total int

// The totals.
const (
	TotalNone     Total = iota // no count
	TotalEstimate              // a count the engine may estimate
	TotalAccurate              // the exact number of matches
)

// The bounds on what includes add to one page, which every engine and the
// server's own includes (bundled definitions) keep: resources included,
// and rounds of :iterate includes, the first counted.
const (
	MaxIncluded      = 1000
	MaxIncludeRounds = 4
)

// Include names references to follow from a page's resources. As an
// Include: parameter Param ("*" for all) of the page's resources of Type,
// to resources of Target if set. As a RevInclude: resources of Type whose
// parameter Param references a page's resource (of Target, if set); Param
// is always one parameter (the search parser expands _revinclude=Type:*
// into each).
// Iterate applies the rule to the included resources too.
//
// Canonical names the types, of those Param may refer to (Target alone
// when set), whose resources Param's canonical urls name by their url
// search value: "url|version" the resources of that url and version
// search value, "url" every resource of that url. As a RevInclude, a
// resource of Type refers so to a page's resource of those types by its
// url with its version, or by its url alone when it names no version of
// that url in Param. The search parser sets it for the parameters whose
// elements are canonicals; without it only Type/id references are
// followed.
type Include struct {
	Type      string
	Param     string
	Target    string
	Iterate   bool
	Canonical []string
}

// canonicalKey splits the stored form of a reference (see Reference.Keys)
// that may be a canonical url into its url and version ("" for none); ok
// is false for a reference by Type/id.
func canonicalKey(key string) (url, version string, ok bool) {
	ref, ok := strings.CutPrefix(key, RefURL)
	if !ok {
		return "", "", false
	}
	if i := strings.LastIndexByte(ref, '|'); i > 0 && i < len(ref)-1 {
		return ref[:i], ref[i+1:], true
	}
	return ref, "", true
}

// CanonicalKeys returns the canonical urls that the stored reference keys
// of one resource's parameter name, as url and version ("" for none). A
// canonical naming a version is also stored by its url alone (see
// fhir/search), which is left out here when the keys hold the url with a
// version: it then stands for that version, not for every one.
func CanonicalKeys(keys []string) (urls, versions []string) {
	for _, k := range keys {
		url, version, ok := canonicalKey(k)
		if ok && (version != "" || !slices.ContainsFunc(keys, func(o string) bool { return versioning(o, k) })) {
			urls, versions = append(urls, url), append(versions, version)
		}
	}
	return urls, versions
}

// versioning reports whether the stored reference key holds the url of
// the key plain with a version: it starts with plain and '|', and goes on.
func versioning(key, plain string) bool {
	return len(key) > len(plain)+1 && strings.HasPrefix(key, plain) && key[len(plain)] == '|'
}

// Bound is one comparison a value must pass: Op ("<", "<=", ">" or ">=")
// against At, on the value's High end or its low end (numbers have one).
type Bound struct {
	High bool
	Op   string
	At   any // time.Time for dates, float64 for numbers
}

// Bounds returns the comparisons that together say m on a date value.
func (m DateMatch) Bounds() []Bound {
	switch m.Prefix {
	case Gt:
		return []Bound{{true, ">", m.High}}
	case Lt:
		return []Bound{{false, "<", m.Low}}
	case Ge:
		return []Bound{{true, ">=", m.Low}}
	case Le:
		return []Bound{{false, "<=", m.High}}
	case Sa:
		return []Bound{{false, ">", m.High}}
	case Eb:
		return []Bound{{true, "<", m.Low}}
	case Ap:
		return []Bound{{false, "<=", m.High}, {true, ">=", m.Low}}
	}
	return []Bound{{false, ">=", m.Low}, {true, "<=", m.High}}
}

// Bounds returns the comparisons that together say m on a number, or on
// the ends of a Range's interval (a number's ends are the number).
func (m NumberMatch) Bounds() []Bound {
	switch m.Prefix {
	case Gt:
		return []Bound{{true, ">", m.Value}}
	case Sa:
		return []Bound{{false, ">", m.Value}}
	case Lt:
		return []Bound{{false, "<", m.Value}}
	case Eb:
		return []Bound{{true, "<", m.Value}}
	case Ge:
		return []Bound{{true, ">=", m.Value}}
	case Le:
		return []Bound{{false, "<=", m.Value}}
	case Ap:
		return []Bound{{false, "<", m.High}, {true, ">=", m.Low}}
	}
	return []Bound{{false, ">=", m.Low}, {true, "<", m.High}}
}

// Iterates reports whether q has an :iterate include or revinclude, which
// follow what earlier rounds added.
func (q *Query) Iterates() bool {
	for _, inc := range append(slices.Clip(q.Include), q.RevInclude...) {
		if inc.Iterate {
			return true
		}
	}
	return false
}

// Reads returns the types whose resources a search of q reads, each once:
// its own, and those its chains, _has, includes and revincludes reach;
// all is true when it may read any type (a search of no one type, a chain
// naming no type, an include of any target, an :iterate include or
// revinclude), and then types is nil. A write of none of them changes
// nothing the search finds.
func (q *Query) Reads() (types []string, all bool) {
	if q.Type == "" || q.Iterates() {
		return nil, true
	}
	types = []string{q.Type}
	add := func(t string) {
		if !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	var walk func(cs []Clause) bool
	walk = func(cs []Clause) bool {
		for _, c := range cs {
			if c.Chain != nil {
				if len(c.Chain.Types) == 0 {
					return false
				}
				for _, t := range c.Chain.Types {
					add(t)
				}
				if !walk(c.Chain.Where) {
					return false
				}
			}
			if c.Has != nil {
				if c.Has.Type == "" {
					return false
				}
				add(c.Has.Type)
				if !walk(c.Has.Where) {
					return false
				}
			}
			if !walk(c.Any) {
				return false
			}
		}
		return true
	}
	if !walk(q.Where) {
		return nil, true
	}
	for _, inc := range q.Include {
		if inc.Type == "" || inc.Target == "" {
			return nil, true // the references followed may be to any type
		}
		add(inc.Type)
		add(inc.Target)
	}
	for _, inc := range q.RevInclude {
		if inc.Type == "" {
			return nil, true
		}
		add(inc.Type) // the resources referring to the page's
	}
	return types, false
}
