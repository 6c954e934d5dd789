package fhirpath

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"carefhir/fhir/ucum"
)

// Value is one item of a FHIRPath collection: a *Node (an element of the
// input) or one of the system types Boolean, String, Integer, Decimal, Date,
// DateTime, Time and Quantity.
type Value interface {
	// TypeName returns the qualified type name, such as "System.String" or
	// "FHIR.HumanName".
	TypeName() string
}

// Boolean is the system type System.Boolean.
type Boolean bool

// String is the system type System.String.
type String string

// Integer is the system type System.Integer.
type Integer int64

// TypeName implements Value.
func (Boolean) TypeName() string { return "System.Boolean" }

// TypeName implements Value.
func (String) TypeName() string { return "System.String" }

// TypeName implements Value.
func (Integer) TypeName() string { return "System.Integer" }

// Decimal is the system type System.Decimal: an exact rational value and the
// number of digits after the decimal point it was written or computed with.
type Decimal struct {
	r     *big.Rat
	scale int
}

// TypeName implements Value.
func (Decimal) TypeName() string { return "System.Decimal" }

// MaxDecimalDigits bounds the length of a decimal ParseDecimal reads, and
// the size of its exponent: math/big reads a number in time quadratic in
// its digits (a decimal of two million digits took minutes), and one of
// more digits is beyond the bits an evaluation's Budget lets a number have.
const MaxDecimalDigits = 4096

// ParseDecimal parses a decimal number in FHIR's JSON syntax, exactly. A
// decimal longer than MaxDecimalDigits, or with an exponent beyond it, is
// an error.
func ParseDecimal(s string) (Decimal, error) {
	t := strings.TrimLeft(s, "+-")
	if t == "" || strings.ContainsAny(t, "+-") && !strings.ContainsAny(t, "eE") {
		return Decimal{}, fmt.Errorf("fhirpath: invalid decimal %q", s)
	}
	if len(t) > MaxDecimalDigits {
		return Decimal{}, fmt.Errorf("fhirpath: decimal of %d characters, more than %d", len(t), MaxDecimalDigits)
	}
	if i := strings.IndexAny(t, "eE"); i >= 0 {
		if exp, err := strconv.Atoi(t[i+1:]); err == nil && (exp > MaxDecimalDigits || exp < -MaxDecimalDigits) {
			return Decimal{}, fmt.Errorf("fhirpath: decimal %q has an exponent beyond %d", s, MaxDecimalDigits)
		}
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return Decimal{}, fmt.Errorf("fhirpath: invalid decimal %q", s)
	}
	scale := 0
	if i := strings.IndexByte(t, '.'); i >= 0 {
		end := strings.IndexAny(t, "eE")
		if end < 0 {
			end = len(t)
		}
		scale = end - i - 1
	}
	if i := strings.IndexAny(t, "eE"); i >= 0 {
		exp, err := strconv.Atoi(t[i+1:])
		if err != nil {
			return Decimal{}, fmt.Errorf("fhirpath: invalid decimal %q", s)
		}
		scale -= exp
		if scale < 0 {
			scale = 0
		}
	}
	return Decimal{r: r, scale: scale}, nil
}

// DecimalFromInt returns i as a Decimal.
func DecimalFromInt(i int64) Decimal { return Decimal{r: new(big.Rat).SetInt64(i)} }

// Rat returns a copy of the exact value of d.
func (d Decimal) Rat() *big.Rat {
	if d.r == nil {
		return new(big.Rat)
	}
	return new(big.Rat).Set(d.r)
}

// Scale returns the number of digits after the decimal point.
func (d Decimal) Scale() int { return d.scale }

func (d Decimal) rat() *big.Rat {
	if d.r == nil {
		return new(big.Rat)
	}
	return d.r
}

// String formats d with its scale.
func (d Decimal) String() string { return d.rat().FloatString(d.scale) }

// Float64 returns the nearest float64.
func (d Decimal) Float64() float64 { f, _ := d.rat().Float64(); return f }

// maxScale bounds the digits kept by inexact operations such as division.
const maxScale = 28

// exactScale returns the smallest scale at or above min at which r is exact,
// or maxScale.
func exactScale(r *big.Rat, min int) int {
	den := new(big.Int).Set(r.Denom())
	two, five := big.NewInt(2), big.NewInt(5)
	n2, n5 := 0, 0
	m := new(big.Int)
	for {
		q, rem := new(big.Int).QuoRem(den, two, m)
		if rem.Sign() != 0 {
			break
		}
		den, n2 = q, n2+1
	}
	for {
		q, rem := new(big.Int).QuoRem(den, five, m)
		if rem.Sign() != 0 {
			break
		}
		den, n5 = q, n5+1
	}
	if den.Cmp(big.NewInt(1)) != 0 {
		return maxScale
	}
	s := max(n2, n5, min)
	return min2(s, maxScale)
}

func min2(a, b int) int {
	if a < b {
		return a
	}
	return b
}

// roundRat rounds r to scale digits, half away from zero.
func roundRat(r *big.Rat, scale int) *big.Rat {
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)
	x := new(big.Rat).Mul(r, new(big.Rat).SetInt(p))
	num, den := x.Num(), x.Denom()
	q, m := new(big.Int).QuoRem(num, den, new(big.Int))
	m2 := new(big.Int).Mul(new(big.Int).Abs(m), big.NewInt(2))
	if m2.Cmp(den) >= 0 {
		if num.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	return new(big.Rat).SetFrac(q, p)
}

// Quantity is the system type System.Quantity: a decimal value and a unit,
// either a UCUM code or a calendar duration keyword such as "year".
type Quantity struct {
	Value Decimal
	Unit  string
}

// TypeName implements Value.
func (Quantity) TypeName() string { return "System.Quantity" }

// String formats q as a FHIRPath quantity literal.
func (q Quantity) String() string {
	if _, ok := calendarUnits[q.Unit]; ok {
		return q.Value.String() + " " + q.Unit
	}
	return q.Value.String() + " '" + q.Unit + "'"
}

// calendarUnits maps the calendar duration keywords to their singular form.
var calendarUnits = map[string]string{
	"year": "year", "years": "year", "month": "month", "months": "month",
	"week": "week", "weeks": "week", "day": "day", "days": "day",
	"hour": "hour", "hours": "hour", "minute": "minute", "minutes": "minute",
	"second": "second", "seconds": "second", "millisecond": "millisecond", "milliseconds": "millisecond",
}

// ucumUnit describes a UCUM unit as a multiple of its canonical unit.
type ucumUnit struct {
	dim    string // the canonical unit code (package ucum); units with equal dims convert
	factor *big.Rat
}

func rat(s string) *big.Rat { r, _ := new(big.Rat).SetString(s); return r }

// ucumOf resolves a UCUM code. The year a and month mo stay units of their
// own, not multiples of the second: they compare with the calendar year
// and month under equivalence only. Units on a scale with an offset (Cel,
// [degF]) are refused, because arithmetic and comparison here scale by a
// factor.
func ucumOf(code string) (ucumUnit, bool) {
	if code == "a" || code == "mo" {
		return ucumUnit{dim: code, factor: rat("1")}, true
	}
	u, err := ucum.Parse(code)
	if err != nil || u.Canonical(new(big.Rat)).Sign() != 0 {
		return ucumUnit{}, false
	}
	return ucumUnit{dim: u.Code(), factor: u.Canonical(big.NewRat(1, 1))}, true
}

// calendarToUCUM gives the UCUM unit a calendar keyword equals; year and
// month have none, because UCUM's a and mo are not calendar durations.
var calendarToUCUM = map[string]string{
	"week": "wk", "day": "d", "hour": "h", "minute": "min", "second": "s", "millisecond": "ms",
}

// unitOf normalises a quantity unit for comparison. equivalent lets the
// calendar year and month match UCUM a and mo.
func unitOf(u string, equivalent bool) (ucumUnit, bool) {
	if c, ok := calendarUnits[u]; ok {
		if m, ok := calendarToUCUM[c]; ok {
			u = m
		} else if equivalent {
			u = map[string]string{"year": "a", "month": "mo"}[c]
		} else {
			return ucumUnit{dim: c, factor: rat("1")}, true
		}
	}
	return ucumOf(u)
}

// compareQuantities returns the order of a and b after unit conversion, and
// false when their units cannot be compared.
func compareQuantities(a, b Quantity, equivalent bool) (int, bool) {
	if a.Unit == b.Unit || calendarUnits[a.Unit] != "" && calendarUnits[a.Unit] == calendarUnits[b.Unit] {
		return a.Value.rat().Cmp(b.Value.rat()), true
	}
	ua, ok1 := unitOf(a.Unit, equivalent)
	ub, ok2 := unitOf(b.Unit, equivalent)
	if !ok1 || !ok2 || ua.dim != ub.dim {
		return 0, false
	}
	x := new(big.Rat).Mul(a.Value.rat(), ua.factor)
	y := new(big.Rat).Mul(b.Value.rat(), ub.factor)
	if equivalent {
		// Equivalence compares at the precision of the less precise value,
		// counted in the larger unit.
		if ua.factor.Cmp(ub.factor) < 0 {
			ua, a, b = ub, b, a
			x, y = y, x
		}
		s := min(a.Value.scale, b.Value.scale)
		x = roundRat(new(big.Rat).Quo(x, ua.factor), s)
		y = roundRat(new(big.Rat).Quo(y, ua.factor), s)
	}
	return x.Cmp(y), true
}
