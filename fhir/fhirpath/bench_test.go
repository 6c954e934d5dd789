package fhirpath

import (
	"os"
	"path/filepath"
	"testing"
)

func benchPatient(b *testing.B) any {
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "r4-examples", "Patient-example.json"))
	if err != nil {
		b.Fatal(err)
	}
	p, err := DecodeJSON(data)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func benchmarkExpr(b *testing.B, src string) {
	p := benchPatient(b)
	e := MustParse(src)
	if _, err := e.Evaluate(p, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Evaluate(p, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFamily(b *testing.B) { benchmarkExpr(b, "Patient.name.family") }

// BenchmarkSearchExpression evaluates the official Patient "phone" search
// parameter expression.
func BenchmarkSearchExpression(b *testing.B) {
	benchmarkExpr(b, "Patient.telecom.where(system='phone')")
}

// BenchmarkSearchReference evaluates the official Patient "organization"
// search parameter expression, which resolves references.
func BenchmarkSearchReference(b *testing.B) {
	benchmarkExpr(b, "Patient.managingOrganization.where(resolve() is Organization)")
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("Patient.name.where(use = 'official').family | Patient.telecom.where(system='phone').value"); err != nil {
			b.Fatal(err)
		}
	}
}
