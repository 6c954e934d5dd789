package server_test

import (
	"fmt"
	"net/http"
	"testing"
)

// putOnset writes Condition id with the onset element given (a member
// with its leading comma, or "").
func putOnset(t *testing.T, c *client, id, onset string) {
	t.Helper()
	body := fmt.Sprintf(`{"resourceType":"Condition","id":%q,"code":{"text":"asthma"},"subject":{"reference":"Patient/p"}%s}`, id, onset)
	c.do("PUT", "/Condition/"+id, body).want(t, http.StatusCreated)
}

// ucumAge is an Age or a Range end in UCUM units.
func ucumAge(value, unit string) string {
	return fmt.Sprintf(`{"value":%s,"unit":%q,"system":"http://unitsofmeasure.org","code":%q}`, value, unit, unit)
}

// A quantity parameter over a Range (Condition.onsetRange) compares the
// interval [low, high], an absent end open, with the search value's range
// as date search compares a Period: eq when the search range contains it,
// gt when it extends above the value, sa when it starts after, and so on;
// in canonical UCUM units when the search names them. A Quantity
// (onsetAge) compares as it always has.
func TestSearchQuantityRange(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		putOnset(t, c, "a", `,"onsetRange":{"low":`+ucumAge("40", "a")+`,"high":`+ucumAge("50", "a")+`}`)
		putOnset(t, c, "b", `,"onsetRange":{"low":`+ucumAge("60", "a")+`}`)
		putOnset(t, c, "c", `,"onsetRange":{"high":`+ucumAge("10", "a")+`}`)
		putOnset(t, c, "m", `,"onsetRange":{"low":`+ucumAge("480", "mo")+`,"high":`+ucumAge("540", "mo")+`}`)
		putOnset(t, c, "n", `,"onsetRange":{"low":`+ucumAge("540", "mo")+`,"high":`+ucumAge("545", "mo")+`}`)
		putOnset(t, c, "p", `,"onsetAge":`+ucumAge("45", "a"))
		putOnset(t, c, "none", "")
		const a, mo = "|http://unitsofmeasure.org|a", "|http://unitsofmeasure.org|mo"
		wantMatches(t, c, []searchCase{
			// Without a unit, values compare in the unit they were written in.
			{"/Condition?onset-age=lt50", "Condition/a Condition/c Condition/p"},
			{"/Condition?onset-age=gt500", "Condition/b Condition/m Condition/n"},
			// [44.5, 45.5) a holds 45 a and [540, 545] mo, not [40, 50] a.
			{"/Condition?onset-age=45" + a, "Condition/n Condition/p"},
			{"/Condition?onset-age=eq540" + mo, "Condition/p"},
			{"/Condition?onset-age=gt45" + a, "Condition/a Condition/b Condition/n"},
			{"/Condition?onset-age=gt55" + a, "Condition/b"},
			{"/Condition?onset-age=gt599" + mo, "Condition/a Condition/b"},
			{"/Condition?onset-age=lt45" + a, "Condition/a Condition/c Condition/m"},
			{"/Condition?onset-age=lt50" + a, "Condition/a Condition/c Condition/m Condition/n Condition/p"},
			{"/Condition?onset-age=ge50" + a, "Condition/a Condition/b"},
			{"/Condition?onset-age=le40" + a, "Condition/a Condition/c Condition/m"},
			{"/Condition?onset-age=le479" + mo, "Condition/c"},
			{"/Condition?onset-age=sa45" + a, "Condition/b"},
			{"/Condition?onset-age=sa39" + a, "Condition/a Condition/b Condition/m Condition/n Condition/p"},
			{"/Condition?onset-age=eb45" + a, "Condition/c"},
			{"/Condition?onset-age=eb46" + a, "Condition/c Condition/m Condition/n Condition/p"},
			// 45 a ± 4.5 overlaps [40, 50], [40, 45], [45, 45.4] and 45.
			{"/Condition?onset-age=ap45" + a, "Condition/a Condition/m Condition/n Condition/p"},
			{"/Condition?onset-age=ap8" + a, "Condition/c"},
			{"/Condition?onset-age=ne45" + a, "Condition/a Condition/b Condition/c Condition/m"},
			{"/Condition?onset-age:missing=true", "Condition/none"},
			// Sorted by the low end ascending, the high end descending.
			{"/Condition?onset-age=ge0&_sort=onset-age", "Condition/c Condition/a Condition/p Condition/b Condition/m Condition/n"},
			{"/Condition?onset-age=ge0&_sort=-onset-age", "Condition/b Condition/n Condition/m Condition/a Condition/p Condition/c"},
		})
		c.do("PUT", "/Condition/ab", `{"resourceType":"Condition","id":"ab","code":{"text":"asthma"},"subject":{"reference":"Patient/p"},`+
			`"abatementRange":{"low":`+ucumAge("12", "a")+`,"high":`+ucumAge("14", "a")+`}}`).want(t, http.StatusCreated)
		wantMatches(t, c, []searchCase{
			{"/Condition?abatement-age=gt13" + a, "Condition/ab"},
			{"/Condition?abatement-age=gt14" + a, ""},
		})
	})
}

// The Ranges of useContext are searched by context-quantity, and by
// context-type-quantity with the context's type.
func TestSearchContextRange(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		age := `{"system":"http://terminology.hl7.org/CodeSystem/usage-context-type","code":"age"}`
		c.do("PUT", "/ValueSet/adults", `{"resourceType":"ValueSet","id":"adults","status":"active","useContext":[{"code":`+age+`,`+
			`"valueRange":{"low":`+ucumAge("18", "a")+`,"high":`+ucumAge("65", "a")+`}}]}`).want(t, http.StatusCreated)
		c.do("PUT", "/ValueSet/other", `{"resourceType":"ValueSet","id":"other","status":"active","useContext":[{"code":`+age+`,`+
			`"valueQuantity":`+ucumAge("5", "a")+`}]}`).want(t, http.StatusCreated)
		const a, mo = "|http://unitsofmeasure.org|a", "|http://unitsofmeasure.org|mo"
		wantMatches(t, c, []searchCase{
			{"/ValueSet?context-quantity=gt60" + a, "ValueSet/adults"},
			{"/ValueSet?context-quantity=gt65" + a, ""},
			{"/ValueSet?context-quantity=lt20", "ValueSet/adults ValueSet/other"},
			{"/ValueSet?context-quantity=sa17" + a, "ValueSet/adults"},
			{"/ValueSet?context-type-quantity=age$ge65" + a, "ValueSet/adults"},
			{"/ValueSet?context-type-quantity=age$gt65" + a, ""},
			{"/ValueSet?context-type-quantity=age$gt779" + mo, "ValueSet/adults"},
			{"/ValueSet?context-type-quantity=age$le18", "ValueSet/adults ValueSet/other"},
			{"/ValueSet?context-type-quantity=age$lt18" + a, "ValueSet/other"},
			{"/ValueSet?context-type-quantity=age$eb66" + a, "ValueSet/adults ValueSet/other"},
			{"/ValueSet?context-type-quantity=age$ne5" + a, "ValueSet/adults"},
			{"/ValueSet?context-type-quantity=age$ap40" + a, "ValueSet/adults"},
		})
	})
}
