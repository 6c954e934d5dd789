package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestSearchAcrossTypesPages checks that a search of several types gives
// at most _count matches a page (R4: "Servers SHALL NOT return more
// resources than requested"), that following next gives every match once,
// and that _sort by _lastUpdated or _id puts the matches of all the types
// in one order.
func TestSearchAcrossTypesPages(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		want := map[string]bool{}
		for i := range 4 {
			id := fmt.Sprintf("p%d", i)
			putPatient(t, c, id, "Jones", "1970-01-01", "")
			want["Patient/"+id] = true
			ob := fmt.Sprintf(`{"resourceType":"Observation","id":"o%d","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/%s"}}`, i, id)
			c.do("PUT", fmt.Sprintf("/Observation/o%d", i), ob).want(t, http.StatusCreated)
			want[fmt.Sprintf("Observation/o%d", i)] = true
			if i < 2 {
				c.do("PUT", fmt.Sprintf("/Organization/g%d", i), fmt.Sprintf(`{"resourceType":"Organization","id":"g%d","name":"Practice"}`, i)).want(t, http.StatusCreated)
				want[fmt.Sprintf("Organization/g%d", i)] = true
			}
		}
		type match struct {
			key, id, typ string
			lastUpdated  time.Time
		}
		// walk follows the next links from url, checking each page's size.
		walk := func(t *testing.T, url string, count int) []match {
			t.Helper()
			var out []match
			for pages := 0; url != ""; pages++ {
				if pages > 20 {
					t.Fatal("the next links do not end")
				}
				r := c.do("GET", url, "").want(t, http.StatusOK)
				var b struct {
					Total *int
					Link  []struct{ Relation, URL string }
					Entry []struct {
						Resource struct {
							ResourceType, ID string
							Meta             struct{ LastUpdated time.Time }
						}
						Search struct{ Mode string }
					}
				}
				if err := json.Unmarshal(r.body, &b); err != nil {
					t.Fatal(err)
				}
				n := 0
				url = ""
				for _, l := range b.Link {
					if l.Relation == "next" {
						url = l.URL
					}
				}
				for _, e := range b.Entry {
					if e.Search.Mode != "match" {
						continue
					}
					n++
					res := e.Resource
					out = append(out, match{res.ResourceType + "/" + res.ID, res.ID, res.ResourceType, res.Meta.LastUpdated})
				}
				if n > count || n < count && url != "" {
					t.Errorf("%s: %d matches on a page of %d", url, n, count)
				}
			}
			seen := map[string]bool{}
			for _, m := range out {
				if seen[m.key] || !want[m.key] {
					t.Errorf("%s: %s again, or not a match", url, m.key)
				}
				seen[m.key] = true
			}
			if len(seen) != len(want) {
				t.Errorf("%d matches over the pages, want %d: %v", len(seen), len(want), out)
			}
			return out
		}
		const types = "?_type=Patient,Observation,Organization"
		for _, count := range []int{1, 3, 4, 10} {
			walk(t, fmt.Sprintf("%s&_count=%d", types, count), count)
		}
		byUpdate := walk(t, types+"&_count=3&_sort=-_lastUpdated", 3)
		for i := 1; i < len(byUpdate); i++ {
			x, y := byUpdate[i-1], byUpdate[i]
			if x.lastUpdated.Before(y.lastUpdated) || x.lastUpdated.Equal(y.lastUpdated) && x.id > y.id {
				t.Errorf("_sort=-_lastUpdated: %s (%s) before %s (%s)", x.key, x.lastUpdated, y.key, y.lastUpdated)
			}
		}
		byID := walk(t, types+"&_count=4&_sort=_id", 4)
		for i := 1; i < len(byID); i++ {
			if x, y := byID[i-1], byID[i]; x.id > y.id || x.id == y.id && x.typ > y.typ {
				t.Errorf("_sort=_id: %s before %s", x.key, y.key)
			}
		}
		// The total counts every type's matches on every page; a page's
		// includes are those of its own matches.
		b := c.do("GET", types+"&_count=2&_total=accurate&_sort=_id&_include=Observation:subject", "").searchset(t)
		if b.Total == nil || *b.Total != len(want) {
			t.Errorf("total %v, want %d", b.Total, len(want))
		}
		if got := b.ids("match") + " | " + b.ids("include"); got != "Organization/g0 Organization/g1 | " {
			t.Errorf("first page by _id: %s", got)
		}
		b = c.do("GET", "?_type=Observation,Patient&_count=2&_sort=-_id&_include=Observation:subject", "").searchset(t)
		if got := b.ids("match") + " | " + b.ids("include"); got != "Patient/p3 Patient/p2 | " {
			t.Errorf("first page by -_id: %s", got)
		}
		b = c.do("GET", "?_type=Observation,Patient&_count=3&_include=Observation:subject", "").searchset(t)
		if got := b.ids("match") + " | " + b.ids("include"); got != "Observation/o0 Observation/o1 Observation/o2 | Patient/p0 Patient/p1 Patient/p2" {
			t.Errorf("first page without _sort: %s", got)
		}
		if n := c.do("GET", types+"&_summary=count", "").searchset(t); n.Total == nil || *n.Total != len(want) || len(n.Entry) != 0 {
			t.Errorf("_summary=count: total %v, %d entries", n.Total, len(n.Entry))
		}
		c.do("GET", types+"&_sort=name", "").want(t, http.StatusBadRequest).outcome(t, "not-supported", "_sort")
		c.do("GET", types+"&_cursor=bm90IGEgY3Vyc29y", "").want(t, http.StatusBadRequest)
	})
}

// A search across types, or of the Patient compartment, includes resources
// of types it does not search, shaped by _summary as its matches are.
func TestSearchAcrossTypesIncludesOtherTypes(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		putPatient(t, c, "p1", "Ward", "1948-03-12", `,"generalPractitioner":[{"reference":"Practitioner/pr1"}]`)
		c.do("PUT", "/Practitioner/pr1", `{"resourceType":"Practitioner","id":"pr1","name":[{"family":"Jones"}]}`).want(t, http.StatusCreated)
		ob := `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"},"performer":[{"reference":"Practitioner/pr1"}]}`
		c.do("PUT", "/Observation/o1", ob).want(t, http.StatusCreated)
		for path, want := range map[string]string{
			"/?_type=Observation&_include=Observation:subject":                    "Observation/o1 include:Patient/p1",
			"/?_type=Observation,Condition&_include=Observation:performer":        "Observation/o1 include:Practitioner/pr1",
			"/?_type=Patient&_revinclude=Observation:subject":                     "Patient/p1 include:Observation/o1",
			"/Patient/p1/*?_type=Observation&_include=Observation:performer":      "Observation/o1 include:Practitioner/pr1",
			"/?_type=Observation&_include=Observation:performer&_summary=true":    "Observation/o1 include:Practitioner/pr1",
			"/?_type=Observation&_include=Observation:performer&_elements=status": "Observation/o1 include:Practitioner/pr1",
		} {
			b := c.do("GET", path, "").searchset(t)
			got := b.ids("match") + " include:" + b.ids("include")
			if got != want {
				t.Errorf("GET %s: %q, want %q", path, got, want)
			}
		}
	})
}

// TestSearchAcrossTypesPosted: a search across types by POST _search with
// _type in its form keeps _type in its links, as when sent in the URL, so
// that following next pages through the types asked for alone; in the
// whole system and in a Patient's compartment.
func TestSearchAcrossTypesPosted(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		for i := range 2 {
			putPatient(t, c, fmt.Sprintf("p%d", i), "Jones", "1970-01-01", "")
			c.do("PUT", fmt.Sprintf("/Observation/o%d", i), fmt.Sprintf(`{"resourceType":"Observation","id":"o%d","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p0"}}`, i)).want(t, http.StatusCreated)
			c.do("PUT", fmt.Sprintf("/Organization/g%d", i), fmt.Sprintf(`{"resourceType":"Organization","id":"g%d","name":"Practice"}`, i)).want(t, http.StatusCreated)
		}
		for _, tc := range []struct {
			path, types string
			want        int
		}{{"/_search", "Patient,Organization", 4}, {"/Patient/p0/_search", "Observation", 2}} {
			r := c.do("POST", tc.path, "_count=1&_type="+tc.types, "Content-Type", "application/x-www-form-urlencoded").want(t, http.StatusOK)
			seen := 0
			for pages := 0; ; pages++ {
				var b struct {
					Link  []struct{ Relation, URL string }
					Entry []struct {
						Resource struct{ ResourceType string }
					}
				}
				if err := json.Unmarshal(r.body, &b); err != nil {
					t.Fatal(err)
				}
				next := ""
				for _, l := range b.Link {
					if l.Relation == "self" && !strings.Contains(l.URL, "_type="+url.QueryEscape(tc.types)) {
						t.Errorf("%s: self link %s does not say _type", tc.path, l.URL)
					}
					if l.Relation == "next" {
						next = l.URL
					}
				}
				for _, e := range b.Entry {
					if !strings.Contains(tc.types, e.Resource.ResourceType) {
						t.Fatalf("%s: page %d holds a %s", tc.path, pages, e.Resource.ResourceType)
					}
					seen++
				}
				if next == "" || pages > 10 {
					break
				}
				r = c.do("GET", next, "").want(t, http.StatusOK)
			}
			if seen != tc.want {
				t.Errorf("%s: %d matches over the pages, want %d", tc.path, seen, tc.want)
			}
		}
	})
}

// TestSearchRepeatedAfterWrites: a search repeated after a write finds
// what the write changed, whether it changed a match or only a resource a
// match includes; a search repeated with nothing written between finds
// the same.
func TestSearchRepeatedAfterWrites(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		putPatient(t, c, "p0", "Jones", "1970-01-01", "")
		observation := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p0"}}`
		c.do("PUT", "/Observation/o1", strings.Replace(observation, `{`, `{"id":"o1",`, 1)).want(t, http.StatusCreated)
		const search = "/Observation?subject=Patient/p0&_include=Observation:subject"
		found := func(step string, want ...string) {
			t.Helper()
			for range 3 {
				var b struct {
					Entry []struct {
						Resource struct {
							ResourceType, ID string
							Name             []struct{ Family string }
						}
					}
				}
				if err := json.Unmarshal(c.do("GET", search, "").want(t, http.StatusOK).body, &b); err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, e := range b.Entry {
					s := e.Resource.ResourceType + "/" + e.Resource.ID
					for _, n := range e.Resource.Name {
						s += " " + n.Family
					}
					got = append(got, s)
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("%s: found %q, want %q", step, got, want)
				}
			}
		}
		found("first", "Observation/o1", "Patient/p0 Jones")
		putPatient(t, c, "p0", "Smith", "1970-01-01", "")
		found("included Patient renamed", "Observation/o1", "Patient/p0 Smith")
		c.do("PUT", "/Observation/o2", strings.Replace(observation, `{`, `{"id":"o2",`, 1)).want(t, http.StatusCreated)
		found("another Observation", "Observation/o1", "Observation/o2", "Patient/p0 Smith")
		c.do("DELETE", "/Observation/o1", "").want(t, http.StatusNoContent)
		found("one deleted", "Observation/o2", "Patient/p0 Smith")
	})
}
