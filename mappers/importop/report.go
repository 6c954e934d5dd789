package importop

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"carefhir/mappers"
)

// Report counts what an import did and keeps a record of each resource
// it wrote or found already there, and each warning. The records and
// warnings wait in temporary files, not in memory, so the report of an
// import of 100,000 rows costs no more memory than that of one row; Close
// removes them.
type Report struct {
	Created, Updated, Unchanged int
	records, issues             spool
}

// Outcomes of a record.
const (
	created   = "created"
	updated   = "updated"
	unchanged = "unchanged"
)

// record adds the record of a resource: its outcome (created, updated or
// unchanged) and its reference (Type/id).
func (rep *Report) record(outcome, reference string) error {
	switch outcome {
	case created:
		rep.Created++
	case updated:
		rep.Updated++
	default:
		rep.Unchanged++
	}
	return rep.records.add(`{"name":"record","part":[{"name":"outcome","valueCode":`, quote(outcome),
		`},{"name":"resource","valueReference":{"reference":`, quote(reference), `}}]}`)
}

// warn adds the issues that are not errors: what was imported but not
// carried whole.
func (rep *Report) warn(issues []mappers.Issue) error {
	for _, is := range issues {
		if is.Severity == mappers.Error {
			continue
		}
		err := rep.issues.add(`{"name":"issue","part":[{"name":"severity","valueCode":`, quote(string(is.Severity)),
			`},{"name":"location","valueString":`, quote(is.Path), `},{"name":"message","valueString":`, quote(is.Message), `}]}`)
		if err != nil {
			return err
		}
	}
	return nil
}

// Stream returns the report as a Parameters resource in JSON, read from
// the temporary files: the counts, then a record part per resource, then
// the warnings. Closing it removes the files.
func (rep *Report) Stream() (io.ReadCloser, error) {
	var head bytes.Buffer
	head.WriteString(`{"resourceType":"Parameters","parameter":[`)
	for i, c := range []struct {
		name string
		n    int
	}{{created, rep.Created}, {updated, rep.Updated}, {unchanged, rep.Unchanged}} {
		if i > 0 {
			head.WriteByte(',')
		}
		fmt.Fprintf(&head, `{"name":%q,"valueInteger":%d}`, c.name, c.n)
	}
	parts := []io.Reader{&head}
	for _, s := range []*spool{&rep.records, &rep.issues} {
		r, err := s.reader()
		if err != nil {
			rep.Close()
			return nil, err
		}
		if r != nil {
			parts = append(parts, bytes.NewReader([]byte{','}), r)
		}
	}
	parts = append(parts, bytes.NewReader([]byte("]}")))
	return &reportReader{Reader: io.MultiReader(parts...), rep: rep}, nil
}

// Close removes the report's temporary files.
func (rep *Report) Close() error {
	return errors.Join(rep.records.close(), rep.issues.close())
}

type reportReader struct {
	io.Reader
	rep *Report
}

func (r *reportReader) Close() error { return r.rep.Close() }

// spool keeps comma-separated JSON values in a temporary file, made at
// the first value.
type spool struct {
	f *os.File
	w *bufio.Writer
}

func (s *spool) add(parts ...string) error {
	if s.f == nil {
		f, err := os.CreateTemp("", "carefhir-import-*.json")
		if err != nil {
			return fmt.Errorf("importop: a file for the report: %w", err)
		}
		s.f, s.w = f, bufio.NewWriter(f)
	} else {
		s.w.WriteByte(',')
	}
	for _, p := range parts {
		s.w.WriteString(p)
	}
	return nil
}

// reader returns the values written, from the start; nil when there are
// none.
func (s *spool) reader() (io.Reader, error) {
	if s.f == nil {
		return nil, nil
	}
	if err := s.w.Flush(); err != nil {
		return nil, fmt.Errorf("importop: writing the report: %w", err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("importop: reading the report: %w", err)
	}
	return bufio.NewReader(s.f), nil
}

func (s *spool) close() error {
	if s.f == nil {
		return nil
	}
	s.f.Close()
	err := os.Remove(s.f.Name())
	s.f, s.w = nil, nil
	return err
}

// quote returns s as a JSON string.
func quote(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		return strconv.Quote(s)
	}
	return string(b)
}
