// Package operation is how code outside the server extends the FHIR API
// without HTTP: FHIR operations ($name) as registered values, and hooks
// that check a write before it is made or derive further writes in its
// transaction. The server dispatches operations, runs hooks on every write
// and lists both in its CapabilityStatement; the code that provides them
// (such as package care) sees only the types of this package, the FHIR
// model and the store.
package operation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"carefhir/fhir"
	"carefhir/store"
)

// Level is where an operation can be invoked (a bit set).
type Level uint8

// The levels.
const (
	System   Level = 1 << iota // [base]/$name
	Type                       // [base]/[type]/$name
	Instance                   // [base]/[type]/[id]/$name
)

// Operation is one FHIR operation.
type Operation struct {
	// Name is the operation's name, without the $.
	Name string
	// Definition is the canonical URL of its OperationDefinition.
	Definition string
	// TypeDefinitions names, by resource type, the OperationDefinition of
	// the operation on that type and its instances where it is not
	// Definition: the Bulk Data IG defines $export on the system, on
	// Patient and on a Group each with a definition of its own.
	TypeDefinitions map[string]string
	Levels          Level
	// Types restricts the type and instance levels to these resource
	// types; nil allows every served type.
	Types []string
	// Idempotent operations may also be invoked with GET, their
	// parameters in the query string, which R4 allows only of an
	// operation whose affectsState is false: one that writes no resource.
	// An invocation of one is not among the writes a history is dated
	// before, so an operation that writes must leave it false.
	Idempotent bool
	// RawBody operations take the body of a POST as it is, of any media
	// type (Invocation.Body), rather than as a FHIR resource: an import of
	// CSV or HL7 v2. The body is handed over unread, so an operation that
	// reads it as a stream never holds a large upload whole.
	RawBody bool
	// Complete operations draw conclusions from the records their
	// searches do not find as well as from those they find (the patients
	// of a cohort without an active plan, the next appointment of each
	// of a caseload): a search or read of a type the caller may not reach
	// is refused (403), as outside an operation, where for the others,
	// such as $everything, it finds nothing, and they answer with what
	// the caller may reach.
	Complete bool
	// Invoke performs the operation. An error that is not an *Error is a
	// failure of the server (500).
	Invoke func(ctx context.Context, inv *Invocation) (*Result, error)
}

// Invocation is one call of an operation.
type Invocation struct {
	// Type and ID are where it was invoked: both empty at the system level,
	// ID empty at the type level.
	Type, ID string
	// Parameters is the Parameters body of a POST, or nil.
	Parameters *fhir.Parameters
	// Resource is the body of a POST that is not a Parameters resource.
	Resource fhir.Resource
	// Body and ContentType are the body of a POST to a RawBody operation,
	// unread, and its Content-Type header; Body is nil for any other
	// invocation. Reading past the server's body limit fails with an
	// *http.MaxBytesError, which answers 413 when returned as it is.
	Body        io.Reader
	ContentType string
	// Query holds the query parameters, the parameters of a GET.
	Query url.Values
	// Base is the server's public base, including /fhir, such as
	// http://127.0.0.1:8080/fhir: the root of the absolute fullUrls of a
	// Bundle the operation answers.
	Base string
	// Handling is the client's handling preference (Prefer: handling=…):
	// "strict", "lenient", or "" when it states none.
	Handling string
	// RespondAsync reports whether the client asked for the asynchronous
	// request pattern (Prefer: respond-async), which some operations
	// require, such as a bulk export.
	RespondAsync bool
	// Store reads and writes for the caller, as the REST API would.
	Store Store
}

// Result is what an operation answers.
type Result struct {
	// Status is the HTTP status; 0 means 200.
	Status int
	// Resource is the body: often a Parameters resource.
	Resource fhir.Resource
	// JSON, when set, is Resource as it was stored (store.Version.JSON),
	// answered as it is rather than encoded again: a Group of 100,000
	// members is encoded once.
	JSON []byte
	// Body, when Resource is nil, is a body in a format other than FHIR
	// (an HL7 v2 acknowledgement, a CSV file), of media type ContentType.
	Body        []byte
	ContentType string
	// Stream, when Resource and Body are nil, is a FHIR JSON resource
	// written to the client as it is read, so a large answer (the report
	// of a large import) is never held whole. It is closed when it is an
	// io.Closer.
	Stream io.Reader
	// Location, when set, is the written resource the answer is about, as
	// Type/id/_history/n, relative to the base.
	Location string
	// Header holds further response headers, such as the Content-Location
	// of an asynchronous request's status.
	Header map[string]string
	// Warnings are added to an OperationOutcome answer.
	Warnings []Issue
}

// Store is how operations and hooks read and write: every read and write
// is decided against who the request acts for, recorded for its audit
// event, validated and indexed as the REST API would, and runs the hooks.
type Store interface {
	// Read returns the current version of a resource (maybe a tombstone),
	// or store.ErrNotFound.
	Read(ctx context.Context, typ, id string) (*store.Version, error)
	// Search runs a FHIR search given as query parameters, such as
	// "subject=Patient/1" and "_sort=-date", parsed strictly. With
	// "_elements=id" on Patient the matches carry no JSON
	// (store.Query.IDsOnly); other types keep their bodies, from which
	// the audit trail names the patients read.
	Search(ctx context.Context, typ string, params url.Values) (*store.Page, error)
	// Each runs a search given as for Search and calls fn with every
	// match, page after page, in whatever order the engine reads them
	// cheapest (store.Query.Unordered): for an operation that goes
	// through a population and orders nothing by the search. Its pages
	// are the store's; a _count in params is not used.
	Each(ctx context.Context, typ string, params url.Values, fn func(*store.Version) error) error
	// Find runs a search plan.
	Find(ctx context.Context, q store.Query) (*store.Page, error)
	// Create stores res as a new resource with a server-assigned id.
	Create(ctx context.Context, res fhir.Resource) (*store.Version, error)
	// Update writes res (which carries its id) as the next version of its
	// resource; ifMatch, when not 0, is the version it must replace.
	Update(ctx context.Context, res fhir.Resource, ifMatch int64) (*store.Version, error)
	// Transact runs fn in one unit of work with a Store bound to it; in a
	// Store already bound to one, fn runs in that unit.
	Transact(ctx context.Context, fn func(Store) error) error
	// Transaction applies a transaction Bundle as POST [base] does (every
	// entry decided, validated and written, or none) and returns the
	// transaction-response Bundle. In a Store bound to a unit of work it
	// runs in that unit, so several Bundles can make one transaction.
	Transaction(ctx context.Context, b *fhir.Bundle) (*fhir.Bundle, error)
}

// Error is a refusal an operation or a hook reports: an HTTP status and
// the issues that explain it, as the OperationOutcome will show them.
type Error struct {
	Status int
	Issues []Issue
	// RetryAfter, when not 0, is how many seconds a client refused for
	// now (429, 503) is asked to wait: the Retry-After header.
	RetryAfter int
}

// Issue is one issue of an OperationOutcome.
type Issue struct {
	Severity    string // fatal, error, warning or information
	Code        string // an IssueType code, such as invalid or not-found
	Diagnostics string
	Expression  []string // FHIRPath expressions of where
}

func (e *Error) Error() string {
	if len(e.Issues) == 0 {
		return strconv.Itoa(e.Status)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Issues[0].Code, e.Issues[0].Diagnostics)
}

// Errorf returns an Error of one issue of severity error, at expression
// when it is not empty.
func Errorf(status int, code, expression, format string, args ...any) *Error {
	is := Issue{Severity: "error", Code: code, Diagnostics: fmt.Sprintf(format, args...)}
	if expression != "" {
		is.Expression = []string{expression}
	}
	return &Error{Status: status, Issues: []Issue{is}}
}

// ReadInstance returns the current version of typ/id, the resource an
// operation is invoked on, as a read answers: 404 when it was never held,
// 410 when it was deleted.
func ReadInstance(ctx context.Context, s Store, typ, id string) (*store.Version, error) {
	v, err := s.Read(ctx, typ, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, Errorf(http.StatusNotFound, "not-found", "", "%s/%s is not known", typ, id)
	case err != nil:
		return nil, fmt.Errorf("reading %s/%s: %w", typ, id, err)
	case v.Deleted:
		return nil, Errorf(http.StatusGone, "deleted", "", "%s/%s was deleted (version %d)", typ, id, v.VersionID)
	}
	return v, nil
}

// Params returns the parameters named name: from the Parameters body, or
// from the query string as valueString parameters.
func (inv *Invocation) Params(name string) []*fhir.ParametersParameter {
	var out []*fhir.ParametersParameter
	if inv.Parameters != nil {
		for _, p := range inv.Parameters.Parameter {
			if p.Name.Get() == name {
				out = append(out, p)
			}
		}
	}
	for _, v := range inv.Query[name] {
		out = append(out, &fhir.ParametersParameter{Name: fhir.NewString(name), ValueString: fhir.NewString(v)})
	}
	return out
}

// Text returns the value of a parameter of a primitive type as written,
// whatever its value[x]; "" when it is absent. Several values are 400.
func (inv *Invocation) Text(name string) (string, error) {
	ps := inv.Params(name)
	switch len(ps) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", Errorf(400, "invalid", "Parameters.parameter.where(name='"+name+"')", "parameter %s is given %d times; it takes one value", name, len(ps))
	}
	return primitive(ps[0]), nil
}

// Names returns the names of the parameters given, from the Parameters
// body and the query string, each once, in the order first given.
func (inv *Invocation) Names() []string {
	var out []string
	add := func(name string) {
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	if inv.Parameters != nil {
		for _, p := range inv.Parameters.Parameter {
			add(p.Name.Get())
		}
	}
	for _, name := range slices.Sorted(maps.Keys(inv.Query)) {
		add(name)
	}
	return out
}

// Only refuses (400, naming the parameter) a parameter other than names,
// and one of names without a value of a primitive type (a part, a
// resource, a CodeableConcept): an operation that left either out would
// do something other than what was asked, such as a cohort without one of
// its criteria. _format and _pretty, which say how the answer is written,
// are taken from the query string. (A body that is a resource the
// operation's definition has no parameter for is refused before it runs,
// by the server's check of the definition.)
func (inv *Invocation) Only(names ...string) error {
	for _, name := range inv.Names() {
		at := "Parameters.parameter.where(name='" + name + "')"
		if !slices.Contains(names, name) {
			if _, ok := inv.Query[name]; ok && (name == "_format" || name == "_pretty") {
				continue
			}
			return Errorf(400, "not-supported", at, "unknown parameter %q: this operation takes %s", name, oneOf(names))
		}
		for _, p := range inv.Params(name) {
			if primitive(p) == "" {
				return Errorf(400, "invalid", at, "parameter %s has no value this operation reads: one of a primitive type (valueString, valueInteger…)", name)
			}
		}
	}
	return nil
}

// oneOf lists names for a message: "no parameters" when there are none.
func oneOf(names []string) string {
	if len(names) == 0 {
		return "no parameters"
	}
	return strings.Join(names, ", ")
}

// Texts returns every value of a repeatable primitive parameter.
func (inv *Invocation) Texts(name string) []string {
	var out []string
	for _, p := range inv.Params(name) {
		if v := primitive(p); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// primitive returns the value of a parameter of a primitive type as
// written, whichever of the primitive types its value[x] is; a Reference
// as its reference and a Coding as system|code; "" for any other.
func primitive(p *fhir.ParametersParameter) string {
	for _, v := range []string{
		p.ValueString.Get(), p.ValueCode.Get(), p.ValueId.Get(), p.ValueMarkdown.Get(),
		p.ValueInstant.Get(), p.ValueDateTime.Get(), p.ValueDate.Get(), p.ValueTime.Get(), p.ValueDecimal.Get(),
		p.ValueUri.Get(), p.ValueUrl.Get(), p.ValueCanonical.Get(), p.ValueOid.Get(), p.ValueUuid.Get(),
		p.ValueBase64Binary.Get(),
	} {
		if v != "" {
			return v
		}
	}
	switch {
	case p.ValueInteger != nil && p.ValueInteger.Value != nil:
		return strconv.FormatInt(p.ValueInteger.Get(), 10)
	case p.ValuePositiveInt != nil && p.ValuePositiveInt.Value != nil:
		return strconv.FormatInt(p.ValuePositiveInt.Get(), 10)
	case p.ValueUnsignedInt != nil && p.ValueUnsignedInt.Value != nil:
		return strconv.FormatInt(p.ValueUnsignedInt.Get(), 10)
	case p.ValueBoolean != nil && p.ValueBoolean.Value != nil:
		return strconv.FormatBool(p.ValueBoolean.Get())
	case p.ValueReference != nil:
		return p.ValueReference.Reference.Get()
	case p.ValueCoding != nil:
		return p.ValueCoding.System.Get() + "|" + p.ValueCoding.Code.Get()
	}
	return ""
}

// Int returns an integer parameter, or def when it is absent; anything
// but an integer is 400.
func (inv *Invocation) Int(name string, def int) (int, error) {
	s, err := inv.Text(name)
	if err != nil || s == "" {
		return def, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, Errorf(400, "invalid", "Parameters.parameter.where(name='"+name+"')", "parameter %s must be an integer, not %q", name, s)
	}
	return n, nil
}
