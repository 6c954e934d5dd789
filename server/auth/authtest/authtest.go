// Package authtest makes keys and signed tokens for tests of carefhir's
// authentication: keys are generated at test time and every signature is
// made by jwx.
package authtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"carefhir/server/auth"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// Key is a private signing key and the algorithm it signs with.
type Key struct {
	Alg     jwa.SignatureAlgorithm
	Private jwk.Key
}

// NewKey generates a key for alg (RS256, RS384, ES256 or ES384) with a key
// id.
func NewKey(t testing.TB, alg jwa.SignatureAlgorithm) *Key {
	t.Helper()
	var raw any
	var err error
	switch alg {
	case jwa.RS256(), jwa.RS384():
		raw, err = rsa.GenerateKey(rand.Reader, 2048)
	case jwa.ES256():
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jwa.ES384():
		raw, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		t.Fatalf("authtest: no key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := jwk.AssignKeyID(key); err != nil {
		t.Fatal(err)
	}
	return &Key{Alg: alg, Private: key}
}

// Public returns the public half of the key.
func (k *Key) Public(t testing.TB) jwk.Key {
	t.Helper()
	pub, err := k.Private.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// KeyID returns the key's kid.
func (k *Key) KeyID() string {
	id, _ := k.Private.KeyID()
	return id
}

// WriteJWKS writes the public halves of keys as a JWKS file in dir and
// returns its path.
func WriteJWKS(t testing.TB, dir, name string, keys ...*Key) string {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		if err := set.AddKey(k.Public(t)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Sign signs claims as a JWT with the key, its kid in the header.
func (k *Key) Sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	return signWith(t, claims, jwt.WithKey(k.Alg, k.Private))
}

// SignWithoutKeyID signs claims as a JWT with the key, no kid in the
// header.
func (k *Key) SignWithoutKeyID(t testing.TB, claims map[string]any) string {
	t.Helper()
	anonymous, err := k.Private.Clone()
	if err != nil {
		t.Fatal(err)
	}
	if err := anonymous.Remove(jwk.KeyIDKey); err != nil {
		t.Fatal(err)
	}
	return signWith(t, claims, jwt.WithKey(k.Alg, anonymous))
}

// SignHMAC signs claims with HS256, using the PEM of the key's public half
// as the secret: the classic forgery against verifiers that let the token
// choose the algorithm.
func (k *Key) SignHMAC(t testing.TB, claims map[string]any) string {
	t.Helper()
	var raw any
	if err := jwk.Export(k.Public(t), &raw); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, k.KeyID())
	return signWith(t, claims, jwt.WithKey(jwa.HS256(), secret, jws.WithProtectedHeaders(hdr)))
}

// Unsigned returns claims as an unsecured JWT (alg "none", RFC 7519 §6)
// naming the key's kid, with an empty signature.
func (k *Key) Unsigned(t testing.TB, claims map[string]any) string {
	t.Helper()
	header, err := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": k.KeyID()})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(header) + "." + enc.EncodeToString(payload) + "."
}

func signWith(t testing.TB, claims map[string]any, opt jwt.SignOption) string {
	t.Helper()
	tok := jwt.New()
	for name, v := range claims {
		if err := tok.Set(name, v); err != nil {
			t.Fatalf("authtest: claim %s: %v", name, err)
		}
	}
	b, err := jwt.Sign(tok, opt)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Claims returns the claims of a valid access token from iss for aud (a
// string or an array of strings),
// issued now and expiring in five minutes, with extra claims added.
func Claims(iss string, aud any, extra map[string]any) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss": iss, "aud": aud, "sub": "user-1",
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// Assertion returns the claims of a client assertion for the token
// endpoint at tokenURL, with a fresh jti.
func Assertion(clientID, tokenURL string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": clientID, "sub": clientID, "aud": tokenURL,
		"exp": now.Add(4 * time.Minute).Unix(), "jti": rand.Text(),
	}
}

// Service returns the authorisation of a server at base that trusts
// tokens from issuer signed by the ES256 key it also returns: an auth file
// naming the issuer and its JWKS, and a keyring for the server's own
// tokens, all in a temporary directory.
func Service(tb testing.TB, issuer, base string) (*auth.Service, *Key) {
	tb.Helper()
	idp := NewKey(tb, jwa.ES256())
	dir := tb.TempDir()
	WriteJWKS(tb, dir, "idp.jwks.json", idp)
	file := filepath.Join(dir, "auth.yaml")
	if err := os.WriteFile(file, []byte("issuers:\n  - issuer: "+issuer+"\n    jwks: idp.jwks.json\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	cfg, err := auth.Load(file)
	if err != nil {
		tb.Fatal(err)
	}
	keys, err := auth.OpenKeyring(filepath.Join(dir, auth.KeyringFile), time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	svc, err := auth.New(context.Background(), cfg, auth.Options{BaseURL: base, Keyring: keys})
	if err != nil {
		tb.Fatal(err)
	}
	return svc, idp
}
