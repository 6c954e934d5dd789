package access

import (
	"math/rand/v2"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"carefhir/store"
	"carefhir/store/sqlite"
)

// BenchmarkAuditSearchEvent measures the CPU time the audit trail spends
// on the event of a search that returned 20 of 10,000 Patients, each an
// entity and a patient of the event, written to the SQLite engine.
//
//	go test ./server/access -run '^$' -bench AuditSearchEvent -benchtime 5000x
func BenchmarkAuditSearchEvent(b *testing.B) {
	benchmarkAuditEvent(b, InteractionSearchType, 20)
}

// BenchmarkAuditReadEvent measures the CPU time of writing the audit event
// of a read by id, the event of most requests.
func BenchmarkAuditReadEvent(b *testing.B) {
	benchmarkAuditEvent(b, InteractionRead, 1)
}

// benchmarkAuditEvent measures the CPU time of writing, through the
// auditor's batches, the audit events of interaction touching n Patients.
func benchmarkAuditEvent(b *testing.B, interaction Interaction, n int) {
	st, err := sqlite.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	auditor := NewAuditor(st, AuditConfig{Source: "bench"})
	defer auditor.Close()
	p := &Principal{Subject: "u", FHIRUser: "Practitioner/p1", ClientID: "app"}
	cpu0 := cpuTime(b)
	for b.Loop() {
		rec := &Record{}
		vs := make([]*store.Version, n)
		for i := range vs {
			vs[i] = &store.Version{Type: "Patient", ID: "p" + strconv.Itoa(rand.IntN(10000)), VersionID: 1}
		}
		rec.touch(vs...)
		query := "" // a read has none
		if interaction == InteractionSearchType {
			query = "family=x"
		}
		auditor.Add(&Event{Interaction: interaction, Type: "Patient", Query: query, Principal: p,
			Address: "127.0.0.1", RequestID: uuid.Must(uuid.NewV7()).String(), Status: 200, Recorded: time.Now(), Record: rec})
	}
	auditor.Flush()
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/event")
	if d := auditor.Dropped(); d > 0 {
		b.Errorf("%d events dropped", d)
	}
}

// cpuTime is the CPU time the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
