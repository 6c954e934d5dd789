package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Instrument returns next counting and timing every request it serves, by
// FHIR interaction, resource type and status. base is the path the FHIR API
// is served under ("/fhir"); types are the resource types it serves: any
// other type, and any path outside base, is labelled "other", so that no
// request can add a series.
func (r *Registry) Instrument(next http.Handler, base string, types []string) http.Handler {
	served := make(map[string]bool, len(types))
	for _, t := range types {
		served[t] = true
	}
	var byLabels sync.Map // seriesKey → *series
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, req)
		interaction, typ := Classify(req.Method, req.URL.Path, base)
		if typ != "" && !served[typ] {
			typ = "other"
		}
		// The series of a request's labels are looked up once, not by
		// hashing its labels into each vector on every request.
		k := seriesKey{interaction, typ, rec.status}
		s, ok := byLabels.Load(k)
		if !ok {
			s, _ = byLabels.LoadOrStore(k, &series{
				requests: r.requests.WithLabelValues(interaction, typ, strconv.Itoa(rec.status)),
				latency:  r.latency.WithLabelValues(interaction, typ, strconv.Itoa(rec.status/100)+"xx"),
			})
		}
		s.(*series).requests.Inc()
		s.(*series).latency.Observe(time.Since(start).Seconds())
	})
}

// seriesKey names the series of a request: its labels, bounded as
// Instrument bounds them.
type seriesKey struct {
	interaction, typ string
	status           int
}

type series struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wroteHeader {
		s.status, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wroteHeader = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Classify names the FHIR interaction (the codes of the CapabilityStatement:
// read, vread, update, patch, delete, history-instance, history-type,
// create, search-type, capabilities, transaction, history-system,
// search-system, operation) a request asks for from its method and path,
// and the resource type it is on ("" for system-level interactions). A path
// outside base is "other". The type is as written in the path: the caller
// bounds it.
func Classify(method, path, base string) (interaction, typ string) {
	rest, ok := strings.CutPrefix(path, base)
	if !ok || (rest != "" && rest[0] != '/') {
		return "other", ""
	}
	// The path's segments: the first four, the last and how many, read
	// without splitting the path into a slice of its own.
	var seg [4]string
	n, last := 0, ""
	for rest = strings.Trim(rest, "/"); rest != ""; {
		part, tail, more := strings.Cut(rest, "/")
		if n < len(seg) {
			seg[n] = part
		}
		n, last, rest = n+1, part, tail
		if !more {
			break
		}
	}
	if n > 0 && strings.HasPrefix(last, "$") {
		if n == 1 {
			return "operation", ""
		}
		return "operation", seg[0]
	}
	switch n {
	case 0:
		switch method {
		case http.MethodPost:
			return "transaction", "" // or batch: the body says which
		case http.MethodGet, http.MethodHead:
			return "search-system", ""
		}
	case 1:
		switch {
		case seg[0] == "metadata":
			return "capabilities", ""
		case seg[0] == "_history":
			return "history-system", ""
		}
		switch method {
		case http.MethodGet, http.MethodHead:
			return "search-type", seg[0]
		case http.MethodPost:
			return "create", seg[0]
		case http.MethodPut:
			return "update", seg[0] // conditional
		case http.MethodPatch:
			return "patch", seg[0] // conditional
		case http.MethodDelete:
			return "delete", seg[0] // conditional
		}
	case 2:
		switch seg[1] {
		case "_history":
			return "history-type", seg[0]
		case "_search":
			return "search-type", seg[0]
		}
		switch method {
		case http.MethodGet, http.MethodHead:
			return "read", seg[0]
		case http.MethodPut:
			return "update", seg[0]
		case http.MethodPatch:
			return "patch", seg[0]
		case http.MethodDelete:
			return "delete", seg[0]
		}
	case 3:
		if seg[2] == "_history" {
			return "history-instance", seg[0]
		}
		// A compartment search: Patient/{id}/{type}.
		return "search-type", seg[2]
	case 4:
		if seg[2] == "_history" {
			return "vread", seg[0]
		}
	}
	return "other", ""
}
