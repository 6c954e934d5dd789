package access

import (
	"context"
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
// entity naming the patient, the request id and what names no resource
// are kept. vs itself is not changed.
func (s *Store) trailReached(ctx context.Context, req *request, r store.Reader, vs []*store.Version) ([]*store.Version, error) {
	if req.p.unrestricted() || !slices.ContainsFunc(vs, isTrailEvent) {
		return vs, nil
	}
	if g, err := req.grant("AuditEvent", Read); err == nil && g.all {
		return vs, nil // the whole trail, which names every resource
	}
	reached := map[string]bool{} // by reference
	var out []*store.Version     // nil until a version is changed
	for i, v := range vs {
		if !isTrailEvent(v) {
			continue
		}
		body, err := s.reachedEntities(ctx, req, r, v.JSON, reached)
		if err != nil {
			return nil, fmt.Errorf("access: the entities of AuditEvent/%s: %w", v.ID, err)
		}
		if body == nil {
			continue
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

// reachedEntities returns the AuditEvent body without the entities naming
// a resource the principal may not read, or nil when it names none.
// reached holds the decisions made so far, by reference.
func (s *Store) reachedEntities(ctx context.Context, req *request, r store.Reader, body []byte, reached map[string]bool) ([]byte, error) {
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
		if en != nil && en.What != nil && en.What.Reference != nil {
			ref := en.What.Reference.Get()
			ok, known := reached[ref]
			if !known {
				if ok, err = s.reachesRef(ctx, req, r, ref); err != nil {
					return nil, err
				}
				reached[ref] = ok
			}
			if !ok {
				continue
			}
		}
		kept = append(kept, en)
	}
	if len(kept) == len(ev.Entity) {
		return nil, nil
	}
	ev.Entity = kept
	return fhirjson.Marshal(ev)
}

// reachesRef reports whether the principal may read what ref, a reference
// the server wrote (Type/id, or Type/id/_history/n), names, as a read or
// vread of it would decide: one that does not exist is not reached. A
// reference of another form names no resource of this server and is
// reached.
func (s *Store) reachesRef(ctx context.Context, req *request, r store.Reader, ref string) (bool, error) {
	parts := strings.Split(ref, "/")
	var version int64
	switch {
	case len(parts) == 2:
	case len(parts) == 4 && parts[2] == "_history":
		n, err := strconv.ParseInt(parts[3], 10, 64)
		if err != nil || n < 1 {
			return true, nil
		}
		version = n
	default:
		return true, nil
	}
	typ, id := parts[0], parts[1]
	if !fhir.IsResourceType(typ) || id == "" {
		return true, nil
	}
	switch _, err := s.decideRead(ctx, req, r, Read, typ, id, version); {
	case errors.Is(err, store.ErrNotFound) || isDenied(err):
		return false, nil
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
