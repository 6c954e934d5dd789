package server

// The terminology operations: ValueSet/$expand, ValueSet/$validate-code,
// CodeSystem/$lookup, CodeSystem/$validate-code and CodeSystem/$subsumes
// (https://hl7.org/fhir/R4/terminology-service.html),
// computed by the validator's terminology over the bundled ValueSets and
// CodeSystems and the stored ones. A ValueSet or CodeSystem named by url is
// looked for among the bundled resources first, then in the store; a
// version (valueSetVersion, version, or a "url|version" canonical) must
// match exactly. A stored ValueSet is expanded with the bundled code systems
// and the stored CodeSystems its compose names.
//
// Errors: a missing parameter is 400 (required, with the parameter as
// expression); an unknown ValueSet, CodeSystem or code is 404 (not-found);
// a ValueSet or CodeSystem whose content cannot be computed here (it draws
// on SNOMED CT, LOINC or another code system that is not bundled) is 422
// (not-supported). An expansion of more than maxExpansion codes without a
// count is 422 too-costly, the issue type the terminology service
// specification names for an expansion a server declines for its size: the
// request is well formed and the ValueSet exists (not 400 or 404), and the
// client can page it with count and offset or narrow it with filter.

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"carefhir/fhir"
	"carefhir/fhir/canonical"
	"carefhir/fhir/fhirjson"
	"carefhir/fhir/search"
	"carefhir/profiles/conformance"
	"carefhir/profiles/terminology"
	"carefhir/store"
)

// maxExpansion is the most codes $expand returns in one answer.
const maxExpansion = 1000

// registerTerminology serves the terminology operations when the validator
// has a terminology.
func (a *api) registerTerminology() {
	if termsOf(a.cfg.Validator) == nil {
		return
	}
	// CodeSystem/$validate-code shares its name with ValueSet's: one entry
	// serves both types, each with its own OperationDefinition.
	for _, op := range []operation{
		{name: "expand", definition: "http://hl7.org/fhir/OperationDefinition/ValueSet-expand",
			levels: typeLevel | instanceLevel, types: []string{"ValueSet"}, handle: a.expand},
		{name: "validate-code", definition: "http://hl7.org/fhir/OperationDefinition/ValueSet-validate-code",
			typeDefinitions: map[string]string{"CodeSystem": "http://hl7.org/fhir/OperationDefinition/CodeSystem-validate-code"},
			levels:          typeLevel | instanceLevel, types: []string{"ValueSet", "CodeSystem"}, handle: a.validateCode},
		{name: "lookup", definition: "http://hl7.org/fhir/OperationDefinition/CodeSystem-lookup",
			levels: typeLevel, types: []string{"CodeSystem"}, handle: a.lookup},
		{name: "subsumes", definition: "http://hl7.org/fhir/OperationDefinition/CodeSystem-subsumes",
			levels: typeLevel | instanceLevel, types: []string{"CodeSystem"}, handle: a.subsumes},
	} {
		op.idempotent = true
		a.addOperation(op)
	}
}

// opParams are the parameters of an invocation: those of the query string
// and those of the Parameters resource a POST carries.
type opParams []*fhir.ParametersParameter

// operationParams reads the parameters of an invocation of the operation
// defined by definition: the query string (but _format and _pretty, which
// say how the answer is written), then the body of a POST (bodyParams).
// Both are read, as every operation reads them
// (operation.Invocation.Params): a parameter left in the query string of
// a POST would otherwise be ignored, and one given in both places is given
// twice, which the dispatcher refuses for a parameter taken once.
func (a *api) operationParams(c *gin.Context, definition string) (opParams, error) {
	body, err := a.bodyParams(c, definition)
	if err != nil {
		return nil, err
	}
	q := c.Request.URL.Query()
	var out opParams
	for _, name := range slices.Sorted(maps.Keys(q)) {
		if slices.Contains(generalParams, name) {
			continue
		}
		for _, v := range q[name] {
			out = append(out, &fhir.ParametersParameter{Name: fhir.NewString(name), ValueString: fhir.NewString(v)})
		}
	}
	return append(out, body...), nil
}

// bodyParams reads the parameters of the body of a POST invocation of the
// operation defined by definition: those of a Parameters resource, or a
// resource of another type as the definition's parameter of that type
// (a ValueSet as $expand's valueSet), as the dispatcher takes it
// (checkParams, R4 operations.html).
func (a *api) bodyParams(c *gin.Context, definition string) ([]*fhir.ParametersParameter, error) {
	res, err := postedResource(c)
	if err != nil || res == nil {
		return nil, err
	}
	if p, ok := res.(*fhir.Parameters); ok {
		return p.Parameter, nil
	}
	defined, _ := a.definedParams(definition)
	for _, d := range defined {
		if d.Type == res.ResourceType() {
			return []*fhir.ParametersParameter{{Name: fhir.NewString(d.Name), Resource: res}}, nil
		}
	}
	return nil, errorf(http.StatusBadRequest, "invalid", "the body of an operation is a Parameters resource, not a %s", res.ResourceType())
}

// termParams reads the parameters of an invocation of a terminology
// operation defined by definition (a canonical url), which the dispatcher
// checked against it (checkParams), the type of each included. A date
// (the definitions as they were then) is refused: only the current ones
// are held, and answering from them would change the answer silently.
func (a *api) termParams(c *gin.Context, definition string) (opParams, error) {
	p, err := a.operationParams(c, definition)
	if err != nil {
		return nil, err
	}
	if p.first("date") != nil {
		return nil, errorf(http.StatusUnprocessableEntity, "not-supported", "the date parameter is not supported: only the current definitions of value sets and code systems are held").at(paramPath("date"))
	}
	return p, nil
}

// first returns the first parameter with this name, or nil.
func (p opParams) first(name string) *fhir.ParametersParameter {
	for _, x := range p {
		if x.Name.Get() == name {
			return x
		}
	}
	return nil
}

// all returns the values of the primitive parameters with this name.
func (p opParams) all(name string) []string {
	var out []string
	for _, x := range p {
		if x.Name.Get() == name {
			out = append(out, stringValue(x))
		}
	}
	return out
}

// str returns the value of a primitive parameter, whichever string type
// it was given as.
func (p opParams) str(name string) string {
	x := p.first(name)
	if x == nil {
		return ""
	}
	return stringValue(x)
}

// stringValue returns the value of a parameter of a string type, whichever
// it was given as (the dispatcher took no other for a parameter its
// definition types as one).
func stringValue(x *fhir.ParametersParameter) string {
	return cmp.Or(x.ValueString.Get(), x.ValueUri.Get(), x.ValueCode.Get(), x.ValueCanonical.Get(), x.ValueUrl.Get(),
		x.ValueId.Get(), x.ValueOid.Get(), x.ValueUuid.Get(), x.ValueMarkdown.Get())
}

// number returns the value of a parameter that is a whole number, 0 or
// more; ok is false when it is absent.
func (p opParams) number(name string) (n int, ok bool, err error) {
	x := p.first(name)
	switch {
	case x == nil:
		return 0, false, nil
	case x.ValueInteger != nil:
		n = int(x.ValueInteger.Get())
	case x.ValueUnsignedInt != nil:
		n = int(x.ValueUnsignedInt.Get())
	case x.ValuePositiveInt != nil:
		n = int(x.ValuePositiveInt.Get())
	default:
		if n, err = strconv.Atoi(x.ValueString.Get()); err != nil {
			n = -1
		}
	}
	if n < 0 {
		return 0, false, errorf(http.StatusBadRequest, "invalid", "%s must be a whole number, 0 or more", name).at(paramPath(name))
	}
	return n, true, nil
}

// boolean returns the value of a boolean parameter, false when absent.
func (p opParams) boolean(name string) (bool, error) {
	x := p.first(name)
	switch {
	case x == nil:
		return false, nil
	case x.ValueBoolean != nil:
		return x.ValueBoolean.Get(), nil
	}
	b, err := strconv.ParseBool(x.ValueString.Get())
	if err != nil {
		return false, errorf(http.StatusBadRequest, "invalid", "%s must be true or false", name).at(paramPath(name))
	}
	return b, nil
}

// valueSet is the ValueSet an operation works on.
type valueSet struct {
	url   string
	json  []byte // the ValueSet resource; nil when only the terminology holds it
	terms *terminology.Terminology
}

// resolveValueSet finds the ValueSet of an invocation: the instance, the
// valueSet parameter (a resource) or the url parameter.
func (a *api) resolveValueSet(c *gin.Context, inv invocation, p opParams) (*valueSet, error) {
	base := termsOf(a.cfg.Validator)
	canonical, version, _ := strings.Cut(p.str("url"), "|")
	version = cmp.Or(p.str("valueSetVersion"), version)
	switch {
	case inv.ID != "":
		vs, err := a.valueSetInstance(c, inv.ID)
		if err == nil {
			err = namesInstance(p, inv, "valueSet", vs.url)
		}
		if err != nil {
			return nil, err
		}
		return vs, nil
	case p.first("valueSet") != nil:
		vs, ok := p.first("valueSet").Resource.(*fhir.ValueSet)
		if !ok {
			return nil, errorf(http.StatusBadRequest, "invalid", "the valueSet parameter must hold a ValueSet resource").at(paramPath("valueSet"))
		}
		if err := namesSent(canonical, "valueSet", vs.Url.Get()); err != nil {
			return nil, err
		}
		body, err := fhirjson.Marshal(vs)
		if err != nil {
			return nil, err
		}
		return a.storedValueSet(c, body)
	case canonical == "":
		return nil, errorf(http.StatusBadRequest, "required", "url is missing: name the ValueSet by url, send it as valueSet, or invoke the operation on a ValueSet").at(paramPath("url"))
	}
	if a.cfg.Definitions != nil {
		if r := a.cfg.Definitions.Canonical("ValueSet", canonical, version); r != nil {
			return &valueSet{url: r.URL, json: r.JSON, terms: base}, nil
		}
	}
	v, err := a.findCanonical(c, "ValueSet", canonical, version)
	if err != nil {
		return nil, err
	}
	if v != nil {
		return a.storedValueSet(c, v.JSON)
	}
	if version == "" && a.cfg.Definitions == nil && base.HasValueSet(canonical) {
		return &valueSet{url: canonical, terms: base}, nil
	}
	return nil, errorf(http.StatusNotFound, "not-found", "ValueSet %s is not known here", withVersion(canonical, version)).at(paramPath("url"))
}

// valueSetInstance is ValueSet/id, stored or bundled.
func (a *api) valueSetInstance(c *gin.Context, id string) (*valueSet, error) {
	v, err := a.svc.store.Read(c.Request.Context(), "ValueSet", id)
	switch {
	case err == nil && v.Deleted:
		return nil, gone(v)
	case err == nil:
		return a.storedValueSet(c, v.JSON)
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	if r := a.bundled("ValueSet", id); r != nil {
		return &valueSet{url: r.URL, json: r.JSON, terms: termsOf(a.cfg.Validator)}, nil
	}
	return nil, errorf(http.StatusNotFound, "not-found", "ValueSet/%s is not known", id)
}

// namesInstance refuses, at the instance level, a url naming another
// canonical than url, the instance's, or a resource parameter (valueSet,
// codeSystem) beside it: the operation works on the instance, and would
// answer of it what was asked of another.
func namesInstance(p opParams, inv invocation, resourceParam, url string) error {
	if p.first(resourceParam) != nil {
		return errorf(http.StatusBadRequest, "invalid", "%s is given, but the operation is invoked on %s/%s, which it works on: leave %s out", resourceParam, inv.Type, inv.ID, resourceParam).
			at(paramPath(resourceParam))
	}
	if named, _, _ := strings.Cut(p.str("url"), "|"); named != "" && named != url {
		return errorf(http.StatusBadRequest, "invalid", "url names %s, but the operation is invoked on %s/%s, whose url is %q", named, inv.Type, inv.ID, url).
			at("Parameters.parameter.where(name='url')")
	}
	return nil
}

// namesSent refuses a url, named, beside a resource sent as
// resourceParam whose own url is another: which of the two was meant is
// not known. The resource's own url may be given beside it.
func namesSent(named, resourceParam, url string) error {
	if named == "" || named == url {
		return nil
	}
	return errorf(http.StatusBadRequest, "invalid", "url names %s, but the %s sent beside it is %q: give one of them", named, resourceParam, url).
		at("Parameters.parameter.where(name='url')")
}

func withVersion(url, version string) string {
	if version == "" {
		return url
	}
	return url + "|" + version
}

// bundled returns the bundled resource typ/id, or nil.
func (a *api) bundled(typ, id string) *conformance.Resource {
	if a.cfg.Definitions == nil {
		return nil
	}
	return a.cfg.Definitions.Get(typ, id)
}

// findCanonical returns the stored resource of typ with this canonical url
// and version, or nil. Without a version it is the newest of those with
// the url (canonical.Newest), as R4 leaves the choice to the server
// (references.html, canonical): the one a client last published, not the
// one stored first. Each is read whole to compare their versions, so at
// most Limits.CanonicalVersions of them are: a url held in more answers
// a *tooManyVersions.
func (a *api) findCanonical(c *gin.Context, typ, curl, version string) (*store.Version, error) {
	q := url.Values{"url": {curl}}
	if version != "" {
		q.Set("version", version)
	}
	plan, err := a.search.Parse(typ, q, a.searchOptions(false, a.baseURL(c)))
	if err != nil {
		return nil, searchError(err)
	}
	most := a.cfg.Limits.CanonicalVersions
	plan.Query.Count = most + 1
	if version != "" {
		plan.Query.Count = 1
	}
	found, err := a.svc.store.Search(c.Request.Context(), plan.Query)
	if err != nil || len(found) == 0 {
		return nil, err
	}
	if len(found) > most {
		return nil, &tooManyVersions{typ: typ, url: curl, most: most}
	}
	return canonical.Newest(found)
}

// tooManyVersions reports a canonical url named without a version that
// is held here in more stored resources than findCanonical compares
// (Limits.CanonicalVersions): too costly, which naming the version
// avoids, in a search (:in, :below) as in an operation.
type tooManyVersions struct {
	typ, url string
	most     int
}

func (e *tooManyVersions) Error() string {
	return fmt.Sprintf("%s %s is stored here in more than %d versions, more than are compared to find the newest: name the version (url|version)", e.typ, e.url, e.most)
}

// Is makes a search answer it as the terminology's other costs (400
// too-costly, naming the parameter).
func (e *tooManyVersions) Is(target error) bool { return target == search.ErrTooCostly }

// maxStoredImports bounds the stored ValueSets that one ValueSet draws on
// through compose.include.valueSet and compose.exclude.valueSet, directly
// or not: each is a read of the store.
const maxStoredImports = 100

// composeRefs is what a ValueSet's compose names: code systems, in the
// version an include pins, and ValueSets.
type composeRefs struct {
	URL     string `json:"url"`
	Compose struct {
		Include []composeRef `json:"include"`
		Exclude []composeRef `json:"exclude"`
	} `json:"compose"`
}

type composeRef struct {
	System   string   `json:"system"`
	Version  string   `json:"version"`
	ValueSet []string `json:"valueSet"`
}

// storedValueSet returns a ValueSet that is not bundled, with a terminology
// that also holds it, the stored ValueSets it imports (compose's valueSet,
// directly or not) and the stored CodeSystems they all name.
func (a *api) storedValueSet(c *gin.Context, body []byte) (*valueSet, error) {
	base := termsOf(a.cfg.Validator)
	var top string
	resources := []json.RawMessage{}
	// Each code system is read once, however many includes name it, in
	// the version an include pins, if any: another version of it may
	// give its codes other displays, or lack them. Each ValueSet is read
	// once too, so that imports that go round in a circle end.
	read := map[string]bool{}
	pending := []json.RawMessage{body}
	for imported := 0; len(pending) > 0; imported++ {
		if imported > maxStoredImports {
			return nil, errorf(http.StatusUnprocessableEntity, "too-costly", "the ValueSet %s imports more than %d stored ValueSets", top, maxStoredImports)
		}
		next := pending[0]
		pending = pending[1:]
		var vs composeRefs
		if err := json.Unmarshal(next, &vs); err != nil {
			return nil, fmt.Errorf("stored ValueSet: %w", err)
		}
		if imported == 0 {
			top = vs.URL
		}
		read["ValueSet "+vs.URL] = true
		resources = append(resources, next)
		for _, ref := range append(vs.Compose.Include, vs.Compose.Exclude...) {
			canonical, version, _ := strings.Cut(ref.System, "|")
			version = cmp.Or(ref.Version, version)
			if canonical != "" && !base.HasCodeSystem(canonical) {
				cs, err := a.readOnce(c, read, "CodeSystem", canonical, version)
				if err != nil {
					return nil, err
				}
				if cs != nil {
					resources = append(resources, cs.JSON)
				}
			}
			for _, u := range ref.ValueSet {
				canonical, version, _ := strings.Cut(u, "|")
				if base.HasValueSet(canonical) || read["ValueSet "+canonical] {
					continue
				}
				v, err := a.readOnce(c, read, "ValueSet", canonical, version)
				if err != nil {
					return nil, err
				}
				if v != nil {
					pending = append(pending, v.JSON)
				}
			}
		}
	}
	terms, err := base.With(resources...)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "invalid", "%v", err)
	}
	return &valueSet{url: top, json: body, terms: terms}, nil
}

// readOnce returns the stored resource of typ with this canonical url and
// version, as findCanonical does, unless read holds it already: then, nil.
func (a *api) readOnce(c *gin.Context, read map[string]bool, typ, canonical, version string) (*store.Version, error) {
	key := typ + " " + canonical + "|" + version
	if read[key] {
		return nil, nil
	}
	read[key] = true
	return a.findCanonical(c, typ, canonical, version)
}

// valueSetInvocation reads the parameters of a ValueSet operation (defined
// as definition) and finds its ValueSet.
func (a *api) valueSetInvocation(c *gin.Context, inv invocation, definition string) (opParams, *valueSet, error) {
	p, err := a.termParams(c, "http://hl7.org/fhir/OperationDefinition/"+definition)
	if err != nil {
		return nil, nil, err
	}
	vs, err := a.resolveValueSet(c, inv, p)
	return p, vs, err
}

// terminologyError converts an error of package terminology about a
// ValueSet or CodeSystem that was found into the server's Error.
func terminologyError(err error) error {
	if errors.Is(err, terminology.ErrTooCostly) {
		return errorf(http.StatusUnprocessableEntity, "too-costly", "%s", strings.TrimPrefix(err.Error(), "terminology: "))
	}
	if errors.Is(err, terminology.ErrNotComputable) || errors.Is(err, terminology.ErrCodeSystemUnavailable) || errors.Is(err, terminology.ErrNotFound) {
		return errorf(http.StatusUnprocessableEntity, "not-supported", "%s", strings.TrimPrefix(err.Error(), "terminology: "))
	}
	return err
}

// expand answers $expand: the ValueSet's metadata and its expansion, of the
// codes that match filter, from offset, at most count of them.
func (a *api) expand(c *gin.Context, inv invocation) {
	p, vs, err := a.valueSetInvocation(c, inv, "ValueSet-expand")
	if err == nil {
		err = expandRefused(p)
	}
	if err != nil {
		c.Error(err)
		return
	}
	offset, hasOffset, err := p.number("offset")
	if err != nil {
		c.Error(err)
		return
	}
	count, hasCount, err := p.number("count")
	if err != nil {
		c.Error(err)
		return
	}
	flags := map[string]bool{}
	for _, name := range []string{"includeDefinition", "activeOnly", "includeDesignations", "excludeNotForUI"} {
		if flags[name], err = p.boolean(name); err != nil {
			c.Error(err)
			return
		}
	}
	exp, err := vs.terms.Expand(vs.url)
	if err != nil {
		c.Error(terminologyError(err))
		return
	}
	filter, language := p.str("filter"), p.str("displayLanguage")
	codes := terminology.Filter(exp.Contains, filter)
	if flags["activeOnly"] {
		codes = terminology.Active(codes)
	}
	if flags["excludeNotForUI"] {
		// An expansion for a user to choose from leaves out the
		// abstract concepts, which only group others.
		codes = terminology.Selectable(codes)
	}
	codes, systemParams, err := systemVersions(p, vs, codes)
	if err != nil {
		c.Error(err)
		return
	}
	if !hasCount && len(codes) > maxExpansion {
		c.Error(errorf(http.StatusUnprocessableEntity, "too-costly",
			"the expansion of %s has %d codes, more than the %d this server returns at once: page through it with count and offset, or narrow it with filter",
			vs.url, len(codes), maxExpansion))
		return
	}
	if !hasCount {
		count = len(codes)
	}
	count = min(count, maxExpansion)
	start := min(offset, len(codes))
	page := codes[start:min(start+count, len(codes))]

	out := &fhir.ValueSet{Url: fhir.NewUri(vs.url), Name: fhir.NewString(exp.Name), Status: fhir.NewCode("unknown")}
	if vs.json != nil {
		// Read as stored: a ValueSet an older release let through with a
		// date on a day its month lacks is still expanded.
		res, err := fhirjson.UnmarshalStoredAs(vs.json, "ValueSet")
		if err != nil {
			c.Error(err)
			return
		}
		out = res.(*fhir.ValueSet)
	}
	if !flags["includeDefinition"] {
		out.Compose = nil
	}
	e := &fhir.ValueSetExpansion{
		Identifier: fhir.NewUri("urn:uuid:" + newID()),
		Timestamp:  fhir.NewDateTime(formatInstant(time.Now())),
		Total:      fhir.NewInteger(int64(len(codes))),
	}
	if hasOffset || hasCount {
		e.Offset = fhir.NewInteger(int64(offset))
	}
	if filter != "" {
		e.Parameter = append(e.Parameter, &fhir.ValueSetExpansionParameter{Name: fhir.NewString("filter"), ValueString: fhir.NewString(filter)})
	}
	for _, n := range []struct {
		name  string
		value int
		given bool
	}{{"offset", offset, hasOffset}, {"count", count, hasCount}} {
		if n.given {
			e.Parameter = append(e.Parameter, &fhir.ValueSetExpansionParameter{Name: fhir.NewString(n.name), ValueInteger: fhir.NewInteger(int64(n.value))})
		}
	}
	for _, name := range []string{"activeOnly", "includeDesignations", "excludeNotForUI"} {
		if p.first(name) != nil {
			e.Parameter = append(e.Parameter, &fhir.ValueSetExpansionParameter{Name: fhir.NewString(name), ValueBoolean: fhir.NewBoolean(flags[name])})
		}
	}
	if language != "" {
		e.Parameter = append(e.Parameter, &fhir.ValueSetExpansionParameter{Name: fhir.NewString("displayLanguage"), ValueCode: fhir.NewCode(language)})
	}
	e.Parameter = append(e.Parameter, systemParams...)
	for _, code := range page {
		e.Contains = append(e.Contains, expansionEntry(code, language, flags["includeDesignations"]))
	}
	out.Expansion = e
	body, err := fhirjson.Marshal(out)
	if err != nil {
		c.Error(err)
		return
	}
	writeFHIR(c, http.StatusOK, body)
}

// unsupportedExpand are the parameters of $expand this server does not
// honour, each with why. Ignored, they would change the answer silently,
// so an expansion asked with one is refused.
var unsupportedExpand = []struct{ name, why string }{
	{"context", "expansions do not depend on where the code is used"},
	{"contextDirection", "expansions do not depend on where the code is used"},
	{"designation", "designations cannot be chosen by language or use: ask for all of them with includeDesignations"},
}

// expandRefused returns the error for the first parameter of
// unsupportedExpand an $expand gives, or nil.
func expandRefused(p opParams) error {
	for _, u := range unsupportedExpand {
		if p.first(u.name) != nil {
			return errorf(http.StatusUnprocessableEntity, "not-supported", "the %s parameter of $expand is not supported: %s", u.name, u.why).at(paramPath(u.name))
		}
	}
	return nil
}

// systemVersions applies to codes the parameters of $expand that name code
// systems, each a canonical (system or system|version), and returns the
// codes and the parameters applied, for expansion.parameter.
// exclude-system leaves out the codes of a system (of that version, when
// it names one). Each code system is held in one version, so
// system-version and force-system-version can only be that version (or
// the one the ValueSet pins): another is 422 not-supported, even when the
// ValueSet pins a version that system-version would give way to, as
// which version the codes come from is not told apart here.
// check-system-version of another version than the codes' is 422
// business-rule, as R4 asks an error for.
func systemVersions(p opParams, vs *valueSet, codes []terminology.Concept) ([]terminology.Concept, []*fhir.ValueSetExpansionParameter, error) {
	var applied []*fhir.ValueSetExpansionParameter
	for _, name := range []string{"exclude-system", "system-version", "check-system-version", "force-system-version"} {
		for _, value := range p.all(name) {
			system, version, _ := strings.Cut(value, "|")
			if system == "" || (name != "exclude-system" && version == "") {
				return nil, nil, errorf(http.StatusBadRequest, "invalid", "%s must be a code system's canonical url with its version (system|version), not %q", name, value).at(paramPath(name))
			}
			held, _ := vs.terms.CodeSystemVersion(system)
			var kept []terminology.Concept
			for _, code := range codes {
				if code.System != system {
					kept = append(kept, code)
					continue
				}
				effective := cmp.Or(code.Version, held)
				switch name {
				case "exclude-system":
					if version != "" && version != effective {
						kept = append(kept, code)
					}
					continue
				case "check-system-version":
					if effective != version {
						return nil, nil, errorf(http.StatusUnprocessableEntity, "business-rule", "the expansion of %s has codes of %s in version %q, not %q", vs.url, system, effective, version).at(paramPath(name))
					}
				case "system-version", "force-system-version":
					if effective != version && held != version {
						return nil, nil, errorf(http.StatusUnprocessableEntity, "not-supported", "version %q of the code system %s is not available here: it has version %q", version, system, held).at(paramPath(name))
					}
					code.Version = version
				}
				kept = append(kept, code)
			}
			codes = kept
			applied = append(applied, &fhir.ValueSetExpansionParameter{Name: fhir.NewString(name), ValueUri: fhir.NewUri(value)})
		}
	}
	return codes, applied, nil
}

// expansionEntry is concept as an expansion contains it: its display in
// language (the concept's own when it has none there), whether it is
// inactive and, with designations, its designations.
func expansionEntry(concept terminology.Concept, language string, designations bool) *fhir.ValueSetExpansionContains {
	entry := &fhir.ValueSetExpansionContains{System: fhir.NewUri(concept.System), Code: fhir.NewCode(concept.Code)}
	if concept.Version != "" {
		entry.Version = fhir.NewString(concept.Version)
	}
	if d := concept.DisplayIn(language); d != "" {
		entry.Display = fhir.NewString(d)
	}
	if concept.Inactive {
		entry.Inactive = fhir.NewBoolean(true)
	}
	if concept.Abstract {
		entry.Abstract = fhir.NewBoolean(true)
	}
	if !designations {
		return entry
	}
	for _, d := range concept.Designations {
		des := &fhir.ValueSetComposeIncludeConceptDesignation{Value: fhir.NewString(d.Value)}
		if d.Language != "" {
			des.Language = fhir.NewCode(d.Language)
		}
		var use struct{ System, Version, Code, Display string }
		if d.Use != nil && json.Unmarshal(d.Use, &use) == nil {
			des.Use = &fhir.Coding{System: optional(fhir.NewUri, use.System), Version: optional(fhir.NewString, use.Version),
				Code: optional(fhir.NewCode, use.Code), Display: optional(fhir.NewString, use.Display)}
		}
		entry.Designation = append(entry.Designation, des)
	}
	return entry
}

// optional returns the primitive of value made by newPrimitive, or nil when
// value is empty.
func optional[T any](newPrimitive func(string) *T, value string) *T {
	if value == "" {
		return nil
	}
	return newPrimitive(value)
}

// coding returns the coding parameter, nil when absent; given other than
// as a Coding (in a query string, where only primitive parameters can be),
// it is refused.
func (p opParams) coding() (*fhir.Coding, error) {
	x := p.first("coding")
	switch {
	case x == nil:
		return nil, nil
	case x.ValueCoding == nil:
		return nil, errorf(http.StatusBadRequest, "invalid", "coding must be a Coding: send it in a Parameters resource").at(paramPath("coding"))
	}
	return x.ValueCoding, nil
}

// codingParam is one coding $validate-code checks, and where it came from.
type codingParam struct {
	system, version, code, display string
	expression                     string
}

// codings returns the codings a $validate-code invocation checks: the
// codeableConcept's, the coding, or code with system, systemVersion and
// display. "One (and only one) of the in parameters (code, coding,
// codeableConcept) must be provided", and "if a code is provided, a system
// or a context must be provided"
// (https://hl7.org/fhir/R4/valueset-operation-validate-code.html).
// On a CodeSystem (codeSystem its url), a code is of that code system, in
// the version the version parameter gives.
func (p opParams) codings(codeSystem string) ([]codingParam, error) {
	var given []string
	for _, name := range []string{"code", "coding", "codeableConcept"} {
		if p.first(name) != nil {
			given = append(given, name)
		}
	}
	if len(given) > 1 {
		err := errorf(http.StatusBadRequest, "invalid", "give one (and only one) of code, coding and codeableConcept, not %s", strings.Join(given, " and "))
		for _, name := range given {
			err.Issues[0].Expression = append(err.Issues[0].Expression, paramPath(name))
		}
		return nil, err
	}
	if x := p.first("codeableConcept"); x != nil {
		if x.ValueCodeableConcept == nil || len(x.ValueCodeableConcept.Coding) == 0 {
			return nil, errorf(http.StatusBadRequest, "required", "codeableConcept must be a CodeableConcept with a coding").at(paramPath("codeableConcept"))
		}
		var out []codingParam
		for i, cd := range x.ValueCodeableConcept.Coding {
			out = append(out, codingParam{cd.System.Get(), cd.Version.Get(), cd.Code.Get(), cd.Display.Get(), fmt.Sprintf("codeableConcept.coding[%d]", i)})
		}
		return out, nil
	}
	cd, err := p.coding()
	if err != nil {
		return nil, err
	}
	if cd != nil {
		return []codingParam{{cd.System.Get(), cd.Version.Get(), cd.Code.Get(), cd.Display.Get(), "coding"}}, nil
	}
	switch {
	case p.str("code") == "":
		return nil, errorf(http.StatusBadRequest, "required", "code is missing: give code (with system), coding or codeableConcept").at(paramPath("code"))
	case codeSystem != "":
		return []codingParam{{codeSystem, p.str("version"), p.str("code"), p.str("display"), "code"}}, nil
	case p.str("system") == "" && p.first("context") == nil:
		return nil, errorf(http.StatusBadRequest, "required", "system is missing: a code needs the system it is from (or a context)").at(paramPath("system"))
	}
	return []codingParam{{p.str("system"), p.str("systemVersion"), p.str("code"), p.str("display"), "code"}}, nil
}

// validateCode answers $validate-code: whether the ValueSet holds the
// code, coding or any coding of the codeableConcept, with the concept's
// display (in displayLanguage when it has one there). A version of the
// code system that is not known here makes a coding invalid. On a
// CodeSystem, whether the CodeSystem defines it.
func (a *api) validateCode(c *gin.Context, inv invocation) {
	if inv.Type == "CodeSystem" {
		a.validateCodeInCodeSystem(c, inv)
		return
	}
	p, vs, err := a.valueSetInvocation(c, inv, "ValueSet-validate-code")
	if err != nil {
		c.Error(err)
		return
	}
	codings, err := p.codings("")
	if err != nil {
		c.Error(err)
		return
	}
	answerValidateCode(c, p, codings, func(cd codingParam) (*terminology.Concept, string, error) {
		// A code alone may stand on its context; a Coding without a
		// system says nothing of what its code means.
		if cd.system == "" && cd.expression != "code" {
			return nil, cd.expression + " has no system", nil
		}
		unknown, err := a.unknownVersion(c, vs, cd)
		if err != nil || unknown != "" {
			return nil, unknown, err
		}
		ok, concept, err := vs.terms.ValidateCode(vs.url, cd.system, cd.code)
		switch {
		case err != nil:
			return nil, "", terminologyError(err)
		case !ok:
			return nil, fmt.Sprintf("%s is not in the value set %s", cd.name(), vs.url), nil
		}
		return &concept, "", nil
	})
}

// name is the coding as system#code.
func (cd codingParam) name() string {
	return strings.TrimPrefix(cd.system+"#"+cd.code, "#")
}

// validateCodeInCodeSystem answers CodeSystem/$validate-code: whether the
// CodeSystem (the instance, the codeSystem parameter, or the one url and
// version name) defines the code, coding or a coding of the
// codeableConcept
// (https://hl7.org/fhir/R4/codesystem-operation-validate-code.html).
// A coding of another system, or of another version, is not in it.
func (a *api) validateCodeInCodeSystem(c *gin.Context, inv invocation) {
	p, err := a.termParams(c, "http://hl7.org/fhir/OperationDefinition/CodeSystem-validate-code")
	if err != nil {
		c.Error(err)
		return
	}
	cs, err := a.resolveCodeSystem(c, inv, p)
	if err != nil {
		c.Error(err)
		return
	}
	var head struct{ URL, Version string }
	if err := json.Unmarshal(cs, &head); err != nil {
		c.Error(fmt.Errorf("CodeSystem: %w", err))
		return
	}
	codings, err := p.codings(head.URL)
	if err != nil {
		c.Error(err)
		return
	}
	answerValidateCode(c, p, codings, func(cd codingParam) (*terminology.Concept, string, error) {
		switch {
		case cd.system != "" && cd.system != head.URL:
			return nil, fmt.Sprintf("%s is not in the code system %s", cd.name(), head.URL), nil
		case cd.version != "" && cd.version != head.Version:
			return nil, fmt.Sprintf("version %q of the code system %s (%s) is not known here: it has version %q", cd.version, head.URL, cd.expression, head.Version), nil
		}
		d, err := terminology.LookupIn(cs, cd.code)
		switch {
		case errors.Is(err, terminology.ErrUnknownCode):
			return nil, fmt.Sprintf("%s is not defined by the code system %s", cd.name(), head.URL), nil
		case err != nil:
			return nil, "", terminologyError(err)
		}
		return &d.Concept, "", nil
	})
}

// resolveCodeSystem finds the CodeSystem of an invocation, as JSON: the
// instance, the codeSystem parameter (a resource), or the one the url
// parameter names, in version when given.
func (a *api) resolveCodeSystem(c *gin.Context, inv invocation, p opParams) (json.RawMessage, error) {
	canonical, version, _ := strings.Cut(p.str("url"), "|")
	version = cmp.Or(p.str("version"), version)
	switch {
	case inv.ID != "":
		cs, err := a.codeSystemInstance(c, inv.ID)
		if err != nil {
			return nil, err
		}
		var head struct{ URL string }
		if err := json.Unmarshal(cs, &head); err != nil {
			return nil, fmt.Errorf("CodeSystem/%s: %w", inv.ID, err)
		}
		if err := namesInstance(p, inv, "codeSystem", head.URL); err != nil {
			return nil, err
		}
		return cs, nil
	case p.first("codeSystem") != nil:
		cs, ok := p.first("codeSystem").Resource.(*fhir.CodeSystem)
		if !ok {
			return nil, errorf(http.StatusBadRequest, "invalid", "the codeSystem parameter must hold a CodeSystem resource").at(paramPath("codeSystem"))
		}
		if err := namesSent(canonical, "codeSystem", cs.Url.Get()); err != nil {
			return nil, err
		}
		return fhirjson.Marshal(cs)
	case canonical == "":
		return nil, errorf(http.StatusBadRequest, "required", "url is missing: name the CodeSystem by url, send it as codeSystem, or invoke the operation on a CodeSystem").at(paramPath("url"))
	}
	cs, err := a.findCodeSystem(c, canonical, version)
	if err == nil && cs == nil {
		return nil, errorf(http.StatusNotFound, "not-found", "CodeSystem %s is not known here", withVersion(canonical, version)).at(paramPath("url"))
	}
	return cs, err
}

// codeSystemInstance is CodeSystem/id, stored or bundled, as JSON.
func (a *api) codeSystemInstance(c *gin.Context, id string) (json.RawMessage, error) {
	v, err := a.svc.store.Read(c.Request.Context(), "CodeSystem", id)
	switch {
	case err == nil && v.Deleted:
		return nil, gone(v)
	case err == nil:
		return v.JSON, nil
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	if r := a.bundled("CodeSystem", id); r != nil {
		return r.JSON, nil
	}
	return nil, errorf(http.StatusNotFound, "not-found", "CodeSystem/%s is not known", id)
}

// answerValidateCode answers $validate-code for codings, each looked for
// by find, which returns the concept, or why the coding is not there. A
// display that is neither the concept's nor one of its designations (case
// aside) makes a coding invalid, as the terminology service does by
// default; when another coding of the codeableConcept is valid the answer
// is true, with a message naming the display. The display answered is the
// concept's, in language when it has one there. An abstract concept
// (notSelectable) is invalid unless the abstract parameter is true: "If
// this parameter is false, abstract codes are not considered to be valid"
// (https://hl7.org/fhir/R4/valueset-operation-validate-code.html), and
// false is its default.
func answerValidateCode(c *gin.Context, p opParams, codings []codingParam, find func(codingParam) (*terminology.Concept, string, error)) {
	abstractValid, err := p.boolean("abstract")
	if err != nil {
		c.Error(err)
		return
	}
	language := p.str("displayLanguage")
	result, display := false, ""
	// problems are why codings are invalid; wrongDisplays, those of them
	// that still stand when another coding is valid.
	var problems, wrongDisplays []string
	for _, cd := range codings {
		if cd.code == "" {
			problems = append(problems, cd.expression+" has no code")
			continue
		}
		concept, problem, err := find(cd)
		switch {
		case err != nil:
			c.Error(err)
			return
		case concept == nil:
			problems = append(problems, problem)
		case concept.Abstract && !abstractValid:
			problems = append(problems, fmt.Sprintf("%s is abstract (not selectable): it is valid only with abstract true", cd.name()))
		case cd.display != "" && !concept.ValidDisplay(cd.display):
			msg := fmt.Sprintf("the display %q is not that of %s, which is %q", cd.display, cd.name(), concept.Display)
			problems, wrongDisplays = append(problems, msg), append(wrongDisplays, msg)
			display = cmp.Or(display, concept.DisplayIn(language))
		default:
			result = true
			display = concept.DisplayIn(language)
		}
	}
	out := []map[string]any{{"name": "result", "valueBoolean": result}}
	messages := problems
	if result {
		messages = wrongDisplays
	}
	if len(messages) > 0 {
		out = append(out, map[string]any{"name": "message", "valueString": strings.Join(messages, "; ")})
	}
	if display != "" {
		out = append(out, map[string]any{"name": "display", "valueString": display})
	}
	writeParameters(c, out)
}

// unknownVersion returns why the version of the code system cd names is
// not known here, or "". Only a code system the ValueSet's terminology
// holds is checked: a version is known when it is that one's, or that of
// a bundled or stored CodeSystem with the same url.
func (a *api) unknownVersion(c *gin.Context, vs *valueSet, cd codingParam) (string, error) {
	held, ok := vs.terms.CodeSystemVersion(cd.system)
	if cd.version == "" || !ok || cd.version == held {
		return "", nil
	}
	cs, err := a.findCodeSystem(c, cd.system, cd.version)
	if err != nil || cs != nil {
		return "", err
	}
	has := "no version"
	if held != "" {
		has = fmt.Sprintf("version %q", held)
	}
	return fmt.Sprintf("version %q of the code system %s (%s) is not known here: it has %s", cd.version, cd.system, cd.expression, has), nil
}

// writeParameters answers with a Parameters resource of these parameters.
func writeParameters(c *gin.Context, params []map[string]any) {
	body, err := json.Marshal(struct {
		ResourceType string           `json:"resourceType"`
		Parameter    []map[string]any `json:"parameter"`
	}{"Parameters", params})
	if err != nil {
		c.Error(err)
		return
	}
	writeFHIR(c, http.StatusOK, body)
}

// lookup answers $lookup: the CodeSystem's name and version, and the
// concept's display (in displayLanguage when it has a designation there),
// designations and properties (all of them, or those the property
// parameters name).
func (a *api) lookup(c *gin.Context, _ invocation) {
	p, err := a.termParams(c, "http://hl7.org/fhir/OperationDefinition/CodeSystem-lookup")
	if err != nil {
		c.Error(err)
		return
	}
	system, code, version := p.str("system"), p.str("code"), p.str("version")
	cd, err := p.coding()
	if err != nil {
		c.Error(err)
		return
	}
	if cd != nil {
		system, code, version = cd.System.Get(), cd.Code.Get(), cmp.Or(version, cd.Version.Get())
	}
	switch {
	case code == "":
		c.Error(errorf(http.StatusBadRequest, "required", "code is missing: give system and code, or coding").at(paramPath("code")))
		return
	case system == "":
		c.Error(errorf(http.StatusBadRequest, "required", "system is missing: give the CodeSystem's canonical url").at(paramPath("system")))
		return
	}
	canonical, v, _ := strings.Cut(system, "|")
	version = cmp.Or(version, v)
	cs, err := a.codeSystem(c, canonical, version)
	if err != nil {
		c.Error(err)
		return
	}
	d, err := terminology.LookupIn(cs, code)
	switch {
	case errors.Is(err, terminology.ErrUnknownCode):
		c.Error(errorf(http.StatusNotFound, "not-found", "code %q is not defined by the CodeSystem %s", code, canonical).at(paramPath("code")))
		return
	case err != nil:
		c.Error(terminologyError(err))
		return
	}
	out := []map[string]any{{"name": "name", "valueString": cmp.Or(d.Name, d.System)}}
	if d.Version != "" {
		out = append(out, map[string]any{"name": "version", "valueString": d.Version})
	}
	if display := d.DisplayIn(p.str("displayLanguage")); display != "" {
		out = append(out, map[string]any{"name": "display", "valueString": display})
	}
	for _, des := range d.Designations {
		parts := []map[string]any{}
		if des.Language != "" {
			parts = append(parts, map[string]any{"name": "language", "valueCode": des.Language})
		}
		if des.Use != nil {
			parts = append(parts, map[string]any{"name": "use", "valueCoding": des.Use})
		}
		parts = append(parts, map[string]any{"name": "value", "valueString": des.Value})
		out = append(out, map[string]any{"name": "designation", "part": parts})
	}
	var wanted []string
	for _, x := range p {
		if x.Name.Get() == "property" {
			wanted = append(wanted, cmp.Or(x.ValueCode.Get(), x.ValueString.Get()))
		}
	}
	for _, prop := range d.Properties {
		if len(wanted) > 0 && !slices.Contains(wanted, prop.Code) {
			continue
		}
		out = append(out, map[string]any{"name": "property", "part": []map[string]any{
			{"name": "code", "valueCode": prop.Code},
			{"name": "value", "value" + prop.Type: prop.Value},
		}})
	}
	writeParameters(c, out)
}

// codeSystem returns the CodeSystem with this canonical url (and version,
// when given) as JSON: bundled, or else stored; 404 when there is none.
func (a *api) codeSystem(c *gin.Context, canonical, version string) (json.RawMessage, error) {
	cs, err := a.findCodeSystem(c, canonical, version)
	if err == nil && cs == nil {
		return nil, errorf(http.StatusNotFound, "not-found", "CodeSystem %s is not known here", withVersion(canonical, version)).at(paramPath("system"))
	}
	return cs, err
}

// findCodeSystem returns the CodeSystem with this canonical url (and
// version, when given) as JSON, bundled or else stored, or nil.
func (a *api) findCodeSystem(c *gin.Context, canonical, version string) (json.RawMessage, error) {
	if a.cfg.Definitions != nil {
		if r := a.cfg.Definitions.Canonical("CodeSystem", canonical, version); r != nil {
			return r.JSON, nil
		}
	}
	v, err := a.findCanonical(c, "CodeSystem", canonical, version)
	if err != nil || v == nil {
		return nil, err
	}
	return v.JSON, nil
}

// subsumes answers CodeSystem/$subsumes: how codeA and codeB (or codingA
// and codingB) are related in the hierarchy of the code system (the
// instance, or the one system and version name)
// (https://hl7.org/fhir/R4/codesystem-operation-subsumes.html). The
// hierarchy is the one :below and :above search: nested concepts and the
// parent, subsumedBy and child properties.
func (a *api) subsumes(c *gin.Context, inv invocation) {
	p, err := a.termParams(c, "http://hl7.org/fhir/OperationDefinition/CodeSystem-subsumes")
	if err != nil {
		c.Error(err)
		return
	}
	system, version := p.str("system"), p.str("version")
	var codes [2]string
	for i, side := range []string{"A", "B"} {
		codes[i] = p.str("code" + side)
		x := p.first("coding" + side)
		switch {
		case x != nil && x.ValueCoding == nil:
			c.Error(errorf(http.StatusBadRequest, "invalid", "coding%s must be a Coding: send it in a Parameters resource", side).at(paramPath("coding" + side)))
			return
		case x != nil && codes[i] != "":
			c.Error(errorf(http.StatusBadRequest, "invalid", "give code%[1]s or coding%[1]s, not both", side).at(paramPath("coding" + side)))
			return
		case x != nil:
			cd := x.ValueCoding
			if s := cd.System.Get(); s != "" && system != "" && s != system {
				c.Error(errorf(http.StatusBadRequest, "invalid", "coding%s is of the code system %s, not %s", side, s, system).at(paramPath("coding" + side)))
				return
			}
			system, version, codes[i] = cmp.Or(system, cd.System.Get()), cmp.Or(version, cd.Version.Get()), cd.Code.Get()
		}
		if codes[i] == "" {
			c.Error(errorf(http.StatusBadRequest, "required", "code%[1]s is missing: give code%[1]s or coding%[1]s", side).at(paramPath("code" + side)))
			return
		}
	}
	var cs json.RawMessage
	switch {
	case inv.ID != "":
		cs, err = a.resolveCodeSystem(c, inv, nil)
	case system == "":
		err = errorf(http.StatusBadRequest, "required", "system is missing: give the CodeSystem's canonical url").at(paramPath("system"))
	default:
		cs, err = a.codeSystem(c, system, version)
	}
	if err != nil {
		c.Error(err)
		return
	}
	var head struct{ URL string }
	if err := json.Unmarshal(cs, &head); err != nil {
		c.Error(fmt.Errorf("CodeSystem: %w", err))
		return
	}
	if system != "" && system != head.URL {
		c.Error(errorf(http.StatusBadRequest, "invalid", "the codes are of the code system %s, not of CodeSystem/%s (%s)", system, inv.ID, head.URL).at(paramPath("system")))
		return
	}
	terms, err := termsOf(a.cfg.Validator).With(cs)
	if err != nil {
		c.Error(errorf(http.StatusBadRequest, "invalid", "%v", err))
		return
	}
	hierarchy := terms.ForSearch()
	var above [2][]string
	for i, side := range []string{"A", "B"} {
		above[i], err = hierarchy.Above(head.URL, codes[i])
		switch {
		case errors.Is(err, terminology.ErrUnknownCode):
			c.Error(errorf(http.StatusNotFound, "not-found", "code%s %q is not defined by the CodeSystem %s", side, codes[i], head.URL).at(paramPath("code" + side)))
			return
		case err != nil:
			c.Error(terminologyError(err))
			return
		}
	}
	outcome := "not-subsumed"
	switch {
	case codes[0] == codes[1]:
		outcome = "equivalent"
	case slices.Contains(above[0], codes[1]):
		outcome = "subsumed-by"
	case slices.Contains(above[1], codes[0]):
		outcome = "subsumes"
	}
	writeParameters(c, []map[string]any{{"name": "outcome", "valueCode": outcome}})
}
