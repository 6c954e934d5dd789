package csv

import (
	"bytes"
	"strings"
	"testing"

	"carefhir/care/synth"
	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/mappers"
)

// record returns the generated care-coordination record of a patient
// with a PCSP: their NHS number, their CarePlans and the two PAM
// Observations, score and level, the server derives from their latest PAM
// response (the generator writes responses, not Observations).
func record(t *testing.T) (string, []fhir.Resource) {
	t.Helper()
	entries, err := synth.All(synth.Options{Patients: 10, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	nhs := map[string]string{}
	byPatient := map[string][]fhir.Resource{}
	plans := map[string]bool{}
	var order []string
	for _, e := range entries {
		r, err := fhirjson.UnmarshalAs(e.JSON, e.Type)
		if err != nil {
			t.Fatal(err)
		}
		switch r := r.(type) {
		case *fhir.Patient:
			ref := "Patient/" + r.GetID()
			nhs[ref] = r.Identifier[0].Value.Get()
			order = append(order, ref)
		case *fhir.Observation:
			if strings.HasSuffix(r.Code.Coding[0].System.Get(), "/CodeSystem/pam") {
				byPatient[r.Subject.Reference.Get()] = append(byPatient[r.Subject.Reference.Get()], r)
			}
		case *fhir.CarePlan:
			byPatient[r.Subject.Reference.Get()] = append(byPatient[r.Subject.Reference.Get()], r)
			plans[r.Subject.Reference.Get()] = true
		}
	}
	for _, ref := range order {
		if plans[ref] {
			return nhs[ref], append(byPatient[ref], pamObservations(ref)...)
		}
	}
	t.Fatal("no generated patient has a PCSP")
	return "", nil
}

// pamObservations are a PAM score and level of Patient ref, as the server
// derives them.
func pamObservations(ref string) []fhir.Resource {
	observation := func(code string) *fhir.Observation {
		return &fhir.Observation{
			Status:            fhir.NewCode("final"),
			Code:              &fhir.CodeableConcept{Coding: []*fhir.Coding{{System: fhir.NewUri("https://carefhir.example.org/fhir/CodeSystem/pam"), Code: fhir.NewCode(code)}}},
			Subject:           &fhir.Reference{Reference: fhir.NewString(ref)},
			EffectiveDateTime: fhir.NewDateTime("2026-11-01T10:00:00Z"),
		}
	}
	score := observation("pam-score")
	score.ValueQuantity = &fhir.Quantity{Value: fhir.NewDecimal("55.2"), Unit: fhir.NewString("score"),
		System: fhir.NewUri("http://unitsofmeasure.org"), Code: fhir.NewCode("{score}")}
	level := observation("pam-level")
	level.ValueInteger = fhir.NewInteger(3)
	return []fhir.Resource{score, level}
}

const pamCodes = `
codes:
  # Placeholder concept ids for the test only.
  "https://carefhir.example.org/fhir/CodeSystem/pam|pam-score": {system: "http://snomed.info/sct", code: "1000001"}
  "https://carefhir.example.org/fhir/CodeSystem/pam|pam-level": {system: "http://snomed.info/sct", code: "1000002"}
`

// export writes the rows of resources with layout l.
func export(t *testing.T, l *ExportLayout, nhs string, resources []fhir.Resource) (string, []mappers.Issue) {
	t.Helper()
	var buf bytes.Buffer
	ew, err := NewEntryWriter(&buf, l)
	if err != nil {
		t.Fatal(err)
	}
	var all []mappers.Issue
	for _, r := range resources {
		issues, err := ew.Write(nhs, r)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, issues...)
	}
	if err := ew.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.String(), all
}

// kinds counts the PCSPs and PAM scores among resources.
func kinds(resources []fhir.Resource) (plans, scores int) {
	for _, r := range resources {
		switch r.(type) {
		case *fhir.CarePlan:
			plans++
		case *fhir.Observation:
			scores++
		}
	}
	return plans, scores
}

func TestExportEntries(t *testing.T) {
	base, err := exports.ReadFile("exports/coded-entries.yaml")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ParseExportLayout(append(base, pamCodes...))
	if err != nil {
		t.Fatal(err)
	}
	nhs, resources := record(t)
	out, issues := export(t, l, nhs, resources)
	if len(issues) > 0 {
		t.Errorf("issues: %v", issues)
	}
	plans, scores := kinds(resources)
	lines := strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n")
	if lines[0] != "NHS Number,Date,SNOMED CT Code,Value,Unit,Free Text" {
		t.Errorf("header = %q", lines[0])
	}
	// A plan and each PAM Observation, score or level, give a row.
	if len(lines)-1 != plans+scores {
		t.Fatalf("%d rows for %d plans and %d PAM scores:\n%s", len(lines)-1, plans, scores, out)
	}
	var sawPlan, sawScore, sawLevel bool
	for _, line := range lines[1:] {
		f := strings.Split(line, ",")
		if f[0] != nhs || len(f[1]) != 10 || f[1][2] != '/' {
			t.Errorf("row %q: want the NHS number and a dd/MM/yyyy date", line)
		}
		switch f[2] {
		case "734163000":
			sawPlan = f[5] == "Personalised care and support plan"
		case "1000001":
			sawScore = f[3] != "" && f[4] == "score"
		case "1000002":
			sawLevel = f[3] >= "1" && f[3] <= "4"
		}
	}
	if !sawPlan || !sawScore || !sawLevel {
		t.Errorf("rows: plan %v, score %v, level %v:\n%s", sawPlan, sawScore, sawLevel, out)
	}
}

func TestExportWarnings(t *testing.T) {
	l, err := ExportLayoutNamed("coded-entries")
	if err != nil {
		t.Fatal(err)
	}
	nhs, resources := record(t)
	plans, scores := kinds(resources)
	out, issues := export(t, l, nhs, append(resources, &fhir.Patient{}, &fhir.Goal{Description: &fhir.CodeableConcept{Text: fhir.NewString("Walk to the shops")}}))
	// Without codes for PAM, only the plans are written; each PAM score
	// and level is reported, as are the Patient and the uncoded Goal.
	if rows := strings.Count(out, "\r\n") - 1; rows != plans {
		t.Errorf("%d rows for %d plans:\n%s", rows, plans, out)
	}
	if len(issues) != scores+2 {
		t.Errorf("%d issues for %d PAM scores, a Patient and a Goal: %v", len(issues), scores, issues)
	}
	for _, is := range issues {
		if is.Severity != mappers.Warning {
			t.Errorf("%s", is)
		}
	}
}

func TestExportEncoding(t *testing.T) {
	l := &ExportLayout{Name: "x", Encoding: "windows-1252", SpacedNHSNumber: true, DateFormat: "dd-MMM-yyyy",
		Columns: ExportColumns{NHSNumber: "NHS", Date: "Date", Code: "Code", Text: "Text"}}
	var buf bytes.Buffer
	ew, err := NewEntryWriter(&buf, l)
	if err != nil {
		t.Fatal(err)
	}
	plan := &fhir.CarePlan{Created: fhir.NewDateTime("2026-03-12T10:00:00Z"), Title: fhir.NewString("Plan for René ☺"),
		Category: []*fhir.CodeableConcept{{Coding: []*fhir.Coding{{System: fhir.NewUri(mappers.SNOMEDSystem), Code: fhir.NewCode("734163000")}}}}}
	if _, err := ew.Write("9990000018", plan); err != nil {
		t.Fatal(err)
	}
	wrong := *plan
	wrong.Status = fhir.NewCode("entered-in-error")
	if issues, err := ew.Write("9990000018", &wrong); err != nil || len(issues) != 1 || issues[0].Severity != mappers.Information {
		t.Errorf("a plan entered in error: %v, %v", issues, err)
	}
	ew.Flush()
	want := "NHS,Date,Code,Text\r\n999 000 0018,12-Mar-2026,734163000,Plan for Ren\xe9 ?\r\n"
	if buf.String() != want {
		t.Errorf("output %q, want %q", buf.String(), want)
	}
}

func TestParseExportLayout(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"name: x\ncolumns: {nhsNumber: N, date: D}", "Columns.Code is required"},
		{"name: x\ncolumns: {nhsNumber: N, date: D, code: C}\ncodes: {pam-score: {system: 'http://snomed.info/sct', code: '1'}}", `"pam-score" is not system|code`},
		{"name: x\ncolumns: {nhsNumber: N, date: D, code: C, extra: E}", `unknown field "extra"`},
	} {
		if _, err := ParseExportLayout([]byte(tt.in)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseExportLayout(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}
