package care_test

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"carefhir/care"
	"carefhir/server"
	"carefhir/server/access"
)

// TestPAMSubject: a scored PAM response names the Patient it measures, by
// reference or by an identifier that one Patient held here has; otherwise
// it is refused with 422 at QuestionnaireResponse.subject, storing nothing.
func TestPAMSubject(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		c.put(`{"resourceType":"Patient","id":"nhs","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}],"birthDate":"1950-01-01"}`)
		c.put(`{"resourceType":"Patient","id":"twin-1","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000017"}]}`)
		c.put(`{"resourceType":"Patient","id":"twin-2","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000017"}]}`)
		withSubject := func(id, status, subject string) string {
			return strings.Replace(pamResponse(id, status, "2026-11-01T10:00:00Z", "3", "50"), `"subject":{"reference":"Patient/ward"},`, subject, 1)
		}
		for _, tc := range []struct{ name, status, subject, want string }{
			{"none", "completed", "", "QuestionnaireResponse.subject: a PAM response that is completed has a subject"},
			{"none, amended", "amended", "", "QuestionnaireResponse.subject: a PAM response that is amended has a subject"},
			{"not a Patient", "completed", `"subject":{"reference":"Group/g1"},`, "QuestionnaireResponse.subject.reference: the subject of a PAM response must reference a Patient held here"},
			{"identifier held by none", "completed", `"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9999999999"}},`, "QuestionnaireResponse.subject.identifier: the subject of a PAM response must reference a Patient held here: no Patient"},
			{"identifier held by two", "completed", `"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000017"}},`, "more than one Patient held here has the identifier"},
			{"display alone", "completed", `"subject":{"display":"Pat Ward"},`, "QuestionnaireResponse.subject: the subject of a PAM response must reference a Patient held here"},
		} {
			oo := c.do("PUT", "/QuestionnaireResponse/bad", withSubject("bad", tc.status, tc.subject)).want(http.StatusUnprocessableEntity)
			if got := issues(oo); !strings.Contains(got, tc.want) {
				t.Errorf("%s: outcome\n%s\nwant %q", tc.name, got, tc.want)
			}
		}
		c.do("GET", "/QuestionnaireResponse/bad", "").want(http.StatusNotFound)

		// In progress, a response needs no subject yet.
		c.do("PUT", "/QuestionnaireResponse/draft", withSubject("draft", "in-progress", "")).want(http.StatusCreated)

		// By identifier: the Observations are the Patient's who has it,
		// and the patient's open re-measurement reminder is closed.
		c.put(`{"resourceType":"Task","id":"remeasure-nhs","status":"requested","intent":"plan","code":{"coding":[{"system":"` + care.SystemCareTask + `","code":"pam-remeasure"}]},"for":{"reference":"Patient/nhs"},"restriction":{"period":{"end":"2026-11-01"}}}`)
		c.do("PUT", "/QuestionnaireResponse/by-nhs", withSubject("by-nhs", "completed", `"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}},`)).want(http.StatusCreated)
		obs := pamObservations(t, c, "by-nhs")
		if len(obs) != 2 || str(obs["pam-score"], "subject", "reference") != "Patient/nhs" || str(obs["pam-level"], "subject", "reference") != "Patient/nhs" {
			t.Errorf("Observations of a response whose subject is an identifier: %v", obs)
		}
		if st := str(c.do("GET", "/Task/remeasure-nhs", "").want(http.StatusOK), "status"); st != "completed" {
			t.Errorf("re-measurement Task is %s after a PAM of the patient by identifier", st)
		}
		p := c.do("POST", "/QuestionnaireResponse/by-nhs/$pam-score", "").want(http.StatusOK)
		if got := paramsText(p); got != "score=50 level=2 answered=13 source=licensed" {
			t.Errorf("$pam-score: %s", got)
		}
	})
}

// TestPAMSubjectWrittenInTransaction: a PAM response naming its patient
// by NHS number finds the Patient the same transaction creates or
// updates, whatever the order of the entries, as it is written there
// rather than as it is stored.
func TestPAMSubjectWrittenInTransaction(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		const nhs = `{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}`
		c.put(`{"resourceType":"Patient","id":"old","identifier":[` + nhs + `]}`)
		response := func(id string) string {
			return strings.Replace(pamResponse(id, "completed", "2026-11-01T10:00:00Z", "3", "50"), `"subject":{"reference":"Patient/ward"}`, `"subject":{"identifier":`+nhs+`}`, 1)
		}
		entry := func(resource, url string) string {
			return `{"resource":` + resource + `,"request":{"method":"PUT","url":"` + url + `"}}`
		}
		// The NHS number moves from the stored record to a new one: the
		// response, first, is the new one's.
		c.do("POST", "", `{"resourceType":"Bundle","type":"transaction","entry":[`+
			entry(response("by-nhs"), "QuestionnaireResponse/by-nhs")+","+
			entry(`{"resourceType":"Patient","id":"old"}`, "Patient/old")+","+
			entry(`{"resourceType":"Patient","id":"new","identifier":[`+nhs+`]}`, "Patient/new")+`]}`).want(http.StatusOK)
		obs := pamObservations(t, c, "by-nhs")
		if len(obs) != 2 || str(obs["pam-score"], "subject", "reference") != "Patient/new" || str(obs["pam-level"], "subject", "reference") != "Patient/new" {
			t.Errorf("Observations of a response naming by NHS number a Patient its transaction writes: %v, want Patient/new's", obs)
		}
	})
}

// serverID is a QuestionnaireResponse named by an id the server chose.
var serverID = regexp.MustCompile(`QuestionnaireResponse/[0-9a-f-]{36}`)

// TestPAMSubjectOfTheWriter: a PAM response's identifier is looked up
// among the patients who writes it may read. A patient's own app, writing
// a response it authors, and, under the care-team policy, a coordinator
// score their patient by NHS number, but cannot score another patient by
// theirs, nor learn from the answer whether a patient with that number is
// held: the app is answered 422 by the PAM's check, the coordinator 403 by
// the access decision made before it, alike for both numbers.
func TestPAMSubjectOfTheWriter(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		c.put(`{"resourceType":"Patient","id":"ward","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000025"}],"name":[{"family":"Ward","given":["Pat"]}],"birthDate":"1948-03-12","generalPractitioner":[{"reference":"Organization/y12345"}]}`)
		c.put(`{"resourceType":"Patient","id":"lee","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}],"name":[{"family":"Lee","given":["Pat"]}],"birthDate":"1946-05-05","generalPractitioner":[{"reference":"Organization/y99999"}]}`)
		c.put(`{"resourceType":"CareTeam","id":"team-ward","status":"active","subject":{"reference":"Patient/ward"},"participant":[{"member":{"reference":"Practitioner/cc"}}]}`)
		var ccResponse string
		for i, writer := range []struct{ token, author, refused string }{{"ward-app", "Patient/ward", "422 "}, {"cc", "Practitioner/cc", "403 "}} {
			byNHS := func(nhs string) string {
				qr := strings.Replace(pamResponse("", "completed", "2026-11-01T10:00:00Z", "3", "50"), `"subject":{"reference":"Patient/ward"}`,
					`"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhs+`"}}`, 1)
				return strings.Replace(strings.Replace(qr, `"id":"",`, "", 1), `"author":{"reference":"Practitioner/cc"}`, `"author":{"reference":"`+writer.author+`"}`, 1)
			}
			c.token = writer.token
			var outcomes []string
			for _, nhs := range []string{"9000000009", "9999999999"} {
				r := c.do("POST", "/QuestionnaireResponse", byNHS(nhs))
				// The id the server chose for the response differs.
				body := serverID.ReplaceAllString(strings.ReplaceAll(string(r.body), nhs, "N"), "QuestionnaireResponse/ID")
				outcomes = append(outcomes, fmt.Sprintf("%d %s", r.status, body))
			}
			if outcomes[0] != outcomes[1] || !strings.HasPrefix(outcomes[0], writer.refused) {
				t.Errorf("%s: another patient's NHS number is answered\n%s\nand one held by none\n%s", writer.token, outcomes[0], outcomes[1])
			}
			written := c.do("POST", "/QuestionnaireResponse", byNHS("9000000025")).want(http.StatusCreated)
			c.do("GET", "/QuestionnaireResponse/"+str(written, "id"), "").want(http.StatusOK)
			if writer.token == "cc" {
				ccResponse = str(written, "id")
			}
			c.token = ""
			for patient, want := range map[string]int{"lee": 0, "ward": 2 * (i + 1)} {
				b := c.do("GET", "/Observation?subject=Patient/"+patient+"&code="+care.SystemPAM+"|", "").want(http.StatusOK)
				if got := len(entries(b)); got != want {
					t.Errorf("after %s's PAMs, %d PAM Observations of Patient/%s, want %d", writer.token, got, patient, want)
				}
			}
		}
		// Once the coordinator's part in the team has ended, the response
		// naming Ward by NHS number is out of their reach.
		c.put(`{"resourceType":"CareTeam","id":"team-ward","status":"active","subject":{"reference":"Patient/ward"},"participant":[{"member":{"reference":"Practitioner/cc"},"period":{"end":"2020-01-01"}}]}`)
		c.token = "cc"
		c.do("GET", "/QuestionnaireResponse/"+ccResponse, "").want(http.StatusNotFound)
	}, func(sc *server.Config) { sc.AccessPolicy = access.CareTeamPolicy })
}

// TestPAMAuthored: a completed or amended PAM response says when it was
// authored, the date its Observations take and from which the next PAM is
// due; one that does not is refused and nothing is written. In progress,
// it may leave it out.
func TestPAMAuthored(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		undated := func(id, status string) string {
			return strings.Replace(pamResponse(id, status, "", "3", "50"), `"authored":"",`, "", 1)
		}
		for _, status := range []string{"completed", "amended"} {
			oo := c.do("PUT", "/QuestionnaireResponse/undated", undated("undated", status)).want(http.StatusUnprocessableEntity)
			if got := issues(oo); !strings.Contains(got, "required QuestionnaireResponse.authored: a PAM response that is "+status+" says when it was authored") {
				t.Errorf("%s without authored: outcome\n%s", status, got)
			}
		}
		c.do("GET", "/QuestionnaireResponse/undated", "").want(http.StatusNotFound)
		if obs := entries(c.do("GET", "/Observation?subject=Patient/ward&code="+care.SystemPAM+"|pam-level", "").want(http.StatusOK)); len(obs) != 0 {
			t.Errorf("PAM Observations of a refused response: %v", obs)
		}
		c.do("PUT", "/QuestionnaireResponse/draft", undated("draft", "in-progress")).want(http.StatusCreated)
		generateReminders(c, "2026-12-01")
		if tasks := entries(c.do("GET", "/Task?code="+care.SystemCareTask+"|pam-remeasure", "").want(http.StatusOK)); len(tasks) != 0 {
			t.Errorf("re-measurement reminders of a PAM never completed: %v", tasks)
		}
	})
}

// TestPAMPerformer: the author (else the source) of a PAM response
// performs its Observations when an Observation's performer can be it: a
// response authored by a Device, or by one of its contained resources, is
// stored and scored on a server that validates every write, its
// Observations without that performer.
func TestPAMPerformer(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		by := func(id, author string) string {
			return strings.Replace(pamResponse(id, "completed", "2026-11-01T10:00:00Z", "3", "50"), `"author":{"reference":"Practitioner/cc"}`, author, 1)
		}
		for _, tc := range []struct{ id, author, performer string }{
			{"by-device", `"author":{"reference":"Device/kiosk"}`, ""},
			{"by-device-for-patient", `"author":{"reference":"Device/kiosk"},"source":{"reference":"Patient/ward"}`, "Patient/ward"},
			{"by-contained", `"contained":[{"resourceType":"Practitioner","id":"pr"}],"author":{"reference":"#pr"}`, ""},
			{"by-coordinator", `"author":{"reference":"Practitioner/cc"}`, "Practitioner/cc"},
		} {
			c.do("PUT", "/QuestionnaireResponse/"+tc.id, by(tc.id, tc.author)).want(http.StatusCreated)
			obs := pamObservations(t, c, tc.id)
			for _, kind := range []string{"pam-score", "pam-level"} {
				if o := obs[kind]; o == nil || str(o, "performer", 0, "reference") != tc.performer {
					t.Errorf("%s: %s Observation %v, want performer %q", tc.id, kind, o, tc.performer)
				}
			}
		}
	}, validating(t, care.Config{}))
}

// TestPAMAmendedAuthor: a PAM response amended to name its author (and
// its patient's name) rightly, its answers as they were, amends its
// Observations' performer and subject, as it amends their values; scored
// again, they are already in step and keep their version.
func TestPAMAmendedAuthor(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		c.do("PUT", "/QuestionnaireResponse/p1", pamResponse("p1", "completed", "2026-11-01T10:00:00Z", "3", "50")).want(http.StatusCreated)
		amended := strings.Replace(pamResponse("p1", "amended", "2026-11-01T10:00:00Z", "3", "50"), `"author":{"reference":"Practitioner/cc"}`, `"author":{"reference":"Practitioner/gp"}`, 1)
		amended = strings.Replace(amended, `"subject":{"reference":"Patient/ward"}`, `"subject":{"reference":"Patient/ward","display":"Pat Ward"}`, 1)
		c.do("PUT", "/QuestionnaireResponse/p1", amended).want(http.StatusOK)
		c.do("POST", "/QuestionnaireResponse/p1/$pam-score", "").want(http.StatusOK)
		obs := pamObservations(t, c, "p1")
		for _, kind := range []string{"pam-score", "pam-level"} {
			o := obs[kind]
			if str(o, "performer", 0, "reference") != "Practitioner/gp" || str(o, "subject", "display") != "Pat Ward" ||
				str(o, "status") != "amended" || str(o, "meta", "versionId") != "2" {
				t.Errorf("%s Observation after the response's author was amended: %v, want version 2, amended, performed by Practitioner/gp of Pat Ward", kind, o)
			}
		}
	})
}

// TestPAMItemsOnce: a PAM response that answers a statement or gives the
// score twice is refused naming the item, since it would be counted
// twice; a licensed score over fewer statements than PAM-13 needs is
// stored with a warning.
func TestPAMItemsOnce(t *testing.T) {
	eachEngine(t, care.Config{PAM: care.PAMConfig{Calibration: calibrationOf(t)}}, func(t *testing.T, c *client) {
		population(c)
		answer := func(link, code string) string {
			return fmt.Sprintf(`{"linkId":%q,"answer":[{"valueCoding":{"system":%q,"code":%q}}]}`, link, care.SystemPAMAnswer, code)
		}
		withItems := func(items ...string) string {
			return fmt.Sprintf(`{"resourceType":"QuestionnaireResponse","id":"dup","questionnaire":%q,"status":"completed","subject":{"reference":"Patient/ward"},"authored":"2026-11-01","item":[%s]}`,
				care.PAMQuestionnaireURL, strings.Join(items, ","))
		}
		var nine []string
		for i := 1; i <= 9; i++ {
			nine = append(nine, answer(fmt.Sprintf("pam-%d", i), "3"))
		}
		score := func(v string) string { return `{"linkId":"pam-score","answer":[{"valueDecimal":` + v + `}]}` }
		for _, tc := range []struct {
			name  string
			items []string
			want  string
		}{
			{"a statement twice", append(slices.Clone(nine), answer("pam-1", "4")), "QuestionnaireResponse.item[9]: the PAM item pam-1 appears more than once (also item[0])"},
			{"the score twice", append(slices.Clone(nine), score("50"), score("70")), "QuestionnaireResponse.item[10]: the PAM item pam-score appears more than once (also item[9])"},
			{"in progress too", append(slices.Clone(nine), answer("pam-9", "1")), "QuestionnaireResponse.item[9]: the PAM item pam-9 appears more than once"},
		} {
			body := withItems(tc.items...)
			if tc.name == "in progress too" {
				body = strings.Replace(body, `"completed"`, `"in-progress"`, 1)
			}
			oo := c.do("PUT", "/QuestionnaireResponse/dup", body).want(http.StatusUnprocessableEntity)
			if got := issues(oo); !strings.Contains(got, tc.want) {
				t.Errorf("%s: outcome\n%s\nwant %q", tc.name, got, tc.want)
			}
		}
		c.do("GET", "/QuestionnaireResponse/dup", "").want(http.StatusNotFound)
		if obs := pamObservations(t, c, "dup"); len(obs) != 0 {
			t.Errorf("Observations of a refused response: %v", obs)
		}

		// Nine statements and a licensed score: stored, scored, with a
		// warning that PAM-13 needs ten.
		oo := c.do("PUT", "/QuestionnaireResponse/dup", withItems(append(slices.Clone(nine), score("50"))...), "Prefer", "return=OperationOutcome").want(http.StatusCreated)
		if got := issues(oo); !strings.Contains(got, "warning incomplete QuestionnaireResponse.item: the licensed score was stored, but only 9 statements are answered") {
			t.Errorf("outcome:\n%s", got)
		}
		if obs := pamObservations(t, c, "dup"); len(obs) != 2 {
			t.Errorf("Observations of a licensed score over nine statements: %v", obs)
		}
	})
}

func calibrationOf(t *testing.T) *care.Calibration {
	t.Helper()
	f, err := os.Open("testdata/calibration-synthetic.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cal, err := care.ReadCalibration(f)
	if err != nil {
		t.Fatal(err)
	}
	return cal
}

// TestPAMObservationsRetired: a completed PAM response updated back to in
// progress or stopped, or to answer another Questionnaire, has its score
// and level Observations marked entered-in-error in the same write, and
// they count no more in the caseload, cohorts and reminders.
func TestPAMObservationsRetired(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		population(c)
		c.put(rulesQuestionnaire)
		wardCareTeam(c)
		pamLevelMax2 := `{"resourceType":"Parameters","parameter":[{"name":"pamLevelMax","valueInteger":2}]}`
		for _, tc := range []struct{ name, update string }{
			{"in progress", pamResponse("pam-w", "in-progress", "2026-05-01T10:00:00Z", "2", "50")},
			{"stopped", pamResponse("pam-w", "stopped", "2026-05-01T10:00:00Z", "2", "50")},
			{"another Questionnaire", `{"resourceType":"QuestionnaireResponse","id":"pam-w","questionnaire":"http://example.org/Questionnaire/rules","status":"in-progress","subject":{"reference":"Patient/ward"}}`},
		} {
			c.put(pamResponse("pam-w", "completed", "2026-05-01T10:00:00Z", "2", "50"))
			if obs := pamObservations(t, c, "pam-w"); len(obs) != 2 || str(obs["pam-level"], "status") == "entered-in-error" {
				t.Fatalf("%s: Observations of the completed response: %v", tc.name, obs)
			}
			c.do("PUT", "/QuestionnaireResponse/pam-w", tc.update).want(http.StatusOK)
			obs := pamObservations(t, c, "pam-w")
			for _, o := range obs {
				if str(o, "status") != "entered-in-error" {
					t.Errorf("%s: Observation %s is %s", tc.name, str(o, "code", "coding", 0, "code"), str(o, "status"))
				}
			}
			if len(obs) != 2 {
				t.Errorf("%s: %d Observations, want the 2 it had", tc.name, len(obs))
			}
			if _, ok := caseloadOf(t, c, "/Practitioner/cc/$caseload")["Patient/ward"]["pamLevel"]; ok {
				t.Errorf("%s: the caseload still shows a PAM level", tc.name)
			}
			if got := members(c.do("POST", "/Group/$cohort", pamLevelMax2).want(http.StatusCreated)); got != "" {
				t.Errorf("%s: PAM level cohort %q, want nobody", tc.name, got)
			}
			rem := generateReminders(c, "2026-12-01")
			if get(rem, "parameter", 0, "valueInteger") != 0.0 {
				t.Errorf("%s: reminders %v", tc.name, rem)
			}
		}
		// Completed again, the same Observations count again.
		c.put(pamResponse("pam-w", "completed", "2026-05-01T10:00:00Z", "2", "50"))
		if got := members(c.do("POST", "/Group/$cohort", pamLevelMax2).want(http.StatusCreated)); got != "Patient/ward=<nil>" {
			t.Errorf("completed again: cohort %q", got)
		}
	})
}
