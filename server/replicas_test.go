package server_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"carefhir/store/mongo"
	"carefhir/store/mongo/ferrettest"
)

// replicas serves n servers on one MongoDB database, as replicas of a
// deployment do.
func replicas(t *testing.T, n int) []*client {
	uri := ferrettest.Start(t)
	cs := make([]*client, n)
	for i := range cs {
		st, err := mongo.Open(context.Background(), uri)
		if err != nil {
			t.Fatal(err)
		}
		cs[i] = newClient(t, st)
	}
	return cs
}

// Conditional creates of one NHS number sent to two replicas at once
// create one Patient: one is 201, every other 200 with that Patient.
func TestConditionalCreatesAcrossReplicas(t *testing.T) {
	cs := replicas(t, 2)
	const body = `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}]}`
	statuses := make([]int, 8)
	var wg sync.WaitGroup
	for i := range statuses {
		wg.Go(func() {
			statuses[i] = cs[i%2].do("POST", "/Patient", body, "If-None-Exist", "identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009").status
		})
	}
	wg.Wait()
	created := 0
	for _, s := range statuses {
		switch s {
		case 201:
			created++
		case 200:
		default:
			t.Errorf("conditional create: %d, want 201 or 200", s)
		}
	}
	if created != 1 {
		t.Errorf("conditional creates at once through two replicas: %v, want one 201", statuses)
	}
	r := cs[0].do("GET", "/Patient?identifier=9000000009&_summary=count", "")
	if !strings.Contains(string(r.body), `"total":1`) {
		t.Errorf("Patients with the NHS number: %s, want a total of 1", r.body)
	}
}
