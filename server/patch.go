package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/fhir/fhirxml"
	"carefhir/fhir/patch"
	ext "carefhir/operation"
	"carefhir/store"
)

// mimeJSONPatch is the media type of a JSON Patch document (RFC 6902).
const mimeJSONPatch = "application/json-patch+json"

// patchMediaTypes are the media types of the patches served, as
// patchFormat names them: JSON Patch, and FHIRPath Patch in JSON and XML.
var patchMediaTypes = []string{mimeJSONPatch, mimeFHIRJSON, mimeFHIRXML}

// registerPatch registers the patch interaction on a resource, and its
// conditional form on a type with search criteria.
func (a *api) registerPatch(g *gin.RouterGroup) {
	g.PATCH("/:type/:id", a.patch)
	g.PATCH("/:type", a.conditionalPatch)
	a.caps.add("patch")
}

func (a *api) patch(c *gin.Context) {
	typ, id, err := a.target(c)
	if err != nil {
		c.Error(err)
		return
	}
	a.servePatch(c, typ, id, nil)
}

func (a *api) conditionalPatch(c *gin.Context) {
	typ, criteria, err := a.conditionalTarget(c, "conditional patch")
	if err != nil {
		c.Error(err)
		return
	}
	a.servePatch(c, typ, "", criteria)
}

// servePatch applies the request's patch to typ/id, or to the one resource
// of typ matching criteria (none is 404, several are 412), stores the result
// and answers as an update does. The media type is checked before anything
// is read, so that a body that is not a patch is 415 whatever the target.
func (a *api) servePatch(c *gin.Context, typ, id string, criteria *store.Query) {
	ctx := c.Request.Context()
	contentType := c.GetHeader("Content-Type")
	if _, err := patchFormat(contentType); err != nil {
		// RFC 5789, section 2.2: a patch format not supported is 415
		// with Accept-Patch naming those that are.
		var e *Error
		if errors.As(err, &e) {
			e.Header = http.Header{"Accept-Patch": {strings.Join(patchMediaTypes, ", ")}}
		}
		c.Error(err)
		return
	}
	match, err := ifMatch(c)
	if err != nil {
		c.Error(err)
		return
	}
	body, err := readBody(c)
	if err != nil {
		c.Error(err)
		return
	}
	var narrativeRemoved bool
	apply := func(cur *store.Version) (fhir.Resource, error) {
		res, removed, err := a.patchResource(ctx, typ, cur, contentType, body)
		narrativeRemoved = removed
		return res, err
	}
	var v *store.Version
	var did updateOutcome
	if criteria != nil {
		v, did, err = a.svc.conditionalPatch(ctx, typ, criteria, match, apply)
	} else {
		var version int64
		if version, err = match.resolve(ctx, a.svc.store, typ, id); err == nil {
			v, did, err = a.svc.patch(ctx, typ, id, version, apply)
		}
	}
	if err != nil {
		c.Error(err)
		return
	}
	if narrativeRemoved {
		addWarnings(ctx, []ext.Issue{{Severity: "warning", Code: "informational", Expression: []string{typ + ".text"},
			Diagnostics: fmt.Sprintf("the narrative of %s/%s was removed: the patch changed the resource but not its text, which described it before the patch", typ, v.ID)}})
	}
	a.writeUpdated(c, v, did)
}

// conditionalPatch applies a patch to the one resource of typ matching
// criteria, in the unit of work that writes it, as a conditional update
// does: matched apart, the resource could be changed by another client
// between the match and the write so that it no longer matches, and be
// patched all the same.
func (s *service) conditionalPatch(ctx context.Context, typ string, criteria *store.Query, match versionMatch, apply func(*store.Version) (fhir.Resource, error)) (v *store.Version, did updateOutcome, err error) {
	err = s.transact(ctx, func(ctx context.Context, tx store.Tx) error {
		id, err := patchTarget(ctx, tx, typ, criteria)
		if err != nil {
			return err
		}
		ifMatch, err := match.resolve(ctx, tx, typ, id)
		if err != nil {
			return err
		}
		v, did, err = s.patchIn(ctx, tx, typ, id, ifMatch, apply)
		return err
	})
	return v, did, err
}

// patchTarget returns the id of the one resource of typ matching the
// criteria of a conditional patch: none is 404, several are 412.
func patchTarget(ctx context.Context, r store.Reader, typ string, criteria *store.Query) (string, error) {
	match, err := matchOne(ctx, r, criteria, "conditional patch")
	if err != nil {
		return "", err
	}
	if match == nil {
		return "", errorf(http.StatusNotFound, "not-found", "no %s matches the conditional patch criteria", typ)
	}
	return match.ID, nil
}

// applyPatch applies a patch document of the given media type to the
// current version of a resource of type typ and returns the patched
// resource, decoded and checked as an update's body is, without writing it:
// application/json-patch+json is a JSON Patch, a FHIR JSON or XML media
// type a Parameters holding a FHIRPath Patch. The patched resource must keep
// its type and id. Errors render through fromError: 400 for a malformed
// patch or Parameters that do not decode, 409 for a failed JSON Patch test,
// 415 for another media type, 422 for a patch that does not fit the
// resource or whose result is not a valid resource. current is never a
// deletion: patchIn answers 410 before applying. A narrative the patch left
// as it was while changing the rest is removed (see withoutStaleNarrative).
func (a *api) applyPatch(ctx context.Context, typ string, current *store.Version, contentType string, body []byte) (fhir.Resource, error) {
	res, _, err := a.patchResource(ctx, typ, current, contentType, body)
	return res, err
}

// patchResource is applyPatch, also reporting whether the narrative was
// removed, for the warning of a PATCH answer.
func (a *api) patchResource(ctx context.Context, typ string, current *store.Version, contentType string, body []byte) (res fhir.Resource, narrativeRemoved bool, err error) {
	format, err := patchFormat(contentType)
	if err != nil {
		return nil, false, err
	}
	var patched []byte
	switch format {
	case mimeJSONPatch:
		patched, err = a.patchLimits().JSONPatch(current.JSON, body)
	default:
		var params []byte
		if params, err = patchParameters(format, body); err != nil {
			return nil, false, err
		}
		patched, err = a.patchLimits().FHIRPathPatch(current.JSON, params, a.fhirpathClock)
	}
	if err != nil {
		return nil, false, patchError(format, err)
	}
	if patched, narrativeRemoved, err = withoutStaleNarrative(current.JSON, patched); err != nil {
		return nil, false, err
	}
	if err := keepsType(typ, patched); err != nil {
		return nil, false, err
	}
	if res, err = fhirjson.Unmarshal(patched); err != nil {
		return nil, false, invalidResult("the patched resource", err)
	}
	switch {
	case res.GetID() == "":
		return nil, false, errorf(http.StatusUnprocessableEntity, "invalid",
			"the patch removes the id %q: a patch cannot change the id of a resource", current.ID).at(typ + ".id")
	case res.GetID() != current.ID:
		return nil, false, errorf(http.StatusUnprocessableEntity, "invalid",
			"the patch changes the id %q to %q: a patch cannot change the id of a resource", current.ID, truncate(res.GetID(), 64)).at(typ + ".id")
	}
	if err := checkMandatory(res); err != nil {
		return nil, false, err
	}
	if err := refuseConditionalRefs(res); err != nil {
		return nil, false, err
	}
	if err := a.validateWrite(ctx, res); err != nil {
		return nil, false, err
	}
	return res, narrativeRemoved, nil
}

// keepsType refuses a patched resource whose resourceType is not typ,
// before it is decoded: decoded as the other type, it would be refused
// for the elements that type lacks, which hides what the patch did.
func keepsType(typ string, patched []byte) error {
	var members map[string]json.RawMessage // not a struct: its names would match in any case
	if json.Unmarshal(patched, &members) != nil {
		return nil // not a JSON object: the decoder says why
	}
	var rt string
	switch raw, ok := members["resourceType"]; {
	case !ok:
		return errorf(http.StatusUnprocessableEntity, "invalid",
			"the patch removes resourceType: a patch cannot change the type of a resource")
	case json.Unmarshal(raw, &rt) != nil:
		return errorf(http.StatusUnprocessableEntity, "invalid",
			"the patch makes resourceType %s, not a string: a patch cannot change the type of a resource", truncate(string(raw), 64))
	case rt != typ:
		return errorf(http.StatusUnprocessableEntity, "invalid",
			"the patch turns the %s into a %s: a patch cannot change the type of a resource", typ, truncate(rt, 64))
	}
	return nil
}

// withoutStaleNarrative returns the patched resource without its narrative
// (text) when the patch changed it, meta aside, but left the narrative as
// it was in current: that narrative describes the resource before the
// patch, and R4 requires that the narrative is not clinically unsafe after
// a patch (http.html#patch). A patch that changes the narrative itself
// keeps what it wrote. It reports whether it removed the narrative. A
// patched document that is not a JSON object is returned as it is, for the
// decoder to refuse.
func withoutStaleNarrative(current, patched []byte) ([]byte, bool, error) {
	var before, after map[string]json.RawMessage
	if err := json.Unmarshal(current, &before); err != nil {
		return nil, false, fmt.Errorf("decode the current version: %w", err)
	}
	if json.Unmarshal(patched, &after) != nil {
		return patched, false, nil
	}
	text, ok := after["text"]
	if !ok || !jsonEqual(before["text"], text) || !changedBeyond(before, after, "text", "meta") {
		return patched, false, nil
	}
	delete(after, "text")
	out, err := json.Marshal(after)
	if err != nil {
		return nil, false, fmt.Errorf("encode the patched resource: %w", err)
	}
	return out, true, nil
}

// changedBeyond reports whether the members of two JSON objects differ,
// those named in except aside.
func changedBeyond(before, after map[string]json.RawMessage, except ...string) bool {
	for _, m := range []map[string]json.RawMessage{before, after} {
		for k := range m {
			if !slices.Contains(except, k) && !jsonEqual(before[k], after[k]) {
				return true
			}
		}
	}
	return false
}

// jsonEqual reports whether two JSON values are equal, whatever their
// spacing and member order; an absent value (nil) equals only another.
func jsonEqual(a, b json.RawMessage) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	x, errX := decodeJSON(a)
	y, errY := decodeJSON(b)
	return errX == nil && errY == nil && reflect.DeepEqual(x, y)
}

// decodeJSON decodes a JSON value, its numbers kept as written.
func decodeJSON(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}

// patchFormat returns the kind of patch a Content-Type names: JSON Patch
// (mimeJSONPatch), or a FHIRPath Patch in FHIR JSON (mimeFHIRJSON) or XML
// (mimeFHIRXML). Other media types, and a fhirVersion other than the one
// served, are 415.
func patchFormat(contentType string) (string, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if cs, ok := params["charset"]; err == nil && ok && !strings.EqualFold(cs, "utf-8") {
		return "", errorf(http.StatusUnsupportedMediaType, "not-supported",
			"charset %q is not supported: FHIR is exchanged in UTF-8", truncate(cs, 40))
	}
	if v, other := otherVersion(params); err == nil && other {
		// A patch written for another FHIR version names its elements.
		return "", versionNotServed(http.StatusUnsupportedMediaType, v)
	}
	switch {
	case err != nil:
	case mt == mimeJSONPatch:
		return mimeJSONPatch, nil
	case jsonTypes[mt]:
		return mimeFHIRJSON, nil
	case xmlTypes[mt]:
		return mimeFHIRXML, nil
	}
	return "", errorf(http.StatusUnsupportedMediaType, "not-supported",
		"Content-Type %q is not a patch: send a JSON Patch as %s, or a FHIRPath Patch (Parameters) as %s or %s",
		truncate(contentType, 80), mimeJSONPatch, mimeFHIRJSON, mimeFHIRXML)
}

// patchParameters decodes the Parameters of a FHIRPath Patch and returns it
// as FHIR JSON.
func patchParameters(format string, body []byte) ([]byte, error) {
	var (
		res fhir.Resource
		err error
	)
	if format == mimeFHIRXML {
		res, err = fhirxml.UnmarshalAs(body, "Parameters")
	} else {
		res, err = fhirjson.UnmarshalAs(body, "Parameters")
	}
	if err != nil {
		return nil, err
	}
	return fhirjson.Marshal(res)
}

// patchError turns a patch failure into its status: 400 for a malformed
// patch (RFC 5789, section 2.2), 409 for a failed JSON Patch test (the
// resource is not in the state the client stated, the same answer as a lost
// version race: read it again), 422 for a well-formed patch that does not
// fit this resource or writes a value no resource may hold.
func patchError(format string, err error) error {
	var pe *patch.Error
	if !errors.As(err, &pe) {
		return err
	}
	status, code := http.StatusUnprocessableEntity, "processing"
	switch pe.Kind {
	case patch.Malformed:
		status, code = http.StatusBadRequest, "invalid"
	case patch.TestFailed:
		status, code = http.StatusConflict, "conflict"
	case patch.TooCostly:
		code = "too-costly"
	case patch.InvalidValue:
		// What a body holding the result would be refused for.
		code = "structure"
	}
	kind, expression := "FHIRPath Patch", ""
	if format == mimeJSONPatch {
		kind = "JSON Patch"
	}
	msg := pe.Message
	switch {
	case pe.Op >= 0 && pe.Path != "":
		msg = fmt.Sprintf("%s operation %d (path %q): %s", kind, pe.Op, pe.Path, pe.Message)
	case pe.Op >= 0:
		msg = fmt.Sprintf("%s operation %d: %s", kind, pe.Op, pe.Message)
	}
	if pe.Op >= 0 && format != mimeJSONPatch {
		expression = fmt.Sprintf("Parameters.parameter[%d]", pe.Op)
	}
	return errorf(status, code, "%s", msg).at(expression)
}

// invalidResult reports a resource the codec refuses as what, the result of
// a change (a patch, a $meta-add) that was understood: its result is not a
// valid resource, so 422 with the codec's issues.
func invalidResult(what string, err error) error {
	status, oo, _ := fromError(err)
	if status >= http.StatusInternalServerError {
		return err
	}
	for i := range oo.Issue {
		oo.Issue[i].Diagnostics = what + " is invalid: " + oo.Issue[i].Diagnostics
	}
	return &Error{Status: http.StatusUnprocessableEntity, Issues: oo.Issue}
}

// patch applies a patch to the current version of typ/id and writes the
// result as the next version (see patchIn).
func (s *service) patch(ctx context.Context, typ, id string, ifMatch int64, apply func(*store.Version) (fhir.Resource, error)) (v *store.Version, did updateOutcome, err error) {
	err = s.unit(ctx, typ, func(tx store.Tx) error {
		v, did, err = s.patchIn(ctx, tx, typ, id, ifMatch, apply)
		return err
	})
	return v, did, err
}
