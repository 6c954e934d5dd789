package search

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"carefhir/store/query"
)

const clinical = "http://terminology.hl7.org/CodeSystem/condition-clinical"

// stubTerms is a terminology of one ValueSet, one code system hierarchy
// (condition-clinical's) and a ValueSet too large to search.
type stubTerms struct{}

var stubParents = map[string]string{"recurrence": "active", "relapse": "active", "remission": "inactive", "resolved": "inactive"}

func (stubTerms) Expand(url string) ([]Coding, error) {
	switch strings.TrimSuffix(url, "|4.0.1") {
	case "http://hl7.org/fhir/ValueSet/condition-clinical":
		return []Coding{{clinical, "active"}, {clinical, "recurrence"}, {clinical, "relapse"}}, nil
	case "http://example.org/ValueSet/empty":
		return nil, nil
	case "http://example.org/ValueSet/huge":
		cs := make([]Coding, MaxExpansion+1)
		for i := range cs {
			cs[i] = Coding{"http://example.org/cs", fmt.Sprint(i)}
		}
		return cs, nil
	case "http://example.org/ValueSet/snomed":
		return nil, errors.New("code system http://snomed.info/sct is not bundled")
	}
	return nil, fmt.Errorf("%w: ValueSet %s", ErrUnknown, url)
}

func (stubTerms) Below(system, code string) ([]string, error) {
	if system != clinical {
		return nil, fmt.Errorf("%w: CodeSystem %s", ErrUnknown, system)
	}
	out := []string{code}
	for _, c := range slices.Sorted(maps.Keys(stubParents)) {
		if stubParents[c] == code {
			out = append(out, c)
		}
	}
	return out, nil
}

func (stubTerms) Above(system, code string) ([]string, error) {
	if system != clinical {
		return nil, fmt.Errorf("%w: CodeSystem %s", ErrUnknown, system)
	}
	out := []string{code}
	if p, ok := stubParents[code]; ok {
		out = append(out, p)
	}
	return out, nil
}

// tokens returns the matches of codes of condition-clinical: with the
// system, and without for elements of type code.
func tokens(codes ...string) []query.TokenMatch {
	var out []query.TokenMatch
	for _, c := range codes {
		out = append(out, query.TokenMatch{System: clinical, Code: c}, query.TokenMatch{Code: c})
	}
	return out
}

func TestParseTerminology(t *testing.T) {
	r := testRegistry(t).WithTerminology(stubTerms{})
	tests := []struct {
		name, query string
		want        []query.Clause
	}{
		{"in", "clinical-status:in=http://hl7.org/fhir/ValueSet/condition-clinical", []query.Clause{
			{Param: "clinical-status", Tokens: tokens("active", "recurrence", "relapse")}}},
		{"in with a version", "clinical-status:in=http://hl7.org/fhir/ValueSet/condition-clinical|4.0.1", []query.Clause{
			{Param: "clinical-status", Tokens: tokens("active", "recurrence", "relapse")}}},
		{"not-in", "clinical-status:not-in=http://hl7.org/fhir/ValueSet/condition-clinical", []query.Clause{
			{Param: "clinical-status", Not: true, Tokens: tokens("active", "recurrence", "relapse")}}},
		{"in an empty ValueSet", "clinical-status:in=http://example.org/ValueSet/empty", []query.Clause{
			{Param: "clinical-status"}}},
		{"below", "clinical-status:below=" + clinical + "|inactive", []query.Clause{
			{Param: "clinical-status", Tokens: tokens("inactive", "remission", "resolved")}}},
		{"above", "clinical-status:above=" + clinical + "|relapse", []query.Clause{
			{Param: "clinical-status", Tokens: tokens("relapse", "active")}}},
		{"below or below, each code once", "clinical-status:below=" + clinical + "|active," + clinical + "|relapse", []query.Clause{
			{Param: "clinical-status", Tokens: tokens("active", "recurrence", "relapse")}}},
		{"in through a chain", "Observation?subject:Patient.gender:in=http://hl7.org/fhir/ValueSet/condition-clinical", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, query := "Condition", tt.query
			if before, after, ok := strings.Cut(query, "?"); ok {
				typ, query = before, after
			}
			plan, err := parse(t, r, typ, query, true)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != nil && !reflect.DeepEqual(plan.Query.Where, tt.want) {
				t.Errorf("%s\n got %+v\nwant %+v", tt.query, plan.Query.Where, tt.want)
			}
		})
	}
}

func TestParseTerminologyErrors(t *testing.T) {
	r := testRegistry(t).WithTerminology(stubTerms{})
	tests := []struct {
		name, query, code string
		mention           string // a part of the diagnostics
	}{
		{"unknown ValueSet", "code:in=http://example.org/ValueSet/nothing", "not-found", "http://example.org/ValueSet/nothing"},
		{"unknown ValueSet in not-in", "code:not-in=http://example.org/ValueSet/nothing", "not-found", "http://example.org/ValueSet/nothing"},
		{"ValueSet that cannot be expanded", "code:in=http://example.org/ValueSet/snomed", "not-supported", "snomed"},
		{"ValueSet too large", "code:in=http://example.org/ValueSet/huge", "too-costly", "10000"},
		{"below without a system", "clinical-status:below=active", "invalid", "system|code"},
		{"above of a system only", "clinical-status:above=" + clinical + "|", "invalid", "system|code"},
		{"below in an unknown system", "code:below=http://snomed.info/sct|73211009", "not-found", "http://snomed.info/sct"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, strict := range []bool{false, true} {
				_, err := parse(t, r, "Condition", tt.query, strict)
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("%s (strict %v): err = %v, want an *Error", tt.query, strict, err)
				}
				name, _, _ := strings.Cut(tt.query, "=")
				if e.Status != 400 || e.Code != tt.code || e.Expression != name || !strings.Contains(e.Diagnostics, tt.mention) {
					t.Errorf("%s (strict %v): got %d %s at %q (%s), want 400 %s at %q mentioning %q",
						tt.query, strict, e.Status, e.Code, e.Expression, e.Diagnostics, tt.code, name, tt.mention)
				}
			}
		})
	}
}

func TestIndexCanonicalQuantity(t *testing.T) {
	ix := testIndexer(t)
	got, err := ix.IndexJSON("Observation", []byte(`{"resourceType":"Observation","status":"final",
	  "code":{"coding":[{"system":"http://loinc.org","code":"2345-7"}]},
	  "valueQuantity":{"value":6.0,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"},
	  "component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},
	                "valueQuantity":{"value":16,"system":"http://unitsofmeasure.org","code":"kPa"}},
	               {"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},
	                "valueQuantity":{"value":90,"system":"http://unitsofmeasure.org","code":"mmHg"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []query.Quantity{
		{Param: "value-quantity", Value: 6, Text: "6.0", System: "http://unitsofmeasure.org", Code: "mg/dL", Unit: "mg/dL"},
		{Param: "value-quantity:canonical", Value: 60, Text: "60", System: "http://unitsofmeasure.org", Code: "g.m-3"},
		{Param: "component-value-quantity:canonical", Value: 16000000, Text: "1.6e+07", System: "http://unitsofmeasure.org", Code: "g.m-1.s-2"},
	} {
		if !slices.Contains(got.Quantities, q) {
			t.Errorf("quantities %+v lack %+v", got.Quantities, q)
		}
	}
	if slices.ContainsFunc(got.Quantities, func(q query.Quantity) bool { return q.Code == "mmHg" && strings.HasSuffix(q.Param, ":canonical") }) {
		t.Error("mmHg, which is not UCUM, has a canonical form")
	}
	want := query.Composite{Param: "component-code-value-quantity:canonical", Parts: []string{"http://loinc.org|8480-6"},
		Quantity: &query.Quantity{Value: 16000000, Text: "1.6e+07", System: "http://unitsofmeasure.org", Code: "g.m-1.s-2"}}
	if !slices.ContainsFunc(got.Composites, func(x query.Composite) bool { return reflect.DeepEqual(x, want) }) {
		t.Errorf("composites lack the canonical %+v", want)
	}
	for _, c := range got.Composites {
		if c.Param == "component-code-value-quantity" && c.Quantity != nil && c.Quantity.Code == "g.m-1.s-2" {
			t.Errorf("a canonical quantity is indexed under the composite itself: %+v", c)
		}
	}
}
