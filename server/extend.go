package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/fhir/search"
	ext "carefhir/operation"
	"carefhir/server/access"
	"carefhir/store"
)

// registerExtensions serves the operations of the host (Config.Operations)
// through the same dispatcher as the server's own.
func (a *api) registerExtensions() {
	for _, op := range a.cfg.Operations {
		a.addOperation(operation{
			name:            op.Name,
			definition:      op.Definition,
			typeDefinitions: op.TypeDefinitions,
			levels:          level(op.Levels),
			types:           op.Types,
			idempotent:      op.Idempotent,
			rawBody:         op.RawBody,
			handle:          a.runOperation(op),
		})
	}
}

// runOperation returns the handler of op: it reads the invocation from the
// request, invokes op with the request's context and renders its result.
func (a *api) runOperation(op ext.Operation) func(*gin.Context, invocation) {
	return func(c *gin.Context, where invocation) {
		inv := &ext.Invocation{Type: where.Type, ID: where.ID, Query: c.Request.URL.Query(), Base: a.baseURL(c), Handling: preference(c, "handling"), Store: &opStore{a: a, c: c}}
		_, inv.RespondAsync = prefers(c, "respond-async")
		post := c.Request.Method == http.MethodPost
		if op.RawBody && post && c.Request.ContentLength != 0 {
			inv.Body, inv.ContentType = c.Request.Body, c.GetHeader("Content-Type")
		} else if post && !op.RawBody {
			empty, err := emptyBody(c)
			if err != nil {
				c.Error(err)
				return
			}
			if !empty {
				res, err := operationResource(c)
				if err != nil {
					c.Error(err)
					return
				}
				if p, ok := res.(*fhir.Parameters); ok {
					inv.Parameters = p
				} else {
					inv.Resource = res
				}
			}
		}
		ctx, _ := withWarnings(c.Request.Context())
		if op.Complete {
			ctx = access.Unfiltered(ctx)
		}
		res, err := op.Invoke(ctx, inv)
		if err != nil {
			if oe := fromOperationError(err); oe != nil {
				err = oe
			}
			c.Error(err)
			return
		}
		status := res.Status
		if status == 0 {
			status = http.StatusOK
		}
		for k, v := range res.Header {
			c.Header(k, v)
		}
		if res.Location != "" {
			c.Header("Location", a.baseURL(c)+"/"+res.Location)
		}
		if res.Resource == nil && res.Body != nil {
			c.Data(status, res.ContentType, res.Body)
			return
		}
		if res.Resource == nil && res.Stream != nil {
			writeStream(c, status, res.Stream)
			return
		}
		if res.Resource == nil {
			c.Status(status)
			c.Writer.WriteHeaderNow()
			return
		}
		body := res.JSON
		if body == nil {
			var err error
			if body, err = fhirjson.Marshal(res.Resource); err != nil {
				c.Error(err)
				return
			}
		}
		writeFHIR(c, status, body)
	}
}

// writeStream writes the FHIR JSON resource read from r as the answer,
// copying it unless the client asked for XML or pretty JSON, which are
// made of the whole resource.
func writeStream(c *gin.Context, status int, r io.Reader) {
	if cl, ok := r.(io.Closer); ok {
		defer cl.Close()
	}
	mt := stateOf(c).mediaType
	if xmlTypes[mt] || prettyAsked(c) {
		body, err := io.ReadAll(r)
		if err != nil {
			c.Error(fmt.Errorf("reading the answer of an operation: %w", err))
			return
		}
		writeFHIR(c, status, body)
		return
	}
	c.Header("Content-Type", mimeFHIRJSON+"; charset=utf-8")
	c.Status(status)
	if _, err := io.Copy(c.Writer, r); err != nil {
		// The status is sent: the client sees a truncated body.
		c.Error(fmt.Errorf("streaming the answer of an operation: %w", err))
	}
}

// opStore is the ext.Store of operations and hooks: the service's
// store, decided by the access layer, and its write path (validation,
// hooks, versioning); bound to a unit of work when tx is set.
type opStore struct {
	a  *api
	c  *gin.Context // the request the operation answers
	tx store.Tx
	// ends are the functions to run once the unit of work of tx has
	// ended (AtEnd).
	ends *ends
}

var _ ext.Store = (*opStore)(nil)

func (s *opStore) reader() store.Reader {
	if s.tx != nil {
		return s.tx
	}
	return s.a.svc.store
}

func (s *opStore) Read(ctx context.Context, typ, id string) (*store.Version, error) {
	return s.reader().Read(ctx, typ, id)
}

func (s *opStore) Search(ctx context.Context, typ string, params url.Values) (*store.Page, error) {
	q, err := s.query(typ, params)
	if err != nil {
		return nil, err
	}
	return s.Find(ctx, q)
}

// query parses an operation's search strictly. An operation asking for
// the ids alone (_elements=id) gets versions without bodies, which the
// engine then does not read.
func (s *opStore) query(typ string, params url.Values) (store.Query, error) {
	plan, err := s.a.search.Parse(typ, params, search.Options{Strict: true, Base: s.a.cfg.BaseURL})
	if err != nil {
		return store.Query{}, searchError(err)
	}
	plan.Query.IDsOnly = slices.Equal(plan.Elements, []string{"id"})
	return plan.Query, nil
}

// eachPage is how many matches Each reads at a time: few enough pages
// that an engine's work per page is small beside reading the matches,
// small enough that a page's bodies are a few megabytes. Without their
// bodies, ten times as many make a page of that size.
const (
	eachPage    = 5000
	eachIDsPage = 50000
)

func (s *opStore) Each(ctx context.Context, typ string, params url.Values, fn func(*store.Version) error) error {
	q, err := s.query(typ, params)
	if err != nil {
		return err
	}
	q.Unordered, q.Count = true, eachPage
	if q.IDsOnly {
		q.Count = eachIDsPage
	}
	for {
		page, err := s.Find(ctx, q)
		if err != nil {
			return err
		}
		for _, v := range page.Matches {
			if err := fn(v); err != nil {
				return err
			}
		}
		if page.Next == "" {
			return nil
		}
		q.Cursor = page.Next
	}
}

func (s *opStore) Find(ctx context.Context, q store.Query) (*store.Page, error) {
	f, ok := s.reader().(store.Finder)
	if !ok {
		return nil, errorf(http.StatusNotImplemented, "not-supported", "this storage engine does not search yet")
	}
	page, err := f.Find(ctx, q)
	if errors.Is(err, errors.ErrUnsupported) && s.tx != nil {
		return s.searchPage(ctx, q, err)
	}
	return page, err
}

// searchPage answers q in a unit of work whose engine cannot merge the
// unit's writes into a whole search plan (err): a single page in id order,
// which Search answers with those writes, is answered so, as a hook
// looking up a resource that the same transaction wrote needs. Any other
// plan, or a page with more after it, fails with err.
func (s *opStore) searchPage(ctx context.Context, q store.Query, err error) (*store.Page, error) {
	if q.Count == 0 || q.Cursor != "" || q.Total != store.TotalNone || len(q.Sort) > 0 || len(q.Include) > 0 || len(q.RevInclude) > 0 {
		return nil, err
	}
	one := q
	one.Count++
	found, serr := s.tx.Search(ctx, one)
	switch {
	case serr != nil:
		return nil, serr
	case len(found) > q.Count:
		return nil, err
	}
	return &store.Page{Matches: found, Total: -1}, nil
}

// checkWrite applies to res what the REST API checks of a body written.
func (s *opStore) checkWrite(ctx context.Context, res fhir.Resource) error {
	if err := checkMandatory(res); err != nil {
		return err
	}
	return s.a.validateWrite(ctx, res)
}

// track keeps a write of s among those under way, as trackWrites does for
// a request: Create, Update and Transact are also called outside any (see
// Config.Attach). A store in a unit of work is kept already, by the
// request or the Transact that began the unit.
func (s *opStore) track() (end func()) {
	if s.tx != nil {
		return func() {}
	}
	return s.a.svc.writes.Begin()
}

func (s *opStore) Create(ctx context.Context, res fhir.Resource) (*store.Version, error) {
	defer s.track()()
	if err := s.checkWrite(ctx, res); err != nil {
		return nil, err
	}
	typ := res.ResourceType()
	if s.tx == nil {
		p, err := s.a.svc.prepare(ctx, typ, res)
		if err != nil {
			return nil, err
		}
		v, _, err := s.a.svc.create(ctx, p, nil)
		return v, err
	}
	return s.a.svc.createIn(ctx, s.tx, typ, newID(), res)
}

func (s *opStore) Update(ctx context.Context, res fhir.Resource, ifMatch int64) (*store.Version, error) {
	defer s.track()()
	typ, id := res.ResourceType(), res.GetID()
	if err := checkID(id, typ+".id"); err != nil {
		return nil, err
	}
	if err := s.checkWrite(ctx, res); err != nil {
		return nil, err
	}
	if s.tx == nil {
		v, _, err := s.a.svc.update(ctx, typ, id, res, ifMatch)
		return v, err
	}
	v, _, err := s.a.svc.updateIn(ctx, s.tx, typ, id, res, ifMatch)
	return v, err
}

func (s *opStore) Transact(ctx context.Context, fn func(ext.Store) error) error {
	if s.tx != nil {
		return fn(s)
	}
	defer s.track()()
	return s.a.svc.transactEnding(ctx, func(tx store.Tx) error {
		return fn(&opStore{a: s.a, c: s.c, tx: tx, ends: s.a.svc.unitEnds(tx)})
	})
}

// AtEnd runs fn once the unit of work s is bound to has ended, told
// whether it committed, and reports whether s is bound to one: for a hook
// that keeps, outside the store, what follows from the unit's writes (the
// Subscriptions notify matches writes against), to change it only once
// they are kept. fn must not use the unit, which is over.
func (s *opStore) AtEnd(fn func(committed bool)) bool {
	return s.addToEnd(func(e *ends) { e.fns = append(e.fns, fn) })
}

// BeforeEnd runs fn in the unit of work s is bound to, after its last
// write and before it commits, and reports whether s is bound to one: for
// a hook that must read what the whole unit writes, which a transaction's
// delete, made before its other entries, cannot see when its hook runs.
// fn may write through s; an error from it fails the unit, as one from the
// hook would.
func (s *opStore) BeforeEnd(fn func() error) bool {
	return s.addToEnd(func(e *ends) { e.last = append(e.last, fn) })
}

// addToEnd adds, with add, to what the unit of work s is bound to runs
// at its end, and reports whether s is bound to one.
func (s *opStore) addToEnd(add func(*ends)) bool {
	if s.ends == nil {
		return false
	}
	s.ends.mu.Lock()
	defer s.ends.mu.Unlock()
	add(s.ends)
	return true
}

func (s *opStore) Transaction(ctx context.Context, b *fhir.Bundle) (*fhir.Bundle, error) {
	if s.c == nil {
		return nil, errorf(http.StatusNotImplemented, "not-supported", "a transaction Bundle is applied only in answer to a request")
	}
	js, err := fhirjson.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encoding a transaction Bundle: %w", err)
	}
	tb, err := s.a.parseBundle(mimeFHIRJSON, js, s.a.baseURL(s.c))
	if err != nil {
		return nil, err
	}
	if tb.kind != "transaction" {
		return nil, errorf(http.StatusBadRequest, "invalid", "a Bundle of type %s is not a transaction", tb.kind).at("Bundle.type")
	}
	// The response entries carry no resources: an operation that wants
	// them reads them, and a large import keeps only what it reports.
	var entries [][]byte
	if s.tx == nil {
		entries, err = s.a.transaction(ctx, s.c, tb.entries, "minimal")
	} else {
		for _, e := range tb.entries {
			if e.err != nil {
				return nil, entryFailure(e, e.err)
			}
		}
		var enc *entryEncoder
		enc, err = s.a.transactionIn(ctx, s.c, s.tx, tb.entries, false, "minimal")
		entries, err = transactionResult(enc, err)
	}
	if err != nil {
		return nil, err
	}
	out, err := json.Marshal(bundle{ResourceType: "Bundle", ID: newID(), Type: "transaction-response",
		Meta: bundleMeta{LastUpdated: formatInstant(time.Now())}})
	if err != nil {
		return nil, err
	}
	res, err := fhirjson.UnmarshalAs(withEntries(out, entries), "Bundle")
	if err != nil {
		return nil, fmt.Errorf("decoding a transaction-response: %w", err)
	}
	return res.(*fhir.Bundle), nil
}

// writtenWithWarnings is the OperationOutcome of a create or update whose
// hooks reported warnings, or nil when they reported none.
func writtenWithWarnings(ctx context.Context, status int, v *store.Version) []byte {
	ws := warningsOf(ctx)
	if len(ws) == 0 {
		return nil
	}
	issues := append([]Issue{{Severity: "information", Code: "informational",
		Diagnostics: http.StatusText(status) + ": " + v.Type + "/" + v.ID + " version " + strconv.FormatInt(v.VersionID, 10)}}, ws...)
	return newOutcome(issues...).marshal()
}

// collectWarnings makes the hooks run by a request report their warnings
// to it. Only the answer to a create, update or patch carries them (see
// writeResult), so other requests collect none.
func collectWarnings(c *gin.Context) {
	switch c.Request.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		ctx, _ := withWarnings(c.Request.Context())
		c.Request = c.Request.WithContext(ctx)
	}
	c.Next()
}
