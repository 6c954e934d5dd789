package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"carefhir/profiles/conformance"
	"carefhir/server"
	"carefhir/store"
)

// catalogue is loaded once for the package's tests.
var catalogue = sync.OnceValues(conformance.Load)

// withDefinitions serves the bundled conformance resources.
func withDefinitions(cfg *server.Config) {
	cat, err := catalogue()
	if err != nil {
		panic(err)
	}
	cfg.Definitions = cat
}

const (
	basePatient   = "http://hl7.org/fhir/StructureDefinition/Patient"
	ukCorePatient = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"
	genderVS      = "http://hl7.org/fhir/ValueSet/administrative-gender"
	genderCS      = "http://hl7.org/fhir/administrative-gender"
)

// localProfile is a stored StructureDefinition constraining Patient.
const localProfile = `{"resourceType":"StructureDefinition","url":"http://example.org/fhir/StructureDefinition/LocalPatient",
 "name":"LocalPatient","status":"draft","kind":"resource","abstract":false,"type":"Patient",
 "baseDefinition":"http://hl7.org/fhir/StructureDefinition/Patient","derivation":"constraint"}`

func TestDefinitionsRead(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		tests := []struct {
			name, path, url string
		}{
			{"base resource", "/StructureDefinition/Patient", basePatient},
			{"UK Core profile", "/StructureDefinition/UKCore-Patient", ukCorePatient},
			{"R4 vital signs profile", "/StructureDefinition/bp", "http://hl7.org/fhir/StructureDefinition/bp"},
			{"R4 value set", "/ValueSet/administrative-gender", genderVS},
			{"R4 code system", "/CodeSystem/administrative-gender", genderCS},
			{"vread of version 1", "/StructureDefinition/UKCore-Patient/_history/1", ukCorePatient},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := c.do("GET", tt.path, "").want(t, http.StatusOK)
				res := r.json(t)
				if str(res, "url") != tt.url || str(res, "meta", "versionId") != "1" || str(res, "meta", "lastUpdated") == "" {
					t.Errorf("url %q, meta %v", str(res, "url"), get(res, "meta"))
				}
				if etag := r.header.Get("ETag"); etag != `W/"1"` {
					t.Errorf("ETag %q", etag)
				}
				c.do("GET", tt.path, "", "If-None-Match", `W/"1"`).want(t, http.StatusNotModified)
			})
		}
		sd := c.do("GET", "/StructureDefinition/Patient", "").want(t, http.StatusOK).json(t)
		if str(sd, "kind") != "resource" || get(sd, "snapshot", "element", 0) == nil {
			t.Errorf("base Patient without its snapshot: kind %q", str(sd, "kind"))
		}
		if sd := c.do("GET", "/StructureDefinition/Patient?_elements=url", "").want(t, http.StatusOK).json(t); get(sd, "snapshot") != nil || str(sd, "url") != basePatient {
			t.Errorf("_elements=url kept %v", sd)
		}
		if r := c.do("GET", "/ValueSet/administrative-gender?_format=xml", "").want(t, http.StatusOK); !strings.Contains(string(r.body), "<ValueSet") {
			t.Errorf("XML: %s", truncate(r.body))
		}
		c.do("GET", "/StructureDefinition/Patient/_history/2", "").want(t, http.StatusNotFound).outcome(t, "not-found", "")
		c.do("GET", "/StructureDefinition/NoSuchProfile", "").want(t, http.StatusNotFound)
		c.do("GET", "/Patient/Patient", "").want(t, http.StatusNotFound)
	}, withDefinitions)
}

func TestDefinitionsWrite(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("PUT", "/StructureDefinition/Patient", `{"resourceType":"StructureDefinition","id":"Patient"}`).want(t, http.StatusMethodNotAllowed)
		r.outcome(t, "not-supported", "")
		if allow := r.header.Get("Allow"); allow != "GET, HEAD" {
			t.Errorf("Allow %q", allow)
		}
		c.do("DELETE", "/ValueSet/administrative-gender", "").want(t, http.StatusMethodNotAllowed)
		c.do("GET", "/ValueSet/administrative-gender", "").want(t, http.StatusOK)

		tests := []struct {
			name, typ, body string
			status          int
		}{
			{"bundled canonical and version", "ValueSet", `{"resourceType":"ValueSet","url":"` + genderVS + `","version":"4.0.1","status":"active"}`, http.StatusUnprocessableEntity},
			{"bundled canonical without version", "ValueSet", `{"resourceType":"ValueSet","url":"` + genderVS + `","status":"active"}`, http.StatusUnprocessableEntity},
			{"bundled code system", "CodeSystem", `{"resourceType":"CodeSystem","url":"` + genderCS + `","status":"active","content":"complete"}`, http.StatusUnprocessableEntity},
			{"new version of a bundled canonical", "ValueSet", `{"resourceType":"ValueSet","url":"` + genderVS + `","version":"9.0.0","status":"draft"}`, http.StatusCreated},
			{"own definition", "StructureDefinition", localProfile, http.StatusCreated},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := c.do("POST", "/"+tt.typ, tt.body).want(t, tt.status)
				if tt.status == http.StatusUnprocessableEntity {
					r.outcome(t, "business-rule", tt.typ+".url")
				}
			})
		}
		c.do("GET", "/CodeSystem/administrative-gender", "").want(t, http.StatusOK)
	}, withDefinitions)
}

// The operations on a resource find a bundled one as a read does: $meta
// answers its meta as version 1, $validate of the instance validates, and
// $meta-add and $meta-delete are refused, as an update is, writing nothing.
func TestDefinitionsInstanceOperations(t *testing.T) {
	const path = "/ValueSet/administrative-gender"
	eachEngine(t, func(t *testing.T, c *client) {
		read := c.do("GET", path, "").want(t, http.StatusOK).json(t)
		want, _ := json.Marshal(read["meta"])
		for _, at := range []string{path + "/$meta", path + "/_history/1/$meta"} {
			m := returnedMeta(t, c.do("GET", at, "").want(t, http.StatusOK))
			if got, _ := json.Marshal(m); string(got) != string(want) {
				t.Errorf("GET %s = %s, the read's meta is %s", at, got, want)
			}
		}
		c.do("GET", path+"/_history/2/$meta", "").want(t, http.StatusNotFound).outcome(t, "not-found", "")
		for _, op := range []string{"$meta-add", "$meta-delete"} {
			c.do("POST", path+"/"+op, metaParams(`{"tag":[{"system":"http://example.org/tags","code":"a"}]}`)).
				want(t, http.StatusMethodNotAllowed).outcome(t, "not-supported", "")
		}
		after := c.do("GET", path, "").want(t, http.StatusOK).json(t)
		if got, _ := json.Marshal(after["meta"]); string(got) != string(want) {
			t.Errorf("meta after refused changes = %s, want %s", got, want)
		}
		// The store holds no version of it: the bundled one has no history.
		c.do("GET", path+"/_history", "").want(t, http.StatusNotFound)
		c.do("POST", path+"/$validate", `{"resourceType":"ValueSet","id":"administrative-gender","status":"active"}`).want(t, http.StatusOK)
	}, withDefinitions, withValidator(false))
}

func TestDefinitionsSearch(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		local := str(c.create("StructureDefinition", localProfile), "id")

		b := c.do("GET", "/StructureDefinition?url="+url.QueryEscape(ukCorePatient)+"&_total=accurate", "").searchset(t)
		if got := b.ids("match"); got != "StructureDefinition/UKCore-Patient" || b.Total == nil || *b.Total != 1 {
			t.Errorf("by url: %s, total %v", got, b.Total)
		}
		if !strings.HasSuffix(b.Entry[0].FullURL, "/fhir/StructureDefinition/UKCore-Patient") {
			t.Errorf("fullUrl %q", b.Entry[0].FullURL)
		}

		// Stored matches come first, then the bundled ones.
		all := c.do("GET", "/StructureDefinition?type=Patient&_count=100&_total=accurate", "").searchset(t)
		ids := strings.Fields(all.ids("match"))
		if len(ids) < 3 || ids[0] != "StructureDefinition/"+local || !slices.Contains(ids, "StructureDefinition/Patient") || !slices.Contains(ids, "StructureDefinition/UKCore-Patient") {
			t.Fatalf("type=Patient: %v", ids)
		}
		if all.Total == nil || *all.Total != len(ids) {
			t.Errorf("total %v, want %d", all.Total, len(ids))
		}
		// Paged one at a time, the same list.
		var paged []string
		next := "/StructureDefinition?type=Patient&_count=1"
		for next != "" && len(paged) <= len(ids) {
			p := c.do("GET", next, "").searchset(t)
			paged = append(paged, strings.Fields(p.ids("match"))...)
			next = p.link("next")
		}
		if !slices.Equal(paged, ids) {
			t.Errorf("paged %v, want %v", paged, ids)
		}

		post := c.do("POST", "/StructureDefinition/_search", "_id=Patient", "Content-Type", "application/x-www-form-urlencoded").searchset(t)
		if got := post.ids("match"); got != "StructureDefinition/Patient" {
			t.Errorf("POST _search _id=Patient: %s", got)
		}
		if got := c.do("GET", "/ValueSet?name:exact=AdministrativeGender", "").searchset(t).ids("match"); got != "ValueSet/administrative-gender" {
			t.Errorf("name:exact: %s", got)
		}
		sorted := c.do("GET", "/CodeSystem?name=administrative&_sort=-_id", "").searchset(t)
		if got := strings.Fields(sorted.ids("match")); len(got) == 0 || !slices.IsSortedFunc(got, func(x, y string) int { return strings.Compare(y, x) }) {
			t.Errorf("_sort=-_id: %v", got)
		}
		if n := c.do("GET", "/ValueSet?url="+url.QueryEscape(genderVS)+"&_summary=count", "").searchset(t).Total; n == nil || *n != 1 {
			t.Errorf("_summary=count: %v", n)
		}

		// A parameter on an element bundled resources are not indexed by.
		byPath := c.do("GET", "/StructureDefinition?path=Patient.name", "").searchset(t)
		if got := byPath.ids("match"); got != "" {
			t.Errorf("path=Patient.name matched bundled definitions: %s", got)
		}
		if byPath.ids("outcome") == "" {
			t.Errorf("no outcome entry for a parameter that skips the bundled definitions")
		}
		c.do("GET", "/StructureDefinition?_cursor=x1", "").want(t, http.StatusBadRequest).outcome(t, "invalid", "_cursor")
	}, withDefinitions)
}

// TestDefinitionsInclude: an _include by canonical url brings the bundled
// definitions named, as it brings stored ones: from a stored match and
// from a bundled one, through :iterate, once each; _revinclude goes back
// from a bundled definition to the stored and bundled ones naming it.
func TestDefinitionsInclude(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("PUT", "/StructureDefinition/local", strings.Replace(localProfile, "{", `{"id":"local",`, 1)).want(t, http.StatusCreated)
		const local = "http://example.org/fhir/StructureDefinition/LocalPatient"
		for _, tt := range []struct{ path, matches, included string }{
			{"/StructureDefinition?url=" + url.QueryEscape(local) + "&_include=StructureDefinition:base",
				"StructureDefinition/local", "StructureDefinition/Patient"},
			{"/StructureDefinition?url=" + url.QueryEscape(ukCorePatient) + "&_include=StructureDefinition:base",
				"StructureDefinition/UKCore-Patient", "StructureDefinition/Patient"},
			{"/StructureDefinition?url=" + url.QueryEscape(ukCorePatient) + "," + url.QueryEscape(local) + "&_include=StructureDefinition:base",
				"StructureDefinition/local StructureDefinition/UKCore-Patient", "StructureDefinition/Patient"},
			{"/StructureDefinition?url=" + url.QueryEscape(ukCorePatient) + "&_include:iterate=StructureDefinition:base",
				"StructureDefinition/UKCore-Patient", "StructureDefinition/Patient StructureDefinition/DomainResource StructureDefinition/Resource"},
			{"/StructureDefinition?url=" + url.QueryEscape(ukCorePatient) + "&_include=StructureDefinition:base&_summary=count", "", ""},
		} {
			b := c.do("GET", tt.path, "").searchset(t)
			if got := b.ids("match"); got != tt.matches {
				t.Errorf("GET %s: matches %q, want %q", tt.path, got, tt.matches)
			}
			if got := b.ids("include"); got != tt.included {
				t.Errorf("GET %s: includes %q, want %q", tt.path, got, tt.included)
			}
		}
		rev := c.do("GET", "/StructureDefinition?_id=Patient&_revinclude=StructureDefinition:base&_count=1000", "").searchset(t)
		got := strings.Fields(rev.ids("include"))
		if !slices.Contains(got, "StructureDefinition/local") || !slices.Contains(got, "StructureDefinition/UKCore-Patient") || slices.Contains(got, "StructureDefinition/Patient") {
			t.Errorf("_revinclude=StructureDefinition:base from Patient: %v, want the stored and the bundled profiles of Patient", got)
		}
		if len(slices.Compact(slices.Sorted(slices.Values(got)))) != len(got) {
			t.Errorf("_revinclude=StructureDefinition:base from Patient included one twice: %v", got)
		}
	}, withDefinitions)
}

// TestDefinitionsRevincludeBounded: a _revinclude from a bundled
// definition reads at most a page's worth of the stored resources naming
// its url in other versions, and says the included resources were cut,
// where it read every one of them: 1,050 stored profiles whose base is
// Patient in a version not bundled, none of which it includes. The bound
// is the server's, over the engine's paged search: on SQLite alone, as
// writing the profiles takes FerretDB minutes.
func TestDefinitionsRevincludeBounded(t *testing.T) {
	c := newClient(t, engines[0].Open(t), withDefinitions)
	ix, err := server.NewIndexer(c.base)
	if err != nil {
		t.Fatal(err)
	}
	// Written straight to the engine, 50 to a unit of work: through
	// HTTP each would be validated.
	for from := 0; from < 1050; from += 50 {
		err := c.st.Transact(t.Context(), func(tx store.Tx) error {
			for i := from; i < from+50; i++ {
				body := fmt.Sprintf(`{"resourceType":"StructureDefinition","id":"other%d","meta":{"versionId":"1","lastUpdated":"2026-01-01T00:00:00Z"},`+
					`"url":"http://example.org/fhir/StructureDefinition/other%d","name":"Other","status":"active","kind":"resource","abstract":false,"type":"Patient",`+
					`"baseDefinition":"http://hl7.org/fhir/StructureDefinition/Patient|3.0.2","derivation":"constraint"}`, i, i)
				index, err := ix.IndexJSON("StructureDefinition", []byte(body))
				if err != nil {
					return err
				}
				err = tx.Put(t.Context(), &store.Write{Type: "StructureDefinition", ID: fmt.Sprintf("other%d", i),
					LastUpdated: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), JSON: []byte(body), Index: index})
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	r := c.do("GET", "/StructureDefinition?_id=Patient&_revinclude=StructureDefinition:base&_count=1000", "")
	b := r.searchset(t)
	for _, id := range strings.Fields(b.ids("include")) {
		if strings.HasPrefix(id, "StructureDefinition/other") {
			t.Errorf("included %s, whose base names another version of Patient", id)
		}
	}
	if !strings.Contains(string(r.body), "the included resources stop at the server's bound") {
		t.Errorf("no outcome saying the included resources were cut (outcome entries %q)", b.ids("outcome"))
	}
}
