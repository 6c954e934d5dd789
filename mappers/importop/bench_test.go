package importop_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
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

// BenchmarkImportCSV imports a 100,000-row EMIS patient list through
// POST $import?format=csv into a fresh SQLite store, with UK Core-less R4
// validation of every write as serve runs it, and reports patients/s and
// the heap in use after the import.
func BenchmarkImportCSV(b *testing.B) {
	const rows = 100_000
	v, err := profiles.New(profiles.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st, err := sqlite.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(server.New(server.Config{Store: st, Validator: v, ValidateWrites: true,
			MaxBodyBytes: 1 << 30, Operations: (&importop.Importer{}).Operations(), Limits: server.Limits{Deadline: time.Hour}}))
		b.StartTimer()
		resp, err := http.Post(srv.URL+"/fhir/$import?format=csv&mapping=emis-patient-list", "text/csv", csvRows(rows))
		if err != nil {
			b.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("%d %.500s", resp.StatusCode, out)
		}
		b.StopTimer()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "MiB-heap")
		srv.Close()
		st.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "patients/s")
}
