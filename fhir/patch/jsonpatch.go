package patch

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// JSONPatch applies a JSON Patch document (RFC 6902) to a resource's JSON
// and returns the patched JSON. The document is an array of operations (add,
// remove, replace, move, copy and test) whose paths are JSON Pointers (RFC
// 6901): "/name/0/given/-" appends to the first name's given names. test
// compares by JSON value: numbers by value, objects whatever their member
// order. The form {"patches": [...]}, which the NHS Personal Demographics
// Service API uses, is accepted too. FHIR's JSON has no empty objects or
// arrays, so what the operations leave empty (removing the only name leaves
// "name": []) is dropped from the result, while one that an add or replace
// writes, or a move or copy puts elsewhere, still empty when the patch
// ends (never filled, or filled and emptied again), fails as InvalidValue:
// dropped, it would remove what the client meant to write. So does an
// array written holding nothing but null, when no companion ("_given" to
// "given") holds its items.
//
// A failure is an *Error: Malformed for a document that is not a valid
// patch (an object in it naming a member twice included), Inapplicable for an operation that does not fit the resource (a
// path that does not exist, an index out of range), TestFailed for a test
// operation that did not hold.
func JSONPatch(resource, ops []byte) ([]byte, error) {
	return DefaultLimits.JSONPatch(resource, ops)
}

// JSONPatch is JSONPatch within the limits l: a patch with more operations,
// or one whose adds and copies could grow the resource past
// l.ResultBytes, fails with TooCostly before its result is built.
func (l Limits) JSONPatch(resource, ops []byte) ([]byte, error) {
	l = l.withDefaults()
	obj, err := resourceObject(resource)
	if err != nil {
		return nil, err
	}
	list, err := parseJSONPatch(ops)
	if err != nil {
		return nil, err
	}
	if err := l.checkOperations(len(list)); err != nil {
		return nil, err
	}
	// size bounds the document from above: adds, replaces and copies
	// count the value they put in, removals nothing.
	size := int64(len(resource))
	contained := containedIDs(obj)
	written := writtenEmpties{}
	var doc any = obj
	for i, op := range list {
		var perr *Error
		if v, ok := op.grows(doc); ok {
			size += sizeAtMost(v, l.ResultBytes-size)
			if size > l.ResultBytes {
				return nil, &Error{Op: i, Path: op.rawPath, Kind: TooCostly,
					Message: fmt.Sprintf("the patched resource would exceed %d bytes", l.ResultBytes)}
			}
		}
		if op.op == "add" || op.op == "replace" {
			op.value = written.mark(op.value, i)
		}
		carry := func(from, to any) any {
			to = written.carry(from, to, i)
			// The value taken, itself empty, is written empty where it
			// lands, whatever left it empty; one that merely holds an
			// array a removal emptied holds what prune drops.
			if empty(to) {
				to = written.mark(to, i)
			}
			return to
		}
		if doc, perr = op.apply(doc, carry); perr != nil {
			perr.Op, perr.Path = i, op.rawPath
			return nil, perr
		}
	}
	if obj, ok := doc.(map[string]any); ok {
		if err := checkLocalReferences(contained, obj); err != nil {
			return nil, err
		}
		if at, kind, i := written.find(obj, nil); kind != "" {
			return nil, &Error{Op: i, Path: list[i].rawPath, Kind: InvalidValue,
				Message: fmt.Sprintf("the value leaves an empty %s at %q, which FHIR JSON does not allow: leave the element out instead", kind, pointerString(at))}
		}
		prune(obj)
	}
	out, err := encode(doc)
	if err != nil {
		return nil, err
	}
	return l.checkResult(out)
}

// grows returns the value op puts into doc, if it puts one in: what the
// document may grow by.
func (op jsonOp) grows(doc any) (any, bool) {
	switch op.op {
	case "add", "replace":
		return op.value, true
	case "copy":
		v, err := lookup(doc, op.from)
		return v, err == nil
	}
	return nil, false
}

// jsonOp is one operation of a JSON Patch document.
type jsonOp struct {
	op         string
	path, from []string // reference tokens, unescaped
	rawPath    string
	value      any
}

func parseJSONPatch(data []byte) ([]jsonOp, error) {
	v, err := decodeUnique(data)
	var repeated *repeatedMember
	switch {
	case errors.As(err, &repeated):
		return nil, &Error{Op: -1, Kind: Malformed, Message: "the JSON Patch document is ambiguous: " + err.Error()}
	case err != nil:
		return nil, &Error{Op: -1, Kind: Malformed, Message: "the JSON Patch document is not JSON: " + err.Error()}
	}
	if obj, ok := v.(map[string]any); ok {
		v = obj["patches"]
	}
	items, ok := v.([]any)
	if !ok {
		return nil, &Error{Op: -1, Kind: Malformed, Message: "a JSON Patch document is an array of operations"}
	}
	list := make([]jsonOp, len(items))
	for i, item := range items {
		op, err := parseJSONOp(item)
		if err != nil {
			err.Op = i
			return nil, err
		}
		list[i] = op
	}
	return list, nil
}

func parseJSONOp(item any) (jsonOp, *Error) {
	var op jsonOp
	obj, ok := item.(map[string]any)
	if !ok {
		return op, &Error{Kind: Malformed, Message: "an operation is a JSON object"}
	}
	op.op, _ = obj["op"].(string)
	switch op.op {
	case "add", "remove", "replace", "move", "copy", "test":
	case "":
		return op, &Error{Kind: Malformed, Message: `the operation has no "op" member`}
	default:
		return op, &Error{Kind: Malformed, Message: fmt.Sprintf("unknown operation %q: use add, remove, replace, move, copy or test", op.op)}
	}
	path, ok := obj["path"].(string)
	if !ok {
		return op, &Error{Kind: Malformed, Message: fmt.Sprintf(`the %s operation has no "path" string`, op.op)}
	}
	op.rawPath = path
	var err error
	if op.path, err = parsePointer(path); err != nil {
		return op, &Error{Path: path, Kind: Malformed, Message: err.Error()}
	}
	switch op.op {
	case "add", "replace", "test":
		if op.value, ok = obj["value"]; !ok {
			return op, &Error{Path: path, Kind: Malformed, Message: fmt.Sprintf(`the %s operation has no "value"`, op.op)}
		}
	case "move", "copy":
		from, ok := obj["from"].(string)
		if !ok {
			return op, &Error{Path: path, Kind: Malformed, Message: fmt.Sprintf(`the %s operation has no "from" string`, op.op)}
		}
		if op.from, err = parsePointer(from); err != nil {
			return op, &Error{Path: path, Kind: Malformed, Message: "from: " + err.Error()}
		}
		if op.op == "move" && len(op.path) > len(op.from) && slices.Equal(op.path[:len(op.from)], op.from) {
			return op, &Error{Path: path, Kind: Malformed, Message: fmt.Sprintf("cannot move %q into one of its own children", from)}
		}
	}
	return op, nil
}

// parsePointer splits a JSON Pointer into its unescaped reference tokens;
// "" is the whole document.
func parsePointer(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	if s[0] != '/' {
		return nil, fmt.Errorf("%q is not a JSON Pointer: it must start with /", s)
	}
	tokens := strings.Split(s[1:], "/")
	for i, t := range tokens {
		for j := 0; j < len(t); j++ {
			if t[j] == '~' && (j+1 == len(t) || t[j+1] != '0' && t[j+1] != '1') {
				return nil, fmt.Errorf("%q is not a JSON Pointer: ~ must be followed by 0 or 1", s)
			}
		}
		tokens[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return tokens, nil
}

// pointerString writes tokens back as a JSON Pointer, for messages.
func pointerString(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

// writtenEmpties are the empty arrays and objects that the values of a
// JSON Patch's adds, replaces, moves and copies hold, by identity, with
// the operation that wrote each. FHIR JSON has none: what the operations leave empty
// (a removal of the last item) is pruned, but one a value writes and no
// later operation fills is refused, as a body holding it would be; pruned,
// it would remove what the client meant to write.
type writtenEmpties map[uintptr]writtenEmpty

type writtenEmpty struct {
	op        int
	container any // kept reachable, so that its address is not reused
}

// mark records the empty arrays and objects in v as written by operation
// op, and returns v with each empty array made an allocation of its own:
// an empty slice has no identity otherwise.
func (w writtenEmpties) mark(v any, op int) any {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			w[reflect.ValueOf(x).Pointer()] = writtenEmpty{op, x}
		}
		for k, e := range x {
			x[k] = w.mark(e, op)
		}
	case []any:
		if len(x) == 0 {
			x = make([]any, 0, 1)
			w[reflect.ValueOf(x).Pointer()] = writtenEmpty{op, x}
			return x
		}
		if onlyNulls(x) {
			w[reflect.ValueOf(x).Pointer()] = writtenEmpty{op, x}
		}
		for i, e := range x {
			x[i] = w.mark(e, op)
		}
	}
	return v
}

// carry records the written empties of from, the value a move or copy
// takes, in to, the value it puts (from itself for a move, its deep copy
// for a copy), as written by operation op, and returns to with each empty
// array so recorded made an allocation of its own. An array or object that
// a removal left empty is not recorded: it is dropped wherever it lands,
// as it would have been where it was.
func (w writtenEmpties) carry(from, to any, op int) any {
	switch x := to.(type) {
	case map[string]any:
		f, _ := from.(map[string]any)
		if _, ok := w[reflect.ValueOf(f).Pointer()]; ok && f != nil {
			w[reflect.ValueOf(x).Pointer()] = writtenEmpty{op, x}
		}
		for k, e := range x {
			x[k] = w.carry(f[k], e, op)
		}
	case []any:
		f, _ := from.([]any)
		_, ok := w[reflect.ValueOf(f).Pointer()]
		ok = ok && f != nil && (len(f) == 0 || onlyNulls(f))
		if ok && len(x) == 0 {
			x = make([]any, 0, 1)
		}
		if ok {
			w[reflect.ValueOf(x).Pointer()] = writtenEmpty{op, x}
		}
		for i, e := range x {
			var fe any
			if i < len(f) {
				fe = f[i]
			}
			x[i] = w.carry(fe, e, op)
		}
		return x
	}
	return to
}

// empty reports whether v is an empty array or object.
func empty(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		return len(x) == 0
	case []any:
		return len(x) == 0
	}
	return false
}

// onlyNulls reports whether the array x holds nothing but null: a list
// with no item, which prune drops as it drops an empty one unless a
// primitive's companion (_given to given) holds the items.
func onlyNulls(x []any) bool {
	return !slices.ContainsFunc(x, func(e any) bool { return e != nil })
}

// find returns where in v, below the tokens at, the first written empty
// array or object still empty is (members in name order), or written
// array holding nothing but null that prune would drop, which it is, and
// the operation that wrote it; kind is "" when there is none.
func (w writtenEmpties) find(v any, at []string) (where []string, kind string, op int) {
	if len(w) == 0 {
		return nil, "", 0
	}
	switch x := v.(type) {
	case map[string]any:
		if e, ok := w[reflect.ValueOf(x).Pointer()]; ok && len(x) == 0 {
			return at, "object", e.op
		}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			// An array of nulls alone is dropped, unless a companion
			// holds its items; a companion of nulls holds nothing to
			// lose.
			if a, ok := x[k].([]any); ok && len(a) > 0 && onlyNulls(a) && !strings.HasPrefix(k, "_") && x["_"+k] == nil {
				if e, ok := w[reflect.ValueOf(a).Pointer()]; ok {
					return append(slices.Clip(at), k), "array (of null items only)", e.op
				}
			}
			if where, kind, op := w.find(x[k], append(slices.Clip(at), k)); kind != "" {
				return where, kind, op
			}
		}
	case []any:
		if e, ok := w[reflect.ValueOf(x).Pointer()]; ok && len(x) == 0 {
			return at, "array", e.op
		}
		for i, e := range x {
			if where, kind, op := w.find(e, append(slices.Clip(at), strconv.Itoa(i))); kind != "" {
				return where, kind, op
			}
		}
	}
	return nil, "", 0
}

func inapplicable(format string, args ...any) *Error {
	return &Error{Kind: Inapplicable, Message: fmt.Sprintf(format, args...)}
}

// apply applies op to doc. carry records, in the value a move or copy
// writes, the written empties of the value it takes
// (writtenEmpties.carry): moved or copied, an empty value an add wrote is
// written where it lands, and still empty at the end it is refused, not
// dropped, whatever becomes of the value it was taken from.
func (op jsonOp) apply(doc any, carry func(from, to any) any) (any, *Error) {
	switch op.op {
	case "add":
		return add(doc, op.path, op.value)
	case "remove":
		v, _, err := remove(doc, op.path)
		return v, err
	case "replace":
		return replace(doc, op.path, op.value)
	case "move":
		if slices.Equal(op.from, op.path) {
			_, err := lookup(doc, op.from)
			return doc, err
		}
		doc, v, err := remove(doc, op.from)
		if err != nil {
			return nil, err
		}
		return add(doc, op.path, carry(v, v))
	case "copy":
		v, err := lookup(doc, op.from)
		if err != nil {
			return nil, err
		}
		return add(doc, op.path, carry(v, deepCopy(v)))
	default: // test
		v, err := lookup(doc, op.path)
		if err != nil {
			err.Kind = TestFailed
			return nil, err
		}
		if !equalJSON(v, op.value) {
			want, _ := encode(op.value)
			return nil, &Error{Kind: TestFailed, Message: fmt.Sprintf("test failed: the value at %q is not %s", pointerString(op.path), truncate(string(want), 200))}
		}
		return doc, nil
	}
}

// lookup returns the value tokens point to.
func lookup(doc any, tokens []string) (any, *Error) {
	v := doc
	for i, t := range tokens {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[t]; !ok {
				return nil, inapplicable("%q does not exist", pointerString(tokens[:i+1]))
			}
		case []any:
			n, err := arrayIndex(t, len(x), false)
			if err != nil {
				return nil, inapplicable("%q: %v", pointerString(tokens[:i+1]), err)
			}
			v = x[n]
		default:
			return nil, inapplicable("%q does not exist: %q is not an object or array", pointerString(tokens[:i+1]), pointerString(tokens[:i]))
		}
	}
	return v, nil
}

// update applies change to the object or array holding the last token and
// stores what it returns in place of it. Arrays are values: a changed array
// is stored back into its own parent on the way up.
func update(doc any, tokens []string, change func(parent any) (any, *Error)) (any, *Error) {
	parent, err := lookup(doc, tokens[:len(tokens)-1])
	if err != nil {
		return nil, err
	}
	switch parent.(type) {
	case map[string]any, []any:
	default:
		return nil, inapplicable("%q does not exist: %q is not an object or array", pointerString(tokens), pointerString(tokens[:len(tokens)-1]))
	}
	return rebuild(doc, tokens, change)
}

func rebuild(node any, tokens []string, change func(parent any) (any, *Error)) (any, *Error) {
	if len(tokens) == 1 {
		return change(node)
	}
	switch p := node.(type) {
	case map[string]any:
		child, err := rebuild(p[tokens[0]], tokens[1:], change)
		if err != nil {
			return nil, err
		}
		p[tokens[0]] = child
	case []any:
		i, _ := arrayIndex(tokens[0], len(p), false)
		child, err := rebuild(p[i], tokens[1:], change)
		if err != nil {
			return nil, err
		}
		p[i] = child
	}
	return node, nil
}

func add(doc any, tokens []string, value any) (any, *Error) {
	if len(tokens) == 0 {
		return value, nil
	}
	last := tokens[len(tokens)-1]
	return update(doc, tokens, func(parent any) (any, *Error) {
		switch p := parent.(type) {
		case map[string]any:
			p[last] = value
			return p, nil
		default:
			arr := p.([]any)
			if last == "-" {
				return append(arr, value), nil
			}
			i, err := arrayIndex(last, len(arr), true)
			if err != nil {
				return nil, inapplicable("%q: %v", pointerString(tokens), err)
			}
			return slices.Insert(arr, i, value), nil
		}
	})
}

// remove deletes the value tokens point to and returns it.
func remove(doc any, tokens []string) (newDoc, removed any, err *Error) {
	if len(tokens) == 0 {
		return nil, nil, inapplicable("cannot remove the whole resource")
	}
	if removed, err = lookup(doc, tokens); err != nil {
		return nil, nil, err
	}
	last := tokens[len(tokens)-1]
	newDoc, err = update(doc, tokens, func(parent any) (any, *Error) {
		switch p := parent.(type) {
		case map[string]any:
			delete(p, last)
			return p, nil
		default:
			i, _ := arrayIndex(last, len(p.([]any)), false)
			return slices.Delete(p.([]any), i, i+1), nil
		}
	})
	return newDoc, removed, err
}

// replace is remove then add (RFC 6902, section 4.3): the target must
// exist.
func replace(doc any, tokens []string, value any) (any, *Error) {
	if len(tokens) == 0 {
		return value, nil
	}
	doc, _, err := remove(doc, tokens)
	if err != nil {
		return nil, err
	}
	return add(doc, tokens, value)
}

// arrayIndex reads an array index token: digits without a leading zero,
// below length, or equal to it when end allows the position past the last
// element.
func arrayIndex(token string, length int, end bool) (int, error) {
	if token == "-" {
		return 0, fmt.Errorf("- (past the end of the array) is not an element")
	}
	if token == "" || len(token) > 1 && token[0] == '0' || strings.Trim(token, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not an array index", token)
	}
	i, err := strconv.Atoi(token)
	if err != nil || i > length || i == length && !end {
		return 0, fmt.Errorf("index %s is out of range: the array has %d elements", token, length)
	}
	return i, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
