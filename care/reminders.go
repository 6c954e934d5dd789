package care

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"time"

	"carefhir/care/calendar"
	"carefhir/fhir"
	"carefhir/fhir/search"
	"carefhir/operation"
	"carefhir/store"
)

// openTaskStatuses are the statuses of a Task still to be done.
const openTaskStatuses = "draft,requested,received,accepted,ready,in-progress,on-hold"

// closedTaskStatuses are the statuses of a Task ended other than as an
// error: done, cancelled, refused or failed.
const closedTaskStatuses = "completed,cancelled,rejected,failed"

// reminderCodes are the codes of the reminder Tasks, as a code search
// parameter's value.
const reminderCodes = SystemCareTask + "|" + CodeReviewTask + "," + SystemCareTask + "|" + CodeRemeasureTask

// endTasks gives the open reminder Tasks of a kind that match filter the
// status given: those for which ends reports true, or all when it is nil.
func (c *Care) endTasks(ctx context.Context, s operation.Store, code string, filter url.Values, status string, ends func(*fhir.Task) (bool, error)) error {
	return c.changeTasks(ctx, s, code, filter, func(t *fhir.Task) (bool, error) {
		if ends != nil {
			if ok, err := ends(t); err != nil || !ok {
				return false, err
			}
		}
		t.Status = fhir.NewCode(status)
		return true, nil
	})
}

// changeTasks writes the open reminder Tasks of a kind that match filter
// as change leaves them, those it reports it changed.
func (c *Care) changeTasks(ctx context.Context, s operation.Store, code string, filter url.Values, change func(*fhir.Task) (bool, error)) error {
	params := url.Values{"code": {SystemCareTask + "|" + code}, "status": {openTaskStatuses}}
	for k, v := range filter {
		params[k] = v
	}
	var tasks []*fhir.Task
	err := s.Each(ctx, "Task", params, func(v *store.Version) error {
		t, err := decode[*fhir.Task](v.JSON)
		if err == nil {
			tasks = append(tasks, t)
		}
		return err
	})
	if err != nil {
		return err
	}
	// Decided once the search is read: change may read the store.
	for _, t := range tasks {
		if ok, err := change(t); err != nil || !ok {
			if err != nil {
				return err
			}
			continue
		}
		t.LastModified = fhir.NewDateTime(c.cfg.Now().UTC().Format(time.RFC3339))
		if _, err := s.Update(ctx, t, 0); err != nil {
			return err
		}
	}
	return nil
}

// dueOf returns the due date of a reminder Task.
func dueOf(t *fhir.Task) string {
	if t.Restriction == nil || t.Restriction.Period == nil {
		return ""
	}
	return t.Restriction.Period.End.Get()
}

// reminder is one Task to create.
type reminder struct {
	code, display string
	patient       string // Patient/id
	focus         string
	due           string // YYYY-MM-DD
}

// generateReminders answers Task/$generate-reminders: Tasks for the PCSP
// reviews due within the review window of asOf (default today) and for the
// PAM re-measurements due by then, each once while it is open and once
// for its due date (not again once cancelled or done). It answers
// Parameters: created (the number) and one task per Task created.
func (c *Care) generateReminders(ctx context.Context, inv *operation.Invocation) (*operation.Result, error) {
	if err := inv.Only("asOf"); err != nil {
		return nil, err
	}
	asOf := c.Today()
	text, err := inv.Text("asOf")
	if err != nil {
		return nil, err
	}
	if text != "" {
		if asOf, err = time.Parse(time.DateOnly, text); err != nil {
			return nil, operation.Errorf(http.StatusBadRequest, "invalid", "Parameters.parameter.where(name='asOf')", "asOf %q is not a date (YYYY-MM-DD)", text)
		}
	}
	var created []*store.Version
	err = inv.Store.Transact(ctx, func(s operation.Store) error {
		created, err = c.Reminders(ctx, s, asOf)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := &fhir.Parameters{Parameter: []*fhir.ParametersParameter{{Name: fhir.NewString("created"), ValueInteger: fhir.NewInteger(int64(len(created)))}}}
	for _, v := range created {
		out.Parameter = append(out.Parameter, &fhir.ParametersParameter{Name: fhir.NewString("task"), ValueReference: &fhir.Reference{Reference: fhir.NewString("Task/" + v.ID)}})
	}
	return &operation.Result{Resource: out}, nil
}

// Reminders creates the reminder Tasks due as of asOf that are not open
// already, nor ended for the same due date (closedReminders), and
// returns them: what $generate-reminders and the periodic run
// of the server (carefhir serve --reminders-every) do.
func (c *Care) Reminders(ctx context.Context, s operation.Store, asOf time.Time) ([]*store.Version, error) {
	// Compared as dates, not as text: the horizon may be past year 9999.
	horizon := asOf.Add(c.cfg.ReviewWindow)
	var due []reminder
	err := s.Each(ctx, "CarePlan", activePCSPs(url.Values{}), func(v *store.Version) error {
		cp, err := decode[*fhir.CarePlan](v.JSON)
		if err != nil || !isPCSP(cp) {
			return err
		}
		patient := c.patientRef(refOf(cp.Subject))
		if r := reviewDate(cp); r != "" && !parseDateTime(r).After(horizon) && patient != "" {
			due = append(due, reminder{code: CodeReviewTask, display: "Review the personalised care and support plan",
				patient: patient, focus: "CarePlan/" + v.ID, due: r})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	latest, err := c.latestPAM(ctx, s, url.Values{}, false)
	if err != nil {
		return nil, err
	}
	for patient, l := range latest {
		d := addMonths(c.dateOf(l.when), c.cfg.RemeasureMonths)
		// Due after 9999-12-31, it is due on no date a Task can hold.
		// A result dated by no effectiveDateTime says not when the next
		// is due.
		if !d.After(horizon) && d.Year() <= 9999 && l.measured != "" && !l.when.IsZero() {
			due = append(due, reminder{code: CodeRemeasureTask, display: "Measure patient activation (PAM) again",
				patient: patient, focus: l.measured, due: d.Format(time.DateOnly)})
		}
	}
	// Reminders only for people held here and in care (inCare).
	cared, err := patientsInCare(ctx, s, patientsOf(due))
	if err != nil {
		return nil, err
	}
	due = slices.DeleteFunc(due, func(r reminder) bool { return !cared[r.patient] })
	// The open reminders, read before any is written: a unit of work
	// may not search what it wrote on engines without transactions.
	open := map[string]bool{}
	var owned []*fhir.Task // open reminders with an owner
	err = s.Each(ctx, "Task", url.Values{"code": {reminderCodes}, "status": {openTaskStatuses}}, func(v *store.Version) error {
		t, err := decode[*fhir.Task](v.JSON)
		if err == nil {
			for _, code := range []string{CodeReviewTask, CodeRemeasureTask} {
				if hasCoding(t.Code, SystemCareTask, code) {
					open[c.openKeyOf(code, t)] = true
				}
			}
			if c.localRef(refOf(t.Owner)) != "" && c.patientRef(refOf(t.For)) != "" {
				owned = append(owned, t)
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	due = slices.DeleteFunc(due, func(r reminder) bool { return open[openKey(r.code, r.patient, r.focus)] })
	closed, err := c.closedReminders(ctx, s, c.focusesOf(due))
	if err != nil {
		return nil, err
	}
	due = slices.DeleteFunc(due, func(r reminder) bool { return closed[closedKey(r.code, r.patient, c.localRef(r.focus), r.due)] })
	patients := patientsOf(due)
	seen := map[string]bool{}
	for _, p := range patients {
		seen[p] = true
	}
	for _, t := range owned {
		if p := c.patientRef(refOf(t.For)); !seen[p] {
			seen[p] = true
			patients = append(patients, p)
		}
	}
	owners, former, err := c.coordinators(ctx, s, patients)
	if err != nil {
		return nil, err
	}
	// An open reminder of a coordinator who has since handed the patient
	// over goes to the one holding them now, as at the handover
	// (handOver); here too when the other's part began after the team
	// was last written.
	for _, t := range owned {
		patient := c.patientRef(refOf(t.For))
		if owner := owners[patient]; owner != nil && former[patient][c.localRef(refOf(t.Owner))] {
			t.Owner = owner
			t.LastModified = fhir.NewDateTime(c.cfg.Now().UTC().Format(time.RFC3339))
			if _, err := s.Update(ctx, t, 0); err != nil {
				return nil, fmt.Errorf("hand Task/%s over: %w", t.Id.Get(), err)
			}
		}
	}
	var created []*store.Version
	for _, r := range due {
		t := &fhir.Task{
			Status:      fhir.NewCode("requested"),
			Intent:      fhir.NewCode("plan"),
			Code:        &fhir.CodeableConcept{Coding: []*fhir.Coding{coding(SystemCareTask, r.code, r.display)}, Text: fhir.NewString(r.display)},
			For:         &fhir.Reference{Reference: fhir.NewString(r.patient)},
			Focus:       &fhir.Reference{Reference: fhir.NewString(r.focus)},
			Owner:       owners[r.patient],
			AuthoredOn:  fhir.NewDateTime(c.cfg.Now().UTC().Format(time.RFC3339)),
			Restriction: &fhir.TaskRestriction{Period: &fhir.Period{End: fhir.NewDateTime(r.due)}},
		}
		v, err := s.Create(ctx, t)
		if err != nil {
			return nil, err
		}
		created = append(created, v)
	}
	return created, nil
}

// patientsOf returns the patients (Patient/id) of reminders, each once.
func patientsOf(due []reminder) []string {
	return distinct(due, func(r reminder) string { return r.patient })
}

// focusesOf returns the plans and PAMs (Type/id) reminders are about,
// each once.
func (c *Care) focusesOf(due []reminder) []string {
	return distinct(due, func(r reminder) string { return c.localRef(r.focus) })
}

// distinct returns the values of key for reminders that are not "", each
// once, in the order of due.
func distinct(due []reminder, key func(reminder) string) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range due {
		if k := key(r); k != "" && !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// addMonths returns the date n months after date, on the last day of the
// month when it has no such day: 31 March and six months is 30 September,
// where time.AddDate would give 1 October.
func addMonths(date time.Time, n int) time.Time {
	y, m, d := date.Date()
	last := time.Date(y, m+time.Month(n)+1, 0, 0, 0, 0, 0, time.UTC).Day()
	return time.Date(y, m+time.Month(n), min(d, last), 0, 0, 0, 0, time.UTC)
}

// openKey identifies an open reminder: a review is open per plan, a
// re-measurement per patient.
func openKey(code, patient, focus string) string {
	if code == CodeRemeasureTask {
		return code + " " + patient
	}
	return code + " " + focus
}

// openKeyOf returns the openKey of reminder Task t of kind code, its
// patient and plan read as references to resources held here are read
// everywhere in care (patientRef): a Task an app wrote for
// Patient/1/_history/2, or under this server's base URL, is open for
// Patient/1.
func (c *Care) openKeyOf(code string, t *fhir.Task) string {
	focus := ""
	if id, ok := c.localID(refOf(t.Focus), "CarePlan"); ok {
		focus = "CarePlan/" + id
	}
	return openKey(code, c.patientRef(refOf(t.For)), focus)
}

// closedKey identifies a reminder ended for its due date: of a kind, for
// a patient, about a plan or a PAM, due on a date.
func closedKey(code, patient, focus, due string) string {
	return code + " " + patient + " " + focus + " " + due
}

// closedReminders returns the closedKey of each reminder Task about
// focuses (the plans and PAMs of the reminders due, Type/id) ended other
// than as an error: one a coordinator cancelled, or that was done,
// refused or failed, is not made again for the same due date, though a
// new date (a review moved, a new PAM) makes a new one. Its patient and
// focus are read as references to resources held here (Type/id), as
// openKeyOf reads them. It reads only the reminders of what is due now,
// not every one a patient's history has ended (those of earlier plans and
// PAMs), with one search for chunkSize focuses, before any reminder is
// written: a unit of work may not search what it wrote on engines
// without transactions.
func (c *Care) closedReminders(ctx context.Context, s operation.Store, focuses []string) (map[string]bool, error) {
	closed := map[string]bool{}
	for _, list := range chunks(focuses, chunkSize) {
		err := s.Each(ctx, "Task", url.Values{"focus": {list}, "code": {reminderCodes}, "status": {closedTaskStatuses}}, func(v *store.Version) error {
			t, err := decode[*fhir.Task](v.JSON)
			if err != nil {
				return fmt.Errorf("Task/%s: %w", v.ID, err)
			}
			for _, code := range []string{CodeReviewTask, CodeRemeasureTask} {
				if hasCoding(t.Code, SystemCareTask, code) {
					closed[closedKey(code, c.patientRef(refOf(t.For)), c.localRef(refOf(t.Focus)), dueOf(t))] = true
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return closed, nil
}

// coordinators returns the care coordinator of each of patients
// (Patient/id) who has one: a participant in a coordinator's role whose
// part holds now in an active CareTeam of the patient; of two teams, the
// one with the lower id, since the search answers in no order. former
// holds, by patient, the coordinators (Type/id) whose part in such a team
// no longer holds and who take no part in one now: who handed the
// patient over. It reads the CareTeams of chunkSize patients with one
// search.
func (c *Care) coordinators(ctx context.Context, s operation.Store, patients []string) (owners map[string]*fhir.Reference, former map[string]map[string]bool, err error) {
	owners, former = map[string]*fhir.Reference{}, map[string]map[string]bool{}
	current := map[string]map[string]bool{}
	team := map[string]string{} // the id of the CareTeam each owner is of
	for _, list := range chunks(patients, chunkSize) {
		err := s.Each(ctx, "CareTeam", url.Values{"subject": {list}, "status": {"active"}}, func(v *store.Version) error {
			ct, err := decode[*fhir.CareTeam](v.JSON)
			if err != nil {
				return fmt.Errorf("CareTeam/%s: %w", v.ID, err)
			}
			patient := c.patientRef(refOf(ct.Subject))
			if patient == "" {
				return nil
			}
			ended, taking := c.parts(ct)
			for _, m := range []struct {
				set  map[string]map[string]bool
				from map[string]bool
			}{{former, ended}, {current, taking}} {
				if m.set[patient] == nil {
					m.set[patient] = map[string]bool{}
				}
				maps.Copy(m.set[patient], m.from)
			}
			if of, ok := team[patient]; ok && of < v.ID {
				return nil
			}
			if owner := c.coordinatorIn(ct); owner != nil {
				owners[patient], team[patient] = owner, v.ID
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	for patient, ended := range former {
		for m := range current[patient] {
			delete(ended, m)
		}
	}
	return owners, former, nil
}

// coordinatorIn returns the first participant of ct in a coordinator's
// role whose part holds now, nil when there is none.
func (c *Care) coordinatorIn(ct *fhir.CareTeam) *fhir.Reference {
	for _, p := range ct.Participant {
		// Not one who handed over, or has not yet taken over.
		if c.holds(p) && c.coordinating(p) {
			return p.Member
		}
	}
	return nil
}

// holds reports whether the part of p in its team holds now: it has
// begun and not ended, or has no period.
func (c *Care) holds(p *fhir.CareTeamParticipant) bool {
	return p.Period == nil || calendar.Holds(p.Period.Start.Get(), p.Period.End.Get(), c.cfg.Now(), c.cfg.Zone)
}

// coordinating reports whether p takes part in a coordinator's role.
func (c *Care) coordinating(p *fhir.CareTeamParticipant) bool {
	return slices.ContainsFunc(p.Role, func(role *fhir.CodeableConcept) bool {
		return hasCoding(role, SystemSNOMED, c.cfg.Codes.CareCoordinator) || hasCoding(role, SystemCareRole, CodeCoordinator)
	})
}

// handoverHook names the hook of handOver.
const handoverHook = "handover"

// handover is what keepRemoved keeps for handOver: the members (Type/id)
// in a coordinator's role of an active CareTeam of patient whom its
// write takes out of the team, or all of them when it ends the team
// (ended).
type handover struct {
	patient string
	from    map[string]bool
	ended   bool
}

// endsTeam reports whether a CareTeam written with status ends its part in
// the care of its patient: inactive, or entered in error. One suspended or
// proposed may come back as it was, and hands nothing over.
func endsTeam(status string) bool {
	return status == "inactive" || status == "entered-in-error"
}

// keepRemoved keeps, for handOver, the members of a CareTeam in a
// coordinator's role whom its write takes out of the team: in the version
// it replaces (active), and no participant of the team as written (of the
// same patient), or every one of them when the write deletes the team or
// ends it (endsTeam).
func (c *Care) keepRemoved(ctx context.Context, s operation.Store, ch *operation.Change) error {
	ct, ok := ch.Resource.(*fhir.CareTeam)
	if ch.Created || !ch.Deleted && (!ok || ct.Status.Get() != "active" && !endsTeam(ct.Status.Get())) {
		return nil
	}
	v, err := s.Read(ctx, "CareTeam", ch.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("CareTeam/%s: %w", ch.ID, err)
	}
	if v.Deleted {
		return nil
	}
	prev, err := decode[*fhir.CareTeam](v.JSON)
	if err != nil {
		return fmt.Errorf("CareTeam/%s: %w", ch.ID, err)
	}
	patient := c.patientRef(refOf(prev.Subject))
	if prev.Status.Get() != "active" || patient == "" {
		return nil
	}
	ended := ch.Deleted || endsTeam(ct.Status.Get())
	if !ended && c.patientRef(refOf(ct.Subject)) != patient {
		return nil
	}
	removed := map[string]bool{}
	for _, p := range prev.Participant {
		if m := c.localRef(refOf(p.Member)); m != "" && c.coordinating(p) {
			removed[m] = true
		}
	}
	if !ended {
		for _, p := range ct.Participant {
			delete(removed, c.localRef(refOf(p.Member)))
		}
	}
	if len(removed) > 0 {
		ch.Keep(handoverHook, &handover{patient: patient, from: removed, ended: ended})
	}
	return nil
}

// handOver gives the open reminders of a CareTeam's patient that a
// coordinator of the team holds, whose part in it no longer holds (handed
// over with an end to it, or taken out of the team by this write, unless
// they coordinate the patient in another of their active teams now), to
// the team's coordinator now, as the reminders made from then on go to
// them. A team deleted or ended (endsTeam) hands those of all its
// coordinators so to the coordinator of the patient's other active teams
// (of two, the one with the lower id, as the runs choose). Reminders done
// or cancelled stay as they were, as do those of anyone else, and all of
// them while there is no coordinator to take them.
//
// A team deleted hands over once its unit of work has made its last write
// (lastWriter), where the unit lets it: a transaction deletes before it
// writes anything else, so the team it writes for the patient in place of
// the one deleted would not be seen yet.
func (c *Care) handOver(ctx context.Context, s operation.Store, ch *operation.Change) ([]operation.Issue, error) {
	if kept, _ := ch.Kept(handoverHook).(*handover); kept != nil && kept.ended && ch.Deleted {
		if u, ok := s.(lastWriter); ok && u.BeforeEnd(func() error { return c.handOverNow(ctx, s, ch) }) {
			return nil, nil
		}
	}
	return nil, c.handOverNow(ctx, s, ch)
}

// lastWriter is the store of a unit of work that runs a function in the
// unit after its last write, and reports whether it is bound to one (the
// server's, BeforeEnd).
type lastWriter interface {
	BeforeEnd(fn func() error) bool
}

// handOverNow hands over as handOver says, reading the teams as the unit
// of work of s leaves them so far.
func (c *Care) handOverNow(ctx context.Context, s operation.Store, ch *operation.Change) error {
	kept, _ := ch.Kept(handoverHook).(*handover)
	ct, _ := ch.Resource.(*fhir.CareTeam)
	var patient string
	var owner *fhir.Reference
	former := map[string]bool{}
	switch {
	case kept != nil && kept.ended:
		// The team no longer holds anyone's part: the coordinator of
		// another team takes the patient over (read below).
		patient, former = kept.patient, kept.from
	case ct != nil && ct.Status.Get() == "active":
		patient, owner = c.patientRef(refOf(ct.Subject)), c.coordinatorIn(ct)
		if patient == "" || owner == nil {
			return nil
		}
		var current map[string]bool
		former, current = c.parts(ct)
		for m := range current {
			delete(former, m)
		}
		// Taken out of the team, a coordinator's part ends with this
		// write: the periodic run, which reads only the teams as they
		// stand, would never see it.
		if kept != nil {
			for m := range kept.from {
				former[m] = true
			}
		}
	default:
		return nil
	}
	if len(former) == 0 {
		return nil
	}
	// Whether their part ended or they were taken out, one who still
	// coordinates the patient in another active team keeps the reminders.
	others, err := c.otherTeams(ctx, s, ch, patient)
	if err != nil {
		return err
	}
	for _, other := range others {
		for _, p := range other.Participant {
			if c.holds(p) && c.coordinating(p) {
				delete(former, c.localRef(refOf(p.Member)))
			}
		}
		if owner == nil {
			owner = c.coordinatorIn(other)
		}
	}
	if len(former) == 0 || owner == nil {
		return nil
	}
	var tasks []*fhir.Task
	params := url.Values{"patient": {patient}, "code": {reminderCodes}, "status": {openTaskStatuses}}
	err = s.Each(ctx, "Task", params, func(v *store.Version) error {
		t, err := decode[*fhir.Task](v.JSON)
		if err != nil {
			return fmt.Errorf("Task/%s: %w", v.ID, err)
		}
		if former[c.localRef(refOf(t.Owner))] {
			tasks = append(tasks, t)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, t := range tasks {
		t.Owner = owner
		t.LastModified = fhir.NewDateTime(c.cfg.Now().UTC().Format(time.RFC3339))
		if _, err := s.Update(ctx, t, 0); err != nil {
			return fmt.Errorf("hand Task/%s over: %w", t.Id.Get(), err)
		}
	}
	return nil
}

// otherTeams returns the active CareTeams of patient other than the one ch
// writes, as its transaction leaves them so far, in the order of their
// ids.
func (c *Care) otherTeams(ctx context.Context, s operation.Store, ch *operation.Change, patient string) ([]*fhir.CareTeam, error) {
	teams := map[string][]byte{}
	err := s.Each(ctx, "CareTeam", url.Values{"subject": {patient}, "status": {"active"}}, func(v *store.Version) error {
		teams[v.ID] = v.JSON
		return nil
	})
	if err != nil {
		return nil, err
	}
	if ch.Written != nil {
		for _, v := range ch.Written("CareTeam") {
			teams[v.ID] = v.JSON
		}
	}
	delete(teams, ch.ID)
	var out []*fhir.CareTeam
	for _, id := range slices.Sorted(maps.Keys(teams)) {
		ct, err := decode[*fhir.CareTeam](teams[id])
		if err != nil {
			return nil, fmt.Errorf("CareTeam/%s: %w", id, err)
		}
		if ct.Status.Get() == "active" && c.patientRef(refOf(ct.Subject)) == patient {
			out = append(out, ct)
		}
	}
	return out, nil
}

// localRef returns what a literal reference names as Type/id, a version of
// it or under this server's base alike; "" for a reference to another
// server or none.
func (c *Care) localRef(ref string) string {
	r := search.ParseReference(ref, c.cfg.BaseURL)
	if r.URL != "" || r.ID == "" {
		return ""
	}
	return r.Type + "/" + r.ID
}

// parts returns the members of ct (Type/id) in a coordinator's role whose
// part has ended (ended), and those of any role whose part holds now
// (taking).
func (c *Care) parts(ct *fhir.CareTeam) (ended, taking map[string]bool) {
	ended, taking = map[string]bool{}, map[string]bool{}
	for _, p := range ct.Participant {
		member := c.localRef(refOf(p.Member))
		if member == "" {
			continue
		}
		if c.holds(p) {
			taking[member] = true
			continue
		}
		if calendar.Holds("", p.Period.End.Get(), c.cfg.Now(), c.cfg.Zone) {
			continue // not begun: taking over, not handing over
		}
		if c.coordinating(p) {
			ended[member] = true
		}
	}
	return ended, taking
}
