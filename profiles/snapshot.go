package profiles

import (
	"fmt"
	"reflect"
	"strings"
)

// elem is one element of a StructureDefinition snapshot arranged as a tree:
// its children, and for a sliced element the slices, each a copy of the
// element with its own constraints and children.
type elem struct {
	def  *ElementDefinition
	name string // last path segment, "value[x]" for a choice
	// extKey is "_" + name, the JSON key of a primitive's id and
	// extensions: looked up for every element of every object walked.
	extKey   string
	children []*elem
	slices   []*elem
	// expanded records that children were copied in from the element's
	// type during snapshot generation.
	expanded bool
	// base marks an element of a base definition (a resource or data type
	// as R4 defines it); plain, one whose subtree holds no
	// contentReference, which resolves in the definition being walked.
	base, plain bool
	// bit is the element's name in a set of names (nameBit).
	bit uint64
	// same is, for an element of a profile, the element of its type's base
	// definition that validates a value exactly as it does: its definition
	// and all it holds are the same but for ids (markSame).
	same *elem
}

// nameBit returns the bit of an element name in a set of names held in 64
// bits, which tells at once that most elements an object could hold are
// absent from it (keyBits).
func nameBit(name string) uint64 {
	if name == "" {
		return 0
	}
	h := uint(len(name))*131 + uint(name[0])*31 + uint(name[len(name)-1])
	return 1 << (h % 64)
}

// keyBits returns the set of the names of an object's members, those of
// primitives' extensions ("_given") under the primitive's name.
func keyBits(obj map[string]any) uint64 {
	var bits uint64
	for k := range obj {
		bits |= nameBit(strings.TrimPrefix(k, "_"))
	}
	return bits
}

// markPlain sets plain through a definition's tree.
func markPlain(e *elem) bool {
	plain := e.def.ContentReference == ""
	for _, c := range e.children {
		plain = markPlain(c) && plain
	}
	for _, s := range e.slices {
		plain = markPlain(s) && plain
	}
	e.plain = plain
	return plain
}

// markBase marks the elements of a base definition's tree.
func markBase(e *elem) {
	e.base = true
	for _, c := range e.children {
		markBase(c)
	}
	for _, s := range e.slices {
		markBase(s)
	}
}

// markSame sets e.same, through e's subtree, where an element of a
// profile's tree validates as the element b of its type's base definition
// at the same place does: the same definition but for element ids and
// constraint sources, no slices, no contentReference, and children that are
// the same in the same order. It reports whether e is the same as b.
func (v *Validator) markSame(e, b *elem) bool {
	same := b.base && b.plain && len(e.slices) == 0 && len(b.slices) == 0 &&
		e.name == b.name && e.extKey == b.extKey && len(e.children) == len(b.children) && sameDef(e.def, b.def)
	kids := b.children
	if len(kids) == 0 && len(e.children) > 0 && len(b.def.Type) == 1 && len(b.def.Type[0].Profile) == 0 {
		// The profile constrains what the base leaves to the element's
		// type: its children are the type's, as the base's walk takes
		// them (typeRoot).
		if t := v.structures[b.def.Type[0].typeCode()]; t != nil {
			kids = t.root.children
		}
	}
	for i, c := range e.children {
		var bc *elem
		for _, k := range kids {
			if k.name == c.name {
				bc = k
				break
			}
		}
		if same && b.children[i] != bc {
			same = false // another order, or a name repeated
		}
		if bc == nil || !v.markSame(c, bc) {
			same = false
		}
	}
	if same && e != b {
		e.same = b
	}
	return same
}

// sameDef reports whether two element definitions say the same for
// validation: all they hold but the element id and the source of each
// constraint.
func sameDef(a, b *ElementDefinition) bool {
	x, y := *a, *b
	x.ID, y.ID = "", ""
	x.Constraint, y.Constraint = nil, nil
	if !reflect.DeepEqual(x, y) || len(a.Constraint) != len(b.Constraint) {
		return false
	}
	for i := range a.Constraint {
		ca, cb := a.Constraint[i], b.Constraint[i]
		ca.Source, cb.Source = "", ""
		if ca != cb {
			return false
		}
	}
	return true
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
	c := &elem{def: &d, name: e.name, extKey: e.extKey, bit: e.bit, expanded: e.expanded}
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
		e := &elem{def: d, name: name, extKey: "_" + name, bit: nameBit(name)}
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
	ids := differentialIDs(sd.Differential.Element)
	for i, d := range sd.Differential.Element {
		target, err := v.locate(root, splitID(ids[i]))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sd.URL, err)
		}
		merge(target, d)
	}
	return root, nil
}

// differentialIDs returns the id of each differential element. Elements
// written without one (older profiles give only path and sliceName) belong
// to the slice most recently declared on their path or its parents, as
// https://hl7.org/fhir/R4/profiling.html#slicing describes for differentials.
func differentialIDs(els []*ElementDefinition) []string {
	ids := make([]string, len(els))
	current := map[string]string{} // path → slice name in force
	for i, d := range els {
		if d.ID != "" {
			ids[i] = d.ID
			continue
		}
		// An element on path P opens a slice or ends the slices of P and
		// of every path below it.
		for p := range current {
			if p == d.Path || strings.HasPrefix(p, d.Path+".") {
				delete(current, p)
			}
		}
		segs := strings.Split(d.Path, ".")
		var b strings.Builder
		for j, seg := range segs {
			if j > 0 {
				b.WriteByte('.')
			}
			b.WriteString(seg)
			if j < len(segs)-1 {
				if s := current[strings.Join(segs[:j+1], ".")]; s != "" {
					b.WriteString(":" + s)
				}
			}
		}
		if d.SliceName != "" {
			b.WriteString(":" + d.SliceName)
			current[d.Path] = d.SliceName
		}
		ids[i] = b.String()
	}
	return ids
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
			// A child of a choice of several types: it belongs to the
			// type that has it, so it is constrained in a type slice
			// (value[x]:valueQuantity), leaving the other types as they are.
			for _, t := range cur.def.Type {
				if s := v.structure(t.typeCode()); t.typeCode() != "" && s != nil && s.root.child(name) != nil {
					next = typeSlice(cur, t, s.root).child(name)
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

// typeSlice returns the slice of choice element e for type t, creating it
// with the type's children (and e's slicing by type) when e has none
// (https://hl7.org/fhir/R4/profiling.html#slicing: type slices of a choice).
func typeSlice(e *elem, t TypeRef, typeRoot *elem) *elem {
	name := strings.TrimSuffix(e.name, "[x]") + strings.ToUpper(t.typeCode()[:1]) + t.typeCode()[1:]
	if s := findSlice(e, name); s != nil {
		return s
	}
	if e.def.Slicing == nil {
		e.def.Slicing = &Slicing{Discriminator: []Discriminator{{Type: "type", Path: "$this"}}, Rules: "open"}
	}
	s := e.clone()
	s.slices = nil
	s.def.SliceName = name
	s.def.Slicing = nil
	s.def.Type = []TypeRef{t}
	zero := 0
	s.def.Min = &zero
	for _, c := range typeRoot.children {
		s.children = append(s.children, c.clone())
	}
	s.expanded = true
	e.slices = append(e.slices, s)
	return s
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
	for _, x := range d.Extension {
		kept := t.Extension[:0:0]
		for _, y := range t.Extension {
			if y.URL != x.URL {
				kept = append(kept, y)
			}
		}
		t.Extension = append(kept, x)
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
