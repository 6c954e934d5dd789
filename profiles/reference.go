package profiles

import (
	"strings"
)

// reference checks that a Reference points at a resource of a type the
// element allows (ElementDefinition.type.targetProfile) and that a local
// reference "#id" names a contained resource.
func (w *walker) reference(it item, d *ElementDefinition) {
	m, _ := it.val.(map[string]any)
	ref, _ := m["reference"].(string)
	declared, _ := m["type"].(string)
	if !w.v.isResource(declared) {
		declared = "" // an absolute URL of a logical model, or nothing
	}
	var targetType string
	switch {
	case ref == "":
	case ref == "#":
		// "#" is the resource holding the contained resources.
		holder := w.res
		if w.container != nil {
			holder = w.container
		}
		targetType, _ = holder["resourceType"].(string)
	case strings.HasPrefix(ref, "#"):
		target := w.contained(ref[1:])
		if target == nil {
			w.add("error", "structure", it.path+".reference", "the reference %s names no contained resource", ref)
			return
		}
		targetType, _ = target["resourceType"].(string)
	default:
		if r := w.bundle[ref]; r != nil {
			targetType, _ = r["resourceType"].(string)
		} else {
			targetType = ReferenceType(ref)
			if targetType != "" && !w.v.isResource(targetType) {
				targetType = ""
			}
		}
	}
	switch {
	case targetType == "":
		// A logical reference (an identifier alone), or a URL that names no
		// type, such as a urn:uuid: outside a Bundle: Reference.type is the
		// type of its target, which the element must allow all the same.
		targetType = declared
		if targetType == "" {
			return
		}
	case declared != "" && declared != targetType:
		w.add("error", "structure", it.path, "the reference is to a %s but its type says %s", targetType, declared)
	}
	var allowed []string
	for _, t := range d.Type {
		if t.typeCode() != "Reference" {
			continue
		}
		for _, tp := range t.TargetProfile {
			s := w.v.structure(tp)
			if s == nil {
				return // a target profile not known here: do not guess
			}
			allowed = append(allowed, s.sd.Type)
		}
	}
	if len(allowed) == 0 {
		return
	}
	for _, a := range allowed {
		if a == targetType || a == "Resource" || a == "DomainResource" && targetType != "Bundle" && targetType != "Parameters" && targetType != "Binary" {
			return
		}
	}
	w.add("error", "structure", it.path, "the reference is to a %s, which is not one of the allowed target types %s", targetType, strings.Join(allowed, ", "))
}

func (w *walker) contained(id string) map[string]any {
	holder := w.res
	if w.container != nil {
		holder = w.container
	}
	list, _ := holder["contained"].([]any)
	for _, c := range list {
		if m, ok := c.(map[string]any); ok && m["id"] == id {
			return m
		}
	}
	return nil
}

// ReferenceType returns the resource type a literal reference names:
// "Patient/1", "http://x/fhir/Patient/1" and ".../Patient/1/_history/2"
// name Patient. Other forms (urn:uuid:, urn:oid:) name none.
func ReferenceType(ref string) string {
	if strings.HasPrefix(ref, "urn:") {
		return ""
	}
	ref, _, _ = strings.Cut(ref, "?")
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	parts := strings.Split(ref, "/")
	if len(parts) < 2 {
		return ""
	}
	return parts[len(parts)-2]
}
