package search

import (
	"math"
	"math/big"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"carefhir/fhir/lexical"
	"carefhir/store/query"
)

// NormalizeString returns s as string searches compare it: accents removed,
// lower-cased, and runs of white space collapsed to one space. Index and
// query sides both use it, so "Zoë" is found by "zoe" and "ZOË" alike.
func NormalizeString(s string) string {
	if n, ok := normalizeASCII(s); ok {
		return n
	}
	return normalizeUnicode(s)
}

// ExactString returns s as :exact compares it: as written, case and
// accents kept, in Unicode normalization form C, so that an accent typed
// as a combining mark ("u" and U+0308) is the same as the precomposed
// letter ("ü") it is canonically equivalent to. Index and query sides
// both use it.
func ExactString(s string) string { return norm.NFC.String(s) }

// normalizeUnicode is NormalizeString for any s.
func normalizeUnicode(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range norm.NFD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if f, ok := folds[r]; ok {
			b.WriteString(f)
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// normalizeASCII is NormalizeString for the common case of s in ASCII,
// where there is nothing to decompose or fold: ok is false when s is not.
func normalizeASCII(s string) (string, bool) {
	clean := true // s is already lower case, singly spaced and trimmed
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= utf8.RuneSelf:
			return "", false
		case 'A' <= c && c <= 'Z', c == '\t', c == '\n', c == '\v', c == '\f', c == '\r':
			clean = false
		case c == ' ' && (i == 0 || i == len(s)-1 || s[i+1] == ' '):
			clean = false
		}
	}
	if clean {
		return s, true
	}
	b := make([]byte, 0, len(s))
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case ' ', '\t', '\n', '\v', '\f', '\r':
			space = len(b) > 0
			continue
		}
		if space {
			b = append(b, ' ')
			space = false
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return string(b), true
}

// folds are letters that do not decompose into a base letter and a mark
// but that people type without their stroke or ligature.
var folds = map[rune]string{
	'ß': "ss", 'ẞ': "ss", 'Æ': "ae", 'æ': "ae", 'Œ': "oe", 'œ': "oe",
	'Ø': "o", 'ø': "o", 'Ł': "l", 'ł': "l", 'Đ': "d", 'đ': "d",
	'Ð': "d", 'ð': "d", 'Þ': "th", 'þ': "th", 'ı': "i",
	'’': "'", '‘': "'", 'ʼ': "'",
	// The final sigma, which upper case does not tell from σ: ΠΑΠΑΔΟΠΟΥΛΟΣ
	// is lower-cased with σ where Παπαδόπουλος is written with ς.
	'ς': "σ",
}

// ParseDate returns the range of instants a FHIR date, dateTime or instant
// covers at its precision: "1970" the whole year, "2025-01-10" the day,
// "2025-01-10T10:00:00+01:00" the second. Values without a time zone are
// taken in UTC. Both ends are included, at millisecond precision. Search
// values may also stop at minutes ("2025-01-10T10:00Z").
func ParseDate(s string) (low, high time.Time, ok bool) {
	var year, month, day int
	n := len(s)
	switch {
	case n == 4:
		if year, ok = digits(s); !ok {
			return
		}
		low = time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)
		return low, low.AddDate(1, 0, 0).Add(-time.Millisecond), true
	case n == 7 && s[4] == '-':
		year, ok1 := digits(s[:4])
		month, ok2 := digits(s[5:])
		if !ok1 || !ok2 || month < 1 || month > 12 {
			return low, high, false
		}
		low = time.Date(year, time.Month(month), 1, 0, 0, 0, 0, time.UTC)
		return low, low.AddDate(0, 1, 0).Add(-time.Millisecond), true
	case n >= 10 && s[4] == '-' && s[7] == '-':
		var ok1, ok2, ok3 bool
		year, ok1 = digits(s[:4])
		month, ok2 = digits(s[5:7])
		day, ok3 = digits(s[8:10])
		if !ok1 || !ok2 || !ok3 || !validDay(year, month, day) {
			return low, high, false
		}
		if n == 10 {
			low = time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
			return low, low.AddDate(0, 0, 1).Add(-time.Millisecond), true
		}
	default:
		return low, high, false
	}
	// A time: "T" hh:mm[:ss[.fff…]] zone.
	rest := s[10:]
	if len(rest) < 6 || rest[0] != 'T' || rest[3] != ':' {
		return low, high, false
	}
	hour, ok1 := digits(rest[1:3])
	minute, ok2 := digits(rest[4:6])
	if !ok1 || !ok2 || hour > 23 || minute > 59 {
		return low, high, false
	}
	rest = rest[6:]
	step := time.Minute
	var sec, nanos int
	if len(rest) >= 3 && rest[0] == ':' {
		var ok bool
		if sec, ok = digits(rest[1:3]); !ok || sec > 59 {
			return low, high, false
		}
		rest = rest[3:]
		step = time.Second
		if len(rest) > 0 && rest[0] == '.' {
			i := 1
			for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
				i++
			}
			frac := rest[1:i]
			if frac == "" {
				return low, high, false
			}
			// Precision beyond milliseconds is kept as the millisecond.
			for j := 0; j < 9; j++ {
				nanos *= 10
				if j < len(frac) {
					nanos += int(frac[j] - '0')
				}
			}
			digitsKept := min(len(frac), 3)
			step = time.Duration(math.Pow10(9 - digitsKept))
			nanos = nanos / int(step) * int(step)
			rest = rest[i:]
		}
	}
	loc := time.UTC
	if strings.HasPrefix(rest, " ") {
		// An unencoded '+' in a query string arrives as a space.
		rest = "+" + rest[1:]
	}
	switch {
	case rest == "Z", rest == "":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		h, ok1 := digits(rest[1:3])
		m, ok2 := digits(rest[4:6])
		if !ok1 || !ok2 || h > 14 || m > 59 {
			return low, high, false
		}
		off := h*3600 + m*60
		if rest[0] == '-' {
			off = -off
		}
		loc = time.FixedZone("", off)
	default:
		return low, high, false
	}
	low = time.Date(year, time.Month(month), day, hour, minute, sec, nanos, loc).UTC()
	return low, low.Add(step - time.Millisecond), true
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func digits(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

func validDay(year, month, day int) bool {
	if month < 1 || month > 12 || day < 1 {
		return false
	}
	t := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
	return t.Day() == day
}

// ParseNumber reads a FHIR decimal or search number ("100", "1.50",
// "-3", "1e2") and returns its value and the half-open range its written
// precision implies: "100" is [99.5, 100.5), "1.50" is [1.495, 1.505).
// A number in exponential form has the precision of its mantissa's
// significant digits, so "1.00e2" is [99.5, 100.5) as "100" is, and
// "5.40e-3" [0.005395, 0.005405), as R4 has them; a mantissa of one digit
// is taken one place finer, as R4's table of number searches has "1e2" as
// [95, 105).
func ParseNumber(s string) (value, low, high float64, ok bool) {
	r, lo, hi, ok := decimalRange(s)
	if !ok {
		return 0, 0, 0, false
	}
	// The bounds are computed exactly and rounded once, so that "5.4"
	// gives 5.35, not 5.3500000000000005.
	value, _ = r.Float64()
	low, _ = lo.Float64()
	high, _ = hi.Float64()
	if high <= value {
		// Beyond 2^53 the range is narrower than a float's step (12345678901234567
		// is [..66.5, ..67.5)): rounded, both ends could land on the float
		// the value is stored as, and [low, high) would hold nothing. The
		// open end moves up one step, so the stored value is inside.
		high = math.Nextafter(high, math.Inf(1))
	}
	return value, low, high, true
}

// decimalRange is ParseNumber in exact arithmetic: the value of s and the
// ends of the range its precision implies.
func decimalRange(s string) (value, low, high *big.Rat, ok bool) {
	r, last, ok := parseDecimal(s)
	if !ok {
		return nil, nil, nil, false
	}
	if i := strings.IndexAny(s, "eE"); i >= 0 && significantDigits(s[:i]) <= 1 {
		// R4 gives "1e2" the range [95, 105), not the [50, 150) of its
		// one significant figure (https://hl7.org/fhir/R4/search.html#number),
		// but "1.00e2" the three figures of "100" and "5.40e-3" ±0.000005.
		last--
	}
	half := new(big.Rat).SetFrac(big.NewInt(1), big.NewInt(2))
	scale := new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(last))), nil))
	if last < 0 {
		half.Quo(half, scale)
	} else {
		half.Mul(half, scale)
	}
	return r, new(big.Rat).Sub(r, half), new(big.Rat).Add(r, half), true
}

// significantDigits counts the digits of a decimal's mantissa after its
// leading zeros: 3 in "1.00", "-0.0540" and "100", 1 in "0.5".
func significantDigits(mantissa string) int {
	digits := strings.TrimLeft(strings.NewReplacer("-", "", "+", "", ".", "").Replace(mantissa), "0")
	return len(digits)
}

// parseDecimal reads s as ParseNumber does: its exact value, and the power
// of ten of its last digit (-2 for 5.40, 3 for 5e3).
// decimalSyntax is the form of a number search value
// (https://hl7.org/fhir/R4/search.html#number): a decimal, with an
// exponent or not. One that parseDecimal refuses is beyond its range.
var decimalSyntax = regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$`)

func parseDecimal(s string) (value *big.Rat, last int, ok bool) {
	if s == "" || strings.ContainsAny(s, " _xXpP") || strings.EqualFold(s, "nan") || strings.Contains(strings.ToLower(s), "inf") {
		return nil, 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return nil, 0, false
	}
	mantissa, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mantissa = s[:i]
		e, err := strconv.Atoi(s[i+1:])
		if err != nil {
			return nil, 0, false
		}
		exp = e
	}
	if len(s) > 100 || abs(exp) > 400 {
		return nil, 0, false // beyond any measurement; and bounds the work below
	}
	decimals := 0
	if i := strings.IndexByte(mantissa, '.'); i >= 0 {
		decimals = len(mantissa) - i - 1
	}
	r, okr := new(big.Rat).SetString(s)
	if !okr {
		return nil, 0, false
	}
	return r, exp - decimals, true
}

// Reference is a parsed reference value: Type and ID for a resource of a
// FHIR server (this one when Base is empty), or URL for anything else.
type Reference = query.Reference

// ParseReference reads a reference as written in a resource or a search
// value. base is this server's base URL ("https://example.org/fhir"), so that
// absolute references to it index as local ones. "Type/id" and
// "Type/id/_history/3" are local; "https://…/Type/id" is local when it is
// under base, else a URL. A canonical ("http://…|1.0"), a fragment ("#x")
// or a urn ("urn:uuid:…") is a URL.
func ParseReference(ref, base string) Reference {
	ref = strings.TrimSpace(ref)
	rel := ref
	if base != "" {
		b := strings.TrimSuffix(base, "/") + "/"
		if strings.HasPrefix(ref, b) {
			rel = ref[len(b):]
		}
	}
	if typ, id, ok := localReference(rel); ok {
		return Reference{Type: typ, ID: id}
	}
	return Reference{URL: ref}
}

// localReference splits "Type/id" or "Type/id/_history/v".
func localReference(s string) (typ, id string, ok bool) {
	parts := strings.Split(s, "/")
	if len(parts) != 2 && !(len(parts) == 4 && parts[2] == "_history") {
		return "", "", false
	}
	if !isTypeName(parts[0]) || !lexical.ValidID(parts[1]) {
		return "", "", false
	}
	return parts[0], parts[1], true
}

func isTypeName(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

// uriAbove returns the values that are "above" u for :above: u itself and
// every prefix of it ending before a '/', down to the scheme and host.
func uriAbove(u string) []string {
	out := []string{u}
	start := 0
	if p, err := url.Parse(u); err == nil && p.Scheme != "" && p.Host != "" {
		start = len(p.Scheme) + 3 + len(p.Host)
	}
	for i := len(u) - 1; i > start; i-- {
		if u[i] == '/' {
			out = append(out, u[:i])
		}
	}
	return out
}
