package profiles

import (
	"bytes"
	"context"
	"encoding/json"
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
	f.Add([]byte(`{"resourceType":"QuestionnaireResponse","status":"completed","questionnaire":"#q","contained":[{"resourceType":"Questionnaire","id":"q","status":"active","item":[{"linkId":"1","type":"boolean","required":true},{"linkId":"2","type":"group","enableWhen":[{"question":"1","operator":"=","answerBoolean":true}],"item":[{"linkId":"3","type":"choice","answerOption":[{"valueCoding":{"code":"a"}}]}]}]}],"item":[{"linkId":"1","answer":[{"valueBoolean":false}]},{"linkId":"2","item":[{"linkId":"3","answer":[{"valueString":"x"}]}]}]}`))
	f.Add([]byte(`{"resourceType":"Bundle","type":"document","entry":[{"fullUrl":"http://x/Composition/1","resource":{"resourceType":"Composition","id":"1","status":"final","type":{"text":"t"},"date":"2020","author":[{"reference":"Patient/p/_history/1"}],"title":"t","section":[{"entry":[{"reference":"urn:uuid:1"}],"section":[{"focus":{"reference":"Patient/p"}}]}]}},{"fullUrl":"Patient/p","resource":{"resourceType":"Patient","id":"q"}}],"link":[{"relation":"stylesheet","url":"Binary/css"}]}`))
	f.Add([]byte(`{"resourceType":"Organization","extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-animal","extension":[{"url":"species-x","valueString":"x"}]}],"_id":{"id":"a"},"name":"x"}`))
	v := validator(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		v.Validate(context.Background(), data)
		v.Validate(context.Background(), data, ukPatient, "https://fhir.hl7.org.uk/StructureDefinition/UKCore-CarePlan")
	})
}

func benchmarkValidate(b *testing.B, file string, profiles ...string) {
	benchmarkValidation(b, file, false, profiles...)
}

// benchmarkValidation validates a resource as JSON, or (decoded) as the
// tree decoded once before, which is what the server validates: the tree
// it decodes for validation and the search index alike.
func benchmarkValidation(b *testing.B, file string, decoded bool, profiles ...string) {
	v := validator(b)
	data, err := os.ReadFile(file)
	if err != nil {
		b.Fatal(err)
	}
	validate := func() { v.Validate(context.Background(), data, profiles...) }
	if decoded {
		d := json.NewDecoder(bytes.NewReader(data))
		d.UseNumber()
		var tree any
		if err := d.Decode(&tree); err != nil {
			b.Fatal(err)
		}
		validate = func() { v.ValidateTree(context.Background(), tree, profiles...) }
	}
	// Once first, as a running server has: the compiled expressions and
	// the caches are then filled, and each measured validation does only
	// its own work.
	validate()
	b.ReportAllocs()
	for b.Loop() {
		validate()
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

// BenchmarkValidateUKCorePatientClaimed validates a Patient that claims UK
// Core in meta.profile, as every write of one is validated: a Patient as a
// GP system sends one, with no narrative, an NHS number with its
// verification status and an ethnic category (TestValidResources checks
// that it is valid).
func BenchmarkValidateUKCorePatientClaimed(b *testing.B) {
	benchmarkValidate(b, "testdata/ukcore-patient.json")
}

// BenchmarkValidateBloodPressure validates the R4 example blood pressure
// against the vital signs profile bp, whose components are told apart
// through a slice of their codings (stepsTarget).
func BenchmarkValidateBloodPressure(b *testing.B) {
	benchmarkValidate(b, "../testdata/r4-examples/Observation-blood-pressure.json", "http://hl7.org/fhir/StructureDefinition/bp")
}

// BenchmarkValidateTreeUKCorePatient is
// BenchmarkValidateUKCorePatientClaimed for the decoded tree.
func BenchmarkValidateTreeUKCorePatient(b *testing.B) {
	benchmarkValidation(b, "testdata/ukcore-patient.json", true)
}

// BenchmarkValidateTreeBloodPressure is BenchmarkValidateBloodPressure for
// the decoded tree.
func BenchmarkValidateTreeBloodPressure(b *testing.B) {
	benchmarkValidation(b, "../testdata/r4-examples/Observation-blood-pressure.json", true, "http://hl7.org/fhir/StructureDefinition/bp")
}
