package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// clientsDir holds the pinned JavaScript FHIR clients and the script that
// drives them; `npm ci` there installs them.
var clientsDir = filepath.Join("..", "testdata", "clients")

// clientChecks are the checks the script must report for each client: a
// check missing from the report fails the test as surely as a failed one.
var clientChecks = map[string][]string{
	"fhir-kit-client": {"metadata", "create", "read", "update", "conditional create", "JSON Patch", "history",
		"batch", "transaction", "search _include", "paging with nextPage", "$validate", "delete"},
	"fhirclient": {"metadata", "create", "read", "update", "conditional create", "JSON Patch", "history",
		"batch", "transaction", "search _include", "paging with pages()", "$validate", "delete"},
	"@medplum/core": {"metadata", "create", "read", "update", "conditional create", "JSON Patch", "history",
		"batch", "transaction", "search _include", "paging with searchResourcePages", "$validate", "delete"},
}

// clientReport is what testdata/clients/compat.mjs prints.
type clientReport struct {
	Clients map[string]string
	Checks  []struct {
		Client, Check, Detail string
		OK                    bool
	}
}

// TestRealClients drives the server on each engine with fhir-kit-client,
// fhirclient and Medplum's client, independently written FHIR clients, and
// checks what each of them saw. It skips when node or the installed clients are absent,
// unless CAREFHIR_CLIENT_TESTS=1 demands them.
func TestRealClients(t *testing.T) {
	node := nodeWithClients(t)
	eachEngine(t, func(t *testing.T, c *client) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, "compat.mjs", c.base)
		cmd.Dir = clientsDir
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("node compat.mjs: %v\n%s", err, stderr.String())
		}
		var rep clientReport
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatalf("report is not JSON: %v\n%s", err, stdout.String())
		}
		seen := map[string]bool{}
		for _, ch := range rep.Checks {
			seen[ch.Client+"/"+ch.Check] = true
			if !ch.OK {
				t.Errorf("%s %s: %s", ch.Client, ch.Check, ch.Detail)
			} else {
				t.Logf("%s %s: ok: %s", ch.Client, ch.Check, ch.Detail)
			}
		}
		for cl, checks := range clientChecks {
			if rep.Clients[cl] == "" {
				t.Errorf("report names no version of %s", cl)
			}
			for _, ch := range checks {
				if !seen[cl+"/"+ch] {
					t.Errorf("%s %s: not reported", cl, ch)
				}
			}
		}
	}, withValidator(false))
}

// nodeWithClients returns the path of node, skipping the test when node or
// the installed clients are missing and CAREFHIR_CLIENT_TESTS is not 1.
func nodeWithClients(t *testing.T) string {
	t.Helper()
	required := os.Getenv("CAREFHIR_CLIENT_TESTS") == "1"
	missing := func(why string) {
		if required {
			t.Fatalf("CAREFHIR_CLIENT_TESTS=1 but %s", why)
		}
		t.Skipf("%s; run `npm ci` in testdata/clients with node 20 to drive the server with real clients", why)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not on PATH")
		return ""
	}
	for pkg := range clientChecks {
		if _, err := os.Stat(filepath.Join(clientsDir, "node_modules", pkg, "package.json")); err != nil {
			missing(pkg + " is not installed in testdata/clients/node_modules")
			return ""
		}
	}
	return node
}
