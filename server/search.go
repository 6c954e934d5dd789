package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"carefhir/fhir/search"
	"carefhir/server/access"
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
	getAndHead(g, "/:type/:id/:compartment", a.orOperation(func(c *gin.Context) { a.searchCompartment(c, c.Param("compartment")) }))
	// POST [base]/Patient/[id]/[type]/_search; POST [base]/Patient/[id]/_search
	// shares the route of an instance's operations (operations.go). The
	// parameter names follow the POST routes' ones.
	g.POST("/:type/:id/:op/_search", func(c *gin.Context) { a.searchCompartment(c, c.Param("op")) })
	a.caps.add("search-type")
	a.caps.addSystem("search-system")
}

// searchParams returns the parameters of a search: the query string and,
// for POST _search, the form-encoded body.
func searchParams(c *gin.Context) (url.Values, error) {
	// A search has no version to match, as a search entry's
	// request.ifMatch has none: ignored, the client would take the page for
	// the versions it named. If-Unmodified-Since is ignored, as RFC 9110
	// (section 13.1.4) has it for a resource with no modification date;
	// If-None-Match is left to caches.
	if c.GetHeader("If-Match") != "" {
		return nil, errorf(http.StatusBadRequest, "invalid", "If-Match is for a read of [type]/[id], PUT, PATCH and DELETE, not a search")
	}
	params := cloneValues(queryOf(c))
	if c.Request.Method != http.MethodPost {
		return params, nil
	}
	ct, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if ct != "application/x-www-form-urlencoded" && ct != "" {
		return nil, errorf(http.StatusUnsupportedMediaType, "not-supported",
			"POST _search takes its parameters as application/x-www-form-urlencoded, not %q", truncate(ct, 80))
	}
	body, err := readAll(c)
	if err != nil {
		return nil, err
	}
	if ct == "" {
		// A POST with its parameters all in the URL and no body needs no
		// media type, and clients send it without one; a body without one
		// cannot be read as a form.
		if len(body) > 0 {
			return nil, errorf(http.StatusUnsupportedMediaType, "not-supported",
				"POST _search takes its parameters as application/x-www-form-urlencoded: a body needs that Content-Type")
		}
		return params, nil
	}
	form, err := parseQuery(string(body))
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "invalid", "the form body is not valid: %v", err)
	}
	if c.GetBool(ctxBearer) && hasTokenParam(form) {
		// RFC 6750 §2.2: as in the query string, a token in the body is
		// not read, and refused rather than ignored.
		return nil, tokenParamError()
	}
	// _format and _pretty shape the answer: sent in the form they count as
	// sent in the URL, whose own, read by the negotiation, win.
	if f := form.Get("_format"); f != "" && params.Get("_format") == "" {
		mt, err := responseType(f, "")
		if err != nil {
			return nil, err
		}
		stateOf(c).mediaType = mt
	}
	if form.Get("_pretty") == "true" {
		c.Set(ctxPretty, true)
	}
	c.Set(ctxSearchForm, form)
	for k, vs := range form {
		params[k] = append(params[k], vs...)
	}
	if rec := access.RecordFrom(c.Request.Context()); rec != nil && len(form) > 0 {
		// The trail records a search's criteria, here those of the form
		// besides those of the URL.
		rec.SetQuery(strings.TrimPrefix(c.Request.URL.RawQuery+"&"+string(body), "&"))
	}
	return params, nil
}

// preference returns the value of a preference of the Prefer header
// (RFC 7240), "" when absent.
func preference(c *gin.Context, name string) string {
	value, _ := prefers(c, name)
	return value
}

// prefers returns the value of the preference name in the Prefer header
// and whether the header states it at all (respond-async has no value).
// The parameters RFC 7240 lets follow a preference after ";" are ignored.
func prefers(c *gin.Context, name string) (string, bool) {
	for _, h := range c.Request.Header.Values("Prefer") {
		for _, pref := range strings.Split(h, ",") {
			pref, _, _ = strings.Cut(pref, ";")
			n, value, _ := strings.Cut(strings.TrimSpace(pref), "=")
			if strings.EqualFold(strings.TrimSpace(n), name) {
				return strings.Trim(strings.TrimSpace(value), `"`), true
			}
		}
	}
	return "", false
}

// parseSearch compiles the parameters of a search on typ, run on the
// server's store.
func (a *api) parseSearch(c *gin.Context, typ string, params url.Values) (*search.Plan, error) {
	return a.parseSearchIn(c, a.svc.store, typ, params)
}

// parseSearchIn compiles the parameters of a search on typ that runs in
// r, which the Lists _list names are read from: a transaction's GET entry
// sees the List an entry before it wrote.
func (a *api) parseSearchIn(c *gin.Context, r store.Reader, typ string, params url.Values) (*search.Plan, error) {
	reg := a.search
	if a.terms != nil && needsTerminology(params) {
		reg = reg.WithTerminology(storedTerms{a: a, c: c, bundled: a.terms})
	}
	// _list needs the Lists it names, which the parser does not read.
	lists := params["_list"]
	if lists != nil {
		params = cloneValues(params)
		params.Del("_list")
	}
	plan, err := reg.Parse(typ, params, a.searchOptions(preference(c, "handling") == "strict", a.baseURL(c)))
	if err != nil {
		return nil, searchError(err)
	}
	if lists != nil {
		if err := a.applyLists(c, r, plan, typ, lists); err != nil {
			return nil, err
		}
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
	typ, err := a.resourceType(c)
	if err != nil {
		c.Error(err)
		return
	}
	a.searchIn(c, typ, nil)
}

// searchCompartment answers GET /Patient/{id}/{typ}, or its POST
// .../_search: a search on typ restricted to the Patient's compartment,
// or on every type in it for *.
func (a *api) searchCompartment(c *gin.Context, typ string) {
	if typ == "_search" {
		// Patient/[id]/_search takes POST alone.
		c.Error(a.notAllowed(c))
		return
	}
	if c.Param("type") != "Patient" {
		c.Error(errorf(http.StatusNotFound, "not-supported", "only the Patient compartment is searchable"))
		return
	}
	id := c.Param("id")
	if err := checkID(id, ""); err != nil {
		c.Error(err)
		return
	}
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
	first := self // the first page's self link is its first
	if plan.Query.Cursor != "" {
		first = a.searchURL(c, plan.Params, "")
	}
	b.Link = append(b.Link, bundleLink{Relation: "first", URL: first})
	if page.Prev != "" {
		b.Link = append(b.Link, bundleLink{Relation: "previous", URL: a.searchURL(c, plan.Params, page.Prev)})
	}
	if page.Next != "" {
		b.Link = append(b.Link, bundleLink{Relation: "next", URL: a.searchURL(c, plan.Params, page.Next)})
	}
	if err := a.includeBundled(c, plan, page, nil); err != nil {
		c.Error(err)
		return
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
	if err := checkShape(plan); err != nil {
		return err
	}
	if plan.Summary != "count" {
		// Room for the matches, the included and an outcome.
		b.Entry = slices.Grow(b.Entry, len(page.Matches)+len(page.Included)+1)
		if err := a.addVersions(c, b, plan, page.Matches, "match"); err != nil {
			return err
		}
		if err := a.addVersions(c, b, plan, page.Included, "include"); err != nil {
			return err
		}
	}
	a.addOutcome(b, plan.Ignored, page.IncludedCut, len(page.Included))
	return nil
}

// checkShape refuses the _summary and _elements of a search of one type
// that subset would refuse on each match, so that a search finding nothing
// is refused as one finding something is.
func checkShape(plan *search.Plan) error {
	if len(plan.Elements) == 0 || plan.Summary == "count" { // count shapes no entry
		return nil
	}
	if plan.Summary != "" && plan.Summary != "false" {
		return errorf(http.StatusBadRequest, "invalid", "use either _summary or _elements, not both").at("_elements")
	}
	if name, none := elementOfNone([]string{plan.Query.Type}, plan.Elements); none {
		return errorf(http.StatusBadRequest, "invalid", "_elements: %q is not an element of %s", truncate(name, 64), plan.Query.Type).at("_elements")
	}
	return nil
}

// addVersions adds versions to b as entries of the search mode, reduced as
// plan's _summary asks and, for matches, as its _elements asks. _elements
// names elements of the searched type, so it leaves included resources
// whole, as other R4 servers do (HAPI, Aidbox).
func (a *api) addVersions(c *gin.Context, b *bundle, plan *search.Plan, versions []*store.Version, mode string) error {
	if len(versions) == 0 {
		return nil
	}
	var shape url.Values // nil: the versions go whole
	if plan.Summary != "" {
		shape = url.Values{"_summary": {plan.Summary}}
	}
	if len(plan.Elements) > 0 && mode == "match" {
		if shape == nil {
			shape = url.Values{}
		}
		shape.Set("_elements", strings.Join(plan.Elements, ","))
	}
	base := a.baseURL(c)
	urls := joinFullURLs(base, versions)
	es := &entrySearch{Mode: mode} // one for all: nothing changes an entry's
	b.Entry = slices.Grow(b.Entry, len(versions))
	for _, v := range versions {
		n := fullURLLen(base, v)
		fullURL := urls[:n]
		urls = urls[n:]
		body := v.JSON
		if shape != nil {
			var err error
			if body, err = subset(v.Type, v.JSON, shape); err != nil {
				return err
			}
		}
		b.Entry = append(b.Entry, bundleEntry{FullURL: fullURL, Resource: body, Search: es})
	}
	return nil
}

// joinFullURLs returns the fullUrls of versions, base/Type/ID, one after
// the other in one string, which addVersions cuts: a page of matches costs
// one allocation for them all.
func joinFullURLs(base string, versions []*store.Version) string {
	n := 0
	for _, v := range versions {
		n += fullURLLen(base, v)
	}
	var all strings.Builder
	all.Grow(n)
	for _, v := range versions {
		all.WriteString(base)
		all.WriteByte('/')
		all.WriteString(v.Type)
		all.WriteByte('/')
		all.WriteString(v.ID)
	}
	return all.String()
}

func fullURLLen(base string, v *store.Version) int { return len(base) + len(v.Type) + len(v.ID) + 2 }

// addOutcome adds an outcome entry to b for the parameters ignored and the
// includes cut at the server's bound after included, if any.
func (a *api) addOutcome(b *bundle, ignored []*search.Error, includedCut bool, included int) {
	var issues []Issue
	for _, e := range ignored {
		issues = append(issues, Issue{Severity: "warning", Code: e.Code,
			Diagnostics: e.Diagnostics + "; the parameter was ignored", Expression: []string{e.Expression}})
	}
	if includedCut {
		issues = append(issues, Issue{Severity: "warning", Code: "too-costly",
			Diagnostics: fmt.Sprintf("the included resources stop at the server's bound (%d a page, %d rounds of :iterate) "+
				"after %d; more would be included: ask for fewer matches a page (_count) or fewer includes", store.MaxIncluded, store.MaxIncludeRounds, included)})
	}
	if len(issues) > 0 {
		b.Entry = append(b.Entry, bundleEntry{Resource: newOutcome(issues...).marshal(), Search: &entrySearch{Mode: "outcome"}})
	}
}

func (a *api) writeSearchset(c *gin.Context, b *bundle) {
	if err := writeBundle(c, http.StatusOK, b); err != nil {
		c.Error(err)
	}
}

// searchURL is the GET URL of a search with the applied parameters and a
// cursor ("" for the first page). Links always use GET, also for POST
// _search, so that a client can follow them.
func (a *api) searchURL(c *gin.Context, params url.Values, cursor string) string {
	p := cloneValues(params)
	for name, values := range answerParams(c) {
		p[name] = values
	}
	if cursor != "" {
		p.Set("_cursor", cursor)
	}
	path, posted := strings.CutSuffix(c.Request.URL.Path, "/_search")
	if posted && c.FullPath() == "/fhir/:type/:id/:op" {
		// POST Patient/{id}/_search searches the whole compartment,
		// which GET names Patient/{id}/*.
		path += "/*"
	}
	u := a.baseURL(c) + path[len("/fhir"):]
	if enc := p.Encode(); enc != "" {
		u += "?" + enc
	}
	return u
}

// ctxSearchForm holds the form of a POST _search, once searchParams has
// read it.
const ctxSearchForm = "carefhir.searchForm"

// answerParams returns the parameters of a search request that say how its
// answer is written rather than what it finds, _format and _pretty, as the
// URL gives them or else the form of a POST _search. A searchset's links
// carry them, so that the pages a client follows come in the format of
// the first, as a history's links do.
func answerParams(c *gin.Context) url.Values {
	query := queryOf(c)
	var form url.Values
	if f, ok := c.Get(ctxSearchForm); ok {
		form = f.(url.Values)
	}
	out := url.Values{}
	for _, name := range [...]string{"_format", "_pretty"} {
		v := query.Get(name)
		if v == "" {
			v = form.Get(name)
		}
		if v != "" {
			out.Set(name, v)
		}
	}
	return out
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
// where types are (for an error naming a type outside them). A page holds
// at most _count matches of all the types together (R4: "Servers SHALL NOT
// return more resources than requested"): without _sort, the types' matches
// one type after the other; with it, the matches of all the types in one
// order (see pageAcross). It pages forward only (no previous link).
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
	// _type and _cursor are read, and restated in the links, from the
	// parameters of the search: the form of a POST _search as well as
	// the URL.
	typeList, cursor := params.Get("_type"), params.Get("_cursor")
	from, err := decodeAcrossCursor(cursor, types)
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
	if err := includesSearched(params, types); err != nil {
		c.Error(err)
		return
	}
	plans := map[string]*search.Plan{}
	var all []*search.Plan
	for _, typ := range types {
		plan, err := a.parseSearch(c, typ, includesOf(params, typ))
		if err != nil {
			c.Error(err)
			return
		}
		if narrow != nil {
			plan.Query.Where = append(plan.Query.Where, narrow(typ))
		}
		plans[typ] = plan
		all = append(all, plan)
	}
	if err := commonToAll(all); err != nil {
		c.Error(err)
		return
	}
	if err := elementsAcross(all); err != nil {
		c.Error(err)
		return
	}
	if err := sortAcross(all); err != nil {
		c.Error(err)
		return
	}
	ctx := c.Request.Context()
	total := -1
	if all[0].Query.Total != store.TotalNone || all[0].Query.Count == 0 {
		if total, err = totalAcross(ctx, f, all); err != nil {
			c.Error(err)
			return
		}
	}
	var page acrossPage
	if all[0].Query.Count > 0 {
		if page, err = pageAcross(ctx, f, plans, from, all[0].Query.Count, len(all[0].Query.Sort) > 0); err != nil {
			c.Error(err)
			return
		}
	}
	// The parameters applied: the same for every type, but for each
	// _include, applied to the type it names.
	applied := url.Values{}
	for _, plan := range all {
		for name, values := range plan.Params {
			for _, v := range values {
				if !slices.Contains(applied[name], v) {
					applied.Add(name, v)
				}
			}
		}
	}
	if typeList != "" {
		applied.Set("_type", typeList)
	}
	self := a.searchURL(c, applied, cursor)
	b := a.searchBundle(c, self, &search.Plan{}, total)
	b.Link = append(b.Link, bundleLink{Relation: "first", URL: a.searchURL(c, applied, "")})
	if len(page.next) > 0 {
		b.Link = append(b.Link, bundleLink{Relation: "next", URL: a.searchURL(c, applied, encodeAcrossCursor(page.next))})
	}
	if all[0].Summary != "count" {
		for _, v := range page.matches {
			if err := a.addVersions(c, b, plans[v.Type], []*store.Version{v}, "match"); err != nil {
				c.Error(err)
				return
			}
		}
		// An included resource may be of a type not searched, which has no
		// plan; it is shaped by _summary alone, the same in every plan.
		if err := a.addVersions(c, b, all[0], page.included, "include"); err != nil {
			c.Error(err)
			return
		}
	}
	// Every plan ignores the same parameters: one warning says so.
	a.addOutcome(b, all[0].Ignored, page.includedCut, len(page.included))
	a.writeSearchset(c, b)
}

// sortAcross refuses a _sort that a search across types cannot apply to
// all of them together: the matches of every type are put in one order, so
// the sort values have to mean the same in each, as only _id and
// _lastUpdated do everywhere (a parameter of the same name may be another
// element, or another type, in each type).
func sortAcross(plans []*search.Plan) error {
	for _, k := range plans[0].Query.Sort {
		if k.Param != "_id" && k.Param != "_lastUpdated" {
			return errorf(http.StatusBadRequest, "not-supported",
				"cannot sort by %s across types: a search of several types sorts by _id and _lastUpdated only", truncate(k.Param, 64)).at("_sort")
		}
	}
	return nil
}

// totalAcross counts the matches of every type.
func totalAcross(ctx context.Context, f store.Finder, plans []*search.Plan) (int, error) {
	total := 0
	for _, plan := range plans {
		q := plan.Query
		q.Count, q.Cursor, q.Include, q.RevInclude = 0, "", nil, nil
		if q.Total == store.TotalNone {
			q.Total = store.TotalAccurate
		}
		page, err := f.Find(ctx, q)
		if err != nil {
			return 0, err
		}
		if page.Total < 0 {
			return -1, nil
		}
		total += page.Total
	}
	return total, nil
}

// acrossPage is a page of a search across types.
type acrossPage struct {
	matches, included []*store.Version
	includedCut       bool
	next              []acrossPosition // where the next page starts; none on the last
}

// acrossPosition is where a type's matches continue: its engine's cursor,
// "" for its first match.
type acrossPosition struct {
	Type   string `json:"t"`
	Cursor string `json:"c,omitempty"`
}

// pageAcross finds the next count matches of the types at from. Unsorted,
// it takes the types' matches in turn: the first type's until it has no
// more, then the next's. Sorted (by _id and _lastUpdated, see sortAcross),
// it reads the next count matches of each type, keeps the first count of
// them all in sort order, then reads again from each type exactly those it
// kept, with their includes, so that each type's cursor continues after
// the last match of it on the page: at most two finds a type a page, but
// for a type some of whose matches the access layer leaves out (Groups
// naming a patient out of reach), which is read again until it holds
// those kept, and whose unread matches may come before the others': the
// page then ends where its matches read end, short of count, even empty,
// with a next link, as a search of that type alone may.
func pageAcross(ctx context.Context, f store.Finder, plans map[string]*search.Plan, from []acrossPosition, count int, sorted bool) (acrossPage, error) {
	var out acrossPage
	find := func(pos acrossPosition, n int, includes bool) (*store.Page, error) {
		q := plans[pos.Type].Query
		q.Cursor, q.Count, q.Total = pos.Cursor, n, store.TotalNone
		if !includes {
			q.Include, q.RevInclude = nil, nil
		}
		return f.Find(ctx, q)
	}
	seen := map[string]bool{}
	take := func(page *store.Page) {
		out.matches = append(out.matches, page.Matches...)
		for _, v := range page.Included {
			if key := v.Type + "/" + v.ID; !seen[key] {
				seen[key] = true
				out.included = append(out.included, v)
			}
		}
		out.includedCut = out.includedCut || page.IncludedCut
	}
	if !sorted {
		for i, pos := range from {
			page, err := find(pos, count-len(out.matches), true)
			if err != nil {
				return out, err
			}
			take(page)
			if page.Next != "" {
				out.next = append([]acrossPosition{{pos.Type, page.Next}}, from[i+1:]...)
				break
			}
			if len(out.matches) == count {
				out.next = from[i+1:]
				break
			}
		}
		return out, nil
	}
	keys := plans[from[0].Type].Query.Sort
	type candidates struct {
		pos     acrossPosition
		matches []*store.Version
		next    string // the engine's cursor after the count it read
		taken   int
	}
	var cands []*candidates
	for _, pos := range from {
		page, err := find(pos, count, false)
		if err != nil {
			return out, err
		}
		cands = append(cands, &candidates{pos: pos, matches: page.Matches, next: page.Next})
	}
	// A type read short of count with more to come had some of what the
	// engine read left out by the access layer: what it has after them
	// may sort before the other types' matches, so none is kept past its
	// last match read, and none at all when it has none.
	readShort := func(v *store.Version) bool {
		for _, c := range cands {
			if len(c.matches) < count && c.next != "" &&
				(len(c.matches) == 0 || sortsBefore(c.matches[len(c.matches)-1], v, keys)) {
				return true
			}
		}
		return false
	}
	for kept := 0; kept < count; kept++ {
		var best *candidates
		for _, c := range cands {
			if c.taken < len(c.matches) && (best == nil || sortsBefore(c.matches[c.taken], best.matches[best.taken], keys)) {
				best = c
			}
		}
		if best == nil || readShort(best.matches[best.taken]) {
			break
		}
		best.taken++
	}
	// The access layer may leave out some of what the engine read (a
	// Group naming a patient out of reach), so a type's matches kept are
	// not always its first rows: it is read again up to the last kept,
	// and a type whose matches were all kept, or all left out, continues
	// after every row read, those left out never being shown.
	for _, c := range cands {
		next := c.pos
		switch {
		case c.taken == 0 && len(c.matches) == 0:
			next.Cursor = c.next
		case c.taken == len(c.matches):
			page, err := find(c.pos, count, true)
			if err != nil {
				return out, err
			}
			take(page)
			next.Cursor = page.Next
		case c.taken > 0:
			// As many rows as were taken, and one more for each left
			// out among them, ending at the last one taken.
			var page *store.Page
			for n := c.taken; ; n += c.taken - len(page.Matches) {
				var err error
				if page, err = find(c.pos, n, true); err != nil {
					return out, err
				}
				if len(page.Matches) >= c.taken || page.Next == "" {
					break
				}
			}
			take(page)
			next.Cursor = page.Next
		}
		if c.taken < len(c.matches) || next.Cursor != "" {
			out.next = append(out.next, next)
		}
	}
	slices.SortStableFunc(out.matches, func(x, y *store.Version) int {
		switch {
		case sortsBefore(x, y, keys):
			return -1
		case sortsBefore(y, x, keys):
			return 1
		}
		return 0
	})
	return out, nil
}

// sortsBefore reports whether x comes before y by keys (of _id and
// _lastUpdated), then by id, as each engine orders one type's matches, then
// by type.
func sortsBefore(x, y *store.Version, keys []store.SortKey) bool {
	for _, k := range keys {
		c := 0
		switch k.Param {
		case "_id":
			c = strings.Compare(x.ID, y.ID)
		case "_lastUpdated":
			c = x.LastUpdated.Compare(y.LastUpdated)
		}
		if k.Desc {
			c = -c
		}
		if c != 0 {
			return c < 0
		}
	}
	if x.ID != y.ID {
		return x.ID < y.ID
	}
	return x.Type < y.Type
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

// A cursor of a search across types lists where each type with more
// matches continues, in the order the types are searched. The first page is
// every type from its start.
func decodeAcrossCursor(s string, types []string) ([]acrossPosition, error) {
	if s == "" {
		from := make([]acrossPosition, len(types))
		for i, t := range types {
			from[i].Type = t
		}
		return from, nil
	}
	var from []acrossPosition
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &from)
	}
	if err != nil || len(from) == 0 {
		return nil, store.ErrBadCursor
	}
	seen := map[string]bool{}
	for _, pos := range from {
		if !slices.Contains(types, pos.Type) || seen[pos.Type] {
			return nil, store.ErrBadCursor
		}
		seen[pos.Type] = true
	}
	return from, nil
}

func encodeAcrossCursor(from []acrossPosition) string {
	b, _ := json.Marshal(from)
	return base64.RawURLEncoding.EncodeToString(b)
}
