package mappers

import (
	"slices"
	"strings"

	"github.com/google/uuid"

	"carefhir/fhir"
	"carefhir/fhir/search"
	"carefhir/profiles"
)

// Identifier systems the importers key their writes on.
const (
	NHSNumberSystem = profiles.NHSNumberSystem
	ODSSystem       = "https://fhir.nhs.uk/Id/ods-organization-code"
	GMPSystem       = "https://fhir.hl7.org.uk/Id/gmp-number"
	GMCSystem       = "https://fhir.hl7.org.uk/Id/gmc-number"
	// URISystem is the system of identifiers that are URIs, used for the
	// stable ids importers derive for records the source names only by
	// their content (an observation by patient, code and date).
	URISystem = "urn:ietf:rfc:3986"
)

// keyspace is the UUID namespace of the names StableID and full URLs are
// derived from, so the same key always gives the same UUID.
var keyspace = uuid.MustParse("6c3e2a52-3f43-4c8e-9b0f-5a8f0f6f1d21")

// StableID returns a urn:uuid derived from parts, the same for the same
// parts on every import: the identifier of a record whose source has no id
// of its own, such as an observation known by patient, code and date.
func StableID(parts ...string) string {
	return "urn:uuid:" + uuid.NewSHA1(keyspace, []byte(strings.Join(parts, "|"))).String()
}

// Transaction builds the transaction Bundle of an import. Each resource is
// written conditionally on an identifier the source owns, and gets a
// urn:uuid full URL derived from that identifier, so other entries can
// reference it and the same key within one Bundle is written once.
type Transaction struct {
	bundle *fhir.Bundle
	byKey  map[string]*fhir.BundleEntry
	merges map[string]Merge // by full URL
}

// NewTransaction returns an empty transaction.
func NewTransaction() *Transaction {
	return &Transaction{bundle: &fhir.Bundle{Type: fhir.NewCode("transaction")}, byKey: map[string]*fhir.BundleEntry{}}
}

// Put adds a conditional update of r, matched on the identifier
// system|value (PUT Type?identifier=system|value): the matching resource
// is replaced, or r is created when none matches. Putting the same key
// again replaces the earlier resource in the Bundle. It returns r's full
// URL.
func (t *Transaction) Put(r fhir.Resource, system, value string) string {
	return t.PutPart(r, system, value, nil)
}

// PutPart adds a conditional update of part of a resource, as Put does:
// r is created when none matches, and merge completes it from the
// matching resource otherwise (Result.Merges), so what r does not say is
// kept. A nil merge writes r whole, as Put.
func (t *Transaction) PutPart(r fhir.Resource, system, value string, merge Merge) string {
	e, ok := t.entry(r, system, value)
	e.Resource = r
	if !ok {
		e.Request = &fhir.BundleEntryRequest{Method: fhir.NewCode("PUT"), Url: fhir.NewUri(r.ResourceType() + "?" + identifierQuery(system, value))}
	}
	url := e.FullUrl.Get()
	if merge == nil {
		delete(t.merges, url)
	} else {
		if t.merges == nil {
			t.merges = map[string]Merge{}
		}
		t.merges[url] = merge
	}
	return url
}

// Ensure adds a conditional create of r (POST with If-None-Exist:
// identifier=system|value): a resource already matching is kept as it is,
// so a thin record made from a reference (an ODS code and a name) does not
// overwrite a fuller one. Ensuring a key already in the Bundle keeps the
// first resource. It returns the full URL of the entry.
func (t *Transaction) Ensure(r fhir.Resource, system, value string) string {
	e, ok := t.entry(r, system, value)
	if !ok {
		e.Resource = r
		e.Request = &fhir.BundleEntryRequest{Method: fhir.NewCode("POST"), Url: fhir.NewUri(r.ResourceType()), IfNoneExist: fhir.NewString(identifierQuery(system, value))}
	}
	return e.FullUrl.Get()
}

// Has reports whether the Bundle already writes a resourceType keyed on
// system|value.
func (t *Transaction) Has(resourceType, system, value string) bool {
	_, ok := t.byKey[resourceType+"?"+system+"|"+value]
	return ok
}

// Len returns the number of entries.
func (t *Transaction) Len() int { return len(t.bundle.Entry) }

// Bundle returns the transaction Bundle built so far.
func (t *Transaction) Bundle() *fhir.Bundle { return t.bundle }

// Merges returns the merges of the entries added by PutPart, by full URL,
// or nil when there are none.
func (t *Transaction) Merges() map[string]Merge { return t.merges }

func (t *Transaction) entry(r fhir.Resource, system, value string) (*fhir.BundleEntry, bool) {
	key := r.ResourceType() + "?" + system + "|" + value
	if e, ok := t.byKey[key]; ok {
		return e, true
	}
	e := &fhir.BundleEntry{FullUrl: fhir.NewUri(StableID(key))}
	t.byKey[key] = e
	t.bundle.Entry = append(t.bundle.Entry, e)
	return e, false
}

// queryEscaper escapes only what would change the meaning of a query
// string, so the conditional URLs stay readable:
// Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009.
var queryEscaper = strings.NewReplacer("%", "%25", "&", "%26", "#", "%23", "+", "%2B", " ", "%20", `\`, "%5C")

func identifierQuery(system, value string) string {
	return "identifier=" + queryEscaper.Replace(IdentifierToken(system, value))
}

// IdentifierToken is the token search value that matches the identifier
// system|value alone: a ',' in either would otherwise end the value (and
// begin another, matched in any system), a '|' split them elsewhere, a
// '$' or '\' be read as FHIR's (https://hl7.org/fhir/R4/search.html#escaping).
func IdentifierToken(system, value string) string {
	return search.EscapeValue(system) + "|" + search.EscapeValue(value)
}

// Ref returns a reference to the entry with full URL fullURL.
func Ref(fullURL string) *fhir.Reference {
	return &fhir.Reference{Reference: fhir.NewString(fullURL)}
}

// AddLinks adds to stored, a stored Patient, each of links it does not
// hold already: one of the same type to the same record, whose reference
// ref gives (a full URL of the Bundle becomes the stored Type/id). A
// merge written again so adds nothing.
func AddLinks(stored *fhir.Patient, links []*fhir.PatientLink, ref func(fullURL string) string) {
	for _, l := range links {
		if !slices.ContainsFunc(stored.Link, func(h *fhir.PatientLink) bool {
			return h != nil && l != nil && h.Type.Get() == l.Type.Get() && linked(h) == ref(linked(l))
		}) {
			stored.Link = append(stored.Link, l)
		}
	}
}

// linked is the reference of the record l links to, "" when it names none.
func linked(l *fhir.PatientLink) string {
	if l.Other == nil {
		return ""
	}
	return l.Other.Reference.Get()
}

// KeepMerge keeps on p, a Patient an import is about to write over stored,
// the merge stored records: a record a merge made inactive and
// replaced-by another stays inactive and linked, whatever a later add or
// update of the person says, since a merge is undone only deliberately.
// The rest of p (names, addresses) is written. It reports whether stored
// was such a record; p's own merge writes (p inactive) are left as they
// are.
func KeepMerge(p, stored *fhir.Patient) bool {
	if p.Active != nil && !p.Active.Get() || stored.Active == nil || stored.Active.Get() {
		return false
	}
	var by []*fhir.PatientLink
	for _, l := range stored.Link {
		if l.Type.Get() == "replaced-by" {
			by = append(by, l)
		}
	}
	if len(by) == 0 {
		return false
	}
	p.Active = fhir.NewBoolean(false)
	p.Link = append(p.Link, by...)
	return true
}
