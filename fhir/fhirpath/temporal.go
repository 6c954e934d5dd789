package fhirpath

import (
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Precisions of a temporal value, from coarsest to finest.
const (
	precYear = iota + 1
	precMonth
	precDay
	precHour
	precMinute
	precSecond
	precMilli
)

// temporal holds the fields of a Date, DateTime or Time. Fields below the
// precision are zero.
type temporal struct {
	year, month, day            int
	hour, minute, second, milli int
	prec                        int
	hasTZ                       bool
	tzMinutes                   int // offset east of UTC
	fracDigits                  int // digits written after the seconds' point
}

// Date is the system type System.Date, with year, month or day precision.
type Date struct{ t temporal }

// DateTime is the system type System.DateTime, with any precision from year
// to millisecond and an optional time-zone offset.
type DateTime struct{ t temporal }

// Time is the system type System.Time: a time of day, hour to millisecond.
type Time struct{ t temporal }

// TypeName implements Value.
func (Date) TypeName() string { return "System.Date" }

// TypeName implements Value.
func (DateTime) TypeName() string { return "System.DateTime" }

// TypeName implements Value.
func (Time) TypeName() string { return "System.Time" }

// String formats d as in FHIR JSON (without the literal's '@').
func (d Date) String() string { return d.t.dateString() }

// String formats d as in FHIR JSON (without the literal's '@').
func (d DateTime) String() string {
	s := d.t.dateString()
	if d.t.prec >= precHour {
		s += "T" + d.t.timeString() + d.t.zoneString()
	}
	return s
}

// String formats t as in FHIR JSON.
func (t Time) String() string { return t.t.timeString() }

// Time returns the instant d denotes, taking missing fields as their minimum
// and a missing zone as UTC.
func (d DateTime) Time() time.Time { return d.t.goTime() }

// Precision returns the number of significant fields (1 year ... 7 millisecond).
func (d DateTime) Precision() int { return d.t.prec }

// Time returns the start of the date, in UTC.
func (d Date) Time() time.Time { return d.t.goTime() }

// Precision returns 1 (year), 2 (month) or 3 (day).
func (d Date) Precision() int { return d.t.prec }

// HasZone reports whether d carries a time-zone offset.
func (d DateTime) HasZone() bool { return d.t.hasTZ }

func (t temporal) dateString() string {
	s := fmt.Sprintf("%04d", t.year)
	if t.prec >= precMonth {
		s += fmt.Sprintf("-%02d", t.month)
	}
	if t.prec >= precDay {
		s += fmt.Sprintf("-%02d", t.day)
	}
	return s
}

func (t temporal) timeString() string {
	s := fmt.Sprintf("%02d", t.hour)
	if t.prec >= precMinute {
		s += fmt.Sprintf(":%02d", t.minute)
	}
	if t.prec >= precSecond {
		s += fmt.Sprintf(":%02d", t.second)
	}
	if t.prec >= precMilli {
		s += fmt.Sprintf(".%03d", t.milli)
	}
	return s
}

func (t temporal) zoneString() string {
	if !t.hasTZ {
		return ""
	}
	if t.tzMinutes == 0 {
		return "Z"
	}
	sign, m := '+', t.tzMinutes
	if m < 0 {
		sign, m = '-', -m
	}
	return fmt.Sprintf("%c%02d:%02d", sign, m/60, m%60)
}

func (t temporal) goTime() time.Time {
	loc := time.UTC
	if t.hasTZ {
		loc = time.FixedZone("", t.tzMinutes*60)
	}
	month, day := max(t.month, 1), max(t.day, 1)
	return time.Date(t.year, time.Month(month), day, t.hour, t.minute, t.second, t.milli*1e6, loc)
}

var (
	dateRE = regexp.MustCompile(`^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$`)
	timeRE = regexp.MustCompile(`^(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?$`)
	zoneRE = regexp.MustCompile(`(Z|[+-]\d{2}:\d{2})$`)
)

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func parseDatePart(s string, t *temporal) bool {
	m := dateRE.FindStringSubmatch(s)
	if m == nil {
		return false
	}
	t.year, t.prec = atoi(m[1]), precYear
	if m[2] != "" {
		t.month, t.prec = atoi(m[2]), precMonth
		if t.month < 1 || t.month > 12 {
			return false
		}
	}
	if m[3] != "" {
		t.day, t.prec = atoi(m[3]), precDay
		if t.day < 1 || t.day > daysIn(t.year, t.month) {
			return false
		}
	}
	return true
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func parseTimePart(s string, t *temporal) bool {
	m := timeRE.FindStringSubmatch(s)
	if m == nil {
		return false
	}
	t.hour, t.prec = atoi(m[1]), precHour
	if m[2] != "" {
		t.minute, t.prec = atoi(m[2]), precMinute
	}
	if m[3] != "" {
		t.second, t.prec = atoi(m[3]), precSecond
	}
	if m[4] != "" {
		f := (m[4] + "00")[:3]
		t.milli, t.prec, t.fracDigits = atoi(f), precMilli, len(m[4])
	}
	return t.hour < 24 && t.minute < 60 && t.second < 60
}

func parseZone(s string, t *temporal) string {
	z := zoneRE.FindString(s)
	if z == "" {
		return s
	}
	t.hasTZ = true
	if z != "Z" {
		h, m := atoi(z[1:3]), atoi(z[4:6])
		t.tzMinutes = h*60 + m
		if z[0] == '-' {
			t.tzMinutes = -t.tzMinutes
		}
	}
	return s[:len(s)-len(z)]
}

// ParseDate parses a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD).
func ParseDate(s string) (Date, error) {
	var t temporal
	if !parseDatePart(s, &t) {
		return Date{}, fmt.Errorf("fhirpath: invalid date %q", s)
	}
	return Date{t}, nil
}

// ParseDateTime parses a FHIR dateTime or instant, or a FHIRPath DateTime
// literal without its '@' (which may end in a bare "T").
func ParseDateTime(s string) (DateTime, error) {
	var t temporal
	date, clock, hasT := strings.Cut(s, "T")
	if !parseDatePart(date, &t) {
		return DateTime{}, fmt.Errorf("fhirpath: invalid dateTime %q", s)
	}
	if hasT && clock != "" {
		if t.prec != precDay {
			return DateTime{}, fmt.Errorf("fhirpath: invalid dateTime %q", s)
		}
		clock = parseZone(clock, &t)
		if !parseTimePart(clock, &t) {
			return DateTime{}, fmt.Errorf("fhirpath: invalid dateTime %q", s)
		}
	}
	return DateTime{t}, nil
}

// ParseTime parses a FHIR time (hh:mm:ss with optional fraction) or a
// FHIRPath Time literal without its "@T".
func ParseTime(s string) (Time, error) {
	var t temporal
	if !parseTimePart(s, &t) {
		return Time{}, fmt.Errorf("fhirpath: invalid time %q", s)
	}
	return Time{t}, nil
}

// normalised returns t shifted to UTC when it has a zone and a time.
func (t temporal) normalised() temporal {
	if !t.hasTZ || t.prec < precHour || t.tzMinutes == 0 {
		return t
	}
	g := t.goTime().UTC()
	u := t
	u.year, u.month, u.day = g.Year(), int(g.Month()), g.Day()
	u.hour, u.minute = g.Hour(), g.Minute()
	u.tzMinutes = 0
	return u
}

func (t temporal) fields() [7]int {
	return [7]int{t.year, t.month, t.day, t.hour, t.minute, t.second, t.milli}
}

// compareTemporal orders a and b. ok is false when the result is unknown
// because the values have different precisions and agree on the fields they
// share. Seconds and milliseconds count as one precision.
func compareTemporal(a, b temporal, first int) (cmp int, ok bool) {
	if a.hasTZ != b.hasTZ && a.prec >= precHour && b.prec >= precHour {
		// One side has no zone: the order is unknown.
		return 0, false
	}
	a, b = a.normalised(), b.normalised()
	pa, pb := a.prec, b.prec
	if pa == precMilli {
		pa = precSecond
	}
	if pb == precMilli {
		pb = precSecond
	}
	fa, fb := a.fields(), b.fields()
	n := min(pa, pb)
	for i := first - 1; i < n; i++ {
		if fa[i] != fb[i] {
			if fa[i] < fb[i] {
				return -1, true
			}
			return 1, true
		}
	}
	if pa != pb {
		return 0, false
	}
	if pa == precSecond && fa[6] != fb[6] {
		if fa[6] < fb[6] {
			return -1, true
		}
		return 1, true
	}
	return 0, true
}

// addDuration adds n units of a calendar or UCUM time unit to t, keeping its
// precision; months and years clamp the day to the end of the month.
func addDuration(t temporal, q Quantity, sign int) (temporal, error) {
	unit := calendarUnits[q.Unit]
	if unit == "" {
		switch q.Unit {
		case "d":
			unit = "day"
		case "h":
			unit = "hour"
		case "min":
			unit = "minute"
		case "s":
			unit = "second"
		case "ms":
			unit = "millisecond"
		case "wk":
			unit = "week"
		default:
			return t, fmt.Errorf("fhirpath: cannot add %s to a date or time", q)
		}
	}
	v := q.Value.rat()
	if sign < 0 {
		v = new(big.Rat).Neg(v)
	}
	whole := func() int {
		n := new(big.Int).Quo(v.Num(), v.Denom())
		return int(n.Int64())
	}
	g := t.goTime()
	switch unit {
	case "year", "month":
		n := whole()
		if unit == "year" {
			n *= 12
		}
		y, m := t.year, max(t.month, 1)-1+n
		y += m / 12
		m %= 12
		if m < 0 {
			m += 12
			y--
		}
		u := t
		u.year, u.month = y, m+1
		if t.prec < precMonth {
			u.month = 0
		}
		if t.prec >= precDay {
			u.day = min(t.day, daysIn(y, m+1))
		}
		return u, nil
	case "week":
		g = g.AddDate(0, 0, 7*whole())
	case "day":
		g = g.AddDate(0, 0, whole())
	default:
		ms := map[string]int64{"hour": 3600000, "minute": 60000, "second": 1000, "millisecond": 1}[unit]
		d := new(big.Rat).Mul(v, new(big.Rat).SetInt64(ms))
		n := new(big.Int).Quo(d.Num(), d.Denom())
		g = g.Add(time.Duration(n.Int64()) * time.Millisecond)
	}
	u := t
	u.year, u.month, u.day = g.Year(), int(g.Month()), g.Day()
	u.hour, u.minute, u.second, u.milli = g.Hour(), g.Minute(), g.Second(), g.Nanosecond()/1e6
	if t.prec < precMonth {
		u.month = 0
	}
	if t.prec < precDay {
		u.day = 0
	}
	if t.prec < precHour {
		u.hour = 0
	}
	if t.prec < precMinute {
		u.minute = 0
	}
	if t.prec < precSecond {
		u.second = 0
	}
	if t.prec < precMilli {
		u.milli = 0
	}
	return u, nil
}
