package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/fhir/fhirxml"
	"carefhir/fhir/lexical"
	"carefhir/server/access"
	"carefhir/store"
)

// The request methods of bundle entries (Bundle.entry.request.method).
var entryMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true,
	http.MethodPut: true, http.MethodPatch: true, http.MethodDelete: true,
}

// txBundle is a transaction or batch as read from a request: its type and
// its entries, each parsed and checked on its own.
type txBundle struct {
	kind    string // "transaction" or "batch"
	entries []*entry
}

// entry is one entry of a transaction or batch.
type entry struct {
	index   int
	fullURL string
	method  string
	url     string // request.url as sent
	target  requestTarget
	// res is the resource of a POST or PUT, and raw its JSON, from which a
	// unit of work that runs again decodes it afresh (res is changed by
	// reference resolution and by the write).
	res fhir.Resource
	raw []byte
	// newID is the id a create gives the resource, fixed when the bundle is
	// read so that a unit of work that runs again assigns the same.
	newID       string
	ifMatch     int64
	ifNoneExist *store.Query
	// ifNoneExistRaw is request.ifNoneExist as sent.
	ifNoneExistRaw string
	// establishes is the conditional URL (criteriaKey) of a conditional
	// create or update: when nothing matches it, the resource the entry
	// writes is what a conditional reference with the same criteria names.
	establishes     string
	ifNoneMatch     string
	ifModifiedSince time.Time
	// noneMatch is the ifNoneMatch of a PUT [type]/[id], a precondition
	// of the write.
	noneMatch noneMatch
	// patchType and patch are the patch document of a PATCH: its media type
	// and content.
	patchType string
	patch     []byte
	// err is why the entry cannot be processed; nothing else is set.
	err error
}

// versionMatch is the entry's request.ifMatch as a precondition.
func (e *entry) versionMatch() versionMatch {
	if e.ifMatch == 0 {
		return versionMatch{}
	}
	return versionMatch{versions: []int64{e.ifMatch}}
}

// label names the entry in messages: Bundle.entry[3] (PUT Patient/123).
func (e *entry) label() string {
	// An entry without a method or url is named by its place alone, not
	// followed by "( )".
	if what := strings.TrimSpace(e.method + " " + truncate(e.url, 200)); what != "" {
		return e.path() + " (" + what + ")"
	}
	return e.path()
}

// path is the FHIRPath of the entry in the request Bundle.
func (e *entry) path() string { return "Bundle.entry[" + strconv.Itoa(e.index) + "]" }

// interaction is the interaction the entry performs.
func (e *entry) interaction() access.Interaction {
	switch e.method {
	case http.MethodGet, http.MethodHead:
		switch e.target.kind {
		case targetInstance:
			return access.InteractionRead
		case targetVersion:
			return access.InteractionVRead
		case targetHistory:
			return access.InteractionHistoryInstance
		case targetTypeHistory:
			return access.InteractionHistoryType
		}
		return access.InteractionSearchType
	case http.MethodPost:
		return access.InteractionCreate
	case http.MethodPut:
		return access.InteractionUpdate
	case http.MethodPatch:
		return access.InteractionPatch
	}
	return access.InteractionDelete
}

// context returns ctx performing the entry's interaction, which decides
// what its reads and writes need.
func (e *entry) context(ctx context.Context) context.Context {
	return access.WithInteraction(ctx, e.interaction())
}

// criteriaRaw is the query string of the entry's criteria as sent: its
// ifNoneExist, the criteria of a conditional update, patch or delete, or
// the query of a GET or HEAD; "" if none.
func (e *entry) criteriaRaw() string {
	switch {
	case e.method == http.MethodPost:
		return e.ifNoneExistRaw
	case e.method == http.MethodGet || e.method == http.MethodHead || e.conditional():
		return e.target.rawQuery
	}
	return ""
}

// conditional reports whether a PUT, PATCH or DELETE names its target by
// search criteria.
func (e *entry) conditional() bool { return e.target.criteria != nil }

// targetKind is what the URL of an entry's request names.
type targetKind int

const (
	targetType        targetKind = iota // [type]: create, or search with a query
	targetInstance                      // [type]/[id]
	targetVersion                       // [type]/[id]/_history/[vid]
	targetHistory                       // [type]/[id]/_history
	targetTypeHistory                   // [type]/_history
	targetCompartment                   // Patient/[id]/[type]
)

// requestTarget is what the URL of an entry's request names.
type requestTarget struct {
	kind     targetKind
	typ      string
	id       string
	vid      int64
	query    url.Values // the query string, for searches and history
	rawQuery string
	// compartment is the type searched in a Patient compartment.
	compartment string
	// criteria select the resource of a conditional PUT, PATCH or DELETE.
	criteria *store.Query
}

// wireBundle is the JSON of a transaction or batch Bundle. Only the
// elements that processing needs are read; each entry's resource is decoded
// on its own, so that a bad resource fails its entry and not a whole batch.
type wireBundle struct {
	ResourceType string      `json:"resourceType"`
	Type         string      `json:"type"`
	Entry        []wireEntry `json:"entry"`
}

type wireEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Request  *wireRequest    `json:"request"`
}

type wireRequest struct {
	Method          string
	URL             string
	IfNoneMatch     string
	IfModifiedSince string
	IfMatch         string
	IfNoneExist     string
	// Unknown names, sorted, the members that are no element of
	// Bundle.entry.request, for which the entry is refused: ignored, a
	// misspelt ifNoneExist would make a conditional create create again.
	Unknown []string
}

// UnmarshalJSON reads a request's members by their exact names, as FHIR
// JSON names elements (encoding/json would take IFNONEEXIST for
// ifNoneExist), keeping the names of those that are no element of it.
func (r *wireRequest) UnmarshalJSON(data []byte) error {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return err
	}
	values := map[string]*string{"method": &r.Method, "url": &r.URL, "ifNoneMatch": &r.IfNoneMatch,
		"ifModifiedSince": &r.IfModifiedSince, "ifMatch": &r.IfMatch, "ifNoneExist": &r.IfNoneExist}
	for name, raw := range members {
		if v, ok := values[name]; ok {
			if err := json.Unmarshal(raw, v); err != nil {
				// Named by the member, which the decoder puts
				// after the path to the request.
				if te := (*json.UnmarshalTypeError)(nil); errors.As(err, &te) {
					te.Field = name
				}
				return err
			}
			continue
		}
		// An id, extensions, and the extensions of a primitive
		// (_ifMatch) change nothing of what the request asks.
		if _, primitive := values[strings.TrimPrefix(name, "_")]; name == "id" || name == "extension" || primitive && name[0] == '_' {
			continue
		}
		r.Unknown = append(r.Unknown, name)
	}
	slices.Sort(r.Unknown)
	return nil
}

// readBundle reads the request body as a transaction or batch Bundle, in
// JSON or XML as its Content-Type says. Problems with the Bundle itself are
// returned; problems with an entry are kept in the entry.
func (a *api) readBundle(c *gin.Context, body []byte) (*txBundle, error) {
	mt, err := bodyType(c)
	if err != nil {
		return nil, err
	}
	return a.parseBundle(mt, body, a.baseURL(c))
}

// parseBundle reads body, of media type mt, as a transaction or batch
// Bundle whose relative references are relative to base.
func (a *api) parseBundle(mt string, body []byte, base string) (*txBundle, error) {
	var wb *wireBundle
	if xmlTypes[mt] {
		res, err := fhirxml.UnmarshalAs(body, "Bundle")
		if err != nil {
			return nil, err
		}
		if wb, err = wireFromXML(res.(*fhir.Bundle)); err != nil {
			return nil, err
		}
	} else {
		wb = &wireBundle{}
		if err := json.Unmarshal(body, wb); err != nil {
			return nil, bundleJSONError(err)
		}
	}
	if wb.ResourceType == "" {
		return nil, errorf(http.StatusBadRequest, "invalid",
			"the body has no resourceType: POST /fhir takes a Bundle, a JSON object with resourceType Bundle").at("Bundle")
	}
	if wb.ResourceType != "Bundle" {
		return nil, errorf(http.StatusBadRequest, "invalid",
			"POST /fhir takes a Bundle of type transaction or batch, not a %s", truncate(wb.ResourceType, 64))
	}
	if wb.Type != "transaction" && wb.Type != "batch" {
		return nil, errorf(http.StatusBadRequest, "invalid",
			"POST /fhir takes a Bundle of type transaction or batch, not %q; to store a Bundle, POST it to /fhir/Bundle",
			truncate(wb.Type, 40)).at("Bundle.type")
	}
	if max := a.cfg.Limits.BundleEntries; len(wb.Entry) > max {
		return nil, errorf(http.StatusRequestEntityTooLarge, "too-costly",
			"the Bundle has %d entries; a %s holds at most %d: split it", len(wb.Entry), wb.Type, max).at("Bundle.entry")
	}
	b := &txBundle{kind: wb.Type, entries: make([]*entry, len(wb.Entry))}
	// Entries are read on their own, so side by side.
	work := startParallel(len(wb.Entry), func(i int) { b.entries[i] = a.readEntry(i, wb.Entry[i], base) })
	defer work.stop()
	for i := range b.entries {
		work.wait(i)
	}
	// Of either kind (bdl-7): in a batch too a response entry is known
	// by its fullUrl, and the two requests would leave which is which to
	// the order of processing.
	if err := sameFullURLs(b.entries); err != nil {
		return nil, err
	}
	return b, nil
}

// bundleJSONError says what is wrong with a body that does not decode as
// a Bundle, in the words of FHIR JSON: the decoder's own message names the
// Go types it decodes into.
func bundleJSONError(err error) *Error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return errorf(http.StatusBadRequest, "invalid", "the body is not a valid JSON Bundle: %v", err)
	}
	want := map[reflect.Kind]string{reflect.String: "a string", reflect.Slice: "an array",
		reflect.Struct: "an object", reflect.Map: "an object"}[te.Type.Kind()]
	if te.Field == "" {
		return errorf(http.StatusBadRequest, "invalid",
			"the body is a JSON %s: POST /fhir takes a Bundle, a JSON object with resourceType Bundle", te.Value).at("Bundle")
	}
	return errorf(http.StatusBadRequest, "invalid", "Bundle.%s is a JSON %s, not %s", te.Field, te.Value, want).at("Bundle." + te.Field)
}

// wireFromXML turns a Bundle decoded from XML into the form JSON is read
// in, each resource as its JSON.
func wireFromXML(b *fhir.Bundle) (*wireBundle, error) {
	wb := &wireBundle{ResourceType: "Bundle", Type: b.Type.Get()}
	for _, be := range b.Entry {
		we := wireEntry{FullURL: be.FullUrl.Get()}
		if be.Resource != nil {
			raw, err := fhirjson.Marshal(be.Resource)
			if err != nil {
				return nil, err
			}
			we.Resource = raw
		}
		if r := be.Request; r != nil {
			we.Request = &wireRequest{Method: r.Method.Get(), URL: r.Url.Get(), IfNoneMatch: r.IfNoneMatch.Get(),
				IfModifiedSince: r.IfModifiedSince.Get(), IfMatch: r.IfMatch.Get(), IfNoneExist: r.IfNoneExist.Get()}
		}
		wb.Entry = append(wb.Entry, we)
	}
	return wb, nil
}

// sameFullURLs refuses a transaction or batch in which two entries share a
// fullUrl (bdl-7): a reference to it would name either.
func sameFullURLs(entries []*entry) error {
	seen := make(map[string]int, len(entries))
	for _, e := range entries {
		if e.fullURL == "" {
			continue
		}
		if first, ok := seen[e.fullURL]; ok {
			err := errorf(http.StatusBadRequest, "invalid", "Bundle.entry[%d] and Bundle.entry[%d] have the same fullUrl %q",
				first, e.index, truncate(e.fullURL, 200))
			err.Issues[0].Expression = []string{entries[first].path() + ".fullUrl", e.path() + ".fullUrl"}
			return err
		}
		seen[e.fullURL] = e.index
	}
	return nil
}

// readEntry parses and checks one entry; what is wrong is kept in its err.
func (a *api) readEntry(i int, we wireEntry, base string) *entry {
	e := &entry{index: i, fullURL: we.FullURL}
	if r := we.Request; r != nil {
		e.method, e.url = r.Method, r.URL
	}
	if err := a.checkEntry(e, we, base); err != nil {
		e.err = err
	}
	return e
}

func (a *api) checkEntry(e *entry, we wireEntry, base string) error {
	req := we.Request
	switch {
	case req == nil:
		return errorf(http.StatusBadRequest, "required", "the entry has no request: every entry of a transaction or batch says what to do").at(e.path() + ".request")
	case len(req.Unknown) > 0:
		return errorf(http.StatusBadRequest, "structure", "unknown element %q in request: it takes method, url, ifNoneMatch, ifModifiedSince, ifMatch and ifNoneExist",
			truncate(req.Unknown[0], 64)).at(e.path() + ".request." + truncate(req.Unknown[0], 64))
	case req.Method == "":
		return errorf(http.StatusBadRequest, "required", "the entry has no request.method").at(e.path() + ".request.method")
	case !entryMethods[req.Method]:
		return errorf(http.StatusBadRequest, "invalid", "request.method %q is not one of GET, HEAD, POST, PUT, PATCH and DELETE",
			truncate(req.Method, 20)).at(e.path() + ".request.method")
	case req.URL == "":
		return errorf(http.StatusBadRequest, "required", "the entry has no request.url").at(e.path() + ".request.url")
	}
	t, err := a.parseTarget(e.method, req.URL, base)
	if err != nil {
		return err
	}
	e.target = t
	if req.IfMatch != "" {
		if e.method == http.MethodPost {
			return errorf(http.StatusBadRequest, "invalid", "request.ifMatch is for PUT, PATCH and DELETE, not POST: a create makes a new resource").at(e.path() + ".request.ifMatch")
		}
		if (e.method == http.MethodGet || e.method == http.MethodHead) && t.kind != targetInstance && t.kind != targetVersion {
			// A search has no version to match: ignored, the
			// precondition would not hold.
			return errorf(http.StatusBadRequest, "invalid", "request.ifMatch is for a read of [type]/[id], PUT, PATCH and DELETE, not a search").at(e.path() + ".request.ifMatch")
		}
		if e.ifMatch, err = parseETag(req.IfMatch, "request.ifMatch"); err != nil {
			return err
		}
	}
	if req.IfNoneExist != "" {
		if e.method != http.MethodPost {
			return errorf(http.StatusBadRequest, "invalid", "request.ifNoneExist is for POST (conditional create), not %s", e.method)
		}
		if e.ifNoneExist, err = a.parseCriteria(t.typ, req.IfNoneExist, "ifNoneExist"); err != nil {
			return err
		}
		e.ifNoneExistRaw = req.IfNoneExist
		e.establishes = criteriaKey(t.typ, req.IfNoneExist)
	}
	if e.method == http.MethodPut && t.criteria != nil {
		e.establishes = criteriaKey(t.typ, t.rawQuery)
	}
	e.ifNoneMatch = req.IfNoneMatch
	if req.IfNoneMatch != "" {
		switch {
		case e.method == http.MethodGet || e.method == http.MethodHead:
		case e.method == http.MethodPut && t.criteria == nil:
			star, versions, err := parseVersions(req.IfNoneMatch, "request.ifNoneMatch")
			if err != nil {
				return err
			}
			e.noneMatch = noneMatch{any: star, versions: versions}
		default:
			what := e.method
			if t.criteria != nil {
				what = "a conditional " + what
			}
			return errorf(http.StatusBadRequest, "invalid", "request.ifNoneMatch is for GET, HEAD and PUT [type]/[id], not %s", what).at(e.path() + ".request.ifNoneMatch")
		}
	}
	if req.IfModifiedSince != "" {
		ims, err := time.Parse(time.RFC3339, req.IfModifiedSince)
		if err != nil {
			return errorf(http.StatusBadRequest, "invalid", "request.ifModifiedSince %q is not an instant", truncate(req.IfModifiedSince, 40))
		}
		e.ifModifiedSince = ims
	}
	hasResource := len(we.Resource) > 0 && string(we.Resource) != "null"
	switch e.method {
	case http.MethodPost, http.MethodPut:
		if !hasResource {
			return errorf(http.StatusBadRequest, "required", "a %s entry carries the resource to write", e.method).at(e.path() + ".resource")
		}
		e.raw = we.Resource
		if e.res, err = decodeEntry(we.Resource, t.typ); err != nil {
			return err
		}
		// The id first, as an update over HTTP checks it: R4 has a body
		// without the URL's id 400, whatever else it lacks.
		if e.method == http.MethodPut && !e.conditional() {
			if err := checkUpdateID(t.typ, t.id, e.res, "request.url"); err != nil {
				return err
			}
		}
		if err := checkMandatory(e.res); err != nil {
			return err
		}
		e.newID = newID()
	case http.MethodPatch:
		if !hasResource {
			return errorf(http.StatusBadRequest, "required", "a PATCH entry carries the patch: a Binary holding a JSON Patch, or a Parameters holding a FHIRPath Patch").at(e.path() + ".resource")
		}
		if e.patchType, e.patch, err = entryPatch(we.Resource); err != nil {
			return err
		}
	}
	return nil
}

// decodeEntry decodes the resource of an entry, which must be of typ.
func decodeEntry(raw []byte, typ string) (fhir.Resource, error) {
	res, err := fhirjson.Unmarshal(raw)
	if err != nil {
		return nil, err
	}
	if res.ResourceType() != typ {
		// Rooted at typ, as entryExpression finds the entry's resource:
		// rooted at the resource's own type it would name no element.
		return nil, errorf(http.StatusBadRequest, "invalid", "the resource is a %s but request.url names %s", res.ResourceType(), typ).at(typ)
	}
	return res, nil
}

// entryPatch reads the patch document of a PATCH entry: a Binary with a
// JSON Patch (its contentType and decoded data), or a Parameters with a
// FHIRPath Patch (as FHIR JSON).
func entryPatch(raw []byte) (string, []byte, error) {
	res, err := fhirjson.Unmarshal(raw)
	if err != nil {
		return "", nil, err
	}
	switch p := res.(type) {
	case *fhir.Parameters:
		return mimeFHIRJSON, raw, nil
	case *fhir.Binary:
		data, err := lexical.DecodeBase64Binary(p.Data.Get())
		if err != nil || len(data) == 0 {
			return "", nil, errorf(http.StatusBadRequest, "invalid", "the Binary of a PATCH entry holds the patch in data, base64-encoded").at("Binary.data")
		}
		return p.ContentType.Get(), data, nil
	}
	return "", nil, errorf(http.StatusBadRequest, "invalid",
		"the resource of a PATCH entry is a Binary (JSON Patch) or a Parameters (FHIRPath Patch), not a %s", res.ResourceType()).at(res.ResourceType())
}

// parseTarget reads request.url: relative to the base ([type]/[id]…), or
// absolute, under this server's base or, for a PUT or POST, another's (the
// part from the resource type on is used).
func (a *api) parseTarget(method, raw, base string) (requestTarget, error) {
	var t requestTarget
	rel := raw
	switch {
	case strings.HasPrefix(raw, base+"/"):
		rel = raw[len(base)+1:]
	case strings.Contains(raw, "://"):
		// A PUT or POST carries the resource to store here, as R4's own
		// examples load another server's definitions. A GET, HEAD, PATCH
		// or DELETE names a resource for this server to find, and another
		// server's is none of its: read as the Type/id it ends in, it
		// answered, changed or deleted this server's resource of that id.
		// (A query may hold URLs, identifier=http://…|1: only the path
		// says whether the URL is absolute.)
		path, _, _ := strings.Cut(raw, "?")
		if strings.Contains(path, "://") && method != http.MethodPut && method != http.MethodPost {
			return t, badURL(raw, "it is absolute on another base than this server's, "+base+
				": a "+method+" names a resource of this server, relative to its base or absolute under it")
		}
		u, err := url.Parse(raw)
		if err != nil {
			return t, badURL(raw, "it is not a valid URL")
		}
		segs := strings.Split(u.Path, "/")
		start := -1
		for i, s := range segs {
			if fhir.IsResourceType(s) {
				start = i
				break
			}
		}
		if start < 0 {
			return t, badURL(raw, "it names no resource type")
		}
		rel = strings.Join(segs[start:], "/")
		if u.RawQuery != "" {
			rel += "?" + u.RawQuery
		}
	}
	rel = strings.TrimPrefix(rel, "/")
	path, rawQuery, hasQuery := strings.Cut(rel, "?")
	// As over HTTP, a path ending in a slash is the path without it.
	path = strings.TrimSuffix(path, "/")
	query, err := parseQuery(rawQuery)
	if err != nil {
		return t, badURL(raw, "its query string is not valid")
	}
	t.query, t.rawQuery = query, rawQuery
	segs := strings.Split(path, "/")
	for _, s := range segs {
		if strings.HasPrefix(s, "$") {
			return t, errorf(http.StatusBadRequest, "not-supported", "request.url %q invokes an operation: operations are not supported in a transaction or batch", truncate(raw, 200))
		}
	}
	if segs[0] == "" || segs[0] == "_history" || segs[0] == "metadata" {
		return t, errorf(http.StatusBadRequest, "not-supported", "request.url %q: whole-system interactions are not supported in a transaction or batch", truncate(raw, 200))
	}
	t.typ = segs[0]
	if !isServed(t.typ) {
		return t, errorf(http.StatusNotFound, "not-supported", "resource type %q is not served here", truncate(t.typ, 64))
	}
	if len(segs) > 1 {
		t.id = segs[1]
		if t.id == "_history" {
			t.id = ""
		} else if err := checkID(t.id, ""); err != nil {
			return t, err
		}
	}
	switch {
	case len(segs) == 1:
		t.kind = targetType
	case len(segs) == 2 && t.id == "":
		t.kind = targetTypeHistory
	case len(segs) == 2:
		t.kind = targetInstance
	case len(segs) == 3 && segs[2] == "_history" && t.id != "":
		t.kind = targetHistory
	case len(segs) == 4 && segs[2] == "_history" && t.id != "":
		t.kind = targetVersion
		var ok bool
		if t.vid, ok = parseVersionID(segs[3]); !ok {
			return t, errorf(http.StatusNotFound, "not-found", "%s/%s has no version %q", t.typ, t.id, truncate(segs[3], 20))
		}
	case len(segs) == 3 && t.typ == "Patient" && t.id != "" && isServed(segs[2]):
		t.kind = targetCompartment
		t.compartment = segs[2]
	default:
		return t, badURL(raw, "it is not [type], [type]/[id] or a history, version or compartment of one")
	}
	return t, a.checkTarget(method, raw, &t, hasQuery)
}

// checkTarget checks that the method applies to what the URL names, and
// parses the criteria of conditional interactions.
func (a *api) checkTarget(method, raw string, t *requestTarget, hasQuery bool) error {
	read := method == http.MethodGet || method == http.MethodHead
	switch {
	case read:
		return nil
	case method == http.MethodPost && t.kind == targetType && !hasQuery:
		return nil
	case method == http.MethodPost:
		return badURL(raw, "POST creates a resource on its type: request.url is the type alone, e.g. Patient")
	case t.kind == targetInstance && !hasQuery:
		return nil
	case t.kind == targetType && hasQuery:
		what := map[string]string{http.MethodPut: "conditional update", http.MethodPatch: "conditional patch",
			http.MethodDelete: "conditional delete"}[method]
		q, err := a.parseCriteria(t.typ, t.rawQuery, what)
		if err != nil {
			return err
		}
		t.criteria = q
		return nil
	}
	return badURL(raw, method+" needs [type]/[id], or [type]?criteria for a conditional "+strings.ToLower(method))
}

func badURL(raw, why string) *Error {
	return errorf(http.StatusBadRequest, "invalid", "request.url %q is not valid here: %s", truncate(raw, 200), why)
}
