// Package notify delivers FHIR R4 Subscriptions over the rest-hook
// channel. A write hook matches every written version against the live
// Subscriptions' criteria, with the search parser and matcher of GET, and
// writes an outbox row for each match in the unit of work of the write, so
// a notification is stored exactly when its write is. A deliverer leases
// rows (so that several processes on one database deliver each once),
// delivers them in order per subscription with exponential backoff, and
// sets a subscription failing for too long to error. What a notification
// carries is read as the subscription's owner, through the access layer:
// it never holds what the owner's token could not read.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"carefhir/fhir"
	"carefhir/fhir/search"
	"carefhir/operation"
	"carefhir/server/access"
	"carefhir/store"
	"carefhir/store/lease"
)

// Config configures a Notifier. Zero durations take the defaults below.
type Config struct {
	// Indexer extracts the search values of written versions; its
	// registry parses criteria. It must be the server's (server.NewIndexer).
	Indexer *search.Indexer
	// BaseURL is the server's base, so that absolute references to it
	// match as local ones.
	BaseURL string
	// Types are the resource types Subscriptions may be about; nil: every
	// type. The hook runs on writes of these types (and Subscription)
	// only, so each of their writes is a unit of work and other writes
	// stay single writes.
	Types []string
	// AllowHTTP allows endpoints on plain http beyond loopback.
	AllowHTTP bool
	// Client delivers; nil: a client that refuses link-local and metadata
	// addresses once names are resolved, follows no redirect and uses no
	// proxy.
	Client *http.Client
	// Now is the clock of backoff, leases and the error deadline.
	Now func() time.Time
	// MinBackoff is the wait after a first failure, doubled after each
	// further one up to MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// ErrorAfter is how long a subscription may fail before it is set to
	// error.
	ErrorAfter time.Duration
	// Lease is how long a process holds a row it delivers; a row whose
	// process died is delivered by another once that one has seen it
	// held for a lease, by its own clock. It should exceed Timeout, or a
	// slow delivery is taken for a dead process's and made again.
	Lease time.Duration
	// Poll is how often the outbox is scanned besides when a write of
	// this process adds to it; it bounds how soon rows of other processes
	// and retries are delivered.
	Poll time.Duration
	// Timeout bounds each request to an endpoint.
	Timeout time.Duration
	// Batch is how many pending rows one scan reads; 0: DefaultBatch.
	Batch int
	// KeepEvents is how long the events of a topic-based subscription are
	// kept for $events once delivered; KeepLastEvents of its latest are
	// kept however old (0: DefaultKeepLastEvents).
	KeepEvents     time.Duration
	KeepLastEvents int
	// PurgeBatch bounds the records of each kind one purge pass removes;
	// 0: DefaultPurgeBatch.
	PurgeBatch int
	// Reauthorize, when set, checks at each delivery of an event that the
	// authorisation of the subscription's owner is still in place
	// (auth.Service.Reauthorize), and returns the owner narrowed to what
	// it may still do; an error says why it lapsed, and sets the
	// subscription to error. Nil: the owner recorded is not re-checked
	// (a server without authorisation).
	Reauthorize func(p *access.Principal, now time.Time) (*access.Principal, error)
	// Auditor records in the audit trail each notification delivered
	// that names or carries its resource; nil: none are recorded.
	Auditor *access.Auditor
	// MaxPerOwner bounds the live (requested or active) Subscriptions of
	// one owner, the same subject of the same client: every write of a
	// type is matched against each live Subscription of it. 0:
	// DefaultMaxPerOwner.
	MaxPerOwner int
	// Holder names this process in leases; empty: a random name.
	Holder string
	Logger *slog.Logger
}

// The defaults of Config.
const (
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = 5 * time.Minute
	DefaultErrorAfter = 24 * time.Hour
	DefaultLease      = time.Minute
	DefaultPoll       = time.Second
	DefaultTimeout    = 30 * time.Second
	DefaultBatch      = 1000
	DefaultKeepEvents = 7 * 24 * time.Hour
	// DefaultKeepLastEvents is one $events answer's worth, so that a
	// client that finds a gap in the event numbers only when the next
	// notification comes, however much later, can fetch what it missed.
	DefaultKeepLastEvents = maxEvents
	DefaultPurgeBatch     = 1000
	DefaultMaxPerOwner    = 100
)

// Notifier matches writes against subscriptions and delivers them.
type Notifier struct {
	cfg    Config
	reg    *search.Registry
	client *http.Client

	// store is the server's store of operations, set by Attach.
	store atomic.Pointer[storeRef]

	subsMu sync.Mutex
	kept   subList // the live subscriptions as committed
	// units holds, by the records of each unit of work under way that
	// wrote a Subscription, the live subscriptions as that unit sees
	// them, until it ends (written).
	units map[store.Tx]*subList
	// refused holds, by id, the live Subscriptions a load found this
	// server refuses now (stored under a setting since removed, such as
	// AllowHTTP), for the deliverer to watch (settleRefused). Its own
	// lock: a load runs under subsMu.
	refusedMu sync.Mutex
	refused   map[string]refusal
	// refusing holds, by subscription id, when this process first saw
	// each refused Subscription as it stands (settleRefused).
	refusing lease.Watch[refusalSight]
	// beyondTypes holds the types outside Types of the live Subscriptions
	// the last load found refused here and matched all the same (load).
	beyondTypes atomic.Pointer[map[string]bool]

	idMu   sync.Mutex
	lastID int64 // rows this process issued

	wake chan struct{}

	// seenHeld holds, by claim id, when this process first saw a claim
	// of another held (claim).
	seenHeld lease.Watch[struct{}]
	// seenGates holds, by gate id, when this process first saw each
	// version of an owner's gate (purgeGates).
	seenGates lease.Watch[int64]
	// seenFailed holds, by row id, when this process first saw each
	// version of a row whose failed attempt another process recorded
	// (due).
	seenFailed lease.Watch[int64]

	lastSentMu sync.Mutex
	lastSent   map[string]time.Time // by subscription, for heartbeats

	delivered, failures, withheld atomic.Int64

	// purgeMu holds purgeCursor, where in the subscriptions the next
	// purge pass takes up (retain.go).
	purgeMu     sync.Mutex
	purgeCursor string
	// counterPurged holds, by subscription, the version of its counter
	// whose earlier versions the last pass removed, so that a pass
	// removes them only once the counter has been written since.
	counterPurged map[string]int64
}

type storeRef struct{ s operation.Store }

// subList is a list of the live subscriptions, loaded or to be.
type subList struct {
	subs   []*subscription
	loaded bool // false: load them again
}

// New returns a Notifier; Run delivers.
func New(cfg Config) (*Notifier, error) {
	if cfg.Indexer == nil {
		return nil, errors.New("notify: an indexer is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	setDefault(&cfg.MinBackoff, DefaultMinBackoff)
	setDefault(&cfg.MaxBackoff, DefaultMaxBackoff)
	setDefault(&cfg.ErrorAfter, DefaultErrorAfter)
	setDefault(&cfg.Lease, DefaultLease)
	setDefault(&cfg.Poll, DefaultPoll)
	setDefault(&cfg.Timeout, DefaultTimeout)
	setDefault(&cfg.KeepEvents, DefaultKeepEvents)
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.KeepLastEvents <= 0 {
		cfg.KeepLastEvents = DefaultKeepLastEvents
	}
	if cfg.PurgeBatch <= 0 {
		cfg.PurgeBatch = DefaultPurgeBatch
	}
	if cfg.MaxPerOwner <= 0 {
		cfg.MaxPerOwner = DefaultMaxPerOwner
	}
	if cfg.Holder == "" {
		cfg.Holder = "p" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{cfg: cfg, reg: cfg.Indexer.Registry(), client: cfg.Client, wake: make(chan struct{}, 1), lastSent: map[string]time.Time{}}
	if n.client == nil {
		n.client = guardedClient(cfg.Timeout)
	}
	return n, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Attach gives the Notifier the server's store of operations (for
// server.Config.Attach): deliveries read through it as each subscription's
// owner.
func (n *Notifier) Attach(s operation.Store) { n.store.Store(&storeRef{s}) }

// hookName names the Notifier's write hook, and what its Check keeps for
// its After (operation.Change.Keep).
const hookName = "subscriptions"

// Hook is the write hook (for server.Config.Hooks) that checks
// Subscriptions and writes the outbox.
func (n *Notifier) Hook() operation.Hook {
	h := operation.Hook{Name: hookName, Check: n.check, After: n.after}
	if n.cfg.Types != nil {
		h.Types = append([]string{"Subscription"}, n.cfg.Types...)
		h.Also = n.hooksBeyondTypes
	}
	return h
}

// Backlog is the number of notifications waiting to be delivered (at most
// 10,000 are counted).
func (n *Notifier) Backlog(ctx context.Context) (int, error) {
	r, err := n.records()
	if err != nil {
		return 0, err
	}
	vs, err := r.Search(ctx, pendingQuery(10000))
	return len(vs), err
}

// Failures is the number of failed delivery attempts since the process
// started; Delivered the number of notifications delivered; Withheld the
// number dropped undelivered: the owner may not read what they are about,
// or the subscription was switched off or deleted meanwhile.
func (n *Notifier) Failures() int64  { return n.failures.Load() }
func (n *Notifier) Delivered() int64 { return n.delivered.Load() }
func (n *Notifier) Withheld() int64  { return n.withheld.Load() }

// recorder is the Store of operations and hooks of the server: it also
// reaches the engine below the access layer, in the same unit of work,
// and reads versions through the access layer.
type recorder interface {
	Records() store.Tx
	VRead(ctx context.Context, typ, id string, version int64) (*store.Version, error)
}

func asRecorder(s operation.Store) (recorder, error) {
	r, ok := s.(recorder)
	if !ok {
		return nil, fmt.Errorf("notify: the server's store (%T) does not reach its engine", s)
	}
	return r, nil
}

// records returns the engine below the access layer, outside any unit of
// work.
func (n *Notifier) records() (store.Tx, error) {
	ref := n.store.Load()
	if ref == nil {
		return nil, errors.New("notify: not attached to a server")
	}
	r, err := asRecorder(ref.s)
	if err != nil {
		return nil, err
	}
	return r.Records(), nil
}

// subscribable reports whether Subscriptions may be about typ.
func (n *Notifier) subscribable(typ string) bool {
	return n.cfg.Types == nil || typ == "Subscription" || slices.Contains(n.cfg.Types, typ)
}

// byServer reports whether the request of ctx is the server's own (such
// as the deliverer setting a status), not a client's.
func byServer(ctx context.Context) bool {
	p := access.Requester(ctx)
	return p != nil && p.System
}

// check refuses Subscriptions this server cannot deliver, and keeps for
// after the version a write replaces where after needs it: a delete's,
// which its notifications are about, and one a topic's trigger compares.
func (n *Notifier) check(ctx context.Context, s operation.Store, c *operation.Change) error {
	if c.Deleted || n.topicType(ctx, s, c.Type) {
		if v, err := s.Read(ctx, c.Type, c.ID); err == nil && !v.Deleted {
			c.Keep(hookName, v)
		}
	}
	if c.Deleted {
		return nil
	}
	res, ok := c.Resource.(*fhir.Subscription)
	if !ok || byServer(ctx) {
		return nil
	}
	switch st := res.Status.Get(); st {
	case statusRequested, statusOff:
	default:
		return invalid("Subscription.status", "a client writes a Subscription as requested (or off); the server sets %s", st)
	}
	sub, err := n.parseSubscription(res)
	if err != nil {
		return err
	}
	if sub.status != statusRequested {
		return nil
	}
	if sub.ended(n.cfg.Now()) {
		return invalid("Subscription.end", "end %s has passed: the Subscription would be switched off at once", res.End.Get())
	}
	if err := ownerMayRead(ctx, s, sub.typ); err != nil {
		return err
	}
	return n.ownerHasRoom(ctx, s, c.ID)
}

// ownerHasRoom refuses a live Subscription that would give its owner, the
// requester of ctx, more than MaxPerOwner live ones: each is matched
// against every write of its type, so their number is the cost of every
// write. The Subscription written, id, is not counted: writing one of its
// own again is allowed at the limit. The owner's gate is written in the
// same unit of work, conditional on the version read, and the live
// Subscriptions are counted afresh through it, not from a load another
// process's write may have made stale: two units of one owner, in one
// process or two, cannot both pass on a count that misses the other. They
// are counted by the index of their owner records, at most MaxPerOwner+1
// of them read, however many Subscriptions others hold.
func (n *Notifier) ownerHasRoom(ctx context.Context, s operation.Store, id string) error {
	r, err := asRecorder(s)
	if err != nil {
		return err
	}
	tx := r.Records()
	p := access.Requester(ctx)
	if p == nil {
		return errors.New("notify: a subscription written outside a request")
	}
	party := partyKey(ownerOf(p))
	if err := n.passGate(ctx, tx, party); err != nil {
		return err
	}
	live, err := tx.Search(ctx, liveOwnersQuery(party, n.cfg.MaxPerOwner+1))
	if err != nil {
		return fmt.Errorf("notify: live subscriptions of the owner: %w", err)
	}
	held := 0
	for _, v := range live {
		if v.ID != id {
			held++
		}
	}
	if held >= n.cfg.MaxPerOwner {
		return operation.Errorf(422, "too-costly", "Subscription.status",
			"its owner has %d live Subscriptions, as many as one owner may have: switch one off or delete it first", held)
	}
	return nil
}

// passGate writes the gate of party (partyKey), the owner of a live
// Subscription written, conditional on the version read: of two units of
// work of one owner side by side, one fails (a *store.ConflictError, or
// on a MongoDB replica set a write conflict that runs it again, when its
// count sees the other's Subscription).
func (n *Notifier) passGate(ctx context.Context, tx store.Tx, party string) error {
	var expected int64
	switch v, err := tx.Read(ctx, gateType, party); {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return fmt.Errorf("notify: owner's gate %s: %w", party, err)
	default:
		expected = v.VersionID
	}
	w := &store.Write{Type: gateType, ID: party, Expected: expected, LastUpdated: n.cfg.Now().UTC().Truncate(time.Millisecond), JSON: []byte(`{}`)}
	if err := tx.Put(ctx, w); err != nil {
		return fmt.Errorf("notify: owner's gate %s: %w", party, err)
	}
	return nil
}

// ownerMayRead refuses, as the access layer refuses a search through a
// type the token may not read, a Subscription whose owner (the requester
// of ctx) may read no resource of typ: every notification of it would be
// withheld.
func ownerMayRead(ctx context.Context, s operation.Store, typ string) error {
	a, ok := s.(interface {
		Allow(ctx context.Context, typ string, perm access.Perm) error
	})
	if !ok {
		return fmt.Errorf("notify: the server's store (%T) does not decide access", s)
	}
	p := access.Requester(ctx)
	if p == nil {
		return errors.New("notify: a subscription written outside a request")
	}
	octx, _ := access.Begin(ctx)
	err := a.Allow(access.WithPrincipal(octx, p), typ, access.Read)
	var denied *access.Denied
	if errors.As(err, &denied) {
		return operation.Errorf(http.StatusForbidden, "forbidden", "Subscription.criteria",
			"the Subscription's owner, who writes it, may read no %s, so it could notify nothing: %s", typ, denied.Message)
	}
	if err != nil {
		return fmt.Errorf("notify: access of the owner to %s: %w", typ, err)
	}
	return nil
}

// after writes the outbox rows of a write: a handshake for a Subscription
// a client requested, and an event for each live subscription whose
// criteria the written version matches (for a delete, the version
// deleted).
func (n *Notifier) after(ctx context.Context, s operation.Store, c *operation.Change) ([]operation.Issue, error) {
	r, err := asRecorder(s)
	if err != nil {
		return nil, err
	}
	tx := r.Records()
	now := n.cfg.Now()
	if c.Type == "Subscription" {
		n.written(s, tx)
		res, _ := c.Resource.(*fhir.Subscription) // nil for a delete
		live := res != nil && liveStatus(res.Status.Get())
		if res == nil || byServer(ctx) {
			if err := markLive(ctx, tx, c.ID, live, now); err != nil {
				return nil, fmt.Errorf("notify: %w", err)
			}
		} else {
			p := access.Requester(ctx)
			if p == nil {
				return nil, errors.New("notify: a subscription written outside a request")
			}
			if err := recordOwner(ctx, tx, c.ID, ownerOf(p), c.Created, c.Version.VersionID, live, now); err != nil {
				return nil, err
			}
			if c.Created && c.Version.VersionID > 1 {
				// Created under the id of a deleted one: its events start
				// from 0, as a new subscription's, so that its
				// events-since-subscription-start counts its own events
				// only, and $events lists none of the deleted one's.
				if err := restartCounter(ctx, tx, c.ID, now); err != nil {
					return nil, fmt.Errorf("notify: restart the events of subscription %s: %w", c.ID, err)
				}
			}
			if res.Status.Get() == statusRequested {
				// Dated at the epoch, the handshake's row comes before
				// every row of the subscription still pending: one written
				// again as requested (a failing one given a new endpoint)
				// is sent its handshake before those notifications, as R4
				// has a requested subscription's endpoint checked first.
				hs := &row{Subscription: c.ID, Kind: kindHandshake, SubscriptionVersion: c.Version.VersionID, Created: now}
				if err := n.enqueue(ctx, tx, hs, time.Unix(0, 0), 0); err != nil {
					return nil, err
				}
			}
		}
	}
	before, _ := c.Kept(hookName).(*store.Version)
	v := c.Version
	if c.Deleted {
		if before == nil {
			return nil, nil
		}
		v = before
	}
	subs, err := n.subscriptions(ctx, tx)
	if err != nil {
		return nil, err
	}
	var ix *store.Index
	var beforeMap, afterMap map[string]any
	decoded := false
	for _, sub := range subs {
		if sub.typ != c.Type || !sub.live() || sub.ended(now) {
			continue
		}
		if sub.topic != nil {
			if !decoded {
				if before == nil && !c.Created && !c.Deleted {
					// An update whose check found no topic-based
					// subscription of its type, which a load since has
					// (made by another process meanwhile): the version
					// it replaces is the one before it.
					if before, err = tx.VRead(ctx, c.Type, c.ID, c.Version.VersionID-1); err != nil {
						return nil, fmt.Errorf("notify: the version %s/%s replaces: %w", c.Type, c.ID, err)
					}
				}
				beforeMap, decoded = decodeMap(before), true
				if !c.Deleted {
					afterMap = decodeMap(c.Version)
				}
			}
			if !sub.topic.triggered(beforeMap, afterMap) {
				continue
			}
		}
		if ix == nil {
			got, err := n.cfg.Indexer.IndexJSON(v.Type, v.JSON)
			if err != nil {
				return nil, fmt.Errorf("notify: index %s/%s: %w", v.Type, v.ID, err)
			}
			ix = &got
		}
		if !sub.matches(c.ID, v, ix) {
			continue
		}
		ev := &row{Subscription: sub.id, Kind: kindEvent, Type: c.Type, ID: c.ID, Version: c.Version.VersionID, Deleted: c.Deleted, Method: c.Version.Method,
			Creates: c.Created, SubscriptionVersion: sub.version, Created: now}
		if sub.topic != nil {
			ev.Topic = sub.topic.URL
		}
		if err := n.enqueue(ctx, tx, ev, c.Version.LastUpdated, c.Version.VersionID); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// topicType reports whether a live topic-based subscription is about
// resources of typ: their writes need the version before. The
// subscriptions are not loaded for a type no topic is about (a
// Subscription's write loads them once, in after, for its unit alone).
func (n *Notifier) topicType(ctx context.Context, s operation.Store, typ string) bool {
	if !slices.ContainsFunc(Topics, func(t topic) bool { return t.Type == typ }) {
		return false
	}
	r, err := asRecorder(s)
	if err != nil {
		return false
	}
	subs, err := n.subscriptions(ctx, r.Records())
	if err != nil {
		return false
	}
	return slices.ContainsFunc(subs, func(sub *subscription) bool { return sub.topic != nil && sub.typ == typ && sub.live() })
}

// enqueue writes a new outbox row, ordered by nextID, and wakes the
// deliverer.
func (n *Notifier) enqueue(ctx context.Context, tx store.Tx, r *row, at time.Time, version int64) error {
	w, err := rowWrite(n.nextID(at, version), 0, r, r.Created)
	if err != nil {
		return err
	}
	if err := tx.Put(ctx, w); err != nil {
		return fmt.Errorf("notify: outbox: %w", err)
	}
	select {
	case n.wake <- struct{}{}:
	default:
	}
	return nil
}

// nextID returns the id of an outbox row about a version written at (its
// lastUpdated) as version: at in nanoseconds, version, then a count of the
// rows this process issued, and the holder, so that rows sort by
// lastUpdated and version. A version is never dated before the one it
// replaces, whichever process writes it (server/service.go, notBefore),
// so the rows of one resource sort in the order of its versions even when
// they come from processes whose clocks are apart; this process's clock,
// which may be, orders nothing. A handshake is dated at the epoch, so
// that it comes before every event of its Subscription: those pending
// from before it was written again, and those written with it in a
// transaction.
func (n *Notifier) nextID(at time.Time, version int64) string {
	n.idMu.Lock()
	n.lastID++
	seq := n.lastID
	n.idMu.Unlock()
	return fmt.Sprintf("%019d-%012d-%012d-%s", at.UnixNano(), version, seq, n.cfg.Holder)
}

// invalidate makes the next match reload the subscriptions.
func (n *Notifier) invalidate() {
	n.subsMu.Lock()
	n.kept.loaded = false
	n.subsMu.Unlock()
}

// unitEnder is the store of a unit of work that runs a function once the
// unit has ended, told whether it committed (the server's, AtEnd), and
// reports whether it is bound to one.
type unitEnder interface {
	AtEnd(fn func(committed bool)) bool
}

// written notes that the unit of work of s, whose records are tx, wrote a
// Subscription. From then on its own writes are matched against the
// subscriptions as it sees them, loaded through it and kept for it alone:
// kept for every write, they would hold its Subscription writes before
// they commit, and after a rollback (a later entry of its transaction
// refused) until the next poll, matching writes meanwhile for a
// Subscription never created and not for one whose delete was undone.
// The writes of other units load them again at once, each through its
// own unit, which sees the Subscription as soon as the store lets it (a
// write queued behind this one in SQLite's commit group commits with it,
// and must be matched against it). Once the unit has ended (AtEnd),
// committed or not, the next write loads them again, so that neither its
// commit nor a failed one, which another unit may have seen, leaves a
// list behind that the store does not hold. A store that runs nothing at
// the end of its units has them loaded again at once.
func (n *Notifier) written(s operation.Store, tx store.Tx) {
	n.subsMu.Lock()
	defer n.subsMu.Unlock()
	n.kept.loaded = false
	if u := n.units[tx]; u != nil {
		u.loaded = false
		return
	}
	e, ok := s.(unitEnder)
	if !ok || !e.AtEnd(func(bool) {
		n.subsMu.Lock()
		delete(n.units, tx)
		n.kept.loaded = false
		n.subsMu.Unlock()
	}) {
		return
	}
	if n.units == nil {
		n.units = map[store.Tx]*subList{}
	}
	n.units[tx] = &subList{}
}

// subscriptions returns the live subscriptions for a write's hook, loaded
// through tx, the records of the write's unit of work, when a Subscription
// was written since they were last loaded, or at every poll
// (subscriptions written by other processes). Only these loads are kept:
// a unit of work sees every Subscription whose write has committed or is
// in it; those of a unit that wrote a Subscription are kept for it alone
// (written).
func (n *Notifier) subscriptions(ctx context.Context, tx store.Tx) ([]*subscription, error) {
	n.subsMu.Lock()
	defer n.subsMu.Unlock()
	l := &n.kept
	if u := n.units[tx]; u != nil {
		l = u
	}
	if l.loaded {
		return l.subs, nil
	}
	subs, err := n.load(ctx, tx)
	if err != nil {
		return nil, err
	}
	l.subs, l.loaded = subs, true
	return subs, nil
}

// current returns the live subscriptions for the deliverer, which reads
// outside any unit of work: those kept, or else a load that is not kept.
// Such a load misses a Subscription whose write has not committed yet;
// kept, it would leave that Subscription unmatched by the writes after
// its own until the next reload.
func (n *Notifier) current(ctx context.Context, r store.Reader) ([]*subscription, error) {
	n.subsMu.Lock()
	subs, loaded := n.kept.subs, n.kept.loaded
	n.subsMu.Unlock()
	if loaded {
		return subs, nil
	}
	return n.load(ctx, r)
}

// load reads the live subscriptions through r.
func (n *Notifier) load(ctx context.Context, r store.Reader) ([]*subscription, error) {
	vs, err := r.Search(ctx, store.Query{Type: "Subscription"})
	if err != nil {
		return nil, fmt.Errorf("notify: load subscriptions: %w", err)
	}
	var subs []*subscription
	beyond := map[string]bool{}
	for _, v := range vs {
		res, err := decodeSubscription(v)
		if err != nil {
			n.cfg.Logger.Warn("subscription unreadable", "id", v.ID, "err", err)
			continue
		}
		sub, err := n.parseSubscription(res)
		if err != nil {
			// Stored before a rule it breaks, or under a setting since
			// removed: set to error by the deliverer (settleRefused), so
			// that its client is told. One that other settings accept is
			// still matched: during a rolling change of settings, a
			// process that accepts it delivers what writes here match.
			if !liveStatus(res.Status.Get()) {
				continue
			}
			n.noteRefused(v.ID, v.VersionID, err)
			if sub, err = n.parseUnderAnySettings(res); err != nil {
				continue
			}
			sub.refused = true
			if !n.subscribable(sub.typ) {
				beyond[sub.typ] = true
			}
		}
		sub.version = v.VersionID
		subs = append(subs, sub)
	}
	n.beyondTypes.Store(&beyond)
	return subs, nil
}

// hooksBeyondTypes reports whether writes of typ, a type outside Types,
// run the hook: a live Subscription of typ is stored, which this server
// refuses and another, whose Types list it, may accept, as the last load
// of the Subscriptions found. Before any load every write runs it, and
// the first loads them: a process started during a rolling change of
// settings may handle writes before its first poll.
func (n *Notifier) hooksBeyondTypes(typ string) bool {
	beyond := n.beyondTypes.Load()
	return beyond == nil || (*beyond)[typ]
}

// refusal is a live Subscription this server refuses: the version
// refused, and why.
type refusal struct {
	version int64
	why     string
}

// refusalSight is a refused Subscription as the deliverer sees it: its
// version, and its oldest pending outbox row ("": none). Another process
// that accepts it changes one or the other as it delivers.
type refusalSight struct {
	version int64
	oldest  string
}

// noteRefused notes that version of live subscription id is refused now,
// for err.
func (n *Notifier) noteRefused(id string, version int64, err error) {
	why := err.Error()
	var oe *operation.Error
	if errors.As(err, &oe) && len(oe.Issues) > 0 {
		why = oe.Issues[0].Diagnostics
	}
	n.refusedMu.Lock()
	defer n.refusedMu.Unlock()
	if n.refused == nil {
		n.refused = map[string]refusal{}
	}
	n.refused[id] = refusal{version, why}
}

// settleRefused sets to error, with the reason in Subscription.error, and
// logs, each live subscription this server refuses now (one stored while
// --notify-allow-http was set, say, whose http endpoint is refused once it
// is not) that it has seen unchanged, with the same oldest row pending,
// for ErrorAfter by its own clock. Skipped silently, its client would wait
// for notifications that never come. Not at once: during a rolling change
// of settings, other processes may accept it and deliver its rows (which
// this one leaves to them, refuses), and setting it to error would stop
// them.
func (n *Notifier) settleRefused(ctx context.Context) {
	n.refusedMu.Lock()
	refused := n.refused
	n.refused = nil
	n.refusedMu.Unlock()
	now := n.cfg.Now()
	n.refusing.Forget(func(_ string, first time.Time) bool { return now.Sub(first) > 2*n.cfg.ErrorAfter })
	if len(refused) == 0 {
		return
	}
	recs, err := n.records()
	if err != nil {
		return
	}
	for id, r := range refused {
		sight := refusalSight{version: r.version}
		vs, err := recs.Search(ctx, pendingOf(id, 1))
		if err != nil {
			n.cfg.Logger.Error("notify: read refused subscription's rows", "subscription", id, "err", err)
			continue
		}
		if len(vs) > 0 {
			sight.oldest = vs[0].ID + "-" + strconv.FormatInt(vs[0].VersionID, 10)
		}
		if !n.refusing.Expired(id, sight, now, n.cfg.ErrorAfter) {
			continue
		}
		n.cfg.Logger.Warn("notify: subscription refused by this server's settings", "subscription", id, "reason", r.why)
		msg := fmt.Sprintf("this server no longer accepts the Subscription: %s; write it again, as requested, as this server accepts it", r.why)
		if err := n.setError(ctx, id, msg); err != nil {
			n.cfg.Logger.Error("notify: set subscription error", "subscription", id, "err", err)
		}
	}
}

// polled returns the live subscriptions for the work of a poll
// (heartbeats, settleEnded), loaded once for all of it.
func (n *Notifier) polled(ctx context.Context) ([]*subscription, error) {
	recs, err := n.records()
	if err != nil {
		return nil, err
	}
	subs, err := n.current(ctx, recs)
	if err != nil && ctx.Err() == nil {
		n.cfg.Logger.Error("notify: load subscriptions", "err", err)
	}
	return subs, err
}

// settleEnded switches off each live subscription of subs past its end
// (Subscription.end, R4: the time for the server to turn it off), by this
// process's clock, the one that also stops matching writes to it then. Its
// pending notifications are dropped with it.
func (n *Notifier) settleEnded(ctx context.Context, subs []*subscription) {
	now := n.cfg.Now()
	for _, sub := range subs {
		if !sub.live() || !sub.ended(now) {
			continue
		}
		if err := n.setStatus(ctx, sub.id, statusOff, ""); err != nil {
			n.cfg.Logger.Error("notify: switch off ended subscription", "subscription", sub.id, "err", err)
		}
	}
}

// refuses reports whether subscription sub is live and refused by this
// server's settings: its rows are left to processes that accept it.
func (n *Notifier) refuses(ctx context.Context, recs store.Reader, sub string) bool {
	sv, err := recs.Read(ctx, "Subscription", sub)
	if err != nil || sv.Deleted {
		return false
	}
	res, err := decodeSubscription(sv)
	if err != nil {
		return false
	}
	if !liveStatus(res.Status.Get()) {
		return false
	}
	_, err = n.parseSubscription(res)
	return err != nil
}
