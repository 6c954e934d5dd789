package server

import "slices"

// ServedTypes returns the resource types the REST API serves, sorted.
func ServedTypes() []string { return slices.Clone(servedTypes) }
