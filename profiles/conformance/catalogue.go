package conformance

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"carefhir/fhir/definitions"
)

// Resource is one bundled conformance resource.
type Resource struct {
	Type    string // StructureDefinition, ValueSet, CodeSystem, OperationDefinition...
	ID      string
	URL     string // canonical URL
	Version string // business version, "" when it has none
	// JSON is the resource as vendored (see README.md for what vendoring
	// drops). It must not be modified.
	JSON json.RawMessage
}

// Catalogue holds every conformance resource bundled with carefhir: the R4
// base StructureDefinitions of package fhir/definitions and the resources of
// FS (R4 core extensions and vital signs profiles, R4 terminology, R4
// OperationDefinitions, UK Core).
// It is read-only and safe for concurrent use.
type Catalogue struct {
	byID   map[string]*Resource   // by Type + "/" + id
	byType map[string][]*Resource // in id order
	byURL  map[string][]*Resource // by Type + " " + url
}

// Load reads the bundled resources. Two resources of one type sharing an id,
// or one without an id, are an error: they could not be served by id.
func Load() (*Catalogue, error) {
	c := &Catalogue{byID: map[string]*Resource{}, byType: map[string][]*Resource{}, byURL: map[string][]*Resource{}}
	for _, b := range Bundles() {
		var bundle struct {
			Entry []struct {
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		if err := definitions.DecodeJSON(b.FS, b.Name, &bundle); err != nil {
			return nil, fmt.Errorf("conformance: %w", err)
		}
		for _, e := range bundle.Entry {
			var head struct {
				ResourceType string `json:"resourceType"`
				ID           string `json:"id"`
				URL          string `json:"url"`
				Version      string `json:"version"`
			}
			if err := json.Unmarshal(e.Resource, &head); err != nil {
				return nil, fmt.Errorf("conformance: %s: %w", b.Name, err)
			}
			r := &Resource{Type: head.ResourceType, ID: head.ID, URL: head.URL, Version: head.Version, JSON: e.Resource}
			key := r.Type + "/" + r.ID
			switch {
			case r.ID == "":
				return nil, fmt.Errorf("conformance: %s: a %s without an id (%s)", b.Name, r.Type, r.URL)
			case c.byID[key] != nil:
				return nil, fmt.Errorf("conformance: %s: %s is bundled twice", b.Name, key)
			}
			c.byID[key] = r
			c.byType[r.Type] = append(c.byType[r.Type], r)
			if r.URL != "" {
				c.byURL[r.Type+" "+r.URL] = append(c.byURL[r.Type+" "+r.URL], r)
			}
		}
	}
	for _, list := range c.byType {
		sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	}
	return c, nil
}

// Get returns the bundled resource of type typ with this id, or nil.
func (c *Catalogue) Get(typ, id string) *Resource {
	return c.byID[typ+"/"+id]
}

// All returns the bundled resources of type typ in id order. The slice is
// shared: callers must not modify it.
func (c *Catalogue) All(typ string) []*Resource {
	return c.byType[typ]
}

// Canonical returns the bundled resource of type typ with this canonical
// URL, or nil. A version, given as "url|version" or as version, must match
// the resource's; without one the first resource with the URL is returned.
func (c *Catalogue) Canonical(typ, url, version string) *Resource {
	url, v, ok := strings.Cut(url, "|")
	if ok && version == "" {
		version = v
	}
	for _, r := range c.byURL[typ+" "+url] {
		if version == "" || r.Version == version {
			return r
		}
	}
	return nil
}
