package ucum

import (
	"fmt"
	"math/big"
)

// atom is a unit symbol of UCUM's tables (https://ucum.org/ucum, section 4),
// case-sensitive form.
type atom struct {
	metric bool // takes prefixes
	// value and unit define the atom as value × unit, unit an expression
	// of atoms defined before it; a base unit has neither.
	value, unit string
	kind        kind
}

// kind is how an atom converts.
type kind int

const (
	ratio     kind = iota // a multiple of base units
	base                  // a base unit
	arbitrary             // an arbitrary unit: its own dimension, never converted
	interval              // a special unit on an interval scale: value × unit + offset
)

// offsets are what the interval-scale units add, in their own unit,
// before scaling to kelvin: 0 K is -273.15 Cel and -459.67 [degF].
var offsets = map[string]string{
	"Cel":    "273.15",
	"[degF]": "459.67",
}

// bases are UCUM's seven base units, in the order canonical codes list
// them: mass first, as clinical units read (g.m-3, not m-3.g).
var bases = []string{"g", "m", "s", "rad", "K", "C", "cd"}

// prefixes are UCUM's decimal prefixes (section 4.1) with their factors.
var prefixes = map[string]string{
	"Y": "1e24", "Z": "1e21", "E": "1e18", "P": "1e15", "T": "1e12", "G": "1e9",
	"M": "1e6", "k": "1e3", "h": "1e2", "da": "1e1", "d": "1e-1", "c": "1e-2",
	"m": "1e-3", "u": "1e-6", "n": "1e-9", "p": "1e-12", "f": "1e-15", "a": "1e-18",
	"z": "1e-21", "y": "1e-24",
}

// pi to more digits than a float64 holds.
const pi = "3.14159265358979323846264338327950288419716939937510"

// table lists the atoms carefhir converts: the base units, the SI and other
// metric units, and the customary and clinical units that health records
// use. Each definition is UCUM's; the order matters, a definition naming
// only atoms listed above it.
var table = []struct {
	symbol string
	atom
}{
	// Base units (4.2).
	{"g", atom{metric: true, kind: base}},
	{"m", atom{metric: true, kind: base}},
	{"s", atom{metric: true, kind: base}},
	{"rad", atom{metric: true, kind: base}},
	{"K", atom{metric: true, kind: base}},
	{"C", atom{metric: true, kind: base}},
	{"cd", atom{metric: true, kind: base}},

	// Dimensionless numbers (4.3, 4.4).
	{"10*", atom{value: "10", unit: "1"}},
	{"10^", atom{value: "10", unit: "1"}},
	{"[pi]", atom{value: pi, unit: "1"}},
	{"%", atom{value: "1", unit: "10*-2"}},
	{"[ppth]", atom{value: "1", unit: "10*-3"}},
	{"[ppm]", atom{value: "1", unit: "10*-6"}},
	{"[ppb]", atom{value: "1", unit: "10*-9"}},
	{"[pptr]", atom{value: "1", unit: "10*-12"}},
	{"[HPF]", atom{value: "1", unit: "1"}},
	{"[LPF]", atom{value: "100", unit: "1"}},

	// SI units (4.3).
	{"mol", atom{metric: true, value: "6.0221367", unit: "10*23"}},
	{"sr", atom{metric: true, value: "1", unit: "rad2"}},
	{"Hz", atom{metric: true, value: "1", unit: "s-1"}},
	{"N", atom{metric: true, value: "1", unit: "kg.m/s2"}},
	{"Pa", atom{metric: true, value: "1", unit: "N/m2"}},
	{"J", atom{metric: true, value: "1", unit: "N.m"}},
	{"W", atom{metric: true, value: "1", unit: "J/s"}},
	{"A", atom{metric: true, value: "1", unit: "C/s"}},
	{"V", atom{metric: true, value: "1", unit: "J/C"}},
	{"F", atom{metric: true, value: "1", unit: "C/V"}},
	{"Ohm", atom{metric: true, value: "1", unit: "V/A"}},
	{"S", atom{metric: true, value: "1", unit: "Ohm-1"}},
	{"Wb", atom{metric: true, value: "1", unit: "V.s"}},
	{"Cel", atom{metric: true, value: "1", unit: "K", kind: interval}},
	{"T", atom{metric: true, value: "1", unit: "Wb/m2"}},
	{"H", atom{metric: true, value: "1", unit: "Wb/A"}},
	{"lm", atom{metric: true, value: "1", unit: "cd.sr"}},
	{"lx", atom{metric: true, value: "1", unit: "lm/m2"}},
	{"Bq", atom{metric: true, value: "1", unit: "s-1"}},
	{"Gy", atom{metric: true, value: "1", unit: "J/kg"}},
	{"Sv", atom{metric: true, value: "1", unit: "J/kg"}},

	// Other units used with the SI (4.3).
	{"deg", atom{value: "2", unit: "[pi].rad/360"}},
	{"gon", atom{value: "0.9", unit: "deg"}},
	{"'", atom{value: "1", unit: "deg/60"}},
	{"''", atom{value: "1", unit: "'/60"}},
	{"l", atom{metric: true, value: "1", unit: "dm3"}},
	{"L", atom{metric: true, value: "1", unit: "l"}},
	{"ar", atom{metric: true, value: "100", unit: "m2"}},
	{"min", atom{value: "60", unit: "s"}},
	{"h", atom{value: "60", unit: "min"}},
	{"d", atom{value: "24", unit: "h"}},
	{"a_t", atom{value: "365.24219", unit: "d"}},
	{"a_j", atom{value: "365.25", unit: "d"}},
	{"a_g", atom{value: "365.2425", unit: "d"}},
	{"a", atom{value: "1", unit: "a_j"}},
	{"wk", atom{value: "7", unit: "d"}},
	{"mo_s", atom{value: "29.53059", unit: "d"}},
	{"mo_j", atom{value: "1", unit: "a_j/12"}},
	{"mo_g", atom{value: "1", unit: "a_g/12"}},
	{"mo", atom{value: "1", unit: "mo_j"}},
	{"t", atom{metric: true, value: "1e3", unit: "kg"}},
	{"bar", atom{metric: true, value: "1e5", unit: "Pa"}},
	{"u", atom{metric: true, value: "1.6605402e-24", unit: "g"}},
	{"[e]", atom{metric: true, value: "1.60217733e-19", unit: "C"}},
	{"eV", atom{metric: true, value: "1", unit: "[e].V"}},

	// Customary units (4.4).
	{"[in_i]", atom{value: "2.54", unit: "cm"}},
	{"[ft_i]", atom{value: "12", unit: "[in_i]"}},
	{"[yd_i]", atom{value: "3", unit: "[ft_i]"}},
	{"[mi_i]", atom{value: "5280", unit: "[ft_i]"}},
	{"[gr]", atom{value: "64.79891", unit: "mg"}},
	{"[lb_av]", atom{value: "7000", unit: "[gr]"}},
	{"[oz_av]", atom{value: "1", unit: "[lb_av]/16"}},
	{"[stone_av]", atom{value: "14", unit: "[lb_av]"}},
	{"[degF]", atom{value: "5", unit: "K/9", kind: interval}},
	{"cal", atom{metric: true, value: "4.184", unit: "J"}},
	{"[Cal]", atom{value: "1", unit: "kcal"}},
	{"[pt_br]", atom{value: "0.56826125", unit: "l"}},
	{"[foz_br]", atom{value: "1", unit: "[pt_br]/20"}},
	{"[tsp_us]", atom{value: "4.92892159375", unit: "mL"}},
	{"[tbs_us]", atom{value: "3", unit: "[tsp_us]"}},
	{"[drp]", atom{value: "1", unit: "mL/20"}},

	// Clinical units (4.5).
	{"m[Hg]", atom{metric: true, value: "133.3220", unit: "kPa"}},
	{"m[H2O]", atom{metric: true, value: "9.80665", unit: "kPa"}},
	{"[in_i'Hg]", atom{value: "1", unit: "m[Hg].[in_i]/m"}},
	{"eq", atom{metric: true, value: "1", unit: "mol"}},
	{"osm", atom{metric: true, value: "1", unit: "mol"}},
	{"g%", atom{metric: true, value: "1", unit: "g/dl"}},
	{"kat", atom{metric: true, value: "1", unit: "mol/s"}},
	{"U", atom{metric: true, value: "1", unit: "umol/min"}},
	{"[iU]", atom{metric: true, kind: arbitrary}},
	{"[IU]", atom{metric: true, value: "1", unit: "[iU]"}},
	{"[arb'U]", atom{kind: arbitrary}},
	{"[USP'U]", atom{kind: arbitrary}},
	{"[GPL'U]", atom{kind: arbitrary}},
	{"[MPL'U]", atom{kind: arbitrary}},
	{"[APL'U]", atom{kind: arbitrary}},
	{"[beth'U]", atom{kind: arbitrary}},
	{"[anti'Xa'U]", atom{kind: arbitrary}},
	{"[todd'U]", atom{kind: arbitrary}},
	{"[dye'U]", atom{kind: arbitrary}},
	{"[smgy'U]", atom{kind: arbitrary}},
	{"[bdsk'U]", atom{kind: arbitrary}},
	{"[ka'U]", atom{kind: arbitrary}},
	{"[knk'U]", atom{kind: arbitrary}},
	{"[mclg'U]", atom{kind: arbitrary}},
	{"[tb'U]", atom{kind: arbitrary}},
	{"[CCID_50]", atom{metric: true, kind: arbitrary}},
	{"[TCID_50]", atom{metric: true, kind: arbitrary}},
	{"[EID_50]", atom{metric: true, kind: arbitrary}},
	{"[PFU]", atom{metric: true, kind: arbitrary}},
	{"[FFU]", atom{metric: true, kind: arbitrary}},
	{"[CFU]", atom{metric: true, kind: arbitrary}},
	{"[IR]", atom{metric: true, kind: arbitrary}},
	{"[BAU]", atom{metric: true, kind: arbitrary}},
	{"[AU]", atom{metric: true, kind: arbitrary}},
	{"[Amb'a'1'U]", atom{metric: true, kind: arbitrary}},
	{"[PNU]", atom{metric: true, kind: arbitrary}},
	{"[Lf]", atom{metric: true, kind: arbitrary}},
	{"[D'ag'U]", atom{metric: true, kind: arbitrary}},
	{"[FEU]", atom{metric: true, kind: arbitrary}},
	{"[ELU]", atom{kind: arbitrary}},
	{"[EU]", atom{metric: true, kind: arbitrary}},
}

// resolved is an atom in base units.
type resolved struct {
	metric bool
	unit   *Unit // the atom's magnitude and dimension; offset set for interval units
	kind   kind
}

// atoms are the atoms of table, resolved once: read-only afterwards.
var atoms = resolveTable()

// resolveTable resolves each atom of table into base units, in order, so
// that each definition is parsed with the atoms before it.
func resolveTable() map[string]resolved {
	out := make(map[string]resolved, len(table))
	for _, e := range table {
		r := resolved{metric: e.metric, kind: e.kind}
		switch e.kind {
		case base, arbitrary:
			r.unit = &Unit{factor: big.NewRat(1, 1), dims: map[string]int{e.symbol: 1}}
		default:
			u, err := (&parser{atoms: out}).parse(e.unit)
			if err != nil {
				panic(fmt.Sprintf("ucum: definition of %s: %v", e.symbol, err))
			}
			u.factor.Mul(u.factor, rat(e.value))
			if o, ok := offsets[e.symbol]; ok {
				// The offset is in the unit of the definition: scale it too.
				u.offset = rat(o)
				u.offset.Mul(u.offset, u.factor)
			}
			r.unit = u
		}
		out[e.symbol] = r
	}
	return out
}

// rat reads a decimal constant of the tables.
func rat(s string) *big.Rat {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		panic("ucum: bad constant " + s)
	}
	return r
}
