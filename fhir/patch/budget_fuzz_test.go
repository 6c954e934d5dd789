package patch_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"carefhir/fhir/fhirpath"
	"carefhir/fhir/patch"
)

// budgetTimeLimit is how long one input may take in FuzzBudget: far more
// than the budgets allow (about a second of CPU), far less than an
// unbounded evaluation takes.
const budgetTimeLimit = 20 * time.Second

// FuzzBudget checks that FHIRPath expressions, FHIRPath Patches built on
// them and JSON Patches of repeated operations finish within
// budgetTimeLimit, whatever they are: the budgets (fhirpath.DefaultBudget,
// patch.DefaultLimits) bound their cost. It is seeded with the expressions
// and patches that once ran without bound.
func FuzzBudget(f *testing.F) {
	for _, s := range []struct {
		expr string
		op   string
		n    uint16
	}{
		{"Patient.name.where('x'.repeat($this + $this).count() > 0).family", `{"op":"copy","from":"","path":"/x/-"}`, 30},
		{"2.power(9223372036854775807)", `{"op":"add","path":"/x/-","value":"` + strings.Repeat("y", 1000) + `"}`, 2000},
		{"3.power(100000000)", `{"op":"copy","from":"/name","path":"/x/-"}`, 1000},
		{"1.1.repeat($this * $this)", `{"op":"test","path":"/name","value":[]}`, 500},
		{"(1|2|3|4|5|6|7|8|9).select((1|2|3|4|5|6|7|8|9).select((1|2|3|4|5|6|7|8|9).select((1|2|3|4|5|6|7|8|9))))", `{"op":"move","from":"/name","path":"/name"}`, 100},
		{"Patient.descendants().select(%resource.descendants()).count()", `{"op":"remove","path":"/x/0"}`, 10},
		{"('a'|'b'|'c').combine('d').repeat($this & $this).distinct().count()", `{"op":"replace","path":"/gender","value":"female"}`, 1},
	} {
		f.Add(s.expr, s.op, s.n)
	}
	f.Fuzz(func(t *testing.T, expr, jsonOp string, n uint16) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			if e, err := fhirpath.Parse(expr); err == nil {
				var doc any
				json.Unmarshal([]byte(fuzzPatient), &doc)
				e.Evaluate(doc, nil)
			}
			patch.FHIRPathPatch([]byte(fuzzPatient), []byte(params(op("delete", expr))))
			ops := `[{"op":"add","path":"/x","value":[]}` + strings.Repeat(","+jsonOp, int(n)%2048) + `]`
			if out, err := patch.JSONPatch([]byte(fuzzPatient), []byte(ops)); err == nil && len(out) > int(patch.DefaultLimits.ResultBytes) {
				panic(fmt.Sprintf("a patched resource of %d bytes, beyond the limit", len(out)))
			}
		}()
		select {
		case <-done:
		case <-time.After(budgetTimeLimit):
			t.Fatalf("expression %q, %d × %s: still running after %s", expr, n, jsonOp, budgetTimeLimit)
		}
	})
}
