package sqlite_test

import (
	"fmt"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"carefhir/care/synth"
	"carefhir/fhir/search"
	"carefhir/store"
	"carefhir/store/sqlite"
)

// benchPatient returns a UK Core Patient of about 2 KB; n varies its NHS
// number, name, birth date and address, so that the index keys of many
// Patients spread over the index as real ones do.
func benchPatient(id string, n int) []byte {
	nhs := fmt.Sprintf("9%09d", n*7919%1_000_000_000)
	family := benchFamilies[n%len(benchFamilies)]
	given := benchGiven[n/len(benchFamilies)%len(benchGiven)]
	birth := time.Date(1930, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, n*37%(90*365)).Format(time.DateOnly)
	json := fmt.Sprintf(`{"resourceType":"Patient","id":%q,"meta":{"versionId":"1","lastUpdated":"2024-03-01T10:00:00.000Z","profile":["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"]},`+
		`"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":%q,"extension":[{"url":"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus","valueCodeableConcept":{"coding":[{"system":"https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland","code":"01","display":"Number present and verified"}]}}]}],`+
		`"active":true,"name":[{"use":"official","family":%q,"given":[%q,"Anne"],"prefix":["Mrs"]}],`+
		`"telecom":[{"system":"phone","value":"01632 %06d","use":"home"},{"system":"email","value":"%s.%s@example.org","use":"home"}],`+
		`"gender":"female","birthDate":%q,`+
		`"address":[{"use":"home","type":"both","line":["%d Trevelyan Square","Boar Lane"],"city":"Leeds","district":"West Yorkshire","postalCode":"LS%d 6AE","country":"GB"}],`+
		`"maritalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"M","display":"Married"}]},`+
		`"contact":[{"relationship":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0131","code":"N","display":"Next-of-Kin"}]}],"name":{"family":%q,"given":["John"]},"telecom":[{"system":"phone","value":"01632 960123"}]}],`+
		`"communication":[{"language":{"coding":[{"system":"https://fhir.hl7.org.uk/CodeSystem/UKCore-HumanLanguage","code":"en","display":"English"}]},"preferred":true}],`+
		`"generalPractitioner":[{"reference":"Organization/Y%05d","identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"Y%05d"}}],`+
		`"managingOrganization":{"reference":"Organization/Y%05d","display":"Trevelyan Square Surgery, a general practice serving Leeds city centre"},`+
		`"extension":[{"url":"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory","valueCodeableConcept":{"coding":[{"system":"https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland","code":"A","display":"British, Mixed British"}]}}],`+
		`"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">%s %s, born %s, NHS number %s, registered at Trevelyan Square Surgery.</div>"}}`,
		id, nhs, family, given, n%1_000_000, strings.ToLower(given), strings.ToLower(family), birth,
		n%200+1, n%30+1, family, n%50, n%50, n%50, given, family, birth, nhs)
	return []byte(json)
}

var (
	benchFamilies = []string{"Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas", "Johnson",
		"Roberts", "Robinson", "Thompson", "Wright", "Walker", "White", "Edwards", "Hughes", "Green", "Hall", "Okafor", "Patel", "Khan", "Nowak"}
	benchGiven = []string{"Jane", "Grace", "Amelia", "Olivia", "Isla", "Ava", "Mia", "Aisha", "Fatima", "Zofia", "Ruth", "Mary"}
)

// benchTypes are the resource types the benchmarks index: the Patient and
// those of care/synth's records.
var benchTypes = []string{"Appointment", "CarePlan", "CareTeam", "Condition", "Goal", "Observation", "Organization",
	"Patient", "Practitioner", "PractitionerRole", "Questionnaire", "QuestionnaireResponse"}

// benchIndexer is the search indexer of benchTypes, as the server builds it.
var benchIndexer = sync.OnceValues(func() (*search.Indexer, error) {
	reg, err := search.Load(benchTypes)
	if err != nil {
		return nil, err
	}
	return search.NewIndexer(reg, search.FHIRPath, "http://localhost/fhir"), nil
})

// indexed returns the write of body as type typ and id, with the full
// search index the server stores for it.
func indexed(typ, id string, body []byte) (*store.Write, error) {
	ix, err := benchIndexer()
	if err != nil {
		return nil, err
	}
	index, err := ix.IndexJSON(typ, body)
	if err != nil {
		return nil, fmt.Errorf("index %s/%s: %w", typ, id, err)
	}
	return &store.Write{Type: typ, ID: id, LastUpdated: time.Now().UTC().Truncate(time.Millisecond), JSON: body, Index: index}, nil
}

// poolSize is how many distinct Patients the write benchmarks cycle
// through; each write still has its own id.
const poolSize = 1024

// patientPool holds poolSize indexed Patients.
var patientPool = sync.OnceValues(func() ([]*store.Write, error) {
	ws := make([]*store.Write, poolSize)
	for i := range ws {
		var err error
		id := strconv.Itoa(i)
		if ws[i], err = indexed("Patient", id, benchPatient(id, i)); err != nil {
			return nil, err
		}
	}
	return ws, nil
})

// synthPool holds the indexed resources of 500 care/synth patients' records,
// in the order they were generated (about 5,000 resources).
var synthPool = sync.OnceValues(func() ([]*store.Write, error) {
	var ws []*store.Write
	err := synth.Generate(synth.Options{Patients: 500, Seed: 1}, func(typ, id string, body []byte) error {
		w, err := indexed(typ, id, body)
		ws = append(ws, w)
		return err
	})
	return ws, err
})

func mustPool(b *testing.B, pool func() ([]*store.Write, error)) []*store.Write {
	ws, err := pool()
	if err != nil {
		b.Fatal(err)
	}
	return ws
}

// nthWrite returns write n of a benchmark: pool[n%len(pool)], made
// distinct by its id, which is prefix, the round of the pool and the
// pool's id.
func nthWrite(pool []*store.Write, prefix string, n int64) *store.Write {
	w := *pool[n%int64(len(pool))]
	w.ID = prefix + strconv.FormatInt(n/int64(len(pool)), 10) + "-" + w.ID
	w.LastUpdated = time.Now().UTC().Truncate(time.Millisecond)
	return &w
}

// groupCommit are the settings the write benchmarks compare.
var groupCommit = []struct {
	name string
	opts sqlite.Options
}{
	{name: "group", opts: sqlite.Options{}},
	{name: "single", opts: sqlite.Options{MaxBatch: 1}},
}

// BenchmarkPut creates fully indexed ~2 KB Patients from one goroutine.
func BenchmarkPut(b *testing.B) {
	pool := mustPool(b, patientPool)
	for _, gc := range groupCommit {
		b.Run(gc.name, func(b *testing.B) {
			s := mustOpen(b, b.TempDir(), gc.opts)
			defer closeUntimed(b, s)
			ctx := b.Context()
			b.SetBytes(int64(len(pool[0].JSON)))
			b.ResetTimer()
			cpu := cpuTime(b)
			for i := range int64(b.N) {
				if err := s.Put(ctx, nthWrite(pool, "p", i)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N)/1e3, "cpu-µs/create")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
		})
	}
}

// BenchmarkPutParallel creates fully indexed ~2 KB Patients from 8
// goroutines.
func BenchmarkPutParallel(b *testing.B) {
	pool := mustPool(b, patientPool)
	for _, gc := range groupCommit {
		b.Run(gc.name, func(b *testing.B) {
			s := mustOpen(b, b.TempDir(), gc.opts)
			defer closeUntimed(b, s)
			var n atomic.Int64
			ctx := b.Context()
			b.SetParallelism(parallelism(8))
			b.ResetTimer()
			cpu := cpuTime(b)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.Put(ctx, nthWrite(pool, "p", n.Add(1))); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N)/1e3, "cpu-µs/create")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
		})
	}
}

// BenchmarkUpdate replaces fully indexed Patients, each with another's
// content, from one goroutine: every write deletes the old version's
// search rows.
func BenchmarkUpdate(b *testing.B) {
	pool := mustPool(b, patientPool)
	s := mustOpen(b, b.TempDir(), sqlite.Options{})
	defer closeUntimed(b, s)
	ctx := b.Context()
	err := s.Transact(ctx, func(tx store.Tx) error {
		for i := range int64(poolSize) {
			if err := tx.Put(ctx, nthWrite(pool, "p", i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range int64(b.N) {
		w := nthWrite(pool, "p", i%poolSize)
		w.Index = pool[(i+1+i/poolSize)%poolSize].Index
		w.Expected = 1 + i/poolSize
		if err := s.Put(ctx, w); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
}

// transactSize is the number of Puts in one Transact of BenchmarkTransact:
// a 1,000-entry transaction bundle.
const transactSize = 1000

// BenchmarkTransact creates resources in units of work of transactSize
// Puts each: fully indexed Patients, and the mixed resources of care/synth
// records (Patients, Observations, Appointments, Conditions, care plans…).
func BenchmarkTransact(b *testing.B) {
	for _, set := range []struct {
		name string
		pool func() ([]*store.Write, error)
	}{
		{"patients", patientPool},
		{"synth", synthPool},
	} {
		b.Run(set.name, func(b *testing.B) {
			pool := mustPool(b, set.pool)
			s := mustOpen(b, b.TempDir(), sqlite.Options{})
			defer closeUntimed(b, s)
			ctx := b.Context()
			b.ResetTimer()
			cpu := cpuTime(b)
			for done := 0; done < b.N; done += transactSize {
				err := s.Transact(ctx, func(tx store.Tx) error {
					for i := done; i < min(done+transactSize, b.N); i++ {
						if err := tx.Put(ctx, nthWrite(pool, "r", int64(i))); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N)/1e3, "cpu-µs/put")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
		})
	}
}

// parallelism returns the b.SetParallelism that runs about n goroutines.
func parallelism(n int) int {
	return max(1, (n+runtime.GOMAXPROCS(0)-1)/runtime.GOMAXPROCS(0))
}

const readSet = 10_000

// openReadSet opens a store holding readSet Patients, all checkpointed into
// the database file.
func openReadSet(b *testing.B) *sqlite.Store {
	pool := mustPool(b, patientPool)
	dir := b.TempDir()
	s := mustOpen(b, dir, sqlite.Options{})
	err := s.Transact(b.Context(), func(tx store.Tx) error {
		for i := range int64(readSet) {
			if err := tx.Put(b.Context(), nthWrite(pool, "p", i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	return mustOpen(b, dir, sqlite.Options{})
}

// closeUntimed closes s with the benchmark timer stopped: closing
// checkpoints what the last writes left in the WAL.
func closeUntimed(b *testing.B, s *sqlite.Store) {
	b.StopTimer()
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
}

// readID returns the id of Patient i of the read set.
func readID(pool []*store.Write, i int64) string {
	return nthWrite(pool, "p", i%readSet).ID
}

// BenchmarkRead reads Patients by id from one goroutine.
func BenchmarkRead(b *testing.B) {
	pool := mustPool(b, patientPool)
	s := openReadSet(b)
	defer closeUntimed(b, s)
	ctx := b.Context()
	b.ResetTimer()
	for i := int64(0); b.Loop(); i++ {
		if _, err := s.Read(ctx, "Patient", readID(pool, i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}

// BenchmarkReadParallel reads Patients by id from 8 goroutines.
func BenchmarkReadParallel(b *testing.B) {
	pool := mustPool(b, patientPool)
	s := openReadSet(b)
	defer closeUntimed(b, s)
	ctx := b.Context()
	var n atomic.Int64
	b.SetParallelism(parallelism(8))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Read(ctx, "Patient", readID(pool, n.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}

// BenchmarkSearch runs typical searches, a page of 20 each, on the records
// of 2,000 care/synth patients (about 20,000 resources).
func BenchmarkSearch(b *testing.B) {
	ix, err := benchIndexer()
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	s := mustOpen(b, dir, sqlite.Options{})
	ctx := b.Context()
	var batch []*store.Write
	flush := func() error {
		err := s.Transact(ctx, func(tx store.Tx) error {
			for _, w := range batch {
				if err := tx.Put(ctx, w); err != nil {
					return err
				}
			}
			return nil
		})
		batch = batch[:0]
		return err
	}
	err = synth.Generate(synth.Options{Patients: 2000, Seed: 1, PracticeSize: 1000}, func(typ, id string, body []byte) error {
		w, err := indexed(typ, id, body)
		if err != nil {
			return err
		}
		if batch = append(batch, w); len(batch) == transactSize {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err == nil {
		err = s.Close()
	}
	if err != nil {
		b.Fatal(err)
	}
	// Every search runs its query: the pages of repeated searches are not
	// kept, as they would be by default.
	s = mustOpen(b, dir, sqlite.Options{SearchPages: -1})
	defer closeUntimed(b, s)
	tests := []struct{ name, typ, query string }{
		{"name prefix", "Patient", "name=smi"},
		{"family exact sorted", "Patient", "family:exact=Smith&_sort=birthdate"},
		{"identifier", "Patient", "identifier=https://fhir.nhs.uk/Id/nhs-number|9993095109"},
		{"birthdate range", "Patient", "birthdate=ge1960-01-01&birthdate=lt1961-01-01"},
		{"gp and gender", "Patient", "general-practitioner=Organization/org-0001&gender=female&_total=accurate"},
		{"patient's observations by date", "Observation", "subject=Patient/pat-000001&_sort=-date"},
		// An id alone is one match per type the parameter may name: 4 for
		// Observation.subject, 7 for Appointment.actor.
		{"patient's observations by id alone", "Observation", "subject=pat-000001&_sort=-date"},
		{"practitioner's appointments by id alone", "Appointment", "actor=prac-0001-01"},
		{"blood pressure over 140", "Observation", "component-code-value-quantity=http://loinc.org|8480-6$gt140"},
		{"booked appointments", "Appointment", "status=booked&date=ge2026-01-05&_sort=date"},
		{"missing value", "Observation", "code=http://loinc.org|85354-9&value-quantity:missing=true"},
		{"chained", "Observation", "subject:Patient.identifier=9993095109"},
		{"has", "Patient", "_has:Condition:patient:code=http://snomed.info/sct|44054006"},
		{"active care plans", "CarePlan", "status=active"},
		{"care plans with subject", "CarePlan", "status=active&_include=CarePlan:subject"},
		{"patient's care plans", "CarePlan", "subject=Patient/pat-000004&_revinclude=Goal:patient"},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			values, err := url.ParseQuery(tt.query)
			if err != nil {
				b.Fatal(err)
			}
			plan, err := ix.Registry().Parse(tt.typ, values, search.Options{Strict: true, Now: synth.DefaultToday})
			if err != nil {
				b.Fatal(err)
			}
			q := plan.Query
			if q.Count == 0 {
				q.Count = 20
			}
			matches := 0
			cpu := cpuTime(b)
			for b.Loop() {
				page, err := s.Find(ctx, q)
				if err != nil {
					b.Fatal(err)
				}
				matches = len(page.Matches)
			}
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N)/1e3, "cpu-µs/op")
			b.ReportMetric(float64(matches), "matches")
		})
	}
}

// cpuTime returns the CPU time the process has used so far: on a shared
// machine a steadier figure than the wall time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestBenchPatientSize(t *testing.T) {
	body := benchPatient("p1", 1)
	if n := len(body); n < 1800 || n > 2600 || !strings.Contains(string(body), `"id":"p1"`) {
		t.Errorf("bench Patient is %d bytes, want about 2 KB", n)
	}
}
