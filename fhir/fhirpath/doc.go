// Package fhirpath evaluates FHIRPath expressions (normative release N1, as
// used by FHIR R4) over FHIR resources held as decoded JSON.
//
// An expression is parsed once into an immutable syntax tree:
//
//	expr, err := fhirpath.Parse("Patient.name.where(use = 'official').family")
//
// and may then be evaluated any number of times, from any number of
// goroutines, against resources:
//
//	res, err := fhirpath.DecodeJSON(body) // or any encoding/json tree
//	out, err := expr.Evaluate(res, nil)
//
// # Input
//
// Resources are the trees produced by encoding/json (map[string]any, []any,
// string, bool, json.Number or float64). DecodeJSON decodes with UseNumber so
// that decimals keep their exact digits: search indexing runs on the stored
// JSON at write time and must see 1.50 as 1.50. The FHIR type of every node is
// derived from the R4 StructureDefinitions in package fhir/definitions, so
// navigation knows that Patient.birthDate is a date, that Observation.value
// is a choice reached as valueQuantity, valueString and so on, and that
// Bundle.entry.resource holds whatever its resourceType says. The primitive
// extension objects ("_birthDate") are merged into their primitive, as FHIR's
// JSON format prescribes.
//
// Navigating to an element the definitions do not have is an error, not an
// empty result, because a misspelt path in a search parameter or invariant
// would otherwise silently match nothing.
//
// # Values
//
// Evaluation yields a collection of Values. Elements of the resource are
// *Node values, which keep their FHIR type and JSON; computed values are the
// FHIRPath system types Boolean, String, Integer, Decimal (exact, on
// math/big), Date, DateTime, Time (with partial precision and optional time
// zone) and Quantity. Node.System converts a primitive node to its system
// value.
//
// # Environment
//
// Env supplies %variables and the callbacks for the functions that need the
// outside world: resolve() (by default a reference "Type/id" resolves to a
// stub of that type, enough for the "where(resolve() is Patient)" pattern of
// search parameters), memberOf() and conformsTo(). A nil *Env is valid.
package fhirpath
