package fhirjson

import (
	"encoding/base64"
	"regexp"
	"strings"
	"testing"

	"carefhir/fhir/lexical"
)

// specRegex holds the regexes of the R4 primitive definitions (the "regex"
// extension on each type's value element), with \s and \S given their XML
// Schema meaning (space, tab, CR, LF), as the definitions intend.
var specRegex = map[string]string{
	"base64Binary": `(\s*([0-9a-zA-Z\+/=]){4}\s*)+`,
	"code":         `[^\s]+(\s[^\s]+)*`,
	"date":         `([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?`,
	"dateTime":     `([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?`,
	"decimal":      `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`,
	"id":           `[A-Za-z0-9\-\.]{1,64}`,
	"instant":      `([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))`,
	"oid":          `urn:oid:[0-2](\.(0|[1-9][0-9]*))+`,
	"string":       `[ \r\n\t\S]+`,
	"time":         `([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?`,
	"uri":          `\S*`,
	"uuid":         `urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`,
}

func compileSpec(t testing.TB, name string) *regexp.Regexp {
	re := specRegex[name]
	if name == "string" {
		// [ \r\n\t\S] is every character when \S is "not space, tab, CR or LF".
		re = `(?s).+`
	}
	re = strings.ReplaceAll(re, `\S`, `[^ \t\n\r]`)
	re = strings.ReplaceAll(re, `[^\s]`, `[^ \t\n\r]`)
	re = strings.ReplaceAll(re, `\s`, `[ \t\n\r]`)
	return regexp.MustCompile(`\A(?:` + re + `)\z`)
}

// specValid reports whether s is a valid name value by the regex re of its
// definition and what else the spec asks of it: a JSON string is never
// empty, and a base64Binary is base64 (RFC 4648), whose "=" only pads the
// end, once whitespace is taken out.
func specValid(name string, re *regexp.Regexp, s string) bool {
	want := re.MatchString(s)
	switch name {
	case "uri":
		want = want && s != ""
	case "base64Binary":
		_, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
		want = want && err == nil
	}
	return want
}

func validator(name string) func(string) bool {
	if name == "decimal" {
		return lexical.ValidDecimal
	}
	for _, p := range primitives {
		if p.name == name {
			return p.valid
		}
	}
	return nil
}

var primitiveSamples = []string{
	"", " ", "a", "a b", "a  b", " a", "a ", "a\tb", "a\nb", "\f", "AZaz09-.", "a_b",
	"2020", "0000", "0001", "1000", "999", "2020-", "2020-1", "2020-01", "2020-00", "2020-13", "2020-12",
	"2020-01-01", "2020-01-00", "2020-01-31", "2020-01-32", "2020-02-30", "2020-01-01T", "2020-01-01T10:00:00",
	"2020-01-01T10:00:00Z", "2020-01-01T10:00:00.5Z", "2020-01-01T10:00:00.Z", "2020-01-01T24:00:00Z",
	"2020-01-01T23:59:60+14:00", "2020-01-01T23:59:59+14:01", "2020-01-01T23:59:59-13:59", "2020-01-01T23:59:59+1300",
	"2020-01T10:00:00Z", "10:00:00", "10:00", "10:00:00.123", "23:59:60", "24:00:00", "10:60:00", "1:00:00",
	"0", "-0", "01", "1.", "1.0", ".5", "1e5", "1E+5", "1e", "-1.5e-3", "+1", "--1",
	"urn:oid:1.2.3", "urn:oid:1", "urn:oid:3.1", "urn:oid:1.02", "urn:oid:1.0.10", "urn:oid:1.", "urn:oid:",
	"urn:uuid:c757873d-ec9a-4326-a141-556f43239520", "urn:uuid:C757873D-EC9A-4326-A141-556F43239520", "urn:uuid:c757873d",
	"aGVsbG8=", "aGVs bG8=", "aGV", " aGVs ", "aGVsbG8", "a===", "aa=a", "aa==", "aaa=", "aa== aaaa", "a=a=", "====", "a-b_", strings.Repeat("a", 64), strings.Repeat("a", 65),
	"http://x/y?z#w", "http://x y",
}

// TestValidatorsMatchSpecRegex checks the hand-written validators against the
// regexes of the definitions.
func TestValidatorsMatchSpecRegex(t *testing.T) {
	for name := range specRegex {
		re := compileSpec(t, name)
		valid := validator(name)
		for _, s := range primitiveSamples {
			want := specValid(name, re, s)
			if got := valid(s); got != want {
				t.Errorf("%s(%q) = %v, regex says %v", name, s, got, want)
			}
		}
	}
}

func FuzzValidators(f *testing.F) {
	for _, s := range primitiveSamples {
		f.Add(s)
	}
	res := map[string]*regexp.Regexp{}
	for name := range specRegex {
		res[name] = compileSpec(f, name)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for name, re := range res {
			want := specValid(name, re, s)
			if got := validator(name)(s); got != want {
				t.Errorf("%s(%q) = %v, regex says %v", name, s, got, want)
			}
		}
	})
}

func TestParseInteger(t *testing.T) {
	integer, positive, unsigned := &primitives[9], &primitives[12], &primitives[15]
	tests := []struct {
		name string
		p    *primitive
		text string
		want int64
		ok   bool
	}{
		{"integer", integer, "-2147483648", -2147483648, true},
		{"integer max", integer, "2147483647", 2147483647, true},
		{"integer overflow", integer, "2147483648", 0, false},
		{"integer minus zero", integer, "-0", 0, true},
		{"integer leading zero", integer, "007", 0, false},
		{"positiveInt one", positive, "1", 1, true},
		{"positiveInt zero", positive, "0", 0, false},
		{"unsignedInt zero", unsigned, "0", 0, true},
		{"unsignedInt negative", unsigned, "-1", 0, false},
		{"huge", integer, "99999999999999999999999", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, msg := tc.p.parseInteger(tc.text)
			if (msg == "") != tc.ok || got != tc.want {
				t.Errorf("parseInteger(%q) = %d, %q; want %d, ok=%v", tc.text, got, msg, tc.want, tc.ok)
			}
		})
	}
}
