package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"carefhir/care"
)

// operationDefinition is what these tests read of an OperationDefinition.
type operationDefinition struct {
	ResourceType, ID, URL, Code string
	Resource                    []string
	System, Type, Instance      bool
	Parameter                   []struct{ Name, Use, Type string }
}

// definitionSearchset is what these tests read of a search's answer.
type definitionSearchset struct {
	Entry []struct{ Resource operationDefinition }
}

// fetchJSON GETs url and decodes its JSON body into v, returning the status.
func fetchJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %d, %v", url, resp.StatusCode, err)
	}
	return resp.StatusCode
}

// definitionOf finds the OperationDefinition of canonical url as a client
// resolves it: a search by url, answered with exactly that one.
func definitionOf(t *testing.T, base, canonical string) (*operationDefinition, bool) {
	t.Helper()
	var b definitionSearchset
	status := fetchJSON(t, base+"/OperationDefinition?url="+url.QueryEscape(canonical), &b)
	if status != http.StatusOK || len(b.Entry) != 1 || b.Entry[0].Resource.URL != canonical {
		t.Errorf("GET OperationDefinition?url=%s: %d with %d entries, want 200 with the one definition", canonical, status, len(b.Entry))
		return nil, false
	}
	return &b.Entry[0].Resource, true
}

// TestCapabilityStatementDefinitionsResolve checks that every
// OperationDefinition the CapabilityStatement names can be found by its
// canonical url and read by its id, that it defines the operation under
// the name listed and at the level where it is listed (the system, or the
// type), and that the server's definitions are read-only.
func TestCapabilityStatementDefinitionsResolve(t *testing.T) {
	for name, args := range engineArgs() {
		t.Run(name, func(t *testing.T) {
			p := start(t, args(t)...)
			ops := capabilityOperations(t, p.base)
			if len(ops) == 0 {
				t.Fatal("the CapabilityStatement lists no operations")
			}
			seen := map[string]*operationDefinition{}
			for _, op := range ops {
				if d, ok := seen[op.Definition]; ok {
					if d != nil {
						checkDefinedWhereListed(t, op, d)
					}
					continue
				}
				d, ok := definitionOf(t, p.base, op.Definition)
				seen[op.Definition] = d
				if !ok {
					continue
				}
				checkDefinedWhereListed(t, op, d)
				if d.Code != op.Name {
					t.Errorf("%s defines $%s, listed as $%s", op.Definition, d.Code, op.Name)
				}
				var read operationDefinition
				if status := fetchJSON(t, p.base+"/OperationDefinition/"+d.ID, &read); status != http.StatusOK || read.URL != op.Definition {
					t.Errorf("GET OperationDefinition/%s: %d, url %q; want 200, %s", d.ID, status, read.URL, op.Definition)
				}
			}

			var found definitionSearchset
			if status := fetchJSON(t, p.base+"/OperationDefinition?code=caseload&name=Caseload", &found); status != http.StatusOK ||
				len(found.Entry) != 1 || found.Entry[0].Resource.URL != care.Base+"/OperationDefinition/caseload" {
				t.Errorf("GET OperationDefinition?code=caseload&name=Caseload: %d, %+v; want the definition of $caseload", status, found.Entry)
			}

			// A write to a server's definition is refused, and the one
			// found by its url is still the server's.
			d, ok := definitionOf(t, p.base, care.Base+"/OperationDefinition/caseload")
			if !ok {
				return
			}
			body := `{"resourceType":"OperationDefinition","id":"caseload","url":"` + d.URL + `","version":"1.0.0","name":"Mine","status":"draft","kind":"operation","code":"caseload","system":false,"type":false,"instance":true}`
			for _, w := range []struct{ method, path string }{{http.MethodPut, "/OperationDefinition/caseload"}, {http.MethodPost, "/OperationDefinition"}} {
				status, err := sendFHIR(w.method, p.base+w.path, body)
				if err != nil {
					t.Fatal(err)
				}
				if want := map[string]int{http.MethodPut: http.StatusMethodNotAllowed, http.MethodPost: http.StatusUnprocessableEntity}[w.method]; status != want {
					t.Errorf("%s %s of the server's definition: %d, want %d", w.method, w.path, status, want)
				}
			}
			if again, ok := definitionOf(t, p.base, d.URL); ok && again.ID != "caseload" {
				t.Errorf("after the writes, %s is OperationDefinition/%s", d.URL, again.ID)
			}
		})
	}
}

// checkDefinedWhereListed checks that d defines op where the
// CapabilityStatement lists it: on the system, or on its type (or on
// every type, as Resource).
func checkDefinedWhereListed(t *testing.T, op capOperation, d *operationDefinition) {
	t.Helper()
	switch {
	case op.Type == "" && !d.System:
		t.Errorf("$%s is listed on the system with %s, which does not define it there", op.Name, op.Definition)
	case op.Type != "" && (!(d.Type || d.Instance) || !slices.Contains(d.Resource, op.Type) && !slices.Contains(d.Resource, "Resource")):
		t.Errorf("$%s is listed on %s with %s, which defines it on %v", op.Name, op.Type, op.Definition, d.Resource)
	}
}

// TestOperationDefinitionsStateTheParameters checks, for each operation
// served (the R4 ones, the IGs' and carefhir's own), that its
// OperationDefinition's in-parameters are the parameters it takes: none
// is refused as unknown, and an unknown one is refused with the list of
// those it takes, which must be the same.
func TestOperationDefinitionsStateTheParameters(t *testing.T) {
	for name, args := range engineArgs() {
		t.Run(name, func(t *testing.T) {
			p := start(t, args(t)...)
			checked := 0
			seen := map[string]bool{}
			for _, op := range capabilityOperations(t, p.base) {
				if seen[op.Definition+" "+op.Type] {
					continue
				}
				seen[op.Definition+" "+op.Type] = true
				d, ok := definitionOf(t, p.base, op.Definition)
				if !ok {
					continue
				}
				checked++
				var in []string
				query := url.Values{}
				for _, prm := range d.Parameter {
					if prm.Use == "in" {
						in = append(in, prm.Name)
						query.Set(prm.Name, sampleValue(prm.Type))
					}
				}
				// The first level the operation is served at, of those
				// its definition names: $meta is served on instances.
				var target string
				var issue outcomeIssue
				for _, target = range invocationPaths(op, d) {
					issue = invoke(t, p.base+target, url.Values{"notAParameter": {"1"}})
					if !strings.Contains(issue.Diagnostics, "is not supported on") {
						break
					}
				}
				if len(in) > 0 {
					if issue := invoke(t, p.base+target, query); strings.HasPrefix(issue.Diagnostics, "unknown parameter") {
						t.Errorf("%s with the parameters of %s: %s", target, d.URL, issue.Diagnostics)
					}
				}
				_, takes, ok := strings.Cut(issue.Diagnostics, "this operation takes ")
				if issue.Code != "not-supported" || !ok {
					t.Errorf("%s?notAParameter=1: %+v, want it refused as unknown", target, issue)
					continue
				}
				var accepted []string
				if takes != "no parameters" {
					accepted = strings.Split(takes, ", ")
				}
				if slices.Sort(accepted); !slices.Equal(accepted, slices.Sorted(slices.Values(in))) {
					t.Errorf("%s takes %v; its definition %s states %v", target, accepted, d.URL, in)
				}
			}
			if checked < 20 {
				t.Errorf("%d operations checked, want at least 20", checked)
			}
		})
	}
}

// invocationPaths returns where op may be invoked as the CapabilityStatement
// lists it: on the system, or on its type at the levels d defines it
// (the type, then an instance of an id no resource has: the parameters
// are checked before it is read).
func invocationPaths(op capOperation, d *operationDefinition) []string {
	if op.Type == "" {
		return []string{"/$" + d.Code}
	}
	var out []string
	if d.Type {
		out = append(out, "/"+op.Type+"/$"+d.Code)
	}
	if d.Instance {
		out = append(out, "/"+op.Type+"/no-such-id/$"+d.Code)
	}
	return out
}

// sampleValue is a value of a parameter of FHIR type typ, written as in a
// query string.
func sampleValue(typ string) string {
	switch typ {
	case "integer", "positiveInt", "unsignedInt":
		return "1"
	case "decimal":
		return "0.5"
	case "boolean":
		return "true"
	case "date":
		return "2026-12-01"
	}
	return "x"
}

// outcomeIssue is the first issue of an OperationOutcome answered.
type outcomeIssue struct{ Code, Diagnostics string }

// invoke POSTs to an operation with query as its parameters and returns
// the first issue of the answer, if it is an OperationOutcome.
func invoke(t *testing.T, target string, query url.Values) outcomeIssue {
	t.Helper()
	resp, err := httpClient.Post(target+"?"+query.Encode(), "application/fhir+json", strings.NewReader(`{"resourceType":"Parameters"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var oo struct {
		ResourceType string
		Issue        []outcomeIssue
	}
	if err := json.NewDecoder(resp.Body).Decode(&oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		return outcomeIssue{}
	}
	return oo.Issue[0]
}
