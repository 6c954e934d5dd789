package bulk

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/fhir/search"
	"carefhir/operation"
	"carefhir/server/access"
	"carefhir/store"
)

// versionReader reads versions through the access layer.
type versionReader interface {
	VRead(ctx context.Context, typ, id string, version int64) (*store.Version, error)
	History(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error)
}

// kickOffRetry is how many seconds a kick-off refused for want of a free
// place is asked to wait.
const kickOffRetry = 30

// reserve takes one of the maxJobs places of running jobs for job id: 429
// when none is free, 503 once Close has begun. The place is taken before
// the job is recorded, so that kick-offs arriving together cannot all
// find the same one free, and Close waits for it as for a running job.
// ctx is the job's: cancel and Close end it. The places of one owner,
// which hold across processes, are claimed once the job is recorded (see
// claimPlace).
func (e *Exporter) reserve(id string) (ctx context.Context, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctx.Err() != nil {
		err := operation.Errorf(503, "transient", "", "the server is stopping; start the export again once it is back")
		err.RetryAfter = 5
		return nil, err
	}
	// A job takes at least its settling time, so sooner is no use.
	if len(e.places) >= maxJobs {
		err := operation.Errorf(429, "throttled", "", "%d exports are running; try again later", maxJobs)
		err.RetryAfter = kickOffRetry
		return nil, err
	}
	ctx, cancel := context.WithCancel(e.ctx)
	e.places[id] = cancel
	e.wg.Add(1)
	return ctx, nil
}

// claimType is the engine-level record type of the places of the owners'
// running exports: up to maxJobsPerOwner records an owner, each naming
// the job that took it last. Never served, hooked or audited.
const claimType = "BulkExportClaim"

// claim is a place of an owner's running exports.
type claim struct {
	Job string `json:"job"`
}

// claimPlace takes one of owner's maxJobsPerOwner places for job id,
// which is recorded already: 429 when none is free. The places are
// records of the store, so the limit holds across every process on one
// database. A place is free when the job it names is not running (it
// finished or was removed, or its process stopped: see abandoned), and
// is taken by a write conditional on the version read, so two kick-offs
// cannot both take one.
func (e *Exporter) claimPlace(ctx context.Context, recs store.Tx, owner, id string) error {
	body, err := json.Marshal(claim{Job: id})
	if err != nil {
		return err
	}
	key := sha256.Sum256([]byte(owner))
	for k := range maxJobsPerOwner {
		cid := fmt.Sprintf("%x-%d", key[:16], k)
		var expected int64
		switch v, err := recs.Read(ctx, claimType, cid); {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return fmt.Errorf("export place %s: %w", cid, err)
		default:
			expected = v.VersionID
			var c claim
			if err := json.Unmarshal(v.JSON, &c); !v.Deleted && err == nil {
				running, err := e.running(ctx, recs, c.Job)
				if err != nil {
					return err
				}
				if running {
					continue
				}
			}
		}
		w := &store.Write{Type: claimType, ID: cid, Expected: expected, LastUpdated: e.cfg.Now().UTC().Truncate(time.Millisecond), JSON: body}
		err := recs.Put(ctx, w)
		var conflict *store.ConflictError
		if errors.As(err, &conflict) {
			continue // taken by another kick-off meanwhile
		}
		if err != nil {
			return fmt.Errorf("export place %s: %w", cid, err)
		}
		return nil
	}
	refused := operation.Errorf(429, "throttled", "", "%d exports of this client are running, as many as one client may run at once; try again once one has finished", maxJobsPerOwner)
	refused.RetryAfter = kickOffRetry
	return refused
}

// running reports whether job id is running in a live process; one left
// by a stopped process (abandoned) is recorded failed, as a status
// request would find it.
func (e *Exporter) running(ctx context.Context, recs store.Tx, id string) (bool, error) {
	j, ver, err := readJob(ctx, recs, id)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if e.abandoned(id, j) {
		j, _, err = e.fail(ctx, recs, id, ver, j)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
	return j.State == stateRunning, nil
}

// release gives back the place reserve took for job id and ends its
// context.
func (e *Exporter) release(id string) {
	e.mu.Lock()
	cancel := e.places[id]
	delete(e.places, id)
	e.mu.Unlock()
	cancel()
	e.wg.Done()
}

// start runs job id, reserved with ctx, in the background.
func (e *Exporter) start(ctx context.Context, id string, ver int64, j *job, owner *access.Principal) {
	go func() {
		defer e.release(id)
		e.run(ctx, id, ver, j, owner)
	}()
}

// cancel stops job id if this process runs it.
func (e *Exporter) cancel(id string) {
	e.mu.Lock()
	cancel, ok := e.places[id]
	e.mu.Unlock()
	if ok {
		cancel()
	}
}

// run exports the types of j one after another, recording progress, and
// records the outcome: complete with its manifest, or failed.
func (e *Exporter) run(ctx context.Context, id string, ver int64, j *job, owner *access.Principal) {
	recs, err := e.records()
	if err != nil {
		return
	}
	actx, _ := access.Begin(ctx)
	actx = access.WithPrincipal(actx, owner)
	err = e.waitForWrites(ctx, j)
	if err == nil {
		err = os.MkdirAll(e.jobDir(id), 0o700)
	}
	var members []string
	if err == nil && j.Group != "" {
		members, err = e.groupMembers(actx, j.Group, j.TransactionTime)
	}
	// beat renews the heartbeat while a type is exported, which can take
	// longer than another process waits before taking the job for dead.
	beat := func() error {
		now := e.cfg.Now()
		if now.Sub(j.Heartbeat) < stale/4 {
			return nil
		}
		j.Heartbeat = now
		v, err := putJob(context.WithoutCancel(ctx), recs, id, ver, j, now)
		if err == nil {
			ver = v
		}
		return err
	}
	for i := 0; err == nil && i < len(j.Types); i++ {
		typ := j.Types[i]
		var n int
		n, err = e.exportType(actx, id, j, typ, members, beat)
		var te *typeError
		if errors.As(err, &te) {
			// A type outside the owner's scopes: nothing of it, and an
			// OperationOutcome in the error file when _type asked for it.
			err = nil
			if j.Explicit {
				err = e.recordError(id, j, te)
			}
		}
		if err != nil {
			break
		}
		if n > 0 {
			j.Output = append(j.Output, output{Type: typ, File: typ + ".ndjson", Count: n})
		}
		j.Done = i + 1
		j.Heartbeat = e.cfg.Now()
		ver, err = putJob(context.WithoutCancel(ctx), recs, id, ver, j, j.Heartbeat)
	}
	if err == nil && !j.Since.IsZero() {
		err = e.exportDeleted(actx, id, j, members)
	}
	now := e.cfg.Now()
	bg := context.WithoutCancel(ctx)
	if ctx.Err() != nil {
		// Cancelled (DELETE removes the record and files) or shutting down.
		if e.ctx.Err() != nil {
			j.State, j.Reason, j.Finished = stateFailed, stoppedReason, now
			putJob(bg, recs, id, ver, j, now)
		}
		return
	}
	if err != nil {
		e.cfg.Logger.Error("bulk: export failed", "job", id, "err", err)
		e.failed.Add(1)
		j.State, j.Reason, j.Cause, j.Finished = stateFailed, failedReason, err.Error(), now
		if _, perr := putJob(bg, recs, id, ver, j, now); perr != nil {
			e.cfg.Logger.Error("bulk: record failed export", "job", id, "err", perr)
		}
		return
	}
	j.State, j.Finished = stateComplete, now
	if _, err := putJob(bg, recs, id, ver, j, now); err != nil {
		e.cfg.Logger.Error("bulk: record complete export", "job", id, "err", err)
	}
}

// typeError is a type the job could not export, reported in its error
// file.
type typeError struct{ typ, msg string }

func (e *typeError) Error() string { return e.typ + ": " + e.msg }

// errorFile is the file of a job's OperationOutcomes.
const errorFile = "errors.ndjson"

// recordError appends an OperationOutcome about te to the job's error file.
func (e *Exporter) recordError(id string, j *job, te *typeError) error {
	f, err := os.OpenFile(filepath.Join(e.jobDir(id), errorFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	line, err := json.Marshal(map[string]any{"resourceType": "OperationOutcome", "issue": []any{map[string]any{
		"severity": "error", "code": "forbidden", "diagnostics": te.typ + " was not exported: " + te.msg, "expression": []string{"_type"}}}})
	if err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if len(j.Errors) == 0 {
		j.Errors = []output{{Type: "OperationOutcome", File: errorFile}}
	}
	j.Errors[0].Count++
	return nil
}

// deletedFile is the file of the resources deleted since _since.
const deletedFile = "deleted.ndjson"

// exportDeleted writes the deleted file of a job _since an instant: a
// transaction Bundle with one DELETE entry for each resource of the job's
// types that was deleted between _since and the transaction time and not
// created again before it, as the IG asks, so that a client keeping a copy
// up to date removes it. At the Patient and Group levels a resource is
// listed when its last version referred to a patient of the export (any
// Patient, or a member), as the audit trail reads a resource's patients:
// its search values went with the deletion. _typeFilter is not applied to
// it, for the same reason.
func (e *Exporter) exportDeleted(ctx context.Context, id string, j *job, members []string) error {
	f, err := os.Create(filepath.Join(e.jobDir(id), deletedFile))
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	// The deletions name patients' records: their download is audited
	// per patient, as the output files' are.
	patients, err := newPatientList(f.Name())
	if err != nil {
		return err
	}
	defer patients.f.Close()
	vr := e.store().(versionReader)
	n := 0
	for _, typ := range j.Types {
		q := store.HistoryQuery{Type: typ, Since: j.Since, Count: e.cfg.PageSize}
		for {
			page, err := vr.History(ctx, q)
			var denied *access.Denied
			if errors.As(err, &denied) {
				break // the type is outside the owner's scopes, as in the output
			}
			if err != nil {
				return fmt.Errorf("deleted %s: %w", typ, err)
			}
			for _, v := range page.Versions {
				ok, of, err := e.deletedAsOf(ctx, vr, v, j, members)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
				if err := patients.add(of); err != nil {
					return err
				}
				line, err := json.Marshal(deletion(v))
				if err != nil {
					return err
				}
				w.Write(line)
				w.WriteByte('\n')
				n++
			}
			if page.Next == "" {
				break
			}
			q.Cursor = page.Next
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := patients.close(); err != nil {
		return err
	}
	if n > 0 {
		j.Deleted = []output{{Type: "Bundle", File: deletedFile, Count: n}}
	} else {
		os.Remove(f.Name())
		os.Remove(f.Name() + patientsSuffix)
	}
	return nil
}

// deletedAsOf reports whether v is a deletion the job lists: a tombstone
// written by the transaction time, of a resource not created again by
// then, that was in the job's scope; and the patients whose record the
// resource was in, read from its last version.
func (e *Exporter) deletedAsOf(ctx context.Context, vr versionReader, v *store.Version, j *job, members []string) (bool, []string, error) {
	if !v.Deleted || v.LastUpdated.After(j.TransactionTime) {
		return false, nil, nil
	}
	switch next, err := vr.VRead(ctx, v.Type, v.ID, v.VersionID+1); {
	case err == nil && !next.LastUpdated.After(j.TransactionTime):
		return false, nil, nil // created again before the transaction time
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return false, nil, fmt.Errorf("deleted %s/%s: %w", v.Type, v.ID, err)
	}
	var patients []string
	switch last, err := vr.VRead(ctx, v.Type, v.ID, v.VersionID-1); {
	case err == nil:
		patients = access.PatientsOf(last.Type, last.ID, last.JSON)
	case !errors.Is(err, store.ErrNotFound):
		return false, nil, fmt.Errorf("deleted %s/%s: %w", v.Type, v.ID, err)
	}
	switch {
	case j.Level == "system":
		return true, patients, nil
	case j.Group == "":
		return len(patients) > 0, patients, nil
	}
	return slices.ContainsFunc(patients, func(p string) bool { return slices.Contains(members, p) }), patients, nil
}

// deletion is the line of the deleted file for tombstone v.
func deletion(v *store.Version) map[string]any {
	return map[string]any{
		"resourceType": "Bundle",
		"meta":         map[string]any{"lastUpdated": v.LastUpdated.UTC().Format("2006-01-02T15:04:05.000Z07:00")},
		"type":         "transaction",
		"entry":        []any{map[string]any{"request": map[string]any{"method": "DELETE", "url": v.Type + "/" + v.ID}}},
	}
}

// groupMembers returns the ids of the Patients that are members of a
// Group at instant at, as the Group's version current then has them (the
// job reads it after members may have been added or removed): not those
// flagged inactive, nor those whose period in the Group does not cover
// at, which R4 has as no longer (or not yet) in the Group. A Group whose
// every version is later than at, by this process's clock, was found by
// the kick-off all the same: it was written by a process whose clock is
// ahead, and is read as its first version has it.
func (e *Exporter) groupMembers(ctx context.Context, id string, at time.Time) ([]string, error) {
	cur, err := e.store().Read(ctx, "Group", id)
	if err != nil {
		return nil, fmt.Errorf("Group/%s: %w", id, err)
	}
	v, err := e.versionAt(ctx, cur, at)
	if err != nil {
		return nil, err
	}
	if v == nil && !cur.Deleted {
		if v, err = e.store().(versionReader).VRead(ctx, "Group", id, 1); err != nil {
			return nil, fmt.Errorf("Group/%s: %w", id, err)
		}
	}
	if v == nil || v.Deleted {
		return nil, fmt.Errorf("Group/%s: %w", id, store.ErrNotFound)
	}
	// Read as it is served: a Group an older release stored with a date on
	// a day its month lacks still names its members (a period bound no
	// calendar has limits nothing, as covers reads it).
	res, err := fhirjson.UnmarshalStoredAs(v.JSON, "Group")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range res.(*fhir.Group).Member {
		if m.Entity == nil || m.Inactive.Get() || !covers(m.Period, at) {
			continue
		}
		// As the search index reads it: Patient/id, with a version or under
		// this server's base URL.
		if ref := search.ParseReference(m.Entity.Reference.Get(), e.cfg.BaseURL); ref.Type == "Patient" && ref.URL == "" {
			out = append(out, ref.ID)
		}
	}
	return out, nil
}

// covers reports whether period p, nil when not known, covers instant at;
// each end is taken at its precision (an end of 2025-03 covers March).
func covers(p *fhir.Period, at time.Time) bool {
	if p == nil {
		return true
	}
	if p.Start != nil {
		if low, _, ok := search.ParseDate(p.Start.Get()); ok && at.Before(low) {
			return false
		}
	}
	if p.End != nil {
		if _, high, ok := search.ParseDate(p.End.Get()); ok && at.After(high) {
			return false
		}
	}
	return true
}

// exportType writes the resources of typ to the job's file, returning how
// many, calling beat between pages. A first pass searches the current
// versions and writes each as of the transaction time; a second writes
// the resources changed since then that the first could not find, their
// current version no longer matching (see exportChanged).
func (e *Exporter) exportType(ctx context.Context, id string, j *job, typ string, members []string, beat func() error) (int, error) {
	out, err := newTypeFile(filepath.Join(e.jobDir(id), typ+".ndjson"), e.cfg.Redact)
	if err != nil {
		return 0, err
	}
	defer out.discard()
	queries, err := e.queries(j, typ, members)
	if err != nil {
		return 0, err
	}
	var seen map[string]bool
	if len(queries) > 1 {
		seen = map[string]bool{} // the same resource through two filters or groups of members
	}
	for _, q := range queries {
		q.Count = e.cfg.PageSize
		err := e.pages(ctx, beat, func() (string, error) {
			page, err := e.store().Find(ctx, q)
			if err != nil {
				var denied *access.Denied
				if errors.As(err, &denied) {
					return "", &typeError{typ: typ, msg: denied.Message}
				}
				return "", fmt.Errorf("export %s: %w", typ, err)
			}
			for _, current := range page.Matches {
				v, err := e.asOf(ctx, current, j)
				if err != nil {
					return "", err
				}
				if v == nil || (seen != nil && seen[v.ID]) {
					continue
				}
				if v.VersionID != current.VersionID {
					// The engine matched the current version; the one
					// exported must match as of the transaction time (an
					// Observation moved to a member of the Group since).
					ix, err := e.index(v)
					if err != nil {
						return "", err
					}
					if ok, _ := matches(v, ix, q.Where); !ok {
						continue
					}
				}
				if seen != nil {
					seen[v.ID] = true
				}
				if err := out.write(v); err != nil {
					return "", err
				}
			}
			q.Cursor = page.Next
			return page.Next, nil
		})
		if err != nil {
			return 0, err
		}
	}
	if err := e.exportChanged(ctx, j, typ, queries, out, beat); err != nil {
		return 0, err
	}
	return out.close()
}

// pages calls next, which reads one page and returns the cursor of the
// next one, until there is none, calling beat between pages and yielding
// after each: an export works at most two thirds of the time, so that the
// API it runs beside keeps most of the machine.
func (e *Exporter) pages(ctx context.Context, beat func() error, next func() (string, error)) error {
	for {
		began := time.Now()
		cursor, err := next()
		if err != nil || cursor == "" {
			return err
		}
		if err := beat(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Since(began) / 2):
		}
	}
}

// exportChanged writes to out the resources of typ changed since the
// transaction time whose version then matches one of queries but which
// the search of current versions did not write: recoded out of a
// _typeFilter, moved out of the Group or of every Patient's compartment,
// or deleted, since. It reads the history since the transaction time,
// after that search: a resource whose first change since is missing from
// it had not changed while the search ran, which then found it as it was.
// It holds the ids of the resources changed since, not of every resource
// written, and reads back the ids out wrote only when there are some.
func (e *Exporter) exportChanged(ctx context.Context, j *job, typ string, queries []store.Query, out *typeFile, beat func() error) error {
	vr := e.store().(versionReader)
	// The version as of the transaction time of each resource changed
	// since: the one before its first version after it. History runs
	// newest first, so the last version seen of a resource is its first.
	then := map[string]int64{}
	q := store.HistoryQuery{Type: typ, Since: j.TransactionTime, Count: e.cfg.PageSize}
	err := e.pages(ctx, beat, func() (string, error) {
		page, err := vr.History(ctx, q)
		if err != nil {
			return "", fmt.Errorf("export %s changed since the transaction time: %w", typ, err)
		}
		for _, v := range page.Versions {
			if v.LastUpdated.After(j.TransactionTime) {
				then[v.ID] = v.VersionID - 1 // 0: created since
			}
		}
		q.Cursor = page.Next
		return page.Next, nil
	})
	if err != nil || len(then) == 0 {
		return err
	}
	if err := out.forgetWritten(then); err != nil {
		return err
	}
	ids := slices.Sorted(maps.Keys(then))
	for _, id := range ids {
		if then[id] == 0 {
			continue
		}
		v, err := vr.VRead(ctx, typ, id, then[id])
		if errors.Is(err, store.ErrNotFound) {
			continue // out of the owner's reach now, as its read would be
		}
		if err != nil {
			return fmt.Errorf("export %s/%s: %w", typ, id, err)
		}
		if v.LastUpdated.After(j.TransactionTime) || v.Deleted || (!j.Since.IsZero() && v.LastUpdated.Before(j.Since)) {
			continue
		}
		ok, err := e.matchesAny(ctx, v, queries)
		if err != nil {
			return err
		}
		if ok {
			if err := out.write(v); err != nil {
				return err
			}
		}
	}
	return nil
}

// matchesAny reports whether version v matches one of queries. A clause
// that cannot be decided from v alone (a chain, _has) is asked of the
// engine for the current version, as the search of current versions
// decides it: one of a resource deleted since does not hold.
func (e *Exporter) matchesAny(ctx context.Context, v *store.Version, queries []store.Query) (bool, error) {
	ix, err := e.index(v)
	if err != nil {
		return false, err
	}
	for _, q := range queries {
		ok, undecided := matches(v, ix, q.Where)
		if !ok {
			continue
		}
		if len(undecided) == 0 {
			return true, nil
		}
		byID := store.Clause{Param: "_id", Tokens: []store.TokenMatch{{AnySystem: true, Code: v.ID}}}
		page, err := e.store().Find(ctx, store.Query{Type: v.Type, Where: append(undecided, byID), Count: 1})
		if err != nil {
			return false, fmt.Errorf("match %s/%s: %w", v.Type, v.ID, err)
		}
		if len(page.Matches) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// typeFile is the export file of one type being written, with the
// sidecars of the patients its resources are of and of their ids.
type typeFile struct {
	name     string
	redact   func(typ string, body []byte) ([]byte, error) // Config.Redact
	f, idsF  *os.File
	w, idsW  *bufio.Writer
	patients *patientList
	n        int
}

// idsSuffix names the file of the ids an export file holds, one a line,
// read while the file is written and removed then; never served.
const idsSuffix = ".ids"

func newTypeFile(name string, redact func(typ string, body []byte) ([]byte, error)) (*typeFile, error) {
	t := &typeFile{name: name, redact: redact}
	var err error
	if t.f, err = os.Create(name); err != nil {
		return nil, err
	}
	t.w = bufio.NewWriterSize(t.f, 256<<10)
	if t.idsF, err = os.Create(name + idsSuffix); err != nil {
		t.discard()
		return nil, err
	}
	t.idsW = bufio.NewWriter(t.idsF)
	if t.patients, err = newPatientList(name); err != nil {
		t.discard()
		return nil, err
	}
	return t, nil
}

// write writes version v, as the server exports it (Config.Redact): the
// one place every resource of an output file passes.
func (t *typeFile) write(v *store.Version) error {
	body, err := t.redact(v.Type, v.JSON)
	if err != nil {
		return fmt.Errorf("export %s/%s: %w", v.Type, v.ID, err)
	}
	t.w.Write(body)
	t.w.WriteByte('\n')
	t.idsW.WriteString(v.ID)
	if err := t.idsW.WriteByte('\n'); err != nil {
		return fmt.Errorf("ids of %s: %w", t.name, err)
	}
	t.n++
	return t.patients.add(access.PatientsOf(v.Type, v.ID, v.JSON))
}

// forgetWritten removes from ids those of the resources written so far.
func (t *typeFile) forgetWritten(ids map[string]int64) error {
	if err := t.idsW.Flush(); err != nil {
		return fmt.Errorf("ids of %s: %w", t.name, err)
	}
	f, err := os.Open(t.idsF.Name())
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		delete(ids, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("ids of %s: %w", t.name, err)
	}
	return nil
}

// close finishes the file and its patients' sidecar, removing both when
// it holds no resource, and returns how many it holds.
func (t *typeFile) close() (int, error) {
	if err := t.w.Flush(); err != nil {
		return 0, err
	}
	if err := t.f.Close(); err != nil {
		return 0, err
	}
	if err := t.patients.close(); err != nil {
		return 0, err
	}
	if t.n == 0 {
		os.Remove(t.name)
		os.Remove(t.patients.f.Name())
	}
	return t.n, nil
}

// discard closes what is open and removes the ids file; on failure, the
// job's directory goes with the job.
func (t *typeFile) discard() {
	if t.f != nil {
		t.f.Close()
	}
	if t.patients != nil {
		t.patients.f.Close()
	}
	if t.idsF != nil {
		t.idsF.Close()
		os.Remove(t.idsF.Name())
	}
}

// patientsSuffix names the sidecar of an export file: the ids of the
// patients whose records the file holds, one a line, which the audit
// trail reads when the file is downloaded.
const patientsSuffix = ".patients"

// maxHeld bounds the patient ids a patientList holds in memory.
const maxHeld = 100_000

// patientList collects the patients of an export file's resources into
// its sidecar: a set in memory, written out whenever it reaches maxHeld
// ids, so that the memory an export takes stays bounded however many
// patients a file holds. A file of more than maxHeld patients may list a
// patient twice.
type patientList struct {
	f    *os.File
	w    *bufio.Writer
	held map[string]bool
}

func newPatientList(file string) (*patientList, error) {
	f, err := os.Create(file + patientsSuffix)
	if err != nil {
		return nil, err
	}
	return &patientList{f: f, w: bufio.NewWriter(f), held: map[string]bool{}}, nil
}

func (l *patientList) add(ids []string) error {
	for _, id := range ids {
		l.held[id] = true
	}
	if len(l.held) < maxHeld {
		return nil
	}
	return l.spill()
}

func (l *patientList) spill() error {
	for id := range l.held {
		l.w.WriteString(id)
		if err := l.w.WriteByte('\n'); err != nil {
			return fmt.Errorf("patients of %s: %w", l.f.Name(), err)
		}
	}
	clear(l.held)
	return nil
}

// close writes what is held and closes the sidecar.
func (l *patientList) close() error {
	if err := l.spill(); err != nil {
		return err
	}
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("patients of %s: %w", l.f.Name(), err)
	}
	return l.f.Close()
}

// waitForWrites waits until Settle has passed since the job's
// transaction time, so that every write stamped before it has committed
// or failed (see Config.Settle), or until ctx ends.
func (e *Exporter) waitForWrites(ctx context.Context, j *job) error {
	wait := e.cfg.Settle - e.cfg.Now().Sub(j.TransactionTime)
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// asOf returns the version of v current at the job's transaction time,
// or nil when there was none or it is older than _since.
func (e *Exporter) asOf(ctx context.Context, v *store.Version, j *job) (*store.Version, error) {
	v, err := e.versionAt(ctx, v, j.TransactionTime)
	if err != nil || v == nil || v.Deleted || (!j.Since.IsZero() && v.LastUpdated.Before(j.Since)) {
		return nil, err
	}
	return v, nil
}

// versionAt returns the version of v's resource current at instant at,
// or nil when the resource was created after at. One read of its history
// finds it, however many versions were written since: a busy resource is
// not read back a version at a time.
func (e *Exporter) versionAt(ctx context.Context, v *store.Version, at time.Time) (*store.Version, error) {
	if !v.LastUpdated.After(at) {
		return v, nil
	}
	if v.VersionID <= 1 {
		return nil, nil
	}
	// The versions current at some point of at's millisecond, the
	// precision of lastUpdated, newest first: the first is current at at.
	at = at.Truncate(time.Millisecond)
	q := store.HistoryQuery{Type: v.Type, ID: v.ID, AtLow: at, AtHigh: at.Add(time.Millisecond), Count: 1}
	page, err := e.store().(versionReader).History(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("%s/%s as of %s: %w", v.Type, v.ID, at.Format(time.RFC3339Nano), err)
	}
	if len(page.Versions) == 0 {
		return nil, nil // created after at, or that version is out of reach
	}
	return page.Versions[0], nil
}

// index returns the search values of version v.
func (e *Exporter) index(v *store.Version) (*store.Index, error) {
	ix, err := e.cfg.Index(v.Type, v.JSON)
	if err != nil {
		return nil, fmt.Errorf("index %s/%s version %d: %w", v.Type, v.ID, v.VersionID, err)
	}
	return &ix, nil
}

// matches reports whether version v, of search values ix, meets every
// clause of where that can be decided from v alone, returning those that
// cannot: a clause that needs other resources (a chain, _has). The first
// pass takes them as the engine found them for the current version,
// holding.
func matches(v *store.Version, ix *store.Index, where []store.Clause) (bool, []store.Clause) {
	var undecided []store.Clause
	for i := range where {
		match, ok := store.Match(&where[i], v.ID, v.LastUpdated, ix)
		if !ok {
			undecided = append(undecided, where[i])
		} else if !match {
			return false, nil
		}
	}
	return true, undecided
}

// queries returns the searches whose union is what the job exports of
// typ: one per _typeFilter of typ (or one for all), narrowed at the
// Patient level to the compartments of all Patients (what refers to some
// Patient through the compartment's parameters, and every Patient), and
// for a Group to its members' in groups of them.
func (e *Exporter) queries(j *job, typ string, members []string) ([]store.Query, error) {
	var filters [][]store.Clause
	for _, f := range j.TypeFilters {
		t, q, _ := strings.Cut(f, "?")
		if t != typ {
			continue
		}
		params, err := url.ParseQuery(q)
		if err != nil {
			return nil, err
		}
		plan, err := e.cfg.Registry.Parse(typ, params, e.filterOptions())
		if err != nil {
			return nil, err
		}
		filters = append(filters, plan.Query.Where)
	}
	if len(filters) == 0 {
		filters = [][]store.Clause{nil}
	}
	var since []store.Clause
	if !j.Since.IsZero() {
		// Only what changed since is read: a resource last updated before
		// _since has no version to export (see asOf), and an export every
		// few minutes would otherwise read the whole type each time. The
		// millisecond of _since is the precision of lastUpdated.
		at := j.Since.UTC().Truncate(time.Millisecond).Format("2006-01-02T15:04:05.000Z")
		plan, err := e.cfg.Registry.Parse(typ, url.Values{"_lastUpdated": {"ge" + at}}, search.Options{Strict: true})
		if err != nil {
			return nil, fmt.Errorf("_since: %w", err)
		}
		since = plan.Query.Where
	}
	var out []store.Query
	for _, where := range filters {
		where = append(slices.Clip(where), since...)
		if j.Level == "patient" && typ != "Patient" {
			c, ok := e.cfg.Registry.AnyCompartment(typ)
			if !ok {
				return nil, fmt.Errorf("%s is not in the Patient compartment", typ)
			}
			where = append(slices.Clip(where), c)
		}
		if j.Group == "" {
			out = append(out, store.Query{Type: typ, Where: where})
			continue
		}
		for start := 0; start < len(members); start += 100 {
			chunk := members[start:min(start+100, len(members))]
			var any []store.Clause
			for _, pid := range chunk {
				if typ == "Patient" {
					any = append(any, store.Clause{Param: "_id", Tokens: []store.TokenMatch{{AnySystem: true, Code: pid}}})
				} else if c, ok := e.cfg.Registry.Compartment(typ, pid); ok {
					any = append(any, c)
				}
			}
			if len(any) == 0 {
				continue
			}
			w := append(append([]store.Clause(nil), where...), store.Clause{Any: any})
			out = append(out, store.Query{Type: typ, Where: w})
		}
	}
	return out, nil
}

func (e *Exporter) store() interface {
	Read(ctx context.Context, typ, id string) (*store.Version, error)
	Find(ctx context.Context, q store.Query) (*store.Page, error)
} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st
}
