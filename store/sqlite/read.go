package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"carefhir/store"
)

// conn is what reads run on: the pool of reader connections, or the writer
// connection inside a unit of work.
type conn interface {
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

const (
	readSQL = `SELECT r.version, v.last_updated, v.deleted, v.json
FROM resources r JOIN versions v ON v.seq = r.seq
WHERE r.type = ? AND r.id = ?`
	vreadSQL = `SELECT last_updated, deleted, json FROM versions
WHERE type = ? AND id = ? AND version = ?`
)

// reader runs the read side of the store on one conn with statements
// prepared once.
type reader struct {
	read, vread *sql.Stmt
	stmts       *stmtCache
	// params caches the committed search parameters; nil inside a unit of
	// work, whose searches see its own uncommitted ones.
	params *paramCache
	// counts caches the estimates that choose search plans; nil inside a
	// unit of work.
	counts *countCache
}

func newReader(ctx context.Context, c conn, params *paramCache) (*reader, error) {
	r := &reader{stmts: &stmtCache{conn: c, m: map[string]*sql.Stmt{}}, params: params}
	var err error
	if r.read, err = c.PrepareContext(ctx, readSQL); err != nil {
		return nil, fmt.Errorf("sqlite: prepare: %w", err)
	}
	if r.vread, err = c.PrepareContext(ctx, vreadSQL); err != nil {
		r.read.Close()
		return nil, fmt.Errorf("sqlite: prepare: %w", err)
	}
	return r, nil
}

func (r *reader) close() {
	r.read.Close()
	r.vread.Close()
	r.stmts.close()
}

func (r *reader) Read(ctx context.Context, typ, id string) (*store.Version, error) {
	v := &store.Version{Type: typ, ID: id}
	var ms int64
	err := r.read.QueryRowContext(ctx, typ, id).Scan(&v.VersionID, &ms, &v.Deleted, &v.JSON)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			err = store.ErrNotFound
		}
		return nil, fmt.Errorf("sqlite: read %s/%s: %w", typ, id, err)
	}
	v.LastUpdated = fromMillis(ms)
	return v, nil
}

func (r *reader) VRead(ctx context.Context, typ, id string, version int64) (*store.Version, error) {
	v := &store.Version{Type: typ, ID: id, VersionID: version}
	var ms int64
	err := r.vread.QueryRowContext(ctx, typ, id, version).Scan(&ms, &v.Deleted, &v.JSON)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			err = store.ErrNotFound
		}
		return nil, fmt.Errorf("sqlite: vread %s/%s/_history/%d: %w", typ, id, version, err)
	}
	v.LastUpdated = fromMillis(ms)
	return v, nil
}

// cursor is the position after the last version of a history page.
type cursor struct {
	LastUpdated int64  `json:"t"`
	Type        string `json:"r"`
	ID          string `json:"i"`
	Version     int64  `json:"v"`
}

func (c cursor) String() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseCursor reads a cursor that String wrote; one that names no version
// (such as {} or null) is refused, not read as the position before
// everything, which would answer an empty page with no next.
func parseCursor(s string) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		d := json.NewDecoder(bytes.NewReader(b))
		d.DisallowUnknownFields()
		err = d.Decode(&c)
	}
	if err != nil || c.Type == "" || c.ID == "" || c.Version < 1 {
		return c, fmt.Errorf("history cursor %q: %w", s, store.ErrBadCursor)
	}
	return c, nil
}

func (r *reader) History(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	page, err := r.history(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("sqlite: history %s: %w", historyScope(q), err)
	}
	return page, nil
}

func historyScope(q store.HistoryQuery) string {
	switch {
	case q.ID != "":
		return q.Type + "/" + q.ID
	case q.Type != "":
		return q.Type
	}
	return "of the system"
}

func (r *reader) history(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	if q.Count <= 0 {
		return nil, fmt.Errorf("page size %d is not positive", q.Count)
	}
	var (
		where []string
		args  []any
	)
	// The cursor compares only the keys not fixed by the level, so that the
	// row value lines up with the level's index and the page is a range scan.
	keys := "(last_updated, type, id, version) < (?, ?, ?, ?)"
	after := func(c cursor) []any { return []any{c.LastUpdated, c.Type, c.ID, c.Version} }
	switch {
	case q.ID != "":
		where = append(where, "type = ?", "id = ?")
		args = append(args, q.Type, q.ID)
		keys = "(last_updated, version) < (?, ?)"
		after = func(c cursor) []any { return []any{c.LastUpdated, c.Version} }
	case q.Type != "":
		where = append(where, "type = ?")
		args = append(args, q.Type)
		keys = "(last_updated, id, version) < (?, ?, ?)"
		after = func(c cursor) []any { return []any{c.LastUpdated, c.ID, c.Version} }
	case q.Types != nil:
		where = append(where, "type IN ("+placeholders(len(q.Types))+")")
		for _, t := range q.Types {
			args = append(args, t)
		}
	}
	if !q.Since.IsZero() {
		where = append(where, "last_updated >= ?")
		args = append(args, q.Since.UnixMilli())
	}
	if !q.AtHigh.IsZero() {
		where = append(where, "last_updated < ?")
		args = append(args, q.AtHigh.UnixMilli())
	}
	if !q.AtLow.IsZero() {
		where = append(where, "(superseded_at IS NULL OR superseded_at > ?)")
		args = append(args, q.AtLow.UnixMilli())
	}
	// Left to itself, SQLite serves an instance's history from the type's
	// index, which walks every version of the type, to avoid a sort; the
	// sort of one resource's versions is much the cheaper.
	from := " FROM versions"
	if q.ID != "" {
		from = " FROM versions INDEXED BY versions_instance"
	}
	filter := ""
	if len(where) > 0 {
		filter = " WHERE " + strings.Join(where, " AND ")
	}

	page := &store.HistoryPage{}
	err := r.stmts.queryRow(ctx, "SELECT count(*)"+from+filter, args...).Scan(&page.Total)
	if err != nil {
		return nil, err
	}

	if q.Cursor != "" {
		c, err := parseCursor(q.Cursor)
		if err != nil {
			return nil, err
		}
		where = append(where, keys)
		args = append(args, after(c)...)
		filter = " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := r.stmts.query(ctx, `SELECT type, id, version, last_updated, deleted, json, coalesce(method, '')`+from+filter+`
ORDER BY last_updated DESC, type DESC, id DESC, version DESC`+limit(q.Count+1), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		v := &store.Version{}
		var ms int64
		if err := rows.Scan(&v.Type, &v.ID, &v.VersionID, &ms, &v.Deleted, &v.JSON, &v.Method); err != nil {
			return nil, err
		}
		v.LastUpdated = fromMillis(ms)
		page.Versions = append(page.Versions, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(page.Versions) > q.Count {
		page.Versions = page.Versions[:q.Count]
		last := page.Versions[q.Count-1]
		page.Next = cursor{last.LastUpdated.UnixMilli(), last.Type, last.ID, last.VersionID}.String()
	}
	return page, nil
}

// Search returns the current, non-deleted versions that match q, ordered
// by id: Find without sort, paging or includes.
func (r *reader) Search(ctx context.Context, q store.Query) ([]*store.Version, error) {
	fq := store.Query{Type: q.Type, Where: q.Where, Count: q.Count}
	if fq.Count <= 0 {
		fq.Count = math.MaxInt32 - 1
	}
	page, err := r.find(ctx, fq)
	if err != nil {
		return nil, fmt.Errorf("sqlite: search %s: %w", q.Type, err)
	}
	return page.Matches, nil
}

// stmtCache keeps the prepared statements of generated SQL. History has a
// few dozen shapes and searches repeat theirs; past maxCached shapes, or
// maxCachedBytes of SQL, the statement is prepared per call instead, so
// odd queries cannot grow the cache without bound. A prepared statement's
// memory grows with its SQL, on every connection it runs on: a long one
// (a chain of ORed values) is never cached, so a client sending many
// cannot hold that memory.
type stmtCache struct {
	conn  conn
	mu    sync.Mutex
	m     map[string]*sql.Stmt
	bytes int // SQL text of the statements in m
}

const (
	maxCached      = 256
	maxCachedBytes = 256 << 10
	maxCachedSQL   = 4 << 10
)

func (c *stmtCache) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.m[query]; ok {
		return s, nil
	}
	if len(c.m) >= maxCached || len(query) > maxCachedSQL || c.bytes+len(query) > maxCachedBytes {
		return nil, nil
	}
	s, err := c.conn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.m[query] = s
	c.bytes += len(query)
	return s, nil
}

func (c *stmtCache) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s, err := c.stmt(ctx, query)
	switch {
	case err != nil:
		return nil, err
	case s == nil:
		return c.conn.QueryContext(ctx, query, args...)
	}
	return s.QueryContext(ctx, args...)
}

// row is the part of *sql.Row that queryRow's callers use; it lets queryRow
// report an error from preparing the statement.
type row interface{ Scan(dest ...any) error }

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

func (c *stmtCache) queryRow(ctx context.Context, query string, args ...any) row {
	rows, err := c.query(ctx, query, args...)
	if err != nil {
		return errRow{err}
	}
	return firstRow{rows}
}

// firstRow scans the first row of rows and closes them.
type firstRow struct{ rows *sql.Rows }

func (r firstRow) Scan(dest ...any) error {
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	return r.rows.Close()
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, s := range c.m {
		s.Close()
		delete(c.m, q)
	}
	c.bytes = 0
}

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
