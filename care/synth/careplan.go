package synth

import (
	"fmt"
	"time"

	"carefhir/care"
	"carefhir/fhir"
)

// goalKind is a goal people set in a personalised care and support plan.
type goalKind struct {
	text    string
	needs   string                // SNOMED code of the condition it is for; "" for anyone
	measure *fhir.CodeableConcept // what is tracked, when anything is
	target  *fhir.Quantity        // the value to reach
}

var goalKinds = []goalKind{
	{text: "Walk for 30 minutes on five days a week"},
	{text: "Join a local community group"},
	{text: "Feel confident managing my medicines"},
	{text: "Get back to gardening"},
	{text: "Sleep through the night more often"},
	{text: "Keep HbA1c at or below 53 mmol/mol", needs: codeDiabetes,
		measure: snomed("1049301000000100", "Haemoglobin A1c level - International Federation of Clinical Chemistry and Laboratory Medicine standardised"),
		target:  bound("<=", quantity("53", "mmol/mol", "mmol/mol"))},
	{text: "Keep blood pressure below 140/90 mmHg", needs: codeHypertension,
		measure: snomed("72313002", "Systolic arterial pressure"),
		target:  bound("<", quantity("140", "mmHg", "mm[Hg]"))},
}

// bound returns q with a comparator, such as "<= 53 mmol/mol".
func bound(comparator string, q *fhir.Quantity) *fhir.Quantity {
	q.Comparator = fhir.NewCode(comparator)
	return q
}

// achievements are the goal achievement statuses generated goals have:
// the first three for active goals, the others for completed ones.
var achievements = []struct{ code, display string }{
	{"in-progress", "In Progress"}, {"improving", "Improving"}, {"no-change", "No Change"},
	{"achieved", "Achieved"}, {"not-achieved", "Not Achieved"},
}

// whatMatters are what people say matters most to them.
var whatMatters = []string{
	"staying independent at home",
	"getting out and about more",
	"managing breathlessness",
	"seeing the grandchildren",
	"feeling less lonely",
	"going back to work",
}

// carePlan emits the patient's personalised care and support plan: its
// CareTeam, Goals, PAM responses and scores, then the CarePlan tying them
// together with the support appointments.
func (rec *record) carePlan(support []*fhir.Appointment) error {
	g, r := rec.g, rec.r
	start := rec.past(30, 720)
	var end time.Time
	active := true
	if start.Before(g.today.AddDate(0, 0, -120)) && chance(r, 30) {
		active = false
		end = start.AddDate(0, 0, between(r, 90, 365))
		if !end.Before(g.today) {
			end = g.today.AddDate(0, 0, -1)
		}
	}
	lead := pick(r, []clinician{rec.p.coord, rec.p.link})
	period := &fhir.Period{Start: day(start)}
	if !active {
		period.End = day(end)
	}
	conds := rec.conditionRefs()

	team := &fhir.CareTeam{
		Id:       fhir.NewId("ct-" + rec.num + "-1"),
		Status:   fhir.NewCode("active"),
		Category: []*fhir.CodeableConcept{concept(SystemLOINC, "LA28865-6", "Longitudinal care-coordination focused care team")},
		Name:     fhir.NewString("Proactive care team for " + rec.who.display()),
		Subject:  rec.patientRef(),
		Period:   period,
		Participant: []*fhir.CareTeamParticipant{
			{Role: []*fhir.CodeableConcept{snomed("116154003", "Patient")}, Member: rec.patientRef()},
			{Role: []*fhir.CodeableConcept{roleGP.code()}, Member: rec.gp.ref(), OnBehalfOf: rec.p.ref()},
			{Role: []*fhir.CodeableConcept{lead.role.code()}, Member: lead.ref(), OnBehalfOf: rec.p.ref()},
		},
		ReasonReference:      conds,
		ManagingOrganization: []*fhir.Reference{rec.p.ref()},
	}
	if lead != rec.p.coord {
		// Every team has the PCN's care coordinator, who owns its reminders.
		team.Participant = append(team.Participant, &fhir.CareTeamParticipant{
			Role: []*fhir.CodeableConcept{rec.p.coord.role.code()}, Member: rec.p.coord.ref(), OnBehalfOf: rec.p.ref()})
	}
	if chance(r, 50) {
		team.Participant = append(team.Participant, &fhir.CareTeamParticipant{
			Role: []*fhir.CodeableConcept{roleCoach.code()}, Member: rec.p.coach.ref(), OnBehalfOf: rec.p.ref()})
	}
	if !active {
		team.Status = fhir.NewCode("inactive")
	}
	if err := g.put(team); err != nil {
		return err
	}

	var goals []*fhir.Reference
	for _, kind := range rec.goalKinds() {
		goal := rec.goal(len(goals)+1, kind, start, active)
		if err := g.put(goal); err != nil {
			return err
		}
		goals = append(goals, ref("Goal", goal.GetID(), kind.text))
	}

	// A PAM at the start of the plan, and often again months later.
	activation := (r.Float64() + r.Float64()) / 2
	var scores []*fhir.Reference
	surveys := []time.Time{workday(start.AddDate(0, 0, r.IntN(14)))}
	last := g.today
	if !active {
		last = end
	}
	if follow := start.AddDate(0, 0, between(r, 120, 240)); follow.Before(last) && chance(r, 60) {
		surveys = append(surveys, workday(follow))
	}
	for i, d := range surveys {
		if d.After(g.today) {
			d = g.today
		}
		qr := rec.pam(i+1, d, min(1, activation+0.1*float64(i)), lead)
		if err := g.put(qr); err != nil {
			return err
		}
		scores = append(scores, ref("QuestionnaireResponse", qr.GetID(), ""))
	}

	plan := &fhir.CarePlan{
		Id:             fhir.NewId("cp-" + rec.num + "-1"),
		Status:         fhir.NewCode("active"),
		Intent:         fhir.NewCode("plan"),
		Meta:           &fhir.Meta{Profile: []*fhir.Canonical{fhir.NewCanonical(care.PCSPProfileURL)}},
		Category:       []*fhir.CodeableConcept{concept(care.SystemCarePlanCategory, care.CodePCSP, "Personalised care and support plan"), snomed("734163000", "Care plan")},
		Title:          fhir.NewString("Personalised care and support plan"),
		Description:    fhir.NewString("What matters to " + rec.who.given[0] + ": " + pick(r, whatMatters)),
		Subject:        rec.patientRef(),
		Period:         period,
		Created:        day(start),
		Author:         lead.ref(),
		Contributor:    []*fhir.Reference{rec.patientRef(), rec.gp.ref()},
		CareTeam:       []*fhir.Reference{ref("CareTeam", team.GetID(), "")},
		Addresses:      conds,
		SupportingInfo: scores,
		Goal:           goals,
	}
	if !active {
		plan.Status = fhir.NewCode("completed")
	} else {
		// Reviewed every six months; a sixth or so are overdue.
		review := g.today.AddDate(0, 0, between(rec.g.rand(streamReview, rec.n), -45, 180))
		plan.Extension = []*fhir.Extension{{Url: care.ReviewDateURL, ValueDate: date(review)}}
	}
	for _, a := range support {
		status := "completed"
		switch a.Status.Get() {
		case "booked":
			status = "scheduled"
		case "cancelled", "noshow":
			status = "cancelled"
		}
		plan.Activity = append(plan.Activity, &fhir.CarePlanActivity{
			OutcomeReference: []*fhir.Reference{ref("Appointment", a.GetID(), "")},
			Detail: &fhir.CarePlanActivityDetail{
				Kind:        fhir.NewCode("Appointment"),
				Code:        supportKind(a),
				Status:      fhir.NewCode(status),
				Performer:   []*fhir.Reference{a.Participant[1].Actor},
				Description: a.Description,
			},
		})
	}
	return g.put(plan)
}

// supportKind codes a support appointment as the kind of support it is,
// by its service: social prescribing, health coaching, or a planning
// review that prepares shared decisions.
func supportKind(a *fhir.Appointment) *fhir.CodeableConcept {
	kind := "shared-decision-making"
	if len(a.ServiceType) > 0 {
		switch a.ServiceType[0].Text.Get() {
		case "Social prescribing":
			kind = "social-prescribing"
		case "Health coaching":
			kind = "health-coaching"
		}
	}
	return concept(care.SystemPCSPActivity, kind, care.PCSPActivities[kind])
}

// goalKinds chooses one to three goals fitting the patient's conditions.
func (rec *record) goalKinds() []goalKind {
	var fit []goalKind
	for _, k := range goalKinds {
		if k.needs == "" || rec.has[k.needs] {
			fit = append(fit, k)
		}
	}
	rec.r.Shuffle(len(fit), func(i, j int) { fit[i], fit[j] = fit[j], fit[i] })
	return fit[:between(rec.r, 1, 3)]
}

// goal returns the k-th goal of a plan started on start: active in an
// active plan, completed (achieved or not) in a finished one.
func (rec *record) goal(k int, kind goalKind, start time.Time, active bool) *fhir.Goal {
	goal := &fhir.Goal{
		Id:              fhir.NewId(fmt.Sprintf("goal-%s-%d", rec.num, k)),
		LifecycleStatus: fhir.NewCode("active"),
		Priority:        concept(terminology+"goal-priority", "medium-priority", "Medium Priority"),
		Description:     textConcept(kind.text),
		Subject:         rec.patientRef(),
		StartDate:       date(start),
		ExpressedBy:     rec.patientRef(),
	}
	achievement := pick(rec.r, []int{0, 1, 2})
	if !active {
		goal.LifecycleStatus = fhir.NewCode("completed")
		achievement = pick(rec.r, []int{3, 3, 4})
	}
	a := achievements[achievement]
	goal.AchievementStatus = concept(terminology+"goal-achievement", a.code, a.display)
	target := &fhir.GoalTarget{DueDate: date(start.AddDate(0, between(rec.r, 3, 12), 0))}
	if kind.measure != nil {
		target.Measure = kind.measure
		target.DetailQuantity = kind.target
	}
	goal.Target = []*fhir.GoalTarget{target}
	for _, c := range rec.conds {
		if kind.needs != "" && c.Code.Coding[0].Code.Get() == kind.needs {
			goal.Addresses = []*fhir.Reference{ref("Condition", c.GetID(), "")}
		}
	}
	return goal
}
