package profiles

import (
	"math/rand/v2"
	"regexp"
	"testing"
)

// TestFormatsMatchTheirPatterns checks each check written in Go against
// the regular expression it stands for, on chosen values and on random
// strings over the characters that matter to the patterns.
func TestFormatsMatchTheirPatterns(t *testing.T) {
	chosen := []string{"", " ", "a", "0", "00", "01", "10", "-0", "-01", "-", "+1", "1.", ".5", "1.5", "1e5", "1E+05",
		"1e", "1e-", "1.5e-3", "-0.0e0", "a b", "a  b", " a", "a ", "a\tb", "a\fb", "\f", "a\vb", "é", "\xff", "a\u00a0b",
		"Patient-1.2", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.", "x_y",
		"0123456789012345678901234567890123456789012345678901234567890123", "01234567890123456789012345678901234567890123456789012345678901234"}
	alphabet := []string{"0", "1", "9", "a", "Z", "e", "E", "-", "+", ".", "_", " ", "\t", "\n", "\r", "\f", "\v", "é", "\xff"}
	r := rand.New(rand.NewPCG(1, 2))
	for pattern, f := range formats {
		re := regexp.MustCompile(`^(?:` + pattern + `)$`)
		values := append(append([]string(nil), chosen...), randomStrings(r, alphabet, 8)...)
		for _, s := range values {
			if got, want := f(s), re.MatchString(s); got != want {
				t.Errorf("pattern %s, value %q: the Go check says %v, the expression %v", pattern, s, got, want)
			}
		}
	}
}

// TestFormatsAreUsed checks that the patterns of formats are those the
// definitions give, so that the checks written in Go are the ones used.
func TestFormatsAreUsed(t *testing.T) {
	v := validator(t)
	for _, typ := range []string{"string", "markdown", "uri", "url", "canonical", "code", "id", "decimal", "integer", "positiveInt", "unsignedInt"} {
		if _, ok := v.regexps[typ].(formatFunc); !ok {
			t.Errorf("%s: its value pattern is matched by %T, not by a check of formats", typ, v.regexps[typ])
		}
	}
}

// randomStrings returns 20,000 strings of up to max-1 pieces of alphabet.
func randomStrings(r *rand.Rand, alphabet []string, max int) []string {
	out := make([]string, 0, 20_000)
	for range 20_000 {
		s := ""
		for range r.IntN(max) {
			s += alphabet[r.IntN(len(alphabet))]
		}
		out = append(out, s)
	}
	return out
}

func TestDayExists(t *testing.T) {
	for _, tt := range []struct {
		typ, value string
		want       bool
	}{
		{"date", "2020-02-29", true}, // a leap year
		{"date", "2000-02-29", true}, // divisible by 400
		{"date", "1900-02-29", false},
		{"date", "2023-02-29", false},
		{"date", "2020-02-30", false},
		{"date", "2020-04-31", false},
		{"date", "2020-12-31", true},
		{"date", "2020-02", true},
		{"date", "2020", true},
		{"dateTime", "2021-06-31T12:00:00Z", false},
		{"dateTime", "2021-07-31T12:00:00+01:00", true},
		{"instant", "2021-09-31T12:00:00.000Z", false},
		{"string", "2021-09-31", true}, // not a date
	} {
		if got := dayExists(tt.typ, tt.value); got != tt.want {
			t.Errorf("dayExists(%s, %q) = %v, want %v", tt.typ, tt.value, got, tt.want)
		}
	}
}
