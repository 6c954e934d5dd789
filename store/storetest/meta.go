package storetest

import (
	"fmt"
	"testing"

	"carefhir/store"
)

// testMetaInUse checks store.MetaLister, for engines that implement it:
// the profiles, tags and security labels of current, non-deleted
// resources of the types asked for, each once and sorted, never those of
// earlier versions, of deleted resources or of other types; and the
// limit, past which it returns one value more than the limit.
func testMetaInUse(t *testing.T, s store.Store) {
	m, ok := s.(store.MetaLister)
	if !ok {
		t.Skip("the engine does not implement store.MetaLister")
	}
	ctx := t.Context()
	tag := func(system, code string) store.Token { return store.Token{Param: "_tag", System: system, Code: code} }
	label := func(system, code string) store.Token {
		return store.Token{Param: "_security", System: system, Code: code}
	}
	profile := func(url string) store.URI { return store.URI{Param: "_profile", Value: url} }
	write := func(w *store.Write, uris ...store.URI) *store.Write {
		w.Index.URIs = uris
		put(t, s, w)
		return w
	}
	const sys = "http://example.org/tags"
	write(create("Patient", "a", at(0), "a", tag(sys, "t1"), label("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "R"),
		store.Token{Param: "identifier", System: "https://fhir.nhs.uk/Id/nhs-number", Code: "9000000009"}),
		profile("https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"))
	write(create("Patient", "b", at(0), "b", tag(sys, "old")), profile("http://example.org/old-profile"))
	write(update("Patient", "b", 1, at(10), "b again", tag(sys, "t2")))
	write(create("Patient", "c", at(0), "c", tag(sys, "gone"), label(sys, "gone")), profile("http://example.org/gone-profile"))
	put(t, s, tombstone("Patient", "c", 1, at(10)))
	write(create("Observation", "o", at(0), "o", tag(sys, "t1"), tag("", "no-system"), tag(`a|b\c`, "escaped")),
		profile("http://example.org/obs-profile"))

	check := func(types []string, limit int, want store.MetaValues) {
		t.Helper()
		got, err := m.MetaInUse(ctx, types, limit)
		if err != nil {
			t.Fatalf("MetaInUse(%v, %d): %v", types, limit, err)
		}
		if normalMeta(got) != normalMeta(&want) {
			t.Errorf("MetaInUse(%v, %d) = %+v, want %+v", types, limit, *got, want)
		}
	}
	check([]string{"Patient"}, 100, store.MetaValues{
		Profiles: []string{"https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"},
		Tags:     []store.Label{{System: sys, Code: "t1"}, {System: sys, Code: "t2"}},
		Security: []store.Label{{System: "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", Code: "R"}},
	})
	all := store.MetaValues{
		Profiles: []string{"http://example.org/obs-profile", "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"},
		Tags: []store.Label{{System: "", Code: "no-system"}, {System: `a|b\c`, Code: "escaped"},
			{System: sys, Code: "t1"}, {System: sys, Code: "t2"}},
		Security: []store.Label{{System: "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", Code: "R"}},
	}
	check([]string{"Patient", "Observation"}, 100, all)
	check([]string{"Observation", "Patient"}, all.Len(), all)
	check([]string{"Practitioner"}, 100, store.MetaValues{})
	check(nil, 100, store.MetaValues{})

	for _, limit := range []int{0, 1, 3, all.Len() - 1} {
		got, err := m.MetaInUse(ctx, []string{"Patient", "Observation"}, limit)
		if err != nil {
			t.Fatalf("MetaInUse with limit %d: %v", limit, err)
		}
		if got.Len() != limit+1 {
			t.Errorf("MetaInUse with limit %d of %d values: %d values, want %d", limit, all.Len(), got.Len(), limit+1)
		}
	}
}

// normalMeta makes empty lists nil, which an engine may return either way.
func normalMeta(m *store.MetaValues) string {
	return fmt.Sprintf("%q %q %q", m.Profiles, m.Tags, m.Security)
}
