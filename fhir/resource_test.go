package fhir_test

import (
	"slices"
	"strings"
	"testing"

	"carefhir/fhir"
)

// issueTypes are the resource types issue 2 names explicitly.
var issueTypes = []string{
	"Patient", "Practitioner", "PractitionerRole", "Organization", "RelatedPerson", "Location", "CarePlan",
	"CareTeam", "Goal", "Appointment", "Slot", "Schedule", "Questionnaire", "QuestionnaireResponse",
	"Observation", "Condition", "AllergyIntolerance", "MedicationStatement", "Medication", "Encounter",
	"EpisodeOfCare", "ServiceRequest", "Task", "Communication", "DocumentReference", "Consent", "Flag", "Group",
	"Provenance", "AuditEvent", "Bundle", "OperationOutcome", "CapabilityStatement", "Parameters", "Binary",
	"Subscription", "ValueSet", "CodeSystem", "StructureDefinition", "SearchParameter",
}

func TestResourceTypes(t *testing.T) {
	types := fhir.ResourceTypes()
	if len(types) != 146 {
		t.Errorf("len(ResourceTypes()) = %d, want the 146 R4 resource types", len(types))
	}
	if !slices.IsSorted(types) {
		t.Error("ResourceTypes() is not sorted")
	}
	for _, name := range issueTypes {
		if !fhir.IsResourceType(name) {
			t.Errorf("IsResourceType(%q) = false", name)
		}
	}
	for _, name := range []string{"", "Resource", "DomainResource", "SubscriptionStatus", "patient", "HumanName"} {
		if fhir.IsResourceType(name) {
			t.Errorf("IsResourceType(%q) = true", name)
		}
		if _, ok := fhir.NewResource(name); ok {
			t.Errorf("NewResource(%q) succeeded", name)
		}
	}
	for _, name := range types {
		r, ok := fhir.NewResource(name)
		if !ok || r.ResourceType() != name {
			t.Errorf("NewResource(%q) = %v, %v", name, r, ok)
		}
	}
	types[0] = "changed"
	if fhir.ResourceTypes()[0] == "changed" {
		t.Error("ResourceTypes returns the package's own slice")
	}
}

func TestElementSets(t *testing.T) {
	tests := []struct {
		name           string
		got            []string
		contains       []string
		doesNotContain []string
	}{
		{"Patient summary", fhir.SummaryElements("Patient"),
			[]string{"id", "meta", "implicitRules", "identifier", "name", "birthDate", "deceasedBoolean", "deceasedDateTime", "link"},
			[]string{"text", "contained", "extension", "photo", "contact", "resourceType"}},
		{"Observation mandatory", fhir.MandatoryElements("Observation"), []string{"code", "status"}, []string{"id", "subject"}},
		{"Bundle mandatory", fhir.MandatoryElements("Bundle"), []string{"type"}, []string{"entry"}},
		{"Patient elements", fhir.ElementNames("Patient"),
			[]string{"id", "meta", "text", "contained", "extension", "modifierExtension", "multipleBirthInteger", "generalPractitioner"},
			[]string{"resourceType", "multipleBirth", "multipleBirth[x]", "_birthDate"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !slices.IsSorted(tc.got) {
				t.Errorf("%q is not sorted", tc.got)
			}
			for _, name := range tc.contains {
				if !slices.Contains(tc.got, name) {
					t.Errorf("%q lacks %q", tc.got, name)
				}
			}
			for _, name := range tc.doesNotContain {
				if slices.Contains(tc.got, name) {
					t.Errorf("%q contains %q", tc.got, name)
				}
			}
		})
	}
	if got := fhir.MandatoryElements("Observation"); !slices.Equal(got, []string{"code", "status"}) {
		t.Errorf("MandatoryElements(Observation) = %q, want [code status]", got)
	}
	if got := fhir.SummaryElements("NoSuchType"); got != nil {
		t.Errorf("SummaryElements(NoSuchType) = %q, want nil", got)
	}
	for _, rt := range fhir.ResourceTypes() {
		all := fhir.ElementNames(rt)
		for _, name := range slices.Concat(fhir.SummaryElements(rt), fhir.MandatoryElements(rt)) {
			base, choice := strings.CutSuffix(name, "[x]")
			if !choice && !slices.Contains(all, name) {
				t.Errorf("%s: %q is not among ElementNames", rt, name)
			}
			if choice && !slices.ContainsFunc(all, func(n string) bool { return strings.HasPrefix(n, base) && n != base }) {
				t.Errorf("%s: choice %q has no form among ElementNames", rt, name)
			}
		}
	}
	if got := fhir.MandatoryElements("MedicationStatement"); !slices.Equal(got, []string{"medication[x]", "status", "subject"}) {
		t.Errorf("MandatoryElements(MedicationStatement) = %q, want [medication[x] status subject]", got)
	}
	for _, rt := range fhir.ResourceTypes() {
		all := fhir.ElementNames(rt)
		if !slices.Contains(all, "id") || !slices.Contains(all, "meta") {
			t.Errorf("%s: ElementNames lacks id or meta", rt)
		}
	}
}

func TestIDAndMeta(t *testing.T) {
	var p fhir.Patient
	if p.GetID() != "" || p.GetMeta() != nil {
		t.Fatal("empty Patient has an id or meta")
	}
	p.SetID("a")
	p.Id.Extension = []*fhir.Extension{{Url: "http://x"}}
	p.SetID("b")
	if p.GetID() != "b" || len(p.Id.Extension) != 1 {
		t.Errorf("SetID changed id to %q with %d extensions, want b keeping 1", p.GetID(), len(p.Id.Extension))
	}
	p.SetID("")
	if p.Id != nil {
		t.Error(`SetID("") kept the id`)
	}
	m := &fhir.Meta{VersionId: fhir.NewId("1")}
	var r fhir.Resource = &p
	r.SetMeta(m)
	if r.GetMeta() != m {
		t.Error("GetMeta does not return what SetMeta set")
	}
	var nilPatient *fhir.Patient
	if nilPatient.GetID() != "" || nilPatient.GetMeta() != nil {
		t.Error("GetID/GetMeta on a nil *Patient are not safe")
	}
}

func TestPrimitiveGet(t *testing.T) {
	var s *fhir.String
	var b *fhir.Boolean
	var n *fhir.Integer
	if s.Get() != "" || b.Get() || n.Get() != 0 {
		t.Error("Get on nil primitives does not return the zero value")
	}
	if (&fhir.Date{Id: new(string)}).Get() != "" {
		t.Error("Get on a valueless primitive does not return the zero value")
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"string", fhir.NewString("x").Get(), "x"},
		{"boolean", fhir.NewBoolean(true).Get(), true},
		{"integer", fhir.NewInteger(-3).Get(), int64(-3)},
		{"positiveInt", fhir.NewPositiveInt(3).Get(), int64(3)},
		{"unsignedInt", fhir.NewUnsignedInt(0).Get(), int64(0)},
		{"decimal", fhir.NewDecimal("72.50").Get(), "72.50"},
		{"instant", fhir.NewInstant("2020-01-01T00:00:00Z").Get(), "2020-01-01T00:00:00Z"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: Get() = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}
