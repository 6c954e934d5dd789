package search

import (
	"math"
	"math/big"
	"strconv"

	"carefhir/fhir/ucum"
	"carefhir/store/query"
)

// CanonicalParam is the derived parameter under which the canonical forms
// of a quantity parameter's UCUM values are indexed: 6 mg under
// "value-quantity" is 0.006 g under "value-quantity:canonical". A search
// in UCUM units compares there, so that value-quantity=gt5.4|
// http://unitsofmeasure.org|mg finds 0.006 g; values in other systems, or
// whose unit UCUM cannot convert, are found under the parameter itself.
func CanonicalParam(param string) string { return param + ":canonical" }

// canonicalQuantity returns the canonical form of a quantity of UCUM
// units, indexed under CanonicalParam(param); ok is false for other
// systems and units UCUM cannot convert.
func canonicalQuantity(param, text, system, code string) (q query.Quantity, ok bool) {
	if system != ucum.System || code == "" {
		return query.Quantity{}, false
	}
	u, err := ucum.Parse(code)
	if err != nil {
		return query.Quantity{}, false
	}
	v, _, ok := parseDecimal(text)
	if !ok {
		return query.Quantity{}, false
	}
	f, ok := toFloat(u.Canonical(v))
	if !ok {
		return query.Quantity{}, false
	}
	return query.Quantity{Param: CanonicalParam(param), Value: f, Text: strconv.FormatFloat(f, 'g', -1, 64),
		System: ucum.System, Code: u.Code()}, true
}

// canonicalMatch returns the match of a quantity search value v
// ([prefix]number|system|code, read as m) in canonical UCUM units, for the
// parameter CanonicalParam; ok is false when v is not in UCUM units UCUM
// can convert. Both ends of the range the number's precision implies are
// converted, exactly, as the index converts values: 5.4 mg is [5.35, 5.45)
// mg, so [0.00535, 0.00545) g.
func canonicalMatch(m query.QuantityMatch, number string) (query.QuantityMatch, bool) {
	if m.System != ucum.System {
		return query.QuantityMatch{}, false
	}
	u, err := ucum.Parse(m.Code)
	if err != nil {
		return query.QuantityMatch{}, false
	}
	_, n := prefix(number)
	value, low, high, ok := decimalRange(n)
	if !ok {
		return query.QuantityMatch{}, false
	}
	if m.Prefix == query.Ap {
		// As numberMatch: a tenth of the value either side, at least the
		// precision's range; in the unit written, before conversion.
		d := new(big.Rat).Abs(value)
		d.Quo(d, big.NewRat(10, 1))
		if lo := new(big.Rat).Sub(value, d); lo.Cmp(low) < 0 {
			low = lo
		}
		if hi := new(big.Rat).Add(value, d); hi.Cmp(high) > 0 {
			high = hi
		}
	}
	cv, ok1 := toFloat(u.Canonical(value))
	cl, ok2 := toFloat(u.Canonical(low))
	ch, ok3 := toFloat(u.Canonical(high))
	if !ok1 || !ok2 || !ok3 {
		return query.QuantityMatch{}, false
	}
	return query.QuantityMatch{
		NumberMatch: query.NumberMatch{Prefix: m.Prefix, Value: cv, Low: cl, High: ch},
		System:      ucum.System,
		Code:        u.Code(),
	}, true
}

// toFloat rounds r to the nearest float64, refusing what overflows.
func toFloat(r *big.Rat) (float64, bool) {
	f, _ := r.Float64()
	return f, !math.IsInf(f, 0)
}
