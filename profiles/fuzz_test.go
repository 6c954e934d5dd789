package profiles

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzValidate checks that no input makes the validator panic.
func FuzzValidate(f *testing.F) {
	for _, pattern := range []string{"../testdata/r4-examples/Patient-*.json", "../testdata/r4-examples/CarePlan-*.json", "testdata/validator/*.json"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil && len(data) < 16<<10 {
				f.Add(data)
			}
		}
	}
	f.Add([]byte(`{"resourceType":"Patient","contained":[{"resourceType":"Patient","contained":[]}]}`))
	f.Add([]byte(`{"resourceType":"Patient","text":{"div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"javascript:x\">"}}`))
	v := validator(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		v.Validate(context.Background(), data)
		v.Validate(context.Background(), data, ukPatient, "https://fhir.hl7.org.uk/StructureDefinition/UKCore-CarePlan")
	})
}

func benchmarkValidate(b *testing.B, file string, profiles ...string) {
	v := validator(b)
	data, err := os.ReadFile(file)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		v.Validate(context.Background(), data, profiles...)
	}
}

func BenchmarkValidatePatient(b *testing.B) {
	benchmarkValidate(b, "../testdata/r4-examples/Patient-example.json")
}

func BenchmarkValidatePatientUKCore(b *testing.B) {
	benchmarkValidate(b, "../testdata/r4-examples/Patient-example.json", ukPatient)
}

func BenchmarkValidateCarePlan(b *testing.B) {
	benchmarkValidate(b, "../testdata/r4-examples/CarePlan-example.json")
}

func BenchmarkValidateCarePlanUKCore(b *testing.B) {
	benchmarkValidate(b, "../testdata/r4-examples/CarePlan-example.json", "https://fhir.hl7.org.uk/StructureDefinition/UKCore-CarePlan")
}
