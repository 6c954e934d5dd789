// Package bulk serves the FHIR Bulk Data Access IG v2.0.0 export: the
// $export operation at the system, Patient and Group levels, which starts
// a job running in the background, its status endpoint (202 with progress,
// then the manifest), its NDJSON files, and cancellation. Jobs are records
// in the store, so every process sees them; their files are on the disk of
// the process that ran them. A job reads as the principal that started it,
// through the access layer, and only that principal reads its status and
// files.
package bulk

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"carefhir/fhir/search"
	"carefhir/operation"
	"carefhir/server/access"
	"carefhir/store"
	"carefhir/store/lease"
)

// Config configures an Exporter.
type Config struct {
	// Dir holds the files of the jobs, one directory each.
	Dir string
	// BaseURL is the public base of the API, such as
	// https://fhir.example.nhs.uk/fhir: the status and file URLs start
	// with it.
	BaseURL string
	// Registry is the server's search registry: the types exported and
	// the parser of _typeFilter.
	Registry *search.Registry
	// Index extracts the search values of a resource (the server's
	// indexer): an earlier version exported in place of one written
	// after the transaction time is matched again against the job's
	// filters, level and Group, which the engine matched the current one
	// against.
	Index func(typ string, body []byte) (store.Index, error)
	// Expire is how long the files of a finished job are kept; 0: an hour.
	Expire time.Duration
	// PageSize is how many resources are read at a time; 0: 1000.
	PageSize int
	// Settle is how long after its transaction time a job starts reading:
	// a write takes its lastUpdated when the request begins to prepare it
	// and commits later (a transaction Bundle seconds later), so a write
	// stamped before the transaction time may commit after the job has
	// read past it, and neither this export nor the next one _since that
	// time would hold it. The server sets it to the longest a request may
	// take; 0 (tests) starts at once.
	Settle time.Duration
	// SearchLimits are the server's bounds on one search
	// (server.Limits.Search): each _typeFilter query is parsed with them,
	// and one kick-off carries at most SearchLimits.Params queries, as one
	// search carries at most that many parameters. Each is a search the
	// export runs over its type, for every hundred members of a Group.
	// Zero: search.DefaultLimits.
	SearchLimits search.Limits
	// Redact returns a resource of type typ as it is exported, given its
	// stored JSON: the server withholds there what the record of a
	// restricted person must not disclose (pds.RedactJSON). Nil: as
	// stored.
	Redact func(typ string, body []byte) ([]byte, error)
	Now    func() time.Time
	Holder string
	Logger *slog.Logger
}

// Exporter runs bulk exports.
type Exporter struct {
	cfg Config

	mu      sync.Mutex
	st      operation.Store
	places  map[string]context.CancelFunc // of the jobs running here, by id: each ends its job
	settled bool                          // the jobs left running by a stopped process are settled
	// beats notes, by job id, when this process first saw each heartbeat
	// of a job running elsewhere (abandoned).
	beats lease.Watch[int64]
	// finished notes, by job id, when this process first saw each job
	// finished that another process dated the end of.
	finished lease.Watch[int64]
	// sweeping: the removal of expired jobs runs (from the first Attach).
	sweeping bool
	failed   atomic.Int64

	settleMu sync.Mutex
	wg       sync.WaitGroup
	ctx      context.Context
	stop     context.CancelFunc
}

// New returns an Exporter; Close stops its jobs.
func New(cfg Config) (*Exporter, error) {
	if cfg.Dir == "" || cfg.Registry == nil || cfg.Index == nil {
		return nil, errors.New("bulk: a directory, a registry and an indexer are required")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("bulk: %w", err)
	}
	if cfg.Expire <= 0 {
		cfg.Expire = time.Hour
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 1000
	}
	// A job waiting to settle renews no heartbeat: it must start before
	// another process would take it for dead.
	cfg.Settle = min(cfg.Settle, stale/2)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.SearchLimits = cfg.SearchLimits.WithDefaults()
	if cfg.Redact == nil {
		cfg.Redact = func(_ string, body []byte) ([]byte, error) { return body, nil }
	}
	if cfg.Holder == "" {
		cfg.Holder = newID()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Exporter{cfg: cfg, places: map[string]context.CancelFunc{}, ctx: ctx, stop: stop}, nil
}

// Close cancels the running jobs and waits for them; their records say
// failed, as a restart would find them. A kick-off after Close starts
// nothing.
func (e *Exporter) Close() {
	e.mu.Lock()
	e.stop()
	e.mu.Unlock()
	e.wg.Wait()
}

// Jobs is the number of export jobs running in this process.
// Failed is how many jobs of this process failed.
func (e *Exporter) Failed() int64 { return e.failed.Load() }

func (e *Exporter) Jobs() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.places)
}

// recorder is the server's store of operations reaching the engine below
// the access layer (for the job records).
type recorder interface {
	Records() store.Tx
}

func (e *Exporter) records() (store.Tx, error) {
	e.mu.Lock()
	st := e.st
	e.mu.Unlock()
	r, ok := st.(recorder)
	if !ok {
		return nil, fmt.Errorf("bulk: the server's store (%T) does not reach its engine", st)
	}
	return r.Records(), nil
}

// Attach gives the Exporter the server's store (server.Config.Attach).
// The jobs a stopped process left running are settled before the first
// kick-off, status or file request is answered: they are marked failed,
// never listed as complete. From then on the expired jobs are removed
// every sweepEvery, whether or not anyone asks for them.
func (e *Exporter) Attach(s operation.Store) {
	e.mu.Lock()
	e.st = s
	e.settled = false
	sweeping := e.sweeping
	e.sweeping = true
	e.mu.Unlock()
	if !sweeping {
		e.wg.Go(e.sweepEvery)
	}
}

// sweepInterval is how often the expired jobs are looked for.
const sweepInterval = time.Minute

// sweepEvery removes the expired jobs every sweepInterval until Close.
func (e *Exporter) sweepEvery() {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
			if err := e.sweep(e.ctx); err != nil {
				e.cfg.Logger.Warn("bulk: remove expired jobs", "err", err)
			}
		}
	}
}

// expiry returns when the files of job id, finished, are past keeping,
// by this process's clock: Expire after it finished, by the clock of the
// process that dated its end; any other process measures Expire from
// when it first saw the job finished, by its own clock (lease.Watch), as
// it does heartbeats. The clocks of processes sharing a database may be
// hours apart, and one whose clock is ahead would remove a job another
// just finished.
func (e *Exporter) expiry(id string, j *job) time.Time {
	if j.finisher() == e.cfg.Holder {
		return j.Finished.Add(e.cfg.Expire)
	}
	return e.finished.Since(id, j.Finished.UnixNano(), e.cfg.Now()).Add(e.cfg.Expire)
}

// expired reports whether the files of job id are past keeping (expiry).
func (e *Exporter) expired(id string, j *job) bool {
	return j.State != stateRunning && e.cfg.Now().After(e.expiry(id, j))
}

// removedBy returns when this process will have removed the finished job
// id, by its own clock: the first pass of sweepEvery after its expiry.
// Once its record is removed no process serves the job, so that is when
// its files are no longer available, whichever process keeps it longer.
func (e *Exporter) removedBy(id string, j *job) time.Time {
	return e.expiry(id, j).Add(sweepInterval)
}

// sweep removes the records and files of the expired jobs: files of
// patients' records are not kept past --export-expire because no client
// came back for them.
func (e *Exporter) sweep(ctx context.Context) error {
	recs, err := e.records()
	if err != nil {
		return err
	}
	finished := []store.TokenMatch{{AnySystem: true, Code: stateComplete}, {AnySystem: true, Code: stateFailed}}
	vs, err := recs.Search(ctx, store.Query{Type: jobType, Where: []store.Clause{{Param: "state", Tokens: finished}}})
	if err != nil {
		return fmt.Errorf("expired export jobs: %w", err)
	}
	for _, v := range vs {
		j, ver, err := readJob(ctx, recs, v.ID)
		if err == nil && e.expired(v.ID, j) {
			e.discard(ctx, v.ID, ver)
		}
	}
	// The heartbeats first seen more than two staleness periods ago were
	// renewed or their jobs settled since; looked at anew, one only waits
	// longer.
	now := e.cfg.Now()
	e.beats.Forget(func(_ string, first time.Time) bool { return now.Sub(first) > 2*stale })
	// A job seen finished for twice Expire was removed since: this pass
	// would have found it expired.
	e.finished.Forget(func(_ string, first time.Time) bool { return now.Sub(first) > 2*e.cfg.Expire })
	// Jobs whose process stopped after this one settled them are failed
	// too, and then expire.
	if err := e.settle(ctx); err != nil {
		return fmt.Errorf("export jobs left running: %w", err)
	}
	return e.removeOrphans(ctx, recs)
}

// removeOrphans removes the files of jobs whose record is gone. The files
// are on the disk of the process that ran the job, and any process
// removes an expired job's record: the one that removed it had no files
// to remove, and the files would stay for good.
func (e *Exporter) removeOrphans(ctx context.Context, recs store.Reader) error {
	dirs, err := os.ReadDir(e.cfg.Dir)
	if err != nil {
		return fmt.Errorf("export files: %w", err)
	}
	for _, d := range dirs {
		// Only what this package wrote: a directory named as a job.
		if !d.IsDir() || !isJobID(d.Name()) {
			continue
		}
		// A job's record is written before its directory.
		if _, _, err := readJob(ctx, recs, d.Name()); errors.Is(err, store.ErrNotFound) {
			os.RemoveAll(e.jobDir(d.Name()))
		}
	}
	return nil
}

// isJobID reports whether name is an id newID makes.
func isJobID(name string) bool {
	b, err := hex.DecodeString(name)
	return err == nil && len(b) == 16 && name == strings.ToLower(name)
}

// ensureSettled settles the jobs left running, once after Attach.
func (e *Exporter) ensureSettled(ctx context.Context) {
	e.settleMu.Lock()
	defer e.settleMu.Unlock()
	e.mu.Lock()
	done := e.settled
	e.mu.Unlock()
	if done {
		return
	}
	if err := e.settle(ctx); err != nil {
		e.cfg.Logger.Error("bulk: settle jobs left running", "err", err)
		return
	}
	e.mu.Lock()
	e.settled = true
	e.mu.Unlock()
}

// stale is how long a process must have seen a running job's heartbeat
// unrenewed before it takes the job for dead.
const stale = 2 * time.Minute

func (e *Exporter) settle(ctx context.Context) error {
	recs, err := e.records()
	if err != nil {
		return err
	}
	vs, err := recs.Search(ctx, store.Query{Type: jobType, Where: []store.Clause{{Param: "state", Tokens: []store.TokenMatch{{AnySystem: true, Code: stateRunning}}}}})
	if err != nil {
		return err
	}
	for _, v := range vs {
		j, ver, err := readJob(ctx, recs, v.ID)
		if err != nil || !e.abandoned(v.ID, j) {
			continue // running here, or in another live process
		}
		if _, _, err := e.fail(ctx, recs, v.ID, ver, j); err != nil && !errors.Is(err, store.ErrNotFound) {
			e.cfg.Logger.Warn("bulk: settle job", "id", v.ID, "err", err)
		}
	}
	return nil
}

// abandoned reports whether job id, as recorded, was left running by a
// stopped process: it does not run here, and either this process recorded
// it (before a restart, when the holder is fixed) or this process has
// seen its heartbeat unrenewed for stale, by its own clock (lease.Watch).
// The heartbeat's time, written by the clock of the process running the
// job, is never compared with this process's: the clocks of processes
// sharing a database may be minutes apart, and one whose clock is ahead
// would take a live job for a dead one. A process that starts while a
// stopped one's job is recorded running thus fails it a staleness period
// later, not at once.
func (e *Exporter) abandoned(id string, j *job) bool {
	if j.State != stateRunning {
		return false
	}
	e.mu.Lock()
	_, ours := e.places[id]
	e.mu.Unlock()
	if ours {
		return false
	}
	return j.Holder == e.cfg.Holder || e.beats.Expired(id, j.Heartbeat.UnixNano(), e.cfg.Now(), stale)
}

// fail records job id, read at version ver and found abandoned, failed
// for its process having stopped, and returns its record as it then
// stands, with its version. The write is conditional on ver: a job that
// ran here may have recorded its outcome and given back its place
// between the read of its record and the check that it does not run
// here, and then the outcome it recorded stands.
func (e *Exporter) fail(ctx context.Context, recs store.Tx, id string, ver int64, j *job) (*job, int64, error) {
	now := e.cfg.Now()
	failed := *j
	failed.State, failed.Reason, failed.Finished = stateFailed, stoppedReason, now
	failed.FinishedBy = e.cfg.Holder
	v, err := putJob(ctx, recs, id, ver, &failed, now)
	var conflict *store.ConflictError
	if errors.As(err, &conflict) {
		return readJob(ctx, recs, id)
	}
	if err != nil {
		return nil, 0, err
	}
	return &failed, v, nil
}

// Operation is $export (server.Config.Operations).
func (e *Exporter) Operation() operation.Operation {
	return operation.Operation{
		Name:       "export",
		Definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
		TypeDefinitions: map[string]string{
			"Patient": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
			"Group":   "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
		},
		Levels:     operation.System | operation.Type | operation.Instance,
		Types:      []string{"Patient", "Group"},
		Idempotent: true,
		Invoke:     e.kickOff,
	}
}

// operationDefinitions holds the IG's OperationDefinitions of $export at
// the system, Patient and Group levels, which Operation names.
//
//go:embed operationdefinitions/*.json
var operationDefinitions embed.FS

// OperationDefinitions returns the OperationDefinitions of $export, JSON
// files for the host to serve (operation.Definitions reads them).
func OperationDefinitions() fs.FS { return operationDefinitions }

// The output formats of NDJSON the IG names.
var ndjsonFormats = []string{"application/fhir+ndjson", "application/ndjson", "ndjson"}

// kickOff starts an export: 202 with the status URL in Content-Location.
func (e *Exporter) kickOff(ctx context.Context, inv *operation.Invocation) (*operation.Result, error) {
	p := access.PrincipalFrom(ctx)
	if p == nil || !(p.Open || slices.ContainsFunc(p.Scopes, func(s access.Scope) bool { return s.Context == access.SystemContext })) {
		return nil, operation.Errorf(403, "forbidden", "", "bulk export needs a token with system/ scopes (a backend-services client)")
	}
	e.ensureSettled(ctx)
	j := &job{State: stateRunning, Owner: ownerKey(p), Reach: reachOf(p), Holder: e.cfg.Holder}
	switch {
	case inv.Type == "":
		j.Level = "system"
	case inv.Type == "Patient" && inv.ID == "":
		j.Level = "patient"
	case inv.Type == "Group" && inv.ID != "":
		j.Level, j.Group = "group", inv.ID
	default:
		return nil, operation.Errorf(400, "not-supported", "", "$export is served on the system, on Patient and on a Group instance, not on %s", strings.Trim(inv.Type+"/"+inv.ID, "/"))
	}
	if err := checkKickOffParams(inv); err != nil {
		return nil, err
	}
	// A media type holds no space: one in _outputFormat is the "+" of
	// application/fhir+ndjson sent unencoded, as the IG's examples write
	// it, which the query decoder read as a space.
	if f, err := inv.Text("_outputFormat"); err != nil {
		return nil, err
	} else if f = strings.ReplaceAll(strings.TrimSpace(f), " ", "+"); f != "" && !slices.Contains(ndjsonFormats, f) {
		return nil, operation.Errorf(400, "not-supported", "_outputFormat", "_outputFormat %q is not supported: application/fhir+ndjson is", f)
	}
	if since, err := inv.Text("_since"); err != nil {
		return nil, err
	} else if since != "" {
		// An instant holds no space: one is the "+" of a time zone
		// (+01:00) sent unencoded, as search reads dates too.
		since = strings.ReplaceAll(since, " ", "+")
		t, err := time.Parse(time.RFC3339Nano, since)
		if err != nil {
			return nil, operation.Errorf(400, "invalid", "_since", "_since %q is not an instant such as 2026-01-01T00:00:00Z", since)
		}
		j.Since = t
	}
	if j.Group != "" {
		// The Group is read now as the job will read it, so that one not
		// held, or not readable by this client, is refused here rather
		// than failing the job. Nothing of it is sent, so the reads are
		// decided as the request's but not recorded: the kick-off's
		// AuditEvent names no resource, nor the Group's members.
		check, _ := access.BeginUnaudited(ctx)
		if _, err := e.groupMembers(check, j.Group, e.cfg.Now()); errors.Is(err, store.ErrNotFound) {
			return nil, operation.Errorf(404, "not-found", "", "Group/%s is not known", j.Group)
		} else if err != nil {
			return nil, err
		}
	}
	types, err := e.types(inv, j.Level)
	if err != nil {
		return nil, err
	}
	j.Types = types
	j.Explicit = len(inv.Texts("_type")) > 0
	for _, f := range inv.Texts("_typeFilter") {
		for _, one := range e.splitTypeFilters(f) {
			typ, q, ok := strings.Cut(one, "?")
			if !ok || !slices.Contains(types, typ) {
				return nil, operation.Errorf(400, "invalid", "_typeFilter", "_typeFilter %q must be Type?search on a type exported", one)
			}
			// The query is in the form of Type?search but does not parse
			// (a bad percent-escape, a semicolon): said as what is wrong,
			// in url's words, which quote it.
			params, err := url.ParseQuery(q)
			if err != nil {
				return nil, operation.Errorf(400, "invalid", "_typeFilter", "_typeFilter %q: the search does not parse: %v", one, err)
			}
			for name := range params {
				if base, _, _ := strings.Cut(name, ":"); slices.Contains(resultParams, base) {
					return nil, operation.Errorf(400, "invalid", "_typeFilter",
						"_typeFilter %q: %s changes the results of a search rather than selecting them, which a _typeFilter may not", one, name)
				}
			}
			if _, err := e.cfg.Registry.Parse(typ, params, e.filterOptions()); err != nil {
				return nil, operation.Errorf(400, "invalid", "_typeFilter", "_typeFilter %q: %v", one, err)
			}
			if most := e.cfg.SearchLimits.Params; len(j.TypeFilters) == most {
				return nil, operation.Errorf(400, "too-costly", "_typeFilter",
					"more than %d _typeFilter queries: an export runs each as a search of its own; ask for fewer, or export the types unfiltered", most)
			}
			j.TypeFilters = append(j.TypeFilters, one)
		}
	}
	// The IG has Prefer: respond-async required of a kick-off, the one way
	// an export is answered; checked last, so that a client learns first
	// what else is wrong with the request.
	if !inv.RespondAsync {
		return nil, operation.Errorf(400, "invalid", "", "a bulk export is answered asynchronously: send Prefer: respond-async")
	}
	// A new export is a good time to remove the old ones past keeping.
	if err := e.sweep(ctx); err != nil {
		e.cfg.Logger.Warn("bulk: remove expired jobs", "err", err)
	}
	id := newID()
	jobCtx, err := e.reserve(id)
	if err != nil {
		return nil, err
	}
	now := e.cfg.Now().UTC().Truncate(time.Millisecond)
	j.TransactionTime, j.Heartbeat = now, now
	j.Request = e.requestURL(inv)
	recs, err := e.records()
	if err != nil {
		e.release(id)
		return nil, err
	}
	ver, err := putJob(ctx, recs, id, 0, j, now)
	if err != nil {
		e.release(id)
		return nil, err
	}
	if err := e.claimPlace(ctx, recs, j.Owner, id); err != nil {
		if rerr := removeJob(context.WithoutCancel(ctx), recs, id, ver, now); rerr != nil {
			e.cfg.Logger.Warn("bulk: remove export job refused a place", "job", id, "err", rerr)
		}
		e.release(id)
		return nil, err
	}
	owner := *p
	e.start(jobCtx, id, ver, j, &owner)
	return &operation.Result{Status: 202, Header: map[string]string{"Content-Location": e.statusURL(id)}}, nil
}

// resultParams are the search parameters that shape the results of a
// search (R4 search, "Modifying Search Results") or its form rather than
// select resources: the IG has them not used in a _typeFilter, and an
// export that ignored one (_count, _elements) would send more than was
// asked for.
var resultParams = []string{"_sort", "_count", "_include", "_revinclude", "_summary", "_total", "_elements",
	"_contained", "_containedType", "_format", "_pretty"}

// filterOptions are the options a _typeFilter query is parsed with.
func (e *Exporter) filterOptions() search.Options {
	return search.Options{Strict: true, Base: e.cfg.BaseURL, Limits: e.cfg.SearchLimits}
}

// splitTypeFilters splits a _typeFilter value into its queries. The IG
// has the queries comma-separated, and a query may hold commas of its own
// (code=a,b, values either of which matches), so a comma separates two
// queries only where a resource type and its "?" follow it, as HAPI FHIR
// reads it.
func (e *Exporter) splitTypeFilters(value string) []string {
	var out []string
	start := 0
	for i := 0; i < len(value); i++ {
		if value[i] != ',' {
			continue
		}
		if typ, _, ok := strings.Cut(value[i+1:], "?"); ok && e.cfg.Registry.Served(typ) {
			out = append(out, value[start:i])
			start = i + 1
		}
	}
	return append(out, value[start:])
}

// kickOffParams are the kick-off parameters an export applies; _format
// and _pretty ask for the form of an error's OperationOutcome.
var kickOffParams = []string{"_outputFormat", "_since", "_type", "_typeFilter", "_format", "_pretty"}

// checkKickOffParams refuses a kick-off parameter the export does not apply
// (_elements, patient, includeAssociatedData, or one it does not know),
// unless the client sent Prefer: handling=lenient, as the Bulk Data IG
// has it: exported without it, a client asking for a narrower export
// (one patient, fewer elements) would get more data than it asked for.
// For the same reason a parameter it applies given without a value (empty,
// or with parts in place of a value) is refused, lenient or not: read as
// absent, _type or _typeFilter would export every resource.
func checkKickOffParams(inv *operation.Invocation) error {
	for _, name := range inv.Names() {
		if !slices.Contains(kickOffParams, name) {
			if inv.Handling == "lenient" {
				continue
			}
			return operation.Errorf(400, "not-supported", name,
				"%s is not supported by this export; send Prefer: handling=lenient to have unsupported parameters ignored", name)
		}
		if len(inv.Texts(name)) < len(inv.Params(name)) {
			return operation.Errorf(400, "invalid", name, "%s is given without a value", name)
		}
	}
	return nil
}

// maxJobs bounds the exports running at once in one process, so that
// exports do not starve the API.
const maxJobs = 4

// maxJobsPerOwner bounds the exports of one owner running at once, in
// every process on one database together, so that one client cannot take
// every place and lock the others out.
const maxJobsPerOwner = max(1, maxJobs/2)

// types returns the types of an export: _type, else every type the level
// covers.
func (e *Exporter) types(inv *operation.Invocation, level string) ([]string, error) {
	covered := func(t string) bool {
		return level == "system" || t == "Patient" || len(e.cfg.Registry.CompartmentParams(t)) > 0
	}
	var all []string
	for _, t := range e.cfg.Registry.Types() {
		if e.cfg.Registry.Served(t) && covered(t) {
			all = append(all, t)
		}
	}
	asked := inv.Texts("_type")
	if len(asked) == 0 {
		return all, nil
	}
	var out []string
	for _, list := range asked {
		for _, t := range strings.Split(list, ",") {
			// As $everything and HAPI FHIR read it: "Patient, Observation".
			t = strings.TrimSpace(t)
			if !slices.Contains(all, t) {
				return nil, operation.Errorf(400, "invalid", "_type", "_type %q is not a type this export covers", t)
			}
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	return out, nil
}

func (e *Exporter) requestURL(inv *operation.Invocation) string {
	path := "/$export"
	if inv.Type != "" {
		path = "/" + strings.Trim(inv.Type+"/"+inv.ID, "/") + path
	}
	if q := inv.Query.Encode(); q != "" {
		path += "?" + q
	}
	return e.cfg.BaseURL + path
}

func (e *Exporter) statusURL(id string) string {
	return e.cfg.BaseURL + "/$export-status?_jobId=" + id
}

func (e *Exporter) fileURL(id, name string) string {
	return e.cfg.BaseURL + "/$export-file?_jobId=" + id + "&file=" + name
}

func (e *Exporter) jobDir(id string) string { return filepath.Join(e.cfg.Dir, id) }

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
