package main

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"carefhir/cmd/carefhir/internal/searchbench"
)

func TestParseBenchSearchConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "defaults", args: nil},
		{name: "no data directory", args: []string{"--data", ""}, wantErr: "--data"},
		{name: "no clients", args: []string{"--clients", "0"}, wantErr: "--clients"},
		{name: "no duration", args: []string{"--duration", "0s"}, wantErr: "--duration"},
		{name: "too many patients", args: []string{"--patients", "900001"}, wantErr: "--patients"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseBenchSearchConfig(tt.args, env(nil), io.Discard)
			checkUsage(t, err, tt.wantErr)
		})
	}
}

// TestBenchSearch loads a small data set, measures every scenario on both
// sides and checks that each found what it searched for.
func TestBenchSearch(t *testing.T) {
	dir := t.TempDir()
	var out, log bytes.Buffer
	err := run(t.Context(), []string{"bench", "search", "--data", dir, "--patients", "30", "--duration", "50ms", "--sample", "10"},
		func(string) string { return "" }, &out, &log)
	if err != nil {
		t.Fatalf("bench search: %v\n%s", err, log.String())
	}
	if !strings.Contains(out.String(), "(30 patients)") {
		t.Errorf("report does not name the 30 patients loaded:\n%s", out.String())
	}
	for _, sc := range searchbench.Scenarios() {
		line := ""
		for l := range strings.Lines(out.String()) {
			if strings.HasPrefix(l, sc.Name+" ") {
				line = l
			}
		}
		fields := strings.Fields(strings.TrimPrefix(line, sc.Name))
		if len(fields) < 7 || fields[0] != "http" || fields[1] == "0" {
			t.Errorf("scenario %q: no HTTP measurement in %q", sc.Name, line)
			continue
		}
		// Every sampled patient has exactly one NHS number.
		if perPage := fields[5]; sc.Name == "NHS number" && perPage != "1.0" {
			t.Errorf("NHS number search found %s patients per search, want 1.0", perPage)
		}
	}

	// A second run measures the loaded data as it is.
	out.Reset()
	log.Reset()
	if err := run(t.Context(), []string{"bench", "search", "--data", dir, "--patients", "5", "--duration", "20ms"},
		func(string) string { return "" }, &out, &log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "(30 patients)") || strings.Contains(log.String(), "loading") {
		t.Errorf("second run reloaded or miscounted:\n%s\n%s", out.String(), log.String())
	}
}
