package main

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"carefhir/bulk"
	"carefhir/care"
	"carefhir/mappers/pds"
	"carefhir/operation"
	"carefhir/server"
)

// startExports returns the bulk exporter of the API at baseURL, writing
// its files under --export-dir (default: exports in the SQLite data
// directory).
func startExports(cfg *serveConfig, baseURL string, logger *slog.Logger) (*bulk.Exporter, error) {
	dir := cfg.ExportDir
	if dir == "" {
		dir = filepath.Join(cfg.DataDir, "exports")
	}
	if baseURL == "" {
		baseURL = "/fhir" // on a wildcard address: links relative to the host asked
	}
	ix, err := server.NewIndexer(baseURL, care.SearchParameters()...)
	if err != nil {
		return nil, fmt.Errorf("serve: exports: %w", err)
	}
	x, err := bulk.New(bulk.Config{Dir: dir, BaseURL: baseURL, Registry: ix.Registry(), Index: ix.IndexJSON, Expire: cfg.ExportExpire, Settle: writeSettle(cfg), SearchLimits: cfg.Limits.server().Search,
		Redact: pds.RedactJSON, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("serve: exports: %w", err)
	}
	return x, nil
}

// writeSettle is the longest a write may take from its lastUpdated to its
// commit: a write commits within its request's deadline (its unit of work
// within the request); the margin covers a commit under way at the
// deadline and the clocks of other processes on a shared MongoDB
// (bulk.Config.Settle, server.Config.HistorySettle).
func writeSettle(cfg *serveConfig) time.Duration {
	return max(cfg.Limits.Deadline, cfg.Limits.UnitOfWork) + 2*time.Second
}

// configureExports adds $export, its status and files to the server's
// configuration.
func configureExports(x *bulk.Exporter, c *server.Config) {
	c.Operations = append(c.Operations, x.Operation())
	for _, r := range x.Routes() {
		c.Routes = append(c.Routes, server.Route{Method: r.Method, Path: r.Path, Handler: r.Handler})
	}
	c.Attach = append(c.Attach, func(st operation.Store) { x.Attach(st) })
}
