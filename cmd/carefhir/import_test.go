package main

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"carefhir/server"
	"carefhir/store/sqlite"
)

func TestParseImportConfig(t *testing.T) {
	env := func(string) string { return "" }
	for _, tt := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"a.ndjson"}, true},
		{[]string{"--url", "http://h:1/fhir", "a.ndjson", "b.ndjson"}, true},
		{nil, false},
		{[]string{"--format", "csv", "a.ndjson"}, false},
		{[]string{"--url", "nope", "a.ndjson"}, false},
	} {
		_, err := parseImportConfig(tt.args, env, &bytes.Buffer{})
		if (err == nil) != tt.ok {
			t.Errorf("%v: err %v", tt.args, err)
		}
	}
}

// TestImportCommand loads an NDJSON file into a served API and reports
// what it refused.
func TestImportCommand(t *testing.T) {
	st, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.New(server.Config{Store: st, SoftwareVersion: "test"}))
	t.Cleanup(func() {
		srv.Close()
		st.Close()
	})
	base := srv.URL + "/fhir"
	file := filepath.Join(t.TempDir(), "Patient.ndjson")
	os.WriteFile(file, []byte(`{"resourceType":"Patient","id":"a"}`+"\n"+`{"resourceType":"Patient","id":"b","colour":"blue"}`+"\n"), 0o600)
	var out bytes.Buffer
	err = runImport(t.Context(), &importConfig{URL: base, Format: "ndjson", Files: []string{file}}, &out)
	if err == nil || !strings.Contains(out.String(), "loaded 1 resources") || !strings.Contains(out.String(), "refused Patient.ndjson:2: 400") {
		t.Errorf("import: %v\n%s", err, out.String())
	}
}
