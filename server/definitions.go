package server

// The conformance resources bundled with the server (Config.Definitions: the
// R4 base StructureDefinitions, the R4 core extensions, vital signs profiles,
// terminology and OperationDefinitions, UK Core, and what the host installs:
// the definitions of the operations it serves) are served through the
// ordinary interactions of StructureDefinition, ValueSet, CodeSystem,
// Questionnaire and OperationDefinition, which stay stored types like any
// other. They behave as a server's built-in definitions do for a HAPI or
// Firely user: readable and searchable beside the stored ones, never changed
// by a client.
//
//   - Read: GET [type]/[id] answers the stored resource when the store holds
//     one with that id (410 if it was deleted), else the bundled one. A
//     bundled resource is version 1 (meta.versionId "1", ETag W/"1"); its
//     lastUpdated is its meta.lastUpdated, or else its date. vread of version 1
//     works; it has no history.
//   - Search: GET and POST [type] answer the stored matches first, then the
//     bundled ones, as one searchset paged as one list. Every search parameter
//     applies to the bundled resources except those on the elements too large
//     to index for them (snapshot, differential, compose, expansion, concept:
//     StructureDefinition path or valueset, ValueSet code, CodeSystem code...).
//     A search using one of those answers the stored matches only, with an
//     outcome entry that says so. _sort orders each part. The engine's
//     _include and _revinclude follow the stored matches; those by
//     canonical url also reach the bundled resources, in a search of any
//     type (includeBundled). Searches across types and history list stored
//     resources only.
//   - Operations on an instance: $meta (also on version 1) and $validate
//     find a bundled resource as a read does (bundledInstance).
//   - Writes: bundled resources are read-only. PUT, PATCH and DELETE on the id
//     of a bundled resource that the store does not hold are 405 (Allow: GET,
//     HEAD), and so are $meta-add and $meta-delete. A create or update (also in a transaction) whose canonical url is
//     that of a bundled resource of its type, with the same version or none,
//     is 422 business-rule: the canonical would name two definitions, and the
//     validator would go on using the bundled one. A new version of a bundled
//     canonical (same url, another version) can be stored.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/fhir/search"
	"carefhir/profiles/conformance"
	"carefhir/server/access"
	"carefhir/store"
)

// definitionTypes are the resource types with bundled resources.
var definitionTypes = []string{"CodeSystem", "OperationDefinition", "Questionnaire", "SearchParameter", "StructureDefinition", "ValueSet"}

// unindexedElements are the elements left out of the search values of the
// bundled resources: indexing them costs seconds (large snapshots and
// expansions) for parameters that are rarely used on definitions.
var unindexedElements = []string{"snapshot", "differential", "compose", "expansion", "concept"}

// registerConformance serves the bundled conformance resources beside the
// stored ones and, with a terminology, the terminology operations. It adds
// a middleware to g, so it must run before the routes are registered.
func (a *api) registerConformance(g *gin.RouterGroup) {
	if a.cfg.Definitions != nil {
		a.defs = &definitions{a: a, cat: a.cfg.Definitions}
		g.Use(a.defs.serve)
	}
	a.registerTerminology()
}

// definitions answers the interactions that involve bundled resources.
type definitions struct {
	a   *api
	cat *conformance.Catalogue

	// The search values of the bundled resources, computed on first search.
	once      sync.Once
	entries   map[string][]*bundledEntry // by type, in id order
	unindexed map[string]map[string]bool // by type: the parameters left out
	err       error
}

// bundledEntry is a bundled resource with its search values.
type bundledEntry struct {
	res     *conformance.Resource
	updated time.Time
	index   store.Index
}

// serve is the middleware that answers a request itself when it concerns a
// bundled resource, and otherwise lets the interaction handlers answer.
func (d *definitions) serve(c *gin.Context) {
	typ, id := c.Param("type"), c.Param("id")
	if !slices.Contains(definitionTypes, typ) || strings.HasPrefix(id, "$") {
		return
	}
	method := c.Request.Method
	get := method == http.MethodGet || method == http.MethodHead
	handled := false
	switch c.FullPath() {
	case "/fhir/:type":
		if get {
			d.search(c, typ)
			handled = true
		}
	case "/fhir/:type/_search":
		if method == http.MethodPost {
			d.search(c, typ)
			handled = true
		}
	case "/fhir/:type/:id":
		switch {
		case get:
			handled = d.read(c, typ, id, "")
		case method == http.MethodPut || method == http.MethodPatch || method == http.MethodDelete:
			handled = d.refuseWrite(c, typ, id)
		}
	case "/fhir/:type/:id/_history/:vid":
		if get {
			handled = d.read(c, typ, id, c.Param("vid"))
		}
	}
	if handled {
		c.Abort()
	}
}

// bundledOnly returns the bundled resource typ/id when the store holds no
// resource with that id; handled reports an error already given to c.
func (d *definitions) bundledOnly(c *gin.Context, typ, id string) (r *conformance.Resource, handled bool) {
	r, err := d.a.bundledInstance(c.Request.Context(), typ, id)
	if err != nil {
		c.Error(err)
		return nil, true
	}
	return r, false
}

// bundledInstance returns the bundled resource typ/id when the store holds
// no resource with that id, and nil when it holds one or none is bundled:
// the instance the operations on a resource ($meta, $validate) find, as a
// read of it does.
func (a *api) bundledInstance(ctx context.Context, typ, id string) (*conformance.Resource, error) {
	if a.cfg.Definitions == nil || !slices.Contains(definitionTypes, typ) {
		return nil, nil
	}
	r := a.cfg.Definitions.Get(typ, id)
	if r == nil {
		return nil, nil
	}
	_, err := a.svc.store.Read(ctx, typ, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return r, nil
	case err != nil:
		return nil, err
	}
	return nil, nil
}

// readOnly is the 405 of a change to the bundled resource typ/id, with the
// methods allowed where it was asked (none on $meta-add).
func readOnly(typ, id, allow string) *Error {
	err := errorf(http.StatusMethodNotAllowed, "not-supported",
		"%s/%s is bundled with the server and is read-only: store your own under another id, with its own canonical url or version", typ, id)
	err.Header = http.Header{"Allow": {allow}}
	return err
}

// read answers a read, or a vread of version vid, of a bundled resource.
func (d *definitions) read(c *gin.Context, typ, id, vid string) bool {
	r, handled := d.bundledOnly(c, typ, id)
	if r == nil {
		return handled
	}
	if vid != "" && vid != "1" {
		c.Error(errorf(http.StatusNotFound, "not-found", "%s/%s has no version %q: it is bundled with the server, as version 1", typ, id, truncate(vid, 20)))
		return true
	}
	v, err := bundledVersion(r)
	if err != nil {
		c.Error(err)
		return true
	}
	if !notModified(c, v) {
		d.a.writeVersion(c, http.StatusOK, v)
	}
	return true
}

// refuseWrite refuses an update, patch or delete of a bundled resource.
func (d *definitions) refuseWrite(c *gin.Context, typ, id string) bool {
	r, handled := d.bundledOnly(c, typ, id)
	if r == nil {
		return handled
	}
	c.Error(readOnly(typ, id, "GET, HEAD"))
	return true
}

// checkBundledCanonical refuses to store a definition whose canonical url is
// that of a bundled resource of its type, with the same version or none.
func (a *api) checkBundledCanonical(res fhir.Resource) error {
	if a.cfg.Definitions == nil {
		return nil
	}
	var url, version string
	switch r := res.(type) {
	case *fhir.StructureDefinition:
		url, version = r.Url.Get(), r.Version.Get()
	case *fhir.ValueSet:
		url, version = r.Url.Get(), r.Version.Get()
	case *fhir.CodeSystem:
		url, version = r.Url.Get(), r.Version.Get()
	case *fhir.OperationDefinition:
		url, version = r.Url.Get(), r.Version.Get()
	case *fhir.Questionnaire:
		url, version = r.Url.Get(), r.Version.Get()
	case *fhir.SearchParameter:
		url, version = r.Url.Get(), r.Version.Get()
	default:
		return nil
	}
	typ := res.ResourceType()
	b := a.cfg.Definitions.Canonical(typ, url, version)
	if url == "" || b == nil {
		return nil
	}
	return errorf(http.StatusUnprocessableEntity, "business-rule",
		"%s %s|%s is bundled with the server as %s/%s and is read-only: give yours another url, or another version",
		typ, b.URL, b.Version, typ, b.ID).at(typ + ".url")
}

// bundledVersion returns a bundled resource as a stored version 1, its JSON
// stamped with that version and its lastUpdated.
func bundledVersion(r *conformance.Resource) (*store.Version, error) {
	res, err := fhirjson.Unmarshal(r.JSON)
	if err != nil {
		return nil, fmt.Errorf("bundled %s/%s: %w", r.Type, r.ID, err)
	}
	updated := bundledUpdated(r.JSON)
	meta := res.GetMeta()
	if meta == nil {
		meta = &fhir.Meta{}
	}
	meta.VersionId = fhir.NewId("1")
	meta.LastUpdated = fhir.NewInstant(formatInstant(updated))
	res.SetMeta(meta)
	body, err := fhirjson.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("bundled %s/%s: %w", r.Type, r.ID, err)
	}
	return &store.Version{Type: r.Type, ID: r.ID, VersionID: 1, LastUpdated: updated, JSON: body}, nil
}

// bundledUpdated is when a bundled resource last changed: its
// meta.lastUpdated, or else its date (every bundled resource has one of
// them), at millisecond precision.
func bundledUpdated(raw json.RawMessage) time.Time {
	var head struct {
		Meta struct {
			LastUpdated string `json:"lastUpdated"`
		} `json:"meta"`
		Date string `json:"date"`
	}
	_ = json.Unmarshal(raw, &head) // a bundled resource is valid JSON
	for _, s := range []string{head.Meta.LastUpdated, head.Date} {
		if low, _, ok := search.ParseDate(s); ok {
			return low.UTC().Truncate(time.Millisecond)
		}
	}
	return time.Time{}
}

// index computes the search values of every bundled resource, without the
// unindexed elements, and the parameters that therefore do not apply.
func (d *definitions) index() {
	d.entries = map[string][]*bundledEntry{}
	d.unindexed = map[string]map[string]bool{}
	for _, typ := range definitionTypes {
		skip := map[string]bool{}
		for _, p := range d.a.search.Params(typ) {
			for _, el := range unindexedElements {
				if strings.Contains(p.Expression, typ+"."+el) {
					skip[p.Code] = true
				}
			}
		}
		d.unindexed[typ] = skip
		for _, r := range d.cat.All(typ) {
			dec := json.NewDecoder(bytes.NewReader(r.JSON))
			dec.UseNumber()
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				d.err = fmt.Errorf("index bundled %s/%s: %w", typ, r.ID, err)
				return
			}
			for _, el := range unindexedElements {
				delete(m, el)
			}
			ix, err := d.a.svc.index.Index(typ, m)
			if err != nil {
				d.err = fmt.Errorf("index bundled %s/%s: %w", typ, r.ID, err)
				return
			}
			d.entries[typ] = append(d.entries[typ], &bundledEntry{res: r, updated: bundledUpdated(r.JSON), index: ix})
		}
	}
}

// match returns the bundled resources of typ that plan selects, in its
// order. When plan uses a parameter that does not apply to them, it returns
// none and the parameter.
func (d *definitions) match(typ string, plan *search.Plan) ([]*bundledEntry, string, error) {
	d.once.Do(d.index)
	if d.err != nil {
		return nil, "", d.err
	}
	skip := d.unindexed[typ]
	for i := range plan.Query.Where {
		if p := unappliedParam(&plan.Query.Where[i], skip); p != "" {
			return nil, p, nil
		}
	}
	for _, k := range plan.Query.Sort {
		if skip[k.Param] {
			return nil, "_sort=" + k.Param, nil
		}
	}
	var out []*bundledEntry
next:
	for _, e := range d.entries[typ] {
		for i := range plan.Query.Where {
			if m, _ := store.Match(&plan.Query.Where[i], e.res.ID, e.updated, &e.index); !m {
				continue next
			}
		}
		out = append(out, e)
	}
	if len(plan.Query.Sort) > 0 {
		slices.SortStableFunc(out, func(x, y *bundledEntry) int {
			for _, k := range plan.Query.Sort {
				if c := compareSortValues(x.sortValue(k), y.sortValue(k), k.Desc); c != 0 {
					return c
				}
			}
			return strings.Compare(x.res.ID, y.res.ID)
		})
	}
	return out, "", nil
}

// unappliedParam returns the parameter of clause c that cannot be applied to
// bundled resources, or "": a chain or _has (bundled resources reference
// nothing stored), or a parameter in skip.
func unappliedParam(c *store.Clause, skip map[string]bool) string {
	if c.Chain != nil || c.Has != nil {
		return c.Param
	}
	for i := range c.Any {
		if p := unappliedParam(&c.Any[i], skip); p != "" {
			return p
		}
	}
	if base, _, _ := strings.Cut(c.Param, ":"); skip[base] {
		return c.Param
	}
	return ""
}

// sortValue is the value a resource sorts by for one key; only one of s, f
// and t is used by a parameter.
type sortValue struct {
	ok bool
	s  string
	f  float64
	t  time.Time
}

// sortValue returns e's value for k: its smallest value ascending, its
// largest descending (for dates, the start and the end of their ranges), as
// store.SortKey defines.
func (e *bundledEntry) sortValue(k store.SortKey) sortValue {
	var v sortValue
	consider := func(c sortValue) {
		c.ok = true
		if n := compareSortValues(c, v, false); !v.ok || k.Desc && n > 0 || !k.Desc && n < 0 {
			v = c
		}
	}
	switch k.Param {
	case "_id":
		return sortValue{ok: true, s: e.res.ID}
	case "_lastUpdated":
		return sortValue{ok: true, t: e.updated}
	}
	ix := &e.index
	for _, x := range ix.Strings {
		if x.Param == k.Param {
			consider(sortValue{s: x.Value})
		}
	}
	for _, x := range ix.Tokens {
		if x.Param == k.Param {
			consider(sortValue{s: x.Code})
		}
	}
	for _, x := range ix.URIs {
		if x.Param == k.Param {
			consider(sortValue{s: x.Value})
		}
	}
	for _, x := range ix.References {
		if x.Param == k.Param {
			consider(sortValue{s: x.Target()})
		}
	}
	for _, x := range ix.Numbers {
		if x.Param == k.Param {
			consider(sortValue{f: x.Value})
		}
	}
	for _, x := range ix.Dates {
		if x.Param == k.Param {
			t := x.Low
			if k.Desc {
				t = x.High
			}
			consider(sortValue{t: t})
		}
	}
	return v
}

// compareSortValues orders x and y by one key: a missing value sorts first
// ascending and last descending.
func compareSortValues(x, y sortValue, desc bool) int {
	var n int
	switch {
	case !x.ok && !y.ok:
		return 0
	case !x.ok:
		n = -1
	case !y.ok:
		n = 1
	default:
		n = cmp.Or(strings.Compare(x.s, y.s), cmp.Compare(x.f, y.f), x.t.Compare(y.t))
	}
	if desc {
		return -n
	}
	return n
}

// search answers a search on a definition type: the stored matches, then
// the bundled ones. Its cursor is "s" and the store's cursor while stored
// matches remain, then "b" and an offset into the bundled matches.
func (d *definitions) search(c *gin.Context, typ string) {
	a := d.a
	params, err := searchParams(c)
	if err != nil {
		c.Error(err)
		return
	}
	cursor := params.Get("_cursor")
	params.Del("_cursor")
	storeCursor, offset, inBundled, err := decodeDefinitionCursor(cursor)
	if err != nil {
		c.Error(err)
		return
	}
	plan, err := a.parseSearch(c, typ, params)
	if err != nil {
		c.Error(err)
		return
	}
	bundled, unapplied, err := d.match(typ, plan)
	if err != nil {
		c.Error(err)
		return
	}
	f, err := a.finder()
	if err != nil {
		c.Error(err)
		return
	}
	ctx := c.Request.Context()
	count := plan.Query.Count
	q := plan.Query
	q.Cursor = storeCursor
	if inBundled {
		// Past the stored matches: only their count is wanted, if asked for.
		q.Count, q.Include, q.RevInclude = 0, nil, nil
	}
	page := &store.Page{Total: -1}
	if !inBundled || q.Total != store.TotalNone {
		if page, err = f.Find(ctx, q); err != nil {
			c.Error(err)
			return
		}
	}
	var prev, next string
	switch {
	case !inBundled && page.Next != "":
		next = "s" + page.Next
	case !inBundled:
		offset = 0
		count = max(0, count-len(page.Matches))
	}
	if !inBundled && page.Prev != "" {
		prev = "s" + page.Prev
	}
	end := min(offset+count, len(bundled))
	if next == "" && end < len(bundled) && plan.Query.Count > 0 {
		next = "b" + strconv.Itoa(end)
	}
	matches := page.Matches
	indexes := map[*store.Version]*store.Index{} // of the bundled matches
	if offset < end {
		shown, err := d.unshadowed(c, typ, bundled[offset:end], indexes)
		if err != nil {
			c.Error(err)
			return
		}
		matches = append(matches, shown...)
	}
	total := -1
	if page.Total >= 0 {
		total = page.Total + len(bundled)
	}
	b := a.searchBundle(c, a.searchURL(c, plan.Params, cursor), plan, total)
	b.Link = append(b.Link, bundleLink{Relation: "first", URL: a.searchURL(c, plan.Params, "")})
	for _, l := range []struct{ rel, cursor string }{{"previous", prev}, {"next", next}} {
		if l.cursor != "" {
			b.Link = append(b.Link, bundleLink{Relation: l.rel, URL: a.searchURL(c, plan.Params, l.cursor)})
		}
	}
	shown := &store.Page{Matches: matches, Included: page.Included, IncludedCut: page.IncludedCut}
	if err := a.includeBundled(c, plan, shown, indexes); err != nil {
		c.Error(err)
		return
	}
	if err := a.addEntries(c, b, plan, shown); err != nil {
		c.Error(err)
		return
	}
	if unapplied != "" {
		b.Entry = append(b.Entry, bundleEntry{Search: &entrySearch{Mode: "outcome"}, Resource: newOutcome(Issue{
			Severity: "information", Code: "informational", Expression: []string{unapplied},
			Diagnostics: fmt.Sprintf("%s does not apply to the %ss bundled with the server: only stored ones were searched", unapplied, typ),
		}).marshal()})
	}
	a.writeSearchset(c, b)
}

// unshadowed returns the bundled entries as versions, leaving out those
// whose id the store also holds: the stored resource is the one served.
// It sets indexes[v] to the search values of each version v returned.
func (d *definitions) unshadowed(c *gin.Context, typ string, entries []*bundledEntry, indexes map[*store.Version]*store.Index) ([]*store.Version, error) {
	ids := make([]store.TokenMatch, len(entries))
	for i, e := range entries {
		ids[i] = store.TokenMatch{Code: e.res.ID, AnySystem: true}
	}
	stored, err := d.a.svc.store.Search(c.Request.Context(), store.Query{Type: typ, Where: []store.Clause{{Param: "_id", Tokens: ids}}})
	if err != nil {
		return nil, err
	}
	held := make(map[string]bool, len(stored))
	for _, v := range stored {
		held[v.ID] = true
	}
	var out []*store.Version
	for _, e := range entries {
		if held[e.res.ID] {
			continue
		}
		v, err := bundledVersion(e.res)
		if err != nil {
			return nil, err
		}
		indexes[v] = &e.index
		out = append(out, v)
	}
	return out, nil
}

// decodeDefinitionCursor reads the cursor of a search on a definition type:
// "" for the first page, "s" and a store cursor, or "b" and an offset.
func decodeDefinitionCursor(s string) (storeCursor string, offset int, inBundled bool, err error) {
	switch {
	case s == "":
		return "", 0, false, nil
	case len(s) > 1 && s[0] == 's':
		return s[1:], 0, false, nil
	case len(s) > 1 && s[0] == 'b':
		n, err := strconv.Atoi(s[1:])
		if err != nil || n < 0 {
			return "", 0, false, store.ErrBadCursor
		}
		return "", n, true, nil
	}
	return "", 0, false, store.ErrBadCursor
}

// The bounds of the bundled resources an include adds are the engines'
// (store.MaxIncluded, store.MaxIncludeRounds): rounds after the first
// are :iterate's.
const (
	bundledIterateRounds = store.MaxIncludeRounds - 1
	bundledMaxIncluded   = store.MaxIncluded
)

// includeBundled adds to page.Included what plan's includes by canonical
// url (store.Include.Canonical) reach through the bundled resources, which
// the engines cannot follow as they are not stored: by _include, the
// bundled resources the page names, as the engines follow canonicals to
// stored ones (url|version to the resource of that url and version, a url
// alone to every one of that url); by _revinclude, the stored resources
// naming a bundled match by its url with its version, or with none. A
// bundled resource comes only where a read of it would answer it (see
// bundledInstance): not where the store holds its id, nor to a token that
// may not read its type; a stored one only where a search of its type by
// the token finds it. Each comes once. :iterate goes on from what this
// adds by the same rules, within the engines' bound on includes; it does
// not go on by the engines' own rules (Type/id references) from the
// stored resources this adds. bundled holds the search values of the
// page's matches that are bundled resources; those this adds join them.
func (a *api) includeBundled(c *gin.Context, plan *search.Plan, page *store.Page, bundled map[*store.Version]*store.Index) error {
	d := a.defs
	var incs, revs []store.Include
	for _, inc := range plan.Query.Include {
		if slices.ContainsFunc(inc.Canonical, isDefinitionType) {
			incs = append(incs, inc)
		}
	}
	for _, inc := range plan.Query.RevInclude {
		if slices.ContainsFunc(inc.Canonical, isDefinitionType) {
			revs = append(revs, inc)
		}
	}
	if d == nil || len(incs)+len(revs) == 0 || plan.Summary == "count" {
		return nil
	}
	d.once.Do(d.index)
	if d.err != nil {
		return d.err
	}
	ctx := c.Request.Context()
	seen := map[string]bool{}
	for _, v := range slices.Concat(page.Matches, page.Included) {
		seen[v.Type+"/"+v.ID] = true
	}
	if bundled == nil {
		bundled = map[*store.Version]*store.Index{}
	}
	stored := map[*store.Version]*store.Index{} // no stored version is indexed twice
	indexOf := func(v *store.Version) (*store.Index, error) {
		if ix, ok := bundled[v]; ok {
			return ix, nil
		}
		if ix, ok := stored[v]; ok {
			return ix, nil
		}
		ix, err := a.svc.index.IndexJSON(v.Type, v.JSON)
		if err != nil {
			return nil, fmt.Errorf("include by canonical url from %s/%s: %w", v.Type, v.ID, err)
		}
		stored[v] = &ix
		return &ix, nil
	}
	var round int
	var added []*store.Version
	// add adds v to the page unless it is there; full reports the bound
	// reached, with more to include.
	add := func(v *store.Version) (full bool) {
		key := v.Type + "/" + v.ID
		if seen[key] {
			return false
		}
		if len(page.Included) >= bundledMaxIncluded || round > bundledIterateRounds {
			page.IncludedCut = true
			return true
		}
		seen[key] = true
		page.Included = append(page.Included, v)
		added = append(added, v)
		return false
	}
	// addBundled adds e as a read of it would answer it: not where the
	// store holds its id, nor to a token that may not read its type.
	addBundled := func(e *bundledEntry) (full bool, err error) {
		if seen[e.res.Type+"/"+e.res.ID] {
			return false, nil
		}
		r, err := a.bundledInstance(ctx, e.res.Type, e.res.ID)
		if denied := (*access.Denied)(nil); errors.As(err, &denied) {
			return false, nil
		}
		if err != nil || r == nil { // r is nil where the store holds the id
			return false, err
		}
		bv, err := bundledVersion(r)
		if err != nil {
			return false, err
		}
		bundled[bv] = &e.index
		return add(bv), nil
	}
	matches, included := page.Matches, page.Included
	for ; ; round++ {
		added = nil
		for _, inc := range incs {
			for _, v := range sources(inc, round, matches, included) {
				if v.Type != inc.Type {
					continue
				}
				ix, err := indexOf(v)
				if err != nil {
					return err
				}
				for _, e := range d.named(ix, inc) {
					if full, err := addBundled(e); full || err != nil {
						return err
					}
				}
			}
		}
		for _, inc := range revs {
			for _, v := range sources(inc, round, matches, included) {
				if !slices.Contains(inc.Canonical, v.Type) {
					continue
				}
				ix, err := indexOf(v)
				if err != nil {
					return err
				}
				for _, e := range d.entries[inc.Type] {
					if names(&e.index, inc.Param, ix) {
						if full, err := addBundled(e); full || err != nil {
							return err
						}
					}
				}
				if bundled[v] == nil {
					continue // the engines went back from it to the stored ones
				}
				found, cut, err := a.naming(ctx, inc, ix, max(1, bundledMaxIncluded+1-len(page.Included)), indexOf)
				if err != nil {
					return err
				}
				page.IncludedCut = page.IncludedCut || cut
				for _, f := range found {
					if add(f) {
						return nil
					}
				}
			}
		}
		if len(added) == 0 {
			return nil
		}
		matches, included = nil, added
	}
}

// sources returns the resources that inc follows from in a round of
// includes: the matches in the first, and with :iterate those included
// in the round before (included) too.
func sources(inc store.Include, round int, matches, included []*store.Version) []*store.Version {
	switch {
	case inc.Iterate:
		return slices.Concat(matches, included)
	case round == 0:
		return matches
	}
	return nil
}

// naming returns up to n of the stored resources of inc.Type whose
// parameter inc.Param names a bundled resource of search values ix by its
// url with its version, or by its url alone where they name no version of
// that url (see store.Include), as a search of inc.Type by the token finds
// them: none where it may not search the type. Those naming the url with
// the version are found by it. Those naming the url alone are found among
// every resource naming the url in any version, of which it reads at most
// n: a url named in thousands of other versions costs a page, not the
// database, and cut reports that there were more to read.
func (a *api) naming(ctx context.Context, inc store.Include, ix *store.Index, n int, indexOf func(*store.Version) (*store.Index, error)) (out []*store.Version, cut bool, err error) {
	f, err := a.finder()
	if err != nil {
		return nil, false, err
	}
	seen := map[string]bool{}
	// find adds what a search by canonical names, reading at most n.
	find := func(canonical string) error {
		q := store.Query{Type: inc.Type, Where: []store.Clause{{Param: inc.Param, References: []store.ReferenceMatch{{URL: canonical}}}}, Count: n}
		for read := 0; ; {
			page, err := f.Find(ctx, q)
			if err != nil {
				return err
			}
			for i, v := range page.Matches {
				if len(out) >= n || read >= n {
					cut = cut || i < len(page.Matches) || page.Next != ""
					return nil
				}
				read++
				vix, err := indexOf(v)
				if err != nil {
					return err
				}
				if names(vix, inc.Param, ix) && !seen[v.ID] {
					seen[v.ID] = true
					out = append(out, v)
				}
			}
			if page.Next == "" {
				return nil
			}
			q.Cursor = page.Next
		}
	}
	for _, u := range ix.URIs {
		if u.Param != "url" {
			continue
		}
		var canonicals []string
		for _, t := range ix.Tokens {
			if t.Param == "version" {
				canonicals = append(canonicals, u.Value+"|"+t.Code)
			}
		}
		for _, c := range append(canonicals, u.Value) {
			err := find(c)
			if denied := (*access.Denied)(nil); errors.As(err, &denied) {
				return nil, false, nil
			}
			if err != nil {
				return nil, false, err
			}
		}
	}
	return out, cut, nil
}

// isDefinitionType reports whether typ has bundled resources.
func isDefinitionType(typ string) bool { return slices.Contains(definitionTypes, typ) }

// named returns the bundled resources, of the types inc follows by
// canonical url, that parameter inc.Param of ix names (see names), in id
// order by type.
func (d *definitions) named(ix *store.Index, inc store.Include) []*bundledEntry {
	var out []*bundledEntry
	for _, typ := range inc.Canonical {
		for _, e := range d.entries[typ] {
			if names(ix, inc.Param, &e.index) {
				out = append(out, e)
			}
		}
	}
	return out
}

// names reports whether the canonical urls in parameter param of ix name
// the resource of search values target as the engines follow them (see
// store.Include): by its url and version, or by its url alone, which
// stands for that version alone where param also names the url with it.
func names(ix *store.Index, param string, target *store.Index) bool {
	var keys []string
	for _, r := range ix.References {
		if r.Param == param {
			keys = append(keys, r.Keys()...)
		}
	}
	urls, versions := store.CanonicalKeys(keys)
	for i, url := range urls {
		if slices.ContainsFunc(target.URIs, func(u store.URI) bool { return u.Param == "url" && u.Value == url }) &&
			(versions[i] == "" || slices.ContainsFunc(target.Tokens, func(t store.Token) bool { return t.Param == "version" && t.Code == versions[i] })) {
			return true
		}
	}
	return false
}
