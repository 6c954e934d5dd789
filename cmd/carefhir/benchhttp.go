package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"carefhir/cmd/carefhir/internal/floorbench"
	"carefhir/ops/logbuf"
	"carefhir/server/access"
)

// benchHTTPConfig is the configuration of the bench http subcommand.
type benchHTTPConfig struct {
	URL         string        `flag:"url" validate:"omitempty,http_url"`
	Connections int           `flag:"connections" validate:"min=1,max=1024"`
	Slice       time.Duration `flag:"slice" validate:"gt=0"`
	Rounds      int           `flag:"rounds" validate:"min=1,max=1000"`
	Warmup      time.Duration `flag:"warmup" validate:"gte=0"`
	Patients    int           `flag:"patients" validate:"min=20,max=100000"`
	Audit       bool          `flag:"audit"`
	// CPUProfile, when set, is where the CPU profile of the measured
	// rounds (both sides, and the load generator) is written.
	CPUProfile string `flag:"cpuprofile"`
	// Only names the requests measured (read, search, metadata); empty
	// measures all three.
	Only []string `flag:"only" validate:"dive,oneof=read search metadata"`
}

// parseBenchHTTPConfig parses and validates the bench http flags in args.
func parseBenchHTTPConfig(args []string, stderr io.Writer) (*benchHTTPConfig, error) {
	cfg := &benchHTTPConfig{Connections: 8, Slice: 2 * time.Second, Rounds: 5, Warmup: time.Second, Patients: 1000, Audit: true}
	fs := newFlagSet("carefhir bench http",
		"Measures a read by id, a search of 20 Patients by family name and the\n"+
			"CapabilityStatement against the floor of HTTP: a bare net/http handler on a\n"+
			"loopback port writing the same bytes, driven by the same load generator, the\n"+
			"two sides loaded in turns. Without --url it serves the FHIR API in process\n"+
			"as 'carefhir serve' does, over a fresh SQLite directory, and loads\n"+
			"--patients Patients into it; with --url it loads a running server with\n"+
			"the same Patients. Prints each side's requests per second and their ratio.", stderr)
	fs.StringVar(&cfg.URL, "url", "", "FHIR base `URL` of a running server to measure (default: one served in process)")
	fs.IntVar(&cfg.Connections, "connections", cfg.Connections, "keep-alive connections, each with one request in flight")
	fs.DurationVar(&cfg.Slice, "slice", cfg.Slice, "how long each side is loaded in each round")
	fs.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "rounds of floor then server for each request measured")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "unmeasured load on each side before the first round")
	fs.IntVar(&cfg.Patients, "patients", cfg.Patients, "Patients loaded first, 20 of them sharing the family name searched for")
	fs.BoolVar(&cfg.Audit, "audit", cfg.Audit, "keep the audit trail of the server served in process (false measures what it costs; serve has no such switch)")
	fs.Func("only", "measure only these requests, a comma-separated list of read, search and metadata (default: all three), to profile one", func(v string) error {
		cfg.Only = strings.Split(v, ",")
		return nil
	})
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "`file` to write the CPU profile of the measured rounds to (go tool pprof; the floor and the load generator are in it too, each side's goroutines labelled side=server, floor or load)")
	if err := parseFlags(fs, args, nil, cfg); err != nil {
		return nil, err
	}
	if cfg.URL != "" && !cfg.Audit {
		return nil, &usageError{err: errors.New("bench http: --audit=false applies to the server served in process, not to --url")}
	}
	return cfg, nil
}

// benchHTTP starts the server unless given one, loads it, measures it
// against the floor and writes the table to stdout.
func benchHTTP(ctx context.Context, cfg *benchHTTPConfig, stdout, stderr io.Writer) (err error) {
	base := cfg.URL
	served := "the server at " + base
	var settle func(context.Context) error
	if base == "" {
		dir, err := os.MkdirTemp("", "carefhir-bench-http-")
		if err != nil {
			return fmt.Errorf("bench http: %w", err)
		}
		defer os.RemoveAll(dir)
		var stop func() error
		base, settle, stop, err = serveInProcess(ctx, dir, cfg.Audit)
		if err != nil {
			return fmt.Errorf("bench http: %w", err)
		}
		defer func() {
			if err := stop(); err != nil {
				fmt.Fprintf(stderr, "bench http: %v\n", err)
			}
		}()
		served = "carefhir serve in process (SQLite, no auth, request log to a file"
		if cfg.Audit {
			served += ", audit trail on)"
		} else {
			served += ", audit trail off)"
		}
	}
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("bench http: %w", err)
	}
	family := "Floor" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	id, err := loadPatients(ctx, base, family, cfg.Patients)
	if err != nil {
		return fmt.Errorf("bench http: load: %w", err)
	}
	if cfg.CPUProfile != "" {
		stop, err := startCPUProfile(cfg.CPUProfile)
		if err != nil {
			return fmt.Errorf("bench http: %w", err)
		}
		defer func() { err = errors.Join(err, stop()) }()
	}
	var targets []floorbench.Target
	for _, t := range []struct {
		only string
		floorbench.Target
	}{
		{"read", floorbench.Target{Name: "read", Path: u.Path + "/Patient/" + id}},
		{"search", floorbench.Target{Name: "search (20 Patients)", Path: u.Path + "/Patient?family=" + family}},
		{"metadata", floorbench.Target{Name: "metadata", Path: u.Path + "/metadata"}},
	} {
		if len(cfg.Only) == 0 || slices.Contains(cfg.Only, t.only) {
			targets = append(targets, t.Target)
		}
	}
	results, err := floorbench.Run(ctx, floorbench.Config{
		Server:      u.Host,
		Targets:     targets,
		Connections: cfg.Connections,
		Slice:       cfg.Slice,
		Rounds:      cfg.Rounds,
		Warmup:      cfg.Warmup,
		Settle:      settle,
	})
	if err != nil {
		return fmt.Errorf("bench http: %w", err)
	}
	fmt.Fprintf(stdout, "server:      %s\nfloor:       a net/http handler writing the same bodies, on a loopback port of its own\n", served)
	fmt.Fprintf(stdout, "load:        %d keep-alive connections; %d rounds of %s a side (floor, server, floor, server…), after %s of warm-up\n\n",
		cfg.Connections, cfg.Rounds, cfg.Slice, cfg.Warmup)
	// The CPU time of the process says what a request costs only when
	// the server is in it.
	if err := floorbench.WriteTable(stdout, results, cfg.URL == ""); err != nil {
		return err
	}
	if cfg.URL == "" {
		fmt.Fprintf(stdout, "\ncpu/req is the CPU time of this process (client, and server or floor) per request; the cpu ratio,\n"+
			"the floor's over the server's, is the throughput ratio on CPUs that serve this run alone.\n")
	}
	fmt.Fprintf(stdout, "\nThe same with wrk (server side; the floor needs a handler of its own):\n")
	for _, t := range targets {
		fmt.Fprintf(stdout, "  wrk -t2 -c%d -d10s 'http://%s%s'\n", cfg.Connections, u.Host, t.Path)
	}
	return nil
}

// serveInProcess serves the FHIR API as 'carefhir serve' does, on a
// loopback port, over a SQLite engine in dir, logging to a file there. It
// returns the FHIR base URL, a function that waits until the audit trail
// has written the events of every request answered (nothing to wait for
// without it), and a function that stops the server.
func serveInProcess(ctx context.Context, dir string, audit bool) (base string, settle func(context.Context) error, stop func() error, err error) {
	logFile, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return "", nil, nil, err
	}
	scfg, err := parseServeConfig([]string{"--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data")}, func(string) string { return "" }, io.Discard)
	if err != nil {
		logFile.Close()
		return "", nil, nil, err
	}
	scfg.noAudit = !audit
	var auditor *access.Auditor
	scfg.auditing = func(a *access.Auditor) { auditor = a }
	addrc := make(chan net.Addr, 1)
	scfg.listening = func(a net.Addr) { addrc <- a }
	ctx, cancel := context.WithCancel(ctx)
	log := logbuf.New(logFile, logbuf.DefaultInterval) // as run does for serve
	errc := make(chan error, 1)
	// Labelled side=server in a CPU profile, as are the goroutines it
	// starts (connections, the audit trail's writer).
	go pprof.Do(ctx, pprof.Labels("side", "server"), func(ctx context.Context) {
		errc <- serve(ctx, scfg, engines(), newLogger(log, scfg.LogFormat, scfg.LogLevel), "bench")
	})
	stop = func() error {
		cancel()
		return errors.Join(<-errc, log.Close(), logFile.Close())
	}
	select {
	case a := <-addrc:
		// The server hands a request's AuditEvent to the trail just after
		// answering it: a moment's wait lets the last of those in.
		settle = func(ctx context.Context) error {
			if auditor == nil {
				return nil
			}
			select {
			case <-time.After(5 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
			auditor.Flush()
			return nil
		}
		return "http://" + a.String() + "/fhir", settle, stop, nil
	case err := <-errc:
		cancel()
		log.Close()
		logFile.Close()
		return "", nil, nil, err
	}
}

// loadPatients creates n Patients through transactions, 20 of them of the
// given family name, and returns the id of one of those.
func loadPatients(ctx context.Context, base, family string, n int) (string, error) {
	client := &http.Client{Timeout: 5 * time.Minute}
	const perBundle = 500
	var id string
	for done := 0; done < n; {
		var entries []map[string]any
		for i := 0; i < perBundle && done < n; i, done = i+1, done+1 {
			name := family
			if done >= 20 {
				name = "Other" + strconv.Itoa(done%997)
			}
			entries = append(entries, map[string]any{
				"resource": map[string]any{
					"resourceType": "Patient",
					"name":         []any{map[string]any{"family": name, "given": []string{"Pat" + strconv.Itoa(done)}}},
					"gender":       []string{"female", "male"}[done%2],
					"birthDate":    fmt.Sprintf("19%02d-%02d-%02d", 30+done%70, 1+done%12, 1+done%28),
				},
				"request": map[string]any{"method": "POST", "url": "Patient"},
			})
		}
		body, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries})
		if err != nil {
			return "", err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base, bytes.NewReader(body))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/fhir+json")
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		var answer struct {
			Entry []struct {
				Response struct {
					Location string `json:"location"`
				} `json:"response"`
			} `json:"entry"`
		}
		err = json.NewDecoder(resp.Body).Decode(&answer)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			return "", fmt.Errorf("transaction: status %d (%v)", resp.StatusCode, err)
		}
		if id == "" && len(answer.Entry) > 0 {
			id = patientID(answer.Entry[0].Response.Location)
		}
	}
	if id == "" {
		return "", errors.New("no Patient created")
	}
	return id, nil
}

// patientID is the id in a Location such as [base/]Patient/{id}/_history/1.
func patientID(location string) string {
	_, rest, ok := strings.Cut(location, "Patient/")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	return id
}
