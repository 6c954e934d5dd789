package care_test

import (
	"net/http"
	"strings"
	"testing"

	"carefhir/care"
)

// TestOperationParameters: a parameter an operation does not take, or one
// without a value it reads, is 400 naming it, and nothing is written; a
// cohort is never evaluated without a criterion its caller meant to give.
func TestOperationParameters(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		c.do("PUT", "/QuestionnaireResponse/q1", pamResponse("q1", "completed", "2026-11-01T10:00:00Z", "3", "50")).want(http.StatusCreated)
		c.put(`{"resourceType":"Group","id":"frail","type":"person","actual":true,"characteristic":[{"code":{"coding":[{"system":"` + care.SystemCohortCriterion + `","code":"age-min"}]},"valueQuantity":{"value":80},"exclude":false}]}`)
		params := func(ps string) string { return `{"resourceType":"Parameters","parameter":[` + ps + `]}` }
		for _, tc := range []struct{ method, path, body, param string }{
			{"POST", "/Group/$cohort", params(`{"name":"ageMin","valueInteger":65},{"name":"agemax","valueInteger":70}`), "agemax"},
			{"POST", "/Group/$cohort", params(`{"name":"ageMin","valueInteger":65},{"name":"condition","valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"44054006"}]}}`), "condition"},
			{"POST", "/Group/$cohort", params(`{"name":"practice","valueString":"Y12345"},{"name":"ageMax","part":[{"name":"value","valueInteger":70}]}`), "ageMax"},
			{"POST", "/Group/frail/$cohort", params(`{"name":"ageMin","valueInteger":65}`), "ageMin"},
			{"GET", "/Practitioner/cc/$caseload?sort=review-due", "", "sort"},
			{"POST", "/Task/$generate-reminders", params(`{"name":"asof","valueDate":"2027-06-01"}`), "asof"},
			{"POST", "/QuestionnaireResponse/q1/$pam-score", params(`{"name":"score","valueDecimal":80}`), "score"},
		} {
			r := c.do(tc.method, tc.path, tc.body)
			oo := r.want(http.StatusBadRequest)
			if want := "Parameters.parameter.where(name='" + tc.param + "')"; str(oo, "issue", 0, "expression", 0) != want {
				t.Errorf("%s %s %s: %s, want the issue at %s", tc.method, tc.path, tc.body, issues(oo), want)
			}
		}
		if n := len(entries(c.do("GET", "/Group", "").want(http.StatusOK))); n != 1 {
			t.Errorf("%d Groups after refused cohorts, want the one stored", n)
		}
		if v := str(c.do("GET", "/Group/frail", "").want(http.StatusOK), "meta", "versionId"); v != "1" {
			t.Errorf("Group/frail at version %s after a refused evaluation, want 1", v)
		}
		if n := len(entries(c.do("GET", "/Task", "").want(http.StatusOK))); n != 0 {
			t.Errorf("%d Tasks after refused reminders, want none", n)
		}
		// What says how the answer is written is no parameter of the operation.
		c.do("GET", "/Practitioner/cc/$caseload?_format=json&_pretty=true", "").want(http.StatusOK)
	})
}

// TestOperationBodyNotParameters: a POST whose body is a resource other
// than Parameters is 400 saying so, rather than run as if given no
// parameters: reminders are not created, nor a cohort, nor a caseload
// answered.
func TestOperationBodyNotParameters(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		c.put(`{"resourceType":"CareTeam","id":"team-ward","status":"active","subject":{"reference":"Patient/ward"},"participant":[{"member":{"reference":"Practitioner/cc"}}]}`)
		walkGoal(c)
		c.put(pcsp("active", "2026-12-10", "goal-walk"))
		c.do("PUT", "/QuestionnaireResponse/q1", pamResponse("q1", "completed", "2026-11-01T10:00:00Z", "3", "50")).want(http.StatusCreated)
		for _, tc := range []struct{ path, body, typ string }{
			{"/Task/$generate-reminders", `{"resourceType":"Patient","id":"ward"}`, "Patient"},
			{"/Group/$cohort", `{"resourceType":"Group","type":"person","actual":true}`, "Group"},
			{"/Practitioner/cc/$caseload", `{"resourceType":"Observation","status":"final","code":{"text":"x"}}`, "Observation"},
			{"/QuestionnaireResponse/q1/$pam-score", pamResponse("q1", "completed", "2026-11-01T10:00:00Z", "3", "80"), "QuestionnaireResponse"},
		} {
			oo := c.do("POST", tc.path, tc.body).want(http.StatusBadRequest)
			if got := issues(oo); !strings.Contains(got, "a Parameters resource: the operation takes no "+tc.typ) {
				t.Errorf("POST %s with a %s: %s", tc.path, tc.typ, got)
			}
		}
		if n := len(entries(c.do("GET", "/Task", "").want(http.StatusOK))); n != 0 {
			t.Errorf("%d Tasks after refused reminders, want none", n)
		}
		if n := len(entries(c.do("GET", "/Group", "").want(http.StatusOK))); n != 0 {
			t.Errorf("%d Groups after a refused cohort, want none", n)
		}
	})
}

// TestOperationOnDeleted: an operation invoked on a resource that was
// deleted is 410, as a read of it is, and on one never held 404.
func TestOperationOnDeleted(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		c.do("PUT", "/QuestionnaireResponse/q1", pamResponse("q1", "completed", "2026-11-01T10:00:00Z", "3", "50")).want(http.StatusCreated)
		c.put(`{"resourceType":"Group","id":"frail","type":"person","actual":true,"characteristic":[{"code":{"coding":[{"system":"` + care.SystemCohortCriterion + `","code":"age-min"}]},"valueQuantity":{"value":80},"exclude":false}]}`)
		for _, tc := range []struct{ method, resource, op string }{
			{"GET", "/Practitioner/gp", "$caseload"},
			{"POST", "/Group/frail", "$cohort"},
			{"POST", "/QuestionnaireResponse/q1", "$pam-score"},
		} {
			c.do(tc.method, tc.resource+"/"+tc.op, "").want(http.StatusOK)
			c.do("DELETE", tc.resource, "").want(http.StatusNoContent)
			c.do("GET", tc.resource, "").want(http.StatusGone)
			oo := c.do(tc.method, tc.resource+"/"+tc.op, "").want(http.StatusGone)
			if got := issues(oo); !strings.Contains(got, "deleted") || !strings.Contains(got, strings.TrimPrefix(tc.resource, "/")+" was deleted") {
				t.Errorf("%s %s on a deleted resource: %s", tc.method, tc.op, got)
			}
			c.do(tc.method, tc.resource+"-never/"+tc.op, "").want(http.StatusNotFound)
		}
	})
}
