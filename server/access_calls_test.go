package server_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"carefhir/server"
	"carefhir/server/access"
	"carefhir/store"
	"carefhir/store/enginetest"
)

// countingStore counts the reads and searches made of the engine it wraps
// outside units of work, as a request reading a history makes them.
type countingStore struct {
	store.Store
	calls atomic.Int64
}

func (s *countingStore) Read(ctx context.Context, typ, id string) (*store.Version, error) {
	s.calls.Add(1)
	return s.Store.Read(ctx, typ, id)
}

func (s *countingStore) VRead(ctx context.Context, typ, id string, version int64) (*store.Version, error) {
	s.calls.Add(1)
	return s.Store.VRead(ctx, typ, id, version)
}

func (s *countingStore) Search(ctx context.Context, q store.Query) ([]*store.Version, error) {
	s.calls.Add(1)
	return s.Store.Search(ctx, q)
}

func (s *countingStore) Find(ctx context.Context, q store.Query) (*store.Page, error) {
	s.calls.Add(1)
	return s.Store.(store.Finder).Find(ctx, q)
}

// pageInFewCalls checks that who reads a page of path, a search or a
// history, of n entries at least, with a bounded few store calls of st.
func pageInFewCalls(t *testing.T, st *countingStore, c *accessClient, n int, who, path string) {
	t.Helper()
	before := st.calls.Load()
	_, entries, _ := historyPage(t, c.by(who, "GET", path+"?_count=100", ""))
	calls := st.calls.Load() - before
	if len(entries) < n {
		t.Errorf("%s %s: %d entries, want %d at least", who, path, len(entries), n)
	}
	if calls > 10 {
		t.Errorf("%s %s: %d store calls for %d entries, want a bounded few", who, path, calls, len(entries))
	}
}

// careTeamCalls serves engine e, its store calls counted, under the
// care-team policy to "app", a patient's token for Patient/a, and "p1",
// a practitioner on Patient/a's CareTeam "ct", which it stores.
func careTeamCalls(t *testing.T, e enginetest.Engine) (*countingStore, *accessClient) {
	who := principals{
		"app": {Subject: "app", Patient: "a", Scopes: mustScopes(t, "patient/*.rs")},
		"p1":  {Subject: "p1", FHIRUser: "Practitioner/p1", Scopes: mustScopes(t, "user/*.rs")},
	}
	st := &countingStore{Store: e.Open(t)}
	c := newAccessClient(t, st, who, func(cfg *server.Config) { cfg.AccessPolicy = access.CareTeamPolicy })
	c.put("/CareTeam/ct", `{"resourceType":"CareTeam","id":"ct","status":"active","subject":{"reference":"Patient/a"},"participant":[{"member":{"reference":"Practitioner/p1"}}]}`)
	return st, c
}

// TestRestrictedHistoryReadsInBatches: a history read by a token that may
// not read every version decides the versions of a page with a bounded
// number of store calls, not with one or more for each resource in it:
// the current version of each resource (which decides its earlier ones)
// and the securityContext of each Binary are read a page at a time.
func TestRestrictedHistoryReadsInBatches(t *testing.T) {
	const n = 30
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			st, c := careTeamCalls(t, e)
			twoPatientRecords(c)
			for i := range n {
				for _, status := range []string{"preliminary", "final"} {
					c.put(fmt.Sprintf("/Observation/h%d", i), fmt.Sprintf(`{"resourceType":"Observation","id":"h%d","status":%q,"code":{"text":"x"},"subject":{"reference":"Patient/a"}}`, i, status))
				}
				c.put(fmt.Sprintf("/DocumentReference/d%d", i), fmt.Sprintf(`{"resourceType":"DocumentReference","id":"d%d","status":"current","subject":{"reference":"Patient/a"},"content":[{"attachment":{"url":"Binary/b%d"}}]}`, i, i))
				c.put(fmt.Sprintf("/Binary/b%d", i), fmt.Sprintf(`{"resourceType":"Binary","id":"b%d","contentType":"text/plain","securityContext":{"reference":"DocumentReference/d%d"},"data":"aGk="}`, i, i))
			}
			pageInFewCalls(t, st, c, n, "app", "/Observation/_history")
			pageInFewCalls(t, st, c, n, "p1", "/Binary/_history")
		})
	}
}

// TestGroupMembersDecidedInBatches: under the care-team policy a Group is
// read when the practitioner is related to every patient it names (see
// TestGroupReadByItsWholeMembership); those patients are decided with a
// bounded number of store calls, not one or more for each member.
func TestGroupMembersDecidedInBatches(t *testing.T) {
	who := principals{"p1": {Subject: "p1", FHIRUser: "Practitioner/p1", Scopes: mustScopes(t, "user/*.rs")}}
	policy := func(cfg *server.Config) { cfg.AccessPolicy = access.CareTeamPolicy }
	const n = 30
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			st := &countingStore{Store: e.Open(t)}
			c := newAccessClient(t, st, who, policy)
			members := ""
			for i := range n {
				c.put(fmt.Sprintf("/Patient/m%d", i), fmt.Sprintf(`{"resourceType":"Patient","id":"m%d"}`, i))
				c.put(fmt.Sprintf("/CareTeam/t%d", i), fmt.Sprintf(`{"resourceType":"CareTeam","id":"t%d","status":"active","subject":{"reference":"Patient/m%d"},"participant":[{"member":{"reference":"Practitioner/p1"}}]}`, i, i))
				if i > 0 {
					members += ","
				}
				members += fmt.Sprintf(`{"entity":{"reference":"Patient/m%d"}}`, i)
			}
			c.put("/Group/cohort", `{"resourceType":"Group","id":"cohort","type":"person","actual":true,"member":[`+members+`]}`)
			for _, path := range []string{"/Group/cohort", "/Group"} {
				before := st.calls.Load()
				c.by("p1", "GET", path, "").want(t, http.StatusOK)
				if calls := st.calls.Load() - before; calls > 10 {
					t.Errorf("GET %s: %d store calls for a Group of %d members, want a bounded few", path, calls, n)
				}
			}
		})
	}
}

// TestListsOfAPageDecidedInBatches: a List is read by a patient's token
// or a practitioner's under the care-team policy when every resource it
// lists is within reach (see TestListedRecordsReadByEveryPatient); a
// search of Lists reads the resources listed on its page with a bounded
// number of store calls, not with a search or more for each List.
func TestListsOfAPageDecidedInBatches(t *testing.T) {
	const n = 30
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			st, c := careTeamCalls(t, e)
			twoPatientRecords(c)
			for i := range n {
				c.put(fmt.Sprintf("/Observation/l%d", i), fmt.Sprintf(`{"resourceType":"Observation","id":"l%d","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/a"}}`, i))
				c.put(fmt.Sprintf("/List/l%d", i), fmt.Sprintf(`{"resourceType":"List","id":"l%d","status":"current","mode":"working","subject":{"reference":"Patient/a"},"entry":[{"item":{"reference":"Observation/l%d"}},{"item":{"reference":"Observation/oa"}},{"item":{"reference":"Encounter/ea"}}]}`, i, i))
			}
			pageInFewCalls(t, st, c, n, "app", "/List")
			pageInFewCalls(t, st, c, n, "p1", "/List")
			pageInFewCalls(t, st, c, n, "app", "/List/_history")
		})
	}
}

// TestListedIdentifiersDecidedInBatches: a List naming its items by
// identifier alone is read by a patient's token when their Patient has
// each identifier, by a practitioner's under the care-team policy when a
// patient they are related to has each; those identifiers are decided
// with a bounded number of store calls, not a search for each.
func TestListedIdentifiersDecidedInBatches(t *testing.T) {
	const n = 30
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			st, c := careTeamCalls(t, e)
			ids, items := "", ""
			for i := range n {
				if i > 0 {
					ids, items = ids+",", items+","
				}
				ids += fmt.Sprintf(`{"system":"urn:mrn","value":"a%d"}`, i)
				items += fmt.Sprintf(`{"item":{"type":"Patient","identifier":{"system":"urn:mrn","value":"a%d"}}}`, i)
			}
			c.put("/Patient/a", `{"resourceType":"Patient","id":"a","identifier":[`+ids+`]}`)
			c.put("/List/named", `{"resourceType":"List","id":"named","status":"current","mode":"working","subject":{"reference":"Patient/a"},"entry":[`+items+`]}`)
			for _, who := range []string{"app", "p1"} {
				before := st.calls.Load()
				c.by(who, "GET", "/List/named", "").want(t, http.StatusOK)
				if calls := st.calls.Load() - before; calls > 10 {
					t.Errorf("%s GET /List/named: %d store calls for a List of %d identifiers, want a bounded few", who, calls, n)
				}
			}
		})
	}
}

// TestListedIdentifiersOfAFullPage: the identifiers a List names are
// decided by a search of a page of them at a time (see
// TestListedIdentifiersDecidedInBatches); when patients sharing one
// identifier fill that page, the identifiers no patient on it has are
// decided each by a search of its own, so a List naming a related patient
// by identifier is read, and one naming an unrelated one is not.
func TestListedIdentifiersOfAFullPage(t *testing.T) {
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			_, c := careTeamCalls(t, e)
			c.put("/Patient/a", `{"resourceType":"Patient","id":"a"}`)
			// b1 and b2 share urn:mrn|shared; c has urn:mrn|own, and
			// unrelated urn:mrn|other: a page of two identifiers holds b1
			// and b2 alone, sorted by id before c and d.
			for id, value := range map[string]string{"b1": "shared", "b2": "shared", "c": "own", "d": "other"} {
				c.put("/Patient/"+id, `{"resourceType":"Patient","id":"`+id+`","identifier":[{"system":"urn:mrn","value":"`+value+`"}]}`)
				if id != "d" {
					c.put("/CareTeam/ct-"+id, `{"resourceType":"CareTeam","id":"ct-`+id+`","status":"active","subject":{"reference":"Patient/`+id+`"},"participant":[{"member":{"reference":"Practitioner/p1"}}]}`)
				}
			}
			list := func(id string, values ...string) {
				items := ""
				for i, v := range values {
					if i > 0 {
						items += ","
					}
					items += `{"item":{"type":"Patient","identifier":{"system":"urn:mrn","value":"` + v + `"}}}`
				}
				c.put("/List/"+id, `{"resourceType":"List","id":"`+id+`","status":"current","mode":"working","subject":{"reference":"Patient/a"},"entry":[`+items+`]}`)
			}
			list("related", "shared", "own")
			list("unrelated", "shared", "other")
			c.by("p1", "GET", "/List/related", "").want(t, http.StatusOK)
			c.by("p1", "GET", "/List/unrelated", "").want(t, http.StatusNotFound)
			wantIDs(t, "p1: Lists", c.by("p1", "GET", "/List", ""), "List/related")
		})
	}
}

// TestIdentifiedPatientsFoundInBatches: records naming their patient by
// identifier alone are audited in the AuditEvent of the one Patient with
// that identifier (see TestAuditNamesPatientByIdentifier); the patients
// of a page of them are found with a bounded number of store calls, not
// a search for each identifier, and an identifier whose Patient patients
// sharing another crowd out of that search is still told.
func TestIdentifiedPatientsFoundInBatches(t *testing.T) {
	const n = 30
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			st := &countingStore{Store: e.Open(t)}
			c := newAccessClient(t, st, principals{})
			obs := func(id, value string) {
				c.put("/Observation/"+id, `{"resourceType":"Observation","id":"`+id+`","status":"final","code":{"text":"x"},"subject":{"identifier":{"system":"urn:mrn","value":"`+value+`"}}}`)
			}
			for i := range n {
				c.put(fmt.Sprintf("/Patient/p%d", i), fmt.Sprintf(`{"resourceType":"Patient","id":"p%d","identifier":[{"system":"urn:mrn","value":"n%d"}]}`, i, i))
				obs(fmt.Sprintf("o%d", i), fmt.Sprintf("n%d", i))
			}
			before := st.calls.Load()
			c.by("admin", "GET", "/Observation?code:text=x&_count=100", "", "X-Request-Id", "many").want(t, http.StatusOK)
			if calls := st.calls.Load() - before; calls > 10 {
				t.Errorf("a search of %d Observations naming %d patients by identifier: %d store calls, want a bounded few", n, n, calls)
			}

			// s1 to s6 share urn:mrn|shared and sort before u: a search
			// of the three identifiers below, two patients each, finds p0
			// and five of them alone.
			for _, id := range []string{"s1", "s2", "s3", "s4", "s5", "s6", "u"} {
				value := map[bool]string{true: "unique", false: "shared"}[id == "u"]
				c.put("/Patient/"+id, `{"resourceType":"Patient","id":"`+id+`","identifier":[{"system":"urn:mrn","value":"`+value+`"}]}`)
			}
			obs("shared", "shared")
			obs("unique", "unique")
			// With o0, of p0 (urn:mrn|n0), the request touches two
			// patients' records, and is audited by an AuditEvent for each
			// and one for the records of no patient.
			c.by("admin", "GET", "/Observation?_id=shared,unique,o0", "", "X-Request-Id", "crowded").want(t, http.StatusOK)
			byRequest := c.auditEventsByRequest(t, map[string]int{"many": 200, "crowded": 200})
			// namedIn returns the patients in whose AuditEvents of a
			// request each Observation is named.
			namedIn := func(request string) map[string][]string {
				named := map[string][]string{}
				for _, ev := range byRequest[request] {
					refs := entityRefs(ev)
					for _, ref := range refs {
						if !strings.HasPrefix(ref, "Patient/") {
							continue
						}
						for _, other := range refs {
							if strings.HasPrefix(other, "Observation/") {
								named[other] = append(named[other], ref)
							}
						}
					}
				}
				return named
			}
			named := namedIn("many")
			for i := range n {
				o := fmt.Sprintf("Observation/o%d/_history/1", i)
				if want := fmt.Sprintf("Patient/p%d", i); !slices.Equal(named[o], []string{want}) {
					t.Errorf("%s is audited in the AuditEvents of %v, want %s", o, named[o], want)
				}
			}
			named = namedIn("crowded")
			if got := named["Observation/unique/_history/1"]; !slices.Equal(got, []string{"Patient/u"}) {
				t.Errorf("Observation/unique is audited in the AuditEvents of %v, want Patient/u", got)
			}
			if got := named["Observation/shared/_history/1"]; len(got) != 0 {
				t.Errorf("an identifier six Patients share is audited in the AuditEvents of %v, want no patient's", got)
			}
		})
	}
}

// TestTrailEntitiesDecidedInBatches: a token reading the audit trail by
// its patients is given each AuditEvent without the entities naming what
// it may not read (see TestTrailNamesOnlyWhatTheReaderReaches); a page of
// events naming n resources is decided with a bounded number of store
// calls, not with a read or two for each resource named.
func TestTrailEntitiesDecidedInBatches(t *testing.T) {
	const n = 20
	who := principals{"app": {Subject: "app", Patient: "a", Scopes: mustScopes(t, "patient/*.rs")}}
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			st := &countingStore{Store: e.Open(t)}
			c := newAccessClient(t, st, who)
			twoPatientRecords(c)
			c.put("/Group/both", `{"resourceType":"Group","id":"both","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/a"}},{"entity":{"reference":"Patient/b"}}]}`)
			for i := range n {
				c.put(fmt.Sprintf("/Observation/t%d", i), fmt.Sprintf(`{"resourceType":"Observation","id":"t%d","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/a"}}`, i))
			}
			c.auditor.Flush()
			before := st.calls.Load()
			body := string(c.by("app", "GET", "/AuditEvent?_count=100", "").want(t, http.StatusOK).body)
			calls := st.calls.Load() - before
			if strings.Contains(body, "Group/both") {
				t.Errorf("patient a's app reads an AuditEvent naming Group/both, which it is answered 404 for")
			}
			for i := range n {
				if ref := fmt.Sprintf(`"Observation/t%d/_history/1"`, i); !strings.Contains(body, ref) {
					t.Errorf("no AuditEvent names %s, which a's app reads", ref)
				}
			}
			if calls > 10 {
				t.Errorf("%d store calls for a page of AuditEvents naming over %d resources, want a bounded few", calls, n)
			}
		})
	}
}
