package server

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestAcceptsGzip(t *testing.T) {
	for header, want := range map[string]bool{
		"":                             false,
		"gzip":                         true,
		"GZIP":                         true,
		"x-gzip":                       true,
		"deflate, gzip;q=1.0, *;q=0.5": true,
		"gzip;q=0":                     false,
		"gzip;q=0.0":                   false,
		"gzip; q=0.001":                true,
		"br":                           false,
		"*":                            true,
		"*;q=0":                        false,
		"gzip;q=0, *":                  false, // gzip itself is refused
		"br, *;q=0.1":                  true,
		"identity":                     false,
	} {
		if got := acceptsGzip(header); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", header, got, want)
		}
	}
}

// BenchmarkGzip measures the CPU of compressing the body of a search of 20
// Patients (about 20 KB) at the level responses are sent with, and
// reports how much smaller it gets.
//
//	go test ./server -run '^$' -bench Gzip
func BenchmarkGzip(b *testing.B) {
	patient, err := os.ReadFile("../testdata/r4-examples/Patient-example.json")
	if err != nil {
		b.Fatal(err)
	}
	var entries []string
	for i := range 20 {
		entries = append(entries, fmt.Sprintf(`{"fullUrl":"http://127.0.0.1:8080/fhir/Patient/p%d","resource":%s,"search":{"mode":"match"}}`, i, bytes.TrimSpace(patient)))
	}
	body := []byte(`{"resourceType":"Bundle","type":"searchset","entry":[` + strings.Join(entries, ",") + `]}`)
	var n int
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		n = len(gzipped(body))
	}
	b.ReportMetric(float64(len(body)), "bytes")
	b.ReportMetric(float64(n), "gzipped-bytes")
}
