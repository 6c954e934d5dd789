package mongo_test

import (
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"carefhir/fhir/search"
	"carefhir/store"
	"carefhir/store/mongo/ferrettest"
	"carefhir/store/sqlite"
	"carefhir/store/storetest"
)

// FuzzEnginesAgree runs any query string as a search on the MongoDB engine
// (on FerretDB) and on the SQLite engine holding the same resources: the
// same plan gives the same total, pages and included resources on both,
// or the same refusal.
//
//	go test -run '^$' -fuzz '^FuzzEnginesAgree$' ./store/mongo/
func FuzzEnginesAgree(f *testing.F) {
	for _, q := range []string{
		"name=smi&birthdate=ge1970-03-01&birthdate=lt1970-04-01",
		"birthdate=1970&gender=female",
		"_has:CarePlan:subject:status=active",
		"status=active&subject:Patient.name=abb&_count=1",
		"date=ap2025-03&_sort=-date",
		"name:exact=Ó Briain",
		"name:contains=bri&_sort=birthdate",
		"gender:missing=true",
		"birthdate=ne1970&_count=2",
		"status:not=draft&date=sa2024",
		"code=http://loinc.org|8480-6&value-quantity=gt120||mm[Hg]",
		"value-quantity=ge0.15|http://unitsofmeasure.org|kg&_sort=-value-quantity",
		"date=ge2025-01-01T10:00:00+01:00&subject=Patient/a",
		"component-code-value-quantity=http://loinc.org|8480-6$gt100&_count=1",
		"subject:Patient.birthdate=1970&_sort=date,-_id",
		"code:text=systolic&status=final,amended",
		"_total=accurate&_count=1&_include=Observation:subject",
		"_revinclude=Observation:subject&_count=2&_sort=family",
		"_total=accurate&status=active&_include=CarePlan:subject&_count=1",
	} {
		for _, typ := range storetest.FuzzTypes {
			f.Add(typ, q)
		}
	}
	reg, err := search.Load(storetest.FuzzTypes)
	if err != nil {
		f.Fatal(err)
	}
	ix := search.NewIndexer(reg, search.FHIRPath, "")
	lite, err := sqlite.Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { lite.Close() })
	mongo := open(f, ferrettest.Start(f))
	for _, r := range []struct{ typ, id, json string }{
		{"Patient", "a", `{"resourceType":"Patient","name":[{"family":"Abbott","given":["Ann"]}],"birthDate":"1970-03-15","gender":"female"}`},
		{"Patient", "b", `{"resourceType":"Patient","name":[{"family":"Ó Briain"}],"birthDate":"1970"}`},
		{"Patient", "c", `{"resourceType":"Patient","name":[{"family":"Smith"}],"birthDate":"1985-07-01","gender":"male"}`},
		{"CarePlan", "p1", `{"resourceType":"CarePlan","status":"active","intent":"plan","subject":{"reference":"Patient/a"},"period":{"start":"2025-03-01"}}`},
		{"CarePlan", "p2", `{"resourceType":"CarePlan","status":"draft","intent":"plan","subject":{"reference":"Patient/c"},"period":{"start":"2024-01-01","end":"2024-06-30"}}`},
		{"CarePlan", "p3", `{"resourceType":"CarePlan","status":"active","intent":"plan","subject":{"reference":"Patient/b"}}`},
		{"Observation", "o1", `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8480-6","display":"Systolic blood pressure"}],"text":"Systolic"},"subject":{"reference":"Patient/a"},"effectiveDateTime":"2025-01-01T10:30:00+01:00","valueQuantity":{"value":125,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"},"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":125,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`},
		{"Observation", "o2", `{"resourceType":"Observation","status":"amended","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},"subject":{"reference":"Patient/c"},"effectivePeriod":{"start":"2024-12-31","end":"2025-01-02"},"valueQuantity":{"value":150,"unit":"g","system":"http://unitsofmeasure.org","code":"g"}}`},
		{"Observation", "o3", `{"resourceType":"Observation","status":"final","code":{"text":"note"},"subject":{"reference":"Patient/b"},"valueString":"ok"}`},
	} {
		index, err := ix.IndexJSON(r.typ, []byte(r.json))
		if err != nil {
			f.Fatal(err)
		}
		for _, st := range []store.Store{lite, mongo} {
			if err := st.Put(f.Context(), &store.Write{Type: r.typ, ID: r.id, LastUpdated: time.UnixMilli(1_700_000_000_000), JSON: []byte(r.json), Index: index}); err != nil {
				f.Fatal(err)
			}
		}
	}
	f.Fuzz(func(t *testing.T, typ, query string) {
		q, ok := storetest.FuzzQuery(reg, typ, query, time.UnixMilli(1_800_000_000_000))
		if !ok {
			return
		}
		// Each engine's answer: the total, the matches of the first two
		// pages (each following its own cursor) and the resources they
		// include, as one list of words.
		var answers [2][]string
		for i, st := range []store.Store{lite, mongo} {
			q := q
			for range 2 {
				page, err := st.(store.Finder).Find(t.Context(), q)
				if errors.Is(err, store.ErrBadCursor) {
					answers[i] = append(answers[i], "bad cursor")
					break
				}
				if err != nil {
					t.Fatalf("%s?%s on engine %d: %v", typ, query, i, err)
				}
				answers[i] = append(answers[i], "total", strconv.Itoa(page.Total), "matches")
				for _, v := range page.Matches {
					answers[i] = append(answers[i], v.ID)
				}
				var included []string
				for _, v := range page.Included {
					included = append(included, v.Type+"/"+v.ID)
				}
				slices.Sort(included)
				answers[i] = append(append(answers[i], "included"), included...)
				if page.Next == "" {
					break
				}
				q.Cursor = page.Next
			}
		}
		if !slices.Equal(answers[0], answers[1]) {
			t.Fatalf("%s?%s:\nSQLite  %v\nMongoDB %v", typ, query, answers[0], answers[1])
		}
	})
}
