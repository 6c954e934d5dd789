package mongo

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// ErrSettingChanged is returned by ReplaceSetting when the setting no
// longer holds the value to replace: another process replaced it first.
var ErrSettingChanged = errors.New("mongo: the setting was changed by another process")

// storedSetting is a setting the engine keeps for the server in the
// settings collection, such as its token-signing keys, which every
// process serving the database shares.
type storedSetting struct {
	ID    string `bson:"_id"`
	Value []byte `bson:"value"`
}

// Setting returns the value of the setting name, storing initial first
// when the database holds none. Of processes starting together, the first
// insert wins and all return its value: the process whose insert stored
// it returns initial without reading it back, and a process whose insert
// finds one stored reads it instead.
func (s *Store) Setting(ctx context.Context, name string, initial []byte) ([]byte, error) {
	settings := s.db.Collection(settingsCollection)
	_, err := settings.InsertOne(ctx, storedSetting{ID: name, Value: initial})
	if err == nil {
		return initial, nil
	}
	if !mongo.IsDuplicateKeyError(err) {
		return nil, fmt.Errorf("mongo: setting %s: %w", name, err)
	}
	var got storedSetting
	if err := settings.FindOne(ctx, bson.D{{Key: "_id", Value: name}}).Decode(&got); err != nil {
		return nil, fmt.Errorf("mongo: setting %s: %w", name, err)
	}
	return got.Value, nil
}

// ReplaceSetting replaces the value old of the setting name by value, or
// returns ErrSettingChanged when it holds another value by then.
func (s *Store) ReplaceSetting(ctx context.Context, name string, old, value []byte) error {
	res, err := s.db.Collection(settingsCollection).UpdateOne(ctx,
		bson.D{{Key: "_id", Value: name}, {Key: "value", Value: old}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "value", Value: value}}}})
	if err != nil {
		return fmt.Errorf("mongo: setting %s: %w", name, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("%w: %s", ErrSettingChanged, name)
	}
	return nil
}
