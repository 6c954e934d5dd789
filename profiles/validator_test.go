package profiles

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	sharedOnce sync.Once
	shared     *Validator
	sharedErr  error
)

// validator returns a Validator with the bundled definitions, built once
// for the package's tests.
func validator(t testing.TB) *Validator {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = New(Options{}) })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

func errorsOf(issues []Issue) []Issue {
	var out []Issue
	for _, is := range issues {
		if is.Severity == "error" || is.Severity == "fatal" {
			out = append(out, is)
		}
	}
	return out
}

// r4Known lists the R4 examples that are invalid as published, and why.
var r4Known = map[string]string{
	"Questionnaire-qs1.json":           "nested items have no linkId (Questionnaire.item.linkId is 1..1)",
	"Observation-clinical-gender.json": "performer references an Encounter, which Observation.performer does not allow",
}

// TestR4Examples validates every official R4 example against its base
// definition: none may have an error.
func TestR4Examples(t *testing.T) {
	v := validator(t)
	files, err := filepath.Glob("../testdata/r4-examples/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			errs := errorsOf(v.Validate(context.Background(), data))
			if reason, ok := r4Known[filepath.Base(f)]; ok {
				if len(errs) == 0 {
					t.Errorf("known failure (%s) now passes: remove it from r4Known", reason)
				}
				return
			}
			for _, is := range errs {
				t.Errorf("%s %s %s: %s", is.Severity, is.Code, is.Expression, is.Message)
			}
		})
	}
}

func TestNew(t *testing.T) {
	v := validator(t)
	for _, u := range []string{"Patient", "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient", "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"} {
		if v.StructureDefinition(u) == nil {
			t.Errorf("%s not loaded", u)
		}
	}
	if n := len(v.StructureDefinitions()); n < 500 || !strings.Contains(strings.Join(v.StructureDefinitions(), " "), "UKCore-Observation-VitalSigns-BMI") {
		t.Errorf("%d definitions", n)
	}
}
