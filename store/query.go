package store

import (
	"time"

	"carefhir/store/query"
)

// The search values and the search plan are package query's, which
// fhir/search compiles into without importing store; store names them too,
// so that engines and their callers speak of store.Query and store.Index.

type (
	Index          = query.Index
	Token          = query.Token
	String         = query.String
	Date           = query.Date
	Number         = query.Number
	Quantity       = query.Quantity
	Reference      = query.Reference
	URI            = query.URI
	Composite      = query.Composite
	Query          = query.Query
	Clause         = query.Clause
	Presence       = query.Presence
	Prefix         = query.Prefix
	StringMode     = query.StringMode
	TokenMatch     = query.TokenMatch
	StringMatch    = query.StringMatch
	DateMatch      = query.DateMatch
	NumberMatch    = query.NumberMatch
	QuantityMatch  = query.QuantityMatch
	ReferenceMatch = query.ReferenceMatch
	URIMode        = query.URIMode
	URIMatch       = query.URIMatch
	CompositeMatch = query.CompositeMatch
	Chain          = query.Chain
	Has            = query.Has
	SortKey        = query.SortKey
	Total          = query.Total
	Include        = query.Include
	Bound          = query.Bound
)

// The bounds on what includes add to one page (see query.MaxIncluded).
const (
	MaxIncluded      = query.MaxIncluded
	MaxIncludeRounds = query.MaxIncludeRounds
)

const (
	PresenceAny = query.PresenceAny
	Missing     = query.Missing
	Present     = query.Present

	Eq = query.Eq
	Ne = query.Ne
	Gt = query.Gt
	Lt = query.Lt
	Ge = query.Ge
	Le = query.Le
	Sa = query.Sa
	Eb = query.Eb
	Ap = query.Ap

	StringPrefix   = query.StringPrefix
	StringExact    = query.StringExact
	StringContains = query.StringContains

	URIExact = query.URIExact
	URIBelow = query.URIBelow
	URIAbove = query.URIAbove

	TotalNone     = query.TotalNone
	TotalEstimate = query.TotalEstimate
	TotalAccurate = query.TotalAccurate

	RefTyped = query.RefTyped
	RefURL   = query.RefURL
)

// MinTime and MaxTime are the open ends of date ranges.
var (
	MinTime = query.MinTime
	MaxTime = query.MaxTime
)

// Match is query.Match.
func Match(c *Clause, id string, lastUpdated time.Time, ix *Index) (match, ok bool) {
	return query.Match(c, id, lastUpdated, ix)
}

// HasValue is query.HasValue.
func HasValue(ix *Index, param string) bool { return query.HasValue(ix, param) }

// PresentParam is query.PresentParam.
func PresentParam(param string) string { return query.PresentParam(param) }

// CompositeKey is query.CompositeKey.
func CompositeKey(parts []string) string { return query.CompositeKey(parts) }

// CanonicalKeys is query.CanonicalKeys.
func CanonicalKeys(keys []string) (urls, versions []string) { return query.CanonicalKeys(keys) }

// SplitCompositeKey is query.SplitCompositeKey.
func SplitCompositeKey(key string) []string { return query.SplitCompositeKey(key) }
