package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"carefhir/operation"
	"carefhir/server"
	"carefhir/store"
)

const patient = `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}],
"name":[{"family":"O'Brien","given":["Siân"]}],"gender":"female","birthDate":"1970-03-01"}`

func TestCreate(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("POST", "/Patient", `{"resourceType":"Patient","id":"ignored","birthDate":"1970-03-01","_birthDate":{"extension":[{"url":"http://example.org/x","valueString":"y"}]}}`)
		r.want(t, http.StatusCreated)
		body := r.json(t)
		id := str(body, "id")
		if id == "" || id == "ignored" {
			t.Fatalf("id = %q, want a server-assigned id", id)
		}
		if got, want := r.header.Get("Location"), c.base+"/Patient/"+id+"/_history/1"; got != want {
			t.Errorf("Location = %q, want %q", got, want)
		}
		if got := r.header.Get("ETag"); got != `W/"1"` {
			t.Errorf("ETag = %q", got)
		}
		if _, err := http.ParseTime(r.header.Get("Last-Modified")); err != nil {
			t.Errorf("Last-Modified %q: %v", r.header.Get("Last-Modified"), err)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/fhir+json; charset=utf-8" {
			t.Errorf("Content-Type = %q", ct)
		}
		if str(body, "meta", "versionId") != "1" {
			t.Errorf("meta.versionId = %v", get(body, "meta", "versionId"))
		}
		if _, err := time.Parse(time.RFC3339, str(body, "meta", "lastUpdated")); err != nil {
			t.Errorf("meta.lastUpdated: %v", err)
		}
		if str(body, "_birthDate", "extension", 0, "valueString") != "y" {
			t.Errorf("primitive extension lost: %s", r.body)
		}
		read := c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK)
		if string(read.body) != string(r.body) {
			t.Errorf("read returns\n%s\nbut create returned\n%s", read.body, r.body)
		}
	})
}

func TestCreateRejects(t *testing.T) {
	small := func(cfg *server.Config) { cfg.MaxBodyBytes = 1024 }
	eachEngine(t, func(t *testing.T, c *client) {
		tests := []struct {
			name, path, body, contentType string
			status                        int
			code, expression              string
		}{
			{"unknown type", "/Unicorn", `{"resourceType":"Unicorn"}`, "", 404, "not-supported", ""},
			{"no content type", "/Patient", patient, "-", 415, "not-supported", ""},
			{"text body", "/Patient", `Patient`, "text/plain", 415, "not-supported", ""},
			{"latin-1 body", "/Patient", patient, "application/fhir+json; charset=iso-8859-1", 415, "not-supported", ""},
			{"unknown xml element", "/Patient", `<Patient xmlns="http://hl7.org/fhir"><foo value="1"/></Patient>`, "application/fhir+xml", 400, "structure", "Patient.foo"},
			{"xml entity", "/Patient", `<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><Patient xmlns="http://hl7.org/fhir"><gender value="&e;"/></Patient>`, "application/fhir+xml", 400, "", ""},
			{"form body", "/Patient", "a=b", "application/x-www-form-urlencoded", 415, "not-supported", ""},
			{"not json", "/Patient", `{"resourceType":"Patient",`, "", 400, "invalid", ""},
			{"empty body", "/Patient", "", "application/fhir+json", 400, "required", ""},
			{"unknown element", "/Patient", `{"resourceType":"Patient","foo":1}`, "", 400, "structure", "Patient.foo"},
			{"wrong json type", "/Patient", `{"resourceType":"Patient","birthDate":19700301}`, "", 400, "structure", "Patient.birthDate"},
			{"nested path", "/Patient", `{"resourceType":"Patient","name":[{"given":["a",1]}]}`, "", 400, "structure", "Patient.name[0].given[1]"},
			{"other type in body", "/Patient", `{"resourceType":"Observation","status":"final","code":{"text":"x"}}`, "", 400, "structure", ""},
			{"mandatory element missing", "/Observation", `{"resourceType":"Observation","code":{"text":"x"}}`, "", 422, "required", "Observation.status"},
			{"too large", "/Patient", `{"resourceType":"Patient","name":[{"family":"` + strings.Repeat("x", 2000) + `"}]}`, "", 413, "too-costly", ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				// The answer is asked for as JSON: with no Accept, a body sent
				// as XML is answered in XML.
				headers := []string{"Accept", "application/fhir+json"}
				switch tt.contentType {
				case "":
				case "-":
					headers = append(headers, "Content-Type", "")
				default:
					headers = append(headers, "Content-Type", tt.contentType)
				}
				r := c.do("POST", tt.path, tt.body, headers...)
				r.want(t, tt.status)
				r.outcome(t, tt.code, tt.expression)
			})
		}
		// Nothing of the rejected requests was stored.
		h := c.do("GET", "/_history", "").want(t, http.StatusOK).json(t)
		if n := get(h, "total"); n != 0.0 {
			t.Errorf("history total %v after rejected creates, want 0", n)
		}
	}, small)
}

func TestRead(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		p := c.create("Patient", patient)
		id := str(p, "id")
		tests := []struct {
			name, path string
			headers    []string
			status     int
			code       string
		}{
			{"found", "/Patient/" + id, nil, 200, ""},
			{"head", "/Patient/" + id, nil, 200, ""},
			{"unknown id", "/Patient/nope", nil, 404, "not-found"},
			{"wrong type", "/Observation/" + id, nil, 404, "not-found"},
			{"bad id chars", "/Patient/a_b", nil, 400, "value"},
			{"id too long", "/Patient/" + strings.Repeat("a", 65), nil, 400, "value"},
			{"unknown type", "/Unicorn/1", nil, 404, "not-supported"},
			{"if-none-match current", "/Patient/" + id, []string{"If-None-Match", `W/"1"`}, 304, ""},
			{"if-none-match stale", "/Patient/" + id, []string{"If-None-Match", `W/"7"`}, 200, ""},
			{"if-modified-since future", "/Patient/" + id, []string{"If-Modified-Since", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}, 304, ""},
			{"if-modified-since past", "/Patient/" + id, []string{"If-Modified-Since", time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)}, 200, ""},
			{"_summary=count", "/Patient/" + id + "?_summary=count", nil, 400, "invalid"},
			{"_elements unknown", "/Patient/" + id + "?_elements=unicorn", nil, 400, "invalid"},
			{"_summary twice", "/Patient/" + id + "?_summary=true&_summary=false", nil, 400, "invalid"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				method := "GET"
				if tt.name == "head" {
					method = "HEAD"
				}
				r := c.do(method, tt.path, "", tt.headers...).want(t, tt.status)
				if tt.code != "" {
					r.outcome(t, tt.code, "")
				}
				if tt.status == 200 || tt.status == 304 {
					if r.header.Get("ETag") != `W/"1"` {
						t.Errorf("ETag = %q", r.header.Get("ETag"))
					}
				}
				if tt.status == 304 && len(r.body) != 0 {
					t.Errorf("304 with a body: %s", r.body)
				}
			})
		}
	})
}

func TestReadSubsets(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		p := c.create("Patient", `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Siân</div>"},
			"name":[{"family":"Jones"}],"birthDate":"1970-03-01","photo":[{"contentType":"image/png","data":"AAAA"}],"contact":[{"name":{"family":"X"}}]}`)
		id := str(p, "id")
		tests := []struct {
			query      string
			keep, drop []string
			subsetted  bool
		}{
			{"", []string{"text", "name", "photo", "contact"}, nil, false},
			{"_summary=false", []string{"text", "name", "photo"}, nil, false},
			{"_summary=true", []string{"name", "birthDate"}, []string{"text", "photo", "contact"}, true},
			{"_summary=text", []string{"text"}, []string{"name", "photo", "birthDate"}, true},
			{"_summary=data", []string{"name", "photo", "contact"}, []string{"text"}, true},
			{"_elements=name,birthDate", []string{"name", "birthDate"}, []string{"text", "photo", "contact"}, true},
			// Repeated, _elements names the elements of all its values, as in a search.
			{"_elements=name&_elements=birthDate", []string{"name", "birthDate"}, []string{"text", "photo", "contact"}, true},
		}
		for _, tt := range tests {
			t.Run(tt.query, func(t *testing.T) {
				body := c.do("GET", "/Patient/"+id+"?"+tt.query, "").want(t, 200).json(t)
				for _, k := range append(tt.keep, "id", "meta", "resourceType") {
					if body[k] == nil {
						t.Errorf("%s missing", k)
					}
				}
				for _, k := range tt.drop {
					if body[k] != nil {
						t.Errorf("%s present", k)
					}
				}
				tagged := strings.Contains(fmt.Sprint(get(body, "meta", "tag")), "SUBSETTED")
				if tagged != tt.subsetted {
					t.Errorf("SUBSETTED tag = %v, want %v", tagged, tt.subsetted)
				}
			})
		}
	})
}

func TestUpdate(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", patient), "id")
		put := func(id, body string, headers ...string) *response {
			return c.do("PUT", "/Patient/"+id, body, headers...)
		}
		withID := func(id string) string {
			return `{"resourceType":"Patient","id":"` + id + `","gender":"male"}`
		}

		r := put(id, withID(id)).want(t, http.StatusOK)
		if r.header.Get("ETag") != `W/"2"` || str(r.json(t), "meta", "versionId") != "2" {
			t.Errorf("update: ETag %q body %s", r.header.Get("ETag"), r.body)
		}
		if str(r.json(t), "gender") != "male" {
			t.Errorf("update not applied: %s", r.body)
		}
		withGender := func(id, gender string) string {
			return `{"resourceType":"Patient","id":"` + id + `","gender":"` + gender + `"}`
		}
		put(id, withGender(id, "other"), "If-Match", `W/"2"`).want(t, http.StatusOK)
		put(id, withID(id), "If-Match", `W/"2"`).want(t, http.StatusPreconditionFailed).outcome(t, "conflict", "")
		put(id, withID(id), "If-Match", `nonsense`).want(t, http.StatusBadRequest)
		put(id, withID("other"), "").want(t, http.StatusBadRequest).outcome(t, "invalid", "Patient.id")
		put(id, `{"resourceType":"Patient"}`).want(t, http.StatusBadRequest).outcome(t, "required", "Patient.id")
		put(id, `{"resourceType":"Patient","id":"`+id+`","bogus":true}`).want(t, http.StatusBadRequest).outcome(t, "structure", "Patient.bogus")

		// The old versions stay readable.
		v1 := c.do("GET", "/Patient/"+id+"/_history/1", "").want(t, 200).json(t)
		if str(v1, "gender") != "female" || str(v1, "meta", "versionId") != "1" {
			t.Errorf("vread 1: %v", v1)
		}
		c.do("GET", "/Patient/"+id+"/_history/9", "").want(t, 404).outcome(t, "not-found", "")
		c.do("GET", "/Patient/"+id+"/_history/x", "").want(t, 404)

		// Update as create, with the client's id.
		r = put("client-chosen.1", withID("client-chosen.1")).want(t, http.StatusCreated)
		if got, want := r.header.Get("Location"), c.base+"/Patient/client-chosen.1/_history/1"; got != want {
			t.Errorf("Location %q, want %q", got, want)
		}
		put("new-one", withID("new-one"), "If-Match", `W/"1"`).want(t, http.StatusPreconditionFailed)
		c.do("GET", "/Patient/new-one", "").want(t, 404)
		put("bad_id", withID("bad_id")).want(t, http.StatusBadRequest)

		// Preferences.
		r = put(id, withGender(id, "unknown"), "Prefer", "return=minimal").want(t, 200)
		if len(r.body) != 0 || r.header.Get("ETag") != `W/"4"` {
			t.Errorf("return=minimal: body %q ETag %q", r.body, r.header.Get("ETag"))
		}
		put(id, withID(id), "Prefer", "return=OperationOutcome").want(t, 200).outcome(t, "informational", "")
		if etag := c.do("GET", "/Patient/"+id, "").want(t, 200).header.Get("ETag"); etag != `W/"5"` {
			t.Errorf("ETag %q after the last update, want W/\"5\"", etag)
		}
	})
}

func TestDelete(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", patient), "id")
		c.do("DELETE", "/Patient/"+id, "", "If-Match", `W/"5"`).want(t, http.StatusPreconditionFailed)
		r := c.do("DELETE", "/Patient/"+id, "").want(t, http.StatusNoContent)
		if r.header.Get("ETag") != `W/"2"` {
			t.Errorf("delete ETag %q", r.header.Get("ETag"))
		}
		c.do("GET", "/Patient/"+id, "").want(t, http.StatusGone).outcome(t, "deleted", "")
		c.do("GET", "/Patient/"+id+"/_history/2", "").want(t, http.StatusGone)
		c.do("GET", "/Patient/"+id+"/_history/1", "").want(t, http.StatusOK)
		// Deleting again, or something that never existed, is not an error.
		c.do("DELETE", "/Patient/"+id, "").want(t, http.StatusNoContent)
		c.do("DELETE", "/Patient/never", "", "Prefer", "return=OperationOutcome").want(t, http.StatusOK).outcome(t, "informational", "")
		// Updating a deleted resource brings it back as the next version.
		r = c.do("PUT", "/Patient/"+id, `{"resourceType":"Patient","id":"`+id+`"}`).want(t, http.StatusCreated)
		if r.header.Get("ETag") != `W/"3"` {
			t.Errorf("re-create ETag %q", r.header.Get("ETag"))
		}
		c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK)
	})
}

func TestConditionalCreate(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		first := c.do("POST", "/Patient", patient, "If-None-Exist", "identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009").want(t, http.StatusCreated).json(t)
		again := c.do("POST", "/Patient", patient, "If-None-Exist", "identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009").want(t, http.StatusOK).json(t)
		if str(again, "id") != str(first, "id") || str(again, "meta", "versionId") != "1" {
			t.Errorf("matching If-None-Exist returned %v, want the existing %v", again["id"], first["id"])
		}
		for _, criteria := range []string{"identifier=9000000009", "_id=" + str(first, "id"), "identifier=https://fhir.nhs.uk/Id/nhs-number|", "identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009,x|y"} {
			c.do("POST", "/Patient", patient, "If-None-Exist", criteria).want(t, http.StatusOK)
		}
		c.do("POST", "/Patient", patient, "If-None-Exist", "identifier=|9000000009").want(t, http.StatusCreated)
		c.do("POST", "/Patient", patient, "If-None-Exist", "identifier=9000000009").want(t, http.StatusPreconditionFailed).outcome(t, "multiple-matches", "")
		// Criteria are searches: every search parameter works, unknown ones
		// are refused rather than ignored.
		c.do("POST", "/Patient", patient, "If-None-Exist", "family=Jones").want(t, http.StatusCreated)
		c.do("POST", "/Patient", patient, "If-None-Exist", "family=o'brien&birthdate=1970").want(t, http.StatusPreconditionFailed)
		c.do("POST", "/Patient", patient, "If-None-Exist", "shoe-size=9").want(t, http.StatusBadRequest).outcome(t, "not-supported", "shoe-size")
		c.do("POST", "/Patient", patient, "If-None-Exist", "birthdate=1970-13").want(t, http.StatusBadRequest).outcome(t, "invalid", "birthdate")
		// Criteria naming another type are refused as such; naming the type
		// created, they are its parameters.
		msg := c.do("POST", "/Patient", patient, "If-None-Exist", "Observation?identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009").
			want(t, http.StatusBadRequest).outcome(t, "invalid", "")
		if !strings.Contains(msg, "Observation") || !strings.Contains(msg, "If-None-Exist") {
			t.Errorf("criteria naming another type refused with %q, want a message naming the type and the header", msg)
		}
		c.do("POST", "/Patient", patient, "If-None-Exist", "Patient?_id="+str(first, "id")).want(t, http.StatusOK)
		// Operators in values are plain strings.
		c.do("POST", "/Patient", patient, "If-None-Exist", `identifier={"$gt":""}`).want(t, http.StatusCreated)
	})
}

func TestConditionalUpdateAndDelete(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		const criteria = "?identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009"
		r := c.do("PUT", "/Patient"+criteria, patient).want(t, http.StatusCreated)
		id := str(r.json(t), "id")
		r = c.do("PUT", "/Patient"+criteria, strings.Replace(patient, `"female"`, `"male"`, 1)).want(t, http.StatusOK)
		if str(r.json(t), "id") != id || str(r.json(t), "gender") != "male" || r.header.Get("ETag") != `W/"2"` {
			t.Errorf("conditional update did not update %s: %s", id, r.body)
		}
		c.do("PUT", "/Patient"+criteria, `{"resourceType":"Patient","id":"other","identifier":[{"value":"1"}]}`).want(t, http.StatusBadRequest)
		c.do("PUT", "/Patient", patient).want(t, http.StatusMethodNotAllowed)
		c.create("Patient", patient)
		c.do("PUT", "/Patient"+criteria, patient).want(t, http.StatusPreconditionFailed).outcome(t, "multiple-matches", "")
		c.do("DELETE", "/Patient"+criteria, "").want(t, http.StatusPreconditionFailed)
		c.do("DELETE", "/Patient?_id="+id, "").want(t, http.StatusNoContent)
		c.do("GET", "/Patient/"+id, "").want(t, http.StatusGone)
		c.do("DELETE", "/Patient"+criteria, "").want(t, http.StatusNoContent)
		c.do("DELETE", "/Patient"+criteria, "").want(t, http.StatusNoContent)
		c.do("DELETE", "/Patient", "").want(t, http.StatusMethodNotAllowed)
		c.do("DELETE", "/Patient?name=x", "").want(t, http.StatusNoContent)
		c.do("DELETE", "/Patient?shoe-size=x", "").want(t, http.StatusBadRequest)
	})
}

// A conditional delete honours If-Match on the resource its criteria find,
// over HTTP and as a Bundle entry's request.ifMatch: a stale version is 412
// and the resource is left as it was.
func TestConditionalDeleteIfMatch(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		const body = `{"resourceType":"Patient","id":"cd","identifier":[{"system":"http://example.org/mrn","value":"cd"}]}`
		const criteria = "/Patient?identifier=http://example.org/mrn|cd"
		c.do("PUT", "/Patient/cd", body).want(t, http.StatusCreated)
		c.do("PUT", "/Patient/cd", strings.Replace(body, `"id":"cd",`, `"id":"cd","active":true,`, 1)).want(t, http.StatusOK)
		c.do("DELETE", criteria, "", "If-Match", `W/"1"`).want(t, http.StatusPreconditionFailed).outcome(t, "conflict", "")
		c.do("DELETE", criteria, "", "If-Match", "soon").want(t, http.StatusBadRequest)
		tx := `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient?identifier=http://example.org/mrn|cd","ifMatch":"W/\"1\""}}]}`
		c.do("POST", "", tx).want(t, http.StatusPreconditionFailed)
		if et := c.do("GET", "/Patient/cd", "").want(t, http.StatusOK).header.Get("ETag"); et != `W/"2"` {
			t.Fatalf("ETag %s after refused deletes, want W/\"2\"", et)
		}
		// Nothing matching: there is no version for If-Match to name.
		c.do("DELETE", "/Patient?identifier=http://example.org/mrn|none", "", "If-Match", `W/"2"`).want(t, http.StatusPreconditionFailed)
		c.do("DELETE", criteria, "", "If-Match", `W/"2"`).want(t, http.StatusNoContent)
		c.do("GET", "/Patient/cd", "").want(t, http.StatusGone)
	})
}

// If-Match on a conditional update whose criteria match nothing names no
// version there is: 412, and nothing is created, over HTTP as in a Bundle.
func TestConditionalUpdateIfMatchNoMatch(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		const body = `{"resourceType":"Patient","identifier":[{"system":"http://example.org/mrn","value":"im"}]}`
		const criteria = "/Patient?identifier=http://example.org/mrn|im"
		for _, tag := range []string{`W/"1"`, "*", `W/"1", W/"2"`} {
			c.do("PUT", criteria, body, "If-Match", tag).want(t, http.StatusPreconditionFailed).outcome(t, "conflict", "")
		}
		tx := `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + body +
			`,"request":{"method":"PUT","url":"Patient?identifier=http://example.org/mrn|im","ifMatch":"W/\"1\""}}]}`
		c.do("POST", "", tx).want(t, http.StatusPreconditionFailed)
		if total := get(c.do("GET", criteria+"&_summary=count", "").want(t, http.StatusOK).json(t), "total"); total != 0.0 {
			t.Errorf("%v Patients created under If-Match, want none", total)
		}
	})
}

// A conditional update whose criteria match nothing creates the resource
// with the body's id only when that id is free (or deleted): an id that
// names another resource is 409, and that resource is left as it was,
// alone or in a transaction.
func TestConditionalUpdateOfAnotherID(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		const other = `{"resourceType":"Patient","id":"other","identifier":[{"system":"http://example.org/mrn","value":"1"}],"gender":"female"}`
		c.do("PUT", "/Patient/other", other).want(t, http.StatusCreated)
		body := `{"resourceType":"Patient","id":"other","identifier":[{"system":"http://example.org/mrn","value":"2"}],"gender":"male"}`
		c.do("PUT", "/Patient?identifier=http://example.org/mrn|2", body).want(t, http.StatusConflict).outcome(t, "conflict", "Patient.id")
		tx := `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + body +
			`,"request":{"method":"PUT","url":"Patient?identifier=http://example.org/mrn|2"}}]}`
		c.do("POST", "", tx).want(t, http.StatusConflict)
		got := c.do("GET", "/Patient/other", "").want(t, http.StatusOK).json(t)
		if str(got, "meta", "versionId") != "1" || str(got, "gender") != "female" {
			t.Errorf("Patient/other was overwritten: %v", got)
		}

		c.do("DELETE", "/Patient/other", "").want(t, http.StatusNoContent)
		c.do("PUT", "/Patient?identifier=http://example.org/mrn|2", body).want(t, http.StatusCreated)
		c.do("PUT", "/Patient?identifier=http://example.org/mrn|3", strings.Replace(body, `"other"`, `"fresh"`, 1)).want(t, http.StatusCreated)
	})
}

func TestHistory(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", patient), "id")
		c.do("PUT", "/Patient/"+id, `{"resourceType":"Patient","id":"`+id+`","gender":"male"}`).want(t, 200)
		c.do("DELETE", "/Patient/"+id, "").want(t, 204)
		obs := str(c.create("Observation", `{"resourceType":"Observation","status":"final","code":{"text":"weight"},"valueQuantity":{"value":72.50,"unit":"kg"}}`), "id")

		h := c.do("GET", "/Patient/"+id+"/_history", "").want(t, 200).json(t)
		if str(h, "type") != "history" || get(h, "total") != 3.0 {
			t.Fatalf("instance history: %v", h)
		}
		wantMethods := []string{"DELETE", "PUT", "POST"}
		for i, m := range wantMethods {
			if got := str(h, "entry", i, "request", "method"); got != m {
				t.Errorf("entry %d method %q, want %q", i, got, m)
			}
			if got, want := str(h, "entry", i, "response", "etag"), fmt.Sprintf(`W/"%d"`, 3-i); got != want {
				t.Errorf("entry %d etag %q, want %q", i, got, want)
			}
		}
		if get(h, "entry", 0, "resource") != nil || str(h, "entry", 2, "resource", "gender") != "female" {
			t.Errorf("history entries carry the wrong resources: %v", h["entry"])
		}
		if str(h, "entry", 0, "fullUrl") != c.base+"/Patient/"+id {
			t.Errorf("fullUrl %q", str(h, "entry", 0, "fullUrl"))
		}

		typ := c.do("GET", "/Observation/_history", "").want(t, 200).json(t)
		if get(typ, "total") != 1.0 || str(typ, "entry", 0, "resource", "id") != obs {
			t.Errorf("type history: %v", typ)
		}
		sys := c.do("GET", "/_history", "").want(t, 200)
		if !strings.Contains(string(sys.body), `"value":72.50`) {
			t.Errorf("system history re-encoded a decimal: %s", sys.body)
		}
		types := map[string]int{}
		for _, e := range get(sys.json(t), "entry").([]any) {
			types[strings.Split(str(e, "request", "url"), "/")[0]]++
		}
		if get(sys.json(t), "total") != 4.0 || types["Patient"] != 3 || types["Observation"] != 1 {
			t.Errorf("system history: %s", sys.body)
		}
		c.do("GET", "/Patient/nope/_history", "").want(t, 404)
		c.do("GET", "/_history?_count=x", "").want(t, 400).outcome(t, "invalid", "_count")
		c.do("GET", "/_history?_since=yesterday", "").want(t, 400).outcome(t, "invalid", "_since")
		c.do("GET", "/_history?_at=2025-13", "").want(t, 400).outcome(t, "invalid", "_at")
		c.do("GET", "/_history?_cursor=bm9wZQ", "").want(t, 400).outcome(t, "invalid", "_cursor")
		// JSON that names no position ({}, null, a version 0) is no cursor
		// either: read as one, it would answer an empty last page.
		for _, cur := range []string{"e30", "bnVsbA", "eyJ0IjoxLCJyIjoiUGF0aWVudCIsImkiOiJhIiwidiI6MH0"} {
			c.do("GET", "/Patient/_history?_cursor="+cur, "").want(t, 400).outcome(t, "invalid", "_cursor")
		}
		future := url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
		if n := get(c.do("GET", "/_history?_since="+future, "").want(t, 200).json(t), "total"); n != 0.0 {
			t.Errorf("_since in the future: total %v", n)
		}
		if n := get(c.do("GET", "/_history?_since=2000", "").want(t, 200).json(t), "total"); n != 4.0 {
			t.Errorf("_since=2000: total %v", n)
		}
		// _at before anything existed sees nothing; _at now sees the current versions.
		if n := get(c.do("GET", "/_history?_at=2000", "").want(t, 200).json(t), "total"); n != 0.0 {
			t.Errorf("_at=2000: total %v", n)
		}
		now := url.QueryEscape(time.Now().Add(time.Minute).UTC().Format(time.RFC3339))
		at := c.do("GET", "/Patient/"+id+"/_history?_at="+now, "").want(t, 200).json(t)
		if get(at, "total") != 1.0 || str(at, "entry", 0, "request", "method") != "DELETE" {
			t.Errorf("_at now: %v", at)
		}
	})
}

// TestHistoryAtReplacement asks a resource's history _at the instant its
// second version replaced the first: the second alone, as a version is
// current from its lastUpdated until the next version's, that instant
// excluded (R4 http.html#history, _at: the versions current at some point
// of the period the value denotes). The millisecond before finds the
// first alone; the whole second (a value of seconds precision), both.
func TestHistoryAtReplacement(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := c.create("Patient", `{"resourceType":"Patient","gender":"female"}`)["id"].(string)
		// The update is made well inside a second, and later than the
		// create, so that the second it falls in holds both versions.
		time.Sleep(5 * time.Millisecond)
		for ms := time.Now().Nanosecond() / 1e6; ms < 50 || ms > 900; ms = time.Now().Nanosecond() / 1e6 {
			time.Sleep(20 * time.Millisecond)
		}
		v2 := c.do("PUT", "/Patient/"+id, `{"resourceType":"Patient","id":"`+id+`","gender":"male"}`).want(t, 200).json(t)
		replaced, err := time.Parse(time.RFC3339Nano, str(v2, "meta", "lastUpdated"))
		if err != nil {
			t.Fatal(err)
		}
		for at, want := range map[string][]string{
			replaced.Format("2006-01-02T15:04:05.000Z07:00"):                        {"2"},
			replaced.Add(-time.Millisecond).Format("2006-01-02T15:04:05.000Z07:00"): {"1"},
			replaced.Truncate(time.Second).Format(time.RFC3339):                     {"2", "1"},
		} {
			h := c.do("GET", "/Patient/"+id+"/_history?_at="+url.QueryEscape(at), "").want(t, 200).json(t)
			var got []string
			entries, _ := get(h, "entry").([]any)
			for _, e := range entries {
				got = append(got, str(e, "resource", "meta", "versionId"))
			}
			if !slices.Equal(got, want) {
				t.Errorf("_at=%s (the update at %s): versions %v, want %v", at, str(v2, "meta", "lastUpdated"), got, want)
			}
		}
	})
}

// A version is never dated before the one it replaces, even when that one
// was written by a process whose clock is ahead of this one's (several
// processes share a MongoDB database): history lists the versions newest
// first, and _since the last version seen finds every later one.
func TestLastUpdatedNeverGoesBack(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		ahead := time.Now().UTC().Add(time.Hour).Truncate(time.Millisecond)
		stamp := ahead.Format("2006-01-02T15:04:05.000Z07:00")
		body := `{"resourceType":"Patient","id":"skew","meta":{"versionId":"1","lastUpdated":"` + stamp + `"},"gender":"female"}`
		if err := c.st.Put(t.Context(), &store.Write{Type: "Patient", ID: "skew", LastUpdated: ahead, JSON: []byte(body)}); err != nil {
			t.Fatal(err)
		}
		for _, w := range []struct{ method, body, contentType string }{
			{"PUT", `{"resourceType":"Patient","id":"skew","gender":"male"}`, "application/fhir+json"},
			{"PATCH", `[{"op":"replace","path":"/gender","value":"other"}]`, "application/json-patch+json"},
		} {
			r := c.do(w.method, "/Patient/skew", w.body, "Content-Type", w.contentType).want(t, http.StatusOK)
			if got := str(r.json(t), "meta", "lastUpdated"); got < stamp {
				t.Errorf("%s: lastUpdated %s, before that of the version it replaced, %s", w.method, got, stamp)
			}
		}
		c.do("DELETE", "/Patient/skew", "").want(t, http.StatusNoContent)
		h := c.do("GET", "/Patient/skew/_history?_since="+url.QueryEscape(stamp), "").want(t, http.StatusOK).json(t)
		var etags []string
		for i := range 4 {
			etags = append(etags, str(h, "entry", i, "response", "etag"))
		}
		if got := strings.Join(etags, " "); got != `W/"4" W/"3" W/"2" W/"1"` {
			t.Errorf("history since version 1 lists %s, want versions 4 to 1", got)
		}
	})
}

// TestHistoryCreations: in a history, a version that created its resource,
// version 1 or the first after a deletion, is 201 Created, whatever page
// the version before it is on; other versions are updates, 200 OK.
func TestHistoryCreations(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", patient), "id")
		c.do("PUT", "/Patient/"+id, `{"resourceType":"Patient","id":"`+id+`","gender":"male"}`).want(t, http.StatusOK)
		c.do("DELETE", "/Patient/"+id, "").want(t, http.StatusNoContent)
		c.do("PUT", "/Patient/"+id, `{"resourceType":"Patient","id":"`+id+`","gender":"female"}`).want(t, http.StatusCreated)
		c.do("PATCH", "/Patient/"+id, `[{"op":"replace","path":"/gender","value":"other"}]`, "Content-Type", jsonPatch).want(t, http.StatusOK)
		ref := "Patient/" + id
		want := []struct{ method, url, status, location string }{
			{"PATCH", ref, "200 OK", ref + "/_history/5"},
			{"PUT", ref, "201 Created", ref + "/_history/4"},
			{"DELETE", ref, "204 No Content", ""},
			{"PUT", ref, "200 OK", ref + "/_history/2"},
			{"POST", "Patient", "201 Created", ref + "/_history/1"},
		}
		check := func(t *testing.T, e any, i int) {
			t.Helper()
			w := want[i]
			got := []string{str(e, "request", "method"), str(e, "request", "url"), str(e, "response", "status"), str(e, "response", "location")}
			if !slices.Equal(got, []string{w.method, w.url, w.status, w.location}) {
				t.Errorf("version %d: request and response %q, want %q", 5-i, got, []string{w.method, w.url, w.status, w.location})
			}
		}
		for i, e := range list(get(c.do("GET", "/"+ref+"/_history", "").want(t, http.StatusOK).json(t), "entry")) {
			check(t, e, i)
		}
		// One version a page: the version before each is read, not found on the page.
		for i, next := 0, c.base+"/"+ref+"/_history?_count=1"; next != ""; i++ {
			page := c.do("GET", next, "").want(t, http.StatusOK).json(t)
			check(t, get(page, "entry", 0), i)
			next = ""
			for _, l := range list(get(page, "link")) {
				if str(l, "relation") == "next" {
					next = str(l, "url")
				}
			}
		}
		sys := c.do("GET", "/_history?_count=2", "").want(t, http.StatusOK).json(t)
		for i, e := range list(get(sys, "entry")) {
			check(t, e, i)
		}
	})
}

// TestHistoryRecordsMethod: a history shows each version with the method
// of the interaction that made it, at every level and after _since, so
// that a client replaying it makes the same versions: a PUT that created
// its resource (update as create, a conditional update matching nothing,
// a transaction's PUT entry) is a PUT of the resource, not a POST of its
// type. A version stored with no method recorded, as the versions written
// before the engines recorded it, is shown as before: version 1 a POST.
func TestHistoryRecordsMethod(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		since := url.QueryEscape(time.Now().UTC().Add(-time.Second).Format(time.RFC3339Nano))
		c.do("PUT", "/Patient/put-made", `{"resourceType":"Patient","id":"put-made","gender":"male"}`).want(t, http.StatusCreated)
		posted := str(c.create("Patient", patient), "id")
		c.do("PATCH", "/Patient/"+posted, `[{"op":"replace","path":"/gender","value":"other"}]`, "Content-Type", jsonPatch).want(t, http.StatusOK)
		c.do("DELETE", "/Patient/"+posted, "").want(t, http.StatusNoContent)
		cond := str(c.do("PUT", "/Patient?identifier=urn:x|cond", `{"resourceType":"Patient","identifier":[{"system":"urn:x","value":"cond"}]}`).want(t, http.StatusCreated).json(t), "id")
		c.do("POST", "", `{"resourceType":"Bundle","type":"transaction","entry":[
			{"resource":{"resourceType":"Patient","id":"tx-put"},"request":{"method":"PUT","url":"Patient/tx-put"}},
			{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]}`).want(t, http.StatusOK)
		old := `{"resourceType":"Patient","id":"old","meta":{"versionId":"1","lastUpdated":"2020-01-01T00:00:00.000Z"}}`
		if err := c.st.Put(t.Context(), &store.Write{Type: "Patient", ID: "old", LastUpdated: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), JSON: []byte(old)}); err != nil {
			t.Fatal(err)
		}

		want := map[string]string{ // id/version: method url
			"put-made/1":  "PUT Patient/put-made",
			posted + "/1": "POST Patient",
			posted + "/2": "PATCH Patient/" + posted,
			posted + "/3": "DELETE Patient/" + posted,
			cond + "/1":   "PUT Patient/" + cond,
			"tx-put/1":    "PUT Patient/tx-put",
			"old/1":       "POST Patient",
		}
		check := func(t *testing.T, path string, n int) {
			t.Helper()
			h := c.do("GET", path, "").want(t, http.StatusOK).json(t)
			entries := list(get(h, "entry"))
			if len(entries) != n {
				t.Fatalf("%s: %d entries, want %d", path, len(entries), n)
			}
			for _, e := range entries {
				parts := strings.Split(str(e, "fullUrl"), "/")
				id := parts[len(parts)-1]
				version := strings.Trim(strings.TrimPrefix(str(e, "response", "etag"), "W/"), `"`)
				got := str(e, "request", "method") + " " + str(e, "request", "url")
				w, ok := want[id+"/"+version]
				if !ok {
					w = "POST Patient" // the transaction's POST
				}
				if got != w {
					t.Errorf("%s: %s/%s made by %q, want %q", path, id, version, got, w)
				}
			}
		}
		check(t, "/Patient/put-made/_history", 1)
		check(t, "/Patient/"+posted+"/_history", 3)
		check(t, "/Patient/_history", 8)
		check(t, "/_history", 8)
		check(t, "/_history?_since="+since, 7)
	})
}

func TestHistoryPaging(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		const n = 25
		want := map[string]bool{}
		for i := 0; i < n; i++ {
			want[str(c.create("Patient", patient), "id")] = true
		}
		seen := map[string]bool{}
		next := c.base + "/Patient/_history?_count=7"
		pages := 0
		for next != "" {
			pages++
			page := c.do("GET", next, "").want(t, 200).json(t)
			next = ""
			for _, l := range get(page, "link").([]any) {
				if str(l, "relation") == "next" {
					next = str(l, "url")
				}
			}
			entries, _ := get(page, "entry").([]any)
			if len(entries) > 7 {
				t.Fatalf("page of %d entries with _count=7", len(entries))
			}
			for _, e := range entries {
				id := str(e, "resource", "id")
				if seen[id] {
					t.Errorf("%s seen twice", id)
				}
				seen[id] = true
			}
		}
		if len(seen) != n || pages != 4 {
			t.Errorf("walked %d pages and %d resources, want 4 and %d", pages, len(seen), n)
		}
		for id := range want {
			if !seen[id] {
				t.Errorf("%s never seen", id)
			}
		}
	})
}

// A client polling the history _since the meta.lastUpdated of its last
// answer misses no version, even one stamped before that answer and
// committed after it: the answer is dated no later than any write still
// under way.
func TestHistorySinceMissesNoWriteUnderWay(t *testing.T) {
	stamped := make(chan string)
	release := make(chan struct{})
	hold := func(cfg *server.Config) {
		cfg.Hooks = append(cfg.Hooks, operation.Hook{Name: "hold", Types: []string{"Observation"},
			Check: func(_ context.Context, _ operation.Store, ch *operation.Change) error {
				stamped <- ch.Resource.GetMeta().LastUpdated.Get()
				<-release
				return nil
			}})
	}
	eachEngine(t, func(t *testing.T, c *client) {
		created := make(chan *response)
		go func() {
			created <- c.do("POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"weight"}}`)
		}()
		stamp := <-stamped
		// The poll comes a millisecond or more after the stamp, as it
		// would from another client.
		for time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00") <= stamp {
			time.Sleep(time.Millisecond)
		}
		poll := get(c.do("GET", "/_history", "").want(t, http.StatusOK).json(t), "meta", "lastUpdated")
		release <- struct{}{}
		id := str((<-created).want(t, http.StatusCreated).json(t), "id")

		next := c.do("GET", "/_history?_since="+url.QueryEscape(poll.(string)), "").want(t, http.StatusOK).json(t)
		for _, e := range list(get(next, "entry")) {
			if str(e, "fullUrl") == c.base+"/Observation/"+id {
				return
			}
		}
		t.Errorf("Observation/%s, stamped %s and committed after a history dated %v, is not in the history _since then: %v", id, stamp, poll, next)
	}, hold)
}

// TestHistoryNotHeldBackByReads: a request that writes nothing, though
// sent with POST (a search, an operation that does not affect state), is
// not among the writes under way, so a history answered while it runs is
// dated after it began, not before.
func TestHistoryNotHeldBackByReads(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", patient), "id")
		for _, tt := range []struct{ path, contentType, body string }{
			{"/Patient/_search", "application/x-www-form-urlencoded", "_id=" + id},
			{"/_search", "application/x-www-form-urlencoded", "_type=Patient&_id=" + id},
			{"/Patient/" + id + "/$everything", "application/fhir+json", `{"resourceType":"Parameters"}`},
		} {
			finish := c.bodyHeldOpen("POST", tt.path, tt.contentType)
			// The server is reading the body: the request has passed
			// every middleware. The poll comes a millisecond or more
			// later, as it would from another client.
			began := time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00")
			for time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00") <= began {
				time.Sleep(time.Millisecond)
			}
			poll := str(c.do("GET", "/_history", "").want(t, http.StatusOK).json(t), "meta", "lastUpdated")
			finish(tt.body).want(t, http.StatusOK)
			if poll <= began {
				t.Errorf("POST %s under way since %s: a history answered meanwhile is dated %s, not after it began", tt.path, began, poll)
			}
		}
	})
}

// bodyHeldOpen sends a request whose body the server waits for, and
// returns once the server has begun reading it (it asks the client to
// continue); finish sends the body and returns the response.
func (c *client) bodyHeldOpen(method, path, contentType string) (finish func(body string) *response) {
	c.t.Helper()
	pr, pw := io.Pipe()
	reading := make(chan struct{})
	trace := &httptrace.ClientTrace{Got100Continue: func() { close(reading) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(c.t.Context(), trace), method, c.base+path, pr)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Expect", "100-continue")
	done := make(chan *response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- &response{body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- &response{status: resp.StatusCode, header: resp.Header, body: b}
	}()
	select {
	case <-reading:
	case r := <-done:
		c.t.Fatalf("%s %s answered before reading its body: %d %s", method, path, r.status, truncate(r.body))
	}
	return func(body string) *response {
		io.WriteString(pw, body)
		pw.Close()
		return <-done
	}
}

// With other processes writing to the same database, whose writes under
// way the server does not see, a history is dated HistorySettle before
// now: a version another process stamped before the answer and committed
// after it is in the history _since the answer's date.
func TestHistorySinceMissesNoWriteOfAnotherProcess(t *testing.T) {
	settle := func(cfg *server.Config) { cfg.HistorySettle = time.Minute }
	eachEngine(t, func(t *testing.T, c *client) {
		stamped := time.Now().UTC().Add(-time.Second).Truncate(time.Millisecond)
		poll := str(c.do("GET", "/Patient/_history", "").want(t, http.StatusOK).json(t), "meta", "lastUpdated")
		body := `{"resourceType":"Patient","id":"elsewhere","meta":{"versionId":"1","lastUpdated":"` + stamped.Format("2006-01-02T15:04:05.000Z07:00") + `"}}`
		if err := c.st.Put(t.Context(), &store.Write{Type: "Patient", ID: "elsewhere", LastUpdated: stamped, JSON: []byte(body)}); err != nil {
			t.Fatal(err)
		}
		next := c.do("GET", "/Patient/_history?_since="+url.QueryEscape(poll), "").want(t, http.StatusOK).json(t)
		if get(next, "total") != 1.0 || str(next, "entry", 0, "fullUrl") != c.base+"/Patient/elsewhere" {
			t.Errorf("a version stamped %s and committed after a history dated %s is not in the history _since then: %v", stamped, poll, next)
		}
	}, settle)
}

// Every page of a history is dated as its first page: a client that
// pages to the end and polls _since the date of the last page it read
// misses no version written while it paged, which is newer than the
// first page and so on none of the pages after it.
func TestHistoryPagesDatedAsTheFirst(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("GET", "/Patient/_history?_cursor=e30.x", "").want(t, http.StatusBadRequest).outcome(t, "invalid", "_cursor")
		for range 3 {
			c.create("Patient", patient)
		}
		var date string
		var during string
		for next := c.base + "/Patient/_history?_count=1"; next != ""; {
			page := c.do("GET", next, "").want(t, http.StatusOK).json(t)
			date = str(page, "meta", "lastUpdated")
			if during == "" {
				during = str(c.create("Patient", patient), "id")
				// Later pages are then read a few milliseconds after the
				// write, so a page dated when it is read is dated after
				// it, as a poller's page would be.
				time.Sleep(5 * time.Millisecond)
			}
			next = ""
			for _, l := range list(get(page, "link")) {
				if str(l, "relation") == "next" {
					next = str(l, "url")
				}
			}
		}
		since := c.do("GET", "/Patient/_history?_since="+url.QueryEscape(date), "").want(t, http.StatusOK).json(t)
		for _, e := range list(get(since, "entry")) {
			if str(e, "fullUrl") == c.base+"/Patient/"+during {
				return
			}
		}
		t.Errorf("Patient/%s, written while the history was paged, is not in the history _since its last page's date %s: %v", during, date, since)
	})
}

func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", patient), "id")
		const writers, each = 6, 4
		var wg sync.WaitGroup
		var mu sync.Mutex
		succeeded := 0
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for done := 0; done < each; {
					cur := c.do("GET", "/Patient/"+id, "")
					// Each update changes the content: one that did
					// not would write no version.
					body := fmt.Sprintf(`{"resourceType":"Patient","id":%q,"name":[{"text":"writer %d, update %d"}]}`, id, w, done)
					r := c.do("PUT", "/Patient/"+id, body, "If-Match", cur.header.Get("ETag"))
					switch r.status {
					case http.StatusOK:
						done++
						mu.Lock()
						succeeded++
						mu.Unlock()
					case http.StatusPreconditionFailed:
					default:
						t.Errorf("update: %d %s", r.status, r.body)
						return
					}
				}
			}()
		}
		wg.Wait()
		final := c.do("GET", "/Patient/"+id, "").want(t, 200)
		if want := fmt.Sprintf(`W/"%d"`, succeeded+1); final.header.Get("ETag") != want {
			t.Errorf("final ETag %s after %d successful updates, want %s", final.header.Get("ETag"), succeeded, want)
		}
		h := c.do("GET", "/Patient/"+id+"/_history?_count=100", "").want(t, 200).json(t)
		if get(h, "total") != float64(succeeded+1) {
			t.Errorf("history total %v, want %d", get(h, "total"), succeeded+1)
		}
	})
}

func TestNegotiation(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", patient), "id")
		tests := []struct {
			name, query string
			headers     []string
			status      int
			contentType string
		}{
			{"default", "", nil, 200, "application/fhir+json"},
			{"_format=json", "?_format=json", nil, 200, "application/fhir+json"},
			{"_format long", "?_format=" + url.QueryEscape("application/fhir+json"), nil, 200, "application/fhir+json"},
			{"accept fhir json", "", []string{"Accept", "application/fhir+json"}, 200, "application/fhir+json"},
			{"accept json", "", []string{"Accept", "application/json"}, 200, "application/json"},
			{"accept any", "", []string{"Accept", "text/html, */*;q=0.8"}, 200, "application/fhir+json"},
			{"accept fhir xml", "", []string{"Accept", "application/fhir+xml"}, 200, "application/fhir+xml"},
			{"accept xml", "", []string{"Accept", "application/xml"}, 200, "application/xml"},
			{"_format=xml", "?_format=xml", nil, 200, "application/fhir+xml"},
			{"_format wins over accept", "?_format=json", []string{"Accept", "application/fhir+xml"}, 200, "application/fhir+json"},
			{"accept html only", "", []string{"Accept", "text/html"}, 406, "application/fhir+json"},
			{"_format unknown", "?_format=turtle", nil, 406, "application/fhir+json"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := c.do("GET", "/Patient/"+id+tt.query, "", tt.headers...).want(t, tt.status)
				if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, tt.contentType) {
					t.Errorf("Content-Type %q, want %q", ct, tt.contentType)
				}
				if tt.status == 406 {
					r.outcome(t, "not-supported", "")
				}
			})
		}
		// Neither _format nor Accept asking for a format, the answer is in
		// the format of the body sent.
		const asXML = `<Patient xmlns="http://hl7.org/fhir"><gender value="female"/></Patient>`
		for _, tt := range []struct{ contentType, accept, query, want string }{
			{"application/fhir+xml", "", "", "application/fhir+xml"},
			{"application/fhir+xml", "*/*", "", "application/fhir+xml"},
			{"application/xml", "", "", "application/xml"},
			{"application/fhir+xml", "application/fhir+json", "", "application/fhir+json"},
			{"application/fhir+xml", "", "?_format=json", "application/fhir+json"},
		} {
			r := c.do("POST", "/Patient"+tt.query, asXML, "Content-Type", tt.contentType, "Accept", tt.accept).want(t, http.StatusCreated)
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, tt.want) {
				t.Errorf("POST of %s, Accept %q%s: Content-Type %q, want %s", tt.contentType, tt.accept, tt.query, ct, tt.want)
			}
		}
		if ct := c.do("POST", "/Patient", patient).want(t, http.StatusCreated).header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
			t.Errorf("POST of JSON without Accept: Content-Type %q", ct)
		}

		pretty := c.do("GET", "/Patient/"+id+"?_pretty=true", "").want(t, 200)
		if !strings.Contains(string(pretty.body), "\n  \"resourceType\"") {
			t.Errorf("_pretty=true not indented: %s", pretty.body)
		}
		var compact, indented any
		json.Unmarshal(c.do("GET", "/Patient/"+id, "").body, &compact)
		json.Unmarshal(pretty.body, &indented)
		if fmt.Sprint(compact) != fmt.Sprint(indented) {
			t.Errorf("_pretty changed content")
		}
	})
}

func TestRoutingErrors(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		// The base with a trailing slash is the base.
		if got := str(c.do("GET", "/?_type=Patient", "").want(t, 200).json(t), "type"); got != "searchset" {
			t.Errorf("GET /fhir/: a %q Bundle, want a searchset", got)
		}
		c.do("GET", "/Patient/1/2/3/4/5", "").want(t, 404).outcome(t, "not-found", "")
		c.do("GET", "/Patient/1/2/3/4", "").want(t, 404).outcome(t, "not-found", "")
		r := c.do("POST", "/Patient/1", patient).want(t, 405)
		r.outcome(t, "not-supported", "")
		if !strings.Contains(r.header.Get("Allow"), "GET") {
			t.Errorf("405 without Allow: %v", r.header)
		}
		c.do("GET", "/Patient/$where", "").want(t, 404).outcome(t, "not-supported", "")
		c.do("GET", "/Patient/1$x", "").want(t, 400).outcome(t, "value", "")
	})
}

// TestTrailingSlash: a path under the base ending in a slash is served as
// the path without it, as HAPI FHIR serves it: a search of the type, a
// create, a read, the histories.
func TestTrailingSlash(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		created := c.do("POST", "/Patient/", patient).want(t, http.StatusCreated).json(t)
		id := str(created, "id")
		b := c.do("GET", "/Patient/?_id="+id, "").searchset(t)
		if got := b.ids("match"); got != "Patient/"+id {
			t.Errorf("GET /Patient/?_id=%s: %q, want Patient/%s", id, got, id)
		}
		if self := b.link("self"); !strings.Contains(self, "/fhir/Patient?") {
			t.Errorf("self link %q, want the type's search URL", self)
		}
		form := c.do("POST", "/Patient/_search/", "_id="+id, "Content-Type", "application/x-www-form-urlencoded")
		if got := form.searchset(t).ids("match"); got != "Patient/"+id {
			t.Errorf("POST /Patient/_search/: %q, want Patient/%s", got, id)
		}
		if got := str(c.do("GET", "/Patient/"+id+"/", "").want(t, http.StatusOK).json(t), "id"); got != id {
			t.Errorf("GET /Patient/%s/: id %q", id, got)
		}
		for _, path := range []string{"/Patient/" + id + "/_history/", "/Patient/_history/", "/_history/"} {
			if got := str(c.do("GET", path, "").want(t, http.StatusOK).json(t), "type"); got != "history" {
				t.Errorf("GET %s: a %q Bundle, want a history", path, got)
			}
		}
		if got := str(c.do("GET", "/Patient/"+id+"/_history/1/", "").want(t, http.StatusOK).json(t), "id"); got != id {
			t.Errorf("GET /Patient/%s/_history/1/: id %q", id, got)
		}
		c.do("GET", "/Patient/"+id+"//", "").want(t, http.StatusNotFound).outcome(t, "not-found", "")
	})
}

// TestAllow: a method not served on a path is 405, whose Allow lists the
// methods served there: no POST on an instance or below it (operations
// aside), GET and HEAD alone on metadata and _history and on the audit
// trail, POST alone on the path of an operation GET may not invoke; a type
// not served, an operation not served where it is named and the SMART
// configuration of a server without authentication are 404 whatever the
// method.
func TestAllow(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		const instance = "GET, HEAD, PUT, PATCH, DELETE"
		for _, tt := range []struct{ method, path, allow string }{
			{"PUT", "/metadata", "GET, HEAD"},
			{"POST", "/metadata", "GET, HEAD"},
			{"DELETE", "/metadata", "GET, HEAD"},
			{"PATCH", "/metadata", "GET, HEAD"},
			{"TRACE", "/metadata", "GET, HEAD"},
			{"PUT", "/_history", "GET, HEAD"},
			{"TRACE", "/Patient/1", instance},
			{"POST", "/Patient/1", instance},
			{"TRACE", "/Patient/1/_history", "GET, HEAD"},
			{"POST", "/Patient/1/_history", "GET, HEAD"},
			{"TRACE", "/Patient", "GET, HEAD, POST"},
			{"PUT", "/Patient", "GET, HEAD, POST"},
			{"TRACE", "/Patient?identifier=x", "GET, HEAD, POST, PUT, PATCH, DELETE"},
			{"TRACE", "/Patient/1/$meta", "GET, HEAD, POST"},
			{"PUT", "/", "GET, HEAD, POST"},
			{"PUT", "/Patient/1/_search", "POST"},
			{"DELETE", "/Patient/1/Observation/_search", "POST"},
			{"POST", "/AuditEvent", "GET, HEAD"},
			{"PUT", "/AuditEvent?outcome=0", "GET, HEAD"},
			{"DELETE", "/AuditEvent/1", "GET, HEAD"},
			{"PATCH", "/AuditEvent/1", "GET, HEAD"},
			{"TRACE", "/AuditEvent", "GET, HEAD"},
			{"GET", "/Patient/1/$meta-delete", "POST"},
			{"GET", "/Patient/1/$meta-add", "POST"},
			{"TRACE", "/Patient/1/$meta-add", "POST"},
			{"PUT", "/Patient/1/$meta-add", "POST"},
			{"PATCH", "/Patient/1/$meta-add", "POST"},
			{"DELETE", "/Patient/1/$meta-delete", "POST"},
			{"OPTIONS", "/Patient/1/$meta-delete", "POST"},
			{"TRACE", "/$import", "POST"},
			{"PUT", "/$import", "POST"},
			{"DELETE", "/$import", "POST"},
			{"PUT", "/Patient/$meta", "GET, HEAD, POST"},
			{"DELETE", "/$meta", "GET, HEAD, POST"},
		} {
			r := c.do(tt.method, tt.path, "").want(t, http.StatusMethodNotAllowed)
			r.outcome(t, "not-supported", "")
			if got := r.header.Get("Allow"); got != tt.allow {
				t.Errorf("%s %s: Allow %q, want %q", tt.method, tt.path, got, tt.allow)
			}
			// Each method allowed is served: none of them is 405.
			for _, m := range strings.Split(tt.allow, ", ") {
				if r := c.do(m, tt.path, ""); r.status == http.StatusMethodNotAllowed {
					t.Errorf("%s %s is 405 though Allow lists it: %s", m, tt.path, truncate(r.body))
				}
			}
		}
		// Only the Patient compartment is searched: another's search is no
		// endpoint, whatever the method.
		for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
			for _, path := range []string{"/Observation/1/_search", "/Encounter/1/Observation/_search"} {
				c.do(m, path, "").want(t, http.StatusNotFound)
			}
		}
		// A type not served, an operation not served there, and the SMART
		// configuration of a server that takes no tokens are no endpoint,
		// whatever the method: a 405 would list methods that all answer
		// 404.
		for _, m := range []string{"GET", "POST", "PUT", "DELETE", "TRACE"} {
			for _, path := range []string{"/Foo", "/Foo/1", "/Foo/1/_history", "/Foo/1/$meta",
				"/$foo", "/Patient/$foo", "/Patient/1/$foo", "/Patient/$meta-add", "/$meta-add",
				"/.well-known/smart-configuration", "/Observation/1/$everything", "/Patient/1/_history/$meta"} {
				if r := c.do(m, path, ""); r.status != http.StatusNotFound || r.header.Get("Allow") != "" {
					t.Errorf("%s %s: %d (Allow %q), want 404 with no Allow", m, path, r.status, r.header.Get("Allow"))
				}
			}
		}
		if cs := c.do("GET", "/metadata", "").want(t, http.StatusOK).json(t); str(cs, "resourceType") != "CapabilityStatement" {
			t.Errorf("GET /metadata after refused writes: %v", cs)
		}
	}, withImport)
}

// TestAllowTypePaths: _search and _history below a type, _search below the
// base and below a patient, which the routes of an instance or of a type
// match, answer a method they do not take with 405 and the Allow of the
// path, as the other paths do, where a GET, PUT, PATCH or DELETE of
// Patient/_search was 400 for an invalid id "_search", and a GET of
// /_search or Patient/1/_search 404 for a type "_search" not served.
func TestAllowTypePaths(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		for _, tt := range []struct {
			path, allow string
			methods     []string
		}{
			{"/Patient/_search", "POST", []string{"GET", "HEAD", "PUT", "PATCH", "DELETE"}},
			{"/AuditEvent/_search", "POST", []string{"GET", "PUT", "DELETE"}},
			{"/Patient/1/_search", "POST", []string{"GET", "HEAD", "PATCH"}},
			{"/_search", "POST", []string{"GET", "HEAD", "PUT", "PATCH", "DELETE"}},
			{"/Patient/_history", "GET, HEAD", []string{"PUT", "PATCH", "DELETE"}},
		} {
			for _, m := range tt.methods {
				body := ""
				if m == "PUT" {
					body = `{"resourceType":"Patient","id":"x"}`
				}
				r := c.do(m, tt.path, body).want(t, http.StatusMethodNotAllowed)
				if got := r.header.Get("Allow"); got != tt.allow {
					t.Errorf("%s %s: Allow %q, want %q", m, tt.path, got, tt.allow)
				}
				if m != "HEAD" {
					r.outcome(t, "not-supported", "")
				}
			}
			for _, m := range strings.Split(tt.allow, ", ") {
				if r := c.do(m, tt.path, ""); r.status != http.StatusOK {
					t.Errorf("%s %s: %d, want 200: %s", m, tt.path, r.status, truncate(r.body))
				}
			}
		}
		// An id that is invalid is still 400 saying so.
		c.do("GET", "/Patient/_x", "").want(t, http.StatusBadRequest)
		c.do("PUT", "/Patient/_x", `{"resourceType":"Patient","id":"_x"}`).want(t, http.StatusBadRequest)
	})
}

func TestRequestLog(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("GET", "/Patient/unknown", "", "X-Request-Id", "req-123")
		if r.header.Get("X-Request-Id") != "req-123" {
			t.Errorf("X-Request-Id %q", r.header.Get("X-Request-Id"))
		}
		// Version 7: the time in milliseconds first, so that ids sort as
		// the requests came.
		uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
		before := time.Now().UnixMilli()
		id := c.do("GET", "/metadata", "").header.Get("X-Request-Id")
		after := time.Now().UnixMilli()
		if !uuid.MatchString(id) {
			t.Errorf("generated X-Request-Id %q, want a UUID of version 7", id)
		} else if ms, _ := strconv.ParseInt(strings.ReplaceAll(id[:13], "-", ""), 16, 64); ms < before || ms > after {
			t.Errorf("generated X-Request-Id %q names the time %d, want it between %d and %d", id, ms, before, after)
		}
		for _, bad := range []string{"has space", strings.Repeat("a", 65), "semi;colon"} {
			if id := c.do("GET", "/metadata", "", "X-Request-Id", bad).header.Get("X-Request-Id"); !uuid.MatchString(id) {
				t.Errorf("X-Request-Id %q answered %q, want a UUID of the server's", bad, id)
			}
		}
		if id := c.do("GET", "/metadata", "", "X-Request-Id", "A-z_0.9").header.Get("X-Request-Id"); id != "A-z_0.9" {
			t.Errorf("X-Request-Id A-z_0.9 answered %q", id)
		}
		found := false
		for _, l := range strings.Split(strings.TrimSpace(c.logs.String()), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["request_id"] == "req-123" {
				found = m["method"] == "GET" && m["path"] == "/fhir/Patient/unknown" && m["status"] == 404.0 && m["duration"] != nil
			}
		}
		if !found {
			t.Errorf("no request log line for req-123 in:\n%s", c.logs.String())
		}
	})
}

func TestMetadata(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		cs := c.do("GET", "/metadata", "").want(t, 200).json(t)
		if str(cs, "resourceType") != "CapabilityStatement" || str(cs, "fhirVersion") != "4.0.1" || str(cs, "kind") != "instance" {
			t.Fatalf("metadata: %v", cs)
		}
		var patientInteractions []string
		for _, r := range get(cs, "rest", 0, "resource").([]any) {
			if str(r, "type") == "Patient" {
				for _, i := range get(r, "interaction").([]any) {
					patientInteractions = append(patientInteractions, str(i, "code"))
				}
			}
		}
		for _, want := range []string{"read", "vread", "update", "delete", "history-instance", "history-type", "create"} {
			if !strings.Contains(strings.Join(patientInteractions, " "), want) {
				t.Errorf("Patient interactions %v lack %s", patientInteractions, want)
			}
		}
		if str(cs, "rest", 0, "interaction", 0, "code") != "history-system" {
			t.Errorf("system interactions: %v", get(cs, "rest", 0, "interaction"))
		}
	})
}

// TestBodyLimitWithoutLength checks the limit holds for a chunked body,
// whose size the server learns only while reading it.
func TestBodyLimitWithoutLength(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		body := `{"resourceType":"Patient","name":[{"family":"` + strings.Repeat("x", 4000) + `"}]}`
		req, err := http.NewRequest("POST", c.base+"/Patient", io.MultiReader(strings.NewReader(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/fhir+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		r := &response{status: resp.StatusCode, header: resp.Header, body: b}
		r.want(t, http.StatusRequestEntityTooLarge).outcome(t, "too-costly", "")
	}, func(cfg *server.Config) { cfg.MaxBodyBytes = 1024 })
}

// A UTF-8 byte order mark before a body, as some Windows clients send, is
// ignored (RFC 8259 §8.1 allows it), on a create, a patch and a
// transaction alike.
func TestByteOrderMark(t *testing.T) {
	const bom = "\xef\xbb\xbf"
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("PUT", "/Patient/bom", bom+`{"resourceType":"Patient","id":"bom","active":true}`).want(t, http.StatusCreated)
		c.do("PATCH", "/Patient/bom", bom+`[{"op":"replace","path":"/active","value":false}]`, "Content-Type", jsonPatch).want(t, http.StatusOK)
		tx := bom + `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","active":true},"request":{"method":"POST","url":"Patient"}}]}`
		c.do("POST", "", tx).want(t, http.StatusOK)
		if got := get(c.do("GET", "/Patient/bom", "").want(t, http.StatusOK).json(t), "active"); got != false {
			t.Errorf("active %v after the patch", got)
		}
		c.do("POST", "/Patient", bom).want(t, http.StatusBadRequest).outcome(t, "required", "")
	})
}

// TestNoEndpointBelowSystemPaths: metadata and _history are not resource
// types, so a path below them names no endpoint: 404 whatever the method,
// not a 405 whose Allow lists the method refused.
func TestNoEndpointBelowSystemPaths(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		for _, path := range []string{"/_history/1", "/metadata/1", "/_history/1/_history", "/_history/1/_history/2", "/metadata/1/$meta"} {
			for _, method := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} {
				r := c.do(method, path, "")
				if r.status != http.StatusNotFound {
					t.Errorf("%s %s: status %d (Allow %q), want 404", method, path, r.status, r.header.Get("Allow"))
					continue
				}
				if method != "HEAD" {
					r.outcome(t, "", "")
				}
			}
		}
	})
}

// TestVersionIDAsWritten: a version id is compared as the server writes
// it, so "01" or "+1" names no version, in a vread as in an If-Match,
// though both read as the number 1.
func TestVersionIDAsWritten(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", patient), "id")
		for _, vid := range []string{"01", "+1", "1.0"} {
			c.do("GET", "/Patient/"+id+"/_history/"+vid, "").want(t, http.StatusNotFound).outcome(t, "not-found", "")
			b := c.bundle(txBundle("batch", txEntry("", "GET", "Patient/"+id+"/_history/"+vid, "")))
			checkStatuses(t, b, "404 Not Found")
			tag := `W/"` + vid + `"`
			c.do("PUT", "/Patient/"+id, `{"resourceType":"Patient","id":"`+id+`","gender":"male"}`, "If-Match", tag).want(t, http.StatusBadRequest)
			c.do("DELETE", "/Patient/"+id, "", "If-Match", tag).want(t, http.StatusBadRequest)
			b = c.bundle(txBundle("batch", txEntry("", "DELETE", "Patient/"+id, "", "ifMatch", tag)))
			checkStatuses(t, b, "400 Bad Request")
		}
		cur := c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK)
		if got := cur.header.Get("ETag"); got != `W/"1"` {
			t.Errorf("ETag %s after refused writes, want W/\"1\"", got)
		}
		c.do("GET", "/Patient/"+id+"/_history/1", "").want(t, http.StatusOK)
	})
}

// TestWriteOverEngineDocumentLimit: a resource within the body limit but
// over what the engine holds in one document (MongoDB's 16 MiB) is refused
// at once with 422 too-costly naming the limit, and nothing is stored;
// SQLite holds it.
func TestWriteOverEngineDocumentLimit(t *testing.T) {
	large := func(cfg *server.Config) { cfg.MaxBodyBytes = 40 << 20 }
	data := base64.StdEncoding.EncodeToString(make([]byte, 13<<20)) // over 17 MiB as base64
	body := `{"resourceType":"DocumentReference","id":"big","status":"current","content":[{"attachment":{"contentType":"application/octet-stream","data":"` + data + `"}}]}`
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newClient(t, e.Open(t), large)
			r := c.do("PUT", "/DocumentReference/big", body)
			if e.Name == "sqlite" {
				r.want(t, http.StatusCreated)
				return
			}
			r.want(t, http.StatusUnprocessableEntity)
			if d := r.outcome(t, "too-costly", ""); !strings.Contains(d, "16 MiB") {
				t.Errorf("diagnostics %q do not say the limit", d)
			}
			c.do("GET", "/DocumentReference/big", "").want(t, http.StatusNotFound)
			if total, entries, _ := historyPage(t, c.do("GET", "/DocumentReference/_history", "")); total > 0 || len(entries) > 0 {
				t.Errorf("history holds %v (total %d), want nothing", entries, total)
			}
		})
	}
}

// TestSimultaneousPlainUpdates: updates without If-Match are applied in
// turn, last one wins: none is refused because another won the race to
// the same version, on an engine that detects that race (MongoDB) as on
// one that serialises writes (SQLite).
func TestSimultaneousPlainUpdates(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", patient), "id")
		const writers = 16
		var wg sync.WaitGroup
		statuses := make([]int, writers)
		for w := range writers {
			wg.Go(func() {
				body := fmt.Sprintf(`{"resourceType":"Patient","id":%q,"name":[{"text":"writer %d"}]}`, id, w)
				r := c.do("PUT", "/Patient/"+id, body)
				if statuses[w] = r.status; r.status != http.StatusOK {
					t.Errorf("writer %d: %d %s", w, r.status, truncate(r.body))
				}
			})
		}
		wg.Wait()
		final := c.do("GET", "/Patient/"+id, "").want(t, 200)
		if want := fmt.Sprintf(`W/"%d"`, writers+1); final.header.Get("ETag") != want && !t.Failed() {
			t.Errorf("final ETag %s after %d updates, want %s", final.header.Get("ETag"), writers, want)
		}
	})
}
