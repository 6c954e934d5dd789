package server_test

import (
	"net/http"
	"testing"

	"carefhir/server"
	"carefhir/server/access"
)

// TestStoredBundleReadByItsEntries: a stored Bundle (a document, a
// collection) holds whole resources of the patients it is about, but is in
// no patient's compartment. A token that may not read every resource (a
// practitioner under the care-team rule, a token whose Observation scope
// is restricted) reads a Bundle only when it may read every resource the
// Bundle holds, as each would be decided were it stored, and cannot search
// Bundles, which the engine cannot narrow so: a collection holding another
// patient's record is not read, nor written, by the practitioner of one.
func TestStoredBundleReadByItsEntries(t *testing.T) {
	who := principals{
		"p1":   {Subject: "p1", FHIRUser: "Practitioner/p1", Scopes: mustScopes(t, "user/*.cruds")},
		"labs": {Subject: "labs", Scopes: mustScopes(t, "system/Observation.rs?category=laboratory system/Bundle.rs")},
	}
	policy := func(cfg *server.Config) { cfg.AccessPolicy = access.CareTeamPolicy }
	collection := func(id string, entries ...string) string {
		body := `{"resourceType":"Bundle","id":"` + id + `","type":"collection","entry":[`
		for i, e := range entries {
			if i > 0 {
				body += ","
			}
			body += `{"fullUrl":"urn:uuid:00000000-0000-4000-8000-00000000000` + string(rune('0'+i)) + `","resource":` + e + `}`
		}
		return body + `]}`
	}
	obs := func(patient, category string) string {
		return `{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"` + category + `"}]}],"code":{"text":"x"},"subject":{"reference":"Patient/` + patient + `"}}`
	}
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who, policy)
			twoPatientRecords(c)
			c.put("/CareTeam/ct", `{"resourceType":"CareTeam","id":"ct","status":"active","subject":{"reference":"Patient/a"},"participant":[{"member":{"reference":"Practitioner/p1"}}]}`)
			c.put("/Bundle/of-a", collection("of-a", obs("a", "laboratory")))
			c.put("/Bundle/of-b", collection("of-b", obs("b", "laboratory")))
			c.put("/Bundle/vitals", collection("vitals", obs("a", "vital-signs")))
			// A RiskAssessment is not served: whose record it is cannot be
			// told from a compartment, so it is no one's to read here.
			risk := `{"resourceType":"RiskAssessment","status":"final","subject":{"reference":"Patient/b"},"prediction":[{"outcome":{"text":"x"}}]}`
			c.put("/Bundle/risk-of-b", collection("risk-of-b", risk))
			c.by("p1", "GET", "/Bundle/of-a", "").want(t, http.StatusOK)
			c.by("p1", "GET", "/Bundle/vitals", "").want(t, http.StatusOK)
			for _, path := range []string{"/Bundle/of-b", "/Bundle/of-b/_history/1", "/Bundle/of-b/_history", "/Bundle/risk-of-b"} {
				c.by("p1", "GET", path, "").want(t, http.StatusNotFound)
			}
			c.by("p1", "GET", "/Bundle", "").want(t, http.StatusForbidden).outcome(t, "forbidden", "")
			if _, entries, _ := historyPage(t, c.by("p1", "GET", "/Bundle/_history", "")); len(entries) != 2 {
				t.Errorf("p1: Bundle history holds %v, want Bundle/of-a and Bundle/vitals", entries)
			}
			c.by("p1", "PUT", "/Bundle/new", collection("new", obs("b", "laboratory")), "Content-Type", "application/fhir+json").want(t, http.StatusForbidden)
			c.by("p1", "PUT", "/Bundle/new", collection("new", obs("a", "laboratory")), "Content-Type", "application/fhir+json").want(t, http.StatusCreated)

			c.by("labs", "GET", "/Bundle/of-b", "").want(t, http.StatusOK)
			c.by("labs", "GET", "/Bundle/vitals", "").want(t, http.StatusNotFound)
		})
	}
}
