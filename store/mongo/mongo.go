// Package mongo is the MongoDB storage engine: a store.Store kept in a
// MongoDB database through go.mongodb.org/mongo-driver/v2, for deployments
// that outgrow one machine (replica sets and sharded clusters, Atlas
// included; docs/mongodb.md says which services work).
//
// # Layout
//
// Each resource type has a collection of its own, named after the type,
// holding the current version of every resource of that type:
//
//	_id   the resource id
//	v     the version id (int64)
//	ts    lastUpdated (BSON datetime, millisecond precision)
//	del   true for a tombstone left by a delete
//	json  the exact JSON bytes written (BSON binary), absent in tombstones
//	ix…_… search fields: per search parameter and kind of value, an array of
//	      normalised scalars, plus scalar sort keys (see field)
//	ixp   the names of the search parameters the resource has values of
//
// The history collection holds every version, the current one included,
// with _id "Type/id/version", fields type, id, v, ts, del, json, and end: the
// lastUpdated of the version that replaced it, absent while it is current;
// pend while a write of the version is under way (see Store.write); by, in
// both collections, on a version a journaled unit of work wrote.
//
// # Keeping to what MongoDB and FerretDB answer alike
//
// The engine's tests run against FerretDB v1, which answers some queries
// differently from MongoDB. Every query here keeps to the subset both answer
// the same way: equality, $in, ranges and $exists on top-level fields holding
// scalars or arrays of scalars; $and, $or and $nor of those (never $ne, $nin
// or $not); sorts on scalar fields with keyset paging; counts by
// countDocuments. Search values are flattened at write time into strings that
// turn every token match into an equality (see tokenKeys), so no search
// uses $elemMatch or a dotted path; $meta's skip scan puts a range in
// $elemMatch for MongoDB's index bounds alone, and checks every document it
// reads (see nextMeta). Nothing stores Decimal128 and no field name
// contains '.' or starts with '$': search parameter names are escaped into
// field names (see indexField). Ids, codes and systems only ever appear as
// BSON values in filters, never as field names or operators, so no request
// can smuggle an operator into a query.
//
// # Durability and concurrency
//
// Writes use write concern majority with journaling, so an acknowledged write
// survives the loss of the database host. A write claims its new version by
// inserting it into history before it replaces the current document, so of
// concurrent updates of one version exactly one is made, on MongoDB and on
// FerretDB v1 alike (which evaluates a replace's filter and then replaces
// in separate steps); see Store.write. Reads use read concern majority on
// replica sets, and every operation is bounded by the client timeout.
//
// # Units of work
//
// On replica sets and sharded clusters Transact runs a MongoDB transaction.
// Elsewhere (standalone servers, FerretDB) it commits through a journal kept
// in the database: the whole unit is written to the journal and marked
// committed before any resource is touched, then applied, and Open completes
// any unit a crash interrupted (see Store.Transact and journal.go).
//
// The collections journal, journal_writes and journal_claims hold the
// units being committed (see journal.go), keys the criteria and
// identifiers claimed inside transactions (see claim and identify), and
// settings the operator's changes to the index plan (see DefaultIndexes).
//
// # Indexes
//
// Indexes are created by Open and Migrate from an explicit plan, never
// while a request is served (see indexplan.go).
package mongo

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"carefhir/store"
	"carefhir/store/lease"
)

// DefaultDatabase is the database used when the URI names none.
const DefaultDatabase = "carefhir"

// historyCollection holds every version of every resource. Resource types
// start with an upper-case letter, so no type's collection can take its name.
const historyCollection = "history"

// Field names of current-version and history documents.
const (
	fieldVersion = "v"
	fieldTime    = "ts"
	fieldDeleted = "del"
	fieldJSON    = "json"
	fieldType    = "type" // history only
	fieldID      = "id"   // history only
	fieldEnd     = "end"  // history only
	// fieldPending marks a version in history that may not be current
	// yet, holding the search fields of its current-version document
	// (see Store.write).
	fieldPending = "pend" // history only
	// fieldBy names the journaled write that wrote a version (see
	// journalWrite), in its current-version document and in history.
	fieldBy = "by"
	// fieldMethod holds the method of the interaction that wrote a
	// version (store.Write.Method), when recorded, in its current-version
	// document and in history.
	fieldMethod = "m"
)

const (
	lockStripes  = 64 // see Store.locks
	closeTimeout = 10 * time.Second
)

// durable returns the write concern of every write but those applying a
// journaled unit of work (see journal.go): acknowledged by a majority of the
// replica set and written to its journal.
func durable() *writeconcern.WriteConcern {
	journal := true
	return &writeconcern.WriteConcern{W: "majority", Journal: &journal}
}

// Store is a store.Store kept in one MongoDB database. Its methods are safe
// for concurrent use.
type Store struct {
	client   *mongo.Client
	db       *mongo.Database
	versions *mongo.Collection // the history collection
	// native is true when the deployment has multi-document transactions
	// (replica sets and sharded clusters), router when it is a mongos.
	native, router bool
	// sessions starts the sessions of transactions, snapshots those of
	// snapshot reads (see session).
	sessions, snapshots func() (session, error)
	// observer, when set, is told how long every command took.
	observer Observer
	// restamp, when set, stamps a version's bytes anew (see WithStamp).
	restamp func(typ string, json []byte, at time.Time) ([]byte, error)

	// The journal of units of work on deployments without transactions
	// (see journal.go), and the database handle that applies journaled
	// writes, with write concern w:1.
	journal, journalWrites, journalClaims *mongo.Collection
	applyDB                               *mongo.Database
	// owner names this Store as the owner of the journaled units it
	// commits; lease is how long it holds one without renewing it; clock
	// tells the time leases are measured in.
	owner string
	lease time.Duration
	clock func() time.Time
	// seen holds, by unit id, how this Store first saw a unit of another
	// process held (see heldForLease).
	seen lease.Watch[journalRecord]
	// pending holds, by history key, how this Store first saw a version
	// pending in history (see sweepPending).
	pending lease.Watch[bson.DateTime]
	// committing holds the ids of the units this Store is committing.
	committing sync.Map
	// hook, set by tests only, is called at stages of a journaled commit;
	// an error stops the commit there as a crash would.
	hook func(stage string, n int) error

	// locks serialise the writes to one resource made through this Store
	// (a resource uses the stripe its key hashes to) when locking is set:
	// on deployments without transactions, because a journaled unit of
	// work holds the stripes of all its resources while it commits.
	// MongoDB replica sets need none.
	locks   [lockStripes]sync.Mutex
	locking bool
	seed    maphash.Seed

	// unit serialises units of work on deployments without transactions,
	// so that no other unit of this Store writes between a unit's reads and
	// its writes (a conditional create's search and create).
	unit sync.Mutex

	// stopSweep stops the sweeper of the journal, and swept is closed when
	// it has stopped.
	stopSweep context.CancelFunc
	swept     chan struct{}

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Option changes how Open sets a Store up.
type Option func(*Store)

// Observer receives how long each command the engine sends to MongoDB
// took, named by the command (find, insert, update, commitTransaction…):
// the engine's operation latencies, for metrics.
type Observer interface {
	Operation(op string, took time.Duration)
}

// WithStamp gives a Store the function that stamps a version's bytes
// with a new lastUpdated, at: the server's meta.lastUpdated. A unit of
// work that a process takes over from one that stopped is applied with
// the versions its owner did not make stamped anew (see
// journalWrite.restamp); without stamp, only their lastUpdated changes.
// An error from stamp fails the unit's settling, which the next sweep
// tries again.
func WithStamp(stamp func(typ string, json []byte, at time.Time) ([]byte, error)) Option {
	return func(s *Store) { s.restamp = stamp }
}

// WithObserver reports the duration of every command to o.
func WithObserver(o Observer) Option { return func(s *Store) { s.observer = o } }

// commandMonitor reports every command's duration to o, failed or not.
func commandMonitor(o Observer) *event.CommandMonitor {
	return &event.CommandMonitor{
		Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) { o.Operation(e.CommandName, e.Duration) },
		Failed:    func(_ context.Context, e *event.CommandFailedEvent) { o.Operation(e.CommandName, e.Duration) },
	}
}

// Defaults of the options.
const (
	// DefaultTimeout bounds every operation on the database, when the
	// connection string sets no timeoutMS: a server that stops answering
	// fails requests rather than holding them.
	DefaultTimeout = 30 * time.Second
)

// leaseFor returns how long a process holds a journaled unit of work
// without renewing its lease, given the timeout of its operations: long
// enough to outlast two of them (a renewal and the write after it).
func leaseFor(timeout time.Duration) time.Duration {
	return 2*timeout + 10*time.Second
}

// Open connects to the MongoDB deployment at uri (a mongodb:// or
// mongodb+srv:// connection string) and uses the database its path names,
// DefaultDatabase if none. It checks that the deployment answers, creates
// the indexes that are missing (see DefaultIndexes) and, before returning,
// settles the units of work that a crashed process left in the journal
// (see Store.Transact).
//
// Every operation is bounded by the connection string's timeoutMS, or
// DefaultTimeout. Reads outside transactions use read concern majority on
// replica sets, so a write that could still be rolled back by an election
// is never served.
func Open(ctx context.Context, uri string, opts ...Option) (*Store, error) {
	s, err := dial(ctx, uri, opts...)
	if err != nil {
		return nil, err
	}
	if err := s.start(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("mongo: open %s: %w", s.db.Name(), err)
	}
	return s, nil
}

// dial connects to the deployment at uri and sets up a Store on it, with
// no index made and the journal not swept.
func dial(ctx context.Context, uri string, opts ...Option) (*Store, error) {
	cs, err := connstring.ParseAndValidate(uri)
	if err != nil {
		return nil, fmt.Errorf("mongo: open: %w", err)
	}
	name := cs.Database
	if name == "" {
		name = DefaultDatabase
	}
	copts := options.Client().ApplyURI(uri)
	timeout := DefaultTimeout
	if cs.TimeoutSet && cs.Timeout > 0 {
		timeout = cs.Timeout
	} else {
		copts.SetTimeout(timeout)
	}
	s := &Store{
		owner: newOwner(),
		lease: leaseFor(timeout),
		clock: time.Now,
		seed:  maphash.MakeSeed(),
	}
	for _, opt := range opts {
		opt(s)
	}
	if s.observer != nil {
		copts.SetMonitor(commandMonitor(s.observer))
	}
	client, err := mongo.Connect(copts)
	if err != nil {
		return nil, fmt.Errorf("mongo: open: %w", err)
	}
	s.client = client
	s.sessions = func() (session, error) { return startSession(client) }
	s.snapshots = func() (session, error) { return startSession(client, options.Session().SetSnapshot(true)) }
	if err := s.connect(ctx, name); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("mongo: open %s: %w", name, err)
	}
	return s, nil
}

// newOwner returns a name for a Store as the owner of journaled units: the
// host and process, for operators reading the journal, and a random part.
func newOwner() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), bson.NewObjectID().Hex())
}

// connect checks the deployment and sets up the database handles.
func (s *Store) connect(ctx context.Context, name string) error {
	if err := s.client.Ping(ctx, readpref.Primary()); err != nil {
		return err
	}
	var hello struct {
		SetName string `bson:"setName"`
		Msg     string `bson:"msg"`
	}
	if err := s.client.Database(name).RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&hello); err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	s.native = hasTransactions(hello.SetName, hello.Msg)
	s.router = hello.Msg == "isdbgrid"
	s.locking = !s.native
	dbopts := options.Database().SetWriteConcern(durable())
	if s.native {
		dbopts.SetReadConcern(readconcern.Majority())
	}
	s.db = s.client.Database(name, dbopts)
	s.versions = s.db.Collection(historyCollection)
	s.journal = s.db.Collection(journalCollection)
	s.journalWrites = s.db.Collection(journalWritesCollection)
	s.journalClaims = s.db.Collection(journalClaimsCollection)
	s.applyDB = s.client.Database(name, options.Database().SetWriteConcern(&writeconcern.WriteConcern{W: 1}))
	return nil
}

// start creates the missing indexes, settles the journal and starts its
// sweeper.
func (s *Store) start(ctx context.Context) error {
	if err := s.engineIndexes(ctx); err != nil {
		return err
	}
	if _, err := s.createIndexes(ctx, false); err != nil {
		return err
	}
	// The journal is swept on every deployment: one may have been left by
	// a crash before the deployment became a replica set. A unit left by a
	// dead process is taken over once this Store has seen it held for a
	// lease, so the sweeper runs on every deployment too.
	if err := s.sweep(ctx); err != nil {
		return err
	}
	if s.native {
		if err := s.createKeys(ctx); err != nil {
			return err
		}
	}
	sweepCtx, stop := context.WithCancel(context.Background())
	s.stopSweep, s.swept = stop, make(chan struct{})
	go s.sweeper(sweepCtx)
	return nil
}

// sweeper sweeps the journal every half lease until ctx is done, so that
// the units of a process that crashed are settled while the others serve.
func (s *Store) sweeper(ctx context.Context) {
	defer close(s.swept)
	t := time.NewTicker(s.lease / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// A failed sweep is tried again at the next tick.
			_ = s.sweep(ctx)
		}
	}
}

// engineIndexes creates the indexes of the history and the journal.
func (s *Store) engineIndexes(ctx context.Context) error {
	desc := func(fields ...string) bson.D {
		d := make(bson.D, len(fields))
		for i, f := range fields {
			d[i] = bson.E{Key: f, Value: -1}
		}
		return d
	}
	asc := func(d bson.D, fields ...string) bson.D {
		for _, f := range slices.Backward(fields) {
			d = slices.Insert(d, 0, bson.E{Key: f, Value: 1})
		}
		return d
	}
	// One index per history level, each in the order its pages are read:
	// system, type and instance history (see historySort).
	_, err := ensure(ctx, s.versions, []bson.D{
		desc(fieldTime, fieldType, fieldID, fieldVersion),
		asc(desc(fieldTime, fieldID, fieldVersion), fieldType),
		asc(desc(fieldTime, fieldVersion), fieldType, fieldID),
	})
	if err != nil {
		return fmt.Errorf("create history indexes: %w", err)
	}
	if err := s.ensurePendingIndex(ctx); err != nil {
		return fmt.Errorf("create history indexes: %w", err)
	}
	if _, err := ensure(ctx, s.journalWrites, []bson.D{{{Key: "txn", Value: 1}, {Key: "seq", Value: 1}}}); err != nil {
		return fmt.Errorf("create journal indexes: %w", err)
	}
	return nil
}

// hasTransactions reports whether a deployment has multi-document
// transactions, from its hello answer: replica set members name their set,
// and mongos routers of sharded clusters say "isdbgrid".
func hasTransactions(setName, msg string) bool {
	return setName != "" || msg == "isdbgrid"
}

// Close disconnects from the deployment. Calling it again does nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.stopSweep != nil {
			s.stopSweep()
			<-s.swept
		}
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		if err := s.client.Disconnect(ctx); err != nil {
			s.closeErr = fmt.Errorf("mongo: close: %w", err)
		}
	})
	return s.closeErr
}

// validType reports whether typ can name a resource type's collection: FHIR
// resource types are letters, starting with an upper-case one.
func validType(typ string) bool {
	if typ == "" || len(typ) > 64 || typ[0] < 'A' || typ[0] > 'Z' {
		return false
	}
	for i := 0; i < len(typ); i++ {
		c := typ[i]
		if (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

// maxDocument is the most bytes a current-version document may hold:
// MongoDB's 16 MiB document limit, less room for the fields the history
// document adds to the same JSON and search fields (its key, type, id and
// journal name). FerretDB may store more, but a replica set of MongoDB
// would refuse the write, and a copy of the data moved there would not
// load.
const maxDocument = 16<<20 - 16<<10

// checkWrite reports why w cannot be stored, if it cannot.
func checkWrite(w *store.Write) error {
	if err := checkShape(w); err != nil {
		return err
	}
	return checkSize(w)
}

// checkSize returns a *store.TooLargeError when the current-version
// document of w is larger than MongoDB holds, before anything is written:
// the server would otherwise refuse it only once the write was under way.
func checkSize(w *store.Write) error {
	if w.Deleted {
		return nil
	}
	doc, err := bson.Marshal(currentDoc(w))
	if err != nil {
		return fmt.Errorf("mongo: put %s/%s: %w", w.Type, w.ID, err)
	}
	if len(doc) > maxDocument {
		return &store.TooLargeError{Type: w.Type, ID: w.ID, Size: int64(len(doc)),
			Limit: "the 16 MiB MongoDB holds in one document (the resource's JSON and its search values)"}
	}
	return nil
}

// checkShape reports why w names no resource that can be stored, if it
// does not.
func checkShape(w *store.Write) error {
	switch {
	case w == nil:
		return errors.New("mongo: put: nil write")
	case !validType(w.Type):
		return fmt.Errorf("mongo: put %q: invalid resource type", w.Type)
	case w.ID == "":
		return fmt.Errorf("mongo: put %s: empty id", w.Type)
	case w.Expected < 0:
		return fmt.Errorf("mongo: put %s/%s: negative expected version %d", w.Type, w.ID, w.Expected)
	}
	return nil
}

// lock locks the stripe of resource typ/id and returns its unlock function.
func (s *Store) lock(typ, id string) func() {
	m := &s.locks[s.stripe(typ, id)]
	m.Lock()
	return m.Unlock
}

func (s *Store) stripe(typ, id string) int {
	return int(maphash.String(s.seed, typ+"/"+id) % lockStripes)
}

// lockAll locks the stripes of every resource written by ws, in stripe order
// so that two callers cannot deadlock, and returns the unlock function.
func (s *Store) lockAll(ws []*store.Write) func() {
	var stripes []int
	for _, w := range ws {
		stripes = append(stripes, s.stripe(w.Type, w.ID))
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	for _, i := range stripes {
		s.locks[i].Lock()
	}
	return func() {
		for _, i := range stripes {
			s.locks[i].Unlock()
		}
	}
}

// historyKey is the _id of a version in the history collection. Types
// contain no '/' and versions are digits, so the key is unambiguous whatever
// the id holds.
func historyKey(typ, id string, version int64) string {
	return fmt.Sprintf("%s/%s/%d", typ, id, version)
}
