package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"carefhir/fhir"
	"carefhir/operation"
	"carefhir/server"
)

// subjectNameHook refuses an Observation coded "probe", answering with
// its subject as stored, which it reads as the server: a check that
// reports what it read.
var subjectNameHook = operation.Hook{
	Name:  "subject-name",
	Types: []string{"Observation"},
	Check: func(ctx context.Context, s operation.Store, c *operation.Change) error {
		o, ok := c.Resource.(*fhir.Observation)
		if !ok || o.Subject == nil || o.Code == nil || o.Code.Text.Get() != "probe" {
			return nil
		}
		ref := o.Subject.Reference.Get()
		v, err := s.Read(ctx, "Patient", strings.TrimPrefix(ref, "Patient/"))
		if err != nil {
			return nil
		}
		return operation.Errorf(http.StatusUnprocessableEntity, "business-rule", "Observation.subject", "%s is %s", ref, v.JSON)
	},
}

// TestRefusedWriteRunsNoHook: the access decision of a write comes before
// its hooks, so a write the token may not make is refused as such, and
// its answer holds nothing a hook read: a patient's app writing an
// Observation of another patient is 403, not the hook's outcome naming
// that patient.
func TestRefusedWriteRunsNoHook(t *testing.T) {
	who := principals{"app": {Subject: "app", Patient: "a", Scopes: mustScopes(t, "patient/*.cruds")}}
	hooked := func(cfg *server.Config) { cfg.Hooks = append(cfg.Hooks, subjectNameHook) }
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who, hooked)
			twoPatientRecords(c)
			obs := func(p string) string {
				return `{"resourceType":"Observation","status":"final","code":{"text":"probe"},"subject":{"reference":"Patient/` + p + `"}}`
			}
			for _, w := range []struct{ method, path string }{{"POST", "/Observation"}, {"PUT", "/Observation/ob"}, {"PUT", "/Observation/new"}} {
				r := c.by("app", w.method, w.path, obs("b"), "Content-Type", "application/fhir+json")
				if r.status == http.StatusUnprocessableEntity || strings.Contains(string(r.body), "Famb") {
					t.Errorf("%s %s of another patient's Observation: %d %s", w.method, w.path, r.status, r.body)
				}
			}
			r := c.by("app", "DELETE", "/Observation/ob", "")
			if r.status == http.StatusUnprocessableEntity || strings.Contains(string(r.body), "Famb") {
				t.Errorf("DELETE of another patient's Observation: %d %s", r.status, r.body)
			}
			c.by("app", "POST", "/Observation", obs("a"), "Content-Type", "application/fhir+json").
				want(t, http.StatusUnprocessableEntity).outcome(t, "business-rule", "Observation.subject")
		})
	}
}
