package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"carefhir/bulk"
	"carefhir/care"
	"carefhir/mappers/importop"
	"carefhir/notify"
	"carefhir/operation"
	"carefhir/ops/health"
	"carefhir/ops/metrics"
	"carefhir/ops/reqlog"
	"carefhir/ops/tracing"
	"carefhir/profiles"
	"carefhir/profiles/conformance"
	"carefhir/server"
	"carefhir/server/access"
	"carefhir/store"
)

// serveConfig is the configuration of the serve subcommand. The flag tags
// name the command-line flags; validate tags check the parsed values.
type serveConfig struct {
	Addr            string        `flag:"addr" validate:"required,listen_addr"`
	DataDir         string        `flag:"data" validate:"required_without=MongoURI"`
	MongoURI        string        `flag:"mongo-uri" validate:"omitempty,mongo_uri"`
	Sync            string        `flag:"sync" validate:"oneof=full normal"`
	BaseURL         string        `flag:"base-url" validate:"omitempty,base_url"`
	MaxBody         byteSize      `flag:"max-body" validate:"gt=0"`
	ShutdownTimeout time.Duration `flag:"shutdown-timeout" validate:"gt=0"`
	LogFormat       string        `flag:"log-format" validate:"oneof=text json"`
	LogLevel        string        `flag:"log-level" validate:"oneof=debug info warn error"`
	Validate        bool          `flag:"validate"`
	// RequiredProfiles are checked by validation, so they need Validate.
	RequiredProfiles profileRequirements `flag:"require-profile" validate:"excluded_unless=Validate true,dive,keys,alpha,endkeys,dive,http_url"`
	// Authentication and hardening (auth.go).
	AuthFile       string        `flag:"auth"`
	InsecureNoAuth bool          `flag:"insecure-no-auth"`
	TLSCert        string        `flag:"tls-cert" validate:"required_with=TLSKey"`
	TLSKey         string        `flag:"tls-key" validate:"required_with=TLSCert"`
	RateLimit      float64       `flag:"rate-limit" validate:"gte=0"`
	RateBurst      int           `flag:"rate-burst" validate:"gte=0"`
	MetricsAddr    string        `flag:"metrics-addr" validate:"omitempty,listen_addr"`
	OTLPEndpoint   string        `flag:"otlp-endpoint" validate:"omitempty,http_url"`
	MLLPAddr       string        `flag:"mllp-addr" validate:"omitempty,listen_addr"`
	ReadyTimeout   time.Duration `flag:"ready-timeout" validate:"gt=0"`
	// Subscriptions (subscriptions.go).
	NotifyAllowHTTP   bool          `flag:"notify-allow-http"`
	NotifyTypes       typeList      `flag:"notify-types"`
	NotifyMaxBackoff  time.Duration `flag:"notify-max-backoff" validate:"gte=0"`
	NotifyErrorAfter  time.Duration `flag:"notify-error-after" validate:"gte=0"`
	NotifyKeepEvents  time.Duration `flag:"notify-keep-events" validate:"gte=0"`
	NotifyMaxPerOwner int           `flag:"notify-max-per-owner" validate:"gte=0"`
	// Bulk export (export.go).
	ExportDir    string        `flag:"export-dir"`
	ExportExpire time.Duration `flag:"export-expire" validate:"gte=0"`

	// metrics and logger, set by serve before the engine opens, receive
	// the engine's measurements and what it did at start-up.
	metrics *metrics.Registry
	logger  *slog.Logger
	// listening, when set, is told the API's address once it listens
	// (bench http serves on port 0); noAudit serves without the audit
	// trail, which only bench http asks for, to measure what it costs;
	// auditing, when set, is given the audit trail's writer (bench http
	// waits for it to write a slice's events, to charge them to it).
	listening func(net.Addr)
	noAudit   bool
	auditing  func(*access.Auditor)
	// Limits bound what one request may cost.
	Limits limitsConfig
	Care   careFlags
}

// engine names the storage engine cfg selects: MongoDB when a URI is given,
// else the embedded SQLite engine.
func (cfg *serveConfig) engine() string {
	if cfg.MongoURI != "" {
		return engineMongo
	}
	return engineSQLite
}

// parseServeConfig parses the serve flags in args, taking defaults from the
// environment through getenv, and validates the result.
func parseServeConfig(args []string, getenv func(string) string, stderr io.Writer) (*serveConfig, error) {
	cfg := &serveConfig{
		Addr:            "127.0.0.1:8080",
		DataDir:         "./data",
		Sync:            syncNormal,
		MaxBody:         10 << 20,
		ShutdownTimeout: 15 * time.Second,
		LogFormat:       "text",
		LogLevel:        "info",
		Validate:        true,
		ReadyTimeout:    health.DefaultTimeout,
		Limits:          defaultLimits(),
	}
	fs := newFlagSet("carefhir serve", "Serves the FHIR R4 API under /fhir, the probes /livez and /readyz, and /metrics.", stderr)
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "TCP `host:port` to listen on; port 0 picks a free port")
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "`directory` of the embedded SQLite engine")
	fs.StringVar(&cfg.MongoURI, "mongo-uri", cfg.MongoURI, "MongoDB `URI`; when set, MongoDB is used instead of SQLite")
	addSyncFlag(fs, &cfg.Sync)
	fs.StringVar(&cfg.BaseURL, "base-url", "", "public FHIR base `URL` used in links and Location headers (default http://<addr>/fhir)")
	fs.Var(&cfg.MaxBody, "max-body", "largest request body accepted, in bytes or with a unit such as 512KiB or 10MiB")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long in-flight requests may take to finish on SIGINT or SIGTERM")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "log `format` on stderr: text or json")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "least `level` logged: debug, info, warn or error")
	fs.BoolVar(&cfg.Validate, "validate", cfg.Validate, "validate every create and update against the R4 definitions and the resource's meta.profile (422 when invalid); $validate is served either way")
	fs.StringVar(&cfg.Care.PAMWording, "pam-wording", "", "`file` of the licensed wording of the 13 PAM statements, one a line (default: neutral placeholders)")
	fs.StringVar(&cfg.Care.PAMCalibration, "pam-calibration", "", "CSV `file` of the licensee's PAM calibration (answered,raw,score), to score responses without the licensed tool's score")
	fs.IntVar(&cfg.Care.PAMMinAnswered, "pam-min-answered", care.DefaultMinAnswered, "fewest PAM statements answered (not N/A) that a calibrated score needs")
	fs.StringVar(&cfg.Care.CareCodes, "care-codes", "", "JSON `file` replacing SNOMED CT codes of care coordination (see docs/care-coordination.md)")
	fs.DurationVar(&cfg.Care.RemindersEvery, "reminders-every", 0, "create the PCSP review and PAM reminder Tasks due this often, such as 1h (default: only through Task/$generate-reminders)")
	fs.Var(&cfg.RequiredProfiles, "require-profile", "`Type=URL`: every resource of Type must conform to the bundled profile URL, such as Patient=https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient (422 otherwise); repeatable; needs --validate")
	fs.StringVar(&cfg.AuthFile, "auth", "", "auth `file` (YAML or JSON): trusted token issuers, backend-services clients, CORS origins, rate limits; see docs/security.md")
	fs.BoolVar(&cfg.InsecureNoAuth, "insecure-no-auth", false, "serve a non-loopback address without --auth: anyone who can reach it can read and change every record")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate `file` (chain) to serve HTTPS with; needs --tls-key")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key `file` of --tls-cert")
	fs.Float64Var(&cfg.RateLimit, "rate-limit", 0, "requests a second allowed to each client (token client_id or subject, else address); 0: the auth file's rate_limit.per_second, or none")
	fs.IntVar(&cfg.RateBurst, "rate-burst", 0, "requests a client may send at once above --rate-limit (default: the auth file's rate_limit.burst, else one second's worth)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "TCP `host:port` serving /metrics on a listener of its own, such as 127.0.0.1:9090; unset, /metrics is served beside the API")
	fs.StringVar(&cfg.OTLPEndpoint, "otlp-endpoint", "", "OpenTelemetry collector `URL` (OTLP/HTTP, such as http://collector:4318) to send a span of every request to; unset, no tracing")
	fs.StringVar(&cfg.MLLPAddr, "mllp-addr", "", "TCP `host:port` accepting HL7 v2 ADT messages over MLLP, applied as $import?format=hl7v2 does")
	fs.DurationVar(&cfg.ReadyTimeout, "ready-timeout", cfg.ReadyTimeout, "how long each readiness check of /readyz may take before it counts as failed")
	addLimitFlags(fs, &cfg.Limits)
	fs.BoolVar(&cfg.NotifyAllowHTTP, "notify-allow-http", false, "allow Subscription endpoints on plain http beyond loopback")
	fs.Var(&cfg.NotifyTypes, "notify-types", "comma-separated resource `types` Subscriptions may be about (default: every type); writes of other types skip the subscriptions hook")
	fs.DurationVar(&cfg.NotifyMaxBackoff, "notify-max-backoff", 0, "longest wait between two attempts to deliver a notification (0: "+notify.DefaultMaxBackoff.String()+")")
	fs.DurationVar(&cfg.NotifyErrorAfter, "notify-error-after", 0, "how long a Subscription's deliveries may fail before it is set to error (0: "+notify.DefaultErrorAfter.String()+")")
	fs.DurationVar(&cfg.NotifyKeepEvents, "notify-keep-events", 0, "how long the events of a topic-based Subscription are kept for $events, beyond its latest "+fmt.Sprint(notify.DefaultKeepLastEvents)+" (0: "+notify.DefaultKeepEvents.String()+")")
	fs.IntVar(&cfg.NotifyMaxPerOwner, "notify-max-per-owner", 0, "live Subscriptions one owner (the same subject of the same client) may hold (0: "+fmt.Sprint(notify.DefaultMaxPerOwner)+")")
	fs.StringVar(&cfg.ExportDir, "export-dir", "", "`directory` of the files of bulk exports (default: exports in --data)")
	fs.DurationVar(&cfg.ExportExpire, "export-expire", 0, "how long the files of a finished bulk export are kept (0: 1h)")
	if err := parseFlags(fs, args, getenv, cfg); err != nil {
		return nil, err
	}
	if err := refuseSharedAddress(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// refuseSharedAddress refuses two listeners given one address, which the
// second would find taken by the first; port 0, a free port for each,
// may be given to several.
func refuseSharedAddress(cfg *serveConfig) error {
	flags := map[string]string{}
	for _, l := range []struct{ flag, addr string }{{"addr", cfg.Addr}, {"metrics-addr", cfg.MetricsAddr}, {"mllp-addr", cfg.MLLPAddr}} {
		if _, port, _ := net.SplitHostPort(l.addr); l.addr == "" || port == "0" {
			continue
		}
		if other, ok := flags[l.addr]; ok {
			return &usageError{err: fmt.Errorf("serve: --%s and --%s are both %s: give each listener an address of its own", other, l.flag, l.addr)}
		}
		flags[l.addr] = l.flag
	}
	return nil
}

// newLogger returns a structured logger writing to w in the given format
// (text or json) at the given least level.
func newLogger(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	// The TextHandler, which writes the request lines of the API itself.
	return slog.New(reqlog.New(w, opts))
}

// serve opens the configured storage engine from factories and serves the
// FHIR API until ctx is done, then shuts down gracefully and closes the
// store.
func serve(ctx context.Context, cfg *serveConfig, factories map[string]engineFactory, logger *slog.Logger, version string) (err error) {
	if err := checkExposure(cfg, logger); err != nil {
		return err
	}
	tlsCfg, err := tlsConfig(cfg)
	if err != nil {
		return err
	}
	name := cfg.engine()
	open, ok := factories[name]
	if !ok {
		return fmt.Errorf("serve: no %s engine in this build", name)
	}
	// Every listener is bound before the store opens: an address already
	// taken (a second server started by mistake) stops the command before
	// it makes a database in a new --data directory.
	ln, err := listen("addr", cfg.Addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	var mln, mllpLn net.Listener
	if cfg.MetricsAddr != "" {
		if mln, err = listen("metrics-addr", cfg.MetricsAddr); err != nil {
			return err
		}
		defer mln.Close()
	}
	if cfg.MLLPAddr != "" {
		if mllpLn, err = listen("mllp-addr", cfg.MLLPAddr); err != nil {
			return err
		}
		defer mllpLn.Close()
	}
	baseURL := cfg.BaseURL
	if tcp, ok := ln.Addr().(*net.TCPAddr); baseURL == "" && ok && !tcp.IP.IsUnspecified() {
		// From the listener, so that port 0 yields the port really chosen.
		// On a wildcard address (0.0.0.0, as in the container) no address is
		// the public one, so the server derives links from each request's Host.
		baseURL = apiURL(ln, tlsCfg)
	}
	// The files of the configuration are read before the store opens too,
	// so that a mistyped or broken one leaves no new database behind.
	authCfg, err := readAuthFile(cfg, baseURL)
	if err != nil {
		return err
	}
	limit, err := rateLimitOf(cfg, authCfg)
	if err != nil {
		return err
	}
	co, err := loadCare(cfg.Care, baseURL, cfg.Limits.server())
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	careDefs, err := co.Definitions()
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	validator, err := profiles.New(profiles.Options{Resources: careDefs})
	if err != nil {
		return fmt.Errorf("serve: load the conformance definitions: %w", err)
	}
	if err := checkRequiredProfiles(validator, cfg.RequiredProfiles); err != nil {
		return err
	}
	definitions, err := conformance.Load()
	if err == nil {
		definitions, err = withOperationDefinitions(definitions, careDefs)
	}
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	reg := metrics.New()
	cfg.metrics, cfg.logger = reg, logger
	openCtx, cancel := context.WithTimeout(ctx, time.Minute)
	st, err := open(openCtx, cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("serve: open %s store: %w", name, err)
	}
	defer func() {
		if cerr := st.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("serve: close %s store: %w", name, cerr))
			return
		}
		logger.Info("store closed", "engine", name)
	}()
	if name == engineSQLite {
		// A backup to standard output killed before it ended left its
		// snapshot, a copy of the database, in the data directory; with
		// no later backup it would stay there for good.
		removeStaleWork(cfg.DataDir, time.Now(), func(work string, err error) {
			if err != nil {
				logger.Warn("snapshot of a stopped backup not removed", "dir", work, "error", err)
				return
			}
			logger.Info("removed the snapshot of a stopped backup", "dir", work)
		})
	}
	sa, err := loadAuth(ctx, cfg, baseURL, authCfg, st)
	if err != nil {
		return err
	}
	sa.rateLimit = limit
	// The audit trail is written after the server stops serving: Close
	// writes what is queued, before the store closes.
	// The server dates each history before the writes under way, the
	// audit trail's batches among them.
	writes := &store.InFlight{}
	auditCfg := access.AuditConfig{Source: "carefhir " + version, Log: logger, Writes: writes}
	var auditor *access.Auditor
	auditCfg.OnDrop = reg.AuditBuffer(func() int {
		if auditor == nil {
			return 0
		}
		return auditor.Depth()
	}).Inc
	if !cfg.noAudit {
		auditor = access.NewAuditor(st, auditCfg)
		defer auditor.Close()
		if cfg.auditing != nil {
			cfg.auditing(auditor)
		}
	}
	subs, err := startSubscriptions(ctx, cfg, baseURL, sa.reauthorize, auditor, logger)
	if err != nil {
		return err
	}
	defer subs.stop()
	exports, err := startExports(cfg, baseURL, logger)
	if err != nil {
		return err
	}
	defer exports.Close()
	scfg := server.Config{
		Auditor:          auditor,
		Store:            st,
		BaseURL:          baseURL,
		MaxBodyBytes:     int64(cfg.MaxBody),
		Logger:           logger,
		SoftwareVersion:  version,
		Validator:        validator,
		ValidateWrites:   cfg.Validate,
		RequiredProfiles: cfg.RequiredProfiles,
		Definitions:      definitions,
		SearchParameters: care.SearchParameters(),
		Auth:             sa.auth,
		CORSOrigins:      sa.cors,
		RateLimit:        sa.rateLimit,
		AccessPolicy:     sa.policy,
		Limits:           cfg.Limits.server(),
		Writes:           writes,
	}
	if name == engineMongo {
		// Other servers may write to the same database: their writes
		// under way are not seen here.
		scfg.HistorySettle = writeSettle(cfg)
	}
	subs.configure(&scfg)
	configureExports(exports, &scfg)
	scfg.Operations = append(scfg.Operations, co.Operations()...)
	scfg.Operations = append(scfg.Operations, (&importop.Importer{}).Operations()...)
	scfg.Hooks = append(scfg.Hooks, co.Hooks()...)
	if remind := runReminders(ctx, co, cfg.Care.RemindersEvery, auditor, logger); remind != nil {
		scfg.Attach = append(scfg.Attach, remind)
	}
	h := server.New(scfg)
	observeEngine(reg, st)
	reg.ExportJobs(exports.Jobs, exports.Failed)
	checks := []health.Check{storeCheck(st), subs.observe(reg, outboxHighWater)}
	if auditor != nil {
		checks = append(checks, health.QueueBelow("audit", auditor.Capacity()*3/4, auditor.Depth))
	}
	if name == engineMongo {
		check, disconnect, err := mongoPrimaryCheck(cfg.MongoURI)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		defer disconnect()
		checks = append(checks, check)
	}
	mux := http.NewServeMux()
	health.New(checks, cfg.ReadyTimeout, logger).Register(mux)
	metricsURL := "not served"
	if mln != nil {
		metricsURL = "http://" + mln.Addr().String() + "/metrics"
	} else if sa.auth == nil {
		mux.Handle("GET /metrics", reg.Handler())
		mux.HandleFunc("/metrics", getOnly)
		metricsURL = strings.TrimSuffix(apiURL(ln, tlsCfg), "/fhir") + "/metrics"
	} else {
		// Behind authorisation the metrics stay off the API's listener:
		// they are served on --metrics-addr, bound where only the
		// monitoring reaches.
		logger.Warn("metrics not served: with --auth, give --metrics-addr to serve /metrics on a listener of its own")
	}
	instrumented := reg.Instrument(h, "/fhir", server.ServedTypes())
	mux.Handle("/", instrumented)
	var handler http.Handler = apiFirst(mux, instrumented)
	if cfg.OTLPEndpoint != "" {
		tracer, err := tracing.New(ctx, cfg.OTLPEndpoint, version)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		// Spans not yet sent go when the server has stopped serving.
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tracer.Shutdown(sctx); err != nil {
				logger.Warn("tracing: spans not sent at shutdown", "error", err)
			}
		}()
		handler = tracer.Handler(handler, spanName(server.ServedTypes()))
	}
	if mllpLn != nil {
		defer startMLLP(ctx, mllpLn, h, cfg.ShutdownTimeout, logger)()
	}
	logger.Info("listening", "addr", ln.Addr().String(), "base_url", baseURL, "engine", name,
		"data", dataAttr(cfg), "max_body", int64(cfg.MaxBody), "version", version, "auth", sa.auth != nil, "tls", tlsCfg != nil,
		"metrics", metricsURL)
	api := newHTTPServer(handler, logger)
	api.TLSConfig = tlsCfg
	if cfg.listening != nil {
		cfg.listening(ln.Addr())
	}
	if mln == nil {
		return serveHTTP(ctx, ln, api, cfg.ShutdownTimeout, logger)
	}
	// Either listener failing stops both.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	metricsMux := http.NewServeMux()
	metricsMux.Handle("GET /metrics", reg.Handler())
	errc := make(chan error, 1)
	go func() {
		errc <- serveHTTP(ctx, mln, newHTTPServer(metricsMux, logger), cfg.ShutdownTimeout, logger)
		stop()
	}()
	err = serveHTTP(ctx, ln, api, cfg.ShutdownTimeout, logger)
	stop()
	return errors.Join(err, <-errc)
}

// listen listens on the TCP address addr given by --flag.
func listen(flag, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("serve: --%s %s: %w: another process listens there (is a server already running?)", flag, addr, err)
	} else if err != nil {
		return nil, fmt.Errorf("serve: --%s %s: %w", flag, addr, err)
	}
	return ln, nil
}

// getOnly refuses a method other than GET and HEAD of a path served
// beside the API with GET only, which the API's catch-all would answer
// 404.
func getOnly(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, r.Method+" "+r.URL.Path+": method not allowed, use GET or HEAD", http.StatusMethodNotAllowed)
}

// outboxHighWater is the subscription backlog beyond which the server
// reports itself not ready: deliveries are falling far behind the writes.
const outboxHighWater = 10_000

// spanName names the span of a request by its interaction and resource
// type, as the metrics do: never by ids, which belong to no dashboard.
func spanName(types []string) func(method, path string) string {
	return func(method, path string) string {
		interaction, typ := metrics.Classify(method, path, "/fhir")
		if typ != "" && slices.Contains(types, typ) {
			return interaction + " " + typ
		}
		return interaction
	}
}

// apiURL returns the URL of the FHIR API on ln, served over TLS when tlsCfg
// is set.
func apiURL(ln net.Listener, tlsCfg *tls.Config) string {
	if tlsCfg != nil {
		return "https://" + ln.Addr().String() + "/fhir"
	}
	return "http://" + ln.Addr().String() + "/fhir"
}

// dataAttr returns where the configured engine keeps its data, for the
// start-up log line. A MongoDB URI is not logged: it may carry a password.
func dataAttr(cfg *serveConfig) string {
	if cfg.engine() == engineMongo {
		return "mongodb"
	}
	return cfg.DataDir
}

// newHTTPServer returns an http.Server for h whose timeouts bound how long a
// slow or idle client can hold a connection.
func newHTTPServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler: h,
		// Headers are small: a client that trickles them is stalling.
		ReadHeaderTimeout: 10 * time.Second,
		// Bodies may be large (a transaction Bundle up to --max-body), so
		// reading the whole request and writing the response get longer.
		ReadTimeout:    2 * time.Minute,
		WriteTimeout:   2 * time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 1 << 20,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// serveHTTP serves on ln until ctx is done, then stops accepting connections
// and waits up to timeout for in-flight requests to finish. Requests are not
// cancelled by ctx: shutting down lets them complete.
func serveHTTP(ctx context.Context, ln net.Listener, srv *http.Server, timeout time.Duration, logger *slog.Logger) error {
	errc := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			errc <- srv.ServeTLS(ln, "", "") // the certificates are in TLSConfig
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "timeout", timeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if err != nil {
		// Requests still running past the timeout are cut off.
		err = errors.Join(fmt.Errorf("serve: shutdown: %w", err), srv.Close())
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("serve: %w", serr))
	}
	if err == nil {
		logger.Info("stopped")
	}
	return err
}

// withOperationDefinitions returns the bundled definitions with those care
// installs (careDefs) and the OperationDefinitions of the operations served
// besides the server's own (whose R4 definitions are bundled already), so
// that every definition the CapabilityStatement names can be read.
func withOperationDefinitions(c *conformance.Catalogue, careDefs [][]byte) (*conformance.Catalogue, error) {
	defs := slices.Clone(careDefs)
	for _, fsys := range []fs.FS{importop.OperationDefinitions(), bulk.OperationDefinitions(), notify.OperationDefinitions()} {
		d, err := operation.Definitions(fsys)
		if err != nil {
			return nil, err
		}
		defs = append(defs, d...)
	}
	return c.With(defs...)
}

// apiFirst serves a request for a path under /fhir with api itself, as
// mux would, when the path is one mux would not redirect (see cleanPath):
// mux's match, made for its handful of routes, cost each request of the
// API about a microsecond, as much as a read by id does in the store's
// memory. Every other request goes through mux.
func apiFirst(mux *http.ServeMux, api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if (p == "/fhir" || strings.HasPrefix(p, "/fhir/")) && r.Method != http.MethodConnect && cleanPath(p) == p {
			api.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// cleanPath is the path ServeMux serves p as, redirecting a request for p
// there when they differ: path.Clean's, keeping a trailing slash.
func cleanPath(p string) string {
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}
