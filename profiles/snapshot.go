package profiles

import (
	"fmt"
	"strings"
)

// elem is one element of a StructureDefinition snapshot arranged as a tree:
// its children, and for a sliced element the slices, each a copy of the
// element with its own constraints and children.
type elem struct {
	def      *ElementDefinition
	name     string // last path segment, "value[x]" for a choice
	children []*elem
	slices   []*elem
	// expanded records that children were copied in from the element's
	// type during snapshot generation.
	expanded bool
}

func (e *elem) child(name string) *elem {
	for _, c := range e.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (e *elem) clone() *elem {
	d := *e.def
	c := &elem{def: &d, name: e.name, expanded: e.expanded}
	for _, ch := range e.children {
		c.children = append(c.children, ch.clone())
	}
	for _, s := range e.slices {
		c.slices = append(c.slices, s.clone())
	}
	return c
}

// splitID splits an element id into its segments, "Patient.identifier:nhs.system"
// into "Patient", "identifier:nhs", "system". Dots inside a slice name that
// contains a URL are kept.
func splitID(id string) []string {
	var out []string
	start, inSlice := 0, false
	for i := 0; i < len(id); i++ {
		switch id[i] {
		case ':':
			inSlice = true
		case '.':
			if inSlice && i+1 < len(id) && !isLetter(id[i+1]) {
				continue
			}
			out = append(out, id[start:i])
			start, inSlice = i+1, false
		}
	}
	return append(out, id[start:])
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// buildTree arranges a snapshot's element list as a tree.
func buildTree(els []*ElementDefinition) (*elem, error) {
	if len(els) == 0 {
		return nil, fmt.Errorf("empty snapshot")
	}
	byID := map[string]*elem{}
	var root *elem
	for _, d := range els {
		id := d.ID
		if id == "" {
			id = d.Path
		}
		segs := splitID(id)
		last := segs[len(segs)-1]
		name, slice, _ := strings.Cut(last, ":")
		e := &elem{def: d, name: name}
		byID[id] = e
		if len(segs) == 1 && slice == "" {
			root = e
			continue
		}
		if slice != "" {
			parentID := strings.Join(segs[:len(segs)-1], ".")
			if parentID != "" {
				parentID += "."
			}
			holder := byID[parentID+name]
			if holder == nil {
				return nil, fmt.Errorf("element %s: no unsliced element %s", id, parentID+name)
			}
			holder.slices = append(holder.slices, e)
			continue
		}
		parent := byID[strings.Join(segs[:len(segs)-1], ".")]
		if parent == nil {
			return nil, fmt.Errorf("element %s has no parent", id)
		}
		parent.children = append(parent.children, e)
	}
	if root == nil {
		return nil, fmt.Errorf("snapshot has no root element")
	}
	return root, nil
}

// generate builds the snapshot tree of a constraining profile from its base
// definition's tree and its differential, as described in
// https://hl7.org/fhir/R4/profiling.html#snapshot: each differential element
// is found (or created, for a new slice or an element inside a data type) in
// a copy of the base tree, and its constraints merged in.
func (v *Validator) generate(sd *StructureDefinition, base *elem) (*elem, error) {
	root := base.clone()
	for _, d := range sd.Differential.Element {
		id := d.ID
		if id == "" {
			id = d.Path
			if d.SliceName != "" {
				id += ":" + d.SliceName
			}
		}
		target, err := v.locate(root, splitID(id))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sd.URL, err)
		}
		merge(target, d)
	}
	return root, nil
}

// locate finds the element a differential id names, expanding data types
// and creating slices as needed.
func (v *Validator) locate(root *elem, segs []string) (*elem, error) {
	cur := root
	for i, seg := range segs[1:] {
		name, slice, _ := strings.Cut(seg, ":")
		if len(cur.children) == 0 {
			v.expand(cur, root)
		}
		next := cur.child(name)
		if next == nil {
			next = choiceFor(cur, name)
		}
		if next == nil && len(cur.children) == 0 {
			// A choice of several types: the type that has the child.
			for _, t := range cur.def.Type {
				if s := v.structure(t.typeCode()); s != nil && s.root.child(name) != nil {
					for _, c := range s.root.children {
						cur.children = append(cur.children, c.clone())
					}
					cur.expanded = true
					next = cur.child(name)
					break
				}
			}
		}
		if next == nil {
			return nil, fmt.Errorf("no element %s", strings.Join(segs[:i+2], "."))
		}
		if slice != "" {
			s := findSlice(next, slice)
			if s == nil {
				s = next.clone()
				s.slices = nil
				s.def.SliceName = slice
				s.def.Slicing = nil
				// A new slice is optional unless the differential says
				// otherwise: the minimum on the sliced element counts all
				// occurrences, not each slice's.
				zero := 0
				s.def.Min = &zero
				next.slices = append(next.slices, s)
			}
			next = s
		}
		cur = next
	}
	return cur, nil
}

func findSlice(e *elem, name string) *elem {
	for _, s := range e.slices {
		if s.def.SliceName == name {
			return s
		}
	}
	return nil
}

// choiceFor maps a type-specific name such as valueQuantity to the choice
// element value[x] that holds it.
func choiceFor(e *elem, name string) *elem {
	for _, c := range e.children {
		base, ok := strings.CutSuffix(c.name, "[x]")
		if ok && strings.HasPrefix(name, base) && len(name) > len(base) {
			return c
		}
	}
	return nil
}

// expand copies into e the children of its type: the profile its type names,
// the element a contentReference points at, or the base data type.
func (v *Validator) expand(e *elem, root *elem) {
	var src *elem
	switch {
	case e.def.ContentReference != "":
		src = findPath(root, strings.TrimPrefix(e.def.ContentReference, "#"))
	case len(e.def.Type) > 0:
		t := e.def.Type[0]
		if len(e.def.Type) > 1 {
			// A type slice of a choice, such as value[x]:valueQuantity.
			base := strings.TrimSuffix(e.name, "[x]")
			for _, c := range e.def.Type {
				if strings.EqualFold(base+c.Code, e.def.SliceName) {
					t = c
				}
			}
			if !strings.EqualFold(base+t.Code, e.def.SliceName) {
				return
			}
		}
		if len(t.Profile) > 0 {
			if s := v.structure(t.Profile[0]); s != nil {
				src = s.root
			}
		}
		if src == nil {
			if s := v.structure(t.typeCode()); s != nil {
				src = s.root
			}
		}
	}
	if src == nil {
		return
	}
	for _, c := range src.children {
		e.children = append(e.children, c.clone())
	}
	e.expanded = true
}

// findPath finds an unsliced element by its path.
func findPath(root *elem, path string) *elem {
	segs := strings.Split(path, ".")
	cur := root
	for _, s := range segs[1:] {
		if cur = cur.child(s); cur == nil {
			return nil
		}
	}
	return cur
}

// merge applies a differential element's constraints to a snapshot element.
func merge(e *elem, d *ElementDefinition) {
	t := e.def
	if d.Min != nil {
		t.Min = d.Min
	}
	if d.Max != "" {
		t.Max = d.Max
	}
	if len(d.Type) > 0 {
		t.Type = d.Type
	}
	if d.Fixed != nil {
		t.Fixed, t.FixedType = d.Fixed, d.FixedType
	}
	if d.Pattern != nil {
		t.Pattern, t.PatternType = d.Pattern, d.PatternType
	}
	if d.MinValue != nil {
		t.MinValue, t.MinValueType = d.MinValue, d.MinValueType
	}
	if d.MaxValue != nil {
		t.MaxValue, t.MaxValueType = d.MaxValue, d.MaxValueType
	}
	if d.MaxLength > 0 {
		t.MaxLength = d.MaxLength
	}
	if d.Binding != nil && d.Binding.ValueSet != "" {
		t.Binding = d.Binding
	}
	if d.Slicing != nil {
		t.Slicing = d.Slicing
	}
	if d.ContentReference != "" {
		t.ContentReference = d.ContentReference
	}
	if len(d.Constraint) > 0 {
		have := map[string]bool{}
		for _, c := range t.Constraint {
			have[c.Key] = true
		}
		cs := t.Constraint[:len(t.Constraint):len(t.Constraint)]
		for _, c := range d.Constraint {
			if !have[c.Key] {
				cs = append(cs, c)
			}
		}
		t.Constraint = cs
	}
}
