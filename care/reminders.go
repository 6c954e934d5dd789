package care

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"time"

	"carefhir/care/calendar"
	"carefhir/fhir"
	"carefhir/operation"
	"carefhir/store"
)

// openTaskStatuses are the statuses of a Task still to be done.
const openTaskStatuses = "draft,requested,received,accepted,ready,in-progress,on-hold"

// endTasks gives the open reminder Tasks of a kind that match filter the
// status given: those for which ends reports true, or all when it is nil.
func (c *Care) endTasks(ctx context.Context, s operation.Store, code string, filter url.Values, status string, ends func(*fhir.Task) (bool, error)) error {
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
	// Decided once the search is read: ends may read the store.
	for _, t := range tasks {
		if ends != nil {
			if ok, err := ends(t); err != nil || !ok {
				if err != nil {
					return err
				}
				continue
			}
		}
		t.Status = fhir.NewCode(status)
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
// PAM re-measurements due by then, each once while it is open. It answers
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
// already, and returns them: what $generate-reminders and the periodic run
// of the server (carefhir serve --reminders-every) do.
func (c *Care) Reminders(ctx context.Context, s operation.Store, asOf time.Time) ([]*store.Version, error) {
	// Compared as dates, not as text: the horizon may be past year 9999.
	horizon := asOf.Add(c.cfg.ReviewWindow)
	var due []reminder
	err := s.Each(ctx, "CarePlan", url.Values{"status": {"active"}, "_profile": {PCSPProfileURL}}, func(v *store.Version) error {
		cp, err := decode[*fhir.CarePlan](v.JSON)
		if err != nil {
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
	latest, err := c.latestPAM(ctx, s, url.Values{})
	if err != nil {
		return nil, err
	}
	for patient, l := range latest {
		d := addMonths(c.dateOf(l.when), c.cfg.RemeasureMonths)
		// Due after 9999-12-31, it is due on no date a Task can hold.
		if !d.After(horizon) && d.Year() <= 9999 && l.response != "" {
			due = append(due, reminder{code: CodeRemeasureTask, display: "Measure patient activation (PAM) again",
				patient: patient, focus: l.response, due: d.Format(time.DateOnly)})
		}
	}
	// Reminders only for people held here and in care (inCare).
	seen := map[string]bool{}
	var patients []string
	for _, r := range due {
		if c.patientRef(r.patient) != "" && !seen[r.patient] {
			seen[r.patient] = true
			patients = append(patients, r.patient)
		}
	}
	cared, err := patientsInCare(ctx, s, patients)
	if err != nil {
		return nil, err
	}
	due = slices.DeleteFunc(due, func(r reminder) bool { return !cared[r.patient] })
	// The open reminders, read before any is written: a unit of work
	// may not search what it wrote on engines without transactions.
	open := map[string]bool{}
	err = s.Each(ctx, "Task", url.Values{"code": {SystemCareTask + "|" + CodeReviewTask + "," + SystemCareTask + "|" + CodeRemeasureTask}, "status": {openTaskStatuses}}, func(v *store.Version) error {
		t, err := decode[*fhir.Task](v.JSON)
		if err == nil {
			for _, code := range []string{CodeReviewTask, CodeRemeasureTask} {
				if hasCoding(t.Code, SystemCareTask, code) {
					open[openKey(code, refOf(t.For), refOf(t.Focus))] = true
				}
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	var created []*store.Version
	owners := map[string]*fhir.Reference{}
	for _, r := range due {
		if open[openKey(r.code, r.patient, r.focus)] {
			continue
		}
		owner, ok := owners[r.patient]
		if !ok {
			if owner, err = c.coordinatorOf(ctx, s, r.patient); err != nil {
				return nil, err
			}
			owners[r.patient] = owner
		}
		t := &fhir.Task{
			Status:      fhir.NewCode("requested"),
			Intent:      fhir.NewCode("plan"),
			Code:        &fhir.CodeableConcept{Coding: []*fhir.Coding{coding(SystemCareTask, r.code, r.display)}, Text: fhir.NewString(r.display)},
			For:         &fhir.Reference{Reference: fhir.NewString(r.patient)},
			Focus:       &fhir.Reference{Reference: fhir.NewString(r.focus)},
			Owner:       owner,
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

// coordinatorOf returns the care coordinator of the patient's active
// CareTeam whose part in it holds now, nil when there is none.
func (c *Care) coordinatorOf(ctx context.Context, s operation.Store, patient string) (*fhir.Reference, error) {
	page, err := s.Search(ctx, "CareTeam", url.Values{"subject": {patient}, "status": {"active"}, "_count": {"20"}})
	if err != nil {
		return nil, err
	}
	for _, v := range page.Matches {
		ct, err := decode[*fhir.CareTeam](v.JSON)
		if err != nil {
			return nil, err
		}
		for _, p := range ct.Participant {
			if p.Period != nil && !calendar.Holds(p.Period.Start.Get(), p.Period.End.Get(), c.cfg.Now(), c.cfg.Zone) {
				continue // handed over, or not yet taken over
			}
			for _, role := range p.Role {
				if hasCoding(role, SystemSNOMED, c.cfg.Codes.CareCoordinator) || hasCoding(role, SystemCareRole, CodeCoordinator) {
					return p.Member, nil
				}
			}
		}
	}
	return nil, nil
}
