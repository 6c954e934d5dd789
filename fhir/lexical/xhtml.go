package lexical

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// XHTMLNamespace is the namespace of the narrative's div element.
const XHTMLNamespace = "http://www.w3.org/1999/xhtml"

// CheckDiv checks that s is an xhtml value, the narrative's div as both
// formats carry it (https://hl7.org/fhir/R4/narrative.html#xhtml): on its
// own, a well-formed XML document whose root is a div element in the XHTML
// namespace, with nothing before or after it (no XML declaration), no
// document type declaration, no entity but XML's five (there is no &nbsp;),
// no character reference to a UTF-16 surrogate and at most maxDepth levels
// of nesting. A JSON div that passes can be written as XML and read back
// unchanged.
func CheckDiv(s string, maxDepth int) error {
	if _, ref, ok := SurrogateRef(s); ok {
		return fmt.Errorf("the character reference %s is a UTF-16 surrogate, not a character", ref)
	}
	x := xml.NewDecoder(strings.NewReader(s))
	x.Strict = true
	depth, seen := 0, false
	for {
		t, err := x.Token()
		if err == io.EOF {
			if !seen {
				return errors.New("no div element")
			}
			return nil
		}
		if err != nil {
			return err
		}
		switch t := t.(type) {
		case xml.StartElement:
			if depth == 0 {
				if seen {
					return errors.New("content after the div element")
				}
				if t.Name.Space != XHTMLNamespace || t.Name.Local != "div" {
					return fmt.Errorf("root element is %q in namespace %q", t.Name.Local, t.Name.Space)
				}
				seen = true
			}
			depth++
			if depth > maxDepth {
				return fmt.Errorf("nesting deeper than %d levels", maxDepth)
			}
		case xml.EndElement:
			depth--
		case xml.Directive:
			return errors.New("document type declarations are not allowed")
		default:
			if depth == 0 {
				return errors.New("content outside the div element")
			}
		}
	}
}

// SurrogateRef finds the first character reference in s to a UTF-16
// surrogate (&#xD800; to &#xDFFF;), which XML does not allow and
// encoding/xml reads as U+FFFD, and returns its offset and text.
func SurrogateRef[T string | []byte](s T) (offset int, ref string, found bool) {
	for start := 0; start+1 < len(s); start++ {
		if s[start] != '&' || s[start+1] != '#' {
			continue
		}
		k, base := start+2, 10
		if k < len(s) && (s[k] == 'x' || s[k] == 'X') {
			k, base = k+1, 16
		}
		n, digits := 0, 0
		for ; k < len(s) && n <= 0x10FFFF; k++ {
			v, ok := digitValue(s[k], base)
			if !ok {
				break
			}
			n, digits = n*base+v, digits+1
		}
		if digits > 0 && k < len(s) && s[k] == ';' && n >= 0xD800 && n <= 0xDFFF {
			return start, string(s[start : k+1]), true
		}
	}
	return 0, "", false
}

func digitValue(c byte, base int) (int, bool) {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0'), true
	case base == 16 && c >= 'a' && c <= 'f':
		return int(c-'a') + 10, true
	case base == 16 && c >= 'A' && c <= 'F':
		return int(c-'A') + 10, true
	}
	return 0, false
}
