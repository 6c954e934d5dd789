package server

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"carefhir/fhir"
)

// Placeholders in conditional criteria. The criteria of a conditional
// create (request.ifNoneExist), update, patch or delete, the query of a GET
// entry and a conditional reference may name another entry of the
// transaction by its fullUrl (urn:uuid:…, urn:oid:… or an absolute URL):
// Observation?subject=urn:uuid:… for the Observation of the Patient that
// entry creates or finds. Such a value stands for the resolved Type/id of
// that entry's resource, as a reference would (R4 RESTful API 3.1.0.11.2;
// later versions say so of conditional URLs), and is replaced by it before
// the criteria are matched: left as it is, it would match nothing, and a
// Bundle loaded twice would create its resources twice.

// criteriaWhere is where the criteria of e are in the request Bundle.
func criteriaWhere(e *entry) (field, where string) {
	if e.method == http.MethodPost {
		return "request.ifNoneExist", e.path() + ".request.ifNoneExist"
	}
	return "request.url", e.path() + ".request.url"
}

// settleCriteria replaces the placeholders in the criteria of e, a
// conditional entry or a GET or HEAD, with the Type/id of the entries
// they name, settling first the identity of an entry of the same step
// that e's criteria depend on (see identityOf).
func (u *unit) settleCriteria(ctx context.Context, e *entry, r *entryResult) error {
	raw := e.criteriaRaw()
	if raw == "" {
		return nil
	}
	field, where := criteriaWhere(e)
	searched := e.target.typ
	if e.target.kind == targetCompartment {
		searched = e.target.compartment
	}
	replaced, changed, err := u.a.replacePlaceholders(searched, raw, func(value string) (string, bool, error) {
		o, ok := u.byFullURL[value]
		if !ok {
			if err := u.refs.batchLink(field, value); err != nil && isPlaceholder(value) {
				return "", false, err.at(where)
			}
			return "", false, nil
		}
		ref, err := u.identityOf(ctx, e, o, field, where)
		return ref, err == nil, err
	})
	if err != nil || !changed {
		return err
	}
	typ := e.target.typ
	if e.method == http.MethodGet || e.method == http.MethodHead {
		q, err := parseQuery(replaced)
		if err != nil {
			return badURL(e.url, "its query string is not valid")
		}
		r.query = q
		return nil
	}
	what := map[string]string{http.MethodPost: "ifNoneExist", http.MethodPut: "conditional update",
		http.MethodPatch: "conditional patch", http.MethodDelete: "conditional delete"}[e.method]
	if r.criteria, err = u.a.parseCriteria(typ, replaced, what); err != nil {
		return err
	}
	r.establishes = criteriaKey(typ, replaced)
	return nil
}

// identityOf returns the Type/id of the resource o writes, whose fullUrl
// the criteria of e name. A create or update that names its resource
// itself is known from the start (newUnit); a conditional one once
// settled. One of the same step as e that is not settled yet is settled
// first, so the order of the entries does not matter; one that a later
// step settles, or that depends on e itself, cannot be known: 400.
func (u *unit) identityOf(ctx context.Context, e, o *entry, field, where string) (string, error) {
	if ref, ok := u.refs.ids[o.fullURL]; ok {
		return ref, nil
	}
	r := u.results[o]
	switch {
	case o == e:
		return "", errorf(http.StatusBadRequest, "invalid",
			"%s names %q, the entry's own fullUrl: the criteria select the resource that settles what it names",
			field, truncate(o.fullURL, 100)).at(where)
	case r.settling:
		return "", errorf(http.StatusBadRequest, "invalid",
			"%s names %q, the fullUrl of %s, whose identity depends on this entry's: conditional criteria that name each other cannot be resolved",
			field, truncate(o.fullURL, 100), o.label()).at(where)
	case o.method == e.method:
		if err := u.identify(o.context(ctx), o, r); err != nil {
			var ee *entryError
			if !errors.As(err, &ee) {
				err = &entryError{entry: o, err: err}
			}
			return "", err
		}
		return u.refs.ids[o.fullURL], nil
	}
	return "", errorf(http.StatusBadRequest, "invalid",
		"%s names %q, the fullUrl of %s, whose identity is settled after this entry is processed (DELETE, then POST, then PUT, then PATCH)",
		field, truncate(o.fullURL, 100), o.label()).at(where)
}

// replacePlaceholders returns raw, a query string searching typ, with
// each value of a reference parameter, or item of a comma-separated list
// of them, for which to returns a replacement replaced; changed is false
// when none is. Other values are left alone: an identifier's value may be
// a urn:uuid that is also a fullUrl.
func (a *api) replacePlaceholders(typ, raw string, to func(value string) (string, bool, error)) (out string, changed bool, err error) {
	params := strings.Split(raw, "&")
	for i, p := range params {
		name, value, ok := strings.Cut(p, "=")
		if !ok || !a.referenceParam(typ, name) {
			continue
		}
		decoded, err := url.QueryUnescape(value)
		if err != nil {
			continue // the criteria were checked when read
		}
		items := strings.Split(decoded, ",")
		replaced := false
		for j, item := range items {
			ref, ok, err := to(item)
			if err != nil {
				return "", false, err
			}
			if ok {
				items[j], replaced = ref, true
			}
		}
		if replaced {
			params[i], changed = name+"="+url.QueryEscape(strings.Join(items, ",")), true
		}
	}
	return strings.Join(params, "&"), changed, nil
}

// referenceParam reports whether name, a parameter of a query string
// searching typ as written there, takes references as values: a reference
// parameter, with no modifier or a type modifier (subject:Patient), not
// chained.
func (a *api) referenceParam(typ, name string) bool {
	name, err := url.QueryUnescape(name)
	if err != nil {
		return false
	}
	code, modifier, _ := strings.Cut(name, ":")
	if strings.Contains(code, ".") || modifier != "" && !fhir.IsResourceType(modifier) {
		return false
	}
	p, ok := a.search.Param(typ, code)
	return ok && p.Type == "reference"
}
