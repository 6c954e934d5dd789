package care_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"carefhir/care"
	"carefhir/server"
	"carefhir/store"
)

// TestReminderDates: a re-measurement is due six months on, on the last
// day of a shorter month; a distant asOf still finds what is due; a
// backdated PAM leaves the re-measurement open; a PCSP on hold keeps its
// review reminder, one that ends cancels it.
func TestReminderDates(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		wardCareTeam(c)
		c.put(pamResponse("pam-march", "completed", "2025-03-31", "2", "50"))
		walkGoal(c)
		c.put(pcsp("active", "2026-12-10", "goal-walk"))

		rem := generateReminders(c, "9999-12-31")
		if got := paramsText(rem); !strings.HasPrefix(got, "created=2 ") {
			t.Fatalf("reminders as of 9999-12-31: %s", got)
		}
		tasks := func() map[string]map[string]any {
			out := map[string]map[string]any{}
			for _, task := range entries(c.do("GET", "/Task?patient=Patient/ward", "").want(http.StatusOK)) {
				out[str(task, "code", "coding", 0, "code")] = task
			}
			return out
		}
		if due := str(tasks()["pam-remeasure"], "restriction", "period", "end"); due != "2025-09-30" {
			t.Errorf("re-measurement of a PAM of 31 March due %s, want 2025-09-30", due)
		}

		// A PAM older than the latest re-measures nothing.
		c.put(pamResponse("pam-old", "completed", "2025-01-01", "2", "48"))
		if st := str(tasks()["pam-remeasure"], "status"); st != "requested" {
			t.Errorf("re-measurement after a backdated PAM: %s", st)
		}
		// Nor does amending the PAM the reminder is about.
		c.put(pamResponse("pam-march", "amended", "2025-03-31", "2", "51"))
		if st := str(tasks()["pam-remeasure"], "status"); st != "requested" {
			t.Errorf("re-measurement after its PAM was amended: %s", st)
		}
		c.put(pamResponse("pam-new", "completed", "2026-11-01", "3", "60"))
		if st := str(tasks()["pam-remeasure"], "status"); st != "completed" {
			t.Errorf("re-measurement after a new PAM: %s", st)
		}

		// On hold, the plan keeps its review reminder; ended, it cancels it.
		c.put(pcsp("on-hold", "2026-12-10", "goal-walk"))
		if st := str(tasks()["pcsp-review"], "status"); st != "requested" {
			t.Errorf("review reminder of a plan on hold: %s", st)
		}
		c.put(pcsp("completed", "2026-12-10", "goal-walk"))
		if st := str(tasks()["pcsp-review"], "status"); st != "cancelled" {
			t.Errorf("review reminder of a completed plan: %s", st)
		}
	})
}

// TestReviewReminderOfPlanNoLongerPCSP: a PCSP updated so that it no
// longer claims the profile, still active, is no PCSP: its open review
// reminder is cancelled, as one of a plan that ends is, and none is made
// again.
func TestReviewReminderOfPlanNoLongerPCSP(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		wardCareTeam(c)
		walkGoal(c)
		c.put(pcsp("active", "2026-12-10", "goal-walk"))
		generate := func() string {
			return paramsText(generateReminders(c, "2026-12-01"))
		}
		if got := generate(); !strings.HasPrefix(got, "created=1 ") {
			t.Fatalf("reminders: %s, want the review", got)
		}
		c.put(strings.Replace(pcsp("active", "2026-12-10", "goal-walk"), `"meta":{"profile":["`+care.PCSPProfileURL+`"]},`, "", 1))
		review := entries(c.do("GET", "/Task?code="+care.SystemCareTask+"|pcsp-review", "").want(http.StatusOK))
		if len(review) != 1 || str(review[0], "status") != "cancelled" {
			t.Fatalf("review reminders of a plan no longer a PCSP: %v, want one cancelled", review)
		}
		if got := generate(); got != "created=0" {
			t.Errorf("reminders after the plan is no PCSP: %s, want none", got)
		}
	})
}

// TestReminderNotMadeAgainOnceEnded: a reminder a coordinator cancelled,
// or that was done, is not made again by the next run for the same due
// date; a review moved to another date makes a new one, and so does a
// reminder only entered in error.
func TestReminderNotMadeAgainOnceEnded(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		reviewAndRemeasureDue(c)
		run := func() string {
			return paramsText(generateReminders(c, "2026-12-01"))
		}
		// end gives the open reminder of code the status given.
		end := func(code, status string) {
			t.Helper()
			open := entries(c.do("GET", "/Task?patient=Patient/ward&status=requested&code="+care.SystemCareTask+"|"+code, "").want(http.StatusOK))
			if len(open) != 1 {
				t.Fatalf("open %s reminders: %d, want 1", code, len(open))
			}
			open[0]["status"] = status
			b, err := json.Marshal(open[0])
			if err != nil {
				t.Fatal(err)
			}
			c.put(string(b))
		}
		if got := run(); !strings.HasPrefix(got, "created=2 ") {
			t.Fatalf("first run: %s", got)
		}
		end("pcsp-review", "cancelled")
		end("pam-remeasure", "completed")
		if got := run(); got != "created=0" {
			t.Errorf("run after the reminders were cancelled and done: %s", got)
		}

		c.put(pcsp("active", "2026-12-12", "goal-walk"))
		if got := run(); !strings.HasPrefix(got, "created=1 ") {
			t.Fatalf("run after the review was moved: %s", got)
		}
		reviews := entries(c.do("GET", "/Task?patient=Patient/ward&status=requested&code="+care.SystemCareTask+"|pcsp-review", "").want(http.StatusOK))
		if len(reviews) != 1 || str(reviews[0], "restriction", "period", "end") != "2026-12-12" {
			t.Errorf("open review reminders after the review was moved: %v", reviews)
		}
		end("pcsp-review", "entered-in-error")
		if got := run(); !strings.HasPrefix(got, "created=1 ") {
			t.Errorf("run after the reminder was entered in error: %s", got)
		}
	})
}

// TestRemindersReadOnlyWhatIsDue: a run reads the ended reminders of the
// plans and PAMs due now, not every one a patient's history has ended
// (those of earlier PAMs and plans), which would grow with it for ever;
// one ended for the due date of the plan due now still keeps it from
// being made again.
func TestRemindersReadOnlyWhatIsDue(t *testing.T) {
	counter := &searchCounter{typ: "Task"}
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		reviewAndRemeasureDue(c)
		ended := func(id, code, focus, due string) {
			c.put(fmt.Sprintf(`{"resourceType":"Task","id":%q,"status":"completed","intent":"plan","code":{"coding":[{"system":%q,"code":%q}]},
				"for":{"reference":"Patient/ward"},"focus":{"reference":%q},"restriction":{"period":{"end":%q}}}`, id, care.SystemCareTask, code, focus, due))
		}
		const history = 20
		for i := range history {
			ended(fmt.Sprintf("old-pam-%d", i), "pam-remeasure", fmt.Sprintf("QuestionnaireResponse/pam-%d", i), fmt.Sprintf("%d-06-30", 2000+i))
			ended(fmt.Sprintf("old-plan-%d", i), "pcsp-review", fmt.Sprintf("CarePlan/pcsp-%d", i), fmt.Sprintf("%d-06-30", 2000+i))
		}
		ended("reviewed", "pcsp-review", "CarePlan/pcsp-ward", "2026-12-10")
		counter.read.Store(0)
		rem := generateReminders(c, "2026-12-01")
		if got := paramsText(rem); !strings.HasPrefix(got, "created=1 ") {
			t.Fatalf("reminders: %s, want only the re-measurement", got)
		}
		if n := counter.read.Load(); n != 1 {
			t.Errorf("the run read %d Tasks, want 1 (the review ended for its due date) of %d ended", n, 2*history+1)
		}
	}, func(sc *server.Config) { counter.Store = sc.Store; sc.Store = counter })
}

// reviewAndRemeasureDue writes the population, with Ward's plan due for
// review on 2026-12-10 and her PAM of 2026-03-31 due again.
func reviewAndRemeasureDue(c *client) {
	population(c)
	walkGoal(c)
	c.put(pcsp("active", "2026-12-10", "goal-walk"))
	c.put(pamResponse("pam-march", "completed", "2026-03-31", "2", "50"))
}

// TestReminderOfVersionedSubject: a PCSP naming its patient by a version
// (Patient/ward/_history/1) is reviewed as that patient's plan: its
// reminder is created, for Patient/ward, owned by their coordinator.
func TestReminderOfVersionedSubject(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		wardCareTeam(c)
		walkGoal(c)
		c.put(strings.ReplaceAll(pcsp("active", "2026-12-10", "goal-walk"), `"Patient/ward"`, `"Patient/ward/_history/1"`))
		rem := generateReminders(c, "2026-12-01")
		if got := paramsText(rem); !strings.HasPrefix(got, "created=1 ") {
			t.Fatalf("reminders: %s", got)
		}
		task := entries(c.do("GET", "/Task?code="+care.SystemCareTask+"|pcsp-review", "").want(http.StatusOK))[0]
		if who, owner := str(task, "for", "reference"), str(task, "owner", "reference"); who != "Patient/ward" || owner != "Practitioner/cc" {
			t.Errorf("review reminder for %q owned by %q, want Patient/ward and Practitioner/cc", who, owner)
		}
	})
}

// TestReminderOpenAsReferenced: reminders a coordinator's app made, whose
// for and focus name the patient and the plan by a version or by an
// absolute URL under this server's base, are the open reminders of that
// patient and plan: none is made again beside them.
func TestReminderOpenAsReferenced(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		reviewAndRemeasureDue(c)
		task := func(id, code, patient, focus string) string {
			return fmt.Sprintf(`{"resourceType":"Task","id":%q,"status":"requested","intent":"plan","code":{"coding":[{"system":%q,"code":%q}]},
				"for":{"reference":%q},"focus":{"reference":%q},"restriction":{"period":{"end":"2026-12-10"}}}`, id, care.SystemCareTask, code, patient, focus)
		}
		c.put(task("review", "pcsp-review", c.base+"/Patient/ward", c.base+"/CarePlan/pcsp-ward"))
		c.put(task("remeasure", "pam-remeasure", "Patient/ward/_history/1", "QuestionnaireResponse/pam-march"))
		rem := generateReminders(c, "2026-12-01")
		if got := paramsText(rem); got != "created=0" {
			t.Errorf("reminders beside those open: %s", got)
		}
	})
}

// TestReminderPastYear9999: a re-measurement due after 9999-12-31, which
// no FHIR date can hold, is not made, and the run answers 200, not 500.
func TestReminderPastYear9999(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		c.put(pamResponse("pam-far", "completed", "9999-07-01T10:00:00Z", "2", "50"))
		rem := generateReminders(c, "9999-12-31")
		if got := paramsText(rem); got != "created=0" {
			t.Errorf("reminders as of 9999-12-31: %s", got)
		}
	})
}

// TestRemindersReadCareTeamsTogether: the reminders of many patients are
// owned each by their own coordinator, and their CareTeams are read with
// one search, not one a patient; of two teams naming a coordinator, the
// one with the lower id gives the owner.
func TestRemindersReadCareTeamsTogether(t *testing.T) {
	counter := &searchCounter{typ: "CareTeam"}
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		const patients = 6
		coordinator := `"role":[{"coding":[{"system":"http://snomed.info/sct","code":"768820003"}]}]`
		for i := range patients {
			id := fmt.Sprintf("p%d", i)
			c.put(`{"resourceType":"Patient","id":"` + id + `"}`)
			c.put(`{"resourceType":"CareTeam","id":"team-` + id + `","status":"active","subject":{"reference":"Patient/` + id + `"},"participant":[
				{` + coordinator + `,"member":{"reference":"Practitioner/cc-` + id + `"}}]}`)
			c.put(strings.ReplaceAll(pamResponse("pam-"+id, "completed", "2026-01-01", "2", "50"), "Patient/ward", "Patient/"+id))
		}
		c.put(`{"resourceType":"CareTeam","id":"team-p0-later","status":"active","subject":{"reference":"Patient/p0"},"participant":[
			{` + coordinator + `,"member":{"reference":"Practitioner/lw"}}]}`)
		counter.n.Store(0)
		rem := c.do("POST", "/Task/$generate-reminders", "").want(http.StatusOK)
		if got := paramsText(rem); !strings.HasPrefix(got, fmt.Sprintf("created=%d ", patients)) {
			t.Fatalf("reminders: %s", got)
		}
		if n := counter.n.Load(); n != 1 {
			t.Errorf("%d searches of CareTeams for the reminders of %d patients, want 1", n, patients)
		}
		for _, task := range entries(c.do("GET", "/Task?code="+care.SystemCareTask+"|pam-remeasure", "").want(http.StatusOK)) {
			who := strings.TrimPrefix(str(task, "for", "reference"), "Patient/")
			if owner := str(task, "owner", "reference"); owner != "Practitioner/cc-"+who {
				t.Errorf("the reminder of Patient/%s is owned by %q, want Practitioner/cc-%s", who, owner, who)
			}
		}
	}, func(sc *server.Config) { counter.Store = sc.Store; sc.Store = counter })
}

// searchCounter is an engine that counts the searches of one type, whole
// plans (store.Finder) or not, in units of work too, and the versions
// they read.
type searchCounter struct {
	store.Store
	typ  string
	n    atomic.Int64
	read atomic.Int64
}

func (s *searchCounter) Search(ctx context.Context, q store.Query) ([]*store.Version, error) {
	return countSearch(s, q, s.Store.Search)(ctx, q)
}

func (s *searchCounter) Find(ctx context.Context, q store.Query) (*store.Page, error) {
	return countSearch(s, q, s.Store.(store.Finder).Find)(ctx, q)
}

func (s *searchCounter) Transact(ctx context.Context, fn func(tx store.Tx) error) error {
	return s.Store.Transact(ctx, func(tx store.Tx) error { return fn(&txSearchCounter{Tx: tx, c: s}) })
}

type txSearchCounter struct {
	store.Tx
	c *searchCounter
}

func (t *txSearchCounter) Search(ctx context.Context, q store.Query) ([]*store.Version, error) {
	return countSearch(t.c, q, t.Tx.Search)(ctx, q)
}

func (t *txSearchCounter) Find(ctx context.Context, q store.Query) (*store.Page, error) {
	return countSearch(t.c, q, t.Tx.(store.Finder).Find)(ctx, q)
}

// countSearch counts q in c when it searches c's type, and returns search
// counting the versions it reads.
func countSearch[T any](c *searchCounter, q store.Query, search func(context.Context, store.Query) (T, error)) func(context.Context, store.Query) (T, error) {
	if q.Type != c.typ {
		return search
	}
	c.n.Add(1)
	return func(ctx context.Context, q store.Query) (T, error) {
		res, err := search(ctx, q)
		switch r := any(res).(type) {
		case []*store.Version:
			c.read.Add(int64(len(r)))
		case *store.Page:
			if r != nil {
				c.read.Add(int64(len(r.Matches)))
			}
		}
		return res, err
	}
}

// onlyRemeasure returns the one re-measurement reminder held, failing t
// unless there is exactly one.
func onlyRemeasure(t *testing.T, c *client) map[string]any {
	t.Helper()
	list := entries(c.do("GET", "/Task?code="+care.SystemCareTask+"|pam-remeasure", "").want(http.StatusOK))
	if len(list) != 1 {
		t.Fatalf("re-measurement reminders: %v, want one", list)
	}
	return list[0]
}

// TestReminderOfPAMRecordedElsewhere: a patient whose latest PAM was
// recorded in a GP system (level and score Observations under the
// configured SNOMED CT concepts, no response) is reminded to measure
// again six months on, the reminder about that level; a PAM taken here
// after it closes the reminder, one backdated before it does not.
func TestReminderOfPAMRecordedElsewhere(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		wardCareTeam(c)
		c.put(pamResponse("pam-old", "completed", "2025-01-01T10:00:00Z", "2", "48"))
		for _, o := range []struct{ id, code, value string }{{"gp-level", "962851000000103", "2"}, {"gp-score", "925431000000109", "51.3"}} {
			c.put(`{"resourceType":"Observation","id":"` + o.id + `","status":"final","code":{"coding":[{"system":"http://snomed.info/sct","code":"` + o.code + `"}]},` +
				`"subject":{"reference":"Patient/ward"},"effectiveDateTime":"2026-03-31T10:00:00+01:00","valueQuantity":{"value":` + o.value + `}}`)
		}
		rem := generateReminders(c, "2026-12-01")
		if got := paramsText(rem); !strings.HasPrefix(got, "created=1 ") {
			t.Fatalf("reminders: %s, want one", got)
		}
		task := onlyRemeasure(t, c)
		if got := str(task, "focus", "reference") + " " + str(task, "restriction", "period", "end") + " " + str(task, "owner", "reference"); got != "Observation/gp-level 2026-09-30 Practitioner/cc" {
			t.Errorf("reminder: %s, want Observation/gp-level 2026-09-30 Practitioner/cc", got)
		}
		c.put(pamResponse("pam-backdated", "completed", "2026-02-01T10:00:00Z", "2", "49"))
		if st := str(onlyRemeasure(t, c), "status"); st != "requested" {
			t.Errorf("reminder after a PAM backdated before the GP system's: %s, want requested", st)
		}
		c.put(pamResponse("pam-new", "completed", "2026-11-20T10:00:00Z", "3", "60"))
		if st := str(onlyRemeasure(t, c), "status"); st != "completed" {
			t.Errorf("reminder after a new PAM: %s, want completed", st)
		}
	})
}

// TestReminderClosedByPAMRecordedElsewhere: a PAM level a GP system
// records after the PAM a re-measurement reminder is about closes the
// reminder, as a PAM taken here does; one backdated before it, or of
// another patient, leaves it open.
func TestReminderClosedByPAMRecordedElsewhere(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		remindedOfMarchPAM(t, c)
		status := func() string {
			list := entries(c.do("GET", "/Task?code="+care.SystemCareTask+"|pam-remeasure", "").want(http.StatusOK))
			if len(list) != 1 {
				t.Fatalf("re-measurement reminders: %v, want one", list)
			}
			return str(list[0], "status")
		}
		level := func(id, patient, when string) string {
			return `{"resourceType":"Observation","id":"` + id + `","status":"final","code":{"coding":[{"system":"http://snomed.info/sct","code":"962851000000103"}]},` +
				`"subject":{"reference":"` + patient + `"},"effectiveDateTime":"` + when + `","valueInteger":3}`
		}
		c.put(level("gp-backdated", "Patient/ward", "2026-02-01T10:00:00Z"))
		c.put(level("gp-baker", "Patient/baker", "2026-11-20T10:00:00Z"))
		if st := status(); st != "requested" {
			t.Errorf("reminder after a backdated PAM level, or another patient's: %s, want requested", st)
		}
		c.put(level("gp-new", "Patient/ward/_history/1", "2026-11-20T10:00:00Z"))
		if st := status(); st != "completed" {
			t.Errorf("reminder after a PAM level recorded in a GP system: %s, want completed", st)
		}
	})
}

// remindedOfMarchPAM gives the population a PAM of Ward's taken on 31
// March 2026 and the re-measurement reminder it makes due.
func remindedOfMarchPAM(t *testing.T, c *client) {
	t.Helper()
	population(c)
	c.put(pamResponse("pam-march", "completed", "2026-03-31T10:00:00+01:00", "2", "50"))
	rem := generateReminders(c, "2026-12-01")
	if got := paramsText(rem); !strings.HasPrefix(got, "created=1 ") {
		t.Fatalf("reminders: %s, want one", got)
	}
}

// TestPAMLevelRecordedWithoutOne: a PAM level Observation of a GP system
// that holds no level (a dataAbsentReason, as for a PAM the patient
// declined, or a number outside 1 to 4) is no PAM result: it closes no
// re-measurement reminder, and the caseload and cohorts keep the
// patient's last level measured.
func TestPAMLevelRecordedWithoutOne(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		remindedOfMarchPAM(t, c)
		for _, value := range []string{
			`"dataAbsentReason":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/data-absent-reason","code":"asked-declined"}]}`,
			`"valueInteger":7`, `"valueInteger":-1`, `"valueQuantity":{"value":0}`,
		} {
			c.put(`{"resourceType":"Observation","id":"gp-level","status":"final","code":{"coding":[{"system":"http://snomed.info/sct","code":"962851000000103"}]},` +
				`"subject":{"reference":"Patient/ward"},"effectiveDateTime":"2026-11-20T10:00:00Z",` + value + `}`)
			list := entries(c.do("GET", "/Task?code="+care.SystemCareTask+"|pam-remeasure", "").want(http.StatusOK))
			if len(list) != 1 || str(list[0], "status") != "requested" {
				t.Errorf("%s: re-measurement reminders %v, want the one requested", value, list)
			}
			checkParts(t, caseloadOf(t, c, "/Organization/y12345/$caseload")["Patient/ward"],
				map[string]any{"pamLevel": 2.0, "pamDate": "2026-03-31T10:00:00+01:00"})
			g := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"pamLevelMax","valueInteger":1}]}`).want(http.StatusCreated)
			if got := members(g); got != "" {
				t.Errorf("%s: cohort of PAM level 1 at most: %q, want none", value, got)
			}
		}
	})
}

// TestHandoverMovesReminders: when a coordinator hands a patient over (their
// part in the CareTeam ends and another coordinator's part holds), the patient's open reminders they owned go to the new
// coordinator; those done or cancelled, and those of anyone else, stay,
// and all stay while the one handing over coordinates the patient in
// another active team.
func TestHandoverMovesReminders(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		coordinator := `"role":[{"coding":[{"system":"http://snomed.info/sct","code":"768820003"}]}]`
		c.put(`{"resourceType":"CareTeam","id":"team-ward","status":"active","subject":{"reference":"Patient/ward"},"participant":[
			{` + coordinator + `,"member":{"reference":"Practitioner/cc"},"period":{"start":"2026-01-01"}}]}`)
		owners := ccReminders(c)
		before := owners()

		// A new coordinator whose part has not begun takes nothing yet.
		c.put(`{"resourceType":"CareTeam","id":"team-ward","status":"active","subject":{"reference":"Patient/ward"},"participant":[
			{` + coordinator + `,"member":{"reference":"Practitioner/cc"},"period":{"start":"2026-01-01","end":"2026-12-05"}},
			{` + coordinator + `,"member":{"reference":"Practitioner/lw"},"period":{"start":"2026-12-06"}}]}`)
		if got := owners(); got != before {
			t.Errorf("owners before the handover: %s, want %s", got, before)
		}
		handover := `{"resourceType":"CareTeam","id":"team-ward","status":"active","subject":{"reference":"Patient/ward"},"participant":[
			{` + coordinator + `,"member":{"reference":"Practitioner/cc"},"period":{"start":"2026-01-01","end":"2026-11-30"}},
			{` + coordinator + `,"member":{"reference":"Practitioner/lw"},"period":{"start":"2026-11-30"}}]}`
		// One who still coordinates Ward in another active team keeps them.
		mdt := `{"resourceType":"CareTeam","id":"team-mdt","status":"active","subject":{"reference":"Patient/ward"},"participant":[
			{` + coordinator + `,"member":{"reference":"Practitioner/cc"},"period":{"start":"2026-01-01"}}]}`
		c.put(mdt)
		c.put(handover)
		if got := owners(); got != before {
			t.Errorf("owners after the handover of one coordinating Ward in another team: %s, want %s", got, before)
		}
		if r := c.do("DELETE", "/CareTeam/team-mdt", ""); r.status != http.StatusNoContent && r.status != http.StatusOK {
			t.Fatalf("DELETE CareTeam/team-mdt: %d %s", r.status, r.body)
		}
		c.put(strings.Replace(handover, `"end":"2026-11-30"`, `"end":"2026-11-29"`, 1))
		if got := owners(); got != handedToLW {
			t.Errorf("owners after the handover: %s, want %s", got, handedToLW)
		}
		if st := str(c.do("GET", "/Task/started", "").want(http.StatusOK), "status"); st != "in-progress" {
			t.Errorf("a reminder handed over is %s, want in-progress", st)
		}
	})
}

// ccReminders writes reminders of Ward owned by Practitioner/cc (open,
// started, done and cancelled), one owned by Practitioner/gp and one of
// Clark owned by Practitioner/cc, and returns a function listing their
// owners.
func ccReminders(c *client) func() string {
	task := func(id, status, owner string) string {
		return fmt.Sprintf(`{"resourceType":"Task","id":%q,"status":%q,"intent":"plan","code":{"coding":[{"system":%q,"code":"pcsp-review"}]},
			"for":{"reference":"Patient/ward"},"focus":{"reference":"CarePlan/pcsp-ward"},"owner":{"reference":%q},"restriction":{"period":{"end":"2026-12-10"}}}`,
			id, status, care.SystemCareTask, owner)
	}
	c.put(task("open", "requested", "Practitioner/cc"))
	c.put(task("started", "in-progress", c.base+"/Practitioner/cc"))
	c.put(task("done", "completed", "Practitioner/cc"))
	c.put(task("gone", "cancelled", "Practitioner/cc"))
	c.put(task("nurse", "requested", "Practitioner/gp"))
	c.put(strings.ReplaceAll(task("clark", "requested", "Practitioner/cc"), `"Patient/ward"`, `"Patient/clark"`))
	return func() string {
		var out []string
		for _, id := range []string{"open", "started", "done", "gone", "nurse", "clark"} {
			out = append(out, id+"="+str(c.do("GET", "/Task/"+id, "").want(http.StatusOK), "owner", "reference"))
		}
		return strings.Join(out, " ")
	}
}

// handedToLW is what ccReminders lists once Ward's open reminders of
// Practitioner/cc were handed over to Practitioner/lw.
const handedToLW = "open=Practitioner/lw started=Practitioner/lw done=Practitioner/cc gone=Practitioner/cc nurse=Practitioner/gp clark=Practitioner/cc"

// wardTeam is an active CareTeam of Ward of members in a coordinator's
// role (Practitioner/id), with no end to their part, and one in another
// role.
func wardTeam(id string, coordinators ...string) string {
	parts := []string{`{"role":[{"text":"District nurse"}],"member":{"reference":"Practitioner/gp"}}`}
	for _, m := range coordinators {
		parts = append(parts, `{"role":[{"coding":[{"system":"http://snomed.info/sct","code":"768820003"}]}],"member":{"reference":"Practitioner/`+m+`"}}`)
	}
	return `{"resourceType":"CareTeam","id":"` + id + `","status":"active","subject":{"reference":"Patient/ward"},"participant":[` + strings.Join(parts, ",") + `]}`
}

// TestHandoverWhenTakenOutOfTeam: a coordinator taken out of Ward's
// CareTeam without an end to their part hands her over as one whose part
// ended: their open reminders of her go, with the write, to the team's
// coordinator now. They keep them while they coordinate her in another
// active team (one the same transaction writes too), and while the team
// has no coordinator now.
func TestHandoverWhenTakenOutOfTeam(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		c.put(wardTeam("team-ward", "cc"))
		owners := ccReminders(c)
		before := owners()
		kept := func(when string) {
			t.Helper()
			if got := owners(); got != before {
				t.Errorf("owners %s: %s, want %s", when, got, before)
			}
		}

		tx := `{"resourceType":"Bundle","type":"transaction","entry":[
			{"resource":` + wardTeam("team-ward", "lw") + `,"request":{"method":"PUT","url":"CareTeam/team-ward"}},
			{"resource":` + wardTeam("team-mdt", "cc") + `,"request":{"method":"PUT","url":"CareTeam/team-mdt"}}]}`
		c.do("POST", "", tx).want(http.StatusOK)
		kept("once taken out of a team while coordinating Ward in another")
		c.put(wardTeam("team-mdt"))
		kept("once taken out of their other team, which has no coordinator now")
		c.put(wardTeam("team-ward", "cc"))
		kept("once back in the team")
		c.put(wardTeam("team-ward"))
		kept("once taken out of a team with no coordinator now")
		c.put(wardTeam("team-ward", "cc", "lw"))
		kept("once another coordinator joined")
		c.put(wardTeam("team-ward", "lw"))
		if got := owners(); got != handedToLW {
			t.Errorf("owners once taken out of the team: %s, want %s", got, handedToLW)
		}
		if st := str(c.do("GET", "/Task/started", "").want(http.StatusOK), "status"); st != "in-progress" {
			t.Errorf("a reminder handed over is %s, want in-progress", st)
		}
	})
}

// TestHandoverWhenTeamEnds: a CareTeam of Ward deleted, or written as
// inactive or entered in error, hands her coordinator's open reminders of
// her, with the write, to the coordinator of her other active team, as
// one taken out of the team does; unless they coordinate her in another
// active team too, and they keep them while no other team has a
// coordinator.
func TestHandoverWhenTeamEnds(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		c.put(wardTeam("team-ward", "cc"))
		c.put(wardTeam("team-mdt"))
		owners := ccReminders(c)
		before := owners()
		remove := func() {
			t.Helper()
			if r := c.do("DELETE", "/CareTeam/team-ward", ""); r.status != http.StatusNoContent && r.status != http.StatusOK {
				t.Fatalf("DELETE CareTeam/team-ward: %d %s", r.status, r.body)
			}
		}
		remove()
		if got := owners(); got != before {
			t.Errorf("owners once the team was deleted, no other team having a coordinator: %s, want %s", got, before)
		}

		c.put(wardTeam("team-mdt", "lw", "cc"))
		c.put(wardTeam("team-ward", "cc"))
		remove()
		if got := owners(); got != before {
			t.Errorf("owners once the team was deleted, its coordinator coordinating Ward in another: %s, want %s", got, before)
		}

		// A transaction that deletes the team and writes the other hands
		// over to the other's coordinator as the transaction leaves it,
		// though it deletes before it writes anything else.
		c.put(wardTeam("team-ward", "cc"))
		c.put(wardTeam("team-mdt"))
		replace := func(coordinator string) string {
			return `{"resourceType":"Bundle","type":"transaction","entry":[
				{"resource":` + wardTeam("team-mdt", coordinator) + `,"request":{"method":"PUT","url":"CareTeam/team-mdt"}},
				{"request":{"method":"DELETE","url":"CareTeam/team-ward"}}]}`
		}
		c.do("POST", "", replace("cc")).want(http.StatusOK)
		if got := owners(); got != before {
			t.Errorf("owners once a transaction deleted the team and made its coordinator the other's: %s, want %s", got, before)
		}
		c.put(wardTeam("team-ward", "cc"))
		c.put(wardTeam("team-mdt"))
		c.do("POST", "", replace("lw")).want(http.StatusOK)
		if got := owners(); got != handedToLW {
			t.Errorf("owners once a transaction deleted the team and gave the other a coordinator: %s, want %s", got, handedToLW)
		}

		c.put(wardTeam("team-mdt", "lw"))
		for _, end := range []string{"inactive", "entered-in-error", "deleted"} {
			c.put(wardTeam("team-ward", "cc"))
			ccReminders(c)
			if end == "deleted" {
				remove()
			} else {
				c.put(strings.Replace(wardTeam("team-ward", "cc"), `"status":"active"`, `"status":"`+end+`"`, 1))
			}
			if got := owners(); got != handedToLW {
				t.Errorf("owners once the team was %s: %s, want %s", end, got, handedToLW)
			}
		}
		if st := str(c.do("GET", "/Task/started", "").want(http.StatusOK), "status"); st != "in-progress" {
			t.Errorf("a reminder handed over is %s, want in-progress", st)
		}
	})
}

// TestRemeasureOfVersionedPAM: a re-measurement reminder an app wrote
// about a version of a PAM (QuestionnaireResponse/pam-march/_history/1),
// or about it by its absolute URL, stays open when a backdated PAM is
// recorded or that PAM is amended, and closes on a new PAM, as one
// naming the PAM as QuestionnaireResponse/pam-march does.
func TestRemeasureOfVersionedPAM(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		c.put(pamResponse("pam-march", "completed", "2026-03-31", "2", "50"))
		for id, focus := range map[string]string{"versioned": "QuestionnaireResponse/pam-march/_history/1", "absolute": c.base + "/QuestionnaireResponse/pam-march"} {
			c.put(fmt.Sprintf(`{"resourceType":"Task","id":%q,"status":"requested","intent":"plan","code":{"coding":[{"system":%q,"code":"pam-remeasure"}]},
				"for":{"reference":"Patient/ward"},"focus":{"reference":%q},"restriction":{"period":{"end":"2026-09-30"}}}`, id, care.SystemCareTask, focus))
		}
		statuses := func() string {
			return str(c.do("GET", "/Task/versioned", "").want(http.StatusOK), "status") + " " + str(c.do("GET", "/Task/absolute", "").want(http.StatusOK), "status")
		}
		c.put(pamResponse("pam-old", "completed", "2025-01-01", "2", "48"))
		if got := statuses(); got != "requested requested" {
			t.Errorf("reminders after a backdated PAM: %s, want requested", got)
		}
		c.put(pamResponse("pam-march", "amended", "2026-03-31", "2", "51"))
		if got := statuses(); got != "requested requested" {
			t.Errorf("reminders after their PAM was amended: %s, want requested", got)
		}
		c.put(pamResponse("pam-new", "completed", "2026-11-01", "3", "60"))
		if got := statuses(); got != "completed completed" {
			t.Errorf("reminders after a new PAM: %s, want completed", got)
		}
	})
}

// TestHandoverWhenTakenOver: a handover written before the new
// coordinator's part begins leaves the reminders with the one handing
// over; once that part has begun (and the other's ended), the next run
// of the reminders gives them the open ones.
func TestHandoverWhenTakenOver(t *testing.T) {
	var now atomic.Pointer[time.Time]
	now.Store(&today)
	eachEngine(t, care.Config{Now: func() time.Time { return *now.Load() }}, func(t *testing.T, c *client) {
		now.Store(&today)
		population(c)
		coordinator := `"role":[{"coding":[{"system":"http://snomed.info/sct","code":"768820003"}]}]`
		c.put(`{"resourceType":"CareTeam","id":"team-ward","status":"active","subject":{"reference":"Patient/ward"},"participant":[
			{` + coordinator + `,"member":{"reference":"Practitioner/cc"},"period":{"start":"2026-01-01","end":"2026-12-04"}},
			{` + coordinator + `,"member":{"reference":"Practitioner/lw"},"period":{"start":"2026-12-05"}}]}`)
		walkGoal(c)
		c.put(pcsp("active", "2026-12-10", "goal-walk"))
		c.do("POST", "/Task/$generate-reminders", "").want(http.StatusOK)
		owner := func() string {
			tasks := entries(c.do("GET", "/Task?patient=Patient/ward", "").want(http.StatusOK))
			if len(tasks) != 1 {
				t.Fatalf("%d reminders, want 1", len(tasks))
			}
			return str(tasks[0], "owner", "reference")
		}
		if got := owner(); got != "Practitioner/cc" {
			t.Fatalf("reminder before the handover owned by %s, want Practitioner/cc", got)
		}
		later := today.AddDate(0, 0, 5)
		now.Store(&later)
		rem := c.do("POST", "/Task/$generate-reminders", "").want(http.StatusOK)
		if got := paramsText(rem); got != "created=0" {
			t.Errorf("reminders after the handover: %s", got)
		}
		if got := owner(); got != "Practitioner/lw" {
			t.Errorf("reminder after the handover owned by %s, want Practitioner/lw", got)
		}
	})
}
