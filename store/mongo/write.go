package mongo

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"carefhir/store"
)

// versionDoc is a current-version or history document as read back.
type versionDoc struct {
	Key     string        `bson:"_id"` // the resource id, or the history key
	Type    string        `bson:"type"`
	ID      string        `bson:"id"`
	Version int64         `bson:"v"`
	Time    bson.DateTime `bson:"ts"`
	Deleted bool          `bson:"del"`
	JSON    []byte        `bson:"json"`
	By      string        `bson:"by,omitempty"`
	Method  string        `bson:"m,omitempty"`
	// Pending, in history, holds the search fields of a version that may
	// not be current yet (see Store.write).
	Pending bson.Raw `bson:"pend,omitempty"`
}

// currentProjection leaves the search fields out of current versions read back.
var currentProjection = bson.D{
	{Key: fieldVersion, Value: 1}, {Key: fieldTime, Value: 1},
	{Key: fieldDeleted, Value: 1}, {Key: fieldJSON, Value: 1}, {Key: fieldBy, Value: 1},
	{Key: fieldMethod, Value: 1},
}

// version returns d as a version of typ/id.
func (d *versionDoc) version(typ, id string) *store.Version {
	return &store.Version{
		Type:        typ,
		ID:          id,
		VersionID:   d.Version,
		LastUpdated: d.Time.Time().UTC(),
		Deleted:     d.Deleted,
		JSON:        d.JSON,
		Method:      d.Method,
	}
}

// currentDoc returns the current-version document of the version w writes.
func currentDoc(w *store.Write) bson.D {
	d := bson.D{
		{Key: "_id", Value: w.ID},
		{Key: fieldVersion, Value: w.VersionID()},
		{Key: fieldTime, Value: bson.NewDateTimeFromTime(w.LastUpdated)},
		{Key: fieldDeleted, Value: w.Deleted},
	}
	if w.Method != "" {
		d = append(d, bson.E{Key: fieldMethod, Value: w.Method})
	}
	if w.Deleted {
		return d
	}
	d = append(d, bson.E{Key: fieldJSON, Value: bson.Binary{Data: w.JSON}})
	return append(d, indexFields(w.Index)...)
}

// historyFields returns the fields of a history document, but its _id; by
// names the journaled write that wrote the version, if one did, and method
// the interaction that did, if recorded.
func historyFields(typ, id string, version int64, ts bson.DateTime, deleted bool, json []byte, by, method string) bson.D {
	d := bson.D{
		{Key: fieldType, Value: typ},
		{Key: fieldID, Value: id},
		{Key: fieldVersion, Value: version},
		{Key: fieldTime, Value: ts},
		{Key: fieldDeleted, Value: deleted},
	}
	if !deleted {
		d = append(d, bson.E{Key: fieldJSON, Value: bson.Binary{Data: json}})
	}
	if by != "" {
		d = append(d, bson.E{Key: fieldBy, Value: by})
	}
	if method != "" {
		d = append(d, bson.E{Key: fieldMethod, Value: method})
	}
	return d
}

// Put stores w as version w.Expected+1 of its resource if w.Expected is
// still the current version, and returns a *store.ConflictError otherwise.
// When Put returns nil, a majority of the replica set has the write in its
// journal.
func (s *Store) Put(ctx context.Context, w *store.Write) error {
	if err := checkWrite(w); err != nil {
		return err
	}
	if s.locking {
		defer s.lock(w.Type, w.ID)()
	}
	return s.put(ctx, w)
}

// put writes w, which checkWrite accepted, with the resource's stripe locked.
func (s *Store) put(ctx context.Context, w *store.Write) error {
	doc, err := bson.Marshal(currentDoc(w))
	if err != nil {
		return fmt.Errorf("mongo: put %s/%s: %w", w.Type, w.ID, err)
	}
	err = s.write(ctx, s.db, w, doc, "")
	if errors.Is(err, errStale) {
		return s.conflict(ctx, w)
	}
	if err != nil {
		return fmt.Errorf("mongo: put %s/%s: %w", w.Type, w.ID, err)
	}
	return nil
}

// errStale reports that a write's expected version is not the current one.
var errStale = errors.New("expected version is not current")

// write makes doc, the current-version document of w, current if w.Expected
// is still the current version, and records it in history, through db (whose
// write concern applies). It returns errStale, having written nothing, when
// w.Expected is not current. by names the journaled write w is (see
// journalWrite), "" for a write of Put.
//
// The steps are ordered so that no two writers, in one process or several,
// can both replace one version, even on a server that does not apply a
// filtered replace atomically (FerretDB), and so that a version written
// current is always in history:
//
//  1. The new version is inserted into history, marked pending with the
//     search fields of doc. Its _id names the resource and the version, so
//     of writers racing to replace one version exactly one inserts it: an
//     insert of a taken _id fails on every server. This is the commit point.
//  2. The current-version document is written, conditionally: an insert for
//     a create, a replace filtered on {_id, v: Expected} for an update. When
//     Expected is not current after all, the pending version is removed and
//     nothing is kept.
//  3. The pending mark is removed, and the replaced version gets its end
//     time (or is inserted, from the document the replace returned, if a
//     crash of an older version of the engine left it out of history).
//
// A crash between the steps leaves a pending version, which history holds
// (and readers of history see) from step 1 on. A crash after step 2 is
// completed by the next write of the resource; one before it, by the sweep
// of a process that has seen the version pending for a lease (see
// settlePending), which makes it current if Expected still is: until
// then, every write of the resource is refused, its version being taken
// or not current.
func (s *Store) write(ctx context.Context, db *mongo.Database, w *store.Write, doc bson.Raw, by string) error {
	history := db.Collection(historyCollection)
	claimed, held, err := claimVersion(ctx, history, w, doc, by)
	if err != nil {
		return err
	}
	if held != nil && held.Pending == nil {
		return errStale // made before, and completed
	}
	if held != nil {
		// Claimed before by this journaled write, maybe as another process
		// stamped it (see journalWrite.restamp): what history holds is
		// the version made.
		w = held.write(w.Type, w.Expected)
		if doc, err = held.current(); err != nil {
			return err
		}
	}
	coll := db.Collection(w.Type)
	var prev *versionDoc
	if w.Expected == 0 {
		_, err = coll.InsertOne(ctx, doc)
		if mongo.IsDuplicateKeyError(err) {
			err = errStale
		}
	} else {
		prev = new(versionDoc)
		filter := bson.D{{Key: "_id", Value: w.ID}, {Key: fieldVersion, Value: w.Expected}}
		err = coll.FindOneAndReplace(ctx, filter, doc).Decode(prev)
		if errors.Is(err, mongo.ErrNoDocuments) {
			err = errStale
		}
	}
	if errors.Is(err, errStale) && claimed {
		if uerr := unclaimVersion(ctx, history, w); uerr != nil {
			return fmt.Errorf("history: %w", uerr)
		}
	}
	if err != nil {
		return err
	}
	// The last step may be lost without losing anything: a pending version
	// that is current is completed by the next write or sweep.
	if err := writeHistory(ctx, s.applyDB.Collection(historyCollection), w, prev); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	return nil
}

// claimVersion inserts the version w writes into history, pending, with
// the search fields of doc, its current-version document. It reports
// whether it inserted it; it returns errStale when another write holds that
// version, and the version there when it is that of the journaled write by
// (claimed before, by this unit of work, which is being applied again). A
// write of Put, by "", never finds its own: two writes of the same bytes at
// the same time are still two writes.
func claimVersion(ctx context.Context, history *mongo.Collection, w *store.Write, doc bson.Raw, by string) (bool, *versionDoc, error) {
	row := append(bson.D{{Key: "_id", Value: historyKey(w.Type, w.ID, w.VersionID())}},
		historyFields(w.Type, w.ID, w.VersionID(), bson.NewDateTimeFromTime(w.LastUpdated), w.Deleted, w.JSON, by, w.Method)...)
	row = append(row, bson.E{Key: fieldPending, Value: searchFieldsOf(doc)})
	_, err := history.InsertOne(ctx, row)
	if err == nil {
		return true, nil, nil
	}
	if !mongo.IsDuplicateKeyError(err) {
		return false, nil, fmt.Errorf("history: %w", err)
	}
	held := new(versionDoc)
	err = history.FindOne(ctx, bson.D{{Key: "_id", Value: historyKey(w.Type, w.ID, w.VersionID())},
		{Key: fieldType, Value: w.Type}, {Key: fieldID, Value: w.ID}}).Decode(held)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return false, nil, errStale // purged meanwhile
	case err != nil:
		return false, nil, fmt.Errorf("history: %w", err)
	case by != "" && sameVersion(held, w, by):
		return false, held, nil
	}
	return false, nil, errStale
}

// claimed reports whether history holds the version w writes, and whether
// that version is pending (see write).
func (s *Store) claimed(ctx context.Context, w *store.Write) (held, pending bool, err error) {
	var d struct {
		Pending bson.Raw `bson:"pend,omitempty"`
	}
	err = s.versions.FindOne(ctx, bson.D{{Key: "_id", Value: historyKey(w.Type, w.ID, w.VersionID())},
		{Key: fieldType, Value: w.Type}, {Key: fieldID, Value: w.ID}},
		options.FindOne().SetProjection(bson.D{{Key: fieldPending, Value: 1}})).Decode(&d)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return false, false, nil
	case err != nil:
		return false, false, fmt.Errorf("history: %w", err)
	}
	return true, d.Pending != nil, nil
}

// write returns the write that made d, a version in history of typ, which
// replaced version expected.
func (d *versionDoc) write(typ string, expected int64) *store.Write {
	return &store.Write{Type: typ, ID: d.ID, Expected: expected,
		LastUpdated: d.Time.Time().UTC(), Deleted: d.Deleted, JSON: d.JSON, Method: d.Method}
}

// current returns the current-version document of d, a version pending in
// history.
func (d *versionDoc) current() (bson.Raw, error) {
	doc := bson.D{{Key: "_id", Value: d.ID}, {Key: fieldVersion, Value: d.Version},
		{Key: fieldTime, Value: d.Time}, {Key: fieldDeleted, Value: d.Deleted}}
	if !d.Deleted {
		doc = append(doc, bson.E{Key: fieldJSON, Value: bson.Binary{Data: d.JSON}})
	}
	if d.By != "" {
		doc = append(doc, bson.E{Key: fieldBy, Value: d.By})
	}
	if d.Method != "" {
		doc = append(doc, bson.E{Key: fieldMethod, Value: d.Method})
	}
	if d.Pending != nil {
		elems, err := d.Pending.Elements()
		if err != nil {
			return nil, fmt.Errorf("pending version %s: %w", d.Key, err)
		}
		for _, e := range elems {
			doc = append(doc, bson.E{Key: e.Key(), Value: e.Value()})
		}
	}
	return bson.Marshal(doc)
}

// unclaimVersion removes the pending version claimVersion inserted for w,
// whose expected version turned out not to be current.
func unclaimVersion(ctx context.Context, history *mongo.Collection, w *store.Write) error {
	_, err := history.DeleteOne(ctx, bson.D{{Key: "_id", Value: historyKey(w.Type, w.ID, w.VersionID())},
		{Key: fieldTime, Value: bson.NewDateTimeFromTime(w.LastUpdated)},
		{Key: fieldPending, Value: bson.D{{Key: "$exists", Value: true}}}})
	return err
}

// searchFieldsOf returns the fields of a current-version document that are
// not those of its history entry: its search fields.
func searchFieldsOf(doc bson.Raw) bson.D {
	elems, _ := doc.Elements()
	d := bson.D{}
	for _, e := range elems {
		switch e.Key() {
		case "_id", fieldVersion, fieldTime, fieldDeleted, fieldJSON, fieldBy, fieldMethod:
		default:
			d = append(d, bson.E{Key: e.Key(), Value: e.Value()})
		}
	}
	return d
}

// writeHistory completes in history the version w wrote: it is no longer
// pending, and the version it replaced stopped being current. prev, when
// known, is the document of that version, from which its history entry is
// made if missing. Repeating it, or racing a repair, is harmless: the end
// is set to the same time, and the replaced version is an upsert that only
// fills in what is missing.
func writeHistory(ctx context.Context, history *mongo.Collection, w *store.Write, prev *versionDoc) error {
	models := []mongo.WriteModel{mongo.NewUpdateOneModel().
		SetFilter(bson.D{{Key: "_id", Value: historyKey(w.Type, w.ID, w.VersionID())},
			{Key: fieldType, Value: w.Type}, {Key: fieldID, Value: w.ID}}).
		SetUpdate(bson.D{{Key: "$unset", Value: bson.D{{Key: fieldPending, Value: ""}}}})}
	if w.Expected > 0 {
		// The filter names the shard key of a sharded history (type,
		// id), which an upsert must.
		m := mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: historyKey(w.Type, w.ID, w.Expected)},
				{Key: fieldType, Value: w.Type}, {Key: fieldID, Value: w.ID}})
		end := bson.D{{Key: fieldEnd, Value: bson.NewDateTimeFromTime(w.LastUpdated)}}
		if prev != nil {
			m.SetUpdate(bson.D{
				{Key: "$set", Value: end},
				{Key: "$unset", Value: bson.D{{Key: fieldPending, Value: ""}}},
				{Key: "$setOnInsert", Value: historyFields(w.Type, w.ID, prev.Version, prev.Time, prev.Deleted, prev.JSON, prev.By, prev.Method)},
			}).SetUpsert(true)
		} else {
			m.SetUpdate(bson.D{{Key: "$set", Value: end}, {Key: "$unset", Value: bson.D{{Key: fieldPending, Value: ""}}}})
		}
		models = append(models, m)
	}
	_, err := history.BulkWrite(ctx, models)
	return err
}

// conflict returns the *store.ConflictError of a refused write w, with the
// version now current read back.
func (s *Store) conflict(ctx context.Context, w *store.Write) error {
	current, err := s.currentVersion(ctx, w.Type, w.ID)
	if err != nil {
		return fmt.Errorf("mongo: put %s/%s: conflict: %w", w.Type, w.ID, err)
	}
	return conflictError(w, current)
}

// conflictError is the *store.ConflictError of w, refused while version
// current is current: with the expected version still current, another
// writer has claimed the next (see write) and not finished, the first
// version of a resource not yet created included.
func conflictError(w *store.Write, current int64) *store.ConflictError {
	return &store.ConflictError{Type: w.Type, ID: w.ID, Expected: w.Expected, Current: current,
		Pending: current == w.Expected}
}

// currentVersion returns the current version of typ/id, 0 if it never existed.
func (s *Store) currentVersion(ctx context.Context, typ, id string) (int64, error) {
	var d struct {
		Version int64 `bson:"v"`
	}
	err := s.db.Collection(typ).FindOne(ctx, bson.D{{Key: "_id", Value: id}},
		options.FindOne().SetProjection(bson.D{{Key: fieldVersion, Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return d.Version, nil
}
