package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func get(t *testing.T, h *Handler, path string) (int, Response) {
	t.Helper()
	mux := http.NewServeMux()
	h.Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	var body Response
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("GET %s: %d %q is not JSON: %v", path, rec.Code, rec.Body, err)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	return rec.Code, body
}

func TestReady(t *testing.T) {
	ok := Check{Name: "store", Run: func(context.Context) error { return nil }}
	private := Check{Name: "mongodb-primary", Run: func(context.Context) error {
		return Private("no primary answered", errors.New("server selection error: db1.internal:27017 secondary"))
	}}
	full := Check{Name: "audit-queue", Run: func(context.Context) error { return errors.New("9000 events queued, high-water mark 8000") }}
	// hangs ignores its context: the probe must answer by the deadline all the same.
	hangs := Check{Name: "mongo-primary", Run: func(context.Context) error { time.Sleep(time.Hour); return nil }}

	code, body := get(t, New([]Check{ok}, 0, nil), "/readyz")
	if code != http.StatusOK || body.Status != "ok" || len(body.Checks) != 1 || !body.Checks[0].OK || body.Checks[0].Name != "store" {
		t.Errorf("all checks pass: %d %+v", code, body)
	}

	code, body = get(t, New([]Check{ok, full, hangs, private}, 20*time.Millisecond, nil), "/readyz")
	if code != http.StatusServiceUnavailable || body.Status != "fail" || len(body.Checks) != 4 {
		t.Fatalf("failing checks: %d %+v; want 503 with four results", code, body)
	}
	want := []Result{
		{Name: "store", OK: true},
		{Name: "audit-queue", Error: "9000 events queued, high-water mark 8000"},
		{Name: "mongo-primary", Error: "no answer within 20ms"},
		{Name: "mongodb-primary", Error: "no primary answered"},
	}
	for i, w := range want {
		got := body.Checks[i]
		got.Millis = 0
		if got != w {
			t.Errorf("check %d: %+v, want %+v", i, got, w)
		}
	}
}

func TestLive(t *testing.T) {
	failing := Check{Name: "store", Run: func(context.Context) error { return errors.New("down") }}
	code, body := get(t, New([]Check{failing}, 0, nil), "/livez")
	if code != http.StatusOK || body.Status != "ok" {
		t.Errorf("/livez with a failing readiness check: %d %+v; want 200 ok", code, body)
	}
}

func TestQueueBelow(t *testing.T) {
	depth := 0
	check := QueueBelow("audit-queue", 100, func() int { return depth })
	for _, tt := range []struct {
		depth int
		want  string
	}{{0, ""}, {99, ""}, {100, "100 queued, high-water mark 100"}, {250, "250 queued, high-water mark 100"}} {
		depth = tt.depth
		err := check.Run(context.Background())
		if got := fmt.Sprint(err); (tt.want == "" && err != nil) || (tt.want != "" && got != tt.want) {
			t.Errorf("depth %d: %v, want %q", tt.depth, err, tt.want)
		}
	}
}

// Probes asked for within a second of a readiness run share its results,
// so a client asking /readyz without pause costs the store one check a
// second; a probe asked later runs the checks again and sees what changed.
func TestReadyShared(t *testing.T) {
	var runs int
	var down error
	store := Check{Name: "store", Run: func(context.Context) error {
		runs++
		return down
	}}
	h := New([]Check{store}, 0, nil)
	now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	h.now = func() time.Time { return now }
	for range 5 {
		if code, _ := get(t, h, "/readyz"); code != http.StatusOK {
			t.Fatalf("/readyz: %d, want 200", code)
		}
	}
	if runs != 1 {
		t.Errorf("5 probes within a second ran the checks %d times, want once", runs)
	}
	down = errors.New("disk full")
	now = now.Add(time.Second)
	if code, body := get(t, h, "/readyz"); code != http.StatusServiceUnavailable || body.Checks[0].Error != "disk full" || runs != 2 {
		t.Errorf("a probe a second later, the store failing: %d %+v after %d runs; want 503 from a second run", code, body, runs)
	}
}

// A probe asked with a method other than GET or HEAD is refused with 405
// naming the methods served, even beside a catch-all handler (the FHIR
// API's), which would answer it 404; HEAD is answered as GET is.
func TestProbeMethods(t *testing.T) {
	h := New(nil, 0, nil)
	mux := http.NewServeMux()
	h.Register(mux)
	mux.HandleFunc("/", http.NotFound)
	for _, path := range []string{"/livez", "/readyz"} {
		for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
			if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d, Allow %q; want 405, Allow GET, HEAD", method, path, rec.Code, rec.Header().Get("Allow"))
			}
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, path, nil))
		if rec.Code != http.StatusOK {
			t.Errorf("HEAD %s: %d, want 200", path, rec.Code)
		}
	}
}
