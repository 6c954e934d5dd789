package conformance

import "testing"

func TestWith(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	q := []byte(`{"resourceType":"Questionnaire","id":"q1","url":"http://example.org/Questionnaire/q1","version":"2"}`)
	w, err := c.With(q)
	if err != nil {
		t.Fatal(err)
	}
	if r := w.Canonical("Questionnaire", "http://example.org/Questionnaire/q1|2", ""); r == nil || r.ID != "q1" {
		t.Errorf("Canonical: %v", r)
	}
	if w.Get("Questionnaire", "q1") == nil || len(w.All("Questionnaire")) != 1 {
		t.Error("the added Questionnaire is not in the catalogue")
	}
	if c.Get("Questionnaire", "q1") != nil {
		t.Error("With changed the catalogue it was called on")
	}
	if len(w.All("StructureDefinition")) != len(c.All("StructureDefinition")) {
		t.Error("the bundled resources are not all kept")
	}
	for _, bad := range [][]byte{
		[]byte(`{"resourceType":"Questionnaire","url":"http://example.org/no-id"}`),
		[]byte(`{"resourceType":"StructureDefinition","id":"Patient"}`),
		[]byte(`not JSON`),
	} {
		if _, err := c.With(bad); err == nil {
			t.Errorf("With(%s) accepted it", bad)
		}
	}
}
