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
			base := serve(t, e, server.Config{Validator: v, ValidateWrites: true, RequiredProfiles: required})
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

// serve starts a server configured as cfg on a fresh store of engine e,
// and returns its FHIR base URL.
func serve(t *testing.T, e enginetest.Engine, cfg server.Config) string {
	t.Helper()
	cfg.Store = e.Open(t)
	srv := httptest.NewServer(server.New(cfg))
	t.Cleanup(func() {
		srv.Close()
		cfg.Store.Close()
	})
	return srv.URL + "/fhir"
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

// TestReimportReplacesSections imports a record, then the record again
// as a later fetch would send it after an allergy was taken off the
// allergies section: the section's List (which GP Connect sends without
// an id) is rewritten as a new version of the one List, not stored beside
// the old one, which would leave two allergy lists disagreeing.
func TestReimportReplacesSections(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server on each engine")
	}
	gin.SetMode(gin.TestMode)
	im, err := importer()
	if err != nil {
		t.Fatal(err)
	}
	const allergies = "http://snomed.info/sct|886921000000105"
	rc := patchedRecords[0]
	first := im.Import(patched(t, rc.name, rc.placeholder, rc.nhs))
	second := im.Import(withoutLastEntry(t, patched(t, rc.name, rc.placeholder, rc.nhs), "886921000000105"))
	if first.Failed() || second.Failed() {
		t.Fatalf("refused: %s %s", firstError(first), firstError(second))
	}
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			base := serve(t, e, server.Config{})
			post(t, base, encode(t, first.Bundle))
			lists := total(t, base, "List")
			post(t, base, encode(t, second.Bundle))
			if got := total(t, base, "List"); got != lists {
				t.Errorf("%d Lists after the second import, want the %d of the first", got, lists)
			}
			resp, err := http.Get(base + "/List?code=" + url.QueryEscape(allergies))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var found struct {
				Entry []struct {
					Resource struct {
						Entry []any
						Meta  struct{ VersionID string }
					}
				}
			}
			if err := json.NewDecoder(resp.Body).Decode(&found); err != nil {
				t.Fatal(err)
			}
			if len(found.Entry) != 1 {
				t.Fatalf("%d allergies Lists, want 1", len(found.Entry))
			}
			if l := found.Entry[0].Resource; len(l.Entry) != 23 || l.Meta.VersionID != "2" {
				t.Errorf("the allergies List has %d entries in version %s, want 23 in version 2", len(l.Entry), l.Meta.VersionID)
			}
		})
	}
}

// withoutLastEntry drops the last entry of the List coded code in a
// GP Connect payload.
func withoutLastEntry(t *testing.T, payload []byte, code string) []byte {
	t.Helper()
	var bundle map[string]any
	if err := json.Unmarshal(payload, &bundle); err != nil {
		t.Fatal(err)
	}
	for _, e := range bundle["entry"].([]any) {
		res, _ := e.(map[string]any)["resource"].(map[string]any)
		if res["resourceType"] != "List" || listCode(&entry{typ: "List", src: res}) != "http://snomed.info/sct|"+code {
			continue
		}
		entries := res["entry"].([]any)
		res["entry"] = entries[:len(entries)-1]
		b, err := json.Marshal(bundle)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Fatalf("no List coded %s", code)
	return nil
}
