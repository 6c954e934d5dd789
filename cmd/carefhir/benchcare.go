package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"carefhir/care"
	"carefhir/care/synth"
	"carefhir/cmd/carefhir/internal/searchbench"
	"carefhir/server"
	"carefhir/server/access"
	"carefhir/store/sqlite"
)

// benchCareConfig is the configuration of the bench care subcommand.
type benchCareConfig struct {
	Data     string `flag:"data" validate:"required"`
	Patients int    `flag:"patients" validate:"min=1,max=900000"`
	Seed     uint64 `flag:"seed"`
	Caseload int    `flag:"caseload" validate:"min=1,max=500"`
	Runs     int    `flag:"runs" validate:"min=1,max=1000"`
	// Cohorts runs the cohorts after the caseload; each stores its Group.
	Cohorts bool `flag:"cohorts"`
	// CPUProfile, when set, is where the CPU profile of the measured
	// requests is written, for go tool pprof.
	CPUProfile string `flag:"cpuprofile"`
}

func parseBenchCareConfig(args []string, stderr io.Writer) (*benchCareConfig, error) {
	cfg := &benchCareConfig{Data: "./bench-data", Patients: 100_000, Seed: 1, Caseload: 200, Runs: 20, Cohorts: true}
	fs := newFlagSet("carefhir bench care",
		"Measures the care-coordination operations on the embedded SQLite engine in\n"+
			"--data, through the FHIR API served in process on a loopback port: a\n"+
			"coordinator's caseload of --caseload patients ($caseload) and cohorts over the\n"+
			"whole population ($cohort). An empty data directory is first loaded with\n"+
			"--patients generated patient records.", stderr)
	fs.StringVar(&cfg.Data, "data", cfg.Data, "`directory` of the SQLite engine to measure (and load when empty)")
	fs.IntVar(&cfg.Patients, "patients", cfg.Patients, "patients to generate when the data directory holds none")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the generated records")
	fs.IntVar(&cfg.Caseload, "caseload", cfg.Caseload, "patients in the measured coordinator's caseload")
	fs.IntVar(&cfg.Runs, "runs", cfg.Runs, "times the caseload is asked for (cohorts: a quarter as many, at least 2)")
	fs.BoolVar(&cfg.Cohorts, "cohorts", cfg.Cohorts, "measure the cohorts too (each run stores a Group)")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "`file` to write the CPU profile of the measured requests to (go tool pprof)")
	if err := parseFlags(fs, args, nil, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// benchCare loads the data directory if it is empty, gives a coordinator a
// caseload, and times $caseload and $cohort through the API.
func benchCare(ctx context.Context, cfg *benchCareConfig, stdout, stderr io.Writer) (err error) {
	st, err := sqlite.Open(cfg.Data)
	if err != nil {
		return fmt.Errorf("bench care: %w", err)
	}
	defer func() {
		if cerr := st.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("bench care: close %s: %w", cfg.Data, cerr))
		}
	}()
	patients, err := searchbench.CountPatients(ctx, st, 900_000)
	if err != nil {
		return fmt.Errorf("bench care: %w", err)
	}
	if patients == 0 {
		fmt.Fprintf(stderr, "bench care: loading %d patients' records into %s\n", cfg.Patients, cfg.Data)
		prog := newProgress(stderr)
		stop := prog.report(ctx, 10*time.Second)
		err := loadStore(ctx, st, synth.Options{Patients: cfg.Patients, Seed: cfg.Seed, Today: synth.DefaultToday}, 2, prog)
		stop()
		if err != nil {
			return fmt.Errorf("bench care: load: %w", err)
		}
		patients = cfg.Patients
	}
	// The cohort of everyone measures the evaluation over the whole
	// population, more people than a cohort holds when served.
	co, err := care.New(care.Config{Now: func() time.Time { return synth.DefaultToday }, CohortMostMembers: math.MaxInt})
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("bench care: %w", err)
	}
	base := "http://" + lis.Addr().String() + "/fhir"
	// As carefhir serve, the server audits every request: a cohort's
	// AuditEvent names its members, and writing it shares the machine and
	// the engine's writer with the requests that follow.
	auditor := access.NewAuditor(st, access.AuditConfig{Source: "carefhir bench"})
	defer auditor.Close()
	srv := &http.Server{Handler: server.New(server.Config{Store: st, BaseURL: base, SoftwareVersion: "bench", SearchParameters: care.SearchParameters(),
		Operations: co.Operations(), Hooks: co.Hooks(), Auditor: auditor})}
	go srv.Serve(lis)
	// Shutdown, unlike Close, waits for the handlers, which hand their
	// AuditEvents to the auditor after the response: before it closes.
	defer srv.Shutdown(context.WithoutCancel(ctx))
	c := &benchClient{base: base, client: &http.Client{Timeout: 5 * time.Minute},
		audited: auditor.Handled, flush: auditor.Flush}

	if err := c.giveCaseload(ctx, cfg.Caseload, max(1, patients/cfg.Caseload)); err != nil {
		return fmt.Errorf("bench care: %w", err)
	}
	fmt.Fprintf(stdout, "data: %s (%d patients)\n\n| operation | runs | p50 | max | answer | audit event written after: p50 |\n| --- | --: | --: | --: | --- | --: |\n", cfg.Data, patients)
	if cfg.CPUProfile != "" {
		stop, perr := startCPUProfile(cfg.CPUProfile)
		if perr != nil {
			return fmt.Errorf("bench care: %w", perr)
		}
		defer func() { err = errors.Join(err, stop()) }()
	}
	caseload := fmt.Sprintf("/Practitioner/bench-coordinator/$caseload?_count=%d", cfg.Caseload)
	if err := c.measure(ctx, stdout, "caseload of "+fmt.Sprint(cfg.Caseload), "GET", caseload, "", cfg.Runs); err != nil {
		return err
	}
	cohorts := []struct{ name, params string }{
		{"cohort: adults, frailty ≥ 0.2, no active PCSP", `{"name":"ageMin","valueInteger":18},{"name":"riskCode","valueString":"` + care.SystemRiskScore + `|` + care.CodeFrailty + `"},{"name":"riskMin","valueDecimal":0.2},{"name":"withoutActivePcsp","valueBoolean":true}`},
		{"cohort: everyone aged 0 or more", `{"name":"ageMin","valueInteger":0}`},
		{"cohort: latest PAM level ≤ 2", `{"name":"pamLevelMax","valueInteger":2}`},
	}
	for _, ch := range cohorts {
		if !cfg.Cohorts {
			break
		}
		body := `{"resourceType":"Parameters","parameter":[` + ch.params + `]}`
		if err := c.measure(ctx, stdout, ch.name, "POST", "/Group/$cohort", body, max(2, cfg.Runs/4)); err != nil {
			return err
		}
	}
	return nil
}

// startCPUProfile starts profiling the process's CPU into the file path;
// stop ends it and closes the file.
func startCPUProfile(path string) (stop func() error, err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		return nil
	}, nil
}

// benchClient sends the bench's requests.
type benchClient struct {
	base   string
	client *http.Client
	sent   int64
	// audited returns how many requests the server's audit trail holds.
	audited func() int64
	// flush writes what the audit trail has queued.
	flush func()
}

// settle waits until the audit event of every request sent so far is
// written, so that a measured request starts on an idle server, and
// returns how long that took. The server queues a request's event after
// its answer, so the count, not one flush, says when it is done.
func (c *benchClient) settle() time.Duration {
	start := time.Now()
	for c.audited() < c.sent && time.Since(start) < 5*time.Minute {
		c.flush()
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

func (c *benchClient) do(ctx context.Context, method, path, body string) (int, []byte, error) {
	c.sent++
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// giveCaseload makes the coordinator bench-coordinator the member of an
// active CareTeam of n patients, every step-th by id.
func (c *benchClient) giveCaseload(ctx context.Context, n, step int) error {
	if status, b, err := c.do(ctx, "PUT", "/Practitioner/bench-coordinator", `{"resourceType":"Practitioner","id":"bench-coordinator","name":[{"family":"Bench"}]}`); err != nil || status >= 300 {
		return fmt.Errorf("coordinator: %d %s %v", status, b, err)
	}
	var ids []string
	cursor, seen := "", 0
	for len(ids) < n {
		status, b, err := c.do(ctx, "GET", "/Patient?_count=1000&_elements=id"+cursor, "")
		if err != nil || status != http.StatusOK {
			return fmt.Errorf("patients: %d %v", status, err)
		}
		var page struct {
			Entry []struct{ Resource struct{ ID string } }
			Link  []struct{ Relation, URL string }
		}
		if err := json.Unmarshal(b, &page); err != nil {
			return err
		}
		for _, e := range page.Entry {
			if seen++; seen%step == 0 && len(ids) < n {
				ids = append(ids, e.Resource.ID)
			}
		}
		next := ""
		for _, l := range page.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
		if next == "" {
			break
		}
		cursor = "&_cursor=" + next[strings.Index(next, "_cursor=")+len("_cursor="):]
	}
	for i, id := range ids {
		team := fmt.Sprintf(`{"resourceType":"CareTeam","id":"bench-team-%d","status":"active","subject":{"reference":"Patient/%s"},"participant":[{"role":[{"coding":[{"system":%q,"code":%q}]}],"member":{"reference":"Practitioner/bench-coordinator"}}]}`,
			i, id, care.SystemCareRole, care.CodeCoordinator)
		if status, b, err := c.do(ctx, "PUT", fmt.Sprintf("/CareTeam/bench-team-%d", i), team); err != nil || status >= 300 {
			return fmt.Errorf("care team: %d %s %v", status, b, err)
		}
	}
	return nil
}

// measure runs one request runs times and writes a table row: the median
// and the slowest, and the size of the answer.
func (c *benchClient) measure(ctx context.Context, w io.Writer, name, method, path, body string, runs int) error {
	var took, audit []time.Duration
	var answer string
	late := 0
	for range runs {
		c.settle()
		start := time.Now()
		status, b, err := c.do(ctx, method, path, body)
		took = append(took, time.Since(start))
		audit = append(audit, c.settle())
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if status == http.StatusServiceUnavailable {
			// Past the request deadline: the row says so, and the
			// operations after it are still measured.
			late++
			continue
		}
		if status >= 300 {
			return fmt.Errorf("%s: %d %s", name, status, bytes.TrimSpace(b[:min(len(b), 300)]))
		}
		var res struct {
			Quantity  int
			Parameter []struct{ Name string }
		}
		json.Unmarshal(b, &res)
		switch {
		case res.Quantity > 0:
			answer = fmt.Sprintf("%d members", res.Quantity)
		default:
			answer = fmt.Sprintf("%d patients", len(res.Parameter)-1)
		}
	}
	if late > 0 {
		answer = strings.TrimSpace(fmt.Sprintf("%s (%d past the request deadline: 503)", answer, late))
	}
	slices.Sort(took)
	slices.Sort(audit)
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
	_, err := fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s |\n", name, runs, ms(took[len(took)/2]), ms(took[len(took)-1]), answer, ms(audit[len(audit)/2]))
	return err
}
