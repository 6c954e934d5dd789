package mappers

import (
	"regexp"
	"strings"
	"unicode"

	"carefhir/fhir"
	"carefhir/profiles"
)

// UK Core profiles the importers declare in meta.profile.
const (
	UKCorePatient      = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"
	UKCoreOrganization = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Organization"
	UKCorePractitioner = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Practitioner"
	UKCoreObservation  = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Observation"
	UKCoreCondition    = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Condition"
	UKCoreFlag         = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Flag"
)

// SNOMEDSystem is the code system of SNOMED CT.
const SNOMEDSystem = "http://snomed.info/sct"

// verificationDisplays are the displays of the NHS number verification
// status codes of England
// (https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland).
var verificationDisplays = map[string]string{
	"01": "Number present and verified",
	"02": "Number present but not traced",
	"03": "Trace required",
	"04": "Trace attempted - No match or multiple match found",
	"05": "Trace needs to be resolved - (NHS number or patient detail conflict)",
	"06": "Trace in progress",
	"07": "Number not present and trace not required",
	"08": "Trace postponed (baby under six weeks old)",
}

// VerificationStatusKnown reports whether code is one of the England NHS
// number verification status codes, 01 to 08.
func VerificationStatusKnown(code string) bool {
	_, ok := verificationDisplays[code]
	return ok
}

// NormalNHSNumber returns an NHS number as written by a person or a GP
// system (943 476 5919, 943-476-5919, with a non-breaking space from a
// spreadsheet) as its ten digits: spaces and dashes of any kind are
// removed, nothing else. Every importer reads NHS numbers through it, so
// they accept the same written forms; profiles.ValidNHSNumber then
// refuses a wrong length or check digit.
func NormalNHSNumber(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || unicode.Is(unicode.Pd, r) {
			return -1
		}
		return r
	}, s)
}

// NHSNumber returns the identifier of an NHS number, with its
// verification status in the UK Core extension when status is one of the
// England codes (01 to 08); any other status is left out.
func NHSNumber(number, status string) *fhir.Identifier {
	id := &fhir.Identifier{System: fhir.NewUri(NHSNumberSystem), Value: fhir.NewString(number)}
	if d, ok := verificationDisplays[status]; ok {
		id.Extension = []*fhir.Extension{VerificationStatus(status, d)}
	}
	return id
}

// NHSNumberOf returns p's NHS number as its ten digits
// (NormalNHSNumber), "" when it has none.
func NHSNumberOf(p *fhir.Patient) string {
	for _, id := range p.Identifier {
		if id.System.Get() == NHSNumberSystem {
			return NormalNHSNumber(id.Value.Get())
		}
	}
	return ""
}

// VerificationStatus returns the UK Core NHS number verification status
// extension holding an England code.
func VerificationStatus(code, display string) *fhir.Extension {
	c := &fhir.Coding{System: fhir.NewUri(profiles.VerificationStatusSystem), Code: fhir.NewCode(code)}
	if display != "" {
		c.Display = fhir.NewString(display)
	}
	return &fhir.Extension{Url: profiles.VerificationStatusURL, ValueCodeableConcept: &fhir.CodeableConcept{Coding: []*fhir.Coding{c}}}
}

// Meta returns a Meta declaring profile.
func Meta(profile string) *fhir.Meta {
	return &fhir.Meta{Profile: []*fhir.Canonical{fhir.NewCanonical(profile)}}
}

// Practice returns the Organization of a GP practice known by its ODS
// code, with its name when known.
func Practice(ods, name string) *fhir.Organization {
	o := &fhir.Organization{
		Meta:       Meta(UKCoreOrganization),
		Identifier: []*fhir.Identifier{{System: fhir.NewUri(ODSSystem), Value: fhir.NewString(ods)}},
	}
	if name != "" {
		o.Name = fhir.NewString(name)
	}
	return o
}

// Practitioner returns a Practitioner known by an identifier (a GMP or
// GMC number), with the name when known.
func Practitioner(system, value string, name *fhir.HumanName) *fhir.Practitioner {
	p := &fhir.Practitioner{
		Meta:       Meta(UKCorePractitioner),
		Identifier: []*fhir.Identifier{{System: fhir.NewUri(system), Value: fhir.NewString(value)}},
	}
	if name != nil {
		p.Name = []*fhir.HumanName{name}
	}
	return p
}

// Strings returns the non-empty values of ss as FHIR strings.
func Strings(ss ...string) []*fhir.String {
	var out []*fhir.String
	for _, s := range ss {
		if s != "" {
			out = append(out, fhir.NewString(s))
		}
	}
	return out
}

// String returns s as a FHIR string, or nil when it is empty.
func String(s string) *fhir.String {
	if s == "" {
		return nil
	}
	return fhir.NewString(s)
}

var (
	odsCode = regexp.MustCompile(`^[A-Z0-9]{3,10}$`)
	gmpCode = regexp.MustCompile(`^G[0-9]{7}$`)
	gmcCode = regexp.MustCompile(`^C?[0-9]{7}$`)
)

// ODSCode reports whether s has the shape of an ODS organisation code:
// 3 to 10 upper-case letters and digits.
func ODSCode(s string) bool { return odsCode.MatchString(s) }

// PractitionerSystem returns the identifier system of a GP's code as GP
// systems write it: a national GP (GMP) code, G and 7 digits, or a GMC
// number, 7 digits with an optional C; "" for anything else.
func PractitionerSystem(code string) string {
	switch {
	case gmpCode.MatchString(code):
		return GMPSystem
	case gmcCode.MatchString(code):
		return GMCSystem
	}
	return ""
}

// NotText reports the characters FHIR strings cannot hold: the C0
// controls but tab, line feed and carriage return, DEL, and the
// noncharacters U+FFFE and U+FFFF, which XML cannot carry (the store
// refuses them, since a resource holding one could not be served as XML).
func NotText(r rune) bool {
	return r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0x7f || r == 0xfffe || r == 0xffff
}

// StableIdentifier returns the identifier of a record the source names
// only by its content (StableID of parts), and its value.
func StableIdentifier(parts ...string) (*fhir.Identifier, string) {
	id := StableID(parts...)
	return &fhir.Identifier{System: fhir.NewUri(URISystem), Value: fhir.NewString(id)}, id
}
