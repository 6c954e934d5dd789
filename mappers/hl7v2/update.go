package hl7v2

import (
	"slices"
	"strconv"
	"strings"

	"carefhir/fhir"
	"carefhir/mappers"
	"carefhir/profiles"
)

// update is what a PID (and the PD1 after it) says of a patient: the
// Patient written whole when none with its NHS number is stored, and the
// merge onto the one stored. HL7 v2.5 2.5.3: a field left empty says
// nothing and changes nothing; a field sent as "" (the HL7 null) deletes
// what the record holds of it; a field with a value replaces what the
// record holds of it, each stored item that agrees with one sent kept as
// it is, since it may hold what v2 cannot say (PDS's periods, ids and
// extensions).
type update struct {
	p *fhir.Patient
	// nulls are the fields sent as "", such as "PID-13".
	nulls map[string]bool
	// status reports whether the message gives the NHS number's
	// verification status (PID-32 or CX-4.2).
	status bool
	// home and work are the telecoms of PID-13 and PID-14.
	home, work []*fhir.ContactPoint
	// alive is PID-30 N: the patient is not dead.
	alive bool
	// practice and gp are the references of PD1-3 and PD1-4, nil when
	// the message names none; ods is the practice's ODS code, gpID the
	// GP's GMP or GMC number.
	practice, gp *fhir.Reference
	ods          string
	gpID         *fhir.Identifier
}

// null reports whether f is the HL7 null, "": the receiver is to delete
// the value it holds.
func null(f Field) bool {
	return len(f) == 1 && len(f[0]) == 1 && len(f[0][0]) == 1 && f[0][0][0] == `""`
}

// noteNulls records which of the fields n of seg are sent as "".
func (u *update) noteNulls(seg *Segment, n ...int) {
	for _, i := range n {
		if null(seg.Field(i)) {
			if u.nulls == nil {
				u.nulls = map[string]bool{}
			}
			u.nulls[seg.Name+"-"+strconv.Itoa(i)] = true
		}
	}
}

// merge returns stored, a copy of the stored Patient, with the message's
// fields applied, and the links a merge gives it added to those it holds.
// It is the mappers.Merge of the message's entry.
func (u *update) merge(stored fhir.Resource, ref func(string) string) fhir.Resource {
	s, ok := stored.(*fhir.Patient)
	if !ok {
		return u.p
	}
	if u.p.Active != nil {
		// A merge makes the record it merges away inactive.
		s.Active = u.p.Active
	}
	mappers.AddLinks(s, u.p.Link, ref)
	u.mergeStatus(s)
	s.Name = apply(s.Name, u.nulls["PID-5"], u.p.Name, current, nil, sameName)
	if u.p.BirthDate != nil || u.nulls["PID-7"] {
		s.BirthDate = u.p.BirthDate
	}
	if u.p.Gender != nil || u.nulls["PID-8"] {
		s.Gender = u.p.Gender
	}
	s.Address = apply(s.Address, u.nulls["PID-11"], u.p.Address, currentAddress, func(h, a *fhir.Address) bool {
		return sameUse(h.Use, a.Use)
	}, sameAddress)
	sameKind := func(h, c *fhir.ContactPoint) bool {
		return h.System.Get() == c.System.Get() && sameUse(h.Use, c.Use)
	}
	s.Telecom = apply(s.Telecom, u.nulls["PID-13"], u.home, func(c *fhir.ContactPoint) bool {
		return c != nil && c.Use.Get() != "work" && c.Use.Get() != "old"
	}, sameKind, sameTelecom)
	s.Telecom = apply(s.Telecom, u.nulls["PID-14"], u.work, func(c *fhir.ContactPoint) bool {
		return c != nil && c.Use.Get() == "work"
	}, sameKind, sameTelecom)
	u.mergeDeath(s)
	s.GeneralPractitioner = apply(s.GeneralPractitioner, u.nulls["PD1-3"], refs(u.practice), mappers.RefersTo("Organization"), nil, func(held, _ *fhir.Reference) bool {
		if u.ods != "" {
			return held.Identifier != nil && held.Identifier.System.Get() == mappers.ODSSystem && held.Identifier.Value.Get() == u.ods
		}
		return sameDisplay(held, u.practice)
	})
	s.GeneralPractitioner = apply(s.GeneralPractitioner, u.nulls["PD1-4"], refs(u.gp), mappers.RefersTo("Practitioner"), nil, func(held, _ *fhir.Reference) bool {
		if id := u.gpID; id != nil {
			return held.Identifier != nil && held.Identifier.System.Get() == id.System.Get() && held.Identifier.Value.Get() == id.Value.Get()
		}
		return sameDisplay(held, u.gp)
	})
	return s
}

// apply applies one field to held, the items of the stored Patient of
// its element: a null removes those the field covers; sent, its items
// replace those of them of the same kind as one sent (all of them when
// kind is nil); a field that gave nothing (empty, or its values left out
// with a Warning) changes nothing. A sent item is kept as a held one
// that agrees with it only when the field covers that one: a former
// name (use old) is history, and a name sent that is the same is the
// patient's again, to be written beside it as a current one, where the
// former one taking its place would leave the record with no current
// name.
func apply[T any](held []T, null bool, sent []T, covers func(T) bool, kind, agrees func(held, sent T) bool) []T {
	if sent == nil {
		if !null {
			return held
		}
		return mappers.Replace(held, covers, nil, nil)
	}
	all := covers
	if kind != nil {
		covers = func(h T) bool {
			return all(h) && slices.ContainsFunc(sent, func(s T) bool { return kind(h, s) })
		}
	}
	return mappers.Replace(held, covers, sent, func(h, s T) bool { return all(h) && agrees(h, s) })
}

// mergeStatus applies PID-32 (or CX-4.2), the verification status of the
// NHS number, to the stored NHS number's identifier, keeping its other
// extensions.
func (u *update) mergeStatus(s *fhir.Patient) {
	if !u.status && !u.nulls["PID-32"] {
		return
	}
	sent := u.p.Identifier[0]
	i := slices.IndexFunc(s.Identifier, func(id *fhir.Identifier) bool {
		return id != nil && id.System.Get() == mappers.NHSNumberSystem && id.Value.Get() == sent.Value.Get()
	})
	if i < 0 {
		s.Identifier = append(s.Identifier, sent)
		return
	}
	id := s.Identifier[i]
	id.Extension = slices.DeleteFunc(id.Extension, func(e *fhir.Extension) bool { return e != nil && e.Url == profiles.VerificationStatusURL })
	if u.status {
		id.Extension = append(id.Extension, sent.Extension...)
	}
}

// mergeDeath applies PID-29 (the date and time of death) and PID-30 (the
// death indicator): a date replaces what was recorded; Y records the
// death when no date is; N records the patient alive, removing both
// unless PID-29 gives a date; a null PID-29 removes the date, a null
// PID-30 the indicator.
func (u *update) mergeDeath(s *fhir.Patient) {
	switch {
	case u.p.DeceasedDateTime != nil:
		s.DeceasedDateTime, s.DeceasedBoolean = u.p.DeceasedDateTime, nil
		return
	case u.alive:
		s.DeceasedDateTime, s.DeceasedBoolean = nil, nil
		return
	case u.nulls["PID-29"]:
		s.DeceasedDateTime = nil
	}
	switch {
	case u.p.DeceasedBoolean != nil && s.DeceasedDateTime == nil:
		s.DeceasedBoolean = u.p.DeceasedBoolean
	case u.nulls["PID-30"]:
		s.DeceasedBoolean = nil
	}
}

// sameUse reports whether an item the record holds, of use held, is of
// the kind of one sent, of use sent: the same use, or, for one sent
// without a use (an address with no type, a phone in PID-13 with no use
// code, an email), a home one or one without a use, since the fields a
// message sends them in are the patient's home address and phone.
func sameUse(held, sent *fhir.Code) bool {
	if sent == nil {
		return held.Get() == "" || held.Get() == "home"
	}
	return held.Get() == sent.Get()
}

// current reports whether a name or address is one of the patient's
// current ones, which PID-5 and PID-11 cover: former ones (use old) are
// history a message about the present does not replace.
func current(n *fhir.HumanName) bool { return n != nil && n.Use.Get() != "old" }

func currentAddress(a *fhir.Address) bool { return a != nil && a.Use.Get() != "old" }

// sameName reports whether the stored name held is the name sent: the
// same family and given names, and the same prefix and suffix when the
// message gives them, case aside. Its use is not compared: PDS calls the
// current name usual, v2 senders legal (L).
func sameName(held, sent *fhir.HumanName) bool {
	return held != nil && strings.EqualFold(held.Family.Get(), sent.Family.Get()) &&
		sameStrings(held.Given, sent.Given) &&
		(sent.Prefix == nil || sameStrings(held.Prefix, sent.Prefix)) &&
		(sent.Suffix == nil || sameStrings(held.Suffix, sent.Suffix))
}

// sameAddress reports whether the stored address held is the address
// sent: what the message gives of it (lines, city, district, postcode,
// country, use) is the same, spaces and case aside.
func sameAddress(held, sent *fhir.Address) bool {
	same := func(h, s *fhir.String) bool { return s == nil || mappers.Squash(h.Get()) == mappers.Squash(s.Get()) }
	return held != nil && (sent.Line == nil || sameStrings(held.Line, sent.Line)) &&
		same(held.City, sent.City) && same(held.District, sent.District) &&
		same(held.PostalCode, sent.PostalCode) && same(held.Country, sent.Country) &&
		(sent.Use == nil || held.Use.Get() == sent.Use.Get())
}

// sameTelecom reports whether the stored contact point held is the one
// sent: the same system and value (spaces and case aside), and the same
// use when the message gives one.
func sameTelecom(held, sent *fhir.ContactPoint) bool {
	return held != nil && held.System.Get() == sent.System.Get() &&
		mappers.Squash(held.Value.Get()) == mappers.Squash(sent.Value.Get()) &&
		(sent.Use == nil || held.Use.Get() == sent.Use.Get())
}

func sameStrings(a, b []*fhir.String) bool {
	return slices.EqualFunc(a, b, func(x, y *fhir.String) bool { return mappers.Squash(x.Get()) == mappers.Squash(y.Get()) })
}

func sameDisplay(held, sent *fhir.Reference) bool {
	return held.Reference == nil && strings.EqualFold(held.Display.Get(), sent.Display.Get())
}

// refs returns r as a list, empty when nil.
func refs(r *fhir.Reference) []*fhir.Reference {
	if r == nil {
		return nil
	}
	return []*fhir.Reference{r}
}
