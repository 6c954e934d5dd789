package fhirxml_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/fhir/fhirxml"
)

const (
	// r4Dir holds the official R4 examples (JSON), shared with other packages.
	r4Dir = "../../testdata/r4-examples"
	// ukCoreDir holds the UK Core examples (XML).
	ukCoreDir = "../../testdata/uk-core"
)

func glob(t testing.TB, dir, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil || len(files) == 0 {
		t.Fatalf("no %s in %s: %v", pattern, dir, err)
	}
	return files
}

// eachFile runs test on the contents of every file in dir matching pattern,
// one parallel subtest per file.
func eachFile(t *testing.T, dir, pattern string, test func(t *testing.T, data []byte)) {
	for _, file := range glob(t, dir, pattern) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			test(t, data)
		})
	}
}

// mustJSON encodes r as JSON. Package fhirjson writes one canonical form
// (definition order, values as read), so two resources hold the same content
// exactly when their JSON is byte for byte the same.
func mustJSON(t *testing.T, r fhir.Resource) []byte {
	t.Helper()
	out, err := fhirjson.Marshal(r)
	if err != nil {
		t.Fatalf("fhirjson.Marshal: %v", err)
	}
	return out
}

// canonicalJSON returns the canonical form of a JSON resource.
func canonicalJSON(t *testing.T, data []byte) []byte {
	t.Helper()
	r, err := fhirjson.Unmarshal(data)
	if err != nil {
		t.Fatalf("fhirjson.Unmarshal: %v", err)
	}
	return mustJSON(t, r)
}

// TestUKCoreExamples reads every UK Core example, checks that writing it
// back gives the same XML content (comments, white space and element order
// aside), and that reading that again gives the same resource.
func TestUKCoreExamples(t *testing.T) {
	eachFile(t, ukCoreDir, "*.xml", func(t *testing.T, data []byte) {
		res, err := fhirxml.Unmarshal(data)
		if err != nil {
			t.Fatalf("Unmarshal: %v", err)
		}
		out, err := fhirxml.Marshal(res)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		if got, want := xmlTree(t, out), xmlTree(t, data); got != want {
			t.Errorf("written XML differs from the input:\n got %s\nwant %s", got, want)
		}
		res2, err := fhirxml.Unmarshal(out)
		if err != nil {
			t.Fatalf("Unmarshal of Marshal output: %v\n%s", err, out)
		}
		if a, b := mustJSON(t, res), mustJSON(t, res2); !bytes.Equal(a, b) {
			t.Errorf("second read differs:\n got %s\nwant %s", b, a)
		}
	})
}

// TestR4Examples takes every official R4 example from JSON to XML and back,
// and requires the JSON it ends with to hold what the original holds
// (package fhirjson's own tests show that its canonical form does).
func TestR4Examples(t *testing.T) {
	eachFile(t, r4Dir, "*.json", func(t *testing.T, data []byte) {
		want := canonicalJSON(t, data)
		res, err := fhirjson.Unmarshal(data)
		if err != nil {
			t.Fatalf("fhirjson.Unmarshal: %v", err)
		}
		x, err := fhirxml.Marshal(res)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := fhirxml.UnmarshalAs(x, res.ResourceType())
		if err != nil {
			t.Fatalf("Unmarshal: %v\n%s", err, x)
		}
		if got := mustJSON(t, back); !bytes.Equal(got, want) {
			t.Errorf("JSON → XML → JSON differs:\n got %s\nwant %s", got, want)
		}
		// Indented, the same resource, and the same XML tree.
		pretty, err := fhirxml.MarshalIndent(res, "  ")
		if err != nil {
			t.Fatalf("MarshalIndent: %v", err)
		}
		back, err = fhirxml.UnmarshalAs(pretty, res.ResourceType())
		if err != nil {
			t.Fatalf("Unmarshal of the indented form: %v\n%s", err, pretty)
		}
		if got := mustJSON(t, back); !bytes.Equal(got, want) {
			t.Errorf("JSON → indented XML → JSON differs:\n got %s\nwant %s", got, want)
		}
		if xmlTree(t, pretty) != xmlTree(t, x) {
			t.Errorf("the indented XML is another tree:\n%s\n%s", pretty, x)
		}
	})
}

// TestMarshalIndent checks the indented form line by line: each element on
// a line of its own, children one indent deeper, a contained resource
// inside its wrapper, and the narrative's XHTML written as it is.
func TestMarshalIndent(t *testing.T) {
	res, err := fhirjson.Unmarshal([]byte(`{"resourceType":"Patient","id":"p",` +
		`"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">\n  <p>Ann <b>Lee</b></p>\n</div>"},` +
		`"contained":[{"resourceType":"Organization","id":"o","name":"Surgery"}],` +
		`"name":[{"family":"Lee","given":["Ann","Jo"]}],"managingOrganization":{"reference":"#o"}}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := fhirxml.MarshalIndent(res, "  ")
	if err != nil {
		t.Fatal(err)
	}
	want := `<Patient xmlns="http://hl7.org/fhir">
  <id value="p"/>
  <text>
    <status value="generated"/>
    <div xmlns="http://www.w3.org/1999/xhtml">
  <p>Ann <b>Lee</b></p>
</div>
  </text>
  <contained>
    <Organization>
      <id value="o"/>
      <name value="Surgery"/>
    </Organization>
  </contained>
  <name>
    <family value="Lee"/>
    <given value="Ann"/>
    <given value="Jo"/>
  </name>
  <managingOrganization>
    <reference value="#o"/>
  </managingOrganization>
</Patient>`
	if string(got) != want {
		t.Errorf("MarshalIndent:\n%s\nwant\n%s", got, want)
	}
	plain, err := fhirxml.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.ContainsRune(plain, '\t') || bytes.Count(plain, []byte("\n")) != 2 {
		t.Errorf("Marshal indents, or changes the narrative: %s", plain)
	}
}

// xmlTree renders an XML document as a canonical string: comments and
// white-space-only text dropped, attributes sorted, child elements grouped by
// name in document order (FHIR fixes the order of the names, not the tree),
// and the XHTML div kept as its exact text.
func xmlTree(t *testing.T, data []byte) string {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))))
	var b strings.Builder
	for {
		off := dec.InputOffset()
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return b.String()
		}
		if err != nil {
			t.Fatalf("xmlTree: %v", err)
		}
		if start, ok := tok.(xml.StartElement); ok {
			writeElement(t, &b, dec, data, off, start)
		}
	}
}

func writeElement(t *testing.T, b *strings.Builder, dec *xml.Decoder, data []byte, off int64, start xml.StartElement) {
	t.Helper()
	if start.Name.Space == fhirxml.XHTMLNamespace {
		if err := dec.Skip(); err != nil {
			t.Fatal(err)
		}
		b.WriteString(string(data[off:dec.InputOffset()]))
		return
	}
	var attrs []string
	for _, a := range start.Attr {
		if a.Name.Space != "xmlns" && a.Name.Local != "xmlns" {
			attrs = append(attrs, a.Name.Local+"="+a.Value)
		}
	}
	slices.Sort(attrs)
	b.WriteString("(" + start.Name.Space + " " + start.Name.Local + " " + strings.Join(attrs, " "))
	groups := map[string][]string{}
	var names []string
	for {
		off := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		switch tok := tok.(type) {
		case xml.EndElement:
			slices.Sort(names)
			for _, n := range names {
				b.WriteString(strings.Join(groups[n], ""))
			}
			b.WriteString(")")
			return
		case xml.CharData:
			if s := strings.TrimSpace(string(tok)); s != "" {
				b.WriteString("text:" + s)
			}
		case xml.StartElement:
			var sub strings.Builder
			writeElement(t, &sub, dec, data, off, tok)
			if _, ok := groups[tok.Name.Local]; !ok {
				names = append(names, tok.Name.Local)
			}
			groups[tok.Name.Local] = append(groups[tok.Name.Local], sub.String())
		}
	}
}
