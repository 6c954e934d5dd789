package mongo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"carefhir/store"
)

// keysCollection holds one document per search criteria claimed inside a
// transaction, its _id the criteria's key (see criteriaKey).
const keysCollection = "keys"

// codeNamespaceExists is the error code of creating a collection that
// exists.
const codeNamespaceExists = 48

// createKeys creates the keys collection if it is missing: a transaction
// may not create a collection on every server version.
func (s *Store) createKeys(ctx context.Context) error {
	err := s.db.CreateCollection(ctx, keysCollection)
	var ce mongo.CommandError
	if errors.As(err, &ce) && ce.Code == codeNamespaceExists {
		return nil
	}
	return err
}

// claim writes the key document of q's criteria in the transaction of ctx.
//
// A conditional create searches for its criteria and creates only when
// nothing matches. Two such transactions running side by side on a replica
// set each see a snapshot without the other's resource, write different
// documents and would both commit. Making every search also write one
// document named after its criteria turns the race into a write conflict
// on that document: one transaction commits, the other is aborted with a
// transient error, and WithTransaction runs it again, when its search finds
// the resource the first one created. The claim covers identical criteria
// (clauses compared in any order), not criteria that overlap; a plain
// create is not held off by it either.
//
// The collection grows by one small document per distinct criteria ever
// searched in a transaction.
func (s *Store) claim(ctx context.Context, q store.Query) error {
	key, ok := criteriaKey(q)
	if !ok {
		return nil
	}
	_, err := s.db.Collection(keysCollection).UpdateOne(ctx, bson.D{{Key: "_id", Value: key}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}, options.UpdateOne().SetUpsert(true))
	return err
}

// criteriaKey returns the key of q's criteria: its type and a hash of its
// clauses, whatever their order. Paging, sorting and includes do not count.
// ok is false when q cannot be searched or its clauses cannot be encoded
// (a NaN number), when there is nothing to claim.
func criteriaKey(q store.Query) (key string, ok bool) {
	if !validType(q.Type) {
		return "", false
	}
	clauses := make([]string, len(q.Where))
	for i, c := range q.Where {
		b, err := json.Marshal(c)
		if err != nil {
			return "", false
		}
		clauses[i] = string(b)
	}
	slices.Sort(clauses)
	h := sha256.New()
	for _, c := range clauses {
		h.Write([]byte(c))
		h.Write([]byte{0})
	}
	return q.Type + "/" + hex.EncodeToString(h.Sum(nil)), true
}
