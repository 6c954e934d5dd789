package server

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"carefhir/ops/cause"
	"carefhir/server/access"
	"carefhir/store"
)

// Route is a plain HTTP endpoint the host adds beside the FHIR API, such
// as the status and files of a bulk export: it is served behind the API's
// authentication, rate limits and audit, and its handler finds the
// request's principal with access.PrincipalFrom.
type Route struct {
	// Method is the HTTP method; a GET route answers HEAD as well.
	Method string
	// Path is absolute, under /fhir, such as /fhir/$export-status, and
	// does not end in a slash: a request's path under /fhir reaches the
	// routes without one (see trimTrailingSlash).
	Path    string
	Handler http.Handler
}

// registerRoutes serves the host's routes and hands the store of
// operations to what the host attaches.
func (a *api) registerRoutes(r *gin.Engine) {
	for _, rt := range a.cfg.Routes {
		if rt.Method == http.MethodGet {
			getAndHead(r, rt.Path, wrapHandler(rt.Handler))
			continue
		}
		r.Handle(rt.Method, rt.Path, wrapHandler(rt.Handler))
	}
	a.refuseOtherMethods(r)
	for _, attach := range a.cfg.Attach {
		attach(&opStore{a: a})
	}
}

// wrapHandler serves h, a plain HTTP handler, as a Gin handler, and hands
// the cause of a failure it records (cause.Record) to the request log.
func wrapHandler(h http.Handler) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, failure := cause.With(c.Request.Context())
		c.Request = c.Request.WithContext(ctx)
		h.ServeHTTP(c.Writer, c.Request)
		if err := failure(); err != nil {
			c.Error(err)
		}
	}
}

// refuseOtherMethods answers 405, with the methods served in Allow, the
// methods a host's path does not serve. Left to the router, a PUT or a
// POST of /fhir/$export-status would reach the API's routes of a type
// and be answered 404, as a type not served.
func (a *api) refuseOtherMethods(r *gin.Engine) {
	served := map[string][]string{}
	var paths []string
	for _, rt := range a.cfg.Routes {
		if served[rt.Path] == nil {
			paths = append(paths, rt.Path)
		}
		served[rt.Path] = append(served[rt.Path], rt.Method)
		if rt.Method == http.MethodGet {
			served[rt.Path] = append(served[rt.Path], http.MethodHead)
		}
	}
	for _, path := range paths {
		methods := served[path]
		allow := strings.Join(methods, ", ")
		refuse := func(c *gin.Context) {
			err := errorf(http.StatusMethodNotAllowed, "not-supported", "%s is not allowed on %s", c.Request.Method, path)
			err.Header = http.Header{"Allow": {allow}}
			c.Error(err)
		}
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			if !slices.Contains(methods, m) {
				r.Handle(m, path, refuse)
			}
		}
	}
}

// hostRoute reports whether the host added a route at path.
func (a *api) hostRoute(path string) bool {
	return slices.ContainsFunc(a.cfg.Routes, func(rt Route) bool { return rt.Path == path })
}

// VRead returns one version of a resource, decided by the access layer as
// a read: what a notification may carry of the version it is about.
func (s *opStore) VRead(ctx context.Context, typ, id string, version int64) (*store.Version, error) {
	return s.reader().VRead(ctx, typ, id, version)
}

// Allow reports, as an *access.Denied, whether the principal of ctx may do
// anything with perm on resources of typ: whether a Subscription's owner
// may read what it is about.
func (s *opStore) Allow(ctx context.Context, typ string, perm access.Perm) error {
	return s.a.guard.Allow(ctx, typ, perm)
}

// History returns a page of versions, decided by the access layer as a
// history read: how a bulk export finds the resources deleted since its
// _since.
func (s *opStore) History(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	return s.reader().History(ctx, q)
}

// Records returns the engine below the access layer, bound to the unit of
// work of s when it has one: for the server's own records that are not
// FHIR resources (a notification outbox, export jobs), written with the
// unit's writes or not at all, and never decided, audited or hooked.
func (s *opStore) Records() store.Tx {
	if s.tx == nil {
		return s.a.guard.Unwrap()
	}
	if u, ok := s.tx.(interface{ Unwrap() store.Tx }); ok {
		return u.Unwrap()
	}
	return s.tx
}
