package fhirpath

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// unsafeHTML is the rule safeXHTML implements on each piece of markup, as
// a regular expression, and markup finds those pieces, comments, CDATA
// sections and tags, each to its end or to the end of the string: the
// oracle its tests compare it with.
var (
	unsafeHTML = regexp.MustCompile(`(?i)<\s*(script|iframe|object|embed|form|input|style|link|meta|base)\b|\son[a-z]+\s*=|javascript:`)
	markup     = regexp.MustCompile(`(?s)<!--.*?(?:-->|$)|<!\[CDATA\[.*?(?:\]\]>|$)|<(?:"[^"]*(?:"|$)|'[^']*(?:'|$)|[^"'>])*(?:>|$)`)
)

// ruleSafe is what the rule says of s: no piece of its markup matches
// unsafeHTML.
func ruleSafe(s string) bool {
	for _, m := range markup.FindAllString(s, -1) {
		if unsafeHTML.MatchString(m) {
			return false
		}
	}
	return true
}

func TestSafeXHTML(t *testing.T) {
	for _, c := range []struct {
		div  string
		safe bool
	}{
		{`<div xmlns="http://www.w3.org/1999/xhtml"><p>Grace Okafor, born 14 Feb 1961</p></div>`, true},
		{`<div xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></div>`, false},
		{`<div><SCRIPT src="x"/></div>`, false},
		{`<div>< 	iframe></div>`, false},
		{`<div><scripts/></div>`, true},
		{`<div><script_x/></div>`, true},
		{`<div><link/></div>`, false},
		{`<div><` + "\u017f" + `cript>`, false}, // the long s folds to s
		// The Kelvin sign folds to k, but \b is ASCII: after it, a word
		// boundary needs a word character.
		{`<div><lin` + "\u212a" + `/></div>`, true},
		{`<div><lin` + "\u212a" + `x/></div>`, false},
		{`<div><p onclick="x">a</p></div>`, false},
		{`<div><p ONLOAD  = "x">a</p></div>`, false},
		{`<div><p on="x">a</p></div>`, true},
		{`<div><p class="a" data-on="x">a</p></div>`, true},
		// Words of the text are content, not attributes or URLs.
		{`<div>the word one = 1</div>`, true},
		{`<div xmlns="http://www.w3.org/1999/xhtml"><p>Symptoms: onset = 3 days ago</p></div>`, true},
		{`<div><p>Do not follow javascript: links</p></div>`, true},
		{`<div><p title="a onset = 3">a</p></div>`, false}, // within a tag, read as the rule reads it
		{`<div><p title="a>b" onclick="x">a</p></div>`, false},
		{`<div><p title='a>b' onclick="x">a</p></div>`, false},
		{`<div><p title="a>b onclick=x">a</p></div>`, false},
		// Comments and CDATA sections are looked into: an HTML parser
		// ends <!--> at once and runs what follows.
		{`<div><!--><script>alert(1)</script>--></div>`, false},
		{`<div><!-- <iframe> --></div>`, false},
		{`<div><![CDATA[><script>alert(1)</script>]]></div>`, false},
		{`<div><!-- a comment --> onset = 3</div>`, true},
		{`<div><p>a</p> onclick=x</div>`, true},
		{`<div><p title="x`, true},
		{`<div><p title="x onclick=1`, false},
		{`<div><a href="JavaScript:void(0)">a</a></div>`, false},
		{`<div><a href="java` + "\u017f" + `cript:x">a</a></div>`, false},
		{`<div><a href="javascript">a</a></div>`, true},
		{`<div><p>form filled in</p><p>meta-analysis</p></div>`, true},
		{`<div><formx/></div>`, true},
		{`<div><form`, false},
		{`<`, true},
		{` on`, true},
		{` onx`, true},
		{` onx=`, true},
		{`< onx=`, false},
		{``, true},
	} {
		if got := safeXHTML(c.div); got != c.safe {
			t.Errorf("safeXHTML(%q) = %v, want %v", c.div, got, c.safe)
		}
		if oracle := ruleSafe(c.div); oracle != c.safe {
			t.Errorf("the rule as a regular expression says %v of %q; the case says %v", oracle, c.div, c.safe)
		}
	}
}

// TestSafeXHTMLAgreesWithRule compares safeXHTML with the regular expression
// on strings made of the pieces that matter to the rule.
func TestSafeXHTMLAgreesWithRule(t *testing.T) {
	pieces := []string{"<", ">", `"`, "'", "<!--", "-->", "<![CDATA[", "]]>", " ", "\t", "\n", "=", ":", "on", "ON", "x", "_", "1", "é", "\u212a", "\u017f", "\xff",
		"script", "scrip", "ifram", "iframe", "object", "embed", "form", "input", "style", "link", "lin", "meta", "base",
		"javascript", "java", "JAVA", "SCRIPT", "S", "K", "k", "s"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		var b strings.Builder
		for range rng.IntN(8) + 1 {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		s := b.String()
		if got, want := safeXHTML(s), ruleSafe(s); got != want {
			t.Fatalf("safeXHTML(%q) = %v, the rule says %v", s, got, want)
		}
	}
}

func FuzzSafeXHTML(f *testing.F) {
	f.Add(`<div xmlns="http://www.w3.org/1999/xhtml"><p onclick="x">a</p></div>`)
	f.Add("<lin\u212a>")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := safeXHTML(s), ruleSafe(s); got != want {
			t.Fatalf("safeXHTML(%q) = %v, the rule says %v", s, got, want)
		}
	})
}

func BenchmarkSafeXHTML(b *testing.B) {
	div := `<div xmlns="http://www.w3.org/1999/xhtml"><p><b>Grace Okafor</b>, female, born 14 February 1961</p>` +
		`<table class="grid"><tr><td>NHS number</td><td>991 200 3888</td></tr><tr><td>Address</td><td>4 Sandmoor Drive, Leeds LS17 7DF</td></tr></table></div>`
	for b.Loop() {
		safeXHTML(div)
	}
}
