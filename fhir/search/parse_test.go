package search

import (
	"errors"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"carefhir/store/query"
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func parse(t *testing.T, r *Registry, typ, query string, strict bool) (*Plan, error) {
	t.Helper()
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	return r.Parse(typ, q, Options{Strict: strict, Base: "https://fhir.example.nhs.uk/fhir", Now: now})
}

func dm(p query.Prefix, low, high string) query.DateMatch {
	return query.DateMatch{Prefix: p, Low: utc(low), High: utc(high)}
}

func TestParseClauses(t *testing.T) {
	r := testRegistry(t)
	tests := []struct {
		name, typ, query string
		want             []query.Clause
	}{
		{"string prefix normalised", "Patient", "name=Zoë", []query.Clause{
			{Param: "name", Strings: []query.StringMatch{{Mode: query.StringPrefix, Value: "zoe"}}}}},
		{"string exact keeps case", "Patient", "family:exact=O'Brien", []query.Clause{
			{Param: "family", Strings: []query.StringMatch{{Mode: query.StringExact, Value: "O'Brien"}}}}},
		{"string contains", "Patient", "address:contains=LS1", []query.Clause{
			{Param: "address", Strings: []query.StringMatch{{Mode: query.StringContains, Value: "ls1"}}}}},
		{"comma is or, escaped comma is not", "Patient", `given=ann,mary\,jo`, []query.Clause{
			{Param: "given", Strings: []query.StringMatch{{Value: "ann"}, {Value: "mary,jo"}}}}},
		{"repeat is and", "Patient", "given=ann&given=mary", []query.Clause{
			{Param: "given", Strings: []query.StringMatch{{Value: "ann"}}},
			{Param: "given", Strings: []query.StringMatch{{Value: "mary"}}}}},
		{"token forms", "Patient", "identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009,|x,y,sys|", []query.Clause{
			{Param: "identifier", Tokens: []query.TokenMatch{
				{System: "https://fhir.nhs.uk/Id/nhs-number", Code: "9000000009"},
				{Code: "x"},
				{Code: "y", AnySystem: true},
				{System: "sys", AnyCode: true}}}}},
		{"escaped bar in token", "Patient", `identifier=a\|b`, []query.Clause{
			{Param: "identifier", Tokens: []query.TokenMatch{{Code: "a|b", AnySystem: true}}}}},
		{"token not", "Patient", "gender:not=male", []query.Clause{
			{Param: "gender", Not: true, Tokens: []query.TokenMatch{{Code: "male", AnySystem: true}}}}},
		{"token text", "Condition", "code:text=Diabètes", []query.Clause{
			{Param: "code:text", Strings: []query.StringMatch{{Value: "diabetes"}}}}},
		{"identifier of-type", "Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053", []query.Clause{
			{Param: "identifier:of-type", Tokens: []query.TokenMatch{{System: "http://terminology.hl7.org/CodeSystem/v2-0203|MR", Code: "446053"}}}}},
		{"missing true", "Patient", "birthdate:missing=true", []query.Clause{{Param: "birthdate", Not: true, Any: []query.Clause{
			{Param: "birthdate", Presence: query.Present}, {Param: "birthdate:present", Presence: query.Present}}}}},
		{"missing false", "Patient", "gender:missing=false", []query.Clause{{Param: "gender", Any: []query.Clause{
			{Param: "gender", Presence: query.Present}, {Param: "gender:present", Presence: query.Present}}}}},
		{"date year", "Patient", "birthdate=1970", []query.Clause{
			{Param: "birthdate", Dates: []query.DateMatch{dm(query.Eq, "1970-01-01T00:00:00Z", "1970-12-31T23:59:59.999Z")}}}},
		{"date prefixes", "Patient", "birthdate=ge2024-02-29,lt2025-01", []query.Clause{
			{Param: "birthdate", Dates: []query.DateMatch{
				dm(query.Ge, "2024-02-29T00:00:00Z", "2024-02-29T23:59:59.999Z"),
				dm(query.Lt, "2025-01-01T00:00:00Z", "2025-01-31T23:59:59.999Z")}}}},
		{"date ne is a value before or after", "Patient", "birthdate=ne1970", []query.Clause{
			{Param: "birthdate", Dates: []query.DateMatch{
				dm(query.Lt, "1970-01-01T00:00:00Z", "1970-12-31T23:59:59.999Z"),
				dm(query.Gt, "1970-01-01T00:00:00Z", "1970-12-31T23:59:59.999Z")}}}},
		{"date ne among other values", "Patient", "birthdate=ne1970,ge2000", []query.Clause{
			{Param: "birthdate", Dates: []query.DateMatch{
				dm(query.Lt, "1970-01-01T00:00:00Z", "1970-12-31T23:59:59.999Z"),
				dm(query.Gt, "1970-01-01T00:00:00Z", "1970-12-31T23:59:59.999Z"),
				dm(query.Ge, "2000-01-01T00:00:00Z", "2000-12-31T23:59:59.999Z")}}}},
		{"composite ne", "Observation", "code-value-quantity=8480-6$ne100", []query.Clause{
			{Param: "code-value-quantity", Composites: []query.CompositeMatch{
				{Parts: []string{"|8480-6"}, Quantity: &query.QuantityMatch{NumberMatch: query.NumberMatch{Prefix: query.Lt, Value: 99.5, Low: 99.5, High: 100.5}}},
				{Parts: []string{"|8480-6"}, Quantity: &query.QuantityMatch{NumberMatch: query.NumberMatch{Prefix: query.Ge, Value: 100.5, Low: 99.5, High: 100.5}}}}}}},
		{"canonical url with a version", "ValueSet", "url=http://example.org/vs|1.0", []query.Clause{
			{Param: "url", URIs: []query.URIMatch{{Value: "http://example.org/vs"}}},
			{Param: "version", Tokens: []query.TokenMatch{{Code: "1.0", AnySystem: true}}}}},
		{"canonical urls with and without a version", "ValueSet", "url=http://example.org/vs|1.0,http://example.org/other", []query.Clause{
			{Param: "url", Any: []query.Clause{
				{Param: "url", Not: true, Any: []query.Clause{
					{Param: "url", Not: true, URIs: []query.URIMatch{{Value: "http://example.org/vs"}}},
					{Param: "version", Not: true, Tokens: []query.TokenMatch{{Code: "1.0", AnySystem: true}}}}},
				{Param: "url", URIs: []query.URIMatch{{Value: "http://example.org/other"}}}}}}},
		{"uri that is not a canonical url keeps its bar", "Questionnaire", "definition=http://example.org/sd|1.0", []query.Clause{
			{Param: "definition", URIs: []query.URIMatch{{Value: "http://example.org/sd|1.0"}}}}},
		{"date ap widened by a tenth of the gap", "Encounter", "date=ap2015-06-01", []query.Clause{
			{Param: "date", Dates: []query.DateMatch{dm(query.Ap, "2014-05-31T15:36:00Z", "2016-06-01T08:23:59.999Z")}}}},
		{"lastUpdated with zone", "Patient", "_lastUpdated=gt2025-01-10T10:00:00%2B01:00", []query.Clause{
			{Param: "_lastUpdated", Dates: []query.DateMatch{dm(query.Gt, "2025-01-10T09:00:00Z", "2025-01-10T09:00:00.999Z")}}}},
		{"zone with an unencoded plus", "Patient", "_lastUpdated=gt2025-01-10T10:00:00+01:00", []query.Clause{
			{Param: "_lastUpdated", Dates: []query.DateMatch{dm(query.Gt, "2025-01-10T09:00:00Z", "2025-01-10T09:00:00.999Z")}}}},
		{"quantity in UCUM units compares in canonical units", "Observation", "value-quantity=gt5.4|http://unitsofmeasure.org|mg", []query.Clause{
			{Param: "value-quantity:canonical", Quantities: []query.QuantityMatch{{
				NumberMatch: query.NumberMatch{Prefix: query.Gt, Value: 0.0054, Low: 0.00535, High: 0.00545},
				System:      "http://unitsofmeasure.org", Code: "g"}}}}},
		{"quantity in a unit UCUM cannot read compares as written", "Observation", "value-quantity=gt5.4|http://unitsofmeasure.org|mmHg", []query.Clause{
			{Param: "value-quantity", Quantities: []query.QuantityMatch{{
				NumberMatch: query.NumberMatch{Prefix: query.Gt, Value: 5.4, Low: 5.35, High: 5.45},
				System:      "http://unitsofmeasure.org", Code: "mmHg"}}}}},
		{"quantity in another system compares as written", "Observation", "value-quantity=5|http://snomed.info/sct|258684004", []query.Clause{
			{Param: "value-quantity", Quantities: []query.QuantityMatch{{
				NumberMatch: query.NumberMatch{Prefix: query.Eq, Value: 5, Low: 4.5, High: 5.5},
				System:      "http://snomed.info/sct", Code: "258684004"}}}}},
		{"quantity values in and out of UCUM", "Observation", "value-quantity=5|http://unitsofmeasure.org|g,5||g", []query.Clause{
			{Param: "value-quantity", Any: []query.Clause{
				{Param: "value-quantity", Quantities: []query.QuantityMatch{{
					NumberMatch: query.NumberMatch{Prefix: query.Eq, Value: 5, Low: 4.5, High: 5.5}, Code: "g"}}},
				{Param: "value-quantity:canonical", Quantities: []query.QuantityMatch{{
					NumberMatch: query.NumberMatch{Prefix: query.Eq, Value: 5, Low: 4.5, High: 5.5},
					System:      "http://unitsofmeasure.org", Code: "g"}}}}}}},
		{"quantity ne in UCUM units is a value in them outside the range", "Observation", "value-quantity=ne1|http://unitsofmeasure.org|kg", []query.Clause{
			{Param: "value-quantity:canonical", Quantities: []query.QuantityMatch{
				{NumberMatch: query.NumberMatch{Prefix: query.Lt, Value: 500, Low: 500, High: 1500}, System: "http://unitsofmeasure.org", Code: "g"},
				{NumberMatch: query.NumberMatch{Prefix: query.Ge, Value: 1500, Low: 500, High: 1500}, System: "http://unitsofmeasure.org", Code: "g"}}}}},
		{"quantity ap in UCUM units", "Observation", "value-quantity=ap100|http://unitsofmeasure.org|mg", []query.Clause{
			{Param: "value-quantity:canonical", Quantities: []query.QuantityMatch{{
				NumberMatch: query.NumberMatch{Prefix: query.Ap, Value: 0.1, Low: 0.09, High: 0.11},
				System:      "http://unitsofmeasure.org", Code: "g"}}}}},
		{"quantity any system", "Observation", "value-quantity=5||mg", []query.Clause{
			{Param: "value-quantity", Quantities: []query.QuantityMatch{{
				NumberMatch: query.NumberMatch{Prefix: query.Eq, Value: 5, Low: 4.5, High: 5.5}, Code: "mg"}}}}},
		{"quantity le", "Observation", "value-quantity=le100", []query.Clause{
			{Param: "value-quantity", Quantities: []query.QuantityMatch{{
				NumberMatch: query.NumberMatch{Prefix: query.Le, Value: 100, Low: 99.5, High: 100.5}}}}}},
		{"reference forms", "Observation", "subject=Patient/1,https://fhir.example.nhs.uk/fhir/Patient/2,https://other.org/Patient/3", []query.Clause{
			{Param: "subject", References: []query.ReferenceMatch{{Type: "Patient", ID: "1"}, {Type: "Patient", ID: "2"}, {URL: "https://other.org/Patient/3"}}}}},
		{"reference id only, one target", "Patient", "organization=A81001", []query.Clause{
			{Param: "organization", References: []query.ReferenceMatch{{Type: "Organization", ID: "A81001"}}}}},
		{"reference id only, many targets", "Observation", "subject=1", []query.Clause{
			{Param: "subject", References: []query.ReferenceMatch{
				{Type: "Group", ID: "1"}, {Type: "Device", ID: "1"}, {Type: "Patient", ID: "1"}, {Type: "Location", ID: "1"}}}}},
		{"reference type modifier", "Observation", "subject:Patient=1", []query.Clause{
			{Param: "subject", References: []query.ReferenceMatch{{Type: "Patient", ID: "1"}}}}},
		{"reference identifier", "Observation", "subject:identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009", []query.Clause{
			{Param: "subject:identifier", Tokens: []query.TokenMatch{{System: "https://fhir.nhs.uk/Id/nhs-number", Code: "9000000009"}}}}},
		{"uri below", "ValueSet", "url:below=http://example.org/fhir", []query.Clause{
			{Param: "url", URIs: []query.URIMatch{{Mode: query.URIBelow, Value: "http://example.org/fhir"}}}}},
		{"uri above lists the parents", "ValueSet", "url:above=http://example.org/fhir/ValueSet/x", []query.Clause{
			{Param: "url", URIs: []query.URIMatch{
				{Value: "http://example.org/fhir/ValueSet/x"}, {Value: "http://example.org/fhir/ValueSet"}, {Value: "http://example.org/fhir"}}}}},
		{"composite of tokens", "Observation", "code-value-concept=http://loinc.org|72166-2$http://snomed.info/sct|8517006", []query.Clause{
			{Param: "code-value-concept", Composites: []query.CompositeMatch{{Parts: []string{"http://loinc.org|72166-2", "http://snomed.info/sct|8517006"}}}}}},
		{"composite code only", "Observation", "code-value-concept=72166-2$8517006", []query.Clause{
			{Param: "code-value-concept", Composites: []query.CompositeMatch{{Parts: []string{"|72166-2", "|8517006"}}}}}},
		{"composite with a quantity", "Observation", "code-value-quantity=http://loinc.org|8480-6$gt140||mm[Hg]", []query.Clause{
			{Param: "code-value-quantity", Composites: []query.CompositeMatch{{Parts: []string{"http://loinc.org|8480-6"},
				Quantity: &query.QuantityMatch{NumberMatch: query.NumberMatch{Prefix: query.Gt, Value: 140, Low: 139.5, High: 140.5}, Code: "mm[Hg]"}}}}}},
		{"composite with a UCUM quantity", "Observation", "code-value-quantity=http://loinc.org|8480-6$gt16|http://unitsofmeasure.org|kPa", []query.Clause{
			{Param: "code-value-quantity:canonical", Composites: []query.CompositeMatch{{Parts: []string{"http://loinc.org|8480-6"},
				Quantity: &query.QuantityMatch{NumberMatch: query.NumberMatch{Prefix: query.Gt, Value: 16000000, Low: 15500000, High: 16500000},
					System: "http://unitsofmeasure.org", Code: "g.m-1.s-2"}}}}}},
		{"composite with a date", "Observation", "code-value-date=8480-6$2025", []query.Clause{
			{Param: "code-value-date", Composites: []query.CompositeMatch{{Parts: []string{"|8480-6"},
				Date: &query.DateMatch{Prefix: query.Eq, Low: utc("2025-01-01T00:00:00Z"), High: utc("2025-12-31T23:59:59.999Z")}}}}}},
		{"id", "Patient", "_id=a,b-1", []query.Clause{
			{Param: "_id", Tokens: []query.TokenMatch{{Code: "a", AnySystem: true}, {Code: "b-1", AnySystem: true}}}}},
		{"tag", "Patient", "_tag=http://example.org/tags|vip", []query.Clause{
			{Param: "_tag", Tokens: []query.TokenMatch{{System: "http://example.org/tags", Code: "vip"}}}}},
		{"profile", "Patient", "_profile=https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient", []query.Clause{
			{Param: "_profile", URIs: []query.URIMatch{{Value: "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"}}}}},
		{"chain", "Observation", "subject:Patient.name=smith", []query.Clause{
			{Param: "subject", Chain: &query.Chain{Types: []string{"Patient"}, Where: []query.Clause{
				{Param: "name", Strings: []query.StringMatch{{Value: "smith"}}}}}}}},
		{"chain without type picks the targets that have the parameter", "Observation", "subject.birthdate=1970", []query.Clause{
			{Param: "subject", Chain: &query.Chain{Types: []string{"Patient"}, Where: []query.Clause{
				{Param: "birthdate", Dates: []query.DateMatch{dm(query.Eq, "1970-01-01T00:00:00Z", "1970-12-31T23:59:59.999Z")}}}}}}},
		{"two-link chain", "Observation", "subject:Patient.general-practitioner:Organization.name=leeds", []query.Clause{
			{Param: "subject", Chain: &query.Chain{Types: []string{"Patient"}, Where: []query.Clause{
				{Param: "general-practitioner", Chain: &query.Chain{Types: []string{"Organization"}, Where: []query.Clause{
					{Param: "name", Strings: []query.StringMatch{{Value: "leeds"}}}}}}}}}}},
		{"has", "Patient", "_has:Observation:patient:code=1234-5", []query.Clause{
			{Param: "_has", Has: &query.Has{Type: "Observation", Param: "patient", Where: []query.Clause{
				{Param: "code", Tokens: []query.TokenMatch{{Code: "1234-5", AnySystem: true}}}}}}}},
		{"nested has", "Patient", "_has:Observation:patient:_has:Observation:has-member:status=final", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := parse(t, r, tt.typ, tt.query, true)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == nil {
				return
			}
			if !reflect.DeepEqual(plan.Query.Where, tt.want) {
				t.Errorf("%s\n got %+v\nwant %+v", tt.query, plan.Query.Where, tt.want)
			}
		})
	}
}

func TestParseResultParameters(t *testing.T) {
	r := testRegistry(t)
	tests := []struct {
		name, query string
		check       func(*Plan) bool
	}{
		{"default count", "", func(p *Plan) bool { return p.Query.Count == DefaultCount }},
		{"count", "_count=5", func(p *Plan) bool { return p.Query.Count == 5 }},
		{"count capped", "_count=5000", func(p *Plan) bool { return p.Query.Count == MaxCount }},
		{"count zero counts", "_count=0", func(p *Plan) bool { return p.Query.Count == 0 && p.Query.Total == query.TotalAccurate }},
		{"sort keys", "_sort=family,-birthdate,_id", func(p *Plan) bool {
			return reflect.DeepEqual(p.Query.Sort, []query.SortKey{{Param: "family"}, {Param: "birthdate", Desc: true}, {Param: "_id"}})
		}},
		{"total", "_total=accurate", func(p *Plan) bool { return p.Query.Total == query.TotalAccurate }},
		{"summary count", "_summary=count&_include=Patient:organization", func(p *Plan) bool {
			return p.Summary == "count" && p.Query.Count == 0 && p.Query.Total == query.TotalAccurate && p.Query.Include == nil
		}},
		{"elements", "_elements=name,birthDate,name", func(p *Plan) bool {
			return reflect.DeepEqual(p.Elements, []string{"name", "birthDate"})
		}},
		{"include", "_include=Patient:general-practitioner:Practitioner", func(p *Plan) bool {
			return reflect.DeepEqual(p.Query.Include, []query.Include{{Type: "Patient", Param: "general-practitioner", Target: "Practitioner"}})
		}},
		{"include wildcard", "_include=*", func(p *Plan) bool {
			return reflect.DeepEqual(p.Query.Include, []query.Include{{Type: "Patient", Param: "*"}})
		}},
		{"include iterate", "_include:iterate=PractitionerRole:organization", func(p *Plan) bool {
			return reflect.DeepEqual(p.Query.Include, []query.Include{{Type: "PractitionerRole", Param: "organization", Iterate: true}})
		}},
		{"revinclude", "_revinclude=Observation:subject", func(p *Plan) bool {
			return reflect.DeepEqual(p.Query.RevInclude, []query.Include{{Type: "Observation", Param: "subject"}})
		}},
		{"revinclude of every parameter of a type", "_revinclude=Observation:*", func(p *Plan) bool {
			// Those of Observation's reference parameters that may point
			// to a Patient, each once; the self link keeps the wildcard.
			var params []string
			for _, inc := range p.Query.RevInclude {
				if inc.Type != "Observation" || inc.Iterate {
					return false
				}
				params = append(params, inc.Param)
			}
			return slices.Contains(params, "subject") && slices.Contains(params, "patient") && slices.Contains(params, "performer") &&
				!slices.Contains(params, "encounter") && !slices.Contains(params, "specimen") && !slices.Contains(params, "*") &&
				p.Params.Get("_revinclude") == "Observation:*"
		}},
		{"format is not a filter", "_format=json&_pretty=true", func(p *Plan) bool { return len(p.Query.Where) == 0 && len(p.Params) == 0 }},
		{"applied params kept for the self link", "name=ann&_count=3", func(p *Plan) bool {
			return p.Params.Get("name") == "ann" && p.Params.Get("_count") == "3"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := parse(t, r, "Patient", tt.query, true)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(plan) {
				t.Errorf("%s: plan %+v", tt.query, plan)
			}
		})
	}
}

// A number ne is a value below the range of the search value or from its
// end up.
func TestParseNumberNotEqual(t *testing.T) {
	r, err := Load([]string{"RiskAssessment"})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := parse(t, r, "RiskAssessment", "probability=ne0.5", true)
	if err != nil {
		t.Fatal(err)
	}
	want := []query.Clause{{Param: "probability", Numbers: []query.NumberMatch{
		{Prefix: query.Lt, Value: 0.45, Low: 0.45, High: 0.55},
		{Prefix: query.Ge, Value: 0.55, Low: 0.45, High: 0.55}}}}
	if !reflect.DeepEqual(plan.Query.Where, want) {
		t.Errorf("got %+v, want %+v", plan.Query.Where, want)
	}
}

func TestParseErrors(t *testing.T) {
	r := testRegistry(t)
	tests := []struct {
		name, typ, query string
		strict           bool
		code, expression string
	}{
		{"bad date", "Patient", "birthdate=1970-13", false, "invalid", "birthdate"},
		{"leap day that is not", "Patient", "birthdate=2023-02-29", false, "invalid", "birthdate"},
		{"negative count", "Patient", "_count=-1", false, "invalid", "_count"},
		{"count not a number", "Patient", "_count=ten", false, "invalid", "_count"},
		{"bad total", "Patient", "_total=all", false, "invalid", "_total"},
		{"bad summary", "Patient", "_summary=maybe", false, "invalid", "_summary"},
		{"bad elements", "Patient", "_elements=name.family", false, "invalid", "_elements"},
		{"missing not boolean", "Patient", "gender:missing=yes", false, "invalid", "gender:missing"},
		{"bad number", "Observation", "value-quantity=gtabc", false, "invalid", "value-quantity"},
		{"quantity system without code", "Observation", "value-quantity=5|http://unitsofmeasure.org|", false, "invalid", "value-quantity"},
		{"token with two bars", "Patient", "identifier=a|b|c", false, "invalid", "identifier"},
		{"bad id", "Patient", "_id=a/b", false, "invalid", "_id"},
		{"reference to a type it cannot", "Patient", "organization=Patient/1", false, "invalid", "organization"},
		{"chain on a non-reference", "Patient", "name.family=x", false, "invalid", "name.family"},
		{"chain to a type it cannot", "Observation", "subject:Questionnaire.name=x", false, "invalid", "subject:Questionnaire.name"},
		{"bad has form", "Patient", "_has:Observation=x", false, "invalid", "_has:Observation"},
		{"bad value in a chain", "Observation", "subject:Patient.birthdate=1970-13", false, "invalid", "subject:Patient.birthdate"},
		{"bad value in a has", "Patient", "_has:Observation:patient:date=x", false, "invalid", "_has:Observation:patient:date"},
		{"include not of the searched type", "Patient", "_include=Observation:subject", false, "invalid", "_include"},
		{"include malformed", "Patient", "_include=subject", false, "invalid", "_include"},
		{"include without a source type", "Patient", "_include=:organization", false, "invalid", "_include"},
		{"include with an empty target", "Patient", "_include=Patient:organization:", false, "invalid", "_include"},
		{"include with an empty parameter", "Patient", "_include=Patient::Organization", false, "invalid", "_include"},
		{"include of too many parts", "Patient", "_include=Patient:organization:Organization:x", false, "invalid", "_include"},
		{"include of a type R4 has not", "Patient", "_include=Pateint:organization", false, "invalid", "_include"},
		{"include to a type R4 has not", "Patient", "_include=Patient:organization:Organisation", false, "invalid", "_include"},
		{"include of a parameter not a reference", "Patient", "_include=Patient:name", false, "invalid", "_include"},
		{"include to a type it cannot", "Patient", "_include=Patient:organization:Patient", false, "invalid", "_include"},
		{"include iterate to a type it cannot", "Patient", "_include:iterate=Observation:subject:Questionnaire", false, "invalid", "_include:iterate"},
		{"revinclude to a type it cannot", "Patient", "_revinclude=Observation:subject:Questionnaire", false, "invalid", "_revinclude"},
		{"revinclude without a source type", "Patient", "_revinclude=:subject", false, "invalid", "_revinclude"},
		{"revinclude of a parameter not a reference", "Patient", "_revinclude=Observation:code", false, "invalid", "_revinclude"},
		{"include of an unknown parameter strict", "Patient", "_include=Patient:shoe", true, "not-supported", "_include"},
		{"include of a type not served strict", "Patient", "_include:iterate=Location:organization", true, "not-supported", "_include:iterate"},
		{"composite parts", "Observation", "code-value-concept=a", false, "invalid", "code-value-concept"},
		{"too many values", "Patient", "_id=" + strings.Repeat("a,", 1000) + "a", false, "too-costly", "_id"},
		{"too many parameters", "Patient", strings.Repeat("family=a&", 100) + "family=a", false, "too-costly", ""},
		{"ids alone of any type past the terms", "Observation", "focus=" + strings.Repeat("a,", 34) + "a", false, "too-costly", ""},
		{"too many elements", "Patient", "_elements=" + elementNames(201), false, "too-costly", "_elements"},
		{"too many includes", "Patient", includes(21), true, "too-costly", "_include:iterate"},
		{"unknown parameter strict", "Patient", "shoe-size=9", true, "not-supported", "shoe-size"},
		{"unknown modifier strict", "Patient", "name:sounds-like=x", true, "not-supported", "name:sounds-like"},
		{"of-type on codes", "Observation", "code:of-type=x|y|z", false, "not-supported", "code:of-type"},
		{"of-type on codes strict", "Observation", "code:of-type=x|y|z", true, "not-supported", "code:of-type"},
		{"of-type on a boolean", "Patient", "active:of-type=x|y|z", false, "not-supported", "active:of-type"},
		{"token in strict", "Condition", "code:in=http://example.org/vs", true, "not-supported", "code:in"},
		{"unknown sort strict", "Patient", "_sort=shoe-size", true, "not-supported", "_sort"},
		{"unsupported common strict", "Patient", "_text=x", true, "not-supported", "_text"},
		{"revinclude of any type strict", "Patient", "_revinclude=*", true, "not-supported", "_revinclude"},
		{"composite quantity not a number", "Observation", "code-value-quantity=x$abc", true, "invalid", "code-value-quantity"},
		{"composite date not a date", "Observation", "code-value-date=x$2025-13", true, "invalid", "code-value-date"},
		{"unserved type", "Location", "name=x", false, "not-supported", "Location"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, r, tt.typ, tt.query, tt.strict)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%s: err = %v, want an *Error", tt.query, err)
			}
			if e.Code != tt.code || e.Expression != tt.expression || e.Diagnostics == "" {
				t.Errorf("%s: got %d %s at %q (%s), want %s at %q", tt.query, e.Status, e.Code, e.Expression, e.Diagnostics, tt.code, tt.expression)
			}
		})
	}
}

// A number too large or too small to compare is refused as such, not as
// something that is not a number.
func TestParseNumberOutOfRange(t *testing.T) {
	r := testRegistry(t)
	for query, want := range map[string]string{
		"value-quantity=1e400":    "beyond the numbers searched here",
		"value-quantity=gt-1e400": "beyond the numbers searched here",
		"value-quantity=1e-401":   "beyond the numbers searched here",
		"value-quantity=0x10":     "is not a number",
		"value-quantity=Inf":      "is not a number",
	} {
		_, err := parse(t, r, "Observation", query, false)
		var e *Error
		if !errors.As(err, &e) || e.Expression != "value-quantity" || !strings.Contains(e.Diagnostics, want) {
			t.Errorf("%s: %v, want %q", query, err, want)
		}
	}
}

// An id alone is a match for each type the parameter may name, and counts
// as many terms; the same ids with their type are one each.
func TestParseIDsAloneCountPerType(t *testing.T) {
	r := testRegistry(t)
	plan, err := parse(t, r, "Observation", "focus="+strings.Repeat("Patient/a,", 34)+"Patient/a", false)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(plan.Query.Where[0].References); n != 35 {
		t.Errorf("%d matches, want 35", n)
	}
	plan, err = parse(t, r, "Observation", "focus=a", false)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(plan.Query.Where[0].References); n < 140 {
		t.Errorf("focus=a is %d matches, want one for each of the types it may name", n)
	}
}

func TestParseLenient(t *testing.T) {
	r := testRegistry(t)
	plan, err := parse(t, r, "Patient", "shoe-size=9&name=ann&_text=y&family=", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Query.Where) != 1 || plan.Query.Where[0].Param != "name" {
		t.Errorf("where = %+v, want the name clause alone", plan.Query.Where)
	}
	var ignored []string
	for _, e := range plan.Ignored {
		ignored = append(ignored, e.Expression)
	}
	want := []string{"_text", "family", "shoe-size"}
	if !reflect.DeepEqual(ignored, want) {
		t.Errorf("ignored %v, want %v", ignored, want)
	}
	if plan.Params.Has("shoe-size") || !plan.Params.Has("name") {
		t.Errorf("self params %v keep an ignored parameter or lose an applied one", plan.Params)
	}
	// What lenient handling does not ignore: a modifier the parameter does
	// not have, and a named query not known, which R4 has servers refuse,
	// as ignoring them would answer a wider search than was asked.
	for _, q := range []string{"name:sounds-like=x", "gender:exact=male", "general-practitioner:above=Practitioner/1",
		"birthdate:missing=true&name:text=ann", "_query=overdue", "_include:deep=Patient:organization"} {
		if _, err := parse(t, r, "Patient", q, false); err == nil {
			t.Errorf("%s: ignored, want an error", q)
		}
	}
}

// Parsing arbitrary input returns a plan or an *Error, never panics.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"name=a", "birthdate=ge2024-02-29", "_has:Observation:patient:code=x",
		"subject:Patient.name=x", "value-quantity=5||mg", "value-quantity=ap5.4|http://unitsofmeasure.org|mg/dL", `identifier=a\|b`, "_sort=-date", "code-value-concept=a$b"} {
		f.Add("Observation", s)
		f.Add("Patient", s)
	}
	r, err := Load(testTypes)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, typ, query string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		_, err = r.Parse(typ, q, Options{Now: now})
		var e *Error
		if err != nil && !errors.As(err, &e) {
			t.Fatalf("%s?%s: %v is not an *Error", typ, query, err)
		}
	})
}

func TestCompartment(t *testing.T) {
	r := testRegistry(t)
	c, ok := r.Compartment("Observation", "p1")
	want := query.Clause{Param: "_compartment", Any: []query.Clause{
		{Param: "subject", References: []query.ReferenceMatch{{Type: "Patient", ID: "p1"}}},
		{Param: "performer", References: []query.ReferenceMatch{{Type: "Patient", ID: "p1"}}}}}
	if !ok || !reflect.DeepEqual(c, want) {
		t.Errorf("Observation compartment clause = %+v, %v; want %+v", c, ok, want)
	}
	if _, ok := r.Compartment("Organization", "p1"); ok {
		t.Error("Organization is not in the Patient compartment")
	}
}

// elementNames lists n distinct element names for _elements.
func elementNames(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = "e" + strconv.Itoa(i)
	}
	return strings.Join(names, ",")
}

// includes is a query of n distinct _revinclude parameters, each twice:
// repeats count once.
func includes(n int) string {
	types := []string{"Appointment", "CarePlan", "CareTeam", "Condition", "Encounter", "Group",
		"Observation", "Organization", "Patient", "Practitioner", "PractitionerRole"}
	var q []string
	for i := range n {
		v := "_include:iterate=" + types[i%len(types)] + ":*"
		if i >= len(types) {
			v += ":Patient"
		}
		q = append(q, v, v)
	}
	return strings.Join(q, "&")
}

// TestEscapeValue: an escaped value is one value, of one part, read back
// as written.
func TestEscapeValue(t *testing.T) {
	for _, s := range []string{"plain", `a,b`, `c|d`, `e$f`, `g\h`, `\,|$`} {
		e := EscapeValue(s)
		for _, sep := range []byte{',', '|', '$'} {
			if parts := splitUnescaped(e, sep); len(parts) != 1 {
				t.Errorf("EscapeValue(%q) = %q splits at %q into %q", s, e, sep, parts)
			}
		}
		if got := unescape(e); got != s {
			t.Errorf("unescape(EscapeValue(%q)) = %q", s, got)
		}
	}
}
