package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"carefhir/care"
	"carefhir/server"
)

// reindexConfig is the configuration of the reindex subcommand.
type reindexConfig struct {
	DataDir  string `flag:"data" validate:"required_without=MongoURI"`
	MongoURI string `flag:"mongo-uri" validate:"omitempty,mongo_uri"`
	BaseURL  string `flag:"base-url" validate:"omitempty,base_url"`
}

func parseReindexConfig(args []string, getenv func(string) string, stderr io.Writer) (*reindexConfig, error) {
	cfg := &reindexConfig{DataDir: "./data"}
	fs := newFlagSet("carefhir reindex",
		"Rebuilds the search index of every stored resource, as after a change of the search definitions.\n"+
			"A SQLite data directory is held by one process: stop the server first. With --mongo-uri it may run\n"+
			"beside the server: resources written meanwhile are indexed by their write.", stderr)
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "`directory` of the embedded SQLite engine")
	fs.StringVar(&cfg.MongoURI, "mongo-uri", cfg.MongoURI, "MongoDB `URI`; when set, MongoDB is used instead of SQLite")
	fs.StringVar(&cfg.BaseURL, "base-url", "", "public FHIR base `URL` the server runs with: absolute references under it index as local ones")
	if err := parseFlags(fs, args, getenv, cfg); err != nil {
		return nil, err
	}
	if err := refuseOverridden(fs, "data", "mongo-uri", twoStores); err != nil {
		return nil, err
	}
	return cfg, nil
}

// reindex opens the configured engine and rebuilds its search index,
// drawing a progress bar per resource type on progress.
func reindex(ctx context.Context, cfg *reindexConfig, factories map[string]engineFactory, stdout, progress io.Writer) (err error) {
	sc := &serveConfig{DataDir: cfg.DataDir, MongoURI: cfg.MongoURI, BaseURL: cfg.BaseURL}
	name := sc.engine()
	open, ok := factories[name]
	if !ok {
		return fmt.Errorf("reindex: no %s engine in this build", name)
	}
	if name == engineSQLite {
		if err := requireDatabase(cfg.DataDir); err != nil {
			return fmt.Errorf("reindex: %w", err)
		}
	}
	openCtx, cancel := context.WithTimeout(ctx, time.Minute)
	st, err := open(openCtx, sc)
	cancel()
	if err != nil {
		return fmt.Errorf("reindex: open %s store: %w", name, err)
	}
	defer func() {
		if cerr := st.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("reindex: close %s store: %w", name, cerr))
		}
	}()
	ix, err := server.NewIndexer(cfg.BaseURL, care.SearchParameters()...)
	if err != nil {
		return fmt.Errorf("reindex: %w", err)
	}
	bar := &progressBar{w: progress}
	start := time.Now()
	n, err := server.Reindex(ctx, st, ix, bar.update)
	bar.finish()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "reindexed %d resources in %s\n", n, time.Since(start).Round(time.Millisecond))
	return err
}

// progressBar draws one line per resource type, redrawn in place.
type progressBar struct {
	w    io.Writer
	typ  string
	open bool // a line is drawn and not yet ended
}

const barWidth = 30

func (b *progressBar) update(typ string, done, total int) {
	if typ != b.typ {
		b.finish()
		b.typ = typ
	}
	if total == 0 {
		return // nothing of this type: no line
	}
	line := fmt.Sprintf("%-22s %d", typ, done)
	if total > 0 {
		filled := barWidth * done / total
		line = fmt.Sprintf("%-22s [%s%s] %d/%d", typ, strings.Repeat("=", filled), strings.Repeat(" ", barWidth-filled), done, total)
	}
	fmt.Fprintf(b.w, "\r%s", line)
	b.open = true
}

func (b *progressBar) finish() {
	if b.open {
		fmt.Fprintln(b.w)
		b.open = false
	}
}
