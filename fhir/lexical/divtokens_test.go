package lexical

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// xmlTokens reads s with a strict xml.Decoder: its tokens up to its first
// error, and that error (nil at the end of s).
func xmlTokens(s string) ([]DivToken, error) {
	x := xml.NewDecoder(strings.NewReader(s))
	x.Strict = true
	toks := []DivToken{}
	for {
		t, err := x.Token()
		if errors.Is(err, io.EOF) {
			return toks, nil
		}
		if err != nil {
			return toks, err
		}
		var tok DivToken
		switch t := t.(type) {
		case xml.StartElement:
			tok = DivToken{Kind: DivStart, Name: t.Name, Attr: t.Attr}
		case xml.EndElement:
			tok = DivToken{Kind: DivEnd, Name: t.Name}
		case xml.CharData:
			tok = DivToken{Kind: DivText, Text: string(t)}
		case xml.Comment:
			tok = DivToken{Kind: DivComment}
		case xml.ProcInst:
			tok = DivToken{Kind: DivProcInst}
		case xml.Directive:
			tok = DivToken{Kind: DivDirective}
		}
		toks = append(toks, tok)
	}
}

// divDecoderTokens reads s as xmlTokens does, with a DivDecoder.
func divDecoderTokens(s string) ([]DivToken, error) {
	return decoderTokens(NewDivDecoder(s))
}

func decoderTokens(d *DivDecoder) ([]DivToken, error) {
	toks := []DivToken{}
	for {
		t, err := d.Next()
		if errors.Is(err, io.EOF) {
			return toks, nil
		}
		if err != nil {
			return toks, err
		}
		t.Attr = slices.Clone(t.Attr)
		toks = append(toks, t)
	}
}

// divTokens returns the tokens the scanner reads from s; ok is false when
// it leaves s to encoding/xml.
func divTokens(s string) (toks []DivToken, ok bool) {
	d := NewDivDecoder(s)
	if d.xml != nil {
		return nil, false
	}
	toks, err := decoderTokens(d)
	return toks, err == nil
}

// sameTokens reports whether a and b are the same tokens, an element
// without attributes in either with a nil or an empty slice.
func sameTokens(a, b []DivToken) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if len(x.Attr) == 0 && len(y.Attr) == 0 {
			x.Attr, y.Attr = nil, nil
		}
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

// sameAsEncodingXML fails t when a DivDecoder reads s other than
// encoding/xml does, or when the scanner reads s and encoding/xml finds an
// error in it.
func sameAsEncodingXML(t *testing.T, s string) {
	t.Helper()
	want, wantErr := xmlTokens(s)
	if toks, ok := divTokens(s); ok && wantErr != nil {
		t.Fatalf("divTokens(%q) read it; encoding/xml: %v", s, wantErr)
	} else if ok && !sameTokens(toks, want) {
		t.Fatalf("divTokens(%q) =\n%#v\nencoding/xml:\n%#v", s, toks, want)
	}
	got, err := divDecoderTokens(s)
	if !sameTokens(got, want) || (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
		t.Fatalf("DivDecoder(%q) = %#v, %v; encoding/xml: %#v, %v", s, got, err, want, wantErr)
	}
}

// divCases are divs and near-divs, each read by the scanner (true) or left
// to encoding/xml (false).
var divCases = []struct {
	s       string
	scanned bool
}{
	{`<div xmlns="http://www.w3.org/1999/xhtml"><p>Hello</p></div>`, true},
	{"<div xmlns=\"http://www.w3.org/1999/xhtml\">\n\t<table class='grid'><tr><td colspan = \"2\">a &lt; b &amp;&amp; c &gt; d &quot;&apos;</td></tr></table><br/><img src=\"x.png\" alt=\"&#233;t&#xe9;\" /></div>", true},
	{`<div xmlns="http://www.w3.org/1999/xhtml"><a href="x"title="y">no space between</a></div>`, true},
	{`<div xmlns="http://www.w3.org/1999/xhtml"><p xmlns="urn:other"><b>in urn:other</b></p><b>back</b></div>`, true},
	{`<div xmlns="http://www.w3.org/1999/xhtml" xmlns=""><p>the last xmlns wins</p></div>`, true},
	{`<div><p>no namespace</p></div>`, true},
	{` <div xmlns="http://www.w3.org/1999/xhtml"/> trailing`, true},
	{`<div xmlns="http://www.w3.org/1999/xhtml"><p>a</p></div><div/>`, true},
	{`<div xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script><p onclick="x()">a</p></div>`, true},
	{`<div xmlns="http://www.w3.org/1999/xhtml">ünïcödé €, 𝄞 and &#x1D11E; &#0065;</div>`, true},
	{`<div xmlns="http://www.w3.org/1999/xhtml"><p a="1" a="2">duplicate</p></div>`, true},
	{`<div xmlns="http://www.w3.org/1999/xhtml"><p>]] > and ]]</p></div>`, true},
	{`<div xmlns="http://www.w3.org/1999/xhtml">&#13;&#9;</div>`, true},

	{"<div xmlns=\"http://www.w3.org/1999/xhtml\">a\r\nb</div>", false},
	{`<div xmlns="http://www.w3.org/1999/xhtml"><!-- comment --></div>`, false},
	{`<div xmlns="http://www.w3.org/1999/xhtml"><![CDATA[x]]></div>`, false},
	{`<?xml version="1.0"?><div xmlns="http://www.w3.org/1999/xhtml"/>`, false},
	{`<!DOCTYPE div><div xmlns="http://www.w3.org/1999/xhtml"/>`, false},
	{`<h:div xmlns:h="http://www.w3.org/1999/xhtml"><h:p>prefixed</h:p></h:div>`, false},
	{`<div xmlns="http://www.w3.org/1999/xhtml" xml:lang="en">a</div>`, false},
	{`<div xmlns="http://www.w3.org/1999/xhtml"><p>unclosed</div>`, false},
	{`<div xmlns="http://www.w3.org/1999/xhtml"><p>a</p>`, false},
	{`<div xmlns="http://www.w3.org/1999/xhtml"></p></div>`, false},
	{`<div xmlns="http://www.w3.org/1999/xhtml">&nbsp;</div>`, false},
	{`<div xmlns="http://www.w3.org/1999/xhtml">&amp</div>`, false},
	{`<div xmlns="http://www.w3.org/1999/xhtml">&#X41;</div>`, false},
	{`<div xmlns="http://www.w3.org/1999/xhtml">&#0;</div>`, false},
	{`<div xmlns="http://www.w3.org/1999/xhtml">&#xD800;</div>`, false},
	{`<div xmlns="http://www.w3.org/1999/xhtml">&#1114112;</div>`, false},
	{`<div xmlns="http://www.w3.org/1999/xhtml">&#000000065;&#x0000000041;</div>`, true},
	{`<div xmlns="http://www.w3.org/1999/xhtml">&#11141120;</div>`, false},
	{`<div xmlns="http://www.w3.org/1999/xhtml">a]]>b</div>`, false},
	{"<div xmlns=\"http://www.w3.org/1999/xhtml\">\x00</div>", false},
	{"<div xmlns=\"http://www.w3.org/1999/xhtml\">\xff</div>", false},
	{"<div xmlns=\"http://www.w3.org/1999/xhtml\">\uffff</div>", false},
	{`<div xmlns="http://www.w3.org/1999/xhtml"><p class=x>unquoted</p></div>`, false},
	{`<div xmlns="http://www.w3.org/1999/xhtml"><p hidden>no value</p></div>`, false},
	{`<div xmlns="http://www.w3.org/1999/xhtml"><p title="a<b">lt</p></div>`, false},
	{`<div xmlns="http://www.w3.org/1999/xhtml"><p title="open>a</p></div>`, false},
	{`<div xmlns="http://www.w3.org/1999/xhtml"><1p>a</1p></div>`, false},
	{`<div xmlns="http://www.w3.org/1999/xhtml"><pé>a</pé></div>`, false},
	{`<div xmlns="http://www.w3.org/1999/xhtml">< p>a</p></div>`, false},
	{`<div xmlns="http://www.w3.org/1999/xhtml"><p/ >a</div>`, false},
	{`<div xmlns="http://www.w3.org/1999/xhtml"></div x>`, false},
	{`<xmlns>a</xmlns>`, false},
	{`<div xmlns="http://www.w3.org/1999/xhtml"><`, false},
	{`<div xmlns="http://www.w3.org/1999/xhtml"></`, false},
	{`<div xmlns="http://www.w3.org/1999/xhtml`, false},
	{``, true},
	{`plain text`, true},
}

func TestDivDecoderReadsAsEncodingXML(t *testing.T) {
	for _, c := range divCases {
		if _, ok := divTokens(c.s); ok != c.scanned {
			t.Errorf("divTokens(%q) read it: %v, want %v", c.s, ok, c.scanned)
		}
		sameAsEncodingXML(t, c.s)
	}
}

// TestDivDecoderScansR4Examples checks that the scanner reads the divs of
// the R4 examples as encoding/xml does, and reads most of them: divs
// written the plain way are what it is for.
func TestDivDecoderScansR4Examples(t *testing.T) {
	files, err := filepath.Glob("../../testdata/r4-examples/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no R4 examples: %v", err)
	}
	divs, scanned := 0, 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, div := range collectDivs(doc, nil) {
			divs++
			if _, ok := divTokens(div); ok {
				scanned++
			}
			sameAsEncodingXML(t, div)
		}
	}
	if divs < 100 || scanned < divs*9/10 {
		t.Errorf("the scanner read %d of the %d divs of the R4 examples", scanned, divs)
	}
}

func collectDivs(v any, divs []string) []string {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if s, ok := e.(string); ok && k == "div" {
				divs = append(divs, s)
			} else {
				divs = collectDivs(e, divs)
			}
		}
	case []any:
		for _, e := range v {
			divs = collectDivs(e, divs)
		}
	}
	return divs
}

func FuzzDivDecoder(f *testing.F) {
	for _, c := range divCases {
		f.Add(c.s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sameAsEncodingXML(t, s)
	})
}
