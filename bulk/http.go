package bulk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"carefhir/ops/cause"
	"carefhir/server/access"
	"carefhir/server/contentcoding"
	"carefhir/store"
)

// Route is one endpoint of the export, for server.Config.Routes.
type Route struct {
	Method, Path string
	Handler      http.Handler
}

// Routes are the status endpoint (GET polls, DELETE cancels) and the
// files of the jobs.
func (e *Exporter) Routes() []Route {
	return []Route{
		{http.MethodGet, "/fhir/$export-status", http.HandlerFunc(e.status)},
		{http.MethodDelete, "/fhir/$export-status", http.HandlerFunc(e.remove)},
		{http.MethodGet, "/fhir/$export-file", http.HandlerFunc(e.file)},
	}
}

// retryAfter is how long a client is asked to wait between polls.
const retryAfter = 2

// ownJob returns the job of the request's _jobId if the request's
// principal started it and it has not expired; else it answers and
// returns nil.
func (e *Exporter) ownJob(w http.ResponseWriter, r *http.Request) (string, *job, int64) {
	e.ensureSettled(r.Context())
	id := r.URL.Query().Get("_jobId")
	p := access.PrincipalFrom(r.Context())
	recs, err := e.records()
	if err != nil {
		cause.Record(r.Context(), fmt.Errorf("bulk: export status: %w", err))
		outcome(w, http.StatusInternalServerError, "exception", "the export is not attached to a store")
		return "", nil, 0
	}
	j, ver, err := readJob(r.Context(), recs, id)
	own := err == nil && p != nil && j.Owner == ownerKey(p)
	if own && e.abandoned(id, j) {
		// Its process stopped since this one settled the jobs left
		// running: failed, not in progress for good.
		j, ver, err = e.fail(r.Context(), recs, id, ver, j)
	}
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && !own):
		// Another principal's job answers as an unknown one.
		outcome(w, http.StatusNotFound, "not-found", "no export job "+strconv.Quote(id))
		return "", nil, 0
	case err != nil:
		cause.Record(r.Context(), fmt.Errorf("bulk: read export job %q: %w", id, err))
		outcome(w, http.StatusInternalServerError, "exception", "the export job could not be read")
		return "", nil, 0
	}
	if e.expired(id, j) {
		e.discard(r.Context(), id, ver)
		outcome(w, http.StatusNotFound, "not-found", "export job "+strconv.Quote(id)+" has expired")
		return "", nil, 0
	}
	return id, j, ver
}

// status answers 202 with progress while a job runs, 200 with the
// manifest once complete, 500 with the reason when it failed (never the
// error that failed it, which the log keeps).
func (e *Exporter) status(w http.ResponseWriter, r *http.Request) {
	id, j, _ := e.ownJob(w, r)
	if j == nil {
		return
	}
	switch j.State {
	case stateRunning:
		w.Header().Set("X-Progress", fmt.Sprintf("%d of %d types exported", j.Done, len(j.Types)))
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
		w.WriteHeader(http.StatusAccepted)
	case stateFailed:
		// The client learns what to do; the request log keeps the cause
		// beside the request id and the job id.
		reason, why := j.failure()
		if why == "" {
			why = reason
		}
		cause.Record(r.Context(), fmt.Errorf("bulk: export job %s failed: %s", id, why))
		outcome(w, http.StatusInternalServerError, "exception", "export job "+id+" failed: "+reason)
	default:
		// When the files are no longer available (the IG), which this
		// process makes true by its own clock, never quoting another's;
		// rounded up to the second of an HTTP date.
		expires := e.removedBy(id, j).Add(time.Second - 1).Truncate(time.Second)
		w.Header().Set("Expires", expires.UTC().Format(http.TimeFormat))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.Encode(e.manifest(r.Context(), id, j))
	}
}

// manifest is the completion manifest of the IG.
type manifest struct {
	TransactionTime     string         `json:"transactionTime"`
	Request             string         `json:"request"`
	RequiresAccessToken bool           `json:"requiresAccessToken"`
	Output              []manifestFile `json:"output"`
	Error               []manifestFile `json:"error"`
	// Deleted lists the file of the resources deleted since _since.
	Deleted []manifestFile `json:"deleted,omitempty"`
}

type manifestFile struct {
	Type  string `json:"type"`
	URL   string `json:"url"`
	Count int    `json:"count,omitempty"`
}

// manifest lists, of the job's output and deleted files, those the
// request's token may download (see mayDownload): a later token of the
// owner allowed less learns neither the URLs nor the counts of the others.
// The error file names no resource and is listed as it is.
func (e *Exporter) manifest(ctx context.Context, id string, j *job) manifest {
	m := manifest{TransactionTime: j.TransactionTime.UTC().Format("2006-01-02T15:04:05.000Z07:00"), Request: j.Request,
		RequiresAccessToken: j.Owner != ownerKey(access.OpenPrincipal("")), Output: []manifestFile{}, Error: []manifestFile{}}
	for _, o := range j.Output {
		if mayDownload(ctx, j, o) != nil {
			continue
		}
		m.Output = append(m.Output, manifestFile{Type: o.Type, URL: e.fileURL(id, o.File), Count: o.Count})
	}
	for _, o := range j.Errors {
		m.Error = append(m.Error, manifestFile{Type: o.Type, URL: e.fileURL(id, o.File), Count: o.Count})
	}
	for _, o := range j.Deleted {
		if mayDownload(ctx, j, o) != nil {
			continue
		}
		m.Deleted = append(m.Deleted, manifestFile{Type: o.Type, URL: e.fileURL(id, o.File), Count: o.Count})
	}
	return m
}

// remove cancels a job and removes its files: 202.
func (e *Exporter) remove(w http.ResponseWriter, r *http.Request) {
	id, j, ver := e.ownJob(w, r)
	if j == nil {
		return
	}
	e.cancel(id)
	e.discard(r.Context(), id, ver)
	w.WriteHeader(http.StatusAccepted)
}

// discard removes a job's record and files.
func (e *Exporter) discard(ctx context.Context, id string, ver int64) {
	if recs, err := e.records(); err == nil {
		if err := removeJob(ctx, recs, id, ver, e.cfg.Now()); err != nil {
			e.cfg.Logger.Warn("bulk: remove job", "job", id, "err", err)
		}
	}
	os.RemoveAll(e.jobDir(id))
}

// file serves one NDJSON file of a complete job.
func (e *Exporter) file(w http.ResponseWriter, r *http.Request) {
	id, j, _ := e.ownJob(w, r)
	if j == nil {
		return
	}
	name := r.URL.Query().Get("file")
	for _, o := range slices.Concat(j.Output, j.Errors, j.Deleted) {
		if o.File == name && j.State == stateComplete {
			if err := mayDownload(r.Context(), j, o); err != nil {
				// RFC 6750 §3.1, as every 403 to a token.
				w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope"`)
				outcome(w, http.StatusForbidden, "forbidden", err.Error())
				return
			}
			f, err := os.Open(filepath.Join(e.jobDir(id), name))
			if err != nil {
				outcome(w, http.StatusNotFound, "not-found", "the file is no longer held by this server")
				return
			}
			defer f.Close()
			if r.Method == http.MethodGet {
				if err := e.disclose(r, id, name); err != nil {
					// Not sent unaudited.
					cause.Record(r.Context(), fmt.Errorf("bulk: audit download of %s of job %s: %w", name, id, err))
					outcome(w, http.StatusInternalServerError, "exception", "the download could not be audited")
					return
				}
			}
			serveFile(w, r, f)
			return
		}
	}
	outcome(w, http.StatusNotFound, "not-found", "export job "+strconv.Quote(id)+" has no file "+strconv.Quote(name))
}

// mayDownload returns why the request's token may not have file o of j,
// or nil. The token is the owner's client's, but may allow less than the
// one that started the job (its registration narrowed, or fewer scopes
// asked for): it must allow the search of each type the file holds as
// far as the job's token did. An output file holds one type; the deleted
// file names resources of every type of the job; the error file says
// only which types were not exported.
func mayDownload(ctx context.Context, j *job, o output) error {
	var types []string
	switch {
	case slices.Contains(j.Output, o):
		types = []string{o.Type}
	case slices.Contains(j.Deleted, o):
		types = j.Types
	}
	had, err := j.Reach.principal()
	if err != nil {
		return err
	}
	p := access.PrincipalFrom(ctx)
	for _, typ := range types {
		if !p.Reaches(had, typ, access.Search) {
			return fmt.Errorf("the file holds %s resources exported under the scopes %q; the access token's scopes %q do not allow the search of all of them",
				typ, had.ScopeString(), p.ScopeString())
		}
	}
	return nil
}

// disclose records, for the request's audit, that it sends file name of
// job id: an AuditEvent for each patient whose records the file holds.
// The list of them is opened before the file is sent, so that a job
// removed just after keeps it readable for the audit trail.
func (e *Exporter) disclose(r *http.Request, id, name string) error {
	rec := access.RecordFrom(r.Context())
	if rec == nil {
		return nil
	}
	patients, err := os.Open(filepath.Join(e.jobDir(id), name+patientsSuffix))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // a file of no patient's records, such as the error file
	}
	if err != nil {
		return fmt.Errorf("the patients of %s: %w", name, err)
	}
	rec.Disclose(access.Disclosure{What: e.fileURL(id, name), Patients: patients})
	return nil
}

// serveFile sends an NDJSON file: gzipped, as it is streamed, to a client
// that accepts gzip and asks for the whole file; as it is otherwise, with
// ranges, so that a client may resume a download it lost. Files of a large
// export are hundreds of megabytes, and NDJSON compresses about tenfold.
func serveFile(w http.ResponseWriter, r *http.Request, f *os.File) {
	h := w.Header()
	h.Set("Content-Type", "application/fhir+ndjson")
	h.Add("Vary", "Accept-Encoding")
	if r.Header.Get("Range") != "" || !contentcoding.AcceptsGzip(r.Header.Get("Accept-Encoding")) {
		http.ServeContent(w, r, "", time.Time{}, f)
		return
	}
	h.Set("Content-Encoding", "gzip")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	zw := contentcoding.NewWriter(w)
	if _, err := io.Copy(zw, f); err != nil {
		// The status is sent. Without the gzip trailer, whose checksum
		// closes the stream, the client knows the file is incomplete.
		return
	}
	zw.Close()
}

// outcome writes an OperationOutcome of one issue.
func outcome(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"resourceType": "OperationOutcome",
		"issue": []map[string]string{{"severity": "error", "code": code, "diagnostics": msg}}})
}
