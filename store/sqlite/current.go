package sqlite

import (
	"slices"
	"sync"

	"carefhir/store"
)

// currentCacheBytes bounds what the cache of current versions holds: the
// bodies and a fixed cost per entry. pageCacheBytes bounds the pages of
// searches it holds beside them, counted the same way.
const (
	currentCacheBytes = 64 << 20
	pageCacheBytes    = 16 << 20
)

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
//
// It holds the pages searches have found too, keyed by the whole query, so
// that a search repeated before a resource it reads is written again (a
// shared care record polling for a patient, the pages of one result walked
// by several clients) costs no SQLite statement either. Each page names
// the types whose resources its search reads (store.Query.Reads): the searched
// type and those of its chains, _has and includes. A commit drops the
// pages that read a type it wrote, found by type rather than by looking
// through them all, so the audit trail's commits, which write AuditEvents
// alone, keep the pages of other searches at the cost of those that read
// AuditEvents. A search keeps its page unless a commit that wrote a type
// it reads ended while it ran, so commits of other types (the trail's
// again) do not keep its page out either.
type currentCache struct {
	mu      sync.Mutex
	gen     uint64 // commits that have forgotten what they wrote
	m       map[versionKey]*store.Version
	bytes   int
	maxSize int

	pages        map[string]cachedPage
	pageBytes    int
	maxPageBytes int
	// byType holds the keys of the pages whose search reads each type,
	// anyType those of the searches that may read any type; writtenAt is
	// the generation of the last commit that wrote each type.
	byType    map[string]map[string]struct{}
	anyType   map[string]struct{}
	writtenAt map[string]uint64
}

// cachedPage is a page kept, and the types its search reads: nil for any
// type.
type cachedPage struct {
	page  *store.Page
	types []string
	size  int // cachedPageSize, counted once
}

// maxPages bounds the pages kept whatever their size.
const maxPages = 4096

func newCurrentCache(maxBytes, maxPageBytes int) *currentCache {
	return &currentCache{m: map[versionKey]*store.Version{}, maxSize: maxBytes,
		pages: map[string]cachedPage{}, maxPageBytes: maxPageBytes,
		byType: map[string]map[string]struct{}{}, anyType: map[string]struct{}{}, writtenAt: map[string]uint64{}}
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

// forget drops the versions of keys, which a commit has just written,
// and the pages of searches that read their types, and ends the
// generation: reads begun before it fill nothing.
func (c *currentCache) forget(keys []versionKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if len(keys) > 0 {
		for key := range c.anyType {
			c.dropPage(key)
		}
	}
	for i, k := range keys {
		if i > 0 && k.typ == keys[i-1].typ {
			continue // a unit's writes come in runs of one type
		}
		c.writtenAt[k.typ] = c.gen
		for key := range c.byType[k.typ] {
			c.dropPage(key)
		}
	}
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

// page returns the cached page of the search keyed by key, a copy the
// caller owns, or, when there is none, the generation a search of the
// database must pass to keepPage. The key is looked up as bytes, which a
// map index converts without a copy: every search looks up its key.
func (c *currentCache) page(key []byte) (*store.Page, uint64) {
	c.mu.Lock()
	p, ok := c.pages[string(key)]
	gen := c.gen
	c.mu.Unlock()
	if !ok {
		return nil, gen
	}
	return copyPage(p.page), gen
}

// keepPage keeps p, found by the search keyed by key since page returned
// gen, as read by a search of types (nil: any type), unless a commit that
// wrote one of those types (any commit, for any type) has ended since. It
// keeps a copy: the caller owns p.
func (c *currentCache) keepPage(key string, p *store.Page, types []string, gen uint64) {
	size := cachedPageSize(key, p)
	if size > c.maxPageBytes/64 {
		return // a large page would push many small ones out
	}
	cp := copyPage(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if types == nil && c.gen != gen || slices.ContainsFunc(types, func(t string) bool { return c.writtenAt[t] > gen }) {
		return
	}
	c.dropPage(key)
	for k := range c.pages {
		if c.pageBytes+size <= c.maxPageBytes && len(c.pages) < maxPages {
			break
		}
		c.dropPage(k)
	}
	c.pages[key] = cachedPage{page: cp, types: types, size: size}
	c.pageBytes += size
	if types == nil {
		c.anyType[key] = struct{}{}
	}
	for _, t := range types {
		keys := c.byType[t]
		if keys == nil {
			keys = map[string]struct{}{}
			c.byType[t] = keys
		}
		keys[key] = struct{}{}
	}
}

// dropPage drops the page keyed by key, if one is kept, and its key from
// the types its search reads.
func (c *currentCache) dropPage(key string) {
	p, ok := c.pages[key]
	if !ok {
		return
	}
	delete(c.pages, key)
	c.pageBytes -= p.size
	if p.types == nil {
		delete(c.anyType, key)
	}
	for _, t := range p.types {
		delete(c.byType[t], key)
		if len(c.byType[t]) == 0 {
			delete(c.byType, t)
		}
	}
}

// copyPage copies p down to its bodies: a cached page is never changed.
func copyPage(p *store.Page) *store.Page {
	cp := *p
	cp.Matches = copyVersions(p.Matches)
	cp.Included = copyVersions(p.Included)
	return &cp
}

func copyVersions(vs []*store.Version) []*store.Version {
	if vs == nil {
		return nil
	}
	out := make([]*store.Version, len(vs))
	copies := make([]store.Version, len(vs))
	n := 0
	for _, v := range vs {
		n += len(v.JSON)
	}
	bodies := make([]byte, 0, n)
	for i, v := range vs {
		copies[i] = *v
		if v.JSON != nil {
			start := len(bodies)
			bodies = append(bodies, v.JSON...)
			copies[i].JSON = bodies[start:len(bodies):len(bodies)]
		}
		out[i] = &copies[i]
	}
	return out
}

func cachedPageSize(key string, p *store.Page) int {
	n := len(key) + len(p.Next) + len(p.Prev) + entryOverhead
	for _, vs := range [][]*store.Version{p.Matches, p.Included} {
		for _, v := range vs {
			n += cacheSize(v)
		}
	}
	return n
}
