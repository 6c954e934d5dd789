package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"carefhir/bulk"
	"carefhir/care"
	"carefhir/mappers/importop"
	"carefhir/notify"
	"carefhir/operation"
	"carefhir/profiles"
	"carefhir/server"
	"carefhir/server/access"
	"carefhir/store/sqlite"
)

// transferConfig is what import and export share: where the records are,
// a running server or a local store.
type transferConfig struct {
	URL      string `flag:"url" validate:"omitempty,http_url"`
	Token    string `flag:"token"`
	DataDir  string `flag:"data"`
	MongoURI string `flag:"mongo-uri" validate:"omitempty,mongo_uri"`
	// Sync is --sync of the local SQLite store, which only import sets.
	Sync string `flag:"sync" validate:"omitempty,oneof=full normal"`
	// ResponseTimeout is how long to wait, once a request is sent to URL,
	// for the answer to begin.
	ResponseTimeout time.Duration `flag:"response-timeout" validate:"gt=0"`
	// base is the public base of the server built on a local store, which
	// the links it answers start with; empty, http://local/fhir. Export
	// sets it, for the fullUrls of the record.
	base string
}

func (t *transferConfig) flags(fs interface {
	StringVar(*string, string, string, string)
	DurationVar(*time.Duration, string, time.Duration, string)
}) {
	fs.StringVar(&t.URL, "url", "", "FHIR base `URL` of a running server; unset, the local store of --data or --mongo-uri is used")
	fs.StringVar(&t.Token, "token", "", "bearer `token` sent to --url")
	fs.DurationVar(&t.ResponseTimeout, "response-timeout", defaultResponseTimeout, "how long to wait for --url to begin its answer to a request, once sent")
	fs.StringVar(&t.DataDir, "data", "./data", "`directory` of the embedded SQLite engine")
	fs.StringVar(&t.MongoURI, "mongo-uri", "", "MongoDB `URI`; when set, MongoDB is used instead of SQLite")
}

// refuseTwoStores refuses an import or export command line naming two
// places for the records: --url wins over --mongo-uri, which wins over
// --data.
func refuseTwoStores(fs *flag.FlagSet) error {
	for _, pair := range [][2]string{{"data", "url"}, {"mongo-uri", "url"}, {"data", "mongo-uri"}} {
		if err := refuseOverridden(fs, pair[0], pair[1], twoStores); err != nil {
			return err
		}
	}
	return nil
}

// importConfig is the configuration of the import subcommand.
type importConfig struct {
	transferConfig
	Format  string `flag:"format" validate:"oneof=gpconnect pds csv hl7v2 ndjson"`
	Mapping string `flag:"mapping"`
	// Provider is the FHIR base URL of the GP Connect provider that
	// answered the files (format gpconnect).
	Provider string `flag:"provider"`
	// NHSNumber is the NHS number the PDS retrieve answered by the file
	// asked for (format pds, one file).
	NHSNumber string `flag:"nhs-number"`
	// Batch is how many resources one batch Bundle of an NDJSON import
	// carries.
	Batch int `flag:"batch" validate:"gte=0"`
	files []string
}

func parseImportConfig(args []string, getenv func(string) string, stderr io.Writer) (*importConfig, error) {
	cfg := &importConfig{}
	fs := newFlagSet("carefhir import",
		"Imports records from GP systems (files after the flags) as $import does: each file is one transaction.\n"+
			"With --format ndjson, loads NDJSON files (such as a bulk export of another server) in batch\n"+
			"Bundles, keeping each resource's id.", stderr)
	cfg.flags(fs)
	fs.StringVar(&cfg.Format, "format", "", "`format` of the files: gpconnect, pds, csv, hl7v2 or ndjson (one resource a line)")
	fs.IntVar(&cfg.Batch, "batch", 500, "with --format ndjson, resources per batch Bundle")
	cfg.Sync = syncNormal
	addSyncFlag(fs, &cfg.Sync)
	fs.StringVar(&cfg.Mapping, "mapping", "", "CSV mapping `file` (YAML or JSON), or the name of a built-in layout such as emis-patient-list or systmone-patient-list")
	fs.StringVar(&cfg.Provider, "provider", "", "with --format gpconnect, FHIR base `URL` of the GP Connect provider that answered the files: their ids there are kept, for bookings with it")
	fs.StringVar(&cfg.NHSNumber, "nhs-number", "", "with --format pds and one file, the `NHS number` the retrieve it answers asked for: when PDS answered another, which superseded it, the record of this one is made inactive and replaced by it")
	files, err := parseFlagsArgs(fs, args, getenv, cfg)
	if err != nil {
		return nil, err
	}
	if err := refuseTwoStores(fs); err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, &usageError{err: errors.New("import: name at least one file")}
	}
	if cfg.Format == "csv" && cfg.Mapping == "" {
		return nil, &usageError{err: errors.New("import: --format csv needs --mapping")}
	}
	if cfg.NHSNumber != "" && (cfg.Format != "pds" || len(files) != 1) {
		return nil, &usageError{err: errors.New("import: --nhs-number goes with --format pds and one file, the answer to a retrieve of that number")}
	}
	cfg.files = files
	return cfg, nil
}

// importFiles imports each file through the $import operation of the
// server at cfg.URL, or of a server built in-process on the local store.
func importFiles(ctx context.Context, cfg *importConfig, factories map[string]engineFactory, stdout, stderr io.Writer) error {
	// Every file is opened before the store: a mistyped name would
	// otherwise stop the command once the files before it had loaded,
	// after making a database in a directory that held none.
	for _, name := range cfg.files {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		f.Close()
	}
	client, base, closeFn, err := cfg.client(ctx, factories)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer closeFn()
	if cfg.Format == "ndjson" {
		return importNDJSON(ctx, client, base, cfg, stdout)
	}
	q := url.Values{"format": {cfg.Format}}
	if cfg.Mapping != "" {
		// A mapping file is sent as its text; anything else names a
		// built-in layout.
		mapping := cfg.Mapping
		if text, err := os.ReadFile(cfg.Mapping); err == nil {
			mapping = string(text)
		}
		q.Set("mapping", mapping)
	}
	if cfg.Provider != "" {
		q.Set("provider", cfg.Provider)
	}
	if cfg.NHSNumber != "" {
		q.Set("nhsNumber", cfg.NHSNumber)
	}
	for _, name := range cfg.files {
		if err := importFile(ctx, client, base+"/$import?"+q.Encode(), cfg, name, stdout, stderr); err != nil {
			return err
		}
	}
	return nil
}

// importNDJSON loads the files in batch Bundles of PUTs and reports what
// was loaded and refused; any refusal fails the command, after the rest
// has loaded. A file that stops the import (one that cannot be read, or
// an interruption) fails it once what was loaded before is reported.
func importNDJSON(ctx context.Context, client *http.Client, base string, cfg *importConfig, stdout io.Writer) error {
	im := &bulk.Importer{BaseURL: base, Token: cfg.Token, Client: client, Batch: cfg.Batch}
	var res bulk.ImportResult
	var stopped error
	for _, name := range cfg.files {
		if stopped = importNDJSONFile(ctx, im, name, &res); stopped != nil {
			break
		}
	}
	fmt.Fprintf(stdout, "loaded %d resources\n", res.Loaded)
	for _, f := range res.Failed {
		fmt.Fprintln(stdout, "refused", f)
	}
	if stopped != nil {
		return stopped
	}
	if len(res.Failed) > 0 {
		return fmt.Errorf("import: %d resources refused", len(res.Failed))
	}
	return nil
}

// importNDJSONFile loads the file name with im into res.
func importNDJSONFile(ctx context.Context, im *bulk.Importer, name string, res *bulk.ImportResult) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	if err := im.Import(ctx, filepath.Base(name), f, res); err != nil {
		return fmt.Errorf("import %s: %w", name, err)
	}
	return nil
}

var contentTypes = map[string]string{
	"gpconnect": "application/fhir+json",
	"pds":       "application/fhir+json",
	"csv":       "text/csv",
	"hl7v2":     importop.HL7v2MediaType,
}

func importFile(ctx context.Context, client *http.Client, target string, cfg *importConfig, name string, stdout, stderr io.Writer) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	var body io.Reader = f
	if bar := newBar(stderr, fi.Size(), filepath.Base(name)); bar != nil {
		body = io.TeeReader(f, bar)
		defer bar.Finish()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, body)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	req.ContentLength = fi.Size()
	req.Header.Set("Content-Type", contentTypes[cfg.Format])
	if cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.Token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("import %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		text, err := refusalText(resp.Body)
		if err != nil {
			return fmt.Errorf("import %s: reading the refusal (%d): %w", name, resp.StatusCode, err)
		}
		return fmt.Errorf("import %s: refused (%d): %s", name, resp.StatusCode, text)
	}
	// The report is copied as it comes: that of a large file is large.
	fmt.Fprintf(stdout, "%s: ", name)
	if _, err := io.Copy(stdout, &crToLF{r: resp.Body}); err != nil {
		return fmt.Errorf("import %s: reading the report: %w", name, err)
	}
	_, err = fmt.Fprintln(stdout)
	return err
}

// maxRefusal bounds the refusal of an import read: it names every bad
// row of a batch, each with the value refused, which comes to megabytes
// when the values are long; a server's answer past this is no refusal
// anyone reads whole.
const maxRefusal = 64 << 20

// refusalText returns the refusal of an import as the user reads it: an
// OperationOutcome as its issues, one a line; anything else (an HL7 v2
// acknowledgement, a proxy's page) as it is, each CR a line feed. A
// refusal longer than maxRefusal is shown as far as read, saying that
// it was cut, as the rest of it is not.
func refusalText(body io.Reader) (string, error) {
	out, err := io.ReadAll(io.LimitReader(body, maxRefusal+1))
	if err != nil {
		return "", err
	}
	if len(out) > maxRefusal {
		return strings.ReplaceAll(string(out[:maxRefusal]), "\r", "\n") +
			fmt.Sprintf("\n(cut: the refusal is longer than the %d MiB shown)", maxRefusal>>20), nil
	}
	var oo struct {
		ResourceType string
		Issue        []struct {
			Severity, Code, Diagnostics string
			Details                     struct{ Text string }
			Expression                  []string
		}
	}
	if json.Unmarshal(out, &oo) != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		return strings.ReplaceAll(string(out), "\r", "\n"), nil
	}
	var b strings.Builder
	if len(oo.Issue) == 1 {
		b.WriteString("1 issue")
	} else {
		fmt.Fprintf(&b, "%d issues", len(oo.Issue))
	}
	for _, is := range oo.Issue {
		text := cmp.Or(is.Diagnostics, is.Details.Text)
		if text == "" {
			text = strings.Join(is.Expression, ", ")
		}
		fmt.Fprintf(&b, "\n%s (%s): %s", is.Severity, is.Code, text)
	}
	return b.String(), nil
}

// crToLF reads r with each CR (the segment ending of an HL7 v2
// acknowledgement) made a line feed, for the terminal.
type crToLF struct{ r io.Reader }

func (c *crToLF) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for i, b := range p[:n] {
		if b == '\r' {
			p[i] = '\n'
		}
	}
	return n, err
}

// localNotifier returns the subscriptions hook of a server built on a
// local store at base; nothing delivers from it.
func localNotifier(base string) (*notify.Notifier, error) {
	ix, err := server.NewIndexer(base, care.SearchParameters()...)
	if err != nil {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	n, err := notify.New(notify.Config{Indexer: ix, BaseURL: base})
	if err != nil {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	return n, nil
}

// newBar returns a progress bar of size bytes on stderr, or nil when
// stderr is not a terminal.
func newBar(stderr io.Writer, size int64, what string) *progressbar.ProgressBar {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return progressbar.DefaultBytes(size, what)
}

// The timeouts of a running server's client (--url). A whole request has
// none: a long export or import that is moving is left to finish.
const (
	// connectTimeout bounds the TCP connection and the TLS handshake.
	connectTimeout = 30 * time.Second
	// defaultResponseTimeout is --response-timeout's default: how long the
	// server may take to begin an answer once the request is sent. The
	// server's own bounds (its request deadline, its write timeout of two
	// minutes) end any request before it.
	defaultResponseTimeout = 5 * time.Minute
)

// remoteClient returns the client of a running server, which gives up on
// a server that does not connect, or does not begin to answer a request
// within responseTimeout of its end, rather than wait for ever.
func remoteClient(responseTimeout time.Duration) *http.Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DialContext = (&net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}).DialContext
	transport.TLSHandshakeTimeout = connectTimeout
	transport.ResponseHeaderTimeout = responseTimeout
	return &http.Client{Transport: transport}
}

// client returns an HTTP client and the FHIR base to send to: cfg.URL, or
// a server built in-process on the local store, acting with the open
// principal as serve does without --auth. closeFn closes the store.
func (t *transferConfig) client(ctx context.Context, factories map[string]engineFactory) (client *http.Client, base string, closeFn func(), err error) {
	if t.URL != "" {
		return remoteClient(t.ResponseTimeout), strings.TrimSuffix(t.URL, "/"), func() {}, nil
	}
	sc := &serveConfig{DataDir: t.DataDir, MongoURI: t.MongoURI, Sync: t.Sync}
	name := sc.engine()
	open, ok := factories[name]
	if !ok {
		return nil, "", nil, fmt.Errorf("no %s engine in this build", name)
	}
	openCtx, cancel := context.WithTimeout(ctx, time.Minute)
	st, err := open(openCtx, sc)
	cancel()
	if errors.Is(err, sqlite.ErrInUse) {
		return nil, "", nil, fmt.Errorf("open %s store: %w: if a server serves it, give its --url", name, err)
	} else if err != nil {
		return nil, "", nil, fmt.Errorf("open %s store: %w", name, err)
	}
	validator, err := profiles.New(profiles.Options{})
	if err != nil {
		st.Close()
		return nil, "", nil, fmt.Errorf("load the conformance definitions: %w", err)
	}
	local := "http://local/fhir"
	if t.base != "" {
		local = strings.TrimSuffix(t.base, "/")
	}
	// What the command writes is matched against the Subscriptions, as
	// through a running server: the notifications wait in the outbox,
	// which the next serve delivers.
	notifier, err := localNotifier(local)
	if err != nil {
		st.Close()
		return nil, "", nil, err
	}
	// What the command reads and writes is in the audit trail, as through
	// a running server.
	auditor := access.NewAuditor(st, access.AuditConfig{Source: "carefhir import/export"})
	h := server.New(server.Config{Store: st, BaseURL: local, Validator: validator, ValidateWrites: true, SearchParameters: care.SearchParameters(),
		MaxBodyBytes: 1 << 40, Operations: (&importop.Importer{}).Operations(), Auditor: auditor,
		Hooks: []operation.Hook{notifier.Hook()}, Attach: []func(operation.Store){notifier.Attach},
		// A large file is one transaction, however long it takes.
		Limits: server.Limits{Deadline: 24 * time.Hour}})
	return &http.Client{Transport: streamTransport{atBase(h, local)}}, local, func() { auditor.Close(); st.Close() }, nil
}

// atBase serves h, which serves the API under /fhir, under the path of
// base, so that the links the server answers (a search's next page) lead
// back to it whatever that path is.
func atBase(h http.Handler, base string) http.Handler {
	u, err := url.Parse(base)
	if err != nil || u.Path == "/fhir" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, u.Path)
		if !ok {
			http.NotFound(w, r)
			return
		}
		r = r.Clone(r.Context())
		r.URL.Path, r.URL.RawPath = "/fhir"+rest, ""
		h.ServeHTTP(w, r)
	})
}
