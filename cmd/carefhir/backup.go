package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"carefhir/care"
	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/ops/backup"
	"carefhir/server"
	"carefhir/store"
	"carefhir/store/sqlite"
)

// backupConfig is the configuration of the backup subcommand.
type backupConfig struct {
	DataDir string `flag:"data" validate:"required"`
	To      string `flag:"to" validate:"required"`
}

func parseBackupConfig(args []string, getenv func(string) string, stderr io.Writer) (*backupConfig, error) {
	cfg := &backupConfig{DataDir: "./data"}
	fs := newFlagSet("carefhir backup",
		"Writes a consistent copy of the SQLite store in --data to a compressed archive with\n"+
			"a manifest (time, schema version, resource counts, SHA-256 checksum), while the\n"+
			"server keeps serving. For MongoDB, use MongoDB's own tools (docs/operations.md).", stderr)
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "`directory` of the embedded SQLite engine")
	fs.StringVar(&cfg.To, "to", "", "archive `file` to write (it must not exist), or - for standard output")
	if err := parseFlags(fs, args, getenv, cfg); err != nil {
		return nil, err
	}
	if err := refuseMongoDeployment(fs, getenv); err != nil {
		return nil, err
	}
	return cfg, nil
}

// refuseMongoDeployment refuses a command of a SQLite store alone
// (backup, restore, verify) whose --data was not typed while
// CAREFHIR_MONGO_URI names the deployment's store: the data directory of
// such a deployment (the container image's /data) holds the bulk export
// files, and at most a SQLite database from before the move to MongoDB,
// so a backup of it would succeed and hold none of the records served.
func refuseMongoDeployment(fs *flag.FlagSet, getenv func(string) string) error {
	typed := false
	fs.Visit(func(f *flag.Flag) { typed = typed || f.Name == "data" })
	if typed || getenv == nil || getenv(envName("mongo-uri")) == "" {
		return nil
	}
	return &usageError{err: fmt.Errorf("%s: %s names a MongoDB store, which this command does not read: back MongoDB up with its own tools (docs/operations.md), or give --data to name a SQLite store",
		commandName(fs), envName("mongo-uri"))}
}

// runBackup snapshots the store next to the archive (or in the data
// directory when writing to stdout), checks the snapshot, and writes the
// archive under a temporary name that it gives the archive's name once
// complete (publish), so that a file with that name is always a whole
// backup, and one made meanwhile by something else is never replaced.
func runBackup(ctx context.Context, cfg *backupConfig, stdout, stderr io.Writer) (err error) {
	if err := requireDatabase(cfg.DataDir); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if cfg.To != "-" {
		if _, err := os.Stat(cfg.To); err == nil {
			return fmt.Errorf("backup: %s exists: choose a new file", cfg.To)
		}
	}
	// The snapshot is made beside the archive, or, on standard output, in
	// the data directory, whose volume is sized for one (the temporary
	// directory of a container is often on a read-only root file system,
	// or in memory).
	tmpDir := cfg.DataDir
	if cfg.To != "-" {
		tmpDir = filepath.Dir(cfg.To)
	}
	removeStaleWork(tmpDir, time.Now(), func(work string, err error) {
		if err != nil {
			fmt.Fprintf(stderr, "backup: remove %s, left by a backup that was stopped: %v\n", work, err)
			return
		}
		fmt.Fprintf(stderr, "backup: removed %s, left by a backup that was stopped\n", work)
	})
	work, err := os.MkdirTemp(tmpDir, workPrefix)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.RemoveAll(work)
	// Locked for as long as this process lives, so that a later backup
	// removes the directory only once it is left by one that was killed.
	unlock, err := sqlite.LockDir(work)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer unlock()
	snap := filepath.Join(work, sqlite.FileName)
	start := time.Now().UTC()
	if err := sqlite.Snapshot(ctx, cfg.DataDir, snap); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	info, err := sqlite.Inspect(ctx, snap)
	if err != nil {
		return fmt.Errorf("backup: the snapshot: %w", err)
	}
	info2, _ := debug.ReadBuildInfo()
	m := &backup.Manifest{
		Created:       start,
		Software:      moduleVersion(linked(), info2, info2 != nil),
		Engine:        engineSQLite,
		SchemaVersion: info.SchemaVersion,
		Resources:     info.Resources,
		Versions:      info.Versions,
	}
	if cfg.To == "-" {
		if err := backup.Write(stdout, m, snap, sqlite.FileName); err != nil {
			return err
		}
		return report(stderr, "backed up", m, "to standard output")
	}
	partial := filepath.Join(work, "archive")
	f, err := os.OpenFile(partial, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := backup.Write(f, m, snap, sqlite.FileName); err != nil {
		f.Close()
		return err
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := publish(partial, cfg.To); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := syncDir(filepath.Dir(cfg.To)); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return report(stdout, "backed up", m, "to "+cfg.To)
}

// publish gives the finished archive at partial the name to, unless a
// file of that name appeared while the backup ran: a hard link, unlike a
// rename, never replaces one. On a file system without hard links it
// renames, once it has found the name still free.
func publish(partial, to string) error {
	err := os.Link(partial, to)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s was created while the backup ran: choose a new file", to)
	}
	if err == nil {
		return nil
	}
	if _, err := os.Lstat(to); err == nil {
		return fmt.Errorf("%s was created while the backup ran: choose a new file", to)
	}
	return os.Rename(partial, to)
}

// workPrefix begins the name of the directory a backup makes its snapshot
// in.
const workPrefix = ".carefhir-backup-"

// staleAfter is how long a backup's directory that no process locks must
// have gone unchanged before another backup removes it: the lock is taken
// just after the directory is made, and a backup of an earlier carefhir
// takes none.
const staleAfter = 10 * time.Minute

// removeStaleWork removes from dir the directories of backups that were
// killed (SIGKILL, a lost container) before they removed their own: each
// a whole copy of the database. A directory is left while a backup locks
// it, or while it or a file in it changed within staleAfter of now.
// Each directory it removes, or fails to, is passed to removed.
func removeStaleWork(dir string, now time.Time, removed func(work string, err error)) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), workPrefix) {
			continue
		}
		work := filepath.Join(dir, e.Name())
		if changedSince(work, now.Add(-staleAfter)) {
			continue
		}
		unlock, err := sqlite.LockDir(work)
		if err != nil {
			continue // in use, or not ours to judge
		}
		err = os.RemoveAll(work)
		unlock()
		removed(work, err)
	}
}

// changedSince reports whether directory dir, or a file in it, was
// modified after t (or cannot be read).
func changedSince(dir string, t time.Time) bool {
	info, err := os.Stat(dir)
	if err != nil || info.ModTime().After(t) {
		return true
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return true
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || info.ModTime().After(t) {
			return true
		}
	}
	return false
}

// report prints one line describing a backup: what was done with it, and
// where, such as "to backup.tar.gz".
func report(w io.Writer, done string, m *backup.Manifest, where string) error {
	var n int64
	for _, c := range m.Resources {
		n += c
	}
	_, err := fmt.Fprintf(w, "%s %d resources (%d versions, schema version %d, taken %s) %s, sha256 %s\n",
		done, n, m.Versions, m.SchemaVersion, m.Created.Format(time.RFC3339), where, m.SHA256)
	return err
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// restoreConfig is the configuration of the restore subcommand.
type restoreConfig struct {
	From    string `flag:"from" validate:"required"`
	DataDir string `flag:"data" validate:"required"`
	Force   bool   `flag:"force"`
}

func parseRestoreConfig(args []string, getenv func(string) string, stderr io.Writer) (*restoreConfig, error) {
	cfg := &restoreConfig{}
	fs := newFlagSet("carefhir restore",
		"Restores a SQLite store from an archive carefhir backup wrote, after checking its\n"+
			"checksum and the integrity of the database in it. Stop the server first.", stderr)
	fs.StringVar(&cfg.From, "from", "", "archive `file` to restore, or - for standard input")
	fs.StringVar(&cfg.DataDir, "data", "", "`directory` to restore into; it must be empty unless --force")
	fs.BoolVar(&cfg.Force, "force", false, "replace the database in a directory that is not empty")
	if err := parseFlags(fs, args, getenv, cfg); err != nil {
		return nil, err
	}
	if err := refuseMongoDeployment(fs, getenv); err != nil {
		return nil, err
	}
	return cfg, nil
}

// runRestore extracts the archive into the data directory under a
// temporary name, checks it, and only then puts it in place of the
// database, whose write-ahead log it removes first (SQLite would otherwise
// replay the old log into the restored file).
func runRestore(ctx context.Context, cfg *restoreConfig, stdin io.Reader, stdout io.Writer) (err error) {
	entries, err := os.ReadDir(cfg.DataDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("restore: %w", err)
	}
	existed := err == nil
	// The lock file alone (left by a store that was opened and closed)
	// holds nothing to lose.
	entries = slices.DeleteFunc(entries, func(e os.DirEntry) bool { return e.Name() == sqlite.LockFileName })
	if len(entries) > 0 && !cfg.Force {
		return fmt.Errorf("restore: %s is not empty: restore into an empty directory, or stop the server and pass --force to replace its database", cfg.DataDir)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if !existed {
		// A refused restore leaves no directory behind.
		defer func() {
			if err != nil {
				os.Remove(cfg.DataDir)
			}
		}()
	}
	// A server serving the directory would go on writing to the database
	// it has open, and lose all of it: refuse while one holds it. A
	// directory that did not exist is locked only once the archive has
	// passed its checks, so that a refused restore leaves nothing in it.
	unlock := func() error { return nil }
	defer func() { unlock() }()
	lock := func() error {
		release, err := sqlite.LockDir(cfg.DataDir)
		if errors.Is(err, sqlite.ErrInUse) {
			return fmt.Errorf("restore: %s is in use by another carefhir process (a server, or an import, migrate or reindex): stop it first", cfg.DataDir)
		} else if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		unlock = release
		return nil
	}
	if existed {
		if err := lock(); err != nil {
			return err
		}
	}
	in := stdin
	if cfg.From != "-" {
		f, err := os.Open(cfg.From)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		defer f.Close()
		in = f
	}
	db := filepath.Join(cfg.DataDir, sqlite.FileName)
	tmp := db + ".restoring"
	os.Remove(tmp) // left by a restore that was interrupted
	m, err := backup.Extract(in, tmp)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer os.Remove(tmp)
	if m.Engine != engineSQLite {
		return fmt.Errorf("restore: a backup of the %s engine", m.Engine)
	}
	if m.SchemaVersion > sqlite.SchemaVersion() {
		return fmt.Errorf("restore: the backup has schema version %d, newer than this program's %d: restore it with the carefhir that wrote it (%s)",
			m.SchemaVersion, sqlite.SchemaVersion(), m.Software)
	}
	info, err := sqlite.Inspect(ctx, tmp)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if info.SchemaVersion != m.SchemaVersion || info.Versions != m.Versions || !equalCounts(info.Resources, m.Resources) {
		return fmt.Errorf("restore: the database in the archive does not hold what its manifest says")
	}
	if !existed {
		if err := lock(); err != nil {
			return err
		}
	}
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if err := os.Remove(db + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("restore: %w", err)
		}
	}
	if err := os.Rename(tmp, db); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := syncDir(cfg.DataDir); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return report(stdout, "restored", m, "from "+cfg.From)
}

func equalCounts(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// verifyConfig is the configuration of the verify subcommand.
type verifyConfig struct {
	DataDir string `flag:"data" validate:"required"`
	BaseURL string `flag:"base-url" validate:"omitempty,base_url"`
}

func parseVerifyConfig(args []string, getenv func(string) string, stderr io.Writer) (*verifyConfig, error) {
	cfg := &verifyConfig{DataDir: "./data"}
	fs := newFlagSet("carefhir verify",
		"Checks a SQLite store: the database's integrity, that every version, current or\n"+
			"earlier, is readable and parses as FHIR, and that the search rows of each resource\n"+
			"are those its current version gives.\n"+
			"It reads the store as of one commit, so it may run beside the server. Exits with\n"+
			"status 1 when it finds a problem.", stderr)
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "`directory` of the embedded SQLite engine")
	fs.StringVar(&cfg.BaseURL, "base-url", "", "public FHIR base `URL` the server runs with: absolute references under it index as local ones")
	if err := parseFlags(fs, args, getenv, cfg); err != nil {
		return nil, err
	}
	if err := refuseMongoDeployment(fs, getenv); err != nil {
		return nil, err
	}
	return cfg, nil
}

// runVerify checks the store and prints each problem, then a summary.
func runVerify(ctx context.Context, cfg *verifyConfig, stdout io.Writer) error {
	ix, err := server.NewIndexer(cfg.BaseURL, care.SearchParameters()...)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	index := func(v *store.Version) (store.Index, error) {
		if err := readable(v); err != nil {
			return store.Index{}, err
		}
		if !fhir.IsResourceType(v.Type) {
			// A record of the server's own, such as a bulk export job
			// or a subscription notification waiting to be sent.
			return store.Index{}, sqlite.SkipIndex
		}
		return ix.IndexJSON(v.Type, v.JSON)
	}
	problems := 0
	n, earlier, err := sqlite.Verify(ctx, cfg.DataDir, index, readable, func(p string) {
		problems++
		fmt.Fprintln(stdout, p)
	})
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if problems > 0 {
		return fmt.Errorf("verify: %d problems in %s", problems, cfg.DataDir)
	}
	_, err = fmt.Fprintf(stdout, "verified %d resources and %d earlier versions in %s: no problem found\n", n, earlier, cfg.DataDir)
	return err
}

// readable returns an error unless v, a version the store holds, parses
// as FHIR R4 of its type with the id and meta.versionId it is stored
// under; a record of the server's own, such as a bulk export job, need
// only be JSON.
func readable(v *store.Version) error {
	if !fhir.IsResourceType(v.Type) {
		if !json.Valid(v.JSON) {
			return errors.New("is not JSON")
		}
		return nil
	}
	// As the server reads it to serve it: a date on a day its month lacks,
	// which writes now refuse and older releases stored, is served, and
	// is no damage.
	if _, err := fhirjson.UnmarshalStoredAs(v.JSON, v.Type); err != nil {
		return fmt.Errorf("does not parse as %s: %w", v.Type, err)
	}
	var head struct {
		ID   string `json:"id"`
		Meta struct {
			VersionID string `json:"versionId"`
		} `json:"meta"`
	}
	if err := json.Unmarshal(v.JSON, &head); err != nil {
		return err
	}
	if head.ID != v.ID || head.Meta.VersionID != fmt.Sprint(v.VersionID) {
		return fmt.Errorf("holds id %q and meta.versionId %q", head.ID, head.Meta.VersionID)
	}
	return nil
}
