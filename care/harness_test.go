package care_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"carefhir/care"
	"carefhir/profiles"
	"carefhir/profiles/conformance"
	"carefhir/server"
	"carefhir/server/auth/authtest"
	"carefhir/store"
	"carefhir/store/enginetest"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
}

// today is the date the tests run on, for care coordination.
var today = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// engines are the storage engines every test here runs against.
var engines = enginetest.Engines()

// client talks to a real HTTP server with care coordination registered,
// which requires bearer tokens.
type client struct {
	t      *testing.T
	base   string
	token  string            // the principal requests act for; "" for admin
	signed map[string]string // access tokens, by principal
}

// eachEngine runs fn against a fresh server on every engine. Requests act
// for the principal c.token names, with the scopes the tokens map gives
// it, through an access token of an issuer the server trusts.
func eachEngine(t *testing.T, cfg care.Config, fn func(t *testing.T, c *client), opts ...func(*server.Config)) {
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			fn(t, newClient(t, e.Open(t), cfg, opts...))
		})
	}
}

// validating makes the server validate every write against the R4
// definitions and those care coordination installs, as carefhir serve
// does with --validate.
func validating(t *testing.T, cfg care.Config) func(*server.Config) {
	v := validator(t, cfg)
	return func(sc *server.Config) { sc.Validator, sc.ValidateWrites = v, true }
}

// validator returns a validator of the R4 definitions and those care
// coordination with cfg installs.
func validator(t *testing.T, cfg care.Config) *profiles.Validator {
	t.Helper()
	v, err := profiles.New(profiles.Options{Resources: definitions(t, cfg)})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// definitions returns the definitions care coordination with cfg
// installs.
func definitions(t *testing.T, cfg care.Config) [][]byte {
	t.Helper()
	co, err := care.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defs, err := co.Definitions()
	if err != nil {
		t.Fatal(err)
	}
	return defs
}

// tokens are the scopes of the principals requests act for, by name.
var tokens = map[string]string{"admin": "system/*.cruds", "patient-reader": "user/Patient.rs", "forms": "user/Questionnaire.rs", "cc": "user/*.cruds", "ward-app": "patient/*.cruds",
	"no-plans": "user/Patient.rs user/Group.cruds user/Organization.rs user/Condition.rs user/Observation.rs user/Practitioner.rs user/Appointment.rs user/Task.rs user/QuestionnaireResponse.rs"}

// fhirUsers are the fhirUser claims of the principals that have one: the
// care coordinator's Practitioner, whose care the care-team policy reaches.
var fhirUsers = map[string]string{"cc": "Practitioner/cc"}

// patients are the patient context of the principals that have one: a
// patient's own app.
var patients = map[string]string{"ward-app": "ward"}

const issuer = "https://idp.test"

var catalogue = func() func(t *testing.T) *conformance.Catalogue {
	var cat *conformance.Catalogue
	return func(t *testing.T) *conformance.Catalogue {
		if cat == nil {
			var err error
			if cat, err = conformance.Load(); err != nil {
				t.Fatal(err)
			}
		}
		return cat
	}
}()

func newClient(t *testing.T, st store.Store, cfg care.Config, opts ...func(*server.Config)) *client {
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return today }
	}
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String() + "/fhir"
	cfg.BaseURL = base
	cat, err := catalogue(t).With(definitions(t, cfg)...)
	if err != nil {
		t.Fatal(err)
	}
	svc, idp := authtest.Service(t, issuer, base)
	sc := server.Config{Store: st, BaseURL: base, Auth: svc, Logger: slog.New(slog.DiscardHandler),
		SoftwareVersion: "test", Definitions: cat, SearchParameters: care.SearchParameters()}
	for _, opt := range opts {
		opt(&sc)
	}
	// Care coordination is given the server's limits, as carefhir serve
	// gives them.
	cfg.CanonicalVersions = sc.Limits.CanonicalVersions
	co, err := care.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sc.Operations, sc.Hooks = co.Operations(), co.Hooks()
	srv.Config.Handler = server.New(sc)
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		st.Close()
	})
	c := &client{t: t, base: base, signed: map[string]string{}}
	for name, scopes := range tokens {
		claims := map[string]any{"sub": name, "scope": scopes}
		if u := fhirUsers[name]; u != "" {
			claims["fhirUser"] = u
		}
		if p := patients[name]; p != "" {
			claims["patient"] = p
		}
		c.signed[name] = idp.Sign(t, authtest.Claims(issuer, base, claims))
	}
	return c
}

// response is what a request got back.
type response struct {
	t      *testing.T
	status int
	header http.Header
	body   []byte
}

// do sends a request with a FHIR JSON body (when not empty); headers come
// in name, value pairs.
func (c *client) do(method, path, body string, headers ...string) *response {
	c.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	who := c.token
	if who == "" {
		who = "admin"
	}
	req.Header.Set("Authorization", "Bearer "+c.signed[who])
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return &response{t: c.t, status: resp.StatusCode, header: resp.Header, body: b}
}

// put writes a resource at its id and fails the test unless it is stored.
func (c *client) put(body string) {
	c.t.Helper()
	var head struct{ ResourceType, ID string }
	if err := json.Unmarshal([]byte(body), &head); err != nil {
		c.t.Fatalf("%v: %s", err, body)
	}
	r := c.do("PUT", "/"+head.ResourceType+"/"+head.ID, body)
	if r.status != http.StatusCreated && r.status != http.StatusOK {
		c.t.Fatalf("PUT %s/%s: %d %s", head.ResourceType, head.ID, r.status, r.body)
	}
}

// want fails the test unless the response has the status, and returns its
// body decoded.
func (r *response) want(status int) map[string]any {
	r.t.Helper()
	if r.status != status {
		r.t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	var m map[string]any
	if len(r.body) > 0 {
		if err := json.Unmarshal(r.body, &m); err != nil {
			r.t.Fatalf("%v: %s", err, r.body)
		}
	}
	return m
}

// get walks a decoded JSON value by object keys and array indexes.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := get(v, path...).(string)
	return s
}

// entries returns the resources of a searchset Bundle.
func entries(bundle map[string]any) []map[string]any {
	var out []map[string]any
	list, _ := bundle["entry"].([]any)
	for _, e := range list {
		if r, ok := get(e, "resource").(map[string]any); ok {
			out = append(out, r)
		}
	}
	return out
}

// issues returns the expressions and diagnostics of an OperationOutcome,
// one line per issue.
func issues(oo map[string]any) string {
	var out []string
	list, _ := oo["issue"].([]any)
	for _, is := range list {
		line := str(is, "severity") + " " + str(is, "code") + " " + str(is, "expression", 0) + ": " + str(is, "diagnostics")
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}
