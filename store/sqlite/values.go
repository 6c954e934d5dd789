package sqlite

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"carefhir/store"
)

// values writes the selects of a term's values from the search tables,
// joined by UNION ALL: each alternative selects resources by a range of its
// table's key. As a probe, each selects 1 for resource r; else, rids.
func (p *planSQL) values(typ, r string, t term) error {
	c := t[0]
	pr, err := p.param(typ, c.Param)
	if err != nil {
		return err
	}
	// Each value is one SELECT of a compound; SQLite allows at most 500
	// terms in one, so a longer list (up to the 1,000 values a search
	// takes) is written as a compound of compounds in chunks.
	n, start := 0, p.b.Len()
	sub := func(table, cond string, args ...any) {
		switch {
		case n > 0 && n%maxCompound == 0:
			p.b.WriteString(") UNION ALL SELECT * FROM (")
		case n > 0:
			p.b.WriteString(" UNION ALL ")
		}
		n++
		if p.probe {
			fmt.Fprintf(&p.b, "SELECT 1 FROM %s WHERE rid = %s.rid AND pid = ? AND %s", table, r, cond)
		} else {
			fmt.Fprintf(&p.b, "SELECT rid FROM %s WHERE pid = ? AND %s", table, cond)
		}
		p.arg(pr.pid)
		p.arg(args...)
		if p.bound != 0 && !p.probe {
			p.b.WriteString(" AND rid > ?")
			p.arg(p.bound)
		}
	}
	if len(t) > 1 {
		// Merged date clauses: one row within every bound.
		var bounds []store.Bound
		for _, c := range t {
			bounds = append(bounds, c.Dates[0].Bounds()...)
		}
		cond, args := dateRowCond(bounds, pr.dateWidth)
		sub("dates", cond, args...)
		return nil
	}
	tokens := c.Tokens
	if len(tokens) > maxListTerms {
		// A long list (an expanded ValueSet, say): its system|code pairs
		// become one lookup through a JSON table, still one key probe per
		// pair. Codes in any system likewise.
		pairs, codes := [][2]string{}, []string{}
		var rest []store.TokenMatch
		for _, m := range tokens {
			switch {
			case m.AnyCode:
				rest = append(rest, m)
			case m.AnySystem:
				codes = append(codes, m.Code)
			default:
				pairs = append(pairs, [2]string{m.Code, m.System})
			}
		}
		if len(pairs) > 0 {
			b, _ := json.Marshal(pairs) // strings always marshal
			sub("tokens", "(code, system) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?))", string(b))
		}
		if len(codes) > 0 {
			b, _ := json.Marshal(codes)
			sub("tokens", "code IN (SELECT value FROM json_each(?))", string(b))
		}
		tokens = rest
	}
	for _, m := range tokens {
		switch {
		case m.AnyCode && m.AnySystem:
			sub("tokens", "1")
		case m.AnyCode:
			sub("tokens", "system = ?", m.System)
		case m.AnySystem:
			sub("tokens", "code = ?", m.Code)
		default:
			sub("tokens", "code = ? AND system = ?", m.Code, m.System)
		}
	}
	for _, m := range c.Strings {
		switch m.Mode {
		case store.StringExact:
			sub("strings", "exact = ?", m.Value)
		case store.StringContains:
			sub("strings", "instr(value, ?) > 0", m.Value)
		default:
			sub("strings", "value >= ? AND value < ?", m.Value, m.Value+prefixEnd)
		}
	}
	for _, m := range c.Dates {
		cond, args := dateRowCond(m.Bounds(), pr.dateWidth)
		sub("dates", cond, args...)
	}
	for _, m := range c.Numbers {
		cond, args := numberCond(m.Bounds(), "value", "value")
		sub("numbers", cond, args...)
	}
	for _, m := range c.Quantities {
		cond, args := quantityCond(m, "value", "value")
		sub("quantities", cond, args...)
		if pr.kinds&kindRange != 0 {
			for _, cond := range rangeConds(m) {
				sub("ranges", cond.sql, cond.args...)
			}
		}
	}
	var refs []store.ReferenceMatch
	for _, m := range c.References {
		if m.AnyID() {
			// A reference to any resource of a type: the keys that
			// start with the type's.
			sub("refs", "key >= ? AND key < ?", m.Key(), m.Key()+prefixEnd)
			continue
		}
		refs = append(refs, m)
	}
	if len(refs) > maxListTerms {
		// The patients of a caseload, say: one lookup through a JSON
		// table, still one key probe per value.
		keys := make([]string, len(refs))
		for i, m := range refs {
			keys[i] = m.Key()
		}
		b, _ := json.Marshal(keys) // strings always marshal
		sub("refs", "key IN (SELECT value FROM json_each(?))", string(b))
	} else {
		for _, m := range refs {
			sub("refs", "key = ?", m.Key())
		}
	}
	for _, m := range c.URIs {
		switch m.Mode {
		case store.URIBelow:
			sub("uris", "value >= ? AND value < ?", m.Value, m.Value+prefixEnd)
		case store.URIAbove:
			sub("uris", "instr(?, value) = 1", m.Value)
		default:
			sub("uris", "value = ?", m.Value)
		}
	}
	for _, m := range c.Composites {
		cond, args := "key = ?", []any{store.CompositeKey(m.Parts)}
		if m.Prefix {
			// The key's last part is the string's: the keys that start
			// with the match's are a range of the index.
			cond, args = "key >= ? AND key < ?", append(args, args[0].(string)+prefixEnd)
		}
		switch {
		case m.Quantity != nil:
			qc, qa := quantityCond(*m.Quantity, "value", "coalesce(value_high, value)")
			cond, args = cond+" AND "+qc, append(args, qa...)
		case m.Date != nil:
			dc, da := dateCond("low", "high", []store.DateMatch{*m.Date})
			cond, args = cond+" AND ("+dc+")", append(args, da...)
		default:
			cond += " AND value IS NULL AND low IS NULL"
		}
		sub("composites", cond, args...)
	}
	if n == 0 {
		p.b.WriteString("SELECT NULL WHERE 0")
	}
	if n > maxCompound {
		sql := p.b.String()
		p.b.Reset()
		p.b.WriteString(sql[:start] + "SELECT * FROM (" + sql[start:] + ")")
	}
	return nil
}

// maxCompound is the most SELECTs values writes in one compound, below
// SQLite's limit of 500.
const maxCompound = 400

// maxListTerms is the most token or reference matches a clause writes as
// one SELECT each. A longer list is bound as one JSON array and looked up
// through json_each, in a statement whose text does not grow with the
// list: a SELECT per value made statements too long for the reader's
// statement cache (a caseload's 200 patients), prepared again for every
// count and page at a cost above running them, and lists past SQLite's
// 500 terms in a compound SELECT would not prepare at all.
const maxListTerms = 8

// prefixEnd follows every string that starts with a given prefix: the
// largest code point, which no UTF-8 text exceeds.
const prefixEnd = "\U0010FFFF"

// dateRowCond returns the condition of a row of dates within every bound.
// The dates key is (pid, low, high, rid), and SQLite scans a range of it
// by one lower and one upper bound of low: the bounds on low are folded
// into those two, and the bounds on high imply their own (low <= high, and
// high - low <= width), so that a range open on low (ge1970-03-01: high >=
// a day) still scans a bounded part of the key.
func dateRowCond(bounds []store.Bound, width int64) (string, []any) {
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	var and []string
	var args []any
	for _, b := range bounds {
		at := b.At.(time.Time).UnixMilli()
		switch {
		case !b.High && b.Op == ">":
			lo = max(lo, at+1)
		case !b.High && b.Op == ">=":
			lo = max(lo, at)
		case !b.High && b.Op == "<":
			hi = min(hi, at-1)
		case !b.High && b.Op == "<=":
			hi = min(hi, at)
		default:
			and = append(and, "high "+b.Op+" ?")
			args = append(args, at)
			switch b.Op {
			case ">", ">=":
				if at >= math.MinInt64+width {
					lo = max(lo, at-width)
				}
			case "<":
				hi = min(hi, at-1)
			case "<=":
				hi = min(hi, at)
			}
		}
	}
	cond := []string{}
	var cargs []any
	if lo != math.MinInt64 {
		cond = append(cond, "low >= ?")
		cargs = append(cargs, lo)
	}
	if hi != math.MaxInt64 {
		cond = append(cond, "low <= ?")
		cargs = append(cargs, hi)
	}
	cond = append(cond, and...)
	if len(cond) == 0 {
		return "1", nil
	}
	return strings.Join(cond, " AND "), append(cargs, args...)
}

// dateCond returns the condition of date matches (ORed) on a low and a
// high column (Unix milliseconds).
func dateCond(low, high string, ms []store.DateMatch) (string, []any) {
	if len(ms) == 0 {
		return "0", nil
	}
	var or []string
	var args []any
	for _, m := range ms {
		var and []string
		for _, b := range m.Bounds() {
			col := low
			if b.High {
				col = high
			}
			and = append(and, col+" "+b.Op+" ?")
			args = append(args, b.At.(time.Time).UnixMilli())
		}
		or = append(or, "("+strings.Join(and, " AND ")+")")
	}
	return balancedOr(or), args
}

// balancedOr joins conditions with OR in groups, so that a long list does
// not build an expression tree deeper than SQLite's limit of 1,000.
func balancedOr(or []string) string {
	const group = 32
	for len(or) > group {
		var next []string
		for i := 0; i < len(or); i += group {
			next = append(next, "("+strings.Join(or[i:min(i+group, len(or))], " OR ")+")")
		}
		or = next
	}
	return strings.Join(or, " OR ")
}

// quantityCond returns the condition of a quantity match on the columns
// system, code and unit, and on low and high, the expressions of the ends
// of a value's interval (the one column value of a Quantity).
func quantityCond(m store.QuantityMatch, low, high string) (string, []any) {
	cond, args := numberCond(m.Bounds(), low, high)
	return unitCond(m, cond, args)
}

// unitCond returns the condition of a quantity match's unit, if it names
// one, before cond.
func unitCond(m store.QuantityMatch, cond string, args []any) (string, []any) {
	switch {
	case m.Code == "":
	case m.System != "":
		cond, args = "system = ? AND code = ? AND "+cond, append([]any{m.System, m.Code}, args...)
	default:
		cond, args = "(code = ? OR unit = ?) AND "+cond, append([]any{m.Code, m.Code}, args...)
	}
	return cond, args
}

// numberCond returns the condition of the bounds of a number match on low
// and high, the expressions of the ends of a value's interval.
func numberCond(bounds []store.Bound, low, high string) (string, []any) {
	var conds []string
	var args []any
	for _, b := range bounds {
		col := low
		if b.High {
			col = high
		}
		conds = append(conds, col+" "+b.Op+" ?")
		args = append(args, b.At)
	}
	return strings.Join(conds, " AND "), args
}

// sqlCond is a condition and its arguments.
type sqlCond struct {
	sql  string
	args []any
}

// rangeConds returns the conditions on the ranges table whose rows,
// together, are those that meet quantity match m, each a range scan of one
// index. SQLite scans the primary key (pid, low, …) by bounds on low, and
// ranges_high by bounds on high. A high end below x implies a low end
// below x, a bound of the key; a high end above x is met by a range that
// starts above x (a range of the key) or by one that starts at or below x
// and ends above it (a range of ranges_high), two conditions.
func rangeConds(m store.QuantityMatch) []sqlCond {
	var rest, above []store.Bound
	for _, b := range m.Bounds() {
		switch {
		case b.High && (b.Op == ">" || b.Op == ">="):
			above = append(above, b)
		case b.High:
			rest = append(rest, b, store.Bound{Op: b.Op, At: b.At})
		default:
			rest = append(rest, b)
		}
	}
	cond := func(bounds ...store.Bound) sqlCond {
		c, args := numberCond(bounds, "low", "high")
		c, args = unitCond(m, c, args)
		return sqlCond{c, args}
	}
	if len(above) == 0 {
		return []sqlCond{cond(rest...)}
	}
	b := above[0]
	atOrBelow := map[string]string{">": "<=", ">=": "<"}[b.Op]
	return []sqlCond{
		cond(append(slices.Clip(rest), store.Bound{Op: b.Op, At: b.At})...),
		cond(append(slices.Clip(rest), b, store.Bound{Op: atOrBelow, At: b.At})...),
	}
}
