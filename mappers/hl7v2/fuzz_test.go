package hl7v2

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"carefhir/fhir/fhirjson"
)

// FuzzParse feeds any bytes to the parser and the importer: neither may
// panic, and every message gets an acknowledgement that parses and quotes
// the message's control id in MSA-2; every Bundle is valid FHIR JSON.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for i, msg := range Split(data) {
			if i >= 3 {
				break
			}
			f.Add(msg)
		}
	}
	// Found by fuzzing: a birth date in year 0, which FHIR has not.
	f.Add([]byte("MSH|^~!\"|||||||ADT^A01\"|0\rPID|||9990000018^^^^NH\"||00000000000000000000||0000"))
	// Found by fuzzing: a control id with a space before a sub-component.
	f.Add([]byte("MSH|^~\\&|PAS|RXX|CAREFHIR|PCN01|20260303120000||ADT^A40^ADT_A39|MSG000 &0000000000000000000000000000\rPID|0||9990000034^^^000^NH||000000000000000000000000||00010101000||||||||||||||||||||||&000000\rMRG|9990000042^^^000^NH&000000000000"))
	// Found by fuzzing: spaces before a control id.
	f.Add([]byte("MSH|!\"#$|0||0|0|0|0|| 0"))
	// Found by fuzzing: a segment of a name alone, MSH, after the first.
	f.Add([]byte("MSH%!\"#$\nMSH"))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		im := Import(data)
		ack, err := Parse(im.Acknowledge(nil, now))
		if err != nil {
			t.Fatalf("the acknowledgement does not parse: %v", err)
		}
		msa := ack.Segment("MSA")
		if msa == nil {
			t.Fatal("no MSA in the acknowledgement")
		}
		if im.Message != nil && msa.Get(2, 1) != im.ControlID {
			t.Errorf("MSA-2 = %q, want %q", msa.Get(2, 1), im.ControlID)
		}
		if im.Bundle == nil {
			return
		}
		if im.Failed() {
			t.Fatal("a Bundle with errors")
		}
		js, err := fhirjson.Marshal(im.Bundle)
		if err != nil {
			t.Fatalf("the Bundle does not encode: %v", err)
		}
		if _, err := fhirjson.Unmarshal(js); err != nil {
			t.Fatalf("the Bundle is not valid FHIR: %v", err)
		}
	})
}
