package care_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"carefhir/care"
)

// TestIncludeBundledPAM: _include=QuestionnaireResponse:questionnaire
// brings the PAM Questionnaire, bundled with the server rather than
// stored, as it brings a stored Questionnaire: once, whether a response
// names its url alone or with its version, beside the stored ones named,
// and only to a token that may read Questionnaires.
func TestIncludeBundledPAM(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		const local = "http://example.org/Questionnaire/local"
		c.put(`{"resourceType":"Questionnaire","id":"local","url":"` + local + `","status":"active"}`)
		c.put(pamResponse("by-url", "in-progress", "2026-11-01T10:00:00Z", "3", ""))
		c.put(strings.Replace(pamResponse("by-version", "in-progress", "2026-11-02T10:00:00Z", "3", ""),
			care.PAMQuestionnaireURL, care.PAMQuestionnaireURL+"|"+care.PAMQuestionnaireVersion, 1))
		c.put(`{"resourceType":"Questionnaire","id":"pam-v1","url":"` + care.PAMQuestionnaireURL + `","version":"1.0.0","status":"retired"}`)
		c.put(`{"resourceType":"QuestionnaireResponse","id":"other-version","questionnaire":"` + care.PAMQuestionnaireURL + `|1.0.0","status":"in-progress"}`)
		c.put(`{"resourceType":"QuestionnaireResponse","id":"local-r","questionnaire":"` + local + `","status":"in-progress","subject":{"reference":"Patient/ward"}}`)
		c.put(`{"resourceType":"CarePlan","id":"plan","status":"active","intent":"plan","subject":{"reference":"Patient/ward"},"instantiatesCanonical":["` + care.PAMQuestionnaireURL + `"]}`)
		for _, tt := range []struct{ who, path, included string }{
			{"admin", "/QuestionnaireResponse?_id=by-url&_include=QuestionnaireResponse:questionnaire", "Questionnaire/pam-13 Questionnaire/pam-v1"},
			{"admin", "/QuestionnaireResponse?_id=by-version&_include=QuestionnaireResponse:questionnaire", "Questionnaire/pam-13"},
			{"admin", "/QuestionnaireResponse?_id=other-version&_include=QuestionnaireResponse:questionnaire", "Questionnaire/pam-v1"},
			{"admin", "/QuestionnaireResponse?_id=by-version,other-version&_include=QuestionnaireResponse:questionnaire", "Questionnaire/pam-13 Questionnaire/pam-v1"},
			{"admin", "/QuestionnaireResponse?_id=by-url,by-version&_include=QuestionnaireResponse:questionnaire", "Questionnaire/pam-13 Questionnaire/pam-v1"},
			{"admin", "/QuestionnaireResponse?_include=QuestionnaireResponse:questionnaire", "Questionnaire/local Questionnaire/pam-13 Questionnaire/pam-v1"},
			{"admin", "/QuestionnaireResponse?_id=by-version&_include=QuestionnaireResponse:questionnaire:Questionnaire", "Questionnaire/pam-13"},
			{"admin", "/CarePlan?_include=CarePlan:instantiates-canonical", "Questionnaire/pam-13 Questionnaire/pam-v1"},
			{"cc", "/QuestionnaireResponse?_include=QuestionnaireResponse:questionnaire", "Questionnaire/local Questionnaire/pam-13 Questionnaire/pam-v1"},
			{"no-plans", "/QuestionnaireResponse?_include=QuestionnaireResponse:questionnaire", ""},
		} {
			c.token = tt.who
			b := c.do("GET", tt.path, "").want(http.StatusOK)
			c.token = ""
			if got := included(b); strings.Join(got, " ") != tt.included {
				t.Errorf("%s: GET %s: included %q, want %q", tt.who, tt.path, got, tt.included)
			}
		}
		// The Questionnaire included is the one a read answers.
		b := c.do("GET", "/QuestionnaireResponse?_id=by-version&_include=QuestionnaireResponse:questionnaire", "").want(http.StatusOK)
		for _, e := range b["entry"].([]any) {
			if str(e, "search", "mode") == "include" && (str(e, "resource", "url") != care.PAMQuestionnaireURL || str(e, "resource", "meta", "versionId") != "1" ||
				str(e, "fullUrl") != c.base+"/Questionnaire/pam-13") {
				t.Errorf("the PAM Questionnaire included: %v", e)
			}
		}
	})
}

// included returns the resources a searchset includes, as Type/id, sorted.
func included(bundle map[string]any) []string { return searched(bundle, "include") }

// searched returns the resources of a searchset of a search mode, as
// Type/id, sorted.
func searched(bundle map[string]any, mode string) []string {
	var out []string
	list, _ := bundle["entry"].([]any)
	for _, e := range list {
		if str(e, "search", "mode") == mode {
			out = append(out, str(e, "resource", "resourceType")+"/"+str(e, "resource", "id"))
		}
	}
	slices.Sort(out)
	return out
}

// TestRevincludeBundledPAM: Questionnaire?_revinclude=
// QuestionnaireResponse:questionnaire goes back from the PAM
// Questionnaire, bundled with the server, to the stored responses naming
// its url with its version or with none, as from a stored Questionnaire,
// and :iterate from it when it is included.
func TestRevincludeBundledPAM(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		c.put(pamResponse("by-url", "in-progress", "2026-11-01T10:00:00Z", "3", ""))
		c.put(strings.Replace(pamResponse("by-version", "in-progress", "2026-11-02T10:00:00Z", "3", ""),
			care.PAMQuestionnaireURL, care.PAMQuestionnaireURL+"|"+care.PAMQuestionnaireVersion, 1))
		c.put(`{"resourceType":"Questionnaire","id":"pam-v1","url":"` + care.PAMQuestionnaireURL + `","version":"1.0.0","status":"retired"}`)
		c.put(`{"resourceType":"QuestionnaireResponse","id":"other-version","questionnaire":"` + care.PAMQuestionnaireURL + `|1.0.0","status":"in-progress"}`)
		for _, tt := range []struct{ who, path, matches, included string }{
			{"admin", "/Questionnaire?_id=pam-13&_revinclude=QuestionnaireResponse:questionnaire", "Questionnaire/pam-13",
				"QuestionnaireResponse/by-url QuestionnaireResponse/by-version"},
			{"admin", "/Questionnaire?url=" + care.PAMQuestionnaireURL + "&_revinclude=QuestionnaireResponse:questionnaire", "Questionnaire/pam-13 Questionnaire/pam-v1",
				"QuestionnaireResponse/by-url QuestionnaireResponse/by-version QuestionnaireResponse/other-version"},
			{"admin", "/QuestionnaireResponse?_id=by-version&_include=QuestionnaireResponse:questionnaire&_revinclude:iterate=QuestionnaireResponse:questionnaire",
				"QuestionnaireResponse/by-version", "Questionnaire/pam-13 QuestionnaireResponse/by-url"},
			{"forms", "/Questionnaire?_id=pam-13&_revinclude=QuestionnaireResponse:questionnaire", "Questionnaire/pam-13", ""},
			{"patient-reader", "/Questionnaire?_id=pam-13&_revinclude=QuestionnaireResponse:questionnaire", "", ""},
			{"no-plans", "/QuestionnaireResponse?_id=by-version&_include=QuestionnaireResponse:questionnaire&_revinclude:iterate=QuestionnaireResponse:questionnaire",
				"QuestionnaireResponse/by-version", ""},
		} {
			c.token = tt.who
			r := c.do("GET", tt.path, "")
			c.token = ""
			if tt.matches == "" {
				r.want(http.StatusForbidden)
				continue
			}
			b := r.want(http.StatusOK)
			if got := strings.Join(searched(b, "match"), " "); got != tt.matches {
				t.Errorf("%s: GET %s: matches %q, want %q", tt.who, tt.path, got, tt.matches)
			}
			if got := strings.Join(searched(b, "include"), " "); got != tt.included {
				t.Errorf("%s: GET %s: included %q, want %q", tt.who, tt.path, got, tt.included)
			}
		}
	})
}
