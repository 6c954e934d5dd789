package server

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"carefhir/server/access"
	"carefhir/store"
)

// beginRequest names the request, taking the client's X-Request-Id when it
// is well formed or making one, and echoes it so the request can be found
// in the logs. It gives the request a context that ends after d (see
// deadlineContext), so the handler's store calls stop (SQLite is
// interrupted, MongoDB gets maxTimeMS) when a request has cost its share,
// or when its client has gone; the answer is then 503 with Retry-After
// (see fromError). That context is the request's requestState.
func beginRequest(d time.Duration) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		id := c.Request.Header.Get("X-Request-Id")
		if !wellFormedRequestID(id) {
			id = newRequestID(start)
		}
		st := &requestState{id: id, start: start, budget: d}
		st.deadlineContext.Context, st.deadlineContext.deadline = c.Request.Context(), start.Add(d)
		defer st.stop()
		c.Request = c.Request.WithContext(st)
		c.Writer.Header()["X-Request-Id"] = []string{id}
		c.Next()
	}
}

// requestState is what the server keeps of one request beside Gin's:
// the request's context, which ends at its deadline, and the values the
// middleware hand to what follows them. They are held here rather than
// in the Gin context's map, which every request would allocate.
type requestState struct {
	deadlineContext
	access     access.Holder // the access state (audited, authenticate)
	id         string        // the request id (X-Request-Id)
	start      time.Time     // when the request began to be served
	budget     time.Duration // the length of the deadline, which a 503 names
	mediaType  string        // the answer's media type (negotiate); "" is FHIR JSON
	trailWrite bool          // the request would change the audit trail (audited)
	rawQuery   string        // the query string query was parsed from (queryOf)
	query      url.Values    // the parameters of rawQuery, shared and never changed
}

type requestStateKey struct{}

// Value answers for the request's state and its access state, and for
// anything else as the deadline's context does.
func (st *requestState) Value(key any) any {
	if key == (requestStateKey{}) {
		return st
	}
	if v, ok := st.access.Lookup(key); ok {
		return v
	}
	return st.deadlineContext.Value(key)
}

// stateOf returns the state of c's request: a zero one, not kept, for a
// request that beginRequest did not begin (none the router serves).
func stateOf(c *gin.Context) *requestState {
	if st, ok := c.Request.Context().Value(requestStateKey{}).(*requestState); ok {
		return st
	}
	return &requestState{}
}

// queryOf returns the parameters of c's query string, parsed once for the
// request (checkQuery refuses one that does not parse) rather than by each
// of the negotiation, the search and its links. The values are shared by
// every reader of the request: a caller that changes them clones them
// first (cloneValues).
func queryOf(c *gin.Context) url.Values {
	raw := c.Request.URL.RawQuery
	if raw == "" {
		return nil
	}
	st := stateOf(c)
	if st.query == nil || st.rawQuery != raw {
		// Unparsed yet, or the query string was rewritten since
		// (dropParams).
		st.query, _ = url.ParseQuery(raw)
		st.rawQuery = raw
	}
	return st.query
}

// requestIDOf returns the id of c's request.
func requestIDOf(c *gin.Context) string { return stateOf(c).id }

// trackWrites keeps every request that may write in writes while it
// runs, before any version it writes is stamped: a history answered
// meanwhile dates itself before the request began (see history). Requests
// that cannot write are left out, as holding a history's date back for
// them would only delay pollers (see mayWrite).
func (a *api) trackWrites(writes *store.InFlight) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !a.mayWrite(c) {
			c.Next()
			return
		}
		defer writes.Begin()()
		c.Next()
	}
}

// mayWrite reports whether a request may write a resource: not a GET or
// HEAD, a POST _search, a request outside the FHIR API that the host did
// not add (the token endpoint), or a POST of an operation the server lets
// be invoked with GET, which R4 allows only of an operation whose
// affectsState is false. Anything else is taken to write, operations the
// server does not know included.
func (a *api) mayWrite(c *gin.Context) bool {
	r := c.Request
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	switch c.FullPath() {
	case "/fhir/_search", "/fhir/:type/_search", "/fhir/:type/:id/:op/_search":
		return false
	case "/fhir/:type/:id/:op":
		if c.Param("op") == "_search" {
			return false // the search of a Patient's compartment
		}
	}
	if r.URL.Path != "/fhir" && !strings.HasPrefix(r.URL.Path, "/fhir/") && !a.hostRoute(r.URL.Path) {
		return false
	}
	if _, name, ok := operationPath(r.URL.Path); ok {
		op, known := a.operations[name]
		return !known || !op.idempotent
	}
	return true
}

// wellFormedRequestID reports whether a client's X-Request-Id may be
// echoed and logged: 1 to 64 of A-Z, a-z, 0-9, '-', '.' and '_'.
func wellFormedRequestID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch b := id[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '-', b == '.', b == '_':
		default:
			return false
		}
	}
	return true
}

// newRequestID returns a UUID version 7 (RFC 9562) naming a request begun
// at: the time in milliseconds, then random bits. It finds a request in the
// logs and the audit trail and guards nothing, so the bits come from the
// fast generator rather than the system's. Time-ordered, the ids the audit
// trail indexes (its entity:identifier rows, one per request) are added
// where the last one went, on a page SQLite has at hand; random ones landed
// each on a page of its own, so that every request wrote one more page to
// the WAL and the checkpoint (a third of the trail's CPU time with 1,000
// patients read at random). The bits are laid out here rather than by
// uuid.NewV7FromReader, whose reader puts each id's bytes on the heap.
func newRequestID(at time.Time) string {
	var u uuid.UUID
	binary.BigEndian.PutUint64(u[:8], uint64(at.UnixMilli())<<16|mrand.Uint64()&0xffff)
	binary.BigEndian.PutUint64(u[8:], mrand.Uint64())
	u[6] = 0x70 | u[6]&0x0f // version 7
	u[8] = 0x80 | u[8]&0x3f // the variant of RFC 9562
	return u.String()
}

// logRequests writes one structured line per request. It hands the line
// to the logger's handler itself: Logger.LogAttrs would look up its
// caller on every request, for a source line that would only ever name
// this function.
func logRequests(log *slog.Logger) gin.HandlerFunc {
	h := log.Handler()
	lines, _ := h.(requestLogger)
	return func(c *gin.Context) {
		c.Next()
		start := stateOf(c).start
		status := c.Writer.Status()
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		if lines != nil && level == slog.LevelInfo {
			end := time.Now()
			if lines.LogRequest(end, c.Request.Method, c.Request.URL.Path, status, end.Sub(start), requestIDOf(c)) {
				return
			}
		}
		ctx := context.WithoutCancel(c.Request.Context())
		if !h.Enabled(ctx, level) {
			return
		}
		end := time.Now()
		r := slog.NewRecord(end, level, "request", 0)
		r.AddAttrs(
			slog.String("method", c.Request.Method),
			slog.String("path", c.Request.URL.Path),
			slog.Int("status", status),
			slog.Duration("duration", end.Sub(start)),
			slog.String("request_id", requestIDOf(c)),
		)
		if status >= 500 && len(c.Errors) > 0 {
			// The client sees no internals; the log keeps the cause, found
			// by the request id the client was given.
			r.AddAttrs(slog.String("error", c.Errors[0].Err.Error()))
		}
		_ = h.Handle(ctx, r) // as Logger does, a line that cannot be written is let go
	}
}

// requestLogger is a log handler that writes the line of a request
// without a slog.Record, the bytes its Handle would write (ops/reqlog). It
// reports false when it did not, for the record to go through Handle.
type requestLogger interface {
	LogRequest(t time.Time, method, path string, status int, duration time.Duration, requestID string) bool
}

// recoverOutcome turns a panic into a 500 OperationOutcome, so a bug in one
// request never takes the server down or leaks a stack trace to the client.
func recoverOutcome(c *gin.Context) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			c.Errors = c.Errors[:0]
			c.Error(fmt.Errorf("panic: %v\n%s", p, debug.Stack()))
			writeErrors(c)
		}
	}()
	c.Next()
}

// renderErrors writes the first error a handler reported with c.Error as an
// OperationOutcome.
func renderErrors(c *gin.Context) {
	c.Next()
	writeErrors(c)
}

func writeErrors(c *gin.Context) {
	if len(c.Errors) == 0 || c.Writer.Written() {
		return
	}
	err := c.Errors[0].Err
	if st := stateOf(c); st.budget > 0 && c.Request.Context().Err() != nil {
		// Whatever the store answered once the request's context ended
		// (an interrupted statement, a cancelled cursor), the cause is
		// the deadline or the client's leaving.
		if status, _, _ := fromError(err); status >= http.StatusInternalServerError {
			err = deadlineError(st.budget)
			c.Errors[0].Err = fmt.Errorf("%w (stopped: %v)", err, c.Errors[0].Err)
		}
	}
	if st := stateOf(c); st.mediaType == "" {
		st.mediaType = errorType(c)
	}
	status, oo, header := fromError(err)
	for k, v := range header {
		c.Writer.Header()[k] = v
	}
	if status == http.StatusForbidden && c.GetBool(ctxBearer) {
		// RFC 6750 §3: a token that does not enable access to what was
		// asked is answered with a challenge naming why.
		c.Writer.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope"`)
	}
	writeFHIR(c, status, oo.marshal())
}

// limitBody bounds every request body; reading past the limit fails with
// *http.MaxBytesError, rendered as 413.
func limitBody(limit int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > limit {
			c.Error(&http.MaxBytesError{Limit: limit})
			c.Abort()
			return
		}
		if c.Request.Body != http.NoBody {
			// A request without a body (most GETs) has nothing to bound.
			c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
		}
		c.Next()
	}
}
