package server_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// metaParams is the Parameters of $meta-add and $meta-delete for a meta.
func metaParams(meta string) string {
	return `{"resourceType":"Parameters","parameter":[{"name":"meta","valueMeta":` + meta + `}]}`
}

// returnedMeta reads the meta a meta operation answered.
func returnedMeta(t *testing.T, r *response) map[string]any {
	t.Helper()
	p := r.json(t)
	if str(p, "resourceType") != "Parameters" || str(p, "parameter", 0, "name") != "return" {
		t.Fatalf("want Parameters with return, got %s", r.body)
	}
	m, ok := get(p, "parameter", 0, "valueMeta").(map[string]any)
	if !ok {
		t.Fatalf("return is not a valueMeta: %s", r.body)
	}
	return m
}

// labels lists the system|code of each coding in a meta's tag or security.
func labels(m map[string]any, field string) []string {
	var out []string
	list, _ := m[field].([]any)
	for i := range list {
		out = append(out, str(m, field, i, "system")+"|"+str(m, field, i, "code"))
	}
	return out
}

func TestMetaOperations(t *testing.T) {
	const seed = `{"resourceType":"Patient","meta":{"tag":[{"system":"http://example.org/tags","code":"a","display":"Tag A"}]},"name":[{"family":"Meta"}]}`
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", seed), "id")
		path := "/Patient/" + id

		t.Run("$meta answers the meta of a read", func(t *testing.T) {
			read := c.do("GET", path, "").want(t, http.StatusOK).json(t)
			for _, method := range []string{"GET", "POST"} {
				m := returnedMeta(t, c.do(method, path+"/$meta", "").want(t, http.StatusOK))
				want, _ := json.Marshal(read["meta"])
				if got, _ := json.Marshal(m); string(got) != string(want) {
					t.Errorf("%s $meta = %s, the read's meta is %s", method, got, want)
				}
			}
		})

		t.Run("$meta-add", func(t *testing.T) {
			r := c.do("POST", path+"/$meta-add", metaParams(`{"tag":[{"system":"http://example.org/tags","code":"a","display":"Other"},{"system":"http://example.org/tags","code":"b"}],`+
				`"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}],"profile":["http://example.org/StructureDefinition/p"]}`)).want(t, http.StatusOK)
			m := returnedMeta(t, r)
			if got := strings.Join(labels(m, "tag"), " "); got != "http://example.org/tags|a http://example.org/tags|b" {
				t.Errorf("tags %s, want a (kept as it was) and b", got)
			}
			if str(m, "tag", 0, "display") != "Tag A" {
				t.Errorf("the tag already there changed display to %q", str(m, "tag", 0, "display"))
			}
			if got := strings.Join(labels(m, "security"), " "); got != "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R" {
				t.Errorf("security %s", got)
			}
			if str(m, "profile", 0) != "http://example.org/StructureDefinition/p" || str(m, "versionId") != "2" {
				t.Errorf("profile %q, versionId %q; want the profile, 2", str(m, "profile", 0), str(m, "versionId"))
			}
			read := c.do("GET", path, "").want(t, http.StatusOK).json(t)
			want, _ := json.Marshal(read["meta"])
			if got, _ := json.Marshal(m); string(got) != string(want) {
				t.Errorf("$meta-add returned %s, the read's meta is %s", got, want)
			}
			if str(read, "name", 0, "family") != "Meta" {
				t.Errorf("the resource lost its content: %v", read)
			}
			for _, q := range []string{"_tag=http://example.org/tags|b", "_security=R", "_profile=http://example.org/StructureDefinition/p"} {
				if s := c.do("GET", "/Patient?_summary=count&"+q, "").want(t, http.StatusOK).json(t); get(s, "total") != 1.0 {
					t.Errorf("search %s finds %v, want the patient", q, get(s, "total"))
				}
			}
		})

		t.Run("$meta-add of what is there writes nothing", func(t *testing.T) {
			m := returnedMeta(t, c.do("POST", path+"/$meta-add", metaParams(`{"tag":[{"system":"http://example.org/tags","code":"b","display":"B"}]}`)).want(t, http.StatusOK))
			if str(m, "versionId") != "2" {
				t.Errorf("versionId %q, want 2", str(m, "versionId"))
			}
			if h := c.do("GET", path+"/_history", "").want(t, http.StatusOK).json(t); get(h, "total") != 2.0 {
				t.Errorf("history total %v, want 2", get(h, "total"))
			}
		})

		t.Run("$meta-delete", func(t *testing.T) {
			m := returnedMeta(t, c.do("POST", path+"/$meta-delete", metaParams(`{"tag":[{"system":"http://example.org/tags","code":"a"},{"system":"http://example.org/tags","code":"never"}],`+
				`"profile":["http://example.org/StructureDefinition/p"]}`)).want(t, http.StatusOK))
			if got := strings.Join(labels(m, "tag"), " "); got != "http://example.org/tags|b" || get(m, "profile") != nil || str(m, "versionId") != "3" {
				t.Errorf("after $meta-delete: %v", m)
			}
			if s := c.do("GET", "/Patient?_summary=count&_tag=http://example.org/tags|a", "").want(t, http.StatusOK).json(t); get(s, "total") != 0.0 {
				t.Errorf("the deleted tag still finds %v", get(s, "total"))
			}
		})

		t.Run("$meta of a version", func(t *testing.T) {
			m := returnedMeta(t, c.do("GET", path+"/_history/1/$meta", "").want(t, http.StatusOK))
			if got := strings.Join(labels(m, "tag"), " "); got != "http://example.org/tags|a" || str(m, "versionId") != "1" {
				t.Errorf("version 1's meta: %v", m)
			}
			// HEAD is the GET without its body, on an instance and a version.
			for _, p := range []string{path + "/$meta", path + "/_history/1/$meta"} {
				get, head := c.do("GET", p, "").want(t, http.StatusOK), c.do("HEAD", p, "").want(t, http.StatusOK)
				if len(head.body) != 0 || head.header.Get("Content-Length") != strconv.Itoa(len(get.body)) {
					t.Errorf("HEAD %s: body %q, Content-Length %q; the GET's body is %d bytes", p, head.body, head.header.Get("Content-Length"), len(get.body))
				}
			}
			c.do("GET", path+"/_history/9/$meta", "").want(t, http.StatusNotFound)
			c.do("POST", path+"/_history/1/$meta-add", metaParams(`{"tag":[{"code":"x"}]}`)).want(t, http.StatusNotFound)
		})

		t.Run("XML", func(t *testing.T) {
			body := `<Parameters xmlns="http://hl7.org/fhir"><parameter><name value="meta"/><valueMeta>` +
				`<tag><system value="http://example.org/tags"/><code value="x"/></tag></valueMeta></parameter></Parameters>`
			r := c.do("POST", path+"/$meta-add", body, "Content-Type", "application/fhir+xml", "Accept", "application/fhir+xml").want(t, http.StatusOK)
			if !strings.Contains(string(r.body), `<valueMeta><versionId value="4"/>`) || !strings.Contains(string(r.body), `<code value="x"/>`) {
				t.Errorf("XML answer: %s", r.body)
			}
		})

		t.Run("If-Match", func(t *testing.T) {
			c.do("POST", path+"/$meta-add", metaParams(`{"tag":[{"code":"y"}]}`), "If-Match", `W/"1"`).want(t, http.StatusPreconditionFailed)
			m := returnedMeta(t, c.do("POST", path+"/$meta-add", metaParams(`{"tag":[{"code":"y"}]}`), "If-Match", `W/"4"`).want(t, http.StatusOK))
			if str(m, "versionId") != "5" {
				t.Errorf("versionId %q, want 5", str(m, "versionId"))
			}
		})

		t.Run("refused", func(t *testing.T) {
			before := c.do("GET", path, "").want(t, http.StatusOK).header.Get("ETag")
			c.do("POST", path+"/$meta-add", "").want(t, http.StatusBadRequest).outcome(t, "required", "meta")
			c.do("POST", path+"/$meta-add", `{"resourceType":"Parameters","parameter":[{"name":"meta","valueString":"x"}]}`).want(t, http.StatusBadRequest).outcome(t, "invalid", "meta")
			twice := `{"resourceType":"Parameters","parameter":[{"name":"meta","valueMeta":{"tag":[{"code":"q"}]}},{"name":"meta","valueMeta":{"tag":[{"code":"q"}]}}]}`
			c.do("POST", path+"/$meta-delete", twice).want(t, http.StatusBadRequest).outcome(t, "invalid", "meta")
			c.do("POST", path+"/$meta-add", `{"resourceType":"Patient"}`).want(t, http.StatusBadRequest)
			c.do("GET", path+"/$meta-add", "").want(t, http.StatusMethodNotAllowed)
			c.do("POST", path+"/$meta-add", metaParams(`{"tag":[{"code":"z"}]}`), "If-Match", "soon").want(t, http.StatusBadRequest)
			if after := c.do("GET", path, "").want(t, http.StatusOK).header.Get("ETag"); after != before {
				t.Errorf("a refused request wrote version %s (was %s)", after, before)
			}
			c.do("GET", "/Patient/no-such/$meta", "").want(t, http.StatusNotFound)
			c.do("POST", "/Patient/no-such/$meta-add", metaParams(`{"tag":[{"code":"z"}]}`)).want(t, http.StatusNotFound)
			c.do("GET", "/Patient/$meta", "").want(t, http.StatusNotFound)
			c.do("GET", "/$meta", "").want(t, http.StatusNotFound)
			gone := str(c.create("Patient", seed), "id")
			c.do("DELETE", "/Patient/"+gone, "").want(t, http.StatusNoContent)
			c.do("GET", "/Patient/"+gone+"/$meta", "").want(t, http.StatusGone)
			c.do("POST", "/Patient/"+gone+"/$meta-add", metaParams(`{"tag":[{"code":"z"}]}`)).want(t, http.StatusGone)
		})

		t.Run("capabilities", func(t *testing.T) {
			cs := string(c.do("GET", "/metadata", "").want(t, http.StatusOK).body)
			for _, op := range []string{"Resource-meta", "Resource-meta-add", "Resource-meta-delete"} {
				if !strings.Contains(cs, `"definition":"http://hl7.org/fhir/OperationDefinition/`+op+`"`) {
					t.Errorf("the CapabilityStatement does not list %s", op)
				}
			}
		})
	})
}

// TestMetaAddValidates checks that a resource whose meta changes is checked
// as an update is: a profile it does not meet is 422, and nothing is written.
func TestMetaAddValidates(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		obs := `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]}}`
		id := str(c.create("Observation", obs), "id")
		c.do("POST", "/Observation/"+id+"/$meta-add", metaParams(`{"profile":["http://hl7.org/fhir/StructureDefinition/bp"]}`)).
			want(t, http.StatusUnprocessableEntity)
		if v := c.do("GET", "/Observation/"+id, "").want(t, http.StatusOK).header.Get("ETag"); v != `W/"1"` {
			t.Errorf("the refused $meta-add wrote version %s", v)
		}
		c.do("POST", "/Observation/"+id+"/$meta-add", metaParams(`{"tag":[{"system":"http://example.org/tags","code":"ok"}]}`)).want(t, http.StatusOK)
	}, withValidator(true))
}
