package server

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"carefhir/fhir/search"
	"carefhir/store"
)

// registerSearch registers the search interactions: on a type (GET and
// POST _search), in a Patient's compartment, and across types.
func (a *api) registerSearch(g *gin.RouterGroup) {
	getAndHead(g, "/:type", a.orOperation(a.searchType))
	g.POST("/:type/_search", a.searchType)
	getAndHead(g, "", a.searchSystem)
	getAndHead(g, "/", a.searchSystem) // the base with a trailing slash is the base
	g.POST("/_search", a.searchSystem)
	getAndHead(g, "/:type/:id/:compartment", a.orOperation(a.searchCompartment))
	a.caps.add("search-type")
	a.caps.addSystem("search-system")
}

// searchParams returns the parameters of a search: the query string and,
// for POST _search, the form-encoded body.
func searchParams(c *gin.Context) (url.Values, error) {
	params := c.Request.URL.Query()
	if c.Request.Method != http.MethodPost {
		return params, nil
	}
	ct, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if ct != "application/x-www-form-urlencoded" {
		return nil, errorf(http.StatusUnsupportedMediaType, "not-supported",
			"POST _search takes its parameters as application/x-www-form-urlencoded, not %q", truncate(ct, 80))
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, err
		}
		return nil, errorf(http.StatusBadRequest, "invalid", "reading the request body: %v", err)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "invalid", "the form body is not valid: %v", err)
	}
	for k, vs := range form {
		params[k] = append(params[k], vs...)
	}
	return params, nil
}

// preference returns the value of a preference of the Prefer header
// (RFC 7240), "" when absent.
func preference(c *gin.Context, name string) string {
	for _, h := range c.Request.Header.Values("Prefer") {
		for _, pref := range strings.Split(h, ",") {
			n, value, _ := strings.Cut(strings.TrimSpace(pref), "=")
			if strings.EqualFold(strings.TrimSpace(n), name) {
				return strings.Trim(strings.TrimSpace(value), `"`)
			}
		}
	}
	return ""
}

// parseSearch compiles the parameters of a search on typ.
func (a *api) parseSearch(c *gin.Context, typ string, params url.Values) (*search.Plan, error) {
	plan, err := a.search.Parse(typ, params, a.searchOptions(preference(c, "handling") == "strict", a.baseURL(c)))
	if err != nil {
		return nil, searchError(err)
	}
	return plan, nil
}

// searchError converts a parse error into the server's Error.
func searchError(err error) error {
	var se *search.Error
	if !errors.As(err, &se) {
		return err
	}
	return errorf(se.Status, se.Code, "%s", se.Diagnostics).at(se.Expression)
}

// finder returns the store's search plan executor.
func (a *api) finder() (store.Finder, error) {
	f, ok := a.svc.store.(store.Finder)
	if !ok {
		return nil, errorf(http.StatusNotImplemented, "not-supported", "this storage engine does not search yet")
	}
	return f, nil
}

func (a *api) searchType(c *gin.Context) {
	typ, err := resourceType(c)
	if err != nil {
		c.Error(err)
		return
	}
	a.searchIn(c, typ, nil)
}

// searchCompartment answers GET /Patient/{id}/{type}: a search on type
// restricted to the Patient's compartment, or on every type in it for *.
func (a *api) searchCompartment(c *gin.Context) {
	if c.Param("type") != "Patient" {
		c.Error(errorf(http.StatusNotFound, "not-supported", "only the Patient compartment is searchable"))
		return
	}
	id := c.Param("id")
	if err := checkID(id, ""); err != nil {
		c.Error(err)
		return
	}
	typ := c.Param("compartment")
	if typ == "*" {
		a.searchCompartmentAll(c, id)
		return
	}
	if !isServed(typ) {
		c.Error(errorf(http.StatusNotFound, "not-supported", "resource type %q is not served here", truncate(typ, 64)))
		return
	}
	clause, ok := a.search.Compartment(typ, id)
	if !ok {
		c.Error(errorf(http.StatusNotFound, "not-supported", "%s resources are not in the Patient compartment", typ))
		return
	}
	a.searchIn(c, typ, &clause)
}

// searchIn runs a search on typ, narrowed by extra when set, and answers
// with a searchset Bundle.
func (a *api) searchIn(c *gin.Context, typ string, extra *store.Clause) {
	params, err := searchParams(c)
	if err != nil {
		c.Error(err)
		return
	}
	plan, err := a.parseSearch(c, typ, params)
	if err != nil {
		c.Error(err)
		return
	}
	if extra != nil {
		plan.Query.Where = append(plan.Query.Where, *extra)
	}
	f, err := a.finder()
	if err != nil {
		c.Error(err)
		return
	}
	page, err := f.Find(c.Request.Context(), plan.Query)
	if err != nil {
		c.Error(err)
		return
	}
	self := a.searchURL(c, plan.Params, plan.Query.Cursor)
	b := a.searchBundle(c, self, plan, page.Total)
	b.Link = append(b.Link, bundleLink{Relation: "first", URL: a.searchURL(c, plan.Params, "")})
	if page.Prev != "" {
		b.Link = append(b.Link, bundleLink{Relation: "previous", URL: a.searchURL(c, plan.Params, page.Prev)})
	}
	if page.Next != "" {
		b.Link = append(b.Link, bundleLink{Relation: "next", URL: a.searchURL(c, plan.Params, page.Next)})
	}
	if err := a.addEntries(c, b, plan, page); err != nil {
		c.Error(err)
		return
	}
	a.writeSearchset(c, b)
}

// searchBundle starts the searchset of plan.
func (a *api) searchBundle(c *gin.Context, self string, plan *search.Plan, total int) *bundle {
	b := &bundle{
		ResourceType: "Bundle",
		ID:           newID(),
		Meta:         bundleMeta{LastUpdated: formatInstant(time.Now())},
		Type:         "searchset",
		Link:         []bundleLink{{Relation: "self", URL: self}},
	}
	if total >= 0 {
		b.Total = &total
	}
	return b
}

// addEntries adds a page's matches and included resources to b, reduced as
// _summary or _elements ask, and an outcome entry for ignored parameters.
func (a *api) addEntries(c *gin.Context, b *bundle, plan *search.Plan, page *store.Page) error {
	if plan.Summary == "count" {
		return nil
	}
	shape := url.Values{}
	if plan.Summary != "" {
		shape.Set("_summary", plan.Summary)
	}
	if len(plan.Elements) > 0 {
		shape.Set("_elements", strings.Join(plan.Elements, ","))
	}
	base := a.baseURL(c)
	add := func(v *store.Version, mode string) error {
		body, err := subset(v.Type, v.JSON, shape)
		if err != nil {
			return err
		}
		b.Entry = append(b.Entry, bundleEntry{FullURL: base + "/" + v.Type + "/" + v.ID, Resource: body, Search: &entrySearch{Mode: mode}})
		return nil
	}
	for _, v := range page.Matches {
		if err := add(v, "match"); err != nil {
			return err
		}
	}
	for _, v := range page.Included {
		if err := add(v, "include"); err != nil {
			return err
		}
	}
	var issues []Issue
	for _, e := range plan.Ignored {
		issues = append(issues, Issue{Severity: "warning", Code: e.Code,
			Diagnostics: e.Diagnostics + "; the parameter was ignored", Expression: []string{e.Expression}})
	}
	if page.IncludedCut {
		issues = append(issues, Issue{Severity: "warning", Code: "too-costly",
			Diagnostics: fmt.Sprintf("the included resources stop at the server's bound (1000 a page, 4 rounds of :iterate) "+
				"after %d; more would be included: ask for fewer matches a page (_count) or fewer includes", len(page.Included))})
	}
	if len(issues) > 0 {
		b.Entry = append(b.Entry, bundleEntry{Resource: newOutcome(issues...).marshal(), Search: &entrySearch{Mode: "outcome"}})
	}
	return nil
}

func (a *api) writeSearchset(c *gin.Context, b *bundle) {
	body, err := b.encode()
	if err != nil {
		c.Error(err)
		return
	}
	writeFHIR(c, http.StatusOK, body)
}

// searchURL is the GET URL of a search with the applied parameters and a
// cursor ("" for the first page). Links always use GET, also for POST
// _search, so that a client can follow them.
func (a *api) searchURL(c *gin.Context, params url.Values, cursor string) string {
	p := cloneValues(params)
	if cursor != "" {
		p.Set("_cursor", cursor)
	}
	path := strings.TrimSuffix(c.Request.URL.Path, "/_search")
	u := a.baseURL(c) + path[len("/fhir"):]
	if enc := p.Encode(); enc != "" {
		u += "?" + enc
	}
	return u
}

// searchSystem answers a search across resource types (GET /fhir?_type=…).
func (a *api) searchSystem(c *gin.Context) {
	a.searchAcross(c, servedTypes, "", nil)
}

// searchCompartmentAll answers GET /Patient/{id}/*: a search of every type
// in the Patient's compartment, each restricted to it.
func (a *api) searchCompartmentAll(c *gin.Context, id string) {
	var types []string
	clauses := map[string]store.Clause{}
	for _, t := range servedTypes {
		if clause, ok := a.search.Compartment(t, id); ok {
			types = append(types, t)
			clauses[t] = clause
		}
	}
	a.searchAcross(c, types, "in the Patient compartment", func(typ string) store.Clause { return clauses[typ] })
}

// searchAcross searches each of types, or those of them that _type names,
// with the same parameters, each narrowed by narrow when set; where says
// where types are (for an error naming a type outside them). Each page
// holds the next page of every type that has more. Its cursor holds the
// cursor of each such type; it pages forward only (no previous link).
func (a *api) searchAcross(c *gin.Context, types []string, where string, narrow func(typ string) store.Clause) {
	params, err := searchParams(c)
	if err != nil {
		c.Error(err)
		return
	}
	if list := params.Get("_type"); list != "" {
		var named []string
		for _, t := range strings.Split(list, ",") {
			switch t = strings.TrimSpace(t); {
			case !isServed(t):
				c.Error(errorf(http.StatusBadRequest, "not-supported", "_type: resource type %q is not served here", truncate(t, 64)).at("_type"))
				return
			case !slices.Contains(types, t):
				c.Error(errorf(http.StatusBadRequest, "not-supported", "_type: %s resources are not %s", t, where).at("_type"))
				return
			case !slices.Contains(named, t):
				named = append(named, t)
			}
		}
		types = named
	}
	cursors, err := decodeSystemCursor(params.Get("_cursor"), types)
	if err != nil {
		c.Error(err)
		return
	}
	params.Del("_type")
	params.Del("_cursor")
	f, err := a.finder()
	if err != nil {
		c.Error(err)
		return
	}
	var (
		plans  []*search.Plan
		pages  []*store.Page
		total  = 0
		next   = map[string]string{}
		counts = true
	)
	if err := includesSearched(params, types); err != nil {
		c.Error(err)
		return
	}
	for _, typ := range types {
		if _, more := cursors[typ]; !more {
			continue
		}
		plan, err := a.parseSearch(c, typ, includesOf(params, typ))
		if err != nil {
			c.Error(err)
			return
		}
		if narrow != nil {
			plan.Query.Where = append(plan.Query.Where, narrow(typ))
		}
		plans = append(plans, plan)
	}
	if err := commonToAll(plans); err != nil {
		c.Error(err)
		return
	}
	if err := elementsAcross(plans); err != nil {
		c.Error(err)
		return
	}
	// Every plan now ignores the same parameters: one warning says so.
	for _, plan := range plans[min(1, len(plans)):] {
		plan.Ignored = nil
	}
	for _, plan := range plans {
		typ := plan.Query.Type
		plan.Query.Cursor = cursors[typ]
		page, err := f.Find(c.Request.Context(), plan.Query)
		if err != nil {
			c.Error(err)
			return
		}
		if page.Total < 0 {
			counts = false
		}
		total += page.Total
		if page.Next != "" {
			next[typ] = page.Next
		}
		pages = append(pages, page)
	}
	// The parameters applied: the same for every type, but for each
	// _include, applied to the type it names.
	applied := url.Values{}
	for _, plan := range plans {
		for name, values := range plan.Params {
			for _, v := range values {
				if !slices.Contains(applied[name], v) {
					applied.Add(name, v)
				}
			}
		}
	}
	if list := c.Request.URL.Query().Get("_type"); list != "" {
		applied.Set("_type", list)
	}
	self := a.searchURL(c, applied, c.Request.URL.Query().Get("_cursor"))
	t := -1
	if counts {
		t = total
	}
	b := a.searchBundle(c, self, &search.Plan{}, t)
	b.Link = append(b.Link, bundleLink{Relation: "first", URL: a.searchURL(c, applied, "")})
	if len(next) > 0 {
		b.Link = append(b.Link, bundleLink{Relation: "next", URL: a.searchURL(c, applied, encodeSystemCursor(next))})
	}
	for i := range plans {
		if err := a.addEntries(c, b, plans[i], pages[i]); err != nil {
			c.Error(err)
			return
		}
	}
	a.writeSearchset(c, b)
}

// commonToAll refuses a search across types with a parameter that some of
// them apply and the others ignore: R4 has every parameter of such a
// search be common to all the types it names (search.html, search
// contexts), and ignoring it for some would answer all of their resources.
// A parameter that none of them applies is ignored, as in a search of one
// type.
func commonToAll(plans []*search.Plan) error {
	ignoredBy := map[string][]string{}
	for _, plan := range plans {
		for _, e := range plan.Ignored {
			ignoredBy[e.Expression] = append(ignoredBy[e.Expression], plan.Query.Type)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(ignoredBy)) {
		if by := ignoredBy[name]; len(by) < len(plans) {
			return errorf(http.StatusBadRequest, "not-supported",
				"%s does not apply to %s: a search across types takes only the parameters common to all of them", truncate(name, 64), strings.Join(by, ", ")).at(name)
		}
	}
	return nil
}

// includesSearched refuses an _include (without iterate) of a type that
// is not searched: none of its matches could have the references it names.
func includesSearched(params url.Values, types []string) error {
	for _, v := range params["_include"] {
		if src, _, _ := strings.Cut(v, ":"); v != "*" && !slices.Contains(types, src) {
			return errorf(http.StatusBadRequest, "invalid", "_include=%s names %s, which is not searched", truncate(v, 100), truncate(src, 64)).at("_include")
		}
	}
	return nil
}

// includesOf returns the parameters of a search across types as they apply
// to typ: an _include (without iterate) follows the references of the type
// it names, so it is left out of the other types' searches.
func includesOf(params url.Values, typ string) url.Values {
	incs, ok := params["_include"]
	if !ok {
		return params
	}
	own := slices.DeleteFunc(slices.Clone(incs), func(v string) bool {
		src, _, _ := strings.Cut(v, ":")
		return v != "*" && src != typ
	})
	out := cloneValues(params)
	if len(own) == 0 {
		delete(out, "_include")
	} else {
		out["_include"] = own
	}
	return out
}

// elementsAcross fits the _elements of a search across types to each type:
// an element has to be one of at least one of the types, and each type
// keeps the elements it has (and, as always, its id, meta and mandatory
// elements), rather than a name another type has being an error.
func elementsAcross(plans []*search.Plan) error {
	if len(plans) < 2 || len(plans[0].Elements) == 0 {
		return nil
	}
	types := make([]string, len(plans))
	for i, plan := range plans {
		types[i] = plan.Query.Type
	}
	if name, none := elementOfNone(types, plans[0].Elements); none {
		return errorf(http.StatusBadRequest, "invalid", "_elements: %q is an element of none of the types searched", truncate(name, 64)).at("_elements")
	}
	for _, plan := range plans {
		plan.Elements = elementsOf(plan.Query.Type, plan.Elements)
	}
	return nil
}

// A system search cursor maps each type that has more pages to its cursor.
// The first page is every type from the start ("" cursors).
func decodeSystemCursor(s string, types []string) (map[string]string, error) {
	if s == "" {
		m := make(map[string]string, len(types))
		for _, t := range types {
			m[t] = ""
		}
		return m, nil
	}
	var m map[string]string
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil || len(m) == 0 {
		return nil, store.ErrBadCursor
	}
	for t, cur := range m {
		if !slices.Contains(types, t) || cur == "" {
			return nil, store.ErrBadCursor
		}
	}
	return m, nil
}

func encodeSystemCursor(m map[string]string) string {
	b, _ := json.Marshal(m)
	return base64.RawURLEncoding.EncodeToString(b)
}
