package sqlite_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"carefhir/store"
	"carefhir/store/sqlite"
)

// benchPatient returns a Patient of about 2 KB and its search tokens.
func benchPatient(id string) ([]byte, []store.Token) {
	nhs := fmt.Sprintf("9%09d", len(id)*7919+int(id[len(id)-1]))
	json := fmt.Sprintf(`{"resourceType":"Patient","id":%q,"meta":{"versionId":"1","lastUpdated":"2024-03-01T10:00:00.000Z","profile":["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"]},`+
		`"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":%q,"extension":[{"url":"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus","valueCodeableConcept":{"coding":[{"system":"https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland","code":"01","display":"Number present and verified"}]}}]}],`+
		`"active":true,"name":[{"use":"official","family":"Smith","given":["Jane","Anne"],"prefix":["Mrs"]}],`+
		`"telecom":[{"system":"phone","value":"01632 960587","use":"home"},{"system":"email","value":"jane.smith@example.org","use":"home"}],`+
		`"gender":"female","birthDate":"1954-07-23",`+
		`"address":[{"use":"home","type":"both","line":["1 Trevelyan Square","Boar Lane"],"city":"Leeds","district":"West Yorkshire","postalCode":"LS1 6AE","country":"GB"}],`+
		`"maritalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"M","display":"Married"}]},`+
		`"contact":[{"relationship":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0131","code":"N","display":"Next-of-Kin"}]}],"name":{"family":"Smith","given":["John"]},"telecom":[{"system":"phone","value":"01632 960123"}]}],`+
		`"communication":[{"language":{"coding":[{"system":"https://fhir.hl7.org.uk/CodeSystem/UKCore-HumanLanguage","code":"en","display":"English"}]},"preferred":true}],`+
		`"generalPractitioner":[{"reference":"Organization/Y12345","identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"Y12345"}}],`+
		`"managingOrganization":{"reference":"Organization/Y12345","display":"Trevelyan Square Surgery, a general practice serving Leeds city centre"},`+
		`"extension":[{"url":"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory","valueCodeableConcept":{"coding":[{"system":"https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland","code":"A","display":"British, Mixed British"}]}}],`+
		`"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Jane Anne Smith, born 23 July 1954, NHS number %s, registered at Trevelyan Square Surgery.</div>"}}`,
		id, nhs, nhs)
	tokens := []store.Token{
		{Param: "identifier", System: "https://fhir.nhs.uk/Id/nhs-number", Code: nhs},
		{Param: "gender", System: "http://hl7.org/fhir/administrative-gender", Code: "female"},
		{Param: "active", Code: "true"},
		{Param: "language", System: "https://fhir.hl7.org.uk/CodeSystem/UKCore-HumanLanguage", Code: "en"},
		{Param: "telecom", System: "phone", Code: "01632 960587"},
	}
	return []byte(json), tokens
}

func benchWrite(id string) *store.Write {
	body, tokens := benchPatient(id)
	return &store.Write{Type: "Patient", ID: id, LastUpdated: time.Now().UTC().Truncate(time.Millisecond),
		JSON: body, Index: store.Index{Tokens: tokens}}
}

// groupCommit are the settings the write benchmarks compare.
var groupCommit = []struct {
	name string
	opts sqlite.Options
}{
	{name: "group", opts: sqlite.Options{}},
	{name: "single", opts: sqlite.Options{MaxBatch: 1}},
}

// BenchmarkPut creates ~2 KB Patients from one goroutine.
func BenchmarkPut(b *testing.B) {
	for _, gc := range groupCommit {
		b.Run(gc.name, func(b *testing.B) {
			s := mustOpen(b, b.TempDir(), gc.opts)
			defer closeUntimed(b, s)
			ws := make([]*store.Write, b.N)
			for i := range ws {
				ws[i] = benchWrite(fmt.Sprintf("p%d", i))
			}
			ctx := b.Context()
			b.SetBytes(int64(len(ws[0].JSON)))
			b.ResetTimer()
			for _, w := range ws {
				if err := s.Put(ctx, w); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
		})
	}
}

// BenchmarkPutParallel creates ~2 KB Patients from 8 goroutines.
func BenchmarkPutParallel(b *testing.B) {
	for _, gc := range groupCommit {
		b.Run(gc.name, func(b *testing.B) {
			s := mustOpen(b, b.TempDir(), gc.opts)
			defer closeUntimed(b, s)
			var n atomic.Int64
			ctx := b.Context()
			b.SetParallelism(parallelism(8))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.Put(ctx, benchWrite(fmt.Sprintf("p%d", n.Add(1)))); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
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
	dir := b.TempDir()
	s := mustOpen(b, dir, sqlite.Options{})
	err := s.Transact(b.Context(), func(tx store.Tx) error {
		for i := range readSet {
			if err := tx.Put(b.Context(), benchWrite(fmt.Sprintf("p%d", i))); err != nil {
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

// BenchmarkRead reads Patients by id from one goroutine.
func BenchmarkRead(b *testing.B) {
	s := openReadSet(b)
	defer closeUntimed(b, s)
	ctx := b.Context()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Read(ctx, "Patient", fmt.Sprintf("p%d", i%readSet)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}

// BenchmarkReadParallel reads Patients by id from 8 goroutines.
func BenchmarkReadParallel(b *testing.B) {
	s := openReadSet(b)
	defer closeUntimed(b, s)
	ctx := b.Context()
	var n atomic.Int64
	b.SetParallelism(parallelism(8))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("p%d", n.Add(1)%readSet)
			if _, err := s.Read(ctx, "Patient", id); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}

func TestBenchPatientSize(t *testing.T) {
	body, _ := benchPatient("p1")
	if n := len(body); n < 1800 || n > 2600 || !strings.Contains(string(body), `"id":"p1"`) {
		t.Errorf("bench Patient is %d bytes, want about 2 KB", n)
	}
}
