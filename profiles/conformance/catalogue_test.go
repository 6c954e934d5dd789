package conformance

import (
	"encoding/json"
	"testing"
)

func TestCatalogue(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for typ, atLeast := range map[string]int{"StructureDefinition": 600, "ValueSet": 650, "CodeSystem": 450} {
		all := c.All(typ)
		if len(all) < atLeast {
			t.Errorf("%d %ss bundled, want at least %d", len(all), typ, atLeast)
		}
		for i := 1; i < len(all); i++ {
			if all[i-1].ID >= all[i].ID {
				t.Fatalf("%ss not in id order: %s before %s", typ, all[i-1].ID, all[i].ID)
			}
		}
	}
	tests := []struct {
		name, typ, id, url, version string
	}{
		{"base resource", "StructureDefinition", "Patient", "http://hl7.org/fhir/StructureDefinition/Patient", "4.0.1"},
		{"UK Core profile", "StructureDefinition", "UKCore-Patient", "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient", ""},
		{"R4 extension", "StructureDefinition", "patient-birthPlace", "http://hl7.org/fhir/StructureDefinition/patient-birthPlace", "4.0.1"},
		{"R4 vital signs profile", "StructureDefinition", "bp", "http://hl7.org/fhir/StructureDefinition/bp", "4.0.1"},
		{"R4 vital signs unit value set", "ValueSet", "ucum-vitals-common", "http://hl7.org/fhir/ValueSet/ucum-vitals-common", "4.0.1"},
		{"R4 value set", "ValueSet", "administrative-gender", "http://hl7.org/fhir/ValueSet/administrative-gender", "4.0.1"},
		{"R4 code system", "CodeSystem", "administrative-gender", "http://hl7.org/fhir/administrative-gender", "4.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.Get(tt.typ, tt.id)
			if r == nil {
				t.Fatalf("Get(%s, %s) = nil", tt.typ, tt.id)
			}
			var head struct{ ResourceType, ID, URL string }
			if err := json.Unmarshal(r.JSON, &head); err != nil || head.ResourceType != tt.typ || head.ID != tt.id || head.URL != tt.url {
				t.Errorf("JSON of %s/%s: %+v, %v", tt.typ, tt.id, head, err)
			}
			if got := c.Canonical(tt.typ, tt.url, ""); got != r {
				t.Errorf("Canonical(%s) = %v, want %s/%s", tt.url, got, tt.typ, tt.id)
			}
			if tt.version != "" {
				if got := c.Canonical(tt.typ, tt.url+"|"+tt.version, ""); got != r {
					t.Errorf("Canonical(%s|%s) = %v", tt.url, tt.version, got)
				}
				if got := c.Canonical(tt.typ, tt.url, "0.0.1"); got != nil {
					t.Errorf("Canonical with another version = %s/%s, want nil", got.Type, got.ID)
				}
			}
		})
	}
	if r := c.Get("ValueSet", "no-such-id"); r != nil {
		t.Errorf("Get of an unknown id = %s", r.ID)
	}
	if r := c.Canonical("ValueSet", "http://hl7.org/fhir/administrative-gender", ""); r != nil {
		t.Errorf("Canonical with a CodeSystem's URL as ValueSet = %s", r.ID)
	}
}
