package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"carefhir/bulk"
)

// importConfig is the configuration of the import subcommand.
type importConfig struct {
	URL    string `flag:"url" validate:"required,http_url"`
	Format string `flag:"format" validate:"oneof=ndjson"`
	Token  string `flag:"token"`
	Batch  int    `flag:"batch" validate:"gte=0"`
	Files  []string
}

func parseImportConfig(args []string, getenv func(string) string, stderr io.Writer) (*importConfig, error) {
	cfg := &importConfig{URL: "http://127.0.0.1:8080/fhir", Format: "ndjson", Token: getenv("CAREFHIR_TOKEN")}
	fs := newFlagSet("carefhir import [flags] FILE...", "Loads NDJSON files (such as a bulk export of another server) into a running server, keeping each resource's id.", stderr)
	fs.StringVar(&cfg.URL, "url", cfg.URL, "FHIR base `URL` of the server to load into")
	fs.StringVar(&cfg.Format, "format", cfg.Format, "`format` of the files: ndjson (one resource a line)")
	fs.StringVar(&cfg.Token, "token", cfg.Token, "bearer `token` to send (default $CAREFHIR_TOKEN)")
	fs.IntVar(&cfg.Batch, "batch", 500, "resources per batch Bundle")
	if err := fs.Parse(args); err != nil {
		return nil, &usageError{err: err, printed: true}
	}
	cfg.Files = fs.Args()
	if len(cfg.Files) == 0 {
		return nil, &usageError{err: errors.New("import: name at least one NDJSON file")}
	}
	return cfg, validate(cfg)
}

// runImport loads the files and reports what was loaded and refused; any
// refusal fails the command, after the rest has loaded.
func runImport(ctx context.Context, cfg *importConfig, stdout io.Writer) error {
	im := &bulk.Importer{BaseURL: cfg.URL, Token: cfg.Token, Batch: cfg.Batch}
	var res bulk.ImportResult
	for _, name := range cfg.Files {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		err = im.Import(ctx, filepath.Base(name), f, &res)
		f.Close()
		if err != nil {
			return fmt.Errorf("import %s: %w", name, err)
		}
	}
	fmt.Fprintf(stdout, "loaded %d resources\n", res.Loaded)
	for _, f := range res.Failed {
		fmt.Fprintln(stdout, "refused", f)
	}
	if len(res.Failed) > 0 {
		return fmt.Errorf("import: %d resources refused", len(res.Failed))
	}
	return nil
}
