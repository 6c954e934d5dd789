package profiles

import (
	"iter"
	"reflect"
	"strings"

	"carefhir/fhir/fhirpath"
)

// typeNames returns a type's name with the names of the types it
// specialises or constrains, up to Element or Resource, and Element: the
// names an element context can give for a value of that type. The caller
// must not change the list, which is kept for the type.
func (v *Validator) typeNames(typ string) []string {
	if v.names == nil {
		return v.computeTypeNames(typ)
	}
	if names, ok := v.names.Load(typ); ok {
		return names.([]string)
	}
	names := v.computeTypeNames(typ)
	v.names.Store(typ, names)
	return names
}

// computeTypeNames is typeNames, worked out from the definitions.
func (v *Validator) computeTypeNames(typ string) []string {
	names := []string{typ}
	for s, n := v.structures[typ], 0; s != nil && n < 8; n++ {
		if s.sd.Type != "" && !contains(names, s.sd.Type) {
			names = append(names, s.sd.Type)
		}
		base := v.structure(s.sd.BaseDefinition)
		if base == nil {
			break
		}
		names = append(names, base.sd.Type)
		s = base
	}
	// The R4 definitions give Element as the context of extensions meant
	// for use anywhere, resources included (cqf-library on Questionnaire
	// in the R4 examples).
	if !contains(names, "Element") {
		names = append(names, "Element")
	}
	return names
}

// withoutIndexes returns a location without its list indexes ([n]) and
// type selections (.ofType(T)).
func withoutIndexes(path string) string {
	if !strings.ContainsAny(path, "[(") {
		return path
	}
	var b strings.Builder
	for i := 0; i < len(path); {
		if path[i] == '[' {
			if n := digitsThenBracket(path[i+1:]); n > 0 {
				i += 1 + n
				continue
			}
		}
		if rest, ok := strings.CutPrefix(path[i:], ".ofType("); ok {
			if end := strings.IndexByte(rest, ')'); end >= 0 {
				i += len(".ofType(") + end + 1
				continue
			}
		}
		b.WriteByte(path[i])
		i++
	}
	return b.String()
}

// digitsThenBracket returns the length of the one or more digits and the
// "]" that start s, or 0.
func digitsThenBracket(s string) int {
	n := digits(s)
	if n == 0 || n == len(s) || s[n] != ']' {
		return 0
	}
	return n + 1
}

// placeOf describes an occurrence as the holder of the extensions among its
// children; its names are worked out only when an extension's context is
// checked.
func (w *walker) placeOf(it item, e *elem) place {
	p := place{path: it.path, val: it.val, extURL: w.at.extURL, elem: e, typ: it.typ}
	if it.val == nil {
		p.val = it.ext
	}
	if it.typ == "Extension" {
		if m, ok := it.val.(map[string]any); ok {
			if u, _ := m["url"].(string); isAbsolute(u) {
				p.extURL = canonical(u)
			}
		}
	}
	return p
}

// names returns the names an element context can give for the place: its
// element's path in the definitions and in the base type it comes from,
// its type's names, and its location without indexes.
func (p place) names(v *Validator) []string {
	var names []string
	for n := range p.eachName(v) {
		if !contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// named reports whether name is one of the place's names. Every extension
// with a known definition checks its contexts here: the location without
// indexes, the one name that costs a string, comes last.
func (p place) named(v *Validator, name string) bool {
	for n := range p.eachName(v) {
		if n == name {
			return true
		}
	}
	return false
}

// eachName yields the place's names in the order of names, some maybe
// twice, none empty.
func (p place) eachName(v *Validator) iter.Seq[string] {
	return func(yield func(string) bool) {
		each := func(names ...string) bool {
			for _, n := range names {
				if n != "" && !yield(n) {
					return false
				}
			}
			return true
		}
		if p.elem != nil {
			base := ""
			if p.elem.def.Base != nil {
				base = p.elem.def.Base.Path
			}
			if !each(p.elem.def.Path, base) {
				return
			}
		}
		if each(v.typeNames(p.typ)...) && p.elem != nil {
			yield(withoutIndexes(p.path))
		}
	}
}

func isAbsolute(u string) bool {
	return strings.HasPrefix(u, "http:") || strings.HasPrefix(u, "https:") || strings.HasPrefix(u, "urn:")
}

// extensionContext checks that an extension with a known definition is
// used where its StructureDefinition.context allows: on an element it
// names by path or type, inside an extension it names, or on an element a
// FHIRPath context expression selects.
func (w *walker) extensionContext(it item) {
	m, _ := it.val.(map[string]any)
	u, _ := m["url"].(string)
	s := w.v.structure(u)
	if s == nil || s.sd.Type != "Extension" || len(s.sd.Context) == 0 {
		return
	}
	var allowed []string
	for _, c := range s.sd.Context {
		switch c.Type {
		case "element":
			if w.at.named(w.v, c.Expression) {
				return
			}
		case "extension":
			if canonical(c.Expression) == w.at.extURL {
				return
			}
		case "fhirpath":
			if ok, known := w.selects(c.Expression, w.at); ok || !known {
				return
			}
		default:
			return // a context this validator does not know: do not judge
		}
		allowed = append(allowed, c.Expression)
	}
	w.add("error", "structure", w.at.path, "the extension %s is not allowed here (this element is %s; it is allowed on %s)", u, strings.Join(w.at.names(w.v), ", "), strings.Join(allowed, ", "))
}

// selects reports whether a FHIRPath expression evaluated on the resource
// returns the element holding the extension: the same JSON object, or for
// a primitive, a value of the same element name and value. known is false
// when the expression cannot be evaluated.
func (w *walker) selects(src string, at place) (ok, known bool) {
	expr, err := w.v.compile(src)
	if err != nil {
		return false, false
	}
	env := w.env()
	out, err := expr.Evaluate(w.resNode, env)
	if err != nil {
		return false, false
	}
	holder := reflect.ValueOf(at.val)
	for _, r := range out {
		n, isNode := r.(*fhirpath.Node)
		if !isNode {
			continue
		}
		j := reflect.ValueOf(n.JSON())
		switch {
		case holder.Kind() == reflect.Map:
			if j.Kind() == reflect.Map && j.UnsafePointer() == holder.UnsafePointer() {
				return true, true
			}
		case at.elem != nil && n.Name() == at.elem.name && equalJSON(n.JSON(), at.val):
			return true, true
		}
	}
	return false, true
}

// unknownExtension reports an extension without a definition here. A
// relative url names a sub-extension, which only the complex extension
// holding it can define; a top-level extension's url must be absolute
// (https://hl7.org/fhir/R4/extensibility.html#Extension). Other unknown
// extensions are a warning: the resource may carry extensions the server
// does not know.
func (w *walker) unknownExtension(it item, obj map[string]any) {
	u, _ := obj["url"].(string)
	switch {
	case u == "":
	case isAbsolute(u):
		w.add("warning", "not-found", it.path, "extension %s is not known here, so its content was not checked", u)
	case w.at.extURL == "":
		w.add("error", "invalid", it.path, "the extension url %q must be an absolute URL", truncate(u))
	case w.v.structure(w.at.extURL) != nil:
		w.add("error", "invalid", it.path, "the extension %s defines no sub-extension %q", w.at.extURL, truncate(u))
	default:
		w.add("warning", "not-found", it.path, "sub-extension %s of %s is not known here, so its content was not checked", u, w.at.extURL)
	}
}
