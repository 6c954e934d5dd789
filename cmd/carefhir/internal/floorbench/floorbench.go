// Package floorbench measures a server's answers against the floor of HTTP:
// a bare net/http handler writing the same bytes, driven by the same load
// generator. The two sides are loaded in turns (floor, server, floor,
// server…) so that both see the same machine, and the figure that counts is
// their ratio from one run.
package floorbench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/pprof"
	"strconv"
	"text/tabwriter"
	"time"
)

// Target is one request measured: a GET of Path.
type Target struct {
	Name string // what the report calls it, such as "read"
	Path string // path and query, such as /fhir/Patient/123
}

// Config describes a run.
type Config struct {
	// Server is the host:port of the server measured.
	Server  string
	Targets []Target
	// Connections are kept alive, each with one request in flight.
	Connections int
	// Slice is how long each side is loaded in each round; Rounds is how
	// many rounds each target gets. Warmup loads each side, unmeasured,
	// before the first round of each target.
	Slice  time.Duration
	Rounds int
	Warmup time.Duration
	// Settle, when set, is called after each slice of load on the server
	// and its CPU time counted in the slice's: work the server does for
	// the slice's requests after answering them (writing their audit
	// trail) is charged to them rather than to the floor's next slice.
	Settle func(context.Context) error
}

// Result is what one target measured.
type Result struct {
	Target      Target
	ContentType string
	Bytes       int // of the body, as the server answered it
	Floor       Side
	Server      Side
	// Ratios are the server's share of the floor in each round.
	Ratios []float64
}

// Side is the load one side answered over all rounds.
type Side struct {
	Requests int
	Elapsed  time.Duration
	// CPU is the CPU time the measuring process used meanwhile (0 where
	// it is not measured).
	CPU time.Duration
}

// CPUPerRequest is the process's CPU time per request answered.
func (s Side) CPUPerRequest() time.Duration {
	if s.Requests == 0 {
		return 0
	}
	return s.CPU / time.Duration(s.Requests)
}

// PerSecond is the side's throughput.
func (s Side) PerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Requests) / s.Elapsed.Seconds()
}

// Ratio is the server's throughput as a share of the floor's.
func (r *Result) Ratio() float64 {
	if f := r.Floor.PerSecond(); f > 0 {
		return r.Server.PerSecond() / f
	}
	return 0
}

// CPURatio is the floor's CPU time per request as a share of the
// server's. When the server runs in the measuring process, both include
// the same client, and this is what the throughput ratio would be on a
// machine whose CPUs serve this run alone: it moves much less than the
// throughput ratio when other processes share the machine.
func (r *Result) CPURatio() float64 {
	if s := r.Server.CPUPerRequest(); s > 0 {
		return float64(r.Floor.CPUPerRequest()) / float64(s)
	}
	return 0
}

// Spread is the lowest and highest ratio of a single round: how much the
// machine moved the figure during the run.
func (r *Result) Spread() (lo, hi float64) {
	for i, x := range r.Ratios {
		if i == 0 || x < lo {
			lo = x
		}
		if i == 0 || x > hi {
			hi = x
		}
	}
	return lo, hi
}

// Run fetches each target from the server once, serves the bodies it got
// from a bare handler on a loopback port of its own, and measures both
// sides in turns. Any failed request stops the run with an error: a ratio
// over failures means nothing.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	if cfg.Connections < 1 || cfg.Rounds < 1 || cfg.Slice <= 0 {
		return nil, fmt.Errorf("floorbench: want connections, rounds and a slice, got %d, %d and %s", cfg.Connections, cfg.Rounds, cfg.Slice)
	}
	results := make([]Result, len(cfg.Targets))
	bodies := make(map[string]answer, len(cfg.Targets))
	for i, t := range cfg.Targets {
		a, err := fetch(ctx, cfg.Server, t.Path)
		if err != nil {
			return nil, fmt.Errorf("floorbench: %s: %w", t.Name, err)
		}
		bodies[t.Path] = a
		results[i] = Result{Target: t, ContentType: a.contentType, Bytes: len(a.body)}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("floorbench: %w", err)
	}
	floor := &http.Server{Handler: Handler(bodies)}
	// Goroutines inherit profiler labels: every connection of the floor
	// is labelled side=floor in a CPU profile of the run.
	go pprof.Do(ctx, pprof.Labels("side", "floor"), func(context.Context) { floor.Serve(ln) })
	defer floor.Close()
	for i := range results {
		r := &results[i]
		sides := []string{ln.Addr().String(), cfg.Server}
		if cfg.Warmup > 0 {
			for _, addr := range sides {
				if _, err := Load(ctx, addr, r.Target.Path, cfg.Connections, cfg.Warmup); err != nil {
					return nil, fmt.Errorf("floorbench: %s: warm-up of %s: %w", r.Target.Name, addr, err)
				}
			}
			if _, err := settle(ctx, cfg.Settle); err != nil {
				return nil, fmt.Errorf("floorbench: %s: %w", r.Target.Name, err)
			}
		}
		for range cfg.Rounds {
			f, err := Load(ctx, sides[0], r.Target.Path, cfg.Connections, cfg.Slice)
			if err != nil {
				return nil, fmt.Errorf("floorbench: %s: floor: %w", r.Target.Name, err)
			}
			s, err := Load(ctx, sides[1], r.Target.Path, cfg.Connections, cfg.Slice)
			if err != nil {
				return nil, fmt.Errorf("floorbench: %s: server: %w", r.Target.Name, err)
			}
			cpu, err := settle(ctx, cfg.Settle)
			if err != nil {
				return nil, fmt.Errorf("floorbench: %s: %w", r.Target.Name, err)
			}
			s.CPU += cpu
			r.Floor.Requests += f.Requests
			r.Floor.Elapsed += f.Elapsed
			r.Server.Requests += s.Requests
			r.Server.Elapsed += s.Elapsed
			r.Floor.CPU += f.CPU
			r.Server.CPU += s.CPU
			if f.PerSecond() > 0 {
				r.Ratios = append(r.Ratios, s.PerSecond()/f.PerSecond())
			}
		}
	}
	return results, nil
}

// settle calls fn, when set, and returns the CPU time of the process
// meanwhile.
func settle(ctx context.Context, fn func(context.Context) error) (time.Duration, error) {
	if fn == nil {
		return 0, nil
	}
	cpu := processCPU()
	if err := fn(ctx); err != nil {
		return 0, fmt.Errorf("settle: %w", err)
	}
	return processCPU() - cpu, nil
}

// answer is a response body and its media type.
type answer struct {
	contentType string
	body        []byte
}

// Handler is the floor: for a GET of one of the paths (and query) of
// bodies it writes the body with its Content-Type and Content-Length, and
// does nothing else.
func Handler(bodies map[string]answer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := bodies[r.URL.RequestURI()]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h["Content-Type"] = []string{a.contentType}
		h["Content-Length"] = []string{strconv.Itoa(len(a.body))}
		w.Write(a.body)
	})
}

// fetch GETs path from addr once, wanting 200.
func fetch(ctx context.Context, addr, path string) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return answer{}, err
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return answer{}, fmt.Errorf("GET %s: status %d: %.200s", path, resp.StatusCode, body)
	}
	return answer{contentType: resp.Header.Get("Content-Type"), body: body}, nil
}

// WriteTable writes the results for people to read: each target's body
// size, both throughputs, the ratio over all rounds and its spread over
// single rounds; with cpu, also the CPU time per request of each side and
// their ratio (see CPURatio).
func WriteTable(w io.Writer, results []Result, cpu bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "target\tbody\tfloor req/s\tserver req/s\tserver/floor\trounds min–max\t"
	if cpu {
		head += "floor cpu/req\tserver cpu/req\tcpu ratio\t"
	}
	fmt.Fprintln(tw, head)
	for i := range results {
		r := &results[i]
		lo, hi := r.Spread()
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%.1f %%\t%.0f–%.0f %%\t", r.Target.Name, size(r.Bytes),
			r.Floor.PerSecond(), r.Server.PerSecond(), 100*r.Ratio(), 100*lo, 100*hi)
		if cpu {
			fmt.Fprintf(tw, "%.1f µs\t%.1f µs\t%.1f %%\t", micros(r.Floor.CPUPerRequest()), micros(r.Server.CPUPerRequest()), 100*r.CPURatio())
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// size writes a byte count the way people read one.
func size(n int) string {
	if n < 10<<10 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%d KB", n>>10)
}
