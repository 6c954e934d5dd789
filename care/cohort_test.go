package care_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"carefhir/care"
	"carefhir/server"
	"carefhir/server/access"
)

// TestCohortCriteria evaluates each criterion on its own and combined,
// over the population of the journey, with Ward and Lee at PAM level 2,
// Clark at level 4 and Clark holding an active PCSP; each criterion after
// the first is searched among the people left, and then over everyone.
func TestCohortCriteria(t *testing.T) {
	t.Run("among", func(t *testing.T) { testCohortCriteria(t, care.Config{}) })
	t.Run("over everyone", func(t *testing.T) { testCohortCriteria(t, care.Config{CohortAmongMost: -1}) })
}

func testCohortCriteria(t *testing.T, cfg care.Config) {
	eachEngine(t, cfg, func(t *testing.T, c *client) {
		population(c)
		for _, p := range []struct{ id, score string }{{"ward", "50"}, {"lee", "52"}, {"clark", "70"}} {
			qr := strings.ReplaceAll(pamResponse("pam-"+p.id, "completed", "2026-10-01T10:00:00Z", "3", p.score), "Patient/ward", "Patient/"+p.id)
			c.do("PUT", "/QuestionnaireResponse/pam-"+p.id, qr).want(http.StatusCreated)
		}
		c.put(`{"resourceType":"Goal","id":"goal-clark","lifecycleStatus":"active","description":{"text":"Stay in my own home"},"subject":{"reference":"Patient/clark"}}`)
		c.put(strings.NewReplacer("pcsp-ward", "pcsp-clark", "Patient/ward", "Patient/clark").Replace(pcsp("active", "2027-01-10", "goal-clark")))

		for _, tc := range []struct {
			name, params, members string
		}{
			{"practice", `{"name":"practice","valueString":"Y12345"}`, "Patient/baker Patient/clark Patient/ward"},
			{"unknown practice", `{"name":"practice","valueString":"Y00000"}`, ""},
			{"ageMin", `{"name":"ageMin","valueInteger":80}`, "Patient/clark Patient/lee"},
			{"ageMax", `{"name":"ageMax","valueInteger":78}`, "Patient/baker Patient/ward"},
			{"condition", `{"name":"condition","valueString":"` + diabetes + `"}`, "Patient/lee Patient/ward"},
			{"condition with a comma in its code", `{"name":"condition","valueString":"http://snomed.info/sct|999,44054006"}`, ""},
			{"riskCode with a comma in its code", `{"name":"riskCode","valueString":"http://snomed.info/sct|999,713634000"}`, ""},
			{"riskCode ranks by the latest value", `{"name":"riskCode","valueString":"` + efi + `"}`, "Patient/lee=0.4 Patient/ward=0.36 Patient/clark=0.28 Patient/baker=0.12"},
			{"riskMin", `{"name":"riskCode","valueString":"` + efi + `"},{"name":"riskMin","valueDecimal":0.3}`, "Patient/lee=0.4 Patient/ward=0.36"},
			{"pamLevelMax", `{"name":"pamLevelMax","valueInteger":2}`, "Patient/lee Patient/ward"},
			{"withoutActivePcsp", `{"name":"withoutActivePcsp","valueBoolean":true}`, "Patient/baker Patient/lee Patient/ward"},
			{"combined", `{"name":"practice","valueString":"Y12345"},{"name":"ageMin","valueInteger":65},{"name":"condition","valueString":"` + diabetes + `"},
				{"name":"riskCode","valueString":"` + efi + `"},{"name":"riskMin","valueDecimal":0.2},{"name":"pamLevelMax","valueInteger":3},{"name":"withoutActivePcsp","valueBoolean":true}`, "Patient/ward=0.36"},
		} {
			g := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[`+tc.params+`]}`).want(http.StatusCreated)
			got := strings.ReplaceAll(members(g), "=<nil>", "")
			if got != tc.members {
				t.Errorf("%s: members %q, want %q", tc.name, got, tc.members)
			}
			if str(g, "type") != "person" || get(g, "actual") != true || get(g, "quantity") != float64(len(strings.Fields(tc.members))) {
				t.Errorf("%s: Group %v", tc.name, g)
			}
		}

		// The criteria are recorded, and a re-evaluation follows the data.
		g := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"condition","valueString":"`+diabetes+`"},{"name":"name","valueString":"Diabetes"}]}`).want(http.StatusCreated)
		if str(g, "characteristic", 0, "code", "coding", 0, "code") != "condition" || str(g, "characteristic", 0, "valueCodeableConcept", "coding", 0, "code") != "44054006" || str(g, "name") != "Diabetes" {
			t.Errorf("characteristics %v", g["characteristic"])
		}
		c.put(`{"resourceType":"Condition","id":"dm-baker","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},"code":{"coding":[{"system":"http://snomed.info/sct","code":"44054006"}]},"subject":{"reference":"Patient/baker"}}`)
		again := c.do("POST", "/Group/"+str(g, "id")+"/$cohort", "").want(http.StatusOK)
		if got := strings.ReplaceAll(members(again), "=<nil>", ""); got != "Patient/baker Patient/lee Patient/ward" || str(again, "meta", "versionId") != "2" || str(again, "id") != str(g, "id") {
			t.Errorf("re-evaluated: %q, version %s", got, str(again, "meta", "versionId"))
		}
		stored := c.do("GET", "/Group/"+str(g, "id"), "").want(http.StatusOK)
		if str(stored, "meta", "versionId") != "2" || get(stored, "quantity") != 3.0 {
			t.Errorf("stored Group %v", stored)
		}

		// Refusals.
		for _, bad := range []string{
			`{"resourceType":"Parameters"}`,
			`{"resourceType":"Parameters","parameter":[{"name":"ageMin","valueString":"old"}]}`,
			`{"resourceType":"Parameters","parameter":[{"name":"riskMin","valueDecimal":0.2}]}`,
			`{"resourceType":"Parameters","parameter":[{"name":"condition","valueString":"44054006"}]}`,
		} {
			c.do("POST", "/Group/$cohort", bad).want(http.StatusBadRequest)
		}
		// A token without a system or a code, or an age out of range, is
		// refused naming its parameter, and no Group is stored.
		groups := get(c.do("GET", "/Group?_summary=count", "").want(http.StatusOK), "total")
		for _, tc := range []struct{ param, value, says string }{
			{"condition", `"valueString":"http://snomed.info/sct|"`, "system|code"},
			{"condition", `"valueString":"|44054006"`, "system|code"},
			{"condition", `"valueString":"|"`, "system|code"},
			{"condition", `"valueString":"x"`, "system|code"},
			{"condition", `"valueString":"a|b|c"`, "system|code"},
			{"condition", `"valueString":"http://snomed.info/sct| 44054006"`, "system|code"},
			{"riskCode", `"valueString":"http://x.org|"`, "system|code"},
			{"riskCode", `"valueString":"|efi"`, "system|code"},
			{"riskCode", `"valueString":"x"`, "system|code"},
			{"riskMin", `"valueString":"NaN"},{"name":"riskCode","valueString":"` + efi + `"`, "riskMin must be a decimal"},
			{"riskMin", `"valueString":"Inf"},{"name":"riskCode","valueString":"` + efi + `"`, "riskMin must be a decimal"},
			{"riskMin", `"valueString":"-Inf"},{"name":"riskCode","valueString":"` + efi + `"`, "riskMin must be a decimal"},
			{"riskMin", `"valueString":"0x1p-3"},{"name":"riskCode","valueString":"` + efi + `"`, "riskMin must be a decimal"},
			{"riskMin", `"valueString":"+0.2"},{"name":"riskCode","valueString":"` + efi + `"`, "riskMin must be a decimal"},
			{"riskMin", `"valueString":".2"},{"name":"riskCode","valueString":"` + efi + `"`, "riskMin must be a decimal"},
			{"ageMin", `"valueInteger":100000`, "ageMin must be a whole number of years from 0 to 150"},
			{"ageMax", `"valueInteger":151`, "ageMax must be a whole number of years from 0 to 150"},
			{"ageMin", `"valueInteger":-1`, "ageMin must be a whole number"},
			{"pamLevelMax", `"valueInteger":5`, "pamLevelMax must be a PAM level from 1 to 4"},
			{"pamLevelMax", `"valueInteger":0`, "pamLevelMax must be a PAM level from 1 to 4"},
			{"practice", `"valueString":"Y12345,Y99999"`, "practice must be an ODS organisation code"},
			{"practice", `"valueString":"y12345"`, "practice must be an ODS organisation code"},
		} {
			out := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"`+tc.param+`",`+tc.value+`}]}`).want(http.StatusBadRequest)
			if where := str(out, "issue", 0, "expression", 0); where != "Parameters.parameter.where(name='"+tc.param+"')" ||
				!strings.Contains(str(out, "issue", 0, "diagnostics"), tc.param) || !strings.Contains(str(out, "issue", 0, "diagnostics"), tc.says) {
				t.Errorf("%s %s: %v", tc.param, tc.value, out["issue"])
			}
		}
		if after := get(c.do("GET", "/Group?_summary=count", "").want(http.StatusOK), "total"); after != groups {
			t.Errorf("%v Groups after the refusals, %v before", after, groups)
		}
		// A stored cohort whose criteria cannot be evaluated is 422.
		c.put(`{"resourceType":"Group","id":"odd","type":"person","actual":true,"characteristic":[{"code":{"coding":[{"system":"` + care.SystemCohortCriterion +
			`","code":"condition"}]},"valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct"}]},"exclude":false}]}`)
		if out := c.do("POST", "/Group/odd/$cohort", "").want(http.StatusUnprocessableEntity); !strings.Contains(str(out, "issue", 0, "diagnostics"), "condition") {
			t.Errorf("Group/odd: %v", out["issue"])
		}
		// A criterion that cannot be read is never left out.
		criterion := func(code, value string) string {
			return `{"code":{"coding":[{"system":"` + care.SystemCohortCriterion + `","code":"` + code + `"}]},` + value + `,"exclude":false}`
		}
		practice := criterion("practice", `"valueReference":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"Y12345"}}`)
		for _, tc := range []struct{ name, criteria, says string }{
			{"age as a fraction", practice + "," + criterion("age-min", `"valueQuantity":{"value":65.5}`), "Group.characteristic[1]: Group/g records the criterion age-min that cannot be evaluated: its value must be a valueQuantity holding a whole number"},
			{"PAM level as a boolean", practice + "," + criterion("pam-level-max", `"valueBoolean":true`), "Group.characteristic[1]: Group/g records the criterion pam-level-max that cannot be evaluated"},
			{"PAM level 7", practice + "," + criterion("pam-level-max", `"valueQuantity":{"value":7}`), "Group.characteristic[1]: Group/g records criteria that cannot be evaluated: pamLevelMax must be a PAM level from 1 to 4"},
			{"age 200", criterion("age-max", `"valueQuantity":{"value":200}`), "Group.characteristic[0]: Group/g records criteria that cannot be evaluated: ageMax must be a whole number of years from 0 to 150"},
			{"a condition without its code", practice + "," + criterion("condition", `"valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"44054006"}]}`) + "," + criterion("condition", `"valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct"}]}`),
				"Group.characteristic[2]: Group/g records the criterion condition that cannot be evaluated: its value must be a valueCodeableConcept with a coding of a system (a uri) and a code"},
			{"two practices in one", criterion("practice", `"valueReference":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"Y12345,Y99999"}}`), "Group.characteristic[0]: Group/g records criteria that cannot be evaluated: practice must be an ODS organisation code"},
			{"practice without a code", criterion("practice", `"valueReference":{"reference":"Organization/y12345"}`), "Group.characteristic[0]: Group/g records the criterion practice that cannot be evaluated"},
			{"risk-min alone", criterion("risk-min", `"valueQuantity":{"value":0.2}`), "Group.characteristic[0]: Group/g records the criterion risk-min without risk-code: risk-min needs risk-code"},
			{"a criterion not known", practice + "," + criterion("age-between", `"valueQuantity":{"value":65}`), `Group.characteristic[1].code: Group/g records the criterion "age-between", which is not known`},
			{"age in months", practice + "," + criterion("age-min", `"valueQuantity":{"value":6,"unit":"months","system":"http://unitsofmeasure.org","code":"mo"}`),
				"Group.characteristic[1]: Group/g records the criterion age-min that cannot be evaluated: its value must be a valueQuantity holding a whole number of years"},
			{"a criterion excluded", practice + "," + strings.Replace(criterion("age-min", `"valueQuantity":{"value":65}`), `"exclude":false`, `"exclude":true`, 1),
				"Group.characteristic[1].exclude: Group/g records the criterion age-min with exclude true"},
		} {
			c.put(`{"resourceType":"Group","id":"g","type":"person","actual":true,"characteristic":[` + tc.criteria + `]}`)
			out := c.do("POST", "/Group/g/$cohort", "").want(http.StatusUnprocessableEntity)
			if got := issues(out); !strings.Contains(got, tc.says) {
				t.Errorf("%s:\n%s\nwant %q", tc.name, got, tc.says)
			}
			if g := c.do("GET", "/Group/g", "").want(http.StatusOK); get(g, "member") != nil {
				t.Errorf("%s: Group/g was evaluated: %v", tc.name, g["member"])
			}
		}
		c.put(`{"resourceType":"Group","id":"plain","type":"person","actual":true}`)
		c.do("POST", "/Group/plain/$cohort", "").want(http.StatusUnprocessableEntity)
		c.do("POST", "/Group/nowhere/$cohort", "").want(http.StatusNotFound)
	})
}

func TestCaseloadPaging(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		page := c.do("GET", "/Organization/y12345/$caseload?_count=2&_sort=name", "").want(http.StatusOK)
		next := nextCursor(page)
		if got := paramsText(page); !strings.Contains(got, "total=3") || next == "" {
			t.Errorf("first page: %s", got)
		}
		load := caseloadOf(t, c, "/Organization/y12345/$caseload?_count=2&_sort=name&cursor="+next)
		if len(load) != 1 || load["Patient/ward"] == nil {
			t.Errorf("second page: %v", load)
		}
		// Patients without a name come last.
		c.put(`{"resourceType":"Patient","id":"anon","birthDate":"1950-01-01","generalPractitioner":[{"reference":"Organization/y12345"}]}`)
		var order []string
		list, _ := c.do("GET", "/Organization/y12345/$caseload?_sort=name", "").want(http.StatusOK)["parameter"].([]any)
		for _, p := range list {
			if str(p, "name") == "patient" {
				order = append(order, str(p, "part", 0, "valueReference", "reference"))
			}
		}
		if got := strings.Join(order, " "); got != "Patient/baker Patient/clark Patient/ward Patient/anon" {
			t.Errorf("caseload by name: %s", got)
		}
		c.do("GET", "/Organization/y12345/$caseload?_count=501", "").want(http.StatusBadRequest)
		c.do("GET", "/Organization/y12345/$caseload?_sort=age", "").want(http.StatusBadRequest)
		for _, cursor := range []string{"x", "2", next + "&_sort=review-due"} {
			c.do("GET", "/Organization/y12345/$caseload?cursor="+cursor, "").want(http.StatusBadRequest)
		}
		c.do("GET", "/Practitioner/nobody/$caseload", "").want(http.StatusNotFound)
	})
}

// TestCohortReevaluationKeeps: evaluating a stored cohort again changes
// its members alone; what else was recorded of it stays.
func TestCohortReevaluationKeeps(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		c.put(`{"resourceType":"Group","id":"over-80","meta":{"tag":[{"system":"https://example.org/tags","code":"pcn"}]},
			"identifier":[{"system":"https://example.org/cohorts","value":"over-80"}],"type":"person","actual":true,"name":"Over 80",
			"managingEntity":{"reference":"Organization/y12345"},
			"characteristic":[{"code":{"coding":[{"system":"` + care.SystemCohortCriterion + `","code":"age-min"}]},"valueQuantity":{"value":80},"exclude":false},
				{"code":{"text":"Invited to the frailty clinic"},"valueBoolean":true,"exclude":false}]}`)
		g := c.do("POST", "/Group/over-80/$cohort", "").want(http.StatusOK)
		stored := c.do("GET", "/Group/over-80", "").want(http.StatusOK)
		for _, got := range []map[string]any{g, stored} {
			if m := strings.ReplaceAll(members(got), "=<nil>", ""); m != "Patient/clark Patient/lee" {
				t.Errorf("members %q, want Patient/clark Patient/lee", m)
			}
			if str(got, "meta", "versionId") != "2" || str(got, "meta", "tag", 0, "code") != "pcn" || str(got, "identifier", 0, "value") != "over-80" ||
				str(got, "managingEntity", "reference") != "Organization/y12345" || str(got, "name") != "Over 80" ||
				str(got, "characteristic", 1, "code", "text") != "Invited to the frailty clinic" {
				t.Errorf("re-evaluated cohort lost what was recorded of it: %v", got)
			}
		}
	})
}

// TestRegisteredByODSCode: a Patient whose generalPractitioner names the
// practice by its ODS code, as PDS and GP Connect give it, is registered
// there: in the practice's caseload and its cohorts, whether or not the
// practice is held here as an Organization.
func TestRegisteredByODSCode(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		for _, p := range []struct{ id, ods string }{{"pds", "Y12345"}, {"elsewhere", "Y54321"}} {
			c.put(`{"resourceType":"Patient","id":"` + p.id + `","name":[{"family":"Pds"}],"birthDate":"1940-01-01",
				"generalPractitioner":[{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"` + p.ods + `"}}]}`)
		}
		if load := caseloadOf(t, c, "/Organization/y12345/$caseload"); len(load) != 4 || load["Patient/pds"] == nil {
			t.Errorf("caseload of the practice: %v", load)
		}
		for _, tc := range []struct{ ods, members string }{
			{"Y12345", "Patient/baker Patient/clark Patient/pds Patient/ward"},
			{"Y54321", "Patient/elsewhere"},
		} {
			g := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"practice","valueString":"`+tc.ods+`"}]}`).want(http.StatusCreated)
			if got := strings.ReplaceAll(members(g), "=<nil>", ""); got != tc.members {
				t.Errorf("cohort of practice %s: %q, want %q", tc.ods, got, tc.members)
			}
		}
	})
}

// TestCohortMembersOutsideCare: under the care-team policy, a coordinator
// may evaluate again a cohort of people in their care, but not one holding
// people outside it, which they cannot read (a Group is read by who reaches
// every member) and the evaluation would drop for everyone: 404, as a
// cohort not held, naming none of its members, and the cohort is as it was.
func TestCohortMembersOutsideCare(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		c.put(`{"resourceType":"CareTeam","id":"team-ward","status":"active","subject":{"reference":"Patient/ward"},"participant":[{"member":{"reference":"Practitioner/cc"}}]}`)
		c.put(`{"resourceType":"Patient","id":"gone","birthDate":"1930-01-01"}`)
		over70 := str(c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"ageMin","valueInteger":70}]}`).want(http.StatusCreated), "id")
		diabetic := str(c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"condition","valueString":"`+diabetes+`"},{"name":"practice","valueString":"Y12345"}]}`).want(http.StatusCreated), "id")

		c.token = "cc"
		oo := c.do("POST", "/Group/"+over70+"/$cohort", "").want(http.StatusNotFound)
		if got := issues(oo); !strings.Contains(got, "Group/"+over70+" is not known") || strings.Contains(got, "Patient/") {
			t.Errorf("re-evaluating a cohort beyond the coordinator's care: %s", got)
		}
		c.do("POST", "/Group/"+diabetic+"/$cohort", "").want(http.StatusOK)

		// A member since deleted is dropped, whoever evaluates it.
		c.token = ""
		c.do("DELETE", "/Patient/gone", "")
		g := c.do("POST", "/Group/"+over70+"/$cohort", "").want(http.StatusOK)
		if got := strings.ReplaceAll(members(g), "=<nil>", ""); got != "Patient/clark Patient/lee Patient/ward" {
			t.Errorf("re-evaluated by an administrator: %q", got)
		}
		for id, want := range map[string]string{over70: "Patient/clark Patient/lee Patient/ward", diabetic: "Patient/ward"} {
			if got := strings.ReplaceAll(members(c.do("GET", "/Group/"+id, "").want(http.StatusOK)), "=<nil>", ""); got != want {
				t.Errorf("Group/%s holds %q, want %q", id, got, want)
			}
		}
	}, func(sc *server.Config) { sc.AccessPolicy = access.CareTeamPolicy })
}

// TestCohortConditionRelapse: a Condition whose clinical status is
// recurrence or relapse is active (in R4 they are kinds of active) and
// counts for a condition criterion; one in remission does not.
func TestCohortConditionRelapse(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		for id, status := range map[string]string{"clark": "relapse", "baker": "recurrence", "lee": "remission"} {
			c.put(`{"resourceType":"Condition","id":"dm-` + id + `","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"` + status + `"}]},
				"code":{"coding":[{"system":"http://snomed.info/sct","code":"44054006"}]},"subject":{"reference":"Patient/` + id + `"}}`)
		}
		g := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"condition","valueString":"`+diabetes+`"}]}`).want(http.StatusCreated)
		if got := strings.ReplaceAll(members(g), "=<nil>", ""); got != "Patient/baker Patient/clark Patient/ward" {
			t.Errorf("members %q, want Patient/baker Patient/clark Patient/ward", got)
		}
	})
}

// TestCohortConditionNotTheirs: a Condition ruled out (verification
// status refuted) or recorded in error is not the patient's, whatever its
// clinical status: it selects no one for a cohort; one confirmed or
// without a verification status does.
func TestCohortConditionNotTheirs(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		for id, verification := range map[string]string{"clark": "refuted", "baker": "confirmed", "ward": "entered-in-error"} {
			c.put(`{"resourceType":"Condition","id":"dm-` + id + `","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},
				"verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-ver-status","code":"` + verification + `"}]},
				"code":{"coding":[{"system":"http://snomed.info/sct","code":"44054006"}]},"subject":{"reference":"Patient/` + id + `"}}`)
		}
		g := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"condition","valueString":"`+diabetes+`"}]}`).want(http.StatusCreated)
		if got := strings.ReplaceAll(members(g), "=<nil>", ""); got != "Patient/baker Patient/lee" {
			t.Errorf("members %q, want Patient/baker Patient/lee, not Clark, whose diabetes was refuted, nor Ward, whose was recorded in error", got)
		}
	})
}

// TestRiskOfVersionedSubject: a risk Observation naming its patient by a
// version ranks that patient in a cohort, as the latest of their values.
func TestRiskOfVersionedSubject(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		c.put(`{"resourceType":"Observation","id":"efi-clark-new","status":"final","code":{"coding":[{"system":"http://snomed.info/sct","code":"713634000"}]},
			"subject":{"reference":"Patient/clark/_history/1"},"effectiveDateTime":"2026-11-01","valueQuantity":{"value":0.5}}`)
		g := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"practice","valueString":"Y12345"},
			{"name":"riskCode","valueString":"`+efi+`"},{"name":"riskMin","valueDecimal":0.3}]}`).want(http.StatusCreated)
		if got := members(g); got != "Patient/clark=0.5 Patient/ward=0.36" {
			t.Errorf("cohort: %s, want Patient/clark=0.5 Patient/ward=0.36", got)
		}
	})
}

// TestCohortCriterionTwice: a stored cohort recording a criterion that
// holds one value twice (age-min 90, then 65) is 422 at the second on
// Group/{id}/$cohort, and not evaluated with one of them left out; two
// conditions are each needed.
func TestCohortCriterionTwice(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		criterion := func(code, value string) string {
			return `{"code":{"coding":[{"system":"` + care.SystemCohortCriterion + `","code":"` + code + `"}]},` + value + `,"exclude":false}`
		}
		c.put(`{"resourceType":"Group","id":"old","type":"person","actual":true,"characteristic":[` +
			criterion("age-min", `"valueQuantity":{"value":90}`) + "," + criterion("age-min", `"valueQuantity":{"value":65}`) + `]}`)
		oo := c.do("POST", "/Group/old/$cohort", "").want(http.StatusUnprocessableEntity)
		if got := issues(oo); !strings.Contains(got, "Group.characteristic[1]: Group/old records the criterion age-min again") {
			t.Errorf("a cohort with age-min twice: %s", got)
		}
		if v := str(c.do("GET", "/Group/old", "").want(http.StatusOK), "meta", "versionId"); v != "1" {
			t.Errorf("Group/old at version %s after a refused evaluation, want 1", v)
		}
		dm := `"valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"44054006"}]}`
		c.put(`{"resourceType":"Group","id":"dm","type":"person","actual":true,"characteristic":[` + criterion("condition", dm) + "," + criterion("condition", dm) + `]}`)
		if got := members(c.do("POST", "/Group/dm/$cohort", "").want(http.StatusOK)); got != "Patient/lee=<nil> Patient/ward=<nil>" {
			t.Errorf("a cohort with a condition twice: %s", got)
		}
	})
}

// TestCohortComparator: a stored cohort recording an amount with a
// comparator (age-min < 65, risk-min > 0.3) is 422 naming the
// characteristic, rather than evaluated as if the comparator were not
// there (as age 65 and over).
func TestCohortComparator(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		criterion := func(code, value string) string {
			return `{"code":{"coding":[{"system":"` + care.SystemCohortCriterion + `","code":"` + code + `"}]},` + value + `,"exclude":false}`
		}
		risk := criterion("risk-code", `"valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"713634000"}]}`)
		for id, chars := range map[string]string{
			"young": criterion("age-min", `"valueQuantity":{"value":65,"comparator":"<"}`),
			"risky": risk + "," + criterion("risk-min", `"valueQuantity":{"value":0.3,"comparator":">"}`),
		} {
			c.put(`{"resourceType":"Group","id":"` + id + `","type":"person","actual":true,"characteristic":[` + chars + `]}`)
			oo := c.do("POST", "/Group/"+id+"/$cohort", "").want(http.StatusUnprocessableEntity)
			if got := issues(oo); !strings.Contains(got, "without a comparator") {
				t.Errorf("Group/%s: %s", id, got)
			}
			if v := str(c.do("GET", "/Group/"+id, "").want(http.StatusOK), "meta", "versionId"); v != "1" {
				t.Errorf("Group/%s at version %s after a refused evaluation, want 1", id, v)
			}
		}
	})
}

// TestCohortCriterionAmongCodings: a criterion whose code also carries
// another coding, before the one of cohort-criterion, is evaluated, not
// left out; one characteristic coding two criteria is 422 naming it.
func TestCohortCriterionAmongCodings(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		age := `{"system":"http://snomed.info/sct","code":"397669002","display":"Age"}`
		c.put(`{"resourceType":"Group","id":"older","type":"person","actual":true,"characteristic":[
			{"code":{"coding":[{"system":"` + care.SystemCohortCriterion + `","code":"practice"}]},"valueReference":{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"Y12345"}},"exclude":false},
			{"code":{"coding":[` + age + `,{"system":"` + care.SystemCohortCriterion + `","code":"age-min"}]},"valueQuantity":{"value":80},"exclude":false}]}`)
		if got := members(c.do("POST", "/Group/older/$cohort", "").want(http.StatusOK)); got != "Patient/clark=<nil>" {
			t.Errorf("cohort of Y12345 aged 80 or over: %s, want Patient/clark", got)
		}
		c.put(`{"resourceType":"Group","id":"both","type":"person","actual":true,"characteristic":[
			{"code":{"coding":[{"system":"` + care.SystemCohortCriterion + `","code":"age-min"},{"system":"` + care.SystemCohortCriterion + `","code":"age-max"}]},"valueQuantity":{"value":80},"exclude":false}]}`)
		oo := c.do("POST", "/Group/both/$cohort", "").want(http.StatusUnprocessableEntity)
		if got := issues(oo); !strings.Contains(got, "Group.characteristic[0].code: Group/both records the criteria age-min and age-max as one characteristic") {
			t.Errorf("one characteristic coding two criteria: %s", got)
		}
	})
}

// TestCohortPracticeOfAnotherSystem: a stored cohort whose practice is an
// identifier of a system other than ODS codes is 422 naming it, not
// evaluated as the practice with that ODS code.
func TestCohortPracticeOfAnotherSystem(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		c.put(`{"resourceType":"Group","id":"local","type":"person","actual":true,"characteristic":[
			{"code":{"coding":[{"system":"` + care.SystemCohortCriterion + `","code":"practice"}]},"valueReference":{"identifier":{"system":"https://local.example/practice-id","value":"Y12345"}},"exclude":false}]}`)
		oo := c.do("POST", "/Group/local/$cohort", "").want(http.StatusUnprocessableEntity)
		if got := issues(oo); !strings.Contains(got, "Group.characteristic[0]: Group/local records the criterion practice that cannot be evaluated") {
			t.Errorf("a practice of another system: %s", got)
		}
	})
}

// TestCohortAgesCrossed: a cohort whose ageMin is over its ageMax, which
// no one meets, is refused with 400 naming both parameters, and nothing
// is stored; a stored one recording them so is 422 on
// Group/{id}/$cohort and is not evaluated.
func TestCohortAgesCrossed(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		out := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"ageMin","valueInteger":80},{"name":"ageMax","valueInteger":65}]}`).want(http.StatusBadRequest)
		if got := issues(out); !strings.Contains(got, "Parameters.parameter.where(name='ageMin')") || !strings.Contains(got, "ageMin 80 is over ageMax 65") {
			t.Errorf("ageMin over ageMax: %s", got)
		}
		if got := get(out, "issue", 0, "expression", 1); got != "Parameters.parameter.where(name='ageMax')" {
			t.Errorf("second expression %v, want ageMax's", got)
		}
		if n := get(c.do("GET", "/Group?_summary=count", "").want(http.StatusOK), "total"); n != float64(0) {
			t.Errorf("%v Groups after a refused cohort", n)
		}
		c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"ageMin","valueInteger":65},{"name":"ageMax","valueInteger":65}]}`).want(http.StatusCreated)

		criterion := func(code, value string) string {
			return `{"code":{"coding":[{"system":"` + care.SystemCohortCriterion + `","code":"` + code + `"}]},` + value + `,"exclude":false}`
		}
		c.put(`{"resourceType":"Group","id":"crossed","type":"person","actual":true,"characteristic":[` +
			criterion("age-min", `"valueQuantity":{"value":80}`) + "," + criterion("age-max", `"valueQuantity":{"value":65}`) + `]}`)
		out = c.do("POST", "/Group/crossed/$cohort", "").want(http.StatusUnprocessableEntity)
		if got := issues(out); !strings.Contains(got, "Group.characteristic[0]: Group/crossed records criteria that cannot be evaluated: ageMin 80 is over ageMax 65") {
			t.Errorf("a stored cohort with age-min over age-max: %s", got)
		}
		if got := get(out, "issue", 0, "expression", 1); got != "Group.characteristic[1]" {
			t.Errorf("a stored cohort with age-min over age-max: second expression %v, want age-max's, Group.characteristic[1]", got)
		}
		if v := str(c.do("GET", "/Group/crossed", "").want(http.StatusOK), "meta", "versionId"); v != "1" {
			t.Errorf("Group/crossed at version %s after a refused evaluation, want 1", v)
		}
	})
}

// TestCohortMostMembers: criteria selecting more people than a cohort
// holds are refused (422 too-costly, saying how many), and nothing is
// stored: neither a new cohort nor a new version of one evaluated again.
// Criteria selecting as many as it holds make a cohort.
func TestCohortMostMembers(t *testing.T) {
	eachEngine(t, care.Config{CohortMostMembers: 2}, func(t *testing.T, c *client) {
		population(c)
		ages := func(min int) string {
			return `{"resourceType":"Parameters","parameter":[{"name":"ageMin","valueInteger":` + strconv.Itoa(min) + `}]}`
		}
		oo := c.do("POST", "/Group/$cohort", ages(75)).want(http.StatusUnprocessableEntity)
		if got := issues(oo); !strings.Contains(got, "error too-costly Parameters: the criteria select 3 people, more than the 2 a cohort holds") {
			t.Errorf("cohort of 3: %s", got)
		}
		if n := len(entries(c.do("GET", "/Group", "").want(http.StatusOK))); n != 0 {
			t.Errorf("%d Groups stored after a refused cohort, want none", n)
		}
		if g := c.do("POST", "/Group/$cohort", ages(80)).want(http.StatusCreated); members(g) != "Patient/clark=<nil> Patient/lee=<nil>" {
			t.Errorf("cohort of 2: members %q", members(g))
		}

		c.put(`{"resourceType":"Group","id":"over-75","type":"person","actual":true,
			"characteristic":[{"code":{"coding":[{"system":"` + care.SystemCohortCriterion + `","code":"age-min"}]},"valueQuantity":{"value":75},"exclude":false}]}`)
		oo = c.do("POST", "/Group/over-75/$cohort", "").want(http.StatusUnprocessableEntity)
		if got := issues(oo); !strings.Contains(got, "error too-costly Group.characteristic: the criteria select 3 people") {
			t.Errorf("Group/over-75: %s", got)
		}
		if v := str(c.do("GET", "/Group/over-75", "").want(http.StatusOK), "meta", "versionId"); v != "1" {
			t.Errorf("Group/over-75 at version %s after a refused evaluation, want 1", v)
		}
	})
}

// TestCohortRiskOfPeriod: a risk result whose effective time is a period
// or an instant, as GP systems send some, is as recent as it says: the
// latest ranks the patient, not an older one given as a dateTime.
func TestCohortRiskOfPeriod(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		// Ward's 0.36 of 2026-10-01 and Lee's 0.40 are superseded.
		c.put(`{"resourceType":"Observation","id":"efi-ward-2","status":"final","code":{"coding":[{"system":"http://snomed.info/sct","code":"713634000"}]},
			"subject":{"reference":"Patient/ward"},"effectivePeriod":{"start":"2026-11-01","end":"2026-11-02"},"valueQuantity":{"value":0.05}}`)
		c.put(`{"resourceType":"Observation","id":"efi-lee-2","status":"final","code":{"coding":[{"system":"http://snomed.info/sct","code":"713634000"}]},
			"subject":{"reference":"Patient/lee"},"effectiveInstant":"2026-11-20T09:00:00Z","valueQuantity":{"value":0.07}}`)
		g := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"riskCode","valueString":"`+efi+`"},{"name":"riskMin","valueDecimal":0.2}]}`).want(http.StatusCreated)
		if got := members(g); got != "Patient/clark=0.28" {
			t.Errorf("members %q, want Patient/clark=0.28 alone", got)
		}
	})
}

// TestCohortConditionsBounded: a cohort of more conditions than it takes,
// each one more search over the population, is refused with 400 naming
// condition, and nothing is stored; a stored one recording as many is 422
// on Group/{id}/$cohort. As many as it takes make a cohort.
func TestCohortConditionsBounded(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		conditions := func(n int) (params, chars string) {
			var p, ch []string
			for i := range n {
				p = append(p, `{"name":"condition","valueString":"http://snomed.info/sct|`+strconv.Itoa(44054006+i)+`"}`)
				ch = append(ch, `{"code":{"coding":[{"system":"`+care.SystemCohortCriterion+`","code":"condition"}]},"valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"`+strconv.Itoa(44054006+i)+`"}]},"exclude":false}`)
			}
			return `{"resourceType":"Parameters","parameter":[` + strings.Join(p, ",") + `]}`, strings.Join(ch, ",")
		}
		many, manyChars := conditions(11)
		oo := c.do("POST", "/Group/$cohort", many).want(http.StatusBadRequest)
		if got := issues(oo); !strings.Contains(got, "Parameters.parameter.where(name='condition'): condition is given 11 times") {
			t.Errorf("11 conditions: %s", got)
		}
		if n := get(c.do("GET", "/Group?_summary=count", "").want(http.StatusOK), "total"); n != float64(0) {
			t.Errorf("%v Groups after a refused cohort", n)
		}
		ten, _ := conditions(10)
		c.do("POST", "/Group/$cohort", ten).want(http.StatusCreated)

		c.put(`{"resourceType":"Group","id":"many","type":"person","actual":true,"characteristic":[` + manyChars + `]}`)
		oo = c.do("POST", "/Group/many/$cohort", "").want(http.StatusUnprocessableEntity)
		if got := issues(oo); !strings.Contains(got, "a cohort takes at most 10") {
			t.Errorf("Group/many: %s", got)
		}
	})
}

// TestCohortWholeNumberAsDecimal: a stored cohort whose age or PAM level
// is a whole number written as a decimal (age-min 80.0, pam-level-max
// 2.0) is evaluated with that number, where 80.5 is refused.
func TestCohortWholeNumberAsDecimal(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		criterion := func(code, value string) string {
			return `{"code":{"coding":[{"system":"` + care.SystemCohortCriterion + `","code":"` + code + `"}]},"valueQuantity":` + value + `,"exclude":false}`
		}
		c.put(pamResponse("pam-ward", "completed", "2026-01-01T10:00:00Z", "2", "50"))
		c.put(`{"resourceType":"Group","id":"over-70","type":"person","actual":true,"characteristic":[` +
			criterion("age-min", `{"value":70.0,"system":"http://unitsofmeasure.org","code":"a"}`) + "," + criterion("pam-level-max", `{"value":2.00}`) + `]}`)
		g := c.do("POST", "/Group/over-70/$cohort", "").want(http.StatusOK)
		if got := members(g); got != "Patient/ward=<nil>" {
			t.Errorf("cohort aged 70.0 and over of PAM level 2.00 at most: %q, want Patient/ward", got)
		}
		c.put(`{"resourceType":"Group","id":"over-80-and-a-half","type":"person","actual":true,"characteristic":[` + criterion("age-min", `{"value":80.5}`) + `]}`)
		oo := c.do("POST", "/Group/over-80-and-a-half/$cohort", "").want(http.StatusUnprocessableEntity)
		if got := issues(oo); !strings.Contains(got, "whole number") {
			t.Errorf("cohort aged 80.5 and over: %s", got)
		}
	})
}
