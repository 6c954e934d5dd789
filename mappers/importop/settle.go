package importop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/mappers"
	"carefhir/mappers/pds"
	"carefhir/operation"
)

// lookupChunk bounds the identifiers one search of settle asks for.
const lookupChunk = 100

// keyed is an entry of a mapper's Bundle written conditionally on one
// identifier: a conditional update (PUT Type?identifier=s|v) or create
// (POST with If-None-Exist: identifier=s|v).
type keyed struct {
	entry *fhir.BundleEntry
	typ   string
	token string // system|value, escaped as a search value (mappers.IdentifierToken)
	// match is the id of the one resource holding the identifier, and
	// json its current version; both empty when none does.
	match string
	json  []byte
	many  bool // more than one resource holds the identifier
}

// settle looks up, a chunk at a time, the resources the conditional
// entries of b are keyed on, instead of one search per entry, and
// rewrites the entries so that the transaction need not search again: a
// conditional update whose identifier matches nothing becomes a create; one
// that matches a resource becomes an update of that resource, or, when
// the resource already holds what the entry writes, a conditional create
// on its id, which writes nothing (the same content makes no new
// version). Entries whose identifier more than one resource holds are
// left as they are, for the transaction to refuse as any client's, and so
// are all entries when the unit of work cannot search what it wrote.
//
// An entry that writes only part of a resource (one merges holds, by full
// URL) is completed from the resource it matches, so what the payload
// does not say is kept; it is then compared and written as any other.
//
// A Patient entry about to write over a record a merge retired keeps the
// merge (mappers.KeepMerge): the Warnings returned name each.
func settle(ctx context.Context, tx operation.Store, b *fhir.Bundle, merges map[string]mappers.Merge) ([]mappers.Issue, error) {
	var entries []*keyed
	byType := map[string][]*keyed{}
	for _, e := range b.Entry {
		k := keyOf(e)
		if k == nil {
			continue
		}
		entries = append(entries, k)
		byType[k.typ] = append(byType[k.typ], k)
	}
	for typ, ks := range byType {
		for len(ks) > 0 {
			n := min(len(ks), lookupChunk)
			if err := lookup(ctx, tx, typ, ks[:n]); err != nil {
				return nil, err
			}
			ks = ks[n:]
		}
	}
	// The references a resource written holds once stored: each full URL
	// of an entry whose resource is found, as Type/id.
	refs := map[string]string{}
	for _, k := range entries {
		if k.match != "" {
			refs[k.entry.FullUrl.Get()] = k.typ + "/" + k.match
		}
	}
	ref := func(fullURL string) string {
		if ref, ok := refs[fullURL]; ok {
			return ref
		}
		return fullURL
	}
	var issues []mappers.Issue
	for _, k := range entries {
		if k.entry.Request.Method.Get() != "PUT" || k.many {
			continue
		}
		req := k.entry.Request
		if k.match == "" {
			req.Method, req.Url = fhir.NewCode("POST"), fhir.NewUri(k.typ)
			continue
		}
		// The stored version is read as it is served: one an older
		// release let through with a date on a day its month lacks is
		// merged with, and corrected by, what is imported.
		cur, err := fhirjson.UnmarshalStored(k.json)
		if err != nil {
			return nil, fmt.Errorf("importop: reading %s/%s: %w", k.typ, k.match, err)
		}
		if kept := keepMerge(k, cur); kept != nil {
			issues = append(issues, *kept)
		}
		// Only PDS labels what it sends; a merge starts from the stored
		// version, labels included, so they are looked for before it.
		labelled := labels(k.entry.Resource)
		if merge := merges[k.entry.FullUrl.Get()]; merge != nil {
			// merge may change what it is given: a copy, since cur is
			// what holds compares with.
			base, err := fhirjson.UnmarshalStored(k.json)
			if err != nil {
				return nil, fmt.Errorf("importop: reading %s/%s: %w", k.typ, k.match, err)
			}
			k.entry.Resource = merge(base, ref)
		}
		keepLinks(k, cur, ref)
		keepSecurity(k.entry.Resource, cur)
		if !labelled {
			if kept := keepWhereabouts(k, cur); kept != nil {
				issues = append(issues, *kept)
			}
		}
		k.entry.Resource.SetID(k.match)
		same, err := holds(cur, k.entry.Resource, refs)
		if err != nil {
			return nil, err
		}
		if same {
			req.Method, req.Url, req.IfNoneExist = fhir.NewCode("POST"), fhir.NewUri(k.typ), fhir.NewString("_id="+k.match)
			continue
		}
		req.Url = fhir.NewUri(k.typ + "/" + k.match)
	}
	return issues, nil
}

// keepMerge keeps the merge of the stored Patient cur, which k matches,
// when k writes over it, and returns the Warning that says so, or nil.
func keepMerge(k *keyed, cur fhir.Resource) *mappers.Issue {
	p, stored, ok := patients(k, cur)
	if !ok || !mappers.KeepMerge(p, stored) {
		return nil
	}
	var to []string
	for _, l := range stored.Link {
		if l.Type.Get() == "replaced-by" && l.Other != nil {
			to = append(to, l.Other.Reference.Get())
		}
	}
	_, id, _ := strings.Cut(k.token, "|")
	is := mappers.Warnf("Patient?identifier="+k.token, "the record %s was merged into %s: it stays inactive and linked to it; the rest of this update is applied to it",
		id, strings.Join(to, " and "))
	return &is
}

// keepLinks keeps on the Patient k writes the links of the stored Patient
// cur that it does not hold itself. No import speaks for all of a
// person's links: PDS sends none, and an HL7 v2 merge or PDS's answer for
// a superseded NHS number writes only the link it makes, so a record
// written whole must not lose what earlier merges linked it to. cur's
// links come first, in their order, so that the same import again writes
// nothing new; ref resolves the full URLs of the batch.
func keepLinks(k *keyed, cur fhir.Resource, ref func(fullURL string) string) {
	p, stored, ok := patients(k, cur)
	if !ok || len(stored.Link) == 0 {
		return
	}
	kept := &fhir.Patient{Link: slices.Clone(stored.Link)}
	mappers.AddLinks(kept, p.Link, ref)
	p.Link = kept.Link
}

// keepSecurity gives res, about to be written over cur, the security
// labels of cur when res has none of its own. Only PDS says whether a
// record is sensitive, and it labels every Patient it sends (U, R or V):
// an HL7 v2 message, a CSV row or a GP Connect record that says nothing
// must not lift the restricted label PDS set.
func keepSecurity(res, cur fhir.Resource) {
	held := cur.GetMeta()
	if held == nil || len(held.Security) == 0 {
		return
	}
	meta := res.GetMeta()
	if meta == nil {
		meta = &fhir.Meta{}
		res.SetMeta(meta)
	}
	if len(meta.Security) == 0 {
		meta.Security = held.Security
	}
}

// labels reports whether res carries security labels of its own.
func labels(res fhir.Resource) bool {
	meta := res.GetMeta()
	return meta != nil && len(meta.Security) > 0
}

// keepWhereabouts keeps out of the Patient k writes, from a source that
// does not label records, the address, telecoms, contacts and practice
// of the restricted record cur it writes over (pds.KeepWhereabouts), and
// returns the Warning that says so when the entry held any, or nil.
func keepWhereabouts(k *keyed, cur fhir.Resource) *mappers.Issue {
	p, stored, ok := patients(k, cur)
	if !ok || !pds.KeepWhereabouts(p, stored) {
		return nil
	}
	is := mappers.Warnf("Patient?identifier="+k.token, "the record is restricted (PDS): its address, telecoms, contacts and practice stay as PDS gave them, and this import's are not stored")
	return &is
}

// patients returns the Patient k writes and the stored one cur, when both
// are Patients.
func patients(k *keyed, cur fhir.Resource) (p, stored *fhir.Patient, ok bool) {
	p, ok = k.entry.Resource.(*fhir.Patient)
	if !ok {
		return nil, nil, false
	}
	stored, ok = cur.(*fhir.Patient)
	return p, stored, ok
}

// keyOf returns the identifier e is written conditionally on, or nil.
func keyOf(e *fhir.BundleEntry) *keyed {
	if e.Request == nil || e.Resource == nil {
		return nil
	}
	var query string
	switch e.Request.Method.Get() {
	case "PUT":
		_, query, _ = strings.Cut(e.Request.Url.Get(), "?")
	case "POST":
		query = e.Request.IfNoneExist.Get()
	}
	q, err := url.ParseQuery(query)
	if err != nil || len(q) != 1 || len(q["identifier"]) != 1 {
		return nil
	}
	return &keyed{entry: e, typ: e.Resource.ResourceType(), token: q["identifier"][0]}
}

// lookup finds the resources of typ holding the identifiers of ks.
func lookup(ctx context.Context, tx operation.Store, typ string, ks []*keyed) error {
	tokens := make([]string, len(ks))
	byToken := make(map[string][]*keyed, len(ks))
	for i, k := range ks {
		tokens[i] = k.token
		byToken[k.token] = append(byToken[k.token], k)
	}
	// Twice the identifiers: a page that is full still tells which
	// identifiers more than one resource holds.
	page, err := tx.Search(ctx, typ, url.Values{"identifier": {strings.Join(tokens, ",")}, "_count": {strconv.Itoa(2 * len(ks))}})
	if errors.Is(err, errors.ErrUnsupported) {
		// A unit of work that cannot search what it wrote (MongoDB
		// without transactions): every entry is left to the transaction,
		// whose conditional writes search one at a time.
		for _, k := range ks {
			k.many = true
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("importop: looking up %s by identifier: %w", typ, err)
	}
	if page.Next != "" {
		// Too many matches to tell: every entry is left to the transaction.
		for _, k := range ks {
			k.many = true
		}
		return nil
	}
	for _, v := range page.Matches {
		var held struct {
			Identifier []struct{ System, Value string }
		}
		if err := json.Unmarshal(v.JSON, &held); err != nil {
			return fmt.Errorf("importop: reading %s/%s: %w", typ, v.ID, err)
		}
		for _, id := range held.Identifier {
			for _, k := range byToken[mappers.IdentifierToken(id.System, id.Value)] {
				if k.match != "" && k.match != v.ID {
					k.many = true
				}
				k.match, k.json = v.ID, v.JSON
			}
		}
	}
	return nil
}

// holds reports whether cur, the current version, holds what res would
// write once its references to other entries (full URLs) are resolved by
// refs: the same resource but for meta, and the same security labels
// (a record PDS now labels restricted is written, though nothing else
// changed). cur's meta is dropped.
func holds(cur, res fhir.Resource, refs map[string]string) (bool, error) {
	cur.SetMeta(securityOnly(cur.GetMeta()))
	want, err := fhirjson.Marshal(cur)
	if err != nil {
		return false, err
	}
	meta := res.GetMeta()
	res.SetMeta(securityOnly(meta))
	got, err := fhirjson.Marshal(res)
	res.SetMeta(meta)
	if err != nil {
		return false, err
	}
	return bytes.Equal(want, resolve(got, refs)), nil
}

// securityOnly returns a meta holding only the security labels of m, or
// nil when it has none.
func securityOnly(m *fhir.Meta) *fhir.Meta {
	if m == nil || len(m.Security) == 0 {
		return nil
	}
	return &fhir.Meta{Security: m.Security}
}

// resolve replaces in js each reference to a full URL refs knows by the
// reference it stands for.
func resolve(js []byte, refs map[string]string) []byte {
	const prefix = `"urn:uuid:`
	var out []byte
	rest := js
	for {
		i := bytes.Index(rest, []byte(prefix))
		if i < 0 {
			break
		}
		end := bytes.IndexByte(rest[i+1:], '"')
		if end < 0 {
			break
		}
		urn := string(rest[i+1 : i+1+end])
		if ref, ok := refs[urn]; ok {
			out = append(out, rest[:i+1]...)
			out = append(out, ref...)
		} else {
			out = append(out, rest[:i+1+end]...)
		}
		rest = rest[i+1+end:]
	}
	if out == nil {
		return js
	}
	return append(out, rest...)
}
