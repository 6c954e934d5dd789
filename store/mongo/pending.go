package mongo

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"carefhir/store"
)

// sweepPending settles every version of history that this Store has seen
// pending for a lease by its own clock: its writer stopped between
// claiming it and completing it (see Store.write), as a write in progress
// never takes that long (every operation is bounded by the client timeout).
func (s *Store) sweepPending(ctx context.Context) error {
	cur, err := s.versions.Find(ctx, bson.D{{Key: fieldPending, Value: bson.D{{Key: "$exists", Value: true}}}})
	if err != nil {
		return fmt.Errorf("pending versions: %w", err)
	}
	var rows []versionDoc
	if err := cur.All(ctx, &rows); err != nil {
		return fmt.Errorf("pending versions: %w", err)
	}
	known := map[string]bool{}
	for i := range rows {
		row := &rows[i]
		known[row.Key] = true
		if !s.pending.Expired(row.Key, row.Time, s.clock(), s.lease) {
			continue
		}
		if err := s.settlePending(ctx, row); err != nil {
			return fmt.Errorf("pending version %s: %w", row.Key, err)
		}
	}
	s.pending.Forget(func(key string, _ time.Time) bool { return !known[key] })
	return nil
}

// settlePending completes row, a version pending in history whose writer
// stopped: it is made current if the version it replaces still is, and
// then no longer pending; if that version is not current, and row not
// current either, row never could be, and is removed.
func (s *Store) settlePending(ctx context.Context, row *versionDoc) error {
	if !validType(row.Type) {
		return nil
	}
	if s.locking {
		defer s.lock(row.Type, row.ID)()
	}
	coll := s.db.Collection(row.Type)
	current, err := s.currentVersion(ctx, row.Type, row.ID)
	if err != nil {
		return err
	}
	w := &store.Write{Type: row.Type, ID: row.ID, Expected: row.Version - 1,
		LastUpdated: row.Time.Time().UTC(), Deleted: row.Deleted, JSON: row.JSON}
	switch {
	case current >= row.Version:
		// Made current: only its completion was lost.
	case current == w.Expected:
		doc := bson.D{{Key: "_id", Value: row.ID}, {Key: fieldVersion, Value: row.Version},
			{Key: fieldTime, Value: row.Time}, {Key: fieldDeleted, Value: row.Deleted}}
		if !row.Deleted {
			doc = append(doc, bson.E{Key: fieldJSON, Value: bson.Binary{Data: row.JSON}})
		}
		if row.By != "" {
			doc = append(doc, bson.E{Key: fieldBy, Value: row.By})
		}
		elems, err := row.Pending.Elements()
		if err != nil {
			return err
		}
		for _, e := range elems {
			doc = append(doc, bson.E{Key: e.Key(), Value: e.Value()})
		}
		if w.Expected == 0 {
			_, err = coll.InsertOne(ctx, doc)
		} else {
			var res *mongo.UpdateResult
			res, err = coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: row.ID}, {Key: fieldVersion, Value: w.Expected}}, doc)
			if err == nil && res.MatchedCount == 0 {
				return nil // written meanwhile: looked at again by the next sweep
			}
		}
		if mongo.IsDuplicateKeyError(err) {
			return nil
		}
		if err != nil {
			return err
		}
	default:
		return unclaimVersion(ctx, s.versions, w)
	}
	return writeHistory(ctx, s.versions, w, nil)
}

// pendingIndex is the index of history that sweepPending reads: sparse, so
// that it holds the few pending versions alone.
var pendingIndex = mongo.IndexModel{Keys: bson.D{{Key: fieldPending, Value: 1}}, Options: options.Index().SetSparse(true)}

// ensurePendingIndex creates pendingIndex if history lacks it.
func (s *Store) ensurePendingIndex(ctx context.Context) error {
	existing, err := indexKeys(ctx, s.versions)
	if err != nil {
		return err
	}
	for _, k := range existing {
		if k == keyString(pendingIndex.Keys.(bson.D)) {
			return nil
		}
	}
	_, err = s.versions.Indexes().CreateOne(ctx, pendingIndex)
	return err
}
