package fhirxml_test

import (
	"os"
	"testing"

	"carefhir/fhir/fhirjson"
	"carefhir/fhir/fhirxml"
)

// patientXML returns the R4 example Patient as XML.
func patientXML(b *testing.B) []byte {
	data, err := os.ReadFile(r4Dir + "/Patient-example.json")
	if err != nil {
		b.Fatal(err)
	}
	res, err := fhirjson.Unmarshal(data)
	if err != nil {
		b.Fatal(err)
	}
	out, err := fhirxml.Marshal(res)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

func BenchmarkUnmarshalPatient(b *testing.B) {
	data := patientXML(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fhirxml.Unmarshal(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalPatient(b *testing.B) {
	res, err := fhirxml.Unmarshal(patientXML(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fhirxml.Marshal(res); err != nil {
			b.Fatal(err)
		}
	}
}
