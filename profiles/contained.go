package profiles

import (
	"fmt"
	"strings"
)

// localRefs collects, for a resource and the resources it contains, what
// dom-3 asks of its contained resources: the local references ("#id") made
// by its Reference.reference, canonical, uri and url values, and which
// contained resources refer to their container ("#").
type localRefs struct {
	refs        map[string]bool
	toContainer map[string]bool // location of the contained resource
}

// noteLocal records a value that may be a local reference.
func (w *walker) noteLocal(it item, e *elem, s string) {
	if w.local == nil || !strings.HasPrefix(s, "#") {
		return
	}
	switch {
	case it.typ == "canonical" || it.typ == "uri" || it.typ == "url":
	case e.def.Path == "Reference.reference" || e.def.Base != nil && e.def.Base.Path == "Reference.reference":
	default:
		return
	}
	if s != "#" {
		w.local.refs[s] = true
	} else if w.container != nil {
		w.local.toContainer[w.resPath] = true
	}
}

// dom3 checks dom-3 for a resource: each contained resource is
// referred to from elsewhere in the resource, or refers to the resource
// (https://hl7.org/fhir/R4/domainresource.html#invs). The published
// FHIRPath, rewritten with ofType() for its as(), means the same.
func (w *walker) dom3(obj map[string]any, s *structure, path string) {
	list, _ := obj["contained"].([]any)
	if len(list) == 0 || w.local == nil {
		return
	}
	inv := nativeConstraint(s.root, "dom-3")
	if inv == nil {
		return
	}
	for i, x := range list {
		c, _ := x.(map[string]any)
		id, _ := c["id"].(string)
		at := fmt.Sprintf("%s.contained[%d]", path, i)
		if c == nil || w.local.refs["#"+id] || w.local.toContainer[at] {
			continue
		}
		w.brokenInvariant(*inv, path, fmt.Sprintf("contained[%d], id %q", i, truncate(id)))
	}
}
