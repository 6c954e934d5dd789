package access

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"carefhir/fhir/search"
	"carefhir/store"
	"carefhir/store/sqlite"
)

// auditTestEvents are requests of every shape the trail records: each
// interaction's outcome, one patient, several and none, a query, a
// disclosure, every kind of principal, and values that JSON escapes (the
// invalid UTF-8 in an address alone, which no search looks into: the
// values searched for come from checked request ids, decoded token claims
// and the server's own URLs, all valid).
func auditTestEvents() []*Event {
	now := time.Date(2026, 12, 5, 3, 0, 0, 123456789, time.UTC)
	rec := &Record{}
	rec.touch(
		&store.Version{Type: "Observation", ID: "o1", VersionID: 2, JSON: []byte(`{"subject":{"reference":"Patient/a"}}`)},
		&store.Version{Type: "Patient", ID: "b", VersionID: 1},
	)
	several := &Record{}
	several.touch(
		&store.Version{Type: "Patient", ID: "a", VersionID: 3},
		&store.Version{Type: "Appointment", ID: "ap", VersionID: 1, JSON: []byte(`{"participant":[{"actor":{"reference":"Patient/a"}},{"actor":{"reference":"Patient/c"}}]}`)},
		&store.Version{Type: "Organization", ID: "org", VersionID: 4},
		&store.Version{Type: "Observation", ID: "o2", VersionID: 1, JSON: []byte(`{"subject":{"reference":"Patient/c"}}`)},
	)
	disclosed := &Record{}
	disclosed.Disclose(Disclosure{What: "https://fhir.example/fhir/$export-file?_jobId=j&file=Observation.ndjson", Patients: io.NopCloser(strings.NewReader("a\nb\n"))})
	return []*Event{
		{Interaction: InteractionSearchType, Type: "Observation", Query: "code=1-1", RequestID: "r1", Status: 200, Recorded: now, Record: rec, Address: "10.0.0.1",
			Principal: &Principal{Subject: "s", Issuer: "https://iss", FHIRUser: "Practitioner/p", ClientID: "app"}},
		{Interaction: InteractionOperation, Operation: "everything", Type: "Patient", ID: "a", RequestID: "r2", Status: 200, Recorded: now, Record: &Record{},
			Principal: &Principal{Subject: "pat", FHIRUser: "Patient/a"}},
		{Interaction: InteractionRead, Type: "Patient", ID: "z", RequestID: "r3", Status: 401, Recorded: now},
		{Interaction: InteractionCreate, Type: "Patient", RequestID: "r4", Status: 201, Recorded: now, Record: &Record{}, Address: "tab\there", Principal: OpenPrincipal("::1")},
		{Interaction: InteractionVRead, Type: "Patient", ID: "a", RequestID: "r4b", Status: 404, Recorded: now, Address: `C:\\pipe`, Principal: &Principal{Subject: "s"}},
		{Interaction: InteractionOperation, Operation: "export-file", RequestID: "r5", Status: 200, Recorded: now, Record: disclosed, Principal: &Principal{Subject: "bulk"}},
		{Interaction: InteractionSearchSystem, Query: "_id=a,c&name=<b>&x=\u2028", RequestID: "r6", Status: 200, Recorded: now.In(time.FixedZone("", 3600)), Record: several, Address: "[::1]:5",
			Principal: &Principal{Subject: "s\"q", Issuer: "https://iss/\u00e4", FHIRUser: "Patient/c", ClientID: "app\u2029"}},
		{Interaction: InteractionDelete, Type: "Observation", ID: "o9", RequestID: "r7", Status: 500, Recorded: now, Address: "\xff\x01tab\t", Principal: SystemPrincipal("")},
		{Interaction: InteractionUpdate, Type: "Patient", ID: "a", RequestID: "r8", Status: 412, Recorded: now, Principal: &Principal{Subject: "a<b", Issuer: "https://iss/?a&c"}},
		{Interaction: InteractionHistoryType, Type: "Patient", Query: "_count=1", RequestID: "r9", Status: 200, Recorded: now, Record: &Record{}, Principal: &Principal{FHIRUser: "RelatedPerson/rp", ClientID: "x>y"}},
	}
}

// auditTestParts returns the AuditEvents of e, with the ids and the time
// they would be written at, as encodePart builds them.
func auditTestParts(e *Event) []auditEventJSON {
	now := time.Date(2026, 12, 5, 3, 0, 1, 987654321, time.UTC)
	var out []auditEventJSON
	for i, pt := range parts(e) {
		out = append(out, auditEvent(e, pt, fmt.Sprintf("%s-%d", e.RequestID, i), now, "carefhir \u2014 <test>"))
	}
	if e.Record != nil {
		for _, d := range e.Record.Disclosures() {
			eachPatient(d, func(id string) {
				out = append(out, auditEvent(e, part{patient: "Patient/" + id, disclosed: d.What}, "d-"+id, now, "carefhir"))
			})
		}
	}
	return out
}

// The trail writes each AuditEvent's JSON by hand: it must be, byte for
// byte, what encoding/json makes of the same event.
func TestAuditJSONAsEncoded(t *testing.T) {
	for _, e := range auditTestEvents() {
		for _, ev := range auditTestParts(e) {
			want, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			if got := ev.appendJSON(nil); string(got) != string(want) {
				t.Errorf("%q: JSON\n%s\nencoding/json\n%s", e.RequestID, got, want)
			}
		}
	}
}

// The audit trail indexes its events itself; what it writes must be what
// the search definitions extract, or searches would answer differently
// before and after a reindex.
func TestAuditIndexAsDefined(t *testing.T) {
	reg, err := search.Load([]string{"AuditEvent", "Patient", "Observation", "Practitioner"})
	if err != nil {
		t.Fatal(err)
	}
	reg.Restrict("AuditEvent", AuditSearchParams)
	indexer := search.NewIndexer(reg, search.FHIRPath, "")
	for _, e := range auditTestEvents() {
		evs := auditTestParts(e)
		if e.RequestID == "r5" && len(evs) != 3 {
			t.Errorf("a disclosure of 2 patients: %d AuditEvents, want 3", len(evs))
		}
		if e.RequestID == "r6" && len(evs) != 3 {
			t.Errorf("a search of 2 patients' records and an Organization: %d AuditEvents, want 3", len(evs))
		}
		for _, ev := range evs {
			want, err := indexer.IndexJSON("AuditEvent", ev.appendJSON(nil))
			if err != nil {
				t.Fatal(err)
			}
			got := ev.index()
			for _, pair := range [][2]any{{got.Tokens, want.Tokens}, {got.Strings, want.Strings}, {got.References, want.References}} {
				if !sameSet(pair[0], pair[1]) {
					t.Errorf("%q: index %v, the definitions extract %v", e.RequestID, pair[0], pair[1])
				}
			}
			if len(got.Dates) != 1 || len(want.Dates) != 1 || !got.Dates[0].Low.Equal(want.Dates[0].Low) || !got.Dates[0].High.Equal(want.Dates[0].High) {
				t.Errorf("%q: dates %v, the definitions extract %v", e.RequestID, got.Dates, want.Dates)
			}
			if len(want.Numbers)+len(want.Quantities)+len(want.URIs)+len(want.Composites) > 0 {
				t.Errorf("%q: the definitions extract values of kinds the trail does not index: %+v", e.RequestID, want)
			}
		}
	}
}

func sameSet(a, b any) bool {
	key := func(v any) []string {
		var out []string
		switch vs := v.(type) {
		case []store.Token:
			for _, x := range vs {
				out = append(out, x.Param+"|"+x.System+"|"+x.Code)
			}
		case []store.String:
			for _, x := range vs {
				out = append(out, x.Param+"|"+x.Value+"|"+x.Exact)
			}
		case []store.Reference:
			for _, x := range vs {
				out = append(out, x.Param+"|"+x.Target())
			}
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return slices.Equal(key(a), key(b))
}

// The trail's ids are UUIDs of version 7, each after the one before, so
// that the engine appends each event's rows at the end of its indexes.
func TestEventIDsAreTimeOrdered(t *testing.T) {
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = newEventID()
		u, err := uuid.Parse(ids[i])
		if err != nil || u.Version() != 7 {
			t.Fatalf("event id %q: version %v, %v; want a UUID of version 7", ids[i], u.Version(), err)
		}
	}
	if !slices.IsSorted(ids) {
		t.Errorf("event ids out of order: %v", ids)
	}
}

// maxEntities bounds the AuditEvents of a request, one per patient, as it
// bounds the entities they name: a Group of thousands of members is
// audited by the members it names first.
func TestAuditEventsBounded(t *testing.T) {
	var body strings.Builder
	body.WriteString(`{"resourceType":"Group","member":[`)
	for i := range 3 * maxEntities {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"entity":{"reference":"Patient/p%d"}}`, i)
	}
	body.WriteString(`]}`)
	rec := &Record{}
	rec.touch(&store.Version{Type: "Group", ID: "g", VersionID: 1, JSON: []byte(body.String())})
	rec.touch(&store.Version{Type: "Observation", ID: "o", VersionID: 1, JSON: []byte(`{"subject":{"reference":"Patient/late"}}`)})
	got := parts(&Event{Interaction: InteractionRead, Type: "Group", ID: "g", Status: 200, Record: rec})
	if len(got) != maxEntities {
		t.Errorf("%d AuditEvents for a Group of %d members, want %d", len(got), 3*maxEntities, maxEntities)
	}
	for _, pt := range got {
		if len(pt.entities) != 1 || pt.entities[0].ID != "g" {
			t.Fatalf("the event about %s names %v, want the Group alone", pt.patient, pt.entities)
		}
	}
}

// TestAuditAfterClose: a request still running when the server stopped
// waiting for it is audited after the trail closed; its AuditEvent is
// counted as dropped rather than sent on the closed queue, which panicked.
func TestAuditAfterClose(t *testing.T) {
	st, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var dropped int
	a := NewAuditor(st, AuditConfig{Source: "test", OnDrop: func() { dropped++ }})
	a.Add(&Event{Interaction: InteractionRead, Type: "Patient", ID: "a", RequestID: "before", Status: 200, Recorded: time.Now()})
	a.Close()
	a.Add(&Event{Interaction: InteractionRead, Type: "Patient", ID: "b", RequestID: "after", Status: 200, Recorded: time.Now()})
	a.Flush()
	a.Close()
	if a.Written() != 1 || a.Dropped() != 1 || dropped != 1 || a.Handled() != 2 {
		t.Errorf("written %d, dropped %d (OnDrop %d), handled %d; want 1, 1, 1, 2", a.Written(), a.Dropped(), dropped, a.Handled())
	}
}
