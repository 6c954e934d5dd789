package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"net/http/httptest"
	"path/filepath"

	"carefhir/mappers/hl7v2/mllp"
	"carefhir/mappers/importop"
	"carefhir/server"
	"carefhir/store"
	"carefhir/store/mongo/ferrettest"
	"carefhir/store/sqlite"
)

// TestImportExportLocal imports a PDS record into a local data directory,
// again without duplicating it, exports the patient's record, and refuses
// a broken CSV file naming its line.
func TestImportExportLocal(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	carefhir := func(args ...string) (string, error) {
		var out strings.Builder
		err := run(ctx, args, env(nil), &out, io.Discard)
		return out.String(), err
	}
	const pds = "../../mappers/pds/testdata/sandbox-mocks/Patient.json"
	out, err := carefhir("import", "--data", dir, "--format", "pds", pds)
	if err != nil || !strings.Contains(out, `"name":"created","valueInteger":2`) {
		t.Fatalf("import: %v\n%s", err, out)
	}
	id := regexp.MustCompile(`"Patient/([^"]+)"`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("the import report names no Patient:\n%s", out)
	}
	if out, err = carefhir("import", "--data", dir, "--format", "pds", pds); err != nil || !strings.Contains(out, `"name":"created","valueInteger":0`) {
		t.Fatalf("import again: %v\n%s", err, out)
	}
	out, err = carefhir("export", "--data", dir, "--format", "bundle", "--patient", id[1])
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	var b struct {
		Type  string
		Entry []json.RawMessage
	}
	if err := json.Unmarshal([]byte(out), &b); err != nil || b.Type != "collection" || len(b.Entry) != 1 {
		t.Errorf("export: %v %s", err, out)
	}
	// --since exports every patient whose record changed since a date.
	for since, want := range map[string]int{"2000-01-01": 1, "2999-01-01": 0} {
		out, err = carefhir("export", "--data", dir, "--format", "bundle", "--since", since)
		b.Entry = nil
		if err := json.Unmarshal([]byte(out), &b); err != nil || b.Type != "collection" || len(b.Entry) != want {
			t.Errorf("export --since %s: %v, %d entries, want %d: %s", since, err, len(b.Entry), want, out)
		}
		// FHIR JSON has no null: an empty Bundle leaves entry out.
		if strings.Contains(out, "null") {
			t.Errorf("export --since %s holds a JSON null: %s", since, out)
		}
	}
	if out, err = carefhir("export", "--data", dir, "--format", "csv", "--since", "2000-01-01"); err != nil || !strings.HasPrefix(out, "NHS Number,") {
		t.Errorf("export --since as CSV: %v %q", err, out)
	}
	if _, err = carefhir("export", "--data", dir, "--patient", id[1], "--since", "2000-01-01"); err == nil {
		t.Error("export with both --patient and --since: no error")
	}
	// A mapping file of one's own, or a broken one.
	const emis = "../../mappers/csv/testdata/synthetic/emis-patient-list.csv"
	if out, err = carefhir("import", "--data", dir, "--format", "csv", "--mapping", "../../mappers/csv/layouts/emis-patient-list.yaml", emis); err != nil || !strings.Contains(out, `"name":"created"`) {
		t.Errorf("import with a mapping file: %v\n%s", err, out)
	}
	broken := filepath.Join(t.TempDir(), "mapping.yaml")
	os.WriteFile(broken, []byte("name: broken\ncolumns:\n  nhsNumber: \"\"\n"), 0o600)
	if _, err = carefhir("import", "--data", dir, "--format", "csv", "--mapping", broken, emis); err == nil || !strings.Contains(err.Error(), "mapping") {
		t.Errorf("import with a broken mapping file: %v", err)
	}
	_, err = carefhir("import", "--data", dir, "--format", "csv", "--mapping", "emis-patient-list", "testdata/broken.csv")
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("a broken CSV file: %v", err)
	}
	if _, err := carefhir("import", "--data", dir, "--format", "xml", pds); err == nil || !strings.Contains(err.Error(), "format") {
		t.Errorf("an unknown format: %v", err)
	}
}

// TestImportToServer imports an HL7 v2 message into a running server and
// prints its acknowledgement.
func TestImportToServer(t *testing.T) {
	p := start(t, "--data", t.TempDir())
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := []string{"import", "--url", p.base, "--format", "hl7v2", "../../mappers/hl7v2/testdata/uk/A28-register.hl7"}
	if err := run(ctx, args, env(nil), &out, io.Discard); err != nil || !strings.Contains(out.String(), "MSA|AA|MSG0001") {
		t.Fatalf("carefhir %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
}

// TestImportRefusalWhole imports into a running server a CSV file of 200
// rows whose long dates are refused: the server's OperationOutcome names
// each row with its value, over 1 MiB, and import shows every issue, one
// a line, where it showed the OperationOutcome's JSON cut at 1 MiB.
func TestImportRefusalWhole(t *testing.T) {
	const rows = 200
	var csv strings.Builder
	csv.WriteString("Organisation,NHS Number,First Name,Surname,Date of Birth,Gender\n")
	for n := range rows {
		fmt.Fprintf(&csv, "Y12345,999 000 0018,Ann,Lee,not a date %d %s,F\n", n, strings.Repeat("x", 8000))
	}
	file := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(file, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, "--data", t.TempDir())
	args := []string{"import", "--url", p.base, "--format", "csv", "--mapping", "emis-patient-list", file}
	err := run(t.Context(), args, env(nil), io.Discard, io.Discard)
	if err == nil {
		t.Fatal("import of bad rows: no error")
	}
	text := err.Error()
	if !strings.Contains(text, "refused (400)") || len(text) <= 1<<20 {
		t.Fatalf("import: %d bytes: %s", len(text), text[max(0, len(text)-400):])
	}
	lines := strings.Split(text, "\n")
	issues := 0
	for _, l := range lines {
		if strings.Contains(l, "not a date") {
			issues++
		}
	}
	if issues != rows {
		t.Errorf("%d issues shown, want %d", issues, rows)
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, fmt.Sprintf("not a date %d", rows-1)) || strings.Contains(text, `"resourceType"`) {
		t.Errorf("the refusal ends %q, want the last row's issue, as text", last)
	}
}

// TestMLLP sends an HL7 v2 message to serve's MLLP listener twice, then
// again after serve restarts on the same data: every time it is
// acknowledged AA, and the patient is stored once, in one version.
func TestMLLP(t *testing.T) {
	data := t.TempDir()
	msg, err := os.ReadFile("../../mappers/hl7v2/testdata/uk/A28-register.hl7")
	if err != nil {
		t.Fatal(err)
	}
	var base string
	for run := 1; run <= 2; run++ {
		p := start(t, "--data", data, "--mllp-addr", "127.0.0.1:0")
		base = p.base
		sendMLLP(t, p, msg, 3-run)
		if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if err := p.wait(t); err != nil {
			t.Fatalf("serve did not stop cleanly: %v", err)
		}
	}
	p := start(t, "--data", data)
	base = p.base
	var found struct {
		Entry []struct{ Resource struct{ ID string } }
	}
	getJSON(t, base+"/Patient", &found)
	if len(found.Entry) != 1 {
		t.Fatalf("%d Patients stored, want 1", len(found.Entry))
	}
	var history struct{ Total int }
	getJSON(t, base+"/Patient/"+found.Entry[0].Resource.ID+"/_history", &history)
	if history.Total != 1 {
		t.Errorf("the patient has %d versions, want 1: the message was applied again", history.Total)
	}
}

// sendMLLP sends msg times times to the MLLP listener p logged, each time
// wanting an AA acknowledgement.
func sendMLLP(t *testing.T, p *proc, msg []byte, times int) {
	t.Helper()
	msgs := make([][]byte, times)
	for i := range msgs {
		msgs[i] = msg
	}
	for round, ack := range exchangeMLLP(t, p, msgs...) {
		if !bytes.Contains(ack, []byte("MSA|AA|MSG0001")) {
			t.Fatalf("round %d: %q", round+1, ack)
		}
	}
}

// getJSON decodes the JSON answer of a GET of url into v.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
}

// TestImportNDJSON loads an NDJSON file into a served API and reports what
// it refused.
func TestImportNDJSON(t *testing.T) {
	st, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.New(server.Config{Store: st, SoftwareVersion: "test"}))
	t.Cleanup(func() {
		srv.Close()
		st.Close()
	})
	file := filepath.Join(t.TempDir(), "Patient.ndjson")
	os.WriteFile(file, []byte(`{"resourceType":"Patient","id":"a"}`+"\n"+`{"resourceType":"Patient","id":"b","colour":"blue"}`+"\n"), 0o600)
	var out bytes.Buffer
	cfg, err := parseImportConfig([]string{"--url", srv.URL + "/fhir", "--format", "ndjson", file}, func(string) string { return "" }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	err = importFiles(t.Context(), cfg, engines(), &out, io.Discard)
	if err == nil || !strings.Contains(out.String(), "loaded 1 resources") || !strings.Contains(out.String(), "refused Patient.ndjson:2: 400") {
		t.Errorf("import: %v\n%s", err, out.String())
	}
}

// TestMLLPKeepsMerges sends over MLLP an A40 that merges one record into
// another, then a registration of the record merged away: it is
// acknowledged AA with a warning, and the record stays inactive and
// linked to the survivor, as through $import.
func TestMLLPKeepsMerges(t *testing.T) {
	merge, err := os.ReadFile("../../mappers/hl7v2/testdata/uk/A40-merge.hl7")
	if err != nil {
		t.Fatal(err)
	}
	register := "MSH|^~\\&|PAS|RXX|CAREFHIR|PCN01|20260304120000||ADT^A28^ADT_A05|MSG0101|P|2.4\r" +
		"PID|1||9990000042^^^NHS^NH||WARD^SARAH^^^MRS^^L||19480312|F\r"
	p := start(t, "--data", t.TempDir(), "--mllp-addr", "127.0.0.1:0")
	acks := exchangeMLLP(t, p, merge, []byte(register))
	if !bytes.Contains(acks[0], []byte("MSA|AA|MSG0003")) {
		t.Fatalf("the merge: %q", acks[0])
	}
	if !bytes.Contains(acks[1], []byte("MSA|AA|MSG0101")) || !bytes.Contains(acks[1], []byte("|W|")) {
		t.Errorf("the registration of the merged record: %q, want AA with a warning", acks[1])
	}
	var found struct {
		Entry []struct {
			Resource struct {
				Active *bool
				Link   []struct{ Type string }
			}
		}
	}
	getJSON(t, p.base+"/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000042", &found)
	if len(found.Entry) != 1 {
		t.Fatalf("%d records of the merged NHS number", len(found.Entry))
	}
	r := found.Entry[0].Resource
	if r.Active == nil || *r.Active || len(r.Link) != 1 || r.Link[0].Type != "replaced-by" {
		t.Errorf("the merged record after the registration: active %v, links %v", r.Active, r.Link)
	}
}

// TestMLLPUpdatesPart registers a patient over MLLP with an address,
// phones, an email, a practice and a GP, twice under two control ids,
// then sends an A31 that carries only a new name, twice: the record keeps
// what the A31 does not carry, and the second registration and A31 write
// no version.
func TestMLLPUpdatesPart(t *testing.T) {
	register, err := os.ReadFile("../../mappers/hl7v2/testdata/uk/A28-register.hl7")
	if err != nil {
		t.Fatal(err)
	}
	rename := func(control string) []byte {
		return []byte("MSH|^~\\&|EMISWEB|Y12345|CAREFHIR|PCN01|20260302093000+0000||ADT^A31^ADT_A05|" + control + "|P|2.4\r" +
			"PID|1||9990000018^^^NHS^NH||JONES^SARAH^ANNE^^MRS^^L\r")
	}
	p := start(t, "--data", t.TempDir(), "--mllp-addr", "127.0.0.1:0")
	again := bytes.Replace(register, []byte("|MSG0001|"), []byte("|MSG0101|"), 1)
	for i, ack := range exchangeMLLP(t, p, register, again, rename("MSG0102"), rename("MSG0103")) {
		if !bytes.Contains(ack, []byte("MSA|AA|")) {
			t.Fatalf("message %d: %q", i+1, ack)
		}
	}
	var found struct {
		Entry []struct{ Resource json.RawMessage }
	}
	getJSON(t, p.base+"/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018", &found)
	if len(found.Entry) != 1 {
		t.Fatalf("%d records of the NHS number", len(found.Entry))
	}
	got := string(found.Entry[0].Resource)
	for _, want := range []string{`"family":"JONES"`, `"LS1 4AP"`, `"01132 496000"`, `"07700 900123"`, `"sarah.ward@example.com"`, `"01132 496999"`, `"generalPractitioner":[{"reference":"Organization/`, `"reference":"Practitioner/`, `"birthDate":"1948-03-12"`, `NHSNumberVerificationStatus`} {
		if !strings.Contains(got, want) {
			t.Errorf("after an A31 of a new name the record lacks %s: %s", want, got)
		}
	}
	if strings.Contains(got, `"WARD"`) {
		t.Errorf("the A31 left the former name: %s", got)
	}
	var history struct{ Total int }
	var stored struct{ ID string }
	json.Unmarshal(found.Entry[0].Resource, &stored)
	getJSON(t, p.base+"/Patient/"+stored.ID+"/_history", &history)
	if history.Total != 2 {
		t.Errorf("the patient has %d versions after the same registration twice and the same A31 twice, want 2", history.Total)
	}
}

// exchangeMLLP sends each of msgs to the MLLP listener p logged, on one
// connection, and returns the acknowledgements.
func exchangeMLLP(t *testing.T, p *proc, msgs ...[]byte) [][]byte {
	t.Helper()
	var addr string
	for _, line := range strings.Split(p.logs.String(), "\n") {
		var l struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "listening for HL7 v2 over MLLP" {
			addr = l.Addr
		}
	}
	if addr == "" {
		t.Fatalf("no MLLP listener logged:\n%s", p.logs.String())
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	var acks [][]byte
	for _, msg := range msgs {
		if _, err := conn.Write(mllp.Frame(msg)); err != nil {
			t.Fatal(err)
		}
		ack, err := mllp.ReadFrame(r, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, ack)
	}
	return acks
}

// When the server is told to stop, the MLLP listener stops taking
// connections, and a message being imported is imported to the end, not
// cancelled, and acknowledged before stop returns.
func TestMLLPFinishesMessagesAtShutdown(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	started, release := make(chan struct{}), make(chan struct{})
	var cancelled error
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		cancelled = r.Context().Err()
		w.Header().Set("Content-Type", importop.HL7v2MediaType)
		io.WriteString(w, "MSH|^~\\&|carefhir\rMSA|AA|MSG0001\r")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	stop := startMLLP(ctx, ln, h, 10*time.Second, discardLogger())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(mllp.Frame([]byte("MSH|^~\\&|GP|A|carefhir|B|20261205||ADT^A28|MSG0001|P|2.4\r"))); err != nil {
		t.Fatal(err)
	}
	<-started

	cancel() // SIGTERM
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		other, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		other.Close()
		if time.Now().After(deadline) {
			t.Fatal("the MLLP listener still accepts once the server is told to stop")
		}
	}
	stopped := make(chan struct{})
	go func() {
		stop()
		close(stopped)
	}()
	close(release)
	ack, err := mllp.ReadFrame(bufio.NewReader(c), 1<<20)
	if err != nil || !bytes.Contains(ack, []byte("MSA|AA|MSG0001")) {
		t.Errorf("the message in flight at shutdown: %q, %v; want its AA", ack, err)
	}
	<-stopped
	if cancelled != nil {
		t.Errorf("the import in flight at shutdown saw its context %v", cancelled)
	}
}

// TestImportLocalNotifies: records imported into a local store reach the
// Subscriptions as through a running server: the next serve delivers
// what they matched.
func TestImportLocalNotifies(t *testing.T) {
	places := map[string]func(t *testing.T) []string{
		engineSQLite: func(t *testing.T) []string { return []string{"--data", t.TempDir()} },
		engineMongo:  func(t *testing.T) []string { return []string{"--mongo-uri", ferrettest.Start(t)} },
	}
	for name, place := range places {
		t.Run(name, func(t *testing.T) {
			where := place(t)
			got := make(chan string, 16)
			rx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got <- r.Method + " " + r.URL.Path
			}))
			t.Cleanup(rx.Close)
			dir := t.TempDir()
			subs := filepath.Join(dir, "Subscription.ndjson")
			os.WriteFile(subs, []byte(`{"resourceType":"Subscription","id":"scr","status":"requested","reason":"bookings","criteria":"Appointment?status=booked",`+
				`"channel":{"type":"rest-hook","endpoint":"`+rx.URL+`/hook","payload":"application/fhir+json"}}`+"\n"), 0o600)
			appts := filepath.Join(dir, "Appointment.ndjson")
			os.WriteFile(appts, []byte(`{"resourceType":"Appointment","id":"a1","status":"booked","start":"2026-12-10T10:00:00Z","end":"2026-12-10T10:15:00Z",`+
				`"participant":[{"actor":{"reference":"Patient/p1"},"status":"accepted"}]}`+"\n"), 0o600)
			for _, file := range []string{subs, appts} {
				args := append(append([]string{"import", "--format", "ndjson"}, where...), file)
				if err := run(t.Context(), args, env(nil), io.Discard, io.Discard); err != nil {
					t.Fatalf("import %s: %v", filepath.Base(file), err)
				}
			}
			start(t, append(where, "--export-dir", t.TempDir())...)
			want := []string{"POST /hook", "PUT /hook/Appointment/a1"}
			for _, w := range want {
				select {
				case g := <-got:
					if g != w {
						t.Fatalf("the receiver was sent %s, want %v in turn", g, want)
					}
				case <-time.After(30 * time.Second):
					t.Fatalf("the receiver was not sent %s", w)
				}
			}
		})
	}
}

// TestMLLPStoreRefusals: a message whose writes $import refuses for what
// they hold or who sent them is acknowledged AE, which a sender does not
// send again unchanged; one the store could not take for now is
// acknowledged AR, to be sent again later. Each ERR is 207 with a text
// saying which.
func TestMLLPStoreRefusals(t *testing.T) {
	cases := []struct {
		status int
		code   string
		resend bool
		issue  string
	}{
		{http.StatusForbidden, "AE", false, "forbidden"},
		{http.StatusUnprocessableEntity, "AE", false, "processing"},
		{http.StatusPreconditionFailed, "AE", false, "multiple-matches"},
		{http.StatusConflict, "AR", true, "conflict"},
		{http.StatusServiceUnavailable, "AR", true, "transient"},
		{http.StatusInternalServerError, "AR", true, "exception"},
	}
	for _, c := range cases {
		t.Run(strconv.Itoa(c.status), func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/fhir+json")
				w.WriteHeader(c.status)
				fmt.Fprintf(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":%q}]}`, c.issue)
			})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			stop := startMLLP(t.Context(), ln, h, 10*time.Second, discardLogger())
			defer stop()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			msg := "MSH|^~\\&|PAS|RXX|CAREFHIR|PCN01|20260304120000||ADT^A28^ADT_A05|MSG0201|P|2.4\r" +
				"PID|1||9990000018^^^NHS^NH||WARD^SARAH||19700203|F\r"
			if _, err := conn.Write(mllp.Frame([]byte(msg))); err != nil {
				t.Fatal(err)
			}
			ack, err := mllp.ReadFrame(bufio.NewReader(conn), 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(ack, []byte("\rMSA|"+c.code+"|MSG0201|")) || !bytes.Contains(ack, []byte("\rERR|||207^Application internal error^HL70357|E||||")) {
				t.Errorf("ack = %q, want %s with ERR 207", ack, c.code)
			}
			if resend := bytes.Contains(ack, []byte("send it again later")); resend != c.resend {
				t.Errorf("ack = %q: tells the sender to send it again later: %v, want %v", ack, resend, c.resend)
			}
		})
	}
}

// TestMLLPTooLarge sends serve's MLLP listener a message over 4 MiB, then
// a registration on the same connection: the first is acknowledged AE
// with its control id and an ERR 207 saying it is too long, rather than
// the connection closed unanswered for the sender to send it again for
// ever, and the second is applied.
func TestMLLPTooLarge(t *testing.T) {
	large := "MSH|^~\\&|PAS|RXX|CAREFHIR|PCN01|20260304120000||ADT^A28^ADT_A05|MSG0301|P|2.4\r" +
		"PID|1||9990000018^^^NHS^NH||WARD^SARAH||19700203|F\r" +
		"NTE|1||" + strings.Repeat("x", mllp.DefaultMaxMessage) + "\r"
	register := "MSH|^~\\&|PAS|RXX|CAREFHIR|PCN01|20260304120000||ADT^A28^ADT_A05|MSG0302|P|2.4\r" +
		"PID|1||9990000018^^^NHS^NH||WARD^SARAH||19700203|F\r"
	p := start(t, "--data", t.TempDir(), "--mllp-addr", "127.0.0.1:0")
	acks := exchangeMLLP(t, p, []byte(large), []byte(register))
	if !bytes.Contains(acks[0], []byte("|CAREFHIR|PCN01|PAS|RXX|")) || !bytes.Contains(acks[0], []byte("\rMSA|AE|MSG0301|")) ||
		!bytes.Contains(acks[0], []byte("\rERR|||207^Application internal error^HL70357|E||||the message is longer than")) {
		t.Errorf("the message over the limit: %q, want AE to its sender with ERR 207", acks[0])
	}
	if !bytes.Contains(acks[1], []byte("\rMSA|AA|MSG0302")) {
		t.Errorf("the registration after it: %q, want AA", acks[1])
	}
}

// TestMLLPLargeAcknowledgement sends serve's MLLP listener a registration
// whose names draw a warning each, 12,000 of them: it is AA with the
// first 100 warnings as ERR segments and one more ERR counting the rest,
// whole, where it was an acknowledgement of over 1 MiB.
func TestMLLPLargeAcknowledgement(t *testing.T) {
	const names = 12000
	msg := "MSH|^~\\&|PAS|RXX|CAREFHIR|PCN01|20260304120000||ADT^A28^ADT_A05|MSG0401|P|2.4\r" +
		"PID|1||9990000018^^^NHS^NH||WARD^SARAH~" + strings.Repeat("^^^^MR~", names) + "||19700203|F\r"
	p := start(t, "--data", t.TempDir(), "--mllp-addr", "127.0.0.1:0")
	ack := exchangeMLLP(t, p, []byte(msg))[0]
	if len(ack) > 64<<10 || !bytes.Contains(ack, []byte("\rMSA|AA|MSG0401\r")) {
		t.Fatalf("the acknowledgement is %d bytes, want AA under 64 KiB: %.300q", len(ack), ack)
	}
	if got := bytes.Count(ack, []byte("\rERR||PID^1^5^")); got != 100 {
		t.Errorf("the acknowledgement has %d ERR segments at PID-5, want 100", got)
	}
	if last := fmt.Sprintf("\rERR|||102^Data type error^HL70357|W||||%d more errors and warnings, not listed: this acknowledgement lists the first 100\r", names-100); !bytes.HasSuffix(ack, []byte(last)) {
		t.Errorf("the acknowledgement ends %q, want %q", ack[max(0, len(ack)-200):], last)
	}
}

// A file that cannot be read stops an import before anything is written,
// whichever file it is: no record of the files before it is loaded, and
// no database is made in a directory that held none.
func TestImportMissingFileWritesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	const pds = "../../mappers/pds/testdata/sandbox-mocks/Patient.json"
	missing := filepath.Join(t.TempDir(), "Patient-typo.json")
	err := run(t.Context(), []string{"import", "--data", dir, "--format", "pds", pds, missing}, env(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), missing) || exitCode(err, io.Discard) != 1 {
		t.Errorf("import of a file that does not exist: %v, want exit 1 naming it", err)
	}
	if _, err := os.Stat(filepath.Join(dir, sqlite.FileName)); err == nil {
		t.Errorf("the refused import made a database in %s", dir)
	}
}

// exportTestServer starts a server serving $export-gp on a new SQLite
// store, each of wrap around it, and returns it, the store and a function
// sending it a request, which fails the test unless it is answered want.
func exportTestServer(t *testing.T, wrap ...func(http.Handler) http.Handler) (*httptest.Server, *sqlite.Store, func(method, path, body string, want int)) {
	t.Helper()
	st, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Its base is known, as serve's on an address of its own is: an
	// absolute reference under it names a record held here.
	srv := httptest.NewUnstartedServer(nil)
	var h http.Handler = server.New(server.Config{Store: st, SoftwareVersion: "test", BaseURL: "http://" + srv.Listener.Addr().String() + "/fhir",
		Operations: (&importop.Importer{}).Operations()})
	for _, w := range wrap {
		h = w(h)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		st.Close()
	})
	send := func(method, path, body string, want int) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+"/fhir/"+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/fhir+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d", method, path, resp.StatusCode, want)
		}
	}
	return srv, st, send
}

// TestExportSinceDeletedPatient exports the records changed since a date
// when one of them refers to a Patient since deleted: the other patients'
// records are exported, and the deleted patient, who has none to give a
// GP system, is left out, where the whole export stopped.
func TestExportSinceDeletedPatient(t *testing.T) {
	srv, _, send := exportTestServer(t)
	for _, id := range []string{"kept", "gone"} {
		send("PUT", "Patient/"+id, `{"resourceType":"Patient","id":"`+id+`"}`, 201)
		send("PUT", "Goal/goal-"+id, `{"resourceType":"Goal","id":"goal-`+id+`","lifecycleStatus":"active","description":{"text":"walk"},"subject":{"reference":"Patient/`+id+`"}}`, 201)
	}
	send("DELETE", "Patient/gone", "", 204)
	var out bytes.Buffer
	cfg, err := parseExportConfig([]string{"--url", srv.URL + "/fhir", "--format", "bundle", "--since", "2000-01-01"}, func(string) string { return "" }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if err := exportRecords(t.Context(), cfg, engines(), &out, io.Discard); err != nil {
		t.Fatalf("export --since: %v", err)
	}
	if s := out.String(); !strings.Contains(s, `"`+srv.URL+`/fhir/Goal/goal-kept"`) || strings.Contains(s, "goal-gone") {
		t.Errorf("export --since: %s", s)
	}
}

// TestImportPDSAskedLocal imports with --nhs-number the PDS answer to a
// retrieve of another NHS number, which it superseded: the record of the
// number asked for is made inactive, replaced by the one answered. The
// flag is refused with another format or with several files.
func TestImportPDSAskedLocal(t *testing.T) {
	dir := t.TempDir()
	carefhir := func(args ...string) (string, error) {
		var out strings.Builder
		err := run(t.Context(), args, env(nil), &out, io.Discard)
		return out.String(), err
	}
	const pds = "../../mappers/pds/testdata/sandbox-mocks/Patient.json"
	out, err := carefhir("import", "--data", dir, "--format", "pds", "--nhs-number", "9000000017", pds)
	if err != nil || !strings.Contains(out, "superseded") || !strings.Contains(out, `"name":"created","valueInteger":3`) {
		t.Fatalf("import --nhs-number: %v\n%s", err, out)
	}
	if _, err := carefhir("import", "--data", dir, "--format", "csv", "--mapping", "emis-patient-list", "--nhs-number", "9000000017", pds); err == nil {
		t.Error("--nhs-number with --format csv: no error")
	}
	if _, err := carefhir("import", "--data", dir, "--format", "pds", "--nhs-number", "9000000017", pds, pds); err == nil {
		t.Error("--nhs-number with two files: no error")
	}
}

// TestExportFullURLs exports a local store's record: each entry's fullUrl
// is absolute, under --base-url (by default the base serve answers with
// its default --addr), so that the record's relative references resolve
// against it, whatever the path of that base. --base-url names the base of
// a local store only: a server's export is under its own.
func TestExportFullURLs(t *testing.T) {
	dir := t.TempDir()
	carefhir := func(args ...string) (string, error) {
		var out strings.Builder
		err := run(t.Context(), args, env(nil), &out, io.Discard)
		return out.String(), err
	}
	if out, err := carefhir("import", "--data", dir, "--format", "pds", "../../mappers/pds/testdata/sandbox-mocks/Patient.json"); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	for _, tt := range []struct {
		args []string
		base string
	}{
		{nil, "http://127.0.0.1:8080/fhir"},
		{[]string{"--base-url", "https://care.example.nhs.uk/leeds/r4"}, "https://care.example.nhs.uk/leeds/r4"},
	} {
		out, err := carefhir(append([]string{"export", "--data", dir, "--since", "2000-01-01"}, tt.args...)...)
		var b struct {
			Entry []struct {
				FullURL  string
				Resource struct{ ResourceType, ID string }
			}
		}
		if err != nil || json.Unmarshal([]byte(out), &b) != nil || len(b.Entry) != 1 {
			t.Fatalf("export %v: %v %s", tt.args, err, out)
		}
		e := b.Entry[0]
		if want := tt.base + "/" + e.Resource.ResourceType + "/" + e.Resource.ID; e.FullURL != want {
			t.Errorf("export %v: fullUrl %s, want %s", tt.args, e.FullURL, want)
		}
	}
	_, err := carefhir("export", "--url", "http://127.0.0.1:1/fhir", "--base-url", "https://care.example.nhs.uk/fhir", "--patient", "1")
	if err == nil || !strings.Contains(err.Error(), "--base-url") || strings.Contains(err.Error(), "two stores") || exitCode(err, io.Discard) != 2 {
		t.Errorf("export --url with --base-url: %v, want a usage error naming --base-url, which names no store", err)
	}
	// A --url from the environment is named by its variable: the command
	// line names none.
	err = run(t.Context(), []string{"export", "--base-url", "https://care.example.nhs.uk/fhir", "--patient", "1"},
		env(map[string]string{"CAREFHIR_URL": "http://127.0.0.1:1/fhir"}), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--base-url and CAREFHIR_URL, which sets --url,") || exitCode(err, io.Discard) != 2 {
		t.Errorf("export --base-url with CAREFHIR_URL: %v, want a usage error naming both", err)
	}
}

// TestExportBookingNeedsProviderAndOrganization exports an Appointment as
// a GP Connect booking without the provider or the booking organisation
// it needs: a usage error naming the flag, before any store is opened.
func TestExportBookingNeedsProviderAndOrganization(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--organization", "A82038"}, "--provider"},
		{[]string{"--provider", "https://provider.example/fhir"}, "--organization"},
	} {
		args := append([]string{"export", "--data", t.TempDir(), "--format", "gpconnect-appointment", "--appointment", "1"}, tt.args...)
		err := run(t.Context(), args, env(nil), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) || exitCode(err, io.Discard) != 2 {
			t.Errorf("carefhir %s: %v, want a usage error naming %s", strings.Join(args, " "), err, tt.want)
		}
	}
}

// TestExportSinceSharedAppointment exports the records of two patients who
// share an Appointment: it is in the Bundle once, as R4 wants each fullUrl
// of a Bundle once (bdl-7), though it is in both patients' records.
func TestExportSinceSharedAppointment(t *testing.T) {
	srv, _, send := exportTestServer(t)
	send("PUT", "Patient/ann", `{"resourceType":"Patient","id":"ann"}`, 201)
	send("PUT", "Patient/bob", `{"resourceType":"Patient","id":"bob"}`, 201)
	send("PUT", "Appointment/group", `{"resourceType":"Appointment","id":"group","status":"booked",
		"participant":[{"actor":{"reference":"Patient/ann"},"status":"accepted"},{"actor":{"reference":"Patient/bob"},"status":"accepted"}]}`, 201)
	var out bytes.Buffer
	err := run(t.Context(), []string{"export", "--url", srv.URL + "/fhir", "--since", "2000-01-01"}, env(nil), &out, io.Discard)
	if err != nil {
		t.Fatalf("export --since: %v", err)
	}
	var b struct{ Entry []struct{ FullURL string } }
	if err := json.Unmarshal(out.Bytes(), &b); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range b.Entry {
		seen[e.FullURL]++
	}
	if len(b.Entry) != 3 || seen[srv.URL+"/fhir/Appointment/group"] != 1 {
		t.Errorf("export --since: %d entries %v; want the two Patients and the Appointment once", len(b.Entry), seen)
	}
}

// TestExportSinceAbsoluteReference exports the records changed since a
// date, one of which names its patient by an absolute reference under the
// server's base: that patient's record is exported, though the Patient
// itself is older, where only relative references were followed.
func TestExportSinceAbsoluteReference(t *testing.T) {
	srv, st, send := exportTestServer(t)
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := st.Put(t.Context(), &store.Write{Type: "Patient", ID: "old", LastUpdated: old,
		JSON: []byte(`{"resourceType":"Patient","id":"old","meta":{"versionId":"1","lastUpdated":"2020-01-01T00:00:00Z"}}`)}); err != nil {
		t.Fatal(err)
	}
	send("PUT", "Goal/walk", `{"resourceType":"Goal","id":"walk","lifecycleStatus":"active","description":{"text":"walk"},
		"subject":{"reference":"`+srv.URL+`/fhir/Patient/old"}}`, 201)
	var out bytes.Buffer
	err := run(t.Context(), []string{"export", "--url", srv.URL + "/fhir", "--since", "2021-01-01"}, env(nil), &out, io.Discard)
	if err != nil {
		t.Fatalf("export --since: %v", err)
	}
	for _, want := range []string{`"` + srv.URL + `/fhir/Patient/old"`, `"` + srv.URL + `/fhir/Goal/walk"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("export --since lacks the entry %s: %s", want, out.String())
		}
	}
}

// TestExportSinceStreams exports the records of two patients: the first
// one's entries are written before the second one's record is asked for,
// not held until the Bundle is whole, and the output is the Bundle as
// encoding/json writes it, whole or with no entry.
func TestExportSinceStreams(t *testing.T) {
	var out lockedBuffer
	var before string // the output when bob's record was asked for
	srv, _, send := exportTestServer(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/fhir/Patient/bob/$export-gp" {
				before = out.String()
			}
			h.ServeHTTP(w, r)
		})
	})
	send("PUT", "Patient/ann", `{"resourceType":"Patient","id":"ann","name":[{"text":"Ann <Smith> & co"}]}`, 201)
	send("PUT", "Patient/bob", `{"resourceType":"Patient","id":"bob"}`, 201)
	err := run(t.Context(), []string{"export", "--url", srv.URL + "/fhir", "--since", "2000-01-01"}, env(nil), &out, io.Discard)
	if err != nil {
		t.Fatalf("export --since: %v", err)
	}
	if !strings.Contains(before, `"`+srv.URL+`/fhir/Patient/ann"`) {
		t.Errorf("output when bob's record was asked for: %q, want ann's entry in it", before)
	}
	var b struct {
		ResourceType string            `json:"resourceType"`
		Type         string            `json:"type"`
		Entry        []json.RawMessage `json:"entry,omitempty"`
	}
	if err := json.Unmarshal([]byte(out.String()), &b); err != nil || len(b.Entry) != 2 {
		t.Fatalf("export --since: %v, %d entries: %s", err, len(b.Entry), out.String())
	}
	var want bytes.Buffer
	if err := json.NewEncoder(&want).Encode(b); err != nil {
		t.Fatal(err)
	}
	if out.String() != want.String() {
		t.Errorf("export --since wrote\n%s\nwant\n%s", out.String(), want.String())
	}
	var none strings.Builder
	if err := run(t.Context(), []string{"export", "--url", srv.URL + "/fhir", "--since", "2999-01-01"}, env(nil), &none, io.Discard); err != nil {
		t.Fatalf("export --since, nothing changed: %v", err)
	}
	if want := `{"resourceType":"Bundle","type":"collection"}` + "\n"; none.String() != want {
		t.Errorf("export --since, nothing changed: %q, want %q", none.String(), want)
	}
}

// silentServer listens and accepts connections, reads what is sent and
// never answers; it returns its FHIR base.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { conn.Close() })
			go io.Copy(io.Discard, conn)
		}
	}()
	return "http://" + ln.Addr().String() + "/fhir"
}

// TestTransferGivesUpOnSilentServer checks that export and import with
// --url stop with an error saying the server did not answer when a server
// accepts the connection and never answers, instead of waiting for ever.
func TestTransferGivesUpOnSilentServer(t *testing.T) {
	base := silentServer(t)
	ndjson := filepath.Join(t.TempDir(), "Patient.ndjson")
	if err := os.WriteFile(ndjson, []byte(`{"resourceType":"Patient","id":"p1"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"export patient": {"export", "--url", base, "--patient", "p1"},
		"export since":   {"export", "--url", base, "--since", "2024-01-01"},
		"import ndjson":  {"import", "--url", base, "--format", "ndjson", ndjson},
		"import pds":     {"import", "--url", base, "--format", "pds", ndjson},
	} {
		t.Run(name, func(t *testing.T) {
			// The guard only keeps a failing test from hanging.
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			args = slices.Insert(args, 1, "--response-timeout", "200ms")
			err := run(ctx, args, env(nil), io.Discard, io.Discard)
			if ctx.Err() != nil {
				t.Fatalf("still waiting for the silent server: %v", err)
			}
			if err == nil || !strings.Contains(err.Error(), "awaiting response headers") {
				t.Fatalf("error %v, want one saying the server did not answer", err)
			}
		})
	}
}

// An NDJSON import into a local store that is interrupted (SIGINT or
// SIGTERM ends its context) while a batch is being written lets that batch
// finish, sends no other, and says what it loaded and where it stopped,
// where the batch under way and every later one were refused line by line
// with 500s, the whole file read to the end.
func TestImportNDJSONInterrupted(t *testing.T) {
	st, ctx, client := interruptedImport(t)
	var lines strings.Builder
	for i := 1; i <= 6; i++ {
		fmt.Fprintf(&lines, `{"resourceType":"Patient","id":"p%d"}`+"\n", i)
	}
	file := filepath.Join(t.TempDir(), "Patient.ndjson")
	if err := os.WriteFile(file, []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	err := importNDJSON(ctx, client, "http://local/fhir", &importConfig{Batch: 2, files: []string{file}}, &out)
	if err == nil || !strings.Contains(err.Error(), "Patient.ndjson:3") || !errors.Is(err, context.Canceled) {
		t.Errorf("import: %v, want an error saying it stopped before Patient.ndjson:3", err)
	}
	if out.String() != "loaded 2 resources\n" {
		t.Errorf("import wrote %q, want the two of the first batch loaded and nothing refused", out.String())
	}
	for i, want := range []bool{true, true, false, false, false, false} {
		if _, err := st.Read(t.Context(), "Patient", fmt.Sprintf("p%d", i+1)); (err == nil) != want {
			t.Errorf("Patient/p%d: %v, want stored %v", i+1, err, want)
		}
	}
}

// interruptedImport returns a local store, and a context and the client of
// a server in process on it, as import builds them, whose context ends as
// the server begins its first answer: an interruption while it works.
func interruptedImport(t *testing.T) (*sqlite.Store, context.Context, *http.Client) {
	t.Helper()
	st, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := server.New(server.Config{Store: st, BaseURL: "http://local/fhir", Operations: (&importop.Importer{}).Operations()})
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	return st, ctx, &http.Client{Transport: streamTransport{http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancel()
		h.ServeHTTP(w, r)
	})}}
}

// An import of a GP system's file into a local store that is interrupted
// fails saying so, as one through a server does, where it said the
// request had overrun its deadline.
func TestImportInterrupted(t *testing.T) {
	st, ctx, client := interruptedImport(t)
	cfg := &importConfig{Format: "pds"}
	err := importFile(ctx, client, "http://local/fhir/$import?format=pds", cfg, "../../mappers/pds/testdata/sandbox-mocks/Patient.json", io.Discard, io.Discard)
	if !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "deadline") {
		t.Errorf("import: %v, want an error saying it was interrupted", err)
	}
	page, err := st.History(t.Context(), store.HistoryQuery{Type: "Patient", Count: 1})
	if err != nil || page.Total != 0 {
		t.Errorf("Patients stored: %+v, %v; want none", page, err)
	}
}

// An NDJSON file that begins with a UTF-8 byte order mark, as some
// Windows tools write one, loads whole: the mark is no part of the first
// resource (RFC 8259 §8.1 lets a JSON reader ignore it), which was
// refused as not a FHIR resource.
func TestImportNDJSONByteOrderMark(t *testing.T) {
	file := filepath.Join(t.TempDir(), "Patient.ndjson")
	body := "\xef\xbb\xbf" + `{"resourceType":"Patient","id":"b1"}` + "\r\n" + `{"resourceType":"Patient","id":"b2"}` + "\r\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(t, "import", "--data", t.TempDir(), "--format", "ndjson", file)
	if err != nil || out != "loaded 2 resources\n" {
		t.Errorf("import: %q, %v; want both resources loaded", out, err)
	}
}

// TestExportSinceRefusedPatient exports as CSV the records changed since a
// date when one patient's cannot be (no NHS number: 422): the other
// patients' rows are written under the one header, the patient left out is
// named on stderr, and the command ends in an error naming them, where the
// export stopped at that patient.
func TestExportSinceRefusedPatient(t *testing.T) {
	srv, _, send := exportTestServer(t)
	send("PUT", "Patient/a-none", `{"resourceType":"Patient","id":"a-none","name":[{"family":"Nonumber"}]}`, 201)
	send("PUT", "Patient/b-nhs", `{"resourceType":"Patient","id":"b-nhs","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9990000018"}],"name":[{"family":"Numbered"}]}`, 201)
	send("PUT", "Observation/b-weight", `{"resourceType":"Observation","id":"b-weight","status":"final","code":{"coding":[{"system":"http://snomed.info/sct","code":"27113001"}]},"subject":{"reference":"Patient/b-nhs"},"effectiveDateTime":"2024-01-02","valueQuantity":{"value":70,"unit":"kg"}}`, 201)
	var out, stderr strings.Builder
	err := run(t.Context(), []string{"export", "--url", srv.URL + "/fhir", "--format", "csv", "--since", "2000-01-01"}, env(nil), &out, &stderr)
	if err == nil || !strings.Contains(err.Error(), "Patient/a-none") {
		t.Errorf("export --since with a patient refused: error %v, want one naming Patient/a-none", err)
	}
	if !strings.Contains(stderr.String(), "Patient/a-none") || strings.Contains(stderr.String(), "b-nhs") {
		t.Errorf("stderr %q, want Patient/a-none named as left out, and only it", stderr.String())
	}
	if !strings.HasPrefix(out.String(), "NHS Number,") || !strings.Contains(out.String(), "9990000018,02/01/2024,27113001,70,kg") {
		t.Errorf("export --since as CSV wrote %q, want the header and the rows of Patient/b-nhs", out.String())
	}
}
