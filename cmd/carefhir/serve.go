package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"carefhir/care"
	"carefhir/profiles"
	"carefhir/profiles/conformance"
	"carefhir/server"
)

// envMongoURI names the environment variable that --mongo-uri defaults to.
const envMongoURI = "CAREFHIR_MONGO_URI"

// serveConfig is the configuration of the serve subcommand. The flag tags
// name the command-line flags; validate tags check the parsed values.
type serveConfig struct {
	Addr            string        `flag:"addr" validate:"required,listen_addr"`
	DataDir         string        `flag:"data" validate:"required_without=MongoURI"`
	MongoURI        string        `flag:"mongo-uri" validate:"omitempty,mongo_uri"`
	BaseURL         string        `flag:"base-url" validate:"omitempty,http_url"`
	MaxBody         byteSize      `flag:"max-body" validate:"gt=0"`
	ShutdownTimeout time.Duration `flag:"shutdown-timeout" validate:"gt=0"`
	LogFormat       string        `flag:"log-format" validate:"oneof=text json"`
	LogLevel        string        `flag:"log-level" validate:"oneof=debug info warn error"`
	Validate        bool          `flag:"validate"`
	// RequiredProfiles are checked by validation, so they need Validate.
	RequiredProfiles profileRequirements `flag:"require-profile" validate:"excluded_unless=Validate true,dive,keys,alpha,endkeys,dive,http_url"`
	Care             careFlags
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
		MongoURI:        getenv(envMongoURI),
		MaxBody:         10 << 20,
		ShutdownTimeout: 15 * time.Second,
		LogFormat:       "text",
		LogLevel:        "info",
		Validate:        true,
	}
	fs := newFlagSet("carefhir serve", "Serves the FHIR R4 API under /fhir.", stderr)
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "TCP `host:port` to listen on; port 0 picks a free port")
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "`directory` of the embedded SQLite engine")
	fs.StringVar(&cfg.MongoURI, "mongo-uri", cfg.MongoURI, "MongoDB `URI`; when set, MongoDB is used instead of SQLite (default $"+envMongoURI+")")
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
	if err := parseFlags(fs, args, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
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
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve opens the configured storage engine from factories and serves the
// FHIR API until ctx is done, then shuts down gracefully and closes the
// store.
func serve(ctx context.Context, cfg *serveConfig, factories map[string]engineFactory, logger *slog.Logger, version string) (err error) {
	name := cfg.engine()
	open, ok := factories[name]
	if !ok {
		return fmt.Errorf("serve: no %s engine in this build", name)
	}
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

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	baseURL := cfg.BaseURL
	if tcp, ok := ln.Addr().(*net.TCPAddr); baseURL == "" && ok && !tcp.IP.IsUnspecified() {
		// From the listener, so that port 0 yields the port really chosen.
		// On a wildcard address (0.0.0.0, as in the container) no address is
		// the public one, so the server derives links from each request's Host.
		baseURL = "http://" + ln.Addr().String() + "/fhir"
	}
	co, err := loadCare(cfg.Care)
	if err != nil {
		ln.Close()
		return fmt.Errorf("serve: %w", err)
	}
	careDefs, err := co.Definitions()
	if err != nil {
		ln.Close()
		return fmt.Errorf("serve: %w", err)
	}
	validator, err := profiles.New(profiles.Options{Resources: careDefs})
	if err != nil {
		return fmt.Errorf("serve: load the conformance definitions: %w", err)
	}
	if err := checkRequiredProfiles(validator, cfg.RequiredProfiles); err != nil {
		ln.Close()
		return err
	}
	definitions, err := conformance.Load()
	if err == nil {
		definitions, err = definitions.With(careDefs...)
	}
	if err != nil {
		ln.Close()
		return fmt.Errorf("serve: %w", err)
	}
	h := server.New(server.Config{
		Store:            st,
		BaseURL:          baseURL,
		MaxBodyBytes:     int64(cfg.MaxBody),
		Logger:           logger,
		SoftwareVersion:  version,
		Validator:        validator,
		ValidateWrites:   cfg.Validate,
		RequiredProfiles: cfg.RequiredProfiles,
		Definitions:      definitions,
		Operations:       co.Operations(),
		Hooks:            co.Hooks(),
		Background:       runReminders(ctx, co, cfg.Care.RemindersEvery, logger),
	})
	logger.Info("listening", "addr", ln.Addr().String(), "base_url", baseURL, "engine", name,
		"data", dataAttr(cfg), "max_body", int64(cfg.MaxBody), "version", version)
	return serveHTTP(ctx, ln, newHTTPServer(h, logger), cfg.ShutdownTimeout, logger)
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
	go func() { errc <- srv.Serve(ln) }()
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
