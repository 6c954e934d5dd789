// Package search implements FHIR R4 search from the official definitions:
// the registry of SearchParameters of the served resource types and the
// Patient compartment, the normalisation of values shared by the index and
// the query side, the extraction of a resource's index values by
// evaluating each parameter's FHIRPath expression, and the parser that
// compiles search parameters into a backend-neutral plan (query.Query, of
// package store/query, which the engines read as store.Query) for
// the storage engines to execute.
//
// # Normalisation
//
// Strings are accent-folded, lower-cased and space-collapsed
// (NormalizeString), and keep their text as written for :exact. Tokens are
// system and code as written. Dates are the [low, high] range of instants
// their precision covers (ParseDate; a value without a time zone is in UTC).
// Numbers and quantities keep their decimal text and compare as float64,
// with the range their written precision implies on the query side
// (ParseNumber). References are Type and id, absolute URLs under the
// server's base included (ParseReference); others stay URLs. Values that a
// modifier searches on its own are indexed under "param:modifier": code
// display text under "code:text", identifier types under
// "identifier:of-type", reference identifiers under "subject:identifier".
// Quantities in UCUM units are also indexed in canonical units (package
// fhir/ucum) under CanonicalParam, "value-quantity:canonical", where
// searches in UCUM units compare.
//
// # Terminology
//
// The token modifiers :in, :not-in, :below and :above ask a Terminology,
// attached with Registry.WithTerminology, for the codes they stand for,
// and compile into token clauses of those codes (at most MaxExpansion).
//
// # Errors
//
// Parse returns an *Error, ready to become an OperationOutcome: status 400,
// the issue code and the parameter as its expression. Unknown and
// unsupported parameters are ignored and listed in Plan.Ignored under
// lenient handling (the default), and are errors under strict handling.
package search
