package fhirpath

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Expression is a parsed FHIRPath expression. It is immutable and safe for
// concurrent use.
type Expression struct {
	src  string
	root expr
}

// String returns the source text of the expression.
func (e *Expression) String() string { return e.src }

// SyntaxError reports an expression that does not parse, or that calls an
// unknown function or a function with the wrong number of arguments.
type SyntaxError struct {
	Expr   string
	Offset int // byte offset of the problem in Expr
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("fhirpath: %s at offset %d of %q", e.Msg, e.Offset, e.Expr)
}

// maxDepth bounds the nesting of an expression, so hostile input cannot
// exhaust the stack: parentheses and function arguments, and the operands
// and steps of a chain (a + b + c, a.b.c, a[0][0]), each of which the
// evaluator recurses into. The official expressions nest less than 80
// deep.
const maxDepth = 200

// Parse parses a FHIRPath expression.
func Parse(src string) (*Expression, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, toks: toks}
	root, err := p.expression(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.errorf(t, "unexpected %q", t.text)
	}
	return &Expression{src: src, root: root}, nil
}

// MustParse is like Parse but panics on error; for expressions fixed in code.
func MustParse(src string) *Expression {
	e, err := Parse(src)
	if err != nil {
		panic(err)
	}
	return e
}

type tokKind uint8

const (
	tokEOF tokKind = iota
	tokIdent
	tokDelimited // `identifier`
	tokString
	tokNumber
	tokDate     // @2020-01-01, value without '@'
	tokDateTime // @2020-01-01T10:00, value without '@'
	tokTime     // @T10:00, value without "@T"
	tokConst    // %name, value without '%'
	tokSymbol
)

type token struct {
	kind tokKind
	text string // symbol or identifier text; decoded value of strings
	pos  int
}

var (
	dateTimeLit = regexp.MustCompile(`^@\d{4}(?:-\d{2}(?:-\d{2})?)?T(?:\d{2}(?::\d{2}(?::\d{2}(?:\.\d+)?)?)?)?(?:Z|[+-]\d{2}:\d{2})?`)
	dateLit     = regexp.MustCompile(`^@\d{4}(?:-\d{2}(?:-\d{2})?)?`)
	timeLit     = regexp.MustCompile(`^@T\d{2}(?::\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:\d{2})?`)
	numberLit   = regexp.MustCompile(`^\d+(?:\.\d+)?`)
)

func lex(src string) ([]token, error) {
	var toks []token
	errAt := func(pos int, format string, args ...any) error {
		return &SyntaxError{Expr: src, Offset: pos, Msg: fmt.Sprintf(format, args...)}
	}
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
			continue
		case strings.HasPrefix(src[i:], "//"):
			end := strings.IndexByte(src[i:], '\n')
			if end < 0 {
				i = len(src)
			} else {
				i += end
			}
			continue
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, errAt(i, "unterminated comment")
			}
			i += end + 4
			continue
		case c == '\'' || c == '`':
			s, n, err := unquote(src[i:], c)
			if err != nil {
				return nil, errAt(i, "%v", err)
			}
			kind := tokString
			if c == '`' {
				kind = tokDelimited
			}
			toks = append(toks, token{kind, s, i})
			i += n
			continue
		case c == '@':
			var kind tokKind
			var m string
			if m = timeLit.FindString(src[i:]); m != "" {
				kind = tokTime
				toks = append(toks, token{kind, m[2:], i})
			} else if m = dateTimeLit.FindString(src[i:]); m != "" {
				toks = append(toks, token{tokDateTime, m[1:], i})
			} else if m = dateLit.FindString(src[i:]); m != "" {
				toks = append(toks, token{tokDate, m[1:], i})
			} else {
				return nil, errAt(i, "invalid date/time literal")
			}
			i += len(m)
			continue
		case c >= '0' && c <= '9':
			m := numberLit.FindString(src[i:])
			toks = append(toks, token{tokNumber, m, i})
			i += len(m)
			continue
		case c == '%':
			if i+1 < len(src) && (src[i+1] == '`' || src[i+1] == '\'') {
				s, n, err := unquote(src[i+1:], src[i+1])
				if err != nil {
					return nil, errAt(i, "%v", err)
				}
				toks = append(toks, token{tokConst, s, i})
				i += 1 + n
				continue
			}
			j := i + 1
			for j < len(src) && isIdentByte(src[j], j > i+1) {
				j++
			}
			if j == i+1 {
				return nil, errAt(i, "invalid external constant")
			}
			toks = append(toks, token{tokConst, src[i+1 : j], i})
			i = j
			continue
		case c == '$' || isIdentByte(c, false):
			j := i + 1
			for j < len(src) && isIdentByte(src[j], true) {
				j++
			}
			toks = append(toks, token{tokIdent, src[i:j], i})
			i = j
			continue
		}
		for _, sym := range []string{"<=", ">=", "!=", "!~", "(", ")", "[", "]", "{", "}", ".", ",", "+", "-", "*", "/", "&", "|", "<", ">", "=", "~"} {
			if strings.HasPrefix(src[i:], sym) {
				toks = append(toks, token{tokSymbol, sym, i})
				i += len(sym)
				goto next
			}
		}
		if r, _ := utf8.DecodeRuneInString(src[i:]); r != utf8.RuneError {
			return nil, errAt(i, "unexpected character %q", r)
		}
		return nil, errAt(i, "invalid UTF-8")
	next:
	}
	return append(toks, token{kind: tokEOF, pos: len(src)}), nil
}

func isIdentByte(c byte, rest bool) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || rest && c >= '0' && c <= '9'
}

// unquote decodes a quoted string or delimited identifier starting at s[0],
// returning the value and the number of bytes consumed.
func unquote(s string, q byte) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == q:
			return b.String(), i + 1, nil
		case c == '\\':
			i++
			if i >= len(s) {
				return "", 0, fmt.Errorf("unterminated string")
			}
			switch s[i] {
			case '\'', '"', '`', '\\', '/':
				b.WriteByte(s[i])
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				if i+5 > len(s) {
					return "", 0, fmt.Errorf("invalid unicode escape")
				}
				n, err := strconv.ParseUint(s[i+1:i+5], 16, 32)
				if err != nil {
					return "", 0, fmt.Errorf("invalid unicode escape")
				}
				b.WriteRune(rune(n))
				i += 4
			default:
				return "", 0, fmt.Errorf("invalid escape \\%c", s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("unterminated string")
}

type parser struct {
	src   string
	toks  []token
	i     int
	depth int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *parser) errorf(t token, format string, args ...any) error {
	return &SyntaxError{Expr: p.src, Offset: t.pos, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) isSym(s string) bool {
	t := p.peek()
	return t.kind == tokSymbol && t.text == s
}

func (p *parser) expect(s string) error {
	if !p.isSym(s) {
		t := p.peek()
		if t.kind == tokEOF {
			return p.errorf(t, "expected %q, found end of expression", s)
		}
		return p.errorf(t, "expected %q, found %q", s, t.text)
	}
	p.next()
	return nil
}

// binaryLevels lists the binary operators by precedence, lowest first.
var binaryLevels = [][]string{
	{"implies"},
	{"or", "xor"},
	{"and"},
	{"in", "contains"},
	{"=", "~", "!=", "!~"},
	{"<", ">", "<=", ">="},
	{"|"},
	{"is", "as"},
	{"+", "-", "&"},
	{"*", "/", "div", "mod"},
}

// operatorAt returns the binary operator at the current token for level, or "".
func (p *parser) operatorAt(level int) string {
	t := p.peek()
	if t.kind != tokSymbol && t.kind != tokIdent {
		return ""
	}
	for _, op := range binaryLevels[level] {
		if t.text == op {
			return op
		}
	}
	return ""
}

func (p *parser) expression(level int) (expr, error) {
	if err := p.nest(); err != nil {
		return nil, err
	}
	defer p.unnest(1)
	if level == len(binaryLevels) {
		return p.unary()
	}
	left, err := p.expression(level + 1)
	if err != nil {
		return nil, err
	}
	chained := 0
	defer func() { p.unnest(chained) }()
	for {
		op := p.operatorAt(level)
		if op == "" {
			return left, nil
		}
		// Each operator of a chain nests its left operand one level
		// deeper in the tree the evaluator recurses into.
		if err := p.nest(); err != nil {
			return nil, err
		}
		chained++
		p.next()
		if op == "is" || op == "as" {
			name, err := p.typeSpecifier()
			if err != nil {
				return nil, err
			}
			left = &typeExpr{op: op, x: left, typ: name}
			continue
		}
		right, err := p.expression(level + 1)
		if err != nil {
			return nil, err
		}
		left = &binaryExpr{op: op, l: left, r: right}
	}
}

// nest enters one level of nesting, refusing more than maxDepth.
func (p *parser) nest() error {
	if p.depth == maxDepth {
		return p.errorf(p.peek(), "expression nested too deeply")
	}
	p.depth++
	return nil
}

// unnest leaves n levels of nesting.
func (p *parser) unnest(n int) { p.depth -= n }

func (p *parser) typeSpecifier() (string, error) {
	var parts []string
	for {
		t := p.next()
		if t.kind != tokIdent && t.kind != tokDelimited {
			return "", p.errorf(t, "expected a type name")
		}
		parts = append(parts, t.text)
		if !p.isSym(".") {
			return strings.Join(parts, "."), nil
		}
		p.next()
	}
}

func (p *parser) unary() (expr, error) {
	if p.isSym("+") || p.isSym("-") {
		op := p.next().text
		if err := p.nest(); err != nil {
			return nil, err
		}
		defer p.unnest(1)
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		if op == "+" {
			return x, nil
		}
		return &negExpr{x: x}, nil
	}
	return p.postfix()
}

func (p *parser) postfix() (expr, error) {
	x, err := p.term()
	if err != nil {
		return nil, err
	}
	chained := 0
	defer func() { p.unnest(chained) }()
	for {
		if p.isSym(".") || p.isSym("[") {
			// Each step nests the target one level deeper.
			if err := p.nest(); err != nil {
				return nil, err
			}
			chained++
		}
		switch {
		case p.isSym("."):
			p.next()
			t := p.next()
			if t.kind != tokIdent && t.kind != tokDelimited {
				return nil, p.errorf(t, "expected a name after '.'")
			}
			if t.kind == tokIdent && p.isSym("(") {
				x, err = p.call(x, t)
				if err != nil {
					return nil, err
				}
				continue
			}
			x = &memberExpr{target: x, name: t.text}
		case p.isSym("["):
			p.next()
			idx, err := p.expression(0)
			if err != nil {
				return nil, err
			}
			if err := p.expect("]"); err != nil {
				return nil, err
			}
			x = &indexExpr{target: x, index: idx}
		default:
			return x, nil
		}
	}
}

func (p *parser) term() (expr, error) {
	t := p.next()
	switch t.kind {
	case tokEOF:
		return nil, p.errorf(t, "unexpected end of expression")
	case tokString:
		return &literal{v: String(t.text)}, nil
	case tokNumber:
		return p.number(t)
	case tokDate:
		d, err := ParseDate(t.text)
		if err != nil {
			return nil, p.errorf(t, "%v", err)
		}
		return &literal{v: d}, nil
	case tokDateTime:
		d, err := ParseDateTime(t.text)
		if err != nil {
			return nil, p.errorf(t, "%v", err)
		}
		return &literal{v: d}, nil
	case tokTime:
		if zoneRE.MatchString(t.text) {
			return nil, p.errorf(t, "a time literal cannot have a time zone")
		}
		tm, err := ParseTime(t.text)
		if err != nil {
			return nil, p.errorf(t, "%v", err)
		}
		return &literal{v: tm}, nil
	case tokConst:
		return &constExpr{name: t.text}, nil
	case tokDelimited:
		return &identExpr{name: t.text}, nil
	case tokIdent:
		switch t.text {
		case "true":
			return &literal{v: Boolean(true)}, nil
		case "false":
			return &literal{v: Boolean(false)}, nil
		case "$this", "$index", "$total":
			return &varExpr{name: t.text}, nil
		}
		if strings.HasPrefix(t.text, "$") {
			return nil, p.errorf(t, "unknown variable %s", t.text)
		}
		if p.isSym("(") {
			return p.call(nil, t)
		}
		return &identExpr{name: t.text}, nil
	case tokSymbol:
		switch t.text {
		case "(":
			x, err := p.expression(0)
			if err != nil {
				return nil, err
			}
			return x, p.expect(")")
		case "{":
			return &literal{}, p.expect("}")
		}
	}
	return nil, p.errorf(t, "unexpected %q", t.text)
}

func (p *parser) number(t token) (expr, error) {
	var v Value
	if strings.Contains(t.text, ".") {
		d, err := ParseDecimal(t.text)
		if err != nil {
			return nil, p.errorf(t, "%v", err)
		}
		v = d
	} else {
		n, err := strconv.ParseInt(t.text, 10, 64)
		if err != nil {
			return nil, p.errorf(t, "integer %s out of range", t.text)
		}
		v = Integer(n)
	}
	// A number followed by a unit is a quantity.
	u := p.peek()
	if u.kind == tokString || u.kind == tokIdent && calendarUnits[u.text] != "" {
		p.next()
		d, ok := v.(Decimal)
		if !ok {
			d = DecimalFromInt(int64(v.(Integer)))
		}
		return &literal{v: Quantity{Value: d, Unit: u.text}}, nil
	}
	return &literal{v: v}, nil
}

func (p *parser) call(target expr, name token) (expr, error) {
	p.next() // (
	var args []expr
	if !p.isSym(")") {
		for {
			a, err := p.expression(0)
			if err != nil {
				return nil, err
			}
			args = append(args, a)
			if !p.isSym(",") {
				break
			}
			p.next()
		}
	}
	if err := p.expect(")"); err != nil {
		return nil, err
	}
	fn, ok := functions[name.text]
	if !ok {
		return nil, p.errorf(name, "unknown function %s", name.text)
	}
	if len(args) < fn.minArgs || len(args) > fn.maxArgs {
		return nil, p.errorf(name, "%s takes %d to %d arguments, not %d", name.text, fn.minArgs, fn.maxArgs, len(args))
	}
	return &callExpr{target: target, name: name.text, fn: fn, args: args}, nil
}
