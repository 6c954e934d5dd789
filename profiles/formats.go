package profiles

import (
	"regexp"

	"carefhir/fhir/lexical"
)

// valueFormat checks the lexical form of a primitive value: the regular
// expression its definition gives, or a check written in Go that accepts
// exactly what that expression matches.
type valueFormat interface {
	MatchString(s string) bool
}

// formatFunc is a valueFormat written in Go.
type formatFunc func(string) bool

func (f formatFunc) MatchString(s string) bool { return f(s) }

// formats holds checks written in Go for the value patterns of the most
// frequent primitive types, keyed by the pattern as the R4 definitions give
// it (https://hl7.org/fhir/R4/datatypes.html#primitive): a validation
// checks every primitive in the resource, and the regexp package takes
// several times longer to match these than a loop over the bytes. A
// definition with another pattern is matched by its regular expression.
// In these patterns, as in Go's, \s is [\t\n\f\r ] and \S any other
// character.
var formats = map[string]formatFunc{
	`[ \r\n\t\S]+`:          nonEmptyWithoutFormFeed, // string, markdown
	`\S*`:                   withoutWhitespace,       // uri, url, canonical
	`[^\s]+(\s[^\s]+)*`:     isCode,
	`[A-Za-z0-9\-\.]{1,64}`: lexical.ValidID,
	`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`: isDecimal,
	`-?([0]|([1-9][0-9]*))`:                          isInteger,
	`[1-9][0-9]*`:                                    isPositiveInt,
	`[0]|([1-9][0-9]*)`:                              isUnsignedInt,
}

// compileFormat returns the check of a value pattern: one of formats, or
// the pattern compiled (nil if it does not compile).
func compileFormat(pattern string) valueFormat {
	if f, ok := formats[pattern]; ok {
		return f
	}
	re, err := regexp.Compile(`^(?:` + pattern + `)$`)
	if err != nil {
		return nil
	}
	return re
}

func isSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\f'
}

// nonEmptyWithoutFormFeed: [ \r\n\t\S]+ allows every character but \f.
func nonEmptyWithoutFormFeed(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '\f' {
			return false
		}
	}
	return true
}

// withoutWhitespace: \S*.
func withoutWhitespace(s string) bool {
	for i := 0; i < len(s); i++ {
		if isSpace(s[i]) {
			return false
		}
	}
	return true
}

// isCode: [^\s]+(\s[^\s]+)*, words separated by single whitespace.
func isCode(s string) bool {
	if s == "" || isSpace(s[0]) || isSpace(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if isSpace(s[i]) && isSpace(s[i-1]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// digits returns the length of the run of digits that starts s.
func digits(s string) int {
	n := 0
	for n < len(s) && isDigit(s[n]) {
		n++
	}
	return n
}

// unsigned returns the length of the 0|[1-9][0-9]* that starts s, or -1.
func unsigned(s string) int {
	switch n := digits(s); {
	case n == 0:
		return -1
	case s[0] == '0':
		return 1
	default:
		return n
	}
}

// isDecimal: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func isDecimal(s string) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	n := unsigned(s)
	if n < 0 {
		return false
	}
	s = s[n:]
	if len(s) > 0 && s[0] == '.' {
		f := digits(s[1:])
		if f == 0 {
			return false
		}
		s = s[1+f:]
	}
	if len(s) > 0 && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
			s = s[1:]
		}
		e := digits(s)
		if e == 0 {
			return false
		}
		s = s[e:]
	}
	return s == ""
}

// isInteger: -?([0]|([1-9][0-9]*)).
func isInteger(s string) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	return isUnsignedInt(s)
}

// isUnsignedInt: [0]|([1-9][0-9]*).
func isUnsignedInt(s string) bool { return unsigned(s) == len(s) }

// isPositiveInt: [1-9][0-9]*.
func isPositiveInt(s string) bool { return s != "" && s[0] != '0' && digits(s) == len(s) }
