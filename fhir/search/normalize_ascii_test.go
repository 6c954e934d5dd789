package search

import "testing"

var asciiTests = []struct{ name, in string }{
	{"empty", ""},
	{"clean", "okafor"},
	{"upper case", "OKAFOR Grace"},
	{"white space", " \tGrace\n\n  Adaeze\r\v\f"},
	{"one space", " "},
	{"control characters", "a\x00b\x1f"},
	{"punctuation", "O'Brien-Smith, Jr."},
	{"not ASCII", "Zoë"},
}

// TestNormalizeASCII checks the fast path of NormalizeString against the
// general one.
func TestNormalizeASCII(t *testing.T) {
	for _, tt := range asciiTests {
		t.Run(tt.name, func(t *testing.T) { checkASCII(t, tt.in) })
	}
}

func FuzzNormalizeASCII(f *testing.F) {
	for _, tt := range asciiTests {
		f.Add(tt.in)
	}
	f.Fuzz(checkASCII)
}

func checkASCII(t *testing.T, s string) {
	n, ok := normalizeASCII(s)
	if !ok {
		return
	}
	if want := normalizeUnicode(s); n != want {
		t.Errorf("normalizeASCII(%q) = %q, want %q", s, n, want)
	}
}
