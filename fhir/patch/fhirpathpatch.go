package patch

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"carefhir/fhir/fhirjson"
	"carefhir/fhir/fhirpath"
)

// FHIRPathPatch applies a FHIRPath Patch to a resource's JSON and returns
// the patched JSON. parameters is the JSON form of the Parameters resource
// that carries the patch: one "operation" parameter per operation, whose
// parts are type (add, insert, delete, replace or move), path, name, value,
// index, source and destination, as https://hl7.org/fhir/R4/fhirpatch.html
// defines them.
//
// path is a FHIRPath expression evaluated on the resource. It must select
// exactly one element, except for delete, where selecting nothing is not an
// error, and for insert and move, where it selects the list (its items, or
// an absent list as a path ending in its name). A value is any value[x] of
// the parameter type, or parts naming the elements of a complex value one
// by one; the element it goes to decides its shape, so add with the name of
// a choice element ("deceased") and a valueDateTime adds deceasedDateTime.
// A primitive's id and extensions (its "_name" companion in JSON) move and
// go with it; replace replaces them with the element, so that they are
// those the new value brings, or none. A path ending in id or url selects
// the Element.id, resource id or Extension.url of what the path before it
// selects, which FHIRPath reads as plain strings.
//
// A failure is an *Error: Malformed for parameters that are not a valid
// patch, Inapplicable for an operation that does not fit the resource.
//
// now(), today() and timeOfDay() in a path are the host's time, in its
// zone; Limits.FHIRPathPatch takes the clock of a server that reckons
// them elsewhere.
func FHIRPathPatch(resource, parameters []byte) ([]byte, error) {
	return DefaultLimits.FHIRPathPatch(resource, parameters, nil)
}

// FHIRPathPatch is FHIRPathPatch within the limits l. Its values come from
// the parameters, so the result grows by no more than their size; its
// paths are evaluated within one FHIRPath default budget, all together, so
// that a patch of many costly paths costs no more than one. clock gives
// now(), today() and timeOfDay() in the paths, in the zone they are
// reckoned in (fhirpath.Env.Clock); nil means time.Now.
func (l Limits) FHIRPathPatch(resource, parameters []byte, clock func() time.Time) ([]byte, error) {
	l = l.withDefaults()
	root, err := resourceObject(resource)
	if err != nil {
		return nil, err
	}
	typ := resourceType(root)
	if typ == nil {
		return nil, fmt.Errorf("patch: the resource has no known resourceType")
	}
	ops, err := parseFHIRPathPatch(parameters)
	if err != nil {
		return nil, err
	}
	if err := l.checkOperations(len(ops)); err != nil {
		return nil, err
	}
	env := &fhirpath.Env{Meter: &fhirpath.Meter{}, Clock: clock}
	contained := containedIDs(root)
	for i, op := range ops {
		op.env = env
		if err := op.apply(root, typ); err != nil {
			err.Op, err.Path = i, op.path
			return nil, err
		}
	}
	if err := checkLocalReferences(contained, root); err != nil {
		return nil, err
	}
	prune(root)
	out, err := encode(root)
	if err != nil {
		return nil, err
	}
	return l.checkResult(out)
}

// fhirOp is one operation of a FHIRPath Patch.
type fhirOp struct {
	kind  string // add, insert, delete, replace or move
	path  string
	expr  *fhirpath.Expression
	name  string
	value *partValue
	// index, source and destination are -1 when absent.
	index, source, destination int
	// env is what the path is evaluated with: the patch's, whose
	// operations share one budget.
	env *fhirpath.Env
}

// partValue is a value given in a Parameters part.
type partValue struct {
	typ      string         // type of value[x], such as "Date" or "HumanName"; "" otherwise
	json     any            // the value, for value[x] and resource
	ext      map[string]any // the "_value[x]" companion of a primitive value
	parts    []any          // the parts of a complex value given element by element
	resource bool
}

func malformed(format string, args ...any) *Error {
	return &Error{Kind: Malformed, Message: fmt.Sprintf(format, args...)}
}

func parseFHIRPathPatch(data []byte) ([]*fhirOp, error) {
	v, err := decode(data)
	if err != nil {
		return nil, &Error{Op: -1, Kind: Malformed, Message: "the FHIRPath Patch is not JSON: " + err.Error()}
	}
	params, _ := v.(map[string]any)
	if rt, _ := params["resourceType"].(string); rt != "Parameters" {
		return nil, &Error{Op: -1, Kind: Malformed, Message: "a FHIRPath Patch is a Parameters resource"}
	}
	list, _ := params["parameter"].([]any)
	ops := make([]*fhirOp, len(list))
	for i, p := range list {
		op, err := parseFHIRPathOp(p)
		if err != nil {
			err.Op = i
			if op != nil {
				err.Path = op.path
			}
			return nil, err
		}
		ops[i] = op
	}
	return ops, nil
}

func parseFHIRPathOp(p any) (*fhirOp, *Error) {
	param, _ := p.(map[string]any)
	if name, _ := param["name"].(string); name != "operation" {
		return nil, malformed("parameter %q is not an operation: a FHIRPath Patch has only parameters named operation", name)
	}
	parts, _ := param["part"].([]any)
	op := &fhirOp{index: -1, source: -1, destination: -1}
	seen := map[string]bool{}
	for _, p := range parts {
		part, _ := p.(map[string]any)
		name, _ := part["name"].(string)
		if seen[name] {
			return op, malformed("part %q is given twice", name)
		}
		seen[name] = true
		v, err := readValue(part)
		if err != nil {
			return op, malformed("part %q: %v", name, err)
		}
		switch name {
		case "type", "path", "name":
			s, ok := v.json.(string)
			if !ok || v.typ == "" {
				return op, malformed("part %q must be a string (valueCode or valueString)", name)
			}
			switch name {
			case "type":
				op.kind = s
			case "path":
				op.path = s
			default:
				op.name = s
			}
		case "value":
			op.value = v
		case "index", "source", "destination":
			n, ok := v.json.(json.Number)
			i, err := n.Int64()
			if !ok || err != nil || i < 0 || i > 1<<31 {
				return op, malformed("part %q must be an integer of at least 0 (valueInteger)", name)
			}
			switch name {
			case "index":
				op.index = int(i)
			case "source":
				op.source = int(i)
			default:
				op.destination = int(i)
			}
		default:
			return op, malformed("unknown part %q: a FHIRPath Patch operation has type, path, name, value, index, source and destination", name)
		}
	}
	var missing []string
	need := func(ok bool, name string) {
		if !ok {
			missing = append(missing, name)
		}
	}
	need(op.path != "", "path")
	switch op.kind {
	case "add":
		need(op.name != "", "name")
		need(op.value != nil, "value")
	case "insert":
		need(op.value != nil, "value")
		need(op.index >= 0, "index")
	case "delete":
	case "replace":
		need(op.value != nil, "value")
	case "move":
		need(op.source >= 0, "source")
		need(op.destination >= 0, "destination")
	case "":
		return op, malformed("the operation has no type part")
	default:
		return op, malformed("unknown operation type %q: use add, insert, delete, replace or move", op.kind)
	}
	if len(missing) > 0 {
		return op, malformed("%s needs the part %s", op.kind, strings.Join(missing, " and "))
	}
	expr, err := fhirpath.Parse(op.path)
	if err != nil {
		return op, malformed("%v", err)
	}
	op.expr = expr
	return op, nil
}

// readValue reads the value of a part: value[x], nested parts or a resource.
func readValue(part map[string]any) (*partValue, error) {
	var v *partValue
	set := func(pv *partValue) error {
		if v != nil {
			return fmt.Errorf("it has more than one value")
		}
		v = pv
		return nil
	}
	for k, x := range part {
		var err error
		switch {
		case strings.HasPrefix(k, "value") && len(k) > len("value"):
			ext, _ := part["_"+k].(map[string]any)
			err = set(&partValue{typ: k[len("value"):], json: x, ext: ext})
		case strings.HasPrefix(k, "_value") && part[k[1:]] == nil:
			// A primitive value with only an id or extensions.
			ext, _ := x.(map[string]any)
			err = set(&partValue{typ: k[len("_value"):], ext: ext})
		case k == "part":
			parts, ok := x.([]any)
			if !ok {
				return nil, fmt.Errorf("part is not an array")
			}
			err = set(&partValue{parts: parts})
		case k == "resource":
			if _, ok := x.(map[string]any); !ok {
				return nil, fmt.Errorf("resource is not an object")
			}
			err = set(&partValue{json: x, resource: true})
		}
		if err != nil {
			return nil, err
		}
	}
	if v == nil {
		return nil, fmt.Errorf("it has no value")
	}
	return v, nil
}

func (op *fhirOp) apply(root map[string]any, typ reflect.Type) *Error {
	switch op.kind {
	case "add":
		target, err := op.one(root, typ)
		if err != nil {
			return err
		}
		obj, otyp := target.content()
		f, ferr := fieldOf(otyp, op.name, op.value.typ)
		if ferr != nil {
			return inapplicable("%v", ferr)
		}
		val, ext, verr := op.value.forField(f)
		if verr != nil {
			return inapplicable("%v", verr)
		}
		if f.Repeated {
			values, exts := items(obj, f.Name)
			setItems(obj, f.Name, append(values, val), append(exts, orNil(ext)))
			return nil
		}
		if name := present(obj, otyp, f); name != "" {
			return inapplicable("%s already has %s: use replace to change it", target.describe(), name)
		}
		setSingle(obj, f.Name, val, ext)
		return nil
	case "insert", "move":
		obj, f, err := op.list(root, typ)
		if err != nil {
			return err
		}
		values, exts := items(obj, f.Name)
		if op.kind == "insert" {
			if op.index > len(values) {
				return inapplicable("index %d is out of range: the list has %d items", op.index, len(values))
			}
			val, ext, verr := op.value.forField(f)
			if verr != nil {
				return inapplicable("%v", verr)
			}
			setItems(obj, f.Name, slices.Insert(values, op.index, val), slices.Insert(exts, op.index, orNil(ext)))
			return nil
		}
		for _, i := range []int{op.source, op.destination} {
			if i >= len(values) {
				return inapplicable("index %d is out of range: the list has %d items", i, len(values))
			}
		}
		setItems(obj, f.Name, moveItem(values, op.source, op.destination), moveItem(exts, op.source, op.destination))
		return nil
	case "delete":
		found, err := op.elements(root, typ)
		if err != nil || len(found) == 0 {
			return err
		}
		if len(found) > 1 {
			return inapplicable("it selects %d elements: delete removes one element at a time", len(found))
		}
		e := found[0]
		if e.parent == nil {
			return inapplicable("the resource itself cannot be deleted by a patch")
		}
		if e.index < 0 {
			delete(e.parent, e.key)
			delete(e.parent, "_"+e.key)
			return nil
		}
		values, exts := items(e.parent, e.key)
		setItems(e.parent, e.key, slices.Delete(values, e.index, e.index+1), slices.Delete(exts, e.index, e.index+1))
		return nil
	default: // replace
		e, err := op.one(root, typ)
		if err != nil {
			return err
		}
		if e.parent == nil {
			return inapplicable("the resource itself cannot be replaced by a patch: use update")
		}
		f := e.field
		if f.Choice != "" && op.value.typ != "" {
			// The new value may be another of the choice's types.
			nf, ferr := fieldOf(e.owner, strings.TrimSuffix(f.Choice, "[x]"), op.value.typ)
			if ferr != nil {
				return inapplicable("%v", ferr)
			}
			f = nf
		}
		val, ext, verr := op.value.forField(f)
		if verr != nil {
			return inapplicable("%v", verr)
		}
		// The whole element is replaced, a primitive's id and extensions
		// with its value: an extension such as patient-birthTime qualifies
		// the value it was written for and would contradict a new one.
		if e.index >= 0 {
			values, exts := items(e.parent, e.key)
			values[e.index] = val
			exts[e.index] = orNil(ext)
			setItems(e.parent, e.key, values, exts)
			return nil
		}
		delete(e.parent, e.key)
		delete(e.parent, "_"+e.key)
		setSingle(e.parent, f.Name, val, ext)
		return nil
	}
}

// elements returns the elements the operation's path selects.
func (op *fhirOp) elements(root map[string]any, typ reflect.Type) ([]*element, *Error) {
	found, err := selectElements(root, typ, op.expr, op.env)
	if err != nil && err.plain {
		return op.plainElements(root, typ, err)
	}
	return found, err
}

// plainElements returns the elements a path ending in "id" or "url"
// selects: Element.id, a resource's id and Extension.url are plain strings
// to FHIRPath, values with no place in the resource, so they are found as
// that element of each element the path before the name selects (which
// is what the path selects). err is the error of any other path.
func (op *fhirOp) plainElements(root map[string]any, typ reflect.Type, err *Error) ([]*element, *Error) {
	prefix, name, ok := splitPath(op.path)
	if !ok || name != "id" && name != "url" {
		return nil, err
	}
	expr, perr := fhirpath.Parse(prefix)
	if perr != nil {
		return nil, err
	}
	owners, oerr := selectElements(root, typ, expr, op.env)
	if oerr != nil {
		return nil, oerr
	}
	var found []*element
	for _, o := range owners {
		obj := o.obj
		if o.primitive() {
			obj = o.companion()
		}
		f, ferr := fieldOf(o.typ, name, "")
		if obj == nil || ferr != nil {
			continue
		}
		if _, ok := obj[name]; ok {
			found = append(found, &element{parent: obj, key: name, index: -1, field: f, owner: o.typ})
		}
	}
	return found, nil
}

// one returns the one element the operation's path must select.
func (op *fhirOp) one(root map[string]any, typ reflect.Type) (*element, *Error) {
	found, err := op.elements(root, typ)
	if err != nil {
		return nil, err
	}
	switch len(found) {
	case 0:
		return nil, inapplicable("it selects no element: %s needs exactly one", op.kind)
	case 1:
		return found[0], nil
	default:
		return nil, inapplicable("it selects %d elements: %s needs exactly one", len(found), op.kind)
	}
}

// list returns the list that insert and move work on: the object holding
// it and its element definition. The path selects the list's items; when
// it selects none, the list may be empty, and a path ending in an element
// name ("Patient.identifier") names it on the one element before.
func (op *fhirOp) list(root map[string]any, typ reflect.Type) (map[string]any, fhirjson.Field, *Error) {
	found, err := op.elements(root, typ)
	if err != nil {
		return nil, fhirjson.Field{}, err
	}
	if len(found) > 0 {
		first := found[0]
		for _, e := range found[1:] {
			if e.parent == nil || first.parent == nil || address(e.parent) != address(first.parent) || e.key != first.key {
				return nil, fhirjson.Field{}, inapplicable("it selects items of more than one list")
			}
		}
		if first.index < 0 {
			return nil, fhirjson.Field{}, inapplicable("it selects %s, which is not a list", first.describe())
		}
		return first.parent, first.field, nil
	}
	prefix, name, ok := splitPath(op.path)
	if !ok {
		return nil, fhirjson.Field{}, inapplicable("it selects no element, so there is no list to %s", op.kind)
	}
	expr, perr := fhirpath.Parse(prefix)
	if perr != nil {
		return nil, fhirjson.Field{}, malformed("%v", perr)
	}
	owners, err := selectElements(root, typ, expr, op.env)
	if err != nil {
		return nil, fhirjson.Field{}, err
	}
	if len(owners) != 1 {
		return nil, fhirjson.Field{}, inapplicable("%s selects %d elements: the list must belong to exactly one", prefix, len(owners))
	}
	obj, otyp := owners[0].content()
	f, ferr := fieldOf(otyp, name, "")
	if ferr != nil {
		return nil, fhirjson.Field{}, inapplicable("%v", ferr)
	}
	if !f.Repeated {
		return nil, fhirjson.Field{}, inapplicable("%s is not a list", name)
	}
	return obj, f, nil
}

// selectElements evaluates expr on the resource with env and returns the
// elements it selects.
func selectElements(root map[string]any, typ reflect.Type, expr *fhirpath.Expression, env *fhirpath.Env) ([]*element, *Error) {
	ix := newIndex(root, typ)
	defer ix.close()
	values, err := expr.Evaluate(root, env)
	if errors.Is(err, fhirpath.ErrTooCostly) {
		return nil, &Error{Kind: TooCostly, Message: err.Error()}
	}
	if err != nil {
		return nil, inapplicable("%v", err)
	}
	found := make([]*element, 0, len(values))
	for _, v := range values {
		e, err := ix.locate(v)
		if err != nil {
			_, node := v.(*fhirpath.Node)
			return nil, &Error{Kind: Inapplicable, Message: err.Error(), plain: !node}
		}
		found = append(found, e)
	}
	return found, nil
}

// companion returns the "_name" companion of primitive e, where its id and
// extensions are, or nil when it has none.
func (e *element) companion() map[string]any {
	if e.index < 0 {
		m, _ := e.parent["_"+e.key].(map[string]any)
		return m
	}
	_, exts := items(e.parent, e.key)
	m, _ := exts[e.index].(map[string]any)
	return m
}

// content returns the object that holds e's children and its Go type. For
// a primitive that is its "_name" companion, created when absent, where
// its id and extensions go.
func (e *element) content() (map[string]any, reflect.Type) {
	if e.obj != nil {
		return e.obj, e.typ
	}
	if e.index < 0 {
		m, _ := e.parent["_"+e.key].(map[string]any)
		if m == nil {
			m = map[string]any{}
			e.parent["_"+e.key] = m
		}
		return m, e.typ
	}
	values, exts := items(e.parent, e.key)
	m, _ := exts[e.index].(map[string]any)
	if m == nil {
		m = map[string]any{}
		exts[e.index] = m
		setItems(e.parent, e.key, values, exts)
	}
	return m, e.typ
}

// fieldOf finds element name of Go type t. For a choice element, name is
// either the JSON name ("deceasedDateTime") or the element's name
// ("deceased") with the value's type deciding which of its JSON names.
func fieldOf(t reflect.Type, name, valueType string) (fhirjson.Field, error) {
	fields, _ := fhirjson.Fields(t)
	for _, f := range fields {
		if f.Name == name {
			return f, nil
		}
	}
	choice := false
	for _, f := range fields {
		if f.Choice == name+"[x]" {
			choice = true
			if valueType != "" && f.Name == name+valueType {
				return f, nil
			}
		}
	}
	switch {
	case choice && valueType == "":
		return fhirjson.Field{}, fmt.Errorf("%s[x] is a choice of types: give the value as value[x] so that its type is known", name)
	case choice:
		return fhirjson.Field{}, fmt.Errorf("%s[x] cannot be a %s", name, valueType)
	}
	return fhirjson.Field{}, fmt.Errorf("%s has no element %q", typeName(t), name)
}

func typeName(t reflect.Type) string {
	if t == nil {
		return "the element"
	}
	return t.Name()
}

// quantities are the Quantity type and its specialisations, which share its
// elements.
var quantities = map[string]bool{"Quantity": true, "Age": true, "Count": true, "Distance": true, "Duration": true}

// forField returns the JSON value, and for a primitive its companion, that v
// gives element f. A primitive value may be given as any primitive type
// (the codec checks its lexical form when the result is decoded); a complex
// value must be of the element's type.
func (v *partValue) forField(f fhirjson.Field) (any, map[string]any, error) {
	switch f.Kind {
	case fhirjson.Primitive, fhirjson.ElementID, fhirjson.URL:
		if v.parts != nil || v.resource {
			return nil, nil, fmt.Errorf("%s is a primitive: give its value as value[x]", f.Name)
		}
		switch v.json.(type) {
		case map[string]any, []any:
			return nil, nil, fmt.Errorf("%s is a primitive but the value is a %s", f.Name, v.typ)
		}
		if f.Kind != fhirjson.Primitive {
			if _, ok := v.json.(string); !ok || v.ext != nil {
				return nil, nil, fmt.Errorf("%s is a plain string without extensions", f.Name)
			}
		}
		return v.json, v.ext, nil
	case fhirjson.Complex:
		if v.resource {
			return nil, nil, fmt.Errorf("%s is a %s, not a resource", f.Name, f.Type.Name())
		}
		if v.parts != nil {
			obj, err := buildObject(v.parts, f.Type)
			return obj, nil, err
		}
		obj, ok := v.json.(map[string]any)
		if want := f.Type.Name(); !ok || v.typ != want && !(quantities[v.typ] && quantities[want]) {
			return nil, nil, fmt.Errorf("%s is a %s but the value is a %s", f.Name, want, v.typ)
		}
		return obj, nil, nil
	default: // a resource
		if !v.resource {
			return nil, nil, fmt.Errorf("%s holds a resource: give it as the resource of the value part", f.Name)
		}
		return v.json, nil, nil
	}
}

// buildObject builds a complex value of Go type t from parts naming its
// elements; repeated names add to a list.
func buildObject(parts []any, t reflect.Type) (map[string]any, error) {
	obj := map[string]any{}
	for _, p := range parts {
		part, _ := p.(map[string]any)
		name, _ := part["name"].(string)
		if name == "" {
			return nil, fmt.Errorf("a part of the value has no name")
		}
		v, err := readValue(part)
		if err != nil {
			return nil, fmt.Errorf("part %q: %w", name, err)
		}
		f, err := fieldOf(t, name, v.typ)
		if err != nil {
			return nil, err
		}
		val, ext, err := v.forField(f)
		if err != nil {
			return nil, err
		}
		if f.Repeated {
			values, exts := items(obj, f.Name)
			setItems(obj, f.Name, append(values, val), append(exts, orNil(ext)))
			continue
		}
		if name := present(obj, t, f); name != "" {
			return nil, fmt.Errorf("part %q is given twice", name)
		}
		setSingle(obj, f.Name, val, ext)
	}
	return obj, nil
}

// present returns the JSON name under which obj already holds f, or any
// other type of the same choice element, and "" when it holds none.
func present(obj map[string]any, t reflect.Type, f fhirjson.Field) string {
	fields, _ := fhirjson.Fields(t)
	for _, g := range fields {
		if g.Name != f.Name && (f.Choice == "" || g.Choice != f.Choice) {
			continue
		}
		_, v := obj[g.Name]
		_, e := obj["_"+g.Name]
		if v || e {
			return g.Name
		}
	}
	return ""
}

// items returns copies of the list under key and of its primitive
// companion, the same length; the companion holds nils where no item has
// an id or extension.
func items(obj map[string]any, key string) (values, exts []any) {
	values = asList(obj[key])
	exts = asList(obj["_"+key])
	n := max(len(values), len(exts))
	return pad(values, n), pad(exts, n)
}

func asList(v any) []any {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		return slices.Clone(x)
	default:
		return []any{x}
	}
}

func pad(list []any, n int) []any {
	for len(list) < n {
		list = append(list, nil)
	}
	return list
}

// setItems stores a list and its companion, leaving out what is empty.
func setItems(obj map[string]any, key string, values, exts []any) {
	if len(values) == 0 {
		delete(obj, key)
		delete(obj, "_"+key)
		return
	}
	obj[key] = values
	if slices.ContainsFunc(exts, func(x any) bool { return x != nil }) {
		obj["_"+key] = exts
	} else {
		delete(obj, "_"+key)
	}
}

// setSingle stores an element that does not repeat, with its companion.
func setSingle(obj map[string]any, key string, val any, ext map[string]any) {
	if val != nil {
		obj[key] = val
	}
	if ext != nil {
		obj["_"+key] = ext
	}
}

func moveItem(list []any, from, to int) []any {
	v := list[from]
	return slices.Insert(slices.Delete(list, from, from+1), to, v)
}

// orNil keeps a nil map from becoming a non-nil interface.
func orNil(m map[string]any) any {
	if m == nil {
		return nil
	}
	return m
}

// splitPath splits a FHIRPath path ending in an element name into the path
// before it and the name: "Patient.name.where(use = 'official').given"
// gives "Patient.name.where(use = 'official')" and "given".
func splitPath(path string) (prefix, name string, ok bool) {
	depth, last := 0, -1
	for i := 0; i < len(path); i++ {
		switch c := path[i]; c {
		case '(', '[':
			depth++
		case ')', ']':
			depth--
		case '\'', '`', '"':
			for i++; i < len(path) && path[i] != c; i++ {
				if path[i] == '\\' {
					i++
				}
			}
		case '.':
			if depth == 0 {
				last = i
			}
		}
	}
	if last < 0 {
		return "", "", false
	}
	prefix, name = strings.TrimSpace(path[:last]), strings.TrimSpace(path[last+1:])
	if len(name) > 2 && name[0] == '`' && name[len(name)-1] == '`' {
		name = name[1 : len(name)-1]
	} else if !isIdentifier(name) {
		return "", "", false
	}
	return prefix, name, prefix != ""
}

func isIdentifier(s string) bool {
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

// prune removes what operations can leave empty, which FHIR does not
// allow: objects without members, lists without items, and primitive
// companions without an id or extension. Companions go first, so that a
// list of primitives is kept while its companion holds something.
func prune(obj map[string]any) {
	for _, companions := range []bool{true, false} {
		for k, v := range obj {
			if strings.HasPrefix(k, "_") != companions {
				continue
			}
			switch x := v.(type) {
			case map[string]any:
				prune(x)
				if len(x) == 0 {
					delete(obj, k)
				}
			case []any:
				kept := x[:0]
				for _, item := range x {
					if m, ok := item.(map[string]any); ok {
						prune(m)
						if len(m) == 0 && !companions {
							continue
						}
						if len(m) == 0 {
							item = nil
						}
					}
					kept = append(kept, item)
				}
				if slices.ContainsFunc(kept, func(x any) bool { return x != nil }) || !companions && obj["_"+k] != nil {
					obj[k] = kept
				} else {
					delete(obj, k)
				}
			}
		}
	}
}
