package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseBenchHTTPConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "defaults", args: nil},
		{name: "a running server", args: []string{"--url", "http://127.0.0.1:8080/fhir"}},
		{name: "no connections", args: []string{"--connections", "0"}, wantErr: "--connections"},
		{name: "no rounds", args: []string{"--rounds", "0"}, wantErr: "--rounds"},
		{name: "too few patients", args: []string{"--patients", "19"}, wantErr: "--patients"},
		{name: "not a URL", args: []string{"--url", "127.0.0.1:8080"}, wantErr: "--url"},
		{name: "no audit of a running server", args: []string{"--url", "http://127.0.0.1:8080/fhir", "--audit=false"}, wantErr: "--audit"},
		{name: "one request", args: []string{"--only", "search"}},
		{name: "two requests", args: []string{"--only", "read,metadata"}},
		{name: "an unknown request", args: []string{"--only", "read,write"}, wantErr: "--only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseBenchHTTPConfig(tt.args, io.Discard)
			checkUsage(t, err, tt.wantErr)
		})
	}
}

// TestBenchHTTP serves the API in process, loads it and measures each
// request against the floor once.
func TestBenchHTTP(t *testing.T) {
	var out, log bytes.Buffer
	profile := filepath.Join(t.TempDir(), "cpu.prof")
	err := run(t.Context(), []string{"bench", "http", "--patients", "25", "--rounds", "1", "--slice", "50ms", "--warmup", "0s", "--cpuprofile", profile},
		func(string) string { return "" }, &out, &log)
	if err != nil {
		t.Fatalf("bench http: %v\n%s", err, log.String())
	}
	for _, want := range []string{"audit trail on", "read", "search (20 Patients)", "metadata", "wrk -t2 -c8"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, out.String())
		}
	}
	if fi, err := os.Stat(profile); err != nil || fi.Size() == 0 {
		t.Errorf("--cpuprofile wrote no profile: %v", err)
	}

	out.Reset()
	err = run(t.Context(), []string{"bench", "http", "--patients", "25", "--rounds", "1", "--slice", "50ms", "--warmup", "0s", "--only", "search"},
		func(string) string { return "" }, &out, &log)
	if err != nil {
		t.Fatalf("bench http --only search: %v\n%s", err, log.String())
	}
	if !strings.Contains(out.String(), "search (20 Patients)") || strings.Contains(out.String(), "metadata") || strings.Contains(out.String(), "/Patient/") {
		t.Errorf("--only search measured other requests:\n%s", out.String())
	}
}
