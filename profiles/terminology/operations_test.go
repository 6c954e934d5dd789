package terminology

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// colours is a small hierarchical CodeSystem: warm holds red and orange
// (nested), cool is given as a parent property of blue.
const colours = `{"resourceType":"CodeSystem","url":"http://example.org/colours","name":"Colours","version":"1.0","content":"complete",
 "concept":[
  {"code":"warm","display":"Warm colours","concept":[
    {"code":"red","display":"Bright red","designation":[{"language":"fr","value":"Rouge"}],
     "property":[{"code":"inactive","valueBoolean":false},{"code":"rank","valueInteger":1}]},
    {"code":"orange","display":"Orange"}]},
  {"code":"cool","display":"Cool colours"},
  {"code":"blue","display":"Sky blue","property":[{"code":"parent","valueCode":"cool"}]}]}`

const warm = `{"resourceType":"ValueSet","url":"http://example.org/vs/warm","compose":{"include":[
 {"system":"http://example.org/colours","filter":[{"property":"concept","op":"is-a","value":"warm"}]}]}}`

func TestWith(t *testing.T) {
	base, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := base.Expand("http://example.org/vs/warm"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("base Expand: %v, want ErrNotFound", err)
	}
	withCS, err := base.With(json.RawMessage(colours))
	if err != nil {
		t.Fatal(err)
	}
	if !withCS.HasCodeSystem("http://example.org/colours") || base.HasCodeSystem("http://example.org/colours") {
		t.Errorf("HasCodeSystem: base %v, with %v", base.HasCodeSystem("http://example.org/colours"), withCS.HasCodeSystem("http://example.org/colours"))
	}
	both, err := withCS.With(json.RawMessage(warm))
	if err != nil {
		t.Fatal(err)
	}
	exp, err := both.Expand("http://example.org/vs/warm")
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, c := range exp.Contains {
		codes = append(codes, c.Code)
	}
	if want := []string{"orange", "red", "warm"}; !reflect.DeepEqual(codes, want) {
		t.Errorf("expansion %v, want %v", codes, want)
	}
	if withCS.HasValueSet("http://example.org/vs/warm") {
		t.Error("With changed its receiver")
	}
	if _, err := base.With(json.RawMessage(`{"resourceType":`)); err == nil {
		t.Error("With of bad JSON succeeded")
	}
}

func TestFilter(t *testing.T) {
	concepts := []Concept{
		{Code: "male", Display: "Male"},
		{Code: "female", Display: "Female"},
		{Code: "unk", Display: "Not known (unspecified)"},
	}
	tests := []struct {
		name, text string
		want       []string
	}{
		{"empty", "", []string{"male", "female", "unk"}},
		{"word start", "fem", []string{"female"}},
		{"whole word only matches its own", "male", []string{"male"}},
		{"case ignored", "MALE", []string{"male"}},
		{"every word", "not unsp", []string{"unk"}},
		{"one word missing", "not male", nil},
		{"code prefix", "un", []string{"unk"}},
		{"inside a word", "ale", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, c := range Filter(concepts, tt.text) {
				got = append(got, c.Code)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Filter(%q) = %v, want %v", tt.text, got, tt.want)
			}
		})
	}
}

func TestLookupIn(t *testing.T) {
	type prop struct{ code, typ, value string }
	tests := []struct {
		name, code  string
		display     string
		designation string
		props       []prop
		err         error
	}{
		{name: "nested child with properties", code: "red", display: "Bright red", designation: "Rouge",
			props: []prop{{"inactive", "Boolean", "false"}, {"rank", "Integer", "1"}, {"parent", "Code", `"warm"`}}},
		{name: "nested parent", code: "warm", display: "Warm colours",
			props: []prop{{"child", "Code", `"red"`}, {"child", "Code", `"orange"`}}},
		{name: "parent property", code: "blue", display: "Sky blue", props: []prop{{"parent", "Code", `"cool"`}}},
		{name: "child by parent property", code: "cool", display: "Cool colours", props: []prop{{"child", "Code", `"blue"`}}},
		{name: "unknown code", code: "green", err: ErrUnknownCode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := LookupIn(json.RawMessage(colours), tt.code)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("LookupIn(%s) error %v, want %v", tt.code, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Name != "Colours" || d.Version != "1.0" || d.System != "http://example.org/colours" || d.Display != tt.display {
				t.Errorf("details %+v", d)
			}
			if tt.designation != "" && (len(d.Designations) != 1 || d.Designations[0].Value != tt.designation || d.Designations[0].Language != "fr") {
				t.Errorf("designations %+v", d.Designations)
			}
			var got []prop
			for _, p := range d.Properties {
				got = append(got, prop{p.Code, p.Type, string(p.Value)})
			}
			if !reflect.DeepEqual(got, tt.props) {
				t.Errorf("properties %v, want %v", got, tt.props)
			}
		})
	}
	fragment := `{"resourceType":"CodeSystem","url":"http://example.org/f","content":"fragment","concept":[{"code":"a"}]}`
	if _, err := LookupIn(json.RawMessage(fragment), "b"); !errors.Is(err, ErrCodeSystemUnavailable) {
		t.Errorf("code missing from a fragment: %v, want ErrCodeSystemUnavailable", err)
	}
	if _, err := LookupIn(json.RawMessage(`[]`), "a"); err == nil {
		t.Error("LookupIn of an array succeeded")
	}
}
