package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"carefhir/server"
	"carefhir/store"
	"carefhir/store/mongo"
	"carefhir/store/sqlite"
)

// engineFactory opens a storage engine for a serve configuration. The
// context bounds opening only; the store lives until its Close.
type engineFactory func(ctx context.Context, cfg *serveConfig) (store.Store, error)

// Names of the storage engines.
const (
	engineSQLite = "sqlite"
	engineMongo  = "mongo"
)

// engines returns the storage engines this binary can serve from, by name.
// The list is explicit so that what a build contains is read in one place.
func engines() map[string]engineFactory {
	return map[string]engineFactory{
		engineSQLite: openSQLite,
		engineMongo:  openMongo,
	}
}

// Values of --sync: when the SQLite engine acknowledges a write.
const (
	// syncFull: once it is on the disk (synchronous=FULL), so that it
	// survives a power cut.
	syncFull = "full"
	// syncNormal, the default: once it is in the operating system's page
	// cache (synchronous=NORMAL), so that it survives the process being
	// killed but not a power cut. FULL costs more than a fifth of the
	// throughput of single creates from 8 clients (docs/benchmarks.md).
	syncNormal = "normal"
)

// addSyncFlag defines --sync on fs, bound to p.
func addSyncFlag(fs *flag.FlagSet, p *string) {
	fs.StringVar(p, "sync", *p, "when the SQLite engine acknowledges a write: normal, once the operating system has it (survives a crash of the process, not a power cut), or full, once it is on the disk (survives a power cut; slower, see docs/operations.md)")
}

// requireDatabase refuses a SQLite data directory that holds no database,
// for the commands that read a store: opening one would create an empty
// database in a mistyped directory, and the command would report success
// on it.
func requireDatabase(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, sqlite.FileName)); err != nil {
		return fmt.Errorf("no database in %s: %w", dir, err)
	}
	return nil
}

// openSQLite opens the embedded SQLite engine in cfg.DataDir, which it
// creates when missing, reporting its operations to cfg.metrics when set.
func openSQLite(_ context.Context, cfg *serveConfig) (store.Store, error) {
	opts := sqlite.Options{SyncFull: cfg.Sync == syncFull}
	if cfg.metrics != nil {
		opts.Observer = cfg.metrics.StoreObserver(engineSQLite)
	}
	if cfg.logger != nil {
		opts.Migrated = func(line string) { cfg.logger.Info("migrated", "data", cfg.DataDir, "change", line) }
	}
	s, err := sqlite.OpenWith(cfg.DataDir, opts)
	if err != nil {
		// A nil *sqlite.Store in a store.Store would not compare equal to nil.
		return nil, err
	}
	return s, nil
}

// openMongo connects to the MongoDB deployment at cfg.MongoURI, reporting
// the duration of its commands to cfg.metrics when set.
func openMongo(ctx context.Context, cfg *serveConfig) (store.Store, error) {
	// A unit of work another process completes is stamped as it is.
	opts := []mongo.Option{mongo.WithStamp(server.Stamp)}
	if cfg.metrics != nil {
		opts = append(opts, mongo.WithObserver(cfg.metrics.StoreObserver(engineMongo)))
	}
	s, err := mongo.Open(ctx, cfg.MongoURI, opts...)
	if err != nil {
		return nil, err
	}
	return s, nil
}
