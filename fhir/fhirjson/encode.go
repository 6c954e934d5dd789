package fhirjson

import (
	"fmt"
	"reflect"
	"strconv"
	"unicode/utf8"

	"carefhir/fhir"
	"carefhir/fhir/lexical"
)

// encoder writes the generated types as compact JSON. Elements with neither a
// value nor children are left out, so the output never holds "", {} or [].
type encoder struct {
	buf  []byte
	reg  *registry
	path []byte
}

func encode(r fhir.Resource) ([]byte, error) {
	e := &encoder{buf: make([]byte, 0, 2048), reg: loadRegistry()}
	if err := e.resource(r); err != nil {
		return nil, err
	}
	return e.buf, nil
}

func (e *encoder) errorf(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if len(e.path) == 0 {
		return fmt.Errorf("fhirjson: marshal: %s", msg)
	}
	return fmt.Errorf("fhirjson: marshal %s: %s", e.path, msg)
}

func (e *encoder) resource(r fhir.Resource) error {
	v := reflect.ValueOf(r)
	if r == nil || v.Kind() != reflect.Pointer || v.IsNil() {
		return e.errorf("nil resource")
	}
	si := e.reg.structs[v.Type().Elem()]
	if si == nil || si.resourceType == "" {
		return e.errorf("unsupported resource type %T", r)
	}
	root := len(e.path) == 0
	if root {
		e.path = append(e.path, si.resourceType...)
	}
	_, err := e.object(si, v.Elem())
	if root {
		e.path = e.path[:0]
	}
	return err
}

// object writes the struct v described by si as a JSON object. It writes
// nothing and returns false when the object would be empty.
func (e *encoder) object(si *structInfo, v reflect.Value) (bool, error) {
	for _, g := range si.choices {
		set := ""
		for _, i := range g.fields {
			if v.Field(i).IsNil() {
				continue
			}
			if set != "" {
				return false, e.errorf("more than one value for choice element %q: %q and %q", g.name, set, si.fields[i].name)
			}
			set = si.fields[i].name
		}
	}
	start := len(e.buf)
	e.buf = append(e.buf, '{')
	n := 0
	if si.resourceType != "" {
		e.buf = append(e.buf, `"resourceType":"`...)
		e.buf = append(e.buf, si.resourceType...)
		e.buf = append(e.buf, '"')
		n++
	}
	for i := range si.fields {
		f := &si.fields[i]
		pathMark := pushField(&e.path, f.name)
		err := e.member(&n, func() (bool, error) { return e.field(f, v.Field(f.index)) })
		e.path = e.path[:pathMark]
		if err != nil {
			return false, err
		}
	}
	if n == 0 {
		e.buf = e.buf[:start]
		return false, nil
	}
	e.buf = append(e.buf, '}')
	return true, nil
}

// member writes one member of an object or array with write, after a comma
// when *n members precede it. A member that writes nothing is removed again;
// one that does counts in *n.
func (e *encoder) member(n *int, write func() (bool, error)) error {
	mark := len(e.buf)
	if *n > 0 {
		e.buf = append(e.buf, ',')
	}
	ok, err := write()
	if err != nil {
		return err
	}
	if ok {
		*n++
	} else {
		e.buf = e.buf[:mark]
	}
	return nil
}

func (e *encoder) key(name string) {
	e.buf = append(e.buf, '"')
	e.buf = append(e.buf, name...)
	e.buf = append(e.buf, '"', ':')
}

// field writes field f (and for primitives its "_name" companion), reporting
// whether anything was written.
func (e *encoder) field(f *field, fv reflect.Value) (bool, error) {
	switch f.kind {
	case kindURL:
		s := fv.String()
		if s == "" {
			return false, nil
		}
		if !lexical.ValidURI(s) {
			return false, e.errorf("invalid uri %q", s)
		}
		e.key(f.name)
		return true, e.string(s)
	case kindElementID:
		if fv.IsNil() || fv.Elem().String() == "" {
			return false, nil
		}
		e.key(f.name)
		return true, e.string(fv.Elem().String())
	case kindPrimitive:
		if f.repeated {
			return e.primitiveArray(f, fv)
		}
		if fv.IsNil() {
			return false, nil
		}
		return e.primitive(f, fv.Elem())
	case kindComplex:
		if f.repeated {
			return e.array(f.name, fv, func(item reflect.Value) (bool, error) {
				if item.IsNil() {
					return false, nil
				}
				return e.object(f.elem, item.Elem())
			})
		}
		if fv.IsNil() {
			return false, nil
		}
		e.key(f.name)
		return e.object(f.elem, fv.Elem())
	case kindResource:
		if f.repeated {
			return e.array(f.name, fv, func(item reflect.Value) (bool, error) {
				if item.IsNil() {
					return false, nil
				}
				return true, e.resource(item.Interface().(fhir.Resource))
			})
		}
		if fv.IsNil() {
			return false, nil
		}
		e.key(f.name)
		return true, e.resource(fv.Interface().(fhir.Resource))
	}
	return false, nil
}

// array writes the slice fv as the property name, one item per call of item;
// items that write nothing are left out, and so is an array left empty.
func (e *encoder) array(name string, fv reflect.Value, item func(reflect.Value) (bool, error)) (bool, error) {
	if fv.Len() == 0 {
		return false, nil
	}
	e.key(name)
	e.buf = append(e.buf, '[')
	n := 0
	for i := range fv.Len() {
		pathMark := pushIndex(&e.path, i)
		err := e.member(&n, func() (bool, error) { return item(fv.Index(i)) })
		e.path = e.path[:pathMark]
		if err != nil {
			return false, err
		}
	}
	e.buf = append(e.buf, ']')
	return n > 0, nil
}

// primitive writes a single primitive p as "name" and "_name".
func (e *encoder) primitive(f *field, p reflect.Value) (bool, error) {
	wrote := false
	if !p.Field(primValue).IsNil() {
		e.key(f.name)
		if err := e.primitiveValue(f.prim, p.Field(primValue).Elem()); err != nil {
			return false, err
		}
		wrote = true
	}
	extras, err := e.extras(f.prim, p)
	if err != nil || extras == nil {
		return wrote, err
	}
	if wrote {
		e.buf = append(e.buf, ',')
	}
	e.key("_" + f.name)
	e.buf = append(e.buf, extras...)
	return true, nil
}

// extras renders the "_name" object of primitive p: its id and extensions,
// or nil when it has none.
func (e *encoder) extras(prim *primitive, p reflect.Value) ([]byte, error) {
	if p.Field(primID).IsNil() && p.Field(primExtension).Len() == 0 {
		return nil, nil
	}
	if prim.noExtensions {
		return nil, e.errorf("%s elements cannot have an id or extensions", prim.name)
	}
	sub := &encoder{reg: e.reg, path: e.path}
	ok, err := sub.object(e.reg.primitiveInfo(prim), p)
	if err != nil || !ok {
		return nil, err
	}
	return sub.buf, nil
}

// primitiveArray writes a repeated primitive as "name" and "_name" arrays
// aligned by index, with null where an item has no value or no extras.
func (e *encoder) primitiveArray(f *field, fv reflect.Value) (bool, error) {
	type item struct {
		value  reflect.Value
		extras []byte
	}
	items := make([]item, 0, fv.Len())
	values, extras := false, false
	for i := range fv.Len() {
		p := fv.Index(i)
		if p.IsNil() {
			continue
		}
		pathMark := pushIndex(&e.path, i)
		x, err := e.extras(f.prim, p.Elem())
		e.path = e.path[:pathMark]
		if err != nil {
			return false, err
		}
		it := item{value: p.Elem().Field(primValue), extras: x}
		if it.value.IsNil() && x == nil {
			continue
		}
		values = values || !it.value.IsNil()
		extras = extras || x != nil
		items = append(items, it)
	}
	if values {
		e.key(f.name)
		e.buf = append(e.buf, '[')
		for i, it := range items {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			if it.value.IsNil() {
				e.buf = append(e.buf, "null"...)
				continue
			}
			pathMark := pushIndex(&e.path, i)
			err := e.primitiveValue(f.prim, it.value.Elem())
			e.path = e.path[:pathMark]
			if err != nil {
				return false, err
			}
		}
		e.buf = append(e.buf, ']')
	}
	if extras {
		if values {
			e.buf = append(e.buf, ',')
		}
		e.key("_" + f.name)
		e.buf = append(e.buf, '[')
		for i, it := range items {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			if it.extras == nil {
				e.buf = append(e.buf, "null"...)
			} else {
				e.buf = append(e.buf, it.extras...)
			}
		}
		e.buf = append(e.buf, ']')
	}
	return values || extras, nil
}

// primitiveValue writes the value v of a primitive of type p, checking that it
// is valid for the type.
func (e *encoder) primitiveValue(p *primitive, v reflect.Value) error {
	switch p.value {
	case valueBoolean:
		e.buf = strconv.AppendBool(e.buf, v.Bool())
	case valueInteger:
		n := v.Int()
		if n < p.min || n > maxInt32 {
			return e.errorf("%s %d out of range", p.name, n)
		}
		e.buf = strconv.AppendInt(e.buf, n, 10)
	case valueDecimal:
		s := v.String()
		if !lexical.ValidDecimal(s) {
			return e.errorf("invalid decimal %q", s)
		}
		e.buf = append(e.buf, s...)
	default:
		s := v.String()
		if !p.valid(s) {
			return e.errorf("invalid %s %q", p.name, s)
		}
		return e.string(s)
	}
	return nil
}

// string writes s as a JSON string. Only '"', '\\' and control characters are
// escaped, so non-ASCII text stays readable.
func (e *encoder) string(s string) error {
	if !utf8.ValidString(s) {
		return e.errorf("string is not valid UTF-8")
	}
	const hex = "0123456789abcdef"
	e.buf = append(e.buf, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		e.buf = append(e.buf, s[start:i]...)
		switch c {
		case '"', '\\':
			e.buf = append(e.buf, '\\', c)
		case '\n':
			e.buf = append(e.buf, '\\', 'n')
		case '\r':
			e.buf = append(e.buf, '\\', 'r')
		case '\t':
			e.buf = append(e.buf, '\\', 't')
		default:
			e.buf = append(e.buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	e.buf = append(e.buf, s[start:]...)
	e.buf = append(e.buf, '"')
	return nil
}
