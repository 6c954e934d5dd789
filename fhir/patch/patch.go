// Package patch applies the two patch formats of the FHIR R4 patch
// interaction to a resource held as JSON: JSON Patch (RFC 6902, with JSON
// Pointer, RFC 6901) and FHIRPath Patch
// (https://hl7.org/fhir/R4/fhirpatch.html), a Parameters resource whose
// operations locate elements with FHIRPath.
//
// Both take the resource's JSON and return the patched JSON. They are all or
// nothing: the first operation that fails stops the patch with an *Error
// naming it, and no partial result is returned. A patch that leaves a
// local reference ("#id") naming a contained resource it changed the id of,
// or removed, fails as Inapplicable. The result is not checked
// against the model beyond what the operations need; the caller decodes it
// with the normal codec, as for any update.
package patch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Kind classifies why a patch could not be applied.
type Kind int

const (
	// Malformed: the patch document is not a valid patch, such as a body
	// that is not JSON, an unknown operation, a missing member or a path
	// that does not parse.
	Malformed Kind = iota + 1
	// Inapplicable: the patch is well formed but does not fit the
	// resource, such as a path that selects nothing (or several elements
	// where one is needed) or an index out of range.
	Inapplicable
	// TestFailed: a JSON Patch test operation found a different value.
	TestFailed
	// TooCostly: the patch exceeds its Limits (too many operations, a
	// result too large, a path too costly to evaluate).
	TooCostly
	// InvalidValue: a JSON Patch writes a value that FHIR JSON does not
	// allow, an empty array or object, which a body holding the result
	// would be refused for.
	InvalidValue
)

// Limits bound what one patch may cost. A zero field takes the default of
// DefaultLimits.
type Limits struct {
	// Operations bounds the operations of one patch document.
	Operations int
	// ResultBytes bounds the size of the patched resource, and of what a
	// JSON Patch builds on the way (copy can double a document with each
	// operation).
	ResultBytes int64
}

// DefaultLimits are the limits of JSONPatch and FHIRPathPatch.
var DefaultLimits = Limits{Operations: 1000, ResultBytes: 10 << 20}

func (l Limits) withDefaults() Limits {
	if l.Operations <= 0 {
		l.Operations = DefaultLimits.Operations
	}
	if l.ResultBytes <= 0 {
		l.ResultBytes = DefaultLimits.ResultBytes
	}
	return l
}

// checkOperations refuses a patch of more operations than the limits allow.
func (l Limits) checkOperations(n int) *Error {
	if n > l.Operations {
		return &Error{Op: -1, Kind: TooCostly, Message: fmt.Sprintf("the patch has %d operations; at most %d are allowed", n, l.Operations)}
	}
	return nil
}

// checkResult refuses a patched resource larger than the limits allow.
func (l Limits) checkResult(out []byte) ([]byte, error) {
	if int64(len(out)) > l.ResultBytes {
		return nil, &Error{Op: -1, Kind: TooCostly, Message: fmt.Sprintf("the patched resource would be %d bytes; at most %d are allowed", len(out), l.ResultBytes)}
	}
	return out, nil
}

// sizeAtMost returns an estimate of the size of v in JSON, walking no
// further than limit: the answer is limit+1 for anything larger.
func sizeAtMost(v any, limit int64) int64 {
	var n int64
	var walk func(any)
	walk = func(v any) {
		if n > limit {
			return
		}
		switch x := v.(type) {
		case map[string]any:
			n += 2
			for k, e := range x {
				n += int64(len(k)) + 4
				walk(e)
				if n > limit {
					return
				}
			}
		case []any:
			n += 2
			for _, e := range x {
				n++
				walk(e)
				if n > limit {
					return
				}
			}
		case string:
			n += int64(len(x)) + 2
		default:
			n += 8
		}
	}
	walk(v)
	return min(n, limit+1)
}

// Error reports the operation of a patch that could not be applied.
type Error struct {
	// Op is the index of the failing operation in the patch (0-based), or
	// -1 when the document as a whole is at fault.
	Op int
	// Path is the failing operation's path, a JSON Pointer or a FHIRPath
	// expression, when it has one.
	Path    string
	Kind    Kind
	Message string
	// plain marks a FHIRPath Patch path that selects a value that is not
	// a node of the resource, such as the string of an Element.id.
	plain bool
}

func (e *Error) Error() string {
	switch {
	case e.Op < 0:
		return "patch: " + e.Message
	case e.Path == "":
		return fmt.Sprintf("patch: operation %d: %s", e.Op, e.Message)
	default:
		return fmt.Sprintf("patch: operation %d (path %q): %s", e.Op, e.Path, e.Message)
	}
}

// decode reads one JSON value, keeping numbers as written so that a decimal
// such as 1.50 survives the round trip.
func decode(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return v, nil
}

// decodeUnique is decode for a document a client wrote: an object naming a
// member twice is refused with a *repeatedMember, where encoding/json keeps
// the last value and other readers the first, so that a patch means one
// thing wherever it is read (RFC 6902 gives an operation exactly one "op").
func decodeUnique(data []byte) (any, error) {
	v, err := decode(data)
	if err != nil {
		return nil, err
	}
	// decode has checked the syntax and the nesting depth. Numbers are
	// kept as written, so that one beyond a float64 is no error here.
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := uniqueMembers(d, nil); err != nil {
		return nil, err
	}
	return v, nil
}

// repeatedMember reports an object of a document that names a member twice.
type repeatedMember struct {
	at   []string // the object's JSON Pointer tokens
	name string
}

func (e *repeatedMember) Error() string {
	if len(e.at) == 0 {
		return fmt.Sprintf("the document names the member %q twice", e.name)
	}
	return fmt.Sprintf("the object at %s names the member %q twice", pointerString(e.at), e.name)
}

// uniqueMembers reads the next value of d, at the pointer tokens at, and
// fails on the first object in it that names a member twice.
func uniqueMembers(d *json.Decoder, at []string) error {
	t, err := d.Token()
	if err != nil {
		return err
	}
	switch t {
	case json.Delim('['):
		for i := 0; d.More(); i++ {
			if err := uniqueMembers(d, append(at, strconv.Itoa(i))); err != nil {
				return err
			}
		}
	case json.Delim('{'):
		seen := make(map[string]bool)
		for d.More() {
			t, err := d.Token()
			if err != nil {
				return err
			}
			name, _ := t.(string)
			if seen[name] {
				return &repeatedMember{at: at, name: name}
			}
			seen[name] = true
			if err := uniqueMembers(d, append(at, name)); err != nil {
				return err
			}
		}
	default:
		return nil
	}
	_, err = d.Token() // the closing ] or }
	return err
}

// encode writes v as compact JSON, leaving <, > and & as they are (the
// narrative is XHTML).
func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// resourceObject decodes the resource being patched, which must be a JSON
// object. It comes from the store, so a failure is not the client's.
func resourceObject(resource []byte) (map[string]any, error) {
	v, err := decode(resource)
	if err != nil {
		return nil, fmt.Errorf("patch: decode resource: %w", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("patch: the resource is not a JSON object")
	}
	return obj, nil
}

// numberKey returns the value of a JSON number in one form, whatever the
// way it is written: its sign, its significant digits and the power of ten
// of the last, so that 1.50, 1.5 and 15e-1 have one key. It takes time
// linear in the number's length, where math/big reads a number in time
// quadratic in its digits (a test of a number of a million digits took
// minutes). It reports false for what is not a JSON number, or has an
// exponent beyond 32 bits.
func numberKey(n string) (string, bool) {
	neg := strings.HasPrefix(n, "-")
	n = strings.TrimPrefix(n, "-")
	mantissa, exponent, hasExp := strings.Cut(n, "e")
	if !hasExp {
		mantissa, exponent, hasExp = strings.Cut(n, "E")
	}
	exp := 0
	if hasExp {
		e, err := strconv.Atoi(exponent)
		if err != nil || e > math.MaxInt32 || e < math.MinInt32 {
			return "", false // and the sums below cannot overflow
		}
		exp = e
	}
	whole, fraction, _ := strings.Cut(mantissa, ".")
	digits := whole + fraction
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return "", false
	}
	exp -= len(fraction)
	digits = strings.TrimLeft(digits, "0")
	trimmed := strings.TrimRight(digits, "0")
	if trimmed == "" {
		return "0", true // -0 is 0
	}
	exp += len(digits) - len(trimmed)
	sign := ""
	if neg {
		sign = "-"
	}
	return sign + trimmed + "e" + strconv.Itoa(exp), true
}

// equalJSON reports whether two decoded JSON values are equal as RFC 6902
// defines it for test: numbers by value (1.5 equals 1.50), objects
// regardless of member order, arrays element by element. The validator in
// package profiles has its own comparison, which keeps the written digits
// because a FHIR fixed decimal includes its precision.
func equalJSON(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case string:
		y, ok := b.(string)
		return ok && x == y
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		xk, ok1 := numberKey(string(x))
		yk, ok2 := numberKey(string(y))
		return ok1 && ok2 && xk == yk
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !equalJSON(xv, yv) {
				return false
			}
		}
		return true
	}
	return false
}

// containedIDs returns the ids of the resources obj contains.
func containedIDs(obj map[string]any) map[string]bool {
	ids := map[string]bool{}
	list, _ := obj["contained"].([]any)
	for _, c := range list {
		if m, ok := c.(map[string]any); ok {
			if id, ok := m["id"].(string); ok {
				ids[id] = true
			}
		}
	}
	return ids
}

// checkLocalReferences refuses a patch whose result no longer contains a
// resource, of the ids before it held, that a local reference ("#id") of
// the result still names: the patch changed or removed the contained
// resource's id, or the resource, and left the reference pointing at
// nothing.
func checkLocalReferences(before map[string]bool, result map[string]any) *Error {
	after := containedIDs(result)
	ids := slices.Sorted(maps.Keys(before))
	for _, id := range ids {
		if after[id] {
			continue
		}
		if at, ok := findString(result, "#"+id, nil); ok {
			return &Error{Op: -1, Kind: Inapplicable, Message: fmt.Sprintf(
				"the patch leaves no contained resource with id %q, but %s still refers to it as #%s: change the reference in the same patch",
				id, pointerString(at), id)}
		}
	}
	return nil
}

// findString returns the JSON Pointer tokens, below at, of the first
// string of v equal to s, members in the order of their names.
func findString(v any, s string, at []string) ([]string, bool) {
	switch x := v.(type) {
	case string:
		return at, x == s
	case []any:
		for i, e := range x {
			if p, ok := findString(e, s, append(at, strconv.Itoa(i))); ok {
				return p, true
			}
		}
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if p, ok := findString(x[k], s, append(at, k)); ok {
				return p, true
			}
		}
	}
	return nil, false
}

// deepCopy returns a copy of a decoded JSON value sharing nothing with it.
func deepCopy(v any) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	}
	return v
}
