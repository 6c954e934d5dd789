package main

import (
	"errors"
	"strings"
	"testing"

	"carefhir/profiles"
)

func TestCheckRequiredProfiles(t *testing.T) {
	v, err := profiles.New(profiles.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const ukCore = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"
	tests := []struct {
		name     string
		required profileRequirements
		wantErr  string // "" for success
	}{
		{name: "none"},
		{name: "UK Core Patient", required: profileRequirements{"Patient": {ukCore}}},
		{name: "base definition", required: profileRequirements{"Observation": {"http://hl7.org/fhir/StructureDefinition/Observation"}}},
		{name: "unknown profile", required: profileRequirements{"Patient": {"https://example.org/fhir/StructureDefinition/Nope"}},
			wantErr: "--require-profile Patient=https://example.org/fhir/StructureDefinition/Nope: no such profile is bundled"},
		{name: "profile of another type", required: profileRequirements{"Observation": {ukCore}},
			wantErr: "the profile is for Patient, not Observation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkRequiredProfiles(v, tt.required)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ue *usageError
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &ue) {
				t.Errorf("error %v, want a usage error containing %q", err, tt.wantErr)
			}
		})
	}
}
