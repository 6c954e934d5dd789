package csv

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"carefhir/fhir/fhirjson"
)

// FuzzImport reads any bytes as a report in the built-in EMIS layout (and
// so as Windows-1252): nothing may panic, every batch either has a Bundle
// or an error, and every Bundle is valid FHIR JSON.
func FuzzImport(f *testing.F) {
	for _, name := range []string{"synthetic/emis-patient-list.csv", "synthetic/systmone-patient-list.csv", "list-reconciliation/test/_data/gdppr.csv"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(cohortHeader + "Y1,999 000 0018,,\"A\"\"B\",,\r\n"))
	f.Add([]byte(cohortHeader + "Y1,999 000 0018,,A\x01B,C\x7f,\r\n"))
	m, err := Layout("emis-patient-list")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		im, err := NewImporter(bytes.NewReader(data), m, 3)
		if err != nil {
			return
		}
		for range 10000 {
			r, err := im.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Bundle == nil {
				continue
			}
			if r.Failed() {
				t.Fatalf("a Bundle with errors: %v", r.Issues)
			}
			js, err := fhirjson.Marshal(r.Bundle)
			if err != nil {
				t.Fatalf("the Bundle does not encode: %v", err)
			}
			if _, err := fhirjson.Unmarshal(js); err != nil {
				t.Fatalf("the Bundle is not valid FHIR: %v", err)
			}
		}
		t.Fatal("Next did not reach the end")
	})
}
