package main

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"carefhir/store"
	"carefhir/store/sqlite"
)

func TestReindexCommand(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlite.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Written without search values, as by a release that indexed less.
	err = st.Put(t.Context(), &store.Write{Type: "Patient", ID: "p1", LastUpdated: time.Now().UTC().Truncate(time.Millisecond),
		JSON: []byte(`{"resourceType":"Patient","id":"p1","name":[{"family":"Nowak"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	var stdout, stderr bytes.Buffer
	noenv := func(string) string { return "" }
	if err := run(t.Context(), []string{"reindex", "--data", dir}, noenv, &stdout, &stderr); err != nil {
		t.Fatalf("reindex: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "reindexed 1 resources") {
		t.Errorf("stdout %q", stdout.String())
	}
	if !strings.Contains(stderr.String(), "Patient") || !strings.Contains(stderr.String(), "1/1") {
		t.Errorf("progress %q shows no Patient bar", stderr.String())
	}

	st, err = sqlite.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	page, err := st.Find(t.Context(), store.Query{Type: "Patient", Count: 10, Where: []store.Clause{
		{Param: "family", Strings: []store.StringMatch{{Value: "now"}}}}})
	if err != nil || len(page.Matches) != 1 {
		t.Errorf("family=now after reindex: %v, %v", page, err)
	}
	if err := run(t.Context(), []string{"reindex", "--data", dir, "extra"}, noenv, &stdout, &stderr); err == nil {
		t.Error("an extra argument was accepted")
	}
}

// TestCommandsRefuseDirectoryWithoutDatabase: reindex, export, migrate and
// keys rotate of a directory that holds no database, such as a mistyped
// --data, fail and create nothing, where they made an empty database (or
// a keyring) and reported success on it.
func TestCommandsRefuseDirectoryWithoutDatabase(t *testing.T) {
	for _, cmd := range [][]string{{"reindex"}, {"export", "--since", "2000-01-01"}, {"migrate"}, {"keys", "rotate"}} {
		for name, dir := range map[string]string{"missing": filepath.Join(t.TempDir(), "dta"), "empty": t.TempDir()} {
			t.Run(cmd[0]+"/"+name, func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				err := run(t.Context(), append(cmd, "--data", dir), func(string) string { return "" }, &stdout, &stderr)
				if err == nil || !strings.Contains(err.Error(), "no database in "+dir) || exitCode(err, io.Discard) != 1 {
					t.Errorf("%s: %v, stdout %q; want an error saying there is no database", cmd[0], err, stdout.String())
				}
				if entries, err := os.ReadDir(dir); !(errors.Is(err, fs.ErrNotExist) || err == nil && len(entries) == 0) {
					t.Errorf("%s left %v in %s (%v)", cmd[0], entries, dir, err)
				}
			})
		}
	}
}

// TestReindexBesideServe checks that reindex refuses a SQLite data directory
// a server holds, and that its help says to stop the server first.
func TestReindexBesideServe(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlite.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var stdout, stderr bytes.Buffer
	noenv := func(string) string { return "" }
	err = run(t.Context(), []string{"reindex", "--data", dir}, noenv, &stdout, &stderr)
	if !errors.Is(err, sqlite.ErrInUse) {
		t.Errorf("reindex of a directory in use: %v; want %v", err, sqlite.ErrInUse)
	}
	stderr.Reset()
	_ = run(t.Context(), []string{"reindex", "-h"}, noenv, &stdout, &stderr)
	if help := stderr.String(); !strings.Contains(help, "stop the server first") {
		t.Errorf("reindex -h does not say to stop the server:\n%s", help)
	}
}
