package main

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// dockerfile reads the image's environment (ENV), its default command
// (CMD) and its health check command from the repository's Dockerfile.
func dockerfile(t *testing.T) (env map[string]string, cmd, healthcheck []string) {
	t.Helper()
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	// Join continued lines.
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	env = map[string]string{}
	for line := range strings.SplitSeq(text, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "ENV":
			for _, kv := range fields[1:] {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		case "CMD":
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "CMD ")), &cmd); err != nil {
				t.Fatalf("CMD: %v", err)
			}
		case "HEALTHCHECK":
			m := regexp.MustCompile(`CMD (\[.*\])`).FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("HEALTHCHECK without an exec-form CMD: %s", line)
			}
			if err := json.Unmarshal([]byte(m[1]), &healthcheck); err != nil {
				t.Fatalf("HEALTHCHECK: %v", err)
			}
		}
	}
	return env, cmd, healthcheck
}

// The image's default command, with the image's environment, serves on
// every interface from /data, and its health check probes that server's
// /livez through loopback. (No Docker engine runs the image in tests.)
func TestDockerfileDefaults(t *testing.T) {
	vars, cmd, healthcheck := dockerfile(t)
	// An image listening on every interface needs an auth file or this
	// explicit opt-out (see the Dockerfile's comments).
	vars["CAREFHIR_INSECURE_NO_AUTH"] = "1"
	getenv := func(k string) string { return vars[k] }
	if len(cmd) != 1 || cmd[0] != "serve" {
		t.Fatalf("CMD %q, want [serve]", cmd)
	}
	cfg, err := parseServeConfig(nil, getenv, io.Discard)
	if err != nil {
		t.Fatalf("serve with the image's environment: %v", err)
	}
	if cfg.Addr != "0.0.0.0:8080" || cfg.DataDir != "/data" || cfg.engine() != engineSQLite {
		t.Errorf("serve in the image: addr %s, data %s, engine %s", cfg.Addr, cfg.DataDir, cfg.engine())
	}
	if len(healthcheck) != 2 || !strings.HasSuffix(healthcheck[0], "/carefhir") || healthcheck[1] != "probe" {
		t.Fatalf("HEALTHCHECK %q, want carefhir probe", healthcheck)
	}
	probe, err := parseProbeConfig(nil, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := probeURL(probe.Addr, probe.Path, false); got != "http://127.0.0.1:8080/livez" {
		t.Errorf("the health check probes %s, want http://127.0.0.1:8080/livez", got)
	}
}

// The image's build stamps the version and commit given as build arguments
// into the binary, which has no VCS information to read: carefhir version
// (and the CapabilityStatement's software.version, the same string) names
// them. The test builds the binary with the Dockerfile's -ldflags.
func TestDockerfileStampsVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the carefhir binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the binary with")
	}
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`go build [^\n]*-ldflags="([^"]*)"`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatal("the Dockerfile's go build has no -ldflags")
	}
	args := map[string]string{"VERSION": "v9.8.7", "COMMIT": "0123456789abcdef0123456789abcdef01234567"}
	ldflags := regexp.MustCompile(`\$\{(\w+)\}`).ReplaceAllStringFunc(m[1], func(ref string) string {
		return args[ref[2:len(ref)-1]]
	})
	bin := filepath.Join(t.TempDir(), "carefhir")
	if out, err := exec.Command(goTool, "build", "-ldflags="+ldflags, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -ldflags=%q: %v\n%s", ldflags, err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(string(out), "\n"); first != "carefhir v9.8.7 0123456789ab" {
		t.Errorf("carefhir version prints %q, want carefhir v9.8.7 0123456789ab", first)
	}
}
