package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"carefhir/store"
)

// indexTables are the typed search tables other than tokens, each with the
// columns a row fills after type and param, and before id.
var indexTables = []struct {
	name    string
	columns []string
}{
	{"strings", []string{"value", "exact"}},
	{"dates", []string{"low", "high"}},
	{"numbers", []string{"value"}},
	{"quantities", []string{"value", "system", "code", "unit"}},
	{"refs", []string{"key"}},
	{"uris", []string{"value"}},
	{"composites", []string{"key", "value", "system", "code", "unit", "low", "high"}},
	{"sorts", []string{"lo", "hi"}},
	{"present", nil},
}

// indexStmts are the statements that write the typed search tables, one
// insert and one delete per table, prepared on the writer connection.
type indexStmts struct {
	insert map[string]*sql.Stmt
	delete []*sql.Stmt
}

func prepareIndex(ctx context.Context, c *sql.Conn) (*indexStmts, error) {
	st := &indexStmts{insert: map[string]*sql.Stmt{}}
	for _, t := range indexTables {
		cols := append(append([]string{"type", "param"}, t.columns...), "id")
		q := fmt.Sprintf(`INSERT OR IGNORE INTO %s (%s) VALUES (%s)`, t.name, strings.Join(cols, ", "),
			strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", "))
		ins, err := c.PrepareContext(ctx, q)
		if err != nil {
			st.close()
			return nil, fmt.Errorf("sqlite: prepare: %w", err)
		}
		st.insert[t.name] = ins
		del, err := c.PrepareContext(ctx, `DELETE FROM `+t.name+` WHERE type = ? AND id = ?`)
		if err != nil {
			st.close()
			return nil, fmt.Errorf("sqlite: prepare: %w", err)
		}
		st.delete = append(st.delete, del)
	}
	return st, nil
}

func (st *indexStmts) close() {
	for _, s := range st.insert {
		s.Close()
	}
	for _, s := range st.delete {
		s.Close()
	}
}

// remove deletes the typed search rows of typ/id.
func (st *indexStmts) remove(ctx context.Context, typ, id string) error {
	for _, d := range st.delete {
		if _, err := d.ExecContext(ctx, typ, id); err != nil {
			return err
		}
	}
	return nil
}

// sortKey is the smallest and largest value of one parameter.
type sortKey struct{ lo, hi any }

// add writes the typed search rows of ix for typ/id (tokens excepted, which
// the writer inserts itself).
func (st *indexStmts) add(ctx context.Context, typ, id string, ix *store.Index) error {
	present := map[string]bool{}
	sorts := map[string]*sortKey{}
	var order []string
	key := func(param string, lo, hi any, less func(a, b any) bool) {
		present[param] = true
		if strings.Contains(param, ":") {
			return // derived parameters are not sort keys
		}
		k, ok := sorts[param]
		if !ok {
			sorts[param] = &sortKey{lo, hi}
			order = append(order, param)
			return
		}
		if less(lo, k.lo) {
			k.lo = lo
		}
		if less(k.hi, hi) {
			k.hi = hi
		}
	}
	ins := func(table string, args ...any) error {
		_, err := st.insert[table].ExecContext(ctx, args...)
		return err
	}
	for _, t := range ix.Tokens {
		key(t.Param, t.Code, t.Code, lessString)
	}
	for _, s := range ix.Strings {
		if err := ins("strings", typ, s.Param, s.Value, s.Exact, id); err != nil {
			return err
		}
		key(s.Param, s.Value, s.Value, lessString)
	}
	for _, d := range ix.Dates {
		lo, hi := d.Low.UnixMilli(), d.High.UnixMilli()
		if err := ins("dates", typ, d.Param, lo, hi, id); err != nil {
			return err
		}
		key(d.Param, lo, hi, lessInt)
	}
	for _, n := range ix.Numbers {
		if err := ins("numbers", typ, n.Param, n.Value, id); err != nil {
			return err
		}
		key(n.Param, n.Value, n.Value, lessFloat)
	}
	for _, q := range ix.Quantities {
		if err := ins("quantities", typ, q.Param, q.Value, q.System, q.Code, q.Unit, id); err != nil {
			return err
		}
		key(q.Param, q.Value, q.Value, lessFloat)
	}
	for _, r := range ix.References {
		for _, k := range r.Keys() {
			if err := ins("refs", typ, r.Param, k, id); err != nil {
				return err
			}
		}
		key(r.Param, r.Target(), r.Target(), lessString)
	}
	for _, u := range ix.URIs {
		if err := ins("uris", typ, u.Param, u.Value, id); err != nil {
			return err
		}
		key(u.Param, u.Value, u.Value, lessString)
	}
	for _, c := range ix.Composites {
		var value, system, code, unit, low, high any
		if q := c.Quantity; q != nil {
			value, system, code, unit = q.Value, q.System, q.Code, q.Unit
		}
		if d := c.Date; d != nil {
			low, high = d.Low.UnixMilli(), d.High.UnixMilli()
		}
		if err := ins("composites", typ, c.Param, store.CompositeKey(c.Parts), value, system, code, unit, low, high, id); err != nil {
			return err
		}
		present[c.Param] = true
	}
	for _, p := range order {
		if err := ins("sorts", typ, p, sorts[p].lo, sorts[p].hi, id); err != nil {
			return err
		}
	}
	for p := range present {
		if err := ins("present", typ, p, id); err != nil {
			return err
		}
	}
	return nil
}

func lessString(a, b any) bool { return a.(string) < b.(string) }
func lessInt(a, b any) bool    { return a.(int64) < b.(int64) }
func lessFloat(a, b any) bool  { return a.(float64) < b.(float64) }
