package query_test

import (
	"testing"
	"time"

	"carefhir/store/query"
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
	ix := &query.Index{
		Dates: []query.Date{{Param: "date", Low: day("2024-03-01"), High: day("2024-04-01").Add(-time.Millisecond)}},
		Quantities: []query.Quantity{{Param: "q", Value: 5.5, System: "http://unitsofmeasure.org", Code: "mg", Unit: "milligram"},
			{Param: "r", Value: 45.3, High: 50, Range: true}},
		Numbers:    []query.Number{{Param: "n", Value: 0.803}},
		References: []query.Reference{{Param: "subject", Type: "Patient", ID: "1"}},
		URIs:       []query.URI{{Param: "url", Value: "http://example.org/fhir/ValueSet/x"}},
		Strings:    []query.String{{Param: "name", Value: "zoe o'brien", Exact: "Zoë O'Brien"}},
		Tokens:     []query.Token{{Param: "code", System: "s", Code: "c"}},
	}
	dm := func(p query.Prefix, low, high string) query.Clause {
		return query.Clause{Param: "date", Dates: []query.DateMatch{{Prefix: p, Low: day(low), High: day(high).Add(-time.Millisecond)}}}
	}
	qm := func(p query.Prefix, v, lo, hi float64, system, code string) query.Clause {
		return query.Clause{Param: "q", Quantities: []query.QuantityMatch{{NumberMatch: query.NumberMatch{Prefix: p, Value: v, Low: lo, High: hi}, System: system, Code: code}}}
	}
	nm := func(param string, p query.Prefix, v, lo, hi float64) query.Clause {
		return query.Clause{Param: param, Numbers: []query.NumberMatch{{Prefix: p, Value: v, Low: lo, High: hi}}}
	}
	tests := []struct {
		name string
		c    query.Clause
		want bool
	}{
		{"eq containing range", dm(query.Eq, "2024-01-01", "2025-01-01"), true},
		{"eq narrower range", dm(query.Eq, "2024-03-10", "2024-03-11"), false},
		{"gt before the end", dm(query.Gt, "2024-03-10", "2024-03-11"), true},
		{"gt after the end", dm(query.Gt, "2024-04-01", "2024-04-02"), false},
		{"lt after the start", dm(query.Lt, "2024-03-10", "2024-03-11"), true},
		{"ge at the end", dm(query.Ge, "2024-03-31", "2024-04-01"), true},
		{"le at the start", dm(query.Le, "2024-02-29", "2024-03-01"), false},
		{"sa", dm(query.Sa, "2024-02-01", "2024-03-01"), true},
		{"sa overlapping", dm(query.Sa, "2024-03-01", "2024-03-02"), false},
		{"eb", dm(query.Eb, "2024-04-01", "2024-04-02"), true},
		{"ap overlapping", dm(query.Ap, "2024-03-31", "2024-05-01"), true},
		{"ap apart", dm(query.Ap, "2024-04-02", "2024-05-01"), false},
		{"quantity in range any unit", qm(query.Eq, 5.5, 5.45, 5.55, "", ""), true},
		{"quantity by code", qm(query.Gt, 5, 0, 0, "", "mg"), true},
		{"quantity by displayed unit", qm(query.Gt, 5, 0, 0, "", "milligram"), true},
		{"quantity other unit", qm(query.Gt, 5, 0, 0, "http://unitsofmeasure.org", "g"), false},
		{"quantity le", qm(query.Le, 5, 0, 0, "", ""), false},
		// gt, lt, ge, le, sa and eb ignore the search value's precision.
		{"quantity eb within the precision", qm(query.Eb, 6, 5.5, 6.5, "", ""), true},
		{"quantity sa at the value", qm(query.Sa, 5.5, 5.45, 5.55, "", ""), false},
		{"number sa within the precision", nm("n", query.Sa, 0.8, 0.795, 0.805), true},
		{"number eb within the precision", nm("n", query.Eb, 1, 0.5, 1.5), true},
		{"number eq", nm("n", query.Eq, 0.8, 0.795, 0.805), true},
		{"number eq outside the precision", nm("n", query.Eq, 0.80, 0.7995, 0.8005), false},
		{"number ge", nm("n", query.Ge, 0.803, 0.8025, 0.8035), true},
		{"number gt at the value", nm("n", query.Gt, 0.803, 0.8025, 0.8035), false},
		{"range sa within the precision", query.Clause{Param: "r", Quantities: []query.QuantityMatch{{NumberMatch: query.NumberMatch{Prefix: query.Sa, Value: 45, Low: 44.5, High: 45.5}}}}, true},
		{"range eb its high end", query.Clause{Param: "r", Quantities: []query.QuantityMatch{{NumberMatch: query.NumberMatch{Prefix: query.Eb, Value: 50, Low: 49.5, High: 50.5}}}}, false},
		{"reference typed", query.Clause{Param: "subject", References: []query.ReferenceMatch{{Type: "Patient", ID: "1"}}}, true},
		{"reference without a type", query.Clause{Param: "subject", References: []query.ReferenceMatch{{ID: "1"}}}, false},
		{"reference other type", query.Clause{Param: "subject", References: []query.ReferenceMatch{{Type: "Group", ID: "1"}}}, false},
		{"reference of any id", query.Clause{Param: "subject", References: []query.ReferenceMatch{{Type: "Patient"}}}, true},
		{"reference of any id of another type", query.Clause{Param: "subject", References: []query.ReferenceMatch{{Type: "Group"}}}, false},
		{"uri below", query.Clause{Param: "url", URIs: []query.URIMatch{{Mode: query.URIBelow, Value: "http://example.org/fhir"}}}, true},
		{"uri above", query.Clause{Param: "url", URIs: []query.URIMatch{{Mode: query.URIAbove, Value: "http://example.org/fhir/ValueSet/x/y"}}}, true},
		{"string prefix", query.Clause{Param: "name", Strings: []query.StringMatch{{Value: "zoe o"}}}, true},
		{"string contains", query.Clause{Param: "name", Strings: []query.StringMatch{{Mode: query.StringContains, Value: "brien"}}}, true},
		{"string exact", query.Clause{Param: "name", Strings: []query.StringMatch{{Mode: query.StringExact, Value: "zoe o'brien"}}}, false},
		{"token not", query.Clause{Param: "code", Not: true, Tokens: []query.TokenMatch{{Code: "c", AnySystem: true}}}, false},
		{"not on a missing parameter", query.Clause{Param: "gender", Not: true, Tokens: []query.TokenMatch{{Code: "male", AnySystem: true}}}, true},
		{"missing", query.Clause{Param: "gender", Presence: query.Missing}, true},
		{"present", query.Clause{Param: "q", Presence: query.Present}, true},
		{"any", query.Clause{Any: []query.Clause{
			{Param: "gender", Presence: query.Present},
			{Param: "subject", References: []query.ReferenceMatch{{Type: "Patient", ID: "1"}}}}}, true},
		{"id", query.Clause{Param: "_id", Tokens: []query.TokenMatch{{Code: "r1"}}}, true},
		{"lastUpdated", query.Clause{Param: "_lastUpdated", Dates: []query.DateMatch{{Prefix: query.Ge, Low: day("2025-01-01")}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := query.Match(&tt.c, "r1", day("2024-06-01"), ix)
			if !ok || got != tt.want {
				t.Errorf("Match = %v, %v; want %v", got, ok, tt.want)
			}
		})
	}
	if _, ok := query.Match(&query.Clause{Param: "subject", Chain: &query.Chain{}}, "r1", time.Time{}, ix); ok {
		t.Error("a chain matched without the resources it points to")
	}
}
