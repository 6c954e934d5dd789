package gpconnect

import (
	"testing"

	"carefhir/fhir/fhirjson"
)

// FuzzImport: no payload makes the import panic; a refusal has an error
// saying why, and what imports encodes as R4 JSON.
func FuzzImport(f *testing.F) {
	for _, name := range []string{
		"1.2.8-release/appointments/search-for-free-slots-response-payload-1.json",
		"1.2.8-release/appointments/book-appt-request-payload-1.json",
		"1.2.8-release/foundations/read-patient-response-payload-1.json",
		"ars-1.6.2/accessrecord_structured/referrals_response1.json",
		"ars-1.6.2/accessrecord_structured/allergies_response3.json",
		"integration-adaptor-gp2gp/wiremock/stubs/__files/operationOutcomePatientNotFound.json",
	} {
		f.Add(fixture(f, name))
	}
	rc := patchedRecords[5]
	f.Add(patched(f, rc.name, rc.placeholder, rc.nhs))
	im, err := NewImporter()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		res := im.Import(payload)
		if res.Bundle == nil {
			if !res.Failed() {
				t.Fatalf("no Bundle and no error: %v", res.Issues)
			}
			return
		}
		if res.Failed() {
			t.Fatalf("a Bundle despite errors: %v", res.Issues)
		}
		if _, err := fhirjson.Marshal(res.Bundle); err != nil {
			t.Fatalf("the Bundle does not encode: %v", err)
		}
	})
}
