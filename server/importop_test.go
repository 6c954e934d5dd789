package server_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"carefhir/mappers/importop"
	"carefhir/server"
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
			{"format=hl7v2", importop.HL7v2MediaType, "this is not HL7", "MSA|AR|"},
			{"format=gpconnect", "text/csv", payloads[2].body, ""},
			{"format=xml", "text/plain", "x", "format"},
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

// TestImportNeedsWriteScopes imports a PDS record, which writes a Patient
// and its practice, with a token that may write Patients only: 403, and
// nothing stored.
func TestImportNeedsWriteScopes(t *testing.T) {
	body := importPayloads(t)[1].body
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			c := newAccessClient(t, e.open(t), principals{
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
