package profiles

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"carefhir/fhir/fhirpath"
)

// maxDepth bounds nesting, so hostile input cannot exhaust the stack.
const maxDepth = 64

// systemTypes prefixes the FHIRPath system types the definitions give to
// elements that are plain values (https://hl7.org/fhir/R4/fhirpath.html#types).
const systemTypes = "http://hl7.org/fhirpath/System."

// walker holds the state of one validation.
type walker struct {
	v      *Validator
	ctx    context.Context
	issues []Issue
	depth  int
	// res is the resource being walked and resNode its FHIRPath node;
	// bundle indexes the entries of the enclosing Bundle by fullUrl.
	res     map[string]any
	resNode *fhirpath.Node
	bundle  map[string]map[string]any
	// resEnv is the FHIRPath environment of res, built when first needed
	// (see env).
	resEnv *fhirpath.Env
	// container is the resource holding res when res is contained: local
	// references resolve against its contained list.
	container map[string]any
	// evaluated records the invariants evaluated per path, so a constraint
	// a profile repeats from its base is reported once.
	evaluated map[evaluation]bool
	// at is the element whose children are being walked, which is where
	// an extension among them is used.
	at place
	// local collects the local references of the resource being walked,
	// contained resources included; resPath is where the resource is.
	local   *localRefs
	resPath string
	// memo holds what the walks of one validation share (nil in a trial
	// walk): see walkMemo.
	memo *walkMemo
	// refsMatter is set while walking a resource that has contained
	// resources, whose local references the walk collects (local).
	refsMatter bool
}

// evaluation is an invariant (by key) evaluated at a path.
type evaluation struct{ path, key string }

// walkMemo holds the outcomes that the walks of one resource, against its
// base definition and against each profile, have in common, so that a
// profile's walk does not work out again what its base's walk did: the
// result of each FHIRPath invariant evaluated on a value, the issues of
// each narrative's XHTML, and the values validated against an element of a
// base definition that a profile leaves as it is. A location
// (Patient.name[0]) names one value of the resource only in the walks of
// the resource itself; a trial walk (sub) may give a location to another
// value (a resolved reference, a conformsTo() argument), so it has none.
type walkMemo struct {
	invariants map[invariantRun]invariantOutcome
	// narratives holds the issues found in each narrative, by location.
	narratives map[string]narrativeRun
	// walked holds the occurrences validated against an element of a base
	// definition, with the place they were validated in (see repeated).
	walked map[walkedKey]walkedPlace
}

// walkedKey is an occurrence, by location, and the base definition's
// element it was validated against. The location also decides the
// occurrence's type, the resource it lies in, and the walker's depth and
// place but for the place's element.
type walkedKey struct {
	path string
	elem *elem
}

// walkedPlace is what else of the walk the validation of an occurrence
// reads: for an extension, the element it lies in (its context); and the
// depth, the bound on nesting.
type walkedPlace struct {
	holder *elem
	depth  int
}

// narrativeRun is a narrative's div and the issues found in it.
type narrativeRun struct {
	div    string
	issues []Issue
}

// invariantRun is one FHIRPath expression evaluated on the value at path,
// as type typ.
type invariantRun struct {
	path, typ string
	expr      *fhirpath.Expression
}

type invariantOutcome struct {
	ok, empty bool
	err       error
}

func newWalkMemo() *walkMemo {
	return &walkMemo{invariants: map[invariantRun]invariantOutcome{}, narratives: map[string]narrativeRun{}, walked: make(map[walkedKey]walkedPlace, 64)}
}

// place describes an element that holds extensions: its location, its
// element (nil for a resource) and type, its JSON value, and the URL of the
// extension it lies in, if any.
type place struct {
	path   string
	elem   *elem
	typ    string
	val    any
	extURL string
}

// item is one occurrence of an element: its JSON value, the "_name"
// object of a primitive, and its FHIR type.
type item struct {
	val, ext any
	typ      string
	path     string
	index    int
}

func (w *walker) add(severity, code, expr, format string, args ...any) {
	w.issues = append(w.issues, Issue{Severity: severity, Code: code, Expression: expr, Message: fmt.Sprintf(format, args...)})
}

func (w *walker) validateResource(obj map[string]any, s *structure, path string) {
	w.validateIn(obj, s, path, nil)
}

// validateIn validates a resource; container is the resource it is
// contained in, if any.
func (w *walker) validateIn(obj map[string]any, s *structure, path string, container map[string]any) {
	if w.depth > maxDepth {
		w.add("error", "structure", path, "resources are nested too deeply")
		return
	}
	if w.ctx != nil && w.ctx.Err() != nil {
		return
	}
	prevRes, prevNode, prevEval, prevCont, prevAt := w.res, w.resNode, w.evaluated, w.container, w.at
	prevLocal, prevPath, prevEnv, prevRefs := w.local, w.resPath, w.resEnv, w.refsMatter
	w.res, w.resNode, w.evaluated, w.container = obj, nil, map[evaluation]bool{}, container
	w.resEnv = nil
	w.at = place{path: path, typ: s.sd.Type, val: obj}
	w.resPath = path
	if container == nil {
		w.local = &localRefs{refs: map[string]bool{}, toContainer: map[string]bool{}}
		list, _ := obj["contained"].([]any)
		w.refsMatter = len(list) > 0
	}
	defer func() {
		w.res, w.resNode, w.evaluated, w.container, w.at = prevRes, prevNode, prevEval, prevCont, prevAt
		w.local, w.resPath, w.resEnv, w.refsMatter = prevLocal, prevPath, prevEnv, prevRefs
	}()
	switch obj["resourceType"] {
	case "Questionnaire":
		w.questionnaire(obj, path)
	case "QuestionnaireResponse":
		w.questionnaireResponse(obj, path)
	}
	if obj["resourceType"] == "Bundle" {
		w.bundleEntries(obj, path)
		if w.bundle == nil {
			w.bundle = indexBundle(obj)
			defer func() { w.bundle = nil }()
		}
	}
	w.depth++
	w.complex(obj, s.root, s.root.children, path, s.root, true)
	w.empty(obj, true, path)
	w.elementIDs(obj, path)
	if container == nil {
		w.dom3(obj, s, path)
	}
	w.depth--
	w.rules(item{val: obj, typ: s.sd.Type, path: path}, s.root)
}

func indexBundle(b map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	entries, _ := b["entry"].([]any)
	for _, e := range entries {
		em, _ := e.(map[string]any)
		r, _ := em["resource"].(map[string]any)
		if r == nil {
			continue
		}
		if fu, ok := em["fullUrl"].(string); ok {
			out[fu] = r
		}
		rt, _ := r["resourceType"].(string)
		if id, ok := r["id"].(string); ok {
			out[rt+"/"+id] = r
		}
	}
	return out
}

// complex validates a JSON object against a list of child elements.
func (w *walker) complex(obj map[string]any, e *elem, children []*elem, path string, sroot *elem, isResource bool) {
	consumed := map[string]bool{}
	if isResource {
		consumed["resourceType"] = true
	}
	consumed["fhir_comments"] = true
	// An optional, unsliced element whose name is not among the object's
	// is absent, without looking it up (property would find so).
	keys := keyBits(obj)
	for _, c := range children {
		if !strings.HasSuffix(c.name, "[x]") {
			if c.bit != 0 && keys&c.bit == 0 && len(c.slices) == 0 && c.def.Slicing == nil && c.def.min() == 0 {
				continue
			}
			w.property(obj, c, path, consumed, sroot)
		}
	}
	for _, c := range children {
		if strings.HasSuffix(c.name, "[x]") {
			w.property(obj, c, path, consumed, sroot)
		}
	}
	var unknown []string
	for k := range obj {
		if !consumed[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		w.add("error", "structure", path, "unrecognized element %q", k)
	}
}

// empty reports ele-1 for an object that holds no value and no children:
// nothing, only an id, or for a resource only its resourceType
// (https://hl7.org/fhir/R4/element.html#invs).
func (w *walker) empty(obj map[string]any, isResource bool, path string) {
	_, onlyID := obj["id"]
	if len(obj) == 0 || (isResource && len(obj) == 1) || !isResource && onlyID && len(obj) == 1 {
		w.add("error", "invalid", path, "an element must have a value or children (ele-1)")
	}
}

// property gathers the occurrences of element c in obj and validates them.
func (w *walker) property(obj map[string]any, c *elem, path string, consumed map[string]bool, sroot *elem) {
	if len(c.slices) == 0 && c.def.Slicing == nil && c.def.min() == 0 && !strings.HasSuffix(c.name, "[x]") {
		_, has := obj[c.name]
		_, hasExt := obj[c.extKey]
		if !has && !hasExt {
			return // optional and absent, as most elements of most values are
		}
	}
	array := c.def.baseMax() != "1" && c.def.baseMax() != "0"
	name := c.name
	var keys []string
	var types []string
	// wrongType counts the values present under a type the element does not
	// allow: reported once, and still present for the cardinality.
	wrongType := 0
	if base, ok := strings.CutSuffix(name, "[x]"); ok {
		name = base
		for k := range obj {
			kk := strings.TrimPrefix(k, "_")
			if consumed[k] || !strings.HasPrefix(kk, base) || len(kk) == len(base) {
				continue
			}
			suffix := kk[len(base):]
			if suffix[0] < 'A' || suffix[0] > 'Z' {
				continue
			}
			typ := ""
			for _, t := range c.def.Type {
				if strings.EqualFold(t.typeCode(), suffix) {
					typ = t.typeCode()
				}
			}
			if typ == "" {
				typ = suffix
				if w.v.structures[typ] == nil {
					typ = strings.ToLower(suffix[:1]) + suffix[1:]
				}
				if w.v.structures[typ] == nil {
					continue // not a type name: some other element
				}
				consumed[k] = true
				if !strings.HasPrefix(k, "_") || obj[kk] == nil {
					wrongType++
					w.add("error", "structure", path+"."+base+".ofType("+typ+")", "type %s is not allowed for %s", typ, c.def.Path)
				}
				continue
			}
			consumed[k] = true
			if !strings.HasPrefix(k, "_") || obj[kk] == nil {
				if !contains(keys, kk) {
					keys = append(keys, kk)
					types = append(types, typ)
				}
			}
		}
		if len(keys)+wrongType > 1 {
			sort.Strings(keys)
			w.add("error", "structure", path+"."+name, "only one of %s may be present", strings.Join(keys, ", "))
		}
	} else {
		_, has := obj[name]
		_, hasExt := obj[c.extKey]
		if hasExt && len(c.def.Type) > 0 && strings.HasPrefix(c.def.Type[0].Code, systemTypes) {
			// Element.id, Extension.url and Resource.id are plain
			// FHIRPath strings, with no id or extensions of their own.
			w.add("error", "business-rule", path+"."+name, "%s cannot have extensions", c.def.Path)
			consumed[c.extKey] = true
			hasExt = false
		}
		if has || hasExt {
			keys = []string{name}
			typ := "BackboneElement"
			if len(c.def.Type) > 0 {
				typ = c.def.Type[0].typeCode()
			}
			if c.def.Base != nil && c.def.Base.Path == "Resource.id" {
				// The definitions type Resource.id as a string for
				// FHIRPath; the resource page gives it type id.
				typ = "id"
			}
			types = []string{typ}
			consumed[name] = true
			if hasExt {
				consumed[c.extKey] = true
			}
		}
	}
	var one [1]item // most elements occur once: no allocation for them
	items := one[:0]
	for i, k := range keys {
		val, ext := obj[k], obj["_"+k]
		// The location of the values of an array is built for each value
		// at once; that of the array, for an issue only.
		loc := func() string {
			if strings.HasSuffix(c.name, "[x]") {
				return path + "." + name + ".ofType(" + types[i] + ")"
			}
			return path + "." + name
		}
		if !array {
			p := loc()
			if _, isArr := val.([]any); isArr {
				w.add("error", "structure", p, "%s must not be an array", c.def.Path)
				continue
			}
			if _, isArr := ext.([]any); isArr {
				w.add("error", "structure", p, "_%s must not be an array", name)
				continue
			}
			items = append(items, item{val: val, ext: ext, typ: types[i], path: p})
			continue
		}
		vals, okV := val.([]any)
		exts, okE := ext.([]any)
		if (val != nil && !okV) || (ext != nil && !okE) {
			w.add("error", "structure", loc(), "%s must be an array", c.def.Path)
			continue
		}
		if val != nil && len(vals) == 0 || ext != nil && len(exts) == 0 {
			w.add("error", "structure", loc(), "an array must not be empty")
		}
		mismatch := vals != nil && exts != nil && len(vals) != len(exts)
		if mismatch {
			w.add("error", "structure", loc(), "%s and _%s must have the same length", name, name)
		}
		choice := strings.HasSuffix(c.name, "[x]")
		for j := 0; j < max(len(vals), len(exts)); j++ {
			var iv, ie any
			if j < len(vals) {
				iv = vals[j]
			}
			if j < len(exts) {
				ie = exts[j]
			}
			if mismatch && iv == nil && ie == nil {
				continue // reported as the length mismatch
			}
			p := path + "." + name + "[" + strconv.Itoa(j) + "]"
			if choice {
				p = loc() + "[" + strconv.Itoa(j) + "]"
			}
			items = append(items, item{val: iv, ext: ie, typ: types[i], path: p, index: j})
		}
	}
	w.cardinality(c, len(items)+wrongType, path, name)
	assigned := make([]*elem, len(items))
	var trials []*[]Issue
	if len(c.slices) > 0 || c.def.Slicing != nil {
		trials = w.slice(c, items, assigned, path+"."+name)
	}
	for i, it := range items {
		e := c
		if assigned[i] != nil {
			e = assigned[i]
		}
		if trials != nil && trials[i] != nil {
			// Validated against its slice already, to assign it.
			w.issues = append(w.issues, *trials[i]...)
			continue
		}
		w.value(it, e, sroot)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// cardinality checks that element e occurs n times within its bounds, at
// path.name (name "": at path). The location is built only for an issue:
// most elements are within their bounds.
func (w *walker) cardinality(e *elem, n int, path, name string) {
	at := func() string {
		if name == "" {
			return path
		}
		return path + "." + name
	}
	label := func() string {
		if e.def.SliceName != "" {
			return e.def.Path + ":" + e.def.SliceName
		}
		return e.def.Path
	}
	if min := e.def.min(); n < min {
		w.add("error", "required", at(), "%s: minimum required = %d, but only found %d", label(), min, n)
	}
	if e.def.Max != "" && e.def.Max != "*" {
		if max, err := strconv.Atoi(e.def.Max); err == nil && n > max {
			w.add("error", "structure", at(), "%s: max allowed = %d, but found %d", label(), max, n)
		}
	}
}

// value validates one occurrence against its element definition.
func (w *walker) value(it item, e *elem, sroot *elem) {
	if w.depth > maxDepth {
		w.add("error", "structure", it.path, "elements are nested too deeply")
		return
	}
	if w.repeated(it, e) {
		return
	}
	w.depth++
	defer func() { w.depth-- }()
	if it.val == nil && it.ext == nil {
		w.add("error", "invalid", it.path, "an element must have a value or children (ele-1)")
		return
	}
	// The occurrence holds the extensions among its children; its own
	// extension rules look at where it is held.
	prevAt := w.at
	w.at = w.placeOf(it, e)
	ruled := w.walk(it, e, sroot)
	w.at = prevAt
	for _, r := range ruled {
		if r != nil {
			w.rules(it, r)
		}
	}
}

// repeated reports whether the walks of this validation have validated
// the occurrence already, in the same place, against element e or the
// base definition's element e is the same as (elem.same): the walk against
// a profile then passes over what the walk against the base definition
// checked, as the issues it would find are those found then. Otherwise it
// records the occurrence, when e is a base definition's. A resource with
// contained resources is walked in full, as its walk collects the local
// references its dom-3 check reads.
func (w *walker) repeated(it item, e *elem) bool {
	if w.memo == nil || w.refsMatter {
		return false
	}
	if e.same != nil {
		e = e.same
	}
	if !e.base || !e.plain {
		return false
	}
	key := walkedKey{path: it.path, elem: e}
	at := walkedPlace{depth: w.depth}
	if it.typ == "Extension" && w.at.elem != nil {
		// Where an extension may be used is told by its holder's
		// definition, the same for a profile's element and its base's.
		at.holder = w.at.elem
		if at.holder.same != nil {
			at.holder = at.holder.same
		}
	}
	if prev, ok := w.memo.walked[key]; ok && prev == at {
		return true
	}
	w.memo.walked[key] = at
	return false
}

// walk validates the content of one occurrence: a primitive's value and
// extensions, a contained resource, or a complex value's children. It
// returns the elements whose rules apply to the occurrence as a whole, in
// order (none, one or two; an array, so that it costs no allocation).
func (w *walker) walk(it item, e *elem, sroot *elem) (ruled [2]*elem) {
	switch {
	case w.v.isPrimitive(it.typ) || it.typ == "xhtml":
		if it.val != nil {
			w.primitive(it, e)
		}
		if it.ext != nil {
			ext, ok := it.ext.(map[string]any)
			if !ok {
				w.add("error", "structure", it.path, "the primitive extension must be an object")
				return [2]*elem{e}
			}
			if ps := w.v.structures[it.typ]; ps != nil {
				var kids []*elem
				for _, c := range ps.root.children {
					if c.name != "value" {
						kids = append(kids, c)
					}
				}
				w.complex(ext, e, kids, it.path, ps.root, false)
			}
			if it.val == nil {
				w.empty(ext, false, it.path)
			}
		}
	case w.v.isResource(it.typ):
		obj, ok := it.val.(map[string]any)
		if !ok {
			w.add("error", "structure", it.path, "a resource must be a JSON object")
			return ruled
		}
		rt, _ := obj["resourceType"].(string)
		s := w.v.structure(rt)
		if s == nil || s.sd.Kind != "resource" || s.sd.Abstract {
			w.add("error", "structure", it.path, "unknown resource type %q", rt)
			return ruled
		}
		if !w.resourceTypeAllowed(e, rt, it.path) {
			return ruled
		}
		container := w.containerFor(e)
		w.validateIn(obj, s, it.path, container)
		w.claimedProfiles(obj, s, rt, it.path, container)
		w.resourceProfiles(obj, e, rt, it.path)
		return ruled
	default:
		obj, ok := it.val.(map[string]any)
		if !ok {
			w.add("error", "structure", it.path, "%s must be a JSON object", it.typ)
			return ruled
		}
		children, typeRoot := e.children, (*elem)(nil)
		root := sroot
		if len(children) == 0 {
			if profs := typeProfiles(e, it.typ); len(profs) > 1 {
				typeRoot = w.profileChoice(it, profs)
			} else {
				typeRoot = w.v.typeRoot(e, it.typ, obj, sroot)
			}
			if typeRoot != nil {
				children = typeRoot.children
				if typeRoot.def.ContentReference == "" && e.def.ContentReference == "" {
					root = typeRoot
				}
			} else if it.typ == "Extension" {
				w.unknownExtension(it, obj)
			}
		}
		if children == nil {
			if ts := w.v.structures[it.typ]; ts != nil {
				children = ts.root.children
			}
		}
		w.complex(obj, e, children, it.path, root, false)
		w.empty(obj, false, it.path)
		if typeRoot != nil && typeRoot != e && len(typeRoot.def.Constraint) > 0 && (typeRoot.def.Path == it.typ || typeRoot.def.Path == "Extension") {
			return [2]*elem{typeRoot, e}
		}
	}
	return [2]*elem{e}
}

// typeRoot returns the element whose children describe a value of type typ
// in element e: an element a contentReference names, the profile the type
// names, the definition of the extension with the value's url, or the base
// type.
func (v *Validator) typeRoot(e *elem, typ string, obj map[string]any, sroot *elem) *elem {
	if cr := e.def.ContentReference; cr != "" {
		path := strings.TrimPrefix(cr, "#")
		if r := findPath(sroot, path); r != nil {
			return r
		}
		if i := strings.IndexByte(path, '.'); i > 0 {
			if s := v.structures[path[:i]]; s != nil {
				return findPath(s.root, path)
			}
		}
		return nil
	}
	for _, t := range e.def.Type {
		if t.typeCode() == typ && len(t.Profile) > 0 {
			if s := v.structure(t.Profile[0]); s != nil {
				return s.root
			}
		}
	}
	if typ == "Extension" {
		u, _ := obj["url"].(string)
		if s := v.structure(u); s != nil && s.sd.Type == "Extension" {
			return s.root
		}
		return nil
	}
	if s := v.structures[typ]; s != nil {
		return s.root
	}
	return nil
}

// rules applies the checks that concern a whole value: fixed and pattern
// values, bindings, invariants, references, narrative and identifiers.
func (w *walker) rules(it item, e *elem) {
	d := e.def
	if d.Fixed != nil {
		w.fixed(it.val, d.Fixed, it.path)
	}
	if d.Pattern != nil && !matchPattern(it.val, d.Pattern) {
		w.add("error", "value", it.path, "value must match the pattern %s", compact(d.Pattern))
	}
	if d.Binding != nil && d.Binding.ValueSet != "" {
		w.binding(it, d.Binding)
	}
	if d.MinValue != nil || d.MaxValue != nil {
		w.bounds(it, d)
	}
	w.invariants(it, e)
	switch it.typ {
	case "Reference":
		w.reference(it, d)
	case "Identifier":
		w.identifier(it)
	case "Coding":
		w.coding(it)
	case "Extension":
		w.extension(it)
		w.extensionContext(it)
	}
}

// fixed reports where a value differs from a fixed value: for a complex
// value, at each element that differs, is missing, or is present but not
// in the fixed value
// (https://hl7.org/fhir/R4/elementdefinition-definitions.html#ElementDefinition.fixed_x_).
func (w *walker) fixed(val, want any, path string) {
	if equalJSON(val, want) {
		return
	}
	vm, ok1 := val.(map[string]any)
	wm, ok2 := want.(map[string]any)
	if ok1 && ok2 {
		keys := make([]string, 0, len(vm)+len(wm))
		for k := range vm {
			keys = append(keys, k)
		}
		for k := range wm {
			if _, ok := vm[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			wv, inFixed := wm[k]
			switch {
			case !inFixed:
				w.add("error", "value", path+"."+k, "the element %s is present but the fixed value has none: value must be exactly %s", k, compact(want))
			case vm[k] == nil:
				w.add("error", "value", path+"."+k, "the element %s is missing: value must be exactly %s", k, compact(want))
			default:
				w.fixed(vm[k], wv, path+"."+k)
			}
		}
		return
	}
	vl, ok1 := val.([]any)
	wl, ok2 := want.([]any)
	if ok1 && ok2 && len(vl) == len(wl) {
		for i := range vl {
			w.fixed(vl[i], wl[i], fmt.Sprintf("%s[%d]", path, i))
		}
		return
	}
	w.add("error", "value", path, "value must be exactly %s", compact(want))
}

func compact(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// equalJSON compares JSON trees for fixed[x] and discriminators: objects
// regardless of member order, arrays element by element, and numbers by
// their written digits. A FHIR decimal keeps its precision, so a fixed
// 1.50 is not met by 1.5; package patch compares numbers by value instead,
// as RFC 6902 test does.
func equalJSON(a, b any) bool {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		return ok && x == y
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if !equalJSON(v, y[k]) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// matchPattern reports whether value holds everything pattern holds
// (https://hl7.org/fhir/R4/elementdefinition-definitions.html#ElementDefinition.pattern_x_).
func matchPattern(value, pattern any) bool {
	switch p := pattern.(type) {
	case map[string]any:
		v, ok := value.(map[string]any)
		if !ok {
			return false
		}
		for k, pv := range p {
			if !matchPattern(v[k], pv) {
				return false
			}
		}
		return true
	case []any:
		v, ok := value.([]any)
		if !ok {
			return false
		}
		for _, pi := range p {
			found := false
			for _, vi := range v {
				if matchPattern(vi, pi) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	case json.Number:
		v, ok := value.(json.Number)
		if !ok {
			return false
		}
		rx, ok1 := new(big.Rat).SetString(string(v))
		ry, ok2 := new(big.Rat).SetString(string(p))
		return ok1 && ok2 && rx.Cmp(ry) == 0
	}
	return reflect.DeepEqual(value, pattern)
}

// elementIDs checks the ids of a resource's elements
// (https://hl7.org/fhir/R4/element-definitions.html#Element.id): unique
// within the resource, without spaces. Contained and nested resources have
// their own.
func (w *walker) elementIDs(obj map[string]any, path string) {
	if !holdsElementID(obj, true) {
		// Most resources have no element ids: the walk below builds the
		// path of every element it passes.
		return
	}
	seen := map[string]string{}
	var visit func(v any, path string)
	visit = func(v any, path string) {
		switch x := v.(type) {
		case map[string]any:
			if id, ok := x["id"].(string); ok {
				if strings.ContainsAny(id, " \t\r\n") {
					w.add("error", "value", path, "the element id %q contains whitespace", truncate(id))
				}
				if first, dup := seen[id]; dup {
					w.add("error", "business-rule", path, "the element id %q is also used at %s: element ids are unique within a resource", truncate(id), first)
				} else {
					seen[id] = path
				}
			}
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				c := x[k]
				if m, ok := c.(map[string]any); ok && m["resourceType"] != nil {
					continue
				}
				visit(c, path+"."+strings.TrimPrefix(k, "_"))
			}
		case []any:
			for i, c := range x {
				if m, ok := c.(map[string]any); ok && m["resourceType"] != nil {
					continue
				}
				visit(c, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		if k != "id" && k != "_id" && k != "contained" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		visit(obj[k], path+"."+strings.TrimPrefix(k, "_"))
	}
}

// holdsElementID reports whether v, or any element within it outside
// contained and nested resources, has an id; the resource's own id does not
// count (top).
func holdsElementID(v any, top bool) bool {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if top && (k == "id" || k == "_id" || k == "contained") {
				continue
			}
			if !top && k == "id" {
				if _, ok := c.(string); ok {
					return true
				}
			}
			if m, ok := c.(map[string]any); ok && m["resourceType"] != nil && !top {
				continue
			}
			if holdsElementID(c, false) {
				return true
			}
		}
	case []any:
		for _, c := range x {
			if m, ok := c.(map[string]any); ok && m["resourceType"] != nil {
				continue
			}
			if holdsElementID(c, false) {
				return true
			}
		}
	}
	return false
}
