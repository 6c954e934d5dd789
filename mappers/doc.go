// Package mappers is the home of carefhir's GP-system formats: one
// subpackage per format (GP Connect STU3 payloads, PDS patients, CSV cohort
// reports, HL7 v2 ADT), each a set of pure functions tested against real
// payloads, with no HTTP and no store.
//
// An import turns a payload into a Result: an R4 transaction Bundle whose
// entries are conditional writes keyed on identifiers the source system
// owns (an NHS number, an ODS code, a source record id), so importing the
// same payload twice changes nothing the second time, and references
// between new resources use urn:uuid full URLs. The Bundle then goes
// through the server's transaction path like any client's, so an import is
// all or nothing, validated and access-checked like every other write.
// What the source held but the mapping does not carry is never dropped
// silently: each such element is an Issue with its path in the source.
//
// Mapping decisions (code systems, identifiers, what is dropped and why)
// are documented per format in docs/mappers/.
package mappers
