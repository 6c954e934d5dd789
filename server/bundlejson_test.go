package server

import (
	"encoding/json"
	"reflect"
	"testing"
)

// A Bundle written by encode is the JSON encoding/json writes for it.
func TestBundleEncode(t *testing.T) {
	total := 2
	patient := json.RawMessage(`{"resourceType":"Patient","id":"p1","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Ann &amp; Bo</div>"}}`)
	tests := []struct {
		name string
		b    bundle
	}{
		{"empty", bundle{ResourceType: "Bundle", ID: "b1", Type: "searchset", Total: &total}},
		{"searchset", bundle{ResourceType: "Bundle", ID: "b2", Type: "searchset", Link: []bundleLink{{"self", "http://x/fhir/Patient?a=b&c=d"}},
			Entry: []bundleEntry{
				{FullURL: "http://x/fhir/Patient/p1", Resource: patient, Search: &entrySearch{Mode: "match"}},
				{Resource: json.RawMessage(`{"resourceType":"OperationOutcome"}`), Search: &entrySearch{Mode: "outcome"}},
			}}},
		{"transaction-response", bundle{ResourceType: "Bundle", ID: "b3", Type: "transaction-response",
			Entry: []bundleEntry{
				{Response: &entryResponse{Status: "201 Created", Location: "Patient/p1/_history/1"}},
				{FullURL: "urn:uuid:1", Response: &entryResponse{Status: "200 OK", Outcome: json.RawMessage(`{"resourceType":"OperationOutcome"}`)}},
				{FullURL: "http://x/fhir/Patient/p1", Resource: patient},
			}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.b.encode()
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(tt.b)
			if err != nil {
				t.Fatal(err)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatalf("encode wrote invalid JSON %s: %v", got, err)
			}
			json.Unmarshal(want, &w)
			if !reflect.DeepEqual(g, w) {
				t.Errorf("encode:\n%s\nwant the same as encoding/json:\n%s", got, want)
			}
		})
	}
}
