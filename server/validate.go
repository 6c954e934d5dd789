package server

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/fhir/fhirpath"
	"carefhir/fhir/lexical"
	"carefhir/profiles"
)

// Validator checks a resource, as FHIR JSON, against its base definition,
// the profiles in its meta.profile and any profiles named.
// *profiles.Validator implements it.
type Validator interface {
	Validate(ctx context.Context, resource []byte, profiles ...string) []profiles.Issue
}

// registerValidate serves $validate on types and instances when a
// validator is configured.
func (a *api) registerValidate() {
	if a.cfg.Validator == nil {
		return
	}
	a.addOperation(operation{
		name:       "validate",
		definition: "http://hl7.org/fhir/OperationDefinition/Resource-validate",
		levels:     typeLevel | instanceLevel,
		handle:     a.validate,
	})
}

// validateWrite applies the configured validation to a resource about to be
// written, including the profiles required of its type: errors refuse the
// write with 422 and every issue found, led by one naming each required
// profile the resource fails. A definition that would take the canonical of
// a bundled one is refused too (see definitions.go).
func (a *api) validateWrite(ctx context.Context, res fhir.Resource) error {
	if err := a.checkBundledCanonical(res); err != nil {
		return err
	}
	if !a.validating() {
		return nil
	}
	body, err := fhirjson.Marshal(res)
	if err != nil {
		return err
	}
	var tree any
	if _, ok := a.cfg.Validator.(treeValidator); ok {
		if tree, err = fhirpath.DecodeJSON(body); err != nil {
			return err
		}
	}
	return a.validateEncoded(ctx, res.ResourceType(), body, tree)
}

// validateAsWritten applies validateWrite to res, a resource of typ whose
// id the server gives (a conditional update's: the match's, or a new one),
// as the version written: when res carries none of what is stamped on it,
// a copy stamped with an id, versionId and lastUpdated is validated, as a
// create's version is, so that {"resourceType":"Patient"} is not refused
// for lacking what the server adds. res itself is left as sent.
func (a *api) validateAsWritten(ctx context.Context, typ string, res fhir.Resource) error {
	if !a.validating() || !stampable(res) {
		return a.validateWrite(ctx, res)
	}
	body, err := fhirjson.Marshal(res)
	if err != nil {
		return fmt.Errorf("encode %s: %w", typ, err)
	}
	written, err := fhirjson.UnmarshalAs(body, typ)
	if err != nil {
		return fmt.Errorf("decode %s: %w", typ, err)
	}
	stamp(written, newID(), 1, a.svc.timestamp(ctx))
	return a.validateWrite(ctx, written)
}

// createdForm returns body, a resource of typ as JSON, as a create would
// write it: stamped with an id, versionId and lastUpdated when it carries
// none of them, which is when a create validates that version. A body the
// model cannot hold, or one carrying any of them, is returned as it is.
func (a *api) createdForm(ctx context.Context, typ string, body []byte) []byte {
	res, err := fhirjson.UnmarshalAs(body, typ)
	if err != nil || !stampable(res) {
		return body
	}
	stamp(res, newID(), 1, a.svc.timestamp(ctx))
	written, err := fhirjson.Marshal(res)
	if err != nil {
		return body
	}
	return written
}

// validating reports whether writes are validated.
func (a *api) validating() bool { return a.cfg.Validator != nil && a.cfg.ValidateWrites }

// treeValidator is a Validator that also takes a resource already decoded
// (as fhirpath.DecodeJSON and encoding/json with UseNumber decode it), as
// *profiles.Validator does: a create decodes its JSON once, for its
// validation and its search index.
type treeValidator interface {
	ValidateTree(ctx context.Context, resource any, profiles ...string) []profiles.Issue
}

// xmlConverter is a Validator that also converts FHIR XML to the JSON it
// validates, primitive values kept as written, as *profiles.Validator
// does: $validate of XML that the model cannot hold.
type xmlConverter interface {
	XMLToJSON(data []byte) ([]byte, error)
}

// validateEncoded is the configured validation of body, the JSON of a
// resource of typ about to be written, decoded as tree (nil: not decoded).
// Its checks of definitions are the caller's (see validateWrite).
func (a *api) validateEncoded(ctx context.Context, typ string, body []byte, tree any) error {
	if !a.validating() {
		return nil
	}
	required := a.requiredProfiles(typ)
	var issues []profiles.Issue
	if tv, ok := a.cfg.Validator.(treeValidator); ok && tree != nil {
		issues = tv.ValidateTree(ctx, tree, required...)
	} else {
		issues = a.cfg.Validator.Validate(ctx, body, required...)
	}
	if !profiles.HasErrors(issues) {
		return nil
	}
	return &Error{Status: http.StatusUnprocessableEntity, Issues: append(a.failedProfiles(ctx, typ, body, required), outcomeIssues(issues)...)}
}

// requiredProfiles returns the profiles enforced on every resource of typ.
func (a *api) requiredProfiles(typ string) []string {
	if !a.cfg.ValidateWrites {
		return nil
	}
	return a.cfg.RequiredProfiles[typ]
}

// failedProfiles returns an issue for each profile of required that body
// fails: validating against it finds errors that validating without the
// required profiles does not.
func (a *api) failedProfiles(ctx context.Context, typ string, body []byte, required []string) []Issue {
	if len(required) == 0 {
		return nil
	}
	base := map[profiles.Issue]bool{}
	for _, is := range a.cfg.Validator.Validate(ctx, body) {
		base[is] = true
	}
	var out []Issue
	for _, p := range required {
		for _, is := range a.cfg.Validator.Validate(ctx, body, p) {
			if profiles.HasErrors([]profiles.Issue{is}) && !base[is] {
				out = append(out, Issue{Severity: "error", Code: "processing", Expression: []string{typ},
					Diagnostics: typ + " does not conform to " + p + ", a profile this server requires of every " + typ})
				break
			}
		}
	}
	return out
}

func outcomeIssues(issues []profiles.Issue) []Issue {
	out := make([]Issue, 0, len(issues))
	for _, is := range issues {
		i := Issue{Severity: is.Severity, Code: is.Code, Diagnostics: is.Message}
		if is.Expression != "" {
			i.Expression = []string{is.Expression}
		}
		out = append(out, i)
	}
	return out
}

// validate answers $validate: the body is the resource, or Parameters with
// a resource, a mode (create, update or delete) and a profile. The answer is
// an OperationOutcome, 200 whether or not the resource is valid.
func (a *api) validate(c *gin.Context, inv invocation) {
	typ, id := inv.Type, inv.ID
	body, err := readAll(c)
	if err != nil {
		c.Error(err)
		return
	}
	// A delete is asked about with no resource (R4 Resource-validate:
	// the resource "must be present unless the mode is delete"), so a
	// POST [type]/[id]/$validate?mode=delete may come without a body;
	// what else needs a resource says so below.
	var in validateInput
	if body = lexical.TrimBOM(body); len(body) > 0 {
		if in, err = a.validateInput(c, body); err != nil {
			c.Error(err)
			return
		}
	}
	mode, profile := in.mode, in.profile
	// The resource may be the body, its other parameters in the URL
	// (HAPI and the HL7 validator's clients send ?profile=); each may be
	// given in one place only.
	for _, p := range []struct {
		name string
		v    *string
	}{{"mode", &mode}, {"profile", &profile}} {
		if q := c.Query(p.name); q != "" {
			if *p.v != "" && *p.v != q {
				c.Error(errorf(http.StatusBadRequest, "invalid", "%s is %q in the URL and %q in the Parameters: give it once", p.name, q, *p.v).at("Parameters.parameter"))
				return
			}
			*p.v = q
		}
	}
	switch mode {
	case "", "create", "update", "delete":
	default:
		c.Error(errorf(http.StatusBadRequest, "code-invalid", "mode %q is not create, update or delete", mode).at("Parameters.parameter"))
		return
	}
	// An update may create the resource (update as create), so only the
	// other modes need it to exist: one deleted is gone, as a read of it
	// answers, but for a delete, which a deleted resource takes again.
	if id != "" && mode != "update" {
		v, err := a.readInstance(c.Request.Context(), typ, id)
		if err != nil {
			c.Error(notFound(err, typ, id))
			return
		}
		if v.Deleted && mode != "delete" {
			c.Error(gone(v))
			return
		}
	}
	if mode == "delete" {
		if id == "" {
			c.Error(errorf(http.StatusBadRequest, "required", "mode delete needs a resource: POST [type]/[id]/$validate").at("Parameters.parameter"))
			return
		}
		writeFHIR(c, http.StatusOK, newOutcome(Issue{Severity: "information", Code: "informational", Diagnostics: "no rule prevents deleting " + typ + "/" + id}).marshal())
		return
	}
	if in.resource == nil {
		c.Error(errorf(http.StatusBadRequest, "required", "no resource to validate: send it, or Parameters with a resource parameter").at("Parameters.parameter"))
		return
	}
	if in.resourceType != typ {
		c.Error(errorf(http.StatusBadRequest, "invalid", "a %s cannot be validated at %s/$validate", truncate(in.resourceType, 64), typ))
		return
	}
	named := a.requiredProfiles(typ)
	if profile != "" {
		named = append(slices.Clip(named), profile)
	}
	var issues []Issue
	// The update would be refused for its id: a finding of the validation,
	// which answers 200 whether or not the resource is valid.
	switch {
	case mode == "update" && id != "" && in.id != id:
		issues = append(issues, Issue{Severity: "error", Code: "invalid", Expression: []string{typ + ".id"},
			Diagnostics: fmt.Sprintf("an update of %s/%s needs the resource's id to be %q, not %q", typ, id, id, truncate(in.id, 64))})
	case mode == "update" && in.id == "":
		// R4 http.html: the body of an update SHALL have an id, the one
		// in its URL.
		issues = append(issues, Issue{Severity: "error", Code: "required", Expression: []string{typ + ".id"},
			Diagnostics: "an update needs the resource's id, the one in its URL"})
	}
	if mode == "create" {
		// A create is validated as the version it writes (see
		// prepareCreate): so is the create asked about.
		in.resource = a.createdForm(c.Request.Context(), typ, in.resource)
	}
	issues = append(issues, outcomeIssues(a.cfg.Validator.Validate(c.Request.Context(), in.resource, named...))...)
	if len(issues) == 0 {
		issues = append(issues, Issue{Severity: "information", Code: "informational", Diagnostics: "no issues found"})
	}
	writeFHIR(c, http.StatusOK, newOutcome(issues...).marshal())
}

// validateInput is what a $validate request asks to check.
type validateInput struct {
	resource         []byte // the resource as JSON; nil when none was sent
	resourceType, id string
	mode, profile    string
}

// validateInput reads the body of $validate: the resource, or Parameters
// with a resource, a mode and a profile. A body that is FHIR is decoded by
// the model. A JSON body that the model refuses (an unknown element, a date
// that does not exist, a string where a number belongs) is still a resource
// to validate: R4 answers $validate with 200 whether or not the resource is
// valid, and 4xx only when the validation cannot be performed, so such a
// body is read as plain JSON and the validator reports every fault in it.
// Only a body that is not JSON, or whose faults hide what to validate, is
// 400.
func (a *api) validateInput(c *gin.Context, body []byte) (validateInput, error) {
	mt, err := bodyType(c)
	if err != nil {
		return validateInput{}, err
	}
	res, err := operationResource(c)
	if err != nil {
		// What the model cannot hold is still validated, as its JSON: a
		// fault in a value is a finding, located at its element.
		raw := body
		if xmlTypes[mt] {
			xc, ok := a.cfg.Validator.(xmlConverter)
			if !ok {
				return validateInput{}, err
			}
			converted, convErr := xc.XMLToJSON(body)
			if convErr != nil {
				return validateInput{}, err
			}
			raw = converted
		}
		in, ok, paramErr := rawValidateInput(raw)
		if paramErr != nil {
			return validateInput{}, paramErr
		}
		if !ok {
			return validateInput{}, err
		}
		return in, nil
	}
	var in validateInput
	if p, ok := res.(*fhir.Parameters); ok {
		res = nil
		for _, param := range p.Parameter {
			switch name := param.Name.Get(); name {
			case "resource":
				res = param.Resource
			case "mode", "profile":
				if err := in.setOption(name, stringValue(param)); err != nil {
					return validateInput{}, err
				}
			}
		}
	}
	if res == nil {
		return in, nil
	}
	if in.resource, err = fhirjson.Marshal(res); err != nil {
		return in, err
	}
	in.resourceType, in.id = res.ResourceType(), res.GetID()
	return in, nil
}

// rawValidateInput reads a $validate body as plain JSON; ok is false when
// it is not a JSON object with a resourceType, or is Parameters whose
// parameters cannot be told apart; err is a mode or profile without a
// value to read.
func rawValidateInput(body []byte) (in validateInput, ok bool, err error) {
	var top struct {
		ResourceType string            `json:"resourceType"`
		ID           json.RawMessage   `json:"id"`
		Parameter    []json.RawMessage `json:"parameter"`
	}
	if json.Unmarshal(body, &top) != nil || top.ResourceType == "" {
		return in, false, nil
	}
	if top.ResourceType != "Parameters" {
		in.resource, in.resourceType = body, top.ResourceType
		json.Unmarshal(top.ID, &in.id)
		return in, true, nil
	}
	for _, raw := range top.Parameter {
		var p struct {
			Name     string          `json:"name"`
			Resource json.RawMessage `json:"resource"`
			// The string types a mode or profile may be given as, as the
			// model's form reads them (stringValue).
			ValueCode      string `json:"valueCode"`
			ValueURI       string `json:"valueUri"`
			ValueCanonical string `json:"valueCanonical"`
			ValueString    string `json:"valueString"`
			ValueURL       string `json:"valueUrl"`
			ValueID        string `json:"valueId"`
		}
		if json.Unmarshal(raw, &p) != nil {
			return in, false, nil
		}
		switch p.Name {
		case "resource":
			r, ok, _ := rawValidateInput(p.Resource)
			if !ok || r.resourceType == "Parameters" {
				return in, false, nil
			}
			in.resource, in.resourceType, in.id = r.resource, r.resourceType, r.id
		case "mode", "profile":
			if err := in.setOption(p.Name, cmp.Or(p.ValueString, p.ValueURI, p.ValueCode, p.ValueCanonical, p.ValueURL, p.ValueID)); err != nil {
				return in, false, err
			}
		}
	}
	return in, true, nil
}

// setOption sets the mode or profile (name) of $validate to value, as
// given in a Parameters body, or is the 400 of one that has no value of a
// string type: read as absent, a profile would be left unchecked, and the
// resource reported valid against what was not asked for.
func (in *validateInput) setOption(name, value string) error {
	if value == "" {
		kind := "a uri (valueUri or valueCanonical)"
		if name == "mode" {
			kind = "a code (valueCode)"
		}
		return errorf(http.StatusBadRequest, "invalid", "%s must be %s", name, kind).at(paramPath(name))
	}
	if name == "mode" {
		in.mode = value
	} else {
		in.profile = value
	}
	return nil
}
