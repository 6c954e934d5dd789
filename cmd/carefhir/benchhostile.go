package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"carefhir/care"
	"carefhir/cmd/carefhir/internal/hostile"
	"carefhir/server"
	"carefhir/store"
	"carefhir/store/sqlite"
)

// benchHostileConfig is the configuration of the bench hostile subcommand.
type benchHostileConfig struct {
	Duration time.Duration `flag:"duration" validate:"gt=0"`
	Normal   int           `flag:"normal" validate:"min=1,max=256"`
	Hostile  int           `flag:"hostile" validate:"min=1,max=64"`
	Patients int           `flag:"patients" validate:"min=1,max=100000"`
}

// parseBenchHostileConfig parses and validates the bench hostile flags.
func parseBenchHostileConfig(args []string, stderr io.Writer) (*benchHostileConfig, error) {
	cfg := &benchHostileConfig{Duration: 10 * time.Second, Normal: 4, Hostile: 2, Patients: 200}
	fs := newFlagSet("carefhir bench hostile",
		"Serves the FHIR API in process on a loopback port over a fresh SQLite engine,\n"+
			"and measures normal clients (reads and searches of Patients) alone, then beside\n"+
			"clients sending the requests that once exhausted the server. Prints both\n"+
			"throughputs and p99 latencies, their ratios, the answers to the hostile\n"+
			"requests and the process's peak memory.", stderr)
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long each phase is measured")
	fs.IntVar(&cfg.Normal, "normal", cfg.Normal, "normal clients")
	fs.IntVar(&cfg.Hostile, "hostile", cfg.Hostile, "hostile clients")
	fs.IntVar(&cfg.Patients, "patients", cfg.Patients, "Patients created first for the normal clients")
	if err := parseFlags(fs, args, nil, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// benchHostile runs the measurement and writes the report to stdout.
func benchHostile(ctx context.Context, cfg *benchHostileConfig, stdout io.Writer) (err error) {
	dir, err := os.MkdirTemp("", "carefhir-bench-hostile-")
	if err != nil {
		return fmt.Errorf("bench hostile: %w", err)
	}
	defer os.RemoveAll(dir)
	var st store.Store
	if st, err = sqlite.Open(dir); err != nil {
		return fmt.Errorf("bench hostile: %w", err)
	}
	defer func() {
		if cerr := st.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("bench hostile: close: %w", cerr))
		}
	}()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("bench hostile: %w", err)
	}
	base := "http://" + lis.Addr().String() + "/fhir"
	srv := &http.Server{Handler: server.New(server.Config{Store: st, BaseURL: base, SoftwareVersion: "bench", SearchParameters: care.SearchParameters()})}
	go srv.Serve(lis)
	defer srv.Close()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = cfg.Normal + cfg.Hostile
	transport.DisableCompression = true // the server's work without gzip, as in earlier runs
	res, err := hostile.Run(ctx, hostile.Config{
		BaseURL:  base,
		Client:   &http.Client{Transport: transport, Timeout: 2 * time.Minute},
		Normal:   cfg.Normal,
		Hostile:  cfg.Hostile,
		Duration: cfg.Duration,
		Patients: cfg.Patients,
	})
	if err != nil {
		return fmt.Errorf("bench hostile: %w", err)
	}
	fmt.Fprintf(stdout, "clients: %d normal, %d hostile; %s per phase; engine sqlite\n", cfg.Normal, cfg.Hostile, cfg.Duration)
	_, err = res.WriteTo(stdout)
	return err
}
