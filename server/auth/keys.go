package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// algorithms are the signature algorithms accepted on access tokens and
// client assertions: those SMART names. Everything else, alg "none" and
// the HMAC family above all, is refused before any key is looked at.
var algorithms = []jwa.SignatureAlgorithm{jwa.RS256(), jwa.RS384(), jwa.ES256(), jwa.ES384()}

// algorithmNames lists algorithms for the SMART configuration.
func algorithmNames() []string {
	names := make([]string, len(algorithms))
	for i, a := range algorithms {
		names[i] = a.String()
	}
	return names
}

func allowedAlgorithm(alg jwa.SignatureAlgorithm) bool {
	for _, a := range algorithms {
		if a == alg {
			return true
		}
	}
	return false
}

// keySource gives the current public keys of an issuer or a client.
type keySource interface {
	keys(ctx context.Context) (jwk.Set, error)
	// refresh fetches the keys anew when they may have changed (a kid not
	// seen yet: the issuer rotated its keys).
	refresh(ctx context.Context) (jwk.Set, error)
}

// staticKeys are keys read once from a file.
type staticKeys struct{ set jwk.Set }

func (s staticKeys) keys(context.Context) (jwk.Set, error)    { return s.set, nil }
func (s staticKeys) refresh(context.Context) (jwk.Set, error) { return s.set, nil }

// refetchInterval bounds how often a signature with an unknown key makes
// the keys of a URL be fetched again: tokens naming made-up kids must not
// turn the server against the issuer.
const refetchInterval = time.Minute

// remoteKeys are keys fetched from an https URL and refreshed in the
// background by the cache, as the issuer's Cache-Control allows.
type remoteKeys struct {
	cache *jwk.Cache
	url   string
	now   func() time.Time

	mu          sync.Mutex
	lastRefetch time.Time
}

func (r *remoteKeys) keys(ctx context.Context) (jwk.Set, error) {
	if set, err := r.cache.Lookup(ctx, r.url); err == nil {
		// Fetched in the background when the source was opened: that
		// fetch counts as the last one, or the first unknown kid would
		// fetch again at once.
		r.mu.Lock()
		if r.lastRefetch.IsZero() {
			r.lastRefetch = r.now()
		}
		r.mu.Unlock()
		return set, nil
	}
	// Not fetched yet: the issuer was unreachable when the server started.
	return r.refresh(ctx)
}

func (r *remoteKeys) refresh(ctx context.Context) (jwk.Set, error) {
	r.mu.Lock()
	now := r.now()
	due := now.Sub(r.lastRefetch) >= refetchInterval
	if due {
		r.lastRefetch = now
	}
	r.mu.Unlock()
	var set jwk.Set
	var err error
	if due {
		set, err = r.cache.Refresh(ctx, r.url)
	} else {
		set, err = r.cache.Lookup(ctx, r.url)
	}
	if err != nil {
		return nil, fmt.Errorf("keys from %s: %w", r.url, err)
	}
	return set, nil
}

// offerKeys puts into sink the keys of src that may verify sig, fetching
// src anew when none does.
func offerKeys(ctx context.Context, sink jws.KeySink, sig *jws.Signature, src keySource) error {
	if set, err := src.keys(ctx); err == nil && sendKeys(sink, sig, set) == nil {
		return nil
	}
	set, err := src.refresh(ctx)
	if err != nil {
		return err
	}
	return sendKeys(sink, sig, set)
}

// keyFetcher opens key sources, sharing one cache for the URLs.
type keyFetcher struct {
	ctx    context.Context
	client *http.Client
	now    func() time.Time
	cache  *jwk.Cache
}

// open returns the key source at location: an https URL, or a file of
// public keys.
func (f *keyFetcher) open(location string) (keySource, error) {
	if !isURL(location) {
		set, err := readPublicKeys(location)
		if err != nil {
			return nil, err
		}
		return staticKeys{set}, nil
	}
	if f.cache == nil {
		cache, err := jwk.NewCache(f.ctx, httprc.NewClient())
		if err != nil {
			return nil, fmt.Errorf("start the key cache: %w", err)
		}
		f.cache = cache
	}
	opts := []jwk.RegisterOption{jwk.WithWaitReady(false)}
	if f.client != nil {
		opts = append(opts, jwk.WithHTTPClient(f.client))
	}
	// Not waiting: an issuer that is down at start-up must not stop the
	// server; its tokens are refused until its keys arrive.
	if err := f.cache.Register(f.ctx, location, opts...); err != nil {
		return nil, fmt.Errorf("keys from %s: %w", location, err)
	}
	return &remoteKeys{cache: f.cache, url: location, now: f.now}, nil
}

// readPublicKeys reads a JWKS file that must hold public keys of the
// accepted kinds only: a private or symmetric key there is an operator's
// mistake that would otherwise go unnoticed.
func readPublicKeys(path string) (jwk.Set, error) {
	set, err := jwk.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read keys %s: %w", path, err)
	}
	if err := checkPublic(set); err != nil {
		return nil, fmt.Errorf("keys %s: %w", path, err)
	}
	return set, nil
}

// checkPublic refuses a set with no keys or with any key other than an RSA
// or P-256/P-384 public key.
func checkPublic(set jwk.Set) error {
	if set.Len() == 0 {
		return errors.New("no keys")
	}
	for i := range set.Len() {
		key, _ := set.Key(i)
		// Private key types also have every method of the public ones:
		// they are matched first.
		switch k := key.(type) {
		case jwk.RSAPrivateKey, jwk.ECDSAPrivateKey, jwk.OKPPrivateKey:
			return fmt.Errorf("key %d is a private key: give the public keys only", i)
		case jwk.RSAPublicKey:
		case jwk.ECDSAPublicKey:
			if crv, _ := k.Crv(); crv != jwa.P256() && crv != jwa.P384() {
				return fmt.Errorf("key %d: curve %s is not accepted: use P-256 or P-384", i, crv)
			}
		default:
			return fmt.Errorf("key %d: type %s is not accepted: use RSA or EC keys", i, key.KeyType())
		}
	}
	return nil
}

// suits reports whether key may verify a signature made with alg: an RSA
// key for RS256/RS384, an EC key on the matching curve for ES256/ES384,
// and never a key whose own alg names another algorithm.
func suits(key jwk.Key, alg jwa.SignatureAlgorithm) bool {
	if ka, ok := key.Algorithm(); ok && ka.String() != alg.String() {
		return false
	}
	switch k := key.(type) {
	case jwk.RSAPublicKey:
		return alg == jwa.RS256() || alg == jwa.RS384()
	case jwk.ECDSAPublicKey:
		crv, _ := k.Crv()
		return alg == jwa.ES256() && crv == jwa.P256() || alg == jwa.ES384() && crv == jwa.P384()
	}
	return false
}

// errNoKey is a signature no trusted key may verify.
var errNoKey = errors.New("no trusted key for this signature")

// sendKeys puts into sink the keys of set that may verify sig: of an
// accepted algorithm, matching its kid when it has one. jws then verifies
// the signature with them; nothing here checks a signature itself.
func sendKeys(sink jws.KeySink, sig *jws.Signature, set jwk.Set) error {
	h := sig.ProtectedHeaders()
	alg, ok := h.Algorithm()
	if !ok || !allowedAlgorithm(alg) {
		return errNoKey
	}
	kid, _ := h.KeyID()
	found := false
	for i := range set.Len() {
		key, _ := set.Key(i)
		if id, _ := key.KeyID(); kid != "" && id != kid {
			continue
		}
		if !suits(key, alg) {
			continue
		}
		sink.Key(alg, key)
		found = true
	}
	if !found {
		return errNoKey
	}
	return nil
}

// PublicJWKS converts PEM public keys (as "openssl pkey -pubout" writes
// them) to a JWKS document, each key with its RFC 7638 thumbprint as kid
// and marked for signatures: the form the auth file's jwks files take.
func PublicJWKS(pemData []byte) ([]byte, error) {
	set, err := jwk.Parse(pemData, jwk.WithPEM(true))
	if err != nil {
		return nil, fmt.Errorf("read PEM keys: %w", err)
	}
	if err := checkPublic(set); err != nil {
		return nil, err
	}
	for i := range set.Len() {
		key, _ := set.Key(i)
		if err := jwk.AssignKeyID(key); err != nil {
			return nil, err
		}
		if err := key.Set(jwk.KeyUsageKey, "sig"); err != nil {
			return nil, err
		}
	}
	return json.MarshalIndent(set, "", "  ")
}
