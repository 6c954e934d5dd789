package mongo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"carefhir/store"
)

// Units of work on deployments without multi-document transactions are
// committed through a journal kept in two collections of the database:
//
//	journal         one record per unit of work being committed:
//	                _id (the unit's id), state, n (number of writes), ts,
//	                owner (the process settling it), lease (until when
//	                the owner holds it, by its clock) and renewals (how
//	                many times the record changed)
//	journal_writes  one document per write of those units: _id
//	                "unit/seq", txn (the unit's id), seq, type, expected,
//	                doc (the current-version document the write makes,
//	                marked by: the write's _id) and,
//	                on a unit's first write to a resource that exists,
//	                before (that resource's current-version document as it
//	                was)
//
// A unit's record goes through these states:
//
//	pending    its writes are being journaled; none is applied. Settling
//	           rolls it back: the record and its writes are deleted, the
//	           resources were never touched.
//	committed  the commit point: the whole unit is in the journal, durably.
//	           Its writes are then applied in order; settling an
//	           interrupted unit rolls it forward.
//	aborting   a committed unit that cannot be completed (another process
//	           wrote one of its resources, or the database failed while
//	           applying): its applied writes are being undone from the
//	           before documents.
//	failed     a unit that could be neither completed nor undone, because
//	           another process wrote over a version it had applied; it is
//	           kept, with its writes, for an operator to inspect (and then
//	           delete: settling leaves failed units alone).
//
// When a unit is done (applied or undone) its record is deleted, and then
// its writes and its claims (see claimCriteria, in journal_claims); writes
// and claims left without a record are deleted when the journal is swept.
//
// # Many processes
//
// Several carefhir processes may share one database. Each unit has an
// owner, the Store that committed it, and a lease: how long the owner holds
// it without renewing it, renewed before every step. Only the owner changes
// a unit, and every change of its record is a compare-and-set on (state,
// owner) that also counts a renewal: a process whose change does not match
// has lost the unit, stops working on it at once and waits for its outcome
// (see waitOutcome), so a client is never told that a unit failed when it
// ends applied. Before applying or undoing each write the owner renews its
// lease the same way, which also re-checks the state. Another process takes
// a unit over only once it has itself seen the unit's record unchanged
// (same state, owner and renewals) for a lease by its own clock (the owner
// crashed or stalled for longer than the lease), by a compare-and-set on
// (state, owner, lease, renewals), and then settles it as its owner.
// Start-up and a sweep every half lease look at the journal; they never
// touch a unit whose record changed within the last lease they saw.
//
// The lease written in a record (a time by its owner's clock) is for
// operators reading the journal, and compared for equality only; it is
// never compared with another process's clock, as the clocks of processes sharing a database may be
// minutes or hours apart. What a lease cannot exclude is an owner that
// stalls for longer than the lease between renewing it and a write reaching
// the server (the lease is twice the client timeout plus 10 s, and the
// timeout bounds every operation).
//
// Why roll forward: once committed, the journal holds every new version of
// the unit, so completing it needs nothing else, and each write can be
// re-applied idempotently (a write is recognised as applied when its version
// of the resource is marked as written by it, by, with its lastUpdated and
// bytes). Rolling back would need
// the before documents of every resource and would fail wherever another
// writer has since built on a version the unit applied; the client was not
// yet answered either way, so either outcome is allowed, and the one that
// needs less is chosen. Undo is kept for the cases where completing is
// impossible or the caller is told the unit failed.
//
// Durability: the record and the journaled writes are written with write
// concern majority and journaling, the commit point too; the writes applied
// after it use write concern w:1 without waiting for the journal, because
// the unit is recoverable from the journal until its record is deleted, and
// that delete is written with journaling: a storage engine's journal is a
// sequential log, so when the delete is durable every write before it is.
const (
	journalCollection       = "journal"
	journalWritesCollection = "journal_writes"
)

// States of a journal record.
const (
	statePending   = "pending"
	stateCommitted = "committed"
	stateAborting  = "aborting"
	stateFailed    = "failed"
)

// Stages of a commit that a test hook can stop at (see Store.hook).
const (
	stageRecorded  = "recorded"  // the record is written, pending, no write yet
	stageJournaled = "journaled" // the writes are journaled, not committed
	stageCommitted = "committed" // the commit point has passed
	stageApplied   = "applied"   // n writes are applied
	stageUndone    = "undone"    // n resources are put back by an undo
	stageFinished  = "finished"  // the record is deleted, the writes not yet
)

// stagePurgeFound is not a commit's: PurgeDeleted has found the
// tombstones it is to remove, and removed nothing yet.
const stagePurgeFound = "purge found"

// journalRecord is the record of one unit of work in the journal.
type journalRecord struct {
	ID    string        `bson:"_id"`
	State string        `bson:"state"`
	N     int           `bson:"n"`
	Time  bson.DateTime `bson:"ts"`
	Owner string        `bson:"owner"`
	Lease bson.DateTime `bson:"lease"`
	// Renewals counts the changes of the record after its insert: a unit
	// whose count has not moved for a lease, by the clock of the process
	// watching it, was left by a process that died or stalled.
	Renewals int64  `bson:"renewals,omitempty"`
	Error    string `bson:"error,omitempty"`
}

// errLost reports that another process took over a unit of work whose lease
// had expired; the unit's outcome is then that process's to decide.
var errLost = errors.New("taken over by another process after its lease expired")

// journalWrite is one journaled write of a unit of work.
type journalWrite struct {
	Key      string   `bson:"_id"`
	Txn      string   `bson:"txn"`
	Seq      int      `bson:"seq"`
	Type     string   `bson:"type"`
	Expected int64    `bson:"expected"`
	Doc      bson.Raw `bson:"doc"`
	Before   bson.Raw `bson:"before,omitempty"`

	w  *store.Write // the write, rebuilt from Doc
	by string       // the by field of Doc: Key, or "" in units journaled before it was recorded
}

// rebuild sets e.w from the journaled document.
func (e *journalWrite) rebuild() error {
	var d versionDoc
	if err := bson.Unmarshal(e.Doc, &d); err != nil {
		return fmt.Errorf("journal write %s: %w", e.Key, err)
	}
	e.w = &store.Write{Type: e.Type, ID: d.Key, Expected: e.Expected,
		LastUpdated: d.Time.Time().UTC(), Deleted: d.Deleted, JSON: d.JSON, Method: d.Method}
	e.by = d.By
	return nil
}

// restamp stamps the write of e at at, in its lastUpdated and, through
// stamp, in its bytes, unless it was stamped later. A unit of work taken
// over from a process that stopped is applied a lease or more after it was
// stamped; a history read meanwhile was dated later than that stamp (it is
// dated at most the longest a write takes before it was read), so a
// client polling history from that date would never see the versions
// applied now with their old stamp. The journal keeps the old stamp: a
// process that applies the unit again finds the versions claimed already
// by the write's mark (see sameVersion), and completes them as claimed.
func (e *journalWrite) restamp(at time.Time, stamp func(typ string, json []byte, at time.Time) ([]byte, error)) error {
	if !at.After(e.w.LastUpdated) {
		return nil
	}
	w := *e.w
	w.LastUpdated = at
	if stamp != nil && !w.Deleted {
		b, err := stamp(w.Type, w.JSON, at)
		if err != nil {
			return fmt.Errorf("journal write %s: stamp: %w", e.Key, err)
		}
		w.JSON = b
	}
	elems, err := e.Doc.Elements()
	if err != nil {
		return fmt.Errorf("journal write %s: %w", e.Key, err)
	}
	doc := make(bson.D, len(elems))
	for i, el := range elems {
		doc[i] = bson.E{Key: el.Key(), Value: el.Value()}
		switch el.Key() {
		case fieldTime:
			doc[i].Value = bson.NewDateTimeFromTime(at)
		case fieldJSON:
			doc[i].Value = bson.Binary{Data: w.JSON}
		}
	}
	raw, err := bson.Marshal(doc)
	if err != nil {
		return fmt.Errorf("journal write %s: %w", e.Key, err)
	}
	e.Doc, e.w = raw, &w
	return nil
}

// errFailed reports a unit of work that could be neither completed nor
// undone (state failed).
var errFailed = errors.New("partly applied: could be neither completed nor undone")

// at calls the test hook, if any, at a stage of a commit. A non-nil error
// stops the commit there, leaving the database as a crash would.
func (s *Store) at(stage string, n int) error {
	if s.hook == nil {
		return nil
	}
	if err := s.hook(stage, n); err != nil {
		return &stopped{err}
	}
	return nil
}

// stopped is an error of the test hook: the commit stops where it is, as a
// crash would stop it.
type stopped struct{ err error }

func (e *stopped) Error() string { return e.err.Error() }
func (e *stopped) Unwrap() error { return e.err }

// commit makes ws, the writes of a unit of work on a deployment without
// transactions, current and durable together or not at all, through the
// journal.
//
// The resources of ws are locked against other writes through this Store,
// in stripe order, for the whole commit, so units and Puts of one process
// touching the same resources never interleave and never deadlock. Under
// those locks each resource's current version is checked against the first
// write to it: a conflict found then is returned before anything is
// written. Other processes are not held off: one that writes a resource of
// the unit while it is applied makes the unit undo what it applied and fail
// with a *store.ConflictError.
//
// Readers are not held off either: while the writes are applied, and after
// a crash until the unit is settled, a reader may see some of its writes and
// not others. What the unit guarantees is the outcome: all of its writes, or
// none.
func (s *Store) commit(ctx context.Context, ws []*store.Write, empty []store.Query) error {
	if len(ws) == 0 {
		return nil
	}
	defer s.lockAll(ws)()
	id := bson.NewObjectID().Hex()
	// This Store's sweeper leaves the unit to this commit, even should its
	// lease expire: both would act as its owner.
	s.committing.Store(id, struct{}{})
	defer s.committing.Delete(id)
	entries, err := s.prepare(ctx, id, ws)
	if err != nil {
		return err
	}
	// From here on, cancelling the caller's context no longer stops the
	// commit halfway; every operation is still bounded by the client
	// timeout.
	ctx = context.WithoutCancel(ctx)
	now := s.clock()
	rec := journalRecord{ID: id, State: statePending, N: len(entries), Time: bson.NewDateTimeFromTime(now),
		Owner: s.owner, Lease: bson.NewDateTimeFromTime(now.Add(s.lease))}
	if _, err := s.journal.InsertOne(ctx, rec); err != nil {
		return s.fail(ctx, id, entries, fmt.Errorf("mongo: transact: journal: %w", err))
	}
	if err := s.at(stageRecorded, 0); err != nil {
		return err
	}
	if err := s.claimCriteria(ctx, id, ws, empty); err != nil {
		return s.fail(ctx, id, entries, err)
	}
	if _, err := s.journalWrites.InsertMany(ctx, entries); err != nil {
		return s.fail(ctx, id, entries, fmt.Errorf("mongo: transact: journal: %w", err))
	}
	if err := s.at(stageJournaled, len(entries)); err != nil {
		return err
	}
	ok, err := s.setState(ctx, id, statePending, stateCommitted)
	if err != nil {
		return s.fail(ctx, id, entries, fmt.Errorf("mongo: transact: commit: %w", err))
	}
	if !ok {
		// Discarded while pending by a process that found the lease
		// expired: nothing was applied. Writes journaled after that are
		// this Store's to delete.
		_ = s.forget(ctx, id)
		return fmt.Errorf("mongo: transact: unit %s rolled back: %w", id, errLost)
	}
	if err := s.at(stageCommitted, 0); err != nil {
		return err
	}
	for i, e := range entries {
		if err := s.renew(ctx, id, stateCommitted); errors.Is(err, errLost) {
			return s.lost(ctx, id, entries, err)
		} else if err != nil {
			return s.fail(ctx, id, entries, err)
		}
		if err := s.apply(ctx, e); err != nil {
			var ce *store.ConflictError
			if !errors.As(err, &ce) {
				err = fmt.Errorf("mongo: transact: applying write %d of %d: %w", i+1, len(entries), err)
			}
			return s.fail(ctx, id, entries, err)
		}
		if err := s.at(stageApplied, i+1); err != nil {
			return err
		}
	}
	// Every write is applied: the unit's outcome is decided, whatever
	// becomes of its record (a process taking it over, or the next sweep,
	// finds the writes applied and deletes it).
	var stop *stopped
	if err := s.finish(ctx, id); errors.As(err, &stop) {
		return err
	}
	return nil
}

// prepare checks ws against the current versions of their resources and
// returns them as the journal writes of unit id, with the before documents
// of the resources that exist.
func (s *Store) prepare(ctx context.Context, id string, ws []*store.Write) ([]*journalWrite, error) {
	entries := make([]*journalWrite, len(ws))
	seen := map[resource]bool{}
	for i, w := range ws {
		key := fmt.Sprintf("%s/%06d", id, i)
		// The version is marked as this write's, so that applying the
		// unit again tells it from another write of the same bytes.
		doc, err := bson.Marshal(append(currentDoc(w), bson.E{Key: fieldBy, Value: key}))
		if err != nil {
			return nil, fmt.Errorf("mongo: transact: %s/%s: %w", w.Type, w.ID, err)
		}
		e := &journalWrite{Key: key, Txn: id, Seq: i,
			Type: w.Type, Expected: w.Expected, Doc: doc, w: w, by: key}
		entries[i] = e
		r := resource{w.Type, w.ID}
		if seen[r] {
			continue
		}
		seen[r] = true
		before, err := s.db.Collection(w.Type).FindOne(ctx, bson.D{{Key: "_id", Value: w.ID}}).Raw()
		var current int64
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
		case err != nil:
			return nil, fmt.Errorf("mongo: transact: %s/%s: %w", w.Type, w.ID, err)
		default:
			current, _ = before.Lookup(fieldVersion).AsInt64OK()
			e.Before = slices.Clone(before)
		}
		if current != w.Expected {
			return nil, conflictError(w, current)
		}
	}
	return entries, nil
}

// apply applies the journaled write e, unless it is applied already (before
// a crash, or by another process completing the unit). It returns a
// *store.ConflictError when another writer got in first.
func (s *Store) apply(ctx context.Context, e *journalWrite) error {
	err := s.write(ctx, s.applyDB, e.w, e.Doc, e.by)
	if !errors.Is(err, errStale) {
		return err
	}
	made, err := s.holds(ctx, e)
	if err != nil {
		return err
	}
	if made == nil {
		return s.conflict(ctx, e.w)
	}
	// History may have been cut short by the crash.
	return writeHistory(ctx, s.applyDB.Collection(historyCollection), made.write(e.w.Type, e.w.Expected), nil)
}

// holds returns version w.VersionID() of w's resource if it is the one the
// journaled write e writes (see sameVersion), nil if not.
func (s *Store) holds(ctx context.Context, e *journalWrite) (*versionDoc, error) {
	w := e.w
	var d versionDoc
	err := s.versions.FindOne(ctx, bson.D{{Key: "_id", Value: historyKey(w.Type, w.ID, w.VersionID())}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		filter := bson.D{{Key: "_id", Value: w.ID}, {Key: fieldVersion, Value: w.VersionID()}}
		err = s.db.Collection(w.Type).FindOne(ctx, filter, options.FindOne().SetProjection(currentProjection)).Decode(&d)
	}
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !sameVersion(&d, w, e.by) {
		return nil, nil
	}
	return &d, nil
}

// sameVersion reports whether d holds the version w writes, written by the
// journaled write by: marked as by's, which names one write alone, however
// it was stamped (see journalWrite.restamp). A version no write marked (by
// "", of a unit journaled before writes were) is recognised by its
// lastUpdated, tombstone flag and bytes.
func sameVersion(d *versionDoc, w *store.Write, by string) bool {
	if d.By != by || d.Version != w.VersionID() {
		return false
	}
	return by != "" || d.Time == bson.NewDateTimeFromTime(w.LastUpdated) &&
		d.Deleted == w.Deleted && bytes.Equal(d.JSON, w.JSON)
}

// fail settles unit id, which this Store owns, after cause stopped its
// commit: a pending unit is rolled back, a committed one undone (the caller
// is told the unit failed). It returns cause, unless another process took
// the unit over, when it returns what that process made of it (see lost).
// A unit that cannot be settled now is settled once its lease expires.
func (s *Store) fail(ctx context.Context, id string, entries []*journalWrite, cause error) error {
	ok, err := s.setState(ctx, id, stateCommitted, stateAborting)
	if err != nil {
		return fmt.Errorf("%w (the unit is settled once its lease expires: %v)", cause, err)
	}
	if !ok {
		var rec journalRecord
		err := s.journal.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&rec)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
			// Never recorded, or rolled back already.
			if err := s.forget(ctx, id); err != nil {
				return fmt.Errorf("%w (%v)", cause, err)
			}
			return cause
		case err != nil:
			return fmt.Errorf("%w (the unit is settled once its lease expires: %v)", cause, err)
		case rec.Owner != s.owner:
			return s.lost(ctx, id, entries, cause)
		}
	}
	if err := s.settle(ctx, id); errors.Is(err, errLost) {
		return s.lost(ctx, id, entries, cause)
	} else if errors.Is(err, errFailed) {
		return fmt.Errorf("%w (%v)", cause, err)
	} else if err != nil {
		return fmt.Errorf("%w (the unit is settled once its lease expires: %v)", cause, err)
	}
	return cause
}

// lost waits for the outcome of unit id, which another process took over
// from this Store, and returns nil if every write of entries ended applied,
// cause (or errLost) if none did, and an error wrapping errFailed if the
// unit was left partly applied. It never reports a failure for a unit that
// ended applied.
func (s *Store) lost(ctx context.Context, id string, entries []*journalWrite, cause error) error {
	settled, err := s.waitOutcome(ctx, id)
	if err != nil {
		return fmt.Errorf("mongo: transact: unit %s %v; its outcome is unknown: %w", id, errLost, err)
	}
	if !settled {
		return fmt.Errorf("mongo: transact: unit %s: %w", id, errFailed)
	}
	done, err := s.inHistory(ctx, entries)
	if err != nil {
		return fmt.Errorf("mongo: transact: unit %s %v; its outcome is unknown: %w", id, errLost, err)
	}
	switch len(done) {
	case len(entries):
		return nil
	case 0:
		return cause
	}
	return fmt.Errorf("mongo: transact: unit %s: %w", id, errFailed)
}

func isConflict(err error) bool {
	var ce *store.ConflictError
	return errors.As(err, &ce)
}

// waitOutcome waits until unit id is settled by whichever process owns it:
// its record deleted (settled is true) or marked failed (false). It waits
// at most two leases.
func (s *Store) waitOutcome(ctx context.Context, id string) (settled bool, err error) {
	deadline := s.clock().Add(2 * s.lease)
	pause := 10 * time.Millisecond
	for {
		var rec journalRecord
		err := s.journal.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&rec)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
			return true, nil
		case err != nil:
			return false, err
		case rec.State == stateFailed:
			return false, nil
		case s.clock().After(deadline):
			return false, fmt.Errorf("still %s after %v", rec.State, 2*s.lease)
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
	}
}

// setState moves the record of unit id, which this Store owns, from state
// from to state to, and renews the lease. It reports whether the record was
// in state from and owned by this Store.
func (s *Store) setState(ctx context.Context, id, from, to string) (bool, error) {
	res, err := s.journal.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "state", Value: from}, {Key: "owner", Value: s.owner}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: to},
			{Key: "lease", Value: bson.NewDateTimeFromTime(s.clock().Add(s.lease))}}},
			{Key: "$inc", Value: bson.D{{Key: "renewals", Value: 1}}}})
	if err != nil {
		return false, err
	}
	return res.MatchedCount == 1, nil
}

// renew extends this Store's lease on unit id, checking on the way that the
// unit is still in state and owned by this Store; it returns errLost if not.
func (s *Store) renew(ctx context.Context, id, state string) error {
	ok, err := s.setState(ctx, id, state, state)
	if err != nil {
		return fmt.Errorf("journal: unit %s: renew lease: %w", id, err)
	}
	if !ok {
		return fmt.Errorf("journal: unit %s: %w", id, errLost)
	}
	return nil
}

// takeOver makes this Store the owner of the unit rec records, if it has
// seen the unit held unchanged (same state, owner, lease and renewals) for
// a lease by its own clock, and the unit is still as rec shows it. It
// reports whether it did. The lease written in rec, a time by its owner's
// clock, is never compared with this Store's: the clocks of processes
// sharing a database may be minutes or hours apart, and a process whose
// clock is ahead would take a live unit over while its owner still applies
// it.
func (s *Store) takeOver(ctx context.Context, rec *journalRecord) (bool, error) {
	if !s.heldForLease(rec) {
		return false, nil
	}
	renewals := any(rec.Renewals)
	if rec.Renewals == 0 {
		renewals = bson.D{{Key: "$exists", Value: false}}
	}
	res, err := s.journal.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: rec.ID}, {Key: "state", Value: rec.State},
			{Key: "owner", Value: rec.Owner}, {Key: "lease", Value: rec.Lease},
			{Key: "renewals", Value: renewals}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "owner", Value: s.owner},
			{Key: "lease", Value: bson.NewDateTimeFromTime(s.clock().Add(s.lease))}}},
			{Key: "$inc", Value: bson.D{{Key: "renewals", Value: 1}}}})
	if err != nil {
		return false, err
	}
	return res.MatchedCount == 1, nil
}

// heldForLease reports whether this Store has seen the unit rec records
// held, unchanged, for a lease by its own clock (lease.Watch). Any renewal
// changes the record, and starts the measure again. A Store that starts
// while a dead process's unit is held waits a lease before taking it over,
// as the others do.
func (s *Store) heldForLease(rec *journalRecord) bool {
	return s.seen.Expired(rec.ID, *rec, s.clock(), s.lease)
}

// forgetSightings forgets the units seen held that are no longer in the
// journal, known being the ids of those that are.
func (s *Store) forgetSightings(known map[string]bool) {
	s.seen.Forget(func(id string, _ time.Time) bool { return !known[id] })
}

// sweep settles every unit of work this Store has seen unrenewed for a
// lease (a crash, or a failure), oldest first, deletes journal writes and
// claims left without a record, and settles the versions it has seen pending in
// history for a lease (see sweepPending). Other units are left to their
// owner.
// Open calls it, and then every half lease while the Store is open.
//
// Writes and claims are listed before records: a unit's record is inserted
// before its writes and claims, so one whose record is missing from the
// later listing belongs to a unit that was done with, never to one still
// being journaled.
func (s *Store) sweep(ctx context.Context) error {
	// A find rather than distinct: FerretDB answers distinct on a
	// collection that does not exist yet with a reply the driver cannot
	// decode.
	wcur, err := s.journalWrites.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "txn", Value: 1}}))
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	var writes []struct {
		Txn string `bson:"txn"`
	}
	if err := wcur.All(ctx, &writes); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	claimed, err := s.claimUnits(ctx)
	if err != nil {
		return fmt.Errorf("journal: claims: %w", err)
	}
	var ids []string
	seen := map[string]bool{}
	for _, w := range writes {
		if !seen[w.Txn] {
			seen[w.Txn] = true
			ids = append(ids, w.Txn)
		}
	}
	cur, err := s.journal.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	var recs []journalRecord
	if err := cur.All(ctx, &recs); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	known := map[string]bool{}
	for _, rec := range recs {
		known[rec.ID] = true
		if _, mine := s.committing.Load(rec.ID); mine || rec.State == stateFailed {
			continue
		}
		ok, err := s.takeOver(ctx, &rec)
		if err != nil {
			return fmt.Errorf("journal: unit %s: %w", rec.ID, err)
		}
		if !ok {
			continue
		}
		if err := s.settle(ctx, rec.ID); err != nil && !errors.Is(err, errFailed) && !errors.Is(err, errLost) {
			return fmt.Errorf("journal: unit %s: %w", rec.ID, err)
		}
	}
	s.forgetSightings(known)
	var orphans bson.A
	for _, id := range ids {
		if !known[id] {
			orphans = append(orphans, id)
		}
	}
	if len(orphans) > 0 {
		filter := bson.D{{Key: "txn", Value: bson.D{{Key: "$in", Value: orphans}}}}
		if _, err := s.journalWrites.DeleteMany(ctx, filter); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	if err := s.sweepClaims(ctx, claimed, known); err != nil {
		return fmt.Errorf("journal: claims: %w", err)
	}
	return s.sweepPending(ctx)
}

// settle completes or undoes unit id, which this Store owns, according to
// its record: a pending unit is rolled back (nothing was applied), a
// committed one rolled forward, falling back to undo if another writer got
// in, an aborting one undone. A unit that cannot be undone is marked failed
// and kept. It returns errLost, at once, when another process has taken the
// unit over.
func (s *Store) settle(ctx context.Context, id string) error {
	mine := bson.D{{Key: "_id", Value: id}, {Key: "owner", Value: s.owner}}
	for {
		var rec journalRecord
		err := s.journal.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&rec)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return s.forget(ctx, id)
		}
		if err != nil {
			return err
		}
		if rec.Owner != s.owner {
			return fmt.Errorf("journal: unit %s: %w", id, errLost)
		}
		switch rec.State {
		case statePending:
			res, err := s.journal.DeleteOne(ctx, append(mine, bson.E{Key: "state", Value: statePending}))
			if err != nil {
				return err
			}
			if res.DeletedCount == 0 {
				continue // changed meanwhile: look again
			}
			return s.forget(ctx, id)
		case stateCommitted:
			entries, err := s.load(ctx, &rec)
			if err != nil {
				return err
			}
			done, err := s.inHistory(ctx, entries)
			if err != nil {
				return err
			}
			// The unit's owner stopped a lease ago or more, so the
			// writes it did not make are stamped now: at the time they
			// were, a reader of history would take them for made
			// already (see journalWrite.restamp).
			at := time.Now().UTC().Truncate(time.Millisecond)
			for _, e := range entries {
				if done[e.Key] {
					continue
				}
				if err = s.renew(ctx, id, stateCommitted); err != nil {
					return err
				}
				if err = e.restamp(at, s.restamp); err != nil {
					return err
				}
				if err = s.apply(ctx, e); err != nil {
					break
				}
			}
			if isConflict(err) {
				if _, err := s.setState(ctx, id, stateCommitted, stateAborting); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
			return s.finish(ctx, id)
		case stateAborting:
			entries, err := s.load(ctx, &rec)
			if err != nil {
				return err
			}
			kept, err := s.undo(ctx, id, entries)
			if err != nil {
				return err
			}
			if len(kept) > 0 {
				msg := fmt.Sprintf("could not undo %d resources written over since, first %s/%s", len(kept), kept[0].typ, kept[0].id)
				res, err := s.journal.UpdateOne(ctx, append(mine, bson.E{Key: "state", Value: stateAborting}),
					bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: stateFailed}, {Key: "error", Value: msg}}}})
				if err != nil {
					return err
				}
				if res.MatchedCount == 0 {
					return fmt.Errorf("journal: unit %s: %w", id, errLost)
				}
				return fmt.Errorf("unit %s: %s: %w", id, msg, errFailed)
			}
			return s.finish(ctx, id)
		default: // failed: kept for inspection
			return fmt.Errorf("unit %s: %s: %w", id, rec.Error, errFailed)
		}
	}
}

// inHistory returns the keys of the entries whose version is in history
// and no longer pending (with one query, rather than one per entry): they
// are applied completely, the pending mark being removed last.
func (s *Store) inHistory(ctx context.Context, entries []*journalWrite) (map[string]bool, error) {
	keys := make(bson.A, len(entries))
	want := make(map[string]*journalWrite, len(entries))
	for i, e := range entries {
		k := historyKey(e.w.Type, e.w.ID, e.w.VersionID())
		keys[i] = k
		want[k] = e
	}
	cur, err := s.versions.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}})
	if err != nil {
		return nil, err
	}
	var docs []versionDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	done := map[string]bool{}
	for i := range docs {
		if e := want[docs[i].Key]; e != nil && sameVersion(&docs[i], e.w, e.by) && docs[i].Pending == nil {
			done[e.Key] = true
		}
	}
	return done, nil
}

// load returns the journaled writes of rec in order, checking that none is
// missing.
func (s *Store) load(ctx context.Context, rec *journalRecord) ([]*journalWrite, error) {
	cur, err := s.journalWrites.Find(ctx, bson.D{{Key: "txn", Value: rec.ID}},
		options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}))
	if err != nil {
		return nil, err
	}
	var entries []*journalWrite
	if err := cur.All(ctx, &entries); err != nil {
		return nil, err
	}
	if len(entries) != rec.N {
		return nil, fmt.Errorf("unit %s: %d journaled writes, want %d", rec.ID, len(entries), rec.N)
	}
	for _, e := range entries {
		if err := e.rebuild(); err != nil {
			return nil, err
		}
	}
	return entries, nil
}

// undo puts every resource that entries wrote back as it was before them,
// last written first, and removes the versions they wrote from history. A
// resource that another writer has written since is left as it is: if the
// unit never reached it there is nothing to undo; if the writer replaced a
// version the unit wrote, undoing would lose that write, and undo returns
// the resource among those it kept.
func (s *Store) undo(ctx context.Context, id string, entries []*journalWrite) (kept []resource, err error) {
	type span struct {
		first *journalWrite           // the unit's first write to the resource
		wrote map[int64]*journalWrite // the versions the unit wrote
	}
	var order []resource
	spans := map[resource]*span{}
	for _, e := range entries {
		r := resource{e.w.Type, e.w.ID}
		sp := spans[r]
		if sp == nil {
			sp = &span{first: e, wrote: map[int64]*journalWrite{}}
			spans[r] = sp
			order = append(order, r)
		}
		sp.wrote[e.w.VersionID()] = e
	}
	undone := 0
	for _, r := range slices.Backward(order) {
		if err := s.renew(ctx, id, stateAborting); err != nil {
			return nil, err
		}
		sp := spans[r]
		base := sp.first.Expected
		coll := s.db.Collection(r.typ)
		var cur versionDoc
		err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: r.id}}, options.FindOne().SetProjection(currentProjection)).Decode(&cur)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments) && base == 0, err == nil && cur.Version == base:
			// Not reached, or back already.
		case err == nil && sp.wrote[cur.Version] != nil && sameVersion(&cur, sp.wrote[cur.Version].w, sp.wrote[cur.Version].by):
			filter := bson.D{{Key: "_id", Value: r.id}, {Key: fieldVersion, Value: cur.Version}}
			var matched int64
			if sp.first.Before != nil {
				res, err := coll.ReplaceOne(ctx, filter, sp.first.Before)
				if err != nil {
					return nil, err
				}
				matched = res.MatchedCount
			} else {
				res, err := coll.DeleteOne(ctx, filter)
				if err != nil {
					return nil, err
				}
				matched = res.DeletedCount
			}
			if matched == 0 {
				return nil, fmt.Errorf("undo %s/%s: written during the undo", r.typ, r.id)
			}
		case err != nil && !errors.Is(err, mongo.ErrNoDocuments):
			return nil, err
		default:
			// Another writer has written the resource: over the unit's
			// version, or before the unit reached it.
			reached, err := s.holds(ctx, sp.first)
			if err != nil {
				return nil, err
			}
			if reached != nil {
				kept = append(kept, r)
			}
			continue
		}
		// The resource is as it was before the unit: remove the versions
		// the unit wrote from history, and the end it gave the version it
		// replaced. Each is matched on its writer (or time) too, so that
		// nothing another writer has written since is touched.
		// The first version's time is the end it gave the one it replaced:
		// read from history, as the unit may have been stamped again.
		end := bson.NewDateTimeFromTime(sp.first.w.LastUpdated)
		first, err := s.holds(ctx, sp.first)
		if err != nil {
			return nil, err
		}
		if first != nil {
			end = first.Time
		}
		var models []mongo.WriteModel
		for v, e := range sp.wrote {
			filter := bson.D{{Key: "_id", Value: historyKey(r.typ, r.id, v)}, {Key: fieldBy, Value: e.by}}
			if e.by == "" {
				filter = bson.D{{Key: "_id", Value: historyKey(r.typ, r.id, v)},
					{Key: fieldTime, Value: bson.NewDateTimeFromTime(e.w.LastUpdated)}}
			}
			models = append(models, mongo.NewDeleteOneModel().SetFilter(filter))
		}
		if base > 0 {
			models = append(models, mongo.NewUpdateOneModel().
				SetFilter(bson.D{
					{Key: "_id", Value: historyKey(r.typ, r.id, base)},
					{Key: fieldEnd, Value: end}}).
				SetUpdate(bson.D{{Key: "$unset", Value: bson.D{{Key: fieldEnd, Value: ""}}}}))
		}
		if _, err := s.versions.BulkWrite(ctx, models); err != nil {
			return nil, err
		}
		undone++
		if err := s.at(stageUndone, undone); err != nil {
			return nil, err
		}
	}
	return kept, nil
}

// finish deletes the record of unit id, durably, if this Store still owns
// it (errLost if not), and then its writes.
func (s *Store) finish(ctx context.Context, id string) error {
	res, err := s.journal.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "owner", Value: s.owner}})
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("journal: unit %s: %w", id, errLost)
	}
	if err := s.at(stageFinished, 0); err != nil {
		return err
	}
	return s.forget(ctx, id)
}

// forget deletes the journaled writes and the claims of unit id.
func (s *Store) forget(ctx context.Context, id string) error {
	if _, err := s.journalWrites.DeleteMany(ctx, bson.D{{Key: "txn", Value: id}}); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if _, err := s.journalClaims.DeleteMany(ctx, bson.D{{Key: "txn", Value: id}}); err != nil {
		return fmt.Errorf("journal: claims: %w", err)
	}
	return nil
}
