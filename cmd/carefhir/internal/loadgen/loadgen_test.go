package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"carefhir/profiles"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestPercentile(t *testing.T) {
	oneToHundred := make([]time.Duration, 100)
	for i := range oneToHundred {
		oneToHundred[i] = ms(i + 1)
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value p50", []time.Duration{ms(7)}, 50, ms(7)},
		{"one value p99", []time.Duration{ms(7)}, 99, ms(7)},
		{"two values p50 is the lower", []time.Duration{ms(1), ms(2)}, 50, ms(1)},
		{"two values p51 is the upper", []time.Duration{ms(1), ms(2)}, 51, ms(2)},
		{"1..100 p50", oneToHundred, 50, ms(50)},
		{"1..100 p90", oneToHundred, 90, ms(90)},
		{"1..100 p99", oneToHundred, 99, ms(99)},
		{"1..100 p100 is the max", oneToHundred, 100, ms(100)},
		{"ten values p99 is the max", oneToHundred[:10], 99, ms(10)},
		{"ten values p90", oneToHundred[:10], 90, ms(9)},
		{"p0 clamps to the min", oneToHundred, 0, ms(1)},
		{"p above 100 clamps to the max", oneToHundred, 150, ms(100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%d values, %v) = %v, want %v", len(tt.sorted), tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarizeSorts(t *testing.T) {
	d := []time.Duration{ms(5), ms(1), ms(4), ms(2), ms(3)}
	got := Summarize(d)
	want := Latency{P50: ms(3), P90: ms(5), P99: ms(5), Max: ms(5)}
	if got != want {
		t.Errorf("Summarize = %+v, want %+v", got, want)
	}
}

func TestNHSNumberIsValidTestRange(t *testing.T) {
	seen := map[string]bool{}
	for n := range uint64(2000) {
		s := NHSNumber(n)
		if !profiles.ValidNHSNumber(s) || !strings.HasPrefix(s, "999") {
			t.Fatalf("NHSNumber(%d) = %q: want a valid number in the 999 test range", n, s)
		}
		seen[s] = true
	}
	// The last candidate, 9999999999, passes the check digit but is one
	// digit ten times: it is passed over too.
	if s := NHSNumber(999_999); s == "9999999999" || !profiles.ValidNHSNumber(s) {
		t.Errorf("NHSNumber(999999) = %q, want a valid NHS number", s)
	}
	// Skipping invalid candidates maps some n to the same number, but most
	// candidates are valid.
	if len(seen) < 1500 {
		t.Errorf("2000 candidates gave only %d distinct NHS numbers", len(seen))
	}
}

func TestPatientJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		var p struct {
			ResourceType string
			Identifier   []struct{ System, Value string }
			Name         []struct {
				Family string
				Given  []string
			}
			Gender    string
			BirthDate string
			Address   []struct{ PostalCode string }
		}
		body := PatientJSON("9912003888", r)
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("PatientJSON is not JSON: %v\n%s", err, body)
		}
		if p.ResourceType != "Patient" || len(p.Identifier) != 1 ||
			p.Identifier[0].System != "https://fhir.nhs.uk/Id/nhs-number" || p.Identifier[0].Value != "9912003888" ||
			len(p.Name) != 1 || p.Name[0].Family == "" || len(p.Name[0].Given) != 1 ||
			(p.Gender != "male" && p.Gender != "female") ||
			len(p.Address) != 1 || p.Address[0].PostalCode == "" {
			t.Fatalf("PatientJSON lacks a UK Core element: %s", body)
		}
		if _, err := time.Parse(time.DateOnly, p.BirthDate); err != nil {
			t.Fatalf("birthDate %q: %v", p.BirthDate, err)
		}
	}
}

func TestIDFromLocation(t *testing.T) {
	tests := []struct {
		name, loc string
		id        string
		ok        bool
	}{
		{"absolute with history", "http://127.0.0.1:8080/fhir/Patient/abc-1/_history/1", "abc-1", true},
		{"relative with history", "Patient/abc/_history/3", "abc", true},
		{"absolute without history", "http://h/fhir/Patient/abc", "abc", true},
		{"id equal to the type", "/fhir/Patient/Patient/_history/1", "Patient", true},
		{"other type", "/fhir/Observation/abc/_history/1", "", false},
		{"type only", "/fhir/Patient", "", false},
		{"empty", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := IDFromLocation(tt.loc, "Patient")
			if id != tt.id || ok != tt.ok {
				t.Errorf("IDFromLocation(%q) = %q, %v, want %q, %v", tt.loc, id, ok, tt.id, tt.ok)
			}
		})
	}
}

// fakeServer is a minimal FHIR Patient endpoint: create and read by id.
type fakeServer struct {
	mu       sync.Mutex
	patients map[string][]byte
	creates  atomic.Int64
	reads    atomic.Int64
	conns    atomic.Int64
	failRead bool // answer every read with 500
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/fhir/Patient":
		if r.Header.Get("Content-Type") != "application/fhir+json" {
			http.Error(w, "unsupported media type", http.StatusUnsupportedMediaType)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil || !json.Valid(body) {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		id := fmt.Sprint(f.creates.Add(1))
		f.mu.Lock()
		f.patients[id] = body
		f.mu.Unlock()
		w.Header().Set("Location", "http://"+r.Host+"/fhir/Patient/"+id+"/_history/1")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(body)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/fhir/Patient/"):
		f.reads.Add(1)
		f.mu.Lock()
		body, ok := f.patients[strings.TrimPrefix(r.URL.Path, "/fhir/Patient/")]
		f.mu.Unlock()
		switch {
		case f.failRead:
			http.Error(w, "boom", http.StatusInternalServerError)
		case !ok:
			http.NotFound(w, r)
		default:
			_, _ = w.Write(body)
		}
	default:
		http.NotFound(w, r)
	}
}

func startFake(t *testing.T, f *fakeServer) string {
	t.Helper()
	f.patients = map[string][]byte{}
	srv := httptest.NewUnstartedServer(f)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL + "/fhir"
}

func TestRun(t *testing.T) {
	tests := []struct {
		name        string
		op          Op
		wantCreates int64 // besides the seed
		wantReads   int64
	}{
		{"create", OpCreate, 200, 0},
		{"read", OpRead, 0, 200},
		{"both", OpBoth, -1, -1}, // creates + reads = 200
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeServer{}
			base := startFake(t, f)
			const seed, requests, clients = 20, 200, 4
			res, err := Run(context.Background(), Config{
				BaseURL: base, Clients: clients, Requests: requests, Op: tt.op, Seed: seed,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != requests || res.Errors != 0 || res.Err != nil {
				t.Fatalf("Run: %d requests, %d errors (%v); want %d, 0", res.Requests, res.Errors, res.Err, requests)
			}
			creates := f.creates.Load()
			if tt.op != OpCreate {
				creates -= seed
			}
			reads := f.reads.Load()
			if tt.wantCreates >= 0 && (creates != tt.wantCreates || reads != tt.wantReads) {
				t.Errorf("server saw %d creates and %d reads, want %d and %d", creates, reads, tt.wantCreates, tt.wantReads)
			}
			if creates+reads != requests {
				t.Errorf("server saw %d creates + %d reads, want %d in all", creates, reads, requests)
			}
			if res.Latency.P50 <= 0 || res.Latency.P50 > res.Latency.P90 || res.Latency.P90 > res.Latency.P99 || res.Latency.P99 > res.Latency.Max {
				t.Errorf("latency percentiles out of order: %+v", res.Latency)
			}
			if res.Throughput() <= 0 {
				t.Errorf("throughput %v, want > 0", res.Throughput())
			}
			// Keep-alive: connections are reused, not opened per request.
			if n := f.conns.Load(); n > requests/4 {
				t.Errorf("server saw %d connections for %d requests: keep-alive is not working", n, requests+seed)
			}
		})
	}
}

func TestRunReadsOnlySeededIDs(t *testing.T) {
	f := &fakeServer{}
	base := startFake(t, f)
	res, err := Run(context.Background(), Config{BaseURL: base, Clients: 3, Requests: 100, Op: OpRead, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	// The fake answers 404 for an unknown id, which would count as an error.
	if res.Errors != 0 {
		t.Errorf("%d errors reading seeded ids: %v", res.Errors, res.Err)
	}
}

func TestRunCountsErrors(t *testing.T) {
	f := &fakeServer{failRead: true}
	base := startFake(t, f)
	res, err := Run(context.Background(), Config{BaseURL: base, Clients: 2, Requests: 30, Op: OpRead, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 30 || res.Errors != 30 {
		t.Errorf("got %d requests, %d errors; want 30, 30", res.Requests, res.Errors)
	}
	if res.Err == nil || !strings.Contains(res.Err.Error(), "500") {
		t.Errorf("first error %v, want one naming the 500 status", res.Err)
	}
}

func TestRunForDuration(t *testing.T) {
	f := &fakeServer{}
	base := startFake(t, f)
	res, err := Run(context.Background(), Config{
		BaseURL: base, Clients: 2, Duration: 100 * time.Millisecond, Warmup: 20 * time.Millisecond, Op: OpCreate,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Errors != 0 {
		t.Errorf("got %d requests, %d errors (%v); want some and none", res.Requests, res.Errors, res.Err)
	}
	// Warm-up requests reach the server but are not measured.
	if got := f.creates.Load(); got <= int64(res.Requests) {
		t.Errorf("server saw %d creates, measured %d: warm-up did not run", got, res.Requests)
	}
}

func TestRunSeedFailure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"resourceType":"OperationOutcome"}`, http.StatusUnprocessableEntity)
	}))
	defer srv.Close()
	_, err := Run(context.Background(), Config{BaseURL: srv.URL + "/fhir", Clients: 2, Requests: 10, Op: OpRead, Seed: 4})
	if err == nil || !strings.Contains(err.Error(), "seed") || !strings.Contains(err.Error(), "422") {
		t.Errorf("Run with failing seed: err = %v, want a seed error naming 422", err)
	}
}

func TestRunRejectsConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"relative URL", Config{BaseURL: "/fhir", Clients: 1, Requests: 1, Op: OpCreate}},
		{"ftp URL", Config{BaseURL: "ftp://h/fhir", Clients: 1, Requests: 1, Op: OpCreate}},
		{"no clients", Config{BaseURL: "http://h/fhir", Clients: 0, Requests: 1, Op: OpCreate}},
		{"negative requests", Config{BaseURL: "http://h/fhir", Clients: 1, Requests: -1, Op: OpCreate}},
		{"neither requests nor duration", Config{BaseURL: "http://h/fhir", Clients: 1, Op: OpCreate}},
		{"unknown op", Config{BaseURL: "http://h/fhir", Clients: 1, Requests: 1, Op: "delete"}},
		{"read without seed", Config{BaseURL: "http://h/fhir", Clients: 1, Requests: 1, Op: OpRead}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Run(context.Background(), tt.cfg); err == nil {
				t.Errorf("Run(%+v) succeeded, want an error", tt.cfg)
			}
		})
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	f := &fakeServer{}
	base := startFake(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, Config{BaseURL: base, Clients: 2, Duration: time.Hour, Op: OpCreate}); err == nil {
		t.Error("Run with a cancelled context succeeded, want an error")
	}
}

func TestResultReport(t *testing.T) {
	res := &Result{
		Op: OpRead, Clients: 8, Requests: 1000, Errors: 2, Elapsed: 2 * time.Second,
		Latency: Latency{P50: 1234 * time.Microsecond, P90: ms(2), P99: ms(5), Max: ms(40)},
	}
	var b strings.Builder
	if _, err := res.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"requests:   1000", "errors:     2", "throughput: 500.0 req/s", "p50 1.23ms", "p90 2ms", "p99 5ms", "max 40ms"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}
