package server

import (
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"carefhir/fhir/search"
	"carefhir/profiles/terminology"
	"carefhir/server/access"
	"carefhir/server/contentcoding"
)

// servedTypes are the resource types the REST API serves.
var servedTypes = []string{
	"AllergyIntolerance", "Appointment", "AuditEvent", "Binary", "Bundle", "CapabilityStatement", "CarePlan",
	"CareTeam", "CodeSystem", "Communication", "Condition", "Consent", "DiagnosticReport", "DocumentReference",
	"Encounter", "EpisodeOfCare", "Flag", "Goal", "Group", "HealthcareService", "Immunization", "List",
	"Location", "Medication", "MedicationRequest", "MedicationStatement", "Observation", "OperationDefinition", "OperationOutcome",
	"Organization", "Parameters", "Patient", "Practitioner", "PractitionerRole", "Provenance", "Questionnaire",
	"QuestionnaireResponse", "RelatedPerson", "Schedule", "SearchParameter", "ServiceRequest", "Slot",
	"Specimen", "StructureDefinition", "Subscription", "Task", "ValueSet",
}

func isServed(typ string) bool {
	_, ok := slices.BinarySearch(servedTypes, typ)
	return ok
}

// capabilities records the interactions the router really registers, so the
// CapabilityStatement is built from the routes and cannot claim more.
type capabilities struct {
	typeInteractions   []string
	systemInteractions []string
	operations         []operation    // on types and their instances
	systemOperations   []capOperation // on the system ([base]/$name)
}

func newCapabilities() *capabilities { return &capabilities{} }

func (c *capabilities) add(codes ...string) {
	c.typeInteractions = append(c.typeInteractions, codes...)
}

// addOperation records an operation where it is served: on the system
// (CapabilityStatement.rest.operation), and on types and their instances
// (rest.resource.operation of each of its types; nil: every type), each
// naming the operation's definition there.
func (c *capabilities) addOperation(op operation) {
	if op.levels&systemLevel != 0 {
		c.systemOperations = append(c.systemOperations, capOperation{Name: op.name, Definition: op.definition})
	}
	if op.levels&(typeLevel|instanceLevel) != 0 {
		c.operations = append(c.operations, op)
	}
}

// operationsOn lists the operations served on typ.
func (c *capabilities) operationsOn(typ string) []capOperation {
	var out []capOperation
	for _, op := range c.operations {
		if op.servedOn(typ) {
			out = append(out, capOperation{Name: op.name, Definition: op.definitionOn(typ)})
		}
	}
	return out
}

func (c *capabilities) addSystem(codes ...string) {
	c.systemInteractions = append(c.systemInteractions, codes...)
}

type code struct {
	Code string `json:"code"`
}

type capabilityStatement struct {
	capHeader
	FHIRVersion string    `json:"fhirVersion"`
	Format      []string  `json:"format"`
	PatchFormat []string  `json:"patchFormat,omitempty"`
	Rest        []capRest `json:"rest"`
}

// capHeader is what a CapabilityStatement and a TerminologyCapabilities
// say of the server alike, in the order both list it.
type capHeader struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	URL          string `json:"url"`
	Name         string `json:"name"`
	Title        string `json:"title"`
	Status       string `json:"status"`
	Date         string `json:"date"`
	Publisher    string `json:"publisher"`
	Description  string `json:"description"`
	Kind         string `json:"kind"`
	Software     struct {
		Name        string `json:"name"`
		Version     string `json:"version,omitempty"`
		ReleaseDate string `json:"releaseDate,omitempty"`
	} `json:"software"`
	Implementation struct {
		Description string `json:"description"`
		URL         string `json:"url"`
	} `json:"implementation"`
}

// header completes h, a statement's names, with what every statement
// served under base says of the server.
func (a *api) header(base string, h capHeader) capHeader {
	h.Status = "active"
	h.Date = a.started.Format(time.RFC3339)
	h.Publisher = "carefhir"
	h.Kind = "instance"
	h.Software.Name = "carefhir"
	h.Software.Version = a.cfg.SoftwareVersion
	h.Implementation.Description = "carefhir"
	h.Implementation.URL = base
	return h
}

// terminologyCapabilities is the TerminologyCapabilities the capabilities
// interaction answers with mode=terminology.
type terminologyCapabilities struct {
	capHeader
	CodeSystem   []tcCodeSystem `json:"codeSystem"`
	ValidateCode struct {
		Translations bool `json:"translations"`
	} `json:"validateCode"`
}

type tcCodeSystem struct {
	URI     string      `json:"uri"`
	Version []tcVersion `json:"version,omitempty"`
}

type tcVersion struct {
	Code string `json:"code"`
}

// capRest is the server's rest element.
type capRest struct {
	Mode        string         `json:"mode"`
	Security    *capSecurity   `json:"security,omitempty"`
	Resource    []capResource  `json:"resource"`
	Interaction []code         `json:"interaction"`
	Operation   []capOperation `json:"operation,omitempty"`
	// Compartment lists the compartments searched through: the
	// Patient's ([base]/Patient/[id]/[type] and /*).
	Compartment []string `json:"compartment,omitempty"`
}

type capResource struct {
	Type              string         `json:"type"`
	Profile           string         `json:"profile"`
	Interaction       []code         `json:"interaction"`
	Versioning        string         `json:"versioning"`
	ReadHistory       bool           `json:"readHistory"`
	UpdateCreate      bool           `json:"updateCreate"`
	ConditionalCreate bool           `json:"conditionalCreate"`
	ConditionalRead   string         `json:"conditionalRead"`
	ConditionalUpdate bool           `json:"conditionalUpdate"`
	ConditionalDelete string         `json:"conditionalDelete"`
	SearchInclude     []string       `json:"searchInclude,omitempty"`
	SearchRevInclude  []string       `json:"searchRevInclude,omitempty"`
	SearchParam       []capParam     `json:"searchParam,omitempty"`
	Operation         []capOperation `json:"operation,omitempty"`
}

type capOperation struct {
	Name       string `json:"name"`
	Definition string `json:"definition"`
}

type capParam struct {
	Name          string `json:"name"`
	Definition    string `json:"definition,omitempty"`
	Type          string `json:"type"`
	Documentation string `json:"documentation,omitempty"`
}

func codes(list []string) []code {
	out := make([]code, len(list))
	for i, c := range list {
		out[i] = code{c}
	}
	return out
}

// metadata answers the capabilities interaction: the CapabilityStatement,
// or with mode=terminology the TerminologyCapabilities of the terminology
// the operations answer from (R4 http.html#capabilities), which a
// terminology client such as the HL7 validator asks for.
func (a *api) metadata(c *gin.Context) {
	base := a.baseURL(c)
	cache, build := &a.capsCache, a.capabilityStatement
	if c.Request.URL.RawQuery != "" && c.Query("mode") == "terminology" {
		terms := termsOf(a.cfg.Validator)
		if terms == nil {
			c.Error(errorf(http.StatusBadRequest, "not-supported", "mode=terminology: this server serves no terminology").at("mode"))
			return
		}
		cache, build = &a.termCapsCache, func(base string) ([]byte, error) { return a.terminologyCapabilities(base, terms) }
	}
	st, err := cache.get(base, func() ([]byte, error) { return build(base) })
	if err != nil {
		c.Error(err)
		return
	}
	writeFHIRWith(c, http.StatusOK, st.json, st.gzipped)
}

// terminologyCapabilities builds the TerminologyCapabilities served under
// base: the bundled code systems whose codes terms holds. Those stored
// through the API change as they are written, and are not listed.
func (a *api) terminologyCapabilities(base string, terms *terminology.Terminology) ([]byte, error) {
	tc := terminologyCapabilities{capHeader: a.header(base, capHeader{
		ResourceType: "TerminologyCapabilities",
		ID:           "carefhir-terminology",
		URL:          base + "/metadata?mode=terminology",
		Name:         "CarefhirTerminology",
		Title:        "carefhir terminology",
		Description:  "The bundled code systems the terminology operations answer from (R4, HL7 v3 and v2, UK Core), besides the CodeSystems stored here",
	})}
	for _, cs := range terms.CodeSystems() {
		s := tcCodeSystem{URI: cs.URL}
		if cs.Version != "" {
			s.Version = []tcVersion{{Code: cs.Version}}
		}
		tc.CodeSystem = append(tc.CodeSystem, s)
	}
	return json.Marshal(tc)
}

// capabilityStatement builds the CapabilityStatement served under base.
// Everything it says is fixed once the server is built.
func (a *api) capabilityStatement(base string) ([]byte, error) {
	cs := capabilityStatement{capHeader: a.header(base, capHeader{
		ResourceType: "CapabilityStatement",
		ID:           "carefhir",
		URL:          base + "/metadata",
		Name:         "Carefhir",
		Title:        "carefhir FHIR R4 server",
		Description:  "FHIR R4 server for care coordination in NHS primary care",
	})}
	cs.FHIRVersion = "4.0.1"
	cs.Format = []string{mimeFHIRJSON, mimeFHIRXML, "json", "xml"}
	if slices.Contains(a.caps.typeInteractions, "patch") {
		cs.PatchFormat = patchMediaTypes
	}
	cs.Rest = make([]capRest, 1)
	rest := &cs.Rest[0]
	rest.Mode = "server"
	rest.Security = a.security()
	rest.Interaction = codes(a.caps.systemInteractions)
	rest.Operation = a.caps.systemOperations
	rest.Compartment = []string{"http://hl7.org/fhir/CompartmentDefinition/patient"}
	for _, typ := range servedTypes {
		res := capResource{
			Type:        typ,
			Profile:     "http://hl7.org/fhir/StructureDefinition/" + typ,
			Interaction: codes(a.caps.typeInteractions),
			// versioned, not versioned-update: an update without
			// If-Match is accepted.
			Versioning:        "versioned",
			ReadHistory:       true,
			UpdateCreate:      true,
			ConditionalCreate: true,
			ConditionalRead:   "full-support",
			ConditionalUpdate: true,
			ConditionalDelete: "single",
			SearchParam:       a.searchParams(typ),
			SearchInclude:     a.searchIncludes(typ),
			SearchRevInclude:  a.searchRevIncludes(typ),
			Operation:         a.caps.operationsOn(typ),
		}
		if access.ReadOnly(typ) {
			narrowToReads(&res)
		}
		rest.Resource = append(rest.Resource, res)
	}
	return json.Marshal(cs)
}

// narrowToReads narrows the statement of a type the server alone writes (the
// audit trail) to what a client may do with it: every write, conditional
// ones included, is 405 (and $meta-add and $meta-delete are not served
// on it: operation.servedOn).
func narrowToReads(res *capResource) {
	res.Interaction = slices.DeleteFunc(res.Interaction, func(c code) bool { return !slices.Contains(readInteractions, c.Code) })
	res.UpdateCreate = false
	res.ConditionalCreate = false
	res.ConditionalUpdate = false
	res.ConditionalDelete = "not-supported"
}

// readInteractions are the interactions of a type that write nothing.
var readInteractions = []string{"read", "vread", "history-instance", "history-type", "search-type"}

// statementCache keeps the CapabilityStatement once built, by the base URL
// it names: clients fetch it at start and often. Without a configured base
// URL the base comes from each request's Host, which clients choose, so at
// most maxBases are kept.
type statementCache struct {
	mu     sync.Mutex
	byBase map[string]*statement
}

// statement is a CapabilityStatement as served: its JSON, and that JSON
// gzipped, compressed once rather than for every client accepting gzip.
type statement struct {
	json, gzipped []byte
}

const maxBases = 16

func (sc *statementCache) get(base string, build func() ([]byte, error)) (*statement, error) {
	sc.mu.Lock()
	st, ok := sc.byBase[base]
	sc.mu.Unlock()
	if ok {
		return st, nil
	}
	body, err := build()
	if err != nil {
		return nil, err
	}
	st = &statement{json: body, gzipped: contentcoding.Gzip(body)}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.byBase == nil {
		sc.byBase = make(map[string]*statement)
	}
	if len(sc.byBase) < maxBases {
		sc.byBase[base] = st
	}
	return st, nil
}

// listParam is _list, which the server answers for every type (list.go)
// though the registry, whose parameters have an expression, holds it not.
var listParam = capParam{Name: "_list", Definition: "http://hl7.org/fhir/SearchParameter/Resource-list", Type: "string"}

// searchParams lists the search parameters of typ the server answers:
// those of its registry, composite ones when the parser takes them, and
// _list.
func (a *api) searchParams(typ string) []capParam {
	out := []capParam{listParam}
	for _, p := range a.search.Params(typ) {
		if p.Type == "composite" && !search.Searchable(p) {
			continue
		}
		out = append(out, capParam{Name: p.Code, Definition: p.URL, Type: p.Type})
	}
	return out
}

// searchIncludes lists the _include values of typ: its reference
// parameters, and "*".
func (a *api) searchIncludes(typ string) []string {
	out := []string{"*"}
	for _, p := range a.search.Params(typ) {
		if p.Type == "reference" {
			out = append(out, typ+":"+p.Code)
		}
	}
	return out
}

// searchRevIncludes lists the _revinclude values of typ: the reference
// parameters of the served types that can refer to it.
func (a *api) searchRevIncludes(typ string) []string {
	var out []string
	for _, other := range servedTypes {
		for _, p := range a.search.Params(other) {
			if p.Type == "reference" && (slices.Contains(p.Targets, typ) || slices.Contains(p.Targets, "Resource")) {
				out = append(out, other+":"+p.Code)
			}
		}
	}
	return out
}
