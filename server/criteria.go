package server

import (
	"net/http"
	"strings"

	"carefhir/fhir"
	"carefhir/store"
)

// parseCriteria turns the search parameters of a conditional interaction
// into a store query with the search parser. Conditional interactions must
// be exact, so they parse strictly: a parameter that cannot be evaluated is
// a 400, never silently ignored.
func (a *api) parseCriteria(typ, raw, what string) (*store.Query, error) {
	raw = strings.TrimPrefix(raw, typ+"?")
	if other, _, found := strings.Cut(raw, "?"); found && other != typ && fhir.IsResourceType(other) {
		// Read as parameters, the type would be part of the first
		// parameter's name, refused as a parameter Patient does not have.
		return nil, errorf(http.StatusBadRequest, "invalid", "%s criteria name the type %s, but they select a %s: send the search parameters of %s alone, such as identifier=system|value",
			what, other, typ, typ)
	}
	values, err := parseQuery(raw)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "invalid", "%s criteria %q are not a valid query string: %v", what, truncate(raw, 200), err)
	}
	plan, err := a.search.Parse(typ, values, a.searchOptions(true, a.cfg.BaseURL))
	if err != nil {
		return nil, searchError(err)
	}
	if len(plan.Query.Where) == 0 {
		return nil, errorf(http.StatusBadRequest, "invalid", "%s needs search criteria, e.g. identifier=system|value", what)
	}
	return &store.Query{Type: typ, Where: plan.Query.Where}, nil
}

// criteriaKey is the conditional URL typ?raw in one form, whatever the
// order or the encoding of its parameters, so that two ways of writing
// the same criteria compare equal; "" when raw does not parse.
func criteriaKey(typ, raw string) string {
	values, err := parseQuery(strings.TrimPrefix(raw, typ+"?"))
	if err != nil || len(values) == 0 {
		return ""
	}
	return typ + "?" + values.Encode()
}
