package hl7v2

import (
	"fmt"
	"strings"
	"time"

	"carefhir/fhir"
	"carefhir/mappers"
	"carefhir/profiles"
)

// Imported is what Import makes of one message.
type Imported struct {
	// Message is the parsed message; nil when the bytes are not one.
	Message *Message
	// Event is the trigger event of MSH-9, such as A28.
	Event string
	// ControlID is MSH-10, the id the acknowledgement quotes in MSA-2.
	ControlID string
	// Result holds the writes and the findings. Its Bundle is nil when
	// the message is refused.
	mappers.Result
	// Rejected is set when the message cannot be processed at all: it
	// does not parse, or it is not an event this package maps. It is
	// answered with AR rather than AE.
	Rejected bool
	// missing indexes the Issues about absent segments and fields, which
	// the acknowledgement codes 101 rather than 102.
	missing []int
	// header is the MSH of a message that does not parse past it, which
	// the acknowledgement answers.
	header *Message
}

// events are the ADT trigger events mapped, and what each does.
var events = map[string]string{
	"A01": "admit/visit notification",
	"A04": "register a patient",
	"A08": "update patient information",
	"A28": "add person information",
	"A31": "update person information",
	"A40": "merge patient - patient identifier list",
	"A34": "merge patient information - patient ID only",
}

// Import parses one message and maps it: A01, A04, A08, A28 and A31 to a
// conditional update of the Patient named by the NHS number in PID-3 (and
// its registered practice and GP from PD1-3 and PD1-4), A40 and A34 to the
// writes of a merge. Anything else is rejected with the reason. Dates of
// birth and death yet to come are refused as of now (ImportAt).
func Import(data []byte) *Imported { return ImportAt(data, time.Now()) }

// ImportAt is Import with dates of birth and death refused when they come
// after the date of now in the UK (mappers.Today).
func ImportAt(data []byte, now time.Time) *Imported {
	im := &Imported{}
	m, err := Parse(data)
	if err != nil {
		im.Rejected = true
		im.Issues = append(im.Issues, mappers.Errorf(errorPath(err), "%s", strings.TrimPrefix(err.Error(), "hl7v2: ")))
		if im.header = parseHeader(data); im.header != nil {
			im.readHeader(im.header.Segments[0])
		}
		return im
	}
	im.Message = m
	msh := m.Segments[0]
	im.readHeader(msh)
	typ, event := msh.Get(9, 1), im.Event
	if im.ControlID == "" {
		im.missing = append(im.missing, len(im.Issues))
		im.Issues = append(im.Issues, mappers.Errorf("MSH-10", "the message control id is empty"))
		im.Rejected = true
		return im
	}
	if typ != "ADT" {
		im.Issues = append(im.Issues, mappers.Errorf("MSH-9", "message type %q is not handled: only ADT person events are", typ))
		im.Rejected = true
		return im
	}
	if _, ok := events[event]; !ok {
		im.Issues = append(im.Issues, mappers.Errorf("MSH-9.2", "ADT event %q is not handled: only A01, A04, A08, A28, A31, A34 and A40 are", event))
		im.Rejected = true
		return im
	}
	tx := mappers.NewTransaction()
	a := &adt{tx: tx, msg: m, today: mappers.Today(now)}
	if event == "A40" || event == "A34" {
		a.merge()
	} else {
		a.person()
	}
	for _, i := range a.missing {
		im.missing = append(im.missing, len(im.Issues)+i)
	}
	im.Issues = append(im.Issues, a.issues...)
	if !im.Failed() {
		im.Bundle, im.Merges = tx.Bundle(), tx.Merges()
	}
	return im
}

// readHeader reads the control id and event of the message from its MSH.
func (im *Imported) readHeader(msh *Segment) {
	// Spaces around the id are not part of it (and do not survive the
	// acknowledgement's parsing).
	im.ControlID = strings.TrimSpace(msh.Get(10, 1))
	im.Event = msh.Get(9, 2)
}

func errorPath(err error) string {
	if pe, ok := err.(*ParseError); ok && pe.Line > 0 {
		return fmt.Sprintf("segment %d", pe.Line)
	}
	return "message"
}

type adt struct {
	tx     *mappers.Transaction
	msg    *Message
	today  string // YYYY-MM-DD in the UK: later dates of birth and death are mistyped
	issues []mappers.Issue
	// missing indexes the issues about absent segments and fields.
	missing []int
	// seq is the sequence of each segment of the merge pair being mapped
	// among the message's segments of its name (2 for the PID of the
	// second pair), which the issues' paths carry when it is not 1.
	seq map[string]int
}

// missingf records an error for a required segment or field that is
// absent (HL7 error code 101); errorf one for a value that is wrong (102).
func (a *adt) missingf(path, format string, args ...any) {
	a.missing = append(a.missing, len(a.issues))
	a.errorf(path, format, args...)
}

func (a *adt) errorf(path, format string, args ...any) {
	a.issues = append(a.issues, mappers.Errorf(a.located(path), format, args...))
}

func (a *adt) warnf(path, format string, args ...any) {
	a.issues = append(a.issues, mappers.Warnf(a.located(path), format, args...))
}

// located gives path, such as MRG-1, the sequence of its segment when it
// is not the first of its name, as MRG(2)-1: the acknowledgement's ERR-2
// then names the segment of the second pair of a merge, not the first.
func (a *adt) located(path string) string {
	if len(path) < 4 || path[3] != '-' || a.seq[path[:3]] < 2 {
		return path
	}
	return fmt.Sprintf("%s(%d)%s", path[:3], a.seq[path[:3]], path[3:])
}

// person maps the PID (and PD1) of an add or update event.
func (a *adt) person() {
	pid := a.msg.Segment("PID")
	if pid == nil {
		a.missingf("PID", "the message has no PID segment")
		return
	}
	u := a.patient(pid, a.following(pid, "PD1"))
	if u == nil {
		return
	}
	a.tx.PutPart(u.p, mappers.NHSNumberSystem, mappers.NHSNumberOf(u.p), u.merge)
}

// following returns the segment named name after seg and before the
// next PID, or nil.
func (a *adt) following(seg *Segment, name string) *Segment {
	after := false
	for _, s := range a.msg.Segments {
		if s == seg {
			after = true
			continue
		}
		if after && s.Name == "PID" {
			return nil
		}
		if after && s.Name == name {
			return s
		}
	}
	return nil
}

// merge maps each PID/MRG pair: the PID is the surviving Patient, MRG-1
// the one merged into it. The pairs apply in order, as the same merges
// sent one message each would, and each adds to what the pairs before it
// wrote: a survivor of several merges keeps a replaces link to each, and a
// record merged away stays inactive even when a later pair names it as a
// survivor.
func (a *adt) merge() {
	pairs := 0
	written := map[string]*update{} // by NHS number
	into := map[string]string{}     // NHS number merged away → its survivor's
	for _, pid := range a.msg.Segments {
		if pid.Name != "PID" {
			continue
		}
		pairs++
		mrg := a.following(pid, "MRG")
		where := pid.Name
		if mrg == nil {
			a.missingf(where, "a merge needs an MRG segment after the PID, naming the record merged")
			continue
		}
		pd1 := a.following(pid, "PD1")
		a.seq = map[string]int{"PID": a.msg.sequence(pid), "MRG": a.msg.sequence(mrg), "PD1": a.msg.sequence(pd1)}
		u := a.patient(pid, pd1)
		old, oldPath, other := nhsNumberIn(mrg.Field(1))
		if other != "" {
			a.errorf(mrg.Name+"-1"+other+".1", "a second NHS number beside %q at MRG-1%s: a pair merges one record", old.number, oldPath)
			continue
		}
		if old.number == "" {
			a.missingf(mrg.Name+"-1", "MRG-1 holds no NHS number: the merged record cannot be named")
			continue
		}
		if !profiles.ValidNHSNumber(old.number) {
			a.errorf(mrg.Name+"-1"+oldPath, "%q is not a valid NHS number (Modulus 11)", old.number)
			continue
		}
		if u == nil {
			continue
		}
		nhs := mappers.NHSNumberOf(u.p)
		if old.number == nhs {
			a.errorf(mrg.Name+"-1", "the record merged has the surviving record's own NHS number %s", old.number)
			continue
		}
		if to, ok := into[old.number]; ok {
			a.errorf(mrg.Name+"-1", "pair %d merges %s, which an earlier pair of the message merged into %s: a record is merged once", pairs, old.number, to)
			continue
		}
		if chainsTo(into, nhs, old.number) {
			a.errorf(mrg.Name+"-1", "pair %d merges %s into %s, which earlier pairs merged into %s: each would replace the other", pairs, old.number, nhs, old.number)
			continue
		}
		survivor := u
		if prev := written[nhs]; prev != nil {
			if to := into[nhs]; to != "" {
				// Merged away by an earlier pair: it stays as that pair
				// left it, and the record merged into it follows it.
				a.warnf("PID-3", "pair %d merges %s into %s, which an earlier pair merged into %s: %s stays inactive, replaced by %s", pairs, old.number, nhs, to, nhs, to)
				survivor = prev
			} else {
				survivor.p.Link = prev.p.Link
			}
		}
		retired := written[old.number]
		if retired == nil {
			// A stored record is updated as a survivor is, one not stored
			// created with its NHS number and the name MRG-7 gives.
			retired = &update{p: &fhir.Patient{Meta: mappers.Meta(mappers.UKCorePatient), Identifier: []*fhir.Identifier{mappers.NHSNumber(old.number, "")}}}
			if n := humanName(firstRep(mrg.Field(7))); n != nil {
				retired.p.Name = []*fhir.HumanName{n}
			}
		}
		// A survivor of an earlier pair keeps what it was written with.
		retired.p.Active = fhir.NewBoolean(false)
		survivorURL := a.tx.PutPart(survivor.p, mappers.NHSNumberSystem, nhs, survivor.merge)
		retiredURL := a.tx.PutPart(retired.p, mappers.NHSNumberSystem, old.number, retired.merge)
		survivor.p.Link = append(survivor.p.Link, &fhir.PatientLink{Other: mappers.Ref(retiredURL), Type: fhir.NewCode("replaces")})
		retired.p.Link = append(retired.p.Link, &fhir.PatientLink{Other: mappers.Ref(survivorURL), Type: fhir.NewCode("replaced-by")})
		written[nhs], written[old.number] = survivor, retired
		into[old.number] = nhs
	}
	if pairs == 0 {
		a.missingf("PID", "the message has no PID segment")
	}
}

// chainsTo reports whether following into from nhs leads to target: the
// record nhs was merged, directly or through others, into target. into
// has no cycles (merge refuses the pair that would make one).
func chainsTo(into map[string]string, nhs, target string) bool {
	for nhs = into[nhs]; nhs != ""; nhs = into[nhs] {
		if nhs == target {
			return true
		}
	}
	return false
}

func firstRep(f Field) Repetition {
	if len(f) == 0 {
		return nil
	}
	return f[0]
}

type nhsID struct {
	number, status string
}

// nhsNumberOID is the OID of the NHS number, by which senders following
// IHE name its assigning authority in CX-4.2 (&2.16.840.1.113883.2.1.4.1&ISO).
const nhsNumberOID = "2.16.840.1.113883.2.1.4.1"

// nhsNumberIn finds the NHS number among the repetitions of a CX field:
// the one whose identifier type (CX-5) is NH or NHSNMBR, or whose
// assigning authority (CX-4) is NHS or NHSNBR, or the NHS number's OID
// (CX-4.2). It returns the position of
// the repetition found, such as [2], and that of a later one giving
// another NHS number ("" when none does): a field naming two people.
func nhsNumberIn(f Field) (id nhsID, where, other string) {
	for i, r := range f {
		typ := strings.ToUpper(r.Get(5))
		auth := strings.ToUpper(r.Get(4))
		oid := strings.TrimSpace(r.Sub(4, 2)) == nhsNumberOID
		if typ != "NH" && typ != "NHS" && typ != "NHSNMBR" && auth != "NHS" && auth != "NHSNBR" && !oid {
			continue
		}
		number := mappers.NormalNHSNumber(value(r.Get(1)))
		if number == "" {
			// A repetition of the NHS number's type left empty, or sent
			// as the HL7 null, names no one: the number is in another,
			// or the message has none.
			continue
		}
		if where == "" {
			// HL7 UK allows the status in the assigning authority's
			// universal id (CX-4.2), as NSTS01 to NSTS08 or 01 to 08.
			id, where = nhsID{number: number, status: statusCode(r.Sub(4, 2))}, fmt.Sprintf("[%d]", i+1)
		} else if number != id.number {
			return id, where, fmt.Sprintf("[%d]", i+1)
		}
	}
	return id, where, ""
}

// statusCode reads an NHS number status as HL7 UK writes it in PID-32
// (table HL70445 extended: NSTS01 to NSTS08) or as the bare code.
func statusCode(s string) string {
	s = strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "NSTS")
	if mappers.VerificationStatusKnown(s) {
		return s
	}
	return ""
}

// patient maps a PID (with the PD1 after it, if any) to a UK Core
// Patient and the update of a stored one, registering the practice and
// GP writes; nil when the PID holds no valid NHS number.
func (a *adt) patient(pid, pd1 *Segment) *update {
	id, where, other := nhsNumberIn(pid.Field(3))
	if other != "" {
		// Applied to one of them, the message might change the record of
		// someone it is not about.
		a.errorf("PID-3"+other+".1", "a second NHS number beside %q at PID-3%s: a PID is about one patient", id.number, where)
		return nil
	}
	if id.number == "" {
		a.missingf("PID-3", "no NHS number among the patient identifiers (a repetition with identifier type NH or assigning authority NHS): records are matched on it")
		return nil
	}
	if !profiles.ValidNHSNumber(id.number) {
		a.errorf("PID-3"+where+".1", "%q is not a valid NHS number: it must be 10 digits with a correct Modulus 11 check digit", id.number)
		return nil
	}
	if raw := value(pid.Get(32, 1)); raw != "" {
		if s := statusCode(raw); s != "" {
			id.status = s
		} else {
			a.warnf("PID-32", "%q is not an NHS number status (NSTS01 to NSTS08): left out", raw)
		}
	}
	p := &fhir.Patient{Meta: mappers.Meta(mappers.UKCorePatient), Identifier: []*fhir.Identifier{mappers.NHSNumber(id.number, id.status)}}
	u := &update{p: p, status: id.status != ""}
	u.noteNulls(pid, 5, 7, 8, 11, 13, 14, 29, 30, 32)
	for i, r := range pid.Field(5) {
		if n := humanName(r); n != nil {
			p.Name = append(p.Name, n)
		} else if !r.Empty() && !u.nulls["PID-5"] {
			a.warnf(fmt.Sprintf("PID-5[%d]", i+1), "a name with neither family nor given name: left out")
		}
	}
	if d := value(pid.Get(7, 1)); d != "" {
		date, ok := hl7Date(d)
		switch {
		case !ok:
			a.errorf("PID-7", "%q is not an HL7 date (YYYYMMDD)", d)
		case date > a.today:
			// As a CSV report's: a birth yet to come is a mistyped
			// date, for the sender to correct, not one to share.
			a.errorf("PID-7", "date of birth %s is in the future", date)
		default:
			p.BirthDate = fhir.NewDate(date)
		}
	}
	if s := value(pid.Get(8, 1)); s != "" {
		if g, ok := genders[strings.ToUpper(s)]; ok {
			p.Gender = fhir.NewCode(g)
		} else {
			a.warnf("PID-8", "sex %q is not in HL7 table 0001: left out", s)
		}
	}
	for _, r := range pid.Field(11) {
		if ad := address(r); ad != nil {
			p.Address = append(p.Address, ad)
		}
	}
	for _, n := range []int{13, 14} {
		for _, r := range pid.Field(n) {
			cp := contactPoint(r, n == 14)
			switch {
			case cp == nil:
			case n == 13:
				u.home = append(u.home, cp)
			default:
				u.work = append(u.work, cp)
			}
		}
	}
	if d := value(pid.Get(29, 1)); d != "" {
		dt, ok := hl7DateTime(d)
		day, _, _ := strings.Cut(dt, "T")
		switch {
		case !ok:
			a.errorf("PID-29", "%q is not an HL7 date and time", d)
		case day > a.today:
			// As a birth yet to come (PID-7): a mistyped date.
			a.errorf("PID-29", "date of death %s is in the future", day)
		case p.BirthDate != nil && before(day, p.BirthDate.Get()):
			a.errorf("PID-29", "date of death %s is before the date of birth %s", day, p.BirthDate.Get())
		default:
			p.DeceasedDateTime = fhir.NewDateTime(dt)
		}
	} else if strings.EqualFold(pid.Get(30, 1), "Y") {
		p.DeceasedBoolean = fhir.NewBoolean(true)
	}
	u.alive = strings.EqualFold(pid.Get(30, 1), "N")
	p.Telecom = append(u.home[:len(u.home):len(u.home)], u.work...)
	if pd1 != nil {
		u.noteNulls(pd1, 3, 4)
		a.registration(u, pd1)
	}
	p.GeneralPractitioner = append(refs(u.practice), refs(u.gp)...)
	return u
}

// registration maps PD1-3 (the registered practice) and PD1-4 (the
// registered GP) to Patient.generalPractitioner.
func (a *adt) registration(u *update, pd1 *Segment) {
	if r := firstRep(pd1.Field(3)); !r.Empty() {
		// XON-10 (v2.5) holds the organisation identifier; before v2.5
		// XON-3 did.
		ods := value(r.Get(10))
		if ods == "" {
			ods = value(r.Get(3))
		}
		switch {
		case mappers.ODSCode(ods):
			url := a.tx.Ensure(mappers.Practice(ods, value(r.Get(1))), mappers.ODSSystem, ods)
			u.practice, u.ods = mappers.Ref(url), ods
		case value(r.Get(1)) != "":
			a.warnf("PD1-3", "the practice %q has no ODS code (XON-10 or XON-3): kept as a name only", r.Get(1))
			u.practice = &fhir.Reference{Type: fhir.NewUri("Organization"), Display: fhir.NewString(r.Get(1))}
		}
	}
	if r := firstRep(pd1.Field(4)); !r.Empty() {
		code := value(r.Get(1))
		name := humanName(xcnName(r))
		system := mappers.PractitionerSystem(code)
		switch {
		case system != "":
			url := a.tx.Ensure(mappers.Practitioner(system, code, name), system, code)
			u.gp, u.gpID = mappers.Ref(url), &fhir.Identifier{System: fhir.NewUri(system), Value: fhir.NewString(code)}
		case name != nil:
			a.warnf("PD1-4", "the GP's id %q is neither a GMP (G and 7 digits) nor a GMC number: kept as a name only", code)
			u.gp = &fhir.Reference{Type: fhir.NewUri("Practitioner"), Display: fhir.NewString(displayName(name))}
		}
	}
}

// xcnName is the person's name within an XCN as an XPN: XCN-2 to XCN-7
// (family to degree) are XPN-1 to XPN-6, and XCN-10, the name type, is
// XPN-7; XCN-8 and XCN-9 are the id's source table and assigning
// authority.
func xcnName(r Repetition) Repetition {
	n := make(Repetition, 7)
	copy(n[:6], r[min(1, len(r)):min(7, len(r))])
	if len(r) >= 10 {
		n[6] = r[9]
	}
	return n
}

// value treats the HL7 null, "", as empty: a field sent so is noted
// (update.nulls), and deletes what the stored record holds of it.
func value(s string) string {
	if s == `""` {
		return ""
	}
	return strings.TrimSpace(s)
}

var genders = map[string]string{"M": "male", "F": "female", "O": "other", "A": "other", "U": "unknown", "N": "unknown"}

// nameUses maps HL7 table 0200 name types to FHIR name uses, as FHIR's
// map between them (ConceptMap cm-name-use-v2) does, and A (alias) to
// usual. U is "unspecified": a name of that type has no use, not a
// temporary one.
var nameUses = map[string]string{"L": "official", "D": "usual", "M": "maiden", "N": "nickname", "A": "usual", "S": "anonymous", "TEMP": "temp", "NOUSE": "old", "BAD": "old"}

// humanName maps an XPN: family^given^middle^suffix^prefix^degree^type.
func humanName(r Repetition) *fhir.HumanName {
	family, given, middle := value(r.Get(1)), value(r.Get(2)), value(r.Get(3))
	if family == "" && given == "" {
		return nil
	}
	n := &fhir.HumanName{Family: mappers.String(family), Given: mappers.Strings(given, middle), Suffix: mappers.Strings(value(r.Get(4))), Prefix: mappers.Strings(value(r.Get(5)))}
	if use, ok := nameUses[strings.ToUpper(r.Get(7))]; ok {
		n.Use = fhir.NewCode(use)
	}
	return n
}

func displayName(n *fhir.HumanName) string {
	var parts []string
	for _, g := range n.Given {
		parts = append(parts, g.Get())
	}
	if n.Family != nil {
		parts = append(parts, n.Family.Get())
	}
	return strings.Join(parts, " ")
}

// addressUses maps HL7 table 0190 address types to FHIR address uses, as
// FHIR's map between them (ConceptMap cm-address-use-v2) does: BA is a
// bad address, one no longer to be used, and BI the billing address.
var addressUses = map[string]string{"H": "home", "HOME": "home", "B": "work", "O": "work", "C": "temp", "BA": "old", "BI": "billing", "OLD": "old"}

// address maps an XAD: street^other^city^state^postcode^country^type.
func address(r Repetition) *fhir.Address {
	ad := &fhir.Address{
		Line:       mappers.Strings(value(r.Get(1)), value(r.Get(2))),
		City:       mappers.String(value(r.Get(3))),
		District:   mappers.String(value(r.Get(4))),
		PostalCode: mappers.String(value(r.Get(5))),
		Country:    mappers.String(value(r.Get(6))),
	}
	if ad.Line == nil && ad.City == nil && ad.District == nil && ad.PostalCode == nil && ad.Country == nil {
		return nil
	}
	if use, ok := addressUses[strings.ToUpper(r.Get(7))]; ok {
		ad.Use = fhir.NewCode(use)
	}
	return ad
}

// contactPoint maps an XTN: number^use^equipment^email^country^area^local,
// and XTN-12, the unformatted number of v2.5 on, which senders that no
// longer write XTN-1 (withdrawn in v2.7) may give alone. work is set for
// PID-14, the business number.
func contactPoint(r Repetition, work bool) *fhir.ContactPoint {
	use, equip := strings.ToUpper(r.Get(2)), strings.ToUpper(r.Get(3))
	cp := &fhir.ContactPoint{}
	switch {
	case value(r.Get(4)) != "" || use == "NET" || equip == "INTERNET" || equip == "X.400":
		cp.System = fhir.NewCode("email")
		cp.Value = mappers.String(value(r.Get(4)))
		if cp.Value == nil {
			cp.Value = mappers.String(value(r.Get(1)))
		}
	default:
		number := value(r.Get(1))
		if number == "" {
			number = strings.Join(strings.Fields(value(r.Get(6))+" "+value(r.Get(7))), " ")
			if cc := strings.TrimPrefix(value(r.Get(5)), "+"); number != "" && cc != "" {
				// With its country code (XTN-5) the number is dialled
				// from abroad as +44 113 …; without it, 113 … is no
				// number at all.
				number = "+" + cc + " " + number
			}
		}
		if number == "" {
			number = value(r.Get(12))
		}
		cp.Value = mappers.String(number)
		cp.System = fhir.NewCode("phone")
		if equip == "FX" {
			cp.System = fhir.NewCode("fax")
		}
	}
	if cp.Value == nil {
		return nil
	}
	switch {
	case equip == "CP" || use == "PRS":
		cp.Use = fhir.NewCode("mobile")
	case work || use == "WPN":
		cp.Use = fhir.NewCode("work")
	case use == "PRN" || use == "HOME" || use == "ORN" || use == "VHN":
		cp.Use = fhir.NewCode("home")
	}
	return cp
}

// before reports whether the FHIR date a is before b, compared to the
// precision of the less precise: 1948 is not before 1948-03-12.
func before(a, b string) bool {
	n := min(len(a), len(b))
	return a[:n] < b[:n]
}

// hl7Date turns an HL7 DT or TS (YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]]
// and a zone) into a FHIR date: its date part, once the whole value is
// checked.
func hl7Date(s string) (string, bool) {
	date, _, _, ok := timestamp(s)
	return date, ok
}

// hl7DateTime turns an HL7 TS into a FHIR dateTime; a time with no zone
// stays a date, since FHIR requires a zone with a time.
func hl7DateTime(s string) (string, bool) {
	date, clock, zone, ok := timestamp(s)
	if !ok || len(clock) < 4 || zone == "" {
		return date, ok
	}
	sec := "00"
	if len(clock) >= 6 {
		sec = clock[4:6]
	}
	return date + "T" + clock[:2] + ":" + clock[2:4] + ":" + sec + zone[:3] + ":" + zone[3:], true
}

// tsLayouts are the layouts of an HL7 TS without its zone, by length.
var tsLayouts = map[int]string{4: "2006", 6: "200601", 8: "20060102", 10: "2006010215", 12: "200601021504", 14: "20060102150405"}

// timestamp checks an HL7 TS, DTM or DT against the calendar and the
// clock (a 30 February or an hour 24 is no date) and returns its FHIR date
// (YYYY, YYYY-MM or YYYY-MM-DD), the digits of its time (HH, HHMM or
// HHMMSS, or none) and its zone (+HHMM or none).
func timestamp(s string) (date, clock, zone string, ok bool) {
	base := s
	if i := strings.IndexAny(s, "+-"); i >= 0 {
		base, zone = s[:i], s[i:]
		if !validZone(zone) {
			return "", "", "", false
		}
	}
	whole, frac, hasFrac := strings.Cut(base, ".")
	layout, known := tsLayouts[len(whole)]
	if !known || !digits(whole) || hasFrac && (len(whole) != 14 || len(frac) > 4 || !digits(frac)) {
		return "", "", "", false
	}
	if whole[:4] == "0000" {
		return "", "", "", false // FHIR dates have no year 0
	}
	if _, err := time.Parse(layout, whole); err != nil {
		return "", "", "", false
	}
	date = whole[:4]
	if len(whole) >= 6 {
		date += "-" + whole[4:6]
	}
	if len(whole) >= 8 {
		date += "-" + whole[6:8]
		clock = whole[8:]
	}
	return date, clock, zone, true
}

// validZone reports whether z is a zone FHIR can hold: +HHMM or -HHMM,
// within 14 hours of UTC.
func validZone(z string) bool {
	if len(z) != 5 || !digits(z[1:]) {
		return false
	}
	return z[1:3] < "14" && z[3:5] < "60" || z[1:] == "1400"
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
