package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"carefhir/store"
)

// indexColumns are the columns of each search table that a row fills
// between pid and rid, in the order of searchTables.
var indexColumns = map[kind][]string{
	kindToken:     {"code", "system"},
	kindString:    {"value", "exact"},
	kindDate:      {"low", "high"},
	kindNumber:    {"value"},
	kindQuantity:  {"value", "system", "code", "unit"},
	kindRef:       {"key"},
	kindURI:       {"value"},
	kindComposite: {"key", "value", "system", "code", "unit", "low", "high", "value_high"},
	kindRange:     {"low", "high", "system", "code", "unit"},
}

// The search rows of a unit of work are inserted together, many per
// INSERT: each statement costs its binding, database/sql and VDBE set-up
// whatever rows it writes, and an audit batch or a transaction bundle
// writes a few rows into each table for each of its resources. An INSERT
// writes maxRows rows, or a power of two of them down to maxExact, or
// exactly as many as are left up to maxExact: at most a handful of
// statements per table and unit, from few prepared ones. 128 rows of the
// widest table bind 1,280 variables, far below SQLite's limit.
const (
	maxRows  = 128
	maxExact = 16
)

// insertShape names the INSERT of rows rows into the search table of kind k.
type insertShape struct {
	k    kind
	rows int
}

// indexStmts write the search tables: the inserts of each table, by
// number of rows, prepared on the writer connection when first needed, and
// one delete of a resource's rows.
//
// add holds back the rows it is given until a table has maxRows of them,
// and flush inserts the rest: the unit of work flushes before it ends and
// before anything in it searches, and remove before it deletes the rows of
// a resource that has rows held back. Every search inside the unit so sees
// the rows written before it.
type indexStmts struct {
	conn    *sql.Conn
	params  paramIDs
	insert  map[insertShape]*sql.Stmt
	delete  []*sql.Stmt
	rows    map[kind][]any // the arguments of the rows add is building, by table
	pending map[kind][]any // the arguments of the rows held back, by table
	// pendingRIDs holds the resources with rows held back, if any.
	pendingRIDs map[int64]struct{}
}

func prepareIndex(ctx context.Context, c *sql.Conn) (st *indexStmts, err error) {
	st = &indexStmts{
		conn:        c,
		params:      paramIDs{cache: map[paramKey]param{}},
		insert:      map[insertShape]*sql.Stmt{},
		rows:        map[kind][]any{},
		pending:     map[kind][]any{},
		pendingRIDs: map[int64]struct{}{},
	}
	defer func() {
		if err != nil {
			st.close()
			err = fmt.Errorf("sqlite: prepare: %w", err)
		}
	}()
	prepare := func(q string) (*sql.Stmt, error) { return c.PrepareContext(ctx, q) }
	if st.params.lookup, err = prepare(lookupParamSQL); err != nil {
		return st, err
	}
	if st.params.insert, err = prepare(insertParamSQL); err != nil {
		return st, err
	}
	if st.params.update, err = prepare(updateParamSQL); err != nil {
		return st, err
	}
	for _, t := range searchTables {
		del, err := prepare(`DELETE FROM ` + t.name + ` WHERE rid = ?`)
		if err != nil {
			return st, err
		}
		st.delete = append(st.delete, del)
	}
	return st, nil
}

func (st *indexStmts) close() {
	for _, s := range []*sql.Stmt{st.params.lookup, st.params.insert, st.params.update} {
		if s != nil {
			s.Close()
		}
	}
	for _, s := range st.insert {
		s.Close()
	}
	for _, s := range st.delete {
		s.Close()
	}
}

// remove deletes the search rows of resource rid.
func (st *indexStmts) remove(ctx context.Context, rid int64) error {
	if _, ok := st.pendingRIDs[rid]; ok {
		if err := st.flush(ctx); err != nil {
			return err
		}
	}
	for _, d := range st.delete {
		if _, err := d.ExecContext(ctx, rid); err != nil {
			return err
		}
	}
	return nil
}

// add writes the search rows of ix for resource rid of type typ, holding
// back those of each table that do not fill an INSERT of maxRows.
func (st *indexStmts) add(ctx context.Context, typ string, rid int64, ix *store.Index) error {
	for k, args := range st.rows {
		st.rows[k] = args[:0]
	}
	ridArg := any(rid) // boxed once for all the resource's rows
	err := eachRow(ix, func(k kind, name string, values []any) error {
		pid, err := st.params.id(ctx, typ, name, k)
		if err != nil {
			return err
		}
		st.rows[k] = append(append(append(st.rows[k], pid), values...), ridArg)
		return nil
	})
	if err != nil {
		return err
	}
	if err := st.params.noteDates(ctx, typ, ix.Dates); err != nil {
		return err
	}
	for _, t := range searchTables {
		rows := st.rows[t.kind]
		if len(rows) == 0 {
			continue
		}
		sortRows(rows, len(indexColumns[t.kind])+2)
		if err := st.insertRows(ctx, t, append(st.pending[t.kind], rows...), false); err != nil {
			return err
		}
	}
	st.pendingRIDs[rid] = struct{}{}
	return nil
}

// flush inserts the rows held back.
func (st *indexStmts) flush(ctx context.Context) error {
	if len(st.pendingRIDs) == 0 {
		return nil
	}
	for _, t := range searchTables {
		if err := st.insertRows(ctx, t, st.pending[t.kind], true); err != nil {
			return err
		}
	}
	clear(st.pendingRIDs)
	return nil
}

// discard forgets the rows held back, which the unit of work they belong
// to has rolled back.
func (st *indexStmts) discard() {
	for k, args := range st.pending {
		clear(args)
		st.pending[k] = args[:0]
	}
	clear(st.pendingRIDs)
}

// sortRows orders the rows of one table, width arguments each (pid, the
// value columns, rid), by parameter and first value column: the leading
// columns of the table's primary key. A resource with many values of a
// parameter (a Group's members, an AuditEvent's entities) then inserts
// them in key order, each next to the one before, so that SQLite finds
// its place on the leaf page it is on rather than descending the B-tree
// again for each (a tenth of the time seeking, for a Group of 100,000
// members written to an empty database).
func sortRows(args []any, width int) {
	switch n := len(args) / width; {
	case n <= 1:
	case n <= maxInsertionSort:
		// Most resources make a few rows a table: sorted in place, without
		// the slices that sorting by keys allocates.
		insertionSortRows(args, width)
	default:
		sortRowsByKeys(args, width)
	}
}

// insertionSortRows sorts rows as sortRowsByKeys does, in place.
func insertionSortRows(args []any, width int) {
	for i := width; i < len(args); i += width {
		for j := i; j > 0 && compareRowOrder(sortKey(args, j), sortKey(args, j-width)) < 0; j -= width {
			a, b := args[j:j+width], args[j-width:j]
			for c := range a {
				a[c], b[c] = b[c], a[c]
			}
		}
	}
}

// sortRowsByKeys sorts rows by their keys, rows of equal keys in the order
// they were in.
func sortRowsByKeys(args []any, width int) {
	keys := make([]rowOrder, len(args)/width)
	for i := range keys {
		keys[i] = sortKey(args, i*width)
	}
	slices.SortFunc(keys, func(a, b rowOrder) int {
		if c := compareRowOrder(a, b); c != 0 {
			return c
		}
		return cmp.Compare(a.at, b.at)
	})
	sorted := make([]any, 0, len(args))
	for _, k := range keys {
		sorted = append(sorted, args[k.at:k.at+width]...)
	}
	copy(args, sorted)
}

// maxInsertionSort is the most rows sortRows sorts in place.
const maxInsertionSort = 16

// rowOrder is what sortRows orders a row by, and where the row starts.
type rowOrder struct {
	pid  int64
	num  float64
	text string
	at   int
}

// sortKey returns the key of the row that starts at args[at].
func sortKey(args []any, at int) rowOrder {
	k := rowOrder{at: at}
	k.pid, _ = args[at].(int64)
	switch v := args[at+1].(type) {
	case string:
		k.text = v
	case int64:
		k.num = float64(v)
	case float64:
		k.num = v
	}
	return k
}

// compareRowOrder orders two rows by parameter, then by first value.
func compareRowOrder(a, b rowOrder) int {
	if c := cmp.Compare(a.pid, b.pid); c != 0 {
		return c
	}
	if c := cmp.Compare(a.num, b.num); c != 0 {
		return c
	}
	return strings.Compare(a.text, b.text)
}

// eachRow calls row with the search table, parameter and column values
// (those of indexColumns) of every row ix makes, stopping at its first
// error. The values are in a slice that eachRow reuses for the next row:
// row copies what it keeps.
func eachRow(ix *store.Index, row func(k kind, param string, values []any) error) error {
	// One slice for every row, where a variadic row would allocate one a
	// row: a write makes a dozen rows or more, and each costs the writer
	// its allocations.
	values := make([]any, len(indexColumns[kindComposite]))
	for _, t := range ix.Tokens {
		values[0], values[1] = t.Code, t.System
		if err := row(kindToken, t.Param, values[:2]); err != nil {
			return err
		}
	}
	for _, s := range ix.Strings {
		values[0], values[1] = s.Value, s.Exact
		if err := row(kindString, s.Param, values[:2]); err != nil {
			return err
		}
	}
	for _, d := range ix.Dates {
		values[0], values[1] = d.Low.UnixMilli(), d.High.UnixMilli()
		if err := row(kindDate, d.Param, values[:2]); err != nil {
			return err
		}
	}
	for _, n := range ix.Numbers {
		values[0] = n.Value
		if err := row(kindNumber, n.Param, values[:1]); err != nil {
			return err
		}
	}
	for _, q := range ix.Quantities {
		k, n := kindQuantity, copy(values, []any{q.Value, q.System, q.Code, q.Unit})
		if q.Range {
			k, n = kindRange, copy(values, []any{q.Value, q.High, q.System, q.Code, q.Unit})
		}
		if err := row(k, q.Param, values[:n]); err != nil {
			return err
		}
	}
	for _, r := range ix.References {
		for _, k := range r.Keys() {
			values[0] = k
			if err := row(kindRef, r.Param, values[:1]); err != nil {
				return err
			}
		}
	}
	for _, u := range ix.URIs {
		values[0] = u.Value
		if err := row(kindURI, u.Param, values[:1]); err != nil {
			return err
		}
	}
	for _, c := range ix.Composites {
		var value, system, code, unit, low, high, valueHigh any
		if q := c.Quantity; q != nil {
			value, system, code, unit = q.Value, q.System, q.Code, q.Unit
			if q.Range {
				valueHigh = q.High
			}
		}
		if d := c.Date; d != nil {
			low, high = d.Low.UnixMilli(), d.High.UnixMilli()
		}
		n := copy(values, []any{store.CompositeKey(c.Parts), value, system, code, unit, low, high, valueHigh})
		if err := row(kindComposite, c.Param, values[:n]); err != nil {
			return err
		}
	}
	return nil
}

// insertRows inserts the rows of table t whose arguments args holds, one
// row after the other: all of them, or, unless all, those that fill
// INSERTs of maxRows. It keeps the rest in st.pending, in the space of
// args.
func (st *indexStmts) insertRows(ctx context.Context, t searchTable, args []any, all bool) error {
	width := len(indexColumns[t.kind]) + 2
	rest := args
	for len(rest) >= maxRows*width || all && len(rest) > 0 {
		n := rowsPerInsert(len(rest) / width)
		stmt, err := st.insertStmt(ctx, t, n)
		if err != nil {
			return err
		}
		if _, err := stmt.ExecContext(ctx, rest[:n*width]...); err != nil {
			return err
		}
		rest = rest[n*width:]
	}
	n := copy(args, rest)
	clear(args[n:])
	st.pending[t.kind] = args[:n]
	return nil
}

// rowsPerInsert returns how many of n rows the next INSERT writes.
func rowsPerInsert(n int) int {
	if n <= maxExact {
		return n
	}
	size := maxRows
	for size > n {
		size /= 2
	}
	return size
}

// insertStmt returns the statement that inserts n rows into t, preparing
// it the first time.
func (st *indexStmts) insertStmt(ctx context.Context, t searchTable, n int) (*sql.Stmt, error) {
	shape := insertShape{t.kind, n}
	if s := st.insert[shape]; s != nil {
		return s, nil
	}
	cols := append(append([]string{"pid"}, indexColumns[t.kind]...), "rid")
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	// OR IGNORE: a value listed twice in an index is stored once.
	s, err := st.conn.PrepareContext(ctx, fmt.Sprintf(`INSERT OR IGNORE INTO %s (%s) VALUES %s`, t.name, strings.Join(cols, ", "),
		strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")))
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	st.insert[shape] = s
	return s, nil
}
