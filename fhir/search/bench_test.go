package search

import "testing"

func BenchmarkLoad(b *testing.B) {
	for b.Loop() {
		r, err := Load(testTypes)
		if err != nil {
			b.Fatal(err)
		}
		NewIndexer(r, FHIRPath, "")
	}
}

func BenchmarkIndexPatient(b *testing.B) {
	r, err := Load(testTypes)
	if err != nil {
		b.Fatal(err)
	}
	ix := NewIndexer(r, FHIRPath, "")
	for b.Loop() {
		if _, err := ix.IndexJSON("Patient", []byte(patientJSON)); err != nil {
			b.Fatal(err)
		}
	}
}
