package mongo

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"carefhir/store"
)

var _ store.Reindexer = (*Store)(nil)

// Scan calls fn with each current, non-deleted version of typ, in id order.
func (s *Store) Scan(ctx context.Context, typ string, fn func(v *store.Version) error) error {
	if !validType(typ) {
		return nil
	}
	cur, err := s.db.Collection(typ).Find(ctx, bson.D{{Key: fieldDeleted, Value: false}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetProjection(currentProjection))
	if err != nil {
		return fmt.Errorf("mongo: scan %s: %w", typ, err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var d versionDoc
		if err := cur.Decode(&d); err != nil {
			return fmt.Errorf("mongo: scan %s: %w", typ, err)
		}
		if err := fn(d.version(typ, d.Key)); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("mongo: scan %s: %w", typ, err)
	}
	return nil
}

// Reindex replaces the search fields of v's current-version document if v
// is still current. History holds no search fields, so it is unchanged.
func (s *Store) Reindex(ctx context.Context, v *store.Version, ix store.Index) error {
	w := &store.Write{Type: v.Type, ID: v.ID, Expected: v.VersionID - 1, LastUpdated: v.LastUpdated, JSON: v.JSON, Index: ix, Method: v.Method}
	if err := checkWrite(w); err != nil {
		return err
	}
	if s.locking {
		defer s.lock(w.Type, w.ID)()
	}
	filter := bson.D{{Key: "_id", Value: v.ID}, {Key: fieldVersion, Value: v.VersionID}, {Key: fieldDeleted, Value: false}}
	res, err := s.db.Collection(v.Type).ReplaceOne(ctx, filter, currentDoc(w))
	if err == nil && res.MatchedCount == 0 {
		current, err := s.currentVersion(ctx, v.Type, v.ID)
		if err != nil {
			return fmt.Errorf("mongo: reindex %s/%s: %w", v.Type, v.ID, err)
		}
		return &store.ConflictError{Type: v.Type, ID: v.ID, Expected: v.VersionID, Current: current}
	}
	if err != nil {
		return fmt.Errorf("mongo: reindex %s/%s: %w", v.Type, v.ID, err)
	}
	return nil
}
