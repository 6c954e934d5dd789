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
	// container is the resource holding res when res is contained: local
	// references resolve against its contained list.
	container map[string]any
	// evaluated records the invariants evaluated per path, so a constraint
	// a profile repeats from its base is reported once.
	evaluated map[string]bool
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
	prevRes, prevNode, prevEval, prevCont := w.res, w.resNode, w.evaluated, w.container
	w.res, w.resNode, w.evaluated, w.container = obj, nil, map[string]bool{}, container
	defer func() { w.res, w.resNode, w.evaluated, w.container = prevRes, prevNode, prevEval, prevCont }()
	if obj["resourceType"] == "Bundle" && w.bundle == nil {
		w.bundle = indexBundle(obj)
		defer func() { w.bundle = nil }()
	}
	w.depth++
	w.complex(obj, s.root, s.root.children, path, s.root, true)
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
	for _, c := range children {
		if !strings.HasSuffix(c.name, "[x]") {
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
	if len(obj) == 0 || (isResource && len(obj) == 1) {
		w.add("error", "invalid", path, "an element must have a value or children (ele-1)")
	}
}

// property gathers the occurrences of element c in obj and validates them.
func (w *walker) property(obj map[string]any, c *elem, path string, consumed map[string]bool, sroot *elem) {
	array := c.def.baseMax() != "1" && c.def.baseMax() != "0"
	name := c.name
	var keys []string
	var types []string
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
				if w.v.structures[suffix] == nil && w.v.structures[strings.ToLower(suffix[:1])+suffix[1:]] == nil {
					continue // not a type name: some other element
				}
				consumed[k] = true
				w.add("error", "structure", path+"."+base, "type %s is not allowed for %s", suffix, c.def.Path)
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
		if len(keys) > 1 {
			sort.Strings(keys)
			w.add("error", "structure", path+"."+name, "only one of %s may be present", strings.Join(keys, ", "))
		}
	} else {
		_, has := obj[name]
		_, hasExt := obj["_"+name]
		if has || hasExt {
			keys = []string{name}
			typ := "BackboneElement"
			if len(c.def.Type) > 0 {
				typ = c.def.Type[0].typeCode()
			}
			types = []string{typ}
			consumed[name], consumed["_"+name] = true, true
		}
	}
	var items []item
	for i, k := range keys {
		val, ext := obj[k], obj["_"+k]
		p := path + "." + name
		if strings.HasSuffix(c.name, "[x]") {
			p += ".ofType(" + types[i] + ")"
		}
		if !array {
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
			w.add("error", "structure", p, "%s must be an array", c.def.Path)
			continue
		}
		if val != nil && len(vals) == 0 || ext != nil && len(exts) == 0 {
			w.add("error", "structure", p, "an array must not be empty")
		}
		if vals != nil && exts != nil && len(vals) != len(exts) {
			w.add("error", "structure", p, "%s and _%s must have the same length", name, name)
		}
		for j := 0; j < max(len(vals), len(exts)); j++ {
			var iv, ie any
			if j < len(vals) {
				iv = vals[j]
			}
			if j < len(exts) {
				ie = exts[j]
			}
			items = append(items, item{val: iv, ext: ie, typ: types[i], path: fmt.Sprintf("%s[%d]", p, j), index: j})
		}
	}
	w.cardinality(c, len(items), path+"."+name)
	assigned := make([]*elem, len(items))
	if len(c.slices) > 0 || c.def.Slicing != nil {
		w.slice(c, items, assigned, path+"."+name)
	}
	for i, it := range items {
		e := c
		if assigned[i] != nil {
			e = assigned[i]
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

func (w *walker) cardinality(e *elem, n int, path string) {
	label := e.def.Path
	if e.def.SliceName != "" {
		label += ":" + e.def.SliceName
	}
	if min := e.def.min(); n < min {
		w.add("error", "required", path, "%s: minimum required = %d, but only found %d", label, min, n)
	}
	if e.def.Max != "" && e.def.Max != "*" {
		if max, err := strconv.Atoi(e.def.Max); err == nil && n > max {
			w.add("error", "structure", path, "%s: max allowed = %d, but found %d", label, max, n)
		}
	}
}

// value validates one occurrence against its element definition.
func (w *walker) value(it item, e *elem, sroot *elem) {
	if w.depth > maxDepth {
		w.add("error", "structure", it.path, "elements are nested too deeply")
		return
	}
	w.depth++
	defer func() { w.depth-- }()
	if it.val == nil && it.ext == nil {
		w.add("error", "invalid", it.path, "an element must have a value or children (ele-1)")
		return
	}
	switch {
	case w.v.isPrimitive(it.typ) || it.typ == "xhtml":
		if it.val != nil {
			w.primitive(it, e)
		}
		if it.ext != nil {
			ext, ok := it.ext.(map[string]any)
			if !ok {
				w.add("error", "structure", it.path, "the primitive extension must be an object")
				break
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
		}
	case w.v.isResource(it.typ):
		obj, ok := it.val.(map[string]any)
		if !ok {
			w.add("error", "structure", it.path, "a resource must be a JSON object")
			return
		}
		rt, _ := obj["resourceType"].(string)
		s := w.v.structure(rt)
		if s == nil || s.sd.Kind != "resource" || s.sd.Abstract {
			w.add("error", "structure", it.path, "unknown resource type %q", rt)
			return
		}
		if e.name == "contained" {
			w.validateIn(obj, s, it.path, w.res)
		} else {
			w.validateResource(obj, s, it.path)
		}
		return
	default:
		obj, ok := it.val.(map[string]any)
		if !ok {
			w.add("error", "structure", it.path, "%s must be a JSON object", it.typ)
			return
		}
		children, typeRoot := e.children, (*elem)(nil)
		root := sroot
		if len(children) == 0 {
			typeRoot = w.v.typeRoot(e, it.typ, obj, sroot)
			if typeRoot != nil {
				children = typeRoot.children
				if typeRoot.def.ContentReference == "" && e.def.ContentReference == "" {
					root = typeRoot
				}
			} else if it.typ == "Extension" {
				if u, _ := obj["url"].(string); u != "" && !strings.Contains(u, "/6.0/") {
					w.add("warning", "not-found", it.path, "extension %s is not known here, so its content was not checked", u)
				}
			}
		}
		if children == nil {
			if ts := w.v.structures[it.typ]; ts != nil {
				children = ts.root.children
			}
		}
		w.complex(obj, e, children, it.path, root, false)
		if typeRoot != nil && typeRoot != e && len(typeRoot.def.Constraint) > 0 && (typeRoot.def.Path == it.typ || typeRoot.def.Path == "Extension") {
			w.rules(it, typeRoot)
		}
	}
	w.rules(it, e)
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
	if d.Fixed != nil && !equalJSON(it.val, d.Fixed) {
		w.add("error", "value", it.path, "value must be exactly %s", compact(d.Fixed))
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
	case "Extension":
		w.extension(it)
	}
}

func compact(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// equalJSON compares JSON trees; numbers compare by value.
func equalJSON(a, b any) bool {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		rx, ok1 := new(big.Rat).SetString(string(x))
		ry, ok2 := new(big.Rat).SetString(string(y))
		return ok1 && ok2 && rx.Cmp(ry) == 0 && string(x) == string(y)
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
