// Package fhirxml reads and writes the FHIR R4 XML representation of the
// resources in package fhir (https://hl7.org/fhir/R4/xml.html).
//
// The XML form holds the same content as the JSON form of package fhirjson,
// and both walk the generated types through the same field tables, so a
// resource read from XML and written as JSON (or the reverse) loses nothing:
// every element is an XML element named like its JSON property, in the
// namespace http://hl7.org/fhir; a primitive's value is its value attribute
// and its text is kept as written (1.50 stays 1.50); Element.id and
// Extension.url are attributes; a repeated element is repeated; a resource held
// by another one (contained, Bundle.entry.resource, Parameters.parameter.resource)
// is wrapped in an element named by its type; and the narrative's div is
// inline XHTML, kept as the exact text of the div element, which is the string
// the JSON form holds.
//
// Decoding is strict: unknown elements and attributes, elements outside the
// FHIR namespace, text where the model has no text, empty elements, invalid
// primitive values, a non-repeating element given twice and several variants of
// a choice element are rejected, each problem reported with a FHIRPath-style
// location. The input must be UTF-8. Document type declarations are refused,
// so no entity is ever expanded and no external resource fetched; comments and
// processing instructions are ignored. Element order is not checked.
// Attribute values are read as XML defines them, white space written as
// such being a space (a line break in a value is written &#10;).
package fhirxml

import (
	"carefhir/fhir"
	"carefhir/fhir/lexical"
)

// Namespace is the XML namespace of every FHIR element.
const Namespace = "http://hl7.org/fhir"

// XHTMLNamespace is the namespace of the narrative's div element.
const XHTMLNamespace = lexical.XHTMLNamespace

// MaxDepth is the deepest nesting of XML elements that is decoded, narrative
// XHTML included.
const MaxDepth = 100

// Unmarshal decodes a resource of the type named by its root element.
// On failure the error is a *fhirjson.DecodeError.
func Unmarshal(data []byte) (fhir.Resource, error) {
	return decode(data, "")
}

// UnmarshalAs decodes a resource and also requires it to be of resourceType.
// On failure the error is a *fhirjson.DecodeError.
func UnmarshalAs(data []byte, resourceType string) (fhir.Resource, error) {
	return decode(data, resourceType)
}

// Marshal encodes r as XML in the FHIR namespace, without an XML declaration
// or indentation, the elements in definition order. It fails when r holds a
// value that has no valid XML representation, such as an invalid primitive
// value, two variants of one choice element, a character XML 1.0 does not
// allow, or a narrative div that is not a well-formed XHTML div element.
// Elements with neither a value nor children are left out.
func Marshal(r fhir.Resource) ([]byte, error) {
	return encode(r, "")
}

// MarshalIndent is like Marshal but puts each element on a line of its own,
// indented by indent for each level of nesting, for people to read. The
// narrative's div is written as it is, its white space being content; the
// result reads back as the same resource.
func MarshalIndent(r fhir.Resource, indent string) ([]byte, error) {
	return encode(r, indent)
}
