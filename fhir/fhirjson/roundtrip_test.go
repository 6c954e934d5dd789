package fhirjson_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"carefhir/fhir/fhirjson"
)

// examplesDir holds the official R4 examples, shared with the server tests.
const examplesDir = "../../testdata/r4-examples"

// roundTripSkips lists examples that do not survive Unmarshal then Marshal,
// with the reason. It is empty: every example round-trips.
var roundTripSkips = map[string]string{}

func exampleFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples in %s: %v", examplesDir, err)
	}
	return files
}

// jsonEqual compares two JSON documents ignoring object key order; numbers are
// compared by their exact text.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	return reflect.DeepEqual(decodeGeneric(t, a), decodeGeneric(t, b))
}

func decodeGeneric(t *testing.T, data []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	return v
}

func TestRoundTripExamples(t *testing.T) {
	for _, file := range exampleFiles(t) {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if reason, ok := roundTripSkips[name]; ok {
				t.Skip(reason)
			}
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			res, err := fhirjson.Unmarshal(data)
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			wantType := strings.SplitN(name, "-", 2)[0]
			if res.ResourceType() != wantType {
				t.Errorf("ResourceType() = %q, want %q", res.ResourceType(), wantType)
			}
			out, err := fhirjson.Marshal(res)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if !jsonEqual(t, data, out) {
				t.Errorf("round trip differs:\n got %s\nwant %s", out, compact(t, data))
			}
		})
	}
}

func compact(t *testing.T, data []byte) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
