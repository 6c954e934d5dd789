package profiles

import (
	"context"
	"encoding/json"
	"maps"
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

// r4Known lists the R4 examples that are invalid as published, and why.
var r4Known = map[string]string{
	"Questionnaire-qs1.json":                            "nested items have no linkId (Questionnaire.item.linkId is 1..1)",
	"Observation-clinical-gender.json":                  "performer references an Encounter, which Observation.performer does not allow",
	"Bundle-10bb101f-a121-4264-a920-67be9cb82c74.json":  "the entry with fullUrl .../Patient/pat12 holds Patient pat2: a RESTful fullUrl must end with the resource's type and id",
	"Bundle-3a0707d3-549e-4467-b8b8-5a2ab3800efe.json":  "the entry with fullUrl .../Patient/pat12 holds Patient pat2: a RESTful fullUrl must end with the resource's type and id",
	"Bundle-lri-example.json":                           "16 entries have a fullUrl ending lri-<id> where the resource id is <id>: a RESTful fullUrl must end with the resource's type and id",
	"Bundle-hla-1.json":                                 "the hla-genotyping-results-glstring extension has a sub-extension \"uri\"; its definition names it \"url\"",
	"Questionnaire-zika-virus-exposure-assessment.json": "its narrative is an empty <pre>, which breaks txt-2 (the narrative SHALL have some non-whitespace content)",
}

// TestR4Examples validates every official R4 example against its base
// definition: none may have an error, and every invariant is evaluated.
func TestR4Examples(t *testing.T) {
	v := validator(t)
	files, err := filepath.Glob("../testdata/r4-examples/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	valid := 0
	defer func() { t.Logf("R4 examples: %d of %d valid against their base definition", valid, len(files)) }()
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			issues := v.Validate(context.Background(), data)
			if !HasErrors(issues) {
				valid++
			}
			for _, is := range notEvaluated(issues) {
				t.Errorf("%s: %s", is.Expression, is.Message)
			}
			errs := errorsOf(issues)
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

// extend returns a validator that knows v's definitions and also the given
// conformance resources, which replace any of v's with the same URL. v is
// not changed.
func (v *Validator) extend(resources [][]byte) (*Validator, error) {
	n := &Validator{
		structures:     maps.Clone(v.structures),
		questionnaires: maps.Clone(v.questionnaires),
		terms:          v.terms,
		termSources:    v.termSources[:len(v.termSources):len(v.termSources)],
		required:       v.required,
		regexps:        v.regexps,
		exprs:          v.exprs,
		patterns:       v.patterns,
	}
	raw := make([]json.RawMessage, len(resources))
	for i, r := range resources {
		raw[i] = r
	}
	if err := n.load(raw); err != nil {
		return nil, err
	}
	return n, nil
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
