package fhirxml

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/fhir/lexical"
)

// xsiNamespace is the XML Schema instance namespace, whose schemaLocation
// attribute the official examples carry on their root element.
const xsiNamespace = "http://www.w3.org/2001/XMLSchema-instance"

// decoder reads one XML document into the generated types. Malformed XML,
// a document type declaration or nesting deeper than MaxDepth stops decoding
// (abort); every other problem is recorded and the offending element skipped.
type decoder struct {
	data    []byte
	x       *xml.Decoder
	start   int64 // input offset where the token last read begins
	depth   int
	path    path
	issues  []fhirjson.Issue
	dropped int // issues found beyond fhirjson.MaxIssues
	reg     *registry
	// ns holds the namespace declarations (xmlns and xmlns:prefix
	// attributes) of the open elements, outermost first; nsMarks the
	// length ns had before each open element's own.
	ns      []xml.Attr
	nsMarks []int
}

// abort unwinds the decoder after a fatal problem; decode recovers it.
type abort struct{}

func decode(data []byte, want string) (res fhir.Resource, err error) {
	data = lexical.TrimBOM(data)
	off, many, spaces := scanTags(data)
	data = normalizeAttributes(data, spaces)
	d := &decoder{data: data, reg: loadRegistry()}
	d.x = xml.NewDecoder(bytes.NewReader(data))
	d.x.Strict = true // and no CharsetReader, so any encoding but UTF-8 is refused
	defer func() {
		if e := recover(); e != nil {
			if _, ok := e.(abort); !ok {
				panic(e)
			}
			res, err = nil, &fhirjson.DecodeError{Issues: fhirjson.Capped(d.issues, d.dropped)}
		}
	}()
	if many {
		// encoding/xml would read them all, at some microseconds each,
		// before the decoder sees the element.
		d.fatal("invalid XML at offset %d: an element with more than %d attributes (FHIR elements have a few)", off, maxAttributes)
	}
	if off, ref, ok := lexical.SurrogateRef(data); ok {
		// encoding/xml reads it as U+FFFD: the text would change silently.
		d.fatal("invalid XML at offset %d: the character reference %s is a UTF-16 surrogate, not a character", off, ref)
	}
	res = d.resource(d.root(), want)
	d.epilog()
	if len(d.issues) > 0 {
		return nil, &fhirjson.DecodeError{Issues: fhirjson.Capped(d.issues, d.dropped)}
	}
	return res, nil
}

// fatal records that the input cannot be read on and aborts; the problems
// found so far are dropped, since they may stem from the same fault.
func (d *decoder) fatal(format string, args ...any) {
	d.issues = []fhirjson.Issue{{Message: fmt.Sprintf(format, args...), Syntax: true}}
	d.dropped = 0
	panic(abort{})
}

func (d *decoder) issue(format string, args ...any) {
	if len(d.issues) >= fhirjson.MaxIssues {
		d.dropped++
		return
	}
	d.issues = append(d.issues, fhirjson.Issue{Path: string(d.path), Message: fmt.Sprintf(format, args...)})
}

// next returns the next token, or nil at the end of the input.
func (d *decoder) next() xml.Token {
	d.start = d.x.InputOffset()
	t, err := d.x.Token()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		var syn *xml.SyntaxError
		if !errors.As(err, &syn) && strings.Contains(err.Error(), "CharsetReader") {
			d.fatal("only UTF-8 is accepted: %v", err)
		}
		d.fatal("invalid XML: %v", err)
	}
	switch t := t.(type) {
	case xml.Directive:
		d.fatal("invalid XML at offset %d: document type declarations are not allowed", d.start)
	case xml.StartElement:
		d.nsMarks = append(d.nsMarks, len(d.ns))
		for _, a := range t.Attr {
			if isNamespaceDecl(a) {
				d.ns = append(d.ns, a)
			}
		}
	case xml.EndElement:
		last := len(d.nsMarks) - 1
		d.ns, d.nsMarks = d.ns[:d.nsMarks[last]], d.nsMarks[:last]
	}
	return t
}

// isNamespaceDecl reports whether a is a namespace declaration: xmlns or
// xmlns:prefix.
func isNamespaceDecl(a xml.Attr) bool {
	return a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns"
}

// enter counts one more level of element nesting.
func (d *decoder) enter() {
	d.depth++
	if d.depth > MaxDepth {
		d.issues = append(d.issues, fhirjson.Issue{Path: string(d.path), Message: fmt.Sprintf("nesting deeper than %d levels", MaxDepth)})
		panic(abort{})
	}
}

// root returns the start of the root element, skipping the XML declaration,
// comments and white space before it.
func (d *decoder) root() xml.StartElement {
	for {
		switch t := d.next().(type) {
		case nil:
			d.fatal("invalid XML: no root element")
		case xml.StartElement:
			return t
		case xml.CharData:
			if !isSpace(t) {
				d.fatal("invalid XML at offset %d: text before the root element", d.start)
			}
		}
	}
}

// epilog checks that only comments and white space follow the root element.
func (d *decoder) epilog() {
	for {
		switch t := d.next().(type) {
		case nil:
			return
		case xml.StartElement:
			d.fatal("invalid XML at offset %d: a second root element", d.start)
		case xml.CharData:
			if !isSpace(t) {
				d.fatal("invalid XML at offset %d: text after the root element", d.start)
			}
		}
	}
}

func isSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// skip consumes the rest of the element just started.
func (d *decoder) skip() {
	d.enter()
	for level := d.depth; ; {
		switch d.next().(type) {
		case nil:
			d.fatal("invalid XML: unexpected end of input")
		case xml.StartElement:
			d.enter()
		case xml.EndElement:
			d.depth--
			if d.depth < level {
				return
			}
		}
	}
}

// resource decodes the element start, which names a resource type: the
// document root (with an empty path) or the content of an element of type
// Resource. want, when set, is the only resource type accepted. It returns
// nil when the element is unusable.
func (d *decoder) resource(start xml.StartElement, want string) fhir.Resource {
	rt := start.Name.Local
	ti := d.reg.resources[rt]
	switch {
	case start.Name.Space != Namespace:
		d.issue("element %q is not in the FHIR namespace %s", rt, Namespace)
	case ti == nil:
		d.issue("unknown resource type %q", rt)
	case want != "" && rt != want:
		d.issue("resourceType is %q, expected %q", rt, want)
	}
	if start.Name.Space != Namespace || ti == nil || (want != "" && rt != want) {
		d.skip()
		return nil
	}
	res, _ := fhir.NewResource(rt)
	v := reflect.ValueOf(res).Elem()
	root := len(d.path) == 0
	if root {
		d.path = append(d.path, rt...)
	}
	d.enter()
	d.attrs(ti, v, start.Attr, root)
	d.children(ti, v)
	if root {
		d.path = d.path[:0]
	}
	return res
}

// attrs sets the attribute fields of the struct v described by ti from the
// attributes of its element, and returns how many were set. The value
// attribute of a primitive is read by the caller. On the root element,
// xsi:schemaLocation is allowed and ignored.
func (d *decoder) attrs(ti *typeInfo, v reflect.Value, attrs []xml.Attr, root bool) int {
	n := 0
	var seen attrSet
	for i, a := range attrs {
		switch {
		case a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns":
			continue // namespace declarations
		case root && a.Name.Space == xsiNamespace && a.Name.Local == "schemaLocation":
			continue
		case a.Name.Space != "":
			d.issue("unknown attribute %q in namespace %s", a.Name.Local, a.Name.Space)
			continue
		}
		if seen.has(attrs[:i], a.Name.Local) {
			d.issue("duplicate attribute %q", a.Name.Local)
			continue
		}
		if ti.primitive && a.Name.Local == "value" {
			continue
		}
		j, ok := ti.attrs[a.Name.Local]
		if !ok {
			d.issue("unknown attribute %q", a.Name.Local)
			continue
		}
		if a.Value == "" {
			d.issue("empty %s attribute is not allowed", a.Name.Local)
			continue
		}
		f := &ti.fields[j]
		fv := v.Field(f.Index)
		if f.Kind == fhirjson.URL {
			if _, err := fhirjson.NewPrimitive(uriType, a.Value); err != nil {
				d.issue("%s attribute: %v", a.Name.Local, err)
				continue
			}
			fv.SetString(a.Value)
		} else {
			s := a.Value
			fv.Set(reflect.ValueOf(&s))
		}
		n++
	}
	return n
}

// attrSet finds an unprefixed attribute name among those of an element
// before it: by comparison with each for the few attributes elements have,
// through a map for more, so that an element of many attributes costs
// linear time.
type attrSet map[string]bool

// has reports whether before holds name, and records name.
func (s *attrSet) has(before []xml.Attr, name string) bool {
	const few = 16
	if len(before) < few {
		for _, a := range before {
			if a.Name.Space == "" && a.Name.Local == name {
				return true
			}
		}
		return false
	}
	if *s == nil {
		*s = make(attrSet, 2*few)
		for _, a := range before {
			if a.Name.Space == "" {
				(*s)[a.Name.Local] = true
			}
		}
	}
	if (*s)[name] {
		return true
	}
	(*s)[name] = true
	return false
}

// maxAttributes bounds the attributes of one element: FHIR's have at most
// value, id, url and namespace declarations, XHTML narrative a few more.
const maxAttributes = 64

// scanTags reads the tags of data in one linear scan of the bytes, before
// any parsing. It finds the first start tag with more than maxAttributes
// attributes, counting the '=' outside quotes between '<' and '>' (found
// reports one, at offset), and, before it, the offsets of the tabs, line
// feeds and carriage returns written as such inside attribute values,
// which normalizeAttributes makes spaces. Comments, processing
// instructions and CDATA sections are skipped.
func scanTags(data []byte) (offset int, found bool, spaces []int) {
	for i := 0; i < len(data); i++ {
		if data[i] != '<' {
			continue
		}
		rest := data[i:]
		if end, ok := skipMarkup(rest); ok {
			if end < 0 {
				return 0, false, spaces
			}
			i += end
			continue
		}
		start, n := i, 0
		var quote byte
	tag:
		for i++; i < len(data); i++ {
			c := data[i]
			switch {
			case quote != 0:
				if c == quote {
					quote = 0
				} else if c == '\t' || c == '\n' || c == '\r' {
					spaces = append(spaces, i)
				}
			case c == '"' || c == '\'':
				quote = c
			case c == '=':
				if n++; n > maxAttributes {
					return start, true, spaces
				}
			case c == '>':
				break tag
			}
		}
	}
	return 0, false, spaces
}

// skipMarkup reports whether s, which starts with '<', opens a comment, a
// CDATA section or a processing instruction, and the offset in s of the
// last byte of its end (-1 when it does not end).
func skipMarkup(s []byte) (end int, ok bool) {
	for _, m := range [...]struct{ open, close string }{{"<!--", "-->"}, {"<![CDATA[", "]]>"}, {"<?", "?>"}} {
		if !bytes.HasPrefix(s, []byte(m.open)) {
			continue
		}
		j := bytes.Index(s[len(m.open):], []byte(m.close))
		if j < 0 {
			return -1, true
		}
		return len(m.open) + j + len(m.close) - 1, true
	}
	return 0, false
}

// normalizeAttributes applies XML's attribute-value normalization (XML 1.0
// §3.3.3), which encoding/xml leaves out, to the bytes at spaces (from
// scanTags): a tab, line feed or carriage return written as such in an
// attribute value is read as a space, a CR LF pair as one space. A line
// feed written as the character reference &#10; stays one, so the value
// "a&#10;b" keeps its line break and "a<LF>b" reads "a b", as any XML
// parser reads them.
func normalizeAttributes(data []byte, spaces []int) []byte {
	if len(spaces) == 0 {
		return data
	}
	out := make([]byte, 0, len(data))
	last := 0
	for _, i := range spaces {
		out = append(out, data[last:i]...)
		last = i + 1
		if data[i] == '\n' && i > 0 && data[i-1] == '\r' {
			continue // the CR before it is the space
		}
		out = append(out, ' ')
	}
	return append(out, data[last:]...)
}

// children decodes the child elements of the element just started into the
// struct v described by ti, up to and including its end, and returns how many
// were set.
func (d *decoder) children(ti *typeInfo, v reflect.Value) int {
	n, text := 0, false
	for {
		switch t := d.next().(type) {
		case nil:
			d.fatal("invalid XML: unexpected end of input")
		case xml.EndElement:
			d.depth--
			return n
		case xml.CharData:
			if !text && !isSpace(t) {
				d.issue("text content is not allowed here")
				text = true
			}
		case xml.StartElement:
			if d.child(ti, v, t) {
				n++
			}
		}
	}
}

// child decodes the child element start of the struct v described by ti,
// and reports whether it was set.
func (d *decoder) child(ti *typeInfo, v reflect.Value, start xml.StartElement) bool {
	name := start.Name.Local
	parent := d.path.field(name)
	defer func() { d.path = d.path[:parent] }()
	i, ok := ti.children[name]
	if !ok {
		d.issue("unknown element %q", name)
		d.skip()
		return false
	}
	f := &ti.fields[i]
	ns := Namespace
	if f.Type == xhtmlType {
		ns = XHTMLNamespace
	}
	if start.Name.Space != ns {
		d.issue("element %q must be in the namespace %s", name, ns)
		d.skip()
		return false
	}
	fv := v.Field(f.Index)
	switch {
	case f.Repeated:
		d.path.index(fv.Len())
	case !fv.IsNil():
		d.issue("element %q appears more than once", name)
		d.skip()
		return false
	}
	var item reflect.Value
	switch {
	case f.Kind == fhirjson.Resource:
		item = d.contained(start)
	case f.Type == xhtmlType:
		item = d.div()
	case f.Kind == fhirjson.Primitive:
		item = d.primitive(ti.elems[i], start)
	default:
		item = d.complex(ti.elems[i], start)
	}
	if f.Repeated {
		if !item.IsValid() {
			// Keep a place, so later items keep their index in the paths.
			item = reflect.Zero(fv.Type().Elem())
		}
		fv.Set(reflect.Append(fv, item))
		return true
	}
	if !item.IsValid() {
		return false
	}
	fv.Set(item)
	if g := ti.choiceOf(i); g != nil {
		for _, j := range g {
			if j != i && !v.Field(ti.fields[j].Index).IsNil() {
				d.path = d.path[:parent]
				d.issue("more than one value for choice element %q: %q and %q", f.Choice, ti.fields[j].Name, name)
				break
			}
		}
	}
	return true
}

// complex decodes an element of a data type or backbone element.
func (d *decoder) complex(ti *typeInfo, start xml.StartElement) reflect.Value {
	d.enter()
	found := d.found()
	p := reflect.New(ti.typ)
	n := d.attrs(ti, p.Elem(), start.Attr, false)
	n += d.children(ti, p.Elem())
	if n == 0 {
		if d.found() == found {
			d.issue("empty element is not allowed")
		}
		return reflect.Value{}
	}
	return p
}

// found returns how many issues have been found so far. An element whose
// content was all refused is not also reported as empty: the issues of its
// content say what is wrong with it, and where.
func (d *decoder) found() int {
	return len(d.issues) + d.dropped
}

// primitive decodes the element of a primitive: its value attribute, its id
// attribute and its extension elements.
func (d *decoder) primitive(ti *typeInfo, start xml.StartElement) reflect.Value {
	d.enter()
	found := d.found()
	var p reflect.Value
	hasValue, valid := false, true
	for _, a := range start.Attr {
		if a.Name.Space != "" || a.Name.Local != "value" {
			continue
		}
		hasValue = true
		if a.Value == "" {
			d.issue("empty value attribute is not allowed")
			valid = false
			break
		}
		var err error
		if p, err = fhirjson.NewPrimitive(ti.typ, a.Value); err != nil {
			d.issue("%v", err)
			valid = false
		}
		break
	}
	if !p.IsValid() {
		p = reflect.New(ti.typ)
	}
	n := d.attrs(ti, p.Elem(), start.Attr, false)
	n += d.children(ti, p.Elem())
	if !hasValue && n == 0 {
		if d.found() == found {
			d.issue("element has no value attribute, id or extension")
		}
		return reflect.Value{}
	}
	if !valid {
		return reflect.Value{}
	}
	return p
}

// contained decodes an element of type Resource, which holds one element
// named by the resource's type.
func (d *decoder) contained(start xml.StartElement) reflect.Value {
	d.enter()
	for _, a := range start.Attr {
		if a.Name.Space != "xmlns" && (a.Name.Space != "" || a.Name.Local != "xmlns") {
			d.issue("unknown attribute %q", a.Name.Local)
		}
	}
	var res fhir.Resource
	count, text := 0, false
	for done := false; !done; {
		switch t := d.next().(type) {
		case nil:
			d.fatal("invalid XML: unexpected end of input")
		case xml.EndElement:
			d.depth--
			done = true
		case xml.CharData:
			if !text && !isSpace(t) {
				d.issue("text content is not allowed here")
				text = true
			}
		case xml.StartElement:
			count++
			if count > 1 {
				d.issue("more than one resource in one element")
				d.skip()
				continue
			}
			res = d.resource(t, "")
		}
	}
	if count == 0 {
		d.issue("element holds no resource")
	}
	if res == nil || count > 1 {
		return reflect.Value{}
	}
	return reflect.ValueOf(res)
}

// div reads the narrative's div element, just started, as its exact text,
// line ends normalised as XML requires. The div is stored alone, so the
// namespaces it uses must be declared in it: those it inherits from its
// ancestors (the XHTML namespace bound to a prefix on the root element)
// are written into its start tag.
func (d *decoder) div() reflect.Value {
	start := d.start
	inherited := d.inheritedNamespaces()
	d.skip()
	text := lexical.NormalizeNewlines(string(d.data[start:d.x.InputOffset()]))
	if len(inherited) > 0 {
		text = declareNamespaces(text, inherited)
	}
	if err := lexical.CheckDiv(text, MaxDepth); err != nil {
		d.issue("div must be a well-formed XHTML div element that declares its namespace: %v", err)
		return reflect.Value{}
	}
	return reflect.ValueOf(fhir.NewXhtml(text))
}

// inheritedNamespaces returns the namespace declarations in scope at the
// element just started that come from its ancestors: the innermost of each
// prefix, those the element declares again left out.
func (d *decoder) inheritedNamespaces() []xml.Attr {
	mark := d.nsMarks[len(d.nsMarks)-1]
	own := d.ns[mark:]
	var inherited []xml.Attr
	for i := mark - 1; i >= 0; i-- {
		a := d.ns[i]
		declared := func(b xml.Attr) bool { return b.Name == a.Name }
		if !slices.ContainsFunc(own, declared) && !slices.ContainsFunc(inherited, declared) {
			inherited = append(inherited, a)
		}
	}
	return inherited
}

// declareNamespaces writes those of the namespace declarations decls that
// text uses into the start tag of the element that begins it, after its
// name.
func declareNamespaces(text string, decls []xml.Attr) string {
	end := strings.IndexAny(text, " \t\n/>")
	if end < 0 {
		return text
	}
	var b strings.Builder
	for _, a := range decls {
		if !usesPrefix(text, a) {
			continue
		}
		if b.Len() == 0 {
			b.WriteString(text[:end])
		}
		b.WriteString(" xmlns")
		if a.Name.Space == "xmlns" {
			b.WriteString(":" + a.Name.Local)
		}
		b.WriteString(`="`)
		xml.EscapeText(&b, []byte(a.Value))
		b.WriteString(`"`)
	}
	if b.Len() == 0 {
		return text
	}
	b.WriteString(text[end:])
	return b.String()
}

// usesPrefix reports whether text may use the prefix that the namespace
// declaration decl binds: for a prefix p, whether "p:" appears in it (in
// the text between tags too, which costs no more than a declaration the
// element does not need); for the default namespace, whether an element
// name without a prefix appears in it.
func usesPrefix(text string, decl xml.Attr) bool {
	if decl.Name.Space == "xmlns" {
		return strings.Contains(text, decl.Name.Local+":")
	}
	for i := strings.IndexByte(text, '<'); i >= 0; {
		name := text[i+1:]
		if end := strings.IndexAny(name, " \t\n/>"); end >= 0 {
			name = name[:end]
		}
		if name != "" && !strings.ContainsAny(name[:1], "!?") && !strings.Contains(name, ":") {
			return true
		}
		next := strings.IndexByte(text[i+1:], '<')
		if next < 0 {
			return false
		}
		i += 1 + next
	}
	return false
}
