package fhirpath

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// BenchmarkRepeat walks the items of a Questionnaire of 2,000 items, 40
// groups of 49 questions, with repeat(): each is output once, so the cost
// of recognising an item already output decides how the walk grows.
func BenchmarkRepeat(b *testing.B) {
	var groups strings.Builder
	for g := range 40 {
		if g > 0 {
			groups.WriteString(",")
		}
		fmt.Fprintf(&groups, `{"linkId":"g%d","type":"group","item":[`, g)
		for q := range 49 {
			if q > 0 {
				groups.WriteString(",")
			}
			fmt.Fprintf(&groups, `{"linkId":"g%d.q%d","type":"string"}`, g, q)
		}
		groups.WriteString("]}")
	}
	q, err := DecodeJSON([]byte(`{"resourceType":"Questionnaire","status":"active","item":[` + groups.String() + `]}`))
	if err != nil {
		b.Fatal(err)
	}
	e := MustParse("Questionnaire.repeat(item).linkId")
	b.ReportAllocs()
	for b.Loop() {
		got, err := e.Evaluate(q, nil)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != 2000 {
			b.Fatalf("%d linkIds, want 2,000", len(got))
		}
	}
}
