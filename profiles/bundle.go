package profiles

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// scheme matches the scheme of an absolute URI (RFC 3986 section 3.1).
var scheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.\-]*:`)

// bundleEntries applies the rules of Bundle.entry.fullUrl
// (https://hl7.org/fhir/R4/bundle-definitions.html#Bundle.entry.fullUrl):
// it is an absolute URL, and when it looks like a RESTful server URL
// ([base]/[type]/[id], https://hl7.org/fhir/R4/references.html#regex) it
// ends with the type and id of the entry's resource. An entry of search
// mode outcome holds an OperationOutcome, and one of mode match a resource
// of a type the search in the self link searched; a document follows
// documentRules.
func (w *walker) bundleEntries(b map[string]any, path string) {
	entries, _ := b["entry"].([]any)
	if b["type"] == "document" {
		w.documentRules(b, path)
	}
	var searched []string
	isSearch := false
	if b["type"] == "searchset" {
		searched, isSearch = w.v.searchedTypes(b)
	}
	for i, e := range entries {
		em, _ := e.(map[string]any)
		at := fmt.Sprintf("%s.entry[%d]", path, i)
		search, _ := em["search"].(map[string]any)
		r, _ := em["resource"].(map[string]any)
		rt, _ := r["resourceType"].(string)
		switch {
		case r == nil:
		case search["mode"] == "outcome" && rt != "OperationOutcome":
			// https://hl7.org/fhir/R4/codesystem-search-entry-mode.html
			w.add("error", "invalid", at+".resource", "an entry of search mode outcome holds an OperationOutcome, not a %v", r["resourceType"])
		case search["mode"] == "match" && searched != nil && !slices.Contains(searched, rt):
			w.add("error", "invalid", at+".resource", "an entry of search mode match holds a %s, where the search in the self link is of %s", rt, strings.Join(searched, ", "))
		}
		_, hasID := r["id"].(string)
		foundWithoutID := r != nil && isSearch && search["mode"] != "outcome" && !hasID
		if foundWithoutID {
			// Resource.id: "The only time that a resource does not have an
			// id is when it is being submitted to the server using a create
			// operation"; a search finds resources the server holds.
			w.add("error", "invalid", at+".resource", "the %s found by the search has no id: only a resource being created has none", rt)
		}
		fu, ok := em["fullUrl"].(string)
		if !ok || fu == "" {
			continue
		}
		if !scheme.MatchString(fu) {
			w.add("error", "invalid", at, "the fullUrl %q must be an absolute URL", truncate(fu))
			continue
		}
		typ, id, ok := w.v.restful(fu)
		if !ok || r == nil {
			continue
		}
		rid, hasID := r["id"].(string)
		switch {
		case !hasID && foundWithoutID:
			// Reported once, above.
		case !hasID:
			w.add("error", "invalid", at, "the fullUrl %q looks like a RESTful server URL, but the resource has no id", truncate(fu))
		case rt != typ || rid != id:
			w.add("error", "invalid", at, "the fullUrl %q looks like a RESTful server URL, so it must end with the resource's type and id (%s/%s)", truncate(fu), rt, rid)
		}
	}
}

// searchedTypes reads a searchset's self link, the search the server
// performed (https://hl7.org/fhir/R4/search.html#conformance). search is
// false when there is none or it names an operation ($…), whose results
// may be resources that are not identified (Bundle.entry.fullUrl). types
// are the resource types searched, nil for all: a search of a type
// ([base]/[type]?…, [base]/[type]/_search, or in a compartment,
// [base]/Patient/1/[type]) matches resources of that type alone
// (https://hl7.org/fhir/R4/http.html#search), and one of all types is
// restricted by _type.
func (v *Validator) searchedTypes(b map[string]any) (types []string, search bool) {
	var self string
	eachObject(b["link"], "", func(l map[string]any, _ string) {
		if u, ok := l["url"].(string); ok && l["relation"] == "self" && self == "" {
			self = u
		}
	})
	rest, query, _ := strings.Cut(self, "?")
	if self == "" || strings.Contains(rest, "$") {
		return nil, false
	}
	segments := strings.Split(strings.TrimSuffix(strings.TrimSuffix(rest, "/"), "/_search"), "/")
	if last := segments[len(segments)-1]; last != "Resource" && last != "DomainResource" && v.isResource(last) {
		return []string{last}, true
	}
	params, err := url.ParseQuery(query)
	if err != nil {
		return nil, true
	}
	for _, p := range params["_type"] {
		types = append(types, strings.Split(p, ",")...)
	}
	return types, true
}

// restful splits an http(s) URL of the form [base]/[type]/[id], with an
// optional /_history/[vid], into the resource type and id.
func (v *Validator) restful(u string) (typ, id string, ok bool) {
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return "", "", false
	}
	if i := strings.Index(u, "/_history/"); i >= 0 {
		u = u[:i]
	}
	parts := strings.Split(u, "/")
	if len(parts) < 5 {
		return "", "", false // scheme, "", host, type, id at least
	}
	typ, id = parts[len(parts)-2], parts[len(parts)-1]
	if !v.isResource(typ) || typ == "Resource" || typ == "DomainResource" {
		return "", "", false
	}
	if re := v.regexps["id"]; re == nil || !re.MatchString(id) {
		return "", "", false
	}
	return typ, id, true
}

// entryIndex finds Bundle entries by fullUrl.
type entryIndex struct {
	entries []any
	byURL   map[string][]int
}

func newEntryIndex(entries []any) *entryIndex {
	x := &entryIndex{entries: entries, byURL: map[string][]int{}}
	for i, e := range entries {
		em, _ := e.(map[string]any)
		if fu, ok := em["fullUrl"].(string); ok {
			x.byURL[fu] = append(x.byURL[fu], i)
		}
	}
	return x
}

// resolve returns the indexes of the entries a reference in the entry
// with fullUrl from resolves to, following
// https://hl7.org/fhir/R4/bundle.html#references: an absolute reference is
// matched against the fullUrls; a relative one is made absolute against
// the base of a RESTful from, and cannot be resolved in the bundle when
// from is not RESTful (it is then relative to the server). A version
// specific reference also matches the resource's meta.versionId. A
// reference equal to an entry's fullUrl names that entry.
func (x *entryIndex) resolve(v *Validator, ref, from string) []int {
	if ref == "" || strings.HasPrefix(ref, "#") {
		return nil
	}
	if exact := x.byURL[ref]; len(exact) > 0 {
		return exact
	}
	abs := ref
	if !scheme.MatchString(ref) {
		typ, id, ok := v.restful(from)
		if !ok {
			return nil
		}
		abs = strings.TrimSuffix(strings.TrimSuffix(from, "/"+typ+"/"+id), "/") + "/" + ref
	}
	version := ""
	if i := strings.Index(abs, "/_history/"); i >= 0 {
		abs, version = abs[:i], abs[i+len("/_history/"):]
	}
	if version == "" {
		return x.byURL[abs]
	}
	var out []int
	for _, i := range x.byURL[abs] {
		em, _ := x.entries[i].(map[string]any)
		r, _ := em["resource"].(map[string]any)
		meta, _ := r["meta"].(map[string]any)
		if meta["versionId"] == version {
			out = append(out, i)
		}
	}
	return out
}

// documentRules applies https://hl7.org/fhir/R4/documents.html#content to
// a Bundle of type document: the resources the Composition references from
// subject, encounter, author, attester.party, custodian, event.detail and
// its sections' author, focus and entry are in the bundle, and the bundle
// holds only the Composition, what it references directly or indirectly,
// stylesheets (Bundle.link with relation stylesheet) and the Provenance of
// included resources.
func (w *walker) documentRules(b map[string]any, path string) {
	entries, _ := b["entry"].([]any)
	if len(entries) == 0 {
		return
	}
	first, _ := entries[0].(map[string]any)
	comp, _ := first["resource"].(map[string]any)
	if comp["resourceType"] != "Composition" {
		return // bdl-11 reports it
	}
	compURL, _ := first["fullUrl"].(string)
	idx := newEntryIndex(entries)
	compPath := path + ".entry[0].resource"
	var required []refAt
	collect := func(obj map[string]any, name, at string) {
		required = append(required, referencesIn(obj[name], at+"."+name)...)
	}
	for _, name := range []string{"subject", "encounter", "author", "custodian"} {
		collect(comp, name, compPath)
	}
	eachObject(comp["attester"], compPath+".attester", func(a map[string]any, at string) { collect(a, "party", at) })
	eachObject(comp["event"], compPath+".event", func(e map[string]any, at string) { collect(e, "detail", at) })
	var section func(s map[string]any, at string)
	section = func(s map[string]any, at string) {
		for _, name := range []string{"author", "focus", "entry"} {
			collect(s, name, at)
		}
		eachObject(s["section"], at+".section", section)
	}
	eachObject(comp["section"], compPath+".section", section)
	for _, r := range required {
		switch n := len(idx.resolve(w.v, r.ref, compURL)); {
		case n == 0:
			w.add("error", "invalid", r.path, "the document does not hold %s: resources the Composition references SHALL be in the bundle", truncate(r.ref))
		case n > 1:
			w.add("error", "invalid", r.path, "%s matches %d entries of the document", truncate(r.ref), n)
		}
	}

	// Entries reachable from the Composition, through any reference.
	reached := make([]bool, len(entries))
	reached[0] = true
	queue := []int{0}
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		em, _ := entries[i].(map[string]any)
		from, _ := em["fullUrl"].(string)
		for _, r := range referencesIn(em["resource"], "") {
			for _, j := range idx.resolve(w.v, r.ref, from) {
				if !reached[j] {
					reached[j] = true
					queue = append(queue, j)
				}
			}
		}
	}
	eachObject(b["link"], path+".link", func(l map[string]any, at string) {
		if l["relation"] != "stylesheet" {
			return
		}
		u, _ := l["url"].(string)
		found := idx.resolve(w.v, u, compURL)
		if len(found) == 0 && !scheme.MatchString(u) {
			w.add("error", "not-found", at+".url", "the stylesheet %s is not in the document", truncate(u))
		}
		for _, j := range found {
			reached[j] = true
		}
	})
	for i, e := range entries {
		em, _ := e.(map[string]any)
		r, _ := em["resource"].(map[string]any)
		if reached[i] || r == nil || r["resourceType"] == "Provenance" {
			continue
		}
		fu, _ := em["fullUrl"].(string)
		w.add("error", "invalid", fmt.Sprintf("%s.entry[%d]", path, i), "the entry %s is not referenced from the Composition, directly or indirectly: a document holds only what its Composition references", truncate(fu))
	}
}

// refAt is a literal reference and where it is.
type refAt struct{ ref, path string }

// referencesIn returns the literal references (Reference.reference) in a
// JSON value, at any depth.
func referencesIn(v any, path string) []refAt {
	var out []refAt
	switch x := v.(type) {
	case map[string]any:
		if ref, ok := x["reference"].(string); ok {
			out = append(out, refAt{ref, path})
		}
		for k, c := range x {
			if k != "reference" {
				out = append(out, referencesIn(c, path+"."+k)...)
			}
		}
	case []any:
		for i, c := range x {
			out = append(out, referencesIn(c, fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return out
}

// eachObject calls f for a JSON object or each object of an array, with
// its location.
func eachObject(v any, path string, f func(map[string]any, string)) {
	switch x := v.(type) {
	case map[string]any:
		f(x, path)
	case []any:
		for i, c := range x {
			if m, ok := c.(map[string]any); ok {
				f(m, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
}
