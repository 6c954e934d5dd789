// Package ucum reads unit expressions of the Unified Code for Units of
// Measure (UCUM, https://ucum.org/ucum) and converts quantities to
// canonical form: a value in UCUM's base units (g, m, s, rad, K, C, cd),
// so that 5.4 mg and 0.0054 g compare equal. FHIR quantities carry UCUM
// codes under the system http://unitsofmeasure.org.
//
// Expressions follow UCUM's case-sensitive grammar: prefixed atoms (mg,
// umol, kPa), exponents (m2, s-1, 10*9), products and quotients evaluated
// left to right (mg/kg/d is mg per kg per day), parentheses, integer
// factors (/100), a leading "/" (/min) and annotations in braces, which
// mean nothing ({cells}/uL is /uL; {score} is 1).
//
// The semantics are UCUM's. The mole is a number (6.0221367 × 10^23), so
// mmol/L and 10*9/L are commensurable, as UCUM defines them. Arbitrary
// units ([IU], [arb'U], [CFU]…) are each their own dimension: [IU]/L and
// [IU]/mL convert, [IU] and [arb'U] never do. Of the special units on
// non-ratio scales, Cel and [degF] convert to kelvin when they stand alone;
// the others ([pH], decibels…) are refused, as are Cel or [degF] inside a
// product or quotient, where their offset has no meaning.
package ucum

import (
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
)

// System is the URI of UCUM as a FHIR code system.
const System = "http://unitsofmeasure.org"

// Bounds that keep a hostile expression from costing more than a real one.
const (
	maxLength   = 256 // bytes of an expression
	maxDepth    = 16  // nested parentheses
	maxExponent = 24  // magnitude of an exponent
)

// Unit is a UCUM unit resolved into base units: the magnitude of one unit
// in them, and their exponents. It is immutable.
type Unit struct {
	factor *big.Rat
	dims   map[string]int // base or arbitrary unit → exponent, none zero
	// offset, for Cel and [degF], is added after scaling: kelvin = value
	// × factor + offset.
	offset *big.Rat
}

// Parse reads a case-sensitive UCUM unit expression, such as "mg/dL",
// "mmol/L", "10*9/L", "kg/m2" or "mm[Hg]".
func Parse(expr string) (*Unit, error) {
	if len(expr) > maxLength {
		return nil, fmt.Errorf("ucum: unit %q…: longer than %d bytes", expr[:32], maxLength)
	}
	u, err := (&parser{atoms: atoms}).parse(expr)
	if err != nil {
		return nil, fmt.Errorf("ucum: unit %q: %w", expr, err)
	}
	return u, nil
}

// Code returns the canonical unit code: the base units with their
// exponents, in the order g, m, s, rad, K, C, cd and then arbitrary units
// by symbol, such as "g.m-3" for mg/dL; "1" for a dimensionless unit.
// Two units are commensurable when their codes are equal.
func (u *Unit) Code() string {
	var parts []string
	add := func(sym string) {
		switch e := u.dims[sym]; e {
		case 0:
		case 1:
			parts = append(parts, sym)
		default:
			parts = append(parts, sym+strconv.Itoa(e))
		}
	}
	for _, b := range bases {
		add(b)
	}
	var others []string
	for sym := range u.dims {
		if !slices.Contains(bases, sym) {
			others = append(others, sym)
		}
	}
	slices.Sort(others)
	for _, sym := range others {
		add(sym)
	}
	if len(parts) == 0 {
		return "1"
	}
	return strings.Join(parts, ".")
}

// Canonical returns value, a measure in u, in the canonical unit (Code),
// exactly: 5.4 mg is 0.0054 g, 37 Cel is 310.15 K.
func (u *Unit) Canonical(value *big.Rat) *big.Rat {
	v := new(big.Rat).Mul(value, u.factor)
	if u.offset != nil {
		v.Add(v, u.offset)
	}
	return v
}

func one() *Unit { return &Unit{factor: big.NewRat(1, 1), dims: map[string]int{}} }

func (u *Unit) clone() *Unit {
	c := &Unit{factor: new(big.Rat).Set(u.factor), dims: make(map[string]int, len(u.dims))}
	for k, v := range u.dims {
		c.dims[k] = v
	}
	if u.offset != nil {
		c.offset = new(big.Rat).Set(u.offset)
	}
	return c
}

// mul multiplies u by o raised to the power sign (1 or -1), in place.
func (u *Unit) mul(o *Unit, sign int) {
	if sign < 0 {
		u.factor.Quo(u.factor, o.factor)
	} else {
		u.factor.Mul(u.factor, o.factor)
	}
	for k, v := range o.dims {
		u.dims[k] += sign * v
		if u.dims[k] == 0 {
			delete(u.dims, k)
		}
	}
}

// pow raises u to the power e, in place.
func (u *Unit) pow(e int) {
	n := e
	if n < 0 {
		n = -n
	}
	num := new(big.Int).Exp(u.factor.Num(), big.NewInt(int64(n)), nil)
	den := new(big.Int).Exp(u.factor.Denom(), big.NewInt(int64(n)), nil)
	if e < 0 {
		num, den = den, num
	}
	u.factor.SetFrac(num, den)
	for k, v := range u.dims {
		if u.dims[k] = v * e; e == 0 {
			delete(u.dims, k)
		}
	}
}

// parser reads one expression with the grammar of UCUM section 2.2:
//
//	main-term  = "/" term | term
//	term       = term "." component | term "/" component | component
//	component  = annotatable [annotation] | annotation | factor | "(" term ")"
//	annotatable = simple-unit [exponent]
//	simple-unit = ATOM | PREFIX metric-ATOM
type parser struct {
	atoms map[string]resolved
	s     string
	pos   int
	depth int
	// components counts the components read; interval is the interval-scale
	// atom among them, if any, which must then stand alone.
	components int
	interval   string
}

func (p *parser) parse(s string) (*Unit, error) {
	if s == "" {
		return nil, fmt.Errorf("empty unit")
	}
	p.s = s
	u := one()
	lead := strings.HasPrefix(s, "/")
	if lead {
		p.pos++
	}
	t, err := p.term()
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.s) {
		return nil, fmt.Errorf("unexpected %q at offset %d", p.s[p.pos], p.pos)
	}
	if lead {
		u.mul(t, -1)
	} else {
		u = t
	}
	if p.interval != "" && (lead || p.components != 1) {
		return nil, fmt.Errorf("%s is on an interval scale and cannot be multiplied or divided", p.interval)
	}
	return u, nil
}

func (p *parser) term() (*Unit, error) {
	u, err := p.component()
	if err != nil {
		return nil, err
	}
	for p.pos < len(p.s) && (p.s[p.pos] == '.' || p.s[p.pos] == '/') {
		sign := 1
		if p.s[p.pos] == '/' {
			sign = -1
		}
		p.pos++
		c, err := p.component()
		if err != nil {
			return nil, err
		}
		u.mul(c, sign)
	}
	return u, nil
}

func (p *parser) component() (*Unit, error) {
	p.components++
	if p.pos >= len(p.s) {
		return nil, fmt.Errorf("unit expected at the end")
	}
	switch p.s[p.pos] {
	case '(':
		if p.depth++; p.depth > maxDepth {
			return nil, fmt.Errorf("parentheses nest deeper than %d", maxDepth)
		}
		p.pos++
		u, err := p.term()
		if err != nil {
			return nil, err
		}
		if p.pos >= len(p.s) || p.s[p.pos] != ')' {
			return nil, fmt.Errorf("missing ')' at offset %d", p.pos)
		}
		p.pos++
		p.depth--
		return u, nil
	case '{':
		return one(), p.annotation()
	}
	start, brackets := p.pos, 0
scan:
	for ; p.pos < len(p.s); p.pos++ {
		switch p.s[p.pos] {
		case '[':
			brackets++
		case ']':
			if brackets--; brackets < 0 {
				return nil, fmt.Errorf("unmatched ']' at offset %d", p.pos)
			}
		case '.', '/', '(', ')', '{':
			if brackets == 0 {
				break scan
			}
		}
	}
	if brackets > 0 {
		return nil, fmt.Errorf("missing ']'")
	}
	tok := p.s[start:p.pos]
	if tok == "" {
		return nil, fmt.Errorf("unit expected at offset %d", start)
	}
	u, err := p.simple(tok)
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.s) && p.s[p.pos] == '{' {
		if err := p.annotation(); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// annotation skips "{…}", which carries no meaning.
func (p *parser) annotation() error {
	end := strings.IndexByte(p.s[p.pos:], '}')
	if end < 0 {
		return fmt.Errorf("missing '}'")
	}
	for _, c := range []byte(p.s[p.pos+1 : p.pos+end]) {
		if c < 32 || c > 126 || c == '{' {
			return fmt.Errorf("annotation holds %q", c)
		}
	}
	p.pos += end + 1
	return nil
}

// simple resolves a factor ("100") or a simple unit with its exponent
// ("mg", "m2", "10*-3").
func (p *parser) simple(tok string) (*Unit, error) {
	if isDigits(tok) {
		f, ok := new(big.Int).SetString(tok, 10)
		if !ok || f.Sign() == 0 {
			return nil, fmt.Errorf("factor %s is not a positive whole number", tok)
		}
		u := one()
		u.factor.SetInt(f)
		return u, nil
	}
	name, exp := tok, 1
	i := len(tok)
	for i > 0 && isDigit(tok[i-1]) {
		i--
	}
	if i < len(tok) {
		j := i
		if j > 0 && (tok[j-1] == '+' || tok[j-1] == '-') {
			j--
		}
		e, err := strconv.Atoi(tok[j:])
		if err != nil || e > maxExponent || e < -maxExponent {
			return nil, fmt.Errorf("exponent %s is beyond ±%d", tok[j:], maxExponent)
		}
		name, exp = tok[:j], e
	}
	a, prefix, err := p.atom(name)
	if err != nil {
		return nil, err
	}
	if a.kind == interval {
		if prefix != nil || exp != 1 {
			return nil, fmt.Errorf("%s is on an interval scale and takes no prefix or exponent", name)
		}
		p.interval = name
	}
	u := a.unit.clone()
	if prefix != nil {
		u.factor.Mul(u.factor, prefix)
	}
	if exp != 1 {
		u.pow(exp)
	}
	return u, nil
}

// atom finds the atom of a simple unit and its prefix factor, if any. A
// whole symbol wins over a prefixed reading: "cd" is the candela, "Pa" the
// pascal.
func (p *parser) atom(name string) (resolved, *big.Rat, error) {
	if name == "" {
		return resolved{}, nil, fmt.Errorf("unit expected before an exponent")
	}
	if a, ok := p.atoms[name]; ok {
		return a, nil, nil
	}
	for _, n := range []int{2, 1} {
		if len(name) <= n {
			continue
		}
		f, ok := prefixes[name[:n]]
		if !ok {
			continue
		}
		a, ok := p.atoms[name[n:]]
		if !ok {
			continue
		}
		if !a.metric {
			return resolved{}, nil, fmt.Errorf("%s takes no prefix (%s%s)", name[n:], name[:n], name[n:])
		}
		return a, rat(f), nil
	}
	return resolved{}, nil, fmt.Errorf("unknown unit %q", name)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}
