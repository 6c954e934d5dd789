package csv

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/mappers"
	"carefhir/mappers/mapperstest"
)

func mapping(t testing.TB, name string) *Mapping {
	t.Helper()
	if data, err := os.ReadFile(filepath.Join("testdata", "mappings", name)); err == nil {
		m, err := ParseMapping(data)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m, err := Layout(name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// importAll reads the whole file in batches of batch rows and returns the
// Results.
func importAll(t testing.TB, file string, m *Mapping, batch int) ([]*mappers.Result, error) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	im, err := NewImporter(f, m, batch)
	if err != nil {
		return nil, err
	}
	var out []*mappers.Result
	for {
		r, err := im.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
}

// fileOutcomes say what becomes of each file under testdata with the
// mapping given: the patients written (batches of one row, so each good
// row is written) and the errors, by line.
var fileOutcomes = []struct {
	file, mapping string
	patients      int
	errors        []string // "line N, column C: text"
	refused       string   // the error of NewImporter, if it refuses the file
}{
	{file: "synthetic/emis-patient-list.csv", mapping: "emis-patient-list", patients: 4},
	{file: "synthetic/systmone-patient-list.csv", mapping: "systmone-patient-list", patients: 2, errors: []string{
		`line 4, column Date of Birth: "31 Feb 1990" is not a date`,
		`line 5, column NHS Number: "9990000078" is not a valid NHS number`,
	}},
	{file: "list-reconciliation/test/_data/gdppr.csv", mapping: "gdppr.yaml", patients: 8, errors: []string{
		"line 3, column DATE_OF_BIRTH: date of birth 2916-08-17 is in the future",
		`line 11, column NHS_NUMBER: "6472621238" is not a valid NHS number`,
		`line 12, column NHS_NUMBER: "2123864726" is not a valid NHS number`,
	}},
	{file: "list-reconciliation/test/_data/unit/A82023-OnlyOnGP-19700101000000.csv", mapping: "only-on-gp.json", patients: 2, errors: []string{
		`line 2, column NHS NO.: "9000000015" is not a valid NHS number`,
	}},
	// Placeholder NHS numbers (NHS001…).
	{file: "emis-to-acg/Sample_Patient_Details.csv", mapping: "acg-patient-details.yaml", errors: []string{
		`line 2, column NHSNumber: "NHS001"`, `line 3, column NHSNumber: "NHS002"`, `line 4, column NHSNumber: "NHS003"`,
		`line 5, column NHSNumber: "NHS004"`, `line 6, column NHSNumber: "NHS005"`,
	}},
	// Files that name patients by a local id only, and the list
	// reconciliation files, which are not CSV reports (~-separated, two
	// records per patient).
	{file: "emis-to-acg/Sample_Care_History.csv", mapping: "acg-care-history.yaml", refused: `no header row with the column "NHS Number"`},
	{file: "emis-to-acg/Sample_Long_Term_Conditions.csv", mapping: "acg-care-history.yaml", refused: `no header row with the column "NHS Number"`},
	{file: "emis-to-acg/Sample_Medication_History.csv", mapping: "acg-care-history.yaml", refused: `no header row with the column "NHS Number"`},
	{file: "emis-to-acg/mapping.csv", mapping: "acg-care-history.yaml", refused: `no header row with the column "NHS Number"`},
	{file: "list-reconciliation/test/_data/unit/A82023_GPR4LNA1.CSA", mapping: "only-on-gp.json", refused: `no header row with the column "NHS NO."`},
	{file: "list-reconciliation/test/_data/unit/A12023_GPR4LNA1.CSB", mapping: "only-on-gp.json", refused: `no header row with the column "NHS NO."`},
}

// TestFiles imports every CSV file under testdata: each row either gives
// writes that validate against UK Core, or is refused naming its line and
// column.
func TestFiles(t *testing.T) {
	var files []string
	filepath.WalkDir("testdata", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.Contains(p, "mappings") && !strings.Contains(p, "fuzz") && !strings.HasSuffix(p, ".md") {
			files = append(files, filepath.ToSlash(strings.TrimPrefix(p, "testdata/")))
		}
		return err
	})
	if len(files) != len(fileOutcomes) {
		t.Errorf("%d files under testdata, %d with an expected outcome", len(files), len(fileOutcomes))
	}
	for _, tt := range fileOutcomes {
		t.Run(tt.file, func(t *testing.T) {
			results, err := importAll(t, tt.file, mapping(t, tt.mapping), 1)
			if tt.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tt.refused) {
					t.Errorf("error = %v, want one saying %q", err, tt.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			patients := 0
			var errs []string
			for _, r := range results {
				for _, is := range r.Issues {
					if is.Severity == mappers.Error {
						errs = append(errs, is.Path+": "+is.Message)
					}
				}
				if r.Bundle == nil {
					continue
				}
				for _, e := range r.Bundle.Entry {
					if _, ok := e.Resource.(*fhir.Patient); ok {
						patients++
					}
				}
				for _, p := range mapperstest.Problems(t, r.Bundle) {
					t.Error(p)
				}
			}
			if patients != tt.patients {
				t.Errorf("%d patients written, want %d", patients, tt.patients)
			}
			if len(errs) != len(tt.errors) {
				t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(errs, "\n"), strings.Join(tt.errors, "\n"))
			}
			for i := range errs {
				if !strings.HasPrefix(errs[i], tt.errors[i]) {
					t.Errorf("error %d = %s, want %s…", i, errs[i], tt.errors[i])
				}
			}
		})
	}
}

func TestEMISLayout(t *testing.T) {
	results, err := importAll(t, "synthetic/emis-patient-list.csv", mapping(t, "emis-patient-list"), 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].Bundle == nil {
		t.Fatalf("results: %d, first %v", len(results), results[0].Issues)
	}
	byURL := map[string]*fhir.BundleEntry{}
	var patients []*fhir.Patient
	var obs []*fhir.Observation
	var conds []*fhir.Condition
	for _, e := range results[0].Bundle.Entry {
		byURL[e.FullUrl.Get()] = e
		switch r := e.Resource.(type) {
		case *fhir.Patient:
			patients = append(patients, r)
		case *fhir.Observation:
			obs = append(obs, r)
		case *fhir.Condition:
			conds = append(conds, r)
		}
	}
	p := patients[0]
	if got := p.Identifier[0].Value.Get(); got != "9990000018" {
		t.Errorf("NHS number = %q, want the spaces removed", got)
	}
	if p.BirthDate.Get() != "1948-03-12" || p.Gender.Get() != "female" {
		t.Errorf("birth date %s (from 12-Mar-1948), gender %s", p.BirthDate.Get(), p.Gender.Get())
	}
	if got := p.Address[0].PostalCode.Get(); got != "LS1 4AP" {
		t.Errorf("postcode = %q", got)
	}
	if got := patients[1].Name[0].Given[0].Get(); got != "René" {
		t.Errorf("given = %q, want the Windows-1252 é decoded", got)
	}
	if patients[1].BirthDate.Get() != "1939-02-01" {
		t.Errorf("01/02/1939 read as %s, want day first", patients[1].BirthDate.Get())
	}
	// The blank Organisation cells belong to Y12345 above them.
	for i, want := range []string{"Y12345", "Y12345", "Y12345", "B82005"} {
		gp := patients[i].GeneralPractitioner
		if len(gp) == 0 {
			t.Errorf("patient %d has no practice", i)
			continue
		}
		org, ok := byURL[gp[0].Reference.Get()].Resource.(*fhir.Organization)
		if !ok || org.Identifier[0].Value.Get() != want {
			t.Errorf("patient %d practice is not %s", i, want)
		}
	}
	if len(obs) != 3 || len(conds) != 2 {
		t.Fatalf("%d observations, %d conditions; want 3 (two BMIs, one HbA1c) and 2 (diabetes, asthma)", len(obs), len(conds))
	}
	if q := obs[0].ValueQuantity; q.Value.Get() != "31.2" || q.Code.Get() != "kg/m2" || obs[0].EffectiveDateTime.Get() != "2026-11-03" {
		t.Errorf("BMI = %s %s on %s", q.Value.Get(), q.Code.Get(), obs[0].EffectiveDateTime.Get())
	}
	if conds[0].OnsetDateTime.Get() != "2011-06-14" || conds[0].Code.Coding[0].Code.Get() != "73211009" {
		t.Errorf("diabetes = %s from %s", conds[0].Code.Coding[0].Code.Get(), conds[0].OnsetDateTime.Get())
	}
}

// TestReimport: importing the same file again gives the same writes, each
// conditional on the same identifier, so nothing is duplicated; an
// observation is keyed on patient, code and date.
func TestReimport(t *testing.T) {
	m := mapping(t, "emis-patient-list")
	a, _ := importAll(t, "synthetic/emis-patient-list.csv", m, 3)
	b, _ := importAll(t, "synthetic/emis-patient-list.csv", m, 3)
	for i := range a {
		ja, _ := fhirjson.Marshal(a[i].Bundle)
		jb, _ := fhirjson.Marshal(b[i].Bundle)
		if !bytes.Equal(ja, jb) {
			t.Errorf("batch %d differs between two imports", i)
		}
	}
	for _, e := range a[0].Bundle.Entry {
		if o, ok := e.Resource.(*fhir.Observation); ok {
			want := "Observation?identifier=urn:ietf:rfc:3986|" + mappers.StableID("Observation", "9990000018", o.Code.Coding[0].System.Get()+"|"+o.Code.Coding[0].Code.Get(), o.EffectiveDateTime.Get())
			if e.Request.Method.Get() != "PUT" || e.Request.Url.Get() != want {
				t.Errorf("observation request %s %s, want PUT %s", e.Request.Method.Get(), e.Request.Url.Get(), want)
			}
			break
		}
	}
}

func TestBatches(t *testing.T) {
	results, err := importAll(t, "list-reconciliation/test/_data/gdppr.csv", mapping(t, "gdppr.yaml"), 4)
	if err != nil {
		t.Fatal(err)
	}
	// 11 rows in batches of 4; the first and third hold errors.
	if len(results) != 3 {
		t.Fatalf("%d results, want 3", len(results))
	}
	for i, wantFailed := range []bool{true, false, true} {
		if results[i].Failed() != wantFailed || (results[i].Bundle == nil) != wantFailed {
			t.Errorf("batch %d: failed %v with Bundle %v", i, results[i].Failed(), results[i].Bundle != nil)
		}
	}
}

func TestMissingColumnsWarned(t *testing.T) {
	in := "NHS Number,Surname\r\n9990000018,Ward\r\n"
	im, err := NewImporter(strings.NewReader(in), mapping(t, "emis-patient-list"), 0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := im.Next()
	if err != nil {
		t.Fatal(err)
	}
	if r.Bundle == nil || len(r.Bundle.Entry) != 1 {
		t.Fatalf("the patient is not written: %v", r.Issues)
	}
	if len(r.Issues) == 0 || !strings.Contains(r.Issues[0].Message, `no column "Title"`) || r.Issues[0].Severity != mappers.Warning {
		t.Errorf("issues = %v, want warnings of the missing columns", r.Issues)
	}
}

func TestParseMapping(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"no NHS number column", "name: x\npatient: {family: Surname}", "Patient.NHSNumber is required"},
		{"unknown key", "name: x\npatient: {nhsNumber: N, surname: S}", `unknown field "surname"`},
		{"bad encoding", "name: x\nencoding: latin9\npatient: {nhsNumber: N}", `Encoding "latin9" is not one of`},
		{"bad date format", "name: x\ndateFormats: [MM/dd/yyyy]\npatient: {nhsNumber: N}", `DateFormats[0] "MM/dd/yyyy" is not one of`},
		{"observation without date", `{"name":"x","patient":{"nhsNumber":"N"},"observations":[{"column":"BMI","code":{"system":"http://snomed.info/sct","code":"60621009"}}]}`, "Observations[0].DateColumn is required"},
		{"code without system", "name: x\npatient: {nhsNumber: N}\nconditions: [{column: D, code: {code: '73211009'}}]", "Conditions[0].Code.System is required"},
		{"quote delimiter", "name: x\ndelimiter: '\"'\npatient: {nhsNumber: N}", `Delimiter "\"" is not a field separator`},
		{"line break delimiter", `{"name":"x","delimiter":"\n","patient":{"nhsNumber":"N"}}`, `Delimiter "\n" is not a field separator`},
		{"two-character delimiter", "name: x\ndelimiter: ';;'\npatient: {nhsNumber: N}", `Delimiter ";;" is not a field separator`},
		{"not YAML", "name: [", "csv: mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseMapping([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one saying %q", err, tt.want)
			}
		})
	}
	for _, name := range Layouts() {
		if _, err := Layout(name); err != nil {
			t.Errorf("built-in layout %s: %v", name, err)
		}
	}
	if got := strings.Join(Layouts(), ","); got != "emis-patient-list,systmone-patient-list" {
		t.Errorf("layouts = %s", got)
	}
}

func TestParseDate(t *testing.T) {
	for in, want := range map[string]string{
		"12-Mar-1948": "1948-03-12", "12-MAR-1948": "1948-03-12", "12/03/1948": "1948-03-12", "1948-03-12": "1948-03-12",
		"12 Mar 1948": "1948-03-12", "2 Mar 1948": "1948-03-02", "19480312": "1948-03-12", "12/03/1948 00:00:00": "1948-03-12",
		"1948-03-12T00:00:00": "1948-03-12", "31/02/1948": "", "03/13/1948": "", "yesterday": "",
		"12-Sept-1948": "1948-09-12", "12 SEPT 1948": "1948-09-12", "12-Septe-1948": "",
	} {
		got, ok := parseDate(in, DefaultDateFormats)
		if got != want || ok != (want != "") {
			t.Errorf("parseDate(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

// TestFlagsAndCodedDates: a flag column, and a condition column whose
// cell is its own date, give UK Core Flags and Conditions; a "no" records
// nothing.
func TestFlagsAndCodedDates(t *testing.T) {
	m, err := ParseMapping([]byte(`
name: flags
patient: {nhsNumber: NHS Number}
conditions:
  - {column: Diabetes diagnosed, code: {system: "http://snomed.info/sct", code: "73211009", display: Diabetes mellitus}}
flags:
  - {column: Carer, dateColumn: Carer since, code: {system: "https://example.org/CodeSystem/practice-flags", code: "carer", display: Is a carer}}
`))
	if err != nil {
		t.Fatal(err)
	}
	in := "NHS Number,Diabetes diagnosed,Carer,Carer since\r\n9990000018,2024-05-01,Y,01/02/2020\r\n9990000026,No,no,\r\n"
	im, err := NewImporter(strings.NewReader(in), m, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := im.Next()
	if err != nil || r.Bundle == nil {
		t.Fatalf("%v %v", err, r.Issues)
	}
	for _, p := range mapperstest.Problems(t, r.Bundle) {
		t.Error(p)
	}
	var got []string
	for _, e := range r.Bundle.Entry {
		switch res := e.Resource.(type) {
		case *fhir.Condition:
			got = append(got, "Condition "+res.OnsetDateTime.Get())
		case *fhir.Flag:
			got = append(got, "Flag "+res.Period.Start.Get())
		case *fhir.Patient:
			got = append(got, "Patient")
		}
	}
	if strings.Join(got, ", ") != "Patient, Condition 2024-05-01, Flag 2020-02-01, Patient" {
		t.Errorf("entries: %s", strings.Join(got, ", "))
	}
}

// TestLineEnds reads CR, LF and CRLF line ends a byte at a time, so that
// a CR ends one read and its LF starts the next: only the CR alone
// becomes a line feed.
func TestLineEnds(t *testing.T) {
	in := "a\r\nb\rc\nd\r\r\ne\r"
	got, err := io.ReadAll(lineEnds{bufio.NewReader(iotest.OneByteReader(strings.NewReader(in)))})
	if err != nil {
		t.Fatal(err)
	}
	if want := "a\r\nb\nc\nd\n\r\ne\n"; string(got) != want {
		t.Errorf("%q read as %q, want %q", in, got, want)
	}
}
