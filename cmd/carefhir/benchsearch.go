package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"carefhir/care"
	"carefhir/care/synth"
	"carefhir/cmd/carefhir/internal/searchbench"
	"carefhir/server"
	"carefhir/store/sqlite"
)

// benchSearchConfig is the configuration of the bench search subcommand.
type benchSearchConfig struct {
	Data     string        `flag:"data" validate:"required"`
	Patients int           `flag:"patients" validate:"min=1,max=900000"`
	Seed     uint64        `flag:"seed"`
	Duration time.Duration `flag:"duration" validate:"gt=0"`
	Clients  int           `flag:"clients" validate:"min=1,max=256"`
	Sample   int           `flag:"sample" validate:"min=1,max=100000"`
}

// parseBenchSearchConfig parses and validates the bench search flags in args.
func parseBenchSearchConfig(args []string, getenv func(string) string, stderr io.Writer) (*benchSearchConfig, error) {
	cfg := &benchSearchConfig{Data: "./bench-data", Patients: 100_000, Seed: 1, Duration: 5 * time.Second, Clients: 1, Sample: 1000}
	fs := newFlagSet("carefhir bench search",
		"Measures typical care-coordination searches on the embedded SQLite engine in\n"+
			"--data: through the FHIR API served in process on a loopback port, and as the\n"+
			"same search plans executed directly on the engine (the floor). An empty data\n"+
			"directory is first loaded with --patients generated patient records (about ten\n"+
			"resources each); a loaded one is measured as it is.", stderr)
	fs.StringVar(&cfg.Data, "data", cfg.Data, "`directory` of the SQLite engine to measure (and load when empty)")
	fs.IntVar(&cfg.Patients, "patients", cfg.Patients, "patients to generate when the data directory holds none")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the generated records and of the searches")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long each scenario runs, on each side")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "concurrent searches")
	fs.IntVar(&cfg.Sample, "sample", cfg.Sample, "patients whose values the searches draw from")
	if err := parseFlags(fs, args, getenv, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// benchSearch loads the data directory if it is empty, then measures every
// search scenario and writes the table to stdout.
func benchSearch(ctx context.Context, cfg *benchSearchConfig, stdout, stderr io.Writer) (err error) {
	// The engine's plans are measured: no search is answered from the
	// pages kept for repeated ones (a sample's values repeat).
	st, err := sqlite.OpenWith(cfg.Data, sqlite.Options{SearchPages: -1})
	if err != nil {
		return fmt.Errorf("bench search: %w", err)
	}
	defer func() {
		if cerr := st.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("bench search: close %s: %w", cfg.Data, cerr))
		}
	}()
	patients, err := searchbench.CountPatients(ctx, st, 900_000)
	if err != nil {
		return fmt.Errorf("bench search: %w", err)
	}
	if patients == 0 {
		fmt.Fprintf(stderr, "bench search: loading %d patients' records into %s\n", cfg.Patients, cfg.Data)
		opts := synth.Options{Patients: cfg.Patients, Seed: cfg.Seed, Today: synth.DefaultToday}
		prog := newProgress(stderr)
		stop := prog.report(ctx, 10*time.Second)
		err := loadStore(ctx, st, opts, 2, prog)
		stop()
		if err != nil {
			return fmt.Errorf("bench search: load: %w", err)
		}
		if err := prog.summary(stderr, cfg.Patients, cfg.Data); err != nil {
			return err
		}
		patients = cfg.Patients
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("bench search: %w", err)
	}
	base := "http://" + lis.Addr().String() + "/fhir"
	srv := &http.Server{Handler: server.New(server.Config{Store: st, BaseURL: base, SoftwareVersion: "bench", SearchParameters: care.SearchParameters()})}
	go srv.Serve(lis)
	defer srv.Close()

	sample, err := searchbench.Sample(ctx, st, patients, cfg.Sample, cfg.Seed)
	if err != nil {
		return fmt.Errorf("bench search: %w", err)
	}
	ix, err := server.NewIndexer(base, care.SearchParameters()...)
	if err != nil {
		return fmt.Errorf("bench search: %w", err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = cfg.Clients
	transport.DisableCompression = true // the server's work without gzip, as in earlier runs
	results, err := searchbench.Run(ctx, searchbench.Config{
		Store:    st,
		Registry: ix.Registry(),
		BaseURL:  base,
		Client:   &http.Client{Transport: transport, Timeout: time.Minute},
		Duration: cfg.Duration,
		Clients:  cfg.Clients,
		Seed:     cfg.Seed,
	}, sample)
	if err != nil {
		return fmt.Errorf("bench search: %w", err)
	}
	// The cost of HTTP alone, with bodies the size of a page of one match
	// and of twenty, sets what share of the engine's throughput an API can
	// keep for searches that take the engine less than a millisecond.
	sizes := []int{2 << 10, 40 << 10}
	trips, err := searchbench.RoundTrip(ctx, &http.Client{Transport: transport, Timeout: time.Minute}, sizes, min(cfg.Duration, 2*time.Second))
	if err != nil {
		return fmt.Errorf("bench search: %w", err)
	}
	fmt.Fprintf(stdout, "data:     %s (%d patients)\nclients:  %d, %s per scenario and side\n\n", cfg.Data, patients, cfg.Clients, cfg.Duration)
	if err := searchbench.WriteTable(stdout, results); err != nil {
		return err
	}
	for i, n := range sizes {
		fmt.Fprintf(stdout, "HTTP alone (a handler writing %d KB, same client, loopback): p50 %.2fms, p99 %.2fms\n",
			n>>10, float64(trips[i].P50)/float64(time.Millisecond), float64(trips[i].P99)/float64(time.Millisecond))
	}
	return nil
}
