package server_test

import (
	"net/http"
	"slices"
	"testing"
)

// TestAuditNamesPatientByIdentifier: a record naming its patient by
// identifier alone (a subject that is an NHS number) is audited in the
// AuditEvent of the one Patient held here with that identifier, so that
// patient's trail (AuditEvent?patient=) shows who read, found or wrote it;
// an identifier two Patients share names neither.
func TestAuditNamesPatientByIdentifier(t *testing.T) {
	const nhs = "https://fhir.nhs.uk/Id/nhs-number"
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), principals{})
			c.put("/Patient/a", `{"resourceType":"Patient","id":"a","identifier":[{"system":"`+nhs+`","value":"9000000009"},{"system":"urn:shared","value":"1"}]}`)
			c.put("/Patient/b", `{"resourceType":"Patient","id":"b","identifier":[{"system":"urn:shared","value":"1"}]}`)
			obs := func(id, system, value string) string {
				return `{"resourceType":"Observation","id":"` + id + `","status":"final","code":{"text":"x"},"subject":{"identifier":{"system":"` + system + `","value":"` + value + `"}}}`
			}
			c.put("/Observation/byn", obs("byn", nhs, "9000000009"))
			c.put("/Observation/shared", obs("shared", "urn:shared", "1"))
			sent := map[string]int{}
			for _, r := range []struct{ id, method, path, body string }{
				{"read", "GET", "/Observation/byn", ""},
				{"search", "GET", "/Observation?code:text=x", ""},
				{"write", "PUT", "/Observation/byn2", obs("byn2", nhs, "9000000009")},
				{"shared", "GET", "/Observation/shared", ""},
			} {
				sent[r.id] = c.by("admin", r.method, r.path, r.body, "X-Request-Id", r.id, "Content-Type", "application/fhir+json").status
			}
			byRequest := c.auditEventsByRequest(t, sent)
			patientOf := func(request, entity string) []string {
				var patients []string
				for _, ev := range byRequest[request] {
					refs := entityRefs(ev)
					if !slices.Contains(refs, entity) {
						continue
					}
					for _, p := range []string{"Patient/a", "Patient/b"} {
						if slices.Contains(refs, p) {
							patients = append(patients, p)
						}
					}
				}
				return patients
			}
			for _, tc := range []struct{ request, entity string }{
				{"read", "Observation/byn/_history/1"},
				{"search", "Observation/byn/_history/1"},
				{"write", "Observation/byn2/_history/1"},
			} {
				if got := patientOf(tc.request, tc.entity); !slices.Equal(got, []string{"Patient/a"}) {
					t.Errorf("%s: %s is audited in the events of %v, want Patient/a", tc.request, tc.entity, got)
				}
			}
			if got := patientOf("shared", "Observation/shared/_history/1"); len(got) != 0 {
				t.Errorf("an identifier two Patients share is audited in the events of %v, want no patient's", got)
			}
			trail := c.by("admin", "GET", "/AuditEvent?patient=Patient/a&entity=Observation/byn", "").want(t, http.StatusOK)
			if len(ids(t, trail)) < 2 {
				t.Errorf("AuditEvent?patient=Patient/a&entity=Observation/byn: %v, want the read and the search", ids(t, trail))
			}
		})
	}
}
