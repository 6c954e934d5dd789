package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Options are what the auth service needs from its host besides the auth
// file.
type Options struct {
	// BaseURL is the public base of the FHIR API, such as
	// https://carefhir.example.nhs.uk/fhir. It is the issuer of the tokens
	// the server signs, their default audience, and the token endpoint is
	// beside it (/auth/token instead of /fhir).
	BaseURL string
	// Keyring signs the access tokens of the token endpoint.
	Keyring *Keyring
	// HTTPClient fetches the keys of issuers and clients given by URL; nil:
	// jwx's default client, with timeouts.
	HTTPClient *http.Client
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Service is the authorisation of one server: it verifies the bearer tokens
// of API requests, serves the token endpoint and describes both for
// discovery.
type Service struct {
	*Authenticator
	cfg      *Config
	tokens   *tokenEndpoint
	keyring  *Keyring
	tokenURL string
	jwksURL  string
}

// New builds the auth service described by cfg. ctx bounds the background
// refresh of keys fetched by URL.
func New(ctx context.Context, cfg *Config, opts Options) (*Service, error) {
	if opts.Keyring == nil {
		return nil, errors.New("auth: no signing keys")
	}
	base, err := url.Parse(opts.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("auth: the base URL %q is not an absolute http(s) URL: the token audience and endpoint derive from it", opts.BaseURL)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	issuer := strings.TrimSuffix(opts.BaseURL, "/")
	root := strings.TrimSuffix(issuer, "/fhir")
	audience := cfg.Audience
	if audience == "" {
		audience = issuer
	}
	lifetime := cfg.TokenLifetime
	if lifetime == 0 {
		lifetime = DefaultTokenLifetime
	}
	fetch := &keyFetcher{ctx: ctx, client: opts.HTTPClient, now: now}
	issuers := map[string]trustedIssuer{issuer: {keys: staticKeys{opts.Keyring.PublicKeys()}, audience: audience}}
	for _, is := range cfg.Issuers {
		if _, dup := issuers[is.Issuer]; dup {
			return nil, fmt.Errorf("auth: issuer %s is this server itself: its keys are its own", is.Issuer)
		}
		src, err := fetch.open(cfg.Path(is.JWKS))
		if err != nil {
			return nil, fmt.Errorf("auth: issuer %s: %w", is.Issuer, err)
		}
		ti := trustedIssuer{keys: src, audience: is.Audience}
		if ti.audience == "" {
			ti.audience = audience
		}
		issuers[is.Issuer] = ti
	}
	clients := map[string]*client{}
	for _, c := range cfg.Clients {
		src, err := fetch.open(cfg.Path(c.JWKS))
		if err != nil {
			return nil, fmt.Errorf("auth: client %s: %w", c.ID, err)
		}
		scopes, err := clientScopes(c.Scopes)
		if err != nil {
			return nil, fmt.Errorf("auth: client %s: %w", c.ID, err)
		}
		clients[c.ID] = &client{id: c.ID, keys: src, scopes: scopes, organization: c.Organization}
	}
	s := &Service{
		Authenticator: &Authenticator{issuers: issuers, base: issuer, now: now, cache: newTokenCache(100_000)},
		cfg:           cfg,
		keyring:       opts.Keyring,
		tokenURL:      root + "/auth/token",
		jwksURL:       root + "/auth/jwks",
	}
	s.tokens = &tokenEndpoint{
		url: s.tokenURL, issuer: issuer, audience: audience, lifetime: lifetime,
		clients: clients, keyring: opts.Keyring, now: now, seen: newJTISet(),
	}
	return s, nil
}

// TokenEndpoint serves POST /auth/token.
func (s *Service) TokenEndpoint() http.Handler { return s.tokens }

// TokenURL is the URL of the token endpoint: the aud of client assertions.
func (s *Service) TokenURL() string { return s.tokenURL }

// JWKS serves the public keys that verify the server's own tokens, so that
// other services can check them.
func (s *Service) JWKS() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		writeJSON(w, http.StatusOK, s.keyring.PublicKeys())
	})
}

// SMARTConfiguration is the discovery document of SMART App Launch 2.0
// (/.well-known/smart-configuration), for backend services. It has no
// issuer: SMART requires one with the sso-openid-connect capability only,
// and has it omitted otherwise; this server signs in no one.
type SMARTConfiguration struct {
	JWKSURI                           string   `json:"jwks_uri"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgs      []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	Capabilities                      []string `json:"capabilities"`
}

// SMARTConfiguration describes the service for discovery. Its
// scopes_supported are scopes its token endpoint grants (SMART: "The
// server SHALL support all scopes listed here"): system/ ones, to the
// clients registered for them. The patient/ and user/ scopes this server
// also enforces come in tokens of the issuers it trusts, which say what
// they grant in their own discovery documents.
func (s *Service) SMARTConfiguration() SMARTConfiguration {
	return SMARTConfiguration{
		JWKSURI:                           s.jwksURL,
		TokenEndpoint:                     s.tokenURL,
		GrantTypesSupported:               []string{"client_credentials"},
		TokenEndpointAuthMethodsSupported: []string{"private_key_jwt"},
		TokenEndpointAuthSigningAlgs:      algorithmNames(),
		ScopesSupported:                   []string{"system/*.cruds", "system/*.rs", "system/*.read", "system/*.write"},
		Capabilities:                      []string{"client-confidential-asymmetric", "permission-v1", "permission-v2"},
	}
}

// Config is the auth file the service was built from.
func (s *Service) Config() *Config { return s.cfg }
