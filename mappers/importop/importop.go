// Package importop serves the mappers as FHIR operations: $import of a GP
// system's payload (GP Connect, PDS, CSV, HL7 v2) as one transaction, and
// $export-gp of what care coordination holds back to GP systems. It sees
// only the operation Store, so every read and write is decided by the
// access layer, validated and audited as any client's.
package importop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"carefhir/fhir"
	"carefhir/mappers"
	mcsv "carefhir/mappers/csv"
	"carefhir/mappers/gpconnect"
	"carefhir/mappers/hl7v2"
	"carefhir/mappers/pds"
	"carefhir/operation"
)

// HL7v2MediaType is the media type of HL7 v2 messages in ER7 form.
const HL7v2MediaType = "x-application/hl7-v2+er7"

// Formats are the formats $import reads.
var Formats = []string{"gpconnect", "pds", "csv", "hl7v2"}

// csvBatch is how many CSV rows make one Bundle of the import's
// transaction: the file is read a batch at a time, never whole.
const csvBatch = 200

// Importer imports payloads of the formats the mappers read.
type Importer struct {
	// Now stamps HL7 v2 acknowledgements; nil means time.Now.
	Now func() time.Time

	gpcOnce sync.Once
	gpc     *gpconnect.Importer
	gpcErr  error
}

func (im *Importer) now() time.Time {
	if im.Now != nil {
		return im.Now()
	}
	return time.Now()
}

// Operations returns $import and the $export-gp operations, served by
// im.
func (im *Importer) Operations() []operation.Operation {
	return []operation.Operation{
		{
			Name:       "import",
			Definition: "http://carefhir.dev/fhir/OperationDefinition/import",
			Levels:     operation.System,
			RawBody:    true,
			Invoke:     im.invokeImport,
		},
		{
			Name:       "export-gp",
			Definition: "http://carefhir.dev/fhir/OperationDefinition/export-gp",
			Levels:     operation.Instance,
			Types:      []string{"Patient", "Appointment"},
			Idempotent: true,
			Invoke:     invokeExport,
		},
	}
}

// Report counts what an import did, and lists each record written.
type Report struct {
	Created, Updated, Unchanged int
	Records                     []Record
	Issues                      []mappers.Issue
}

// Record is one resource an import wrote or found already there.
type Record struct {
	Outcome   string // created, updated or unchanged
	Reference string // Type/id
}

func (im *Importer) invokeImport(ctx context.Context, inv *operation.Invocation) (*operation.Result, error) {
	format, err := inv.Text("format")
	if err != nil {
		return nil, err
	}
	if len(inv.Body) == 0 {
		return nil, operation.Errorf(http.StatusBadRequest, "required", "", "$import takes the payload as the request body, which is empty")
	}
	switch format {
	case "hl7v2":
		return im.importHL7v2(ctx, inv)
	case "csv":
		mapping, err := inv.Text("mapping")
		if err != nil {
			return nil, err
		}
		m, err := csvMapping(mapping)
		if err != nil {
			return nil, err
		}
		rep, err := ImportCSV(ctx, inv.Store, strings.NewReader(string(inv.Body)), m, nil)
		if err != nil {
			return nil, err
		}
		return &operation.Result{Resource: rep.Parameters()}, nil
	case "gpconnect", "pds":
		r, err := im.Map(format, inv.Body)
		if err != nil {
			return nil, err
		}
		rep, err := Apply(ctx, inv.Store, r)
		if err != nil {
			return nil, err
		}
		return &operation.Result{Resource: rep.Parameters()}, nil
	}
	return nil, operation.Errorf(http.StatusBadRequest, "value", "format", "format %q is not one $import reads: use one of %s", format, strings.Join(Formats, ", "))
}

// Map maps a whole payload of format gpconnect or pds.
func (im *Importer) Map(format string, payload []byte) (mappers.Result, error) {
	switch format {
	case "pds":
		return pds.Import(payload), nil
	case "gpconnect":
		im.gpcOnce.Do(func() { im.gpc, im.gpcErr = gpconnect.NewImporter() })
		if im.gpcErr != nil {
			return mappers.Result{}, fmt.Errorf("importop: %w", im.gpcErr)
		}
		return im.gpc.Import(payload), nil
	}
	return mappers.Result{}, operation.Errorf(http.StatusBadRequest, "value", "format", "format %q is not a whole-payload format", format)
}

// Apply applies the Bundle of r in one transaction, or refuses r with 400
// naming where when it has errors.
func Apply(ctx context.Context, st operation.Store, r mappers.Result) (*Report, error) {
	rep := &Report{}
	if err := rep.apply(ctx, st, r); err != nil {
		return nil, err
	}
	return rep, nil
}

// apply refuses r when it failed, else applies its Bundle through st.
func (rep *Report) apply(ctx context.Context, st operation.Store, r mappers.Result) error {
	if r.Failed() || r.Bundle == nil {
		return refusal(r.Issues)
	}
	rep.Issues = append(rep.Issues, r.Issues...)
	resp, err := st.Transaction(ctx, r.Bundle)
	if err != nil {
		return err
	}
	for i, e := range resp.Entry {
		if e.Response == nil {
			continue
		}
		rec := Record{Reference: strings.SplitN(e.Response.Location.Get(), "/_history/", 2)[0]}
		method := ""
		if i < len(r.Bundle.Entry) && r.Bundle.Entry[i].Request != nil {
			method = r.Bundle.Entry[i].Request.Method.Get()
		}
		switch status := e.Response.Status.Get(); {
		case strings.HasPrefix(status, "201"):
			rec.Outcome = "created"
			rep.Created++
		case method == http.MethodPost:
			// A conditional create that found its match wrote nothing.
			rec.Outcome = "unchanged"
			rep.Unchanged++
		default:
			rec.Outcome = "updated"
			rep.Updated++
		}
		if rec.Reference == "" {
			rec.Reference = strings.TrimPrefix(e.FullUrl.Get(), "/")
		}
		rep.Records = append(rep.Records, rec)
	}
	return nil
}

// ImportCSV imports a CSV file mapped by m as one transaction, a batch of
// rows at a time, so the file is never held whole. progress, when not nil,
// is called after each batch with the rows read so far.
func ImportCSV(ctx context.Context, st operation.Store, r io.Reader, m *mcsv.Mapping, progress func(rows int)) (*Report, error) {
	var rep *Report
	err := st.Transact(ctx, func(tx operation.Store) error {
		// The store may run the unit again: start the count afresh.
		rep = &Report{}
		csvIm, err := mcsv.NewImporter(r, m, csvBatch)
		if err != nil {
			return operation.Errorf(http.StatusBadRequest, "invalid", "line 1", "%v", err)
		}
		rows := 0
		for {
			res, err := csvIm.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return operation.Errorf(http.StatusBadRequest, "invalid", "", "%v", err)
			}
			if res.Bundle == nil && !res.Failed() {
				rep.Issues = append(rep.Issues, res.Issues...)
				continue
			}
			if err := rep.apply(ctx, tx, *res); err != nil {
				return err
			}
			rows += csvBatch
			if progress != nil {
				progress(rows)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// refusal is the 400 of a payload with errors: every issue, each at its
// path in the source.
func refusal(issues []mappers.Issue) error {
	e := &operation.Error{Status: http.StatusBadRequest}
	for _, is := range issues {
		if is.Severity != mappers.Error {
			continue
		}
		e.Issues = append(e.Issues, operation.Issue{Severity: "error", Code: "invalid", Diagnostics: is.Path + ": " + is.Message, Expression: []string{is.Path}})
	}
	if len(e.Issues) == 0 {
		e.Issues = []operation.Issue{{Severity: "error", Code: "invalid", Diagnostics: "the payload holds nothing to import"}}
	}
	return e
}

// importHL7v2 applies one HL7 v2 message and answers its acknowledgement:
// AA when applied, and 400 with an AE or AR naming where when the message
// is refused. A write refused (an access decision, a validation) answers
// as any refused write does.
func (im *Importer) importHL7v2(ctx context.Context, inv *operation.Invocation) (*operation.Result, error) {
	ack, err := ApplyHL7v2(ctx, inv.Store, inv.Body, im.now())
	switch {
	case err == errRefused:
		return &operation.Result{Status: http.StatusBadRequest, Body: ack, ContentType: HL7v2MediaType}, nil
	case err != nil:
		return nil, err
	}
	return &operation.Result{Body: ack, ContentType: HL7v2MediaType}, nil
}

// errRefused is the error of a message refused for what it holds.
var errRefused = errors.New("importop: the message is refused")

// ApplyHL7v2 imports one HL7 v2 message through st and returns its
// acknowledgement: AA when it was applied; AR or AE naming where, and
// errRefused, when the message cannot be imported; AE and the error when
// the store refused or failed to write it.
func ApplyHL7v2(ctx context.Context, st operation.Store, msg []byte, now time.Time) ([]byte, error) {
	m := hl7v2.Import(msg)
	if m.Message == nil || m.Rejected || m.Failed() || m.Bundle == nil {
		return m.Acknowledge(nil, now), errRefused
	}
	if _, err := st.Transaction(ctx, m.Bundle); err != nil {
		return m.Acknowledge(err, now), err
	}
	return m.Acknowledge(nil, now), nil
}

// Parameters is the report as a Parameters resource: the counts, then a
// record part per resource, then the warnings.
func (rep *Report) Parameters() *fhir.Parameters {
	p := &fhir.Parameters{}
	for _, c := range []struct {
		name string
		n    int
	}{{"created", rep.Created}, {"updated", rep.Updated}, {"unchanged", rep.Unchanged}} {
		p.Parameter = append(p.Parameter, &fhir.ParametersParameter{Name: fhir.NewString(c.name), ValueInteger: fhir.NewInteger(int64(c.n))})
	}
	for _, r := range rep.Records {
		p.Parameter = append(p.Parameter, &fhir.ParametersParameter{Name: fhir.NewString("record"), Part: []*fhir.ParametersParameter{
			{Name: fhir.NewString("outcome"), ValueCode: fhir.NewCode(r.Outcome)},
			{Name: fhir.NewString("resource"), ValueReference: &fhir.Reference{Reference: fhir.NewString(r.Reference)}},
		}})
	}
	for _, is := range rep.Issues {
		p.Parameter = append(p.Parameter, &fhir.ParametersParameter{Name: fhir.NewString("issue"), Part: []*fhir.ParametersParameter{
			{Name: fhir.NewString("severity"), ValueCode: fhir.NewCode(string(is.Severity))},
			{Name: fhir.NewString("location"), ValueString: fhir.NewString(is.Path)},
			{Name: fhir.NewString("message"), ValueString: fhir.NewString(is.Message)},
		}})
	}
	return p
}

// csvMapping returns the mapping the mapping parameter gives: the name of
// a built-in layout, or a mapping file's own text (YAML or JSON), checked
// as the file would be.
func csvMapping(mapping string) (*mcsv.Mapping, error) {
	if m, err := mcsv.Layout(mapping); err == nil {
		return m, nil
	}
	if !strings.ContainsAny(mapping, "\n{:") {
		return nil, operation.Errorf(http.StatusBadRequest, "value", "mapping", "mapping %q is not a built-in layout (%s) nor a mapping file's text", mapping, strings.Join(mcsv.Layouts(), ", "))
	}
	m, err := mcsv.ParseMapping([]byte(mapping))
	if err != nil {
		return nil, operation.Errorf(http.StatusBadRequest, "value", "mapping", "the mapping is not valid: %v", err)
	}
	return m, nil
}
