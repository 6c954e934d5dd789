package mongo

import (
	"context"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"carefhir/store"
)

// journalClaimsCollection holds the claims of the units of work being
// committed through the journal (see claimCriteria): one document per
// claim, _id its key and txn the unit's id, deleted with the unit's
// journaled writes.
const journalClaimsCollection = "journal_claims"

// heldError reports a unit of work whose criteria another process's unit
// holds, or found something by the time it committed: run again, its
// searches see what the other wrote. conflict is what Transact returns
// when it has run the unit as often as it may.
type heldError struct{ conflict *store.ConflictError }

func (e *heldError) Error() string {
	return fmt.Sprintf("mongo: transact: criteria held by another unit of work (%v)", e.conflict)
}

// claimCriteria makes unit id, whose record is in the journal and whose
// decision rests on the searches of empty finding nothing (a conditional
// create), exclusive of every other unit of any process deciding on the
// same criteria or writing one of the identifiers its writes ws carry:
// it inserts one claim per criteria (see criteriaKey) and per identifier
// (see identityKeys), an insert of a taken _id failing on every server,
// and then searches empty again, leaving out the resources ws write. It returns a *heldError when a claim is
// taken or a search finds something now. The claims are deleted with the
// unit's journaled writes (see forget).
//
// Of two processes creating on the same criteria, then, the second either
// finds the first's claim taken, or claims after the first is done and
// finds its resource: never do both create, as they could when each
// searched before the other wrote. A unit that searched nothing claims
// nothing.
func (s *Store) claimCriteria(ctx context.Context, id string, ws []*store.Write, empty []store.Query) error {
	if len(empty) == 0 {
		return nil
	}
	var keys []string
	add := func(key string) {
		if !slices.Contains(keys, key) {
			keys = append(keys, key)
		}
	}
	for _, q := range empty {
		if key, ok := criteriaKey(q); ok {
			add(key)
		}
	}
	for _, w := range ws {
		if !w.Deleted {
			for _, key := range identityKeys(w) {
				add(key)
			}
		}
	}
	held := &heldError{conflict: &store.ConflictError{Type: ws[0].Type, ID: ws[0].ID, Expected: ws[0].Expected}}
	if len(keys) > 0 {
		docs := make([]any, len(keys))
		for i, key := range keys {
			docs[i] = bson.D{{Key: "_id", Value: key}, {Key: "txn", Value: id}}
		}
		_, err := s.journalClaims.InsertMany(ctx, docs)
		if mongo.IsDuplicateKeyError(err) {
			return held
		}
		if err != nil {
			return fmt.Errorf("mongo: transact: claim criteria: %w", err)
		}
	}
	// A resource the unit writes is left out: the unit decides what it
	// becomes (a conditional create after a delete of what it matched),
	// and its version is claimed when written.
	mine := map[resource]bool{}
	for _, w := range ws {
		mine[resource{w.Type, w.ID}] = true
	}
	for _, q := range empty {
		q.Cursor = ""
		found, err := s.search(ctx, q, len(mine)+1)
		if err != nil {
			return fmt.Errorf("mongo: transact: search %s again: %w", q.Type, err)
		}
		if slices.ContainsFunc(found, func(v *store.Version) bool { return !mine[resource{v.Type, v.ID}] }) {
			return held
		}
	}
	return nil
}

// sweepClaims deletes the claims of units no longer in the journal, known
// being the ids of those that are, and claims the ids of the units of
// claims listed before them.
func (s *Store) sweepClaims(ctx context.Context, claims []string, known map[string]bool) error {
	var orphans bson.A
	for _, id := range claims {
		if !known[id] && !slices.Contains(orphans, any(id)) {
			orphans = append(orphans, id)
		}
	}
	if len(orphans) == 0 {
		return nil
	}
	_, err := s.journalClaims.DeleteMany(ctx, bson.D{{Key: "txn", Value: bson.D{{Key: "$in", Value: orphans}}}})
	return err
}

// claimUnits lists the ids of the units holding claims.
func (s *Store) claimUnits(ctx context.Context) ([]string, error) {
	cur, err := s.journalClaims.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "txn", Value: 1}}))
	if err != nil {
		return nil, err
	}
	var docs []struct {
		Txn string `bson:"txn"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.Txn
	}
	return ids, nil
}
