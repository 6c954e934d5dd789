package server_test

import (
	"net/http"
	"testing"
)

// A client that joins the base URL and an empty path posts its Bundle to
// /fhir/; the server takes it as posted to the base.
func TestBundlePostedToBaseWithSlash(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("POST", "/", `{"resourceType":"Bundle","type":"transaction","entry":[
			{"resource":{"resourceType":"Patient","name":[{"family":"Slash"}]},"request":{"method":"POST","url":"Patient"}}]}`)
		r.want(t, http.StatusOK)
		if got := str(r.json(t), "type"); got != "transaction-response" {
			t.Errorf("type %q, want transaction-response", got)
		}
		if ids := ids(t, c.do("GET", "/Patient?family=Slash", "")); len(ids) != 1 {
			t.Errorf("Patients stored: %v, want one", ids)
		}
	})
}
