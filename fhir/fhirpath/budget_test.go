package fhirpath

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// Expressions a client can send (as FHIRPath Patch paths) that once ran
// without bound: each must stop with ErrTooCostly.
func TestBudgetStopsCostlyExpressions(t *testing.T) {
	res := map[string]any{"resourceType": "Patient", "name": []any{map[string]any{"family": "Ward"}}}
	tests := []struct{ name, expr string }{
		{"string doubling", "Patient.name.where('x'.repeat($this + $this).count() > 0).family"},
		{"decimal squaring", "1.1.repeat($this * $this).count()"},
		{"long select", "(1|2|3|4|5|6|7|8|9|10).select((1|2|3|4|5|6|7|8|9|10).select((1|2|3|4|5|6|7|8|9|10).select((1|2|3|4|5|6|7|8|9|10).select((1|2|3|4|5|6|7|8|9|10).select((1|2|3|4|5|6|7|8|9|10).select((1|2|3|4|5|6|7|8|9|10).select((1|2|3|4|5|6|7|8|9|10))))))))"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := MustParse(tt.expr).Evaluate(res, nil)
			if !errors.Is(err, ErrTooCostly) {
				t.Fatalf("Evaluate(%q) error = %v, want ErrTooCostly", tt.expr, err)
			}
		})
	}
}

// Integer overflow is empty, as FHIRPath defines it, not a wrapped value,
// and power() with a huge exponent answers at once.
func TestIntegerOverflowIsEmpty(t *testing.T) {
	for _, expr := range []string{
		"9223372036854775807 + 1",
		"-9223372036854775807 - 2",
		"4611686018427387904 * 2",
		"2.power(9223372036854775807)",
		"3.power(100000000)",
		"2.power(63)",
		"(-9223372036854775807 - 1).abs()",
		"-(-9223372036854775807 - 1)",
	} {
		out, err := MustParse(expr).Evaluate(nil, nil)
		if err != nil || len(out) != 0 {
			t.Errorf("Evaluate(%q) = %v, %v; want empty", expr, out, err)
		}
	}
	out, err := MustParse("2.power(62)").Evaluate(nil, nil)
	if err != nil || len(out) != 1 || out[0] != Integer(1<<62) {
		t.Errorf("2.power(62) = %v, %v", out, err)
	}
}

// A decimal too long to read cheaply is refused before math/big reads it
// (in time quadratic in its digits), and one within the bound is read.
func TestParseDecimalBound(t *testing.T) {
	for _, s := range []string{
		"1" + strings.Repeat("0", MaxDecimalDigits),
		"0." + strings.Repeat("3", MaxDecimalDigits),
		"1e" + strconv.Itoa(MaxDecimalDigits+1),
		"1e-" + strconv.Itoa(MaxDecimalDigits+1),
	} {
		if _, err := ParseDecimal(s); err == nil {
			t.Errorf("ParseDecimal of %d characters (%.12s…) read it, want an error", len(s), s)
		}
	}
	for _, s := range []string{"1" + strings.Repeat("0", MaxDecimalDigits-1), "1e" + strconv.Itoa(MaxDecimalDigits), "-2.50e-3"} {
		if _, err := ParseDecimal(s); err != nil {
			t.Errorf("ParseDecimal(%.12s…): %v", s, err)
		}
	}
}
