package server

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/fhir/fhirpath"
	"carefhir/store"
)

// prepared is a create made ready before it takes the store's writer:
// the version to put, encoded and indexed, the resource the write hooks
// of its type see (nil when none applies), and its validation, which may
// still be running (nil when it is done or there is none).
type prepared struct {
	wr    *store.Write
	res   fhir.Resource
	check *check
	// created marks a write that creates its resource (ext.Change.Created):
	// a create, or one over no version or a deletion.
	created bool
}

// settle returns the outcome of p's validation if it refuses p, else err:
// a refusal by validation comes first, whatever else went wrong once the
// write was prepared.
func (p *prepared) settle(err error) error {
	if p.check != nil {
		if invalid := p.check.wait(); invalid != nil {
			return invalid
		}
	}
	return err
}

// check is a validation running on a goroutine of its own.
type check struct {
	done chan struct{}
	err  error
}

func startCheck(validate func() error) *check {
	c := &check{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer func() {
			// A panic here would end the process, not just the request.
			if v := recover(); v != nil {
				c.err = fmt.Errorf("validation panicked: %v\n%s", v, debug.Stack())
			}
		}()
		c.err = validate()
	}()
	return c
}

// wait returns the outcome of the validation once it has run. It may be
// called from any goroutine, any number of times.
func (c *check) wait() error {
	<-c.done
	return c.err
}

// prepareCreate makes the create of res, a resource of typ as a client
// sent it, ready to write as version 1 of a new resource: the work of a
// create that needs no store, done in the request before it queues for
// the writer. The version is stamped and encoded once, and its JSON
// decoded once for both validation and the search index. Validation runs
// on a goroutine of its own, beside the index, the copy hooks see and,
// where the engine can begin a write before it is kept, the write itself
// (see service.create). An invalid resource is refused (422) and nothing
// is written.
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
	p := &prepared{wr: &store.Write{Type: typ, ID: id, LastUpdated: now, JSON: body, Method: http.MethodPost}, created: true}
	if a.validating() {
		p.check = startCheck(func() error { return a.validateEncoded(ctx, typ, body, tree) })
	}
	if obj, ok := tree.(map[string]any); ok {
		if p.wr.Index, err = a.svc.index.Index(typ, obj); err != nil {
			return nil, p.settle(fmt.Errorf("index %s/%s: %w", typ, id, err))
		}
	}
	if a.svc.hooked(typ) {
		if p.res, err = fhirjson.UnmarshalAs(body, typ); err != nil {
			return nil, p.settle(fmt.Errorf("hooks of %s/%s: %w", typ, id, err))
		}
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
	wr, err := s.encode(typ, newID(), res, 0, s.timestamp(ctx), http.MethodPost)
	if err != nil {
		return nil, err
	}
	p := &prepared{wr: wr, created: true}
	if s.hooked(typ) {
		if p.res, err = fhirjson.UnmarshalAs(wr.JSON, typ); err != nil {
			return nil, fmt.Errorf("hooks of %s/%s: %w", typ, wr.ID, err)
		}
	}
	return p, nil
}
