package server_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestOfficialExamplesRoundTrip posts every official R4 example and reads
// it back: apart from the server's id, versionId and lastUpdated, the
// resource must come back as it was sent, numbers to the digit.
func TestOfficialExamplesRoundTrip(t *testing.T) {
	files, err := filepath.Glob("../testdata/r4-examples/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	eachEngine(t, func(t *testing.T, c *client) {
		for _, file := range files {
			t.Run(filepath.Base(file), func(t *testing.T) {
				sent, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				typ := strings.SplitN(filepath.Base(file), "-", 2)[0]
				created := c.do("POST", "/"+typ, string(sent)).want(t, 201)
				read := c.do("GET", strings.TrimPrefix(created.header.Get("Location"), c.base), "").want(t, 200)
				want, got := comparable(t, sent), comparable(t, read.body)
				if !reflect.DeepEqual(want, got) {
					w, _ := json.Marshal(want)
					g, _ := json.Marshal(got)
					t.Errorf("round trip changed the resource\nsent: %s\ngot:  %s", w, g)
				}
			})
		}
	})
}

// comparable decodes a resource with numbers as their text and drops what
// the server assigns: id, meta.versionId and meta.lastUpdated.
func comparable(t *testing.T, body []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	delete(m, "id")
	if meta, ok := m["meta"].(map[string]any); ok {
		delete(meta, "versionId")
		delete(meta, "lastUpdated")
		if len(meta) == 0 {
			delete(m, "meta")
		}
	}
	return m
}
