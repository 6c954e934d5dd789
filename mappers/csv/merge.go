package csv

import (
	"slices"
	"strings"

	"carefhir/fhir"
	"carefhir/mappers"
)

// rowUpdate is what one row says of a patient already stored: a report
// lists some of what the practice holds, so a row updates the elements
// its cells give and keeps the rest of the record (what PDS brought: the
// verification status of the NHS number, other addresses and telecoms,
// contacts, extensions). A blank cell says nothing.
type rowUpdate struct {
	p *fhir.Patient // the row's Patient, written whole when none is stored
	// The cells of the name, trimmed; "" when blank.
	title, first, middle, family string
	// The row's practice and usual GP, nil when it names none; ods is the
	// practice's ODS code.
	practice, gp *fhir.Reference
	ods          string
	gpIdentifier *fhir.Identifier // the usual GP's GMP or GMC number, if given
}

// merge returns stored, a copy of the stored Patient, updated with what
// the row gives. It is the mappers.Merge of the row's entry.
func (u *rowUpdate) merge(stored fhir.Resource, _ func(string) string) fhir.Resource {
	s, ok := stored.(*fhir.Patient)
	if !ok {
		return u.p
	}
	u.mergeName(s)
	if u.p.BirthDate != nil {
		s.BirthDate = u.p.BirthDate
	}
	if u.p.Gender != nil {
		s.Gender = u.p.Gender
	}
	for _, ad := range u.p.Address {
		s.Address = mergeAddress(s.Address, ad)
	}
	for _, t := range u.p.Telecom {
		s.Telecom = mergeTelecom(s.Telecom, t)
	}
	if u.practice != nil {
		s.GeneralPractitioner = replaceRefs(s.GeneralPractitioner, "Organization", u.practice, func(r *fhir.Reference) bool {
			return r.Identifier != nil && r.Identifier.System.Get() == mappers.ODSSystem && r.Identifier.Value.Get() == u.ods
		})
	}
	if u.gp != nil {
		s.GeneralPractitioner = replaceRefs(s.GeneralPractitioner, "Practitioner", u.gp, func(r *fhir.Reference) bool {
			if id := u.gpIdentifier; id != nil {
				return r.Identifier != nil && r.Identifier.System.Get() == id.System.Get() && r.Identifier.Value.Get() == id.Value.Get()
			}
			return r.Display != nil && strings.EqualFold(r.Display.Get(), u.gp.Display.Get())
		})
	}
	return s
}

// mergeName updates the usual name of s, the name PDS gives as current
// and the one a row writes, part by part: the surname, the first given
// name, the middle names (the given names after the first) and the
// title. Its other parts (a suffix, a period) are kept. A record with no
// usual name gets the row's.
func (u *rowUpdate) mergeName(s *fhir.Patient) {
	if u.title == "" && u.first == "" && u.middle == "" && u.family == "" {
		return
	}
	i := slices.IndexFunc(s.Name, func(n *fhir.HumanName) bool { return n != nil && n.Use.Get() == "usual" })
	if i < 0 {
		s.Name = append(s.Name, u.p.Name...)
		return
	}
	n := s.Name[i]
	if u.family != "" {
		n.Family = fhir.NewString(u.family)
	}
	if u.first != "" {
		if len(n.Given) == 0 {
			n.Given = []*fhir.String{nil}
		}
		n.Given[0] = fhir.NewString(u.first)
	}
	if u.middle != "" {
		n.Given = append(n.Given[:min(len(n.Given), 1):min(len(n.Given), 1)], fhir.NewString(u.middle))
	}
	if u.title != "" {
		n.Prefix = []*fhir.String{fhir.NewString(u.title)}
	}
}

// mergeAddress updates the home address of addresses with ad, the row's:
// one that agrees with what the row gives (the same lines, the same
// postcode, what the row leaves blank not compared) is kept as it is,
// with its period and address keys; one that does not is replaced, since
// lines kept beside a new postcode would describe no address. The other
// addresses (temporary, correspondence) are kept.
func mergeAddress(addresses []*fhir.Address, ad *fhir.Address) []*fhir.Address {
	i := slices.IndexFunc(addresses, func(a *fhir.Address) bool { return a != nil && a.Use.Get() == "home" })
	if i < 0 {
		return append(addresses, ad)
	}
	held := addresses[i]
	sameLines := ad.Line == nil || slices.EqualFunc(held.Line, ad.Line, func(a, b *fhir.String) bool { return strings.EqualFold(a.Get(), b.Get()) })
	samePostcode := ad.PostalCode == nil || mappers.Squash(held.PostalCode.Get()) == mappers.Squash(ad.PostalCode.Get())
	if !sameLines || !samePostcode {
		addresses[i] = ad
	}
	return addresses
}

// mergeTelecom updates the contact points of t's system and use with t:
// when one of them has t's value they are kept as they are, else t
// replaces them. The others are kept.
func mergeTelecom(telecom []*fhir.ContactPoint, t *fhir.ContactPoint) []*fhir.ContactPoint {
	same := func(c *fhir.ContactPoint) bool {
		return c != nil && c.System.Get() == t.System.Get() && c.Use.Get() == t.Use.Get()
	}
	if slices.ContainsFunc(telecom, func(c *fhir.ContactPoint) bool {
		return same(c) && mappers.Squash(c.Value.Get()) == mappers.Squash(t.Value.Get())
	}) {
		return telecom
	}
	return mappers.Replace(telecom, same, []*fhir.ContactPoint{t}, nil)
}

// replaceRefs replaces the references of refs to resources of typ by
// with, unless one of them is the same (keep), when all are kept.
func replaceRefs(refs []*fhir.Reference, typ string, with *fhir.Reference, keep func(*fhir.Reference) bool) []*fhir.Reference {
	of := mappers.RefersTo(typ)
	if slices.ContainsFunc(refs, func(r *fhir.Reference) bool { return of(r) && keep(r) }) {
		return refs
	}
	return mappers.Replace(refs, of, []*fhir.Reference{with}, nil)
}
