package csv

import (
	"strings"
	"testing"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
)

// TestMergeOntoStored applies rows of a SystmOne-style report to a stored
// Patient: each updates what its cells give and keeps the rest.
func TestMergeOntoStored(t *testing.T) {
	const stored = `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9990000018"}],
		"name":[{"use":"official","family":"Legal"},{"use":"usual","family":"Lee","given":["Ann","Marie"],"prefix":["Ms"],"suffix":["MBE"]}],
		"telecom":[{"system":"phone","use":"mobile","value":"07700 900001"},{"system":"phone","use":"mobile","value":"07700 900002"},{"system":"email","use":"home","value":"ann@example.com"}],
		"address":[{"use":"home","line":["1 Old Road"],"postalCode":"LS1 1AA"}],
		"generalPractitioner":[{"reference":"Organization/y1","type":"Organization","identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"Y12345"}},{"reference":"Practitioner/p1","display":"Dr Old"}]}`
	const header = "NHS Number,First Name,Middle Names,Surname,Title,Telecom Number,Registered Practice ODS Code,Usual GP,Address Line 1,Postcode\n"
	tests := []struct {
		name, row string
		want      []string // in the merged record's JSON
		not       []string
	}{
		{"blank cells", "9990000018,,,,,,,,,", []string{`"given":["Ann","Marie"]`, `"family":"Lee"`, `"07700 900002"`, `"1 Old Road"`, `"Dr Old"`}, nil},
		{"first name only", "9990000018,Anne,,,,,,,,", []string{`"given":["Anne","Marie"]`, `"prefix":["Ms"]`, `"suffix":["MBE"]`, `"family":"Legal"`}, nil},
		{"middle and title", "9990000018,,Louise,,Mrs,,,,,", []string{`"given":["Ann","Louise"]`, `"prefix":["Mrs"]`}, nil},
		{"a known mobile", "9990000018,,,,,07700900002,,,,", []string{`"07700 900001"`, `"07700 900002"`}, nil},
		{"a new mobile", "9990000018,,,,,07700 900003,,,,", []string{`"07700 900003"`, `"ann@example.com"`}, []string{`"07700 900001"`, `"07700 900002"`}},
		{"the same practice", "9990000018,,,,,,Y12345,,,", []string{`"reference":"Organization/y1"`, `"Dr Old"`}, nil},
		{"the same GP by name", "9990000018,,,,,,,dr old,,", []string{`"reference":"Practitioner/p1"`}, nil},
		{"another practice and GP", "9990000018,,,,,,B82005,Dr New,,", []string{`"reference":"urn:uuid:`, `"Dr New"`}, []string{`Organization/y1`, `"Dr Old"`}},
		{"the same postcode", "9990000018,,,,,,,,,ls1 1aa", []string{`"1 Old Road"`}, nil},
		{"a new address", "9990000018,,,,,,,,2 New Road,LS2 2BB", []string{`"line":["2 New Road"],"postalCode":"LS2 2BB"`}, []string{`"1 Old Road"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im, err := NewImporter(strings.NewReader(header+tt.row+"\n"), mapping(t, "systmone-patient-list"), 0)
			if err != nil {
				t.Fatal(err)
			}
			res, err := im.Next()
			if err != nil || res.Bundle == nil {
				t.Fatalf("%v %v", err, res.Issues)
			}
			var merged fhir.Resource
			for _, e := range res.Bundle.Entry {
				if merge := res.Merges[e.FullUrl.Get()]; merge != nil {
					base, err := fhirjson.Unmarshal([]byte(stored))
					if err != nil {
						t.Fatal(err)
					}
					merged = merge(base, func(u string) string { return u })
				}
			}
			if merged == nil {
				t.Fatal("the row's Patient has no merge")
			}
			js, err := fhirjson.Marshal(merged)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(js), w) {
					t.Errorf("merged record lacks %s: %s", w, js)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(string(js), n) {
					t.Errorf("merged record still holds %s: %s", n, js)
				}
			}
		})
	}
}
