package jsontext

import (
	"encoding/json"
	"testing"
)

func TestAppendStringAsEncoded(t *testing.T) {
	for _, s := range []string{"", "plain", "http://x/fhir/Patient/a?b=c", `quote " and \ backslash`,
		"<div>&amp;</div>", "tab\tline\n", "é", "\u2028\u2029", "caf\xe9", "\x7f", "\x00"} {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("%q: %s, want x%s", s, got, want)
		}
	}
}

// Every byte, alone and inside plain text, is written as encoding/json
// writes it.
func TestAppendStringEveryByte(t *testing.T) {
	for c := 0; c < 256; c++ {
		for _, s := range []string{string([]byte{byte(c)}), "http://x/fhir/Patient/" + string([]byte{byte(c)}) + "a"} {
			want, _ := json.Marshal(s)
			if got := AppendString(nil, s); string(got) != string(want) {
				t.Errorf("%q: %s, want %s", s, got, want)
			}
		}
	}
}
