package fhirpath

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"carefhir/fhir/definitions"
)

// model is the type information the evaluator reads from the R4
// StructureDefinitions. It is built once and never changes.
type model struct {
	types map[string]*typeDef // by type name: "Patient", "HumanName", "string"
	elems map[string]*elemDef // by element path: "Patient.name", "Observation.value"
	// kids holds the elements again, by the path or type name they are
	// children of and then by name, for navigation to look up without
	// building the element's path.
	kids map[string]map[string]*elemDef
}

// typeDef describes one FHIR type.
type typeDef struct {
	name string
	kind string // "primitive-type", "complex-type" or "resource"
	base string // base type name, "" for Element and Resource
}

// elemDef describes one element of a type or backbone element.
type elemDef struct {
	name   string   // name without "[x]"
	types  []string // FHIR type codes; one unless a choice
	choice bool
	many   bool
	// def is the path whose children are this element's children: the
	// element's own path for backbone elements, the target of a
	// contentReference, or "" to use the type's name.
	def string
	// props are the JSON properties the element is held in: its name, or
	// for a choice one per type (valueQuantity, valueString…).
	props []prop
}

// prop is a JSON property holding an element: its name, the name of the
// object holding a primitive's id and extensions ("_birthDate"), and the
// FHIR type of its values.
type prop struct {
	key, ext, typ string
}

var loadModel = sync.OnceValues(buildModel)

type structureDefinition struct {
	ResourceType   string `json:"resourceType"`
	Name           string `json:"name"`
	Type           string `json:"type"`
	Kind           string `json:"kind"`
	Derivation     string `json:"derivation"`
	BaseDefinition string `json:"baseDefinition"`
	Snapshot       struct {
		Element []struct {
			Path             string `json:"path"`
			Max              string `json:"max"`
			ContentReference string `json:"contentReference"`
			Type             []struct {
				Code string `json:"code"`
			} `json:"type"`
		} `json:"element"`
	} `json:"snapshot"`
}

func buildModel() (*model, error) {
	m := &model{types: map[string]*typeDef{}, elems: map[string]*elemDef{}, kids: map[string]map[string]*elemDef{}}
	for _, file := range []string{"profiles-types.json.gz", "profiles-resources.json.gz"} {
		if err := m.load(file); err != nil {
			return nil, fmt.Errorf("fhirpath: load %s: %w", file, err)
		}
	}
	return m, nil
}

func (m *model) load(file string) error {
	var bundle struct {
		Entry []struct {
			Resource structureDefinition `json:"resource"`
		} `json:"entry"`
	}
	if err := definitions.DecodeJSON(definitions.FS, file, &bundle); err != nil {
		return err
	}
	for _, e := range bundle.Entry {
		sd := &e.Resource
		if sd.ResourceType != "StructureDefinition" || sd.Derivation == "constraint" {
			continue
		}
		base := sd.BaseDefinition[strings.LastIndexByte(sd.BaseDefinition, '/')+1:]
		m.types[sd.Type] = &typeDef{name: sd.Type, kind: sd.Kind, base: base}
		for _, el := range sd.Snapshot.Element {
			path := el.Path
			dot := strings.IndexByte(path, '.')
			if dot < 0 {
				continue
			}
			// Specialisations such as Age list their elements under their
			// own name; the children are those of the path's first segment.
			if p := path[:dot]; p != sd.Type {
				path = sd.Type + path[dot:]
			}
			name := path[strings.LastIndexByte(path, '.')+1:]
			ed := &elemDef{name: name, many: el.Max != "1" && el.Max != "0"}
			if strings.HasSuffix(name, "[x]") {
				ed.name, ed.choice = strings.TrimSuffix(name, "[x]"), true
				path = strings.TrimSuffix(path, "[x]")
			}
			for _, t := range el.Type {
				code := t.Code
				if strings.HasPrefix(code, "http://hl7.org/fhirpath/System.") {
					code = "System." + strings.TrimPrefix(code, "http://hl7.org/fhirpath/System.")
				}
				ed.types = append(ed.types, code)
			}
			switch {
			case el.ContentReference != "":
				ref := strings.TrimPrefix(el.ContentReference, "#")
				ed.def = ref
			case len(ed.types) == 1 && (ed.types[0] == "BackboneElement" || ed.types[0] == "Element"):
				ed.def = path
			}
			m.elems[path] = ed
		}
	}
	// Resolve content references to the referenced element's types.
	for _, ed := range m.elems {
		if ed.def != "" && len(ed.types) == 0 {
			if target := m.elems[ed.def]; target != nil {
				ed.types = target.types
			}
		}
	}
	for path, ed := range m.elems {
		parent := path[:strings.LastIndexByte(path, '.')]
		if m.kids[parent] == nil {
			m.kids[parent] = map[string]*elemDef{}
		}
		m.kids[parent][ed.name] = ed
		ed.props = ed.propsAs(ed.name)
	}
	return nil
}

// propsAs returns the JSON properties of the element when it is named
// name.
func (ed *elemDef) propsAs(name string) []prop {
	if !ed.choice {
		typ := ""
		if len(ed.types) > 0 {
			typ = ed.types[0]
		}
		return []prop{{key: name, ext: "_" + name, typ: typ}}
	}
	props := make([]prop, len(ed.types))
	for i, t := range ed.types {
		key := name + strings.ToUpper(t[:1]) + t[1:]
		props[i] = prop{key: key, ext: "_" + key, typ: t}
	}
	return props
}

// child returns the definition of element name of the node defined at def,
// looking through base types.
func (m *model) child(def, name string) *elemDef {
	dotted := strings.IndexByte(name, '.') >= 0 // names a path below def
	for def != "" {
		if dotted {
			if ed := m.elems[def+"."+name]; ed != nil {
				return ed
			}
		} else if ed := m.kids[def][name]; ed != nil {
			return ed
		}
		td := m.types[def]
		if td == nil {
			return nil
		}
		def = td.base
	}
	return nil
}

// ElementTypes returns the FHIR types of the element at path, a type name
// and element names joined by dots ("Patient.identifier",
// "Specimen.container.identifier"): one, or each of a choice's. It returns
// nil when path names no element.
func ElementTypes(path string) []string {
	m, err := loadModel()
	if err != nil {
		return nil
	}
	names := strings.Split(path, ".")
	def := names[0]
	var ed *elemDef
	for _, name := range names[1:] {
		if ed != nil {
			def = ed.def
			if def == "" && len(ed.types) == 1 {
				def = ed.types[0]
			}
		}
		if ed = m.child(def, name); ed == nil {
			return nil
		}
	}
	if ed == nil {
		return nil
	}
	return slices.Clone(ed.types)
}

// isPrimitive reports whether typ is a FHIR primitive type.
func (m *model) isPrimitive(typ string) bool {
	td := m.types[typ]
	return td != nil && td.kind == "primitive-type"
}

// isResource reports whether typ is a resource type (or Resource itself).
func (m *model) isResource(typ string) bool {
	td := m.types[typ]
	return td != nil && td.kind == "resource"
}

// derivesFrom reports whether typ is base or a specialisation of it.
func (m *model) derivesFrom(typ, base string) bool {
	for typ != "" {
		if typ == base {
			return true
		}
		td := m.types[typ]
		if td == nil {
			return false
		}
		typ = td.base
	}
	return false
}
