package search

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"

	"carefhir/fhir/definitions"
	"carefhir/fhir/fhirpath"
	"carefhir/store/query"
)

// Param is one search parameter of one resource type, from its official
// SearchParameter definition.
type Param struct {
	Code string // the name used in queries, e.g. "birthdate"
	URL  string // the canonical URL of the definition
	// Type is the parameter type: number, date, string, token, reference,
	// composite, quantity or uri.
	Type string
	// Expression is the FHIRPath expression that selects the values, cut
	// down to the resource type's own terms for multi-base definitions.
	Expression string
	Targets    []string    // reference: the resource types it may point to
	Components []Component // composite: its parts, in order
	// identifiers is whether a token parameter searches Identifiers, the
	// values :of-type matches by their type.
	identifiers bool
	// codes is whether a token parameter searches elements of type code,
	// whose values carry no system: it is that of the value set they are
	// bound to.
	codes bool
	// canonicals is whether a reference parameter searches elements of
	// type canonical, which name resources by their url.
	canonicals bool
}

// Component is one part of a composite parameter.
type Component struct {
	Definition string // URL of the component's SearchParameter
	Type       string // that parameter's type
	Expression string // relative to the composite's element
}

// Skipped is a definition the registry leaves out, and why.
type Skipped struct {
	ID, Reason string
}

// Registry holds the search parameters of the served resource types and
// the Patient compartment, built once at start-up from the official R4
// definitions. It is read-only after Load and safe for concurrent use.
type Registry struct {
	params      map[string]map[string]*Param // type → code → parameter
	compartment map[string][]string          // type → parameters linking to the Patient
	terms       Terminology                  // for :in, :not-in, :above and :below; may be nil
	// Skipped lists the definitions not served, with the reason.
	Skipped []Skipped
}

// skips are definitions of the vendored set that are not served.
var skips = map[string]string{
	// The vendored file carries this definition in version 5.0.0-snapshot1;
	// its expression names DeviceDefinition.classification, which R4 lacks.
	"DeviceDefinition-classification": "R5 definition (5.0.0-snapshot1): DeviceDefinition.classification is not an R4 element",
}

// common are the parameters of every resource type (base Resource) that
// have an expression and so can be indexed.
var common = []string{"_id", "_lastUpdated", "_profile", "_security", "_source", "_tag"}

type definition struct {
	ID         string   `json:"id"`
	URL        string   `json:"url"`
	Code       string   `json:"code"`
	Base       []string `json:"base"`
	Type       string   `json:"type"`
	Expression string   `json:"expression"`
	Target     []string `json:"target"`
	Component  []struct {
		Definition string `json:"definition"`
		Expression string `json:"expression"`
	} `json:"component"`
}

// Load builds the registry of the given resource types from the definitions
// embedded in package fhir/definitions.
func Load(types []string) (*Registry, error) {
	return LoadFS(definitions.FS, types)
}

// LoadFS builds the registry of the given resource types from
// search-parameters.json.gz and compartmentdefinition-patient.json in fsys.
func LoadFS(fsys fs.FS, types []string) (*Registry, error) {
	defs, err := readDefinitions(fsys)
	if err != nil {
		return nil, err
	}
	byURL := map[string]*definition{}
	for _, d := range defs {
		byURL[d.URL] = d
	}
	r := &Registry{params: map[string]map[string]*Param{}, compartment: map[string][]string{}}
	for _, t := range types {
		r.params[t] = map[string]*Param{}
	}
	for _, d := range defs {
		if reason, ok := skips[d.ID]; ok {
			r.Skipped = append(r.Skipped, Skipped{d.ID, reason})
			continue
		}
		if err := r.add(d, byURL, types); err != nil {
			return nil, err
		}
	}
	if err := r.loadCompartment(fsys); err != nil {
		return nil, err
	}
	return r, nil
}

// add serves definition d on the types of its bases that are served,
// skipping (and listing in Skipped) what cannot be indexed. byURL holds
// the definitions its components may name.
func (r *Registry) add(d *definition, byURL map[string]*definition, types []string) error {
	var bases []string
	for _, b := range d.Base {
		switch {
		case b == "Resource" || b == "DomainResource":
			if !slices.Contains(common, d.Code) {
				r.Skipped = append(r.Skipped, Skipped{d.ID, "no FHIRPath expression: not indexable"})
				break
			}
			bases = append(bases, types...)
		case r.Served(b):
			bases = append(bases, b)
		}
	}
	if len(bases) == 0 {
		return nil
	}
	switch {
	case d.Type == "special":
		r.Skipped = append(r.Skipped, Skipped{d.ID, "type special (geographic proximity) is not supported"})
		return nil
	case d.Expression == "":
		r.Skipped = append(r.Skipped, Skipped{d.ID, "no FHIRPath expression: not indexable"})
		return nil
	}
	for _, b := range bases {
		expr := ownTerms(d.Expression, b)
		if slices.Contains(common, d.Code) {
			// Resource.meta.tag on a Patient is Patient.meta.tag: name the
			// type itself, which every evaluator knows.
			expr = strings.ReplaceAll(expr, "Resource.", b+".")
		}
		p := &Param{Code: d.Code, URL: d.URL, Type: d.Type, Expression: expr, Targets: d.Target}
		p.identifiers = p.Type == "token" && selectsIdentifiers(expr)
		p.codes = p.Type == "token" && selectsCodes(expr)
		p.canonicals = p.Type == "reference" && selectsCanonicals(expr)
		for _, c := range d.Component {
			cd, ok := byURL[c.Definition]
			if !ok {
				return fmt.Errorf("search: %s: component %s is not defined", d.ID, c.Definition)
			}
			p.Components = append(p.Components, Component{Definition: c.Definition, Type: cd.Type, Expression: c.Expression})
		}
		r.params[b][d.Code] = p
	}
	return nil
}

// Define serves the SearchParameter in raw (JSON) beside the official
// ones: a parameter a host defines for its own extensions. A definition
// that cannot be served as it says (no base served here, no expression, a
// code another parameter of a base has, a composite) is an error, so that
// no search of it is answered from an index that lacks it. It must be
// called before the registry is shared.
func (r *Registry) Define(raw []byte) error {
	var d struct {
		ResourceType string `json:"resourceType"`
		definition
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return fmt.Errorf("search: define a search parameter: %w", err)
	}
	switch {
	case d.ResourceType != "SearchParameter":
		return fmt.Errorf("search: define a search parameter: a %s is not a SearchParameter", d.ResourceType)
	case d.Code == "" || d.URL == "" || d.Expression == "":
		return fmt.Errorf("search: define %s: a code, a url and an expression are needed", d.URL)
	case d.Type == "special" || d.Type == "composite" || len(d.Component) > 0:
		return fmt.Errorf("search: define %s: a parameter of type %s is not served for a host", d.URL, d.Type)
	}
	for _, b := range d.Base {
		if !r.Served(b) {
			return fmt.Errorf("search: define %s: its base %s is not served", d.URL, b)
		}
		if _, ok := r.params[b][d.Code]; ok {
			return fmt.Errorf("search: define %s: %s already has a parameter %s", d.URL, b, d.Code)
		}
	}
	if len(d.Base) == 0 {
		return fmt.Errorf("search: define %s: it has no base", d.URL)
	}
	return r.add(&d.definition, nil, nil)
}

func readDefinitions(fsys fs.FS) ([]*definition, error) {
	var bundle struct {
		Entry []struct {
			Resource *definition `json:"resource"`
		} `json:"entry"`
	}
	if err := definitions.DecodeJSON(fsys, "search-parameters.json.gz", &bundle); err != nil {
		return nil, fmt.Errorf("search: load definitions: %w", err)
	}
	defs := make([]*definition, 0, len(bundle.Entry))
	for _, e := range bundle.Entry {
		if e.Resource != nil {
			defs = append(defs, e.Resource)
		}
	}
	return defs, nil
}

func (r *Registry) loadCompartment(fsys fs.FS) error {
	b, err := fs.ReadFile(fsys, "compartmentdefinition-patient.json")
	if err != nil {
		return fmt.Errorf("search: load Patient compartment: %w", err)
	}
	var def struct {
		Resource []struct {
			Code  string   `json:"code"`
			Param []string `json:"param"`
		} `json:"resource"`
	}
	if err := json.Unmarshal(b, &def); err != nil {
		return fmt.Errorf("search: load Patient compartment: %w", err)
	}
	for _, res := range def.Resource {
		if _, ok := r.params[res.Code]; ok && len(res.Param) > 0 {
			r.compartment[res.Code] = res.Param
		}
	}
	return nil
}

// ownTerms returns the union terms of a multi-base expression that apply to
// typ, so that a CarePlan evaluates "CarePlan.period" and not the sixteen
// other resources' terms of clinical-date. Terms of an unknown shape are
// all kept: evaluating them is correct, only slower.
func ownTerms(expr, typ string) string {
	terms := splitTop(expr, '|')
	if len(terms) == 1 {
		return expr
	}
	var own []string
	for _, t := range terms {
		head := strings.TrimLeft(strings.TrimSpace(t), "(")
		name := head
		if i := strings.IndexAny(head, ". )"); i >= 0 {
			name = head[:i]
		}
		if !isTypeName(name) || name == typ || name == "Resource" || name == "DomainResource" {
			own = append(own, strings.TrimSpace(t))
		}
	}
	if len(own) == 0 {
		return expr
	}
	return strings.Join(own, " | ")
}

// selectsIdentifiers reports whether a term of expr selects an element of
// type Identifier: a path to one ("Patient.identifier") or a cast to one
// ("(Composition.relatesTo.target as Identifier)").
func selectsIdentifiers(expr string) bool {
	for _, t := range splitTop(expr, '|') {
		t = strings.TrimSpace(strings.Trim(strings.TrimSpace(t), "()"))
		if strings.HasSuffix(t, " as Identifier") || strings.HasSuffix(t, ".as(Identifier)") ||
			strings.HasSuffix(t, ".ofType(Identifier)") || slices.Contains(fhirpath.ElementTypes(t), "Identifier") {
			return true
		}
	}
	return false
}

// selectsCodes reports whether a term of expr is a path to an element of
// type code ("Patient.gender", "Observation.status").
func selectsCodes(expr string) bool {
	for _, t := range splitTop(expr, '|') {
		t = strings.TrimSpace(strings.Trim(strings.TrimSpace(t), "()"))
		if slices.Contains(fhirpath.ElementTypes(t), "code") {
			return true
		}
	}
	return false
}

// selectsCanonicals reports whether a term of expr is a path to an
// element of type canonical ("QuestionnaireResponse.questionnaire") or
// one read as a canonical ("(ConceptMap.source as canonical)").
func selectsCanonicals(expr string) bool {
	for _, t := range splitTop(expr, '|') {
		t = strings.TrimSpace(strings.Trim(strings.TrimSpace(t), "()"))
		if strings.HasSuffix(t, " as canonical") || slices.Contains(fhirpath.ElementTypes(t), "canonical") {
			return true
		}
	}
	return false
}

// canonicalTargets returns the types whose resources inc follows by
// canonical url (query.Include.Canonical): of the types its parameter may
// refer to, or its Target, those with a url parameter, when the parameter
// searches canonicals.
func (r *Registry) canonicalTargets(inc query.Include) []string {
	sp, ok := r.Param(inc.Type, inc.Param)
	if !ok || !sp.canonicals {
		return nil
	}
	var out []string
	for _, t := range r.targets(sp) {
		if (inc.Target == "" || inc.Target == t) && r.hasURL(t) {
			out = append(out, t)
		}
	}
	return out
}

// hasURL reports whether typ has a url parameter on its canonical url.
func (r *Registry) hasURL(typ string) bool {
	sp, ok := r.Param(typ, "url")
	return ok && sp.Type == "uri" && sp.Expression == typ+".url"
}

// splitTop splits s at sep outside parentheses and quotes.
func splitTop(s string, sep byte) []string {
	var out []string
	depth, start := 0, 0
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '\'':
			quoted = !quoted
		case quoted:
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == sep && depth == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// versioned reports whether code is a parameter of typ on its canonical
// url, the type having a version parameter too (ValueSet url, CodeSystem
// system): a value "url|version" searches both.
func (r *Registry) versioned(typ, code string) bool {
	sp, ok := r.Param(typ, code)
	if !ok || sp.Type != "uri" || sp.Expression != typ+".url" {
		return false
	}
	v, ok := r.Param(typ, "version")
	return ok && v.Type == "token"
}

// Restrict keeps, of the parameters of typ, only those named in codes and
// the parameters common to every type: a host that writes resources of typ
// itself (the audit trail) indexes them on fewer parameters, and the
// parameters it leaves out are then unknown to searches too, never
// answered from an incomplete index. It must be called before the
// registry is shared.
func (r *Registry) Restrict(typ string, codes []string) {
	for code := range r.params[typ] {
		if !slices.Contains(codes, code) && !slices.Contains(common, code) {
			delete(r.params[typ], code)
		}
	}
}

// Param returns the search parameter code of resource type typ.
func (r *Registry) Param(typ, code string) (*Param, bool) {
	p, ok := r.params[typ][code]
	return p, ok
}

// Params returns the search parameters of typ, sorted by code.
func (r *Registry) Params(typ string) []*Param {
	m := r.params[typ]
	out := make([]*Param, 0, len(m))
	for _, c := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[c])
	}
	return out
}

// Types returns the resource types the registry serves, sorted.
func (r *Registry) Types() []string {
	return slices.Sorted(maps.Keys(r.params))
}

// Served reports whether typ is a served resource type.
func (r *Registry) Served(typ string) bool {
	_, ok := r.params[typ]
	return ok
}

// CompartmentParams returns the parameters of typ through which a resource
// belongs to a Patient's compartment; none when typ is not in it.
func (r *Registry) CompartmentParams(typ string) []string {
	return r.compartment[typ]
}

// Subtypes of the Resource hierarchy that stand in for "any type" as a
// reference target.
func (r *Registry) targets(p *Param) []string {
	if p.targetsAny() {
		return r.Types()
	}
	var out []string
	for _, t := range p.Targets {
		if r.Served(t) {
			out = append(out, t)
		}
	}
	return out
}

// targetsAny reports whether p may refer to a resource of any type.
func (p *Param) targetsAny() bool {
	return slices.ContainsFunc(p.Targets, func(t string) bool { return t == "Resource" || t == "Any" })
}
