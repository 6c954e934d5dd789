package search

import (
	"slices"
	"testing"
)

var testTypes = []string{"Appointment", "CarePlan", "CareTeam", "Condition", "Encounter", "Group", "Observation",
	"Organization", "Patient", "Practitioner", "PractitionerRole", "Questionnaire", "ValueSet"}

func testRegistry(t *testing.T) *Registry {
	t.Helper()
	r, err := Load(testTypes)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRegistry(t *testing.T) {
	r := testRegistry(t)
	tests := []struct {
		name, typ, code string
		wantType        string
		wantExpr        string
	}{
		{"string", "Patient", "name", "string", "Patient.name"},
		{"multi-base cut to own terms", "CarePlan", "date", "date", "CarePlan.period"},
		{"multi-base with where", "Patient", "email", "token", "Patient.telecom.where(system='email')"},
		{"common parameter names the type", "Patient", "_tag", "token", "Patient.meta.tag"},
		{"common uri", "Observation", "_profile", "uri", "Observation.meta.profile"},
		{"reference", "Patient", "general-practitioner", "reference", "Patient.generalPractitioner"},
		{"composite", "Observation", "code-value-quantity", "composite", "Observation"},
		{"parenthesised as", "Patient", "death-date", "date", "(Patient.deceased as dateTime)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := r.Param(tt.typ, tt.code)
			if !ok {
				t.Fatalf("%s has no parameter %s", tt.typ, tt.code)
			}
			if p.Type != tt.wantType || p.Expression != tt.wantExpr {
				t.Errorf("got %s %q, want %s %q", p.Type, p.Expression, tt.wantType, tt.wantExpr)
			}
		})
	}
	if p, _ := r.Param("Observation", "code-value-quantity"); len(p.Components) != 2 || p.Components[1].Type != "quantity" {
		t.Errorf("code-value-quantity components = %+v", p.Components)
	}
	if _, ok := r.Param("Patient", "_text"); ok {
		t.Error("_text has no expression but is registered")
	}
	if _, ok := r.Param("Location", "near"); ok {
		t.Error("unserved type registered")
	}
	if !slices.ContainsFunc(r.Skipped, func(s Skipped) bool { return s.ID == "DeviceDefinition-classification" }) {
		t.Error("the R5 definition DeviceDefinition-classification is not listed as skipped")
	}
	if got := r.CompartmentParams("Observation"); !slices.Equal(got, []string{"subject", "performer"}) {
		t.Errorf("Observation compartment = %v", got)
	}
	if got := r.CompartmentParams("Organization"); got != nil {
		t.Errorf("Organization compartment = %v, want none", got)
	}
	if n := len(r.Params("Patient")); n < 25 {
		t.Errorf("Patient has %d parameters, want the 24 R4 ones plus the common ones", n)
	}
}

// Every official expression of every served type compiles with the stub,
// or is one the stub is known not to handle.
func TestRegistryAllTypes(t *testing.T) {
	r, err := Load([]string{"Patient", "Observation", "Task", "Subscription", "StructureDefinition"})
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range r.Types() {
		for _, p := range r.Params(typ) {
			if p.Expression == "" || p.Code == "" {
				t.Errorf("%s: %+v has no expression", typ, p)
			}
		}
	}
}

// TestDefine: a host's SearchParameter is served on its base; one that
// could not be served as it says is refused, and changes nothing.
func TestDefine(t *testing.T) {
	r := testRegistry(t)
	ok := `{"resourceType":"SearchParameter","url":"https://example.org/SearchParameter/team","code":"team","base":["Appointment"],"type":"reference","expression":"Appointment.extension('https://example.org/team').value","target":["CareTeam"]}`
	if err := r.Define([]byte(ok)); err != nil {
		t.Fatal(err)
	}
	if p, found := r.Param("Appointment", "team"); !found || p.Type != "reference" || !slices.Equal(p.Targets, []string{"CareTeam"}) {
		t.Errorf("Appointment team: %+v, %v", p, found)
	}
	for name, raw := range map[string]string{
		"not a SearchParameter": `{"resourceType":"StructureDefinition","url":"u","code":"x","base":["Appointment"],"type":"token","expression":"Appointment.status"}`,
		"no expression":         `{"resourceType":"SearchParameter","url":"u","code":"x","base":["Appointment"],"type":"token"}`,
		"base not served":       `{"resourceType":"SearchParameter","url":"u","code":"x","base":["Basic"],"type":"token","expression":"Basic.code"}`,
		"no base":               `{"resourceType":"SearchParameter","url":"u","code":"x","type":"token","expression":"Appointment.status"}`,
		"code taken":            `{"resourceType":"SearchParameter","url":"u","code":"status","base":["Appointment"],"type":"token","expression":"Appointment.status"}`,
		"composite":             `{"resourceType":"SearchParameter","url":"u","code":"x","base":["Appointment"],"type":"composite","expression":"Appointment"}`,
		"special":               `{"resourceType":"SearchParameter","url":"u","code":"x","base":["Appointment"],"type":"special","expression":"Appointment"}`,
		"not JSON":              `{`,
	} {
		if err := r.Define([]byte(raw)); err == nil {
			t.Errorf("%s: defined", name)
		}
		if p, _ := r.Param("Appointment", "status"); p.URL == "u" {
			t.Errorf("%s: replaced Appointment status", name)
		}
		if _, found := r.Param("Appointment", "x"); found {
			t.Errorf("%s: Appointment has a parameter x", name)
		}
	}
}
