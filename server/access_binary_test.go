package server_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestBinarySecurityContext: under the care-team policy a Binary whose
// securityContext names a resource is read only by those who may read
// that resource, however it is read; one of another patient's answers as
// a Binary not held, and a search of Binary, which cannot be narrowed so,
// is refused.
func TestBinarySecurityContext(t *testing.T) {
	who := principals{
		"p1":      {Subject: "p1", FHIRUser: "Practitioner/p1", Scopes: mustScopes(t, "user/*.cruds")},
		"patient": {Subject: "patient", Patient: "a", Scopes: mustScopes(t, "patient/*.rs")},
	}
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := p1InTeamOfA(t, e, who)
			for _, p := range []string{"a", "b"} {
				// Patient a's letter also points to b's Binary: the link
				// does not make b's Binary a's.
				c.put("/DocumentReference/d"+p, `{"resourceType":"DocumentReference","id":"d`+p+`","status":"current","subject":{"reference":"Patient/`+p+`"},
					"content":[{"attachment":{"contentType":"text/plain","url":"Binary/b`+p+`"}},{"attachment":{"contentType":"text/plain","url":"Binary/bb"}}]}`)
				c.put("/Binary/b"+p, `{"resourceType":"Binary","id":"b`+p+`","contentType":"text/plain","securityContext":{"reference":"DocumentReference/d`+p+`"},"data":"c2VjcmV0IG9mIA=="}`)
			}
			c.put("/Binary/free", `{"resourceType":"Binary","id":"free","contentType":"text/plain","data":"bGVhZmxldA=="}`)
			p1 := func(method, path, body string, headers ...string) *response {
				return c.by("p1", method, path, body, headers...)
			}

			p1("GET", "/Binary/ba?_format=json", "").want(t, http.StatusOK)
			if r := p1("GET", "/Binary/ba", "", "Accept", "text/plain").want(t, http.StatusOK); string(r.body) != "secret of " {
				t.Errorf("raw read of the team's Binary: %q", r.body)
			}
			p1("GET", "/Binary/free", "", "Accept", "text/plain").want(t, http.StatusOK)
			for _, path := range []string{"/Binary/bb?_format=json", "/Binary/bb/_history/1?_format=json", "/Binary/bb", "/Binary/bb/_history/1"} {
				none := strings.Replace(path, "bb", "none", 1)
				notHeld := p1("GET", none, "", "Accept", "text/plain").want(t, http.StatusNotFound).outcome(t, "not-found", "")
				d := p1("GET", path, "", "Accept", "text/plain").want(t, http.StatusNotFound).outcome(t, "not-found", "")
				if strings.ReplaceAll(d, "bb", "none") != notHeld {
					t.Errorf("GET %s: %q, want the answer to a Binary not held (%q)", path, d, notHeld)
				}
			}

			p1("GET", "/Binary/bb/$meta", "").want(t, http.StatusNotFound)
			// A delete of it deletes nothing, answered as one of a Binary
			// not held.
			p1("DELETE", "/Binary/none", "").want(t, http.StatusNoContent)
			p1("DELETE", "/Binary/bb", "").want(t, http.StatusNoContent)
			c.by("admin", "GET", "/Binary/bb?_format=json", "").want(t, http.StatusOK)
			d := p1("GET", "/Binary", "").want(t, http.StatusForbidden).outcome(t, "forbidden", "")
			if !strings.Contains(d, "securityContext") {
				t.Errorf("search of Binary: %q, want the reason named", d)
			}
			for _, path := range []string{"/?_type=Binary,Patient", "/"} {
				p1("GET", path, "").want(t, http.StatusForbidden).outcome(t, "forbidden", "")
			}
			for _, path := range []string{"/Binary/_history", "/Binary/bb/_history", "/_history?_type=Binary"} {
				r := p1("GET", path, "")
				if r.status != http.StatusOK {
					continue
				}
				if _, entries, _ := historyPage(t, r); slices.Contains(entries, "Binary/bb") {
					t.Errorf("GET %s holds another patient's Binary: %v", path, entries)
				}
			}
			_, entries, _ := historyPage(t, p1("GET", "/Binary/_history", ""))
			if slices.Sort(entries); strings.Join(entries, " ") != "Binary/ba Binary/free" {
				t.Errorf("history of Binary: %v, want Binary/ba and Binary/free", entries)
			}
			ev := ids(t, p1("GET", "/Patient/a/$everything", "").want(t, http.StatusOK))
			if !slices.Contains(ev, "Binary/ba") || slices.Contains(ev, "Binary/bb") {
				t.Errorf("$everything of the team's patient: %v, want Binary/ba and not Binary/bb", ev)
			}

			// Writes: a Binary of another patient's record is refused.
			for id, doc := range map[string]string{"nb": "db", "nx": "missing"} {
				p1("PUT", "/Binary/"+id, `{"resourceType":"Binary","id":"`+id+`","contentType":"text/plain","securityContext":{"reference":"DocumentReference/`+doc+`"},"data":"eA=="}`).
					want(t, http.StatusForbidden)
				c.by("admin", "GET", "/Binary/"+id+"?_format=json", "").want(t, http.StatusNotFound)
			}
			p1("PUT", "/Binary/ba", `{"resourceType":"Binary","id":"ba","contentType":"text/plain","securityContext":{"reference":"DocumentReference/db"},"data":"eA=="}`).
				want(t, http.StatusForbidden)
			p1("PUT", "/Binary/na", `{"resourceType":"Binary","id":"na","contentType":"text/plain","securityContext":{"reference":"DocumentReference/da"},"data":"eA=="}`).
				want(t, http.StatusCreated)
			p1("PUT", "/Binary/bb", `{"resourceType":"Binary","id":"bb","contentType":"text/plain","securityContext":{"reference":"DocumentReference/da"},"data":"eA=="}`).
				want(t, http.StatusNotFound)

			// Leaving the team takes the Binary with it.
			c.put("/CareTeam/ct", `{"resourceType":"CareTeam","id":"ct","status":"inactive","subject":{"reference":"Patient/a"},"participant":[{"member":{"reference":"Practitioner/p1"}}]}`)
			p1("GET", "/Binary/ba", "").want(t, http.StatusNotFound)

			// patient/ scopes reach no Binary: it is in no compartment.
			c.by("patient", "GET", "/Binary/ba?_format=json", "").want(t, http.StatusForbidden)
		})
	}
}
