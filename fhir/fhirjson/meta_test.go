package fhirjson_test

import (
	"reflect"
	"testing"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
)

func TestFields(t *testing.T) {
	tests := []struct {
		name string
		typ  reflect.Type
		elem string
		want fhirjson.Field // Index is not compared
	}{
		{"primitive", reflect.TypeFor[fhir.Patient](), "birthDate", fhirjson.Field{Name: "birthDate", Kind: fhirjson.Primitive, Type: reflect.TypeFor[fhir.Date]()}},
		{"choice variant", reflect.TypeFor[fhir.Patient](), "deceasedDateTime", fhirjson.Field{Name: "deceasedDateTime", Kind: fhirjson.Primitive, Choice: "deceased[x]", Type: reflect.TypeFor[fhir.DateTime]()}},
		{"repeated complex", reflect.TypeFor[fhir.Patient](), "name", fhirjson.Field{Name: "name", Kind: fhirjson.Complex, Repeated: true, Type: reflect.TypeFor[fhir.HumanName]()}},
		{"contained resources", reflect.TypeFor[fhir.Patient](), "contained", fhirjson.Field{Name: "contained", Kind: fhirjson.Resource, Repeated: true}},
		{"element id", reflect.TypeFor[fhir.HumanName](), "id", fhirjson.Field{Name: "id", Kind: fhirjson.ElementID}},
		{"extension url", reflect.TypeFor[fhir.Extension](), "url", fhirjson.Field{Name: "url", Kind: fhirjson.URL}},
		{"primitive id", reflect.TypeFor[fhir.Date](), "id", fhirjson.Field{Name: "id", Kind: fhirjson.ElementID}},
		{"primitive extension", reflect.TypeFor[fhir.Date](), "extension", fhirjson.Field{Name: "extension", Kind: fhirjson.Complex, Repeated: true, Type: reflect.TypeFor[fhir.Extension]()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields, ok := fhirjson.Fields(tt.typ)
			if !ok {
				t.Fatalf("Fields(%s) not found", tt.typ)
			}
			for _, f := range fields {
				if f.Name != tt.elem {
					continue
				}
				if tt.typ.Field(f.Index).Tag.Get("fhir") == "" {
					t.Errorf("Index %d is not the field of %q", f.Index, f.Name)
				}
				f.Index = 0
				if f != tt.want {
					t.Errorf("got %+v, want %+v", f, tt.want)
				}
				return
			}
			t.Errorf("no field %q in %v", tt.elem, fields)
		})
	}
	if _, ok := fhirjson.Fields(reflect.TypeFor[string]()); ok {
		t.Error("Fields(string) reported a generated type")
	}
}

func TestNewPrimitive(t *testing.T) {
	tests := []struct {
		name    string
		typ     reflect.Type
		text    string
		want    any    // the value held, for valid text
		wantErr string // the error, for invalid text
	}{
		{"decimal keeps its text", reflect.TypeFor[fhir.Decimal](), "1.50", "1.50", ""},
		{"boolean", reflect.TypeFor[fhir.Boolean](), "false", false, ""},
		{"integer", reflect.TypeFor[fhir.Integer](), "-12", int64(-12), ""},
		{"date", reflect.TypeFor[fhir.Date](), "2024-02", "2024-02", ""},
		{"bad boolean", reflect.TypeFor[fhir.Boolean](), "True", nil, `invalid boolean "True"`},
		{"negative positiveInt", reflect.TypeFor[fhir.PositiveInt](), "0", nil, `invalid positiveInt "0": must be positive`},
		{"bad decimal", reflect.TypeFor[fhir.Decimal](), ".5", nil, `invalid decimal ".5"`},
		{"bad code", reflect.TypeFor[fhir.Code](), " a", nil, `invalid code " a"`},
		{"not a primitive", reflect.TypeFor[fhir.HumanName](), "x", nil, "fhir.HumanName is not a primitive type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := fhirjson.NewPrimitive(tt.typ, tt.text)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Elem().FieldByName("Value").Elem().Interface(); got != tt.want {
				t.Errorf("value %v, want %v", got, tt.want)
			}
			text, ok, err := fhirjson.PrimitiveText(p)
			if err != nil || !ok || text != tt.text {
				t.Errorf("PrimitiveText = %q, %v, %v; want %q", text, ok, err, tt.text)
			}
		})
	}
}

func TestPrimitiveText(t *testing.T) {
	tests := []struct {
		name    string
		p       any
		text    string
		ok      bool
		wantErr bool
	}{
		{"nil", (*fhir.Date)(nil), "", false, false},
		{"no value", &fhir.Date{Id: new(string)}, "", false, false},
		{"integer", fhir.NewUnsignedInt(7), "7", true, false},
		{"out of range", fhir.NewPositiveInt(0), "", false, true},
		{"invalid string", fhir.NewDateTime("now"), "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text, ok, err := fhirjson.PrimitiveText(reflect.ValueOf(tt.p))
			if text != tt.text || ok != tt.ok || (err != nil) != tt.wantErr {
				t.Errorf("got %q, %v, %v; want %q, %v, error %v", text, ok, err, tt.text, tt.ok, tt.wantErr)
			}
		})
	}
}
