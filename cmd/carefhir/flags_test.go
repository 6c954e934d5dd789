package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"carefhir/store/sqlite"
)

// env returns a getenv function over the given variables.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestParseServeConfig(t *testing.T) {
	defaults := serveConfig{
		Addr:            "127.0.0.1:8080",
		DataDir:         "./data",
		Sync:            "normal",
		MaxBody:         10 << 20,
		ShutdownTimeout: 15 * time.Second,
		LogFormat:       "text",
		LogLevel:        "info",
		Validate:        true,
		ReadyTimeout:    2 * time.Second,
		Limits:          defaultLimits(),
		Care:            careFlags{PAMMinAnswered: 10},
	}
	with := func(f func(*serveConfig)) serveConfig {
		c := defaults
		f(&c)
		return c
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    serveConfig
		wantErr string // substring of the error; "" for success
	}{
		{name: "defaults", want: defaults},
		{name: "addr", args: []string{"--addr", "0.0.0.0:9000"}, want: with(func(c *serveConfig) { c.Addr = "0.0.0.0:9000" })},
		{name: "free port", args: []string{"--addr", "127.0.0.1:0"}, want: with(func(c *serveConfig) { c.Addr = "127.0.0.1:0" })},
		{name: "all interfaces", args: []string{"-addr=:8080"}, want: with(func(c *serveConfig) { c.Addr = ":8080" })},
		{name: "IPv6", args: []string{"--addr", "[::1]:8080"}, want: with(func(c *serveConfig) { c.Addr = "[::1]:8080" })},
		{name: "host name", args: []string{"--addr", "localhost:8080"}, want: with(func(c *serveConfig) { c.Addr = "localhost:8080" })},
		{name: "addr without port", args: []string{"--addr", "127.0.0.1"}, wantErr: "--addr"},
		{name: "addr port too large", args: []string{"--addr", "127.0.0.1:65536"}, wantErr: "--addr"},
		{name: "addr port not a number", args: []string{"--addr", "127.0.0.1:http"}, wantErr: "--addr"},
		{name: "addr bad host", args: []string{"--addr", "bad_host!:80"}, wantErr: "--addr"},
		{name: "addr empty", args: []string{"--addr", ""}, wantErr: "--addr is required"},
		{name: "reminders every hour", args: []string{"--reminders-every", "1h", "--pam-min-answered", "12"}, want: with(func(c *serveConfig) {
			c.Care.RemindersEvery, c.Care.PAMMinAnswered = time.Hour, 12
		})},
		{name: "pam-min-answered beyond 13", args: []string{"--pam-min-answered", "14"}, wantErr: "pam-min-answered"},
		// 0 would be taken as unset, and the default of 10 applied.
		{name: "pam-min-answered 0", args: []string{"--pam-min-answered", "0"}, wantErr: "pam-min-answered"},
		{name: "pam-wording missing", args: []string{"--pam-wording", "/nonexistent/wording.txt"}, wantErr: "pam-wording"},
		{name: "data", args: []string{"--data", "/var/lib/carefhir"}, want: with(func(c *serveConfig) { c.DataDir = "/var/lib/carefhir" })},
		{name: "no data and no mongo", args: []string{"--data", ""}, wantErr: "--data is required unless --mongo-uri is set"},
		{name: "max-body MiB", args: []string{"--max-body", "1MiB"}, want: with(func(c *serveConfig) { c.MaxBody = 1 << 20 })},
		{name: "max-body bytes", args: []string{"--max-body", "1048576"}, want: with(func(c *serveConfig) { c.MaxBody = 1 << 20 })},
		{name: "max-body MB", args: []string{"--max-body", "5MB"}, want: with(func(c *serveConfig) { c.MaxBody = 5_000_000 })},
		{name: "max-body not a size", args: []string{"--max-body", "lots"}, wantErr: "max-body"},
		{name: "max-body unknown unit", args: []string{"--max-body", "10TiB"}, wantErr: "unknown unit"},
		{name: "max-body negative", args: []string{"--max-body", "-1"}, wantErr: "max-body"},
		{name: "max-body zero", args: []string{"--max-body", "0"}, wantErr: "--max-body 0: want more than 0"},
		{
			name: "mongo URI from the environment",
			env:  map[string]string{"CAREFHIR_MONGO_URI": "mongodb://db.example:27017/carefhir"},
			want: with(func(c *serveConfig) { c.MongoURI = "mongodb://db.example:27017/carefhir" }),
		},
		{
			name: "mongo URI flag overrides the environment",
			args: []string{"--mongo-uri", "mongodb+srv://cluster.example/carefhir"},
			env:  map[string]string{"CAREFHIR_MONGO_URI": "mongodb://db.example:27017/carefhir"},
			want: with(func(c *serveConfig) { c.MongoURI = "mongodb+srv://cluster.example/carefhir" }),
		},
		{
			name: "mongo URI without data",
			args: []string{"--data", "", "--mongo-uri", "mongodb://h1:27017,h2:27017/?replicaSet=rs0"},
			want: with(func(c *serveConfig) { c.DataDir = ""; c.MongoURI = "mongodb://h1:27017,h2:27017/?replicaSet=rs0" }),
		},
		{
			name:    "mongo URI from the environment with the wrong scheme",
			env:     map[string]string{"CAREFHIR_MONGO_URI": "postgres://u:secret@db/x"},
			wantErr: "CAREFHIR_MONGO_URI, which sets --mongo-uri: want a mongodb:// or mongodb+srv:// URI",
		},
		{name: "mongo URI without host", args: []string{"--mongo-uri", "mongodb:///carefhir"}, wantErr: "--mongo-uri"},
		{
			name: "every flag from its environment variable",
			env: map[string]string{"CAREFHIR_ADDR": "0.0.0.0:8080", "CAREFHIR_DATA": "/data", "CAREFHIR_MAX_BODY": "1MiB",
				"CAREFHIR_SHUTDOWN_TIMEOUT": "3s", "CAREFHIR_VALIDATE": "false", "CAREFHIR_LOG_FORMAT": "json"},
			want: with(func(c *serveConfig) {
				c.Addr, c.DataDir, c.MaxBody, c.ShutdownTimeout, c.Validate, c.LogFormat = "0.0.0.0:8080", "/data", 1<<20, 3*time.Second, false, "json"
			}),
		},
		{
			name: "the command line wins over the environment",
			args: []string{"--addr", "127.0.0.1:9000"},
			env:  map[string]string{"CAREFHIR_ADDR": "0.0.0.0:8080"},
			want: with(func(c *serveConfig) { c.Addr = "127.0.0.1:9000" }),
		},
		{
			name: "an empty variable is unset",
			env:  map[string]string{"CAREFHIR_ADDR": ""},
			want: defaults,
		},
		{
			name:    "a bad value in the environment names the variable",
			env:     map[string]string{"CAREFHIR_MAX_BODY": "lots"},
			wantErr: "CAREFHIR_MAX_BODY, which sets --max-body",
		},
		{name: "validation off", args: []string{"--validate=false"}, want: with(func(c *serveConfig) { c.Validate = false })},
		{name: "sync full", args: []string{"--sync", "full"}, want: with(func(c *serveConfig) { c.Sync = "full" })},
		{name: "sync from the environment", env: map[string]string{"CAREFHIR_SYNC": "full"}, want: with(func(c *serveConfig) { c.Sync = "full" })},
		{name: "sync unknown", args: []string{"--sync", "off"}, wantErr: `--sync "off": want one of full, normal`},
		{
			name: "required profiles",
			args: []string{"--require-profile", "Patient=https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient",
				"--require-profile", "Observation=https://example.org/fhir/StructureDefinition/Obs", "--require-profile", "Patient=https://example.org/fhir/StructureDefinition/P"},
			want: with(func(c *serveConfig) {
				c.RequiredProfiles = profileRequirements{
					"Patient":     {"https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient", "https://example.org/fhir/StructureDefinition/P"},
					"Observation": {"https://example.org/fhir/StructureDefinition/Obs"},
				}
			}),
		},
		{name: "required profile without type", args: []string{"--require-profile", "https://example.org/p"}, wantErr: "want Type=URL"},
		{name: "required profile without URL", args: []string{"--require-profile", "Patient="}, wantErr: "want Type=URL"},
		{name: "required profile bad type", args: []string{"--require-profile", "pat-ient=https://example.org/p"}, wantErr: `--require-profile: "pat-ient" is not a resource type`},
		{name: "required profile bad URL", args: []string{"--require-profile", "Patient=UKCore-Patient"}, wantErr: `--require-profile "UKCore-Patient": want an absolute http or https URL`},
		{name: "required profile without validation", args: []string{"--validate=false", "--require-profile", "Patient=https://example.org/p"}, wantErr: "--require-profile needs --validate"},
		{name: "certificate without key", args: []string{"--tls-cert", "server.pem"}, wantErr: "--tls-cert needs --tls-key"},
		{name: "key without certificate", env: map[string]string{"CAREFHIR_TLS_KEY": "server.key"}, wantErr: "CAREFHIR_TLS_KEY, which sets --tls-key, needs --tls-cert"},
		{name: "notify types", args: []string{"--notify-types", "Appointment, Task"}, want: with(func(c *serveConfig) { c.NotifyTypes = typeList{"Appointment", "Task"} })},
		{name: "notify types misspelt", args: []string{"--notify-types", "Appointment,Apointment"}, wantErr: `invalid value "Appointment,Apointment" for flag -notify-types: "Apointment" is not a resource type`},
		{name: "care codes missing", args: []string{"--care-codes", "/nonexistent/codes.json"}, wantErr: `--care-codes "/nonexistent/codes.json": want a file that exists`},
		{name: "PAM wording missing from the environment", env: map[string]string{"CAREFHIR_PAM_WORDING": "/nonexistent/pam.txt"}, wantErr: "CAREFHIR_PAM_WORDING, which sets --pam-wording: want a file that exists"},
		{name: "base URL", args: []string{"--base-url", "https://fhir.example.nhs.uk/fhir"}, want: with(func(c *serveConfig) { c.BaseURL = "https://fhir.example.nhs.uk/fhir" })},
		{name: "base URL relative", args: []string{"--base-url", "/fhir"}, wantErr: "--base-url"},
		{name: "base URL not http", args: []string{"--base-url", "ftp://example/fhir"}, wantErr: "--base-url"},
		{name: "base URL with a query", args: []string{"--base-url", "https://fhir.example.nhs.uk/fhir?tenant=a"}, wantErr: `--base-url "https://fhir.example.nhs.uk/fhir?tenant=a": want an absolute http or https URL without credentials, query or fragment`},
		{name: "base URL with a fragment", args: []string{"--base-url", "https://fhir.example.nhs.uk/fhir#top"}, wantErr: "without credentials, query or fragment"},
		{name: "base URL with credentials", args: []string{"--base-url", "https://user:secret@fhir.example.nhs.uk/fhir"}, wantErr: "without credentials, query or fragment"},
		{name: "base URL with an empty query", args: []string{"--base-url", "https://fhir.example.nhs.uk/fhir?"}, wantErr: "without credentials, query or fragment"},
		{name: "shutdown timeout", args: []string{"--shutdown-timeout", "3s"}, want: with(func(c *serveConfig) { c.ShutdownTimeout = 3 * time.Second })},
		{name: "shutdown timeout zero", args: []string{"--shutdown-timeout", "0s"}, wantErr: "--shutdown-timeout"},
		{name: "log format json", args: []string{"--log-format", "json", "--log-level", "debug"}, want: with(func(c *serveConfig) { c.LogFormat = "json"; c.LogLevel = "debug" })},
		{name: "log format unknown", args: []string{"--log-format", "xml"}, wantErr: `--log-format "xml": want one of text, json`},
		{name: "log level unknown", args: []string{"--log-level", "loud"}, wantErr: "--log-level"},
		{name: "request deadline", args: []string{"--request-deadline", "5s", "--unit-of-work-timeout", "2s"},
			want: with(func(c *serveConfig) { c.Limits.Deadline = 5 * time.Second; c.Limits.UnitOfWork = 2 * time.Second })},
		{name: "search limits", args: []string{"--max-search-params", "10", "--max-or-values", "50", "--max-count", "200", "--max-chain-depth", "2",
			"--max-includes", "3", "--max-elements", "40", "--max-search-terms", "900", "--max-bundle-entries", "500", "--max-patch-operations", "20"},
			want: with(func(c *serveConfig) {
				c.Limits = limitsConfig{Deadline: c.Limits.Deadline, UnitOfWork: c.Limits.UnitOfWork, SearchParams: 10, ORValues: 50,
					Count: 200, ChainDepth: 2, Includes: 3, Elements: 40, SearchTerms: 900, BundleEntries: 500, PatchOperations: 20}
			})},
		{name: "or values beyond what the engines take", args: []string{"--max-or-values", "1001"}, wantErr: "--max-or-values 1001: want at most 1000"},
		{name: "deadline zero", args: []string{"--request-deadline", "0s"}, wantErr: "--request-deadline"},
		{name: "unknown flag", args: []string{"--port", "80"}, wantErr: "flag provided but not defined"},
		{name: "positional argument", args: []string{"extra"}, wantErr: `unexpected argument "extra"`},
		{name: "every failure reported", args: []string{"--addr", "x", "--log-format", "xml"}, wantErr: "--log-format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseServeConfig(tt.args, env(tt.env), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseServeConfig(%q) error = %v, want one containing %q", tt.args, err, tt.wantErr)
				}
				var ue *usageError
				if !errors.As(err, &ue) {
					t.Errorf("error %v is not a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseServeConfig(%q): %v", tt.args, err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("parseServeConfig(%q) =\n%+v, want\n%+v", tt.args, *got, tt.want)
			}
		})
	}
}

func TestParseServeConfigHidesMongoPassword(t *testing.T) {
	_, err := parseServeConfig(nil, env(map[string]string{"CAREFHIR_MONGO_URI": "mysql://user:hunter2@db/x"}), io.Discard)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %v: want a refusal that does not repeat the password", err)
	}
}

// A value a flag refuses is not repeated when a variable set it, whatever
// the flag: the variable may hold a secret meant for another one.
func TestVariableRefusedWithoutItsValue(t *testing.T) {
	for _, tt := range []struct{ name, value, want string }{
		{"CAREFHIR_MAX_BODY", "u:s3cret@db", "CAREFHIR_MAX_BODY, which sets --max-body: byte size: want a whole number of bytes"},
		{"CAREFHIR_MAX_BODY", "10s3cret", "CAREFHIR_MAX_BODY, which sets --max-body: byte size: unknown unit"},
		{"CAREFHIR_NOTIFY_TYPES", "Patient,s3cret", "CAREFHIR_NOTIFY_TYPES, which sets --notify-types: type 2 of the list is not a resource type"},
	} {
		var stderr strings.Builder
		err := run(t.Context(), []string{"serve", "--data", t.TempDir()}, env(map[string]string{tt.name: tt.value}), io.Discard, &stderr)
		code := exitCode(err, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tt.want) || strings.Contains(stderr.String(), "s3cret") {
			t.Errorf("%s=%s: exit code %d, stderr %q; want 2 and %q without the value", tt.name, tt.value, code, stderr.String(), tt.want)
		}
	}
	// The command line names the value it refuses.
	var stderr strings.Builder
	err := run(t.Context(), []string{"serve", "--max-body", "10TB"}, env(nil), io.Discard, &stderr)
	if code := exitCode(err, &stderr); code != 2 || !strings.Contains(stderr.String(), `"10TB"`) {
		t.Errorf("--max-body 10TB: exit code %d, stderr %q; want 2 naming the value", code, stderr.String())
	}
}

func TestParseServeConfigHelp(t *testing.T) {
	var out strings.Builder
	_, err := parseServeConfig([]string{"-h"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: error %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"-addr", "-data", "-mongo-uri", "-base-url", "-max-body", "(default 10MiB)", "CAREFHIR_MONGO_URI"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, out.String())
		}
	}
}

func TestEnvName(t *testing.T) {
	for flag, want := range map[string]string{"mongo-uri": "CAREFHIR_MONGO_URI", "addr": "CAREFHIR_ADDR", "insecure-no-auth": "CAREFHIR_INSECURE_NO_AUTH"} {
		if got := envName(flag); got != want {
			t.Errorf("envName(%q) = %q, want %q", flag, got, want)
		}
	}
}

// TestCommandsReadingTheEnvironment checks that the rule is not special to
// serve, and that the commands that generate or load data ignore it.
func TestCommandsReadingTheEnvironment(t *testing.T) {
	vars := env(map[string]string{"CAREFHIR_DATA": "/srv/live", "CAREFHIR_ADDR": "0.0.0.0:9000", "CAREFHIR_PATH": "/readyz"})
	dir := t.TempDir()
	st, err := sqlite.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"migrate", "reindex"} {
		var out strings.Builder
		if err := run(t.Context(), []string{cmd}, env(map[string]string{"CAREFHIR_DATA": dir}), &out, io.Discard); err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		if out.Len() == 0 {
			t.Errorf("%s with CAREFHIR_DATA=%s did not use it: %q", cmd, dir, out.String())
		}
	}
	err = run(t.Context(), []string{"verify"}, env(map[string]string{"CAREFHIR_DATA": "/nonexistent/carefhir"}), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/carefhir") {
		t.Errorf("verify with CAREFHIR_DATA: %v; want it to name that directory", err)
	}
	probe, err := parseProbeConfig(nil, vars, io.Discard)
	if err != nil || probe.Addr != "0.0.0.0:9000" || probe.Path != "/readyz" {
		t.Errorf("probe from the environment: %+v, %v", probe, err)
	}
	_, err = parseProbeConfig(nil, env(map[string]string{"CAREFHIR_TIMEOUT": "soon"}), io.Discard)
	if code := exitCode(err, io.Discard); code != 2 || !strings.Contains(err.Error(), "CAREFHIR_TIMEOUT") {
		t.Errorf("a bad variable: exit code %d, error %v; want 2 naming CAREFHIR_TIMEOUT", code, err)
	}
	// A value a flag's check refuses is named by the variable that set it,
	// without the value, which may be a secret; one from the command line
	// by the flag, with its value.
	_, err = parseServeConfig(nil, env(map[string]string{"CAREFHIR_ADDR": "fhir-host:http", "CAREFHIR_OTLP_ENDPOINT": "ftp://collector:s3cret@collector"}), io.Discard)
	if code := exitCode(err, io.Discard); code != 2 || err == nil || !strings.Contains(err.Error(), "CAREFHIR_ADDR, which sets --addr") ||
		!strings.Contains(err.Error(), "CAREFHIR_OTLP_ENDPOINT, which sets --otlp-endpoint") || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "fhir-host") {
		t.Errorf("variables a check refuses: exit code %d, error %v; want 2 naming each variable and neither value", code, err)
	}
	_, err = parseServeConfig([]string{"--addr", "fhir-host:http"}, env(map[string]string{"CAREFHIR_ADDR": "127.0.0.1:8080"}), io.Discard)
	if err == nil || !strings.Contains(err.Error(), `--addr "fhir-host:http"`) || strings.Contains(err.Error(), "CAREFHIR_ADDR") {
		t.Errorf("a flag a check refuses over its variable: %v; want the flag named with its value", err)
	}
	var out strings.Builder
	err = run(t.Context(), []string{"synth", "--patients", "1", "--out", t.TempDir()}, vars, &out, io.Discard)
	if err != nil {
		t.Errorf("synth with CAREFHIR_DATA set: %v; want it to ignore the variable", err)
	}
}

func TestServeConfigEngine(t *testing.T) {
	tests := []struct {
		name string
		cfg  serveConfig
		want string
	}{
		{"SQLite by default", serveConfig{DataDir: "./data"}, engineSQLite},
		{"MongoDB when a URI is set", serveConfig{DataDir: "./data", MongoURI: "mongodb://h/db"}, engineMongo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cfg.engine(); got != tt.want {
				t.Errorf("engine() = %q, want %q", got, tt.want)
			}
			if _, ok := engines()[tt.want]; !ok {
				t.Errorf("engines() has no %q factory", tt.want)
			}
		})
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    byteSize
		wantErr bool
	}{
		{name: "bytes", in: "1048576", want: 1 << 20},
		{name: "B", in: "512B", want: 512},
		{name: "KiB", in: "512KiB", want: 512 << 10},
		{name: "MiB", in: "10MiB", want: 10 << 20},
		{name: "GiB", in: "1GiB", want: 1 << 30},
		{name: "kB", in: "2kB", want: 2000},
		{name: "MB", in: "10MB", want: 10_000_000},
		{name: "GB", in: "1GB", want: 1_000_000_000},
		{name: "any case", in: "10mib", want: 10 << 20},
		{name: "space before unit", in: "10 MiB", want: 10 << 20},
		{name: "zero", in: "0", want: 0},
		{name: "empty", in: "", wantErr: true},
		{name: "unit only", in: "MiB", wantErr: true},
		{name: "negative", in: "-5", wantErr: true},
		{name: "fraction", in: "1.5MiB", wantErr: true},
		{name: "unknown unit", in: "10TB", wantErr: true},
		{name: "overflow", in: "99999999999999999999", wantErr: true},
		{name: "overflow with unit", in: "9999999999999GiB", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseByteSize(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseByteSize(%q) = %v, %v; want error %v", tt.in, got, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseByteSize(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		name string
		in   byteSize
		want string
	}{
		{"MiB", 10 << 20, "10MiB"},
		{"KiB", 1536 << 10, "1536KiB"},
		{"GiB", 2 << 30, "2GiB"},
		{"bytes", 1000, "1000"},
		{"zero", 0, "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			back, err := parseByteSize(tt.in.String())
			if err != nil || back != tt.in {
				t.Errorf("parseByteSize(%q) = %d, %v; want %d", tt.in.String(), back, err, tt.in)
			}
		})
	}
}

func TestParseBenchConfig(t *testing.T) {
	defaults := benchConfig{
		URL: "http://127.0.0.1:8080/fhir", Clients: 8, Duration: 10 * time.Second,
		Op: "read", Warmup: time.Second, Seed: 1000,
	}
	tests := []struct {
		name    string
		args    []string
		want    benchConfig
		wantErr string
	}{
		{name: "defaults", want: defaults},
		{
			name: "everything",
			args: []string{"--url", "https://fhir.example/fhir", "--clients", "32", "--requests", "5000", "--op", "both", "--warmup", "0s", "--seed", "50"},
			want: benchConfig{URL: "https://fhir.example/fhir", Clients: 32, Duration: 10 * time.Second, Requests: 5000, Op: "both", Seed: 50},
		},
		{name: "bad op", args: []string{"--op", "delete"}, wantErr: "--op"},
		{name: "no clients", args: []string{"--clients", "0"}, wantErr: "--clients 0: want at least 1"},
		{name: "bad URL", args: []string{"--url", "127.0.0.1:8080"}, wantErr: "--url"},
		{name: "negative requests", args: []string{"--requests", "-1"}, wantErr: "--requests"},
		{name: "zero duration", args: []string{"--duration", "0s"}, wantErr: "--duration"},
		{name: "negative warmup", args: []string{"--warmup", "-1s"}, wantErr: "--warmup"},
		{name: "bad duration", args: []string{"--duration", "ten"}, wantErr: "duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseBenchConfig(tt.args, env(nil), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseBenchConfig(%q) error = %v, want one containing %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseBenchConfig(%q): %v", tt.args, err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("parseBenchConfig(%q) =\n%+v, want\n%+v", tt.args, *got, tt.want)
			}
		})
	}
}

// A command line that names two stores is refused, naming both, before
// anything is opened: the command would have worked on one of them and
// silently not on the other. A --data from the environment, as the
// container image sets it, yields to the other store.
func TestTwoStoresRefused(t *testing.T) {
	const uri = "mongodb://db.example:27017/carefhir"
	dir := t.TempDir()
	for _, tc := range []struct {
		args    []string
		env     map[string]string
		wantErr string
	}{
		{args: []string{"reindex", "--data", dir, "--mongo-uri", uri}, wantErr: "--data and --mongo-uri name two stores"},
		{args: []string{"migrate", "--data", dir}, env: map[string]string{"CAREFHIR_MONGO_URI": uri},
			wantErr: "--data and CAREFHIR_MONGO_URI, which sets --mongo-uri, name two stores"},
		{args: []string{"import", "--format", "ndjson", "--data", dir, "--url", "http://127.0.0.1:1/fhir", "x.ndjson"}, wantErr: "--data and --url name two stores"},
		{args: []string{"import", "--format", "ndjson", "--mongo-uri", uri, "--url", "http://127.0.0.1:1/fhir", "x.ndjson"}, wantErr: "--mongo-uri and --url name two stores"},
		{args: []string{"export", "--patient", "p1", "--data", dir, "--mongo-uri", uri}, wantErr: "--data and --mongo-uri name two stores"},
	} {
		err := run(t.Context(), tc.args, env(tc.env), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) || exitCode(err, io.Discard) != 2 {
			t.Errorf("%q: %v, want exit 2 and an error containing %q", tc.args, err, tc.wantErr)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("a refused command wrote %v in --data", entries)
	}
	// The container image's CAREFHIR_DATA beside a URI on the command
	// line selects MongoDB.
	cfg, err := parseReindexConfig([]string{"--mongo-uri", uri}, env(map[string]string{"CAREFHIR_DATA": "/data"}), io.Discard)
	if err != nil || cfg.MongoURI != uri {
		t.Errorf("reindex with CAREFHIR_DATA and --mongo-uri: %+v, %v", cfg, err)
	}
}

// A date that is not one is reported in the form the flag wants.
func TestExportSinceNotADate(t *testing.T) {
	_, err := parseExportConfig([]string{"--since", "2020-13-01"}, env(nil), io.Discard)
	want := `--since "2020-13-01": want a date written YYYY-MM-DD`
	if err == nil || !strings.Contains(err.Error(), want) || exitCode(err, io.Discard) != 2 {
		t.Errorf("export --since 2020-13-01: %v, want exit 2 and %q", err, want)
	}
}

// A misspelt variable is refused, as a misspelt flag is, by the commands
// that read the environment; a variable of another such command is not,
// since one environment serves them all.
func TestUnknownVariableRefused(t *testing.T) {
	environ := []string{"CAREFHIR_DATA=/srv/live", "CAREFHIR_MONG_URI=mongodb://db/carefhir", "CAREFHIR_SYNCH=full", "HOME=/home/carefhir"}
	for _, args := range [][]string{nil, {"--addr", "127.0.0.1:0"}, {"backup", "--to", "x.tar.gz"}, {"verify"}, {"migrate"}, {"probe"}} {
		err := refuseUnknownVariables(args, environ)
		if code := exitCode(err, io.Discard); code != 2 || !strings.Contains(err.Error(), "CAREFHIR_MONG_URI") ||
			!strings.Contains(err.Error(), "CAREFHIR_SYNCH") || strings.Contains(err.Error(), "mongodb://") {
			t.Errorf("%q: exit code %d, error %v; want 2 naming both misspelt variables, not their values", args, code, err)
		}
	}
	known := []string{"CAREFHIR_DATA=/data", "CAREFHIR_ADDR=0.0.0.0:8080", "CAREFHIR_TO=/backups/x.tar.gz", "CAREFHIR_PATH=/readyz", "CAREFHIR_SYNC=full", "CAREFHIR_EMPTY="}
	// What Kubernetes sets for Services named carefhir and carefhir-metrics.
	known = append(known, "CAREFHIR_SERVICE_HOST=10.0.0.11", "CAREFHIR_SERVICE_PORT=8080", "CAREFHIR_SERVICE_PORT_HTTP=8080",
		"CAREFHIR_PORT=tcp://10.0.0.11:8080", "CAREFHIR_PORT_8080_TCP=tcp://10.0.0.11:8080", "CAREFHIR_PORT_8080_TCP_PROTO=tcp",
		"CAREFHIR_PORT_8080_TCP_PORT=8080", "CAREFHIR_PORT_8080_TCP_ADDR=10.0.0.11", "CAREFHIR_METRICS_SERVICE_HOST=10.0.0.12",
		"CAREFHIR_METRICS_PORT_9090_TCP_ADDR=10.0.0.12")
	// What the test suite sets, .ci/run for the whole of go test.
	known = append(known, "CAREFHIR_CLIENT_TESTS=1", "CAREFHIR_TEST_MONGO_URI=mongodb://127.0.0.1:27017")
	for _, args := range [][]string{nil, {"backup"}, {"probe"}, {"import"}} {
		if err := refuseUnknownVariables(args, known); err != nil {
			t.Errorf("%q with the variables of the deployment commands: %v", args, err)
		}
	}
	// The commands that read no variable are not stopped by one.
	for _, args := range [][]string{{"version"}, {"synth", "--patients", "1"}, {"bench"}} {
		if err := refuseUnknownVariables(args, environ); err != nil {
			t.Errorf("%q: %v; want no check of the environment", args, err)
		}
	}
}
