package care_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"carefhir/care"
	"carefhir/server"
	"carefhir/server/access"
)

// TestOfficialResponses stores the R4 example Questionnaires and writes
// their example responses against them: the consistent one is stored, the
// others are refused with the problems the examples really have, by
// FHIRPath and linkId.
func TestOfficialResponses(t *testing.T) {
	want := map[string][]string{
		"gcs":  nil,
		"3141": {`QuestionnaireResponse.item[0].item[0].answer[0].item[0]: item "1.1.1" has an answer, but it is not enabled`},
		"bb": {
			`QuestionnaireResponse.item[0].item[0].item[1].answer[0]: the answer is not one of the options of item "sex"`,
			`QuestionnaireResponse.item[0].item[1].item[2].answer[0].item[0].item[0]: the Questionnaire has no item "vitaminKDose1" at this place`,
			`QuestionnaireResponse.item[0].item[1].item[2].answer[0].item[0].item[1]: the Questionnaire has no item "vitaminKDose2" at this place`,
		},
		"f201": {
			`QuestionnaireResponse.item[0].item[0]: the Questionnaire has no item "1.1" at this place`,
			`QuestionnaireResponse.item[2].item[0].answer[0]: item "3.1" is of type boolean, so an answer cannot be a String`,
			`QuestionnaireResponse.item[2].item[1].answer[0]: item "3.2" is of type boolean, so an answer cannot be a String`,
		},
	}
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		for name, problems := range want {
			q, err := os.ReadFile("testdata/r4/Questionnaire-" + name + ".json")
			if err != nil {
				t.Fatal(err)
			}
			c.put(string(q))
			var head struct{ URL string }
			json.Unmarshal(q, &head)
			r := readResponse(t, name, head.URL)
			res := c.do("PUT", "/QuestionnaireResponse/"+name, r)
			if problems == nil {
				res.want(http.StatusCreated)
				continue
			}
			got := issueLines(res.want(http.StatusUnprocessableEntity))
			if !slices.Equal(got, problems) {
				t.Errorf("%s:\n got %q\nwant %q", name, got, problems)
			}
		}
	})
}

// readResponse reads an R4 example response and makes it name the
// Questionnaire by its canonical URL (the examples name it loosely, or
// contain it).
func readResponse(t *testing.T, name, canonical string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/r4/QuestionnaireResponse-" + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "contained")
	m["questionnaire"] = canonical
	out, _ := json.Marshal(m)
	return string(out)
}

// issueLines returns the error issues of an OperationOutcome as
// "expression: diagnostics", in order.
func issueLines(oo map[string]any) []string {
	var out []string
	list, _ := oo["issue"].([]any)
	for _, is := range list {
		if str(is, "severity") == "error" {
			out = append(out, str(is, "expression", 0)+": "+str(is, "diagnostics"))
		}
	}
	return out
}

// rulesQuestionnaire exercises each rule a response is checked by.
const rulesQuestionnaire = `{"resourceType":"Questionnaire","id":"rules","url":"http://example.org/Questionnaire/rules","version":"1","status":"active","item":[
	{"linkId":"smoker","type":"boolean","required":true},
	{"linkId":"per-day","type":"integer","enableWhen":[{"question":"smoker","operator":"=","answerBoolean":true}]},
	{"linkId":"colour","type":"choice","answerOption":[{"valueCoding":{"system":"http://example.org/c","code":"red"}},{"valueCoding":{"system":"http://example.org/c","code":"blue"}}]},
	{"linkId":"aims","type":"string","repeats":true},
	{"linkId":"site","type":"string","readOnly":true,"initial":[{"valueString":"Riverside"}]},
	{"linkId":"group","type":"group","item":[{"linkId":"inner","type":"string"}]}]}`

func TestResponseRules(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		c.put(rulesQuestionnaire)
		write := func(status, items string) *response {
			return c.do("POST", "/QuestionnaireResponse", `{"resourceType":"QuestionnaireResponse","questionnaire":"http://example.org/Questionnaire/rules|1","status":"`+status+`","item":[`+items+`]}`)
		}
		good := `{"linkId":"smoker","answer":[{"valueBoolean":true}]},{"linkId":"per-day","answer":[{"valueInteger":5}]},
			{"linkId":"colour","answer":[{"valueCoding":{"system":"http://example.org/c","code":"red"}}]},
			{"linkId":"aims","answer":[{"valueString":"walk"},{"valueString":"swim"}]},{"linkId":"site","answer":[{"valueString":"Riverside"}]},
			{"linkId":"group","item":[{"linkId":"inner","answer":[{"valueString":"x"}]}]}`
		write("completed", good).want(http.StatusCreated)
		write("in-progress", `{"linkId":"aims","answer":[{"valueString":"walk"}]}`).want(http.StatusCreated)
		for _, tc := range []struct {
			name, status, items, want string
		}{
			{"unknown linkId", "completed", `{"linkId":"smoker","answer":[{"valueBoolean":false}]},{"linkId":"pets"}`, `QuestionnaireResponse.item[1]: the Questionnaire has no item "pets" at this place`},
			{"nested where it is not", "completed", `{"linkId":"smoker","answer":[{"valueBoolean":false}]},{"linkId":"inner","answer":[{"valueString":"x"}]}`, `QuestionnaireResponse.item[1]: the Questionnaire has no item "inner" at this place`},
			{"answer type", "completed", `{"linkId":"smoker","answer":[{"valueString":"yes"}]}`, `QuestionnaireResponse.item[0].answer[0]: item "smoker" is of type boolean, so an answer cannot be a String`},
			{"option not allowed", "completed", `{"linkId":"smoker","answer":[{"valueBoolean":false}]},{"linkId":"colour","answer":[{"valueCoding":{"system":"http://example.org/c","code":"green"}}]}`, `QuestionnaireResponse.item[1].answer[0]: the answer is not one of the options of item "colour"`},
			{"required when completed", "completed", `{"linkId":"aims","answer":[{"valueString":"walk"}]}`, `QuestionnaireResponse: no answer for the required item "smoker"`},
			{"repeats", "completed", `{"linkId":"smoker","answer":[{"valueBoolean":false},{"valueBoolean":true}]}`, `QuestionnaireResponse.item[0]: item "smoker" does not repeat, but has 2 answers`},
			{"enableWhen", "completed", `{"linkId":"smoker","answer":[{"valueBoolean":false}]},{"linkId":"per-day","answer":[{"valueInteger":5}]}`, `QuestionnaireResponse.item[1]: item "per-day" has an answer, but it is not enabled`},
			{"readOnly", "completed", `{"linkId":"smoker","answer":[{"valueBoolean":false}]},{"linkId":"site","answer":[{"valueString":"Elsewhere"}]}`, `QuestionnaireResponse.item[1]: item "site" is read-only: its answer must be its initial value`},
		} {
			got := issueLines(write(tc.status, tc.items).want(http.StatusUnprocessableEntity))
			if !slices.Contains(got, tc.want) {
				t.Errorf("%s: got %q, want %q among them", tc.name, got, tc.want)
			}
		}
		// An unknown Questionnaire, or an unknown version of a known one.
		for _, canonical := range []string{"http://example.org/Questionnaire/nowhere", "http://example.org/Questionnaire/rules|2"} {
			oo := c.do("POST", "/QuestionnaireResponse", `{"resourceType":"QuestionnaireResponse","questionnaire":"`+canonical+`","status":"completed"}`).want(http.StatusUnprocessableEntity)
			if got := issues(oo); !strings.Contains(got, "not-found QuestionnaireResponse.questionnaire") {
				t.Errorf("%s: %s", canonical, got)
			}
		}
		// Nothing refused was stored.
		if n := len(entries(c.do("GET", "/QuestionnaireResponse", "").want(http.StatusOK))); n != 2 {
			t.Errorf("%d responses stored, want 2", n)
		}
	})
}

// TestResponseNamesLatestOfManyQuestionnaires: a response naming a url
// held by many stored Questionnaires of no version is checked against the
// one updated last, not the latest of the first 50 by id.
func TestResponseNamesLatestOfManyQuestionnaires(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		const n = 51
		for i := range n {
			item := "old"
			if i == n-1 {
				item = "new"
				time.Sleep(5 * time.Millisecond) // updated last, not in the same millisecond
			}
			c.put(fmt.Sprintf(`{"resourceType":"Questionnaire","id":"many%02d","url":"http://example.org/q/many","status":"active","item":[{"linkId":%q,"type":"boolean"}]}`, i, item))
		}
		write := func(item string) *response {
			return c.do("POST", "/QuestionnaireResponse", `{"resourceType":"QuestionnaireResponse","questionnaire":"http://example.org/q/many","status":"completed","item":[{"linkId":"`+item+`","answer":[{"valueBoolean":true}]}]}`)
		}
		write("new").want(http.StatusCreated)
		if got := issues(write("old").want(http.StatusUnprocessableEntity)); !strings.Contains(got, `no item "old"`) {
			t.Errorf("a response to an earlier Questionnaire: %s", got)
		}
	})
}

// TestResponseNamesHighestQuestionnaireVersion: a response naming a url
// without a version is checked against the Questionnaire of the highest
// version, as SemVer orders them (1.10.0 after 1.9.0), not the one updated
// last, as a ValueSet named by url is found; past the Questionnaires of
// one url compared, it must name the version.
func TestResponseNamesHighestQuestionnaireVersion(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		q := func(id, version, item string) string {
			return `{"resourceType":"Questionnaire","id":"` + id + `","url":"http://example.org/q/semver","version":"` + version + `","status":"active","item":[{"linkId":"` + item + `","type":"boolean"}]}`
		}
		c.put(q("v1-10", "1.10.0", "ten"))
		time.Sleep(5 * time.Millisecond) // updated later, not in the same millisecond
		c.put(q("v1-9", "1.9.0", "nine"))
		write := func(canonical, item string) *response {
			return c.do("POST", "/QuestionnaireResponse", `{"resourceType":"QuestionnaireResponse","questionnaire":"`+canonical+`","status":"completed","item":[{"linkId":"`+item+`","answer":[{"valueBoolean":true}]}]}`)
		}
		write("http://example.org/q/semver", "ten").want(http.StatusCreated)
		if got := issues(write("http://example.org/q/semver", "nine").want(http.StatusUnprocessableEntity)); !strings.Contains(got, `no item "nine"`) {
			t.Errorf("a response to 1.9.0, naming no version: %s", got)
		}
		write("http://example.org/q/semver|1.9.0", "nine").want(http.StatusCreated)

		for i := range 101 {
			c.put(fmt.Sprintf(`{"resourceType":"Questionnaire","id":"bound%03d","url":"http://example.org/q/bound","version":"%d","status":"active","item":[{"linkId":"x","type":"boolean"}]}`, i, i))
		}
		if got := issues(write("http://example.org/q/bound", "x").want(http.StatusUnprocessableEntity)); !strings.Contains(got, "too-costly QuestionnaireResponse.questionnaire") {
			t.Errorf("a url held by 101 Questionnaires, naming no version: %s", got)
		}
		write("http://example.org/q/bound|100", "x").want(http.StatusCreated)
	})
}

// TestResponseQuestionnaireVersionsServerLimit: the Questionnaires of one
// url compared to find the newest are bounded by the server's
// Limits.CanonicalVersions, as its ValueSets are: past it, a response
// naming the url without a version is 422 too-costly, and one naming the
// version is checked against it.
func TestResponseQuestionnaireVersionsServerLimit(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		put := func(i int) {
			c.put(fmt.Sprintf(`{"resourceType":"Questionnaire","id":"limit%d","url":"http://example.org/q/limit","version":"%d","status":"active","item":[{"linkId":"v%d","type":"boolean"}]}`, i, i, i))
		}
		write := func(canonical, item string) *response {
			return c.do("POST", "/QuestionnaireResponse", `{"resourceType":"QuestionnaireResponse","questionnaire":"`+canonical+`","status":"completed","item":[{"linkId":"`+item+`","answer":[{"valueBoolean":true}]}]}`)
		}
		for i := range 3 {
			put(i)
		}
		write("http://example.org/q/limit", "v2").want(http.StatusCreated)
		put(3)
		if got := issues(write("http://example.org/q/limit", "v3").want(http.StatusUnprocessableEntity)); !strings.Contains(got, "too-costly QuestionnaireResponse.questionnaire") || !strings.Contains(got, "more than 3 Questionnaires") {
			t.Errorf("a url held by 4 Questionnaires, 3 compared, naming no version: %s", got)
		}
		write("http://example.org/q/limit|3", "v3").want(http.StatusCreated)
	}, func(sc *server.Config) { sc.Limits.CanonicalVersions = 3 })
}

// TestResponseInTransaction writes a response and the Questionnaire it
// names in one transaction: the outcome does not depend on the order of
// the entries (R4 http.html, 3.1.0.11.2), and the response is checked
// against the Questionnaire as the transaction leaves it.
func TestResponseInTransaction(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		questionnaire := func(id, item string) string {
			if id != "" {
				id = `"id":"` + id + `",`
			}
			return `{"resourceType":"Questionnaire",` + id + `"url":"http://example.org/q/order1","status":"active","item":[{"linkId":"` + item + `","type":"boolean","required":true}]}`
		}
		response := func(item string) string {
			return `{"fullUrl":"urn:uuid:6b1e2c3d-0000-4000-8000-000000000001","resource":{"resourceType":"QuestionnaireResponse","questionnaire":"http://example.org/q/order1","status":"completed",
				"item":[{"linkId":"` + item + `","answer":[{"valueBoolean":true}]}]},"request":{"method":"POST","url":"QuestionnaireResponse"}}`
		}
		post := func(q string) string {
			return `{"fullUrl":"urn:uuid:6b1e2c3d-0000-4000-8000-000000000002","resource":` + q + `,"request":{"method":"POST","url":"Questionnaire"}}`
		}
		put := func(q string) string {
			var m map[string]any
			if err := json.Unmarshal([]byte(q), &m); err != nil {
				t.Fatal(err)
			}
			return `{"resource":` + q + `,"request":{"method":"PUT","url":"Questionnaire/` + str(m, "id") + `"}}`
		}
		tx := func(entries ...string) string {
			return `{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(entries, ",") + `]}`
		}
		for _, tc := range []struct {
			name  string
			write func(string) string
			id    string
		}{{"POST", post, ""}, {"PUT", put, "q-put"}} {
			q := questionnaire(tc.id, "smoker")
			// The response before the Questionnaire, and after it.
			c.do("POST", "", tx(response("smoker"), tc.write(q))).want(http.StatusOK)
			c.do("POST", "", tx(tc.write(q), response("smoker"))).want(http.StatusOK)
			// The Questionnaire written after the response is the one it
			// is checked against.
			for _, order := range [][]string{{response("pets"), tc.write(q)}, {tc.write(q), response("pets")}} {
				oo := c.do("POST", "", tx(order...)).want(http.StatusUnprocessableEntity)
				if got := issues(oo); !strings.Contains(got, `the Questionnaire has no item "pets"`) {
					t.Errorf("%s: %s", tc.name, got)
				}
			}
		}
		// A new version of a stored Questionnaire, written after the
		// response that fits it only.
		c.do("POST", "", tx(response("walker"), put(questionnaire("q-put", "walker")))).want(http.StatusOK)

		// A Questionnaire the transaction deletes is not held, as after a
		// DELETE of its own.
		c.put(`{"resourceType":"Questionnaire","id":"q-gone","url":"http://example.org/q/gone","status":"active"}`)
		gone := `{"resource":{"resourceType":"QuestionnaireResponse","questionnaire":"http://example.org/q/gone","status":"completed"},"request":{"method":"POST","url":"QuestionnaireResponse"}}`
		del := `{"request":{"method":"DELETE","url":"Questionnaire/q-gone"}}`
		for _, order := range [][]string{{gone, del}, {del, gone}} {
			oo := c.do("POST", "", tx(order...)).want(http.StatusUnprocessableEntity)
			if got := issues(oo); !strings.Contains(got, "not-found") {
				t.Errorf("deleted Questionnaire: %s", got)
			}
		}
		c.do("GET", "/Questionnaire/q-gone", "").want(http.StatusOK)
	})
}

// TestPCSPGoalInTransaction writes a PCSP and its Goal in one transaction:
// the Goal is checked as the transaction writes it, whatever the order.
func TestPCSPGoalInTransaction(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		goal := func(description string) string {
			return `{"resource":{"resourceType":"Goal","id":"goal-tx","lifecycleStatus":"active","description":` + description + `,"subject":{"reference":"Patient/ward"}},"request":{"method":"PUT","url":"Goal/goal-tx"}}`
		}
		plan := `{"resource":` + pcsp("active", "2026-12-10", "goal-tx") + `,"request":{"method":"PUT","url":"CarePlan/pcsp-ward"}}`
		tx := func(entries ...string) string {
			return `{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(entries, ",") + `]}`
		}
		for _, order := range [][]string{{plan, goal(`{"coding":[{"system":"http://example.org/goals","code":"walk"}]}`)}, {goal(`{"coding":[{"system":"http://example.org/goals","code":"walk"}]}`), plan}} {
			oo := c.do("POST", "", tx(order...)).want(http.StatusUnprocessableEntity)
			if got := issues(oo); !strings.Contains(got, "has no description.text") {
				t.Errorf("goal without text: %s", got)
			}
		}
		c.do("POST", "", tx(plan, goal(`{"text":"Walk to the shops"}`))).want(http.StatusOK)
	})
}

// TestPCSPGoalOutsideCare: under the care-team policy, a coordinator
// writing a PCSP learns nothing of a Goal they may not read: one of a
// patient outside their care is answered as a Goal not held here is.
func TestPCSPGoalOutsideCare(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		c.put(`{"resourceType":"CareTeam","id":"team-ward","status":"active","subject":{"reference":"Patient/ward"},"participant":[{"member":{"reference":"Practitioner/cc"}}]}`)
		c.put(`{"resourceType":"Goal","id":"goal-lee","lifecycleStatus":"active","description":{"text":"Keep up with my allotment"},"subject":{"reference":"Patient/lee"}}`)
		c.put(`{"resourceType":"Goal","id":"goal-ward","lifecycleStatus":"active","description":{"text":"Walk to the shops"},"subject":{"reference":"Patient/ward"}}`)
		c.token = "cc"
		for _, goal := range []string{"goal-none", "goal-lee"} {
			r := c.do("PUT", "/CarePlan/pcsp-ward", pcsp("active", "2027-01-10", "goal-ward", goal))
			if r.status != http.StatusCreated && r.status != http.StatusOK || strings.Contains(string(r.body), "Patient/lee") {
				t.Errorf("a PCSP naming %s: %d %s", goal, r.status, r.body)
			}
		}
	}, func(sc *server.Config) { sc.AccessPolicy = access.CareTeamPolicy })
}

// TestPCSPGoalOfThePatient: a PCSP's Goals are what matters to its
// patient: a Goal of another patient is refused naming it, without saying
// whose it is, and the plan is not stored. (Under the care-team policy a
// Goal outside the writer's care is answered as one not held:
// TestPCSPGoalOutsideCare.)
func TestPCSPGoalOfThePatient(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		c.put(`{"resourceType":"Goal","id":"goal-lee","lifecycleStatus":"active","description":{"text":"Keep up with my allotment"},"subject":{"reference":"Patient/lee"}}`)
		c.put(`{"resourceType":"Goal","id":"goal-ward","lifecycleStatus":"active","description":{"text":"Walk to the shops"},"subject":{"reference":"Patient/ward"}}`)
		c.put(`{"resourceType":"CareTeam","id":"team-ward","status":"active","subject":{"reference":"Patient/ward"},"participant":[{"member":{"reference":"Practitioner/cc"}}]}`)
		c.token = "cc"
		oo := c.do("PUT", "/CarePlan/pcsp-ward", pcsp("active", "2027-01-10", "goal-ward", "goal-lee")).want(http.StatusUnprocessableEntity)
		if got := issues(oo); !strings.Contains(got, "CarePlan.goal[1]: Goal/goal-lee is not a goal of Patient/ward") || strings.Contains(got, "Patient/lee") {
			t.Errorf("a PCSP with another patient's goal: outcome\n%s", got)
		}
		// Named by a version, the Goal is still another patient's.
		oo = c.do("PUT", "/CarePlan/pcsp-ward", pcsp("active", "2027-01-10", "goal-ward", "goal-lee/_history/1")).want(http.StatusUnprocessableEntity)
		if got := issues(oo); !strings.Contains(got, "CarePlan.goal[1]: Goal/goal-lee/_history/1 is not a goal of Patient/ward") {
			t.Errorf("a PCSP with another patient's goal by version: outcome\n%s", got)
		}
		c.do("GET", "/CarePlan/pcsp-ward", "").want(http.StatusNotFound)
		c.do("PUT", "/CarePlan/pcsp-ward", pcsp("active", "2027-01-10", "goal-ward")).want(http.StatusCreated)
	})
}

func TestPAMScoringThroughHTTP(t *testing.T) {
	cal := calibrationOf(t)
	t.Run("no calibration", func(t *testing.T) {
		eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
			population(c)
			// Unscorable: stored with a warning, no Observations.
			oo := c.do("PUT", "/QuestionnaireResponse/q1", pamResponse("q1", "completed", "2026-11-01T10:00:00Z", "3", ""), "Prefer", "return=OperationOutcome").want(http.StatusCreated)
			if got := issues(oo); !strings.Contains(got, "warning incomplete") || !strings.Contains(got, "no PAM calibration table is configured") {
				t.Errorf("outcome:\n%s", got)
			}
			if obs := pamObservations(t, c, "q1"); len(obs) != 0 {
				t.Errorf("Observations of an unscorable response: %v", obs)
			}
			oo = c.do("POST", "/QuestionnaireResponse/q1/$pam-score", "").want(http.StatusUnprocessableEntity)
			if !strings.Contains(issues(oo), "no PAM calibration table") {
				t.Errorf("$pam-score: %s", issues(oo))
			}
			// The licensed tool's score.
			c.do("PUT", "/QuestionnaireResponse/q2", pamResponse("q2", "completed", "2026-11-01T10:00:00Z", "3", "47.1")).want(http.StatusCreated)
			p := c.do("POST", "/QuestionnaireResponse/q2/$pam-score", "").want(http.StatusOK)
			if got := paramsText(p); got != "score=47.1 level=2 answered=13 source=licensed" {
				t.Errorf("$pam-score: %s", got)
			}
			if obs := pamObservations(t, c, "q2"); len(obs) != 2 || str(obs["pam-level"], "status") != "final" {
				t.Errorf("$pam-score on an unchanged response changed its Observations: %v", obs)
			}
			c.do("POST", "/QuestionnaireResponse/nowhere/$pam-score", "").want(http.StatusNotFound)
			c.put(rulesQuestionnaire)
			c.put(`{"resourceType":"QuestionnaireResponse","id":"other","questionnaire":"http://example.org/Questionnaire/rules","status":"in-progress"}`)
			c.do("POST", "/QuestionnaireResponse/other/$pam-score", "").want(http.StatusUnprocessableEntity)
		})
	})
	t.Run("calibration", func(t *testing.T) {
		eachEngine(t, care.Config{PAM: care.PAMConfig{Calibration: cal}}, func(t *testing.T, c *client) {
			population(c)
			c.do("PUT", "/QuestionnaireResponse/q1", pamResponse("q1", "completed", "2026-11-01T10:00:00Z", "3", "")).want(http.StatusCreated)
			obs := pamObservations(t, c, "q1")
			if get(obs["pam-score"], "valueQuantity", "value") != 66.7 || get(obs["pam-level"], "valueInteger") != 3.0 {
				t.Errorf("calibrated Observations: %v", obs)
			}
			p := c.do("POST", "/QuestionnaireResponse/q1/$pam-score", "").want(http.StatusOK)
			if got := paramsText(p); got != "score=66.7 level=3 answered=13 source=calibration" {
				t.Errorf("$pam-score: %s", got)
			}
		})
	})
}

// paramsText writes the parameters of a Parameters resource as name=value.
func paramsText(p map[string]any) string {
	var out []string
	list, _ := p["parameter"].([]any)
	for _, x := range list {
		for k, v := range x.(map[string]any) {
			if strings.HasPrefix(k, "value") {
				b, _ := json.Marshal(v)
				out = append(out, str(x, "name")+"="+strings.Trim(string(b), `"`))
			}
		}
	}
	return strings.Join(out, " ")
}

// TestOperationsNeedScopes: a token without the scopes an operation's
// type needs is refused.
func TestOperationsNeedScopes(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		c.do("PUT", "/QuestionnaireResponse/q1", pamResponse("q1", "completed", "2026-11-01T10:00:00Z", "3", "50")).want(http.StatusCreated)
		c.token = "patient-reader"
		for _, op := range []struct{ method, path, body string }{
			{"GET", "/Practitioner/cc/$caseload", ""},
			{"POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"practice","valueString":"Y12345"}]}`},
			{"POST", "/Task/$generate-reminders", ""},
			{"POST", "/QuestionnaireResponse/q1/$pam-score", ""},
		} {
			if r := c.do(op.method, op.path, op.body); r.status != http.StatusForbidden {
				t.Errorf("%s %s with user/Patient.rs: %d, want 403: %s", op.method, op.path, r.status, r.body)
			}
		}
	})
}

// TestOperationsRefuseWhatTheyCannotSee: an operation that concludes from
// the records it does not find is refused (403, nothing written) when a
// search it needs is of a type the token may not search, rather than
// answering as if there were none: a cohort of the patients without an
// active plan, run by a token that cannot search CarePlans, would list
// every patient as having none. What it does not need is not refused.
func TestOperationsRefuseWhatTheyCannotSee(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		walkGoal(c)
		c.put(pcsp("active", "2027-01-10", "goal-walk"))
		c.token = "no-plans"
		oo := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"withoutActivePcsp","valueBoolean":true}]}`).want(http.StatusForbidden)
		if got := issues(oo); !strings.Contains(got, "CarePlan") {
			t.Errorf("a cohort needing CarePlans, by a token without them: outcome\n%s, want it to name CarePlan", got)
		}
		c.do("GET", "/Practitioner/cc/$caseload", "").want(http.StatusForbidden)
		c.token = "admin"
		if n := get(c.do("GET", "/Group?_summary=count", "").want(http.StatusOK), "total"); n != 0.0 {
			t.Errorf("%v Groups stored by refused cohorts, want 0", n)
		}
		c.token = "no-plans"
		c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"practice","valueString":"Y12345"}]}`).want(http.StatusCreated)
	})
}

// TestPCSPOneReviewDate: a PCSP giving two review dates is 422 at the
// second, and nothing is stored; with one it is stored.
func TestPCSPOneReviewDate(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		walkGoal(c)
		one := pcsp("active", "2026-12-10", "goal-walk")
		two := strings.Replace(one, `"valueDate":"2026-12-10"}`, `"valueDate":"2026-12-10"},{"url":"`+care.ReviewDateURL+`","valueDate":"2027-06-01"}`, 1)
		oo := c.do("PUT", "/CarePlan/pcsp-ward", two).want(http.StatusUnprocessableEntity)
		if got := issues(oo); !strings.Contains(got, "CarePlan.extension[1]: a PCSP has one review date") {
			t.Errorf("a PCSP with two review dates: outcome\n%s", got)
		}
		c.do("GET", "/CarePlan/pcsp-ward", "").want(http.StatusNotFound)
		c.do("PUT", "/CarePlan/pcsp-ward", one).want(http.StatusCreated)
	})
}

// TestPCSPClaimedByVersion: a PCSP claiming the profile by a version of
// it (url|1.0.0), which is checked as a PCSP, is one in caseloads,
// reminders and cohorts too; a plan claiming another profile whose url
// begins as the PCSP's is none.
func TestPCSPClaimedByVersion(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		walkGoal(c)
		c.put(strings.Replace(pcsp("active", "2026-12-10", "goal-walk"), care.PCSPProfileURL, care.PCSPProfileURL+"|1.0.0", 1))
		c.put(`{"resourceType":"CarePlan","id":"other","meta":{"profile":["` + care.PCSPProfileURL + `Draft"]},"status":"active","intent":"plan","subject":{"reference":"Patient/baker"}}`)
		checkParts(t, caseloadOf(t, c, "/Organization/y12345/$caseload")["Patient/ward"], map[string]any{"carePlan": "CarePlan/pcsp-ward", "reviewDue": "2026-12-10"})
		if parts := caseloadOf(t, c, "/Organization/y12345/$caseload")["Patient/baker"]; parts["carePlan"] != nil {
			t.Errorf("Baker's caseload entry: %v, want no PCSP", parts)
		}
		rem := generateReminders(c, "2026-12-01")
		tasks := entries(c.do("GET", "/Task?code="+care.SystemCareTask+"|pcsp-review", "").want(http.StatusOK))
		if len(tasks) != 1 || str(tasks[0], "focus", "reference") != "CarePlan/pcsp-ward" {
			t.Errorf("reminders %s: review reminders %v, want one of CarePlan/pcsp-ward", paramsText(rem), tasks)
		}
		g := c.do("POST", "/Group/$cohort", `{"resourceType":"Parameters","parameter":[{"name":"practice","valueString":"Y12345"},{"name":"withoutActivePcsp","valueBoolean":true}]}`).want(http.StatusCreated)
		if got := members(g); got != "Patient/baker=<nil> Patient/clark=<nil>" {
			t.Errorf("cohort without an active PCSP: %q, want Baker and Clark", got)
		}
	})
}

// TestResponseQuestionnaireURLWithComma: a response is checked against
// the Questionnaire of the url it names, a comma in it included: not
// against one whose url is the part before the comma, and one naming a
// url held by none is 422 not-found.
func TestResponseQuestionnaireURLWithComma(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		c.put(`{"resourceType":"Questionnaire","id":"q","url":"http://example.org/q","status":"active","item":[{"linkId":"a","type":"string","required":true}]}`)
		c.put(`{"resourceType":"Questionnaire","id":"q2","url":"http://example.org/q,2","status":"active","item":[{"linkId":"b","type":"string","required":true}]}`)
		response := func(id, questionnaire, link string) string {
			return `{"resourceType":"QuestionnaireResponse","id":"` + id + `","questionnaire":"` + questionnaire + `","status":"completed","item":[{"linkId":"` + link + `","answer":[{"valueString":"yes"}]}]}`
		}
		c.do("PUT", "/QuestionnaireResponse/r2", response("r2", "http://example.org/q,2", "b")).want(http.StatusCreated)
		oo := c.do("PUT", "/QuestionnaireResponse/rx", response("rx", "http://example.org/q,x", "a")).want(http.StatusUnprocessableEntity)
		if got := issues(oo); !strings.Contains(got, "not-found QuestionnaireResponse.questionnaire: the Questionnaire http://example.org/q,x is not held") {
			t.Errorf("a response naming http://example.org/q,x: %s", got)
		}
		c.do("GET", "/QuestionnaireResponse/rx", "").want(http.StatusNotFound)
	})
}
