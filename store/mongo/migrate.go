package mongo

import (
	"context"
	"errors"
	"fmt"
)

// Migrate brings the MongoDB database at uri to what this program needs and
// returns a line per thing it did. The engine keeps no schema version: it
// creates what it needs as Open does (the history and journal indexes, the
// keys collection on deployments with transactions) and settles units of
// work a crash left in the journal. Search field indexes are created when a
// field is first written. shard asks for the collections to be sharded,
// which is not supported yet.
func Migrate(ctx context.Context, uri string, shard bool) ([]string, error) {
	if shard {
		return nil, errors.New("mongo: migrate: sharding collections is not supported yet")
	}
	s, err := Open(ctx, uri)
	if err != nil {
		return nil, fmt.Errorf("mongo: migrate: %w", err)
	}
	done := []string{
		"history indexes present (system, type and instance history)",
		"journal index present; units of work a crash left in the journal settled",
	}
	if s.native {
		done = append(done, "keys collection present (the deployment has transactions)")
	} else {
		done = append(done, "no keys collection: the deployment has no transactions (a standalone server)")
	}
	done = append(done, "search field indexes are created when a field is first written")
	if err := s.Close(); err != nil {
		return done, fmt.Errorf("mongo: migrate: %w", err)
	}
	return done, nil
}
