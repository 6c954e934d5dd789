package terminology

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"carefhir/fhir/definitions"
	"carefhir/fhir/search"
	"carefhir/profiles/conformance"
)

// bundled loads the ValueSets and CodeSystems the server bundles: the R4
// terminology and UK Core's.
func bundled(t *testing.T) *Terminology {
	t.Helper()
	var all []json.RawMessage
	for _, name := range []string{"r4-terminology.json.gz", "ukcore.json.gz"} {
		var b struct {
			Entry []struct {
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		if err := definitions.DecodeJSON(conformance.FS, name, &b); err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Entry {
			all = append(all, e.Resource)
		}
	}
	terms, err := New(all)
	if err != nil {
		t.Fatal(err)
	}
	return terms
}

const (
	clinical       = "http://terminology.hl7.org/CodeSystem/condition-clinical"
	interpretation = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
)

func TestForSearch(t *testing.T) {
	s := bundled(t).ForSearch()
	below := func(system, code string) func() ([]string, error) {
		return func() ([]string, error) { return s.Below(system, code) }
	}
	above := func(system, code string) func() ([]string, error) {
		return func() ([]string, error) { return s.Above(system, code) }
	}
	tests := []struct {
		name string
		call func() ([]string, error)
		want []string // sorted; nil when an error is wanted
		// unknown: the error wraps search.ErrUnknown; else it must not.
		unknown bool
	}{
		{"expand", codes(s, "http://hl7.org/fhir/ValueSet/condition-clinical"),
			[]string{"active", "inactive", "recurrence", "relapse", "remission", "resolved"}, false},
		{"expand a UK Core ValueSet", codes(s, "https://fhir.hl7.org.uk/ValueSet/UKCore-DeathNotificationStatus"), []string{"1", "2", "U"}, false},
		{"expand unknown", codes(s, "http://example.org/ValueSet/nothing"), nil, true},
		{"expand what draws on an unbundled code system", codes(s, "http://hl7.org/fhir/ValueSet/currencies"), nil, false},
		{"below by nesting", below(clinical, "active"), []string{"active", "recurrence", "relapse"}, false},
		{"below a leaf", below(clinical, "relapse"), []string{"relapse"}, false},
		{"above by nesting", above(clinical, "resolved"), []string{"inactive", "resolved"}, false},
		{"above through child properties, several parents", above(interpretation, "HH"),
			[]string{"A", "AA", "H", "H>", "HH", "HU", "_ObservationInterpretationNormality"}, false},
		{"below through child properties", below(interpretation, "H>"), []string{"H>", "HH"}, false},
		{"below an unknown code", below(clinical, "dormant"), nil, true},
		{"below in an unknown system", below("http://example.org/CodeSystem/none", "x"), nil, true},
		{"below in a system bundled without its codes", below("http://snomed.info/sct", "73211009"), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.call()
			if tt.want == nil {
				if err == nil || errors.Is(err, search.ErrUnknown) != tt.unknown {
					t.Errorf("got %v, %v; want an error that is unknown: %v", got, err, tt.unknown)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if slices.Sort(got); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// codes expands url into its codes, sorted.
func codes(s search.Terminology, url string) func() ([]string, error) {
	return func() ([]string, error) {
		cs, err := s.Expand(url)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, c := range cs {
			out = append(out, c.Code)
		}
		slices.Sort(out)
		return out, nil
	}
}

// TestUnknownValueSetsNotKept: expansions are kept once computed, but the
// answer for a URL that names no ValueSet is not, since such URLs come
// from clients and each one kept would hold memory for good.
func TestUnknownValueSetsNotKept(t *testing.T) {
	terms := bundled(t)
	kept := func() int {
		n := 0
		terms.expansions.Range(func(any, any) bool { n++; return true })
		return n
	}
	if _, err := terms.Expand("http://hl7.org/fhir/ValueSet/condition-clinical"); err != nil {
		t.Fatal(err)
	}
	before := kept()
	for i := range 100 {
		if _, err := terms.Expand("http://example.org/fhir/ValueSet/unknown-" + strconv.Itoa(i)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown ValueSet: %v, want ErrNotFound", err)
		}
	}
	if after := kept(); after != before {
		t.Errorf("%d expansions kept after 100 unknown ValueSets, %d before", after, before)
	}
}

// TestLacksAgreesWithLookup checks Lacks against Lookup's ErrUnknownCode
// for every code of every bundled CodeSystem, in its case and in upper
// case, a code no system has, versioned system URLs and a system not
// bundled.
func TestLacksAgreesWithLookup(t *testing.T) {
	terms := bundled(t)
	check := func(system, code string) {
		t.Helper()
		_, err := terms.Lookup(system, code)
		if got, want := terms.Lacks(system, code), errors.Is(err, ErrUnknownCode); got != want {
			t.Errorf("Lacks(%q, %q) = %v; Lookup gives %v", system, code, got, err)
		}
	}
	for url, cs := range terms.codeSystems {
		for code := range cs.codes {
			check(url, code)
			check(url, strings.ToUpper(code))
		}
		check(url, "no-such-code")
		check(url+"|"+cs.Version, "no-such-code")
	}
	check("http://example.org/not-bundled", "x")
	check("", "")
}
