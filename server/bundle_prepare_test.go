package server_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestTransactionFirstFailure checks that, however many entries fail, a
// transaction reports the first failure in processing order (POSTs before
// PUTs, each in request order), whether the entry fails validation or a
// check against the store, and stores nothing. The resources of a
// transaction are validated side by side, ahead of their writes.
func TestTransactionFirstFailure(t *testing.T) {
	const size = 60
	tests := []struct {
		name     string
		invalid  []int // PUTs of a resource that fails validation
		post     int   // a POST of an invalid resource, -1 for none
		stale    int   // a PUT whose ifMatch names a version that does not exist, -1 for none
		status   int
		reported int
	}{
		{name: "an invalid POST before earlier invalid PUTs", invalid: []int{10}, post: 40, stale: -1, status: http.StatusUnprocessableEntity, reported: 40},
		{name: "the first invalid PUT", invalid: []int{10, 30}, post: -1, stale: -1, status: http.StatusUnprocessableEntity, reported: 10},
		{name: "a stale PUT before an invalid one", invalid: []int{10}, post: -1, stale: 5, status: http.StatusPreconditionFailed, reported: 5},
		{name: "an invalid PUT before a stale one", invalid: []int{5}, post: -1, stale: 10, status: http.StatusUnprocessableEntity, reported: 5},
	}
	eachEngine(t, func(t *testing.T, c *client) {
		for n, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var entries, others []string
				for i := range size {
					id := fmt.Sprintf("ff%d-%d", n, i)
					switch {
					case i == tt.post:
						entries = append(entries, txEntry("", "POST", "Patient", badNHSNumber))
					case i == tt.stale:
						entries = append(entries, txEntry("", "PUT", "Patient/"+id, patientWith(id, id, "Stale"), "ifMatch", `W/"1"`))
					case slices.Contains(tt.invalid, i):
						entries = append(entries, txEntry("", "PUT", "Patient/"+id,
							strings.Replace(badNHSNumber, `{"resourceType":"Patient",`, `{"resourceType":"Patient","id":"`+id+`",`, 1)))
					default:
						entries = append(entries, txEntry("", "PUT", "Patient/"+id, patientWith(id, id, "Valid")))
					}
					if i != tt.reported && (i == tt.post || i == tt.stale || slices.Contains(tt.invalid, i)) {
						others = append(others, fmt.Sprintf("Bundle.entry[%d]", i))
					}
				}
				r := c.do("POST", "", txBundle("transaction", entries...)).want(t, tt.status)
				r.outcome(t, "", fmt.Sprintf("Bundle.entry[%d]", tt.reported))
				for _, o := range others {
					if strings.Contains(string(r.body), o+" ") || strings.Contains(string(r.body), o+`"`) {
						t.Errorf("the outcome names %s, which fails later in processing order: %s", o, r.body)
					}
				}
				for _, i := range []int{0, size - 1} {
					mustNotExist(t, c, "Patient", fmt.Sprintf("ff%d-%d", n, i))
				}
			})
		}
	}, withValidator(true))
}

// TestTransactionPostIfMatch checks that request.ifMatch on a POST entry is
// refused at it, as If-Match on a create is, and that the transaction
// writes nothing: ignored, a client that meant a version-aware update got
// a second resource.
func TestTransactionPostIfMatch(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("POST", "", txBundle("transaction",
			txEntry("", "POST", "Patient", patientWith("", "pim", "Created"), "ifMatch", `W/"3"`),
			txEntry("", "PUT", "Patient/pim-put", patientWith("pim-put", "pim-put", "Put")),
		)).want(t, http.StatusBadRequest)
		r.outcome(t, "invalid", "Bundle.entry[0].request.ifMatch")
		mustNotExist(t, c, "Patient", "pim-put")
		if b := c.do("GET", "/Patient?identifier=urn:test|pim&_summary=count", "").want(t, http.StatusOK).json(t); b["total"] != float64(0) {
			t.Errorf("total %v Patients of the refused POST, want 0", b["total"])
		}
	})
}
