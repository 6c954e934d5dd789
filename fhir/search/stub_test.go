package search

import (
	"fmt"
	"strings"
	"unicode"
)

// pathExpr is a stand-in evaluator for tests: unions of dotted paths over
// JSON, with choice types (".as(T)", "as T", "ofType(T)") and one-equality
// where(). It knows no FHIR types beyond those a choice name gives.
type pathExpr struct {
	terms [][]step
}

type step struct {
	name      string // element name; "" for the resource itself
	choice    string // the type of a choice element, when given
	whereKey  string
	whereWant string
}

func compilePath(expr string) (Expression, error) {
	var x pathExpr
	for _, term := range splitTop(expr, '|') {
		term = strings.TrimSpace(term)
		if strings.HasPrefix(term, "(") {
			term = strings.TrimSuffix(term[1:], ")")
		}
		asType := ""
		if before, after, ok := strings.Cut(term, " as "); ok {
			term, asType = strings.TrimSpace(before), strings.TrimSpace(after)
		}
		var steps []step
		parts := splitTop(term, '.')
		for i, p := range parts {
			switch {
			case i == 0 && p != "" && unicode.IsUpper(rune(p[0])):
				steps = append(steps, step{}) // the resource type
			case strings.HasPrefix(p, "as(") || strings.HasPrefix(p, "ofType("):
				t := p[strings.IndexByte(p, '(')+1 : len(p)-1]
				steps[len(steps)-1].choice = t
			case strings.HasPrefix(p, "where(resolve() is "):
				steps[len(steps)-1].whereKey = "reference"
				steps[len(steps)-1].whereWant = strings.TrimSuffix(p[len("where(resolve() is "):], ")") + "/"
			case strings.HasPrefix(p, "where("):
				cond := p[6 : len(p)-1]
				k, v, ok := strings.Cut(cond, "=")
				if !ok {
					return nil, fmt.Errorf("stub: cannot evaluate %q", p)
				}
				steps[len(steps)-1].whereKey = strings.TrimSpace(k)
				steps[len(steps)-1].whereWant = strings.Trim(strings.TrimSpace(v), "'")
			case strings.ContainsAny(p, "()"):
				return nil, fmt.Errorf("stub: cannot evaluate %q", p)
			default:
				steps = append(steps, step{name: p})
			}
		}
		if asType != "" {
			steps[len(steps)-1].choice = asType
		}
		x.terms = append(x.terms, steps)
	}
	return &x, nil
}

func (x *pathExpr) Evaluate(ctx Value) ([]Value, error) {
	var out []Value
	for _, steps := range x.terms {
		focus := []Value{ctx}
		for _, s := range steps {
			var next []Value
			for _, f := range focus {
				m, ok := f.JSON.(map[string]any)
				if !ok {
					continue
				}
				var items []Value
				switch {
				case s.name == "":
					items = []Value{f}
				case s.choice != "":
					t := s.choice
					key := s.name + strings.ToUpper(t[:1]) + t[1:]
					for _, v := range list(m[key]) {
						items = append(items, Value{Type: t, JSON: v})
					}
				default:
					for _, v := range list(m[s.name]) {
						items = append(items, Value{JSON: v})
					}
					if len(items) == 0 {
						for k, v := range m {
							if rest, ok := strings.CutPrefix(k, s.name); ok && rest != "" && unicode.IsUpper(rune(rest[0])) {
								items = append(items, Value{Type: rest, JSON: v})
							}
						}
					}
				}
				for _, it := range items {
					if s.whereKey != "" {
						im, _ := it.JSON.(map[string]any)
						got := str(im[s.whereKey])
						if got != s.whereWant && !(strings.HasSuffix(s.whereWant, "/") && strings.HasPrefix(got, s.whereWant)) {
							continue
						}
					}
					next = append(next, it)
				}
			}
			focus = next
		}
		out = append(out, focus...)
	}
	return out, nil
}
