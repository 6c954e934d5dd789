package server

import (
	"context"
	"fmt"
	"net/http"
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
		{"body too large", &http.MaxBytesError{Limit: 10}, 413, "too-costly"},
		{"bad cursor", fmt.Errorf("history: %w", store.ErrBadCursor), 400, "invalid"},
		{"not found", fmt.Errorf("read: %w", store.ErrNotFound), 404, "not-found"},
		{"storage failure", fmt.Errorf("sqlite: disk I/O error"), 500, "exception"},
		{"cancelled", context.Canceled, 500, "exception"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, oo, _ := fromError(tt.err)
			if status != tt.status || len(oo.Issue) == 0 || oo.Issue[0].Code != tt.code {
				t.Fatalf("fromError = %d %+v, want %d %s", status, oo.Issue, tt.status, tt.code)
			}
			if status == 500 && oo.Issue[0].Diagnostics != "internal server error" {
				t.Errorf("500 leaks internals: %q", oo.Issue[0].Diagnostics)
			}
		})
	}
}
