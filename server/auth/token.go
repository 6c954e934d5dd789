package auth

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"carefhir/ops/cause"
	"carefhir/server/access"
)

// AssertionType is the client_assertion_type of a JWT client assertion
// (RFC 7523 §2.2).
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// maxAssertionLifetime bounds how far ahead a client assertion's exp may
// be: SMART Backend Services allows five minutes.
const maxAssertionLifetime = 5 * time.Minute

// maxTokenRequestBytes bounds a token request body.
const maxTokenRequestBytes = 64 << 10

// client is a registered backend-services client, ready to authenticate.
type client struct {
	id           string
	keys         keySource
	scopes       []access.Scope
	organization string
}

// tokenEndpoint issues access tokens to backend-services clients that
// authenticate with a signed JWT (SMART Backend Services; RFC 6749 §4.4
// with RFC 7523 client authentication).
type tokenEndpoint struct {
	url      string // the aud client assertions must name
	issuer   string
	audience string
	lifetime time.Duration
	clients  map[string]*client
	keyring  *Keyring
	now      func() time.Time
	seen     *jtiSet
}

// oauthError is an RFC 6749 §5.2 error response.
type oauthError struct {
	status      int
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Description }

func oauthErr(code, format string, args ...any) *oauthError {
	return &oauthError{status: http.StatusBadRequest, Code: code, Description: fmt.Sprintf(format, args...)}
}

// tokenResponse is a successful token response (RFC 6749 §5.1).
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
}

func (t *tokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	resp, err := t.token(w, r)
	if err != nil {
		var oe *oauthError
		if !errors.As(err, &oe) {
			cause.Record(r.Context(), fmt.Errorf("token endpoint: %w", err))
			oe = &oauthError{status: http.StatusInternalServerError, Code: "server_error"}
		}
		writeJSON(w, oe.status, oe)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// token handles one token request.
func (t *tokenEndpoint) token(w http.ResponseWriter, r *http.Request) (*tokenResponse, error) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, &oauthError{status: http.StatusMethodNotAllowed, Code: "invalid_request", Description: "use POST"}
	}
	form, err := readForm(w, r)
	if err != nil {
		return nil, err
	}
	switch grant := form.Get("grant_type"); grant {
	case "client_credentials":
	case "":
		return nil, oauthErr("invalid_request", "grant_type is required")
	default:
		return nil, oauthErr("unsupported_grant_type", "only client_credentials is supported")
	}
	switch form.Get("client_assertion_type") {
	case AssertionType:
	case "":
		return nil, oauthErr("invalid_request", "client_assertion_type is required")
	default:
		return nil, oauthErr("invalid_client", "client_assertion_type must be %s", AssertionType)
	}
	assertion := form.Get("client_assertion")
	if assertion == "" {
		return nil, oauthErr("invalid_request", "client_assertion is required")
	}
	cl, err := t.authenticate(r.Context(), assertion)
	if err == nil && form.Get("client_id") != "" && form.Get("client_id") != cl.id {
		// RFC 7521 §4.2: a client_id given must be the assertion's client.
		err = errors.New("client_id is not the assertion's client")
	}
	if err != nil {
		// Which check failed stays here: a caller probing client ids or
		// keys learns nothing.
		return nil, oauthErr("invalid_client", "client authentication failed")
	}
	requested, _, err := access.ParseScopes(form.Get("scope"))
	if err != nil {
		return nil, oauthErr("invalid_scope", "%v", err)
	}
	if len(requested) == 0 {
		return nil, oauthErr("invalid_scope", "request at least one system/ resource scope, such as system/Patient.rs")
	}
	granted := access.Within(requested, cl.scopes)
	if len(granted) == 0 {
		return nil, oauthErr("invalid_scope", "none of the scopes requested is allowed to this client")
	}
	return t.issue(cl, granted)
}

// readForm parses a form-encoded body, refusing repeated parameters
// (RFC 6749 §3.2) and parameters in the query string.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, oauthErr("invalid_request", "send the parameters as application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequestBytes)
	if err := r.ParseForm(); err != nil {
		return nil, oauthErr("invalid_request", "the form cannot be read")
	}
	for name, values := range r.PostForm {
		if len(values) > 1 {
			return nil, oauthErr("invalid_request", "%s is given more than once", name)
		}
	}
	return r.PostForm, nil
}

// authenticate verifies a client assertion (RFC 7523 §3, as SMART Backend
// Services profiles it) and returns its client.
func (t *tokenEndpoint) authenticate(ctx context.Context, assertion string) (*client, error) {
	if len(assertion) > maxTokenBytes || !isCompactJWS(assertion) {
		return nil, errors.New("not a compact JWS")
	}
	var cl *client
	keys := jws.KeyProviderFunc(func(ctx context.Context, sink jws.KeySink, sig *jws.Signature, msg *jws.Message) error {
		// SMART Backend Services: the assertion's header names the key
		// of the client's JWK Set that signed it.
		if kid, ok := sig.ProtectedHeaders().KeyID(); !ok || kid == "" {
			return errors.New("no kid in the header")
		}
		c, ok := t.clients[payloadClaim(msg.Payload(), "iss")]
		if !ok {
			return errors.New("unknown client")
		}
		cl = c
		return offerKeys(ctx, sink, sig, c.keys)
	})
	now := t.now()
	tok, err := jwt.Parse([]byte(assertion),
		jwt.WithKeyProvider(keys),
		jwt.WithContext(ctx),
		jwt.WithClock(jwt.ClockFunc(func() time.Time { return now })),
		jwt.WithAcceptableSkew(maxSkew),
		jwt.WithAudience(t.url),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithRequiredClaim(jwt.JwtIDKey),
		jwt.WithRequiredClaim(jwt.SubjectKey),
	)
	if err != nil {
		return nil, err
	}
	iss, _ := tok.Issuer()
	sub, _ := tok.Subject()
	if cl == nil || iss != cl.id || sub != cl.id {
		return nil, errors.New("iss and sub must both be the client id")
	}
	exp, _ := tok.Expiration()
	if exp.After(now.Add(maxAssertionLifetime + maxSkew)) {
		return nil, errors.New("exp more than five minutes ahead")
	}
	jti, _ := tok.JwtID()
	if !t.seen.use(cl.id+"\x00"+jti, exp.Add(maxSkew), now) {
		return nil, errors.New("jti already used")
	}
	return cl, nil
}

// issue signs an access token granting scopes to cl.
func (t *tokenEndpoint) issue(cl *client, scopes []access.Scope) (*tokenResponse, error) {
	raw := make([]string, len(scopes))
	for i, s := range scopes {
		raw[i] = s.Raw
	}
	scope := strings.Join(raw, " ")
	now := t.now()
	b := jwt.NewBuilder().
		Issuer(t.issuer).
		Audience([]string{t.audience}).
		Subject(cl.id).
		IssuedAt(now).
		Expiration(now.Add(t.lifetime)).
		JwtID(rand.Text()).
		Claim("client_id", cl.id).
		Claim("scope", scope)
	if cl.organization != "" {
		b = b.Claim("organization", cl.organization)
	}
	tok, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("build access token: %w", err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), t.keyring.current))
	if err != nil {
		return nil, fmt.Errorf("sign access token: %w", err)
	}
	return &tokenResponse{
		AccessToken: string(signed),
		TokenType:   "bearer",
		ExpiresIn:   int(t.lifetime / time.Second),
		Scope:       scope,
	}, nil
}

// jtiSet remembers the jti of each client assertion used until it
// expires, so that none is accepted twice (RFC 7523 §3, item 7).
type jtiSet struct {
	mu      sync.Mutex
	used    map[string]time.Time
	sweepAt int
}

func newJTISet() *jtiSet { return &jtiSet{used: map[string]time.Time{}, sweepAt: 1024} }

// use records key until until and reports whether it was new. Expired
// entries are swept as the set grows.
func (s *jtiSet) use(key string, until, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.used[key]; ok && now.Before(exp) {
		return false
	}
	if len(s.used) >= s.sweepAt {
		for k, exp := range s.used {
			if !now.Before(exp) {
				delete(s.used, k)
			}
		}
		s.sweepAt = max(1024, 2*len(s.used))
	}
	s.used[key] = until
	return true
}
