package profiles

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"carefhir/fhir/fhirpath"
)

// TestInvariantsCompile parses the FHIRPath of every invariant of every
// loaded definition (R4, the R4 extensions and vital signs profiles, UK
// Core), as evaluated.
func TestInvariantsCompile(t *testing.T) {
	v := validator(t)
	n := 0
	var visit func(url string, e *elem)
	visit = func(url string, e *elem) {
		for _, c := range e.def.Constraint {
			if c.Expression == "" || native(c) {
				continue
			}
			n++
			src := c.Expression
			if fix, ok := correctedInvariants[c.Key]; ok && src == fix.published {
				src = fix.corrected
			}
			if _, err := v.compile(src); err != nil {
				t.Errorf("%s %s: %v", url, c.Key, err)
			}
		}
		for _, c := range e.children {
			visit(url, c)
		}
		for _, s := range e.slices {
			visit(url, s)
		}
	}
	for _, u := range v.StructureDefinitions() {
		visit(u, v.structure(u).root)
	}
	if n < 1000 {
		t.Errorf("only %d invariants", n)
	}
	t.Logf("%d invariants (those checked in Go aside) in %d definitions compile", n, len(v.StructureDefinitions()))
}

// notEvaluated returns the issues reporting an invariant that could not be
// evaluated.
func notEvaluated(issues []Issue) []Issue {
	var out []Issue
	for _, is := range issues {
		if is.Severity == "information" && strings.Contains(is.Message, "was not evaluated") {
			out = append(out, is)
		}
	}
	return out
}

// TestInvariantNotEvaluated reports an invariant the evaluator cannot run
// as information, instead of skipping it silently.
func TestInvariantNotEvaluated(t *testing.T) {
	profile := `{"resourceType":"StructureDefinition","url":"http://example.org/fhir/StructureDefinition/as-patient","name":"AsPatient","status":"draft","kind":"resource","abstract":false,"type":"Patient","baseDefinition":"http://hl7.org/fhir/StructureDefinition/Patient","derivation":"constraint",
	"differential":{"element":[{"id":"Patient","path":"Patient","constraint":[{"key":"as-1","severity":"error","human":"as() on one given name","expression":"name.given.as(string).exists() or name.empty()"}]}]}}`
	v, err := validator(t).extend([][]byte{[]byte(profile)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, resource string
		want           int
	}{
		{"one given name", `{"resourceType":"Patient","name":[{"given":["a"]}]}`, 0},
		{"two given names", `{"resourceType":"Patient","name":[{"given":["a","b"]}]}`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			issues := v.Validate(context.Background(), []byte(tt.resource), "http://example.org/fhir/StructureDefinition/as-patient")
			if got := notEvaluated(issues); len(got) != tt.want || len(got) > 0 && got[0].Expression != "Patient" {
				t.Errorf("got %s", show(issues))
			}
			if HasErrors(issues) {
				t.Errorf("an invariant not evaluated is not an error: %s", show(issues))
			}
		})
	}
}

// TestInvariantsDocumented checks that docs/conformance.md lists every
// invariant evaluated other than as published.
func TestInvariantsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/conformance.md")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range nativeInvariants {
		keys = append(keys, k)
	}
	for k := range correctedInvariants {
		keys = append(keys, k)
	}
	for _, k := range keys {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("docs/conformance.md does not list %s", k)
		}
	}
}

// TestExt1AgreesWithFHIRPath checks ext-1 in Go against its published
// FHIRPath, evaluated on the same extensions, including the odd ones a
// client may send.
func TestExt1AgreesWithFHIRPath(t *testing.T) {
	expr, err := fhirpath.Parse(nativeInvariants["ext-1"].published)
	if err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{
		`{"url":"u","valueString":"x"}`,
		`{"url":"u","extension":[{"url":"a","valueString":"x"}]}`,
		`{"url":"u"}`,
		`{"url":"u","extension":[{"url":"a","valueString":"x"}],"valueString":"x"}`,
		`{"url":"u","_valueString":{"extension":[{"url":"a","valueCode":"x"}]}}`,
		`{"url":"u","_valueString":{"id":"i"}}`,
		`{"url":"u","valueString":"x","_valueString":{"id":"i"}}`,
		`{"url":"u","extension":[],"valueBoolean":false}`,
		`{"url":"u","extension":[]}`,
		`{"url":"u","extension":[null]}`,
		`{"url":"u","valueCodeableConcept":{"text":"t"}}`,
		`{"url":"u","valueInteger":0,"extension":[{"url":"a"}]}`,
		`{"url":"u","valueQuantity":{"value":1},"valueString":"x"}`,
		`{"url":"u","value":"x"}`,
		`{"url":"u","valuex":"x"}`,
		`{"url":"u","valueString":null}`,
		`{"url":"u","id":"i"}`,
	} {
		var obj map[string]any
		if err := json.Unmarshal([]byte(ext), &obj); err != nil {
			t.Fatal(err)
		}
		node, err := fhirpath.NewNode(obj, "Extension")
		if err != nil {
			t.Fatal(err)
		}
		want, empty, err := expr.EvaluateBool(node, nil)
		if err != nil {
			t.Fatalf("%s: %v", ext, err)
		}
		if got := ext1Holds(obj); got != (want || empty) {
			t.Errorf("ext-1 of %s: %v in Go, %v (empty %v) in FHIRPath", ext, got, want, empty)
		}
	}
}
