package fhirxml

import (
	"reflect"
	"strconv"
	"sync"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
)

// typeInfo is the XML view of a generated struct type: which of its fields
// are attributes and which child elements.
type typeInfo struct {
	typ          reflect.Type
	resourceType string // for resources, their type name
	primitive    bool   // a primitive type: it also has a value attribute
	fields       []fhirjson.Field
	elems        []*typeInfo // per field: the table of a Primitive or Complex element
	children     map[string]int
	attrs        map[string]int
	choices      [][]int // positions in fields of the variants of each choice element
}

// choiceOf returns the group of variants field i belongs to, or nil.
func (ti *typeInfo) choiceOf(i int) []int {
	if ti.fields[i].Choice == "" {
		return nil
	}
	for _, g := range ti.choices {
		if ti.fields[g[0]].Choice == ti.fields[i].Choice {
			return g
		}
	}
	return nil
}

// registry holds the tables of every generated type. It is built once, on
// first use, and never changes afterwards.
type registry struct {
	types     map[reflect.Type]*typeInfo
	resources map[string]*typeInfo
}

var (
	loadRegistry = sync.OnceValue(buildRegistry)
	xhtmlType    = reflect.TypeFor[fhir.Xhtml]()
	uriType      = reflect.TypeFor[fhir.Uri]()
)

func buildRegistry() *registry {
	r := &registry{types: map[reflect.Type]*typeInfo{}, resources: map[string]*typeInfo{}}
	for _, name := range fhir.ResourceTypes() {
		res, _ := fhir.NewResource(name)
		ti := r.info(reflect.TypeOf(res).Elem())
		ti.resourceType = name
		r.resources[name] = ti
	}
	return r
}

// resourceOf returns the table of resource r and the struct it points to;
// ok is false for nil and for types that are not generated resources.
func (r *registry) resourceOf(res fhir.Resource) (ti *typeInfo, v reflect.Value, ok bool) {
	v = reflect.ValueOf(res)
	if res == nil || v.Kind() != reflect.Pointer || v.IsNil() {
		return nil, v, false
	}
	ti = r.types[v.Type().Elem()]
	return ti, v.Elem(), ti != nil && ti.resourceType != ""
}

// info returns the table of t, building it (and those of the types it refers
// to) when needed.
func (r *registry) info(t reflect.Type) *typeInfo {
	if ti, ok := r.types[t]; ok {
		return ti
	}
	fields, ok := fhirjson.Fields(t)
	if !ok {
		panic("fhirxml: " + t.String() + " is not a generated type")
	}
	ti := &typeInfo{
		typ:       t,
		primitive: fhirjson.IsPrimitive(t),
		fields:    fields,
		elems:     make([]*typeInfo, len(fields)),
		children:  map[string]int{},
		attrs:     map[string]int{},
	}
	r.types[t] = ti // before the fields, for recursive types
	groups := map[string]int{}
	for i, f := range fields {
		switch f.Kind {
		case fhirjson.ElementID, fhirjson.URL:
			ti.attrs[f.Name] = i
			continue
		case fhirjson.Primitive, fhirjson.Complex:
			ti.elems[i] = r.info(f.Type)
		}
		ti.children[f.Name] = i
		if f.Choice != "" {
			g, ok := groups[f.Choice]
			if !ok {
				g = len(ti.choices)
				groups[f.Choice] = g
				ti.choices = append(ti.choices, nil)
			}
			ti.choices[g] = append(ti.choices[g], i)
		}
	}
	return ti
}

// A path is a FHIRPath-style location, e.g. "Patient.name[0].given[1]".
type path []byte

// field appends ".name" (or just name at the root) and returns the length to
// truncate back to.
func (p *path) field(name string) int {
	n := len(*p)
	if n > 0 {
		*p = append(*p, '.')
	}
	*p = append(*p, name...)
	return n
}

// index appends "[i]" and returns the length to truncate back to.
func (p *path) index(i int) int {
	n := len(*p)
	*p = append(*p, '[')
	*p = strconv.AppendInt(*p, int64(i), 10)
	*p = append(*p, ']')
	return n
}
