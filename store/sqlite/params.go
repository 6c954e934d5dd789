package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"

	"carefhir/store"
)

// A search table, and a bit of params.kinds.
type kind uint16

const (
	kindToken kind = 1 << iota
	kindString
	kindDate
	kindNumber
	kindQuantity
	kindRef
	kindURI
	kindComposite
	kindRange
)

// searchTable describes one search table for the SQL that reads it.
type searchTable struct {
	kind kind
	name string
	// lo and hi are what _sort orders by, ascending and descending: the
	// smallest and largest value of a resource's rows of a parameter ("":
	// the table has no sort key). where, if set, keeps the rows this
	// version writes, leaving out those that earlier versions wrote and
	// nothing reads any longer: the ones _sort orders by and Verify checks.
	lo, hi, where string
}

// searchTables are the search tables in the order of their kinds.
var searchTables = []searchTable{
	{kind: kindToken, name: "tokens", lo: "min(code)", hi: "max(code)"},
	{kind: kindString, name: "strings", lo: "min(value)", hi: "max(value)"},
	{kind: kindDate, name: "dates", lo: "min(low)", hi: "max(high)"},
	{kind: kindNumber, name: "numbers", lo: "min(value)", hi: "max(value)"},
	{kind: kindQuantity, name: "quantities", lo: "min(value)", hi: "max(value)"},
	// A reference sorts by its target, "Type/id" or the URL: its key
	// without the form byte, leaving out the key by id alone that
	// databases written before references were stored once still hold.
	{kind: kindRef, name: "refs", lo: "min(substr(key, 2))", hi: "max(substr(key, 2))", where: "substr(key, 1, 1) <> '" + refIDForm + "'"},
	{kind: kindURI, name: "uris", lo: "min(value)", hi: "max(value)"},
	{kind: kindComposite, name: "composites"},
	// A Range of a quantity parameter sorts as a Period does, by its low
	// end ascending and its high end descending.
	{kind: kindRange, name: "ranges", lo: "min(low)", hi: "max(high)"},
}

// refIDForm is the form byte of the key by id alone that earlier versions
// stored beside each reference's "Type/id" key; nothing matches it now.
const refIDForm = "i"

// param is a search parameter of a type as stored: its pid (0 if the
// parameter has no rows, which no row's pid matches) and the kinds of rows
// it has.
//
// dateWidth and dateMulti describe its rows in dates, so that a search can
// bound a date range by both ends of the index key: dateWidth is at least
// the largest high - low of any row (so high >= x implies low >= x -
// dateWidth), and dateMulti is set once a resource has had more than one row
// of the parameter (until then, conditions on the parameter that must all
// hold can be asked of one row). Both only ever grow: a stale value is
// larger than needed, never wrong.
type param struct {
	pid       int64
	kinds     kind
	dateWidth int64
	dateMulti bool
}

// paramKey names a search parameter of a type.
type paramKey struct{ typ, name string }

const (
	lookupParamSQL = `SELECT pid, kinds, date_width, date_multi FROM params WHERE type = ? AND name = ?`
	insertParamSQL = `INSERT INTO params (type, name, kinds) VALUES (?, ?, ?)`
	updateParamSQL = `UPDATE params SET kinds = ?, date_width = ?, date_multi = ? WHERE pid = ?`
	// recomputeDatesSQL sets date_width and date_multi of a type's
	// parameters from their rows in dates.
	recomputeDatesSQL = `UPDATE params SET
	date_width = coalesce((SELECT max(high - low) FROM dates WHERE dates.pid = params.pid), 0),
	date_multi = EXISTS (SELECT 1 FROM dates WHERE dates.pid = params.pid GROUP BY rid HAVING count(*) > 1)
WHERE type = ?`
)

// lookupParam reads a parameter's row with stmt, a prepared lookupParamSQL.
func lookupParam(ctx context.Context, stmt *sql.Stmt, typ, name string) (param, error) {
	var p param
	err := stmt.QueryRowContext(ctx, typ, name).Scan(&p.pid, &p.kinds, &p.dateWidth, &p.dateMulti)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return param{}, fmt.Errorf("parameter %s of %s: %w", name, typ, err)
	}
	return p, nil
}

// paramIDs gives the writer the pid of each parameter it writes rows of,
// adding the parameter, or a kind to it, the first time. It caches what it
// has read and written; a parameter added by a transaction that then rolls
// back must be forgotten (forget), as its pid may be given again.
type paramIDs struct {
	lookup, insert, update *sql.Stmt
	cache                  map[paramKey]param
	added                  bool        // the cache holds a change not yet committed
	shared                 *paramCache // told when a change is committed
}

// id returns the pid of typ's parameter name, recording that it has rows of
// kind k.
func (ps *paramIDs) id(ctx context.Context, typ, name string, k kind) (int64, error) {
	key := paramKey{typ, name}
	p, ok := ps.cache[key]
	if ok && p.kinds&k != 0 {
		return p.pid, nil
	}
	if !ok {
		var err error
		if p, err = lookupParam(ctx, ps.lookup, typ, name); err != nil {
			return 0, err
		}
	}
	if p.kinds&k == 0 {
		ps.added = true
		p.kinds |= k
		if p.pid == 0 {
			res, err := ps.insert.ExecContext(ctx, typ, name, p.kinds)
			if err != nil {
				return 0, fmt.Errorf("add parameter %s of %s: %w", name, typ, err)
			}
			if p.pid, err = res.LastInsertId(); err != nil {
				return 0, err
			}
		} else if _, err := ps.update.ExecContext(ctx, p.kinds, p.dateWidth, p.dateMulti, p.pid); err != nil {
			return 0, fmt.Errorf("parameter %s of %s: %w", name, typ, err)
		}
	}
	ps.cache[key] = p
	return p.pid, nil
}

// noteDates records the widths of a resource's rows in dates, and whether
// it has several of one parameter, in the parameters' rows. Each parameter
// of dates has been through id already, so it is in the cache.
func (ps *paramIDs) noteDates(ctx context.Context, typ string, dates []store.Date) error {
	for i, d := range dates {
		key := paramKey{typ, d.Param}
		p := ps.cache[key]
		width := d.High.UnixMilli() - d.Low.UnixMilli()
		multi := slices.ContainsFunc(dates[:i], func(e store.Date) bool { return e.Param == d.Param })
		if width <= p.dateWidth && (!multi || p.dateMulti) {
			continue
		}
		p.dateWidth = max(p.dateWidth, width)
		p.dateMulti = p.dateMulti || multi
		if _, err := ps.update.ExecContext(ctx, p.kinds, p.dateWidth, p.dateMulti, p.pid); err != nil {
			return fmt.Errorf("parameter %s of %s: %w", d.Param, typ, err)
		}
		ps.added = true
		ps.cache[key] = p
	}
	return nil
}

// committed records that the changes of the transaction are durable.
func (ps *paramIDs) committed() {
	if ps.added {
		ps.shared.changed()
		ps.added = false
	}
}

// changedAll records that the transaction changed parameters behind the
// cache: it is dropped now, and the readers' once the change is committed.
func (ps *paramIDs) changedAll() {
	clear(ps.cache)
	ps.added = true
}

// forgetUnit drops the cache after a unit of work inside the transaction
// was rolled back to its savepoint: it may hold changes the unit made. What
// the units before it changed is still to be committed.
func (ps *paramIDs) forgetUnit() {
	clear(ps.cache)
}

// forget drops the cache after a rollback that undid changes it holds.
func (ps *paramIDs) forget() {
	if ps.added {
		clear(ps.cache)
		ps.added = false
	}
}

// paramCache holds the parameters that searches on the reader pool have
// read, committed, so that a search does not read the params table each
// time. Every entry is tagged with the generation it was read in; the
// writer starts a new generation, which drops them all, once it has
// committed a change to params. A lookup that read the table before that
// commit is then not cached, and one that reads it after sees the change.
type paramCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[paramKey]param
}

func newParamCache() *paramCache { return &paramCache{m: map[paramKey]param{}} }

// get returns the cached parameter, if any, and the current generation.
func (c *paramCache) get(k paramKey) (param, bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.m[k]
	return p, ok, c.gen
}

// put caches p, read in generation gen, unless a change was committed
// since.
func (c *paramCache) put(k paramKey, p param, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen == c.gen {
		c.m[k] = p
	}
}

// changed starts a new generation.
func (c *paramCache) changed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.m)
}
