package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"carefhir/care/synth"
	"carefhir/server"
	"carefhir/store"
	"carefhir/store/sqlite"
)

func TestParseSynthConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(*synthConfig) bool
	}{
		{name: "defaults", args: []string{"--out", "x"},
			check: func(c *synthConfig) bool {
				return c.Patients == 1000 && c.Seed == 1 && c.Clients == 8 && c.today.Equal(synth.DefaultToday) && c.Sync == "normal"
			}},
		{name: "fsync per commit", args: []string{"--data", "x", "--sync", "full"},
			check: func(c *synthConfig) bool { return c.Data == "x" && c.Sync == "full" }},
		{name: "unknown sync", args: []string{"--data", "x", "--sync", "never"}, wantErr: "--sync"},
		{name: "all flags", args: []string{"--patients", "50", "--seed", "18446744073709551615", "--practice-size", "10",
			"--today", "2025-07-01", "--url", "http://127.0.0.1:1/fhir", "--clients", "3"},
			check: func(c *synthConfig) bool {
				return c.Patients == 50 && c.Seed == 1<<64-1 && c.PracticeSize == 10 && c.today.Format("2006-01-02") == "2025-07-01" && c.Clients == 3
			}},
		{name: "no destination", args: nil, wantErr: "exactly one of --out, --url and --data"},
		{name: "two destinations", args: []string{"--out", "x", "--data", "y"}, wantErr: "exactly one of"},
		{name: "no patients", args: []string{"--out", "x", "--patients", "0"}, wantErr: "--patients"},
		{name: "too many patients", args: []string{"--out", "x", "--patients", "900001"}, wantErr: "--patients"},
		{name: "no clients", args: []string{"--out", "x", "--clients", "0"}, wantErr: "--clients"},
		{name: "not a URL", args: []string{"--url", "localhost:8080"}, wantErr: "--url"},
		{name: "bad date", args: []string{"--out", "x", "--today", "5/1/2026"}, wantErr: "--today"},
		{name: "positional argument", args: []string{"--out", "x", "extra"}, wantErr: "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseSynthConfig(tt.args, env(nil), io.Discard)
			checkUsage(t, err, tt.wantErr)
			if tt.wantErr != "" {
				return
			}
			if !tt.check(cfg) {
				t.Errorf("config %+v", cfg)
			}
		})
	}
}

// runSynthCommand runs the synth command line and returns its stdout.
func runSynthCommand(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut strings.Builder
	if err := run(context.Background(), append([]string{"synth"}, args...), env(nil), &out, &errOut); err != nil {
		t.Fatalf("synth %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

func TestSynthOut(t *testing.T) {
	dir := t.TempDir()
	opts := synth.Options{Patients: 30, Seed: 3}
	summary := runSynthCommand(t, "--patients", "30", "--seed", "3", "--out", dir)
	want, err := synth.All(opts)
	if err != nil {
		t.Fatal(err)
	}
	byType := map[string][][]byte{}
	for _, e := range want {
		byType[e.Type] = append(byType[e.Type], e.JSON)
	}
	for typ, lines := range byType {
		f, err := os.Open(filepath.Join(dir, typ+".ndjson"))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		i := 0
		for ; sc.Scan(); i++ {
			if i >= len(lines) || !bytes.Equal(sc.Bytes(), lines[i]) {
				t.Errorf("%s.ndjson line %d differs from the generated %s", typ, i+1, typ)
				break
			}
		}
		f.Close()
		if i != len(lines) {
			t.Errorf("%s.ndjson has %d lines, want %d", typ, i, len(lines))
		}
	}
	if !strings.Contains(summary, "30 patients") || !strings.Contains(summary, "Patient") {
		t.Errorf("summary:\n%s", summary)
	}
	// A second run replaces the files rather than appending.
	runSynthCommand(t, "--patients", "30", "--seed", "3", "--out", dir)
	b, err := os.ReadFile(filepath.Join(dir, "Patient.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(b, []byte("\n")); n != 30 {
		t.Errorf("Patient.ndjson has %d lines after a second run, want 30", n)
	}
}

// firstOf returns the first generated resource of a type.
func firstOf(t *testing.T, entries []synth.Entry, typ string) synth.Entry {
	t.Helper()
	for _, e := range entries {
		if e.Type == typ {
			return e
		}
	}
	t.Fatalf("no %s generated", typ)
	return synth.Entry{}
}

// nhsNumber returns the NHS number of a Patient.
func nhsNumber(t *testing.T, patient []byte) string {
	t.Helper()
	var p struct {
		Identifier []struct{ System, Value string }
	}
	if err := json.Unmarshal(patient, &p); err != nil {
		t.Fatal(err)
	}
	for _, id := range p.Identifier {
		if id.System == synth.SystemNHSNumber {
			return id.Value
		}
	}
	t.Fatalf("no NHS number in %s", patient)
	return ""
}

func TestSynthURL(t *testing.T) {
	st, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.New(server.Config{Store: st, SoftwareVersion: "test"}))
	t.Cleanup(func() {
		srv.Close()
		st.Close()
	})
	args := []string{"--patients", "25", "--seed", "8", "--practice-size", "10", "--url", srv.URL + "/fhir", "--clients", "4"}
	runSynthCommand(t, args...)
	entries, err := synth.All(synth.Options{Patients: 25, Seed: 8, PracticeSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) map[string]any {
		t.Helper()
		resp, err := http.Get(srv.URL + "/fhir/" + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var doc map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s, %v", path, resp.Status, err)
		}
		return doc
	}
	for _, typ := range []string{"Patient", "Organization", "Practitioner", "CarePlan", "Appointment", "QuestionnaireResponse"} {
		e := firstOf(t, entries, typ)
		doc := get(typ + "/" + e.ID)
		if doc["id"] != e.ID {
			t.Errorf("GET %s/%s: id %v", typ, e.ID, doc["id"])
		}
	}
	patient := firstOf(t, entries, "Patient")
	doc := get("Patient/" + patient.ID)
	if got := doc["identifier"].([]any)[0].(map[string]any)["value"]; got != nhsNumber(t, patient.JSON) {
		t.Errorf("Patient/%s has NHS number %v, want %s", patient.ID, got, nhsNumber(t, patient.JSON))
	}
	// Every resource is stored, and a second run of the same records
	// neither adds copies nor, their content being the same, versions.
	for _, e := range entries {
		if v, err := st.Read(context.Background(), e.Type, e.ID); err != nil || v.VersionID != 1 {
			t.Fatalf("%s/%s: %v, %v; want version 1", e.Type, e.ID, v, err)
		}
	}
	runSynthCommand(t, args...)
	for _, e := range entries {
		if v, err := st.Read(context.Background(), e.Type, e.ID); err != nil || v.VersionID != 1 {
			t.Fatalf("%s/%s after a second run: %v, %v; want version 1, unchanged", e.Type, e.ID, v, err)
		}
	}
}

func TestSynthData(t *testing.T) {
	dir := t.TempDir()
	runSynthCommand(t, "--patients", "20", "--seed", "4", "--data", dir, "--clients", "3")
	entries, err := synth.All(synth.Options{Patients: 20, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	for _, e := range entries {
		if _, err := st.Read(ctx, e.Type, e.ID); err != nil {
			t.Fatalf("%s/%s: %v", e.Type, e.ID, err)
		}
	}
	// The identifiers are indexed: the NHS number finds the patient.
	patient := firstOf(t, entries, "Patient")
	found, err := st.Search(ctx, store.Query{Type: "Patient", Where: []store.Clause{{Param: "identifier",
		Tokens: []store.TokenMatch{{System: synth.SystemNHSNumber, Code: nhsNumber(t, patient.JSON)}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].ID != patient.ID {
		t.Errorf("search by NHS number found %d patients, want %s", len(found), patient.ID)
	}
}

func TestSynthURLFailures(t *testing.T) {
	tests := []struct {
		name         string
		status       int
		wantErr      string
		wantAttempts int64 // for the first resource
	}{
		{name: "refused", status: http.StatusBadRequest, wantErr: "400 Bad Request", wantAttempts: 1},
		{name: "busy", status: http.StatusServiceUnavailable, wantErr: "503 Service Unavailable", wantAttempts: maxAttempts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var attempts atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/fhir/Organization/org-0001" {
					attempts.Add(1)
				}
				http.Error(w, "no", tt.status)
			}))
			defer srv.Close()
			err := run(context.Background(), []string{"synth", "--patients", "5", "--url", srv.URL + "/fhir", "--clients", "1"},
				env(nil), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err, io.Discard) != 1 {
				t.Fatalf("error %v, want one with %q", err, tt.wantErr)
			}
			if got := attempts.Load(); got != tt.wantAttempts {
				t.Errorf("%d attempts at the first resource, want %d", got, tt.wantAttempts)
			}
		})
	}
}

// checkUsage fails t unless err is a usage error (exit status 2) that
// mentions want, or, with want empty, unless err is nil.
func checkUsage(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), want) || exitCode(err, io.Discard) != 2 {
		t.Fatalf("error %v, want a usage error mentioning %q", err, want)
	}
}

// A transaction the server could not take (503) is sent again, up to
// maxAttempts times, and one it refused (400) is not.
func TestLoaderTransactionRetries(t *testing.T) {
	tests := []struct {
		name         string
		answers      []int
		wantErr      string
		wantAttempts int64
	}{
		{name: "busy, then taken", answers: []int{503, 503, 200}, wantAttempts: 3},
		{name: "busy throughout", answers: []int{503, 503, 503, 503, 503}, wantErr: "503 Service Unavailable", wantAttempts: maxAttempts},
		{name: "refused", answers: []int{400, 200}, wantErr: "400 Bad Request", wantAttempts: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var attempts atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var b struct{ Type string }
				if r.Method != http.MethodPost || r.URL.Path != "/fhir" || json.NewDecoder(r.Body).Decode(&b) != nil || b.Type != "transaction" {
					t.Errorf("%s %s: not a transaction posted to the base", r.Method, r.URL.Path)
				}
				status := tt.answers[attempts.Add(1)-1]
				w.WriteHeader(status)
				io.WriteString(w, `{"resourceType":"Bundle","type":"transaction-response"}`)
			}))
			defer srv.Close()
			l := &loader{client: newLoadClient(http.DefaultTransport, 1), base: srv.URL + "/fhir"}
			err := l.transact(t.Context(), []synth.Entry{{Type: "Patient", ID: "p1", JSON: []byte(`{"resourceType":"Patient","id":"p1"}`)}})
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if got := attempts.Load(); got != tt.wantAttempts {
				t.Errorf("%d attempts, want %d", got, tt.wantAttempts)
			}
		})
	}
}
