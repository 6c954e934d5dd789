package fhirpath

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"

	"math"
	"math/big"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// function is a FHIRPath function: its arity and implementation. Arguments
// are passed unevaluated, because many functions evaluate them once per
// input item.
type function struct {
	minArgs, maxArgs int
	call             func(c *ctx, in []Value, args []expr) ([]Value, error)
}

// functions is the function table. It is filled once, at package
// initialisation (the functions refer to the evaluator, which refers to the
// table), and never changes afterwards.
var functions map[string]function

func init() {
	functions = map[string]function{
		// Existence.
		"empty": {0, 0, func(c *ctx, in []Value, _ []expr) ([]Value, error) { return boolean(len(in) == 0), nil }},
		"exists": {0, 1, func(c *ctx, in []Value, args []expr) ([]Value, error) {
			if len(args) == 1 {
				var err error
				if in, err = where(c, in, args[0]); err != nil {
					return nil, err
				}
			}
			return boolean(len(in) > 0), nil
		}},
		"all": {1, 1, func(c *ctx, in []Value, args []expr) ([]Value, error) {
			for i, v := range in {
				r, err := args[0].eval(c.with(v, i), []Value{v})
				if err != nil {
					return nil, err
				}
				b, ok, err := singletonBool(r)
				if err != nil {
					return nil, err
				}
				if !ok || !b {
					return boolean(false), nil
				}
			}
			return boolean(true), nil
		}},
		"allTrue":    {0, 0, boolAgg(func(b bool) bool { return b }, true)},
		"anyTrue":    {0, 0, boolAgg(func(b bool) bool { return b }, false)},
		"allFalse":   {0, 0, boolAgg(func(b bool) bool { return !b }, true)},
		"anyFalse":   {0, 0, boolAgg(func(b bool) bool { return !b }, false)},
		"subsetOf":   {1, 1, subset(false)},
		"supersetOf": {1, 1, subset(true)},
		"count":      {0, 0, func(c *ctx, in []Value, _ []expr) ([]Value, error) { return []Value{Integer(len(in))}, nil }},
		"distinct":   {0, 0, func(c *ctx, in []Value, _ []expr) ([]Value, error) { return c.union(in, nil) }},
		"isDistinct": {0, 0, func(c *ctx, in []Value, _ []expr) ([]Value, error) {
			d, err := c.union(in, nil)
			return boolean(len(d) == len(in)), err
		}},

		// Filtering and projection.
		"where": {1, 1, func(c *ctx, in []Value, args []expr) ([]Value, error) { return where(c, in, args[0]) }},
		"select": {1, 1, func(c *ctx, in []Value, args []expr) ([]Value, error) {
			var out []Value
			for i, v := range in {
				r, err := args[0].eval(c.with(v, i), []Value{v})
				if err != nil {
					return nil, err
				}
				out = append(out, r...)
			}
			return out, nil
		}},
		"repeat": {1, 1, func(c *ctx, in []Value, args []expr) ([]Value, error) {
			return repeat(c, in, func(v Value, i int) ([]Value, error) { return args[0].eval(c.with(v, i), []Value{v}) })
		}},
		"ofType": {1, 1, func(c *ctx, in []Value, args []expr) ([]Value, error) {
			name, err := typeArg(args[0])
			if err != nil {
				return nil, err
			}
			return c.ofType(in, name)
		}},

		// Subsetting.
		"single": {0, 0, func(c *ctx, in []Value, _ []expr) ([]Value, error) {
			if len(in) > 1 {
				return nil, errors.New("more than one item")
			}
			return in, nil
		}},
		"first": {0, 0, func(c *ctx, in []Value, _ []expr) ([]Value, error) { return take(in, 1), nil }},
		"last": {0, 0, func(c *ctx, in []Value, _ []expr) ([]Value, error) {
			if len(in) == 0 {
				return nil, nil
			}
			return in[len(in)-1:], nil
		}},
		"tail": {0, 0, func(c *ctx, in []Value, _ []expr) ([]Value, error) { return skip(in, 1), nil }},
		"skip": {1, 1, intArg(func(in []Value, n int) []Value { return skip(in, n) })},
		"take": {1, 1, intArg(take)},
		"intersect": {1, 1, func(c *ctx, in []Value, args []expr) ([]Value, error) {
			other, err := args[0].eval(c, c.this)
			if err != nil {
				return nil, err
			}
			in, err = c.union(in, nil)
			if err == nil {
				err = c.spent.compare(len(in) * len(other))
			}
			if err != nil {
				return nil, err
			}
			var out []Value
			for _, v := range in {
				if contains(other, v) {
					out = append(out, v)
				}
			}
			return out, nil
		}},
		"exclude": {1, 1, func(c *ctx, in []Value, args []expr) ([]Value, error) {
			other, err := args[0].eval(c, c.this)
			if err != nil {
				return nil, err
			}
			if err := c.spent.compare(len(in) * len(other)); err != nil {
				return nil, err
			}
			var out []Value
			for _, v := range in {
				if !contains(other, v) {
					out = append(out, v)
				}
			}
			return out, nil
		}},

		// Combining.
		"union": {1, 1, func(c *ctx, in []Value, args []expr) ([]Value, error) {
			other, err := args[0].eval(c, c.this)
			if err != nil {
				return nil, err
			}
			return c.union(in, other)
		}},
		"combine": {1, 1, func(c *ctx, in []Value, args []expr) ([]Value, error) {
			other, err := args[0].eval(c, c.this)
			return append(append([]Value(nil), in...), other...), err
		}},

		// Conversion.
		"iif": {2, 3, func(c *ctx, in []Value, args []expr) ([]Value, error) {
			if len(in) > 1 {
				return nil, errors.New("iif on a collection of more than one item")
			}
			ic := c
			if len(in) == 1 && !(len(c.this) == 1 && c.this[0] == in[0]) {
				ic = c.with(in[0], 0)
			}
			cond, err := args[0].eval(ic, ic.this)
			if err != nil {
				return nil, err
			}
			if len(cond) > 1 {
				return nil, errors.New("criterion is a collection")
			}
			if _, isBool := system(first(cond)).(Boolean); c.env.Strict && len(cond) == 1 && !isBool {
				return nil, errors.New("criterion is not a boolean")
			}
			b, ok, err := singletonBool(cond)
			if err != nil {
				return nil, err
			}
			if ok && b {
				return args[1].eval(ic, ic.this)
			}
			if len(args) == 3 {
				return args[2].eval(ic, ic.this)
			}
			return nil, nil
		}},
		"toBoolean":          conversion(toBoolean, false),
		"convertsToBoolean":  conversion(toBoolean, true),
		"toInteger":          conversion(toInteger, false),
		"convertsToInteger":  conversion(toInteger, true),
		"toDecimal":          conversion(toDecimal, false),
		"convertsToDecimal":  conversion(toDecimal, true),
		"toString":           conversion(toStringValue, false),
		"convertsToString":   conversion(toStringValue, true),
		"toDate":             conversion(toDate, false),
		"convertsToDate":     conversion(toDate, true),
		"toDateTime":         conversion(toDateTime, false),
		"convertsToDateTime": conversion(toDateTime, true),
		"toTime":             conversion(toTime, false),
		"convertsToTime":     conversion(toTime, true),
		"toQuantity":         quantityConversion(false),
		"convertsToQuantity": quantityConversion(true),

		// Strings.
		"indexOf": {1, 1, stringFn(1, func(s string, a []string) (Value, error) {
			i := strings.Index(s, a[0])
			if i < 0 {
				return Integer(-1), nil
			}
			return Integer(utf8.RuneCountInString(s[:i])), nil
		})},
		"substring": {1, 2, func(c *ctx, in []Value, args []expr) ([]Value, error) {
			s, ok, err := singletonString(in)
			if err != nil || !ok {
				return nil, err
			}
			start, ok, err := evalInt(c, args[0])
			if err != nil || !ok {
				return nil, err
			}
			r := []rune(s)
			if start < 0 || start >= len(r) {
				return nil, nil
			}
			end := len(r)
			if len(args) == 2 {
				n, ok, err := evalInt(c, args[1])
				if err != nil {
					return nil, err
				}
				if ok {
					end = min(start+max(n, 0), len(r))
				}
			}
			return []Value{String(r[start:end])}, nil
		}},
		"startsWith": {1, 1, stringFn(1, func(s string, a []string) (Value, error) { return Boolean(strings.HasPrefix(s, a[0])), nil })},
		"endsWith":   {1, 1, stringFn(1, func(s string, a []string) (Value, error) { return Boolean(strings.HasSuffix(s, a[0])), nil })},
		"contains":   {1, 1, stringFn(1, func(s string, a []string) (Value, error) { return Boolean(strings.Contains(s, a[0])), nil })},
		"upper":      {0, 0, stringFn(0, func(s string, _ []string) (Value, error) { return String(strings.ToUpper(s)), nil })},
		"lower":      {0, 0, stringFn(0, func(s string, _ []string) (Value, error) { return String(strings.ToLower(s)), nil })},
		"trim":       {0, 0, stringFn(0, func(s string, _ []string) (Value, error) { return String(strings.TrimSpace(s)), nil })},
		"length":     {0, 0, stringFn(0, func(s string, _ []string) (Value, error) { return Integer(utf8.RuneCountInString(s)), nil })},
		"replace": {2, 2, stringFn(2, func(s string, a []string) (Value, error) {
			return String(strings.ReplaceAll(s, a[0], a[1])), nil
		})},
		"matches": {1, 1, stringFn(1, func(s string, a []string) (Value, error) {
			re, err := regexp.Compile("(?s)" + a[0])
			if err != nil {
				return nil, err
			}
			return Boolean(re.MatchString(s)), nil
		})},
		"matchesFull": {1, 1, stringFn(1, func(s string, a []string) (Value, error) {
			re, err := regexp.Compile("(?s)^(?:" + a[0] + ")$")
			if err != nil {
				return nil, err
			}
			return Boolean(re.MatchString(s)), nil
		})},
		"replaceMatches": {2, 2, stringFn(2, func(s string, a []string) (Value, error) {
			if a[0] == "" {
				return String(s), nil
			}
			re, err := regexp.Compile("(?s)" + a[0])
			if err != nil {
				return nil, err
			}
			return String(re.ReplaceAllString(s, a[1])), nil
		})},
		"toChars": {0, 0, func(c *ctx, in []Value, _ []expr) ([]Value, error) {
			s, ok, err := singletonString(in)
			if err != nil || !ok {
				return nil, err
			}
			var out []Value
			for _, r := range s {
				out = append(out, String(string(r)))
			}
			return out, nil
		}},
		"split": {1, 1, func(c *ctx, in []Value, args []expr) ([]Value, error) {
			s, ok, err := singletonString(in)
			if err != nil || !ok {
				return nil, err
			}
			sep, ok, err := evalString(c, args[0])
			if err != nil || !ok {
				return nil, err
			}
			var out []Value
			for _, p := range strings.Split(s, sep) {
				out = append(out, String(p))
			}
			return out, nil
		}},
		"join": {0, 1, func(c *ctx, in []Value, args []expr) ([]Value, error) {
			sep := ""
			if len(args) == 1 {
				s, _, err := evalString(c, args[0])
				if err != nil {
					return nil, err
				}
				sep = s
			}
			parts := make([]string, 0, len(in))
			for _, v := range in {
				if valueless(v) {
					continue
				}
				s, ok := system(v).(String)
				if !ok {
					return nil, fmt.Errorf("join needs strings, not %s", v.TypeName())
				}
				parts = append(parts, string(s))
			}
			return []Value{String(strings.Join(parts, sep))}, nil
		}},
		"encode":   {1, 1, stringFn(1, encode)},
		"decode":   {1, 1, stringFn(1, decode)},
		"escape":   {1, 1, stringFn(1, escape)},
		"unescape": {1, 1, stringFn(1, unescape)},

		// Math.
		"abs": {0, 0, mathFn(func(r *big.Rat, scale int, isInt bool) (Value, error) {
			return number(new(big.Rat).Abs(r), scale, isInt), nil
		})},
		"ceiling": {0, 0, mathFn(func(r *big.Rat, _ int, _ bool) (Value, error) {
			f := floorRat(r)
			if new(big.Rat).SetInt(f).Cmp(r) != 0 {
				f.Add(f, big.NewInt(1))
			}
			return intValue(f), nil
		})},
		"floor": {0, 0, mathFn(func(r *big.Rat, _ int, _ bool) (Value, error) { return intValue(floorRat(r)), nil })},
		"truncate": {0, 0, mathFn(func(r *big.Rat, _ int, _ bool) (Value, error) {
			return intValue(new(big.Int).Quo(r.Num(), r.Denom())), nil
		})},
		"exp":  floatFn(math.Exp),
		"ln":   floatFn(math.Log),
		"sqrt": floatFn(math.Sqrt),
		"log": {1, 1, func(c *ctx, in []Value, args []expr) ([]Value, error) {
			base, ok, err := evalNumber(c, args[0])
			if err != nil || !ok {
				return nil, err
			}
			return floatFn(func(x float64) float64 { return math.Log(x) / math.Log(base) }).call(c, in, nil)
		}},
		"power": {1, 1, func(c *ctx, in []Value, args []expr) ([]Value, error) {
			if len(in) == 0 {
				return nil, nil
			}
			ev, err := args[0].eval(c, c.this)
			if err != nil || len(ev) == 0 {
				return nil, err
			}
			b, e := system(in[0]), system(ev[0])
			if bi, ok := b.(Integer); ok {
				if ei, ok := e.(Integer); ok && ei >= 0 {
					r, ok := powInt(bi, ei)
					if !ok {
						return nil, nil // overflow: empty
					}
					return []Value{r}, nil
				}
			}
			er, ok := toRat(e)
			if !ok {
				return nil, fmt.Errorf("power needs a number, not %s", e.TypeName())
			}
			ef, _ := er.Float64()
			return floatFn(func(x float64) float64 { return math.Pow(x, ef) }).call(c, in, nil)
		}},
		"round": {0, 1, func(c *ctx, in []Value, args []expr) ([]Value, error) {
			prec := 0
			if len(args) == 1 {
				p, ok, err := evalInt(c, args[0])
				if err != nil {
					return nil, err
				}
				if ok {
					if p < 0 {
						return nil, errors.New("negative precision")
					}
					prec = p
				}
			}
			return mathFn(func(r *big.Rat, _ int, _ bool) (Value, error) {
				return Decimal{r: roundRat(r, prec), scale: prec}, nil
			})(c, in, nil)
		}},

		// Tree navigation.
		"children": {0, 0, func(c *ctx, in []Value, _ []expr) ([]Value, error) {
			var out []Value
			for _, v := range in {
				if n, ok := v.(*Node); ok {
					out = append(out, c.m.allChildren(n)...)
				}
			}
			return out, nil
		}},
		"descendants": {0, 0, func(c *ctx, in []Value, _ []expr) ([]Value, error) {
			// repeat(children()), walked level by level without looking
			// for items already output, as the HL7 reference
			// implementation does: elements form a tree, so from one
			// element none is reached twice, and a check for it made
			// descendants() quadratic. (repeat compares with =, which
			// would also fold equal primitives, such as two codes, into
			// one, defeating invariants that look for duplicates.)
			var out []Value
			for queue := in; len(queue) > 0; {
				var next []Value
				for _, v := range queue {
					if n, ok := v.(*Node); ok {
						next = append(next, c.m.allChildren(n)...)
					}
				}
				out = append(out, next...)
				if len(out) > maxRepeat {
					return nil, errors.New("descendants produced too many items")
				}
				queue = next
			}
			return out, nil
		}},

		// Utility.
		"trace": {1, 2, func(c *ctx, in []Value, args []expr) ([]Value, error) {
			name, _, err := evalString(c, args[0])
			if err != nil {
				return nil, err
			}
			if c.env.Trace != nil {
				shown := in
				if len(args) == 2 {
					shown = nil
					for i, v := range in {
						r, err := args[1].eval(c.with(v, i), []Value{v})
						if err != nil {
							return nil, err
						}
						shown = append(shown, r...)
					}
				}
				c.env.Trace(name, shown)
			}
			return in, nil
		}},
		"now": {0, 0, func(c *ctx, _ []Value, _ []expr) ([]Value, error) {
			d, err := ParseDateTime(c.clock.now().Format("2006-01-02T15:04:05.000Z07:00"))
			return []Value{d}, err
		}},
		"today": {0, 0, func(c *ctx, _ []Value, _ []expr) ([]Value, error) {
			d, err := ParseDate(c.clock.now().Format("2006-01-02"))
			return []Value{d}, err
		}},
		"timeOfDay": {0, 0, func(c *ctx, _ []Value, _ []expr) ([]Value, error) {
			t, err := ParseTime(c.clock.now().Format("15:04:05.000"))
			return []Value{t}, err
		}},
		"not": {0, 0, func(c *ctx, in []Value, _ []expr) ([]Value, error) {
			b, ok, err := singletonBool(in)
			if err != nil || !ok {
				return nil, err
			}
			return boolean(!b), nil
		}},
		"is": {1, 1, func(c *ctx, in []Value, args []expr) ([]Value, error) {
			name, err := typeArg(args[0])
			if err != nil || len(in) == 0 {
				return nil, err
			}
			if len(in) > 1 {
				return nil, errors.New("is() on a collection of more than one item")
			}
			ok, err := c.isType(in[0], name)
			return boolean(ok), err
		}},
		"as": {1, 1, func(c *ctx, in []Value, args []expr) ([]Value, error) {
			name, err := typeArg(args[0])
			if err != nil {
				return nil, err
			}
			if len(in) > 1 {
				return nil, errors.New("as() on a collection of more than one item")
			}
			return c.ofType(in, name)
		}},
		"type": {0, 0, func(c *ctx, in []Value, _ []expr) ([]Value, error) {
			var out []Value
			for _, v := range in {
				ns, name, _ := strings.Cut(v.TypeName(), ".")
				out = append(out, &Node{val: map[string]any{"namespace": ns, "name": name}, name: "type"})
			}
			return out, nil
		}},
		"aggregate": {1, 2, func(c *ctx, in []Value, args []expr) ([]Value, error) {
			var total []Value
			if len(args) == 2 {
				var err error
				if total, err = args[1].eval(c, c.this); err != nil {
					return nil, err
				}
			}
			for i, v := range in {
				ic := c.with(v, i)
				ic.total = total
				var err error
				if total, err = args[0].eval(ic, []Value{v}); err != nil {
					return nil, err
				}
			}
			return total, nil
		}},
		"sort": {0, 8, sortFn},

		// FHIR additions.
		"extension": {1, 1, func(c *ctx, in []Value, args []expr) ([]Value, error) {
			url, ok, err := evalString(c, args[0])
			if err != nil || !ok {
				return nil, err
			}
			exts, err := navigate(c, in, "extension")
			if err != nil {
				return nil, err
			}
			var out []Value
			for _, e := range exts {
				if n, ok := e.(*Node); ok {
					if obj, ok := n.val.(map[string]any); ok && obj["url"] == url {
						out = append(out, e)
					}
				}
			}
			return out, nil
		}},
		"resolve": {0, 0, resolve},
		"memberOf": {1, 1, func(c *ctx, in []Value, args []expr) ([]Value, error) {
			vs, ok, err := evalString(c, args[0])
			if err != nil || !ok || len(in) != 1 || c.env.MemberOf == nil {
				return nil, err
			}
			b, err := c.env.MemberOf(in[0], vs)
			if err != nil {
				return nil, err
			}
			return boolean(b), nil
		}},
		"conformsTo": {1, 1, func(c *ctx, in []Value, args []expr) ([]Value, error) {
			url, ok, err := evalString(c, args[0])
			if err != nil || !ok || len(in) != 1 {
				return nil, err
			}
			if c.env.ConformsTo != nil {
				b, err := c.env.ConformsTo(in[0], url)
				if err != nil {
					return nil, err
				}
				return boolean(b), nil
			}
			if t, ok := strings.CutPrefix(url, "http://hl7.org/fhir/StructureDefinition/"); ok && c.m.types[t] != nil {
				n, isNode := in[0].(*Node)
				return boolean(isNode && c.m.derivesFrom(n.typ, t)), nil
			}
			return nil, fmt.Errorf("unknown profile %s", url)
		}},
		"hasValue": {0, 0, func(c *ctx, in []Value, _ []expr) ([]Value, error) {
			if len(in) != 1 {
				return boolean(false), nil
			}
			n, ok := in[0].(*Node)
			return boolean(ok && n.system() != nil), nil
		}},
		"getValue": {0, 0, func(c *ctx, in []Value, _ []expr) ([]Value, error) {
			if len(in) != 1 {
				return nil, nil
			}
			if n, ok := in[0].(*Node); ok {
				if v := n.system(); v != nil {
					return []Value{v}, nil
				}
			}
			return nil, nil
		}},
		"htmlChecks": {0, 0, func(c *ctx, in []Value, _ []expr) ([]Value, error) {
			s, ok, err := singletonString(in)
			if err != nil || !ok {
				return boolean(false), err
			}
			return boolean(safeXHTML(s)), nil
		}},
		"lowBoundary":  {0, 1, boundary(false)},
		"highBoundary": {0, 1, boundary(true)},
		"precision": {0, 0, func(c *ctx, in []Value, _ []expr) ([]Value, error) {
			if len(in) != 1 {
				return nil, nil
			}
			switch v := system(in[0]).(type) {
			case Decimal:
				return []Value{Integer(v.scale)}, nil
			case Integer:
				return []Value{Integer(0)}, nil
			case Date, DateTime, Time:
				t, _ := temporalOf(v)
				return []Value{Integer(temporalDigits(v, t))}, nil
			}
			return nil, nil
		}},
		"comparable": {1, 1, func(c *ctx, in []Value, args []expr) ([]Value, error) {
			other, err := args[0].eval(c, c.this)
			if err != nil || len(in) != 1 || len(other) != 1 {
				return nil, err
			}
			a, ok1 := system(in[0]).(Quantity)
			b, ok2 := system(other[0]).(Quantity)
			if !ok1 || !ok2 {
				return nil, errors.New("comparable needs quantities")
			}
			_, ok := compareQuantities(a, b, false)
			return boolean(ok), nil
		}},
	}
}

// first returns the first item of in, or nil.
func first(in []Value) Value {
	if len(in) == 0 {
		return nil
	}
	return in[0]
}

func boolean(b bool) []Value { return []Value{Boolean(b)} }

func where(c *ctx, in []Value, crit expr) ([]Value, error) {
	var out []Value
	for i, v := range in {
		r, err := crit.eval(c.with(v, i), []Value{v})
		if err != nil {
			return nil, err
		}
		b, ok, err := singletonBool(r)
		if err != nil {
			return nil, err
		}
		if ok && b {
			out = append(out, v)
		}
	}
	return out, nil
}

// repeat applies f to the input and, breadth first, to every new item it
// yields, until no new items appear.
func repeat(c *ctx, in []Value, f func(Value, int) ([]Value, error)) ([]Value, error) {
	var out []Value
	var seen valueSet
	queue := in
	for len(queue) > 0 {
		var next []Value
		for i, v := range queue {
			r, err := f(v, i)
			if err != nil {
				return nil, err
			}
			for _, x := range r {
				if err := c.spent.compare(len(seen.others)); err != nil {
					return nil, err
				}
				if seen.add(x) {
					out = append(out, x)
					next = append(next, x)
				}
			}
		}
		if len(out) > maxRepeat {
			return nil, errors.New("repeat produced too many items")
		}
		queue = next
	}
	return out, nil
}

// maxRepeat bounds the output of repeat and descendants.
const maxRepeat = 100000

// valueSet holds the items repeat has output, so that it outputs each once:
// a node is the same as another when it is the same element (its JSON
// object, type and name), a system value when it is equal. Nodes of
// objects, nearly all of what repeat walks, are found by key; the others
// by comparison with each.
type valueSet struct {
	objects map[objectKey]bool
	others  []Value
}

type objectKey struct {
	obj       uintptr // the JSON object
	typ, name string
}

// add adds x and reports whether it was not there.
func (s *valueSet) add(x Value) bool {
	if n, ok := x.(*Node); ok {
		if obj, ok := n.val.(map[string]any); ok {
			k := objectKey{reflect.ValueOf(obj).Pointer(), n.typ, n.name}
			if s.objects[k] {
				return false
			}
			if s.objects == nil {
				s.objects = map[objectKey]bool{}
			}
			s.objects[k] = true
			return true
		}
	}
	if containsSame(s.others, x) {
		return false
	}
	s.others = append(s.others, x)
	return true
}

// containsSame reports whether in holds x: the same node (the same JSON
// value, type and name), or an equal system value.
func containsSame(in []Value, x Value) bool {
	xn, isNode := x.(*Node)
	for _, v := range in {
		if isNode {
			if n, ok := v.(*Node); ok && n.typ == xn.typ && n.name == xn.name && sameJSON(n.val, xn.val) {
				return true
			}
			continue
		}
		if eq, ok := equal(v, x); ok && eq {
			return true
		}
	}
	return false
}

// sameJSON reports whether a and b are the very same JSON value (for maps
// and slices, the same object).
func sameJSON(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		return ok && reflect.ValueOf(x).Pointer() == reflect.ValueOf(y).Pointer()
	case []any:
		return false
	}
	return a == b
}

func contains(in []Value, x Value) bool {
	for _, v := range in {
		if eq, ok := equal(v, x); ok && eq {
			return true
		}
	}
	return false
}

func take(in []Value, n int) []Value {
	if n <= 0 {
		return nil
	}
	return in[:min(n, len(in))]
}

func skip(in []Value, n int) []Value {
	if n <= 0 {
		return in
	}
	if n >= len(in) {
		return nil
	}
	return in[n:]
}

func intArg(f func([]Value, int) []Value) func(*ctx, []Value, []expr) ([]Value, error) {
	return func(c *ctx, in []Value, args []expr) ([]Value, error) {
		n, ok, err := evalInt(c, args[0])
		if err != nil || !ok {
			return nil, err
		}
		return f(in, n), nil
	}
}

func evalInt(c *ctx, a expr) (int, bool, error) {
	v, err := a.eval(c, c.this)
	if err != nil {
		return 0, false, err
	}
	return singletonInt(v)
}

func evalString(c *ctx, a expr) (string, bool, error) {
	v, err := a.eval(c, c.this)
	if err != nil {
		return "", false, err
	}
	return singletonString(v)
}

func evalNumber(c *ctx, a expr) (float64, bool, error) {
	v, err := a.eval(c, c.this)
	if err != nil || len(v) == 0 {
		return 0, false, err
	}
	r, ok := toRat(system(v[0]))
	if !ok || len(v) > 1 {
		return 0, false, errors.New("expected a single number")
	}
	f, _ := r.Float64()
	return f, true, nil
}

// typeArg returns the type name an ofType/is/as argument spells.
func typeArg(a expr) (string, error) {
	switch x := a.(type) {
	case *identExpr:
		return x.name, nil
	case *memberExpr:
		if id, ok := x.target.(*identExpr); ok {
			return id.name + "." + x.name, nil
		}
	}
	return "", errors.New("expected a type name")
}

func boolAgg(test func(bool) bool, all bool) func(*ctx, []Value, []expr) ([]Value, error) {
	return func(c *ctx, in []Value, _ []expr) ([]Value, error) {
		for _, v := range in {
			b, ok := system(v).(Boolean)
			if !ok {
				return nil, fmt.Errorf("expected booleans, found %s", v.TypeName())
			}
			if test(bool(b)) != all {
				return boolean(!all), nil
			}
		}
		return boolean(all), nil
	}
}

func subset(super bool) func(*ctx, []Value, []expr) ([]Value, error) {
	return func(c *ctx, in []Value, args []expr) ([]Value, error) {
		other, err := args[0].eval(c, c.this)
		if err != nil {
			return nil, err
		}
		a, b := in, other
		if super {
			a, b = other, in
		}
		if err := c.spent.compare(len(a) * len(b)); err != nil {
			return nil, err
		}
		for _, v := range a {
			if !contains(b, v) {
				return boolean(false), nil
			}
		}
		return boolean(true), nil
	}
}

func stringFn(nargs int, f func(string, []string) (Value, error)) func(*ctx, []Value, []expr) ([]Value, error) {
	return func(c *ctx, in []Value, args []expr) ([]Value, error) {
		s, ok, err := singletonString(in)
		if err != nil || !ok {
			return nil, err
		}
		a := make([]string, nargs)
		for i := range nargs {
			v, ok, err := evalString(c, args[i])
			if err != nil || !ok {
				return nil, err
			}
			a[i] = v
		}
		v, err := f(s, a)
		if err != nil || v == nil {
			return nil, err
		}
		return []Value{v}, nil
	}
}

// one returns v as a collection: empty when v is nil.
func one(v Value, err error) ([]Value, error) {
	if v == nil || err != nil {
		return nil, err
	}
	return []Value{v}, nil
}

func number(r *big.Rat, scale int, isInt bool) Value {
	if isInt {
		return intValue(r.Num())
	}
	return Decimal{r: r, scale: scale}
}

// intValue is n as an Integer, or nil (empty) when n does not fit in 64
// bits: FHIRPath answers overflow with empty.
func intValue(n *big.Int) Value {
	if !n.IsInt64() {
		return nil
	}
	return Integer(n.Int64())
}

// powInt raises b to the power e by squaring, in time logarithmic in e,
// and reports whether the result fits in 64 bits.
func powInt(b, e Integer) (Integer, bool) {
	r := Integer(1)
	for e > 0 {
		if e&1 == 1 {
			var ok bool
			if r, ok = mulInt(r, b); !ok {
				return 0, false
			}
		}
		e >>= 1
		if e > 0 {
			var ok bool
			if b, ok = mulInt(b, b); !ok {
				return 0, false
			}
		}
	}
	return r, true
}

func floorRat(r *big.Rat) *big.Int {
	q, m := new(big.Int).DivMod(r.Num(), r.Denom(), new(big.Int))
	_ = m
	return q
}

// mathFn applies f to a single Integer, Decimal or Quantity value.
func mathFn(f func(r *big.Rat, scale int, isInt bool) (Value, error)) func(*ctx, []Value, []expr) ([]Value, error) {
	return func(c *ctx, in []Value, _ []expr) ([]Value, error) {
		if len(in) == 0 {
			return nil, nil
		}
		if len(in) > 1 {
			return nil, errors.New("expected a single number")
		}
		switch v := system(in[0]).(type) {
		case Integer:
			return one(f(new(big.Rat).SetInt64(int64(v)), 0, true))
		case Decimal:
			return one(f(v.rat(), v.scale, false))
		case Quantity:
			r, err := f(v.Value.rat(), v.Value.scale, false)
			if d, ok := r.(Decimal); ok {
				return []Value{Quantity{Value: d, Unit: v.Unit}}, err
			}
			return one(r, err)
		}
		return nil, fmt.Errorf("expected a number, found %s", in[0].TypeName())
	}
}

func floatFn(f func(float64) float64) function {
	return function{0, 0, func(c *ctx, in []Value, _ []expr) ([]Value, error) {
		return mathFn(func(r *big.Rat, _ int, _ bool) (Value, error) {
			x, _ := r.Float64()
			y := f(x)
			if math.IsNaN(y) || math.IsInf(y, 0) {
				return nil, nil
			}
			d, err := ParseDecimal(strconv.FormatFloat(y, 'f', -1, 64))
			return d, err
		})(c, in, nil)
	}}
}

func conversion(conv func(Value) (Value, bool), test bool) function {
	return function{0, 0, func(c *ctx, in []Value, _ []expr) ([]Value, error) {
		if len(in) == 0 {
			return nil, nil
		}
		if len(in) > 1 {
			return nil, errors.New("conversion of a collection of more than one item")
		}
		v, ok := conv(system(in[0]))
		if test {
			return boolean(ok), nil
		}
		if !ok {
			return nil, nil
		}
		return []Value{v}, nil
	}}
}

var (
	integerRE  = regexp.MustCompile(`^[+-]?\d+$`)
	decimalRE  = regexp.MustCompile(`^[+-]?\d+(\.\d+)?$`)
	quantityRE = regexp.MustCompile(`^([+-]?\d+(?:\.\d+)?)\s*(?:'([^']+)'|([a-z]+))?$`)
)

func toBoolean(v Value) (Value, bool) {
	switch x := v.(type) {
	case Boolean:
		return x, true
	case Integer:
		if x == 0 || x == 1 {
			return Boolean(x == 1), true
		}
	case Decimal:
		if x.rat().Cmp(big.NewRat(1, 1)) == 0 {
			return Boolean(true), true
		}
		if x.rat().Sign() == 0 {
			return Boolean(false), true
		}
	case String:
		switch strings.ToLower(string(x)) {
		case "true", "t", "yes", "y", "1", "1.0":
			return Boolean(true), true
		case "false", "f", "no", "n", "0", "0.0":
			return Boolean(false), true
		}
	}
	return nil, false
}

func toInteger(v Value) (Value, bool) {
	switch x := v.(type) {
	case Integer:
		return x, true
	case Boolean:
		if x {
			return Integer(1), true
		}
		return Integer(0), true
	case String:
		if integerRE.MatchString(string(x)) {
			n, err := strconv.ParseInt(string(x), 10, 64)
			return Integer(n), err == nil
		}
	}
	return nil, false
}

func toDecimal(v Value) (Value, bool) {
	switch x := v.(type) {
	case Decimal:
		return x, true
	case Integer:
		return DecimalFromInt(int64(x)), true
	case Boolean:
		if x {
			return Decimal{r: big.NewRat(1, 1), scale: 1}, true
		}
		return Decimal{r: new(big.Rat), scale: 1}, true
	case String:
		if decimalRE.MatchString(string(x)) {
			d, err := ParseDecimal(string(x))
			return d, err == nil
		}
	}
	return nil, false
}

func toStringValue(v Value) (Value, bool) {
	switch x := v.(type) {
	case String:
		return x, true
	case Boolean:
		return String(strconv.FormatBool(bool(x))), true
	case Integer:
		return String(strconv.FormatInt(int64(x), 10)), true
	case Decimal:
		return String(x.String()), true
	case Date:
		return String(x.String()), true
	case DateTime:
		return String(x.String()), true
	case Time:
		return String(x.String()), true
	case Quantity:
		return String(x.String()), true
	}
	return nil, false
}

func toDate(v Value) (Value, bool) {
	switch x := v.(type) {
	case Date:
		return x, true
	case DateTime:
		t := x.t
		t.prec = min(t.prec, precDay)
		t.hour, t.minute, t.second, t.milli, t.hasTZ, t.tzMinutes = 0, 0, 0, 0, false, 0
		return Date{t}, true
	case String:
		if d, err := ParseDate(string(x)); err == nil {
			return d, true
		}
		if d, err := ParseDateTime(string(x)); err == nil {
			return toDate(d)
		}
	}
	return nil, false
}

func toDateTime(v Value) (Value, bool) {
	switch x := v.(type) {
	case DateTime:
		return x, true
	case Date:
		return DateTime{x.t}, true
	case String:
		if d, err := ParseDateTime(string(x)); err == nil {
			return d, true
		}
	}
	return nil, false
}

func toTime(v Value) (Value, bool) {
	switch x := v.(type) {
	case Time:
		return x, true
	case String:
		if t, err := ParseTime(string(x)); err == nil {
			return t, true
		}
	}
	return nil, false
}

func toQuantity(v Value) (Quantity, bool) {
	switch x := v.(type) {
	case Quantity:
		return x, true
	case Integer:
		return Quantity{Value: DecimalFromInt(int64(x)), Unit: "1"}, true
	case Decimal:
		return Quantity{Value: x, Unit: "1"}, true
	case Boolean:
		d, _ := toDecimal(x)
		return Quantity{Value: d.(Decimal), Unit: "1"}, true
	case String:
		m := quantityRE.FindStringSubmatch(string(x))
		if m == nil {
			return Quantity{}, false
		}
		d, err := ParseDecimal(m[1])
		if err != nil {
			return Quantity{}, false
		}
		unit := m[2]
		if m[3] != "" {
			if calendarUnits[m[3]] == "" {
				return Quantity{}, false
			}
			unit = m[3]
		}
		if unit == "" {
			unit = "1"
		}
		return Quantity{Value: d, Unit: unit}, true
	}
	return Quantity{}, false
}

func quantityConversion(test bool) function {
	return function{0, 1, func(c *ctx, in []Value, args []expr) ([]Value, error) {
		if len(in) == 0 {
			return nil, nil
		}
		if len(in) > 1 {
			return nil, errors.New("conversion of a collection of more than one item")
		}
		q, ok := toQuantity(system(in[0]))
		if ok && len(args) == 1 {
			unit, uok, err := evalString(c, args[0])
			if err != nil {
				return nil, err
			}
			if uok && unit != q.Unit {
				q, ok = convertQuantity(q, unit)
			}
		}
		if test {
			return boolean(ok), nil
		}
		if !ok {
			return nil, nil
		}
		return []Value{q}, nil
	}}
}

func convertQuantity(q Quantity, unit string) (Quantity, bool) {
	from, ok1 := unitOf(q.Unit, false)
	to, ok2 := unitOf(unit, false)
	if !ok1 || !ok2 || from.dim != to.dim {
		return Quantity{}, false
	}
	r := new(big.Rat).Mul(q.Value.rat(), new(big.Rat).Quo(from.factor, to.factor))
	return Quantity{Value: Decimal{r: r, scale: exactScale(r, q.Value.scale)}, Unit: unit}, true
}

func encode(s string, a []string) (Value, error) {
	switch a[0] {
	case "base64":
		return String(base64.StdEncoding.EncodeToString([]byte(s))), nil
	case "urlbase64":
		return String(base64.URLEncoding.EncodeToString([]byte(s))), nil
	case "hex":
		return String(hex.EncodeToString([]byte(s))), nil
	}
	return nil, fmt.Errorf("unknown encoding %q", a[0])
}

func decode(s string, a []string) (Value, error) {
	var b []byte
	var err error
	switch a[0] {
	case "base64":
		b, err = base64.StdEncoding.DecodeString(s)
	case "urlbase64":
		b, err = base64.URLEncoding.DecodeString(s)
	case "hex":
		b, err = hex.DecodeString(s)
	default:
		return nil, fmt.Errorf("unknown encoding %q", a[0])
	}
	if err != nil {
		return nil, nil
	}
	return String(b), nil
}

func escape(s string, a []string) (Value, error) {
	switch a[0] {
	case "html":
		return String(htmlEscaper.Replace(s)), nil
	case "json":
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			return nil, err
		}
		out := strings.TrimSuffix(b.String(), "\n")
		return String(out[1 : len(out)-1]), nil
	}
	return nil, fmt.Errorf("unknown escape %q", a[0])
}

var htmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;")

func unescape(s string, a []string) (Value, error) {
	switch a[0] {
	case "html":
		return String(html.UnescapeString(s)), nil
	case "json":
		// Quote the bare quotes, so the text is a valid JSON string body.
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			switch {
			case s[i] == '\\' && i+1 < len(s):
				b.WriteByte(s[i])
				b.WriteByte(s[i+1])
				i++
			case s[i] == '"':
				b.WriteString(`\"`)
			default:
				b.WriteByte(s[i])
			}
		}
		var out string
		if err := json.Unmarshal([]byte(`"`+b.String()+`"`), &out); err != nil {
			return nil, nil
		}
		return String(out), nil
	}
	return nil, fmt.Errorf("unknown escape %q", a[0])
}

// sortFn sorts the input by each key expression in turn; a key written
// with a leading minus sorts descending.
func sortFn(c *ctx, in []Value, args []expr) ([]Value, error) {
	type keyed struct {
		v    Value
		keys [][]Value
	}
	items := make([]keyed, len(in))
	desc := make([]bool, len(args))
	args = append([]expr(nil), args...) // the syntax tree is shared
	for j, a := range args {
		if n, ok := a.(*negExpr); ok {
			desc[j], args[j] = true, n.x
		}
	}
	for i, v := range in {
		items[i].v = v
		for _, a := range args {
			k, err := a.eval(c.with(v, i), []Value{v})
			if err != nil {
				return nil, err
			}
			items[i].keys = append(items[i].keys, k)
		}
	}
	var sortErr error
	sort.SliceStable(items, func(i, j int) bool {
		if len(args) == 0 {
			cmp, _, err := compare(items[i].v, items[j].v)
			if err != nil {
				sortErr = err
			}
			return cmp < 0
		}
		for k := range args {
			a, b := items[i].keys[k], items[j].keys[k]
			if len(a) == 0 || len(b) == 0 {
				// Empty keys sort first in either direction.
				if len(a) != len(b) {
					return len(a) == 0
				}
				continue
			}
			cmp, _, err := compare(a[0], b[0])
			if err != nil {
				sortErr = err
				return false
			}
			if cmp != 0 {
				return cmp < 0 != desc[k]
			}
		}
		return false
	})
	out := make([]Value, len(items))
	for i, it := range items {
		out[i] = it.v
	}
	return out, sortErr
}

// resolve returns the resources the input references point to.
func resolve(c *ctx, in []Value, _ []expr) ([]Value, error) {
	var out []Value
	for _, v := range in {
		var ref string
		switch x := v.(type) {
		case *Node:
			if obj, ok := x.val.(map[string]any); ok {
				ref, _ = obj["reference"].(string)
			} else if s, ok := x.val.(string); ok {
				ref = s
			}
		case String:
			ref = string(x)
		}
		if ref == "" {
			continue
		}
		if c.env.Resolve != nil {
			if r, ok := c.env.Resolve(ref); ok {
				out = append(out, c.m.node(r, nil, "", "", ""))
				continue
			}
		}
		if id, ok := strings.CutPrefix(ref, "#"); ok {
			if r := c.contained(id); r != nil {
				out = append(out, r)
			}
			continue
		}
		if n := c.stub(ref); n != nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// contained returns the first resource contained in a root whose id is id,
// or nil. A reference resolves to one resource at most: were two contained
// resources to share an id, "resolve() is Patient" would otherwise be an
// error, and a search parameter over it could not be indexed.
func (c *ctx) contained(id string) Value {
	for _, root := range c.root {
		cont, _ := navigate(c, []Value{root}, "contained")
		for _, r := range cont {
			if obj, ok := r.(*Node).val.(map[string]any); ok && obj["id"] == id {
				return r
			}
		}
	}
	return nil
}

// stub returns a resource of the type a reference names, holding only its
// id: enough for "resolve() is Patient".
func (c *ctx) stub(ref string) *Node {
	ref, _, _ = strings.Cut(ref, "/_history/")
	parts := strings.Split(ref, "/")
	if len(parts) < 2 {
		return nil
	}
	typ, id := parts[len(parts)-2], parts[len(parts)-1]
	if !c.m.isResource(typ) {
		return nil
	}
	return c.m.node(map[string]any{"resourceType": typ, "id": id}, nil, typ, "", "")
}

// temporalDigits returns the precision() of a temporal value: the number of
// digits it is written with.
func temporalDigits(v Value, t temporal) int {
	if _, ok := v.(Time); ok {
		return timeDigits[t.prec]
	}
	return dateDigits[t.prec]
}

// dateDigits and timeDigits give the digits a value of each precision is
// written with.
var (
	dateDigits = [...]int{0, 4, 6, 8, 10, 12, 14, 17}
	timeDigits = [...]int{0, 0, 0, 0, 2, 4, 6, 9}
)

// boundary implements lowBoundary and highBoundary for decimals and
// temporal values.
func boundary(high bool) func(*ctx, []Value, []expr) ([]Value, error) {
	return func(c *ctx, in []Value, args []expr) ([]Value, error) {
		if len(in) != 1 {
			return nil, nil
		}
		prec, hasPrec := -1, false
		if len(args) == 1 {
			p, ok, err := evalInt(c, args[0])
			if err != nil {
				return nil, err
			}
			prec, hasPrec = p, ok
		}
		if !hasPrec {
			prec = 8
		}
		switch v := system(in[0]).(type) {
		case Integer, Decimal:
			d, ok := decimalBoundary(v, prec, high)
			if !ok {
				return nil, nil
			}
			return []Value{d}, nil
		case Quantity:
			d, ok := decimalBoundary(v.Value, prec, high)
			if !ok {
				return nil, nil
			}
			return []Value{Quantity{Value: d, Unit: v.Unit}}, nil
		case Date, DateTime, Time:
			if !hasPrec {
				prec = -1
			}
			t, _ := temporalOf(v)
			return one(temporalBoundary(v, t, high, prec, hasPrec), nil)
		}
		return nil, nil
	}
}

// decimalBoundary returns the least (or greatest) value v could stand for
// given the digits it was written with, cut to prec digits.
func decimalBoundary(v Value, prec int, high bool) (Decimal, bool) {
	if prec < 0 || prec > maxScale {
		return Decimal{}, false
	}
	r, _ := toRat(v)
	half := new(big.Rat).SetFrac(big.NewInt(5), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scaleOf(v)+1)), nil))
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(prec)), nil)
	if high {
		x := new(big.Rat).Mul(new(big.Rat).Add(r, half), new(big.Rat).SetInt(p))
		q := floorRat(x)
		if new(big.Rat).SetInt(q).Cmp(x) != 0 {
			q.Add(q, big.NewInt(1))
		}
		return Decimal{r: new(big.Rat).SetFrac(q, p), scale: prec}, true
	}
	x := new(big.Rat).Mul(new(big.Rat).Sub(r, half), new(big.Rat).SetInt(p))
	return Decimal{r: new(big.Rat).SetFrac(floorRat(x), p), scale: prec}, true
}

func temporalBoundary(v Value, t temporal, high bool, prec int, hasPrec bool) Value {
	target := precMilli
	if _, ok := v.(Date); ok {
		target = precDay
	}
	if hasPrec {
		digits := dateDigits
		if _, ok := v.(Time); ok {
			digits = timeDigits
		}
		target = -1
		for p, d := range digits {
			if d == prec && d != 0 {
				target = p
			}
		}
		if target < 0 {
			return nil
		}
	}
	if target < t.prec {
		t.prec = target
		if target < precHour {
			t.hasTZ, t.tzMinutes = false, 0
			if _, ok := v.(DateTime); ok {
				return Date{t}
			}
		}
	}
	for p := t.prec + 1; p <= target; p++ {
		switch p {
		case precMonth:
			t.month = map[bool]int{false: 1, true: 12}[high]
		case precDay:
			t.day = 1
			if high {
				t.day = daysIn(t.year, t.month)
			}
		case precHour:
			t.hour = map[bool]int{false: 0, true: 23}[high]
		case precMinute:
			t.minute = map[bool]int{false: 0, true: 59}[high]
		case precSecond:
			t.second = map[bool]int{false: 0, true: 59}[high]
		case precMilli:
			t.milli = map[bool]int{false: 0, true: 999}[high]
		}
	}
	if target > t.prec {
		t.prec = target
	}
	if _, ok := v.(DateTime); ok && !t.hasTZ && t.prec >= precHour {
		t.hasTZ = true
		t.tzMinutes = map[bool]int{false: 14 * 60, true: -12 * 60}[high]
	}
	switch v.(type) {
	case Date:
		return Date{t}
	case DateTime:
		return DateTime{t}
	}
	return Time{t}
}
