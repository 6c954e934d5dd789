package main

import (
	"flag"
	"time"

	"carefhir/fhir/patch"
	"carefhir/fhir/search"
	"carefhir/server"
)

// limitsConfig holds the flags of the bounds on what one request may cost
// (docs/limits.md lists them).
type limitsConfig struct {
	Deadline        time.Duration `flag:"request-deadline" validate:"gt=0"`
	UnitOfWork      time.Duration `flag:"unit-of-work-timeout" validate:"gt=0"`
	SearchParams    int           `flag:"max-search-params" validate:"min=1"`
	ORValues        int           `flag:"max-or-values" validate:"min=1,max=1000"`
	Count           int           `flag:"max-count" validate:"min=1"`
	ChainDepth      int           `flag:"max-chain-depth" validate:"min=1,max=8"`
	Includes        int           `flag:"max-includes" validate:"min=1"`
	Elements        int           `flag:"max-elements" validate:"min=1"`
	SearchTerms     int           `flag:"max-search-terms" validate:"min=1"`
	BundleEntries   int           `flag:"max-bundle-entries" validate:"min=1"`
	PatchOperations int           `flag:"max-patch-operations" validate:"min=1"`
}

// defaultLimits are the server's defaults, as flags.
func defaultLimits() limitsConfig {
	s := search.DefaultLimits
	return limitsConfig{
		Deadline:        server.DefaultDeadline,
		UnitOfWork:      server.DefaultUnitOfWork,
		SearchParams:    s.Params,
		ORValues:        s.Values,
		Count:           s.Count,
		ChainDepth:      s.Chain,
		Includes:        s.Includes,
		Elements:        s.Elements,
		SearchTerms:     s.Terms,
		BundleEntries:   server.DefaultBundleEntries,
		PatchOperations: patch.DefaultLimits.Operations,
	}
}

// addLimitFlags defines the limit flags on fs, storing into l.
func addLimitFlags(fs *flag.FlagSet, l *limitsConfig) {
	fs.DurationVar(&l.Deadline, "request-deadline", l.Deadline, "longest a request's work may take; its queries are stopped then (503)")
	fs.DurationVar(&l.UnitOfWork, "unit-of-work-timeout", l.UnitOfWork, "longest a transaction Bundle, batch entry, conditional create or conditional update may hold the store's writer (503)")
	fs.IntVar(&l.SearchParams, "max-search-params", l.SearchParams, "most filter parameters in one search (400)")
	fs.IntVar(&l.ORValues, "max-or-values", l.ORValues, "most comma-separated values in one search parameter, up to 1000 (400)")
	fs.IntVar(&l.Count, "max-count", l.Count, "largest page of a search, a history or $everything; a larger _count is lowered to it")
	fs.IntVar(&l.ChainDepth, "max-chain-depth", l.ChainDepth, "deepest nesting of chains and _has, up to 8 (400)")
	fs.IntVar(&l.Includes, "max-includes", l.Includes, "most distinct _include and _revinclude in one search (400)")
	fs.IntVar(&l.Elements, "max-elements", l.Elements, "most element names in _elements (400)")
	fs.IntVar(&l.SearchTerms, "max-search-terms", l.SearchTerms, "most terms a search expands to, values counted once per type a chain reaches (400)")
	fs.IntVar(&l.BundleEntries, "max-bundle-entries", l.BundleEntries, "most entries in a transaction or batch Bundle (413)")
	fs.IntVar(&l.PatchOperations, "max-patch-operations", l.PatchOperations, "most operations in one JSON Patch or FHIRPath Patch (422)")
}

// server returns the limits as the server takes them.
func (l limitsConfig) server() server.Limits {
	return server.Limits{
		Deadline:   l.Deadline,
		UnitOfWork: l.UnitOfWork,
		Search: search.Limits{
			Params: l.SearchParams, Values: l.ORValues, Chain: l.ChainDepth, Elements: l.Elements,
			Includes: l.Includes, Count: l.Count, Terms: l.SearchTerms,
		},
		PatchOperations: l.PatchOperations,
		BundleEntries:   l.BundleEntries,
	}
}
