package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/fhir/lexical"
	"carefhir/fhir/search"
	ext "carefhir/operation"
	"carefhir/server/access"
	"carefhir/store"
)

// service holds the interaction logic of the FHIR REST API, below HTTP:
// create, update, delete and their conditional forms, written once against
// the store interface. It is also the one place where every read and write
// passes, so access control will narrow requests here.
type service struct {
	store store.Store
	index *search.Indexer // extracts the search values of every write
	now   func() time.Time
	// hooks run on the writes of their types (see hooks.go); bind gives
	// them the store of the unit of work a write is part of.
	hooks []ext.Hook
	bind  func(tx store.Tx) ext.Store
	// ends holds, by the store.Tx of each unit of work under way, the
	// *ends to run once it has ended (transactEnding).
	ends sync.Map
	// validate checks a resource the server writes on a client's behalf,
	// such as the Provenance of an X-Provenance header (nil: no checks).
	validate func(ctx context.Context, res fhir.Resource) error
	// hold bounds the time a unit of work runs (see transact).
	hold time.Duration
	// writes keeps the writes under way: every write begins there before
	// its versions are stamped (see trackWrites, opStore).
	writes *store.InFlight
}

// transact runs fn in a unit of work of the store, with a context that
// ends after s.hold: on SQLite a unit of work holds the single writer, so
// searches inside it (conditional writes, GET entries of a transaction)
// must not keep every other write waiting for long. A unit stopped so is
// 503, and nothing of it is written.
func (s *service) transact(ctx context.Context, fn func(ctx context.Context, tx store.Tx) error) error {
	hctx, cancel := context.WithTimeout(ctx, s.hold)
	defer cancel()
	err := s.transactEnding(hctx, func(tx store.Tx) error { return fn(hctx, tx) })
	if err != nil && hctx.Err() != nil && ctx.Err() == nil {
		e := errorf(http.StatusServiceUnavailable, "too-costly",
			"the unit of work did not finish within %s, the most one may hold the store's writer: nothing was written; make its searches narrower", s.hold)
		e.Header = http.Header{"Retry-After": {"5"}}
		return fmt.Errorf("%w (stopped: %v)", e, err)
	}
	return err
}

// maxRetries bounds how often a write that lost an optimistic-concurrency
// race re-reads and retries before answering 409.
const maxRetries = 16

// Retries of a lost race wait a random time below retryWait doubled at
// each attempt, up to maxRetryWait: writers that retried at once lost to
// each other again (on MongoDB, 6 or 7 of 16 simultaneous updates of one
// resource answered 409 after 8 retries each).
const (
	retryWait    = time.Millisecond
	maxRetryWait = 100 * time.Millisecond
)

// retryConflict reports whether a write that lost a race at attempt (0 the
// first) is tried again, once it has waited its turn; not after
// maxRetries, nor once ctx is done.
func retryConflict(ctx context.Context, attempt int) bool {
	if attempt >= maxRetries {
		return false
	}
	wait := min(retryWait<<attempt, maxRetryWait)
	t := time.NewTimer(rand.N(wait) + 1)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func checkID(id, expression string) error {
	if !lexical.ValidID(id) {
		return errorf(http.StatusBadRequest, "value",
			"id %q is invalid: ids are 1 to 64 characters of A-Z, a-z, 0-9, '-' and '.'", truncate(id, 80)).at(expression)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// newID returns a random UUID (version 4), the form of server-assigned ids.
func newID() string { return uuid.NewString() }

// timestamp returns the lastUpdated of a version written now, at the
// precision carefhir stores: the time of the transaction ctx is part of,
// if any (see withWriteTime), else the current time.
func (s *service) timestamp(ctx context.Context) time.Time {
	if t, ok := ctx.Value(writeTimeKey{}).(time.Time); ok {
		return t
	}
	return s.now().UTC().Truncate(time.Millisecond)
}

// writeTimeKey is the context key of the time of a transaction.
type writeTimeKey struct{}

// withWriteTime returns ctx for the writes of one transaction: every
// version they write carries lastUpdated t, as they take effect together.
func withWriteTime(ctx context.Context, t time.Time) context.Context {
	return context.WithValue(ctx, writeTimeKey{}, t)
}

// formatInstant writes t as a FHIR instant with milliseconds.
func formatInstant(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// Stamp returns body, a version of a resource of typ as the server stored
// it, with its meta.lastUpdated at at and nothing else changed: for an
// engine that makes a version later than its writer stamped it, and stamps
// it anew (store/mongo's WithStamp). Bytes that hold no resource of typ
// with a meta (the server's own records) are returned as they are.
func Stamp(typ string, body []byte, at time.Time) ([]byte, error) {
	res, err := fhirjson.UnmarshalAs(body, typ)
	if err != nil || res.GetMeta() == nil {
		return body, nil
	}
	meta := res.GetMeta()
	meta.LastUpdated = fhir.NewInstant(formatInstant(at))
	res.SetMeta(meta)
	stamped, err := fhirjson.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("stamp %s: %w", typ, err)
	}
	return stamped, nil
}

// put stamps res with its id, version and lastUpdated, encodes it once and
// writes it as the version after cur, the current version (nil: res
// creates the resource), made by an interaction of method.
func (s *service) put(ctx context.Context, w store.Writer, typ, id string, res fhir.Resource, cur *store.Version, method string) (*store.Version, error) {
	var expected int64
	if cur != nil {
		expected = cur.VersionID
	}
	wr, err := s.encode(typ, id, res, expected, notBefore(cur, s.timestamp(ctx)), method)
	if err != nil {
		return nil, err
	}
	return s.writePrepared(ctx, w, &prepared{wr: wr, created: cur == nil || cur.Deleted})
}

// notBefore returns the lastUpdated of a version written at now that
// replaces cur (nil: none): now, or cur's lastUpdated when that is later.
// A process whose clock is behind that of the process that wrote cur, or a
// clock stepped back, must not date a version before the one it replaces:
// history lists versions newest first by lastUpdated, and _since would
// miss the new one.
func notBefore(cur *store.Version, now time.Time) time.Time {
	if cur != nil && now.Before(cur.LastUpdated) {
		return cur.LastUpdated
	}
	return now
}

// encode stamps res with its id, the version after expected and
// lastUpdated now, and returns the write of it by an interaction of
// method: its JSON and its search values. It reads no store, so the
// writes of a transaction are encoded side by side before their turn
// comes.
func (s *service) encode(typ, id string, res fhir.Resource, expected int64, now time.Time, method string) (*store.Write, error) {
	stamp(res, id, expected+1, now)
	body, err := fhirjson.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("encode %s/%s: %w", typ, id, err)
	}
	index, err := s.index.IndexJSON(typ, body)
	if err != nil {
		return nil, fmt.Errorf("index %s/%s: %w", typ, id, err)
	}
	return &store.Write{Type: typ, ID: id, Expected: expected, LastUpdated: now, JSON: body, Index: index, Method: method}, nil
}

// stamp gives res the id, versionId and lastUpdated of a version.
func stamp(res fhir.Resource, id string, version int64, lastUpdated time.Time) {
	res.SetID(id)
	meta := res.GetMeta()
	if meta == nil {
		meta = &fhir.Meta{}
	}
	meta.VersionId = fhir.NewId(strconv.FormatInt(version, 10))
	meta.LastUpdated = fhir.NewInstant(formatInstant(lastUpdated))
	res.SetMeta(meta)
}

// write puts wr and returns the version it wrote; it creates its
// resource only when it is the first version.
func (s *service) write(ctx context.Context, w store.Writer, wr *store.Write) (*store.Version, error) {
	return s.writePrepared(ctx, w, &prepared{wr: wr, created: !wr.Deleted && wr.Expected == 0})
}

// writePrepared puts p.wr, the hooks of its type seeing p.res (decoded
// from p.wr when nil), and returns the version it wrote.
func (s *service) writePrepared(ctx context.Context, w store.Writer, p *prepared) (*store.Version, error) {
	if err := s.putHooked(ctx, w, p.wr, p.res, p.created); err != nil {
		return nil, err
	}
	return p.wr.Version(), nil
}

// create stores the prepared version 1 of a new resource. With criteria
// (If-None-Exist) it creates only when nothing matches: one match is
// returned instead (created false), several are 412. The search and the
// write run in one unit of work, so two concurrent conditional creates
// cannot both create. Everything about the write that needs no store was
// done in prepare, so the unit of work, or the writer's queue, holds only
// the search, the hooks and the write.
func (s *service) create(ctx context.Context, p *prepared, criteria *store.Query) (v *store.Version, created bool, err error) {
	if g, ok := s.store.(store.GatedWriter); ok && p.check != nil && criteria == nil && !s.inUnit(ctx, p.wr.Type) {
		// The engine begins the write while the validation runs, and
		// keeps it only if the validation passes.
		if err := g.PutGated(ctx, p.wr, p.check.wait); err != nil {
			return nil, false, p.settle(err)
		}
		return p.wr.Version(), true, nil
	}
	if err := p.settle(nil); err != nil {
		return nil, false, err
	}
	if criteria == nil {
		err = s.unit(ctx, p.wr.Type, func(tx store.Tx) error {
			v, err = s.writePrepared(ctx, tx, p)
			return err
		})
		return v, err == nil, err
	}
	err = s.transact(ctx, func(ctx context.Context, tx store.Tx) error {
		// The unit may run again (after a write conflict): what an
		// earlier run decided does not count.
		v, created = nil, false
		match, err := matchCreating(ctx, tx, criteria, "If-None-Exist")
		if err != nil || match != nil {
			v = match
			return err
		}
		v, err = s.writePrepared(ctx, tx, p)
		created = err == nil
		return err
	})
	return v, created, err
}

// createIn stores res as a new resource with id in tx, as a create
// (POST) does.
func (s *service) createIn(ctx context.Context, tx store.Tx, typ, id string, res fhir.Resource) (*store.Version, error) {
	return s.put(ctx, tx, typ, id, res, nil, http.MethodPost)
}

// matchOne runs conditional criteria: nil when nothing matches, the match
// when one does, 412 when several do.
func matchOne(ctx context.Context, r store.Reader, q *store.Query, what string) (*store.Version, error) {
	q.Count = 2
	found, err := r.Search(ctx, *q)
	if err != nil {
		return nil, err
	}
	return oneMatch(found, q, what)
}

// criteriaMatcher is a reader that matches the criteria of a conditional
// create or update over every resource, refusing a match outside the
// principal's reach: access.Store and its units of work.
type criteriaMatcher interface {
	MatchCriteria(ctx context.Context, q store.Query) ([]*store.Version, error)
}

// searchCreating runs q, the criteria of a conditional create or update,
// in r. These create when they match nothing, so a resource the principal
// cannot see must still count: matched as a search, among what the
// principal reaches alone, it would not, and the write would create a
// second record beside it (see access.Store.MatchCriteria).
func searchCreating(ctx context.Context, r store.Reader, q store.Query) ([]*store.Version, error) {
	if m, ok := r.(criteriaMatcher); ok {
		return m.MatchCriteria(ctx, q)
	}
	return r.Search(ctx, q)
}

// matchCreating is matchOne for the criteria of a conditional create or
// update (see searchCreating): a match outside the principal's reach is
// 403.
func matchCreating(ctx context.Context, r store.Reader, q *store.Query, what string) (*store.Version, error) {
	q.Count = 2
	found, err := searchCreating(ctx, r, *q)
	if err != nil {
		return nil, err
	}
	return oneMatch(found, q, what)
}

// oneMatch is what conditional criteria found: nil for nothing, the match
// for one, 412 for several.
func oneMatch(found []*store.Version, q *store.Query, what string) (*store.Version, error) {
	switch len(found) {
	case 0:
		return nil, nil
	case 1:
		return found[0], nil
	default:
		return nil, errorf(http.StatusPreconditionFailed, "multiple-matches",
			"%s criteria match more than one %s", what, q.Type)
	}
}

// updateOutcome says what an update did.
type updateOutcome int

const (
	// updateReplaced: a new version of a resource that existed.
	updateReplaced updateOutcome = iota
	// updateCreated: the first version of the resource, or the first after
	// its deletion (update as create).
	updateCreated
	// updateUnchanged: nothing was written, as the update's content is the
	// current version's (see sameContent).
	updateUnchanged
)

// update replaces typ/id with res, creating it when it does not exist
// (update as create). ifMatch, when set, is the version the client read;
// a different current version is 412. An update whose content is the
// current version's writes nothing and returns the current version.
func (s *service) update(ctx context.Context, typ, id string, res fhir.Resource, ifMatch int64) (v *store.Version, did updateOutcome, err error) {
	var pre *staged
	if s.inUnit(ctx, typ) {
		// The write is encoded, and its copy for hooks decoded, before
		// the unit of work holds the writer, for the version current now;
		// if another is current by the time it is written, the unit reads
		// it again (see updateStaged). An unchanged update needs no unit.
		pre = stage(ctx, s.store, typ, id)
		s.stageWrite(pre, typ, id, res, ifMatch, s.timestamp(ctx), http.MethodPut)
		if pre.same {
			return pre.cur, updateUnchanged, nil
		}
	}
	err = s.unit(ctx, typ, func(tx store.Tx) error {
		v, did, err = s.updateStaged(ctx, tx, typ, id, res, ifMatch, pre)
		return err
	})
	return v, did, err
}

// updateIn is update in tx.
func (s *service) updateIn(ctx context.Context, tx store.Tx, typ, id string, res fhir.Resource, ifMatch int64) (v *store.Version, did updateOutcome, err error) {
	return s.updateStaged(ctx, tx, typ, id, res, ifMatch, nil)
}

// staged is the first attempt of a write, prepared before its turn: the
// current version of its target as read (nil, and readErr ErrNotFound,
// when there is none), and the write of the version after it, or why it
// could not be encoded. wr and err are both nil when there is nothing to
// write: the read failed, If-Match names another version, or same is set:
// the update's content is the current version's.
type staged struct {
	cur     *store.Version
	readErr error
	wr      *store.Write
	err     error
	same    bool
	// asCur is the update's content stamped as cur, kept when it differs
	// from cur's as read but cur may be served other than as stored (see
	// sameAsStored), which updateStaged then asks.
	asCur []byte
	// res is wr's resource as the hooks of its type see it, decoded with
	// wr; nil when no hook applies.
	res fhir.Resource
}

// prepared returns the write staged, for writePrepared.
func (st *staged) prepared() *prepared {
	return &prepared{wr: st.wr, res: st.res, created: st.cur == nil || st.cur.Deleted}
}

// stage reads the current version of typ/id in r, to prepare an update of
// it with stageWrite.
func stage(ctx context.Context, r store.Reader, typ, id string) *staged {
	cur, err := r.Read(ctx, typ, id)
	if err != nil {
		cur = nil
	}
	return &staged{cur: cur, readErr: err}
}

// expected returns the version an update of the staged target replaces,
// and false when the read failed.
func (st *staged) expected() (int64, bool) {
	switch {
	case errors.Is(st.readErr, store.ErrNotFound):
		return 0, true
	case st.readErr != nil:
		return 0, false
	}
	return st.cur.VersionID, true
}

// stageWrite encodes the update of the staged target to res, stamped now,
// by an interaction of method (PUT, or POST for a transaction's create),
// unless updateStaged would not write it.
func (s *service) stageWrite(st *staged, typ, id string, res fhir.Resource, ifMatch int64, now time.Time, method string) {
	expected, ok := st.expected()
	if !ok || ifMatch != 0 && (ifMatch != expected || st.cur.Deleted) {
		return
	}
	var body []byte
	if st.same, body, st.err = sameContent(st.cur, res); st.same || st.err != nil {
		return
	}
	if st.cur != nil && !st.cur.Deleted && access.Masked(typ) {
		st.asCur = body
	}
	if st.wr, st.err = s.encode(typ, id, res, expected, notBefore(st.cur, now), method); st.err != nil || !s.hooked(typ) {
		return
	}
	if st.res, st.err = fhirjson.UnmarshalAs(st.wr.JSON, typ); st.err != nil {
		st.wr, st.err = nil, fmt.Errorf("hooks of %s/%s: %w", typ, id, st.err)
	}
}

// sameContent reports whether res, about to replace cur, has cur's
// content: stamped with cur's id, versionId and lastUpdated, it encodes to
// the very bytes cur was stored as. Such an update is a no-op, as HAPI FHIR
// makes it: it writes no version and runs no hook. The stored JSON is the
// canonical encoding of what was written, so equal bytes are equal
// content; a version stored in another encoding (by an older release, say)
// only compares as different, and the update writes a version. body is
// res so stamped and encoded.
func sameContent(cur *store.Version, res fhir.Resource) (same bool, body []byte, err error) {
	if cur == nil || cur.Deleted {
		return false, nil, nil
	}
	stamp(res, cur.ID, cur.VersionID, cur.LastUpdated)
	body, err = fhirjson.Marshal(res)
	if err != nil {
		return false, nil, fmt.Errorf("encode %s/%s: %w", cur.Type, cur.ID, err)
	}
	return bytes.Equal(body, cur.JSON), body, nil
}

// sameAsStored reports whether body, an update of cur stamped as cur (see
// sameContent), is the content stored as cur, when r gave cur other than
// as stored: the access layer serves a Subscription's channel header
// values masked, and an update giving them in full, as stored, changes
// nothing. Asked of r, which never gives the stored content itself.
func sameAsStored(ctx context.Context, r store.Reader, cur *store.Version, body []byte) (bool, error) {
	c, ok := r.(interface {
		SameAsStored(ctx context.Context, cur *store.Version, body []byte) (bool, error)
	})
	if !ok {
		return false, nil
	}
	return c.SameAsStored(ctx, cur, body)
}

// updateStaged is updateIn whose first attempt is pre, when not nil: pre
// holds what reading the target gave, and the write encoded for it.
//
// An update whose content is the current version's returns that version
// and writes nothing. It is decided on the version read, which is current
// when read: the update takes effect there, as a read would, and a write
// by someone else after it follows it. If-Match is checked first, so a
// stale version is 412 whatever the content.
func (s *service) updateStaged(ctx context.Context, tx store.Tx, typ, id string, res fhir.Resource, ifMatch int64, pre *staged) (v *store.Version, did updateOutcome, err error) {
	for attempt := 0; ; attempt++ {
		st := pre
		if attempt > 0 || st == nil {
			st = stage(ctx, tx, typ, id)
		}
		expected, ok := st.expected()
		if !ok {
			return nil, updateReplaced, st.readErr
		}
		if ifMatch != 0 && st.cur != nil && st.cur.Deleted {
			return nil, updateReplaced, deletedVersion(typ, id, ifMatch, st.cur.VersionID)
		}
		if ifMatch != 0 && ifMatch != expected {
			return nil, updateReplaced, staleVersion(typ, id, ifMatch, expected)
		}
		if st.wr == nil && st.err == nil && !st.same {
			s.stageWrite(st, typ, id, res, ifMatch, s.timestamp(ctx), http.MethodPut)
		}
		if st.err != nil {
			return nil, updateReplaced, st.err
		}
		if st.asCur != nil {
			// Asked here, in the unit's turn, rather than where the write
			// was staged, which may be beside other entries' stagings.
			if st.same, err = sameAsStored(ctx, tx, st.cur, st.asCur); err != nil {
				return nil, updateReplaced, err
			}
		}
		if st.same {
			return st.cur, updateUnchanged, nil
		}
		v, err = s.writePrepared(ctx, tx, st.prepared())
		var conflict *store.ConflictError
		if errors.As(err, &conflict) && ifMatch == 0 && retryConflict(ctx, attempt) {
			continue
		}
		if errors.As(err, &conflict) && ifMatch != 0 {
			return nil, updateReplaced, staleVersion(typ, id, ifMatch, conflict.Current)
		}
		if err == nil && (st.cur == nil || st.cur.Deleted) {
			return v, updateCreated, nil
		}
		// An id held by a resource outside the principal's reach cannot
		// be created: it is answered as a read of that resource is.
		return v, updateReplaced, notFound(err, typ, id)
	}
}

// updateIfNone is update under an If-None-Match precondition, decided on
// the version current in the unit of work that writes, so that a version
// written in between cannot be replaced.
func (s *service) updateIfNone(ctx context.Context, typ, id string, res fhir.Resource, ifMatch int64, none noneMatch) (v *store.Version, did updateOutcome, err error) {
	err = s.transact(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := none.check(ctx, tx, typ, id); err != nil {
			return err
		}
		var err error
		v, did, err = s.updateIn(ctx, tx, typ, id, res, ifMatch)
		return err
	})
	return v, did, err
}

// conditionalUpdate applies update to the one resource matching criteria,
// or creates res when none does, in one unit of work.
func (s *service) conditionalUpdate(ctx context.Context, typ string, res fhir.Resource, criteria *store.Query, match versionMatch) (v *store.Version, did updateOutcome, err error) {
	// The search and the write run in one unit of work: apart, two
	// clients updating what nothing matched yet would both create, or
	// one would be answered with the other's resource and its own
	// content never written.
	err = s.transact(ctx, func(ctx context.Context, tx store.Tx) error {
		id, _, err := updateTarget(ctx, tx, typ, res, criteria)
		if err != nil {
			return err
		}
		ifMatch, err := match.resolve(ctx, tx, typ, id)
		switch {
		case err != nil:
			return err
		case id == "":
			// A create, but by a PUT, which a history shows.
			v, err = s.put(ctx, tx, typ, newID(), res, nil, http.MethodPut)
			did = updateCreated
		default:
			v, did, err = s.updateIn(ctx, tx, typ, id, res, ifMatch)
		}
		return err
	})
	return v, did, err
}

// updateTarget returns the id a conditional update of res writes: the id of
// the one resource matching criteria (matched), else the resource's own id
// (update as create), else "" for a create with a server-assigned id. An
// id of the body that names a resource the criteria do not match is 409:
// R4 treats no match as update as create, which creates, and replacing
// that resource would write over a record the client did not ask to
// change.
func updateTarget(ctx context.Context, r store.Reader, typ string, res fhir.Resource, criteria *store.Query) (id string, matched bool, err error) {
	match, err := matchCreating(ctx, r, criteria, "conditional update")
	if err != nil {
		return "", false, err
	}
	bodyID := res.GetID()
	switch {
	case match != nil && bodyID != "" && bodyID != match.ID:
		return "", false, errorf(http.StatusBadRequest, "invalid",
			"resource id %q differs from the id %q of the resource matching the criteria", bodyID, match.ID).at(typ + ".id")
	case match != nil:
		return match.ID, true, nil
	case bodyID == "":
		return "", false, nil
	}
	if err := checkID(bodyID, typ+".id"); err != nil {
		return "", false, err
	}
	cur, err := r.Read(ctx, typ, bodyID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return "", false, err
	case !cur.Deleted:
		return "", false, errorf(http.StatusConflict, "conflict",
			"no %s matches the criteria, and the resource id %q names a %s they do not match: a conditional update creates it only if it does not exist", typ, bodyID, typ).at(typ + ".id")
	}
	return bodyID, false, nil
}

// delete leaves a tombstone as the new current version of typ/id. Deleting
// a resource that is already deleted, or never existed, does nothing and
// returns nil: the spec makes delete idempotent.
func (s *service) delete(ctx context.Context, typ, id string, ifMatch int64) (v *store.Version, err error) {
	err = s.unit(ctx, typ, func(tx store.Tx) error {
		v, err = s.deleteIn(ctx, tx, typ, id, ifMatch)
		return err
	})
	return v, err
}

// deleteIn is delete in tx.
func (s *service) deleteIn(ctx context.Context, tx store.Tx, typ, id string, ifMatch int64) (*store.Version, error) {
	for attempt := 0; ; attempt++ {
		cur, err := tx.Read(ctx, typ, id)
		if errors.Is(err, store.ErrNotFound) {
			if ifMatch != 0 {
				return nil, staleVersion(typ, id, ifMatch, 0)
			}
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if ifMatch != 0 && cur.Deleted {
			return nil, deletedVersion(typ, id, ifMatch, cur.VersionID)
		}
		if ifMatch != 0 && ifMatch != cur.VersionID {
			return nil, staleVersion(typ, id, ifMatch, cur.VersionID)
		}
		if cur.Deleted {
			return cur, nil
		}
		now := notBefore(cur, s.timestamp(ctx))
		_, err = s.write(ctx, tx, &store.Write{Type: typ, ID: id, Expected: cur.VersionID, LastUpdated: now, Deleted: true, Method: http.MethodDelete})
		var conflict *store.ConflictError
		if errors.As(err, &conflict) && ifMatch == 0 && retryConflict(ctx, attempt) {
			continue
		}
		if errors.As(err, &conflict) {
			return nil, staleVersion(typ, id, ifMatch, conflict.Current)
		}
		if err != nil {
			return nil, err
		}
		return &store.Version{Type: typ, ID: id, VersionID: cur.VersionID + 1, LastUpdated: now, Deleted: true}, nil
	}
}

// conditionalDelete deletes the one resource matching criteria; no match is
// not an error, several are 412.
func (s *service) conditionalDelete(ctx context.Context, typ string, criteria *store.Query, match versionMatch) (v *store.Version, err error) {
	err = s.unit(ctx, typ, func(tx store.Tx) error {
		v, err = s.conditionalDeleteIn(ctx, tx, typ, criteria, match)
		return err
	})
	return v, err
}

// conditionalDeleteIn is conditionalDelete in tx. The If-Match precondition
// match is decided on the resource the criteria find, as a delete's is on
// the resource its URL names: with no resource found it is 412.
func (s *service) conditionalDeleteIn(ctx context.Context, tx store.Tx, typ string, criteria *store.Query, match versionMatch) (*store.Version, error) {
	found, err := matchOne(ctx, tx, criteria, "conditional delete")
	if err != nil {
		return nil, err
	}
	id := ""
	if found != nil {
		id = found.ID
	}
	ifMatch, err := match.resolve(ctx, tx, typ, id)
	if err != nil || found == nil {
		return nil, err
	}
	return s.deleteIn(ctx, tx, typ, id, ifMatch)
}

// patchIn applies a patch to the current version of typ/id in tx and
// writes the result as the next version; apply turns the current version
// into the patched resource. Another write landing between the read and
// the write makes it read and apply the patch again (up to maxRetries
// times, then 409), unless the client named the version it patched
// (ifMatch), which is then stale: 412. A patch whose result has the
// current version's content writes nothing and returns that version, as
// an unchanged update does.
func (s *service) patchIn(ctx context.Context, tx store.Tx, typ, id string, ifMatch int64, apply func(*store.Version) (fhir.Resource, error)) (*store.Version, updateOutcome, error) {
	for attempt := 0; ; attempt++ {
		cur, err := tx.Read(ctx, typ, id)
		if err != nil {
			return nil, updateReplaced, notFound(err, typ, id)
		}
		if ifMatch != 0 && cur.Deleted {
			return nil, updateReplaced, deletedVersion(typ, id, ifMatch, cur.VersionID)
		}
		if cur.Deleted {
			return nil, updateReplaced, gone(cur)
		}
		if ifMatch != 0 && ifMatch != cur.VersionID {
			return nil, updateReplaced, staleVersion(typ, id, ifMatch, cur.VersionID)
		}
		res, err := apply(cur)
		if err != nil {
			return nil, updateReplaced, err
		}
		// A patch that leaves the content as it was (an empty patch, or
		// one of meta.versionId) writes nothing, as such an update does.
		same, body, err := sameContent(cur, res)
		if err == nil && !same && access.Masked(typ) {
			same, err = sameAsStored(ctx, tx, cur, body)
		}
		if same || err != nil {
			return cur, updateUnchanged, err
		}
		v, err := s.put(ctx, tx, typ, id, res, cur, http.MethodPatch)
		var conflict *store.ConflictError
		switch {
		case errors.As(err, &conflict) && ifMatch != 0:
			return nil, updateReplaced, staleVersion(typ, id, ifMatch, conflict.Current)
		case errors.As(err, &conflict) && retryConflict(ctx, attempt):
			continue
		}
		return v, updateReplaced, err
	}
}

// deletedVersion is the 412 of a write whose If-Match names version
// ifMatch of typ/id, deleted at version tombstone: a deleted resource has no
// current representation, so no ETag matches it (RFC 9110 section
// 13.1.1), the tombstone's own included, as "*" and a list do not
// (versionMatch.resolve). An update without If-Match creates it again.
func deletedVersion(typ, id string, ifMatch, tombstone int64) *Error {
	return errorf(http.StatusPreconditionFailed, "conflict",
		"If-Match names version %d of %s/%s, which is deleted (version %d): a deleted resource has no version to match; update it without If-Match to create it again",
		ifMatch, typ, id, tombstone)
}

func staleVersion(typ, id string, ifMatch, current int64) *Error {
	if current == 0 {
		return errorf(http.StatusPreconditionFailed, "conflict",
			"If-Match names version %d of %s/%s, which does not exist", ifMatch, typ, id)
	}
	return errorf(http.StatusPreconditionFailed, "conflict",
		"If-Match names version %d of %s/%s but version %d is current", ifMatch, typ, id, current)
}

// versionMatch is the If-Match precondition of a write: none (the zero
// value), any current version ("*", RFC 9110 section 13.1.1), or one of
// versions. Without any of these, unmodifiedSince (not zero) is the
// If-Unmodified-Since precondition (section 13.1.4): the current version
// must have been last updated no later.
type versionMatch struct {
	any             bool
	versions        []int64
	unmodifiedSince time.Time
}

// asked reports whether m states a precondition.
func (m versionMatch) asked() bool { return m.any || len(m.versions) > 0 }

// check decides m on v, the version a read or vread selected (RFC 9110
// section 13.1.1): 412 unless m asks nothing, is "*" or names v's version.
func (m versionMatch) check(v *store.Version) error {
	if !m.asked() || m.any || slices.Contains(m.versions, v.VersionID) {
		return nil
	}
	named := "version "
	if len(m.versions) > 1 {
		named = "versions "
	}
	return errorf(http.StatusPreconditionFailed, "conflict", "If-Match names %s%s of %s/%s, not version %d, the one read",
		named, joinVersions(m.versions), v.Type, v.ID, v.VersionID)
}

// parseIfMatch reads an If-Match header value: "*", or a list of version
// ETags (W/"3", W/"4").
func parseIfMatch(value string) (versionMatch, error) {
	star, versions, err := parseVersions(value, "If-Match")
	return versionMatch{any: star, versions: versions}, err
}

// parseVersions reads the value of a precondition header: "*" (star is
// true), or a list of version ETags. Empty list elements are skipped, as
// RFC 9110 section 5.6.1 asks of a recipient.
func parseVersions(value, header string) (star bool, versions []int64, err error) {
	if strings.TrimSpace(value) == "*" {
		return true, nil, nil
	}
	for _, tag := range strings.Split(value, ",") {
		if strings.TrimSpace(tag) == "" {
			continue
		}
		n, err := parseETag(tag, header)
		if err != nil {
			return false, nil, err
		}
		versions = append(versions, n)
	}
	if len(versions) == 0 {
		return false, nil, errorf(http.StatusBadRequest, "invalid",
			"%s %q is neither * nor a version ETag such as W/\"3\"", header, truncate(value, 40))
	}
	return false, versions, nil
}

// resolve returns the version a write of typ/id under m must replace, for
// the write to check as it writes: 0 when m asks nothing, the version m
// names when it names one. "*" and a list are decided on the current
// version, read from r: it must exist, not be deleted and, for a list, be
// among the versions named (412 otherwise). id "" is a resource that does
// not exist yet, such as the one a conditional update that matched
// nothing creates: any precondition is 412 there.
func (m versionMatch) resolve(ctx context.Context, r store.Reader, typ, id string) (int64, error) {
	if !m.asked() {
		return m.resolveUnmodified(ctx, r, typ, id)
	}
	named := "*"
	if !m.any {
		named = "versions " + joinVersions(m.versions)
	}
	switch {
	case id == "":
		return 0, errorf(http.StatusPreconditionFailed, "conflict", "If-Match names %s, but no %s matches the criteria", named, typ)
	case !m.any && len(m.versions) == 1:
		return m.versions[0], nil
	}
	cur, err := r.Read(ctx, typ, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return 0, err
	}
	switch {
	case err != nil:
		return 0, errorf(http.StatusPreconditionFailed, "conflict", "If-Match names %s of %s/%s, which does not exist", named, typ, id)
	case cur.Deleted:
		return 0, errorf(http.StatusPreconditionFailed, "conflict", "If-Match names %s of %s/%s, which is deleted", named, typ, id)
	case !m.any && !slices.Contains(m.versions, cur.VersionID):
		return 0, errorf(http.StatusPreconditionFailed, "conflict", "If-Match names %s of %s/%s but version %d is current", named, typ, id, cur.VersionID)
	}
	return cur.VersionID, nil
}

// resolveUnmodified is resolve for If-Unmodified-Since: 412 when the
// current version of typ/id was last updated after it, else that version,
// for the write to check as it writes, so that a change landing in
// between is not overwritten. A resource with no current version has no
// modification date, and the precondition is ignored (RFC 9110 section
// 13.1.4), as it is when not asked.
func (m versionMatch) resolveUnmodified(ctx context.Context, r store.Reader, typ, id string) (int64, error) {
	if m.unmodifiedSince.IsZero() || id == "" {
		return 0, nil
	}
	cur, err := r.Read(ctx, typ, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return 0, nil
	case err != nil:
		return 0, err
	case cur.Deleted:
		return 0, nil
	case modifiedAfter(cur, m.unmodifiedSince):
		return 0, errorf(http.StatusPreconditionFailed, "conflict", "If-Unmodified-Since is %s, but version %d of %s/%s was last updated at %s",
			m.unmodifiedSince.Format(http.TimeFormat), cur.VersionID, typ, id, cur.LastUpdated.UTC().Format(http.TimeFormat))
	}
	return cur.VersionID, nil
}

// noneMatch is the If-None-Match precondition of an update (RFC 9110
// section 13.1.2): none (the zero value), no current version ("*"), or a
// current version other than those listed.
type noneMatch struct {
	any      bool
	versions []int64
}

func (m noneMatch) asked() bool { return m.any || len(m.versions) > 0 }

// check reads the current version of typ/id from r and answers 412 when
// it is one m excludes. A deleted resource has no current version.
func (m noneMatch) check(ctx context.Context, r store.Reader, typ, id string) error {
	cur, err := r.Read(ctx, typ, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("reading %s/%s for If-None-Match: %w", typ, id, err)
	case cur.Deleted:
		return nil
	case m.any:
		return errorf(http.StatusPreconditionFailed, "conflict",
			"If-None-Match * asks that %s/%s not exist, but version %d is current", typ, id, cur.VersionID)
	case slices.Contains(m.versions, cur.VersionID):
		return errorf(http.StatusPreconditionFailed, "conflict",
			"If-None-Match names version %d of %s/%s, which is current", cur.VersionID, typ, id)
	}
	return nil
}

func joinVersions(versions []int64) string {
	s := make([]string, len(versions))
	for i, v := range versions {
		s[i] = strconv.FormatInt(v, 10)
	}
	return strings.Join(s, ", ")
}

// parseETag reads a version from an ETag-style header value: W/"3", "3" or 3.
func parseETag(value, header string) (int64, error) {
	v := strings.TrimSpace(value)
	v = strings.TrimPrefix(v, "W/")
	v = strings.Trim(v, `"`)
	n, ok := parseVersionID(v)
	if !ok {
		return 0, errorf(http.StatusBadRequest, "invalid",
			"%s %q is not a version ETag such as W/\"3\"", header, truncate(value, 40))
	}
	return n, nil
}

// parseVersionID reads a version id as the server writes it: a decimal
// from 1, without sign or leading zero. "01" and "+1" name no version,
// though they read as the number 1: ETags and ids are compared as written.
func parseVersionID(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 || strconv.FormatInt(n, 10) != s {
		return 0, false
	}
	return n, true
}

func etag(version int64) string {
	if version > 0 && version < int64(len(smallETags)) {
		return smallETags[version]
	}
	return `W/"` + strconv.FormatInt(version, 10) + `"`
}

// smallETags are the ETags of the first versions, which most resources
// read are at, made once rather than for every response.
var smallETags = func() []string {
	tags := make([]string, 64)
	for v := 1; v < len(tags); v++ {
		tags[v] = `W/"` + strconv.Itoa(v) + `"`
	}
	return tags
}()
