package fhirjson_test

import (
	"strings"
	"testing"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
)

func TestRoundTripCases(t *testing.T) {
	tests := []struct{ name, json string }{
		{"decimal precision", `{"resourceType":"Observation","status":"final","code":{"text":"w"},"valueQuantity":{"value":72.50}}`},
		{"decimal exponent", `{"resourceType":"Observation","status":"final","code":{"text":"w"},"valueQuantity":{"value":1e3}}`},
		{"negative zero decimal", `{"resourceType":"Observation","status":"final","code":{"text":"w"},"valueQuantity":{"value":-0.0}}`},
		{"primitive extension only", `{"resourceType":"Patient","_birthDate":{"extension":[{"url":"http://x","valueCode":"unknown"}]}}`},
		{"primitive value and extension", `{"resourceType":"Patient","birthDate":"1970-01-01","_birthDate":{"id":"a","extension":[{"url":"http://x","valueDateTime":"1970-01-01T10:00:00Z"}]}}`},
		{"primitive array with nulls", `{"resourceType":"Patient","name":[{"given":["a",null,"c"],"_given":[null,{"extension":[{"url":"http://x","valueString":"b"}]},{"id":"c"}]}]}`},
		{"primitive array extensions only", `{"resourceType":"Patient","name":[{"_given":[{"id":"a"},{"id":"b"}]}]}`},
		{"resource id extension", `{"resourceType":"Patient","id":"p","_id":{"id":"x"}}`},
		{"contained and choice", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","name":"Org"}],"deceasedDateTime":"2020-02","managingOrganization":{"reference":"#o"}}`},
		{"nested bundle", `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:3f2c6a0e-1b3a-4c5d-8e9f-0a1b2c3d4e5f","resource":{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","active":false}}]}}]}`},
		{"parameters with resource", `{"resourceType":"Parameters","parameter":[{"name":"r","resource":{"resourceType":"Patient","id":"x"}},{"name":"v","valueInteger":-5},{"name":"p","part":[{"name":"q","valueBoolean":true}]}]}`},
		{"modifier extension", `{"resourceType":"Patient","modifierExtension":[{"url":"http://x","valueBoolean":true}],"extension":[{"url":"http://y","extension":[{"url":"a","valueString":"b"}]}]}`},
		{"escapes and unicode", `{"resourceType":"Patient","name":[{"text":"Zoë \"Q\" \\ \u0009 \n 日本 😀 \u00e9"}]}`},
		{"xhtml div", `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>x &amp; y</p></div>"}}`},
		{"backbone resourceType element", `{"resourceType":"ExampleScenario","status":"draft","instance":[{"resourceId":"a","resourceType":"Patient"}]}`},
		{"bundle response outcome", `{"resourceType":"Bundle","type":"batch-response","entry":[{"response":{"status":"400","outcome":{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid"}]}}}]}`},
		{"whitespace", " \n{ \"resourceType\" : \"Patient\" ,\t\"active\" : true }\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := fhirjson.Unmarshal([]byte(tc.json))
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			out, err := fhirjson.Marshal(res)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if !jsonEqual(t, []byte(tc.json), out) {
				t.Errorf("round trip:\n got %s\nwant %s", out, tc.json)
			}
		})
	}
}

func TestMarshalOrder(t *testing.T) {
	p := &fhir.Patient{
		Gender:    fhir.NewCode("female"),
		BirthDate: fhir.NewDate("1980-02-03"),
		Active:    fhir.NewBoolean(true),
		Meta:      &fhir.Meta{VersionId: fhir.NewId("2")},
	}
	p.SetID("p1")
	out, err := fhirjson.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"resourceType":"Patient","id":"p1","meta":{"versionId":"2"},"active":true,"gender":"female","birthDate":"1980-02-03"}`
	if string(out) != want {
		t.Errorf("Marshal = %s\nwant %s", out, want)
	}
}

func TestMarshalOmitsEmpty(t *testing.T) {
	p := &fhir.Patient{
		Meta:    &fhir.Meta{},
		Name:    []*fhir.HumanName{{}, nil, {Family: fhir.NewString("Smith"), Given: []*fhir.String{nil, {}}}},
		Contact: []*fhir.PatientContact{{Name: &fhir.HumanName{}}},
		Gender:  &fhir.Code{},
	}
	out, err := fhirjson.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"resourceType":"Patient","name":[{"family":"Smith"}]}`
	if string(out) != want {
		t.Errorf("Marshal = %s\nwant %s", out, want)
	}
}

func TestMarshalRejects(t *testing.T) {
	tests := []struct {
		name    string
		res     fhir.Resource
		message string
	}{
		{"nil resource", nil, "nil resource"},
		{"typed nil resource", (*fhir.Patient)(nil), "nil resource"},
		{"invalid decimal", &fhir.Observation{ValueQuantity: &fhir.Quantity{Value: fhir.NewDecimal("1,5")}}, `Observation.valueQuantity.value: invalid decimal "1,5"`},
		{"invalid date", &fhir.Patient{BirthDate: fhir.NewDate("yesterday")}, `Patient.birthDate: invalid date "yesterday"`},
		{"empty code", &fhir.Patient{Gender: fhir.NewCode("")}, "Patient.gender: invalid code"},
		{"positiveInt zero", &fhir.Patient{Telecom: []*fhir.ContactPoint{{Rank: fhir.NewPositiveInt(0)}}}, "Patient.telecom[0].rank: positiveInt 0 out of range"},
		{"integer out of range", &fhir.Patient{MultipleBirthInteger: fhir.NewInteger(1 << 40)}, "out of range"},
		{"two choice variants", &fhir.Patient{DeceasedBoolean: fhir.NewBoolean(true), DeceasedDateTime: fhir.NewDateTime("2020")}, `more than one value for choice element "deceased[x]"`},
		{"invalid UTF-8", &fhir.Patient{Name: []*fhir.HumanName{{Family: fhir.NewString("\xff")}}}, "Patient.name[0].family: string is not valid UTF-8"},
		{"xhtml extension", &fhir.Patient{Text: &fhir.Narrative{Div: &fhir.Xhtml{Id: new(string)}}}, "cannot have an id or extensions"},
		{"invalid contained", &fhir.Patient{Contained: []fhir.Resource{&fhir.Organization{Id: fhir.NewId("a b")}}}, `Patient.contained[0].id: invalid id "a b"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := fhirjson.Marshal(tc.res)
			if err == nil || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("Marshal = %s, %v; want an error containing %q", out, err, tc.message)
			}
		})
	}
}
