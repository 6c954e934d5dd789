package access

import (
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
	rec := &Record{}
	rec.touch(
		&store.Version{Type: "Observation", ID: "o1", VersionID: 2, JSON: []byte(`{"subject":{"reference":"Patient/a"}}`)},
		&store.Version{Type: "Patient", ID: "b", VersionID: 1},
	)
	now := time.Date(2026, 12, 5, 3, 0, 0, 123e6, time.UTC)
	disclosed := &Record{}
	disclosed.Disclose(Disclosure{What: "https://fhir.example/fhir/$export-file?_jobId=j&file=Observation.ndjson", Patients: io.NopCloser(strings.NewReader("a\nb\n"))})
	events := []*Event{
		{Interaction: InteractionSearchType, Type: "Observation", Query: "code=1-1", RequestID: "r1", Status: 200, Recorded: now, Record: rec, Address: "10.0.0.1",
			Principal: &Principal{Subject: "s", Issuer: "https://iss", FHIRUser: "Practitioner/p", ClientID: "app"}},
		{Interaction: InteractionOperation, Operation: "everything", Type: "Patient", ID: "a", RequestID: "r2", Status: 200, Recorded: now, Record: &Record{},
			Principal: &Principal{Subject: "pat", FHIRUser: "Patient/a"}},
		{Interaction: InteractionRead, Type: "Patient", ID: "z", RequestID: "r3", Status: 401, Recorded: now},
		{Interaction: InteractionCreate, Type: "Patient", RequestID: "r4", Status: 201, Recorded: now, Record: &Record{}, Principal: OpenPrincipal("::1")},
		{Interaction: InteractionOperation, Operation: "export-file", RequestID: "r5", Status: 200, Recorded: now, Record: disclosed, Principal: &Principal{Subject: "bulk"}},
	}
	for _, e := range events {
		a := &Auditor{cfg: AuditConfig{Source: "carefhir"}}
		writes := a.encode(e)
		if e.Record != nil {
			for _, d := range e.Record.Disclosures() {
				a.disclose(e, d, func(w *store.Write) { writes = append(writes, w) })
			}
		}
		if e.RequestID == "r5" && len(writes) != 3 {
			t.Errorf("a disclosure of 2 patients: %d AuditEvents, want 3", len(writes))
		}
		for _, w := range writes {
			want, err := indexer.IndexJSON("AuditEvent", w.JSON)
			if err != nil {
				t.Fatal(err)
			}
			got := w.Index
			for _, pair := range [][2]any{{got.Tokens, want.Tokens}, {got.Strings, want.Strings}, {got.References, want.References}} {
				if !sameSet(pair[0], pair[1]) {
					t.Errorf("%s: index %v, the definitions extract %v", e.RequestID, pair[0], pair[1])
				}
			}
			if len(got.Dates) != 1 || len(want.Dates) != 1 || !got.Dates[0].Low.Equal(want.Dates[0].Low) || !got.Dates[0].High.Equal(want.Dates[0].High) {
				t.Errorf("%s: dates %v, the definitions extract %v", e.RequestID, got.Dates, want.Dates)
			}
			if len(want.Numbers)+len(want.Quantities)+len(want.URIs)+len(want.Composites) > 0 {
				t.Errorf("%s: the definitions extract values of kinds the trail does not index: %+v", e.RequestID, want)
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
