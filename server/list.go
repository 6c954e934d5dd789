package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"carefhir/fhir/lexical"
	"carefhir/fhir/search"
	"carefhir/store"
)

// listClauses compiles the _list parameters of a search of typ (R4
// search.html, _list): each keeps the resources of typ that the entries of
// the Lists it names refer to, a List named by id or as List/id, several
// joined by commas standing for any of them. The Lists are read through
// the request's access, as a read of each would be; one that does not
// exist or is deleted lists nothing. They are read in r, the store or
// unit of work the search runs in. A functional list such as
// $current-problems is not supported (400 under lenient handling too, as
// ignoring it would answer a wider search than was asked).
func (a *api) listClauses(c *gin.Context, r store.Reader, typ string, values []string) ([]store.Clause, error) {
	limit := a.cfg.Limits.Search.Values
	if limit <= 0 {
		limit = search.DefaultLimits.Values
	}
	var clauses []store.Clause
	for _, value := range values {
		if strings.TrimSpace(value) == "" {
			continue // names no List, as an empty value of any parameter
		}
		seen := map[string]bool{}
		clause := store.Clause{Param: "_id"}
		for _, name := range strings.Split(value, ",") {
			id := strings.TrimPrefix(strings.TrimSpace(name), "List/")
			switch {
			case strings.HasPrefix(id, "$"):
				return nil, errorf(http.StatusBadRequest, "not-supported", "_list: the functional list %q is not supported here", truncate(id, 64)).at("_list")
			case !lexical.ValidID(id):
				return nil, errorf(http.StatusBadRequest, "invalid", "_list names a List by its id, not %q", truncate(name, 64)).at("_list")
			}
			ids, err := a.listed(c, r, id, typ)
			if err != nil {
				return nil, err
			}
			for _, id := range ids {
				if !seen[id] {
					seen[id] = true
					clause.Tokens = append(clause.Tokens, store.TokenMatch{Code: id, AnySystem: true})
				}
			}
		}
		if len(clause.Tokens) > limit {
			return nil, errorf(http.StatusBadRequest, "too-costly", "_list: the Lists name %d resources; at most %d may be searched for at once", len(clause.Tokens), limit).at("_list")
		}
		if len(clause.Tokens) == 0 {
			// No resource has the empty id: the Lists name none of typ.
			clause.Tokens = []store.TokenMatch{{Code: "", AnySystem: true}}
		}
		clauses = append(clauses, clause)
	}
	return clauses, nil
}

// listed returns the ids of the resources of typ that the entries of
// List/id, read in r, refer to, by a relative reference or one under the
// server's base, version-specific or not.
func (a *api) listed(c *gin.Context, r store.Reader, id, typ string) ([]string, error) {
	v, err := r.Read(c.Request.Context(), "List", id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case v.Deleted:
		return nil, nil
	}
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
	base := a.baseURL(c) + "/"
	var ids []string
	for _, e := range list.Entry {
		ref := strings.TrimPrefix(e.Item.Reference, base)
		ref, _, _ = strings.Cut(ref, "/_history/")
		if t, rid, ok := strings.Cut(ref, "/"); ok && t == typ && lexical.ValidID(rid) {
			ids = append(ids, rid)
		}
	}
	return ids, nil
}
