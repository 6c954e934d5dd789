package query_test

import (
	"go/build"
	"strings"
	"testing"
)

// TestImportDirection keeps store/query the leaf that fhir/search and store
// both import, so that neither imports the other (docs/architecture.md,
// Import direction): store/query imports nothing of carefhir, and
// fhir/search no store package but this one.
func TestImportDirection(t *testing.T) {
	for _, tt := range []struct {
		name, dir string
		refused   func(imp string) bool
	}{
		{"store/query", ".", func(imp string) bool { return imp == "carefhir" || strings.HasPrefix(imp, "carefhir/") }},
		{"fhir/search", "../../fhir/search", func(imp string) bool {
			return strings.HasPrefix(imp, "carefhir/store") && imp != "carefhir/store/query"
		}},
	} {
		pkg, err := build.ImportDir(tt.dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range pkg.Imports {
			if tt.refused(imp) {
				t.Errorf("%s imports %s", tt.name, imp)
			}
		}
	}
}
