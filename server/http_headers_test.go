package server_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"carefhir/fhir/fhirjson"
	"carefhir/fhir/fhirxml"
	"carefhir/server"
)

// The tests in this file are the curl-style checks of the compatibility
// suite (docs/clients.md): each sends the raw request a client would send
// with the headers and parameters of the FHIR R4 RESTful API page
// (http.html) and checks the status, headers and body it gets back.

const headersPatient = `{"resourceType":"Patient","identifier":[{"system":"https://example.org/mrn","value":"h-1"}],"name":[{"family":"Header"}]}`

func TestHTTPPrefer(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		// return=minimal: headers only, no body.
		r := c.do("POST", "/Patient", headersPatient, "Prefer", "return=minimal").want(t, http.StatusCreated)
		if len(r.body) != 0 {
			t.Errorf("return=minimal: body %q, want none", truncate(r.body))
		}
		loc := r.header.Get("Location")
		if !strings.Contains(loc, "/Patient/") || !strings.HasSuffix(loc, "/_history/1") {
			t.Errorf("Location %q, want …/Patient/id/_history/1", loc)
		}
		if et := r.header.Get("ETag"); et != `W/"1"` {
			t.Errorf("ETag %q, want W/\"1\"", et)
		}
		if r.header.Get("Last-Modified") == "" {
			t.Error("no Last-Modified")
		}
		// return=representation: the resource as stored.
		r = c.do("POST", "/Patient", headersPatient, "Prefer", "return=representation").want(t, http.StatusCreated)
		if m := r.json(t); m["resourceType"] != "Patient" || m["id"] == nil {
			t.Errorf("return=representation: body %s", truncate(r.body))
		}
		// return=OperationOutcome: an outcome instead of the resource.
		r = c.do("POST", "/Patient", headersPatient, "Prefer", "return=OperationOutcome").want(t, http.StatusCreated)
		if m := r.json(t); m["resourceType"] != "OperationOutcome" {
			t.Errorf("return=OperationOutcome: body %s", truncate(r.body))
		}
		// A preference keeps its value when RFC 7240 parameters follow it.
		r = c.do("POST", "/Patient", headersPatient, "Prefer", "return=minimal; charset=utf-8").want(t, http.StatusCreated)
		if len(r.body) != 0 {
			t.Errorf("return=minimal with a parameter: body %q, want none", truncate(r.body))
		}
		c.do("GET", "/Patient?shoe-size=9", "", "Prefer", "handling=strict;x=1, return=minimal").want(t, http.StatusBadRequest).outcome(t, "", "shoe-size")
	})
}

func TestHTTPIfNoneExist(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		cond := "identifier=https://example.org/mrn|h-1"
		first := c.do("POST", "/Patient", headersPatient, "If-None-Exist", cond).want(t, http.StatusCreated).json(t)
		// One match: the create is ignored and the match returned with 200.
		second := c.do("POST", "/Patient", headersPatient, "If-None-Exist", cond).want(t, http.StatusOK).json(t)
		if first["id"] != second["id"] {
			t.Errorf("ids %v and %v, want the same", first["id"], second["id"])
		}
		// Its headers are those the create would have had, Location too,
		// whatever body Prefer asks for.
		for _, ret := range []string{"representation", "minimal", "OperationOutcome"} {
			r := c.do("POST", "/Patient", headersPatient, "If-None-Exist", cond, "Prefer", "return="+ret).want(t, http.StatusOK)
			if loc := r.header.Get("Location"); !strings.HasSuffix(loc, "/Patient/"+first["id"].(string)+"/_history/1") {
				t.Errorf("return=%s: Location %q, want …/Patient/%v/_history/1", ret, loc, first["id"])
			}
			if et := r.header.Get("ETag"); et != `W/"1"` {
				t.Errorf("return=%s: ETag %q, want W/\"1\"", ret, et)
			}
		}
		// Several matches: 412 Precondition Failed, and nothing stored.
		c.create("Patient", headersPatient)
		c.do("POST", "/Patient", headersPatient, "If-None-Exist", cond).want(t, http.StatusPreconditionFailed).outcome(t, "", "")
		if b := c.do("GET", "/Patient?identifier=https://example.org/mrn|h-1&_summary=count", "").want(t, 200).json(t); b["total"] != float64(2) {
			t.Errorf("total %v after the refused create, want 2", b["total"])
		}
	})
}

// TestHTTPIfNoneExistOnlyOnCreate: If-None-Exist, which R4 defines for a
// create alone, is 400 on an update, a conditional update, a patch and a
// delete, and nothing changes, as a transaction entry's ifNoneExist is:
// ignored, a PUT sent with it wrote whatever the criteria matched.
func TestHTTPIfNoneExistOnlyOnCreate(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := c.create("Patient", headersPatient)["id"].(string)
		cond := "identifier=https://example.org/mrn|h-1"
		body := strings.Replace(headersPatient, `{"resourceType":"Patient",`, `{"resourceType":"Patient","id":"`+id+`","active":true,`, 1)
		c.do("PUT", "/Patient/"+id, body, "If-None-Exist", cond).want(t, http.StatusBadRequest).outcome(t, "not-supported", "")
		c.do("PUT", "/Patient/other", strings.Replace(body, id, "other", 1), "If-None-Exist", cond).want(t, http.StatusBadRequest)
		c.do("PUT", "/Patient?"+cond, strings.Replace(body, `"id":"`+id+`",`, "", 1), "If-None-Exist", cond).want(t, http.StatusBadRequest)
		c.do("PATCH", "/Patient/"+id, `[{"op":"add","path":"/active","value":true}]`, "Content-Type", "application/json-patch+json", "If-None-Exist", cond).want(t, http.StatusBadRequest)
		c.do("DELETE", "/Patient/"+id, "", "If-None-Exist", cond).want(t, http.StatusBadRequest)
		c.do("DELETE", "/Patient?"+cond, "", "If-None-Exist", cond).want(t, http.StatusBadRequest)
		if et := c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK).header.Get("ETag"); et != `W/"1"` {
			t.Errorf("ETag %q after the refused writes, want W/\"1\"", et)
		}
		c.do("GET", "/Patient/other", "").want(t, http.StatusNotFound)
	})
}

// TestHTTPCreateRefusesVersionPreconditions: a create (POST [type]) sent
// with If-Match or If-None-Match is 400 and stores nothing, as a POST
// entry's request.ifMatch and ifNoneMatch are: a client that meant a
// version-aware update got a second resource.
func TestHTTPCreateRefusesVersionPreconditions(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		read := c.create("Patient", headersPatient)
		body := strings.Replace(headersPatient, `{"resourceType":"Patient",`, `{"resourceType":"Patient","id":"`+read["id"].(string)+`","active":true,`, 1)
		for _, h := range []string{"If-Match", "If-None-Match"} {
			c.do("POST", "/Patient", body, h, `W/"1"`).want(t, http.StatusBadRequest).outcome(t, "not-supported", "")
		}
		if b := c.do("GET", "/Patient?_summary=count", "").want(t, http.StatusOK).json(t); b["total"] != float64(1) {
			t.Errorf("total %v after the refused creates, want 1", b["total"])
		}
	})
}

func TestHTTPIfMatch(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		p := c.create("Patient", headersPatient)
		id := p["id"].(string)
		body := strings.Replace(headersPatient, `{"resourceType":"Patient",`, `{"resourceType":"Patient","id":"`+id+`","active":true,`, 1)
		// The current version: the update goes through.
		r := c.do("PUT", "/Patient/"+id, body, "If-Match", `W/"1"`).want(t, http.StatusOK)
		if et := r.header.Get("ETag"); et != `W/"2"` {
			t.Errorf("ETag %q after the update, want W/\"2\"", et)
		}
		// A stale version: 409 or 412 (the spec allows either); 412 here.
		c.do("PUT", "/Patient/"+id, body, "If-Match", `W/"1"`).want(t, http.StatusPreconditionFailed).outcome(t, "", "")
		c.do("DELETE", "/Patient/"+id, "", "If-Match", `W/"1"`).want(t, http.StatusPreconditionFailed)
		if et := c.do("GET", "/Patient/"+id, "").want(t, 200).header.Get("ETag"); et != `W/"2"` {
			t.Errorf("ETag %q after refused writes, want W/\"2\"", et)
		}
		// Conditional reads with the ETag: 304 without a body.
		if r := c.do("GET", "/Patient/"+id, "", "If-None-Match", `W/"2"`).want(t, http.StatusNotModified); len(r.body) != 0 {
			t.Errorf("304 with a body: %s", truncate(r.body))
		}
		c.do("GET", "/Patient/"+id, "", "If-None-Match", `W/"1"`).want(t, http.StatusOK)
	})
}

// TestHTTPReadIfMatch: a read or vread with If-Match is 412 with an
// OperationOutcome when no version it names is the one read, and the
// resource otherwise (RFC 9110 section 13.1.1); one with
// If-Unmodified-Since is 412 when the version was last updated after it
// (section 13.1.4), a date that is no HTTP-date being ignored, as is
// If-Unmodified-Since beside If-Match.
func TestHTTPReadIfMatch(t *testing.T) {
	past := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	eachEngine(t, func(t *testing.T, c *client) {
		id := c.create("Patient", headersPatient)["id"].(string)
		body := strings.Replace(headersPatient, `{"resourceType":"Patient",`, `{"resourceType":"Patient","id":"`+id+`","active":true,`, 1)
		c.do("PUT", "/Patient/"+id, body).want(t, http.StatusOK)
		tests := []struct {
			name, path string
			headers    []string
			status     int
		}{
			{"current version", "/Patient/" + id, []string{"If-Match", `W/"2"`}, 200},
			{"one of a list", "/Patient/" + id, []string{"If-Match", `W/"1", W/"2"`}, 200},
			{"any version", "/Patient/" + id, []string{"If-Match", "*"}, 200},
			{"stale version", "/Patient/" + id, []string{"If-Match", `W/"1"`}, 412},
			{"vread of the version named", "/Patient/" + id + "/_history/1", []string{"If-Match", `W/"1"`}, 200},
			{"vread of another version", "/Patient/" + id + "/_history/1", []string{"If-Match", `W/"2"`}, 412},
			{"If-Match before If-None-Match", "/Patient/" + id, []string{"If-Match", `W/"1"`, "If-None-Match", `W/"2"`}, 412},
			{"not an ETag", "/Patient/" + id, []string{"If-Match", "soon"}, 400},
			{"unmodified since", "/Patient/" + id, []string{"If-Unmodified-Since", future}, 200},
			{"modified since", "/Patient/" + id, []string{"If-Unmodified-Since", past}, 412},
			{"vread modified since", "/Patient/" + id + "/_history/1", []string{"If-Unmodified-Since", past}, 412},
			{"not a date", "/Patient/" + id, []string{"If-Unmodified-Since", "yesterday"}, 200},
			{"If-Match wins over If-Unmodified-Since", "/Patient/" + id, []string{"If-Match", `W/"2"`, "If-Unmodified-Since", past}, 200},
			{"missing resource", "/Patient/nope", []string{"If-Match", `W/"1"`}, 404},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := c.do("GET", tt.path, "", tt.headers...).want(t, tt.status)
				switch tt.status {
				case 200:
					if str(r.json(t), "id") != id {
						t.Errorf("read answered %s", truncate(r.body))
					}
				case 412:
					r.outcome(t, "conflict", "")
				case 400:
					r.outcome(t, "invalid", "")
				}
			})
		}
	})
}

// TestHTTPSearchIfMatch: a search with If-Match is 400 with an
// OperationOutcome, as a search entry's request.ifMatch is: a search has
// no version to match, and the header was ignored. If-Unmodified-Since
// (RFC 9110 section 13.1.4: a resource with no modification date) and
// If-None-Match (which caches send) are left ignored.
func TestHTTPSearchIfMatch(t *testing.T) {
	past := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	eachEngine(t, func(t *testing.T, c *client) {
		id := c.create("Patient", headersPatient)["id"].(string)
		form := []string{"Content-Type", "application/x-www-form-urlencoded"}
		for _, tt := range []struct {
			name, method, path, body string
			headers                  []string
		}{
			{"type", "GET", "/Patient?_id=" + id, "", nil},
			{"HEAD", "HEAD", "/Patient?_id=" + id, "", nil},
			{"POST _search", "POST", "/Patient/_search", "_id=" + id, form},
			{"system", "GET", "?_type=Patient", "", nil},
			{"compartment", "GET", "/Patient/" + id + "/Observation", "", nil},
			{"compartment, every type", "GET", "/Patient/" + id + "/*", "", nil},
			{"definitions", "GET", "/StructureDefinition?name=Patient", "", nil},
		} {
			t.Run(tt.name, func(t *testing.T) {
				r := c.do(tt.method, tt.path, tt.body, append([]string{"If-Match", `W/"1"`}, tt.headers...)...).want(t, http.StatusBadRequest)
				if tt.method == "HEAD" {
					return
				}
				if d := r.outcome(t, "invalid", ""); !strings.Contains(d, "If-Match") || !strings.Contains(d, "not a search") {
					t.Errorf("diagnostics %q", d)
				}
			})
		}
		for _, h := range [][]string{{"If-Unmodified-Since", past}, {"If-None-Match", `W/"1"`}} {
			set := c.do("GET", "/Patient?_id="+id, "", h...).want(t, http.StatusOK).json(t)
			if len(list(get(set, "entry"))) != 1 {
				t.Errorf("%s: %v", h[0], set)
			}
		}
	})
}

// TestHTTPIfUnmodifiedSince: an update, patch or delete with
// If-Unmodified-Since before the resource was last updated is 412 with an
// OperationOutcome and changes nothing (RFC 9110 section 13.1.4); with a
// later date it is made. If-Match, when sent too, decides alone.
func TestHTTPIfUnmodifiedSince(t *testing.T) {
	past := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	const addActive = `[{"op":"add","path":"/active","value":true}]`
	eachEngine(t, func(t *testing.T, c *client) {
		id := c.create("Patient", headersPatient)["id"].(string)
		body := strings.Replace(headersPatient, `{"resourceType":"Patient",`, `{"resourceType":"Patient","id":"`+id+`","gender":"other",`, 1)
		c.do("PUT", "/Patient/"+id, body, "If-Unmodified-Since", past).want(t, http.StatusPreconditionFailed).outcome(t, "conflict", "")
		c.do("PATCH", "/Patient/"+id, addActive, "Content-Type", jsonPatch, "If-Unmodified-Since", past).want(t, http.StatusPreconditionFailed).outcome(t, "conflict", "")
		c.do("PATCH", "/Patient?_id="+id, addActive, "Content-Type", jsonPatch, "If-Unmodified-Since", past).want(t, http.StatusPreconditionFailed).outcome(t, "conflict", "")
		c.do("DELETE", "/Patient/"+id, "", "If-Unmodified-Since", past).want(t, http.StatusPreconditionFailed).outcome(t, "conflict", "")
		c.do("DELETE", "/Patient?_id="+id, "", "If-Unmodified-Since", past).want(t, http.StatusPreconditionFailed).outcome(t, "conflict", "")
		r := c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK)
		if p := r.json(t); r.header.Get("ETag") != `W/"1"` || get(p, "active") != nil || get(p, "gender") != nil {
			t.Fatalf("after refused writes: ETag %s, %s", r.header.Get("ETag"), truncate(r.body))
		}

		c.do("PUT", "/Patient/"+id, body, "If-Unmodified-Since", future).want(t, http.StatusOK)
		c.do("PATCH", "/Patient/"+id, addActive, "Content-Type", jsonPatch, "If-Unmodified-Since", future).want(t, http.StatusOK)
		c.do("PATCH", "/Patient/"+id, `[{"op":"remove","path":"/active"}]`, "Content-Type", jsonPatch, "If-Match", `W/"3"`, "If-Unmodified-Since", past).want(t, http.StatusOK)
		c.do("DELETE", "/Patient/"+id, "", "If-Unmodified-Since", future).want(t, http.StatusNoContent)
		c.do("GET", "/Patient/"+id, "").want(t, http.StatusGone)
		// A resource with no current version has no modification date.
		c.do("PUT", "/Patient/"+id, body, "If-Unmodified-Since", past).want(t, http.StatusCreated)
	})
}

func TestHTTPIfNoneMatchUpdate(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		body := func(family string) string {
			return `{"resourceType":"Patient","id":"inm","name":[{"family":"` + family + `"}]}`
		}
		// * creates the resource with the client's id, and never replaces it.
		c.do("PUT", "/Patient/inm", body("First"), "If-None-Match", "*").want(t, http.StatusCreated)
		c.do("PUT", "/Patient/inm", body("Second"), "If-None-Match", "*").want(t, http.StatusPreconditionFailed).outcome(t, "conflict", "")
		// A list of ETags: the current version among them is 412.
		c.do("PUT", "/Patient/inm", body("Second"), "If-None-Match", `W/"3", W/"1"`).want(t, http.StatusPreconditionFailed)
		c.do("PUT", "/Patient/inm", body("Second"), "If-None-Match", "soon").want(t, http.StatusBadRequest).outcome(t, "invalid", "")
		r := c.do("GET", "/Patient/inm", "").want(t, http.StatusOK)
		if et, family := r.header.Get("ETag"), str(r.json(t), "name", 0, "family"); et != `W/"1"` || family != "First" {
			t.Fatalf("after refused updates: ETag %s, family %q; want W/\"1\", First", et, family)
		}
		// A write that does not take If-None-Match refuses it, not ignores it.
		c.do("DELETE", "/Patient/inm", "", "If-None-Match", "*").want(t, http.StatusBadRequest).outcome(t, "not-supported", "")
		c.do("DELETE", "/Patient?_id=inm", "", "If-None-Match", "*").want(t, http.StatusBadRequest)
		c.do("PATCH", "/Patient/inm", `[{"op":"add","path":"/active","value":true}]`, "Content-Type", "application/json-patch+json", "If-None-Match", `W/"1"`).want(t, http.StatusBadRequest)
		c.do("PUT", "/Patient?_id=inm", body("Second"), "If-None-Match", "*").want(t, http.StatusBadRequest)
		c.do("GET", "/Patient/inm", "").want(t, http.StatusOK)
		c.do("PUT", "/Patient/inm", body("Second"), "If-None-Match", `W/"3"`).want(t, http.StatusOK)
		// A deleted resource has no current version: * recreates it.
		c.do("DELETE", "/Patient/inm", "").want(t, http.StatusNoContent)
		if et := c.do("PUT", "/Patient/inm", body("Third"), "If-None-Match", "*").want(t, http.StatusCreated).header.Get("ETag"); et != `W/"4"` {
			t.Errorf("ETag %s after recreating, want W/\"4\"", et)
		}
	})
}

func TestHTTPFormats(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := c.create("Patient", headersPatient)["id"].(string)
		path := "/Patient/" + id
		cases := []struct {
			name, query, accept string
			wantType            string // media type of the response
			xml                 bool
		}{
			{"no Accept", "", "", "application/fhir+json", false},
			{"Accept fhir+json", "", "application/fhir+json", "application/fhir+json", false},
			{"Accept json+fhir (DSTU2 type)", "", "application/json+fhir", "application/fhir+json", false},
			{"Accept json", "", "application/json", "application/json", false},
			{"Accept with fhirVersion", "", "application/fhir+json; fhirVersion=4.0", "application/fhir+json", false},
			{"Accept fhir+xml", "", "application/fhir+xml", "application/fhir+xml", true},
			{"Accept xml", "", "application/xml", "application/xml", true},
			{"Accept xml+fhir (DSTU2 type)", "", "application/xml+fhir", "application/fhir+xml", true},
			{"Accept browser", "", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "application/xml", true},
			{"Accept weighted for XML", "", "application/fhir+json;q=0.5, application/fhir+xml", "application/fhir+xml", true},
			{"Accept weighted for JSON", "", "application/fhir+xml;q=0.8, text/html, application/fhir+json;q=0.9", "application/fhir+json", false},
			{"Accept of equal weights", "", "application/fhir+xml;q=0.7, application/fhir+json;q=0.7", "application/fhir+xml", true},
			{"Accept with a weight that is not one", "", "application/fhir+xml;q=high", "application/fhir+xml", true},
			// A range stands for the types it covers but those refused by name.
			{"Accept refusing fhir+json beside */*", "", "application/fhir+json;q=0, */*", "application/fhir+xml", true},
			{"Accept refusing fhir+json after application/*", "", "application/*;q=0.5, application/fhir+json;q=0", "application/fhir+xml", true},
			{"_format json", "?_format=json", "application/fhir+xml", "application/fhir+json", false},
			{"_format xml", "?_format=xml", "application/fhir+json", "application/fhir+xml", true},
			{"_format mime", "?_format=application/fhir%2Bxml", "", "application/fhir+xml", true},
			// FHIR clients send the "+" unencoded, which a query decodes as a space.
			{"_format mime with a literal +, JSON", "?_format=application/fhir+json", "application/fhir+xml", "application/fhir+json", false},
			{"_format mime with a literal +, XML", "?_format=application/fhir+xml", "", "application/fhir+xml", true},
			{"_format DSTU2 mime with a literal +", "?_format=application/xml+fhir", "", "application/fhir+xml", true},
		}
		for _, tc := range cases {
			var r *response
			if tc.accept != "" {
				r = c.do("GET", path+tc.query, "", "Accept", tc.accept)
			} else {
				r = c.do("GET", path+tc.query, "")
			}
			if r.status != http.StatusOK {
				t.Errorf("%s: status %d: %s", tc.name, r.status, truncate(r.body))
				continue
			}
			ct := r.header.Get("Content-Type")
			if !strings.HasPrefix(ct, tc.wantType) || !strings.Contains(strings.ToLower(ct), "charset=utf-8") {
				t.Errorf("%s: Content-Type %q, want %s; charset=utf-8", tc.name, ct, tc.wantType)
			}
			if tc.xml && !bytes.HasPrefix(bytes.TrimSpace(r.body), []byte("<")) || !tc.xml && !bytes.HasPrefix(r.body, []byte("{")) {
				t.Errorf("%s: body %s", tc.name, truncate(r.body))
			}
		}
		// No format the server writes: 406 with an OperationOutcome.
		c.do("GET", path, "", "Accept", "text/plain").want(t, http.StatusNotAcceptable).outcome(t, "not-supported", "")
		c.do("GET", path+"?_format=text/turtle", "").want(t, http.StatusNotAcceptable)
		// The media type read from a literal "+" applies to searches too.
		if r := c.do("GET", "/Patient?_id="+id+"&_format=application/fhir+xml", "").want(t, http.StatusOK); !strings.HasPrefix(r.header.Get("Content-Type"), "application/fhir+xml") {
			t.Errorf("search with _format=application/fhir+xml: Content-Type %q", r.header.Get("Content-Type"))
		}
		c.do("GET", path+"?_format=application/fhir+turtle", "").want(t, http.StatusNotAcceptable).outcome(t, "not-supported", "_format")

		// _pretty: indented only when asked for.
		if r := c.do("GET", path+"?_pretty=true", "").want(t, 200); !bytes.Contains(r.body, []byte("\n  ")) {
			t.Errorf("_pretty=true: body not indented: %s", truncate(r.body))
		}
		if r := c.do("GET", path+"?_pretty=false", "").want(t, 200); bytes.Contains(r.body, []byte("\n")) {
			t.Errorf("_pretty=false: body indented: %s", truncate(r.body))
		}
		// XML too, each element on its line, reading back as the same
		// resource; the narrative is left as it is (fhirxml's tests).
		plain := c.do("GET", path+"?_format=xml", "").want(t, 200)
		pretty := c.do("GET", path+"?_format=xml&_pretty=true", "").want(t, 200)
		if bytes.Contains(plain.body, []byte("\n")) || !bytes.Contains(pretty.body, []byte(">\n  <")) {
			t.Errorf("_format=xml: %s\n_format=xml&_pretty=true: %s", truncate(plain.body), truncate(pretty.body))
		}
		a, errA := fhirxml.Unmarshal(plain.body)
		b, errB := fhirxml.Unmarshal(pretty.body)
		ja, _ := fhirjson.Marshal(a)
		jb, _ := fhirjson.Marshal(b)
		if errA != nil || errB != nil || !bytes.Equal(ja, jb) {
			t.Errorf("the indented XML is another resource (%v, %v):\n%s\n%s", errA, errB, ja, jb)
		}
	})
}

func TestHTTPRequestBodyTypes(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		for _, ct := range []string{"application/fhir+json", "application/fhir+json; charset=utf-8", "application/json", "application/json+fhir"} {
			c.do("POST", "/Patient", headersPatient, "Content-Type", ct).want(t, http.StatusCreated)
		}
		xml := `<Patient xmlns="http://hl7.org/fhir"><name><family value="Xml"/></name></Patient>`
		for _, ct := range []string{"application/fhir+xml", "application/xml", "application/xml+fhir"} {
			r := c.do("POST", "/Patient", xml, "Content-Type", ct, "Accept", "application/fhir+json").want(t, http.StatusCreated)
			if !bytes.Contains(r.body, []byte(`"family":"Xml"`)) {
				t.Errorf("%s: body %s", ct, truncate(r.body))
			}
		}
		// A body in a format the server does not read: 415.
		c.do("POST", "/Patient", "family=Text", "Content-Type", "text/plain").want(t, http.StatusUnsupportedMediaType).outcome(t, "not-supported", "")
	})
}

// TestHTTPContentLength checks that every body is sent with its length,
// large ones included, whatever its format, rather than in chunks.
func TestHTTPContentLength(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := c.create("Patient", headersPatient)["id"].(string)
		for range 30 {
			c.create("Patient", headersPatient)
		}
		for _, path := range []string{
			"/metadata",
			"/metadata?_format=xml",
			"/Patient?_count=50",
			"/Patient?_count=50&_pretty=true",
			"/Patient/" + id,
			"/Patient/" + id + "?_format=xml",
			"/Patient/no-such-patient",
		} {
			// As sent (net/http's client would ask for gzip, and decompress).
			r := c.do("GET", path, "", "Accept-Encoding", "identity")
			if len(r.body) == 0 {
				t.Errorf("GET %s: no body", path)
			}
			if got := r.header.Get("Content-Length"); got != strconv.Itoa(len(r.body)) {
				t.Errorf("GET %s: Content-Length %q for a body of %d bytes", path, got, len(r.body))
			}
		}
	})
}

// TestHTTPHead checks that every GET of the API answers HEAD too (RFC
// 9110, section 9.3.2): the status and headers of the GET, Content-Length
// and ETag included, and no body.
func TestHTTPHead(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := c.create("Patient", headersPatient)["id"].(string)
		c.create("Observation", `{"resourceType":"Observation","status":"final","code":{"text":"weight"},"subject":{"reference":"Patient/`+id+`"}}`)
		// Answers whose bytes do not change between two requests: the
		// HEAD's Content-Length is the GET's body's length.
		for _, path := range []string{
			"/Patient/" + id,
			"/Patient/" + id + "?_format=xml",
			"/Patient/" + id + "/_history/1",
			"/metadata",
			"/$versions",
			"/Patient/no-such-patient",
			"/Unicorn",
		} {
			g := c.do("GET", path, "", "Accept-Encoding", "identity")
			h := c.do("HEAD", path, "", "Accept-Encoding", "identity")
			if h.status != g.status {
				t.Errorf("HEAD %s: status %d, GET's %d", path, h.status, g.status)
			}
			if len(h.body) != 0 {
				t.Errorf("HEAD %s: a body of %d bytes", path, len(h.body))
			}
			for _, name := range []string{"Content-Type", "Content-Length", "ETag", "Last-Modified"} {
				if h.header.Get(name) != g.header.Get(name) {
					t.Errorf("HEAD %s: %s %q, GET's %q", path, name, h.header.Get(name), g.header.Get(name))
				}
			}
		}
		// Searches and histories: a Bundle made for each request (its id and
		// time differ), so the status and a length are what is compared.
		for _, path := range []string{
			"/Patient?family=Header",
			"/Patient/" + id + "/Observation",
			"/Patient/" + id + "/$everything",
			"/Patient/" + id + "/_history",
			"/Patient/_history",
			"/_history",
			"/?_type=Patient",
			"",
		} {
			h := c.do("HEAD", path, "").want(t, http.StatusOK)
			if len(h.body) != 0 {
				t.Errorf("HEAD %s: a body of %d bytes", path, len(h.body))
			}
			if n, err := strconv.Atoi(h.header.Get("Content-Length")); err != nil || n == 0 {
				t.Errorf("HEAD %s: Content-Length %q", path, h.header.Get("Content-Length"))
			}
		}
		// A HEAD is a read: it changes nothing, and what a GET may not do, it
		// may not either.
		c.do("HEAD", "/Patient?birthdate=notadate", "").want(t, http.StatusBadRequest)
		if v := c.do("GET", "/Patient/"+id, "").want(t, 200).header.Get("ETag"); v != `W/"1"` {
			t.Errorf("ETag %q after HEADs, want W/\"1\"", v)
		}
	})
}

// TestHTTPFHIRVersion checks the fhirVersion parameter of the media types
// (https://hl7.org/fhir/R4/http.html#version-parameter) and $versions: a
// client naming a version other than R4's 4.0 gets 406 for what it accepts
// and 415 for what it sends, rather than R4 content it would read as its
// own version.
func TestHTTPFHIRVersion(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := c.create("Patient", headersPatient)["id"].(string)
		path := "/Patient/" + id
		for _, accept := range []string{
			"application/fhir+json; fhirVersion=4.0",
			"application/fhir+json; fhirVersion=4.0.1",
			"application/fhir+json; fhirVersion=3.0, application/fhir+json; fhirVersion=4.0",
			"application/fhir+xml; fhirVersion=3.0, application/json",
		} {
			c.do("GET", path, "", "Accept", accept).want(t, http.StatusOK).json(t)
		}
		for _, accept := range []string{
			"application/fhir+json; fhirVersion=3.0",
			"application/fhir+xml; fhirVersion=5.0",
			"application/fhir+json; fhirVersion=3.0, application/fhir+xml; fhirVersion=1.0",
		} {
			r := c.do("GET", path, "", "Accept", accept).want(t, http.StatusNotAcceptable)
			if d := r.outcome(t, "not-supported", ""); !strings.Contains(d, "is not served here") {
				t.Errorf("Accept %q: diagnostics %q", accept, d)
			}
		}
		c.do("GET", path+"?_format="+url.QueryEscape("json;fhirVersion=3.0"), "").want(t, http.StatusNotAcceptable).outcome(t, "not-supported", "_format")
		c.do("GET", path+"?_format="+url.QueryEscape("json;fhirVersion=4.0"), "").want(t, http.StatusOK)

		// A body in another version is refused, and nothing is stored.
		stu3 := `{"resourceType":"Patient","identifier":[{"system":"https://example.org/mrn","value":"stu3"}]}`
		c.do("POST", "/Patient", stu3, "Content-Type", "application/fhir+json; fhirVersion=3.0").want(t, http.StatusUnsupportedMediaType).outcome(t, "not-supported", "")
		c.do("PUT", path, strings.Replace(stu3, `"Patient",`, `"Patient","id":"`+id+`",`, 1), "Content-Type", "application/fhir+json; fhirVersion=3.0").
			want(t, http.StatusUnsupportedMediaType)
		addSTU3 := `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},` +
			`{"name":"name","valueString":"identifier"},{"name":"value","valueIdentifier":{"system":"https://example.org/mrn","value":"stu3"}}]}]}`
		c.do("PATCH", path, addSTU3, "Content-Type", "application/fhir+json; fhirVersion=3.0").want(t, http.StatusUnsupportedMediaType).outcome(t, "not-supported", "")
		c.do("PATCH", path, `[{"op":"add","path":"/identifier/-","value":{"system":"https://example.org/mrn","value":"stu3"}}]`,
			"Content-Type", "application/json-patch+json; fhirVersion=3.0").want(t, http.StatusUnsupportedMediaType)
		if b := c.do("GET", "/Patient?identifier=https://example.org/mrn|stu3&_summary=count", "").want(t, 200).json(t); b["total"] != float64(0) {
			t.Errorf("total %v after the refused writes, want 0", b["total"])
		}
		if v := c.do("GET", path, "").want(t, 200).header.Get("ETag"); v != `W/"1"` {
			t.Errorf("ETag %q after the refused update and patches, want W/\"1\"", v)
		}
		c.do("POST", "/Patient", stu3, "Content-Type", "application/fhir+json; fhirVersion=4.0").want(t, http.StatusCreated)

		// $versions lists 4.0, the default, by GET or POST, in either format.
		want := `{"resourceType":"Parameters","parameter":[{"name":"version","valueCode":"4.0"},{"name":"default","valueCode":"4.0"}]}`
		for _, r := range []*response{
			c.do("GET", "/$versions", "").want(t, http.StatusOK),
			c.do("POST", "/$versions", `{"resourceType":"Parameters"}`).want(t, http.StatusOK),
		} {
			if string(r.body) != want {
				t.Errorf("$versions: %s, want %s", r.body, want)
			}
		}
		if r := c.do("GET", "/$versions", "", "Accept", "application/xml").want(t, http.StatusOK); !bytes.Contains(r.body, []byte(`<valueCode value="4.0"/>`)) {
			t.Errorf("$versions in XML: %s", r.body)
		}
		// It is an operation of the system, listed there, and not on every
		// resource type.
		caps := c.do("GET", "/metadata", "").want(t, http.StatusOK).json(t)
		var system []string
		for _, op := range get(caps, "rest", 0, "operation").([]any) {
			system = append(system, str(op, "name"))
		}
		if !slices.Contains(system, "versions") {
			t.Errorf("rest.operation lists %v, want versions among them", system)
		}
		for _, r := range get(caps, "rest", 0, "resource").([]any) {
			ops, _ := get(r, "operation").([]any)
			for _, op := range ops {
				if str(op, "name") == "versions" {
					t.Errorf("%s lists $versions", str(r, "type"))
				}
			}
		}
	})
}

// TestHTTPGzip checks the content codings (RFC 9110, section 8.4): a body
// of a kilobyte or more is sent gzipped to a client that accepts gzip, with
// the length of what is sent, and a request body may be gzipped.
func TestHTTPGzip(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := c.create("Patient", headersPatient)["id"].(string)
		for range 20 {
			c.create("Patient", headersPatient)
		}
		for _, path := range []string{"/metadata", "/Patient?_count=50", "/Patient?_count=50&_format=xml", "/Patient?_count=50&_pretty=true"} {
			plain := c.do("GET", path, "", "Accept-Encoding", "identity").want(t, http.StatusOK)
			if plain.header.Get("Content-Encoding") != "" || plain.header.Get("Vary") == "" {
				t.Errorf("GET %s without gzip: Content-Encoding %q, Vary %q", path, plain.header.Get("Content-Encoding"), plain.header.Get("Vary"))
			}
			for _, accept := range []string{"gzip", "gzip, deflate, br", "br;q=1.0, gzip;q=0.8, *;q=0.1", "*"} {
				r := c.do("GET", path, "", "Accept-Encoding", accept).want(t, http.StatusOK)
				if r.header.Get("Content-Encoding") != "gzip" || !strings.Contains(r.header.Get("Vary"), "Accept-Encoding") {
					t.Errorf("GET %s, Accept-Encoding %q: Content-Encoding %q, Vary %q", path, accept, r.header.Get("Content-Encoding"), r.header.Get("Vary"))
					continue
				}
				if got := r.header.Get("Content-Length"); got != strconv.Itoa(len(r.body)) {
					t.Errorf("GET %s: Content-Length %q for %d bytes sent", path, got, len(r.body))
				}
				if len(r.body) >= len(plain.body)/2 {
					t.Errorf("GET %s: %d bytes gzipped, %d plain", path, len(r.body), len(plain.body))
				}
				zr, err := gzip.NewReader(bytes.NewReader(r.body))
				if err != nil {
					t.Fatalf("GET %s: %v", path, err)
				}
				unzipped, err := io.ReadAll(zr)
				if err != nil {
					t.Fatalf("GET %s: %v", path, err)
				}
				// A searchset differs from request to request only in its
				// id and time, which are of fixed length.
				if strings.Contains(path, "metadata") && !bytes.Equal(unzipped, plain.body) || len(unzipped) != len(plain.body) {
					t.Errorf("GET %s: the gzipped body (%d bytes) is not the plain one (%d bytes)", path, len(unzipped), len(plain.body))
				}
			}
			// Refused or not named: as it is.
			for _, accept := range []string{"gzip;q=0", "br", "*;q=0", "gzip;q=0, *"} {
				if r := c.do("GET", path, "", "Accept-Encoding", accept).want(t, http.StatusOK); r.header.Get("Content-Encoding") != "" {
					t.Errorf("GET %s, Accept-Encoding %q: Content-Encoding %q", path, accept, r.header.Get("Content-Encoding"))
				}
			}
			// HEAD tells the length a GET with the same header gets.
			g := c.do("GET", path, "", "Accept-Encoding", "gzip")
			h := c.do("HEAD", path, "", "Accept-Encoding", "gzip")
			if h.header.Get("Content-Encoding") != "gzip" || path == "/metadata" && h.header.Get("Content-Length") != g.header.Get("Content-Length") {
				t.Errorf("HEAD %s: Content-Encoding %q, Content-Length %q; GET's %q", path,
					h.header.Get("Content-Encoding"), h.header.Get("Content-Length"), g.header.Get("Content-Length"))
			}
		}
		// A small body is sent as it is.
		if r := c.do("GET", "/Patient/"+id, "", "Accept-Encoding", "gzip").want(t, http.StatusOK); r.header.Get("Content-Encoding") != "" {
			t.Errorf("small read: Content-Encoding %q", r.header.Get("Content-Encoding"))
		}

		// Request bodies.
		zip := func(b string) string {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write([]byte(b))
			zw.Close()
			return buf.String()
		}
		r := c.do("POST", "/Patient", zip(`{"resourceType":"Patient","name":[{"family":"Zipped"}]}`), "Content-Encoding", "gzip").want(t, http.StatusCreated)
		if !bytes.Contains(r.body, []byte(`"family":"Zipped"`)) {
			t.Errorf("gzipped create: %s", r.body)
		}
		c.do("POST", "/Patient", `{"resourceType":"Patient","name":[{"family":"NotZipped"}]}`, "Content-Encoding", "gzip").
			want(t, http.StatusBadRequest).outcome(t, "invalid", "")
		c.do("POST", "/Patient", `{"resourceType":"Patient","name":[{"family":"Brotli"}]}`, "Content-Encoding", "br").
			want(t, http.StatusUnsupportedMediaType).outcome(t, "not-supported", "")
		// A body that expands past the limit is 413, however small it was sent.
		bomb := `{"resourceType":"Patient","name":[{"family":"` + strings.Repeat("a", 2<<20) + `"}]}`
		c.do("POST", "/Patient", zip(bomb), "Content-Encoding", "gzip").want(t, http.StatusRequestEntityTooLarge)
		for _, family := range []string{"NotZipped", "Brotli", "a"} {
			if b := c.do("GET", "/Patient?family="+family+"&_summary=count", "").want(t, 200).json(t); b["total"] != float64(0) {
				t.Errorf("%v Patients %s after refused creates, want 0", b["total"], family)
			}
		}
	}, func(cfg *server.Config) { cfg.MaxBodyBytes = 1 << 20 })
}

// TestCountLowered checks that a _count above the largest page size is
// lowered, and that the links of the Bundle say so: R4 requires the self
// link to state the parameters a search was processed with
// (search.html#conformance).
func TestCountLowered(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := c.create("Patient", headersPatient)["id"].(string)
		for range 2 {
			c.create("Patient", headersPatient)
			c.create("Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+id+`"}}`)
		}
		for _, path := range []string{"/Patient?_count=50", "/Patient/_history?_count=50", "/_history?_count=50", "/Patient/" + id + "/$everything?_count=50"} {
			b := c.do("GET", path, "").want(t, http.StatusOK).json(t)
			if n := len(get(b, "entry").([]any)); n != 2 {
				t.Errorf("GET %s: %d entries, want 2", path, n)
			}
			for _, l := range get(b, "link").([]any) {
				if u := str(l, "url"); strings.Contains(u, "_count=50") || !strings.Contains(u, "_count=2") {
					t.Errorf("GET %s: %s link %s, want _count=2", path, str(l, "relation"), u)
				}
			}
		}
	}, func(cfg *server.Config) { cfg.Limits.Search.Count = 2 })
}

// TestHistoryCountZero checks that _count=0 asks a history for its total
// alone, as it asks a search (search.html#count).
func TestHistoryCountZero(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := c.create("Patient", headersPatient)["id"].(string)
		c.create("Patient", headersPatient)
		for path, want := range map[string]float64{"/Patient/_history?_count=0": 2, "/Patient/" + id + "/_history?_count=0": 1,
			"/Patient/_history?_summary=count": 2, "/_history?_summary=count&_type=Patient": 2} {
			b := c.do("GET", path, "").want(t, http.StatusOK).json(t)
			if b["total"] != want || b["entry"] != nil {
				t.Errorf("GET %s: total %v, entries %v; want %v and none", path, b["total"], b["entry"], want)
			}
			for _, l := range get(b, "link").([]any) {
				if str(l, "relation") == "next" {
					t.Errorf("GET %s: a next link %s", path, str(l, "url"))
				}
			}
		}
	})
}

// TestHistorySubset checks that _summary and _elements reduce the versions
// of a history as they do the matches of a search, marked SUBSETTED, and
// that a deletion stays an entry without a resource.
func TestHistorySubset(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := c.create("Patient", `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Ann</div>"},`+
			`"name":[{"family":"Lee"}],"gender":"female","birthDate":"1970-01-01","photo":[{"contentType":"image/png","data":"AAAA"}]}`)["id"].(string)
		c.do("DELETE", "/Patient/"+id, "").want(t, http.StatusNoContent)
		for _, tt := range []struct {
			query      string
			kept, gone []string
		}{
			{"_elements=name", []string{"name", "id", "meta"}, []string{"gender", "birthDate", "photo", "text"}},
			{"_summary=true", []string{"name", "gender", "birthDate"}, []string{"photo", "text"}},
			{"_summary=text", []string{"text", "id"}, []string{"name", "photo"}},
			{"_summary=data", []string{"name", "photo"}, []string{"text"}},
		} {
			for _, path := range []string{"/Patient/" + id + "/_history", "/Patient/_history", "/_history"} {
				b := c.do("GET", path+"?"+tt.query, "").want(t, http.StatusOK).json(t)
				var found bool
				for _, e := range get(b, "entry").([]any) {
					if str(e, "request", "method") == "DELETE" {
						if get(e, "resource") != nil {
							t.Errorf("%s?%s: the deletion carries a resource", path, tt.query)
						}
						continue
					}
					r, _ := get(e, "resource").(map[string]any)
					if r["id"] != id {
						continue
					}
					found = true
					for _, k := range tt.kept {
						if r[k] == nil {
							t.Errorf("%s?%s: %s left out: %v", path, tt.query, k, r)
						}
					}
					for _, k := range tt.gone {
						if r[k] != nil {
							t.Errorf("%s?%s: %s kept: %v", path, tt.query, k, r)
						}
					}
					if str(r, "meta", "tag", 0, "code") != "SUBSETTED" {
						t.Errorf("%s?%s: not tagged SUBSETTED: %v", path, tt.query, r["meta"])
					}
				}
				if !found {
					t.Errorf("%s?%s: the Patient's version is not in the history", path, tt.query)
				}
			}
		}
		c.do("GET", "/Patient/"+id+"/_history?_elements=shoeSize", "").want(t, http.StatusBadRequest).outcome(t, "invalid", "_elements")
		// The history of the system holds other types: each keeps the
		// named elements it has, whatever the page holds.
		c.create("Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"v"}`)
		b := c.do("GET", "/_history?_elements=name,valueString", "").want(t, http.StatusOK).json(t)
		var types []string
		for _, e := range get(b, "entry").([]any) {
			r, _ := get(e, "resource").(map[string]any)
			switch r["resourceType"] {
			case "Patient":
				if r["name"] == nil || r["gender"] != nil {
					t.Errorf("Patient in the system history: %v", r)
				}
			case "Observation":
				if r["valueString"] == nil || r["status"] == nil || r["code"] == nil {
					t.Errorf("Observation in the system history: %v", r)
				}
			}
			if r != nil {
				types = append(types, r["resourceType"].(string))
			}
		}
		if !slices.Contains(types, "Observation") || !slices.Contains(types, "Patient") {
			t.Errorf("the system history holds %v", types)
		}
		c.do("GET", "/_history?_elements=shoeSize", "").want(t, http.StatusBadRequest).outcome(t, "invalid", "_elements")
		c.do("GET", "/Observation/_history?_elements=name", "").want(t, http.StatusBadRequest).outcome(t, "invalid", "_elements")
		c.do("GET", "/Patient/"+id+"/_history?_summary=bogus", "").want(t, http.StatusBadRequest).outcome(t, "invalid", "_summary")
		c.do("GET", "/Patient/"+id+"/_history?_summary=true&_elements=name", "").want(t, http.StatusBadRequest)

		// What a history does not take is left out of its links, or
		// refused under strict handling.
		b = c.do("GET", "/Patient/"+id+"/_history?_list=x&shoe-size=9&_count=1", "").want(t, http.StatusOK).json(t)
		for _, l := range get(b, "link").([]any) {
			if u := str(l, "url"); strings.Contains(u, "_list") || strings.Contains(u, "shoe-size") || !strings.Contains(u, "_count=1") {
				t.Errorf("%s link %s", str(l, "relation"), u)
			}
		}
		c.do("GET", "/Patient/"+id+"/_history?_list=x", "", "Prefer", "handling=strict").want(t, http.StatusBadRequest).outcome(t, "not-supported", "_list")
	})
}

// TestSearchLenientHandling checks what lenient handling (the default)
// ignores, with a warning and a self link without it, and what it refuses:
// a modifier the parameter does not have, and an unknown named query, which
// R4 has servers reject (search.html#modifiers), as ignoring them would
// answer a wider search than was asked.
func TestSearchLenientHandling(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.create("Patient", headersPatient)
		c.create("Patient", `{"resourceType":"Patient","name":[{"family":"Other","given":["Ann"]}]}`)
		b := c.do("GET", "/Patient?shoe-size=9&family=Header", "").want(t, http.StatusOK).json(t)
		if self := str(get(b, "link").([]any)[0], "url"); strings.Contains(self, "shoe-size") {
			t.Errorf("self link %s names the ignored parameter", self)
		}
		var matches, warnings int
		for _, e := range get(b, "entry").([]any) {
			switch str(e, "search", "mode") {
			case "match":
				matches++
			case "outcome":
				warnings++
			}
		}
		if matches != 1 || warnings != 1 {
			t.Errorf("%d matches and %d outcome entries, want 1 and 1", matches, warnings)
		}
		for _, q := range []string{"name:text=ann", "family:sounds-like=hedder", "gender:exact=male", "_query=overdue"} {
			name, _, _ := strings.Cut(q, "=")
			c.do("GET", "/Patient?"+q, "").want(t, http.StatusBadRequest).outcome(t, "not-supported", name)
		}
	})
}

// TestIfMatchAnyAndList: If-Match "*" holds when the resource has a
// current version (RFC 9110 section 13.1.1), a list of ETags when the
// current version is one of them; otherwise 412 and nothing is written.
func TestIfMatchAnyAndList(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		const mrn = "https://example.org/mrn|ifmatch-1"
		body := func(id, gender string) string {
			if id != "" {
				id = `"id":"` + id + `",`
			}
			return `{"resourceType":"Patient",` + id + `"identifier":[{"system":"https://example.org/mrn","value":"ifmatch-1"}],"gender":"` + gender + `"}`
		}
		id := str(c.create("Patient", body("", "female")), "id")
		path := "/Patient/" + id
		version := func() string { return str(c.do("GET", path, "").want(t, http.StatusOK).json(t), "meta", "versionId") }
		setGender := func(g string) string { return `[{"op":"replace","path":"/gender","value":"` + g + `"}]` }

		c.do("PUT", path, body(id, "male"), "If-Match", "*").want(t, http.StatusOK)
		c.do("PUT", path, body(id, "other"), "If-Match", `W/"1", W/"2"`).want(t, http.StatusOK)
		c.do("PUT", path, body(id, "unknown"), "If-Match", `W/"1", W/"2"`).want(t, http.StatusPreconditionFailed).outcome(t, "conflict", "")
		c.do("PATCH", path, setGender("male"), "Content-Type", jsonPatch, "If-Match", "*").want(t, http.StatusOK)
		c.do("PATCH", path, setGender("female"), "Content-Type", jsonPatch, "If-Match", `"2",W/"4",`).want(t, http.StatusOK)
		c.do("PATCH", path, setGender("other"), "Content-Type", jsonPatch, "If-Match", `W/"3", W/"4"`).want(t, http.StatusPreconditionFailed).outcome(t, "conflict", "")
		c.do("PATCH", "/Patient?identifier="+mrn, setGender("male"), "Content-Type", jsonPatch, "If-Match", "*").want(t, http.StatusOK)
		c.do("PUT", "/Patient?identifier="+mrn, body("", "female"), "If-Match", `W/"6", W/"7"`).want(t, http.StatusOK)
		c.do("POST", path+"/$meta-add", metaParams(`{"tag":[{"code":"x"}]}`), "If-Match", `W/"7", W/"8"`).want(t, http.StatusOK)
		c.do("POST", path+"/$meta-add", metaParams(`{"tag":[{"code":"y"}]}`), "If-Match", `W/"6", W/"7"`).want(t, http.StatusPreconditionFailed)
		if v := version(); v != "8" {
			t.Fatalf("version %s, want 8", v)
		}
		for _, bad := range []string{`*, W/"8"`, ",", `W/"8", soon`} {
			c.do("PUT", path, body(id, "male"), "If-Match", bad).want(t, http.StatusBadRequest).outcome(t, "invalid", "")
		}
		c.do("DELETE", path, "", "If-Match", `W/"6", W/"7"`).want(t, http.StatusPreconditionFailed)
		c.do("DELETE", path, "", "If-Match", "*").want(t, http.StatusNoContent)

		// A deleted resource, or one that never existed, has no current
		// version for "*" or a list to match.
		c.do("DELETE", path, "", "If-Match", "*").want(t, http.StatusPreconditionFailed).outcome(t, "conflict", "")
		c.do("PUT", path, body(id, "male"), "If-Match", "*").want(t, http.StatusPreconditionFailed)
		c.do("PATCH", path, setGender("male"), "Content-Type", jsonPatch, "If-Match", "*").want(t, http.StatusPreconditionFailed)
		c.do("PUT", path, body(id, "male"), "If-Match", `W/"8", W/"9"`).want(t, http.StatusPreconditionFailed)
		c.do("GET", path, "").want(t, http.StatusGone)
		c.do("PUT", "/Patient/never", body("never", "male"), "If-Match", "*").want(t, http.StatusPreconditionFailed)
		c.do("PUT", "/Patient?identifier=https://example.org/mrn|nobody", body("", "male"), "If-Match", "*").want(t, http.StatusPreconditionFailed)
		c.do("GET", "/Patient/never", "").want(t, http.StatusNotFound)
		if n := get(c.do("GET", "/Patient?identifier=https://example.org/mrn|nobody&_summary=count", "").want(t, http.StatusOK).json(t), "total"); n != 0.0 {
			t.Errorf("a conditional update under If-Match * created a resource")
		}
	})
}

// TestIfMatchDeleted: If-Match on a deleted resource is 412 whatever
// ETag it names, the tombstone's version included, on a PUT, a PATCH, a
// DELETE and a transaction or batch entry's request.ifMatch alike, as "*"
// and a list are: a deleted resource has no current representation for
// an ETag to match (RFC 9110 section 13.1.1). Nothing is written; an
// update without If-Match still creates the resource again.
func TestIfMatchDeleted(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		body := `{"resourceType":"Patient","id":"gone","gender":"male"}`
		c.do("PUT", "/Patient/gone", body).want(t, http.StatusCreated)
		c.do("DELETE", "/Patient/gone", "").want(t, http.StatusNoContent)
		for _, tag := range []string{`W/"2"`, `W/"1"`, `W/"2", W/"1"`, "*"} {
			c.do("PUT", "/Patient/gone", body, "If-Match", tag).want(t, http.StatusPreconditionFailed).outcome(t, "conflict", "")
			c.do("PATCH", "/Patient/gone", `[{"op":"replace","path":"/gender","value":"other"}]`, "Content-Type", jsonPatch, "If-Match", tag).
				want(t, http.StatusPreconditionFailed).outcome(t, "conflict", "")
			c.do("DELETE", "/Patient/gone", "", "If-Match", tag).want(t, http.StatusPreconditionFailed).outcome(t, "conflict", "")
		}
		for _, typ := range []string{"transaction", "batch"} {
			for _, entry := range []string{
				`{"resource":` + body + `,"request":{"method":"PUT","url":"Patient/gone","ifMatch":"W/\"2\""}}`,
				`{"resource":{"resourceType":"Binary","contentType":"application/json-patch+json","data":"W3sib3AiOiJyZXBsYWNlIiwicGF0aCI6Ii9nZW5kZXIiLCJ2YWx1ZSI6Im90aGVyIn1d"},"request":{"method":"PATCH","url":"Patient/gone","ifMatch":"W/\"2\""}}`,
				`{"request":{"method":"DELETE","url":"Patient/gone","ifMatch":"W/\"2\""}}`,
			} {
				r := c.do("POST", "", `{"resourceType":"Bundle","type":"`+typ+`","entry":[`+entry+`]}`)
				status := r.status
				if typ == "batch" {
					r.want(t, http.StatusOK)
					status, _ = strconv.Atoi(strings.Fields(str(r.json(t), "entry", 0, "response", "status"))[0])
				}
				if status != http.StatusPreconditionFailed {
					t.Errorf("%s entry %s on the deleted resource: status %d, want 412; body %s", typ, entry, status, truncate(r.body))
				}
			}
		}
		h := c.do("GET", "/Patient/gone/_history", "").want(t, http.StatusOK).json(t)
		if n := get(h, "total"); n != 2.0 {
			t.Fatalf("%v versions after the refused writes, want 2", n)
		}
		c.do("GET", "/Patient/gone", "").want(t, http.StatusGone)
		c.do("PUT", "/Patient/gone", body).want(t, http.StatusCreated)
	})
}

// TestIfMatchOnRead checks that a read or vread holds If-Match (RFC 9110
// section 13.1.1), over HTTP and as a GET entry's request.ifMatch: a
// version other than those named is 412, where it was answered as if it
// were the version the client holds; a search entry, which has no version
// to match, refuses request.ifMatch.
func TestIfMatchOnRead(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", headersPatient), "id")
		path := "/Patient/" + id
		c.do("PUT", path, `{"resourceType":"Patient","id":"`+id+`","active":true}`).want(t, http.StatusOK)
		for _, m := range []string{`W/"2"`, `W/"1", W/"2"`, "*"} {
			if got := str(c.do("GET", path, "", "If-Match", m).want(t, http.StatusOK).json(t), "meta", "versionId"); got != "2" {
				t.Errorf("read under If-Match %s: version %s, want 2", m, got)
			}
		}
		r := c.do("GET", path, "", "If-Match", `W/"1"`).want(t, http.StatusPreconditionFailed)
		if d := r.outcome(t, "conflict", ""); !strings.Contains(d, "version 2") {
			t.Errorf("412 of a read says %q, want the version read", d)
		}
		c.do("HEAD", path, "", "If-Match", `W/"1"`).want(t, http.StatusPreconditionFailed)
		// Decided before If-None-Match, as RFC 9110 section 13.2.2 orders.
		c.do("GET", path, "", "If-Match", `W/"1"`, "If-None-Match", `W/"2"`).want(t, http.StatusPreconditionFailed)
		c.do("GET", path, "", "If-Match", `W/"2"`, "If-None-Match", `W/"2"`).want(t, http.StatusNotModified)
		c.do("GET", path+"/_history/1", "", "If-Match", `W/"1"`).want(t, http.StatusOK)
		c.do("GET", path+"/_history/1", "", "If-Match", `W/"2"`).want(t, http.StatusPreconditionFailed).outcome(t, "conflict", "")
		c.do("GET", path, "", "If-Match", "soon").want(t, http.StatusBadRequest).outcome(t, "invalid", "")

		b := c.bundle(txBundle("batch",
			txEntry("", "GET", "Patient/"+id, "", "ifMatch", `W/"2"`),
			txEntry("", "GET", "Patient/"+id, "", "ifMatch", `W/"1"`),
			txEntry("", "GET", "Patient/"+id+"/_history/1", "", "ifMatch", `W/"1"`),
			txEntry("", "GET", "Patient/"+id+"/_history/1", "", "ifMatch", `W/"2"`),
			txEntry("", "GET", "Patient?_id="+id, "", "ifMatch", `W/"2"`)))
		checkStatuses(t, b, "200 OK", "412 Precondition Failed", "200 OK", "412 Precondition Failed", "400 Bad Request")
		c.do("POST", "", txBundle("transaction", txEntry("", "GET", "Patient/"+id, "", "ifMatch", `W/"1"`))).
			want(t, http.StatusPreconditionFailed).outcome(t, "conflict", "Bundle.entry[0]")
	})
}

// TestHistoryRepeatedParameter checks that a history parameter given twice
// is refused, naming it, rather than applied once while the self link
// states both.
func TestHistoryRepeatedParameter(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := c.create("Patient", headersPatient)["id"].(string)
		for _, query := range []string{"_since=2099-01-01&_since=2000-01-01", "_at=2099-01-01&_at=2000-01-01",
			"_count=1&_count=5", "_summary=true&_summary=count", "_elements=gender&_elements=name"} {
			for _, path := range []string{"/Patient/" + id + "/_history", "/Patient/_history", "/_history"} {
				name, _, _ := strings.Cut(query, "=")
				r := c.do("GET", path+"?"+query, "").want(t, http.StatusBadRequest)
				r.outcome(t, "invalid", name)
			}
		}
	})
}

// TestQuerySemicolon checks that a semicolon in a query string is part of
// the value that holds it, as RFC 3986 allows and FHIR gives it no other
// meaning: in the URL, in If-None-Exist and in a Bundle entry's url, each
// of which refused it with 400.
func TestQuerySemicolon(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		const patient = `{"resourceType":"Patient","identifier":[{"system":"urn:sc","value":"a;b"}]}`
		id := c.create("Patient", patient)["id"].(string)
		c.do("GET", "/Patient/"+id+"?_format=application/fhir%2Bjson;fhirVersion=4.0", "").want(t, http.StatusOK).json(t)
		c.do("GET", "/Patient/"+id+"?_format=json;fhirVersion=3.0", "").want(t, http.StatusNotAcceptable).outcome(t, "not-supported", "_format")
		b := c.do("GET", "/Patient?identifier=urn:sc|a;b", "").want(t, http.StatusOK).json(t)
		if n := len(get(b, "entry").([]any)); n != 1 {
			t.Errorf("identifier=urn:sc|a;b found %d Patients, want 1", n)
		}
		c.do("GET", "/Patient?identifier=urn:sc|a;c&_summary=count", "").want(t, http.StatusOK)
		if got := c.do("POST", "/Patient", patient, "If-None-Exist", "identifier=urn:sc|a;b").want(t, http.StatusOK).json(t)["id"]; got != id {
			t.Errorf("If-None-Exist found %v, want %s", got, id)
		}
		out := c.bundle(txBundle("transaction",
			txEntry("", "PUT", "Patient?identifier=urn:sc|a;b", `{"resourceType":"Patient","identifier":[{"system":"urn:sc","value":"a;b"}],"gender":"male"}`)))
		if got := out.Entry[0].Response.Location; !strings.HasPrefix(got, "Patient/"+id+"/") {
			t.Errorf("conditional update entry wrote %q, want Patient/%s", got, id)
		}
		if b := c.do("GET", "/Patient?identifier=urn:sc|&_summary=count", "").want(t, http.StatusOK).json(t); b["total"] != float64(1) {
			t.Errorf("%v Patients of urn:sc, want 1", b["total"])
		}
	})
}
