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
