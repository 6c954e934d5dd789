package terminology

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"carefhir/fhir/search"
)

// ForSearch returns t as the terminology of FHIR search: the expansions
// of :in and :not-in, and the subsumption of :below and :above, which
// follows a CodeSystem's nested concepts and its parent, subsumedBy and
// child properties (a concept may have several parents).
func (t *Terminology) ForSearch() search.Terminology {
	return &searchTerms{t: t}
}

type searchTerms struct {
	t           *Terminology
	hierarchies sync.Map // CodeSystem URL → *hierarchy, built on first use
}

// hierarchy is the is-a graph of one CodeSystem, both ways.
type hierarchy struct {
	parents, children map[string][]string
}

// Expand returns the codes of a bundled ValueSet.
func (s *searchTerms) Expand(url string) ([]search.Coding, error) {
	exp, err := s.t.Expand(url)
	if errors.Is(err, ErrNotFound) && !s.t.HasValueSet(url) {
		return nil, fmt.Errorf("%w: %w", search.ErrUnknown, err)
	}
	if errors.Is(err, ErrTooCostly) {
		return nil, fmt.Errorf("%w: %w", search.ErrTooCostly, err)
	}
	if err != nil {
		// Bundled, but drawing on what is not: it cannot be computed.
		return nil, err
	}
	out := make([]search.Coding, len(exp.Contains))
	for i, c := range exp.Contains {
		out[i] = search.Coding{System: c.System, Code: c.Code}
	}
	return out, nil
}

// Below returns code and its descendants in a bundled CodeSystem.
func (s *searchTerms) Below(system, code string) ([]string, error) {
	h, err := s.hierarchy(system, code)
	if err != nil {
		return nil, err
	}
	return closure(code, h.children), nil
}

// Above returns code and its ancestors in a bundled CodeSystem.
func (s *searchTerms) Above(system, code string) ([]string, error) {
	h, err := s.hierarchy(system, code)
	if err != nil {
		return nil, err
	}
	return closure(code, h.parents), nil
}

// hierarchy returns the graph of system, which must define code.
func (s *searchTerms) hierarchy(system, code string) (*hierarchy, error) {
	cs, ok := s.t.codeSystems[canonical(system)]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: CodeSystem %s", search.ErrUnknown, system)
	case cs.codes[code] == nil && !cs.complete():
		return nil, fmt.Errorf("%w: the CodeSystem %s holds only part of its codes (content %s), not %s", ErrCodeSystemUnavailable, system, cs.Content, code)
	case cs.codes[code] == nil:
		return nil, fmt.Errorf("%w: %w: %s in %s", search.ErrUnknown, ErrUnknownCode, code, system)
	}
	if h, ok := s.hierarchies.Load(cs.URL); ok {
		return h.(*hierarchy), nil
	}
	h := &hierarchy{parents: map[string][]string{}, children: map[string][]string{}}
	link := func(parent, child string) {
		if parent != "" && child != "" && parent != child && !slices.Contains(h.parents[child], parent) {
			h.parents[child] = append(h.parents[child], parent)
			h.children[parent] = append(h.children[parent], child)
		}
	}
	var walk func(list []concept, parent string)
	walk = func(list []concept, parent string) {
		for i := range list {
			c := &list[i]
			link(parent, c.Code)
			for _, p := range c.Property {
				switch p.Code {
				case "parent", "subsumedBy":
					link(p.ValueCode, c.Code)
				case "child":
					link(c.Code, p.ValueCode)
				}
			}
			walk(c.Concept, c.Code)
		}
	}
	walk(cs.Concept, "")
	v, _ := s.hierarchies.LoadOrStore(cs.URL, h)
	return v.(*hierarchy), nil
}

// closure returns code and every code reachable from it through next,
// each once, nearest first.
func closure(code string, next map[string][]string) []string {
	out := []string{code}
	seen := map[string]bool{code: true}
	for i := 0; i < len(out); i++ {
		for _, n := range next[out[i]] {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}
