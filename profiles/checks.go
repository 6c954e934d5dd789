package profiles

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"carefhir/fhir/fhirpath"
	"carefhir/fhir/lexical"
	"carefhir/fhir/ucum"
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
		w.number(it, e, string(n))
		return
	}
	s, ok := it.val.(string)
	if !ok {
		w.add("error", "structure", it.path, "a %s must be a JSON string", it.typ)
		return
	}
	w.noteLocal(it, e, s)
	if it.typ == "xhtml" {
		w.narrativeOnce(it.path, s)
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
	} else if re != nil && !dayExists(it.typ, s) {
		w.add("error", "value", it.path, "%q is not a valid %s: %s has no day %s", truncate(s), it.typ, s[:7], s[8:10])
	}
	if e.def.MaxLength > 0 && utf8.RuneCountInString(s) > e.def.MaxLength {
		w.add("error", "value", it.path, "the value is longer than the maximum length %d", e.def.MaxLength)
	}
	if x := e.def.extension(minLengthURL); x != nil && x.ValueInteger != nil && utf8.RuneCountInString(s) < *x.ValueInteger {
		w.add("error", "value", it.path, "the value is shorter than the minimum length %d", *x.ValueInteger)
	}
	if x := e.def.extension(regexURL); x != nil && x.ValueString != "" {
		if re := w.v.pattern(x.ValueString); re != nil && !re.MatchString(s) {
			w.add("error", "value", it.path, "%q does not match the pattern %s", truncate(s), x.ValueString)
		}
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

func (w *walker) number(it item, e *elem, n string) {
	if re := w.v.regexps[it.typ]; re != nil && !re.MatchString(n) {
		w.add("error", "value", it.path, "%s is not a valid %s", n, it.typ)
		return
	}
	if it.typ == "decimal" {
		if x := e.def.extension(maxDecimalPlacesURL); x != nil && x.ValueInteger != nil {
			_, frac, _ := strings.Cut(strings.ToLower(n), ".")
			frac, _, _ = strings.Cut(frac, "e")
			if len(frac) > *x.ValueInteger {
				w.add("error", "value", it.path, "%s has more than %d decimal places", n, *x.ValueInteger)
			}
		}
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
// precision). Quantities compare in canonical UCUM units, as the bound is
// a canonical one (100 mg is below a minimum of 1 g).
func (w *walker) bounds(it item, d *ElementDefinition) {
	value := it.val
	vq, isQuantity := it.val.(map[string]any)
	if isQuantity {
		value = vq["value"]
	}
	cmp := func(bound any) (int, bool) {
		if bq, ok := bound.(map[string]any); ok {
			if isQuantity {
				return w.compareQuantities(it.path, vq, bq)
			}
			bound = bq["value"]
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
		c, ok := cmp(d.MinValue)
		if d.MinValueType == "Duration" {
			c, ok = relative(value, d.MinValue, -1)
		}
		if ok && c < 0 {
			w.add("error", "value", it.path, "the value is less than the minimum %s", bound(d.MinValue, d.MinValueType, "before"))
		}
	}
	if d.MaxValue != nil {
		c, ok := cmp(d.MaxValue)
		if d.MaxValueType == "Duration" {
			c, ok = relative(value, d.MaxValue, 1)
		}
		if ok && c > 0 {
			w.add("error", "value", it.path, "the value is greater than the maximum %s", bound(d.MaxValue, d.MaxValueType, "after"))
		}
	}
}

// compareQuantities compares a Quantity with a bound: by value when both
// have the same unit, else in canonical UCUM units. Quantities whose units
// cannot be compared are reported as a warning.
func (w *walker) compareQuantities(path string, q, bound map[string]any) (int, bool) {
	x, ok1 := toRat(q["value"])
	y, ok2 := toRat(bound["value"])
	if !ok1 || !ok2 {
		return 0, false
	}
	qc, _ := q["code"].(string)
	bc, _ := bound["code"].(string)
	if qc == bc && q["system"] == bound["system"] {
		return x.Cmp(y), true
	}
	if q["system"] == ucum.System && bound["system"] == ucum.System {
		qu, err1 := ucum.Parse(qc)
		bu, err2 := ucum.Parse(bc)
		if err1 == nil && err2 == nil && qu.Code() == bu.Code() {
			return qu.Canonical(x).Cmp(bu.Canonical(y)), true
		}
	}
	w.add("warning", "value", path, "the unit %s cannot be compared with the unit %s of the bound", truncate(qc), truncate(bc))
	return 0, false
}

func bound(v any, typ, rel string) string {
	if q, ok := v.(map[string]any); typ == "Duration" && ok {
		return fmt.Sprintf("%v %v %s now", q["value"], q["code"], rel)
	}
	return compact(v)
}

// relative compares a date, dateTime or instant with a limit given as a
// Duration relative to the current time: subtracted for a minimum (sign
// -1), added for a maximum (sign 1), as ElementDefinition.minValue[x]
// allows for these types. The comparison is at the value's precision.
func relative(value, duration any, sign int) (int, bool) {
	s, ok := value.(string)
	q, ok2 := duration.(map[string]any)
	if !ok || !ok2 {
		return 0, false
	}
	n, ok := toRat(q["value"])
	if !ok {
		return 0, false
	}
	f, _ := n.Float64()
	limit, ok := shift(time.Now().UTC(), f*float64(sign), q["code"])
	if !ok {
		return 0, false
	}
	t, layout, ok := parseTime(s)
	if !ok {
		return 0, false
	}
	if layout == time.RFC3339 {
		return t.Compare(limit), true
	}
	return strings.Compare(t.Format(layout), limit.Format(layout)), true
}

// shift moves t by n of a UCUM time unit: calendar years, months, weeks
// and days, or hours, minutes and seconds.
func shift(t time.Time, n float64, unit any) (time.Time, bool) {
	whole := n == math.Trunc(n)
	switch unit {
	case "a":
		if whole {
			return t.AddDate(int(n), 0, 0), true
		}
		return t.Add(time.Duration(n * 365.25 * 24 * float64(time.Hour))), true
	case "mo":
		if whole {
			return t.AddDate(0, int(n), 0), true
		}
		return t.Add(time.Duration(n * 30.4375 * 24 * float64(time.Hour))), true
	case "wk":
		return t.Add(time.Duration(n * 7 * 24 * float64(time.Hour))), true
	case "d":
		return t.Add(time.Duration(n * 24 * float64(time.Hour))), true
	case "h":
		return t.Add(time.Duration(n * float64(time.Hour))), true
	case "min":
		return t.Add(time.Duration(n * float64(time.Minute))), true
	case "s":
		return t.Add(time.Duration(n * float64(time.Second))), true
	}
	return t, false
}

// parseTime reads a FHIR date, dateTime or instant, returning the layout
// of its precision: a year, a month, a day, or a full time.
func parseTime(s string) (time.Time, string, bool) {
	for _, layout := range []string{"2006", "2006-01", "2006-01-02", time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, layout, true
		}
	}
	return time.Time{}, "", false
}

func toRat(v any) (*big.Rat, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return nil, false
	}
	return new(big.Rat).SetString(string(n))
}

// coded is one code found in a value: system (empty for a bare code) and
// code, and the index of its Coding in a CodeableConcept (-1 for the
// value's own code).
type coded struct {
	system, code string
	coding       int
}

// at returns the location of the code in the value at path.
func (c coded) at(path string) string {
	if c.coding < 0 {
		return path
	}
	return path + ".coding[" + strconv.Itoa(c.coding) + "]"
}

// codes appends the codes of a value to out (most values have one or two,
// for which the caller's array suffices).
func codes(it item, out []coded) (_ []coded, isConcept bool) {
	switch it.typ {
	case "code", "string", "uri":
		if s, ok := it.val.(string); ok {
			out = append(out, coded{"", s, -1})
		}
	case "Coding", "Quantity":
		if m, ok := it.val.(map[string]any); ok {
			c, _ := m["code"].(string)
			s, _ := m["system"].(string)
			if c != "" {
				out = append(out, coded{s, c, -1})
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
				out = append(out, coded{s, c, i})
			}
		}
	}
	return out, isConcept
}

// conceptWithoutCode reports a Coding or CodeableConcept that states a
// concept, by text, display or system, and holds no code.
func conceptWithoutCode(it item) bool {
	if it.typ != "Coding" && it.typ != "CodeableConcept" {
		return false
	}
	m, _ := it.val.(map[string]any)
	for name := range m {
		if name != "id" && name != "extension" && !strings.HasPrefix(name, "_") {
			return true
		}
	}
	return false
}

// binding checks the codes of a value against its binding: a required
// binding is an error, an extensible or preferred one a warning. A ValueSet
// that cannot be computed from the bundled code systems is not checked.
func (w *walker) binding(it item, b *Binding) {
	if b.Strength != "required" && b.Strength != "extensible" && b.Strength != "preferred" {
		return
	}
	var buf [2]coded
	cs, isConcept := codes(it, buf[:0])
	if !w.v.terms.HasValueSet(b.ValueSet) {
		return
	}
	if len(cs) == 0 {
		// A required binding admits no concept outside the value set, and
		// a concept given by text or a Coding without a code is not in it:
		// only an extensible binding lets "text be included instead"
		// (https://hl7.org/fhir/R4/terminologies.html#strength). A value
		// holding only extensions, such as a data-absent-reason, gives no
		// concept at all.
		if b.Strength == "required" && conceptWithoutCode(it) {
			w.add("error", "code-invalid", it.path, "the concept has no code, and the value set %s is required (required binding)", canonical(b.ValueSet))
		}
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
		if retiredLanguage(b.ValueSet, c.system) {
			w.add("warning", "code-invalid", c.at(it.path)+".system", "the code system %s is retired; use %s", c.system, languageSystem)
		}
		if retiredCoding(c.system, c.code) || retiredLanguage(b.ValueSet, c.system) {
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

// coding checks the code of a Coding against its code system when that is
// bundled with all its codes: a code the system does not define is an
// error whatever the binding, as the HL7 validator reports it.
func (w *walker) coding(it item) {
	m, _ := it.val.(map[string]any)
	system, _ := m["system"].(string)
	code, _ := m["code"].(string)
	if system == "" || code == "" {
		return
	}
	if w.v.terms.Lacks(system, code) {
		w.add("error", "code-invalid", it.path+".code", "%q is not a code of the CodeSystem %s", truncate(code), system)
	}
}

// invariants evaluates the element's FHIRPath constraints with the value as
// focus. The nativeInvariants are checked elsewhere; an expression the
// evaluator cannot run is reported as information (notEvaluated).
func (w *walker) invariants(it item, e *elem) {
	if len(e.def.Constraint) == 0 || it.val == nil {
		return
	}
	var focus *fhirpath.Node
	typ := it.typ
	if typ == "BackboneElement" || typ == "Element" {
		typ = e.def.Path
		if e.def.Base != nil && e.def.Base.Path != "" {
			typ = e.def.Base.Path
		}
	}
	for _, c := range e.def.Constraint {
		if c.Expression == "" {
			continue
		}
		n, isNative := nativeInvariants[c.Key]
		isNative = isNative && c.Expression == n.published
		if isNative && n.holds == nil {
			continue // checked elsewhere
		}
		key := evaluation{it.path, c.Key}
		if w.evaluated[key] {
			continue
		}
		w.evaluated[key] = true
		if isNative {
			if !n.holds(it.val) {
				w.brokenInvariant(c, it.path, "")
			}
			continue
		}
		src := c.Expression
		if fix, ok := correctedInvariants[c.Key]; ok && src == fix.published {
			src = fix.corrected
		}
		expr, err := w.v.compile(src)
		if err != nil {
			w.notEvaluated(it.path, c.Key, err)
			continue
		}
		// A profile repeats most invariants of its base: the outcome on
		// this value is the one its base's walk found. conformsTo()
		// validates in a trial walk located where the walk stands, so an
		// expression calling it is evaluated anew.
		run := invariantRun{path: it.path, typ: typ, expr: expr}
		out, done := invariantOutcome{}, false
		share := w.memo != nil && !strings.Contains(src, "conformsTo")
		if share {
			out, done = w.memo.invariants[run]
		}
		if !done {
			if focus == nil {
				if focus, err = fhirpath.NewNode(it.val, typ); err != nil {
					focus, err = fhirpath.NewNode(it.val, "")
					if err != nil {
						w.notEvaluated(it.path, c.Key, err)
						return
					}
				}
			}
			out.ok, out.empty, out.err = expr.EvaluateBool(focus, w.env())
			if share {
				w.memo.invariants[run] = out
			}
		}
		if out.err != nil {
			w.notEvaluated(it.path, c.Key, out.err)
			continue
		}
		if out.empty || out.ok {
			continue
		}
		w.brokenInvariant(c, it.path, "")
	}
}

// brokenInvariant reports invariant c broken at path, with detail (what
// breaks it) when there is one.
func (w *walker) brokenInvariant(c Constraint, path, detail string) {
	severity := "error"
	if c.Severity == "warning" {
		severity = "warning"
	}
	if detail != "" {
		w.add(severity, "invariant", path, "%s: %s (%s)", c.Key, c.Human, detail)
		return
	}
	w.add(severity, "invariant", path, "%s: %s", c.Key, c.Human)
}

// nativeConstraint returns the invariant key of e as nativeInvariants
// knows it, nil when e has none or another expression under that key.
func nativeConstraint(e *elem, key string) *Constraint {
	for i, c := range e.def.Constraint {
		if c.Key == key && native(c) {
			return &e.def.Constraint[i]
		}
	}
	return nil
}

// notEvaluated reports an invariant the evaluator could not run, as
// information: the resource was not checked against it.
func (w *walker) notEvaluated(path, key string, err error) {
	w.add("information", "informational", path, "%s was not evaluated: %v", key, err)
}

// correctedInvariants lists R4 invariants whose published expression
// contradicts their own human text, with the expression evaluated instead
// (the one later FHIR versions publish). A profile's invariant with another
// expression under the same key is evaluated as written.
var correctedInvariants = map[string]struct{ published, corrected, reason string }{
	"que-12": {
		published: "enableWhen.count() > 2 implies enableBehavior.exists()",
		corrected: "enableWhen.count() > 1 implies enableBehavior.exists()",
		reason:    `the text says "more than one enableWhen"; R4B and R5 publish count() > 1`,
	},
}

// nativeInvariants lists the R4 invariants checked in Go instead of
// through their published FHIRPath, with how. Those with holds are checked
// where the FHIRPath would be, on the value alone; the others by checks of
// their own. A profile's invariant with another expression under the same
// key is evaluated as written.
var nativeInvariants = map[string]struct {
	published, how string
	holds          func(val any) bool
}{
	"ele-1": {
		published: "hasValue() or (children().count() > id.count())",
		how:       "checked structurally: every element has a value or children other than its id",
	},
	"ext-1": {
		published: "extension.exists() != value.exists()",
		how:       "checked on the extension's JSON: it has child extensions or a value[x], not both; evaluated on every extension of every resource, the FHIRPath of value[x] looked through the extension's members for each",
		holds:     ext1Holds,
	},
	"que-2": {
		published: "descendants().linkId.isDistinct()",
		how:       "checked in one pass over the items (Questionnaire checks): descendants() costs time quadratic in the number of items",
	},
	"dom-3": {
		published: "contained.where((('#'+id in (%resource.descendants().reference | %resource.descendants().as(canonical) | %resource.descendants().as(uri) | %resource.descendants().as(url))) or descendants().where(reference = '#').exists() or descendants().where(as(canonical) = '#').exists() or descendants().where(as(canonical) = '#').exists()).not()).trace('unmatched', id).empty()",
		how:       "checked in one pass over the resource: the published expression applies as() to many items, an error in FHIRPath, and its unions of descendants() cost time quadratic in the resource's size",
	},
}

// native reports whether invariant c is one of nativeInvariants.
func native(c Constraint) bool {
	n, ok := nativeInvariants[c.Key]
	return ok && c.Expression == n.published
}

// SkippedInvariants returns the keys of the invariants the validator
// checks in Go instead of through their FHIRPath, with how.
func SkippedInvariants() map[string]string {
	out := make(map[string]string, len(nativeInvariants))
	for k, v := range nativeInvariants {
		out[k] = v.how
	}
	return out
}

// env is the FHIRPath environment of the resource being walked: %resource
// is the resource, %rootResource its container when it is contained, and
// resolve() finds contained resources and Bundle entries. It is built once
// per resource walked: every invariant evaluated there shares it.
func (w *walker) env() *fhirpath.Env {
	if w.resEnv != nil && w.resNode != nil {
		return w.resEnv
	}
	if w.resNode == nil {
		w.resNode, _ = fhirpath.NewNode(w.res, "")
	}
	root := w.resNode
	if w.container != nil {
		if n, err := fhirpath.NewNode(w.container, ""); err == nil {
			root = n
		}
	}
	w.resEnv = &fhirpath.Env{
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
		MemberOf:   w.memberOf,
		ConformsTo: w.conformsToProfile,
		Clock:      w.v.clock,
	}
	return w.resEnv
}

// memberOf answers FHIRPath memberOf() from the bundled terminology: a
// code, Coding or CodeableConcept is a member when one of its codes is in
// the ValueSet.
func (w *walker) memberOf(v fhirpath.Value, valueSet string) (bool, error) {
	n, ok := v.(*fhirpath.Node)
	if !ok {
		if s, isString := v.(fhirpath.String); isString {
			n, _ = fhirpath.NewNode(string(s), "code")
		}
		if n == nil {
			return false, nil
		}
	}
	var buf [2]coded
	cs, _ := codes(item{val: n.JSON(), typ: n.Type()}, buf[:0])
	for _, c := range cs {
		in, _, err := w.v.terms.ValidateCode(valueSet, c.system, c.code)
		if err != nil {
			return false, err
		}
		if in {
			return true, nil
		}
	}
	return false, nil
}

// conformsToProfile answers FHIRPath conformsTo() by validating the value
// against the profile.
func (w *walker) conformsToProfile(v fhirpath.Value, profile string) (bool, error) {
	n, ok := v.(*fhirpath.Node)
	s := w.v.structure(profile)
	switch {
	case !ok:
		return false, nil
	case s == nil:
		return false, fmt.Errorf("profile %s is not known here", profile)
	case w.depth >= maxDepth:
		return false, errors.New("conformsTo() nests too deeply")
	}
	w.depth++
	defer func() { w.depth-- }()
	return w.conformsTo(item{val: n.JSON(), typ: n.Type(), path: w.at.path}, s), nil
}

// ext1Holds is ext-1 (https://hl7.org/fhir/R4/extensibility.html#ext-1) of
// an extension's JSON: an extension has child extensions or a value, not
// both. The value is value[x], its primitive value or its _value[x] with
// an id or extensions of its own, as FHIRPath finds it.
func ext1Holds(val any) bool {
	obj, ok := val.(map[string]any)
	if !ok {
		return true // not an object: reported as such
	}
	children, _ := obj["extension"].([]any)
	hasExtension := false
	for _, c := range children {
		if c != nil {
			hasExtension = true
			break
		}
	}
	hasValue := false
	for k, v := range obj {
		name, ok := strings.CutPrefix(strings.TrimPrefix(k, "_"), "value")
		if ok && name != "" && name[0] >= 'A' && name[0] <= 'Z' && v != nil {
			hasValue = true
			break
		}
	}
	return hasExtension != hasValue
}

// dayExists reports whether the day of s, a value of typ that matched its
// pattern, is one its month has (lexical.DayExists), as R4 requires of a
// date, dateTime and instant.
func dayExists(typ, s string) bool {
	return typ != "date" && typ != "dateTime" && typ != "instant" || lexical.DayExists(s)
}
