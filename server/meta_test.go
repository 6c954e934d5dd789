package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"carefhir/server"
	"carefhir/server/access"
	"carefhir/store"
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

// TestMetaChangeOfVersion: $meta-add and $meta-delete on a version
// ([type]/[id]/_history/[vid]/$meta-add), which R4 allows, change the
// current version as on the resource, writing the next version (no stored
// version changes here); on an earlier version they are 409, and nothing
// changes.
func TestMetaChangeOfVersion(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		path := "/Patient/" + str(c.create("Patient", `{"resourceType":"Patient","name":[{"family":"Meta"}]}`), "id")
		m := returnedMeta(t, c.do("POST", path+"/_history/1/$meta-add", metaParams(`{"tag":[{"system":"http://example.org/tags","code":"x"}]}`)).want(t, http.StatusOK))
		if got := strings.Join(labels(m, "tag"), " "); got != "http://example.org/tags|x" || str(m, "versionId") != "2" {
			t.Errorf("$meta-add on version 1: %v, want tag x, versionId 2", m)
		}
		read := c.do("GET", path, "").want(t, http.StatusOK).json(t)
		if got := strings.Join(labels(read["meta"].(map[string]any), "tag"), " "); got != "http://example.org/tags|x" || str(read, "name", 0, "family") != "Meta" {
			t.Errorf("read after $meta-add on version 1: %v", read)
		}
		// Version 1 is no longer current: a stored version never changes.
		c.do("POST", path+"/_history/1/$meta-delete", metaParams(`{"tag":[{"system":"http://example.org/tags","code":"x"}]}`)).
			want(t, http.StatusConflict).outcome(t, "conflict", "")
		c.do("POST", path+"/_history/2/$meta-add", metaParams(`{"tag":[{"code":"y"}]}`), "If-Match", `W/"1"`).want(t, http.StatusPreconditionFailed)
		c.do("POST", path+"/_history/9/$meta-add", metaParams(`{"tag":[{"code":"y"}]}`)).want(t, http.StatusNotFound)
		c.do("POST", path+"/_history/2/$meta-add", "").want(t, http.StatusBadRequest).outcome(t, "required", "meta")
		if r := c.do("GET", path+"/_history/2/$meta-add", "").want(t, http.StatusMethodNotAllowed); r.header.Get("Allow") != "POST" {
			t.Errorf("GET of $meta-add on a version: Allow %q, want POST", r.header.Get("Allow"))
		}
		if r := c.do("PUT", path+"/_history/2/$meta-delete", "").want(t, http.StatusMethodNotAllowed); r.header.Get("Allow") != "POST" {
			t.Errorf("PUT of $meta-delete on a version: Allow %q, want POST", r.header.Get("Allow"))
		}
		c.do("POST", path+"/_history/2/$validate", "").want(t, http.StatusNotFound)
		if h := c.do("GET", path+"/_history", "").want(t, http.StatusOK).json(t); get(h, "total") != 2.0 {
			t.Errorf("history total %v after refused changes, want 2", get(h, "total"))
		}
		m = returnedMeta(t, c.do("POST", path+"/_history/2/$meta-delete", metaParams(`{"tag":[{"system":"http://example.org/tags","code":"x"}]}`)).want(t, http.StatusOK))
		if get(m, "tag") != nil || str(m, "versionId") != "3" {
			t.Errorf("$meta-delete on version 2: %v, want no tag, versionId 3", m)
		}
		if v1 := returnedMeta(t, c.do("GET", path+"/_history/1/$meta", "").want(t, http.StatusOK)); get(v1, "tag") != nil {
			t.Errorf("version 1 changed: %v", v1)
		}
		c.do("DELETE", path, "").want(t, http.StatusNoContent)
		c.do("POST", path+"/_history/3/$meta-add", metaParams(`{"tag":[{"code":"y"}]}`)).want(t, http.StatusConflict)
		c.do("POST", path+"/_history/4/$meta-add", metaParams(`{"tag":[{"code":"y"}]}`)).want(t, http.StatusGone)
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

// TestMetaChangeOfStoredDaylessDate: $meta-add and $meta-delete on a
// resource stored before writes refused a date on a day its month lacks
// (born 2023-02-29) are 422, the version they would write being invalid,
// naming the date; $meta reads it; nothing is written.
func TestMetaChangeOfStoredDaylessDate(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		body := `{"resourceType":"Patient","id":"old","meta":{"versionId":"1","lastUpdated":"2020-01-02T03:04:05.000Z","tag":[{"system":"http://example.org/tags","code":"a"}]},"birthDate":"2023-02-29"}`
		w := &store.Write{Type: "Patient", ID: "old", LastUpdated: time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC), JSON: []byte(body)}
		if err := c.st.Put(t.Context(), w); err != nil {
			t.Fatal(err)
		}
		for _, op := range []string{"$meta-add", "$meta-delete"} {
			r := c.do("POST", "/Patient/old/"+op, metaParams(`{"tag":[{"system":"http://example.org/tags","code":"a"}]}`)).
				want(t, http.StatusUnprocessableEntity)
			if msg := r.outcome(t, "structure", "Patient.birthDate"); !strings.Contains(msg, "2023-02-29") {
				t.Errorf("%s: diagnostics %q do not name the date", op, msg)
			}
		}
		c.do("GET", "/Patient/old/$meta", "").want(t, http.StatusOK)
		if v := c.do("GET", "/Patient/old", "").want(t, http.StatusOK).header.Get("ETag"); v != `W/"1"` {
			t.Errorf("a refused change wrote version %s", v)
		}
	})
}

// TestMetaInUse checks $meta on a type and on the system: the profiles,
// tags and security labels of the current resources of the type, or of
// every type, each once; not those of earlier versions, of deleted
// resources or of other types.
func TestMetaInUse(t *testing.T) {
	const tags = "http://example.org/tags"
	const conf = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
	eachEngine(t, func(t *testing.T, c *client) {
		empty := returnedMeta(t, c.do("GET", "/Patient/$meta", "").want(t, http.StatusOK))
		if len(empty) != 0 {
			t.Errorf("$meta of a type with no resources: %v, want an empty Meta", empty)
		}
		c.create("Patient", `{"resourceType":"Patient","meta":{"profile":["http://example.org/StructureDefinition/patient"],`+
			`"tag":[{"system":"`+tags+`","code":"a","display":"Tag A"}],"security":[{"system":"`+conf+`","code":"R"}]}}`)
		c.create("Patient", `{"resourceType":"Patient","meta":{"tag":[{"system":"`+tags+`","code":"a"}]}}`)
		changed := str(c.create("Patient", `{"resourceType":"Patient","meta":{"tag":[{"system":"`+tags+`","code":"old"}],`+
			`"profile":["http://example.org/StructureDefinition/old"]}}`), "id")
		c.do("PUT", "/Patient/"+changed, `{"resourceType":"Patient","id":"`+changed+`","meta":{"tag":[{"system":"`+tags+`","code":"b"}]}}`).want(t, http.StatusOK)
		gone := str(c.create("Patient", `{"resourceType":"Patient","meta":{"tag":[{"system":"`+tags+`","code":"gone"}],`+
			`"security":[{"system":"`+conf+`","code":"V"}]}}`), "id")
		c.do("DELETE", "/Patient/"+gone, "").want(t, http.StatusNoContent)
		c.create("Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},`+
			`"meta":{"profile":["http://example.org/StructureDefinition/obs"],"tag":[{"code":"no-system"}]}}`)

		patients := `{"profile":["http://example.org/StructureDefinition/patient"],` +
			`"tag":[{"system":"` + tags + `","code":"a"},{"system":"` + tags + `","code":"b"}],` +
			`"security":[{"system":"` + conf + `","code":"R"}]}`
		system := `{"profile":["http://example.org/StructureDefinition/obs","http://example.org/StructureDefinition/patient"],` +
			`"tag":[{"code":"no-system"},{"system":"` + tags + `","code":"a"},{"system":"` + tags + `","code":"b"}],` +
			`"security":[{"system":"` + conf + `","code":"R"}]}`
		for _, tc := range []struct{ method, path, body, want string }{
			{"GET", "/Patient/$meta", "", patients},
			{"POST", "/Patient/$meta", "", patients},
			{"POST", "/Patient/$meta", `{"resourceType":"Parameters"}`, patients},
			{"GET", "/$meta", "", system},
			{"POST", "/$meta", "", system},
			{"GET", "/Practitioner/$meta", "", `{}`},
		} {
			got, _ := json.Marshal(returnedMeta(t, c.do(tc.method, tc.path, tc.body).want(t, http.StatusOK)))
			var want any
			json.Unmarshal([]byte(tc.want), &want)
			if w, _ := json.Marshal(want); string(got) != string(w) {
				t.Errorf("%s %s = %s, want %s", tc.method, tc.path, got, w)
			}
		}
		whole, head := c.do("GET", "/$meta", "").want(t, http.StatusOK), c.do("HEAD", "/$meta", "").want(t, http.StatusOK)
		if len(head.body) != 0 || head.header.Get("Content-Length") != strconv.Itoa(len(whole.body)) {
			t.Errorf("HEAD /$meta: body %q, Content-Length %q; the GET's body is %d bytes", head.body, head.header.Get("Content-Length"), len(whole.body))
		}
		c.do("GET", "/NoSuchType/$meta", "").want(t, http.StatusNotFound)

		cs := c.do("GET", "/metadata", "").want(t, http.StatusOK).json(t)
		ops, _ := get(cs, "rest", 0, "operation").([]any)
		var listed bool
		for _, op := range ops {
			listed = listed || str(op, "name") == "meta" && str(op, "definition") == "http://hl7.org/fhir/OperationDefinition/Resource-meta"
		}
		if !listed {
			t.Errorf("the CapabilityStatement does not list $meta on the system: %v", ops)
		}
	})
}

// TestMetaInUseLimit checks that $meta on a type or the system answers
// 422 too-costly, rather than a list cut short, when more values are in
// use than Limits.MetaInUse.
func TestMetaInUseLimit(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		for _, code := range []string{"a", "b"} {
			c.create("Patient", `{"resourceType":"Patient","meta":{"tag":[{"system":"http://example.org/tags","code":"`+code+`"}]}}`)
		}
		c.do("GET", "/Patient/$meta", "").want(t, http.StatusOK)
		c.create("Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"meta":{"tag":[{"code":"c"}]}}`)
		c.do("GET", "/Patient/$meta", "").want(t, http.StatusOK)
		for _, method := range []string{"GET", "POST"} {
			d := c.do(method, "/$meta", "").want(t, http.StatusUnprocessableEntity).outcome(t, "too-costly", "")
			if !strings.Contains(d, "more than 2") {
				t.Errorf("%s /$meta: diagnostics %q do not name the limit", method, d)
			}
		}
		c.create("Patient", `{"resourceType":"Patient","meta":{"profile":["http://example.org/StructureDefinition/p"]}}`)
		c.do("GET", "/Patient/$meta", "").want(t, http.StatusUnprocessableEntity).outcome(t, "too-costly", "")
	}, func(cfg *server.Config) { cfg.Limits.MetaInUse = 2 })
}

// TestMetaInUseAccess checks that $meta on a type needs a token that may
// read every resource of the type, and on the system every resource: a
// token reaching some (a patient's, a care team's, a restricted scope's)
// is refused with 403 and learns none of the labels; each request is
// audited once.
func TestMetaInUseAccess(t *testing.T) {
	who := principals{
		"app":      {Subject: "app", Patient: "a", Scopes: mustScopes(t, "patient/*.rs")},
		"dr":       {Subject: "dr", FHIRUser: "Practitioner/dr", Scopes: mustScopes(t, "user/*.rs")},
		"reader":   {Subject: "reader", Scopes: mustScopes(t, "system/Patient.rs")},
		"labs":     {Subject: "labs", Scopes: mustScopes(t, "system/Observation.rs?category=laboratory")},
		"everyone": {Subject: "everyone", Scopes: mustScopes(t, "system/*.rs")},
	}
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who, func(cfg *server.Config) { cfg.AccessPolicy = access.CareTeamPolicy })
			twoPatientRecords(c)
			c.put("/Patient/b", `{"resourceType":"Patient","id":"b","meta":{"tag":[{"system":"http://example.org/tags","code":"secret-b"}]},"name":[{"family":"Famb"}]}`)
			c.put("/Observation/ob", `{"resourceType":"Observation","id":"ob","status":"final","meta":{"security":[{"system":"http://example.org/labels","code":"secret-ob"}]},`+
				`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":{"text":"x"},"subject":{"reference":"Patient/b"}}`)
			sent := map[string]int{}
			n := 0
			ask := func(who, method, path string, status int) *response {
				t.Helper()
				n++
				rid := fmt.Sprintf("meta-%d", n)
				r := c.by(who, method, path, "", "X-Request-Id", rid).want(t, status)
				sent[rid] = status
				if status == http.StatusForbidden {
					r.outcome(t, "forbidden", "")
					if strings.Contains(string(r.body), "secret") {
						t.Errorf("%s %s by %s: the refusal tells a label: %s", method, path, who, r.body)
					}
				}
				return r
			}
			for _, tc := range []struct {
				who, path string
				status    int
			}{
				{"app", "/Patient/$meta", http.StatusForbidden},
				{"app", "/$meta", http.StatusForbidden},
				{"dr", "/Patient/$meta", http.StatusForbidden},
				{"dr", "/$meta", http.StatusForbidden},
				{"labs", "/Observation/$meta", http.StatusForbidden},
				{"reader", "/Observation/$meta", http.StatusForbidden},
				{"reader", "/$meta", http.StatusForbidden},
				{"reader", "/Patient/$meta", http.StatusOK},
				{"everyone", "/Observation/$meta", http.StatusOK},
				{"everyone", "/$meta", http.StatusOK},
			} {
				for _, method := range []string{"GET", "POST"} {
					ask(tc.who, method, tc.path, tc.status)
				}
			}
			m := returnedMeta(t, ask("reader", "GET", "/Patient/$meta", http.StatusOK))
			if got := strings.Join(labels(m, "tag"), " "); got != "http://example.org/tags|secret-b" || m["security"] != nil {
				t.Errorf("the Patients' meta in use: %v, want the tag of Patient/b alone", m)
			}
			m = returnedMeta(t, ask("everyone", "GET", "/$meta", http.StatusOK))
			if got := strings.Join(labels(m, "security"), " "); got != "http://example.org/labels|secret-ob" {
				t.Errorf("the system's meta in use: %v, want the label of Observation/ob", m)
			}
			for rid, evs := range c.auditEventsByRequest(t, sent) {
				if _, ok := sent[rid]; ok && len(evs) != 1 {
					t.Errorf("request %s (%d) has %d AuditEvents, want 1", rid, sent[rid], len(evs))
				}
			}
		})
	}
}

// TestMetaChangeNotOnTrail: $meta-add and $meta-delete, which write the
// resource, are not served on AuditEvent, which the server alone writes
// (the CapabilityStatement lists $meta alone there): on an AuditEvent or
// a version of it they are 404 whatever the method, with no Allow, and the
// event keeps its version, where $meta-add was 405 with no Allow and
// $meta-delete of a tag it lacks 200. $meta still answers.
func TestMetaChangeNotOnTrail(t *testing.T) {
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), principals{})
			c.put("/Patient/a", `{"resourceType":"Patient","id":"a"}`)
			c.auditor.Flush()
			found := ids(t, c.by("admin", "GET", "/AuditEvent?_count=1", "").want(t, http.StatusOK))
			if len(found) == 0 {
				t.Fatal("no AuditEvent written")
			}
			event := found[0]
			body := metaParams(`{"tag":[{"system":"https://example.org/tags","code":"t"}]}`)
			for _, path := range []string{"/" + event, "/" + event + "/_history/1"} {
				for _, op := range []string{"$meta-add", "$meta-delete"} {
					for _, m := range []string{"POST", "GET", "PUT"} {
						r := c.by("admin", m, path+"/"+op, body)
						if r.status != http.StatusNotFound || r.header.Get("Allow") != "" {
							t.Errorf("%s %s/%s: %d (Allow %q), want 404 with no Allow: %s", m, path, op, r.status, r.header.Get("Allow"), truncate(r.body))
						}
					}
				}
				if v := returnedMeta(t, c.by("admin", "GET", path+"/$meta", "").want(t, http.StatusOK))["versionId"]; v != "1" {
					t.Errorf("GET %s/$meta: versionId %v, want 1", path, v)
				}
			}
			if et := c.by("admin", "GET", "/"+event, "").want(t, http.StatusOK).header.Get("ETag"); et != `W/"1"` {
				t.Errorf("%s: ETag %q, want W/\"1\"", event, et)
			}
		})
	}
}
