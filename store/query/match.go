package query

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// Match reports whether a resource with the given id, lastUpdated and index
// values satisfies clause c; it is the reference meaning of a clause that
// engines implement. ok is false for a Chain or Has clause, which needs the
// resources they point to or from.
func Match(c *Clause, id string, lastUpdated time.Time, ix *Index) (match, ok bool) {
	if c.Chain != nil || c.Has != nil {
		return false, false
	}
	if c.Any != nil {
		for i := range c.Any {
			m, ok := Match(&c.Any[i], id, lastUpdated, ix)
			if !ok {
				return false, false
			}
			if m {
				return !c.Not, true
			}
		}
		return c.Not, true
	}
	if c.Presence != PresenceAny {
		return HasValue(ix, c.Param) == (c.Presence == Present), true
	}
	return holds(c, id, lastUpdated, ix) != c.Not, true
}

// holds reports whether some match of c holds.
func holds(c *Clause, id string, lastUpdated time.Time, ix *Index) bool {
	switch c.Param {
	case "_id":
		return slices.ContainsFunc(c.Tokens, func(m TokenMatch) bool { return m.AnyCode || m.Code == id })
	case "_lastUpdated":
		v := Date{Low: lastUpdated, High: lastUpdated}
		return slices.ContainsFunc(c.Dates, func(m DateMatch) bool { return m.Holds(v) })
	}
	for _, m := range c.Tokens {
		if slices.ContainsFunc(ix.Tokens, func(t Token) bool { return t.Param == c.Param && m.Holds(t) }) {
			return true
		}
	}
	for _, m := range c.Strings {
		if slices.ContainsFunc(ix.Strings, func(s String) bool { return s.Param == c.Param && m.Holds(s) }) {
			return true
		}
	}
	for _, m := range c.Dates {
		if slices.ContainsFunc(ix.Dates, func(d Date) bool { return d.Param == c.Param && m.Holds(d) }) {
			return true
		}
	}
	for _, m := range c.Numbers {
		if slices.ContainsFunc(ix.Numbers, func(n Number) bool { return n.Param == c.Param && m.Holds(n.Value) }) {
			return true
		}
	}
	for _, m := range c.Quantities {
		if slices.ContainsFunc(ix.Quantities, func(q Quantity) bool { return q.Param == c.Param && m.Holds(q) }) {
			return true
		}
	}
	for _, m := range c.References {
		if slices.ContainsFunc(ix.References, func(r Reference) bool { return r.Param == c.Param && m.Holds(r) }) {
			return true
		}
	}
	for _, m := range c.URIs {
		if slices.ContainsFunc(ix.URIs, func(u URI) bool { return u.Param == c.Param && m.Holds(u.Value) }) {
			return true
		}
	}
	for _, m := range c.Composites {
		if slices.ContainsFunc(ix.Composites, func(x Composite) bool { return x.Param == c.Param && m.Holds(x) }) {
			return true
		}
	}
	return false
}

// HasValue reports whether ix holds a value of parameter param.
func HasValue(ix *Index, param string) bool {
	return slices.ContainsFunc(ix.Tokens, func(v Token) bool { return v.Param == param }) ||
		slices.ContainsFunc(ix.Strings, func(v String) bool { return v.Param == param }) ||
		slices.ContainsFunc(ix.Dates, func(v Date) bool { return v.Param == param }) ||
		slices.ContainsFunc(ix.Numbers, func(v Number) bool { return v.Param == param }) ||
		slices.ContainsFunc(ix.Quantities, func(v Quantity) bool { return v.Param == param }) ||
		slices.ContainsFunc(ix.References, func(v Reference) bool { return v.Param == param }) ||
		slices.ContainsFunc(ix.URIs, func(v URI) bool { return v.Param == param }) ||
		slices.ContainsFunc(ix.Composites, func(v Composite) bool { return v.Param == param })
}

// Holds reports whether token t meets m.
func (m TokenMatch) Holds(t Token) bool {
	return (m.AnySystem || m.System == t.System) && (m.AnyCode || m.Code == t.Code)
}

// Holds reports whether string s meets m.
func (m StringMatch) Holds(s String) bool {
	switch m.Mode {
	case StringExact:
		return s.Exact == m.Value
	case StringContains:
		return strings.Contains(s.Value, m.Value)
	}
	return strings.HasPrefix(s.Value, m.Value)
}

// Holds reports whether date d meets m (see DateMatch).
func (m DateMatch) Holds(d Date) bool {
	for _, b := range m.Bounds() {
		v := d.Low
		if b.High {
			v = d.High
		}
		if !compare(v.Compare(b.At.(time.Time)), b.Op) {
			return false
		}
	}
	return true
}

// Holds reports whether number v meets m (see NumberMatch).
func (m NumberMatch) Holds(v float64) bool { return m.HoldsInterval(v, v) }

// HoldsInterval reports whether the interval [low, high] meets m (see
// NumberMatch).
func (m NumberMatch) HoldsInterval(low, high float64) bool {
	for _, b := range m.Bounds() {
		v := low
		if b.High {
			v = high
		}
		if !compare(cmp.Compare(v, b.At.(float64)), b.Op) {
			return false
		}
	}
	return true
}

// compare reports whether a comparison result c (-1, 0, 1) passes op.
func compare(c int, op string) bool {
	switch op {
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	}
	return c >= 0
}

// Holds reports whether quantity q meets m.
func (m QuantityMatch) Holds(q Quantity) bool {
	if m.Code != "" {
		if m.System != "" && (q.System != m.System || q.Code != m.Code) {
			return false
		}
		if m.System == "" && q.Code != m.Code && q.Unit != m.Code {
			return false
		}
	}
	return m.NumberMatch.HoldsInterval(q.Ends())
}

// Holds reports whether reference r meets m.
func (m ReferenceMatch) Holds(r Reference) bool {
	if m.URL != "" {
		return r.URL == m.URL
	}
	return r.URL == "" && r.Type == m.Type && (m.AnyID() || r.ID == m.ID)
}

// Holds reports whether composite x meets m.
func (m CompositeMatch) Holds(x Composite) bool {
	switch {
	case m.Prefix:
		n := len(m.Parts)
		return n > 0 && len(x.Parts) == n && slices.Equal(x.Parts[:n-1], m.Parts[:n-1]) &&
			strings.HasPrefix(x.Parts[n-1], m.Parts[n-1]) && x.Quantity == nil && x.Date == nil
	case !slices.Equal(x.Parts, m.Parts):
		return false
	case m.Quantity != nil:
		return x.Quantity != nil && m.Quantity.Holds(*x.Quantity)
	case m.Date != nil:
		return x.Date != nil && m.Date.Holds(*x.Date)
	}
	return x.Quantity == nil && x.Date == nil
}

// Holds reports whether uri u meets m.
func (m URIMatch) Holds(u string) bool {
	switch m.Mode {
	case URIBelow:
		return strings.HasPrefix(u, m.Value)
	case URIAbove:
		return strings.HasPrefix(m.Value, u)
	}
	return u == m.Value
}
