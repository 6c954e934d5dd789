package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"carefhir/store/mongo"
	"carefhir/store/sqlite"
)

// migrateConfig is the configuration of the migrate subcommand.
type migrateConfig struct {
	DataDir  string `flag:"data" validate:"required_without=MongoURI"`
	MongoURI string `flag:"mongo-uri" validate:"omitempty,mongo_uri"`
	Shard    bool   `flag:"shard"`
}

func parseMigrateConfig(args []string, getenv func(string) string, stderr io.Writer) (*migrateConfig, error) {
	cfg := &migrateConfig{DataDir: "./data"}
	fs := newFlagSet("carefhir migrate",
		"Brings a store's schema and indexes to this version of carefhir and says what it did.\n"+
			"serve makes the changes that only add by itself; those that rewrite stored data\n"+
			"wait for this command. Run it with the server stopped, after a backup.", stderr)
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "`directory` of the embedded SQLite engine; it must hold its database")
	fs.StringVar(&cfg.MongoURI, "mongo-uri", "", "MongoDB `URI`; when set, the MongoDB database is migrated instead")
	fs.BoolVar(&cfg.Shard, "shard", false, "MongoDB only: shard the collections")
	if err := parseFlags(fs, args, getenv, cfg); err != nil {
		return nil, err
	}
	if err := refuseOverridden(fs, "data", "mongo-uri", twoStores); err != nil {
		return nil, err
	}
	if cfg.Shard && cfg.MongoURI == "" {
		return nil, &usageError{err: fmt.Errorf("migrate: --shard needs --mongo-uri")}
	}
	return cfg, nil
}

// runMigrate migrates the configured store and prints what it did.
func runMigrate(ctx context.Context, cfg *migrateConfig, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()
	var done []string
	var err error
	if cfg.MongoURI != "" {
		done, err = mongo.Migrate(ctx, cfg.MongoURI, cfg.Shard)
	} else if err = requireDatabase(cfg.DataDir); err == nil {
		done, err = sqlite.Migrate(ctx, cfg.DataDir)
	}
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, line := range done {
		if _, err := fmt.Fprintln(stdout, line); err != nil {
			return err
		}
	}
	return nil
}
