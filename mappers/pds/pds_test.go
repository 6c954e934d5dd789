package pds

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/mappers"
	"carefhir/mappers/mapperstest"
	"carefhir/profiles"
)

// refusals are the payloads under testdata that are not patients, and
// the reason each is refused with; every other payload must import.
var refusals = []struct{ pattern, reason string }{
	{"karate-stubs/errorResponses/*.json", "is a PDS error, not a patient"},
	{"karate-stubs/postPatientResponses/*_MATCH*_FOUND.json", "is a PDS error, not a patient"},
	{"karate-stubs/searchResponses/TOO_MANY_MATCHES.json", "is a PDS error, not a patient"},
	{"spec-examples/requests/PatientPatch/*.json", "JSON Patch operations"},
	// Requests to allocate or match an NHS number do not have one yet.
	{"spec-examples/requests/PatientCreate/*.json", "has no NHS number"},
	{"spec-examples/Coverage.json", "a Coverage is not a PDS Patient"},
	{"spec-examples/CoverageSearch.json", "holds no Patient"},
	{"karate-stubs/coverageResponses/*.json", "holds no Patient"},
	{"karate-stubs/relatedPersonResponses/*.json", "holds no Patient"},
	{"sandbox-mocks/RelatedPersonBundle.json", "holds no Patient"},
	{"sandbox-mocks/Referenced_RelatedPersonBundle.json", "holds no Patient"},
	// An upstream defect: "patient": {} in a RelatedPerson.
	{"sandbox-mocks/Personal_Details_RelatedPersonBundle.json", "empty object is not allowed"},
	// The compound-name example's NHS number fails the Modulus 11 check.
	{"*/PatientCompoundName.json", `"9000000015" is not a valid NHS number`},
	{"karate-stubs/searchResponses/PatientCompoundName.json", `"9000000015" is not a valid NHS number`},
	{"karate-stubs/searchResponses/john_paul_smith_searchset.json", `"9000000015" is not a valid NHS number`},
}

func refusal(name string) string {
	for _, r := range refusals {
		if ok, _ := filepath.Match(r.pattern, name); ok {
			return r.reason
		}
	}
	return ""
}

// TestFixtures imports every PDS payload under testdata: each either gives
// writes that validate against UK Core, one Patient per Patient in the
// payload, or is refused with the reason expected.
func TestFixtures(t *testing.T) {
	var files []string
	err := filepath.WalkDir("testdata", func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".json") {
			files = append(files, p)
		}
		return err
	})
	if err != nil || len(files) != 105 {
		t.Fatalf("%d payloads under testdata (%v), want 105", len(files), err)
	}
	for _, f := range files {
		name := filepath.ToSlash(strings.TrimPrefix(f, "testdata"+string(filepath.Separator)))
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			r := Import(data)
			if reason := refusal(name); reason != "" {
				if r.Bundle != nil || !r.Failed() || !strings.Contains(errorText(r), reason) {
					t.Errorf("got %v, want a refusal saying %q", r.Issues, reason)
				}
				return
			}
			if r.Bundle == nil {
				t.Fatalf("refused: %v", r.Issues)
			}
			for _, p := range mapperstest.Problems(t, r.Bundle) {
				t.Error(p)
			}
			if got, want := count(r.Bundle, "Patient"), bytes.Count(data, []byte(`"resourceType": "Patient"`))+bytes.Count(data, []byte(`"resourceType":"Patient"`)); got != want {
				t.Errorf("%d Patients written, want %d", got, want)
			}
		})
	}
}

func errorText(r mappers.Result) string {
	var s []string
	for _, is := range r.Issues {
		if is.Severity == mappers.Error {
			s = append(s, is.Message)
		}
	}
	return strings.Join(s, "; ")
}

func count(b *fhir.Bundle, typ string) int {
	n := 0
	for _, e := range b.Entry {
		if e.Resource.ResourceType() == typ {
			n++
		}
	}
	return n
}

func importFile(t *testing.T, name string) mappers.Result {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	r := Import(data)
	if r.Bundle == nil {
		t.Fatalf("refused: %v", r.Issues)
	}
	return r
}

func patient(t *testing.T, b *fhir.Bundle) (*fhir.Patient, *fhir.BundleEntry) {
	t.Helper()
	for _, e := range b.Entry {
		if p, ok := e.Resource.(*fhir.Patient); ok {
			return p, e
		}
	}
	t.Fatal("no Patient written")
	return nil, nil
}

func TestPatientMapping(t *testing.T) {
	r := importFile(t, "sandbox-mocks/Patient.json")
	p, e := patient(t, r.Bundle)
	if got := e.Request.Method.Get() + " " + e.Request.Url.Get(); got != "PUT Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009" {
		t.Errorf("request = %s", got)
	}
	if p.Id != nil || p.Meta.VersionId != nil {
		t.Errorf("PDS's id and version are kept")
	}
	c := p.Identifier[0].Extension[0].ValueCodeableConcept.Coding[0]
	if c.System.Get() != profiles.VerificationStatusSystem || c.Code.Get() != "01" || c.Version != nil {
		t.Errorf("verification status = %s|%s version %v, want the England system, 01, no version", c.System.Get(), c.Code.Get(), c.Version)
	}
	gp := p.GeneralPractitioner[0]
	org := r.Bundle.Entry[0]
	if gp.Reference.Get() != org.FullUrl.Get() || gp.Identifier.Value.Get() != "Y12345" {
		t.Errorf("generalPractitioner = %s (%s), want the Organization entry %s", gp.Reference.Get(), gp.Identifier.Value.Get(), org.FullUrl.Get())
	}
	if got := org.Request.IfNoneExist.Get(); org.Request.Method.Get() != "POST" || got != "identifier=https://fhir.nhs.uk/Id/ods-organization-code|Y12345" {
		t.Errorf("practice request = %s If-None-Exist %s", org.Request.Method.Get(), got)
	}
	if p.ManagingOrganization.Reference.Get() != org.FullUrl.Get() {
		t.Errorf("managingOrganization is not the same Organization entry")
	}
	// The textphone's kind moves to telecom.system.
	tp := p.Telecom[2]
	if tp.System.Get() != "other" || len(tp.Extension) != 0 || len(tp.System.Extension) != 1 || tp.System.Extension[0].ValueCodeableConcept.Coding[0].Code.Get() != "textphone" {
		t.Errorf("other contact system not moved to telecom.system: %+v", tp)
	}
	var notes []string
	for _, is := range r.Issues {
		if is.Severity != mappers.Information {
			t.Errorf("unexpected issue %s", is)
		}
		notes = append(notes, is.Path)
	}
	if !strings.Contains(strings.Join(notes, " "), "Patient.identifier[0].extension[0].valueCodeableConcept.coding[0].system") {
		t.Errorf("the replaced code system is not reported: %v", notes)
	}
}

// TestRetiredExtensionURL: PDS sends the contact rank under its retired
// URL (in the RelatedPerson payloads here; a Patient's contact takes the
// same extension).
func TestRetiredExtensionURL(t *testing.T) {
	in := `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}],
	"contact":[{"name":{"family":"Smith"},"extension":[{"url":"https://fhir.nhs.uk/R4/StructureDefinition/Extension-UKCore-ContactRank","valuePositiveInt":1}]}]}`
	r := Import([]byte(in))
	if r.Bundle == nil {
		t.Fatalf("refused: %v", r.Issues)
	}
	p, _ := patient(t, r.Bundle)
	if got := p.Contact[0].Extension[0].Url; got != "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-ContactRank" {
		t.Errorf("extension URL = %s", got)
	}
	if len(r.Issues) != 1 || r.Issues[0].Path != "Patient.contact[0].extension[0].url" {
		t.Errorf("issues = %v, want the replacement reported at its path", r.Issues)
	}
	for _, pr := range mapperstest.Problems(t, r.Bundle) {
		t.Error(pr)
	}
}

func TestSensitive(t *testing.T) {
	r := importFile(t, "sandbox-mocks/Sensitive_Patient.json")
	p, _ := patient(t, r.Bundle)
	if !Restricted(p) {
		t.Fatal("the R security label is not kept")
	}
	p.Address = []*fhir.Address{{PostalCode: fhir.NewString("LS1 4AP")}}
	p.Telecom = []*fhir.ContactPoint{{System: fhir.NewCode("phone"), Value: fhir.NewString("0113 496 0000")}}
	out := Redact(p)
	if out.Address != nil || out.Telecom != nil || out.GeneralPractitioner != nil {
		t.Errorf("Redact kept the location of a sensitive record")
	}
	if p.Address == nil {
		t.Errorf("Redact changed its argument")
	}
	if out.Name == nil || out.BirthDate == nil || !Restricted(out) {
		t.Errorf("Redact removed more than the location, or the label")
	}
	plain, _ := patient(t, importFile(t, "sandbox-mocks/Patient.json").Bundle)
	if Restricted(plain) || Redact(plain) != plain {
		t.Errorf("an unrestricted record is redacted")
	}
}

// TestIdempotent: the same payload gives the same writes, full URLs
// included, so a second import changes nothing.
func TestIdempotent(t *testing.T) {
	data, err := os.ReadFile("testdata/sandbox-mocks/PatientSearch.json")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := fhirjson.Marshal(Import(data).Bundle)
	b, _ := fhirjson.Marshal(Import(data).Bundle)
	if !bytes.Equal(a, b) {
		t.Errorf("two imports of the same payload differ")
	}
}

func TestRefusals(t *testing.T) {
	tests := []struct{ name, in, path, want string }{
		{"not JSON", "MSH|^~\\&", "$", "not a JSON resource"},
		{"unknown element", `{"resourceType":"Patient","colour":"blue"}`, "Patient", "unknown"},
		{"invalid NHS number", `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000001"}]}`, "Patient.identifier[0].value", "not a valid NHS number"},
		{"bundle type", `{"resourceType":"Bundle","type":"collection"}`, "Bundle.type", "not a PDS search result"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Import([]byte(tt.in))
			if r.Bundle != nil || len(r.Issues) == 0 {
				t.Fatalf("not refused: %v", r.Issues)
			}
			is := r.Issues[0]
			if is.Severity != mappers.Error || !strings.HasPrefix(is.Path, tt.path) || !strings.Contains(is.Message, tt.want) {
				t.Errorf("issue = %s, want an error at %s saying %q", is, tt.path, tt.want)
			}
		})
	}
}

// TestRepeatedNHSNumber: a search result that holds one patient twice is
// imported with a warning at the later entry, which replaces the earlier,
// however the later writes the NHS number.
func TestRepeatedNHSNumber(t *testing.T) {
	patient := `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"%s"}],"name":[{"family":"%s"}]}`
	other := `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000017"}]}`
	for _, written := range []string{"9000000009", "900 000 0009"} {
		in := `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":` + fmt.Sprintf(patient, "9000000009", "Smith") + `},{"resource":` + other + `},{"resource":` + fmt.Sprintf(patient, written, "Smyth") + `}]}`
		r := Import([]byte(in))
		if r.Failed() {
			t.Fatalf("%s: refused: %v", written, r.Issues)
		}
		var warnings []mappers.Issue
		for _, is := range r.Issues {
			if is.Severity == mappers.Warning {
				warnings = append(warnings, is)
			}
		}
		if len(warnings) != 1 || warnings[0].Path != "Bundle.entry[2].resource" || !strings.Contains(warnings[0].Message, "Bundle.entry[0]") {
			t.Errorf("%s: warnings %v, want one at Bundle.entry[2].resource naming Bundle.entry[0]", written, warnings)
		}
	}
}
