package synth

import (
	"fmt"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
)

// Entry is one generated resource.
type Entry struct {
	Type string
	ID   string
	JSON []byte
}

// All returns the whole set opts selects, in the order Generate emits it.
// It holds the set in memory: for tests and small sets.
func All(opts Options) ([]Entry, error) {
	var entries []Entry
	err := Generate(opts, func(typ, id string, json []byte) error {
		entries = append(entries, Entry{Type: typ, ID: id, JSON: json})
		return nil
	})
	return entries, err
}

// Transaction returns a transaction Bundle that creates or replaces each
// entry at its Type/ID with PUT, in the order given.
func Transaction(entries []Entry) ([]byte, error) {
	b := &fhir.Bundle{Type: fhir.NewCode("transaction")}
	for _, e := range entries {
		res, err := fhirjson.UnmarshalAs(e.JSON, e.Type)
		if err != nil {
			return nil, fmt.Errorf("synth: transaction entry %s/%s: %w", e.Type, e.ID, err)
		}
		url := e.Type + "/" + e.ID
		b.Entry = append(b.Entry, &fhir.BundleEntry{
			Resource: res,
			Request:  &fhir.BundleEntryRequest{Method: fhir.NewCode("PUT"), Url: fhir.NewUri(url)},
		})
	}
	out, err := fhirjson.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("synth: encode transaction: %w", err)
	}
	return out, nil
}
