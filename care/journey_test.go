package care_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"carefhir/care"
)

const (
	efi      = "http://snomed.info/sct|713634000" // electronic frailty index score, as risk
	diabetes = "http://snomed.info/sct|44054006"
)

// wardCareTeam writes Ward's care team, Dana Cole (Practitioner/cc) their
// care coordinator.
func wardCareTeam(c *client) {
	c.put(`{"resourceType":"CareTeam","id":"team-ward","status":"active","subject":{"reference":"Patient/ward"},"participant":[
		{"role":[{"coding":[{"system":"http://snomed.info/sct","code":"768820003"}]}],"member":{"reference":"Practitioner/cc"}}]}`)
}

// walkGoal writes Ward's active goal, Goal/goal-walk, which a PCSP names.
func walkGoal(c *client) {
	c.put(`{"resourceType":"Goal","id":"goal-walk","lifecycleStatus":"active","description":{"text":"Walk to the shops"},"subject":{"reference":"Patient/ward"}}`)
}

// generateReminders invokes Task/$generate-reminders as of the date
// asOf, wanting 200, and returns its Parameters.
func generateReminders(c *client, asOf string) map[string]any {
	return c.do("POST", "/Task/$generate-reminders", `{"resourceType":"Parameters","parameter":[{"name":"asOf","valueDate":"`+asOf+`"}]}`).want(http.StatusOK)
}

// population is a practice, its staff and three patients with frailty
// scores: Ward (78, 0.36, diabetes), Baker (60, 0.12) and Clark (82,
// 0.28), and Lee at another practice (80, 0.40).
func population(c *client) {
	c.put(`{"resourceType":"Organization","id":"y12345","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"Y12345"}],"name":"Riverside Surgery"}`)
	c.put(`{"resourceType":"Organization","id":"y99999","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"Y99999"}],"name":"Hillside Surgery"}`)
	c.put(`{"resourceType":"Practitioner","id":"cc","name":[{"family":"Cole","given":["Dana"]}]}`)
	c.put(`{"resourceType":"PractitionerRole","id":"cc-role","practitioner":{"reference":"Practitioner/cc"},"organization":{"reference":"Organization/y12345"},
		"code":[{"coding":[{"system":"http://snomed.info/sct","code":"768820003","display":"Care coordinator"}]}]}`)
	c.put(`{"resourceType":"Practitioner","id":"gp","name":[{"family":"Shah","given":["Amir"]}]}`)
	c.put(`{"resourceType":"Practitioner","id":"lw","name":[{"family":"Okafor","given":["Ada"]}]}`)
	for _, p := range []struct {
		id, family, born, practice, risk string
		diabetic                         bool
	}{
		{"ward", "Ward", "1948-03-12", "y12345", "0.36", true},
		{"baker", "Baker", "1966-01-20", "y12345", "0.12", false},
		{"clark", "Clark", "1944-07-02", "y12345", "0.28", false},
		{"lee", "Lee", "1946-05-05", "y99999", "0.40", true},
	} {
		c.put(fmt.Sprintf(`{"resourceType":"Patient","id":%q,"name":[{"family":%q,"given":["Pat"]}],"birthDate":%q,"generalPractitioner":[{"reference":"Organization/%s"}]}`, p.id, p.family, p.born, p.practice))
		// An older, higher score that the latest one replaces.
		c.put(fmt.Sprintf(`{"resourceType":"Observation","id":"efi-old-%s","status":"final","code":{"coding":[{"system":"http://snomed.info/sct","code":"713634000"}]},"subject":{"reference":"Patient/%s"},"effectiveDateTime":"2025-01-01","valueQuantity":{"value":0.9}}`, p.id, p.id))
		c.put(fmt.Sprintf(`{"resourceType":"Observation","id":"efi-%s","status":"final","code":{"coding":[{"system":"http://snomed.info/sct","code":"713634000"}]},"subject":{"reference":"Patient/%s"},"effectiveDateTime":"2026-10-01","valueQuantity":{"value":%s}}`, p.id, p.id, p.risk))
		if p.diabetic {
			c.put(fmt.Sprintf(`{"resourceType":"Condition","id":"dm-%s","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},"code":{"coding":[{"system":"http://snomed.info/sct","code":"44054006"}]},"subject":{"reference":"Patient/%s"}}`, p.id, p.id))
		}
	}
	// Baker's diabetes is resolved: not an active Condition.
	c.put(`{"resourceType":"Condition","id":"dm-baker","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"resolved"}]},"code":{"coding":[{"system":"http://snomed.info/sct","code":"44054006"}]},"subject":{"reference":"Patient/baker"}}`)
}

// pamResponse is a PAM response of Ward with every statement answered
// code, and the licensed tool's score when not "".
func pamResponse(id, status, authored, code, score string) string {
	var items []string
	for i := 1; i <= 13; i++ {
		items = append(items, fmt.Sprintf(`{"linkId":"pam-%d","answer":[{"valueCoding":{"system":"%s","code":%q}}]}`, i, care.SystemPAMAnswer, code))
	}
	if score != "" {
		items = append(items, `{"linkId":"pam-score","answer":[{"valueDecimal":`+score+`}]}`)
	}
	return fmt.Sprintf(`{"resourceType":"QuestionnaireResponse","id":%q,"questionnaire":%q,"status":%q,"subject":{"reference":"Patient/ward"},"authored":%q,"author":{"reference":"Practitioner/cc"},"item":[%s]}`,
		id, care.PAMQuestionnaireURL, status, authored, strings.Join(items, ","))
}

// pcsp is Ward's PCSP with the review date given ("" for none) and goals.
func pcsp(status, review string, goals ...string) string {
	ext := ""
	if review != "" {
		ext = fmt.Sprintf(`"extension":[{"url":%q,"valueDate":%q}],`, care.ReviewDateURL, review)
	}
	var refs []string
	for _, g := range goals {
		refs = append(refs, `{"reference":"Goal/`+g+`"}`)
	}
	goal := ""
	if len(refs) > 0 {
		goal = `"goal":[` + strings.Join(refs, ",") + `],`
	}
	return fmt.Sprintf(`{"resourceType":"CarePlan","id":"pcsp-ward","meta":{"profile":[%q]},%s"status":%q,"intent":"plan",
		"category":[{"coding":[{"system":%q,"code":"pcsp"}]}],"subject":{"reference":"Patient/ward"},"period":{"start":"2026-11-15"},
		"author":{"reference":"Practitioner/cc"},"contributor":[{"reference":"Patient/ward"},{"reference":"Practitioner/cc"}],%s
		"activity":[{"detail":{"code":{"coding":[{"system":"http://snomed.info/sct","code":"871731000000106"}]},"status":"scheduled"}},
			{"detail":{"code":{"coding":[{"system":%q,"code":"health-coaching"}]},"status":"not-started"}}]}`,
		care.PCSPProfileURL, ext, status, care.SystemCarePlanCategory, goal, care.SystemPCSPActivity)
}

// caseloadOf returns the patient parts of a caseload answer, by patient
// reference, each as its parts by name.
func caseloadOf(t *testing.T, c *client, path string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	params := c.do("GET", path, "").want(http.StatusOK)
	list, _ := params["parameter"].([]any)
	for _, p := range list {
		if str(p, "name") != "patient" {
			continue
		}
		parts := map[string]any{}
		for _, part := range get(p, "part").([]any) {
			for k, v := range part.(map[string]any) {
				if k != "name" {
					parts[str(part, "name")] = v
				}
			}
		}
		out[str(parts, "patient", "reference")] = parts
	}
	return out
}

// pamObservations returns the PAM Observations derived from a response,
// by code (pam-score, pam-level).
func pamObservations(t *testing.T, c *client, qr string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, o := range entries(c.do("GET", "/Observation?derived-from=QuestionnaireResponse/"+qr, "").want(http.StatusOK)) {
		out[str(o, "code", "coding", 0, "code")] = o
	}
	return out
}

func TestCoordinatorJourney(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		// The PAM Questionnaire is installed.
		qs := entries(c.do("GET", "/Questionnaire?name=PAM13", "").want(http.StatusOK))
		if len(qs) != 1 || str(qs[0], "url") != care.PAMQuestionnaireURL || str(qs[0], "item", 13, "linkId") != "pam-score" {
			t.Fatalf("Questionnaire?name=PAM13: %v", qs)
		}
		c.do("DELETE", "/Questionnaire/pam-13", "").want(http.StatusMethodNotAllowed)

		// 1. A cohort of frail older people at the practice.
		r := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"practice","valueString":"Y12345"},
			{"name":"ageMin","valueInteger":65},{"name":"riskCode","valueString":"`+efi+`"},{"name":"riskMin","valueDecimal":0.2},{"name":"name","valueString":"Frail over 65"}]}`)
		group := r.want(http.StatusCreated)
		if loc := r.header.Get("Location"); !strings.Contains(loc, "/fhir/Group/"+str(group, "id")+"/_history/1") {
			t.Errorf("Location %q", loc)
		}
		if got := members(group); got != "Patient/ward=0.36 Patient/clark=0.28" {
			t.Errorf("cohort members %q, want Ward then Clark by risk", got)
		}

		// 2. Ward's care team, with the coordinator through their role.
		c.put(`{"resourceType":"CareTeam","id":"team-ward","status":"active","subject":{"reference":"Patient/ward"},"participant":[
			{"role":[{"coding":[{"system":"http://snomed.info/sct","code":"116154003"}]}],"member":{"reference":"Patient/ward"}},
			{"role":[{"coding":[{"system":"http://snomed.info/sct","code":"768820003"}]}],"member":{"reference":"PractitionerRole/cc-role"}},
			{"role":[{"coding":[{"system":"http://snomed.info/sct","code":"62247001"}]}],"member":{"reference":"Practitioner/gp"}},
			{"role":[{"coding":[{"system":"` + care.SystemCareRole + `","code":"social-prescribing-link-worker"}]}],"member":{"reference":"Practitioner/lw"}}]}`)

		// 3. A PAM response scored by the licensed tool: two Observations.
		c.do("PUT", "/QuestionnaireResponse/pam-1", pamResponse("pam-1", "completed", "2026-06-01T10:00:00Z", "2", "52.0")).want(http.StatusCreated)
		obs := pamObservations(t, c, "pam-1")
		score, level := obs["pam-score"], obs["pam-level"]
		if get(score, "valueQuantity", "value") != 52.0 || str(score, "valueQuantity", "code") != "{score}" || get(level, "valueInteger") != 2.0 {
			t.Fatalf("PAM Observations: %v", obs)
		}
		for _, o := range obs {
			if str(o, "status") != "final" || str(o, "subject", "reference") != "Patient/ward" || str(o, "effectiveDateTime") != "2026-06-01T10:00:00Z" ||
				str(o, "performer", 0, "reference") != "Practitioner/cc" || str(o, "category", 0, "coding", 0, "code") != "survey" {
				t.Errorf("PAM Observation %v", o)
			}
		}

		// 4. The PCSP: refused without goals and review date, then agreed.
		oo := c.do("PUT", "/CarePlan/pcsp-ward", pcsp("active", "")).want(http.StatusUnprocessableEntity)
		if got := issues(oo); !strings.Contains(got, "CarePlan.goal: an active PCSP has at least one Goal") || !strings.Contains(got, "an active PCSP has a review date") {
			t.Errorf("PCSP refusal:\n%s", got)
		}
		c.put(`{"resourceType":"Goal","id":"goal-walk","lifecycleStatus":"active","description":{"text":"I want to walk to the shops on my own again"},"subject":{"reference":"Patient/ward"}}`)
		c.put(pcsp("active", "2026-12-10", "goal-walk"))

		// 5. The MDT meeting, linked to the care team.
		c.put(`{"resourceType":"Appointment","id":"mdt-1","status":"booked","start":"2026-12-05T10:00:00Z","end":"2026-12-05T10:30:00Z",
			"extension":[{"url":"` + care.MDTCareTeamURL + `","valueReference":{"reference":"CareTeam/team-ward"}}],
			"participant":[{"actor":{"reference":"Patient/ward"},"status":"accepted"},{"actor":{"reference":"Practitioner/gp"},"status":"accepted"},
			{"actor":{"reference":"Practitioner/lw"},"status":"accepted"},{"actor":{"reference":"PractitionerRole/cc-role"},"status":"accepted"}]}`)

		// 6. The coordinator's caseload shows it all.
		load := caseloadOf(t, c, "/Practitioner/cc/$caseload")
		ward := load["Patient/ward"]
		if len(load) != 1 || get(ward, "valueInteger") != nil {
			t.Fatalf("caseload %v", load)
		}
		want := map[string]any{"pamLevel": 2.0, "pamScore": 52.0, "pamDate": "2026-06-01T10:00:00Z", "carePlan": "CarePlan/pcsp-ward",
			"reviewDue": "2026-12-10", "overdue": false, "nextAppointment": "Appointment/mdt-1", "nextAppointmentStart": "2026-12-05T10:00:00Z", "openTasks": 0.0}
		checkParts(t, ward, want)
		if _, ok := ward["pamChange"]; ok {
			t.Errorf("pamChange with one PAM: %v", ward["pamChange"])
		}

		// 7. Amending the PAM updates the same Observations.
		c.do("PUT", "/QuestionnaireResponse/pam-1", pamResponse("pam-1", "amended", "2026-06-01T10:00:00Z", "3", "60.5")).want(http.StatusOK)
		amended := pamObservations(t, c, "pam-1")
		if len(amended) != 2 || str(amended["pam-score"], "id") != str(score, "id") || str(amended["pam-level"], "id") != str(level, "id") ||
			str(amended["pam-level"], "status") != "amended" || get(amended["pam-level"], "valueInteger") != 3.0 || get(amended["pam-score"], "valueQuantity", "value") != 60.5 {
			t.Errorf("amended PAM Observations: %v", amended)
		}
		checkParts(t, caseloadOf(t, c, "/Practitioner/cc/$caseload")["Patient/ward"], map[string]any{"pamLevel": 3.0, "pamScore": 60.5})

		// 8. Reminders appear, once.
		rem := generateReminders(c, "2026-12-01")
		if get(rem, "parameter", 0, "valueInteger") != 2.0 {
			t.Fatalf("reminders: %v", rem)
		}
		tasks := map[string]map[string]any{}
		for _, task := range entries(c.do("GET", "/Task?patient=Patient/ward", "").want(http.StatusOK)) {
			tasks[str(task, "code", "coding", 0, "code")] = task
		}
		review, remeasure := tasks["pcsp-review"], tasks["pam-remeasure"]
		if str(review, "focus", "reference") != "CarePlan/pcsp-ward" || str(review, "restriction", "period", "end") != "2026-12-10" ||
			str(review, "owner", "reference") != "PractitionerRole/cc-role" || str(review, "status") != "requested" || str(review, "intent") != "plan" {
			t.Errorf("review Task %v", review)
		}
		if str(remeasure, "focus", "reference") != "QuestionnaireResponse/pam-1" || str(remeasure, "restriction", "period", "end") != "2026-12-01" || str(remeasure, "for", "reference") != "Patient/ward" {
			t.Errorf("re-measurement Task %v", remeasure)
		}
		again := generateReminders(c, "2026-12-01")
		if get(again, "parameter", 0, "valueInteger") != 0.0 {
			t.Errorf("second run created %v", get(again, "parameter", 0, "valueInteger"))
		}
		checkParts(t, caseloadOf(t, c, "/Practitioner/cc/$caseload")["Patient/ward"], map[string]any{"openTasks": 2.0})

		// 9. The review done and a new PAM close them.
		c.put(pcsp("active", "2027-06-01", "goal-walk"))
		c.do("PUT", "/QuestionnaireResponse/pam-2", pamResponse("pam-2", "completed", "2026-11-28T10:00:00Z", "4", "70.2")).want(http.StatusCreated)
		for _, task := range entries(c.do("GET", "/Task?patient=Patient/ward", "").want(http.StatusOK)) {
			if str(task, "status") != "completed" {
				t.Errorf("Task %s is %s after the review and the new PAM", str(task, "code", "coding", 0, "code"), str(task, "status"))
			}
		}
		checkParts(t, caseloadOf(t, c, "/Practitioner/cc/$caseload")["Patient/ward"],
			map[string]any{"pamLevel": 4.0, "pamChange": 1.0, "reviewDue": "2027-06-01", "openTasks": 0.0})

		// 10. A response entered in error takes its Observations with it.
		c.do("PUT", "/QuestionnaireResponse/pam-2", pamResponse("pam-2", "entered-in-error", "2026-11-28T10:00:00Z", "4", "70.2")).want(http.StatusOK)
		for _, o := range pamObservations(t, c, "pam-2") {
			if str(o, "status") != "entered-in-error" {
				t.Errorf("Observation of a response entered in error is %s", str(o, "status"))
			}
		}
		checkParts(t, caseloadOf(t, c, "/Practitioner/cc/$caseload")["Patient/ward"], map[string]any{"pamLevel": 3.0})
		c.do("DELETE", "/QuestionnaireResponse/pam-1", "").want(http.StatusNoContent)
		for _, o := range pamObservations(t, c, "pam-1") {
			if str(o, "status") != "entered-in-error" {
				t.Errorf("Observation of a deleted response is %s", str(o, "status"))
			}
		}
		if _, ok := caseloadOf(t, c, "/Practitioner/cc/$caseload")["Patient/ward"]["pamLevel"]; ok {
			t.Error("pamLevel still shown once every PAM is in error")
		}

		// 11. The coordinator's role, the team and the practice have caseloads too.
		for _, path := range []string{"/PractitionerRole/cc-role/$caseload", "/CareTeam/team-ward/$caseload"} {
			if load := caseloadOf(t, c, path); len(load) != 1 || load["Patient/ward"] == nil {
				t.Errorf("%s: %v", path, load)
			}
		}
		if load := caseloadOf(t, c, "/Organization/y12345/$caseload?_sort=name"); len(load) != 3 {
			t.Errorf("practice caseload: %d patients, want 3", len(load))
		}
	})
}

// members lists a cohort's members with their risk values.
func members(group map[string]any) string {
	var out []string
	list, _ := group["member"].([]any)
	for _, m := range list {
		out = append(out, fmt.Sprintf("%s=%v", str(m, "entity", "reference"), get(m, "extension", 0, "valueDecimal")))
	}
	return strings.Join(out, " ")
}

// checkParts compares the parts of a caseload entry with want: references
// by their reference, others by value.
func checkParts(t *testing.T, parts map[string]any, want map[string]any) {
	t.Helper()
	for name, w := range want {
		got := parts[name]
		if ref := str(got, "reference"); ref != "" {
			got = ref
		}
		if got != w {
			b, _ := json.Marshal(parts)
			t.Errorf("%s = %v, want %v (entry %s)", name, got, w, b)
		}
	}
}
