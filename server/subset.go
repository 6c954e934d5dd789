package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
)

// member is one name/value pair of a JSON object, in document order.
type member struct {
	Name  string
	Value json.RawMessage
}

// members splits a JSON object into its members without decoding values.
func members(obj []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object")
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out = append(out, member{Name: name, Value: v})
	}
	return out, nil
}

// object writes members as a JSON object.
func object(ms []member) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(m.Name)
		b.Write(name)
		b.WriteByte(':')
		b.Write(m.Value)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// subsettedTag marks a resource the server returned incompletely.
const subsettedTag = `{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED","display":"Resource encoded in summary mode"}`

// subset reduces a stored resource as _summary or _elements ask, marking the
// result SUBSETTED. Without either it returns body unchanged. _elements
// given more than once names the elements of all its values, as in a
// search.
func subset(typ string, body []byte, q url.Values) ([]byte, error) {
	summary, elements := q.Get("_summary"), elementsList(q)
	if n := len(q["_summary"]); n > 1 {
		// Which one the client meant is not known.
		return nil, errorf(http.StatusBadRequest, "invalid", "_summary is given %d times: a read takes it once at most", n).at("_summary")
	}
	if summary == "" && elements == "" || summary == "false" {
		return body, nil
	}
	if summary != "" && elements != "" {
		return nil, errorf(http.StatusBadRequest, "invalid", "use either _summary or _elements, not both").at("_elements")
	}
	keep := map[string]bool{"resourceType": true, "id": true, "meta": true}
	var choices []string // mandatory choice elements, kept in whichever form they take
	for _, name := range fhir.MandatoryElements(typ) {
		if base, ok := strings.CutSuffix(name, "[x]"); ok {
			choices = append(choices, base)
			continue
		}
		keep[name] = true
	}
	drop := map[string]bool{}
	switch summary {
	case "":
		for _, name := range strings.Split(elements, ",") {
			switch name = strings.TrimSpace(name); {
			case fhir.IsElement(typ, name):
				keep[name] = true
			case isChoiceElement(typ, name):
				choices = append(choices, name)
			default:
				return nil, errorf(http.StatusBadRequest, "invalid", "_elements: %q is not an element of %s", truncate(name, 64), typ).at("_elements")
			}
		}
	case "true":
		for _, name := range fhir.SummaryElements(typ) {
			keep[name] = true
		}
	case "text":
		keep["text"] = true
	case "data":
		keep, drop = nil, map[string]bool{"text": true}
	default:
		return nil, errorf(http.StatusBadRequest, "invalid", "_summary=%q is not supported on a read (use true, text, data or false)", truncate(summary, 20)).at("_summary")
	}
	ms, err := members(body)
	if err != nil {
		return nil, fmt.Errorf("subset %s: %w", typ, err)
	}
	out := ms[:0]
	for _, m := range ms {
		name := strings.TrimPrefix(m.Name, "_")
		if drop[name] || keep != nil && !keep[name] && !isChoiceOf(name, choices) {
			continue
		}
		if m.Name == "meta" {
			if m.Value, err = tagSubsetted(m.Value); err != nil {
				return nil, fmt.Errorf("subset %s: %w", typ, err)
			}
		}
		out = append(out, m)
	}
	return object(out), nil
}

// elementsList returns the element names of every _elements parameter in
// q as one comma-separated list, leaving out empty values.
func elementsList(q url.Values) string {
	lists := make([]string, 0, len(q["_elements"]))
	for _, list := range q["_elements"] {
		if list != "" {
			lists = append(lists, list)
		}
	}
	return strings.Join(lists, ",")
}

// isElementName reports whether _elements may name name on typ: a
// top-level property ("valueQuantity") or a choice element by its
// definition name ("value"), which R4 has _elements list.
func isElementName(typ, name string) bool {
	return fhir.IsElement(typ, name) || isChoiceElement(typ, name)
}

// isChoiceElement reports whether name is the definition name, without
// "[x]", of a choice element of typ: "value" of Observation.value[x].
func isChoiceElement(typ, name string) bool {
	res, ok := fhir.NewResource(typ)
	if !ok {
		return false
	}
	fields, _ := fhirjson.Fields(reflect.TypeOf(res).Elem())
	return slices.ContainsFunc(fields, func(f fhirjson.Field) bool { return f.Choice == name+"[x]" })
}

// elementsOf returns those of the _elements names that are elements of
// typ, for a Bundle of several types; when none is, "id", which keeps the
// id, meta and mandatory elements alone.
func elementsOf(typ string, names []string) []string {
	kept := slices.DeleteFunc(slices.Clone(names), func(name string) bool { return !isElementName(typ, name) })
	if len(kept) == 0 {
		return []string{"id"}
	}
	return kept
}

// elementOfNone returns the first of names that is an element of none of
// types, and false when each is an element of one.
func elementOfNone(types, names []string) (string, bool) {
	for _, name := range names {
		if !slices.ContainsFunc(types, func(typ string) bool { return isElementName(typ, name) }) {
			return name, true
		}
	}
	return "", false
}

// tagSubsetted adds the SUBSETTED tag to a meta element.
func tagSubsetted(meta json.RawMessage) (json.RawMessage, error) {
	ms, err := members(meta)
	if err != nil {
		return nil, err
	}
	for i, m := range ms {
		if m.Name == "tag" {
			tags := bytes.TrimSuffix(bytes.TrimSpace(m.Value), []byte("]"))
			ms[i].Value = append(append(tags, ','), subsettedTag+"]"...)
			return object(ms), nil
		}
	}
	return object(append(ms, member{Name: "tag", Value: json.RawMessage("[" + subsettedTag + "]")})), nil
}

// checkMandatory reports the top-level elements the definition of the
// resource's type requires but the resource lacks (422). A choice element,
// given as "name[x]", is present when any of its forms is.
func checkMandatory(res fhir.Resource) error {
	required := fhir.MandatoryElements(res.ResourceType())
	if len(required) == 0 {
		return nil
	}
	v := reflect.ValueOf(res).Elem()
	fields, _ := fhirjson.Fields(v.Type())
	present := make(map[string]bool, len(fields))
	for _, f := range fields {
		if fv := v.Field(f.Index); !fv.IsZero() && !(fv.Kind() == reflect.Slice && fv.Len() == 0) {
			present[f.Name] = true
			if f.Choice != "" {
				present[f.Choice] = true
			}
		}
	}
	var missing []Issue
	for _, name := range required {
		if present[name] {
			continue
		}
		missing = append(missing, Issue{Severity: "error", Code: "required",
			Diagnostics: fmt.Sprintf("%s.%s is required (minimum cardinality 1) but missing", res.ResourceType(), name),
			Expression:  []string{res.ResourceType() + "." + strings.TrimSuffix(name, "[x]")}})
	}
	if len(missing) > 0 {
		return &Error{Status: http.StatusUnprocessableEntity, Issues: missing}
	}
	return nil
}

// isChoiceOf reports whether the property name is a form of one of the
// choice elements: "medicationReference" of "medication".
func isChoiceOf(name string, bases []string) bool {
	for _, base := range bases {
		rest, ok := strings.CutPrefix(name, base)
		if ok && rest != "" && rest[0] >= 'A' && rest[0] <= 'Z' {
			return true
		}
	}
	return false
}
