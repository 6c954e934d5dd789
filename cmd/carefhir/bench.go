package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"carefhir/cmd/carefhir/internal/loadgen"
)

// benchConfig is the configuration of the bench subcommand.
type benchConfig struct {
	URL      string        `flag:"url" validate:"required,http_url"`
	Clients  int           `flag:"clients" validate:"min=1,max=4096"`
	Duration time.Duration `flag:"duration" validate:"gt=0"`
	Requests int           `flag:"requests" validate:"min=0"`
	Op       string        `flag:"op" validate:"oneof=create read both"`
	Warmup   time.Duration `flag:"warmup" validate:"gte=0"`
	Seed     int           `flag:"seed" validate:"min=1"`
}

// parseBenchConfig parses and validates the bench flags in args.
func parseBenchConfig(args []string, getenv func(string) string, stderr io.Writer) (*benchConfig, error) {
	cfg := &benchConfig{
		URL:      "http://127.0.0.1:8080/fhir",
		Clients:  8,
		Duration: 10 * time.Second,
		Op:       string(loadgen.OpRead),
		Warmup:   time.Second,
		Seed:     1000,
	}
	fs := newFlagSet("carefhir bench",
		"Loads a running carefhir server over HTTP with concurrent clients creating\n"+
			"and reading UK Core Patients, and prints throughput and latency percentiles.", stderr)
	fs.StringVar(&cfg.URL, "url", cfg.URL, "FHIR base `URL` of the server")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "concurrent clients, each with one request in flight")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long to measure, unless --requests is set")
	fs.IntVar(&cfg.Requests, "requests", 0, "measure this many requests in all instead of for --duration")
	fs.StringVar(&cfg.Op, "op", cfg.Op, "interaction to measure: create, read or both (half each)")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "unmeasured load before measuring")
	fs.IntVar(&cfg.Seed, "seed", cfg.Seed, "Patients created first for read and both to read")
	if err := parseFlags(fs, args, getenv, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// bench runs the load the configuration describes and writes the report to
// stdout.
func bench(ctx context.Context, cfg *benchConfig, stdout io.Writer) error {
	res, err := loadgen.Run(ctx, loadgen.Config{
		BaseURL:  cfg.URL,
		Clients:  cfg.Clients,
		Requests: cfg.Requests,
		Duration: cfg.Duration,
		Op:       loadgen.Op(cfg.Op),
		Warmup:   cfg.Warmup,
		Seed:     cfg.Seed,
	})
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	fmt.Fprintf(stdout, "url:        %s\n", cfg.URL)
	_, err = res.WriteTo(stdout)
	return err
}
