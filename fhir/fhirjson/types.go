package fhirjson

import (
	"fmt"
	"reflect"
	"strings"
	"sync"

	"carefhir/fhir"
)

// fieldKind tells how a struct field is represented in JSON.
type fieldKind uint8

const (
	kindPrimitive fieldKind = iota // *fhir.String etc.: a JSON value plus "_name"
	kindComplex                    // *fhir.HumanName etc.: a JSON object
	kindResource                   // fhir.Resource: an object with resourceType
	kindElementID                  // *string: Element.id, a plain JSON string
	kindURL                        // string: Extension.url, a plain JSON string
)

// field describes one struct field.
type field struct {
	name     string // JSON property name
	index    int    // Go field index
	kind     fieldKind
	repeated bool
	prim     *primitive  // kindPrimitive
	elem     *structInfo // kindComplex
	choice   int         // 1 + index in structInfo.choices, or 0
}

// structInfo describes a generated struct type.
type structInfo struct {
	typ          reflect.Type
	resourceType string // for resources, their type name
	fields       []field
	byName       map[string]int // JSON name -> field index; "_name" -> field index | underscore
	choices      []choiceGroup
}

type choiceGroup struct {
	name   string // e.g. "value[x]"
	fields []int
}

// underscore marks a byName entry for the "_name" property of a primitive.
const underscore = 1 << 30

// registry holds the field tables of every generated type. It is built once,
// on first use, and never changes afterwards.
type registry struct {
	structs    map[reflect.Type]*structInfo
	primitives map[reflect.Type]*primitive
	// elements holds, per primitive type, the table of its "_name" object:
	// the id and extension fields of the primitive struct.
	elements map[*primitive]*structInfo
}

var (
	resourceInterface = reflect.TypeFor[fhir.Resource]()
	loadRegistry      = sync.OnceValue(buildRegistry)
)

func buildRegistry() *registry {
	r := &registry{
		structs:    map[reflect.Type]*structInfo{},
		primitives: map[reflect.Type]*primitive{},
		elements:   map[*primitive]*structInfo{},
	}
	for i := range primitives {
		p := &primitives[i]
		r.primitives[p.typ] = p
	}
	extension := r.structOf(reflect.TypeFor[fhir.Extension]())
	for i := range primitives {
		p := &primitives[i]
		r.elements[p] = &structInfo{
			typ: p.typ,
			fields: []field{
				{name: "id", index: primID, kind: kindElementID},
				{name: "extension", index: primExtension, kind: kindComplex, repeated: true, elem: extension},
			},
			byName: map[string]int{"id": primID, "extension": primExtension},
		}
	}
	for _, name := range fhir.ResourceTypes() {
		res, _ := fhir.NewResource(name)
		si := r.structOf(reflect.TypeOf(res).Elem())
		si.resourceType = name
	}
	return r
}

// structOf returns the table of struct type t, building it (and those of the
// types it refers to) when needed.
func (r *registry) structOf(t reflect.Type) *structInfo {
	if si, ok := r.structs[t]; ok {
		return si
	}
	si := &structInfo{typ: t, byName: map[string]int{}}
	r.structs[t] = si // before the fields, for recursive types
	choices := map[string]int{}
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, ok := sf.Tag.Lookup("fhir")
		if !ok {
			panic(fmt.Sprintf("fhirjson: %s.%s has no fhir tag", t.Name(), sf.Name))
		}
		name, choice, _ := strings.Cut(tag, ",choice=")
		f := field{name: name, index: i}
		ft := sf.Type
		if ft.Kind() == reflect.Slice {
			f.repeated = true
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.String:
			f.kind = kindURL
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.String:
			f.kind = kindElementID
		case ft == resourceInterface:
			f.kind = kindResource
		case ft.Kind() == reflect.Pointer && r.primitives[ft.Elem()] != nil:
			f.kind = kindPrimitive
			f.prim = r.primitives[ft.Elem()]
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct:
			f.kind = kindComplex
			f.elem = r.structOf(ft.Elem())
		default:
			panic(fmt.Sprintf("fhirjson: %s.%s has unsupported type %s", t.Name(), sf.Name, sf.Type))
		}
		if choice != "" {
			g, ok := choices[choice]
			if !ok {
				si.choices = append(si.choices, choiceGroup{name: choice + "[x]"})
				g = len(si.choices) - 1
				choices[choice] = g
			}
			si.choices[g].fields = append(si.choices[g].fields, i)
			f.choice = g + 1
		}
		si.fields = append(si.fields, f)
		si.byName[name] = i
		if f.kind == kindPrimitive {
			si.byName["_"+name] = i | underscore
		}
	}
	return si
}

// primitiveInfo returns the table of the "_name" object of primitive p.
func (r *registry) primitiveInfo(p *primitive) *structInfo { return r.elements[p] }
