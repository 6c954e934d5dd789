package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"carefhir/fhir/fhirjson"
	"carefhir/fhir/fhirpath"
	"carefhir/server/access"
	"carefhir/store"
)

// Issue is one entry of an OperationOutcome.
type Issue struct {
	Severity    string        `json:"severity"`
	Code        string        `json:"code"`
	Details     *issueDetails `json:"details,omitempty"`
	Diagnostics string        `json:"diagnostics,omitempty"`
	Expression  []string      `json:"expression,omitempty"`
}

// issueDetails is the details of an issue: codes saying more than its
// code does.
type issueDetails struct {
	Coding []issueCoding `json:"coding"`
}

type issueCoding struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

// outcome is an OperationOutcome as carefhir writes it. It is encoded
// directly rather than through the generated model: it is built only by the
// server and its shape is fixed.
type outcome struct {
	ResourceType string  `json:"resourceType"`
	Issue        []Issue `json:"issue"`
}

func newOutcome(issues ...Issue) outcome {
	out := make([]Issue, len(issues))
	for i, is := range issues {
		out[i] = is.fhirStrings()
	}
	return outcome{ResourceType: "OperationOutcome", Issue: out}
}

// fhirStrings returns the issue with strings FHIR can carry, in JSON and in
// XML alike. Issues quote what clients sent, such as the name of a search
// parameter: a FHIR string has no control characters other than tab and
// line breaks (they become U+FFFD) and is never empty (an issue about an
// unnamed parameter, from a query string "=0", has no expression).
func (is Issue) fhirStrings() Issue {
	is.Diagnostics = fhirString(is.Diagnostics)
	var exprs []string
	for _, x := range is.Expression {
		if x = fhirString(x); x != "" {
			exprs = append(exprs, x)
		}
	}
	is.Expression = exprs
	return is
}

func fhirString(s string) string {
	valid := utf8.ValidString(s) && !strings.ContainsFunc(s, isControl)
	if valid {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) || r == utf8.RuneError {
			return utf8.RuneError
		}
		return r
	}, strings.ToValidUTF8(s, string(utf8.RuneError)))
}

// isControl reports a character no FHIR string holds.
func isControl(r rune) bool {
	return r < 0x20 && r != '\t' && r != '\n' && r != '\r'
}

func (o outcome) marshal() []byte {
	b, err := json.Marshal(o)
	if err != nil {
		// Only strings and slices of strings: encoding cannot fail.
		panic(fmt.Sprintf("server: encode OperationOutcome: %v", err))
	}
	return b
}

// Error is a FHIR error: an HTTP status and the issues that explain it.
// Handlers return it (or wrap it) and the error middleware renders it as an
// OperationOutcome.
type Error struct {
	Status int
	Issues []Issue
	Header http.Header // extra response headers (e.g. Allow), may be nil
}

func (e *Error) Error() string {
	if len(e.Issues) == 0 {
		return http.StatusText(e.Status)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Issues[0].Code, e.Issues[0].Diagnostics)
}

// errorf builds an Error with one issue of severity error.
func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Issues: []Issue{{
		Severity: "error", Code: code, Diagnostics: fmt.Sprintf(format, args...),
	}}}
}

// at sets the FHIRPath expression of the error's first issue.
func (e *Error) at(expression string) *Error {
	if len(e.Issues) > 0 && expression != "" {
		e.Issues[0].Expression = []string{expression}
	}
	return e
}

// fromError is the one table mapping errors to an HTTP status and an
// OperationOutcome, used for responses and for bundle entries alike.
// Unknown errors are 500 with no internals in the body.
func fromError(err error) (int, outcome, http.Header) {
	var (
		fe       *Error
		decode   *fhirjson.DecodeError
		conflict *store.ConflictError
		costly   *store.TooCostlyError
		large    *store.TooLargeError
		tooBig   *http.MaxBytesError
		denied   *access.Denied
		invalid  *access.Invalid
		versions *tooManyVersions
	)
	switch {
	case errors.As(err, &fe):
		return fe.Status, newOutcome(fe.Issues...), fe.Header
	case errors.As(err, &decode):
		issues := make([]Issue, 0, len(decode.Issues))
		for _, is := range decode.Issues {
			i := Issue{Severity: "error", Code: "structure", Diagnostics: is.Message}
			if is.Syntax {
				i.Code = "invalid"
			}
			if is.Path != "" {
				i.Expression = []string{is.Path}
			}
			issues = append(issues, i)
		}
		return http.StatusBadRequest, newOutcome(issues...), nil
	case errors.As(err, &denied):
		code := "forbidden"
		if denied.Status == http.StatusMethodNotAllowed {
			code = "not-supported"
		}
		return denied.Status, newOutcome(Issue{Severity: "error", Code: code, Diagnostics: denied.Message}), nil
	case errors.As(err, &versions):
		return http.StatusUnprocessableEntity, newOutcome(Issue{Severity: "error", Code: "too-costly", Diagnostics: versions.Error()}), nil
	case errors.As(err, &invalid):
		return http.StatusUnprocessableEntity, newOutcome(Issue{Severity: "error", Code: "invalid",
			Diagnostics: invalid.Message, Expression: []string{invalid.Expression}}), nil
	case errors.As(err, &conflict) && conflict.Pending:
		// On MongoDB, a process that stopped between a write's steps
		// leaves it so until another settles it.
		return http.StatusConflict, newOutcome(Issue{Severity: "error", Code: "conflict",
			Diagnostics: fmt.Sprintf("another request's write of version %d of %s/%s has not finished; retry later",
				conflict.Current+1, conflict.Type, conflict.ID)}), http.Header{"Retry-After": {"5"}}
	case errors.As(err, &conflict):
		return http.StatusConflict, newOutcome(Issue{Severity: "error", Code: "conflict",
			Diagnostics: fmt.Sprintf("%s/%s was changed by another request (version %d is current); retry with the current version",
				conflict.Type, conflict.ID, conflict.Current)}), nil
	case errors.As(err, &costly):
		return http.StatusBadRequest, newOutcome(Issue{Severity: "error", Code: "too-costly",
			Diagnostics: fmt.Sprintf("search parameter %s %s", costly.Param, costly.Reason),
			Expression:  []string{costly.Param}}), nil
	case errors.As(err, &large):
		return http.StatusUnprocessableEntity, newOutcome(Issue{Severity: "error", Code: "too-costly",
			Diagnostics: fmt.Sprintf("%s/%s would be %d bytes as stored, over %s: nothing was stored", large.Type, large.ID, large.Size, large.Limit)}), nil
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge, newOutcome(Issue{Severity: "error", Code: "too-costly",
			Diagnostics: fmt.Sprintf("request body exceeds the limit of %d bytes", tooBig.Limit)}), nil
	case errors.Is(err, store.ErrBadCursor):
		return http.StatusBadRequest, newOutcome(Issue{Severity: "error", Code: "invalid",
			Diagnostics: "the paging cursor is invalid or expired: start again from the first page",
			Expression:  []string{"_cursor"}}), nil
	case errors.Is(err, fhirpath.ErrTooCostly):
		return http.StatusUnprocessableEntity, newOutcome(Issue{Severity: "error", Code: "too-costly",
			Diagnostics: err.Error()}), nil
	case errors.Is(err, context.DeadlineExceeded):
		e := deadlineError(0)
		return e.Status, newOutcome(e.Issues...), e.Header
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, newOutcome(Issue{Severity: "error", Code: "not-found",
			Diagnostics: "resource not found"}), nil
	default:
		return http.StatusInternalServerError, newOutcome(Issue{Severity: "fatal", Code: "exception",
			Diagnostics: "internal server error"}), nil
	}
}
