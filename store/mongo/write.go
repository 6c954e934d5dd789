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
}

// currentProjection leaves the search fields out of current versions read back.
var currentProjection = bson.D{
	{Key: fieldVersion, Value: 1}, {Key: fieldTime, Value: 1},
	{Key: fieldDeleted, Value: 1}, {Key: fieldJSON, Value: 1},
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
	if w.Deleted {
		return d
	}
	d = append(d, bson.E{Key: fieldJSON, Value: bson.Binary{Data: w.JSON}})
	return append(d, indexFields(w.Index)...)
}

// historyFields returns the fields of a history document, but its _id.
func historyFields(typ, id string, version int64, ts bson.DateTime, deleted bool, json []byte) bson.D {
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
	err := s.write(ctx, s.db, w, currentDoc(w))
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
// w.Expected is not current.
//
// The steps are ordered so that a crash between them loses nothing that was
// acknowledged and never leaves in history a version that did not become
// current:
//
//  1. The current-version document is written first, conditionally: an
//     insert for a create (a duplicate _id means the resource exists), a
//     replace filtered on {_id, v: Expected} for an update. This one-document
//     write is the commit point: when it fails, nothing was written.
//  2. Then history, in one ordered bulk write of idempotent upserts: the
//     replaced version gets its end time and the new version is added.
//
// History is written only after the commit point, so it never holds a
// version that was refused or never written. A crash between the steps
// leaves the new version current and readable (VRead falls back to the
// current document) but missing from history. The next update of the
// resource repairs that: the replace returns the document it replaced, and
// step 2 inserts that version into history if it is not there.
func (s *Store) write(ctx context.Context, db *mongo.Database, w *store.Write, doc any) error {
	coll := db.Collection(w.Type)
	var prev *versionDoc
	if w.Expected == 0 {
		_, err := coll.InsertOne(ctx, doc)
		if mongo.IsDuplicateKeyError(err) {
			return errStale
		}
		if err != nil {
			return err
		}
	} else {
		prev = new(versionDoc)
		filter := bson.D{{Key: "_id", Value: w.ID}, {Key: fieldVersion, Value: w.Expected}}
		err := coll.FindOneAndReplace(ctx, filter, doc).Decode(prev)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return errStale
		}
		if err != nil {
			return err
		}
	}
	if err := writeHistory(ctx, db.Collection(historyCollection), w, prev); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	return nil
}

// writeHistory records in history the version w wrote and that the version
// it replaced stopped being current. prev, when known, is the document of
// that version, from which its history entry is made if missing. Repeating
// it, or racing a repair, is harmless: the end is set to the same time, the
// replaced version is an upsert that only fills in what is missing, and the
// new version is an insert whose duplicate key means it is there already
// (an insert rather than an upsert, because FerretDB finds an upsert's
// document by scanning the collection).
func writeHistory(ctx context.Context, history *mongo.Collection, w *store.Write, prev *versionDoc) error {
	var models []mongo.WriteModel
	if w.Expected > 0 {
		// The filter names the shard key of a sharded history (type,
		// id), which an upsert must.
		m := mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: historyKey(w.Type, w.ID, w.Expected)},
				{Key: fieldType, Value: w.Type}, {Key: fieldID, Value: w.ID}})
		if prev != nil {
			m.SetUpdate(bson.D{
				{Key: "$set", Value: bson.D{{Key: fieldEnd, Value: bson.NewDateTimeFromTime(w.LastUpdated)}}},
				{Key: "$setOnInsert", Value: historyFields(w.Type, w.ID, prev.Version, prev.Time, prev.Deleted, prev.JSON)},
			}).SetUpsert(true)
		} else {
			m.SetUpdate(bson.D{{Key: "$set", Value: bson.D{{Key: fieldEnd, Value: bson.NewDateTimeFromTime(w.LastUpdated)}}}})
		}
		models = append(models, m)
	}
	doc := append(bson.D{{Key: "_id", Value: historyKey(w.Type, w.ID, w.VersionID())}},
		historyFields(w.Type, w.ID, w.VersionID(), bson.NewDateTimeFromTime(w.LastUpdated), w.Deleted, w.JSON)...)
	models = append(models, mongo.NewInsertOneModel().SetDocument(doc))
	_, err := history.BulkWrite(ctx, models)
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) && bwe.WriteConcernError == nil && len(bwe.WriteErrors) == 1 &&
		bwe.WriteErrors[0].Index == len(models)-1 && bwe.WriteErrors[0].Code == codeDuplicateKey {
		return nil
	}
	return err
}

// codeDuplicateKey is the error code of a write that breaks a unique index.
const codeDuplicateKey = 11000

// conflict returns the *store.ConflictError of a refused write w, with the
// version now current read back.
func (s *Store) conflict(ctx context.Context, w *store.Write) error {
	current, err := s.currentVersion(ctx, w.Type, w.ID)
	if err != nil {
		return fmt.Errorf("mongo: put %s/%s: conflict: %w", w.Type, w.ID, err)
	}
	return &store.ConflictError{Type: w.Type, ID: w.ID, Expected: w.Expected, Current: current}
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
