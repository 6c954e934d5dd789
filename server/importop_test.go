package server_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"carefhir/mappers/importop"
	"carefhir/server"
	"carefhir/store"
)

// importPayloads are a payload of each format $import reads, with the
// query that names the format.
func importPayloads(t *testing.T) []struct{ query, contentType, body string } {
	t.Helper()
	read := func(name string) string {
		data, err := os.ReadFile("../mappers/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	gpc := strings.ReplaceAll(read("gpconnect/testdata/integration-adaptor-gp2gp/uat/input/TC4/9465700193_Birdi_full_20210119.json"), "1234567890", "9465700193")
	return []struct{ query, contentType, body string }{
		{"format=hl7v2", importop.HL7v2MediaType, read("hl7v2/testdata/uk/A28-register.hl7")},
		{"format=pds", "application/fhir+json", read("pds/testdata/sandbox-mocks/Patient.json")},
		{"format=csv&mapping=emis-patient-list", "text/csv", read("csv/testdata/synthetic/emis-patient-list.csv")},
		{"format=gpconnect", "application/fhir+json", gpc},
	}
}

func withImport(cfg *server.Config) { cfg.Operations = (&importop.Importer{}).Operations() }

// storedCounts are the numbers of resources of the types the imports
// write.
func storedCounts(t *testing.T, c *client, headers ...string) string {
	t.Helper()
	var s []string
	for _, typ := range []string{"Patient", "Organization", "Practitioner", "Observation", "Condition", "Encounter"} {
		s = append(s, fmt.Sprintf("%s=%v", typ, c.do("GET", "/"+typ+"?_summary=count", "", headers...).want(t, 200).json(t)["total"]))
	}
	return strings.Join(s, " ")
}

// TestImportOperation imports a payload of each format through $import,
// twice: the second round stores nothing new. Then it refuses a broken
// payload of each format with 400 naming where, storing nothing.
func TestImportOperation(t *testing.T) {
	payloads := importPayloads(t)
	eachEngine(t, func(t *testing.T, c *client) {
		var after string
		for round := 1; round <= 2; round++ {
			for _, p := range payloads {
				r := c.do("POST", "/$import?"+p.query, p.body, "Content-Type", p.contentType)
				if r.status != 200 {
					t.Fatalf("round %d, %s: %d %.1000s", round, p.query, r.status, r.body)
				}
				if p.query == "format=hl7v2" {
					if ct := r.header.Get("Content-Type"); ct != importop.HL7v2MediaType || !bytes.Contains(r.body, []byte("MSA|AA|")) {
						t.Errorf("the HL7 v2 import answered %s %q", ct, r.body)
					}
					continue
				}
				report := r.json(t)
				created := param(report, "created")["valueInteger"]
				if round == 1 && created == float64(0) || round == 2 && created != float64(0) {
					t.Errorf("round %d, %s: created %v", round, p.query, created)
				}
			}
			got := storedCounts(t, c)
			if round == 2 && got != after {
				t.Errorf("the second import changed the counts: %s, then %s", after, got)
			}
			after = got
		}
		for _, bad := range []struct{ query, contentType, body, where string }{
			{"format=csv&mapping=emis-patient-list", "text/csv", "Organisation,NHS Number,First Name,Surname,Date of Birth,Gender\nY12345,999 000 0018,Ann,Lee,not a date,F\n", "line 2"},
			{"format=pds", "application/fhir+json", strings.ReplaceAll(payloads[1].body, "9000000009", "9000000001"), "identifier"},
			// The practice's ODS code is named where the sender wrote it,
			// not at the entry of the transaction it would have made.
			{"format=pds", "application/fhir+json", strings.Replace(payloads[1].body, `"value": "Y12345"`, `"value": "y12345"`, 1), `"expression":["Patient.generalPractitioner[0].identifier.value"]`},
			{"format=hl7v2", importop.HL7v2MediaType, "this is not HL7", "MSA|AR|"},
			{"format=gpconnect", "text/csv", payloads[2].body, ""},
			{"format=xml", "text/plain", "x", "format"},
			// A misspelt parameter is refused rather than left out.
			{"format=pds&dryRun=true", "application/fhir+json", payloads[1].body, "name='dryRun'"},
		} {
			r := c.do("POST", "/$import?"+bad.query, bad.body, "Content-Type", bad.contentType)
			if r.status != 400 || !strings.Contains(string(r.body), bad.where) {
				t.Errorf("%s: %d %.600s, want 400 naming %q", bad.query, r.status, r.body, bad.where)
			}
		}
		if got := storedCounts(t, c); got != after {
			t.Errorf("refused imports changed the counts: %s, then %s", after, got)
		}
	}, withImport)
}

// TestImportByteOrderMark: a payload of each format saved with a UTF-8
// byte order mark first, as Windows editors save files, imports as the
// same payload without it. (The CSV file here is Windows-1252, which a
// byte order mark would say is UTF-8: mappers/csv tests its own.)
func TestImportByteOrderMark(t *testing.T) {
	payloads := importPayloads(t)
	eachEngine(t, func(t *testing.T, c *client) {
		for _, p := range payloads {
			if strings.HasPrefix(p.query, "format=csv") {
				continue
			}
			r := c.do("POST", "/$import?"+p.query, "\ufeff"+p.body, "Content-Type", p.contentType)
			if r.status != 200 || p.query == "format=hl7v2" && !bytes.Contains(r.body, []byte("MSA|AA|")) {
				t.Errorf("%s with a byte order mark: %d %.600s", p.query, r.status, r.body)
			}
		}
	}, withImport)
}

// TestImportNeedsWriteScopes imports a PDS record, which writes a Patient
// and its practice, with a token that may write Patients only: 403, and
// nothing stored.
func TestImportNeedsWriteScopes(t *testing.T) {
	body := importPayloads(t)[1].body
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), principals{
				"patients": {Subject: "patients", Scopes: mustScopes(t, "system/Patient.cruds")},
				"all":      {Subject: "all", Scopes: mustScopes(t, "system/Patient.cruds system/Organization.cruds system/Practitioner.cruds")},
			}, withImport)
			r := c.by("patients", "POST", "/$import?format=pds", body, "Content-Type", "application/fhir+json")
			if r.status != http.StatusForbidden {
				t.Fatalf("without a write scope on Organization: %d %.500s", r.status, r.body)
			}
			if n := c.by("admin", "GET", "/Patient?_summary=count", "").want(t, 200).json(t)["total"]; n != float64(0) {
				t.Errorf("%v Patients stored by a refused import", n)
			}
			c.by("all", "POST", "/$import?format=pds", body, "Content-Type", "application/fhir+json").want(t, 200)
			if n := c.by("admin", "GET", "/Patient?_summary=count", "").want(t, 200).json(t)["total"]; n != float64(1) {
				t.Errorf("%v Patients stored by an allowed import", n)
			}
		})
	}
}

// TestExportGP exports a patient's record as a collection Bundle (the
// restricted record without its address) and as coded-entries CSV, and an
// Appointment as a GP Connect booking naming the provider's ids.
func TestExportGP(t *testing.T) {
	sensitive, err := os.ReadFile("../mappers/pds/testdata/sandbox-mocks/Sensitive_Patient.json")
	if err != nil {
		t.Fatal(err)
	}
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("POST", "/$import?format=pds", string(sensitive)).want(t, 200)
		found := c.do("GET", "/Patient", "").want(t, 200).json(t)
		p := found["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
		pid := p["id"].(string)
		// PDS withholds where the person lives; a record told it since
		// keeps it, and must not export it.
		p["address"] = []any{map[string]any{"line": []any{"1 Hidden Lane"}, "postalCode": "LS1 1AA"}}
		meta := p["meta"].(map[string]any)
		delete(meta, "versionId")
		delete(meta, "lastUpdated")
		c.do("PUT", "/Patient/"+pid, toJSON(t, p)).want(t, 200)
		c.create("Observation", `{"resourceType":"Observation","status":"final","subject":{"reference":"Patient/`+pid+`"},
			"effectiveDateTime":"2026-11-03","code":{"coding":[{"system":"http://snomed.info/sct","code":"713017006","display":"Patient activation measure score"}]},
			"valueQuantity":{"value":61.2,"unit":"score"}}`)
		c.create("Goal", `{"resourceType":"Goal","lifecycleStatus":"active","subject":{"reference":"Patient/`+pid+`"},"description":{"text":"walk daily"}}`)

		b := c.do("GET", "/Patient/"+pid+"/$export-gp?format=bundle", "").want(t, 200).json(t)
		entries, _ := b["entry"].([]any)
		if b["type"] != "collection" || len(entries) != 3 {
			t.Fatalf("the record: %v", b)
		}
		// Bundle.entry.fullUrl is absolute: the server's base with the
		// resource's Type/id, against which the record's relative
		// references (Patient/id) resolve (R4 bundle.html).
		for _, e := range entries {
			e := e.(map[string]any)
			res := e["resource"].(map[string]any)
			if want := c.base + "/" + res["resourceType"].(string) + "/" + res["id"].(string); e["fullUrl"] != want {
				t.Errorf("an entry's fullUrl: %v, want %s", e["fullUrl"], want)
			}
		}
		if ep := entries[0].(map[string]any)["resource"].(map[string]any); ep["address"] != nil || strings.Contains(fmt.Sprint(b), "Hidden Lane") {
			t.Errorf("the restricted record was exported with where the person is: %v", ep)
		}
		r := c.do("GET", "/Patient/"+pid+"/$export-gp?format=csv", "").want(t, 200)
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") || !strings.Contains(string(r.body), "713017006") || !strings.Contains(string(r.body), "9000000025") {
			t.Errorf("the coded entries: %s %q", ct, r.body)
		}
		c.do("GET", "/Patient/nope/$export-gp?format=bundle", "").want(t, 404)
		c.do("GET", "/Patient/"+pid+"/$export-gp?format=pdf", "").want(t, 400)
		// A misspelt format would have answered the Bundle rather than the
		// CSV asked for; where an Appointment is booked says nothing of a
		// Patient's record.
		for q, name := range map[string]string{"formt=csv": "formt", "format=bundle&provider=" + url.QueryEscape("https://provider.example/fhir"): "provider"} {
			r := c.do("GET", "/Patient/"+pid+"/$export-gp?"+q, "").want(t, 400)
			if !strings.Contains(string(r.body), "name='"+name+"'") {
				t.Errorf("$export-gp?%s: %s, want an issue at %s", q, r.body, name)
			}
		}

		const provider = "https://provider.example/fhir"
		c.create("Organization", `{"resourceType":"Organization","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"U80001"}],"name":"Leeds PCN"}`)
		loc := c.create("Location", `{"resourceType":"Location","identifier":[{"system":"`+provider+`/Location","value":"1"}],"name":"Surgery"}`)
		pat := c.create("Patient", `{"resourceType":"Patient","identifier":[{"system":"`+provider+`/Patient","value":"2"}]}`)
		sched := c.create("Schedule", `{"resourceType":"Schedule","actor":[{"reference":"Location/`+loc["id"].(string)+`"}]}`)
		slot := c.create("Slot", `{"resourceType":"Slot","identifier":[{"system":"`+provider+`/Slot","value":"3"}],"schedule":{"reference":"Schedule/`+sched["id"].(string)+`"},
			"status":"free","start":"2026-12-10T10:00:00+00:00","end":"2026-12-10T10:10:00+00:00"}`)
		appt := c.create("Appointment", `{"resourceType":"Appointment","status":"proposed","start":"2026-12-10T10:00:00+00:00","end":"2026-12-10T10:10:00+00:00",
			"created":"2026-12-05","description":"Care plan review","slot":[{"reference":"Slot/`+slot["id"].(string)+`"}],
			"participant":[{"actor":{"reference":"Patient/`+pat["id"].(string)+`"},"status":"accepted"},{"actor":{"reference":"Location/`+loc["id"].(string)+`"},"status":"accepted"}]}`)
		path := "/Appointment/" + appt["id"].(string) + "/$export-gp?format=gpconnect&organization=U80001&provider=" + provider
		book := c.do("GET", path, "").want(t, 200).json(t)
		s := fmt.Sprint(book)
		for _, want := range []string{"Slot/3", "Patient/2", "Location/1", "booked", "U80001", "Care plan review"} {
			if !strings.Contains(s, want) {
				t.Errorf("the booking has no %s: %s", want, s)
			}
		}
		c.do("GET", "/Appointment/"+appt["id"].(string)+"/$export-gp?format=gpconnect&organization=U80001", "").want(t, 400)
		c.do("GET", path+"&organisation=U80001", "").want(t, 400)
	}, withImport)
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestImportCSVAgain imports a CSV report twice: the second import reports
// every record unchanged and writes no new version of any; a row changed
// since is then reported updated, and only its patient gets a version.
func TestImportCSVAgain(t *testing.T) {
	payload := importPayloads(t)[2]
	eachEngine(t, func(t *testing.T, c *client) {
		post := func(body string) map[string]any {
			t.Helper()
			return c.do("POST", "/$import?"+payload.query, body, "Content-Type", payload.contentType).want(t, 200).json(t)
		}
		outcomes := func(report map[string]any) map[string]string {
			got := map[string]string{}
			for _, p := range report["parameter"].([]any) {
				p := p.(map[string]any)
				if p["name"] != "record" {
					continue
				}
				parts := p["part"].([]any)
				ref := parts[1].(map[string]any)["valueReference"].(map[string]any)["reference"].(string)
				got[ref] = parts[0].(map[string]any)["valueCode"].(string)
			}
			return got
		}
		first := outcomes(post(payload.body))
		again := post(payload.body)
		for ref, outcome := range outcomes(again) {
			if outcome != "unchanged" || first[ref] == "" {
				t.Errorf("importing again: %s %s (first %q)", ref, outcome, first[ref])
			}
		}
		if again["parameter"].([]any)[2].(map[string]any)["valueInteger"] != float64(len(first)) {
			t.Errorf("importing again: %v", again["parameter"].([]any)[:3])
		}
		versions := func(ref string) float64 {
			return c.do("GET", "/"+ref+"/_history", "").want(t, 200).json(t)["total"].(float64)
		}
		var patients []string
		for ref := range first {
			if strings.HasPrefix(ref, "Patient/") {
				patients = append(patients, ref)
			}
			if n := versions(ref); n != 1 {
				t.Errorf("%s has %v versions after importing the same file twice", ref, n)
			}
		}
		changed := strings.Replace(payload.body, "Sarah,Ward", "Sara,Ward", 1)
		var updated []string
		for ref, outcome := range outcomes(post(changed)) {
			if outcome != "unchanged" {
				updated = append(updated, ref+" "+outcome)
			}
		}
		if len(updated) != 1 || !strings.HasSuffix(updated[0], " updated") || versions(strings.Fields(updated[0])[0]) != 2 {
			t.Errorf("after changing a first name: %v", updated)
		}
		if len(patients) < 2 {
			t.Errorf("the report names the patients %v", patients)
		}
	}, withImport)
}

// TestImportAgainUnchanged imports a PDS Patient and a GP Connect record
// twice: the second import reports every record unchanged and writes no
// version of anything.
func TestImportAgainUnchanged(t *testing.T) {
	payloads := importPayloads(t)
	for _, payload := range []struct{ query, contentType, body string }{payloads[1], payloads[3]} {
		t.Run(payload.query, func(t *testing.T) {
			eachEngine(t, func(t *testing.T, c *client) {
				c.do("POST", "/$import?"+payload.query, payload.body, "Content-Type", payload.contentType).want(t, 200)
				before := storedCounts(t, c)
				report := c.do("POST", "/$import?"+payload.query, payload.body, "Content-Type", payload.contentType).want(t, 200).json(t)
				records := 0
				for _, p := range report["parameter"].([]any) {
					p := p.(map[string]any)
					if p["name"] != "record" {
						continue
					}
					records++
					parts := p["part"].([]any)
					if outcome := parts[0].(map[string]any)["valueCode"]; outcome != "unchanged" {
						ref := parts[1].(map[string]any)["valueReference"].(map[string]any)["reference"]
						t.Errorf("importing again: %v %v", ref, outcome)
					}
				}
				if records == 0 {
					t.Fatalf("the report lists no records: %v", report)
				}
				if after := storedCounts(t, c); after != before {
					t.Errorf("importing again changed what is stored:\n%s\nthen\n%s", before, after)
				}
				history := c.do("GET", "/_history?_count=1000", "").want(t, 200).json(t)
				for _, e := range history["entry"].([]any) {
					if v := e.(map[string]any)["resource"].(map[string]any)["meta"].(map[string]any)["versionId"]; v != "1" {
						t.Errorf("%v is at version %v after importing the same payload twice", e.(map[string]any)["fullUrl"], v)
					}
				}
			}, withImport)
		})
	}
}

// TestImportHL7v2Once imports an HL7 v2 message twice: both are
// acknowledged AA, and the second is not applied again, since the first
// wrote its receipt (a Provenance) with the patient.
func TestImportHL7v2Once(t *testing.T) {
	payload := importPayloads(t)[0]
	eachEngine(t, func(t *testing.T, c *client) {
		for round := 1; round <= 2; round++ {
			r := c.do("POST", "/$import?"+payload.query, payload.body, "Content-Type", payload.contentType).want(t, 200)
			if !bytes.Contains(r.body, []byte("MSA|AA|MSG0001")) {
				t.Fatalf("round %d: %q", round, r.body)
			}
		}
		found := c.do("GET", "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018", "").want(t, 200).json(t)
		entries, _ := found["entry"].([]any)
		if len(entries) != 1 {
			t.Fatalf("%d patients", len(entries))
		}
		id := entries[0].(map[string]any)["resource"].(map[string]any)["id"].(string)
		if n := c.do("GET", "/Patient/"+id+"/_history", "").want(t, 200).json(t)["total"]; n != float64(1) {
			t.Errorf("the patient has %v versions: the message was applied again", n)
		}
		receipts := c.do("GET", "/Provenance?target=Patient/"+id, "").want(t, 200).json(t)
		if entries, _ := receipts["entry"].([]any); len(entries) != 1 {
			t.Errorf("receipts of the message: %v", receipts)
		}
	}, withImport)
}

// TestImportHL7v2ReceiptDeleted imports a message, deletes its receipt
// and the patient, and sends the message again: with no receipt held the
// message is applied again, not acknowledged AA with nothing stored.
func TestImportHL7v2ReceiptDeleted(t *testing.T) {
	payload := importPayloads(t)[0]
	const search = "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018"
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("POST", "/$import?"+payload.query, payload.body, "Content-Type", payload.contentType).want(t, 200)
		receipts, _ := c.do("GET", "/Provenance", "").want(t, 200).json(t)["entry"].([]any)
		if len(receipts) != 1 {
			t.Fatalf("%d receipts", len(receipts))
		}
		receipt := receipts[0].(map[string]any)["resource"].(map[string]any)["id"].(string)
		c.do("DELETE", "/Provenance/"+receipt, "").want(t, 204)
		c.do("DELETE", "/Patient/"+storedOne(t, c, search)["id"].(string), "").want(t, 204)

		r := c.do("POST", "/$import?"+payload.query, payload.body, "Content-Type", payload.contentType).want(t, 200)
		if !bytes.Contains(r.body, []byte("MSA|AA|MSG0001")) {
			t.Fatalf("sent again: %q", r.body)
		}
		if p := storedOne(t, c, search); p["id"] == nil {
			t.Errorf("the patient was not stored again: %v", p)
		}
		c.do("GET", "/Provenance/"+receipt, "").want(t, 200)
	}, withImport)
}

// TestImportCSVRefusedWhole imports a CSV report whose last row, after
// several batches of good ones, has a date that is not one: 400 naming
// the line, and none of the rows before it stored.
func TestImportCSVRefusedWhole(t *testing.T) {
	const rows = 450
	body := patientList(rows) + "Y12345,999 000 0018,Ann,Lee,not a date,F\n"
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("POST", "/$import?format=csv&mapping=emis-patient-list", body, "Content-Type", "text/csv")
		if r.status != 400 || !strings.Contains(string(r.body), fmt.Sprintf("line %d", rows+2)) {
			t.Errorf("%d %.600s, want 400 naming line %d", r.status, r.body, rows+2)
		}
		if got := storedCounts(t, c); got != "Patient=0 Organization=0 Practitioner=0 Observation=0 Condition=0 Encounter=0" {
			t.Errorf("a refused import stored %s", got)
		}
	}, withImport)
}

// patientList is an EMIS patient list of n rows, each a patient of its own
// with a valid NHS number.
func patientList(n int) string {
	var b strings.Builder
	b.WriteString("Organisation,NHS Number,First Name,Surname,Date of Birth,Gender\n")
	for base, rows := 400_000_000, 0; rows < n; base++ {
		digits := fmt.Sprintf("%09d", base)
		sum := 0
		for i, c := range digits {
			sum += int(c-'0') * (10 - i)
		}
		check := (11 - sum%11) % 11
		if check == 10 {
			continue
		}
		rows++
		fmt.Fprintf(&b, "Y12345,%s%d,Ann,Lee,12-Mar-1948,F\n", digits, check)
	}
	return b.String()
}

// TestImportCSVOverLimit streams a CSV report of unknown length past the
// server's body limit, after a batch of its rows was applied: 413, and
// nothing stored.
func TestImportCSVOverLimit(t *testing.T) {
	body := patientList(450)
	eachEngine(t, func(t *testing.T, c *client) {
		// Wrapped, the body's length is unknown: it is sent chunked and
		// the limit is met while it is read.
		req, err := http.NewRequest("POST", c.base+"/$import?format=csv&mapping=emis-patient-list", struct{ io.Reader }{strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "text/csv")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("%d %.600s, want 413", resp.StatusCode, out)
		}
		if got := storedCounts(t, c); got != "Patient=0 Organization=0 Practitioner=0 Observation=0 Condition=0 Encounter=0" {
			t.Errorf("an import over the limit stored %s", got)
		}
	}, withImport, func(cfg *server.Config) { cfg.MaxBodyBytes = 12 << 10 })
}

// gpcRecord is a GP Connect structured record (STU3) of a patient at
// practice A82038 and the given resources, which refer to the patient as
// Patient/p.
func gpcRecord(resources ...string) string {
	entries := []string{
		`{"resource":{"resourceType":"Patient","id":"p","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9690937286"}],"managingOrganization":{"reference":"Organization/o"}}}`,
		`{"resource":{"resourceType":"Organization","id":"o","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"A82038"}],"name":"Temple Sowerby"}}`,
	}
	for _, r := range resources {
		entries = append(entries, `{"resource":`+r+`}`)
	}
	return `{"resourceType":"Bundle","type":"collection","entry":[` + strings.Join(entries, ",") + `]}`
}

// storedOne returns the one resource a search finds.
func storedOne(t *testing.T, c *client, search string) map[string]any {
	t.Helper()
	found := c.do("GET", "/"+search, "").want(t, 200).json(t)
	entries, _ := found["entry"].([]any)
	if len(entries) != 1 {
		t.Fatalf("%s finds %d resources, want 1", search, len(entries))
	}
	return entries[0].(map[string]any)["resource"].(map[string]any)
}

// TestImportGPConnectNotGiven imports a GP Connect vaccination recorded as
// not given, with the status completed GP Connect always sends: it is
// stored not-done, with the reason it was not given.
func TestImportGPConnectNotGiven(t *testing.T) {
	record := gpcRecord(`{"resourceType":"Immunization","id":"i","status":"completed","notGiven":true,"primarySource":true,"date":"2021-03-01",
		"vaccineCode":{"coding":[{"system":"http://snomed.info/sct","code":"1324681000000101"}]},"patient":{"reference":"Patient/p"},
		"explanation":{"reasonNotGiven":[{"text":"Patient declined"}]}}`)
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("POST", "/$import?format=gpconnect", record, "Content-Type", "application/fhir+json").want(t, 200)
		imm := storedOne(t, c, "Immunization")
		if imm["status"] != "not-done" || toJSON(t, imm["statusReason"]) != `{"text":"Patient declined"}` {
			t.Errorf("stored status %v, reason %s", imm["status"], toJSON(t, imm["statusReason"]))
		}
		if n := c.do("GET", "/Immunization?status=completed&_summary=count", "").want(t, 200).json(t)["total"]; n != float64(0) {
			t.Errorf("%v vaccinations not given are found as completed", n)
		}
	}, withImport)
}

// TestImportGPConnectTaken imports GP Connect medication statements: one
// the patient is not taking (taken n) is stored not-taken; one with the unk
// every GP Connect provider sends keeps its status, and the report says so
// as information.
func TestImportGPConnectTaken(t *testing.T) {
	record := gpcRecord(`{"resourceType":"MedicationStatement","id":"n","status":"completed","taken":"n","subject":{"reference":"Patient/p"},
		"medicationCodeableConcept":{"text":"Salbutamol"},"reasonNotTaken":[{"text":"Side effects"}]}`,
		`{"resourceType":"MedicationStatement","id":"u","status":"active","taken":"unk","subject":{"reference":"Patient/p"},
		"medicationCodeableConcept":{"text":"Aspirin"}}`)
	eachEngine(t, func(t *testing.T, c *client) {
		report := c.do("POST", "/$import?format=gpconnect", record, "Content-Type", "application/fhir+json").want(t, 200)
		if !strings.Contains(string(report.body), `{"name":"severity","valueCode":"information"},{"name":"location","valueString":"Bundle.entry[3].resource.taken"}`) {
			t.Errorf("the report does not give unk as information: %s", report.body)
		}
		ms := storedOne(t, c, "MedicationStatement?status=not-taken")
		if toJSON(t, ms["medicationCodeableConcept"]) != `{"text":"Salbutamol"}` || toJSON(t, ms["statusReason"]) != `[{"text":"Side effects"}]` {
			t.Errorf("stored as not taken: %s", toJSON(t, ms))
		}
		if ms := storedOne(t, c, "MedicationStatement?status=active"); toJSON(t, ms["medicationCodeableConcept"]) != `{"text":"Aspirin"}` {
			t.Errorf("stored active: %s", toJSON(t, ms))
		}
	}, withImport)
}

// TestImportGPConnectCodeSystems imports GP Connect conditions categorised
// in the STU3 system and in CareConnect's copy of it, and a List ordered
// in the STU3 list-order system: each is found by a search on the system
// R4 defines.
func TestImportGPConnectCodeSystems(t *testing.T) {
	record := gpcRecord(`{"resourceType":"Condition","id":"c1","clinicalStatus":"active","subject":{"reference":"Patient/p"},"code":{"text":"Asthma"},
		"category":[{"coding":[{"system":"http://hl7.org/fhir/condition-category","code":"problem-list-item"}]}]}`,
		`{"resourceType":"Condition","id":"c2","clinicalStatus":"active","subject":{"reference":"Patient/p"},"code":{"text":"Eczema"},
		"category":[{"coding":[{"system":"https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-ConditionCategory-1","code":"problem-list-item"}]}]}`,
		`{"resourceType":"List","status":"current","mode":"snapshot","subject":{"reference":"Patient/p"},"title":"Problems",
		"orderedBy":{"coding":[{"system":"http://hl7.org/fhir/list-order","code":"event-date"}]}}`)
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("POST", "/$import?format=gpconnect", record, "Content-Type", "application/fhir+json").want(t, 200)
		search := "/Condition?category=http://terminology.hl7.org/CodeSystem/condition-category|problem-list-item&_summary=count"
		if n := c.do("GET", search, "").want(t, 200).json(t)["total"]; n != float64(2) {
			t.Errorf("%v conditions found in R4's condition-category, want 2", n)
		}
		list := storedOne(t, c, "List")
		if got := toJSON(t, list["orderedBy"]); got != `{"coding":[{"code":"event-date","system":"http://terminology.hl7.org/CodeSystem/list-order"}]}` {
			t.Errorf("List.orderedBy %s", got)
		}
	}, withImport)
}

// TestImportHL7v2Merges imports A40 messages of two pairs through $import:
// two records merged into one survivor, which keeps a replaces link to
// each; and a chain, a record merged away then named as the survivor of
// the second pair, which stays inactive and replaced, the ACK warning so.
func TestImportHL7v2Merges(t *testing.T) {
	const msh = "MSH|^~\\&|PAS|RXX|CF|PCN|20260101120000||ADT^A40^ADT_A39|%s|P|2.5\rEVN|A40|20260101\r"
	pair := func(n int, survivor, merged string) string {
		return fmt.Sprintf("PID|%d||%s^^^NHS^NH||PAIR^ONE||19800101|M\rMRG|%s^^^NHS^NH\r", n, survivor, merged)
	}
	eachEngine(t, func(t *testing.T, c *client) {
		// outcome gives a stored Patient's active flag and links, each as
		// its type and the NHS number of the Patient it points at.
		outcome := func(nhs string) string {
			p := storedOne(t, c, "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|"+nhs)
			s := fmt.Sprint(p["active"])
			links, _ := p["link"].([]any)
			for _, l := range links {
				l := l.(map[string]any)
				other := c.do("GET", "/"+l["other"].(map[string]any)["reference"].(string), "").want(t, 200).json(t)
				s += ", " + l["type"].(string) + " " + other["identifier"].([]any)[0].(map[string]any)["value"].(string)
			}
			return s
		}
		for _, tt := range []struct {
			control, pairs string
			want           map[string]string
			ack            string
		}{
			{"G6", pair(1, "9434760119", "9434760127") + pair(2, "9434760119", "9434760089"), map[string]string{
				"9434760119": "<nil>, replaces 9434760127, replaces 9434760089",
				"9434760127": "false, replaced-by 9434760119",
				"9434760089": "false, replaced-by 9434760119",
			}, "\rMSA|AA|G6\r"},
			{"G7", pair(1, "9434760003", "9434760011") + pair(2, "9434760011", "9434760038"), map[string]string{
				"9434760003": "<nil>, replaces 9434760011",
				"9434760011": "false, replaced-by 9434760003, replaces 9434760038",
				"9434760038": "false, replaced-by 9434760011",
			}, "\rMSA|AA|G7\rERR||PID^2^3|102^Data type error^HL70357|W||||pair 2 merges 9434760038 into 9434760011, which an earlier pair merged into 9434760003"},
		} {
			ack := c.do("POST", "/$import?format=hl7v2", fmt.Sprintf(msh, tt.control)+tt.pairs, "Content-Type", importop.HL7v2MediaType).want(t, 200)
			if !strings.Contains(string(ack.body), tt.ack) {
				t.Errorf("%s: ack %q, want %q", tt.control, ack.body, tt.ack)
			}
			for nhs, want := range tt.want {
				if got := outcome(nhs); got != want {
					t.Errorf("%s: %s is %s, want %s", tt.control, nhs, got, want)
				}
			}
		}
	}, withImport)
}

// TestImportKeepsMerges imports an A40 merging one record into another,
// then an A28 and a CSV row for the record merged away: each is applied
// with a warning (an ERR of severity W in the AA; an issue in the CSV
// report), and the record stays inactive and replaced by the survivor.
func TestImportKeepsMerges(t *testing.T) {
	const survivor, merged = "9434760046", "9434760054"
	merge := "MSH|^~\\&|PAS|RXX|CF|PCN|20260101120000||ADT^A40^ADT_A39|K1|P|2.5\rEVN|A40|20260101\r" +
		"PID|1||" + survivor + "^^^NHS^NH||KEEP^ONE||19800101|M\rMRG|" + merged + "^^^NHS^NH\r"
	update := "MSH|^~\\&|PAS|RXX|CF|PCN|20260102120000||ADT^A28^ADT_A05|K2|P|2.5\rEVN|A28|20260102\r" +
		"PID|1||" + merged + "^^^NHS^NH||KEEP^TWO||19800101|M\r"
	csvRow := "Organisation,NHS Number,First Name,Surname,Date of Birth,Gender\nY12345," + merged + ",Three,Keep,01-Jan-1980,M\n"
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("POST", "/$import?format=hl7v2", merge, "Content-Type", importop.HL7v2MediaType).want(t, 200)
		kept := func(step, given string) {
			t.Helper()
			p := storedOne(t, c, "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|"+merged)
			links, _ := p["link"].([]any)
			if p["active"] != false || len(links) != 1 || links[0].(map[string]any)["type"] != "replaced-by" {
				t.Errorf("after %s the merged record is %s", step, toJSON(t, p))
			}
			if got := toJSON(t, p["name"]); !strings.Contains(got, given) {
				t.Errorf("after %s the merged record's name is %s, want the update's", step, got)
			}
		}
		ack := c.do("POST", "/$import?format=hl7v2", update, "Content-Type", importop.HL7v2MediaType).want(t, 200)
		if !bytes.Contains(ack.body, []byte("\rMSA|AA|K2\rERR||PID^1^3|102^Data type error^HL70357|W||||the record "+merged+" was merged into Patient/")) {
			t.Errorf("ack %q", ack.body)
		}
		kept("the A28", "TWO")
		report := c.do("POST", "/$import?format=csv&mapping=emis-patient-list", csvRow, "Content-Type", "text/csv").want(t, 200)
		if !strings.Contains(string(report.body), `"valueCode":"warning"},{"name":"location","valueString":"Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|`+merged+`"}`) {
			t.Errorf("report %s", report.body)
		}
		kept("the CSV row", "Three")
	}, withImport)
}

// TestImportKeepsRestriction imports a sensitive PDS record (labelled R),
// then an HL7 v2 update and a CSV row for the same NHS number, each with
// an address: the record stays labelled restricted, and its export does
// not disclose the address. PDS's unrestricted version of it (labelled
// U) then lifts the restriction.
func TestImportKeepsRestriction(t *testing.T) {
	sensitive, err := os.ReadFile("../mappers/pds/testdata/sandbox-mocks/Sensitive_Patient.json")
	if err != nil {
		t.Fatal(err)
	}
	const nhs = "9000000025"
	a31 := "MSH|^~\\&|PAS|RXX|CF|PCN|20260102120000||ADT^A31^ADT_A05|R1|P|2.5\rEVN|A31|20260102\r" +
		"PID|1||" + nhs + "^^^NHS^NH||SMYTHE^JANET||20101022|F|||1 HIDDEN ROAD^^LEEDS^^LS1 1AA^GBR^H\r"
	csvRow := "Organisation,NHS Number,First Name,Surname,Date of Birth,Gender,Number and Street,Postcode\n" +
		"Y12345," + nhs + ",Janet,Smythe,22-Oct-2010,F,2 Hidden Road,LS2 2BB\n"
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("POST", "/$import?format=pds", string(sensitive), "Content-Type", "application/fhir+json").want(t, 200)
		search := "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|" + nhs
		restricted := func(step string, answer *response) {
			t.Helper()
			if !strings.Contains(string(answer.body), "the record is restricted (PDS)") {
				t.Errorf("%s answered without saying the address is not stored: %s", step, answer.body)
			}
			p := storedOne(t, c, search)
			if got := toJSON(t, p["meta"]); !strings.Contains(got, `"code":"R"`) {
				t.Errorf("after %s the record's meta is %s, want the restricted label", step, got)
			}
			for _, element := range []string{"address", "generalPractitioner"} {
				if got, ok := p[element]; ok {
					t.Errorf("after %s the restricted record holds %s %s", step, element, toJSON(t, got))
				}
			}
			if got := toJSON(t, p["name"]); !strings.Contains(got, "Janet") {
				t.Errorf("after %s the record's name is %s", step, got)
			}
			for _, path := range []string{"/Patient/" + p["id"].(string), "/Patient/" + p["id"].(string) + "/$export-gp?format=bundle"} {
				if body := c.do("GET", path, "").want(t, 200).body; strings.Contains(strings.ToUpper(string(body)), "HIDDEN") {
					t.Errorf("after %s %s discloses the address: %s", step, path, body)
				}
			}
		}
		restricted("the A31", c.do("POST", "/$import?format=hl7v2", a31, "Content-Type", importop.HL7v2MediaType).want(t, 200))
		restricted("the CSV row", c.do("POST", "/$import?format=csv&mapping=emis-patient-list", csvRow, "Content-Type", "text/csv").want(t, 200))

		lifted := strings.Replace(string(sensitive), `"code": "R",`, `"code": "U",`, 1)
		c.do("POST", "/$import?format=pds", lifted, "Content-Type", "application/fhir+json").want(t, 200)
		if got := toJSON(t, storedOne(t, c, search)["meta"]); strings.Contains(got, `"code":"R"`) || !strings.Contains(got, `"code":"U"`) {
			t.Errorf("after PDS lifted the restriction the record's meta is %s", got)
		}
	}, withImport)
}

// TestImportCSVByteOrderMark imports with the EMIS layout, whose encoding
// is Windows-1252, a report saved as UTF-8 with a byte order mark: the
// names are stored as written, not read byte by byte as Windows-1252.
func TestImportCSVByteOrderMark(t *testing.T) {
	report := "\ufeffOrganisation,NHS Number,First Name,Surname,Date of Birth,Gender\r\n" +
		"Y12345,943 476 0089,Zoë,Brontë,12-Mar-1948,F\r\n"
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("POST", "/$import?format=csv&mapping=emis-patient-list", report, "Content-Type", "text/csv").want(t, 200)
		p := storedOne(t, c, "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434760089")
		if got := toJSON(t, p["name"]); got != `[{"family":"Brontë","given":["Zoë"],"use":"usual"}]` {
			t.Errorf("name %s", got)
		}
	}, withImport)
}

// TestImportCSVUTF8WithoutMark imports, with a layout whose files are
// Windows-1252, a report saved again by a spreadsheet as UTF-8 without a
// byte order mark, and one in Windows-1252: both store Zoë Brontë, where
// the first stored ZoÃ« BrontÃ«.
func TestImportCSVUTF8WithoutMark(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		for nhs, report := range map[string]string{
			"9434760089": "Organisation,NHS Number,First Name,Surname,Date of Birth,Gender\r\nY12345,943 476 0089,Zoë,Brontë,12-Mar-1948,F\r\n",
			"9990000018": "Organisation,NHS Number,First Name,Surname,Date of Birth,Gender\r\nY12345,999 000 0018,Zo\xeb,Bront\xeb,12-Mar-1948,F\r\n",
		} {
			c.do("POST", "/$import?format=csv&mapping=emis-patient-list", report, "Content-Type", "text/csv").want(t, 200)
			p := storedOne(t, c, "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|"+nhs)
			if got := toJSON(t, p["name"]); got != `[{"family":"Brontë","given":["Zoë"],"use":"usual"}]` {
				t.Errorf("%s: name %s", nhs, got)
			}
		}
	}, withImport)
}

// TestImportGPConnectFromProvider imports a GP Connect patient read and a
// free-slot search with provider, the provider's FHIR base: a booking of
// an Appointment on what they hold names the provider's own Slot,
// Location and Patient ids.
func TestImportGPConnectFromProvider(t *testing.T) {
	const provider = "https://provider.example/B82617/STU3/1/gpconnect/fhir"
	read := func(name string) string {
		data, err := os.ReadFile("../mappers/gpconnect/testdata/1.2.8-release/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	eachEngine(t, func(t *testing.T, c *client) {
		for _, name := range []string{"foundations/read-patient-response-payload-1.json", "appointments/search-for-free-slots-response-payload-1.json"} {
			c.do("POST", "/$import?format=gpconnect&provider="+provider, read(name), "Content-Type", "application/fhir+json").want(t, 200)
		}
		id := func(search string) string {
			return storedOne(t, c, search)["id"].(string)
		}
		slot := id("Slot?identifier=" + provider + "/Slot|1584")
		location := id("Location?identifier=" + provider + "/Location|17")
		patient := id("Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9476719931")
		c.do("POST", "/Organization", `{"resourceType":"Organization","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"A82038"}],"name":"PCN hub"}`, "Content-Type", "application/fhir+json").want(t, 201)
		appt := c.do("POST", "/Appointment", `{"resourceType":"Appointment","status":"proposed","start":"2026-12-10T10:00:00Z","end":"2026-12-10T10:10:00Z","created":"2026-12-06T00:00:00Z",
			"slot":[{"reference":"Slot/`+slot+`"}],
			"participant":[{"actor":{"reference":"Patient/`+patient+`"},"status":"accepted"},{"actor":{"reference":"Location/`+location+`"},"status":"accepted"}]}`,
			"Content-Type", "application/fhir+json").want(t, 201).json(t)["id"].(string)
		booking := c.do("GET", "/Appointment/"+appt+"/$export-gp?format=gpconnect&organization=A82038&provider="+provider, "").want(t, 200)
		for _, ref := range []string{`"Slot/1584"`, `"Location/17"`, `"Patient/2"`} {
			if !strings.Contains(string(booking.body), ref) {
				t.Errorf("the booking does not name %s: %s", ref, booking.body)
			}
		}
		for _, p := range importPayloads(t)[:3] {
			r := c.do("POST", "/$import?"+p.query+"&provider="+provider, p.body, "Content-Type", p.contentType).want(t, 400)
			if !strings.Contains(string(r.body), `"expression":["provider"]`) {
				t.Errorf("refusing provider with %s: %s", p.query, r.body)
			}
		}
	}, withImport)
}

// TestImportMappingOnlyForCSV: a mapping, the layout of a CSV report, is
// refused with any other format rather than left unread, and nothing is
// stored.
func TestImportMappingOnlyForCSV(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		before := storedCounts(t, c)
		for _, p := range importPayloads(t) {
			if strings.Contains(p.query, "format=csv") {
				continue
			}
			r := c.do("POST", "/$import?"+p.query+"&mapping=emis-patient-list", p.body, "Content-Type", p.contentType).want(t, 400)
			if !strings.Contains(string(r.body), `"expression":["mapping"]`) {
				t.Errorf("refusing mapping with %s: %s", p.query, r.body)
			}
		}
		if after := storedCounts(t, c); after != before {
			t.Errorf("stored %s, before %s", after, before)
		}
	}, withImport)
}

// TestExportRestrictedNarrative exports a restricted Patient whose
// narrative and contained practice spell out where the person lives and
// is registered: the export discloses neither.
func TestExportRestrictedNarrative(t *testing.T) {
	patient := `{"resourceType":"Patient",
		"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]},
		"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Jane Secret, 1 Refuge Road, LS1 1AA</div>"},
		"contained":[{"resourceType":"Organization","id":"gp","name":"Refuge Road Surgery","address":[{"line":["3 Refuge Road"]}]}],
		"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434760100"}],
		"name":[{"family":"Secret","given":["Jane"]}],
		"address":[{"line":["1 Refuge Road"],"postalCode":"LS1 1AA"}],
		"generalPractitioner":[{"reference":"#gp"}]}`
	eachEngine(t, func(t *testing.T, c *client) {
		id := c.do("POST", "/Patient", patient, "Content-Type", "application/fhir+json").want(t, 201).json(t)["id"].(string)
		// A Patient contained in a resource of the record labelled
		// restricted is restricted with it (R4 lets it carry no label of
		// its own).
		c.do("POST", "/Observation", `{"resourceType":"Observation",
			"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]},
			"contained":[{"resourceType":"Patient","id":"p","address":[{"line":["2 Refuge Road"]}]}],
			"status":"final","code":{"text":"carer's note"},"subject":{"reference":"Patient/`+id+`"},"performer":[{"reference":"#p"}]}`,
			"Content-Type", "application/fhir+json").want(t, 201)
		export := c.do("GET", "/Patient/"+id+"/$export-gp?format=bundle", "").want(t, 200)
		if strings.Contains(string(export.body), "Refuge") || !strings.Contains(string(export.body), "carer's note") {
			t.Errorf("the export of a restricted record discloses where the person is: %s", export.body)
		}
		if !strings.Contains(string(export.body), `"family":"Secret"`) {
			t.Errorf("the export lacks the patient: %s", export.body)
		}
	}, withImport)
}

// TestImportCSVMappingAliases imports with a mapping whose YAML aliases
// of aliases would expand a few lines to a million strings: it is refused
// with 400 naming the mapping, before it is expanded.
func TestImportCSVMappingAliases(t *testing.T) {
	var m strings.Builder
	m.WriteString("name: laughs\npatient: {nhsNumber: NHS Number}\nl0: &l0 [lol, lol, lol, lol]\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&m, "l%d: &l%d [*l%d, *l%d, *l%d, *l%d]\n", i, i, i-1, i-1, i-1, i-1)
	}
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("POST", "/$import?format=csv&mapping="+url.QueryEscape(m.String()), "NHS Number\n9434760046\n", "Content-Type", "text/csv").want(t, 400)
		if !strings.Contains(string(r.body), `"expression":["mapping"]`) || !strings.Contains(string(r.body), "aliases expand it") {
			t.Errorf("refusal %s", r.body)
		}
	}, withImport)
}

// TestImportCSVMappingWrongType imports with mappings holding a value of
// the wrong kind: each is refused with 400 naming the mapping, the key
// where the value is, as the mapping spells it, and what is expected
// there, not the Go struct and type the mapping is read into; nothing
// is stored.
func TestImportCSVMappingWrongType(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		before := storedCounts(t, c)
		for _, m := range []struct{ mapping, want string }{
			{"name: x\npatient: NHS Number\n", "patient: text, where a mapping of keys to values is expected"},
			{`{"name":"x","patient":{"nhsNumber":["NHS Number"]}}`, "patient.nhsNumber: a list, where text is expected"},
			{"name: x\npatient: {nhsNumber: NHS Number}\ndateFormats: dd/MM/yyyy\n", "dateFormats: text, where a list is expected"},
		} {
			r := c.do("POST", "/$import?format=csv&mapping="+url.QueryEscape(m.mapping), "NHS Number\n9434760046\n", "Content-Type", "text/csv").want(t, 400)
			body := string(r.body)
			if !strings.Contains(body, `"expression":["mapping"]`) || !strings.Contains(body, m.want) {
				t.Errorf("mapping %q: %s, want %q", m.mapping, body, m.want)
			}
			for _, internal := range []string{"Go struct", "csv.", "PatientColumns", "[]string"} {
				if strings.Contains(body, internal) {
					t.Errorf("mapping %q: the refusal holds %q: %s", m.mapping, internal, body)
				}
			}
		}
		if got := storedCounts(t, c); got != before {
			t.Errorf("refused imports changed the counts: %s, then %s", before, got)
		}
	}, withImport)
}

// TestImportHL7v2TooManyParts imports an HL7 v2 message whose PID-3 holds
// 300,000 empty repetitions: it is rejected (AR, quoting its control id)
// before it is parsed, and nothing is stored.
func TestImportHL7v2TooManyParts(t *testing.T) {
	msg := "MSH|^~\\&|PAS|RXX|CF|PCN|20260101120000||ADT^A28^ADT_A05|P1|P|2.5\rEVN|A28|20260101\r" +
		"PID|1||9434760046^^^NHS^NH" + strings.Repeat("~", 300_000) + "||MANY^PARTS||19800101|M\r"
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("POST", "/$import?format=hl7v2", msg, "Content-Type", importop.HL7v2MediaType).want(t, 400)
		if !bytes.Contains(r.body, []byte("\rMSA|AR|P1|more than 200000 fields, repetitions and components")) {
			t.Errorf("ack %q", r.body)
		}
		if found := c.do("GET", "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434760046", "").want(t, 200).json(t); found["entry"] != nil {
			t.Errorf("the patient was stored: %v", found)
		}
	}, withImport)
}

// TestImportHL7v2FutureBirth imports an HL7 v2 registration born in 2099,
// then one who died in 2099: each is refused (AE, ERR at PID-7 or
// PID-29), as a CSV row born in the future is, and nothing is stored.
func TestImportHL7v2FutureBirth(t *testing.T) {
	const msh = "MSH|^~\\&|PAS|RXX|CF|PCN|20260101120000||ADT^A28^ADT_A05|P2|P|2.5\rEVN|A28|20260101\r"
	eachEngine(t, func(t *testing.T, c *client) {
		for _, tt := range []struct{ pid, text, where string }{
			{"PID|1||9434760046^^^NHS^NH||FUTURE^BIRTH||20990101|M\r", "date of birth 2099-01-01 is in the future", "PID^1^7"},
			{"PID|1||9434760046^^^NHS^NH||FUTURE^DEATH||19480312|M" + strings.Repeat("|", 21) + "20990101|Y\r", "date of death 2099-01-01 is in the future", "PID^1^29"},
		} {
			r := c.do("POST", "/$import?format=hl7v2", msh+tt.pid, "Content-Type", importop.HL7v2MediaType).want(t, 400)
			if !bytes.Contains(r.body, []byte("\rMSA|AE|P2|"+tt.text)) ||
				!bytes.Contains(r.body, []byte("\rERR||"+tt.where+"|102^Data type error^HL70357|E||||")) {
				t.Errorf("ack %q", r.body)
			}
			if found := c.do("GET", "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434760046", "").want(t, 200).json(t); found["entry"] != nil {
				t.Errorf("the patient was stored: %v", found)
			}
		}
	}, withImport)
}

// TestImportCSVUpdatesPart imports a PDS Patient, then CSV reports that
// give a few of its items: each updates the items its cells give and
// keeps the rest of the record (date of birth, addresses, telecoms,
// extensions, the verification status of the NHS number, the practice,
// the security label); a blank cell changes nothing; the same report
// again writes no version; a row for a patient not stored creates one.
func TestImportCSVUpdatesPart(t *testing.T) {
	pdsPatient := importPayloads(t)[1].body
	const nhs, newcomer = "9000000009", "9990000018"
	search := "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|"
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("POST", "/$import?format=pds", pdsPatient, "Content-Type", "application/fhir+json").want(t, 200)
		imported := func(report string) map[string]any {
			t.Helper()
			return c.do("POST", "/$import?format=csv&mapping=emis-patient-list", report, "Content-Type", "text/csv").want(t, 200).json(t)
		}
		versions := func(id string) any {
			return c.do("GET", "/Patient/"+id+"/_history", "").want(t, 200).json(t)["total"]
		}
		kept := []string{
			`"birthDate":"2010-10-22"`, `"gender":"female"`, `"Boar Lane"`, `"use":"temp"`, `"01632960587"`, `"jane.smith@example.com"`,
			`UKCore-NHSNumberVerificationStatus`, `UKCore-NHSCommunication`, `"suffix":["MBE"]`, `"prefix":["Mrs"]`,
			`"generalPractitioner":[{"id":"254406A3"`, `"code":"U"`,
		}

		names := "Organisation,NHS Number,First Name,Surname\nY12345," + nhs + ",Janet,Smith\n"
		imported(names)
		p := storedOne(t, c, search+nhs)
		id := p["id"].(string)
		wantHeld(t, "a report of names", p, append(kept, `"family":"Smith","given":["Janet"]`)...)
		if n := versions(id); n != float64(2) {
			t.Errorf("after a report of names the record has %v versions, want 2", n)
		}

		again := imported(names)
		if param(again, "created")["valueInteger"] != float64(0) || param(again, "updated")["valueInteger"] != float64(0) {
			t.Errorf("importing the report again: %v", again)
		}
		if n := versions(id); n != float64(2) {
			t.Errorf("importing the report again made version %v", n)
		}

		// The same phone number and postcode, written otherwise: nothing
		// changes. A blank surname keeps the stored one.
		imported("NHS Number,First Name,Surname,Home Telephone,Postcode\n" + nhs + ",Janet,,01632 960 587,ls1 6ae\n")
		if n := versions(id); n != float64(2) {
			t.Errorf("a report of what the record holds made version %v: %v", n, storedOne(t, c, search+nhs))
		}

		// A new postcode replaces the home address; a mobile number is
		// added beside the home phone. The row comes after a batch that
		// wrote a Patient (blank rows count towards a batch), which the
		// unit of work must find it under.
		imported("NHS Number,Mobile Telephone,Postcode\n" + newcomer + ",07700 900456,LS3 1AA\n" +
			strings.Repeat(",,\n", 250) + nhs + ",07700 900123,LS2 7EW\n")
		p = storedOne(t, c, search+nhs)
		wantHeld(t, "a new postcode and mobile", p, append(kept[3:], `"postalCode":"LS2 7EW","use":"home"`, `"07700 900123"`)...)
		if got := toJSON(t, p["address"]); strings.Count(got, "Boar Lane") != 1 || strings.Contains(got, `"postalCode":"LS1 6AE","use":"home"`) {
			t.Errorf("after a new postcode the addresses are %s, want the temporary address kept and the home address replaced", got)
		}
		created := storedOne(t, c, search+newcomer)
		wantHeld(t, "a report naming a patient not stored", created, `"07700 900456"`, `"postalCode":"LS3 1AA"`)
	}, withImport)
}

// wantHeld fails t unless the record p, as JSON, holds each of want,
// after step.
func wantHeld(t *testing.T, step string, p map[string]any, want ...string) {
	t.Helper()
	got := toJSON(t, p)
	var lacks []string
	for _, w := range want {
		if !strings.Contains(got, w) {
			lacks = append(lacks, w)
		}
	}
	if len(lacks) > 0 {
		t.Errorf("after %s the record lacks %s: %s", step, strings.Join(lacks, ", "), got)
	}
}

// TestImportHL7v2UpdatesPart stores a record as PDS gives it, with an
// identifier of another system added, then sends HL7 v2 updates of it:
// an A31 that carries only a new name keeps everything else the record
// held; the same A31 again writes no version; a null ("") in PID-13
// removes its phones and email (but not its contact's phone), and
// nothing else; an A40 that merges a record into it keeps what it held,
// and the links of earlier merges, and the record merged away keeps what
// it held too, made inactive.
func TestImportHL7v2UpdatesPart(t *testing.T) {
	pdsPatient := importPayloads(t)[1].body
	const search = "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009"
	a31 := func(control, pid string) string {
		return "MSH|^~\\&|EMISWEB|Y12345|CAREFHIR|PCN01|20260301093000+0000||ADT^A31^ADT_A05|" + control + "|P|2.4\r" +
			"EVN|A31|20260301093000+0000\r" + pid + "\r"
	}
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("POST", "/$import?format=pds", pdsPatient, "Content-Type", "application/fhir+json").want(t, 200)
		p := storedOne(t, c, search)
		id := p["id"].(string)
		p["identifier"] = append(p["identifier"].([]any), map[string]any{"system": "https://example.org/Id/pas-number", "value": "PAS123"})
		c.do("PUT", "/Patient/"+id, toJSON(t, p), "Content-Type", "application/fhir+json").want(t, 200)
		versions := func() any {
			return c.do("GET", "/Patient/"+id+"/_history", "").want(t, 200).json(t)["total"]
		}
		send := func(msg string) {
			t.Helper()
			r := c.do("POST", "/$import?format=hl7v2", msg, "Content-Type", importop.HL7v2MediaType).want(t, 200)
			if !bytes.Contains(r.body, []byte("MSA|AA|")) {
				t.Fatalf("%q", r.body)
			}
		}
		kept := []string{
			`"birthDate":"2010-10-22"`, `"gender":"female"`, `"Boar Lane"`, `"use":"temp"`,
			`UKCore-NHSNumberVerificationStatus`, `UKCore-NHSCommunication`, `"PAS123"`,
			`"generalPractitioner":[{"id":"254406A3"`, `"code":"U"`, `"deceasedDateTime"`, `"contact"`,
		}
		wantHeld(t, "storing it", storedOne(t, c, search), append(kept, `"01632960587"`)...)

		named := "PID|1||9000000009^^^NHS^NH||SMITH^JANET^^^^^L"
		send(a31("MSG1", named))
		p = storedOne(t, c, search)
		wantHeld(t, "an A31 of a new name", p, append(kept, `"01632960587"`, `"given":["JANET"]`)...)
		if n := versions(); n != float64(3) {
			t.Errorf("after an A31 of a new name the record has %v versions, want 3", n)
		}
		send(a31("MSG2", named))
		if n := versions(); n != float64(3) {
			t.Errorf("an A31 of what the record holds made version %v", n)
		}

		// A new email, sent as v2 senders do, without a use: it replaces
		// the home email; the phones stay.
		send(a31("MSG2E", named+"||||||||^NET^Internet^jane@new.example"))
		p = storedOne(t, c, search)
		wantHeld(t, "an A31 of a new email", p, append(kept, `"01632960587"`, `"jane@new.example"`)...)
		if strings.Contains(toJSON(t, p["telecom"]), "jane.smith@example.com") {
			t.Errorf("after an A31 of a new email the record keeps the old one: %s", toJSON(t, p["telecom"]))
		}

		send(a31("MSG3", named+"||||||||\"\""))
		p = storedOne(t, c, search)
		wantHeld(t, "a null PID-13", p, kept...)
		if p["telecom"] != nil {
			t.Errorf("after a null PID-13 the record keeps the telecoms %s", toJSON(t, p["telecom"]))
		}

		// Two merges into the record, each keeping what it held, the
		// first sent again under another control id: it writes nothing.
		a40 := func(control, old string) string {
			return "MSH|^~\\&|EMISWEB|Y12345|CAREFHIR|PCN01|20260301093000+0000||ADT^A40^ADT_A39|" + control + "|P|2.4\r" +
				"EVN|A40|20260301093000+0000\r" + named + "\rMRG|" + old + "^^^NHS^NH\r"
		}
		send(a31("MSG4R", "PID|1||9990000018^^^NHS^NH||WARD^SARAH||19480312|F|||7 MILL LANE^^LEEDS^^LS6 2AB^^H"))
		send(a40("MSG4", "9990000018"))
		send(a40("MSG5", "9990000042"))
		before := versions()
		send(a40("MSG6", "9990000018"))
		if n := versions(); n != before {
			t.Errorf("a merge sent again made version %v, after %v", n, before)
		}
		p = storedOne(t, c, search)
		wantHeld(t, "two merges", p, kept...)
		if got := toJSON(t, p["link"]); strings.Count(got, `"type":"replaces"`) != 2 {
			t.Errorf("after two merges into the record its links are %s, want a replaces link to each", got)
		}
		wantHeld(t, "merging it away", storedOne(t, c, "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018"),
			`"active":false`, `"7 MILL LANE"`, `"birthDate":"1948-03-12"`, `"type":"replaced-by"`)
	}, withImport)
}

// TestImportHL7v2FormerNameAgain stores a record with a current name,
// address and phone and former ones (use old), then sends an A31 giving
// the former ones as the patient's again: each is written as a current
// one beside the former, where the former took its place and the record
// was left with no current name, address or phone.
func TestImportHL7v2FormerNameAgain(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.create("Patient", `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9990000018"}],
			"name":[{"use":"official","family":"JONES","given":["SARAH"]},{"use":"old","family":"WARD","given":["SARAH"]}],
			"telecom":[{"system":"phone","value":"0113 496 0000","use":"home"},{"system":"phone","value":"0113 496 1111","use":"old"}],
			"address":[{"use":"home","line":["1 NEW STREET"],"postalCode":"LS1 1AA"},{"use":"old","line":["7 MILL LANE"],"postalCode":"LS6 2AB"}]}`)
		msg := "MSH|^~\\&|EMISWEB|Y12345|CAREFHIR|PCN01|20260301093000+0000||ADT^A31^ADT_A05|MSG0501|P|2.4\r" +
			"PID|1||9990000018^^^NHS^NH||WARD^SARAH^^^^^L||||||7 MILL LANE^^^^LS6 2AB||0113 496 1111\r"
		r := c.do("POST", "/$import?format=hl7v2", msg, "Content-Type", importop.HL7v2MediaType).want(t, 200)
		if !bytes.Contains(r.body, []byte("MSA|AA|MSG0501")) {
			t.Fatalf("%q", r.body)
		}
		p := storedOne(t, c, "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018")
		for _, element := range []string{"name", "address", "telecom"} {
			items, _ := p[element].([]any)
			current, former := 0, 0
			for _, x := range items {
				if x.(map[string]any)["use"] == "old" {
					former++
				} else {
					current++
				}
			}
			if current != 1 || former != 1 {
				t.Errorf("%s: %d current and %d former, want one of each: %s", element, current, former, toJSON(t, p[element]))
			}
		}
		wantHeld(t, "an A31 of the former name", p, `{"family":"WARD","given":["SARAH"],"use":"official"}`, `"line":["7 MILL LANE"],"postalCode":"LS6 2AB"}`, `"value":"0113 496 1111"}`)
		if strings.Contains(toJSON(t, p), "JONES") {
			t.Errorf("the A31 of the former name left the current one: %s", toJSON(t, p["name"]))
		}
	}, withImport)
}

// TestImportHL7v2HexEscapes imports a registration from a sender on ISO
// 8859-1 whose names escape their accented letters (\XE9\ for é): the
// names are stored with them.
func TestImportHL7v2HexEscapes(t *testing.T) {
	msg := "MSH|^~\\&|PAS|RXX|CF|PCN|20260101120000||ADT^A28^ADT_A05|P3|P|2.4|||AL|NE|GBR|8859/1\rEVN|A28|20260101\r" +
		"PID|1||9434760046^^^NHS^NH||REN\\XC9\\^ZO\\XCB\\||19480312|F\r"
	wantStored(t, msg, "name", `[{"family":"RENÉ","given":["ZOË"]}]`)
}

// wantStored imports msg, an HL7 v2 registration of NHS number
// 9434760046, and fails t unless the element of the Patient stored is
// want, as JSON.
func wantStored(t *testing.T, msg, element, want string) {
	t.Helper()
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("POST", "/$import?format=hl7v2", msg, "Content-Type", importop.HL7v2MediaType).want(t, 200)
		p := storedOne(t, c, "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434760046")
		if got := toJSON(t, p[element]); got != want {
			t.Errorf("%s %s, want %s", element, got, want)
		}
	}, withImport)
}

// TestImportHL7v2EmptyNHSRepetition imports a registration whose PID-3
// has an NHS number repetition left empty, and one sent as the HL7 null,
// before the one holding the number: applied to that number, not refused
// as naming two patients.
func TestImportHL7v2EmptyNHSRepetition(t *testing.T) {
	msg := "MSH|^~\\&|PAS|RXX|CF|PCN|20260101120000||ADT^A28^ADT_A05|E1|P|2.4\rEVN|A28|20260101\r" +
		"PID|1||^^^NHS^NH~\"\"^^^NHS^NH~9434760046^^^NHS^NH||WARD^SARAH||19480312|F\r"
	wantStored(t, msg, "name", `[{"family":"WARD","given":["SARAH"]}]`)
}

// TestImportHL7v2NameTypes imports a registration whose names are of
// types U (unspecified), TEMP and BAD: stored with no use, temp and old,
// as FHIR maps table 0200, not an unspecified name as a temporary one.
func TestImportHL7v2NameTypes(t *testing.T) {
	msg := "MSH|^~\\&|PAS|RXX|CF|PCN|20260101120000||ADT^A28^ADT_A05|P4|P|2.5\rEVN|A28|20260101\r" +
		"PID|1||9434760046^^^NHS^NH||WARD^SARAH^^^^^U~WARD^BABY^^^^^TEMP~WARDE^SARAH^^^^^BAD||19480312|F\r"
	wantStored(t, msg, "name", `[{"family":"WARD","given":["SARAH"]},{"family":"WARD","given":["BABY"],"use":"temp"},{"family":"WARDE","given":["SARAH"],"use":"old"}]`)
}

// TestImportHL7v2AddressTypes imports a registration with a home address,
// a bad one (BA) and a billing one (BI): the bad address is stored old,
// as FHIR maps table 0190, not as a current billing address.
func TestImportHL7v2AddressTypes(t *testing.T) {
	msg := "MSH|^~\\&|PAS|RXX|CF|PCN|20260101120000||ADT^A28^ADT_A05|P5|P|2.5\rEVN|A28|20260101\r" +
		"PID|1||9434760046^^^NHS^NH||WARD^SARAH||19480312|F|||1 NEW ROAD^^LEEDS^^LS2 7EW^^H~9 OLD ROAD^^LEEDS^^LS1 1AA^^BA~PO BOX 1^^LEEDS^^LS1 9ZZ^^BI\r"
	wantStored(t, msg, "address", `[{"city":"LEEDS","line":["1 NEW ROAD"],"postalCode":"LS2 7EW","use":"home"},`+
		`{"city":"LEEDS","line":["9 OLD ROAD"],"postalCode":"LS1 1AA","use":"old"},{"city":"LEEDS","line":["PO BOX 1"],"postalCode":"LS1 9ZZ","use":"billing"}]`)
}

// TestImportHL7v2PhoneParts imports a registration whose home phone is
// given in parts, country code 44, area 113 and local number: stored as
// +44 113 2496000, not as 113 2496000, which no one can dial.
func TestImportHL7v2PhoneParts(t *testing.T) {
	msg := "MSH|^~\\&|PAS|RXX|CF|PCN|20260101120000||ADT^A28^ADT_A05|P6|P|2.5\rEVN|A28|20260101\r" +
		"PID|1||9434760046^^^NHS^NH||WARD^SARAH||19480312|F|||||^PRN^PH^^44^113^2496000\r"
	wantStored(t, msg, "telecom", `[{"system":"phone","use":"home","value":"+44 113 2496000"}]`)
}

// TestImportHL7v2UnformattedPhone imports a registration whose home phone
// is given in XTN-12 alone, the unformatted number of v2.5 on, as senders
// that no longer write XTN-1 do: stored, where it was dropped.
func TestImportHL7v2UnformattedPhone(t *testing.T) {
	msg := "MSH|^~\\&|PAS|RXX|CF|PCN|20260101120000||ADT^A28^ADT_A05|P8|P|2.8\rEVN|A28|20260101\r" +
		"PID|1||9434760046^^^NHS^NH||WARD^SARAH||19480312|F|||||^PRN^PH^^^^^^^^^01132 496000\r"
	wantStored(t, msg, "telecom", `[{"system":"phone","use":"home","value":"01132 496000"}]`)
}

// TestImportHL7v2NHSNumberByOID imports a registration whose PID-3 names
// the assigning authorities by OID alone, as senders following IHE do: the
// repetition under the NHS number's OID is the NHS number, where the
// message was refused for want of one.
func TestImportHL7v2NHSNumberByOID(t *testing.T) {
	msg := "MSH|^~\\&|PAS|RXX|CF|PCN|20260101120000||ADT^A28^ADT_A05|P9|P|2.5\rEVN|A28|20260101\r" +
		"PID|1||RXX123^^^&2.16.840.1.113883.19.5&ISO~9434760046^^^&2.16.840.1.113883.2.1.4.1&ISO||WARD^SARAH||19480312|F\r"
	wantStored(t, msg, "identifier", `[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434760046"}]`)
}

// TestImportHL7v2SecondPairLocation sends an A40 of two PID/MRG pairs
// whose second MRG-1 is not a valid NHS number: AE with ERR-2 naming the
// second MRG (MRG^2^1), where it named the first, and nothing stored.
func TestImportHL7v2SecondPairLocation(t *testing.T) {
	msg := "MSH|^~\\&|PAS|RXX|CF|PCN|20260101120000||ADT^A40^ADT_A39|M2|P|2.4\rEVN|A40|20260101\r" +
		"PID|1||9434765919^^^NHS^NH||WARD^SARAH\rMRG|9434760046^^^NHS^NH\r" +
		"PID|2||9000000009^^^NHS^NH||SMITH^JOHN\rMRG|9434765918^^^NHS^NH\r"
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("POST", "/$import?format=hl7v2", msg, "Content-Type", importop.HL7v2MediaType).want(t, 400)
		if !bytes.Contains(r.body, []byte("\rMSA|AE|M2|")) || !bytes.Contains(r.body, []byte("\rERR||MRG^2^1^1|")) {
			t.Errorf("ack %q, want AE naming MRG^2^1^1", r.body)
		}
		if n := c.do("GET", "/Patient?_summary=count", "").want(t, 200).json(t)["total"]; n != float64(0) {
			t.Errorf("%v Patients stored by a refused merge", n)
		}
	}, withImport)
}

// TestImportHL7v2NullName sends an A31 whose PID-5 is "", asking that the
// names be deleted: AA with no warning that a name was left out.
func TestImportHL7v2NullName(t *testing.T) {
	msg := "MSH|^~\\&|PAS|RXX|CF|PCN|20260101120000||ADT^A31^ADT_A05|P7|P|2.5\rEVN|A31|20260101\r" +
		"PID|1||9434760046^^^NHS^NH||\"\"||19480312|F\r"
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("POST", "/$import?format=hl7v2", msg, "Content-Type", importop.HL7v2MediaType).want(t, 200)
		if !bytes.Contains(r.body, []byte("\rMSA|AA|P7")) || bytes.Contains(r.body, []byte("\rERR|")) {
			t.Errorf("ack %q, want AA without ERR", r.body)
		}
	}, withImport)
}

// TestImportNHSNumberForms imports a patient in each format with the NHS
// number written with spaces, dashes or non-breaking spaces: each stores
// it as its ten digits. A wrong check digit or length, however written,
// is refused by every format with 400, storing nothing.
func TestImportNHSNumberForms(t *testing.T) {
	formats := []struct {
		query, contentType string
		payload            func(nhs string) string
	}{
		{"format=hl7v2", importop.HL7v2MediaType, func(nhs string) string {
			return "MSH|^~\\&|PAS|RXX|CF|PCN|20260101120000||ADT^A28^ADT_A05|N1|P|2.5\rEVN|A28|20260101\r" +
				"PID|1||" + nhs + "^^^NHS^NH||WARD^SARAH||19480312|F\r"
		}},
		{"format=csv&mapping=emis-patient-list", "text/csv", func(nhs string) string {
			return "\ufeffNHS Number,First Name,Surname\r\n" + nhs + ",Sarah,Ward\r\n" // UTF-8, as its byte order mark says
		}},
		{"format=pds", "application/fhir+json", func(nhs string) string {
			return `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhs + `"}],"name":[{"family":"Ward"}]}`
		}},
		{"format=gpconnect", "application/fhir+json", func(nhs string) string {
			return `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","id":"p1",` +
				`"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhs + `"}],"name":[{"family":"Ward"}]}}]}`
		}},
	}
	const search = "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919"
	eachEngine(t, func(t *testing.T, c *client) {
		for _, f := range formats {
			for _, wrong := range []string{"943-476-5918", "943 476 591", "943-476-59190"} {
				c.do("POST", "/$import?"+f.query, f.payload(wrong), "Content-Type", f.contentType).want(t, 400)
			}
			if n := c.do("GET", "/Patient?_summary=count", "").want(t, 200).json(t)["total"]; n != float64(0) {
				t.Fatalf("%s: %v patients stored from NHS numbers that fail their check", f.query, n)
			}
			for _, written := range []string{"943-476-5919", "943 476 5919", "943\u00a0476\u00a05919", "943\u2013476\u20135919"} {
				c.do("POST", "/$import?"+f.query, f.payload(written), "Content-Type", f.contentType).want(t, 200)
				got := toJSON(t, storedOne(t, c, search)["identifier"])
				if !strings.Contains(got, `"value":"9434765919"`) {
					t.Errorf("%s of %q: stored identifier %s", f.query, written, got)
				}
			}
			c.do("DELETE", "/"+search, "").want(t, 204)
		}
	}, withImport)
}

// TestImportKeepsOnePractice stores a Patient whose practice is written
// as an absolute reference to this server, with a version and without,
// then imports a CSV row and an HL7 v2 A31 naming the practice: the
// record keeps one reference to a practice, not the stored one and the
// import's beside it.
func TestImportKeepsOnePractice(t *testing.T) {
	const search = "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919"
	imports := []struct{ query, contentType, body string }{
		{"format=csv&mapping=emis-patient-list", "text/csv", "Organisation,NHS Number,First Name,Surname\r\nY12345,943 476 5919,Sarah,Ward\r\n"},
		{"format=hl7v2", importop.HL7v2MediaType, "MSH|^~\\&|EMISWEB|Y12345|CAREFHIR|PCN01|20260301093000+0000||ADT^A31^ADT_A05|K1|P|2.4\r" +
			"EVN|A31|20260301093000+0000\rPID|1||9434765919^^^NHS^NH||WARD^SARAH\rPD1|||THE HIGH STREET SURGERY^^Y12345\r"},
	}
	eachEngine(t, func(t *testing.T, c *client) {
		org := c.do("POST", "/Organization", `{"resourceType":"Organization","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"Y12345"}],"name":"The High Street Surgery"}`,
			"Content-Type", "application/fhir+json").want(t, 201).json(t)
		orgURL := c.base + "/Organization/" + org["id"].(string)
		for _, stored := range []string{orgURL, orgURL + "/_history/1"} {
			for _, im := range imports {
				c.do("PUT", "/"+search, `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434765919"}],`+
					`"name":[{"family":"Ward","given":["Sarah"]}],"generalPractitioner":[{"reference":"`+stored+`"}]}`, "Content-Type", "application/fhir+json")
				c.do("POST", "/$import?"+im.query, im.body, "Content-Type", im.contentType).want(t, 200)
				gps, _ := storedOne(t, c, search)["generalPractitioner"].([]any)
				if len(gps) != 1 {
					t.Errorf("%s onto a practice stored as %s: generalPractitioner %s", im.query, stored, toJSON(t, gps))
				}
			}
		}
	}, withImport)
}

// TestImportBirthTodayInTheUK imports at 23:30 UTC on 14 July, 00:30 on
// 15 July in the UK: a birth on 15 July is today's, imported from HL7 v2
// and CSV alike, and one on 16 July is yet to come, refused naming where;
// the host's clock, in UTC, is a day behind.
func TestImportBirthTodayInTheUK(t *testing.T) {
	night := time.Date(2026, time.July, 14, 23, 30, 0, 0, time.UTC)
	withNight := func(cfg *server.Config) {
		cfg.Operations = (&importop.Importer{Now: func() time.Time { return night }}).Operations()
	}
	const msh = "MSH|^~\\&|PAS|RXX|CF|PCN|20260714233000||ADT^A28^ADT_A05|%s|P|2.5\rEVN|A28|20260714\r"
	const csvHead = "Organisation,NHS Number,First Name,Surname,Date of Birth,Gender\n"
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("POST", "/$import?format=hl7v2", fmt.Sprintf(msh, "B1")+"PID|1||9434760046^^^NHS^NH||TODAY^BABY||20260715|M\r", "Content-Type", importop.HL7v2MediaType)
		if r.status != 200 || !bytes.Contains(r.body, []byte("\rMSA|AA|B1")) {
			t.Errorf("HL7 v2, born 15 July: %d %q", r.status, r.body)
		}
		r = c.do("POST", "/$import?format=hl7v2", fmt.Sprintf(msh, "B2")+"PID|1||9990000018^^^NHS^NH||TOMORROW^BABY||20260716|M\r", "Content-Type", importop.HL7v2MediaType).want(t, 400)
		if !bytes.Contains(r.body, []byte("\rMSA|AE|B2|date of birth 2026-07-16 is in the future")) {
			t.Errorf("HL7 v2, born 16 July: %q", r.body)
		}
		c.do("POST", "/$import?format=csv&mapping=emis-patient-list", csvHead+"Y12345,999 000 0026,Ann,Today,15-Jul-2026,F\n", "Content-Type", "text/csv").want(t, 200)
		r = c.do("POST", "/$import?format=csv&mapping=emis-patient-list", csvHead+"Y12345,999 000 0034,Bea,Tomorrow,16-Jul-2026,F\n", "Content-Type", "text/csv").want(t, 400)
		if !strings.Contains(string(r.body), "line 2, column Date of Birth: date of birth 2026-07-16 is in the future") {
			t.Errorf("CSV, born 16 July: %.600s", r.body)
		}
		for nhs, want := range map[string]string{"9434760046": "2026-07-15", "9990000026": "2026-07-15", "9990000018": "", "9990000034": ""} {
			found := c.do("GET", "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|"+nhs, "").want(t, 200).json(t)
			if got := str(found, "entry", 0, "resource", "birthDate"); got != want {
				t.Errorf("Patient %s stored born %q, want %q", nhs, got, want)
			}
		}
	}, withNight)
}

// TestImportGPConnectAllergyEncounter imports a GP Connect allergy that
// names the consultation it was recorded in by the associatedEncounter
// extension: the stored AllergyIntolerance refers to the stored Encounter
// by R4's AllergyIntolerance.encounter.
func TestImportGPConnectAllergyEncounter(t *testing.T) {
	record := gpcRecord(`{"resourceType":"Encounter","id":"e","status":"finished","subject":{"reference":"Patient/p"},"period":{"start":"2021-03-01"}}`,
		`{"resourceType":"AllergyIntolerance","id":"a","clinicalStatus":"active","verificationStatus":"confirmed","patient":{"reference":"Patient/p"},
		"code":{"text":"Penicillin allergy"},"assertedDate":"2021-03-01",
		"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/encounter-associatedEncounter","valueReference":{"reference":"Encounter/e"}}]}`)
	eachEngine(t, func(t *testing.T, c *client) {
		report := c.do("POST", "/$import?format=gpconnect", record, "Content-Type", "application/fhir+json").want(t, 200)
		if strings.Contains(string(report.body), "associatedEncounter") {
			t.Errorf("the report says the associated encounter is not carried: %s", report.body)
		}
		encounter := storedOne(t, c, "Encounter")["id"].(string)
		allergy := storedOne(t, c, "AllergyIntolerance")
		if got := toJSON(t, allergy["encounter"]); got != `{"reference":"Encounter/`+encounter+`"}` {
			t.Errorf("AllergyIntolerance.encounter %s, want Encounter/%s", got, encounter)
		}
		if _, ok := allergy["extension"]; ok {
			t.Errorf("the allergy keeps an extension: %s", toJSON(t, allergy["extension"]))
		}
	}, withImport)
}

// TestImportGPConnectMainLocation imports a GP Connect practice naming its
// main site by the MainLocation extension: the stored Organization refers
// to the stored Location by UK Core's MainLocation extension.
func TestImportGPConnectMainLocation(t *testing.T) {
	record := `{"resourceType":"Bundle","type":"collection","entry":[
		{"resource":{"resourceType":"Patient","id":"p","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9690937286"}],"managingOrganization":{"reference":"Organization/o"}}},
		{"resource":{"resourceType":"Organization","id":"o","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"A82038"}],"name":"Temple Sowerby",
			"extension":[{"url":"https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-MainLocation-1","valueReference":{"reference":"Location/l"}}]}},
		{"resource":{"resourceType":"Location","id":"l","name":"Temple Sowerby Medical Practice","status":"active"}}]}`
	eachEngine(t, func(t *testing.T, c *client) {
		report := c.do("POST", "/$import?format=gpconnect", record, "Content-Type", "application/fhir+json").want(t, 200)
		if strings.Contains(string(report.body), "MainLocation") {
			t.Errorf("the report says the main location is not carried: %s", report.body)
		}
		location := storedOne(t, c, "Location")["id"].(string)
		org := storedOne(t, c, "Organization")
		want := `[{"url":"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MainLocation","valueReference":{"reference":"Location/` + location + `"}}]`
		if got := toJSON(t, org["extension"]); got != want {
			t.Errorf("Organization.extension %s, want %s", got, want)
		}
	}, withImport)
}

// TestImportGPConnectRenamedParts imports a consultation with a diagnosis
// and its role, and a medication with an ingredient and its amount, parts
// R4 renamed (use, strength): the record is stored, each under its R4
// name, rather than refused.
func TestImportGPConnectRenamedParts(t *testing.T) {
	record := gpcRecord(`{"resourceType":"Condition","id":"c","subject":{"reference":"Patient/p"},"code":{"text":"Asthma"}}`,
		`{"resourceType":"Encounter","id":"e","status":"finished","subject":{"reference":"Patient/p"},
		"diagnosis":[{"condition":{"reference":"Condition/c"},"role":{"coding":[{"system":"http://hl7.org/fhir/diagnosis-role","code":"CC"}]},"rank":1}]}`,
		`{"resourceType":"Medication","id":"m","code":{"text":"Co-codamol 30mg/500mg tablets"},
		"ingredient":[{"itemCodeableConcept":{"text":"Codeine"},"amount":{"numerator":{"value":30,"unit":"mg"},"denominator":{"value":1,"unit":"tablet"}}}]}`)
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("POST", "/$import?format=gpconnect", record, "Content-Type", "application/fhir+json").want(t, 200)
		condition := storedOne(t, c, "Condition")["id"].(string)
		want := `[{"condition":{"reference":"Condition/` + condition + `"},"rank":1,"use":{"coding":[{"code":"CC","system":"http://terminology.hl7.org/CodeSystem/diagnosis-role"}]}}]`
		if got := toJSON(t, storedOne(t, c, "Encounter")["diagnosis"]); got != want {
			t.Errorf("Encounter.diagnosis %s, want %s", got, want)
		}
		want = `[{"itemCodeableConcept":{"text":"Codeine"},"strength":{"denominator":{"unit":"tablet","value":1},"numerator":{"unit":"mg","value":30}}}]`
		if got := toJSON(t, storedOne(t, c, "Medication")["ingredient"]); got != want {
			t.Errorf("Medication.ingredient %s, want %s", got, want)
		}
	}, withImport)
}

// TestImportCSVMonthInCapitals imports dates of birth whose month names
// are written in capitals, as some reports write them (12-OCT-1948,
// 12 OCT 1948), beside an ISO date and time: each is stored as its date,
// none refused.
func TestImportCSVMonthInCapitals(t *testing.T) {
	report := "Organisation,NHS Number,First Name,Surname,Date of Birth,Gender\r\n" +
		"Y12345,943 476 5919,Ann,Lee,12-OCT-1948,F\r\n" +
		"Y12345,943 476 0089,Bob,Lee,13 OCT 1949,M\r\n" +
		"Y12345,999 000 0018,Cy,Lee,1950-10-14T00:00:00,M\r\n"
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("POST", "/$import?format=csv&mapping=emis-patient-list", report, "Content-Type", "text/csv").want(t, 200)
		for nhs, want := range map[string]string{"9434765919": "1948-10-12", "9434760089": "1949-10-13", "9990000018": "1950-10-14"} {
			if got := storedOne(t, c, "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|"+nhs)["birthDate"]; got != want {
				t.Errorf("%s: birthDate %v, want %s", nhs, got, want)
			}
		}
	}, withImport)
}

// TestImportCSVQuoteAboveHeader imports a report whose metadata row, above
// the header, names the search with quotes in it: the row is skipped as
// metadata is and the patient imported, where the report was refused at
// line 1. A quote out of place in a row below the header is still refused.
func TestImportCSVQuoteAboveHeader(t *testing.T) {
	head := "Search: Patients with \"HbA1c > 58\",,,\r\nOrganisation,NHS Number,First Name,Surname\r\n"
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("POST", "/$import?format=csv&mapping=emis-patient-list", head+"Y12345,943 476 5919,Ann,Lee\r\n", "Content-Type", "text/csv").want(t, 200)
		if got := storedOne(t, c, "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919")["name"]; toJSON(t, got) != `[{"family":"Lee","given":["Ann"],"use":"usual"}]` {
			t.Errorf("name %s", toJSON(t, got))
		}
		r := c.do("POST", "/$import?format=csv&mapping=emis-patient-list", head+"Y12345,943 476 0089,Bob,O\"Lee\r\n", "Content-Type", "text/csv").want(t, 400)
		if !strings.Contains(string(r.body), `"expression":["line 3, column Surname"]`) {
			t.Errorf("a quote in a row: %s, want a refusal at line 3, column Surname", r.body)
		}
	}, withImport)
}

// TestImportCSVUTF16 imports a report saved as UTF-16 text, as Excel's
// "Unicode Text" writes it: 400 saying so, where it said the file had no
// header row with the NHS number column, and nothing stored.
func TestImportCSVUTF16(t *testing.T) {
	report := "\xff\xfe"
	for _, r := range "NHS Number,Surname\r\n943 476 5919,Lee\r\n" {
		report += string([]byte{byte(r), 0})
	}
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("POST", "/$import?format=csv&mapping=emis-patient-list", report, "Content-Type", "text/csv").want(t, 400)
		if !strings.Contains(string(r.body), "UTF-16") {
			t.Errorf("a UTF-16 report: %s, want a refusal saying it is UTF-16", r.body)
		}
		if n := c.do("GET", "/Patient?_summary=count", "").want(t, 200).json(t)["total"]; n != float64(0) {
			t.Errorf("%v Patients stored from a refused report", n)
		}
	}, withImport)
}

// TestImportCSVShiftedRow imports a report whose address holds an
// unquoted comma, which moves the postcode past the header's last column:
// the report is refused naming the line and the column, and nothing is
// stored, rather than the address stored cut short.
func TestImportCSVShiftedRow(t *testing.T) {
	report := "Organisation,NHS Number,First Name,Surname,Gender,Number and Street,Postcode\r\n" +
		"Y12345,943 476 0089,Bob,Lee,M,12 Park Road,LS2 2BB\r\n" +
		"Y12345,943 476 5919,Ann,Lee,F,Flat 2, 10 High Street,LS1 4AP\r\n"
	wantCSVRefused(t, report, "line 3, column 8")
}

// wantCSVRefused imports an EMIS patient list report on each engine: it
// is refused with 400 naming where, and nothing is stored.
func wantCSVRefused(t *testing.T, report, where string) {
	t.Helper()
	eachEngine(t, func(t *testing.T, c *client) {
		before := storedCounts(t, c)
		r := c.do("POST", "/$import?format=csv&mapping=emis-patient-list", report, "Content-Type", "text/csv").want(t, 400)
		if !strings.Contains(string(r.body), `"expression":["`+where+`"]`) {
			t.Errorf("the refusal does not name %s: %s", where, r.body)
		}
		if got := storedCounts(t, c); got != before {
			t.Errorf("a refused report changed the counts: %s, then %s", before, got)
		}
	}, withImport)
}

// TestImportCSVCarriageReturns imports a report saved by Excel for Mac,
// whose rows end with a carriage return alone: each row is imported, and
// an error names its line, where the whole file was read as one header
// row and nothing imported.
func TestImportCSVCarriageReturns(t *testing.T) {
	report := "Organisation,NHS Number,First Name,Surname,Date of Birth,Gender\r" +
		"Y12345,943 476 5919,Ann,Lee,12-Oct-1948,F\r" +
		"Y12345,943 476 0089,Bob,Lee,13-Oct-1949,M\r"
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("POST", "/$import?format=csv&mapping=emis-patient-list", report, "Content-Type", "text/csv").want(t, 200)
		if got := param(r.json(t), "created")["valueInteger"]; got != float64(3) {
			t.Errorf("created %v, want 3 (two patients and their practice): %.600s", got, r.body)
		}
		if got := storedOne(t, c, "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434760089")["birthDate"]; got != "1949-10-13" {
			t.Errorf("birthDate %v", got)
		}
		bad := strings.Replace(report, "13-Oct-1949", "13-Oct-19x9", 1)
		r = c.do("POST", "/$import?format=csv&mapping=emis-patient-list", bad, "Content-Type", "text/csv").want(t, 400)
		if !strings.Contains(string(r.body), `"expression":["line 3, column Date of Birth"]`) {
			t.Errorf("the refusal does not name line 3: %s", r.body)
		}
	}, withImport)
}

// TestImportCSVOpenQuote imports a report where a quote opened in a cell
// of line 2 is never closed, so that every later line is read into that
// cell: the refusal names line 2, where the row starts, not the last line
// of the file, and the column of the cell, and nothing is stored.
func TestImportCSVOpenQuote(t *testing.T) {
	report := "Organisation,NHS Number,First Name,Surname,Date of Birth,Gender\n" +
		"Y12345,943 476 5919,\"Ann,Lee,12-Oct-1948,F\n" +
		"Y12345,943 476 0089,Bob,Lee,12-Oct-1948,M\n" +
		"Y12345,999 000 0018,Cy,Lee,12-Oct-1948,M\n"
	wantCSVRefused(t, report, "line 2, column First Name")
}

// TestImportCSVBareQuote imports a report with a quote inside a cell that
// is not quoted, as a name typed with an apostrophe key that gave a quote
// (Jo"Brien): the refusal names the line and the column of the cell, and
// nothing is stored.
func TestImportCSVBareQuote(t *testing.T) {
	report := "Organisation,NHS Number,First Name,Surname,Date of Birth,Gender\n" +
		"Y12345,943 476 0089,Bob,Lee,12-Oct-1948,M\n" +
		"Y12345,943 476 5919,Jo,O\"Brien,12-Oct-1948,F\n"
	wantCSVRefused(t, report, "line 3, column Surname")
}

// TestImportCSVRepeatedHeader imports a report that repeats the headers
// of a value and its date the mapping reads: the first pair is imported,
// and the report warns, naming each header, that the others are not.
func TestImportCSVRepeatedHeader(t *testing.T) {
	report := "Organisation,NHS Number,First Name,Surname,HbA1c,HbA1c Date,HbA1c,HbA1c Date\n" +
		"Y12345,943 476 5919,Ann,Lee,48,01/02/2026,52,01/05/2026\n"
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("POST", "/$import?format=csv&mapping=emis-patient-list", report, "Content-Type", "text/csv").want(t, 200)
		for _, header := range []string{"HbA1c", "HbA1c Date"} {
			if !strings.Contains(string(r.body), `{"name":"location","valueString":"line 1, column `+header+`"},{"name":"message","valueString":"2 columns are headed`) {
				t.Errorf("the report does not warn that %q is repeated: %s", header, r.body)
			}
		}
		if got := toJSON(t, storedOne(t, c, "Observation")["valueQuantity"]); !strings.Contains(got, `"value":48`) {
			t.Errorf("stored HbA1c %s, want the first column's 48", got)
		}
	}, withImport)
}

// TestImportGPConnectInterpreter imports a GP Connect patient whose NHS
// communication extensions say an interpreter is needed for one of two
// languages: the stored Patient says so with R4's interpreterRequired
// extension, once, and keeps both languages.
func TestImportGPConnectInterpreter(t *testing.T) {
	const comm = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-NHSCommunication-1"
	language := func(code string, interpreter bool) string {
		return fmt.Sprintf(`{"url":%q,"extension":[{"url":"language","valueCodeableConcept":{"coding":[{"system":"https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-HumanLanguage-1","code":%q}]}},{"url":"interpreterRequired","valueBoolean":%t}]}`, comm, code, interpreter)
	}
	record := `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","id":"p",
		"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9690937286"}],
		"extension":[` + language("gd", true) + `,` + language("en", false) + `]}}]}`
	eachEngine(t, func(t *testing.T, c *client) {
		report := c.do("POST", "/$import?format=gpconnect", record, "Content-Type", "application/fhir+json").want(t, 200)
		if strings.Contains(string(report.body), "interpreterRequired") {
			t.Errorf("the report says the interpreter need is not carried: %s", report.body)
		}
		p := storedOne(t, c, "Patient")
		if got := toJSON(t, p["extension"]); got != `[{"url":"http://hl7.org/fhir/StructureDefinition/patient-interpreterRequired","valueBoolean":true}]` {
			t.Errorf("Patient.extension %s", got)
		}
		if got := len(p["communication"].([]any)); got != 2 {
			t.Errorf("%d languages stored, want 2", got)
		}
	}, withImport)
}

// TestExportGPDeleted exports a Patient and an Appointment that were
// deleted: 410, as a read of them is, in each format, and 404 for ones
// never held.
func TestExportGPDeleted(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.create("Organization", `{"resourceType":"Organization","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"U80001"}]}`)
		pid := c.create("Patient", `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}]}`)["id"].(string)
		aid := c.create("Appointment", `{"resourceType":"Appointment","status":"proposed","participant":[{"actor":{"reference":"Patient/`+pid+`"},"status":"accepted"}]}`)["id"].(string)
		const booking = "format=gpconnect&organization=U80001&provider=https://provider.example/fhir"
		for _, path := range []string{
			"/Patient/" + pid + "/$export-gp?format=bundle",
			"/Patient/" + pid + "/$export-gp?format=csv",
			"/Appointment/" + aid + "/$export-gp?" + booking,
		} {
			resource, _, _ := strings.Cut(path, "/$")
			c.do("DELETE", resource, "").want(t, 204)
			c.do("GET", resource, "").want(t, 410)
			r := c.do("GET", path, "").want(t, 410)
			if !strings.Contains(string(r.body), strings.TrimPrefix(resource, "/")+" was deleted") {
				t.Errorf("GET %s: %s", path, r.body)
			}
			never := strings.Replace(path, resource, resource+"-never", 1)
			c.do("GET", never, "").want(t, 404)
		}
	}, withImport)
}

// TestImportGPConnectProficiency imports a GP Connect patient whose NHS
// communication extension says how (spoken, both ways) and how well
// (good) they use their language: the stored Patient says so in UK
// Core's place, the proficiency extension on Patient.communication, in
// the HL7 v3 codes it binds to, and the report says nothing is left out.
func TestImportGPConnectProficiency(t *testing.T) {
	const (
		comm        = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-NHSCommunication-1"
		mode        = "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-LanguageAbilityMode-1"
		proficiency = "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-LanguageAbilityProficiency-1"
	)
	coded := func(name, system, code string) string {
		return fmt.Sprintf(`{"url":%q,"valueCodeableConcept":{"coding":[{"system":%q,"code":%q}]}}`, name, system, code)
	}
	record := `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","id":"p",
		"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9690937286"}],
		"extension":[{"url":"` + comm + `","extension":[` + coded("language", "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-HumanLanguage-1", "gd") + `,
			` + coded("modeOfCommunication", mode, "ESP") + `,` + coded("modeOfCommunication", mode, "RSP") + `,` + coded("communicationProficiency", proficiency, "G") + `]}]}}]}`
	eachEngine(t, func(t *testing.T, c *client) {
		report := c.do("POST", "/$import?format=gpconnect", record, "Content-Type", "application/fhir+json").want(t, 200)
		if strings.Contains(string(report.body), "modeOfCommunication") || strings.Contains(string(report.body), "communicationProficiency") {
			t.Errorf("the report says the mode or proficiency is not carried: %s", report.body)
		}
		p := storedOne(t, c, "Patient")
		// As toJSON writes it: keys in order.
		want := `[{"extension":[{"extension":[` +
			`{"url":"level","valueCoding":{"code":"G","system":"http://terminology.hl7.org/CodeSystem/v3-LanguageAbilityProficiency"}},` +
			`{"url":"type","valueCoding":{"code":"ESP","system":"http://terminology.hl7.org/CodeSystem/v3-LanguageAbilityMode"}},` +
			`{"url":"type","valueCoding":{"code":"RSP","system":"http://terminology.hl7.org/CodeSystem/v3-LanguageAbilityMode"}}],` +
			`"url":"http://hl7.org/fhir/StructureDefinition/patient-proficiency"}],` +
			`"language":{"coding":[{"code":"gd","system":"urn:ietf:bcp:47"}]}}]`
		if got := toJSON(t, p["communication"]); got != want {
			t.Errorf("Patient.communication\n%s\nwant\n%s", got, want)
		}
	}, withImport)
}

// TestImportPDSSuperseded imports PDS's answer to a retrieve of an NHS
// number superseded in a merge, which is the record of another number:
// the record held under the number asked for (with what was recorded of
// it) becomes inactive and replaced-by the record answered, which
// replaces it, rather than the person being held twice. The number asked
// for is refused when it is not an NHS number, and with other formats.
func TestImportPDSSuperseded(t *testing.T) {
	answer, err := os.ReadFile("../mappers/pds/testdata/sandbox-mocks/Patient.json")
	if err != nil {
		t.Fatal(err)
	}
	const asked, answered = "9000000017", "9000000009"
	eachEngine(t, func(t *testing.T, c *client) {
		old := c.create("Patient", `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+asked+`"}],
			"name":[{"family":"SMITH","given":["Jane"]}],"telecom":[{"system":"phone","value":"01632 960587"}]}`)["id"].(string)
		report := c.do("POST", "/$import?format=pds&nhsNumber="+asked, string(answer), "Content-Type", "application/fhir+json").want(t, 200)
		if !strings.Contains(string(report.body), "superseded") {
			t.Errorf("the report does not say %s was superseded: %s", asked, report.body)
		}
		retired := storedOne(t, c, "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|"+asked)
		survivor := storedOne(t, c, "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|"+answered)
		if retired["id"] != old || retired["active"] != false || toJSON(t, retired["link"]) != `[{"other":{"reference":"Patient/`+survivor["id"].(string)+`"},"type":"replaced-by"}]` {
			t.Errorf("the record of the superseded number: %s", toJSON(t, retired))
		}
		if !strings.Contains(toJSON(t, retired["telecom"]), "01632 960587") {
			t.Errorf("the superseded record lost what was recorded of it: %s", toJSON(t, retired))
		}
		if got := toJSON(t, survivor["link"]); got != `[{"other":{"reference":"Patient/`+old+`"},"type":"replaces"}]` {
			t.Errorf("the record answered: link %s", got)
		}
		// Again: nothing new, the links not doubled.
		again := c.do("POST", "/$import?format=pds&nhsNumber="+asked, string(answer), "Content-Type", "application/fhir+json").want(t, 200)
		if got := param(again.json(t), "created")["valueInteger"]; got != float64(0) {
			t.Errorf("a second import created %v records", got)
		}
		if got := toJSON(t, storedOne(t, c, "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|"+asked)["link"]); strings.Count(got, "replaced-by") != 1 {
			t.Errorf("after a second import the superseded record's links are %s", got)
		}
		before := storedCounts(t, c)
		c.do("POST", "/$import?format=pds&nhsNumber=9000000018", string(answer), "Content-Type", "application/fhir+json").want(t, 400)
		c.do("POST", "/$import?format=hl7v2&nhsNumber="+asked, "MSH|", "Content-Type", importop.HL7v2MediaType).want(t, 400)
		if got := storedCounts(t, c); got != before {
			t.Errorf("refused imports changed the counts: %s, then %s", before, got)
		}
	}, withImport)
}

// TestImportGPConnectLanguage imports a GP Connect patient whose language
// is coded in Care Connect's code system of human languages, which UK
// Core retired for BCP 47: the stored Patient is found by a search for the
// language in BCP 47, as UK Core binds it; a code that is no BCP 47
// language tag (Care Connect's q codes) is kept as sent.
func TestImportGPConnectLanguage(t *testing.T) {
	const comm = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-NHSCommunication-1"
	language := func(code string) string {
		return fmt.Sprintf(`{"url":%q,"extension":[{"url":"language","valueCodeableConcept":{"coding":[{"system":"https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-HumanLanguage-1","code":%q,"display":"a language"}]}}]}`, comm, code)
	}
	record := `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","id":"p",
		"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9690937286"}],
		"extension":[` + language("gd") + `,` + language("q4") + `]}}]}`
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("POST", "/$import?format=gpconnect", record, "Content-Type", "application/fhir+json").want(t, 200)
		found := c.do("GET", "/Patient?language=urn:ietf:bcp:47|gd", "").want(t, 200).json(t)
		if list, _ := found["entry"].([]any); len(list) != 1 {
			t.Errorf("a search for Scottish Gaelic in BCP 47 found %d Patients, want 1", len(list))
		}
		got := toJSON(t, storedOne(t, c, "Patient")["communication"])
		if want := `[{"language":{"coding":[{"code":"gd","display":"a language","system":"urn:ietf:bcp:47"}]}},` +
			`{"language":{"coding":[{"code":"q4","display":"a language","system":"https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-HumanLanguage-1"}]}}]`; got != want {
			t.Errorf("Patient.communication\n%s\nwant\n%s", got, want)
		}
	}, withImport)
}

// TestExportGPFormula exports as coded-entries CSV a goal written in the
// person's own words that a spreadsheet would run as a formula: the cell
// starts with an apostrophe, so that a GP practice opening the file sees
// the words, while a negative value stays a number.
func TestExportGPFormula(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		pid := c.create("Patient", `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}]}`)["id"].(string)
		c.create("Goal", `{"resourceType":"Goal","lifecycleStatus":"active","startDate":"2026-11-03","subject":{"reference":"Patient/`+pid+`"},
			"description":{"coding":[{"system":"http://snomed.info/sct","code":"410289001"}],"text":"=HYPERLINK(\"https://example.org\",\"walk\")"}}`)
		c.create("Observation", `{"resourceType":"Observation","status":"final","subject":{"reference":"Patient/`+pid+`"},"effectiveDateTime":"2026-11-03",
			"code":{"coding":[{"system":"http://snomed.info/sct","code":"364075005"}]},"valueQuantity":{"value":-1.5,"unit":"@SUM(1)"}}`)
		body := string(c.do("GET", "/Patient/"+pid+"/$export-gp?format=csv", "").want(t, 200).body)
		for _, want := range []string{`'=HYPERLINK`, `,-1.5,'@SUM(1)`} {
			if !strings.Contains(body, want) {
				t.Errorf("the coded entries hold no %s:\n%s", want, body)
			}
		}
	}, withImport)
}

// TestExportGPDateInTheUK exports as coded entries an Observation taken
// at 23:30 UTC on a summer evening and one at 20:00 in New York on a
// winter one: each is dated the day it fell on in the UK, 1 July and 4
// December, where the date written in the sender's zone was the day
// before.
func TestExportGPDateInTheUK(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		pid := c.create("Patient", `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}]}`)["id"].(string)
		for code, at := range map[string]string{"364075005": "2026-06-30T23:30:00Z", "27113001": "2026-12-03T20:00:00-05:00"} {
			c.create("Observation", `{"resourceType":"Observation","status":"final","subject":{"reference":"Patient/`+pid+`"},"effectiveDateTime":"`+at+`",
				"code":{"coding":[{"system":"http://snomed.info/sct","code":"`+code+`"}]},"valueQuantity":{"value":70,"unit":"kg"}}`)
		}
		body := string(c.do("GET", "/Patient/"+pid+"/$export-gp?format=csv", "").want(t, 200).body)
		for _, want := range []string{"9000000009,01/07/2026,364075005,", "9000000009,04/12/2026,27113001,"} {
			if !strings.Contains(body, want) {
				t.Errorf("the coded entries hold no %s:\n%s", want, body)
			}
		}
	}, withImport)
}

// TestImportPDSNotAnObject imports as PDS payloads JSON values that are
// no resource: 400 saying what was sent, in the words of JSON rather than
// of the importer's code.
func TestImportPDSNotAnObject(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		for body, want := range map[string]string{
			`[]`:                 "a JSON array, not an object",
			`"x"`:                "a JSON string, not an object",
			`{"resourceType":1}`: "resourceType is a JSON number, not a string",
		} {
			r := c.do("POST", "/$import?format=pds", body, "Content-Type", "application/fhir+json").want(t, 400)
			if !strings.Contains(string(r.body), want) || strings.Contains(string(r.body), "Go ") {
				t.Errorf("%s: %s, want %q", body, r.body, want)
			}
		}
	}, withImport)
}

// TestImportPDSInvalidUTF8 imports as a PDS payload a Patient whose
// family name holds a byte that is not UTF-8: 400 locating the error at
// the payload's root, $, as the importer's other refusals of the whole
// payload are, in the diagnostics and the expression.
func TestImportPDSInvalidUTF8(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		before := storedCounts(t, c)
		r := c.do("POST", "/$import?format=pds", "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Sm\xffith\"}]}", "Content-Type", "application/fhir+json").want(t, 400)
		var oo struct {
			Issue []struct {
				Diagnostics string
				Expression  []string
			}
		}
		if err := json.Unmarshal(r.body, &oo); err != nil || len(oo.Issue) != 1 {
			t.Fatalf("%v: %s", err, r.body)
		}
		is := oo.Issue[0]
		if !strings.HasPrefix(is.Diagnostics, "$: invalid JSON at offset ") || !strings.Contains(is.Diagnostics, "invalid UTF-8") || len(is.Expression) != 1 || is.Expression[0] != "$" {
			t.Errorf("the refusal is %s, want it at $", r.body)
		}
		if after := storedCounts(t, c); after != before {
			t.Errorf("stored %s, was %s", after, before)
		}
	}, withImport)
}

// TestImportPDSKeepsLinks merges a record into the one PDS holds for
// 9000000009 (an HL7 v2 A40), then has PDS answer a retrieve of a number
// it superseded: the survivor's links to both retired records stay when
// PDS's version of the person, which says nothing of them, is imported
// again, and that import writes nothing new.
func TestImportPDSKeepsLinks(t *testing.T) {
	answer, err := os.ReadFile("../mappers/pds/testdata/sandbox-mocks/Patient.json")
	if err != nil {
		t.Fatal(err)
	}
	const survivor, merged, superseded = "9000000009", "9434760054", "9000000017"
	merge := "MSH|^~\\&|PAS|RXX|CF|PCN|20260101120000||ADT^A40^ADT_A39|L1|P|2.5\rEVN|A40|20260101\r" +
		"PID|1||" + survivor + "^^^NHS^NH||SMITH^JANE||20101022|F\rMRG|" + merged + "^^^NHS^NH\r"
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("POST", "/$import?format=hl7v2", merge, "Content-Type", importop.HL7v2MediaType).want(t, 200)
		c.do("POST", "/$import?format=pds&nhsNumber="+superseded, string(answer), "Content-Type", "application/fhir+json").want(t, 200)
		search := "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|"
		want := `[{"other":{"reference":"Patient/` + storedOne(t, c, search+merged)["id"].(string) + `"},"type":"replaces"},` +
			`{"other":{"reference":"Patient/` + storedOne(t, c, search+superseded)["id"].(string) + `"},"type":"replaces"}]`
		if got := toJSON(t, storedOne(t, c, search+survivor)["link"]); got != want {
			t.Fatalf("before PDS answers again the survivor's links are %s, want %s", got, want)
		}
		again := c.do("POST", "/$import?format=pds", string(answer), "Content-Type", "application/fhir+json").want(t, 200).json(t)
		if got := toJSON(t, storedOne(t, c, search+survivor)["link"]); got != want {
			t.Errorf("after PDS answered again the survivor's links are %s, want %s", got, want)
		}
		if got := param(again, "updated")["valueInteger"]; got != float64(0) {
			t.Errorf("PDS's same answer again updated %v records", got)
		}
	}, withImport)
}

// TestHL7v2TwoNHSNumbers: an ADT message whose PID, or MRG, gives two
// different NHS numbers names two people: it is refused (AE, naming the
// repetition), and nothing is stored, rather than applied to the first.
// The same NHS number given twice is one person.
func TestHL7v2TwoNHSNumbers(t *testing.T) {
	const msh = "MSH|^~\\&|PAS|RX1|CARE|PCN|20261201101500||"
	eachEngine(t, func(t *testing.T, c *client) {
		for _, tc := range []struct{ name, msg, want string }{
			{"PID", msh + "ADT^A28|T1|P|2.4\rPID|1||9000000009^^^NHS^NH~9434765919^^^NHS^NH||Smith^Mary||19600101|F\r", "ERR||PID^1^3^2^1|"},
			{"MRG", msh + "ADT^A40|T2|P|2.4\rPID|1||9000000009^^^NHS^NH||Smith^Mary\rMRG|9434765919^^^NHS^NH~9000000017^^^NHS^NH\r", "ERR||MRG^1^1^2^1|"},
		} {
			r := c.do("POST", "/$import?format=hl7v2", tc.msg, "Content-Type", importop.HL7v2MediaType)
			if !strings.Contains(string(r.body), "MSA|AE|") || !strings.Contains(string(r.body), tc.want) {
				t.Errorf("%s with two NHS numbers: %d %q, want AE and %s", tc.name, r.status, r.body, tc.want)
			}
		}
		if n := c.do("GET", "/Patient?_summary=count", "").want(t, 200).json(t)["total"]; n != float64(0) {
			t.Errorf("%v Patients stored after refused messages, want none", n)
		}
		r := c.do("POST", "/$import?format=hl7v2", msh+"ADT^A28|T3|P|2.4\rPID|1||9000000009^^^NHS^NH~900 000 0009^^^NHS^NHS||Smith^Mary||19600101|F\r", "Content-Type", importop.HL7v2MediaType)
		if !strings.Contains(string(r.body), "MSA|AA|T3") {
			t.Errorf("one NHS number given twice: %d %q, want AA", r.status, r.body)
		}
	}, withImport)
}

// TestImportHL7v2AckToOIDSender imports a message from a sender named by
// its universal id alone: the acknowledgement is addressed to it, its
// MSH-5 and MSH-6 the message's MSH-3 and MSH-4 whole, not left empty.
func TestImportHL7v2AckToOIDSender(t *testing.T) {
	msg := "MSH|^~\\&|^1.2.826.0.1.1^ISO|^1.2.826.0.1.2^ISO|CF^1.2.826.0.1.3^ISO|PCN|20260101120000||ADT^A28^ADT_A05|O1|P|2.5\rEVN|A28|20260101\r" +
		"PID|1||9434760046^^^NHS^NH||WARD^SARAH||19480312|F\r"
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("POST", "/$import?format=hl7v2", msg, "Content-Type", importop.HL7v2MediaType).want(t, 200)
		if want := "MSH|^~\\&|CF^1.2.826.0.1.3^ISO|PCN|^1.2.826.0.1.1^ISO|^1.2.826.0.1.2^ISO|"; !bytes.HasPrefix(r.body, []byte(want)) {
			t.Errorf("acknowledgement %q, want it to start %q", r.body, want)
		}
	}, withImport)
}

// TestImportHL7v2SendersByOID imports two messages with the same control
// id from two senders named by their universal ids alone (MSH-3 and MSH-4
// ^OID^ISO, as the FHIR Converter's samples are), about two patients:
// both are applied, the second not taken for a repeat of the first, and
// each receipt names its sender.
func TestImportHL7v2SendersByOID(t *testing.T) {
	msg := func(oid, nhs, family string) string {
		return "MSH|^~\\&|^" + oid + "^ISO|^" + oid + "^ISO|CF|PCN|20260101120000||ADT^A28^ADT_A05|1|P|2.5\rEVN|A28|20260101\r" +
			"PID|1||" + nhs + "^^^NHS^NH||" + family + "^SARAH||19480312|F\r"
	}
	eachEngine(t, func(t *testing.T, c *client) {
		for _, m := range []struct{ oid, nhs, family string }{{"1.2.826.0.1.1", "9434760046", "WARD"}, {"1.2.826.0.1.2", "9434765919", "SMITH"}} {
			c.do("POST", "/$import?format=hl7v2", msg(m.oid, m.nhs, m.family), "Content-Type", importop.HL7v2MediaType).want(t, 200)
			p := storedOne(t, c, "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|"+m.nhs)
			if got := toJSON(t, p["name"]); !strings.Contains(got, m.family) {
				t.Errorf("the patient of %s is named %s", m.oid, got)
			}
			receipt := storedOne(t, c, "Provenance?target=Patient/"+p["id"].(string))
			if got, want := toJSON(t, receipt["entity"]), `"system":"urn:hl7v2:control-id:%5E`+m.oid+`%5EISO|%5E`+m.oid+`%5EISO","value":"1"`; !strings.Contains(got, want) {
				t.Errorf("receipt entity %s, want %s", got, want)
			}
		}
	}, withImport)
}

// TestImportHL7v2SenderWithSpaces imports a message from a sending
// application named "EMIS Web", twice: AA both times, the patient stored
// once and its receipt naming the sender in a system that is a uri.
func TestImportHL7v2SenderWithSpaces(t *testing.T) {
	msg := "MSH|^~\\&|EMIS Web|THE SURGERY|CF|PCN|20260101120000||ADT^A28^ADT_A05|S1|P|2.4\rEVN|A28|20260101\r" +
		"PID|1||9434760046^^^NHS^NH||WARD^SARAH||19480312|F\r"
	eachEngine(t, func(t *testing.T, c *client) {
		for round := 1; round <= 2; round++ {
			r := c.do("POST", "/$import?format=hl7v2", msg, "Content-Type", importop.HL7v2MediaType).want(t, 200)
			if !bytes.Contains(r.body, []byte("\rMSA|AA|S1")) {
				t.Fatalf("round %d: %q", round, r.body)
			}
		}
		p := storedOne(t, c, "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434760046")
		receipt := storedOne(t, c, "Provenance?target=Patient/"+p["id"].(string))
		if got := toJSON(t, receipt["entity"]); !strings.Contains(got, `"system":"urn:hl7v2:control-id:EMIS%20Web|THE%20SURGERY","value":"S1"`) {
			t.Errorf("receipt entity %s", got)
		}
	}, withImport)
}

// TestImportHL7v2NullStatus sends an A31 whose PID-32 is "", asking that
// the NHS number's verification status be deleted: AA without a warning
// that "" is no status, and the status is gone.
func TestImportHL7v2NullStatus(t *testing.T) {
	const msh = "MSH|^~\\&|PAS|RXX|CF|PCN|20260101120000||ADT^A31^ADT_A05|"
	pid := func(status string) string {
		return "PID|1||9434760046^^^NHS^NH||WARD^SARAH||19480312|F" + strings.Repeat("|", 24) + status + "\r"
	}
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("POST", "/$import?format=hl7v2", msh+"S1|P|2.4\r"+pid("NSTS01"), "Content-Type", importop.HL7v2MediaType).want(t, 200)
		r := c.do("POST", "/$import?format=hl7v2", msh+"S2|P|2.4\r"+pid(`""`), "Content-Type", importop.HL7v2MediaType).want(t, 200)
		if !bytes.Contains(r.body, []byte("\rMSA|AA|S2")) || bytes.Contains(r.body, []byte("\rERR|")) {
			t.Errorf("ack %q, want AA without ERR", r.body)
		}
		p := storedOne(t, c, "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434760046")
		if got := toJSON(t, p["identifier"]); got != `[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434760046"}]` {
			t.Errorf("identifier %s, want the NHS number without its status", got)
		}
	}, withImport)
}

// TestImportCSVSeptember imports reports whose September dates are
// abbreviated Sept, as British English locale data writes them: each
// birth date is stored, where the whole report was refused.
func TestImportCSVSeptember(t *testing.T) {
	reports := map[string]string{
		"systmone-patient-list": "NHS Number,First Name,Surname,Date of Birth,Gender\r\n943 476 5919,Ann,Lee,12 Sept 1948,F\r\n",
		"emis-patient-list":     "Organisation,NHS Number,First Name,Surname,Date of Birth,Gender\r\nY12345,943 476 0089,Bob,Lee,13-SEPT-1949,M\r\n",
	}
	eachEngine(t, func(t *testing.T, c *client) {
		for layout, report := range reports {
			c.do("POST", "/$import?format=csv&mapping="+layout, report, "Content-Type", "text/csv").want(t, 200)
		}
		for nhs, want := range map[string]string{"9434765919": "1948-09-12", "9434760089": "1949-09-13"} {
			if got := storedOne(t, c, "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|"+nhs)["birthDate"]; got != want {
				t.Errorf("%s: birthDate %v, want %s", nhs, got, want)
			}
		}
	}, withImport)
}

// TestImportNoncharacter imports a CSV report and HL7 v2 messages holding
// U+FFFE, which FHIR resources cannot carry, since XML cannot: the report
// is refused naming its cell, a message holding it is rejected (AR)
// naming its segment, and one escaping it (\XEFBFBE\) is applied without
// it, where each answered the store's refusal of entry 0 of a Bundle.
func TestImportNoncharacter(t *testing.T) {
	// With a byte order mark, read as UTF-8.
	report := "\uFEFFOrganisation,NHS Number,First Name,Surname,Date of Birth,Gender\r\nY12345,943 476 5919,Ann,Le\uFFFEe,12-Oct-1948,F\r\n"
	const msh = "MSH|^~\\&|PAS|RXX|CF|PCN|20260101120000||ADT^A28^ADT_A05|"
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("POST", "/$import?format=csv&mapping=emis-patient-list", report, "Content-Type", "text/csv").want(t, 400)
		if !strings.Contains(string(r.body), `"expression":["line 2, column Surname"]`) {
			t.Errorf("the refusal does not name the cell: %s", r.body)
		}
		r = c.do("POST", "/$import?format=hl7v2", msh+"F1|P|2.4\rPID|1||9434760046^^^NHS^NH||WARD\uFFFE^SARAH||19480312|F\r", "Content-Type", importop.HL7v2MediaType).want(t, 400)
		if !bytes.Contains(r.body, []byte("\rMSA|AR|F1|segment 2: character U+FFFE")) {
			t.Errorf("a message holding U+FFFE: %q, want AR naming segment 2", r.body)
		}
		c.do("POST", "/$import?format=hl7v2", msh+"F2|P|2.4\rPID|1||9434760046^^^NHS^NH||WARD\\XEFBFBE\\^SARAH||19480312|F\r", "Content-Type", importop.HL7v2MediaType).want(t, 200)
		if got := toJSON(t, storedOne(t, c, "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434760046")["name"]); got != `[{"family":"WARD","given":["SARAH"]}]` {
			t.Errorf("name %s", got)
		}
	}, withImport)
}

// TestImportCSVDelimiter imports a report separated by ¬, a character of
// two bytes in UTF-8, with a mapping naming it: the row is read, where no
// header was found. A mapping naming a quote as the separator is refused
// at the mapping, where it was refused at line 1 of the file.
func TestImportCSVDelimiter(t *testing.T) {
	mapping := func(delimiter string) string {
		return url.QueryEscape(`{"name":"extract","delimiter":"` + delimiter + `","patient":{"nhsNumber":"NHS Number","family":"Surname"}}`)
	}
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("POST", "/$import?format=csv&mapping="+mapping("¬"), "NHS Number¬Surname\r\n943 476 5919¬Lee\r\n", "Content-Type", "text/csv").want(t, 200)
		if got := toJSON(t, storedOne(t, c, "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919")["name"]); got != `[{"family":"Lee","use":"usual"}]` {
			t.Errorf("name %s", got)
		}
		r := c.do("POST", "/$import?format=csv&mapping="+mapping(`\"`), "NHS Number\"Surname\r\n", "Content-Type", "text/csv").want(t, 400)
		if !strings.Contains(string(r.body), `"expression":["mapping"]`) || !strings.Contains(string(r.body), "Delimiter") {
			t.Errorf("a quote as the separator: %s, want a refusal of the mapping's Delimiter", r.body)
		}
	}, withImport)
}

// TestImportGPConnectProviderWithSpace imports a GP Connect record naming
// a provider whose URL holds a space, which no identifier system can: 400
// naming the provider parameter, not an entry of the payload, and nothing
// stored.
func TestImportGPConnectProviderWithSpace(t *testing.T) {
	gpc := importPayloads(t)[3]
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("POST", "/$import?"+gpc.query+"&provider="+url.QueryEscape("https://provider.example/gp connect/fhir"), gpc.body, "Content-Type", gpc.contentType).want(t, 400)
		if !strings.Contains(string(r.body), `"expression":["provider"]`) {
			t.Errorf("the refusal does not name provider: %.500s", r.body)
		}
		if got := storedCounts(t, c); got != "Patient=0 Organization=0 Practitioner=0 Observation=0 Condition=0 Encounter=0" {
			t.Errorf("a refused import stored %s", got)
		}
	}, withImport)
}

// TestExportGPOrganizationNotODS asks for the booking of an Appointment by
// organization "Y12345,A82038", with both organisations stored: 400
// naming organization, where the booking named whichever the search found
// first.
func TestExportGPOrganizationNotODS(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		for _, ods := range []string{"Y12345", "A82038"} {
			c.do("POST", "/Organization", `{"resourceType":"Organization","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"`+ods+`"}]}`, "Content-Type", "application/fhir+json").want(t, 201)
		}
		appt := c.do("POST", "/Appointment", `{"resourceType":"Appointment","status":"proposed","participant":[{"actor":{"display":"A patient"},"status":"needs-action"}]}`,
			"Content-Type", "application/fhir+json").want(t, 201).json(t)["id"].(string)
		for _, ods := range []string{"Y12345,A82038", "Y12345|A82038", "y12345"} {
			r := c.do("GET", "/Appointment/"+appt+"/$export-gp?format=gpconnect&provider=https://provider.example/fhir&organization="+url.QueryEscape(ods), "").want(t, 400)
			if !strings.Contains(string(r.body), `"expression":["organization"]`) {
				t.Errorf("organization %s: %s, want a refusal naming organization", ods, r.body)
			}
		}
	}, withImport)
}

// TestImportBrokenGzip imports a payload of each format gzipped and cut
// short, and creates and updates a Patient so, alone and in a
// transaction: 400 saying the request
// body could not be read, for each alike, and nothing stored.
func TestImportBrokenGzip(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		broken := func(b string) string {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write([]byte(b))
			zw.Close()
			// Without the trailer (the checksum and the length) and the
			// end of the data.
			return buf.String()[:buf.Len()-12]
		}
		before := storedCounts(t, c)
		type req struct{ method, path, contentType, body string }
		reqs := []req{
			{"POST", "/Patient", "application/fhir+json", headersPatient},
			{"PUT", "/Patient/zipped", "application/fhir+json", strings.Replace(headersPatient, `{"resourceType":"Patient"`, `{"resourceType":"Patient","id":"zipped"`, 1)},
			{"POST", "/", "application/fhir+json", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + headersPatient + `,"request":{"method":"POST","url":"Patient"}}]}`},
		}
		for _, p := range importPayloads(t) {
			reqs = append(reqs, req{"POST", "/$import?" + p.query, p.contentType, p.body})
		}
		for _, r := range reqs {
			got := c.do(r.method, r.path, broken(r.body), "Content-Type", r.contentType, "Content-Encoding", "gzip").want(t, http.StatusBadRequest)
			if d := got.outcome(t, "invalid", ""); !strings.HasPrefix(d, "reading the request body: ") {
				t.Errorf("%s %s: %q, want it to say the body could not be read", r.method, r.path, d)
			}
		}
		if after := storedCounts(t, c); after != before {
			t.Errorf("stored %s, was %s", after, before)
		}
	}, withImport)
}

// TestImportStoredDaylessDate: a Patient stored before writes refused a
// date on a day its month lacks (born 30 February) is exported by
// $export-gp as it is held, and a PDS import of that person corrects the
// date, where both were 400 naming the stored date as the request's fault.
func TestImportStoredDaylessDate(t *testing.T) {
	pdsPatient := importPayloads(t)[1].body
	const search = "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009"
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("POST", "/$import?format=pds", pdsPatient, "Content-Type", "application/fhir+json").want(t, 200)
		p := storedOne(t, c, search)
		id := p["id"].(string)
		p["birthDate"] = "2010-02-30"
		p["meta"].(map[string]any)["versionId"] = "2"
		body := []byte(toJSON(t, p))
		ix, err := server.NewIndexer(c.base)
		if err != nil {
			t.Fatal(err)
		}
		index, err := ix.IndexJSON("Patient", body)
		if err != nil {
			t.Fatal(err)
		}
		w := &store.Write{Type: "Patient", ID: id, Expected: 1, LastUpdated: time.Now().UTC().Truncate(time.Millisecond), JSON: body, Index: index}
		if err := c.st.Put(t.Context(), w); err != nil {
			t.Fatal(err)
		}
		r := c.do("GET", "/Patient/"+id+"/$export-gp?format=bundle", "").want(t, 200)
		if !bytes.Contains(r.body, []byte(`"birthDate":"2010-02-30"`)) {
			t.Errorf("$export-gp does not hold the stored birthDate: %s", r.body)
		}
		c.do("POST", "/$import?format=pds", pdsPatient, "Content-Type", "application/fhir+json").want(t, 200)
		if got := storedOne(t, c, search); got["birthDate"] != "2010-10-22" || got["meta"].(map[string]any)["versionId"] != "3" {
			t.Errorf("after the import: birthDate %v, version %v, want 2010-10-22 in version 3", got["birthDate"], got["meta"].(map[string]any)["versionId"])
		}
	}, withImport)
}
