package server_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"carefhir/fhir"
	"carefhir/operation"
	"carefhir/server"
)

// echoCount is a registered operation that counts the Patients with a
// family name given as a parameter, and with POST also stores a Basic
// resource, to show that operations read and write through the service.
var echoCount = operation.Operation{
	Name:       "count-family",
	Definition: "http://example.org/OperationDefinition/count-family",
	Levels:     operation.Type,
	Types:      []string{"Patient"},
	Idempotent: true,
	Invoke: func(ctx context.Context, inv *operation.Invocation) (*operation.Result, error) {
		family, err := inv.Text("family")
		if err != nil {
			return nil, err
		}
		if family == "" {
			return nil, operation.Errorf(http.StatusBadRequest, "required", "Parameters.parameter", "family is required")
		}
		page, err := inv.Store.Search(ctx, "Patient", url.Values{"family": {family}})
		if err != nil {
			return nil, err
		}
		out := &fhir.Parameters{Parameter: []*fhir.ParametersParameter{{Name: fhir.NewString("count"), ValueInteger: fhir.NewInteger(int64(len(page.Matches)))}}}
		return &operation.Result{Resource: out}, nil
	},
}

// flagHooks refuse Patients named "Refused" and derive a Flag about each
// Patient written, in the same unit of work; a Patient named "Broken"
// makes the derived write fail, which must undo the Patient's write too.
var flagHooks = []operation.Hook{{
	Name:  "refuse",
	Types: []string{"Patient"},
	Check: func(ctx context.Context, s operation.Store, c *operation.Change) error {
		if p, ok := c.Resource.(*fhir.Patient); ok && len(p.Name) > 0 && p.Name[0].Family.Get() == "Refused" {
			return operation.Errorf(http.StatusUnprocessableEntity, "business-rule", "Patient.name[0].family", "this family is refused")
		}
		return nil
	},
}, {
	Name:  "flag",
	Types: []string{"Patient"},
	After: func(ctx context.Context, s operation.Store, c *operation.Change) ([]operation.Issue, error) {
		if c.Deleted {
			return nil, nil
		}
		flag := &fhir.Flag{
			Status:  fhir.NewCode("active"),
			Code:    &fhir.CodeableConcept{Text: fhir.NewString("written")},
			Subject: &fhir.Reference{Reference: fhir.NewString("Patient/" + c.ID)},
		}
		if _, err := s.Create(ctx, flag); err != nil {
			return nil, err
		}
		if p := c.Resource.(*fhir.Patient); len(p.Name) > 0 && p.Name[0].Family.Get() == "Broken" {
			return nil, operation.Errorf(http.StatusUnprocessableEntity, "business-rule", "", "broken after the Flag was written")
		}
		return []operation.Issue{{Severity: "warning", Code: "informational", Diagnostics: "flag derived"}}, nil
	},
}}

func withExtensions(cfg *server.Config) {
	cfg.Operations = append(cfg.Operations, echoCount)
	cfg.Hooks = append(cfg.Hooks, flagHooks...)
}

func TestRegisteredOperation(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.create("Patient", `{"resourceType":"Patient","name":[{"family":"Ward"}]}`)
		c.create("Patient", `{"resourceType":"Patient","name":[{"family":"Ward"}]}`)
		got := c.do("GET", "/Patient/$count-family?family=Ward", "").want(t, http.StatusOK).json(t)
		if n := get(got, "parameter", 0, "valueInteger"); n != float64(2) {
			t.Errorf("count = %v, want 2", n)
		}
		body := `{"resourceType":"Parameters","parameter":[{"name":"family","valueString":"Nobody"}]}`
		got = c.do("POST", "/Patient/$count-family", body, "Content-Type", "application/fhir+json").want(t, http.StatusOK).json(t)
		if n := get(got, "parameter", 0, "valueInteger"); n != float64(0) {
			t.Errorf("count = %v, want 0", n)
		}
		c.do("GET", "/Patient/$count-family", "").want(t, http.StatusBadRequest).outcome(t, "required", "Parameters.parameter")
		c.do("GET", "/Observation/$count-family?family=Ward", "").want(t, http.StatusNotFound)
		// The operation's path takes the methods that invoke it alone.
		if r := c.do("PUT", "/Patient/$count-family", "{}", "Content-Type", "application/fhir+json").want(t, http.StatusMethodNotAllowed); r.header.Get("Allow") != "GET, HEAD, POST" {
			t.Errorf("PUT /Patient/$count-family: Allow %q, want GET, HEAD, POST", r.header.Get("Allow"))
		}
		caps := c.do("GET", "/metadata", "").want(t, http.StatusOK).json(t)
		found := false
		for _, r := range get(caps, "rest", 0, "resource").([]any) {
			if str(r, "type") != "Patient" {
				continue
			}
			for _, op := range get(r, "operation").([]any) {
				found = found || str(op, "name") == "count-family" && str(op, "definition") == echoCount.Definition
			}
		}
		if !found {
			t.Error("the CapabilityStatement does not list $count-family on Patient")
		}
	}, withExtensions)
}

func TestWriteHooks(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		// Check refuses, and nothing is stored.
		c.do("POST", "/Patient", `{"resourceType":"Patient","name":[{"family":"Refused"}]}`, "Content-Type", "application/fhir+json").
			want(t, http.StatusUnprocessableEntity).outcome(t, "business-rule", "Patient.name[0].family")
		// After derives a Flag in the same unit of work and its warning
		// reaches the OperationOutcome.
		res := c.do("POST", "/Patient", `{"resourceType":"Patient","name":[{"family":"Ward"}]}`,
			"Content-Type", "application/fhir+json", "Prefer", "return=OperationOutcome").want(t, http.StatusCreated).json(t)
		if str(res, "issue", 1, "diagnostics") != "flag derived" {
			t.Errorf("outcome = %v, want the hook's warning", res)
		}
		flags := c.do("GET", "/Flag?_total=accurate", "").want(t, http.StatusOK).json(t)
		if n := get(flags, "total"); n != float64(1) {
			t.Errorf("%v Flags after one Patient, want 1", n)
		}
		// A hook that fails after deriving a write undoes both writes.
		c.do("POST", "/Patient", `{"resourceType":"Patient","name":[{"family":"Broken"}]}`, "Content-Type", "application/fhir+json").
			want(t, http.StatusUnprocessableEntity)
		pats := c.do("GET", "/Patient?family=Broken&_total=accurate", "").want(t, http.StatusOK).json(t)
		if n := get(pats, "total"); n != float64(0) {
			t.Errorf("%v Patients named Broken, want 0: the failed hook must undo the write", n)
		}
		flags = c.do("GET", "/Flag?_total=accurate", "").want(t, http.StatusOK).json(t)
		if n := get(flags, "total"); n != float64(1) {
			t.Errorf("%v Flags, want 1: the Flag of the failed hook must be undone", n)
		}
		// In a transaction too.
		tx := `{"resourceType":"Bundle","type":"transaction","entry":[
			{"resource":{"resourceType":"Patient","name":[{"family":"Tx"}]},"request":{"method":"POST","url":"Patient"}},
			{"resource":{"resourceType":"Patient","name":[{"family":"Refused"}]},"request":{"method":"POST","url":"Patient"}}]}`
		c.do("POST", "", tx, "Content-Type", "application/fhir+json").want(t, http.StatusUnprocessableEntity)
		pats = c.do("GET", "/Patient?family=Tx&_total=accurate", "").want(t, http.StatusOK).json(t)
		if n := get(pats, "total"); n != float64(0) {
			t.Errorf("%v Patients of the refused transaction, want 0", n)
		}
	}, withExtensions)
}
