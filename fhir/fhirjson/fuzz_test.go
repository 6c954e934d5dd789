package fhirjson_test

import (
	"bytes"
	"os"
	"testing"

	"carefhir/fhir/fhirjson"
)

// FuzzUnmarshal checks that decoding never panics and that whatever decodes
// also encodes, decodes again, and encodes to the same bytes.
func FuzzUnmarshal(f *testing.F) {
	for _, file := range exampleFiles(f) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		if len(data) < 8<<10 {
			f.Add(data)
		}
	}
	f.Add([]byte(`{"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,{"id":"x"}]}]}`))
	f.Add([]byte(`{"resourceType":"Observation","status":"final","code":{"text":"w"},"valueQuantity":{"value":72.50}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := fhirjson.Unmarshal(data)
		if err != nil {
			return
		}
		out, err := fhirjson.Marshal(res)
		if err != nil {
			t.Fatalf("Marshal after a successful Unmarshal: %v", err)
		}
		res2, err := fhirjson.Unmarshal(out)
		if err != nil {
			t.Fatalf("Unmarshal of Marshal output %s: %v", out, err)
		}
		out2, err := fhirjson.Marshal(res2)
		if err != nil {
			t.Fatalf("second Marshal: %v", err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("encoding not stable:\n%s\n%s", out, out2)
		}
	})
}
