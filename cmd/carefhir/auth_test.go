package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"carefhir/server/auth"
	"carefhir/server/auth/authtest"
	"carefhir/store"
	"carefhir/store/mongo/ferrettest"
	"carefhir/store/sqlite"
)

func TestServeRefusesToExposeAnOpenServer(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "db.example:0"} {
		t.Run(addr, func(t *testing.T) {
			opened := false
			factories := map[string]engineFactory{
				engineSQLite: func(context.Context, *serveConfig) (store.Store, error) { opened = true; return &fakeStore{}, nil },
			}
			cfg := &serveConfig{Addr: addr, DataDir: t.TempDir(), ShutdownTimeout: time.Second}
			err := serve(context.Background(), cfg, factories, discardLogger(), "test")
			var ue *usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--auth FILE") || !strings.Contains(err.Error(), "--insecure-no-auth") {
				t.Errorf("serve: %v; want a usage error naming --auth and --insecure-no-auth", err)
			}
			if opened {
				t.Error("the store was opened before refusing")
			}
		})
	}
	t.Run("contradiction", func(t *testing.T) {
		cfg := &serveConfig{Addr: "127.0.0.1:0", AuthFile: "auth.yaml", InsecureNoAuth: true}
		if err := serve(context.Background(), cfg, nil, discardLogger(), "test"); err == nil || !strings.Contains(err.Error(), "contradict") {
			t.Errorf("--auth with --insecure-no-auth: %v", err)
		}
	})
	for _, tt := range []struct {
		name string
		cfg  serveConfig
		warn string
	}{
		{"loopback", serveConfig{Addr: "127.0.0.1:0"}, "give --auth FILE"},
		{"insecure-no-auth", serveConfig{Addr: "0.0.0.0:0", InsecureNoAuth: true}, "(--insecure-no-auth)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs strings.Builder
			factories := map[string]engineFactory{
				engineSQLite: func(context.Context, *serveConfig) (store.Store, error) { return &fakeStore{}, nil },
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			cfg := tt.cfg
			cfg.DataDir, cfg.ShutdownTimeout = t.TempDir(), time.Second
			if err := serve(ctx, &cfg, factories, slog.New(slog.NewTextHandler(&logs, nil)), "test"); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(logs.String(), "level=WARN msg=\"serving without authentication") || !strings.Contains(logs.String(), tt.warn) {
				t.Errorf("logs lack the warning:\n%s", logs.String())
			}
		})
	}
}

func TestClientAddAndKeysRotate(t *testing.T) {
	dir := t.TempDir()
	jwks := authtest.WriteJWKS(t, dir, "gp.jwks.json", authtest.NewKey(t, jwa.ES384()))
	file := filepath.Join(dir, "auth.yaml")
	var out strings.Builder
	args := []string{"client", "add", "--auth", file, "--id", "gp-system-b82617", "--jwks", jwks,
		"--scopes", "system/Patient.rs,system/Appointment.cruds", "--organization", "B82617"}
	if err := run(context.Background(), args, env(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	cfg, err := auth.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Clients) != 1 || cfg.Clients[0].Organization != "B82617" || len(cfg.Clients[0].Scopes) != 2 {
		t.Errorf("clients %+v", cfg.Clients)
	}
	err = run(context.Background(), append(args[:len(args)-4], "--scopes", "user/Patient.rs"), env(nil), &out, io.Discard)
	if err == nil {
		t.Error("a second client with the same id, and user/ scopes: no error")
	}
	if code := exitCode(run(context.Background(), []string{"client", "remove"}, env(nil), &out, io.Discard), io.Discard); code != 2 {
		t.Errorf("client remove: exit code %d, want 2", code)
	}

	// keys jwks turns a PEM public key, as openssl writes it, into a JWKS.
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pubPEM := filepath.Join(dir, "pub.pem")
	if err := os.WriteFile(pubPEM, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"keys", "jwks", pubPEM}, env(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []struct{ Kty, Kid, Use, D string }
	}
	if err := json.Unmarshal([]byte(out.String()), &set); err != nil || len(set.Keys) != 1 ||
		set.Keys[0].Kty != "RSA" || set.Keys[0].Kid == "" || set.Keys[0].Use != "sig" || set.Keys[0].D != "" {
		t.Errorf("keys jwks printed %s (%v)", out.String(), err)
	}
	privDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	privPEM := filepath.Join(dir, "priv.pem")
	if err := os.WriteFile(privPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"keys", "jwks", privPEM}, env(nil), io.Discard, io.Discard); err == nil {
		t.Error("keys jwks printed a private key")
	}

	data := t.TempDir()
	st, err := sqlite.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := run(context.Background(), []string{"keys", "rotate", "--data", data}, env(nil), &out, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	kr, err := auth.OpenKeyring(filepath.Join(data, auth.KeyringFile), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if kr.PublicKeys().Len() != 2 {
		t.Errorf("after two rotations: %d keys, want the current and the one before", kr.PublicKeys().Len())
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool trusting it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "carefhir test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestServeTLSWithAuth(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	gp := authtest.NewKey(t, jwa.RS384())
	jwks := authtest.WriteJWKS(t, dir, "gp.jwks.json", gp)
	authFile := filepath.Join(dir, "auth.yaml")
	if err := auth.AddClient(authFile, auth.Client{ID: "gp-system", JWKS: jwks, Scopes: []string{"system/*.rs"}}); err != nil {
		t.Fatal(err)
	}
	p := start(t, "--data", filepath.Join(dir, "data"), "--tls-cert", certFile, "--tls-key", keyFile, "--auth", authFile)
	if !strings.HasPrefix(p.base, "https://127.0.0.1:") {
		t.Fatalf("base URL %s, want https", p.base)
	}
	tlsClient := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	resp, err := tlsClient.Get(p.base + "/Patient")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Strict-Transport-Security") == "" || resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("no token over TLS: %d, HSTS %q, TLS version %x", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"), resp.TLS.Version)
	}

	root := strings.TrimSuffix(p.base, "/fhir")
	assertion := gp.Sign(t, authtest.Assertion("gp-system", root+"/auth/token"))
	form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {auth.AssertionType},
		"client_assertion": {assertion}, "scope": {"system/Patient.rs"}}
	resp, err = tlsClient.PostForm(root+"/auth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("token request: %d, %v", resp.StatusCode, err)
	}
	req, _ := http.NewRequest("GET", p.base+"/Patient", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = tlsClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("search with the server's own token: %d", resp.StatusCode)
	}
	// With authentication and no --metrics-addr, /metrics is served
	// nowhere, and the start-up line says so.
	if logs := p.logs.String(); !strings.Contains(logs, `"metrics":"not served"`) {
		t.Errorf("the start-up line names where metrics are served, though they are not:\n%s", logs)
	}
	// Neither the assertion nor the token reaches the log.
	if logs := p.logs.String(); strings.Contains(logs, tok.AccessToken) || strings.Contains(logs, assertion) {
		t.Error("a token was logged")
	}

	// The health check, run with the server's environment, asks over HTTPS
	// and trusts the certificate the server was given; it refuses a server
	// presenting another one.
	serverEnv := env(map[string]string{"CAREFHIR_ADDR": strings.TrimPrefix(root, "https://"), "CAREFHIR_TLS_CERT": certFile, "CAREFHIR_TLS_KEY": keyFile})
	var out bytes.Buffer
	if err := run(t.Context(), []string{"probe"}, serverEnv, &out, io.Discard); err != nil || !strings.Contains(out.String(), `"status":"ok"`) {
		t.Errorf("probe of a server serving HTTPS: %v %s", err, out.String())
	}
	otherCert, _, _ := selfSigned(t, t.TempDir())
	err = run(t.Context(), []string{"probe", "--tls-cert", otherCert}, serverEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "not in "+otherCert) {
		t.Errorf("probe trusting another certificate: %v, want a refusal", err)
	}

	old := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if resp, err := old.Get(p.base + "/metadata"); err == nil {
		resp.Body.Close()
		t.Error("a TLS 1.1 client was served")
	}
}

func TestServeBinaryRefusesOpenWildcard(t *testing.T) {
	cmd := exec.Command(binary(t), "serve", "--addr", "0.0.0.0:0", "--data", t.TempDir())
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "refusing to serve") {
		t.Errorf("carefhir serve --addr 0.0.0.0:0: %v\n%s", err, out)
	}
}

// The MLLP listener has no authentication, whatever --auth says of the
// HTTP API: on an address other hosts reach, serve warns that anyone who
// can reach it writes records, where it said nothing.
func TestServeWarnsOfReachableMLLP(t *testing.T) {
	const warning = "the MLLP listener has no authentication"
	for addr, warned := range map[string]bool{"0.0.0.0:0": true, "127.0.0.1:0": false} {
		p := start(t, "--data", t.TempDir(), "--mllp-addr", addr)
		if got := strings.Contains(p.logs.String(), warning); got != warned {
			t.Errorf("--mllp-addr %s: warned %v, want %v:\n%s", addr, got, warned, p.logs.String())
		}
	}
}

// Servers on one MongoDB database sign their tokens with the keys kept in
// it, each with a data directory of its own: a token one issues is
// accepted by the other, whichever issued it, and keys rotate rotates
// them for both.
func TestServersOnOneMongoDBShareSigningKeys(t *testing.T) {
	dir := t.TempDir()
	uri := ferrettest.Start(t)
	gp := authtest.NewKey(t, jwa.RS384())
	jwks := authtest.WriteJWKS(t, dir, "gp.jwks.json", gp)
	authFile := filepath.Join(dir, "auth.yaml")
	if err := auth.AddClient(authFile, auth.Client{ID: "gp-system", JWKS: jwks, Scopes: []string{"system/*.rs"}}); err != nil {
		t.Fatal(err)
	}
	// Behind one load balancer, the replicas share the public base URL.
	const base = "http://fhir.example.nhs.uk/fhir"
	startReplica := func() string {
		addr := freeAddr(t)
		start(t, "--addr", addr, "--base-url", base, "--mongo-uri", uri, "--auth", authFile,
			"--data", t.TempDir(), "--export-dir", t.TempDir())
		return "http://" + addr
	}
	replicas := []string{startReplica(), startReplica()}
	token := func(root string) string {
		t.Helper()
		form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {auth.AssertionType},
			"client_assertion": {gp.Sign(t, authtest.Assertion("gp-system", strings.TrimSuffix(base, "/fhir")+"/auth/token"))},
			"scope":            {"system/Patient.rs"}}
		resp, err := httpClient.PostForm(root+"/auth/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("token from %s: %d, %v", root, resp.StatusCode, err)
		}
		return tok.AccessToken
	}
	search := func(root, token string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, root+"/fhir/Patient", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i, issuer := range replicas {
		tok := token(issuer)
		for j, other := range replicas {
			if code := search(other, tok); code != http.StatusOK {
				t.Errorf("a token of replica %d searched on replica %d: %d, want 200", i, j, code)
			}
		}
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"keys", "rotate", "--mongo-uri", uri}, env(nil), &out, io.Discard); err != nil {
		t.Fatalf("keys rotate --mongo-uri: %v", err)
	}
	// Restarted after the rotation, a replica signs with the new key,
	// which the one not yet restarted does not know, and still accepts
	// what the other signed with the key retired.
	renewed := startReplica()
	if code := search(replicas[0], token(renewed)); code != http.StatusUnauthorized {
		t.Errorf("a token signed with the new key, on a replica started before the rotation: %d, want 401", code)
	}
	if code := search(renewed, token(replicas[0])); code != http.StatusOK {
		t.Errorf("a token signed with the retired key, on a replica started after the rotation: %d, want 200", code)
	}
}

// --rate-burst overrides the burst of the auth file's rate_limit and keeps
// its rate, where the file's whole rate_limit applied and the flag was
// ignored; a burst with no rate from either is refused (exit status 2),
// where the server served with no limit at all.
func TestServeRateBurstFlag(t *testing.T) {
	dir := t.TempDir()
	authFile := filepath.Join(dir, "auth.yaml")
	if err := os.WriteFile(authFile, []byte("rate_limit: {per_second: 0.01, burst: 1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, "--data", t.TempDir(), "--auth", authFile, "--rate-burst", "3")
	for i := range 4 {
		want := http.StatusOK
		if i == 3 {
			want = http.StatusTooManyRequests
		}
		if code, body := httpGet(t, p.base+"/metadata"); code != want {
			t.Fatalf("request %d of a burst of 3: %d, want %d: %.200s", i+1, code, want, body)
		}
	}

	// A server that starts is stopped, failing the test, not waited for.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--rate-burst", "5")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "--rate-limit") {
		t.Errorf("serve --rate-burst without a rate: %v\n%s", err, out)
	}
}
