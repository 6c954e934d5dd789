package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"carefhir/fhir/fhirjson"
	"carefhir/store"
)

// TestFromError pins the one table from errors to HTTP statuses and
// OperationOutcome issue codes, including the errors no HTTP test can
// provoke on demand (a write that keeps losing its race, a storage failure).
func TestFromError(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"fhir error", errorf(http.StatusGone, "deleted", "gone"), 410, "deleted"},
		{"wrapped fhir error", fmt.Errorf("ctx: %w", errorf(http.StatusPreconditionFailed, "conflict", "x")), 412, "conflict"},
		{"decode syntax", &fhirjson.DecodeError{Issues: []fhirjson.Issue{{Message: "bad", Syntax: true}}}, 400, "invalid"},
		{"decode structure", &fhirjson.DecodeError{Issues: []fhirjson.Issue{{Path: "Patient.x", Message: "unknown"}}}, 400, "structure"},
		{"lost race", fmt.Errorf("put: %w", &store.ConflictError{Type: "Patient", ID: "1", Expected: 1, Current: 2}), 409, "conflict"},
		{"next version pending", fmt.Errorf("put: %w", &store.ConflictError{Type: "Patient", ID: "1", Expected: 1, Current: 1, Pending: true}), 409, "conflict"},
		{"body too large", &http.MaxBytesError{Limit: 10}, 413, "too-costly"},
		{"bad cursor", fmt.Errorf("history: %w", store.ErrBadCursor), 400, "invalid"},
		{"not found", fmt.Errorf("read: %w", store.ErrNotFound), 404, "not-found"},
		{"storage failure", fmt.Errorf("sqlite: disk I/O error"), 500, "exception"},
		{"cancelled", context.Canceled, 500, "exception"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, oo, h := fromError(tt.err)
			if status != tt.status || len(oo.Issue) == 0 || oo.Issue[0].Code != tt.code {
				t.Fatalf("fromError = %d %+v, want %d %s", status, oo.Issue, tt.status, tt.code)
			}
			if tt.name == "next version pending" && (h.Get("Retry-After") == "" ||
				oo.Issue[0].Diagnostics != "another request's write of version 2 of Patient/1 has not finished; retry later") {
				t.Errorf("pending write: %q, Retry-After %q", oo.Issue[0].Diagnostics, h.Get("Retry-After"))
			}
			if status == 500 && oo.Issue[0].Diagnostics != "internal server error" {
				t.Errorf("500 leaks internals: %q", oo.Issue[0].Diagnostics)
			}
		})
	}
}

// An OperationOutcome quoting what a client sent still holds only strings
// FHIR allows, so that it can be written as XML too.
func TestOutcomeFHIRStrings(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   Issue
		want Issue
	}{
		{"plain", Issue{Diagnostics: "bad date", Expression: []string{"birthdate"}}, Issue{Diagnostics: "bad date", Expression: []string{"birthdate"}}},
		{"control characters", Issue{Diagnostics: "no parameter \x01", Expression: []string{"a\x00b"}}, Issue{Diagnostics: "no parameter \uFFFD", Expression: []string{"a\uFFFDb"}}},
		{"line breaks kept", Issue{Diagnostics: "a\tb\nc\r"}, Issue{Diagnostics: "a\tb\nc\r"}},
		{"invalid UTF-8", Issue{Diagnostics: "caf\xe9"}, Issue{Diagnostics: "caf\uFFFD"}},
		{"empty expression", Issue{Diagnostics: "x", Expression: []string{"", "name"}}, Issue{Diagnostics: "x", Expression: []string{"name"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Severity, tt.in.Code = "error", "invalid"
			got := newOutcome(tt.in).Issue[0]
			if got.Diagnostics != tt.want.Diagnostics || !slices.Equal(got.Expression, tt.want.Expression) {
				t.Errorf("got %q %q, want %q %q", got.Diagnostics, got.Expression, tt.want.Diagnostics, tt.want.Expression)
			}
			if _, err := toXML(newOutcome(tt.in).marshal(), ""); err != nil {
				t.Errorf("as XML: %v", err)
			}
		})
	}
}
