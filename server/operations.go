package server

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"carefhir/fhir"
	"carefhir/server/access"
)

// level is where an operation can be invoked: on the system, on a type or
// on an instance (a bit set).
type level uint8

const (
	systemLevel level = 1 << iota
	typeLevel
	instanceLevel
)

// operation is one FHIR operation ($name) the API serves.
type operation struct {
	name       string // without the $
	definition string // canonical URL of its OperationDefinition
	// typeDefinitions names, by type, the OperationDefinition of the
	// operation on that type and its instances where it is not definition.
	typeDefinitions map[string]string
	levels          level
	// types restricts the type and instance levels to these resource types;
	// nil allows every served type.
	types []string
	// writes is set on an operation that writes the resource it is
	// invoked on, which is not served on a type the server alone writes.
	writes bool
	// idempotent operations may also be invoked with GET, their parameters
	// in the query string.
	idempotent bool
	// rawBody operations take a POST body that is not FHIR (a CSV file),
	// which the dispatcher leaves unread.
	rawBody bool
	// extra are parameters the operation takes beyond its definition's:
	// those of the links it answers, such as the cursor of a next page.
	extra  []string
	handle func(c *gin.Context, inv invocation)
	// params holds, by definition URL, the input parameters of each of
	// its bundled definitions, which invocations are checked against.
	params map[string][]defParam
}

// definitionOn returns the canonical URL of the operation's
// OperationDefinition on typ ("" for the system).
func (op operation) definitionOn(typ string) string {
	if d, ok := op.typeDefinitions[typ]; ok {
		return d
	}
	return op.definition
}

// servedOn reports whether the operation is served on typ and its
// instances.
func (op operation) servedOn(typ string) bool {
	return (op.types == nil || slices.Contains(op.types, typ)) && !(op.writes && access.ReadOnly(typ))
}

// invocation is where an operation was invoked: Type and ID are empty at the
// system level, ID is empty at the type level.
type invocation struct {
	Type, ID string
}

func (inv invocation) level() level {
	switch {
	case inv.Type == "":
		return systemLevel
	case inv.ID == "":
		return typeLevel
	}
	return instanceLevel
}

// addOperation registers op: it is dispatched by the routes that
// registerOperationRoutes wraps and listed in the CapabilityStatement.
func (a *api) addOperation(op operation) {
	if a.operations == nil {
		a.operations = make(map[string]operation)
	}
	op.params = map[string][]defParam{}
	for _, def := range append([]string{op.definition}, slices.Collect(maps.Values(op.typeDefinitions))...) {
		if params, ok := a.definedParams(def); ok {
			op.params[def] = params
		}
	}
	a.operations[op.name] = op
	a.caps.addOperation(op)
}

// registerOperationRoutes registers the POST routes that only operations
// use. GET operations, and POST on the system or a type, share their routes
// with interactions: those handlers are wrapped with orOperation.
func (a *api) registerOperationRoutes(g *gin.RouterGroup) {
	g.POST("/:type/:id", a.orOperation(nil))
	g.POST("/:type/:id/:op", a.orOperation(func(c *gin.Context) {
		if c.Param("op") != "_search" {
			c.Error(a.notAllowed(c))
			return
		}
		a.searchCompartment(c, "*")
	}))
}

// orOperation returns a handler that invokes the operation when the last
// path segment of the request names one ($name), and next otherwise; a nil
// next answers 405 for anything but an operation: the path exists, for
// other methods.
func (a *api) orOperation(next gin.HandlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		inv, name, ok := operationPath(c.Request.URL.Path)
		if !ok {
			if next == nil {
				c.Error(a.notAllowed(c))
				return
			}
			next(c)
			return
		}
		a.invoke(c, name, inv)
	}
}

// operationPath splits a path under /fhir into where an operation is
// invoked and its name: /fhir/$op, /fhir/Type/$op or /fhir/Type/id/$op.
func operationPath(path string) (invocation, string, bool) {
	rest, ok := strings.CutPrefix(path, "/fhir/")
	if !ok {
		return invocation{}, "", false
	}
	// Most paths name no operation: told by their last segment, before
	// the path is split.
	last := rest[strings.LastIndexByte(rest, '/')+1:]
	if !strings.HasPrefix(last, "$") {
		return invocation{}, "", false
	}
	name := last[1:]
	segs := strings.Split(rest, "/")
	switch len(segs) {
	case 1:
		return invocation{}, name, true
	case 2:
		return invocation{Type: segs[0]}, name, true
	case 3:
		return invocation{Type: segs[0], ID: segs[1]}, name, true
	}
	return invocation{}, "", false
}

// invoke checks that the operation exists at the level and on the type it
// was invoked and hands it the request.
func (a *api) invoke(c *gin.Context, name string, inv invocation) {
	op, ok := a.operations[name]
	if !ok || op.levels&inv.level() == 0 {
		c.Error(errorf(http.StatusNotFound, "not-supported", "operation $%s is not supported %s", truncate(name, 64), levelText(inv)))
		return
	}
	if inv.Type != "" && isServed(inv.Type) && !op.servedOn(inv.Type) {
		// Not served there, whatever the method, as allowedOn has it.
		c.Error(errorf(http.StatusNotFound, "not-supported", "operation $%s is not supported on %s", op.name, inv.Type))
		return
	}
	if c.Request.Method != http.MethodPost && !(op.idempotent && (c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead)) {
		err := errorf(http.StatusMethodNotAllowed, "not-supported", "operation $%s must be invoked with POST", op.name)
		err.Header = http.Header{"Allow": {"POST"}}
		c.Error(err)
		return
	}
	if _, async := prefers(c, "respond-async"); async && c.Request.Method == http.MethodHead {
		// The asynchronous pattern starts work (a bulk export's job),
		// which a HEAD, a safe method (RFC 9110, section 9.2.1) that
		// monitors and link checkers send freely, must not start.
		err := errorf(http.StatusMethodNotAllowed, "not-supported",
			"HEAD with Prefer: respond-async would start $%s: start it with GET or POST", op.name)
		err.Header = http.Header{"Allow": {"GET, POST"}}
		c.Error(err)
		return
	}
	if inv.Type != "" {
		if !isServed(inv.Type) {
			c.Error(errorf(http.StatusNotFound, "not-supported", "resource type %q is not served here", truncate(inv.Type, 64)))
			return
		}
	}
	if inv.ID != "" {
		if err := checkID(inv.ID, ""); err != nil {
			c.Error(err)
			return
		}
	}
	if inv.Type != "" {
		if err := a.guard.Allow(c.Request.Context(), inv.Type, access.Read); err != nil {
			c.Error(err)
			return
		}
	}
	if err := a.checkParams(c, op, inv); err != nil {
		c.Error(err)
		return
	}
	op.handle(c, inv)
}

// parametersBody reads the Parameters resource that a POST invocation
// carries; it returns nil for a GET and for a POST without a body.
func parametersBody(c *gin.Context) (*fhir.Parameters, error) {
	res, err := postedResource(c)
	if err != nil || res == nil {
		return nil, err
	}
	p, ok := res.(*fhir.Parameters)
	if !ok {
		return nil, errorf(http.StatusBadRequest, "invalid", "the body of an operation is a Parameters resource, not a %s", res.ResourceType())
	}
	return p, nil
}

// postedResource returns the resource that a POST invocation carries; nil
// for a GET and for a POST without a body.
func postedResource(c *gin.Context) (fhir.Resource, error) {
	if c.Request.Method != http.MethodPost {
		return nil, nil
	}
	if empty, err := emptyBody(c); err != nil || empty {
		return nil, err
	}
	return operationResource(c)
}

// emptyBody reports whether the POST c carries no body: a Content-Length
// of 0, or a body of unknown length that holds nothing once read, as
// Node's http.request sends, chunked, a POST it writes nothing to (a
// gzipped body too is of unknown length). What it reads is kept for
// readAll.
func emptyBody(c *gin.Context) (bool, error) {
	if c.Request.ContentLength >= 0 {
		return c.Request.ContentLength == 0, nil
	}
	body, err := readAll(c)
	if err != nil {
		return false, err
	}
	c.Set(ctxBody, body)
	return len(body) == 0, nil
}

func levelText(inv invocation) string {
	switch inv.level() {
	case systemLevel:
		return "on the system"
	case typeLevel:
		return "on a resource type"
	}
	return "on a resource"
}

// notAllowed is the 405 of a method not served on the request's path,
// with the methods that are in Allow; on a path that names no endpoint
// (allowedOn), the 404 of one.
func (a *api) notAllowed(c *gin.Context) *Error {
	allow := a.allowedOn(c.Request.URL)
	if allow == "" {
		// The router, which answers the methods of other paths matching
		// the same routes, has set an Allow that no method here honours.
		c.Writer.Header().Del("Allow")
		return noEndpoint(c)
	}
	err := errorf(http.StatusMethodNotAllowed, "not-supported", "%s is not allowed on %s", c.Request.Method, truncate(c.Request.URL.Path, 200))
	err.Header = http.Header{"Allow": {allow}}
	return err
}

// allowHeader is the Allow header of a 405 answered to c.
func (a *api) allowHeader(c *gin.Context) http.Header {
	return http.Header{"Allow": {a.allowedOn(c.Request.URL)}}
}

// allowedOn lists the methods served on a URL under /fhir, "" when it
// names no endpoint. The router knows less: a type's routes match metadata
// and _history, which take GET and HEAD alone and have nothing below them,
// and the path of an operation, which takes the methods that invoke it;
// the POST routes on an instance and below it serve operations ($name)
// alone, and the search of a compartment, Patient's alone; and PUT, PATCH
// and DELETE on a type are conditional, served with search criteria only.
// A type the server alone writes (the audit trail) is read and searched
// alone. The SMART configuration is served with authentication alone.
func (a *api) allowedOn(u *url.URL) string {
	rest := strings.Trim(strings.TrimPrefix(u.Path, "/fhir"), "/")
	segs := strings.Split(rest, "/")
	switch last := segs[len(segs)-1]; {
	case len(segs) > 1 && (segs[0] == "metadata" || segs[0] == "_history"):
		return ""
	case len(segs) > 2 && len(segs) <= 4 && last == "_search" && segs[0] != "Patient":
		return "" // the search of a compartment not searched here
	case rest == "":
		return "GET, HEAD, POST"
	case len(segs) == 1 && strings.HasPrefix(last, "$"):
		return a.operationAllows(invocation{}, last[1:])
	case len(segs) == 1 && last == "_search":
		return "POST"
	case len(segs) == 1 && (last == "metadata" || last == "_history"):
		return "GET, HEAD"
	case rest == ".well-known/smart-configuration" && a.cfg.Auth != nil:
		return "GET, HEAD"
	case !isServed(segs[0]):
		// A type's routes match any first segment: one naming no type
		// served here is no endpoint, whatever the method, as a GET of
		// it answers.
		return ""
	case len(segs) == 5 && segs[2] == "_history" && (last == "$meta" || last == "$meta-add" || last == "$meta-delete"):
		// The meta operations on a version, as on the resource.
		return a.operationAllows(invocation{Type: segs[0], ID: segs[1]}, last[1:])
	case len(segs) <= 3 && strings.HasPrefix(last, "$"):
		inv := invocation{Type: segs[0]}
		if len(segs) == 3 {
			inv.ID = segs[1]
		}
		return a.operationAllows(inv, last[1:])
	case strings.HasPrefix(last, "$"):
		return ""
	case len(segs) <= 2 && last != "_search" && access.ReadOnly(segs[0]):
		return "GET, HEAD"
	case len(segs) == 1 && u.RawQuery == "":
		return "GET, HEAD, POST"
	case len(segs) == 1:
		return "GET, HEAD, POST, PUT, PATCH, DELETE"
	case len(segs) <= 4 && last == "_search":
		// A type's search, or a compartment's (Patient/{id}/_search,
		// Patient/{id}/{type}/_search).
		return "POST"
	case len(segs) == 2 && last != "_history":
		return "GET, HEAD, PUT, PATCH, DELETE"
	}
	return "GET, HEAD"
}

// operationAllows lists the methods that invoke the operation name where
// inv is: POST, and GET and HEAD too when the operation changes nothing;
// "" when no operation of that name is served there, as invoke answers.
func (a *api) operationAllows(inv invocation, name string) string {
	op, ok := a.operations[name]
	switch {
	case !ok || op.levels&inv.level() == 0:
		return ""
	case inv.Type != "" && !op.servedOn(inv.Type):
		return ""
	case op.idempotent:
		return "GET, HEAD, POST"
	}
	return "POST"
}
