package server

// The meta operations: $meta, $meta-add and $meta-delete
// (https://hl7.org/fhir/R4/resource-operations.html). $meta on a resource
// answers the meta of the current version, or of a version named by its
// history URL; $meta-add and $meta-delete change the profiles, tags and
// security labels of the current version, invoked on the resource or on
// that version's history URL (on an earlier version they are 409).
//
// R4 (4.0.1) does not say whether a change of meta makes a new version, and
// earlier drafts had it rewrite the version in place. Here it writes the
// next version, as a PATCH of meta would: a stored version never changes,
// so history, versioned references, ETags and the audit trail stay true,
// and subscribers are told of the change. A change that leaves meta as it
// was writes nothing.
//
// $meta on a type or on the system answers the profiles, tags and security
// labels in use: those of the current resources of the type, or of every
// type, as the engine indexes them (store.MetaLister): a tag or label by
// its system and code, without its display, which is not indexed. They
// tell of every resource of the type, so a token must be allowed to read
// every one (the access layer decides); and they are bounded by
// Limits.MetaInUse.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/server/access"
	"carefhir/store"
)

// registerMeta serves the three operations at the instance and version
// levels of every type, and $meta at the type and system levels too.
func (a *api) registerMeta(g *gin.RouterGroup) {
	a.addOperation(operation{
		name:       "meta",
		definition: "http://hl7.org/fhir/OperationDefinition/Resource-meta",
		levels:     systemLevel | typeLevel | instanceLevel,
		idempotent: true,
		handle:     a.meta,
	})
	a.addOperation(operation{
		name:       "meta-add",
		definition: "http://hl7.org/fhir/OperationDefinition/Resource-meta-add",
		levels:     instanceLevel,
		writes:     true,
		handle:     a.changeMeta(addMeta),
	})
	a.addOperation(operation{
		name:       "meta-delete",
		definition: "http://hl7.org/fhir/OperationDefinition/Resource-meta-delete",
		levels:     instanceLevel,
		writes:     true,
		handle:     a.changeMeta(deleteMeta),
	})
	getAndHead(g, "/:type/:id/_history/:vid/:op", a.versionMeta)
	g.POST("/:type/:id/_history/:vid/:op", a.versionMeta)
}

// meta answers the meta of the current version of the resource, or on a
// type or the system the meta in use (metaInUse).
func (a *api) meta(c *gin.Context, inv invocation) {
	if inv.ID == "" {
		a.metaInUse(c, inv)
		return
	}
	v, err := a.readInstance(c.Request.Context(), inv.Type, inv.ID)
	if err != nil {
		c.Error(notFound(err, inv.Type, inv.ID))
		return
	}
	if v.Deleted {
		c.Error(gone(v))
		return
	}
	writeMeta(c, v)
}

// metaInUse answers $meta on a type or on the system: a Meta listing the
// profiles, tags and security labels of its current resources that the
// store holds (bundled definitions are not among them, as in a search
// across types), 422 too-costly past Limits.MetaInUse of them.
func (a *api) metaInUse(c *gin.Context, inv invocation) {
	if _, ok := a.guard.Unwrap().(store.MetaLister); !ok {
		c.Error(errorf(http.StatusNotFound, "not-supported", "operation $meta is not supported %s by this storage engine", levelText(inv)))
		return
	}
	var types []string // the system: every type
	where := "on the system"
	if inv.Type != "" {
		types, where = []string{inv.Type}, "on "+inv.Type
	}
	most := a.cfg.Limits.MetaInUse
	m, err := a.guard.MetaInUse(c.Request.Context(), types, most)
	if err != nil {
		c.Error(err)
		return
	}
	if m.Len() > most {
		c.Error(errorf(http.StatusUnprocessableEntity, "too-costly", "more than %d profiles, tags and security labels are in use %s, more than $meta lists", most, where))
		return
	}
	type coding struct {
		System string `json:"system,omitempty"`
		Code   string `json:"code,omitempty"`
	}
	codings := func(ls []store.Label) []coding {
		out := make([]coding, len(ls))
		for i, l := range ls {
			out[i] = coding(l)
		}
		return out
	}
	meta, err := json.Marshal(struct {
		Profile  []string `json:"profile,omitempty"`
		Tag      []coding `json:"tag,omitempty"`
		Security []coding `json:"security,omitempty"`
	}{m.Profiles, codings(m.Tags), codings(m.Security)})
	if err != nil {
		c.Error(err)
		return
	}
	writeMetaParameters(c, meta)
}

// versionMeta answers the meta operations on a version of a resource
// ([type]/[id]/_history/[vid]/$meta): $meta answers its meta; $meta-add
// and $meta-delete change the meta of the version when it is current,
// as on the resource, and are 409 on an earlier one, which never changes.
func (a *api) versionMeta(c *gin.Context) {
	typ, id, err := a.target(c)
	if err != nil {
		c.Error(err)
		return
	}
	op, name := c.Param("op"), ""
	switch op {
	case "$meta", "$meta-add", "$meta-delete":
		name = op[1:]
	default:
		c.Error(errorf(http.StatusNotFound, "not-supported", "%s is not served on a version of a resource: $meta, $meta-add and $meta-delete are", truncate(op, 64)))
		return
	}
	if !a.operations[name].servedOn(typ) {
		c.Error(errorf(http.StatusNotFound, "not-supported", "operation %s is not supported on %s", op, typ))
		return
	}
	if name != "meta" && c.Request.Method != http.MethodPost {
		err := errorf(http.StatusMethodNotAllowed, "not-supported", "operation %s must be invoked with POST", op)
		err.Header = http.Header{"Allow": {"POST"}}
		c.Error(err)
		return
	}
	if err := a.guard.Allow(c.Request.Context(), typ, access.Read); err != nil {
		c.Error(err)
		return
	}
	// An operation on a version is the operation still, its parameters
	// checked as the dispatcher checks them on the resource.
	if err := a.checkParams(c, a.operations[name], invocation{Type: typ, ID: id}); err != nil {
		c.Error(err)
		return
	}
	v, err := a.bundledVersionAt(c, typ, id)
	if v == nil && err == nil {
		v, err = a.version(c, typ, id)
	}
	if err != nil {
		c.Error(err)
		return
	}
	switch name {
	case "meta-add":
		a.applyMeta(c, invocation{Type: typ, ID: id}, addMeta, v.VersionID)
	case "meta-delete":
		a.applyMeta(c, invocation{Type: typ, ID: id}, deleteMeta, v.VersionID)
	default:
		writeMeta(c, v)
	}
}

// readInstance reads the current version of typ/id, which may be a bundled
// resource the store does not hold, as version 1 (see definitions.go).
func (a *api) readInstance(ctx context.Context, typ, id string) (*store.Version, error) {
	r, err := a.bundledInstance(ctx, typ, id)
	switch {
	case err != nil:
		return nil, err
	case r == nil:
		return a.svc.store.Read(ctx, typ, id)
	}
	return bundledVersion(r)
}

// bundledVersionAt returns the version c names of the bundled resource
// typ/id that the store does not hold, its version 1; nil when the store
// holds typ/id or none is bundled.
func (a *api) bundledVersionAt(c *gin.Context, typ, id string) (*store.Version, error) {
	r, err := a.bundledInstance(c.Request.Context(), typ, id)
	if err != nil || r == nil {
		return nil, err
	}
	if vid := c.Param("vid"); vid != "1" {
		return nil, errorf(http.StatusNotFound, "not-found", "%s/%s has no version %q: it is bundled with the server, as version 1", typ, id, truncate(vid, 20))
	}
	return bundledVersion(r)
}

// changeMeta returns the handler of $meta-add or $meta-delete on a
// resource (applyMeta).
func (a *api) changeMeta(change func(cur *fhir.Meta, with *fhir.Meta)) func(*gin.Context, invocation) {
	return func(c *gin.Context, inv invocation) { a.applyMeta(c, inv, change, 0) }
}

// applyMeta serves $meta-add or $meta-delete: change applies the meta
// parameter to the current meta, and the result is written as the next
// version, checked as an update is. If-Match is honoured as for an
// update. A version other than 0 is the one the operation was invoked on,
// which must be current: 409 otherwise.
func (a *api) applyMeta(c *gin.Context, inv invocation, change func(cur, with *fhir.Meta), version int64) {
	ctx := c.Request.Context()
	match, err := ifMatch(c)
	if err != nil {
		c.Error(err)
		return
	}
	// A bundled resource is read-only, its meta too: changed, it
	// would be stored as a resource of its own under its id.
	if r, err := a.bundledInstance(ctx, inv.Type, inv.ID); err != nil || r != nil {
		if err == nil {
			err = readOnly(inv.Type, inv.ID, "")
		}
		c.Error(err)
		return
	}
	with, err := metaParameter(c)
	if err != nil {
		c.Error(err)
		return
	}
	invokedOn := version
	matched, err := match.resolve(ctx, a.svc.store, inv.Type, inv.ID)
	switch {
	case err != nil:
		c.Error(err)
		return
	case invokedOn != 0 && match.asked() && matched != invokedOn:
		c.Error(errorf(http.StatusPreconditionFailed, "conflict", "If-Match names another version than %d, on which the operation was invoked", invokedOn))
		return
	case invokedOn == 0:
		version = matched
	}
	v, _, err := a.svc.patch(ctx, inv.Type, inv.ID, version, func(cur *store.Version) (fhir.Resource, error) {
		return a.withMeta(ctx, cur, with, change)
	})
	var stale *Error
	if errors.As(err, &stale) && stale.Status == http.StatusPreconditionFailed && invokedOn != 0 && !match.asked() {
		// The version invoked on is not current: a stored version
		// never changes here, so only the current one's meta can.
		err = errorf(http.StatusConflict, "conflict", "version %d of %s/%s is not current: only the meta of the current version can change, as the next version", version, inv.Type, inv.ID)
	}
	if err != nil {
		c.Error(err)
		return
	}
	writeMeta(c, v)
}

// withMeta returns the current version with its meta changed, checked as
// the body of an update is (the profiles it now claims included).
func (a *api) withMeta(ctx context.Context, cur *store.Version, with *fhir.Meta, change func(cur, with *fhir.Meta)) (fhir.Resource, error) {
	res, err := fhirjson.Unmarshal(cur.JSON)
	if err != nil {
		// The current version holds what writes now refuse (a date on a
		// day its month lacks, stored by an older release): the version
		// the change would write is invalid, as a patch's result is; the
		// request is not at fault.
		return nil, invalidResult("the resource with its meta changed", err)
	}
	m := res.GetMeta()
	if m == nil {
		m = &fhir.Meta{}
	}
	change(m, with)
	res.SetMeta(m)
	if err := a.validateWrite(ctx, res); err != nil {
		return nil, err
	}
	return res, nil
}

// metaParameter reads the one parameter of $meta-add and $meta-delete,
// meta (1..1, a Meta).
func metaParameter(c *gin.Context) (*fhir.Meta, error) {
	p, err := parametersBody(c)
	if err != nil {
		return nil, err
	}
	var found []*fhir.ParametersParameter
	if p != nil {
		for _, x := range p.Parameter {
			if x.Name.Get() == "meta" {
				found = append(found, x)
			}
		}
	}
	switch {
	case len(found) == 0:
		return nil, errorf(http.StatusBadRequest, "required", "the parameter meta (a Meta) is required").at("meta")
	case len(found) > 1:
		return nil, errorf(http.StatusBadRequest, "invalid", "the parameter meta is given %d times; it is 1..1", len(found)).at("meta")
	case found[0].ValueMeta == nil:
		return nil, errorf(http.StatusBadRequest, "invalid", "the parameter meta must be a valueMeta").at("meta")
	}
	return found[0].ValueMeta, nil
}

// addMeta adds with's profiles, tags and security labels to m, each once:
// a tag or label is the same as one m has when its system and code are
// (version and display are not compared, and the one m has is kept), a
// profile when its URL is.
func addMeta(m, with *fhir.Meta) {
	for _, p := range with.Profile {
		if !slices.ContainsFunc(m.Profile, sameProfile(p)) {
			m.Profile = append(m.Profile, p)
		}
	}
	for _, t := range with.Tag {
		if !slices.ContainsFunc(m.Tag, sameLabel(t)) {
			m.Tag = append(m.Tag, t)
		}
	}
	for _, s := range with.Security {
		if !slices.ContainsFunc(m.Security, sameLabel(s)) {
			m.Security = append(m.Security, s)
		}
	}
}

// deleteMeta removes from m the profiles, tags and security labels with
// names (compared as addMeta does); those m does not have are no error.
func deleteMeta(m, with *fhir.Meta) {
	for _, p := range with.Profile {
		m.Profile = slices.DeleteFunc(m.Profile, sameProfile(p))
	}
	for _, t := range with.Tag {
		m.Tag = slices.DeleteFunc(m.Tag, sameLabel(t))
	}
	for _, s := range with.Security {
		m.Security = slices.DeleteFunc(m.Security, sameLabel(s))
	}
}

func sameProfile(p *fhir.Canonical) func(*fhir.Canonical) bool {
	return func(q *fhir.Canonical) bool { return q.Get() == p.Get() }
}

func sameLabel(c *fhir.Coding) func(*fhir.Coding) bool {
	return func(d *fhir.Coding) bool { return d.System.Get() == c.System.Get() && d.Code.Get() == c.Code.Get() }
}

// writeMeta answers the Parameters of the meta operations: return, the
// meta of v as stored.
func writeMeta(c *gin.Context, v *store.Version) {
	var r struct {
		Meta json.RawMessage `json:"meta"`
	}
	if err := json.Unmarshal(v.JSON, &r); err != nil {
		c.Error(err)
		return
	}
	writeMetaParameters(c, r.Meta)
}

// writeMetaParameters answers the Parameters of the meta operations:
// return, the Meta meta (an empty one when nil).
func writeMetaParameters(c *gin.Context, meta json.RawMessage) {
	if meta == nil {
		meta = json.RawMessage(`{}`)
	}
	body := slices.Concat([]byte(`{"resourceType":"Parameters","parameter":[{"name":"return","valueMeta":`), meta, []byte(`}]}`))
	writeFHIR(c, http.StatusOK, body)
}
