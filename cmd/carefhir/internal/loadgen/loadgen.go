// Package loadgen loads a running FHIR server over HTTP with concurrent
// clients creating and reading Patients, and measures throughput and latency.
package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Op is the interaction a run measures.
type Op string

// The interactions a run can measure.
const (
	OpCreate Op = "create" // POST [base]/Patient, expecting 201
	OpRead   Op = "read"   // GET [base]/Patient/[id] of a seeded Patient, expecting 200
	OpBoth   Op = "both"   // create or read, chosen at random for each request
)

// Config describes a run.
type Config struct {
	BaseURL string // the server's FHIR base, e.g. http://127.0.0.1:8080/fhir
	Clients int    // concurrent clients, each with one request in flight
	// Requests is the number of measured requests over all clients. When it
	// is 0 the run lasts Duration instead.
	Requests int
	Duration time.Duration
	Op       Op
	// Warmup is how long load runs, unmeasured, before measuring starts, so
	// connections are open and caches warm.
	Warmup time.Duration
	// Seed is the number of Patients created before a run that reads.
	Seed int
	// Client sends the requests; nil means NewClient(Clients).
	Client *http.Client
}

// Result is what a run measured.
type Result struct {
	Op       Op
	Clients  int
	Requests int           // measured requests, failed ones included
	Errors   int           // requests that failed or had an unexpected status
	Err      error         // the first failure, if any
	Elapsed  time.Duration // from the first measured request to the last response
	Latency  Latency       // over all measured requests
}

// Throughput returns the measured requests per second.
func (r *Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// WriteTo writes a report of r for people to read.
func (r *Result) WriteTo(w io.Writer) (int64, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "op:         %s\n", r.Op)
	fmt.Fprintf(&b, "clients:    %d\n", r.Clients)
	fmt.Fprintf(&b, "elapsed:    %s\n", r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(&b, "requests:   %d\n", r.Requests)
	fmt.Fprintf(&b, "errors:     %d\n", r.Errors)
	if r.Err != nil {
		fmt.Fprintf(&b, "first error: %v\n", r.Err)
	}
	fmt.Fprintf(&b, "throughput: %.1f req/s\n", r.Throughput())
	fmt.Fprintf(&b, "latency:    p50 %s  p90 %s  p99 %s  max %s\n",
		round(r.Latency.P50), round(r.Latency.P90), round(r.Latency.P99), round(r.Latency.Max))
	n, err := w.Write(b.Bytes())
	return int64(n), err
}

// round keeps three significant figures or so of a latency.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// NewClient returns an HTTP client for clients concurrent clients: it keeps
// a connection per client alive between requests, so a run measures the
// server rather than TCP handshakes.
func NewClient(clients int) *http.Client {
	return &http.Client{
		Timeout: time.Minute,
		Transport: &http.Transport{
			Proxy:               nil, // measure the server, never a proxy from the environment
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        clients,
			MaxIdleConnsPerHost: clients,
			IdleConnTimeout:     90 * time.Second,
			// Bodies as the server writes them, without gzip: the figures
			// measure the server's own work, comparable from run to run.
			DisableCompression: true,
		},
	}
}

// Run seeds the server when cfg.Op reads, warms up, then measures. It returns
// an error when the configuration is unusable, seeding fails or ctx ends;
// failed requests while measuring are counted in the Result instead.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	client := cfg.Client
	if client == nil {
		client = NewClient(cfg.Clients)
		defer client.CloseIdleConnections()
	}
	g := &generator{
		client: client,
		base:   strings.TrimSuffix(cfg.BaseURL, "/"),
		op:     cfg.Op,
	}
	if cfg.Op != OpCreate {
		ids, err := g.seed(ctx, cfg.Seed, cfg.Clients)
		if err != nil {
			return nil, err
		}
		g.ids = ids
	}
	if cfg.Warmup > 0 {
		g.load(ctx, cfg.Clients, &budget{deadline: time.Now().Add(cfg.Warmup)}, false)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	b := &budget{requests: int64(cfg.Requests)}
	if cfg.Requests == 0 {
		b.deadline = time.Now().Add(cfg.Duration)
	}
	res := g.load(ctx, cfg.Clients, b, true)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	res.Op, res.Clients = cfg.Op, cfg.Clients
	return res, nil
}

func (cfg *Config) check() error {
	u, err := url.Parse(cfg.BaseURL)
	switch {
	case err != nil:
		return fmt.Errorf("loadgen: base URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("loadgen: base URL %q: want an absolute http or https URL", cfg.BaseURL)
	case cfg.Clients < 1:
		return fmt.Errorf("loadgen: %d clients: want at least 1", cfg.Clients)
	case cfg.Requests < 0:
		return fmt.Errorf("loadgen: %d requests: want 0 (run for a duration) or more", cfg.Requests)
	case cfg.Requests == 0 && cfg.Duration <= 0:
		return errors.New("loadgen: want a number of requests or a positive duration")
	case cfg.Op != OpCreate && cfg.Op != OpRead && cfg.Op != OpBoth:
		return fmt.Errorf("loadgen: op %q: want create, read or both", cfg.Op)
	case cfg.Op != OpCreate && cfg.Seed < 1:
		return fmt.Errorf("loadgen: op %s reads seeded Patients: want a seed of at least 1, not %d", cfg.Op, cfg.Seed)
	}
	return nil
}

// budget says when load stops: after a number of requests over all clients,
// or when the deadline has passed.
type budget struct {
	requests int64 // 0: no limit
	deadline time.Time
	taken    atomic.Int64
}

// take reports whether one more request may start.
func (b *budget) take() bool {
	if b.requests > 0 {
		return b.taken.Add(1) <= b.requests
	}
	return time.Now().Before(b.deadline)
}

// generator sends the requests of a run.
type generator struct {
	client *http.Client
	base   string
	op     Op
	ids    []string      // seeded Patient ids, for reads
	nhs    atomic.Uint64 // candidate number of the next NHS number
}

// seed creates n Patients with the given number of concurrent clients and
// returns their ids.
func (g *generator) seed(ctx context.Context, n, clients int) ([]string, error) {
	ids := make([]string, n)
	var next atomic.Int64
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				id, err := g.create(ctx, r)
				if err != nil {
					errs[w] = fmt.Errorf("loadgen: seed Patient %d of %d: %w", i+1, n, err)
					return
				}
				ids[i] = id
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return ids, nil
}

// load runs clients workers until the budget is spent and, when measure is
// set, returns what they measured.
func (g *generator) load(ctx context.Context, clients int, b *budget, measure bool) *Result {
	type tally struct {
		latencies []time.Duration
		errors    int
		err       error
	}
	tallies := make([]tally, clients)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() {
			t := &tallies[w]
			if measure && b.requests > 0 {
				t.latencies = make([]time.Duration, 0, b.requests/int64(clients)+1)
			}
			r := rand.New(rand.NewPCG(uint64(w), 2))
			for ctx.Err() == nil && b.take() {
				began := time.Now()
				err := g.one(ctx, r)
				if !measure {
					continue
				}
				t.latencies = append(t.latencies, time.Since(began))
				if err != nil {
					t.errors++
					if t.err == nil {
						t.err = err
					}
				}
			}
		})
	}
	wg.Wait()
	res := &Result{Elapsed: time.Since(start)}
	if !measure {
		return res
	}
	var all []time.Duration
	for _, t := range tallies {
		all = append(all, t.latencies...)
		res.Errors += t.errors
		if res.Err == nil {
			res.Err = t.err
		}
	}
	res.Requests = len(all)
	res.Latency = Summarize(all)
	return res
}

// one sends one request of the run's op.
func (g *generator) one(ctx context.Context, r *rand.Rand) error {
	op := g.op
	if op == OpBoth {
		op = OpRead
		if r.IntN(2) == 0 {
			op = OpCreate
		}
	}
	if op == OpCreate {
		_, err := g.create(ctx, r)
		return err
	}
	return g.read(ctx, g.ids[r.IntN(len(g.ids))])
}

// create POSTs a new Patient and returns the id the server gave it.
func (g *generator) create(ctx context.Context, r *rand.Rand) (string, error) {
	body := PatientJSON(NHSNumber(g.nhs.Add(1)-1), r)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.base+"/Patient", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := g.client.Do(req)
	if err != nil {
		return "", err
	}
	defer drain(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return "", statusError(req, resp)
	}
	id, ok := IDFromLocation(resp.Header.Get("Location"), "Patient")
	if !ok {
		return "", fmt.Errorf("POST %s: 201 without a usable Location header (%q)", req.URL, resp.Header.Get("Location"))
	}
	return id, nil
}

// read GETs the Patient with the given id.
func (g *generator) read(ctx context.Context, id string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/Patient/"+id, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := g.client.Do(req)
	if err != nil {
		return err
	}
	defer drain(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return statusError(req, resp)
	}
	return nil
}

// drain reads a response body to its end before closing it, so the
// connection can carry the next request.
func drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<20))
	_ = body.Close()
}

// statusError describes a response with an unexpected status, quoting the
// start of its body (an OperationOutcome, usually).
func statusError(req *http.Request, resp *http.Response) error {
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL, resp.Status, bytes.TrimSpace(head))
}

// IDFromLocation returns the resource id in a Location header of the form
// [base]/[type]/[id] or [base]/[type]/[id]/_history/[vid], absolute or
// relative.
func IDFromLocation(loc, typ string) (string, bool) {
	if u, err := url.Parse(loc); err == nil {
		loc = u.Path
	}
	segs := strings.Split(strings.Trim(loc, "/"), "/")
	for i := len(segs) - 2; i >= 0; i-- {
		if segs[i] == typ && segs[i+1] != "" && segs[i+1] != "_history" {
			return segs[i+1], true
		}
	}
	return "", false
}
