// Package fhir is the FHIR R4 (4.0.1) data model: one Go type for every R4
// primitive type, complex data type and resource, generated from the official
// StructureDefinitions vendored in the definitions directory.
//
// Naming follows the FHIR names with the first letter upper-cased: types
// [Patient], [HumanName], [Meta]; fields Meta.VersionId, Patient.BirthDate.
// Backbone elements are named after the owning type and the element path, as
// in [PatientContact] and [BundleEntryRequest]. No FHIR name collides with a Go
// keyword or a method once upper-cased, so no element is renamed; the
// generator fails if one ever does.
//
// Primitive values are structs holding the value together with the element id
// and extensions that JSON carries in "_name" properties, so that
// Patient.BirthDate.Extension holds the extensions of "_birthDate". A nil Value
// means the element has only an id or extensions. Decimals keep the exact text
// they were written with. Each primitive type has a constructor (NewString,
// NewDecimal, ...) and a nil-safe Get method.
//
// A choice element such as Observation.value[x] becomes one field per allowed
// type (ValueQuantity, ValueString, ...); at most one may be set.
//
// Element ids of complex types and backbone elements are plain *string, as in
// JSON they cannot carry extensions; Extension.Url is a plain string. Fields
// of type Resource (contained, Bundle.entry.resource, ...) hold any resource
// through the [Resource] interface.
//
// The struct tag `fhir:"name"` gives the JSON property name of each field, with
// ",choice=base" on the fields of a choice element. Package fhirjson reads and
// writes the JSON representation.
package fhir

//go:generate go run ./internal/fhirgen
