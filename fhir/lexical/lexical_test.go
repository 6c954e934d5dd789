package lexical

import (
	"regexp"
	"strings"
	"testing"
)

// ValidID must accept exactly what the definition of a FHIR id does.
func TestValidIDAsDefined(t *testing.T) {
	pattern := regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	ids := []string{"", strings.Repeat("a", 64), strings.Repeat("a", 65), "é", "a\x00", "Patient/1", "a b", "a_b", "0a14f7c2-5b1e-4c8a-9d3f-2e6b7a8c9d0e"}
	for c := range 256 {
		ids = append(ids, string(rune(c)), "a"+string([]byte{byte(c)}))
	}
	for _, id := range ids {
		if got, want := ValidID(id), pattern.MatchString(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}

// ValidURI and ValidCode must accept exactly what the regular expressions
// of uri and code in the R4 definitions do (\s of XML Schema), never empty.
func TestValidURIAndCodeAsDefined(t *testing.T) {
	uri := regexp.MustCompile(`^[^ \t\n\r]+$`)
	code := regexp.MustCompile(`^[^ \t\n\r]+([ \t\n\r][^ \t\n\r]+)*$`)
	for _, s := range []string{"", " ", "a", "a b", "a  b", " a", "a ", "a\tb", "a\n", "http://snomed.info/sct", "urn:oid:1.2", "é|x"} {
		if got, want := ValidURI(s), uri.MatchString(s); got != want {
			t.Errorf("ValidURI(%q) = %v, want %v", s, got, want)
		}
		if got, want := ValidCode(s), code.MatchString(s); got != want {
			t.Errorf("ValidCode(%q) = %v, want %v", s, got, want)
		}
	}
}

// ValidDecimal must accept exactly what the regular expression of decimal
// in the R4 definitions does.
func TestValidDecimalAsDefined(t *testing.T) {
	decimal := regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)
	for _, s := range []string{"", "0", "-0", "0.2", "00", "01", "1.", ".5", "-", "1e5", "1E-3", "1e", "1e+", "2.50e+10", "+1",
		"NaN", "Inf", "-Inf", "infinity", "0x1p-3", "1_000", " 1", "1 ", "1.2.3", "0.2e1.5", "123456789012345678901234567890"} {
		if got, want := ValidDecimal(s), decimal.MatchString(s); got != want {
			t.Errorf("ValidDecimal(%q) = %v, want %v", s, got, want)
		}
	}
}

func BenchmarkValidID(b *testing.B) {
	pattern := regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	const id = "0a14f7c2-5b1e-4c8a-9d3f-2e6b7a8c9d0e"
	b.Run("loop", func(b *testing.B) {
		for range b.N {
			ValidID(id)
		}
	})
	b.Run("regexp", func(b *testing.B) {
		for range b.N {
			pattern.MatchString(id)
		}
	})
}

func TestRepairDiv(t *testing.T) {
	const open = `<div xmlns="http://www.w3.org/1999/xhtml">`
	for _, tc := range []struct{ in, want string }{
		{open + `a&nbsp;b&amp;&#160;</div>`, open + `a&#160;b&amp;&#160;</div>`},
		{`<?xml version="1.0"?>` + "\n" + open + `x</div>`, open + `x</div>`},
		{open + `&NotEqualTilde;</div>`, open + `&#8770;&#824;</div>`},
		{open + `<![CDATA[&nbsp;]]>&nbsp;</div>`, open + `<![CDATA[&nbsp;]]>&#160;</div>`},
		// not entities of HTML: left for CheckDiv to refuse
		{open + `&notit; &bogus; &nbsp</div>`, open + `&notit; &bogus; &nbsp</div>`},
	} {
		got, _ := RepairDiv(tc.in)
		if got != tc.want {
			t.Errorf("RepairDiv(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if _, ok := RepairDiv(open + `a</div>`); ok {
		t.Error("a div with nothing to rewrite is reported rewritten")
	}
}

// DayExists follows the Gregorian calendar: 29 February in a year divisible
// by 4, but not by 100 unless also by 400; a year or a month alone has no
// day to refuse.
func TestDayExists(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"2024-02-29", true},
		{"2000-02-29", true},
		{"2023-02-29", false},
		{"1900-02-29", false},
		{"2024-02-30", false},
		{"2024-04-31", false},
		{"2024-06-30", true},
		{"2024-12-31", true},
		{"2024-01-31T23:59:59Z", true},
		{"2024-09-31T10:00:00.000Z", false},
		{"2024-02", true},
		{"2024", true},
	} {
		if got := DayExists(tc.s); got != tc.want {
			t.Errorf("DayExists(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}
