package server

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"carefhir/fhir/search"
	"carefhir/store"
)

const defaultCount = 20

// bundle is a Bundle as the server writes it. Entries carry the stored JSON
// of each resource as it is, so a history page never re-encodes a resource.
type bundle struct {
	ResourceType string        `json:"resourceType"`
	ID           string        `json:"id"`
	Meta         bundleMeta    `json:"meta"`
	Type         string        `json:"type"`
	Total        *int          `json:"total,omitempty"`
	Link         []bundleLink  `json:"link,omitempty"`
	Entry        []bundleEntry `json:"entry,omitempty"`
}

type bundleMeta struct {
	LastUpdated string `json:"lastUpdated"`
}

type bundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type bundleEntry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Search   *entrySearch    `json:"search,omitempty"`
	Request  *entryRequest   `json:"request,omitempty"`
	Response *entryResponse  `json:"response,omitempty"`
}

// entrySearch is Bundle.entry.search of a searchset.
type entrySearch struct {
	Mode string `json:"mode"` // match, include or outcome
}

type entryRequest struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

type entryResponse struct {
	Status       string `json:"status"`
	Location     string `json:"location,omitempty"`
	Etag         string `json:"etag,omitempty"`
	LastModified string `json:"lastModified,omitempty"`
	// Outcome is an OperationOutcome: the error of a batch entry, or the
	// answer to Prefer: return=OperationOutcome.
	Outcome json.RawMessage `json:"outcome,omitempty"`
}

func (a *api) historyInstance(c *gin.Context) {
	typ, id, err := a.target(c)
	if err != nil {
		c.Error(err)
		return
	}
	// Held, not Read: the current version is not sent unless it is on
	// the page, and the audit trail names what is sent.
	if _, err := a.guard.Held(c.Request.Context(), typ, id, 0); err != nil {
		c.Error(notFound(err, typ, id))
		return
	}
	a.history(c, store.HistoryQuery{Type: typ, ID: id})
}

func (a *api) historyType(c *gin.Context) {
	typ, err := a.resourceType(c)
	if err != nil {
		c.Error(err)
		return
	}
	a.history(c, store.HistoryQuery{Type: typ})
}

// historySystem answers a history of the system, which holds the types the
// API serves alone: the store also keeps the server's own records (export
// jobs, notification outboxes), which are no one's to read through it.
func (a *api) historySystem(c *gin.Context) {
	a.history(c, store.HistoryQuery{Types: servedTypes})
}

// history answers a history interaction with a Bundle of type history,
// newest version first, paged by an opaque cursor.
func (a *api) history(c *gin.Context, q store.HistoryQuery) {
	params := c.Request.URL.Query()
	// A parameter a history does not take (_list among them, which R4
	// names and this server does not support) is left out of the links,
	// which state what was applied, or refused when the client asks for
	// strict handling; a history Bundle has no place for a warning.
	for name := range params {
		if historyParams[name] {
			continue
		}
		if preference(c, "handling") == "strict" {
			c.Error(errorf(http.StatusBadRequest, "not-supported", "parameter %s is not supported on a history", truncate(name, 64)).at(name))
			return
		}
		params.Del(name)
	}
	// Each parameter is read once: given twice, which one the client
	// meant is not known, and the links would state both.
	for name, values := range params {
		if len(values) > 1 && !slices.Contains(generalParams, name) {
			c.Error(errorf(http.StatusBadRequest, "invalid", "%s is given %d times: a history takes it once at most", name, len(values)).at(name))
			return
		}
	}
	var err error
	if q.Count, err = parseCount(params.Get("_count"), a.pageLimit()); err != nil {
		c.Error(err)
		return
	}
	// _summary and _elements reduce each version as they do a search's
	// matches; _summary=count, like _count=0, asks for the total alone.
	shape := url.Values{}
	switch summary := params.Get("_summary"); summary {
	case "", "false", "count":
	case "true", "text", "data":
		shape.Set("_summary", summary)
	default:
		c.Error(errorf(http.StatusBadRequest, "invalid", "_summary must be true, text, data, count or false, not %q", truncate(summary, 20)).at("_summary"))
		return
	}
	// A history of the system holds versions of every type: each keeps
	// the named elements it has, and a name has to be an element of a
	// type the history may hold (of its own type, below the system).
	var elements []string
	if list := params.Get("_elements"); list != "" {
		if shape.Has("_summary") {
			c.Error(errorf(http.StatusBadRequest, "invalid", "use either _summary or _elements, not both").at("_elements"))
			return
		}
		for _, name := range strings.Split(list, ",") {
			elements = append(elements, strings.TrimSpace(name))
		}
		types := servedTypes
		if q.Type != "" {
			types = []string{q.Type}
		}
		if name, none := elementOfNone(types, elements); none {
			c.Error(errorf(http.StatusBadRequest, "invalid", "_elements: %q is not an element of %s", truncate(name, 64), cmp.Or(q.Type, "any type served")).at("_elements"))
			return
		}
	}
	// _count=0 asks for the total alone, as in a search; otherwise the
	// links state the page size used, which may be lower than asked.
	countOnly := q.Count == 0 || params.Get("_summary") == "count"
	if countOnly {
		q.Count = 1
	} else if params.Has("_count") {
		params.Set("_count", strconv.Itoa(q.Count))
	}
	if s := params.Get("_since"); s != "" {
		low, _, err := parseDate(s)
		if err != nil {
			c.Error(errorf(http.StatusBadRequest, "invalid", "_since: %v", err).at("_since"))
			return
		}
		q.Since = low
	}
	if s := params.Get("_at"); s != "" {
		if q.AtLow, q.AtHigh, err = parseDate(s); err != nil {
			c.Error(errorf(http.StatusBadRequest, "invalid", "_at: %v", err).at("_at"))
			return
		}
		if zero := (time.Time{}); !q.AtHigh.After(zero) {
			// _at=0000 ends where Go's zero time begins, which the
			// engines read as "no bound"; nothing was current then.
			q.AtHigh = zero.Add(time.Millisecond)
		}
	}
	cursor, asOf, err := readHistoryCursor(params.Get("_cursor"))
	if err != nil {
		c.Error(err)
		return
	}
	q.Cursor = cursor
	// The Bundle is dated no later than the lastUpdated of any write still
	// under way, taken before the store is read: a version stamped earlier
	// has committed and is on these pages, or is still to come and dated
	// at or after it. So a client taking meta.lastUpdated as its next
	// _since misses nothing, though it may see a version again. A page
	// after the first is dated as the first, whose cursor carries its
	// date: the versions written while a client pages are newer than the
	// first page, where it does not look again.
	settled := a.svc.writes.Settled(a.cfg.HistorySettle)
	if !asOf.IsZero() && asOf.Before(settled) {
		settled = asOf
	}
	var page *store.HistoryPage
	if countOnly {
		// The total alone sends no version, and the audit trail names
		// none, as for a search's count.
		page = &store.HistoryPage{}
		page.Total, err = a.guard.HistoryTotal(c.Request.Context(), q)
	} else {
		page, err = a.svc.store.History(c.Request.Context(), q)
	}
	if err != nil {
		c.Error(err)
		return
	}
	base := a.baseURL(c)
	b := bundle{
		ResourceType: "Bundle",
		ID:           newID(),
		Meta:         bundleMeta{LastUpdated: formatInstant(settled)},
		Type:         "history",
		Link:         []bundleLink{{Relation: "self", URL: a.requestURL(c, params)}},
	}
	// A token that may not read every version the history holds may get
	// no total (see access.Store.History): Bundle.total is optional.
	if page.Total >= 0 {
		b.Total = &page.Total
	}
	if page.Next != "" {
		next := cloneValues(params)
		next.Set("_cursor", page.Next+"."+strconv.FormatInt(settled.UnixMilli(), 10))
		b.Link = append(b.Link, bundleLink{Relation: "next", URL: a.requestURL(c, next)})
	}
	created, err := creations(c.Request.Context(), a.guard, page.Versions)
	if err != nil {
		c.Error(err)
		return
	}
	for _, v := range page.Versions {
		e := historyEntry(base, v, created[v])
		if elements != nil {
			shape.Set("_elements", strings.Join(elementsOf(v.Type, elements), ","))
		}
		if e.Resource != nil {
			if e.Resource, err = subset(v.Type, v.JSON, shape); err != nil {
				c.Error(err)
				return
			}
		}
		b.Entry = append(b.Entry, e)
	}
	if err := writeBundle(c, http.StatusOK, &b); err != nil {
		c.Error(err)
	}
}

// readHistoryCursor splits the _cursor of a history's next link into the
// store's cursor and the date of the history's first page, which follows
// it after a dot (the store's cursors are base64url, which has none). A
// cursor without a date is the store's alone.
func readHistoryCursor(s string) (cursor string, asOf time.Time, err error) {
	i := strings.LastIndexByte(s, '.')
	if i < 0 {
		return s, time.Time{}, nil
	}
	ms, err := strconv.ParseInt(s[i+1:], 10, 64)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("history cursor %q: %w", truncate(s, 80), store.ErrBadCursor)
	}
	return s[:i], time.UnixMilli(ms), nil
}

// historyParams are the parameters a history takes.
var historyParams = map[string]bool{
	"_count": true, "_since": true, "_at": true, "_cursor": true,
	"_summary": true, "_elements": true, "_format": true, "_pretty": true,
}

// historyEntry describes one version as the interaction that made it:
// its request is the method the store recorded with the version (POST
// for a create, PUT for an update, an update as create included, PATCH,
// DELETE), and the URL it acted on: the type for a POST, the resource
// for the others. A version written before methods were recorded is
// described as far as the store tells: a tombstone was a delete, version
// 1 a POST, any other version a PUT (a POST never writes an id that
// existed). A version that created its resource (created: version 1, or
// the first after a deletion) is 201 Created; any other 200 OK.
func historyEntry(base string, v *store.Version, created bool) bundleEntry {
	ref := v.Type + "/" + v.ID
	e := bundleEntry{
		FullURL: base + "/" + ref,
		Response: &entryResponse{
			Etag:         etag(v.VersionID),
			LastModified: formatInstant(v.LastUpdated),
		},
	}
	method := v.Method
	switch {
	case method != "":
	case v.Deleted:
		method = http.MethodDelete
	case v.VersionID == 1:
		method = http.MethodPost
	default:
		method = http.MethodPut
	}
	e.Request = &entryRequest{Method: method, URL: ref}
	if method == http.MethodPost {
		e.Request.URL = v.Type
	}
	if v.Deleted {
		e.Response.Status = "204 No Content"
		return e
	}
	e.Resource = v.JSON
	e.Response.Status = statusLine(http.StatusOK)
	if created {
		e.Response.Status = statusLine(http.StatusCreated)
	}
	e.Response.Location = ref + "/_history/" + strconv.FormatInt(v.VersionID, 10)
	return e
}

// creations reports which of versions created their resource: version 1,
// and a version following a tombstone. The version before is looked for
// among versions, else looked up (Held, which the audit trail does not
// record: that version is not sent); one out of the principal's reach is
// taken for no deletion.
func creations(ctx context.Context, h interface {
	Held(ctx context.Context, typ, id string, version int64) (bool, error)
}, versions []*store.Version) (map[*store.Version]bool, error) {
	type key struct {
		typ, id string
		version int64
	}
	deleted := make(map[key]bool, len(versions))
	for _, v := range versions {
		deleted[key{v.Type, v.ID, v.VersionID}] = v.Deleted
	}
	created := make(map[*store.Version]bool)
	for _, v := range versions {
		if v.Deleted {
			continue
		}
		if v.VersionID == 1 {
			created[v] = true
			continue
		}
		before, ok := deleted[key{v.Type, v.ID, v.VersionID - 1}]
		if !ok {
			deleted, err := h.Held(ctx, v.Type, v.ID, v.VersionID-1)
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				return nil, fmt.Errorf("read the version before %s/%s/_history/%d: %w", v.Type, v.ID, v.VersionID, err)
			default:
				before = deleted
			}
		}
		created[v] = before
	}
	return created, nil
}

// requestURL is the absolute URL of this request with the given parameters.
func (a *api) requestURL(c *gin.Context, params url.Values) string {
	path := c.Request.URL.Path
	base := a.baseURL(c)
	u := base + path[len("/fhir"):]
	if enc := params.Encode(); enc != "" {
		u += "?" + enc
	}
	return u
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// pageLimit is the largest page of a history or $everything: the largest
// page of a search (--max-count), so that every Bundle is bounded alike.
func (a *api) pageLimit() int {
	if n := a.cfg.Limits.Search.Count; n > 0 {
		return n
	}
	return search.MaxCount
}

// parseCount reads _count: default 20, at most limit; 0 stays 0.
func parseCount(s string, limit int) (int, error) {
	if s == "" {
		return defaultCount, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, errorf(http.StatusBadRequest, "invalid", "_count=%q is not a non-negative integer", truncate(s, 20)).at("_count")
	}
	return min(n, limit), nil
}
