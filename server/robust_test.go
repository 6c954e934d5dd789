package server_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"carefhir/ops/cause"
	"carefhir/server"
)

// The regression suite of the robustness findings: requests a hostile or
// careless client can send that once exhausted the server or were
// answered wrongly. Each runs through HTTP on both engines.

const robustPatient = `{"resourceType":"Patient","name":[{"family":"Ward","given":["Sarah"]}],"gender":"female"}`

// entries returns the search Bundle's entries in search mode mode ("" for
// any).
func entries(t *testing.T, r *response, mode string) []any {
	t.Helper()
	var out []any
	es, _ := get(r.json(t), "entry").([]any)
	for _, e := range es {
		if mode == "" || str(e, "search", "mode") == mode {
			out = append(out, e)
		}
	}
	return out
}

func TestCostlyPatchesAreRefused(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", robustPatient), "id")
		tests := []struct {
			name, contentType, body, code string
			status                        int
		}{
			{"json patch copy doubling", "application/json-patch+json",
				`[{"op":"add","path":"/x","value":[]}` + strings.Repeat(`,{"op":"copy","from":"","path":"/x/-"}`, 30) + `]`,
				"too-costly", http.StatusUnprocessableEntity},
			{"json patch of too many operations", "application/json-patch+json",
				`[` + strings.TrimSuffix(strings.Repeat(`{"op":"test","path":"/gender","value":"female"},`, 1001), ",") + `]`,
				"too-costly", http.StatusUnprocessableEntity},
			{"fhirpath patch string doubling", "application/fhir+json",
				fhirpathDelete("Patient.name.where('x'.repeat($this + $this).count() > 0).family"),
				"too-costly", http.StatusUnprocessableEntity},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := c.do("PATCH", "/Patient/"+id, tt.body, "Content-Type", tt.contentType)
				r.want(t, tt.status).outcome(t, tt.code, "")
			})
		}
		// Huge powers answer at once, as overflow (empty: nothing selected).
		r := c.do("PATCH", "/Patient/"+id, fhirpathDelete("Patient.name.where(2.power(9223372036854775807) > 0 or 3.power(100000000) > 0)"),
			"Content-Type", "application/fhir+json")
		r.want(t, http.StatusOK)
		c.do("GET", "/Patient/"+id+"/_history", "").want(t, http.StatusOK)
		// It deleted nothing, so it wrote no version, and nothing refused did.
		if v := str(c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK).json(t), "meta", "versionId"); v != "1" {
			t.Errorf("versionId %s after refused patches and one that changes nothing, want 1", v)
		}
	})
}

// A FHIRPath expression chaining millions of operators or steps, which
// fits in a body, is refused as nested too deeply rather than evaluated by
// a recursion that overflows the stack and stops the server.
func TestLongFHIRPathChainsAre400(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", robustPatient), "id")
		for _, path := range []string{
			"Patient.name.where(" + strings.Repeat("1+", 2_000_000) + "1 > 0)",
			"Patient" + strings.Repeat(".name", 1_000_000),
			"Patient.name" + strings.Repeat("[0]", 1_000_000),
		} {
			r := c.do("PATCH", "/Patient/"+id, fhirpathDelete(path), "Content-Type", "application/fhir+json")
			if d := r.want(t, http.StatusBadRequest).outcome(t, "invalid", ""); !strings.Contains(d, "nested too deeply") {
				t.Errorf("diagnostics %.200q, want nested too deeply", d)
			}
		}
		if v := str(c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK).json(t), "meta", "versionId"); v != "1" {
			t.Errorf("versionId %s after refused patches, want 1", v)
		}
	})
}

// fhirpathDelete is a FHIRPath Patch deleting what path selects.
func fhirpathDelete(path string) string {
	return fmt.Sprintf(`{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"delete"},{"name":"path","valueString":%q}]}]}`, path)
}

func TestUnparseableQueryIs400(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.create("Patient", robustPatient)
		for _, q := range []string{
			"/Patient?family=Smith%zz",
			"/Patient?" + strings.Repeat("family=a&", 10001),
			"/Patient/_history?_since=2020%zz",
			"/_history?x=%",
		} {
			r := c.do("GET", q, "", "Prefer", "handling=lenient")
			r.want(t, http.StatusBadRequest).outcome(t, "invalid", "")
		}
		// A semicolon is part of the value holding it (TestQuerySemicolon).
		c.do("GET", "/Patient?family=Smith;", "", "Prefer", "handling=strict").want(t, http.StatusOK)
	})
}

func TestSearchBoundsAre400(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		names := make([]string, 201)
		for i := range names {
			names[i] = fmt.Sprintf("e%d", i)
		}
		for _, tt := range []struct{ query, expression string }{
			{"/Patient?" + strings.Repeat("family=a&", 101), ""},
			{"/Patient?family=" + strings.Repeat("a,", 1000) + "a", "family"},
			{"/Patient?_elements=" + strings.Join(names, ","), "_elements"},
			{"/Provenance?target._has:Provenance:target:target._has:Provenance:target:target.identifier=" + strings.Repeat("a,", 9) + "a", ""},
			{"/Patient?_has:Provenance:target:_has:Provenance:target:_has:Provenance:target:_has:Provenance:target:_has:Provenance:target:agent=x", "_has:Provenance:target:_has:Provenance:target:_has:Provenance:target:_has:Provenance:target:_has:Provenance:target:agent"},
		} {
			r := c.do("GET", tt.query, "")
			r.want(t, http.StatusBadRequest).outcome(t, "too-costly", tt.expression)
		}
		// 9,990 copies of one include are one include.
		r := c.do("GET", "/Patient?"+strings.Repeat("_revinclude:iterate=Observation:subject&", 9990), "")
		r.want(t, http.StatusOK)
	})
}

// OR lists up to the documented maximum work on every kind of parameter.
func TestLongORListsWork(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", robustPatient), "id")
		list := func(last string, f func(i int) string) string {
			vs := make([]string, 0, 1000)
			for i := range 999 {
				vs = append(vs, f(i))
			}
			return strings.Join(append(vs, last), ",")
		}
		for _, q := range []string{
			"/Patient?family=" + list("Ward", func(i int) string { return fmt.Sprintf("n%d", i) }),
			"/Patient?birthdate=" + list("ne1900-01-01", func(i int) string { return fmt.Sprintf("%d-01-01", 1000+i) }),
			"/Patient?_lastUpdated=" + list("gt2000-01-01", func(i int) string { return fmt.Sprintf("%d-01-01", 1000+i) }),
			"/Patient?_id=" + list(id, func(i int) string { return fmt.Sprintf("x%d", i) }),
			"/Patient?gender=" + list("female", func(i int) string { return fmt.Sprintf("g%d", i) }),
			"/Patient?general-practitioner=" + list("Practitioner/p", func(i int) string { return fmt.Sprintf("Practitioner/p%d", i) }) + "&family=Ward,Ward",
			"/Patient?_has:Observation:subject:code=" + list("x", func(i int) string { return fmt.Sprintf("c%d", i) }) + "&_has:Observation:subject:code:missing=true",
			"/Provenance?target.identifier=" + strings.Repeat("s|c,", 63) + "s|c",
			"/Provenance?target._has:Provenance:target:agent=" + strings.Repeat("Practitioner/x,", 63) + "Practitioner/x",
			"/Patient?_has:Provenance:target:target._has:Provenance:target:agent=" + strings.Repeat("Practitioner/x,", 63) + "Practitioner/x",
		} {
			r := c.do("GET", q, "")
			r.want(t, http.StatusOK)
		}
		r := c.do("GET", "/Patient?family="+list("Ward", func(i int) string { return fmt.Sprintf("n%d", i) }), "")
		if n := len(entries(t, r, "match")); n != 1 {
			t.Errorf("1,000 ORed names including Ward: %d matches, want 1", n)
		}
	})
}

func TestMissingOnIDAndLastUpdated(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.create("Patient", robustPatient)
		for _, tt := range []struct {
			query string
			want  int
		}{
			{"/Patient?_id:missing=true", 0},
			{"/Patient?_lastUpdated:missing=true", 0},
			{"/Patient?_id:missing=false", 1},
			{"/Patient?_lastUpdated:missing=false", 1},
		} {
			r := c.do("GET", tt.query, "").want(t, http.StatusOK)
			if n := len(entries(t, r, "match")); n != tt.want {
				t.Errorf("%s: %d matches, want %d", tt.query, n, tt.want)
			}
		}
	})
}

func TestHistoryAtYearZero(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.create("Patient", robustPatient)
		r := c.do("GET", "/Patient/_history?_at=0000", "").want(t, http.StatusOK)
		if n := len(entries(t, r, "")); n != 0 {
			t.Errorf("_at=0000: %d versions, want none (nothing was current in year 0)", n)
		}
	})
}

// A chain across target types compiles the inner parameter for each type:
// Provenance.target reaches CarePlan (performer a reference) and Task
// (performer a token).
func TestChainPerTargetType(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		task := str(c.create("Task", `{"resourceType":"Task","status":"requested","intent":"order","performerType":[{"coding":[{"code":"nurse"}]}]}`), "id")
		c.create("Provenance", fmt.Sprintf(`{"resourceType":"Provenance","target":[{"reference":"Task/%s"}],"recorded":"2024-01-01T00:00:00Z","agent":[{"who":{"display":"x"}}]}`, task))
		r := c.do("GET", "/Provenance?target.performer=nurse", "").want(t, http.StatusOK)
		if n := len(entries(t, r, "match")); n != 1 {
			t.Errorf("Provenance?target.performer=nurse: %d matches, want 1 (the Task's performer)", n)
		}
	})
}

// Concurrent conditional updates of what nothing matches yet: one creates,
// every other updates, and every acknowledged write is a version in the
// history carrying that client's content.
func TestConcurrentConditionalUpdate(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		const clients = 30
		statuses := make([]int, clients)
		bodies := make([]map[string]any, clients)
		var wg sync.WaitGroup
		for i := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := fmt.Sprintf(`{"resourceType":"Patient","identifier":[{"system":"urn:x","value":"cc1"}],"name":[{"family":"Client%d"}]}`, i)
				req, _ := http.NewRequest("PUT", c.base+"/Patient?identifier=urn:x|cc1", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/fhir+json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				defer resp.Body.Close()
				statuses[i] = resp.StatusCode
				json.NewDecoder(resp.Body).Decode(&bodies[i])
			}()
		}
		wg.Wait()
		created, acknowledged := 0, 0
		for i, s := range statuses {
			switch s {
			case http.StatusCreated:
				created++
				acknowledged++
			case http.StatusOK:
				acknowledged++
			case http.StatusConflict, http.StatusPreconditionFailed:
				continue
			default:
				t.Fatalf("client %d: status %d", i, s)
			}
			if got, want := str(bodies[i], "name", 0, "family"), fmt.Sprintf("Client%d", i); got != want {
				t.Errorf("client %d answered with %s's content", i, got)
			}
		}
		if created != 1 {
			t.Errorf("%d creates, want 1", created)
		}
		r := c.do("GET", "/Patient?identifier=urn:x|cc1", "").want(t, http.StatusOK)
		matches := entries(t, r, "match")
		if len(matches) != 1 {
			t.Fatalf("%d Patients with the identifier, want 1", len(matches))
		}
		id := str(matches[0], "resource", "id")
		h := c.do("GET", "/Patient/"+id+"/_history?_count=100", "").want(t, http.StatusOK)
		if n := len(entries(t, h, "")); n != acknowledged {
			t.Errorf("history holds %d versions; %d writes were acknowledged", n, acknowledged)
		}
	})
}

// Bodies with very many problems answer a small OperationOutcome: the
// first problems and one issue counting the rest.
func TestDecodeIssuesAreCapped(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		tests := []struct{ name, contentType, body string }{
			{"json wrong-typed items", "application/fhir+json",
				`{"resourceType":"Patient","name":[` + strings.TrimSuffix(strings.Repeat("1,", 500000), ",") + `]}`},
			{"xml unknown elements", "application/fhir+xml",
				`<Patient xmlns="http://hl7.org/fhir">` + strings.Repeat("<x/>", 300000) + `</Patient>`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := c.do("POST", "/Patient", tt.body, "Content-Type", tt.contentType, "Accept", "application/fhir+json")
				r.want(t, http.StatusBadRequest)
				issues, _ := get(r.json(t), "issue").([]any)
				if len(issues) > 101 || len(r.body) > 64<<10 {
					t.Fatalf("%d issues, %d bytes: want at most 101 issues", len(issues), len(r.body))
				}
				if last := str(issues[len(issues)-1], "diagnostics"); !strings.Contains(last, "more problems") {
					t.Errorf("last issue %q does not count the problems left out", last)
				}
			})
		}
		// An element of many attributes is refused before it is parsed.
		r := c.do("POST", "/Patient", `<Patient xmlns="http://hl7.org/fhir" `+attributes(100000)+`/>`, "Content-Type", "application/fhir+xml", "Accept", "application/fhir+json")
		r.want(t, http.StatusBadRequest).outcome(t, "invalid", "")
		r = c.do("GET", "/Patient", "").want(t, http.StatusOK)
		if n := len(entries(t, r, "match")); n != 0 {
			t.Errorf("%d Patients stored by refused requests", n)
		}
	})
}

func attributes(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "a%d=\"x\" ", i)
	}
	return b.String()
}

// A character reference to a surrogate is refused in XML as \ud800 is in
// JSON, rather than stored as U+FFFD.
func TestLoneSurrogateRefused(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("POST", "/Patient", `<Patient xmlns="http://hl7.org/fhir"><name><family value="W&#xD800;rd"/></name></Patient>`,
			"Content-Type", "application/fhir+xml", "Accept", "application/fhir+json")
		r.want(t, http.StatusBadRequest).outcome(t, "invalid", "")
		r = c.do("POST", "/Patient", `{"resourceType":"Patient","name":[{"family":"W\ud800rd"}]}`)
		r.want(t, http.StatusBadRequest)
		r = c.do("POST", "/Patient", `<Patient xmlns="http://hl7.org/fhir"><name><family value="W&#xE9;rd &#55295;"/></name></Patient>`,
			"Content-Type", "application/fhir+xml")
		r.want(t, http.StatusCreated)
	})
}

// Numbers beyond float64's precision or range are found by the searches
// that should find them.
func TestBigNumbers(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.create("Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":12345678901234567,"unit":"{beats}"}}`)
		c.do("POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"y"},"valueQuantity":{"value":1e309,"unit":"mg"}}`).want(t, http.StatusCreated)
		for _, tt := range []struct{ query string }{
			{"/Observation?value-quantity=12345678901234567"},
			{"/Observation?value-quantity=12345678901234567||{beats}"},
			{"/Observation?value-quantity=gt1e300"},
		} {
			r := c.do("GET", tt.query+"&_summary=count", "").want(t, http.StatusOK)
			if n := get(r.json(t), "total"); n != 1.0 {
				t.Errorf("%s: %v matches, want 1", tt.query, n)
			}
		}
	})
}

// withCostBound gives requests, and their units of work, two minutes: for
// the tests that send work whose cost was once unbounded. Bounded, each
// request of theirs costs a second or two of CPU, which a loaded machine
// may stretch tenfold; unbounded, one cost several minutes of CPU, so it
// overran the bound on an idle machine too. A deadline of a few seconds
// failed these tests on a busy machine with nothing wrong.
func withCostBound(cfg *server.Config) {
	cfg.Limits.Deadline = 2 * time.Minute
	cfg.Limits.UnitOfWork = 2 * time.Minute
}

// A decimal of eight million digits is stored, read back as written and
// tested by a JSON Patch, within withCostBound: indexing it,
// and comparing it with the value of a test, once read it in time
// quadratic in its digits, for minutes. It is too long to search by.
func TestLongDecimalIsCheap(t *testing.T) {
	value := "1" + strings.Repeat("0", 8_000_000)
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":`+value+`,"system":"http://unitsofmeasure.org","code":"mg"}}`).
			want(t, http.StatusCreated)
		if got := c.do("GET", r.header.Get("Location"), "").want(t, http.StatusOK); !strings.Contains(string(got.body), `"value":`+value+`,`) {
			t.Errorf("the decimal was not read back as written")
		}
		path := r.header.Get("Location")[:strings.Index(r.header.Get("Location"), "/_history")]
		c.do("PATCH", path, `[{"op":"test","path":"/valueQuantity/value","value":1e8000000},{"op":"replace","path":"/status","value":"amended"}]`,
			"Content-Type", "application/json-patch+json").want(t, http.StatusOK)
		c.do("PATCH", path, `[{"op":"test","path":"/valueQuantity/value","value":1e7999999}]`, "Content-Type", "application/json-patch+json").
			want(t, http.StatusConflict)
	}, withCostBound)
}

// Includes cut at the server's bound say so in an outcome entry.
func TestIncludeCutIsReported(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		prev := "Patient/" + str(c.create("Patient", robustPatient), "id")
		for range 6 {
			p := c.create("Provenance", fmt.Sprintf(`{"resourceType":"Provenance","target":[{"reference":%q}],"recorded":"2024-01-01T00:00:00Z","agent":[{"who":{"display":"x"}}]}`, prev))
			prev = "Provenance/" + str(p, "id")
		}
		r := c.do("GET", "/Patient?_revinclude:iterate=Provenance:target", "").want(t, http.StatusOK)
		if n := len(entries(t, r, "include")); n != 4 {
			t.Errorf("%d included, want 4 (four rounds)", n)
		}
		outcomes := entries(t, r, "outcome")
		if len(outcomes) != 1 || str(outcomes[0], "resource", "issue", 0, "code") != "too-costly" {
			t.Errorf("outcome entries %v, want one saying the includes were cut", outcomes)
		}
		r = c.do("GET", "/Patient?_revinclude=Provenance:target", "").want(t, http.StatusOK)
		if n := len(entries(t, r, "outcome")); n != 0 {
			t.Errorf("%d outcome entries for includes not cut", n)
		}
	})
}

// A request past its deadline is stopped and answered 503 with
// Retry-After, and the cause is logged.
func TestRequestDeadline(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("GET", "/Patient?name=Ward", "").want(t, http.StatusServiceUnavailable)
		r.outcome(t, "too-costly", "")
		if r.header.Get("Retry-After") == "" {
			t.Error("no Retry-After")
		}
		if !strings.Contains(c.logs.String(), `"error"`) {
			t.Errorf("the 503 was logged without its cause: %s", c.logs.String())
		}
	}, func(cfg *server.Config) { cfg.Limits.Deadline = time.Nanosecond })
}

// A unit of work past its time is 503 and writes nothing.
func TestUnitOfWorkTime(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		tx := `{"resourceType":"Bundle","type":"transaction","entry":[` +
			`{"resource":` + robustPatient + `,"request":{"method":"POST","url":"Patient"}},` +
			`{"request":{"method":"GET","url":"Patient?name=Ward"}}]}`
		c.do("POST", "", tx).want(t, http.StatusServiceUnavailable).outcome(t, "too-costly", "")
		c.do("PUT", "/Patient?identifier=urn:x|1", robustPatient).want(t, http.StatusServiceUnavailable)
		r := c.do("GET", "/Patient", "").want(t, http.StatusOK)
		if n := len(entries(t, r, "match")); n != 0 {
			t.Errorf("%d Patients written by units of work stopped at their time", n)
		}
	}, func(cfg *server.Config) { cfg.Limits.UnitOfWork = time.Nanosecond })
}

// The GET entries of one batch or transaction return at most
// Limits.BundleReads bytes (64 MiB unless set), summed: past that, a batch's further reads are refused entry by entry
// (its writes still run), and a transaction fails, rather than the
// response of a small Bundle of searches growing to gigabytes in memory.
func TestBundleReadsAreBounded(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		// 8 Patients of 20 kB, each search of them 160 kB.
		var load []string
		for range 8 {
			load = append(load, `{"resource":{"resourceType":"Patient","name":[{"family":"`+strings.Repeat("a", 20_000)+`"}]},"request":{"method":"POST","url":"Patient"}}`)
		}
		c.do("POST", "", `{"resourceType":"Bundle","type":"transaction","entry":[`+strings.Join(load, ",")+`]}`).want(t, http.StatusOK)
		const reads = 10 // 1.6 MB
		var es []string
		for range reads {
			es = append(es, `{"request":{"method":"GET","url":"Patient?_count=100"}}`)
		}
		// Refused before it runs: it would be 400 invalid if it ran.
		es = append(es, `{"request":{"method":"GET","url":"Patient?_count=abc"}}`)
		es = append(es, `{"resource":`+robustPatient+`,"request":{"method":"POST","url":"Patient"}}`)
		batch := `{"resourceType":"Bundle","type":"batch","entry":[` + strings.Join(es, ",") + `]}`

		r := c.do("POST", "", batch).want(t, http.StatusOK)
		if len(r.body) > 1<<20+100_000 {
			t.Errorf("batch response of %d bytes, want at most 1 MiB of reads", len(r.body))
		}
		got := entries(t, r, "")
		ok, refused := 0, 0
		for _, e := range got[:reads] {
			switch status := str(e, "response", "status"); {
			case strings.HasPrefix(status, "200"):
				ok++
			case strings.HasPrefix(status, "400") && str(e, "response", "outcome", "issue", 0, "code") == "too-costly":
				refused++
			default:
				t.Errorf("entry status %s, want 200, or 400 too-costly", status)
			}
		}
		if ok == 0 || refused == 0 || ok+refused != reads {
			t.Errorf("%d reads answered and %d refused, want some of each", ok, refused)
		}
		if code := str(got[reads], "response", "outcome", "issue", 0, "code"); code != "too-costly" {
			t.Errorf("a GET entry once the reads are spent: issue %q, want too-costly", code)
		}
		if status := str(got[reads+1], "response", "status"); !strings.HasPrefix(status, "201") {
			t.Errorf("the POST after the refused reads: status %s, want 201", status)
		}

		transaction := strings.Replace(batch, `"batch"`, `"transaction"`, 1)
		c.do("POST", "", transaction).want(t, http.StatusBadRequest).outcome(t, "too-costly", "")
		if n := get(c.do("GET", "/Patient?_summary=count", "").want(t, http.StatusOK).json(t), "total"); n != 9.0 {
			t.Errorf("%v Patients, want 9: the failed transaction stores nothing", n)
		}
	}, func(cfg *server.Config) { cfg.Limits.BundleReads = 1 << 20 })
}

// A 5xx answered by a route the host adds (a plain HTTP handler, such as
// the status of a bulk export) is logged with its cause and request id.
func TestHostRouteFailureLogged(t *testing.T) {
	failing := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cause.Record(r.Context(), errors.New("job record unreadable: disk I/O error"))
		http.Error(w, "the export job could not be read", http.StatusInternalServerError)
	})
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("GET", "/$export-status?_jobId=j", "", "X-Request-Id", "host-route-1").want(t, http.StatusInternalServerError)
		if strings.Contains(string(r.body), "disk I/O") {
			t.Errorf("the client was shown the cause: %s", r.body)
		}
		var line string
		for l := range strings.Lines(c.logs.String()) {
			if strings.Contains(l, "host-route-1") {
				line = l
			}
		}
		if !strings.Contains(line, "job record unreadable: disk I/O error") {
			t.Errorf("the 500 was logged without its cause: %q", line)
		}
	}, func(cfg *server.Config) {
		cfg.Routes = append(cfg.Routes, server.Route{Method: http.MethodGet, Path: "/fhir/$export-status", Handler: failing})
	})
}

// A method a host's route does not serve is 405 naming the methods it
// does, not the 404 of a resource type not served.
func TestHostRouteOtherMethods(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })
	eachEngine(t, func(t *testing.T, c *client) {
		for _, method := range []string{"PUT", "POST", "PATCH"} {
			r := c.do(method, "/$export-status?_jobId=j", `{"resourceType":"Parameters"}`, "Content-Type", "application/fhir+json").want(t, http.StatusMethodNotAllowed)
			if got := r.header.Get("Allow"); got != "GET, HEAD, DELETE" {
				t.Errorf("%s: Allow %q", method, got)
			}
			if !strings.Contains(string(r.body), `"not-supported"`) || !strings.Contains(string(r.body), method+" is not allowed on /fhir/$export-status") {
				t.Errorf("%s: %s", method, r.body)
			}
		}
		c.do("DELETE", "/$export-status?_jobId=j", "").want(t, http.StatusAccepted)
		c.do("HEAD", "/$export-status?_jobId=j", "").want(t, http.StatusAccepted)
	}, func(cfg *server.Config) {
		cfg.Routes = append(cfg.Routes,
			server.Route{Method: http.MethodGet, Path: "/fhir/$export-status", Handler: ok},
			server.Route{Method: http.MethodDelete, Path: "/fhir/$export-status", Handler: ok})
	})
}
