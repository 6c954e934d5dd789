package server_test

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"carefhir/ops/reqlog"
	"carefhir/server"
	"carefhir/store/sqlite"
)

// discardWriter is a ResponseWriter that keeps nothing but its header map,
// made new for each request as net/http makes it.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(p)
	return len(p), nil
}
func (w *discardWriter) WriteHeader(status int) { w.status = status }

// BenchmarkHandler measures what the server's handler does for a read by
// id, a search of 20 Patients by family name and the CapabilityStatement,
// without a connection: the middleware, the handler and the response's
// headers and body, as carefhir serve runs them without an audit trail
// (text request log, here to io.Discard). Its allocations are those of
// the request path alone, which `carefhir bench http` measures among
// net/http's and the load generator's.
//
//	go test ./server -run '^$' -bench Handler -benchmem
func BenchmarkHandler(b *testing.B) {
	st, err := sqlite.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	h := server.New(server.Config{Store: st, Logger: slog.New(reqlog.New(io.Discard, nil)), SoftwareVersion: "bench"})
	serve := func(method, target, body string) *discardWriter {
		var r *http.Request
		if body == "" {
			r, err = http.NewRequest(method, "http://127.0.0.1:8080"+target, http.NoBody)
		} else {
			r, err = http.NewRequest(method, "http://127.0.0.1:8080"+target, strings.NewReader(body))
			r.Header.Set("Content-Type", "application/fhir+json")
		}
		if err != nil {
			b.Fatal(err)
		}
		r.RemoteAddr = "127.0.0.1:50000"
		w := &discardWriter{h: http.Header{}}
		h.ServeHTTP(w, r)
		return w
	}
	var id string
	for i := range 40 {
		family := "Handlerbench"
		if i >= 20 {
			family = "Other"
		}
		w := serve(http.MethodPost, "/fhir/Patient", `{"resourceType":"Patient","name":[{"family":"`+family+`","given":["Pat"]}],"gender":"female","birthDate":"1961-02-14"}`)
		loc := w.h.Get("Location")
		if loc == "" {
			b.Fatalf("create: no Location")
		}
		id = strings.Split(strings.TrimPrefix(loc, "http://127.0.0.1:8080/fhir/Patient/"), "/")[0]
	}
	for _, bc := range []struct{ name, target string }{
		{"read", "/fhir/Patient/" + id},
		{"search", "/fhir/Patient?family=Handlerbench"},
		{"metadata", "/fhir/metadata"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if w := serve(http.MethodGet, bc.target, ""); w.status != http.StatusOK || w.n == 0 {
					b.Fatalf("GET %s: %d, %d bytes", bc.target, w.status, w.n)
				}
			}
		})
	}
}
