package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations bring the schema from version i to version i+1: migrations[0]
// creates it. A new migration is appended, never edited, so that every
// database reaches the same schema whatever version it was created at.
var migrations = []string{
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
	// resources points at the current version of each resource: reads by id
	// are one primary-key lookup and one rowid lookup.
	//
	// tokens holds the token search values of current, non-deleted versions
	// only, so search never looks at old versions. Its primary key makes
	// "param + code (+ system)" a range scan ("system|", rare, scans the
	// parameter's range); tokens_resource finds the rows to replace when a
	// resource changes.
	`
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
	type    TEXT    NOT NULL,
	id      TEXT    NOT NULL,
	version INTEGER NOT NULL,
	deleted INTEGER NOT NULL,
	seq     INTEGER NOT NULL,
	PRIMARY KEY (type, id)
) WITHOUT ROWID;

CREATE TABLE tokens (
	type   TEXT NOT NULL,
	param  TEXT NOT NULL,
	code   TEXT NOT NULL,
	system TEXT NOT NULL,
	id     TEXT NOT NULL,
	PRIMARY KEY (type, param, code, system, id)
) WITHOUT ROWID;
CREATE INDEX tokens_resource ON tokens (type, id);
`,
	// The typed search tables, one per kind of value, each holding the
	// values of current, non-deleted versions only. Each primary key starts
	// with (type, param) and then the value compared, so that a search on
	// a parameter is a range scan of its key; *_resource indexes find the
	// rows to replace when a resource changes.
	//
	// strings: normalised value (default and :contains) and the text as
	// written (:exact, through strings_exact). dates: the [low, high]
	// range in Unix milliseconds, searchable by either end. composites: the
	// key of the token and string parts, and the quantity or date of a last
	// part of those types, in one row so they stay correlated. refs: the keys
	// of store.Reference.Keys. sorts: per parameter the smallest and
	// largest value of a resource (text, number or milliseconds), the keys
	// _sort orders by; NULL when the resource has none, which SQLite sorts
	// first. present: the parameters a resource has values of (:missing).
	`
CREATE TABLE strings (
	type TEXT NOT NULL, param TEXT NOT NULL, value TEXT NOT NULL, exact TEXT NOT NULL, id TEXT NOT NULL,
	PRIMARY KEY (type, param, value, exact, id)
) WITHOUT ROWID;
CREATE INDEX strings_exact ON strings (type, param, exact);
CREATE INDEX strings_resource ON strings (type, id);

CREATE TABLE dates (
	type TEXT NOT NULL, param TEXT NOT NULL, low INTEGER NOT NULL, high INTEGER NOT NULL, id TEXT NOT NULL,
	PRIMARY KEY (type, param, low, high, id)
) WITHOUT ROWID;
CREATE INDEX dates_high ON dates (type, param, high);
CREATE INDEX dates_resource ON dates (type, id);

CREATE TABLE numbers (
	type TEXT NOT NULL, param TEXT NOT NULL, value REAL NOT NULL, id TEXT NOT NULL,
	PRIMARY KEY (type, param, value, id)
) WITHOUT ROWID;
CREATE INDEX numbers_resource ON numbers (type, id);

CREATE TABLE quantities (
	type TEXT NOT NULL, param TEXT NOT NULL, value REAL NOT NULL,
	system TEXT NOT NULL, code TEXT NOT NULL, unit TEXT NOT NULL, id TEXT NOT NULL,
	PRIMARY KEY (type, param, value, system, code, unit, id)
) WITHOUT ROWID;
CREATE INDEX quantities_code ON quantities (type, param, code, value);
CREATE INDEX quantities_resource ON quantities (type, id);

CREATE TABLE refs (
	type TEXT NOT NULL, param TEXT NOT NULL, key TEXT NOT NULL, id TEXT NOT NULL,
	PRIMARY KEY (type, param, key, id)
) WITHOUT ROWID;
CREATE INDEX refs_resource ON refs (type, id);

CREATE TABLE uris (
	type TEXT NOT NULL, param TEXT NOT NULL, value TEXT NOT NULL, id TEXT NOT NULL,
	PRIMARY KEY (type, param, value, id)
) WITHOUT ROWID;
CREATE INDEX uris_resource ON uris (type, id);

CREATE TABLE composites (
	type TEXT NOT NULL, param TEXT NOT NULL, key TEXT NOT NULL,
	value REAL, system TEXT, code TEXT, unit TEXT, low INTEGER, high INTEGER,
	id TEXT NOT NULL
);
CREATE INDEX composites_key ON composites (type, param, key, value);
CREATE INDEX composites_resource ON composites (type, id);

CREATE TABLE sorts (
	type TEXT NOT NULL, param TEXT NOT NULL, lo, hi, id TEXT NOT NULL,
	PRIMARY KEY (type, id, param)
) WITHOUT ROWID;
CREATE INDEX sorts_lo ON sorts (type, param, lo, id);
CREATE INDEX sorts_hi ON sorts (type, param, hi, id);

CREATE TABLE present (
	type TEXT NOT NULL, param TEXT NOT NULL, id TEXT NOT NULL,
	PRIMARY KEY (type, id, param)
) WITHOUT ROWID;
CREATE INDEX present_param ON present (type, param, id);
`,
}

// migrate brings the database's schema up to date in one transaction, so a
// crash part-way leaves the previous schema intact.
func migrate(ctx context.Context, conn *sql.Conn) (err error) {
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	defer func() {
		if err != nil {
			conn.ExecContext(context.Background(), `ROLLBACK`)
		}
	}()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	var have int
	switch err := conn.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&have); err {
	case nil:
	case sql.ErrNoRows:
		if _, err := conn.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return fmt.Errorf("sqlite: migrate: %w", err)
		}
	default:
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("sqlite: schema version %d is newer than this program's %d", have, len(migrations))
	}
	for v := have; v < len(migrations); v++ {
		if _, err := conn.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("sqlite: migrate to schema version %d: %w", v+1, err)
		}
	}
	if _, err := conn.ExecContext(ctx, `UPDATE schema_version SET version = ?`, len(migrations)); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `COMMIT`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	return nil
}
