package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func scrape(t *testing.T, r *Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

func TestClassify(t *testing.T) {
	tests := []struct {
		method, path     string
		interaction, typ string
	}{
		{"GET", "/fhir/Patient/123", "read", "Patient"},
		{"HEAD", "/fhir/Patient/123", "read", "Patient"},
		{"GET", "/fhir/Patient/123/_history/2", "vread", "Patient"},
		{"PUT", "/fhir/Patient/123", "update", "Patient"},
		{"PUT", "/fhir/Patient", "update", "Patient"},
		{"PATCH", "/fhir/Patient/123", "patch", "Patient"},
		{"DELETE", "/fhir/Patient/123", "delete", "Patient"},
		{"DELETE", "/fhir/Patient", "delete", "Patient"},
		{"GET", "/fhir/Patient/123/_history", "history-instance", "Patient"},
		{"GET", "/fhir/Patient/_history", "history-type", "Patient"},
		{"POST", "/fhir/Patient", "create", "Patient"},
		{"GET", "/fhir/Patient", "search-type", "Patient"},
		{"POST", "/fhir/Patient/_search", "search-type", "Patient"},
		{"GET", "/fhir/Patient/123/Appointment", "search-type", "Appointment"},
		{"GET", "/fhir/metadata", "capabilities", ""},
		{"POST", "/fhir", "transaction", ""},
		{"POST", "/fhir/", "transaction", ""},
		{"GET", "/fhir", "search-system", ""},
		{"GET", "/fhir/_history", "history-system", ""},
		{"GET", "/fhir/Patient/123/$everything", "operation", "Patient"},
		{"POST", "/fhir/Patient/$validate", "operation", "Patient"},
		{"GET", "/fhir/$meta", "operation", ""},
		{"GET", "/fhirx/Patient", "other", ""},
		{"GET", "/livez", "other", ""},
		{"GET", "/fhir/a/b/c/d/e", "other", ""},
	}
	for _, tt := range tests {
		interaction, typ := Classify(tt.method, tt.path, "/fhir")
		if interaction != tt.interaction || typ != tt.typ {
			t.Errorf("Classify(%s %s) = %q, %q; want %q, %q", tt.method, tt.path, interaction, typ, tt.interaction, tt.typ)
		}
	}
}

// Requests are counted by interaction, served type and status, never by id
// or by a type the server does not serve.
func TestInstrument(t *testing.T) {
	r := New()
	h := r.Instrument(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasSuffix(req.URL.Path, "/missing") {
			http.Error(w, "gone", http.StatusNotFound)
			return
		}
		io.WriteString(w, "{}")
	}), "/fhir", []string{"Patient"})
	for _, p := range []string{"/fhir/Patient/a", "/fhir/Patient/b", "/fhir/Patient/missing", "/fhir/Secret123/a", "/elsewhere"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, p, nil))
	}
	out := scrape(t, r)
	for _, want := range []string{
		`carefhir_http_requests_total{code="200",interaction="read",type="Patient"} 2`,
		`carefhir_http_requests_total{code="404",interaction="read",type="Patient"} 1`,
		`carefhir_http_requests_total{code="200",interaction="read",type="other"} 1`,
		`carefhir_http_requests_total{code="200",interaction="other",type=""} 1`,
		`carefhir_http_request_duration_seconds_count{class="2xx",interaction="read",type="Patient"} 2`,
		`go_goroutines `,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, leak := range []string{"Secret123", `"a"`, "missing"} {
		if strings.Contains(out, leak) {
			t.Errorf("metrics hold %s, a value from a request", leak)
		}
	}
}

// A component's metrics exist only once it registers them, and then show
// what it reports.
func TestComponentMetrics(t *testing.T) {
	r := New()
	before := scrape(t, r)
	for _, name := range []string{"carefhir_audit", "carefhir_subscription", "carefhir_export", "carefhir_sqlite", "carefhir_store"} {
		if strings.Contains(before, name) {
			t.Errorf("%s shown before any component registered it", name)
		}
	}
	dropped := r.AuditBuffer(func() int { return 7 })
	dropped.Inc()
	r.SubscriptionOutbox(func() int { return 3 }, func() int64 { return 2 })
	r.ExportJobs(func() int { return 1 }, func() int64 { return 0 })
	r.SQLite(func() SQLiteStats { return SQLiteStats{QueueDepth: 4, DatabaseBytes: 4096, WALBytes: 512} })
	obs := r.StoreObserver("sqlite")
	obs.Operation("read", time.Millisecond)
	obs.Commit(12)
	out := scrape(t, r)
	for _, want := range []string{
		"carefhir_audit_buffer_depth 7",
		"carefhir_audit_events_dropped_total 1",
		"carefhir_subscription_outbox_backlog 3",
		"carefhir_subscription_delivery_failures_total 2",
		"carefhir_export_jobs_running 1",
		"carefhir_export_jobs_failed_total 0",
		"carefhir_sqlite_write_queue_depth 4",
		`carefhir_sqlite_file_bytes{file="database"} 4096`,
		`carefhir_sqlite_file_bytes{file="wal"} 512`,
		`carefhir_store_operation_duration_seconds_count{engine="sqlite",op="read"} 1`,
		`carefhir_store_commit_writes_bucket{engine="sqlite",le="16"} 1`,
		`carefhir_store_commit_writes_bucket{engine="sqlite",le="8"} 0`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// BenchmarkInstrument measures what counting and timing adds to a request,
// against the same handler unwrapped.
func BenchmarkInstrument(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	req := httptest.NewRequest(http.MethodGet, "/fhir/Patient/123", nil)
	for _, bb := range []struct {
		name string
		h    http.Handler
	}{{"bare", h}, {"instrumented", New().Instrument(h, "/fhir", []string{"Patient"})}} {
		b.Run(bb.name, func(b *testing.B) {
			w := httptest.NewRecorder()
			for b.Loop() {
				bb.h.ServeHTTP(w, req)
			}
		})
	}
}
