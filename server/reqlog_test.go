package server_test

import (
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"carefhir/ops/reqlog"
	"carefhir/server"
)

// The request lines a server logs through ops/reqlog, which writes them
// itself, are those slog's TextHandler writes, but for each request's
// time and duration: paths that need quoting and that slog alone quotes
// included.
func TestRequestLinesAsTextHandler(t *testing.T) {
	paths := []string{"/metadata", "/Patient/unknown", "/Patient/a%20b", "/Patient/x%3Dy", "/Patient/%22q%22", "/Patient/%C3%A9", "/Patient/%E2%80%A8"}
	timing := regexp.MustCompile(`(time|duration)=\S+`)
	lines := func(handler func(io.Writer) slog.Handler) string {
		logs := &logBuffer{}
		c := newClient(t, engines[0].Open(t), func(cfg *server.Config) { cfg.Logger = slog.New(handler(logs)) })
		for i, p := range paths {
			c.do("GET", p, "", "X-Request-Id", "line-"+strings.Repeat("x", i))
		}
		return timing.ReplaceAllString(logs.String(), "$1=T")
	}
	want := lines(func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, nil) })
	got := lines(func(w io.Writer) slog.Handler { return reqlog.New(w, nil) })
	if strings.Count(want, "msg=request") != len(paths) {
		t.Fatalf("want %d request lines from slog, got:\n%s", len(paths), want)
	}
	if got != want {
		t.Errorf("request lines through reqlog:\n%s\nwant, as slog writes them:\n%s", got, want)
	}
}
