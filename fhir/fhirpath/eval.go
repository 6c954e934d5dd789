package fhirpath

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strings"
	"time"
)

// Env is the environment of an evaluation. The zero value (or a nil *Env)
// is usable: it defines the standard variables only, resolves references to
// typed stubs, and has no terminology.
type Env struct {
	// Vars holds user variables, by name without '%'.
	Vars map[string][]Value
	// Resolve returns the resource a reference points to. When nil, or when
	// it reports false, a relative reference "Type/id" resolves to a stub
	// resource of that type holding only its id.
	Resolve func(reference string) (resource any, ok bool)
	// MemberOf reports whether a code, Coding or CodeableConcept is in the
	// ValueSet with the given URL. When nil, memberOf() is empty.
	MemberOf func(v Value, valueSet string) (bool, error)
	// ConformsTo reports whether a resource conforms to the profile with
	// the given URL. When nil, conformsTo() is empty.
	ConformsTo func(v Value, profile string) (bool, error)
	// Trace receives the values passed to trace().
	Trace func(name string, values []Value)
	// Now is the time now(), today() and timeOfDay() report; zero means
	// the time of the evaluation (read from Clock when first needed, then
	// the same throughout).
	Now time.Time
	// Clock gives the time of an evaluation when Now is zero, in the zone
	// now(), today() and timeOfDay() are reckoned in; nil means time.Now,
	// the host's zone. A server for one country passes a clock in its
	// zone, so that today() is its date whatever the host's.
	Clock func() time.Time
	// Strict makes a path starting with a type name that does not match
	// the input an error instead of an empty collection.
	Strict bool
	// PrimitiveAsSystem makes an unqualified System type name, such as
	// Boolean, also match a FHIR primitive of that system type, such as
	// boolean. The FHIR specification's invariants assume this (que-7:
	// "answer is Boolean"); the FHIRPath test suite expects the strict
	// reading, where Patient.active is not a Boolean.
	PrimitiveAsSystem bool
	// Budget bounds the work of the evaluation; its zero fields take
	// DefaultBudget's. Exceeding it fails with ErrTooCostly.
	Budget Budget
	// Meter, when set, makes the evaluations with this Env share one
	// Budget: each spends from what the earlier ones left. Expressions
	// that one request brings in any number, such as the paths of a
	// FHIRPath Patch, are so bounded together, not one by one.
	Meter *Meter
}

// EvalError reports a failure while evaluating an expression, such as a
// type error or a singleton expected where a collection was found.
type EvalError struct {
	Expr string
	Err  error
}

func (e *EvalError) Error() string { return fmt.Sprintf("fhirpath: evaluate %q: %v", e.Expr, e.Err) }

func (e *EvalError) Unwrap() error { return e.Err }

// Evaluate evaluates e against a resource: a JSON tree as produced by
// DecodeJSON or encoding/json, or a *Node. env may be nil.
func (e *Expression) Evaluate(resource any, env *Env) ([]Value, error) {
	m, err := loadModel()
	if err != nil {
		return nil, err
	}
	ev := &evaluation{}
	if env == nil {
		env = &noEnv
	}
	var root []Value
	switch r := resource.(type) {
	case nil:
	case *Node:
		root = ev.root[:]
		root[0] = r
	case Value:
		root = ev.root[:]
		root[0] = r
	default:
		root = ev.root[:]
		root[0] = m.node(r, nil, "", "", "")
	}
	ev.clock.t, ev.clock.read = env.Now, env.Clock
	ev.spent.limit = env.Budget.withDefaults()
	if mt := env.Meter; mt != nil {
		ev.spent.steps, ev.spent.bytes = mt.steps, mt.bytes
		defer func() { mt.steps, mt.bytes = ev.spent.steps, ev.spent.bytes }()
	}
	ev.c = ctx{env: env, m: m, root: root, this: root, clock: &ev.clock, spent: &ev.spent}
	c := &ev.c
	out, err := e.root.eval(c, root)
	if err != nil {
		return nil, &EvalError{Expr: e.src, Err: err}
	}
	return out, nil
}

// EvaluateBool evaluates e and applies the singleton evaluation of
// collections for a boolean, as invariants need: empty reports empty, a
// single Boolean its value, any other single item true, and more than one
// item is an error.
func (e *Expression) EvaluateBool(resource any, env *Env) (value, empty bool, err error) {
	out, err := e.Evaluate(resource, env)
	if err != nil {
		return false, false, err
	}
	b, ok, err := singletonBool(out)
	if err != nil {
		return false, false, &EvalError{Expr: e.src, Err: err}
	}
	return b, !ok, nil
}

// evaluation holds what one evaluation needs, in one allocation: its
// first context, its clock and the input.
type evaluation struct {
	c     ctx
	clock clock
	spent spending
	root  [1]Value
}

// noEnv is the environment of evaluations given none. Evaluation only
// reads its Env.
var noEnv Env

type ctx struct {
	env   *Env
	m     *model
	root  []Value // %resource, %context
	this  []Value // $this: the focus arguments are evaluated against
	index int
	total []Value
	clock *clock
	spent *spending
	depth int
}

// clock is the time now(), today() and timeOfDay() report during one
// evaluation: Env.Now, or else the time it is first asked for (from
// Env.Clock, else time.Now), which most evaluations never do.
type clock struct {
	t    time.Time
	read func() time.Time
}

func (k *clock) now() time.Time {
	if k.t.IsZero() {
		if k.read != nil {
			k.t = k.read()
		} else {
			k.t = time.Now()
		}
	}
	return k.t
}

// maxEvalDepth bounds recursion through repeat(), descendants() and the like.
const maxEvalDepth = 1000

// with returns a context whose $this is v and $index is i.
func (c *ctx) with(v Value, i int) *ctx {
	d := *c
	d.this = []Value{v}
	d.index = i
	return &d
}

type expr interface {
	eval(c *ctx, focus []Value) ([]Value, error)
}

type literal struct{ v Value }

func (l *literal) eval(*ctx, []Value) ([]Value, error) {
	if l.v == nil {
		return nil, nil
	}
	return []Value{l.v}, nil
}

type varExpr struct{ name string }

func (v *varExpr) eval(c *ctx, _ []Value) ([]Value, error) {
	switch v.name {
	case "$this":
		return c.this, nil
	case "$index":
		return []Value{Integer(c.index)}, nil
	default:
		return c.total, nil
	}
}

type constExpr struct{ name string }

func (k *constExpr) eval(c *ctx, _ []Value) ([]Value, error) {
	if v, ok := c.env.Vars[k.name]; ok {
		return v, nil
	}
	switch k.name {
	case "resource", "context", "rootResource":
		return c.root, nil
	case "ucum":
		return []Value{String("http://unitsofmeasure.org")}, nil
	case "sct":
		return []Value{String("http://snomed.info/sct")}, nil
	case "loinc":
		return []Value{String("http://loinc.org")}, nil
	}
	if s, ok := strings.CutPrefix(k.name, "vs-"); ok {
		return []Value{String("http://hl7.org/fhir/ValueSet/" + s)}, nil
	}
	if s, ok := strings.CutPrefix(k.name, "ext-"); ok {
		return []Value{String("http://hl7.org/fhir/StructureDefinition/" + s)}, nil
	}
	return nil, fmt.Errorf("undefined variable %%%s", k.name)
}

type identExpr struct{ name string }

func (id *identExpr) eval(c *ctx, focus []Value) ([]Value, error) {
	// A leading type name selects the input when it is of that type.
	if id.name != "" && id.name[0] >= 'A' && id.name[0] <= 'Z' {
		if td := c.m.types[id.name]; td != nil && td.kind == "resource" || c.m.types[id.name] == nil && len(focus) == 1 && isNode(focus[0]) && asNode(focus[0]).typ != "" {
			var out []Value
			for _, v := range focus {
				if n, ok := v.(*Node); ok && c.m.derivesFrom(n.typ, id.name) {
					out = append(out, v)
				}
			}
			if len(out) == 0 && c.env.Strict {
				return nil, fmt.Errorf("the input is not a %s", id.name)
			}
			if len(out) > 0 || c.m.types[id.name] != nil {
				return out, nil
			}
		}
	}
	return navigate(c, focus, id.name)
}

func isNode(v Value) bool { _, ok := v.(*Node); return ok }

func asNode(v Value) *Node { n, _ := v.(*Node); return n }

type memberExpr struct {
	target expr
	name   string
}

func (me *memberExpr) eval(c *ctx, focus []Value) ([]Value, error) {
	in, err := me.target.eval(c, focus)
	if err != nil {
		return nil, err
	}
	out, err := navigate(c, in, me.name)
	if err != nil {
		return nil, err
	}
	return out, c.spent.charge(out)
}

// navigate returns the name children of the input nodes. It is an error
// when the input has nodes but none of their types has the element, since
// that is a misspelt or misplaced path; in a mixed collection, such as the
// result of descendants(), the element need only exist on some types, and
// a node reached through children() or descendants() never makes it an
// error.
func navigate(c *ctx, in []Value, name string) ([]Value, error) {
	var out []Value
	var unknown *Node
	known := false
	for _, v := range in {
		n, ok := v.(*Node)
		if !ok {
			continue
		}
		kids, ok := c.m.children(n, name)
		if !ok && n.loose {
			known = true
			continue
		}
		if !ok {
			unknown = n
			continue
		}
		known = true
		out = append(out, kids...)
	}
	if unknown != nil && !known {
		return nil, fmt.Errorf("%s has no element %q", unknown.typ, name)
	}
	return out, nil
}

type indexExpr struct{ target, index expr }

func (ix *indexExpr) eval(c *ctx, focus []Value) ([]Value, error) {
	in, err := ix.target.eval(c, focus)
	if err != nil {
		return nil, err
	}
	idx, err := ix.index.eval(c, c.this)
	if err != nil {
		return nil, err
	}
	i, ok, err := singletonInt(idx)
	if err != nil || !ok {
		return nil, err
	}
	if i < 0 || i >= len(in) {
		return nil, nil
	}
	return in[i : i+1], nil
}

type negExpr struct{ x expr }

func (ne *negExpr) eval(c *ctx, focus []Value) ([]Value, error) {
	in, err := ne.x.eval(c, focus)
	if err != nil || len(in) == 0 {
		return nil, err
	}
	if len(in) > 1 {
		return nil, errors.New("unary minus on a collection of more than one item")
	}
	switch v := system(in[0]).(type) {
	case Integer:
		if v == math.MinInt64 {
			return nil, nil // overflow: empty, as FHIRPath asks
		}
		return []Value{-v}, nil
	case Decimal:
		return []Value{Decimal{r: new(big.Rat).Neg(v.rat()), scale: v.scale}}, nil
	case Quantity:
		return []Value{Quantity{Value: Decimal{r: new(big.Rat).Neg(v.Value.rat()), scale: v.Value.scale}, Unit: v.Unit}}, nil
	}
	return nil, fmt.Errorf("cannot negate %s", in[0].TypeName())
}

type typeExpr struct {
	op  string // "is" or "as"
	x   expr
	typ string
}

func (te *typeExpr) eval(c *ctx, focus []Value) ([]Value, error) {
	in, err := te.x.eval(c, focus)
	if err != nil || len(in) == 0 {
		return nil, err
	}
	if te.op == "is" {
		if len(in) > 1 {
			return nil, errors.New("'is' on a collection of more than one item")
		}
		ok, err := c.isType(in[0], te.typ)
		if err != nil {
			return nil, err
		}
		return []Value{Boolean(ok)}, nil
	}
	return c.ofType(in, te.typ)
}

// ofType returns the items of in that are of type typ. Unlike 'is', a
// primitive must be of exactly that type: a code is a string, but
// as(string) does not select it. Under PrimitiveAsSystem an unqualified
// System type name selects the primitives of that System type, as 'is'
// finds them: as(DateTime) selects a dateTime.
func (c *ctx) ofType(in []Value, typ string) ([]Value, error) {
	var out []Value
	for _, v := range in {
		ok, err := c.isType(v, typ)
		if n, isNode := v.(*Node); ok && isNode && c.m.isPrimitive(n.typ) {
			ok = n.typ == strings.TrimPrefix(typ, "FHIR.") || c.env.PrimitiveAsSystem && systemTypes[typ]
		}
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, v)
		}
	}
	return out, nil
}

var systemTypes = map[string]bool{
	"Boolean": true, "String": true, "Integer": true, "Decimal": true,
	"Date": true, "DateTime": true, "Time": true, "Quantity": true,
}

// isType reports whether v is of type name, which may be qualified with
// System. or FHIR.; an unqualified name is looked up in FHIR first.
func (c *ctx) isType(v Value, name string) (bool, error) {
	ns, local, qualified := strings.Cut(name, ".")
	if !qualified {
		ns, local = "", name
	}
	switch ns {
	case "", "FHIR":
		if c.m.types[local] != nil {
			n, ok := v.(*Node)
			return ok && c.m.derivesFrom(n.typ, local), nil
		}
		if ns == "FHIR" {
			return false, fmt.Errorf("unknown type %s", name)
		}
		fallthrough
	case "System":
		if !systemTypes[local] {
			if ns == "System" {
				return false, nil
			}
			return false, fmt.Errorf("unknown type %s", name)
		}
		if n, ok := v.(*Node); ok {
			if ns != "" || !c.env.PrimitiveAsSystem || !c.m.isPrimitive(n.typ) {
				return false, nil
			}
			sv := n.system()
			return sv != nil && sv.TypeName() == "System."+local, nil
		}
		return v.TypeName() == "System."+local, nil
	}
	if qualified && c.m.types[ns] != nil {
		// A backbone element path is not a type.
		return false, fmt.Errorf("unknown type %s", name)
	}
	return false, fmt.Errorf("unknown type %s", name)
}

type binaryExpr struct {
	op   string
	l, r expr
}

func (be *binaryExpr) eval(c *ctx, focus []Value) ([]Value, error) {
	out, err := be.apply(c, focus)
	if err != nil {
		return nil, err
	}
	return out, c.spent.charge(out)
}

func (be *binaryExpr) apply(c *ctx, focus []Value) ([]Value, error) {
	left, err := be.l.eval(c, focus)
	if err != nil {
		return nil, err
	}
	switch be.op {
	case "and", "or", "xor", "implies":
		return be.logic(c, focus, left)
	}
	right, err := be.r.eval(c, focus)
	if err != nil {
		return nil, err
	}
	switch be.op {
	case "|":
		return c.union(left, right)
	case "=", "!=":
		eq, ok := equalCollections(left, right)
		if !ok {
			return nil, nil
		}
		return []Value{Boolean(eq == (be.op == "="))}, nil
	case "~", "!~":
		eq := equivalentCollections(left, right)
		return []Value{Boolean(eq == (be.op == "~"))}, nil
	case "<", ">", "<=", ">=":
		return compareOp(be.op, left, right)
	case "in", "contains":
		if be.op == "contains" {
			left, right = right, left
		}
		if len(left) == 0 {
			return nil, nil
		}
		if len(left) > 1 {
			return nil, fmt.Errorf("'%s' needs a single item", be.op)
		}
		for _, r := range right {
			if eq, ok := equal(left[0], r); ok && eq {
				return []Value{Boolean(true)}, nil
			}
		}
		return []Value{Boolean(false)}, nil
	case "&":
		var sb strings.Builder
		for _, side := range [][]Value{left, right} {
			if len(side) > 1 {
				return nil, errors.New("'&' needs single items")
			}
			if len(side) == 1 && !valueless(side[0]) {
				s, ok := system(side[0]).(String)
				if !ok {
					return nil, fmt.Errorf("'&' needs strings, not %s", side[0].TypeName())
				}
				sb.WriteString(string(s))
			}
		}
		return []Value{String(sb.String())}, nil
	}
	return arithmetic(be.op, left, right)
}

func (be *binaryExpr) logic(c *ctx, focus, left []Value) ([]Value, error) {
	l, lok, err := singletonBool(left)
	if err != nil {
		return nil, err
	}
	// Short-circuit where the right side cannot change the result.
	switch {
	case be.op == "and" && lok && !l:
		return []Value{Boolean(false)}, nil
	case be.op == "or" && lok && l:
		return []Value{Boolean(true)}, nil
	case be.op == "implies" && lok && !l:
		return []Value{Boolean(true)}, nil
	}
	right, err := be.r.eval(c, focus)
	if err != nil {
		return nil, err
	}
	r, rok, err := singletonBool(right)
	if err != nil {
		return nil, err
	}
	switch be.op {
	case "and":
		if rok && !r {
			return []Value{Boolean(false)}, nil
		}
		if lok && rok {
			return []Value{Boolean(true)}, nil
		}
	case "or":
		if rok && r {
			return []Value{Boolean(true)}, nil
		}
		if lok && rok {
			return []Value{Boolean(false)}, nil
		}
	case "xor":
		if lok && rok {
			return []Value{Boolean(l != r)}, nil
		}
	case "implies":
		if rok && r {
			return []Value{Boolean(true)}, nil
		}
		if lok && rok {
			return []Value{Boolean(false)}, nil
		}
	}
	return nil, nil
}

// singletonBool applies the singleton evaluation of collections for a
// boolean: empty is unknown, a single Boolean is its value, any other
// single item is true, more than one item is an error.
func singletonBool(in []Value) (value, ok bool, err error) {
	switch len(in) {
	case 0:
		return false, false, nil
	case 1:
		if b, ok := system(in[0]).(Boolean); ok {
			return bool(b), true, nil
		}
		return true, true, nil
	}
	return false, false, errors.New("expected a single boolean, found a collection")
}

func singletonInt(in []Value) (int, bool, error) {
	switch len(in) {
	case 0:
		return 0, false, nil
	case 1:
		if valueless(in[0]) {
			return 0, false, nil
		}
		if i, ok := system(in[0]).(Integer); ok {
			return int(i), true, nil
		}
		return 0, false, fmt.Errorf("expected an integer, found %s", in[0].TypeName())
	}
	return 0, false, errors.New("expected a single integer, found a collection")
}

func singletonString(in []Value) (string, bool, error) {
	switch len(in) {
	case 0:
		return "", false, nil
	case 1:
		if valueless(in[0]) {
			return "", false, nil
		}
		if s, ok := system(in[0]).(String); ok {
			return string(s), true, nil
		}
		return "", false, fmt.Errorf("expected a string, found %s", in[0].TypeName())
	}
	return "", false, errors.New("expected a single string, found a collection")
}

// valueless reports whether v is a primitive element without a value,
// holding only an id or extensions (the null beside "_given" in JSON, a
// data-absent-reason on "_birthDate"). Where FHIRPath takes the value of
// a single item, its value is empty, as fhirpath.js makes it: an
// invariant or search expression then yields empty, not an error.
func valueless(v Value) bool {
	n, ok := v.(*Node)
	return ok && n.val == nil
}

// system converts primitive nodes and Quantity nodes to system values;
// other values are returned unchanged.
func system(v Value) Value {
	n, ok := v.(*Node)
	if !ok {
		return v
	}
	if s := n.system(); s != nil {
		return s
	}
	if obj, ok := n.val.(map[string]any); ok && isQuantityType(n.typ) {
		if q, ok := quantityFromJSON(obj); ok {
			return q
		}
	}
	return v
}

func isQuantityType(t string) bool {
	switch t {
	case "Quantity", "Age", "Distance", "Duration", "Count", "MoneyQuantity", "SimpleQuantity":
		return true
	}
	return false
}

func quantityFromJSON(obj map[string]any) (Quantity, bool) {
	var d Decimal
	switch v := obj["value"].(type) {
	case interface{ String() string }:
		x, err := ParseDecimal(v.String())
		if err != nil {
			return Quantity{}, false
		}
		d = x
	case float64:
		d = Decimal{r: new(big.Rat).SetFloat64(v), scale: exactScale(new(big.Rat).SetFloat64(v), 0)}
	default:
		return Quantity{}, false
	}
	unit, _ := obj["code"].(string)
	if unit == "" {
		unit, _ = obj["unit"].(string)
	}
	if sys, _ := obj["system"].(string); sys == "http://unitsofmeasure.org" || sys == "" {
		switch unit {
		case "a":
			unit = "year"
		case "mo":
			unit = "month"
		}
	}
	return Quantity{Value: d, Unit: unit}, true
}

// union merges collections, dropping duplicates. Strings, most of what
// is merged, equal only strings and are found by hash; other items are
// compared with each, a cost charged to the evaluation.
func (c *ctx) union(a, b []Value) ([]Value, error) {
	var out, others []Value
	var strs map[String]bool
	for _, side := range [2][]Value{a, b} {
		for _, v := range side {
			if s, ok := system(v).(String); ok {
				if strs[s] {
					continue
				}
				if strs == nil {
					strs = map[String]bool{}
				}
				strs[s] = true
				out = append(out, v)
				continue
			}
			if err := c.spent.compare(len(others)); err != nil {
				return nil, err
			}
			if !contains(others, v) {
				others = append(others, v)
				out = append(out, v)
			}
		}
	}
	return out, nil
}

func equalCollections(a, b []Value) (eq, ok bool) {
	if len(a) == 0 || len(b) == 0 {
		return false, false
	}
	if len(a) != len(b) {
		return false, true
	}
	for i := range a {
		eq, ok := equal(a[i], b[i])
		if !ok {
			return false, false
		}
		if !eq {
			return false, true
		}
	}
	return true, true
}

func equivalentCollections(a, b []Value) bool {
	if len(a) != len(b) {
		return false
	}
	used := make([]bool, len(b))
outer:
	for _, x := range a {
		for j, y := range b {
			if !used[j] && equivalent(x, y) {
				used[j] = true
				continue outer
			}
		}
		return false
	}
	return true
}

// equal compares two items with '='; ok is false when the result is empty.
func equal(a, b Value) (eq, ok bool) {
	a, b = system(a), system(b)
	switch x := a.(type) {
	case Boolean, String:
		return a == b, true
	case Integer, Decimal:
		y, ok := toRat(b)
		if !ok {
			return false, true
		}
		xr, _ := toRat(x)
		return xr.Cmp(y) == 0, true
	case Date, DateTime:
		if y, ok := temporalOf(b); ok && !isTime(b) {
			xt, _ := temporalOf(x)
			c, ok := compareTemporal(xt, y, 1)
			return c == 0, ok
		}
		return false, true
	case Time:
		if y, ok := b.(Time); ok {
			c, ok := compareTemporal(x.t, y.t, precHour)
			return c == 0, ok
		}
		return false, true
	case Quantity:
		if y, ok := b.(Quantity); ok {
			c, ok := compareQuantities(x, y, false)
			return c == 0, ok
		}
		return false, true
	case *Node:
		y, ok := b.(*Node)
		return ok && reflect.DeepEqual(x.val, y.val) && reflect.DeepEqual(x.ext, y.ext), true
	}
	return false, true
}

func isTime(v Value) bool { _, ok := v.(Time); return ok }

func temporalOf(v Value) (temporal, bool) {
	switch x := v.(type) {
	case Date:
		return x.t, true
	case DateTime:
		return x.t, true
	case Time:
		return x.t, true
	}
	return temporal{}, false
}

func toRat(v Value) (*big.Rat, bool) {
	switch x := v.(type) {
	case Integer:
		return new(big.Rat).SetInt64(int64(x)), true
	case Decimal:
		return x.rat(), true
	}
	return nil, false
}

func scaleOf(v Value) int {
	if d, ok := v.(Decimal); ok {
		return d.scale
	}
	return 0
}

// equivalent compares two items with '~'.
func equivalent(a, b Value) bool {
	a, b = system(a), system(b)
	switch x := a.(type) {
	case String:
		y, ok := b.(String)
		return ok && normalizeSpace(string(x)) == normalizeSpace(string(y))
	case Integer, Decimal:
		y, ok := toRat(b)
		if !ok {
			return false
		}
		xr, _ := toRat(x)
		s := min(scaleOf(a), scaleOf(b))
		return roundRat(xr, s).Cmp(roundRat(y, s)) == 0
	case Date, DateTime, Time:
		y, ok := temporalOf(b)
		if !ok {
			return false
		}
		xt, _ := temporalOf(x)
		c, ok := compareTemporal(xt, y, 1)
		return ok && c == 0
	case Quantity:
		y, ok := b.(Quantity)
		if !ok {
			return false
		}
		c, ok := compareQuantities(x, y, true)
		return ok && c == 0
	case *Node:
		y, ok := b.(*Node)
		return ok && reflect.DeepEqual(x.val, y.val)
	}
	eq, _ := equal(a, b)
	return eq
}

func normalizeSpace(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(s), " "))
}

func compareOp(op string, left, right []Value) ([]Value, error) {
	if len(left) == 0 || len(right) == 0 {
		return nil, nil
	}
	if len(left) > 1 || len(right) > 1 {
		return nil, fmt.Errorf("'%s' needs single items", op)
	}
	c, ok, err := compare(left[0], right[0])
	if err != nil || !ok {
		return nil, err
	}
	var r bool
	switch op {
	case "<":
		r = c < 0
	case ">":
		r = c > 0
	case "<=":
		r = c <= 0
	default:
		r = c >= 0
	}
	return []Value{Boolean(r)}, nil
}

// compare orders two items; ok is false when the order is unknown.
func compare(a, b Value) (int, bool, error) {
	a, b = system(a), system(b)
	switch x := a.(type) {
	case Integer, Decimal:
		if y, ok := toRat(b); ok {
			xr, _ := toRat(x)
			return xr.Cmp(y), true, nil
		}
	case String:
		if y, ok := b.(String); ok {
			return strings.Compare(string(x), string(y)), true, nil
		}
	case Date, DateTime:
		if y, ok := temporalOf(b); ok && !isTime(b) {
			xt, _ := temporalOf(x)
			c, ok := compareTemporal(xt, y, 1)
			return c, ok, nil
		}
	case Time:
		if y, ok := b.(Time); ok {
			c, ok := compareTemporal(x.t, y.t, precHour)
			return c, ok, nil
		}
	case Quantity:
		if y, ok := b.(Quantity); ok {
			c, ok := compareQuantities(x, y, false)
			if !ok {
				return 0, false, nil
			}
			return c, true, nil
		}
	}
	return 0, false, fmt.Errorf("cannot compare %s with %s", a.TypeName(), b.TypeName())
}

func arithmetic(op string, left, right []Value) ([]Value, error) {
	if len(left) == 0 || len(right) == 0 {
		return nil, nil
	}
	if len(left) > 1 || len(right) > 1 {
		return nil, fmt.Errorf("'%s' needs single items", op)
	}
	if valueless(left[0]) || valueless(right[0]) {
		return nil, nil
	}
	a, b := system(left[0]), system(right[0])
	switch x := a.(type) {
	case String:
		if y, ok := b.(String); ok && op == "+" {
			return []Value{x + y}, nil
		}
	case Integer:
		if y, ok := b.(Integer); ok && op != "/" {
			return intArith(op, x, y)
		}
		if _, ok := b.(Quantity); ok && op == "*" {
			return arithmetic(op, right, left)
		}
		if _, ok := b.(Decimal); ok || op == "/" {
			return decArith(op, Decimal{r: new(big.Rat).SetInt64(int64(x))}, b)
		}
	case Decimal:
		if _, ok := b.(Quantity); ok && op == "*" {
			return arithmetic(op, right, left)
		}
		return decArith(op, x, b)
	case Date, DateTime, Time:
		q, ok := b.(Quantity)
		if ok && (op == "+" || op == "-") {
			sign := 1
			if op == "-" {
				sign = -1
			}
			t, _ := temporalOf(x)
			u, err := addDuration(t, q, sign)
			if err != nil {
				return nil, err
			}
			switch x.(type) {
			case Date:
				return []Value{Date{u}}, nil
			case DateTime:
				return []Value{DateTime{u}}, nil
			}
			return []Value{Time{u}}, nil
		}
	case Quantity:
		return quantityArith(op, x, b)
	}
	return nil, fmt.Errorf("cannot apply '%s' to %s and %s", op, a.TypeName(), b.TypeName())
}

// intArith applies an operator to two integers. A result out of the
// 64-bit range is empty: FHIRPath defines overflow as an empty result
// (https://hl7.org/fhirpath/N1/#math), never a wrapped value.
func intArith(op string, x, y Integer) ([]Value, error) {
	switch op {
	case "+":
		r := x + y
		if (r > x) != (y > 0) {
			return nil, nil
		}
		return []Value{r}, nil
	case "-":
		r := x - y
		if (r < x) != (y > 0) {
			return nil, nil
		}
		return []Value{r}, nil
	case "*":
		r, ok := mulInt(x, y)
		if !ok {
			return nil, nil
		}
		return []Value{r}, nil
	case "div":
		if y == 0 || (x == math.MinInt64 && y == -1) {
			return nil, nil
		}
		return []Value{x / y}, nil
	case "mod":
		if y == 0 {
			return nil, nil
		}
		if y == -1 {
			return []Value{Integer(0)}, nil
		}
		return []Value{x % y}, nil
	}
	return nil, fmt.Errorf("cannot apply '%s' to integers", op)
}

func decArith(op string, x Decimal, b Value) ([]Value, error) {
	yr, ok := toRat(b)
	if !ok {
		return nil, fmt.Errorf("cannot apply '%s' to Decimal and %s", op, b.TypeName())
	}
	xr := x.rat()
	ys := scaleOf(b)
	r := new(big.Rat)
	scale := max(x.scale, ys)
	switch op {
	case "+":
		r.Add(xr, yr)
	case "-":
		r.Sub(xr, yr)
	case "*":
		r.Mul(xr, yr)
		scale = x.scale + ys
	case "/":
		if yr.Sign() == 0 {
			return nil, nil
		}
		r.Quo(xr, yr)
		scale = exactScale(r, 0)
		if scale == maxScale {
			scale = 8
			r = roundRat(r, scale)
		}
	case "div":
		if yr.Sign() == 0 {
			return nil, nil
		}
		q := new(big.Int).Quo(new(big.Int).Mul(xr.Num(), yr.Denom()), new(big.Int).Mul(xr.Denom(), yr.Num()))
		return []Value{Integer(q.Int64())}, nil
	case "mod":
		if yr.Sign() == 0 {
			return nil, nil
		}
		q := new(big.Int).Quo(new(big.Int).Mul(xr.Num(), yr.Denom()), new(big.Int).Mul(xr.Denom(), yr.Num()))
		r.Sub(xr, new(big.Rat).Mul(new(big.Rat).SetInt(q), yr))
	default:
		return nil, fmt.Errorf("cannot apply '%s' to decimals", op)
	}
	return []Value{Decimal{r: r, scale: scale}}, nil
}

func quantityArith(op string, x Quantity, b Value) ([]Value, error) {
	switch y := b.(type) {
	case Quantity:
		switch op {
		case "+", "-":
			c, ok := compareQuantities(Quantity{Value: DecimalFromInt(0), Unit: x.Unit}, Quantity{Value: DecimalFromInt(0), Unit: y.Unit}, false)
			if !ok || c != 0 {
				return nil, nil
			}
			if x.Unit != y.Unit {
				ux, _ := unitOf(x.Unit, false)
				uy, _ := unitOf(y.Unit, false)
				f := new(big.Rat).Quo(uy.factor, ux.factor)
				y = Quantity{Value: Decimal{r: new(big.Rat).Mul(y.Value.rat(), f), scale: y.Value.scale}, Unit: x.Unit}
			}
			out, err := decArith(op, x.Value, y.Value)
			if err != nil || len(out) == 0 {
				return nil, err
			}
			return []Value{Quantity{Value: out[0].(Decimal), Unit: x.Unit}}, nil
		case "*", "/":
			out, err := decArith(op, x.Value, y.Value)
			if err != nil || len(out) == 0 {
				return nil, err
			}
			unit := x.Unit + op + y.Unit
			if op == "/" && x.Unit == y.Unit {
				unit = "1"
			}
			return []Value{Quantity{Value: out[0].(Decimal), Unit: unit}}, nil
		}
	case Integer, Decimal:
		if op == "*" || op == "/" {
			out, err := decArith(op, x.Value, y)
			if err != nil || len(out) == 0 {
				return nil, err
			}
			return []Value{Quantity{Value: out[0].(Decimal), Unit: x.Unit}}, nil
		}
	}
	return nil, fmt.Errorf("cannot apply '%s' to Quantity and %s", op, b.TypeName())
}

type callExpr struct {
	target expr // nil: the function applies to the focus
	name   string
	fn     function
	args   []expr
}

func (ce *callExpr) eval(c *ctx, focus []Value) ([]Value, error) {
	in := focus
	if ce.target != nil {
		var err error
		in, err = ce.target.eval(c, focus)
		if err != nil {
			return nil, err
		}
	}
	c.depth++
	defer func() { c.depth-- }()
	if c.depth > maxEvalDepth {
		return nil, errors.New("evaluation nested too deeply")
	}
	out, err := ce.fn.call(c, in, ce.args)
	if err == nil {
		err = c.spent.charge(out)
	}
	if err != nil {
		return nil, fmt.Errorf("%s(): %w", ce.name, err)
	}
	return out, nil
}

// mulInt multiplies two integers and reports whether the product fits in
// 64 bits.
func mulInt(x, y Integer) (Integer, bool) {
	if x == 0 || y == 0 {
		return 0, true
	}
	r := x * y
	if r/y != x || (x == -1 && y == math.MinInt64) || (y == -1 && x == math.MinInt64) {
		return 0, false
	}
	return r, true
}
