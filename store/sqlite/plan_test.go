package sqlite

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"carefhir/fhir/search"
)

// The common searches of care coordination run as index range scans: no
// step of their plans scans a table or a whole index.
func TestSearchPlansUseIndexes(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	reg, err := search.Load([]string{"Appointment", "CarePlan", "Observation", "Organization", "Patient", "Practitioner"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, typ, query string }{
		{"name prefix", "Patient", "name=smi"},
		{"family exact", "Patient", "family:exact=Smith"},
		{"NHS number", "Patient", "identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009"},
		{"birthdate range", "Patient", "birthdate=ge1970-01-01&birthdate=lt1971-01-01"},
		{"birthdate sorted", "Patient", "birthdate=ge1970&_sort=birthdate"},
		{"patient's appointments by date", "Appointment", "patient=Patient/p1&date=ge2025-01-01&_sort=date"},
		{"active care plans", "CarePlan", "status=active&_include=CarePlan:subject"},
		{"has", "Patient", "_has:Observation:patient:code=8480-6"},
		{"chained", "Observation", "subject:Patient.identifier=9000000009"},
		{"quantity", "Observation", "code=8480-6&value-quantity=gt140||mm[Hg]"},
		{"reference", "Observation", "subject=Patient/p1"},
		{"composite quantity", "Observation", "component-code-value-quantity=http://loinc.org|8480-6$gt140"},
		{"compartment-style or", "Observation", "subject=Patient/p1,Patient/p2"},
		{"lastUpdated", "Patient", "_lastUpdated=ge2025-01-01"},
		{"page after a cursor", "Patient", "name=smi&_sort=family"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			values, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			plan, err := reg.Parse(tt.typ, values, search.Options{Strict: true, Now: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			q := plan.Query
			if strings.HasPrefix(tt.name, "page after") {
				q.Cursor = encodeSearchCursor([]any{"smith", "p9"}, false)
			}
			query, args, _, _, err := pageSQL(q)
			if err != nil {
				t.Fatal(err)
			}
			rows, err := s.rdb.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
			if err != nil {
				t.Fatalf("%s: %v", query, err)
			}
			defer rows.Close()
			var plans []string
			for rows.Next() {
				var id, parent, notused int
				var detail string
				if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
					t.Fatal(err)
				}
				plans = append(plans, detail)
			}
			for _, p := range plans {
				// "SCAN page" reads the page's own rows (at most Count+1).
				if strings.HasPrefix(p, "SCAN ") && p != "SCAN page" || strings.HasSuffix(p, "(type=?)") {
					t.Errorf("%s?%s scans: %q\nplan: %s\nsql: %s", tt.typ, tt.query, p, strings.Join(plans, " | "), query)
				}
			}
		})
	}
}
