package server_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"carefhir/server"
	"carefhir/server/access"
	"carefhir/store/enginetest"
)

// TestGroupReadByItsWholeMembership: a Group names its members, so a token
// narrowed to some patients reads a Group only when it reaches every
// patient the Group names: a cohort of patients a and b is not read, found,
// included, listed in a history or gathered by $everything by a token that
// reaches a alone, so its list of members never tells them who b is.
func TestGroupReadByItsWholeMembership(t *testing.T) {
	who := principals{
		"app": {Subject: "app", Patient: "a", Scopes: mustScopes(t, "patient/*.rs")},
		"p1":  {Subject: "p1", FHIRUser: "Practitioner/p1", Scopes: mustScopes(t, "user/*.rs")},
	}
	policy := func(cfg *server.Config) { cfg.AccessPolicy = access.CareTeamPolicy }
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who, policy)
			twoPatientRecords(c)
			c.put("/CareTeam/ct", `{"resourceType":"CareTeam","id":"ct","status":"active","subject":{"reference":"Patient/a"},"participant":[{"member":{"reference":"Practitioner/p1"}}]}`)
			group := func(id string, members ...string) {
				body := `{"resourceType":"Group","id":"` + id + `","type":"person","actual":true,"member":[`
				for i, m := range members {
					if i > 0 {
						body += ","
					}
					body += `{"entity":{"reference":"Patient/` + m + `"}}`
				}
				c.put("/Group/"+id, body+`]}`)
			}
			group("both", "a", "b")
			group("mine", "a")
			for _, name := range []string{"app", "p1"} {
				by := func(path string) *response { return c.by(name, "GET", path, "") }
				by("/Group/both").want(t, http.StatusNotFound)
				by("/Group/both/_history/1").want(t, http.StatusNotFound)
				by("/Group/both/_history").want(t, http.StatusNotFound)
				by("/Group/mine").want(t, http.StatusOK)
				wantIDs(t, name+": search", by("/Group"), "Group/mine")
				wantIDs(t, name+": search by member", by("/Group?member=Patient/a"), "Group/mine")
				if total := get(by("/Group?_summary=count").want(t, http.StatusOK).json(t), "total"); total == 2.0 {
					t.Errorf("%s: _summary=count counts %v Groups, one of them out of reach", name, total)
				}
				wantIDs(t, name+": include", by("/Group?_include=Group:member"), "Group/mine", "Patient/a")
				wantIDs(t, name+": revinclude", by("/Patient?_revinclude=Group:member"), "Patient/a", "Group/mine")
				if _, entries, _ := historyPage(t, by("/Group/_history")); len(entries) != 1 || entries[0] != "Group/mine" {
					t.Errorf("%s: Group history holds %v, want Group/mine", name, entries)
				}
				wantIDs(t, name+": $everything", by("/Patient/a/$everything?_type=Patient,Group"), "Patient/a", "Group/mine")
				by("/Patient?_has:Group:member:_id=both").want(t, http.StatusForbidden)
				if d := by("/Observation?subject:Group._id=both").want(t, http.StatusForbidden).outcome(t, "forbidden", ""); !strings.Contains(d, "every patient") {
					t.Errorf("%s: a chain through Groups is refused saying %q, not why", name, d)
				}
			}
		})
	}
}

// TestEverythingPagesPastGroupsLeftOut: a page of $everything that fills
// up looks ahead for more of the record; a Group it finds there that the
// token may not read (one of patients a and b, to a's app) is left out,
// and the page still links to the next, so the Group of a alone that
// follows it is reached, where the page ended the record without a next
// link.
func TestEverythingPagesPastGroupsLeftOut(t *testing.T) {
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := groupsBothAndMine(t, e)
			for _, name := range []string{"app", "p1"} {
				got := pagesOf(t, c, name, "/Patient/a/$everything?_type=Patient,Group&_count=1", 10)
				if want := []string{"Patient/a", "Group/mine"}; !slices.Equal(got, want) {
					t.Errorf("%s: the pages of $everything hold %v, want %v", name, got, want)
				}
			}
		})
	}
}

// TestSortedSearchAcrossTypesPastGroupsLeftOut: a search of several types
// sorted by _id reads each type's next matches and keeps the first of them
// all; the Groups a token may not read (one of patients a and b, to a's
// app) are left out of what it reads, and the pages still reach the Group
// of a alone, in sort order, and end, where the Group was lost from the
// pages, or they read the left-out Group again and again, each an empty
// page with a next link.
func TestSortedSearchAcrossTypesPastGroupsLeftOut(t *testing.T) {
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := groupsBothAndMine(t, e)
			for _, name := range []string{"app", "p1"} {
				for _, count := range []string{"1", "2", "3"} {
					got := pagesOf(t, c, name, "?_type=Group,Observation&_sort=_id&_count="+count, 5)
					if want := []string{"Group/mine", "Observation/oa"}; !slices.Equal(got, want) {
						t.Errorf("%s, _count=%s: the pages hold %v, want %v", name, count, got, want)
					}
				}
			}
		})
	}
}

// groupsBothAndMine serves engine e under the care-team policy, with the
// records of twoPatientRecords, Group/both of patients a and b and
// Group/mine of a alone, to "app", a's token of patient/*.rs, and "p1", a
// practitioner of user/*.rs on a's CareTeam: both reach a alone.
func groupsBothAndMine(t *testing.T, e enginetest.Engine) *accessClient {
	t.Helper()
	c := p1InTeamOfA(t, e, principals{
		"app": {Subject: "app", Patient: "a", Scopes: mustScopes(t, "patient/*.rs")},
		"p1":  {Subject: "p1", FHIRUser: "Practitioner/p1", Scopes: mustScopes(t, "user/*.rs")},
	})
	c.put("/Group/both", `{"resourceType":"Group","id":"both","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/a"}},{"entity":{"reference":"Patient/b"}}]}`)
	c.put("/Group/mine", `{"resourceType":"Group","id":"mine","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/a"}}]}`)
	return c
}

// pagesOf follows the next links from path as who and returns the Type/id
// of the entries of every page, in order; more than most pages fails the
// test.
func pagesOf(t *testing.T, c *accessClient, who, path string, most int) []string {
	t.Helper()
	var got []string
	for pages := 0; path != ""; pages++ {
		if pages == most {
			t.Errorf("%s: more than %d pages, %v so far", who, most, got)
			break
		}
		b := c.by(who, "GET", path, "").want(t, http.StatusOK).searchset(t)
		for _, e := range b.Entry {
			got = append(got, e.Resource.ResourceType+"/"+e.Resource.ID)
		}
		path = b.link("next")
	}
	return got
}

// TestEmptyGroupUnderCareTeam: a Group with no members names no patient,
// so under the care-team policy it follows the scopes alone, as records of
// no patient do: a coordinator creates an empty cohort, reads it and finds
// it, where the write was refused as outside every patient in their care.
func TestEmptyGroupUnderCareTeam(t *testing.T) {
	who := principals{"p1": {Subject: "p1", FHIRUser: "Practitioner/p1", Scopes: mustScopes(t, "user/*.cruds")}}
	policy := func(cfg *server.Config) { cfg.AccessPolicy = access.CareTeamPolicy }
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who, policy)
			twoPatientRecords(c)
			c.put("/Group/of-b", `{"resourceType":"Group","id":"of-b","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/b"}}]}`)
			c.put("/Group/by-number", `{"resourceType":"Group","id":"by-number","type":"person","actual":true,"member":[{"entity":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}}}]}`)
			p1 := func(method, path, body string) *response {
				return c.by("p1", method, path, body, "Content-Type", "application/fhir+json")
			}
			p1("PUT", "/Group/none", `{"resourceType":"Group","id":"none","type":"person","actual":true,"quantity":0}`).want(t, http.StatusCreated)
			p1("GET", "/Group/none", "").want(t, http.StatusOK)
			wantIDs(t, "Groups", p1("GET", "/Group", ""), "Group/none")
			// Adding a patient outside their care is refused, as before.
			p1("PUT", "/Group/none", `{"resourceType":"Group","id":"none","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/b"}}]}`).want(t, http.StatusForbidden)
			p1("GET", "/Group/of-b", "").want(t, http.StatusNotFound)
			p1("GET", "/Group/by-number", "").want(t, http.StatusNotFound)
		})
	}
}

// TestListedRecordsReadByEveryPatient: a List of one patient that lists
// another patient's records says of that patient what it lists, as a
// Group says who else is in it.
// A token narrowed to some patients reads such a record only when it
// reaches every patient whose records it lists, as it would need to write
// it: the List of a listing b's Observation is not read, found, included
// or listed in a history by a token that reaches a alone, nor written by
// one.
func TestListedRecordsReadByEveryPatient(t *testing.T) {
	who := principals{
		"app":    {Subject: "app", Patient: "a", Scopes: mustScopes(t, "patient/*.rs")},
		"writer": {Subject: "writer", Patient: "a", Scopes: mustScopes(t, "patient/*.cruds")},
		"p1":     {Subject: "p1", FHIRUser: "Practitioner/p1", Scopes: mustScopes(t, "user/*.rs")},
	}
	policy := func(cfg *server.Config) { cfg.AccessPolicy = access.CareTeamPolicy }
	list := func(id string, items ...string) string {
		body := `{"resourceType":"List","id":"` + id + `","status":"current","mode":"working","subject":{"reference":"Patient/a"},"entry":[`
		for i, item := range items {
			if i > 0 {
				body += ","
			}
			body += `{"item":{"reference":"` + item + `"}}`
		}
		return body + `]}`
	}
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who, policy)
			twoPatientRecords(c)
			c.put("/CareTeam/ct", `{"resourceType":"CareTeam","id":"ct","status":"active","subject":{"reference":"Patient/a"},"participant":[{"member":{"reference":"Practitioner/p1"}}]}`)
			c.put("/List/mine", list("mine", "Observation/oa", "Encounter/ea", "Patient/a", "Practitioner/dr"))
			c.put("/List/theirs", list("theirs", "Observation/oa", "Observation/ob"))
			c.put("/List/patients", list("patients", "Patient/a", "Patient/b"))
			c.put("/List/unheld", list("unheld", "Observation/oa", "Observation/nowhere"))
			c.put("/List/numbered", `{"resourceType":"List","id":"numbered","status":"current","mode":"working","subject":{"reference":"Patient/a"},
				"entry":[{"item":{"type":"Patient","identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}}}]}`)
			for _, name := range []string{"app", "p1"} {
				by := func(path string) *response { return c.by(name, "GET", path, "") }
				for _, path := range []string{"/List/theirs", "/List/theirs/_history/1", "/List/theirs/_history", "/List/patients", "/List/unheld", "/List/numbered"} {
					by(path).want(t, http.StatusNotFound)
				}
				by("/List/mine").want(t, http.StatusOK)
				wantIDs(t, name+": search", by("/List"), "List/mine")
				wantIDs(t, name+": search by item", by("/List?item=Observation/oa"), "List/mine")
				wantIDs(t, name+": revinclude", by("/Observation?_revinclude=List:item"), "Observation/oa", "List/mine")
				wantIDs(t, name+": compartment", by("/Patient/a/List"), "List/mine")
				if _, entries, _ := historyPage(t, by("/List/_history")); len(entries) != 1 || entries[0] != "List/mine" {
					t.Errorf("%s: List history holds %v, want List/mine", name, entries)
				}
				wantIDs(t, name+": $everything", by("/Patient/a/$everything?_type=Patient,List"), "Patient/a", "List/mine")
				by("/Observation?_has:List:item:_id=theirs").want(t, http.StatusForbidden)
			}
			// Under the care-team rule, a worklist of no subject is read
			// when every patient it lists is in reach.
			c.put("/List/worklist", `{"resourceType":"List","id":"worklist","status":"current","mode":"working","entry":[{"item":{"reference":"Patient/a"}}]}`)
			c.put("/List/worklist-b", `{"resourceType":"List","id":"worklist-b","status":"current","mode":"working","entry":[{"item":{"reference":"Patient/b"}}]}`)
			c.by("p1", "GET", "/List/worklist", "").want(t, http.StatusOK)
			c.by("p1", "GET", "/List/worklist-b", "").want(t, http.StatusNotFound)
			wantIDs(t, "p1: worklists", c.by("p1", "GET", "/List?_id=worklist,worklist-b", ""), "List/worklist")
			c.by("writer", "PUT", "/List/new", list("new", "Observation/oa", "Observation/ob"), "Content-Type", "application/fhir+json").want(t, http.StatusForbidden)
			c.by("writer", "PUT", "/List/new", list("new", "Observation/oa"), "Content-Type", "application/fhir+json").want(t, http.StatusCreated)
		})
	}
}

// TestGroupOfDeletedPatient: a deleted patient's records are disclosed to
// no token narrowed to some patients, and a Group naming them is one: it
// is read by none of them, the deleted patient's own patient/ token
// included, as a practitioner of theirs under the care-team rule does not,
// until the member is dropped (an update, or $cohort by a token reaching
// every patient). The other patients' Groups are read as before.
func TestGroupOfDeletedPatient(t *testing.T) {
	who := principals{
		"app":  {Subject: "app", Patient: "a", Scopes: mustScopes(t, "patient/*.rs")},
		"appb": {Subject: "appb", Patient: "b", Scopes: mustScopes(t, "patient/*.rs")},
		"p1":   {Subject: "p1", FHIRUser: "Practitioner/p1", Scopes: mustScopes(t, "user/*.rs")},
	}
	policy := func(cfg *server.Config) { cfg.AccessPolicy = access.CareTeamPolicy }
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who, policy)
			twoPatientRecords(c)
			for _, p := range []string{"a", "b"} {
				c.put("/CareTeam/ct"+p, `{"resourceType":"CareTeam","id":"ct`+p+`","status":"active","subject":{"reference":"Patient/`+p+`"},"participant":[{"member":{"reference":"Practitioner/p1"}}]}`)
				c.put("/Group/only-"+p, `{"resourceType":"Group","id":"only-`+p+`","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/`+p+`"}}]}`)
				c.put("/List/of-"+p, `{"resourceType":"List","id":"of-`+p+`","status":"current","mode":"working","subject":{"reference":"Patient/`+p+`"},"entry":[{"item":{"reference":"Observation/o`+p+`"}}]}`)
			}
			for _, name := range []string{"appb", "p1"} {
				c.by(name, "GET", "/Group/only-b", "").want(t, http.StatusOK)
			}
			for _, path := range []string{"/Observation/ob", "/Encounter/eb", "/Patient/b"} {
				c.by("admin", "DELETE", path, "").want(t, http.StatusNoContent)
			}
			for _, name := range []string{"appb", "p1"} {
				for _, path := range []string{"/Group/only-b", "/Group/only-b/_history/1", "/List/of-b"} {
					c.by(name, "GET", path, "").want(t, http.StatusNotFound)
				}
				wantIDs(t, name+": Groups", c.by(name, "GET", "/Group?_id=only-b", ""))
			}
			for _, name := range []string{"app", "p1"} {
				c.by(name, "GET", "/Group/only-a", "").want(t, http.StatusOK)
				c.by(name, "GET", "/List/of-a", "").want(t, http.StatusOK)
			}
		})
	}
}

// TestPagesOfListsNameNoneOutOfReach: the Groups and Lists a token narrowed
// to some patients may not read are left out of its search pages after
// the engine found them, and the links of such a page name none of them:
// a cursor naming the last Group or List the engine found (its next link),
// or the first (its previous link), by its id and sort values, would tell
// the client of a cohort, or the title of a list, it is answered 404 for.
// Following the links still finds every one it may read.
func TestPagesOfListsNameNoneOutOfReach(t *testing.T) {
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := patientAndPractitioner(t, e, "a")
			c.put("/Group/cohort-hidden", `{"resourceType":"Group","id":"cohort-hidden","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/a"}},{"entity":{"reference":"Patient/b"}}]}`)
			c.put("/Group/cohort-a", `{"resourceType":"Group","id":"cohort-a","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/a"}}]}`)
			c.put("/List/list-hidden", `{"resourceType":"List","id":"list-hidden","status":"current","mode":"working","title":"Zz safeguarding concern",
				"subject":{"reference":"Patient/a"},"entry":[{"item":{"reference":"Observation/ob"}}]}`)
			c.put("/List/list-a", `{"resourceType":"List","id":"list-a","status":"current","mode":"working","title":"Aa worklist",
				"subject":{"reference":"Patient/a"},"entry":[{"item":{"reference":"Observation/oa"}}]}`)
			hidden := []string{"cohort-hidden", "list-hidden", "zz safeguarding"}
			for _, name := range []string{"app", "p1"} {
				// Each order puts the one out of reach last on a page, and
				// first on another.
				for path, want := range map[string]string{
					"/Group?_count=1&_sort=-_id":  "Group/cohort-a",
					"/Group?_count=1&_sort=_id":   "Group/cohort-a",
					"/List?_count=1&_sort=-title": "List/list-a",
					"/List?_count=1&_sort=title":  "List/list-a",
				} {
					var found []string
					for page := 0; path != "" && page < 5; page++ {
						r := c.by(name, "GET", path, "").want(t, http.StatusOK)
						found = append(found, ids(t, r)...)
						said, next := string(r.body), ""
						for _, l := range get(r.json(t), "link").([]any) {
							link := get(l, "url").(string)
							if get(l, "relation") == "next" {
								next = strings.TrimPrefix(link, c.base)
							}
							if u, err := url.Parse(link); err == nil {
								cursor, _ := base64.RawURLEncoding.DecodeString(u.Query().Get("_cursor"))
								said += string(cursor)
							}
						}
						for _, h := range hidden {
							if strings.Contains(strings.ToLower(said), h) {
								t.Errorf("%s: page %d of %s names %q, which it may not read: %s", name, page, path, h, truncate(r.body))
							}
						}
						path = next
					}
					if strings.Join(found, " ") != want {
						t.Errorf("%s: following the pages found %v, want %s", name, found, want)
					}
				}
			}
		})
	}
}

// TestTrailNamesOnlyWhatTheReaderReaches: the AuditEvent about patient a
// of a read of a Group of a and b names that Group, which a's app is
// answered 404 for: a's app reads the event (by read, vread, search,
// history and $everything) without the entity naming it, and with the
// entity naming a and those naming what it reaches; a reader of the whole
// trail reads it whole.
func TestTrailNamesOnlyWhatTheReaderReaches(t *testing.T) {
	who := principals{
		"app":     {Subject: "app", Patient: "a", Scopes: mustScopes(t, "patient/*.rs")},
		"auditor": {Subject: "aud", Scopes: mustScopes(t, "system/AuditEvent.rs")},
	}
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who)
			twoPatientRecords(c)
			c.put("/Group/both", `{"resourceType":"Group","id":"both","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/a"}},{"entity":{"reference":"Patient/b"}}]}`)
			c.put("/Group/mine", `{"resourceType":"Group","id":"mine","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/a"}}]}`)
			c.by("admin", "GET", "/Group?_count=5", "", "X-Request-Id", "groups").want(t, http.StatusOK)
			var event string // the event of that search about a
			for _, ev := range c.auditEventsByRequest(t, map[string]int{"groups": 200})["groups"] {
				if refs := entityRefs(ev); slices.Contains(refs, "Patient/a") && slices.ContainsFunc(refs, func(r string) bool { return strings.HasPrefix(r, "Group/both") }) {
					event = "/AuditEvent/" + str(ev, "id")
				}
			}
			if event == "" {
				t.Fatal("no AuditEvent about a names Group/both")
			}
			c.by("app", "GET", "/Group/both", "").want(t, http.StatusNotFound)
			check := func(what string, r *response) {
				t.Helper()
				body := string(r.want(t, http.StatusOK).body)
				if strings.Contains(body, "Group/both") {
					t.Errorf("%s: patient a's app reads an AuditEvent naming Group/both, which it is answered 404 for", what)
				}
				if !strings.Contains(body, `"Group/mine`) || !strings.Contains(body, `"Patient/a`) {
					t.Errorf("%s: the AuditEvent lost what a's app reaches: %s", what, body)
				}
			}
			by := func(path string) *response { return c.by("app", "GET", path, "") }
			check("read", by(event))
			check("vread", by(event+"/_history/1"))
			check("history of it", by(event+"/_history"))
			check("search", by("/AuditEvent?_count=500"))
			check("search by entity", by("/AuditEvent?entity=Group/mine&_count=500"))
			check("history of the type", by("/AuditEvent/_history?_count=500"))
			check("$everything", by("/Patient/a/$everything?_type=AuditEvent&_count=500"))
			// Nor are they found by what they are given without: by the
			// entity, in a search or in _has.
			for path, want := range map[string]float64{
				"/AuditEvent?entity=Group/both&_summary=count":                      0,
				"/AuditEvent?entity=Group/both,Group/mine&_summary=count":           1,
				"/AuditEvent?entity=Group/mine&_summary=count":                      1,
				"/Patient?_has:AuditEvent:patient:entity=Group/both&_summary=count": 0,
				"/Patient?_has:AuditEvent:patient:entity=Group/mine&_summary=count": 1,
			} {
				total := get(by(path).want(t, http.StatusOK).json(t), "total").(float64)
				if want == 0 && total != 0 || want != 0 && total == 0 {
					t.Errorf("%s: total %v", path, total)
				}
			}
			if body := string(c.by("auditor", "GET", event, "").want(t, http.StatusOK).body); !strings.Contains(body, "Group/both") {
				t.Errorf("the auditor reads the AuditEvent without Group/both: %s", body)
			}
		})
	}
}

// TestTrailKeepsTheScopedPatient: the entity naming the patient a token's
// access is scoped to is kept in the AuditEvents it reads, even when that
// Patient cannot be read: none is held for its patient context yet, or
// the token has no scope on Patient.
func TestTrailKeepsTheScopedPatient(t *testing.T) {
	who := principals{
		"ghost":   {Subject: "ghost", Patient: "ghost", Scopes: mustScopes(t, "patient/*.rs")},
		"trailer": {Subject: "trailer", Patient: "b", Scopes: mustScopes(t, "patient/AuditEvent.rs")},
	}
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			c := newAccessClient(t, e.Open(t), who)
			twoPatientRecords(c)
			c.put("/Observation/og", `{"resourceType":"Observation","id":"og","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/ghost"}}`)
			c.by("admin", "GET", "/Observation/og", "", "X-Request-Id", "og").want(t, http.StatusOK)
			c.by("admin", "GET", "/Observation/ob", "", "X-Request-Id", "ob").want(t, http.StatusOK)
			c.auditEventsByRequest(t, map[string]int{"og": 200, "ob": 200})
			for who, patient := range map[string]string{"ghost": "ghost", "trailer": "b"} {
				if r := c.by(who, "GET", "/Patient/"+patient, ""); r.status < 400 {
					t.Fatalf("%s reads Patient/%s: %d", who, patient, r.status)
				}
				for _, path := range []string{"/AuditEvent?_count=500", "/AuditEvent?entity=Patient/" + patient + "&_count=500"} {
					body := string(c.by(who, "GET", path, "").want(t, http.StatusOK).body)
					if !strings.Contains(body, `"reference":"Patient/`+patient+`"`) {
						t.Errorf("%s: %s: the AuditEvents lost the entity naming Patient/%s: %s", who, path, patient, truncate([]byte(body)))
					}
				}
			}
		})
	}
}
