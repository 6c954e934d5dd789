package access

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"carefhir/fhir/search"
	"carefhir/store"
)

// The events the audit trail writes name their request by an identifier
// alone, and are not indexed again to find a patient named by identifier
// when read; an AuditEvent a client wrote is, where its patient search
// parameter takes an identifier beside a reference that resolves to a
// Patient (contained, or by URL), and only there.
func TestAuditEventsNamingByIdentifier(t *testing.T) {
	reg, err := search.Load([]string{"AuditEvent", "Patient", "Observation"})
	if err != nil {
		t.Fatal(err)
	}
	ix := search.NewIndexer(reg, search.FHIRPath, "")
	s := &Store{rules: Rules{Search: reg}}

	e := &Event{Interaction: InteractionSearchType, Type: "Observation", Query: "code=x", Principal: &Principal{Subject: "u", ClientID: "app"},
		Address: "127.0.0.1", RequestID: "req-1", Status: 200, Recorded: time.Now(), Record: &Record{}}
	e.Record.touch(&store.Version{Type: "Observation", ID: "o1", VersionID: 1})
	own := []part{{query: true}, {entities: []Entity{{Type: "Observation", ID: "o1", Version: 1}}}}
	for _, pt := range own {
		body, err := json.Marshal(auditEvent(e, pt, "ev", time.Now(), "carefhir"))
		if err != nil {
			t.Fatal(err)
		}
		if s.namesByIdentifierAlone(&store.Version{Type: "AuditEvent", ID: "ev", JSON: body}) {
			t.Errorf("the trail's own event %s is looked into for a patient named by identifier", body)
		}
	}

	nhs := `"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}`
	for _, tc := range []struct {
		what  string
		names bool
	}{
		{`{"reference":"#p",` + nhs + `}`, true},
		{`{"reference":"https://other.example/fhir/Patient/9",` + nhs + `}`, true},
		{`{"type":"Patient",` + nhs + `}`, false},
		{`{"reference":"Observation/o1",` + nhs + `}`, false},
	} {
		body := `{"resourceType":"AuditEvent","contained":[{"resourceType":"Patient","id":"p"}],"type":{"code":"rest"},"recorded":"2024-01-01T00:00:00Z",` +
			`"agent":[{"requestor":true}],"source":{"observer":{"display":"x"}},"entity":[{"what":` + tc.what + `}]}`
		x, err := ix.IndexJSON("AuditEvent", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		indexed := slices.ContainsFunc(x.Tokens, func(tok store.Token) bool { return strings.HasPrefix(tok.Param, "patient:") })
		if indexed != tc.names {
			t.Errorf("%s: patient identifier indexed %v, want %v", tc.what, indexed, tc.names)
		}
		if indexed && !s.namesByIdentifierAlone(&store.Version{Type: "AuditEvent", ID: "c", JSON: []byte(body)}) {
			t.Errorf("%s names a patient by identifier, and is not looked into", tc.what)
		}
	}
}
