package fhirpath

import "testing"

// repeat outputs each item once; descendants every element under each
// input element, as the HL7 reference implementation does.
func TestRepeatOutputsOnce(t *testing.T) {
	q, err := DecodeJSON([]byte(`{"resourceType":"Questionnaire","status":"active","item":[` +
		`{"linkId":"1","type":"group","item":[{"linkId":"1.1","type":"string"},{"linkId":"1.2","type":"string"}]},` +
		`{"linkId":"2","type":"string"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		expr string
		want int64
	}{
		{"Questionnaire.repeat(item).count()", 4},
		{"Questionnaire.repeat(item | item).count()", 4},
		{"Questionnaire.repeat(item).linkId.count()", 4},
		// resourceType is not an element; status, 2 × (item, linkId, type)
		// at the top, the group's item (2 × linkId, type, item).
		{"Questionnaire.descendants().count()", 13},
		{"Questionnaire.item.descendants().count()", 10},
		// The group is both in the collection and under its Questionnaire:
		// its 8 descendants are there twice.
		{"(Questionnaire | Questionnaire.item.first()).descendants().count()", 21},
		// Equal codes stay apart: "string" is the type of three items.
		{"Questionnaire.descendants().ofType(code).count()", 5},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			got, err := MustParse(tt.expr).Evaluate(q, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0] != Integer(tt.want) {
				t.Errorf("%s = %v, want %d", tt.expr, got, tt.want)
			}
		})
	}
}
