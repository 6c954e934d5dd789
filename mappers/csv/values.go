package csv

import (
	"regexp"
	"strings"
	"time"
)

// goDateLayouts are the Go layouts of the date formats a mapping names.
// Days and months parse with or without a leading zero.
var goDateLayouts = map[string]string{
	"dd-MMM-yyyy": "2-Jan-2006",
	"dd/MM/yyyy":  "2/1/2006",
	"yyyy-MM-dd":  "2006-1-2",
	"dd MMM yyyy": "2 Jan 2006",
	"yyyyMMdd":    "20060102",
}

// writeDateLayouts are the Go layouts dates are written in: days and
// months with their leading zero.
var writeDateLayouts = map[string]string{
	"dd-MMM-yyyy": "02-Jan-2006",
	"dd/MM/yyyy":  "02/01/2006",
	"yyyy-MM-dd":  "2006-01-02",
	"dd MMM yyyy": "02 Jan 2006",
	"yyyyMMdd":    "20060102",
}

// septMonth is September as British English abbreviates it, Sept:
// Unicode's en-GB locale data writes it so (CLDR 38 on; Java 17 and ICU
// follow, and so do the reports of systems built on them), where Go's
// layouts read only the three letters of Sep.
var septMonth = regexp.MustCompile(`(?i)\bsept\b`)

// parseDate reads s in the first of formats that fits, and returns it as
// a FHIR date. A time after the date (EMIS and SystmOne add 00:00:00 to
// some dates) is dropped.
func parseDate(s string, formats []string) (string, bool) {
	s = strings.TrimSpace(s)
	// An ISO time starts with T and a digit; the T of a month written in
	// capitals (12-OCT-1948) is not one.
	if i := strings.IndexByte(s, 'T'); i > 0 && i+1 < len(s) && '0' <= s[i+1] && s[i+1] <= '9' {
		s = s[:i]
	}
	if f := strings.Fields(s); len(f) > 1 && strings.Contains(f[len(f)-1], ":") {
		s = strings.Join(f[:len(f)-1], " ")
	}
	s = septMonth.ReplaceAllString(s, "Sep")
	for _, f := range formats {
		// FHIR dates have no year 0.
		if t, err := time.Parse(goDateLayouts[f], s); err == nil && t.Year() > 0 {
			return t.Format("2006-01-02"), true
		}
	}
	return "", false
}

// sexes maps what GP systems write for sex to FHIR's administrative
// gender: letters and words, and the NHS Data Dictionary person stated
// gender codes 0, 1, 2 and 9.
var sexes = map[string]string{
	"m": "male", "male": "male", "1": "male",
	"f": "female", "female": "female", "2": "female",
	"i": "other", "indeterminate": "other", "o": "other", "other": "other",
	"u": "unknown", "unknown": "unknown", "0": "unknown", "9": "unknown", "not known": "unknown", "not specified": "unknown",
}

// postcode is the shape of a UK postcode, after upper-casing and
// collapsing spaces.
var postcode = regexp.MustCompile(`^[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}$`)

// normalPostcode upper-cases p and writes it with one space before the
// inward code, as Royal Mail does.
func normalPostcode(p string) (string, bool) {
	p = strings.ToUpper(strings.Join(strings.Fields(p), ""))
	if len(p) < 5 {
		return p, false
	}
	p = p[:len(p)-3] + " " + p[len(p)-3:]
	return p, postcode.MatchString(p)
}

// no reports whether a cell says no.
func no(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "n", "no", "false", "0":
		return true
	}
	return false
}

// decimal is the shape of a FHIR decimal.
var decimal = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?$`)
