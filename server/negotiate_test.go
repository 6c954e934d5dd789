package server

import (
	"errors"
	"net/http"
	"testing"
)

// FuzzNegotiate checks that any _format and Accept header give a media
// type the server writes, or a 406, and never a panic.
//
//	go test ./server -run '^$' -fuzz FuzzNegotiate -fuzztime 30s
func FuzzNegotiate(f *testing.F) {
	for _, seed := range [][2]string{
		{"", "application/fhir+json;q=0.5, application/fhir+xml"},
		{"", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		{"", "application/fhir+json; fhirVersion=3.0, application/json;q=0.1"},
		{"", "application/fhir+xml;q=1.5, application/fhir+json;q=NaN, */*;q=-1"},
		{"json;fhirVersion=3.0", ""},
		{"xml;charset=utf-8", "application/json"},
		{"application/fhir+json;;", ";q=0"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, format, accept string) {
		mt, err := responseType(format, accept)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status != http.StatusNotAcceptable {
				t.Fatalf("responseType(%q, %q): %v, want a 406", format, accept, err)
			}
			return
		}
		if _, ok := contentTypes[mt]; !ok {
			t.Fatalf("responseType(%q, %q) = %q, not a type the server writes", format, accept, mt)
		}
	})
}
