package store

import "context"

// Page is one page of search results.
type Page struct {
	Matches  []*Version
	Included []*Version // added by Include and RevInclude, each once
	// IncludedCut is true when Included stopped at the engine's bound (a
	// number of resources, or of :iterate rounds) with more to add.
	IncludedCut bool
	Next        string // cursor of the next page; "" on the last
	Prev        string // cursor of the previous page; "" on the first
	Total       int    // the number of matches when asked for, else -1
}

// Finder is implemented by engines that execute whole search plans: sort,
// keyset paging, totals and includes. Find returns a page of the current,
// non-deleted versions q selects, in q.Sort order and then by id, from
// q.Cursor on; at most q.Count matches (Count 0: the total alone). A Next
// cursor continues after its page's last match and a Prev cursor ends
// before its page's first, so walking the pages while others write returns
// each resource that matches throughout at most once and, unless its sort
// values change, exactly once.
type Finder interface {
	Find(ctx context.Context, q Query) (*Page, error)
}

// Reindexer is implemented by engines that can replace the search values of
// current versions in place, without writing a new version: carefhir
// reindex rebuilds the index with it after the search definitions change.
type Reindexer interface {
	// Scan calls fn with each current, non-deleted version of typ, in id
	// order, stopping at the first error fn returns.
	Scan(ctx context.Context, typ string, fn func(v *Version) error) error
	// Reindex replaces the search values of v's resource with ix if v is
	// still its current version, and returns a *ConflictError otherwise
	// (the resource changed since it was read, and its new version was
	// indexed when it was written).
	Reindex(ctx context.Context, v *Version, ix Index) error
}
