package operation_test

import (
	"testing"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/operation"
)

// TestTextOfEveryPrimitive: a parameter's value reads as written whichever
// primitive type its value[x] is.
func TestTextOfEveryPrimitive(t *testing.T) {
	for _, tt := range []struct{ value, want string }{
		{`"valueInstant":"2026-01-01T00:00:00.123Z"`, "2026-01-01T00:00:00.123Z"},
		{`"valueDateTime":"2026-01-01T10:00:00+01:00"`, "2026-01-01T10:00:00+01:00"},
		{`"valueDate":"2026-01"`, "2026-01"},
		{`"valueTime":"09:30:00"`, "09:30:00"},
		{`"valueDecimal":1.50`, "1.50"},
		{`"valueInteger":-3`, "-3"},
		{`"valuePositiveInt":7`, "7"},
		{`"valueUnsignedInt":0`, "0"},
		{`"valueBoolean":false`, "false"},
		{`"valueString":"s"`, "s"},
		{`"valueUri":"urn:x"`, "urn:x"},
		{`"valueUrl":"https://example.org/a"`, "https://example.org/a"},
		{`"valueCanonical":"https://example.org/Q|1"`, "https://example.org/Q|1"},
		{`"valueCode":"c"`, "c"},
		{`"valueId":"id-1"`, "id-1"},
		{`"valueOid":"urn:oid:1.2.3"`, "urn:oid:1.2.3"},
		{`"valueUuid":"urn:uuid:0b6a4b1e-7b5a-4c38-9d8e-2b1c1a0f2f11"`, "urn:uuid:0b6a4b1e-7b5a-4c38-9d8e-2b1c1a0f2f11"},
		{`"valueMarkdown":"*m*"`, "*m*"},
		{`"valueBase64Binary":"aGk="`, "aGk="},
		{`"valueReference":{"reference":"Patient/p1"}`, "Patient/p1"},
		{`"valueCoding":{"system":"http://x.org","code":"c"}`, "http://x.org|c"},
		{`"valueQuantity":{"value":1}`, ""},
	} {
		res, err := fhirjson.UnmarshalAs([]byte(`{"resourceType":"Parameters","parameter":[{"name":"p",`+tt.value+`}]}`), "Parameters")
		if err != nil {
			t.Fatalf("%s: %v", tt.value, err)
		}
		inv := &operation.Invocation{Parameters: res.(*fhir.Parameters)}
		if got, err := inv.Text("p"); err != nil || got != tt.want {
			t.Errorf("%s: Text = %q, %v; want %q", tt.value, got, err, tt.want)
		}
		if got := inv.Texts("p"); tt.want != "" && (len(got) != 1 || got[0] != tt.want) {
			t.Errorf("%s: Texts = %q; want [%q]", tt.value, got, tt.want)
		}
	}
}
