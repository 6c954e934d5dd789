package access

import (
	"context"
	"slices"
	"testing"

	"carefhir/store"
)

// finder answers every search with one Observation of Patient/a, with its
// body unless the plan asks for ids only, and keeps the plan it was given.
type finder struct {
	store.Store
	got store.Query
}

func (f *finder) Find(_ context.Context, q store.Query) (*store.Page, error) {
	f.got = q
	v := &store.Version{Type: q.Type, ID: "o1", VersionID: 1}
	if !q.IDsOnly {
		v.JSON = []byte(`{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/a"}}`)
	}
	return &store.Page{Matches: []*store.Version{v}}, nil
}

// A search for ids alone still names, in the request's audit record, the
// patients of what it found: only Patients are read without their bodies.
func TestIDsOnlyKeepsAuditedPatients(t *testing.T) {
	for _, tt := range []struct {
		typ     string
		idsOnly bool
	}{{"Observation", false}, {"Patient", true}} {
		f := &finder{}
		s := NewStore(f, Rules{})
		ctx, rec := Begin(WithPrincipal(context.Background(), OpenPrincipal("::1")))
		if _, err := s.Find(ctx, store.Query{Type: tt.typ, IDsOnly: true}); err != nil {
			t.Fatal(err)
		}
		if f.got.IDsOnly != tt.idsOnly {
			t.Errorf("%s: the engine was asked for ids only: %v, want %v", tt.typ, f.got.IDsOnly, tt.idsOnly)
		}
		if tt.typ == "Observation" {
			if es := rec.Entities(); len(es) != 1 || !slices.Equal(es[0].Patients, []string{"a"}) {
				t.Errorf("audited entities %+v, want Observation/o1 of Patient/a", es)
			}
		}
	}
}

// A request of a server that keeps no audit trail names nothing of what it
// found, and so reads no body for its patients; its interaction is still
// kept.
func TestUnauditedRecordsNoEntities(t *testing.T) {
	f := &finder{}
	s := NewStore(f, Rules{})
	ctx, rec := BeginUnaudited(WithPrincipal(context.Background(), OpenPrincipal("::1")))
	if _, err := s.Find(ctx, store.Query{Type: "Observation"}); err != nil {
		t.Fatal(err)
	}
	rec.SetInteraction(InteractionTransaction)
	if es := rec.Entities(); len(es) != 0 {
		t.Errorf("unaudited request recorded %+v", es)
	}
	if rec.Interaction() != InteractionTransaction {
		t.Errorf("interaction %q", rec.Interaction())
	}
}

// A write refused and tried again (a lost race) is named once, by the
// version written, not also as an attempt that stored nothing.
func TestRetriedWriteNamedOnce(t *testing.T) {
	_, rec := Begin(context.Background())
	w := &store.Write{Type: "Observation", ID: "o1", Expected: 1}
	named := []string{"a"}
	rec.touchEntity(Entity{Type: "Patient", ID: "a", Version: 3, Patients: []string{"a"}})
	for range 2 {
		e := writeEntity(w, named)
		e.Version = 0
		rec.touchEntity(e)
	}
	rec.touchEntity(writeEntity(w, named))
	got := rec.Entities()
	if len(got) != 2 || got[0].Reference() != "Patient/a/_history/3" || got[1].Reference() != "Observation/o1/_history/2" {
		t.Fatalf("entities %+v, want Patient/a/_history/3 and Observation/o1/_history/2", got)
	}
	if rec.links != 2 {
		t.Errorf("%d patient links counted, want 2", rec.links)
	}
}
