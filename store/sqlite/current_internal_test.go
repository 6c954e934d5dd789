package sqlite

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"carefhir/store"
)

// TestCurrentCacheBounded checks that the cache of current versions keeps
// within its size whatever is read, counts what it holds exactly, and
// keeps no body too large to share the space.
func TestCurrentCacheBounded(t *testing.T) {
	const max = 64 << 10
	c := newCurrentCache(max, max)
	for i := range 2000 {
		_, gen := c.get("Patient", fmt.Sprint(i))
		c.fill(&store.Version{Type: "Patient", ID: fmt.Sprint(i % 700), JSON: []byte(strings.Repeat("x", i%900))}, gen)
		if c.bytes > max {
			t.Fatalf("after %d fills: %d bytes held, more than %d", i+1, c.bytes, max)
		}
	}
	held := 0
	for _, v := range c.m {
		held += cacheSize(v)
	}
	if held != c.bytes || len(c.m) == 0 {
		t.Fatalf("%d entries of %d bytes, counted as %d", len(c.m), held, c.bytes)
	}
	_, gen := c.get("Patient", "big")
	c.fill(&store.Version{Type: "Patient", ID: "big", JSON: make([]byte, max/32)}, gen)
	if v, _ := c.get("Patient", "big"); v != nil {
		t.Error("a body of a 32nd of the cache was kept")
	}
}

// TestCurrentCacheFillAfterCommit checks that a version read before a
// commit ended is not kept, whichever resources the commit wrote.
func TestCurrentCacheFillAfterCommit(t *testing.T) {
	c := newCurrentCache(1<<20, 1<<20)
	_, gen := c.get("Patient", "p1")
	c.forget([]versionKey{{"Patient", "other"}})
	c.fill(&store.Version{Type: "Patient", ID: "p1", VersionID: 1}, gen)
	if v, _ := c.get("Patient", "p1"); v != nil {
		t.Fatal("a version read before a commit was kept after it")
	}
	_, gen = c.get("Patient", "p1")
	c.fill(&store.Version{Type: "Patient", ID: "p1", VersionID: 2}, gen)
	if v, _ := c.get("Patient", "p1"); v == nil || v.VersionID != 2 {
		t.Fatalf("a version read with no commit meanwhile: %v", v)
	}
	c.forget([]versionKey{{"Patient", "p1"}})
	if v, _ := c.get("Patient", "p1"); v != nil {
		t.Fatal("a version a commit replaced is still held")
	}
}

// TestPageCacheBounded checks that the pages of searches the cache holds
// keep within their size whatever is searched, and that a commit drops
// them all.
func TestPageCacheBounded(t *testing.T) {
	const max = 64 << 10
	c := newCurrentCache(max, max)
	for i := range 2000 {
		key := fmt.Sprint("q", i%700)
		_, gen := c.page([]byte(key))
		p := &store.Page{Next: "n", Matches: []*store.Version{{Type: "Patient", ID: "a", JSON: []byte(strings.Repeat("x", i%900))}}}
		c.keepPage(key, p, nil, gen)
		if c.pageBytes > max {
			t.Fatalf("after %d pages: %d bytes held, more than %d", i+1, c.pageBytes, max)
		}
	}
	held := 0
	for k, p := range c.pages {
		held += cachedPageSize(k, p.page)
	}
	if held != c.pageBytes || len(c.pages) == 0 {
		t.Fatalf("%d pages of %d bytes, counted as %d", len(c.pages), held, c.pageBytes)
	}
	c.forget([]versionKey{{"Observation", "o1"}})
	if len(c.pages) != 0 || c.pageBytes != 0 {
		t.Fatalf("after a commit: %d pages of %d bytes held, of searches that may read any type", len(c.pages), c.pageBytes)
	}
}

// TestPagesDroppedByTypesWritten checks that a commit drops the pages of
// the searches that read a type it wrote, and keeps the others.
func TestPagesDroppedByTypesWritten(t *testing.T) {
	c := newCurrentCache(1<<20, 1<<20)
	keep := func(key string, types ...string) {
		_, gen := c.page([]byte(key))
		c.keepPage(key, &store.Page{}, types, gen)
	}
	held := func() string {
		var keys []string
		for k := range c.pages {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return strings.Join(keys, " ")
	}
	keep("patients", "Patient")
	keep("observations with subjects", "Observation", "Patient")
	keep("audit", "AuditEvent")
	keep("any")
	c.forget([]versionKey{{"AuditEvent", "a1"}, {"AuditEvent", "a2"}})
	if got := held(); got != "observations with subjects patients" {
		t.Fatalf("after AuditEvents were written: %q", got)
	}
	c.forget(nil) // a unit that wrote nothing
	if got := held(); got != "observations with subjects patients" {
		t.Fatalf("after a commit of nothing: %q", got)
	}
	c.forget([]versionKey{{"Patient", "p1"}})
	if got := held(); got != "" {
		t.Fatalf("after a Patient was written: %q", got)
	}
}

// TestPageKeyNamesWholeQuery checks that the JSON which keys a search's
// page carries every field of store.Query, however deep: a field JSON
// leaves out (unexported, tagged "-"), or one it may write alike for
// different values (an interface: 1 and 1.0; a type encoding itself),
// would let two different searches share a page.
func TestPageKeyNamesWholeQuery(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var check func(typ reflect.Type, path string)
	check = func(typ reflect.Type, path string) {
		switch typ.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map: // JSON sorts a map's keys
			check(typ.Elem(), path+"[]")
			return
		case reflect.Interface, reflect.Func, reflect.Chan, reflect.UnsafePointer, reflect.Complex64, reflect.Complex128:
			t.Errorf("%s is of kind %s, not plain data a key can name", path, typ.Kind())
			return
		case reflect.Struct:
		default:
			return
		}
		if seen[typ] {
			return
		}
		seen[typ] = true
		if typ.Implements(reflect.TypeFor[json.Marshaler]()) || reflect.PointerTo(typ).Implements(reflect.TypeFor[json.Marshaler]()) {
			if typ != reflect.TypeFor[time.Time]() {
				t.Errorf("%s (%s) encodes itself", path, typ)
			}
			return
		}
		for i := range typ.NumField() {
			f := typ.Field(i)
			name := path + "." + f.Name
			if !f.IsExported() {
				t.Errorf("%s is unexported: JSON leaves it out of the key", name)
				continue
			}
			if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name == "-" {
				t.Errorf("%s is tagged \"-\": JSON leaves it out of the key", path+"."+f.Name)
			}
			check(f.Type, name)
		}
	}
	check(reflect.TypeFor[store.Query](), "Query")
}

// TestSearchPageKept checks that a search's page is kept and found again
// under its query, and that SearchPages -1 keeps none.
func TestSearchPageKept(t *testing.T) {
	for _, tt := range []struct {
		pages int
		kept  bool
	}{{0, true}, {-1, false}} {
		s, err := OpenWith(t.TempDir(), Options{SearchPages: tt.pages})
		if err != nil {
			t.Fatal(err)
		}
		w := &store.Write{Type: "Patient", ID: "p1", LastUpdated: time.Now().UTC().Truncate(time.Millisecond), JSON: []byte(`{"resourceType":"Patient"}`)}
		if err := s.Put(t.Context(), w); err != nil {
			t.Fatal(err)
		}
		q := store.Query{Type: "Patient", Count: 10}
		if _, err := s.Find(t.Context(), q); err != nil {
			t.Fatal(err)
		}
		key, _ := json.Marshal(q)
		if p, _ := s.current.page(key); (p != nil) != tt.kept || tt.kept && len(p.Matches) != 1 {
			t.Errorf("SearchPages %d: page kept %+v, want kept %v", tt.pages, p, tt.kept)
		}
		s.Close()
	}
}

// TestPageKeptBesideCommitsOfOtherTypes checks that a search keeps its page
// when the commits that ended while it ran wrote only types it does not
// read (the audit trail's), and not when one wrote a type it reads, or,
// for a search that may read any type, when any commit ended.
func TestPageKeptBesideCommitsOfOtherTypes(t *testing.T) {
	c := newCurrentCache(1<<20, 1<<20)
	search := func(key string, during []versionKey, types ...string) bool {
		_, gen := c.page([]byte(key))
		if during != nil {
			c.forget(during)
		}
		c.keepPage(key, &store.Page{}, types, gen)
		p, _ := c.page([]byte(key))
		return p != nil
	}
	audit := []versionKey{{"AuditEvent", "a1"}}
	if !search("patients", audit, "Patient") {
		t.Error("a Patient search's page was not kept beside a commit of AuditEvents")
	}
	if search("observations", []versionKey{{"AuditEvent", "a2"}, {"Patient", "p1"}}, "Observation", "Patient") {
		t.Error("a page reading Patients was kept though a commit wrote a Patient while its search ran")
	}
	if !search("observations", audit, "Observation", "Patient") {
		t.Error("a page reading Patients was not kept beside commits of AuditEvents after the Patient was written")
	}
	if search("any", audit) {
		t.Error("a page of a search of any type was kept though a commit ended while it ran")
	}
	if !search("any", nil) {
		t.Error("a page of a search of any type was not kept with no commit while it ran")
	}
}

// TestPageIndexFollowsPages checks that the pages found by type are the
// pages kept, whatever is kept, evicted and dropped.
func TestPageIndexFollowsPages(t *testing.T) {
	c := newCurrentCache(1<<20, 32<<10)
	rng := rand.New(rand.NewPCG(3, 5))
	typeSets := [][]string{nil, {"Patient"}, {"Observation", "Patient"}, {"AuditEvent"}, {"Observation"}}
	for i := range 5000 {
		if rng.IntN(10) == 0 {
			c.forget([]versionKey{{[]string{"Patient", "Observation", "AuditEvent"}[rng.IntN(3)], "x"}})
			continue
		}
		key := fmt.Sprint("q", rng.IntN(300))
		_, gen := c.page([]byte(key))
		body := []byte(strings.Repeat("x", rng.IntN(400)))
		c.keepPage(key, &store.Page{Matches: []*store.Version{{Type: "Patient", ID: "a", JSON: body}}}, typeSets[rng.IntN(len(typeSets))], gen)
		indexed := map[string]bool{}
		for typ, keys := range c.byType {
			if len(keys) == 0 {
				t.Fatalf("step %d: an empty set of keys kept for %s", i, typ)
			}
			for k := range keys {
				p, ok := c.pages[k]
				if !ok || !slices.Contains(p.types, typ) {
					t.Fatalf("step %d: %s indexed under %s, kept %v reading %v", i, k, typ, ok, p.types)
				}
				indexed[k] = true
			}
		}
		for k := range c.anyType {
			if p, ok := c.pages[k]; !ok || p.types != nil {
				t.Fatalf("step %d: %s indexed as reading any type, kept %v reading %v", i, k, ok, p.types)
			}
			indexed[k] = true
		}
		if len(indexed) != len(c.pages) {
			t.Fatalf("step %d: %d pages kept, %d indexed", i, len(c.pages), len(indexed))
		}
	}
}
