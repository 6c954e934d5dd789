// Package auth is carefhir's authentication: it verifies the bearer access
// tokens of API requests (SMART App Launch 2.0, RFC 6750), issues tokens to
// machine clients (SMART Backend Services, RFC 7523) and reads the auth
// file that configures both. What a verified token may do is decided in
// package access; this package only says who is asking.
//
// Signatures, keys and token claims are handled by jwx: nothing here
// computes or compares a signature.
package auth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"carefhir/server/access"
)

// maxSkew is the clock difference tolerated on exp, nbf and iat.
const maxSkew = 60 * time.Second

// maxTokenBytes bounds the size of a token worth parsing.
const maxTokenBytes = 16 << 10

// ErrNoToken is a request without a bearer token: RFC 6750 answers it
// with a bare challenge and no error code.
var ErrNoToken = errors.New("no bearer token")

// Error is a refused token, with its RFC 6750 error code:
// "invalid_request" for a malformed Authorization header, "invalid_token"
// for a token that fails any check. Which check failed is kept for the
// server's own diagnosis and never shown to the client.
type Error struct {
	Code string
	err  error
}

func (e *Error) Error() string { return e.Code + ": " + e.err.Error() }
func (e *Error) Unwrap() error { return e.err }

func invalidToken(err error) *Error { return &Error{Code: "invalid_token", err: err} }

// Authenticator verifies bearer access tokens: JWTs signed by a trusted
// issuer for the audience configured for it.
type Authenticator struct {
	issuers map[string]trustedIssuer
	// base is the server's FHIR base URL, without a trailing slash: a
	// fhirUser claim under it names a resource of this server.
	base  string
	now   func() time.Time
	cache *tokenCache
}

// trustedIssuer is an issuer whose tokens are accepted: its keys, and the
// aud its tokens must name.
type trustedIssuer struct {
	keys     keySource
	audience string
}

// Authenticate returns who the request's bearer token speaks for. It
// returns ErrNoToken when the request carries no bearer token, and an
// *Error when its token or Authorization header is refused. The Principal
// returned is the caller's to change (its Address, say).
func (a *Authenticator) Authenticate(r *http.Request) (*access.Principal, error) {
	raw, err := bearerToken(r.Header)
	if err != nil {
		return nil, err
	}
	return a.verify(r.Context(), raw)
}

// verify checks a token, answering from the cache of tokens already
// verified when it can.
func (a *Authenticator) verify(ctx context.Context, raw string) (*access.Principal, error) {
	now := a.now()
	sum := sha256.Sum256([]byte(raw))
	if p, ok := a.cache.get(sum, now); ok {
		return p, nil
	}
	p, exp, err := a.check(ctx, raw, now)
	if err != nil {
		return nil, invalidToken(err)
	}
	a.cache.put(sum, p, exp.Add(maxSkew), now)
	cp := *p
	return &cp, nil
}

// bearerToken reads the token of an "Authorization: Bearer" header
// (RFC 6750 §2.1).
func bearerToken(h http.Header) (string, error) {
	values := h.Values("Authorization")
	if len(values) == 0 {
		return "", ErrNoToken
	}
	if len(values) > 1 {
		return "", &Error{Code: "invalid_request", err: errors.New("more than one Authorization header")}
	}
	scheme, token, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		// Another scheme (Basic, say) is no bearer token at all.
		return "", ErrNoToken
	}
	if !isToken68(token) {
		return "", &Error{Code: "invalid_request", err: errors.New("malformed bearer token")}
	}
	if len(token) > maxTokenBytes {
		return "", invalidToken(errors.New("token too long"))
	}
	return token, nil
}

// isToken68 reports whether s has the syntax RFC 6750 gives a bearer
// token: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isToken68(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for _, c := range []byte(body) {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// isCompactJWS reports whether s has the shape of a compact JWS: three
// non-empty base64url parts. jwx also reads the JSON serialisations, which
// a bearer token or client assertion never uses.
func isCompactJWS(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || strings.ContainsAny(p, "+/=~") {
			return false
		}
	}
	return true
}

// payloadClaim reads one string claim of an unverified JWS payload, to
// find whose keys verify it. The signature check that follows covers it.
func payloadClaim(payload []byte, name string) string {
	var claims map[string]json.RawMessage
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	var s string
	if json.Unmarshal(claims[name], &s) != nil {
		return ""
	}
	return s
}

// check verifies raw and returns its principal and expiry.
func (a *Authenticator) check(ctx context.Context, raw string, now time.Time) (*access.Principal, time.Time, error) {
	if !isCompactJWS(raw) {
		return nil, time.Time{}, errors.New("not a compact JWS")
	}
	keys := jws.KeyProviderFunc(func(ctx context.Context, sink jws.KeySink, sig *jws.Signature, msg *jws.Message) error {
		ti, ok := a.issuers[payloadClaim(msg.Payload(), "iss")]
		if !ok {
			return errors.New("untrusted issuer")
		}
		return offerKeys(ctx, sink, sig, ti.keys)
	})
	tok, err := jwt.Parse([]byte(raw),
		jwt.WithKeyProvider(keys),
		jwt.WithContext(ctx),
		jwt.WithClock(jwt.ClockFunc(func() time.Time { return now })),
		jwt.WithAcceptableSkew(maxSkew),
		jwt.WithValidator(jwt.ValidatorFunc(a.audienceOf)),
		jwt.WithRequiredClaim(jwt.IssuerKey),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
	)
	if err != nil {
		return nil, time.Time{}, err
	}
	exp, _ := tok.Expiration()
	p, err := principalOf(tok)
	if err != nil {
		return nil, time.Time{}, err
	}
	p.Expires = exp
	p.FHIRUser = a.localReference(p.FHIRUser)
	return p, exp, nil
}

// localReference reduces a fhirUser given as an absolute URL under the
// server's own base, as SMART App Launch allows, to the relative
// reference the access rules compare (Practitioner/123). A URL of any
// other base is left as it is: it names no resource of this server, so
// it reaches no patient under the care-team rule.
func (a *Authenticator) localReference(fhirUser string) string {
	if a.base == "" {
		return fhirUser
	}
	if rest, ok := strings.CutPrefix(fhirUser, a.base+"/"); ok && rest != "" {
		return rest
	}
	return fhirUser
}

// audienceOf checks that tok names the audience its issuer's tokens must
// name, as aud or among the values of aud.
func (a *Authenticator) audienceOf(_ context.Context, tok jwt.Token) error {
	iss, _ := tok.Issuer()
	ti, ok := a.issuers[iss]
	if !ok {
		return errors.New("untrusted issuer")
	}
	aud, _ := tok.Audience()
	for _, v := range aud {
		if v == ti.audience {
			return nil
		}
	}
	return errors.New("wrong audience")
}

// principalOf reads the claims SMART tokens carry.
func principalOf(tok jwt.Token) (*access.Principal, error) {
	p := &access.Principal{}
	p.Issuer, _ = tok.Issuer()
	p.Subject, _ = tok.Subject()
	for name, dst := range map[string]*string{
		"client_id": &p.ClientID, "fhirUser": &p.FHIRUser, "patient": &p.Patient, "organization": &p.Organization,
	} {
		if err := stringClaim(tok, name, dst); err != nil {
			return nil, err
		}
	}
	if p.ClientID == "" {
		if err := stringClaim(tok, "azp", &p.ClientID); err != nil {
			return nil, err
		}
	}
	var err error
	switch {
	case tok.Has("scope"):
		var list string
		if err := stringClaim(tok, "scope", &list); err != nil {
			return nil, err
		}
		p.Scopes, _, err = access.ParseScopes(list)
	case tok.Has("scp"):
		var list []string
		if list, err = stringsClaim(tok, "scp"); err == nil {
			p.Scopes, _, err = access.ParseScopeList(list)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("scopes: %w", err)
	}
	return p, nil
}

// stringClaim reads an optional string claim; another type is an error.
func stringClaim(tok jwt.Token, name string, dst *string) error {
	if !tok.Has(name) {
		return nil
	}
	var v any
	if err := tok.Get(name, &v); err != nil {
		return fmt.Errorf("claim %s: %w", name, err)
	}
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("claim %s is not a string", name)
	}
	*dst = s
	return nil
}

// stringsClaim reads a claim holding an array of strings.
func stringsClaim(tok jwt.Token, name string) ([]string, error) {
	var v any
	if err := tok.Get(name, &v); err != nil {
		return nil, fmt.Errorf("claim %s: %w", name, err)
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("claim %s is not an array", name)
	}
	out := make([]string, len(list))
	for i, e := range list {
		if out[i], ok = e.(string); !ok {
			return nil, fmt.Errorf("claim %s holds a non-string", name)
		}
	}
	return out, nil
}

// tokenCache remembers the principals of verified tokens, by the hash of
// the token, until they expire: verifying a signature on every request
// would cost more than the request.
type tokenCache struct {
	mu      sync.Mutex
	entries map[[sha256.Size]byte]cachedToken
	max     int
}

type cachedToken struct {
	p     *access.Principal
	until time.Time
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{entries: map[[sha256.Size]byte]cachedToken{}, max: max}
}

// get returns a copy of the principal of a cached token still valid at now.
func (c *tokenCache) get(key [sha256.Size]byte, now time.Time) (*access.Principal, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	if !now.Before(e.until) {
		delete(c.entries, key)
		return nil, false
	}
	p := *e.p
	return &p, true
}

// put caches p until until. A full cache first drops its expired tokens,
// then, if still full, everything: only verified tokens get here, so this
// happens only with more live tokens than max.
func (c *tokenCache) put(key [sha256.Size]byte, p *access.Principal, until, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k, e := range c.entries {
			if !now.Before(e.until) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			clear(c.entries)
		}
	}
	c.entries[key] = cachedToken{p: p, until: until}
}
