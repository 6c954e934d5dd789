package profiles

import (
	"context"
	"testing"
)

// TestQuantityBounds compares a Quantity with minValueQuantity in
// canonical UCUM units.
func TestQuantityBounds(t *testing.T) {
	const url = "http://example.org/fhir/StructureDefinition/min-1g"
	profile := `{"resourceType":"StructureDefinition","url":"` + url + `","name":"Min1g","status":"draft","kind":"resource","abstract":false,"type":"Observation","baseDefinition":"http://hl7.org/fhir/StructureDefinition/Observation","derivation":"constraint",
	"differential":{"element":[{"id":"Observation.valueQuantity","path":"Observation.valueQuantity","minValueQuantity":{"value":1,"system":"http://unitsofmeasure.org","code":"g"}}]}}`
	v, err := validator(t).extend([][]byte{[]byte(profile)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, value, severity string // severity "" means no issue at the value
	}{
		{"same unit above", `{"value":2,"system":"http://unitsofmeasure.org","code":"g"}`, ""},
		{"same unit below", `{"value":0.5,"system":"http://unitsofmeasure.org","code":"g"}`, "error"},
		{"smaller unit below", `{"value":500,"system":"http://unitsofmeasure.org","code":"mg"}`, "error"},
		{"smaller unit above", `{"value":1500,"system":"http://unitsofmeasure.org","code":"mg"}`, ""},
		{"larger unit above", `{"value":0.5,"system":"http://unitsofmeasure.org","code":"kg"}`, ""},
		{"unit of another dimension", `{"value":5,"system":"http://unitsofmeasure.org","code":"mL"}`, "warning"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs := `{"resourceType":"Observation","status":"final","code":{"text":"mass"},"valueQuantity":` + tt.value + `}`
			issues := v.Validate(context.Background(), []byte(obs), url)
			got := ""
			for _, is := range issues {
				if is.Expression == "Observation.value.ofType(Quantity)" && is.Code == "value" {
					got = is.Severity
				}
			}
			if got != tt.severity {
				t.Errorf("severity %q, want %q: %s", got, tt.severity, show(issues))
			}
		})
	}
}
