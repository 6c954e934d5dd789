package care

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"carefhir/care/calendar"
	"carefhir/fhir"
	"carefhir/fhir/search"
	"carefhir/operation"
	"carefhir/store"
)

// Caseload paging.
const (
	DefaultCaseloadCount = 50
	MaxCaseloadCount     = 500
)

// caseloadEntry is one patient of a caseload and what a coordinator needs
// to know of them.
type caseloadEntry struct {
	patient    string // Patient/id
	name       string // sort key: family, given
	pam        *pamFact
	carePlan   string
	reviewDue  string
	nextAppt   string
	nextStart  string
	openTasks  int
	hasOverdue bool
}

// caseload answers $caseload on a Practitioner, PractitionerRole, CareTeam
// or Organization: the patients who are the subject of an active CareTeam
// the practitioner (or one of their roles) takes part in, the CareTeam's
// subject, or the patients registered at the organisation; for each, their
// latest PAM, active PCSP and review, next appointment and open Tasks.
// Parameters: _count, _sort (name, review-due, -pam-level) and cursor.
func (c *Care) caseload(ctx context.Context, inv *operation.Invocation) (*operation.Result, error) {
	if err := inv.Only("_count", "_sort", "cursor"); err != nil {
		return nil, err
	}
	count, err := inv.Int("_count", DefaultCaseloadCount)
	if err != nil {
		return nil, err
	}
	if count < 1 || count > MaxCaseloadCount {
		return nil, operation.Errorf(http.StatusBadRequest, "invalid", "Parameters.parameter.where(name='_count')", "_count must be 1 to %d", MaxCaseloadCount)
	}
	order, err := inv.Text("_sort")
	if err != nil {
		return nil, err
	}
	if order == "" {
		order = "name"
	}
	by, ok := caseloadOrders[order]
	if !ok {
		return nil, operation.Errorf(http.StatusBadRequest, "invalid", "Parameters.parameter.where(name='_sort')", "_sort %q is not one of name, review-due, -pam-level", order)
	}
	cursor, err := inv.Text("cursor")
	if err != nil {
		return nil, err
	}
	var after *caseloadEntry
	if cursor != "" {
		if after, err = by.decodeCursor(order, cursor); err != nil {
			return nil, operation.Errorf(http.StatusBadRequest, "invalid", "Parameters.parameter.where(name='cursor')", "cursor %q is not one this server gave for _sort=%s (%v)", cursor, order, err)
		}
	}
	s := inv.Store
	if _, err := operation.ReadInstance(ctx, s, inv.Type, inv.ID); err != nil {
		return nil, err
	}
	patients, err := c.caseloadPatients(ctx, s, inv.Type, inv.ID)
	if err != nil {
		return nil, err
	}
	// Those registered at an organisation are those whose record in use
	// says so; a team's patient is the person, whichever record it names.
	entries, err := c.heldEntries(ctx, s, patients, inv.Type != "Organization")
	if err != nil {
		return nil, err
	}
	// Only the facts the order needs are read for the whole caseload; the
	// others are read for the page alone, so that paging through a large
	// caseload does not read every patient's appointments and tasks again
	// for every page.
	if err := c.caseloadFacts(ctx, s, entries, by.needs); err != nil {
		return nil, err
	}
	inOrder := func(a, b *caseloadEntry) int {
		if r := by.compare(a, b); r != 0 {
			return r
		}
		return strings.Compare(a.patient, b.patient)
	}
	slices.SortFunc(entries, inOrder)
	out := &fhir.Parameters{Parameter: []*fhir.ParametersParameter{{Name: fhir.NewString("total"), ValueInteger: fhir.NewInteger(int64(len(entries)))}}}
	// The page starts after where the previous one ended, found by
	// value: patients who joined or left the caseload since cost no one
	// their place on a page nor show anyone twice, as counting would.
	start := 0
	if after != nil {
		i, found := slices.BinarySearchFunc(entries, after, inOrder)
		if found {
			i++
		}
		start = i
	}
	end := min(start+count, len(entries))
	page := entries[start:end]
	if err := c.caseloadFacts(ctx, s, page, allFacts&^by.needs); err != nil {
		return nil, err
	}
	for _, e := range page {
		out.Parameter = append(out.Parameter, e.parameter())
	}
	if end < len(entries) {
		out.Parameter = append(out.Parameter, &fhir.ParametersParameter{Name: fhir.NewString("next"), ValueString: fhir.NewString(by.encodeCursor(order, page[len(page)-1]))})
	}
	return &operation.Result{Resource: out}, nil
}

// caseloadOrder is an order of a caseload: how two entries compare, the
// facts that takes, and the value an entry is ordered by, as a cursor
// holds it (key) and as it is read back into an entry (setKey).
type caseloadOrder struct {
	compare func(a, b *caseloadEntry) int
	needs   factKinds
	key     func(e *caseloadEntry) string
	setKey  func(e *caseloadEntry, key string) error
}

// caseloadOrders are the orders of _sort; absent values sort last.
var caseloadOrders = map[string]caseloadOrder{
	"name": {
		compare: func(a, b *caseloadEntry) int { return lastIfEmpty(a.name, b.name, strings.Compare(a.name, b.name)) },
		key:     func(e *caseloadEntry) string { return e.name },
		setKey:  func(e *caseloadEntry, key string) error { e.name = key; return nil },
	},
	"review-due": {needs: factPlan,
		compare: func(a, b *caseloadEntry) int { return compareDue(a.reviewDue, b.reviewDue) },
		key:     func(e *caseloadEntry) string { return e.reviewDue },
		setKey:  func(e *caseloadEntry, key string) error { e.reviewDue = key; return nil },
	},
	"-pam-level": {needs: factPAM,
		compare: func(a, b *caseloadEntry) int { return cmp.Compare(b.pamLevel(), a.pamLevel()) },
		key:     func(e *caseloadEntry) string { return strconv.Itoa(e.pamLevel()) },
		setKey: func(e *caseloadEntry, key string) error {
			level, err := strconv.Atoi(key)
			if err != nil {
				return fmt.Errorf("PAM level %q: %w", key, err)
			}
			e.pam = &pamFact{level: level}
			return nil
		},
	},
}

// pamLevel is the level of the entry's latest PAM, 0 when there is none.
func (e *caseloadEntry) pamLevel() int {
	if e.pam == nil {
		return 0
	}
	return e.pam.level
}

// caseloadCursor is where the next page of a caseload starts: after the
// patient named, who had the value key in the order sort. It is written
// as base64url JSON, as the store's search cursors are.
type caseloadCursor struct {
	Sort    string `json:"s"`
	Key     string `json:"k"`
	Patient string `json:"p"`
}

// encodeCursor returns the cursor of the page that follows e, the last
// entry of a page in the order named sort.
func (o caseloadOrder) encodeCursor(sort string, e *caseloadEntry) string {
	b, _ := json.Marshal(caseloadCursor{Sort: sort, Key: o.key(e), Patient: e.patient})
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor returns the entry a cursor of the order named sort says
// the page follows, with the value it was ordered by.
func (o caseloadOrder) decodeCursor(sort, cursor string) (*caseloadEntry, error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return nil, err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var cur caseloadCursor
	if err := d.Decode(&cur); err != nil {
		return nil, err
	}
	if cur.Sort != sort {
		return nil, fmt.Errorf("it was given for _sort=%s", cur.Sort)
	}
	if cur.Patient == "" {
		return nil, errors.New("it names no patient")
	}
	e := &caseloadEntry{patient: cur.Patient}
	if err := o.setKey(e, cur.Key); err != nil {
		return nil, err
	}
	return e, nil
}

// compareDue compares two review dates by the day each is due by, absent
// ones last: a month or a year alone by its last day (lastDayOf), as
// overdue reads it, so that a review due in 2026 comes after one due on
// 20 November 2026, and one due in December 2026 ties with one due on its
// 31st.
func compareDue(a, b string) int {
	return lastIfEmpty(a, b, strings.Compare(lastDayOf(a), lastDayOf(b)))
}

func lastIfEmpty(a, b string, r int) int {
	switch {
	case a == "" && b == "":
		return 0
	case a == "":
		return 1
	case b == "":
		return -1
	}
	return r
}

// caseloadPatients returns the patient references of the caseload of
// typ/id, each once.
func (c *Care) caseloadPatients(ctx context.Context, s operation.Store, typ, id string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	add := func(ref string) {
		if ref != "" && !seen[ref] {
			seen[ref] = true
			out = append(out, ref)
		}
	}
	switch typ {
	case "Organization":
		// Registered there: referring to the Organization, or naming it
		// by its ODS code, as PDS and GP Connect give it.
		searches := []url.Values{{"general-practitioner": {"Organization/" + id}, "_elements": {"id"}}}
		codes, err := odsCodes(ctx, s, id)
		if err != nil {
			return nil, err
		}
		if len(codes) > 0 {
			searches = append(searches, url.Values{"general-practitioner:identifier": {strings.Join(codes, ",")}, "_elements": {"id"}})
		}
		for _, params := range searches {
			err := s.Each(ctx, "Patient", params, func(v *store.Version) error {
				add("Patient/" + v.ID)
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
		return out, nil
	case "CareTeam":
		v, err := s.Read(ctx, "CareTeam", id)
		if err != nil {
			return nil, err
		}
		ct, err := decode[*fhir.CareTeam](v.JSON)
		if err != nil {
			return nil, err
		}
		if ct.Status.Get() == "active" {
			add(c.patientRef(refOf(ct.Subject)))
		}
		return out, nil
	}
	members := []string{typ + "/" + id}
	if typ == "Practitioner" {
		err := s.Each(ctx, "PractitionerRole", url.Values{"practitioner": {"Practitioner/" + id}}, func(v *store.Version) error {
			members = append(members, "PractitionerRole/"+v.ID)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	isMember := map[string]bool{}
	for _, m := range members {
		isMember[m] = true
	}
	for _, list := range chunks(members, chunkSize) {
		err := s.Each(ctx, "CareTeam", url.Values{"participant": {list}, "status": {"active"}}, func(v *store.Version) error {
			taking, err := c.takesPart(v.JSON, isMember)
			if err != nil {
				return fmt.Errorf("CareTeam/%s: %w", v.ID, err)
			}
			if taking {
				add(c.subjectOf(v.JSON))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// takesPart reports whether one of members takes part in a stored
// CareTeam now: a participant whose period holds now. Someone whose part
// ended, such as a coordinator who handed the patient over to another, no
// longer holds the patient in their caseload, though the team goes on;
// someone whose part has not begun does not hold them yet.
func (c *Care) takesPart(team []byte, members map[string]bool) (bool, error) {
	var ct struct {
		Participant []struct {
			Member struct{ Reference string }  `json:"member"`
			Period struct{ Start, End string } `json:"period"`
		} `json:"participant"`
	}
	if err := json.Unmarshal(team, &ct); err != nil {
		return false, err
	}
	for _, p := range ct.Participant {
		// Type/id of the member, as the search matched it: a reference
		// may name a version, or be absolute under this server's base; a
		// member of another server is none of these, whatever its id.
		r := search.ParseReference(p.Member.Reference, c.cfg.BaseURL)
		if r.URL == "" && members[r.Type+"/"+r.ID] && calendar.Holds(p.Period.Start, p.Period.End, c.cfg.Now(), c.cfg.Zone) {
			return true, nil
		}
	}
	return false, nil
}

// odsCodes returns the ODS codes of Organization/id as tokens of a
// search (system|code).
func odsCodes(ctx context.Context, s operation.Store, id string) ([]string, error) {
	v, err := s.Read(ctx, "Organization", id)
	if err != nil {
		return nil, err
	}
	org, err := decode[*fhir.Organization](v.JSON)
	if err != nil {
		return nil, fmt.Errorf("Organization/%s: %w", id, err)
	}
	var codes []string
	for _, ident := range org.Identifier {
		if ident.System.Get() == SystemODS && ident.Value.Get() != "" {
			codes = append(codes, SystemODS+"|"+search.EscapeValue(ident.Value.Get()))
		}
	}
	return codes, nil
}

// factKinds is a set of the kinds of facts of a caseload entry, each read
// with one search per chunk of patients.
type factKinds uint8

const (
	factPAM factKinds = 1 << iota
	factPlan
	factAppointment
	factTask

	allFacts = factPAM | factPlan | factAppointment | factTask
)

// heldEntries returns the entries of patients held here (not deleted),
// with the names they sort by, reading chunkSize patients with one search.
// A record replaced by another (a link of type replaced-by, as a merge
// leaves the one it retires) is no longer used and is left out; with
// follow, the record that replaced it is in its place, as the person the
// caseload holds, once however many of their records it names.
func (c *Care) heldEntries(ctx context.Context, s operation.Store, patients []string, follow bool) ([]*caseloadEntry, error) {
	var entries []*caseloadEntry
	seen := make(map[string]bool, len(patients))
	for _, p := range patients {
		seen[p] = true
	}
	// A chain of merges is followed a few records long; a loop ends
	// where it began.
	for round := 0; len(patients) > 0 && round < maxReplacements; round++ {
		var next []string
		for _, list := range chunks(patients, chunkSize) {
			ids := strings.ReplaceAll(list, "Patient/", "")
			err := s.Each(ctx, "Patient", url.Values{"_id": {ids}}, func(v *store.Version) error {
				name, by, err := c.caseloadPatient(v.JSON)
				if err != nil {
					return fmt.Errorf("Patient/%s: %w", v.ID, err)
				}
				if !by.replaced {
					entries = append(entries, &caseloadEntry{patient: "Patient/" + v.ID, name: name})
				} else if follow && by.ref != "" && !seen[by.ref] {
					seen[by.ref] = true
					next = append(next, by.ref)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
		patients = next
	}
	// A patient deleted (or never held) matched no search: no one's
	// caseload.
	return entries, nil
}

// maxReplacements is how many records of one person a caseload follows
// from the one it names to the one in use.
const maxReplacements = 5

// replacement is what a Patient record says of the record replacing it.
type replacement struct {
	replaced bool
	ref      string // Patient/id of the record replacing it held here; "" when none is
}

// caseloadPatient reads of a stored Patient the key a caseload sorts
// names by (family, then given names) and whether another record
// replaced it, rather than decoding the whole resource.
func (c *Care) caseloadPatient(patient []byte) (string, replacement, error) {
	var p struct {
		Name []struct {
			Family string   `json:"family"`
			Given  []string `json:"given"`
		} `json:"name"`
		Link []struct {
			Other struct{ Reference string } `json:"other"`
			Type  string                     `json:"type"`
		} `json:"link"`
	}
	if err := json.Unmarshal(patient, &p); err != nil {
		return "", replacement{}, err
	}
	var by replacement
	for _, l := range p.Link {
		if l.Type == "replaced-by" {
			by.replaced = true
			if by.ref == "" {
				by.ref = c.patientRef(l.Other.Reference)
			}
		}
	}
	if len(p.Name) == 0 {
		return "", by, nil
	}
	n := p.Name[0]
	return strings.ToLower(strings.TrimSpace(strings.Join(append([]string{n.Family}, n.Given...), " "))), by, nil
}

// caseloadFacts gathers the facts of the kinds given of each of entries
// with one search per kind for chunkSize patients at a time.
func (c *Care) caseloadFacts(ctx context.Context, s operation.Store, entries []*caseloadEntry, kinds factKinds) error {
	if kinds == 0 || len(entries) == 0 {
		return nil
	}
	byRef := make(map[string]*caseloadEntry, len(entries))
	patients := make([]string, 0, len(entries))
	for _, e := range entries {
		byRef[e.patient] = e
		patients = append(patients, e.patient)
	}
	now := c.cfg.Now().UTC()
	today := c.Today().Format(time.DateOnly)
	for _, list := range chunks(patients, chunkSize) {
		if kinds&factPAM != 0 {
			pams, err := c.latestPAM(ctx, s, url.Values{"subject": {list}}, true)
			if err != nil {
				return err
			}
			for p, f := range pams {
				if e := byRef[p]; e != nil {
					e.pam = f
				}
			}
		}
		if kinds&factPlan != 0 {
			if err := c.planFacts(ctx, s, list, byRef, today); err != nil {
				return err
			}
		}
		if kinds&factAppointment != 0 {
			if err := c.appointmentFacts(ctx, s, list, byRef, now); err != nil {
				return err
			}
		}
		if kinds&factTask != 0 {
			if err := c.taskFacts(ctx, s, list, byRef); err != nil {
				return err
			}
		}
	}
	return nil
}

// planFacts reads the active PCSPs of the patients of list.
func (c *Care) planFacts(ctx context.Context, s operation.Store, list string, byRef map[string]*caseloadEntry, today string) error {
	return s.Each(ctx, "CarePlan", activePCSPs(url.Values{"subject": {list}}), func(v *store.Version) error {
		cp, err := decode[*fhir.CarePlan](v.JSON)
		if err != nil || !isPCSP(cp) {
			return err
		}
		// The plan reviewed soonest, then the first by reference: the
		// search answers in no order.
		e, ref := byRef[c.patientRef(refOf(cp.Subject))], "CarePlan/"+v.ID
		if e == nil || e.carePlan != "" && cmp.Or(compareDue(reviewDate(cp), e.reviewDue), strings.Compare(ref, e.carePlan)) >= 0 {
			return nil
		}
		e.carePlan, e.reviewDue = ref, reviewDate(cp)
		// A review in a month or a year is overdue once it is over.
		e.hasOverdue = e.reviewDue != "" && lastDayOf(e.reviewDue) < today
		return nil
	})
}

// appointmentFacts reads the booked appointments from now on of the
// patients of list, leaving out those a patient has declined: R4 gives a
// participant's status declined as that participant not attending, while
// the Appointment stays booked for the others. The search asks for status
// booked alone, so cancelled, noshow and entered-in-error ones never come.
func (c *Care) appointmentFacts(ctx context.Context, s operation.Store, list string, byRef map[string]*caseloadEntry, now time.Time) error {
	return s.Each(ctx, "Appointment", url.Values{"patient": {list}, "status": {"booked"}, "date": {"ge" + now.Format(time.RFC3339)}}, func(v *store.Version) error {
		a, err := decode[*fhir.Appointment](v.JSON)
		if err != nil {
			return err
		}
		start, ref := a.Start.Get(), "Appointment/"+v.ID
		for _, p := range a.Participant {
			e := byRef[c.patientRef(refOf(p.Actor))]
			if e == nil || p.Status.Get() == "declined" {
				continue
			}
			// The earliest, then the first by reference.
			if e.nextStart == "" || cmp.Or(parseDateTime(start).Compare(parseDateTime(e.nextStart)), strings.Compare(ref, e.nextAppt)) < 0 {
				e.nextAppt, e.nextStart = ref, start
			}
		}
		return nil
	})
}

// taskFacts counts the open Tasks of the patients of list.
func (c *Care) taskFacts(ctx context.Context, s operation.Store, list string, byRef map[string]*caseloadEntry) error {
	return s.Each(ctx, "Task", url.Values{"patient": {list}, "status": {openTaskStatuses}}, func(v *store.Version) error {
		t, err := decode[*fhir.Task](v.JSON)
		if err == nil {
			if e := byRef[c.patientRef(refOf(t.For))]; e != nil {
				e.openTasks++
			}
		}
		return err
	})
}

// parameter is the entry as the part "patient" of the answer; absent facts
// are absent parts.
func (e *caseloadEntry) parameter() *fhir.ParametersParameter {
	part := func(name string) *fhir.ParametersParameter {
		return &fhir.ParametersParameter{Name: fhir.NewString(name)}
	}
	ref := func(name, r string) *fhir.ParametersParameter {
		p := part(name)
		p.ValueReference = &fhir.Reference{Reference: fhir.NewString(r)}
		return p
	}
	out := part("patient")
	out.Part = append(out.Part, ref("patient", e.patient))
	if f := e.pam; f != nil {
		p := part("pamLevel")
		p.ValueInteger = fhir.NewInteger(int64(f.level))
		out.Part = append(out.Part, p)
		if f.score != "" {
			p := part("pamScore")
			p.ValueDecimal = fhir.NewDecimal(f.score)
			out.Part = append(out.Part, p)
		}
		if f.date != "" {
			p := part("pamDate")
			p.ValueDateTime = fhir.NewDateTime(f.date)
			out.Part = append(out.Part, p)
		}
		if f.prevLevel > 0 {
			p := part("pamChange")
			p.ValueInteger = fhir.NewInteger(int64(f.level - f.prevLevel))
			out.Part = append(out.Part, p)
		}
	}
	if e.carePlan != "" {
		out.Part = append(out.Part, ref("carePlan", e.carePlan))
		if e.reviewDue != "" {
			p := part("reviewDue")
			p.ValueDate = fhir.NewDate(e.reviewDue)
			out.Part = append(out.Part, p)
			p = part("overdue")
			p.ValueBoolean = fhir.NewBoolean(e.hasOverdue)
			out.Part = append(out.Part, p)
		}
	}
	if e.nextAppt != "" {
		out.Part = append(out.Part, ref("nextAppointment", e.nextAppt))
		p := part("nextAppointmentStart")
		p.ValueDateTime = fhir.NewDateTime(e.nextStart)
		out.Part = append(out.Part, p)
	}
	p := part("openTasks")
	p.ValueInteger = fhir.NewInteger(int64(e.openTasks))
	out.Part = append(out.Part, p)
	return out
}
