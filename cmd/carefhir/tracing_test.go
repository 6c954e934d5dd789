package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
)

// With --otlp-endpoint every request becomes a span sent to the collector,
// carrying the request id; spans not yet sent go at shutdown.
func TestServeSendsSpans(t *testing.T) {
	var (
		mu     sync.Mutex
		bodies [][]byte
	)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/traces" {
			mu.Lock()
			bodies = append(bodies, b)
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	p := start(t, "--data", t.TempDir(), "--otlp-endpoint", collector.URL)
	req, _ := http.NewRequest(http.MethodGet, p.base+"/Patient?family=Traced", nil)
	req.Header.Set("X-Request-Id", "trace-me-4711")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t); err != nil {
		t.Fatalf("carefhir serve after SIGTERM: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	all := bytes.Join(bodies, nil)
	for _, want := range []string{"trace-me-4711", "search-type Patient", "carefhir"} {
		if !bytes.Contains(all, []byte(want)) {
			t.Errorf("the spans sent lack %q (%d requests to the collector)", want, len(bodies))
		}
	}
	if bytes.Contains(all, []byte("Traced")) {
		t.Error("a span carries the query string")
	}
}
