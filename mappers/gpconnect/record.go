package gpconnect

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/google/uuid"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/mappers"
	"carefhir/profiles"
)

// Identifier systems the conditional writes are keyed on.
const (
	nhsNumberSystem = "https://fhir.nhs.uk/Id/nhs-number"
	odsOrgSystem    = "https://fhir.nhs.uk/Id/ods-organization-code"
	odsSiteSystem   = "https://fhir.nhs.uk/Id/ods-site-code"
	sdsUserSystem   = "https://fhir.nhs.uk/Id/sds-user-id"
	gmpSystem       = "https://fhir.hl7.org.uk/Id/gmp-number"
	gmcSystem       = "https://fhir.hl7.org.uk/Id/gmc-number"
)

// fullURLSpace is the namespace of the name-based UUIDs given to entries,
// so the same key always has the same full URL.
var fullURLSpace = uuid.MustParse("8c6c2a0e-35f5-4bd4-9a4e-6b1f0c1d9e47")

// entry is one STU3 resource of the payload on its way to R4.
type entry struct {
	typ  string         // the STU3 type
	src  map[string]any // the STU3 resource
	path string         // its STU3 path
	// container is the resource holding this one in contained, if any;
	// contained resources are lifted to entries of their own.
	container *entry
	contained map[string]*entry // by local id, for "#id" references

	url     string // the conditional write: "Patient?identifier=…" or "Condition/id"
	id      string // the id written, for keys derived from the source
	fullURL string // urn:uuid:…
	same    *entry // an earlier entry with the same key, which stands for this one
	// byIdentifier: the key is the source's own identifier of the item.
	byIdentifier bool
}

// reference lists the types describing people, places and things rather
// than clinical items: the same one listed twice in a payload is one.
var reference = map[string]bool{
	"Patient": true, "Organization": true, "Practitioner": true, "PractitionerRole": true,
	"Location": true, "HealthcareService": true, "Medication": true,
}

// record is one payload being imported.
type record struct {
	entries []*entry
	byRef   map[string]*entry // "Type/id" and full URLs of the payload
	// source names the system the record came from, for ids derived from
	// the source's own ids: the ODS code of the practice and the NHS number.
	source string
	// provider is the provider's FHIR base URL, if known: the namespace of
	// the logical ids the resources keep as identifiers.
	provider string
	// systems are the R4 code systems, which codings' STU3 systems are
	// moved to.
	systems codeSystems
	// sections counts the Lists without an id by their code (see
	// sectionCodes).
	sections map[string]int
	issues   []mappers.Issue
}

func importRecord(bundle map[string]any, provider string, systems codeSystems) mappers.Result {
	rec := &record{byRef: map[string]*entry{}, provider: strings.TrimSuffix(provider, "/"), systems: systems}
	for _, k := range sortedKeys(bundle) {
		switch k {
		case "resourceType", "entry":
		default:
			rec.info("Bundle."+k, "the Bundle's %s describes the provider's answer, not the record: not carried", k)
		}
	}
	list, _ := bundle["entry"].([]any)
	for i, x := range list {
		e, _ := x.(map[string]any)
		path := fmt.Sprintf("Bundle.entry[%d]", i)
		for _, k := range sortedKeys(e) {
			switch k {
			case "resource", "fullUrl":
			default:
				rec.info(path+"."+k, "the entry's %s describes the provider's answer, not the record: not carried", k)
			}
		}
		res, ok := e["resource"].(map[string]any)
		if !ok {
			rec.warn(path, "an entry without a resource: nothing to import")
			continue
		}
		ent := rec.add(res, path+".resource", nil)
		if ent != nil {
			if fu, ok := e["fullUrl"].(string); ok {
				rec.byRef[fu] = ent
			}
		}
	}
	if len(rec.entries) == 0 {
		rec.issues = append(rec.issues, mappers.Errorf("Bundle", "no resource to import"))
		return mappers.Result{Issues: rec.issues}
	}
	rec.source = rec.sourceName()
	rec.sections = rec.sectionCodes()
	rec.assignKeys()
	if failed(rec.issues) {
		return mappers.Result{Issues: rec.issues}
	}
	out := &fhir.Bundle{Type: fhir.NewCode("transaction")}
	for _, ent := range rec.entries {
		if ent.same != nil {
			continue
		}
		r := rec.convert(ent)
		if r == nil {
			continue
		}
		out.Entry = append(out.Entry, &fhir.BundleEntry{
			FullUrl:  fhir.NewUri(ent.fullURL),
			Resource: r,
			Request:  &fhir.BundleEntryRequest{Method: fhir.NewCode("PUT"), Url: fhir.NewUri(ent.url)},
		})
	}
	if failed(rec.issues) {
		return mappers.Result{Issues: rec.issues}
	}
	return mappers.Result{Bundle: out, Issues: rec.issues}
}

func failed(issues []mappers.Issue) bool {
	r := mappers.Result{Issues: issues}
	return r.Failed()
}

// add records res and, lifted out of it, its contained resources.
func (rec *record) add(res map[string]any, path string, container *entry) *entry {
	typ, _ := res["resourceType"].(string)
	if _, ok := mappings[typ]; !ok {
		rec.warn(path, "a %s is not imported: carefhir does not map this GP Connect resource type", typ)
		return nil
	}
	ent := &entry{typ: typ, src: res, path: path, container: container}
	rec.entries = append(rec.entries, ent)
	if id, ok := res["id"].(string); ok && container == nil {
		rec.byRef[typ+"/"+id] = ent
	}
	if list, ok := res["contained"].([]any); ok {
		ent.contained = map[string]*entry{}
		for i, x := range list {
			c, _ := x.(map[string]any)
			if ce := rec.add(c, fmt.Sprintf("%s.contained[%d]", path, i), ent); ce != nil {
				if id, ok := c["id"].(string); ok {
					ent.contained[id] = ce
				}
			}
		}
	}
	return ent
}

func (rec *record) warn(path, format string, args ...any) {
	rec.issues = append(rec.issues, mappers.Warnf(path, format, args...))
}

func (rec *record) info(path, format string, args ...any) {
	rec.issues = append(rec.issues, mappers.Issue{Severity: mappers.Information, Path: path, Message: fmt.Sprintf(format, args...)})
}

func (rec *record) fail(path, format string, args ...any) {
	rec.issues = append(rec.issues, mappers.Errorf(path, format, args...))
}

// sourceName names the source system for ids derived from its own: the
// ODS code of the registered practice (or of the first organisation) and
// the patient's NHS number, so two practices' "Condition/1" never meet.
func (rec *record) sourceName() string {
	var ods, nhs string
	for _, ent := range rec.entries {
		switch ent.typ {
		case "Patient":
			if nhs == "" {
				nhs = mappers.NormalNHSNumber(identifierValue(ent.src, nhsNumberSystem))
			}
			if ref, ok := ent.src["managingOrganization"].(map[string]any); ok {
				if s, ok := ref["reference"].(string); ok {
					if org := rec.byRef[s]; org != nil {
						ods = identifierValue(org.src, odsOrgSystem)
					}
				}
			}
		case "Organization":
			if ods == "" {
				ods = identifierValue(ent.src, odsOrgSystem)
			}
		}
	}
	return ods + "|" + nhs
}

// normalNHSNumbers writes the NHS numbers among res's identifiers as
// their ten digits (mappers.NormalNHSNumber), the form they are keyed and
// stored in.
func normalNHSNumbers(res map[string]any) {
	list, _ := res["identifier"].([]any)
	for _, x := range list {
		id, _ := x.(map[string]any)
		if s, _ := id["system"].(string); s != nhsNumberSystem {
			continue
		}
		if v, ok := id["value"].(string); ok {
			id["value"] = mappers.NormalNHSNumber(v)
		}
	}
}

// identifierValue returns the value of res's first identifier in system.
func identifierValue(res map[string]any, system string) string {
	list, _ := res["identifier"].([]any)
	for _, x := range list {
		id, _ := x.(map[string]any)
		if s, _ := id["system"].(string); s == system {
			v, _ := id["value"].(string)
			return v
		}
	}
	return ""
}

// assignKeys gives every entry its conditional write and full URL; entries
// with the key of an earlier one stand for it (the same practitioner listed
// twice is one Practitioner).
func (rec *record) assignKeys() {
	seen := map[string]*entry{}
	for _, ent := range rec.entries {
		r4 := mappings[ent.typ].r4Type
		switch {
		case ent.typ == "Patient":
			written := identifierValue(ent.src, nhsNumberSystem)
			nhs := mappers.NormalNHSNumber(written)
			if nhs == "" {
				rec.fail(ent.path+".identifier", "the Patient has no NHS number (%s), which the import is keyed on", nhsNumberSystem)
				continue
			}
			if !profiles.ValidNHSNumber(nhs) {
				rec.fail(ent.path+".identifier", "NHS number %q fails its check digit or is not 10 digits", written)
				continue
			}
			normalNHSNumbers(ent.src)
			ent.url = conditional(r4, nhsNumberSystem, nhs)
		case ent.typ == "Organization" && identifierValue(ent.src, odsOrgSystem) != "":
			ent.url = conditional(r4, odsOrgSystem, identifierValue(ent.src, odsOrgSystem))
		case ent.typ == "Location" && identifierValue(ent.src, odsSiteSystem) != "":
			ent.url = conditional(r4, odsSiteSystem, identifierValue(ent.src, odsSiteSystem))
		case ent.typ == "Practitioner" && firstOf(ent.src, sdsUserSystem, gmpSystem, gmcSystem) != "":
			sys := firstOf(ent.src, sdsUserSystem, gmpSystem, gmcSystem)
			ent.url = conditional(r4, sys, identifierValue(ent.src, sys))
		default:
			if sys, val := sourceIdentifier(ent.src); sys != "" && ent.typ != "Practitioner" && ent.typ != "Organization" {
				ent.url = conditional(r4, sys, val)
				ent.byIdentifier = true
				break
			}
			if sys, val := rec.providerIdentifier(ent); sys != "" {
				ent.url = conditional(r4, sys, val)
				break
			}
			local := rec.localName(ent)
			sum := sha256.Sum256([]byte("gpconnect|" + rec.source + "|" + local))
			ent.id = "gpc-" + hex.EncodeToString(sum[:16])
			ent.url = r4 + "/" + ent.id
		}
		if first := seen[ent.url]; first != nil {
			if ent.byIdentifier && !reference[ent.typ] && first.src["id"] != ent.src["id"] {
				// Two clinical items under one identifier: merging them
				// would drop one, keeping both would key them the same.
				rec.fail(ent.path+".identifier", "the %s %v carries the same identifier as %s (%v): the record cannot be keyed without guessing which is which",
					ent.typ, ent.src["id"], first.path, first.src["id"])
				continue
			}
			ent.same = first
			ent.fullURL = first.fullURL
			rec.info(ent.path, "the same %s as %s (%s): imported once", ent.typ, first.path, ent.url)
			continue
		}
		seen[ent.url] = ent
		ent.fullURL = uuid.NewSHA1(fullURLSpace, []byte(ent.url)).URN()
	}
}

// providerIdentifier is the identifier keeping ent's logical id at the
// provider, when the provider is known: system and value, or "", "".
func (rec *record) providerIdentifier(ent *entry) (system, value string) {
	id, _ := ent.src["id"].(string)
	if rec.provider == "" || id == "" || ent.container != nil {
		return "", ""
	}
	return rec.provider + "/" + ent.typ, id
}

// localName names ent within its source: "Condition/12", or
// "List/3#1" when contained. A resource the source gave no id is named by
// what it is: a List (GP Connect's section Lists have no id) by its code
// when no other List of the record without an id has that code, so that
// the section a later fetch sends replaces the one before; anything else
// by its content, so that an unchanged one imports onto itself and a
// changed one is a new resource.
func (rec *record) localName(ent *entry) string {
	id, _ := ent.src["id"].(string)
	if code := listCode(ent); id == "" && code != "" && rec.sections[code] == 1 {
		sum := sha256.Sum256([]byte(code))
		rec.info(ent.path, "the List has neither an identifier nor an id: it is keyed on its code (%s), as the record's section that a later import of the section replaces", code)
		id = "section-" + hex.EncodeToString(sum[:16])
	} else if id == "" {
		canonical, _ := json.Marshal(ent.src) // map keys sorted: one form per content
		sum := sha256.Sum256(canonical)
		rec.info(ent.path, "the %s has neither an identifier nor an id: it is keyed on its content", ent.typ)
		id = "content-" + hex.EncodeToString(sum[:16])
	}
	if ent.container != nil {
		return rec.localName(ent.container) + "#" + id
	}
	return ent.typ + "/" + id
}

// sectionCodes counts the top-level Lists without an id by their code
// (listCode). GP Connect sends each section of a record (allergies,
// problems, consultations, ...) as one such List; two with one code are
// not told apart by it, and are keyed on their content instead.
func (rec *record) sectionCodes() map[string]int {
	n := map[string]int{}
	for _, ent := range rec.entries {
		if id, _ := ent.src["id"].(string); id == "" && ent.container == nil {
			if code := listCode(ent); code != "" {
				n[code]++
			}
		}
	}
	return n
}

// listCode names what a List is: the system and code of the first coding
// of its code that has one, else the code's text; "" for another type or
// a List without a code.
func listCode(ent *entry) string {
	if ent.typ != "List" {
		return ""
	}
	code, _ := ent.src["code"].(map[string]any)
	codings, _ := code["coding"].([]any)
	for _, c := range codings {
		c, _ := c.(map[string]any)
		if v, _ := c["code"].(string); v != "" {
			sys, _ := c["system"].(string)
			return sys + "|" + v
		}
	}
	text, _ := code["text"].(string)
	return text
}

func conditional(typ, system, value string) string {
	return typ + "?identifier=" + url.QueryEscape(mappers.IdentifierToken(system, value))
}

// firstOf returns the first of systems res has an identifier in.
func firstOf(res map[string]any, systems ...string) string {
	for _, s := range systems {
		if identifierValue(res, s) != "" {
			return s
		}
	}
	return ""
}

// sourceIdentifier returns the first identifier of res with a system and
// a value: GP systems give clinical items identifiers in their own
// namespace (https://EMISWeb/A82038, https://medicus.health/...).
func sourceIdentifier(res map[string]any) (system, value string) {
	list, _ := res["identifier"].([]any)
	for _, x := range list {
		id, _ := x.(map[string]any)
		s, _ := id["system"].(string)
		v, _ := id["value"].(string)
		if s != "" && v != "" {
			return s, v
		}
	}
	return "", ""
}

// resolve returns the full URL of the entry an STU3 reference points at,
// seen from ent.
func (rec *record) resolve(ent *entry, ref string) (string, bool) {
	if strings.HasPrefix(ref, "#") {
		holder := ent
		if ent.container != nil {
			holder = ent.container
		}
		if t := holder.contained[ref[1:]]; t != nil {
			return t.fullURL, t.fullURL != ""
		}
		return "", false
	}
	t := rec.byRef[ref]
	if t == nil {
		// An absolute reference to the provider's own server.
		if i := strings.LastIndex(ref, "/"); i > 0 {
			if j := strings.LastIndex(ref[:i], "/"); j >= 0 {
				t = rec.byRef[ref[j+1:]]
			}
		}
	}
	if t == nil || t.fullURL == "" {
		return "", false
	}
	return t.fullURL, true
}

// convert maps ent to an R4 resource of our model, or reports why not.
func (rec *record) convert(ent *entry) fhir.Resource {
	m := mappings[ent.typ]
	c := &conv{rec: rec, ent: ent}
	out := c.resource(m)
	if sys, val := rec.providerIdentifier(ent); sys != "" {
		out["identifier"] = append(asList(out["identifier"]), map[string]any{"system": sys, "value": val})
	}
	if ent.id != "" {
		out["id"] = ent.id
	}
	data, err := json.Marshal(out)
	if err != nil {
		rec.fail(ent.path, "cannot encode the R4 %s: %v", m.r4Type, err)
		return nil
	}
	r, err := fhirjson.UnmarshalAs(data, m.r4Type)
	if err != nil {
		rec.fail(ent.path, "the %s does not make a valid R4 %s: %v", ent.typ, m.r4Type, err)
		return nil
	}
	return r
}

// sortedKeys returns m's keys in order, so issues come out the same way
// every time.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
