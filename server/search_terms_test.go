package server_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const (
	clinicalStatus = "http://terminology.hl7.org/CodeSystem/condition-clinical"
	ucumSystem     = "http://unitsofmeasure.org"
)

// termsData are Conditions of every clinical status and Observations with
// the same measures in different UCUM units, one in another unit system,
// and an ethnic category of UK Core.
var termsData = []struct{ typ, id, body string }{
	{"Condition", "c1", condition("active")},
	{"Condition", "c2", condition("relapse")},
	{"Condition", "c3", condition("resolved")},
	{"Condition", "c4", condition("remission")},
	{"Condition", "c5", `{"resourceType":"Condition","subject":{"reference":"Patient/p"}}`},
	{"Observation", "m1", measure("final", "2345-7", "0.006", ucumSystem, "g")},
	{"Observation", "m2", measure("final", "2345-7", "5", ucumSystem, "mg")},
	{"Observation", "m3", measure("final", "2345-7", "6", ucumSystem, "mg")},
	{"Observation", "s1", measure("amended", "15074-8", "6.0", ucumSystem, "mmol/L")},
	{"Observation", "s2", measure("corrected", "15074-8", "5400", ucumSystem, "umol/L")},
	{"Observation", "s3", measure("final", "15074-8", "7", ucumSystem, "mmol/L")},
	{"Observation", "b1", measure("final", "8480-6", "120", ucumSystem, "mm[Hg]")},
	{"Observation", "x1", measure("final", "2345-7", "6", "http://example.org/units", "mg")},
	{"Observation", "e1", `{"resourceType":"Observation","status":"final","code":{"text":"ethnic category"},` +
		`"valueCodeableConcept":{"coding":[{"system":"https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland","code":"A"}]}}`},
}

func condition(status string) string {
	return `{"resourceType":"Condition","subject":{"reference":"Patient/p"},"clinicalStatus":{"coding":[{"system":"` +
		clinicalStatus + `","code":"` + status + `"}]}}`
}

func measure(status, loinc, value, system, code string) string {
	return fmt.Sprintf(`{"resourceType":"Observation","status":%q,"code":{"coding":[{"system":"http://loinc.org","code":%q}]},`+
		`"valueQuantity":{"value":%s,"unit":%q,"system":%q,"code":%q}}`, status, loinc, value, code, system, code)
}

// TestSearchTerminology searches with the token modifiers that consult the
// bundled terminology (:in, :not-in, :below, :above) and with quantities in
// UCUM units, which compare in canonical units (issue 3, item 3).
func TestSearchTerminology(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		for _, r := range termsData {
			res := c.do("PUT", "/"+r.typ+"/"+r.id, `{"id":"`+r.id+`",`+r.body[1:])
			res.want(t, http.StatusCreated)
		}
		tests := []struct {
			name, query string
			match       string // Type/id of the matches, by id
		}{
			{"in", "/Condition?clinical-status:in=http://hl7.org/fhir/ValueSet/condition-clinical",
				"Condition/c1 Condition/c2 Condition/c3 Condition/c4"},
			{"not-in keeps what has no value", "/Condition?clinical-status:not-in=http://hl7.org/fhir/ValueSet/condition-clinical",
				"Condition/c5"},
			{"below", "/Condition?clinical-status:below=" + clinicalStatus + "|active", "Condition/c1 Condition/c2"},
			{"below, another branch", "/Condition?clinical-status:below=" + clinicalStatus + "|inactive", "Condition/c3 Condition/c4"},
			{"above", "/Condition?clinical-status:above=" + clinicalStatus + "|relapse", "Condition/c1 Condition/c2"},
			{"above a root", "/Condition?clinical-status:above=" + clinicalStatus + "|active", "Condition/c1"},
			{"below or above", "/Condition?clinical-status:below=" + clinicalStatus + "|inactive," + clinicalStatus + "|relapse",
				"Condition/c2 Condition/c3 Condition/c4"},
			{"in on an element of type code", "/Observation?status:in=http://hl7.org/fhir/ValueSet/observation-status",
				"Observation/b1 Observation/e1 Observation/m1 Observation/m2 Observation/m3 Observation/s1 Observation/s2 Observation/s3 Observation/x1"},
			{"below on an element of type code", "/Observation?status:below=http://hl7.org/fhir/observation-status|amended",
				"Observation/s1 Observation/s2"},
			{"in a UK Core ValueSet", "/Observation?value-concept:in=https://fhir.hl7.org.uk/ValueSet/UKCore-EthnicCategory", "Observation/e1"},

			{"UCUM: mg finds g", "/Observation?value-quantity=gt5.4|" + ucumSystem + "|mg", "Observation/m1 Observation/m3"},
			{"UCUM: g finds mg", "/Observation?value-quantity=0.006|" + ucumSystem + "|g", "Observation/m1 Observation/m3"},
			{"UCUM: precision range in g", "/Observation?value-quantity=0.0060|" + ucumSystem + "|g", "Observation/m1 Observation/m3"},
			{"UCUM: precision range excludes", "/Observation?value-quantity=0.0054|" + ucumSystem + "|g", ""},
			{"UCUM: mmol/L precision range", "/Observation?value-quantity=6.0|" + ucumSystem + "|mmol/L", "Observation/s1"},
			{"UCUM: umol/L finds mmol/L", "/Observation?value-quantity=6000|" + ucumSystem + "|umol/L", "Observation/s1"},
			{"UCUM: mmol/L finds umol/L", "/Observation?value-quantity=5.4|" + ucumSystem + "|mmol/L", "Observation/s2"},
			{"UCUM: ge across units", "/Observation?value-quantity=ge5.4|" + ucumSystem + "|mmol/L", "Observation/s1 Observation/s2 Observation/s3"},
			{"UCUM: lt across units", "/Observation?value-quantity=lt5400.5|" + ucumSystem + "|umol/L", "Observation/s2"},
			{"UCUM: pressure in kPa", "/Observation?value-quantity=gt15|" + ucumSystem + "|kPa", "Observation/b1"},
			{"UCUM: ne", "/Observation?value-quantity=ne6|" + ucumSystem + "|mg",
				"Observation/b1 Observation/e1 Observation/m2 Observation/s1 Observation/s2 Observation/s3 Observation/x1"},
			{"UCUM: incommensurable", "/Observation?value-quantity=6|" + ucumSystem + "|mL", ""},
			{"other system compares as written", "/Observation?value-quantity=6|http://example.org/units|mg", "Observation/x1"},
			{"unit without system compares as written", "/Observation?value-quantity=6||mg", "Observation/m3 Observation/x1"},
			{"UCUM or another system", "/Observation?value-quantity=5|" + ucumSystem + "|mg,6|http://example.org/units|mg", "Observation/m2 Observation/x1"},
			{"UCUM in a composite", "/Observation?code-value-quantity=http://loinc.org|15074-8$gt5.9|" + ucumSystem + "|mmol/L", "Observation/s1 Observation/s3"},
			{"UCUM in a composite, in other units", "/Observation?code-value-quantity=http://loinc.org|15074-8$lt6000|" + ucumSystem + "|umol/L", "Observation/s2"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				u, err := url.Parse(tt.query)
				if err != nil {
					t.Fatal(err)
				}
				u.RawQuery = u.Query().Encode() // '|' and '$' as clients send them
				b := c.do("GET", u.String(), "", "Prefer", "handling=strict").searchset(t)
				if got := b.ids("match"); got != tt.match {
					t.Errorf("GET %s: matches %q, want %q", tt.query, got, tt.match)
				}
			})
		}

		errs := []struct {
			name, query string
			code, expr  string
			strict      bool
			diagnostics string
		}{
			{"unknown ValueSet", "/Condition?code:in=http://example.org/ValueSet/nothing", "not-found", "code:in", false, "http://example.org/ValueSet/nothing"},
			{"unknown ValueSet, strict", "/Condition?code:not-in=http://example.org/ValueSet/nothing", "not-found", "code:not-in", true, "http://example.org/ValueSet/nothing"},
			{"ValueSet drawing on SNOMED CT", "/Observation?code:in=https://fhir.hl7.org.uk/ValueSet/UKCore-BloodPressure", "not-supported", "code:in", false, "UKCore-BloodPressure"},
			{"below without a system", "/Condition?clinical-status:below=active", "invalid", "clinical-status:below", false, "system|code"},
			{"below an unknown code", "/Condition?clinical-status:below=" + clinicalStatus + "|dormant", "not-found", "clinical-status:below", false, "dormant"},
			{"below a SNOMED CT code", "/Condition?code:below=http://snomed.info/sct|404684003", "not-supported", "code:below", false, "code system not available here"},
		}
		for _, tt := range errs {
			t.Run(tt.name, func(t *testing.T) {
				u, err := url.Parse(tt.query)
				if err != nil {
					t.Fatal(err)
				}
				u.RawQuery = u.Query().Encode()
				var headers []string
				if tt.strict {
					headers = []string{"Prefer", "handling=strict"}
				}
				r := c.do("GET", u.String(), "", headers...).want(t, http.StatusBadRequest)
				if d := r.outcome(t, tt.code, tt.expr); !strings.Contains(d, tt.diagnostics) {
					t.Errorf("GET %s: diagnostics %q do not mention %q", tt.query, d, tt.diagnostics)
				}
			})
		}
	}, withValidator(false))
}
