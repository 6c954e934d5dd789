package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"carefhir/store"
)

var _ store.Finder = (*Store)(nil)

// Limits that keep one search from growing without bound.
const (
	maxIncludeRounds = 4    // rounds of :iterate includes
	maxIncluded      = 1000 // resources includes add to one page
)

// Find returns a page of the current, non-deleted versions that q selects;
// see store.Finder.
func (s *Store) Find(ctx context.Context, q store.Query) (*store.Page, error) {
	return s.reader.Find(ctx, q)
}

// Find runs q inside the unit of work.
func (t *tx) Find(ctx context.Context, q store.Query) (p *store.Page, err error) {
	err = t.do(func() error { p, err = t.s.txRead.Find(ctx, q); return err })
	return p, err
}

// planSQL builds the SQL of a plan: conditions with their arguments.
type planSQL struct {
	b       strings.Builder
	args    []any
	aliases int
	param   paramLookup
	// probe writes value clauses as correlated probes of the *_rid
	// indexes (EXISTS … WHERE rid = r.rid) instead of as sets of rids.
	probe bool
}

// paramLookup returns a search parameter of a type as stored; a parameter
// without rows is the zero param.
type paramLookup func(typ, name string) (param, error)

func (p *planSQL) arg(v ...any) { p.args = append(p.args, v...) }

// alias returns a new table alias suffix, so that nested queries do not
// shadow each other.
func (p *planSQL) alias() string {
	p.aliases++
	return strconv.Itoa(p.aliases)
}

// where writes the conditions of clauses on the resource r (alias of
// resources) of type typ.
//
// One clause drives: its rids are looked up by a range of its table's key.
// Every other value clause is a probe of the rid index for each candidate:
// left as a set of rids too, SQLite would materialise each set in full (all
// appointments since a date, say) before intersecting them. An equality
// (token or reference) drives when there is one, being the most selective.
func (p *planSQL) where(typ, r string, clauses []store.Clause) error {
	driver := -1
	for i := range clauses {
		if isValueClause(&clauses[i]) && (driver < 0 || isEquality(&clauses[i]) && !isEquality(&clauses[driver])) {
			driver = i
		}
	}
	outer := p.probe
	defer func() { p.probe = outer }()
	for i := range clauses {
		p.b.WriteString(" AND ")
		p.probe = driver >= 0 && i != driver
		if err := p.clause(typ, r, &clauses[i]); err != nil {
			return err
		}
	}
	return nil
}

// isValueClause reports whether c matches values of a search table.
func isValueClause(c *store.Clause) bool {
	return !c.Not && c.Any == nil && c.Chain == nil && c.Has == nil && c.Presence == store.PresenceAny &&
		c.Param != "_id" && c.Param != "_lastUpdated"
}

func isEquality(c *store.Clause) bool {
	return len(c.Tokens) > 0 || len(c.References) > 0
}

// clause writes the condition of one clause.
func (p *planSQL) clause(typ, r string, c *store.Clause) error {
	if c.Not {
		p.b.WriteString("NOT ")
	}
	p.b.WriteString("(")
	defer p.b.WriteString(")")
	switch {
	case c.Any != nil:
		if len(c.Any) == 0 {
			p.b.WriteString("0")
		}
		for i := range c.Any {
			if i > 0 {
				p.b.WriteString(" OR ")
			}
			if err := p.clause(typ, r, &c.Any[i]); err != nil {
				return err
			}
		}
		return nil
	case c.Presence != store.PresenceAny:
		// The parameter has a value when the resource has a row of it in a
		// table of its kinds: a probe of the table's *_rid index per
		// candidate, cheaper than reading every row of the parameter.
		pr, err := p.param(typ, c.Param)
		if err != nil {
			return err
		}
		if c.Presence == store.Missing {
			p.b.WriteString("NOT ")
		}
		p.b.WriteString("(")
		n := 0
		for _, t := range searchTables {
			if pr.kinds&t.kind == 0 {
				continue
			}
			if n > 0 {
				p.b.WriteString(" OR ")
			}
			n++
			fmt.Fprintf(&p.b, "EXISTS (SELECT 1 FROM %s WHERE rid = %s.rid AND pid = ?)", t.name, r)
			p.arg(pr.pid)
		}
		if n == 0 {
			p.b.WriteString("0")
		}
		p.b.WriteString(")")
		return nil
	case c.Chain != nil:
		return p.chain(typ, r, c)
	case c.Has != nil:
		return p.has(typ, r, c.Has)
	case c.Param == "_id":
		ids := make([]any, 0, len(c.Tokens))
		for _, m := range c.Tokens {
			if m.AnyCode {
				p.b.WriteString("1")
				return nil
			}
			ids = append(ids, m.Code)
		}
		fmt.Fprintf(&p.b, "%s.id IN (%s)", r, placeholders(len(ids)))
		p.arg(ids...)
		return nil
	case c.Param == "_lastUpdated":
		// The range on versions_type narrows the ids (any version); the
		// second condition keeps those whose current version is in range.
		inner, args := dateCond("last_updated", "last_updated", c.Dates)
		lu := lastUpdated(r)
		outer, oargs := dateCond(lu, lu, c.Dates)
		fmt.Fprintf(&p.b, "%s.id IN (SELECT id FROM versions WHERE type = ? AND (%s)) AND (%s)", r, inner, outer)
		p.arg(typ)
		p.arg(args...)
		p.arg(oargs...)
		return nil
	}
	// Every alternative selects resources from a search table by a range
	// of its key; their union is the clause.
	pr, err := p.param(typ, c.Param)
	if err != nil {
		return err
	}
	if p.probe {
		p.b.WriteString("EXISTS (")
	} else {
		fmt.Fprintf(&p.b, "%s.rid IN (", r)
	}
	n := 0
	sub := func(table, cond string, args ...any) {
		if n > 0 {
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
	}
	tokens := c.Tokens
	if len(tokens) > maxTokenTerms {
		// A long list (an expanded ValueSet) would pass SQLite's limit of
		// terms in a compound SELECT: its system|code pairs become one
		// lookup through a JSON table, still one key probe per pair.
		// Codes in any system likewise.
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
		cond, args := dateCond("low", "high", []store.DateMatch{m})
		sub("dates", cond, args...)
	}
	for _, m := range c.Numbers {
		cond, args := numberCond(m)
		sub("numbers", cond, args...)
	}
	for _, m := range c.Quantities {
		cond, args := quantityCond(m)
		sub("quantities", cond, args...)
	}
	for _, m := range c.References {
		sub("refs", "key = ?", m.Key())
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
		switch {
		case m.Quantity != nil:
			qc, qa := quantityCond(*m.Quantity)
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
	p.b.WriteString(")")
	return nil
}

// maxTokenTerms is the most token matches a clause writes as one SELECT
// each; beyond it, their system|code pairs are looked up through a JSON
// table. SQLite allows 500 terms in a compound SELECT.
const maxTokenTerms = 64

// prefixEnd follows every string that starts with a given prefix: the
// largest code point, which no UTF-8 text exceeds.
const prefixEnd = "\U0010FFFF"

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
	return strings.Join(or, " OR "), args
}

// quantityCond returns the condition of a quantity match on the columns
// value, system, code and unit.
func quantityCond(m store.QuantityMatch) (string, []any) {
	cond, args := numberCond(m.NumberMatch)
	switch {
	case m.Code == "":
	case m.System != "":
		cond, args = "system = ? AND code = ? AND "+cond, append([]any{m.System, m.Code}, args...)
	default:
		cond, args = "(code = ? OR unit = ?) AND "+cond, append([]any{m.Code, m.Code}, args...)
	}
	return cond, args
}

// numberCond returns the condition of a number match on the column value.
func numberCond(m store.NumberMatch) (string, []any) {
	var conds []string
	var args []any
	for _, b := range m.Bounds() {
		conds = append(conds, "value "+b.Op+" ?")
		args = append(args, b.At)
	}
	return strings.Join(conds, " AND "), args
}

// chain writes a chained clause: the reference is one of the keys of the
// resources the chained query selects.
func (p *planSQL) chain(typ, r string, c *store.Clause) error {
	pr, err := p.param(typ, c.Param)
	if err != nil {
		return err
	}
	fmt.Fprintf(&p.b, "%s.rid IN (SELECT rid FROM refs WHERE pid = ? AND key IN (", r)
	p.arg(pr.pid)
	for i, t := range c.Chain.Types {
		if i > 0 {
			p.b.WriteString(" UNION ALL ")
		}
		a := p.alias()
		fmt.Fprintf(&p.b, "SELECT ? || r%[1]s.id FROM resources r%[1]s WHERE r%[1]s.type = ? AND r%[1]s.deleted = 0", a)
		p.arg(store.RefTyped+t+"/", t)
		if err := p.where(t, "r"+a, c.Chain.Where); err != nil {
			return err
		}
	}
	if len(c.Chain.Types) == 0 {
		p.b.WriteString("SELECT NULL WHERE 0")
	}
	p.b.WriteString("))")
	return nil
}

// has writes a _has clause: the resource is referenced, through h.Param,
// by a resource that h selects.
func (p *planSQL) has(typ, r string, h *store.Has) error {
	pr, err := p.param(h.Type, h.Param)
	if err != nil {
		return err
	}
	prefix := store.RefTyped + typ + "/"
	a := p.alias()
	fmt.Fprintf(&p.b, "%s.id IN (SELECT substr(key, ?) FROM refs WHERE pid = ? AND key >= ? AND key < ? AND rid IN ("+
		"SELECT r%[2]s.rid FROM resources r%[2]s WHERE r%[2]s.type = ? AND r%[2]s.deleted = 0", r, a)
	p.arg(len(prefix)+1, pr.pid, prefix, prefix+prefixEnd, h.Type)
	if err := p.where(h.Type, "r"+a, h.Where); err != nil {
		return err
	}
	p.b.WriteString("))")
	return nil
}

func placeholders(n int) string {
	if n == 0 {
		return "NULL"
	}
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// sortColumn is one key of a search's order.
type sortColumn struct {
	expr string // the column it orders by
	desc bool
}

// order returns the columns of the sort keys of a search of typ, ending
// with the id, ascending unless sorted on _id descending.
func order(typ string, keys []store.SortKey, lookup paramLookup) ([]sortColumn, error) {
	var cols []sortColumn
	for _, k := range keys {
		switch k.Param {
		case "_id":
			return append(cols, sortColumn{"r.id", k.Desc}), nil
		case "_lastUpdated":
			cols = append(cols, sortColumn{lastUpdated("r"), k.Desc})
		default:
			pr, err := lookup(typ, k.Param)
			if err != nil {
				return nil, err
			}
			cols = append(cols, sortColumn{sortValue(pr, k.Desc), k.Desc})
		}
	}
	return append(cols, sortColumn{"r.id", false}), nil
}

// sortValue returns the expression of a resource's sort value for a
// parameter: its smallest value ascending, its largest descending, read
// from the *_rid index of the tables of the parameter's kinds; NULL when it
// has none. The pid is written into the SQL: it is one of the database's
// own integers, and the expression then appears as often as SQL needs it
// without arguments to repeat.
func sortValue(pr param, desc bool) string {
	var parts []string
	for _, t := range searchTables {
		if pr.kinds&t.kind == 0 || t.lo == "" {
			continue
		}
		agg := t.lo
		if desc {
			agg = t.hi
		}
		cond := fmt.Sprintf("rid = r.rid AND pid = %d", pr.pid)
		if t.where != "" {
			cond += " AND " + t.where
		}
		parts = append(parts, fmt.Sprintf("SELECT %s AS v FROM %s WHERE %s", agg, t.name, cond))
	}
	switch len(parts) {
	case 0:
		return "NULL"
	case 1:
		return "(" + parts[0] + ")"
	}
	// A parameter with values in several tables (which the search layer
	// does not write) sorts by the least or greatest of them.
	agg := "min(v)"
	if desc {
		agg = "max(v)"
	}
	return "(SELECT " + agg + " FROM (" + strings.Join(parts, " UNION ALL ") + "))"
}

// Find executes a search plan.
func (r *reader) Find(ctx context.Context, q store.Query) (*store.Page, error) {
	page, err := r.find(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("sqlite: search %s: %w", q.Type, err)
	}
	return page, nil
}

// lookup returns the paramLookup of a search on r.
func (r *reader) lookup(ctx context.Context) paramLookup {
	return func(typ, name string) (param, error) {
		k := paramKey{typ, name}
		var gen uint64
		if r.params != nil {
			p, ok, g := r.params.get(k)
			if ok {
				return p, nil
			}
			gen = g
		}
		var p param
		err := r.stmts.queryRow(ctx, lookupParamSQL, typ, name).Scan(&p.pid, &p.kinds)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return param{}, fmt.Errorf("parameter %s of %s: %w", name, typ, err)
		}
		if r.params != nil {
			r.params.put(k, p, gen)
		}
		return p, nil
	}
}

// from is what every search selects from: current versions.
const from = " FROM resources r"

// lastUpdated returns the expression of the last_updated of the current
// version of resource r. A search reads it only when a clause or the sort
// needs it, and so looks up only the versions of the page's matches.
func lastUpdated(r string) string {
	return "(SELECT last_updated FROM versions WHERE seq = " + r + ".seq)"
}

// countSQL returns the query that counts the matches of q.
func countSQL(q store.Query, lookup paramLookup) (string, []any, error) {
	cond := planSQL{param: lookup}
	cond.arg(q.Type)
	cond.b.WriteString("r.type = ? AND r.deleted = 0")
	if err := cond.where(q.Type, "r", q.Where); err != nil {
		return "", nil, err
	}
	return "SELECT count(*)" + from + " WHERE " + cond.b.String(), cond.args, nil
}

// pageSQL returns the query of a page of q: the columns id, version,
// last_updated and json, then the n sort values; at most Count+1 rows. back
// reports a page before a Prev cursor, whose rows come in reverse order.
func pageSQL(q store.Query, lookup paramLookup) (query string, args []any, n int, back bool, err error) {
	cond := planSQL{param: lookup}
	cols, err := order(q.Type, q.Sort, lookup)
	if err != nil {
		return "", nil, 0, false, err
	}
	cond.arg(q.Type)
	cond.b.WriteString("r.type = ? AND r.deleted = 0")
	if err := cond.where(q.Type, "r", q.Where); err != nil {
		return "", nil, 0, false, err
	}
	if q.Cursor != "" {
		after, b, err := decodeSearchCursor(q.Cursor, len(cols))
		if err != nil {
			return "", nil, 0, false, err
		}
		if back = b; back {
			// Read the page before the cursor in reverse order; NULLs sort
			// first ascending and last descending, so reversing every
			// direction reverses the order exactly.
			for i := range cols {
				cols[i].desc = !cols[i].desc
			}
		}
		ks, kargs := keyset(cols, after)
		cond.b.WriteString(" AND " + ks)
		cond.arg(kargs...)
	}
	// The inner query finds and orders the page's rows by their keys (by
	// the names of the key columns, so that each key is computed once per
	// row); the outer one reads the versions of those rows only, so a sort
	// of many matches never carries their bodies.
	var sel, by strings.Builder
	sel.WriteString("SELECT r.id, r.version, r.seq")
	keys := make([]string, len(cols))
	for i, c := range cols {
		fmt.Fprintf(&sel, ", %s AS k%d", c.expr, i)
		if i > 0 {
			by.WriteString(", ")
		}
		fmt.Fprintf(&by, "k%d", i)
		if c.desc {
			by.WriteString(" DESC")
		}
		keys[i] = fmt.Sprintf(", k%d", i)
	}
	query = "SELECT page.id, page.version, v.last_updated, v.json" + strings.Join(keys, "") +
		" FROM (" + sel.String() + from + " WHERE " + cond.b.String() + " ORDER BY " + by.String() + " LIMIT ?) page" +
		" JOIN versions v ON v.seq = page.seq ORDER BY " + by.String()
	return query, append(cond.args, q.Count+1), len(cols), back, nil
}

func (r *reader) find(ctx context.Context, q store.Query) (*store.Page, error) {
	page := &store.Page{Total: -1, Matches: []*store.Version{}}
	lookup := r.lookup(ctx)
	if q.Total != store.TotalNone {
		query, args, err := countSQL(q, lookup)
		if err != nil {
			return nil, err
		}
		if err := r.stmts.queryRow(ctx, query, args...).Scan(&page.Total); err != nil {
			return nil, err
		}
	}
	if q.Count <= 0 {
		return page, nil
	}
	query, args, ncols, back, err := pageSQL(q, lookup)
	if err != nil {
		return nil, err
	}
	rows, err := r.stmts.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys [][]any // the sort values of each match
	more := false
	for rows.Next() {
		if len(page.Matches) == q.Count {
			more = true
			break
		}
		v := &store.Version{Type: q.Type}
		var ms int64
		k := make([]any, ncols)
		dest := []any{&v.ID, &v.VersionID, &ms, &v.JSON}
		for i := range k {
			dest = append(dest, &k[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		v.LastUpdated = fromMillis(ms)
		page.Matches = append(page.Matches, v)
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if back {
		slices.Reverse(page.Matches)
		slices.Reverse(keys)
	}
	if n := len(keys); n > 0 {
		if more || back {
			page.Next = encodeSearchCursor(keys[n-1], false)
		}
		if more && back || !back && q.Cursor != "" {
			page.Prev = encodeSearchCursor(keys[0], true)
		}
	}
	if len(page.Matches) > 0 && (len(q.Include) > 0 || len(q.RevInclude) > 0) {
		if page.Included, err = r.include(ctx, q, page.Matches); err != nil {
			return nil, fmt.Errorf("include: %w", err)
		}
	}
	return page, nil
}

// keyset returns the condition of the rows after the sort values after:
// for some key, equal on the keys before it and after on it. NULL sorts
// below every value, as SQLite orders it.
func keyset(cols []sortColumn, after []any) (string, []any) {
	var or []string
	var args []any
	for i, c := range cols {
		var and []string
		var aa []any
		for j, before := range cols[:i] {
			if after[j] == nil {
				and = append(and, before.expr+" IS NULL")
				continue
			}
			and = append(and, before.expr+" = ?")
			aa = append(aa, after[j])
		}
		switch v := after[i]; {
		case v == nil && c.desc:
			continue // nothing sorts after NULL descending
		case v == nil:
			and = append(and, c.expr+" IS NOT NULL")
		case c.desc:
			and = append(and, "("+c.expr+" < ? OR "+c.expr+" IS NULL)")
			aa = append(aa, v)
		default:
			and = append(and, c.expr+" > ?")
			aa = append(aa, v)
		}
		or = append(or, "("+strings.Join(and, " AND ")+")")
		args = append(args, aa...)
	}
	if len(or) == 0 {
		return "0", nil
	}
	return "(" + strings.Join(or, " OR ") + ")", args
}

// A search cursor is the JSON object {"k": [sort values of a match], "b":
// true for a Prev cursor}, base64url-encoded. Numbers keep their SQLite
// type: integers (dates in milliseconds) are written as integers, reals
// with an exponent.
type searchCursor struct {
	Keys []any `json:"k"`
	Back bool  `json:"b,omitempty"`
}

func encodeSearchCursor(values []any, back bool) string {
	c := searchCursor{Keys: make([]any, len(values)), Back: back}
	for i, v := range values {
		switch x := v.(type) {
		case []byte:
			c.Keys[i] = string(x)
		case float64:
			c.Keys[i] = json.Number(strconv.FormatFloat(x, 'e', -1, 64))
		default:
			c.Keys[i] = x
		}
	}
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeSearchCursor(s string, n int) ([]any, bool, error) {
	bad := fmt.Errorf("search cursor %q: %w", s, store.ErrBadCursor)
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, false, bad
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	d.DisallowUnknownFields()
	var c searchCursor
	if err := d.Decode(&c); err != nil || len(c.Keys) != n {
		return nil, false, bad
	}
	values := c.Keys
	for i, v := range values {
		switch x := v.(type) {
		case nil, string:
		case json.Number:
			if n, err := x.Int64(); err == nil && !strings.ContainsAny(x.String(), ".eE") {
				values[i] = n
			} else if f, err := x.Float64(); err == nil {
				values[i] = f
			} else {
				return nil, false, bad
			}
		default:
			return nil, false, bad
		}
	}
	if _, ok := values[n-1].(string); !ok { // the id
		return nil, false, bad
	}
	return values, c.Back, nil
}

// include returns the resources that q's Include and RevInclude add to a
// page of matches, each once and none of the matches.
func (r *reader) include(ctx context.Context, q store.Query, matches []*store.Version) ([]*store.Version, error) {
	lookup := r.lookup(ctx)
	seen := map[string]bool{}
	for _, v := range matches {
		seen[v.Type+"/"+v.ID] = true
	}
	frontier := matches
	var out []*store.Version
	for round := 0; round < maxIncludeRounds && len(frontier) > 0; round++ {
		var next []*store.Version
		targets := map[string][]string{} // "Type/id" keys of resources to add
		var order []string
		want := func(ref string) {
			if !seen[ref] {
				seen[ref] = true
				t, id, _ := strings.Cut(ref, "/")
				if _, ok := targets[t]; !ok {
					order = append(order, t)
				}
				targets[t] = append(targets[t], id)
			}
		}
		for _, inc := range q.Include {
			if round > 0 && !inc.Iterate {
				continue
			}
			var ids []any
			for _, v := range frontier {
				if v.Type == inc.Type {
					ids = append(ids, v.ID)
				}
			}
			if len(ids) == 0 {
				continue
			}
			query := "SELECT key FROM refs WHERE rid IN (SELECT rid FROM resources WHERE type = ? AND id IN (" + placeholders(len(ids)) + ")) AND key >= 'r' AND key < 's'"
			args := append([]any{inc.Type}, ids...)
			if inc.Param != "*" {
				pr, err := lookup(inc.Type, inc.Param)
				if err != nil {
					return nil, err
				}
				query += " AND pid = ?"
				args = append(args, pr.pid)
			}
			refs, err := r.strings(ctx, query, args...)
			if err != nil {
				return nil, err
			}
			slices.Sort(refs)
			for _, ref := range refs {
				ref = strings.TrimPrefix(ref, store.RefTyped)
				if t, _, _ := strings.Cut(ref, "/"); inc.Target == "" || inc.Target == t {
					want(ref)
				}
			}
		}
		for _, inc := range q.RevInclude {
			if round > 0 && !inc.Iterate || inc.Param == "*" {
				continue
			}
			var keys []any
			for _, v := range frontier {
				keys = append(keys, store.RefTyped+v.Type+"/"+v.ID)
			}
			pr, err := lookup(inc.Type, inc.Param)
			if err != nil {
				return nil, err
			}
			ids, err := r.strings(ctx, "SELECT DISTINCT r.id FROM refs JOIN resources r ON r.rid = refs.rid WHERE refs.pid = ? AND refs.key IN ("+placeholders(len(keys))+") ORDER BY r.id",
				append([]any{pr.pid}, keys...)...)
			if err != nil {
				return nil, err
			}
			for _, id := range ids {
				want(inc.Type + "/" + id)
			}
		}
		for _, t := range order {
			for _, id := range targets[t] {
				if len(out) >= maxIncluded {
					return out, nil
				}
				v, err := r.Read(ctx, t, id)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return nil, err
				}
				if v.Deleted {
					continue
				}
				out = append(out, v)
				next = append(next, v)
			}
		}
		frontier = next
	}
	return out, nil
}

// strings runs a query of one text column.
func (r *reader) strings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := r.stmts.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
