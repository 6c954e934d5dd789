package fhirpath

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// DecodeJSON decodes a resource from JSON keeping numbers exact: the tree
// encoding/json's Decoder gives with UseNumber (map[string]any, []any,
// string, bool, json.Number and nil; a repeated key keeps its last value,
// invalid UTF-8 becomes U+FFFD), built directly. Search indexing decodes
// every resource written, and the generic decoder of encoding/json, which
// goes through reflection for each value, costs several times more. As
// with a Decoder, what follows the first value is not read.
func DecodeJSON(data []byte) (any, error) {
	d := decoder{data: data}
	d.space()
	if d.i == len(d.data) {
		return nil, errors.New("fhirpath: decode: unexpected end of JSON input")
	}
	v, err := d.value(0)
	if err != nil {
		return nil, fmt.Errorf("fhirpath: decode: %w", err)
	}
	return v, nil
}

// maxJSONDepth bounds the nesting of decoded values, as encoding/json does.
const maxJSONDepth = 10000

// decoder reads one JSON value from data, from offset i.
type decoder struct {
	data []byte
	i    int
}

func (d *decoder) space() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: "+format, append([]any{d.i}, args...)...)
}

func (d *decoder) unexpected() error {
	if d.i >= len(d.data) {
		return errors.New("unexpected end of JSON input")
	}
	return d.errorf("invalid character %q", d.data[d.i])
}

// value reads the value at d.i, which is not white space.
func (d *decoder) value(depth int) (any, error) {
	if d.i >= len(d.data) {
		return nil, d.unexpected()
	}
	switch c := d.data[d.i]; {
	case c == '{':
		return d.object(depth + 1)
	case c == '[':
		return d.array(depth + 1)
	case c == '"':
		return d.string()
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	}
	return nil, d.unexpected()
}

func (d *decoder) literal(lit string) error {
	for j := 0; j < len(lit); j++ {
		if d.i >= len(d.data) || d.data[d.i] != lit[j] {
			return d.unexpected()
		}
		d.i++
	}
	return nil
}

func (d *decoder) object(depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("exceeded max depth")
	}
	d.i++ // {
	obj := map[string]any{}
	d.space()
	if d.i < len(d.data) && d.data[d.i] == '}' {
		d.i++
		return obj, nil
	}
	for {
		if d.i >= len(d.data) || d.data[d.i] != '"' {
			return nil, d.unexpected()
		}
		key, err := d.string()
		if err != nil {
			return nil, err
		}
		d.space()
		if d.i >= len(d.data) || d.data[d.i] != ':' {
			return nil, d.unexpected()
		}
		d.i++
		d.space()
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		obj[key] = v
		if more, err := d.more('}'); !more {
			if err != nil {
				return nil, err
			}
			return obj, nil
		}
	}
}

// more reads what follows a member of an object or an item of an array:
// a comma, and true, or the closing bracket, and false.
func (d *decoder) more(closing byte) (bool, error) {
	d.space()
	switch {
	case d.i >= len(d.data):
		return false, d.unexpected()
	case d.data[d.i] == ',':
		d.i++
		d.space()
		return true, nil
	case d.data[d.i] == closing:
		d.i++
		return false, nil
	}
	return false, d.unexpected()
}

func (d *decoder) array(depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("exceeded max depth")
	}
	d.i++ // [
	arr := []any{}
	d.space()
	if d.i < len(d.data) && d.data[d.i] == ']' {
		d.i++
		return arr, nil
	}
	for {
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
		if more, err := d.more(']'); !more {
			if err != nil {
				return nil, err
			}
			return arr, nil
		}
	}
}

// number reads a number as its literal, checking its grammar.
func (d *decoder) number() (any, error) {
	start := d.i
	digits := func() int {
		n := 0
		for d.i < len(d.data) && d.data[d.i] >= '0' && d.data[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.data[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(d.data) && d.data[d.i] == '0':
		d.i++
	case digits() == 0:
		return nil, d.unexpected()
	}
	if d.i < len(d.data) && d.data[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return nil, d.unexpected()
		}
	}
	if d.i < len(d.data) && (d.data[d.i] == 'e' || d.data[d.i] == 'E') {
		d.i++
		if d.i < len(d.data) && (d.data[d.i] == '+' || d.data[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return nil, d.unexpected()
		}
	}
	return json.Number(d.data[start:d.i]), nil
}

// string reads a string at d.i, its opening quote.
func (d *decoder) string() (string, error) {
	d.i++ // "
	start := d.i
	for d.i < len(d.data) {
		c := d.data[d.i]
		switch {
		case c == '"':
			s := string(d.data[start:d.i])
			d.i++
			return s, nil
		case c == '\\' || c >= utf8.RuneSelf:
			return d.slowString(start)
		case c < ' ':
			return "", d.errorf("invalid character %q in string literal", c)
		}
		d.i++
	}
	return "", d.unexpected()
}

// slowString reads the rest of a string that started at start and has
// escapes or non-ASCII bytes from d.i on.
func (d *decoder) slowString(start int) (string, error) {
	b := make([]byte, 0, d.i-start+16)
	b = append(b, d.data[start:d.i]...)
	for d.i < len(d.data) {
		c := d.data[d.i]
		switch {
		case c == '"':
			d.i++
			return string(b), nil
		case c < ' ':
			return "", d.errorf("invalid character %q in string literal", c)
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(d.data[d.i:])
			if r == utf8.RuneError && size == 1 {
				b = utf8.AppendRune(b, utf8.RuneError)
			} else {
				b = append(b, d.data[d.i:d.i+size]...)
			}
			d.i += size
		case c != '\\':
			b = append(b, c)
			d.i++
		default:
			d.i++
			if d.i >= len(d.data) {
				return "", d.unexpected()
			}
			e := d.data[d.i]
			d.i++
			switch e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := d.hex4()
				if !ok {
					return "", d.errorf("invalid escape in string literal")
				}
				if utf16.IsSurrogate(r) {
					// The first half of a pair joins the escape after it;
					// any other surrogate becomes U+FFFD.
					dec := utf8.RuneError
					if d.i+1 < len(d.data) && d.data[d.i] == '\\' && d.data[d.i+1] == 'u' {
						save := d.i
						d.i += 2
						r2, ok := d.hex4()
						if dec = utf16.DecodeRune(r, r2); !ok || dec == utf8.RuneError {
							d.i, dec = save, utf8.RuneError
						}
					}
					r = dec
				}
				b = utf8.AppendRune(b, r)
			default:
				d.i--
				return "", d.errorf("invalid escape character %q in string literal", e)
			}
		}
	}
	return "", d.unexpected()
}

// hex4 reads the four hex digits of a \u escape.
func (d *decoder) hex4() (rune, bool) {
	if len(d.data)-d.i < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(d.data[d.i:d.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	d.i += 4
	return rune(n), true
}
