package csv

import (
	"bufio"
	"bytes"
	stdcsv "encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"

	"carefhir/fhir"
	"carefhir/fhir/lexical"
	"carefhir/mappers"
	"carefhir/profiles"
)

// DefaultBatch is the number of rows per Result when NewImporter is
// given 0.
const DefaultBatch = 500

// maxHeaderSearch bounds the rows read looking for the header: reports
// open with a few rows of metadata (the search's name, when it ran).
const maxHeaderSearch = 20

// Importer reads a report and yields its writes a batch of rows at a
// time.
type Importer struct {
	m      *Mapping
	r      *stdcsv.Reader
	batch  int
	cols   map[string]int // lower-cased header → index
	header []string
	fill   map[int]string // fill-down column → last value
	done   bool
	// pending are issues about the header, reported with the first batch.
	pending []mappers.Issue
	formats []string
	// cp1252: the mapping says the file is Windows-1252 and no byte
	// order mark says otherwise (see read).
	cp1252 bool

	// Today is the date, YYYY-MM-DD, against which dates of birth yet to
	// come are refused: NewImporter sets it to today's in the UK
	// (mappers.Today).
	Today string
}

// NewImporter reads up to the header row of the report in r: the first
// row, within the first 20, that has the NHS number column, and returns
// an error when there is none. Other columns the mapping names may be
// missing: the first Result warns of each. batch is the number of rows
// per Result (DefaultBatch when 0).
func NewImporter(r io.Reader, m *Mapping, batch int) (*Importer, error) {
	if batch <= 0 {
		batch = DefaultBatch
	}
	br, bom := lexical.SkipBOM(r)
	if b, err := br.Peek(2); err == nil && (b[0] == 0xff && b[1] == 0xfe || b[0] == 0xfe && b[1] == 0xff) {
		// Read as bytes, UTF-16 has a NUL between letters and no header
		// is ever found: say what the file is instead.
		return nil, errors.New("csv: the file is UTF-16 text (Excel's \"Unicode Text\"), not CSV: save the report as \"CSV UTF-8\" or \"CSV (Comma delimited)\"")
	}
	cr := stdcsv.NewReader(lineEnds{br})
	cr.FieldsPerRecord = -1
	cr.Comma, _ = comma(m.Delimiter) // checked with the mapping
	im := &Importer{m: m, r: cr, batch: batch, fill: map[int]string{}, formats: m.DateFormats, Today: mappers.Today(time.Now())}
	// A UTF-8 byte order mark says how the file is encoded, whatever the
	// mapping expects: Excel writes one when a report is saved as "CSV
	// UTF-8", and reading that as Windows-1252 would garble every
	// accented name.
	im.cp1252 = m.Encoding == "windows-1252" && !bom
	if len(im.formats) == 0 {
		im.formats = DefaultDateFormats
	}
	want := key(m.Patient.NHSNumber)
	// The rows above the header are the report's metadata, written by
	// hand (a search named Patients with "HbA1c > 58"): a quote in them
	// is read as it is, rather than refusing a report whose rows are
	// well formed. The rows from the header on are read strictly.
	cr.LazyQuotes = true
	for i := 0; ; i++ {
		row, err := im.read()
		if err == io.EOF || i >= maxHeaderSearch {
			return nil, fmt.Errorf("csv: no header row with the column %q in the first %d rows", m.Patient.NHSNumber, maxHeaderSearch)
		}
		if err != nil {
			return nil, fmt.Errorf("csv: %w", err)
		}
		cols := map[string]int{}
		for j, h := range row {
			if _, dup := cols[key(h)]; !dup && key(h) != "" {
				cols[key(h)] = j
			}
		}
		if _, ok := cols[want]; ok {
			im.cols, im.header = cols, row
			break
		}
	}
	cr.LazyQuotes = false
	line, _ := cr.FieldPos(0)
	headed := map[string]int{} // how many columns have each header
	for _, h := range im.header {
		headed[key(h)]++
	}
	seen := map[string]bool{}
	for _, c := range m.columns() {
		if seen[key(c)] {
			continue
		}
		seen[key(c)] = true
		switch i, ok := im.cols[key(c)]; {
		case !ok:
			im.pending = append(im.pending, mappers.Warnf(fmt.Sprintf("line %d", line), "no column %q, which the mapping %q names: its values are not imported", c, m.Name))
		case headed[key(c)] > 1:
			// A report that repeats a header (a "Date" after each value)
			// cannot say which the mapping means.
			im.pending = append(im.pending, mappers.Warnf(fmt.Sprintf("line %d, column %s", line, c), "%d columns are headed %q: the first, column %d, is read and the others are not imported; name them apart in the report or the mapping", headed[key(c)], c, i+1))
		}
	}
	for _, c := range m.FillDown {
		if i, ok := im.cols[key(c)]; ok {
			im.fill[i] = ""
		}
	}
	return im, nil
}

func key(h string) string { return strings.ToLower(strings.TrimSpace(h)) }

// read reads the next row. In a file the mapping says is Windows-1252,
// a cell that is UTF-8 text is read as UTF-8, and any other cell as
// Windows-1252: a report opened and saved again by a spreadsheet
// (Google Sheets, LibreOffice) is UTF-8 without a byte order mark, and
// reading it as Windows-1252 would garble every accented name (Zoë as
// ZoÃ«). A Windows-1252 letter outside ASCII is not UTF-8 unless it is
// followed by the right marks (Ã then ©), which no name or address has.
// The delimiter, quotes and line ends are ASCII in both, so the cells
// are cut the same either way.
func (im *Importer) read() ([]string, error) {
	row, err := im.r.Read()
	if !im.cp1252 {
		return row, err
	}
	for i, cell := range row {
		if !utf8.ValidString(cell) {
			row[i], _ = charmap.Windows1252.NewDecoder().String(cell)
		}
	}
	return row, err
}

// lineEnds reads r with each carriage return that does not start a CRLF
// made a line feed. Excel for Mac saves "CSV (Macintosh)" with CR alone
// between rows, which encoding/csv does not take for a line end: the
// whole file would be one row, the header, and its rows would be read as
// header cells and imported as nothing.
type lineEnds struct{ r *bufio.Reader }

func (l lineEnds) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	for i := bytes.IndexByte(p[:n], '\r'); i >= 0; {
		next := byte(0)
		if i+1 < n {
			next = p[i+1]
		} else if b, perr := l.r.Peek(1); perr == nil {
			next = b[0]
		}
		if next != '\n' {
			p[i] = '\n'
		}
		j := bytes.IndexByte(p[i+1:n], '\r')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return n, err
}

// columns lists every column the mapping names.
func (m *Mapping) columns() []string {
	p := m.Patient
	cols := append([]string{p.NHSNumber, p.Title, p.Given, p.Middle, p.Family, p.BirthDate, p.Sex, p.Postcode, p.Phone, p.Mobile, p.Email, p.Practice, p.PracticeName, p.UsualGP, p.UsualGPCode}, p.AddressLines...)
	cols = append(cols, m.FillDown...)
	for _, o := range m.Observations {
		cols = append(cols, o.Column, o.DateColumn)
	}
	for _, c := range append(append([]CodedColumn(nil), m.Conditions...), m.Flags...) {
		cols = append(cols, c.Column, c.DateColumn)
	}
	out := cols[:0]
	for _, c := range cols {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

// Next returns the writes of the next batch of rows, and io.EOF after the
// last. Each finding names its line and column. A row with an error makes
// the batch's Result Failed, with no Bundle: a host importing all or
// nothing stops there, and one that checks a file before importing it
// reads it through once for the issues alone.
func (im *Importer) Next() (*mappers.Result, error) {
	if im.done {
		return nil, io.EOF
	}
	tx := mappers.NewTransaction()
	res := &mappers.Result{Issues: im.pending}
	im.pending = nil
	rows := 0
	for rows < im.batch {
		row, err := im.read()
		if err == io.EOF {
			im.done = true
			break
		}
		if err != nil {
			var pe *stdcsv.ParseError
			if errors.As(err, &pe) {
				// The row is named by the line it starts on: a quote left
				// open there reads every later line into its cell, and
				// the error is met at the end of the file. The cells read
				// before the one at fault come with the error, so their
				// count is its column.
				res.Issues = append(res.Issues, mappers.Errorf(fmt.Sprintf("line %d, column %s", pe.StartLine, im.columnName(len(row))), "%v, met at line %d, byte %d", pe.Err, pe.Line, pe.Column))
				rows++
				continue
			}
			return nil, fmt.Errorf("csv: %w", err)
		}
		rows++
		line, _ := im.r.FieldPos(0)
		im.row(tx, res, row, line)
	}
	if rows == 0 && len(res.Issues) == 0 {
		return nil, io.EOF
	}
	if tx.Len() > 0 && !res.Failed() {
		res.Bundle, res.Merges = tx.Bundle(), tx.Merges()
	}
	return res, nil
}

// rowReader reads the cells of one row.
type rowReader struct {
	im     *Importer
	row    []string
	line   int
	issues []mappers.Issue
}

func (rr *rowReader) get(col string) string {
	if col == "" {
		return ""
	}
	i, ok := rr.im.cols[key(col)]
	if !ok || i >= len(rr.row) {
		return ""
	}
	return strings.TrimSpace(rr.row[i])
}

func (rr *rowReader) at(col string) string {
	return fmt.Sprintf("line %d, column %s", rr.line, col)
}

func (rr *rowReader) errorf(col, format string, args ...any) {
	rr.issues = append(rr.issues, mappers.Errorf(rr.at(col), format, args...))
}

func (rr *rowReader) warnf(col, format string, args ...any) {
	rr.issues = append(rr.issues, mappers.Warnf(rr.at(col), format, args...))
}

func (rr *rowReader) failed() bool {
	return (&mappers.Result{Issues: rr.issues}).Failed()
}

func (rr *rowReader) date(col string) (string, bool) {
	v := rr.get(col)
	if v == "" {
		return "", false
	}
	d, ok := parseDate(v, rr.im.formats)
	if !ok {
		rr.errorf(col, "%q is not a date in a format of the mapping (%s)", v, strings.Join(rr.im.formats, ", "))
	}
	return d, ok
}

// row maps one row into tx.
func (im *Importer) row(tx *mappers.Transaction, res *mappers.Result, row []string, line int) {
	blank := true
	for i, v := range row {
		v = strings.TrimSpace(v)
		if _, ok := im.fill[i]; ok {
			if v == "" {
				row[i] = im.fill[i]
			} else {
				im.fill[i] = v
			}
		}
		if v != "" {
			blank = false
		}
		if !utf8.ValidString(v) {
			res.Issues = append(res.Issues, mappers.Errorf(fmt.Sprintf("line %d, column %s", line, im.columnName(i)), "not UTF-8 text: set encoding: windows-1252 in the mapping if the file came from EMIS or SystmOne"))
			return
		}
		if j := strings.IndexFunc(v, mappers.NotText); j >= 0 {
			res.Issues = append(res.Issues, mappers.Errorf(fmt.Sprintf("line %d, column %s", line, im.columnName(i)), "character %U, which FHIR text cannot hold", []rune(v[j:])[0]))
			return
		}
	}
	if blank {
		return
	}
	// A value past the header's last column is most often a name or an
	// address holding the delimiter unquoted, which has moved every cell
	// after it into the next column: importing the row would store its
	// values under the wrong items.
	for i := len(im.header); i < len(row); i++ {
		if strings.TrimSpace(row[i]) != "" {
			res.Issues = append(res.Issues, mappers.Errorf(fmt.Sprintf("line %d, column %d", line, i+1),
				"a value past the %d columns of the header: a cell holding the delimiter must be quoted, else the cells after it are read as the next columns'", len(im.header)))
			return
		}
	}
	rr := &rowReader{im: im, row: row, line: line}
	u := rr.patient(tx)
	if u != nil && !rr.failed() {
		nhs := u.p.Identifier[0].Value.Get()
		if tx.Has("Patient", mappers.NHSNumberSystem, nhs) {
			rr.warnf(im.m.Patient.NHSNumber, "NHS number %s is on an earlier row too: this row's values replace that row's", nhs)
		}
		ref := mappers.Ref(tx.PutPart(u.p, mappers.NHSNumberSystem, nhs, u.merge))
		rr.observations(tx, ref, nhs)
		rr.coded(tx, ref, nhs)
	}
	res.Issues = append(res.Issues, rr.issues...)
}

func (im *Importer) columnName(i int) string {
	if i < len(im.header) {
		return im.header[i]
	}
	return fmt.Sprint(i + 1)
}

// patient maps the patient columns of the row: the Patient created when
// none has its NHS number, and the update of one that has.
func (rr *rowReader) patient(tx *mappers.Transaction) *rowUpdate {
	c := rr.im.m.Patient
	raw := rr.get(c.NHSNumber)
	nhs := mappers.NormalNHSNumber(raw)
	switch {
	case raw == "":
		rr.errorf(c.NHSNumber, "no NHS number: records are matched on it")
		return nil
	case !profiles.ValidNHSNumber(nhs):
		rr.errorf(c.NHSNumber, "%q is not a valid NHS number: it must be 10 digits with a correct Modulus 11 check digit", raw)
		return nil
	}
	p := &fhir.Patient{Meta: mappers.Meta(mappers.UKCorePatient), Identifier: []*fhir.Identifier{mappers.NHSNumber(nhs, "")}}
	u := &rowUpdate{p: p, title: rr.get(c.Title), first: rr.get(c.Given), middle: rr.get(c.Middle), family: rr.get(c.Family)}
	if u.family != "" || u.first != "" {
		p.Name = []*fhir.HumanName{{Use: fhir.NewCode("usual"), Family: mappers.String(u.family), Given: mappers.Strings(u.first, u.middle), Prefix: mappers.Strings(u.title)}}
	}
	if d, ok := rr.date(c.BirthDate); ok {
		if d > rr.im.Today {
			rr.errorf(c.BirthDate, "date of birth %s is in the future", d)
		} else {
			p.BirthDate = fhir.NewDate(d)
		}
	}
	if s := rr.get(c.Sex); s != "" {
		if g, ok := sexes[strings.ToLower(s)]; ok {
			p.Gender = fhir.NewCode(g)
		} else {
			rr.warnf(c.Sex, "sex %q is not one this importer knows (M, F, I, U, 1, 2, 9…): left out", s)
		}
	}
	ad := &fhir.Address{Use: fhir.NewCode("home")}
	for _, l := range c.AddressLines {
		if v := rr.get(l); v != "" {
			ad.Line = append(ad.Line, fhir.NewString(v))
		}
	}
	if v := rr.get(c.Postcode); v != "" {
		if pc, ok := normalPostcode(v); ok {
			ad.PostalCode = fhir.NewString(pc)
		} else {
			rr.warnf(c.Postcode, "%q is not a UK postcode: left out", v)
		}
	}
	if ad.Line != nil || ad.PostalCode != nil {
		p.Address = []*fhir.Address{ad}
	}
	for _, t := range []struct{ col, system, use string }{{c.Phone, "phone", "home"}, {c.Mobile, "phone", "mobile"}, {c.Email, "email", "home"}} {
		if v := rr.get(t.col); v != "" {
			p.Telecom = append(p.Telecom, &fhir.ContactPoint{System: fhir.NewCode(t.system), Value: fhir.NewString(v), Use: fhir.NewCode(t.use)})
		}
	}
	if ods := strings.ToUpper(rr.get(c.Practice)); ods != "" {
		if mappers.ODSCode(ods) {
			url := tx.Ensure(mappers.Practice(ods, rr.get(c.PracticeName)), mappers.ODSSystem, ods)
			u.practice, u.ods = mappers.Ref(url), ods
			p.GeneralPractitioner = append(p.GeneralPractitioner, u.practice)
		} else {
			rr.warnf(c.Practice, "%q is not an ODS code: the practice is left out", ods)
		}
	}
	gpName := rr.get(c.UsualGP)
	code := strings.ToUpper(rr.get(c.UsualGPCode))
	system := mappers.PractitionerSystem(code)
	if system == "" && code != "" {
		rr.warnf(c.UsualGPCode, "%q is neither a GMP nor a GMC number: the GP is kept by name only", code)
	}
	switch {
	case system != "":
		var name *fhir.HumanName
		if gpName != "" {
			name = &fhir.HumanName{Text: fhir.NewString(gpName)}
		}
		url := tx.Ensure(mappers.Practitioner(system, code, name), system, code)
		u.gp = mappers.Ref(url)
		u.gpIdentifier = &fhir.Identifier{System: fhir.NewUri(system), Value: fhir.NewString(code)}
	case gpName != "":
		u.gp = &fhir.Reference{Type: fhir.NewUri("Practitioner"), Display: fhir.NewString(gpName)}
	}
	if u.gp != nil {
		p.GeneralPractitioner = append(p.GeneralPractitioner, u.gp)
	}
	return u
}

// observations maps the observation columns of the row. An observation is
// known by patient, code and date, so importing it again updates it.
func (rr *rowReader) observations(tx *mappers.Transaction, subject *fhir.Reference, nhs string) {
	for _, o := range rr.im.m.Observations {
		v := rr.get(o.Column)
		if v == "" {
			continue
		}
		date, ok := rr.date(o.DateColumn)
		if !ok {
			if rr.get(o.DateColumn) == "" {
				rr.warnf(o.DateColumn, "no date for the value of %s: left out", o.Column)
			}
			continue
		}
		ident, id := mappers.StableIdentifier("Observation", nhs, o.Code.System+"|"+o.Code.Code, date)
		obs := &fhir.Observation{
			Meta:              mappers.Meta(mappers.UKCoreObservation),
			Identifier:        []*fhir.Identifier{ident},
			Status:            fhir.NewCode("final"),
			Code:              concept(o.Code),
			Subject:           subject,
			EffectiveDateTime: fhir.NewDateTime(date),
		}
		if decimal.MatchString(v) {
			q := &fhir.Quantity{Value: fhir.NewDecimal(v), Unit: mappers.String(o.Unit)}
			if o.UnitCode != "" {
				q.System, q.Code = fhir.NewUri("http://unitsofmeasure.org"), fhir.NewCode(o.UnitCode)
			}
			obs.ValueQuantity = q
		} else {
			obs.ValueString = fhir.NewString(v)
		}
		tx.Put(obs, mappers.URISystem, id)
	}
}

// coded maps the condition and flag columns of the row. Each is known by
// patient and code, so importing it again updates it.
func (rr *rowReader) coded(tx *mappers.Transaction, subject *fhir.Reference, nhs string) {
	for _, c := range rr.im.m.Conditions {
		if date, ok := rr.present(c); ok {
			ident, id := mappers.StableIdentifier("Condition", nhs, c.Code.System+"|"+c.Code.Code)
			cond := &fhir.Condition{
				Meta:               mappers.Meta(mappers.UKCoreCondition),
				Identifier:         []*fhir.Identifier{ident},
				ClinicalStatus:     coding("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"),
				VerificationStatus: coding("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed"),
				Category:           []*fhir.CodeableConcept{coding("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item", "Problem List Item")},
				Code:               concept(c.Code),
				Subject:            subject,
			}
			if date != "" {
				cond.OnsetDateTime = fhir.NewDateTime(date)
			}
			tx.Put(cond, mappers.URISystem, id)
		}
	}
	for _, c := range rr.im.m.Flags {
		if date, ok := rr.present(c); ok {
			ident, id := mappers.StableIdentifier("Flag", nhs, c.Code.System+"|"+c.Code.Code)
			flag := &fhir.Flag{Meta: mappers.Meta(mappers.UKCoreFlag), Identifier: []*fhir.Identifier{ident}, Status: fhir.NewCode("active"), Code: concept(c.Code), Subject: subject}
			if date != "" {
				flag.Period = &fhir.Period{Start: fhir.NewDateTime(date)}
			}
			tx.Put(flag, mappers.URISystem, id)
		}
	}
}

// present reads a coded column: whether it records the item, and its
// date if any.
func (rr *rowReader) present(c CodedColumn) (string, bool) {
	v := rr.get(c.Column)
	if no(v) {
		return "", false
	}
	if c.DateColumn != "" {
		if rr.get(c.DateColumn) == "" {
			return "", true
		}
		d, ok := rr.date(c.DateColumn)
		return d, ok
	}
	if d, ok := parseDate(v, rr.im.formats); ok {
		return d, true
	}
	return "", true
}

func concept(c Code) *fhir.CodeableConcept {
	cd := &fhir.Coding{System: fhir.NewUri(c.System), Code: fhir.NewCode(c.Code), Display: mappers.String(c.Display)}
	return &fhir.CodeableConcept{Coding: []*fhir.Coding{cd}}
}

func coding(system, code, display string) *fhir.CodeableConcept {
	return concept(Code{System: system, Code: code, Display: display})
}
