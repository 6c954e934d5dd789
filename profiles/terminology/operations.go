package terminology

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
)

// With returns a Terminology holding t's ValueSets and CodeSystems and the
// given ones, as JSON, which replace those of t with the same URL: the
// terminology operations use it for ValueSets and CodeSystems that are
// stored rather than bundled. t is unchanged; the two share their parsed
// definitions, which are never modified.
func (t *Terminology) With(resources ...json.RawMessage) (*Terminology, error) {
	extra, err := New(resources)
	if err != nil {
		return nil, err
	}
	out := &Terminology{valueSets: maps.Clone(t.valueSets), codeSystems: maps.Clone(t.codeSystems)}
	maps.Copy(out.valueSets, extra.valueSets)
	maps.Copy(out.codeSystems, extra.codeSystems)
	return out, nil
}

// HasCodeSystem reports whether the CodeSystem with this URL is held.
func (t *Terminology) HasCodeSystem(url string) bool {
	_, ok := t.codeSystems[canonical(url)]
	return ok
}

// Filter returns the concepts that match text, the filter parameter of
// $expand (https://hl7.org/fhir/R4/valueset-operation-expand.html), whose
// meaning the specification leaves to servers. Here every word of text must
// begin a word of the display, or text must begin the code; case is
// ignored. An empty text matches every concept.
func Filter(concepts []Concept, text string) []Concept {
	terms := words(text)
	if len(terms) == 0 {
		return concepts
	}
	var out []Concept
	for _, c := range concepts {
		if strings.HasPrefix(strings.ToLower(c.Code), strings.ToLower(strings.TrimSpace(text))) || beginsWords(words(c.Display), terms) {
			out = append(out, c)
		}
	}
	return out
}

// words splits s, lower-cased, at every character that is not a letter or
// a digit.
func words(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// beginsWords reports whether every term begins one of words.
func beginsWords(words, terms []string) bool {
	for _, term := range terms {
		if !slices.ContainsFunc(words, func(w string) bool { return strings.HasPrefix(w, term) }) {
			return false
		}
	}
	return true
}

// Details is what $lookup reports of a concept
// (https://hl7.org/fhir/R4/codesystem-operation-lookup.html).
type Details struct {
	// Name and Version are those of the CodeSystem.
	Name, Version string
	Concept
	// Properties are the concept's definition (property definition, which
	// R4's $lookup names among the properties of every code system), its
	// own properties, then its parent and child concepts (properties
	// parent and child) where the CodeSystem arranges its concepts in a
	// hierarchy.
	Properties []Property
}

// Designation is one additional representation of a concept.
type Designation struct {
	Language string `json:"language"`
	// Use is a Coding as JSON, nil when absent.
	Use   json.RawMessage `json:"use"`
	Value string          `json:"value"`
}

// designationUsage is the code system of the uses of a designation.
const designationUsage = "http://terminology.hl7.org/CodeSystem/designation-usage"

// displays reports whether the designation may stand as the concept's
// display: its use is absent or is display.
func (d Designation) displays() bool {
	if d.Use == nil {
		return true
	}
	var use struct{ System, Code string }
	if json.Unmarshal(d.Use, &use) != nil {
		return false
	}
	return use.Code == "display" && (use.System == "" || use.System == designationUsage)
}

// DisplayIn returns the concept's display in language lang, a BCP 47
// code: the value of a designation that may stand as a display (no use,
// or use display) in that language, else in a language of the same
// primary subtag ("de" for "de-CH"), else Display.
func (c Concept) DisplayIn(lang string) string {
	if lang == "" {
		return c.Display
	}
	primary, _, _ := strings.Cut(lang, "-")
	fallback := ""
	for _, d := range c.Designations {
		if !d.displays() || d.Value == "" {
			continue
		}
		if strings.EqualFold(d.Language, lang) {
			return d.Value
		}
		if p, _, _ := strings.Cut(d.Language, "-"); fallback == "" && strings.EqualFold(p, primary) {
			fallback = d.Value
		}
	}
	return cmp.Or(fallback, c.Display)
}

// ValidDisplay reports whether text, case and surrounding space aside, is
// the concept's display or the value of one of its designations: R4's
// $validate-code takes "the display of the concept or one of its
// designations". A concept with neither has no display to contradict.
func (c Concept) ValidDisplay(text string) bool {
	text = strings.TrimSpace(text)
	if c.Display == "" && len(c.Designations) == 0 || strings.EqualFold(text, c.Display) {
		return true
	}
	return slices.ContainsFunc(c.Designations, func(d Designation) bool { return strings.EqualFold(text, d.Value) })
}

// Selectable returns the concepts that are not abstract: the
// excludeNotForUI parameter of $expand.
func Selectable(concepts []Concept) []Concept {
	return keep(concepts, func(c Concept) bool { return !c.Abstract })
}

// Active returns the concepts that are not inactive: the activeOnly
// parameter of $expand.
func Active(concepts []Concept) []Concept {
	return keep(concepts, func(c Concept) bool { return !c.Inactive })
}

// keep returns, in a new slice, the concepts for which ok is true.
func keep(concepts []Concept, ok func(Concept) bool) []Concept {
	var out []Concept
	for _, c := range concepts {
		if ok(c) {
			out = append(out, c)
		}
	}
	return out
}

// Property is one property of a concept: its code, and its value as JSON.
type Property struct {
	Code string
	// Type is the type suffix of the value[x] it was given as: Code,
	// Coding, String, Integer, Boolean, DateTime or Decimal.
	Type  string
	Value json.RawMessage
}

// propertyTypes are the value[x] types of CodeSystem.concept.property.
var propertyTypes = []string{"Code", "Coding", "String", "Integer", "Boolean", "DateTime", "Decimal"}

type lookupConcept struct {
	Code        string                       `json:"code"`
	Display     string                       `json:"display"`
	Definition  string                       `json:"definition"`
	Designation []Designation                `json:"designation"`
	Property    []map[string]json.RawMessage `json:"property"`
	Concept     []lookupConcept              `json:"concept"`
}

// notSelectable reports whether the concept is abstract: property
// notSelectable true.
func (c *lookupConcept) notSelectable() bool {
	return slices.ContainsFunc(c.Property, func(p map[string]json.RawMessage) bool {
		var name string
		var value bool
		return json.Unmarshal(p["code"], &name) == nil && name == "notSelectable" && json.Unmarshal(p["valueBoolean"], &value) == nil && value
	})
}

// LookupIn returns the details of code in codeSystem, a CodeSystem resource
// as JSON. It reads the whole resource, so it reports the properties that
// a Terminology does not keep. It returns ErrUnknownCode when the
// CodeSystem lists all its codes and lacks this one, and
// ErrCodeSystemUnavailable when it does not list them all (content other
// than complete) and lacks it. In a CodeSystem that is not case sensitive,
// code names the concept whose code differs from it only in case.
func LookupIn(codeSystem json.RawMessage, code string) (*Details, error) {
	var cs struct {
		URL           string          `json:"url"`
		Name          string          `json:"name"`
		Version       string          `json:"version"`
		Content       string          `json:"content"`
		CaseSensitive *bool           `json:"caseSensitive"`
		Concept       []lookupConcept `json:"concept"`
	}
	if err := json.Unmarshal(codeSystem, &cs); err != nil {
		return nil, fmt.Errorf("terminology: CodeSystem: %w", err)
	}
	names := func(c string) bool { return c == code }
	if cs.CaseSensitive != nil && !*cs.CaseSensitive {
		names = func(c string) bool { return strings.EqualFold(c, code) }
	}
	var (
		found    *lookupConcept
		parents  []string
		children []string
	)
	var walk func(list []lookupConcept, parent string)
	walk = func(list []lookupConcept, parent string) {
		for i := range list {
			c := &list[i]
			if names(c.Code) {
				found = c
				if parent != "" {
					parents = append(parents, parent)
				}
				for _, child := range c.Concept {
					children = append(children, child.Code)
				}
			}
			// Hierarchies may also be given by parent properties.
			for _, p := range c.Property {
				var name, value string
				if json.Unmarshal(p["code"], &name) != nil || json.Unmarshal(p["valueCode"], &value) != nil {
					continue
				}
				if (name == "parent" || name == "subsumedBy") && names(value) {
					children = append(children, c.Code)
				}
			}
			walk(c.Concept, c.Code)
		}
	}
	walk(cs.Concept, "")
	if found == nil {
		if cs.Content != "" && cs.Content != "complete" {
			return nil, fmt.Errorf("%w: the CodeSystem %s holds only part of its codes (content %s), not %s", ErrCodeSystemUnavailable, cs.URL, cs.Content, code)
		}
		return nil, fmt.Errorf("%w: %s in %s", ErrUnknownCode, code, cs.URL)
	}
	d := &Details{Name: cs.Name, Version: cs.Version, Concept: Concept{System: cs.URL, Version: cs.Version, Code: found.Code, Display: found.Display, Abstract: found.notSelectable(), Designations: found.Designation}}
	if found.Definition != "" {
		v, _ := json.Marshal(found.Definition)
		d.Properties = append(d.Properties, Property{Code: "definition", Type: "String", Value: v})
	}
	given := map[string]bool{} // "parent X", "child Y" given as properties
	for _, p := range found.Property {
		var name string
		if json.Unmarshal(p["code"], &name) != nil {
			continue
		}
		for _, typ := range propertyTypes {
			if v, ok := p["value"+typ]; ok {
				d.Properties = append(d.Properties, Property{Code: name, Type: typ, Value: v})
				var c string
				if typ == "Code" && json.Unmarshal(v, &c) == nil {
					given[name+" "+c] = true
				}
				break
			}
		}
	}
	for _, related := range []struct {
		name  string
		codes []string
	}{{"parent", parents}, {"child", children}} {
		for _, c := range related.codes {
			if given[related.name+" "+c] {
				continue
			}
			given[related.name+" "+c] = true
			v, _ := json.Marshal(c)
			d.Properties = append(d.Properties, Property{Code: related.name, Type: "Code", Value: v})
		}
	}
	return d, nil
}
