package contentcoding

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
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
		if got := AcceptsGzip(header); got != want {
			t.Errorf("AcceptsGzip(%q) = %v, want %v", header, got, want)
		}
	}
}

func TestGzipRoundTrip(t *testing.T) {
	body := bytes.Repeat([]byte(`{"resourceType":"Patient"}`), 100)
	for range 3 { // writers come back from the pool reset
		zr, err := gzip.NewReader(bytes.NewReader(Gzip(body)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("round trip: %v, %d bytes of %d", err, len(got), len(body))
		}
	}
}

// BenchmarkGzip measures the CPU of compressing a searchset of 20
// Patients at the level responses are sent with, as MB/s of body.
//
//	go test ./server/contentcoding -run '^$' -bench Gzip
func BenchmarkGzip(b *testing.B) {
	patient, err := os.ReadFile("../../testdata/r4-examples/Patient-example.json")
	if err != nil {
		b.Fatal(err)
	}
	var entries []string
	for i := range 20 {
		p := bytes.ReplaceAll(patient, []byte(`"example"`), fmt.Appendf(nil, `"p%d"`, i))
		entries = append(entries, fmt.Sprintf(`{"fullUrl":"http://127.0.0.1:8080/fhir/Patient/p%d","resource":%s,"search":{"mode":"match"}}`, i, bytes.TrimSpace(p)))
	}
	body := []byte(`{"resourceType":"Bundle","type":"searchset","entry":[` + strings.Join(entries, ",") + `]}`)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		Gzip(body)
	}
}
