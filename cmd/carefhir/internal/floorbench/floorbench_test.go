package floorbench

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// server answers /fixed with a body of known length, /chunked with a body
// streamed in chunks, and anything else 404.
func server(t *testing.T) string {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fixed", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		w.Write([]byte(`{"resourceType":"Patient","id":"1"}`))
	})
	mux.HandleFunc("GET /chunked", func(w http.ResponseWriter, r *http.Request) {
		for range 3 {
			w.Write(bytes.Repeat([]byte("x"), 10_000))
			w.(http.Flusher).Flush()
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestLoadReadsBothFramings(t *testing.T) {
	addr := server(t)
	for _, path := range []string{"/fixed", "/chunked"} {
		s, err := Load(t.Context(), addr, path, 2, 50*time.Millisecond)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if s.Requests == 0 || s.Elapsed <= 0 {
			t.Fatalf("%s: %+v, want requests answered", path, s)
		}
	}
}

func TestLoadFailsOnOtherStatus(t *testing.T) {
	_, err := Load(t.Context(), server(t), "/missing", 1, 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("error %v, want one naming the 404", err)
	}
}

func TestRunServesTheSameBytes(t *testing.T) {
	addr := server(t)
	res, err := Run(t.Context(), Config{
		Server:      addr,
		Targets:     []Target{{Name: "fixed", Path: "/fixed"}, {Name: "chunked", Path: "/chunked"}},
		Connections: 2,
		Slice:       30 * time.Millisecond,
		Rounds:      2,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Bytes != len(`{"resourceType":"Patient","id":"1"}`) || res[0].ContentType != "application/fhir+json" || res[1].Bytes != 30_000 {
		t.Fatalf("fetched %d bytes of %q and %d bytes", res[0].Bytes, res[0].ContentType, res[1].Bytes)
	}
	for _, r := range res {
		if r.Floor.Requests == 0 || r.Server.Requests == 0 || len(r.Ratios) != 2 || r.Ratio() <= 0 {
			t.Fatalf("%s: %+v, want both sides measured in each round", r.Target.Name, r)
		}
	}
	var out strings.Builder
	if err := WriteTable(&out, res, true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "chunked") || !strings.Contains(out.String(), "29 KB") || !strings.Contains(out.String(), "cpu ratio") {
		t.Fatalf("table:\n%s", out.String())
	}
}

// What the server does after a slice, until Settle returns, is the
// server's: counted in its CPU time, after every slice and the warm-up.
func TestRunChargesSettleToTheServer(t *testing.T) {
	if processCPU() == 0 {
		t.Skip("no CPU time of the process on this system")
	}
	const burn = 20 * time.Millisecond
	calls := 0
	res, err := Run(t.Context(), Config{
		Server:      server(t),
		Targets:     []Target{{Name: "fixed", Path: "/fixed"}},
		Connections: 1,
		Slice:       10 * time.Millisecond,
		Rounds:      3,
		Warmup:      10 * time.Millisecond,
		Settle: func(context.Context) error {
			calls++
			for start := processCPU(); processCPU()-start < burn; {
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 4 {
		t.Errorf("Settle called %d times, want 4 (the warm-up and 3 rounds)", calls)
	}
	if got := res[0].Server.CPU; got < 3*burn {
		t.Errorf("server CPU %s, want at least the %s Settle spent in the 3 rounds", got, 3*burn)
	}
}

func TestHandlerAnswersOnlyItsPaths(t *testing.T) {
	h := Handler(map[string]answer{"/a?x=1": {contentType: "text/plain", body: []byte("hello")}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/a?x=1", nil))
	if rec.Code != 200 || rec.Body.String() != "hello" || rec.Header().Get("Content-Length") != "5" || rec.Header().Get("Content-Type") != "text/plain" {
		t.Fatalf("got %d %q %v", rec.Code, rec.Body.String(), rec.Header())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/a", nil))
	if rec.Code != 404 {
		t.Fatalf("an unknown path answered %d", rec.Code)
	}
}
