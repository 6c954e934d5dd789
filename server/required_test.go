package server_test

import (
	"net/http"
	"strings"
	"testing"

	"carefhir/server"
)

func TestRequiredProfiles(t *testing.T) {
	const (
		one = `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9990000018"}],"gender":"female"}`
		// Valid R4, but UKCore-Patient allows one NHS number.
		two = `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9990000018"},
			{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9990000026"}],"gender":"female"}`
	)
	requireUKCore := func(cfg *server.Config) {
		cfg.RequiredProfiles = map[string][]string{"Patient": {ukCorePatient}}
	}
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", one), "id")
		r := c.do("POST", "/Patient", two).want(t, http.StatusUnprocessableEntity)
		if msg := r.outcome(t, "processing", "Patient"); !strings.Contains(msg, ukCorePatient) {
			t.Errorf("the refusal does not name the profile: %q", msg)
		}
		r.outcome(t, "structure", "Patient.identifier")
		c.do("PUT", "/Patient/"+id, strings.Replace(two, `{"resourceType":"Patient",`, `{"resourceType":"Patient","id":"`+id+`",`, 1)).want(t, http.StatusUnprocessableEntity)
		if r := c.do("POST", "/Patient/$validate", two).want(t, http.StatusOK); !strings.Contains(string(r.body), `"severity":"error"`) {
			t.Errorf("$validate does not apply the required profile: %s", r.body)
		}
		// Other types are not held to it.
		c.create("Observation", `{"resourceType":"Observation","status":"final","code":{"text":"weight"}}`)
	}, withValidator(true), requireUKCore)

	// Without the requirement the same Patient is stored.
	c := newClient(t, engines[0].Open(t), withValidator(true))
	c.create("Patient", two)
}
