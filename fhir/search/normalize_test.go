package search

import (
	"testing"
	"time"
)

func TestNormalizeString(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"lower", "SMITH", "smith"},
		{"diaeresis", "Zoë", "zoe"},
		{"acute upper", "ÉLODIE", "elodie"},
		{"apostrophe kept", "O'Brien", "o'brien"},
		{"curly apostrophe", "O’Brien", "o'brien"},
		{"sharp s", "Straße", "strasse"},
		{"stroke", "Łukasz Øster", "lukasz oster"},
		{"space runs", "  Mary   Ann ", "mary ann"},
		{"welsh circumflex", "Siân Ŵyn", "sian wyn"},
		{"combining mark", "Jose\u0301", "jose"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NormalizeString(tt.in); got != tt.want {
				t.Errorf("NormalizeString(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func TestParseDate(t *testing.T) {
	tests := []struct {
		name, in  string
		low, high string // RFC 3339; "" for invalid
	}{
		{"year", "1970", "1970-01-01T00:00:00Z", "1970-12-31T23:59:59.999Z"},
		{"month", "2024-02", "2024-02-01T00:00:00Z", "2024-02-29T23:59:59.999Z"},
		{"month not leap", "2023-02", "2023-02-01T00:00:00Z", "2023-02-28T23:59:59.999Z"},
		{"day", "2025-01-10", "2025-01-10T00:00:00Z", "2025-01-10T23:59:59.999Z"},
		{"leap day", "2024-02-29", "2024-02-29T00:00:00Z", "2024-02-29T23:59:59.999Z"},
		{"no leap day", "2023-02-29", "", ""},
		{"minutes", "2025-01-10T10:30Z", "2025-01-10T10:30:00Z", "2025-01-10T10:30:59.999Z"},
		{"seconds with zone", "2025-01-10T10:30:15+01:00", "2025-01-10T09:30:15Z", "2025-01-10T09:30:15.999Z"},
		{"negative zone crosses day", "2025-01-10T23:30:00-02:00", "2025-01-11T01:30:00Z", "2025-01-11T01:30:00.999Z"},
		{"milliseconds", "2025-01-10T10:30:15.123Z", "2025-01-10T10:30:15.123Z", "2025-01-10T10:30:15.123Z"},
		{"tenths", "2025-01-10T10:30:15.1Z", "2025-01-10T10:30:15.1Z", "2025-01-10T10:30:15.199Z"},
		{"microseconds kept to ms", "2025-01-10T10:30:15.123456Z", "2025-01-10T10:30:15.123Z", "2025-01-10T10:30:15.123Z"},
		{"no zone is UTC", "2025-01-10T10:30:15", "2025-01-10T10:30:15Z", "2025-01-10T10:30:15.999Z"},
		{"month 13", "2025-13", "", ""},
		{"hour 24", "2025-01-10T24:00Z", "", ""},
		{"bad zone", "2025-01-10T10:00+1", "", ""},
		{"words", "yesterday", "", ""},
		{"short", "197", "", ""},
		{"T without time", "2025-01-10T", "", ""},
		{"empty fraction", "2025-01-10T10:30:15.Z", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			low, high, ok := ParseDate(tt.in)
			if tt.low == "" {
				if ok {
					t.Fatalf("ParseDate(%q) = %v, %v; want invalid", tt.in, low, high)
				}
				return
			}
			if !ok || !low.Equal(utc(tt.low)) || !high.Equal(utc(tt.high)) {
				t.Errorf("ParseDate(%q) = %v, %v, %v; want %s, %s", tt.in, low, high, ok, tt.low, tt.high)
			}
		})
	}
}

func TestParseNumber(t *testing.T) {
	tests := []struct {
		name, in         string
		value, low, high float64
		ok               bool
	}{
		{"integer", "100", 100, 99.5, 100.5, true},
		{"decimals", "1.50", 1.5, 1.495, 1.505, true},
		{"negative", "-3", -3, -3.5, -2.5, true},
		// R4's table of number searches: 1e2 is [95, 105); its text: 1.00e2
		// has the three significant figures of 100; its quantity examples:
		// 5.40e-3 is 0.0054 ± 0.000005.
		{"exponent", "1e2", 100, 95, 105, true},
		{"exponent decimals", "1.0e2", 100, 95, 105, true},
		{"exponent more decimals", "1.00e2", 100, 99.5, 100.5, true},
		{"exponent small", "5.40e-3", 0.0054, 0.005395, 0.005405, true},
		{"exponent leading zeros", "0.0540e-1", 0.0054, 0.005395, 0.005405, true},
		{"exponent capital", "1E2", 100, 95, 105, true},
		{"negative exponent", "5e-1", 0.5, 0.495, 0.505, true},
		{"negative value with exponent", "-1.5e1", -15, -15.5, -14.5, true},
		{"not a number", "ten", 0, 0, 0, false},
		{"infinity", "Inf", 0, 0, 0, false},
		{"nan", "NaN", 0, 0, 0, false},
		{"hex", "0x10", 0, 0, 0, false},
		{"empty", "", 0, 0, 0, false},
	}
	const eps = 1e-9
	near := func(a, b float64) bool { return a-b < eps && b-a < eps }
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, lo, hi, ok := ParseNumber(tt.in)
			if ok != tt.ok || ok && (!near(v, tt.value) || !near(lo, tt.low) || !near(hi, tt.high)) {
				t.Errorf("ParseNumber(%q) = %v [%v, %v) %v; want %v [%v, %v) %v", tt.in, v, lo, hi, ok, tt.value, tt.low, tt.high, tt.ok)
			}
		})
	}
}

func TestParseReference(t *testing.T) {
	const base = "https://fhir.example.nhs.uk/fhir"
	tests := []struct {
		name, in string
		want     Reference
	}{
		{"local", "Patient/123", Reference{Type: "Patient", ID: "123"}},
		{"versioned", "Patient/123/_history/2", Reference{Type: "Patient", ID: "123"}},
		{"our base", base + "/Patient/123", Reference{Type: "Patient", ID: "123"}},
		{"our base with slash", base + "/Organization/A81001", Reference{Type: "Organization", ID: "A81001"}},
		{"other server", "https://elsewhere.org/fhir/Patient/123", Reference{URL: "https://elsewhere.org/fhir/Patient/123"}},
		{"urn", "urn:uuid:0b5c5b1c-5f2e-4f11-9c2a-0c7d3a8b0e01", Reference{URL: "urn:uuid:0b5c5b1c-5f2e-4f11-9c2a-0c7d3a8b0e01"}},
		{"canonical", "http://hl7.org/fhir/ValueSet/x|4.0.1", Reference{URL: "http://hl7.org/fhir/ValueSet/x|4.0.1"}},
		{"lower-case type", "patient/123", Reference{URL: "patient/123"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseReference(tt.in, base); got != tt.want {
				t.Errorf("ParseReference(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}
