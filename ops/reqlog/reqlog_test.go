package reqlog

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// LogRequest writes the very bytes slog's TextHandler writes for the same
// record, for values that need no quoting, need it, or are left to slog.
func TestLogRequestAsTextHandler(t *testing.T) {
	paths := []string{
		"/fhir/Patient/123", "/fhir/metadata", "", "/fhir/a b", "/fhir/x=y", `/fhir/"q"`, `/fhir/back\slash`,
		"/fhir/tab\there", "/fhir/nl\n", "/fhir/del\x7f", "/fhir/<&>", "/fhir/é", "/fhir/\xff", "/fhir/\u00a0", "/fhir/$everything",
	}
	zones := []*time.Location{time.UTC, time.FixedZone("BST", 3600), time.FixedZone("odd", -(3*3600 + 30*60))}
	times := []time.Time{
		time.Date(2026, 12, 6, 18, 47, 32, 72_000_000, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 999_999_999, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 100_000, time.UTC),
	}
	durations := []time.Duration{0, 1, 999, 717_031, 1500 * time.Millisecond, 2 * time.Hour}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteByte(byte(rng.IntN(0x80)))
		}
		paths = append(paths, b.String())
	}
	written := 0
	for i, path := range paths {
		tm := times[i%len(times)].In(zones[i%len(zones)])
		d := durations[i%len(durations)]
		for _, id := range []string{"01a24cae-c5f4-72a4-a8df-ee5a91d8caba", "client.id_1", ""} {
			var got, want bytes.Buffer
			h := New(&got, nil).(*Handler)
			ok := h.LogRequest(tm, "GET", path, 200, d, id)
			if !ok {
				if ascii(path) {
					t.Errorf("%q: not written", path)
				}
				continue
			}
			written++
			r := slog.NewRecord(tm, slog.LevelInfo, "request", 0)
			r.AddAttrs(slog.String("method", "GET"), slog.String("path", path), slog.Int("status", 200),
				slog.Duration("duration", d), slog.String("request_id", id))
			if err := slog.NewTextHandler(&want, nil).Handle(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Errorf("path %q, id %q:\n got %q\nwant %q", path, id, got.String(), want.String())
			}
		}
	}
	if written < 3*200 {
		t.Errorf("%d lines written, want most of them", written)
	}
}

// Below its level, or with options that change the line, nothing is
// written by LogRequest; records still go through the TextHandler.
func TestLogRequestLeftToSlog(t *testing.T) {
	var out bytes.Buffer
	h := New(&out, &slog.HandlerOptions{Level: slog.LevelWarn}).(*Handler)
	if h.LogRequest(time.Now(), "GET", "/fhir/metadata", 200, time.Millisecond, "id") || out.Len() != 0 {
		t.Errorf("written below the level: %q", out.String())
	}
	if _, ok := New(&out, &slog.HandlerOptions{AddSource: true}).(*Handler); ok {
		t.Error("a Handler with AddSource, whose lines LogRequest does not write")
	}
	slog.New(New(&out, nil)).Warn("stopped", "n", 1)
	if !strings.Contains(out.String(), "level=WARN msg=stopped n=1") {
		t.Errorf("a record through the handler: %q", out.String())
	}
}
