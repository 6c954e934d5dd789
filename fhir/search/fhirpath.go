package search

import (
	"encoding/json"
	"strconv"
	"time"

	"carefhir/fhir/fhirpath"
)

// FHIRPath compiles expressions with package fhirpath, the evaluator
// carefhir serves with, now() and today() reading the host's clock and
// zone; FHIRPathClock gives them another.
func FHIRPath(expr string) (Expression, error) {
	return FHIRPathClock(nil)(expr)
}

// FHIRPathClock returns the Compiler of production indexers: FHIRPath
// expressions whose now(), today() and timeOfDay() read clock, which
// gives the time in the zone they are reckoned in (nil: time.Now, the
// host's zone), as the server's invariants read it.
func FHIRPathClock(clock func() time.Time) Compiler {
	// The official expressions name FHIR primitives by their System type
	// at times (code-value-date's value.as(DateTime)), as the
	// specification's FHIRPath does.
	env := &fhirpath.Env{PrimitiveAsSystem: true, Clock: clock}
	return func(expr string) (Expression, error) {
		x, err := fhirpath.Parse(expr)
		if err != nil {
			return nil, err
		}
		return fhirpathExpr{x, env}, nil
	}
}

type fhirpathExpr struct {
	x   *fhirpath.Expression
	env *fhirpath.Env // read only
}

func (e fhirpathExpr) Evaluate(ctx Value) ([]Value, error) {
	var in any = ctx.JSON
	if ctx.node != nil {
		in = ctx.node
	}
	out, err := e.x.Evaluate(in, e.env)
	if err != nil {
		return nil, err
	}
	values := make([]Value, 0, len(out))
	for _, v := range out {
		switch x := v.(type) {
		case *fhirpath.Node:
			values = append(values, Value{Type: x.Type(), JSON: x.JSON(), node: x})
		case fhirpath.Boolean:
			values = append(values, Value{Type: "boolean", JSON: bool(x)})
		case fhirpath.String:
			values = append(values, Value{Type: "string", JSON: string(x)})
		case fhirpath.Integer:
			values = append(values, Value{Type: "integer", JSON: json.Number(strconv.FormatInt(int64(x), 10))})
		case fhirpath.Decimal:
			values = append(values, Value{Type: "decimal", JSON: json.Number(x.String())})
		case fhirpath.Date:
			values = append(values, Value{Type: "date", JSON: x.String()})
		case fhirpath.DateTime:
			values = append(values, Value{Type: "dateTime", JSON: x.String()})
		}
	}
	return values, nil
}
