package lexical

import (
	"errors"
	"fmt"
	"html"
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
	x := NewDivDecoder(s)
	depth, seen := 0, false
	for {
		t, err := x.Next()
		if err == io.EOF {
			if !seen {
				return errors.New("no div element")
			}
			return nil
		}
		if err != nil {
			return err
		}
		switch t.Kind {
		case DivStart:
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
		case DivEnd:
			depth--
		case DivDirective:
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
		n, digits, k := refValue(s, k, base)
		if digits > 0 && k < len(s) && s[k] == ';' && n >= 0xD800 && n <= 0xDFFF {
			return start, string(s[start : k+1]), true
		}
	}
	return 0, "", false
}

// refValue reads the digits of a character reference in base from s[k:],
// up to the first value past Unicode's last character, and returns their
// value, their count and where they end.
func refValue[T string | []byte](s T, k, base int) (n, digits, end int) {
	for ; k < len(s) && n <= 0x10FFFF; k++ {
		v, ok := digitValue(s[k], base)
		if !ok {
			break
		}
		n, digits = n*base+v, digits+1
	}
	return n, digits, k
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

// RepairDiv rewrites a div that CheckDiv refuses for what older stores may
// hold, into one that it accepts holding the same text: an XML declaration
// before the div is dropped, and each HTML named entity outside comments
// and CDATA sections (&nbsp;, &eacute;) is written as the numeric
// character references of the characters it names. ok is false when there
// was nothing to rewrite.
func RepairDiv(s string) (repaired string, ok bool) {
	rest := strings.TrimLeft(s, " \t\r\n")
	if strings.HasPrefix(rest, "<?xml") {
		if end := strings.Index(rest, "?>"); end >= 0 {
			s, ok = strings.TrimLeft(rest[end+2:], " \t\r\n"), true
		}
	}
	var b strings.Builder
	start := 0
	for i := 0; i < len(s); {
		// Skip what holds no references, as XML reads it.
		if skip, end := skipUnparsed(s[i:]); skip {
			i += end
			continue
		}
		if s[i] != '&' {
			i++
			continue
		}
		name := entityName(s[i+1:])
		if name == "" || s[i+1+len(name)] != ';' || xmlEntity(name) {
			i++
			continue
		}
		ref := s[i : i+len(name)+2]
		text := html.UnescapeString(ref)
		// html also reads the longest entity a name starts with
		// (&notit; as ¬it;), which leaves the semicolon: that is no
		// entity of HTML either, and CheckDiv still refuses it.
		if text == ref || strings.HasSuffix(text, ";") && name != "semi" {
			i++
			continue
		}
		b.WriteString(s[start:i])
		for _, r := range text {
			fmt.Fprintf(&b, "&#%d;", r)
		}
		i += len(ref)
		start = i
	}
	if start == 0 {
		return s, ok
	}
	b.WriteString(s[start:])
	return b.String(), true
}

// skipUnparsed reports whether s starts a comment or CDATA section, and
// where it ends (all of s when it does not end).
func skipUnparsed(s string) (bool, int) {
	for _, m := range [][2]string{{"<!--", "-->"}, {"<![CDATA[", "]]>"}} {
		if !strings.HasPrefix(s, m[0]) {
			continue
		}
		if end := strings.Index(s[len(m[0]):], m[1]); end >= 0 {
			return true, len(m[0]) + end + len(m[1])
		}
		return true, len(s)
	}
	return false, 0
}

// entityName returns the ASCII letters and digits s starts with, when a
// character follows them.
func entityName(s string) string {
	n := 0
	for n < len(s) && (s[n] >= 'a' && s[n] <= 'z' || s[n] >= 'A' && s[n] <= 'Z' || s[n] >= '0' && s[n] <= '9') {
		n++
	}
	if n == len(s) {
		return ""
	}
	return s[:n]
}

// xmlEntity reports whether name is one of the entities XML predefines.
func xmlEntity(name string) bool {
	switch name {
	case "amp", "lt", "gt", "quot", "apos":
		return true
	}
	return false
}

// NormalizeNewlines turns "\r\n" and a lone "\r" into "\n", as an XML
// reader does with the text it reads (XML 1.0 §2.11): a div holding a
// carriage return would not read back from XML as it was written.
func NormalizeNewlines(s string) string {
	if !strings.Contains(s, "\r") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}
