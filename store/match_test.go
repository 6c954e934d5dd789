package store_test

import (
	"testing"
	"time"

	"carefhir/store"
)

func day(s string) time.Time {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestMatch(t *testing.T) {
	// A resource with a date covering March 2024, a quantity of 5.5 mg, a
	// reference, a uri, a string and a token.
	ix := &store.Index{
		Dates:      []store.Date{{Param: "date", Low: day("2024-03-01"), High: day("2024-04-01").Add(-time.Millisecond)}},
		Quantities: []store.Quantity{{Param: "q", Value: 5.5, System: "http://unitsofmeasure.org", Code: "mg", Unit: "milligram"}},
		References: []store.Reference{{Param: "subject", Type: "Patient", ID: "1"}},
		URIs:       []store.URI{{Param: "url", Value: "http://example.org/fhir/ValueSet/x"}},
		Strings:    []store.String{{Param: "name", Value: "zoe o'brien", Exact: "Zoë O'Brien"}},
		Tokens:     []store.Token{{Param: "code", System: "s", Code: "c"}},
	}
	dm := func(p store.Prefix, low, high string) store.Clause {
		return store.Clause{Param: "date", Dates: []store.DateMatch{{Prefix: p, Low: day(low), High: day(high).Add(-time.Millisecond)}}}
	}
	qm := func(p store.Prefix, v, lo, hi float64, system, code string) store.Clause {
		return store.Clause{Param: "q", Quantities: []store.QuantityMatch{{NumberMatch: store.NumberMatch{Prefix: p, Value: v, Low: lo, High: hi}, System: system, Code: code}}}
	}
	tests := []struct {
		name string
		c    store.Clause
		want bool
	}{
		{"eq containing range", dm(store.Eq, "2024-01-01", "2025-01-01"), true},
		{"eq narrower range", dm(store.Eq, "2024-03-10", "2024-03-11"), false},
		{"gt before the end", dm(store.Gt, "2024-03-10", "2024-03-11"), true},
		{"gt after the end", dm(store.Gt, "2024-04-01", "2024-04-02"), false},
		{"lt after the start", dm(store.Lt, "2024-03-10", "2024-03-11"), true},
		{"ge at the end", dm(store.Ge, "2024-03-31", "2024-04-01"), true},
		{"le at the start", dm(store.Le, "2024-02-29", "2024-03-01"), false},
		{"sa", dm(store.Sa, "2024-02-01", "2024-03-01"), true},
		{"sa overlapping", dm(store.Sa, "2024-03-01", "2024-03-02"), false},
		{"eb", dm(store.Eb, "2024-04-01", "2024-04-02"), true},
		{"ap overlapping", dm(store.Ap, "2024-03-31", "2024-05-01"), true},
		{"ap apart", dm(store.Ap, "2024-04-02", "2024-05-01"), false},
		{"quantity in range any unit", qm(store.Eq, 5.5, 5.45, 5.55, "", ""), true},
		{"quantity by code", qm(store.Gt, 5, 0, 0, "", "mg"), true},
		{"quantity by displayed unit", qm(store.Gt, 5, 0, 0, "", "milligram"), true},
		{"quantity other unit", qm(store.Gt, 5, 0, 0, "http://unitsofmeasure.org", "g"), false},
		{"quantity le", qm(store.Le, 5, 0, 0, "", ""), false},
		{"reference typed", store.Clause{Param: "subject", References: []store.ReferenceMatch{{Type: "Patient", ID: "1"}}}, true},
		{"reference by id", store.Clause{Param: "subject", References: []store.ReferenceMatch{{ID: "1"}}}, true},
		{"reference other type", store.Clause{Param: "subject", References: []store.ReferenceMatch{{Type: "Group", ID: "1"}}}, false},
		{"uri below", store.Clause{Param: "url", URIs: []store.URIMatch{{Mode: store.URIBelow, Value: "http://example.org/fhir"}}}, true},
		{"uri above", store.Clause{Param: "url", URIs: []store.URIMatch{{Mode: store.URIAbove, Value: "http://example.org/fhir/ValueSet/x/y"}}}, true},
		{"string prefix", store.Clause{Param: "name", Strings: []store.StringMatch{{Value: "zoe o"}}}, true},
		{"string contains", store.Clause{Param: "name", Strings: []store.StringMatch{{Mode: store.StringContains, Value: "brien"}}}, true},
		{"string exact", store.Clause{Param: "name", Strings: []store.StringMatch{{Mode: store.StringExact, Value: "zoe o'brien"}}}, false},
		{"token not", store.Clause{Param: "code", Not: true, Tokens: []store.TokenMatch{{Code: "c", AnySystem: true}}}, false},
		{"not on a missing parameter", store.Clause{Param: "gender", Not: true, Tokens: []store.TokenMatch{{Code: "male", AnySystem: true}}}, true},
		{"missing", store.Clause{Param: "gender", Presence: store.Missing}, true},
		{"present", store.Clause{Param: "q", Presence: store.Present}, true},
		{"any", store.Clause{Any: []store.Clause{
			{Param: "gender", Presence: store.Present},
			{Param: "subject", References: []store.ReferenceMatch{{ID: "1"}}}}}, true},
		{"id", store.Clause{Param: "_id", Tokens: []store.TokenMatch{{Code: "r1"}}}, true},
		{"lastUpdated", store.Clause{Param: "_lastUpdated", Dates: []store.DateMatch{{Prefix: store.Ge, Low: day("2025-01-01")}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := store.Match(&tt.c, "r1", day("2024-06-01"), ix)
			if !ok || got != tt.want {
				t.Errorf("Match = %v, %v; want %v", got, ok, tt.want)
			}
		})
	}
	if _, ok := store.Match(&store.Clause{Param: "subject", Chain: &store.Chain{}}, "r1", time.Time{}, ix); ok {
		t.Error("a chain matched without the resources it points to")
	}
}
