package profiles

import (
	"strings"
)

// slice assigns the occurrences of a sliced element to its slices by the
// discriminators (https://hl7.org/fhir/R4/profiling.html#slicing), then
// checks each slice's cardinality and the slicing rules (closed, openAtEnd,
// ordered). For an occurrence assigned to a slice by a trial validation
// against it, it returns the issues that validation found (trials[i]), which
// are those the occurrence's validation against the slice would find again.
func (w *walker) slice(c *elem, items []item, assigned []*elem, path string) (trials []*[]Issue) {
	var ds []Discriminator
	rules := "open"
	ordered := false
	if c.def.Slicing != nil {
		ds = c.def.Slicing.Discriminator
		rules = c.def.Slicing.Rules
		ordered = c.def.Slicing.Ordered
	}
	counts := make([]int, len(c.slices))
	lastSlice, firstUnmatched := -1, -1
	for i, it := range items {
		for si, s := range c.slices {
			if ok, trial := w.matches(it, s, ds); ok {
				assigned[i] = s
				counts[si]++
				if trial != nil {
					if trials == nil {
						trials = make([]*[]Issue, len(items))
					}
					trials[i] = trial
				}
				if ordered && si < lastSlice {
					w.add("error", "structure", it.path, "slice %s is out of order: the slices of %s are ordered", s.def.SliceName, c.def.Path)
				}
				if rules == "openAtEnd" && firstUnmatched >= 0 {
					w.add("error", "structure", items[firstUnmatched].path, "this element matches no slice of %s but comes before a sliced one (openAtEnd)", c.def.Path)
					firstUnmatched = -2
				}
				lastSlice = si
				break
			}
		}
		if assigned[i] == nil {
			if firstUnmatched == -1 {
				firstUnmatched = i
			}
			if rules == "closed" {
				w.add("error", "structure", it.path, "this element does not match any slice of %s, and the slicing is closed", c.def.Path)
			}
		}
	}
	for si, s := range c.slices {
		at := path
		if strings.HasSuffix(c.name, "[x]") && len(s.def.Type) == 1 {
			// A type slice of a choice (value[x]:valueQuantity) is about
			// the values of its type, located as they are:
			// value.ofType(Quantity).
			at += ".ofType(" + s.def.Type[0].typeCode() + ")"
		}
		w.cardinality(s, counts[si], at, "")
	}
	return trials
}

// matches reports whether an occurrence belongs to slice s. When a trial
// validation decided it in a walk of the resource itself (not a trial
// walk), and validating the occurrence against s finds the same issues
// wherever it is done (s holds no contentReference, and the walk collects
// no local references), it returns that validation's issues.
func (w *walker) matches(it item, s *elem, ds []Discriminator) (bool, *[]Issue) {
	if len(ds) == 0 {
		// Without discriminators, an occurrence belongs to the first slice
		// it is valid against. An extension is valid against a slice of a
		// known extension only if its url is the extension's (the
		// definition fixes Extension.url): an extension with another url
		// is ruled out without validating it.
		if url := fixedURL(w.v.structure(extensionProfile(s))); url != "" {
			if obj, ok := it.val.(map[string]any); ok && obj["url"] != url {
				return false, nil
			}
		}
		sub := w.sub()
		sub.value(it, s, s)
		if HasErrors(sub.issues) {
			return false, nil
		}
		if w.memo == nil || !s.plain || w.refsMatter {
			return true, nil
		}
		return true, &sub.issues
	}
	for _, d := range ds {
		values := w.pathValues(it, d.Path)
		target := w.v.sliceTarget(s, d.Path)
		if target == nil {
			return false, nil
		}
		switch d.Type {
		case "value", "pattern":
			want, isPattern := target.def.Fixed, false
			if want == nil {
				want, isPattern = target.def.Pattern, true
			}
			if want == nil && target != s {
				// The value may be fixed on the slice as a whole.
				want, isPattern = within(s.def.Fixed, d.Path), false
				if want == nil {
					want, isPattern = within(s.def.Pattern, d.Path), true
				}
			}
			if want == nil && (d.Path == "url" || strings.HasSuffix(d.Path, ".url")) {
				if p := extensionProfile(s); p != "" {
					want = p
				}
			}
			if want == nil && target.def.Max == "0" {
				// A slice that prohibits the discriminating element
				// holds the occurrences without it.
				if len(values) > 0 {
					return false, nil
				}
				continue
			}
			if want == nil {
				b := target.def.Binding
				if b == nil || b.Strength != "required" {
					// The slice does not constrain this discriminator.
					continue
				}
				if len(values) == 0 {
					return false, nil
				}
				var buf [2]coded
				for _, v := range values {
					cs, _ := codes(v, buf[:0])
					for _, c := range cs {
						if in, _, err := w.v.terms.ValidateCode(b.ValueSet, c.system, c.code); err != nil || !in {
							return false, nil
						}
					}
				}
				continue
			}
			found := false
			for _, v := range values {
				if isPattern && matchPattern(v.val, want) || !isPattern && equalJSON(v.val, want) {
					found = true
					break
				}
			}
			if !found {
				return false, nil
			}
		case "exists":
			if target.def.min() >= 1 && len(values) == 0 || target.def.Max == "0" && len(values) > 0 {
				return false, nil
			}
		case "type":
			if len(values) == 0 {
				return false, nil
			}
			for _, v := range values {
				ok := false
				for _, t := range target.def.Type {
					if t.typeCode() == v.typ {
						ok = true
					}
				}
				if !ok {
					return false, nil
				}
			}
		case "profile":
			if len(values) == 0 {
				return false, nil
			}
			var profs []string
			for _, t := range target.def.Type {
				profs = append(profs, t.Profile...)
				if strings.HasSuffix(d.Path, "resolve()") {
					profs = append(profs, t.TargetProfile...)
				}
			}
			for _, v := range values {
				ok := false
				for _, p := range profs {
					if st := w.v.structure(p); st != nil && w.conformsTo(v, st) {
						ok = true
						break
					}
				}
				if !ok {
					return false, nil
				}
			}
		default:
			return false, nil
		}
	}
	return true, nil
}

// within returns the part of a fixed or pattern value a discriminator path
// of plain element names reaches, or nil.
func within(v any, path string) any {
	for _, step := range splitPath(path) {
		if step == "$this" {
			continue
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[step]
	}
	return v
}

// fixedURL returns the url an extension definition fixes, or "" (st nil, or
// not an extension that fixes one).
func fixedURL(st *structure) string {
	if st == nil || st.sd.Type != "Extension" {
		return ""
	}
	u := st.root.child("url")
	if u == nil {
		return ""
	}
	url, _ := u.def.Fixed.(string)
	return url
}

func extensionProfile(s *elem) string {
	for _, t := range s.def.Type {
		if t.Code == "Extension" && len(t.Profile) > 0 {
			return t.Profile[0]
		}
	}
	return ""
}

// sub returns a walker for a trial validation in the current context,
// which collects its issues apart.
func (w *walker) sub() *walker {
	return &walker{v: w.v, ctx: w.ctx, depth: w.depth, res: w.res, resNode: w.resNode, bundle: w.bundle, container: w.container, at: w.at, evaluated: map[evaluation]bool{}}
}

// conformsTo reports whether a value is valid against a profile.
func (w *walker) conformsTo(it item, s *structure) bool {
	sub := w.sub()
	if obj, ok := it.val.(map[string]any); ok && s.sd.Kind == "resource" {
		if obj["resourceType"] != s.sd.Type {
			return false
		}
		sub.validateResource(obj, s, it.path)
	} else {
		it.typ = s.sd.Type
		sub.value(it, s.root, s.root)
	}
	return !HasErrors(sub.issues)
}

// splitPath splits a discriminator path at the dots outside parentheses.
func splitPath(p string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '(':
			depth++
		case ')':
			depth--
		case '.':
			if depth == 0 {
				out = append(out, p[start:i])
				start = i + 1
			}
		}
	}
	return append(out, p[start:])
}

func funcArg(step, name string) (string, bool) {
	rest, ok := strings.CutPrefix(step, name+"(")
	if !ok || !strings.HasSuffix(rest, ")") {
		return "", false
	}
	return strings.Trim(rest[:len(rest)-1], `'"`), true
}

// pathValues evaluates a discriminator path (the restricted FHIRPath of
// https://hl7.org/fhir/R4/profiling.html#discriminator) on an occurrence.
func (w *walker) pathValues(it item, path string) []item {
	cur := []item{it}
	for _, step := range splitPath(path) {
		var next []item
		for _, c := range cur {
			switch {
			case step == "$this":
				next = append(next, c)
			case step == "resolve()":
				m, _ := c.val.(map[string]any)
				ref, _ := m["reference"].(string)
				var r map[string]any
				if strings.HasPrefix(ref, "#") {
					r = w.contained(ref[1:])
				} else if ref != "" {
					r = w.bundle[ref]
				}
				if r != nil {
					rt, _ := r["resourceType"].(string)
					next = append(next, item{val: r, typ: rt, path: c.path})
				}
			default:
				if u, ok := funcArg(step, "extension"); ok {
					m, _ := c.val.(map[string]any)
					list, _ := m["extension"].([]any)
					for _, x := range list {
						if xm, ok := x.(map[string]any); ok && xm["url"] == u {
							next = append(next, item{val: xm, typ: "Extension", path: c.path})
						}
					}
					continue
				}
				if t, ok := funcArg(step, "ofType"); ok {
					if c.typ == t {
						next = append(next, c)
					}
					continue
				}
				m, ok := c.val.(map[string]any)
				if !ok {
					continue
				}
				if step == "resourceType" {
					next = append(next, item{val: m["resourceType"], typ: "code", path: c.path})
					continue
				}
				next = append(next, w.v.childValues(m, c, step)...)
			}
		}
		cur = next
	}
	return cur
}

// childValues returns the values of element name in an object, with their
// types, looking name up in the definition of the object's type.
func (v *Validator) childValues(m map[string]any, parent item, name string) []item {
	var out []item
	add := func(val any, typ string) {
		list, ok := val.([]any)
		if !ok && val != nil {
			list = []any{val}
		}
		for _, x := range list {
			t := typ
			// A resource's type is the one it names.
			if m, ok := x.(map[string]any); ok {
				if rt, ok := m["resourceType"].(string); ok && v.isResource(rt) {
					t = rt
				}
			}
			out = append(out, item{val: x, typ: t, path: parent.path})
		}
	}
	if val, ok := m[name]; ok {
		add(val, v.childType(parent.typ, name))
		return out
	}
	for k, val := range m {
		if strings.HasPrefix(k, name) && len(k) > len(name) && k[len(name)] >= 'A' && k[len(name)] <= 'Z' {
			t := k[len(name):]
			if v.structures[t] == nil {
				t = strings.ToLower(t[:1]) + t[1:]
			}
			add(val, t)
		}
	}
	return out
}

// childType returns the type of element name in type typ, when known.
func (v *Validator) childType(typ, name string) string {
	s := v.structures[typ]
	if s == nil {
		return ""
	}
	if c := s.root.child(name); c != nil && len(c.def.Type) == 1 {
		return c.def.Type[0].typeCode()
	}
	return ""
}

// sliceTarget finds the element a discriminator path reaches from slice s.
func (v *Validator) sliceTarget(s *elem, path string) *elem {
	return v.stepsTarget(s, splitPath(path))
}

// stepsTarget follows the discriminator steps from element cur. Where a
// step reaches a sliced element whose own definition fixes nothing at the
// rest of the path, a slice of it that must occur (min 1 or more) and fixes
// a value there decides: the bp profile tells its SystolicBP component by
// code.coding.code through such a slice (code.coding:SBPCode, 1..1, code
// fixed to 8480-6), so every component in that slice holds that value.
func (v *Validator) stepsTarget(cur *elem, steps []string) *elem {
	for i, step := range steps {
		next := v.step(cur, step)
		if next == nil {
			return nil
		}
		if rest := steps[i+1:]; len(next.slices) > 0 && len(rest) > 0 {
			plain := v.stepsTarget(next, rest)
			if plain != nil && (plain.def.Fixed != nil || plain.def.Pattern != nil) {
				return plain
			}
			for _, sl := range next.slices {
				if sl.def.min() < 1 {
					continue
				}
				if t := v.stepsTarget(sl, rest); t != nil && (t.def.Fixed != nil || t.def.Pattern != nil) {
					return t
				}
			}
			return plain
		}
		cur = next
	}
	return cur
}

// step returns the child of cur that one discriminator step names: cur
// itself for $this, resolve() and ofType(), the slice of a known extension
// for extension('url'). It returns nil when there is none.
func (v *Validator) step(cur *elem, step string) *elem {
	switch {
	case step == "$this" || step == "resolve()":
		return cur
	case strings.HasPrefix(step, "ofType("):
		return cur
	}
	children := cur.children
	if len(children) == 0 {
		if r := v.typeRoot(cur, firstType(cur), nil, cur); r != nil {
			children = r.children
		}
	}
	if u, ok := funcArg(step, "extension"); ok {
		var found *elem
		for _, c := range children {
			if c.name != "extension" {
				continue
			}
			for _, sl := range c.slices {
				if extensionProfile(sl) == u {
					found = sl
				}
			}
		}
		return found
	}
	var next *elem
	for _, c := range children {
		if c.name == step || c.name == step+"[x]" {
			next = c
		}
	}
	return next
}

func firstType(e *elem) string {
	if len(e.def.Type) == 0 {
		return ""
	}
	return e.def.Type[0].typeCode()
}
