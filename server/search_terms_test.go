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
			{"UCUM: ne finds other values in mass units only", "/Observation?value-quantity=ne6|" + ucumSystem + "|mg", "Observation/m2"},
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

// TestSearchStoredTerminology checks that :in, :not-in, :below and :above
// consult the ValueSets and CodeSystems stored here, named by canonical
// url or as a literal reference, relative or absolute (R4 search.html,
// :in: "If the server can treat the reference as a literal URL, it does,
// else it tries to match known logical ValueSet.url values").
func TestSearchStoredTerminology(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		const system = "http://example.org/fhir/CodeSystem/frailty"
		for _, r := range []struct{ path, body string }{
			{"/CodeSystem/frailty", `{"resourceType":"CodeSystem","id":"frailty","url":"` + system + `","status":"active","content":"complete","hierarchyMeaning":"is-a",
 "concept":[{"code":"frail","display":"Frail","concept":[{"code":"moderate","display":"Moderately frail"},{"code":"severe","display":"Severely frail"}]},{"code":"fit","display":"Fit"}]}`},
			{"/ValueSet/vs1", `{"resourceType":"ValueSet","id":"vs1","url":"http://example.org/fhir/ValueSet/frail","version":"1.0","status":"active",
 "compose":{"include":[{"system":"` + system + `","concept":[{"code":"moderate"},{"code":"severe"}]}]}}`},
			{"/Observation/a", `{"resourceType":"Observation","id":"a","status":"final","code":{"coding":[{"system":"` + system + `","code":"moderate"}]}}`},
			{"/Observation/b", `{"resourceType":"Observation","id":"b","status":"final","code":{"coding":[{"system":"` + system + `","code":"fit"}]}}`},
			{"/Observation/c", `{"resourceType":"Observation","id":"c","status":"final","code":{"coding":[{"system":"` + system + `","code":"frail"}]}}`},
		} {
			c.do("PUT", r.path, r.body).want(t, http.StatusCreated)
		}
		for _, tt := range []struct{ query, match string }{
			{"code:in=http://example.org/fhir/ValueSet/frail", "Observation/a"},
			{"code:in=http://example.org/fhir/ValueSet/frail|1.0", "Observation/a"},
			{"code:in=ValueSet/vs1", "Observation/a"},
			{"code:in=" + c.base + "/ValueSet/vs1", "Observation/a"},
			{"code:not-in=ValueSet/vs1", "Observation/b Observation/c"},
			{"code:below=" + system + "|frail", "Observation/a Observation/c"},
			{"code:above=" + system + "|severe", "Observation/c"},
		} {
			q := url.Values{}
			name, value, _ := strings.Cut(tt.query, "=")
			q.Set(name, value)
			b := c.do("GET", "/Observation?"+q.Encode(), "", "Prefer", "handling=strict").searchset(t)
			if got := b.ids("match"); got != tt.match {
				t.Errorf("%s: matches %q, want %q", tt.query, got, tt.match)
			}
		}
		for _, query := range []string{"code:in=ValueSet/nothing", "code:in=http://example.org/fhir/ValueSet/frail|2.0"} {
			name, value, _ := strings.Cut(query, "=")
			c.do("GET", "/Observation?"+url.Values{name: {value}}.Encode(), "", "Prefer", "handling=strict").want(t, http.StatusBadRequest).outcome(t, "not-found", name)
		}
	}, withValidator(false))
}

// TestSearchCodeImplicitSystem checks that an element of type code, which
// holds its code alone, is found by system|code when the system is the one
// its code comes from (R4 search.html, token: for a code "the system is
// defined in the value set"), as HAPI clients that always send a system
// search it, and not by another system.
func TestSearchCodeImplicitSystem(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("PUT", "/Patient/m", `{"resourceType":"Patient","id":"m","gender":"male"}`).want(t, http.StatusCreated)
		c.do("PUT", "/Patient/f", `{"resourceType":"Patient","id":"f","gender":"female"}`).want(t, http.StatusCreated)
		c.do("PUT", "/Observation/o", `{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"}}`).want(t, http.StatusCreated)
		for _, tt := range []struct{ query, match string }{
			{"/Patient?gender=male", "Patient/m"},
			{"/Patient?gender=http://hl7.org/fhir/administrative-gender|male", "Patient/m"},
			{"/Patient?gender:not=http://hl7.org/fhir/administrative-gender|male", "Patient/f"},
			{"/Patient?gender=http://example.org/sex|male", ""},
			{"/Patient?gender=http://hl7.org/fhir/administrative-gender|nonsense", ""},
			{"/Observation?status=http://hl7.org/fhir/observation-status|final", "Observation/o"},
			{"/Observation?status=http://hl7.org/fhir/observation-status|amended", ""},
		} {
			u, err := url.Parse(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			u.RawQuery = u.Query().Encode()
			if got := c.do("GET", u.String(), "").searchset(t).ids("match"); got != tt.match {
				t.Errorf("GET %s: matches %q, want %q", tt.query, got, tt.match)
			}
		}
	}, withValidator(false))
}
