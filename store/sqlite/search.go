package sqlite

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"carefhir/store"
)

var _ store.Finder = (*Store)(nil)

// Limits that keep one search from growing without bound.
const (
	maxIncludeRounds = store.MaxIncludeRounds // rounds of :iterate includes
	maxIncluded      = store.MaxIncluded      // resources includes add to one page
)

// Find returns a page of the current, non-deleted versions that q selects;
// see store.Finder.
func (s *Store) Find(ctx context.Context, q store.Query) (*store.Page, error) {
	defer s.observe("find", time.Now())
	if s.current == nil || s.current.maxPageBytes == 0 {
		return s.reader.Find(ctx, q)
	}
	// The query is plain data, so its JSON names it whole. One that JSON
	// cannot carry (a NaN) is searched for without the cache.
	key, err := json.Marshal(q)
	if err != nil {
		return s.reader.Find(ctx, q)
	}
	p, gen := s.current.page(key)
	if p != nil {
		return p, nil
	}
	p, err = s.reader.Find(ctx, q)
	if err == nil {
		types, _ := q.Reads() // nil for any type
		s.current.keepPage(string(key), p, types, gen)
	}
	return p, err
}

// Find runs q inside the unit of work.
func (t *tx) Find(ctx context.Context, q store.Query) (p *store.Page, err error) {
	err = t.do(func() error {
		if err := t.flush(); err != nil {
			return err
		}
		p, err = t.s.txRead.Find(ctx, q)
		return err
	})
	return p, err
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
		err := r.stmts.queryRow(ctx, lookupParamSQL, typ, name).Scan(&p.pid, &p.kinds, &p.dateWidth, &p.dateMulti)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return param{}, fmt.Errorf("parameter %s of %s: %w", name, typ, err)
		}
		if r.params != nil {
			r.params.put(k, p, gen)
		}
		return p, nil
	}
}

// limit returns a LIMIT clause of n rows. The number is written into the
// SQL, not bound: SQLite plans with the value bound to a LIMIT parameter
// and so prepares the statement again each time one is bound, which cost
// more than the rest of a search by id. A search's limits are a few page
// sizes, so the statements stay few.
func limit(n int) string { return " LIMIT " + strconv.Itoa(n) }

// maxScanAt caps the count from which a search walks its type rather than
// driving from its most selective condition (planSQL.scanAt).
const maxScanAt = 20000

// from is what every search selects from: current versions.
const from = " FROM resources r"

// lastUpdated returns the expression of the last_updated of the current
// version of resource r. A search reads it only when a clause or the sort
// needs it, and so looks up only the versions of the page's matches.
func lastUpdated(r string) string {
	return "(SELECT last_updated FROM versions WHERE seq = " + r + ".seq)"
}

// countSQL returns the query that counts the matches of q.
func countSQL(q store.Query, lookup paramLookup, estimate estimator) (string, []any, error) {
	cond := planSQL{param: lookup, estimate: estimate}
	cond.arg(q.Type)
	cond.b.WriteString("r.type = ?")
	if err := cond.where(q.Type, "r", q.Where); err != nil {
		return "", nil, err
	}
	return "SELECT count(*)" + from + " WHERE " + cond.b.String(), cond.args, nil
}

// pageQuery is the SQL of a page of a search.
type pageQuery struct {
	query string
	args  []any
	keys  int  // the sort values that follow id, version, last_updated and json
	back  bool // a page before a Prev cursor: its rows come in reverse order
	// walked reports a walk of the type in id order (planSQL.scanAt) that
	// looks at no more than walkBudget resources: a page it does not fill
	// must be read again without walking.
	walked bool
}

// walkBudget returns how many resources a walk for a page of count
// matches looks at before it gives up, given the count from which it
// walks. A condition matching that many resources spread over the type
// fills the page well within it; when they are bunched at the end of the
// id order (ids given in sequence, the newest matching), the search is
// read again driven by its rarest condition, having lost a few
// milliseconds rather than reading the type whole.
func walkBudget(scanAt int) int { return 4 * scanAt }

// pageSQL returns the query of a page of q: the columns id, version,
// last_updated and json, then the sort values; at most Count+1 rows. With
// walk false, the search is not run as a walk of its type.
func pageSQL(q store.Query, lookup paramLookup, estimate estimator, walk bool) (*pageQuery, error) {
	cond := planSQL{param: lookup, estimate: estimate}
	unordered := q.Unordered && len(q.Sort) == 0
	if len(q.Sort) == 0 && walk && !unordered {
		// In id order, a walk of the type stops after the page; the
		// count from which it is the better plan grows with the page.
		cond.scanAt = min(max(100*(q.Count+1), minEstimate), maxScanAt)
	}
	scanAt := cond.scanAt
	cols, err := order(q.Type, q.Sort, lookup)
	if err != nil {
		return nil, err
	}
	var after []any
	var back bool
	if q.Cursor != "" {
		if after, back, err = decodeSearchCursor(q.Cursor, len(cols)); err != nil {
			return nil, err
		}
	}
	// Read in no order, the matches come in the order of their rids when
	// a condition drives; a cursor then holds a rid.
	cond.byRid = unordered
	if rid, ok := lastKey(after).(int64); ok && unordered && !back {
		cond.after = rid
	}
	cond.arg(q.Type)
	cond.b.WriteString("r.type = ?")
	if err := cond.where(q.Type, "r", q.Where); err != nil {
		return nil, err
	}
	if cond.ridOrdered {
		cols = []sortColumn{{"r.rid", false}}
	}
	if _, byID := lastKey(after).(string); after != nil && byID == cond.ridOrdered {
		return nil, fmt.Errorf("search cursor %q: %w", q.Cursor, store.ErrBadCursor)
	}
	pq := &pageQuery{keys: len(cols), walked: cond.walked}
	source, sourceArgs := from, []any(nil)
	start, startArgs := "", []any(nil) // where a walk starts
	if q.Cursor != "" {
		if pq.back = back; pq.back {
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
		// In id order the only key is the id: a walk starts after the
		// cursor.
		start, startArgs = " AND "+ks, kargs
	}
	if pq.walked {
		// The resources of the type, from the start, in the order of the
		// page, up to the walk's budget.
		dir := ""
		if cols[0].desc {
			dir = " DESC"
		}
		// Its columns are those of the resources_id index, which the
		// walk then reads alone, unless a condition needs the row.
		columns := "r.rid, r.type, r.id"
		if cond.rowRead["r"] {
			columns += ", r.deleted, r.seq"
		}
		source = " FROM (SELECT " + columns + " FROM resources r WHERE r.type = ?" + start +
			" ORDER BY r.id" + dir + limit(walkBudget(scanAt)) + ") r"
		sourceArgs = append([]any{q.Type}, startArgs...)
	}
	// The inner query finds and orders the page's rows by their keys (by
	// the names of the key columns, so that each key is computed once per
	// row); the outer one reads the rows and versions of those only, so a
	// sort of many matches never carries their bodies.
	var sel, by strings.Builder
	sel.WriteString("SELECT r.rid, r.id")
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
	body, versions := "v.last_updated, v.json", " JOIN versions v ON v.seq = cur.seq"
	if q.IDsOnly {
		// The rows of the versions, which hold the bodies, are not read.
		body, versions = "0, NULL", ""
	}
	pq.query = "SELECT page.id, cur.version, " + body + strings.Join(keys, "") +
		" FROM (" + sel.String() + source + " WHERE " + cond.b.String() + " ORDER BY " + by.String() + limit(q.Count+1) + ") page" +
		" JOIN resources cur ON cur.rid = page.rid" + versions + " ORDER BY " + by.String()
	pq.args = append(sourceArgs, cond.args...)
	return pq, nil
}

func (r *reader) find(ctx context.Context, q store.Query) (*store.Page, error) {
	page := &store.Page{Total: -1, Matches: []*store.Version{}}
	lookup := r.lookup(ctx)
	if q.Total != store.TotalNone {
		query, args, err := countSQL(q, lookup, r.estimator(ctx))
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
	pq, err := pageSQL(q, lookup, r.estimator(ctx), true)
	if err != nil {
		return nil, err
	}
	matches, keys, more, err := r.page(ctx, pq, q)
	if err != nil {
		return nil, err
	}
	if pq.walked && !more {
		// The walk gave up, or reached the end of the type.
		if pq, err = pageSQL(q, lookup, r.estimator(ctx), false); err != nil {
			return nil, err
		}
		if matches, keys, more, err = r.page(ctx, pq, q); err != nil {
			return nil, err
		}
	}
	page.Matches = matches
	if n := len(keys); n > 0 {
		if more || pq.back {
			page.Next = encodeSearchCursor(keys[n-1], false)
		}
		if more && pq.back || !pq.back && q.Cursor != "" {
			page.Prev = encodeSearchCursor(keys[0], true)
		}
	}
	if len(page.Matches) > 0 && (len(q.Include) > 0 || len(q.RevInclude) > 0) {
		if page.Included, page.IncludedCut, err = r.include(ctx, q, page.Matches); err != nil {
			return nil, fmt.Errorf("include: %w", err)
		}
	}
	return page, nil
}

// page runs pq, the query of a page of q, and returns its matches in the
// search's order, the sort values of each, and whether more follow.
func (r *reader) page(ctx context.Context, pq *pageQuery, q store.Query) (matches []*store.Version, keys [][]any, more bool, err error) {
	rows, err := r.stmts.query(ctx, pq.query, pq.args...)
	if err != nil {
		return nil, nil, false, err
	}
	defer rows.Close()
	matches = []*store.Version{}
	for rows.Next() {
		if len(matches) == q.Count {
			more = true
			break
		}
		v := &store.Version{Type: q.Type}
		var ms int64
		k := make([]any, pq.keys)
		dest := []any{&v.ID, &v.VersionID, &ms, &v.JSON}
		for i := range k {
			dest = append(dest, &k[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, nil, false, err
		}
		if !q.IDsOnly {
			v.LastUpdated = fromMillis(ms)
		}
		matches = append(matches, v)
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, false, err
	}
	if pq.back {
		slices.Reverse(matches)
		slices.Reverse(keys)
	}
	return matches, keys, more, nil
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
	switch values[n-1].(type) {
	case string, int64: // the id, or the rid of an unordered search
	default:
		return nil, false, bad
	}
	return values, c.Back, nil
}

// lastKey returns the last of the sort values of a cursor, which breaks
// ties: an id, or a rid; nil without a cursor.
func lastKey(keys []any) any {
	if len(keys) == 0 {
		return nil
	}
	return keys[len(keys)-1]
}

// include returns the resources that q's Include and RevInclude add to a
// page of matches, each once and none of the matches, and whether it
// stopped at maxIncluded or maxIncludeRounds with more to add.
func (r *reader) include(ctx context.Context, q store.Query, matches []*store.Version) (out []*store.Version, cut bool, err error) {
	lookup := r.lookup(ctx)
	seen := map[string]bool{}
	for _, v := range matches {
		seen[v.Type+"/"+v.ID] = true
	}
	frontier := matches
	round := 0
	for ; round < maxIncludeRounds && len(frontier) > 0; round++ {
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
					return nil, false, err
				}
				query += " AND pid = ?"
				args = append(args, pr.pid)
			}
			refs, err := r.strings(ctx, query, args...)
			if err != nil {
				return nil, false, err
			}
			slices.Sort(refs)
			for _, ref := range refs {
				ref = strings.TrimPrefix(ref, store.RefTyped)
				if t, _, _ := strings.Cut(ref, "/"); inc.Target == "" || inc.Target == t {
					want(ref)
				}
			}
			if len(inc.Canonical) > 0 {
				if err := r.includeCanonicals(ctx, lookup, inc, ids, want); err != nil {
					return nil, false, err
				}
			}
		}
		for _, inc := range q.RevInclude {
			if round > 0 && !inc.Iterate {
				continue
			}
			var keys []any
			for _, v := range frontier {
				if inc.Target == "" || inc.Target == v.Type {
					keys = append(keys, store.RefTyped+v.Type+"/"+v.ID)
				}
			}
			if len(keys) == 0 {
				continue
			}
			pr, err := lookup(inc.Type, inc.Param)
			if err != nil {
				return nil, false, err
			}
			// Enough to fill the page's includes and tell whether there
			// were more, past those already seen, rather than every
			// resource naming the frontier (a patient's lifetime of
			// Observations, to keep a thousand).
			limit := maxIncluded - len(out) + len(seen) + 1
			ids, err := r.strings(ctx, "SELECT DISTINCT r.id FROM refs JOIN resources r ON r.rid = refs.rid WHERE refs.pid = ? AND refs.key IN ("+placeholders(len(keys))+") ORDER BY r.id LIMIT ?",
				slices.Concat([]any{pr.pid}, keys, []any{limit})...)
			if err != nil {
				return nil, false, err
			}
			if len(inc.Canonical) > 0 {
				more, err := r.revincludeCanonicals(ctx, lookup, inc, pr.pid, frontier, limit)
				if err != nil {
					return nil, false, err
				}
				ids = append(ids, more...)
			}
			for _, id := range ids {
				want(inc.Type + "/" + id)
			}
		}
		for i, t := range order {
			ids := targets[t][:min(len(targets[t]), maxIncluded-len(out))]
			cut = len(ids) < len(targets[t]) || i < len(order)-1 || q.Iterates()
			found, err := r.current(ctx, t, ids)
			if err != nil {
				return nil, false, err
			}
			for _, id := range ids {
				if v := found[id]; v != nil {
					out = append(out, v)
					next = append(next, v)
				}
			}
			if len(out) >= maxIncluded {
				return out, cut, nil
			}
		}
		frontier = next
	}
	return out, round == maxIncludeRounds && len(frontier) > 0 && q.Iterates(), nil
}

// includeCanonicals calls want with each resource of inc.Canonical that
// the canonical urls in parameter inc.Param of the resources of inc.Type
// with the given ids name (see store.Include), "Type/id", in id order
// by type.
func (r *reader) includeCanonicals(ctx context.Context, lookup paramLookup, inc store.Include, ids []any, want func(string)) error {
	pr, err := lookup(inc.Type, inc.Param)
	if err != nil {
		return err
	}
	rows, err := r.stmts.query(ctx, "SELECT rid, key FROM refs WHERE pid = ? AND rid IN (SELECT rid FROM resources WHERE type = ? AND id IN ("+placeholders(len(ids))+")) AND key >= 'u' AND key < 'v' ORDER BY rid, key",
		append([]any{pr.pid, inc.Type}, ids...)...)
	if err != nil {
		return err
	}
	byRID := map[int64][]string{}
	var rids []int64
	for rows.Next() {
		var rid int64
		var key string
		if err := rows.Scan(&rid, &key); err != nil {
			rows.Close()
			return err
		}
		if _, ok := byRID[rid]; !ok {
			rids = append(rids, rid)
		}
		byRID[rid] = append(byRID[rid], key)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	// Each url, and each url and version, once: a page of resources
	// naming the same few canonicals names them once. They are passed as
	// JSON arrays, one variable each, however many the page names.
	plain, pairs := map[string]bool{}, map[[2]string]bool{}
	for _, rid := range rids {
		urls, versions := store.CanonicalKeys(byRID[rid])
		for i, url := range urls {
			if versions[i] == "" {
				plain[url] = true
			} else {
				pairs[[2]string{url, versions[i]}] = true
			}
		}
	}
	if len(plain) == 0 && len(pairs) == 0 {
		return nil
	}
	plainJSON, _ := json.Marshal(slices.Sorted(maps.Keys(plain))) // strings always marshal
	pairList := slices.SortedFunc(maps.Keys(pairs), func(a, b [2]string) int { return cmp.Compare(a[0]+"|"+a[1], b[0]+"|"+b[1]) })
	pairsJSON, _ := json.Marshal(pairList)
	for _, t := range inc.Canonical {
		url, err := lookup(t, "url")
		if err != nil {
			return err
		}
		var found []string
		if len(plain) > 0 {
			some, err := r.strings(ctx, "SELECT r.id FROM uris u JOIN resources r ON r.rid = u.rid WHERE u.pid = ? AND u.value IN (SELECT value FROM json_each(?))",
				url.pid, string(plainJSON))
			if err != nil {
				return err
			}
			found = append(found, some...)
		}
		if len(pairs) > 0 {
			version, err := lookup(t, "version")
			if err != nil {
				return err
			}
			// The urls of the pairs, which the index of uris finds, then
			// each url with its version.
			some, err := r.strings(ctx, "SELECT r.id FROM uris u JOIN tokens v ON v.rid = u.rid AND v.pid = ? JOIN resources r ON r.rid = u.rid WHERE u.pid = ? AND u.value IN (SELECT json_extract(value, '$[0]') FROM json_each(?)) AND (u.value, v.code) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))",
				version.pid, url.pid, string(pairsJSON), string(pairsJSON))
			if err != nil {
				return err
			}
			found = append(found, some...)
		}
		slices.Sort(found)
		for _, id := range slices.Compact(found) {
			want(t + "/" + id)
		}
	}
	return nil
}

// revincludeCanonicals returns the ids of the first limit resources of
// inc.Type whose parameter inc.Param (pid) names by canonical url a
// resource of inc.Canonical among vs (see store.Include), in id order: by
// its url and version, or by its url alone where they name no version of
// it.
func (r *reader) revincludeCanonicals(ctx context.Context, lookup paramLookup, inc store.Include, pid int64, vs []*store.Version, limit int) ([]string, error) {
	var versioned, plain []any
	for _, t := range inc.Canonical {
		var ids []any
		for _, v := range vs {
			if v.Type == t {
				ids = append(ids, v.ID)
			}
		}
		if len(ids) == 0 {
			continue
		}
		url, err := lookup(t, "url")
		if err != nil {
			return nil, err
		}
		version, err := lookup(t, "version")
		if err != nil {
			return nil, err
		}
		rows, err := r.stmts.query(ctx, "SELECT u.value, coalesce(v.code, '') FROM uris u JOIN resources r ON r.rid = u.rid LEFT JOIN tokens v ON v.rid = u.rid AND v.pid = ? WHERE u.pid = ? AND r.type = ? AND r.id IN ("+placeholders(len(ids))+")",
			append([]any{version.pid, url.pid, t}, ids...)...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var u, ver string
			if err := rows.Scan(&u, &ver); err != nil {
				rows.Close()
				return nil, err
			}
			plain = append(plain, store.RefURL+u)
			if ver != "" {
				versioned = append(versioned, store.RefURL+u+"|"+ver)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	if len(plain) == 0 {
		return nil, nil
	}
	// A url alone stands for every version unless the resource names
	// one of that url: then it is stored beside the url with its version.
	keys := slices.Concat(versioned, plain)
	return r.strings(ctx, "SELECT DISTINCT r.id FROM refs f JOIN resources r ON r.rid = f.rid WHERE f.pid = ? AND f.key IN ("+placeholders(len(keys))+") AND (f.key IN ("+placeholders(len(versioned))+
		") OR NOT EXISTS (SELECT 1 FROM refs o WHERE o.rid = f.rid AND o.pid = f.pid AND o.key > f.key || '|' AND o.key < f.key || '}')) ORDER BY r.id LIMIT ?",
		slices.Concat([]any{pid}, keys, versioned, []any{limit})...)
}

// current returns the current, non-deleted versions of the resources of
// type typ with the given ids, by id, in one query: an include adds up to
// maxIncluded of them to a page, which read one by one cost a statement
// each.
func (r *reader) current(ctx context.Context, typ string, ids []string) (map[string]*store.Version, error) {
	found := map[string]*store.Version{}
	if len(ids) == 0 {
		return found, nil
	}
	list, _ := json.Marshal(ids) // strings always marshal
	vs, err := r.versions(ctx, typ, currentSelect+` AND r.id IN (SELECT value FROM json_each(?))`, typ, string(list))
	for _, v := range vs {
		found[v.ID] = v
	}
	return found, err
}

// currentSelect selects the current, non-deleted versions of a type (the
// first argument), in the columns versions reads.
const currentSelect = `SELECT r.id, r.version, v.last_updated, v.json FROM resources r JOIN versions v ON v.seq = r.seq
WHERE r.type = ? AND r.deleted = 0`

// versions runs query, which selects the id, version, last_updated and
// json of versions of typ, and returns them.
func (r *reader) versions(ctx context.Context, typ, query string, args ...any) ([]*store.Version, error) {
	rows, err := r.stmts.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*store.Version
	for rows.Next() {
		v := &store.Version{Type: typ}
		var ms int64
		if err := rows.Scan(&v.ID, &v.VersionID, &ms, &v.JSON); err != nil {
			return nil, err
		}
		v.LastUpdated = fromMillis(ms)
		out = append(out, v)
	}
	return out, rows.Err()
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
