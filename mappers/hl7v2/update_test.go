package hl7v2

import (
	"strings"
	"testing"

	"carefhir/fhir/fhirjson"
)

// TestUpdateMerge applies PID and PD1 fields to a stored record: an empty
// field changes nothing, "" deletes what the record holds of it, and a
// value replaces it, keeping a stored item that agrees with one sent.
func TestUpdateMerge(t *testing.T) {
	const stored = `{"resourceType":"Patient","id":"p1",
	"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9990000018","extension":[{"url":"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus","valueCodeableConcept":{"coding":[{"system":"https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland","code":"01"}]}}]},{"system":"https://example.org/pas","value":"X1"}],
	"name":[{"use":"usual","family":"Ward","given":["Sarah"],"period":{"start":"2001-01-01"}},{"use":"old","family":"Lee","given":["Sarah"]}],
	"gender":"female","birthDate":"1948-03-12","deceasedBoolean":true,
	"address":[{"id":"a1","use":"home","line":["12 High Street"],"postalCode":"LS1 4AP"},{"use":"temp","line":["Boar Lane"]}],
	"telecom":[{"id":"t1","system":"phone","use":"home","value":"0113 249 6000"},{"system":"phone","use":"work","value":"0113 249 6999"}],
	"generalPractitioner":[{"reference":"Organization/o1","identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"Y12345"}},{"reference":"Practitioner/g1"}]}`
	const msh = "MSH|^~\\&|EMISWEB|Y12345|CAREFHIR|PCN01|20260301093000+0000||ADT^A31^ADT_A05|M1|P|2.4\r"
	// pid is a PID with the NHS number in PID-3 and the fields given, by
	// number.
	pid := func(fields map[int]string) string {
		f := make([]string, 33)
		f[0], f[1], f[3] = "PID", "1", "9990000018^^^NHS^NH"
		for n, v := range fields {
			f[n] = v
		}
		return strings.TrimRight(strings.Join(f, "|"), "|")
	}
	nhs := pid(nil)
	tests := []struct {
		name, pid, pd1 string
		want, lacks    []string
	}{
		{name: "empty fields change nothing", pid: nhs,
			want: []string{`"family":"Ward"`, `"1948-03-12"`, `"female"`, `"id":"a1"`, `"Boar Lane"`, `"id":"t1"`, `"0113 249 6999"`, `"Organization/o1"`, `"Practitioner/g1"`, `"code":"01"`, `"X1"`, `"deceasedBoolean":true`}},
		{name: "the same values keep the stored items", pid: pid(map[int]string{5: "WARD^SARAH^^^^^L", 7: "19480312", 8: "F", 11: "12 HIGH STREET^^^^ls14ap^^H", 13: "01132496000^PRN^PH"}),
			want: []string{`"use":"usual"`, `"period"`, `"id":"a1"`, `"Boar Lane"`, `"id":"t1"`, `"family":"Lee"`}},
		{name: "nulls delete", pid: pid(map[int]string{5: `""`, 7: `""`, 8: `""`, 11: `""`, 13: `""`, 14: `""`, 29: `""`, 30: `""`, 32: `""`}),
			want:  []string{`"family":"Lee"`, `"X1"`, `"Organization/o1"`},
			lacks: []string{`"Ward"`, `birthDate`, `gender`, `address`, `telecom`, `deceased`, `VerificationStatus`}},
		{name: "new values replace what each field covers", pid: pid(map[int]string{5: "JONES^SARAH^^^^^L", 11: "1 NEW ROAD^^LEEDS^^LS2 7EW^^H", 13: "07700900123^PRS^CP", 32: "NSTS02"}),
			want:  []string{`"family":"JONES"`, `"family":"Lee"`, `"1 NEW ROAD"`, `"Boar Lane"`, `"id":"t1"`, `"07700900123"`, `"code":"02"`},
			lacks: []string{`"Ward"`, `"id":"a1"`, `"code":"01"`}},
		{name: "a new home phone replaces the home phone only", pid: pid(map[int]string{13: "01132000000^PRN^PH"}),
			want:  []string{`"01132000000"`, `"0113 249 6999"`},
			lacks: []string{`"id":"t1"`}},
		{name: "a phone and an address without a use replace the home ones", pid: pid(map[int]string{11: "1 NEW ROAD^^LEEDS^^LS2 7EW", 13: "01132000000"}),
			want:  []string{`"01132000000"`, `"0113 249 6999"`, `"1 NEW ROAD"`, `"Boar Lane"`},
			lacks: []string{`"id":"t1"`, `"id":"a1"`}},
		{name: "PID-30 N records the patient alive", pid: pid(map[int]string{30: "N"}),
			lacks: []string{`deceased`}},
		{name: "PID-29 replaces the indicator with a date", pid: pid(map[int]string{29: "20260101"}),
			want: []string{`"deceasedDateTime":"2026-01-01"`}, lacks: []string{`deceasedBoolean`}},
		{name: "a new practice replaces the old, the GP kept", pid: nhs, pd1: "PD1|||NEW SURGERY^^B86001",
			want: []string{`"Practitioner/g1"`, `"reference":"urn:uuid:`}, lacks: []string{`"Organization/o1"`}},
		{name: "the same practice keeps the stored reference", pid: nhs, pd1: "PD1|||HIGH STREET SURGERY^^Y12345",
			want: []string{`"Organization/o1"`, `"Practitioner/g1"`}, lacks: []string{`urn:uuid:`}},
		{name: "a null GP removes it", pid: nhs, pd1: `PD1||||""`,
			want: []string{`"Organization/o1"`}, lacks: []string{`"Practitioner/g1"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := msh + tt.pid + "\r"
			if tt.pd1 != "" {
				msg += tt.pd1 + "\r"
			}
			im := Import([]byte(msg))
			if im.Failed() || im.Bundle == nil {
				t.Fatalf("%v", im.Issues)
			}
			if len(im.Merges) != 1 {
				t.Fatalf("%d merges, want the Patient's", len(im.Merges))
			}
			base, err := fhirjson.Unmarshal([]byte(stored))
			if err != nil {
				t.Fatal(err)
			}
			for _, merge := range im.Merges {
				base = merge(base, func(u string) string { return u })
			}
			js, err := fhirjson.Marshal(base)
			if err != nil {
				t.Fatal(err)
			}
			got := string(js)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("lacks %s: %s", w, got)
				}
			}
			for _, l := range tt.lacks {
				if strings.Contains(got, l) {
					t.Errorf("holds %s: %s", l, got)
				}
			}
		})
	}
}
