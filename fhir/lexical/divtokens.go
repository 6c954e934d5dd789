package lexical

import (
	"encoding/xml"
	"io"
	"strings"
	"unicode/utf8"
)

// A DivDecoder reads the tokens of a narrative's div, the same tokens and
// errors as encoding/xml's Decoder.Token in strict mode. A div written the
// plain way narratives are is read by a scanner of its own, at a fraction
// of encoding/xml's cost (a decode of a resource with a narrative reads its
// div, and a validated write reads it again); anything else is read by
// encoding/xml, which also words every error.
type DivDecoder struct {
	sc  divScanner
	xml *xml.Decoder // when the scanner does not read s
}

// A DivToken is a token of a div, one of encoding/xml's.
type DivToken struct {
	Kind DivTokenKind
	Name xml.Name // of an element's start or end, its namespace translated
	// Attr holds an element's attributes, valid until the next call of
	// Next.
	Attr []xml.Attr
	Text string // of text (xml.CharData), with its references replaced
}

// DivTokenKind says which of encoding/xml's tokens a DivToken is.
type DivTokenKind uint8

const (
	DivStart     DivTokenKind = iota + 1 // xml.StartElement
	DivEnd                               // xml.EndElement
	DivText                              // xml.CharData
	DivComment                           // xml.Comment
	DivProcInst                          // xml.ProcInst
	DivDirective                         // xml.Directive
)

// NewDivDecoder returns a DivDecoder reading s. The scanner reads all of s
// first, and gives the tokens only when it read all of it: it cannot stop
// halfway through for encoding/xml to take over.
func NewDivDecoder(s string) *DivDecoder {
	d := &DivDecoder{sc: divScanner{s: s}}
	d.sc.open = d.sc.openBuf[:0]
	if d.sc.readsAll() {
		d.sc.i = 0
		return d
	}
	d.xml = xml.NewDecoder(strings.NewReader(s))
	d.xml.Strict = true // and no HTML entities: R4 has XML's five alone
	return d
}

// Next returns the next token, or the error xml.Decoder.Token returns:
// io.EOF after the last token.
func (d *DivDecoder) Next() (DivToken, error) {
	if d.xml == nil {
		t, ok := d.sc.next()
		if !ok || t.Kind == 0 {
			return DivToken{}, io.EOF // !ok: readsAll made sure it cannot be
		}
		return t, nil
	}
	t, err := d.xml.Token()
	if err != nil {
		return DivToken{}, err
	}
	switch t := t.(type) {
	case xml.StartElement:
		return DivToken{Kind: DivStart, Name: t.Name, Attr: t.Attr}, nil
	case xml.EndElement:
		return DivToken{Kind: DivEnd, Name: t.Name}, nil
	case xml.CharData:
		return DivToken{Kind: DivText, Text: string(t)}, nil
	case xml.Comment:
		return DivToken{Kind: DivComment}, nil
	case xml.ProcInst:
		return DivToken{Kind: DivProcInst}, nil
	default:
		return DivToken{Kind: DivDirective}, nil
	}
}

// A divScanner reads the tokens a strict xml.Decoder reads from s, when s
// is a sequence of elements and text that encoding/xml reads without error
// and that is written the plain way: names of ASCII letters, digits, '_',
// '-' and '.', without namespace prefixes; text and quoted attribute values
// holding XML's five entities and numeric references to characters XML
// allows. Everything else (comments, CDATA sections, processing
// instructions, declarations, prefixes, carriage returns, which encoding/xml
// rewrites, and every error) it does not read, and leaves to encoding/xml.
// Elements are in the namespace their xmlns attributes give them, as
// xml.Decoder.Token translates them.
type divScanner struct {
	s       string
	i       int        // the next byte of s to read
	open    []xml.Name // the elements open, innermost last
	openBuf [8]xml.Name
	attrs   []xml.Attr // the attributes of the last start tag read
	closing bool       // the last start tag read was an empty element's
}

// readsAll reports whether the scanner reads all of s.
func (sc *divScanner) readsAll() bool {
	// encoding/xml rewrites carriage returns and refuses "]]>" in text.
	if strings.IndexByte(sc.s, '\r') >= 0 || strings.Contains(sc.s, "]]>") {
		return false
	}
	for {
		t, ok := sc.next()
		if !ok {
			return false
		}
		if t.Kind == 0 {
			return len(sc.open) == 0
		}
	}
}

// next reads the next token; at the end of s, one of Kind 0. ok is false
// for what the scanner does not read.
func (sc *divScanner) next() (t DivToken, ok bool) {
	if sc.closing {
		sc.closing = false
		n := len(sc.open)
		t = DivToken{Kind: DivEnd, Name: sc.open[n-1]}
		sc.open = sc.open[:n-1]
		return t, true
	}
	switch {
	case sc.i == len(sc.s):
		return DivToken{}, true
	case sc.s[sc.i] != '<':
		t.Kind = DivText
		t.Text, ok = sc.text(-1)
		return t, ok
	case strings.HasPrefix(sc.s[sc.i:], "</"):
		sc.i += 2
		return sc.end()
	default:
		sc.i++
		return sc.start()
	}
}

// start reads a start tag after its '<'.
func (sc *divScanner) start() (DivToken, bool) {
	local, ok := sc.name()
	if !ok || local == "xmlns" { // an element xmlns keeps no namespace
		return DivToken{}, false
	}
	space := "" // the default namespace, which only xmlns attributes set
	if n := len(sc.open); n > 0 {
		space = sc.open[n-1].Space
	}
	sc.attrs = sc.attrs[:0]
	for {
		sc.space()
		if sc.i >= len(sc.s) {
			return DivToken{}, false
		}
		if sc.s[sc.i] == '>' {
			sc.i++
			break
		}
		if sc.s[sc.i] == '/' {
			if !strings.HasPrefix(sc.s[sc.i:], "/>") {
				return DivToken{}, false
			}
			sc.i += 2
			sc.closing = true
			break
		}
		attr, ok := sc.name()
		if !ok {
			return DivToken{}, false
		}
		sc.space()
		if sc.i >= len(sc.s) || sc.s[sc.i] != '=' {
			return DivToken{}, false
		}
		sc.i++
		sc.space()
		if sc.i >= len(sc.s) || sc.s[sc.i] != '"' && sc.s[sc.i] != '\'' {
			return DivToken{}, false
		}
		quote := int(sc.s[sc.i])
		sc.i++
		value, ok := sc.text(quote)
		if !ok {
			return DivToken{}, false
		}
		if attr == "xmlns" {
			space = value
		}
		sc.attrs = append(sc.attrs, xml.Attr{Name: xml.Name{Local: attr}, Value: value})
	}
	name := xml.Name{Space: space, Local: local}
	sc.open = append(sc.open, name) // an empty element's too, until next
	return DivToken{Kind: DivStart, Name: name, Attr: sc.attrs}, true
}

// end reads an end tag after its "</".
func (sc *divScanner) end() (DivToken, bool) {
	local, ok := sc.name()
	if !ok {
		return DivToken{}, false
	}
	sc.space()
	n := len(sc.open)
	if sc.i >= len(sc.s) || sc.s[sc.i] != '>' || n == 0 || sc.open[n-1].Local != local {
		return DivToken{}, false
	}
	sc.i++
	t := DivToken{Kind: DivEnd, Name: sc.open[n-1]}
	sc.open = sc.open[:n-1]
	return t, true
}

// name reads a name without a prefix, of ASCII characters alone.
func (sc *divScanner) name() (string, bool) {
	start := sc.i
	for sc.i < len(sc.s) && asciiNameByte(sc.s[sc.i]) {
		sc.i++
	}
	if sc.i < len(sc.s) && (sc.s[sc.i] == ':' || sc.s[sc.i] >= utf8.RuneSelf) {
		return "", false
	}
	name := sc.s[start:sc.i]
	if name == "" || !(name[0] == '_' || 'a' <= name[0] && name[0] <= 'z' || 'A' <= name[0] && name[0] <= 'Z') {
		return "", false
	}
	return name, true
}

func asciiNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.'
}

func (sc *divScanner) space() {
	for sc.i < len(sc.s) && (sc.s[sc.i] == ' ' || sc.s[sc.i] == '\n' || sc.s[sc.i] == '\t') {
		sc.i++
	}
}

// text reads text up to the next '<' (quote -1), or an attribute value up
// to and past its closing quote, with its references replaced by the
// characters they name.
func (sc *divScanner) text(quote int) (string, bool) {
	var decoded []byte // nil until a reference is replaced
	start := sc.i
	for sc.i < len(sc.s) {
		c := sc.s[sc.i]
		switch {
		case c >= '(' && c < utf8.RuneSelf && c != '<' || c == ' ' || c == '\n':
			sc.i++ // most text: neither a quote, '&', '<' nor a control
		case int(c) == quote:
			value := sc.s[start:sc.i]
			sc.i++
			if decoded != nil {
				value = string(append(decoded, value...))
			}
			return value, true
		case c == '<':
			if quote >= 0 {
				return "", false
			}
			return sc.textEnd(decoded, start), true
		case c == '&':
			r, n := reference(sc.s[sc.i:])
			if n == 0 {
				return "", false
			}
			decoded = utf8.AppendRune(append(decoded, sc.s[start:sc.i]...), r)
			sc.i += n
			start = sc.i
		case c < ' ':
			if c != '\t' && c != '\n' {
				return "", false
			}
			sc.i++
		case c < utf8.RuneSelf:
			sc.i++
		default:
			r, n := utf8.DecodeRuneInString(sc.s[sc.i:])
			if r == utf8.RuneError && n == 1 || !xmlChar(r) {
				return "", false
			}
			sc.i += n
		}
	}
	if quote >= 0 {
		return "", false
	}
	return sc.textEnd(decoded, start), true
}

func (sc *divScanner) textEnd(decoded []byte, start int) string {
	if decoded == nil {
		return sc.s[start:sc.i]
	}
	return string(append(decoded, sc.s[start:sc.i]...))
}

// reference reads the reference s starts with, one of XML's five entities
// or a reference to a character XML allows, and returns the character and
// the reference's length; 0 for anything else.
func reference(s string) (rune, int) {
	for _, e := range [...]struct {
		ref string
		r   rune
	}{{"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&apos;", '\''}, {"&quot;", '"'}} {
		if strings.HasPrefix(s, e.ref) {
			return e.r, len(e.ref)
		}
	}
	if !strings.HasPrefix(s, "&#") {
		return 0, 0
	}
	k, base := 2, 10
	if k < len(s) && s[k] == 'x' { // encoding/xml reads no &#X
		k, base = 3, 16
	}
	n, digits, k := refValue(s, k, base)
	if digits == 0 || k == len(s) || s[k] != ';' || !xmlChar(rune(n)) {
		return 0, 0
	}
	return rune(n), k + 1
}

// xmlChar reports whether r is a character XML allows (its Char
// production); surrogates are not.
func xmlChar(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}
