package patch_test

import (
	"testing"

	"carefhir/fhir/patch"
)

const fuzzPatient = `{"resourceType":"Patient","id":"p1","gender":"male","birthDate":"1970-03-01","_birthDate":{"extension":[{"url":"http://example.org/x","valueString":"y"}]},"name":[{"family":"Smith","given":["Ann","Beth"],"_given":[null,{"id":"g"}]}],"contained":[{"resourceType":"Organization","id":"o1","name":"GP"}]}`

// FuzzJSONPatch checks that no JSON Patch document makes JSONPatch panic.
func FuzzJSONPatch(f *testing.F) {
	for _, s := range []string{
		`[{"op":"add","path":"/name/0/given/-","value":"Cat"}]`,
		`[{"op":"move","from":"/name/0","path":"/name/1"}]`,
		`[{"op":"copy","from":"/name","path":"/a~1b"}]`,
		`[{"op":"test","path":"/gender","value":"male"},{"op":"remove","path":""}]`,
		`{"patches":[{"op":"replace","path":"","value":[]}]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ops string) {
		patch.JSONPatch([]byte(fuzzPatient), []byte(ops))
	})
}

// FuzzFHIRPathPatch checks that no Parameters body makes FHIRPathPatch
// panic.
func FuzzFHIRPathPatch(f *testing.F) {
	for _, s := range []string{
		params(op("add", "Patient", name("deceased"), part("value", "valueDateTime", `"2024"`))),
		params(op("insert", "Patient.name.given", integer("index", 1), part("value", "valueString", `"x"`))),
		params(op("move", "Patient.name[0].given", integer("source", 1), integer("destination", 0))),
		params(op("delete", "Patient.birthDate.extension")),
		params(op("replace", "Patient.contained.ofType(Organization).name", `{"name":"value","part":[{"name":"x"}]}`)),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, parameters string) {
		patch.FHIRPathPatch([]byte(fuzzPatient), []byte(parameters))
	})
}
