package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestGeneratedFilesUpToDate fails when the committed generated files differ
// from what the generator produces from the vendored definitions.
func TestGeneratedFilesUpToDate(t *testing.T) {
	files, err := generate("../../definitions")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 4 {
		t.Errorf("generated %d files, want 4", len(files))
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join("../..", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is out of date: run go generate ./... in fhir", name)
		}
		if !bytes.HasPrefix(got, []byte(header)) {
			t.Errorf("%s does not start with the generated-code header", name)
		}
	}
}

func TestBuildRejectsUnknownDefinitions(t *testing.T) {
	tests := []struct {
		name string
		sd   *structureDefinition
	}{
		{"constraint not excluded", &structureDefinition{ID: "VitalSigns", Type: "Observation", Kind: "resource", Derivation: "constraint", FHIRVersion: "4.0.1"}},
		{"other FHIR version", &structureDefinition{ID: "SubscriptionStatus", Type: "SubscriptionStatus", Kind: "resource", Derivation: "specialization", FHIRVersion: "4.3.0"}},
		{"element without isSummary", withElements(&structureDefinition{ID: "Meta", Type: "Meta", Kind: "complex-type", Derivation: "specialization", FHIRVersion: "4.0.1"},
			&elementDefinition{Path: "Meta"}, &elementDefinition{Path: "Meta.project", Max: "1", Type: []eType{{Code: "uri"}}})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := build([]*structureDefinition{tc.sd}); err == nil {
				t.Error("build succeeded, want an error")
			}
		})
	}
}

func withElements(sd *structureDefinition, elems ...*elementDefinition) *structureDefinition {
	sd.Snapshot.Element = elems
	return sd
}
