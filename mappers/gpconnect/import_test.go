package gpconnect

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/mappers"
	"carefhir/profiles"
)

var validator = sync.OnceValues(func() (*profiles.Validator, error) {
	return profiles.New(profiles.Options{})
})

var importer = sync.OnceValues(NewImporter)

// fixture reads a payload from testdata, without the Jekyll template
// lines the specification's examples are wrapped in.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		switch strings.TrimSpace(string(line)) {
		case "{% highlight json %}", "{% endhighlight %}":
			continue
		}
		out = append(out, line)
	}
	return bytes.Join(out, []byte("\n"))
}

// ukCoreProfile returns the UK Core profile of typ, if UK Core has one.
func ukCoreProfile(v *profiles.Validator, typ string) []string {
	u := "https://fhir.hl7.org.uk/StructureDefinition/UKCore-" + typ
	if v.StructureDefinition(u) != nil {
		return []string{u}
	}
	return nil
}

// validate checks every resource of an imported Bundle against R4 and
// UK Core and returns the errors.
func validate(t *testing.T, res mappers.Result) []string {
	t.Helper()
	v, err := validator()
	if err != nil {
		t.Fatal(err)
	}
	var errs []string
	for i, e := range res.Bundle.Entry {
		data, err := fhirjson.Marshal(e.Resource)
		if err != nil {
			t.Fatal(err)
		}
		for _, is := range v.Validate(context.Background(), data, ukCoreProfile(v, e.Resource.ResourceType())...) {
			if is.Severity == "error" || is.Severity == "fatal" {
				errs = append(errs, e.Request.Url.Get()+" entry "+string(rune('0'+i%10))+": "+is.Expression+": "+is.Message)
			}
		}
	}
	return errs
}

// fixtures lists every payload in testdata with what its import must
// give: "" for a Bundle whose every resource validates against R4 and
// UK Core, or the path and words of the first error it is refused with.
var fixtures = []struct{ name, refused string }{
	{"1.2.7-master/appointments/amend_appt_request_example.json", ""},
	{"1.2.7-master/appointments/amend_appt_response_example.json", ""},
	{"1.2.7-master/appointments/book_appt_request_example.json", ""},
	{"1.2.7-master/appointments/book_appt_response_example.json", ""},
	{"1.2.7-master/appointments/cancel_appt_request_example.json", ""},
	{"1.2.7-master/appointments/cancel_appt_response_example.json", ""},
	{"1.2.7-master/appointments/read_appt_response_example.json", ""},
	{"1.2.7-master/appointments/retrieve_patients_appts_response_example.json", ""},
	{"1.2.7-master/appointments/search_for_free_slots_response_example.json", "Bundle.entry[4].resource.telecom: invalid STU3: expected array"},
	{"1.2.7-master/foundations/find_organization_response_example.json", ""},
	{"1.2.7-master/foundations/find_patient_response_example.json", ""},
	{"1.2.7-master/foundations/find_practitioner_response_example.json", ""},
	{"1.2.7-master/foundations/get_capability_statement_response_example.json", "CapabilityStatement.software.releaseDate: invalid STU3: expected datetime"},
	{"1.2.7-master/foundations/read_location_response_example.json", "Location.address: invalid STU3: invalid JSON"},
	{"1.2.7-master/foundations/read_organization_response_example.json", ""},
	{"1.2.7-master/foundations/read_patient_response_example.json", ""},
	{"1.2.7-master/foundations/read_practitioner_response_example.json", ""},
	{"1.2.7-master/foundations/register_patient_request_example.json", "Parameters: a request (the Parameters of an operation such as $gpc.getst"},
	{"1.2.7-master/foundations/register_patient_response_example.json", ""},
	{"1.2.8-release/appointments/amend-appt-request-payload-1.json", ""},
	{"1.2.8-release/appointments/amend-appt-response-payload-1.json", ""},
	{"1.2.8-release/appointments/book-appt-request-payload-1.json", ""},
	{"1.2.8-release/appointments/book-appt-response-payload-1.json", ""},
	{"1.2.8-release/appointments/cancel-appt-request-payload-1.json", ""},
	{"1.2.8-release/appointments/cancel-appt-response-payload-1.json", ""},
	{"1.2.8-release/appointments/read-appt-response-payload-1.json", ""},
	{"1.2.8-release/appointments/retrieve-patient-appts-response-payload-1a.json", ""},
	{"1.2.8-release/appointments/retrieve-patient-appts-response-payload-1b.json", "Bundle: no resource to import"},
	{"1.2.8-release/appointments/search-for-free-slots-response-payload-1.json", ""},
	{"1.2.8-release/appointments/search-for-free-slots-response-payload-2.json", ""},
	{"1.2.8-release/appointments/search-for-free-slots-response-payload-3.json", ""},
	{"1.2.8-release/appointments/search-for-free-slots-response-payload-4.json", "Bundle: no resource to import"},
	{"1.2.8-release/foundations/find-healthcareservice-response-payload-1a.json", ""},
	{"1.2.8-release/foundations/find-healthcareservice-response-payload-1b.json", "Bundle: no resource to import"},
	{"1.2.8-release/foundations/find-healthcareservice-response-payload-2.json", ""},
	{"1.2.8-release/foundations/find-organization-response-payload-1.json", ""},
	{"1.2.8-release/foundations/find-patient-response-payload-1.json", ""},
	{"1.2.8-release/foundations/find-practitioner-response-payload-1.json", ""},
	{"1.2.8-release/foundations/get-capability-statement-response-payload-1.json", "CapabilityStatement.software.releaseDate: invalid STU3: expected datetime"},
	{"1.2.8-release/foundations/read-healthcareservice-response-payload-1.json", ""},
	{"1.2.8-release/foundations/read-location-response-payload-1.json", ""},
	{"1.2.8-release/foundations/read-organization-response-payload-1.json", ""},
	{"1.2.8-release/foundations/read-patient-response-payload-1.json", ""},
	{"1.2.8-release/foundations/read-practitioner-response-payload-1.json", ""},
	{"1.2.8-release/foundations/register-patient-request-payload-1.json", "Parameters: a request (the Parameters of an operation such as $gpc.getst"},
	{"1.2.8-release/foundations/register-patient-response-payload-1.json", ""},
	{"1.2.9-feature/appointments/unknown_visit_location_example.json", "Location.address: invalid STU3: invalid JSON"},
	{"access-documents-1.6.2/access_documents/documents_response.json", "Bundle.entry[0].resource.identifier: NHS number \"9999999999\" fails its check digit or is not 10 d"},
	{"ars-1.6.2/accessrecord_structured/allergies_request1.json", "Parameters: a request (the Parameters of an operation such as $gpc.getst"},
	{"ars-1.6.2/accessrecord_structured/allergies_request2.json", "Parameters: a request (the Parameters of an operation such as $gpc.getst"},
	{"ars-1.6.2/accessrecord_structured/allergies_request3.json", "Parameters: a request (the Parameters of an operation such as $gpc.getst"},
	{"ars-1.6.2/accessrecord_structured/allergies_response1.json", "Bundle.entry[5].resource.contained[0].recorder: invalid STU3: invalid reference to a PractitionerRole resour"},
	{"ars-1.6.2/accessrecord_structured/allergies_response2.json", "Bundle.entry[5].resource.recorder: invalid STU3: invalid reference to a PractitionerRole resour"},
	{"ars-1.6.2/accessrecord_structured/allergies_response3.json", "Bundle.entry[0].resource.identifier: NHS number \"9999999999\" fails its check digit or is not 10 d"},
	{"ars-1.6.2/accessrecord_structured/consultations_forwards_request1.json", "Parameters: a request (the Parameters of an operation such as $gpc.getst"},
	{"ars-1.6.2/accessrecord_structured/consultations_forwards_response1.json", "Bundle.entry[12].resource.dispenseRequest.expectedSupplyDuration.value: invalid STU3: expected decimal"},
	{"ars-1.6.2/accessrecord_structured/consultations_request1.json", "Parameters: a request (the Parameters of an operation such as $gpc.getst"},
	{"ars-1.6.2/accessrecord_structured/consultations_response1.json", "Bundle.entry[72].resource.period.end: invalid STU3: expected datetime"},
	{"ars-1.6.2/accessrecord_structured/consultations_response2.json", "Bundle.entry[0].resource.generalPractitioner: invalid STU3: expected array"},
	{"ars-1.6.2/accessrecord_structured/consultations_response3.json", "Bundle.entry[0].resource.generalPractitioner: invalid STU3: expected array"},
	{"ars-1.6.2/accessrecord_structured/diaryentries_request1.json", "Parameters: a request (the Parameters of an operation such as $gpc.getst"},
	{"ars-1.6.2/accessrecord_structured/diaryentries_response1.json", "Bundle.entry[6]: invalid STU3: unknown field"},
	{"ars-1.6.2/accessrecord_structured/immunizations_request1.json", "Parameters: a request (the Parameters of an operation such as $gpc.getst"},
	{"ars-1.6.2/accessrecord_structured/immunizations_request2.json", "Parameters: a request (the Parameters of an operation such as $gpc.getst"},
	{"ars-1.6.2/accessrecord_structured/immunizations_request3.json", "Parameters: a request (the Parameters of an operation such as $gpc.getst"},
	{"ars-1.6.2/accessrecord_structured/immunizations_response1.json", "Bundle.entry[0].resource.identifier: NHS number \"9999999999\" fails its check digit or is not 10 d"},
	{"ars-1.6.2/accessrecord_structured/immunizations_response2.json", "Bundle.entry[8].resource.explanation: invalid STU3: unknown field"},
	{"ars-1.6.2/accessrecord_structured/immunizations_response3.json", "Bundle.entry[7].resource.performer[0]: invalid STU3: invalid reference to a PractitionerRole resour"},
	{"ars-1.6.2/accessrecord_structured/meds_request.json", "Parameters: a request (the Parameters of an operation such as $gpc.getst"},
	{"ars-1.6.2/accessrecord_structured/meds_response.json", "Bundle.entry[8].resource.dispenseRequest.expectedSupplyDuration.value: invalid STU3: expected decimal"},
	{"ars-1.6.2/accessrecord_structured/pathology_request1.json", "Parameters: a request (the Parameters of an operation such as $gpc.getst"},
	{"ars-1.6.2/accessrecord_structured/pathology_request2.json", "Parameters: a request (the Parameters of an operation such as $gpc.getst"},
	{"ars-1.6.2/accessrecord_structured/pathology_response1.json", "Bundle.entry[2].resource.identifier: NHS number \"9432003812\" fails its check digit or is not 10 d"},
	{"ars-1.6.2/accessrecord_structured/pathology_response2.json", "Bundle.entry[7].resource.category[0].coding[0].code: invalid STU3: invalid Code format"},
	{"ars-1.6.2/accessrecord_structured/problems_request1.json", "Parameters: a request (the Parameters of an operation such as $gpc.getst"},
	{"ars-1.6.2/accessrecord_structured/problems_response1.json", "Bundle.entry[0].resource.generalPractitioner: invalid STU3: expected array"},
	{"ars-1.6.2/accessrecord_structured/problems_response2.json", "Bundle.entry[0].resource.generalPractitioner: invalid STU3: expected array"},
	{"ars-1.6.2/accessrecord_structured/problems_response3.json", "Bundle.entry[0].resource.generalPractitioner: invalid STU3: expected array"},
	{"ars-1.6.2/accessrecord_structured/referrals_request1.json", "Parameters: a request (the Parameters of an operation such as $gpc.getst"},
	{"ars-1.6.2/accessrecord_structured/referrals_response1.json", "Bundle.entry[2].resource.identifier: the ReferralRequest Consultation1-Topic1-Category-Plan-ReferralRequest-1 carries the same identifier as Bundle.entry[1].resource"},
	{"ars-1.6.2/accessrecord_structured/skeleton_full_record.json", "Bundle.entry[0].resource: invalid STU3: missing required field \"mode\""},
	{"ars-1.6.2/accessrecord_structured/split_plan.json", ""},
	{"ars-1.6.2/accessrecord_structured/uncategorised_request1.json", "Parameters: a request (the Parameters of an operation such as $gpc.getst"},
	{"ars-1.6.2/accessrecord_structured/uncategorised_response1.json", "Bundle.entry[7].resource.code.coding[0].code: invalid STU3: invalid Code format"},
	{"ars-1.6.2/accessrecord_structured/uncategorised_response2.json", "Bundle.entry[0].resource.generalPractitioner: invalid STU3: expected array"},
	{"ars-1.6.2/accessrecord_structured/uncategorised_response3.json", "Bundle.entry[0].resource.generalPractitioner: invalid STU3: expected array"},
	{"gpconnect-demonstrator/config/capability.json", "CapabilityStatement: a CapabilityStatement holds no patient record to import"},
	{"gpconnect-demonstrator/config/responses/ConsultationResponse1.xml", "(payload): STU3 XML is not supported: ask the provider for JSON (Accept"},
	{"gpconnect-demonstrator/config/responses/immunizations_resp.xml", "(payload): STU3 XML is not supported: ask the provider for JSON (Accept"},
	{"gpconnect-demonstrator/config/responses/investigations_resp.xml", "(payload): STU3 XML is not supported: ask the provider for JSON (Accept"},
	{"gpconnect-demonstrator/config/responses/referrals_resp.xml", "(payload): STU3 XML is not supported: ask the provider for JSON (Accept"},
	{"gpconnect-demonstrator/config/responses/uncategorised_data_resp.xml", "(payload): STU3 XML is not supported: ask the provider for JSON (Accept"},
	{"gpconnect-demonstrator/config/structured_capability.json", "CapabilityStatement: a CapabilityStatement holds no patient record to import"},
	{"integration-adaptor-gp2gp/uat/input/TC4/9465698679_Gainsford_full_20210119.json", "Bundle.entry[12].resource.identifier: NHS number \"1234567890\" fails its check digit or is not 10 d"},
	{"integration-adaptor-gp2gp/uat/input/TC4/9465700193_Birdi_full_20210119.json", "Bundle.entry[43].resource.identifier: NHS number \"1234567890\" fails its check digit or is not 10 d"},
	{"integration-adaptor-gp2gp/uat/input/TC4/9465701483_Dougill_full_20210119.json", "Bundle.entry[16].resource.identifier: NHS number \"1234567890\" fails its check digit or is not 10 d"},
	{"integration-adaptor-gp2gp/wiremock/stubs/__files/MedicusBasedOnErrorStructuredRecord.json", "Bundle.entry[0].resource.identifier: NHS number \"{{jsonPath request.body '$.parameter[0].valueIde"},
	{"integration-adaptor-gp2gp/wiremock/stubs/__files/correctAllergiesContainedResourceResponse.json", "Bundle.entry[0].resource.identifier: NHS number \"{{jsonPath request.body '$.parameter[0].valueIde"},
	{"integration-adaptor-gp2gp/wiremock/stubs/__files/correctPatientDocumentResponse.json", "Binary: a Binary holds no patient record to import"},
	{"integration-adaptor-gp2gp/wiremock/stubs/__files/correctPatientStructuredRecordResponseBodySite.json", "Bundle.entry[0].resource.identifier: NHS number \"{{jsonPath request.body '$.parameter[0].valueIde"},
	{"integration-adaptor-gp2gp/wiremock/stubs/__files/notFoundPatientDocumentResponse.json", "OperationOutcome.issue[0]: the provider answered with an error, not a record: NO_RECORD"},
	{"integration-adaptor-gp2gp/wiremock/stubs/__files/operationOutcomeBadRequest.json", "OperationOutcome.issue[0]: the provider answered with an error, not a record: BAD_REQUE"},
	{"integration-adaptor-gp2gp/wiremock/stubs/__files/operationOutcomeInternalServerError.json", "OperationOutcome.issue[0]: the provider answered with an error, not a record: INTERNAL_"},
	{"integration-adaptor-gp2gp/wiremock/stubs/__files/operationOutcomeInvalidDemographic.json", "OperationOutcome.issue[0]: the provider answered with an error, not a record: INVALID_P"},
	{"integration-adaptor-gp2gp/wiremock/stubs/__files/operationOutcomeInvalidNHSNumber.json", "OperationOutcome.issue[0]: the provider answered with an error, not a record: INVALID_N"},
	{"integration-adaptor-gp2gp/wiremock/stubs/__files/operationOutcomeInvalidParameter.json", "OperationOutcome.issue[0]: the provider answered with an error, not a record: INVALID_P"},
	{"integration-adaptor-gp2gp/wiremock/stubs/__files/operationOutcomeInvalidResource.json", "OperationOutcome.issue[0]: the provider answered with an error, not a record: INVALID_R"},
	{"integration-adaptor-gp2gp/wiremock/stubs/__files/operationOutcomeNoRelationship.json", "OperationOutcome.issue[0]: the provider answered with an error, not a record: NO_RELATI"},
	{"integration-adaptor-gp2gp/wiremock/stubs/__files/operationOutcomePatientNotFound.json", "OperationOutcome.issue[0]: the provider answered with an error, not a record: PATIENT_N"},
	{"integration-adaptor-gp2gp/wiremock/stubs/__files/patientWithNoDocumentResources.json", "Bundle.entry[0].resource.identifier: NHS number \"{{jsonPath request.body '$.parameter[0].valueIde"},
	{"integration-adaptor-gpc-consumer/SearchForPatientsDocumentMultipleUrl.json", ""},
	{"integration-adaptor-gpc-consumer/SearchForPatientsDocumentSingleUrl.json", ""},
	{"integration-adaptor-gpc-consumer/SearchForPatientsDocumentWithNoUrl.json", "Bundle.entry[5].resource: invalid STU3: missing required field \"content\""},
}

func TestFixtures(t *testing.T) {
	im, err := importer()
	if err != nil {
		t.Fatal(err)
	}
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			t.Parallel()
			payload := fixture(t, fx.name)
			res := im.Import(payload)
			if fx.refused != "" {
				if !res.Failed() || res.Bundle != nil {
					t.Fatalf("imported, want refused with %q", fx.refused)
				}
				if got := firstError(res); !strings.Contains(got, fx.refused) {
					t.Fatalf("refused with %q, want %q", got, fx.refused)
				}
				return
			}
			if res.Failed() {
				t.Fatalf("refused: %s", firstError(res))
			}
			checkImport(t, res)
			if errs := validate(t, res); len(errs) > 0 {
				t.Fatalf("%d resources do not validate, first: %s", len(errs), errs[0])
			}
			// The same payload gives the same Bundle, byte for byte: a
			// re-import writes what is already there.
			again := im.Import(payload)
			if a, b := encode(t, res.Bundle), encode(t, again.Bundle); !bytes.Equal(a, b) {
				t.Fatal("a second import of the same payload gives a different Bundle")
			}
		})
	}
}

func TestFixturesCoverTestdata(t *testing.T) {
	listed := map[string]bool{}
	for _, fx := range fixtures {
		listed[fx.name] = true
	}
	filepath.WalkDir("testdata", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(filepath.ToSlash(p), "testdata/")
		if !d.IsDir() && !strings.HasSuffix(name, ".md") && !listed[name] {
			t.Errorf("%s is not in the fixtures table", name)
		}
		return nil
	})
}

func firstError(res mappers.Result) string {
	for _, is := range res.Issues {
		if is.Severity == mappers.Error {
			return is.Path + ": " + is.Message
		}
	}
	return ""
}

func encode(t testing.TB, r fhir.Resource) []byte {
	t.Helper()
	b, err := fhirjson.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkImport checks the shape every import shares: a transaction of PUTs,
// each keyed on an identifier or a derived id, with a urn:uuid full URL
// of its own, and no reference left to the source's ids.
func checkImport(t *testing.T, res mappers.Result) {
	t.Helper()
	b := res.Bundle
	if b.Type.Get() != "transaction" || len(b.Entry) == 0 {
		t.Fatalf("want a transaction with entries, got type %q and %d entries", b.Type.Get(), len(b.Entry))
	}
	full := map[string]bool{}
	urls := map[string]bool{}
	for _, e := range b.Entry {
		u := e.Request.Url.Get()
		if e.Request.Method.Get() != "PUT" || !(strings.Contains(u, "?identifier=") || strings.Contains(u, "/gpc-")) {
			t.Errorf("entry %s %s: want a PUT keyed on an identifier or a derived id", e.Request.Method.Get(), u)
		}
		if !strings.HasPrefix(u, e.Resource.ResourceType()) {
			t.Errorf("entry %s holds a %s", u, e.Resource.ResourceType())
		}
		if urls[u] || full[e.FullUrl.Get()] || !strings.HasPrefix(e.FullUrl.Get(), "urn:uuid:") {
			t.Errorf("entry %s: full URL %q is repeated or not a urn:uuid", u, e.FullUrl.Get())
		}
		urls[u], full[e.FullUrl.Get()] = true, true
	}
	var refs []string
	collectRefs(json.RawMessage(encode(t, b)), &refs)
	for _, r := range refs {
		if !full[r] {
			t.Errorf("reference %q is to no entry of the Bundle", r)
		}
	}
}

// collectRefs gathers every Reference.reference in a JSON document.
func collectRefs(data json.RawMessage, refs *[]string) {
	var v any
	if json.Unmarshal(data, &v) != nil {
		return
	}
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "reference" {
					*refs = append(*refs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
}
