package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"

	"carefhir/server"
	"carefhir/store"
	"carefhir/store/enginetest"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
}

// engines are the storage engines every test here runs against.
var engines = enginetest.Engines()

// client talks to a real HTTP server running the API over one engine.
type client struct {
	t    *testing.T
	base string // http://127.0.0.1:port/fhir
	logs *logBuffer
	st   store.Store
}

type config func(*server.Config)

// eachEngine runs fn against a fresh server on every engine.
func eachEngine(t *testing.T, fn func(t *testing.T, c *client), opts ...config) {
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			fn(t, newClient(t, e.Open(t), opts...))
		})
	}
}

func newClient(t *testing.T, st store.Store, opts ...config) *client {
	logs := &logBuffer{}
	cfg := server.Config{Store: st, Logger: slog.New(slog.NewJSONHandler(logs, nil)), SoftwareVersion: "test"}
	for _, o := range opts {
		o(&cfg)
	}
	srv := httptest.NewServer(server.New(cfg))
	t.Cleanup(func() {
		srv.Close()
		st.Close()
	})
	return &client{t: t, base: srv.URL + "/fhir", logs: logs, st: st}
}

// response is what a request got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; headers come in name, value pairs. A body is sent as
// application/fhir+json unless a Content-Type header is given.
func (c *client) do(method, path, body string, headers ...string) *response {
	c.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	url := path
	if !strings.HasPrefix(path, "http") {
		url = c.base + path
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
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
	return &response{status: resp.StatusCode, header: resp.Header, body: b}
}

// create posts a resource and fails the test unless it is created.
func (c *client) create(typ, body string) map[string]any {
	c.t.Helper()
	r := c.do("POST", "/"+typ, body)
	r.want(c.t, http.StatusCreated)
	return r.json(c.t)
}

func (r *response) want(t *testing.T, status int) *response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %s", r.status, status, truncate(r.body))
	}
	return r
}

func truncate(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "…"
	}
	return string(b)
}

func (r *response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, truncate(r.body))
	}
	return m
}

// outcome checks the response is an OperationOutcome with an issue of the
// given code and expression (either may be "" for any) and returns its
// diagnostics.
func (r *response) outcome(t *testing.T, code, expression string) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("Content-Type %q, want application/fhir+json", ct)
	}
	var oo struct {
		ResourceType string
		Issue        []struct {
			Severity, Code, Diagnostics string
			Expression                  []string
		}
	}
	if err := json.Unmarshal(r.body, &oo); err != nil || oo.ResourceType != "OperationOutcome" {
		t.Fatalf("want an OperationOutcome, got: %s", truncate(r.body))
	}
	for _, is := range oo.Issue {
		if code != "" && is.Code != code {
			continue
		}
		if expression == "" {
			return is.Diagnostics
		}
		for _, e := range is.Expression {
			if e == expression {
				return is.Diagnostics
			}
		}
	}
	t.Fatalf("no issue with code %q and expression %q in %s", code, expression, truncate(r.body))
	return ""
}

// logBuffer collects the server's request log; the server writes it from
// many goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
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
