package server

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
)

// TestTransactionCriteriaCandidates checks that criteria naming a subject
// and a code that every Observation of a transaction shares are matched
// only against the Observation of that subject: the entries are indexed
// by reference, as sent (Patient/…) or as their placeholders resolve.
func TestTransactionCriteriaCandidates(t *testing.T) {
	const n = 200
	index, err := NewIndexer("http://example.org/fhir")
	if err != nil {
		t.Fatal(err)
	}
	a := &api{svc: &service{index: index}, search: index.Registry(), cfg: Config{BaseURL: "http://example.org/fhir", Limits: Limits{}.withDefaults()}}
	type entryJSON struct {
		FullURL  string            `json:"fullUrl,omitempty"`
		Resource json.RawMessage   `json:"resource"`
		Request  map[string]string `json:"request"`
	}
	var entries []entryJSON
	for i := range n {
		patient := fmt.Sprintf("urn:uuid:00000000-0000-4000-8000-%012d", i)
		entries = append(entries, entryJSON{FullURL: patient,
			Resource: json.RawMessage(fmt.Sprintf(`{"resourceType":"Patient","identifier":[{"system":"urn:test","value":"c%d"}]}`, i)),
			Request:  map[string]string{"method": "POST", "url": "Patient"}})
		subject := fmt.Sprintf("Patient/c%d", i) // as sent, or a placeholder of the transaction
		if i%2 == 1 {
			subject = patient
		}
		entries = append(entries, entryJSON{
			Resource: json.RawMessage(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"` + subject + `"}}`),
			Request:  map[string]string{"method": "POST", "url": "Observation", "ifNoneExist": "subject=" + subject + "&code=http://loinc.org|8867-4"}})
	}
	body, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries})
	if err != nil {
		t.Fatal(err)
	}
	b, err := a.parseBundle("application/fhir+json", body, "http://example.org/fhir")
	if err != nil {
		t.Fatal(err)
	}
	u := a.newUnit(nil, nil, b.entries, nil, false)
	for _, i := range []int{0, 1, n / 2, n - 1} {
		subject := fmt.Sprintf("Patient/c%d", i)
		if i%2 == 1 {
			subject = "Patient/" + b.entries[2*i].newID
		}
		for _, criteria := range []string{"subject=" + subject + "&code=http://loinc.org|8867-4", "code=http://loinc.org|8867-4&subject=" + subject} {
			q, err := a.parseCriteria("Observation", criteria, "ifNoneExist")
			if err != nil {
				t.Fatal(err)
			}
			got := u.candidates(context.Background(), q, "")
			if len(got) != 1 || got[0] != b.entries[2*i+1] {
				t.Errorf("%s: %d candidates, want entry %d alone", criteria, len(got), 2*i+1)
			}
		}
	}
}
