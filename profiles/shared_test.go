package profiles

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"carefhir/profiles/internal/xmljson"
)

// sameUnshared checks that validating resource as Validate does, the walks
// against the base definition and the profiles sharing what they have in
// common, finds exactly the issues, in the same order, that walks working
// out everything anew find.
func sameUnshared(t *testing.T, v *Validator, label string, resource []byte, profiles ...string) {
	t.Helper()
	decode := func() any {
		d := json.NewDecoder(bytes.NewReader(resource))
		d.UseNumber()
		var tree any
		if err := d.Decode(&tree); err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		return tree
	}
	got := v.validateTree(context.Background(), decode(), newWalkMemo(), profiles...)
	want := v.validateTree(context.Background(), decode(), nil, profiles...)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s %v: shared walks find\n%s\nwhere unshared walks find\n%s", label, profiles, listIssues(got), listIssues(want))
	}
}

func listIssues(issues []Issue) string {
	var b strings.Builder
	for _, is := range issues {
		fmt.Fprintf(&b, "\t%s %s %s: %s\n", is.Severity, is.Code, is.Expression, is.Message)
	}
	return b.String()
}

// TestSharedWalksAgree validates every R4 example against its base
// definition and against each profile of its type known here (UK Core,
// the vital signs profiles), every UK Core example
// against its base definition and its profile, and the bench resources,
// with and without the walks sharing their outcomes: the findings must be
// the same. TestHL7ValidatorCases checks the HL7 validator cases so too.
func TestSharedWalksAgree(t *testing.T) {
	v := validator(t)
	byType := map[string][]string{}
	for _, u := range v.StructureDefinitions() {
		sd := v.StructureDefinition(u)
		if sd.Derivation == "constraint" && sd.Kind == "resource" {
			byType[sd.Type] = append(byType[sd.Type], u)
		}
	}
	files, err := filepath.Glob("../testdata/r4-examples/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	files = append(files, "testdata/ukcore-patient.json", "testdata/catalogue-patient.json")
	for _, f := range files {
		data, rt := readExample(t, nil, f)
		name := filepath.Base(f)
		sameUnshared(t, v, name, data)
		for _, p := range byType[rt] {
			sameUnshared(t, v, name, data, p)
		}
	}
	conv, err := xmljson.New()
	if err != nil {
		t.Fatal(err)
	}
	files, err = filepath.Glob("../testdata/uk-core/*.xml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no UK Core examples: %v", err)
	}
	for _, f := range files {
		js, rt := readExample(t, conv, f)
		name := filepath.Base(f)
		sameUnshared(t, v, name, js)
		sameUnshared(t, v, name, js, declaredProfile(v, name, rt))
	}
}
