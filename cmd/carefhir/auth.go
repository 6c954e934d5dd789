package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"carefhir/server"
	"carefhir/server/access"
	"carefhir/server/auth"
	"carefhir/store"
)

// checkExposure enforces secure-by-default serving: without --auth, only
// a loopback address is served (with a warning), unless the operator says
// --insecure-no-auth.
func checkExposure(cfg *serveConfig, logger *slog.Logger) error {
	if cfg.MLLPAddr != "" && !isLoopback(cfg.MLLPAddr) {
		// MLLP has no authentication of its own: its deployments rely on
		// the network, which --auth cannot stand in for.
		logger.Warn("the MLLP listener has no authentication: anyone who can reach it writes patients' records as HL7 v2 messages; "+
			"let only the sending systems' network reach it (see docs/security.md)", "mllp_addr", cfg.MLLPAddr)
	}
	if cfg.AuthFile != "" {
		if cfg.InsecureNoAuth {
			return &usageError{err: errors.New("serve: --auth and --insecure-no-auth contradict each other: give one")}
		}
		return nil
	}
	const risk = "serving without authentication: anyone who can reach the port can read and change every record"
	switch {
	case isLoopback(cfg.Addr):
		logger.Warn(risk+"; give --auth FILE before serving other hosts", "addr", cfg.Addr)
	case cfg.InsecureNoAuth:
		logger.Warn(risk+" (--insecure-no-auth)", "addr", cfg.Addr)
	default:
		return &usageError{err: fmt.Errorf("serve: refusing to serve %s without authentication: give --auth FILE (see docs/security.md), "+
			"listen on a loopback address such as 127.0.0.1:8080, or accept the risk with --insecure-no-auth", cfg.Addr)}
	}
	return nil
}

// isLoopback reports whether addr listens on the loopback interface only.
// An empty host listens on every interface; a host name other than
// localhost may resolve anywhere.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serverAuth is what the auth file and the flags around it give the API.
type serverAuth struct {
	auth server.Auth // nil: open
	// reauthorize re-checks a Subscription owner's authorisation at each
	// notification; nil when open.
	reauthorize func(*access.Principal, time.Time) (*access.Principal, error)
	cors        []string
	rateLimit   server.RateLimit
	policy      access.Policy
}

// readAuthFile reads the auth file of --auth, or returns nil without it.
// baseURL is the public FHIR base, from which the token audience and
// endpoint derive: with auth it must be known.
func readAuthFile(cfg *serveConfig, baseURL string) (*auth.Config, error) {
	if cfg.AuthFile == "" {
		return nil, nil
	}
	if baseURL == "" {
		return nil, errors.New("serve: with --auth the public base URL must be known (tokens name it): give --base-url, or an address that is not a wildcard")
	}
	if cfg.DataDir == "" && cfg.engine() == engineSQLite {
		return nil, errors.New("serve: with --auth, --data names the directory that keeps the token-signing keys")
	}
	authCfg, err := auth.Load(cfg.AuthFile)
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	return authCfg, nil
}

// loadAuth opens the signing keys of the auth file read, authCfg (nil:
// serve without auth): in MongoDB, which every server on the database
// shares, or in the data directory.
func loadAuth(ctx context.Context, cfg *serveConfig, baseURL string, authCfg *auth.Config, st store.Store) (*serverAuth, error) {
	sa := &serverAuth{}
	if authCfg == nil {
		return sa, nil
	}
	keys, err := openKeyring(ctx, cfg, st)
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	svc, err := auth.New(ctx, authCfg, auth.Options{BaseURL: baseURL, Keyring: keys})
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	sa.auth, sa.reauthorize = svc, svc.Reauthorize
	sa.cors = authCfg.CORS
	sa.policy = access.Policy(authCfg.Policy)
	return sa, nil
}

// rateLimitOf is the limit each client is held to: the rate_limit of the
// auth file authCfg (nil: none), whose per_second --rate-limit overrides
// and whose burst --rate-burst does, each on its own, so that one flag
// never drops the other value of the file. A burst without a rate would
// limit nothing, as if it were not given: refused.
func rateLimitOf(cfg *serveConfig, authCfg *auth.Config) (server.RateLimit, error) {
	var limit server.RateLimit
	if authCfg != nil && authCfg.RateLimit != nil {
		limit = server.RateLimit{PerSecond: authCfg.RateLimit.PerSecond, Burst: authCfg.RateLimit.Burst}
	}
	if cfg.RateLimit != 0 {
		limit.PerSecond = cfg.RateLimit
	}
	if cfg.RateBurst != 0 {
		limit.Burst = cfg.RateBurst
	}
	if limit.Burst > 0 && limit.PerSecond == 0 {
		return server.RateLimit{}, &usageError{err: errors.New("serve: a rate burst limits nothing without a rate: give --rate-limit, or rate_limit.per_second in the auth file")}
	}
	return limit, nil
}

// openKeyring opens the token-signing keys: on MongoDB those kept in the
// database, so that every server on it accepts the tokens of the others,
// first stored from the file in --data when one is there; on SQLite those
// of the file in --data.
func openKeyring(ctx context.Context, cfg *serveConfig, st store.Store) (*auth.Keyring, error) {
	file := ""
	if cfg.DataDir != "" {
		file = filepath.Join(cfg.DataDir, auth.KeyringFile)
	}
	if cfg.engine() == engineSQLite {
		return auth.OpenKeyring(file, time.Now())
	}
	settings, ok := st.(auth.SharedSettings)
	if !ok {
		return nil, fmt.Errorf("the %s store keeps no signing keys", cfg.engine())
	}
	return auth.OpenSharedKeyring(ctx, settings, file, time.Now())
}

// tlsConfig loads the certificate and key of --tls-cert and --tls-key; nil
// without them. TLS 1.2 is the least version offered.
func tlsConfig(cfg *serveConfig) (*tls.Config, error) {
	if cfg.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("serve: TLS certificate: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
}
