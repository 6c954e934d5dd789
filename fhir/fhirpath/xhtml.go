package fhirpath

import (
	"strings"
	"unicode/utf8"
)

// safeXHTML reports whether a narrative div avoids the constructs FHIR
// narrative forbids: scripts, forms, event attributes, javascript: URLs.
// It looks at the markup alone: each tag (to its '>', quoted attribute
// values included), comment and CDATA section, where it finds what the
// regular expression
//
//	(?i)<\s*(script|iframe|object|embed|form|input|style|link|meta|base)\b|\son[a-z]+\s*=|javascript:
//
// matches, with the same case folding and the same ASCII \s and \b, in one
// pass: htmlChecks() runs on every narrative validated, and Go's
// backtracking matcher took a quarter of the validation of a resource
// with a narrative. The text between tags holds no markup, in XML or to
// an HTML parser ('<' in it is written &lt;), so words in it such as
// "onset = 3 days" or "javascript:" are the narrative's content, not a
// handler or a URL. Comments and CDATA sections are looked into: an HTML
// parser may end them sooner than XML does (<!--> is a whole comment to
// it) and read what follows as markup.
func safeXHTML(s string) bool {
	for i := strings.IndexByte(s, '<'); i >= 0; {
		end := markupEnd(s, i)
		if !safeMarkup(s[i:end]) {
			return false
		}
		next := strings.IndexByte(s[end:], '<')
		if next < 0 {
			break
		}
		i = end + next
	}
	return true
}

// markupEnd returns where the markup that begins at s[start], a '<', ends:
// after the "-->" of a comment, the "]]>" of a CDATA section, or the '>'
// of a tag that is not within a quoted attribute value; at the end of s
// when it is not closed.
func markupEnd(s string, start int) int {
	for _, delim := range [][2]string{{"<!--", "-->"}, {"<![CDATA[", "]]>"}} {
		if strings.HasPrefix(s[start:], delim[0]) {
			body := start + len(delim[0])
			if n := strings.Index(s[body:], delim[1]); n >= 0 {
				return body + n + len(delim[1])
			}
			return len(s)
		}
	}
	var quote byte
	for i := start + 1; i < len(s); i++ {
		switch c := s[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			return i + 1
		}
	}
	return len(s)
}

// safeMarkup reports whether s, markup of a narrative, holds nothing the
// regular expression of safeXHTML matches.
func safeMarkup(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '<':
			if unsafeElement(s[i+1:]) {
				return false
			}
		case isSpace(c):
			if eventAttribute(s[i+1:]) {
				return false
			}
		case c == 'j' || c == 'J':
			if _, ok := foldPrefix(s[i:], "javascript:"); ok {
				return false
			}
		}
	}
	return true
}

// unsafeElements are the elements narrative must not open.
var unsafeElements = []string{"script", "iframe", "object", "embed", "form", "input", "style", "link", "meta", "base"}

// unsafeElement reports whether s, the text after a '<', opens one of
// unsafeElements: spaces, then its name as a whole word.
func unsafeElement(s string) bool {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for _, name := range unsafeElements {
		n, ok := foldPrefix(s, name)
		if !ok {
			continue
		}
		last, _ := utf8.DecodeLastRuneInString(s[:n])
		if isWordRune(last) != (n < len(s) && isWordByte(s[n])) {
			return true
		}
	}
	return false
}

// eventAttribute reports whether s, the text after a space, is an event
// handler attribute: "on", one or more letters, spaces and "=".
func eventAttribute(s string) bool {
	n, ok := foldPrefix(s, "on")
	if !ok {
		return false
	}
	s = s[n:]
	letters := 0
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		if !foldsToLetter(r) {
			break
		}
		s, letters = s[size:], letters+1
	}
	if letters == 0 {
		return false
	}
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	return len(s) > 0 && s[0] == '='
}

// foldPrefix reports whether s begins with word (lower case ASCII) under
// Unicode simple case folding, and how many bytes of s that prefix takes.
func foldPrefix(s, word string) (int, bool) {
	n := 0
	for i := 0; i < len(word); i++ {
		if n >= len(s) {
			return 0, false
		}
		r, size := utf8.DecodeRuneInString(s[n:])
		if !foldsTo(r, word[i]) {
			return 0, false
		}
		n += size
	}
	return n, true
}

// foldsTo reports whether r is c (a lower case ASCII letter or another
// ASCII character) under simple case folding: c itself, its upper case, or
// the two non-ASCII letters that fold to ASCII ones, the Kelvin sign (k)
// and the long s (s).
func foldsTo(r rune, c byte) bool {
	switch {
	case r == rune(c):
		return true
	case c < 'a' || c > 'z':
		return false
	case r == rune(c-'a'+'A'):
		return true
	case c == 'k':
		return r == '\u212a'
	case c == 's':
		return r == '\u017f'
	}
	return false
}

// foldsToLetter reports whether r is one of [a-z] under simple case folding.
func foldsToLetter(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '\u212a' || r == '\u017f'
}

// isSpace is \s of Go's regular expressions: ASCII white space.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}

// isWordByte and isWordRune are \w of Go's regular expressions, which \b
// uses: ASCII letters, digits and '_'.
func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func isWordRune(r rune) bool { return r < utf8.RuneSelf && isWordByte(byte(r)) }
