package profiles

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// StructureDefinition holds the parts of a FHIR StructureDefinition
// (https://hl7.org/fhir/R4/structuredefinition.html) that validation reads.
type StructureDefinition struct {
	ResourceType   string `json:"resourceType"`
	ID             string `json:"id"`
	URL            string `json:"url"`
	Name           string `json:"name"`
	Type           string `json:"type"`
	Kind           string `json:"kind"`
	Abstract       bool   `json:"abstract"`
	BaseDefinition string `json:"baseDefinition"`
	Derivation     string `json:"derivation"`
	// Context lists where an extension may be used.
	Context  []ExtensionContext `json:"context"`
	Snapshot struct {
		Element []*ElementDefinition `json:"element"`
	} `json:"snapshot"`
	Differential struct {
		Element []*ElementDefinition `json:"element"`
	} `json:"differential"`
}

// ExtensionContext is StructureDefinition.context: an element path or
// type name, an extension URL, or a FHIRPath expression
// (https://hl7.org/fhir/R4/defining-extensions.html#context).
type ExtensionContext struct {
	Type       string `json:"type"`
	Expression string `json:"expression"`
}

// ElementDefinition holds the parts of an ElementDefinition that validation
// reads (https://hl7.org/fhir/R4/elementdefinition.html).
type ElementDefinition struct {
	ID               string       `json:"id"`
	Path             string       `json:"path"`
	SliceName        string       `json:"sliceName"`
	Min              *int         `json:"min"`
	Max              string       `json:"max"`
	Base             *ElementBase `json:"base"`
	Type             []TypeRef    `json:"type"`
	ContentReference string       `json:"contentReference"`
	MaxLength        int          `json:"maxLength"`
	Binding          *Binding     `json:"binding"`
	Constraint       []Constraint `json:"constraint"`
	Slicing          *Slicing     `json:"slicing"`
	// Extension holds the element's extensions, which may add rules:
	// minLength, regex and maxDecimalPlaces.
	Extension []ValueExtension `json:"extension"`

	// Fixed and Pattern hold the fixed[x] and pattern[x] value, decoded
	// with json.Number; FixedType and PatternType its type suffix.
	Fixed, Pattern         any
	FixedType, PatternType string
	// MinValue and MaxValue hold minValue[x] and maxValue[x] as written.
	MinValue, MaxValue         any
	MinValueType, MaxValueType string
}

// ElementBase is ElementDefinition.base.
type ElementBase struct {
	Path string `json:"path"`
	Min  int    `json:"min"`
	Max  string `json:"max"`
}

// TypeRef is ElementDefinition.type.
type TypeRef struct {
	Code          string   `json:"code"`
	Profile       []string `json:"profile"`
	TargetProfile []string `json:"targetProfile"`
	Extension     []struct {
		URL         string `json:"url"`
		ValueURL    string `json:"valueUrl"`
		ValueString string `json:"valueString"`
	} `json:"extension"`
}

// ValueExtension is an extension with a simple value.
type ValueExtension struct {
	URL          string `json:"url"`
	ValueInteger *int   `json:"valueInteger"`
	ValueString  string `json:"valueString"`
}

// Extension URLs of the rules an ElementDefinition can carry.
const (
	minLengthURL        = "http://hl7.org/fhir/StructureDefinition/minLength"
	regexURL            = "http://hl7.org/fhir/StructureDefinition/regex"
	maxDecimalPlacesURL = "http://hl7.org/fhir/StructureDefinition/maxDecimalPlaces"
)

// extension returns the element's extension with this URL, or nil.
func (e *ElementDefinition) extension(url string) *ValueExtension {
	for i := range e.Extension {
		if e.Extension[i].URL == url {
			return &e.Extension[i]
		}
	}
	return nil
}

// Binding is ElementDefinition.binding.
type Binding struct {
	Strength string `json:"strength"`
	ValueSet string `json:"valueSet"`
}

// Constraint is ElementDefinition.constraint: an invariant.
type Constraint struct {
	Key        string `json:"key"`
	Severity   string `json:"severity"`
	Human      string `json:"human"`
	Expression string `json:"expression"`
	Source     string `json:"source"`
}

// Slicing is ElementDefinition.slicing.
type Slicing struct {
	Discriminator []Discriminator `json:"discriminator"`
	Ordered       bool            `json:"ordered"`
	Rules         string          `json:"rules"`
}

// Discriminator is ElementDefinition.slicing.discriminator.
type Discriminator struct {
	Type string `json:"type"`
	Path string `json:"path"`
}

// UnmarshalJSON decodes an element, picking out its choice-typed values.
func (e *ElementDefinition) UnmarshalJSON(data []byte) error {
	type plain ElementDefinition
	if err := json.Unmarshal(data, (*plain)(e)); err != nil {
		return err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	for k, v := range raw {
		var dst *any
		var typ *string
		var suffix string
		for _, p := range []struct {
			prefix string
			dst    *any
			typ    *string
		}{{"fixed", &e.Fixed, &e.FixedType}, {"pattern", &e.Pattern, &e.PatternType}, {"minValue", &e.MinValue, &e.MinValueType}, {"maxValue", &e.MaxValue, &e.MaxValueType}} {
			if s, ok := strings.CutPrefix(k, p.prefix); ok && s != "" && s[0] >= 'A' && s[0] <= 'Z' {
				dst, typ, suffix = p.dst, p.typ, s
			}
		}
		if dst == nil {
			continue
		}
		d := json.NewDecoder(bytes.NewReader(v))
		d.UseNumber()
		if err := d.Decode(dst); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		*typ = suffix
	}
	return nil
}

// typeCode returns the FHIR type name of a type reference: for the
// primitive value elements the definitions type as System.String and the
// like, the name given by the structuredefinition-fhir-type extension.
func (t TypeRef) typeCode() string {
	for _, x := range t.Extension {
		if x.URL == "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type" && x.ValueURL != "" {
			return x.ValueURL
		}
	}
	return t.Code
}

// regex returns the value pattern a primitive's value element declares.
func (t TypeRef) regex() string {
	for _, x := range t.Extension {
		if x.URL == "http://hl7.org/fhir/StructureDefinition/regex" {
			return x.ValueString
		}
	}
	return ""
}

// baseMax is the maximum cardinality of the element in the base resource,
// which decides whether JSON holds it as an array.
func (e *ElementDefinition) baseMax() string {
	if e.Base != nil && e.Base.Max != "" {
		return e.Base.Max
	}
	return e.Max
}

func (e *ElementDefinition) min() int {
	if e.Min == nil {
		return 0
	}
	return *e.Min
}

// canonical strips the version from a canonical URL.
func canonical(url string) string {
	url, _, _ = strings.Cut(url, "|")
	return url
}
