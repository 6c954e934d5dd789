package sqlite

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// estimator returns the estimator of a search on r: the count a query
// selects, from the cache while it is fresh.
func (r *reader) estimator(ctx context.Context) estimator {
	return func(query string, args []any) (int, error) {
		key := countKey(query, args)
		if n, ok := r.counts.get(key); ok {
			return n, nil
		}
		var n int
		if err := r.stmts.queryRow(ctx, query, args...).Scan(&n); err != nil {
			return 0, err
		}
		r.counts.put(key, n)
		return n, nil
	}
}

// countCache holds recent estimates. An estimate only chooses how a search
// runs, never what it answers, so one a few seconds old serves as well as
// a new one: the common conditions (status=active) are then counted once
// per period rather than by every search, for a millisecond or two each.
type countCache struct {
	mu sync.Mutex
	m  map[string]count
}

type count struct {
	n  int
	at time.Time
}

const (
	countTTL     = 10 * time.Second
	countEntries = 4096 // beyond it, the cache starts again empty
	// maxCountKey bounds the key of a cached count, and so the cache's
	// size (16 MiB): a count of a long list of codes (a ValueSet's
	// expansion) is not cached.
	maxCountKey = 4096
)

func newCountCache() *countCache { return &countCache{m: map[string]count{}} }

// get returns a fresh estimate of key; a nil cache has none.
func (c *countCache) get(key string) (int, bool) {
	if c == nil {
		return 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || time.Since(e.at) > countTTL {
		return 0, false
	}
	return e.n, true
}

func (c *countCache) put(key string, n int) {
	if c == nil || len(key) > maxCountKey {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= countEntries {
		clear(c.m)
	}
	c.m[key] = count{n, time.Now()}
}

// countKey identifies a count: its query and arguments.
func countKey(query string, args []any) string {
	var b strings.Builder
	b.WriteString(query)
	for _, a := range args {
		fmt.Fprintf(&b, "\x00%T:%v", a, a)
	}
	return b.String()
}
