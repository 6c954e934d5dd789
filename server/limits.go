package server

import (
	"context"
	"net/http"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"carefhir/fhir/canonical"
	"carefhir/fhir/patch"
	"carefhir/fhir/search"
)

// Limits bound what one request may cost, so that no request, however
// written, holds the server's CPU, memory or store for long. docs/limits.md
// lists them with their defaults, flags and answers. A zero field takes
// its default.
type Limits struct {
	// Deadline bounds the time a request's work may take: its context is
	// cancelled then, which stops its queries on either engine. Default
	// DefaultDeadline.
	Deadline time.Duration
	// UnitOfWork bounds the time one unit of work (a transaction Bundle,
	// a batch entry, a conditional create or update) may run inside the store, where
	// on SQLite it holds the single writer. Default DefaultUnitOfWork.
	UnitOfWork time.Duration
	// Search bounds search plans (parameters, ORed values, chain depth,
	// _elements, includes, _count).
	Search search.Limits
	// PatchOperations bounds the operations of one patch; the patched
	// resource is bounded by the body limit.
	PatchOperations int
	// BundleEntries bounds the entries of a transaction or batch Bundle.
	BundleEntries int
	// BundleReads bounds the bytes the GET entries of one transaction or
	// batch return, summed: each search may return a page of a thousand
	// resources and their includes, and a Bundle may hold ten thousand of
	// them, which its response would hold in memory at once. Default
	// DefaultBundleReads.
	BundleReads int
	// CanonicalVersions bounds the stored resources of one canonical url
	// read to find the newest, when a ValueSet or CodeSystem is named
	// without a version ($expand, $validate-code, :in, a ValueSet's
	// imports): each is read whole to compare versions, so a url stored
	// in thousands of versions would cost every such request all of them.
	// Past it, the url must be named with its version. Default
	// DefaultCanonicalVersions. Care coordination bounds the
	// Questionnaires of a url so (care.Config.CanonicalVersions): a host
	// gives it this limit.
	CanonicalVersions int
	// MetaInUse bounds the distinct profiles, tags and security labels
	// that $meta on a type or on the system lists: the answer holds them
	// all, and an engine reading them from an index (SQLite; MongoDB where
	// the operator indexes them) reads one each. Past it, the answer is
	// 422 too-costly. Default DefaultMetaInUse.
	MetaInUse int
	// LargeBodies bounds how many requests with a body over LargeBody
	// bytes (or of unknown length) are served at once; others wait for a
	// turn within their deadline. Decoding, validating and patching a
	// large body costs CPU in proportion to it, so a few clients sending
	// large bodies cannot take every core from the small requests of the
	// others. Default: half the cores, at least one.
	LargeBodies int
}

// LargeBody is the body size from which a request counts against
// Limits.LargeBodies: larger than any single resource of care
// coordination, smaller than bulk loads.
const LargeBody = 256 << 10

// Defaults of Limits.
const (
	DefaultDeadline      = 30 * time.Second
	DefaultUnitOfWork    = 15 * time.Second
	DefaultBundleEntries = 10000
	DefaultBundleReads   = 64 << 20
	// DefaultCanonicalVersions is far above the versions of a definition
	// a network publishes, yet reads a bounded few megabytes; care
	// coordination's Questionnaires default to it too.
	DefaultCanonicalVersions = canonical.DefaultMostVersions
	// DefaultMetaInUse is far above the labels a care-coordination
	// network uses, yet reads and answers a bounded few.
	DefaultMetaInUse = 1000
)

func (l Limits) withDefaults() Limits {
	if l.Deadline <= 0 {
		l.Deadline = DefaultDeadline
	}
	if l.UnitOfWork <= 0 {
		l.UnitOfWork = DefaultUnitOfWork
	}
	if l.BundleEntries <= 0 {
		l.BundleEntries = DefaultBundleEntries
	}
	if l.BundleReads <= 0 {
		l.BundleReads = DefaultBundleReads
	}
	if l.CanonicalVersions <= 0 {
		l.CanonicalVersions = DefaultCanonicalVersions
	}
	if l.MetaInUse <= 0 {
		l.MetaInUse = DefaultMetaInUse
	}
	if l.LargeBodies <= 0 {
		l.LargeBodies = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if l.PatchOperations <= 0 {
		l.PatchOperations = patch.DefaultLimits.Operations
	}
	return l
}

// deadlineContext ends at its deadline, or when its parent ends, or when
// it is stopped, as the context of context.WithDeadline and its cancel do;
// but it makes that context (a timer, a channel, an entry in the parent's
// children) only once something asks whether it has ended: Done (a store
// query) or Err. Many requests never ask (a read answered from the
// store's memory, the CapabilityStatement) and paid for all of it.
type deadlineContext struct {
	context.Context // the parent
	deadline        time.Time

	mu      sync.Mutex
	stopped bool
	timed   atomic.Pointer[timedContext] // set once, under mu
}

type timedContext struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func (c *deadlineContext) Deadline() (time.Time, bool) {
	if d, ok := c.Context.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *deadlineContext) Done() <-chan struct{} { return c.timer().ctx.Done() }

func (c *deadlineContext) Err() error { return c.timer().ctx.Err() }

// Value asks the timed context once there is one, so that a context
// derived with cancel hangs on its channel as a child, without a goroutine
// of its own to watch it.
func (c *deadlineContext) Value(key any) any {
	if t := c.timed.Load(); t != nil {
		return t.ctx.Value(key)
	}
	return c.Context.Value(key)
}

// timer returns the timed context, made on the first call: cancelled at
// once if c was stopped before.
func (c *deadlineContext) timer() *timedContext {
	if t := c.timed.Load(); t != nil {
		return t
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.timed.Load(); t != nil {
		return t
	}
	ctx, cancel := context.WithDeadline(c.Context, c.deadline)
	if c.stopped {
		cancel()
	}
	t := &timedContext{ctx: ctx, cancel: cancel}
	c.timed.Store(t)
	return t
}

// stop ends c as the request has: the cancel of context.WithDeadline.
func (c *deadlineContext) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	if t := c.timed.Load(); t != nil {
		t.cancel()
	}
}

// takeTurns serves at most n requests with large bodies at a time. A
// request that does not get a turn before its deadline is 503.
func takeTurns(n int) gin.HandlerFunc {
	turns := make(chan struct{}, n)
	return func(c *gin.Context) {
		if c.Request.ContentLength >= 0 && c.Request.ContentLength <= LargeBody {
			c.Next()
			return
		}
		select {
		case turns <- struct{}{}:
			defer func() { <-turns }()
			c.Next()
		case <-c.Request.Context().Done():
			c.Error(c.Request.Context().Err())
			c.Abort()
		}
	}
}

// checkQuery refuses a query string that does not parse (a bad %-escape,
// a ';', more parameters than net/url reads) with 400: read leniently, it
// would lose criteria and answer more than was asked for.
func checkQuery(c *gin.Context) {
	if c.Request.URL.RawQuery == "" {
		c.Next()
		return
	}
	query, err := url.ParseQuery(c.Request.URL.RawQuery)
	if err != nil {
		c.Error(errorf(http.StatusBadRequest, "invalid", "the query string does not parse: %v", trimURLError(err)))
		c.Abort()
		return
	}
	st := stateOf(c)
	st.rawQuery, st.query = c.Request.URL.RawQuery, query
	c.Next()
}

// trimURLError keeps the reason of a net/url error, without the echo of a
// possibly long query.
func trimURLError(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// searchOptions are the parse options of a search under the limits.
func (a *api) searchOptions(strict bool, base string) search.Options {
	return search.Options{Strict: strict, Base: base, Unindexed: a.cfg.BaseURL == "", Limits: a.cfg.Limits.Search}
}

// patchLimits are the limits of a patch: its result is held to the body
// limit, as an update's body is.
func (a *api) patchLimits() patch.Limits {
	return patch.Limits{Operations: a.cfg.Limits.PatchOperations, ResultBytes: a.cfg.MaxBodyBytes}
}

// deadlineError is the answer to a request stopped at its deadline d (0
// when not known).
func deadlineError(d time.Duration) *Error {
	within := "its deadline"
	if d > 0 {
		within += " of " + d.String()
	}
	e := errorf(http.StatusServiceUnavailable, "too-costly", "the request did not finish within %s: narrow it, or try again later", within)
	e.Header = http.Header{"Retry-After": {"5"}}
	return e
}
