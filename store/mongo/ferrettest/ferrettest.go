// Package ferrettest starts an embedded FerretDB for tests, so that tests of
// the MongoDB engine, and of anything built on it, need no database installed.
//
// FerretDB v1 answers some queries differently from MongoDB; the store/mongo
// package documents the subset it keeps to. Only tests import this package.
//
// Every call to Start runs a server of its own, which takes a few tens of
// milliseconds, so tests share no state and may run in parallel. StartDir
// runs one on data kept in a given directory, so that a test can kill a
// server, or the process running it, and start another on the same data.
package ferrettest

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// Start starts an embedded FerretDB (SQLite handler, data in t.TempDir(),
// listening on a free loopback port) and returns a mongodb:// URI naming a
// fresh, empty database on it. The server stops when the test ends.
//
// Clients connected to the URI must be disconnected before then, in a cleanup
// registered after Start (cleanups run last-registered first): a server that
// still has clients waits three seconds for them before stopping.
func Start(t testing.TB) string {
	t.Helper()
	return StartDir(t, t.TempDir())
}

// StartDir is Start with the server's data in dir, which may hold the data
// of an earlier server: the database in the URI then holds what that server
// left.
func StartDir(t testing.TB, dir string) string {
	t.Helper()
	logs := &testWriter{t: t}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		// FerretDB's debug logging formats every document it handles, which
		// slows it by orders of magnitude; errors are all a test needs.
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelError})),
		Handler:   "sqlite",
		SQLiteURL: (&url.URL{Scheme: "file", Path: dir + "/"}).String(),
	})
	if err != nil {
		t.Fatalf("ferrettest: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		defer logs.stop()
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("ferrettest: stop: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("ferrettest: FerretDB did not stop within 30s")
		}
	})

	// MongoDBURI waits until the listener is up; it returns "mongodb://host:port/".
	u, err := url.Parse(f.MongoDBURI())
	if err != nil {
		t.Fatalf("ferrettest: %v", err)
	}
	// Every call has a server of its own, so any name is a fresh database.
	u.Path = "/" + Database
	return u.String()
}

// Database is the name of the database in the URIs Start returns.
const Database = "carefhirtest"

// testWriter sends FerretDB's log lines to the test log until the server has
// stopped: logging to a finished test panics.
type testWriter struct {
	t       testing.TB
	mu      sync.Mutex
	stopped bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
}
