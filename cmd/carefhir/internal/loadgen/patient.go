package loadgen

import (
	"math/rand/v2"
	"strconv"

	"carefhir/profiles"
)

// NHSNumber returns a valid NHS number, with its Modulus 11 check digit, from
// the n-th candidate in the range 999 000 0000 to 999 999 9999 that NHS
// England sets aside for testing, so generated data can never name a real
// patient. Candidates whose check digit would be 10, and 9999999999, are
// not valid NHS numbers and are skipped; n wraps around after a million
// candidates.
func NHSNumber(n uint64) string {
	for ; ; n++ {
		base := 999_000_000 + n%1_000_000
		digits := strconv.FormatUint(base, 10)
		if check, ok := profiles.NHSCheckDigit(digits); ok && profiles.ValidNHSNumber(digits+string(check)) {
			return digits + string(check)
		}
	}
}

// Names, places and dates the generated Patients are drawn from.
var (
	families = [...]string{"SMITH", "JONES", "TAYLOR", "BROWN", "WILLIAMS", "WILSON", "JOHNSON", "DAVIES", "PATEL", "KHAN"}
	givens   = [...]struct{ name, gender string }{
		{"Richard", "male"}, {"Oliver", "male"}, {"Mohammed", "male"}, {"George", "male"}, {"Arthur", "male"},
		{"Olivia", "female"}, {"Amelia", "female"}, {"Isla", "female"}, {"Ava", "female"}, {"Priya", "female"},
	}
	places = [...]struct{ line, city, postcode string }{
		{"4 Sandmoor Drive", "LEEDS", "LS17 7DF"},
		{"1 Trevelyan Square", "LEEDS", "LS1 6AE"},
		{"22 Castle Street", "EDINBURGH", "EH2 3AT"},
		{"10 Portland Road", "BIRMINGHAM", "B16 9HN"},
		{"7 Deansgate", "MANCHESTER", "M3 2BW"},
		{"31 Clifton Down", "BRISTOL", "BS8 3HT"},
	}
)

// PatientJSON returns a Patient shaped like the UK Core Patient profile: a
// verified NHS number, an official name, gender, birth date, phone number and
// a home address with a postcode, with names, dates and places drawn from r.
func PatientJSON(nhsNumber string, r *rand.Rand) []byte {
	g := givens[r.IntN(len(givens))]
	p := places[r.IntN(len(places))]
	b := make([]byte, 0, 1024)
	b = append(b, `{"resourceType":"Patient",`+
		`"meta":{"profile":["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"]},`+
		`"identifier":[{"extension":[{"url":"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus",`+
		`"valueCodeableConcept":{"coding":[{"system":"https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland",`+
		`"code":"01","display":"Number present and verified"}]}}],`+
		`"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`...)
	b = append(b, nhsNumber...)
	b = append(b, `"}],"name":[{"use":"official","family":"`...)
	b = append(b, families[r.IntN(len(families))]...)
	b = append(b, `","given":["`...)
	b = append(b, g.name...)
	b = append(b, `"]}],"telecom":[{"system":"phone","value":"0113`...)
	b = append(b, strconv.Itoa(1_000_000+r.IntN(9_000_000))...)
	b = append(b, `","use":"home"}],"gender":"`...)
	b = append(b, g.gender...)
	b = append(b, `","birthDate":"`...)
	b = append(b, birthDate(r)...)
	b = append(b, `","address":[{"use":"home","type":"physical","line":["`...)
	b = append(b, p.line...)
	b = append(b, `"],"city":"`...)
	b = append(b, p.city...)
	b = append(b, `","postalCode":"`...)
	b = append(b, p.postcode...)
	b = append(b, `"}]}`...)
	return b
}

// birthDate returns a date between 1930-01-01 and 2024-12-28 as YYYY-MM-DD.
func birthDate(r *rand.Rand) string {
	y, m, d := 1930+r.IntN(95), 1+r.IntN(12), 1+r.IntN(28)
	b := make([]byte, 0, 10)
	b = strconv.AppendInt(b, int64(y), 10)
	b = append(b, '-', byte('0'+m/10), byte('0'+m%10), '-', byte('0'+d/10), byte('0'+d%10))
	return string(b)
}
