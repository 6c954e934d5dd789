package patch_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"carefhir/fhir/patch"
)

// params builds a FHIRPath Patch: one Parameters with the given operations.
func params(ops ...string) string {
	return `{"resourceType":"Parameters","parameter":[` + strings.Join(ops, ",") + `]}`
}

// op builds an operation of the given type and path; parts adds the others.
func op(typ, path string, parts ...string) string {
	p, _ := json.Marshal(path)
	all := append([]string{`{"name":"type","valueCode":"` + typ + `"}`, `{"name":"path","valueString":` + string(p) + `}`}, parts...)
	return `{"name":"operation","part":[` + strings.Join(all, ",") + `]}`
}

// part builds a part with one value: part("value", "valueDate", `"1930-01-01"`).
func part(name, key, value string) string {
	return `{"name":"` + name + `","` + key + `":` + value + `}`
}

func name(n string) string { return part("name", "valueString", strconv.Quote(n)) }

func integer(name string, n int) string { return part(name, "valueInteger", strconv.Itoa(n)) }

const identifiers4 = `{"resourceType":"Patient","identifier":[{"system":"http://example.org","value":"value 1"},{"system":"http://example.org","value":"value 2"},{"system":"http://example.org","value":"value 3"},{"system":"http://example.org","value":"value 4"}]}`

// identifiers returns a Patient with identifiers of the given values.
func identifiers(values ...int) string {
	var ids []string
	for _, v := range values {
		ids = append(ids, `{"system":"http://example.org","value":"value `+strconv.Itoa(v)+`"}`)
	}
	return `{"resourceType":"Patient","identifier":[` + strings.Join(ids, ",") + `]}`
}

// TestFHIRPathPatchSuite runs the cases of the FHIR test-case suite for
// FHIRPath Patch (fhir-test-cases, r4/patch/fhir-path-tests.xml), in their
// JSON form. Left out: "Consecutive operations", whose second operation
// targets Patient.contact[1], which its input does not have, and whose
// expected output changes an extension no operation touches.
func TestFHIRPathPatchSuite(t *testing.T) {
	const contact = `{"resourceType":"Patient","contact":[{"name":{"text":"a name"},"gender":"male"}]}`
	tests := []fhirPathCase{
		{"No Difference", `{"resourceType":"Patient","birthDate":"1920-01-01"}`, params(), `{"resourceType":"Patient","birthDate":"1920-01-01"}`},
		{"Replace Primitive", `{"resourceType":"Patient","birthDate":"1920-01-01"}`,
			params(op("replace", "Patient.birthDate", part("value", "valueDate", `"1930-01-01"`))),
			`{"resourceType":"Patient","birthDate":"1930-01-01"}`},
		{"Delete Primitive", `{"resourceType":"Patient","birthDate":"1920-01-01"}`,
			params(op("delete", "Patient.birthDate")), `{"resourceType":"Patient"}`},
		{"Add Primitive", `{"resourceType":"Patient"}`,
			params(op("add", "Patient", name("birthDate"), part("value", "valueDate", `"1930-01-01"`))),
			`{"resourceType":"Patient","birthDate":"1930-01-01"}`},
		{"Replace Nested Primitive #1", contact,
			params(op("replace", "Patient.contact[0].gender", part("value", "valueCode", `"female"`))),
			`{"resourceType":"Patient","contact":[{"name":{"text":"a name"},"gender":"female"}]}`},
		{"Replace Nested Primitive #2", contact,
			params(op("replace", "Patient.contact[0].name.text", part("value", "valueString", `"the name"`))),
			`{"resourceType":"Patient","contact":[{"name":{"text":"the name"},"gender":"male"}]}`},
		{"Delete Nested Primitive #1", contact,
			params(op("delete", "Patient.contact[0].gender")),
			`{"resourceType":"Patient","contact":[{"name":{"text":"a name"}}]}`},
		{"Delete Nested Primitive #2", contact,
			params(op("delete", "Patient.contact[0].name.text")),
			`{"resourceType":"Patient","contact":[{"gender":"male"}]}`},
		{"Add Nested Primitive", `{"resourceType":"Patient","contact":[{"name":{"text":"a name"}}]}`,
			params(op("add", "Patient.contact[0]", name("gender"), part("value", "valueCode", `"male"`))), contact},
		{"Add Complex", `{"resourceType":"Patient"}`,
			params(op("add", "Patient", name("maritalStatus"), part("value", "valueCodeableConcept", `{"text":"married"}`))),
			`{"resourceType":"Patient","maritalStatus":{"text":"married"}}`},
		{"Replace Complex", `{"resourceType":"Patient","maritalStatus":{"id":"1","text":"married"}}`,
			params(op("replace", "Patient.maritalStatus", part("value", "valueCodeableConcept", `{"id":"2","text":"not married"}`))),
			`{"resourceType":"Patient","maritalStatus":{"id":"2","text":"not married"}}`},
		{"Delete Complex", `{"resourceType":"Patient","maritalStatus":{"text":"married"}}`,
			params(op("delete", "Patient.maritalStatus")), `{"resourceType":"Patient"}`},
		{"Add Anonymous Type", `{"resourceType":"Patient"}`,
			params(op("add", "Patient", name("contact"), `{"name":"value","part":[`+part("name", "valueHumanName", `{"text":"a name"}`)+`]}`)),
			`{"resourceType":"Patient","contact":[{"name":{"text":"a name"}}]}`},
		{"Delete Anonymous Type", `{"resourceType":"Patient","contact":[{"name":{"text":"a name"}}]}`,
			params(op("delete", "Patient.contact[0]")), `{"resourceType":"Patient"}`},
		{"List unchanged", identifiers(1, 2), params(), identifiers(1, 2)},
		{"List unchanged, contents changed",
			`{"resourceType":"Patient","identifier":[{"id":"a","system":"http://example.org","value":"value 1"},{"id":"b","system":"http://example.org","value":"value 2"}]}`,
			params(op("replace", "Patient.identifier[0].value", part("value", "valueString", `"value 2"`)),
				op("replace", "Patient.identifier[1].value", part("value", "valueString", `"value 1"`))),
			`{"resourceType":"Patient","identifier":[{"id":"a","system":"http://example.org","value":"value 2"},{"id":"b","system":"http://example.org","value":"value 1"}]}`},
		{"Add to list", identifiers(1, 2),
			params(op("insert", "Patient.identifier", integer("index", 2), part("value", "valueIdentifier", `{"system":"http://example.org","value":"value 3"}`))),
			identifiers(1, 2, 3)},
		{"Insert in list #1", identifiers(1, 2),
			params(op("insert", "Patient.identifier", integer("index", 1), part("value", "valueIdentifier", `{"system":"http://example.org","value":"value 3"}`))),
			identifiers(1, 3, 2)},
		{"Insert in list #2", identifiers(1, 2),
			params(op("insert", "Patient.identifier", integer("index", 0), part("value", "valueIdentifier", `{"system":"http://example.org","value":"value 3"}`))),
			identifiers(3, 1, 2)},
		{"Delete from List #1", identifiers(1, 2, 3), params(op("delete", "Patient.identifier[0]")), identifiers(2, 3)},
		{"Delete from List #2", identifiers(1, 2, 3), params(op("delete", "Patient.identifier[1]")), identifiers(1, 3)},
		{"Delete from List #3", identifiers(1, 2, 3), params(op("delete", "Patient.identifier[2]")), identifiers(1, 2)},
		{"Reorder List #1", identifiers4, params(op("move", "Patient.identifier", integer("source", 3), integer("destination", 1))), identifiers(1, 4, 2, 3)},
		{"Reorder List #2", identifiers4, params(op("move", "Patient.identifier", integer("source", 3), integer("destination", 0))), identifiers(4, 1, 2, 3)},
		{"Reorder List #3", identifiers4, params(op("move", "Patient.identifier", integer("source", 3), integer("destination", 2))), identifiers(1, 2, 4, 3)},
		{"Reorder List #4", identifiers4, params(op("move", "Patient.identifier", integer("source", 0), integer("destination", 3))), identifiers(2, 3, 4, 1)},
		{"Reorder List #5", identifiers4, params(
			op("move", "Patient.identifier", integer("source", 1), integer("destination", 0)),
			op("move", "Patient.identifier", integer("source", 2), integer("destination", 1))), identifiers(2, 3, 1, 4)},
		{"Reorder List #6", identifiers4, params(
			op("move", "Patient.identifier", integer("source", 3), integer("destination", 0)),
			op("move", "Patient.identifier", integer("source", 3), integer("destination", 1)),
			op("move", "Patient.identifier", integer("source", 3), integer("destination", 2))), identifiers(4, 3, 2, 1)},
		{"Operation on missing element #2", `{"resourceType":"Patient"}`,
			params(op("add", "Patient", name("identifier"), part("value", "valueIdentifier", `{"system":"http://example.org","value":"value 3"}`))),
			identifiers(3)},
	}
	runFHIRPathCases(t, tests)

	t.Run("Operation on missing element", func(t *testing.T) {
		path := "Patient.identifier.where(use = 'official').period"
		_, err := patch.FHIRPathPatch([]byte(`{"resourceType":"Patient","identifier":[{"use":"official","value":"123"}]}`),
			[]byte(params(op("add", path, name("end"), part("value", "valueDate", `"2021-12-01"`)))))
		wantError(t, err, patch.Inapplicable, 0, path)
	})

	t.Run("Full Resource", func(t *testing.T) {
		// The R4 example patient: two replacements, and nothing else changes.
		in, err := os.ReadFile(filepath.Join("..", "..", "testdata", "r4-examples", "Patient-example.json"))
		if err != nil {
			t.Fatal(err)
		}
		var want map[string]any
		if err := json.Unmarshal(in, &want); err != nil {
			t.Fatal(err)
		}
		div := strings.Replace(want["text"].(map[string]any)["div"].(string), "Chalmers", "Chalmers1", 1)
		want["text"].(map[string]any)["div"] = div
		want["name"].([]any)[0].(map[string]any)["family"] = "Chalmers1"
		d, _ := json.Marshal(div)
		got, err := patch.FHIRPathPatch(in, []byte(params(
			op("replace", "Patient.text.div", part("value", "valueString", string(d))),
			op("replace", "Patient.name[0].family", part("value", "valueString", `"Chalmers1"`)))))
		if err != nil {
			t.Fatal(err)
		}
		w, _ := json.Marshal(want)
		if !sameJSON(t, got, string(w)) {
			t.Errorf("got  %s\nwant %s", got, w)
		}
	})
}

func TestFHIRPathPatch(t *testing.T) {
	const (
		ext       = `{"extension":[{"url":"http://example.org/source","valueString":"GP record"}]}`
		withGiven = `{"resourceType":"Patient","name":[{"family":"Smith","given":["Ann","Beth","Cat"],"_given":[null,` + ext + `,null]}],"birthDate":"1970-03-01","_birthDate":` + ext + `}`
	)
	tests := []fhirPathCase{
		{"delete of nothing", `{"resourceType":"Patient","gender":"male"}`, params(op("delete", "Patient.birthDate")), `{"resourceType":"Patient","gender":"male"}`},
		{"add to a choice by its name", `{"resourceType":"Patient"}`,
			params(op("add", "Patient", name("deceased"), part("value", "valueDateTime", `"2024-05-01T10:00:00Z"`))),
			`{"resourceType":"Patient","deceasedDateTime":"2024-05-01T10:00:00Z"}`},
		{"add to a choice by its JSON name", `{"resourceType":"Patient"}`,
			params(op("add", "Patient", name("deceasedBoolean"), part("value", "valueBoolean", `true`))),
			`{"resourceType":"Patient","deceasedBoolean":true}`},
		{"replace changes the type of a choice", `{"resourceType":"Patient","deceasedBoolean":false}`,
			params(op("replace", "Patient.deceased", part("value", "valueDateTime", `"2024-05-01"`))),
			`{"resourceType":"Patient","deceasedDateTime":"2024-05-01"}`},
		{"add appends to a list", `{"resourceType":"Patient","name":[{"family":"Smith"}]}`,
			params(op("add", "Patient.name[0]", name("given"), part("value", "valueString", `"Ann"`))),
			`{"resourceType":"Patient","name":[{"family":"Smith","given":["Ann"]}]}`},
		{"add a primitive with its extension", `{"resourceType":"Patient"}`,
			params(op("add", "Patient", name("birthDate"), `{"name":"value","valueDate":"1970-03-01","_valueDate":`+ext+`}`)),
			`{"resourceType":"Patient","birthDate":"1970-03-01","_birthDate":` + ext + `}`},
		{"add an extension to a primitive", `{"resourceType":"Patient","birthDate":"1970-03-01"}`,
			params(op("add", "Patient.birthDate", name("extension"), part("value", "valueExtension", `{"url":"http://example.org/source","valueString":"GP record"}`))),
			`{"resourceType":"Patient","birthDate":"1970-03-01","_birthDate":` + ext + `}`},
		{"add a complex value from parts with a list", `{"resourceType":"Patient"}`,
			params(op("add", "Patient", name("contact"), `{"name":"value","part":[`+
				part("name", "valueHumanName", `{"family":"Jones"}`)+`,`+
				part("telecom", "valueContactPoint", `{"system":"phone","value":"01632 960001"}`)+`,`+
				part("telecom", "valueContactPoint", `{"system":"email","value":"j@example.org"}`)+`,`+
				part("gender", "valueCode", `"female"`)+`]}`)),
			`{"resourceType":"Patient","contact":[{"name":{"family":"Jones"},"telecom":[{"system":"phone","value":"01632 960001"},{"system":"email","value":"j@example.org"}],"gender":"female"}]}`},
		{"where selects the element", `{"resourceType":"Patient","telecom":[{"system":"phone","value":"1"},{"system":"email","value":"a@b"}]}`,
			params(op("replace", "Patient.telecom.where(system = 'email').value", part("value", "valueString", `"c@d"`))),
			`{"resourceType":"Patient","telecom":[{"system":"phone","value":"1"},{"system":"email","value":"c@d"}]}`},
		{"replace takes a primitive's extensions", withGiven,
			params(op("replace", "Patient.birthDate", part("value", "valueDate", `"1971-03-01"`))),
			`{"resourceType":"Patient","name":[{"family":"Smith","given":["Ann","Beth","Cat"],"_given":[null,` + ext + `,null]}],"birthDate":"1971-03-01"}`},
		{"replace takes the extensions of a primitive in a list", withGiven,
			params(op("replace", "Patient.name[0].given[1]", part("value", "valueString", `"Bet"`))),
			`{"resourceType":"Patient","name":[{"family":"Smith","given":["Ann","Bet","Cat"]}],"birthDate":"1970-03-01","_birthDate":` + ext + `}`},
		{"replace gives a primitive the new value's extensions", `{"resourceType":"Patient","birthDate":"1970-03-01","_birthDate":{"id":"b"}}`,
			params(op("replace", "Patient.birthDate", `{"name":"value","valueDate":"1971-03-01","_valueDate":`+ext+`}`)),
			`{"resourceType":"Patient","birthDate":"1971-03-01","_birthDate":` + ext + `}`},
		{"delete takes a primitive's extensions", withGiven,
			params(op("delete", "Patient.name[0].given[1]")),
			`{"resourceType":"Patient","name":[{"family":"Smith","given":["Ann","Cat"]}],"birthDate":"1970-03-01","_birthDate":` + ext + `}`},
		{"delete keeps the others' extensions in place", withGiven,
			params(op("delete", "Patient.name[0].given[0]")),
			`{"resourceType":"Patient","name":[{"family":"Smith","given":["Beth","Cat"],"_given":[` + ext + `,null]}],"birthDate":"1970-03-01","_birthDate":` + ext + `}`},
		{"move carries a primitive's extensions", withGiven,
			params(op("move", "Patient.name[0].given", integer("source", 1), integer("destination", 2))),
			`{"resourceType":"Patient","name":[{"family":"Smith","given":["Ann","Cat","Beth"],"_given":[null,null,` + ext + `]}],"birthDate":"1970-03-01","_birthDate":` + ext + `}`},
		{"insert into a list of primitives", withGiven,
			params(op("insert", "Patient.name[0].given", integer("index", 0), part("value", "valueString", `"Zoe"`))),
			`{"resourceType":"Patient","name":[{"family":"Smith","given":["Zoe","Ann","Beth","Cat"],"_given":[null,null,` + ext + `,null]}],"birthDate":"1970-03-01","_birthDate":` + ext + `}`},
		{"insert into an absent list", `{"resourceType":"Patient","name":[{"family":"Smith"}]}`,
			params(op("insert", "Patient.name.where(family = 'Smith').given", integer("index", 0), part("value", "valueString", `"Ann"`))),
			`{"resourceType":"Patient","name":[{"family":"Smith","given":["Ann"]}]}`},
		{"delete the extension of a primitive", withGiven,
			params(op("delete", "Patient.birthDate.extension")),
			`{"resourceType":"Patient","name":[{"family":"Smith","given":["Ann","Beth","Cat"],"_given":[null,` + ext + `,null]}],"birthDate":"1970-03-01"}`},
		{"contained resource", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o1","name":"Old"}]}`,
			params(op("replace", "Patient.contained.ofType(Organization).name", part("value", "valueString", `"New"`))),
			`{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o1","name":"New"}]}`},
		{"replace an extension's url", `{"resourceType":"Patient","extension":[{"url":"http://example.org/old","valueString":"x"}]}`,
			params(op("replace", "Patient.extension[0].url", part("value", "valueUri", `"http://example.org/new"`))),
			`{"resourceType":"Patient","extension":[{"url":"http://example.org/new","valueString":"x"}]}`},
		{"replace an element's id", `{"resourceType":"Patient","name":[{"id":"n1","family":"Smith"}]}`,
			params(op("replace", "Patient.name.where(family = 'Smith').id", part("value", "valueString", `"n2"`))),
			`{"resourceType":"Patient","name":[{"id":"n2","family":"Smith"}]}`},
		{"replace a primitive's id", `{"resourceType":"Patient","birthDate":"1970-03-01","_birthDate":{"id":"b1"}}`,
			params(op("replace", "Patient.birthDate.id", part("value", "valueString", `"b2"`))),
			`{"resourceType":"Patient","birthDate":"1970-03-01","_birthDate":{"id":"b2"}}`},
		{"delete an element's id", `{"resourceType":"Patient","name":[{"id":"n1","family":"Smith"}]}`,
			params(op("delete", "Patient.name[0].id")),
			`{"resourceType":"Patient","name":[{"family":"Smith"}]}`},
		{"replace a contained resource's id and its reference", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o1","name":"GP"}],"managingOrganization":{"reference":"#o1"}}`,
			params(op("replace", "Patient.contained[0].id", part("value", "valueId", `"o2"`)),
				op("replace", "Patient.managingOrganization.reference", part("value", "valueString", `"#o2"`))),
			`{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o2","name":"GP"}],"managingOrganization":{"reference":"#o2"}}`},
		{"decimal kept as written", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50,"unit":"mg"}}`,
			params(op("replace", "Observation.value.unit", part("value", "valueString", `"g"`))),
			`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50,"unit":"g"}}`},
	}
	runFHIRPathCases(t, tests)
}

// fhirPathCase is a FHIRPath Patch applied to an input, and the result.
type fhirPathCase struct {
	name, input, patch, want string
}

func runFHIRPathCases(t *testing.T, tests []fhirPathCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := patch.FHIRPathPatch([]byte(tt.input), []byte(tt.patch))
			if err != nil {
				t.Fatal(err)
			}
			if !sameJSON(t, got, tt.want) {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			if strings.Contains(string(got), "patch:") {
				t.Errorf("a location marker was left in the result: %s", got)
			}
			if strings.Contains(tt.input, "1.50") && !strings.Contains(string(got), "1.50") {
				t.Errorf("1.50 lost its written precision: %s", got)
			}
		})
	}
}

func TestFHIRPathPatchErrors(t *testing.T) {
	const input = `{"resourceType":"Patient","id":"p1","gender":"male","name":[{"family":"Smith","given":["Ann","Beth"]},{"family":"Jones"}],"managingOrganization":{"reference":"Organization/o1"}}`
	value := part("value", "valueString", `"x"`)
	tests := []struct {
		name, patch string
		kind        patch.Kind
		op          int
		path        string
	}{
		{"not JSON", `{"resourceType":`, patch.Malformed, -1, ""},
		{"not Parameters", `{"resourceType":"Patient"}`, patch.Malformed, -1, ""},
		{"parameter not an operation", `{"resourceType":"Parameters","parameter":[{"name":"resource"}]}`, patch.Malformed, 0, ""},
		{"no type", `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"path","valueString":"Patient"}]}]}`, patch.Malformed, 0, "Patient"},
		{"unknown type", params(op("upsert", "Patient.gender", value)), patch.Malformed, 0, "Patient.gender"},
		{"unknown part", params(op("delete", "Patient.gender", part("where", "valueString", `"x"`))), patch.Malformed, 0, "Patient.gender"},
		{"part twice", params(op("delete", "Patient.gender", part("path", "valueString", `"Patient"`))), patch.Malformed, 0, "Patient.gender"},
		{"add without name", params(op("add", "Patient", value)), patch.Malformed, 0, "Patient"},
		{"insert without index", params(op("insert", "Patient.name", value)), patch.Malformed, 0, "Patient.name"},
		{"negative index", params(op("insert", "Patient.name", value, integer("index", -1))), patch.Malformed, 0, "Patient.name"},
		{"bad FHIRPath", params(op("delete", "Patient.name[")), patch.Malformed, 0, "Patient.name["},
		{"later operation", params(op("delete", "Patient.gender"), op("replace", "Patient.name", value)), patch.Inapplicable, 1, "Patient.name"},
		{"replace of several elements", params(op("replace", "Patient.name.family", value)), patch.Inapplicable, 0, "Patient.name.family"},
		{"delete of several elements", params(op("delete", "Patient.name")), patch.Inapplicable, 0, "Patient.name"},
		{"replace of nothing", params(op("replace", "Patient.birthDate", part("value", "valueDate", `"1970"`))), patch.Inapplicable, 0, "Patient.birthDate"},
		{"add to an element that exists", params(op("add", "Patient", name("gender"), part("value", "valueCode", `"female"`))), patch.Inapplicable, 0, "Patient"},
		{"add an unknown element", params(op("add", "Patient", name("colour"), value)), patch.Inapplicable, 0, "Patient"},
		{"add a choice without a type", params(op("add", "Patient", name("deceased"), `{"name":"value","part":[]}`)), patch.Inapplicable, 0, "Patient"},
		{"wrong complex type", params(op("add", "Patient", name("maritalStatus"), part("value", "valueCoding", `{"code":"M"}`))), patch.Inapplicable, 0, "Patient"},
		{"complex value for a primitive", params(op("replace", "Patient.gender", part("value", "valueCoding", `{"code":"M"}`))), patch.Inapplicable, 0, "Patient.gender"},
		{"insert index out of range", params(op("insert", "Patient.name", integer("index", 3), part("value", "valueHumanName", `{"family":"X"}`))), patch.Inapplicable, 0, "Patient.name"},
		{"move index out of range", params(op("move", "Patient.name", integer("source", 0), integer("destination", 2))), patch.Inapplicable, 0, "Patient.name"},
		{"move in what is not a list", params(op("move", "Patient.gender", integer("source", 0), integer("destination", 0))), patch.Inapplicable, 0, "Patient.gender"},
		{"insert across lists", params(op("insert", "Patient.name.given | Patient.name.family", integer("index", 0), value)), patch.Inapplicable, 0, "Patient.name.given | Patient.name.family"},
		{"computed value", params(op("replace", "Patient.name.count()", value)), patch.Inapplicable, 0, "Patient.name.count()"},
		{"another resource", params(op("replace", "Patient.managingOrganization.resolve().name", value)), patch.Inapplicable, 0, "Patient.managingOrganization.resolve().name"},
		{"unknown element in path", params(op("delete", "Patient.colour")), patch.Inapplicable, 0, "Patient.colour"},
		{"delete the resource", params(op("delete", "Patient")), patch.Inapplicable, 0, "Patient"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := patch.FHIRPathPatch([]byte(input), []byte(tt.patch))
			if err == nil {
				t.Fatalf("no error; result %s", got)
			}
			wantError(t, err, tt.kind, tt.op, tt.path)
		})
	}
}

// TestPatchKeepsLocalReferences: a patch that changes or removes the id of
// a contained resource that a local reference still names is refused,
// whichever format; one that changes the reference too is applied.
func TestPatchKeepsLocalReferences(t *testing.T) {
	const input = `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o1","name":"GP"}],"managingOrganization":{"reference":"#o1"}}`
	for _, tt := range []struct {
		name string
		run  func() ([]byte, error)
	}{
		{"FHIRPath Patch replace", func() ([]byte, error) {
			return patch.FHIRPathPatch([]byte(input), []byte(params(op("replace", "Patient.contained[0].id", part("value", "valueId", `"o2"`)))))
		}},
		{"FHIRPath Patch delete", func() ([]byte, error) {
			return patch.FHIRPathPatch([]byte(input), []byte(params(op("delete", "Patient.contained[0]"))))
		}},
		{"JSON Patch replace", func() ([]byte, error) {
			return patch.JSONPatch([]byte(input), []byte(`[{"op":"replace","path":"/contained/0/id","value":"o2"}]`))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.run()
			if err == nil {
				t.Fatalf("no error; result %s", got)
			}
			wantError(t, err, patch.Inapplicable, -1, "")
			if !strings.Contains(err.Error(), "/managingOrganization/reference still refers to it as #o1") {
				t.Errorf("error %v does not name the reference", err)
			}
		})
	}
	got, err := patch.JSONPatch([]byte(input), []byte(`[{"op":"replace","path":"/contained/0/id","value":"o2"},{"op":"replace","path":"/managingOrganization/reference","value":"#o2"}]`))
	if err != nil || !strings.Contains(string(got), `"reference":"#o2"`) {
		t.Errorf("JSON Patch of the id and its reference: %s, %v", got, err)
	}
}
