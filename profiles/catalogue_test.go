package profiles

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

const cataloguePatient = "http://example.org/fhir/StructureDefinition/catalogue-patient"

// TestInvalidCatalogue rejects one invalid variant per rule, with the
// expected issue at the expected location.
func TestInvalidCatalogue(t *testing.T) {
	prof, err := os.ReadFile("testdata/catalogue-patient.json")
	if err != nil {
		t.Fatal(err)
	}
	v, err := New(Options{Resources: [][]byte{prof}})
	if err != nil {
		t.Fatal(err)
	}
	const nhs = `{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9912003888"}`
	const mrn = `{"system":"http://example.org/mrn","value":"1"}`
	tests := []struct {
		name     string
		resource string
		profile  string
		severity string
		code     string
		expr     string
	}{
		{"invalid JSON", `{"resourceType":`, "", "fatal", "structure", ""},
		{"unknown resource type", `{"resourceType":"Patientx"}`, "", "fatal", "structure", "Patientx"},
		{"unknown element", `{"resourceType":"Patient","foo":1}`, "", "error", "structure", "Patient"},
		{"missing required element", `{"resourceType":"Observation","code":{"text":"x"}}`, "", "error", "required", "Observation.status"},
		{"array where single", `{"resourceType":"Patient","gender":["male"]}`, "", "error", "structure", "Patient.gender"},
		{"single where array", `{"resourceType":"Patient","name":{"family":"x"}}`, "", "error", "structure", "Patient.name"},
		{"choice type not allowed", `{"resourceType":"Patient","deceasedString":"x"}`, "", "error", "structure", "Patient.deceased.ofType(string)"},
		{"two choice variants", `{"resourceType":"Patient","deceasedBoolean":true,"deceasedDateTime":"2020"}`, "", "error", "structure", "Patient.deceased"},
		{"primitive format", `{"resourceType":"Patient","birthDate":"1990-13-45"}`, "", "error", "value", "Patient.birthDate"},
		{"date not in the calendar", `{"resourceType":"Patient","birthDate":"2020-02-30"}`, "", "error", "value", "Patient.birthDate"},
		{"February 29 of a common year", `{"resourceType":"Patient","deceasedDateTime":"2023-02-29T10:00:00Z"}`, "", "error", "value", "Patient.deceased.ofType(dateTime)"},
		{"instant on day 31 of April", `{"resourceType":"Patient","meta":{"lastUpdated":"2020-04-31T10:00:00Z"}}`, "", "error", "value", "Patient.meta.lastUpdated"},
		{"primitive JSON type", `{"resourceType":"Patient","active":"yes"}`, "", "error", "structure", "Patient.active"},
		{"empty object", `{"resourceType":"Patient","name":[{}]}`, "", "error", "invalid", "Patient.name[0]"},
		{"required binding", `{"resourceType":"Patient","gender":"boy"}`, "", "error", "code-invalid", "Patient.gender"},
		{"extensible binding", `{"resourceType":"Patient","maritalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"ZZ"}]}}`, "", "warning", "code-invalid", "Patient.maritalStatus"},
		{"invariant", `{"resourceType":"Patient","contact":[{"gender":"male"}]}`, "", "error", "invariant", "Patient.contact[0]"},
		{"extension with a value and extensions", `{"resourceType":"Patient","extension":[{"url":"http://example.org/x","valueString":"a","extension":[{"url":"y","valueString":"b"}]}]}`, "", "error", "invariant", "Patient.extension[0]"},
		{"extension with neither a value nor extensions", `{"resourceType":"Patient","birthDate":"1961-02-14","_birthDate":{"extension":[{"url":"http://example.org/x"}]}}`, "", "error", "invariant", "Patient.birthDate.extension[0]"},
		{"resource invariant", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","contained":[{"resourceType":"Organization","id":"p","name":"y"}]}],"managingOrganization":{"reference":"#o"}}`, "", "error", "invariant", "Patient"},
		{"enableWhen exists with non-boolean answer", `{"resourceType":"Questionnaire","status":"active","item":[{"linkId":"1","type":"boolean"},{"linkId":"2","type":"string","enableWhen":[{"question":"1","operator":"exists","answerString":"x"}]}]}`, "", "error", "invariant", "Questionnaire.item[1].enableWhen[0]"},
		{"reference target type", `{"resourceType":"Patient","managingOrganization":{"reference":"Patient/1"}}`, "", "error", "structure", "Patient.managingOrganization"},
		{"local reference", `{"resourceType":"Patient","managingOrganization":{"reference":"#nope"}}`, "", "error", "structure", "Patient.managingOrganization.reference"},
		{"narrative script", `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><script>alert(1)</script></div>"}}`, "", "error", "value", "Patient.text.div"},
		{"narrative event attribute", `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p onclick=\"x()\">a</p></div>"}}`, "", "error", "value", "Patient.text.div"},
		{"narrative javascript URL", `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\" JavaScript:x()\">a</a></div>"}}`, "", "error", "value", "Patient.text.div"},
		{"narrative not xhtml div", `{"resourceType":"Patient","text":{"status":"generated","div":"<p>a</p>"}}`, "", "error", "value", "Patient.text.div"},
		{"narrative HTML entity", `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">a&nbsp;b</div>"}}`, "", "error", "value", "Patient.text.div"},
		{"narrative XML declaration", `{"resourceType":"Patient","text":{"status":"generated","div":"<?xml version=\"1.0\"?><div xmlns=\"http://www.w3.org/1999/xhtml\">a</div>"}}`, "", "error", "value", "Patient.text.div"},
		{"fixed value", `{"resourceType":"Patient","identifier":[` + mrn + `],"gender":"male"}`, cataloguePatient, "error", "value", "Patient.gender"},
		{"pattern", `{"resourceType":"Patient","identifier":[` + mrn + `],"maritalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"S"}]}}`, cataloguePatient, "error", "value", "Patient.maritalStatus"},
		{"closed slicing", `{"resourceType":"Patient","identifier":[` + mrn + `,{"system":"http://other","value":"2"}]}`, cataloguePatient, "error", "structure", "Patient.identifier[1]"},
		{"slice minimum", `{"resourceType":"Patient","active":true}`, cataloguePatient, "error", "required", "Patient.identifier"},
		{"slice maximum", `{"resourceType":"Patient","identifier":[` + mrn + `,` + mrn + `]}`, cataloguePatient, "error", "structure", "Patient.identifier"},
		{"profile for another type", `{"resourceType":"Observation","status":"final","code":{"text":"x"}}`, cataloguePatient, "error", "structure", "Observation"},
		{"unknown profile named", `{"resourceType":"Patient","active":true}`, "http://example.org/none", "error", "not-supported", "Patient"},
		{"unknown profile claimed", `{"resourceType":"Patient","meta":{"profile":["http://example.org/none"]},"active":true}`, "", "warning", "not-found", "Patient.meta.profile"},
		{"NHS number check digit", `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9912003889"}]}`, "", "error", "value", "Patient.identifier[0].value"},
		{"NHS number length", `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"991200388"}]}`, "", "error", "value", "Patient.identifier[0].value"},
		{"UK Core NHS number slice maximum", `{"resourceType":"Patient","identifier":[` + nhs + `,` + nhs + `]}`, ukPatient, "error", "structure", "Patient.identifier"},
		{"verification status code", `{"resourceType":"Patient","identifier":[{"extension":[` + verification(VerificationStatusSystem, "09") + `],"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9912003888"}]}`, ukPatient, "error", "code-invalid", "Patient.identifier[0].extension[0].value.ofType(CodeableConcept).coding[0].code"},
		{"retired verification status system", `{"resourceType":"Patient","identifier":[{"extension":[` + verification(RetiredVerificationStatusSystem, "01") + `],"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9912003888"}]}`, ukPatient, "warning", "code-invalid", "Patient.identifier[0].extension[0].value.ofType(CodeableConcept).coding[0].system"},
		{"ODS code", `{"resourceType":"Organization","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"rr8!"}]}`, "", "error", "value", "Organization.identifier[0].value"},
		{"GMC number", `{"resourceType":"Practitioner","identifier":[{"system":"https://fhir.hl7.org.uk/Id/gmc-number","value":"12"}]}`, "", "error", "value", "Practitioner.identifier[0].value"},
		{"GMP number", `{"resourceType":"Practitioner","identifier":[{"system":"https://fhir.hl7.org.uk/Id/gmp-number","value":"X1234567"}]}`, "", "error", "value", "Practitioner.identifier[0].value"},
		{"NMC PIN", `{"resourceType":"Practitioner","identifier":[{"system":"https://fhir.hl7.org.uk/Id/nmc-number","value":"1234567"}]}`, "", "error", "value", "Practitioner.identifier[0].value"},
		{"HCPC number", `{"resourceType":"Practitioner","identifier":[{"system":"https://fhir.hl7.org.uk/Id/hcpc-number","value":"12345"}]}`, "", "error", "value", "Practitioner.identifier[0].value"},
		{"resource id format", `{"resourceType":"Patient","id":"bad_id"}`, "", "error", "value", "Patient.id"},
		{"resource id length", `{"resourceType":"Patient","id":"` + strings.Repeat("a", 65) + `"}`, "", "error", "value", "Patient.id"},
		{"extension on resource id", `{"resourceType":"Patient","id":"p","_id":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"masked"}]}}`, "", "error", "business-rule", "Patient.id"},
		{"element with only an id", `{"resourceType":"Patient","_implicitRules":{"id":"i1"}}`, "", "error", "invalid", "Patient.implicitRules"},
		{"contained resource not referenced (dom-3)", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","name":"x"}]}`, "", "error", "invariant", "Patient"},
		{"extension context", `{"resourceType":"Organization","name":"x","extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthPlace","valueAddress":{"city":"Leeds"}}]}`, "", "error", "structure", "Organization"},
		{"extension url not absolute", `{"resourceType":"Patient","extension":[{"url":"something","valueString":"x"}]}`, "", "error", "invalid", "Patient.extension[0]"},
		{"sub-extension not defined", `{"resourceType":"Patient","extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-animal","extension":[{"url":"species","valueCodeableConcept":{"text":"dog"}},{"url":"species-x","valueString":"x"}]}]}`, "", "error", "invalid", "Patient.extension[0].extension[1]"},
		{"element ids unique", `{"resourceType":"Patient","name":[{"id":"a","family":"x"},{"id":"a","family":"y"}]}`, "", "error", "business-rule", "Patient.name[1]"},
		{"fullUrl not absolute", `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"Patient/1","resource":{"resourceType":"Patient","id":"1"}}]}`, "", "error", "invalid", "Bundle.entry[0]"},
		{"fullUrl disagrees with the id", `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"http://example.org/fhir/Patient/1","resource":{"resourceType":"Patient","id":"2"}}]}`, "", "error", "invalid", "Bundle.entry[0]"},
		{"search outcome entry", `{"resourceType":"Bundle","type":"searchset","entry":[{"fullUrl":"urn:uuid:0c8e3e5e-4f8a-4a57-9d51-3d4b0a1a2b3c","resource":{"resourceType":"Patient"},"search":{"mode":"outcome"}}]}`, "", "error", "invalid", "Bundle.entry[0].resource"},
		{"search match entry of a type not searched", searchset("http://example.org/fhir/Patient?name=x", "match"), "", "error", "invalid", "Bundle.entry[0].resource"},
		{"search match entry of a type not in _type", searchset("http://example.org/fhir?name=x&_type=Patient,Practitioner", "match"), "", "error", "invalid", "Bundle.entry[0].resource"},
		{"search result without an id", unidentified(searchset("http://example.org/fhir/Organization?name=x", "include")), "", "error", "invalid", "Bundle.entry[0].resource"},
		{"document reference not in the bundle", document(`"subject":{"reference":"Patient/9"}`, ""), "", "error", "invalid", "Bundle.entry[0].resource.subject"},
		{"document entry not referenced", document("", `,{"fullUrl":"http://example.org/fhir/Patient/2","resource":{"resourceType":"Patient","id":"2"}}`), "", "error", "invalid", "Bundle.entry[2]"},
		{"linkIds unique (que-2)", `{"resourceType":"Questionnaire","status":"active","item":[{"linkId":"1","type":"group","item":[{"linkId":"1","type":"string"}]}]}`, "", "error", "invariant", "Questionnaire"},
		{"enableWhen of a missing question", `{"resourceType":"Questionnaire","status":"active","item":[{"linkId":"1","type":"string","enableWhen":[{"question":"9","operator":"exists","answerBoolean":true}]}]}`, "", "error", "business-rule", "Questionnaire.item[0].enableWhen[0].question"},
		{"two enableWhen without enableBehavior (que-12)", `{"resourceType":"Questionnaire","status":"active","item":[{"linkId":"1","type":"boolean"},{"linkId":"2","type":"string","enableWhen":[{"question":"1","operator":"=","answerBoolean":true},{"question":"1","operator":"exists","answerBoolean":true}]}]}`, "", "error", "invariant", "Questionnaire.item[1]"},
		{"answer to an item not enabled", response(`{"linkId":"1","answer":[{"valueBoolean":false}]},{"linkId":"2","answer":[{"valueString":"x"}]}`), "", "error", "invalid", "QuestionnaireResponse.item[1]"},
		{"required item not answered", response(`{"linkId":"2","answer":[{"valueString":"x"}]}`), "", "error", "required", "QuestionnaireResponse"},
		{"item not in the questionnaire", response(`{"linkId":"1","answer":[{"valueBoolean":true}]},{"linkId":"9","answer":[{"valueString":"x"}]}`), "", "error", "structure", "QuestionnaireResponse.item[1]"},
		{"answer of the wrong type", response(`{"linkId":"1","answer":[{"valueString":"yes"}]}`), "", "error", "structure", "QuestionnaireResponse.item[0].answer[0]"},
		{"answer not among the options", response(`{"linkId":"1","answer":[{"valueBoolean":true}]},{"linkId":"3","answer":[{"valueCoding":{"code":"z"}}]}`), "", "error", "code-invalid", "QuestionnaireResponse.item[1].answer[0]"},
		{"UK Core extensible binding", `{"resourceType":"Patient","extension":[{"url":"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory","valueCodeableConcept":{"coding":[{"system":"https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland","code":"ZZ"}]}}]}`, ukPatient, "warning", "code-invalid", "Patient.extension[0].value.ofType(CodeableConcept)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var profiles []string
			if tt.profile != "" {
				profiles = append(profiles, tt.profile)
			}
			issues := v.Validate(context.Background(), []byte(tt.resource), profiles...)
			for _, is := range issues {
				if is.Severity == tt.severity && is.Code == tt.code && is.Expression == tt.expr {
					return
				}
			}
			t.Errorf("want %s %s at %q; got %s", tt.severity, tt.code, tt.expr, show(issues))
		})
	}
}

const ukPatient = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"

// document returns a document Bundle whose Composition has the given extra
// elements, holding Patient/1 and any further entries.
func document(composition, entries string) string {
	if composition != "" {
		composition = "," + composition
	}
	return `{"resourceType":"Bundle","type":"document","identifier":{"system":"http://example.org/docs","value":"1"},"timestamp":"2024-01-01T00:00:00Z","entry":[` +
		`{"fullUrl":"http://example.org/fhir/Composition/c","resource":{"resourceType":"Composition","id":"c","status":"final","type":{"text":"note"},"date":"2024-01-01","author":[{"reference":"Patient/1"}],"title":"Note"` + composition + `}},` +
		`{"fullUrl":"http://example.org/fhir/Patient/1","resource":{"resourceType":"Patient","id":"1"}}` + entries + `]}`
}

// searchset returns a searchset Bundle with the self link self, holding
// Organization/1 with the search mode mode.
func searchset(self, mode string) string {
	return `{"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":"` + self + `"}],"entry":[` +
		`{"fullUrl":"http://example.org/fhir/Organization/1","resource":{"resourceType":"Organization","id":"1","name":"x"},"search":{"mode":"` + mode + `"}}]}`
}

// unidentified drops the id of Organization/1 from a bundle, and its
// fullUrl, which would then disagree with it.
func unidentified(bundle string) string {
	return strings.NewReplacer(`"id":"1",`, "", `"fullUrl":"http://example.org/fhir/Organization/1",`, "").Replace(bundle)
}

// response returns a completed QuestionnaireResponse with the given items,
// answering a contained Questionnaire: 1 (boolean, required), 2 (string,
// enabled when 1 is true) and 3 (choice of example.org/c#a).
func response(items string) string {
	return `{"resourceType":"QuestionnaireResponse","status":"completed","questionnaire":"#q","contained":[{"resourceType":"Questionnaire","id":"q","status":"active","item":[` +
		`{"linkId":"1","type":"boolean","required":true},` +
		`{"linkId":"2","type":"string","enableWhen":[{"question":"1","operator":"=","answerBoolean":true}]},` +
		`{"linkId":"3","type":"choice","answerOption":[{"valueCoding":{"system":"http://example.org/c","code":"a"}}]}]}],"item":[` + items + `]}`
}

func verification(system, code string) string {
	b, _ := json.Marshal(map[string]any{"url": VerificationStatusURL, "valueCodeableConcept": map[string]any{"coding": []any{map[string]any{"system": system, "code": code}}}})
	return string(b)
}

func show(issues []Issue) string {
	var b strings.Builder
	for _, is := range issues {
		b.WriteString("\n  " + is.Severity + " " + is.Code + " " + is.Expression + ": " + is.Message)
	}
	return b.String()
}

// TestValidResources accepts valid resources with no error.
func TestValidResources(t *testing.T) {
	v := validator(t)
	gpPatient, err := os.ReadFile("testdata/ukcore-patient.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, resource, profile string
	}{
		{"UK Core patient with verified NHS number", `{"resourceType":"Patient","identifier":[{"extension":[` + verification(VerificationStatusSystem, "01") + `],"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9912003888"}],"gender":"female","birthDate":"1990-01-01"}`, ukPatient},
		{"enableWhen exists with boolean answer", `{"resourceType":"Questionnaire","status":"active","item":[{"linkId":"1","type":"boolean"},{"linkId":"2","type":"string","enableWhen":[{"question":"1","operator":"exists","answerBoolean":true}]}]}`, ""},
		{"contained resource referenced from a descendant", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"contained":[{"resourceType":"Patient","id":"p"}],"subject":{"reference":"#p"},"note":[{"text":"n"}]}`, ""},
		{"contained resource referring to its container (dom-3)", `{"resourceType":"Patient","contained":[{"resourceType":"Provenance","id":"p","target":[{"reference":"#"}],"recorded":"2020-01-01T00:00:00Z","agent":[{"who":{"display":"x"}}]}]}`, ""},
		{"contained resource referenced from a canonical (dom-3)", `{"resourceType":"Questionnaire","status":"active","contained":[{"resourceType":"ValueSet","id":"vs","status":"active"}],"item":[{"linkId":"1","type":"choice","answerValueSet":"#vs"}]}`, ""},
		{"questionnaire response consistent with its questionnaire", response(`{"linkId":"1","answer":[{"valueBoolean":true}]},{"linkId":"2","answer":[{"valueString":"x"}]},{"linkId":"3","answer":[{"valueCoding":{"system":"http://example.org/c","code":"a"}}]}`), ""},
		{"document holding what its Composition references", document(`"subject":{"reference":"Patient/1"}`, ""), ""},
		{"search match entry of the type searched", searchset("http://example.org/fhir/Organization?name=x", "match"), ""},
		{"search match entry of the type searched by POST", searchset("http://example.org/fhir/Organization/_search?name=x", "match"), ""},
		{"search match entry of a type in _type", searchset("http://example.org/fhir?_type=Patient%2COrganization", "match"), ""},
		{"search match entry in a compartment", searchset("http://example.org/fhir/Patient/1/Organization", "match"), ""},
		{"search include entry of another type", searchset("http://example.org/fhir/Patient?organization=1&_include=Patient:organization", "include"), ""},
		{"search by an operation", searchset("http://example.org/fhir/Patient/1/$everything", "match"), ""},
		{"operation result without an id", unidentified(searchset("http://example.org/fhir/Patient/1/$everything", "match")), ""},
		{"search outcome without an id", `{"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":"http://example.org/fhir/Patient?name=x"}],"entry":[{"resource":{"resourceType":"OperationOutcome","issue":[{"severity":"warning","code":"processing","diagnostics":"x"}]},"search":{"mode":"outcome"}}]}`, ""},
		{"primitive extension only", `{"resourceType":"Patient","_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]}}`, ""},
		{"ODS code", `{"resourceType":"Organization","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"RR8"}],"name":"x"}`, ""},
		{"UK Core Patient as a GP system sends one, claiming the profile (the validation benchmark's)", string(gpPatient), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var profiles []string
			if tt.profile != "" {
				profiles = append(profiles, tt.profile)
			}
			if errs := errorsOf(v.Validate(context.Background(), []byte(tt.resource), profiles...)); len(errs) > 0 {
				t.Errorf("unexpected errors:%s", show(errs))
			}
		})
	}
}

func TestValidNHSNumber(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  bool
	}{
		{"valid", "9912003888", true},
		{"valid check digit 0", "9434765870", true},
		{"wrong check digit", "9912003889", false},
		{"check digit 10", "1000000010", false},
		{"short", "991200388", false},
		{"eleven digits", "94347659190", false},
		{"letters", "99120038a8", false},
		{"spaces", "943 476 5919", false},
		{"empty", "", false},
		{"check digit 11 is 0", "9990000050", true},
		{"zeros", "0000000000", false},
		{"nines", "9999999999", false},
		{"ones", "1111111111", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidNHSNumber(tt.value); got != tt.want {
				t.Errorf("ValidNHSNumber(%q) = %v", tt.value, got)
			}
		})
	}
}

// A search result with a RESTful fullUrl and no id is one fault, reported
// once: at the resource, not also at its fullUrl.
func TestSearchResultWithoutIDReportedOnce(t *testing.T) {
	v, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	bundle := strings.Replace(searchset("http://example.org/fhir/Organization?name=x", "match"), `"id":"1",`, "", 1)
	var errs []Issue
	for _, is := range v.Validate(context.Background(), []byte(bundle)) {
		if is.Severity == "error" {
			errs = append(errs, is)
		}
	}
	if len(errs) != 1 || errs[0].Expression != "Bundle.entry[0].resource" {
		t.Errorf("errors %s, want one at Bundle.entry[0].resource", show(errs))
	}
}
