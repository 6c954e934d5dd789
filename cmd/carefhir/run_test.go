package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"carefhir/store/sqlite"
)

func TestRunVersion(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"version"}, env(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "carefhir ") || lines[1] != "FHIR 4.0.1" || !strings.HasPrefix(lines[2], "go") {
		t.Errorf("version printed:\n%s\nwant carefhir <version>, FHIR 4.0.1 and the Go version", out.String())
	}
}

func TestRunCommandLine(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // in stdout
		wantErr  string // in the error
		wantHelp string // in stderr
	}{
		{name: "help", args: []string{"help"}, wantCode: 0, wantOut: "carefhir bench"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantErr: `unknown command "frobnicate"`},
		{name: "version takes no arguments", args: []string{"version", "now"}, wantCode: 2, wantErr: `unexpected argument "now"`},
		{name: "serve is the default", args: []string{"--addr", "nowhere"}, wantCode: 2, wantErr: "--addr"},
		{name: "serve help", args: []string{"serve", "-h"}, wantCode: 0},
		{name: "version help", args: []string{"version", "-h"}, wantCode: 0, wantHelp: "Usage: carefhir version\n"},
		{name: "version --help", args: []string{"version", "--help"}, wantCode: 0, wantHelp: "Usage: carefhir version\n"},
		{name: "version takes no flags", args: []string{"version", "--json"}, wantCode: 2, wantHelp: "flag provided but not defined: -json"},
		{name: "keys jwks help", args: []string{"keys", "jwks", "-h"}, wantCode: 0, wantHelp: "Usage: carefhir keys jwks PUBLIC-KEY.pem\n"},
		{name: "keys jwks needs a file", args: []string{"keys", "jwks"}, wantCode: 2, wantErr: "usage: carefhir keys jwks PUBLIC-KEY.pem"},
		{name: "bench flags", args: []string{"bench", "--clients", "-3"}, wantCode: 2, wantErr: "--clients"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, stderr strings.Builder
			err := run(context.Background(), tt.args, env(nil), &out, &stderr)
			if got := exitCode(err, io.Discard); got != tt.wantCode {
				t.Errorf("exit code %d (error %v), want %d", got, err, tt.wantCode)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("stdout %q lacks %q", out.String(), tt.wantOut)
			}
			if !strings.Contains(stderr.String(), tt.wantHelp) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.wantHelp)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		want      int
		wantPrint string
	}{
		{name: "success", err: nil, want: 0},
		{name: "help", err: &usageError{err: flag.ErrHelp, printed: true}, want: 0},
		{name: "usage already printed", err: &usageError{err: errors.New("flag provided but not defined: -x"), printed: true}, want: 2},
		{name: "usage", err: &usageError{err: errors.New("--addr: bad")}, want: 2, wantPrint: "carefhir: --addr: bad\n"},
		{name: "failure", err: fmt.Errorf("serve: %w", errors.New("address in use")), want: 1, wantPrint: "carefhir: serve: address in use\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			if got := exitCode(tt.err, &stderr); got != tt.want {
				t.Errorf("exitCode = %d, want %d", got, tt.want)
			}
			if stderr.String() != tt.wantPrint {
				t.Errorf("printed %q, want %q", stderr.String(), tt.wantPrint)
			}
		})
	}
}

func TestModuleVersion(t *testing.T) {
	tests := []struct {
		name  string
		stamp stamp
		info  *debug.BuildInfo
		ok    bool
		want  string
	}{
		{name: "no build info", ok: false, want: "(unknown)"},
		{name: "stamped at link time", stamp: stamp{version: "v1.4.0", commit: "0123456789abcdef0123"},
			info: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, ok: true, want: "v1.4.0 0123456789ab"},
		{name: "stamped version, no build info", stamp: stamp{version: "v1.4.0"}, ok: false, want: "v1.4.0"},
		{name: "stamped commit only", stamp: stamp{commit: "0123456789abcdef0123"}, ok: true, want: "(devel) 0123456789ab"},
		{name: "release", info: &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, ok: true, want: "v1.2.3"},
		{name: "work tree without VCS", info: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, ok: true, want: "(devel)"},
		{name: "no version", info: &debug.BuildInfo{}, ok: true, want: "(devel)"},
		{
			name: "work tree with VCS",
			info: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"},
			}},
			ok:   true,
			want: "(devel) 0123456789ab+dirty",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := moduleVersion(tt.stamp, tt.info, tt.ok); got != tt.want {
				t.Errorf("moduleVersion = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestErrorsNameTheCommand runs command lines an operator gets wrong: what
// is printed names the command on each line, once, as "carefhir: restore:
// open x: …" does.
func TestErrorsNameTheCommand(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	notSQLite := t.TempDir()
	if err := os.Mkdir(filepath.Join(notSQLite, sqlite.FileName), 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cmd  string
		args []string
	}{
		{"restore", nil},
		{"restore", []string{"--from", file, "--data", ""}},
		{"import", nil},
		{"import", []string{"--format", "pds"}},
		{"import", []string{"--format", "csv", file}},
		{"import", []string{"--data", file, "--format", "pds", file}},
		{"import", []string{"--format", "pds", "--nhs-number", "9000000009", file, file}},
		{"export", []string{"--data", notSQLite}},
		{"export", []string{"--data", notSQLite, "--patient", "1"}},
		{"export", []string{"--data", notSQLite, "--url", "http://127.0.0.1:1/fhir", "--patient", "1"}},
		{"export", []string{"--patient", "1", "stray"}},
		{"migrate", []string{"--shard"}},
		{"synth", []string{"--out", file, "--today", "now"}},
		{"serve", []string{"--auth", file, "--insecure-no-auth"}},
		{"serve", []string{"--addr", "192.0.2.1:8080"}},
	}
	for _, tt := range tests {
		args := append([]string{tt.cmd}, tt.args...)
		err := run(t.Context(), args, env(nil), io.Discard, io.Discard)
		var stderr strings.Builder
		exitCode(err, &stderr)
		lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
		for i, line := range lines {
			want := tt.cmd + ": "
			if i == 0 {
				want = "carefhir: " + want
			}
			if !strings.HasPrefix(line, want) || strings.Count(line, tt.cmd+":") != 1 {
				t.Errorf("carefhir %s printed %q; want each line to start %q, naming the command once", strings.Join(args, " "), stderr.String(), want)
				break
			}
		}
	}
}
