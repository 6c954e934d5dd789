// Package gpconnect maps GP Connect payloads (FHIR STU3, CareConnect-GPC
// and GPConnect profiles) to carefhir's R4 model, and R4 Appointments back
// to GP Connect booking, amend and cancel requests.
//
// Import takes an Access Record: Structured response (a collection Bundle),
// an Appointment Management answer (a Slot search searchset, an Appointment
// read) or a single Foundations resource, and returns a mappers.Result: a
// transaction Bundle of conditional writes and the issues found. The STU3
// payload is parsed and validated by github.com/google/fhir/go's jsonformat
// first, so invalid STU3 is refused with the paths it names rather than
// guessed at; the mapping then runs element by element over the JSON, and
// every STU3 element it does not carry becomes an issue with its STU3 path.
//
// docs/mappers/gpconnect.md records each mapping decision.
package gpconnect
