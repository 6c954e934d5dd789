package server_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"carefhir/store"
)

func TestXProvenance(t *testing.T) {
	who := principals{"noprov": {Subject: "noprov", Scopes: mustScopes(t, "system/Patient.cruds")}}
	prov := `{"resourceType":"Provenance","agent":[{"who":{"reference":"Practitioner/dr"}}],"activity":{"text":"registration"}}`
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who)
			created := c.by("admin", "POST", "/Patient", `{"resourceType":"Patient","name":[{"family":"Prov"}]}`, "X-Provenance", prov).want(t, 201).json(t)
			id := str(created, "id")
			c.by("admin", "PUT", "/Patient/"+id, `{"resourceType":"Patient","id":"`+id+`","name":[{"family":"Prov2"}]}`, "X-Provenance", prov).want(t, 200)
			found := c.by("admin", "GET", "/Provenance?target=Patient/"+id+"&_sort=_lastUpdated", "").want(t, 200).json(t)
			entries, _ := get(found, "entry").([]any)
			if len(entries) != 2 {
				t.Fatalf("Provenance of Patient/%s: %d, want 2: %v", id, len(entries), found)
			}
			var targets []string
			for _, en := range entries {
				targets = append(targets, str(en, "resource", "target", 0, "reference"))
				if str(en, "resource", "recorded") == "" || str(en, "resource", "agent", 0, "who", "reference") != "Practitioner/dr" {
					t.Errorf("stored Provenance: %v", get(en, "resource"))
				}
			}
			if got := strings.Join(targets, " "); !strings.Contains(got, "Patient/"+id+"/_history/1") || !strings.Contains(got, "Patient/"+id+"/_history/2") {
				t.Errorf("Provenance targets %q, want both versions", got)
			}

			// A bad header, or one the token may not write, stores nothing.
			before := len(ids(t, c.by("admin", "GET", "/Patient", "")))
			c.by("admin", "POST", "/Patient", `{"resourceType":"Patient"}`, "X-Provenance", `{"resourceType":"Patient"}`).want(t, 400).outcome(t, "invalid", "X-Provenance")
			c.by("admin", "POST", "/Patient", `{"resourceType":"Patient"}`, "X-Provenance", `{not json`).want(t, 400)
			c.by("noprov", "POST", "/Patient", `{"resourceType":"Patient"}`, "X-Provenance", prov).want(t, 403)
			c.by("admin", "POST", "", `{"resourceType":"Bundle","type":"transaction","entry":[]}`, "X-Provenance", prov).want(t, 400)
			if after := len(ids(t, c.by("admin", "GET", "/Patient", ""))); after != before {
				t.Errorf("refused writes stored Patients: %d before, %d after", before, after)
			}
		})
	}
}

// retryFirstUnit runs the first unit of work twice, as MongoDB's driver
// does on a transient error: the first run is rolled back.
type retryFirstUnit struct {
	store.Store
	once sync.Once
}

var errTransient = errors.New("transient")

func (r *retryFirstUnit) Find(ctx context.Context, q store.Query) (*store.Page, error) {
	return r.Store.(store.Finder).Find(ctx, q)
}

func (r *retryFirstUnit) Transact(ctx context.Context, fn func(store.Tx) error) error {
	r.once.Do(func() {
		err := r.Store.Transact(ctx, func(tx store.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			return errTransient
		})
		if !errors.Is(err, errTransient) {
			panic(err)
		}
	})
	return r.Store.Transact(ctx, fn)
}

// A write whose unit of work the engine runs again stores its
// X-Provenance with it: the rolled-back run did not write it.
func TestXProvenanceWrittenWhenUnitRunsAgain(t *testing.T) {
	prov := `{"resourceType":"Provenance","agent":[{"who":{"reference":"Practitioner/dr"}}],"activity":{"text":"registration"}}`
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newClient(t, &retryFirstUnit{Store: e.Open(t)})
			id := str(c.do("POST", "/Patient", `{"resourceType":"Patient","name":[{"family":"Prov"}]}`, "X-Provenance", prov).want(t, 201).json(t), "id")
			found := c.do("GET", "/Provenance?target=Patient/"+id, "").want(t, 200).json(t)
			if n := len(list(get(found, "entry"))); n != 1 {
				t.Errorf("Provenances of Patient/%s: %d, want 1: %v", id, n, found)
			}
		})
	}
}
