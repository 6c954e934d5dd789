// Package importop serves the mappers as FHIR operations: $import of a GP
// system's payload (GP Connect, PDS, CSV, HL7 v2) as one transaction, and
// $export-gp of what care coordination holds back to GP systems. It sees
// only the operation Store, so every read and write is decided by the
// access layer, validated and audited as any client's.
package importop

import (
	"bufio"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"carefhir/fhir/lexical"
	"carefhir/mappers"
	mcsv "carefhir/mappers/csv"
	"carefhir/mappers/gpconnect"
	"carefhir/mappers/hl7v2"
	"carefhir/mappers/pds"
	"carefhir/operation"
	"carefhir/store"
)

// HL7v2MediaType is the media type of HL7 v2 messages in ER7 form.
const HL7v2MediaType = "x-application/hl7-v2+er7"

// Formats are the formats $import reads.
var Formats = []string{"gpconnect", "pds", "csv", "hl7v2"}

// Importer imports payloads of the formats the mappers read.
type Importer struct {
	// Now stamps HL7 v2 acknowledgements, and its date in the UK is the
	// day after which dates of birth and death are refused as yet to
	// come; nil means time.Now.
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
			Definition: "https://carefhir.example.org/fhir/OperationDefinition/import",
			Levels:     operation.System,
			RawBody:    true,
			Invoke:     im.invokeImport,
		},
		{
			Name:       "export-gp",
			Definition: "https://carefhir.example.org/fhir/OperationDefinition/export-gp",
			Levels:     operation.Instance,
			Types:      []string{"Patient", "Appointment"},
			Idempotent: true,
			Invoke:     invokeExport,
		},
	}
}

// operationDefinitions holds the OperationDefinitions of $import and
// $export-gp, named by their Definition.
//
//go:embed operationdefinitions/*.json
var operationDefinitions embed.FS

// OperationDefinitions returns the OperationDefinitions of $import and $export-gp, JSON
// files for the host to serve (operation.Definitions reads them).
func OperationDefinitions() fs.FS { return operationDefinitions }

func (im *Importer) invokeImport(ctx context.Context, inv *operation.Invocation) (*operation.Result, error) {
	if err := inv.Only("format", "mapping", "provider", pds.AskedParameter); err != nil {
		return nil, err
	}
	format, err := inv.Text("format")
	if err != nil {
		return nil, err
	}
	body := bufio.NewReader(emptyIfNil(inv.Body))
	if _, err := body.Peek(1); err != nil {
		if err := bodyError(err); err != io.EOF {
			return nil, err
		}
		return nil, operation.Errorf(http.StatusBadRequest, "required", "", "$import takes the payload as the request body, which is empty")
	}
	// A parameter of another format is refused rather than left unread,
	// which would let the importer believe it applied.
	if err := onlyFor(inv, format, "mapping", "csv", "the layout of a CSV report"); err != nil {
		return nil, err
	}
	if err := onlyFor(inv, format, "provider", "gpconnect", "the base URL of a GP Connect provider"); err != nil {
		return nil, err
	}
	if err := onlyFor(inv, format, pds.AskedParameter, "pds", "the NHS number a PDS retrieve asked for"); err != nil {
		return nil, err
	}
	provider, err := providerBase(inv)
	if err != nil {
		return nil, err
	}
	asked, err := inv.Text(pds.AskedParameter)
	if err != nil {
		return nil, err
	}
	var rep *Report
	switch format {
	case "hl7v2":
		msg, err := readAll(body)
		if err != nil {
			return nil, err
		}
		return im.importHL7v2(ctx, inv.Store, msg)
	case "csv":
		mapping, err := inv.Text("mapping")
		if err != nil {
			return nil, err
		}
		m, err := csvMapping(mapping)
		if err != nil {
			return nil, err
		}
		if rep, err = ImportCSV(ctx, inv.Store, body, m, im.now(), nil); err != nil {
			return nil, err
		}
	case "gpconnect", "pds":
		payload, err := readAll(body)
		if err != nil {
			return nil, err
		}
		r, err := im.Map(format, payload, provider, asked)
		if err != nil {
			return nil, err
		}
		if rep, err = Apply(ctx, inv.Store, r); err != nil {
			return nil, err
		}
	default:
		return nil, operation.Errorf(http.StatusBadRequest, "value", "format", "format %q is not one $import reads: use one of %s", format, strings.Join(Formats, ", "))
	}
	out, err := rep.Stream()
	if err != nil {
		return nil, err
	}
	return &operation.Result{Stream: out}, nil
}

func emptyIfNil(r io.Reader) io.Reader {
	if r == nil {
		return strings.NewReader("")
	}
	return r
}

// readAll reads a payload that is mapped whole.
func readAll(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, bodyError(err)
	}
	return b, nil
}

// bodyError is the error of reading the request body: a body over the
// server's limit as it is (413), anything else 400.
func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	if err == io.EOF || errors.As(err, &tooBig) {
		return err
	}
	return operation.Errorf(http.StatusBadRequest, "invalid", "", "reading the request body: %v", err)
}

// providerBase reads the provider parameter: the FHIR base URL of the GP
// Connect provider that answered the payload, under which the import
// keeps each resource's id there, as a later booking with that provider
// names them. It must be a uri, as the identifiers' systems it begins
// are: a space, which url.Parse lets by in a path, is refused.
func providerBase(inv *operation.Invocation) (string, error) {
	provider, err := inv.Text("provider")
	if err != nil || provider == "" {
		return "", err
	}
	if u, err := url.Parse(provider); err != nil || u.Host == "" || u.Scheme != "https" && u.Scheme != "http" || !lexical.ValidURI(provider) {
		return "", operation.Errorf(http.StatusBadRequest, "value", "provider", "provider %q is not the absolute http or https URL of a GP Connect provider's FHIR base", provider)
	}
	return provider, nil
}

// onlyFor refuses the parameter name, which is what, when it is given with
// a format other than the one that takes it.
func onlyFor(inv *operation.Invocation, format, name, takenBy, what string) error {
	value, err := inv.Text(name)
	if err != nil || value == "" || format == takenBy {
		return err
	}
	return operation.Errorf(http.StatusBadRequest, "not-supported", name, "%s is %s: format %s does not take it", name, what, format)
}

// Map maps a whole payload of format gpconnect or pds. provider is the
// FHIR base URL of the GP Connect provider that answered it, or ""; asked
// the NHS number a PDS retrieve asked for, or "" (pds.ImportAsked).
func (im *Importer) Map(format string, payload []byte, provider, asked string) (mappers.Result, error) {
	switch format {
	case "pds":
		return pds.ImportAsked(payload, asked), nil
	case "gpconnect":
		im.gpcOnce.Do(func() { im.gpc, im.gpcErr = gpconnect.NewImporter() })
		if im.gpcErr != nil {
			return mappers.Result{}, fmt.Errorf("importop: %w", im.gpcErr)
		}
		return im.gpc.ImportFrom(provider, payload), nil
	}
	return mappers.Result{}, operation.Errorf(http.StatusBadRequest, "value", "format", "format %q is not a whole-payload format", format)
}

// Apply applies the Bundle of r in one transaction, or refuses r with 400
// naming where when it has errors. The caller closes the report.
func Apply(ctx context.Context, st operation.Store, r mappers.Result) (*Report, error) {
	rep := &Report{}
	ran := false
	err := st.Transact(ctx, func(tx operation.Store) error {
		if ran {
			// The store runs the unit again; apply rewrote the Bundle's
			// entries for what it found the first time.
			return errAgain
		}
		ran = true
		return rep.apply(ctx, tx, r)
	})
	if err != nil {
		rep.Close()
		return nil, err
	}
	return rep, nil
}

// apply refuses r when it failed, else applies its Bundle through tx, a
// Store bound to a unit of work, and reports each entry.
func (rep *Report) apply(ctx context.Context, tx operation.Store, r mappers.Result) error {
	if r.Failed() || r.Bundle == nil {
		return refusal(r.Issues)
	}
	kept, err := settle(ctx, tx, r.Bundle, r.Merges)
	if err != nil {
		return err
	}
	if err := rep.warn(append(r.Issues[:len(r.Issues):len(r.Issues)], kept...)); err != nil {
		return err
	}
	resp, err := tx.Transaction(ctx, r.Bundle)
	if err != nil {
		return err
	}
	for i, e := range resp.Entry {
		if e.Response == nil {
			continue
		}
		ref := strings.SplitN(e.Response.Location.Get(), "/_history/", 2)[0]
		method := ""
		if i < len(r.Bundle.Entry) && r.Bundle.Entry[i].Request != nil {
			method = r.Bundle.Entry[i].Request.Method.Get()
		}
		outcome := updated
		switch status := e.Response.Status.Get(); {
		case strings.HasPrefix(status, "201"):
			outcome = created
		case method == http.MethodPost, operation.Unchanged(e):
			// A conditional create that found its match, or an update
			// of a resource to the content it holds, wrote nothing.
			outcome = unchanged
		}
		if ref == "" {
			ref = strings.TrimPrefix(e.FullUrl.Get(), "/")
		}
		if err := rep.record(outcome, ref); err != nil {
			return err
		}
	}
	return nil
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
func (im *Importer) importHL7v2(ctx context.Context, st operation.Store, msg []byte) (*operation.Result, error) {
	ack, err := ApplyHL7v2(ctx, st, msg, im.now())
	switch {
	case err == errRefused:
		return &operation.Result{Status: http.StatusBadRequest, Body: ack, ContentType: HL7v2MediaType}, nil
	case err != nil:
		return nil, err
	}
	return &operation.Result{Body: ack, ContentType: HL7v2MediaType}, nil
}

// errAgain is the answer to a store that runs an import's unit of work
// again (a MongoDB transaction that met another's write): the body was
// read, and the entries rewritten, for the first run.
var errAgain = operation.Errorf(http.StatusServiceUnavailable, "transient", "", "the import met a concurrent write and was not applied: send it again")

// errRefused is the error of a message refused for what it holds.
var errRefused = errors.New("importop: the message is refused")

// ApplyHL7v2 imports one HL7 v2 message through st and returns its
// acknowledgement: AA when it was applied, with a Warning for each record
// a merge retired that the message writes over (it stays retired); AR or
// AE naming where, and errRefused, when the message cannot be imported;
// AE and the error when the store refused or failed to write it.
func ApplyHL7v2(ctx context.Context, st operation.Store, msg []byte, now time.Time) ([]byte, error) {
	m := hl7v2.ImportAt(msg, now)
	if m.Message == nil || m.Rejected || m.Failed() || m.Bundle == nil {
		return m.Acknowledge(nil, now), errRefused
	}
	// A message already applied is acknowledged again, not applied twice.
	// A receipt deleted since (a tombstone) remembers nothing: the message
	// is applied, and its receipt written again.
	v, err := st.Read(ctx, hl7v2.ReceiptType, hl7v2.ReceiptID(hl7v2.SeenKey(m.Message)))
	switch {
	case err == nil && !v.Deleted:
		return m.Acknowledge(nil, now), nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return m.Acknowledge(err, now), err
	}
	m.AddReceipt(now)
	ran := false
	err = st.Transact(ctx, func(tx operation.Store) error {
		if ran {
			return errAgain
		}
		ran = true
		kept, err := settle(ctx, tx, m.Bundle, m.Merges)
		if err != nil {
			return err
		}
		for _, is := range kept {
			// The record is named by PID-3 (or, in a merge, MRG-1).
			is.Path = "PID-3"
			m.Issues = append(m.Issues, is)
		}
		_, err = tx.Transaction(ctx, m.Bundle)
		return err
	})
	if err != nil {
		return m.Acknowledge(err, now), err
	}
	return m.Acknowledge(nil, now), nil
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
