package importop_test

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"carefhir/mappers/importop"
	"carefhir/profiles"
	"carefhir/server"
	"carefhir/store/sqlite"
)

// csvRows writes an EMIS patient list of n rows, each a patient of its
// own with a valid NHS number, without holding the file.
func csvRows(n int) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		fmt.Fprintln(pw, "Organisation,NHS Number,Title,First Name,Surname,Date of Birth,Gender,House Name/Flat Number,Number and Street,Village,Town,County,Postcode,Home Telephone,Mobile Telephone,Email Address,Usual GP,Body Mass Index,Body Mass Index Date,HbA1c,HbA1c Date,Diabetes,Diabetes Date,Asthma,Asthma Date")
		for i, written := 0, 0; written < n; i++ {
			nhs, ok := nhsNumber(400_000_000 + i)
			if !ok {
				continue
			}
			written++
			fmt.Fprintf(pw, "Y12345,%s,Ms,Ann%d,Lee,12-Mar-1948,Female,,%d High Street,,Leeds,,LS1 4AP,,,,Dr John Smith,,,,,,,,\n", nhs, i, i%200)
		}
		pw.Close()
	}()
	return pr
}

// nhsNumber returns the NHS number of 9 digits base and its modulus 11
// check digit; ok is false for the bases no check digit completes.
func nhsNumber(base int) (string, bool) {
	s := fmt.Sprintf("%09d", base)
	sum := 0
	for i, c := range s {
		sum += int(c-'0') * (10 - i)
	}
	check := 11 - sum%11
	switch check {
	case 11:
		check = 0
	case 10:
		return "", false
	}
	return s + fmt.Sprint(check), true
}

// importRows is the size of BenchmarkImportCSV's file: 100,000 rows, the
// size the import is measured at, or fewer to compare memory.
var importRows = flag.Int("import-rows", 100_000, "rows of the CSV file BenchmarkImportCSV imports")

// BenchmarkImportCSV imports an EMIS patient list of -import-rows rows
// (100,000) through POST $import?format=csv into a fresh SQLite store, with
// R4 validation of every write as serve runs it, and reports patients/s,
// patients per second of CPU (the process's user and system time, less
// sensitive to other work on the machine than the wall clock), and the
// highest heap in use while the import ran, sampled every 50 ms. The file
// is written, and the definitions loaded, before the clock starts.
func BenchmarkImportCSV(b *testing.B) {
	rows := *importRows
	v, err := profiles.New(profiles.Options{})
	if err != nil {
		b.Fatal(err)
	}
	file := filepath.Join(b.TempDir(), "patients.csv")
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(f, csvRows(rows)); err != nil {
		b.Fatal(err)
	}
	f.Close()
	var cpu time.Duration
	var peak uint64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st, err := sqlite.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(server.New(server.Config{Store: st, Validator: v, ValidateWrites: true,
			MaxBodyBytes: 1 << 30, Operations: (&importop.Importer{}).Operations(), Limits: server.Limits{Deadline: time.Hour}}))
		body, err := os.Open(file)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		stop := sampleHeap(&peak)
		before := cpuTime()
		b.StartTimer()
		resp, err := http.Post(srv.URL+"/fhir/$import?format=csv&mapping=emis-patient-list", "text/csv", body)
		if err != nil {
			b.Fatal(err)
		}
		head := make([]byte, 200)
		n, _ := io.ReadFull(resp.Body, head)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("%d %s", resp.StatusCode, head[:n])
		}
		b.StopTimer()
		cpu += cpuTime() - before
		stop()
		body.Close()
		srv.Close()
		st.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(peak)/(1<<20), "MiB-peak-heap")
	b.ReportMetric(float64(rows*b.N)/cpu.Seconds(), "patients/cpu-s")
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "patients/s")
}

// sampleHeap records in peak the highest heap in use until stop is
// called.
func sampleHeap(peak *uint64) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			*peak = max(*peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}

// cpuTime is the user and system time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
