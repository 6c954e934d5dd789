package server_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/operation"
	"carefhir/server"
)

// countWrites is a write hook on Patients that counts the writes it sees.
func countWrites(n *atomic.Int64) config {
	return func(cfg *server.Config) {
		cfg.Hooks = append(cfg.Hooks, operation.Hook{Name: "count", Types: []string{"Patient"},
			After: func(context.Context, operation.Store, *operation.Change) ([]operation.Issue, error) {
				n.Add(1)
				return nil, nil
			}})
	}
}

// historyTotal returns the number of versions of typ/id.
func historyTotal(t *testing.T, c *client, typ, id string) any {
	t.Helper()
	return get(c.do("GET", "/"+typ+"/"+id+"/_history", "").want(t, http.StatusOK).json(t), "total")
}

// An update whose content is the current version's writes nothing: 200
// with the current version, its ETag and Last-Modified, no new version in
// the history, no hook run.
func TestUpdateUnchanged(t *testing.T) {
	var hooked atomic.Int64
	eachEngine(t, func(t *testing.T, c *client) {
		hooked.Store(0)
		created := c.do("POST", "/Patient", `{"resourceType":"Patient","name":[{"family":"Same","given":["Ada"]}],"gender":"female"}`).
			want(t, http.StatusCreated)
		id := str(created.json(t), "id")
		v1 := c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK)

		// The same content, its members in another order, with the
		// client's own versionId and lastUpdated, which the server sets.
		same := `{"gender":"female","resourceType":"Patient","id":"` + id + `",` +
			`"meta":{"versionId":"7","lastUpdated":"2001-01-01T00:00:00Z"},"name":[{"given":["Ada"],"family":"Same"}]}`
		r := c.do("PUT", "/Patient/"+id, same).want(t, http.StatusOK)
		if r.header.Get("ETag") != `W/"1"` || r.header.Get("Last-Modified") != v1.header.Get("Last-Modified") {
			t.Errorf("unchanged update: ETag %q Last-Modified %q, want W/\"1\" and %q",
				r.header.Get("ETag"), r.header.Get("Last-Modified"), v1.header.Get("Last-Modified"))
		}
		if string(r.body) != string(v1.body) {
			t.Errorf("unchanged update answered\n%s\nwant the current version\n%s", r.body, v1.body)
		}
		if r.header.Get("Location") != "" {
			t.Errorf("unchanged update has a Location %q", r.header.Get("Location"))
		}
		if total := historyTotal(t, c, "Patient", id); total != float64(1) {
			t.Errorf("history total %v after an unchanged update, want 1", total)
		}
		if n := hooked.Load(); n != 1 {
			t.Errorf("hook ran %d times for a create and an unchanged update, want 1", n)
		}

		// Its OperationOutcome says so.
		oo := c.do("PUT", "/Patient/"+id, same, "Prefer", "return=OperationOutcome").want(t, http.StatusOK)
		if !strings.Contains(string(oo.body), operation.UpdateNoChange) || oo.header.Get("ETag") != `W/"1"` {
			t.Errorf("return=OperationOutcome: ETag %q body %s", oo.header.Get("ETag"), oo.body)
		}

		// If-Match is still checked, before the content.
		c.do("PUT", "/Patient/"+id, same, "If-Match", `W/"1"`).want(t, http.StatusOK)
		c.do("PUT", "/Patient/"+id, same, "If-Match", `W/"2"`).want(t, http.StatusPreconditionFailed)

		// A change writes a version, and runs the hook; so does a change of
		// meta other than versionId and lastUpdated.
		changed := strings.Replace(same, `"female"`, `"other"`, 1)
		if etag := c.do("PUT", "/Patient/"+id, changed).want(t, http.StatusOK).header.Get("ETag"); etag != `W/"2"` {
			t.Errorf("changed update: ETag %q, want W/\"2\"", etag)
		}
		tagged := strings.Replace(changed, `"meta":{`, `"meta":{"tag":[{"code":"t"}],`, 1)
		if etag := c.do("PUT", "/Patient/"+id, tagged).want(t, http.StatusOK).header.Get("ETag"); etag != `W/"3"` {
			t.Errorf("update of meta.tag: ETag %q, want W/\"3\"", etag)
		}
		if total := historyTotal(t, c, "Patient", id); total != float64(3) {
			t.Errorf("history total %v, want 3", total)
		}
		if n := hooked.Load(); n != 3 {
			t.Errorf("hook ran %d times, want 3", n)
		}

		// A deleted resource written again with its old content is
		// created again.
		c.do("DELETE", "/Patient/"+id, "").want(t, http.StatusNoContent)
		c.do("PUT", "/Patient/"+id, tagged).want(t, http.StatusCreated)
		if total := historyTotal(t, c, "Patient", id); total != float64(5) {
			t.Errorf("history total %v after delete and update, want 5", total)
		}
	}, countWrites(&hooked))
}

// In a transaction or batch, an unchanged update entry answers 200 with
// the current version, and its response.outcome says it was unchanged,
// whatever the Prefer header: operation.Unchanged tells it apart.
func TestBundleUpdateUnchanged(t *testing.T) {
	var hooked atomic.Int64
	eachEngine(t, func(t *testing.T, c *client) {
		hooked.Store(0)
		for _, id := range []string{"u1", "u2"} {
			c.do("PUT", "/Patient/"+id, `{"resourceType":"Patient","id":"`+id+`","gender":"male"}`).want(t, http.StatusCreated)
		}
		for _, kind := range []string{"transaction", "batch"} {
			t.Run(kind, func(t *testing.T) {
				before := hooked.Load()
				body := txBundle(kind,
					txEntry("", "PUT", "Patient/u1", `{"resourceType":"Patient","id":"u1","gender":"male"}`),
					txEntry("", "PUT", "Patient/u2", `{"resourceType":"Patient","id":"u2","gender":"`+kind+`"}`))
				// The first post changes u2; posted again, the Bundle
				// changes nothing.
				for i, prefer := range []string{"return=representation", "return=minimal"} {
					r := c.do("POST", "", body, "Prefer", prefer).want(t, http.StatusOK)
					res, err := fhirjson.UnmarshalAs(r.body, "Bundle")
					if err != nil {
						t.Fatalf("%s: %v", prefer, err)
					}
					entries := res.(*fhir.Bundle).Entry
					if len(entries) != 2 {
						t.Fatalf("%s: %d entries", prefer, len(entries))
					}
					if got := entries[0].Response.Status.Get(); !strings.HasPrefix(got, "200") || !operation.Unchanged(entries[0]) {
						t.Errorf("%s: unchanged entry: status %q, unchanged %v", prefer, got, operation.Unchanged(entries[0]))
					}
					if got := entries[0].Response.Etag.Get(); got != `W/"1"` {
						t.Errorf("%s: unchanged entry ETag %q, want W/\"1\"", prefer, got)
					}
					if got, want := operation.Unchanged(entries[1]), i == 1; got != want {
						t.Errorf("%s: u2 unchanged %v, want %v", prefer, got, want)
					}
				}
				// The first post changed u2; the second left both as they were.
				if n := hooked.Load() - before; n != 1 {
					t.Errorf("hook ran %d times, want 1", n)
				}
			})
		}
		if total := historyTotal(t, c, "Patient", "u1"); total != float64(1) {
			t.Errorf("u1: history total %v, want 1", total)
		}
		if total := historyTotal(t, c, "Patient", "u2"); total != float64(3) {
			t.Errorf("u2: history total %v, want 3", total)
		}
	}, countWrites(&hooked))
}

// A patch whose result is the current version's content writes nothing,
// as an unchanged update does: 200 with the current version, no new
// version in the history, no hook run; in a transaction too.
func TestPatchUnchanged(t *testing.T) {
	var hooked atomic.Int64
	eachEngine(t, func(t *testing.T, c *client) {
		hooked.Store(0)
		id := str(c.create("Patient", `{"resourceType":"Patient","active":true,"name":[{"family":"Same"}]}`), "id")
		v1 := c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK)
		jsonPatch := "application/json-patch+json"
		for _, patch := range []struct{ name, contentType, body string }{
			{"empty JSON Patch", jsonPatch, `[]`},
			{"JSON Patch of meta.versionId", jsonPatch, `[{"op":"replace","path":"/meta/versionId","value":"9"}]`},
			{"JSON Patch setting a value it has", jsonPatch, `[{"op":"replace","path":"/active","value":true}]`},
			{"FHIRPath Patch setting a value it has", "application/fhir+json",
				`{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.active"},{"name":"value","valueBoolean":true}]}]}`},
		} {
			r := c.do("PATCH", "/Patient/"+id, patch.body, "Content-Type", patch.contentType).want(t, http.StatusOK)
			if r.header.Get("ETag") != `W/"1"` || string(r.body) != string(v1.body) {
				t.Errorf("%s: ETag %q, body %s; want W/\"1\" and the current version", patch.name, r.header.Get("ETag"), r.body)
			}
		}
		oo := c.do("PATCH", "/Patient/"+id, `[]`, "Content-Type", jsonPatch, "Prefer", "return=OperationOutcome").want(t, http.StatusOK)
		if !strings.Contains(string(oo.body), operation.UpdateNoChange) {
			t.Errorf("return=OperationOutcome: %s", oo.body)
		}
		tx := txBundle("transaction", `{"request":{"method":"PATCH","url":"Patient/`+id+`"},"resource":{"resourceType":"Binary","contentType":"application/json-patch+json","data":"W10="}}`)
		res, err := fhirjson.UnmarshalAs(c.do("POST", "", tx).want(t, http.StatusOK).body, "Bundle")
		if err != nil {
			t.Fatal(err)
		}
		if e := res.(*fhir.Bundle).Entry[0]; !operation.Unchanged(e) || e.Response.Etag.Get() != `W/"1"` {
			t.Errorf("transaction PATCH entry: unchanged %v, ETag %q", operation.Unchanged(e), e.Response.Etag.Get())
		}
		if total := historyTotal(t, c, "Patient", id); total != float64(1) {
			t.Errorf("history total %v after patches that change nothing, want 1", total)
		}
		if n := hooked.Load(); n != 1 {
			t.Errorf("hook ran %d times for a create and patches that change nothing, want 1", n)
		}
		// A patch that changes something writes the next version.
		c.do("PATCH", "/Patient/"+id, `[{"op":"replace","path":"/active","value":false}]`, "Content-Type", jsonPatch).want(t, http.StatusOK)
		if total := historyTotal(t, c, "Patient", id); total != float64(2) {
			t.Errorf("history total %v after a patch, want 2", total)
		}
	}, countWrites(&hooked))
}
