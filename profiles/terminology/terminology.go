// Package terminology answers questions about the ValueSets and CodeSystems
// bundled with the server: expansion ($expand), membership ($validate-code)
// and concept lookup ($lookup), following
// https://hl7.org/fhir/R4/terminology-module.html.
//
// External code systems (SNOMED CT, LOINC, UCUM, dm+d, ...) are not bundled.
// A ValueSet that draws on one without listing its codes cannot be expanded;
// its membership questions are answered with ErrNotComputable rather than a
// guess.
package terminology

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Errors returned by Terminology methods.
var (
	// ErrNotFound reports a ValueSet or CodeSystem that is not bundled.
	ErrNotFound = errors.New("terminology: not found")
	// ErrNotComputable reports a ValueSet whose content depends on a code
	// system or filter that is not available here.
	ErrNotComputable = errors.New("terminology: value set cannot be computed from the bundled code systems")
	// ErrCodeSystemUnavailable reports a code that cannot be looked up
	// because its CodeSystem does not list all its codes here (SNOMED CT,
	// LOINC... are bundled as definitions without content).
	ErrCodeSystemUnavailable = errors.New("terminology: code system not available here")
	// ErrUnknownCode reports a code a bundled CodeSystem does not define.
	ErrUnknownCode = errors.New("terminology: unknown code")
	// ErrTooCostly reports a ValueSet whose expansion would go through
	// more than MaxVisits codes.
	ErrTooCostly = errors.New("terminology: value set too costly to expand")
)

// MaxVisits bounds the codes the expansion of one ValueSet goes through,
// summed over its includes and excludes (a whole code system, the codes
// listed, the ValueSets imported), so that a ValueSet naming a large code
// system many times cannot hold a core for minutes. A ValueSet it imports
// is bounded on its own, and expanded once.
const MaxVisits = 1_000_000

// visits counts the codes one expansion goes through.
type visits struct {
	url string
	n   int
}

// add counts n more codes, failing beyond MaxVisits.
func (v *visits) add(n int) error {
	v.n += n
	if v.n > MaxVisits {
		return fmt.Errorf("%w: the expansion of %s goes through more than %d codes", ErrTooCostly, v.url, MaxVisits)
	}
	return nil
}

// Concept is one code of a code system.
type Concept struct {
	System  string
	Version string
	Code    string
	Display string
	// Inactive reports a concept the code system no longer considers
	// active: property inactive true, or status retired
	// (https://hl7.org/fhir/R4/codesystem-concept-properties.html; a
	// deprecated concept is still active).
	Inactive bool
	// Abstract reports a concept that is not meant to be chosen (property
	// notSelectable true, or abstract in a ValueSet's expansion): it
	// groups others.
	Abstract bool
	// Designations are the concept's other representations: those the
	// ValueSet gives, then the CodeSystem's.
	Designations []Designation
}

// Expansion is the content of a ValueSet: every code it holds.
type Expansion struct {
	URL      string
	Name     string
	Contains []Concept
}

// Terminology is a read-only set of ValueSets and CodeSystems. It is safe for
// concurrent use; expansions are computed once, on first use.
type Terminology struct {
	valueSets   map[string]*valueSet
	codeSystems map[string]*codeSystem
	expansions  sync.Map // url → *expansionResult
}

type expansionResult struct {
	exp *Expansion
	err error
	set map[string]bool // system|code and |code keys
	// folded indexes in exp.Contains the codes of the code systems that
	// are not case sensitive, by system|code and |code in lower case.
	folded map[string]int
}

type valueSet struct {
	URL     string `json:"url"`
	Name    string `json:"name"`
	Version string `json:"version"`
	Compose struct {
		// Inactive false leaves inactive concepts out of the value set.
		Inactive *bool     `json:"inactive"`
		Include  []include `json:"include"`
		Exclude  []include `json:"exclude"`
	} `json:"compose"`
	Expansion struct {
		Contains []containsEntry `json:"contains"`
	} `json:"expansion"`
}

type containsEntry struct {
	System      string          `json:"system"`
	Version     string          `json:"version"`
	Code        string          `json:"code"`
	Display     string          `json:"display"`
	Inactive    bool            `json:"inactive"`
	Abstract    bool            `json:"abstract"`
	Designation []Designation   `json:"designation"`
	Contains    []containsEntry `json:"contains"`
}

type include struct {
	System   string   `json:"system"`
	Version  string   `json:"version"`
	ValueSet []string `json:"valueSet"`
	Concept  []struct {
		Code        string        `json:"code"`
		Display     string        `json:"display"`
		Designation []Designation `json:"designation"`
	} `json:"concept"`
	Filter []struct {
		Property string `json:"property"`
		Op       string `json:"op"`
		Value    string `json:"value"`
	} `json:"filter"`
}

type codeSystem struct {
	URL     string `json:"url"`
	Version string `json:"version"`
	Content string `json:"content"`
	// CaseSensitive false has codes that differ only in case name the
	// same concept; nil says nothing, and codes are compared exactly.
	CaseSensitive *bool     `json:"caseSensitive"`
	Concept       []concept `json:"concept"`

	codes  map[string]*concept
	parent map[string]string
	// folded holds the concepts by their code in lower case when the
	// code system is not case sensitive.
	folded map[string]*concept
}

type concept struct {
	Code        string            `json:"code"`
	Display     string            `json:"display"`
	Designation []Designation     `json:"designation"`
	Concept     []concept         `json:"concept"`
	Property    []conceptProperty `json:"property"`
}

// conceptProperty is one property of a concept, its value of whichever
// type it has.
type conceptProperty struct {
	Code          string `json:"code"`
	ValueCode     string `json:"valueCode"`
	ValueBoolean  *bool  `json:"valueBoolean"`
	ValueString   string `json:"valueString"`
	ValueDateTime string `json:"valueDateTime"`
	// Numbers are kept as written, so they compare as the filter's text.
	ValueInteger json.Number `json:"valueInteger"`
	ValueDecimal json.Number `json:"valueDecimal"`
	ValueCoding  *struct {
		Code string `json:"code"`
	} `json:"valueCoding"`
}

// value returns the property's value as text (a Coding's code).
func (p conceptProperty) value() string {
	switch {
	case p.ValueBoolean != nil:
		return strconv.FormatBool(*p.ValueBoolean)
	case p.ValueCoding != nil:
		return p.ValueCoding.Code
	}
	return cmp.Or(p.ValueCode, p.ValueString, p.ValueDateTime, p.ValueInteger.String(), p.ValueDecimal.String())
}

// values returns the values the concept has for property: for concept and
// code, the code; for display, its display; else those of the concept's
// properties with that code.
func (c *concept) values(property string) []string {
	switch property {
	case "concept", "code":
		return []string{c.Code}
	case "display":
		if c.Display == "" {
			return nil
		}
		return []string{c.Display}
	}
	var out []string
	for _, p := range c.Property {
		if p.Code == property {
			out = append(out, p.value())
		}
	}
	return out
}

// inactive reports whether the concept is inactive: property inactive
// true, or status retired (or inactive). A deprecated concept is active:
// "Concepts that are deprecated but not inactive can still be used"
// (https://hl7.org/fhir/R4/codesystem-concept-properties.html).
func (c *concept) inactive() bool {
	for _, p := range c.Property {
		switch {
		case p.Code == "inactive" && p.ValueBoolean != nil && *p.ValueBoolean,
			p.Code == "status" && (p.ValueCode == "retired" || p.ValueCode == "inactive"):
			return true
		}
	}
	return false
}

// notSelectable reports whether the concept is abstract: property
// notSelectable true
// (https://hl7.org/fhir/R4/codesystem-concept-properties.html).
func (c *concept) notSelectable() bool {
	return slices.ContainsFunc(c.Property, func(p conceptProperty) bool {
		return p.Code == "notSelectable" && p.ValueBoolean != nil && *p.ValueBoolean
	})
}

// of returns c as a Concept of cs.
func (c *concept) of(cs *codeSystem, system string) Concept {
	return Concept{System: system, Version: cs.Version, Code: c.Code, Display: c.Display, Inactive: c.inactive(), Abstract: c.notSelectable(), Designations: c.Designation}
}

// New returns a Terminology holding the ValueSet and CodeSystem resources
// given as JSON. Other resource types are ignored.
func New(resources []json.RawMessage) (*Terminology, error) {
	t := &Terminology{valueSets: map[string]*valueSet{}, codeSystems: map[string]*codeSystem{}}
	for _, raw := range resources {
		var head struct {
			ResourceType string `json:"resourceType"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			return nil, fmt.Errorf("terminology: %w", err)
		}
		switch head.ResourceType {
		case "ValueSet":
			vs := new(valueSet)
			if err := json.Unmarshal(raw, vs); err != nil {
				return nil, fmt.Errorf("terminology: ValueSet: %w", err)
			}
			t.valueSets[vs.URL] = vs
		case "CodeSystem":
			cs := new(codeSystem)
			if err := json.Unmarshal(raw, cs); err != nil {
				return nil, fmt.Errorf("terminology: CodeSystem: %w", err)
			}
			cs.index()
			t.codeSystems[cs.URL] = cs
		}
	}
	return t, nil
}

func (cs *codeSystem) index() {
	cs.codes = map[string]*concept{}
	cs.parent = map[string]string{}
	if cs.caseInsensitive() {
		cs.folded = map[string]*concept{}
	}
	var walk func(cs2 []concept, parent string)
	walk = func(list []concept, parent string) {
		for i := range list {
			c := &list[i]
			cs.codes[c.Code] = c
			if cs.caseInsensitive() {
				cs.folded[strings.ToLower(c.Code)] = c
			}
			if parent != "" {
				cs.parent[c.Code] = parent
			}
			for _, p := range c.Property {
				if p.Code == "parent" || p.Code == "subsumedBy" {
					cs.parent[c.Code] = p.ValueCode
				}
			}
			walk(c.Concept, c.Code)
		}
	}
	walk(cs.Concept, "")
}

// caseInsensitive reports whether the CodeSystem says its codes are not
// case sensitive (https://hl7.org/fhir/R4/codesystem-definitions.html#CodeSystem.caseSensitive).
func (cs *codeSystem) caseInsensitive() bool {
	return cs.CaseSensitive != nil && !*cs.CaseSensitive
}

// concept returns the concept code names, nil when there is none: the one
// with that code, else in a code system that is not case sensitive the one
// whose code differs only in case.
func (cs *codeSystem) concept(code string) *concept {
	if c := cs.codes[code]; c != nil || cs.folded == nil {
		return c
	}
	return cs.folded[strings.ToLower(code)]
}

// complete reports whether the CodeSystem lists all its codes.
func (cs *codeSystem) complete() bool { return cs.Content == "" || cs.Content == "complete" }

// descends reports whether code is ancestor or a descendant of it.
func (cs *codeSystem) descends(code, ancestor string) bool {
	for seen := 0; code != "" && seen < 100; seen++ {
		if code == ancestor {
			return true
		}
		code = cs.parent[code]
	}
	return false
}

func canonical(url string) string {
	url, _, _ = strings.Cut(url, "|")
	return url
}

// HasValueSet reports whether the ValueSet with this URL is bundled.
func (t *Terminology) HasValueSet(url string) bool {
	_, ok := t.valueSets[canonical(url)]
	return ok
}

// Expand returns every code of the ValueSet with this canonical URL (a
// version suffix is ignored): ErrNotFound when it is not bundled,
// ErrNotComputable when it draws on an unavailable code system.
func (t *Terminology) Expand(url string) (*Expansion, error) {
	r := t.expand(canonical(url), 0)
	return r.exp, r.err
}

func (t *Terminology) expand(url string, depth int) *expansionResult {
	if v, ok := t.expansions.Load(url); ok {
		return v.(*expansionResult)
	}
	if _, ok := t.valueSets[url]; !ok {
		// Not kept: the URL may come from a client (a search's code:in),
		// and every unknown one kept would hold memory for good.
		return &expansionResult{err: fmt.Errorf("%w: ValueSet %s", ErrNotFound, url)}
	}
	r := &expansionResult{}
	r.exp, r.err = t.compute(url, depth)
	if r.exp != nil {
		r.set = map[string]bool{}
		for i, c := range r.exp.Contains {
			r.set[c.System+"|"+c.Code] = true
			r.set["|"+c.Code] = true
			if cs := t.codeSystems[canonical(c.System)]; cs != nil && cs.caseInsensitive() {
				if r.folded == nil {
					r.folded = map[string]int{}
				}
				code := strings.ToLower(c.Code)
				r.folded[c.System+"|"+code] = i
				if _, ok := r.folded["|"+code]; !ok {
					r.folded["|"+code] = i
				}
			}
		}
	}
	v, _ := t.expansions.LoadOrStore(url, r)
	return v.(*expansionResult)
}

func (t *Terminology) compute(url string, depth int) (*Expansion, error) {
	if depth > 10 {
		return nil, fmt.Errorf("%w: %s includes itself", ErrNotComputable, url)
	}
	vs, ok := t.valueSets[url]
	if !ok {
		return nil, fmt.Errorf("%w: ValueSet %s", ErrNotFound, url)
	}
	exp := &Expansion{URL: url, Name: vs.Name}
	if len(vs.Compose.Include) == 0 {
		var flat func([]containsEntry)
		flat = func(list []containsEntry) {
			for _, c := range list {
				if c.Code != "" {
					exp.Contains = append(exp.Contains, Concept{System: c.System, Version: c.Version, Code: c.Code, Display: c.Display, Inactive: c.Inactive, Abstract: c.Abstract, Designations: c.Designation})
				}
				flat(c.Contains)
			}
		}
		flat(vs.Expansion.Contains)
		if len(exp.Contains) == 0 {
			return nil, fmt.Errorf("%w: ValueSet %s has no compose or expansion", ErrNotComputable, url)
		}
		return exp, nil
	}
	spent := &visits{url: url}
	excluded := map[string]bool{}
	for _, inc := range vs.Compose.Exclude {
		cs, err := t.includeSet(inc, depth, spent)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			excluded[c.System+"|"+c.Code] = true
		}
	}
	seen := map[string]bool{}
	for _, inc := range vs.Compose.Include {
		cs, err := t.includeSet(inc, depth, spent)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			k := c.System + "|" + c.Code
			if !excluded[k] && !seen[k] && (!c.Inactive || vs.inactiveIncluded()) {
				seen[k] = true
				exp.Contains = append(exp.Contains, c)
			}
		}
	}
	return exp, nil
}

// includeSet computes one compose.include (or exclude) entry, counting the
// codes it goes through in spent.
func (t *Terminology) includeSet(inc include, depth int, spent *visits) ([]Concept, error) {
	var out []Concept
	if inc.System != "" {
		cs := t.codeSystems[canonical(inc.System)]
		switch {
		case len(inc.Concept) > 0:
			if err := spent.add(len(inc.Concept)); err != nil {
				return nil, err
			}
			for _, c := range inc.Concept {
				out = append(out, enumerated(cs, inc, c.Code, c.Display, c.Designation))
			}
		case cs == nil || !cs.complete():
			return nil, fmt.Errorf("%w: code system %s is not bundled", ErrNotComputable, inc.System)
		default:
			if err := spent.add(len(cs.codes)); err != nil {
				return nil, err
			}
			codes := make([]string, 0, len(cs.codes))
			for code := range cs.codes {
				codes = append(codes, code)
			}
			sort.Strings(codes)
			match, err := compileFilters(cs, inc)
			if err != nil {
				return nil, err
			}
			for _, code := range codes {
				if match(cs.codes[code]) {
					out = append(out, cs.codes[code].of(cs, inc.System))
				}
			}
		}
	}
	for _, u := range inc.ValueSet {
		r := t.expand(canonical(u), depth+1)
		if r.err != nil {
			return nil, r.err
		}
		if err := spent.add(max(len(out), len(r.exp.Contains))); err != nil {
			return nil, err
		}
		if inc.System == "" && len(out) == 0 && u == inc.ValueSet[0] {
			out = append(out, r.exp.Contains...)
			continue
		}
		var keep []Concept
		for _, c := range out {
			if r.set[c.System+"|"+c.Code] {
				keep = append(keep, c)
			}
		}
		out = keep
	}
	return out, nil
}

// enumerated returns a concept that compose.include lists, with the
// display and designations the ValueSet gives it, then those of its code
// system (cs, nil when not held).
func enumerated(cs *codeSystem, inc include, code, display string, designations []Designation) Concept {
	out := Concept{System: inc.System, Version: inc.Version, Code: code, Display: display, Designations: designations}
	if cs == nil {
		return out
	}
	if c := cs.concept(code); c != nil {
		out.Display = cmp.Or(out.Display, c.Display)
		out.Inactive = c.inactive()
		out.Abstract = c.notSelectable()
		out.Designations = append(slices.Clip(designations), c.Designation...)
	}
	return out
}

// inactiveIncluded reports whether inactive concepts are in the value set:
// unless compose.inactive is false, they are ("generally, inactive codes
// would be expected to be included",
// https://hl7.org/fhir/R4/valueset-definitions.html#ValueSet.compose.inactive).
func (vs *valueSet) inactiveIncluded() bool {
	return vs.Compose.Inactive == nil || *vs.Compose.Inactive
}

// compileFilters returns whether a concept of cs passes every filter of
// inc (https://hl7.org/fhir/R4/valueset-filter-operator.html). The
// property concept (or code) is the code itself, display its display,
// any other a property of the concept. A regex is RE2, which runs in time
// linear in the text, and must match the whole value.
func compileFilters(cs *codeSystem, inc include) (func(*concept) bool, error) {
	var checks []func(*concept) bool
	for _, f := range inc.Filter {
		check, err := compileFilter(cs, f.Property, f.Op, f.Value)
		if err != nil {
			return nil, fmt.Errorf("%w: filter %s %s %s on %s: %w", ErrNotComputable, f.Property, f.Op, f.Value, inc.System, err)
		}
		checks = append(checks, check)
	}
	return func(c *concept) bool {
		for _, check := range checks {
			if !check(c) {
				return false
			}
		}
		return true
	}, nil
}

// errUnsupportedFilter reports a filter whose operator is not known here
// for its property.
var errUnsupportedFilter = errors.New("not supported")

func compileFilter(cs *codeSystem, property, op, value string) (func(*concept) bool, error) {
	hierarchy := property == "concept" || property == "code"
	has := func(match func(string) bool) func(*concept) bool {
		return func(c *concept) bool { return slices.ContainsFunc(c.values(property), match) }
	}
	switch {
	case hierarchy && op == "is-a":
		return func(c *concept) bool { return cs.descends(c.Code, value) }, nil
	case hierarchy && op == "descendent-of":
		return func(c *concept) bool { return c.Code != value && cs.descends(c.Code, value) }, nil
	case hierarchy && op == "is-not-a":
		return func(c *concept) bool { return !cs.descends(c.Code, value) }, nil
	case hierarchy && op == "generalizes":
		return func(c *concept) bool { return cs.descends(value, c.Code) }, nil
	case op == "=":
		return has(func(v string) bool { return v == value }), nil
	case op == "in" || op == "not-in":
		set := strings.Split(value, ",")
		for i := range set {
			set[i] = strings.TrimSpace(set[i])
		}
		in := has(func(v string) bool { return slices.Contains(set, v) })
		if op == "in" {
			return in, nil
		}
		return func(c *concept) bool { return !in(c) }, nil
	case op == "regex":
		re, err := regexp.Compile(`^(?:` + value + `)$`)
		if err != nil {
			return nil, err
		}
		return has(re.MatchString), nil
	case op == "exists" && (value == "true" || value == "false"):
		return func(c *concept) bool { return (len(c.values(property)) > 0) == (value == "true") }, nil
	}
	return nil, errUnsupportedFilter
}

// ValidateCode reports whether the ValueSet with this URL holds code in
// system (any system when system is empty), and the concept as the value
// set holds it. It returns ErrNotFound for an unknown ValueSet and
// ErrNotComputable when membership cannot be decided from the bundled code
// systems.
func (t *Terminology) ValidateCode(valueSetURL, system, code string) (ok bool, concept Concept, err error) {
	r := t.expand(canonical(valueSetURL), 0)
	if r.err != nil {
		// A code of a system the value set never draws on is outside it,
		// whether or not the systems it draws on are bundled.
		if errors.Is(r.err, ErrNotComputable) && system != "" && !t.drawsOn(canonical(valueSetURL), canonical(system), 0) {
			return false, Concept{}, nil
		}
		return false, Concept{}, r.err
	}
	if !r.set[system+"|"+code] {
		// A code of a code system that is not case sensitive is the
		// concept whose code differs only in case.
		if i, ok := r.folded[system+"|"+strings.ToLower(code)]; ok {
			return true, r.exp.Contains[i], nil
		}
		return false, Concept{}, nil
	}
	for _, c := range r.exp.Contains {
		if c.Code == code && (system == "" || c.System == system) {
			return true, c, nil
		}
	}
	return true, Concept{System: system, Code: code}, nil
}

// drawsOn reports whether the ValueSet with this URL may hold codes of
// system, from its compose alone: false only when no include names system,
// directly or through the ValueSets it includes. What cannot be told (a
// ValueSet not bundled, one defined by its expansion alone) may hold it.
func (t *Terminology) drawsOn(url, system string, depth int) bool {
	vs, ok := t.valueSets[url]
	if !ok || depth > 10 || len(vs.Compose.Include) == 0 {
		return true
	}
	for _, inc := range vs.Compose.Include {
		if inc.System != "" {
			if canonical(inc.System) == system {
				return true
			}
			continue
		}
		// An include of ValueSets holds the codes they all hold.
		all := len(inc.ValueSet) > 0
		for _, u := range inc.ValueSet {
			all = all && t.drawsOn(canonical(u), system, depth+1)
		}
		if all || len(inc.ValueSet) == 0 {
			return true
		}
	}
	return false
}

// Held is a CodeSystem held: its canonical URL and version.
type Held struct {
	URL, Version string
}

// CodeSystems returns each CodeSystem held whose concepts are held too
// (all or a fragment of them), sorted by URL: those $lookup and
// $validate-code answer from.
func (t *Terminology) CodeSystems() []Held {
	out := make([]Held, 0, len(t.codeSystems))
	for url, cs := range t.codeSystems {
		if cs.Content != "not-present" {
			out = append(out, Held{URL: url, Version: cs.Version})
		}
	}
	slices.SortFunc(out, func(a, b Held) int { return strings.Compare(a.URL, b.URL) })
	return out
}

// CodeSystemVersion returns the version of the CodeSystem with this URL;
// ok is false when it is not held.
func (t *Terminology) CodeSystemVersion(url string) (version string, ok bool) {
	cs, ok := t.codeSystems[canonical(url)]
	if !ok {
		return "", false
	}
	return cs.Version, true
}

// Lacks reports whether the bundled CodeSystem system is complete and has
// no concept code: when Lookup returns ErrUnknownCode. It builds no
// concept and no error, for the validator, which asks it of every Coding.
func (t *Terminology) Lacks(system, code string) bool {
	cs, ok := t.codeSystems[canonical(system)]
	return ok && cs.concept(code) == nil && cs.complete()
}

// Lookup returns the concept code of the bundled CodeSystem system:
// ErrNotFound when the system is not bundled, ErrUnknownCode when the
// system is complete and lacks the code, ErrCodeSystemUnavailable when it
// is not complete and lacks it.
func (t *Terminology) Lookup(system, code string) (Concept, error) {
	cs, ok := t.codeSystems[canonical(system)]
	if !ok {
		return Concept{}, fmt.Errorf("%w: CodeSystem %s", ErrNotFound, system)
	}
	c := cs.concept(code)
	if c == nil {
		if !cs.complete() {
			return Concept{}, fmt.Errorf("%w: the CodeSystem %s holds only part of its codes (content %s), not %s", ErrCodeSystemUnavailable, system, cs.Content, code)
		}
		return Concept{}, fmt.Errorf("%w: %s in %s", ErrUnknownCode, code, system)
	}
	return c.of(cs, cs.URL), nil
}
