package care_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"carefhir/care"
)

// TestPeopleInCare: a deleted Patient leaves caseloads, cohorts and new
// reminders; a deceased one, or one whose record is not active, leaves
// cohorts and new reminders.
func TestPeopleInCare(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		for _, id := range []string{"ward", "baker", "clark", "lee"} {
			c.put(fmt.Sprintf(`{"resourceType":"CareTeam","id":"team-%s","status":"active","subject":{"reference":"Patient/%s"},"participant":[
				{"role":[{"coding":[{"system":"http://snomed.info/sct","code":"768820003"}]}],"member":{"reference":"Practitioner/cc"}}]}`, id, id))
			c.put(strings.ReplaceAll(pamResponse("pam-"+id, "completed", "2026-01-01T10:00:00Z", "2", "50"), "Patient/ward", "Patient/"+id))
		}
		cohort := func(params string) string {
			g := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[`+params+`]}`).want(http.StatusCreated)
			return strings.ReplaceAll(members(g), "=<nil>", "")
		}
		practice := `{"name":"practice","valueString":"Y12345"}`
		diabetic := `{"name":"condition","valueString":"` + diabetes + `"}`
		noPlan := `{"name":"withoutActivePcsp","valueBoolean":true}`
		if got := cohort(practice); got != "Patient/baker Patient/clark Patient/ward" {
			t.Fatalf("practice cohort before: %q", got)
		}

		c.do("DELETE", "/Patient/clark", "").want(http.StatusNoContent)
		c.put(`{"resourceType":"Patient","id":"ward","name":[{"family":"Ward"}],"birthDate":"1948-03-12","deceasedDateTime":"2026-11-20","generalPractitioner":[{"reference":"Organization/y12345"}]}`)
		c.put(`{"resourceType":"Patient","id":"baker","name":[{"family":"Baker"}],"birthDate":"1966-01-20","active":false,"generalPractitioner":[{"reference":"Organization/y12345"}]}`)
		c.put(`{"resourceType":"Patient","id":"lee","name":[{"family":"Lee"}],"birthDate":"1946-05-05","active":true,"deceasedBoolean":false,"generalPractitioner":[{"reference":"Organization/y99999"}]}`)

		load := caseloadOf(t, c, "/Practitioner/cc/$caseload")
		if load["Patient/clark"] != nil || len(load) != 3 {
			t.Errorf("caseload after Patient/clark was deleted: %v", load)
		}
		if got := paramsText(c.do("GET", "/Practitioner/cc/$caseload", "").want(http.StatusOK)); !strings.HasPrefix(got, "total=3") {
			t.Errorf("caseload total: %s", got)
		}
		for _, tc := range []struct{ name, params, want string }{
			{"practice", practice, ""},
			{"condition", diabetic, "Patient/lee"},
			{"riskCode", `{"name":"riskCode","valueString":"` + efi + `"}`, "Patient/lee=0.4"},
			{"pamLevelMax", `{"name":"pamLevelMax","valueInteger":2}`, "Patient/lee"},
			{"withoutActivePcsp", noPlan, "Patient/lee"},
		} {
			if got := cohort(tc.params); got != tc.want {
				t.Errorf("%s cohort: %q, want %q", tc.name, got, tc.want)
			}
		}
		rem := generateReminders(c, "2026-12-01")
		if got := paramsText(rem); !strings.HasPrefix(got, "created=1 ") {
			t.Errorf("reminders: %s", got)
		}
		for _, task := range entries(c.do("GET", "/Task", "").want(http.StatusOK)) {
			if who := str(task, "for", "reference"); who != "Patient/lee" {
				t.Errorf("a reminder for %s", who)
			}
		}
	})
}

// TestReplacedRecords: a Patient record replaced by another (a link of
// type replaced-by, as a merge leaves it) is no longer used: it leaves
// cohorts and gets no new reminders, and the person is counted once, by
// the record that replaced it. The cohort is searched among the people
// left, and over everyone.
func TestReplacedRecords(t *testing.T) {
	t.Run("among", func(t *testing.T) { testReplacedRecords(t, care.Config{}) })
	t.Run("over everyone", func(t *testing.T) { testReplacedRecords(t, care.Config{CohortAmongMost: -1}) })
}

func testReplacedRecords(t *testing.T, cfg care.Config) {
	eachEngine(t, cfg, func(t *testing.T, c *client) {
		population(c)
		c.put(`{"resourceType":"Patient","id":"ward-old","name":[{"family":"Ward"}],"birthDate":"1948-03-12","generalPractitioner":[{"reference":"Organization/y12345"}],
			"link":[{"other":{"reference":"Patient/ward"},"type":"replaced-by"}]}`)
		c.put(`{"resourceType":"Patient","id":"baker-2","name":[{"family":"Baker"}],"birthDate":"1966-01-20","generalPractitioner":[{"reference":"Organization/y12345"}],
			"link":[{"other":{"reference":"Patient/baker"},"type":"seealso"}]}`)
		c.put(strings.ReplaceAll(pamResponse("pam-ward-old", "completed", "2026-01-01T10:00:00Z", "2", "50"), "Patient/ward", "Patient/ward-old"))
		for _, tc := range []struct{ name, params, want string }{
			{"practice", `{"name":"practice","valueString":"Y12345"}`, "Patient/baker Patient/baker-2 Patient/clark Patient/ward"},
			{"pamLevelMax", `{"name":"pamLevelMax","valueInteger":2}`, ""},
		} {
			g := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[`+tc.params+`]}`).want(http.StatusCreated)
			if got := strings.ReplaceAll(members(g), "=<nil>", ""); got != tc.want {
				t.Errorf("%s cohort: %q, want %q", tc.name, got, tc.want)
			}
		}
		rem := generateReminders(c, "2026-12-01")
		if got := paramsText(rem); got != "created=0" {
			t.Errorf("reminders: %s", got)
		}
	})
}

// TestCaseloadReplacedRecords: a Patient record replaced by another (a
// link of type replaced-by, as a merge leaves it, the record also marked
// not active) leaves caseloads and their total; a care team naming it
// holds the person by the record that replaced it, once, while an
// organisation holds those whose record in use is registered there.
func TestCaseloadReplacedRecords(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		c.put(`{"resourceType":"Patient","id":"ward-old","active":false,"name":[{"family":"Ward"}],"birthDate":"1948-03-12","generalPractitioner":[{"reference":"Organization/y12345"}],
			"link":[{"other":{"reference":"Patient/ward"},"type":"replaced-by"}]}`)
		c.put(`{"resourceType":"Patient","id":"baker-old","name":[{"family":"Baker"}],"birthDate":"1966-01-20","generalPractitioner":[{"reference":"Organization/y12345"}],
			"link":[{"other":{"reference":"` + c.base + `/Patient/baker-new"},"type":"replaced-by"}]}`)
		c.put(`{"resourceType":"Patient","id":"baker-new","name":[{"family":"Baker"},{"family":"Smith"}],"birthDate":"1966-01-20","generalPractitioner":[{"reference":"Organization/y99999"}]}`)
		c.put(`{"resourceType":"Patient","id":"gone-old","name":[{"family":"Gone"}],"generalPractitioner":[{"reference":"Organization/y12345"}],
			"link":[{"other":{"reference":"Patient/nobody"},"type":"replaced-by"}]}`)
		for _, id := range []string{"ward", "ward-old", "baker-old", "clark", "gone-old"} {
			c.put(`{"resourceType":"CareTeam","id":"team-` + id + `","status":"active","subject":{"reference":"Patient/` + id + `"},"participant":[{"member":{"reference":"Practitioner/cc"}}]}`)
		}
		order := func(path string) string {
			page := c.do("GET", path, "").want(http.StatusOK)
			var out []string
			list, _ := page["parameter"].([]any)
			for _, p := range list {
				switch str(p, "name") {
				case "total":
					out = append(out, fmt.Sprintf("total=%v", get(p, "valueInteger")))
				case "patient":
					out = append(out, str(p, "part", 0, "valueReference", "reference"))
				}
			}
			return strings.Join(out, " ")
		}
		if got, want := order("/Practitioner/cc/$caseload"), "total=3 Patient/baker-new Patient/clark Patient/ward"; got != want {
			t.Errorf("caseload of the coordinator: %s, want %s", got, want)
		}
		if got, want := order("/CareTeam/team-ward-old/$caseload"), "total=1 Patient/ward"; got != want {
			t.Errorf("caseload of the team of the record replaced: %s, want %s", got, want)
		}
		if got, want := order("/Organization/y12345/$caseload"), "total=3 Patient/baker Patient/clark Patient/ward"; got != want {
			t.Errorf("caseload of the practice: %s, want %s", got, want)
		}
	})
}
