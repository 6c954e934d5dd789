package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"carefhir/server"
	"carefhir/server/access"
	"carefhir/server/auth/authtest"
	"carefhir/store"
	"carefhir/store/enginetest"
)

// principals are the callers of an access test, by name: each request
// carries an access token of a trusted issuer with the principal's claims.
type principals map[string]*access.Principal

// accessClient is a client of a server requiring bearer tokens, whose
// AuditEvents are written to the store.
type accessClient struct {
	*client
	auditor *access.Auditor
	idp     *authtest.Key
	tokens  map[string]string // by principal name
}

func newAccessClient(t *testing.T, st store.Store, who principals, opts ...config) *accessClient {
	t.Helper()
	who["admin"] = &access.Principal{Subject: "admin", Scopes: mustScopes(t, "system/*.cruds")}
	srv := httptest.NewUnstartedServer(nil)
	root := "http://" + srv.Listener.Addr().String()
	svc, idp := authtest.Service(t, externalIssuer, root+"/fhir")
	auditor := access.NewAuditor(st, access.AuditConfig{Source: "carefhir-test"})
	cfg := server.Config{Store: st, BaseURL: root + "/fhir", Auth: svc, Auditor: auditor,
		Logger: slog.New(slog.DiscardHandler), SoftwareVersion: "test"}
	for _, o := range opts {
		o(&cfg)
	}
	srv.Config.Handler = server.New(cfg)
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		auditor.Close()
		st.Close()
	})
	c := &accessClient{client: &client{t: t, base: root + "/fhir", logs: &logBuffer{}, st: st}, auditor: auditor, idp: idp, tokens: map[string]string{}}
	for name, p := range who {
		claims := map[string]any{"sub": p.Subject, "scope": p.ScopeString()}
		for claim, v := range map[string]string{"fhirUser": p.FHIRUser, "patient": p.Patient, "organization": p.Organization, "client_id": p.ClientID} {
			if v != "" {
				claims[claim] = strings.ReplaceAll(v, baseMarker, root+"/fhir")
			}
		}
		c.tokens[name] = idp.Sign(t, authtest.Claims(externalIssuer, root+"/fhir", claims))
	}
	return c
}

// baseMarker in a principal's claim stands for the server's FHIR base URL,
// known only once the test server listens.
const baseMarker = "{base}"

func mustScopes(t *testing.T, list string) []access.Scope {
	t.Helper()
	s, _, err := access.ParseScopes(list)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// by sends a request with the token of the principal named who; an
// unknown name sends none.
func (c *accessClient) by(who, method, path, body string, headers ...string) *response {
	c.t.Helper()
	if token, ok := c.tokens[who]; ok {
		headers = append([]string{"Authorization", "Bearer " + token}, headers...)
	}
	return c.do(method, path, body, headers...)
}

// put stores a resource with a given id as admin.
func (c *accessClient) put(path, body string) {
	c.t.Helper()
	r := c.by("admin", "PUT", path, body)
	if r.status != http.StatusCreated && r.status != http.StatusOK {
		c.t.Fatalf("PUT %s: %d %s", path, r.status, truncate(r.body))
	}
}

// ids lists the Type/id of the entries of a searchset Bundle, sorted.
func ids(t *testing.T, r *response) []string {
	t.Helper()
	var b struct {
		Entry []struct {
			Resource struct{ ResourceType, ID string }
		}
	}
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("not a Bundle: %s", truncate(r.body))
	}
	var out []string
	for _, e := range b.Entry {
		if e.Resource.ResourceType != "OperationOutcome" {
			out = append(out, e.Resource.ResourceType+"/"+e.Resource.ID)
		}
	}
	sort.Strings(out)
	return out
}

func wantIDs(t *testing.T, what string, r *response, want ...string) {
	t.Helper()
	r.want(t, http.StatusOK)
	got := ids(t, r)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

// twoPatientRecords stores Patients a and b, an Observation and an Encounter of
// each, and a Practitioner who performed both Observations.
func twoPatientRecords(c *accessClient) {
	c.put("/Practitioner/dr", `{"resourceType":"Practitioner","id":"dr","name":[{"family":"Jones"}]}`)
	for _, p := range []string{"a", "b"} {
		c.put("/Patient/"+p, `{"resourceType":"Patient","id":"`+p+`","name":[{"family":"Fam`+p+`"}],"generalPractitioner":[{"reference":"Practitioner/dr"}]}`)
		c.put("/Observation/o"+p, `{"resourceType":"Observation","id":"o`+p+`","status":"final",
			"identifier":[{"system":"urn:obs","value":"o`+p+`"}],
			"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"`+map[string]string{"a": "laboratory", "b": "vital-signs"}[p]+`"}]}],
			"code":{"coding":[{"system":"http://loinc.org","code":"`+map[string]string{"a": "1-1", "b": "2-2"}[p]+`"}]},
			"subject":{"reference":"Patient/`+p+`"},"performer":[{"reference":"Practitioner/dr"}]}`)
		c.put("/Encounter/e"+p, `{"resourceType":"Encounter","id":"e`+p+`","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/`+p+`"}}`)
	}
}

func TestScopeMatrix(t *testing.T) {
	who := principals{}
	for name, scopes := range map[string]string{
		"reader":  "system/Patient.rs",
		"v1read":  "user/Patient.read",
		"creator": "system/Observation.c",
		"updater": "system/Observation.ru",
		"deleter": "system/Observation.d",
		"v1write": "user/Observation.write",
		"all":     "system/*.*",
		"none":    "openid fhirUser",
	} {
		who[name] = &access.Principal{Subject: name, Scopes: mustScopes(t, scopes)}
	}
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who)
			twoPatientRecords(c)
			obs := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/a"}}`
			cases := []struct {
				who, method, path, body string
				status                  int
			}{
				{"reader", "GET", "/Patient/a", "", 200},
				{"reader", "GET", "/Patient?name=Fama", "", 200},
				{"reader", "GET", "/Patient/a/_history", "", 200},
				{"reader", "GET", "/Patient/a/_history/1", "", 200},
				{"reader", "GET", "/Observation/oa", "", 403},
				{"reader", "GET", "/Observation?code=1-1", "", 403},
				{"reader", "GET", "/Observation/_history", "", 403},
				{"reader", "POST", "/Patient", `{"resourceType":"Patient"}`, 403},
				{"reader", "PUT", "/Patient/a", `{"resourceType":"Patient","id":"a"}`, 403},
				{"reader", "DELETE", "/Patient/a", "", 403},
				{"reader", "PATCH", "/Patient/a", `[{"op":"add","path":"/active","value":true}]`, 403},
				{"reader", "GET", "/Patient?general-practitioner.name=Jones", "", 403},
				{"reader", "GET", "/Patient?_has:Observation:subject:code=1-1", "", 403},
				{"v1read", "GET", "/Patient/a", "", 200},
				{"v1read", "GET", "/Patient?_id=a", "", 200},
				{"v1read", "DELETE", "/Patient/a", "", 403},
				{"creator", "POST", "/Observation", obs, 201},
				{"creator", "GET", "/Observation/oa", "", 403},
				{"creator", "PUT", "/Observation/oa", obs[:len(obs)-1] + `,"id":"oa"}`, 403},
				{"creator", "POST", "/Observation", obs, 201},
				{"updater", "PUT", "/Observation/oa", strings.Replace(obs, `"status":"final"`, `"id":"oa","status":"amended"`, 1), 200},
				{"updater", "POST", "/Observation", obs, 403},
				{"updater", "DELETE", "/Observation/oa", "", 403},
				{"updater", "PATCH", "/Observation/oa", `[{"op":"replace","path":"/status","value":"final"}]`, 200},
				{"deleter", "GET", "/Observation/oa", "", 403},
				{"deleter", "DELETE", "/Observation/ob", "", 204},
				{"v1write", "POST", "/Observation", obs, 201},
				{"v1write", "GET", "/Observation/oa", "", 403},
				{"all", "GET", "/Observation/oa", "", 200},
				{"all", "GET", "/_history", "", 200},
				{"none", "GET", "/Patient/a", "", 403},
				{"none", "GET", "/metadata", "", 200},
				{"none", "GET", "/Patient/a/$everything", "", 403},
				{"reader", "GET", "/Patient/a/$everything", "", 200},
				{"creator", "GET", "/Patient/a/$everything", "", 403},
			}
			for _, tc := range cases {
				ct := "application/fhir+json"
				if tc.method == "PATCH" {
					ct = "application/json-patch+json"
				}
				r := c.by(tc.who, tc.method, tc.path, tc.body, "Prefer", "return=minimal", "Content-Type", ct)
				if r.status != tc.status {
					t.Errorf("%s %s %s: %d, want %d: %s", tc.who, tc.method, tc.path, r.status, tc.status, truncate(r.body))
				}
				// RFC 6750 §3.1: a token that does not enable the request
				// gets an insufficient_scope challenge; others none.
				wantChallenge := map[bool]string{true: `Bearer error="insufficient_scope"`}[tc.status == 403]
				if got := r.header.Get("WWW-Authenticate"); got != wantChallenge {
					t.Errorf("%s %s %s: WWW-Authenticate %q, want %q", tc.who, tc.method, tc.path, got, wantChallenge)
				}
				if tc.status == 403 {
					r.outcome(t, "forbidden", "")
				}
			}
		})
	}
}

func TestBundleEntriesDecidedOneByOne(t *testing.T) {
	who := principals{"reader": {Subject: "reader", Scopes: mustScopes(t, "system/Patient.rs system/Observation.rs")}}
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who)
			twoPatientRecords(c)
			entries := `[
				{"request":{"method":"GET","url":"Patient/a"}},
				{"fullUrl":"urn:uuid:5c2bfb5e-0d5b-4a59-9c77-7d1d08a9d1c1","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},
				{"request":{"method":"GET","url":"Encounter/ea"}}]`
			r := c.by("reader", "POST", "", `{"resourceType":"Bundle","type":"batch","entry":`+entries+`}`).want(t, 200)
			var b struct {
				Entry []struct{ Response struct{ Status string } }
			}
			json.Unmarshal(r.body, &b)
			var got []string
			for _, e := range b.Entry {
				got = append(got, e.Response.Status)
			}
			if want := "200 OK,403 Forbidden,403 Forbidden"; strings.Join(got, ",") != want {
				t.Errorf("batch entry statuses %q, want %q", strings.Join(got, ","), want)
			}
			r = c.by("reader", "POST", "", `{"resourceType":"Bundle","type":"transaction","entry":`+entries+`}`)
			r.want(t, 403)
			if got := ids(t, c.by("admin", "GET", "/Patient", "")); len(got) != 2 {
				t.Errorf("a refused transaction stored something: Patients %v", got)
			}
		})
	}
}

func TestPatientContextConfines(t *testing.T) {
	who := principals{
		"app":    {Subject: "app", Patient: "a", Scopes: mustScopes(t, "patient/*.cruds")},
		"labs":   {Subject: "labs", Patient: "a", Scopes: mustScopes(t, "patient/Observation.rs?category=laboratory patient/Patient.r")},
		"nopctx": {Subject: "nopctx", Scopes: mustScopes(t, "patient/*.rs")},
		"wild":   {Subject: "wild", Patient: "a", Scopes: mustScopes(t, "patient/*.rs?category=laboratory patient/Patient.r")},
	}
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who)
			twoPatientRecords(c)
			app := func(method, path, body string, headers ...string) *response {
				return c.by("app", method, path, body, headers...)
			}
			app("GET", "/Patient/a", "").want(t, 200)
			app("GET", "/Patient/b", "").want(t, 404)
			app("GET", "/Observation/ob", "").want(t, 404)
			app("GET", "/Observation/ob/_history/1", "").want(t, 404)
			app("GET", "/Observation/ob/_history", "").want(t, 404)
			app("GET", "/Practitioner/dr", "").want(t, 403)
			// HEAD is decided as the GET it stands for.
			app("HEAD", "/Patient/a", "").want(t, 200)
			app("HEAD", "/Patient/b", "").want(t, 404)
			app("HEAD", "/Practitioner/dr", "").want(t, 403)
			app("HEAD", "/Practitioner", "").want(t, 403)
			app("HEAD", "/Patient/b/$everything", "").want(t, 404)
			wantIDs(t, "search", app("GET", "/Observation", ""), "Observation/oa")
			wantIDs(t, "search by the other's id", app("GET", "/Observation?subject=Patient/b", ""))
			wantIDs(t, "Patient search", app("GET", "/Patient", ""), "Patient/a")
			wantIDs(t, "include", app("GET", "/Observation?_include=Observation:subject&_include=Observation:performer", ""), "Observation/oa", "Patient/a")
			wantIDs(t, "revinclude", app("GET", "/Patient?_revinclude=Observation:subject&_revinclude=Encounter:subject", ""), "Patient/a", "Observation/oa", "Encounter/ea")
			wantIDs(t, "chain", app("GET", "/Observation?subject.name=Famb", ""))
			wantIDs(t, "chain to the patient", app("GET", "/Observation?subject.name=Fama", ""), "Observation/oa")
			// The chain passes through the Patient only: never through a
			// Practitioner the app may not read.
			wantIDs(t, "chain through performers", app("GET", "/Observation?performer.name=Jones", ""))
			app("GET", "/Observation?performer:Practitioner.name=Jones", "").want(t, 403)
			wantIDs(t, "_has", app("GET", "/Encounter?_has:Observation:encounter:code=2-2", ""))
			wantIDs(t, "_has on Patient", app("GET", "/Patient?_has:Observation:subject:code=2-2", ""))
			wantIDs(t, "_type", app("GET", "?_type=Patient,Observation,Encounter", ""), "Patient/a", "Observation/oa", "Encounter/ea")
			wantIDs(t, "compartment of the other", app("GET", "/Patient/b/Observation", ""))
			wantIDs(t, "compartment of the other, every type", app("GET", "/Patient/b/*", ""))
			wantIDs(t, "compartment of the other, every type", app("GET", "/Patient/b/*?_type=Observation,Encounter", ""))
			wantIDs(t, "compartment of the other by POST", app("POST", "/Patient/b/Observation/_search", ""))
			wantIDs(t, "compartment of the other by POST, every type", app("POST", "/Patient/b/_search", ""))
			wantIDs(t, "compartment by POST", app("POST", "/Patient/a/_search?_type=Observation,Encounter", ""), "Observation/oa", "Encounter/ea")
			// A history of the system holds types outside the compartment
			// (see TestHistoryReach).
			app("GET", "/_history", "").want(t, 403)
			for _, id := range ids(t, app("GET", "/Observation/_history", "").want(t, 200)) {
				if id != "Observation/oa" {
					t.Errorf("type history leaks %s", id)
				}
			}
			app("GET", "/Patient/b/$everything", "").want(t, 404)
			wantIDs(t, "$everything", app("GET", "/Patient/a/$everything?_type=Patient,Observation,Encounter", ""), "Patient/a", "Observation/oa", "Encounter/ea")

			// Writes stay in the compartment.
			app("POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/b"}}`).want(t, 403)
			// A record also in another patient's compartment is not this
			// patient's alone: a CareTeam of b naming a as a participant
			// would put a practitioner it names in b's care.
			app("POST", "/CareTeam", `{"resourceType":"CareTeam","status":"active","subject":{"reference":"Patient/b"},"participant":[{"member":{"reference":"Patient/a"}},{"member":{"reference":"Practitioner/dr"}}]}`).want(t, 403)
			app("POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/a"},"performer":[{"reference":"Patient/b"}]}`).want(t, 403)
			app("PUT", "/Observation/oa", `{"resourceType":"Observation","id":"oa","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/a"},"performer":[{"reference":"Patient/b"}]}`).want(t, 403)
			if got := ids(t, c.by("admin", "GET", "/CareTeam", "")); len(got) != 0 {
				t.Errorf("a refused CareTeam was stored: %v", got)
			}
			app("PUT", "/Observation/oa", `{"resourceType":"Observation","id":"oa","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/b"}}`).want(t, 403)
			// Updating what the app cannot see is refused as reading it is,
			// in the same words.
			hidden := str(app("GET", "/Observation/ob", "").want(t, 404).json(t), "issue", 0, "diagnostics")
			taken := app("PUT", "/Observation/ob", `{"resourceType":"Observation","id":"ob","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/a"}}`).want(t, 404)
			if got := str(taken.json(t), "issue", 0, "diagnostics"); got != hidden {
				t.Errorf("update of a hidden id: %q, want %q as its read", got, hidden)
			}
			inBatch := app("POST", "", `{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Observation","id":"ob","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/a"}},"request":{"method":"PUT","url":"Observation/ob"}}]}`).want(t, 200).json(t)
			if got := str(inBatch, "entry", 0, "response", "outcome", "issue", 0, "diagnostics"); !strings.HasSuffix(got, ": "+hidden) {
				t.Errorf("update of a hidden id in a batch: %q, want %q", got, hidden)
			}
			// Deleting what the app cannot see deletes nothing, as deleting
			// an unknown resource does (checked below).
			app("DELETE", "/Observation/ob", "").want(t, 204)
			app("PATCH", "/Observation/ob", `[{"op":"replace","path":"/status","value":"amended"}]`, "Content-Type", "application/json-patch+json").want(t, 404)
			// The meta operations read and write as the read and the
			// update they stand for.
			app("GET", "/Patient/b/$meta", "").want(t, 404)
			app("GET", "/Observation/ob/_history/1/$meta", "").want(t, 404)
			app("GET", "/Practitioner/dr/$meta", "").want(t, 403)
			app("GET", "/Patient/a/$meta", "").want(t, 200)
			metaAdd := `{"resourceType":"Parameters","parameter":[{"name":"meta","valueMeta":{"tag":[{"code":"seen"}]}}]}`
			app("POST", "/Observation/ob/$meta-add", metaAdd).want(t, 404)
			app("POST", "/Observation/ob/$meta-delete", metaAdd).want(t, 404)
			c.by("labs", "POST", "/Patient/a/$meta-add", metaAdd).want(t, 403)
			app("POST", "/Observation/oa/$meta-add", metaAdd).want(t, 200)
			// A conditional update whose criteria match the other patient's
			// Observation neither changes it nor creates another beside it
			// (see TestConditionalWriteOutOfReach).
			app("PUT", "/Observation?identifier=urn:obs|ob", `{"resourceType":"Observation","status":"final","code":{"text":"mine"},"subject":{"reference":"Patient/a"}}`).want(t, 403)
			ob := c.by("admin", "GET", "/Observation/ob", "").want(t, 200).json(t)
			if str(ob, "meta", "versionId") != "1" || str(ob, "status") != "final" {
				t.Errorf("the other patient's Observation changed: %v", ob)
			}
			tx := `{"resourceType":"Bundle","type":"transaction","entry":[
				{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/a"}},"request":{"method":"POST","url":"Observation"}},
				{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/b"}},"request":{"method":"POST","url":"Observation"}}]}`
			app("POST", "", tx).want(t, 403)
			app("POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"y"},"subject":{"reference":"Patient/a"}}`).want(t, 201)

			// A v2 restriction narrows further.
			wantIDs(t, "restricted scope", c.by("labs", "GET", "/Observation?code=1-1", ""), "Observation/oa")
			c.put("/Observation/oa2", `{"resourceType":"Observation","id":"oa2","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"text":"bp"},"subject":{"reference":"Patient/a"}}`)
			c.by("labs", "GET", "/Observation/oa2", "").want(t, 404)
			c.by("labs", "GET", "/Observation/oa", "").want(t, 200)
			// A restriction that a type has no parameter for makes its
			// scope grant nothing of that type; other scopes still do.
			c.by("wild", "GET", "/Patient/a", "").want(t, 200)
			c.by("wild", "GET", "/Observation/oa", "").want(t, 200)
			c.by("wild", "GET", "/Observation/oa2", "").want(t, 404)
			wantIDs(t, "restricted wildcard", c.by("wild", "GET", "/Observation", ""), "Observation/oa")
			if d := c.by("wild", "GET", "/Encounter/ea", "").want(t, 403).outcome(t, "forbidden", ""); !strings.Contains(d, "patient/*.rs?category=laboratory") {
				t.Errorf("a type the restriction cannot apply to: %q, want the scope named", d)
			}
			c.by("wild", "GET", "/Patient?name=Fama", "").want(t, 403)

			// patient/ scopes need a patient context.
			c.by("nopctx", "GET", "/Patient/a", "").want(t, 403)
		})
	}
}

// patientAndPractitioner serves engine e under the care-team policy to
// "app", the token of Patient/patient with patient/*.cruds, and "p1", a
// practitioner with user/*.cruds on that patient's CareTeam "ct", with the
// records of twoPatientRecords.
func patientAndPractitioner(t *testing.T, e enginetest.Engine, patient string) *accessClient {
	who := principals{
		"app": {Subject: "app", Patient: patient, Scopes: mustScopes(t, "patient/*.cruds")},
		"p1":  {Subject: "p1", FHIRUser: "Practitioner/p1", Scopes: mustScopes(t, "user/*.cruds")},
	}
	c := newAccessClient(t, e.Open(t), who, func(cfg *server.Config) { cfg.AccessPolicy = access.CareTeamPolicy })
	twoPatientRecords(c)
	c.put("/CareTeam/ct", `{"resourceType":"CareTeam","id":"ct","status":"active","subject":{"reference":"Patient/`+patient+`"},"participant":[{"member":{"reference":"Practitioner/p1"}}]}`)
	return c
}

// TestDeletedPatientReachedByNoToken: once a Patient is deleted, the
// records of their compartment are reached by no token narrowed to some
// patients: their own patient/ token answers as a practitioner of theirs
// under the care-team rule does, 404 for the Patient, each record and
// each earlier version, empty searches and histories, and no write.
func TestDeletedPatientReachedByNoToken(t *testing.T) {
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := patientAndPractitioner(t, e, "b")
			c.put("/Observation/ob", `{"resourceType":"Observation","id":"ob","status":"amended","code":{"text":"x"},"subject":{"reference":"Patient/b"}}`)
			for _, name := range []string{"app", "p1"} {
				c.by(name, "GET", "/Observation/ob/_history/1", "").want(t, http.StatusOK)
			}
			c.by("admin", "DELETE", "/Patient/b", "").want(t, http.StatusNoContent)
			for _, name := range []string{"app", "p1"} {
				for _, path := range []string{"/Patient/b", "/Patient/b/_history/1", "/Observation/ob", "/Observation/ob/_history/1",
					"/Observation/ob/_history/2", "/Encounter/eb", "/Patient/b/$everything"} {
					if r := c.by(name, "GET", path, ""); r.status != http.StatusNotFound {
						t.Errorf("%s: GET %s: %d, want 404", name, path, r.status)
					}
				}
				for _, path := range []string{"/Observation", "/Observation?subject=Patient/b", "/Patient/b/Observation", "/Observation/_history", "/Observation/ob/_history", "/CareTeam"} {
					r := c.by(name, "GET", path, "")
					if r.status == http.StatusOK && len(ids(t, r)) != 0 || r.status != http.StatusOK && r.status != http.StatusNotFound {
						t.Errorf("%s: GET %s: %d %v, want nothing", name, path, r.status, truncate(r.body))
					}
				}
				c.by(name, "POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"new"},"subject":{"reference":"Patient/b"}}`).want(t, http.StatusForbidden)
			}
			if got := ids(t, c.by("admin", "GET", "/Observation?subject=Patient/b", "")); len(got) != 1 {
				t.Errorf("the deleted patient's Observations: %v, want ob alone", got)
			}
		})
	}
}

// TestWriteOutsideReachSaysWhy: a write whose version would leave what the
// token reaches is refused saying what it must be to stay: in the
// compartment of the token's patient, or matching the restriction of a
// scope, where a token with no patient reaches no compartment.
func TestWriteOutsideReachSaysWhy(t *testing.T) {
	who := principals{
		"app":  {Subject: "app", Patient: "a", Scopes: mustScopes(t, "patient/Observation.cruds")},
		"labs": {Subject: "labs", Scopes: mustScopes(t, "system/Observation.cruds?category=laboratory")},
	}
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who)
			twoPatientRecords(c)
			moved := `{"resourceType":"Observation","id":"oa","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/b"}}`
			if d := c.by("app", "PUT", "/Observation/oa", moved).want(t, http.StatusForbidden).outcome(t, "forbidden", ""); !strings.Contains(d, "compartment") {
				t.Errorf("a patient's Observation moved to another: %q, want the compartment named", d)
			}
			relabelled := `{"resourceType":"Observation","id":"oa","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"text":"x"},"subject":{"reference":"Patient/a"}}`
			d := c.by("labs", "PUT", "/Observation/oa", relabelled).want(t, http.StatusForbidden).outcome(t, "forbidden", "")
			if strings.Contains(d, "compartment") || !strings.Contains(d, "restriction") {
				t.Errorf("a laboratory Observation relabelled: %q, want the restriction named, not a compartment", d)
			}
		})
	}
}

// TestSearchListThroughAccess: the List a search's _list names is read as
// the token would read it: a List outside the token's reach selects
// nothing, so that which of the token's own records it names is not told,
// and _list by a token whose scopes grant no List is 403, as a read is.
func TestSearchListThroughAccess(t *testing.T) {
	who := principals{
		"app":  {Subject: "app", Patient: "a", Scopes: mustScopes(t, "patient/*.rs")},
		"labs": {Subject: "labs", Scopes: mustScopes(t, "system/Observation.rs")},
	}
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who)
			twoPatientRecords(c)
			for _, l := range []struct{ id, patient string }{{"la", "a"}, {"lb", "b"}} {
				c.put("/List/"+l.id, `{"resourceType":"List","id":"`+l.id+`","status":"current","mode":"working","subject":{"reference":"Patient/`+l.patient+`"},"entry":[{"item":{"reference":"Observation/oa"}}]}`)
			}
			wantIDs(t, "admin, the other patient's List", c.by("admin", "GET", "/Observation?_list=lb", ""), "Observation/oa")
			wantIDs(t, "their own List", c.by("app", "GET", "/Observation?_list=la", ""), "Observation/oa")
			wantIDs(t, "the other patient's List", c.by("app", "GET", "/Observation?_list=lb", ""))
			c.by("labs", "GET", "/Observation?_list=la", "").want(t, http.StatusForbidden).outcome(t, "forbidden", "")
		})
	}
}

// TestPatientContextWritesItsOwnPatient: a Patient linking to the context
// patient (link.other, as a merged record's does) is in that patient's
// compartment, and read by their token, but is a patient of its own: the
// token may not change it, nor create another Patient linking to theirs,
// as it may write no record of another patient.
func TestPatientContextWritesItsOwnPatient(t *testing.T) {
	who := principals{"app": {Subject: "app", Patient: "a", Scopes: mustScopes(t, "patient/*.cruds")}}
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who)
			twoPatientRecords(c)
			linked := func(id, family string) string {
				return `{"resourceType":"Patient","id":"` + id + `","name":[{"family":"` + family + `"}],"link":[{"other":{"reference":"Patient/a"},"type":"seealso"}]}`
			}
			c.put("/Patient/b", linked("b", "Famb"))
			c.by("app", "GET", "/Patient/b", "").want(t, http.StatusOK)
			c.by("app", "PUT", "/Patient/b", linked("b", "Changed")).want(t, http.StatusForbidden)
			c.by("app", "PATCH", "/Patient/b", `[{"op":"replace","path":"/name/0/family","value":"Changed"}]`, "Content-Type", "application/json-patch+json").want(t, http.StatusForbidden)
			c.by("app", "POST", "/Patient", strings.Replace(linked("b", "New"), `"id":"b",`, "", 1)).want(t, http.StatusForbidden)
			if got := str(c.by("admin", "GET", "/Patient/b", "").want(t, http.StatusOK).json(t), "name", 0, "family"); got != "Famb" {
				t.Errorf("Patient/b was changed to %q by the token of Patient/a", got)
			}
			wantIDs(t, "Patients", c.by("admin", "GET", "/Patient", ""), "Patient/a", "Patient/b")
			c.by("app", "PUT", "/Patient/a", `{"resourceType":"Patient","id":"a","name":[{"family":"Mine"}]}`).want(t, http.StatusOK)
		})
	}
}

// TestDeleteOfSharedRecordRefused: a record also in the compartment of a
// patient the token may not write for (an Appointment of two patients, a
// Patient linking to the token's patient) is read by the token but not
// deleted by it, as it is not updated: the deletion would remove it from
// the other patient's record too. Under the care-team rule alike.
func TestDeleteOfSharedRecordRefused(t *testing.T) {
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := patientAndPractitioner(t, e, "a")
			c.put("/Appointment/both", `{"resourceType":"Appointment","id":"both","status":"booked","participant":[{"actor":{"reference":"Patient/a"},"status":"accepted"},{"actor":{"reference":"Patient/b"},"status":"accepted"}]}`)
			c.put("/Patient/c", `{"resourceType":"Patient","id":"c","link":[{"other":{"reference":"Patient/a"},"type":"seealso"}]}`)
			for _, name := range []string{"app", "p1"} {
				c.by(name, "GET", "/Appointment/both", "").want(t, http.StatusOK)
				c.by(name, "DELETE", "/Appointment/both", "").want(t, http.StatusForbidden)
				c.by(name, "DELETE", "/Appointment?_id=both", "").want(t, http.StatusForbidden)
			}
			c.by("app", "DELETE", "/Patient/c", "").want(t, http.StatusForbidden)
			c.by("admin", "GET", "/Appointment/both", "").want(t, http.StatusOK)
			c.by("admin", "GET", "/Patient/c", "").want(t, http.StatusOK)
			c.by("app", "DELETE", "/Observation/oa", "").want(t, http.StatusNoContent)
			c.by("p1", "DELETE", "/Encounter/ea", "").want(t, http.StatusNoContent)
		})
	}
}

// TestScopeRestrictionSelects: a SMART v2 restriction holds search
// criteria; a parameter that shapes a search's answer instead (_count,
// _elements, _sort) restricts nothing, and its scope grants nothing of the
// type rather than every resource, whole.
func TestScopeRestrictionSelects(t *testing.T) {
	who := principals{
		"count":    {Subject: "count", Scopes: mustScopes(t, "system/Observation.rs?_count=1")},
		"elements": {Subject: "elements", Patient: "a", Scopes: mustScopes(t, "patient/Observation.rs?_elements=code")},
		"sorted":   {Subject: "sorted", Patient: "a", Scopes: mustScopes(t, "patient/Observation.rs?category=laboratory&_sort=date")},
		"labs":     {Subject: "labs", Patient: "a", Scopes: mustScopes(t, "patient/Observation.rs?category=laboratory")},
	}
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who)
			twoPatientRecords(c)
			for name, param := range map[string]string{"count": "_count", "elements": "_elements", "sorted": "_sort"} {
				for _, path := range []string{"/Observation/oa", "/Observation/ob", "/Observation"} {
					d := c.by(name, "GET", path, "").want(t, 403).outcome(t, "forbidden", "")
					if !strings.Contains(d, who[name].Scopes[0].Raw) || !strings.Contains(d, param) {
						t.Errorf("%s %s: %q, want the scope and %s named", name, path, d, param)
					}
				}
			}
			wantIDs(t, "a restriction of criteria", c.by("labs", "GET", "/Observation", ""), "Observation/oa")
		})
	}
}

func TestCareTeamPolicy(t *testing.T) {
	who := principals{
		"p1":  {Subject: "p1", FHIRUser: "Practitioner/p1", Scopes: mustScopes(t, "user/*.cruds")},
		"ods": {Subject: "ods", FHIRUser: "Practitioner/p2", Organization: "Y12345", Scopes: mustScopes(t, "user/*.rs")},
	}
	policy := func(cfg *server.Config) { cfg.AccessPolicy = access.CareTeamPolicy }
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who, policy)
			twoPatientRecords(c)
			c.put("/Practitioner/p1", `{"resourceType":"Practitioner","id":"p1"}`)
			p1 := func(method, path, body string) *response { return c.by("p1", method, path, body) }
			p1("GET", "/Patient/a", "").want(t, 404)
			wantIDs(t, "before", p1("GET", "/Observation", ""))

			team := `{"resourceType":"CareTeam","id":"ct","status":"active","subject":{"reference":"Patient/a"},"participant":[{"member":{"reference":"Practitioner/p1"}}]}`
			c.put("/CareTeam/ct", team)
			p1("GET", "/Patient/a", "").want(t, 200)
			p1("GET", "/Patient/b", "").want(t, 404)
			wantIDs(t, "in the team", p1("GET", "/Observation", ""), "Observation/oa")
			// A chain through several types narrows each by its own
			// grant: performers that are Practitioners, which the rule
			// leaves alone, are not held to what narrows Patients.
			wantIDs(t, "chain through performers", p1("GET", "/Observation?performer.name=Jones", ""), "Observation/oa")
			wantIDs(t, "chain to the other patient", p1("GET", "/Observation?subject.name=Famb", ""))
			wantIDs(t, "chain to either patient", p1("GET", "/Encounter?subject.name=Famb,Fama", ""), "Encounter/ea")
			wantIDs(t, "Patients", p1("GET", "/Patient", ""), "Patient/a")
			if total := get(p1("GET", "/Observation/_history?_summary=count", "").want(t, 200).json(t), "total"); total != 1.0 {
				t.Errorf("Observation history of the team's patient counts %v versions, want 1", total)
			}
			p1("GET", "/Practitioner/dr", "").want(t, 200) // not a patient's record
			p1("POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/b"}}`).want(t, 403)
			p1("POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/a"}}`).want(t, 201)

			// Leaving the team revokes access from the next request on.
			c.put("/CareTeam/ct", strings.Replace(team, `"active"`, `"inactive"`, 1))
			p1("GET", "/Patient/a", "").want(t, 404)
			wantIDs(t, "after leaving", p1("GET", "/Observation?code=1-1", ""))

			// Taking part through a PractitionerRole counts too.
			c.put("/PractitionerRole/r1", `{"resourceType":"PractitionerRole","id":"r1","practitioner":{"reference":"Practitioner/p1"}}`)
			c.put("/CareTeam/ct2", `{"resourceType":"CareTeam","id":"ct2","status":"active","subject":{"reference":"Patient/b"},"participant":[{"member":{"reference":"PractitionerRole/r1"}}]}`)
			p1("GET", "/Patient/b", "").want(t, 200)
			wantIDs(t, "through a role", p1("GET", "/Encounter", ""), "Encounter/eb")

			// Registration at the token's organisation.
			c.put("/Patient/c", `{"resourceType":"Patient","id":"c","generalPractitioner":[{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"Y12345"}}]}`)
			c.put("/Organization/org", `{"resourceType":"Organization","id":"org","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"Y12345"}]}`)
			c.put("/Patient/d", `{"resourceType":"Patient","id":"d","managingOrganization":{"reference":"Organization/org"}}`)
			wantIDs(t, "registered", c.by("ods", "GET", "/Patient", ""), "Patient/c", "Patient/d")
			c.by("ods", "GET", "/Patient/a", "").want(t, 404)
		})
	}
}

// p1InTeamOfA serves engine e under the care-team policy to who, with the
// records of twoPatientRecords and Patient a's CareTeam "ct" in which
// Practitioner/p1 takes part.
func p1InTeamOfA(t *testing.T, e enginetest.Engine, who principals) *accessClient {
	t.Helper()
	c := newAccessClient(t, e.Open(t), who, func(cfg *server.Config) { cfg.AccessPolicy = access.CareTeamPolicy })
	twoPatientRecords(c)
	c.put("/CareTeam/ct", `{"resourceType":"CareTeam","id":"ct","status":"active","subject":{"reference":"Patient/a"},"participant":[{"member":{"reference":"Practitioner/p1"}}]}`)
	return c
}

// TestCareTeamPolicyAbsoluteFHIRUser: a fhirUser claim given as an
// absolute URL under the server's own base names the same practitioner as
// Practitioner/p1 does, where it reached no patient; one under another
// base names no practitioner of this server and is still refused.
func TestCareTeamPolicyAbsoluteFHIRUser(t *testing.T) {
	who := principals{
		"abs":   {Subject: "abs", FHIRUser: baseMarker + "/Practitioner/p1", Scopes: mustScopes(t, "user/*.cruds")},
		"other": {Subject: "other", FHIRUser: "https://elsewhere.example/fhir/Practitioner/p1", Scopes: mustScopes(t, "user/*.cruds")},
	}
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := p1InTeamOfA(t, e, who)
			c.by("abs", "GET", "/Patient/a", "").want(t, http.StatusOK)
			c.by("abs", "GET", "/Patient/b", "").want(t, http.StatusNotFound)
			wantIDs(t, "absolute fhirUser of this server", c.by("abs", "GET", "/Observation", ""), "Observation/oa")
			c.by("abs", "POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/a"}}`).want(t, http.StatusCreated)
			// As any fhirUser that is not a Practitioner of this server:
			// its user/ scopes grant no patient's records.
			c.by("other", "GET", "/Patient/a", "").want(t, http.StatusForbidden)
			c.by("other", "GET", "/Observation", "").want(t, http.StatusForbidden)
		})
	}
}

// TestCareTeamPolicyCurrentPart: the care-team rule counts a part in a
// CareTeam only while its period holds: a practitioner whose part ended
// (as after a handover) or has not begun reaches none of the patient's
// records, by read or search, whether they take part in person or through
// a PractitionerRole; dates are reckoned in the UK, at their precision.
func TestCareTeamPolicyCurrentPart(t *testing.T) {
	who := principals{}
	for _, name := range []string{"gone", "soon", "open", "month", "role", "both", "err"} {
		who[name] = &access.Principal{Subject: name, FHIRUser: "Practitioner/" + name, Scopes: mustScopes(t, "user/*.rs")}
	}
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	today := now.In(london)
	yesterday := today.AddDate(0, 0, -1).Format(time.DateOnly)
	tomorrow := today.AddDate(0, 0, 1).Format(time.DateOnly)
	anHourAgo := now.Add(-time.Hour).UTC().Format(time.RFC3339)
	part := func(member, period string) string {
		p := `{"member":{"reference":"` + member + `"}`
		if period != "" {
			p += `,"period":{` + period + `}`
		}
		return p + "}"
	}
	policy := func(cfg *server.Config) { cfg.AccessPolicy = access.CareTeamPolicy }
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who, policy)
			twoPatientRecords(c)
			c.put("/PractitionerRole/r1", `{"resourceType":"PractitionerRole","id":"r1","practitioner":{"reference":"Practitioner/role"}}`)
			c.put("/CareTeam/ct", `{"resourceType":"CareTeam","id":"ct","status":"active","subject":{"reference":"Patient/a"},"participant":[`+
				strings.Join([]string{
					part("Practitioner/gone", `"start":"2020-01-01","end":"`+yesterday+`"`),
					part("Practitioner/soon", `"start":"`+tomorrow+`"`),
					part("Practitioner/open", `"start":"`+yesterday+`"`),
					part("Practitioner/month", `"end":"`+today.Format("2006-01")+`"`),
					part("PractitionerRole/r1", `"end":"`+anHourAgo+`"`),
					part("Practitioner/both", `"end":"`+yesterday+`"`),
					part(c.base+"/Practitioner/both", `"start":"`+today.Format(time.DateOnly)+`"`),
				}, ",")+`]}`)
			c.put("/CareTeam/cte", `{"resourceType":"CareTeam","id":"cte","status":"entered-in-error","subject":{"reference":"Patient/a"},"participant":[`+
				part("Practitioner/err", "")+`]}`)
			// A team of b whose parts all hold, so that searches have
			// something to find.
			c.put("/CareTeam/ctb", `{"resourceType":"CareTeam","id":"ctb","status":"active","subject":{"reference":"Patient/b"},"participant":[`+
				part("Practitioner/gone", "")+","+part("Practitioner/soon", `"end":"`+tomorrow+`"`)+`]}`)

			for name, others := range map[string][]string{"gone": {"b"}, "soon": {"b"}, "role": nil, "err": nil} {
				by := func(path string) *response { return c.by(name, "GET", path, "") }
				by("/Patient/a").want(t, 404)
				by("/Observation/oa").want(t, 404)
				by("/Encounter/ea").want(t, 404)
				wantIDs(t, name+": Observations of a", by("/Observation?subject=Patient/a"))
				wantIDs(t, name+": Encounters of a", by("/Encounter?patient=a"))
				var patients, observations []string
				for _, p := range others {
					by("/Patient/"+p).want(t, 200)
					patients = append(patients, "Patient/"+p)
					observations = append(observations, "Observation/o"+p)
				}
				wantIDs(t, name+": Patients", by("/Patient"), patients...)
				wantIDs(t, name+": Patients through _has", by("/Patient?_has:CareTeam:subject:status=active"), patients...)
				wantIDs(t, name+": Observations", by("/Observation"), observations...)
			}
			for _, name := range []string{"open", "month", "both"} {
				c.by(name, "GET", "/Patient/a", "").want(t, 200)
				c.by(name, "GET", "/Observation/oa", "").want(t, 200)
				wantIDs(t, name+": Observations", c.by(name, "GET", "/Observation", ""), "Observation/oa")
				wantIDs(t, name+": Patients", c.by(name, "GET", "/Patient", ""), "Patient/a")
			}
			// A record of b naming a as its performer: a search finds
			// it, and its include of a follows the part in a's team.
			c.put("/Observation/oba", `{"resourceType":"Observation","id":"oba","status":"final","code":{"text":"x"},`+
				`"subject":{"reference":"Patient/b"},"performer":[{"reference":"Patient/a"}]}`)
			for name, want := range map[string][]string{"gone": {"Observation/oba"}, "open": {"Observation/oba", "Patient/a"}} {
				wantIDs(t, name+": an include of a", c.by(name, "GET", "/Observation?_id=oba&_include=Observation:performer", ""), want...)
			}
		})
	}
}

// TestCareTeamPolicyWrites: a practitioner cannot write themselves into
// the care of a patient they are not related to: not by a CareTeam that
// also names a related patient, nor by making another's PractitionerRole
// theirs, nor by giving a practice's Organization their ODS code.
func TestCareTeamPolicyWrites(t *testing.T) {
	who := principals{
		"p1": {Subject: "p1", FHIRUser: "Practitioner/p1", Organization: "Y77777", Scopes: mustScopes(t, "user/*.cruds")},
		"it": {Subject: "it", ClientID: "it", Scopes: mustScopes(t, "system/Organization.cruds system/PractitionerRole.cruds")},
	}
	policy := func(cfg *server.Config) { cfg.AccessPolicy = access.CareTeamPolicy }
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who, policy)
			twoPatientRecords(c)
			c.put("/CareTeam/ct", `{"resourceType":"CareTeam","id":"ct","status":"active","subject":{"reference":"Patient/a"},"participant":[{"member":{"reference":"Practitioner/p1"}}]}`)
			c.put("/PractitionerRole/other", `{"resourceType":"PractitionerRole","id":"other","practitioner":{"reference":"Practitioner/p9"}}`)
			c.put("/CareTeam/ctc", `{"resourceType":"CareTeam","id":"ctc","status":"active","subject":{"reference":"Patient/c"},"participant":[{"member":{"reference":"PractitionerRole/other"}}]}`)
			c.put("/Organization/practice", `{"resourceType":"Organization","id":"practice","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"B81001"}]}`)
			c.put("/Patient/c", `{"resourceType":"Patient","id":"c"}`)
			c.put("/Patient/d", `{"resourceType":"Patient","id":"d","managingOrganization":{"reference":"Organization/practice"}}`)
			p1 := func(method, path, body string) *response { return c.by("p1", method, path, body) }
			p1("GET", "/Patient/a", "").want(t, 200)
			for _, id := range []string{"b", "c", "d"} {
				p1("GET", "/Patient/"+id, "").want(t, 404)
			}

			// A CareTeam of b naming a's as a participant.
			p1("POST", "/CareTeam", `{"resourceType":"CareTeam","status":"active","subject":{"reference":"Patient/b"},"participant":[{"member":{"reference":"Practitioner/p1"}},{"member":{"reference":"Patient/a"}}]}`).want(t, 403)
			p1("PUT", "/CareTeam/ct", `{"resourceType":"CareTeam","id":"ct","status":"active","subject":{"reference":"Patient/b"},"participant":[{"member":{"reference":"Practitioner/p1"}},{"member":{"reference":"Patient/a"}}]}`).want(t, 403)
			// Another's role made theirs, by update, or by a create of an id
			// a CareTeam already names.
			role := `{"resourceType":"PractitionerRole","id":"other","practitioner":{"reference":"Practitioner/p1"}}`
			p1("PUT", "/PractitionerRole/other", role).want(t, 403)
			c.put("/CareTeam/ctc", `{"resourceType":"CareTeam","id":"ctc","status":"active","subject":{"reference":"Patient/c"},"participant":[{"member":{"reference":"PractitionerRole/later"}}]}`)
			p1("PUT", "/PractitionerRole/later", strings.Replace(role, `"other"`, `"later"`, 1)).want(t, 403)
			// The practice's Organization given their ODS code.
			p1("PUT", "/Organization/practice", `{"resourceType":"Organization","id":"practice","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"B81001"},{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"Y77777"}]}`).want(t, 403)
			c.by("p1", "PATCH", "/Organization/practice", `[{"op":"add","path":"/identifier/-","value":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"Y77777"}}]`,
				"Content-Type", "application/json-patch+json").want(t, 403)
			for _, id := range []string{"b", "c", "d"} {
				p1("GET", "/Patient/"+id, "").want(t, 404)
			}
			if got := str(c.by("admin", "GET", "/PractitionerRole/other", "").want(t, 200).json(t), "practitioner", "reference"); got != "Practitioner/p9" {
				t.Errorf("the refused role update stored %s", got)
			}

			// What makes no claim, or keeps one already made, is written;
			// a role or organisation created with an id the server chooses
			// is named by nothing yet.
			p1("PUT", "/Organization/practice", `{"resourceType":"Organization","id":"practice","name":"Riverside","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"B81001"}]}`).want(t, 200)
			mine := str(p1("POST", "/PractitionerRole", `{"resourceType":"PractitionerRole","practitioner":{"reference":"Practitioner/p1"}}`).want(t, 201).json(t), "id")
			p1("PUT", "/PractitionerRole/"+mine, `{"resourceType":"PractitionerRole","id":"`+mine+`","active":true,"practitioner":{"reference":"Practitioner/p1"}}`).want(t, 200)
			p1("PUT", "/CareTeam/ct", `{"resourceType":"CareTeam","id":"ct","status":"active","subject":{"reference":"Patient/a"},"participant":[{"member":{"reference":"Practitioner/p1"}},{"member":{"reference":"PractitionerRole/`+mine+`"}}]}`).want(t, 200)
			// A client outside the rule assigns roles and codes.
			c.by("it", "PUT", "/PractitionerRole/later", strings.Replace(role, `"other"`, `"later"`, 1)).want(t, 201)
			p1("GET", "/Patient/c", "").want(t, 200)
		})
	}
}

// TestCareTeamPolicyPatientRegistration: a practitioner cannot make
// themselves related to a patient by registering them at the organisation
// of their token: not by creating, at an id records already name, a
// Patient registered there, which would reach those records, nor by
// registering there a patient they are related to through a care team,
// which would outlast it. A Patient created with an id the server chooses
// is named by nothing yet, and one registered there already stays so.
func TestCareTeamPolicyPatientRegistration(t *testing.T) {
	who := principals{
		"p1": {Subject: "p1", FHIRUser: "Practitioner/p1", Organization: "Y77777", Scopes: mustScopes(t, "user/*.cruds")},
	}
	policy := func(cfg *server.Config) { cfg.AccessPolicy = access.CareTeamPolicy }
	registered := func(id string) string {
		return `{"resourceType":"Patient","id":"` + id + `","generalPractitioner":[{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"Y77777"}}]}`
	}
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who, policy)
			twoPatientRecords(c)
			c.put("/Observation/early", `{"resourceType":"Observation","id":"early","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/later"}}`)
			c.put("/CareTeam/ct", `{"resourceType":"CareTeam","id":"ct","status":"active","subject":{"reference":"Patient/a"},"participant":[{"member":{"reference":"Practitioner/p1"}}]}`)
			c.put("/Patient/mine", registered("mine"))
			p1 := func(method, path, body string) *response { return c.by("p1", method, path, body) }

			p1("PUT", "/Patient/later", registered("later")).want(t, http.StatusForbidden)
			p1("GET", "/Observation/early", "").want(t, http.StatusNotFound)
			c.by("admin", "GET", "/Patient/later", "").want(t, http.StatusNotFound)
			p1("PUT", "/Patient/a", registered("a")).want(t, http.StatusForbidden)
			c.by("admin", "PATCH", "/CareTeam/ct", `[{"op":"replace","path":"/status","value":"inactive"}]`, "Content-Type", "application/json-patch+json").want(t, http.StatusOK)
			p1("GET", "/Patient/a", "").want(t, http.StatusNotFound)

			p1("POST", "/Patient", `{"resourceType":"Patient","generalPractitioner":[{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"Y77777"}}]}`).want(t, http.StatusCreated)
			p1("PUT", "/Patient/mine", strings.Replace(registered("mine"), `{"resourceType":"Patient",`, `{"resourceType":"Patient","active":true,`, 1)).want(t, http.StatusOK)
		})
	}
}

// TestIterateIncludesReachable: an :iterate include follows only what
// the token may read, so what it adds says nothing of the references of
// records the token cannot see: here, where a practitioner saw a patient
// outside the token's care team.
func TestIterateIncludesReachable(t *testing.T) {
	who := principals{
		"p1": {Subject: "p1", FHIRUser: "Practitioner/p1", Scopes: mustScopes(t, "user/*.rs")},
	}
	policy := func(cfg *server.Config) { cfg.AccessPolicy = access.CareTeamPolicy }
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who, policy)
			twoPatientRecords(c)
			c.put("/CareTeam/ct", `{"resourceType":"CareTeam","id":"ct","status":"active","subject":{"reference":"Patient/a"},"participant":[{"member":{"reference":"Practitioner/p1"}}]}`)
			for p, ward := range map[string]string{"a": "ward", "b": "secret"} {
				c.put("/Location/"+ward, `{"resourceType":"Location","id":"`+ward+`"}`)
				c.put("/Encounter/visit"+p, `{"resourceType":"Encounter","id":"visit`+p+`","status":"finished",
					"class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/`+p+`"},
					"participant":[{"individual":{"reference":"Practitioner/dr"}}],"location":[{"location":{"reference":"Location/`+ward+`"}}]}`)
			}
			p1 := func(path string) *response { return c.by("p1", "GET", path, "") }
			wantIDs(t, "locations of the practitioner's encounters",
				p1("/Practitioner?_id=dr&_revinclude=Encounter:practitioner&_include:iterate=Encounter:location"),
				"Practitioner/dr", "Encounter/visita", "Location/ward")
			wantIDs(t, "practitioners of the location's encounters",
				p1("/Location?_id=secret&_revinclude=Encounter:location&_include:iterate=Encounter:practitioner"),
				"Location/secret")
			wantIDs(t, "encounters of the ward and their patients",
				p1("/Location?_id=ward&_revinclude=Encounter:location&_include:iterate=Encounter:subject&_revinclude:iterate=Observation:subject"),
				"Location/ward", "Encounter/visita", "Patient/a", "Observation/oa")
		})
	}
}

// TestCanonicalIncludesReachable: what _include and _revinclude add by
// canonical url is what the token may read: a patient's app sees the
// Questionnaire its response names only with a scope reaching
// Questionnaires, and never another patient's response to it.
func TestCanonicalIncludesReachable(t *testing.T) {
	who := principals{
		"responses": {Subject: "responses", Patient: "a", Scopes: mustScopes(t, "patient/*.rs")},
		"forms":     {Subject: "forms", Patient: "a", Scopes: mustScopes(t, "patient/*.rs user/Questionnaire.rs")},
	}
	const pam = "http://example.org/fhir/Questionnaire/pam"
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who)
			twoPatientRecords(c)
			c.put("/Questionnaire/q", `{"resourceType":"Questionnaire","id":"q","url":"`+pam+`","version":"2","status":"active"}`)
			for _, p := range []string{"a", "b"} {
				c.put("/QuestionnaireResponse/r"+p, `{"resourceType":"QuestionnaireResponse","id":"r`+p+`","status":"completed",
					"questionnaire":"`+pam+`|2","subject":{"reference":"Patient/`+p+`"}}`)
			}
			wantIDs(t, "the Questionnaire out of reach",
				c.by("responses", "GET", "/QuestionnaireResponse?_include=QuestionnaireResponse:questionnaire", ""),
				"QuestionnaireResponse/ra")
			wantIDs(t, "the Questionnaire in reach",
				c.by("forms", "GET", "/QuestionnaireResponse?_include=QuestionnaireResponse:questionnaire", ""),
				"QuestionnaireResponse/ra", "Questionnaire/q")
			wantIDs(t, "the patient's responses to the Questionnaire",
				c.by("forms", "GET", "/Questionnaire?_revinclude=QuestionnaireResponse:questionnaire", ""),
				"Questionnaire/q", "QuestionnaireResponse/ra")
			wantIDs(t, "the responses to the Questionnaire of the response",
				c.by("forms", "GET", "/QuestionnaireResponse?_include=QuestionnaireResponse:questionnaire&_revinclude:iterate=QuestionnaireResponse:questionnaire", ""),
				"QuestionnaireResponse/ra", "Questionnaire/q")
			wantIDs(t, "all responses to the Questionnaire",
				c.by("admin", "GET", "/Questionnaire?_revinclude=QuestionnaireResponse:questionnaire", ""),
				"Questionnaire/q", "QuestionnaireResponse/ra", "QuestionnaireResponse/rb")
		})
	}
}

func TestAuditTrail(t *testing.T) {
	who := principals{
		"dr":      {Subject: "u-1", FHIRUser: "Practitioner/dr", ClientID: "app-1", Scopes: mustScopes(t, "user/Patient.rs user/Observation.rs")},
		"auditor": {Subject: "aud", Scopes: mustScopes(t, "system/AuditEvent.rs")},
	}
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who)
			twoPatientRecords(c)
			requests := []struct{ who, method, path, body string }{
				{"dr", "GET", "/Patient/a", ""},
				{"dr", "GET", "/Observation?subject=Patient/b", ""},
				{"dr", "GET", "/Encounter/ea", ""}, // denied
				{"dr", "GET", "/Patient/zz", ""},   // not found
				{"dr", "GET", "/metadata", ""},
				{"nobody", "GET", "/Patient/a", ""},
				{"admin", "POST", "/AuditEvent", `{"resourceType":"AuditEvent"}`},
				{"admin", "POST", "", `{"resourceType":"Bundle","type":"transaction","entry":[]}`},
				// Changing the trail needs a valid token like any request,
				// and is refused to its holder, who is named.
				{"nobody", "POST", "/AuditEvent", `{"resourceType":"AuditEvent"}`},
				{"dr", "DELETE", "/AuditEvent/x", ""},
			}
			sent := map[string]int{}
			for i, r := range requests {
				id := "req-" + string(rune('a'+i))
				sent[id] = c.by(r.who, r.method, r.path, r.body, "X-Request-Id", id).status
			}
			// A forwarding header is the client's to write: the address
			// audited is the connection's.
			sent["req-fwd"] = c.by("dr", "GET", "/metadata", "", "X-Request-Id", "req-fwd", "X-Forwarded-For", "203.0.113.9").status
			byRequest := c.auditEventsByRequest(t, sent)
			for id, status := range sent {
				evs := byRequest[id]
				// The search of req-b is an event about patient b and one
				// of no patient, holding its query.
				if want := map[string]int{"req-b": 2}[id]; len(evs) != max(want, 1) {
					t.Errorf("request %s (%d): %d AuditEvents, want %d", id, status, len(evs), max(want, 1))
					continue
				}
				wantOutcome := map[bool]string{true: "0", false: "4"}[status < 400]
				for _, ev := range evs {
					if got := str(ev, "outcome"); got != wantOutcome {
						t.Errorf("request %s (%d): outcome %q, want %q", id, status, got, wantOutcome)
					}
				}
			}
			read := byRequest["req-a"][0]
			if str(read, "action") != "R" || str(read, "subtype", 0, "code") != "read" || str(read, "type", "code") != "rest" {
				t.Errorf("read event: %v", read)
			}
			if str(read, "agent", 0, "who", "reference") != "Practitioner/dr" || str(read, "agent", 0, "altId") != "app-1" || str(read, "agent", 0, "network", "address") == "" {
				t.Errorf("read agent: %v", get(read, "agent"))
			}
			if got := str(byRequest["req-fwd"][0], "agent", 0, "network", "address"); got != "127.0.0.1" {
				t.Errorf("a request sent with X-Forwarded-For audited from %q, want the connection's 127.0.0.1", got)
			}
			if !slices.Contains(entityRefs(read), "Patient/a/_history/1") {
				t.Errorf("read entities %v lack Patient/a", entityRefs(read))
			}
			var searched, query []string
			for _, ev := range byRequest["req-b"] {
				searched = append(searched, entityRefs(ev)...)
				for _, en := range get(ev, "entity").([]any) {
					if q := str(en, "query"); q != "" {
						b, _ := base64.StdEncoding.DecodeString(q)
						query = append(query, string(b))
					}
				}
			}
			if !slices.Contains(searched, "Observation/ob/_history/1") || !slices.Contains(searched, "Patient/b") {
				t.Errorf("search entities %v lack the Observation found and its patient", searched)
			}
			if !slices.Equal(query, []string{"subject=Patient/b"}) {
				t.Errorf("the search's query recorded as %q, want once as subject=Patient/b", query)
			}
			if sent["req-i"] != http.StatusUnauthorized || sent["req-j"] != http.StatusMethodNotAllowed {
				t.Errorf("AuditEvent writes: %d without a token, %d with one; want 401 and 405", sent["req-i"], sent["req-j"])
			}
			if got := str(byRequest["req-j"][0], "agent", 0, "who", "reference"); got != "Practitioner/dr" {
				t.Errorf("a refused AuditEvent delete is attributed to %q, want Practitioner/dr", got)
			}
			if str(byRequest["req-h"][0], "subtype", 0, "code") != "transaction" {
				t.Errorf("transaction subtype: %v", get(byRequest["req-h"][0], "subtype"))
			}

			// The trail is searchable by who may read it, and read-only.
			c.by("dr", "GET", "/AuditEvent?patient=Patient/a", "").want(t, 403)
			found := c.by("auditor", "GET", "/AuditEvent?patient=Patient/a&subtype=read&agent=Practitioner/dr", "").want(t, 200)
			if len(ids(t, found)) != 1 {
				t.Errorf("AuditEvent?patient=Patient/a&subtype=read&agent=Practitioner/dr: %v", ids(t, found))
			}
			// entity may name any type: an id alone is a long list of keys.
			if byID := ids(t, c.by("auditor", "GET", "/AuditEvent?entity=a&subtype=read&agent=Practitioner/dr", "").want(t, 200)); !slices.Equal(byID, ids(t, found)) {
				t.Errorf("AuditEvent?entity=a&subtype=read&agent=Practitioner/dr: %v, want %v", byID, ids(t, found))
			}
			first := ids(t, found)[0]
			for _, m := range []struct{ method, body string }{
				{"PUT", `{"resourceType":"AuditEvent","id":"` + strings.TrimPrefix(first, "AuditEvent/") + `"}`},
				{"DELETE", ""},
				{"PATCH", `[{"op":"remove","path":"/outcome"}]`},
			} {
				r := c.by("admin", m.method, "/"+first, m.body, "Content-Type", map[bool]string{true: "application/json-patch+json", false: "application/fhir+json"}[m.method == "PATCH"])
				if r.status != http.StatusMethodNotAllowed {
					t.Errorf("%s %s: %d, want 405: %s", m.method, first, r.status, truncate(r.body))
				}
			}
			c.by("admin", "POST", "/AuditEvent", `{"resourceType":"AuditEvent"}`).want(t, 405)
		})
	}
}

// TestAuditHistoryNamesWhatItSends: a history is audited by the versions
// its page sends, as a search by its matches: the version before one on
// the page, read to tell whether that one recreated its resource, and the
// current version, read to tell that the resource is held, are not sent
// and name no patient. An Observation filed for patient a and moved to b
// reads, in its history's first page of one, as b's version alone.
func TestAuditHistoryNamesWhatItSends(t *testing.T) {
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), principals{})
			c.put("/Patient/a", `{"resourceType":"Patient","id":"a"}`)
			c.put("/Patient/b", `{"resourceType":"Patient","id":"b"}`)
			for _, p := range []string{"a", "b"} {
				c.put("/Observation/o", `{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+p+`"}}`)
			}
			first := c.by("admin", "GET", "/Observation/o/_history?_count=1", "", "X-Request-Id", "first").want(t, 200)
			_, entries, next := historyPage(t, first)
			if fmt.Sprint(entries) != "[Observation/o]" || next == "" {
				t.Fatalf("first page: %v, next %q; want one entry and a next link", entries, next)
			}
			c.by("admin", "GET", next, "", "X-Request-Id", "second").want(t, 200)
			byRequest := c.auditEventsByRequest(t, map[string]int{"first": 1, "second": 1})
			for id, want := range map[string][]string{
				"first":  {"Observation/o/_history/2", "Patient/b"},
				"second": {"Observation/o/_history/1", "Patient/a"},
			} {
				var got []string
				for _, ev := range byRequest[id] {
					got = append(got, entityRefs(ev)...)
				}
				sort.Strings(got)
				if !slices.Equal(got, want) {
					t.Errorf("history request %s audited as naming %v, want %v", id, got, want)
				}
			}
		})
	}
}

// TestAuditHistoryCountNamesNothing: a history asked for its total alone
// (_summary=count, _count=0) sends no version, and is audited naming none,
// as a search counting its matches is.
func TestAuditHistoryCountNamesNothing(t *testing.T) {
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), principals{})
			c.put("/Patient/a", `{"resourceType":"Patient","id":"a"}`)
			for _, text := range []string{"x", "y"} {
				c.put("/Observation/o", `{"resourceType":"Observation","id":"o","status":"final","code":{"text":"`+text+`"},"subject":{"reference":"Patient/a"}}`)
			}
			sent := map[string]int{}
			for _, r := range []struct {
				id, path string
				total    int
			}{
				{"instance", "/Observation/o/_history?_summary=count", 2},
				{"type", "/Observation/_history?_count=0", 2},
				{"search", "/Observation?_summary=count", 1},
			} {
				resp := c.by("admin", "GET", r.path, "", "X-Request-Id", r.id).want(t, 200)
				sent[r.id] = resp.status
				if total, entries, _ := historyPage(t, resp); total != r.total || entries != nil {
					t.Errorf("%s: total %d, entries %v; want total %d alone", r.path, total, entries, r.total)
				}
			}
			byRequest := c.auditEventsByRequest(t, sent)
			for id := range sent {
				var got []string
				for _, ev := range byRequest[id] {
					got = append(got, entityRefs(ev)...)
				}
				if len(got) > 0 {
					t.Errorf("the %s count is audited as naming %v, want nothing", id, got)
				}
			}
		})
	}
}

// TestAuditPostSearchQuery: a search sent as POST _search is audited with
// the criteria of its form, as the same search sent with GET is with its
// query string: the trail says whom a user looked for either way.
func TestAuditPostSearchQuery(t *testing.T) {
	who := principals{
		"dr": {Subject: "u-1", FHIRUser: "Practitioner/dr", Scopes: mustScopes(t, "user/Patient.rs user/Observation.rs")},
	}
	form := "application/x-www-form-urlencoded"
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who)
			twoPatientRecords(c)
			sent := map[string]int{
				"get":    c.by("dr", "GET", "/Observation?subject=Patient/b", "", "X-Request-Id", "get").want(t, 200).status,
				"type":   c.by("dr", "POST", "/Observation/_search", "subject=Patient/b", "Content-Type", form, "X-Request-Id", "type").want(t, 200).status,
				"both":   c.by("dr", "POST", "/Observation/_search?_count=5", "subject=Patient/b", "Content-Type", form, "X-Request-Id", "both").want(t, 200).status,
				"system": c.by("dr", "POST", "/_search", "_type=Patient&family=Famb", "Content-Type", form, "X-Request-Id", "system").want(t, 200).status,
			}
			want := map[string]string{
				"get":    "subject=Patient/b",
				"type":   "subject=Patient/b",
				"both":   "_count=5&subject=Patient/b",
				"system": "_type=Patient&family=Famb",
			}
			byRequest := c.auditEventsByRequest(t, sent)
			for id := range sent {
				var queries []string
				for _, ev := range byRequest[id] {
					for _, en := range get(ev, "entity").([]any) {
						if q := str(en, "query"); q != "" {
							b, _ := base64.StdEncoding.DecodeString(q)
							queries = append(queries, string(b))
						}
					}
				}
				if !slices.Equal(queries, []string{want[id]}) {
					t.Errorf("request %s: the query recorded as %q, want once as %q", id, queries, want[id])
				}
			}
		})
	}
}

// auditEventsByRequest returns the trail's AuditEvents by the request id
// they name, once each of ids has one. The server queues a request's
// event when its handler returns, which can be after the client has read
// the whole answer: the trail is flushed until every event is there, or
// 30 seconds have passed.
func (c *accessClient) auditEventsByRequest(t *testing.T, ids map[string]int) map[string][]map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.auditor.Flush()
		events, err := c.st.Search(context.Background(), store.Query{Type: "AuditEvent"})
		if err != nil {
			t.Fatal(err)
		}
		byRequest := map[string][]map[string]any{}
		for _, v := range events {
			var ev map[string]any
			json.Unmarshal(v.JSON, &ev)
			for _, en := range get(ev, "entity").([]any) {
				if str(en, "type", "code") == "XrequestId" {
					rid := str(en, "what", "identifier", "value")
					byRequest[rid] = append(byRequest[rid], ev)
				}
			}
		}
		complete := true
		for id := range ids {
			complete = complete && len(byRequest[id]) > 0
		}
		if complete || time.Now().After(deadline) {
			return byRequest
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func entityRefs(ev map[string]any) []string {
	var out []string
	for _, en := range get(ev, "entity").([]any) {
		if ref := str(en, "what", "reference"); ref != "" {
			out = append(out, ref)
		}
	}
	return out
}

// historyPage is one page of a history Bundle: its total (-1 when it has
// none), the Type/id of its entries and its next link.
func historyPage(t *testing.T, r *response) (total int, entries []string, next string) {
	t.Helper()
	b := r.want(t, http.StatusOK).json(t)
	total = -1
	if n, ok := get(b, "total").(float64); ok {
		total = int(n)
	}
	entryList, _ := get(b, "entry").([]any)
	for _, e := range entryList {
		parts := strings.Split(str(e, "fullUrl"), "/")
		entries = append(entries, strings.Join(parts[len(parts)-2:], "/"))
	}
	for _, l := range get(b, "link").([]any) {
		if str(l, "relation") == "next" {
			next = str(l, "url")
		}
	}
	return total, entries, next
}

func TestHistoryReach(t *testing.T) {
	who := principals{
		"app":  {Subject: "app", Patient: "a", Scopes: mustScopes(t, "patient/*.rs")},
		"obs":  {Subject: "obs", FHIRUser: "Practitioner/dr", Scopes: mustScopes(t, "user/Observation.rs")},
		"user": {Subject: "user", FHIRUser: "Practitioner/dr", Scopes: mustScopes(t, "user/*.rs")},
	}
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who)
			twoPatientRecords(c)
			for _, status := range []string{"amended", "corrected"} {
				for _, p := range []string{"a", "b"} {
					c.put("/Observation/o"+p, `{"resourceType":"Observation","id":"o`+p+`","status":"`+status+`","code":{"text":"x"},"subject":{"reference":"Patient/`+p+`"}}`)
				}
			}

			// A total counts only what the token may read.
			for path, want := range map[string]int{
				"/Observation/_history?_summary=count": 3,
				"/Observation/_history?_count=0":       3,
				"/Patient/_history?_summary=count":     1,
				"/Observation/oa/_history?_count=0":    3,
			} {
				if total, entries, next := historyPage(t, c.by("app", "GET", path, "")); total != want || entries != nil || next != "" {
					t.Errorf("%s: total %d, entries %v, next %q; want total %d alone", path, total, entries, next, want)
				}
			}
			if total, _, _ := historyPage(t, c.by("user", "GET", "/Observation/_history?_summary=count", "")); total != 6 {
				t.Errorf("a token reading every Observation counts %d versions, want 6", total)
			}

			// pages follows the next links of a history from path, checking
			// that none names a version, and returns the entries and the
			// totals of each page.
			pages := func(path string) (entries [][]string, totals []int) {
				t.Helper()
				for next := path; next != ""; {
					if len(entries) > 10 {
						t.Fatal("the history does not end")
					}
					total, page, link := historyPage(t, c.by("app", "GET", next, ""))
					entries, totals, next = append(entries, page), append(totals, total), link
					if next == "" {
						break
					}
					u, err := url.Parse(next)
					if err != nil {
						t.Fatal(err)
					}
					raw, _ := base64.RawURLEncoding.DecodeString(u.Query().Get("_cursor"))
					if strings.Contains(string(raw), `"ob"`) || strings.Contains(string(raw), `"i":`) {
						t.Errorf("the next link of %s reveals a version: %s", path, raw)
					}
				}
				return entries, totals
			}
			// Each page is full but the last, whatever was left out.
			entries, totals := pages("/Observation/_history?_count=1")
			if fmt.Sprint(entries) != "[[Observation/oa] [Observation/oa] [Observation/oa]]" || fmt.Sprint(totals) != "[3 -1 -1]" {
				t.Errorf("paged history: %v, totals %v; want oa three times, counted on the first page", entries, totals)
			}
			// An engine's cursor is no cursor of a filtered history.
			_, _, adminNext := historyPage(t, c.by("admin", "GET", "/Observation/_history?_count=1", ""))
			c.by("app", "GET", adminNext, "").want(t, http.StatusBadRequest)

			// Past 500 versions in a row left out, a page comes back empty,
			// and a count is not known.
			var tx strings.Builder
			tx.WriteString(`{"resourceType":"Bundle","type":"transaction","entry":[`)
			for i := range 500 {
				if i > 0 {
					tx.WriteString(",")
				}
				tx.WriteString(`{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/b"}},"request":{"method":"POST","url":"Observation"}}`)
			}
			tx.WriteString("]}")
			c.by("admin", "POST", "", tx.String()).want(t, http.StatusOK)
			entries, totals = pages("/Observation/_history?_count=2")
			if fmt.Sprint(entries) != "[[] [Observation/oa Observation/oa] [Observation/oa]]" || fmt.Sprint(totals) != "[-1 -1 -1]" {
				t.Errorf("paged history past 500 left out: %v, totals %v", entries, totals)
			}
			if total, entries, next := historyPage(t, c.by("app", "GET", "/Observation/_history?_summary=count", "")); total != -1 || entries != nil || next != "" {
				t.Errorf("count of a history past 500 left out: total %d, entries %v, next %q; want a Bundle with neither", total, entries, next)
			}

			// A history of the system holds every type, as a search of the
			// system without _type searches every type: a token that may
			// not read them all is refused either.
			for _, who := range []string{"app", "obs"} {
				for _, path := range []string{"/_history", "/_history?_summary=count", ""} {
					c.by(who, "GET", path, "").want(t, http.StatusForbidden)
				}
			}
			all, _, _ := historyPage(t, c.by("admin", "GET", "/_history?_summary=count", ""))
			// A token reading every type counts every version, the audit
			// trail of the requests since included.
			if total, _, _ := historyPage(t, c.by("user", "GET", "/_history?_summary=count", "")); all < 0 || total < all {
				t.Errorf("system history total %d for a token reading every type, want at least %d", total, all)
			}
		})
	}
}

// A request about several patients is audited by one AuditEvent per
// patient (IHE BALP PatientQuery), each naming that patient and only what
// belongs to them, so that a patient shown the events about them sees no
// one else's.
// TestEarlierVersionsFollowTheResource: an earlier version is read only
// while the resource is within the token's reach now. A Patient since
// labelled restricted, out of a scope that leaves restricted records out,
// and an Observation since moved to another patient, take their earlier
// versions with them: by vread, and in the history of their type, as in
// their own history and their read.
func TestEarlierVersionsFollowTheResource(t *testing.T) {
	who := principals{
		"app":        {Subject: "app", Patient: "a", Scopes: mustScopes(t, "patient/*.rs")},
		"unlabelled": {Subject: "unlabelled", Scopes: mustScopes(t, "system/Patient.rs?_security:not=http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R")},
	}
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who)
			twoPatientRecords(c)
			c.put("/Patient/b", `{"resourceType":"Patient","id":"b","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]},"name":[{"family":"Famb"}]}`)
			c.put("/Observation/oa", `{"resourceType":"Observation","id":"oa","status":"final","code":{"text":"filed for a in error"},"subject":{"reference":"Patient/b"}}`)
			for _, r := range []struct{ who, read, history string }{
				{"unlabelled", "/Patient/b", "/Patient/_history"},
				{"app", "/Observation/oa", "/Observation/_history"},
			} {
				for _, path := range []string{r.read, r.read + "/_history", r.read + "/_history/1"} {
					c.by(r.who, "GET", path, "").want(t, 404)
				}
				_, entries, _ := historyPage(t, c.by(r.who, "GET", r.history, ""))
				for _, id := range entries {
					if "/"+id == r.read {
						t.Errorf("%s: %s holds %s", r.who, r.history, id)
					}
				}
			}
			c.by("unlabelled", "GET", "/Patient/a/_history/1", "").want(t, 200)
			c.by("app", "GET", "/Patient/a/_history/1", "").want(t, 200)
		})
	}
}

func TestAuditEventPerPatient(t *testing.T) {
	who := principals{
		"app":     {Subject: "app", Patient: "a", Scopes: mustScopes(t, "patient/*.rs")},
		"auditor": {Subject: "aud", Scopes: mustScopes(t, "system/AuditEvent.rs")},
	}
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who)
			twoPatientRecords(c)
			c.put("/Patient/c", `{"resourceType":"Patient","id":"c"}`)
			c.put("/Observation/oc", `{"resourceType":"Observation","id":"oc","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/c"}}`)
			c.put("/Appointment/ab", `{"resourceType":"Appointment","id":"ab","status":"booked","participant":[
				{"actor":{"reference":"Patient/a"},"status":"accepted"},{"actor":{"reference":"Patient/b"},"status":"accepted"}]}`)
			sent := map[string]int{
				"obs":      c.by("admin", "GET", "/Observation?_count=50", "", "X-Request-Id", "obs").want(t, 200).status,
				"included": c.by("admin", "GET", "/Observation?_include=Observation:performer", "", "X-Request-Id", "included").want(t, 200).status,
				"appt":     c.by("admin", "GET", "/Appointment", "", "X-Request-Id", "appt").want(t, 200).status,
				"read":     c.by("admin", "GET", "/Observation/ob", "", "X-Request-Id", "read").want(t, 200).status,
			}
			byRequest := c.auditEventsByRequest(t, sent)
			// about names, per event, the patient it is about and the other
			// entities it names, without versions.
			about := func(evs []map[string]any) map[string][]string {
				out := map[string][]string{}
				for _, ev := range evs {
					patient, others := "", []string{}
					for _, en := range get(ev, "entity").([]any) {
						ref, _, _ := strings.Cut(str(en, "what", "reference"), "/_history/")
						switch {
						case ref == "":
						case str(en, "role", "code") == "1":
							if patient != "" {
								t.Errorf("an AuditEvent names two patients, %s and %s", patient, ref)
							}
							patient = ref
						default:
							others = append(others, ref)
						}
					}
					if _, dup := out[patient]; dup {
						t.Errorf("two AuditEvents about %q", patient)
					}
					sort.Strings(others)
					out[patient] = others
					if str(ev, "subtype", 0, "code") == "" || str(ev, "agent", 0, "who", "identifier", "value") != "admin" {
						t.Errorf("an event of the request lacks its subtype or agent: %v", ev)
					}
				}
				return out
			}
			for id, want := range map[string]map[string][]string{
				"obs": {"Patient/a": {"Observation/oa"}, "Patient/b": {"Observation/ob"}, "Patient/c": {"Observation/oc"},
					"": {}},
				"included": {"Patient/a": {"Observation/oa"}, "Patient/b": {"Observation/ob"}, "Patient/c": {"Observation/oc"},
					"": {"Practitioner/dr"}},
				"appt": {"Patient/a": {"Appointment/ab"}, "Patient/b": {"Appointment/ab"}},
				"read": {"Patient/b": {"Observation/ob"}},
			} {
				got := about(byRequest[id])
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("request %s: AuditEvents about %v, want %v", id, got, want)
				}
			}
			// A search's query is in its event about no patient alone: a
			// query names whom it looks for, and a patient reads the events
			// about them.
			for id, evs := range byRequest {
				queries := 0
				for _, ev := range evs {
					for _, en := range get(ev, "entity").([]any) {
						if str(en, "query") == "" {
							continue
						}
						queries++
						if slices.ContainsFunc(entityRefs(ev), func(r string) bool { return strings.HasPrefix(r, "Patient/") }) {
							t.Errorf("request %s: an AuditEvent about a patient holds the query: %v", id, get(ev, "entity"))
						}
						if str(en, "role", "code") != "24" {
							t.Errorf("request %s: the query entity has role %v", id, get(en, "role"))
						}
					}
				}
				if want := map[string]int{"obs": 1, "included": 1}[id]; queries != want {
					t.Errorf("request %s: %d query entities, want %d", id, queries, want)
				}
			}

			// Patient a's app reads the events about a, and nothing of b or c.
			trail := c.by("app", "GET", "/AuditEvent?_count=500", "", "X-Request-Id", "trail-a").want(t, 200)
			if n := len(ids(t, trail)); n == 0 {
				t.Errorf("the patient's app found no AuditEvents")
			}
			for _, leak := range []string{"Patient/b", "Patient/c", "Observation/ob", "Observation/oc"} {
				if strings.Contains(string(trail.body), `"`+leak) {
					t.Errorf("patient a's app reads AuditEvents naming %s", leak)
				}
			}

			if strings.Contains(string(trail.body), `"query"`) {
				t.Errorf("patient a's app reads the query of another's search")
			}

			// AuditEvent?patient=b finds exactly the events that name b
			// (before it: its own event names b too).
			c.auditEventsByRequest(t, map[string]int{"trail-a": 200})
			found := c.by("auditor", "GET", "/AuditEvent?patient=Patient/b&_count=500", "", "X-Request-Id", "trail-b").want(t, 200)
			var want []string
			for id, evs := range c.auditEventsByRequest(t, map[string]int{"trail-b": 200}) {
				for _, ev := range evs {
					if id == "trail-b" {
						continue
					}
					if slices.ContainsFunc(entityRefs(ev), func(r string) bool { return r == "Patient/b" || strings.HasPrefix(r, "Patient/b/") }) {
						want = append(want, "AuditEvent/"+str(ev, "id"))
					}
				}
			}
			sort.Strings(want)
			if got := ids(t, found); !slices.Equal(got, want) || len(got) < 3 {
				t.Errorf("AuditEvent?patient=Patient/b: %v, want %v", got, want)
			}
		})
	}
}

// TestTokenParameterRefused: an access token sent as a parameter rather
// than in the Authorization header (RFC 6750 §2.2, §2.3) is refused, and
// the audit trail, which records the query of a search, never holds it.
func TestTokenParameterRefused(t *testing.T) {
	who := principals{"dr": {Subject: "dr", Scopes: mustScopes(t, "user/*.rs")}}
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who)
			twoPatientRecords(c)
			token := c.tokens["dr"]
			form := "application/x-www-form-urlencoded"
			sent := map[string]int{}
			for id, r := range map[string]*response{
				"query-only":   c.by("nobody", "GET", "/Observation?code=1-1&access_token="+token, "", "X-Request-Id", "query-only"),
				"query-too":    c.by("dr", "GET", "/Observation?access_token="+token+"&code=1-1", "", "X-Request-Id", "query-too"),
				"encoded":      c.by("dr", "GET", "/Observation?access%5Ftoken="+token, "", "X-Request-Id", "encoded"),
				"metadata":     c.by("nobody", "GET", "/metadata?access_token="+token, "", "X-Request-Id", "metadata"),
				"body-too":     c.by("dr", "POST", "/Observation/_search", "code=1-1&access_token="+token, "Content-Type", form, "X-Request-Id", "body-too"),
				"system-query": c.by("dr", "GET", "?_type=Patient&access_token="+token, "", "X-Request-Id", "system-query"),
			} {
				sent[id] = r.status
				r.want(t, http.StatusBadRequest)
				if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, `Bearer error="invalid_request"`) {
					t.Errorf("%s: WWW-Authenticate %q, want a Bearer invalid_request challenge", id, got)
				}
				if d := r.outcome(t, "invalid", "access_token"); !strings.Contains(d, "Authorization header") {
					t.Errorf("%s: diagnostics %q", id, d)
				}
			}
			// The header alone is served.
			wantIDs(t, "header", c.by("dr", "GET", "/Observation?code=1-1", ""), "Observation/oa")
			for id, evs := range c.auditEventsByRequest(t, sent) {
				if _, ok := sent[id]; !ok {
					continue
				}
				b, _ := json.Marshal(evs)
				if strings.Contains(string(b), token[strings.LastIndex(token, ".")+1:]) {
					t.Errorf("the AuditEvent of %s holds the access token: %s", id, b)
				}
				for _, ev := range evs {
					for _, en := range get(ev, "entity").([]any) {
						q, _ := base64.StdEncoding.DecodeString(str(en, "query"))
						if strings.Contains(string(q), "access_token") || strings.Contains(string(q), token) {
							t.Errorf("the AuditEvent of %s records the query %q", id, q)
						}
					}
				}
			}
		})
	}
}

// holdFirstUnit is a store whose first unit of work waits, once entered,
// until release is closed.
type holdFirstUnit struct {
	store.Store
	once             sync.Once
	entered, release chan struct{}
}

func (h *holdFirstUnit) Transact(ctx context.Context, fn func(store.Tx) error) error {
	h.once.Do(func() {
		close(h.entered)
		<-h.release
	})
	return h.Store.Transact(ctx, fn)
}

// The audit trail writes its AuditEvents in batches, after it has stamped
// them: a history read while a batch waits to be written is dated before
// it, so that a client polling _since that date finds the AuditEvents.
func TestHistorySinceMissesNoAuditBatchUnderWay(t *testing.T) {
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			st := e.Open(t)
			held := &holdFirstUnit{Store: st, entered: make(chan struct{}), release: make(chan struct{})}
			writes := &store.InFlight{}
			auditor := access.NewAuditor(held, access.AuditConfig{Source: "carefhir-test", Flush: time.Millisecond, Writes: writes})
			c := newClient(t, st, func(cfg *server.Config) {
				cfg.Auditor, cfg.Writes = auditor, writes
			})
			t.Cleanup(auditor.Close)
			c.do("GET", "/Patient", "", "X-Request-Id", "audited-while-held").want(t, http.StatusOK)
			<-held.entered
			// The AuditEvent was stamped before its batch began to be
			// written; the poll comes a millisecond or more later.
			for stamped := time.Now().UTC().Format(time.StampMilli); time.Now().UTC().Format(time.StampMilli) == stamped; {
				time.Sleep(time.Millisecond)
			}
			poll := str(c.do("GET", "/_history?_count=1", "").want(t, http.StatusOK).json(t), "meta", "lastUpdated")
			close(held.release)
			auditor.Flush()
			since := c.do("GET", "/AuditEvent/_history?_since="+url.QueryEscape(poll), "").want(t, http.StatusOK)
			if !strings.Contains(string(since.body), `"audited-while-held"`) {
				t.Errorf("the AuditEvent of a request, written after a history dated %s, is not in the history _since then: %s", poll, truncate(since.body))
			}
		})
	}
}

// TestAuditFailedTransactionNamesNoVersion: a transaction that fails
// after some of its entries were written in its unit of work stores
// nothing, and its AuditEvents name the resources it tried to write
// without claiming versions that were never stored.
func TestAuditFailedTransactionNamesNoVersion(t *testing.T) {
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), principals{})
			twoPatientRecords(c)
			tx := `{"resourceType":"Bundle","type":"transaction","entry":[
				{"resource":{"resourceType":"Patient","id":"new","name":[{"family":"New"}]},"request":{"method":"PUT","url":"Patient/new"}},
				{"resource":{"resourceType":"Observation","id":"new-ob","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/new"}},"request":{"method":"PUT","url":"Observation/new-ob"}},
				{"resource":{"resourceType":"Patient","id":"a","name":[{"family":"Changed"}]},"request":{"method":"PUT","url":"Patient/a","ifMatch":"W/\"9\""}}]}`
			status := c.by("admin", "POST", "", tx, "X-Request-Id", "failed-tx").status
			if status < 400 {
				t.Fatalf("transaction with a stale If-Match: %d, want 4xx", status)
			}
			c.by("admin", "GET", "/Patient/new", "").want(t, http.StatusNotFound)
			evs := c.auditEventsByRequest(t, map[string]int{"failed-tx": status})["failed-tx"]
			var refs []string
			for _, ev := range evs {
				if got := str(ev, "outcome"); got != "4" {
					t.Errorf("outcome %q, want 4 (minor failure)", got)
				}
				refs = append(refs, entityRefs(ev)...)
			}
			for _, ref := range refs {
				// A version the transaction read exists; one it wrote does not.
				if strings.Contains(ref, "/_history/") && c.by("admin", "GET", "/"+ref, "").status != http.StatusOK {
					t.Errorf("the failed transaction's AuditEvents name %s, a version never stored (all: %v)", ref, refs)
				}
			}
			for _, want := range []string{"Patient/new", "Observation/new-ob"} {
				if !slices.Contains(refs, want) {
					t.Errorf("the failed transaction's AuditEvents name %v, want %s among them", refs, want)
				}
			}
		})
	}
}

// TestPatientNotYetHeldKeepsReach: a patient app may be registered before
// its patient's record arrives, so a token for a Patient not written here
// yet reaches that patient's compartment: its writes and reads of the
// patient's records are allowed, another patient's are not; once the
// Patient is written, the same holds.
func TestPatientNotYetHeldKeepsReach(t *testing.T) {
	who := principals{"app": {Subject: "app", Patient: "n", Scopes: mustScopes(t, "patient/*.cruds")}}
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who)
			twoPatientRecords(c)
			own := `{"resourceType":"Observation","id":"on","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/n"}}`
			c.by("app", "PUT", "/Observation/on", own).want(t, http.StatusCreated)
			check := func(step string) {
				t.Helper()
				c.by("app", "GET", "/Observation/on", "").want(t, http.StatusOK)
				wantIDs(t, step+": the app's search", c.by("app", "GET", "/Observation", ""), "Observation/on")
				other := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/b"}}`
				c.by("app", "POST", "/Observation", other).want(t, http.StatusForbidden)
			}
			check("before the Patient is written")
			c.put("/Patient/n", `{"resourceType":"Patient","id":"n"}`)
			check("once the Patient is written")
		})
	}
}

// TestAuditPatientWriteNamesVersionWritten: the AuditEvent of an update or
// a patch of a Patient names the version it wrote, as one of any other
// resource does, besides the version it replaced, which names the
// patient; where the Patient was named once, at the version read.
func TestAuditPatientWriteNamesVersionWritten(t *testing.T) {
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), principals{})
			c.put("/Patient/a", `{"resourceType":"Patient","id":"a"}`)
			c.by("admin", "PUT", "/Patient/a", `{"resourceType":"Patient","id":"a","active":true}`, "X-Request-Id", "update").want(t, http.StatusOK)
			c.by("admin", "PATCH", "/Patient/a", `[{"op":"add","path":"/gender","value":"male"}]`,
				"Content-Type", "application/json-patch+json", "X-Request-Id", "patch").want(t, http.StatusOK)
			byRequest := c.auditEventsByRequest(t, map[string]int{"update": 1, "patch": 1})
			for id, want := range map[string][]string{
				"update": {"Patient/a/_history/1", "Patient/a/_history/2"},
				"patch":  {"Patient/a/_history/2", "Patient/a/_history/3"},
			} {
				var got []string
				for _, ev := range byRequest[id] {
					got = append(got, entityRefs(ev)...)
				}
				sort.Strings(got)
				if !slices.Equal(got, want) {
					t.Errorf("%s of a Patient audited as naming %v, want %v", id, got, want)
				}
			}
		})
	}
}
