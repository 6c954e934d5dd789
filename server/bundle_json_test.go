package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"testing"

	"github.com/gin-gonic/gin"

	"carefhir/fhir/search"
	"carefhir/store"
)

// TestWithEntries checks that a response Bundle whose entries are encoded
// on their own, side by side, is the one encoding it whole gives (the
// resources as they are, which encoding/json would escape differently).
func TestWithEntries(t *testing.T) {
	patient := json.RawMessage(`{"resourceType":"Patient","id":"a<b>","text":{"div":"<div>&amp;</div>"}}`)
	for _, tt := range []struct {
		name    string
		entries []bundleEntry
	}{
		{"none", nil},
		{"one", []bundleEntry{{FullURL: "http://x/fhir/Patient/a", Resource: patient, Response: &entryResponse{Status: "201 Created", Etag: `W/"1"`}}}},
		{"several", []bundleEntry{
			{Response: &entryResponse{Status: "204 No Content"}},
			{Resource: patient, Response: &entryResponse{Status: "200 OK", Location: "Patient/a/_history/2"}},
			{Response: &entryResponse{Status: "404 Not Found", Outcome: newOutcome(Issue{Severity: "error", Code: "not-found", Diagnostics: "<gone> & \u2028"}).marshal()}},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := bundle{ResourceType: "Bundle", ID: "id", Meta: bundleMeta{LastUpdated: "2026-01-01T00:00:00.000Z"}, Type: "transaction-response"}
			head, err := json.Marshal(b)
			if err != nil {
				t.Fatal(err)
			}
			parts, err := encodeEntries(tt.entries).result()
			if err != nil {
				t.Fatal(err)
			}
			b.Entry = tt.entries
			want, err := json.Marshal(b)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, withEntries(head, parts), want)
		})
	}
}

// A Bundle written by appendEncoded is the JSON encoding/json writes for it.
func TestBundleEncode(t *testing.T) {
	total := 2
	patient := json.RawMessage(`{"resourceType":"Patient","id":"p1","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Ann &amp; Bo</div>"}}`)
	tests := []struct {
		name string
		b    bundle
	}{
		{"empty", bundle{ResourceType: "Bundle", ID: "b1", Type: "searchset", Total: &total}},
		{"searchset", bundle{ResourceType: "Bundle", ID: "b2", Type: "searchset", Link: []bundleLink{{"self", "http://x/fhir/Patient?a=b&c=d"}},
			Entry: []bundleEntry{
				{FullURL: "http://x/fhir/Patient/p1", Resource: patient, Search: &entrySearch{Mode: "match"}},
				{Resource: json.RawMessage(`{"resourceType":"OperationOutcome"}`), Search: &entrySearch{Mode: "outcome"}},
			}}},
		{"searchset with odd urls", bundle{ResourceType: "Bundle", ID: "b4", Type: "searchset",
			Entry: []bundleEntry{
				{FullURL: "http://x/fhir/Patient/a?b=<c>&d=\"e\"\\", Resource: patient, Search: &entrySearch{Mode: "match"}},
				{FullURL: "http://x/fhir/Patient/é\u2028", Resource: patient, Search: &entrySearch{Mode: "include"}},
				{FullURL: "http://x/fhir/Patient/p2", Resource: patient, Search: &entrySearch{Mode: "<match>"}},
				{FullURL: "http://x/fhir/Patient/p3", Resource: patient, Search: &entrySearch{}},
				{FullURL: "http://x/fhir/Patient/p4", Resource: patient},
			}}},
		{"transaction-response", bundle{ResourceType: "Bundle", ID: "b3", Type: "transaction-response",
			Entry: []bundleEntry{
				{Response: &entryResponse{Status: "201 Created", Location: "Patient/p1/_history/1"}},
				{FullURL: "urn:uuid:1", Response: &entryResponse{Status: "200 OK", Outcome: json.RawMessage(`{"resourceType":"OperationOutcome"}`)}},
				{FullURL: "http://x/fhir/Patient/p1", Resource: patient},
			}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.b.appendEncoded(nil)
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(tt.b)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, got, want)
			// Byte for byte what encoding/json writes, but for the
			// resources, which are sent as stored.
			for i, e := range tt.b.Entry {
				e.Resource = nil
				got, err := e.appendJSON(nil)
				if err != nil {
					t.Fatal(err)
				}
				if want, _ := json.Marshal(e); string(got) != string(want) {
					t.Errorf("entry %d:\ngot  %s\nwant %s", i, got, want)
				}
			}
		})
	}
}

// A Bundle written by appendEncoded is byte for byte the JSON encoding/json
// writes for it when its resources are as encoding/json writes them (no
// <, > or &): its head (id, meta, total, links) as well as its entries.
func TestBundleEncodeBytes(t *testing.T) {
	zero, two := 0, 2
	patient := json.RawMessage(`{"resourceType":"Patient","id":"p1","name":[{"family":"Ann"}]}`)
	links := []bundleLink{
		{"self", "http://x/fhir/Patient?family=a%3Cb&_count=2"},
		{"first", "http://x/fhir/Patient?a=<b>&c=\"d\"\\é\u2028"},
		{"<next>", "caf\xe9"},
	}
	entries := []bundleEntry{
		{FullURL: "http://x/fhir/Patient/p1", Resource: patient, Search: &entrySearch{Mode: "match"}},
		{FullURL: "https://care.example.org:8443/r4/Patient/a-1.b", Resource: patient, Search: &entrySearch{Mode: "include"}},
		{FullURL: "http://x/fhir/Patient/a?b=<c>&d", Resource: patient, Search: &entrySearch{Mode: "match"}},
		{Resource: json.RawMessage(`{"resourceType":"OperationOutcome"}`), Search: &entrySearch{Mode: "outcome"}},
	}
	for _, b := range []bundle{
		{ResourceType: "Bundle", ID: "b1", Type: "searchset"},
		{ResourceType: "Bundle", ID: "b2", Meta: bundleMeta{LastUpdated: "2026-01-01T00:00:00.000Z"}, Type: "searchset", Total: &zero},
		{ResourceType: "Bundle", ID: "b3", Meta: bundleMeta{LastUpdated: "2026-01-01T00:00:00.000Z"}, Type: "searchset", Total: &two, Link: links},
		{ResourceType: "Bundle", ID: "<b4>", Type: "history", Link: links[:1], Entry: entries},
		{ResourceType: "Bundle", ID: "b5", Type: "searchset", Total: &two, Link: []bundleLink{}, Entry: entries[:1]},
	} {
		got, err := b.appendEncoded(nil)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("Bundle %s:\ngot  %s\nwant %s", b.ID, got, want)
		}
	}
}

// sameJSON checks that got is valid JSON with the value of want.
func sameJSON(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("invalid JSON %s: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// BenchmarkSearchsetAssembly measures a page of 20 Patients made into a
// searchset's entries and encoded, as a search answered from the store's
// memory is: what the server adds to the page before net/http writes it.
func BenchmarkSearchsetAssembly(b *testing.B) {
	const base = "http://127.0.0.1:40817/fhir"
	a := &api{cfg: Config{BaseURL: base}}
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest(http.MethodGet, "/fhir/Patient?family=Ames", nil)
	var page store.Page
	for i := range 20 {
		id := fmt.Sprintf("0193a1b2-c3d4-7e5f-8a9b-%012d", i)
		page.Matches = append(page.Matches, &store.Version{Type: "Patient", ID: id, JSON: []byte(`{"resourceType":"Patient","id":"` + id +
			`","meta":{"versionId":"1","lastUpdated":"2026-12-06T21:13:38.123Z"},"name":[{"family":"Ames","given":["Ann","Bo"]}],` +
			`"gender":"female","birthDate":"1970-03-01","address":[{"line":["1 High Street"],"city":"Leeds","postalCode":"LS1 1AA"}]}`)})
	}
	plan := &search.Plan{Query: store.Query{Type: "Patient", Count: 20}}
	total := len(page.Matches)
	self := base + "/Patient?family=Ames"
	b.ReportAllocs()
	for b.Loop() {
		bu := &bundle{ResourceType: "Bundle", ID: "0193a1b2-c3d4-7e5f-8a9b-000000000000",
			Meta: bundleMeta{LastUpdated: "2026-12-06T21:13:38.123Z"}, Type: "searchset", Total: &total,
			Link: []bundleLink{{"self", self}, {"first", self}}}
		if err := a.addEntries(c, bu, plan, &page); err != nil {
			b.Fatal(err)
		}
		if _, err := bu.appendEncoded(nil); err != nil {
			b.Fatal(err)
		}
	}
}

// appendHead writes each member of the Bundle but its entries by name: a
// field added to bundle, bundleMeta or bundleLink would be left out of
// every Bundle the server writes. Each struct must have the fields it
// writes, no more.
func TestBundleHeadWritesEveryField(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want []string
	}{
		{bundle{}, []string{"resourceType", "id", "meta", "type", "total,omitempty", "link,omitempty", "entry,omitempty"}},
		{bundleMeta{}, []string{"lastUpdated"}},
		{bundleLink{}, []string{"relation", "url"}},
	} {
		typ := reflect.TypeOf(tc.v)
		var got []string
		for i := range typ.NumField() {
			got = append(got, typ.Field(i).Tag.Get("json"))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s has the JSON members %q; appendHead writes %q: write the new ones there", typ.Name(), got, tc.want)
		}
	}
}
