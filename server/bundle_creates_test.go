package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"carefhir/store"
)

// unitSearches counts the searches made inside units of work of the
// engine it wraps.
type unitSearches struct {
	store.Store
	searches atomic.Int64
}

func (s *unitSearches) Transact(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.Transact(ctx, func(tx store.Tx) error { return fn(&countedTx{Tx: tx, searches: &s.searches}) })
}

func (s *unitSearches) Find(ctx context.Context, q store.Query) (*store.Page, error) {
	return s.Store.(store.Finder).Find(ctx, q)
}

type countedTx struct {
	store.Tx
	searches *atomic.Int64
}

func (t *countedTx) Search(ctx context.Context, q store.Query) ([]*store.Version, error) {
	t.searches.Add(1)
	return t.Tx.Search(ctx, q)
}

// TestTransactionConditionalCreatesSearchTogether: the conditional creates
// of a transaction by identifier find their stored matches, and create
// where there is none, with one search of the store for all of them,
// where each searched on its own: on FerretDB, which scans for each
// search, 150 of them overran the unit of work's time. A create whose
// criteria match two stored resources is still 412.
func TestTransactionConditionalCreatesSearchTogether(t *testing.T) {
	const stored, absent = 40, 10
	for _, eng := range engines {
		t.Run(eng.Name, func(t *testing.T) {
			st := &unitSearches{Store: eng.Open(t)}
			c := newClient(t, st)
			ids := map[string]string{}
			for i := range stored {
				ids[fmt.Sprintf("c%d", i)] = str(c.create("Patient", patientWith("", fmt.Sprintf("c%d", i), "Stored")), "id")
			}
			c.create("Patient", patientWith("", "twice", "First"))
			c.create("Patient", patientWith("", "twice", "Second"))

			var creates []string
			for i := range stored + absent {
				value := fmt.Sprintf("c%d", i)
				creates = append(creates, txEntry("", "POST", "Patient", patientWith("", value, "Again"), "ifNoneExist", "identifier=urn:test|"+value))
			}
			before := st.searches.Load()
			resp := c.bundle(txBundle("transaction", creates...))
			if n := st.searches.Load() - before; n > 1 {
				t.Errorf("%d searches in the unit of work for %d conditional creates, want one for all", n, len(creates))
			}
			for i, e := range resp.Entry {
				value := fmt.Sprintf("c%d", i)
				switch {
				case i < stored && e.Response.Status != "200 OK":
					t.Errorf("entry %d (%s, stored): %s, want 200 OK", i, value, e.Response.Status)
				case i < stored && !strings.HasPrefix(e.Response.Location, "Patient/"+ids[value]+"/"):
					t.Errorf("entry %d (%s, stored): location %s, want the stored Patient/%s", i, value, e.Response.Location, ids[value])
				case i >= stored && e.Response.Status != "201 Created":
					t.Errorf("entry %d (%s, absent): %s, want 201 Created", i, value, e.Response.Status)
				}
			}
			if b := c.do("GET", "/Patient?name=Again&_summary=count", "").want(t, http.StatusOK).json(t); b["total"] != float64(absent) {
				t.Errorf("%v Patients created, want %d", b["total"], absent)
			}

			twice := txEntry("", "POST", "Patient", patientWith("", "twice", "Third"), "ifNoneExist", "identifier=urn:test|twice")
			c.do("POST", "", txBundle("transaction", append(creates[:3:3], twice)...)).
				want(t, http.StatusPreconditionFailed).outcome(t, "multiple-matches", "")
			if b := c.do("GET", "/Patient?identifier=urn:test|twice&_summary=count", "").want(t, http.StatusOK).json(t); b["total"] != float64(2) {
				t.Errorf("%v Patients twice after the refused transaction, want 2", b["total"])
			}
		})
	}
}
