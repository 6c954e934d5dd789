package server

// The parameters of an invocation checked against the OperationDefinition
// the CapabilityStatement names for the operation where it was invoked: a
// parameter the definition does not state, one given more times than its
// max, or one of min 1 missing is refused before the operation runs, the
// same for every operation, GET query and POST Parameters alike. An
// operation left to ignore a parameter it does not know would answer
// something other than what was asked (an expansion without the filter
// the client meant to give) without saying so. A client that prefers
// lenient handling says it would rather have that answer (R4 search.html,
// handling): there a parameter the definition does not state is taken out
// of the invocation before the operation runs, as a search ignores one.

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"carefhir/fhir"
	"carefhir/fhir/lexical"
)

// defParam is an input parameter of an OperationDefinition.
type defParam struct {
	Name string `json:"name"`
	Use  string `json:"use"`
	Min  int    `json:"min"`
	Max  string `json:"max"`
	Type string `json:"type"`
}

// generalParams are the parameters that say how any answer is written
// (R4 http.html, "General parameters"), taken from the query string of an
// invocation whatever its definition states. _summary and _elements, the
// other two, are not applied to the answer of an operation, so an
// operation whose definition does not state them refuses them.
var generalParams = []string{"_format", "_pretty"}

// definedParams returns the input parameters of the bundled
// OperationDefinition of canonical url; ok is false when none is bundled,
// and then invocations are not checked.
func (a *api) definedParams(url string) (params []defParam, ok bool) {
	if a.cfg.Definitions == nil {
		return nil, false
	}
	r := a.cfg.Definitions.Canonical("OperationDefinition", url, "")
	if r == nil {
		return nil, false
	}
	var d struct{ Parameter []defParam }
	if err := json.Unmarshal(r.JSON, &d); err != nil {
		// The bundled definitions are embedded or installed by the host,
		// and tested to load.
		panic(fmt.Sprintf("server: OperationDefinition %s: %v", url, err))
	}
	for _, p := range d.Parameter {
		if p.Use == "in" {
			params = append(params, p)
		}
	}
	return params, true
}

// givenParams are the parameters of an invocation: the name of each, as
// many times as it is given, in the order given (the query string, then
// the Parameters body); and the type of a body that is not a Parameters
// resource, which stands for the definition's resource parameter.
type givenParams struct {
	names        []string
	resourceType string
}

// checkParams refuses an invocation of op on inv whose parameters the
// operation's definition there does not allow.
func (a *api) checkParams(c *gin.Context, op operation, inv invocation) error {
	// The body is read whether or not a definition is bundled, so that a
	// malformed Parameters is refused for every operation.
	given, err := invocationParams(c, op.rawBody)
	if err != nil {
		return err
	}
	params, ok := op.params[op.definitionOn(inv.Type)]
	if !ok {
		return nil
	}
	counts := map[string]int{}
	for _, name := range given.names {
		counts[name]++
	}
	lenient := preference(c, "handling") == "lenient"
	var unknown []string
	for _, name := range given.names {
		at := paramPath(name)
		i := slices.IndexFunc(params, func(p defParam) bool { return p.Name == name })
		if i < 0 {
			if slices.Contains(op.extra, name) {
				continue
			}
			if lenient {
				unknown = append(unknown, name)
				continue
			}
			return errorf(http.StatusBadRequest, "not-supported", "unknown parameter %q: this operation takes %s", truncate(name, 64), paramNames(params)).at(at)
		}
		if max, err := strconv.Atoi(params[i].Max); err == nil && counts[name] > max {
			return errorf(http.StatusBadRequest, "invalid", "%s is given %d times: $%s takes it %s", name, counts[name], op.name, times(max)).at(at)
		}
	}
	// A body that is not Parameters stands for an input parameter of its
	// type (R4 operations.html): one the definition has no such parameter
	// for would be read as no parameters at all.
	if given.resourceType != "" && !slices.ContainsFunc(params, func(p defParam) bool { return p.Type == "Resource" || p.Type == given.resourceType }) {
		return errorf(http.StatusBadRequest, "invalid", "the body of $%s is a Parameters resource: the operation takes no %s", op.name, given.resourceType)
	}
	for _, p := range params {
		if p.Min > 0 && counts[p.Name] == 0 && !(given.resourceType != "" && (p.Type == "Resource" || p.Type == given.resourceType)) {
			return errorf(http.StatusBadRequest, "required", "%s is missing: $%s requires it", p.Name, op.name).at(paramPath(p.Name))
		}
	}
	if res, ok := c.Get(ctxResource); ok {
		if p, ok := res.(*fhir.Parameters); ok {
			for _, x := range p.Parameter {
				i := slices.IndexFunc(params, func(d defParam) bool { return d.Name == x.Name.Get() })
				if i < 0 {
					continue
				}
				if err := typedParam(x, params[i], paramPath(x.Name.Get())); err != nil {
					return err
				}
			}
		}
	}
	dropParams(c, unknown)
	return nil
}

// paramPath is the location of the parameter named name in an
// OperationOutcome: as a Parameters body holds it, which is where a query
// string's parameter stands too (R4 operations.html).
func paramPath(name string) string {
	return "Parameters.parameter.where(name='" + truncate(name, 64) + "')"
}

// dropParams takes the parameters named out of the invocation c, from its
// query string and its Parameters body as decoded, so that the operation
// runs as if they had not been given.
func dropParams(c *gin.Context, names []string) {
	if len(names) == 0 {
		return
	}
	query := c.Request.URL.Query()
	inQuery := false
	for _, name := range names {
		if slices.Contains(generalParams, name) {
			// Unknown only as a name in the body: in the query string
			// (_format, _pretty) it says how the answer is written.
			continue
		}
		inQuery = inQuery || query.Has(name)
		query.Del(name)
	}
	if inQuery {
		c.Request.URL.RawQuery = query.Encode()
	}
	if res, ok := c.Get(ctxResource); ok {
		if p, ok := res.(*fhir.Parameters); ok {
			p.Parameter = slices.DeleteFunc(p.Parameter, func(x *fhir.ParametersParameter) bool {
				return slices.Contains(names, x.Name.Get())
			})
		}
	}
}

// paramNames lists the names of params for a message.
func paramNames(params []defParam) string {
	if len(params) == 0 {
		return "no parameters"
	}
	names := make([]string, len(params))
	for i, p := range params {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

func times(n int) string {
	if n == 1 {
		return "once at most"
	}
	return strconv.Itoa(n) + " times at most"
}

// ctxBody holds the body of a POST invocation once checkParams has read
// it, for the operation to read again (readAll).
const ctxBody = "carefhir.operationBody"

// ctxResource holds the resource a POST invocation carries once decoded,
// so that the dispatcher, checking its parameters, and the operation
// decode it once between them.
const ctxResource = "carefhir.operationResource"

// operationResource returns the resource the body of a POST invocation
// carries, decoded in the format its Content-Type names.
func operationResource(c *gin.Context) (fhir.Resource, error) {
	if res, ok := c.Get(ctxResource); ok {
		return res.(fhir.Resource), nil
	}
	body, err := readBody(c)
	if err != nil {
		return nil, err
	}
	res, err := decodeBody(c, body, "")
	if err != nil {
		return nil, err
	}
	c.Set(ctxResource, res)
	return res, nil
}

// invocationParams reads the parameters of the invocation c: the query
// string but the general parameters, and the names of a Parameters body
// (unless raw: the body of a RawBody operation, which is not FHIR, is left
// unread). A body that is not FHIR JSON or XML, or that does not parse,
// gives no names here: the operation, reading it, says what is wrong.
// The body is decoded here for the operation to take (operationResource).
func invocationParams(c *gin.Context, raw bool) (givenParams, error) {
	var given givenParams
	query := c.Request.URL.Query()
	for _, name := range slices.Sorted(maps.Keys(query)) {
		if slices.Contains(generalParams, name) {
			continue
		}
		for range query[name] {
			given.names = append(given.names, name)
		}
	}
	if raw || c.Request.Method != http.MethodPost || c.Request.ContentLength == 0 {
		return given, nil
	}
	body, err := readAll(c)
	if err != nil {
		return given, err
	}
	c.Set(ctxBody, body)
	var names []string
	if res, err := operationResource(c); err == nil {
		given.resourceType = res.ResourceType()
		if p, ok := res.(*fhir.Parameters); ok {
			for _, x := range p.Parameter {
				names = append(names, x.Name.Get())
			}
			if err := oneContent(p.Parameter, "Parameters.parameter"); err != nil {
				return given, err
			}
		}
	} else if mt, err := bodyType(c); err == nil {
		// A body the model refuses may still name its parameters, which
		// are checked before the operation says what else is wrong.
		body = lexical.TrimBOM(body)
		if xmlTypes[mt] {
			given.resourceType, names = xmlParameterNames(body)
		} else {
			given.resourceType, names = jsonParameterNames(body)
		}
	}
	if given.resourceType == "Parameters" {
		given.resourceType = ""
	}
	given.names = append(given.names, names...)
	return given, nil
}

// oneContent refuses a parameter, or a part of one, that holds more than
// one of a value, a resource and parts, which Parameters forbids (R4
// invariant inv-1): an operation reads one of them, and would leave the
// others unread without saying so. One that holds none is left to the
// operation, which says what it takes there. at is the path of params.
func oneContent(params []*fhir.ParametersParameter, at string) error {
	for _, p := range params {
		where := at + ".where(name='" + truncate(p.Name.Get(), 64) + "')"
		held := 0
		for _, has := range []bool{valueType(p) != "", p.Resource != nil, len(p.Part) > 0} {
			if has {
				held++
			}
		}
		if held > 1 {
			return errorf(http.StatusBadRequest, "invalid", "parameter %q holds more than one of a value, a resource and parts: a parameter holds one (Parameters inv-1)", truncate(p.Name.Get(), 64)).at(where)
		}
		if err := oneContent(p.Part, where+".part"); err != nil {
			return err
		}
	}
	return nil
}

// valueType returns the type of p's value[x] as FHIR names it (string,
// dateTime, CodeableConcept), or "" when it holds none: the model has a
// field for each type, Value followed by the type's name, every one a
// pointer.
func valueType(p *fhir.ParametersParameter) string {
	v := reflect.ValueOf(p).Elem()
	t := v.Type()
	for i := range t.NumField() {
		name, ok := strings.CutPrefix(t.Field(i).Name, "Value")
		if !ok || name == "" || v.Field(i).IsNil() {
			continue
		}
		if lower := strings.ToLower(name[:1]) + name[1:]; primitiveTypes[lower] != "" {
			return lower
		}
		return name
	}
	return ""
}

// primitiveTypes gives each FHIR primitive type the kind of value it is,
// for telling whether a value of one type stands for a parameter of
// another (typedParam).
var primitiveTypes = map[string]string{
	"string": "text", "code": "text", "id": "text", "markdown": "text",
	"uri": "text", "url": "text", "canonical": "text", "oid": "text", "uuid": "text",
	"integer": "integer", "positiveInt": "integer", "unsignedInt": "integer",
	"decimal": "decimal", "boolean": "boolean", "base64Binary": "binary",
	"date": "time", "dateTime": "time", "instant": "time", "time": "clock",
}

// typedParam refuses a parameter of a Parameters body whose content is
// not of the type the operation's definition gives it, d (R4
// operations.html: each parameter has the type its definition states): an
// operation reads it as that type, and would read another as absent, or
// as something else than was meant, and answer another question (a
// valueInteger filter of $expand read as no filter, so every code). A
// value of another primitive type of the same kind is taken (a code
// given as valueString), and a value given as text where the definition
// asks for a number, a boolean or a date, as a query string gives every
// value. at is the parameter's path.
func typedParam(p *fhir.ParametersParameter, d defParam, at string) error {
	name := truncate(p.Name.Get(), 64)
	switch {
	case d.Type == "":
		return nil
	case d.Type == "Resource" || fhir.IsResourceType(d.Type):
		if p.Resource == nil {
			return errorf(http.StatusBadRequest, "invalid", "%s must hold a resource, a %s", name, d.Type).at(at)
		}
		if d.Type != "Resource" && d.Type != "DomainResource" && p.Resource.ResourceType() != d.Type {
			return errorf(http.StatusBadRequest, "invalid", "%s must hold a %s, not a %s", name, d.Type, p.Resource.ResourceType()).at(at)
		}
		return nil
	}
	got := valueType(p)
	want, primitive := primitiveTypes[d.Type]
	switch {
	case got == d.Type:
		return nil
	case primitive && got != "" && (primitiveTypes[got] == want || primitiveTypes[got] == "text" ||
		want == "decimal" && primitiveTypes[got] == "integer"):
		return nil
	}
	return errorf(http.StatusBadRequest, "invalid", "%s must be a %s: give it as value%s", name, d.Type, strings.ToUpper(d.Type[:1])+d.Type[1:]).at(at)
}

// jsonParameterNames returns the resource type of a FHIR JSON body and,
// when it is Parameters, the names of its parameters.
func jsonParameterNames(body []byte) (resourceType string, names []string) {
	var res struct {
		ResourceType string
		Parameter    []struct{ Name string }
	}
	if json.Unmarshal(body, &res) != nil {
		return "", nil
	}
	if res.ResourceType == "Parameters" {
		for _, p := range res.Parameter {
			names = append(names, p.Name)
		}
	}
	return res.ResourceType, names
}

// xmlParameterNames returns the resource type of a FHIR XML body and,
// when it is Parameters, the names of its parameters
// (<parameter><name value="…"/>).
func xmlParameterNames(body []byte) (resourceType string, names []string) {
	d := xml.NewDecoder(bytes.NewReader(body))
	var path []string
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return resourceType, names
		}
		if err != nil {
			return "", nil
		}
		switch t := tok.(type) {
		case xml.StartElement:
			path = append(path, t.Name.Local)
			switch {
			case len(path) == 1:
				resourceType = t.Name.Local
				if resourceType != "Parameters" {
					return resourceType, nil
				}
			case len(path) == 3 && path[1] == "parameter" && t.Name.Local == "name":
				for _, at := range t.Attr {
					if at.Name.Local == "value" {
						names = append(names, at.Value)
					}
				}
			}
		case xml.EndElement:
			path = path[:len(path)-1]
		}
	}
}
