package fhirpath

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
)

const observation = `{"resourceType":"Observation","id":"o","status":"final",
	"code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},
	"subject":{"reference":"Patient/p1"},
	"effectiveDateTime":"2016-03-28T10:00:00+01:00",
	"valueQuantity":{"value":185.50,"unit":"lbs","system":"http://unitsofmeasure.org","code":"[lb_av]"},
	"component":[{"code":{"text":"a"},"valueString":"x"},{"code":{"text":"b"},"valueInteger":3}],
	"note":[{"text":"n1"}],
	"_status":{"extension":[{"url":"http://example.org/why","valueString":"checked"}]}}`

func TestEvaluate(t *testing.T) {
	res, err := DecodeJSON([]byte(observation))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, expr string
		want       string // items joined by "|"
	}{
		{"decimal kept exact", "Observation.value.value", "185.50"},
		{"decimal equality is exact", "Observation.value.value = 185.5", "true"},
		{"choice navigation", "Observation.value is Quantity", "true"},
		{"choice as", "(Observation.value as Quantity).code", "[lb_av]"},
		{"choice function", "Observation.value.ofType(Quantity).unit", "lbs"},
		{"choice in backbone", "Observation.component.value", "x|3"},
		{"choice type test", "Observation.component.value.ofType(integer)", "3"},
		{"quantity comparison", "Observation.value > 80 'kg'", "true"},
		{"quantity in compound UCUM units", "5.4 'mmol/L' = 5400 'umol/L'", "true"},
		{"quantity conversion", "1 'mg/dL'.toQuantity('g/L')", "0.01 'g/L'"},
		{"offset units do not convert", "37 'Cel' > 300 'K'", ""},
		{"UCUM year is not seconds", "1 'a' = 31557600 's'", ""},
		{"dateTime type", "Observation.effective is dateTime", "true"},
		{"dateTime with zone", "Observation.effective > @2016-03-28T09:30:00Z", "false"},
		{"dateTime zone normalised", "Observation.effective > @2016-03-28T08:30:00Z", "true"},
		{"primitive extension", "Observation.status.extension('http://example.org/why').value", "checked"},
		{"primitive value kept", "Observation.status", "final"},
		{"resolve stub", "Observation.subject.resolve() is Patient", "true"},
		{"resolve filter", "Observation.subject.where(resolve() is Group)", ""},
		{"other resource type", "Patient.name", ""},
		{"variables", "%ucum & ' ' & %`vs-observation-codes`", "http://unitsofmeasure.org http://hl7.org/fhir/ValueSet/observation-codes"},
		{"index", "Observation.component[1].code.text", "b"},
		{"descendants", "Observation.descendants().ofType(Coding).code", "29463-7"},
		{"missing element on descendants", "Observation.descendants().where(reference = 'Patient/p1').reference", "Patient/p1"},
		{"missing element on primitive descendants", "Observation.descendants().ofType(code).where(reference.exists())", ""},
		{"missing element on children", "Observation.children().ofType(string).reference", ""},
		{"missing element on one child", "Observation.children().where(display.exists())", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := MustParse(tt.expr).Evaluate(res, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(show(out), "|"); got != tt.want {
				t.Errorf("%s = %q, want %q", tt.expr, got, tt.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	res, err := DecodeJSON([]byte(observation))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, expr string
		parse      bool // a parse error, not an evaluation error
	}{
		{"unknown element", "Observation.valu", false},
		{"unknown element on primitive", "Observation.status.reference", false},
		{"choice by JSON name", "Observation.valueQuantity", false},
		{"unknown function", "Observation.frobnicate()", true},
		{"wrong arity", "Observation.where()", true},
		{"unterminated string", "Observation.status = 'final", true},
		{"singleton expected", "Observation.component.code.text.substring(1)", false},
		{"undefined variable", "%nope", false},
		{"unknown type", "Observation.value.ofType(Quantityy)", false},
		{"deep nesting", strings.Repeat("(", 1000) + "1" + strings.Repeat(")", 1000), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse(tt.expr)
			var se *SyntaxError
			if tt.parse {
				if !errors.As(err, &se) {
					t.Fatalf("Parse(%q) error = %v, want a *SyntaxError", tt.expr, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var ee *EvalError
			if _, err := e.Evaluate(res, nil); !errors.As(err, &ee) {
				t.Fatalf("Evaluate(%q) error = %v, want an *EvalError", tt.expr, err)
			}
		})
	}
}

func TestNewNode(t *testing.T) {
	contact, err := DecodeJSON([]byte(`{"name":{"family":"F"},"gender":"female"}`))
	if err != nil {
		t.Fatal(err)
	}
	n, err := NewNode(contact, "Patient.contact")
	if err != nil {
		t.Fatal(err)
	}
	out, err := MustParse("name.family & gender").Evaluate(n, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(show(out), "|"); got != "Ffemale" {
		t.Errorf("got %q", got)
	}
	if _, err := NewNode(contact, "Patient.nope"); err == nil {
		t.Error("NewNode accepted an unknown element path")
	}
}

// TestConcurrentEvaluate shares one Expression between goroutines; run
// with -race.
func TestConcurrentEvaluate(t *testing.T) {
	res, err := DecodeJSON([]byte(observation))
	if err != nil {
		t.Fatal(err)
	}
	e := MustParse("Observation.component.sort(-code.text).value.select($this.toString() + $index.toString())")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				out, err := e.Evaluate(res, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if got := strings.Join(show(out), "|"); got != "30|x1" {
					t.Errorf("got %q", got)
					return
				}
			}
		})
	}
	wg.Wait()
}

// A primitive element with only extensions (a null beside "_given", a
// data-absent-reason) has no value: where an operator or function takes
// the value of a single item it is empty, not an error, so that an
// invariant over it is evaluated.
func TestValuelessPrimitive(t *testing.T) {
	res, err := DecodeJSON([]byte(`{"resourceType":"Patient",
		"name":[{"given":[null,"Peter","James"],"_given":[{"extension":[{"url":"http://example.org/x","valueString":"v"}]},null,null]}],
		"_multipleBirthInteger":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ expr, want string }{
		{"Patient.name.given[0].startsWith('P')", ""},
		{"Patient.name.given[0].length()", ""},
		{"Patient.name.given[0].substring(0, 1)", ""},
		{"Patient.name.given[0].upper()", ""},
		{"Patient.name.given.join(',')", "Peter,James"},
		{"Patient.name.given[0] + 'c'", ""},
		{"Patient.name.given[0] & 'c'", "c"},
		{"Patient.name.given.select($this & '.')", ".|Peter.|James."},
		{"'abc'.substring(Patient.multipleBirth)", ""},
		{"Patient.multipleBirth + 1", ""},
		{"Patient.name.given[0].exists()", "true"},
		{"Patient.name.given[0].hasValue()", "false"},
	}
	for _, tt := range tests {
		out, err := MustParse(tt.expr).Evaluate(res, nil)
		if err != nil {
			t.Errorf("%s: %v", tt.expr, err)
			continue
		}
		if got := strings.Join(show(out), "|"); got != tt.want {
			t.Errorf("%s = %q, want %q", tt.expr, got, tt.want)
		}
	}
}

func TestPrimitiveAsSystem(t *testing.T) {
	res, err := DecodeJSON([]byte(`{"resourceType":"Patient","active":true,"gender":"male"}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, expr string
		strict     string // result without PrimitiveAsSystem
		loose      string // result with PrimitiveAsSystem
	}{
		{"boolean is Boolean", "Patient.active is Boolean", "false", "true"},
		{"boolean is FHIR.boolean", "Patient.active is FHIR.boolean", "true", "true"},
		{"boolean is System.Boolean", "Patient.active is System.Boolean", "false", "false"},
		{"code is String", "Patient.gender is String", "false", "true"},
		{"boolean is not String", "Patient.active is String", "false", "false"},
		{"complex type is not String", "Patient is String", "false", "false"},
		{"boolean as Boolean", "Patient.active.as(Boolean)", "", "true"},
		{"boolean as FHIR.boolean", "Patient.active.as(FHIR.boolean)", "true", "true"},
		{"code as string", "Patient.gender.as(string)", "", ""},
		{"boolean ofType String", "Patient.active.ofType(String)", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, loose := range []bool{false, true} {
				want := tt.strict
				if loose {
					want = tt.loose
				}
				out, err := MustParse(tt.expr).Evaluate(res, &Env{PrimitiveAsSystem: loose})
				if err != nil {
					t.Fatal(err)
				}
				if got := strings.Join(show(out), "|"); got != want {
					t.Errorf("PrimitiveAsSystem=%v: %s = %q, want %q", loose, tt.expr, got, want)
				}
			}
		})
	}
}

func TestElementTypes(t *testing.T) {
	for path, want := range map[string][]string{
		"Patient.identifier":            {"Identifier"},
		"Specimen.container.identifier": {"Identifier"},
		"Observation.code":              {"CodeableConcept"},
		"Composition.relatesTo.target":  {"Identifier", "Reference"},
		"Patient.contact.name.family":   {"string"},
		"Questionnaire.item.item.type":  {"code"},
		"Patient.shoeSize":              nil,
		"Spaceship.name":                nil,
	} {
		if got := ElementTypes(path); !slices.Equal(got, want) {
			t.Errorf("ElementTypes(%q) = %q, want %q", path, got, want)
		}
	}
}
