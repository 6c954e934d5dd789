package care_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"carefhir/care"
)

// TestExtensionsInstalled: the extensions care coordination defines are
// served as StructureDefinitions, and a validator given the definitions
// checks an Appointment's MDT care team against its own: a reference, not
// a string.
func TestExtensionsInstalled(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		for _, u := range []string{care.ReviewDateURL, care.MDTCareTeamURL, care.RiskValueURL} {
			found := entries(c.do("GET", "/StructureDefinition?url="+url.QueryEscape(u), "").want(http.StatusOK))
			if len(found) != 1 || str(found[0], "type") != "Extension" {
				t.Errorf("StructureDefinition %s: %v", u, found)
			}
		}
	})

	v := validator(t, care.Config{})
	for _, tc := range []struct{ value, want string }{
		{`"valueString":"team-ward"`, "error"},
		{`"valueReference":{"reference":"CareTeam/team-ward"}`, ""},
	} {
		appt := `{"resourceType":"Appointment","status":"booked","start":"2026-12-10T10:00:00Z","end":"2026-12-10T11:00:00Z",
			"extension":[{"url":"` + care.MDTCareTeamURL + `",` + tc.value + `}],
			"participant":[{"actor":{"reference":"Patient/ward"},"status":"accepted"},{"actor":{"reference":"Practitioner/cc"},"status":"accepted"}]}`
		var got []string
		for _, is := range v.Validate(context.Background(), []byte(appt)) {
			if strings.HasPrefix(is.Expression, "Appointment.extension[0]") {
				got = append(got, is.Severity+": "+is.Message)
			}
		}
		if tc.want == "" && len(got) > 0 || tc.want != "" && (len(got) == 0 || !strings.HasPrefix(got[0], tc.want)) {
			t.Errorf("MDT care team %s: %q at the extension, want %q", tc.value, got, tc.want)
		}
	}
}

// TestMDTCareTeamSearch: the Appointments of a CareTeam's MDT meetings
// are found by the search parameter mdt-care-team, which the server
// serves as a SearchParameter and lists for Appointment in its
// CapabilityStatement, and by which it includes the CareTeam.
func TestMDTCareTeamSearch(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		c.put(`{"resourceType":"Patient","id":"ward"}`)
		c.put(`{"resourceType":"CareTeam","id":"team-ward","status":"active","subject":{"reference":"Patient/ward"}}`)
		c.put(`{"resourceType":"CareTeam","id":"team-other","status":"active","subject":{"reference":"Patient/ward"}}`)
		for id, team := range map[string]string{"mdt-1": "team-ward", "mdt-2": "team-other", "clinic": ""} {
			ext := ""
			if team != "" {
				ext = `"extension":[{"url":"` + care.MDTCareTeamURL + `","valueReference":{"reference":"CareTeam/` + team + `"}}],`
			}
			c.put(`{"resourceType":"Appointment","id":"` + id + `","status":"booked",` + ext + `"start":"2026-12-10T10:00:00Z","end":"2026-12-10T11:00:00Z",
				"participant":[{"actor":{"reference":"Patient/ward"},"status":"accepted"}]}`)
		}
		for _, q := range []string{"mdt-care-team=CareTeam/team-ward", "mdt-care-team=team-ward", "mdt-care-team:CareTeam=team-ward"} {
			got := entries(c.do("GET", "/Appointment?"+q, "").want(http.StatusOK))
			if len(got) != 1 || str(got[0], "id") != "mdt-1" {
				t.Errorf("GET Appointment?%s: %v, want Appointment/mdt-1 alone", q, got)
			}
		}
		got := entries(c.do("GET", "/Appointment?mdt-care-team=CareTeam/team-ward&_include=Appointment:mdt-care-team", "").want(http.StatusOK))
		if len(got) != 2 || str(got[1], "resourceType")+"/"+str(got[1], "id") != "CareTeam/team-ward" {
			t.Errorf("_include=Appointment:mdt-care-team: %v, want the Appointment and CareTeam/team-ward", got)
		}

		got = entries(c.do("GET", "/CareTeam?_id=team-other&_revinclude=Appointment:mdt-care-team", "").want(http.StatusOK))
		if len(got) != 2 || str(got[1], "id") != "mdt-2" {
			t.Errorf("_revinclude=Appointment:mdt-care-team: %v, want CareTeam/team-other and Appointment/mdt-2", got)
		}
		got = entries(c.do("GET", "/Appointment?mdt-care-team.subject=Patient/ward&_sort=_id", "").want(http.StatusOK))
		if len(got) != 2 || str(got[0], "id") != "mdt-1" || str(got[1], "id") != "mdt-2" {
			t.Errorf("GET Appointment?mdt-care-team.subject=Patient/ward: %v, want mdt-1 and mdt-2", got)
		}

		sp := c.do("GET", "/SearchParameter/Appointment-mdt-care-team", "").want(http.StatusOK)
		if str(sp, "code") != "mdt-care-team" || str(sp, "type") != "reference" {
			t.Errorf("SearchParameter/Appointment-mdt-care-team: %v", sp)
		}
		meta := c.do("GET", "/metadata", "").want(http.StatusOK)
		var listed []any
		for _, r := range meta["rest"].([]any)[0].(map[string]any)["resource"].([]any) {
			if r := r.(map[string]any); r["type"] == "Appointment" {
				for _, p := range r["searchParam"].([]any) {
					if p := p.(map[string]any); p["name"] == "mdt-care-team" {
						listed = append(listed, p)
					}
				}
			}
		}
		if len(listed) != 1 || str(listed[0].(map[string]any), "definition") != str(sp, "url") || str(listed[0].(map[string]any), "type") != "reference" {
			t.Errorf("CapabilityStatement Appointment searchParam mdt-care-team: %v, want one naming %s", listed, str(sp, "url"))
		}
	})
}

// TestInstalledCanonicalsReadOnly: a Questionnaire or SearchParameter
// stored with the canonical url of one care coordination installs (the
// PAM Questionnaire, the search parameter mdt-care-team), which would
// answer a search by that url before it, is 422 at its url, and nothing is
// stored; another version of it is stored.
func TestInstalledCanonicalsReadOnly(t *testing.T) {
	eachEngine(t, care.Config{}, func(t *testing.T, c *client) {
		spURL := care.Base + "/SearchParameter/Appointment-mdt-care-team"
		for _, tc := range []struct{ typ, body string }{
			{"Questionnaire", `{"resourceType":"Questionnaire","url":"` + care.PAMQuestionnaireURL + `","status":"active","item":[{"linkId":"pam-1","text":"Another statement","type":"string"}]}`},
			{"SearchParameter", `{"resourceType":"SearchParameter","url":"` + spURL + `","name":"x","status":"active","description":"x","code":"mdt-care-team","base":["Appointment"],"type":"reference","expression":"Appointment.basedOn"}`},
		} {
			oo := c.do("POST", "/"+tc.typ, tc.body).want(http.StatusUnprocessableEntity)
			if got := issues(oo); !strings.HasPrefix(got, "error business-rule "+tc.typ+".url: ") {
				t.Errorf("POST %s with an installed url: %s", tc.typ, got)
			}
			url := strings.Split(strings.Split(tc.body, `"url":"`)[1], `"`)[0]
			if got := entries(c.do("GET", "/"+tc.typ+"?url="+url, "").want(http.StatusOK)); len(got) != 1 || str(got[0], "publisher") != "carefhir" {
				t.Errorf("%s?url=%s: %v, want the installed one alone", tc.typ, url, got)
			}
			c.do("POST", "/"+tc.typ, strings.Replace(tc.body, `"status"`, `"version":"9.0.0","status"`, 1)).want(http.StatusCreated)
		}
	})
}
