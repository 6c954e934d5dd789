package canonical

import (
	"testing"
	"time"

	"carefhir/store"
)

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.10.0", "1.9.0", 1},
		{"1.0", "1.0.0", 0},
		{"1.0.0-beta", "1.0.0", -1},
		{"1.0.0+build", "1.0.0", 0},
		{"", "0.1", -1},
		{"2", "10", -1},
		{"1.a", "1.1", 1},
	} {
		if got := CompareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestNewest(t *testing.T) {
	at := func(s int) time.Time { return time.Date(2026, 1, 1, 0, 0, s, 0, time.UTC) }
	v := func(id, version string, updated time.Time) *store.Version {
		return &store.Version{Type: "ValueSet", ID: id, LastUpdated: updated, JSON: []byte(`{"resourceType":"ValueSet","version":"` + version + `"}`)}
	}
	got, err := Newest([]*store.Version{v("a", "1.10.0", at(1)), v("b", "1.9.0", at(3)), v("c", "1.10.0", at(2)), v("d", "1.0.0-beta", at(4))})
	if err != nil || got == nil || got.ID != "c" {
		t.Errorf("Newest = %v, %v, want c (1.10.0, updated last)", got, err)
	}
	if got, err := Newest(nil); got != nil || err != nil {
		t.Errorf("Newest(nil) = %v, %v", got, err)
	}
	if _, err := Newest([]*store.Version{{Type: "ValueSet", ID: "x", JSON: []byte(`{`)}}); err == nil {
		t.Error("Newest of broken JSON: no error")
	}
}
