package care_test

import (
	"net/http"
	"testing"

	"carefhir/care"
)

// TestStoredPatientReferences: a record naming its patient by a version
// (Patient/ward/_history/1) counts for that patient in caseloads and
// cohorts, and a subject that is no reference to a Patient ("Patient/a,b")
// is no one's, rather than a caseload failing with 500.
func TestStoredPatientReferences(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		c.put(`{"resourceType":"CareTeam","id":"team-ward","status":"active","subject":{"reference":"Patient/ward/_history/1"},
			"participant":[{"member":{"reference":"Practitioner/cc"}}]}`)
		c.put(`{"resourceType":"CareTeam","id":"team-odd","status":"active","subject":{"reference":"Patient/baker,clark"},
			"participant":[{"member":{"reference":"Practitioner/cc"}}]}`)
		c.put(`{"resourceType":"Task","id":"call-ward","status":"requested","intent":"order","for":{"reference":"Patient/ward/_history/1"}}`)
		load := caseloadOf(t, c, "/Practitioner/cc/$caseload")
		if len(load) != 1 || load["Patient/ward"] == nil {
			t.Fatalf("caseload: %v, want Patient/ward alone", load)
		}
		checkParts(t, load["Patient/ward"], map[string]any{"openTasks": float64(1)})
		if got := caseloadOf(t, c, "/CareTeam/team-odd/$caseload"); len(got) != 0 {
			t.Errorf("caseload of a CareTeam whose subject is no Patient: %v", got)
		}

		c.put(`{"resourceType":"Condition","id":"dm-clark","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},
			"code":{"coding":[{"system":"http://snomed.info/sct","code":"44054006"}]},"subject":{"reference":"Patient/clark/_history/1"}}`)
		g := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"practice","valueString":"Y12345"},
			{"name":"condition","valueString":"`+diabetes+`"}]}`).want(http.StatusCreated)
		if got := members(g); got != "Patient/clark=<nil> Patient/ward=<nil>" {
			t.Errorf("cohort: %s", got)
		}
	})
}

// TestCaseloadCursorPastTheEnd: a cursor past the end of the caseload, as
// one becomes when the caseload shrinks between pages, or one far beyond
// it, is a page of no patients with the total, not a 500.
func TestCaseloadCursorPastTheEnd(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		for _, cursor := range []string{"3", "4", "9223372036854775807", "9223372036854775000"} {
			page := c.do("GET", "/Organization/y12345/$caseload?_count=500&cursor="+cursor, "").want(http.StatusOK)
			if got := paramsText(page); got != "total=3" {
				t.Errorf("cursor %s: %s, want total=3 alone", cursor, got)
			}
		}
	})
}
