package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"carefhir/fhir/search"
	"carefhir/store"
)

// searchTypes are the resource types of the search data set.
var searchTypes = []string{"CarePlan", "CodeSystem", "Observation", "Organization", "Patient", "Practitioner", "Questionnaire", "QuestionnaireResponse", "ValueSet"}

// searchBase is the server base of the data set's absolute references.
const searchBase = "https://fhir.example.nhs.uk/fhir"

// searchData is a small data set with the edge cases search must get
// right: accents and apostrophes, year-end and leap-day dates, time zones
// that move a value into another day, open periods, decimals written with
// trailing zeros, units, references in every form.
var searchData = []string{
	`{"resourceType":"Organization","id":"o1","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"A81001"}],"name":"Leeds Medical Practice"}`,
	`{"resourceType":"Organization","id":"o2","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"B82002"}],"name":"York Surgery"}`,
	`{"resourceType":"Practitioner","id":"pr1","name":[{"family":"Grey","given":["Ann"],"prefix":["Dr"]}]}`,
	`{"resourceType":"Patient","id":"p1","meta":{"tag":[{"system":"http://example.org/tags","code":"vip"}]},
	  "identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}],"active":true,
	  "name":[{"family":"Ó Briain","given":["Zoë"]}],"gender":"female","birthDate":"1970-03-01",
	  "address":[{"city":"Leeds","postalCode":"LS1 4AP"}],"generalPractitioner":[{"reference":"Organization/o1"}]}`,
	`{"resourceType":"Patient","id":"p2","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000017"}],
	  "name":[{"family":"Smith","given":["John"]}],"gender":"male","birthDate":"1970-12-31",
	  "address":[{"city":"LEEDS"}],"generalPractitioner":[{"reference":"` + searchBase + `/Practitioner/pr1"}]}`,
	`{"resourceType":"Patient","id":"p3","name":[{"family":"Smyth","given":["Joanna"]}],"gender":"female","birthDate":"1985-07-15",
	  "generalPractitioner":[{"reference":"Organization/o2"}]}`,
	`{"resourceType":"Patient","id":"p4","name":[{"family":"Jones","given":["Siân"]}],"gender":"female","birthDate":"2024-02-29"}`,
	`{"resourceType":"Patient","id":"p5","name":[{"family":"O'Neil"}],"gender":"unknown"}`,
	`{"resourceType":"Observation","id":"ob1","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},
	  "subject":{"reference":"Patient/p1"},"effectiveDateTime":"2025-01-10T09:00:00+01:00",
	  "valueQuantity":{"value":120.50,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}`,
	`{"resourceType":"Observation","id":"ob2","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},
	  "subject":{"reference":"Patient/p2"},"effectivePeriod":{"start":"2025-01-11"},
	  "valueQuantity":{"value":135,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}`,
	`{"resourceType":"Observation","id":"ob3","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},
	  "subject":{"reference":"Patient/p1"},"effectiveDateTime":"2024-12-31T23:30:00-02:00",
	  "valueQuantity":{"value":70.0,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`,
	`{"resourceType":"Observation","id":"ob4","status":"preliminary","code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},
	  "subject":{"reference":"Patient/p3"},"effectiveDateTime":"2025-02",
	  "valueQuantity":{"value":110,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}`,
	`{"resourceType":"Observation","id":"ob5","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
	  "subject":{"reference":"Patient/p4"},
	  "component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":150,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
	               {"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":95,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`,
	`{"resourceType":"CarePlan","id":"cp1","status":"active","intent":"plan","subject":{"reference":"Patient/p1"},
	  "period":{"start":"2025-01-01","end":"2025-12-31"}}`,
	`{"resourceType":"CarePlan","id":"cp2","status":"completed","intent":"plan","subject":{"reference":"Patient/p2"}}`,
}

// searchEnv is the registry and indexer of the data set, built once.
var searchEnv = sync.OnceValues(func() (*search.Registry, error) {
	reg, err := search.Load(searchTypes)
	if err != nil {
		return nil, err
	}
	return reg.WithTerminology(searchTerms{}), nil
})

// searchTerms is the terminology of the data set: ValueSets of LOINC codes,
// one with more codes than a query of single values may hold, one of an
// element of type code (which carries no system), and a blood-pressure
// hierarchy of LOINC codes (made up: LOINC has none here).
type searchTerms struct{}

const (
	loinc       = "http://loinc.org"
	manyCodes   = 3000
	obsStatuses = "http://hl7.org/fhir/observation-status"
)

func (searchTerms) Expand(url string) ([]search.Coding, error) {
	switch url {
	case "http://example.org/ValueSet/bp":
		return []search.Coding{{System: loinc, Code: "8480-6"}, {System: loinc, Code: "8462-4"}}, nil
	case "http://example.org/ValueSet/many":
		cs := []search.Coding{{System: loinc, Code: "29463-7"}}
		for i := range manyCodes {
			cs = append(cs, search.Coding{System: loinc, Code: fmt.Sprintf("9%04d-0", i)})
		}
		return cs, nil
	case "http://example.org/ValueSet/final":
		return []search.Coding{{System: obsStatuses, Code: "final"}, {System: obsStatuses, Code: "amended"}}, nil
	}
	return nil, fmt.Errorf("%w: ValueSet %s", search.ErrUnknown, url)
}

var bpParents = map[string]string{"8480-6": "85354-9", "8462-4": "85354-9"}

func (searchTerms) Below(system, code string) ([]string, error) {
	out := []string{code}
	for _, c := range []string{"8480-6", "8462-4"} {
		if system == loinc && bpParents[c] == code {
			out = append(out, c)
		}
	}
	return out, nil
}

func (searchTerms) Above(system, code string) ([]string, error) {
	out := []string{code}
	if p, ok := bpParents[code]; ok && system == loinc {
		out = append(out, p)
	}
	return out, nil
}

// loadSearchData writes the data set into s, indexed as the server
// indexes, and returns the registry to parse queries with.
func loadSearchData(t *testing.T, s store.Store) *search.Registry {
	t.Helper()
	reg, err := searchEnv()
	if err != nil {
		t.Fatal(err)
	}
	putIndexed(t, s, reg, searchData)
	return reg
}

// putIndexed writes each resource of data with the index reg extracts from
// it, the i-th last updated at(i).
func putIndexed(t *testing.T, s store.Store, reg *search.Registry, data []string) {
	t.Helper()
	ix := search.NewIndexer(reg, search.FHIRPath, searchBase)
	for i, body := range data {
		var head struct{ ResourceType, ID string }
		if err := json.Unmarshal([]byte(body), &head); err != nil {
			t.Fatalf("data %d: %v", i, err)
		}
		index, err := ix.IndexJSON(head.ResourceType, []byte(body))
		if err != nil {
			t.Fatalf("index %s/%s: %v", head.ResourceType, head.ID, err)
		}
		put(t, s, &store.Write{Type: head.ResourceType, ID: head.ID, LastUpdated: at(i), JSON: []byte(body), Index: index})
	}
}

// searchFixture loads the data set into s and returns s as a Finder, or
// skips the test if the engine is not one.
func searchFixture(t *testing.T, s store.Store) (store.Finder, *search.Registry) {
	t.Helper()
	f, ok := s.(store.Finder)
	if !ok {
		t.Skip("engine does not implement store.Finder")
	}
	return f, loadSearchData(t, s)
}

// plan parses a query of the data set.
func plan(t *testing.T, reg *search.Registry, typ, query string) store.Query {
	t.Helper()
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	p, err := reg.Parse(typ, q, search.Options{Strict: true, Base: searchBase, Now: t0})
	if err != nil {
		t.Fatalf("%s?%s: %v", typ, query, err)
	}
	return p.Query
}

func testFind(t *testing.T, s store.Store) {
	f, reg := searchFixture(t, s)
	tests := []struct {
		name, typ, query string
		want             string // ids in result order, space-separated; "-" for none
	}{
		{"string prefix", "Patient", "name=jo", "p2 p3 p4"},
		{"string accents folded both ways", "Patient", "name=ZOË", "p1"},
		{"string accent-free query", "Patient", "family=o briain", "p1"},
		{"string apostrophe", "Patient", "family=o'n", "p5"},
		{"string exact", "Patient", "family:exact=Smith", "p2"},
		{"string exact is case-sensitive", "Patient", "family:exact=smith", "-"},
		{"string contains", "Patient", "given:contains=ann", "p3"},
		{"string or", "Patient", "family=smith,jones", "p2 p4"},
		{"string and", "Patient", "name=jo&name=smy", "p3"},
		{"address city case", "Patient", "address-city=leeds", "p1 p2"},
		{"token system|code", "Patient", "identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009", "p1"},
		{"token code", "Patient", "identifier=9000000017", "p2"},
		{"token system|", "Patient", "identifier=https://fhir.nhs.uk/Id/nhs-number|", "p1 p2"},
		{"token |code has no system", "Patient", "identifier=|9000000009", "-"},
		{"token not includes missing", "Patient", "gender:not=female", "p2 p5"},
		{"boolean token", "Patient", "active=true", "p1"},
		{"missing true", "Patient", "birthdate:missing=true", "p5"},
		{"missing false", "Patient", "identifier:missing=false", "p1 p2"},
		{"date year", "Patient", "birthdate=1970", "p1 p2"},
		{"date month", "Patient", "birthdate=1970-03", "p1"},
		{"date year end", "Patient", "birthdate=1970-12-31", "p2"},
		{"leap day", "Patient", "birthdate=2024-02-29", "p4"},
		{"ge", "Patient", "birthdate=ge1970-12-31", "p2 p3 p4"},
		{"lt", "Patient", "birthdate=lt1970-03-02", "p1"},
		{"sa", "Patient", "birthdate=sa1980", "p3 p4"},
		{"eb", "Patient", "birthdate=eb1971", "p1 p2"},
		{"ne needs a value", "Patient", "birthdate=ne1970", "p3 p4"},
		{"ne on periods and partial dates", "Observation", "date=ne2025-01-10", "ob2 ob3 ob4"},
		{"ne among other values", "Patient", "birthdate=ne1970,1985-07-15", "p3 p4"},
		{"ne of each value", "Patient", "birthdate=ne1970,ne1985", "p1 p2 p3 p4"},
		{"date range by two parameters", "Patient", "birthdate=ge1970&birthdate=lt1971", "p1 p2"},
		{"time zone moves the day forward", "Observation", "date=2025-01-01", "ob3"},
		{"time zone: not the local day", "Observation", "date=2024-12-31", "-"},
		{"instant within a day", "Observation", "date=2025-01-10", "ob1"},
		{"open period is not within a year", "Observation", "date=2025", "ob1 ob3 ob4"},
		{"open period reaches later dates", "Observation", "date=ge2025-06", "ob2"},
		{"month value within a range", "Observation", "date=ge2025-02-01&date=le2025-02-28", "ob2 ob4"},
		{"period overlaps", "CarePlan", "date=ap2025-06-15", "cp1"},
		{"quantity precision range", "Observation", "value-quantity=121", "ob1"},
		{"quantity not in range", "Observation", "value-quantity=120", "-"},
		{"quantity decimal", "Observation", "value-quantity=120.5", "ob1"},
		{"quantity gt with unit", "Observation", "value-quantity=gt100||mm[Hg]", "ob1 ob2 ob4"},
		{"quantity system and code", "Observation", "value-quantity=70|http://unitsofmeasure.org|kg", "ob3"},
		{"quantity unit mismatch", "Observation", "value-quantity=70||mm[Hg]", "-"},
		{"quantity lt", "Observation", "value-quantity=lt100", "ob3"},
		{"exponent: 1e2 is [95, 105)", "Observation", "value-quantity=1e2", "-"},
		{"exponent: 1e2 finds 95", "Observation", "component-value-quantity=1e2", "ob5"},
		{"exponent: 1.1e2 is [105, 115)", "Observation", "value-quantity=1.1e2", "ob4"},
		{"exponent: 1.2e2 is [115, 125)", "Observation", "value-quantity=1.2e2", "ob1"},
		{"exponent: 1.3e2 is [125, 135)", "Observation", "value-quantity=1.3e2", "-"},
		{"exponent: 1.205e2 is [120.495, 120.505)", "Observation", "value-quantity=1.205e2", "ob1"},
		{"reference Type/id", "Patient", "general-practitioner=Organization/o1", "p1"},
		{"reference id", "Patient", "general-practitioner=pr1", "p2"},
		{"reference absolute at base", "Patient", "general-practitioner=" + searchBase + "/Practitioner/pr1", "p2"},
		{"reference type modifier", "Patient", "general-practitioner:Organization=o2", "p3"},
		{"token not on status", "Observation", "status:not=final", "ob4"},
		{"tag", "Patient", "_tag=vip", "p1"},
		{"id", "Patient", "_id=p1,p3,nobody", "p1 p3"},
		{"lastUpdated", "Patient", "_lastUpdated=ge" + at(5).Format("2006-01-02T15:04:05.000Z07:00"), "p3 p4 p5"},
		{"chain", "Observation", "subject:Patient.name=smith", "ob2"},
		{"chain without type", "Observation", "subject.birthdate=1970", "ob1 ob2 ob3"},
		{"two-link chain", "Observation", "subject:Patient.general-practitioner:Organization.name=leeds", "ob1 ob3"},
		{"chain on identifier", "Patient", "general-practitioner:Organization.identifier=B82002", "p3"},
		{"has", "Patient", "_has:Observation:patient:code=8480-6", "p1 p2 p3"},
		{"has with prefix", "Patient", "_has:Observation:patient:value-quantity=gt125", "p2"},
		{"has without match", "Organization", "_has:Patient:organization:name=x", "-"},
		{"nested has", "Organization", "_has:Patient:general-practitioner:_has:Observation:patient:code=29463-7", "o1"},
		{"compartment", "Observation", "", "ob1 ob3"},
		{"compartment and filter", "Observation", "code=8480-6", "ob1"},
		{"compartment of another type", "CarePlan", "_sort=-_id", "cp1"},
		{"sort ascending, missing first", "Patient", "_sort=birthdate", "p5 p1 p2 p3 p4"},
		{"sort descending, missing last", "Patient", "_sort=-birthdate", "p4 p3 p2 p1 p5"},
		{"sort ties by id", "Patient", "_sort=gender", "p1 p3 p4 p2 p5"},
		{"sort two keys", "Patient", "_sort=gender,-birthdate", "p4 p3 p1 p2 p5"},
		{"sort by lastUpdated desc", "Patient", "_sort=-_lastUpdated&_count=2", "p5 p4"},
		{"sort strings, normalised", "Patient", "_sort=family", "p4 p1 p5 p2 p3"},
		{"sort quantity", "Observation", "_sort=-value-quantity", "ob2 ob1 ob4 ob3 ob5"},
		{"token in a ValueSet", "Observation", "code:in=http://example.org/ValueSet/bp", "ob1 ob2 ob4"},
		{"token not in a ValueSet", "Observation", "code:not-in=http://example.org/ValueSet/bp", "ob3 ob5"},
		{"token in a large ValueSet", "Observation", "code:in=http://example.org/ValueSet/many", "ob3"},
		{"token not in a large ValueSet", "Observation", "code:not-in=http://example.org/ValueSet/many", "ob1 ob2 ob4 ob5"},
		{"code without a system in a ValueSet", "Observation", "status:in=http://example.org/ValueSet/final", "ob1 ob2 ob3 ob5"},
		{"token below", "Observation", "code:below=http://loinc.org|85354-9", "ob1 ob2 ob4 ob5"},
		{"token above", "Observation", "code:above=http://loinc.org|8462-4", "ob5"},
		{"quantity in another UCUM unit", "Observation", "value-quantity=gt16|http://unitsofmeasure.org|kPa", "ob1 ob2"},
		{"quantity in grams", "Observation", "value-quantity=70000|http://unitsofmeasure.org|g", "ob3"},
		{"quantity precision after conversion", "Observation", "value-quantity=70.0|http://unitsofmeasure.org|kg", "ob3"},
		{"quantity precision excludes after conversion", "Observation", "value-quantity=70.1|http://unitsofmeasure.org|kg", "-"},
		{"quantity in pounds", "Observation", "value-quantity=154|http://unitsofmeasure.org|[lb_av]", "ob3"},
		{"quantity in an incommensurable unit", "Observation", "value-quantity=70|http://unitsofmeasure.org|L", "-"},
		{"quantity ne in UCUM units", "Observation", "value-quantity=ne100|http://unitsofmeasure.org|mm[Hg]", "ob1 ob2 ob4"},
		{"quantity ne needs a value in the unit", "Observation", "value-quantity=ne70|http://unitsofmeasure.org|kg", "-"},
		{"quantity ne with precision", "Observation", "value-quantity=ne120.5||mm[Hg]", "ob2 ob4"},
		{"quantity ne matches when some value differs", "Observation", "component-value-quantity=ne150", "ob5"},
		{"quantity ne of each value", "Observation", "component-value-quantity=ne150&component-value-quantity=ne95", "ob5"},
		{"quantity values in and out of UCUM", "Observation", "value-quantity=70000|http://unitsofmeasure.org|g,110||mm[Hg]", "ob3 ob4"},
		{"composite quantity in another UCUM unit", "Observation", "code-value-quantity=http://loinc.org|8480-6$gt16|http://unitsofmeasure.org|kPa", "ob1 ob2"},
		{"component composite in another UCUM unit", "Observation", "component-code-value-quantity=8480-6$gt19|http://unitsofmeasure.org|kPa", "ob5"},
		{"component composite in UCUM keeps components apart", "Observation", "component-code-value-quantity=8462-4$gt19|http://unitsofmeasure.org|kPa", "-"},
		{"composite quantity", "Observation", "code-value-quantity=http://loinc.org|8480-6$gt115", "ob1 ob2"},
		{"composite quantity with unit", "Observation", "code-value-quantity=8480-6$lt125||mm[Hg]", "ob1 ob4"},
		{"composite keeps code and value together", "Observation", "code-value-quantity=29463-7$gt100", "-"},
		{"component composite", "Observation", "component-code-value-quantity=8480-6$gt140", "ob5"},
		{"component composite does not mix components", "Observation", "component-code-value-quantity=8462-4$gt140", "-"},
		{"component composite or", "Observation", "component-code-value-quantity=8462-4$gt140,8462-4$90", "-"},
		{"composite ne", "Observation", "code-value-quantity=8480-6$ne120.5", "ob2 ob4"},
		{"composite ne in UCUM units", "Observation", "code-value-quantity=8480-6$ne16|http://unitsofmeasure.org|kPa", "ob2 ob4"},
		{"composite ne keeps code and value together", "Observation", "component-code-value-quantity=8480-6$ne150", "-"},
		{"component composite ne", "Observation", "component-code-value-quantity=8480-6$ne140,8462-4$ne95", "ob5"},
		{"component composite range", "Observation", "component-code-value-quantity=8462-4$ge90&component-code-value-quantity=8480-6$ge140", "ob5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := plan(t, reg, tt.typ, tt.query)
			if strings.HasPrefix(tt.name, "compartment") {
				c, _ := reg.Compartment(tt.typ, "p1")
				q.Where = append(q.Where, c)
			}
			page, err := f.Find(t.Context(), q)
			if err != nil {
				t.Fatalf("%s?%s: %v", tt.typ, tt.query, err)
			}
			if got := idList(page.Matches); got != tt.want {
				t.Errorf("%s?%s = %s, want %s", tt.typ, tt.query, got, tt.want)
			}
		})
	}
}

func idList(vs []*store.Version) string {
	if len(vs) == 0 {
		return "-"
	}
	ids := make([]string, len(vs))
	for i, v := range vs {
		ids[i] = v.ID
	}
	return strings.Join(ids, " ")
}

func typedList(vs []*store.Version) string {
	if len(vs) == 0 {
		return "-"
	}
	ids := make([]string, len(vs))
	for i, v := range vs {
		ids[i] = v.Type + "/" + v.ID
	}
	slices.Sort(ids)
	return strings.Join(ids, " ")
}

func testFindInclude(t *testing.T, s store.Store) {
	f, reg := searchFixture(t, s)
	tests := []struct {
		name, typ, query  string
		matches, included string
	}{
		{"include", "Observation", "subject=Patient/p1&_include=Observation:subject", "ob1 ob3", "Patient/p1"},
		{"include target type", "Patient", "_id=p1,p2&_include=Patient:general-practitioner:Practitioner", "p1 p2", "Practitioner/pr1"},
		{"include wildcard", "Patient", "_id=p1&_include=*", "p1", "Organization/o1"},
		{"include iterate", "Observation", "_id=ob1&_include=Observation:subject&_include:iterate=Patient:general-practitioner", "ob1", "Organization/o1 Patient/p1"},
		{"revinclude", "Patient", "_id=p1&_revinclude=CarePlan:subject", "p1", "CarePlan/cp1"},
		{"revinclude iterate", "Organization", "_id=o1&_revinclude=Patient:general-practitioner&_revinclude:iterate=Observation:subject", "o1",
			"Observation/ob1 Observation/ob3 Patient/p1"},
		{"included match is not repeated", "Patient", "_id=p1&_revinclude=Observation:subject&_include:iterate=Observation:subject", "p1",
			"Observation/ob1 Observation/ob3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := f.Find(t.Context(), plan(t, reg, tt.typ, tt.query))
			if err != nil {
				t.Fatal(err)
			}
			if got := idList(page.Matches); got != tt.matches {
				t.Errorf("matches %s, want %s", got, tt.matches)
			}
			if got := typedList(page.Included); got != tt.included {
				t.Errorf("included %s, want %s", got, tt.included)
			}
		})
	}
}

func testFindPaging(t *testing.T, s store.Store) {
	f, reg := searchFixture(t, s)
	for _, query := range []string{"_count=2", "_count=2&_sort=-birthdate", "_count=1&_sort=gender,family", "_count=3&_sort=-_lastUpdated"} {
		t.Run(query, func(t *testing.T) {
			q := plan(t, reg, "Patient", query)
			q.Total = store.TotalAccurate
			all := q
			all.Count = 100
			want, err := f.Find(t.Context(), all)
			if err != nil {
				t.Fatal(err)
			}
			var got []*store.Version
			var forward []string // each page's ids
			var page *store.Page
			for n := 0; ; n++ {
				if page, err = f.Find(t.Context(), q); err != nil {
					t.Fatal(err)
				}
				if page.Total != 5 {
					t.Errorf("page %d: total %d, want 5", n, page.Total)
				}
				if n == 0 && page.Prev != "" {
					t.Error("the first page has a previous page")
				}
				got = append(got, page.Matches...)
				forward = append(forward, idList(page.Matches))
				if page.Next == "" || n > 10 {
					break
				}
				q.Cursor = page.Next
			}
			if idList(got) != idList(want.Matches) {
				t.Errorf("pages give %s, one page gives %s", idList(got), idList(want.Matches))
			}
			// Back from the last page, the same pages in reverse.
			backward := []string{idList(page.Matches)}
			for n := 0; page.Prev != "" && n < 10; n++ {
				q.Cursor = page.Prev
				if page, err = f.Find(t.Context(), q); err != nil {
					t.Fatal(err)
				}
				backward = append(backward, idList(page.Matches))
			}
			slices.Reverse(backward)
			if !slices.Equal(backward, forward) {
				t.Errorf("pages backward %q, forward %q", backward, forward)
			}
		})
	}
	t.Run("writes between pages", func(t *testing.T) {
		q := plan(t, reg, "Patient", "_count=2")
		page, err := f.Find(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		// A resource sorting before the cursor and one after it.
		put(t, s, &store.Write{Type: "Patient", ID: "p0", LastUpdated: at(100), JSON: []byte(`{}`)})
		put(t, s, &store.Write{Type: "Patient", ID: "p9", LastUpdated: at(101), JSON: []byte(`{}`)})
		got := idList(page.Matches)
		for q.Cursor = page.Next; q.Cursor != ""; q.Cursor = page.Next {
			if page, err = f.Find(t.Context(), q); err != nil {
				t.Fatal(err)
			}
			got += " " + idList(page.Matches)
		}
		if got != "p1 p2 p3 p4 p5 p9" {
			t.Errorf("pages give %s, want p1 p2 p3 p4 p5 p9", got)
		}
	})
	t.Run("bad cursor", func(t *testing.T) {
		q := plan(t, reg, "Patient", "_count=2")
		// {"k":[5]}: a number where the id is.
		for _, c := range []string{"x", "eyJrIjpbXX0", fmt.Sprint(strings.Repeat("A", 40)), "eyJrIjpbNV19"} {
			q.Cursor = c
			if _, err := f.Find(t.Context(), q); !errorsIs(err, store.ErrBadCursor) {
				t.Errorf("cursor %q: err = %v, want ErrBadCursor", c, err)
			}
		}
	})
	t.Run("ids only", func(t *testing.T) {
		q := plan(t, reg, "Patient", "_count=2&_sort=-birthdate")
		whole := q
		whole.Count = 100
		want, err := f.Find(t.Context(), whole)
		if err != nil {
			t.Fatal(err)
		}
		q.IDsOnly = true
		var got []*store.Version
		for n := 0; n < 10; n++ {
			page, err := f.Find(t.Context(), q)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, page.Matches...)
			if q.Cursor = page.Next; q.Cursor == "" {
				break
			}
		}
		if idList(got) != idList(want.Matches) {
			t.Errorf("pages of ids give %s, whole resources %s", idList(got), idList(want.Matches))
		}
		for i, v := range got {
			if v.JSON != nil || !v.LastUpdated.IsZero() || i < len(want.Matches) && v.VersionID != want.Matches[i].VersionID {
				t.Errorf("%s: version %d, lastUpdated %v, JSON %q; want version %d and neither", v.ID, v.VersionID, v.LastUpdated, v.JSON, want.Matches[i].VersionID)
			}
		}
	})
	t.Run("unordered", func(t *testing.T) {
		// Ids that sort against the order they are written in, so that
		// an engine answering in the order of its rows pages through a
		// different order than the ids'.
		ix := search.NewIndexer(reg, search.FHIRPath, searchBase)
		for i, id := range []string{"u9", "u1", "u5", "u3", "u7"} {
			status := "final"
			if i == 2 {
				status = "preliminary"
			}
			body := `{"resourceType":"Observation","id":"` + id + `","status":"` + status + `","code":{"coding":[{"system":"http://example.org/unordered","code":"` + []string{"a", "b"}[i%2] + `"}]},"subject":{"reference":"Patient/p1"}}`
			index, err := ix.IndexJSON("Observation", []byte(body))
			if err != nil {
				t.Fatal(err)
			}
			put(t, s, &store.Write{Type: "Observation", ID: id, LastUpdated: at(200 + i), JSON: []byte(body), Index: index})
		}
		// Lists long enough for an engine to look them up as a whole, and
		// the short lists they select the same resources as.
		longSubjects := "subject=Patient/p1,Patient/n1,Patient/n2,Patient/n3,Patient/n4,Patient/n5,Patient/n6,Patient/n7,Patient/n8,Patient/n9"
		longCodes := "code=http://example.org/unordered|a,x|1,x|2,x|3,x|4,x|5,x|6,x|7,x|8,x|9&subject=Patient/p1"
		sameAs := map[string]string{
			longSubjects: "subject=Patient/p1",
			longCodes:    "code=http://example.org/unordered|a&subject=Patient/p1",
		}
		for _, query := range []string{
			"code=http://example.org/unordered|a",
			"code=http://example.org/unordered|a,http://example.org/unordered|b",
			"code=http://example.org/unordered|a,http://example.org/unordered|b&status=final",
			"subject=Patient/p1",
			longSubjects,
			longCodes,
			"_id=u9,u1,ob1",
			"status:not=preliminary",
		} {
			t.Run(query, func(t *testing.T) {
				q := plan(t, reg, "Observation", query)
				q.Count = 100
				want, err := f.Find(t.Context(), q)
				if err != nil {
					t.Fatal(err)
				}
				if short, ok := sameAs[query]; ok {
					// What the long list adds matches nothing.
					sq := plan(t, reg, "Observation", short)
					sq.Count = 100
					sp, err := f.Find(t.Context(), sq)
					if err != nil {
						t.Fatal(err)
					}
					if idList(sp.Matches) != idList(want.Matches) {
						t.Errorf("%s: %s, want what %s finds: %s", query, idList(want.Matches), short, idList(sp.Matches))
					}
				}
				if len(want.Matches) == 0 {
					t.Fatalf("%s matches nothing to page through", query)
				}
				q.Count, q.Unordered = 1, true
				var got []string
				for n := 0; n <= len(want.Matches); n++ {
					page, err := f.Find(t.Context(), q)
					if err != nil {
						t.Fatal(err)
					}
					for _, v := range page.Matches {
						got = append(got, v.ID)
						if v.JSON == nil {
							t.Errorf("%s came without its body", v.ID)
						}
					}
					if q.Cursor = page.Next; q.Cursor == "" {
						break
					}
				}
				slices.Sort(got)
				if strings.Join(got, " ") != idList(want.Matches) {
					t.Errorf("pages of one match give %s, want %s once each", strings.Join(got, " "), idList(want.Matches))
				}
			})
		}
	})
	t.Run("count only", func(t *testing.T) {
		q := plan(t, reg, "Observation", "_summary=count&code=8480-6")
		page, err := f.Find(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		if page.Total != 3 || len(page.Matches) != 0 {
			t.Errorf("total %d with %d matches, want 3 and none", page.Total, len(page.Matches))
		}
	})
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func testReindex(t *testing.T, s store.Store) {
	r, ok := s.(store.Reindexer)
	if !ok {
		t.Skip("engine does not implement store.Reindexer")
	}
	ctx := t.Context()
	put(t, s, create("Patient", "b", at(0), "b", tok("identifier", "", "old")))
	put(t, s, create("Patient", "a", at(1), "a", tok("identifier", "", "old")))
	put(t, s, create("Patient", "gone", at(2), "gone"))
	put(t, s, tombstone("Patient", "gone", 1, at(3)))
	put(t, s, create("Observation", "o", at(4), "o"))
	var scanned []*store.Version
	if err := r.Scan(ctx, "Patient", func(v *store.Version) error { scanned = append(scanned, v); return nil }); err != nil {
		t.Fatal(err)
	}
	if got := idList(scanned); got != "a b" {
		t.Fatalf("Scan(Patient) = %s, want a b (current, not deleted, in id order)", got)
	}
	for _, v := range scanned {
		ix := store.Index{Tokens: []store.Token{tok("identifier", "", "new")}}
		if err := r.Reindex(ctx, v, ix); err != nil {
			t.Fatalf("Reindex %s: %v", v.ID, err)
		}
	}
	for code, want := range map[string]string{"old": "-", "new": "a b"} {
		found, err := s.Search(ctx, store.Query{Type: "Patient", Where: []store.Clause{clause("identifier", store.TokenMatch{Code: code, AnySystem: true})}})
		if err != nil {
			t.Fatal(err)
		}
		if got := idList(found); got != want {
			t.Errorf("identifier=%s finds %s, want %s", code, got, want)
		}
	}
	checkRead(t, s, written(create("Patient", "a", at(1), "a")))
	page, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "a", Count: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Versions) != 1 {
		t.Errorf("history of Patient/a has %d versions after reindexing, want 1", len(page.Versions))
	}
	// A version that is no longer current is refused.
	put(t, s, update("Patient", "a", 1, at(5), "a2"))
	err = r.Reindex(ctx, scanned[0], store.Index{})
	checkConflict(t, err, "Patient", "a", 1, 2)
}

// testPagingUnderWrites walks every page of a search sorted with many ties
// while another writer inserts resources that sort before, among and after
// the pages: every resource that existed when the walk began is returned
// exactly once, and no resource twice.
func testPagingUnderWrites(t *testing.T, s store.Store, n int) {
	f, ok := s.(store.Finder)
	if !ok {
		t.Skip("engine does not implement store.Finder")
	}
	ctx := t.Context()
	patient := func(id string, year int) *store.Write {
		birth := time.Date(1940+year, time.January, 1, 0, 0, 0, 0, time.UTC)
		return &store.Write{Type: "Patient", ID: id, LastUpdated: at(0), JSON: []byte(`{}`), Index: store.Index{
			Dates:   []store.Date{{Param: "birthdate", Low: birth, High: birth.AddDate(0, 0, 1).Add(-time.Millisecond)}},
			Strings: []store.String{{Param: "family", Value: "smith", Exact: "Smith"}},
		}}
	}
	before := map[string]bool{}
	for i := range n {
		id := fmt.Sprintf("p%05d", i)
		put(t, s, patient(id, i%50)) // 50 distinct birth years: ties
		before[id] = true
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// Ids and years on both sides of any cursor.
			if err := s.Put(ctx, patient(fmt.Sprintf("new%05d", i), (i*7)%60)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	q := store.Query{Type: "Patient", Count: max(n/12, 10),
		Where: []store.Clause{{Param: "family", Strings: []store.StringMatch{{Value: "smi"}}}},
		Sort:  []store.SortKey{{Param: "birthdate", Desc: true}}}
	seen := map[string]int{}
	for pages := 0; ; pages++ {
		page, err := f.Find(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Matches {
			seen[v.ID]++
		}
		if page.Next == "" || pages > 10*n {
			break
		}
		q.Cursor = page.Next
	}
	close(stop)
	wg.Wait()
	for id, k := range seen {
		if k > 1 {
			t.Errorf("%s returned %d times", id, k)
		}
	}
	missing := 0
	for id := range before {
		if seen[id] == 0 {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of the %d resources that existed throughout were not returned", missing, n)
	}
}

// testFindByIDAlone checks that a reference searched for by id alone
// finds references to that id of every type the parameter may name, served
// or not: each reference is stored by type and id only, and the parser
// turns an id alone into a match per type. A match of a type alone finds
// the references to any resource of that type.
func testFindByIDAlone(t *testing.T, s store.Store) {
	f, reg := smallFixture(t, s,
		`{"resourceType":"Observation","id":"od","status":"final","code":{"text":"x"},"subject":{"reference":"Device/d1"}}`,
		`{"resourceType":"Observation","id":"op","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/d1"}}`,
		`{"resourceType":"Observation","id":"oq","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/d2"}}`,
		`{"resourceType":"Observation","id":"of","status":"final","code":{"text":"x"},"focus":[{"reference":"Observation/od"},{"reference":"Patient/d2"}]}`,
	)
	findEach(t, f, reg, []findCase{
		{"Observation", "subject=d1", "od op"},
		{"Observation", "subject=Patient/d1", "op"},
		{"Observation", "subject=d1,d2", "od op oq"},
		{"Observation", "subject=nobody", "-"},
		// Observation.focus may name any type: a long list of keys.
		{"Observation", "focus=od", "of"},
		{"Observation", "focus=d2", "of"},
		{"Observation", "focus=d1", "-"},
	})
	// A match of a type alone: a reference to any resource of that type
	// (the Patient-level export keeps what refers to some Patient).
	anyOf := func(typ string) []store.ReferenceMatch { return []store.ReferenceMatch{{Type: typ}} }
	for _, tt := range []struct {
		name  string
		where []store.Clause
		want  string
	}{
		{"subject of any Patient", []store.Clause{{Param: "subject", References: anyOf("Patient")}}, "op oq"},
		{"subject of any Device", []store.Clause{{Param: "subject", References: anyOf("Device")}}, "od"},
		{"subject of any Location", []store.Clause{{Param: "subject", References: anyOf("Location")}}, "-"},
		{"focus of any Patient", []store.Clause{{Param: "focus", References: anyOf("Patient")}}, "of"},
		{"subject of any Patient or Device/d1", []store.Clause{{Param: "subject",
			References: []store.ReferenceMatch{{Type: "Patient"}, {Type: "Device", ID: "d1"}}}}, "od op oq"},
		{"subject or focus of any Patient", []store.Clause{{Param: "_compartment", Any: []store.Clause{
			{Param: "subject", References: anyOf("Patient")}, {Param: "focus", References: anyOf("Patient")}}}}, "of op oq"},
		{"subject of no Patient", []store.Clause{{Param: "subject", Not: true, References: anyOf("Patient")}}, "od of"},
	} {
		page, err := f.Find(t.Context(), store.Query{Type: "Observation", Where: tt.where, Count: 100})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := idList(page.Matches); got != tt.want {
			t.Errorf("%s = %s, want %s", tt.name, got, tt.want)
		}
	}
}

// smallFixture writes data, indexed, into s and returns s as a Finder and
// the registry to parse queries with, or skips the test if the engine is
// not a Finder.
func smallFixture(t *testing.T, s store.Store, data ...string) (store.Finder, *search.Registry) {
	t.Helper()
	f, ok := s.(store.Finder)
	if !ok {
		t.Skip("engine does not implement store.Finder")
	}
	reg, err := searchEnv()
	if err != nil {
		t.Fatal(err)
	}
	putIndexed(t, s, reg, data)
	return f, reg
}

// findCase is a search and the ids it finds, in order ("-" for none).
type findCase struct{ typ, query, want string }

// findEach runs each search and checks what it finds.
func findEach(t *testing.T, f store.Finder, reg *search.Registry, cases []findCase) {
	t.Helper()
	checkEach(t, f, reg, cases, "=", func(p *store.Page) string { return idList(p.Matches) })
}

// includeEach runs each search and checks what it includes, as Type/id
// sorted.
func includeEach(t *testing.T, f store.Finder, reg *search.Registry, cases []findCase) {
	t.Helper()
	checkEach(t, f, reg, cases, "included", func(p *store.Page) string { return typedList(p.Included) })
}

// checkEach runs each search and checks what of its page got says.
func checkEach(t *testing.T, f store.Finder, reg *search.Registry, cases []findCase, what string, got func(*store.Page) string) {
	t.Helper()
	for _, tt := range cases {
		page, err := f.Find(t.Context(), plan(t, reg, tt.typ, tt.query))
		if err != nil {
			t.Fatalf("%s?%s: %v", tt.typ, tt.query, err)
		}
		if got := got(page); got != tt.want {
			t.Errorf("%s?%s %s %s, want %s", tt.typ, tt.query, what, got, tt.want)
		}
	}
}

// testFindCanonicalVersions checks that a canonical url with "|version"
// searches the url and the version.
func testFindCanonicalVersions(t *testing.T, s store.Store) {
	valueSet := func(id, version string) string {
		return `{"resourceType":"ValueSet","id":"` + id + `","url":"http://example.org/fhir/ValueSet/vs1","version":"` + version + `","status":"active"}`
	}
	f, reg := smallFixture(t, s,
		valueSet("v1", "1.0"), valueSet("v2", "2.0"),
		`{"resourceType":"ValueSet","id":"other","url":"http://example.org/fhir/ValueSet/vs2","version":"1.0","status":"active"}`,
		`{"resourceType":"CodeSystem","id":"cs","url":"http://example.org/fhir/CodeSystem/cs","version":"3","status":"active","content":"complete"}`,
	)
	const vs1 = "http://example.org/fhir/ValueSet/vs1"
	findEach(t, f, reg, []findCase{
		{"ValueSet", "url=" + vs1, "v1 v2"},
		{"ValueSet", "url=" + vs1 + "|1.0", "v1"},
		{"ValueSet", "url=" + vs1 + "|3.0", "-"},
		{"ValueSet", "url=" + vs1 + "|2.0,http://example.org/fhir/ValueSet/vs2", "other v2"},
		{"ValueSet", "url=" + vs1 + "|1.0,http://example.org/fhir/ValueSet/vs2|1.0", "other v1"},
		{"ValueSet", "url=" + vs1 + "|1.0&status=active", "v1"},
		{"ValueSet", "url:below=http://example.org/fhir/ValueSet/|1.0", "-"},
		{"CodeSystem", "system=http://example.org/fhir/CodeSystem/cs|3", "cs"},
		{"CodeSystem", "url=http://example.org/fhir/CodeSystem/cs|4", "-"},
	})
}

// testFindIncludeCanonical checks that _include and _revinclude follow
// canonical references by url: "url|version" to the resource of that url
// and version, a url alone to every resource of that url, and back.
func testFindIncludeCanonical(t *testing.T, s store.Store) {
	questionnaire := func(id, url, version string) string {
		return `{"resourceType":"Questionnaire","id":"` + id + `","url":"` + url + `","version":"` + version + `","status":"active"}`
	}
	response := func(id, canonical string) string {
		return `{"resourceType":"QuestionnaireResponse","id":"` + id + `","questionnaire":"` + canonical + `","status":"completed"}`
	}
	const q = "http://example.org/fhir/Questionnaire/pam"
	f, reg := smallFixture(t, s,
		questionnaire("q1", q, "1"), questionnaire("q2", q, "2"),
		`{"resourceType":"Questionnaire","id":"other","url":"http://example.org/fhir/Questionnaire/other","status":"active"}`,
		`{"resourceType":"ValueSet","id":"vs","url":"`+q+`","status":"active"}`,
		response("r2", q+"|2"), response("rall", q), response("r3", q+"|3"),
		response("rother", "http://example.org/fhir/Questionnaire/other"),
		`{"resourceType":"CarePlan","id":"cp","status":"active","intent":"plan","subject":{"reference":"Patient/p1"},`+
			`"instantiatesCanonical":["`+q+`|1","http://example.org/fhir/Questionnaire/other"]}`,
	)
	includeEach(t, f, reg, []findCase{
		{"QuestionnaireResponse", "_id=r2&_include=QuestionnaireResponse:questionnaire", "Questionnaire/q2"},
		{"QuestionnaireResponse", "_id=rall&_include=QuestionnaireResponse:questionnaire", "Questionnaire/q1 Questionnaire/q2"},
		{"QuestionnaireResponse", "_id=r3&_include=QuestionnaireResponse:questionnaire", "-"},
		{"QuestionnaireResponse", "_id=r2,rother&_include=QuestionnaireResponse:questionnaire:Questionnaire", "Questionnaire/other Questionnaire/q2"},
		{"Questionnaire", "_id=q2&_revinclude=QuestionnaireResponse:questionnaire", "QuestionnaireResponse/r2 QuestionnaireResponse/rall"},
		{"Questionnaire", "_id=q1&_revinclude=QuestionnaireResponse:questionnaire", "QuestionnaireResponse/rall"},
		{"Questionnaire", "_id=other&_revinclude=QuestionnaireResponse:*", "QuestionnaireResponse/rother"},
		{"CarePlan", "_id=cp&_include=CarePlan:instantiates-canonical", "Questionnaire/other Questionnaire/q1"},
		{"CarePlan", "_id=cp&_include=CarePlan:instantiates-canonical:Questionnaire", "Questionnaire/other Questionnaire/q1"},
		{"CarePlan", "_id=cp&_include=CarePlan:instantiates-canonical&_revinclude:iterate=QuestionnaireResponse:questionnaire",
			"Questionnaire/other Questionnaire/q1 QuestionnaireResponse/rall QuestionnaireResponse/rother"},
		{"QuestionnaireResponse", "_id=r2&_include=QuestionnaireResponse:questionnaire&_revinclude:iterate=QuestionnaireResponse:questionnaire",
			"Questionnaire/q2 QuestionnaireResponse/rall"},
		{"Questionnaire", "_id=q1&_revinclude=QuestionnaireResponse:questionnaire&_include:iterate=QuestionnaireResponse:questionnaire",
			"Questionnaire/q2 QuestionnaireResponse/rall"},
	})
}

// testFindIncludeManyCanonicals checks that a page naming more canonical
// urls than an engine's statement takes variables (SQLite: 32,766), each
// named by several resources, includes what they name: 12 CarePlans each
// naming the same 1,000 versioned urls and one plain url, two of them
// stored.
func testFindIncludeManyCanonicals(t *testing.T, s store.Store) {
	var canonicals []string
	for i := range 1000 {
		canonicals = append(canonicals, fmt.Sprintf(`"http://example.org/fhir/Questionnaire/q%d|1"`, i))
	}
	canonicals = append(canonicals, `"http://example.org/fhir/Questionnaire/plain"`)
	docs := []string{
		`{"resourceType":"Questionnaire","id":"q7","url":"http://example.org/fhir/Questionnaire/q7","version":"1","status":"active"}`,
		`{"resourceType":"Questionnaire","id":"q8","url":"http://example.org/fhir/Questionnaire/q8","version":"2","status":"active"}`,
		`{"resourceType":"Questionnaire","id":"plain","url":"http://example.org/fhir/Questionnaire/plain","version":"4","status":"active"}`,
	}
	for i := range 12 {
		docs = append(docs, fmt.Sprintf(`{"resourceType":"CarePlan","id":"cp%d","status":"active","intent":"plan","subject":{"reference":"Patient/p1"},"instantiatesCanonical":[%s]}`,
			i, strings.Join(canonicals, ",")))
	}
	f, reg := smallFixture(t, s, docs...)
	includeEach(t, f, reg, []findCase{
		{"CarePlan", "_include=CarePlan:instantiates-canonical&_count=100", "Questionnaire/plain Questionnaire/q7"},
	})
}

// testFindRevincludeBound checks that a _revinclude of more resources
// than a page's includes hold (store.MaxIncluded) includes the first of
// them by id, past those already on the page, and says the includes were
// cut: a patient's Observations reached back from it, some of them the
// page's matches.
func testFindRevincludeBound(t *testing.T, s store.Store) {
	docs := []string{`{"resourceType":"Patient","id":"p1"}`}
	for i := range store.MaxIncluded + 5 {
		docs = append(docs, fmt.Sprintf(`{"resourceType":"Observation","id":"o%04d","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`, i))
	}
	f, reg := smallFixture(t, s, docs...)
	var want []string
	for i := 5; len(want) < store.MaxIncluded-1; i++ {
		want = append(want, fmt.Sprintf("Observation/o%04d", i))
	}
	want = append(want, "Patient/p1")
	for _, query := range []string{
		"_count=5&_include=Observation:subject&_revinclude:iterate=Observation:subject",
		"_count=5&_include=Observation:subject&_revinclude:iterate=Observation:subject&_sort=-_id",
	} {
		page, err := f.Find(t.Context(), plan(t, reg, "Observation", query))
		if err != nil {
			t.Fatalf("Observation?%s: %v", query, err)
		}
		matches := idList(page.Matches)
		if strings.HasSuffix(query, "-_id") {
			// The last five are the matches: the includes start at o0000.
			want = slices.Concat([]string{"Observation/o0000", "Observation/o0001", "Observation/o0002", "Observation/o0003", "Observation/o0004"}, want[:store.MaxIncluded-6], want[store.MaxIncluded-1:])
			if matches != "o1004 o1003 o1002 o1001 o1000" {
				t.Fatalf("Observation?%s matched %s", query, matches)
			}
		} else if matches != "o0000 o0001 o0002 o0003 o0004" {
			t.Fatalf("Observation?%s matched %s", query, matches)
		}
		if got := typedList(page.Included); got != strings.Join(want, " ") {
			t.Errorf("Observation?%s included %d: %.200s…, want %d: %.200s…", query, len(page.Included), got, len(want), strings.Join(want, " "))
		}
		if !page.IncludedCut {
			t.Errorf("Observation?%s: the includes were cut, and the page does not say so", query)
		}
	}
}

// testFindCompositeSystems checks the three forms of a token in a
// composite: "system|code", "code" in any system and "|code" without one.
func testFindCompositeSystems(t *testing.T, s store.Store) {
	weight := func(id, coding string) string {
		return `{"resourceType":"Observation","id":"` + id + `","status":"final","code":{"coding":[` + coding + `]},` +
			`"valueQuantity":{"value":70.5,"system":"http://unitsofmeasure.org","code":"kg"}}`
	}
	f, reg := smallFixture(t, s,
		weight("loinc", `{"system":"http://loinc.org","code":"29463-7"}`),
		weight("bare", `{"code":"29463-7"}`),
		// A code with a '|' and no system, and the system and code it
		// reads as when the '|' is taken for the separator.
		weight("barred", `{"code":"x|y"}`),
		weight("split", `{"system":"x","code":"y"}`),
	)
	findEach(t, f, reg, []findCase{
		{"Observation", "code-value-quantity=29463-7$70.5", "bare loinc"},
		{"Observation", "code-value-quantity=http://loinc.org|29463-7$70.5", "loinc"},
		{"Observation", "code-value-quantity=|29463-7$70.5", "bare"},
		{"Observation", "code-value-quantity=|29463-7$70.5,http://loinc.org|29463-7$70.5", "bare loinc"},
		{"Observation", `code-value-quantity=|x\|y$70.5`, "barred"},
		{"Observation", `code-value-quantity=x\|y$70.5`, "barred"},
		{"Observation", "code-value-quantity=x|y$70.5", "split"},
		{"Observation", "code-value-quantity=|y$70.5", "-"},
	})
}

// testFindCompositeString checks that the string part of a composite is
// matched by prefix of its normalised form, as a string parameter is.
func testFindCompositeString(t *testing.T, s store.Store) {
	note := func(id, code, text string) string {
		return `{"resourceType":"Observation","id":"` + id + `","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"` + code + `"}]},` +
			`"valueString":"` + text + `"}`
	}
	f, reg := smallFixture(t, s, note("a", "8251-1", "Feeling unwell$ today"), note("b", "8251-2", "Feeling unwell"))
	findEach(t, f, reg, []findCase{
		{"Observation", "code-value-string=8251-1$feel", "a"},
		{"Observation", `code-value-string=8251-1$FEELING unwell\$`, "a"},
		{"Observation", "code-value-string=8251-1$feeling unwell today", "-"},
		{"Observation", "code-value-string=8251-1$unwell", "-"},
		{"Observation", "code-value-string=8251-2$feeling unwell", "b"},
		{"Observation", "code-value-string=8251-2$feeling unwell ", "b"},
	})
}
