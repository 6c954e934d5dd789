package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	ext "carefhir/operation"
	"carefhir/server/access"
	"carefhir/store"
)

// hooked reports whether writes of typ run hooks.
func (s *service) hooked(typ string) bool {
	for _, h := range s.hooks {
		if h.Applies(typ) {
			return true
		}
	}
	return false
}

// unit runs fn in a unit of work when writes of typ run hooks, so that
// what the hooks derive is written with the write or not at all; else on
// the store itself.
func (s *service) unit(ctx context.Context, typ string, fn func(tx store.Tx) error) error {
	if !s.inUnit(ctx, typ) {
		return fn(s.store)
	}
	return s.transact(ctx, func(_ context.Context, tx store.Tx) error { return fn(tx) })
}

// inUnit reports whether unit runs a write of typ in a unit of work: when
// hooks run on it or it records a Provenance.
func (s *service) inUnit(ctx context.Context, typ string) bool {
	return s.hooked(typ) || provenanceFrom(ctx) != nil
}

// putHooked puts wr in w, running the Check of the hooks of its type
// before and their After once it is written, with w as their unit of
// work. The hooks see res, the resource of wr decoded from its JSON
// (decoded here when nil), and whether wr creates its resource (created:
// the writer knows, from the version it replaces).
func (s *service) putHooked(ctx context.Context, w store.Writer, wr *store.Write, res fhir.Resource, created bool) error {
	if !s.hooked(wr.Type) {
		if err := w.Put(ctx, wr); err != nil {
			return err
		}
		return s.writeProvenance(ctx, w, wr)
	}
	tx, ok := w.(store.Tx)
	if !ok {
		return fmt.Errorf("hooks of %s: a write outside a unit of work", wr.Type)
	}
	// The write is decided before any hook runs: a hook reads as the
	// server, and what its refusal says must not reach a requester who
	// may not make the write. Put decides it again, as it writes.
	if d, ok := w.(writeDecider); ok {
		if err := d.AllowWrite(ctx, wr); err != nil {
			return err
		}
	}
	ch := &ext.Change{Type: wr.Type, ID: wr.ID, Deleted: wr.Deleted, Created: created, AsRequester: asRequester}
	if !wr.Deleted && res == nil {
		var err error
		if res, err = fhirjson.UnmarshalAs(wr.JSON, wr.Type); err != nil {
			return fmt.Errorf("hooks of %s/%s: %w", wr.Type, wr.ID, err)
		}
	}
	if !wr.Deleted {
		ch.Resource = res
	}
	if written, ok := ctx.Value(writtenKey{}).(func(string) []*store.Version); ok {
		ch.Written = func(typ string) []*store.Version {
			return slices.DeleteFunc(written(typ), func(v *store.Version) bool { return v.Type == wr.Type && v.ID == wr.ID })
		}
	}
	for _, h := range s.hooks {
		if h.Check == nil || !h.Applies(wr.Type) {
			continue
		}
		hctx := actingFor(ctx, h)
		if err := h.Check(hctx, s.bind(tx), ch); err != nil {
			return hookError(h, err)
		}
	}
	if err := w.Put(ctx, wr); err != nil {
		return err
	}
	if err := s.writeProvenance(ctx, w, wr); err != nil {
		return err
	}
	ch.Version = wr.Version() // with the method that wrote it, which a notification shows
	for _, h := range s.hooks {
		if h.After == nil || !h.Applies(wr.Type) {
			continue
		}
		hctx := actingFor(ctx, h)
		warnings, err := h.After(hctx, s.bind(tx), ch)
		if err != nil {
			return hookError(h, err)
		}
		addWarnings(ctx, warnings)
	}
	return nil
}

// ends holds the functions to run once a run of a unit of work has ended
// (opStore.AtEnd), and those to run in it after its last write
// (opStore.BeforeEnd).
type ends struct {
	mu   sync.Mutex
	fns  []func(committed bool)
	last []func() error
}

// runLast runs the functions asked to run after the unit's last write, in
// the order they were asked for, and then those they asked for in turn,
// and stops at the first error, which fails the unit.
func (e *ends) runLast() error {
	for {
		e.mu.Lock()
		last := e.last
		e.last = nil
		e.mu.Unlock()
		if len(last) == 0 {
			return nil
		}
		for _, f := range last {
			if err := f(); err != nil {
				return err
			}
		}
	}
}

// unitEnds returns the functions to run once the unit of work of tx has
// ended; nil when it was not begun by transactEnding.
func (s *service) unitEnds(tx store.Tx) *ends {
	v, _ := s.ends.Load(tx)
	e, _ := v.(*ends)
	return e
}

// transactEnding runs fn in a unit of work of the store, whose hooks may
// ask for functions to run in it once fn has returned (opStore.BeforeEnd),
// and for functions to run once the unit has ended (opStore.AtEnd), and
// runs them then, told whether it committed: those of a run the engine
// gave up to run the unit again (after a conflict) are told it did not,
// as are those of a unit that failed or panicked.
func (s *service) transactEnding(ctx context.Context, fn func(tx store.Tx) error) error {
	var runs []*ends
	committed := false
	defer func() {
		for i, e := range runs {
			e.mu.Lock()
			fns := e.fns
			e.mu.Unlock()
			for _, f := range fns {
				f(committed && i == len(runs)-1)
			}
		}
	}()
	err := s.store.Transact(ctx, func(tx store.Tx) error {
		e := &ends{}
		runs = append(runs, e)
		s.ends.Store(tx, e)
		defer s.ends.Delete(tx)
		if err := fn(tx); err != nil {
			return err
		}
		return e.runLast()
	})
	committed = err == nil
	return err
}

// writeDecider is a writer that decides a write before it is made:
// access.Store and its units of work.
type writeDecider interface {
	AllowWrite(ctx context.Context, w *store.Write) error
}

type writtenKey struct{}

// withWritten returns ctx in which the hooks of a write see the versions
// that written returns as those the other writes of its transaction make
// (ext.Change.Written).
func withWritten(ctx context.Context, written func(typ string) []*store.Version) context.Context {
	return context.WithValue(ctx, writtenKey{}, written)
}

// actingFor returns ctx in which the reads and writes of h act for the
// server itself, recorded for the request of ctx.
func actingFor(ctx context.Context, h ext.Hook) context.Context {
	return access.ActingAs(ctx, access.SystemPrincipal(h.Name))
}

// asRequester returns ctx in which the store reads as the principal who
// asked for the request of ctx, recorded for that request.
func asRequester(ctx context.Context) context.Context {
	p := access.Requester(ctx)
	if p == nil {
		return ctx
	}
	return access.WithInteraction(access.ActingAs(ctx, p), access.InteractionRead)
}

// hookError returns the refusal or failure of a hook as the server reports
// it: an *ext.Error keeps its status and issues.
func hookError(h ext.Hook, err error) error {
	if oe := fromOperationError(err); oe != nil {
		return oe
	}
	return fmt.Errorf("hook %s: %w", h.Name, err)
}

// fromOperationError returns err as an *Error when it is an
// *ext.Error, else nil.
func fromOperationError(err error) *Error {
	var oe *ext.Error
	if !errors.As(err, &oe) {
		return nil
	}
	e := &Error{Status: oe.Status, Issues: issuesOf(oe.Issues)}
	if oe.RetryAfter > 0 {
		e.Header = http.Header{"Retry-After": {strconv.Itoa(oe.RetryAfter)}}
	}
	return e
}

func issuesOf(in []ext.Issue) []Issue {
	out := make([]Issue, len(in))
	for i, is := range in {
		out[i] = Issue{Severity: is.Severity, Code: is.Code, Diagnostics: is.Diagnostics, Expression: is.Expression}
	}
	return out
}

// warnings are the issues that hooks reported about the writes of one
// request, for the OperationOutcome it may answer with.
type warnings struct {
	mu     sync.Mutex
	issues []Issue
}

type warningsKey struct{}

// withWarnings returns ctx collecting the warnings of hooks.
func withWarnings(ctx context.Context) (context.Context, *warnings) {
	w := &warnings{}
	return context.WithValue(ctx, warningsKey{}, w), w
}

func addWarnings(ctx context.Context, issues []ext.Issue) {
	w, ok := ctx.Value(warningsKey{}).(*warnings)
	if !ok || len(issues) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.issues = append(w.issues, issuesOf(issues)...)
}

// warningsOf returns the warnings collected in ctx.
func warningsOf(ctx context.Context) []Issue {
	w, ok := ctx.Value(warningsKey{}).(*warnings)
	if !ok {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Issue(nil), w.issues...)
}
