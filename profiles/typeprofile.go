package profiles

import (
	"strings"
)

// typeProfiles returns the profiles element e requires of a value of type
// typ (ElementDefinition.type.profile): the value must conform to one of
// them. For a resource, the profiles listed under Resource and
// DomainResource apply as well.
func typeProfiles(e *elem, typ string) []string {
	var out []string
	for _, t := range e.def.Type {
		c := t.typeCode()
		if c == typ || c == "Resource" || c == "DomainResource" {
			out = append(out, t.Profile...)
		}
	}
	return out
}

// profileChoice validates a complex value whose element allows several
// profiles. It returns the root of the first profile the value conforms
// to; when it conforms to none, it reports that and each profile's errors
// (those the base type does not already give), and returns the base type's
// root.
func (w *walker) profileChoice(it item, profs []string) *elem {
	base := w.v.structures[it.typ]
	var candidates []*structure
	for _, p := range profs {
		if s := w.v.structure(p); s != nil {
			candidates = append(candidates, s)
		}
	}
	if len(candidates) < len(profs) {
		// A profile not known here might be the one that matches.
		w.add("warning", "not-found", it.path, "some of the profiles %s are not known here, so the value was checked against its type only", strings.Join(profs, ", "))
		if base == nil {
			return nil
		}
		return base.root
	}
	var failures [][]Issue
	for _, s := range candidates {
		sub := w.sub()
		it := it
		it.typ = s.sd.Type
		sub.value(it, s.root, s.root)
		if !HasErrors(sub.issues) {
			return s.root
		}
		failures = append(failures, errorsOf(sub.issues))
	}
	w.add("error", "structure", it.path, "the value matches none of the profiles %s", strings.Join(profs, ", "))
	var baseIssues map[Issue]bool
	if base != nil {
		sub := w.sub()
		sub.value(it, base.root, base.root)
		baseIssues = map[Issue]bool{}
		for _, is := range sub.issues {
			baseIssues[is] = true
		}
	}
	for i, f := range failures {
		for _, is := range f {
			if !baseIssues[is] {
				w.add(is.Severity, is.Code, is.Expression, "%s (profile %s)", is.Message, candidates[i].sd.URL)
			}
		}
	}
	if base == nil {
		return nil
	}
	return base.root
}

// resourceTypeAllowed checks a resource's type against the types its
// element allows (a profile may narrow Bundle.entry.resource or
// DomainResource.contained to some types).
func (w *walker) resourceTypeAllowed(e *elem, rt, path string) bool {
	var allowed []string
	for _, t := range e.def.Type {
		c := t.typeCode()
		if c == rt || c == "Resource" || c == "DomainResource" && rt != "Bundle" && rt != "Binary" && rt != "Parameters" {
			return true
		}
		allowed = append(allowed, c)
	}
	if len(allowed) == 0 {
		return true
	}
	w.add("error", "structure", path, "a %s is not allowed here: the type must be %s", rt, strings.Join(allowed, " or "))
	return false
}

// resourceProfiles validates a resource held in an element (such as
// Bundle.entry.resource) against the profiles the element requires of it:
// one, directly; of several, the resource must conform to one.
func (w *walker) resourceProfiles(obj map[string]any, e *elem, rt, path string) {
	profs := typeProfiles(e, rt)
	if len(profs) == 0 {
		return
	}
	var types []string
	var matching []*structure
	for _, p := range profs {
		s := w.v.structure(p)
		if s == nil {
			w.add("warning", "not-found", path, "profile %s is not known here, so the resource was not checked against it", p)
			return
		}
		types = append(types, s.sd.Type)
		if s.sd.Type == rt {
			matching = append(matching, s)
		}
	}
	switch {
	case len(matching) == 0:
		w.add("error", "structure", path, "a %s is not allowed here: the profiles %s are for %s", rt, strings.Join(profs, ", "), strings.Join(types, ", "))
	case len(matching) == 1:
		w.validateIn(obj, matching[0], path, w.containerFor(e))
	default:
		for _, s := range matching {
			if w.conformsTo(item{val: obj, typ: rt, path: path}, s) {
				return
			}
		}
		w.add("error", "structure", path, "the %s matches none of the profiles %s", rt, strings.Join(profs, ", "))
	}
}

// claimedProfiles validates a resource held in an element (a Bundle
// entry's, a contained one, a Parameters parameter's) against the profiles
// it claims in meta.profile, as the resource itself is when sent alone: a
// claim is checked wherever the resource stands. base is its base definition.
func (w *walker) claimedProfiles(obj map[string]any, base *structure, rt, path string, container map[string]any) {
	seen := map[string]bool{}
	for _, p := range claimedProfiles(obj) {
		if seen[canonical(p)] {
			continue
		}
		seen[canonical(p)] = true
		s := w.v.structure(p)
		switch {
		case s == nil:
			w.add("warning", "not-found", path+".meta.profile", "profile %s is not known here, so the resource was not checked against it", p)
		case s.sd.Type != rt:
			w.add("error", "structure", path, "profile %s is for %s, not %s", p, s.sd.Type, rt)
		case s != base:
			w.validateIn(obj, s, path, container)
		}
	}
}

// containerFor returns the resource a resource held in element e is
// contained in, if e is a contained element.
func (w *walker) containerFor(e *elem) map[string]any {
	if e.name == "contained" {
		return w.res
	}
	return nil
}
