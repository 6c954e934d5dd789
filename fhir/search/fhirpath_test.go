package search

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"carefhir/fhir/definitions"
	"carefhir/store/query"
)

// allTypes returns every resource type the official search parameters
// name as a base.
func allTypes(t testing.TB) []string {
	t.Helper()
	defs, err := readDefinitions(definitions.FS)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, d := range defs {
		for _, b := range d.Base {
			if b != "Resource" && b != "DomainResource" && !slices.Contains(types, b) {
				types = append(types, b)
			}
		}
	}
	slices.Sort(types)
	return types
}

// Every official expression of every resource type (the served ones
// included) compiles with the FHIRPath evaluator, and evaluates on an empty
// resource of its type.
func TestFHIRPathCompilesEveryExpression(t *testing.T) {
	r, err := Load(allTypes(t))
	if err != nil {
		t.Fatal(err)
	}
	ix := NewIndexer(r, FHIRPath, "")
	for _, f := range ix.Failed {
		t.Errorf("%s: %s", f.ID, f.Reason)
	}
	for _, typ := range r.Types() {
		if _, err := ix.Index(typ, map[string]any{"resourceType": typ, "id": "x"}); err != nil {
			t.Errorf("%s: %v", typ, err)
		}
	}
}

func TestFHIRPathIndex(t *testing.T) {
	r, err := Load(testTypes)
	if err != nil {
		t.Fatal(err)
	}
	ix := NewIndexer(r, FHIRPath, "https://fhir.example.nhs.uk/fhir")
	p, err := ix.IndexJSON("Patient", []byte(patientJSON))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []query.Token{
		{Param: "email", System: "email", Code: "zoe@example.org"},
		{Param: "identifier:of-type", System: "http://terminology.hl7.org/CodeSystem/v2-0203|MR", Code: "446053"},
		{Param: "deceased", Code: "false"},
		{Param: "active", Code: "true"},
	} {
		if !slices.Contains(p.Tokens, w) {
			t.Errorf("Patient tokens %+v lack %+v", p.Tokens, w)
		}
	}
	if slices.Contains(p.Tokens, query.Token{Param: "phone", System: "email", Code: "zoe@example.org"}) {
		t.Error("where(system='phone') let an email through")
	}
	o, err := ix.IndexJSON("Observation", []byte(observationJSON))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(o.References, query.Reference{Param: "patient", Type: "Patient", ID: "p1"}) {
		t.Errorf("Observation references %+v lack patient (where(resolve() is Patient))", o.References)
	}
	var keys []string
	for _, c := range o.Composites {
		b, _ := json.Marshal(c)
		keys = append(keys, string(b))
	}
	want := query.Composite{Param: "component-code-value-concept", Parts: []string{"http://loinc.org|8462-4", "http://snomed.info/sct|1234"}}
	if !slices.ContainsFunc(o.Composites, func(x query.Composite) bool { return reflect.DeepEqual(x, want) }) {
		t.Errorf("composites %v lack %+v", keys, want)
	}
	cq := query.Composite{Param: "code-value-quantity", Parts: []string{"http://loinc.org|8480-6"},
		Quantity: &query.Quantity{Value: 120.5, Text: "120.50", System: "http://unitsofmeasure.org", Code: "mm[Hg]", Unit: "mmHg"}}
	if !slices.ContainsFunc(o.Composites, func(x query.Composite) bool { return reflect.DeepEqual(x, cq) }) {
		t.Errorf("composites %v lack %+v", keys, cq)
	}
	q := query.Quantity{Param: "value-quantity", Value: 120.5, Text: "120.50", System: "http://unitsofmeasure.org", Code: "mm[Hg]", Unit: "mmHg"}
	if !slices.Contains(o.Quantities, q) {
		t.Errorf("quantities %+v lack %+v", o.Quantities, q)
	}
}
