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
