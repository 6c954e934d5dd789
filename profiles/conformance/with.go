package conformance

import (
	"encoding/json"
	"fmt"
	"sort"
)

// With returns a catalogue holding c's resources and the given ones (JSON
// conformance resources a host installs at start-up, such as a
// Questionnaire or a profile of its own); c is unchanged. A resource
// without an id, or sharing its type and id with another, is an error.
func (c *Catalogue) With(resources ...[]byte) (*Catalogue, error) {
	out := &Catalogue{byID: make(map[string]*Resource, len(c.byID)+len(resources)), byType: map[string][]*Resource{}, byURL: map[string][]*Resource{}}
	for k, v := range c.byID {
		out.byID[k] = v
	}
	for k, v := range c.byType {
		out.byType[k] = append([]*Resource(nil), v...)
	}
	for k, v := range c.byURL {
		out.byURL[k] = append([]*Resource(nil), v...)
	}
	for _, raw := range resources {
		var head struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
			URL          string `json:"url"`
			Version      string `json:"version"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			return nil, fmt.Errorf("conformance: %w", err)
		}
		r := &Resource{Type: head.ResourceType, ID: head.ID, URL: head.URL, Version: head.Version, JSON: raw}
		key := r.Type + "/" + r.ID
		switch {
		case r.ID == "":
			return nil, fmt.Errorf("conformance: a %s without an id (%s)", r.Type, r.URL)
		case out.byID[key] != nil:
			return nil, fmt.Errorf("conformance: %s is bundled twice", key)
		}
		out.byID[key] = r
		out.byType[r.Type] = append(out.byType[r.Type], r)
		sort.Slice(out.byType[r.Type], func(i, j int) bool { return out.byType[r.Type][i].ID < out.byType[r.Type][j].ID })
		if r.URL != "" {
			out.byURL[r.Type+" "+r.URL] = append(out.byURL[r.Type+" "+r.URL], r)
		}
	}
	return out, nil
}
