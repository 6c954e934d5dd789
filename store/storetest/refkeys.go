package storetest

import (
	"testing"

	"carefhir/store"
)

// ReferenceKeysByID checks that a store written before references were
// stored once answers every search as one written after. Such a store
// holds, beside each reference's key "r" + Type + "/" + id, a key by id
// alone, "i" + id, that nothing may match, follow or sort by. addByID adds
// those keys to s in the engine's own storage, as earlier versions wrote
// them, and returns the store to search (s, or s opened again).
func ReferenceKeysByID(t *testing.T, s store.Store, addByID func(t *testing.T, s store.Store) store.Store) {
	if _, ok := s.(store.Finder); !ok {
		t.Skip("engine does not implement store.Finder")
	}
	reg := loadSearchData(t, s)
	// References of several types by one id, one whose id sorts after the
	// others while its type sorts before, and references of a parameter
	// that may name any type (Observation.focus).
	putIndexed(t, s, reg, []string{
		`{"resourceType":"Observation","id":"od","status":"final","code":{"text":"x"},"subject":{"reference":"Device/p1"}}`,
		`{"resourceType":"Observation","id":"oz","status":"final","code":{"text":"x"},"subject":{"reference":"Device/zz"}}`,
		`{"resourceType":"Observation","id":"of","status":"final","code":{"text":"x"},"focus":[{"reference":"Observation/od"},{"reference":"Patient/p2"}]}`,
	})
	cases := []struct{ typ, query, matches, included string }{
		{"Observation", "subject=p1", "ob1 ob3 od", "-"},
		{"Observation", "subject=Patient/p1", "ob1 ob3", "-"},
		{"Observation", "subject=" + searchBase + "/Patient/p1", "ob1 ob3", "-"},
		{"Observation", "subject:Patient=p1", "ob1 ob3", "-"},
		{"Observation", "subject=p1,p2,p3,p4,p5,p6,p7,p8,p9", "ob1 ob2 ob3 ob4 ob5 od", "-"},
		{"Observation", "focus=p2", "of", "-"},
		{"Observation", "focus=od", "of", "-"},
		{"Observation", "focus=ob1", "-", "-"},
		{"Patient", "general-practitioner=pr1", "p2", "-"},
		{"Patient", "general-practitioner=Organization/o1,o2", "p1 p3", "-"},
		{"Observation", "subject:missing=true", "of", "-"},
		{"Observation", "subject.family=smith", "ob2", "-"},
		{"Observation", "subject:Patient.general-practitioner.name=leeds", "ob1 ob3", "-"},
		{"Patient", "_has:Observation:subject:code=http://loinc.org|29463-7", "p1", "-"},
		{"Organization", "_has:Patient:general-practitioner:_has:CarePlan:subject:status=active", "o1", "-"},
		{"Observation", "status=final&_sort=subject", "of od oz ob1 ob3 ob2 ob5", "-"},
		{"Observation", "status=final&_sort=-subject", "ob5 ob2 ob1 ob3 oz od of", "-"},
		{"Observation", "subject=Patient/p1&_include=Observation:subject", "ob1 ob3", "Patient/p1"},
		{"Patient", "_id=p1,p2&_include=*", "p1 p2", "Organization/o1 Practitioner/pr1"},
		{"Observation", "_id=ob1&_include=Observation:subject&_include:iterate=Patient:general-practitioner", "ob1", "Organization/o1 Patient/p1"},
		{"Patient", "_id=p1&_revinclude=Observation:subject&_revinclude=CarePlan:subject", "p1", "CarePlan/cp1 Observation/ob1 Observation/ob3"},
		{"Organization", "_id=o1&_revinclude=Patient:general-practitioner&_revinclude:iterate=Observation:subject", "o1",
			"Observation/ob1 Observation/ob3 Patient/p1"},
	}
	// Every reference to a type, as the Patient-level export asks.
	anyPatient := store.Query{Type: "Observation", Count: 100, Where: []store.Clause{
		{Param: "subject", References: []store.ReferenceMatch{{Type: "Patient"}}}}}
	check := func(t *testing.T, s store.Store) {
		t.Helper()
		f := s.(store.Finder)
		for _, tt := range cases {
			q := plan(t, reg, tt.typ, tt.query)
			q.Total = store.TotalAccurate
			page, err := f.Find(t.Context(), q)
			if err != nil {
				t.Fatalf("%s?%s: %v", tt.typ, tt.query, err)
			}
			if got := idList(page.Matches); got != tt.matches {
				t.Errorf("%s?%s = %s, want %s", tt.typ, tt.query, got, tt.matches)
			}
			if got := typedList(page.Included); got != tt.included {
				t.Errorf("%s?%s includes %s, want %s", tt.typ, tt.query, got, tt.included)
			}
			if page.Total != len(page.Matches) {
				t.Errorf("%s?%s: total %d, want %d", tt.typ, tt.query, page.Total, len(page.Matches))
			}
		}
		page, err := f.Find(t.Context(), anyPatient)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := idList(page.Matches), "ob1 ob2 ob3 ob4 ob5"; got != want {
			t.Errorf("Observations of any Patient = %s, want %s", got, want)
		}
	}
	t.Run("stored once", func(t *testing.T) { check(t, s) })
	s = addByID(t, s)
	t.Run("stored with keys by id alone", func(t *testing.T) { check(t, s) })
}
