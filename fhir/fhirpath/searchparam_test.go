package fhirpath

import (
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"carefhir/fhir/definitions"
)

// searchParamSkips lists SearchParameters whose expression is not evaluated
// against the examples, with the reason. They are still parsed.
var searchParamSkips = map[string]string{
	"DeviceDefinition-classification": "version 5.0.0-snapshot1 in the R4 bundle: " +
		"DeviceDefinition.classification is not an R4 element",
}

type searchParam struct {
	ID         string   `json:"id"`
	Base       []string `json:"base"`
	Expression string   `json:"expression"`
}

func loadSearchParams(t testing.TB) []searchParam {
	t.Helper()
	f, err := definitions.FS.Open("search-parameters.json.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var bundle struct {
		Entry []struct {
			Resource searchParam `json:"resource"`
		} `json:"entry"`
	}
	if err := json.NewDecoder(zr).Decode(&bundle); err != nil {
		t.Fatal(err)
	}
	var out []searchParam
	for _, e := range bundle.Entry {
		out = append(out, e.Resource)
	}
	return out
}

// loadExamples returns the official R4 examples by resource type, including
// the resources inside example Bundles.
func loadExamples(t testing.TB) map[string][]any {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "r4-examples", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no R4 examples: %v", err)
	}
	byType := map[string][]any{}
	var add func(v any)
	add = func(v any) {
		obj, ok := v.(map[string]any)
		if !ok {
			return
		}
		rt, _ := obj["resourceType"].(string)
		byType[rt] = append(byType[rt], obj)
		if entries, ok := obj["entry"].([]any); ok && rt == "Bundle" {
			for _, e := range entries {
				if em, ok := e.(map[string]any); ok {
					add(em["resource"])
				}
			}
		}
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		v, err := DecodeJSON(data)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		add(v)
	}
	return byType
}

// TestSearchParameters parses every official SearchParameter expression and
// evaluates it against every example of each of its base types.
func TestSearchParameters(t *testing.T) {
	params := loadSearchParams(t)
	examples := loadExamples(t)
	parsed, evaluated, results := 0, 0, 0
	for _, sp := range params {
		if sp.Expression == "" {
			continue
		}
		t.Run(sp.ID, func(t *testing.T) {
			expr, err := Parse(sp.Expression)
			if err != nil {
				t.Fatalf("parse %q: %v", sp.Expression, err)
			}
			parsed++
			if reason, ok := searchParamSkips[sp.ID]; ok {
				t.Skip(reason)
			}
			for _, base := range sp.Base {
				for i, ex := range examples[base] {
					out, err := expr.Evaluate(ex, nil)
					if err != nil {
						t.Errorf("%s example %d (%v): %v", base, i, ex.(map[string]any)["id"], err)
					}
					evaluated++
					results += len(out)
				}
			}
		})
	}
	t.Logf("%d expressions parsed, %d evaluations, %d values", parsed, evaluated, results)
}

func TestSearchParameterResults(t *testing.T) {
	examples := loadExamples(t)
	var patient any
	for _, p := range examples["Patient"] {
		if p.(map[string]any)["id"] == "example" {
			patient = p
		}
	}
	tests := []struct {
		name, expr string
		want       []string
	}{
		{"family", "Patient.name.family", []string{"Chalmers", "Windsor"}},
		{"birthdate", "Patient.birthDate", []string{"1974-12-25"}},
		{"organization", "Patient.managingOrganization.where(resolve() is Organization).reference", []string{"Organization/1"}},
		{"not a practitioner", "Patient.generalPractitioner.where(resolve() is Practitioner)", nil},
		{"phone", "Patient.telecom.where(system='phone').value", []string{"(03) 5555 6473", "(03) 3410 5613", "(03) 5555 8834"}},
		{"other type", "Practitioner.name | Patient.gender", []string{"male"}},
		{"deceased choice", "Patient.deceased.exists() and Patient.deceased = false", []string{"true"}},
		{"choice as type", "Patient.deceased.ofType(boolean) | Patient.deceased.ofType(dateTime)", []string{"false"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := MustParse(tt.expr).Evaluate(patient, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := show(out)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("%s = %q, want %q", tt.expr, got, tt.want)
			}
		})
	}
}
