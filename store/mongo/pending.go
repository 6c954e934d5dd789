package mongo

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
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
	w := row.write(row.Type, row.Version-1)
	switch {
	case current >= row.Version:
		// Made current: only its completion was lost.
	case current == w.Expected:
		doc, err := row.current()
		if err != nil {
			return err
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
