// Package profiles validates FHIR R4 resources against StructureDefinitions:
// the R4 base definitions, the R4 core extensions, the R4 vital signs
// profiles and UK Core, plus any conformance resources given at
// construction. Validation is driven by snapshots (generated from
// differentials where a profile has none) and checks cardinality, types and
// choice types, type profiles, primitive formats, fixed and pattern values,
// minimum and maximum values, slicing, invariants (FHIRPath), bindings
// against the bundled terminology, extension contexts, reference target
// types, narrative safety, the rules of Bundles and documents, a
// QuestionnaireResponse against its Questionnaire, and the NHS England
// identifier rules. See https://hl7.org/fhir/R4/validation.html;
// docs/conformance.md measures how far it agrees with the HL7 reference
// validator.
package profiles

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"carefhir/care/calendar"
	"carefhir/fhir/definitions"
	"carefhir/fhir/fhirpath"
	"carefhir/profiles/conformance"
	"carefhir/profiles/internal/xmljson"
	"carefhir/profiles/terminology"
)

// Issue is one finding of a validation, shaped like an OperationOutcome
// issue (https://hl7.org/fhir/R4/operationoutcome.html).
type Issue struct {
	// Severity is fatal, error, warning or information.
	Severity string
	// Code is an IssueType code: structure, required, value, invariant,
	// code-invalid, not-found, business-rule, informational...
	Code string
	// Expression is the FHIRPath location of the element, such as
	// Patient.identifier[0].value.
	Expression string
	// Message is the human-readable text.
	Message string
}

// Options configure a Validator.
type Options struct {
	// Resources are further conformance resources (StructureDefinition,
	// ValueSet, CodeSystem) as JSON, loaded after the bundled ones, and
	// Questionnaires, against which a QuestionnaireResponse naming one by
	// its canonical URL is checked.
	Resources [][]byte
	// Required lists, per resource type, the profiles every resource of that
	// type must conform to, such as "Patient": {UKCore-Patient URL}.
	Required map[string][]string
	// Now is the clock of FHIRPath's now(), today() and timeOfDay() in
	// invariants; nil means time.Now.
	Now func() time.Time
	// Zone is where they are reckoned; nil means Europe/London, where
	// care coordination and the importers reckon today's date
	// (calendar.UK): an invariant such as birthDate <= today() then
	// agrees with them, whatever the zone of the host.
	Zone *time.Location
}

// Validator validates resources. It is built once by New and is safe for
// concurrent use.
type Validator struct {
	structures map[string]*structure // by canonical URL, and base types by name
	terms      *terminology.Terminology
	// termSources are the ValueSets and CodeSystems terms was built from.
	termSources []json.RawMessage
	// questionnaires holds the Questionnaires given, by canonical URL, for
	// validating QuestionnaireResponses against them.
	questionnaires map[string]map[string]any
	required       map[string][]string
	clock          func() time.Time       // the time of invariants, in their zone
	regexps        map[string]valueFormat // primitive type → check of its value pattern
	exprs          *sync.Map              // FHIRPath source → *compiled
	patterns       *sync.Map              // regex extension pattern → *regexp.Regexp
	names          *sync.Map              // type → typeNames of it, once asked for
	// xmlConverter is built on first use: only XML that the model cannot
	// hold is converted (XMLToJSON).
	xmlConverter func() (*xmljson.Converter, error)
}

// structure is a StructureDefinition with its snapshot as a tree.
type structure struct {
	sd   *StructureDefinition
	root *elem
}

type compiled struct {
	expr *fhirpath.Expression
	err  error
}

// New loads the bundled definitions and opts.Resources, generating the
// snapshots of profiles that have none.
func New(opts Options) (*Validator, error) {
	v := &Validator{structures: map[string]*structure{}, regexps: map[string]valueFormat{}, required: opts.Required, exprs: new(sync.Map), patterns: new(sync.Map), names: new(sync.Map),
		xmlConverter: sync.OnceValues(xmljson.New)}
	v.clock = calendar.Clock(opts.Now, opts.Zone)
	var all []json.RawMessage
	for _, b := range conformance.Bundles() {
		rs, err := readBundle(b.FS, b.Name)
		if err != nil {
			return nil, fmt.Errorf("profiles: %s: %w", b.Name, err)
		}
		all = append(all, rs...)
	}
	for _, r := range opts.Resources {
		all = append(all, r)
	}
	if err := v.load(all); err != nil {
		return nil, err
	}
	for name, s := range v.structures {
		if s.sd.Kind != "primitive-type" || name != s.sd.Type {
			continue
		}
		if ve := s.root.child("value"); ve != nil && len(ve.def.Type) > 0 {
			if re := ve.def.Type[0].regex(); re != "" {
				if f := compileFormat(re); f != nil {
					v.regexps[name] = f
				}
			}
		}
	}
	return v, nil
}

// load adds conformance resources: StructureDefinitions (generating the
// snapshots of profiles that have none, base first), ValueSets and
// CodeSystems, and Questionnaires.
func (v *Validator) load(all []json.RawMessage) error {
	var pending []*StructureDefinition
	terms := false
	for _, raw := range all {
		var head struct {
			ResourceType string `json:"resourceType"`
			URL          string `json:"url"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			return fmt.Errorf("profiles: decode resource: %w", err)
		}
		switch head.ResourceType {
		case "ValueSet", "CodeSystem":
			v.termSources = append(v.termSources, raw)
			terms = true
			continue
		case "Questionnaire":
			if head.URL == "" {
				continue
			}
			d := json.NewDecoder(bytes.NewReader(raw))
			d.UseNumber()
			var q map[string]any
			if err := d.Decode(&q); err != nil {
				return fmt.Errorf("profiles: decode Questionnaire: %w", err)
			}
			if v.questionnaires == nil {
				v.questionnaires = map[string]map[string]any{}
			}
			v.questionnaires[canonical(head.URL)] = q
			continue
		case "StructureDefinition":
		default:
			continue
		}
		sd := new(StructureDefinition)
		if err := json.Unmarshal(raw, sd); err != nil {
			return fmt.Errorf("profiles: decode StructureDefinition: %w", err)
		}
		if len(sd.Snapshot.Element) == 0 {
			pending = append(pending, sd)
			continue
		}
		root, err := buildTree(sd.Snapshot.Element)
		if err != nil {
			return fmt.Errorf("profiles: %s: %w", sd.URL, err)
		}
		v.mark(sd, root)
		v.add(&structure{sd: sd, root: root})
	}
	// Generate snapshots base-first: a profile waits for its base, also
	// when an older definition with the base's URL is already known.
	for len(pending) > 0 {
		waiting := map[string]bool{}
		for _, sd := range pending {
			waiting[sd.URL] = true
		}
		var next []*StructureDefinition
		for _, sd := range pending {
			base := v.structure(sd.BaseDefinition)
			if base == nil || waiting[canonical(sd.BaseDefinition)] {
				next = append(next, sd)
				continue
			}
			root, err := v.generate(sd, base.root)
			if err != nil {
				return fmt.Errorf("profiles: snapshot: %w", err)
			}
			v.mark(sd, root)
			v.add(&structure{sd: sd, root: root})
		}
		if len(next) == len(pending) {
			return fmt.Errorf("profiles: %s: base definition %s not found", next[0].URL, next[0].BaseDefinition)
		}
		pending = next
	}
	if terms {
		t, err := terminology.New(v.termSources)
		if err != nil {
			return fmt.Errorf("profiles: %w", err)
		}
		v.terms = t
	}
	return nil
}

// XMLToJSON converts a resource in FHIR R4 XML to its JSON form for
// Validate, keeping primitive values as written, so that a value the
// fhir model cannot hold (a date in month 13) is reported at its element
// as it is in JSON. It fails on XML that is not well formed, nested deeper
// than 100 elements, or holding an element its definition does not have.
func (v *Validator) XMLToJSON(data []byte) ([]byte, error) {
	conv, err := v.xmlConverter()
	if err != nil {
		return nil, fmt.Errorf("profiles: %w", err)
	}
	return conv.Convert(data)
}

// mark marks the tree of a new definition, before any validation sees it:
// the elements with no contentReference in their subtree (plain), a base
// definition's elements as such, a resource profile's elements
// that are the same as its type's base definition's (markSame).
func (v *Validator) mark(sd *StructureDefinition, root *elem) {
	markPlain(root)
	if sd.Derivation != "constraint" {
		markBase(root)
		return
	}
	if base := v.structures[sd.Type]; sd.Kind == "resource" && base != nil && base.root != root {
		v.markSame(root, base.root)
	}
}

func (v *Validator) add(s *structure) {
	v.structures[s.sd.URL] = s
	if s.sd.Derivation != "constraint" && strings.HasPrefix(s.sd.URL, "http://hl7.org/fhir/StructureDefinition/") {
		v.structures[s.sd.Type] = s
	}
}

// structure returns the definition with this canonical URL, or the base
// definition of this type name.
func (v *Validator) structure(name string) *structure {
	return v.structures[canonical(name)]
}

func readBundle(fsys fs.FS, name string) ([]json.RawMessage, error) {
	var b struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := definitions.DecodeJSON(fsys, name, &b); err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, 0, len(b.Entry))
	for _, e := range b.Entry {
		out = append(out, e.Resource)
	}
	return out, nil
}

// Terminology returns the ValueSets and CodeSystems the validator binds
// against, for the $expand, $validate-code and $lookup operations.
func (v *Validator) Terminology() *terminology.Terminology { return v.terms }

// StructureDefinition returns the definition with this canonical URL (or
// base type name), with its snapshot elements in order, or nil.
func (v *Validator) StructureDefinition(url string) *StructureDefinition {
	s := v.structure(url)
	if s == nil {
		return nil
	}
	return s.sd
}

// StructureDefinitions returns the canonical URLs of every definition known.
func (v *Validator) StructureDefinitions() []string {
	var out []string
	for k, s := range v.structures {
		if k == s.sd.URL {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Validate validates a resource given as JSON against its base definition,
// each profile in its meta.profile, the profiles Options.Required lists for
// its type, and the profiles given. The result lists every issue found; the
// resource is valid when no issue has severity error or fatal.
func (v *Validator) Validate(ctx context.Context, resource []byte, profiles ...string) []Issue {
	d := json.NewDecoder(bytes.NewReader(resource))
	d.UseNumber()
	var tree any
	if err := d.Decode(&tree); err != nil {
		return []Issue{{Severity: "fatal", Code: "structure", Message: "invalid JSON: " + err.Error()}}
	}
	if _, err := d.Token(); err != io.EOF {
		return []Issue{{Severity: "fatal", Code: "structure", Message: "invalid JSON: data after the resource"}}
	}
	return v.ValidateTree(ctx, tree, profiles...)
}

// ValidateTree is Validate for a resource already decoded by encoding/json
// (preferably with UseNumber, so decimals keep their digits).
func (v *Validator) ValidateTree(ctx context.Context, resource any, profiles ...string) []Issue {
	return v.validateTree(ctx, resource, newWalkMemo(), profiles...)
}

// validateTree is ValidateTree, with the walks against the base definition
// and the profiles sharing the outcomes they have in common through memo;
// with memo nil each works out everything anew.
func (v *Validator) validateTree(ctx context.Context, resource any, memo *walkMemo, profiles ...string) []Issue {
	obj, ok := resource.(map[string]any)
	if !ok {
		return []Issue{{Severity: "fatal", Code: "structure", Message: "a resource must be a JSON object"}}
	}
	rt, _ := obj["resourceType"].(string)
	base := v.structure(rt)
	if base == nil || base.sd.Kind != "resource" || base.sd.Abstract {
		return []Issue{{Severity: "fatal", Code: "structure", Expression: rt, Message: fmt.Sprintf("unknown resource type %q", rt)}}
	}
	w := &walker{v: v, ctx: ctx, memo: memo}
	w.validateResource(obj, base, rt)
	// A profile named by the caller must be checked: one unknown here is an
	// error (R4 $validate: "If a profile is nominated, and the server cannot
	// validate against the nominated profile, it SHALL return an error").
	// One the resource claims in meta.profile is a warning: a claim the
	// server cannot check does not make the resource invalid.
	named := len(profiles)
	all := append([]string(nil), profiles...)
	all = append(all, claimedProfiles(obj)...)
	all = append(all, v.required[rt]...)
	seen := map[string]bool{}
	for i, p := range all {
		if seen[canonical(p)] {
			continue
		}
		seen[canonical(p)] = true
		s := v.structure(p)
		switch {
		case s == nil && i < named:
			w.add("error", "not-supported", rt, "profile %s is not known here, so the resource cannot be checked against it", p)
		case s == nil:
			w.add("warning", "not-found", rt+".meta.profile", "profile %s is not known here, so the resource was not checked against it", p)
		case s.sd.Type != rt:
			w.add("error", "structure", rt, "profile %s is for %s, not %s", p, s.sd.Type, rt)
		case s != base:
			w.validateResource(obj, s, rt)
		}
	}
	return dedup(w.issues)
}

// claimedProfiles returns the profiles a resource claims in meta.profile.
func claimedProfiles(obj map[string]any) []string {
	meta, _ := obj["meta"].(map[string]any)
	ps, _ := meta["profile"].([]any)
	var out []string
	for _, p := range ps {
		if s, ok := p.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func dedup(issues []Issue) []Issue {
	seen := map[Issue]bool{}
	out := issues[:0]
	for _, is := range issues {
		if !seen[is] {
			seen[is] = true
			out = append(out, is)
		}
	}
	return out
}

// HasErrors reports whether issues holds an error or a fatal issue.
func HasErrors(issues []Issue) bool {
	for _, is := range issues {
		if is.Severity == "error" || is.Severity == "fatal" {
			return true
		}
	}
	return false
}

// pattern compiles a regex extension's pattern, which must match the
// whole value, once; it returns nil for a pattern that does not compile.
func (v *Validator) pattern(src string) *regexp.Regexp {
	if c, ok := v.patterns.Load(src); ok {
		return c.(*regexp.Regexp)
	}
	re, err := regexp.Compile(`^(?:` + src + `)$`)
	if err != nil {
		re = nil
	}
	v.patterns.Store(src, re)
	return re
}

// errorsOf returns the issues with severity error or fatal.
func errorsOf(issues []Issue) []Issue {
	var out []Issue
	for _, is := range issues {
		if is.Severity == "error" || is.Severity == "fatal" {
			out = append(out, is)
		}
	}
	return out
}

// compile parses a FHIRPath expression once.
func (v *Validator) compile(src string) (*fhirpath.Expression, error) {
	if c, ok := v.exprs.Load(src); ok {
		return c.(*compiled).expr, c.(*compiled).err
	}
	e, err := fhirpath.Parse(src)
	c, _ := v.exprs.LoadOrStore(src, &compiled{expr: e, err: err})
	return c.(*compiled).expr, c.(*compiled).err
}

func (v *Validator) isPrimitive(typ string) bool {
	s := v.structures[typ]
	return s != nil && s.sd.Kind == "primitive-type"
}

func (v *Validator) isResource(typ string) bool {
	if typ == "Resource" || typ == "DomainResource" {
		return true
	}
	s := v.structures[typ]
	return s != nil && s.sd.Kind == "resource"
}
