package server_test

import (
	"encoding/binary"
	"encoding/hex"
	mrand "math/rand/v2"
	"strconv"
	"testing"
	"time"

	"carefhir/server/access"
	"carefhir/store/sqlite"
)

// BenchmarkAuditTrail measures how many AuditEvents per second the audit
// trail writes to the SQLite engine, the rate of requests it keeps up
// with, and the CPU time each costs. Each event is a read of one of 1,000
// Patients. Its request id is time-ordered, as the server makes them
// (UUID version 7), or random, as a client may send them: each random id
// lands on a page of the index of its own.
func BenchmarkAuditTrail(b *testing.B) {
	for _, ids := range []struct {
		name    string
		ordered bool
	}{{"time-ordered request ids", true}, {"random request ids", false}} {
		b.Run(ids.name, func(b *testing.B) { benchmarkAuditTrail(b, ids.ordered) })
	}
}

func benchmarkAuditTrail(b *testing.B, ordered bool) {
	st, err := sqlite.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	auditor := access.NewAuditor(st, access.AuditConfig{Source: "bench"})
	defer auditor.Close()
	p := &access.Principal{Subject: "u", FHIRUser: "Practitioner/p1", ClientID: "app", Scopes: nil}
	requestID := func() string {
		var id [16]byte
		binary.LittleEndian.PutUint64(id[:8], mrand.Uint64())
		binary.LittleEndian.PutUint64(id[8:], mrand.Uint64())
		if ordered {
			binary.BigEndian.PutUint64(id[:8], uint64(time.Now().UnixMilli())<<16|mrand.Uint64()&0xffff)
		}
		return hex.EncodeToString(id[:])
	}
	b.ResetTimer()
	cpu0 := cpuTime(b)
	start := time.Now()
	for range b.N {
		auditor.Add(&access.Event{
			Interaction: access.InteractionRead, Type: "Patient", ID: "p" + strconv.Itoa(mrand.IntN(1000)),
			Principal: p, Address: "127.0.0.1", RequestID: requestID(), Status: 200,
			Recorded: time.Now(), Record: &access.Record{},
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
