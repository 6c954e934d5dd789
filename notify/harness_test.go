package notify_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"carefhir/notify"
	"carefhir/operation"
	"carefhir/server"
	"carefhir/server/auth/authtest"
	"carefhir/store"
	"carefhir/store/mongo"
	"carefhir/store/mongo/ferrettest"
	"carefhir/store/sqlite"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
}

const issuer = "https://idp.test"

// engine opens a store in dir (SQLite) or on a shared FerretDB (MongoDB);
// opening it again on the same place reopens the same data.
type engine struct {
	name string
	open func(t testing.TB, place string) store.Store
	// place returns where a test's data lives.
	place func(t *testing.T) string
}

var engines = []engine{
	{"sqlite",
		func(t testing.TB, dir string) store.Store {
			st, err := sqlite.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			// Closed before the directory is removed, so that no file is
			// written into it meanwhile (Close may be called twice).
			t.Cleanup(func() { st.Close() })
			return st
		},
		func(t *testing.T) string { return t.TempDir() }},
	{"mongo",
		func(t testing.TB, uri string) store.Store {
			st, err := mongo.Open(context.Background(), uri)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
		func(t *testing.T) string { return ferrettest.Start(t) }},
}

// clock is the injected clock of backoff and error deadlines.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// env is a server with subscriptions over one engine, with tokens.
type env struct {
	t      testing.TB
	base   string
	st     store.Store
	n      *notify.Notifier
	clock  *clock
	tokens map[string]string
	idp    *authtest.Key
	srv    *httptest.Server
}

// newEnv serves the API over st with a Notifier whose clock the test
// moves; who maps names to the scopes (and patient) of their tokens.
func newEnv(t testing.TB, st store.Store, who map[string]map[string]any, opts ...func(*notify.Config)) *env {
	t.Helper()
	return newEnvHooks(t, st, who, nil, opts...)
}

// newEnvHooks is newEnv with more write hooks, run after the Notifier's.
func newEnvHooks(t testing.TB, st store.Store, who map[string]map[string]any, hooks []operation.Hook, opts ...func(*notify.Config)) *env {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	root := "http://" + srv.Listener.Addr().String()
	svc, idp := authtest.Service(t, issuer, root+"/fhir")
	ix, err := server.NewIndexer(root + "/fhir")
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	cfg := notify.Config{Indexer: ix, BaseURL: root + "/fhir", Now: clk.Now, Reauthorize: svc.Reauthorize,
		MinBackoff: time.Second, MaxBackoff: time.Minute, ErrorAfter: time.Hour, Lease: time.Minute, Holder: "test"}
	for _, o := range opts {
		o(&cfg)
	}
	n, err := notify.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = server.New(server.Config{Store: st, BaseURL: root + "/fhir", Auth: svc,
		Logger: slog.New(slog.DiscardHandler), Hooks: append([]operation.Hook{n.Hook()}, hooks...), Operations: n.Operations(), Attach: []func(operation.Store){n.Attach}})
	srv.Start()
	t.Cleanup(srv.Close)
	e := &env{t: t, base: root + "/fhir", st: st, n: n, clock: clk, tokens: map[string]string{}, idp: idp, srv: srv}
	who["admin"] = map[string]any{"sub": "admin", "scope": "system/*.cruds"}
	for name, claims := range who {
		e.tokens[name] = idp.Sign(t, authtest.Claims(issuer, root+"/fhir", claims))
	}
	return e
}

// response is what a request answered.
type response struct {
	status int
	header http.Header
	body   string
}

// do sends a request with the token of who ("" sends none).
func (e *env) do(who, method, path, body string) *response {
	e.t.Helper()
	return e.doWith(who, method, path, body, nil)
}

// doWith is do with more request headers.
func (e *env) doWith(who, method, path, body string, header http.Header) *response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.base+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for name, values := range header {
		req.Header[name] = values
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
	return &response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// deliver delivers what is due now.
func (e *env) deliver() {
	e.t.Helper()
	if err := e.n.DeliverPending(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

// receiver is an endpoint that records what it is sent, and answers with
// the status the test sets.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []received
	status int
}

type received struct {
	Method, Path, Query, Body, Auth, ContentType string
	Header                                       http.Header
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{status: http.StatusOK}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.got = append(r.got, received{req.Method, req.URL.Path, req.URL.RawQuery, string(b), req.Header.Get("Authorization"), req.Header.Get("Content-Type"), req.Header.Clone()})
		w.WriteHeader(r.status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) setStatus(s int) {
	r.mu.Lock()
	r.status = s
	r.mu.Unlock()
}

// take returns what was received since the last take.
func (r *receiver) take() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

// appClaims are the claims of the token "app", of a trusted issuer, which
// may read Appointments and write Subscriptions until exp.
func appClaims(exp time.Time) map[string]any {
	return map[string]any{"sub": "app", "scope": "user/Appointment.rs user/Subscription.cru", "exp": exp.Unix()}
}

// newEnvExpiringApp is newEnv on eng with the token "app" (appClaims),
// current for the requests (checked on the real clock) and for the first
// deliveries (on the test's clock): it expires five minutes after the
// later of the two, at the time returned.
func newEnvExpiringApp(t *testing.T, eng engine) (*env, time.Time) {
	t.Helper()
	exp := time.Now().Add(5 * time.Minute)
	e := newEnv(t, eng.open(t, eng.place(t)), map[string]map[string]any{"app": appClaims(exp)})
	if c := e.clock.Now(); c.After(time.Now()) {
		exp = c.Add(5 * time.Minute)
		e.tokens["app"] = e.idp.Sign(t, authtest.Claims(issuer, e.base, appClaims(exp)))
	}
	return e, exp
}
