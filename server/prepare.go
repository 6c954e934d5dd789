package server

import (
	"context"
	"fmt"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/fhir/fhirpath"
	"carefhir/store"
)

// prepared is a create made ready before it takes the store's writer:
// the version to put, validated, encoded and indexed, and the resource
// the write hooks of its type see (nil when none applies).
type prepared struct {
	wr  *store.Write
	res fhir.Resource
}

// prepareCreate makes the create of res, a resource of typ as a client
// sent it, ready to write as version 1 of a new resource: the work of a
// create that needs no store, done in the request before it queues for
// the writer. The version is stamped and encoded once, and its JSON
// decoded once for both validation and the search index, which run side
// by side; so does decoding the copy hooks see. Invalid, it is refused
// (422) and nothing is written.
func (a *api) prepareCreate(ctx context.Context, typ string, res fhir.Resource) (*prepared, error) {
	if !stampable(res) {
		// The server replaces the id and the meta a client sent, but
		// validation looks at what was sent: the write is validated first,
		// as an update's is.
		if err := a.validateWrite(ctx, res); err != nil {
			return nil, err
		}
		return a.svc.prepare(ctx, typ, res)
	}
	if err := a.checkBundledCanonical(res); err != nil {
		return nil, err
	}
	now := a.svc.timestamp(ctx)
	stamp(res, newID(), 1, now)
	id := res.GetID()
	body, err := fhirjson.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("encode %s/%s: %w", typ, id, err)
	}
	tree, err := fhirpath.DecodeJSON(body)
	if err != nil {
		return nil, fmt.Errorf("decode %s/%s: %w", typ, id, err)
	}
	p := &prepared{wr: &store.Write{Type: typ, ID: id, LastUpdated: now, JSON: body}}
	var invalid, indexErr, hookErr error
	work := startParallel(2, func(i int) {
		switch i {
		case 0:
			invalid = a.validateEncoded(ctx, typ, body, tree)
		case 1:
			if obj, ok := tree.(map[string]any); ok {
				p.wr.Index, indexErr = a.svc.index.Index(typ, obj)
			}
			if indexErr == nil && a.svc.hooked(typ) {
				p.res, hookErr = fhirjson.UnmarshalAs(body, typ)
			}
		}
	})
	work.wait(0)
	work.wait(1)
	work.stop()
	switch {
	case invalid != nil:
		return nil, invalid
	case indexErr != nil:
		return nil, fmt.Errorf("index %s/%s: %w", typ, id, indexErr)
	case hookErr != nil:
		return nil, fmt.Errorf("hooks of %s/%s: %w", typ, id, hookErr)
	}
	return p, nil
}

// stampable reports whether res carries none of what the server stamps on
// a version it writes (id, meta.versionId, meta.lastUpdated), so that
// validating the stamped version finds what validating res would.
func stampable(res fhir.Resource) bool {
	if res.GetID() != "" {
		return false
	}
	meta := res.GetMeta()
	return meta == nil || meta.VersionId == nil && meta.LastUpdated == nil
}

// prepare makes the create of res, a resource of typ already checked,
// ready to write as version 1 of a new resource, with the copy the hooks
// of its type see, if any: decoded now, so that the unit of work does not.
func (s *service) prepare(ctx context.Context, typ string, res fhir.Resource) (*prepared, error) {
	wr, err := s.encode(typ, newID(), res, 0, s.timestamp(ctx))
	if err != nil {
		return nil, err
	}
	p := &prepared{wr: wr}
	if s.hooked(typ) {
		if p.res, err = fhirjson.UnmarshalAs(wr.JSON, typ); err != nil {
			return nil, fmt.Errorf("hooks of %s/%s: %w", typ, wr.ID, err)
		}
	}
	return p, nil
}
