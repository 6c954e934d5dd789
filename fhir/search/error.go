package search

import (
	"fmt"
	"net/http"
)

// Error is a search request the server cannot carry out, ready to become an
// OperationOutcome: the HTTP status, the issue code (http://hl7.org/fhir/
// issue-type) and the parameter at fault as the expression.
type Error struct {
	Status      int    // 400 for every error of the request itself
	Code        string // invalid, not-supported, value, not-found…
	Expression  string // the parameter as the client wrote it, e.g. "birthdate:missing"
	Diagnostics string
	// fatal marks a not-supported error that lenient handling does not
	// ignore: the parameter is supported, what its value names is not.
	fatal bool
}

func (e *Error) Error() string {
	if e.Expression == "" {
		return "search: " + e.Diagnostics
	}
	return fmt.Sprintf("search: %s: %s", e.Expression, e.Diagnostics)
}

// invalid returns a 400 "invalid" error about parameter name.
func invalid(name, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid", Expression: name, Diagnostics: fmt.Sprintf(format, args...)}
}

// unsupported returns a 400 "not-supported" error about parameter name: in
// lenient handling it is reported and the parameter ignored instead.
func unsupported(name, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "not-supported", Expression: name, Diagnostics: fmt.Sprintf(format, args...)}
}

// refused returns a 400 "not-supported" error that lenient handling does
// not ignore: a modifier the parameter's type does not have, or a named
// query not known. R4 has servers reject both (search.html#modifiers,
// #query), as ignoring either would answer a wider search than was asked:
// name:text=ann with every patient.
func refused(name, format string, args ...any) *Error {
	e := unsupported(name, format, args...)
	e.fatal = true
	return e
}

// tooMany returns a 400 "too-costly" error about parameter name: the
// request exceeds one of the Limits.
func tooMany(name, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "too-costly", Expression: name, Diagnostics: fmt.Sprintf(format, args...)}
}
