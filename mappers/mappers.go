package mappers

import (
	"fmt"
	"time"

	"carefhir/care/calendar"
	"carefhir/fhir"
)

// Today returns the date of now in the UK, YYYY-MM-DD, against which
// every importer refuses dates of birth and death yet to come: a baby
// born in the first hour of a summer day is born today, though the day
// has not begun yet in UTC.
func Today(now time.Time) string { return calendar.Today(now, calendar.UK()) }

// Severity is how much an Issue matters, with the meaning of the FHIR
// OperationOutcome issue severities of the same names.
type Severity string

const (
	// Error: the record (or the payload) cannot be imported as it is.
	Error Severity = "error"
	// Warning: the record is imported but something in it was not carried.
	Warning Severity = "warning"
	// Information: a mapping decision worth reporting, such as a retired
	// code normalised to its current form.
	Information Severity = "information"
)

// Issue is one finding about a source payload.
type Issue struct {
	Severity Severity
	// Path locates the finding in the source: a STU3 FHIRPath such as
	// Bundle.entry[3].resource.extension[0], a CSV "line 12, column
	// DOB", or an HL7 v2 position such as PID-3[2].4.
	Path string
	// Message says what was found and why it matters, for a person.
	Message string
}

func (i Issue) String() string {
	return fmt.Sprintf("%s at %s: %s", i.Severity, i.Path, i.Message)
}

// Errorf returns an Error issue at path.
func Errorf(path, format string, args ...any) Issue {
	return Issue{Severity: Error, Path: path, Message: fmt.Sprintf(format, args...)}
}

// Warnf returns a Warning issue at path.
func Warnf(path, format string, args ...any) Issue {
	return Issue{Severity: Warning, Path: path, Message: fmt.Sprintf(format, args...)}
}

// Result is what an import makes of one payload.
type Result struct {
	// Bundle is an R4 transaction Bundle of conditional writes; nil when
	// the payload cannot be imported at all (see Issues).
	Bundle *fhir.Bundle
	// Issues are the findings about the payload, in source order.
	Issues []Issue
	// Merges, by full URL, complete the conditional updates of the
	// Bundle that write only part of a resource (Transaction.PutPart):
	// a host applies each to the stored version its entry matches.
	Merges map[string]Merge
}

// Merge completes an entry that writes only part of a resource: given a
// copy of the stored version the entry matched, which it may change, it
// returns the resource to write, that version with the entry's part
// applied. ref gives the reference a full URL of the Bundle stands for
// once stored (Type/id of the resource its entry matched), or the full
// URL itself, so that the part's references can be compared with the
// stored version's. An entry that matches nothing is written as it is.
type Merge func(stored fhir.Resource, ref func(fullURL string) string) fhir.Resource

// Failed reports whether any issue is an Error: such a payload is refused
// whole, and nothing of it is stored.
func (r *Result) Failed() bool {
	for _, i := range r.Issues {
		if i.Severity == Error {
			return true
		}
	}
	return false
}
