package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// A migration brings the schema from one version to the next.
type migration struct {
	// summary says what the migration changes, for carefhir migrate's
	// report.
	summary string
	// explicit marks a change Open does not make by itself on an existing
	// database: one that rewrites or drops what is stored, or that takes
	// long on a large store, so that the operator backs up first and runs
	// carefhir migrate. A change that only adds (a table, an index, a
	// column with a default, values computed from a small table) is made
	// at Open.
	explicit bool
	sql      string
}

// migrations bring the schema from version i to version i+1: migrations[0]
// creates it. A new migration is appended, never edited, so that every
// database reaches the same schema whatever version it was created at.
//
// The schema starts at version 1: the layout below replaced, before any
// database was deployed, an earlier one whose search tables repeated the
// resource type, parameter name and id in every row. A database made with
// that layout reports itself as newer than this program and is refused.
var migrations = []migration{
	// versions holds every version of every resource. seq is the rowid: a
	// monotonic sequence of writes, and the cheapest key to point at a row.
	// last_updated and superseded_at are Unix milliseconds; superseded_at is
	// the last_updated of the next version (NULL while the version is
	// current), so history _at needs no self-join. json is NULL for a
	// tombstone. The indexes serve the three history levels in their order:
	// (last_updated, type, id, version) descending for the system, with type
	// first for a type; versions_instance serves vread and instance history
	// (a resource's versions, sorted by SQLite).
	//
	// resources holds one row per resource, pointing at its current version:
	// a read by id is a lookup in resources_id, one rowid lookup and one in
	// versions. Its rowid, rid, is the resource's key in the search tables:
	// a small integer, and since it grows with every new resource, the rows
	// of a new resource go at the end of the rid indexes.
	//
	// params numbers the search parameters of each type (pid), so that
	// search rows start with a small integer instead of two names. kinds has
	// a bit per search table the parameter has rows in (see kinds in
	// params.go), so that :missing and _sort look in those tables only.
	//
	// The search tables hold the values of current, non-deleted versions
	// only, so search never looks at old versions. Each primary key starts
	// with pid and then the value compared, so that every common search is
	// a range scan of a key; each *_rid index finds a resource's rows, which
	// a write replaces, _include follows (refs) and _sort orders by (the
	// smallest or largest value of a parameter for a resource: the index
	// holds rid, pid and then the value). :missing is a probe of the tables
	// of the parameter's kinds.
	//
	// tokens: "param + code (+ system)" is a range scan ("system|", rare,
	// scans the parameter's range). strings: the normalised value (default
	// and :contains) and the text as written (:exact, through
	// strings_exact). dates: the [low, high] range in Unix milliseconds,
	// searchable by either end. refs: the keys of store.Reference.Keys.
	// composites: the key of the token and string parts, and the quantity
	// or date of a last part of those types, in one row so they stay
	// correlated; a rowid table, as its optional columns can be NULL.
	//
	// The planner's statistics are written, not measured: left to guess,
	// SQLite takes "type = ?" on resources_id for a few rows and walks a
	// whole type in id order rather than look up the few resources a search
	// table found by rid and sort them. The row below tells it that a type
	// holds many resources and an id one (ANALYZE of an empty table creates
	// sqlite_stat1 and adds nothing).
	{summary: "create the tables of versions, resources and search values", sql: `
CREATE TABLE versions (
	seq           INTEGER PRIMARY KEY,
	type          TEXT    NOT NULL,
	id            TEXT    NOT NULL,
	version       INTEGER NOT NULL,
	last_updated  INTEGER NOT NULL,
	superseded_at INTEGER,
	deleted       INTEGER NOT NULL,
	json          BLOB
);
CREATE UNIQUE INDEX versions_instance ON versions (type, id, version);
CREATE INDEX versions_system ON versions (last_updated, type, id, version);
CREATE INDEX versions_type ON versions (type, last_updated, id, version);

CREATE TABLE resources (
	rid     INTEGER PRIMARY KEY,
	type    TEXT    NOT NULL,
	id      TEXT    NOT NULL,
	version INTEGER NOT NULL,
	deleted INTEGER NOT NULL,
	seq     INTEGER NOT NULL
);
CREATE UNIQUE INDEX resources_id ON resources (type, id);

CREATE TABLE params (
	pid   INTEGER PRIMARY KEY,
	type  TEXT    NOT NULL,
	name  TEXT    NOT NULL,
	kinds INTEGER NOT NULL,
	UNIQUE (type, name)
);

CREATE TABLE tokens (
	pid INTEGER NOT NULL, code TEXT NOT NULL, system TEXT NOT NULL, rid INTEGER NOT NULL,
	PRIMARY KEY (pid, code, system, rid)
) WITHOUT ROWID;
CREATE INDEX tokens_rid ON tokens (rid);

CREATE TABLE strings (
	pid INTEGER NOT NULL, value TEXT NOT NULL, exact TEXT NOT NULL, rid INTEGER NOT NULL,
	PRIMARY KEY (pid, value, exact, rid)
) WITHOUT ROWID;
CREATE INDEX strings_exact ON strings (pid, exact);
CREATE INDEX strings_rid ON strings (rid);

CREATE TABLE dates (
	pid INTEGER NOT NULL, low INTEGER NOT NULL, high INTEGER NOT NULL, rid INTEGER NOT NULL,
	PRIMARY KEY (pid, low, high, rid)
) WITHOUT ROWID;
CREATE INDEX dates_high ON dates (pid, high);
CREATE INDEX dates_rid ON dates (rid);

CREATE TABLE numbers (
	pid INTEGER NOT NULL, value REAL NOT NULL, rid INTEGER NOT NULL,
	PRIMARY KEY (pid, value, rid)
) WITHOUT ROWID;
CREATE INDEX numbers_rid ON numbers (rid);

CREATE TABLE quantities (
	pid INTEGER NOT NULL, value REAL NOT NULL,
	system TEXT NOT NULL, code TEXT NOT NULL, unit TEXT NOT NULL, rid INTEGER NOT NULL,
	PRIMARY KEY (pid, value, system, code, unit, rid)
) WITHOUT ROWID;
CREATE INDEX quantities_code ON quantities (pid, code, value);
CREATE INDEX quantities_rid ON quantities (rid);

CREATE TABLE refs (
	pid INTEGER NOT NULL, key TEXT NOT NULL, rid INTEGER NOT NULL,
	PRIMARY KEY (pid, key, rid)
) WITHOUT ROWID;
CREATE INDEX refs_rid ON refs (rid);

CREATE TABLE uris (
	pid INTEGER NOT NULL, value TEXT NOT NULL, rid INTEGER NOT NULL,
	PRIMARY KEY (pid, value, rid)
) WITHOUT ROWID;
CREATE INDEX uris_rid ON uris (rid);

CREATE TABLE composites (
	pid INTEGER NOT NULL, key TEXT NOT NULL,
	value REAL, system TEXT, code TEXT, unit TEXT, low INTEGER, high INTEGER,
	rid INTEGER NOT NULL
);
CREATE INDEX composites_key ON composites (pid, key, value);
CREATE INDEX composites_rid ON composites (rid);

ANALYZE params;
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES ('resources', 'resources_id', '1000000 100000 1');
`},
	// Version 2: what a date search needs to scan one range of the dates
	// key, by low, however it is bounded (see param in params.go), computed
	// for the rows already there (as recomputeDatesSQL does for one type;
	// a migration keeps its own copy, as it is never edited).
	{summary: "record the widest date value and repeated dates of each search parameter", sql: `
ALTER TABLE params ADD COLUMN date_width INTEGER NOT NULL DEFAULT 0;
ALTER TABLE params ADD COLUMN date_multi INTEGER NOT NULL DEFAULT 0;
UPDATE params SET
	date_width = coalesce((SELECT max(high - low) FROM dates WHERE dates.pid = params.pid), 0),
	date_multi = EXISTS (SELECT 1 FROM dates WHERE dates.pid = params.pid GROUP BY rid HAVING count(*) > 1);
`},
	// Version 3: a row the readiness probe rewrites, so that the probe
	// is a real write through the writer connection (see Store.Probe).
	{summary: "add the probe table that readiness checks write to", sql: `
CREATE TABLE probe (id INTEGER PRIMARY KEY, at INTEGER NOT NULL);
`},
	// Version 4: the Ranges of quantity parameters (Condition.onsetRange,
	// useContext.valueRange), as the interval [low, high] in the unit of
	// their ends, searchable by either end as dates are; and the high end
	// of a Range that is the last part of a composite, whose value column
	// holds its low end (NULL for a Quantity, whose value is both ends).
	// Ranges stored before are found once carefhir reindex has run.
	{summary: "add the ranges table and the high end of composite quantities", sql: `
CREATE TABLE ranges (
	pid INTEGER NOT NULL, low REAL NOT NULL, high REAL NOT NULL,
	system TEXT NOT NULL, code TEXT NOT NULL, unit TEXT NOT NULL, rid INTEGER NOT NULL,
	PRIMARY KEY (pid, low, high, system, code, unit, rid)
) WITHOUT ROWID;
CREATE INDEX ranges_high ON ranges (pid, high);
CREATE INDEX ranges_rid ON ranges (rid);
ALTER TABLE composites ADD COLUMN value_high REAL;
`},
	// Version 5: the HTTP method of the interaction that wrote each
	// version (store.Write.Method), which a history shows; NULL for the
	// versions written before, whose method a history infers.
	{summary: "record the method of the interaction that wrote each version", sql: `
ALTER TABLE versions ADD COLUMN method TEXT;
`},
}

// SchemaVersion returns the version of the schema this program reads and
// writes.
func SchemaVersion() int { return len(migrations) }

// ErrSchemaTooNew reports a database whose schema is newer than this
// program's: a newer carefhir made or migrated it.
var ErrSchemaTooNew = errors.New("sqlite: the database's schema is newer than this program's")

// ErrMigrationNeeded reports a database whose schema needs a migration that
// Open does not make by itself: run carefhir migrate, after a backup.
var ErrMigrationNeeded = errors.New("sqlite: the database needs carefhir migrate")

// migrate brings the database's schema up to the version of the last of
// list in one transaction, so a crash part-way leaves the previous schema
// intact, and returns a line per migration made. Unless all is set, it
// refuses (ErrMigrationNeeded, making none) when a migration to make on a
// database that already has a schema is explicit; a new database gets every
// migration.
func migrate(ctx context.Context, conn *sql.Conn, list []migration, all bool) (done []string, err error) {
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return nil, fmt.Errorf("sqlite: migrate: %w", err)
	}
	defer func() {
		if err != nil {
			done = nil
			conn.ExecContext(context.Background(), `ROLLBACK`)
		}
	}()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return nil, fmt.Errorf("sqlite: migrate: %w", err)
	}
	var have int
	switch err := conn.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&have); err {
	case nil:
	case sql.ErrNoRows:
		if _, err := conn.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return nil, fmt.Errorf("sqlite: migrate: %w", err)
		}
	default:
		return nil, fmt.Errorf("sqlite: migrate: %w", err)
	}
	if have > len(list) {
		return nil, fmt.Errorf("%w: schema version %d, this program's is %d", ErrSchemaTooNew, have, len(list))
	}
	if have > 0 && !all {
		for v := have; v < len(list); v++ {
			if list[v].explicit {
				return nil, fmt.Errorf("%w: schema version %d is older than this program's %d, and reaching version %d (%s) rewrites stored data: back up, then run carefhir migrate",
					ErrMigrationNeeded, have, len(list), v+1, list[v].summary)
			}
		}
	}
	for v := have; v < len(list); v++ {
		if _, err := conn.ExecContext(ctx, list[v].sql); err != nil {
			return nil, fmt.Errorf("sqlite: migrate to schema version %d: %w", v+1, err)
		}
		done = append(done, fmt.Sprintf("schema version %d to %d: %s", v, v+1, list[v].summary))
	}
	if _, err := conn.ExecContext(ctx, `UPDATE schema_version SET version = ?`, len(list)); err != nil {
		return nil, fmt.Errorf("sqlite: migrate: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `COMMIT`); err != nil {
		return nil, fmt.Errorf("sqlite: migrate: %w", err)
	}
	// Load the statistics the migrations wrote into this connection's
	// planner; connections opened later read them with the schema.
	if _, err := conn.ExecContext(ctx, `ANALYZE sqlite_schema`); err != nil {
		return nil, fmt.Errorf("sqlite: migrate: %w", err)
	}
	return done, nil
}
