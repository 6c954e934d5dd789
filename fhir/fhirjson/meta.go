package fhirjson

import (
	"fmt"
	"reflect"
	"strconv"

	"carefhir/fhir/lexical"
)

// This file exposes, read-only, the field tables and primitive rules the
// codec is built on, so that other representations of the same model (XML)
// walk the generated types the same way and accept the same values.

// FieldKind tells how an element of a generated type is held in Go.
type FieldKind uint8

const (
	// Primitive is a pointer to a generated primitive type, e.g. *fhir.Date.
	Primitive FieldKind = iota + 1
	// Complex is a pointer to a generated data type or backbone element.
	Complex
	// Resource is a resource held by another one: fhir.Resource.
	Resource
	// ElementID is Element.id, a *string: a plain string in JSON, an
	// attribute in XML.
	ElementID
	// URL is Extension.url, a string: a plain string in JSON, an attribute
	// in XML.
	URL
)

// Field describes one element of a generated struct type.
type Field struct {
	// Name is the JSON property name, which is also the XML element name:
	// "birthDate", or "valueQuantity" for a variant of a choice element.
	Name string
	// Index is the index of the Go struct field.
	Index int
	Kind  FieldKind
	// Repeated is set when the Go field is a slice.
	Repeated bool
	// Choice is the definition name of the choice element this field is a
	// variant of, e.g. "value[x]", and "" for other fields.
	Choice string
	// Type is the struct type (not the pointer) of a Primitive or Complex
	// element, and nil for the other kinds.
	Type reflect.Type
}

// Fields returns the elements of t in definition order. t is a generated
// struct type (not a pointer): a resource, a data type or backbone element, or
// a primitive type, for which the result is its id and extension (the value
// itself is read and written with NewPrimitive and PrimitiveText). ok is false
// when t is not a generated type.
func Fields(t reflect.Type) (fields []Field, ok bool) {
	reg := loadRegistry()
	si := reg.structs[t]
	if p := reg.primitives[t]; p != nil {
		si = reg.primitiveInfo(p)
	}
	if si == nil {
		return nil, false
	}
	fields = make([]Field, len(si.fields))
	for i, f := range si.fields {
		out := Field{Name: f.name, Index: f.index, Repeated: f.repeated}
		switch f.kind {
		case kindPrimitive:
			out.Kind, out.Type = Primitive, f.prim.typ
		case kindComplex:
			out.Kind, out.Type = Complex, f.elem.typ
		case kindResource:
			out.Kind = Resource
		case kindElementID:
			out.Kind = ElementID
		case kindURL:
			out.Kind = URL
		}
		if f.choice != 0 {
			out.Choice = si.choices[f.choice-1].name
		}
		fields[i] = out
	}
	return fields, true
}

// IsPrimitive reports whether t is a generated primitive type, e.g. fhir.Date.
func IsPrimitive(t reflect.Type) bool {
	return loadRegistry().primitives[t] != nil
}

// NewPrimitive returns a new primitive of type t (a generated primitive type,
// not a pointer) holding the value whose lexical form is text, as a pointer:
// "true" for a boolean, "1.50" for a decimal (kept as written). It fails, with
// the message the JSON decoder gives, when text is not a valid value of the type.
func NewPrimitive(t reflect.Type, text string) (reflect.Value, error) {
	p := loadRegistry().primitives[t]
	if p == nil {
		return reflect.Value{}, fmt.Errorf("%s is not a primitive type", t)
	}
	prim, value := p.box()
	switch p.value {
	case valueBoolean:
		if text != "true" && text != "false" {
			return reflect.Value{}, fmt.Errorf("invalid boolean %q", truncate(text))
		}
		value.SetBool(text == "true")
	case valueInteger:
		n, msg := p.parseInteger(text)
		if msg != "" {
			return reflect.Value{}, fmt.Errorf("invalid %s %q: %s", p.name, truncate(text), msg)
		}
		value.SetInt(n)
	case valueDecimal:
		if !lexical.ValidDecimal(text) {
			return reflect.Value{}, fmt.Errorf("invalid decimal %q", truncate(text))
		}
		value.SetString(text)
	default:
		if !p.valid(text) {
			return reflect.Value{}, fmt.Errorf("invalid %s %q", p.name, truncate(text))
		}
		if msg := p.dayFault(text); msg != "" {
			return reflect.Value{}, fmt.Errorf("invalid %s %q: %s", p.name, truncate(text), msg)
		}
		value.SetString(text)
	}
	return prim, nil
}

// PrimitiveText returns the lexical form of the value of p, a generated
// primitive or a pointer to one, and false when it has no value. It fails
// when the value is not valid for the type, as Marshal does.
func PrimitiveText(p reflect.Value) (text string, ok bool, err error) {
	if p.Kind() == reflect.Pointer {
		if p.IsNil() {
			return "", false, nil
		}
		p = p.Elem()
	}
	prim := loadRegistry().primitives[p.Type()]
	if prim == nil {
		return "", false, fmt.Errorf("%s is not a primitive type", p.Type())
	}
	v := p.Field(primValue)
	if v.IsNil() {
		return "", false, nil
	}
	switch prim.value {
	case valueBoolean:
		return strconv.FormatBool(v.Elem().Bool()), true, nil
	case valueInteger:
		n := v.Elem().Int()
		if n < prim.min || n > maxInt32 {
			return "", false, fmt.Errorf("%s %d out of range", prim.name, n)
		}
		return strconv.FormatInt(n, 10), true, nil
	case valueDecimal:
		if s := v.Elem().String(); !lexical.ValidDecimal(s) {
			return "", false, fmt.Errorf("invalid decimal %q", truncate(s))
		}
	default:
		if s := v.Elem().String(); !prim.valid(s) {
			return "", false, fmt.Errorf("invalid %s %q", prim.name, truncate(s))
		}
	}
	return v.Elem().String(), true, nil
}
