//go:build unix

package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"carefhir/fhir/search"
	"carefhir/profiles"
	"carefhir/server"
	"carefhir/store"
	"carefhir/store/mongo"
	"carefhir/store/mongo/ferrettest"
	"carefhir/store/sqlite"
)

// The benchmarks measure create and read by id through the whole HTTP stack
// (a real listener and a keep-alive net/http client) and, in the same run,
// the same writes and reads done directly on the engine: the floor the API
// is compared with. Each runs with 1 client and with 8.
//
//	go test ./server/ -run '^$' -bench 'Create|Read' -benchtime 3s
//
// MongoDB runs on an embedded FerretDB, which evaluates every query by
// decoding every document: its figures say nothing about a real MongoDB
// deployment and only show that the path works.

// benchEngines opens each storage engine for a benchmark. readSet is the
// number of Patients seeded for the read benchmarks.
var benchEngines = []struct {
	name    string
	readSet int
	open    func(b *testing.B) store.Store
}{
	{"sqlite", 10_000, func(b *testing.B) store.Store {
		st, err := sqlite.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		return st
	}},
	{"mongo", 200, func(b *testing.B) store.Store {
		st, err := mongo.Open(context.Background(), ferrettest.Start(b))
		if err != nil {
			b.Fatal(err)
		}
		return st
	}},
}

// benchClients are the client counts every benchmark runs with.
var benchClients = []int{1, 8}

// benchServer serves the API over st on a real listener, logging every
// request as the binary does (JSON lines, here to io.Discard) so that the
// cost of logging is measured.
func benchServer(b *testing.B, st store.Store, opts ...func(*server.Config)) (base string, client *http.Client) {
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	cfg := server.Config{Store: st, Logger: log, SoftwareVersion: "bench"}
	for _, o := range opts {
		o(&cfg)
	}
	srv := httptest.NewServer(server.New(cfg))
	b.Cleanup(srv.Close)
	// The default transport keeps only 2 idle connections per host: 8
	// clients would open a new connection for most requests.
	// Without gzip, which the benchmark clients do not ask for: the
	// figures are the server's own work, comparable from run to run.
	tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	return srv.URL + "/fhir", &http.Client{Transport: tr}
}

// benchPatientJSON returns a UK Core-shaped Patient of about 1.5 KB with
// NHS number nhs, as a client would POST it (no id, no versionId).
func benchPatientJSON(nhs string) []byte {
	return []byte(`{"resourceType":"Patient",` +
		`"meta":{"profile":["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"]},` +
		`"extension":[{"url":"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory","valueCodeableConcept":{"coding":[{"system":"https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland","code":"A","display":"British, Mixed British"}]}}],` +
		`"identifier":[{"extension":[{"url":"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus","valueCodeableConcept":{"coding":[{"system":"https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland","code":"01","display":"Number present and verified"}]}}],` +
		`"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhs + `"}],` +
		`"active":true,"name":[{"use":"official","family":"Okafor","given":["Grace","Adaeze"],"prefix":["Ms"]}],` +
		`"telecom":[{"system":"phone","value":"0113 496 0000","use":"home"},{"system":"email","value":"grace.okafor@example.org","use":"home"}],` +
		`"gender":"female","birthDate":"1961-02-14",` +
		`"address":[{"use":"home","type":"physical","line":["4 Sandmoor Drive"],"city":"Leeds","postalCode":"LS17 7DF","country":"GB"}],` +
		`"generalPractitioner":[{"reference":"Organization/B82005","display":"Moorside Medical Practice"}],` +
		`"communication":[{"language":{"coding":[{"system":"https://fhir.hl7.org.uk/CodeSystem/UKCore-HumanLanguage","code":"en","display":"English"}]},"preferred":true}]}`)
}

// nhsNumber returns a distinct valid NHS number (Modulus 11 check digit)
// for each n, in the 9 test range.
func nhsNumber(n int64) string {
	for base := 11 * (n % 9_000_000); ; base++ {
		digits := fmt.Sprintf("9%08d", base%100_000_000)
		sum := 0
		for i, d := range digits {
			sum += int(d-'0') * (10 - i)
		}
		switch check := 11 - sum%11; check {
		case 10:
		case 11:
			return digits + "0"
		default:
			return digits + fmt.Sprint(check)
		}
	}
}

// send makes one request and checks its status, reading the body to the end
// so the connection is reused.
func send(client *http.Client, req *http.Request, want int) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d", req.Method, req.URL.Path, resp.StatusCode, want)
	}
	return nil
}

// runClients runs op b.N times over clients concurrent goroutines, each
// with its own sequence number i, and reports the rate as unit/s and the CPU
// time the process spent per op (user and system, all threads, the HTTP
// client included). On a shared machine the rate follows the load of other
// processes; CPU time per op much less so.
func runClients(b *testing.B, clients int, unit string, op func(i int64) error) {
	var n atomic.Int64
	cpu := cpuTime(b)
	b.ResetTimer()
	if clients == 1 {
		for b.Loop() {
			if err := op(n.Add(1)); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.SetParallelism(max(1, (clients+runtime.GOMAXPROCS(0)-1)/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := op(n.Add(1)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit+"/s")
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N)/1e3, "cpu-µs/op")
}

// cpuTime returns the CPU time the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCreate creates Patients through POST /fhir/Patient (http, and
// http-validated checking each against R4 and UK Core as carefhir serve
// does) and by store.Put of the bytes and index that the server stores
// (engine).
func BenchmarkCreate(b *testing.B) {
	benchCreateOf(b, "", "Patient", func(i int64) []byte { return benchPatientJSON(nhsNumber(i)) })
}

// BenchmarkCreateObservation is BenchmarkCreate for blood pressure
// Observations (the R4 vital signs profile).
//
//	go test ./server/ -run '^$' -bench 'CreateObservation/sqlite' -benchtime 2s
func BenchmarkCreateObservation(b *testing.B) {
	benchCreateOf(b, "observation/", "Observation", benchObservationJSON)
}

func benchCreateOf(b *testing.B, prefix, typ string, body func(i int64) []byte) {
	for _, e := range benchEngines {
		for _, clients := range benchClients {
			b.Run(fmt.Sprintf("%s%s/http/clients=%d", prefix, e.name, clients), func(b *testing.B) {
				base, client := benchServer(b, e.open(b))
				benchCreates(b, base, client, clients, typ, body)
			})
			b.Run(fmt.Sprintf("%s%s/http-validated/clients=%d", prefix, e.name, clients), func(b *testing.B) {
				v, err := profiles.New(profiles.Options{})
				if err != nil {
					b.Fatal(err)
				}
				base, client := benchServer(b, e.open(b), func(cfg *server.Config) { cfg.Validator, cfg.ValidateWrites = v, true })
				benchCreates(b, base, client, clients, typ, body)
			})
			b.Run(fmt.Sprintf("%s%s/engine/clients=%d", prefix, e.name, clients), func(b *testing.B) {
				st := e.open(b)
				b.Cleanup(func() { st.Close() })
				stored, index := storedResource(b, typ, body(0))
				ctx := b.Context()
				runClients(b, clients, "creates", func(i int64) error {
					return st.Put(ctx, &store.Write{Type: typ, ID: benchID(i), LastUpdated: time.Now().UTC().Truncate(time.Millisecond),
						JSON: stored, Index: index})
				})
			})
		}
	}
}

// benchCreates posts resources of typ from clients concurrent clients,
// after one create that is not measured: what the server sets up on its
// first write (the validator's compiled definitions, say) is not the cost
// of a create.
func benchCreates(b *testing.B, base string, client *http.Client, clients int, typ string, body func(i int64) []byte) {
	create := func(i int64) error {
		req, err := http.NewRequest(http.MethodPost, base+"/"+typ, bytes.NewReader(body(i)))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/fhir+json")
		return send(client, req, http.StatusCreated)
	}
	if err := create(0); err != nil {
		b.Fatal(err)
	}
	runClients(b, clients, "creates", create)
}

// benchObservationJSON returns a blood pressure Observation of about
// 1.2 KB for Patient i, as a client would POST it.
func benchObservationJSON(i int64) []byte {
	return []byte(`{"resourceType":"Observation",` +
		`"meta":{"profile":["http://hl7.org/fhir/StructureDefinition/bp"]},` +
		`"status":"final",` +
		`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"Vital Signs"}]}],` +
		`"code":{"coding":[{"system":"http://loinc.org","code":"85354-9","display":"Blood pressure panel with all children optional"},` +
		`{"system":"http://snomed.info/sct","code":"75367002","display":"Blood pressure"}]},` +
		`"subject":{"reference":"Patient/` + benchID(i) + `"},` +
		`"effectiveDateTime":"2026-03-` + fmt.Sprintf("%02d", 1+i%28) + `T09:30:00Z",` +
		`"performer":[{"reference":"Organization/B82005","display":"Moorside Medical Practice"}],` +
		`"component":[` +
		`{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6","display":"Systolic blood pressure"}]},` +
		`"valueQuantity":{"value":` + fmt.Sprint(110+i%40) + `,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},` +
		`{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4","display":"Diastolic blood pressure"}]},` +
		`"valueQuantity":{"value":` + fmt.Sprint(70+i%20) + `,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`)
}

// benchID returns an id of the length of the UUIDs the server assigns.
func benchID(i int64) string { return fmt.Sprintf("%036d", i) }

// storedPatient returns what the server stores for a created Patient: its
// bytes, as read back from a server, and its search index, extracted as the
// server extracts it.
func storedPatient(b *testing.B) ([]byte, store.Index) {
	return storedResource(b, "Patient", benchPatientJSON(nhsNumber(1)))
}

// storedResource returns what the server stores for body, created as a
// resource of typ: its bytes, as a server answers them, and its search
// index, extracted as the server extracts it.
func storedResource(b *testing.B, typ string, body []byte) ([]byte, store.Index) {
	st, err := sqlite.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	base, client := benchServer(b, st)
	resp, err := client.Post(base+"/"+typ, "application/fhir+json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	stored, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusCreated {
		b.Fatalf("create: status %d, %v", resp.StatusCode, err)
	}
	ix, err := server.NewIndexer(base)
	if err != nil {
		b.Fatal(err)
	}
	index, err := ix.IndexJSON(typ, stored)
	if err != nil {
		b.Fatal(err)
	}
	return stored, index
}

// BenchmarkRead reads seeded Patients through GET /fhir/Patient/[id] (http)
// and by store.Read (engine).
func BenchmarkRead(b *testing.B) {
	for _, e := range benchEngines {
		for _, clients := range benchClients {
			b.Run(fmt.Sprintf("%s/http/clients=%d", e.name, clients), func(b *testing.B) {
				st := seedPatients(b, e.open(b), e.readSet)
				base, client := benchServer(b, st)
				runClients(b, clients, "reads", func(i int64) error {
					req, err := http.NewRequest(http.MethodGet, base+"/Patient/"+benchID(i%int64(e.readSet)), nil)
					if err != nil {
						return err
					}
					return send(client, req, http.StatusOK)
				})
			})
			b.Run(fmt.Sprintf("%s/engine/clients=%d", e.name, clients), func(b *testing.B) {
				st := seedPatients(b, e.open(b), e.readSet)
				b.Cleanup(func() { st.Close() })
				ctx := b.Context()
				runClients(b, clients, "reads", func(i int64) error {
					_, err := st.Read(ctx, "Patient", benchID(i%int64(e.readSet)))
					return err
				})
			})
		}
	}
}

// seedPatients writes n Patients with ids benchID(0) to benchID(n-1) in one
// unit of work, as the server would have stored them.
func seedPatients(b *testing.B, st store.Store, n int) store.Store {
	body, index := storedPatient(b)
	assigned := []byte(`"id":"` + string(idOf(body)) + `"`)
	err := st.Transact(b.Context(), func(tx store.Tx) error {
		now := time.Now().UTC().Truncate(time.Millisecond)
		for i := range n {
			id := benchID(int64(i))
			// The stored body carries the id the server assigned; give
			// each seeded Patient its own, of the same length.
			json := bytes.Replace(body, assigned, []byte(`"id":"`+id+`"`), 1)
			if err := tx.Put(b.Context(), &store.Write{Type: "Patient", ID: id, LastUpdated: now, JSON: json, Index: index}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// idOf returns the id in a stored body, which the server writes right
// after resourceType.
func idOf(body []byte) []byte {
	_, rest, _ := bytes.Cut(body, []byte(`"id":"`))
	id, _, _ := bytes.Cut(rest, []byte(`"`))
	return id
}

// BenchmarkSearch measures two searches through the HTTP stack and on the
// engine: one that finds one Patient by _id, and a page of 20 Patients.
// For searches this cheap, what the API adds (request parsing, the plan,
// the searchset Bundle, logging, the loopback connection) is most of the
// time.
//
//	go test ./server/ -run '^$' -bench Search -benchtime 3s
func BenchmarkSearch(b *testing.B) {
	const patients = 10_000
	for _, s := range []struct {
		name    string
		query   func(i int64) url.Values
		matches int
	}{
		{"id", func(i int64) url.Values { return url.Values{"_id": {benchID(i % patients)}} }, 1},
		{"page", func(i int64) url.Values { return url.Values{"_id:not": {benchID(i % patients)}} }, 20},
	} {
		b.Run(s.name+"/sqlite/http", func(b *testing.B) {
			st := seedPatients(b, sqliteBenchStore(b), patients)
			base, client := benchServer(b, st)
			runClients(b, 1, "searches", func(i int64) error {
				req, err := http.NewRequest(http.MethodGet, base+"/Patient?"+s.query(i).Encode(), nil)
				if err != nil {
					return err
				}
				return send(client, req, http.StatusOK)
			})
		})
		b.Run(s.name+"/sqlite/engine", func(b *testing.B) {
			st := seedPatients(b, sqliteBenchStore(b), patients)
			b.Cleanup(func() { st.Close() })
			ix, err := server.NewIndexer("http://localhost/fhir")
			if err != nil {
				b.Fatal(err)
			}
			f := st.(store.Finder)
			ctx := b.Context()
			runClients(b, 1, "searches", func(i int64) error {
				plan, err := ix.Registry().Parse("Patient", s.query(i), search.Options{Now: time.Now()})
				if err != nil {
					return err
				}
				page, err := f.Find(ctx, plan.Query)
				if err == nil && len(page.Matches) != s.matches {
					err = fmt.Errorf("%d matches, want %d", len(page.Matches), s.matches)
				}
				return err
			})
		})
	}
}

func sqliteBenchStore(b *testing.B) store.Store {
	st, err := sqlite.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkCreateAgainstFloor measures validated creates through HTTP (as
// http-validated) and the engine floor (as engine) in one run, alternating
// blocks of each, so that both see the same load of a shared machine and
// their ratio holds still where their rates do not. An op is one block of
// createBlock creates of each kind; it reports both rates and http as a
// percentage of the floor.
//
//	go test ./server/ -run '^$' -bench CreateAgainstFloor -benchtime 100x
func BenchmarkCreateAgainstFloor(b *testing.B) {
	for _, k := range []struct {
		typ  string
		body func(i int64) []byte
	}{
		{"Patient", func(i int64) []byte { return benchPatientJSON(nhsNumber(i)) }},
		{"Observation", benchObservationJSON},
	} {
		for _, clients := range benchClients {
			b.Run(fmt.Sprintf("%s/clients=%d", k.typ, clients), func(b *testing.B) {
				v, err := profiles.New(profiles.Options{})
				if err != nil {
					b.Fatal(err)
				}
				base, client := benchServer(b, sqliteBenchStore(b), func(cfg *server.Config) { cfg.Validator, cfg.ValidateWrites = v, true })
				floor := sqliteBenchStore(b)
				b.Cleanup(func() { floor.Close() })
				stored, index := storedResource(b, k.typ, k.body(0))
				var n atomic.Int64
				httpCreate := func() error {
					i := n.Add(1)
					req, err := http.NewRequest(http.MethodPost, base+"/"+k.typ, bytes.NewReader(k.body(i)))
					if err != nil {
						return err
					}
					req.Header.Set("Content-Type", "application/fhir+json")
					return send(client, req, http.StatusCreated)
				}
				ctx := b.Context()
				engineCreate := func() error {
					return floor.Put(ctx, &store.Write{Type: k.typ, ID: benchID(n.Add(1)), LastUpdated: time.Now().UTC().Truncate(time.Millisecond),
						JSON: stored, Index: index})
				}
				if err := httpCreate(); err != nil { // warm up
					b.Fatal(err)
				}
				var inHTTP, inEngine time.Duration
				for b.Loop() {
					inHTTP += createBlock(b, clients, httpCreate)
					inEngine += createBlock(b, clients, engineCreate)
				}
				ops := float64(b.N * createBlockSize)
				b.ReportMetric(ops/inHTTP.Seconds(), "http-creates/s")
				b.ReportMetric(ops/inEngine.Seconds(), "floor-creates/s")
				b.ReportMetric(100*inEngine.Seconds()/inHTTP.Seconds(), "%-of-floor")
			})
		}
	}
}

// createBlockSize is the number of creates of one block of
// BenchmarkCreateAgainstFloor.
const createBlockSize = 40

// createBlock runs createBlockSize creates over clients goroutines and
// returns how long they took.
func createBlock(b *testing.B, clients int, create func() error) time.Duration {
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := c; i < createBlockSize; i += clients {
				if err := create(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}
