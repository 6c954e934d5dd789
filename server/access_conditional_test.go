package server_test

import (
	"net/http"
	"strings"
	"testing"
)

// narrowedWriters are two tokens reaching Patient a's records alone: a
// patient/ token of a, and a practitioner in a's care team under the
// care-team rule (see p1InTeamOfA).
func narrowedWriters(t *testing.T) principals {
	return principals{
		"app": {Subject: "app", Patient: "a", Scopes: mustScopes(t, "patient/*.cruds")},
		"p1":  {Subject: "p1", FHIRUser: "Practitioner/p1", Scopes: mustScopes(t, "user/*.cruds")},
	}
}

// wantObservations fails unless an unrestricted search of Observations
// with identifier finds want, so that a refused write is seen to have
// stored nothing.
func (c *accessClient) wantObservations(t *testing.T, what, identifier string, want ...string) {
	t.Helper()
	wantIDs(t, what+": Observations with identifier "+identifier, c.by("admin", "GET", "/Observation?identifier="+identifier, ""), want...)
}

// wantUnchanged fails unless Observation/ob, Patient b's, is at its first
// version as twoPatientRecords stored it.
func (c *accessClient) wantUnchanged(t *testing.T, what string) {
	t.Helper()
	ob := c.by("admin", "GET", "/Observation/ob", "").want(t, http.StatusOK).json(t)
	if str(ob, "meta", "versionId") != "1" || str(ob, "status") != "final" {
		t.Errorf("%s: the other patient's Observation changed: %v", what, ob)
	}
}

// TestConditionalWriteOutOfReach: a conditional update or create by a
// token narrowed to some patients whose criteria match a resource outside
// its reach is refused, 403 with an OperationOutcome, and stores nothing:
// it neither changes that resource nor creates a second one with its
// identifier beside it, as matching the criteria among the resources the
// token reaches alone (none) would. Criteria matching within reach behave
// as ever.
func TestConditionalWriteOutOfReach(t *testing.T) {
	const mine = `{"resourceType":"Observation","status":"final","identifier":[{"system":"urn:obs","value":"ob"}],"code":{"text":"mine"},"subject":{"reference":"Patient/a"}}`
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := p1InTeamOfA(t, e, narrowedWriters(t))
			for _, who := range []string{"app", "p1"} {
				refused := func(what string, r *response) {
					t.Helper()
					r.want(t, http.StatusForbidden)
					if d := r.outcome(t, "forbidden", ""); !strings.Contains(d, "reach") || strings.Contains(d, "Observation/ob") || strings.Contains(d, "Patient/b") {
						t.Errorf("%s %s: %q, want the match said to be out of reach, not named", who, what, d)
					}
					c.wantObservations(t, who+" "+what, "urn:obs|ob", "Observation/ob")
					c.wantUnchanged(t, who+" "+what)
				}
				refused("conditional update", c.by(who, "PUT", "/Observation?identifier=urn:obs|ob", mine))
				refused("conditional create", c.by(who, "POST", "/Observation", mine, "If-None-Exist", "identifier=urn:obs|ob"))

				// Within reach: the one match is updated, or found.
				oa := `{"resourceType":"Observation","status":"amended","identifier":[{"system":"urn:obs","value":"oa"}],"code":{"text":"x"},"subject":{"reference":"Patient/a"}}`
				c.by(who, "PUT", "/Observation?identifier=urn:obs|oa", oa).want(t, http.StatusOK)
				c.by(who, "POST", "/Observation", oa, "If-None-Exist", "identifier=urn:obs|oa").want(t, http.StatusOK)
				c.wantObservations(t, who+" within reach", "urn:obs|oa", "Observation/oa")
			}
		})
	}
}

// TestConditionalEntryOutOfReach: in a transaction, a conditional create
// (request.ifNoneExist) or update whose criteria match a resource outside
// the token's reach fails the transaction as a whole, 403, nothing of it
// stored; in a batch, its entry alone is refused. Conditional creates
// searched for together (one token parameter each) are decided alike.
func TestConditionalEntryOutOfReach(t *testing.T) {
	const (
		other  = `{"resource":{"resourceType":"Observation","status":"final","code":{"text":"other entry"},"subject":{"reference":"Patient/a"}},"request":{"method":"POST","url":"Observation"}}`
		mineOb = `{"resourceType":"Observation","status":"final","identifier":[{"system":"urn:obs","value":"ob"}],"code":{"text":"mine"},"subject":{"reference":"Patient/a"}}`
		mineOc = `{"resourceType":"Observation","status":"final","identifier":[{"system":"urn:obs","value":"oc"}],"code":{"text":"mine"},"subject":{"reference":"Patient/a"}}`
	)
	bundle := func(typ string, entries ...string) string {
		return `{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(entries, ",") + `]}`
	}
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := p1InTeamOfA(t, e, narrowedWriters(t))
			for _, who := range []string{"app", "p1"} {
				for _, tc := range []struct{ what, entries string }{
					{"conditional update", other + `,{"resource":` + mineOb + `,"request":{"method":"PUT","url":"Observation?identifier=urn:obs|ob"}}`},
					{"conditional create", other + `,{"resource":` + mineOb + `,"request":{"method":"POST","url":"Observation","ifNoneExist":"identifier=urn:obs|ob"}}`},
					{"conditional creates searched together", other +
						`,{"resource":` + mineOc + `,"request":{"method":"POST","url":"Observation","ifNoneExist":"identifier=urn:obs|oc"}}` +
						`,{"resource":` + mineOb + `,"request":{"method":"POST","url":"Observation","ifNoneExist":"identifier=urn:obs|ob"}}`},
				} {
					r := c.by(who, "POST", "", bundle("transaction", tc.entries)).want(t, http.StatusForbidden)
					if d := r.outcome(t, "forbidden", ""); !strings.Contains(d, "reach") {
						t.Errorf("%s transaction %s: %q, want the match said to be out of reach", who, tc.what, d)
					}
					c.wantObservations(t, who+" transaction "+tc.what, "urn:obs|ob", "Observation/ob")
					c.wantObservations(t, who+" transaction "+tc.what, "urn:obs|oc")
					wantIDs(t, who+" transaction "+tc.what+": the other entry", c.by("admin", "GET", "/Observation?code:text=other%20entry", ""))
					c.wantUnchanged(t, who+" transaction "+tc.what)
				}
				r := c.by(who, "POST", "", bundle("batch",
					`{"resource":`+mineOb+`,"request":{"method":"POST","url":"Observation","ifNoneExist":"identifier=urn:obs|ob"}}`,
					`{"resource":`+mineOb+`,"request":{"method":"PUT","url":"Observation?identifier=urn:obs|ob"}}`)).want(t, http.StatusOK).json(t)
				for i := range 2 {
					if got := str(r, "entry", i, "response", "status"); !strings.HasPrefix(got, "403") {
						t.Errorf("%s batch entry %d: %s, want 403", who, i, got)
					}
				}
				c.wantObservations(t, who+" batch", "urn:obs|ob", "Observation/ob")
				c.wantUnchanged(t, who+" batch")
			}
		})
	}
}

// TestConditionalDeletePatchOutOfReach: a conditional delete or patch by a
// token narrowed to some patients whose criteria match only a resource
// outside its reach finds nothing, as a delete or a patch of its id does:
// the delete answers 204 and the patch 404, and the resource is left as it
// was.
func TestConditionalDeletePatchOutOfReach(t *testing.T) {
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := p1InTeamOfA(t, e, narrowedWriters(t))
			for _, who := range []string{"app", "p1"} {
				c.by(who, "DELETE", "/Observation?identifier=urn:obs|ob", "").want(t, http.StatusNoContent)
				c.by(who, "PATCH", "/Observation?identifier=urn:obs|ob", `[{"op":"replace","path":"/status","value":"amended"}]`,
					"Content-Type", "application/json-patch+json").want(t, http.StatusNotFound)
				c.wantUnchanged(t, who)
			}
		})
	}
}
