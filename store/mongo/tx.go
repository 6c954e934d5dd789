package mongo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"

	"carefhir/store"
)

// Transact runs fn in a unit of work. If fn returns an error, nothing it
// wrote is kept and Transact returns that error.
//
// On deployments with multi-document transactions (replica sets and sharded
// clusters) fn runs in a MongoDB transaction with snapshot reads and a
// majority, journaled commit: its writes become visible and durable together
// or not at all. As with any MongoDB transaction, when the deployment reports
// a transient transaction error (a write conflict with another transaction,
// an election) fn runs again from the start in a new transaction, so fn must
// have no effects outside tx. A search of fn that finds nothing claims its
// criteria, and every version fn writes claims the identifiers it carries
// (see claim and identify), so two units that decide to create on finding
// nothing, as conditional creates do, cannot both commit.
//
// Deployments without transactions (standalone servers, FerretDB) commit
// through a journal. Units of work run one at a time in this Store. While fn
// runs, its writes are checked against the current versions and kept in the
// Tx, whose reads see them; nothing reaches the database, so if fn returns
// an error nothing is written. When fn returns nil, the resources the unit
// writes are locked against other writes through this Store (in one order,
// so units never deadlock), checked again, and the whole unit is written to
// the journal and marked committed, durably, before it is applied. The unit
// is all or nothing:
//
//   - a conflict found before the commit point, or any failure before it,
//     leaves nothing written;
//   - a crash after the commit point leaves a unit that Open completes,
//     applying the writes not yet applied (each write is recognised as
//     applied by its version's lastUpdated and bytes, so applying is
//     idempotent); a crash before it leaves a unit that Open discards;
//   - a database error while applying, or another process writing one of
//     the unit's resources meanwhile (a *store.ConflictError), makes
//     Transact undo the writes it applied and return the error.
//
// What the journal does not give is isolation from readers: while a unit is
// applied, and after a crash until the next Open, a reader may see some of
// its writes and not others. Conditional creates are exact: through one
// Store units run one at a time, and across processes a unit whose
// searches found nothing claims their criteria while it commits (see
// claimCriteria), running again once another process's unit holding them
// is done.
func (s *Store) Transact(ctx context.Context, fn func(tx store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.native {
		return s.transactNative(ctx, fn)
	}
	return s.transactBuffered(ctx, fn)
}

func (s *Store) transactNative(ctx context.Context, fn func(tx store.Tx) error) error {
	sess, err := s.sessions()
	if err != nil {
		return fmt.Errorf("mongo: transact: %w", err)
	}
	defer sess.EndSession(context.WithoutCancel(ctx))
	_, err = sess.WithTransaction(ctx, func(context.Context) (any, error) {
		return nil, fn(&nativeTx{s: s, in: func(ctx context.Context) context.Context {
			return sess.Context(context.WithValue(ctx, inTransaction{}, true))
		}})
	}, transactionOptions())
	return err
}

// transactionOptions are those of every transaction: snapshot reads, so
// that every read of the unit sees one point in time, and a majority,
// journaled commit.
func transactionOptions() *options.TransactionOptionsBuilder {
	return options.Transaction().SetReadConcern(readconcern.Snapshot()).SetWriteConcern(durable())
}

// session is what the engine needs of a *mongo.Session. It is an interface
// so that tests can reach the transaction path on servers without
// transactions, with a fake that runs fn as the driver does (again on a
// transient error).
type session interface {
	// WithTransaction runs fn in a transaction, as mongo.Session's does.
	WithTransaction(ctx context.Context, fn func(ctx context.Context) (any, error),
		opts ...options.Lister[options.TransactionOptions]) (any, error)
	// Context returns ctx carrying the session: operations given it run
	// in the session (and its transaction).
	Context(ctx context.Context) context.Context
	EndSession(ctx context.Context)
}

// driverSession is a session of the driver.
type driverSession struct{ *mongo.Session }

func (d driverSession) Context(ctx context.Context) context.Context {
	return mongo.NewSessionContext(ctx, d.Session)
}

// startSession starts a session of the driver on client.
func startSession(client *mongo.Client, opts ...options.Lister[options.SessionOptions]) (session, error) {
	sess, err := client.StartSession(opts...)
	if err != nil {
		return nil, err
	}
	return driverSession{sess}, nil
}

// inTransaction is the key of a context value set on the contexts of
// operations inside a transaction.
type inTransaction struct{}

// nativeTx is a unit of work in a MongoDB transaction.
type nativeTx struct {
	s *Store
	// in returns a context carrying the transaction's session, so that
	// operations run in the transaction.
	in func(ctx context.Context) context.Context
}

var _ store.Finder = (*nativeTx)(nil)

func (t *nativeTx) Read(ctx context.Context, typ, id string) (*store.Version, error) {
	return t.s.Read(t.in(ctx), typ, id)
}

func (t *nativeTx) VRead(ctx context.Context, typ, id string, v int64) (*store.Version, error) {
	return t.s.VRead(t.in(ctx), typ, id, v)
}

// Search answers q in the transaction and, when nothing matches, claims
// q's criteria (see claim), so that a concurrent transaction deciding on
// the same criteria conflicts with this one.
func (t *nativeTx) Search(ctx context.Context, q store.Query) ([]*store.Version, error) {
	tctx := t.in(ctx)
	found, err := t.s.Search(tctx, q)
	if err != nil || len(found) > 0 {
		return found, err
	}
	if err := t.s.claim(tctx, q); err != nil {
		return nil, fmt.Errorf("mongo: search %s: %w", q.Type, err)
	}
	return found, nil
}

// Find answers q in the transaction as Store.Find does outside one (the
// same limits, sort, includes and pages, over the transaction's snapshot
// and its own writes), claiming q's criteria when the first page finds
// nothing, as Search does.
func (t *nativeTx) Find(ctx context.Context, q store.Query) (*store.Page, error) {
	tctx := t.in(ctx)
	page, err := t.s.Find(tctx, q)
	if err != nil || len(page.Matches) > 0 || q.Cursor != "" || (q.Count == 0 && page.Total != 0) {
		return page, err
	}
	if err := t.s.claim(tctx, q); err != nil {
		return nil, fmt.Errorf("mongo: search %s: %w", q.Type, err)
	}
	return page, nil
}

func (t *nativeTx) History(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	return t.s.History(t.in(ctx), q)
}

// Put checks the expected version before writing, because a duplicate key
// inside a transaction aborts it and the conflict must reach fn as a
// *store.ConflictError. It then writes the identity documents of the new
// version (see identify) in the transaction.
func (t *nativeTx) Put(ctx context.Context, w *store.Write) error {
	if err := checkWrite(w); err != nil {
		return err
	}
	tctx := t.in(ctx)
	current, err := t.s.currentVersion(tctx, w.Type, w.ID)
	if err != nil {
		return fmt.Errorf("mongo: put %s/%s: %w", w.Type, w.ID, err)
	}
	if current != w.Expected {
		return conflictError(w, current)
	}
	// Another write holding the version w writes (begun and not finished,
	// or cut short by a crash) is a conflict found here, not by the insert
	// claiming that version: its duplicate key would abort the
	// transaction, failing every later command of fn.
	held, pending, err := t.s.claimed(tctx, w)
	if err != nil {
		return fmt.Errorf("mongo: put %s/%s: %w", w.Type, w.ID, err)
	}
	if held {
		return &store.ConflictError{Type: w.Type, ID: w.ID, Expected: w.Expected, Current: current, Pending: pending}
	}
	if err := t.s.put(tctx, w); err != nil {
		return err
	}
	if err := t.s.identify(tctx, w); err != nil {
		return fmt.Errorf("mongo: put %s/%s: %w", w.Type, w.ID, err)
	}
	return nil
}

var errTxDone = errors.New("mongo: unit of work used after Transact returned")

// heldRetries bounds how often transactBuffered runs a unit again whose
// criteria another process's unit holds, and heldPause is the first pause
// before it does, doubled each time up to a second.
const (
	heldRetries = 12
	heldPause   = 10 * time.Millisecond
)

// transactBuffered runs fn and commits its writes through the journal.
// When another process is committing a unit that searched for the same
// criteria and found nothing, or that found something this unit's
// criteria now match, fn runs again once that unit is done (see
// claimCriteria), as a MongoDB transaction runs again after a write
// conflict: its search then finds what the other created.
func (s *Store) transactBuffered(ctx context.Context, fn func(tx store.Tx) error) error {
	pause := heldPause
	for attempt := 0; ; attempt++ {
		err := s.transactOnce(ctx, fn)
		var held *heldError
		if !errors.As(err, &held) {
			return err
		}
		if attempt == heldRetries {
			return held.conflict
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
	}
}

func (s *Store) transactOnce(ctx context.Context, fn func(tx store.Tx) error) error {
	s.unit.Lock()
	defer s.unit.Unlock()
	tx := &bufferedTx{s: s}
	err := fn(tx)
	tx.mu.Lock()
	tx.done = true
	writes, empty := tx.writes, tx.empty
	tx.mu.Unlock()
	if err != nil {
		return err
	}
	return s.commit(ctx, writes, empty)
}

// resource names one resource.
type resource struct{ typ, id string }

// bufferedTx is a unit of work on a deployment without transactions: it
// keeps its writes until Transact applies them, and its reads see them.
type bufferedTx struct {
	s      *Store
	mu     sync.Mutex
	writes []*store.Write // copies, in the order written
	// empty holds the searches that found nothing: the unit's decision
	// rests on their still finding nothing when it commits.
	empty []store.Query
	done  bool
}

// latest returns the last write to typ/id kept in t, or nil.
func (t *bufferedTx) latest(typ, id string) *store.Write {
	for _, w := range slices.Backward(t.writes) {
		if w.Type == typ && w.ID == id {
			return w
		}
	}
	return nil
}

func (t *bufferedTx) Put(ctx context.Context, w *store.Write) error {
	if err := checkWrite(w); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return errTxDone
	}
	var current int64
	if l := t.latest(w.Type, w.ID); l != nil {
		current = l.VersionID()
	} else {
		v, err := t.s.currentVersion(ctx, w.Type, w.ID)
		if err != nil {
			return fmt.Errorf("mongo: put %s/%s: %w", w.Type, w.ID, err)
		}
		current = v
	}
	if current != w.Expected {
		return conflictError(w, current)
	}
	c := *w
	c.JSON = bytes.Clone(w.JSON)
	c.Index.Tokens = slices.Clone(w.Index.Tokens)
	t.writes = append(t.writes, &c)
	return nil
}

// written returns the version w writes, with bytes of its own.
func written(w *store.Write) *store.Version {
	return &store.Version{Type: w.Type, ID: w.ID, VersionID: w.VersionID(),
		LastUpdated: w.LastUpdated, Deleted: w.Deleted, JSON: bytes.Clone(w.JSON), Method: w.Method}
}

func (t *bufferedTx) Read(ctx context.Context, typ, id string) (*store.Version, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return nil, errTxDone
	}
	if w := t.latest(typ, id); w != nil {
		return written(w), nil
	}
	return t.s.Read(ctx, typ, id)
}

func (t *bufferedTx) VRead(ctx context.Context, typ, id string, v int64) (*store.Version, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return nil, errTxDone
	}
	for _, w := range t.writes {
		if w.Type == typ && w.ID == id && w.VersionID() == v {
			return written(w), nil
		}
	}
	return t.s.VRead(ctx, typ, id, v)
}

// Search answers from the database, with the resources t wrote replaced by
// their versions in t.
func (t *bufferedTx) Search(ctx context.Context, q store.Query) ([]*store.Version, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return nil, errTxDone
	}
	mine := map[string]*store.Write{} // id → latest write, of q.Type
	for _, w := range t.writes {
		if w.Type == q.Type {
			mine[w.ID] = w
		}
	}
	limit := 0
	if q.Count > 0 {
		// Enough that dropping the resources t wrote leaves q.Count.
		limit = q.Count + len(mine)
	}
	found, err := t.s.search(ctx, q, limit)
	if err != nil {
		return nil, err
	}
	vs := slices.DeleteFunc(found, func(v *store.Version) bool { return mine[v.ID] != nil })
	for _, w := range mine {
		if matches(w, q) {
			vs = append(vs, written(w))
		}
	}
	slices.SortFunc(vs, func(a, b *store.Version) int { return strings.Compare(a.ID, b.ID) })
	if q.Count > 0 && len(vs) > q.Count {
		vs = vs[:q.Count]
	}
	if len(vs) == 0 {
		t.empty = append(t.empty, q)
	}
	return vs, nil
}

// History answers from the database merged with the versions t wrote.
func (t *bufferedTx) History(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return nil, errTxDone
	}
	after, err := decodeCursor(q.Cursor)
	if err != nil {
		return nil, err
	}
	// A version t replaces stops being current when t's write is made,
	// which the database does not know yet: leave it out where that
	// matters.
	exclude := bson.A{}
	var mine []*store.Version
	extra := 0
	for i, w := range t.writes {
		if !q.AtLow.IsZero() && w.Expected > 0 && t.first(i) && !w.LastUpdated.After(q.AtLow) {
			exclude = append(exclude, bson.D{
				{Key: fieldType, Value: w.Type}, {Key: fieldID, Value: w.ID}, {Key: fieldVersion, Value: w.Expected}})
		}
	}
	for i, w := range t.writes {
		v := written(w)
		if !selects(q, v, t.end(i)) {
			continue
		}
		extra++
		if after == nil || after.after(v) {
			mine = append(mine, v)
		}
	}
	vs, total, err := t.s.history(ctx, q, exclude)
	if err != nil {
		return nil, err
	}
	if q.Cursor != "" {
		extra = 0 // counted in the total the cursor carries
	}
	vs = append(vs, mine...)
	slices.SortFunc(vs, newer)
	if len(vs) > q.Count+1 {
		vs = vs[:q.Count+1]
	}
	return historyPage(vs, total+extra, q.Count), nil
}

// first reports whether t.writes[i] is the first write t made to its
// resource.
func (t *bufferedTx) first(i int) bool {
	w := t.writes[i]
	return !slices.ContainsFunc(t.writes[:i], func(x *store.Write) bool { return x.Type == w.Type && x.ID == w.ID })
}

// end returns when the version t.writes[i] wrote stops being current: the
// time of t's next write to its resource, zero if there is none.
func (t *bufferedTx) end(i int) time.Time {
	w := t.writes[i]
	for _, x := range t.writes[i+1:] {
		if x.Type == w.Type && x.ID == w.ID {
			return x.LastUpdated
		}
	}
	return time.Time{}
}

var _ store.Finder = (*bufferedTx)(nil)

// Find answers q from the database when nothing t wrote can change the
// answer: t wrote no resource of q's type, nor of a type its chains,
// _has, includes or revincludes reach. Otherwise it returns an error
// wrapping errors.ErrUnsupported: the answer would have to merge t's
// writes into sorted, included and paged results, which Search does
// without sort, includes or pages.
func (t *bufferedTx) Find(ctx context.Context, q store.Query) (*store.Page, error) {
	t.mu.Lock()
	done := t.done
	written := map[string]bool{}
	for _, w := range t.writes {
		written[w.Type] = true
	}
	t.mu.Unlock()
	if done {
		return nil, errTxDone
	}
	if reaches(q, written) {
		return nil, fmt.Errorf("mongo: search %s after writing what it reads, inside a unit of work: %w", q.Type, errors.ErrUnsupported)
	}
	page, err := t.s.Find(ctx, q)
	if err != nil || len(page.Matches) > 0 || q.Cursor != "" || (q.Count == 0 && page.Total != 0) {
		return page, err
	}
	t.mu.Lock()
	t.empty = append(t.empty, q)
	t.mu.Unlock()
	return page, nil
}

// reaches reports whether q reads resources of any of the types
// (store.Query.Reads).
func reaches(q store.Query, types map[string]bool) bool {
	if len(types) == 0 {
		return false
	}
	read, all := q.Reads()
	return all || slices.ContainsFunc(read, func(t string) bool { return types[t] })
}
