package gpconnect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"

	"carefhir/fhir"
	"carefhir/fhir/lexical"
	"carefhir/mappers"
)

// Importer turns GP Connect STU3 payloads into R4 transaction Bundles. It
// is built once by NewImporter and is safe for concurrent use.
type Importer struct {
	stu3    *jsonformat.Unmarshaller
	systems codeSystems
}

// NewImporter returns an Importer whose STU3 parser validates on parse.
func NewImporter() (*Importer, error) {
	systems, err := r4CodeSystemURLs()
	if err != nil {
		return nil, err
	}
	// Dates without a zone are kept as written; the zone only matters to
	// the parser's own conversion, which the mapping does not use.
	u, err := jsonformat.NewUnmarshaller("Europe/London", fhirversion.STU3)
	if err != nil {
		return nil, fmt.Errorf("gpconnect: STU3 parser: %w", err)
	}
	// A nesting limit keeps hostile payloads from exhausting the stack.
	u.MaxNestingDepth = 64
	return &Importer{stu3: u, systems: systems}, nil
}

// Import maps one GP Connect payload. The Result's Bundle is nil when the
// payload is refused; its Issues then say where and why.
func (im *Importer) Import(payload []byte) mappers.Result {
	return im.ImportFrom("", payload)
}

// ImportFrom is Import for a payload answered by the provider whose FHIR
// base URL is provider (such as
// https://provider.example/A82038/STU3/1/gpconnect/fhir): every resource
// with a logical id keeps it as an identifier in the system provider +
// "/" + its STU3 type, so that what carefhir later sends back to that
// provider (a booking naming the Slot, Location and Patient) can name them
// by the provider's own ids (see ProviderID). An empty provider is Import.
func (im *Importer) ImportFrom(provider string, payload []byte) mappers.Result {
	trimmed := bytes.TrimSpace(lexical.TrimBOM(payload))
	if len(trimmed) > 0 && trimmed[0] == '<' {
		return refused(mappers.Errorf("(payload)", "STU3 XML is not supported: ask the provider for JSON (Accept: application/fhir+json), which every GP Connect provider must serve"))
	}
	if issues := im.validate(trimmed); len(issues) > 0 {
		return mappers.Result{Issues: issues}
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	var root map[string]any
	if err := dec.Decode(&root); err != nil {
		return refused(mappers.Errorf("(payload)", "not JSON: %v", err))
	}
	typ, _ := root["resourceType"].(string)
	switch typ {
	case "Bundle":
		return importRecord(root, provider, im.systems)
	case "OperationOutcome":
		return refused(providerError(root)...)
	case "Parameters":
		return refused(mappers.Errorf("Parameters", "a request (the Parameters of an operation such as $gpc.getstructuredrecord), not a record: import the provider's response"))
	case "CapabilityStatement", "Binary":
		return refused(mappers.Errorf(typ, "a %s holds no patient record to import", typ))
	}
	if _, ok := mappings[typ]; ok {
		// A single resource, as a read answers: a record of one.
		return importRecord(map[string]any{
			"resourceType": "Bundle",
			"entry":        []any{map[string]any{"resource": root}},
		}, provider, im.systems)
	}
	return refused(mappers.Errorf(typ, "GP Connect payloads of type %s are not imported", typ))
}

func refused(issues ...mappers.Issue) mappers.Result {
	return mappers.Result{Issues: issues}
}

// validate runs the STU3 parser, which checks the payload against the STU3
// definitions (cardinality, primitive formats, reference types, required
// elements), and returns its findings as Error issues.
func (im *Importer) validate(payload []byte) []mappers.Issue {
	rep := &reporter{}
	_, err := im.stu3.UnmarshalWithErrorReporter(payload, rep)
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				rep.issues = append(rep.issues, parserIssue(line))
			}
		}
	}
	// The parser walks JSON objects as maps, so its findings come in no
	// fixed order: sort them, for the same answer to the same payload.
	sort.Slice(rep.issues, func(i, j int) bool {
		a, b := rep.issues[i], rep.issues[j]
		if a.Path != b.Path {
			return pathLess(a.Path, b.Path)
		}
		return a.Message < b.Message
	})
	return rep.issues
}

// reporter collects the STU3 parser's validation findings.
type reporter struct {
	issues []mappers.Issue
}

func (r *reporter) ReportValidationError(path string, err error) error {
	r.issues = append(r.issues, parserIssue(err.Error()))
	return nil
}

func (r *reporter) ReportValidationWarning(path string, err error) error {
	r.issues = append(r.issues, mappers.Warnf(stu3Path(path), "%v", err))
	return nil
}

// parserMessage matches the parser's `error at "PATH": DETAILS`.
var parserMessage = regexp.MustCompile(`^error at "([^"]*)": (.*)$`)

func parserIssue(msg string) mappers.Issue {
	if m := parserMessage.FindStringSubmatch(msg); m != nil {
		return mappers.Errorf(stu3Path(m[1]), "invalid STU3: %s", m[2])
	}
	return mappers.Errorf("(payload)", "invalid STU3: %s", msg)
}

// stu3Path turns the parser's paths, which name the type of every resource
// they pass through (Bundle.entry[0].resource.Patient.gender), into the
// FHIRPath form the rest of the issues use (Bundle.entry[0].resource.gender).
func stu3Path(p string) string {
	parts := strings.Split(p, ".")
	out := parts[:0:0]
	for i, s := range parts {
		if i > 0 && (parts[i-1] == "resource" || strings.HasPrefix(parts[i-1], "contained[")) && s != "" &&
			fhir.IsResourceType(strings.ToUpper(s[:1])+s[1:]) {
			continue
		}
		out = append(out, s)
	}
	return strings.Join(out, ".")
}

// providerError reports a GP Connect error answer: the provider refused
// the request, so there is no record in it.
func providerError(oo map[string]any) []mappers.Issue {
	var issues []mappers.Issue
	list, _ := oo["issue"].([]any)
	for i, x := range list {
		is, _ := x.(map[string]any)
		var code string
		if details, ok := is["details"].(map[string]any); ok {
			if codings, ok := details["coding"].([]any); ok && len(codings) > 0 {
				c, _ := codings[0].(map[string]any)
				code, _ = c["code"].(string)
			}
		}
		diag, _ := is["diagnostics"].(string)
		issues = append(issues, mappers.Errorf(fmt.Sprintf("OperationOutcome.issue[%d]", i),
			"the provider answered with an error, not a record: %s", strings.TrimSpace(code+" "+diag)))
	}
	if len(issues) == 0 {
		issues = append(issues, mappers.Errorf("OperationOutcome", "the provider answered with an OperationOutcome, not a record"))
	}
	return issues
}

// pathLess orders paths as a reader would: entry[9] before entry[10].
func pathLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, _ := strconv.Atoi(a[:da])
			nb, _ := strconv.Atoi(b[:db])
			if na != nb {
				return na < nb
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

// digits returns how many decimal digits s starts with.
func digits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}
