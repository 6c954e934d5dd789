package sqlite

import (
	"strings"
	"testing"
)

// Counts are kept while fresh, never for keys too long to bound the cache,
// and a unit of work's reader (no cache) keeps none.
func TestCountCache(t *testing.T) {
	c := newCountCache()
	c.put("q\x00a", 7)
	if n, ok := c.get("q\x00a"); !ok || n != 7 {
		t.Errorf("get after put: %d, %t", n, ok)
	}
	if _, ok := c.get("q\x00b"); ok {
		t.Error("a count never put is found")
	}
	long := strings.Repeat("x", maxCountKey+1)
	c.put(long, 1)
	if _, ok := c.get(long); ok {
		t.Error("a count with a key over the bound is kept")
	}
	c.m["old"] = count{n: 3, at: c.m["q\x00a"].at.Add(-2 * countTTL)}
	if _, ok := c.get("old"); ok {
		t.Error("a stale count is used")
	}
	var none *countCache
	none.put("q", 1)
	if _, ok := none.get("q"); ok {
		t.Error("a nil cache keeps counts")
	}
	for i := range countEntries + 1 {
		c.put(countKey("q", []any{i}), i)
	}
	if len(c.m) > countEntries {
		t.Errorf("%d counts kept, over the bound of %d", len(c.m), countEntries)
	}
}
