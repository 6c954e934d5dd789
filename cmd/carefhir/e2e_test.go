package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"carefhir/care"
	"carefhir/cmd/carefhir/internal/loadgen"
	"carefhir/store/mongo/ferrettest"
)

// The end-to-end tests build the carefhir binary once and run it as a
// separate process, so that signals reach a real server and kill -9 really
// kills it.
var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// binary returns the path of the carefhir binary built from this package.
func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the carefhir binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the binary with")
	}
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "carefhir-e2e-")
		if built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "carefhir")
		out, err := exec.Command(goTool, "build", "-o", built.path, ".").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

// engineArgs returns, for each engine, the serve flags that select it with
// fresh, empty storage.
func engineArgs() map[string]func(t *testing.T) []string {
	return map[string]func(t *testing.T) []string{
		engineSQLite: func(t *testing.T) []string { return []string{"--data", t.TempDir()} },
		// Export files go to a directory of the test's, not ./data in the
		// source tree, where they would be by default.
		engineMongo: func(t *testing.T) []string {
			return []string{"--mongo-uri", ferrettest.Start(t), "--export-dir", t.TempDir()}
		},
	}
}

// proc is a running carefhir serve process.
type proc struct {
	cmd    *exec.Cmd
	base   string // the FHIR base URL it logged
	logs   *lockedBuffer
	exited chan struct{}
	err    error // from Wait, once exited is closed
}

// lockedBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs carefhir serve on a free loopback port with the given extra
// flags and returns once it has logged that it is listening.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	args = append([]string{"serve", "--addr", "127.0.0.1:0", "--log-format", "json", "--shutdown-timeout", "20s"}, args...)
	cmd := exec.Command(binary(t), args...)
	// The environment must not set flags behind the test's back.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logs: &lockedBuffer{}, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		close(p.exited)
	}()
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			fmt.Fprintln(p.logs, sc.Text())
			var line struct {
				Msg     string `json:"msg"`
				BaseURL string `json:"base_url"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				listening <- line.BaseURL
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("carefhir serve %s output:\n%s", strings.Join(args, " "), p.logs.String())
		}
	})
	select {
	case p.base = <-listening:
	case <-p.exited:
		t.Fatalf("carefhir serve exited before listening: %v\n%s", p.err, p.logs.String())
	case <-time.After(time.Minute):
		t.Fatalf("carefhir serve did not listen within a minute:\n%s", p.logs.String())
	}
	return p
}

// wait returns the process's exit error once it has exited.
func (p *proc) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(time.Minute):
		t.Fatalf("carefhir serve did not exit within a minute:\n%s", p.logs.String())
		return nil
	}
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// sendFHIR sends body as FHIR JSON with method to url and returns the
// response status.
func sendFHIR(method, url, body string) (int, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// createPatient POSTs a UK Core Patient and returns the response status and
// the id from the Location header.
func createPatient(base string, r *rand.Rand, n uint64) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/Patient", bytes.NewReader(loadgen.PatientJSON(loadgen.NHSNumber(n), r)))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	id, _ := loadgen.IDFromLocation(resp.Header.Get("Location"), "Patient")
	return resp.StatusCode, id, nil
}

// readPatient GETs a Patient and returns the status and the id in its body.
func readPatient(base, id string) (int, string, error) {
	resp, err := httpClient.Get(base + "/Patient/" + id)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var body struct{ ResourceType, ID string }
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return resp.StatusCode, "", err
		}
	}
	return resp.StatusCode, body.ID, nil
}

func TestServeCreateAndStopGracefully(t *testing.T) {
	for name, args := range engineArgs() {
		t.Run(name, func(t *testing.T) {
			engine := args(t)
			p := start(t, engine...)
			if !strings.HasSuffix(p.base, "/fhir") || !strings.HasPrefix(p.base, "http://127.0.0.1:") || strings.HasSuffix(p.base, ":0/fhir") {
				t.Errorf("logged base URL %q, want http://127.0.0.1:<chosen port>/fhir", p.base)
			}
			status, id, err := createPatient(p.base, rand.New(rand.NewPCG(1, 1)), 0)
			if err != nil || status != http.StatusCreated || id == "" {
				t.Fatalf("POST /fhir/Patient: %d, id %q, %v; want 201 with a Location", status, id, err)
			}
			if status, got, err := readPatient(p.base, id); err != nil || status != http.StatusOK || got != id {
				t.Fatalf("GET /fhir/Patient/%s: %d, id %q, %v; want 200", id, status, got, err)
			}

			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := p.wait(t); err != nil {
				t.Fatalf("carefhir serve after SIGTERM: %v, want exit status 0\n%s", err, p.logs.String())
			}
			logs := p.logs.String()
			for _, want := range []string{`"msg":"shutting down"`, `"msg":"stopped"`, `"msg":"store closed"`} {
				if !strings.Contains(logs, want) {
					t.Errorf("logs lack %s:\n%s", want, logs)
				}
			}

			// The audit trail written on the way down holds the create.
			p = start(t, engine...)
			resp, err := httpClient.Get(p.base + "/AuditEvent?subtype=create&patient=Patient/" + id + "&_total=accurate")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var found struct{ Total int }
			if err := json.NewDecoder(resp.Body).Decode(&found); err != nil || resp.StatusCode != http.StatusOK || found.Total != 1 {
				t.Errorf("AuditEvents of the create after a restart: %d, total %d, %v; want 1", resp.StatusCode, found.Total, err)
			}
		})
	}
}

func TestAcknowledgedWritesSurviveKill(t *testing.T) {
	for name, args := range engineArgs() {
		t.Run(name, func(t *testing.T) {
			flags := args(t)
			p := start(t, flags...)

			// Writers keep creating Patients while the server is killed, so
			// some writes are in flight when it dies; only those answered
			// 201 were acknowledged.
			const writers, enough = 4, 40
			var (
				mu    sync.Mutex
				acked []string
				wg    sync.WaitGroup
			)
			reached := make(chan struct{})
			var once sync.Once
			for w := range writers {
				wg.Go(func() {
					r := rand.New(rand.NewPCG(uint64(w), 7))
					for n := uint64(w); ; n += writers {
						status, id, err := createPatient(p.base, r, n)
						if err != nil {
							return // the server is gone
						}
						if status != http.StatusCreated {
							t.Errorf("POST /fhir/Patient: %d before the kill", status)
							return
						}
						mu.Lock()
						acked = append(acked, id)
						if len(acked) >= enough {
							once.Do(func() { close(reached) })
						}
						mu.Unlock()
					}
				})
			}
			select {
			case <-reached:
			case <-p.exited:
				t.Fatalf("server exited while being written to: %v", p.err)
			}
			if err := p.cmd.Process.Kill(); err != nil { // SIGKILL: no chance to flush or close
				t.Fatal(err)
			}
			var exit *exec.ExitError
			if err := p.wait(t); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("server exit: %v, want killed by SIGKILL", err)
			}
			wg.Wait()

			p = start(t, flags...)
			for _, id := range acked {
				if status, got, err := readPatient(p.base, id); err != nil || status != http.StatusOK || got != id {
					t.Errorf("GET /fhir/Patient/%s after kill -9 and restart: %d, id %q, %v; want 200", id, status, got, err)
				}
			}
			t.Logf("%d acknowledged creates all read back after kill -9", len(acked))
		})
	}
}

func TestBenchAgainstServer(t *testing.T) {
	p := start(t, "--data", t.TempDir())
	var out strings.Builder
	args := []string{"bench", "--url", p.base, "--clients", "2", "--requests", "60", "--op", "both", "--seed", "10", "--warmup", "0s"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, args, env(nil), &out, io.Discard); err != nil {
		t.Fatalf("carefhir %s: %v", strings.Join(args, " "), err)
	}
	for _, want := range []string{"requests:   60\n", "errors:     0\n", "throughput:", "p50"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("bench report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestRequestLinesLoggedUpToShutdownAreWritten: the request log is written
// in the background, and a graceful stop writes every line of it: those of
// the requests answered just before the signal come before "stopped".
func TestRequestLinesLoggedUpToShutdownAreWritten(t *testing.T) {
	p := start(t, "--data", t.TempDir())
	const requests = 300
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Go(func() {
			for i := c; i < requests; i += 4 {
				req, _ := http.NewRequest(http.MethodGet, p.base+"/Patient/missing-"+fmt.Sprint(i), nil)
				req.Header.Set("X-Request-Id", fmt.Sprintf("before-stop-%d", i))
				resp, err := httpClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t); err != nil {
		t.Fatalf("carefhir serve after SIGTERM: %v", err)
	}
	logs := p.logs.String()
	stopped := strings.Index(logs, `"msg":"stopped"`)
	if stopped < 0 {
		t.Fatalf("no stopped line:\n%s", logs)
	}
	for i := range requests {
		at := strings.Index(logs, fmt.Sprintf(`"request_id":"before-stop-%d"`, i))
		if at < 0 || at > stopped {
			t.Fatalf("the line of request %d is missing or after the stop (at %d, stopped at %d)", i, at, stopped)
		}
	}
}

// TestServedOperationsHaveCanonicalDefinitions checks that every operation
// carefhir serve lists in its CapabilityStatement names its
// OperationDefinition by an HL7 canonical (the core spec, Bulk Data, the
// subscriptions backport) or by carefhir's own canonical base, one base for
// all of carefhir's definitions.
func TestServedOperationsHaveCanonicalDefinitions(t *testing.T) {
	p := start(t, "--data", t.TempDir())
	ops := capabilityOperations(t, p.base)
	seen := map[string]bool{}
	for _, op := range ops {
		if seen[op.Definition] {
			continue
		}
		seen[op.Definition] = true
		if !strings.HasPrefix(op.Definition, "http://hl7.org/fhir/") && !strings.HasPrefix(op.Definition, care.Base+"/OperationDefinition/") {
			t.Errorf("$%s is defined by %s, under neither HL7's canonical base nor carefhir's (%s)", op.Name, op.Definition, care.Base)
		}
	}
	for _, want := range []string{"import", "export-gp", "caseload", "everything", "meta-add"} {
		if !slices.ContainsFunc(ops, func(op capOperation) bool { return op.Name == want }) {
			t.Errorf("$%s is not listed", want)
		}
	}
}

// capOperation is an operation as the CapabilityStatement lists it, on
// Type ("" on the system).
type capOperation struct{ Name, Definition, Type string }

// capabilityOperations returns the operations the CapabilityStatement at
// base lists, on the system and on each type.
func capabilityOperations(t *testing.T, base string) []capOperation {
	t.Helper()
	resp, err := httpClient.Get(base + "/metadata")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var cs struct {
		Rest []struct {
			Operation []capOperation
			Resource  []struct {
				Type      string
				Operation []capOperation
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&cs); err != nil || len(cs.Rest) != 1 {
		t.Fatalf("metadata: %v", err)
	}
	ops := cs.Rest[0].Operation
	for _, r := range cs.Rest[0].Resource {
		for _, op := range r.Operation {
			op.Type = r.Type
			ops = append(ops, op)
		}
	}
	return ops
}
