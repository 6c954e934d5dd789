// Package hostile measures what requests a hostile client can send do to
// everyone else: normal clients read and search while others send, in a
// loop, the requests that once stopped or exhausted the server (patches
// that double a resource, bodies of millions of problems, searches that
// expand without bound). It reports the normal clients' throughput and p99
// latency without and with the hostile load, what every hostile request
// was answered, and the process's peak memory.
package hostile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"carefhir/cmd/carefhir/internal/loadgen"
)

// Config describes a run.
type Config struct {
	BaseURL string // FHIR base of the server, e.g. http://127.0.0.1:8080/fhir
	Client  *http.Client
	// Normal and Hostile are the numbers of clients of each kind, each with
	// one request in flight.
	Normal, Hostile int
	// Duration is how long each phase (normal alone, normal with hostile)
	// is measured.
	Duration time.Duration
	// Patients is how many Patients are created first for normal clients
	// to read and search.
	Patients int
}

// Phase is what the normal clients saw in one phase.
type Phase struct {
	Requests   int
	Failures   int // answers other than 200, and transport errors
	Throughput float64
	Latency    loadgen.Latency
}

// Result is the outcome of a run.
type Result struct {
	Alone, Loaded Phase
	// Hostile counts the hostile requests by name and answer; Unexpected
	// lists the answers that were not the one expected, at most a few.
	Hostile    map[string]map[int]int
	Unexpected []string
	// PeakRSS and PeakHeap are the highest resident set size and Go heap
	// in use sampled during the run (of this process: the server and the
	// clients when the server runs in process). PeakRSS is 0 where the
	// system does not report it.
	PeakRSS, PeakHeap uint64
}

// ThroughputRatio is the normal clients' throughput under hostile load as
// a share of their throughput alone.
func (r *Result) ThroughputRatio() float64 {
	if r.Alone.Throughput == 0 {
		return 0
	}
	return r.Loaded.Throughput / r.Alone.Throughput
}

// P99Ratio is the normal clients' p99 latency under hostile load over
// their p99 alone.
func (r *Result) P99Ratio() float64 {
	if r.Alone.Latency.P99 == 0 {
		return 0
	}
	return float64(r.Loaded.Latency.P99) / float64(r.Alone.Latency.P99)
}

// request is one hostile request and the status it must be answered with.
type request struct {
	name, method, path, contentType string
	body                            []byte
	want                            int
}

// requests are the hostile requests; patches go to one of the Patients.
func requests() []request {
	copies := `[{"op":"add","path":"/x","value":[]}` + strings.Repeat(`,{"op":"copy","from":"","path":"/x/-"}`, 30) + `]`
	doubling := fhirpathDelete("Patient.name.where('x'.repeat($this + $this).count() > 0).family")
	var attrs strings.Builder
	for i := range 200000 {
		fmt.Fprintf(&attrs, "a%d=\"x\" ", i)
	}
	names := make([]string, 20000)
	for i := range names {
		names[i] = "e" + strconv.Itoa(i)
	}
	return []request{
		{"json-patch-copy-doubling", "PATCH", "", "application/json-patch+json", []byte(copies), 422},
		{"fhirpath-string-doubling", "PATCH", "", "application/fhir+json", []byte(doubling), 422},
		{"json-2m-wrong-items", "POST", "/Patient", "application/fhir+json",
			[]byte(`{"resourceType":"Patient","name":[` + strings.TrimSuffix(strings.Repeat("1,", 2_000_000), ",") + `]}`), 400},
		{"xml-200k-attributes", "POST", "/Patient", "application/fhir+xml",
			[]byte(`<Patient xmlns="http://hl7.org/fhir" ` + attrs.String() + `/>`), 400},
		{"xml-lone-surrogate", "POST", "/Patient", "application/fhir+xml",
			[]byte(`<Patient xmlns="http://hl7.org/fhir"><name><family value="&#xD800;"/></name></Patient>`), 400},
		{"elements-20k", "GET", "/Patient?_elements=" + strings.Join(names, ","), "", nil, 400},
		{"revinclude-9990", "GET", "/Patient?_count=5&" + strings.Repeat("_revinclude:iterate=Observation:subject&", 9990), "", nil, 200},
		{"unparseable-query", "GET", "/Patient?family=Smith%zz", "", nil, 400},
		{"or-1001", "GET", "/Patient?family=" + strings.Repeat("a,", 1000) + "a", "", nil, 400},
		{"chain-explosion", "GET", "/Provenance?target._has:Provenance:target:target._has:Provenance:target:target.identifier=" + strings.Repeat("a,", 63) + "a", "", nil, 400},
		{"params-1000", "GET", "/Patient?" + strings.Repeat("family=a&", 1000), "", nil, 400},
	}
}

func fhirpathDelete(path string) string {
	p, _ := json.Marshal(path)
	return `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"delete"},{"name":"path","valueString":` + string(p) + `}]}]}`
}

// Run seeds the server, measures the normal clients alone, then beside the
// hostile ones.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	ids, err := seed(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("hostile: seed: %w", err)
	}
	res := &Result{Hostile: map[string]map[int]int{}}
	reqs := requests()
	mem := sampleMemory(ctx)
	// Every kind once, unmeasured, so that each is answered however few
	// the loaded phase has time for.
	for i, r := range reqs {
		res.answer(r, sendHostile(ctx, cfg, r, ids[i%len(ids)]))
	}
	res.Alone = phase(ctx, cfg, ids, nil, 0, res)
	res.Loaded = phase(ctx, cfg, ids, reqs, cfg.Hostile, res)
	res.PeakRSS, res.PeakHeap = mem()
	return res, ctx.Err()
}

// seed creates the Patients normal clients read and search.
func seed(ctx context.Context, cfg Config) ([]string, error) {
	ids := make([]string, 0, cfg.Patients)
	for i := range max(cfg.Patients, 1) {
		body := fmt.Sprintf(`{"resourceType":"Patient","name":[{"family":"Family%d","given":["Given%d"]}],"gender":"female","birthDate":"1950-01-01"}`, i%50, i)
		status, b, err := send(ctx, cfg, "POST", "/Patient", "application/fhir+json", []byte(body))
		if err != nil {
			return nil, err
		}
		if status != http.StatusCreated {
			return nil, fmt.Errorf("create Patient: status %d: %.200s", status, b)
		}
		var p struct{ ID string }
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, err
		}
		ids = append(ids, p.ID)
	}
	return ids, nil
}

// phase runs the normal clients, and hostile ones beside them, for
// cfg.Duration and returns what the normal clients saw.
func phase(ctx context.Context, cfg Config, ids []string, reqs []request, hostile int, res *Result) Phase {
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		failures  int
		wg        sync.WaitGroup
	)
	start := time.Now()
	for c := range cfg.Normal {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; ctx.Err() == nil; i += cfg.Normal {
				path := "/Patient/" + ids[i%len(ids)]
				if i%2 == 1 {
					path = fmt.Sprintf("/Patient?family=Family%d&_count=10", i%50)
				}
				t0 := time.Now()
				status, _, err := send(ctx, cfg, "GET", path, "", nil)
				d := time.Since(t0)
				if ctx.Err() != nil {
					return // cut off by the end of the phase: not counted
				}
				mu.Lock()
				latencies = append(latencies, d)
				if err != nil || status != http.StatusOK {
					failures++
				}
				mu.Unlock()
			}
		}()
	}
	for c := range hostile {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each client starts at its own place in the list, so that
			// together they send every kind early.
			for i := c * len(reqs) / hostile; ctx.Err() == nil; i++ {
				r := reqs[i%len(reqs)]
				a := sendHostile(ctx, cfg, r, ids[i%len(ids)])
				if ctx.Err() != nil {
					return
				}
				mu.Lock()
				res.answer(r, a)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	return Phase{
		Requests:   len(latencies),
		Failures:   failures,
		Throughput: float64(len(latencies)) / elapsed.Seconds(),
		Latency:    loadgen.Summarize(latencies),
	}
}

// answer is what a hostile request got.
type answer struct {
	status int // -1 for a transport error
	err    error
}

// sendHostile sends r, a patch to the Patient target.
func sendHostile(ctx context.Context, cfg Config, r request, target string) answer {
	path := r.path
	if r.method == "PATCH" {
		path = "/Patient/" + target
	}
	status, _, err := send(ctx, cfg, r.method, path, r.contentType, r.body)
	if err != nil {
		status = -1
	}
	return answer{status, err}
}

// answer records what r got.
func (res *Result) answer(r request, a answer) {
	if res.Hostile[r.name] == nil {
		res.Hostile[r.name] = map[int]int{}
	}
	res.Hostile[r.name][a.status]++
	if a.status != r.want && len(res.Unexpected) < 10 {
		res.Unexpected = append(res.Unexpected, fmt.Sprintf("%s: %d (want %d) %v", r.name, a.status, r.want, a.err))
	}
}

func send(ctx context.Context, cfg Config, method, path, contentType string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, cfg.BaseURL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := cfg.Client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// sampleMemory samples the process's resident set size and Go heap every
// 50 ms until the function it returns is called, which reports the peaks.
func sampleMemory(ctx context.Context) func() (rss, heap uint64) {
	ctx, cancel := context.WithCancel(ctx)
	var peakRSS, peakHeap uint64
	done := make(chan struct{})
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peakHeap = max(peakHeap, ms.HeapInuse)
		if rss, err := residentSet(); err == nil {
			peakRSS = max(peakRSS, rss)
		}
	}
	go func() {
		defer close(done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			sample()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() (uint64, uint64) {
		cancel()
		<-done
		sample()
		return peakRSS, peakHeap
	}
}

// residentSet reads the process's resident set size from /proc (Linux).
func residentSet() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/self/status")
}

// WriteTo writes the result as a report.
func (r *Result) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	row := func(name string, p Phase) {
		fmt.Fprintf(&b, "%-24s %8d req %6d fail %9.1f req/s  p50 %7.2fms  p99 %7.2fms  max %7.2fms\n", name, p.Requests, p.Failures, p.Throughput,
			ms(p.Latency.P50), ms(p.Latency.P99), ms(p.Latency.Max))
	}
	row("normal alone", r.Alone)
	row("normal beside hostile", r.Loaded)
	fmt.Fprintf(&b, "throughput kept: %.0f%%   p99 ratio: %.1f×\n", 100*r.ThroughputRatio(), r.P99Ratio())
	fmt.Fprintf(&b, "peak RSS: %d MiB   peak Go heap: %d MiB\n", r.PeakRSS>>20, r.PeakHeap>>20)
	b.WriteString("hostile requests (answer: count):\n")
	for _, name := range slices.Sorted(maps.Keys(r.Hostile)) {
		fmt.Fprintf(&b, "  %-26s %v\n", name, r.Hostile[name])
	}
	for _, u := range r.Unexpected {
		fmt.Fprintf(&b, "unexpected: %s\n", u)
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
