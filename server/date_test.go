package server

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestParseDate(t *testing.T) {
	tests := []struct {
		in        string
		low, high string
	}{
		{"2024", "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"},
		{"2024-02", "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"},
		{"2024-02-29", "2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z"},
		{"2024-02-29T10:30Z", "2024-02-29T10:30:00Z", "2024-02-29T10:31:00Z"},
		{"2024-02-29T10:30:05+01:00", "2024-02-29T09:30:05Z", "2024-02-29T09:30:06Z"},
		{"2024-02-29T10:30:05.25Z", "2024-02-29T10:30:05.25Z", "2024-02-29T10:30:05.26Z"},
		{"2024-02-29T10:30:05", "2024-02-29T10:30:05Z", "2024-02-29T10:30:06Z"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			low, high, err := parseDate(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if low.Format(time.RFC3339Nano) != tt.low || high.Format(time.RFC3339Nano) != tt.high {
				t.Errorf("parseDate = [%s, %s), want [%s, %s)", low.Format(time.RFC3339Nano), high.Format(time.RFC3339Nano), tt.low, tt.high)
			}
		})
	}
	for _, bad := range []string{"", "yesterday", "2023-02-29", "2024-13", "24-01-01", "2024-01-01T25:00:00Z", "2024-01-01T10"} {
		if _, _, err := parseDate(bad); err == nil {
			t.Errorf("parseDate(%q) succeeded", bad)
		}
	}
}

// appendHTTPDate writes what time.Time.AppendFormat writes with
// http.TimeFormat, in UTC, for instants across years, months, weekdays,
// zones and the hours, minutes and seconds of a day.
func TestAppendHTTPDate(t *testing.T) {
	zone := time.FixedZone("+0530", 5*3600+1800)
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range 20000 {
		at := time.Unix(rng.Int64N(253402300799), rng.Int64N(1e9)) // to the end of 9999
		if i%2 == 1 {
			at = at.In(zone)
		}
		want := at.UTC().Format(http.TimeFormat)
		if got := string(appendHTTPDate(nil, at)); got != want {
			t.Fatalf("%v: %q, want %q", at, got, want)
		}
	}
}

// etag writes the weak ETag of a version, from a table for the first
// versions and by formatting beyond it.
func TestETag(t *testing.T) {
	for v := int64(1); v < 300; v++ {
		if got, want := etag(v), `W/"`+strconv.FormatInt(v, 10)+`"`; got != want {
			t.Fatalf("etag(%d) = %q, want %q", v, got, want)
		}
	}
}
