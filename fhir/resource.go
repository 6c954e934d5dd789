package fhir

import "slices"

// Resource is implemented by every resource type.
type Resource interface {
	// ResourceType returns the resource type name, e.g. "Patient".
	ResourceType() string
	// GetID returns the logical id (Resource.id), or "" when absent.
	GetID() string
	// SetID sets the logical id; "" removes it.
	SetID(id string)
	// GetMeta returns Resource.meta, or nil when absent.
	GetMeta() *Meta
	// SetMeta sets Resource.meta; nil removes it.
	SetMeta(m *Meta)
}

// ResourceTypes returns every R4 resource type, sorted.
func ResourceTypes() []string { return slices.Clone(resourceTypes) }

// IsResourceType reports whether name is an R4 resource type.
func IsResourceType(name string) bool {
	_, ok := resourceElements[name]
	return ok
}

// elementSets holds the sorted top-level JSON property names of a resource type.
type elementSets struct {
	all, summary, mandatory []string
}

// SummaryElements returns the JSON property names of the top-level elements of
// resourceType marked isSummary in its definition, sorted. A choice element
// contributes every concrete property name (e.g. "deceasedBoolean" and
// "deceasedDateTime"). The result is nil for an unknown type. It serves
// _summary=true.
func SummaryElements(resourceType string) []string {
	return slices.Clone(resourceElements[resourceType].summary)
}

// MandatoryElements returns the JSON property names of the top-level elements of
// resourceType with a minimum cardinality of at least 1. A mandatory choice
// element appears once, by its definition name ("medication[x]"), since any
// one of its concrete properties satisfies it.
func MandatoryElements(resourceType string) []string {
	return slices.Clone(resourceElements[resourceType].mandatory)
}

// ElementNames returns every top-level JSON property name valid for
// resourceType, choice elements expanded, sorted; "resourceType" itself is not
// included. It serves the validation of _elements.
func ElementNames(resourceType string) []string {
	return slices.Clone(resourceElements[resourceType].all)
}

// IsElement reports whether name is a top-level JSON property name of
// resourceType, as ElementNames lists them, without copying the list.
func IsElement(resourceType, name string) bool {
	_, ok := slices.BinarySearch(resourceElements[resourceType].all, name)
	return ok
}

// withID returns p with its value set to id, keeping its id and extensions;
// an empty id removes the element.
func withID(p *Id, id string) *Id {
	if id == "" {
		return nil
	}
	if p == nil {
		return NewId(id)
	}
	p.Value = &id
	return p
}
