package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/gin-gonic/gin"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/store"
)

// provenance is the Provenance a client sent with a write in the
// X-Provenance header (FHIR R4 RESTful API, 3.1.0.13): it is stored with
// the write, in its unit of work, targeting the version written.
type provenance struct {
	res *fhir.Provenance
	mu  sync.Mutex
	// writtenIn is the unit of work it was written in: an engine may run
	// a unit again (MongoDB's driver, on a transient error), after the
	// run that wrote it was rolled back.
	writtenIn store.Writer
}

type provenanceKey struct{}

// provenanceFrom returns the X-Provenance of ctx's request not yet
// written, or nil.
func provenanceFrom(ctx context.Context) *provenance {
	p, _ := ctx.Value(provenanceKey{}).(*provenance)
	return p
}

// readProvenance takes the X-Provenance header of a create, update, patch
// or delete of one resource: a Provenance in JSON, or 400. Batches and
// transactions carry their Provenance as entries of the Bundle instead.
func (a *api) readProvenance(c *gin.Context) {
	header := c.GetHeader("X-Provenance")
	if header == "" {
		c.Next()
		return
	}
	switch c.Request.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		c.Next()
		return
	}
	if c.Request.URL.Path == "/fhir" || c.Request.URL.Path == "/fhir/" {
		c.Error(errorf(http.StatusBadRequest, "not-supported", "X-Provenance applies to the write of one resource: a Bundle carries its Provenance as an entry").at("X-Provenance"))
		c.Abort()
		return
	}
	res, err := fhirjson.UnmarshalAs([]byte(header), "Provenance")
	if err != nil {
		c.Error(errorf(http.StatusBadRequest, "invalid", "the X-Provenance header is not a Provenance resource in JSON: %v", err).at("X-Provenance"))
		c.Abort()
		return
	}
	ctx := context.WithValue(c.Request.Context(), provenanceKey{}, &provenance{res: res.(*fhir.Provenance)})
	c.Request = c.Request.WithContext(ctx)
	c.Next()
}

// writeProvenance writes the X-Provenance of ctx's request, if any and not
// written in w yet, targeting the version v of wr, in w: the unit of work of
// the write. The Provenance is decided and validated like any write of
// the client's, and runs the hooks of Provenances, as one the client
// creates itself (so Subscriptions to Provenances are notified of it).
func (s *service) writeProvenance(ctx context.Context, w store.Writer, wr *store.Write) error {
	p := provenanceFrom(ctx)
	if p == nil {
		return nil
	}
	p.mu.Lock()
	written := p.writtenIn == w
	p.writtenIn = w
	p.mu.Unlock()
	if written {
		return nil
	}
	res := p.res
	res.Target = []*fhir.Reference{{Reference: fhir.NewString(wr.Type + "/" + wr.ID + "/_history/" + strconv.FormatInt(wr.VersionID(), 10))}}
	if res.Recorded == nil {
		res.Recorded = fhir.NewInstant(formatInstant(wr.LastUpdated))
	}
	if s.validate != nil {
		if err := s.validate(ctx, res); err != nil {
			return provenanceRefused(err)
		}
	}
	pw, err := s.encode("Provenance", newID(), res, 0, wr.LastUpdated, http.MethodPost)
	if err != nil {
		return err
	}
	// Its own writeProvenance, in putHooked, finds it written.
	if err := s.putHooked(ctx, w, pw, res, true); err != nil {
		return fmt.Errorf("X-Provenance: %w", err)
	}
	return nil
}

// provenanceRefused says that an invalid Provenance came from the header.
func provenanceRefused(err error) error {
	if e, ok := err.(*Error); ok {
		for i := range e.Issues {
			e.Issues[i].Diagnostics = "X-Provenance: " + e.Issues[i].Diagnostics
		}
		return e
	}
	return err
}
