package search

import (
	"encoding/json"
	"strconv"

	"carefhir/fhir/fhirpath"
)

// FHIRPath compiles expressions with package fhirpath, the evaluator
// carefhir serves with; it is the Compiler of production indexers.
func FHIRPath(expr string) (Expression, error) {
	x, err := fhirpath.Parse(expr)
	if err != nil {
		return nil, err
	}
	// The official expressions name FHIR primitives by their System type
	// at times (code-value-date's value.as(DateTime)), as the
	// specification's FHIRPath does.
	return fhirpathExpr{x, &fhirpath.Env{PrimitiveAsSystem: true}}, nil
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
