package search

import (
	"math"
	"reflect"
	"slices"
	"testing"

	"carefhir/store/query"
)

const patientJSON = `{
  "resourceType": "Patient", "id": "p1",
  "meta": {"tag": [{"system": "http://example.org/tags", "code": "vip"}],
           "profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"]},
  "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009"},
                 {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
                  "system": "urn:oid:1.2.3", "value": "446053"}],
  "active": true,
  "name": [{"use": "official", "family": "Ó Briain", "given": ["Zoë", "Mary-Ann"], "prefix": ["Ms"]}],
  "telecom": [{"system": "phone", "value": "0113 496 0000"}, {"system": "email", "value": "zoe@example.org"}],
  "gender": "female",
  "birthDate": "1970-03-01",
  "address": [{"line": ["1 Rue de l'Église"], "city": "Leeds", "postalCode": "LS1 4AP"}],
  "generalPractitioner": [{"reference": "Organization/A81001"},
                          {"reference": "https://fhir.example.nhs.uk/fhir/Practitioner/G123"},
                          {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "Y00001"}}],
  "managingOrganization": {"reference": "#contained"}
}`

const observationJSON = `{
  "resourceType": "Observation", "id": "o1", "status": "final",
  "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6", "display": "Systolic blood pressure"}], "text": "BP sys"},
  "subject": {"reference": "Patient/p1"},
  "effectivePeriod": {"start": "2025-01-10T09:00:00+01:00"},
  "valueQuantity": {"value": 120.50, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
  "component": [{"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                 "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "1234"}]}}]
}`

func testIndexer(t *testing.T) *Indexer {
	t.Helper()
	ix := NewIndexer(testRegistry(t), compilePath, "https://fhir.example.nhs.uk/fhir")
	return ix
}

// hasAll reports each value of want that got lacks.
func hasAll[T comparable](t *testing.T, kind string, got, want []T) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("%s lack %+v", kind, w)
		}
	}
}

func TestIndexPatient(t *testing.T) {
	ix := testIndexer(t)
	got, err := ix.IndexJSON("Patient", []byte(patientJSON))
	if err != nil {
		t.Fatal(err)
	}
	wantTokens := []query.Token{
		{Param: "identifier", System: "https://fhir.nhs.uk/Id/nhs-number", Code: "9000000009"},
		{Param: "identifier", System: "urn:oid:1.2.3", Code: "446053"},
		{Param: "identifier:of-type", System: "http://terminology.hl7.org/CodeSystem/v2-0203|MR", Code: "446053"},
		{Param: "active", Code: "true"},
		{Param: "gender", Code: "female"},
		{Param: "email", System: "email", Code: "zoe@example.org"},
		{Param: "phone", System: "phone", Code: "0113 496 0000"},
		{Param: "_tag", System: "http://example.org/tags", Code: "vip"},
		{Param: "general-practitioner:identifier", System: "https://fhir.nhs.uk/Id/ods-organization-code", Code: "Y00001"},
	}
	hasAll(t, "tokens", got.Tokens, wantTokens)
	wantStrings := []query.String{
		{Param: "family", Value: "o briain", Exact: "Ó Briain"},
		{Param: "given", Value: "zoe", Exact: "Zoë"},
		{Param: "name", Value: "mary-ann", Exact: "Mary-Ann"},
		{Param: "name", Value: "ms", Exact: "Ms"},
		{Param: "address", Value: "1 rue de l'eglise", Exact: "1 Rue de l'Église"},
		{Param: "address-city", Value: "leeds", Exact: "Leeds"},
		{Param: "address-postalcode", Value: "ls1 4ap", Exact: "LS1 4AP"},
	}
	hasAll(t, "strings", got.Strings, wantStrings)
	wantRefs := []query.Reference{
		{Param: "general-practitioner", Type: "Organization", ID: "A81001"},
		{Param: "general-practitioner", Type: "Practitioner", ID: "G123"},
	}
	if refs := filter(got.References, func(r query.Reference) bool { return r.Param == "general-practitioner" }); !reflect.DeepEqual(refs, wantRefs) {
		t.Errorf("general-practitioner = %+v, want %+v", refs, wantRefs)
	}
	if slices.ContainsFunc(got.References, func(r query.Reference) bool { return r.Param == "organization" }) {
		t.Error("a contained reference is indexed")
	}
	birth := query.Date{Param: "birthdate", Low: utc("1970-03-01T00:00:00Z"), High: utc("1970-03-01T23:59:59.999Z")}
	if !slices.Contains(got.Dates, birth) {
		t.Errorf("dates %+v lack %+v", got.Dates, birth)
	}
	if !slices.Contains(got.URIs, query.URI{Param: "_profile", Value: "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"}) {
		t.Errorf("uris %+v lack the profile", got.URIs)
	}
}

func TestIndexObservation(t *testing.T) {
	ix := testIndexer(t)
	got, err := ix.IndexJSON("Observation", []byte(observationJSON))
	if err != nil {
		t.Fatal(err)
	}
	q := query.Quantity{Param: "value-quantity", Value: 120.5, Text: "120.50", System: "http://unitsofmeasure.org", Code: "mm[Hg]", Unit: "mmHg"}
	if !slices.Contains(got.Quantities, q) {
		t.Errorf("quantities %+v lack %+v", got.Quantities, q)
	}
	d := query.Date{Param: "date", Low: utc("2025-01-10T08:00:00Z"), High: query.MaxTime}
	if !slices.Contains(got.Dates, d) {
		t.Errorf("dates %+v lack the open period %+v", got.Dates, d)
	}
	text := query.String{Param: "code:text", Value: "systolic blood pressure", Exact: "Systolic blood pressure"}
	if !slices.Contains(got.Strings, text) {
		t.Errorf("strings %+v lack %+v", got.Strings, text)
	}
	c := query.Composite{Param: "component-code-value-concept", Parts: []string{"http://loinc.org|8462-4", "http://snomed.info/sct|1234"}}
	c2 := query.Composite{Param: "component-code-value-concept", Parts: []string{"|8462-4", "|1234"}}
	if !slices.ContainsFunc(got.Composites, func(x query.Composite) bool { return reflect.DeepEqual(x, c) }) ||
		!slices.ContainsFunc(got.Composites, func(x query.Composite) bool { return reflect.DeepEqual(x, c2) }) {
		t.Errorf("composites %+v lack %+v and %+v", got.Composites, c, c2)
	}
	if !slices.Contains(got.References, query.Reference{Param: "subject", Type: "Patient", ID: "p1"}) ||
		!slices.Contains(got.References, query.Reference{Param: "patient", Type: "Patient", ID: "p1"}) {
		t.Errorf("references %+v lack subject and patient", got.References)
	}
}

func TestIndexBadJSON(t *testing.T) {
	ix := testIndexer(t)
	if _, err := ix.IndexJSON("Patient", []byte(`{"resourceType":`)); err == nil {
		t.Error("truncated JSON indexed without error")
	}
}

func filter[T any](s []T, keep func(T) bool) []T {
	var out []T
	for _, v := range s {
		if keep(v) {
			out = append(out, v)
		}
	}
	return out
}

// A Range is indexed as the interval of its ends, an absent end open, in
// its unit and in canonical UCUM units; one whose ends are in different
// units, or whose low is above its high, has no interval and is not.
func TestIndexRange(t *testing.T) {
	ix := testIndexer(t)
	end := func(v, code string) string {
		return `{"value":` + v + `,"system":"http://unitsofmeasure.org","code":"` + code + `"}`
	}
	for _, tt := range []struct {
		name, onset string
		want        []query.Quantity
	}{
		{"both ends", `{"low":` + end("40", "a") + `,"high":` + end("50", "a") + `}`, []query.Quantity{
			{Param: "onset-age", Value: 40, High: 50, Range: true, Text: "40", System: "http://unitsofmeasure.org", Code: "a"},
			{Param: "onset-age:canonical", Value: 40 * 31557600, High: 50 * 31557600, Range: true, Text: "1.262304e+09", System: "http://unitsofmeasure.org", Code: "s"},
		}},
		{"no high", `{"low":` + end("6", "mo") + `}`, []query.Quantity{
			{Param: "onset-age", Value: 6, High: math.MaxFloat64, Range: true, Text: "6", System: "http://unitsofmeasure.org", Code: "mo"},
			{Param: "onset-age:canonical", Value: 6 * 2629800, High: math.MaxFloat64, Range: true, Text: "1.57788e+07", System: "http://unitsofmeasure.org", Code: "s"},
		}},
		{"no low", `{"high":{"value":2,"code":"wk"}}`, []query.Quantity{
			{Param: "onset-age", Value: -math.MaxFloat64, High: 2, Range: true, Code: "wk"},
		}},
		{"units differ", `{"low":` + end("40", "a") + `,"high":` + end("600", "mo") + `}`, nil},
		{"low above high", `{"low":` + end("50", "a") + `,"high":` + end("40", "a") + `}`, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ix.IndexJSON("Condition", []byte(`{"resourceType":"Condition","onsetRange":`+tt.onset+`}`))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Quantities, tt.want) {
				t.Errorf("quantities %+v, want %+v", got.Quantities, tt.want)
			}
		})
	}
}
