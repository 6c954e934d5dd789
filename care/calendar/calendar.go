// Package calendar reckons the calendar dates of care coordination: in
// the UK, where care is given, a date is a whole day of Europe/London
// time, whatever the zone of the host. It holds the rule of a current part
// in a CareTeam, which caseloads and the care-team access rule both decide
// by, so that who holds a patient in their caseload and who may read
// their record agree.
package calendar

import (
	"time"
	// The zone database, so that Europe/London is known on a host
	// without one (a container built from scratch).
	_ "time/tzdata"
)

// UK returns the zone of UK dates, Europe/London.
func UK() *time.Location {
	zone, err := time.LoadLocation("Europe/London")
	if err != nil {
		// Unreachable: time/tzdata holds the zone.
		panic("calendar: Europe/London: " + err.Error())
	}
	return zone
}

// Clock returns a clock reading now (time.Now when nil) in zone (the UK's
// when nil): what FHIRPath's now() and today() are given, so that they
// are the UK's whatever the zone of the host.
func Clock(now func() time.Time, zone *time.Location) func() time.Time {
	if now == nil {
		now = time.Now
	}
	if zone == nil {
		zone = UK()
	}
	return func() time.Time { return now().In(zone) }
}

// Today returns the date of now in zone, YYYY-MM-DD.
func Today(now time.Time, zone *time.Location) string {
	return now.In(zone).Format(time.DateOnly)
}

// Holds reports whether the period from start to end, FHIR dateTimes
// either of which may be absent (unbounded), holds at now: the period of
// a participant's part in a CareTeam, current while it holds. A date (or
// a month, a year) holds on each of its days in zone: a part ending on
// 2026-12-06 holds until that day is over there, one starting then holds
// from its beginning. A time holds from the instant it names, and an end
// time holds until it comes. A value that cannot be read as either, such
// as a leap second or 30 February that the FHIR lexical forms allow, holds
// never: a part whose bounds cannot be told is no part now.
func Holds(start, end string, now time.Time, zone *time.Location) bool {
	today := Today(now, zone)
	switch {
	case start == "":
	case isDate(start):
		// Dates at any precision compare as text with today cut to theirs.
		if today[:len(start)] < start {
			return false
		}
	default:
		t, err := time.Parse(time.RFC3339Nano, start)
		if err != nil || t.After(now) {
			return false
		}
	}
	switch {
	case end == "":
	case isDate(end):
		if today[:len(end)] > end {
			return false
		}
	default:
		t, err := time.Parse(time.RFC3339Nano, end)
		if err != nil || !t.After(now) {
			return false
		}
	}
	return true
}

// isDate reports whether s has the form of a FHIR date, YYYY, YYYY-MM or
// YYYY-MM-DD, its digits in place; it does not check that the day
// exists (FHIR's own form does not).
func isDate(s string) bool {
	const form = "dddd-dd-dd"
	if len(s) != 4 && len(s) != 7 && len(s) != 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if form[i] == 'd' && (s[i] < '0' || s[i] > '9') || form[i] == '-' && s[i] != '-' {
			return false
		}
	}
	return true
}
