package mongo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Migrate prepares the database at uri for serving: it creates the indexes
// of the engine and of the index plan that are missing and drops the search
// indexes the plan no longer holds (see DefaultIndexes), which serving
// processes never do. With shard, the deployment must be a sharded cluster
// reached through a mongos, and Migrate also shards the collections (see
// shardKeys). It returns one line per thing it did; running it again does
// only what is left to do.
func Migrate(ctx context.Context, uri string, shard bool) ([]string, error) {
	s, err := dial(ctx, uri)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if shard && !s.router {
		return nil, fmt.Errorf("mongo: migrate --shard: %s is not a mongos router of a sharded cluster", s.db.Name())
	}
	if err := s.engineIndexes(ctx); err != nil {
		return nil, fmt.Errorf("mongo: migrate: %w", err)
	}
	done, err := s.createIndexes(ctx, true)
	if err != nil {
		return done, fmt.Errorf("mongo: migrate: %w", err)
	}
	if s.native {
		if err := s.createKeys(ctx); err != nil {
			return done, fmt.Errorf("mongo: migrate: keys: %w", err)
		}
	}
	if !shard {
		return done, nil
	}
	sharded, err := s.shard(ctx)
	done = append(done, sharded...)
	if err != nil {
		return done, fmt.Errorf("mongo: migrate --shard: %w", err)
	}
	return done, nil
}

// shardKeys returns the shard key of every collection to shard, by name,
// given the resource collections:
//
//   - a resource type's collection on its hashed _id (the resource id): a
//     read, vread fallback, create or update names the id and goes to one
//     shard; searches go to every shard, and mongos merges their sorted
//     results;
//   - keys on its hashed _id, read and written by _id only;
//   - history on type and hashed id: the versions of one resource live
//     on one shard, so instance history and vread go to one shard; type
//     and system history go to every shard.
//
// The journal and settings stay unsharded, on the database's primary
// shard: the journal serves deployments without transactions only, and a
// sharded cluster has them.
func shardKeys(types []string) map[string]bson.D {
	hashedID := bson.D{{Key: "_id", Value: "hashed"}}
	keys := map[string]bson.D{
		keysCollection:    hashedID,
		historyCollection: {{Key: fieldType, Value: 1}, {Key: fieldID, Value: "hashed"}},
	}
	for _, typ := range types {
		keys[typ] = hashedID
	}
	return keys
}

// codeAlreadyInitialized is the error code of sharding a collection that is
// sharded already, on the servers that report it as an error.
const codeAlreadyInitialized = 23

// shard shards every collection of shardKeys that is not sharded yet,
// creating each shard key's index first (a collection that holds documents
// can only be sharded on an indexed key).
func (s *Store) shard(ctx context.Context) ([]string, error) {
	var done []string
	admin := s.client.Database("admin")
	// Needed before MongoDB 6.0; later servers accept it and do nothing.
	if err := admin.RunCommand(ctx, bson.D{{Key: "enableSharding", Value: s.db.Name()}}).Err(); err != nil {
		return done, fmt.Errorf("enableSharding: %w", err)
	}
	params, err := s.indexedParams(ctx)
	if err != nil {
		return done, err
	}
	plan, err := planIndexes(params)
	if err != nil {
		return done, err
	}
	types := slices.Collect(maps.Keys(plan))
	names, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return done, fmt.Errorf("list collections: %w", err)
	}
	for _, name := range names {
		if validType(name) && !slices.Contains(types, name) {
			types = append(types, name)
		}
	}
	keys := shardKeys(types)
	for _, name := range slices.Sorted(maps.Keys(keys)) {
		key := keys[name]
		var coll struct {
			Dropped bool `bson:"dropped"`
		}
		err := s.client.Database("config").Collection("collections").
			FindOne(ctx, bson.D{{Key: "_id", Value: s.db.Name() + "." + name}}).Decode(&coll)
		if err == nil && !coll.Dropped {
			continue // sharded already
		}
		if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			return done, fmt.Errorf("sharding of %s: %w", name, err)
		}
		if _, err := ensure(ctx, s.db.Collection(name), []bson.D{key}); err != nil {
			return done, fmt.Errorf("index of the shard key of %s: %w", name, err)
		}
		err = admin.RunCommand(ctx, bson.D{
			{Key: "shardCollection", Value: s.db.Name() + "." + name},
			{Key: "key", Value: key},
		}).Err()
		var ce mongo.CommandError
		switch {
		case errors.As(err, &ce) && ce.Code == codeAlreadyInitialized:
			continue
		case err != nil:
			return done, fmt.Errorf("shardCollection %s: %w", name, err)
		}
		done = append(done, fmt.Sprintf("%s: sharded on %s", name, keyString(key)))
	}
	return done, nil
}
