package fhirjson_test

import (
	"os"
	"path/filepath"
	"testing"

	"carefhir/fhir/fhirjson"
)

var benchFiles = []struct{ name, file string }{
	{"Patient", "Patient-example.json"},
	{"CarePlan", "CarePlan-example.json"},
}

func readExample(b *testing.B, file string) []byte {
	b.Helper()
	data, err := os.ReadFile(filepath.Join(examplesDir, file))
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func BenchmarkUnmarshal(b *testing.B) {
	for _, bf := range benchFiles {
		data := readExample(b, bf.file)
		b.Run(bf.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := fhirjson.Unmarshal(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkMarshal(b *testing.B) {
	for _, bf := range benchFiles {
		data := readExample(b, bf.file)
		res, err := fhirjson.Unmarshal(data)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bf.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := fhirjson.Marshal(res); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
