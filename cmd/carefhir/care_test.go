package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"carefhir/care"
	"carefhir/operation"
	"carefhir/server"
	"carefhir/server/access"
	"carefhir/store/sqlite"
)

func TestLoadCare(t *testing.T) {
	dir := t.TempDir()
	wording := filepath.Join(dir, "wording.txt")
	lines := strings.Repeat("A licensed statement\n", 13)
	codes := filepath.Join(dir, "codes.json")
	for name, body := range map[string]string{wording: lines, codes: `{"pamLevel":"111"}`} {
		if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	co, err := loadCare(careFlags{PAMWording: wording, PAMCalibration: "../../care/testdata/calibration-synthetic.csv", CareCodes: codes}, "", server.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defs, err := co.Definitions()
	if err != nil || !strings.Contains(string(defs[0]), "A licensed statement") {
		t.Errorf("the Questionnaire does not carry the wording: %v", err)
	}
	if err := os.WriteFile(wording, []byte("one line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadCare(careFlags{PAMWording: wording}, "", server.Limits{}); err == nil || !strings.Contains(err.Error(), "--pam-wording") {
		t.Errorf("a wording file of one statement: %v", err)
	}
	if _, err := loadCare(careFlags{CareCodes: wording}, "", server.Limits{}); err == nil || !strings.Contains(err.Error(), "--care-codes") {
		t.Errorf("codes that are not JSON: %v", err)
	}
	if err := os.WriteFile(codes, []byte(`{"pamLevel":"111","careCoordinater":"222"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadCare(careFlags{CareCodes: codes}, "", server.Limits{}); err == nil || !strings.Contains(err.Error(), "--care-codes") || !strings.Contains(err.Error(), `"careCoordinater"`) {
		t.Errorf("codes with a misspelt key: %v, want an error naming --care-codes and the key", err)
	}
	// An empty code would search every SNOMED CT code; a comma, two.
	for _, body := range []string{`{"pamScore":""}`, `{"pamScore":"925431000000109,713634000"}`} {
		if err := os.WriteFile(codes, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := loadCare(careFlags{CareCodes: codes}, "", server.Limits{}); err == nil || !strings.Contains(err.Error(), "--care-codes") || !strings.Contains(err.Error(), "pamScore") {
			t.Errorf("codes %s: %v, want an error naming --care-codes and pamScore", body, err)
		}
	}
}

// TestRemindersEvery: the server creates the reminders due on its own
// schedule, acting for itself.
func TestRemindersEvery(t *testing.T) {
	st, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	co, err := care.New(care.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	auditor := access.NewAuditor(st, access.AuditConfig{})
	srv := httptest.NewServer(server.New(server.Config{Store: st, Operations: co.Operations(), Hooks: co.Hooks(), Auditor: auditor,
		Attach: []func(operation.Store){runReminders(ctx, co, 20*time.Millisecond, auditor, slog.New(slog.DiscardHandler))}}))
	t.Cleanup(func() {
		cancel()
		srv.Close()
		auditor.Close()
		st.Close()
	})
	put := func(path, body string) {
		t.Helper()
		req, _ := http.NewRequest("PUT", srv.URL+"/fhir/"+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/fhir+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode >= 300 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("PUT %s: %v %s", path, err, b)
		}
		resp.Body.Close()
	}
	put("Patient/p", `{"resourceType":"Patient","id":"p"}`)
	put("Goal/g", `{"resourceType":"Goal","id":"g","lifecycleStatus":"active","description":{"text":"Get out more"},"subject":{"reference":"Patient/p"}}`)
	due := time.Now().UTC().Format(time.DateOnly)
	put("CarePlan/cp", `{"resourceType":"CarePlan","id":"cp","meta":{"profile":["`+care.PCSPProfileURL+`"]},
		"extension":[{"url":"`+care.ReviewDateURL+`","valueDate":"`+due+`"}],"status":"active","intent":"plan",
		"category":[{"coding":[{"system":"`+care.SystemCarePlanCategory+`","code":"pcsp"}]}],"subject":{"reference":"Patient/p"},
		"period":{"start":"2026-01-01"},"author":{"reference":"Patient/p"},"contributor":[{"reference":"Patient/p"}],"goal":[{"reference":"Goal/g"}]}`)
	for deadline := time.Now().Add(30 * time.Second); ; {
		n := reviewReminders(t, srv.URL)
		if n == 1 {
			break
		}
		if n > 1 {
			t.Fatalf("%d reminders for one review", n)
		}
		if time.Now().After(deadline) {
			t.Fatal("no reminder created by the periodic run")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The run read the patient's plan and wrote the reminder: the audit
	// trail names the patient, the server's principal and the operation.
	auditor.Flush()
	resp, err := http.Get(srv.URL + "/fhir/AuditEvent?patient=Patient/p&subtype=" + url.QueryEscape("$generate-reminders"))
	if err != nil {
		t.Fatal(err)
	}
	var events struct {
		Entry []struct {
			Resource struct {
				Agent []struct {
					Who struct{ Identifier struct{ Value string } }
				}
				Entity []struct {
					What struct{ Reference string }
				}
			}
		}
	}
	json.NewDecoder(resp.Body).Decode(&events)
	resp.Body.Close()
	if len(events.Entry) == 0 {
		t.Fatal("no AuditEvent of the reminders run about Patient/p")
	}
	ev := events.Entry[0].Resource
	var named []string
	for _, e := range ev.Entity {
		named = append(named, e.What.Reference)
	}
	if !slices.Contains(named, "CarePlan/cp/_history/1") || len(ev.Agent) == 0 || ev.Agent[0].Who.Identifier.Value != "reminders" {
		t.Errorf("AuditEvent of the run: agent %+v, entities %v; want the reminders principal and CarePlan/cp", ev.Agent, named)
	}
}

// TestRemindersUKDate: a periodic run is as of today in the UK by the
// clock care coordination is configured with, which at
// 23:30 UTC on a summer night is already the next day: a review due 14
// days after that day is reminded of.
func TestRemindersUKDate(t *testing.T) {
	st, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	night := time.Date(2099, 7, 1, 23, 30, 0, 0, time.UTC) // 00:30 on 2 July in London
	co, err := care.New(care.Config{Now: func() time.Time { return night }})
	if err != nil {
		t.Fatal(err)
	}
	var attached operation.Store
	srv := httptest.NewServer(server.New(server.Config{Store: st, Operations: co.Operations(), Hooks: co.Hooks(),
		Attach: []func(operation.Store){func(s operation.Store) { attached = s }}}))
	t.Cleanup(func() {
		srv.Close()
		st.Close()
	})
	plan := `{"resourceType":"CarePlan","id":"cp","meta":{"profile":["` + care.PCSPProfileURL + `"]},
		"extension":[{"url":"` + care.ReviewDateURL + `","valueDate":"2099-07-16"}],"status":"active","intent":"plan",
		"category":[{"coding":[{"system":"` + care.SystemCarePlanCategory + `","code":"pcsp"}]}],"subject":{"reference":"Patient/p"},
		"period":{"start":"2026-01-01"},"author":{"reference":"Patient/p"},"contributor":[{"reference":"Patient/p"}],"goal":[{"reference":"Goal/g"}]}`
	for _, w := range []struct{ path, body string }{
		{"Patient/p", `{"resourceType":"Patient","id":"p"}`},
		{"Goal/g", `{"resourceType":"Goal","id":"g","lifecycleStatus":"active","description":{"text":"Get out more"},"subject":{"reference":"Patient/p"}}`},
		{"CarePlan/cp", plan},
	} {
		req, _ := http.NewRequest("PUT", srv.URL+"/fhir/"+w.path, strings.NewReader(w.body))
		req.Header.Set("Content-Type", "application/fhir+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode >= 300 {
			t.Fatalf("PUT %s: %v %v", w.path, err, resp.Status)
		}
		resp.Body.Close()
	}

	remind(context.Background(), co, attached, nil, slog.New(slog.DiscardHandler))
	if n := reviewReminders(t, srv.URL); n != 1 {
		t.Errorf("%d reminders of the review due on 16 July, 14 days after 2 July in London; want 1", n)
	}
}

// reviewReminders returns how many Tasks the server at base holds about
// CarePlan/cp.
func reviewReminders(t *testing.T, base string) int {
	t.Helper()
	resp, err := http.Get(base + "/fhir/Task?focus=CarePlan/cp")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var bundle struct{ Entry []any }
	if err := json.NewDecoder(resp.Body).Decode(&bundle); err != nil {
		t.Fatal(err)
	}
	return len(bundle.Entry)
}
