package profiles

import (
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

	"carefhir/fhir/fhirpath"
	"carefhir/profiles/terminology"
)

// primitive checks a primitive value's JSON type, format and length.
func (w *walker) primitive(it item, e *elem) {
	switch it.typ {
	case "boolean":
		if _, ok := it.val.(bool); !ok {
			w.add("error", "structure", it.path, "a boolean must be a JSON true or false")
		}
		return
	case "integer", "positiveInt", "unsignedInt", "decimal":
		n, ok := it.val.(json.Number)
		if !ok {
			if _, isFloat := it.val.(float64); !isFloat {
				w.add("error", "structure", it.path, "a %s must be a JSON number", it.typ)
				return
			}
			n = json.Number(strconv.FormatFloat(it.val.(float64), 'f', -1, 64))
		}
		w.number(it, string(n))
		return
	}
	s, ok := it.val.(string)
	if !ok {
		w.add("error", "structure", it.path, "a %s must be a JSON string", it.typ)
		return
	}
	if it.typ == "xhtml" {
		w.narrative(it.path, s)
		return
	}
	if !utf8.ValidString(s) {
		w.add("error", "value", it.path, "the value is not valid UTF-8")
		return
	}
	if strings.TrimSpace(s) == "" {
		w.add("error", "value", it.path, "a %s must not be empty or only whitespace", it.typ)
		return
	}
	if re := w.v.regexps[it.typ]; re != nil && !re.MatchString(s) {
		w.add("error", "value", it.path, "%q is not a valid %s", truncate(s), it.typ)
	}
	if e.def.MaxLength > 0 && utf8.RuneCountInString(s) > e.def.MaxLength {
		w.add("error", "value", it.path, "the value is longer than the maximum length %d", e.def.MaxLength)
	}
	if len(s) > 1<<20 {
		w.add("error", "value", it.path, "a string must not exceed 1 MB")
	}
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

func (w *walker) number(it item, n string) {
	if re := w.v.regexps[it.typ]; re != nil && !re.MatchString(n) {
		w.add("error", "value", it.path, "%s is not a valid %s", n, it.typ)
		return
	}
	if it.typ == "decimal" {
		return
	}
	i, err := strconv.ParseInt(n, 10, 64)
	if err != nil || i > math.MaxInt32 || i < math.MinInt32 {
		w.add("error", "value", it.path, "%s is not a valid %s", n, it.typ)
		return
	}
	if it.typ == "positiveInt" && i < 1 || it.typ == "unsignedInt" && i < 0 {
		w.add("error", "value", it.path, "%s is not a valid %s", n, it.typ)
	}
}

// bounds checks minValue[x] and maxValue[x] for numbers, quantities and
// dates (dates compare as text, which orders ISO 8601 values of equal
// precision).
func (w *walker) bounds(it item, d *ElementDefinition) {
	value := it.val
	if q, ok := it.val.(map[string]any); ok {
		value = q["value"]
	}
	cmp := func(bound any) (int, bool) {
		if q, ok := bound.(map[string]any); ok {
			bound = q["value"]
		}
		switch b := bound.(type) {
		case json.Number:
			x, ok1 := toRat(value)
			y, ok2 := new(big.Rat).SetString(string(b))
			if !ok1 || !ok2 {
				return 0, false
			}
			return x.Cmp(y), true
		case string:
			s, ok := value.(string)
			if !ok || len(s) < len(b) && len(s) < 10 {
				return 0, false
			}
			return strings.Compare(s[:min(len(s), len(b))], b), true
		}
		return 0, false
	}
	if d.MinValue != nil {
		if c, ok := cmp(d.MinValue); ok && c < 0 {
			w.add("error", "value", it.path, "the value is less than the minimum %s", compact(d.MinValue))
		}
	}
	if d.MaxValue != nil {
		if c, ok := cmp(d.MaxValue); ok && c > 0 {
			w.add("error", "value", it.path, "the value is greater than the maximum %s", compact(d.MaxValue))
		}
	}
}

func toRat(v any) (*big.Rat, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return nil, false
	}
	return new(big.Rat).SetString(string(n))
}

// coded is one code found in a value: system (empty for a bare code) and code.
type coded struct{ system, code, path string }

func codes(it item) (out []coded, isConcept bool) {
	switch it.typ {
	case "code", "string", "uri":
		if s, ok := it.val.(string); ok {
			out = append(out, coded{"", s, it.path})
		}
	case "Coding", "Quantity":
		if m, ok := it.val.(map[string]any); ok {
			c, _ := m["code"].(string)
			s, _ := m["system"].(string)
			if c != "" {
				out = append(out, coded{s, c, it.path})
			}
		}
	case "CodeableConcept":
		isConcept = true
		m, _ := it.val.(map[string]any)
		list, _ := m["coding"].([]any)
		for i, x := range list {
			cm, _ := x.(map[string]any)
			c, _ := cm["code"].(string)
			s, _ := cm["system"].(string)
			if c != "" {
				out = append(out, coded{s, c, it.path + ".coding[" + strconv.Itoa(i) + "]"})
			}
		}
	}
	return out, isConcept
}

// binding checks the codes of a value against its binding: a required
// binding is an error, an extensible or preferred one a warning. A ValueSet
// that cannot be computed from the bundled code systems is not checked.
func (w *walker) binding(it item, b *Binding) {
	if b.Strength != "required" && b.Strength != "extensible" && b.Strength != "preferred" {
		return
	}
	cs, isConcept := codes(it)
	if len(cs) == 0 {
		return
	}
	if !w.v.terms.HasValueSet(b.ValueSet) {
		return
	}
	severity := "warning"
	if b.Strength == "required" {
		severity = "error"
	}
	var bad []coded
	for _, c := range cs {
		ok, _, err := w.v.terms.ValidateCode(b.ValueSet, c.system, c.code)
		if errors.Is(err, terminology.ErrNotComputable) || errors.Is(err, terminology.ErrNotFound) {
			return
		}
		if ok {
			if isConcept {
				return
			}
			continue
		}
		if retiredCoding(c.system, c.code) {
			if isConcept {
				return
			}
			continue
		}
		bad = append(bad, c)
	}
	for _, c := range bad {
		code := c.code
		if c.system != "" {
			code = c.system + "#" + c.code
		}
		w.add(severity, "code-invalid", it.path, "the code %s is not in the value set %s (%s binding)", code, canonical(b.ValueSet), b.Strength)
		if isConcept {
			return
		}
	}
}

// invariants evaluates the element's FHIRPath constraints with the value as
// focus. ele-1 is checked structurally (every element has a value or
// children) and expressions the evaluator cannot run are skipped; see
// SkippedInvariants.
func (w *walker) invariants(it item, e *elem) {
	if len(e.def.Constraint) == 0 || it.val == nil {
		return
	}
	var focus *fhirpath.Node
	for _, c := range e.def.Constraint {
		if c.Expression == "" || skippedInvariants[c.Key] != "" {
			continue
		}
		key := it.path + "\x00" + c.Key
		if w.evaluated[key] {
			continue
		}
		w.evaluated[key] = true
		expr, err := w.v.compile(c.Expression)
		if err != nil {
			continue
		}
		if focus == nil {
			typ := it.typ
			if typ == "BackboneElement" || typ == "Element" {
				typ = e.def.Path
				if e.def.Base != nil && e.def.Base.Path != "" {
					typ = e.def.Base.Path
				}
			}
			if focus, err = fhirpath.NewNode(it.val, typ); err != nil {
				focus, err = fhirpath.NewNode(it.val, "")
				if err != nil {
					return
				}
			}
		}
		ok, empty, err := expr.EvaluateBool(focus, w.env())
		if err != nil || empty || ok {
			continue
		}
		severity := "error"
		if c.Severity == "warning" {
			severity = "warning"
		}
		w.add(severity, "invariant", it.path, "%s: %s", c.Key, c.Human)
	}
}

// skippedInvariants lists the invariants not evaluated, with the reason.
var skippedInvariants = map[string]string{
	"ele-1": "checked structurally: every element must have a value or children",
}

// SkippedInvariants returns the keys of the invariants the validator does
// not evaluate through FHIRPath, with the reason for each.
func SkippedInvariants() map[string]string {
	out := make(map[string]string, len(skippedInvariants))
	for k, v := range skippedInvariants {
		out[k] = v
	}
	return out
}

// env is the FHIRPath environment of the resource being walked: %resource
// is the resource, %rootResource its container when it is contained, and
// resolve() finds contained resources and Bundle entries.
func (w *walker) env() *fhirpath.Env {
	if w.resNode == nil {
		w.resNode, _ = fhirpath.NewNode(w.res, "")
	}
	root := w.resNode
	if w.container != nil {
		if n, err := fhirpath.NewNode(w.container, ""); err == nil {
			root = n
		}
	}
	return &fhirpath.Env{
		Vars:              map[string][]fhirpath.Value{"resource": {w.resNode}, "rootResource": {root}},
		PrimitiveAsSystem: true,
		Resolve: func(ref string) (any, bool) {
			if id, ok := strings.CutPrefix(ref, "#"); ok {
				r := w.contained(id)
				return r, r != nil
			}
			r, ok := w.bundle[ref]
			return r, ok
		},
	}
}
