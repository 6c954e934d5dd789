package profiles

import (
	"regexp"
	"strconv"
	"strings"
)

// NHS England identifier systems and the rules their values follow.
const (
	// NHSNumberSystem is the identifier system of NHS numbers.
	NHSNumberSystem = "https://fhir.nhs.uk/Id/nhs-number"
	// VerificationStatusURL is the UK Core NHS number verification status extension.
	VerificationStatusURL = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
	// VerificationStatusSystem is the England code system of that extension.
	VerificationStatusSystem = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
	// RetiredVerificationStatusSystem is the code system UK Core used before
	// the England and Wales split; PDS still sends it.
	RetiredVerificationStatusSystem = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatus"
	// RetiredLanguageSystem is the code system of human languages UK Core
	// used before it bound Patient.communication.language to BCP 47
	// (all-languages); PDS still sends it.
	RetiredLanguageSystem = "https://fhir.hl7.org.uk/CodeSystem/UKCore-HumanLanguage"
	// CareConnectLanguageSystem is the STU3 Care Connect code system of
	// human languages, which GP Connect sends.
	CareConnectLanguageSystem = "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-HumanLanguage-1"
)

// languageSystem is BCP 47, the code system of the all-languages ValueSet.
const (
	languageSystem = "urn:ietf:bcp:47"
	allLanguagesVS = "http://hl7.org/fhir/ValueSet/all-languages"
)

// identifierFormats gives the value format of the professional and
// organisation identifier systems. GMC and GMP numbers are accepted with
// seven or eight digits, as the UK Core examples write them.
var identifierFormats = map[string]struct {
	re   *regexp.Regexp
	what string
}{
	"https://fhir.nhs.uk/Id/ods-organization-code": {regexp.MustCompile(`^[A-Z0-9]{3,10}$`), "an ODS organisation code (3 to 10 upper-case letters and digits)"},
	"https://fhir.nhs.uk/Id/ods-site-code":         {regexp.MustCompile(`^[A-Z0-9]{3,10}$`), "an ODS site code (3 to 10 upper-case letters and digits)"},
	"https://fhir.hl7.org.uk/Id/gmc-number":        {regexp.MustCompile(`^C?[0-9]{7,8}$`), "a GMC number (7 digits, optionally prefixed C)"},
	"https://fhir.hl7.org.uk/Id/gmp-number":        {regexp.MustCompile(`^G[0-9]{7,8}$`), "a GMP number (G and 7 digits)"},
	"https://fhir.hl7.org.uk/Id/nmc-number":        {regexp.MustCompile(`^[0-9]{2}[A-Z][0-9]{4}[A-Z]$`), "an NMC PIN (2 digits, a letter, 4 digits, a letter)"},
	"https://fhir.hl7.org.uk/Id/hcpc-number":       {regexp.MustCompile(`^[A-Z]{2}[0-9]{5,6}$`), "an HCPC registration number (2 letters and 5 or 6 digits)"},
}

// ValidNHSNumber reports whether s is ten digits whose last is the
// Modulus 11 check digit of the first nine
// (https://www.datadictionary.nhs.uk/attributes/nhs_number.html), and
// not one digit ten times: 0000000000, 1111111111 … 9999999999 all pass
// the check but are never issued, and a GP system writes some of them for
// an unknown number. It is the one check of an NHS number: validation and
// every importer call it.
func ValidNHSNumber(s string) bool {
	if len(s) != 10 || s == strings.Repeat(s[:1], 10) {
		return false
	}
	for i := range 10 {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	check, ok := NHSCheckDigit(s[:9])
	return ok && check == s[9]
}

// NHSCheckDigit returns the Modulus 11 check digit, as a character, of the
// nine digits of stem (weights 10 down to 2, the remainder taken from 11,
// 11 being 0), and false when there is none (10): such a stem is never
// issued. Generators of test numbers use it; ValidNHSNumber checks a
// number.
func NHSCheckDigit(stem string) (byte, bool) {
	sum := 0
	for i := range 9 {
		sum += int(stem[i]-'0') * (10 - i)
	}
	switch check := 11 - sum%11; check {
	case 10:
		return 0, false
	case 11:
		return '0', true
	default:
		return byte('0' + check), true
	}
}

// IdentifierFormat returns what a value of the identifier system must be
// (such as "an ODS organisation code (3 to 10 upper-case letters and
// digits)") when value is not one; "" when it is, or when the system has
// no format known here.
func IdentifierFormat(system, value string) string {
	if f, ok := identifierFormats[system]; ok && !f.re.MatchString(value) {
		return f.what
	}
	return ""
}

// identifier applies the NHS England rules to an Identifier.
func (w *walker) identifier(it item) {
	m, _ := it.val.(map[string]any)
	system, _ := m["system"].(string)
	value, hasValue := m["value"].(string)
	if !hasValue {
		return
	}
	if system == NHSNumberSystem {
		if !ValidNHSNumber(value) {
			w.add("error", "value", it.path+".value", "%q is not a valid NHS number: it must be 10 digits with a correct Modulus 11 check digit", truncate(value))
		}
		return
	}
	if what := IdentifierFormat(system, value); what != "" {
		w.add("error", "value", it.path+".value", "%q is not %s", truncate(value), what)
	}
}

func verificationCode(code string) bool {
	return len(code) == 2 && code[0] == '0' && code[1] >= '1' && code[1] <= '8'
}

// extension checks the NHS number verification status extension: England
// codes 01-08, and the retired code system accepted with a warning.
func (w *walker) extension(it item) {
	m, _ := it.val.(map[string]any)
	if m["url"] != VerificationStatusURL {
		return
	}
	cc, _ := m["valueCodeableConcept"].(map[string]any)
	list, _ := cc["coding"].([]any)
	for i, x := range list {
		c, _ := x.(map[string]any)
		system, _ := c["system"].(string)
		code, _ := c["code"].(string)
		path := it.path + ".value.ofType(CodeableConcept).coding[" + strconv.Itoa(i) + "]"
		switch system {
		case VerificationStatusSystem, RetiredVerificationStatusSystem:
			if !verificationCode(code) {
				w.add("error", "code-invalid", path+".code", "%q is not an NHS number verification status code (01 to 08)", truncate(code))
			} else if system == RetiredVerificationStatusSystem {
				w.add("warning", "code-invalid", path+".system", "the code system %s is retired; use %s", RetiredVerificationStatusSystem, VerificationStatusSystem)
			}
		}
	}
}

// retiredCoding reports codes of the retired verification status system,
// which a required binding to the England ValueSet accepts: the extension
// check reports them with a warning instead.
func retiredCoding(system, code string) bool {
	return system == RetiredVerificationStatusSystem && verificationCode(code)
}

// retiredLanguage reports a code of one of the NHS language systems that
// came before BCP 47 where the binding is to all-languages, which the
// binding accepts: the binding check reports it with a warning instead.
func retiredLanguage(valueSet, system string) bool {
	return (system == RetiredLanguageSystem || system == CareConnectLanguageSystem) && canonical(valueSet) == allLanguagesVS
}
