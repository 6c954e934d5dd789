package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"carefhir/fhir/lexical"
	"carefhir/fhir/search"
	"carefhir/store"
)

// applyLists narrows plan, a search of typ, by its _list values (R4
// search.html, _list): each keeps the resources of typ that the entries of
// the Lists it names refer to, a List named by id or as List/id, several
// joined by commas standing for any of them. The Lists are read through
// the request's access, as a read of each would be, in r, the store or
// unit of work the search runs in; one that does not exist or is deleted
// lists nothing. A value naming a functional list such as
// $current-problems, which the server does not keep, is not supported: it
// is 400 under strict handling, and otherwise ignored and reported, as an
// unsupported parameter is.
func (a *api) applyLists(c *gin.Context, r store.Reader, plan *search.Plan, typ string, values []string) error {
	limit := a.cfg.Limits.Search.WithDefaults().Values
	// Each List named is a read: the Lists of all the values together are
	// bounded as the values of one parameter are, so that repeating
	// _list does not multiply the reads.
	named := 0
	for _, value := range values {
		named += strings.Count(value, ",") + 1
	}
	if named > limit {
		return errorf(http.StatusBadRequest, "too-costly", "_list names %d Lists; at most %d may be named in one search", named, limit).at("_list")
	}
	for _, value := range values {
		if strings.TrimSpace(value) == "" {
			continue // names no List, as an empty value of any parameter
		}
		names := strings.Split(value, ",")
		for i, name := range names {
			names[i] = strings.TrimPrefix(strings.TrimSpace(name), "List/")
		}
		if i := slices.IndexFunc(names, func(id string) bool { return strings.HasPrefix(id, "$") }); i >= 0 {
			e := &search.Error{Status: http.StatusBadRequest, Code: "not-supported", Expression: "_list",
				Diagnostics: fmt.Sprintf("_list: the functional list %q is not supported here", truncate(names[i], 64))}
			if preference(c, "handling") == "strict" {
				return searchError(e)
			}
			plan.Ignored = append(plan.Ignored, e)
			continue
		}
		seen := map[string]bool{}
		clause := store.Clause{Param: "_id"}
		for _, id := range names {
			if !lexical.ValidID(id) {
				return errorf(http.StatusBadRequest, "invalid", "_list names a List by its id, not %q", truncate(id, 64)).at("_list")
			}
			ids, err := a.listed(c, r, id, typ)
			if err != nil {
				return err
			}
			for _, id := range ids {
				if !seen[id] {
					seen[id] = true
					clause.Tokens = append(clause.Tokens, store.TokenMatch{Code: id, AnySystem: true})
				}
			}
		}
		if len(clause.Tokens) > limit {
			return errorf(http.StatusBadRequest, "too-costly", "_list: the Lists name %d resources; at most %d may be searched for at once", len(clause.Tokens), limit).at("_list")
		}
		if len(clause.Tokens) == 0 {
			// No resource has the empty id: the Lists name none of typ.
			clause.Tokens = []store.TokenMatch{{Code: "", AnySystem: true}}
		}
		plan.Query.Where = append(plan.Query.Where, clause)
		if plan.Params == nil {
			plan.Params = url.Values{}
		}
		plan.Params.Add("_list", value)
	}
	return nil
}

// listed returns the ids of the resources of typ that the entries of
// List/id, read in r, refer to, by a relative reference or one under the
// server's base, version-specific or not.
func (a *api) listed(c *gin.Context, r store.Reader, id, typ string) ([]string, error) {
	refs, err := a.listRefs(c, r, id)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, ref := range refs {
		if ref.Type == typ {
			ids = append(ids, ref.ID)
		}
	}
	return ids, nil
}

// ctxLists holds the references of the Lists a request read from the
// server's store, by id (see listRefs).
const ctxLists = "carefhir.lists"

// listRefs returns the references of the entries of List/id, read in r,
// without the server's base or a version: none when it does not exist or
// is deleted. A List read from the server's store is read once a request,
// as a search across types parses _list once for each type; one read in a
// unit of work is read each time, as the unit may have written it.
func (a *api) listRefs(c *gin.Context, r store.Reader, id string) ([]search.Reference, error) {
	var read map[string][]search.Reference // nil: read in a unit of work
	if r == a.svc.store {
		lists, _ := c.Get(ctxLists)
		if read, _ = lists.(map[string][]search.Reference); read == nil {
			read = map[string][]search.Reference{}
			c.Set(ctxLists, read)
		}
		if refs, ok := read[id]; ok {
			return refs, nil
		}
	}
	var refs []search.Reference
	v, err := r.Read(c.Request.Context(), "List", id)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, err
	case !v.Deleted:
		var list struct {
			Entry []struct {
				Item struct {
					Reference string `json:"reference"`
				} `json:"item"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(v.JSON, &list); err != nil {
			return nil, fmt.Errorf("read List/%s: %w", id, err)
		}
		base := a.baseURL(c)
		for _, e := range list.Entry {
			refs = append(refs, search.ParseReference(e.Item.Reference, base))
		}
	}
	if read != nil {
		read[id] = refs
	}
	return refs, nil
}
