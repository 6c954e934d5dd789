package fhirjson

import (
	"fmt"
	"reflect"
	"unicode/utf16"
	"unicode/utf8"

	"carefhir/fhir"
	"carefhir/fhir/lexical"
)

// decoder reads one JSON document straight into the generated types. It
// checks the JSON syntax as it goes; a syntax error, or nesting deeper than
// MaxDepth, stops decoding (abort), while every other problem is recorded and
// the offending value skipped.
type decoder struct {
	data    []byte
	text    string // data as a string: unescaped string values are slices of it
	pos     int
	depth   int
	path    []byte // FHIRPath-style location of the current value
	issues  []Issue
	dropped int // issues found beyond MaxIssues
	reg     *registry
	scratch []byte // unescaped string contents
	// stored reads what older writes let through and XML cannot carry as
	// what it can: a div that CheckDiv refuses as lexical.RepairDiv
	// rewrites it, when that is accepted, and a character that XML
	// excludes (notXMLChar, a control) as U+FFFD; and a date whose day
	// its month lacks (dayFault) as written.
	stored bool
}

// abort unwinds the decoder after a fatal problem; decode recovers it.
type abort struct{}

func decode(data []byte, want string, stored bool) (res fhir.Resource, err error) {
	d := &decoder{data: data, text: string(data), reg: loadRegistry(), stored: stored}
	defer func() {
		if e := recover(); e != nil {
			if _, ok := e.(abort); !ok {
				panic(e)
			}
			res, err = nil, &DecodeError{Issues: d.reported()}
		}
	}()
	d.skipSpace()
	res = d.resource(want)
	d.skipSpace()
	if d.pos < len(d.data) {
		d.syntaxError("unexpected data after the top-level value")
	}
	if len(d.issues) > 0 {
		return nil, &DecodeError{Issues: d.reported()}
	}
	return res, nil
}

// reported returns the issues to report: the first MaxIssues, then one
// counting the rest.
func (d *decoder) reported() []Issue {
	return Capped(d.issues, d.dropped)
}

// syntaxError records that the input is not well-formed JSON and aborts; the
// problems found so far are dropped, since they may stem from the same error.
func (d *decoder) syntaxError(msg string) {
	d.issues = []Issue{{Message: fmt.Sprintf("invalid JSON at offset %d: %s", d.pos, msg), Syntax: true}}
	d.dropped = 0
	panic(abort{})
}

func (d *decoder) issue(format string, args ...any) {
	if len(d.issues) >= MaxIssues {
		d.dropped++
		return
	}
	d.issues = append(d.issues, Issue{Path: string(d.path), Message: fmt.Sprintf(format, args...)})
}

func (d *decoder) enter() {
	d.depth++
	if d.depth > MaxDepth {
		d.issues = append(d.issues, Issue{Path: string(d.path), Message: fmt.Sprintf("nesting deeper than %d levels", MaxDepth)})
		panic(abort{})
	}
}

func (d *decoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end of the input.
func (d *decoder) peek() byte {
	d.skipSpace()
	if d.pos < len(d.data) {
		return d.data[d.pos]
	}
	return 0
}

// kindOf names the JSON type of the value starting with c.
func (d *decoder) kindOf(c byte) string {
	switch {
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "boolean"
	case c == 'n':
		return "null"
	case c == '-' || isDigit(c):
		return "number"
	case c == 0:
		d.syntaxError("unexpected end of input")
	}
	d.syntaxError(fmt.Sprintf("unexpected character %q", c))
	return ""
}

func (d *decoder) expect(c byte) {
	if d.peek() != c {
		if d.pos >= len(d.data) {
			d.syntaxError("unexpected end of input")
		}
		d.syntaxError(fmt.Sprintf("expected %q, found %q", c, d.data[d.pos]))
	}
	d.pos++
}

// literal consumes true, false or null.
func (d *decoder) literal() string {
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(d.data)-d.pos >= len(lit) && string(d.data[d.pos:d.pos+len(lit)]) == lit {
			d.pos += len(lit)
			return lit
		}
	}
	d.syntaxError("invalid literal")
	return ""
}

// number consumes a JSON number and returns its text.
func (d *decoder) number() []byte {
	start := d.pos
	n, ok := lexical.DecimalPrefix(d.data[start:])
	d.pos = start + n
	if !ok {
		d.syntaxError("invalid number")
	}
	return d.data[start:d.pos]
}

// str consumes a JSON string and returns its contents, valid UTF-8. The
// result aliases the input or the decoder's scratch buffer: copy it to keep it.
func (d *decoder) str() []byte {
	d.expect('"')
	start := d.pos
	data := d.data
	for i := start; i < len(data); i++ {
		c := data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return data[start:i]
		case c == '\\':
			d.pos = i
			return d.escapedStr(start)
		case c < 0x20 || c >= utf8.RuneSelf:
			size, replace := d.char(i)
			if replace {
				d.pos = i
				return d.escapedStr(start)
			}
			i += size - 1
		}
	}
	d.pos = len(data)
	d.syntaxError("unterminated string")
	return nil
}

// strValue consumes a JSON string and returns its contents. A string without
// escapes is a slice of d.text, which saves an allocation per value at the cost
// of keeping the input alive as long as the decoded resource.
func (d *decoder) strValue() string {
	d.skipSpace()
	start := d.pos + 1
	b := d.str()
	if len(b) == 0 {
		return ""
	}
	// Without escapes or replaced characters, b is data[start:d.pos-1]; a
	// replaced character may leave the length as it was, so the memory
	// tells.
	if &b[0] == &d.data[start] {
		return d.text[start : d.pos-1]
	}
	return string(b)
}

// char checks the control or non-ASCII character at data[i] of a string and
// returns its length in bytes: control characters must be escaped, and the
// text must be valid UTF-8. replace reports a character XML excludes, which
// a stored resource has read as U+FFFD.
func (d *decoder) char(i int) (size int, replace bool) {
	if d.data[i] < 0x20 {
		d.pos = i
		d.syntaxError("control character in string")
	}
	r, size := utf8.DecodeRune(d.data[i:])
	if r == utf8.RuneError && size == 1 {
		d.pos = i
		d.syntaxError("invalid UTF-8 in string")
	}
	if notXMLChar(r) {
		if d.stored {
			return size, true
		}
		d.pos = i
		d.syntaxError(noncharacterInString)
	}
	return size, false
}

// notXMLChar reports whether r is U+FFFE or U+FFFF, the noncharacters that
// XML 1.0 excludes from its characters (the controls and the surrogates,
// which it excludes too, are refused on their own).
func notXMLChar(r rune) bool { return r == 0xFFFE || r == 0xFFFF }

// noncharacterInString is the error of U+FFFE or U+FFFF in a string: XML
// cannot carry either, so a resource holding one could not be served as
// XML, nor sent back as XML.
const noncharacterInString = "noncharacter U+FFFE or U+FFFF in string: FHIR resources are exchanged as XML too, which cannot carry it"

// controlInString is the error of a control character other than tab and
// line breaks, escaped in a string: JSON allows it, FHIR strings hold none
// (and XML cannot carry one, so a resource holding one could not be
// served as XML).
const controlInString = "control character in string: FHIR strings hold none but tab, line feed and carriage return"

// escapedStr finishes a string containing escapes; d.pos is at the first
// backslash and start at the first byte of the contents.
func (d *decoder) escapedStr(start int) []byte {
	buf := append(d.scratch[:0], d.data[start:d.pos]...)
	data := d.data
	i := d.pos
	for i < len(data) {
		c := data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			d.scratch = buf
			return buf
		case c == '\\':
			if i+1 >= len(data) {
				d.pos = i
				d.syntaxError("unterminated string")
			}
			i++
			switch data[i] {
			case '"', '\\', '/':
				buf = append(buf, data[i])
			case 'b', 'f':
				if d.stored {
					buf = utf8.AppendRune(buf, utf8.RuneError)
					break
				}
				d.pos = i
				d.syntaxError(controlInString)
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, ok := hex4(data, i+1)
				if !ok {
					d.pos = i
					d.syntaxError("invalid \\u escape")
				}
				i += 4
				if utf16.IsSurrogate(r) {
					r2, ok := rune(0), false
					if i+2 < len(data) && data[i+1] == '\\' && data[i+2] == 'u' {
						r2, ok = hex4(data, i+3)
					}
					dec := utf16.DecodeRune(r, r2)
					if !ok || dec == utf8.RuneError {
						d.pos = i
						d.syntaxError("invalid surrogate pair in \\u escape")
					}
					r = dec
					i += 6
				}
				switch {
				case (r < 0x20 && r != '\t' && r != '\n' && r != '\r' || notXMLChar(r)) && d.stored:
					r = utf8.RuneError
				case r < 0x20 && r != '\t' && r != '\n' && r != '\r':
					d.pos = i
					d.syntaxError(controlInString)
				case notXMLChar(r):
					d.pos = i
					d.syntaxError(noncharacterInString)
				}
				buf = utf8.AppendRune(buf, r)
			default:
				d.pos = i
				d.syntaxError("invalid escape")
			}
			i++
		case c < 0x20 || c >= utf8.RuneSelf:
			size, replace := d.char(i)
			if replace {
				buf = utf8.AppendRune(buf, utf8.RuneError)
			} else {
				buf = append(buf, data[i:i+size]...)
			}
			i += size
		default:
			buf = append(buf, c)
			i++
		}
	}
	d.pos = len(data)
	d.syntaxError("unterminated string")
	return nil
}

func hex4(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		switch {
		case isDigit(c):
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// skip consumes any JSON value, checking its syntax.
func (d *decoder) skip() {
	switch c := d.peek(); c {
	case '"':
		d.str()
	case '{', '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		d.enter()
		d.pos++
		if d.peek() == end {
			d.pos++
		} else {
			for {
				if end == '}' {
					d.str()
					d.expect(':')
				}
				d.skip()
				if d.peek() == ',' {
					d.pos++
					continue
				}
				d.expect(end)
				break
			}
		}
		d.depth--
	case 't', 'f', 'n':
		d.literal()
	default:
		if c == '-' || isDigit(c) {
			d.number()
			return
		}
		d.kindOf(c) // reports the syntax error
	}
}

// wrongType records that the value at the current position is not of the
// wanted JSON type, and skips it.
func (d *decoder) wrongType(want string) {
	if len(d.issues) >= MaxIssues { // counted, not described: the cheap path of a hostile body
		d.dropped++
		d.skip()
		return
	}
	got := d.kindOf(d.peek())
	if got == "null" {
		d.issue("null is not allowed here")
	} else {
		d.issue("expected %s, got %s", want, got)
	}
	d.skip()
}

// open consumes the '{' or '[' that starts a container ending with end, and
// reports whether the container has members; an empty one is recorded as a
// problem and consumed.
func (d *decoder) open(end byte) bool {
	d.enter()
	d.pos++
	if d.peek() == end {
		d.pos++
		d.depth--
		if end == '}' {
			d.issue("empty object is not allowed")
		} else {
			d.issue("empty array is not allowed")
		}
		return false
	}
	return true
}

// next consumes the separator after a member of a container ending with end,
// and reports whether another member follows.
func (d *decoder) next(end byte) bool {
	if d.peek() == ',' {
		d.pos++
		return true
	}
	d.expect(end)
	d.depth--
	return false
}

// resource decodes a resource object: the document root (with an empty path)
// or the value of an element of type Resource. want, when set, is the only
// resource type accepted. It returns nil when the value is unusable.
func (d *decoder) resource(want string) fhir.Resource {
	if c := d.peek(); c != '{' {
		d.wrongType("an object")
		return nil
	}
	rt, ok := d.findResourceType()
	if !ok {
		d.skip()
		return nil
	}
	res, known := fhir.NewResource(rt)
	switch {
	case !known:
		d.issue("unknown resourceType %q", rt)
	case want != "" && rt != want:
		d.issue("resourceType is %q, expected %q", rt, want)
	}
	if !known || (want != "" && rt != want) {
		d.skip()
		return nil
	}
	v := reflect.ValueOf(res).Elem()
	root := len(d.path) == 0
	if root {
		d.path = append(d.path, rt...)
	}
	d.object(d.reg.structs[v.Type()], v)
	if root {
		d.path = d.path[:0]
	}
	return res
}

// findResourceType looks ahead in the object at d.pos for its "resourceType"
// member, leaving d.pos unchanged. It records a problem when the member is
// missing or not a string.
func (d *decoder) findResourceType() (string, bool) {
	save, saveDepth := d.pos, d.depth
	defer func() { d.pos, d.depth = save, saveDepth }()
	d.enter()
	d.pos++
	if d.peek() == '}' {
		d.issue("empty object is not allowed")
		return "", false
	}
	for {
		key := d.str()
		d.expect(':')
		if string(key) == "resourceType" {
			if d.peek() != '"' {
				d.issue("resourceType must be a string")
				return "", false
			}
			return d.strValue(), true
		}
		d.skip()
		if d.peek() == ',' {
			d.pos++
			continue
		}
		d.expect('}')
		d.issue(`missing "resourceType"`)
		return "", false
	}
}

// object decodes a JSON object into the struct v described by si. The
// current value is known to be an object.
func (d *decoder) object(si *structInfo, v reflect.Value) {
	if !d.open('}') {
		return
	}
	var seenBuf [4]uint64
	seen := seenBuf[:]
	if n := 2*len(si.fields) + 1; n > 64*len(seen) {
		seen = make([]uint64, (n+63)/64)
	}
	var prims uint64 // set when a repeated primitive was decoded: checked at the end
	for {
		key := d.str()
		d.expect(':')
		idx, ok := si.byName[string(key)]
		bit := 0
		switch {
		case ok:
			bit = 2 * (idx &^ underscore)
			if idx&underscore != 0 {
				bit++
			}
		case si.resourceType != "" && string(key) == "resourceType":
			bit = 2 * len(si.fields)
		default:
			mark := pushField(&d.path, string(key))
			d.issue("unknown element %q", key)
			d.path = d.path[:mark]
			d.skip()
			if d.next('}') {
				continue
			}
			d.checkObject(si, v, prims)
			return
		}
		if seen[bit/64]&(1<<(bit%64)) != 0 {
			mark := pushField(&d.path, string(key))
			d.issue("duplicate key %q", key)
			d.path = d.path[:mark]
			d.skip()
		} else {
			seen[bit/64] |= 1 << (bit % 64)
			if !ok {
				d.skip() // resourceType, already checked by findResourceType
			} else {
				f := &si.fields[idx&^underscore]
				mark := pushField(&d.path, f.name)
				if idx&underscore != 0 {
					d.primitiveExtras(f, v.Field(f.index))
				} else {
					d.value(f, v.Field(f.index))
				}
				d.path = d.path[:mark]
				if f.kind == kindPrimitive && f.repeated {
					prims = 1
				}
				if f.choice != 0 {
					d.checkChoice(si, v, f)
				}
			}
		}
		if !d.next('}') {
			break
		}
	}
	d.checkObject(si, v, prims)
}

// checkChoice records a problem when f and another variant of its choice
// element are both set.
func (d *decoder) checkChoice(si *structInfo, v reflect.Value, f *field) {
	for _, i := range si.choices[f.choice-1].fields {
		if i != f.index && !v.Field(i).IsNil() && !v.Field(f.index).IsNil() {
			d.issue("more than one value for choice element %q: %q and %q", si.choices[f.choice-1].name, si.fields[i].name, f.name)
			return
		}
	}
}

// checkObject runs the checks that need the whole object: a null in an array
// of primitives must be matched by an id or extensions in the "_name" array.
func (d *decoder) checkObject(si *structInfo, v reflect.Value, prims uint64) {
	if prims == 0 {
		return
	}
	for i := range si.fields {
		f := &si.fields[i]
		if f.kind != kindPrimitive || !f.repeated {
			continue
		}
		s := v.Field(f.index)
		for j := range s.Len() {
			if primitiveEmpty(s.Index(j).Elem()) {
				mark := pushField(&d.path, f.name)
				pushIndex(&d.path, j)
				d.issue("null value without an id or extension in %q", "_"+f.name)
				d.path = d.path[:mark]
			}
		}
	}
}

// primitiveEmpty reports whether the primitive struct p has neither a value nor
// an id nor extensions.
func primitiveEmpty(p reflect.Value) bool {
	return p.Field(primValue).IsNil() && p.Field(primID).IsNil() && p.Field(primExtension).Len() == 0
}

// Field indexes of the generated primitive structs.
const (
	primID        = 0
	primExtension = 1
	primValue     = 2
)

// value decodes the JSON value of field f into fv.
func (d *decoder) value(f *field, fv reflect.Value) {
	if f.repeated {
		if d.peek() != '[' {
			d.wrongType("an array")
			return
		}
		switch f.kind {
		case kindPrimitive:
			d.primitiveArray(f, fv, false)
		case kindComplex:
			d.complexArray(f, fv)
		case kindResource:
			d.resourceArray(fv)
		}
		return
	}
	switch f.kind {
	case kindPrimitive:
		p := d.primitiveValue(f.prim)
		if p.IsValid() {
			if fv.IsNil() {
				fv.Set(p)
			} else {
				fv.Elem().Field(primValue).Set(p.Elem().Field(primValue))
			}
		}
	case kindComplex:
		if d.peek() != '{' {
			d.wrongType("an object")
			return
		}
		p := reflect.New(f.elem.typ)
		d.object(f.elem, p.Elem())
		fv.Set(p)
	case kindResource:
		if r := d.resource(""); r != nil {
			fv.Set(reflect.ValueOf(r))
		}
	case kindElementID, kindURL:
		if d.peek() != '"' {
			d.wrongType("a string")
			return
		}
		s := d.strValue()
		if len(s) == 0 {
			d.issue("empty string is not allowed")
			return
		}
		if f.kind == kindURL {
			if !lexical.ValidURI(s) {
				d.issue("invalid uri %q", s)
				return
			}
			fv.SetString(s)
			return
		}
		fv.Set(reflect.ValueOf(&s))
	}
}

// primitiveValue decodes the JSON value of a primitive into a new struct of
// type p, returning the zero Value when the value is invalid.
func (d *decoder) primitiveValue(p *primitive) reflect.Value {
	c := d.peek()
	switch p.value {
	case valueBoolean:
		if c != 't' && c != 'f' {
			d.wrongType("a boolean")
			return reflect.Value{}
		}
		prim, value := p.box()
		value.SetBool(d.literal() == "true")
		return prim
	case valueInteger, valueDecimal:
		if c != '-' && !isDigit(c) {
			d.wrongType("a number")
			return reflect.Value{}
		}
		start := d.pos
		text := d.text[start : start+len(d.number())]
		if p.value == valueDecimal {
			prim, value := p.box()
			value.SetString(text)
			return prim
		}
		n, msg := p.parseInteger(text)
		if msg != "" {
			d.issue("invalid %s %s: %s", p.name, text, msg)
			return reflect.Value{}
		}
		prim, value := p.box()
		value.SetInt(n)
		return prim
	}
	if c != '"' {
		d.wrongType("a string")
		return reflect.Value{}
	}
	s := d.strValue()
	if len(s) == 0 {
		d.issue("empty string is not allowed")
		return reflect.Value{}
	}
	if !p.valid(s) {
		d.issue("invalid %s %q", p.name, truncate(s))
		return reflect.Value{}
	}
	if msg := p.dayFault(s); msg != "" && !d.stored {
		d.issue("invalid %s %q: %s", p.name, truncate(s), msg)
		return reflect.Value{}
	}
	if p.div {
		// The div is XML: its line ends are those XML reads, so that it
		// is the same narrative when written as XML and read back.
		s = lexical.NormalizeNewlines(s)
		err := lexical.CheckDiv(s, MaxDepth)
		if err != nil && d.stored {
			if r, ok := lexical.RepairDiv(s); ok && lexical.CheckDiv(r, MaxDepth) == nil {
				s, err = r, nil
			}
		}
		if err != nil {
			d.issue("div must be a well-formed XHTML div element that declares its namespace: %v", err)
			return reflect.Value{}
		}
	}
	prim, value := p.box()
	value.SetString(s)
	return prim
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// primitiveArray decodes the array of values (underscore false) or of
// ids/extensions (underscore true) of a repeated primitive, merging it with the
// other array when that came first.
func (d *decoder) primitiveArray(f *field, fv reflect.Value, underscore bool) {
	if !d.open(']') {
		return
	}
	items := reflect.MakeSlice(fv.Type(), 0, 4)
	for i := 0; ; i++ {
		mark := pushIndex(&d.path, i)
		var p reflect.Value
		if d.peek() == 'n' {
			d.literal()
			p = reflect.New(f.prim.typ)
		} else if underscore {
			p = reflect.New(f.prim.typ)
			if d.peek() != '{' {
				d.wrongType("an object")
			} else {
				d.primitiveElement(f.prim, p.Elem())
			}
		} else {
			p = d.primitiveValue(f.prim)
			if !p.IsValid() {
				// Keep the index so the other array stays aligned.
				p = reflect.New(f.prim.typ)
				p.Elem().Field(primID).Set(reflect.ValueOf(new(string)))
			}
		}
		items = reflect.Append(items, p)
		d.path = d.path[:mark]
		if !d.next(']') {
			break
		}
	}
	if fv.Len() == 0 {
		fv.Set(items)
		return
	}
	if fv.Len() != items.Len() {
		d.issue("%q and %q have different lengths", f.name, "_"+f.name)
		return
	}
	for i := range items.Len() {
		dst, src := fv.Index(i).Elem(), items.Index(i).Elem()
		for _, j := range [...]int{primID, primExtension, primValue} {
			if s := src.Field(j); !s.IsZero() {
				dst.Field(j).Set(s)
			}
		}
	}
}

// primitiveExtras decodes the "_name" property of primitive field f.
func (d *decoder) primitiveExtras(f *field, fv reflect.Value) {
	if f.prim.noExtensions {
		d.issue("%s elements cannot have an id or extensions", f.prim.name)
		d.skip()
		return
	}
	if f.repeated {
		if d.peek() != '[' {
			d.wrongType("an array")
			return
		}
		d.primitiveArray(f, fv, true)
		return
	}
	if d.peek() != '{' {
		d.wrongType("an object")
		return
	}
	if fv.IsNil() {
		fv.Set(reflect.New(f.prim.typ))
	}
	d.primitiveElement(f.prim, fv.Elem())
}

// primitiveElement decodes the id and extensions of a primitive from a "_name"
// object into p.
func (d *decoder) primitiveElement(prim *primitive, p reflect.Value) {
	si := d.reg.primitiveInfo(prim)
	d.object(si, p)
}

func (d *decoder) complexArray(f *field, fv reflect.Value) {
	if !d.open(']') {
		return
	}
	items := reflect.MakeSlice(fv.Type(), 0, 4)
	for i := 0; ; i++ {
		mark := pushIndex(&d.path, i)
		if d.peek() != '{' {
			d.wrongType("an object")
		} else {
			p := reflect.New(f.elem.typ)
			d.object(f.elem, p.Elem())
			items = reflect.Append(items, p)
		}
		d.path = d.path[:mark]
		if !d.next(']') {
			break
		}
	}
	fv.Set(items)
}

func (d *decoder) resourceArray(fv reflect.Value) {
	if !d.open(']') {
		return
	}
	var items []fhir.Resource
	for i := 0; ; i++ {
		mark := pushIndex(&d.path, i)
		if r := d.resource(""); r != nil {
			items = append(items, r)
		}
		d.path = d.path[:mark]
		if !d.next(']') {
			break
		}
	}
	fv.Set(reflect.ValueOf(items))
}
