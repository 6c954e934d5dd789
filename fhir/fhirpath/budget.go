package fhirpath

import (
	"errors"
	"fmt"
	"math/big"
)

// ErrTooCostly is returned, wrapped in an *EvalError, when an evaluation
// exceeds its Budget. Expressions can come from clients (FHIRPath Patch
// paths, profiles), so no expression may cost more than a bounded amount
// of CPU and memory, whatever it is evaluated on.
var ErrTooCostly = errors.New("evaluation exceeds its budget")

// Budget bounds the work of one evaluation. A zero field takes its
// default (see DefaultBudget).
type Budget struct {
	// Steps bounds the operations evaluated (function calls, operators)
	// plus the items they output, summed over the evaluation.
	Steps int64
	// StringBytes bounds the bytes of strings functions and operators
	// make, summed over the evaluation; one string longer than a quarter
	// of it is also refused.
	StringBytes int64
	// NumberBits bounds the size of a decimal's numerator and denominator,
	// so repeated multiplication cannot grow a number without end.
	NumberBits int
}

// DefaultBudget is the budget of evaluations whose Env sets none: about a
// second of CPU at most (a step costs about a microsecond), and tens
// of megabytes.
var DefaultBudget = Budget{Steps: 1_000_000, StringBytes: 16 << 20, NumberBits: 4096}

// withDefaults fills the zero fields of b from DefaultBudget.
func (b Budget) withDefaults() Budget {
	if b.Steps <= 0 {
		b.Steps = DefaultBudget.Steps
	}
	if b.StringBytes <= 0 {
		b.StringBytes = DefaultBudget.StringBytes
	}
	if b.NumberBits <= 0 {
		b.NumberBits = DefaultBudget.NumberBits
	}
	return b
}

// Meter holds what the evaluations sharing it (see Env.Meter) have spent
// of their Budget. The zero Meter has spent nothing.
type Meter struct {
	steps, bytes int64
}

// spending is what one evaluation has used of its budget.
type spending struct {
	limit        Budget
	steps, bytes int64
}

// charge counts one operation and its output, and fails once the budget is
// spent.
func (s *spending) charge(out []Value) error {
	s.steps += 1 + int64(len(out))
	if s.steps > s.limit.Steps {
		return fmt.Errorf("%w: more than %d steps", ErrTooCostly, s.limit.Steps)
	}
	for _, v := range out {
		switch x := v.(type) {
		case String:
			if err := s.chargeString(len(x)); err != nil {
				return err
			}
		case Decimal:
			if err := s.checkNumber(x.r); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *spending) chargeString(n int) error {
	if int64(n) > s.limit.StringBytes/4 {
		return fmt.Errorf("%w: a string of more than %d bytes", ErrTooCostly, s.limit.StringBytes/4)
	}
	s.bytes += int64(n)
	if s.bytes > s.limit.StringBytes {
		return fmt.Errorf("%w: more than %d bytes of strings", ErrTooCostly, s.limit.StringBytes)
	}
	return nil
}

func (s *spending) checkNumber(r *big.Rat) error {
	if r != nil && r.Num().BitLen()+r.Denom().BitLen() > s.limit.NumberBits {
		return fmt.Errorf("%w: a number of more than %d bits", ErrTooCostly, s.limit.NumberBits)
	}
	return nil
}

// compare charges n comparisons of items, a quarter of a step each: what
// functions that match every item against a collection spend besides
// their output.
func (s *spending) compare(n int) error {
	s.steps += int64(n) / 4
	if s.steps > s.limit.Steps {
		return fmt.Errorf("%w: more than %d steps", ErrTooCostly, s.limit.Steps)
	}
	return nil
}
