package query

import (
	"slices"
	"testing"
)

// TestReads checks which types a search is taken to read.
func TestReads(t *testing.T) {
	chain := Clause{Param: "subject", Chain: &Chain{Types: []string{"Patient"},
		Where: []Clause{{Param: "organization", Chain: &Chain{Types: []string{"Organization"}}}}}}
	has := Clause{Param: "_has", Has: &Has{Type: "Condition", Param: "patient"}}
	for _, tt := range []struct {
		name string
		q    Query
		want []string
	}{
		{"plain", Query{Type: "Patient"}, []string{"Patient"}},
		{"of no type", Query{}, nil},
		{"chains within chains", Query{Type: "Observation", Where: []Clause{chain}}, []string{"Observation", "Patient", "Organization"}},
		{"a chain of any type", Query{Type: "Observation", Where: []Clause{{Param: "subject", Chain: &Chain{}}}}, nil},
		{"has within any", Query{Type: "Patient", Where: []Clause{{Any: []Clause{has}}}}, []string{"Patient", "Condition"}},
		{"include of a target", Query{Type: "Observation", Include: []Include{{Type: "Observation", Param: "subject", Target: "Patient"}}}, []string{"Observation", "Patient"}},
		{"include of any target", Query{Type: "Observation", Include: []Include{{Type: "Observation", Param: "subject"}}}, nil},
		{"revinclude", Query{Type: "Patient", RevInclude: []Include{{Type: "Goal", Param: "patient"}}}, []string{"Patient", "Goal"}},
		{"an include that iterates", Query{Type: "Observation", Include: []Include{{Type: "Observation", Param: "subject", Target: "Patient", Iterate: true}}}, nil},
	} {
		got, all := tt.q.Reads()
		if !slices.Equal(got, tt.want) || all != (tt.want == nil) {
			t.Errorf("%s: %v (all %v), want %v", tt.name, got, all, tt.want)
		}
	}
}
