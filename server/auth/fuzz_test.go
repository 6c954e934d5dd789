package auth_test

import (
	"errors"
	"testing"
	"time"

	"carefhir/server/auth"
	"carefhir/server/auth/authtest"
)

// FuzzAuthenticate feeds the token parser any Authorization header. None
// may panic; every refusal is ErrNoToken or an *auth.Error with an RFC 6750
// code; and whatever is accepted is the one valid token (base64 admits
// other spellings of the same bytes), never a forgery.
func FuzzAuthenticate(f *testing.F) {
	fx := newFixture(f)
	claims := authtest.Claims(external, base, map[string]any{"sub": "fuzz-user", "scope": "user/Patient.rs",
		"exp": time.Now().Add(24 * time.Hour).Unix()})
	valid := fx.idp.Sign(f, claims)
	for _, seed := range []string{
		"Bearer " + valid,
		"Bearer " + fx.idp.Unsigned(f, claims),
		"Bearer " + fx.idp.SignHMAC(f, claims),
		"Bearer " + fx.gp.Sign(f, claims),
		"bearer " + valid + "=",
		"Basic dXNlcjpwYXNz",
		"Bearer e30.e30.",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r := request("")
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		p, err := fx.svc.Authenticate(r)
		var ae *auth.Error
		switch {
		case err == nil:
			if p.Subject != "fuzz-user" || p.Issuer != external || p.ScopeString() != "user/Patient.rs" {
				t.Fatalf("%q accepted as %+v", header, p)
			}
		case errors.Is(err, auth.ErrNoToken):
		case errors.As(err, &ae) && (ae.Code == "invalid_token" || ae.Code == "invalid_request"):
		default:
			t.Fatalf("%q: error %v", header, err)
		}
	})
}
