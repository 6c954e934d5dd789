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

var _ store.Purger = (*Store)(nil)

// Purge removes every version of each resource of typ named in ids: its
// history first, then its current-version document, so that a purge
// interrupted between the two leaves the resources to find again (by their
// current documents) rather than history without them. Deleting what is
// gone already is no error, so processes purging the same resources at
// once do no harm.
func (s *Store) Purge(ctx context.Context, typ string, ids []string) error {
	if len(ids) == 0 || !validType(typ) {
		return nil
	}
	in := bson.D{{Key: "$in", Value: ids}}
	if _, err := s.versions.DeleteMany(ctx, bson.D{{Key: fieldType, Value: typ}, {Key: fieldID, Value: in}}); err != nil {
		return fmt.Errorf("mongo: purge %s: history: %w", typ, err)
	}
	if _, err := s.db.Collection(typ).DeleteMany(ctx, bson.D{{Key: "_id", Value: in}}); err != nil {
		return fmt.Errorf("mongo: purge %s: %w", typ, err)
	}
	return nil
}

// PurgeDeleted removes the resources of typ whose current version is a
// tombstone written before before, at most the given number of them.
//
// A resource found deleted may be created again before it is removed
// (another process writing its id): each is removed only if its current
// version is still the tombstone found, its history up to that version
// first, so that what was written since is kept whole.
func (s *Store) PurgeDeleted(ctx context.Context, typ string, before time.Time, most int) (int, error) {
	if !validType(typ) || most <= 0 {
		return 0, nil
	}
	filter := bson.D{{Key: fieldDeleted, Value: true}, {Key: fieldTime, Value: bson.D{{Key: "$lt", Value: bson.NewDateTimeFromTime(before)}}}}
	cur, err := s.db.Collection(typ).Find(ctx, filter,
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: fieldVersion, Value: 1}}).SetLimit(int64(most)))
	if err != nil {
		return 0, fmt.Errorf("mongo: purge deleted %s: %w", typ, err)
	}
	var found []struct {
		ID      string `bson:"_id"`
		Version int64  `bson:"v"`
	}
	if err := cur.All(ctx, &found); err != nil {
		return 0, fmt.Errorf("mongo: purge deleted %s: %w", typ, err)
	}
	if err := s.at(stagePurgeFound, len(found)); err != nil {
		return 0, err
	}
	if len(found) == 0 {
		return 0, nil
	}
	// Two bulk writes, history first: a crash between them leaves the
	// tombstones, which the next purge finds and removes.
	history := make([]mongo.WriteModel, len(found))
	current := make([]mongo.WriteModel, len(found))
	for i, d := range found {
		history[i] = mongo.NewDeleteManyModel().SetFilter(bson.D{{Key: fieldType, Value: typ}, {Key: fieldID, Value: d.ID},
			{Key: fieldVersion, Value: bson.D{{Key: "$lte", Value: d.Version}}}})
		current[i] = mongo.NewDeleteOneModel().SetFilter(bson.D{{Key: "_id", Value: d.ID},
			{Key: fieldVersion, Value: d.Version}, {Key: fieldDeleted, Value: true}})
	}
	if _, err := s.versions.BulkWrite(ctx, history); err != nil {
		return 0, fmt.Errorf("mongo: purge deleted %s: history: %w", typ, err)
	}
	res, err := s.db.Collection(typ).BulkWrite(ctx, current)
	if err != nil {
		return 0, fmt.Errorf("mongo: purge deleted %s: %w", typ, err)
	}
	return int(res.DeletedCount), nil
}

// PurgeEarlier removes the versions of typ/id before its current one. A
// version pending after it (a write under way) is numbered after it, and
// stays.
func (s *Store) PurgeEarlier(ctx context.Context, typ, id string) error {
	if !validType(typ) {
		return nil
	}
	current, err := s.currentVersion(ctx, typ, id)
	if err != nil || current == 0 {
		return err
	}
	_, err = s.versions.DeleteMany(ctx, bson.D{{Key: fieldType, Value: typ}, {Key: fieldID, Value: id},
		{Key: fieldVersion, Value: bson.D{{Key: "$lt", Value: current}}}})
	if err != nil {
		return fmt.Errorf("mongo: purge earlier versions of %s/%s: %w", typ, id, err)
	}
	return nil
}
