package bulk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"carefhir/server/access"
	"carefhir/store"
)

// jobType is the engine-level record type of export jobs: not a FHIR
// resource, never served, hooked or audited as one.
const jobType = "BulkExportJob"

// The states of a job.
const (
	stateRunning  = "running"
	stateComplete = "complete"
	stateFailed   = "failed"
)

// job is an export job as recorded.
type job struct {
	State string `json:"state"`
	Owner string `json:"owner"` // who started it (ownerKey)
	// Reach is what the owner's token allowed at the kick-off, which the
	// job read as: a file is sent only to a token allowing as much of
	// its types. Nil for the open principal.
	Reach   *reach `json:"reach,omitempty"`
	Request string `json:"request"`
	// TransactionTime is the instant the export is a snapshot of.
	TransactionTime time.Time `json:"transactionTime"`
	Level           string    `json:"level"` // system, patient or group
	Group           string    `json:"group,omitempty"`
	Types           []string  `json:"types"`
	// Explicit marks types named by _type: one the owner may not read is
	// an error of the manifest, not left out silently.
	Explicit    bool      `json:"explicit,omitempty"`
	TypeFilters []string  `json:"typeFilters,omitempty"`
	Since       time.Time `json:"since,omitzero"`
	// Done counts the types exported so far, of len(Types).
	Done   int      `json:"done"`
	Output []output `json:"output,omitempty"`
	Errors []output `json:"errors,omitempty"`
	// Deleted is the file of the resources deleted since Since.
	Deleted []output `json:"deleted,omitempty"`
	// Reason is why the job failed, as the status tells the client: one
	// of stoppedReason and failedReason. Cause is the error that failed
	// it, which holds internals (file paths, the engine's errors): it is
	// logged, never served.
	Reason string `json:"reason,omitempty"`
	Cause  string `json:"cause,omitempty"`
	// Holder is the process running it, which renews Heartbeat while it
	// runs.
	Holder    string    `json:"holder"`
	Heartbeat time.Time `json:"heartbeat"`
	Finished  time.Time `json:"finished,omitzero"`
	// FinishedBy is the process whose clock dated Finished, when not the
	// Holder: one that failed the job of a stopped process.
	FinishedBy string `json:"finishedBy,omitempty"`
}

// The reasons a failed job gives its client.
const (
	stoppedReason = "the server stopped while the export ran; start it again"
	failedReason  = "the server could not complete the export; start it again, and if it fails again, give the server's operators the job id"
)

// failure is what the status of failed job j answers, and the cause the
// log keeps. A record written before causes were kept apart holds the
// error itself as its reason: that is logged, not served.
func (j *job) failure() (reason, cause string) {
	if j.Reason == stoppedReason || j.Cause != "" {
		return j.Reason, j.Cause
	}
	return failedReason, j.Reason
}

// finisher is the process whose clock dated j.Finished.
func (j *job) finisher() string {
	if j.FinishedBy != "" {
		return j.FinishedBy
	}
	return j.Holder
}

// output is one file of a manifest.
type output struct {
	Type  string `json:"type"`
	File  string `json:"file"`
	Count int    `json:"count"`
}

// ownerKey names a principal for the check that only who started a job
// reads its status and files.
func ownerKey(p *access.Principal) string {
	if p.Open {
		return "open"
	}
	return p.Issuer + "|" + p.Subject + "|" + p.ClientID
}

// reach is the part of a principal that says what it may read.
type reach struct {
	Scopes       string `json:"scopes"`
	Patient      string `json:"patient,omitempty"`
	FHIRUser     string `json:"fhirUser,omitempty"`
	Organization string `json:"organization,omitempty"`
}

func reachOf(p *access.Principal) *reach {
	if p.Open {
		return nil
	}
	return &reach{Scopes: p.ScopeString(), Patient: p.Patient, FHIRUser: p.FHIRUser, Organization: p.Organization}
}

// principal is who started the job as far as what it may read goes: the
// open principal, or one of the scopes recorded.
func (r *reach) principal() (*access.Principal, error) {
	if r == nil {
		return access.OpenPrincipal(""), nil
	}
	scopes, _, err := access.ParseScopes(r.Scopes)
	if err != nil {
		return nil, fmt.Errorf("the scopes of the export: %w", err)
	}
	return &access.Principal{Scopes: scopes, Patient: r.Patient, FHIRUser: r.FHIRUser, Organization: r.Organization}, nil
}

func jobIndex(j *job) store.Index {
	return store.Index{Tokens: []store.Token{{Param: "state", Code: j.State}}}
}

// putJob writes j as id's next version after expected, returning the new
// version.
func putJob(ctx context.Context, w store.Writer, id string, expected int64, j *job, now time.Time) (int64, error) {
	body, err := json.Marshal(j)
	if err != nil {
		return 0, err
	}
	wr := &store.Write{Type: jobType, ID: id, Expected: expected, LastUpdated: now.UTC().Truncate(time.Millisecond), JSON: body, Index: jobIndex(j)}
	if err := w.Put(ctx, wr); err != nil {
		return 0, fmt.Errorf("export job %s: %w", id, err)
	}
	return wr.VersionID(), nil
}

// readJob returns job id and its version; store.ErrNotFound when there is
// none (or it was removed).
func readJob(ctx context.Context, r store.Reader, id string) (*job, int64, error) {
	v, err := r.Read(ctx, jobType, id)
	if err != nil {
		return nil, 0, err
	}
	if v.Deleted {
		return nil, 0, store.ErrNotFound
	}
	var j job
	if err := json.Unmarshal(v.JSON, &j); err != nil {
		return nil, 0, fmt.Errorf("export job %s: %w", id, err)
	}
	return &j, v.VersionID, nil
}

// removeAttempts bounds the reads and removals of a job's record that
// removeJob makes while the job keeps recording more.
const removeAttempts = 10

// removeJob deletes the record of job id, read at version. A running job
// records its progress meanwhile: on a conflict the record is read again
// and deleted at its new version, so that a cancelled job is not left
// recorded as running. One removed already is no error.
func removeJob(ctx context.Context, rw store.Tx, id string, version int64, now time.Time) error {
	for range removeAttempts {
		err := rw.Put(ctx, &store.Write{Type: jobType, ID: id, Expected: version, LastUpdated: now.UTC().Truncate(time.Millisecond), Deleted: true})
		var conflict *store.ConflictError
		if !errors.As(err, &conflict) {
			return err
		}
		_, version, err = readJob(ctx, rw, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return fmt.Errorf("export job %s: changed %d times while it was removed", id, removeAttempts)
}
