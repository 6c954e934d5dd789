// Package mappers is the home of carefhir's GP-system formats: one
// subpackage per format (GP Connect STU3 payloads, CSV cohort reports, HL7 v2
// ADT, FHIR R4 bundles), each a pair of pure functions, Import(io.Reader)
// returning R4 resources and Export(resources) returning bytes, tested
// against real payloads. The HTTP operations and CLI subcommands that use
// them are thin wrappers, and every imported resource goes through the same
// store API as a FHIR client's writes. Mapping decisions (code systems,
// identifiers, what is dropped) are documented per format in docs/mappers/.
//
// No format is implemented yet.
package mappers
