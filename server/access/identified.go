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
// identifier alone (see identifiedPatients). An identifier is looked for
// once a call, however many of vs name it.
func (s *Store) touch(ctx context.Context, req *request, r store.Reader, vs ...*store.Version) error {
	if req.record.filled() {
		return nil // nothing more is recorded (see Record.touchNaming)
	}
	named := map[*store.Version][]string{}
	found := map[store.Token]string{}
	for _, v := range vs {
		if !s.namesByIdentifierAlone(v) {
			continue
		}
		ix, err := s.rules.Index(v.Type, v.JSON)
		if err != nil {
			return fmt.Errorf("access: index %s/%s: %w", v.Type, v.ID, err)
		}
		if named[v], err = s.identifiedPatients(ctx, r, v.Type, &ix, found); err != nil {
			return err
		}
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
// referring to no Patient is looked into. found holds the identifiers
// looked for already, and the Patient each names ("" for none), when not
// nil.
func (s *Store) identifiedPatients(ctx context.Context, r store.Reader, typ string, ix *store.Index, found map[store.Token]string) ([]string, error) {
	if typ == "Patient" || slices.ContainsFunc(ix.References, func(ref store.Reference) bool { return ref.Type == "Patient" }) {
		return nil, nil
	}
	var ids []string
	for _, tok := range identifiersOf(ix, s.rules.Search.CompartmentParams(typ)) {
		tok.Param = ""
		id, known := found[tok]
		if !known {
			vs, err := r.Search(ctx, store.Query{Type: "Patient", Count: 2, Where: []store.Clause{
				{Param: "identifier", Tokens: []store.TokenMatch{identifierMatch(tok)}},
			}})
			if err != nil {
				return nil, fmt.Errorf("access: find the Patient with an identifier a %s names: %w", typ, err)
			}
			if len(vs) == 1 {
				id = vs[0].ID
			}
			if found != nil {
				found[tok] = id
			}
		}
		if id != "" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}
