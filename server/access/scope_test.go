package access

import (
	"strings"
	"testing"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		raw   string
		ok    bool
		ctx   Context
		typ   string
		perms Perm
		query string
	}{
		{"patient/*.read", true, PatientContext, "*", Read | Search, ""},
		{"user/Patient.write", true, UserContext, "Patient", Create | Update | Delete, ""},
		{"system/*.*", true, SystemContext, "*", AllPerms, ""},
		{"system/Appointment.cruds", true, SystemContext, "Appointment", AllPerms, ""},
		{"patient/Observation.rs?category=laboratory", true, PatientContext, "Observation", Read | Search, "category=laboratory"},
		{"user/Patient.cu", true, UserContext, "Patient", Create | Update, ""},
		{"user/Patient.d", true, UserContext, "Patient", Delete, ""},
		{"openid", false, "", "", 0, ""},
		{"fhirUser", false, "", "", 0, ""},
		{"launch/patient", false, "", "", 0, ""},
		{"offline_access", false, "", "", 0, ""},
	}
	for _, tt := range tests {
		s, ok, err := ParseScope(tt.raw)
		if err != nil {
			t.Errorf("ParseScope(%q): %v", tt.raw, err)
			continue
		}
		if ok != tt.ok || s.Context != tt.ctx || s.Type != tt.typ || s.Perms != tt.perms || s.Query.Encode() != tt.query {
			t.Errorf("ParseScope(%q) = %+v, %v; want %s/%s.%s?%s", tt.raw, s, ok, tt.ctx, tt.typ, tt.perms, tt.query)
		}
	}
}

func TestParseScopeRefuses(t *testing.T) {
	for _, raw := range []string{
		"patient/", "user/Patient", "user/Patient.", "user/Patient.sr", "user/Patient.rr",
		"user/Patient.x", "user/patient.read", "system/Pat ient.read", "user/Observation.rs?",
		"user/Observation.rs?%zz",
	} {
		if s, ok, err := ParseScope(raw); err == nil {
			t.Errorf("ParseScope(%q) = %+v, %v, nil; want an error", raw, s, ok)
		}
	}
}

func TestWithin(t *testing.T) {
	for _, tc := range []struct{ requested, allowed, want string }{
		{
			"system/Patient.cruds system/Appointment.rs system/Observation.read system/Task.r",
			"system/Patient.rs system/Appointment.cruds system/Observation.s",
			"system/Patient.rs system/Appointment.rs system/Observation.s",
		},
		// A wildcard asked for is granted as the types allowed, and a
		// restriction allowed stays on what is granted.
		{
			"system/*.rs system/Observation.rs?category=vital-signs",
			"system/Patient.r system/Observation.cruds?category=laboratory system/Encounter.s system/Encounter.r",
			"system/Patient.r system/Observation.rs?category=laboratory system/Encounter.rs",
		},
		// A scope granted already (by a wildcard, or asked for twice) is
		// not granted again; one granting less is, as it was asked for.
		{
			"system/*.rs system/Patient.rs system/Patient.r system/Encounter.rs system/Patient.r",
			"system/Patient.rs system/Encounter.s system/Encounter.r",
			"system/Patient.rs system/Encounter.rs system/Patient.r",
		},
	} {
		requested, _, err := ParseScopes(tc.requested)
		if err != nil {
			t.Fatal(err)
		}
		allowed, _, err := ParseScopes(tc.allowed)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range Within(requested, allowed) {
			got = append(got, s.Raw)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("Within(%q, %q) = %q, want %q", tc.requested, tc.allowed, strings.Join(got, " "), tc.want)
		}
	}
}

func FuzzParseScopes(f *testing.F) {
	for _, s := range []string{"patient/*.read openid", "user/Observation.rs?category=laboratory&code=x", "system/*.cruds"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		scopes, _, err := ParseScopes(list)
		if err != nil {
			return
		}
		for _, s := range scopes {
			if s.Perms == 0 || s.Perms&^AllPerms != 0 {
				t.Fatalf("%q: perms %b", s.Raw, s.Perms)
			}
			// A granted scope written in v2 form parses back to itself.
			again, ok, err := ParseScope(formatScope(s))
			if err != nil || !ok || again.Perms != s.Perms || again.Type != s.Type || again.Context != s.Context {
				t.Fatalf("%q: written as %q parses to %+v, %v, %v", s.Raw, formatScope(s), again, ok, err)
			}
		}
	})
}
