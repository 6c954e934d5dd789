package gpconnect

import (
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time the process has used, user and system, all
// threads: on a shared machine it varies far less than the wall clock.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// largeRecord returns the EMIS record of Gainsford (93 entries) grown to
// n entries by copies of its clinical entries under new ids and
// identifiers, as a record of a patient with a long history would be.
func largeRecord(tb testing.TB, n int) []byte {
	tb.Helper()
	rc := patchedRecords[0]
	var bundle map[string]any
	if err := json.Unmarshal(patched(tb, rc.name, rc.placeholder, rc.nhs), &bundle); err != nil {
		tb.Fatal(err)
	}
	entries := bundle["entry"].([]any)
	var clinical []any
	for _, e := range entries {
		switch e.(map[string]any)["resource"].(map[string]any)["resourceType"] {
		case "Condition", "AllergyIntolerance", "Observation":
			clinical = append(clinical, e)
		}
	}
	for i := 0; len(entries) < n; i++ {
		var e map[string]any
		b, _ := json.Marshal(clinical[i%len(clinical)])
		json.Unmarshal(b, &e)
		r := e["resource"].(map[string]any)
		r["id"] = fmt.Sprintf("%s-copy-%d", r["id"], i)
		for _, id := range r["identifier"].([]any) {
			id.(map[string]any)["value"] = fmt.Sprintf("%s-copy-%d", id.(map[string]any)["value"], i)
		}
		entries = append(entries, e)
	}
	bundle["entry"] = entries
	out, err := json.Marshal(bundle)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func TestLargeRecord(t *testing.T) {
	im, err := importer()
	if err != nil {
		t.Fatal(err)
	}
	res := im.Import(largeRecord(t, 500))
	if res.Failed() {
		t.Fatalf("refused: %s", firstError(res))
	}
	checkImport(t, res)
	// Lists group the entries; every other entry is written once.
	if n := len(res.Bundle.Entry); n != 500 {
		t.Errorf("%d entries written, want 500", n)
	}
}

// BenchmarkImport500 imports a structured record of 500 entries: parse
// and validate the STU3, map, and build the R4 Bundle of our model.
func BenchmarkImport500(b *testing.B) {
	im, err := importer()
	if err != nil {
		b.Fatal(err)
	}
	payload := largeRecord(b, 500)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	start := cpuTime(b)
	for b.Loop() {
		if res := im.Import(payload); res.Failed() {
			b.Fatal(firstError(res))
		}
	}
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkParse500 is the STU3 parse and validation alone of the same
// record, to show what share of the import it takes.
func BenchmarkParse500(b *testing.B) {
	im, err := importer()
	if err != nil {
		b.Fatal(err)
	}
	payload := largeRecord(b, 500)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	start := cpuTime(b)
	for b.Loop() {
		if issues := im.validate(payload); len(issues) > 0 {
			b.Fatal(issues[0])
		}
	}
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}
