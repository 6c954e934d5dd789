package profiles

import (
	"encoding/json"
	"slices"
	"testing"
)

// TestNarrativeMessages checks each rule of the narrative's XHTML on divs
// the decoder's own scanner reads and on divs left to encoding/xml: the
// same messages from both.
func TestNarrativeMessages(t *testing.T) {
	v, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	const ns = `xmlns="http://www.w3.org/1999/xhtml"`
	tests := []struct {
		div  string
		want []string
	}{
		{`<div ` + ns + `><p class="c">a &amp; b</p><br/></div>`, nil},
		{`<div ` + ns + `><!-- a comment --><p>a</p></div>`, nil},
		{`<div ` + ns + `><script>alert(1)</script></div>`, []string{"the narrative must not contain the element <script>"}},
		{`<div ` + ns + `><!-- a comment --><script>alert(1)</script></div>`, []string{"the narrative must not contain the element <script>"}},
		{`<div ` + ns + `><p xmlns="urn:x">a</p></div>`, []string{"the narrative must not contain the element <p>"}},
		{`<div ` + ns + `><p onclick="x()" class="c" data-x="1">a</p></div>`, []string{
			"the narrative must not use the attribute onclick on <p>",
			"the narrative must not use the attribute data-x on <p>",
		}},
		{`<div ` + ns + `><a href=" Java&#x53;cript:x()">a</a><img src="data:text/html,x" alt="x"/></div>`, []string{
			`the narrative must not use the URL " JavaScript:x()"`,
			`the narrative must not use the URL "data:text/html,x"`,
		}},
		{`<p ` + ns + `>a</p>`, []string{"the narrative must be a div in the XHTML namespace"}},
		{`<div>a</div>`, []string{"the narrative must be a div in the XHTML namespace"}},
		{`<div ` + ns + `>a</div>b`, []string{"the narrative must be a single div element"}},
		{`<div ` + ns + `>a</div> `, nil},
		{`<div ` + ns + `><p>a</div>`, []string{"the narrative is not well-formed XHTML: XML syntax error on line 1: element <p> closed by </div>"}},
		{`<div ` + ns + `>a&nbsp;b</div>`, []string{"the narrative is not well-formed XHTML: XML syntax error on line 1: invalid character entity &nbsp;"}},
		{`<!DOCTYPE div><div ` + ns + `/>`, []string{"the narrative must not contain a DOCTYPE or other directive"}},
		{`<?xml version="1.0"?><div ` + ns + `/>`, []string{"the narrative must not contain processing instructions or an XML declaration"}},
	}
	for _, tt := range tests {
		div, err := json.Marshal(tt.div)
		if err != nil {
			t.Fatal(err)
		}
		body := `{"resourceType":"Patient","text":{"status":"generated","div":` + string(div) + `}}`
		var got []string
		for _, is := range v.Validate(t.Context(), []byte(body)) {
			if is.Code == "value" && is.Expression == "Patient.text.div" {
				got = append(got, is.Message)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.div, got, tt.want)
		}
	}
}
