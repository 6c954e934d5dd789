package mappers

import (
	"strings"
	"testing"

	"carefhir/fhir"
)

func TestTransaction(t *testing.T) {
	tx := NewTransaction()
	p1 := &fhir.Patient{Gender: fhir.NewCode("female")}
	url := tx.Put(p1, NHSNumberSystem, "9990000018")
	org := tx.Ensure(Practice("Y12345", "High Street"), ODSSystem, "Y12345")
	// The same practice again keeps the first; the same patient again
	// replaces the first.
	if again := tx.Ensure(Practice("Y12345", "Other name"), ODSSystem, "Y12345"); again != org {
		t.Errorf("a second Ensure of the same key gave another entry")
	}
	p2 := &fhir.Patient{Gender: fhir.NewCode("male")}
	if again := tx.Put(p2, NHSNumberSystem, "9990000018"); again != url {
		t.Errorf("a second Put of the same key gave another entry")
	}
	b := tx.Bundle()
	if b.Type.Get() != "transaction" || len(b.Entry) != 2 || tx.Len() != 2 {
		t.Fatalf("%s Bundle with %d entries, want a transaction of 2", b.Type.Get(), len(b.Entry))
	}
	pe, oe := b.Entry[0], b.Entry[1]
	if pe.Resource != p2 || oe.Resource.(*fhir.Organization).Name.Get() != "High Street" {
		t.Errorf("Put did not replace, or Ensure did not keep, the first resource")
	}
	if got := pe.Request.Method.Get() + " " + pe.Request.Url.Get(); got != "PUT Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018" {
		t.Errorf("patient request = %s", got)
	}
	if got := oe.Request.Method.Get() + " " + oe.Request.Url.Get() + " " + oe.Request.IfNoneExist.Get(); got != "POST Organization identifier=https://fhir.nhs.uk/Id/ods-organization-code|Y12345" {
		t.Errorf("practice request = %s", got)
	}
	if !strings.HasPrefix(url, "urn:uuid:") || url != StableID("Patient?"+NHSNumberSystem+"|9990000018") {
		t.Errorf("full URL %s is not the stable urn:uuid of the key", url)
	}
	if !tx.Has("Organization", ODSSystem, "Y12345") || tx.Has("Organization", ODSSystem, "Y99999") {
		t.Errorf("Has is wrong")
	}
}

func TestIdentifierQueryEscapes(t *testing.T) {
	tx := NewTransaction()
	tx.Put(&fhir.Observation{}, "urn:x", "a&b c#d+e%f")
	if got := tx.Bundle().Entry[0].Request.Url.Get(); got != "Observation?identifier=urn:x|a%26b%20c%23d%2Be%25f" {
		t.Errorf("url = %s", got)
	}
	// What a token search reads is escaped as FHIR's search escapes it
	// (a\,b\|c\$d\\e), and the backslashes then for the URL.
	tx.Ensure(&fhir.Organization{}, "urn:y", `a,b|c$d\e`)
	if got := tx.Bundle().Entry[1].Request.IfNoneExist.Get(); got != `identifier=urn:y|a%5C,b%5C|c%5C$d%5C%5Ce` {
		t.Errorf("If-None-Exist = %s", got)
	}
}

func TestStableID(t *testing.T) {
	a, b := StableID("Observation", "9990000018", "http://snomed.info/sct|60621009", "2026-11-03"), StableID("Observation", "9990000018", "http://snomed.info/sct|60621009", "2026-11-04")
	if a == b || a != StableID("Observation", "9990000018", "http://snomed.info/sct|60621009", "2026-11-03") {
		t.Errorf("StableID is not a function of its parts: %s %s", a, b)
	}
}

func TestPractitionerSystem(t *testing.T) {
	for code, want := range map[string]string{"G1234567": GMPSystem, "C1234567": GMCSystem, "1234567": GMCSystem, "G123": "", "": "", "X1234567": ""} {
		if got := PractitionerSystem(code); got != want {
			t.Errorf("PractitionerSystem(%q) = %q, want %q", code, got, want)
		}
	}
}

func TestNHSNumber(t *testing.T) {
	if id := NHSNumber("9990000018", "01"); len(id.Extension) != 1 || id.Extension[0].ValueCodeableConcept.Coding[0].Display.Get() != "Number present and verified" {
		t.Errorf("status 01 not carried")
	}
	if id := NHSNumber("9990000018", "09"); id.Extension != nil {
		t.Errorf("an unknown status is carried")
	}
}
