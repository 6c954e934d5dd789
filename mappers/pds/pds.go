// Package pds maps Patients read from the Personal Demographics Service
// (the PDS FHIR R4 API of NHS England) to UK Core Patients ready to store:
// retired extension URLs and code systems are brought to their UK Core
// form, the registered practice becomes a reference to an Organization
// known by its ODS code, and the sensitive-record label is kept, so that
// Redact can honour it when the record is exported again.
package pds

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/fhir/lexical"
	"carefhir/mappers"
	"carefhir/profiles"
)

// confidentialitySystem is the code system of the security labels PDS
// sets: U unrestricted, R restricted (a sensitive record), V very
// restricted.
const confidentialitySystem = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"

// retiredExtensions maps extension URLs PDS still sends to their current
// UK Core URLs.
var retiredExtensions = map[string]string{
	"https://fhir.nhs.uk/R4/StructureDefinition/Extension-UKCore-ContactRank":                 "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-ContactRank",
	"https://fhir.nhs.uk/R4/StructureDefinition/Extension-UKCore-CopyCorrespondenceIndicator": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-CopyCorrespondenceIndicator",
	"https://fhir.nhs.uk/R4/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus": profiles.VerificationStatusURL,
}

// Import maps a PDS response: a Patient (a retrieve), or a searchset
// Bundle of Patients (a search). An OperationOutcome, the way PDS reports
// an error, is refused with its text, as is anything else.
func Import(data []byte) mappers.Result { return ImportAsked(data, "") }

// ImportAsked maps a PDS response as Import does, given the NHS number
// asked for when it answers a retrieve (GET /Patient/{asked}). PDS
// answers a number superseded in a merge with the record that replaced
// it, of another NHS number, and asks that the person be held once: the
// record held under the number asked for is then written inactive and
// replaced-by the record answered, which replaces it, as an HL7 v2 merge
// leaves them, and keeps what else it holds. asked "" is Import.
func ImportAsked(data []byte, asked string) mappers.Result {
	// A UTF-8 byte order mark, which Windows editors put before a saved
	// response, is no part of the JSON (RFC 8259 §8.1), as the API and
	// the other importers read it.
	data = lexical.TrimBOM(data)
	var head struct {
		ResourceType string          `json:"resourceType"`
		Patches      json.RawMessage `json:"patches"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		// Said in JSON's words: the decoder's names the Go type read into.
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return refused(te.Field, "%s is a JSON %s, not a string", te.Field, te.Value)
		case errors.As(err, &te):
			return refused("$", "not a JSON resource: a JSON %s, not an object", te.Value)
		}
		return refused("$", "not a JSON resource: %v", err)
	}
	if head.ResourceType == "" && head.Patches != nil {
		return refused("patches", "a PDS update request (JSON Patch operations), not a Patient")
	}
	res, err := fhirjson.Unmarshal(data)
	if err != nil {
		var de *fhirjson.DecodeError
		if errors.As(err, &de) && len(de.Issues) > 0 {
			r := mappers.Result{}
			for _, is := range de.Issues {
				// A syntax error (invalid UTF-8, say) is at no element:
				// it is in the payload, located at its root as the
				// importer's other refusals of the whole payload are.
				path := is.Path
				if path == "" {
					path = "$"
				}
				r.Issues = append(r.Issues, mappers.Errorf(path, "%s", is.Message))
			}
			return r
		}
		return refused(head.ResourceType, "not valid FHIR R4 JSON: %v", err)
	}
	tx := mappers.NewTransaction()
	var issues []mappers.Issue
	switch r := res.(type) {
	case *fhir.Patient:
		issues = mapPatient(tx, r, "Patient")
		if asked != "" && !(&mappers.Result{Issues: issues}).Failed() {
			issues = append(issues, supersede(tx, r, asked)...)
		}
	case *fhir.Bundle:
		if asked != "" {
			return refused(AskedParameter, "a search result answers no NHS number asked for: PDS searches leave superseded records out")
		}
		if r.Type.Get() != "searchset" {
			return refused("Bundle.type", "a Bundle of type %q is not a PDS search result (searchset)", r.Type.Get())
		}
		first := map[string]int{} // NHS number → the entry that first had it
		for i, e := range r.Entry {
			path := fmt.Sprintf("Bundle.entry[%d].resource", i)
			p, ok := e.Resource.(*fhir.Patient)
			if !ok {
				if e.Resource != nil {
					issues = append(issues, mappers.Warnf(path, "a %s in a PDS search result is not imported", e.Resource.ResourceType()))
				}
				continue
			}
			if nhs := mappers.NHSNumberOf(p); nhs != "" {
				// Both are written, one after the other, to the one record:
				// the later wins, which the importer is told, as a CSV
				// report's repeated row is.
				if j, seen := first[nhs]; seen {
					issues = append(issues, mappers.Warnf(path, "NHS number %s is in Bundle.entry[%d] too: this entry's record replaces that one's", nhs, j))
				} else {
					first[nhs] = i
				}
			}
			issues = append(issues, mapPatient(tx, p, path)...)
		}
		if tx.Len() == 0 {
			issues = append(issues, mappers.Errorf("Bundle.entry", "the search result holds no Patient"))
		}
	case *fhir.OperationOutcome:
		return refused("OperationOutcome", "the payload is a PDS error, not a patient: %s", outcomeText(r))
	default:
		return refused("resourceType", "a %s is not a PDS Patient or search result", res.ResourceType())
	}
	out := mappers.Result{Issues: issues}
	if !out.Failed() {
		out.Bundle, out.Merges = tx.Bundle(), tx.Merges()
	}
	return out
}

// AskedParameter is where an issue about the NHS number asked for is: the
// $import parameter that gives it.
const AskedParameter = "nhsNumber"

// supersede writes the merge PDS answered when p, the record it returned
// for the NHS number asked, has another NHS number: the record of asked
// is made inactive and replaced-by p, and p replaces it.
func supersede(tx *mappers.Transaction, p *fhir.Patient, asked string) []mappers.Issue {
	number := mappers.NormalNHSNumber(asked)
	if !profiles.ValidNHSNumber(number) {
		return []mappers.Issue{mappers.Errorf(AskedParameter, "%q is not a valid NHS number: it must be 10 digits with a correct Modulus 11 check digit", asked)}
	}
	nhs := mappers.NHSNumberOf(p)
	if number == nhs {
		return nil
	}
	retired := &fhir.Patient{Meta: mappers.Meta(mappers.UKCorePatient), Identifier: []*fhir.Identifier{mappers.NHSNumber(number, "")}, Active: fhir.NewBoolean(false)}
	survivorURL := tx.Put(p, mappers.NHSNumberSystem, nhs)
	retiredURL := tx.PutPart(retired, mappers.NHSNumberSystem, number, func(stored fhir.Resource, ref func(string) string) fhir.Resource {
		s, ok := stored.(*fhir.Patient)
		if !ok {
			return retired
		}
		s.Active = retired.Active
		mappers.AddLinks(s, retired.Link, ref)
		return s
	})
	p.Link = append(p.Link, &fhir.PatientLink{Other: mappers.Ref(retiredURL), Type: fhir.NewCode("replaces")})
	retired.Link = []*fhir.PatientLink{{Other: mappers.Ref(survivorURL), Type: fhir.NewCode("replaced-by")}}
	return []mappers.Issue{{Severity: mappers.Information, Path: AskedParameter,
		Message: fmt.Sprintf("NHS number %s was superseded by %s, whose record PDS answered: the record of %s is made inactive and replaced by it", number, nhs, number)}}
}

func refused(path, format string, args ...any) mappers.Result {
	return mappers.Result{Issues: []mappers.Issue{mappers.Errorf(path, format, args...)}}
}

func outcomeText(oo *fhir.OperationOutcome) string {
	var parts []string
	for _, is := range oo.Issue {
		s := is.Code.Get()
		if is.Details != nil {
			for _, c := range is.Details.Coding {
				s += " " + c.Code.Get()
				if c.Display != nil {
					s += " (" + c.Display.Get() + ")"
				}
			}
		}
		if is.Diagnostics != nil {
			s += ": " + is.Diagnostics.Get()
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// mapPatient normalises p in place and adds its writes to tx.
func mapPatient(tx *mappers.Transaction, p *fhir.Patient, path string) []mappers.Issue {
	m := &mapper{tx: tx}
	nhs := ""
	for i, id := range p.Identifier {
		if id.System.Get() != mappers.NHSNumberSystem {
			continue
		}
		at := fmt.Sprintf("%s.identifier[%d]", path, i)
		nhs = mappers.NormalNHSNumber(id.Value.Get())
		if !profiles.ValidNHSNumber(nhs) {
			m.errorf(at+".value", "%q is not a valid NHS number: it must be 10 digits with a correct Modulus 11 check digit", id.Value.Get())
		}
		if id.Value != nil && id.Value.Value != nil {
			id.Value.Value = &nhs // stored and matched as its ten digits
		}
		m.verificationStatus(id, at)
		break
	}
	if nhs == "" {
		m.errorf(path+".identifier", "the Patient has no NHS number: records are matched on it")
		return m.issues
	}
	// The id and version are PDS's own; the store assigns its own.
	p.Id = nil
	if p.Meta != nil {
		p.Meta.VersionId = nil
		p.Meta.LastUpdated = nil
		p.Meta.Source = nil
		p.Meta.Profile = nil
	} else {
		p.Meta = &fhir.Meta{}
	}
	p.Meta.Profile = []*fhir.Canonical{fhir.NewCanonical(mappers.UKCorePatient)}
	p.Extension = m.extensions(p.Extension, path+".extension")
	for i, t := range p.Telecom {
		m.telecom(t, fmt.Sprintf("%s.telecom[%d]", path, i))
	}
	for i, a := range p.Address {
		m.address(a, fmt.Sprintf("%s.address[%d]", path, i))
	}
	for i, c := range p.Contact {
		c.Extension = m.extensions(c.Extension, fmt.Sprintf("%s.contact[%d].extension", path, i))
		for j, t := range c.Telecom {
			m.telecom(t, fmt.Sprintf("%s.contact[%d].telecom[%d]", path, i, j))
		}
		if c.Address != nil {
			m.address(c.Address, fmt.Sprintf("%s.contact[%d].address", path, i))
		}
	}
	for i, ref := range p.GeneralPractitioner {
		p.GeneralPractitioner[i] = m.organization(ref, fmt.Sprintf("%s.generalPractitioner[%d]", path, i))
	}
	if p.ManagingOrganization != nil {
		p.ManagingOrganization = m.organization(p.ManagingOrganization, path+".managingOrganization")
	}
	if !m.failed() {
		tx.Put(p, mappers.NHSNumberSystem, nhs)
	}
	return m.issues
}

type mapper struct {
	tx     *mappers.Transaction
	issues []mappers.Issue
}

func (m *mapper) errorf(path, format string, args ...any) {
	m.issues = append(m.issues, mappers.Errorf(path, format, args...))
}

func (m *mapper) infof(path, format string, args ...any) {
	m.issues = append(m.issues, mappers.Issue{Severity: mappers.Information, Path: path, Message: fmt.Sprintf(format, args...)})
}

func (m *mapper) failed() bool {
	r := mappers.Result{Issues: m.issues}
	return r.Failed()
}

// verificationStatus brings the NHS number verification status to the
// England code system UK Core binds: PDS sends the retired UK-wide system
// (with the same codes) and a version of it.
func (m *mapper) verificationStatus(id *fhir.Identifier, at string) {
	id.Extension = m.extensions(id.Extension, at+".extension")
	for i, ext := range id.Extension {
		if ext.Url != profiles.VerificationStatusURL || ext.ValueCodeableConcept == nil {
			continue
		}
		for j, c := range ext.ValueCodeableConcept.Coding {
			if c.System.Get() == profiles.RetiredVerificationStatusSystem {
				m.infof(fmt.Sprintf("%s.extension[%d].valueCodeableConcept.coding[%d].system", at, i, j), "the retired code system %s is replaced by %s", profiles.RetiredVerificationStatusSystem, profiles.VerificationStatusSystem)
				c.System = fhir.NewUri(profiles.VerificationStatusSystem)
				c.Version = nil
			}
		}
	}
}

// extensions renames retired extension URLs, at any depth.
func (m *mapper) extensions(exts []*fhir.Extension, at string) []*fhir.Extension {
	for i, e := range exts {
		if cur, ok := retiredExtensions[e.Url]; ok {
			m.infof(fmt.Sprintf("%s[%d].url", at, i), "the retired extension URL %s is replaced by %s", e.Url, cur)
			e.Url = cur
		}
		e.Extension = m.extensions(e.Extension, fmt.Sprintf("%s[%d].extension", at, i))
	}
	return exts
}

// otherContactSystem is the UK Core extension naming the kind of an
// "other" contact point (a textphone, say).
const otherContactSystem = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-OtherContactSystem"

// telecom moves the other-contact-system extension from the ContactPoint,
// where PDS puts it, to ContactPoint.system, where UK Core defines it, as
// a CodeableConcept rather than PDS's Coding.
func (m *mapper) telecom(t *fhir.ContactPoint, at string) {
	t.Extension = m.extensions(t.Extension, at+".extension")
	kept := t.Extension[:0]
	for i, e := range t.Extension {
		if e.Url != otherContactSystem {
			kept = append(kept, e)
			continue
		}
		m.infof(fmt.Sprintf("%s.extension[%d]", at, i), "moved to %s.system, where UK Core defines it", at)
		m.conceptValue(e, fmt.Sprintf("%s.extension[%d]", at, i))
		if t.System == nil {
			t.System = &fhir.Code{}
		}
		t.System.Extension = append(t.System.Extension, e)
	}
	t.Extension = kept
	if len(kept) == 0 {
		t.Extension = nil
	}
}

// address makes the type of an address key (a PAF key) a CodeableConcept,
// as UK Core defines it, where PDS sends a Coding.
func (m *mapper) address(a *fhir.Address, at string) {
	for i, e := range a.Extension {
		for j, sub := range e.Extension {
			if sub.Url == "type" {
				m.conceptValue(sub, fmt.Sprintf("%s.extension[%d].extension[%d]", at, i, j))
			}
		}
	}
}

// conceptValue turns a valueCoding into a valueCodeableConcept.
func (m *mapper) conceptValue(e *fhir.Extension, at string) {
	if e.ValueCoding == nil {
		return
	}
	m.infof(at+".valueCoding", "a Coding where UK Core defines a CodeableConcept: wrapped in one")
	e.ValueCodeableConcept = &fhir.CodeableConcept{Coding: []*fhir.Coding{e.ValueCoding}}
	e.ValueCoding = nil
}

// organization turns a reference by ODS code into a reference to an
// Organization entry made (if none exists) from that code.
func (m *mapper) organization(ref *fhir.Reference, at string) *fhir.Reference {
	if ref == nil || ref.Identifier == nil || ref.Identifier.System.Get() != mappers.ODSSystem || ref.Identifier.Value == nil {
		return ref
	}
	ods := ref.Identifier.Value.Get()
	if !mappers.ODSCode(ods) {
		// The practice would be written under it, and refused there, at
		// an entry of a Bundle the sender never saw.
		m.errorf(at+".identifier.value", "%q is not an ODS organisation code (3 to 10 upper-case letters and digits)", ods)
		return ref
	}
	url := m.tx.Ensure(mappers.Practice(ods, ref.Display.Get()), mappers.ODSSystem, ods)
	out := mappers.Ref(url)
	out.Id = ref.Id
	out.Type = fhir.NewUri("Organization")
	out.Identifier = ref.Identifier
	out.Display = ref.Display
	return out
}

// Restricted reports whether p carries the R (restricted) or V (very
// restricted) confidentiality label: a sensitive record, whose location
// must not be disclosed.
func Restricted(p *fhir.Patient) bool { return labelled(p.Meta) }

// labelled reports whether m carries the R or V confidentiality label.
func labelled(m *fhir.Meta) bool {
	if m == nil {
		return false
	}
	return slices.ContainsFunc(m.Security, func(c *fhir.Coding) bool {
		return c != nil && c.System.Get() == confidentialitySystem && (c.Code.Get() == "R" || c.Code.Get() == "V")
	})
}

// Redact removes from a restricted Patient what would say where the person
// is: addresses, telecoms, contacts, and the practice they are registered
// with (PDS itself withholds these from a sensitive record), and with them
// the narrative, which may spell them out, and the contained resources
// (a practice or a contact written inline). It returns p unchanged when p
// is not restricted, and otherwise a copy; p itself is not modified.
func Redact(p *fhir.Patient) *fhir.Patient {
	if !Restricted(p) {
		return p
	}
	c := *p
	setWhereabouts(&c, &fhir.Patient{})
	return &c
}

// RedactJSON is RedactAll for a stored resource of type typ, as JSON: a
// restricted Patient without what Redact withholds, wherever it is (the
// resource itself, one it contains, an entry of a Bundle, a resource of
// Parameters), re-encoded; a resource holding none as it is. A resource
// without the label's code system is not decoded.
func RedactJSON(typ string, body []byte) ([]byte, error) {
	if !bytes.Contains(body, []byte(confidentialitySystem)) {
		return body, nil
	}
	// Read as stored: what an older write let through must not fail an
	// export of a resource holding no Patient at all.
	res, err := fhirjson.UnmarshalStored(body)
	if err != nil {
		return nil, fmt.Errorf("pds: redact: %w", err)
	}
	if res.ResourceType() != typ {
		return nil, fmt.Errorf("pds: redact: a %s stored as a %s", res.ResourceType(), typ)
	}
	out, changed := redactAll(res, false)
	if !changed {
		return body, nil
	}
	if body, err = fhirjson.Marshal(out); err != nil {
		return nil, fmt.Errorf("pds: redact: %w", err)
	}
	return body, nil
}

// RedactAll is Redact for every Patient res is or holds: its contained
// resources, a Bundle's entries (and their outcomes), Parameters'
// resources, at any depth, as R4 lets one resource hold another. A
// restricted Patient nested in another resource says where the person is
// as much as one on its own. A contained Patient, which R4 lets carry no
// label of its own (dom-5), is restricted when the resource containing it
// is. It returns res unchanged when it holds no restricted Patient;
// otherwise res is modified in place, each restricted Patient replaced by
// its redacted copy.
func RedactAll(res fhir.Resource) fhir.Resource {
	out, _ := redactAll(res, false)
	return out
}

// redactAll is RedactAll, reporting whether it redacted anything; a
// Patient is restricted when labelled so or when container is true, the
// resource containing it being restricted.
func redactAll(res fhir.Resource, container bool) (fhir.Resource, bool) {
	changed := false
	nested := func(r *fhir.Resource, container bool) {
		if *r == nil {
			return
		}
		out, c := redactAll(*r, container)
		*r, changed = out, changed || c
	}
	switch r := res.(type) {
	case nil:
		return nil, false
	case *fhir.Patient:
		if container || Restricted(r) {
			c := *r
			setWhereabouts(&c, &fhir.Patient{}) // its contained resources too
			return &c, true
		}
	case *fhir.Bundle:
		for _, e := range r.Entry {
			if e == nil {
				continue
			}
			nested(&e.Resource, false)
			if e.Response != nil {
				nested(&e.Response.Outcome, false)
			}
		}
	case *fhir.Parameters:
		var params func(ps []*fhir.ParametersParameter)
		params = func(ps []*fhir.ParametersParameter) {
			for _, p := range ps {
				if p != nil {
					nested(&p.Resource, false)
					params(p.Part)
				}
			}
		}
		params(r.Parameter)
	}
	// Every DomainResource has contained, a field of the generated types
	// that no interface names.
	if v := reflect.ValueOf(res); v.Kind() == reflect.Pointer && !v.IsNil() && v.Elem().Kind() == reflect.Struct {
		if f := v.Elem().FieldByName("Contained"); f.IsValid() {
			cs, _ := f.Interface().([]fhir.Resource)
			container = container || labelled(res.GetMeta())
			for i := range cs {
				nested(&cs[i], container)
			}
		}
	}
	return res, changed
}

// locating reports whether an extension of a Patient says where the
// person can be found or is looked after, which Redact withholds.
func locating(e *fhir.Extension) bool {
	return e.Url == "http://hl7.org/fhir/StructureDefinition/patient-birthPlace" || strings.HasSuffix(e.Url, "NominatedPharmacy") || strings.HasSuffix(e.Url, "PreferredDispenserOrganization") || strings.HasSuffix(e.Url, "MedicalApplianceSupplier")
}

// KeepWhereabouts gives p, an update of the stored record from a source
// that does not label records (an HL7 v2 message, a CSV row, a GP
// Connect record), the elements Redact withholds as stored holds them,
// when stored is restricted: PDS withholds a sensitive person's address,
// telecoms, contacts and practice from every consumer, and a local system
// that still holds them must not bring them back into the shared record.
// It reports whether p held any of them otherwise, so that the import can
// say what it did not store.
func KeepWhereabouts(p, stored *fhir.Patient) bool {
	if !Restricted(stored) {
		return false
	}
	before, berr := fhirjson.Marshal(whereabouts(p))
	setWhereabouts(p, stored)
	after, aerr := fhirjson.Marshal(whereabouts(p))
	return berr != nil || aerr != nil || !bytes.Equal(before, after)
}

// whereabouts is a Patient holding only what Redact withholds of p.
func whereabouts(p *fhir.Patient) *fhir.Patient {
	w := &fhir.Patient{}
	setWhereabouts(w, p)
	return w
}

// setWhereabouts gives p the elements of from that say where the person
// is, in place of its own: the one list of what Redact withholds and
// KeepWhereabouts keeps. p's other extensions stay; from is not modified.
func setWhereabouts(p, from *fhir.Patient) {
	p.Address, p.Telecom, p.Contact = from.Address, from.Telecom, from.Contact
	p.GeneralPractitioner, p.ManagingOrganization = from.GeneralPractitioner, from.ManagingOrganization
	p.Text, p.Contained = from.Text, from.Contained
	p.Extension = append(slices.DeleteFunc(slices.Clone(p.Extension), locating),
		slices.DeleteFunc(slices.Clone(from.Extension), func(e *fhir.Extension) bool { return !locating(e) })...)
}
