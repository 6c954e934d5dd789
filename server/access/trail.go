package access

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/store"
)

// shownTo returns vs as req's principal is given them: as shownAll does,
// and each AuditEvent without the entities naming a resource they may not
// read (see trailReached).
func (s *Store) shownTo(ctx context.Context, req *request, r store.Reader, vs []*store.Version) ([]*store.Version, error) {
	vs, err := s.trailReached(ctx, req, r, vs)
	if err != nil {
		return nil, err
	}
	return shownAll(vs)
}

// trailReached returns vs with each AuditEvent's entities whose what names
// a resource the principal may not read left out, when they read the
// audit trail by its patients rather than whole. An AuditEvent about a
// patient names what a request touched of theirs, and some of it is
// another's too: a Group of them and someone else, an Appointment with
// another patient. The patient reads the event, and is answered 404 for
// that resource: its id and version must not reach them either. The
// entity naming the patient their access is scoped to (see scopedTo),
// even one not held here, the request id and what names no resource are
// kept. vs itself is not changed.
//
// The resources the events of vs name are decided together, their
// current versions read ahead by a search of each type (see
// readingAhead), not by a read or two each; an event naming only what
// the principal reaches is given as it is stored, not decoded and
// encoded again.
func (s *Store) trailReached(ctx context.Context, req *request, r store.Reader, vs []*store.Version) ([]*store.Version, error) {
	if req.p.unrestricted() || !slices.ContainsFunc(vs, isTrailEvent) {
		return vs, nil
	}
	if g, err := req.grant("AuditEvent", Read); err == nil && g.all {
		return vs, nil // the whole trail, which names every resource
	}
	named := make([][]string, len(vs)) // the references each event names
	var unseen []string
	seen := map[string]bool{}
	for i, v := range vs {
		if !isTrailEvent(v) {
			continue
		}
		refs, err := entityReferences(v.JSON)
		if err != nil {
			return nil, fmt.Errorf("access: the entities of AuditEvent/%s: %w", v.ID, err)
		}
		named[i] = refs
		for _, ref := range refs {
			if !seen[ref] {
				seen[ref] = true
				unseen = append(unseen, ref)
			}
		}
	}
	reached, err := s.reachRefs(ctx, req, r, unseen)
	if err != nil {
		return nil, err
	}
	var out []*store.Version // nil until a version is changed
	for i, v := range vs {
		if !isTrailEvent(v) || !slices.ContainsFunc(named[i], func(ref string) bool { return !reached[ref] }) {
			continue
		}
		body, err := reachedEntities(v.JSON, reached)
		if err != nil {
			return nil, fmt.Errorf("access: the entities of AuditEvent/%s: %w", v.ID, err)
		}
		if out == nil {
			out = slices.Clone(vs)
		}
		c := *v
		c.JSON = body
		out[i] = &c
	}
	if out == nil {
		return vs, nil
	}
	return out, nil
}

func isTrailEvent(v *store.Version) bool { return v != nil && v.Type == "AuditEvent" && !v.Deleted }

// entityReferences returns the references of the entities of an
// AuditEvent (its JSON), read without decoding the rest of it.
func entityReferences(body []byte) ([]string, error) {
	var ev struct {
		Entity []struct {
			What *struct{ Reference string }
		}
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, err
	}
	var refs []string
	for _, en := range ev.Entity {
		if en.What != nil && en.What.Reference != "" {
			refs = append(refs, en.What.Reference)
		}
	}
	return refs, nil
}

// reachRefs decides, by reference, whether the principal may read what
// each of refs names (see reachesRef), reading ahead the current versions
// of the resources they name, which decide most of them.
func (s *Store) reachRefs(ctx context.Context, req *request, r store.Reader, refs []string) (map[string]bool, error) {
	reached := make(map[string]bool, len(refs))
	var ahead []string
	for _, ref := range refs {
		typ, id, _, ok := refTarget(ref)
		if !ok || !slices.Contains(req.rules.Types, typ) {
			continue
		}
		if _, err := req.grant(typ, Read); err == nil {
			ahead = append(ahead, typ+"/"+id)
		}
	}
	if len(ahead) > 1 {
		ra, err := readingAhead(ctx, r, ahead)
		if err != nil {
			return nil, err
		}
		r = ra
	}
	for _, ref := range refs {
		ok, err := s.reachesRef(ctx, req, r, ref)
		if err != nil {
			return nil, err
		}
		reached[ref] = ok
	}
	return reached, nil
}

// scopedTo reports whether ref names a Patient the principal's access is
// scoped to: the patient of their patient context, or one the care-team
// rule relates their practitioner to. Its trail is what they read, and the
// entity naming it is kept even when a read of that Patient is not
// answered: none is held for the patient context yet, or the token has
// no scope on Patient. (A deleted one is reached by neither: its trail is
// not read.)
func (d *decider) scopedTo(ctx context.Context, r store.Reader, ref string) (bool, error) {
	typ, id, _, ok := refTarget(ref)
	switch {
	case !ok || typ != "Patient":
		return false, nil
	case d.p.Patient != "" && id == d.p.Patient:
		return true, nil
	case d.narrowedByCareTeam():
		return d.relatedTo(ctx, r, id)
	}
	return false, nil
}

// reachedEntities returns the AuditEvent body without the entities naming
// a resource the principal may not read, as reached decides each
// reference.
func reachedEntities(body []byte, reached map[string]bool) ([]byte, error) {
	res, err := fhirjson.UnmarshalStored(body)
	if err != nil {
		return nil, err
	}
	ev, ok := res.(*fhir.AuditEvent)
	if !ok {
		return nil, fmt.Errorf("a %s stored as an AuditEvent", res.ResourceType())
	}
	kept := ev.Entity[:0:0]
	for _, en := range ev.Entity {
		if en != nil && en.What != nil && en.What.Reference != nil && !reached[en.What.Reference.Get()] {
			continue
		}
		kept = append(kept, en)
	}
	ev.Entity = kept
	return fhirjson.Marshal(ev)
}

// refTarget returns the resource ref names when it is a reference the
// server writes, Type/id or Type/id/_history/n (version 0 for the
// former); ok false for a reference of another form, which names no
// resource of this server.
func refTarget(ref string) (typ, id string, version int64, ok bool) {
	parts := strings.Split(ref, "/")
	switch {
	case len(parts) == 2:
	case len(parts) == 4 && parts[2] == "_history":
		n, err := strconv.ParseInt(parts[3], 10, 64)
		if err != nil || n < 1 {
			return "", "", 0, false
		}
		version = n
	default:
		return "", "", 0, false
	}
	typ, id = parts[0], parts[1]
	if !fhir.IsResourceType(typ) || id == "" {
		return "", "", 0, false
	}
	return typ, id, version, true
}

// reachesRef reports whether the principal may read what ref, a reference
// the server wrote (Type/id, or Type/id/_history/n), names, as a read or
// vread of it decides (decideRead): one that does not exist is not
// reached, but for the Patient their access is scoped to (scopedTo),
// which is. A reference of another form names no resource of this server
// and is reached.
func (s *Store) reachesRef(ctx context.Context, req *request, r store.Reader, ref string) (bool, error) {
	typ, id, version, ok := refTarget(ref)
	if !ok {
		return true, nil
	}
	switch _, err := s.decideRead(ctx, req, r, Read, typ, id, version); {
	case errors.Is(err, store.ErrNotFound) || isDenied(err):
		return req.scopedTo(ctx, r, ref)
	case err != nil:
		return false, err
	}
	return true, nil
}

// trailClauses returns where, clauses of a search of AuditEvents, with
// the resources an entity clause names narrowed to those the principal
// may read, when they read the trail by its patients: they are given no
// entity naming another (see trailReached), and finding the events by it
// would tell them what they are not given. An entity clause naming none
// they may read matches nothing.
func (s *Store) trailClauses(ctx context.Context, req *request, r store.Reader, where []store.Clause) ([]store.Clause, error) {
	if req.p.unrestricted() || !slices.ContainsFunc(where, func(c store.Clause) bool { return c.Param == "entity" && len(c.References) > 0 }) {
		return where, nil
	}
	if g, err := req.grant("AuditEvent", Read); err == nil && g.all {
		return where, nil
	}
	out := slices.Clone(where)
	for i, c := range out {
		if c.Param != "entity" || len(c.References) == 0 || c.Not {
			continue
		}
		var kept []store.ReferenceMatch
		for _, m := range c.References {
			switch {
			case m.Type == "" && m.ID != "":
				continue // of any type: maybe one they may not read
			case m.Type == "":
				kept = append(kept, m) // a URL of no resource here
				continue
			}
			ok, err := s.reachesRef(ctx, req, r, m.Type+"/"+m.ID)
			if err != nil {
				return nil, err
			}
			if ok {
				kept = append(kept, m)
			}
		}
		if len(kept) == 0 {
			out[i] = idClause(noID)
			continue
		}
		out[i].References = kept
	}
	return out, nil
}

// noID is an id no resource has, lexically not an id: a clause on it
// matches nothing.
const noID = "!"
