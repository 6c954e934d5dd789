package fhirxml

import (
	"fmt"
	"reflect"
	"unicode/utf8"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/fhir/lexical"
)

// encoder writes the generated types as XML. Elements with neither a value
// nor children are left out, so the output never holds an empty element.
type encoder struct {
	buf  []byte
	reg  *registry
	path path
	// indent, when not empty, puts each element on a line of its own,
	// indented by depth.
	indent string
	depth  int
}

func encode(r fhir.Resource, indent string) ([]byte, error) {
	e := &encoder{buf: make([]byte, 0, 4096), reg: loadRegistry(), indent: indent}
	if err := e.resource(r); err != nil {
		return nil, fmt.Errorf("fhirxml: marshal: %w", err)
	}
	return e.buf, nil
}

// newline starts the line of the next tag when indenting: a line feed (but
// for the first tag) and the indent of the current depth. White space
// between FHIR elements is not content, so the indented form reads back as
// the same resource.
func (e *encoder) newline() {
	if e.indent == "" || len(e.buf) == 0 {
		return
	}
	e.buf = append(e.buf, '\n')
	for range e.depth {
		e.buf = append(e.buf, e.indent...)
	}
}

// errorf reports a value that cannot be written, at the current path.
func (e *encoder) errorf(format string, args ...any) error {
	if len(e.path) == 0 {
		return fmt.Errorf(format, args...)
	}
	return fmt.Errorf("%s: %s", e.path, fmt.Sprintf(format, args...))
}

// resource writes r as an element named by its type; the root one declares
// the FHIR namespace, which the others inherit.
func (e *encoder) resource(r fhir.Resource) error {
	ti, v, ok := e.reg.resourceOf(r)
	if !ok {
		return e.errorf("not a resource: %T", r)
	}
	root := len(e.path) == 0
	if root {
		e.path = append(e.path, ti.resourceType...)
		defer func() { e.path = e.path[:0] }()
	}
	e.newline()
	e.buf = append(e.buf, '<')
	e.buf = append(e.buf, ti.resourceType...)
	if root {
		e.buf = append(e.buf, ` xmlns="`+Namespace+`"`...)
	}
	open := len(e.buf)
	e.buf = append(e.buf, '>')
	n, err := e.nested(ti, v)
	if err != nil {
		return err
	}
	if n == 0 {
		e.buf = append(e.buf[:open], "/>"...)
		return nil
	}
	e.newline()
	e.endTag(ti.resourceType)
	return nil
}

// nested writes the child elements of v one level deeper (see children).
func (e *encoder) nested(ti *typeInfo, v reflect.Value) (int, error) {
	e.depth++
	defer func() { e.depth-- }()
	return e.children(ti, v)
}

func (e *encoder) endTag(name string) {
	e.buf = append(e.buf, "</"...)
	e.buf = append(e.buf, name...)
	e.buf = append(e.buf, '>')
}

// element writes the struct v described by ti as the element name: its id
// (and url, value) attributes, then its child elements. It writes nothing and
// returns false when the element would be empty.
func (e *encoder) element(name string, ti *typeInfo, v reflect.Value) (bool, error) {
	start := len(e.buf)
	e.newline()
	e.buf = append(e.buf, '<')
	e.buf = append(e.buf, name...)
	noAttrs := len(e.buf)
	for _, f := range ti.fields {
		fv := v.Field(f.Index)
		switch f.Kind {
		case fhirjson.ElementID:
			if !fv.IsNil() && fv.Elem().String() != "" {
				if err := e.attr(f.Name, fv.Elem().String()); err != nil {
					return false, err
				}
			}
		case fhirjson.URL:
			if s := fv.String(); s != "" {
				if _, err := fhirjson.NewPrimitive(uriType, s); err != nil {
					return false, e.errorf("%s: %v", f.Name, err)
				}
				if err := e.attr(f.Name, s); err != nil {
					return false, err
				}
			}
		}
	}
	if ti.primitive {
		text, ok, err := fhirjson.PrimitiveText(v)
		if err != nil {
			return false, e.errorf("%v", err)
		}
		if ok {
			if err := e.attr("value", text); err != nil {
				return false, err
			}
		}
	}
	attrsEnd := len(e.buf)
	e.buf = append(e.buf, '>')
	n, err := e.nested(ti, v)
	if err != nil {
		return false, err
	}
	switch {
	case n > 0:
		e.newline()
		e.endTag(name)
	case attrsEnd > noAttrs:
		e.buf = append(e.buf[:attrsEnd], "/>"...)
	default:
		e.buf = e.buf[:start]
		return false, nil
	}
	return true, nil
}

// children writes the child elements of the struct v described by ti, in
// definition order, and returns how many it wrote.
func (e *encoder) children(ti *typeInfo, v reflect.Value) (int, error) {
	for _, g := range ti.choices {
		set := -1
		for _, i := range g {
			if v.Field(ti.fields[i].Index).IsNil() {
				continue
			}
			if set >= 0 {
				return 0, e.errorf("more than one value for choice element %q: %q and %q", ti.fields[i].Choice, ti.fields[set].Name, ti.fields[i].Name)
			}
			set = i
		}
	}
	n := 0
	for i := range ti.fields {
		f := &ti.fields[i]
		if f.Kind == fhirjson.ElementID || f.Kind == fhirjson.URL {
			continue
		}
		fv := v.Field(f.Index)
		mark := e.path.field(f.Name)
		if f.Repeated {
			for j := range fv.Len() {
				item := e.path.index(j)
				ok, err := e.child(f, ti.elems[i], fv.Index(j))
				if err != nil {
					return 0, err
				}
				n += count(ok)
				e.path = e.path[:item]
			}
		} else {
			ok, err := e.child(f, ti.elems[i], fv)
			if err != nil {
				return 0, err
			}
			n += count(ok)
		}
		e.path = e.path[:mark]
	}
	return n, nil
}

// count is 1 for true and 0 for false.
func count(ok bool) int {
	if ok {
		return 1
	}
	return 0
}

// child writes one value fv of field f, whose table (for primitives and
// complex types) is sub.
func (e *encoder) child(f *fhirjson.Field, sub *typeInfo, fv reflect.Value) (bool, error) {
	if fv.IsNil() {
		return false, nil
	}
	switch {
	case f.Kind == fhirjson.Resource:
		e.newline()
		e.buf = append(e.buf, '<')
		e.buf = append(e.buf, f.Name...)
		e.buf = append(e.buf, '>')
		e.depth++
		err := e.resource(fv.Interface().(fhir.Resource))
		e.depth--
		if err != nil {
			return false, err
		}
		e.newline()
		e.endTag(f.Name)
		return true, nil
	case f.Type == xhtmlType:
		return e.div(fv.Elem())
	}
	return e.element(f.Name, sub, fv.Elem())
}

// div writes the narrative's div, a fhir.Xhtml, as the XHTML it holds.
func (e *encoder) div(p reflect.Value) (bool, error) {
	x := p.Addr().Interface().(*fhir.Xhtml)
	if x.Id != nil || len(x.Extension) > 0 {
		return false, e.errorf("xhtml elements cannot have an id or extensions")
	}
	if x.Value == nil {
		return false, nil
	}
	s := lexical.NormalizeNewlines(*x.Value)
	if err := lexical.CheckDiv(s, MaxDepth); err != nil {
		return false, e.errorf("not a well-formed XHTML div element that declares its namespace: %v", err)
	}
	// The XHTML is written as it is, indented or not: its white space
	// is content.
	e.newline()
	e.buf = append(e.buf, s...)
	return true, nil
}

// attr writes ` name="value"`, escaping what an attribute value needs
// escaped, white space included so that it reads back unchanged.
func (e *encoder) attr(name, value string) error {
	e.buf = append(e.buf, ' ')
	e.buf = append(e.buf, name...)
	e.buf = append(e.buf, '=', '"')
	start := 0
	for i := 0; i < len(value); {
		c := value[i]
		if c >= 0x20 && c < utf8.RuneSelf && c != '&' && c != '<' && c != '>' && c != '"' {
			i++
			continue
		}
		e.buf = append(e.buf, value[start:i]...)
		size := 1
		switch c {
		case '&':
			e.buf = append(e.buf, "&amp;"...)
		case '<':
			e.buf = append(e.buf, "&lt;"...)
		case '>':
			e.buf = append(e.buf, "&gt;"...)
		case '"':
			e.buf = append(e.buf, "&quot;"...)
		case '\t':
			e.buf = append(e.buf, "&#9;"...)
		case '\n':
			e.buf = append(e.buf, "&#10;"...)
		case '\r':
			e.buf = append(e.buf, "&#13;"...)
		default:
			var r rune
			r, size = utf8.DecodeRuneInString(value[i:])
			if r == utf8.RuneError && size == 1 {
				return e.errorf("%s is not valid UTF-8", name)
			}
			if !xmlChar(r) {
				return e.errorf("%s holds the character %U, which XML does not allow", name, r)
			}
			e.buf = append(e.buf, value[i:i+size]...)
		}
		i += size
		start = i
	}
	e.buf = append(e.buf, value[start:]...)
	e.buf = append(e.buf, '"')
	return nil
}

// xmlChar reports whether r is a character XML 1.0 allows (§2.2), apart
// from tab, line feed and carriage return, which attr escapes.
func xmlChar(r rune) bool {
	return r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}
