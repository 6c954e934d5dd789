package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"carefhir/care/calendar"
	"carefhir/fhir/search"
	"carefhir/server/access"
	"carefhir/store"
)

// NewIndexer returns the indexer the server extracts search values with:
// the official search parameters of the served types and the host's own
// (params, JSON SearchParameters such as those of care coordination),
// evaluated with FHIRPath. baseURL is the server's public base
// (Config.BaseURL): absolute references under it are indexed as local
// ones. Every indexer of one store must be given the same params: a
// parameter one of them leaves out is missing from what it writes.
// FHIRPath's now() and today() in an expression are the UK's, as in
// validation.
func NewIndexer(baseURL string, params ...[]byte) (*search.Indexer, error) {
	return newIndexer(baseURL, calendar.Clock(nil, nil), params...)
}

// newIndexer is NewIndexer with the clock FHIRPath's now() and today()
// read (calendar.Clock).
func newIndexer(baseURL string, clock func() time.Time, params ...[]byte) (*search.Indexer, error) {
	reg, err := search.Load(servedTypes)
	if err != nil {
		return nil, err
	}
	reg.Restrict("AuditEvent", access.AuditSearchParams)
	for _, p := range params {
		if err := reg.Define(p); err != nil {
			return nil, err
		}
	}
	ix := search.NewIndexer(reg, search.FHIRPathClock(clock), baseURL)
	if len(ix.Failed) > 0 {
		return nil, fmt.Errorf("search parameter %s: %s", ix.Failed[0].ID, ix.Failed[0].Reason)
	}
	return ix, nil
}

// Progress reports how far a reindex has come: done of total resources of
// typ (total is -1 when the engine cannot count).
type Progress func(typ string, done, total int)

// Reindex rebuilds the search values of every current resource of the
// served types in st, as the server extracts them today: run it after the
// search definitions change. Resources written meanwhile are indexed by
// their write and skipped here. It returns the number of resources
// reindexed.
func Reindex(ctx context.Context, st store.Store, ix *search.Indexer, progress Progress) (int, error) {
	r, ok := st.(store.Reindexer)
	if !ok {
		return 0, errors.New("reindex: this storage engine cannot rebuild its index in place")
	}
	if progress == nil {
		progress = func(string, int, int) {}
	}
	n := 0
	for _, typ := range servedTypes {
		total := -1
		if f, ok := st.(store.Finder); ok {
			page, err := f.Find(ctx, store.Query{Type: typ, Total: store.TotalAccurate})
			if err != nil {
				return n, fmt.Errorf("reindex %s: %w", typ, err)
			}
			total = page.Total
		}
		done := 0
		progress(typ, done, total)
		err := r.Scan(ctx, typ, func(v *store.Version) error {
			values, err := ix.IndexJSON(typ, v.JSON)
			if err != nil {
				return fmt.Errorf("%s/%s: %w", typ, v.ID, err)
			}
			var conflict *store.ConflictError
			if err := r.Reindex(ctx, v, values); err != nil && !errors.As(err, &conflict) {
				return err
			}
			done++
			n++
			if done%100 == 0 {
				progress(typ, done, total)
			}
			return ctx.Err()
		})
		if err != nil {
			return n, fmt.Errorf("reindex %s: %w", typ, err)
		}
		if f, ok := st.(reindexFinisher); ok {
			if err := f.FinishReindex(ctx, typ); err != nil {
				return n, err
			}
		}
		progress(typ, done, total)
	}
	return n, nil
}

// reindexFinisher is an engine that keeps summaries of a type's search
// values (such as the widest date of each parameter) that writes only ever
// grow, and recomputes them once every resource of the type is reindexed.
type reindexFinisher interface {
	FinishReindex(ctx context.Context, typ string) error
}
