package csv

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"testing"

	"carefhir/fhir/fhirjson"
)

// cohort is a report in the built-in EMIS layout, written row by row as it
// is read, so the benchmark's own input takes no memory.
type cohort struct {
	rows, next int
	buf        bytes.Buffer
}

const cohortHeader = "Organisation,NHS Number,Title,First Name,Surname,Date of Birth,Gender,House Name/Flat Number,Number and Street,Village,Town,County,Postcode,Home Telephone,Mobile Telephone,Email Address,Usual GP,Body Mass Index,Body Mass Index Date,HbA1c,HbA1c Date,Diabetes,Diabetes Date,Asthma,Asthma Date\r\n"

// testNHSNumber returns the i-th valid NHS number of the 999 range, which
// is never issued to patients.
func testNHSNumber(i int) string {
	// Of two consecutive numbers at most one has the check digit 10,
	// which is never issued; each i has a pair of its own.
	for n := 999000000 + 2*i; ; n++ {
		s := strconv.Itoa(n)
		sum := 0
		for j := 0; j < 9; j++ {
			sum += int(s[j]-'0') * (10 - j)
		}
		switch c := 11 - sum%11; c {
		case 10:
			continue
		case 11:
			return s + "0"
		default:
			return s + strconv.Itoa(c)
		}
	}
}

func (c *cohort) Read(p []byte) (int, error) {
	for c.buf.Len() < len(p) && c.next <= c.rows {
		if c.next == 0 {
			c.buf.WriteString(cohortHeader)
		} else {
			i := c.next
			org := ""
			if i%250 == 1 {
				org = fmt.Sprintf("Y%05d", i/250)
			}
			sex, diabetes := "Female", ""
			if i%2 == 0 {
				sex = "Male"
			}
			if i%7 == 0 {
				diabetes = "Yes"
			}
			nhs := testNHSNumber(i)
			fmt.Fprintf(&c.buf, "%s,%s %s %s,Mrs,Given%d,Family%d,%02d-Mar-19%02d,%s,,%d High Street,,Leeds,West Yorkshire,LS%d %dAB,0113 496 %04d,,,Dr Smith,%d.%d,03-Nov-2026,%d,03-Nov-2026,%s,14/06/2011,,\r\n",
				org, nhs[:3], nhs[3:6], nhs[6:], i, i, 1+i%28, 20+i%70, sex, i%200, 1+i%28, i%9, i%10000, 18+i%20, i%10, 40+i%30, diabetes)
		}
		c.next++
	}
	return c.buf.Read(p)
}

// BenchmarkImport maps cohort reports of 10,000 and 100,000 rows, in
// batches of 500, and encodes each batch's Bundle as JSON as a host would
// send it on (json=false: the mapping alone). It reports patients mapped per second and the most heap in
// use after a batch, which stays flat as the file grows.
func BenchmarkImport(b *testing.B) {
	m, err := Layout("emis-patient-list")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		rows   int
		encode bool
	}{{10_000, true}, {100_000, true}, {100_000, false}} {
		rows := bc.rows
		b.Run(fmt.Sprintf("rows=%d/json=%v", rows, bc.encode), func(b *testing.B) {
			var peak uint64
			var ms runtime.MemStats
			for b.Loop() {
				im, err := NewImporter(&cohort{rows: rows}, m, 500)
				if err != nil {
					b.Fatal(err)
				}
				batches := 0
				for {
					r, err := im.Next()
					if err == io.EOF {
						break
					}
					if err != nil || r.Bundle == nil {
						b.Fatalf("batch %d: %v %v", batches, err, r.Issues)
					}
					if bc.encode {
						if _, err := fhirjson.Marshal(r.Bundle); err != nil {
							b.Fatal(err)
						}
					}
					batches++
					if batches%4 == 0 {
						runtime.ReadMemStats(&ms)
						peak = max(peak, ms.HeapInuse)
					}
				}
			}
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "patients/s")
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
		})
	}
}
