package server

import (
	"testing"

	"carefhir/server/access"
)

// TestInteractionOf holds the interaction, type, id and operation named by
// each shape of path, those of more than four segments and with empty
// segments included, which no route serves but which are audited.
func TestInteractionOf(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		want         access.Event
	}{
		{"GET", "/fhir", access.Event{Interaction: access.InteractionSearchSystem}},
		{"POST", "/fhir/", access.Event{Interaction: access.InteractionBatch}},
		{"GET", "/fhir/metadata", access.Event{Interaction: access.InteractionCapabilities}},
		{"GET", "/fhir/_history", access.Event{Interaction: access.InteractionHistorySystem}},
		{"POST", "/fhir/_search", access.Event{Interaction: access.InteractionSearchSystem}},
		{"GET", "/fhir/Patient", access.Event{Interaction: access.InteractionSearchType, Type: "Patient"}},
		{"POST", "/fhir/Patient", access.Event{Interaction: access.InteractionCreate, Type: "Patient"}},
		{"GET", "/fhir/Patient/_history", access.Event{Interaction: access.InteractionHistoryType, Type: "Patient"}},
		{"POST", "/fhir/Patient/_search", access.Event{Interaction: access.InteractionSearchType, Type: "Patient"}},
		{"GET", "/fhir/Patient/1", access.Event{Interaction: access.InteractionRead, Type: "Patient", ID: "1"}},
		{"HEAD", "/fhir/Patient/1", access.Event{Interaction: access.InteractionRead, Type: "Patient", ID: "1"}},
		{"PUT", "/fhir/Patient/1", access.Event{Interaction: access.InteractionUpdate, Type: "Patient", ID: "1"}},
		{"DELETE", "/fhir/Patient/1", access.Event{Interaction: access.InteractionDelete, Type: "Patient", ID: "1"}},
		{"GET", "/fhir/Patient/1/_history", access.Event{Interaction: access.InteractionHistoryInstance, Type: "Patient", ID: "1"}},
		{"GET", "/fhir/Patient/1/_history/2", access.Event{Interaction: access.InteractionVRead, Type: "Patient", ID: "1"}},
		{"GET", "/fhir/Patient/1/Observation", access.Event{Interaction: access.InteractionSearchType, Type: "Patient", ID: "1"}},
		{"GET", "/fhir/$export", access.Event{Interaction: access.InteractionOperation, Operation: "export"}},
		{"GET", "/fhir/Patient/$export", access.Event{Interaction: access.InteractionOperation, Operation: "export", Type: "Patient"}},
		{"GET", "/fhir/Patient/1/$everything", access.Event{Interaction: access.InteractionOperation, Operation: "everything", Type: "Patient", ID: "1"}},
		{"GET", "/fhir/Patient/1/_history/2/$meta", access.Event{Interaction: access.InteractionOperation, Operation: "meta", Type: "Patient", ID: "1"}},
		{"POST", "/fhir/Patient/1/_history/2/$meta-add", access.Event{Interaction: access.InteractionOperation, Operation: "meta-add", Type: "Patient", ID: "1"}},
		{"GET", "/fhir/Patient/1/_history/2/x", access.Event{Interaction: access.InteractionSearchType, Type: "Patient", ID: "1"}},
		{"GET", "/fhir/Patient/1/a/b/c/$op", access.Event{Interaction: access.InteractionOperation, Operation: "op", Type: "Patient"}},
		{"GET", "/fhir/Patient//1", access.Event{Interaction: access.InteractionSearchType, Type: "Patient", ID: ""}},
		{"GET", "/fhir//", access.Event{Interaction: access.InteractionSearchSystem}},
	} {
		got := interactionOf(tc.method, tc.path)
		if got.Interaction != tc.want.Interaction || got.Type != tc.want.Type || got.ID != tc.want.ID || got.Operation != tc.want.Operation {
			t.Errorf("%s %s: got interaction %q type %q id %q operation %q, want %q %q %q %q", tc.method, tc.path,
				got.Interaction, got.Type, got.ID, got.Operation, tc.want.Interaction, tc.want.Type, tc.want.ID, tc.want.Operation)
		}
	}
}
