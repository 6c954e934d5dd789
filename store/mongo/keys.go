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
// transaction, its _id the criteria's key (see criteriaKey), and one per
// identifier written in one (see identify).
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
// Searches in transactions claim their criteria when they find nothing.
//
// A conditional create searches for its criteria and creates only when
// nothing matches. Two such transactions running side by side on a replica
// set each see a snapshot without the other's resource, write different
// documents and would both commit. Making the search that found nothing
// also write one document named after its criteria turns the race into a
// write conflict on that document: one transaction commits, the other is
// aborted with a transient error, and WithTransaction runs it again, when
// its search finds the resource the first one created. The claim covers
// identical criteria (clauses compared in any order); criteria that
// overlap, and plain creates, are covered by identify.
//
// The collection grows by one small document per distinct criteria that
// ever found nothing in a transaction.
func (s *Store) claim(ctx context.Context, q store.Query) error {
	key, ok := criteriaKey(q)
	if !ok {
		return nil
	}
	return s.touch(ctx, key)
}

// touch writes the key document key in the transaction of ctx.
func (s *Store) touch(ctx context.Context, key string) error {
	_, err := s.db.Collection(keysCollection).UpdateOne(ctx, bson.D{{Key: "_id", Value: key}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}, options.UpdateOne().SetUpsert(true))
	return err
}

// identityParams are the token parameters whose values identify a resource:
// those conditional creates decide on.
var identityParams = []string{"identifier", "url"}

// identify writes, in the transaction of ctx, one key document per
// identifier the version w writes carries (see identityParams), its _id the
// type and a hash of the identifier's system and value.
//
// Two transactions that create resources with one identifier, whether a
// conditional create (whatever its criteria) or a plain create, then write
// the same document, and one is aborted and run again: a conditional
// create run again finds the other's resource. A resource's id needs no
// such document: two creates of one id insert the same _id, which
// conflicts already.
func (s *Store) identify(ctx context.Context, w *store.Write) error {
	if w.Deleted {
		return nil
	}
	for _, key := range identityKeys(w) {
		if err := s.touch(ctx, key); err != nil {
			return err
		}
	}
	return nil
}

// identityKeys returns the _id of the identity documents of w's version,
// without repeats.
func identityKeys(w *store.Write) []string {
	var keys []string
	add := func(param, value string) {
		if !slices.Contains(identityParams, param) {
			return
		}
		h := sha256.Sum256([]byte(value))
		key := w.Type + "/" + param + "/" + hex.EncodeToString(h[:])
		if !slices.Contains(keys, key) {
			keys = append(keys, key)
		}
	}
	for _, t := range w.Index.Tokens {
		if t.Code != "" {
			add(t.Param, systemEscaper.Replace(t.System)+"|"+t.Code)
		}
	}
	for _, u := range w.Index.URIs {
		add(u.Param, u.Value)
	}
	return keys
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
