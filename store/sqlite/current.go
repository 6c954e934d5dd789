package sqlite

import (
	"sync"

	"carefhir/store"
)

// currentCacheBytes bounds what the cache of current versions holds: the
// bodies and a fixed cost per entry.
const currentCacheBytes = 64 << 20

// entryOverhead is what an entry costs beyond its body: the key, the
// Version and the map's share.
const entryOverhead = 160

// versionKey names a resource.
type versionKey struct{ typ, id string }

// currentCache holds the current versions reads have found, so that a
// read by id of a resource read before costs no SQLite statement (whose
// WAL read transaction alone is two fcntl calls).
//
// It is right only while this process alone writes the database, which
// the data directory's lock ensures (lock.go): every commit of the writer
// drops the versions it replaced (forget) before any write in it is
// acknowledged, and a read fills the cache only if no commit has ended
// since it began (fill's gen), so a version read before a commit is never
// kept after it. Reads inside a unit of work, which see its uncommitted
// writes, neither use nor fill it.
type currentCache struct {
	mu      sync.Mutex
	gen     uint64 // commits that have forgotten what they wrote
	m       map[versionKey]*store.Version
	bytes   int
	maxSize int
}

func newCurrentCache(maxBytes int) *currentCache {
	return &currentCache{m: map[versionKey]*store.Version{}, maxSize: maxBytes}
}

// get returns the cached version of typ/id, a copy the caller owns, or,
// when there is none, the generation a read from the database must pass
// to fill.
func (c *currentCache) get(typ, id string) (*store.Version, uint64) {
	c.mu.Lock()
	v, ok := c.m[versionKey{typ, id}]
	gen := c.gen
	c.mu.Unlock()
	if !ok {
		return nil, gen
	}
	// Cached versions are never changed: copy what the caller may change.
	cp := *v
	cp.JSON = append([]byte(nil), v.JSON...)
	return &cp, gen
}

// fill keeps v, read from the database since get returned gen, unless a
// commit has ended since. It keeps a copy: the caller owns v.
func (c *currentCache) fill(v *store.Version, gen uint64) {
	size := cacheSize(v)
	if size > c.maxSize/64 {
		return // a large body would push many small ones out
	}
	cp := *v
	cp.JSON = append([]byte(nil), v.JSON...)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	k := versionKey{v.Type, v.ID}
	if old, ok := c.m[k]; ok {
		delete(c.m, k)
		c.bytes -= cacheSize(old)
	}
	// Full: drop entries in the map's order, which Go randomises, until
	// this one fits.
	for k2, old := range c.m {
		if c.bytes+size <= c.maxSize {
			break
		}
		delete(c.m, k2)
		c.bytes -= cacheSize(old)
	}
	c.m[k] = &cp
	c.bytes += size
}

// forget drops the versions of keys, which a commit has just replaced,
// and ends the generation: reads begun before it fill nothing.
func (c *currentCache) forget(keys []versionKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, k := range keys {
		if v, ok := c.m[k]; ok {
			delete(c.m, k)
			c.bytes -= cacheSize(v)
		}
	}
}

func cacheSize(v *store.Version) int {
	return len(v.JSON) + len(v.Type) + len(v.ID) + entryOverhead
}
