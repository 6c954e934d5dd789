package storetest

import (
	"net/url"
	"slices"
	"time"

	"carefhir/fhir/search"
	"carefhir/store"
)

// FuzzTypes are the types the search fuzzers search.
var FuzzTypes = []string{"CarePlan", "Observation", "Patient"}

// FuzzQuery returns the plan of a search a fuzzer drew: query as the query
// string of a search of typ, as reg parses it at now, with a page of 20
// when it names none. It reports false for what is not a search of one of
// FuzzTypes, or what the search layer refuses.
func FuzzQuery(reg *search.Registry, typ, query string, now time.Time) (store.Query, bool) {
	if !slices.Contains(FuzzTypes, typ) {
		return store.Query{}, false
	}
	values, err := url.ParseQuery(query)
	if err != nil {
		return store.Query{}, false
	}
	plan, err := reg.Parse(typ, values, search.Options{Now: now})
	if err != nil {
		return store.Query{}, false
	}
	q := plan.Query
	if q.Count <= 0 {
		q.Count = 20
	}
	return q, true
}
