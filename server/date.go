package server

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// datePattern is FHIR's dateTime lexical form (year, month, day, time with
// optional fraction and zone), each part optional after the year.
var datePattern = regexp.MustCompile(`^(\d{4})(-(\d{2})(-(\d{2})(T(\d{2}):(\d{2})(:(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$`)

// parseDate reads a FHIR date or dateTime as the range [low, high) its
// precision implies: "2025" is the whole year, "2025-01-10" one day,
// "2025-01-10T10:00:00Z" one second. A time without a zone is read as UTC.
// A dateTime holds no space: one is the "+" of a zone (+01:00) a client
// left unencoded in a query string, as search reads it.
func parseDate(s string) (low, high time.Time, err error) {
	s = strings.ReplaceAll(s, " ", "+")
	m := datePattern.FindStringSubmatch(s)
	if m == nil {
		return low, high, fmt.Errorf("%q is not a FHIR date or dateTime", truncate(s, 40))
	}
	layouts := []struct {
		group  int
		layout string
		step   func(time.Time) time.Time
	}{
		{11, "2006-01-02T15:04:05.999999999Z07:00", func(t time.Time) time.Time { return t.Add(fractionStep(m[11])) }},
		{10, "2006-01-02T15:04:05Z07:00", func(t time.Time) time.Time { return t.Add(time.Second) }},
		{8, "2006-01-02T15:04Z07:00", func(t time.Time) time.Time { return t.Add(time.Minute) }},
		{5, "2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
		{3, "2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{1, "2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
	}
	value := s
	if m[7] != "" && m[12] == "" {
		value += "Z"
	}
	for _, l := range layouts {
		if m[l.group] == "" {
			continue
		}
		t, err := time.Parse(l.layout, value)
		if err != nil {
			return low, high, fmt.Errorf("%q is not a valid date: %v", truncate(s, 40), err)
		}
		return t.UTC(), l.step(t).UTC(), nil
	}
	return low, high, fmt.Errorf("%q is not a FHIR date or dateTime", truncate(s, 40))
}

// fractionStep is the precision of a seconds fraction such as ".250": one
// unit of its last digit.
func fractionStep(fraction string) time.Duration {
	step := time.Second
	for range len(fraction) - 1 {
		step /= 10
	}
	return step
}
