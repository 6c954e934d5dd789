package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"

	"carefhir/server/access"
	"carefhir/store"
)

// storedMatch returns the stored resource that the ifNoneExist criteria of
// e, a conditional create, match: nil if none, 412 if several. The
// conditional creates of a transaction whose criteria are one token
// clause of the same type and parameter (identifier=system|value, the
// common form) are searched for together, once (findCreates): an engine
// that scans to answer a search, as FerretDB does, would otherwise scan
// once for each of them.
func (u *unit) storedMatch(ctx context.Context, e *entry, r *entryResult) (*store.Version, error) {
	if _, ok := singleTokenClause(r.criteria); ok {
		if u.createMatches == nil {
			if err := u.findCreates(ctx); err != nil {
				return nil, err
			}
		}
		if matches, ok := u.createMatches[e]; ok {
			switch len(matches) {
			case 0:
				return nil, nil
			case 1:
				return matches[0], nil
			}
			return nil, errorf(http.StatusPreconditionFailed, "multiple-matches",
				"ifNoneExist criteria match more than one %s", r.criteria.Type)
		}
	}
	return matchCreating(ctx, u.tx, r.criteria, "ifNoneExist")
}

// findCreates searches the store once for each type and parameter of the
// conditional creates whose criteria are one token clause, for the values
// of up to maxCreateTokens of them at a time, and records in createMatches
// which of the resources found each one's criteria match. The store's
// state is the one every conditional create is matched against: the unit
// writes nothing before all are settled. A search that may have been cut
// short by its count, as when criteria match many resources, records
// nothing, and those creates search on their own.
func (u *unit) findCreates(ctx context.Context) error {
	u.createMatches = make(map[*entry][]*store.Version)
	type group struct{ typ, param string }
	groups := make(map[group][]*entry)
	var order []group
	for _, e := range u.entries {
		r := u.results[e]
		if e.err != nil || e.method != http.MethodPost || r.criteria == nil || r.settled {
			continue
		}
		clause, ok := singleTokenClause(r.criteria)
		if !ok {
			continue
		}
		g := group{r.criteria.Type, clause.Param}
		if groups[g] == nil {
			order = append(order, g)
		}
		groups[g] = append(groups[g], e)
	}
	for _, g := range order {
		creates := groups[g]
		if len(creates) < 2 {
			continue
		}
		// A search ORs at most a bounded number of values in one clause
		// (search.Limits.Values), which the engines are built for.
		for start := 0; start < len(creates); {
			end, n := start, 0
			for end < len(creates) && (end == start || n+len(u.results[creates[end]].criteria.Where[0].Tokens) <= maxCreateTokens) {
				n += len(u.results[creates[end]].criteria.Where[0].Tokens)
				end++
			}
			if err := u.findCreatesOf(ctx, g.typ, g.param, creates[start:end]); err != nil {
				return err
			}
			start = end
		}
	}
	return nil
}

// maxCreateTokens bounds the values findCreates ORs in one search.
const maxCreateTokens = 500

// findCreatesOf searches the store once for the stored matches of
// creates, conditional creates of typ whose criteria are one token clause
// of param, and records them in createMatches.
func (u *unit) findCreatesOf(ctx context.Context, typ, param string, creates []*entry) error {
	var tokens []store.TokenMatch
	for _, e := range creates {
		tokens = append(tokens, u.results[e].criteria.Where[0].Tokens...)
	}
	// Each create needs to know of no more than two matches.
	limit := 2*len(creates) + 1
	found, err := searchCreating(ctx, u.tx, store.Query{Type: typ, Where: []store.Clause{{Param: param, Tokens: tokens}}, Count: limit})
	if denied := (*access.Denied)(nil); errors.As(err, &denied) {
		// Some of the creates match what the principal may not reach:
		// each searches on its own, and those are refused alone.
		return nil
	}
	if err != nil || len(found) >= limit {
		return err
	}
	indexes := make([]*store.Index, len(found))
	for i, v := range found {
		ix, err := u.a.svc.index.IndexJSON(v.Type, v.JSON)
		if err != nil {
			return fmt.Errorf("index %s/%s: %w", v.Type, v.ID, err)
		}
		indexes[i] = &ix
	}
	for _, e := range creates {
		clause := u.results[e].criteria.Where[0]
		var matches []*store.Version
		for i, v := range found {
			if ok, _ := store.Match(&clause, v.ID, v.LastUpdated, indexes[i]); ok {
				matches = append(matches, v)
			}
		}
		u.createMatches[e] = matches
	}
	return nil
}

// singleTokenClause returns the clause of q when q is criteria of one
// token clause and nothing else, which memory matches as the engines do.
func singleTokenClause(q *store.Query) (store.Clause, bool) {
	if q == nil || len(q.Where) != 1 || len(q.Sort) > 0 || len(q.Include) > 0 || len(q.RevInclude) > 0 || q.Cursor != "" {
		return store.Clause{}, false
	}
	c := q.Where[0]
	if c.Param == "" || len(c.Tokens) == 0 || !reflect.DeepEqual(c, store.Clause{Param: c.Param, Tokens: c.Tokens}) {
		return store.Clause{}, false
	}
	return c, true
}
