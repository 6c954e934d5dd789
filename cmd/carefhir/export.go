package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// exportConfig is the configuration of the export subcommand.
type exportConfig struct {
	transferConfig
	Format       string `flag:"format" validate:"oneof=bundle csv gpconnect-appointment"`
	Patient      string `flag:"patient"`
	Since        string `flag:"since" validate:"omitempty,datetime=2006-01-02"`
	Appointment  string `flag:"appointment"`
	Provider     string `flag:"provider"`
	Organization string `flag:"organization"`
	BaseURL      string `flag:"base-url" validate:"omitempty,base_url"`
}

// defaultExportBase is the base of a local store's export when --base-url
// is not given: the one serve answers with its default --addr.
const defaultExportBase = "http://127.0.0.1:8080/fhir"

func parseExportConfig(args []string, getenv func(string) string, stderr io.Writer) (*exportConfig, error) {
	cfg := &exportConfig{}
	fs := newFlagSet("carefhir export",
		"Writes on stdout what $export-gp answers: a patient's care record as a collection Bundle or coded-entries CSV,\n"+
			"or an Appointment as a GP Connect booking request.", stderr)
	cfg.flags(fs)
	fs.StringVar(&cfg.Format, "format", "bundle", "`format`: bundle, csv or gpconnect-appointment")
	fs.StringVar(&cfg.Patient, "patient", "", "`id` of the Patient whose record is exported (bundle, csv)")
	fs.StringVar(&cfg.Since, "since", "", "export the records of every patient whose care record changed on or after this `date` (YYYY-MM-DD) instead of one patient's (bundle, csv)")
	fs.StringVar(&cfg.Appointment, "appointment", "", "`id` of the Appointment to book (gpconnect-appointment)")
	fs.StringVar(&cfg.Provider, "provider", "", "FHIR base `URL` of the GP Connect provider the appointment is booked with")
	fs.StringVar(&cfg.Organization, "organization", "", "ODS `code` of the booking organisation")
	fs.StringVar(&cfg.BaseURL, "base-url", defaultExportBase, "public FHIR base `URL` of the local store's server, which the exported entries' fullUrls start with (a server's export names its own)")
	if err := parseFlags(fs, args, getenv, cfg); err != nil {
		return nil, err
	}
	if err := refuseTwoStores(fs); err != nil {
		return nil, err
	}
	// CAREFHIR_BASE_URL, serve's, yields to --url without a word.
	if err := refuseOverridden(fs, "base-url", "url", "do not go together: --base-url is for an export of a local store, one from a server is under its own base"); err != nil {
		return nil, err
	}
	if cfg.Format == "gpconnect-appointment" && cfg.Appointment == "" || cfg.Format != "gpconnect-appointment" && (cfg.Patient == "") == (cfg.Since == "") {
		return nil, &usageError{err: errors.New("export: name --patient or --since (bundle, csv), or --appointment (gpconnect-appointment)")}
	}
	if cfg.Format == "gpconnect-appointment" {
		// A booking is made with a provider, for an organisation.
		for _, name := range []string{"provider", "organization"} {
			if fs.Lookup(name).Value.String() == "" {
				return nil, &usageError{err: fmt.Errorf("export: --format gpconnect-appointment needs --%s", name)}
			}
		}
	}
	return cfg, nil
}

// exportRecords writes what $export-gp answers on stdout, and on stderr
// the patients an export --since leaves out.
func exportRecords(ctx context.Context, cfg *exportConfig, factories map[string]engineFactory, stdout, stderr io.Writer) error {
	if cfg.URL == "" && cfg.MongoURI == "" {
		if err := requireDatabase(cfg.DataDir); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	cfg.base = cfg.BaseURL
	client, base, closeFn, err := cfg.client(ctx, factories)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer closeFn()
	if cfg.Since != "" {
		return exportSince(ctx, client, base, cfg, stdout, stderr)
	}
	target := base + "/Patient/" + url.PathEscape(cfg.Patient) + "/$export-gp?format=" + cfg.Format
	if cfg.Format == "gpconnect-appointment" {
		q := url.Values{"format": {"gpconnect"}, "provider": {cfg.Provider}, "organization": {cfg.Organization}}
		target = base + "/Appointment/" + url.PathEscape(cfg.Appointment) + "/$export-gp?" + q.Encode()
	}
	body, err := get(ctx, client, target, cfg.Token)
	if err != nil {
		return err
	}
	_, err = stdout.Write(body)
	return err
}

// get answers a GET of target, or the refusal as an error.
func get(ctx context.Context, client *http.Client, target, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, &refusedError{status: resp.StatusCode, body: msg}
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return body, nil
}

// refusedError is a request the server answered with a status other
// than 200.
type refusedError struct {
	status int
	body   []byte // the start of the answer, an OperationOutcome
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("export: refused (%d): %s", e.status, e.body)
}

// careRecordTypes are the types of a care-coordination record, whose
// changes since a date select the patients exported (see $export-gp).
var careRecordTypes = []string{"Patient", "CarePlan", "Goal", "CareTeam", "Appointment", "Observation", "QuestionnaireResponse", "Task"}

// patientRef returns what finds the patients a resource of the care
// record refers to: by a relative reference, or by an absolute one under
// base, the server's, which names a Patient held there too.
func patientRef(base string) *regexp.Regexp {
	return regexp.MustCompile(`"reference"\s*:\s*"(?:` + regexp.QuoteMeta(base) + `/)?Patient/([A-Za-z0-9\-.]{1,64})"`)
}

// exportSince writes the records of every patient whose care record
// changed on or after cfg.Since, in patient id order: one collection
// Bundle of them all, or one CSV with one header. A patient whose record
// the server refuses to give (see skippable) is left out, named on stderr
// with the refusal, and the export, otherwise whole, ends in an error.
func exportSince(ctx context.Context, client *http.Client, base string, cfg *exportConfig, stdout, stderr io.Writer) error {
	patients := map[string]bool{}
	refs := patientRef(base)
	for _, typ := range careRecordTypes {
		next := base + "/" + typ + "?" + url.Values{"_lastUpdated": {"ge" + cfg.Since}, "_count": {"500"}}.Encode()
		for next != "" {
			body, err := get(ctx, client, next, cfg.Token)
			if err != nil {
				return err
			}
			var page struct {
				Link  []struct{ Relation, URL string }
				Entry []struct {
					Resource struct{ ResourceType, ID string }
				}
			}
			if err := json.Unmarshal(body, &page); err != nil {
				return fmt.Errorf("export: a search of %s: %w", typ, err)
			}
			for _, e := range page.Entry {
				if e.Resource.ResourceType == "Patient" {
					patients[e.Resource.ID] = true
				}
			}
			for _, m := range refs.FindAllSubmatch(body, -1) {
				patients[string(m[1])] = true
			}
			next = ""
			for _, l := range page.Link {
				if l.Relation == "next" {
					next = l.URL
				}
			}
		}
	}
	bundle := &bundleWriter{w: bufio.NewWriter(stdout)}
	headerDone := false
	// A resource in the records of several patients (an Appointment they
	// share) is given once: R4 wants each fullUrl of a Bundle once (bdl-7).
	given := map[string]bool{}
	var left []string // the patients whose records were refused
	for _, id := range slices.Sorted(maps.Keys(patients)) {
		body, err := get(ctx, client, base+"/Patient/"+url.PathEscape(id)+"/$export-gp?format="+cfg.Format, cfg.Token)
		var refused *refusedError
		if errors.As(err, &refused) && (refused.status == http.StatusGone || refused.status == http.StatusNotFound) {
			// A record changed since refers to a patient deleted, or never
			// held: there is no record of theirs to give a GP system.
			continue
		}
		if skippable(err) {
			fmt.Fprintf(stderr, "export: Patient/%s left out: %v\n", id, err)
			left = append(left, "Patient/"+id)
			continue
		}
		if err != nil {
			return fmt.Errorf("%w (Patient/%s)", err, id)
		}
		if cfg.Format == "csv" {
			// Every patient's CSV starts with the same header line.
			if headerDone {
				if _, rest, ok := bytes.Cut(body, []byte("\n")); ok {
					body = rest
				} else {
					body = nil
				}
			}
			headerDone = true
			if _, err := stdout.Write(body); err != nil {
				return err
			}
			continue
		}
		var one struct{ Entry []*collectionEntry }
		if err := json.Unmarshal(body, &one); err != nil {
			return fmt.Errorf("export: Patient/%s: %w", id, err)
		}
		for _, e := range one.Entry {
			if !given[e.FullURL] {
				given[e.FullURL] = true
				if err := bundle.add(e); err != nil {
					return fmt.Errorf("export: Patient/%s: %w", id, err)
				}
			}
		}
		// Each patient's record goes out as it comes, not held until
		// the Bundle is whole.
		if err := bundle.w.Flush(); err != nil {
			return err
		}
	}
	if cfg.Format != "csv" {
		if err := bundle.close(); err != nil {
			return err
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("export: the records of %d of %d patients were refused and left out: %s",
			len(left), len(patients), strings.Join(left, ", "))
	}
	return nil
}

// skippable reports whether err is the server's refusal of one patient's
// record, which an export of many leaves out: the record cannot be given
// in the format (422, such as a CSV of a patient with no NHS number), or
// the token may not read it (403). Any other failure (the token refused,
// the server failing or not answering) would refuse every patient alike,
// and stops the export.
func skippable(err error) bool {
	var refused *refusedError
	return errors.As(err, &refused) && (refused.status == http.StatusUnprocessableEntity || refused.status == http.StatusForbidden)
}

// collectionEntry is an entry of the collection Bundle $export-gp
// answers, decoded once for its fullUrl and written out as it came. R4
// lets a collection's entry hold no search, request or response (bdl-2,
// bdl-3, bdl-4), and $export-gp gives none of its other members.
type collectionEntry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
}

// bundleWriter writes a collection Bundle entry by entry, in the bytes
// encoding/json gives the whole Bundle: compact, with <, > and & escaped,
// an entry member only when there is an entry (FHIR JSON has no null, nor
// an empty array), and a newline. Nothing is written before the first
// entry or close.
type bundleWriter struct {
	w       *bufio.Writer
	entries int
}

const bundleStart = `{"resourceType":"Bundle","type":"collection"`

// add writes entry, one of the Bundle.
func (b *bundleWriter) add(entry *collectionEntry) error {
	enc, err := json.Marshal(entry)
	if err != nil {
		return err
	}
	if b.entries == 0 {
		b.w.WriteString(bundleStart + `,"entry":[`)
	} else {
		b.w.WriteByte(',')
	}
	b.entries++
	_, err = b.w.Write(enc)
	return err
}

// close ends the Bundle and flushes it.
func (b *bundleWriter) close() error {
	if b.entries == 0 {
		b.w.WriteString(bundleStart)
	} else {
		b.w.WriteByte(']')
	}
	b.w.WriteString("}\n")
	return b.w.Flush()
}
