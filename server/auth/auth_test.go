package auth_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"carefhir/server/auth"
	"carefhir/server/auth/authtest"
)

const (
	base     = "https://carefhir.test/fhir"
	external = "https://idp.test"
)

// fixture is an auth service trusting one external issuer whose key is
// idp, and one backend client whose key is gp.
type fixture struct {
	svc           *auth.Service
	idp, gp, oidc *authtest.Key
	dir           string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{idp: authtest.NewKey(t, jwa.RS256()), gp: authtest.NewKey(t, jwa.ES384()), oidc: authtest.NewKey(t, jwa.ES256()), dir: dir}
	authtest.WriteJWKS(t, dir, "idp.jwks.json", f.idp)
	authtest.WriteJWKS(t, dir, "oidc.jwks.json", f.oidc)
	authtest.WriteJWKS(t, dir, "gp.jwks.json", f.gp)
	path := filepath.Join(dir, "auth.yaml")
	writeFile(t, path, `
issuers:
  - issuer: `+external+`
    jwks: idp.jwks.json
  - issuer: https://oidc.test
    jwks: oidc.jwks.json
    audience: carefhir-app
clients:
  - id: gp-system
    jwks: gp.jwks.json
    scopes: [system/Patient.rs]
`)
	cfg, err := auth.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := auth.OpenKeyring(filepath.Join(dir, "data", auth.KeyringFile), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f.svc, err = auth.New(context.Background(), cfg, auth.Options{BaseURL: base, Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func request(token string) *http.Request {
	r, _ := http.NewRequest("GET", base+"/Patient", nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

func TestAuthenticateReadsTheClaims(t *testing.T) {
	f := newFixture(t)
	tok := f.idp.Sign(t, authtest.Claims(external, base, map[string]any{
		"scope": "openid fhirUser user/Patient.rs patient/Observation.rs", "fhirUser": "Practitioner/p1",
		"patient": "pat-1", "client_id": "app", "organization": "B82617",
	}))
	for range 2 { // the second answer comes from the cache
		p, err := f.svc.Authenticate(request(tok))
		if err != nil {
			t.Fatal(err)
		}
		if p.Issuer != external || p.Subject != "user-1" || p.FHIRUser != "Practitioner/p1" || p.Patient != "pat-1" ||
			p.ClientID != "app" || p.Organization != "B82617" || p.ScopeString() != "user/Patient.rs patient/Observation.rs" {
			t.Errorf("principal %+v", p)
		}
	}
	// An issuer with an audience of its own.
	if _, err := f.svc.Authenticate(request(f.oidc.Sign(t, authtest.Claims("https://oidc.test", "carefhir-app", nil)))); err != nil {
		t.Errorf("token for the issuer's own audience: %v", err)
	}
	if _, err := f.svc.Authenticate(request(f.oidc.Sign(t, authtest.Claims("https://oidc.test", base, nil)))); err == nil {
		t.Error("token of an issuer with its own audience, for the server's audience: accepted")
	}
	scp := f.idp.Sign(t, authtest.Claims(external, []string{"other", base}, map[string]any{"scp": []string{"system/*.read"}}))
	p, err := f.svc.Authenticate(request(scp))
	if err != nil || p.ScopeString() != "system/*.read" {
		t.Errorf("scp claim and aud array: %+v, %v", p, err)
	}
}

func TestAuthenticateRefuses(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	claims := func(extra map[string]any) map[string]any { return authtest.Claims(external, base, extra) }
	stranger := authtest.NewKey(t, jwa.RS256())
	valid := f.idp.Sign(t, claims(nil))
	tests := []struct {
		name, header, code string
	}{
		{"forged signature", "Bearer " + valid[:strings.LastIndex(valid, ".")+1] + "AAAA" + valid[strings.LastIndex(valid, ".")+5:], "invalid_token"},
		{"unknown key", "Bearer " + stranger.Sign(t, claims(nil)), "invalid_token"},
		{"expired", "Bearer " + f.idp.Sign(t, claims(map[string]any{"exp": now.Add(-2 * time.Minute).Unix()})), "invalid_token"},
		{"not yet valid", "Bearer " + f.idp.Sign(t, claims(map[string]any{"nbf": now.Add(2 * time.Minute).Unix()})), "invalid_token"},
		{"issued in the future", "Bearer " + f.idp.Sign(t, claims(map[string]any{"iat": now.Add(2 * time.Minute).Unix()})), "invalid_token"},
		{"no exp", "Bearer " + f.idp.Sign(t, map[string]any{"iss": external, "aud": base}), "invalid_token"},
		{"wrong audience", "Bearer " + f.idp.Sign(t, authtest.Claims(external, "https://other.test/fhir", nil)), "invalid_token"},
		{"wrong issuer", "Bearer " + f.idp.Sign(t, authtest.Claims("https://evil.test", base, nil)), "invalid_token"},
		{"alg none", "Bearer " + f.idp.Unsigned(t, claims(nil)), "invalid_token"},
		{"HMAC with the public key", "Bearer " + f.idp.SignHMAC(t, claims(nil)), "invalid_token"},
		{"client key for a token", "Bearer " + f.gp.Sign(t, claims(nil)), "invalid_token"},
		{"malformed scope", "Bearer " + f.idp.Sign(t, claims(map[string]any{"scope": "patient/Observation.xyz"})), "invalid_token"},
		{"patient not a string", "Bearer " + f.idp.Sign(t, claims(map[string]any{"patient": 12})), "invalid_token"},
		{"not a JWT", "Bearer abc", "invalid_token"},
		{"bad characters", "Bearer a b", "invalid_request"},
		{"empty", "Bearer ", "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := request("")
			r.Header.Set("Authorization", tt.header)
			p, err := f.svc.Authenticate(r)
			var ae *auth.Error
			if !errors.As(err, &ae) || ae.Code != tt.code {
				t.Fatalf("Authenticate: %+v, %v; want error %s", p, err, tt.code)
			}
		})
	}
	for _, h := range []string{"", "Basic dXNlcjpwYXNz"} {
		r := request("")
		if h != "" {
			r.Header.Set("Authorization", h)
		}
		if _, err := f.svc.Authenticate(r); !errors.Is(err, auth.ErrNoToken) {
			t.Errorf("Authorization %q: %v, want ErrNoToken", h, err)
		}
	}
}
