package patch_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/fhir/patch"
)

// sameJSON reports whether two JSON texts hold the same value.
func sameJSON(t *testing.T, got []byte, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("result is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad test: want is not JSON: %v", err)
	}
	return reflect.DeepEqual(g, w)
}

// wantError checks err is a *patch.Error of the given kind, operation and
// path.
func wantError(t *testing.T, err error, kind patch.Kind, op int, path string) {
	t.Helper()
	var pe *patch.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T), want a *patch.Error", err, err)
	}
	if pe.Kind != kind || pe.Op != op || pe.Path != path {
		t.Errorf("error %+v, want kind %d, op %d, path %q", pe, kind, op, path)
	}
	if pe.Message == "" || !strings.HasPrefix(pe.Error(), "patch: ") {
		t.Errorf("error text %q", pe.Error())
	}
}

func TestJSONPatch(t *testing.T) {
	const doc = `{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"Smith","given":["Ann","Beth"]}],"a/b":{"m~n":1.50}}`
	tests := []struct {
		name, ops, want string
	}{
		{"replace member", `[{"op":"replace","path":"/active","value":false}]`,
			`{"resourceType":"Patient","id":"p1","active":false,"name":[{"family":"Smith","given":["Ann","Beth"]}],"a/b":{"m~n":1.50}}`},
		{"add member", `[{"op":"add","path":"/gender","value":"female"}]`,
			`{"resourceType":"Patient","id":"p1","active":true,"gender":"female","name":[{"family":"Smith","given":["Ann","Beth"]}],"a/b":{"m~n":1.50}}`},
		{"add replaces a member", `[{"op":"add","path":"/active","value":false}]`,
			`{"resourceType":"Patient","id":"p1","active":false,"name":[{"family":"Smith","given":["Ann","Beth"]}],"a/b":{"m~n":1.50}}`},
		{"add inserts into an array", `[{"op":"add","path":"/name/0/given/1","value":"Cat"}]`,
			`{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"Smith","given":["Ann","Cat","Beth"]}],"a/b":{"m~n":1.50}}`},
		{"add at the end index", `[{"op":"add","path":"/name/0/given/2","value":"Cat"}]`,
			`{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"Smith","given":["Ann","Beth","Cat"]}],"a/b":{"m~n":1.50}}`},
		{"append with -", `[{"op":"add","path":"/name/-","value":{"family":"Jones"}}]`,
			`{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"Smith","given":["Ann","Beth"]},{"family":"Jones"}],"a/b":{"m~n":1.50}}`},
		{"remove array item", `[{"op":"remove","path":"/name/0/given/0"}]`,
			`{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"Smith","given":["Beth"]}],"a/b":{"m~n":1.50}}`},
		{"remove member", `[{"op":"remove","path":"/active"}]`,
			`{"resourceType":"Patient","id":"p1","name":[{"family":"Smith","given":["Ann","Beth"]}],"a/b":{"m~n":1.50}}`},
		{"escaped tokens", `[{"op":"replace","path":"/a~1b/m~0n","value":2}]`,
			`{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"Smith","given":["Ann","Beth"]}],"a/b":{"m~n":2}}`},
		{"move", `[{"op":"move","from":"/name/0/given/0","path":"/name/0/given/-"}]`,
			`{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"Smith","given":["Beth","Ann"]}],"a/b":{"m~n":1.50}}`},
		{"move to itself", `[{"op":"move","from":"/active","path":"/active"}]`, doc},
		{"copy", `[{"op":"copy","from":"/name/0","path":"/name/1"},{"op":"replace","path":"/name/1/family","value":"Jones"}]`,
			`{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"Smith","given":["Ann","Beth"]},{"family":"Jones","given":["Ann","Beth"]}],"a/b":{"m~n":1.50}}`},
		{"test numbers by value", `[{"op":"test","path":"/a~1b/m~0n","value":1.5},{"op":"remove","path":"/a~1b"}]`,
			`{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"Smith","given":["Ann","Beth"]}]}`},
		{"test objects in any member order", `[{"op":"test","path":"/name/0","value":{"given":["Ann","Beth"],"family":"Smith"}}]`, doc},
		{"decimal kept as written", `[]`, doc},
		{"removal of the last item drops the array", `[{"op":"remove","path":"/name/0"}]`,
			`{"resourceType":"Patient","id":"p1","active":true,"a/b":{"m~n":1.50}}`},
		{"empty array added then filled", `[{"op":"add","path":"/telecom","value":[]},{"op":"add","path":"/telecom/-","value":{"value":"1"}}]`,
			`{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"Smith","given":["Ann","Beth"]}],"a/b":{"m~n":1.50},"telecom":[{"value":"1"}]}`},
		{"empty array copied, both filled", `[{"op":"add","path":"/telecom","value":[]},{"op":"copy","from":"/telecom","path":"/address"},{"op":"add","path":"/telecom/-","value":{"value":"1"}},{"op":"add","path":"/address/-","value":{"city":"Leeds"}}]`,
			`{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"Smith","given":["Ann","Beth"]}],"a/b":{"m~n":1.50},"telecom":[{"value":"1"}],"address":[{"city":"Leeds"}]}`},
		{"nulls with a companion holding the items", `[{"op":"replace","path":"/name/0/given","value":[null]},{"op":"add","path":"/name/0/_given","value":[{"id":"g1"}]}]`,
			`{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"Smith","given":[null],"_given":[{"id":"g1"}]}],"a/b":{"m~n":1.50}}`},
		{"array of nulls filled", `[{"op":"add","path":"/telecom","value":[null]},{"op":"replace","path":"/telecom/0","value":{"value":"1"}}]`,
			`{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"Smith","given":["Ann","Beth"]}],"a/b":{"m~n":1.50},"telecom":[{"value":"1"}]}`},
		{"empty array moved, then filled", `[{"op":"add","path":"/telecom","value":[]},{"op":"move","from":"/telecom","path":"/address"},{"op":"add","path":"/address/-","value":{"city":"Leeds"}}]`,
			`{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"Smith","given":["Ann","Beth"]}],"a/b":{"m~n":1.50},"address":[{"city":"Leeds"}]}`},
		{"value holding an array a removal emptied, moved", `[{"op":"remove","path":"/name/0/given/1"},{"op":"remove","path":"/name/0/given/0"},{"op":"move","from":"/name/0","path":"/name/-"}]`,
			`{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"Smith"}],"a/b":{"m~n":1.50}}`},
		{"value holding an array a removal emptied, copied", `[{"op":"remove","path":"/name/0/given/1"},{"op":"remove","path":"/name/0/given/0"},{"op":"copy","from":"/name/0","path":"/name/-"}]`,
			`{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"Smith"},{"family":"Smith"}],"a/b":{"m~n":1.50}}`},
		{"PDS wrapper", `{"patches":[{"op":"remove","path":"/a~1b"}]}`,
			`{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"Smith","given":["Ann","Beth"]}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := patch.JSONPatch([]byte(doc), []byte(tt.ops))
			if err != nil {
				t.Fatal(err)
			}
			if !sameJSON(t, got, tt.want) {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			if tt.name == "decimal kept as written" && !strings.Contains(string(got), "1.50") {
				t.Errorf("1.50 lost its written precision: %s", got)
			}
		})
	}
}

func TestJSONPatchErrors(t *testing.T) {
	const doc = `{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"Smith","given":["Ann"]}]}`
	tests := []struct {
		name, ops string
		kind      patch.Kind
		op        int
		path      string
	}{
		{"not JSON", `[{"op":`, patch.Malformed, -1, ""},
		{"not an array", `{"op":"remove","path":"/active"}`, patch.Malformed, -1, ""},
		{"operation not an object", `["remove"]`, patch.Malformed, 0, ""},
		{"op named twice", `[{"op":"add","path":"/gender","value":"male","op":"remove"}]`, patch.Malformed, -1, ""},
		{"value member named twice", `[{"op":"add","path":"/maritalStatus","value":{"text":"a","text":"b"}}]`, patch.Malformed, -1, ""},
		{"PDS form member named twice", `{"patches":[],"patches":[{"op":"remove","path":"/active"}]}`, patch.Malformed, -1, ""},
		{"unknown op", `[{"op":"delete","path":"/active"}]`, patch.Malformed, 0, ""},
		{"no path", `[{"op":"remove"}]`, patch.Malformed, 0, ""},
		{"no value", `[{"op":"remove","path":"/active"},{"op":"add","path":"/gender"}]`, patch.Malformed, 1, "/gender"},
		{"no from", `[{"op":"copy","path":"/gender"}]`, patch.Malformed, 0, "/gender"},
		{"pointer without slash", `[{"op":"remove","path":"active"}]`, patch.Malformed, 0, "active"},
		{"bad escape", `[{"op":"remove","path":"/a~2b"}]`, patch.Malformed, 0, "/a~2b"},
		{"move into own child", `[{"op":"move","from":"/name","path":"/name/0/x"}]`, patch.Malformed, 0, "/name/0/x"},
		{"missing member", `[{"op":"remove","path":"/gender"}]`, patch.Inapplicable, 0, "/gender"},
		{"missing parent", `[{"op":"add","path":"/contact/0/gender","value":"male"}]`, patch.Inapplicable, 0, "/contact/0/gender"},
		{"index out of range", `[{"op":"replace","path":"/name/1","value":{}}]`, patch.Inapplicable, 0, "/name/1"},
		{"add past the end", `[{"op":"add","path":"/name/2","value":{}}]`, patch.Inapplicable, 0, "/name/2"},
		{"leading zero index", `[{"op":"remove","path":"/name/00"}]`, patch.Inapplicable, 0, "/name/00"},
		{"remove -", `[{"op":"remove","path":"/name/-"}]`, patch.Inapplicable, 0, "/name/-"},
		{"through a primitive", `[{"op":"add","path":"/active/x","value":1}]`, patch.Inapplicable, 0, "/active/x"},
		{"remove the document", `[{"op":"remove","path":""}]`, patch.Inapplicable, 0, ""},
		{"test fails", `[{"op":"replace","path":"/active","value":false},{"op":"test","path":"/name/0/family","value":"Jones"}]`, patch.TestFailed, 1, "/name/0/family"},
		{"test on a missing path", `[{"op":"test","path":"/gender","value":"male"}]`, patch.TestFailed, 0, "/gender"},
		{"test string is not number", `[{"op":"test","path":"/id","value":1}]`, patch.TestFailed, 0, "/id"},
		{"empty array value", `[{"op":"add","path":"/gender","value":"male"},{"op":"add","path":"/telecom","value":[]}]`, patch.InvalidValue, 1, "/telecom"},
		{"empty object value", `[{"op":"add","path":"/maritalStatus","value":{}}]`, patch.InvalidValue, 0, "/maritalStatus"},
		{"empty object in an array value", `[{"op":"replace","path":"/name","value":[{"family":"Jones"},{}]}]`, patch.InvalidValue, 0, "/name"},
		{"empty array in an object value", `[{"op":"add","path":"/name/-","value":{"family":"Jones","given":[]}}]`, patch.InvalidValue, 0, "/name/-"},
		{"empty object filled then emptied", `[{"op":"add","path":"/maritalStatus","value":{}},{"op":"add","path":"/maritalStatus/text","value":"x"},{"op":"remove","path":"/maritalStatus/text"}]`, patch.InvalidValue, 0, "/maritalStatus"},
		// A copy or move writes the value it takes: an empty one still
		// empty at the end is refused, naming the copy or move, though
		// the source is filled afterwards.
		{"empty array copied, source filled", `[{"op":"add","path":"/telecom","value":[]},{"op":"copy","from":"/telecom","path":"/address"},{"op":"add","path":"/telecom/-","value":{"value":"1"}}]`, patch.InvalidValue, 1, "/address"},
		{"empty object copied, source filled", `[{"op":"add","path":"/maritalStatus","value":{}},{"op":"copy","from":"/maritalStatus","path":"/name/0/period"},{"op":"add","path":"/maritalStatus/text","value":"x"}]`, patch.InvalidValue, 1, "/name/0/period"},
		{"empty array inside a copied value", `[{"op":"add","path":"/name/0/prefix","value":[]},{"op":"copy","from":"/name/0","path":"/name/-"},{"op":"add","path":"/name/0/prefix/-","value":"Dr"}]`, patch.InvalidValue, 1, "/name/-"},
		{"emptied array copied", `[{"op":"remove","path":"/name/0/given/0"},{"op":"copy","from":"/name/0/given","path":"/name/0/prefix"}]`, patch.InvalidValue, 1, "/name/0/prefix"},
		{"empty array moved, source written again", `[{"op":"add","path":"/telecom","value":[]},{"op":"move","from":"/telecom","path":"/address"},{"op":"add","path":"/telecom","value":[{"value":"1"}]}]`, patch.InvalidValue, 1, "/address"},
		// An array of nulls alone has no item: dropped, it would remove
		// the given names it replaced.
		{"array of nulls replaces an array", `[{"op":"replace","path":"/name/0/given","value":[null]}]`, patch.InvalidValue, 0, "/name/0/given"},
		{"array of nulls added", `[{"op":"add","path":"/telecom","value":[null,null]}]`, patch.InvalidValue, 0, "/telecom"},
		{"array of nulls in a value", `[{"op":"add","path":"/name/-","value":{"family":"Jones","given":[null]}}]`, patch.InvalidValue, 0, "/name/-"},
		{"emptied array moved", `[{"op":"remove","path":"/name/0/given/0"},{"op":"move","from":"/name/0/given","path":"/name/0/prefix"}]`, patch.InvalidValue, 1, "/name/0/prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := patch.JSONPatch([]byte(doc), []byte(tt.ops))
			if err == nil {
				t.Fatalf("no error; result %s", got)
			}
			wantError(t, err, tt.kind, tt.op, tt.path)
		})
	}
}

// TestJSONPatchPDS applies the JSON Patch examples of the NHS PDS FHIR API
// to the sandbox patient they are written for; each result must decode as a
// Patient.
func TestJSONPatchPDS(t *testing.T) {
	patient, err := os.ReadFile(filepath.Join("testdata", "pds", "Patient.json"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file  string
		check func(p *fhir.Patient) bool
		kind  patch.Kind // the error expected, or 0
	}{
		{"add-deceased-date-time", func(p *fhir.Patient) bool { return p.DeceasedDateTime.Get() == "2010-10-22T00:00:00+00:00" }, 0},
		{"add-extension", func(p *fhir.Patient) bool { return len(p.Extension) == 9 }, 0},
		{"add-name", func(p *fhir.Patient) bool { return len(p.Name) == 2 && p.Name[1].Family.Get() == "Bloggs" }, 0},
		{"delete-extension", func(p *fhir.Patient) bool {
			return len(p.Extension) == 7 && !strings.Contains(p.Extension[1].Url, "PreferredDispenser")
		}, 0},
		{"delete-gender", func(p *fhir.Patient) bool { return p.Gender == nil }, 0},
		{"delete-name", func(p *fhir.Patient) bool { return len(p.Name) == 0 }, 0},
		// The test names a period that the sandbox patient does not have.
		{"delete-name-alternative", nil, patch.TestFailed},
		{"update-address", func(p *fhir.Patient) bool {
			return p.Address[0].Line[0].Get() == "2 Whitehall Quay" && p.Address[0].PostalCode.Get() == "LS1 4BU"
		}, 0},
		{"update-address-alternative", func(p *fhir.Patient) bool { return len(p.Address[0].Line) == 3 }, 0},
		{"update-extension", func(p *fhir.Patient) bool {
			return len(p.Extension[3].Extension) == 1 && p.Extension[3].Extension[0].Url == "deathNotificationStatus"
		}, 0},
		{"update-gender", func(p *fhir.Patient) bool { return p.Gender.Get() == "male" }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			ops, err := os.ReadFile(filepath.Join("testdata", "pds", "PatientPatch", tt.file+".json"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := patch.JSONPatch(patient, ops)
			if tt.kind != 0 {
				var pe *patch.Error
				if !errors.As(err, &pe) || pe.Kind != tt.kind {
					t.Fatalf("error %v, want kind %d", err, tt.kind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			res, err := fhirjson.UnmarshalAs(got, "Patient")
			if err != nil {
				t.Fatalf("the patched patient does not decode: %v", err)
			}
			if !tt.check(res.(*fhir.Patient)) {
				t.Errorf("patched patient not as expected: %s", got)
			}
		})
	}
}

// A JSON Patch whose copies double the document with each operation stops
// at the result limit instead of exhausting memory.
func TestJSONPatchCopyDoublingIsTooCostly(t *testing.T) {
	ops := `[{"op":"add","path":"/x","value":[]}` + strings.Repeat(`,{"op":"copy","from":"","path":"/x/-"}`, 30) + `]`
	_, err := patch.JSONPatch([]byte(`{"resourceType":"Patient","id":"a"}`), []byte(ops))
	var pe *patch.Error
	if !errors.As(err, &pe) || pe.Kind != patch.TooCostly {
		t.Fatalf("JSONPatch error = %v, want a TooCostly *patch.Error", err)
	}
	many := `[` + strings.TrimSuffix(strings.Repeat(`{"op":"test","path":"/id","value":"a"},`, 1001), ",") + `]`
	if _, err := patch.JSONPatch([]byte(`{"resourceType":"Patient","id":"a"}`), []byte(many)); !errors.As(err, &pe) || pe.Kind != patch.TooCostly {
		t.Fatalf("JSONPatch of 1001 operations error = %v, want TooCostly", err)
	}
}

// A number beyond a float64 in a patch is a JSON number like any other,
// kept as written.
func TestJSONPatchNumberBeyondFloat64(t *testing.T) {
	got, err := patch.JSONPatch([]byte(`{"resourceType":"Observation","id":"o1"}`),
		[]byte(`[{"op":"add","path":"/valueQuantity","value":{"value":1e400}}]`))
	if err != nil || !strings.Contains(string(got), `"value":1e400`) {
		t.Errorf("got %s, %v; want the value 1e400", got, err)
	}
}

// test compares numbers by value, however they are written, and a number
// of a million digits as quickly as its text.
func TestJSONPatchTestNumbers(t *testing.T) {
	long := "1" + strings.Repeat("0", 1_000_000)
	tests := []struct {
		stored, tested string
		equal          bool
	}{
		{"1.50", "1.5", true},
		{"1.50", "15e-1", true},
		{"100", "1E2", true},
		{"100", "1e+2", true},
		{"0", "-0.0", true},
		{"0.001", "1e-3", true},
		{"-2", "2", false},
		{"1.5", "1.05", false},
		{"10", "1", false},
		{long, long, true},
		{long, "1e1000000", true},
		{long, long + "1", false},
	}
	for _, tt := range tests {
		doc := `{"resourceType":"Observation","id":"o1","valueQuantity":{"value":` + tt.stored + `}}`
		_, err := patch.JSONPatch([]byte(doc), []byte(`[{"op":"test","path":"/valueQuantity/value","value":`+tt.tested+`}]`))
		if got := err == nil; got != tt.equal {
			t.Errorf("test %.20s against %.20s: equal %v (%v), want %v", tt.tested, tt.stored, got, err, tt.equal)
		}
	}
}
