package csv

import (
	"embed"
	stdcsv "encoding/csv"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"golang.org/x/text/encoding/charmap"

	"carefhir/fhir"
	"carefhir/fhir/lexical"
	"carefhir/mappers"
)

// ExportLayout says how to write coded entries (one row per coded item:
// a PAM score, a PCSP agreed) for bulk upload to a GP system.
type ExportLayout struct {
	Name string `json:"name" validate:"required"`
	// Delimiter is the field separator, one character; "," when empty.
	Delimiter string `json:"delimiter" validate:"omitempty,delimiter"`
	// Encoding is utf-8 (the default) or windows-1252.
	Encoding string `json:"encoding" validate:"omitempty,oneof=utf-8 windows-1252"`
	// DateFormat is the layout of the date column; dd/MM/yyyy when empty.
	DateFormat string `json:"dateFormat" validate:"omitempty,oneof=dd-MMM-yyyy dd/MM/yyyy yyyy-MM-dd 'dd MMM yyyy' yyyyMMdd"`
	// SpacedNHSNumber writes NHS numbers as 999 999 9999.
	SpacedNHSNumber bool `json:"spacedNhsNumber"`
	// Columns are the header texts, in the order written; Value, Unit and
	// Text may be left out.
	Columns ExportColumns `json:"columns" validate:"required"`
	// Codes give the SNOMED CT concept to write for a coding that is not
	// SNOMED CT, keyed "system|code". An entry coded in SNOMED CT already
	// is written with its own code.
	Codes map[string]Code `json:"codes" validate:"dive"`
}

// ExportColumns are the header texts of the columns written.
type ExportColumns struct {
	NHSNumber string `json:"nhsNumber" validate:"required"`
	Date      string `json:"date" validate:"required"`
	Code      string `json:"code" validate:"required"`
	Value     string `json:"value"`
	Unit      string `json:"unit"`
	Text      string `json:"text"`
}

//go:embed exports/*.yaml
var exports embed.FS

// ExportLayoutNamed returns a built-in export layout by name: the file
// name under exports/ without .yaml, such as coded-entries.
func ExportLayoutNamed(name string) (*ExportLayout, error) {
	data, err := exports.ReadFile("exports/" + name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("csv: no built-in export layout %q", name)
	}
	return ParseExportLayout(data)
}

// ParseExportLayout reads an export layout file, YAML or JSON, and checks
// it as ParseMapping does.
func ParseExportLayout(data []byte) (*ExportLayout, error) {
	l := &ExportLayout{}
	if err := decodeStrict(data, l); err != nil {
		return nil, fmt.Errorf("csv: export layout: %w", err)
	}
	if err := checkStruct(l, "ExportLayout."); err != nil {
		return nil, fmt.Errorf("csv: export layout: %w", err)
	}
	for k := range l.Codes {
		if !strings.Contains(k, "|") {
			return nil, fmt.Errorf("csv: export layout: codes key %q is not system|code", k)
		}
	}
	return l, nil
}

// EntryWriter writes coded entries as CSV rows: NHS number, date, SNOMED
// CT code, value, unit and free text.
type EntryWriter struct {
	l    *ExportLayout
	w    *stdcsv.Writer
	cols []string
	date string // Go layout
}

// NewEntryWriter writes the header row of l to w and returns a writer of
// the rows.
func NewEntryWriter(w io.Writer, l *ExportLayout) (*EntryWriter, error) {
	if l.Encoding == "windows-1252" {
		w = charmap.Windows1252.NewEncoder().Writer(w)
	}
	ew := &EntryWriter{l: l, w: stdcsv.NewWriter(w), date: writeDateLayouts[l.DateFormat]}
	ew.w.UseCRLF = true
	ew.w.Comma, _ = comma(l.Delimiter) // checked with the layout
	if ew.date == "" {
		ew.date = "02/01/2006"
	}
	c := l.Columns
	for _, h := range []string{c.NHSNumber, c.Date, c.Code, c.Value, c.Unit, c.Text} {
		if h != "" {
			ew.cols = append(ew.cols, h)
		}
	}
	if err := ew.w.Write(ew.cols); err != nil {
		return nil, fmt.Errorf("csv: %w", err)
	}
	return ew, nil
}

// entry is one row before formatting.
type entry struct {
	date, code, value, unit, text string
}

// Write writes the rows of one resource of the patient with NHS number
// nhs: an Observation (and each of its components) with its value, a
// CarePlan (a PCSP, by its category) or a Goal. What cannot be written —
// a coding with no SNOMED CT concept in the layout, a resource with no
// date — is returned as a Warning, with the resource's path. An entry
// entered in error (or an Observation cancelled) is not written.
func (ew *EntryWriter) Write(nhs string, r fhir.Resource) ([]mappers.Issue, error) {
	path := r.ResourceType()
	if id := r.GetID(); id != "" {
		path += "/" + id
	}
	var rows []entry
	var issues []mappers.Issue
	add := func(at string, date string, cc *fhir.CodeableConcept, value, unit, text string) {
		code, ok := ew.snomed(cc)
		if !ok {
			issues = append(issues, mappers.Warnf(path+at, "no SNOMED CT code for %s: set one in the layout's codes to export it", codings(cc)))
			return
		}
		if date == "" {
			issues = append(issues, mappers.Warnf(path+at, "no date: not exported"))
			return
		}
		rows = append(rows, entry{date: date, code: code, value: value, unit: unit, text: text})
	}
	if status := exportStatus(r); status != "" {
		return []mappers.Issue{{Severity: mappers.Information, Path: path + ".status", Message: "status " + status + ": not exported"}}, nil
	}
	switch res := r.(type) {
	case *fhir.Observation:
		date := res.EffectiveDateTime.Get()
		if date == "" && res.EffectivePeriod != nil {
			date = res.EffectivePeriod.Start.Get()
		}
		if date == "" {
			date = res.Issued.Get()
		}
		text := ""
		if len(res.Note) > 0 {
			text = res.Note[0].Text.Get()
		}
		v, u := observationValue(res.ValueQuantity, res.ValueInteger, res.ValueString, res.ValueCodeableConcept)
		if v != "" || len(res.Component) == 0 {
			add(".code", date, res.Code, v, u, text)
		}
		for i, c := range res.Component {
			v, u := observationValue(c.ValueQuantity, c.ValueInteger, c.ValueString, c.ValueCodeableConcept)
			add(fmt.Sprintf(".component[%d].code", i), date, c.Code, v, u, "")
		}
	case *fhir.CarePlan:
		date := res.Created.Get()
		if date == "" && res.Period != nil {
			date = res.Period.Start.Get()
		}
		text := res.Title.Get()
		if len(res.Category) == 0 {
			issues = append(issues, mappers.Warnf(path+".category", "no category to code the plan with: not exported"))
		}
		// A plan is one entry: the first category coded in SNOMED CT (or
		// mapped by the layout) codes it; the others are local codings
		// of the same plan.
		coded := slices.IndexFunc(res.Category, func(c *fhir.CodeableConcept) bool { _, ok := ew.snomed(c); return ok })
		switch {
		case coded >= 0:
			add(fmt.Sprintf(".category[%d]", coded), date, res.Category[coded], "", "", text)
		case len(res.Category) > 0:
			add(".category[0]", date, res.Category[0], "", "", text)
		}
	case *fhir.Goal:
		add(".description", res.StartDate.Get(), res.Description, "", "", res.Description.Text.Get())
	default:
		issues = append(issues, mappers.Warnf(path, "a %s is not a coded entry: not exported", r.ResourceType()))
	}
	for _, e := range rows {
		if err := ew.w.Write(ew.format(nhs, e)); err != nil {
			return issues, fmt.Errorf("csv: %w", err)
		}
	}
	return issues, nil
}

// exportStatus returns the status of an entry that must not go to a GP
// record (entered in error, or an observation cancelled), or "".
func exportStatus(r fhir.Resource) string {
	var status string
	switch res := r.(type) {
	case *fhir.Observation:
		status = res.Status.Get()
	case *fhir.CarePlan:
		status = res.Status.Get()
	case *fhir.Goal:
		status = res.LifecycleStatus.Get()
	}
	if status == "entered-in-error" || status == "cancelled" {
		return status
	}
	return ""
}

// Flush writes what is buffered and reports a write error.
func (ew *EntryWriter) Flush() error {
	ew.w.Flush()
	if err := ew.w.Error(); err != nil {
		return fmt.Errorf("csv: %w", err)
	}
	return nil
}

func (ew *EntryWriter) format(nhs string, e entry) []string {
	if ew.l.SpacedNHSNumber && len(nhs) == 10 {
		nhs = nhs[:3] + " " + nhs[3:6] + " " + nhs[6:]
	}
	date := e.date
	if t, err := time.Parse(time.RFC3339, date); err == nil {
		// A time is recorded on the day it fell on in the UK, where
		// the GP record is kept: 23:30 UTC on a summer evening is the
		// next day's 00:30.
		date = mappers.Today(t)
	}
	if t, err := time.Parse("2006-01-02", clipDate(date)); err == nil {
		date = t.Format(ew.date)
	}
	c := ew.l.Columns
	var row []string
	for _, col := range []struct{ name, v string }{{c.NHSNumber, nhs}, {c.Date, date}, {c.Code, e.code}, {c.Value, e.value}, {c.Unit, e.unit}, {c.Text, e.text}} {
		if col.name != "" {
			row = append(row, inert(ew.text(col.v)))
		}
	}
	return row
}

// text makes s writable in the layout's encoding: a character
// Windows-1252 lacks becomes a question mark rather than failing the
// export.
func (ew *EntryWriter) text(s string) string {
	if ew.l.Encoding != "windows-1252" {
		return s
	}
	return strings.Map(func(r rune) rune {
		if _, ok := charmap.Windows1252.EncodeRune(r); !ok {
			return '?'
		}
		return r
	}, s)
}

// inert returns a cell a spreadsheet opening the file shows as the text
// it is: one starting with a character that makes a formula (=, +, -, @,
// or a tab or carriage return before one) gets a leading apostrophe, as
// OWASP advises against CSV injection, since free text (a goal in the
// person's own words, a note) is written as it was given. A number, a
// negative value, is left as it is.
func inert(cell string) string {
	if cell == "" || !strings.ContainsRune("=+-@\t\r", rune(cell[0])) || lexical.ValidDecimal(cell) {
		return cell
	}
	return "'" + cell
}

// clipDate keeps the date of a FHIR dateTime; a partial date (a year, a
// month) is written as it is.
func clipDate(s string) string {
	if len(s) >= 10 {
		return s[:10]
	}
	return s
}

// snomed returns the SNOMED CT code to write for cc: its own SNOMED CT
// coding, or the layout's concept for one of its codings.
func (ew *EntryWriter) snomed(cc *fhir.CodeableConcept) (string, bool) {
	if cc == nil {
		return "", false
	}
	for _, c := range cc.Coding {
		if c.System.Get() == mappers.SNOMEDSystem && c.Code.Get() != "" {
			return c.Code.Get(), true
		}
	}
	for _, c := range cc.Coding {
		if m, ok := ew.l.Codes[c.System.Get()+"|"+c.Code.Get()]; ok {
			return m.Code, true
		}
	}
	return "", false
}

func codings(cc *fhir.CodeableConcept) string {
	if cc == nil {
		return "an entry with no code"
	}
	var s []string
	for _, c := range cc.Coding {
		s = append(s, c.System.Get()+"|"+c.Code.Get())
	}
	if len(s) == 0 {
		return fmt.Sprintf("%q (text only)", cc.Text.Get())
	}
	return strings.Join(s, ", ")
}

func observationValue(q *fhir.Quantity, i *fhir.Integer, s *fhir.String, cc *fhir.CodeableConcept) (value, unit string) {
	switch {
	case q != nil:
		unit = q.Unit.Get()
		if unit == "" {
			unit = q.Code.Get()
		}
		return q.Value.Get(), unit
	case i != nil:
		return fmt.Sprint(i.Get()), ""
	case s != nil:
		return s.Get(), ""
	case cc != nil:
		if cc.Text != nil {
			return cc.Text.Get(), ""
		}
		for _, c := range cc.Coding {
			if c.Display != nil {
				return c.Display.Get(), ""
			}
		}
	}
	return "", ""
}
