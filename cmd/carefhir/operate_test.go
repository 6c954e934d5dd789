package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"carefhir/ops/health"
	"carefhir/store"
	"carefhir/store/mongo/ferrettest"
	"carefhir/store/sqlite"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The probes and the metrics are served beside the API on each engine, the
// probes outside /fhir; the requests served show in the metrics by
// interaction and type.
func TestServeProbesAndMetrics(t *testing.T) {
	for name, engine := range engineArgs() {
		t.Run(name, func(t *testing.T) {
			p := start(t, engine(t)...)
			root := strings.TrimSuffix(p.base, "/fhir")

			if code, body := httpGet(t, root+"/livez"); code != http.StatusOK || !strings.Contains(body, `"status":"ok"`) {
				t.Errorf("GET /livez: %d %s", code, body)
			}
			code, body := httpGet(t, root+"/readyz")
			var ready health.Response
			if err := json.Unmarshal([]byte(body), &ready); err != nil || code != http.StatusOK || ready.Status != "ok" {
				t.Fatalf("GET /readyz: %d %s", code, body)
			}
			want := map[string]bool{"store": true, "audit": true, "subscription-outbox": true}
			if name == engineMongo {
				want["mongodb-primary"] = true
			}
			for _, c := range ready.Checks {
				if !c.OK || !want[c.Name] {
					t.Errorf("readiness check %+v; want the checks %v passing", c, want)
				}
				delete(want, c.Name)
			}
			if len(want) > 0 {
				t.Errorf("/readyz lacks the checks %v: %s", want, body)
			}

			// Served with GET (and HEAD) only: another method is 405, not
			// the FHIR API's 404.
			for _, path := range []string{"/livez", "/readyz", "/metrics"} {
				resp, err := httpClient.Post(root+path, "application/json", strings.NewReader("{}"))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
					t.Errorf("POST %s: %d, Allow %q; want 405, Allow GET, HEAD", path, resp.StatusCode, resp.Header.Get("Allow"))
				}
			}

			if status, _, err := createPatient(p.base, rand.New(rand.NewPCG(1, 2)), 1); err != nil || status != http.StatusCreated {
				t.Fatalf("create: %d, %v", status, err)
			}
			httpGet(t, p.base+"/Patient/no-such-id")
			code, body = httpGet(t, root+"/metrics")
			if code != http.StatusOK {
				t.Fatalf("GET /metrics: %d", code)
			}
			for _, want := range []string{
				`carefhir_http_requests_total{code="201",interaction="create",type="Patient"} 1`,
				`carefhir_http_requests_total{code="404",interaction="read",type="Patient"} 1`,
				"go_goroutines",
				"carefhir_audit_buffer_depth",
				"carefhir_subscription_outbox_backlog 0",
				"carefhir_export_jobs_running 0",
			} {
				if !strings.Contains(body, want) {
					t.Errorf("/metrics lacks %s", want)
				}
			}
			if name == engineSQLite {
				// The create is a unit of work (the write hook of
				// subscriptions runs on every type), counted with the
				// audit trail's.
				for _, want := range []string{`carefhir_store_operation_duration_seconds_count{engine="sqlite",op="transact"} `, `carefhir_sqlite_file_bytes{file="database"}`, "carefhir_sqlite_write_queue_depth 0"} {
					if !strings.Contains(body, want) {
						t.Errorf("/metrics lacks %s", want)
					}
				}
				// Its commit, a group commit of units, is among those
				// whose writes are counted.
				if m := regexp.MustCompile(`carefhir_store_commit_writes_count\{engine="sqlite"\} (\d+)`).FindStringSubmatch(body); m == nil || m[1] == "0" {
					t.Errorf("/metrics counts no group commit: %v", m)
				}
			}
			if name == engineMongo && !strings.Contains(body, `carefhir_store_operation_duration_seconds_count{engine="mongo",op="find"}`) {
				t.Errorf("/metrics lacks the MongoDB engine's command durations")
			}
			if strings.Contains(body, "no-such-id") {
				t.Errorf("/metrics holds an id from a request")
			}

			// carefhir probe, as the container's HEALTHCHECK runs it.
			var out strings.Builder
			addr := strings.TrimPrefix(root, "http://")
			if err := run(context.Background(), []string{"probe", "--path", "/readyz"}, env(map[string]string{"CAREFHIR_ADDR": addr}), &out, io.Discard); err != nil {
				t.Errorf("carefhir probe of a ready server: %v", err)
			}
		})
	}
}

// A path under /fhir that is not clean (a dot segment, a doubled slash)
// is redirected to its clean form, as net/http's ServeMux redirects every
// path, whichever handler serves the clean ones; a clean one is served.
func TestServeRedirectsUncleanPaths(t *testing.T) {
	p := start(t, "--data", t.TempDir())
	root := strings.TrimSuffix(p.base, "/fhir")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for path, clean := range map[string]string{
		"/fhir/./metadata":          "/fhir/metadata",
		"/fhir//metadata":           "/fhir/metadata",
		"/fhir/Patient/../metadata": "/fhir/metadata",
		"/fhir/metadata/.":          "/fhir/metadata",
		"/fhir/Patient//x/":         "/fhir/Patient/x/",
	} {
		req, err := http.NewRequest(http.MethodGet, root+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = path // sent as written, not cleaned by the client
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode/100 != 3 || loc != clean && loc != root+clean {
			t.Errorf("GET %s: %d, Location %q; want a redirect to %s", path, resp.StatusCode, loc, clean)
		}
	}
	for _, path := range []string{"/fhir/metadata", "/fhir/Patient/x/"} {
		resp, err := noFollow.Get(root + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[string]int{"/fhir/metadata": http.StatusOK, "/fhir/Patient/x/": http.StatusNotFound}[path]; resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// With --metrics-addr, /metrics is served there and not beside the API.
func TestServeMetricsOnTheirOwnListener(t *testing.T) {
	maddr := freeAddr(t)
	p := start(t, "--data", t.TempDir(), "--metrics-addr", maddr)
	root := strings.TrimSuffix(p.base, "/fhir")
	if code, body := httpGet(t, "http://"+maddr+"/metrics"); code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Errorf("GET /metrics on --metrics-addr: %d", code)
	}
	if code, _ := httpGet(t, root+"/metrics"); code != http.StatusNotFound {
		t.Errorf("GET /metrics beside the API with --metrics-addr: %d, want 404", code)
	}
}

func TestProbeCommand(t *testing.T) {
	tests := []struct {
		addr, path string
		secure     bool
		want       string
	}{
		{"127.0.0.1:8080", "/livez", false, "http://127.0.0.1:8080/livez"},
		{"0.0.0.0:8080", "/readyz", false, "http://127.0.0.1:8080/readyz"},
		{":8080", "/livez", false, "http://127.0.0.1:8080/livez"},
		{"[::]:8080", "/livez", false, "http://[::1]:8080/livez"},
		{"carefhir.internal:80", "/livez", false, "http://carefhir.internal:80/livez"},
		{"0.0.0.0:8443", "/livez", true, "https://127.0.0.1:8443/livez"},
	}
	for _, tt := range tests {
		if got := probeURL(tt.addr, tt.path, tt.secure); got != tt.want {
			t.Errorf("probeURL(%q, %q, %t) = %q, want %q", tt.addr, tt.path, tt.secure, got, tt.want)
		}
	}
	// Nothing listens: the probe fails with exit status 1.
	err := run(context.Background(), []string{"probe", "--addr", freeAddr(t)}, env(nil), io.Discard, io.Discard)
	if code := exitCode(err, io.Discard); code != 1 {
		t.Errorf("probe of a closed port: exit %d (%v), want 1", code, err)
	}
	err = run(context.Background(), []string{"probe", "--path", "/metrics"}, env(nil), io.Discard, io.Discard)
	if code := exitCode(err, io.Discard); code != 2 {
		t.Errorf("probe of another path: exit %d (%v), want 2", code, err)
	}
}

// The primary check passes while the deployment answers and fails once it
// is gone, with a public message that names no host.
func TestMongoPrimaryCheck(t *testing.T) {
	var uri string
	t.Run("up", func(t *testing.T) {
		uri = ferrettest.Start(t)
		check, disconnect, err := mongoPrimaryCheck(uri)
		if err != nil {
			t.Fatal(err)
		}
		defer disconnect()
		if res := health.New([]health.Check{check}, 5*time.Second, nil).Run(t.Context()); !res[0].OK {
			t.Errorf("check of a running deployment: %+v", res[0])
		}
	})
	// The deployment stopped with the subtest.
	check, disconnect, err := mongoPrimaryCheck(uri)
	if err != nil {
		t.Fatal(err)
	}
	defer disconnect()
	res := health.New([]health.Check{check}, time.Second, nil).Run(t.Context())
	if res[0].OK || res[0].Name != "mongodb-primary" {
		t.Fatalf("check of a stopped deployment: %+v; want a failure", res[0])
	}
	t.Logf("public message: %q", res[0].Error)
	if strings.Contains(res[0].Error, "127.0.0.1") || strings.Contains(res[0].Error, "localhost") {
		t.Errorf("the public message names a host: %q", res[0].Error)
	}
}

// outboxUnread is a SQLite store whose subscription outbox does not answer,
// as one too long to count within the readiness check's second.
type outboxUnread struct{ *sqlite.Store }

func (s outboxUnread) Search(ctx context.Context, q store.Query) ([]*store.Version, error) {
	if q.Type == "NotifyOutbox" {
		return nil, errors.New("the outbox did not answer")
	}
	return s.Store.Search(ctx, q)
}

// A subscription outbox that cannot be counted fails readiness, naming the
// check, and its backlog metric is the last count made, not a value that
// reads as an outbox drained.
func TestReadinessOfAnOutboxNotCounted(t *testing.T) {
	factories := map[string]engineFactory{engineSQLite: func(ctx context.Context, cfg *serveConfig) (store.Store, error) {
		st, err := openSQLite(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return outboxUnread{st.(*sqlite.Store)}, nil
	}}
	ctx, stop := context.WithCancel(context.Background())
	listening := make(chan net.Addr, 1)
	cfg := &serveConfig{Addr: "127.0.0.1:0", DataDir: t.TempDir(), ShutdownTimeout: time.Second, ReadyTimeout: 2 * time.Second,
		listening: func(a net.Addr) { listening <- a }}
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, factories, discardLogger(), "test") }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	var root string
	select {
	case a := <-listening:
		root = "http://" + a.String()
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}

	code, body := httpGet(t, root+"/readyz")
	var ready health.Response
	if err := json.Unmarshal([]byte(body), &ready); err != nil || code != http.StatusServiceUnavailable {
		t.Fatalf("GET /readyz: %d %s; want 503", code, body)
	}
	for _, c := range ready.Checks {
		if want := c.Name != "subscription-outbox"; c.OK != want {
			t.Errorf("readiness check %+v; want only subscription-outbox failing", c)
		}
	}
	_, body = httpGet(t, root+"/metrics")
	if !strings.Contains(body, "\ncarefhir_subscription_outbox_backlog 0\n") {
		t.Errorf("/metrics: %s; want carefhir_subscription_outbox_backlog 0, the last count made", regexp.MustCompile(`(?m)^carefhir_subscription_outbox_backlog .*$`).FindString(body))
	}
}

// carefhir probe asks the server itself, not a proxy the environment names
// for outbound traffic, where a probe of --addr by a host name or address
// other than loopback went through HTTP_PROXY and failed with the proxy's
// answer.
func TestProbeIgnoresProxy(t *testing.T) {
	var hostIP string
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			hostIP = n.IP.String()
			break
		}
	}
	if hostIP == "" {
		t.Skip("no address of this host but loopback: Go never proxies loopback")
	}
	_, port, _ := net.SplitHostPort(freeAddr(t))
	start(t, "--data", t.TempDir(), "--addr", "0.0.0.0:"+port, "--insecure-no-auth")
	proxied := make(chan string, 1)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case proxied <- r.URL.String():
		default:
		}
		http.Error(w, "proxy refuses", http.StatusBadGateway)
	}))
	defer proxy.Close()
	cmd := exec.Command(binary(t), "probe", "--addr", net.JoinHostPort(hostIP, port))
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(kv, envPrefix) && !strings.EqualFold(name, "no_proxy") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "HTTP_PROXY="+proxy.URL, "http_proxy="+proxy.URL)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"status":"ok"`) {
		t.Errorf("carefhir probe with HTTP_PROXY set: %v\n%s", err, out)
	}
	select {
	case got := <-proxied:
		t.Errorf("the probe asked the proxy for %s", got)
	default:
	}
}
