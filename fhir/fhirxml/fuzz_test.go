package fhirxml_test

import (
	"bytes"
	"os"
	"testing"

	"carefhir/fhir/fhirjson"
	"carefhir/fhir/fhirxml"
)

// FuzzUnmarshal checks that decoding never panics and that whatever decodes
// also encodes, decodes again to the same resource, and encodes to the same
// bytes.
func FuzzUnmarshal(f *testing.F) {
	for _, file := range glob(f, ukCoreDir, "*.xml") {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		if len(data) < 8<<10 {
			f.Add(data)
		}
	}
	f.Add([]byte(patient(`<name id="n"><given value="a"/><given id="g"><extension url="http://x.org/e"><valueCode value="c"/></extension></given></name>`)))
	f.Add([]byte(patient(`<text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml">a &amp; <b>b</b></div></text>`)))
	f.Add([]byte(`<Observation xmlns="http://hl7.org/fhir"><status value="final"/><code><text value="w"/></code><valueQuantity><value value="72.50"/></valueQuantity></Observation>`))
	f.Add([]byte(`<Bundle xmlns="http://hl7.org/fhir"><entry><resource><Patient><contained><Organization/></contained></Patient></resource></entry></Bundle>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := fhirxml.Unmarshal(data)
		if err != nil {
			return
		}
		out, err := fhirxml.Marshal(res)
		if err != nil {
			t.Fatalf("Marshal after a successful Unmarshal: %v", err)
		}
		res2, err := fhirxml.Unmarshal(out)
		if err != nil {
			t.Fatalf("Unmarshal of Marshal output %s: %v", out, err)
		}
		out2, err := fhirxml.Marshal(res2)
		if err != nil {
			t.Fatalf("second Marshal: %v", err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("encoding not stable:\n%s\n%s", out, out2)
		}
		j1, err1 := fhirjson.Marshal(res)
		j2, err2 := fhirjson.Marshal(res2)
		if (err1 == nil) != (err2 == nil) || !bytes.Equal(j1, j2) {
			t.Fatalf("resource changed by a round trip:\n%s %v\n%s %v", j1, err1, j2, err2)
		}
		// The indented form is the same resource.
		pretty, err := fhirxml.MarshalIndent(res, "  ")
		if err != nil {
			t.Fatalf("MarshalIndent after a successful Marshal: %v", err)
		}
		res3, err := fhirxml.Unmarshal(pretty)
		if err != nil {
			t.Fatalf("Unmarshal of MarshalIndent output %s: %v", pretty, err)
		}
		if j3, err3 := fhirjson.Marshal(res3); (err1 == nil) != (err3 == nil) || !bytes.Equal(j1, j3) {
			t.Fatalf("resource changed by an indented round trip:\n%s %v\n%s %v", j1, err1, j3, err3)
		}
	})
}
