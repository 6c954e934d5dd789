package fhirpath

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Node is an element of the input: a resource, a complex value, a backbone
// element or a primitive, with its FHIR type.
type Node struct {
	typ  string         // FHIR type name: "Patient", "HumanName", "date", "BackboneElement"
	def  string         // where the children are defined: a type name or element path
	val  any            // the JSON value; nil for a primitive with only extensions
	ext  map[string]any // the "_name" object of a primitive
	name string         // element name, for diagnostics
	// loose marks a node reached through children() or descendants():
	// such a collection mixes types, so navigating to an element the
	// node's type lacks yields empty instead of an error.
	loose bool
}

// TypeName implements Value.
func (n *Node) TypeName() string {
	if n.typ == "" {
		return ""
	}
	return "FHIR." + n.typ
}

// Type returns the FHIR type name, such as "HumanName" or "date". Backbone
// elements report "BackboneElement"; nodes the definitions do not describe
// report "".
func (n *Node) Type() string { return n.typ }

// JSON returns the element's JSON value (for a primitive, the value without
// its extensions).
func (n *Node) JSON() any { return n.val }

// Name returns the name of the element the node was reached through.
func (n *Node) Name() string { return n.name }

// System returns the system value of a primitive node: String for the
// string-like types, Boolean, Integer, Decimal, Date, DateTime or Time. ok is
// false for complex nodes and for primitives without a value.
func (n *Node) System() (v Value, ok bool) {
	v = n.system()
	return v, v != nil
}

// NewNode returns the input node for a JSON value of the given FHIR type or
// element path (such as "Patient", "HumanName" or "Patient.contact"). With an
// empty typ, a JSON object's resourceType gives the type.
func NewNode(v any, typ string) (*Node, error) {
	m, err := loadModel()
	if err != nil {
		return nil, err
	}
	if typ == "" {
		if obj, ok := v.(map[string]any); ok {
			typ, _ = obj["resourceType"].(string)
		}
	}
	if typ == "" || m.types[typ] != nil {
		return m.node(v, nil, typ, "", ""), nil
	}
	ed := m.elems[typ]
	if ed == nil {
		return nil, fmt.Errorf("fhirpath: unknown type or element %q", typ)
	}
	n := m.node(v, nil, ed.types[0], ed.def, ed.name)
	return n, nil
}

// node wraps a JSON value of FHIR type typ.
func (m *model) node(v any, ext map[string]any, typ, def, name string) *Node {
	if obj, ok := v.(map[string]any); ok && (typ == "Resource" || typ == "DomainResource" || typ == "") {
		if rt, ok := obj["resourceType"].(string); ok && m.types[rt] != nil {
			typ = rt
		}
	}
	if def == "" {
		def = typ
	}
	return &Node{typ: typ, def: def, val: v, ext: ext, name: name}
}

// children returns the nodes of element name, or false when the definitions
// describe n's type and it has no such element.
func (m *model) children(n *Node, name string) ([]Value, bool) {
	obj, _ := n.val.(map[string]any)
	if m.isPrimitive(n.typ) || n.val == nil && n.ext != nil {
		obj = n.ext
		if name == "value" {
			return nil, true
		}
		if name != "id" && name != "extension" {
			return nil, m.types[n.typ] == nil
		}
		return m.childrenOf(obj, name, n.typ, true)
	}
	if obj == nil {
		return nil, n.typ == ""
	}
	return m.childrenOf(obj, name, n.def, false)
}

func (m *model) childrenOf(obj map[string]any, name, def string, primitive bool) ([]Value, bool) {
	var ed *elemDef
	if def != "" && (m.types[def] != nil || m.elems[def] != nil) {
		if primitive {
			ed = m.child("Element", name)
		} else {
			ed = m.child(def, name)
		}
		if ed == nil {
			return nil, name == "resourceType"
		}
	}
	if ed == nil {
		return genericChildren(obj, name), true
	}
	props := ed.props
	if name != ed.name { // a path below def, written as one name
		props = ed.propsAs(name)
	}
	var out []Value
	if ed.choice {
		for _, p := range props {
			out = m.appendChildren(out, obj, p, "", name)
		}
		return out, true
	}
	p := props[0]
	if strings.HasPrefix(p.typ, "System.") {
		// Element.id and Extension.url are plain strings.
		if s, ok := obj[name].(string); ok {
			return []Value{String(s)}, true
		}
		return nil, true
	}
	return m.appendChildren(out, obj, p, ed.def, name), true
}

// appendChildren appends the nodes of JSON property p.key, merging a
// primitive's extension object p.ext.
func (m *model) appendChildren(out []Value, obj map[string]any, p prop, def, name string) []Value {
	key, typ := p.key, p.typ
	v, ok := obj[key]
	ev, eok := obj[p.ext]
	if !ok && !eok {
		return out
	}
	if arr, isArr := v.([]any); isArr || !ok {
		earr, _ := ev.([]any)
		n := max(len(arr), len(earr))
		for i := range n {
			var item any
			if i < len(arr) {
				item = arr[i]
			}
			var ext map[string]any
			if i < len(earr) {
				ext, _ = earr[i].(map[string]any)
			}
			if item == nil && ext == nil {
				continue
			}
			out = append(out, m.node(item, ext, typ, def, name))
		}
		if !ok && len(earr) == 0 {
			if ext, _ := ev.(map[string]any); ext != nil {
				out = append(out, m.node(nil, ext, typ, def, name))
			}
		}
		return out
	}
	ext, _ := ev.(map[string]any)
	if v == nil && ext == nil {
		return out
	}
	return append(out, m.node(v, ext, typ, def, name))
}

// genericChildren navigates JSON the definitions do not describe, guessing
// each value's system type from its JSON form.
func genericChildren(obj map[string]any, name string) []Value {
	v, ok := obj[name]
	if !ok {
		return nil
	}
	var out []Value
	add := func(x any) {
		switch x := x.(type) {
		case nil:
		case string:
			out = append(out, String(x))
		case bool:
			out = append(out, Boolean(x))
		case json.Number:
			out = append(out, numberValue(string(x)))
		case float64:
			out = append(out, numberValue(strconv.FormatFloat(x, 'f', -1, 64)))
		default:
			out = append(out, &Node{val: x, name: name})
		}
	}
	if arr, ok := v.([]any); ok {
		for _, x := range arr {
			add(x)
		}
	} else {
		add(v)
	}
	return out
}

func numberValue(s string) Value {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return Integer(i)
	}
	if d, err := ParseDecimal(s); err == nil {
		return d
	}
	return String(s)
}

// allChildren returns every child node of n, in property-name order.
func (m *model) allChildren(n *Node) []Value {
	obj, _ := n.val.(map[string]any)
	if m.isPrimitive(n.typ) {
		obj = n.ext
	}
	if obj == nil {
		return nil
	}
	names := map[string]bool{}
	for k := range obj {
		k = strings.TrimPrefix(k, "_")
		if k == "resourceType" {
			continue
		}
		if n.def != "" && !m.isPrimitive(n.typ) && m.child(n.def, k) == nil {
			// A choice element: find its name.
			for i := 1; i < len(k); i++ {
				if k[i] >= 'A' && k[i] <= 'Z' {
					if ed := m.child(n.def, k[:i]); ed != nil && ed.choice {
						k = k[:i]
						break
					}
				}
			}
		}
		names[k] = true
	}
	keys := make([]string, 0, len(names))
	for k := range names {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []Value
	for _, k := range keys {
		c, _ := m.children(n, k)
		for _, v := range c {
			if cn, ok := v.(*Node); ok {
				cn.loose = true
			}
		}
		out = append(out, c...)
	}
	return out
}

// system converts a primitive node to its system value, or returns nil.
func (n *Node) system() Value {
	switch v := n.val.(type) {
	case nil:
		return nil
	case bool:
		return Boolean(v)
	case json.Number:
		return n.number(string(v))
	case float64:
		return n.number(strconv.FormatFloat(v, 'f', -1, 64))
	case string:
		switch n.typ {
		case "date":
			if d, err := ParseDate(v); err == nil {
				return d
			}
		case "dateTime", "instant":
			if d, err := ParseDateTime(v); err == nil {
				return d
			}
		case "time":
			if t, err := ParseTime(v); err == nil {
				return t
			}
		}
		return String(v)
	}
	return nil
}

func (n *Node) number(s string) Value {
	if n.typ == "decimal" {
		if d, err := ParseDecimal(s); err == nil {
			return d
		}
	}
	return numberValue(s)
}
