package profiles

import (
	"math/rand/v2"
	"regexp"
	"testing"
)

// TestWithoutIndexes compares withoutIndexes with the regular expression
// it replaces, on chosen and random locations.
func TestWithoutIndexes(t *testing.T) {
	re := regexp.MustCompile(`\[\d+\]|\.ofType\([^)]*\)`)
	paths := []string{"", "Patient", "Patient.name[0].given[12]", "Observation.value.ofType(Quantity)", "a[]", "a[x]", "a[1", "a.ofType(", "a.ofType(b", "a.ofType()x)",
		"Bundle.entry[3].resource.extension[0].value.ofType(CodeableConcept).coding[1]", "a[[1]]", "a[1][2]", "a.ofType(b[1])[2]"}
	alphabet := []string{"a", ".", "[", "]", "0", "7", "(", ")", ".ofType(", "x"}
	r := rand.New(rand.NewPCG(3, 4))
	paths = append(paths, randomStrings(r, alphabet, 10)...)
	for _, p := range paths {
		if got, want := withoutIndexes(p), re.ReplaceAllString(p, ""); got != want {
			t.Errorf("withoutIndexes(%q) = %q, want %q", p, got, want)
		}
	}
}
