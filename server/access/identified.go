package access

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"carefhir/store"
)

// touch records vs as touched by req's request (see Record.touch), each
// belonging, besides the patients it refers to, to those it names by
// identifier alone (see identifiedPatients). The identifiers vs name are
// looked for together, once a call, however many of vs name each.
func (s *Store) touch(ctx context.Context, req *request, r store.Reader, vs ...*store.Version) error {
	if req.record.filled() {
		return nil // nothing more is recorded (see Record.touchNaming)
	}
	indexes := map[*store.Version]*store.Index{}
	var toks []store.Token
	for _, v := range vs {
		if !s.namesByIdentifierAlone(v) {
			continue
		}
		ix, err := s.rules.Index(v.Type, v.JSON)
		if err != nil {
			return fmt.Errorf("access: index %s/%s: %w", v.Type, v.ID, err)
		}
		indexes[v] = &ix
		toks = append(toks, s.namingIdentifiers(v.Type, &ix)...)
	}
	found := map[store.Token]string{}
	if err := s.identify(ctx, r, toks, found); err != nil {
		return err
	}
	named := map[*store.Version][]string{}
	for v, ix := range indexes {
		named[v] = s.identifiedAmong(v.Type, ix, found)
	}
	req.record.touchNaming(named, vs...)
	return nil
}

// namesByIdentifierAlone reports whether v may name its patient by
// identifier alone: it is of a type in the Patient compartment, refers to
// no Patient by reference, and holds a single identifier, as a
// Reference's is (a resource's own identifiers are mostly a list). Only
// those are indexed to be told, a scan of the bytes deciding the others,
// as it decides the patients v refers to (see PatientsOf).
func (s *Store) namesByIdentifierAlone(v *store.Version) bool {
	return v.Type != "Patient" && !v.Deleted &&
		!hasMember(v.JSON, "reference", `"Patient/`) && hasMember(v.JSON, "identifier", "{") &&
		(v.Type != "AuditEvent" || mayResolveToPatient(v.JSON)) &&
		len(s.rules.Search.CompartmentParams(v.Type)) > 0
}

// mayResolveToPatient reports whether an AuditEvent's JSON, however it is
// spaced, may hold a reference that resolves to a Patient other than by
// a relative Patient/id: by a URL ending in Patient/id, or to a contained
// resource. Its compartment parameter, patient, takes an agent's or
// entity's reference only where it resolves to a Patient, and with it
// the identifier beside it; an AuditEvent holding no such reference names
// no patient by identifier. So the events the audit trail writes, each
// naming its request by an identifier alone, are not indexed to be told,
// while one a client wrote, naming a contained Patient by NHS number, is.
func mayResolveToPatient(body []byte) bool {
	return bytes.Contains(body, []byte(`/Patient/`)) || hasMember(body, "reference", `"#`)
}

// identifiedPatients returns the patients a version of typ with index ix
// names by identifier alone in its compartment parameters (a subject that
// is an NHS number): for each such identifier, the one Patient held here
// that has it, as a PAM response's subject is resolved. An identifier no
// Patient held here has, or that two have, names no one. Only a version
// referring to no Patient is looked into.
func (s *Store) identifiedPatients(ctx context.Context, r store.Reader, typ string, ix *store.Index) ([]string, error) {
	found := map[store.Token]string{}
	if err := s.identify(ctx, r, s.namingIdentifiers(typ, ix), found); err != nil {
		return nil, err
	}
	return s.identifiedAmong(typ, ix, found), nil
}

// namingIdentifiers returns the identifiers by which a version of typ with
// index ix may name its patient (see identifiedPatients), without their
// parameter: none for a Patient, or a version referring to a Patient.
func (s *Store) namingIdentifiers(typ string, ix *store.Index) []store.Token {
	if typ == "Patient" || slices.ContainsFunc(ix.References, func(ref store.Reference) bool { return ref.Type == "Patient" }) {
		return nil
	}
	toks := identifiersOf(ix, s.rules.Search.CompartmentParams(typ))
	for i := range toks {
		toks[i].Param = ""
	}
	return toks
}

// identifiedAmong returns the patients a version of typ with index ix
// names by identifier (see identifiedPatients), found holding the Patient
// each of its identifiers names.
func (s *Store) identifiedAmong(typ string, ix *store.Index, found map[store.Token]string) []string {
	var ids []string
	for _, tok := range s.namingIdentifiers(typ, ix) {
		if id := found[tok]; id != "" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// identify records in found, for each identifier of toks, the one Patient
// held here that has it, or "" when none or two or more have it. The
// identifiers are looked for by a search of a page of them at a time,
// rather than one for each, two Patients an identifier telling it; one
// whose Patients a full page may have been cut before is looked for alone.
func (s *Store) identify(ctx context.Context, r store.Reader, toks []store.Token, found map[store.Token]string) error {
	var todo []store.Token
	listed := map[store.Token]bool{}
	for _, tok := range toks {
		if _, known := found[tok]; !known && !listed[tok] {
			listed[tok] = true
			todo = append(todo, tok)
		}
	}
	for page := range slices.Chunk(todo, readAheadIDs) {
		held, full, err := s.patientsWith(ctx, r, page)
		if err != nil {
			return err
		}
		for _, tok := range page {
			ids := held[tok]
			if len(ids) < 2 && full && len(page) > 1 {
				alone, _, err := s.patientsWith(ctx, r, []store.Token{tok})
				if err != nil {
					return err
				}
				ids = alone[tok]
			}
			found[tok] = ""
			if len(ids) == 1 {
				found[tok] = ids[0]
			}
		}
	}
	return nil
}

// patientsWith returns, for each identifier of toks, the Patients held
// here found to have it by one search of up to two Patients an
// identifier, and whether that search filled its page, when a Patient
// with an identifier may be missing.
func (s *Store) patientsWith(ctx context.Context, r store.Reader, toks []store.Token) (map[store.Token][]string, bool, error) {
	matches := make([]store.TokenMatch, len(toks))
	for i, tok := range toks {
		matches[i] = identifierMatch(tok)
	}
	limit := 2 * len(toks)
	vs, err := r.Search(ctx, store.Query{Type: "Patient", Count: limit, Where: []store.Clause{{Param: "identifier", Tokens: matches}}})
	if err != nil {
		return nil, false, fmt.Errorf("access: find the Patients with %d identifiers records name: %w", len(toks), err)
	}
	held := map[store.Token][]string{}
	for _, v := range vs {
		if len(toks) == 1 {
			// Every Patient found has the one identifier searched for:
			// none need be indexed to tell which (a write naming its
			// patient by one identifier, each looked for alone).
			held[toks[0]] = append(held[toks[0]], v.ID)
			continue
		}
		ix, err := s.rules.Index(v.Type, v.JSON)
		if err != nil {
			return nil, false, fmt.Errorf("access: index Patient/%s: %w", v.ID, err)
		}
		for _, tok := range toks {
			if hasIdentifier(v.ID, &ix, tok) {
				held[tok] = append(held[tok], v.ID)
			}
		}
	}
	return held, len(vs) == limit, nil
}
