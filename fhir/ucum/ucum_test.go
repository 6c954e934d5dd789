package ucum

import (
	"math/big"
	"strings"
	"testing"
)

func TestCanonical(t *testing.T) {
	tests := []struct {
		name, value, unit string
		want, code        string // the canonical value, exactly (a decimal or a fraction), and unit
	}{
		{"gram", "5.4", "g", "5.4", "g"},
		{"milligram", "5.4", "mg", "0.0054", "g"},
		{"kilogram", "70.0", "kg", "70000", "g"},
		{"microgram per decilitre", "12", "ug/dL", "0.12", "g.m-3"},
		{"mass concentration", "1", "g/L", "1000", "g.m-3"},
		{"millimole per litre", "5", "mmol/L", "3011068350000000000000000", "m-3"},
		{"micromole per litre", "5000", "umol/L", "3011068350000000000000000", "m-3"},
		{"cells per litre", "4.5", "10*9/L", "4500000000000", "m-3"},
		{"cells per microlitre", "4500", "/uL", "4500000000000", "m-3"},
		{"annotated count", "4500", "{cells}/uL", "4500000000000", "m-3"},
		{"annotation after a unit", "2", "mg{total}", "0.002", "g"},
		{"annotation alone", "7", "{score}", "7", "1"},
		{"unity", "7", "1", "7", "1"},
		{"percent", "45", "%", "0.45", "1"},
		{"body mass index", "22.5", "kg/m2", "22500", "g.m-2"},
		{"per minute", "72", "/min", "1.2", "s-1"},
		{"beats per minute with annotation", "72", "{beats}/min", "1.2", "s-1"},
		{"hertz", "1.2", "Hz", "1.2", "s-1"},
		{"mercury pressure", "120", "mm[Hg]", "15998640", "g.m-1.s-2"},
		{"kilopascal", "15.99864", "kPa", "15998640", "g.m-1.s-2"},
		{"hour", "2", "h", "7200", "s"},
		{"day", "1", "d", "86400", "s"},
		{"week", "1", "wk", "604800", "s"},
		{"julian month", "1", "mo", "2629800", "s"},
		{"julian year", "1", "a", "31557600", "s"},
		{"millilitre", "1", "mL", "0.000001", "m3"},
		{"cubic centimetre is a millilitre", "1", "cm3", "0.000001", "m3"},
		{"left to right quotients", "1", "mg/kg/d", "1/86400000000", "s-1"},
		{"parentheses", "1", "mg/(kg.d)", "1/86400000000", "s-1"},
		{"factor", "10", "g/100", "0.1", "g"},
		{"factor in a product", "1", "24.h", "86400", "s"},
		{"power of ten with negative exponent", "3", "10*-3", "0.003", "1"},
		{"caret power of ten", "2", "10^3", "2000", "1"},
		{"international units convert among themselves", "5", "[IU]/mL", "5000000", "m-3.[iU]"},
		{"international units per litre", "5000", "[IU]/L", "5000000", "m-3.[iU]"},
		{"milli international units", "5", "m[IU]/L", "5", "m-3.[iU]"},
		{"arbitrary unit is its own dimension", "3", "[arb'U]", "3", "[arb'U]"},
		{"enzyme unit", "1", "U/L", "10036894500000000000", "m-3.s-1"},
		{"inch", "10", "[in_i]", "0.254", "m"},
		{"pound", "1", "[lb_av]", "453.59237", "g"},
		{"stone", "1", "[stone_av]", "6350.29318", "g"},
		{"celsius", "37", "Cel", "310.15", "K"},
		{"fahrenheit", "98.6", "[degF]", "310.15", "K"},
		{"kelvin", "310.15", "K", "310.15", "K"},
		{"degree", "180", "deg", pi, "rad"},
		{"second squared", "1", "s2", "1", "s2"},
		{"newton", "1", "N", "1000", "g.m.s-2"},
		{"candela is not centi-day", "1", "cd", "1", "cd"},
		{"pascal is not peta-year", "1", "Pa", "1000", "g.m-1.s-2"},
		{"deka prefix", "1", "dag", "10", "g"},
		{"equivalents", "2", "meq/L", "1204427340000000000000000", "m-3"},
		{"gram percent", "1", "g%", "10000", "g.m-3"},
		{"drop", "20", "[drp]", "0.000001", "m3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := Parse(tt.unit)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.unit, err)
			}
			if got := u.Code(); got != tt.code {
				t.Errorf("Parse(%q).Code() = %q, want %q", tt.unit, got, tt.code)
			}
			v, _ := new(big.Rat).SetString(tt.value)
			want, _ := new(big.Rat).SetString(tt.want)
			got := u.Canonical(v)
			if got.Cmp(want) != 0 {
				t.Errorf("%s %s = %s %s, want %s", tt.value, tt.unit, got.FloatString(30), u.Code(), tt.want)
			}
		})
	}
}

func TestCommensurable(t *testing.T) {
	tests := []struct {
		name, a, b string
		same       bool
	}{
		{"mass", "mg", "[lb_av]", true},
		{"substance concentrations", "mmol/L", "umol/mL", true},
		{"mass and substance concentration", "mg/dL", "mmol/L", false},
		{"arbitrary units of different kinds", "[IU]", "[arb'U]", false},
		{"international unit and its lower-case twin", "[IU]/L", "[iU]/L", true},
		{"volume", "L", "[drp]", true},
		{"rate", "/min", "Hz", true},
		{"pressure", "mm[Hg]", "kPa", true},
		{"length and time", "m", "s", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Parse(tt.a)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Parse(tt.b)
			if err != nil {
				t.Fatal(err)
			}
			if same := a.Code() == b.Code(); same != tt.same {
				t.Errorf("%s (%s) and %s (%s): commensurable %v, want %v", tt.a, a.Code(), tt.b, b.Code(), same, tt.same)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, unit, want string
	}{
		{"empty", "", "empty unit"},
		{"unknown symbol", "mmHg", `unknown unit "mmHg"`},
		{"case matters", "MG", `unknown unit "MG"`},
		{"prefix on a non-metric unit", "kh", "takes no prefix"},
		{"prefix on a customary unit", "k[lb_av]", "takes no prefix"},
		{"celsius in a quotient", "Cel/h", "interval scale"},
		{"celsius with a prefix", "mCel", "interval scale"},
		{"celsius inverted", "/Cel", "interval scale"},
		{"unclosed parenthesis", "mg/(kg.d", "missing ')'"},
		{"stray parenthesis", "mg)", "unexpected"},
		{"unclosed bracket", "[IU", "missing ']'"},
		{"unmatched bracket", "IU]", "unmatched ']'"},
		{"unclosed annotation", "mg{total", "missing '}'"},
		{"dangling operator", "mg/", "unit expected"},
		{"double operator", "mg//L", "unit expected"},
		{"huge exponent", "m999", "exponent"},
		{"exponent without unit", "-2", "unit expected"},
		{"zero factor", "0", "positive whole number"},
		{"deep parentheses", strings.Repeat("(", 20) + "m" + strings.Repeat(")", 20), "nest deeper"},
		{"too long", strings.Repeat("m.", 200) + "m", "longer than"},
		{"special unit not converted", "[pH]", "unknown unit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.unit)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q) = %v, want an error with %q", tt.unit, err, tt.want)
			}
		})
	}
}

// FuzzParse checks that no expression panics, and that what parses has a
// canonical code that reads as itself.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"mg/dL", "10*9/L", "{cells}/uL", "mm[Hg]", "kg/m2", "/min", "m[IU]/L", "Cel", "(mg.s)/(kg.d)", "10*-3", "[in_i'Hg]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := Parse(s)
		if err != nil {
			return
		}
		if u.offset != nil {
			return // the kelvin of an interval unit is a different unit
		}
		for _, e := range u.dims {
			if e > maxExponent || e < -maxExponent {
				return // L9 is m27: beyond what an expression may write
			}
		}
		c, err := Parse(u.Code())
		if err != nil {
			t.Fatalf("canonical code %q of %q does not parse: %v", u.Code(), s, err)
		}
		if c.Code() != u.Code() {
			t.Fatalf("canonical code %q of %q reads as %q", u.Code(), s, c.Code())
		}
	})
}
