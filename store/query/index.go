package query

import (
	"strings"
	"time"
)

// Index holds the normalised search values of one resource version. Only the
// current, non-deleted version of a resource is searchable.
//
// Values are normalised by the search layer, the same way for every engine
// and for the query side, so engines compare them as they are (see index.go).
type Index struct {
	Tokens     []Token
	Strings    []String
	Dates      []Date
	Numbers    []Number
	Quantities []Quantity
	References []Reference
	URIs       []URI
	Composites []Composite
}

// Token is one token search value, e.g. an identifier or a coded value:
// parameter name, system (may be empty) and code, normalised by the caller.
type Token struct {
	Param  string
	System string
	Code   string
}

// Index values beyond tokens. Values that a parameter's modifiers search
// separately are indexed under a derived parameter name "param:modifier":
// the display text of codes under "code:text" (Strings) and the
// identifiers of references under "subject:identifier" (Tokens).

// PresentParam is the derived parameter under which an index marks, by a
// token without a code, that the element of param has a value although no
// value of param could be indexed from it (a Reference by identifier or
// display alone, a CodeableConcept of text alone), so that :missing finds
// the element present: the search parser reads param:missing=false as a
// value of param or of PresentParam(param).
func PresentParam(param string) string { return param + ":present" }

// String is one string search value.
type String struct {
	Param string
	// Value is lower-cased and accent-folded: what default (prefix) and
	// :contains searches compare.
	Value string
	// Exact is the value as written, in Unicode normalization form C,
	// which :exact compares.
	Exact string
}

// Date is one date search value: the range of instants it covers, both ends
// included, in UTC at millisecond precision. A date covers its whole day; an
// open end of a Period is MinTime or MaxTime.
type Date struct {
	Param     string
	Low, High time.Time
}

// MinTime and MaxTime are the open ends of date ranges: a Period without
// an end goes on for ever (R4 search.html, dates), so its end must compare
// after every instant a search names, and its start, without one, before.
// A FHIR date names years 0000 to 9999, with a zone up to a day off UTC,
// and ap widens a search value by a tenth of its distance from now, some
// 800 years at most; these lie far beyond both, and within what both
// engines store exactly (milliseconds below 2^53).
var (
	MinTime = time.Date(-100000, time.January, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(100000, time.December, 31, 23, 59, 59, 999e6, time.UTC)
)

// Number is one number search value.
type Number struct {
	Param string
	Value float64 // what searches compare
	Text  string  // the decimal as written, e.g. "1.50"
}

// Quantity is one quantity search value: a number with the system and code
// of its unit (either may be empty) and the unit as displayed. The value of
// a Range is the interval [Value, High], an open end -math.MaxFloat64 or
// math.MaxFloat64, compared as a date's [Low, High] is (see NumberMatch).
type Quantity struct {
	Param  string
	Value  float64 // a Range's low end
	Text   string
	System string
	Code   string
	Unit   string
	Range  bool
	High   float64 // a Range's high end; 0 for a Quantity
}

// Ends returns the interval q covers: [Value, Value] for a Quantity,
// [Value, High] for a Range.
func (q Quantity) Ends() (low, high float64) {
	if q.Range {
		return q.Value, q.High
	}
	return q.Value, q.Value
}

// Reference is one reference search value. Local references, and absolute
// ones to this server's base, are Type and ID; others are URL alone.
type Reference struct {
	Param string
	Type  string
	ID    string
	URL   string
}

// Target returns the reference as one string: "Type/id", or the URL.
func (r Reference) Target() string {
	if r.URL != "" {
		return r.URL
	}
	return r.Type + "/" + r.ID
}

// Reference keys: engines store each reference as a string whose first byte
// marks the form, so that every reference match is an equality:
//
//	"r" + Type + "/" + id   a resource of a FHIR server
//	"u" + URL               anything else
//
// A reference is stored once, by type and id: a search by id alone names
// no type, and the search parser turns it into one match for each type the
// parameter can refer to (see ReferenceMatch). Databases written before
// this rule also hold an "i" + id key per reference; nothing reads it.
const (
	RefTyped = "r"
	RefURL   = "u"
)

// Keys returns the stored forms of a reference.
func (r Reference) Keys() []string {
	if r.URL != "" {
		return []string{RefURL + r.URL}
	}
	return []string{RefTyped + r.Type + "/" + r.ID}
}

// Key returns the stored form of a reference that a match looks for; for
// a match of any id, the start that the stored forms of its type share.
func (m ReferenceMatch) Key() string {
	if m.URL != "" {
		return RefURL + m.URL
	}
	return RefTyped + m.Type + "/" + m.ID
}

// AnyID reports whether m matches a reference to any resource of its Type.
func (m ReferenceMatch) AnyID() bool { return m.URL == "" && m.ID == "" }

// CompositeKey joins the parts of a composite value or match into one
// string: '\' and '$' in parts are escaped, so the first unescaped '$' ends
// a part.
func CompositeKey(parts []string) string {
	esc := make([]string, len(parts))
	for i, p := range parts {
		esc[i] = compositeEscaper.Replace(p)
	}
	return strings.Join(esc, "$")
}

var compositeEscaper = strings.NewReplacer(`\`, `\\`, `$`, `\$`)

// SplitCompositeKey returns the parts CompositeKey joined.
func SplitCompositeKey(key string) []string {
	var parts []string
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		switch c := key[i]; {
		case c == '\\' && i+1 < len(key):
			i++
			b.WriteByte(key[i])
		case c == '$':
			parts = append(parts, b.String())
			b.Reset()
		default:
			b.WriteByte(c)
		}
	}
	return append(parts, b.String())
}

// URI is one uri search value, as written.
type URI struct {
	Param string
	Value string
}

// Composite is one composite search value: the correlated components of one
// element. Parts are the keys of its token and string components; a last
// component that is a quantity or a date is Quantity or Date instead.
type Composite struct {
	Param    string
	Parts    []string
	Quantity *Quantity
	Date     *Date
}
