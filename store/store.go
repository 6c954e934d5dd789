// Package store defines how carefhir keeps FHIR resources: the Store
// interface that every storage engine implements, the values it stores, and
// the errors it returns.
//
// Engines store bytes, not models. The layer above the store parses and
// validates a resource, stamps its id and meta, encodes it once and hands the
// exact JSON bytes to Put; reads return those bytes unchanged, so a read never
// re-encodes. Search values are extracted and normalised above the store too
// (Index), the same way for every engine; engines only persist and match them.
//
// Concurrency is optimistic: every write names the version it replaces
// (Write.Expected) and an engine refuses a write whose expectation is stale with
// a *ConflictError, so two concurrent writers can never silently overwrite each
// other. Put returns only once the write is durable: an acknowledged write
// survives the process being killed.
package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrNotFound reports that no version of the requested resource, or no such
// version, has ever been stored.
var ErrNotFound = errors.New("store: not found")

// ErrBadCursor reports a paging cursor the engine did not issue, or no
// longer understands: a client error, not a storage failure.
var ErrBadCursor = errors.New("store: invalid cursor")

// TooCostlyError reports a search that an engine will not answer because
// answering it would go past one of the engine's bounds, such as a chain
// that selects more resources than the engine links in one search: a
// client error, which a narrower search avoids, not a storage failure.
type TooCostlyError struct {
	Param  string // the search parameter whose clause goes past the bound
	Reason string // which bound, in words a client can act on
}

func (e *TooCostlyError) Error() string {
	return fmt.Sprintf("store: search parameter %s: %s", e.Param, e.Reason)
}

// TooLargeError reports a write whose version is larger than the engine
// holds as one resource, such as the 16 MiB of a MongoDB document: a
// client error, which a smaller resource avoids, not a storage failure.
// Nothing of the write is stored.
type TooLargeError struct {
	Type, ID string
	Size     int64  // the bytes the engine would store
	Limit    string // the engine's bound, in words a client can act on
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("store: %s/%s is %d bytes as stored, over %s", e.Type, e.ID, e.Size, e.Limit)
}

// ConflictError reports a write whose expected version is not the current
// version of the resource: another writer got there first, or the resource
// already exists (Expected 0) or does not (Current 0).
type ConflictError struct {
	Type, ID string
	Expected int64 // the version the write said it replaces (0: none)
	Current  int64 // the version actually current (0: none)
	// Pending is set when Expected is still current but another write of
	// the next version has begun and not finished, on an engine that
	// writes a version in steps (MongoDB, docs/mongodb.md).
	Pending bool
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("store: %s/%s: write expected version %d but version %d is current",
		e.Type, e.ID, e.Expected, e.Current)
}

// Version is one stored version of a resource.
type Version struct {
	Type        string
	ID          string
	VersionID   int64     // 1, 2, 3…: strictly increasing per resource
	LastUpdated time.Time // UTC, millisecond precision
	Deleted     bool      // a tombstone left by a delete; JSON is nil
	JSON        []byte    // the exact bytes written, served back as they are
	// Method is the HTTP method of the interaction that wrote the
	// version (Write.Method), as History returns it; "" when it was not
	// recorded (a version written before engines recorded it) or on
	// other reads, which need not return it.
	Method string
}

// Write is one new version of a resource.
type Write struct {
	Type string
	ID   string
	// Expected is the version this write replaces: 0 when the resource must
	// not exist yet (not even as a tombstone). The new version is Expected+1.
	Expected    int64
	LastUpdated time.Time // UTC, millisecond precision; stamped by the caller into JSON too
	Deleted     bool      // write a tombstone: the resource reads as gone from now on
	JSON        []byte    // nil when Deleted
	Index       Index     // search values of this version; empty when Deleted
	// Method is the HTTP method of the interaction that writes the
	// version (POST for a create, PUT for an update, an update as create
	// included, PATCH, DELETE), which a history shows as the request
	// that made it; "" for writes of no interaction. Engines keep it with
	// the version as it is.
	Method string
}

// VersionID returns the version id the write creates.
func (w *Write) VersionID() int64 { return w.Expected + 1 }

// Version returns the version the write creates, as a Read returns it.
func (w *Write) Version() *Version {
	return &Version{Type: w.Type, ID: w.ID, VersionID: w.VersionID(), LastUpdated: w.LastUpdated, Deleted: w.Deleted, JSON: w.JSON, Method: w.Method}
}

// HistoryQuery selects versions for a history interaction: of one resource
// (Type and ID set), of one type (Type set) or of the whole system.
type HistoryQuery struct {
	Type string
	ID   string
	// Types, in a history of the whole system, keeps only versions of
	// these types; nil keeps every type, the server's own records among
	// them.
	Types []string
	Since time.Time // zero: no bound; else versions with LastUpdated >= Since
	// AtLow and AtHigh, when set, keep only versions that were current at
	// some point in [AtLow, AtHigh): created before AtHigh and not replaced
	// by a newer version at or before AtLow. A version is current from its
	// LastUpdated until the next version's, that instant excluded: the one
	// replaced exactly at AtLow was current at no point of the period.
	AtLow, AtHigh time.Time
	Count         int    // page size, > 0
	Cursor        string // "" for the first page, else HistoryPage.Next
}

// HistoryPage is one page of history, newest version first (ties in
// LastUpdated are broken by type, id and version, newest first).
//
// Precisely, versions are ordered by (LastUpdated, Type, ID, VersionID), every
// key descending, comparing strings byte by byte. A page with a Next cursor
// is never followed by an empty page. A query that matches nothing, including
// the history of a resource that never existed, yields an empty page, not
// ErrNotFound.
type HistoryPage struct {
	Versions []*Version
	Next     string // cursor of the next page; "" when this is the last
	// Total is the number of versions matching the query over all pages.
	// An engine always counts it; the access layer makes it -1 (not
	// known) rather than count versions its principal may not read.
	Total int
}

// Reader is the read side of a store.
type Reader interface {
	// Read returns the current version of a resource, which may be a
	// tombstone (Deleted). It returns ErrNotFound if the resource never existed.
	Read(ctx context.Context, typ, id string) (*Version, error)
	// VRead returns one version of a resource, possibly a tombstone, or
	// ErrNotFound.
	VRead(ctx context.Context, typ, id string, version int64) (*Version, error)
	// History returns a page of versions, newest first.
	History(ctx context.Context, q HistoryQuery) (*HistoryPage, error)
	// Search returns the current, non-deleted versions that match q, ordered
	// by id (byte order), each resource at most once.
	Search(ctx context.Context, q Query) ([]*Version, error)
}

// Writer is the write side of a store.
type Writer interface {
	// Put stores w as version w.Expected+1 if w.Expected is still the current
	// version, and returns a *ConflictError otherwise. When Put returns nil the
	// write is durable.
	Put(ctx context.Context, w *Write) error
}

// GatedWriter is a Writer that can begin a write before its caller has
// decided to keep it, so that the caller's last checks (validating the
// resource, say) run while the engine writes. Engines implement it when
// they can; callers find it by type assertion and otherwise check first
// and Put.
type GatedWriter interface {
	// PutGated is Put, except that w becomes visible and durable only if
	// ready returns nil. The engine calls ready before it commits w (or
	// before it begins w, when it would otherwise keep others waiting);
	// an error from ready fails PutGated with that error, and nothing of
	// w is stored. ready may block, may be called more than once and from
	// another goroutine, and must give the same answer each time.
	PutGated(ctx context.Context, w *Write, ready func() error) error
}

// Purger is implemented by engines that can forget records for good. It
// is for the server's own records that are not FHIR resources (a
// delivered notification, a released claim), whose versions nobody reads
// again: a FHIR resource's history is never purged. After a purge the ids
// read as never stored, and may be created again.
type Purger interface {
	// Purge removes every version of each resource of typ named in ids;
	// an id not stored is skipped.
	Purge(ctx context.Context, typ string, ids []string) error
	// PurgeDeleted removes every version of at most limit resources of
	// typ whose current version is a tombstone written before before, and
	// returns how many it removed: none when limit is 0 or less.
	PurgeDeleted(ctx context.Context, typ string, before time.Time, limit int) (int, error)
	// PurgeEarlier removes the versions of typ/id before its current one,
	// which stays as it is: a record rewritten at every event (a count)
	// would otherwise keep a version for each. An id not stored is
	// skipped.
	PurgeEarlier(ctx context.Context, typ, id string) error
}

// MetaLister is implemented by engines that can list the profiles, tags
// and security labels in use, for the $meta operation of a type and of the
// system. They are read from the search values of _profile, _tag and
// _security, each distinct value once, never by reading the resources.
type MetaLister interface {
	// MetaInUse returns the distinct values of _profile, _tag and
	// _security of the current, non-deleted resources of types, each
	// list sorted: a profile's URL, a tag's and a label's system and
	// code (their display is not indexed). It stops once it has more
	// than limit values of the three together, so that a caller tells
	// more than limit (MetaValues.Len) from limit, without reading on.
	MetaInUse(ctx context.Context, types []string, limit int) (*MetaValues, error)
}

// MetaValues are the profiles, tags and security labels in use.
type MetaValues struct {
	Profiles []string
	Tags     []Label
	Security []Label
}

// Label is a tag or security label as indexed: its system and code.
type Label struct{ System, Code string }

// Len returns the number of values of the three kinds together.
func (m *MetaValues) Len() int { return len(m.Profiles) + len(m.Tags) + len(m.Security) }

// MetaCollector gathers the values MetaInUse returns, for an engine: each
// once, whatever types it is found in, until there are more than limit.
type MetaCollector struct {
	limit  int
	seen   map[Token]bool
	values MetaValues
}

// NewMetaCollector returns a collector of at most limit+1 values.
func NewMetaCollector(limit int) *MetaCollector {
	return &MetaCollector{limit: limit, seen: map[Token]bool{}}
}

// Add adds a value of the search parameter t.Param (_profile, whose URL
// is t.Code, _tag or _security), and reports whether the collector takes
// more: false once it holds more than its limit.
func (c *MetaCollector) Add(t Token) bool {
	if !c.More() || c.seen[t] {
		return c.More()
	}
	c.seen[t] = true
	switch t.Param {
	case "_profile":
		c.values.Profiles = append(c.values.Profiles, t.Code)
	case "_tag":
		c.values.Tags = append(c.values.Tags, Label{System: t.System, Code: t.Code})
	case "_security":
		c.values.Security = append(c.values.Security, Label{System: t.System, Code: t.Code})
	}
	return c.More()
}

// More reports whether the collector takes more values.
func (c *MetaCollector) More() bool { return len(c.seen) <= c.limit }

// Values returns the values gathered, each list sorted.
func (c *MetaCollector) Values() *MetaValues {
	byLabel := func(a, b Label) int {
		return cmp.Or(strings.Compare(a.System, b.System), strings.Compare(a.Code, b.Code))
	}
	slices.Sort(c.values.Profiles)
	slices.SortFunc(c.values.Tags, byLabel)
	slices.SortFunc(c.values.Security, byLabel)
	return &c.values
}

// Tx is a unit of work: its reads see its own writes, and its writes become
// visible and durable together or not at all.
type Tx interface {
	Reader
	Writer
}

// Store is a storage engine. Its methods are safe for concurrent use.
type Store interface {
	Reader
	Writer
	// Transact runs fn in a unit of work. If fn returns an error, nothing it
	// wrote is kept and Transact returns that error. Engines without native
	// multi-document transactions document what they guarantee instead.
	Transact(ctx context.Context, fn func(tx Tx) error) error
	// Close releases the engine's resources.
	Close() error
}
