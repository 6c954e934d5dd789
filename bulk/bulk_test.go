package bulk

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"carefhir/fhir/search"
	"carefhir/operation"
	"carefhir/server"
	"carefhir/server/auth/authtest"
	"carefhir/store"
	"carefhir/store/enginetest"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
}

const issuer = "https://idp.test"

// engines are the storage engines every test here runs against.
var engines = enginetest.Engines()

// clock is the exporter's clock: real time unless the test fixes it.
type clock struct {
	mu    sync.Mutex
	fixed time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fixed.IsZero() {
		return time.Now()
	}
	return c.fixed
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.fixed = t
	c.mu.Unlock()
}

type env struct {
	t      testing.TB
	base   string
	st     store.Store
	x      *Exporter
	clock  *clock
	tokens map[string]string
	ix     *search.Indexer
}

// newEnv serves the API with bulk export over st, with tokens for:
// admin (system/*.rs), other (another system client), nurse (user/ scopes)
// and app (patient/ scopes).
func newEnv(t testing.TB, st store.Store, opts ...func(*server.Config)) *env {
	t.Helper()
	return newEnvWith(t, st, nil, opts...)
}

// newEnvWith is newEnv with the exporter configured by export as well.
func newEnvWith(t testing.TB, st store.Store, export func(*Config), opts ...func(*server.Config)) *env {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	root := "http://" + srv.Listener.Addr().String()
	svc, idp := authtest.Service(t, issuer, root+"/fhir")
	ix, err := server.NewIndexer(root + "/fhir")
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{}
	xcfg := Config{Dir: filepath.Join(t.TempDir(), "exports"), BaseURL: root + "/fhir", Registry: ix.Registry(), Index: ix.IndexJSON, Now: clk.Now, PageSize: 7, Holder: "test"}
	if export != nil {
		export(&xcfg)
	}
	x, err := New(xcfg)
	if err != nil {
		t.Fatal(err)
	}
	var routes []server.Route
	for _, r := range x.Routes() {
		routes = append(routes, server.Route{Method: r.Method, Path: r.Path, Handler: r.Handler})
	}
	cfg := server.Config{Store: st, BaseURL: root + "/fhir", Auth: svc, Logger: slog.New(slog.DiscardHandler),
		Operations: []operation.Operation{x.Operation()}, Routes: routes, Attach: []func(operation.Store){x.Attach}}
	for _, o := range opts {
		o(&cfg)
	}
	srv.Config.Handler = server.New(cfg)
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		x.Close()
		st.Close()
	})
	e := &env{t: t, base: root + "/fhir", st: st, x: x, clock: clk, tokens: map[string]string{}, ix: ix}
	for name, claims := range map[string]map[string]any{
		"admin":   {"sub": "admin", "scope": "system/*.cruds"},
		"other":   {"sub": "other", "scope": "system/*.rs"},
		"backup":  {"sub": "backup", "scope": "system/*.rs"},
		"archive": {"sub": "archive", "scope": "system/*.rs"},
		"nurse":   {"sub": "nurse", "scope": "user/*.rs"},
		"lab":     {"sub": "lab", "scope": "system/Observation.rs"},
		// Later tokens of admin's client, allowed less.
		"admin-patients": {"sub": "admin", "scope": "system/Patient.rs"},
		"admin-lab":      {"sub": "admin", "scope": "system/Patient.rs system/Observation.rs?category=laboratory"},
		"admin-vitals":   {"sub": "admin", "scope": "system/Observation.rs?category=vital-signs"},
	} {
		e.tokens[name] = idp.Sign(t, authtest.Claims(issuer, root+"/fhir", claims))
	}
	return e
}

type response struct {
	status int
	header http.Header
	body   string
}

// do sends a request with who's token; url may be absolute.
func (e *env) do(who, method, url, body string, headers ...string) *response {
	e.t.Helper()
	if !strings.HasPrefix(url, "http") {
		url = e.base + url
	}
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if tok, ok := e.tokens[who]; ok {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &response{resp.StatusCode, resp.Header, string(b)}
}

// kickOff starts an export as who and returns the status URL.
func (e *env) kickOff(who, path string) string {
	e.t.Helper()
	r := e.do(who, "GET", path, "", "Accept", "application/fhir+json", "Prefer", "respond-async")
	if r.status != 202 || r.header.Get("Content-Location") == "" {
		e.t.Fatalf("kick-off %s: %d %s", path, r.status, r.body)
	}
	return r.header.Get("Content-Location")
}

type manifestBody struct {
	TransactionTime     string `json:"transactionTime"`
	Request             string `json:"request"`
	RequiresAccessToken bool   `json:"requiresAccessToken"`
	Output              []struct {
		Type, URL string
		Count     int
	} `json:"output"`
	Error   []json.RawMessage `json:"error"`
	Deleted []struct {
		Type, URL string
		Count     int
	} `json:"deleted"`
}

// wait polls the status URL until the export is done and returns the
// manifest; while it runs, every answer is 202 with Retry-After and
// X-Progress.
func (e *env) wait(who, status string) manifestBody {
	e.t.Helper()
	for range 2000 {
		r := e.do(who, "GET", status, "", "Accept", "application/json")
		switch r.status {
		case 202:
			if r.header.Get("Retry-After") == "" || r.header.Get("X-Progress") == "" {
				e.t.Fatalf("202 without Retry-After or X-Progress: %v", r.header)
			}
			time.Sleep(5 * time.Millisecond)
			continue
		case 200:
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				e.t.Errorf("manifest Content-Type %q", ct)
			}
			var m manifestBody
			if err := json.Unmarshal([]byte(r.body), &m); err != nil {
				e.t.Fatal(err)
			}
			return m
		default:
			e.t.Fatalf("status: %d %s", r.status, r.body)
		}
	}
	e.t.Fatal("the export did not finish")
	return manifestBody{}
}

// ids fetches the files of m as who and returns, per type, the ids in
// them (checking each line is a resource of its file's type).
func (e *env) ids(who string, m manifestBody) map[string][]string {
	e.t.Helper()
	out := map[string][]string{}
	for _, o := range m.Output {
		r := e.do(who, "GET", o.URL, "", "Accept", "application/fhir+ndjson")
		if r.status != 200 || r.header.Get("Content-Type") != "application/fhir+ndjson" {
			e.t.Fatalf("file %s: %d %q %s", o.URL, r.status, r.header.Get("Content-Type"), r.body)
		}
		sc := bufio.NewScanner(strings.NewReader(r.body))
		n := 0
		for sc.Scan() {
			var res struct{ ResourceType, ID string }
			if err := json.Unmarshal(sc.Bytes(), &res); err != nil || res.ResourceType != o.Type {
				e.t.Fatalf("line of %s: %s", o.Type, sc.Text())
			}
			out[o.Type] = append(out[o.Type], res.ID)
			n++
		}
		if n != o.Count {
			e.t.Errorf("%s: %d lines, manifest count %d", o.Type, n, o.Count)
		}
		sort.Strings(out[o.Type])
	}
	return out
}

func (e *env) put(path, body string) {
	e.t.Helper()
	if r := e.do("admin", "PUT", path, body); r.status != 201 && r.status != 200 {
		e.t.Fatalf("PUT %s: %d %s", path, r.status, r.body)
	}
}

// putRecord writes a resource straight to the store, as the server writes
// its own records (the audit trail, which the API does not write).
func (e *env) putRecord(typ, id, body string) {
	e.t.Helper()
	e.putRecordAt(typ, id, body, time.Now())
}

// putRecordAt is putRecord dated at, as a process whose clock reads at
// writes it.
func (e *env) putRecordAt(typ, id, body string, at time.Time) {
	e.t.Helper()
	ix, err := e.ix.IndexJSON(typ, []byte(body))
	if err != nil {
		e.t.Fatal(err)
	}
	w := &store.Write{Type: typ, ID: id, LastUpdated: at.UTC().Truncate(time.Millisecond), JSON: []byte(body), Index: ix}
	if err := e.st.Put(e.t.Context(), w); err != nil {
		e.t.Fatalf("put %s/%s: %v", typ, id, err)
	}
}

// jobRecords is how many export jobs are recorded.
func (e *env) jobRecords() int {
	e.t.Helper()
	recs, err := e.x.records()
	if err != nil {
		e.t.Fatal(err)
	}
	vs, err := recs.Search(e.t.Context(), store.Query{Type: jobType})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(vs)
}

func patient(id string) string { return `{"resourceType":"Patient","id":"` + id + `"}` }

func observation(id, patient, category string) string {
	return `{"resourceType":"Observation","id":"` + id + `","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"` + category + `"}]}],"code":{"text":"x"},"subject":{"reference":"Patient/` + patient + `"}}`
}

func eachEngine(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, eng := range engines {
		t.Run(eng.Name, func(t *testing.T) { fn(t, newEnv(t, eng.Open(t))) })
	}
}

// files fetches the files of m as who, by type.
func (e *env) files(who string, m manifestBody) map[string]string {
	e.t.Helper()
	out := map[string]string{}
	for _, o := range m.Output {
		out[o.Type] = e.do(who, "GET", o.URL, "").body
	}
	return out
}

// withoutMeta returns the resources of an NDJSON file without their meta,
// which a server sets itself, sorted.
func withoutMeta(t *testing.T, ndjson string) string {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(ndjson), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "meta")
		b, _ := json.Marshal(m)
		lines = append(lines, string(b))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
