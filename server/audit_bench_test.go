package server_test

import (
	"fmt"
	"testing"
	"time"

	"carefhir/server/access"
	"carefhir/store/sqlite"
)

// BenchmarkAuditTrail measures how many AuditEvents per second the audit
// trail writes to the SQLite engine: the rate of requests it keeps up with.
func BenchmarkAuditTrail(b *testing.B) {
	st, err := sqlite.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	auditor := access.NewAuditor(st, access.AuditConfig{Source: "bench"})
	defer auditor.Close()
	p := &access.Principal{Subject: "u", FHIRUser: "Practitioner/p1", ClientID: "app", Scopes: nil}
	b.ResetTimer()
	cpu0 := cpuTime(b)
	start := time.Now()
	for i := range b.N {
		rec := &access.Record{}
		auditor.Add(&access.Event{
			Interaction: access.InteractionRead, Type: "Patient", ID: fmt.Sprint(i),
			Principal: p, Address: "127.0.0.1", RequestID: fmt.Sprint("req-", i), Status: 200,
			Recorded: time.Now(), Record: rec,
		})
	}
	auditor.Flush()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	// CPU time per event holds still on a machine shared with other work,
	// where events per second do not.
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/event")
	if d := auditor.Dropped(); d > 0 {
		b.Errorf("%d events dropped", d)
	}
}
