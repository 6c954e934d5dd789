package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"carefhir/care"
	"carefhir/care/synth"
	"carefhir/server"
	"carefhir/store"
	"carefhir/store/sqlite"
)

// synthConfig is the configuration of the synth subcommand. Exactly one of
// Out, URL and Data says where the records go.
type synthConfig struct {
	Patients     int    `flag:"patients" validate:"min=1,max=900000"`
	Seed         uint64 `flag:"seed"`
	PracticeSize int    `flag:"practice-size" validate:"min=0"`
	Today        string `flag:"today"`
	Out          string `flag:"out"`
	URL          string `flag:"url" validate:"omitempty,http_url"`
	Data         string `flag:"data"`
	Clients      int    `flag:"clients" validate:"min=1,max=256"`
	Sync         string `flag:"sync" validate:"oneof=full normal"`

	today time.Time // Today parsed
}

// parseSynthConfig parses and validates the synth flags in args.
func parseSynthConfig(args []string, getenv func(string) string, stderr io.Writer) (*synthConfig, error) {
	cfg := &synthConfig{Patients: 1000, Seed: 1, Clients: 8, Today: synth.DefaultToday.Format(time.DateOnly), Sync: syncNormal}
	fs := newFlagSet("carefhir synth",
		"Generates fictional UK primary-care records, deterministically from a seed: GP\n"+
			"practices and their teams, patients with valid test NHS numbers, conditions,\n"+
			"observations, appointments, care plans, care teams, goals and PAM responses.\n"+
			"They are written as NDJSON files (--out), loaded into a server with PUT\n"+
			"(--url), or written into an embedded SQLite data directory (--data).", stderr)
	fs.IntVar(&cfg.Patients, "patients", cfg.Patients, "number of patients, each with a record (about ten resources)")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed selecting the data set: the same seed gives the same records")
	fs.IntVar(&cfg.PracticeSize, "practice-size", 0, fmt.Sprintf("patients per GP practice (default %d)", synth.DefaultPracticeSize))
	fs.StringVar(&cfg.Today, "today", cfg.Today, "reference `date`: appointments before it are past, after it booked")
	fs.StringVar(&cfg.Out, "out", "", "`directory` to write one NDJSON file per resource type into")
	fs.StringVar(&cfg.URL, "url", "", "FHIR base `URL` of a server to load with PUT, such as http://127.0.0.1:8080/fhir")
	fs.StringVar(&cfg.Data, "data", "", "`directory` of an embedded SQLite engine to write into (the server must not be running on it)")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "concurrent writers for --url and --data")
	addSyncFlag(fs, &cfg.Sync)
	if err := parseFlags(fs, args, getenv, cfg); err != nil {
		return nil, err
	}
	modes := 0
	for _, s := range []string{cfg.Out, cfg.URL, cfg.Data} {
		if s != "" {
			modes++
		}
	}
	if modes != 1 {
		return nil, &usageError{err: errors.New("synth: want exactly one of --out, --url and --data")}
	}
	today, err := time.Parse(time.DateOnly, cfg.Today)
	if err != nil {
		return nil, &usageError{err: fmt.Errorf("synth: --today %q: want a date such as 2026-01-05", cfg.Today)}
	}
	cfg.today = today
	return cfg, nil
}

// runSynth generates the configured records, sends them where cfg says,
// reports progress on stderr and a summary on stdout.
func runSynth(ctx context.Context, cfg *synthConfig, stdout, stderr io.Writer) error {
	opts := synth.Options{Patients: cfg.Patients, Seed: cfg.Seed, PracticeSize: cfg.PracticeSize, Today: cfg.today}
	prog := newProgress(stderr)
	stop := prog.report(ctx, 2*time.Second)
	var err error
	var dest string
	switch {
	case cfg.Out != "":
		dest = cfg.Out
		err = writeNDJSON(ctx, cfg.Out, opts, prog)
	case cfg.URL != "":
		dest = cfg.URL
		l := &loader{client: newLoadClient(http.DefaultTransport, cfg.Clients), base: strings.TrimSuffix(cfg.URL, "/")}
		err = load(ctx, opts, cfg.Clients, 1, l.putAll, prog)
	default:
		dest = cfg.Data
		err = loadData(ctx, cfg.Data, sqlite.Options{SyncFull: cfg.Sync == syncFull}, opts, cfg.Clients, prog)
	}
	stop()
	if err != nil {
		return fmt.Errorf("synth: %w (after %d resources)", err, prog.done.Load())
	}
	return prog.summary(stdout, cfg.Patients, dest)
}

// writeNDJSON writes the records into dir as one NDJSON file per resource
// type (Patient.ndjson, ...), the layout of FHIR bulk data export, replacing
// files of an earlier run.
func writeNDJSON(ctx context.Context, dir string, opts synth.Options, prog *progress) (err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	type file struct {
		f *os.File
		w *bufio.Writer
	}
	files := map[string]*file{}
	defer func() {
		for _, f := range files {
			if ferr := f.w.Flush(); ferr != nil {
				err = errors.Join(err, ferr)
			}
			if ferr := f.f.Close(); ferr != nil {
				err = errors.Join(err, ferr)
			}
		}
	}()
	return synth.Generate(opts, func(typ, _ string, json []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		prog.generated(typ)
		f := files[typ]
		if f == nil {
			fh, err := os.Create(filepath.Join(dir, typ+".ndjson"))
			if err != nil {
				return err
			}
			f = &file{f: fh, w: bufio.NewWriterSize(fh, 256<<10)}
			files[typ] = f
		}
		f.w.Write(json) // an error sticks to the writer and is returned below
		if err := f.w.WriteByte('\n'); err != nil {
			return fmt.Errorf("write %s: %w", f.f.Name(), err)
		}
		prog.done.Add(1)
		return nil
	})
}

// loadData writes the records into the SQLite engine in dir, opened with
// sopts, through the FHIR API, served in process: every resource is stored
// exactly as a PUT to a running server would store it, search index
// included.
func loadData(ctx context.Context, dir string, sopts sqlite.Options, opts synth.Options, clients int, prog *progress) (err error) {
	st, err := sqlite.OpenWith(dir, sopts)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close %s: %w", dir, cerr))
		}
	}()
	return loadStore(ctx, st, opts, clients, prog)
}

// loadStore writes the records into st through the FHIR API, served in
// process, as transaction Bundles of bundleSize PUTs: one SQLite transaction
// each, several times the rate of single PUTs.
func loadStore(ctx context.Context, st store.Store, opts synth.Options, clients int, prog *progress) error {
	co, err := care.New(care.Config{})
	if err != nil {
		return err
	}
	// Care coordination derives the PAM Observations of the responses.
	h := server.New(server.Config{Store: st, SoftwareVersion: "synth", SearchParameters: care.SearchParameters(), Operations: co.Operations(), Hooks: co.Hooks()})
	l := &loader{client: newLoadClient(handlerTransport{h}, clients), base: "http://carefhir.invalid/fhir"}
	return load(ctx, opts, clients, bundleSize, l.transact, prog)
}

// load generates the records and hands them, in batches of up to size, to
// send from clients goroutines, so that generating one batch overlaps
// sending others. The first error stops everything and is returned.
func load(ctx context.Context, opts synth.Options, clients, size int, send func(context.Context, []synth.Entry) error, prog *progress) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan []synth.Entry, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for batch := range work {
				if ctx.Err() != nil {
					continue // drain: Generate stops at its next emit
				}
				if err := send(ctx, batch); err != nil {
					cancel(err)
					continue
				}
				prog.done.Add(int64(len(batch)))
			}
		})
	}
	queue := func(batch []synth.Entry) error {
		select {
		case work <- batch:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	var batch []synth.Entry
	genErr := synth.Generate(opts, func(typ, id string, json []byte) error {
		prog.generated(typ)
		batch = append(batch, synth.Entry{Type: typ, ID: id, JSON: json})
		if len(batch) < size {
			return nil
		}
		full := batch
		batch = nil
		return queue(full)
	})
	if genErr == nil && len(batch) > 0 {
		genErr = queue(batch)
	}
	close(work)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return genErr
}

// bundleSize is the number of resources in each transaction Bundle that
// loadStore posts.
const bundleSize = 1000

// transact posts entries as one transaction Bundle of PUTs.
func (l *loader) transact(ctx context.Context, entries []synth.Entry) error {
	body, err := synth.Transaction(entries)
	if err != nil {
		return err
	}
	if err := l.send(ctx, http.MethodPost, l.base, body); err != nil {
		return fmt.Errorf("transaction of %d: %w", len(entries), err)
	}
	return nil
}

// loader creates or replaces resources on a FHIR server with PUT, so that
// loading the same records again leaves one copy of each.
type loader struct {
	client *http.Client
	base   string // FHIR base URL without a trailing slash
}

// maxAttempts bounds how often a request the server could not take (429,
// 503 or no response) is tried. A transaction is all or nothing and its
// entries are PUTs, so sending it again is safe.
const maxAttempts = 4

// putAll sends each entry with a PUT.
func (l *loader) putAll(ctx context.Context, entries []synth.Entry) error {
	for _, e := range entries {
		if err := l.send(ctx, http.MethodPut, l.base+"/"+e.Type+"/"+e.ID, e.JSON); err != nil {
			return err
		}
	}
	return nil
}

// send sends one request, retrying with a growing pause while the server
// is busy or unreachable.
func (l *loader) send(ctx context.Context, method, url string, body []byte) error {
	for attempt := 1; ; attempt++ {
		retry, err := l.try(ctx, method, url, body)
		if err == nil || !retry || attempt == maxAttempts {
			return err
		}
		select {
		case <-time.After(time.Duration(50<<attempt) * time.Millisecond):
		case <-ctx.Done():
			return err
		}
	}
}

// try sends one request and reports whether a failure is worth retrying.
func (l *loader) try(ctx context.Context, method, url string, body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("Prefer", "return=minimal")
	resp, err := l.client.Do(req)
	if err != nil {
		return ctx.Err() == nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated {
		_, err := io.Copy(io.Discard, resp.Body)
		return false, err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	retry = resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable
	return retry, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(msg))
}

// newLoadClient returns a client that keeps a connection per concurrent
// writer.
func newLoadClient(rt http.RoundTripper, clients int) *http.Client {
	if t, ok := rt.(*http.Transport); ok {
		t = t.Clone()
		t.MaxIdleConnsPerHost = clients
		rt = t
	}
	return &http.Client{Transport: rt, Timeout: time.Minute}
}

// handlerTransport answers requests by calling an http.Handler in process,
// without a network connection.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	w := &responseBuffer{header: http.Header{}, status: http.StatusOK}
	t.h.ServeHTTP(w, req)
	if req.Body != nil {
		req.Body.Close()
	}
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", w.status, http.StatusText(w.status)),
		StatusCode:    w.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.header,
		Body:          io.NopCloser(&w.body),
		ContentLength: int64(w.body.Len()),
		Request:       req,
	}, nil
}

// responseBuffer is an http.ResponseWriter that keeps the response.
type responseBuffer struct {
	header      http.Header
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func (w *responseBuffer) Header() http.Header { return w.header }

func (w *responseBuffer) WriteHeader(status int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = status, true
	}
}

func (w *responseBuffer) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

// progress counts generated and stored resources.
type progress struct {
	w       io.Writer
	start   time.Time
	done    atomic.Int64   // resources written or loaded
	byType  map[string]int // generated, by type: written by Generate's goroutine, read once it returns
	reports sync.WaitGroup
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, start: time.Now(), byType: map[string]int{}}
}

func (p *progress) generated(typ string) { p.byType[typ]++ }

// report prints the count and rate every interval until the returned
// function is called.
func (p *progress) report(ctx context.Context, interval time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	p.reports.Go(func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				n := p.done.Load()
				fmt.Fprintf(p.w, "synth: %d resources, %.0f/s\n", n, float64(n)/time.Since(p.start).Seconds())
			}
		}
	})
	return func() {
		cancel()
		p.reports.Wait()
	}
}

// summary prints what was written where, with the count of each type.
func (p *progress) summary(w io.Writer, patients int, dest string) error {
	elapsed := time.Since(p.start)
	n := p.done.Load()
	var b strings.Builder
	fmt.Fprintf(&b, "synth: %d resources for %d patients to %s in %s (%.0f/s)\n",
		n, patients, dest, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
	for _, t := range slices.Sorted(maps.Keys(p.byType)) {
		fmt.Fprintf(&b, "  %-22s %d\n", t, p.byType[t])
	}
	_, err := io.WriteString(w, b.String())
	return err
}
