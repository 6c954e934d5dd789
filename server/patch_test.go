package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"carefhir/server"
	"carefhir/store"
)

const (
	jsonPatch = "application/json-patch+json"
	fhirJSON  = "application/fhir+json"
	fhirXML   = "application/fhir+xml"
)

// fhirPathPatch wraps FHIRPath Patch operations (their parts, as JSON) in a
// Parameters resource.
func fhirPathPatch(ops ...string) string {
	var params []string
	for _, op := range ops {
		params = append(params, `{"name":"operation","part":[`+op+`]}`)
	}
	return `{"resourceType":"Parameters","parameter":[` + strings.Join(params, ",") + `]}`
}

func TestPatch(t *testing.T) {
	const seed = `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}],
"name":[{"use":"official","family":"O'Brien","given":["Siân"]},{"use":"nickname","given":["Shan"]}],"gender":"female","birthDate":"1970-03-01"}`
	tests := []struct {
		name, contentType, body string
		headers                 []string
		check                   func(p map[string]any) bool
	}{
		{"JSON Patch replace", jsonPatch, `[{"op":"replace","path":"/gender","value":"male"}]`, nil,
			func(p map[string]any) bool { return str(p, "gender") == "male" }},
		{"JSON Patch add", jsonPatch, `[{"op":"add","path":"/name/0/given/-","value":"Mair"}]`, nil,
			func(p map[string]any) bool { return str(p, "name", 0, "given", 1) == "Mair" }},
		{"JSON Patch remove", jsonPatch, `[{"op":"remove","path":"/birthDate"}]`, nil,
			func(p map[string]any) bool { return get(p, "birthDate") == nil }},
		{"JSON Patch test then replace", jsonPatch, `[{"op":"test","path":"/name/0/family","value":"O'Brien"},{"op":"replace","path":"/name/0/family","value":"Byrne"}]`, nil,
			func(p map[string]any) bool { return str(p, "name", 0, "family") == "Byrne" }},
		// A name whose only given name is removed, then moved or copied,
		// lands without the given names, as it stays without them.
		{"JSON Patch move of a name a removal emptied", jsonPatch, `[{"op":"remove","path":"/name/1/given/0"},{"op":"move","from":"/name/1","path":"/name/0"}]`, nil,
			func(p map[string]any) bool {
				return len(get(p, "name").([]any)) == 2 && str(p, "name", 0, "use") == "nickname" && get(p, "name", 0, "given") == nil
			}},
		{"JSON Patch copy of a name a removal emptied", jsonPatch, `[{"op":"remove","path":"/name/1/given/0"},{"op":"copy","from":"/name/1","path":"/name/-"}]`, nil,
			func(p map[string]any) bool {
				return len(get(p, "name").([]any)) == 3 && str(p, "name", 2, "use") == "nickname" && get(p, "name", 2, "given") == nil
			}},
		{"JSON Patch with the current version", jsonPatch, `[{"op":"replace","path":"/gender","value":"other"}]`, []string{"If-Match", `W/"1"`},
			func(p map[string]any) bool { return str(p, "gender") == "other" }},
		{"FHIRPath Patch add", fhirJSON, fhirPathPatch(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"telecom"},{"name":"value","valueContactPoint":{"system":"phone","value":"01632 960001"}}`), nil,
			func(p map[string]any) bool { return str(p, "telecom", 0, "value") == "01632 960001" }},
		{"FHIRPath Patch add to a choice", fhirJSON, fhirPathPatch(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"deceased"},{"name":"value","valueDateTime":"2024-05-01T10:00:00Z"}`), nil,
			func(p map[string]any) bool { return str(p, "deceasedDateTime") == "2024-05-01T10:00:00Z" }},
		{"FHIRPath Patch replace", fhirJSON, fhirPathPatch(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.birthDate"},{"name":"value","valueDate":"1971-04-02"}`), nil,
			func(p map[string]any) bool { return str(p, "birthDate") == "1971-04-02" }},
		{"FHIRPath Patch delete", fhirJSON, fhirPathPatch(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.name.where(use = 'nickname')"}`), nil,
			func(p map[string]any) bool {
				return len(get(p, "name").([]any)) == 1 && str(p, "name", 0, "use") == "official"
			}},
		{"FHIRPath Patch insert", fhirJSON, fhirPathPatch(`{"name":"type","valueCode":"insert"},{"name":"path","valueString":"Patient.identifier"},{"name":"index","valueInteger":0},{"name":"value","valueIdentifier":{"system":"https://example.org/mrn","value":"M1"}}`), nil,
			func(p map[string]any) bool {
				return str(p, "identifier", 0, "value") == "M1" && str(p, "identifier", 1, "value") == "9000000009"
			}},
		{"FHIRPath Patch move", fhirJSON, fhirPathPatch(`{"name":"type","valueCode":"move"},{"name":"path","valueString":"Patient.name"},{"name":"source","valueInteger":1},{"name":"destination","valueInteger":0}`), nil,
			func(p map[string]any) bool {
				return str(p, "name", 0, "use") == "nickname" && str(p, "name", 1, "use") == "official"
			}},
		{"FHIRPath Patch in XML", fhirXML, `<Parameters xmlns="http://hl7.org/fhir"><parameter><name value="operation"/>` +
			`<part><name value="type"/><valueCode value="replace"/></part><part><name value="path"/><valueString value="Patient.gender"/></part>` +
			`<part><name value="value"/><valueCode value="unknown"/></part></parameter></Parameters>`, nil,
			func(p map[string]any) bool { return str(p, "gender") == "unknown" }},
	}
	eachEngine(t, func(t *testing.T, c *client) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				id := str(c.create("Patient", seed), "id")
				headers := append([]string{"Content-Type", tt.contentType, "Accept", "application/fhir+json"}, tt.headers...)
				r := c.do("PATCH", "/Patient/"+id, tt.body, headers...).want(t, http.StatusOK)
				p := r.json(t)
				if !tt.check(p) {
					t.Errorf("patch not applied: %s", r.body)
				}
				if str(p, "id") != id || str(p, "meta", "versionId") != "2" || r.header.Get("ETag") != `W/"2"` {
					t.Errorf("id %q, versionId %q, ETag %q; want %s, 2, W/\"2\"", str(p, "id"), str(p, "meta", "versionId"), r.header.Get("ETag"), id)
				}
				if _, err := http.ParseTime(r.header.Get("Last-Modified")); err != nil {
					t.Errorf("Last-Modified %q: %v", r.header.Get("Last-Modified"), err)
				}
				if loc := r.header.Get("Location"); loc != "" {
					t.Errorf("Location %q on a patch, want none", loc)
				}
				if read := c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK); string(read.body) != string(r.body) {
					t.Errorf("read returns\n%s\nbut the patch returned\n%s", read.body, r.body)
				}
				h := c.do("GET", "/Patient/"+id+"/_history", "").want(t, http.StatusOK).json(t)
				if get(h, "total") != 2.0 || str(h, "entry", 0, "resource", "meta", "versionId") != "2" || str(h, "entry", 1, "resource", "meta", "versionId") != "1" {
					t.Errorf("history after the patch: %v", h)
				}
			})
		}

		t.Run("Prefer return=minimal", func(t *testing.T) {
			id := str(c.create("Patient", seed), "id")
			r := c.do("PATCH", "/Patient/"+id, `[{"op":"remove","path":"/gender"}]`, "Content-Type", jsonPatch, "Prefer", "return=minimal").want(t, http.StatusOK)
			if len(r.body) != 0 || r.header.Get("ETag") != `W/"2"` {
				t.Errorf("return=minimal: body %q, ETag %q", r.body, r.header.Get("ETag"))
			}
		})

		t.Run("capabilities", func(t *testing.T) {
			cs := c.do("GET", "/metadata", "").want(t, http.StatusOK)
			if !strings.Contains(string(cs.body), `{"code":"patch"}`) {
				t.Errorf("CapabilityStatement does not list patch")
			}
		})
	})
}

func TestPatchRejects(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", patient), "id")
		obs := str(c.create("Observation", `{"resourceType":"Observation","status":"final","code":{"text":"weight"}}`), "id")
		gone := str(c.create("Patient", patient), "id")
		c.do("DELETE", "/Patient/"+gone, "").want(t, http.StatusNoContent)

		deleteName := fhirPathPatch(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.name"}`)
		tests := []struct {
			name, path, contentType, body string
			headers                       []string
			status                        int
			code, expression              string
		}{
			{"test fails", "/Patient/" + id, jsonPatch, `[{"op":"test","path":"/gender","value":"male"},{"op":"remove","path":"/gender"}]`, nil, 409, "conflict", ""},
			{"not a JSON Patch", "/Patient/" + id, jsonPatch, `{"op":"remove"}`, nil, 400, "invalid", ""},
			{"operation naming op twice", "/Patient/" + id, jsonPatch, `[{"op":"add","path":"/active","value":true,"op":"remove"}]`, nil, 400, "invalid", ""},
			{"value naming a member twice", "/Patient/" + id, jsonPatch, `[{"op":"add","path":"/maritalStatus","value":{"text":"Married","text":"Single"}}]`, nil, 400, "invalid", ""},
			{"bad pointer", "/Patient/" + id, jsonPatch, `[{"op":"remove","path":"gender"}]`, nil, 400, "invalid", ""},
			{"unknown operation", "/Patient/" + id, jsonPatch, `[{"op":"delete","path":"/gender"}]`, nil, 400, "invalid", ""},
			{"path not in the resource", "/Patient/" + id, jsonPatch, `[{"op":"remove","path":"/telecom/0"}]`, nil, 422, "processing", ""},
			{"FHIRPath Patch matching several elements", "/Patient/" + id, fhirJSON,
				fhirPathPatch(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.gender"}`, `{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.identifier | Patient.name"},{"name":"value","valueString":"x"}`),
				nil, 422, "processing", "Parameters.parameter[1]"},
			{"FHIRPath Patch index out of range", "/Patient/" + id, fhirJSON,
				fhirPathPatch(`{"name":"type","valueCode":"move"},{"name":"path","valueString":"Patient.name"},{"name":"source","valueInteger":0},{"name":"destination","valueInteger":4}`),
				nil, 422, "processing", "Parameters.parameter[0]"},
			{"FHIRPath Patch without a type", "/Patient/" + id, fhirJSON,
				fhirPathPatch(`{"name":"path","valueString":"Patient.gender"}`), nil, 400, "invalid", "Parameters.parameter[0]"},
			{"Parameters that do not decode", "/Patient/" + id, fhirJSON, `{"resourceType":"Parameters","parameter":[{"nom":"operation"}]}`, nil, 400, "structure", ""},
			{"another resource for a patch", "/Patient/" + id, fhirJSON, patient, nil, 400, "structure", ""},
			{"result is not valid", "/Patient/" + id, jsonPatch, `[{"op":"replace","path":"/birthDate","value":"1 March 1970"}]`, nil, 422, "structure", "Patient.birthDate"},
			{"result has an unknown element", "/Patient/" + id, jsonPatch, `[{"op":"add","path":"/colour","value":"blue"}]`, nil, 422, "structure", "Patient.colour"},
			{"result lacks a mandatory element", "/Observation/" + obs, jsonPatch, `[{"op":"remove","path":"/status"}]`, nil, 422, "required", "Observation.status"},
			// A PUT of the result would be refused: FHIR JSON has no empty
			// arrays or objects, which a patch must not turn into a removal.
			{"value is an empty array", "/Patient/" + id, jsonPatch, `[{"op":"add","path":"/name","value":[]}]`, nil, 422, "structure", ""},
			{"value holds an empty object", "/Patient/" + id, jsonPatch, `[{"op":"add","path":"/name","value":[{}]}]`, nil, 422, "structure", ""},
			{"value is an empty object", "/Patient/" + id, jsonPatch, `[{"op":"add","path":"/maritalStatus","value":{}}]`, nil, 422, "structure", ""},
			{"replace with an empty array inside", "/Patient/" + id, jsonPatch, `[{"op":"replace","path":"/name/0","value":{"family":"Byrne","given":[]}}]`, nil, 422, "structure", ""},
			// A copy or move writes an empty value as an add does, though
			// what it was taken from is filled afterwards.
			{"copy of an empty array", "/Patient/" + id, jsonPatch, `[{"op":"add","path":"/telecom","value":[]},{"op":"copy","from":"/telecom","path":"/address"},{"op":"add","path":"/telecom/-","value":{"system":"phone","value":"0113 496 0000"}}]`, nil, 422, "structure", ""},
			{"copy of an empty object", "/Patient/" + id, jsonPatch, `[{"op":"add","path":"/maritalStatus","value":{}},{"op":"copy","from":"/maritalStatus","path":"/name/0/period"},{"op":"add","path":"/maritalStatus/text","value":"Married"}]`, nil, 422, "structure", ""},
			{"move of an empty array", "/Patient/" + id, jsonPatch, `[{"op":"add","path":"/telecom","value":[]},{"op":"move","from":"/telecom","path":"/address"},{"op":"add","path":"/telecom","value":[{"system":"phone","value":"0113 496 0000"}]}]`, nil, 422, "structure", ""},
			// An array of nulls alone is no list at all: dropped, it would
			// remove the given names it was to replace.
			{"array of nulls", "/Patient/" + id, jsonPatch, `[{"op":"replace","path":"/name/0/given","value":[null]}]`, nil, 422, "structure", ""},
			{"copy of an array a removal emptied", "/Patient/" + id, jsonPatch, `[{"op":"remove","path":"/name/0/given/0"},{"op":"copy","from":"/name/0/given","path":"/name/0/prefix"}]`, nil, 422, "structure", ""},
			{"patch changes the id", "/Patient/" + id, jsonPatch, `[{"op":"replace","path":"/id","value":"other"}]`, nil, 422, "invalid", "Patient.id"},
			{"patch removes the id", "/Patient/" + id, jsonPatch, `[{"op":"remove","path":"/id"}]`, nil, 422, "invalid", "Patient.id"},
			{"FHIRPath Patch changes the id", "/Patient/" + id, fhirJSON,
				fhirPathPatch(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.id"},{"name":"value","valueId":"other"}`), nil, 422, "invalid", "Patient.id"},
			{"FHIRPath Patch removes the id", "/Patient/" + id, fhirJSON,
				fhirPathPatch(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.id"}`), nil, 422, "invalid", "Patient.id"},
			{"patch changes the type", "/Patient/" + id, jsonPatch, `[{"op":"replace","path":"/resourceType","value":"Person"}]`, nil, 422, "invalid", ""},
			{"patch changes the type to one without its elements", "/Patient/" + id, jsonPatch, `[{"op":"replace","path":"/resourceType","value":"Observation"}]`, nil, 422, "invalid", ""},
			{"patch changes the type to none served", "/Patient/" + id, jsonPatch, `[{"op":"replace","path":"/resourceType","value":"Unicorn"}]`, nil, 422, "invalid", ""},
			{"patch removes the type", "/Patient/" + id, jsonPatch, `[{"op":"remove","path":"/resourceType"}]`, nil, 422, "invalid", ""},
			{"patch makes the type a number", "/Patient/" + id, jsonPatch, `[{"op":"replace","path":"/resourceType","value":3}]`, nil, 422, "invalid", ""},
			{"text body", "/Patient/" + id, "text/plain", `gender=male`, nil, 415, "not-supported", ""},
			{"merge patch", "/Patient/" + id, "application/merge-patch+json", `{"gender":"male"}`, nil, 415, "not-supported", ""},
			{"no content type", "/Patient/" + id, "-", `[]`, nil, 415, "not-supported", ""},
			{"empty body", "/Patient/" + id, jsonPatch, ``, nil, 400, "required", ""},
			{"stale If-Match", "/Patient/" + id, fhirJSON, deleteName, []string{"If-Match", `W/"5"`}, 412, "conflict", ""},
			{"bad If-Match", "/Patient/" + id, fhirJSON, deleteName, []string{"If-Match", `five`}, 400, "invalid", ""},
			{"missing resource", "/Patient/nope", fhirJSON, deleteName, nil, 404, "not-found", ""},
			{"deleted resource", "/Patient/" + gone, fhirJSON, deleteName, nil, 410, "deleted", ""},
			{"unknown type", "/Unicorn/" + id, fhirJSON, deleteName, nil, 404, "not-supported", ""},
			{"type without criteria", "/Patient", fhirJSON, deleteName, nil, 405, "not-supported", ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				headers := []string{"Content-Type", tt.contentType}
				if tt.contentType == "-" {
					headers[1] = ""
				}
				r := c.do("PATCH", tt.path, tt.body, append(headers, tt.headers...)...).want(t, tt.status)
				r.outcome(t, tt.code, tt.expression)
			})
		}
		// A change of type is told as such, not as the elements the other
		// type lacks.
		r := c.do("PATCH", "/Patient/"+id, `[{"op":"replace","path":"/resourceType","value":"Observation"}]`, "Content-Type", jsonPatch).want(t, http.StatusUnprocessableEntity)
		if d := r.outcome(t, "invalid", ""); !strings.Contains(d, "cannot change the type") {
			t.Errorf("diagnostics %q, want the change of type refused", d)
		}
		// The answer names where the empty value is.
		r = c.do("PATCH", "/Patient/"+id, `[{"op":"add","path":"/name/-","value":{"given":[]}}]`, "Content-Type", jsonPatch).want(t, http.StatusUnprocessableEntity)
		if d := r.outcome(t, "structure", ""); !strings.Contains(d, `"/name/-"`) || !strings.Contains(d, `"/name/1/given"`) || !strings.Contains(d, "empty array") {
			t.Errorf("diagnostics %q, want the operation's path and /name/1/given named as an empty array", d)
		}
		// A copied empty value is named where the copy put it, with the copy.
		r = c.do("PATCH", "/Patient/"+id, `[{"op":"add","path":"/telecom","value":[]},{"op":"copy","from":"/telecom","path":"/address"},{"op":"add","path":"/telecom/-","value":{"system":"phone","value":"0113 496 0000"}}]`, "Content-Type", jsonPatch).
			want(t, http.StatusUnprocessableEntity)
		if d := r.outcome(t, "structure", ""); !strings.Contains(d, "operation 1") || !strings.Contains(d, `empty array at "/address"`) {
			t.Errorf("diagnostics %q, want the copy (operation 1) and /address named as an empty array", d)
		}
		r = c.do("PATCH", "/Patient/"+id, `[{"op":"replace","path":"/name/0/given","value":[null]}]`, "Content-Type", jsonPatch).
			want(t, http.StatusUnprocessableEntity)
		if d := r.outcome(t, "structure", ""); !strings.Contains(d, `"/name/0/given"`) || !strings.Contains(d, "null") {
			t.Errorf("diagnostics %q, want /name/0/given named as an array of nulls", d)
		}
		// None of the refused patches was stored.
		for _, path := range []string{"/Patient/" + id, "/Observation/" + obs} {
			r := c.do("GET", path, "").want(t, http.StatusOK)
			if v := str(r.json(t), "meta", "versionId"); v != "1" || r.header.Get("ETag") != `W/"1"` {
				t.Errorf("%s is at version %s after refused patches, want 1", path, v)
			}
		}
	})
}

func TestConditionalPatch(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		const criteria = "?identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009"
		id := str(c.create("Patient", patient), "id")
		setGender := `[{"op":"replace","path":"/gender","value":"male"}]`

		r := c.do("PATCH", "/Patient"+criteria, setGender, "Content-Type", jsonPatch).want(t, http.StatusOK)
		if p := r.json(t); str(p, "id") != id || str(p, "gender") != "male" || r.header.Get("ETag") != `W/"2"` {
			t.Errorf("conditional patch did not patch %s: %s", id, r.body)
		}
		c.do("PATCH", "/Patient"+criteria, setGender, "Content-Type", jsonPatch, "If-Match", `W/"1"`).want(t, http.StatusPreconditionFailed).outcome(t, "conflict", "")
		c.do("PATCH", "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919", setGender, "Content-Type", jsonPatch).
			want(t, http.StatusNotFound).outcome(t, "not-found", "")
		c.do("PATCH", "/Patient?shoe-size=9", setGender, "Content-Type", jsonPatch).want(t, http.StatusBadRequest)
		r = c.do("PATCH", "/Patient"+criteria, setGender, "Content-Type", "text/plain").want(t, http.StatusUnsupportedMediaType)
		if got, want := r.header.Get("Accept-Patch"), "application/json-patch+json, application/fhir+json, application/fhir+xml"; got != want {
			t.Errorf("Accept-Patch %q, want %q", got, want)
		}

		c.create("Patient", patient)
		c.do("PATCH", "/Patient"+criteria, setGender, "Content-Type", jsonPatch).want(t, http.StatusPreconditionFailed).outcome(t, "multiple-matches", "")
		if v := str(c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK).json(t), "meta", "versionId"); v != "2" {
			t.Errorf("version %s after refused conditional patches, want 2", v)
		}
	})
}

// changedAfterSearch runs then once, after the first search made of the
// engine it wraps outside a unit of work: another client's write landing
// between a match and a write made apart from it.
type changedAfterSearch struct {
	store.Store
	then func()
	once sync.Once
}

func (s *changedAfterSearch) Search(ctx context.Context, q store.Query) ([]*store.Version, error) {
	found, err := s.Store.Search(ctx, q)
	s.once.Do(s.then)
	return found, err
}

// TestConditionalPatchMatchesWhatItWrites: a conditional patch patches a
// resource that matches its criteria when the patch is written. Another
// client changes the one match's identifier just after any search made
// outside a unit of work; the patch must not be applied to the resource
// that no longer matches.
func TestConditionalPatchMatchesWhatItWrites(t *testing.T) {
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			st := &changedAfterSearch{Store: e.Open(t)}
			c := newClient(t, st)
			id := str(c.create("Patient", patientWith("", "before", "Smith")), "id")
			st.then = func() {
				c.do("PUT", "/Patient/"+id, patientWith(id, "after", "Smith")).want(t, http.StatusOK)
			}
			r := c.do("PATCH", "/Patient?identifier=urn:test|before", `[{"op":"replace","path":"/name/0/family","value":"Jones"}]`, "Content-Type", jsonPatch)
			stored := c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK).json(t)
			identifier := str(stored, "identifier", 0, "value")
			family := str(stored, "name", 0, "family")
			if identifier == "after" && family == "Jones" {
				t.Errorf("the patch (answered %d) was written to Patient/%s, whose identifier no longer matches its criteria", r.status, id)
			}
			if r.status == http.StatusOK && (identifier != "before" || family != "Jones") {
				t.Errorf("the patch answered 200, but Patient/%s holds identifier %q and family %q", id, identifier, family)
			}
		})
	}
}

// TestPatchValidates checks a patched resource goes through the same
// validation as an update.
func TestPatchValidates(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", patient), "id")
		r := c.do("PATCH", "/Patient/"+id, `[{"op":"replace","path":"/identifier/0/value","value":"9000000008"}]`, "Content-Type", jsonPatch).
			want(t, http.StatusUnprocessableEntity)
		if !strings.Contains(string(r.body), "Patient.identifier[0]") {
			t.Errorf("the invalid NHS number is not reported: %s", r.body)
		}
		c.do("PATCH", "/Patient/"+id, `[{"op":"replace","path":"/identifier/0/value","value":"9434765919"}]`, "Content-Type", jsonPatch).want(t, http.StatusOK)
	}, withValidator(true))
}

// TestConcurrentPatchesLoseNothing patches one resource from several
// clients at once without If-Match: a patch that loses the race to another
// write is applied again to the new version, so every accepted patch is in
// the result.
func TestConcurrentPatchesLoseNothing(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", `{"resourceType":"Patient","name":[{"family":"Smith","given":["Ann"]}]}`), "id")
		const writers, each = 4, 3
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			accepted = map[string]bool{}
		)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					given := fmt.Sprintf("w%di%d", w, i)
					r := c.do("PATCH", "/Patient/"+id, `[{"op":"add","path":"/name/0/given/-","value":"`+given+`"}]`, "Content-Type", jsonPatch)
					switch r.status {
					case http.StatusOK:
						mu.Lock()
						accepted[given] = true
						mu.Unlock()
					case http.StatusConflict: // lost every retry: refused, not lost
					default:
						t.Errorf("patch: %d %s", r.status, r.body)
						return
					}
				}
			}()
		}
		wg.Wait()
		final := c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK)
		p := final.json(t)
		givens, _ := get(p, "name", 0, "given").([]any)
		if len(givens) != len(accepted)+1 {
			t.Errorf("given names %v, want Ann and the %d accepted ones", givens, len(accepted))
		}
		for _, g := range givens[min(1, len(givens)):] {
			if !accepted[g.(string)] {
				t.Errorf("given name %v was not accepted", g)
			}
		}
		if want := fmt.Sprintf(`W/"%d"`, len(accepted)+1); final.header.Get("ETag") != want {
			t.Errorf("final ETag %s after %d accepted patches, want %s", final.header.Get("ETag"), len(accepted), want)
		}
	})
}

// TestPatchNarrative checks that a patch changing a resource but not its
// narrative leaves no narrative describing the resource before the patch
// (R4 http.html#patch), and says so; a patch that writes the narrative, or
// changes meta alone, keeps it.
func TestPatchNarrative(t *testing.T) {
	const (
		smith = `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Smith, DOB 1950-01-01</div>"},` +
			`"name":[{"family":"Smith"}],"birthDate":"1950-01-01"}`
		toJones     = `[{"op":"replace","path":"/name/0/family","value":"Jones"},{"op":"replace","path":"/birthDate","value":"1980-02-02"}]`
		jonesText   = `{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Jones, DOB 1980-02-02</div>"}`
		withText    = `[{"op":"replace","path":"/name/0/family","value":"Jones"},{"op":"replace","path":"/text","value":` + jonesText + `}]`
		tagOnly     = `[{"op":"add","path":"/meta/tag","value":[{"system":"https://example.org/tags","code":"reviewed"}]}]`
		narrativeOf = "Smith, DOB 1950-01-01"
	)
	toJonesFHIRPath := fhirPathPatch(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.name.family"},{"name":"value","valueString":"Jones"}`,
		`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.birthDate"},{"name":"value","valueDate":"1980-02-02"}`)
	binary := func(patch string) string {
		return `{"resourceType":"Binary","contentType":"application/json-patch+json","data":"` + b64(patch) + `"}`
	}
	eachEngine(t, func(t *testing.T, c *client) {
		removed := func(t *testing.T, id string, answer []byte) {
			t.Helper()
			stored := c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK)
			p := stored.json(t)
			if get(p, "text") != nil || str(p, "name", 0, "family") != "Jones" {
				t.Errorf("stored after the patch: %s", stored.body)
			}
			if answer != nil && strings.Contains(string(answer), narrativeOf) {
				t.Errorf("the answer keeps the old narrative: %s", answer)
			}
		}
		kept := func(t *testing.T, id, narrative string) {
			t.Helper()
			if div := str(c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK).json(t), "text", "div"); !strings.Contains(div, narrative) {
				t.Errorf("narrative %q, want %q", div, narrative)
			}
		}
		for _, tt := range []struct{ name, contentType, body string }{
			{"JSON Patch", jsonPatch, toJones},
			{"FHIRPath Patch", fhirJSON, toJonesFHIRPath},
		} {
			t.Run(tt.name, func(t *testing.T) {
				id := str(c.create("Patient", smith), "id")
				r := c.do("PATCH", "/Patient/"+id, tt.body, "Content-Type", tt.contentType).want(t, http.StatusOK)
				removed(t, id, r.body)

				id = str(c.create("Patient", smith), "id")
				oo := c.do("PATCH", "/Patient/"+id, tt.body, "Content-Type", tt.contentType, "Prefer", "return=OperationOutcome").want(t, http.StatusOK)
				if !strings.Contains(string(oo.body), `"severity":"warning"`) || !strings.Contains(string(oo.body), "narrative") ||
					!strings.Contains(string(oo.body), `"expression":["Patient.text"]`) {
					t.Errorf("no warning that the narrative was removed: %s", oo.body)
				}
				removed(t, id, nil)
			})
		}
		t.Run("conditional", func(t *testing.T) {
			id := str(c.create("Patient", strings.Replace(smith, `"birthDate"`, `"identifier":[{"system":"https://example.org/mrn","value":"narr-1"}],"birthDate"`, 1)), "id")
			r := c.do("PATCH", "/Patient?identifier=https://example.org/mrn|narr-1", toJones, "Content-Type", jsonPatch).want(t, http.StatusOK)
			removed(t, id, r.body)
		})
		t.Run("the patch writes the narrative", func(t *testing.T) {
			id := str(c.create("Patient", smith), "id")
			oo := c.do("PATCH", "/Patient/"+id, withText, "Content-Type", jsonPatch, "Prefer", "return=OperationOutcome").want(t, http.StatusOK)
			if strings.Contains(string(oo.body), "warning") {
				t.Errorf("a warning for a patch that wrote the narrative: %s", oo.body)
			}
			kept(t, id, "Jones, DOB 1980-02-02")
		})
		t.Run("meta alone", func(t *testing.T) {
			id := str(c.create("Patient", smith), "id")
			c.do("PATCH", "/Patient/"+id, tagOnly, "Content-Type", jsonPatch).want(t, http.StatusOK)
			kept(t, id, narrativeOf)
			c.do("POST", "/Patient/"+id+"/$meta-add", metaParams(`{"tag":[{"system":"https://example.org/tags","code":"added"}]}`)).want(t, http.StatusOK)
			c.do("POST", "/Patient/"+id+"/$meta-delete", metaParams(`{"tag":[{"system":"https://example.org/tags","code":"reviewed"}]}`)).want(t, http.StatusOK)
			kept(t, id, narrativeOf)
			if v := str(c.do("GET", "/Patient/"+id, "").json(t), "meta", "versionId"); v != "4" {
				t.Errorf("version %s after three changes of meta, want 4", v)
			}
		})
		for _, kind := range []string{"transaction", "batch"} {
			t.Run(kind, func(t *testing.T) {
				id := str(c.create("Patient", smith), "id")
				resp := c.bundle(txBundle(kind, txEntry("", "PATCH", "Patient/"+id, binary(toJones))))
				checkStatuses(t, resp, "200 OK")
				removed(t, id, resp.Entry[0].Resource)
			})
		}
	})
}

// TestPatchPathsShareOneBudget: the paths of a FHIRPath Patch are
// evaluated within one budget, so that a patch of many costly paths is
// refused as one costly path is, instead of costing the budget once per
// operation while it holds the store's writer.
func TestPatchPathsShareOneBudget(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", patient), "id")
		var digits []string
		for i := range 15 {
			digits = append(digits, fmt.Sprint(i))
		}
		set := "(" + strings.Join(digits, "|") + ")"
		// About 60,000 steps, selecting nothing: a delete of nothing.
		costly := `{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.where(` +
			set + `.select(` + set + `).select(` + set + `).count() = 0).active"}`
		c.do("PATCH", "/Patient/"+id, fhirPathPatch(costly), "Content-Type", fhirJSON).want(t, http.StatusOK)
		ops := make([]string, 20)
		for i := range ops {
			ops[i] = costly
		}
		r := c.do("PATCH", "/Patient/"+id, fhirPathPatch(ops...), "Content-Type", fhirJSON).want(t, http.StatusUnprocessableEntity)
		r.outcome(t, "too-costly", "")
		if v := str(c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK).json(t), "meta", "versionId"); v != "1" {
			t.Errorf("version %s after refused patches, want 1", v)
		}
	})
}

// TestFHIRPathPatchTodayInTheUK patches, at 23:30 UTC on a summer night,
// when it is already the next day in the UK, a Patient's telecoms that
// ended before today(): the one that ended on the UTC date is deleted, as
// the validator and care coordination reckon the date, and the one that
// ends on the UK date is kept.
func TestFHIRPathPatchTodayInTheUK(t *testing.T) {
	night := time.Date(2026, 7, 1, 23, 30, 0, 0, time.UTC)
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", `{"resourceType":"Patient","telecom":[
			{"system":"phone","value":"01632 960001","period":{"end":"2026-07-01"}},
			{"system":"phone","value":"01632 960002","period":{"end":"2026-07-02"}}]}`), "id")
		body := fhirPathPatch(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.telecom.where(period.end < today())"}`)
		c.do("PATCH", "/Patient/"+id, body, "Content-Type", fhirJSON).want(t, http.StatusOK)
		p := c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK).json(t)
		if telecom := get(p, "telecom").([]any); len(telecom) != 1 || str(p, "telecom", 0, "value") != "01632 960002" {
			t.Errorf("telecoms after deleting those ended before today: %v, want 01632 960002 alone", telecom)
		}
	}, func(cfg *server.Config) { cfg.FHIRPathNow = func() time.Time { return night } })
}

// TestSearchParameterTodayInTheUK: a host's search parameter whose
// expression reads today() is indexed with the UK's date, as FHIRPath
// Patch and validation reckon it: at 23:30 UTC on a summer night, a phone
// that ended on the UTC date is no longer current, and one that ends on
// the UK date still is.
func TestSearchParameterTodayInTheUK(t *testing.T) {
	night := time.Date(2026, 7, 1, 23, 30, 0, 0, time.UTC)
	current := `{"resourceType":"SearchParameter","url":"https://example.org/SearchParameter/current-phone","code":"current-phone","base":["Patient"],"type":"token",
		"expression":"Patient.telecom.where(system = 'phone' and (period.end.empty() or period.end >= today())).value"}`
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", `{"resourceType":"Patient","telecom":[
			{"system":"phone","value":"01632960001","period":{"end":"2026-07-01"}},
			{"system":"phone","value":"01632960002","period":{"end":"2026-07-02"}}]}`), "id")
		for phone, want := range map[string]int{"01632960001": 0, "01632960002": 1} {
			got := ids(t, c.do("GET", "/Patient?current-phone="+phone, "").want(t, http.StatusOK))
			if len(got) != want || want == 1 && got[0] != "Patient/"+id {
				t.Errorf("Patient?current-phone=%s: %v, want %d", phone, got, want)
			}
		}
	}, func(cfg *server.Config) {
		cfg.FHIRPathNow = func() time.Time { return night }
		cfg.SearchParameters = [][]byte{[]byte(current)}
	})
}

// TestFHIRPathPatchReplaceTakesExtensions: a FHIRPath Patch replace of a
// primitive replaces the whole element, so that a birth time recorded for
// the old birth date does not stay to contradict the new one; a value
// that brings its own extensions keeps them.
func TestFHIRPathPatchReplaceTakesExtensions(t *testing.T) {
	const (
		birthTime = `{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1970-03-01T08:30:00+00:00"}]}`
		seed      = `{"resourceType":"Patient","birthDate":"1970-03-01","_birthDate":` + birthTime + `}`
	)
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", seed), "id")
		body := fhirPathPatch(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.birthDate"},{"name":"value","valueDate":"1971-04-02"}`)
		c.do("PATCH", "/Patient/"+id, body, "Content-Type", fhirJSON).want(t, http.StatusOK)
		r := c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK)
		if p := r.json(t); str(p, "birthDate") != "1971-04-02" || get(p, "_birthDate") != nil {
			t.Errorf("after replacing birthDate: %s", r.body)
		}

		id = str(c.create("Patient", seed), "id")
		withTime := strings.Replace(birthTime, "1970-03-01T08:30", "1971-04-02T09:15", 1)
		body = fhirPathPatch(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.birthDate"},{"name":"value","valueDate":"1971-04-02","_valueDate":` + withTime + `}`)
		c.do("PATCH", "/Patient/"+id, body, "Content-Type", fhirJSON).want(t, http.StatusOK)
		p := c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK).json(t)
		if got := str(p, "_birthDate", "extension", 0, "valueDateTime"); str(p, "birthDate") != "1971-04-02" || got != "1971-04-02T09:15:00+00:00" {
			t.Errorf("after replacing birthDate with its birth time: %v", p)
		}
	})
}

// TestFHIRPathPatchIDsAndURLs: a FHIRPath Patch replaces an extension's
// url, an element's id and a contained resource's id, which FHIRPath reads
// as plain strings; a contained id changed while a local reference still
// names it is 422 and nothing is stored.
func TestFHIRPathPatchIDsAndURLs(t *testing.T) {
	const seed = `{"resourceType":"Patient","extension":[{"url":"https://example.org/old","valueString":"x"}],` +
		`"contained":[{"resourceType":"Organization","id":"o1","name":"GP"}],"name":[{"id":"n1","family":"Smith"}],"managingOrganization":{"reference":"#o1"}}`
	replace := func(path, value string) string {
		return `{"name":"type","valueCode":"replace"},{"name":"path","valueString":"` + path + `"},{"name":"value",` + value + `}`
	}
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", seed), "id")
		body := fhirPathPatch(replace("Patient.extension[0].url", `"valueUri":"https://example.org/new"`),
			replace("Patient.name[0].id", `"valueString":"n2"`),
			replace("Patient.contained[0].id", `"valueId":"o2"`),
			replace("Patient.managingOrganization.reference", `"valueString":"#o2"`))
		c.do("PATCH", "/Patient/"+id, body, "Content-Type", fhirJSON).want(t, http.StatusOK)
		p := c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK).json(t)
		if str(p, "extension", 0, "url") != "https://example.org/new" || str(p, "name", 0, "id") != "n2" ||
			str(p, "contained", 0, "id") != "o2" || str(p, "managingOrganization", "reference") != "#o2" {
			t.Errorf("after the patch: %v", p)
		}

		r := c.do("PATCH", "/Patient/"+id, fhirPathPatch(replace("Patient.contained[0].id", `"valueId":"o3"`)), "Content-Type", fhirJSON).
			want(t, http.StatusUnprocessableEntity)
		r.outcome(t, "processing", "")
		if !strings.Contains(string(r.body), "still refers to it as #o2") {
			t.Errorf("the broken reference is not named: %s", r.body)
		}
		if v := str(c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK).json(t), "meta", "versionId"); v != "2" {
			t.Errorf("version %s after a refused patch, want 2", v)
		}
	})
}
