package server

import (
	"context"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
)

// refResolver rewrites the references between the entries of a transaction
// (FHIR R4 RESTful API, 3.1.0.11.2 and .3, and Bundle 2.36.4.1):
//
//   - a placeholder, the fullUrl of an entry that creates or updates a
//     resource (urn:uuid:…, urn:oid:… or an absolute URL), becomes the
//     Type/id the resource was given, wherever it stands as a
//     Reference.reference, the value of an element of type uri or url, or
//     an href or src in the narrative; elements of type canonical are left
//     alone, as the specification says, and so are those of type oid and
//     uuid, which the specification names too but which cannot hold a
//     Type/id: written there, it would make the resource invalid;
//   - a relative reference Type/id to a created entry whose fullUrl is a
//     RESTful URL Base/Type/id becomes the created resource's, when the
//     referring entry has no RESTful fullUrl or the same Base;
//   - a version-specific reference to such an entry, its fullUrl or
//     relative reference followed by /_history/[vid], becomes
//     Type/id/_history/[vid] of the version the transaction leaves: R4
//     keeps version-specific references version-specific, and lets a
//     client choose the versions, which are all assigned again (a urn:uuid
//     or urn:oid carries no version);
//   - a conditional reference, Type?criteria in a Reference.reference,
//     becomes the Type/id of the one resource the criteria match; none or
//     several fail with 412.
//
// A Reference.reference that is a urn:uuid or urn:oid naming no entry fails:
// stored, it would point nowhere. References inside a Bundle held as a
// resource are that Bundle's own and are left alone.
type refResolver struct {
	// ids maps the fullUrl of each created or updated entry to Type/id.
	ids map[string]string
	// local maps Type/id of created entries with a RESTful fullUrl to where
	// the resource was created.
	local map[string][]localRef
	// others are the fullUrls of the other entries of a batch, whose
	// entries may not reference each other.
	others map[string]int
	// conditional resolves a conditional reference to Type/id; results are
	// kept in resolved, as bundles often repeat the same one.
	conditional func(ctx context.Context, ref string) (string, error)
	resolved    map[string]string
	// version returns the version of Type/id, a resource an entry writes,
	// that the transaction leaves; false when it cannot tell, as the entry
	// will fail.
	version func(ctx context.Context, ref string) (int64, bool)
	fields  map[reflect.Type][]fhirjson.Field
	// partly is set on a resolver that rewrites only the references to
	// entries whose identity is settled so far, to match a resource
	// before the transaction writes it (see unit.matchIndexOf): it leaves
	// other placeholders and conditional references as written, and
	// keeps version-specific references at the version written. unsettled
	// reports whether a reference names an entry whose identity is not
	// settled yet.
	partly    bool
	unsettled func(ref string) bool
	// alone is set on a resolver of a resource written on its own, not as
	// an entry of a Bundle: it rewrites nothing, and refuses a
	// conditional reference (see refuseConditionalRefs).
	alone bool
}

// localRef is a created entry with a RESTful fullUrl: its base, and the
// Type/id its resource was given.
type localRef struct {
	base, ref string
}

func newRefResolver() *refResolver {
	return &refResolver{
		ids:      map[string]string{},
		local:    map[string][]localRef{},
		resolved: map[string]string{},
		fields:   map[reflect.Type][]fhirjson.Field{},
	}
}

// restfulURL matches a RESTful fullUrl: base, type and id.
var restfulURL = regexp.MustCompile(`^(https?://.+)/([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$`)

// relativeRef matches a relative reference Type/id.
var relativeRef = regexp.MustCompile(`^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$`)

// historyRef matches a version-specific reference: what it is a version
// of, and the version.
var historyRef = regexp.MustCompile(`^(.+)/_history/([^/]+)$`)

// conditionalRef matches a conditional reference Type?criteria.
var conditionalRef = regexp.MustCompile(`^[A-Z][A-Za-z]+\?`)

// restBase returns the base of a RESTful fullUrl, "" for any other.
func restBase(fullURL string) string {
	if m := restfulURL.FindStringSubmatch(fullURL); m != nil {
		return m[1]
	}
	return ""
}

// add records that the entry with fullURL was given ref (Type/id).
func (r *refResolver) add(fullURL, ref string) {
	if fullURL == "" || r.ids[fullURL] == ref {
		return
	}
	r.ids[fullURL] = ref
	if m := restfulURL.FindStringSubmatch(fullURL); m != nil && m[2]+"/"+m[3] != ref {
		r.local[m[2]+"/"+m[3]] = append(r.local[m[2]+"/"+m[3]], localRef{base: m[1], ref: ref})
	}
}

// lookup returns what a reference written in an entry whose fullUrl has
// base from (or "") becomes.
func (r *refResolver) lookup(ref, from string) (string, bool) {
	if to, ok := r.ids[ref]; ok {
		return to, true
	}
	cands := r.local[ref]
	if len(cands) == 0 || !relativeRef.MatchString(ref) {
		return "", false
	}
	for _, c := range cands {
		if c.base == from {
			return c.ref, true
		}
	}
	if from == "" && len(cands) == 1 {
		return cands[0].ref, true
	}
	return "", false
}

// lookupVersion returns what a version-specific reference to an entry,
// written in an entry whose fullUrl has base from, becomes: the entry's
// Type/id at the version the transaction leaves, whatever version the
// reference names.
func (r *refResolver) lookupVersion(ctx context.Context, ref, from string) (string, bool) {
	m := historyRef.FindStringSubmatch(ref)
	if m == nil || r.version == nil && !r.partly || strings.HasPrefix(ref, "urn:") {
		return "", false
	}
	to, ok := r.lookup(m[1], from)
	if !ok {
		return "", false
	}
	if r.partly {
		return to + "/_history/" + m[2], true
	}
	vid, ok := r.version(ctx, to)
	if !ok {
		return "", false
	}
	return to + "/_history/" + strconv.FormatInt(vid, 10), true
}

// resolve rewrites the references of res, the resource of entry e.
func (r *refResolver) resolve(ctx context.Context, e *entry, res fhir.Resource) error {
	_, err := r.walk(ctx, e, res)
	return err
}

// walk rewrites the references of res, the resource of entry e, and
// reports the references it left naming entries whose identity is not
// settled yet (for a resolver that resolves partly).
func (r *refResolver) walk(ctx context.Context, e *entry, res fhir.Resource) (unsettled []string, err error) {
	if res == nil || res.ResourceType() == "Bundle" {
		return nil, nil
	}
	w := &refWalker{r: r, ctx: ctx, from: restBase(e.fullURL), path: []byte(res.ResourceType())}
	err = w.object(reflect.ValueOf(res).Elem())
	return w.unsettled, err
}

// refWalker walks one resource, keeping the FHIRPath of where it is for
// messages.
type refWalker struct {
	r    *refResolver
	ctx  context.Context
	from string
	path []byte
	// unsettled are the references left naming entries not settled yet.
	unsettled []string
}

// object walks v, a generated struct (a resource, data type, backbone
// element or primitive).
func (w *refWalker) object(v reflect.Value) error {
	switch p := v.Addr().Interface().(type) {
	case *fhir.Reference:
		if p.Reference != nil && p.Reference.Value != nil {
			if err := w.reference(p.Reference.Value); err != nil {
				return err
			}
		}
	case *fhir.Uri:
		if err := w.uri(p.Value); err != nil {
			return err
		}
	case *fhir.Url:
		if err := w.uri(p.Value); err != nil {
			return err
		}
	case *fhir.Xhtml:
		if p.Value != nil && len(w.r.ids) > 0 && !w.r.partly { // no search reads a narrative's links
			*p.Value = w.r.narrative(*p.Value, w.from)
		}
	}
	for _, f := range w.r.fieldsOf(v.Type()) {
		fv := v.Field(f.Index)
		if f.Kind != fhirjson.Primitive && f.Kind != fhirjson.Complex && f.Kind != fhirjson.Resource {
			continue
		}
		n := len(w.path)
		w.path = append(append(w.path, '.'), f.Name...)
		var err error
		if f.Repeated {
			for i := 0; i < fv.Len() && err == nil; i++ {
				m := len(w.path)
				w.path = append(strconv.AppendInt(append(w.path, '['), int64(i), 10), ']')
				err = w.element(f.Kind, fv.Index(i))
				w.path = w.path[:m]
			}
		} else {
			err = w.element(f.Kind, fv)
		}
		w.path = w.path[:n]
		if err != nil {
			return err
		}
	}
	return nil
}

// element walks one element: a pointer to a generated struct, or a
// resource.
func (w *refWalker) element(kind fhirjson.FieldKind, v reflect.Value) error {
	if v.IsNil() {
		return nil
	}
	if kind == fhirjson.Resource {
		res, ok := v.Interface().(fhir.Resource)
		if !ok || res.ResourceType() == "Bundle" {
			return nil
		}
		return w.object(v.Elem().Elem())
	}
	return w.object(v.Elem())
}

func (r *refResolver) fieldsOf(t reflect.Type) []fhirjson.Field {
	fs, ok := r.fields[t]
	if !ok {
		fs, _ = fhirjson.Fields(t)
		r.fields[t] = fs
	}
	return fs
}

// reference rewrites a Reference.reference.
func (w *refWalker) reference(s *string) error {
	ref := *s
	if w.r.alone {
		if conditionalRef.MatchString(ref) {
			return errorf(http.StatusBadRequest, "not-supported",
				"conditional reference %q is resolved in a transaction only: write Type/id, or send the write as an entry of a transaction Bundle", truncate(ref, 100)).at(string(w.path) + ".reference")
		}
		return nil
	}
	if to, ok := w.r.lookup(ref, w.from); ok {
		*s = to
		return nil
	}
	if to, ok := w.r.lookupVersion(w.ctx, ref, w.from); ok {
		*s = to
		return nil
	}
	if w.r.partly {
		if w.r.unsettled(ref) {
			w.unsettled = append(w.unsettled, ref)
		}
		return nil
	}
	where := string(w.path) + ".reference"
	if isPlaceholder(ref) {
		if err := w.r.batchLink("reference", ref); err != nil {
			return err.at(where)
		}
		return errorf(http.StatusBadRequest, "not-found", "reference %q names no entry of the Bundle", truncate(ref, 100)).at(where)
	}
	if !conditionalRef.MatchString(ref) || w.r.conditional == nil {
		return nil
	}
	to, ok := w.r.resolved[ref]
	if !ok {
		var err error
		if to, err = w.r.conditional(w.ctx, ref); err != nil {
			if fe, ok := err.(*Error); ok {
				fe.at(where)
			}
			return err
		}
		w.r.resolved[ref] = to
	}
	*s = to
	return nil
}

// refuseConditionalRefs refuses res, written on its own rather than as an
// entry of a transaction, when it holds a conditional reference
// (Patient?identifier=…) with 400: R4 resolves them in a transaction, and
// stored as written such a reference names no resource, so that searches
// by it and the access rules never find the record.
func refuseConditionalRefs(res fhir.Resource) error {
	r := newRefResolver()
	r.alone = true
	_, err := r.walk(context.Background(), &entry{}, res)
	return err
}

// uri rewrites the value of a uri or url that is the fullUrl of an entry.
func (w *refWalker) uri(s *string) error {
	if s == nil {
		return nil
	}
	switch to, ok := w.r.ids[*s]; {
	case ok:
		*s = to
	case w.r.partly:
		if w.r.unsettled(*s) {
			w.unsettled = append(w.unsettled, *s)
		}
	case isPlaceholder(*s):
		if err := w.r.batchLink("value", *s); err != nil {
			return err.at(string(w.path))
		}
	}
	return nil
}

// isPlaceholder reports whether s is a urn:uuid or urn:oid, which names
// nothing outside the Bundle.
func isPlaceholder(s string) bool {
	return strings.HasPrefix(s, "urn:uuid:") || strings.HasPrefix(s, "urn:oid:")
}

// batchLink returns the failure of a link (what: a reference, a value, or
// conditional criteria) to placeholder, the fullUrl of another entry of a
// batch, whose entries are processed independently (R4 RESTful API
// 3.1.0.11.1: there are no interdependencies between them); nil when
// placeholder is not one.
func (r *refResolver) batchLink(what, placeholder string) *Error {
	i, ok := r.others[placeholder]
	if !ok {
		return nil
	}
	return errorf(http.StatusBadRequest, "invalid",
		"%s %q names Bundle.entry[%d]: the entries of a batch are processed independently and cannot reference each other; use a transaction",
		what, truncate(placeholder, 100), i)
}

// narrative rewrites the href and src attributes of an XHTML narrative that
// name an entry.
func (r *refResolver) narrative(div, from string) string {
	var b strings.Builder
	copied := 0 // div[:copied] is in b
	linkValues(div, func(start, end int) {
		if to, ok := r.lookup(div[start:end], from); ok {
			b.WriteString(div[copied:start])
			b.WriteString(to)
			copied = end
		}
	})
	if copied == 0 {
		return div
	}
	b.WriteString(div[copied:])
	return b.String()
}

// linkAttrs are the attributes of a narrative that hold links.
var linkAttrs = [...]string{"href=", "src="}

// linkValues calls fn with the start and end of the value of each href and
// src attribute in div, in order: an attribute that follows a space, tab or
// newline, its value quoted with " or '. The next occurrence of each
// attribute is looked for again only once the scan has passed it, so div
// is read once per attribute however many links it holds.
func linkValues(div string, fn func(start, end int)) {
	var (
		next  [len(linkAttrs)]int // where the attribute's next occurrence starts; -1: none
		quote [len(linkAttrs)]byte
	)
	find := func(k, from int) {
		attr := linkAttrs[k]
		for {
			i := strings.Index(div[from:], attr)
			if i < 0 {
				next[k] = -1
				return
			}
			i += from
			at := i + len(attr)
			if at < len(div) && (div[at] == '"' || div[at] == '\'') && (i == 0 || div[i-1] == ' ' || div[i-1] == '\t' || div[i-1] == '\n') {
				next[k], quote[k] = i, div[at]
				return
			}
			from = i + 1
		}
	}
	for k := range linkAttrs {
		find(k, 0)
	}
	for {
		k := -1
		for j := range linkAttrs {
			if next[j] >= 0 && (k < 0 || next[j] < next[k]) {
				k = j
			}
		}
		if k < 0 {
			return
		}
		start := next[k] + len(linkAttrs[k]) + 1
		end := strings.IndexByte(div[start:], quote[k])
		if end < 0 {
			return
		}
		end += start
		fn(start, end)
		// An occurrence that begins within the value just read is text,
		// not an attribute.
		for j := range linkAttrs {
			if next[j] >= 0 && next[j] < end {
				find(j, end)
			}
		}
	}
}
