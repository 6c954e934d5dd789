package sqlite

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"carefhir/fhir/search"
	"carefhir/store"
)

// The common searches of care coordination run as index range scans: no
// step of their plans scans a table or a whole index.
func TestSearchPlansUseIndexes(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	reg, err := search.Load([]string{"Appointment", "CarePlan", "Condition", "Observation", "Organization", "Patient", "Practitioner"})
	if err != nil {
		t.Fatal(err)
	}
	// Searches read a parameter's number and kinds from the database, so
	// the plans are those of a store that holds values of the parameters.
	ix := search.NewIndexer(reg, search.FHIRPath, "")
	for _, r := range []struct{ typ, json string }{
		{"Patient", `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}],` +
			`"name":[{"family":"Smith","given":["Jane"]}],"gender":"female","birthDate":"1970-06-01"}`},
		{"Appointment", `{"resourceType":"Appointment","status":"booked","start":"2025-02-01T10:00:00Z","end":"2025-02-01T10:10:00Z",` +
			`"participant":[{"actor":{"reference":"Patient/p1"},"status":"accepted"}]}`},
		{"CarePlan", `{"resourceType":"CarePlan","status":"active","intent":"plan","subject":{"reference":"Patient/p1"}}`},
		{"Observation", `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},` +
			`"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2025-01-01","valueQuantity":{"value":150,"system":"http://unitsofmeasure.org","code":"mm[Hg]"},` +
			`"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":150,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`},
		{"Condition", `{"resourceType":"Condition","subject":{"reference":"Patient/p1"},` +
			`"onsetRange":{"low":{"value":40,"system":"http://unitsofmeasure.org","code":"a"},"high":{"value":50,"system":"http://unitsofmeasure.org","code":"a"}}}`},
	} {
		index, err := ix.IndexJSON(r.typ, []byte(r.json))
		if err != nil {
			t.Fatal(err)
		}
		w := &store.Write{Type: r.typ, ID: "p1", LastUpdated: time.Now(), JSON: []byte(r.json), Index: index}
		if err := s.Put(t.Context(), w); err != nil {
			t.Fatal(err)
		}
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
		{"missing", "Patient", "name=smi&gender:missing=true"},
		{"sorted by date descending", "Observation", "subject=Patient/p1&_sort=-date"},
		{"sorted by reference", "Observation", "code=8480-6&_sort=subject"},
		{"sorted by lastUpdated", "Observation", "subject=Patient/p1&_sort=-_lastUpdated"},
		{"long list of codes", "Observation", "code=" + strings.Repeat("http://loinc.org|8480-6,", 99) + "http://loinc.org|8480-6"},
		{"long list of codes in any system", "Observation", "code=" + strings.Repeat("8480-6,", 99) + "8480-6"},
		{"long list of references", "Observation", "subject=" + strings.Repeat("Patient/p1,", 199) + "Patient/p2"},
		{"long list of patients with a status", "CarePlan", "subject=" + strings.Repeat("Patient/p1,", 199) + "Patient/p2&status=active"},
		{"quantity in UCUM units", "Observation", "value-quantity=gt16|http://unitsofmeasure.org|kPa"},
		{"range above", "Condition", "onset-age=gt45|http://unitsofmeasure.org|a"},
		{"range below", "Condition", "onset-age=lt45"},
		{"range contained", "Condition", "onset-age=eq45|http://unitsofmeasure.org|a"},
		{"range overlapping", "Condition", "onset-age=ap45"},
		{"range sorted", "Condition", "onset-age=ge0&_sort=-onset-age"},
	}
	explain := func(t *testing.T, query string, args []any) []string {
		t.Helper()
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
		return plans
	}
	// A plan step scans when it reads a table or index whole. "SCAN page"
	// reads the page's own rows (at most Count+1); "SCAN json_each" the
	// query's own list of codes; "SCAN (subquery-n)" the rows an estimate
	// counts, at most its limit; "SCAN r", in a walk, the window of the
	// type it walks, at most its budget. A search that walks its type in id order
	// (walk) reads resources_id from the start of the type, stopping at the
	// page's end, so must never sort.
	scans := func(p string, walk bool) bool {
		if walk && (strings.HasPrefix(p, "SEARCH r USING COVERING INDEX resources_id (type=?") ||
			strings.HasPrefix(p, "SEARCH r USING INDEX resources_id (type=?") || p == "SCAN r") {
			return false // the walk's window of resources, at most its budget
		}
		return strings.HasPrefix(p, "SCAN ") && p != "SCAN page" && !strings.HasPrefix(p, "SCAN json_each ") && !strings.HasPrefix(p, "SCAN (subquery-") ||
			strings.HasSuffix(p, "(type=?)") || walk && strings.Contains(p, "TEMP B-TREE")
	}
	for _, tt := range tests {
		// Each search is planned as if its conditions were rare (one of
		// them drives) and as if they were common (a search in id order
		// walks its type); the counts that choose are queries too.
		for _, common := range []bool{false, true} {
			name := tt.name + "/rare"
			if common {
				name = tt.name + "/common"
			}
			t.Run(name, func(t *testing.T) {
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
				estimate := func(query string, args []any) (int, error) {
					for _, p := range explain(t, query, args) {
						if scans(p, false) {
							t.Errorf("estimate scans: %q\nsql: %s", p, query)
						}
					}
					if common {
						return 1_000_000, nil
					}
					return 1, nil
				}
				pq, err := pageSQL(q, s.reader.lookup(t.Context()), estimate, true)
				if err != nil {
					t.Fatal(err)
				}
				query := pq.query
				plans := explain(t, query, pq.args)
				t.Logf("plan: %s", strings.Join(plans, " | "))
				walk := common && len(q.Sort) == 0
				for _, p := range plans {
					if scans(p, walk) {
						t.Errorf("%s?%s scans: %q\nplan: %s\nsql: %s", tt.typ, tt.query, p, strings.Join(plans, " | "), query)
					}
				}
			})
		}
	}
}
