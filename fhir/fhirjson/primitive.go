package fhirjson

import (
	"reflect"
	"strconv"

	"carefhir/fhir"
	"carefhir/fhir/lexical"
)

// valueKind is the JSON type of a primitive value.
type valueKind uint8

const (
	valueString  valueKind = iota // JSON string, Go *string
	valueBoolean                  // JSON true/false, Go *bool
	valueInteger                  // JSON number without fraction, Go *int64
	valueDecimal                  // JSON number kept as text, Go *string
)

// primitive describes a primitive type.
type primitive struct {
	name  string
	typ   reflect.Type
	value valueKind
	// valid checks the lexical form of a string value (valueString) against
	// the regex of the type's definition.
	valid func(string) bool
	// calendar is set for date, dateTime and instant, whose regexes allow
	// day 29 to 31 of any month: a decoded value must also be a day of
	// the calendar (dayFault). Encoding checks the regex alone, so that a
	// version stored before the decoder checked the day can still be
	// served.
	calendar bool
	// min is the smallest valid integer (valueInteger).
	min int64
	// noExtensions is set for xhtml, whose definition allows no extensions.
	noExtensions bool
	// div is set for xhtml, whose value the decoder also checks is a div
	// XML can carry (lexical.CheckDiv), so that every narrative accepted
	// in JSON can be served as XML. The encoder trusts it: an XML parse
	// costs more than the rest of the resource's encoding.
	div bool
	// boxed is struct{ P T; V value }: decoding allocates a primitive and its
	// value together, one allocation instead of two.
	boxed reflect.Type
}

// primitives lists every FHIR primitive type. The validators implement the
// regexes of the R4 definitions (profiles-types.json, "regex" extensions),
// read with XML Schema semantics in which \s is space, tab, CR or LF.
var primitives = withBoxes([]primitive{
	{name: "base64Binary", typ: reflect.TypeFor[fhir.Base64Binary](), valid: validBase64},
	{name: "boolean", typ: reflect.TypeFor[fhir.Boolean](), value: valueBoolean},
	{name: "canonical", typ: reflect.TypeFor[fhir.Canonical](), valid: lexical.ValidURI},
	{name: "code", typ: reflect.TypeFor[fhir.Code](), valid: lexical.ValidCode},
	{name: "date", typ: reflect.TypeFor[fhir.Date](), valid: validDate, calendar: true},
	{name: "dateTime", typ: reflect.TypeFor[fhir.DateTime](), valid: validDateTime, calendar: true},
	{name: "decimal", typ: reflect.TypeFor[fhir.Decimal](), value: valueDecimal},
	{name: "id", typ: reflect.TypeFor[fhir.Id](), valid: lexical.ValidID},
	{name: "instant", typ: reflect.TypeFor[fhir.Instant](), valid: validInstant, calendar: true},
	{name: "integer", typ: reflect.TypeFor[fhir.Integer](), value: valueInteger, min: minInt32},
	{name: "markdown", typ: reflect.TypeFor[fhir.Markdown](), valid: validString},
	{name: "oid", typ: reflect.TypeFor[fhir.Oid](), valid: validOID},
	{name: "positiveInt", typ: reflect.TypeFor[fhir.PositiveInt](), value: valueInteger, min: 1},
	{name: "string", typ: reflect.TypeFor[fhir.String](), valid: validString},
	{name: "time", typ: reflect.TypeFor[fhir.Time](), valid: validTime},
	{name: "unsignedInt", typ: reflect.TypeFor[fhir.UnsignedInt](), value: valueInteger, min: 0},
	{name: "uri", typ: reflect.TypeFor[fhir.Uri](), valid: lexical.ValidURI},
	{name: "url", typ: reflect.TypeFor[fhir.Url](), valid: lexical.ValidURI},
	{name: "uuid", typ: reflect.TypeFor[fhir.Uuid](), valid: validUUID},
	{name: "xhtml", typ: reflect.TypeFor[fhir.Xhtml](), valid: validString, noExtensions: true, div: true},
})

func withBoxes(ps []primitive) []primitive {
	for i := range ps {
		p := &ps[i]
		value := p.typ.Field(primValue).Type.Elem()
		p.boxed = reflect.StructOf([]reflect.StructField{{Name: "P", Type: p.typ}, {Name: "V", Type: value}})
	}
	return ps
}

// box returns a new primitive of type p and its (settable) value, both in
// one allocation; the primitive's Value already points at the value.
func (p *primitive) box() (prim, value reflect.Value) {
	b := reflect.New(p.boxed).Elem()
	prim, value = b.Field(0).Addr(), b.Field(1)
	prim.Elem().Field(primValue).Set(value.Addr())
	return prim, value
}

const (
	minInt32 = -1 << 31
	maxInt32 = 1<<31 - 1
)

// dayFault returns why s, a value that p.valid accepts, is no day of the
// calendar ("2023-02 has no day 29"), or "" when it is one: R4 requires
// "valid dates" of date, dateTime and instant (datatypes.html#date).
func (p *primitive) dayFault(s string) string {
	if !p.calendar || lexical.DayExists(s) {
		return ""
	}
	return s[:7] + " has no day " + s[8:10]
}

// parseInteger parses the text of a JSON number as a FHIR integer of p:
// integer -?([0]|([1-9][0-9]*)), positiveInt [1-9][0-9]*, unsignedInt
// [0]|([1-9][0-9]*), all within 32 bits.
func (p *primitive) parseInteger(s string) (int64, string) {
	digits := s
	if len(digits) > 0 && digits[0] == '-' {
		if p.min >= 0 {
			return 0, "must not be negative"
		}
		digits = digits[1:]
	}
	if digits == "" || !allDigits(digits) || (digits[0] == '0' && len(digits) > 1) {
		return 0, "expected an integer"
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > maxInt32 || n < minInt32 {
		return 0, "integer out of 32-bit range"
	}
	if n < p.min {
		if p.min == 1 {
			return 0, "must be positive"
		}
		return 0, "must not be negative"
	}
	return n, ""
}

// skipDigits returns the index of the first non-digit of s at or after i.
func skipDigits[T string | []byte](s T, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// isSpace reports whether c is white space in the XML Schema sense (\s).
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// validString: [ \r\n\t\S]+, i.e. not empty.
func validString(s string) bool { return s != "" }

// validOID: urn:oid:[0-2](\.(0|[1-9][0-9]*))+
func validOID(s string) bool {
	rest, ok := cutPrefix(s, "urn:oid:")
	if !ok || len(rest) < 3 || rest[0] < '0' || rest[0] > '2' {
		return false
	}
	rest = rest[1:]
	if rest == "" {
		return false
	}
	for rest != "" {
		if rest[0] != '.' {
			return false
		}
		rest = rest[1:]
		n := skipDigits(rest, 0)
		if n == 0 || (rest[0] == '0' && n > 1) {
			return false
		}
		rest = rest[n:]
	}
	return true
}

// validUUID: urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}
func validUUID(s string) bool {
	rest, ok := cutPrefix(s, "urn:uuid:")
	if !ok || len(rest) != 36 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(isDigit(c) || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// validBase64: (\s*([0-9a-zA-Z\+/=]){4}\s*)+, and base64 as RFC 4648 has
// it, which R4 names (datatypes.html#base64Binary): "=" pads the last group
// only, as its last one or two characters. The regex alone lets "AA=A" or
// "A===" through, which no base64 decoder reads, so that the content of a
// Binary holding one could be stored and never served.
func validBase64(s string) bool {
	groups := 0
	padded := false
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) {
			return groups > 0
		}
		if len(s)-i < 4 || padded {
			return false
		}
		for j := 0; j < 4; j++ {
			c := s[i+j]
			switch {
			case c == '=':
				// "xx==" or "xxx=": nothing but padding after the first.
				if j < 2 || j == 2 && s[i+3] != '=' {
					return false
				}
				padded = true
			case padded:
				return false
			case !(isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '+' || c == '/'):
				return false
			}
		}
		i += 4
		groups++
	}
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || s[:len(prefix)] != prefix {
		return s, false
	}
	return s[len(prefix):], true
}

// twoDigits reports whether s[i:i+2] is a number in [lo, hi].
func twoDigits(s string, i int, lo, hi int) bool {
	if i+2 > len(s) || !isDigit(s[i]) || !isDigit(s[i+1]) {
		return false
	}
	n := int(s[i]-'0')*10 + int(s[i+1]-'0')
	return n >= lo && n <= hi
}

// datePart returns the length of the longest valid prefix of s matching
// YYYY(-MM(-DD)?)? and how many components it has (1 to 3), or 0, 0.
func datePart(s string) (n, parts int) {
	if len(s) < 4 || !allDigits(s[:4]) || s[:4] == "0000" {
		return 0, 0
	}
	if len(s) < 7 || s[4] != '-' {
		return 4, 1
	}
	if !twoDigits(s, 5, 1, 12) {
		return 0, 0
	}
	if len(s) < 10 || s[7] != '-' {
		return 7, 2
	}
	if !twoDigits(s, 8, 1, 31) {
		return 0, 0
	}
	return 10, 3
}

// timePart returns the length of the prefix of s matching
// ([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?, or 0.
func timePart(s string) int {
	if len(s) < 8 || !twoDigits(s, 0, 0, 23) || s[2] != ':' || !twoDigits(s, 3, 0, 59) || s[5] != ':' || !twoDigits(s, 6, 0, 60) {
		return 0
	}
	i := 8
	if i < len(s) && s[i] == '.' {
		j := skipDigits(s, i+1)
		if j == i+1 {
			return 0
		}
		i = j
	}
	return i
}

// validZone: Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)
func validZone(s string) bool {
	if s == "Z" {
		return true
	}
	if len(s) != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':' {
		return false
	}
	if s[1:] == "14:00" {
		return true
	}
	return twoDigits(s, 1, 0, 13) && twoDigits(s, 4, 0, 59)
}

func validDate(s string) bool {
	n, _ := datePart(s)
	return n > 0 && n == len(s)
}

func validDateTime(s string) bool {
	n, parts := datePart(s)
	if n == 0 {
		return false
	}
	if n == len(s) {
		return true
	}
	return parts == 3 && validTimeAndZone(s[n:])
}

func validInstant(s string) bool {
	n, parts := datePart(s)
	return parts == 3 && n < len(s) && validTimeAndZone(s[n:])
}

// validTimeAndZone matches T<time><zone>.
func validTimeAndZone(s string) bool {
	if s == "" || s[0] != 'T' {
		return false
	}
	n := timePart(s[1:])
	return n > 0 && validZone(s[1+n:])
}

func validTime(s string) bool {
	n := timePart(s)
	return n > 0 && n == len(s)
}
