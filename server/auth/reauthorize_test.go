package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"carefhir/server/access"
	"carefhir/server/auth"
	"carefhir/server/auth/authtest"
)

// serviceFrom builds the service of the auth file content in f's
// directory, with f's signing keys: the same server, its auth file edited.
func (f *fixture) serviceFrom(t *testing.T, content string) *auth.Service {
	t.Helper()
	path := filepath.Join(f.dir, "edited.yaml")
	writeFile(t, path, content)
	cfg, err := auth.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := auth.OpenKeyring(filepath.Join(f.dir, "data", auth.KeyringFile), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := auth.New(context.Background(), cfg, auth.Options{BaseURL: base, Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// backendPrincipal is who a token of the token endpoint, for gp-system and
// scope, speaks for.
func (f *fixture) backendPrincipal(t *testing.T, scope string) *access.Principal {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {auth.AssertionType},
		"client_assertion": {f.gp.Sign(t, authtest.Assertion("gp-system", f.svc.TokenURL()))}, "scope": {scope}}
	req := httptest.NewRequest("POST", f.svc.TokenURL(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	f.svc.TokenEndpoint().ServeHTTP(rec, req)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &tok) != nil {
		t.Fatalf("token: %d %s", rec.Code, rec.Body)
	}
	p, err := f.svc.Authenticate(request(tok.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReauthorize: what a Subscription's owner may still do when its
// notifications are sent. A backend client of the token endpoint keeps its
// authorisation past its token's expiry while it stays registered, narrowed
// to the scopes its registration still allows; a token of another issuer
// authorises until it expires, while its issuer is trusted.
func TestReauthorize(t *testing.T) {
	f := newFixture(t)
	later := time.Now().Add(30 * 24 * time.Hour)
	lapses := func(t *testing.T, svc *auth.Service, p *access.Principal, at time.Time, reason string) {
		t.Helper()
		_, err := svc.Reauthorize(p, at)
		var lapsed *auth.LapsedError
		if !errors.As(err, &lapsed) || !strings.Contains(lapsed.Reason, reason) {
			t.Errorf("Reauthorize: %v, want lapsed as %q", err, reason)
		}
	}
	const others = `
issuers:
  - issuer: ` + external + `
    jwks: idp.jwks.json
`

	gp := f.backendPrincipal(t, "system/Patient.rs")
	if still, err := f.svc.Reauthorize(gp, later); err != nil || still.ScopeString() != "system/Patient.rs" {
		t.Errorf("registered client a month on: %+v, %v", still, err)
	}
	narrowed := f.serviceFrom(t, others+`clients:
  - id: gp-system
    jwks: gp.jwks.json
    scopes: [system/Patient.r, system/Observation.rs]
`)
	if still, err := narrowed.Reauthorize(gp, later); err != nil || still.ScopeString() != "system/Patient.r" {
		t.Errorf("client whose registration was narrowed: %+v, %v, want system/Patient.r", still, err)
	}
	elsewhere := f.serviceFrom(t, others+`clients:
  - id: gp-system
    jwks: gp.jwks.json
    scopes: [system/Observation.rs]
`)
	lapses(t, elsewhere, gp, later, "no longer allowed any of the scopes")
	lapses(t, f.serviceFrom(t, others), gp, later, "gp-system is no longer registered")

	exp := time.Now().Add(5 * time.Minute).Truncate(time.Second)
	user := f.idp.Sign(t, authtest.Claims(external, base, map[string]any{"scope": "user/Appointment.rs", "exp": exp.Unix()}))
	p, err := f.svc.Authenticate(request(user))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Expires.Equal(exp) {
		t.Errorf("Expires %s, want the token's exp %s", p.Expires, exp)
	}
	if _, err := f.svc.Reauthorize(p, exp.Add(-time.Minute)); err != nil {
		t.Errorf("external token before its expiry: %v", err)
	}
	lapses(t, f.svc, p, exp.Add(2*time.Minute), "token expired at")
	lapses(t, f.serviceFrom(t, "issuers: []\n"), p, time.Now(), "no longer trusted")
	recorded := *p
	recorded.Expires = time.Time{}
	lapses(t, f.svc, &recorded, time.Now(), "expiry of the token was not recorded")
	lapses(t, f.svc, access.OpenPrincipal("127.0.0.1"), time.Now(), "ran without authorisation")
	if _, err := f.svc.Reauthorize(access.SystemPrincipal("pam-scoring"), later); err != nil {
		t.Errorf("the server itself: %v", err)
	}
}
