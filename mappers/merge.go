package mappers

import (
	"slices"
	"strings"

	"carefhir/fhir"
)

// Replace returns held, the items a stored resource holds of one element
// (its names, addresses or telecoms), with those covers selects replaced
// by sent, what the payload gives of them: a held item that agrees with a
// sent one is kept in its place instead of it, since it may hold what the
// payload cannot say (a period, an id, an extension); the sent items no
// held item agrees with take the place of the first held item dropped, or
// go at the end. A nil sent removes what covers selects, as an HL7 v2
// null ("") asks; a nil agrees agrees with nothing.
func Replace[T any](held []T, covers func(T) bool, sent []T, agrees func(held, sent T) bool) []T {
	kept := make([]bool, len(held))
	var added []T
	for _, s := range sent {
		i := slices.IndexFunc(held, func(h T) bool { return agrees != nil && agrees(h, s) })
		for i >= 0 && kept[i] {
			// Another sent item took it: look further on.
			j := slices.IndexFunc(held[i+1:], func(h T) bool { return agrees(h, s) })
			if j < 0 {
				i = -1
				break
			}
			i += 1 + j
		}
		if i < 0 {
			added = append(added, s)
			continue
		}
		kept[i] = true
	}
	out := make([]T, 0, len(held)+len(added))
	for i, h := range held {
		switch {
		case kept[i] || !covers(h):
			out = append(out, h)
		case added != nil:
			out = append(out, added...)
			added = nil
		}
	}
	return append(out, added...)
}

// Squash is s without spaces, upper-cased: a postcode, a phone number or
// an email address as compared.
func Squash(s string) string {
	return strings.ToUpper(strings.Join(strings.Fields(s), ""))
}

// RefersTo returns whether a reference is to a resource of typ: by its
// type, or by a relative reference Type/id.
func RefersTo(typ string) func(*fhir.Reference) bool {
	return func(r *fhir.Reference) bool {
		return r != nil && (r.Type.Get() == typ || strings.HasPrefix(r.Reference.Get(), typ+"/"))
	}
}
