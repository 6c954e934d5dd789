package main

import (
	"context"
	"encoding/json"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestImportExportLocal imports a PDS record into a local data directory,
// again without duplicating it, exports the patient's record, and refuses
// a broken CSV file naming its line.
func TestImportExportLocal(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	carefhir := func(args ...string) (string, error) {
		var out strings.Builder
		err := run(ctx, args, env(nil), &out, io.Discard)
		return out.String(), err
	}
	const pds = "../../mappers/pds/testdata/sandbox-mocks/Patient.json"
	out, err := carefhir("import", "--data", dir, "--format", "pds", pds)
	if err != nil || !strings.Contains(out, `"name":"created","valueInteger":2`) {
		t.Fatalf("import: %v\n%s", err, out)
	}
	id := regexp.MustCompile(`"Patient/([^"]+)"`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("the import report names no Patient:\n%s", out)
	}
	if out, err = carefhir("import", "--data", dir, "--format", "pds", pds); err != nil || !strings.Contains(out, `"name":"created","valueInteger":0`) {
		t.Fatalf("import again: %v\n%s", err, out)
	}
	out, err = carefhir("export", "--data", dir, "--format", "bundle", "--patient", id[1])
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	var b struct {
		Type  string
		Entry []json.RawMessage
	}
	if err := json.Unmarshal([]byte(out), &b); err != nil || b.Type != "collection" || len(b.Entry) != 1 {
		t.Errorf("export: %v %s", err, out)
	}
	_, err = carefhir("import", "--data", dir, "--format", "csv", "--mapping", "emis-patient-list", "testdata/broken.csv")
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("a broken CSV file: %v", err)
	}
	if _, err := carefhir("import", "--data", dir, "--format", "xml", pds); err == nil || !strings.Contains(err.Error(), "format") {
		t.Errorf("an unknown format: %v", err)
	}
}

// TestImportToServer imports an HL7 v2 message into a running server and
// prints its acknowledgement.
func TestImportToServer(t *testing.T) {
	p := start(t, "--data", t.TempDir())
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := []string{"import", "--url", p.base, "--format", "hl7v2", "../../mappers/hl7v2/testdata/uk/A28-register.hl7"}
	if err := run(ctx, args, env(nil), &out, io.Discard); err != nil || !strings.Contains(out.String(), "MSA|AA|MSG0001") {
		t.Fatalf("carefhir %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
}
