package mappers

import (
	"net/url"
	"slices"
	"strings"

	"carefhir/fhir"
	"carefhir/fhir/search"
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
// type, or by a literal reference that names it (refType).
func RefersTo(typ string) func(*fhir.Reference) bool {
	return func(r *fhir.Reference) bool {
		return r != nil && (r.Type.Get() == typ || refType(r.Reference.Get()) == typ)
	}
}

// refType returns the type of the resource a literal reference names when
// it is written as FHIR's RESTful references are: Type/id, with
// /_history/v or without, relative or absolute (https://host/fhir/Type/id,
// as a client that stored the absolute URL of this server or of another
// writes it; either is the patient's practice or GP all the same). It
// returns "" for any other reference, such as a urn:uuid or a fragment.
func refType(ref string) string {
	if u, err := url.Parse(ref); err == nil && u.IsAbs() {
		if u.Scheme != "http" && u.Scheme != "https" {
			return ""
		}
		parts := strings.Split(strings.Trim(u.Path, "/"), "/")
		n := 2
		if len(parts) >= 4 && parts[len(parts)-2] == "_history" {
			n = 4
		}
		if len(parts) < n {
			return ""
		}
		ref = strings.Join(parts[len(parts)-n:], "/")
	}
	return search.ParseReference(ref, "").Type
}
