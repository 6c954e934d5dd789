package main

import (
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"carefhir/store/mongo/ferrettest"
	"carefhir/store/sqlite"
)

func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out strings.Builder
	err := run(context.Background(), args, env(nil), &out, io.Discard)
	return out.String(), err
}

func TestMigrateCommandSQLite(t *testing.T) {
	// A zero-length file is a SQLite database of schema version 0.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, sqlite.FileName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(t, "migrate", "--data", dir)
	if err != nil || strings.Count(out, "\n") != sqlite.SchemaVersion() || !strings.Contains(out, "schema version 0 to 1") {
		t.Fatalf("migrate an empty database: %q, %v; want a line per migration", out, err)
	}
	out, err = runCmd(t, "migrate", "--data", dir)
	if err != nil || !strings.Contains(out, "nothing to do") {
		t.Errorf("migrate again: %q, %v; want nothing to do", out, err)
	}

	// A schema newer than the program's: serve and migrate refuse it.
	db, err := sql.Open("sqlite", filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE schema_version SET version = version + 1`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := runCmd(t, "serve", "--addr", "127.0.0.1:0", "--data", dir); err == nil || !strings.Contains(err.Error(), "newer than this program") {
		t.Errorf("serve on a newer schema: %v; want a refusal", err)
	}
	if _, err := runCmd(t, "migrate", "--data", dir); err == nil || !strings.Contains(err.Error(), "newer than this program") {
		t.Errorf("migrate a newer schema: %v; want a refusal", err)
	}
	// verify sends it to the carefhir that wrote it, not to migrate, which
	// refuses it.
	if out, err := runCmd(t, "verify", "--data", dir); err == nil || !strings.Contains(out, "the carefhir that wrote it") || strings.Contains(out, "migrate") {
		t.Errorf("verify a newer schema: %q, %v; want a problem sending to the carefhir that wrote it", out, err)
	}
}

func TestMigrateCommandMongo(t *testing.T) {
	uri := ferrettest.Start(t)
	out, err := runCmd(t, "migrate", "--mongo-uri", uri)
	if err != nil || !strings.Contains(out, "Patient: created") {
		t.Errorf("migrate MongoDB: %q, %v", out, err)
	}
	// The indexes are made once: a second run has nothing to create.
	if again, err := runCmd(t, "migrate", "--mongo-uri", uri); err != nil || strings.Contains(again, "created") {
		t.Errorf("migrate MongoDB again: %q, %v", again, err)
	}
	// FerretDB is no mongos router: sharding is refused, saying why.
	if _, err := runCmd(t, "migrate", "--mongo-uri", uri, "--shard"); err == nil || !strings.Contains(err.Error(), "not a mongos router") {
		t.Errorf("migrate --shard: %v; want a refusal naming the router", err)
	}
	if _, err := runCmd(t, "migrate", "--data", t.TempDir(), "--shard"); exitCode(err, io.Discard) != 2 {
		t.Errorf("migrate --shard without --mongo-uri: %v; want a usage error", err)
	}
}
