// Package fhirjson reads and writes the FHIR R4 JSON representation of the
// resources in package fhir (https://hl7.org/fhir/R4/json.html).
//
// Decoding is strict and lossless: unknown elements, wrong JSON types, empty
// strings, objects and arrays, invalid primitive values, several variants of a
// choice element, duplicate keys and trailing data are rejected, each problem
// reported with a FHIRPath-style location; decimals keep the text they were
// written with, and primitive extensions ("_birthDate") are kept. Encoding
// writes compact JSON with resourceType first and the elements in definition
// order, so Unmarshal followed by Marshal gives back JSON equal to the input.
package fhirjson

import (
	"fmt"
	"strconv"
	"strings"

	"carefhir/fhir"
)

// MaxDepth is the deepest nesting of JSON objects and arrays that is decoded.
const MaxDepth = 100

// Unmarshal decodes a resource of the type named by its "resourceType".
// On failure the error is a *DecodeError.
func Unmarshal(data []byte) (fhir.Resource, error) {
	return decode(data, "", false)
}

// UnmarshalAs decodes a resource and also requires it to be of resourceType.
// On failure the error is a *DecodeError.
func UnmarshalAs(data []byte, resourceType string) (fhir.Resource, error) {
	return decode(data, resourceType, false)
}

// UnmarshalStored decodes a resource as Unmarshal does, but for what
// Unmarshal refuses and older stores may still hold (written before the
// check, or imported), which XML cannot carry: a narrative div with HTML
// named entities or an XML declaration is read as lexical.RepairDiv
// rewrites it, the same text as XHTML that can be written as XML, and a
// string's U+FFFE, U+FFFF or control character other than tab and line
// breaks as U+FFFD, the replacement character. A date, dateTime or instant
// whose day its month lacks (2023-02-29), which Unmarshal refuses, is kept
// as written, so that such a version can still be served.
func UnmarshalStored(data []byte) (fhir.Resource, error) {
	return decode(data, "", true)
}

// UnmarshalStoredAs decodes a stored resource as UnmarshalStored does and
// also requires it to be of resourceType.
func UnmarshalStoredAs(data []byte, resourceType string) (fhir.Resource, error) {
	return decode(data, resourceType, true)
}

// Marshal encodes r as compact JSON, resourceType first and the elements in
// definition order. It fails when r holds a value that has no valid JSON
// representation, such as an invalid primitive value or two variants of one
// choice element. Elements with neither a value nor children are left out.
func Marshal(r fhir.Resource) ([]byte, error) {
	return encode(r)
}

// DecodeError lists every problem found in a document. Decoding continues
// after a problem wherever the JSON itself is well formed.
type DecodeError struct {
	Issues []Issue
}

// MaxIssues bounds the issues a DecodeError lists: a document with more
// problems (a large body of wrong items, say) gets the first MaxIssues and
// one more issue counting the rest, so that the error stays small whatever
// the input.
const MaxIssues = 100

// Capped returns the first MaxIssues of issues and, when dropped more were
// found, an issue saying how many.
func Capped(issues []Issue, dropped int) []Issue {
	if dropped == 0 {
		return issues
	}
	return append(issues[:min(len(issues), MaxIssues):min(len(issues), MaxIssues)],
		Issue{Message: fmt.Sprintf("and %d more problems", dropped)})
}

// Issue is one problem found while decoding.
type Issue struct {
	// Path locates the problem in FHIRPath style, e.g. "Patient.name[0].given[1]",
	// "Observation.valueQuantity.value"; the resource type alone for the root,
	// and "" when the input is not well-formed JSON or its resource type is unknown.
	Path string
	// Message describes the problem, e.g. `unknown element "foo"`.
	Message string
	// Syntax is true when the input is not well-formed JSON, and false for
	// JSON that does not represent a valid resource.
	Syntax bool
}

// Error lists the issues, one per line.
func (e *DecodeError) Error() string {
	var b strings.Builder
	b.WriteString("fhirjson: ")
	for i, is := range e.Issues {
		if i > 0 {
			b.WriteString("; ")
		}
		if is.Path != "" {
			b.WriteString(is.Path)
			b.WriteString(": ")
		}
		b.WriteString(is.Message)
	}
	return b.String()
}

// String returns the issue as "path: message".
func (is Issue) String() string {
	if is.Path == "" {
		return is.Message
	}
	return fmt.Sprintf("%s: %s", is.Path, is.Message)
}

// pushField appends ".name" (or just name at the root) to the FHIRPath-style
// location path and returns the length to truncate it back to.
func pushField(path *[]byte, name string) int {
	n := len(*path)
	if n > 0 {
		*path = append(*path, '.')
	}
	*path = append(*path, name...)
	return n
}

// pushIndex appends "[i]" to path and returns the length to truncate it back to.
func pushIndex(path *[]byte, i int) int {
	n := len(*path)
	*path = append(*path, '[')
	*path = strconv.AppendInt(*path, int64(i), 10)
	*path = append(*path, ']')
	return n
}
