package patch

import (
	"fmt"
	"reflect"
	"strconv"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/fhir/fhirpath"
)

// element is where an element of the resource sits in its JSON tree:
// parent[key], or parent[key][index] when the element repeats. A primitive
// element is its value at that place together with the same place in the
// "_key" companion that holds its id and extensions.
type element struct {
	parent map[string]any // nil for the resource itself
	key    string
	index  int            // -1 for an element that does not repeat
	field  fhirjson.Field // the element's definition; zero for the resource
	typ    reflect.Type   // Go struct type of the element's content
	owner  reflect.Type   // Go struct type of parent
	obj    map[string]any // the content of a complex element or resource; nil for a primitive
}

func (e *element) primitive() bool { return e.field.Kind == fhirjson.Primitive }

// describe names the element for messages, such as "name[1]".
func (e *element) describe() string {
	if e.parent == nil {
		return "the resource"
	}
	if e.index < 0 {
		return e.key
	}
	return e.key + "[" + strconv.Itoa(e.index) + "]"
}

// An index maps the values a FHIRPath expression returns back to their place
// in the tree. Complex elements are JSON objects, known by their address.
// Primitives are plain strings, numbers and booleans with no identity, so
// while the index exists every primitive carries a unique element id in its
// "_key" companion (the evaluator merges the companion into the primitive's
// node, where "id" reads it back). close removes those ids again, leaving the
// tree as it was; an expression that reads the id of a primitive sees the
// marker while the index is open, which is the price of this approach.
type index struct {
	objects    map[uintptr]*element
	primitives map[string]*element
	undo       []func()
}

// markerPrefix starts the ids that mark primitives; the characters are not
// valid in an element id, so no real id collides with them.
const markerPrefix = "\x00patch:"

var readID = fhirpath.MustParse("id")

// newIndex indexes the resource root, whose Go type is typ.
func newIndex(root map[string]any, typ reflect.Type) *index {
	ix := &index{objects: map[uintptr]*element{}, primitives: map[string]*element{}}
	ix.objects[address(root)] = &element{index: -1, typ: typ, obj: root}
	ix.walk(root, typ)
	return ix
}

// close restores the tree: every marker is removed, in reverse order.
func (ix *index) close() {
	for i := len(ix.undo) - 1; i >= 0; i-- {
		ix.undo[i]()
	}
	ix.undo = nil
}

func address(m map[string]any) uintptr { return reflect.ValueOf(m).Pointer() }

// resourceType returns the Go struct type of a resource held as JSON.
func resourceType(obj map[string]any) reflect.Type {
	rt, _ := obj["resourceType"].(string)
	res, ok := fhir.NewResource(rt)
	if !ok {
		return nil
	}
	return reflect.TypeOf(res).Elem()
}

func (ix *index) walk(obj map[string]any, t reflect.Type) {
	fields, _ := fhirjson.Fields(t)
	for _, f := range fields {
		switch f.Kind {
		case fhirjson.Primitive:
			ix.primitive(obj, t, f)
		case fhirjson.Complex, fhirjson.Resource:
			each(obj[f.Name], func(i int, item any) {
				m, ok := item.(map[string]any)
				if !ok {
					return
				}
				typ := f.Type
				if f.Kind == fhirjson.Resource {
					if typ = resourceType(m); typ == nil {
						return
					}
				}
				ix.objects[address(m)] = &element{parent: obj, key: f.Name, index: i, field: f, typ: typ, owner: t, obj: m}
				ix.walk(m, typ)
			})
		}
	}
}

// each calls fn for the items of an array (with their index) or for a
// single value (with index -1).
func each(v any, fn func(i int, item any)) {
	switch x := v.(type) {
	case nil:
	case []any:
		for i, item := range x {
			fn(i, item)
		}
	default:
		fn(-1, v)
	}
}

// primitive marks each occurrence of primitive element f of obj.
func (ix *index) primitive(obj map[string]any, t reflect.Type, f fhirjson.Field) {
	key := "_" + f.Name
	v, hasValue := obj[f.Name]
	ext, hasExt := obj[key]
	if !hasValue && !hasExt {
		return
	}
	ix.undo = append(ix.undo, restore(obj, key, ext, hasExt))
	values, repeated := v.([]any)
	exts, extRepeated := ext.([]any)
	if !repeated && !extRepeated {
		m, _ := ext.(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		obj[key] = m
		ix.mark(m, &element{parent: obj, key: f.Name, index: -1, field: f, typ: f.Type, owner: t})
		return
	}
	marked := make([]any, max(len(values), len(exts)))
	copy(marked, exts)
	for i := range marked {
		m, _ := marked[i].(map[string]any)
		if m == nil && (i >= len(values) || values[i] == nil) {
			continue // no element here: a null on both sides
		}
		if m == nil {
			m = map[string]any{}
			marked[i] = m
		}
		ix.mark(m, &element{parent: obj, key: f.Name, index: i, field: f, typ: f.Type, owner: t})
	}
	obj[key] = marked
}

// mark gives the primitive whose companion is ext its marker id, then
// indexes the primitive's own extensions.
func (ix *index) mark(ext map[string]any, e *element) {
	id := markerPrefix + strconv.Itoa(len(ix.primitives))
	old, had := ext["id"]
	ext["id"] = id
	ix.undo = append(ix.undo, restore(ext, "id", old, had))
	ix.primitives[id] = e
	ix.walk(ext, e.typ)
}

func restore(obj map[string]any, key string, old any, had bool) func() {
	return func() {
		if had {
			obj[key] = old
		} else {
			delete(obj, key)
		}
	}
}

// locate returns the element a FHIRPath result stands for, or an error when
// it is not an element of the resource (a computed value, or an element of
// another resource reached through resolve()).
func (ix *index) locate(v fhirpath.Value) (*element, error) {
	n, ok := v.(*fhirpath.Node)
	if !ok {
		return nil, fmt.Errorf("it selects the value %s, which is not an element of the resource that a patch can change", describeValue(v))
	}
	if m, ok := n.JSON().(map[string]any); ok {
		if e := ix.objects[address(m)]; e != nil {
			return e, nil
		}
	} else if ids, err := readID.Evaluate(n, nil); err == nil && len(ids) == 1 {
		if id, ok := ids[0].(fhirpath.String); ok {
			if e := ix.primitives[string(id)]; e != nil {
				return e, nil
			}
		}
	}
	return nil, fmt.Errorf("it selects a %s that is not part of this resource (such as one reached through resolve())", n.Type())
}

func describeValue(v fhirpath.Value) string {
	if s, ok := v.(fmt.Stringer); ok {
		return fmt.Sprintf("%s (%s)", s, v.TypeName())
	}
	return fmt.Sprintf("%v (%s)", v, v.TypeName())
}
