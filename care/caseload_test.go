package care_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"carefhir/care"
	"carefhir/server"
	"carefhir/server/access"
	"carefhir/store"
)

// TestStoredPatientReferences: a record naming its patient by a version
// (Patient/ward/_history/1) counts for that patient in caseloads and
// cohorts, and a subject that is no reference to a Patient ("Patient/a,b")
// is no one's, rather than a caseload failing with 500.
func TestStoredPatientReferences(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		c.put(`{"resourceType":"CareTeam","id":"team-ward","status":"active","subject":{"reference":"Patient/ward/_history/1"},
			"participant":[{"member":{"reference":"Practitioner/cc"}}]}`)
		c.put(`{"resourceType":"CareTeam","id":"team-odd","status":"active","subject":{"reference":"Patient/baker,clark"},
			"participant":[{"member":{"reference":"Practitioner/cc"}}]}`)
		c.put(`{"resourceType":"Task","id":"call-ward","status":"requested","intent":"order","for":{"reference":"Patient/ward/_history/1"}}`)
		load := caseloadOf(t, c, "/Practitioner/cc/$caseload")
		if len(load) != 1 || load["Patient/ward"] == nil {
			t.Fatalf("caseload: %v, want Patient/ward alone", load)
		}
		checkParts(t, load["Patient/ward"], map[string]any{"openTasks": float64(1)})
		if got := caseloadOf(t, c, "/CareTeam/team-odd/$caseload"); len(got) != 0 {
			t.Errorf("caseload of a CareTeam whose subject is no Patient: %v", got)
		}

		c.put(`{"resourceType":"Condition","id":"dm-clark","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},
			"code":{"coding":[{"system":"http://snomed.info/sct","code":"44054006"}]},"subject":{"reference":"Patient/clark/_history/1"}}`)
		g := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"practice","valueString":"Y12345"},
			{"name":"condition","valueString":"`+diabetes+`"}]}`).want(http.StatusCreated)
		if got := members(g); got != "Patient/clark=<nil> Patient/ward=<nil>" {
			t.Errorf("cohort: %s", got)
		}
	})
}

// TestCaseloadCursorPastTheEnd: a cursor past the end of the caseload, as
// one becomes when the patients after it leave the caseload between
// pages, is a page of no patients with the total, not a 500.
func TestCaseloadCursorPastTheEnd(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		next := nextCursor(c.do("GET", "/Organization/y12345/$caseload?_count=2", "").want(http.StatusOK))
		c.do("DELETE", "/Patient/ward", "").want(http.StatusNoContent)
		page := c.do("GET", "/Organization/y12345/$caseload?_count=2&cursor="+next, "").want(http.StatusOK)
		if got := paramsText(page); got != "total=2" {
			t.Errorf("%s, want total=2 alone", got)
		}
	})
}

// nextCursor returns the next value of a caseload, "" when it has none.
func nextCursor(caseload map[string]any) string {
	list, _ := caseload["parameter"].([]any)
	for _, x := range list {
		if str(x, "name") == "next" {
			return str(x, "valueString")
		}
	}
	return ""
}

// TestCaseloadHandedOver: a coordinator whose part in a CareTeam ended
// (participant.period.end past, as when they hand the patient over) no
// longer holds the patient in their caseload, nor gets their reminders;
// one whose part ends today, or later, still does, as does the team's
// other participant.
func TestCaseloadHandedOver(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		for id, end := range map[string]string{"ward": "2026-11-30", "baker": "2026-12-01T08:59:00Z", "clark": "2026-12-01", "lee": "2026-12-01T09:30:00Z"} {
			c.put(`{"resourceType":"CareTeam","id":"team-` + id + `","status":"active","subject":{"reference":"Patient/` + id + `"},"participant":[
				{"member":{"reference":"` + c.base + `/Practitioner/cc"},"period":{"start":"2026-01-01","end":"` + end + `"}},
				{"member":{"reference":"Practitioner/gp"},"period":{"start":"2026-01-01"}}]}`)
		}
		if got := caseloadOf(t, c, "/Practitioner/cc/$caseload"); len(got) != 2 || got["Patient/clark"] == nil || got["Patient/lee"] == nil {
			t.Errorf("caseload of the coordinator: %v, want Patient/clark and Patient/lee", got)
		}
		if got := caseloadOf(t, c, "/Practitioner/gp/$caseload"); len(got) != 4 {
			t.Errorf("caseload of the GP: %v, want all four", got)
		}

		// Reminders go to the coordinator who took the patient over.
		coordinator := `"role":[{"coding":[{"system":"http://snomed.info/sct","code":"768820003"}]}]`
		c.put(`{"resourceType":"CareTeam","id":"team-ward","status":"active","subject":{"reference":"Patient/ward"},"participant":[
			{` + coordinator + `,"member":{"reference":"Practitioner/cc"},"period":{"start":"2026-01-01","end":"2026-11-30"}},
			{` + coordinator + `,"member":{"reference":"Practitioner/lw"},"period":{"start":"2026-11-30"}}]}`)
		wantReviewOwner(t, c, "Practitioner/lw")
	})
}

// TestCaseloadNotYetTakenOver: a coordinator whose part in a CareTeam
// begins later (participant.period.start to come) does not hold the
// patient in their caseload yet, nor gets their reminders, while the
// one handing over does; one whose part began today, or a month or year
// ago, holds them.
func TestCaseloadNotYetTakenOver(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		for id, start := range map[string]string{"ward": "2026-12-02", "baker": "2026-12-01T09:30:00Z", "clark": "2026-12-01", "lee": "2026-12"} {
			c.put(`{"resourceType":"CareTeam","id":"team-` + id + `","status":"active","subject":{"reference":"Patient/` + id + `"},"participant":[
				{"member":{"reference":"Practitioner/cc"},"period":{"start":"` + start + `"}}]}`)
		}
		if got := caseloadOf(t, c, "/Practitioner/cc/$caseload"); len(got) != 2 || got["Patient/clark"] == nil || got["Patient/lee"] == nil {
			t.Errorf("caseload of the coordinator: %v, want Patient/clark and Patient/lee", got)
		}

		// Reminders go to the coordinator handing over until the other
		// takes over.
		coordinator := `"role":[{"coding":[{"system":"http://snomed.info/sct","code":"768820003"}]}]`
		c.put(`{"resourceType":"CareTeam","id":"team-ward","status":"active","subject":{"reference":"Patient/ward"},"participant":[
			{` + coordinator + `,"member":{"reference":"Practitioner/lw"},"period":{"start":"2026-12-02"}},
			{` + coordinator + `,"member":{"reference":"Practitioner/cc"},"period":{"start":"2026-01-01","end":"2026-12-01"}}]}`)
		wantReviewOwner(t, c, "Practitioner/cc")
	})
}

// wantReviewOwner checks that the PCSP review reminder of Patient/ward,
// whose CareTeam is stored, goes to owner.
func wantReviewOwner(t *testing.T, c *client, owner string) {
	t.Helper()
	walkGoal(c)
	c.put(pcsp("active", "2026-12-10", "goal-walk"))
	c.do("POST", "/Task/$generate-reminders", "").want(http.StatusOK)
	tasks := entries(c.do("GET", "/Task?patient=Patient/ward", "").want(http.StatusOK))
	if len(tasks) != 1 || str(tasks[0], "owner", "reference") != owner {
		t.Errorf("reminders %v, want one owned by %s", tasks, owner)
	}
}

// TestCaseloadUnreadablePart: a part in a CareTeam whose start FHIR allows
// but no calendar has (a leap second) is no current part: the patient is
// not in the practitioner's caseload, and under the care-team rule the
// practitioner cannot read their record, where a part begun on a day that
// exists gives both. One begun on a day its month lacks (30 February) is
// refused when written.
func TestCaseloadUnreadablePart(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		team := func(id, start string) string {
			return `{"resourceType":"CareTeam","id":"team-` + id + `","status":"active","subject":{"reference":"Patient/` + id + `"},"participant":[
				{"member":{"reference":"Practitioner/cc"},"period":{"start":"` + start + `"}}]}`
		}
		c.do("PUT", "/CareTeam/team-ward", team("ward", "2020-02-30T09:00:00Z")).want(http.StatusBadRequest)
		for id, start := range map[string]string{"baker": "2016-12-31T23:59:60Z", "clark": "2020-02-28T09:00:00Z"} {
			c.put(team(id, start))
		}
		if got := caseloadOf(t, c, "/Practitioner/cc/$caseload"); len(got) != 1 || got["Patient/clark"] == nil {
			t.Errorf("caseload of the coordinator: %v, want Patient/clark alone", got)
		}
		c.token = "cc"
		c.do("GET", "/Patient/clark", "").want(http.StatusOK)
		for _, id := range []string{"ward", "baker"} {
			c.do("GET", "/Patient/"+id, "").want(http.StatusNotFound)
		}
	}, func(sc *server.Config) { sc.AccessPolicy = access.CareTeamPolicy })
}

// TestCaseloadStoredDaylessPart: a CareTeam stored before writes refused a
// date on a day its month lacks, its part begun on 30 February, is still
// read by care coordination: the part holds never, so the patient is not in
// the practitioner's caseload, the team's own caseload is its subject, and
// a PATCH that corrects the date is applied, after which the patient is in
// the caseload.
func TestCaseloadStoredDaylessPart(t *testing.T) {
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			st := e.Open(t)
			c := newClient(t, st, care.Config{})
			population(c)
			team := `{"resourceType":"CareTeam","id":"team-ward","meta":{"versionId":"1","lastUpdated":"2020-01-02T03:04:05.000Z"},"status":"active","subject":{"reference":"Patient/ward"},"participant":[{"member":{"reference":"Practitioner/cc"},"period":{"start":"2020-02-30T09:00:00Z"}}]}`
			if err := st.Put(t.Context(), &store.Write{Type: "CareTeam", ID: "team-ward", LastUpdated: time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC), JSON: []byte(team)}); err != nil {
				t.Fatal(err)
			}
			if got := caseloadOf(t, c, "/Practitioner/cc/$caseload"); len(got) != 0 {
				t.Errorf("caseload of the coordinator: %v, want none", got)
			}
			if got := caseloadOf(t, c, "/CareTeam/team-ward/$caseload"); len(got) != 1 || got["Patient/ward"] == nil {
				t.Errorf("caseload of the team: %v, want Patient/ward alone", got)
			}
			c.do("PATCH", "/CareTeam/team-ward", `[{"op":"replace","path":"/participant/0/period/start","value":"2020-02-28T09:00:00Z"}]`,
				"Content-Type", "application/json-patch+json").want(http.StatusOK)
			if got := caseloadOf(t, c, "/Practitioner/cc/$caseload"); len(got) != 1 || got["Patient/ward"] == nil {
				t.Errorf("caseload of the coordinator once the date is corrected: %v, want Patient/ward alone", got)
			}
		})
	}
}

// TestAbsoluteReferences: a record naming its patient, or a CareTeam its
// participant, by an absolute URL under this server's base counts as the
// relative reference does, in caseloads, PCSPs, reminders, cohorts and PAM
// scoring; one naming another server's Patient/ward or Practitioner/cc
// is not this server's, whatever its id.
func TestAbsoluteReferences(t *testing.T) {
	const other = "https://other.example/fhir"
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		team := func(id, subject, participants string) {
			c.put(`{"resourceType":"CareTeam","id":"` + id + `","status":"active","subject":{"reference":"` + subject + `"},"participant":[` + participants + `]}`)
		}
		team("team-ward", c.base+"/Patient/ward", `{"member":{"reference":"Practitioner/cc"}}`)
		team("team-baker", other+"/Patient/baker", `{"member":{"reference":"Practitioner/cc"}}`)
		// cc's own part ended; another server's Practitioner/cc goes on.
		team("team-clark", "Patient/clark", `{"member":{"reference":"Practitioner/cc"},"period":{"end":"2020-01-01"}},
			{"member":{"reference":"`+other+`/Practitioner/cc"}}`)

		c.put(`{"resourceType":"Goal","id":"goal-walk","lifecycleStatus":"active","description":{"text":"Walk to the shops"},"subject":{"reference":"` + c.base + `/Patient/ward"}}`)
		plan := strings.ReplaceAll(pcsp("active", "2026-12-10", "goal-walk"), `{"reference":"Patient/ward"}`, `{"reference":"`+c.base+`/Patient/ward"}`)
		c.put(plan)
		c.do("PUT", "/QuestionnaireResponse/pam-ward", strings.Replace(pamResponse("pam-ward", "completed", "2026-11-01T10:00:00Z", "3", "50"),
			`"reference":"Patient/ward"`, `"reference":"`+c.base+`/Patient/ward"`, 1)).want(http.StatusCreated)
		oo := c.do("PUT", "/QuestionnaireResponse/pam-other", strings.Replace(pamResponse("pam-other", "completed", "2026-11-01T10:00:00Z", "3", "50"),
			`"reference":"Patient/ward"`, `"reference":"`+other+`/Patient/ward"`, 1)).want(http.StatusUnprocessableEntity)
		if got := issues(oo); !strings.Contains(got, "QuestionnaireResponse.subject.reference") {
			t.Errorf("a PAM of another server's patient: %s", got)
		}

		load := caseloadOf(t, c, "/Practitioner/cc/$caseload")
		if len(load) != 1 || load["Patient/ward"] == nil {
			t.Fatalf("caseload: %v, want Patient/ward alone", load)
		}
		checkParts(t, load["Patient/ward"], map[string]any{"carePlan": "CarePlan/pcsp-ward", "pamLevel": float64(2)})

		c.do("POST", "/Task/$generate-reminders", "").want(http.StatusOK)
		tasks := entries(c.do("GET", "/Task?patient=Patient/ward&code="+care.SystemCareTask+"|pcsp-review", "").want(http.StatusOK))
		if len(tasks) != 1 {
			t.Errorf("review reminders of Ward: %v, want one", tasks)
		}

		c.put(`{"resourceType":"Condition","id":"dm-clark","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},
			"code":{"coding":[{"system":"http://snomed.info/sct","code":"44054006"}]},"subject":{"reference":"` + c.base + `/Patient/clark"}}`)
		c.put(`{"resourceType":"Condition","id":"dm-baker","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},
			"code":{"coding":[{"system":"http://snomed.info/sct","code":"44054006"}]},"subject":{"reference":"` + other + `/Patient/baker"}}`)
		g := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"practice","valueString":"Y12345"},
			{"name":"condition","valueString":"`+diabetes+`"}]}`).want(http.StatusCreated)
		if got := members(g); got != "Patient/clark=<nil> Patient/ward=<nil>" {
			t.Errorf("cohort: %s, want Patient/clark and Patient/ward", got)
		}
	})
}

// TestCaseloadReadsThePage: a page of a caseload reads the appointments
// and tasks of the patients on that page, not of the whole caseload again
// for every page, and answers them as before; what the order needs (PAM
// levels for -pam-level) is read for everyone.
func TestCaseloadReadsThePage(t *testing.T) {
	counter := &matchCounter{types: map[string]bool{"Appointment": true, "Task": true}}
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		c.put(`{"resourceType":"Organization","id":"page","name":"Paging Surgery"}`)
		const patients = 6
		for i := range patients {
			id := fmt.Sprintf("p%d", i)
			c.put(`{"resourceType":"Patient","id":"` + id + `","name":[{"family":"Page","given":["` + id + `"]}],"generalPractitioner":[{"reference":"Organization/page"}]}`)
			c.put(`{"resourceType":"Appointment","id":"appt-` + id + `","status":"booked","start":"2026-12-1` + fmt.Sprint(i) + `T10:00:00Z","end":"2026-12-1` + fmt.Sprint(i) + `T10:30:00Z",
				"participant":[{"actor":{"reference":"Patient/` + id + `"},"status":"accepted"},{"actor":{"reference":"Practitioner/cc"},"status":"accepted"}]}`)
			c.put(`{"resourceType":"Task","id":"task-` + id + `","status":"requested","intent":"plan","for":{"reference":"Patient/` + id + `"}}`)
			c.put(strings.ReplaceAll(pamResponse("pam-"+id, "completed", "2026-11-01T10:00:00Z", "2", fmt.Sprint(40+5*i)), "Patient/ward", "Patient/"+id))
		}
		for _, tc := range []struct{ sort, want string }{
			{"name", "Patient/p0 Patient/p1"},
			{"-pam-level", "Patient/p5 Patient/p4"},
		} {
			counter.n.Store(0)
			load := caseloadOf(t, c, "/Organization/page/$caseload?_count=2&_sort="+tc.sort)
			var got []string
			for ref, parts := range load {
				got = append(got, ref)
				id := strings.TrimPrefix(ref, "Patient/")
				if str(parts, "nextAppointment", "reference") != "Appointment/appt-"+id || get(parts, "openTasks") != float64(1) {
					t.Errorf("_sort=%s: %s has %v", tc.sort, ref, parts)
				}
			}
			if len(got) != 2 || !strings.Contains(tc.want, got[0]) || !strings.Contains(tc.want, got[1]) {
				t.Errorf("_sort=%s: the page holds %v, want %s", tc.sort, got, tc.want)
			}
			if n := counter.n.Load(); n != 4 {
				t.Errorf("_sort=%s: a page of 2 of %d patients read %d appointments and tasks, want 4", tc.sort, patients, n)
			}
		}
	}, func(sc *server.Config) { counter.Store = sc.Store; sc.Store = counter })
}

// matchCounter is an engine that counts the matches its searches of some
// types read, whole plans (store.Finder) or not.
type matchCounter struct {
	store.Store
	types map[string]bool
	n     atomic.Int64
}

func (s *matchCounter) Search(ctx context.Context, q store.Query) ([]*store.Version, error) {
	vs, err := s.Store.Search(ctx, q)
	if s.types[q.Type] {
		s.n.Add(int64(len(vs)))
	}
	return vs, err
}

func (s *matchCounter) Find(ctx context.Context, q store.Query) (*store.Page, error) {
	page, err := s.Store.(store.Finder).Find(ctx, q)
	if page != nil && s.types[q.Type] {
		s.n.Add(int64(len(page.Matches)))
	}
	return page, err
}

// TestCaseloadDeclinedAppointment: a booked Appointment the patient has
// declined (their participant status declined) is not their next
// appointment; the next one they have not declined is, and the declined
// one stays the next of another patient who accepted it.
func TestCaseloadDeclinedAppointment(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		for _, id := range []string{"ward", "baker"} {
			c.put(`{"resourceType":"CareTeam","id":"team-` + id + `","status":"active","subject":{"reference":"Patient/` + id + `"},
				"participant":[{"member":{"reference":"Practitioner/cc"}}]}`)
		}
		c.put(`{"resourceType":"Appointment","id":"group-1","status":"booked","start":"2026-12-05T10:00:00Z","end":"2026-12-05T10:30:00Z",
			"participant":[{"actor":{"reference":"Patient/ward"},"status":"declined"},{"actor":{"reference":"Patient/baker"},"status":"accepted"}]}`)
		c.put(`{"resourceType":"Appointment","id":"review-ward","status":"booked","start":"2026-12-08T10:00:00Z","end":"2026-12-08T10:30:00Z",
			"participant":[{"actor":{"reference":"Patient/ward"},"status":"accepted"}]}`)
		load := caseloadOf(t, c, "/Practitioner/cc/$caseload")
		checkParts(t, load["Patient/ward"], map[string]any{"nextAppointment": "Appointment/review-ward", "nextAppointmentStart": "2026-12-08T10:00:00Z"})
		checkParts(t, load["Patient/baker"], map[string]any{"nextAppointment": "Appointment/group-1", "nextAppointmentStart": "2026-12-05T10:00:00Z"})
	})
}

// TestCorrectedPAM: a PAM Observation marked corrected, which R4 gives
// as a final result changed since, still measures the patient: in the
// caseload and in cohorts by PAM level, as a corrected risk result ranks
// them.
func TestCorrectedPAM(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		c.do("PUT", "/QuestionnaireResponse/pam-1", pamResponse("pam-1", "completed", "2026-06-01T10:00:00Z", "2", "52.0")).want(http.StatusCreated)
		for _, o := range pamObservations(t, c, "pam-1") {
			o["status"] = "corrected"
			delete(o, "meta")
			b, err := json.Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			c.put(string(b))
		}
		checkParts(t, caseloadOf(t, c, "/Organization/y12345/$caseload")["Patient/ward"], map[string]any{"pamLevel": 2.0, "pamScore": 52.0})
		g := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"pamLevelMax","valueInteger":2}]}`).want(http.StatusCreated)
		if got := members(g); got != "Patient/ward=<nil>" {
			t.Errorf("cohort of PAM level 2 at most: %q, want Patient/ward", got)
		}
	})
}

// TestPAMRecordedElsewhere: a PAM result recorded in a GP system, coded by
// the configured SNOMED CT concepts alone (level and score each an
// Observation of its own, the level a quantity, 2 or 1.0, or an integer),
// counts in caseloads and cohorts as one taken here does.
func TestPAMRecordedElsewhere(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		obs := func(id, code, value string) string {
			return `{"resourceType":"Observation","id":"` + id + `","status":"final",` +
				`"code":{"coding":[{"system":"http://snomed.info/sct","code":"` + code + `"}]},` +
				`"subject":{"reference":"Patient/ward"},"effectiveDateTime":"2026-06-01T10:00:00Z",` + value + `}`
		}
		c.put(obs("gp-level", "962851000000103", `"valueQuantity":{"value":2}`))
		// The score's time and subject written otherwise, the same instant
		// and Patient.
		c.put(strings.Replace(strings.Replace(obs("gp-score", "925431000000109", `"valueQuantity":{"value":51.3}`),
			"2026-06-01T10:00:00Z", "2026-06-01T11:00:00+01:00", 1), `"Patient/ward"`, `"`+c.base+`/Patient/ward"`, 1))
		checkParts(t, caseloadOf(t, c, "/Organization/y12345/$caseload")["Patient/ward"], map[string]any{"pamLevel": 2.0, "pamScore": 51.3})
		g := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"pamLevelMax","valueInteger":2}]}`).want(http.StatusCreated)
		if got := members(g); got != "Patient/ward=<nil>" {
			t.Errorf("cohort of PAM level 2 at most: %q, want Patient/ward", got)
		}
		c.put(obs("gp-level", "962851000000103", `"valueInteger":3`))
		checkParts(t, caseloadOf(t, c, "/Organization/y12345/$caseload")["Patient/ward"], map[string]any{"pamLevel": 3.0})
		// A whole number written as a decimal is that level.
		c.put(obs("gp-level", "962851000000103", `"valueQuantity":{"value":1.0}`))
		checkParts(t, caseloadOf(t, c, "/Organization/y12345/$caseload")["Patient/ward"], map[string]any{"pamLevel": 1.0})
	})
}

// TestPAMScoreRecordedAlone: a PAM score a GP system records without a
// level (an Observation coded by the configured SNOMED CT concept alone)
// counts at the level its score falls in by the cut-offs, in caseloads,
// cohorts and reminders, the score's Observation standing for the result;
// a score that is no PAM score (over 100) does not count.
func TestPAMScoreRecordedAlone(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		wardCareTeam(c)
		score := func(id, when, value string) string {
			return `{"resourceType":"Observation","id":"` + id + `","status":"final",` +
				`"code":{"coding":[{"system":"http://snomed.info/sct","code":"925431000000109"}]},` +
				`"subject":{"reference":"Patient/ward"},"effectiveDateTime":"` + when + `","valueQuantity":{"value":` + value + `}}`
		}
		c.put(score("gp-score", "2026-03-31T10:00:00Z", "51.3"))
		wantScoreAloneCounted(t, c, 51.3)
		// Over 100 is no PAM score: it neither counts nor closes the
		// reminder.
		c.put(score("gp-odd", "2026-11-01T10:00:00Z", "150"))
		checkParts(t, caseloadOf(t, c, "/Organization/y12345/$caseload")["Patient/ward"], map[string]any{"pamLevel": 2.0, "pamScore": 51.3})
		if st := str(onlyRemeasure(t, c), "status"); st != "requested" {
			t.Errorf("reminder after a score over 100: %s, want requested", st)
		}
		// A level recorded the same day, a minute from its score, is one
		// measurement: the level counts, with that score, not a second
		// result made of the score.
		c.put(`{"resourceType":"Observation","id":"gp-level","status":"final","code":{"coding":[{"system":"http://snomed.info/sct","code":"962851000000103"}]},` +
			`"subject":{"reference":"Patient/ward"},"effectiveDateTime":"2026-03-31T10:01:00Z","valueInteger":3}`)
		checkParts(t, caseloadOf(t, c, "/Organization/y12345/$caseload")["Patient/ward"], map[string]any{"pamLevel": 3.0, "pamScore": 51.3, "pamChange": nil})
		// A later score alone re-measures: level 4 from 70.2, and the
		// reminder is done.
		c.put(score("gp-later", "2026-11-20T10:00:00Z", "70.2"))
		checkParts(t, caseloadOf(t, c, "/Organization/y12345/$caseload")["Patient/ward"], map[string]any{"pamLevel": 4.0, "pamScore": 70.2, "pamChange": 1.0})
		if st := str(onlyRemeasure(t, c), "status"); st != "completed" {
			t.Errorf("reminder after a later score: %s, want completed", st)
		}
		g := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"pamLevelMax","valueInteger":3},{"name":"practice","valueString":"Y12345"}]}`).want(http.StatusCreated)
		if got := members(g); strings.Contains(got, "Patient/ward") {
			t.Errorf("cohort of PAM level 3 at most: %q, want no Patient/ward (level 4)", got)
		}
	})
}

// TestPAMScoreOfTheDaysLevel: a GP system dating a measurement's level
// and score a minute apart records one measurement: the score is the
// level's, in caseloads, cohorts and reminders, and does not close the
// reminder about the level. A score alone derived from no response counts
// in cohorts however it is coded, and one dated by no effectiveDateTime
// makes no reminder (it says not when the next is due).
func TestPAMScoreOfTheDaysLevel(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		wardCareTeam(c)
		gp := func(id, patient, code, when, value string) string {
			return `{"resourceType":"Observation","id":"` + id + `","status":"final","code":{"coding":[{"system":"` + code + `"}]},` +
				`"subject":{"reference":"Patient/` + patient + `"}` + when + `,` + value + `}`
		}
		const level, score = `http://snomed.info/sct","code":"962851000000103`, `http://snomed.info/sct","code":"925431000000109`
		c.put(gp("gp-level", "ward", level, `,"effectiveDateTime":"2026-03-31T10:00:00Z"`, `"valueInteger":3`))
		rem := generateReminders(c, "2026-12-01")
		if got := paramsText(rem); !strings.HasPrefix(got, "created=1 ") {
			t.Fatalf("reminders: %s, want one", got)
		}
		c.put(gp("gp-score", "ward", score, `,"effectiveDateTime":"2026-03-31T10:01:00Z"`, `"valueQuantity":{"value":51.3}`))
		if task := onlyRemeasure(t, c); str(task, "status") != "requested" || str(task, "focus", "reference") != "Observation/gp-level" {
			t.Errorf("reminder after the day's score: %s about %s, want requested about Observation/gp-level", str(task, "status"), str(task, "focus", "reference"))
		}
		checkParts(t, caseloadOf(t, c, "/Organization/y12345/$caseload")["Patient/ward"], map[string]any{"pamLevel": 3.0, "pamScore": 51.3, "pamChange": nil})
		// carefhir's own score code, derived from no response, and a
		// score of no date.
		c.put(gp("own-code", "clark", `https://carefhir.example.org/fhir/CodeSystem/pam","code":"pam-score`, `,"effectiveDateTime":"2026-06-01T10:00:00Z"`, `"valueQuantity":{"value":40}`))
		c.put(gp("undated", "baker", score, ``, `"valueQuantity":{"value":40}`))
		g := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"pamLevelMax","valueInteger":2}]}`).want(http.StatusCreated)
		if got := members(g); !strings.Contains(got, "Patient/clark") || strings.Contains(got, "Patient/ward") {
			t.Errorf("cohort of PAM level 2 at most: %q, want Patient/clark (level 1 of 40) and not Patient/ward (level 3)", got)
		}
		generateReminders(c, "2026-12-01")
		if list := entries(c.do("GET", "/Task?patient=Patient/baker", "").want(http.StatusOK)); len(list) != 0 {
			t.Errorf("reminders of a PAM of no date: %v, want none", list)
		}
	})
}

// TestCaseloadPagingWhileItChanges: a coordinator paging through a
// caseload sees each patient once while it changes between pages: a
// patient who leaves it before the next page costs no one else their
// place, and one who joins ahead of the page read is not shown twice.
func TestCaseloadPagingWhileItChanges(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		pages := func(sort string, between func(page int)) []string {
			var seen []string
			cursor := ""
			for page := 0; page < 10; page++ {
				if page > 0 {
					between(page)
				}
				path := "/Organization/y12345/$caseload?_count=1&_sort=" + sort
				if cursor != "" {
					path += "&cursor=" + url.QueryEscape(cursor)
				}
				p := c.do("GET", path, "").want(http.StatusOK)
				list, _ := p["parameter"].([]any)
				for _, x := range list {
					if str(x, "name") == "patient" {
						seen = append(seen, str(x, "part", 0, "valueReference", "reference"))
					}
				}
				cursor = nextCursor(p)
				if cursor == "" {
					return seen
				}
			}
			t.Fatalf("_sort=%s: no last page after 10: %v", sort, seen)
			return nil
		}
		// Baker moves practice once the first page (Baker) is read.
		got := pages("name", func(page int) {
			if page == 1 {
				c.put(`{"resourceType":"Patient","id":"baker","name":[{"family":"Baker","given":["Pat"]}],"birthDate":"1966-01-20","generalPractitioner":[{"reference":"Organization/y99999"}]}`)
			}
		})
		if strings.Join(got, " ") != "Patient/baker Patient/clark Patient/ward" {
			t.Errorf("pages by name while Baker left: %v", got)
		}
		// Adams registers once the first page (Clark) is read: ahead of
		// it, and so not on a later page, where Clark would come again.
		got = pages("name", func(page int) {
			if page == 1 {
				c.put(`{"resourceType":"Patient","id":"adams","name":[{"family":"Adams","given":["Pat"]}],"birthDate":"1950-01-20","generalPractitioner":[{"reference":"Organization/y12345"}]}`)
			}
		})
		if strings.Join(got, " ") != "Patient/clark Patient/ward" {
			t.Errorf("pages by name while Adams joined: %v", got)
		}
	})
}

// TestCaseloadByReviewDue: _sort=review-due orders reviews by the day
// each is due by, a month or a year alone by its last day as overdue
// reads it: a review overdue on 20 November comes before one due in
// December or in the year 2026, and those two, due by the same day, come
// by patient, on one page and paged one by one alike.
func TestCaseloadByReviewDue(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		for id, review := range map[string]string{"ward": "2026", "baker": "2026-11-20", "clark": "2026-12"} {
			c.put(`{"resourceType":"Goal","id":"goal-` + id + `","lifecycleStatus":"active","description":{"text":"Walk to the shops"},"subject":{"reference":"Patient/` + id + `"}}`)
			plan := strings.ReplaceAll(pcsp("active", review, id), `"Goal/`+id+`"`, `"Goal/goal-`+id+`"`)
			plan = strings.ReplaceAll(strings.ReplaceAll(plan, "Patient/ward", "Patient/"+id), "pcsp-ward", "pcsp-"+id)
			c.put(plan)
		}
		patientsOf := func(page map[string]any) []string {
			var out []string
			list, _ := page["parameter"].([]any)
			for _, p := range list {
				if str(p, "name") == "patient" {
					out = append(out, str(p, "part", 0, "valueReference", "reference"))
				}
			}
			return out
		}
		want := "Patient/baker Patient/clark Patient/ward"
		if got := strings.Join(patientsOf(c.do("GET", "/Organization/y12345/$caseload?_sort=review-due", "").want(http.StatusOK)), " "); got != want {
			t.Errorf("caseload by review date: %s, want %s", got, want)
		}
		var paged []string
		for path, n := "/Organization/y12345/$caseload?_sort=review-due&_count=1", 0; n < 5; n++ {
			page := c.do("GET", path, "").want(http.StatusOK)
			paged = append(paged, patientsOf(page)...)
			cursor := nextCursor(page)
			if cursor == "" {
				break
			}
			path = "/Organization/y12345/$caseload?_sort=review-due&_count=1&cursor=" + cursor
		}
		if got := strings.Join(paged, " "); got != want {
			t.Errorf("caseload by review date, paged: %s, want %s", got, want)
		}
	})
}

// TestPAMScoreImportedNamingItsSource: a PAM score a GP Connect import
// wrote, its derivedFrom naming the source's response by display alone,
// is a result recorded in a GP system in cohorts and reminders, as in
// caseloads: a derivedFrom without a reference is no response here.
func TestPAMScoreImportedNamingItsSource(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		wardCareTeam(c)
		c.put(`{"resourceType":"Observation","id":"gp-score","status":"final",` +
			`"code":{"coding":[{"system":"http://snomed.info/sct","code":"925431000000109"}]},` +
			`"subject":{"reference":"Patient/ward"},"effectiveDateTime":"2026-03-31T10:00:00Z","valueQuantity":{"value":50},` +
			`"derivedFrom":[{"display":"QuestionnaireResponse/abc in the source record"}]}`)
		wantScoreAloneCounted(t, c, 50)
	})
}

// wantScoreAloneCounted checks that Patient/ward's one PAM result, the
// level 2 score of Observation/gp-score recorded in a GP system, counts
// in the caseload, in a cohort of PAM level 2 at most, and in the
// re-measurement reminder its Observation is the focus of.
func wantScoreAloneCounted(t *testing.T, c *client, score float64) {
	t.Helper()
	checkParts(t, caseloadOf(t, c, "/Organization/y12345/$caseload")["Patient/ward"], map[string]any{"pamLevel": 2.0, "pamScore": score})
	g := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"pamLevelMax","valueInteger":2}]}`).want(http.StatusCreated)
	if got := members(g); got != "Patient/ward=<nil>" {
		t.Errorf("cohort of PAM level 2 at most: %q, want Patient/ward", got)
	}
	rem := generateReminders(c, "2026-12-01")
	if got := paramsText(rem); !strings.HasPrefix(got, "created=1 ") {
		t.Fatalf("reminders: %s, want one", got)
	}
	if got := str(onlyRemeasure(t, c), "focus", "reference"); got != "Observation/gp-score" {
		t.Errorf("reminder about %s, want Observation/gp-score", got)
	}
}

// TestPAMRecordedElsewhereDatedOtherwise: a PAM result a GP system dates
// by an instant or a period (a level over the minutes it took, its score
// at the end) is dated as a dateTime one is, by the period's end: level
// and score are one result, and a re-measurement is due from it.
func TestPAMRecordedElsewhereDatedOtherwise(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		wardCareTeam(c)
		obs := func(id, code, effective, value string) string {
			return `{"resourceType":"Observation","id":"` + id + `","status":"final",` +
				`"code":{"coding":[{"system":"http://snomed.info/sct","code":"` + code + `"}]},` +
				`"subject":{"reference":"Patient/ward"},` + effective + `,` + value + `}`
		}
		c.put(obs("gp-level", "962851000000103", `"effectivePeriod":{"start":"2026-03-31T10:00:00Z","end":"2026-03-31T10:20:00Z"}`, `"valueInteger":2`))
		c.put(obs("gp-score", "925431000000109", `"effectiveInstant":"2026-03-31T10:20:00Z"`, `"valueQuantity":{"value":51.3}`))
		checkParts(t, caseloadOf(t, c, "/Organization/y12345/$caseload")["Patient/ward"], map[string]any{"pamLevel": 2.0, "pamScore": 51.3})
		rem := generateReminders(c, "2026-12-01")
		if got := paramsText(rem); !strings.HasPrefix(got, "created=1 ") {
			t.Fatalf("reminders: %s, want one", got)
		}
		if got := str(onlyRemeasure(t, c), "focus", "reference"); got != "Observation/gp-level" {
			t.Errorf("reminder about %s, want Observation/gp-level", got)
		}
		// A later level dated by an instant alone re-measures.
		c.put(obs("gp-later", "962851000000103", `"effectiveInstant":"2026-11-20T10:00:00Z"`, `"valueInteger":3`))
		if st := str(onlyRemeasure(t, c), "status"); st != "completed" {
			t.Errorf("reminder after a later level: %s, want completed", st)
		}
	})
}
