package server_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestTransactionValidated checks that transaction entries are validated
// like single writes: an entry that breaks a profile rule fails the whole
// transaction with 422 naming it, and the valid entries before it are not
// stored.
func TestTransactionValidated(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		body := txBundle("transaction",
			txEntry("", "PUT", "Patient/tv-good", patientWith("tv-good", "g", "Good")),
			txEntry("", "PUT", "Patient/tv-bad", strings.Replace(badNHSNumber, `{"resourceType":"Patient",`, `{"resourceType":"Patient","id":"tv-bad",`, 1)),
		)
		r := c.do("POST", "", body).want(t, http.StatusUnprocessableEntity)
		if !strings.Contains(string(r.body), "Bundle.entry[1]") {
			t.Errorf("outcome does not name the failing entry: %s", r.body)
		}
		c.do("GET", "/Patient/tv-good", "").want(t, http.StatusNotFound)
		c.do("GET", "/Patient/tv-bad", "").want(t, http.StatusNotFound)

		// The same bundle with a valid second entry is stored whole.
		ok := txBundle("transaction",
			txEntry("", "PUT", "Patient/tv-good", patientWith("tv-good", "g", "Good")),
			txEntry("", "PUT", "Patient/tv-bad", patientWith("tv-bad", "b", "Fixed")),
		)
		c.bundle(ok)
		c.do("GET", "/Patient/tv-good", "").want(t, http.StatusOK)
		c.do("GET", "/Patient/tv-bad", "").want(t, http.StatusOK)
	}, withValidator(true))
}

// TestEmptyResourceCreatedAsEntry checks that a resource with nothing but
// its resourceType, which a single create stores (the server gives it an
// id and meta), is stored as the create of a transaction or batch entry
// too: each is validated as the version written.
func TestEmptyResourceCreatedAsEntry(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("POST", "/Patient", `{"resourceType":"Patient"}`).want(t, http.StatusCreated)
		for _, kind := range []string{"transaction", "batch"} {
			out := c.bundle(txBundle(kind, txEntry("", "POST", "Patient", `{"resourceType":"Patient"}`)))
			if got := out.Entry[0].Response.Status; !strings.HasPrefix(got, "201") {
				t.Fatalf("%s: entry status %q, want 201: %s", kind, got, out.Entry[0].Response.Outcome)
			}
			c.do("GET", "/"+out.Entry[0].Response.Location, "").want(t, http.StatusOK)
		}
	}, withValidator(true))
}

// TestEmptyResourceConditionalUpdate checks that a conditional update
// whose resource has nothing but its resourceType, which the server gives
// the id of the match or a new one, is validated as the version written,
// as a create is: over HTTP and as a transaction or batch entry, whether
// the criteria match nothing (a create) or one resource (an update).
func TestEmptyResourceConditionalUpdate(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("PUT", "/Patient?_id=eu-none", `{"resourceType":"Patient"}`).want(t, http.StatusCreated)
		id := r.json(t)["id"].(string)
		c.do("PUT", "/Patient?_id="+id, `{"resourceType":"Patient"}`).want(t, http.StatusOK)
		c.do("PUT", "/Patient/eu-one", `{"resourceType":"Patient","id":"eu-one","gender":"male"}`).want(t, http.StatusCreated)
		for _, kind := range []string{"transaction", "batch"} {
			out := c.bundle(txBundle(kind,
				txEntry("", "PUT", "Patient?_id=eu-"+kind, `{"resourceType":"Patient"}`),
				txEntry("", "PUT", "Patient?_id=eu-one", `{"resourceType":"Patient"}`)))
			for i, want := range []string{"201", "200"} {
				if got := out.Entry[i].Response.Status; !strings.HasPrefix(got, want) {
					t.Fatalf("%s: entry %d status %q, want %s: %s", kind, i, got, want, out.Entry[i].Response.Outcome)
				}
			}
		}
		if got := c.do("GET", "/Patient/eu-one", "").want(t, http.StatusOK).json(t); got["gender"] != nil {
			t.Errorf("Patient/eu-one kept its gender after an update without one: %v", got)
		}
	}, withValidator(true))
}
