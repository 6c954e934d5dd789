package server_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"carefhir/store"
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

// TestAuditNamesPatientOfSpacedJSON: the patients a record belongs to are
// told from its JSON however it is spaced, not only as the server writes
// it (compact): a record the engine holds from elsewhere (a store restored
// or migrated from another system) that refers to its patient, or names
// them by identifier, an AuditEvent naming a contained Patient by NHS
// number among them, is audited in that patient's AuditEvent.
func TestAuditNamesPatientOfSpacedJSON(t *testing.T) {
	const nhs = "https://fhir.nhs.uk/Id/nhs-number"
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), principals{})
			c.put("/Patient/a", `{"resourceType":"Patient","id":"a","identifier":[{"system":"`+nhs+`","value":"9000000009"}]}`)
			spaced := map[string]string{
				"Observation/byref": `{
  "resourceType": "Observation", "id": "byref", "status": "final", "code": {"text": "x"},
  "subject": {"reference" : "Patient/a"}
}`,
				"Observation/byid": `{
  "resourceType": "Observation", "id": "byid", "status": "final", "code": {"text": "x"},
  "subject": {"identifier": {"system": "` + nhs + `", "value": "9000000009"}}
}`,
				"AuditEvent/contained": `{
  "resourceType": "AuditEvent", "id": "contained",
  "contained": [{"resourceType": "Patient", "id": "p"}],
  "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
  "recorded": "2024-01-01T00:00:00Z",
  "agent": [{"requestor": true}], "source": {"observer": {"display": "elsewhere"}},
  "entity": [{"what": {"reference": "#p", "identifier": {"system": "` + nhs + `", "value": "9000000009"}}}]
}`,
			}
			sent := map[string]int{}
			for ref, body := range spaced {
				typ, id, _ := strings.Cut(ref, "/")
				w := &store.Write{Type: typ, ID: id, LastUpdated: time.Now().UTC().Truncate(time.Millisecond), JSON: []byte(body)}
				if err := c.st.Put(t.Context(), w); err != nil {
					t.Fatal(err)
				}
				sent[id] = c.by("admin", "GET", "/"+ref, "", "X-Request-Id", id).want(t, http.StatusOK).status
			}
			byRequest := c.auditEventsByRequest(t, sent)
			for ref := range spaced {
				_, id, _ := strings.Cut(ref, "/")
				named := false
				for _, ev := range byRequest[id] {
					refs := entityRefs(ev)
					named = named || slices.Contains(refs, ref+"/_history/1") && slices.Contains(refs, "Patient/a")
				}
				if !named {
					t.Errorf("the read of %s is not audited in the AuditEvent of Patient/a", ref)
				}
			}
		})
	}
}
