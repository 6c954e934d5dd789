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
