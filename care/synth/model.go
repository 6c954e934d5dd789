package synth

import (
	"math/rand/v2"
	"time"

	"carefhir/care"
	"carefhir/fhir"
)

// Identifier systems of the NHS and of UK professional registers, as UK Core
// uses them.
const (
	SystemNHSNumber      = "https://fhir.nhs.uk/Id/nhs-number"
	SystemODSCode        = "https://fhir.nhs.uk/Id/ods-organization-code"
	SystemGMCNumber      = "https://fhir.hl7.org.uk/Id/gmc-number"
	SystemGMPNumber      = "https://fhir.hl7.org.uk/Id/gmp-number"
	SystemNMCNumber      = "https://fhir.hl7.org.uk/Id/nmc-number"
	SystemSDSUserID      = "https://fhir.nhs.uk/Id/sds-user-id"
	SystemSDSRoleProfile = "https://fhir.nhs.uk/Id/sds-role-profile-id"
)

// Code systems of the terminologies the records are coded in.
const (
	SystemSNOMED = "http://snomed.info/sct"
	SystemLOINC  = "http://loinc.org"
	SystemUCUM   = "http://unitsofmeasure.org"
)

// Base is the canonical base of the definitions carefhir publishes itself:
// the PAM Questionnaire and the codes no national terminology has.
const Base = care.Base

// SystemCareRole codes the care-coordination roles of PractitionerRole and
// CareTeam members that have no SNOMED CT concept of their own:
// practice-nurse, social-prescribing-link-worker, health-and-wellbeing-coach
// and care-coordinator.
const SystemCareRole = care.SystemCareRole

// Profile of the UK Core Patient, which generated Patients claim.
const profileUKCorePatient = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"

const (
	terminology = "http://terminology.hl7.org/CodeSystem/"
	// extNHSNumberVerification is UK Core's extension stating how far an
	// NHS number has been checked.
	extNHSNumberVerification    = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
	systemNHSNumberVerification = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
	systemPracticeSetting       = "https://fhir.hl7.org.uk/CodeSystem/UKCore-PracticeSettingCode"
)

// pick returns a random element of xs.
func pick[T any](r *rand.Rand, xs []T) T {
	return xs[r.IntN(len(xs))]
}

// between returns a random integer in [lo, hi].
func between(r *rand.Rand, lo, hi int) int {
	return lo + r.IntN(hi-lo+1)
}

// chance reports true with probability percent/100.
func chance(r *rand.Rand, percent int) bool {
	return r.IntN(100) < percent
}

// ref returns a relative literal reference to typ/id.
func ref(typ, id, display string) *fhir.Reference {
	rf := &fhir.Reference{Reference: fhir.NewString(typ + "/" + id)}
	if display != "" {
		rf.Display = fhir.NewString(display)
	}
	return rf
}

func coding(system, code, display string) *fhir.Coding {
	c := &fhir.Coding{System: fhir.NewUri(system), Code: fhir.NewCode(code)}
	if display != "" {
		c.Display = fhir.NewString(display)
	}
	return c
}

// concept returns a CodeableConcept of one coding, with text when given.
func concept(system, code, display string) *fhir.CodeableConcept {
	return &fhir.CodeableConcept{Coding: []*fhir.Coding{coding(system, code, display)}}
}

// snomed returns a CodeableConcept of a SNOMED CT concept.
func snomed(code, display string) *fhir.CodeableConcept {
	return concept(SystemSNOMED, code, display)
}

// textConcept returns a CodeableConcept that is text alone.
func textConcept(text string) *fhir.CodeableConcept {
	return &fhir.CodeableConcept{Text: fhir.NewString(text)}
}

func identifier(system, value string) *fhir.Identifier {
	return &fhir.Identifier{System: fhir.NewUri(system), Value: fhir.NewString(value)}
}

// quantity returns a UCUM quantity; value is decimal text, such as "72.5".
func quantity(value, unit, code string) *fhir.Quantity {
	return &fhir.Quantity{Value: fhir.NewDecimal(value), Unit: fhir.NewString(unit),
		System: fhir.NewUri(SystemUCUM), Code: fhir.NewCode(code)}
}

// Dates and times are written in UK civil time: GMT in winter, British
// Summer Time (UTC+01:00) from 01:00 UTC on the last Sunday in March to
// 01:00 UTC on the last Sunday in October.
var bst = time.FixedZone("BST", 60*60)

// ukTime returns the wall-clock time hour:minute on day d, in the offset of
// UK civil time that day (the hours chosen are never in a clock change).
func ukTime(d time.Time, hour, minute int) time.Time {
	y, m, day := d.Date()
	t := time.Date(y, m, day, hour, minute, 0, 0, time.UTC)
	if t.After(lastSunday(y, time.March)) && t.Before(lastSunday(y, time.October)) {
		t = time.Date(y, m, day, hour, minute, 0, 0, bst)
	}
	return t
}

// lastSunday returns the last Sunday of month m of year y, at midnight UTC.
func lastSunday(y int, m time.Month) time.Time {
	last := time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC)
	return last.AddDate(0, 0, -int(last.Weekday()))
}

// date writes the calendar date of t as a FHIR date.
func date(t time.Time) *fhir.Date { return fhir.NewDate(t.Format(time.DateOnly)) }

// day writes the calendar date of t as a FHIR dateTime of day precision.
func day(t time.Time) *fhir.DateTime { return fhir.NewDateTime(t.Format(time.DateOnly)) }

// dateTime writes t as a FHIR dateTime with its UTC offset ("Z" for GMT).
func dateTime(t time.Time) *fhir.DateTime { return fhir.NewDateTime(t.Format(time.RFC3339)) }

// instant writes t as a FHIR instant.
func instant(t time.Time) *fhir.Instant { return fhir.NewInstant(t.Format(time.RFC3339)) }

// workday returns d, or the Monday after when d falls at a weekend.
func workday(d time.Time) time.Time {
	switch d.Weekday() {
	case time.Saturday:
		return d.AddDate(0, 0, 2)
	case time.Sunday:
		return d.AddDate(0, 0, 1)
	}
	return d
}

// clinicTime returns a time in surgery hours on day d, on a ten-minute slot.
func clinicTime(r *rand.Rand, d time.Time) time.Time {
	slot := r.IntN(57) // 08:00 to 17:20
	return ukTime(d, 8+slot/6, slot%6*10)
}
