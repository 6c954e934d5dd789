package care

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"carefhir/fhir"
	"carefhir/operation"
	"carefhir/store"
)

// A personalised care and support plan (PCSP) is a CarePlan claiming the
// profile PCSPCarePlan: category pcsp, the patient as subject and among the
// contributors, an author, period.start, the review date extension
// PCSPReviewDate, Goals in the person's own words (Goal.description.text)
// and activities coded as a kind of support (PCSPActivities, or the SNOMED
// CT referral to social prescribing), each with its status. An active PCSP
// has at least one Goal and a review date. The profile is installed for
// readers and validators; the rules are enforced here, on every write of a
// CarePlan that claims it.

// definitionsDate is the date of the definitions carefhir installs.
const definitionsDate = "2026-12-01"

// pcspProfile is the StructureDefinition PCSPCarePlan.
var pcspProfile = `{"resourceType":"StructureDefinition","id":"PCSPCarePlan","url":"` + PCSPProfileURL + `","version":"1.0.0",` +
	`"name":"PCSPCarePlan","title":"Personalised care and support plan","status":"active","date":"` + definitionsDate + `","publisher":"carefhir",` +
	`"description":"A personalised care and support plan agreed with a person in primary care: what matters to them as Goals in their own words, the support agreed as coded activities, who took part, and when it is next reviewed. carefhir enforces the rules on every CarePlan claiming this profile (see docs/care-coordination.md).",` +
	`"fhirVersion":"4.0.1","kind":"resource","abstract":false,"type":"CarePlan","baseDefinition":"http://hl7.org/fhir/StructureDefinition/CarePlan","derivation":"constraint",` +
	`"differential":{"element":[` +
	`{"id":"CarePlan","path":"CarePlan","constraint":[{"key":"pcsp-1","severity":"error","human":"An active PCSP has at least one Goal and a review date","expression":"status = 'active' implies (goal.exists() and extension('` + ReviewDateURL + `').exists())"}]},` +
	`{"id":"CarePlan.extension","path":"CarePlan.extension","short":"The review date (PCSPReviewDate) among others"},` +
	`{"id":"CarePlan.category","path":"CarePlan.category","min":1},` +
	`{"id":"CarePlan.author","path":"CarePlan.author","min":1},` +
	`{"id":"CarePlan.contributor","path":"CarePlan.contributor","min":1},` +
	`{"id":"CarePlan.period","path":"CarePlan.period","min":1},` +
	`{"id":"CarePlan.period.start","path":"CarePlan.period.start","min":1},` +
	`{"id":"CarePlan.activity.detail","path":"CarePlan.activity.detail","min":1},` +
	`{"id":"CarePlan.activity.detail.code","path":"CarePlan.activity.detail.code","min":1}` +
	`]}}`

// reviewDateExtension is the StructureDefinition PCSPReviewDate.
var reviewDateExtension = extensionDefinition("PCSPReviewDate", "PCSPReviewDate", ReviewDateURL, "PCSP review date",
	"When a personalised care and support plan is next reviewed with the person.",
	"CarePlan", `{"code":"date"}`)

// mdtCareTeamExtension is the StructureDefinition mdt-care-team.
var mdtCareTeamExtension = extensionDefinition("mdt-care-team", "MDTCareTeam", MDTCareTeamURL, "MDT care team",
	"The CareTeam whose multidisciplinary team meeting an Appointment is (R4 Appointment.basedOn may only reference a ServiceRequest).",
	"Appointment", `{"code":"Reference","targetProfile":["http://hl7.org/fhir/StructureDefinition/CareTeam"]}`)

// mdtCareTeamSearch is the SearchParameter mdt-care-team: the
// Appointments of a CareTeam's MDT meetings, as the extension
// mdt-care-team names it.
var mdtCareTeamSearch = `{"resourceType":"SearchParameter","id":"Appointment-mdt-care-team","url":"` + Base + `/SearchParameter/Appointment-mdt-care-team","version":"1.0.0",` +
	`"name":"MDTCareTeam","status":"active","date":"` + definitionsDate + `","publisher":"carefhir",` +
	`"description":"The CareTeam whose multidisciplinary team meeting the Appointment is (extension mdt-care-team).",` +
	`"code":"mdt-care-team","base":["Appointment"],"type":"reference",` +
	`"expression":"Appointment.extension('` + MDTCareTeamURL + `').value","xpathUsage":"normal","target":["CareTeam"]}`

// SearchParameters returns the search parameters of care coordination,
// as JSON SearchParameters: every indexer of the server's store serves
// them, so that the values a search reads are those every write,
// import and reindex stores.
func SearchParameters() [][]byte {
	return [][]byte{[]byte(mdtCareTeamSearch)}
}

// riskValueExtension is the StructureDefinition cohort-risk-value.
var riskValueExtension = extensionDefinition("cohort-risk-value", "CohortRiskValue", RiskValueURL, "Cohort risk value",
	"The latest risk value by which a member of a cohort Group was ranked.",
	"Group.member", `{"code":"decimal"}`)

// extensionDefinition returns the StructureDefinition of a simple
// extension of carefhir: on elements at context, one value of the type
// given as the JSON of an ElementDefinition.type.
func extensionDefinition(id, name, url, title, description, context, valueType string) string {
	return `{"resourceType":"StructureDefinition","id":"` + id + `","url":"` + url + `","version":"1.0.0",` +
		`"name":"` + name + `","title":"` + title + `","status":"active","date":"` + definitionsDate + `","publisher":"carefhir",` +
		`"description":"` + description + `",` +
		`"fhirVersion":"4.0.1","kind":"complex-type","abstract":false,"context":[{"type":"element","expression":"` + context + `"}],` +
		`"type":"Extension","baseDefinition":"http://hl7.org/fhir/StructureDefinition/Extension","derivation":"constraint",` +
		`"differential":{"element":[` +
		`{"id":"Extension","path":"Extension","short":"` + title + `","min":0,"max":"1"},` +
		`{"id":"Extension.extension","path":"Extension.extension","max":"0"},` +
		`{"id":"Extension.url","path":"Extension.url","fixedUri":"` + url + `"},` +
		`{"id":"Extension.value[x]","path":"Extension.value[x]","min":1,"type":[` + valueType + `]}` +
		`]}}`
}

// isPCSP reports whether a CarePlan claims the PCSP profile.
func isPCSP(cp *fhir.CarePlan) bool {
	if cp.Meta == nil {
		return false
	}
	for _, p := range cp.Meta.Profile {
		if u, _, _ := strings.Cut(p.Get(), "|"); u == PCSPProfileURL {
			return true
		}
	}
	return false
}

// activePCSPs returns params with what selects the active PCSPs among
// CarePlans, each of which isPCSP still tells apart: a plan claims the
// profile by its url or by a version of it (url|1.0.0), which a uri
// search of the url alone does not match, so the claims are searched as
// those the url begins (:below).
func activePCSPs(params url.Values) url.Values {
	params.Set("status", "active")
	params.Set("_profile:below", PCSPProfileURL)
	return params
}

// reviewDate returns a PCSP's review date, "" when it has none.
func reviewDate(cp *fhir.CarePlan) string {
	for _, e := range cp.Extension {
		if e.Url == ReviewDateURL {
			return e.ValueDate.Get()
		}
	}
	return ""
}

// checkPCSP refuses a CarePlan that claims the PCSP profile and breaks its
// rules: 422 with an issue per rule broken.
func (c *Care) checkPCSP(ctx context.Context, s operation.Store, ch *operation.Change) error {
	cp, ok := ch.Resource.(*fhir.CarePlan)
	if ch.Deleted || !ok || !isPCSP(cp) {
		return nil
	}
	var issues []operation.Issue
	fail := func(at, format string, args ...any) {
		issues = append(issues, operation.Issue{Severity: "error", Code: "business-rule", Diagnostics: fmt.Sprintf(format, args...), Expression: []string{at}})
	}
	if !slices.ContainsFunc(cp.Category, func(cc *fhir.CodeableConcept) bool { return hasCoding(cc, SystemCarePlanCategory, CodePCSP) }) {
		fail("CarePlan.category", "a PCSP has the category %s|%s", SystemCarePlanCategory, CodePCSP)
	}
	subject := c.patientRef(refOf(cp.Subject))
	if subject == "" {
		fail("CarePlan.subject", "the subject of a PCSP is the Patient it is agreed with")
	}
	if cp.Author == nil {
		fail("CarePlan.author", "a PCSP names its author")
	}
	if !slices.ContainsFunc(cp.Contributor, func(r *fhir.Reference) bool { return subject != "" && c.patientRef(refOf(r)) == subject }) {
		fail("CarePlan.contributor", "the Patient (%s) is among the contributors of their PCSP", refOf(cp.Subject))
	}
	if cp.Period == nil || cp.Period.Start.Get() == "" {
		fail("CarePlan.period.start", "a PCSP has a start date")
	}
	review, reviews := reviewDate(cp), 0
	for i, e := range cp.Extension {
		if e.Url != ReviewDateURL {
			continue
		}
		// One date: a second would leave reminders and caseloads to
		// choose which review is due.
		if reviews++; reviews > 1 {
			fail(fmt.Sprintf("CarePlan.extension[%d]", i), "a PCSP has one review date, and this is another")
		}
		if e.ValueDate.Get() == "" {
			fail(fmt.Sprintf("CarePlan.extension[%d]", i), "the review date is a valueDate")
		}
	}
	if cp.Status.Get() == "active" {
		if len(cp.Goal) == 0 {
			fail("CarePlan.goal", "an active PCSP has at least one Goal")
		}
		if review == "" {
			fail("CarePlan.extension('"+ReviewDateURL+"')", "an active PCSP has a review date")
		}
	}
	for i, g := range cp.Goal {
		if err := c.checkGoal(ctx, s, ch, g.Reference.Get(), subject); err != nil {
			var oe *operation.Error
			if !errors.As(err, &oe) {
				return err
			}
			fail(fmt.Sprintf("CarePlan.goal[%d]", i), "%s", oe.Issues[0].Diagnostics)
		}
	}
	for i, a := range cp.Activity {
		at := fmt.Sprintf("CarePlan.activity[%d].detail", i)
		if a.Detail == nil {
			fail(at, "a PCSP activity has a detail with its code and status")
			continue
		}
		if !c.supportCode(a.Detail.Code) {
			fail(at+".code", "a PCSP activity is coded as a kind of support (%s) or a referral to social prescribing (%s|%s)", SystemPCSPActivity, SystemSNOMED, c.cfg.Codes.SocialPrescribingReferral)
		}
		if a.Detail.Status.Get() == "" {
			fail(at+".status", "a PCSP activity has a status")
		}
	}
	if len(issues) > 0 {
		return &operation.Error{Status: http.StatusUnprocessableEntity, Issues: issues}
	}
	return nil
}

// supportCode reports whether cc codes a kind of PCSP support.
func (c *Care) supportCode(cc *fhir.CodeableConcept) bool {
	if cc == nil {
		return false
	}
	for _, cd := range cc.Coding {
		if _, ok := PCSPActivities[cd.Code.Get()]; ok && cd.System.Get() == SystemPCSPActivity {
			return true
		}
		if cd.System.Get() == SystemSNOMED && cd.Code.Get() == c.cfg.Codes.SocialPrescribingReferral {
			return true
		}
	}
	return false
}

// checkGoal refuses a PCSP goal that is not a Goal, a Goal of another
// patient than the plan's (patient), or a Goal without a description in
// the person's own words (description.text), as the transaction of ch
// leaves it. A Goal neither stored nor written by the transaction, or
// stored but not the writer's to read, is not checked here.
func (c *Care) checkGoal(ctx context.Context, s operation.Store, ch *operation.Change, ref, patient string) error {
	// A version of the Goal (Goal/id/_history/2) is checked as the Goal.
	id, ok := c.localID(ref, "Goal")
	if !ok {
		return operation.Errorf(http.StatusUnprocessableEntity, "business-rule", "", "the goals of a PCSP are Goal resources, not %s", ref)
	}
	// Read as who writes the plan: what the check answers about a Goal
	// they may not read would tell them whose it is and what it says.
	v, err := current(ch.Requester(ctx), s, ch, "Goal", id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if v.Deleted {
		return operation.Errorf(http.StatusUnprocessableEntity, "business-rule", "", "%s was deleted", ref)
	}
	g, err := decode[*fhir.Goal](v.JSON)
	if err != nil {
		return err
	}
	// What matters to one person is not another's plan. Whose Goal it is
	// goes unsaid: the plan's readers need not be the Goal's.
	if of := refOf(g.Subject); of != "" && patient != "" && c.patientRef(of) != patient {
		return operation.Errorf(http.StatusUnprocessableEntity, "business-rule", "", "%s is not a goal of %s, whose PCSP this is", ref, patient)
	}
	if g.Description == nil || g.Description.Text.Get() == "" {
		return operation.Errorf(http.StatusUnprocessableEntity, "business-rule", "", "%s has no description.text: a PCSP goal is written in the person's own words", ref)
	}
	return nil
}

// closeReviewTasks closes the open review reminders of a PCSP once the
// review is done (its review date moved past their due date), and cancels
// them when the plan ends (completed, revoked, entered in error), is
// deleted, or no longer claims the profile: a care plan that is no PCSP
// has no review to remind of. A plan on hold or in draft keeps them.
func (c *Care) closeReviewTasks(ctx context.Context, s operation.Store, ch *operation.Change) ([]operation.Issue, error) {
	filter := url.Values{"focus": {"CarePlan/" + ch.ID}}
	if ch.Deleted {
		return nil, c.endTasks(ctx, s, CodeReviewTask, filter, "cancelled", nil)
	}
	cp, ok := ch.Resource.(*fhir.CarePlan)
	if !ok || ch.Created && !isPCSP(cp) {
		return nil, nil // a plan created holds no reminders yet
	}
	if !isPCSP(cp) {
		return nil, c.endTasks(ctx, s, CodeReviewTask, filter, "cancelled", nil)
	}
	switch cp.Status.Get() {
	case "completed", "revoked", "entered-in-error":
		return nil, c.endTasks(ctx, s, CodeReviewTask, filter, "cancelled", nil)
	case "active":
		review := reviewDate(cp)
		// Compared by the day each is due by (lastDayOf): a review due in
		// December 2026 given its day, 2026-12-20, is not done. A review
		// brought forward is due sooner: its reminder says so.
		return nil, c.changeTasks(ctx, s, CodeReviewTask, filter, func(t *fhir.Task) (bool, error) {
			due := dueOf(t)
			if due == "" || review == "" {
				return false, nil
			}
			switch d, r := lastDayOf(due[:min(len(due), len(time.DateOnly))]), lastDayOf(review); {
			case d < r:
				t.Status = fhir.NewCode("completed")
			case d > r:
				t.Restriction.Period.End = fhir.NewDateTime(review)
			default:
				return false, nil
			}
			return true, nil
		})
	}
	return nil, nil
}
