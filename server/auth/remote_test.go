package auth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"carefhir/server/auth"
	"carefhir/server/auth/authtest"
)

// TestRemoteKeys trusts an issuer whose keys are at an https URL: they are
// fetched, and fetched again when a token names a key not seen yet (the
// issuer rotated), but not more than once a minute.
func TestRemoteKeys(t *testing.T) {
	first, second := authtest.NewKey(t, jwa.ES256()), authtest.NewKey(t, jwa.RS384())
	var mu sync.Mutex
	published := []*authtest.Key{first}
	var fetches atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		mu.Lock()
		set := jwk.NewSet()
		for _, k := range published {
			_ = set.AddKey(k.Public(t))
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	defer srv.Close()

	dir := t.TempDir()
	cfg, err := auth.Parse([]byte("issuers: [{issuer: https://idp.test, jwks: '" + srv.URL + "/jwks'}]"))
	if err != nil {
		t.Fatal(err)
	}
	kr, err := auth.OpenKeyring(filepath.Join(dir, auth.KeyringFile), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc, err := auth.New(ctx, cfg, auth.Options{BaseURL: base, Keyring: kr, HTTPClient: srv.Client(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	token := func(k *authtest.Key) string {
		return k.Sign(t, authtest.Claims("https://idp.test", base, map[string]any{"sub": k.KeyID()}))
	}
	// The keys are first fetched in the background as the server starts;
	// counting starts once that fetch has reached the issuer.
	for deadline := time.Now().Add(10 * time.Second); fetches.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the issuer's keys were never fetched")
		}
	}
	if _, err := svc.Authenticate(request(token(first))); err != nil {
		t.Fatalf("token signed by the published key: %v", err)
	}

	mu.Lock()
	published = append(published, second)
	mu.Unlock()
	// Within a minute of the last fetch a new kid waits for the next one.
	clock.Add(int64(30 * time.Second))
	before := fetches.Load()
	if _, err := svc.Authenticate(request(token(second))); err == nil {
		t.Error("a new key was fetched within a minute of the last fetch")
	}
	clock.Add(int64(time.Minute))
	if _, err := svc.Authenticate(request(token(second))); err != nil {
		t.Fatalf("token signed by the issuer's new key, a minute on: %v", err)
	}
	if got := fetches.Load() - before; got != 1 {
		t.Errorf("%d fetches for the new key, want 1", got)
	}
}
