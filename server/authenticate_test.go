package server_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"carefhir/server"
	"carefhir/server/auth"
	"carefhir/server/auth/authtest"
	"carefhir/store"
)

const externalIssuer = "https://idp.test"

// authClient is a client of a server requiring bearer tokens (see
// startAuthServer).
type authClient struct {
	*client
	root    string // http://127.0.0.1:port
	idp, gp *authtest.Key
}

// eachEngineWithAuth runs fn against a fresh server with auth on every
// engine; opts adjust the server's Config.
func eachEngineWithAuth(t *testing.T, fn func(t *testing.T, c *authClient), opts ...config) {
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			fn(t, newAuthClient(t, e.Open(t), opts...))
		})
	}
}

func newAuthClient(t *testing.T, st store.Store, opts ...config) *authClient {
	t.Helper()
	as := startAuthServer(t, st, opts...)
	return &authClient{
		client: &client{t: t, base: as.root + "/fhir", logs: as.logs, st: st},
		root:   as.root, idp: as.idp, gp: as.gp,
	}
}

// authServer is a running server that requires bearer tokens.
type authServer struct {
	root    string // http://127.0.0.1:port
	idp, gp *authtest.Key
	logs    *logBuffer
}

// authServiceFrom returns the authorisation an auth file configures for a
// server at base, its signing keys beside the file.
func authServiceFrom(tb testing.TB, file, base string) *auth.Service {
	tb.Helper()
	authCfg, err := auth.Load(file)
	if err != nil {
		tb.Fatal(err)
	}
	keys, err := auth.OpenKeyring(filepath.Join(filepath.Dir(file), auth.KeyringFile), time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	svc, err := auth.New(context.Background(), authCfg, auth.Options{BaseURL: base, Keyring: keys})
	if err != nil {
		tb.Fatal(err)
	}
	return svc
}

// startAuthServer serves the API over st with an auth file trusting a new
// external issuer key (idp) and registering the client gp-system (gp).
func startAuthServer(tb testing.TB, st store.Store, opts ...config) *authServer {
	tb.Helper()
	srv := httptest.NewUnstartedServer(nil)
	as := &authServer{root: "http://" + srv.Listener.Addr().String(), logs: &logBuffer{},
		idp: authtest.NewKey(tb, jwa.RS256()), gp: authtest.NewKey(tb, jwa.ES384())}
	dir := tb.TempDir()
	authtest.WriteJWKS(tb, dir, "idp.jwks.json", as.idp)
	authtest.WriteJWKS(tb, dir, "gp.jwks.json", as.gp)
	file := filepath.Join(dir, "auth.yaml")
	if err := os.WriteFile(file, []byte(`
issuers:
  - issuer: `+externalIssuer+`
    jwks: idp.jwks.json
clients:
  - id: gp-system
    jwks: gp.jwks.json
    scopes: [system/Patient.rs, system/Observation.cruds]
`), 0o600); err != nil {
		tb.Fatal(err)
	}
	svc := authServiceFrom(tb, file, as.root+"/fhir")
	cfg := server.Config{Store: st, BaseURL: as.root + "/fhir", Auth: svc,
		Logger: slog.New(slog.NewJSONHandler(as.logs, nil)), SoftwareVersion: "test"}
	for _, o := range opts {
		o(&cfg)
	}
	srv.Config.Handler = server.New(cfg)
	srv.Start()
	tb.Cleanup(func() {
		srv.Close()
		st.Close()
	})
	return as
}

// token returns a valid access token of the external issuer for this
// server, with extra claims; without a scope claim among them it grants
// user/*.cruds.
func (c *authClient) token(extra map[string]any) string {
	claims := map[string]any{"scope": "user/*.cruds"}
	for k, v := range extra {
		claims[k] = v
	}
	if _, ok := extra["scp"]; ok {
		delete(claims, "scope")
	}
	return c.idp.Sign(c.t, authtest.Claims(externalIssuer, c.base, claims))
}

// bearer returns the header pair sending token.
func bearer(token string) []string { return []string{"Authorization", "Bearer " + token} }

// requestToken posts a token request with a client assertion signed by key
// and returns the response.
func (c *authClient) requestToken(key *authtest.Key, assertion map[string]any, scope string) *response {
	c.t.Helper()
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {auth.AssertionType},
		"client_assertion":      {key.Sign(c.t, assertion)},
		"scope":                 {scope},
	}
	return c.do("POST", c.root+"/auth/token", form.Encode(), "Content-Type", "application/x-www-form-urlencoded")
}

// oauthError checks a token endpoint error response (RFC 6749 §5.2).
func (r *response) oauthError(t *testing.T, status int, code string) {
	t.Helper()
	r.want(t, status)
	var body struct{ Error string }
	if err := json.Unmarshal(r.body, &body); err != nil || body.Error != code {
		t.Errorf("error %q, want %q: %s", body.Error, code, r.body)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", r.header.Get("Cache-Control"))
	}
}

func TestBearerTokenRequired(t *testing.T) {
	eachEngineWithAuth(t, func(t *testing.T, c *authClient) {
		now := time.Now()
		claims := func(extra map[string]any) map[string]any { return authtest.Claims(externalIssuer, c.base, extra) }
		valid := c.token(map[string]any{"scope": "user/*.cruds"})
		dot := strings.LastIndex(valid, ".")
		stranger := authtest.NewKey(t, jwa.RS256())
		refused := []struct{ name, token string }{
			{"forged", valid[:dot+1] + strings.Repeat("A", len(valid)-dot-1)},
			{"expired", c.idp.Sign(t, claims(map[string]any{"exp": now.Add(-2 * time.Minute).Unix()}))},
			{"not yet valid", c.idp.Sign(t, claims(map[string]any{"nbf": now.Add(2 * time.Minute).Unix()}))},
			{"wrong audience", c.idp.Sign(t, authtest.Claims(externalIssuer, "https://elsewhere.test/fhir", nil))},
			{"wrong issuer", c.idp.Sign(t, authtest.Claims("https://evil.test", c.base, nil))},
			{"alg none", c.idp.Unsigned(t, claims(nil))},
			{"HMAC with the public key", c.idp.SignHMAC(t, claims(nil))},
			{"unknown kid", stranger.Sign(t, claims(nil))},
		}
		for _, tt := range refused {
			t.Run(tt.name, func(t *testing.T) {
				r := c.do("GET", "/Patient", "", bearer(tt.token)...).want(t, http.StatusUnauthorized)
				if got := r.header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
					t.Errorf("WWW-Authenticate %q", got)
				}
				// The same words whatever failed: no hint for a forger.
				if d := r.outcome(t, "login", ""); d != "the bearer token is not valid" {
					t.Errorf("diagnostics %q", d)
				}
				// The operator learns why, from the log, which never holds the token.
				logs := c.logs.String()
				if !strings.Contains(logs, `"msg":"bearer token refused","reason":"invalid_token: `) || strings.Contains(logs, tt.token) {
					t.Errorf("log of a refused token:\n%s", logs)
				}
			})
		}

		r := c.do("GET", "/Patient", "").want(t, http.StatusUnauthorized)
		if got := r.header.Get("WWW-Authenticate"); got != "Bearer" {
			t.Errorf("no token: WWW-Authenticate %q, want Bearer", got)
		}
		r.outcome(t, "login", "")
		r = c.do("GET", "/Patient", "", "Authorization", "Bearer two words").want(t, http.StatusBadRequest)
		if got := r.header.Get("WWW-Authenticate"); got != `Bearer error="invalid_request"` {
			t.Errorf("malformed header: WWW-Authenticate %q", got)
		}
		// Nothing written without a token.
		c.do("POST", "/Patient", `{"resourceType":"Patient"}`).want(t, http.StatusUnauthorized)

		created := c.do("POST", "/Patient", `{"resourceType":"Patient","gender":"female"}`, bearer(valid)...).want(t, http.StatusCreated)
		if cc := created.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("authenticated response: Cache-Control %q, want no-store", cc)
		}
		r = c.do("GET", "/Patient", "", bearer(valid)...).want(t, http.StatusOK)
		if entries, _ := get(r.json(t), "entry").([]any); len(entries) != 1 {
			t.Errorf("search with a valid token: %d entries, want 1", len(entries))
		}
		// The same token again comes from the cache, with the same answer.
		c.do("GET", "/Patient", "", bearer(valid)...).want(t, http.StatusOK)

		// The CapabilityStatement says how to get a token, to anyone.
		meta := c.do("GET", "/metadata", "").want(t, http.StatusOK).json(t)
		if got := str(meta, "rest", 0, "security", "extension", 0, "extension", 0, "valueUri"); got != c.root+"/auth/token" {
			t.Errorf("oauth-uris token %q, want %s/auth/token", got, c.root)
		}
		if got := str(meta, "rest", 0, "security", "service", 0, "coding", 0, "code"); got != "SMART-on-FHIR" {
			t.Errorf("security service %q", got)
		}
	})
}

func TestBackendServicesToken(t *testing.T) {
	eachEngineWithAuth(t, func(t *testing.T, c *authClient) {
		for _, path := range []string{"/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"} {
			conf := c.do("GET", c.root+path, "").want(t, http.StatusOK).json(t)
			if conf["token_endpoint"] != c.root+"/auth/token" ||
				str(conf, "token_endpoint_auth_methods_supported", 0) != "private_key_jwt" ||
				str(conf, "grant_types_supported", 0) != "client_credentials" {
				t.Errorf("%s: %v", path, conf)
			}
			// SMART: issuer only with sso-openid-connect, and every scope
			// listed one the token endpoint grants.
			if _, ok := conf["issuer"]; ok {
				t.Errorf("%s: issuer without sso-openid-connect: %v", path, conf)
			}
			for _, s := range get(conf, "scopes_supported").([]any) {
				if !strings.HasPrefix(s.(string), "system/") {
					t.Errorf("%s: scopes_supported lists %s, which the token endpoint never grants", path, s)
				}
			}
			if h := c.do("HEAD", c.root+path, "").want(t, http.StatusOK); len(h.body) != 0 || h.header.Get("Content-Type") == "" {
				t.Errorf("HEAD %s: Content-Type %q, %d bytes of body", path, h.header.Get("Content-Type"), len(h.body))
			}
		}
		// Served, it takes GET and HEAD alone.
		r := c.do("POST", c.base+"/.well-known/smart-configuration", "").want(t, http.StatusMethodNotAllowed)
		if got := r.header.Get("Allow"); got != "GET, HEAD" {
			t.Errorf("POST /fhir/.well-known/smart-configuration: Allow %q, want GET, HEAD", got)
		}
		tokenURL := c.root + "/auth/token"

		assertion := authtest.Assertion("gp-system", tokenURL)
		r = c.requestToken(c.gp, assertion, "system/Patient.cruds system/Observation.rs system/Task.rs").want(t, http.StatusOK)
		var tok struct {
			AccessToken string `json:"access_token"`
			TokenType   string `json:"token_type"`
			ExpiresIn   int    `json:"expires_in"`
			Scope       string
		}
		if err := json.Unmarshal(r.body, &tok); err != nil {
			t.Fatal(err)
		}
		// Granted: what was asked for, within what the client may have.
		if tok.TokenType != "bearer" || tok.ExpiresIn != 300 || tok.Scope != "system/Patient.rs system/Observation.rs" {
			t.Errorf("token response %s", r.body)
		}
		c.do("GET", "/Patient", "", bearer(tok.AccessToken)...).want(t, http.StatusOK)

		// The same assertion twice is a replay.
		c.requestToken(c.gp, assertion, "system/Patient.rs").oauthError(t, http.StatusBadRequest, "invalid_client")

		stranger := authtest.NewKey(t, jwa.ES384())
		late := authtest.Assertion("gp-system", tokenURL)
		late["exp"] = time.Now().Add(10 * time.Minute).Unix()
		elsewhere := authtest.Assertion("gp-system", "https://other.test/auth/token")
		unknown := authtest.Assertion("nobody", tokenURL)
		mixed := authtest.Assertion("gp-system", tokenURL)
		mixed["sub"] = "someone-else"
		for name, tt := range map[string]struct {
			key       *authtest.Key
			assertion map[string]any
		}{
			"signed by another key":    {stranger, authtest.Assertion("gp-system", tokenURL)},
			"exp beyond 5 minutes":     {c.gp, late},
			"for another endpoint":     {c.gp, elsewhere},
			"unknown client":           {c.gp, unknown},
			"sub is not the client":    {c.gp, mixed},
			"signed by a token issuer": {c.idp, authtest.Assertion("gp-system", tokenURL)},
		} {
			t.Run(name, func(t *testing.T) {
				c.requestToken(tt.key, tt.assertion, "system/Patient.rs").oauthError(t, http.StatusBadRequest, "invalid_client")
			})
		}
		c.requestToken(c.gp, authtest.Assertion("gp-system", tokenURL), "system/Practitioner.rs").
			oauthError(t, http.StatusBadRequest, "invalid_scope")
		c.requestToken(c.gp, authtest.Assertion("gp-system", tokenURL), "system/Patient.nonsense").
			oauthError(t, http.StatusBadRequest, "invalid_scope")
		other := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {auth.AssertionType},
			"client_assertion": {c.gp.Sign(t, authtest.Assertion("gp-system", tokenURL))}, "client_id": {"another"}, "scope": {"system/Patient.rs"}}
		c.do("POST", tokenURL, other.Encode(), "Content-Type", "application/x-www-form-urlencoded").
			oauthError(t, http.StatusBadRequest, "invalid_client")
		// SMART Backend Services: the assertion names its key by kid.
		noKid := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {auth.AssertionType},
			"client_assertion": {c.gp.SignWithoutKeyID(t, authtest.Assertion("gp-system", tokenURL))}, "scope": {"system/Patient.rs"}}
		c.do("POST", tokenURL, noKid.Encode(), "Content-Type", "application/x-www-form-urlencoded").
			oauthError(t, http.StatusBadRequest, "invalid_client")
		form := url.Values{"grant_type": {"password"}, "username": {"a"}, "password": {"b"}}
		c.do("POST", tokenURL, form.Encode(), "Content-Type", "application/x-www-form-urlencoded").
			oauthError(t, http.StatusBadRequest, "unsupported_grant_type")

		keys := c.do("GET", c.root+"/auth/jwks", "").want(t, http.StatusOK).json(t)
		if str(keys, "keys", 0, "kty") != "EC" || get(keys, "keys", 0, "d") != nil {
			t.Errorf("jwks: %v", keys)
		}
	})
}

// TestBackendServicesWildcardScope: a bulk client asking for every type
// (system/*.read, system/*.rs) is granted the types it is registered for,
// each within its registered permissions, and told so in the response's
// scope (SMART App Launch, RFC 6749 §3.3), where it was refused with
// invalid_scope; a restriction registered stays on what is granted.
func TestBackendServicesWildcardScope(t *testing.T) {
	eachEngineWithAuth(t, func(t *testing.T, c *authClient) {
		tokenURL := c.root + "/auth/token"
		for _, tc := range []struct{ asked, granted string }{
			{"system/*.read", "system/Patient.rs system/Observation.rs"},
			{"system/*.rs", "system/Patient.rs system/Observation.rs"},
			{"system/*.cruds", "system/Patient.rs system/Observation.cruds"},
			{"system/*.d", "system/Observation.d"},
			{"system/Patient.read", "system/Patient.read"},
			{"system/*.rs system/Patient.r", "system/Patient.rs system/Observation.rs system/Patient.r"},
		} {
			r := c.requestToken(c.gp, authtest.Assertion("gp-system", tokenURL), tc.asked).want(t, http.StatusOK)
			var tok struct {
				AccessToken string `json:"access_token"`
				Scope       string
			}
			if err := json.Unmarshal(r.body, &tok); err != nil {
				t.Fatal(err)
			}
			if tok.Scope != tc.granted {
				t.Errorf("asked %q: granted %q, want %q", tc.asked, tok.Scope, tc.granted)
			}
			if tc.asked == "system/*.read" {
				c.do("GET", "/Observation", "", bearer(tok.AccessToken)...).want(t, http.StatusOK)
				c.do("GET", "/Practitioner", "", bearer(tok.AccessToken)...).want(t, http.StatusForbidden)
			}
		}
		c.requestToken(c.gp, authtest.Assertion("gp-system", tokenURL), "user/*.rs").
			oauthError(t, http.StatusBadRequest, "invalid_scope")
	})
}

func TestCORS(t *testing.T) {
	eachEngineWithAuth(t, func(t *testing.T, c *authClient) {
		const app = "https://app.example.nhs.uk"
		r := c.do("OPTIONS", "/Patient", "", "Origin", app, "Access-Control-Request-Method", "POST",
			"Access-Control-Request-Headers", "authorization, content-type").want(t, http.StatusNoContent)
		if r.header.Get("Access-Control-Allow-Origin") != app ||
			!strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") ||
			!strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "POST") {
			t.Errorf("preflight headers: %v", r.header)
		}
		r = c.do("GET", "/Patient", "", append(bearer(c.token(nil)), "Origin", app)...).want(t, http.StatusOK)
		if r.header.Get("Access-Control-Allow-Origin") != app || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "Location") {
			t.Errorf("CORS response headers: %v", r.header)
		}
		r = c.do("OPTIONS", "/Patient", "", "Origin", "https://evil.test", "Access-Control-Request-Method", "GET")
		if r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from an origin not allowed: %d %v", r.status, r.header)
		}
	}, func(cfg *server.Config) { cfg.CORSOrigins = []string{"https://app.example.nhs.uk"} })
}

func TestRateLimit(t *testing.T) {
	eachEngineWithAuth(t, func(t *testing.T, c *authClient) {
		// One request per 100 s after a burst of 3: the fourth is refused
		// however slowly the test runs.
		first := c.token(map[string]any{"client_id": "app-1"})
		for range 3 {
			c.do("GET", "/Patient", "", bearer(first)...).want(t, http.StatusOK)
		}
		r := c.do("GET", "/Patient", "", bearer(first)...).want(t, http.StatusTooManyRequests)
		r.outcome(t, "throttled", "")
		if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
			t.Errorf("Retry-After %q", ra)
		}
		// Another client has its own bucket.
		c.do("GET", "/Patient", "", bearer(c.token(map[string]any{"client_id": "app-2"}))...).want(t, http.StatusOK)
	}, func(cfg *server.Config) { cfg.RateLimit = server.RateLimit{PerSecond: 0.01, Burst: 3} })
}

// A request refused authentication is held to its address's limit, as
// an anonymous one is: sending no token, or a refused one, again and again
// is 429 with Retry-After once the burst is spent, where every one was
// answered 401 (and audited) without limit. A token holder keeps a bucket
// of its own.
func TestRateLimitRefusedTokens(t *testing.T) {
	eachEngineWithAuth(t, func(t *testing.T, c *authClient) {
		expired := c.idp.Sign(t, authtest.Claims(externalIssuer, c.base, map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}))
		c.do("GET", "/Patient", "").want(t, http.StatusUnauthorized)
		c.do("GET", "/Patient", "", bearer(expired)...).want(t, http.StatusUnauthorized)
		c.do("GET", "/Patient?access_token=x", "").want(t, http.StatusBadRequest)
		for _, headers := range [][]string{nil, bearer(expired), bearer("not-a-jwt")} {
			r := c.do("GET", "/Patient", "", headers...).want(t, http.StatusTooManyRequests)
			r.outcome(t, "throttled", "")
			if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
				t.Errorf("Retry-After %q", ra)
			}
		}
		c.do("GET", "/Patient?access_token=x", "").want(t, http.StatusTooManyRequests)
		c.do("GET", "/Patient", "", bearer(c.token(map[string]any{"client_id": "app-1"}))...).want(t, http.StatusOK)
	}, func(cfg *server.Config) { cfg.RateLimit = server.RateLimit{PerSecond: 0.01, Burst: 3} })
}

func TestSecurityHeaders(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("GET", "/Patient", "").want(t, http.StatusOK)
		if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("headers: %v", r.header)
		}
		if r.header.Get("Strict-Transport-Security") != "" {
			t.Error("Strict-Transport-Security over plain HTTP")
		}
		// An open server has no token endpoint.
		c.do("GET", strings.TrimSuffix(c.base, "/fhir")+"/.well-known/smart-configuration", "").want(t, http.StatusNotFound)
	})
}
