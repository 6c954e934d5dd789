package access

import (
	"fmt"
	"slices"
	"testing"

	"carefhir/store"
)

// A Record names each entity once, by its reference, in the order first
// touched, however many it names and however often each is touched.
func TestRecordNamesEachEntityOnce(t *testing.T) {
	var r Record
	var want []string
	for round := range 3 {
		for i := range 40 {
			v := &store.Version{Type: "Observation", ID: fmt.Sprintf("o%d", i), VersionID: int64(i % 3)}
			r.touch(v, v)
			r.touchEntity(Entity{Type: "Observation", ID: v.ID}) // unversioned: another reference when VersionID > 0
			if round == 0 {
				want = append(want, Entity{Type: v.Type, ID: v.ID, Version: v.VersionID}.Reference())
				if v.VersionID > 0 {
					want = append(want, "Observation/"+v.ID)
				}
			}
		}
	}
	var got []string
	for _, e := range r.Entities() {
		got = append(got, e.Reference())
	}
	if !slices.Equal(got, want) {
		t.Errorf("entities named:\n%v\nwant:\n%v", got, want)
	}
}
