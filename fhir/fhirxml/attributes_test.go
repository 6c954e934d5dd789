package fhirxml

import (
	"fmt"
	"strings"
	"testing"
)

func TestScanTags(t *testing.T) {
	attrs := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, ` a%d="x=y"`, i)
		}
		return b.String()
	}
	tests := []struct {
		name, doc string
		want      bool
	}{
		{"64 attributes", `<a` + attrs(64) + `/>`, false},
		{"65 attributes", `<a><b` + attrs(65) + `/></a>`, true},
		{"equals signs in values", `<a b="` + strings.Repeat("=", 100) + `"/>`, false},
		{"equals signs in a comment", `<a><!--` + attrs(100) + `--></a>`, false},
		{"equals signs in CDATA", `<a><![CDATA[` + attrs(100) + `]]></a>`, false},
		{"equals signs in a processing instruction", `<a><?pi ` + attrs(100) + `?></a>`, false},
		{"a quote in a processing instruction", `<a><?pi it's?><b` + attrs(65) + `/></a>`, true},
	}
	for _, tt := range tests {
		if _, got, _ := scanTags([]byte(tt.doc)); got != tt.want {
			t.Errorf("%s: scanTags = %v, want %v", tt.name, got, tt.want)
		}
	}
}
