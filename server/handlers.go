package server

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"carefhir/fhir"
	"carefhir/fhir/lexical"
	"carefhir/store"
)

// registerInstance registers the interactions on one resource.
func (a *api) registerInstance(g *gin.RouterGroup) {
	getAndHead(g, "/:type/:id", a.orOperation(a.read))
	g.PUT("/:type/:id", a.update)
	g.DELETE("/:type/:id", a.delete)
	getAndHead(g, "/:type/:id/_history", a.historyInstance)
	getAndHead(g, "/:type/:id/_history/:vid", a.vread)
	a.caps.add("read", "vread", "update", "delete", "history-instance")
}

// registerType registers the interactions on a resource type.
func (a *api) registerType(g *gin.RouterGroup) {
	g.POST("/:type", a.orOperation(a.create))
	g.PUT("/:type", a.conditionalUpdate)
	g.DELETE("/:type", a.conditionalDelete)
	getAndHead(g, "/:type/_history", a.historyType)
	a.caps.add("create", "history-type")
}

// registerSystem registers the whole-system interactions.
func (a *api) registerSystem(g *gin.RouterGroup) {
	getAndHead(g, "/metadata", a.metadata)
	getAndHead(g, "/_history", a.historySystem)
	a.caps.addSystem("history-system")
}

// getAndHead serves h for GET and HEAD on path. HEAD is GET without the body
// (RFC 9110, section 9.3.2: every general-purpose server supports both):
// the status and headers, Content-Length and ETag included, are those a GET
// gets, and net/http drops what the handler writes as the body.
func getAndHead(r gin.IRoutes, path string, h gin.HandlerFunc) {
	r.GET(path, h)
	r.HEAD(path, h)
}

// resourceType returns the :type path parameter if carefhir serves it.
// The system's metadata, _history and _search, and the path of an
// operation ($name, as the type or the id), which a type's routes match,
// answer 405 to the methods they do not take.
func (a *api) resourceType(c *gin.Context) (string, error) {
	typ := c.Param("type")
	if typ == "metadata" || typ == "_history" || typ == "_search" {
		return "", a.notAllowed(c)
	}
	if _, _, ok := operationPath(c.Request.URL.Path); ok {
		return "", a.notAllowed(c)
	}
	if !isServed(typ) {
		return "", errorf(http.StatusNotFound, "not-supported", "resource type %q is not served here", truncate(typ, 64))
	}
	return typ, nil
}

// noEndpoint is the 404 of a path that names no endpoint.
func noEndpoint(c *gin.Context) *Error {
	return errorf(http.StatusNotFound, "not-found", "no FHIR endpoint at %s %s", c.Request.Method, truncate(c.Request.URL.Path, 200))
}

// target returns the :type and :id path parameters, checked.
func (a *api) target(c *gin.Context) (string, string, error) {
	typ, err := a.resourceType(c)
	if err != nil {
		return "", "", err
	}
	id := c.Param("id")
	if isTypePath(id) {
		// [type]/_search and [type]/_history, which the routes of an
		// instance match: 405 to the methods they do not take, not an
		// id that is invalid.
		return "", "", a.notAllowed(c)
	}
	if err := checkID(id, ""); err != nil {
		return "", "", err
	}
	return typ, id, nil
}

// isTypePath reports whether seg, in the place of an id, names an endpoint
// of the type or compartment before it: _search or _history, which no id
// can be.
func isTypePath(seg string) bool { return seg == "_search" || seg == "_history" }

func (a *api) read(c *gin.Context) {
	typ, id, err := a.target(c)
	if err != nil {
		c.Error(err)
		return
	}
	v, err := a.svc.store.Read(c.Request.Context(), typ, id)
	if err != nil {
		c.Error(notFound(err, typ, id))
		return
	}
	if v.Deleted {
		c.Error(gone(v))
		return
	}
	if notModified(c, v) {
		return
	}
	a.writeVersion(c, http.StatusOK, v)
}

func (a *api) vread(c *gin.Context) {
	typ, id, err := a.target(c)
	if err != nil {
		c.Error(err)
		return
	}
	v, err := a.version(c, typ, id)
	if err != nil {
		c.Error(err)
		return
	}
	if notModified(c, v) {
		return
	}
	a.writeVersion(c, http.StatusOK, v)
}

// version reads the version of typ/id that the :vid path parameter names;
// a deleted version is 410.
func (a *api) version(c *gin.Context, typ, id string) (*store.Version, error) {
	vid, ok := parseVersionID(c.Param("vid"))
	if !ok {
		return nil, errorf(http.StatusNotFound, "not-found", "%s/%s has no version %q", typ, id, truncate(c.Param("vid"), 20))
	}
	v, err := a.svc.store.VRead(c.Request.Context(), typ, id, vid)
	if err != nil {
		return nil, notFound(err, typ, id+"/_history/"+strconv.FormatInt(vid, 10))
	}
	if v.Deleted {
		return nil, gone(v)
	}
	return v, nil
}

func notFound(err error, typ, id string) error {
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "not-found", "%s/%s is not known", typ, id)
	}
	return err
}

func gone(v *store.Version) *Error {
	e := errorf(http.StatusGone, "deleted", "%s/%s was deleted (version %d)", v.Type, v.ID, v.VersionID)
	e.Header = http.Header{"Etag": {etag(v.VersionID)}, "Last-Modified": {v.LastUpdated.Format(http.TimeFormat)}}
	return e
}

// notModified answers a read of v whose preconditions decide the answer,
// in the order of RFC 9110 section 13.2.2, and reports whether it did:
// 412 when If-Match names no version v is (section 13.1.1; "*" matches
// any) or, without If-Match, v was modified after If-Unmodified-Since
// (section 13.1.4); 304 when the client's copy (If-None-Match or
// If-Modified-Since) is current. ETags are compared weakly, as the
// preconditions of a write compare them: the server's are weak.
func notModified(c *gin.Context, v *store.Version) bool {
	if err := readPreconditions(c, v); err != nil {
		c.Error(err)
		return true
	}
	var ims time.Time
	if h := c.GetHeader("If-Modified-Since"); h != "" {
		if t, err := http.ParseTime(h); err == nil {
			ims = t
		}
	}
	if !current(c.GetHeader("If-None-Match"), ims, v) {
		return false
	}
	setVersionHeaders(c, v)
	c.Status(http.StatusNotModified)
	c.Writer.WriteHeaderNow()
	return true
}

// readPreconditions checks the If-Match and If-Unmodified-Since of a read
// of v: a 412 *Error when one does not hold, 400 for an If-Match that names
// no version.
func readPreconditions(c *gin.Context, v *store.Version) error {
	if h := strings.Join(c.Request.Header.Values("If-Match"), ","); h != "" {
		m, err := parseIfMatch(h)
		if err != nil {
			return err
		}
		return m.check(v)
	}
	if ius, ok := unmodifiedSince(c); ok && modifiedAfter(v, ius) {
		return errorf(http.StatusPreconditionFailed, "conflict", "If-Unmodified-Since is %s, but version %d of %s/%s was last updated at %s",
			ius.Format(http.TimeFormat), v.VersionID, v.Type, v.ID, v.LastUpdated.UTC().Format(http.TimeFormat))
	}
	return nil
}

// unmodifiedSince reads the If-Unmodified-Since header, which is ignored
// (ok false) when absent or not an HTTP-date (RFC 9110 section 13.1.4).
func unmodifiedSince(c *gin.Context) (time.Time, bool) {
	h := c.GetHeader("If-Unmodified-Since")
	if h == "" {
		return time.Time{}, false
	}
	t, err := http.ParseTime(h)
	return t, err == nil
}

// modifiedAfter reports whether v was last updated after t, to the second
// of Last-Modified.
func modifiedAfter(v *store.Version, t time.Time) bool {
	return v.LastUpdated.Truncate(time.Second).After(t)
}

// current reports whether a client's copy of a resource is v: one of the
// ETags of ifNoneMatch names v's version or, when ifNoneMatch is empty, v
// was last updated no later than ims (zero: not asked).
func current(ifNoneMatch string, ims time.Time, v *store.Version) bool {
	if ifNoneMatch != "" {
		for _, tag := range strings.Split(ifNoneMatch, ",") {
			if tag = strings.TrimSpace(tag); tag == "*" || strings.TrimPrefix(tag, "W/") == strings.TrimPrefix(etag(v.VersionID), "W/") {
				return true
			}
		}
		return false
	}
	return !ims.IsZero() && !v.LastUpdated.Truncate(time.Second).After(ims)
}

func setVersionHeaders(c *gin.Context, v *store.Version) {
	// Set by their canonical names, without canonicalising them again.
	h := c.Writer.Header()
	h["Etag"] = []string{etag(v.VersionID)}
	var b [len(http.TimeFormat)]byte
	h["Last-Modified"] = []string{string(appendHTTPDate(b[:0], v.LastUpdated))}
}

// appendHTTPDate appends t in UTC as an HTTP-date (RFC 9110, section
// 5.6.7: IMF-fixdate), as t.UTC().AppendFormat with http.TimeFormat does,
// without reading the layout for every response that carries one.
func appendHTTPDate(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, second := t.Clock()
	b = append(b, t.Weekday().String()[:3]...)
	b = append(b, ", "...)
	b = append2(b, day)
	b = append(b, ' ')
	b = append(b, month.String()[:3]...)
	b = append(b, ' ')
	b = append2(b, year/100)
	b = append2(b, year%100)
	b = append(b, ' ')
	b = append2(b, hour)
	b = append(b, ':')
	b = append2(b, minute)
	b = append(b, ':')
	b = append2(b, second)
	return append(b, " GMT"...)
}

// append2 appends n, from 0 to 99, as two digits.
func append2(b []byte, n int) []byte { return append(b, byte('0'+n/10), byte('0'+n%10)) }

// writeVersion writes a stored version as it is, or reduced as _summary or
// _elements ask.
func (a *api) writeVersion(c *gin.Context, status int, v *store.Version) {
	if accept, ok := c.Get(ctxRawAccept); ok && v.Type == "Binary" {
		writeRawBinary(c, status, v, accept.(string))
		return
	}
	body := v.JSON
	if c.Request.URL.RawQuery != "" {
		var err error
		if body, err = subset(v.Type, v.JSON, queryOf(c)); err != nil {
			c.Error(err)
			return
		}
	}
	setVersionHeaders(c, v)
	writeFHIR(c, status, body)
}

// baseURL is the public base of the API, including /fhir.
func (a *api) baseURL(c *gin.Context) string {
	if a.cfg.BaseURL != "" {
		return strings.TrimSuffix(a.cfg.BaseURL, "/")
	}
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host + "/fhir"
}

// readBody reads the whole request body, which must not be empty.
func readBody(c *gin.Context) ([]byte, error) {
	body, err := readAll(c)
	if err != nil {
		return nil, err
	}
	// A UTF-8 byte order mark, which some Windows clients put before a
	// body, is no part of it: RFC 8259 §8.1 lets a JSON reader ignore it,
	// as XML does.
	body = lexical.TrimBOM(body)
	if len(body) == 0 {
		return nil, errorf(http.StatusBadRequest, "required", "the request body is empty: send a resource")
	}
	return body, nil
}

// readAll reads the whole request body as it is, or returns it as the
// dispatcher of operations read it.
func readAll(c *gin.Context) ([]byte, error) {
	if body, ok := c.Get(ctxBody); ok {
		return body.([]byte), nil
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, err
		}
		return nil, errorf(http.StatusBadRequest, "invalid", "reading the request body: %v", err)
	}
	return body, nil
}

// readResource reads, decodes and checks the request body as a resource of
// typ about to be written; first, when not nil, checks it before anything
// else does.
func (a *api) readResource(c *gin.Context, typ string, first func(fhir.Resource) error) (fhir.Resource, error) {
	res, err := a.decodeResource(c, typ, first)
	if err != nil {
		return nil, err
	}
	if err := a.validateWrite(c.Request.Context(), res); err != nil {
		return nil, err
	}
	return res, nil
}

// decodeResource reads and decodes the request body as a resource of typ
// about to be written, with its mandatory elements; first, when not nil,
// checks it before them. The rest of validation is left to the caller.
func (a *api) decodeResource(c *gin.Context, typ string, first func(fhir.Resource) error) (fhir.Resource, error) {
	res, err := decodeRequest(c, typ)
	if err != nil {
		return nil, err
	}
	if first != nil {
		if err := first(res); err != nil {
			return nil, err
		}
	}
	if err := checkMandatory(res); err != nil {
		return nil, err
	}
	if err := refuseConditionalRefs(res); err != nil {
		return nil, err
	}
	return res, nil
}

// decodeRequest reads and decodes the request body as a resource of typ.
func decodeRequest(c *gin.Context, typ string) (fhir.Resource, error) {
	if rawBinaryBody(c, typ) {
		return readRawBinary(c)
	}
	body, err := readBody(c)
	if err != nil {
		return nil, err
	}
	return decodeBody(c, body, typ)
}

// ifMatch reads the If-Match precondition of a write other than an update
// of [type]/[id], the one write that takes If-None-Match too (ifNoneMatch):
// on the others If-None-Match is 400, since ignored it would not hold.
func ifMatch(c *gin.Context) (versionMatch, error) {
	if c.GetHeader("If-None-Match") != "" {
		return versionMatch{}, errorf(http.StatusBadRequest, "not-supported",
			"If-None-Match is taken by a read and by an update of [type]/[id] (PUT), not by this %s", c.Request.Method)
	}
	return ifMatchHeader(c)
}

// ifMatchHeader reads the If-Match header of a write other than a create,
// its lines one list: the zero versionMatch when absent. If-None-Exist,
// which a create alone takes, is 400 on such a write, since ignored it
// would not hold: a PUT sent with it would write whatever matched.
func ifMatchHeader(c *gin.Context) (versionMatch, error) {
	if c.GetHeader("If-None-Exist") != "" {
		return versionMatch{}, errorf(http.StatusBadRequest, "not-supported",
			"If-None-Exist is taken by a create (POST [type]), not by this %s", c.Request.Method)
	}
	h := strings.Join(c.Request.Header.Values("If-Match"), ",")
	if h == "" {
		// If-Unmodified-Since counts only without If-Match (RFC 9110
		// section 13.2.2).
		ius, _ := unmodifiedSince(c)
		return versionMatch{unmodifiedSince: ius}, nil
	}
	return parseIfMatch(h)
}

// refuseVersionPreconditions refuses If-Match and If-None-Match on a
// create, with 400 as a POST entry's request.ifMatch and ifNoneMatch are:
// they name versions of a resource that exists, and a create makes a new
// one. Ignored, a client that meant an update (the POST of a resource it
// read, with the version it read) got a second resource.
func refuseVersionPreconditions(c *gin.Context) error {
	for _, h := range []string{"If-Match", "If-None-Match"} {
		if c.GetHeader(h) != "" {
			return errorf(http.StatusBadRequest, "not-supported",
				"%s is taken by an update, patch or delete of a resource that exists, not by a create (POST [type]): to update, PUT [type]/[id]", h)
		}
	}
	return nil
}

// ifNoneMatch reads the If-None-Match precondition of an update: "*" to
// create a resource only, never to replace one, or the versions it must
// not replace.
func ifNoneMatch(c *gin.Context) (noneMatch, error) {
	h := strings.Join(c.Request.Header.Values("If-None-Match"), ",")
	if h == "" {
		return noneMatch{}, nil
	}
	star, versions, err := parseVersions(h, "If-None-Match")
	return noneMatch{any: star, versions: versions}, err
}

func (a *api) create(c *gin.Context) {
	typ, err := a.resourceType(c)
	if err != nil {
		c.Error(err)
		return
	}
	if err := refuseVersionPreconditions(c); err != nil {
		c.Error(err)
		return
	}
	res, err := a.decodeResource(c, typ, nil)
	if err != nil {
		c.Error(err)
		return
	}
	p, err := a.prepareCreate(c.Request.Context(), typ, res)
	if err != nil {
		c.Error(err)
		return
	}
	var criteria *store.Query
	if h := c.GetHeader("If-None-Exist"); h != "" {
		if criteria, err = a.parseCriteria(typ, h, "If-None-Exist"); err != nil {
			c.Error(p.settle(err))
			return
		}
	}
	v, created, err := a.svc.create(c.Request.Context(), p, criteria)
	if err != nil {
		c.Error(err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	} else {
		// R4 answers a conditional create that found its match with the
		// headers a create would have had, Location among them.
		a.setLocation(c, v)
	}
	a.writeResult(c, status, v)
}

func (a *api) update(c *gin.Context) {
	typ, id, err := a.target(c)
	if err != nil {
		c.Error(err)
		return
	}
	match, err := ifMatchHeader(c)
	if err != nil {
		c.Error(err)
		return
	}
	none, err := ifNoneMatch(c)
	if err != nil {
		c.Error(err)
		return
	}
	// R4 has an update without the id of its URL answered 400, whatever
	// else its body holds: the id is checked first.
	res, err := a.readResource(c, typ, func(res fhir.Resource) error {
		return checkUpdateID(typ, id, res, "the URL")
	})
	if err != nil {
		c.Error(err)
		return
	}
	version, err := match.resolve(c.Request.Context(), a.svc.store, typ, id)
	if err != nil {
		c.Error(err)
		return
	}
	var v *store.Version
	var did updateOutcome
	if none.asked() {
		v, did, err = a.svc.updateIfNone(c.Request.Context(), typ, id, res, version, none)
	} else {
		v, did, err = a.svc.update(c.Request.Context(), typ, id, res, version)
	}
	if err != nil {
		c.Error(err)
		return
	}
	a.writeUpdated(c, v, did)
}

// checkUpdateID checks that the resource of an update carries the id its
// URL names; where is how messages name the URL.
func checkUpdateID(typ, id string, res fhir.Resource, where string) error {
	switch bodyID := res.GetID(); {
	case bodyID == "":
		return errorf(http.StatusBadRequest, "required", "the resource has no id: an update must carry the id %q of its URL", id).at(typ + ".id")
	case bodyID != id:
		return errorf(http.StatusBadRequest, "invalid", "the resource id %q differs from the id %q in %s", truncate(bodyID, 64), id, where).at(typ + ".id")
	}
	return nil
}

// writeUpdated answers an update. One that changed nothing answers 200
// with the current version, as any other update answers with the version
// it wrote; its OperationOutcome, when preferred, says so.
func (a *api) writeUpdated(c *gin.Context, v *store.Version, did updateOutcome) {
	switch did {
	case updateCreated:
		a.writeResult(c, http.StatusCreated, v)
	case updateUnchanged:
		if preferReturn(c) == "OperationOutcome" {
			setVersionHeaders(c, v)
			writeFHIR(c, http.StatusOK, unchangedOutcome(v))
			return
		}
		a.writeResult(c, http.StatusOK, v)
	default:
		a.writeResult(c, http.StatusOK, v)
	}
}

func (a *api) conditionalUpdate(c *gin.Context) {
	typ, criteria, err := a.conditionalTarget(c, "conditional update")
	if err != nil {
		c.Error(err)
		return
	}
	match, err := ifMatch(c)
	if err != nil {
		c.Error(err)
		return
	}
	res, err := a.decodeResource(c, typ, nil)
	if err != nil {
		c.Error(err)
		return
	}
	if err := a.validateAsWritten(c.Request.Context(), typ, res); err != nil {
		c.Error(err)
		return
	}
	v, did, err := a.svc.conditionalUpdate(c.Request.Context(), typ, res, criteria, match)
	if err != nil {
		c.Error(err)
		return
	}
	a.writeUpdated(c, v, did)
}

// writeResult answers a create or update as the Prefer header asks:
// the resource (default), nothing, or an OperationOutcome.
func (a *api) writeResult(c *gin.Context, status int, v *store.Version) {
	if status == http.StatusCreated {
		a.setLocation(c, v)
	}
	setVersionHeaders(c, v)
	switch preferReturn(c) {
	case "minimal":
		c.Status(status)
		c.Writer.WriteHeaderNow()
	case "OperationOutcome":
		body := writtenWithWarnings(c.Request.Context(), status, v)
		if body == nil {
			body = writtenOutcome(status, v)
		}
		writeFHIR(c, status, body)
	default:
		writeFHIR(c, status, v.JSON)
	}
}

// setLocation sets the Location header to the URL of version v.
func (a *api) setLocation(c *gin.Context, v *store.Version) {
	c.Header("Location", a.baseURL(c)+"/"+v.Type+"/"+v.ID+"/_history/"+strconv.FormatInt(v.VersionID, 10))
}

// preferReturn reads the return preference of the Prefer header (RFC 7240).
func preferReturn(c *gin.Context) string {
	if v := preference(c, "return"); v != "" {
		return v
	}
	return "representation"
}

func (a *api) delete(c *gin.Context) {
	typ, id, err := a.target(c)
	if err != nil {
		c.Error(err)
		return
	}
	match, err := ifMatch(c)
	if err != nil {
		c.Error(err)
		return
	}
	version, err := match.resolve(c.Request.Context(), a.svc.store, typ, id)
	if err != nil {
		c.Error(err)
		return
	}
	v, err := a.svc.delete(c.Request.Context(), typ, id, version)
	if err != nil {
		c.Error(err)
		return
	}
	writeDeleted(c, v)
}

func (a *api) conditionalDelete(c *gin.Context) {
	typ, criteria, err := a.conditionalTarget(c, "conditional delete")
	if err != nil {
		c.Error(err)
		return
	}
	match, err := ifMatch(c)
	if err != nil {
		c.Error(err)
		return
	}
	v, err := a.svc.conditionalDelete(c.Request.Context(), typ, criteria, match)
	if err != nil {
		c.Error(err)
		return
	}
	writeDeleted(c, v)
}

// writeDeleted answers a delete: 204, or 200 with an OperationOutcome when
// the client prefers one. v is nil when there was nothing to delete.
func writeDeleted(c *gin.Context, v *store.Version) {
	if v != nil {
		c.Header("ETag", etag(v.VersionID))
	}
	if preferReturn(c) == "OperationOutcome" {
		writeFHIR(c, http.StatusOK, deletedOutcome(v))
		return
	}
	c.Status(http.StatusNoContent)
	c.Writer.WriteHeaderNow()
}

// conditionalTarget returns the resource type and search criteria of a
// conditional update or delete; without criteria the method is not allowed
// on a type.
func (a *api) conditionalTarget(c *gin.Context, what string) (string, *store.Query, error) {
	typ, err := a.resourceType(c)
	if err != nil {
		return "", nil, err
	}
	if c.Request.URL.RawQuery == "" {
		err := errorf(http.StatusMethodNotAllowed, "not-supported",
			"%s on a resource type needs search criteria (%s) or an id in the URL", c.Request.Method, what)
		err.Header = a.allowHeader(c)
		return "", nil, err
	}
	criteria, err := a.parseCriteria(typ, c.Request.URL.RawQuery, what)
	return typ, criteria, err
}
