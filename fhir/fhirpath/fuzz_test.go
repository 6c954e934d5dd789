package fhirpath

import (
	"testing"
)

// FuzzParse checks that no input makes the parser (or evaluating what it
// accepts) panic.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"Patient.name.given",
		"Observation.value.as(Quantity) > 5 'mg'",
		"name.where(use = 'official').family & ', ' & name.given.first()",
		"@2014-01-01T08:05+08:00.lowBoundary(17)",
		"(1 | 2 | 3).aggregate($this + $total, 0)",
		"iif(%resource.active, 'x', {})",
		"Patient.descendants().ofType(Reference).where(resolve() is Organization)",
		"1.587 'cm'.highBoundary(8) ~ 2 year",
		"`given`[0].substring(1, 2).matches('^[a-z]+$')",
	} {
		f.Add(s)
	}
	patient, err := DecodeJSON([]byte(`{"resourceType":"Patient","id":"p","active":true,
		"name":[{"use":"official","family":"Ab","given":["C","D"]}],"birthDate":"2000-02-29",
		"_birthDate":{"extension":[{"url":"u","valueDateTime":"2000-02-29T10:00:00Z"}]}}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Parse(src)
		if err != nil {
			return
		}
		_, _ = e.Evaluate(patient, nil)
	})
}
