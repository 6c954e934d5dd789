// Package health serves the probes an orchestrator polls: GET /livez (the
// process serves HTTP) and GET /readyz (every readiness check passes within
// its deadline). Both answer JSON naming each check and what failed, and are
// cheap enough to be polled every second.
//
// Readiness is a list of checks the host passes in, so that every component
// with a state worth refusing traffic for (the store, a queue filling up)
// adds its own without this package knowing it.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Check is one condition of readiness.
type Check struct {
	// Name identifies the check in the response and the log, such as
	// "store" or "audit-queue".
	Name string
	// Run returns nil when the condition holds. It must return by the
	// context's deadline. Its error is served to anyone who asks, without
	// authentication: it says what failed, never a secret or a URI.
	Run func(ctx context.Context) error
}

// QueueBelow returns a check that fails while a queue holds highWater items
// or more: depth reports how many it holds now. An audit trail's buffer or
// a notification outbox registers one, so that a server whose queue is
// filling faster than it drains stops taking traffic before it has to drop
// anything.
func QueueBelow(name string, highWater int, depth func() int) Check {
	return QueueCounted(name, highWater, func(context.Context) (int, error) { return depth(), nil })
}

// QueueCounted is QueueBelow for a queue that count counts in a store,
// which may fail to answer in time: a queue it cannot count fails the
// check, since the count of a queue far past its high-water mark is the
// one most likely to take too long.
func QueueCounted(name string, highWater int, count func(ctx context.Context) (int, error)) Check {
	return Check{Name: name, Run: func(ctx context.Context) error {
		n, err := count(ctx)
		if err != nil {
			return Private("not counted", err)
		}
		if n >= highWater {
			return fmt.Errorf("%d queued, high-water mark %d", n, highWater)
		}
		return nil
	}}
}

// DefaultTimeout bounds each readiness check when Handler is given none.
const DefaultTimeout = 2 * time.Second

// Result is the outcome of one check in a /readyz response.
type Result struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Millis is how long the check took, in milliseconds.
	Millis int64 `json:"ms"`
}

// Response is the body of /livez and /readyz.
type Response struct {
	// Status is "ok" when the probe passes, "fail" otherwise.
	Status string   `json:"status"`
	Checks []Result `json:"checks,omitempty"`
}

// shareFor is how long the results of a readiness run answer the probes
// that follow it: /readyz needs no authentication and checks such as the
// store's write one, so a client asking without pause would otherwise
// cost the store a write each time. An orchestrator polls every few
// seconds, and sees results at most this old.
const shareFor = time.Second

// Handler serves the health probes.
type Handler struct {
	checks  []Check
	timeout time.Duration
	log     *slog.Logger
	now     func() time.Time

	mu   sync.Mutex
	last *run // the latest readiness run, under way or ended
}

// run is one readiness run, shared by the probes that ask for readiness
// while it is under way and for shareFor after it ended.
type run struct {
	done    chan struct{} // closed once results is set
	results []Result
	ended   time.Time // zero while under way; guarded by Handler.mu
}

// New returns a Handler running checks for readiness, each bounded by
// timeout (DefaultTimeout when 0). Failures are logged to log (nil
// discards) with the full error.
func New(checks []Check, timeout time.Duration, log *slog.Logger) *Handler {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{checks: checks, timeout: timeout, log: log, now: time.Now}
}

// Register adds GET /livez and GET /readyz (HEAD too) to mux, and a 405
// for any other method of them: the host serves its API beside them on a
// catch-all pattern, which would otherwise answer that method 404.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /livez", h.Live)
	mux.HandleFunc("GET /readyz", h.Ready)
	mux.HandleFunc("/livez", methodNotAllowed)
	mux.HandleFunc("/readyz", methodNotAllowed)
}

// methodNotAllowed refuses a probe asked with a method other than GET or
// HEAD.
func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, r.Method+" "+r.URL.Path+": method not allowed, use GET or HEAD", http.StatusMethodNotAllowed)
}

// Live answers 200 whenever the process serves HTTP: it checks nothing
// else, so that an orchestrator restarts the process only when it has
// stopped answering, not when a dependency is down.
func (h *Handler) Live(w http.ResponseWriter, r *http.Request) {
	write(w, http.StatusOK, Response{Status: "ok"})
}

// Ready answers 200 when every check passes, 503 naming the ones that
// failed otherwise, from the results of the readiness run under way or
// ended within shareFor, or else of a new one running every check at
// once.
func (h *Handler) Ready(w http.ResponseWriter, r *http.Request) {
	results := h.shared()
	status, code := "ok", http.StatusOK
	for _, res := range results {
		if !res.OK {
			status, code = "fail", http.StatusServiceUnavailable
		}
	}
	write(w, code, Response{Status: status, Checks: results})
}

// shared returns the results of the readiness run under way or ended
// within shareFor, starting a new one when there is none. A run is not
// cancelled when the probe that started it goes: others wait for it, and
// each check is bounded by the timeout.
func (h *Handler) shared() []Result {
	h.mu.Lock()
	r := h.last
	if r == nil || !r.ended.IsZero() && h.now().Sub(r.ended) >= shareFor {
		r = &run{done: make(chan struct{})}
		h.last = r
		go func() {
			r.results = h.Run(context.Background())
			h.mu.Lock()
			r.ended = h.now()
			h.mu.Unlock()
			close(r.done)
		}()
	}
	h.mu.Unlock()
	<-r.done
	return r.results
}

// Run runs every check concurrently, each under the timeout, and returns
// their results in the order the checks were given.
func (h *Handler) Run(ctx context.Context) []Result {
	results := make([]Result, len(h.checks))
	var wg sync.WaitGroup
	for i, c := range h.checks {
		wg.Go(func() {
			results[i] = h.run(ctx, c)
		})
	}
	wg.Wait()
	return results
}

func (h *Handler) run(ctx context.Context, c Check) Result {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	start := time.Now()
	// The check runs on its own goroutine so that one ignoring its deadline
	// cannot hold the probe past it.
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	res := Result{Name: c.Name, OK: err == nil, Millis: time.Since(start).Milliseconds()}
	if err != nil {
		var private *privateError
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			res.Error = "no answer within " + h.timeout.String()
		case errors.As(err, &private):
			res.Error = private.public
		default:
			res.Error = err.Error()
		}
		h.log.Warn("readiness check failed", "check", c.Name, "err", err)
	}
	return res
}

// Private returns an error that a probe's response reports as public alone,
// while the log has err in full: for an error that may name hosts or
// carry a URI, such as a database driver's.
func Private(public string, err error) error {
	return &privateError{public: public, err: err}
}

type privateError struct {
	public string
	err    error
}

func (e *privateError) Error() string { return e.public + ": " + e.err.Error() }
func (e *privateError) Unwrap() error { return e.err }

func write(w http.ResponseWriter, code int, body Response) {
	b, err := json.Marshal(body)
	if err != nil {
		// A Response holds strings, numbers and booleans only.
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
