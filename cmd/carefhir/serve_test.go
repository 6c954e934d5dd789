package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"carefhir/store"
	"carefhir/store/sqlite"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// blockingHandler answers once release is closed, after signalling started.
func blockingHandler(started chan<- struct{}, release <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "done")
	})
}

func TestServeHTTPLetsInFlightRequestsFinish(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	started, release := make(chan struct{}, 1), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- serveHTTP(ctx, ln, newHTTPServer(blockingHandler(started, release), discardLogger()), time.Minute, discardLogger())
	}()

	type reply struct {
		body string
		err  error
	}
	replied := make(chan reply, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/slow")
		if err != nil {
			replied <- reply{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		replied <- reply{string(b), err}
	}()
	<-started
	cancel()

	// Shutdown closes the listener first; wait for that before letting the
	// request finish, so the request is known to be in flight during it.
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
	close(release)

	if r := <-replied; r.err != nil || r.body != "done" {
		t.Errorf("in-flight request: %q, %v; want it answered", r.body, r.err)
	}
	if err := <-served; err != nil {
		t.Errorf("serveHTTP after a graceful shutdown: %v", err)
	}
}

func TestServeHTTPShutdownTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}, 1), make(chan struct{})
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- serveHTTP(ctx, ln, newHTTPServer(blockingHandler(started, release), discardLogger()), 50*time.Millisecond, discardLogger())
	}()
	go func() {
		if resp, err := http.Get("http://" + ln.Addr().String() + "/stuck"); err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	cancel()
	if err := <-served; err == nil || !strings.Contains(err.Error(), "shutdown") {
		t.Errorf("serveHTTP with a request outliving the timeout: %v, want a shutdown error", err)
	}
}

func TestServeHTTPListenerFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	err = serveHTTP(context.Background(), ln, newHTTPServer(http.NotFoundHandler(), discardLogger()), time.Second, discardLogger())
	if err == nil {
		t.Error("serveHTTP on a closed listener succeeded")
	}
}

// fakeStore is a store.Store that records Close; its other methods are
// those of the nil interface it embeds, which serve must not call.
type fakeStore struct {
	store.Store
	closed bool
}

func (s *fakeStore) Close() error {
	s.closed = true
	return nil
}

func TestServeChoosesEngine(t *testing.T) {
	tests := []struct {
		name     string
		mongoURI string
		want     string
	}{
		{"sqlite", "", engineSQLite},
		{"mongo", "mongodb://db.example/carefhir", engineMongo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opened string
			factories := map[string]engineFactory{}
			for _, name := range []string{engineSQLite, engineMongo} {
				factories[name] = func(context.Context, *serveConfig) (store.Store, error) {
					opened = name
					return nil, errors.New("unreachable")
				}
			}
			cfg := &serveConfig{Addr: "127.0.0.1:0", DataDir: t.TempDir(), MongoURI: tt.mongoURI, ShutdownTimeout: time.Second}
			err := serve(context.Background(), cfg, factories, discardLogger(), "test")
			if opened != tt.want {
				t.Errorf("opened engine %q, want %q", opened, tt.want)
			}
			if err == nil || !strings.Contains(err.Error(), "open "+tt.want+" store: unreachable") {
				t.Errorf("serve error %v, want the open failure", err)
			}
		})
	}
}

func TestServeWithoutEngine(t *testing.T) {
	cfg := &serveConfig{Addr: "127.0.0.1:0", MongoURI: "mongodb://db.example/carefhir"}
	err := serve(context.Background(), cfg, map[string]engineFactory{}, discardLogger(), "test")
	if err == nil || !strings.Contains(err.Error(), "no mongo engine") {
		t.Errorf("serve with no mongo factory: %v", err)
	}
}

func TestServeClosesStore(t *testing.T) {
	fs := &fakeStore{}
	factories := map[string]engineFactory{
		engineSQLite: func(context.Context, *serveConfig) (store.Store, error) { return fs, nil },
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // shut down as soon as serving starts
	cfg := &serveConfig{Addr: "127.0.0.1:0", DataDir: t.TempDir(), ShutdownTimeout: time.Second, InsecureNoAuth: true}
	if err := serve(ctx, cfg, factories, discardLogger(), "test"); err != nil {
		t.Errorf("serve: %v", err)
	}
	if !fs.closed {
		t.Error("store not closed")
	}
}

// TestServeOnTakenPort starts serve on an address another process listens
// on (a second server started by mistake), and on addresses of no
// interface of this host: it fails naming the flag and the address, and
// leaves no database in the new data directory, which it made before
// finding the port taken.
func TestServeOnTakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tests := []struct{ name, addr, flag, value string }{
		{"api", taken.Addr().String(), "", ""},
		{"metrics", "127.0.0.1:0", "metrics-addr", taken.Addr().String()},
		{"mllp", "127.0.0.1:0", "mllp-addr", taken.Addr().String()},
		{"not this host's", "192.0.2.1:1", "", ""}, // TEST-NET-1
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			args := []string{"--addr", tt.addr, "--data", data, "--insecure-no-auth"}
			if tt.flag != "" {
				args = append(args, "--"+tt.flag, tt.value)
			}
			cfg, err := parseServeConfig(args, nil, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			err = serve(t.Context(), cfg, engines(), discardLogger(), "test")
			want := "--addr " + tt.addr
			if tt.flag != "" {
				want = "--" + tt.flag + " " + tt.value
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("serve: %v, want an error naming %s", err, want)
			}
			if _, err := os.Stat(filepath.Join(data, sqlite.FileName)); err == nil {
				t.Errorf("serve made a database in %s before failing to listen", data)
			}
		})
	}
}

// TestServeWithBrokenConfiguration starts serve on a new data directory
// with a file of its configuration missing or wrong: it fails naming it,
// and leaves no database behind, which it made before reading them.
func TestServeWithBrokenConfiguration(t *testing.T) {
	broken := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(broken, []byte("issuers: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(t.TempDir(), "short.yaml")
	if err := os.WriteFile(short, []byte("token_lifetime: 1ns\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"auth file missing", []string{"--auth", filepath.Join(t.TempDir(), "auth.yaml")}, "auth.yaml"},
		{"auth file broken", []string{"--auth", broken}, "broken.yaml"},
		{"token lifetime too short", []string{"--auth", short}, "short.yaml: token_lifetime: 1ns fails gte=1m"},
		{"care codes broken", []string{"--care-codes", broken}, "--care-codes"},
		{"profile not bundled", []string{"--require-profile", "Patient=https://example.org/StructureDefinition/none"}, "--require-profile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			cfg, err := parseServeConfig(append([]string{"--addr", "127.0.0.1:0", "--data", data}, tt.args...), nil, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			err = serve(t.Context(), cfg, engines(), discardLogger(), "test")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("serve: %v, want an error naming %s", err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(data, sqlite.FileName)); err == nil {
				t.Errorf("serve made a database in %s before refusing its configuration", data)
			}
		})
	}
}

// TestServeAddressesDiffer gives two of serve's listeners one address: a
// usage error naming both flags, where the second listener's failure said
// another process held the address.
func TestServeAddressesDiffer(t *testing.T) {
	for _, args := range [][]string{
		{"--addr", "127.0.0.1:28080", "--metrics-addr", "127.0.0.1:28080"},
		{"--addr", "127.0.0.1:28080", "--mllp-addr", "127.0.0.1:28080"},
		{"--metrics-addr", "127.0.0.1:28081", "--mllp-addr", "127.0.0.1:28081"},
	} {
		_, err := parseServeConfig(args, nil, io.Discard)
		if err == nil || exitCode(err, io.Discard) != 2 || !strings.Contains(err.Error(), args[0]) || !strings.Contains(err.Error(), args[2]) {
			t.Errorf("serve %s: %v, want a usage error naming %s and %s", strings.Join(args, " "), err, args[0], args[2])
		}
	}
	// Port 0 picks a free port for each.
	if _, err := parseServeConfig([]string{"--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"}, nil, io.Discard); err != nil {
		t.Errorf("serve on port 0 twice: %v", err)
	}
}
