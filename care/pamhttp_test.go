package care_test

import (
	"net/http"
	"strings"
	"testing"

	"carefhir/care"
)

// TestPAMSubject: a scored PAM response names the Patient it measures, by
// reference or by an identifier that one Patient held here has; otherwise
// it is refused with 422 at QuestionnaireResponse.subject, storing nothing.
func TestPAMSubject(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		c.put(`{"resourceType":"Patient","id":"nhs","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}],"birthDate":"1950-01-01"}`)
		c.put(`{"resourceType":"Patient","id":"twin-1","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000017"}]}`)
		c.put(`{"resourceType":"Patient","id":"twin-2","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000017"}]}`)
		withSubject := func(id, status, subject string) string {
			return strings.Replace(pamResponse(id, status, "2026-11-01T10:00:00Z", "3", "50"), `"subject":{"reference":"Patient/ward"},`, subject, 1)
		}
		for _, tc := range []struct{ name, status, subject, want string }{
			{"none", "completed", "", "QuestionnaireResponse.subject: a PAM response that is completed has a subject"},
			{"none, amended", "amended", "", "QuestionnaireResponse.subject: a PAM response that is amended has a subject"},
			{"not a Patient", "completed", `"subject":{"reference":"Group/g1"},`, "QuestionnaireResponse.subject.reference: the subject of a PAM response must reference a Patient held here"},
			{"identifier held by none", "completed", `"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9999999999"}},`, "QuestionnaireResponse.subject.identifier: the subject of a PAM response must reference a Patient held here: no Patient"},
			{"identifier held by two", "completed", `"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000017"}},`, "more than one Patient held here has the identifier"},
			{"display alone", "completed", `"subject":{"display":"Pat Ward"},`, "QuestionnaireResponse.subject: the subject of a PAM response must reference a Patient held here"},
		} {
			oo := c.do("PUT", "/QuestionnaireResponse/bad", withSubject("bad", tc.status, tc.subject)).want(http.StatusUnprocessableEntity)
			if got := issues(oo); !strings.Contains(got, tc.want) {
				t.Errorf("%s: outcome\n%s\nwant %q", tc.name, got, tc.want)
			}
		}
		c.do("GET", "/QuestionnaireResponse/bad", "").want(http.StatusNotFound)

		// In progress, a response needs no subject yet.
		c.do("PUT", "/QuestionnaireResponse/draft", withSubject("draft", "in-progress", "")).want(http.StatusCreated)

		// By identifier: the Observations are the Patient's who has it,
		// and the patient's open re-measurement reminder is closed.
		c.put(`{"resourceType":"Task","id":"remeasure-nhs","status":"requested","intent":"plan","code":{"coding":[{"system":"` + care.SystemCareTask + `","code":"pam-remeasure"}]},"for":{"reference":"Patient/nhs"},"restriction":{"period":{"end":"2026-11-01"}}}`)
		c.do("PUT", "/QuestionnaireResponse/by-nhs", withSubject("by-nhs", "completed", `"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}},`)).want(http.StatusCreated)
		obs := pamObservations(t, c, "by-nhs")
		if len(obs) != 2 || str(obs["pam-score"], "subject", "reference") != "Patient/nhs" || str(obs["pam-level"], "subject", "reference") != "Patient/nhs" {
			t.Errorf("Observations of a response whose subject is an identifier: %v", obs)
		}
		if st := str(c.do("GET", "/Task/remeasure-nhs", "").want(http.StatusOK), "status"); st != "completed" {
			t.Errorf("re-measurement Task is %s after a PAM of the patient by identifier", st)
		}
		p := c.do("POST", "/QuestionnaireResponse/by-nhs/$pam-score", "").want(http.StatusOK)
		if got := paramsText(p); got != "score=50 level=2 answered=13 source=licensed" {
			t.Errorf("$pam-score: %s", got)
		}
	})
}
