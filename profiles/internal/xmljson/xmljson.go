// Package xmljson converts FHIR R4 XML resources to their JSON form, driven
// by the R4 StructureDefinitions, so that conformance resources and examples
// published as XML can be vendored as JSON. It follows the rules of
// https://hl7.org/fhir/R4/xml.html and json.html: repeating elements become
// arrays, primitive values take the JSON type of their FHIR type, primitive
// ids and extensions move to the "_name" sibling, and the narrative div is
// kept as its exact XHTML text.
package xmljson

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"carefhir/fhir/definitions"
)

const fhirNS = "http://hl7.org/fhir"

// MaxDepth is the deepest nesting of XML elements converted, narrative
// XHTML included, as fhirxml.MaxDepth bounds what it decodes.
const MaxDepth = 100

// elementInfo is what conversion needs to know about one element.
type elementInfo struct {
	name       string   // last path segment, "value[x]" for a choice
	types      []string // type codes
	array      bool
	contentRef string // path the element's content is defined at, if any
}

// Converter holds the element tables built from the definitions.
type Converter struct {
	children map[string]map[string]*elementInfo // path → child name → info
	kinds    map[string]string                  // type name → kind
}

// New builds a Converter from the vendored R4 definitions.
func New() (*Converter, error) {
	c := &Converter{children: map[string]map[string]*elementInfo{}, kinds: map[string]string{}}
	for _, name := range []string{"profiles-types.json.gz", "profiles-resources.json.gz"} {
		if err := c.load(name); err != nil {
			return nil, fmt.Errorf("xmljson: %s: %w", name, err)
		}
	}
	return c, nil
}

func (c *Converter) load(name string) error {
	var bundle struct {
		Entry []struct {
			Resource struct {
				Type     string `json:"type"`
				Kind     string `json:"kind"`
				Snapshot struct {
					Element []struct {
						Path             string `json:"path"`
						Max              string `json:"max"`
						ContentReference string `json:"contentReference"`
						Base             struct {
							Max string `json:"max"`
						} `json:"base"`
						Type []struct {
							Code      string `json:"code"`
							Extension []struct {
								URL      string `json:"url"`
								ValueURL string `json:"valueUrl"`
							} `json:"extension"`
						} `json:"type"`
					} `json:"element"`
				} `json:"snapshot"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := definitions.DecodeJSON(definitions.FS, name, &bundle); err != nil {
		return err
	}
	for _, e := range bundle.Entry {
		r := e.Resource
		c.kinds[r.Type] = r.Kind
		for _, el := range r.Snapshot.Element {
			i := strings.LastIndexByte(el.Path, '.')
			if i < 0 {
				continue
			}
			parent, name := el.Path[:i], el.Path[i+1:]
			info := &elementInfo{name: name, array: el.Base.Max != "1" && el.Base.Max != "0", contentRef: strings.TrimPrefix(el.ContentReference, "#")}
			if el.Base.Max == "" {
				info.array = el.Max != "1" && el.Max != "0"
			}
			for _, t := range el.Type {
				code := t.Code
				for _, x := range t.Extension {
					if x.URL == "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type" {
						code = x.ValueURL
					}
				}
				if strings.HasPrefix(code, "http://hl7.org/fhirpath/System.") {
					code = "string"
				}
				info.types = append(info.types, code)
			}
			if c.children[parent] == nil {
				c.children[parent] = map[string]*elementInfo{}
			}
			c.children[parent][name] = info
		}
	}
	return nil
}

// node is an XML element as read.
type node struct {
	name     string
	space    string
	attrs    map[string]string
	children []*node
	raw      []byte // the element's exact text, kept for xhtml
}

// Convert reads one FHIR XML resource and returns its JSON form.
func (c *Converter) Convert(data []byte) ([]byte, error) {
	root, err := parse(data)
	if err != nil {
		return nil, err
	}
	obj, err := c.resource(root)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(obj); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func parse(data []byte) (*node, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	var stack []*node
	var starts []int64 // offset of each open element's start tag
	var root *node
	for {
		start := d.InputOffset()
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("xmljson: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := &node{name: t.Name.Local, space: t.Name.Space, attrs: map[string]string{}}
			for _, a := range t.Attr {
				if a.Name.Space == "" {
					n.attrs[a.Name.Local] = a.Value
				}
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			} else {
				root = n
			}
			stack = append(stack, n)
			starts = append(starts, start)
			if len(stack) > MaxDepth {
				return nil, fmt.Errorf("xmljson: elements nested deeper than %d levels", MaxDepth)
			}
		case xml.EndElement:
			n := stack[len(stack)-1]
			n.raw = data[starts[len(starts)-1]:d.InputOffset()]
			stack, starts = stack[:len(stack)-1], starts[:len(starts)-1]
		}
	}
	if root == nil {
		return nil, fmt.Errorf("xmljson: no root element")
	}
	return root, nil
}

func (c *Converter) resource(n *node) (map[string]any, error) {
	if n.space != fhirNS {
		return nil, fmt.Errorf("xmljson: element %s is not in the FHIR namespace", n.name)
	}
	if c.kinds[n.name] != "resource" {
		return nil, fmt.Errorf("xmljson: %s is not a resource type", n.name)
	}
	obj := map[string]any{"resourceType": n.name}
	if err := c.fill(obj, n, n.name); err != nil {
		return nil, err
	}
	return obj, nil
}

// fill converts the children of n, whose content is defined at path, into obj.
func (c *Converter) fill(obj map[string]any, n *node, path string) error {
	kids := c.children[path]
	if v, ok := n.attrs["id"]; ok {
		obj["id"] = v
	}
	if v, ok := n.attrs["url"]; ok {
		obj["url"] = v
	}
	for _, ch := range n.children {
		info, typ := lookup(kids, ch.name)
		if info == nil {
			return fmt.Errorf("xmljson: unknown element %s.%s", path, ch.name)
		}
		key := ch.name
		var val, ext any
		switch {
		case typ == "xhtml":
			val = string(ch.raw)
		case c.kinds[typ] == "primitive-type":
			v, ok := ch.attrs["value"]
			if ok {
				val = primitive(typ, v)
			}
			if len(ch.children) > 0 || ch.attrs["id"] != "" {
				e := map[string]any{}
				if err := c.fill(e, ch, typ); err != nil {
					return err
				}
				delete(e, "url")
				ext = e
			}
		case typ == "Resource" || c.kinds[typ] == "resource":
			if len(ch.children) != 1 {
				return fmt.Errorf("xmljson: %s.%s must hold one resource", path, ch.name)
			}
			r, err := c.resource(ch.children[0])
			if err != nil {
				return err
			}
			val = r
		default:
			sub := path + "." + info.name
			if info.contentRef != "" {
				sub = info.contentRef
			} else if typ != "BackboneElement" && typ != "Element" {
				sub = typ
			}
			o := map[string]any{}
			if err := c.fill(o, ch, sub); err != nil {
				return err
			}
			val = o
		}
		put(obj, key, val, ext, info.array)
	}
	return nil
}

// lookup finds the element a child name stands for, resolving choice names.
func lookup(kids map[string]*elementInfo, name string) (*elementInfo, string) {
	if info, ok := kids[name]; ok {
		if len(info.types) == 0 {
			return info, "BackboneElement"
		}
		return info, info.types[0]
	}
	for n, info := range kids {
		base, ok := strings.CutSuffix(n, "[x]")
		if !ok || !strings.HasPrefix(name, base) {
			continue
		}
		suffix := name[len(base):]
		for _, t := range info.types {
			if strings.EqualFold(t, suffix) && strings.ToUpper(suffix[:1]) == suffix[:1] {
				return info, t
			}
		}
	}
	return nil, ""
}

func primitive(typ, v string) any {
	switch typ {
	case "boolean":
		if v == "true" || v == "false" {
			return v == "true"
		}
		return v // not a boolean: left as text for validation to report
	case "integer", "decimal", "positiveInt", "unsignedInt", "integer64":
		return json.Number(v)
	}
	return v
}

// put adds a value (and its primitive extension) under key, as an array
// element when the element repeats, keeping value and "_key" arrays aligned.
func put(obj map[string]any, key string, val, ext any, array bool) {
	_, seen := obj[key]
	_, seenExt := obj["_"+key]
	if !array && !seen && !seenExt {
		if val != nil {
			obj[key] = val
		}
		if ext != nil {
			obj["_"+key] = ext
		}
		return
	}
	if !array {
		// A single element written twice: keep both, as an array, so
		// that validation reports the repetition instead of losing one.
		for _, k := range []string{key, "_" + key} {
			if v, ok := obj[k]; ok {
				if _, isArr := v.([]any); !isArr {
					obj[k] = []any{v}
				}
			}
		}
	}
	vals, _ := obj[key].([]any)
	exts, _ := obj["_"+key].([]any)
	n := max(len(vals), len(exts))
	for len(vals) < n {
		vals = append(vals, nil)
	}
	for len(exts) < n {
		exts = append(exts, nil)
	}
	vals = append(vals, val)
	exts = append(exts, ext)
	if anyNonNil(vals) {
		obj[key] = vals
	}
	if anyNonNil(exts) {
		obj["_"+key] = exts
	}
}

func anyNonNil(s []any) bool {
	for _, v := range s {
		if v != nil {
			return true
		}
	}
	return false
}
