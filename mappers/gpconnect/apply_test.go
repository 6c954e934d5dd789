package gpconnect

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/gin-gonic/gin"

	"carefhir/server"
	"carefhir/store/enginetest"
)

// engines are the storage engines every test here runs against.
var engines = enginetest.Engines()

// TestApplyToServer posts an imported record as the transaction it is to
// a real server on each engine, validating every write against R4 and
// UK Core: everything is created once, and importing it again writes onto
// what is there, so no resource is duplicated.
func TestApplyToServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server on each engine")
	}
	gin.SetMode(gin.TestMode)
	im, err := importer()
	if err != nil {
		t.Fatal(err)
	}
	v, err := validator()
	if err != nil {
		t.Fatal(err)
	}
	required := map[string][]string{}
	for _, typ := range []string{"Patient", "Organization", "Practitioner", "PractitionerRole", "Location", "Observation"} {
		required[typ] = ukCoreProfile(v, typ)
	}
	rc := patchedRecords[0]
	res := im.Import(patched(t, rc.name, rc.placeholder, rc.nhs))
	body := encode(t, res.Bundle)
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			st := e.Open(t)
			srv := httptest.NewServer(server.New(server.Config{Store: st, Validator: v, ValidateWrites: true, RequiredProfiles: required}))
			t.Cleanup(func() {
				srv.Close()
				st.Close()
			})
			base := srv.URL + "/fhir"
			for round, want := range []string{"201 Created", "200 OK"} {
				statuses := post(t, base, body)
				if len(statuses) != len(res.Bundle.Entry) {
					t.Fatalf("round %d: %d entries answered, want %d", round+1, len(statuses), len(res.Bundle.Entry))
				}
				for i, s := range statuses {
					if s != want {
						t.Errorf("round %d: entry %d (%s) answered %q, want %q", round+1, i, res.Bundle.Entry[i].Request.Url.Get(), s, want)
					}
				}
				for typ, n := range rc.want {
					if got := total(t, base, typ); got != n {
						t.Errorf("round %d: %d %s stored, want %d", round+1, got, typ, n)
					}
				}
				if got := total(t, base, "Patient?identifier="+url.QueryEscape(nhsNumberSystem+"|"+rc.nhs)); got != 1 {
					t.Errorf("round %d: %d Patients with NHS number %s", round+1, got, rc.nhs)
				}
			}
			// The second round wrote no version of anything.
			if got := total(t, base, "_history"); got != len(res.Bundle.Entry) {
				t.Errorf("the server's history holds %d versions after the second round, want %d, one per entry", got, len(res.Bundle.Entry))
			}
		})
	}
}

// post sends a transaction and returns the status of each entry.
func post(t *testing.T, base string, body []byte) []string {
	t.Helper()
	resp, err := http.Post(base, "application/fhir+json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the transaction answered %d: %.2000s", resp.StatusCode, b)
	}
	var out struct {
		Entry []struct{ Response struct{ Status string } }
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	var statuses []string
	for _, e := range out.Entry {
		statuses = append(statuses, e.Response.Status)
	}
	return statuses
}

// total returns how many resources a search finds, or versions a
// history holds.
func total(t *testing.T, base, search string) int {
	t.Helper()
	sep := "?"
	if bytes.ContainsRune([]byte(search), '?') {
		sep = "&"
	}
	resp, err := http.Get(base + "/" + search + sep + "_summary=count")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b struct{ Total int }
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("search %s: %d %v", search, resp.StatusCode, err)
	}
	return b.Total
}
