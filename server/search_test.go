package server_test

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"carefhir/server"
)

// searchset is the part of a searchset Bundle the tests read.
type searchset struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Total        *int   `json:"total"`
	Link         []struct {
		Relation, URL string
	} `json:"link"`
	Entry []struct {
		FullURL  string `json:"fullUrl"`
		Resource struct {
			ResourceType string           `json:"resourceType"`
			ID           string           `json:"id"`
			Issue        []map[string]any `json:"issue"`
			Name         any              `json:"name"`
			BirthDate    string           `json:"birthDate"`
		} `json:"resource"`
		Search struct{ Mode string } `json:"search"`
	} `json:"entry"`
}

func (r *response) searchset(t *testing.T) *searchset {
	t.Helper()
	r.want(t, http.StatusOK)
	var b searchset
	if err := jsonUnmarshal(r.body, &b); err != nil {
		t.Fatalf("not a Bundle: %v: %s", err, truncate(r.body))
	}
	if b.ResourceType != "Bundle" || b.Type != "searchset" {
		t.Fatalf("not a searchset: %s", truncate(r.body))
	}
	return &b
}

// ids lists the entries of a mode as Type/id, in order.
func (b *searchset) ids(mode string) string {
	var out []string
	for _, e := range b.Entry {
		if e.Search.Mode == mode {
			out = append(out, e.Resource.ResourceType+"/"+e.Resource.ID)
		}
	}
	return strings.Join(out, " ")
}

func (b *searchset) link(rel string) string {
	for _, l := range b.Link {
		if l.Relation == rel {
			return l.URL
		}
	}
	return ""
}

func putPatient(t *testing.T, c *client, id, family, birth string, extra string) {
	t.Helper()
	body := fmt.Sprintf(`{"resourceType":"Patient","id":%q,"name":[{"family":%q}],"birthDate":%q%s}`, id, family, birth, extra)
	r := c.do("PUT", "/Patient/"+id, body)
	if r.status != http.StatusCreated && r.status != http.StatusOK {
		t.Fatalf("PUT Patient/%s: %d %s", id, r.status, truncate(r.body))
	}
}

// TestHasOfATypeNotServed: a _has through a type not served is 400 naming
// the type, under lenient handling too, as a chain to one is; ignored, it
// answered every Patient.
func TestHasOfATypeNotServed(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		putPatient(t, c, "a", "Smith", "1970-01-01", "")
		for _, param := range []string{"_has:RiskAssessment:subject:probability", "_has:Shoe:subject:code"} {
			for _, prefer := range []string{"handling=lenient", "handling=strict"} {
				r := c.do("GET", "/Patient?"+param+"=gt0.5", "", "Prefer", prefer).want(t, http.StatusBadRequest)
				typ := strings.Split(param, ":")[1]
				if diag := r.outcome(t, "invalid", param); !strings.Contains(diag, typ) {
					t.Errorf("%s (%s): diagnostics %q do not name %s", param, prefer, diag, typ)
				}
			}
		}
	})
}

// TestSearchCompartmentPost: a Patient's compartment is searched by POST
// too, as R4 lists (POST [base]/Patient/[id]/[type]/_search and
// POST [base]/Patient/[id]/_search), its parameters in the URL or a form,
// with links to the GET form of the search.
func TestSearchCompartmentPost(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		putPatient(t, c, "a", "Ali", "1970-03-01", "")
		putPatient(t, c, "b", "Bell", "1971-03-01", "")
		for _, o := range []struct{ id, patient, code string }{{"oa1", "a", "8480-6"}, {"oa2", "a", "8462-4"}, {"ob1", "b", "8480-6"}} {
			c.do("PUT", "/Observation/"+o.id, `{"resourceType":"Observation","id":"`+o.id+`","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"`+o.code+`"}]},"subject":{"reference":"Patient/`+o.patient+`"}}`).want(t, http.StatusCreated)
		}
		form := "application/x-www-form-urlencoded"
		r := c.do("POST", "/Patient/a/Observation/_search", "code=8480-6", "Content-Type", form)
		wantIDs(t, "POST Patient/a/Observation/_search", r, "Observation/oa1")
		if self := str(get(r.json(t), "link", 0), "url"); !strings.HasSuffix(self, "/Patient/a/Observation?code=8480-6") {
			t.Errorf("self link %s, want the GET of the compartment search", self)
		}
		wantIDs(t, "POST Patient/a/Observation/_search, in the URL", c.do("POST", "/Patient/a/Observation/_search?code=8462-4", ""), "Observation/oa2")
		wantIDs(t, "POST Patient/a/_search", c.do("POST", "/Patient/a/_search", ""), "Observation/oa1", "Observation/oa2")
		r = c.do("POST", "/Patient/a/_search?_type=Observation", "code=8480-6", "Content-Type", form)
		wantIDs(t, "POST Patient/a/_search, narrowed", r, "Observation/oa1")
		if self := str(get(r.json(t), "link", 0), "url"); !strings.HasSuffix(self, "/Patient/a/*?_type=Observation&code=8480-6") {
			t.Errorf("self link %s, want the GET of the compartment search", self)
		}
		c.do("POST", "/Patient/a/Organization/_search", "").want(t, http.StatusNotFound).outcome(t, "not-supported", "")
		c.do("POST", "/Patient/a/_search", "family=ali", "Content-Type", form).want(t, http.StatusBadRequest).outcome(t, "not-supported", "family")
		if allow := c.do("PUT", "/Patient/a/_search", "").want(t, http.StatusMethodNotAllowed).header.Get("Allow"); allow != "POST" {
			t.Errorf("Allow %q on Patient/a/_search, want POST", allow)
		}
	})
}

// TestSearchList: _list keeps the resources the entries of a List refer to
// (R4 search.html), by a relative reference or one under the server's base;
// Lists joined by commas stand for any of them and repeated _list for all;
// a List that is not there lists nothing, and a functional list is refused
// under strict handling, otherwise ignored and reported.
func TestSearchList(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		putPatient(t, c, "a", "Ali", "1970-03-01", "")
		putPatient(t, c, "b", "Bell", "1971-03-01", `,"gender":"male"`)
		putPatient(t, c, "c", "Cole", "1972-03-01", "")
		list := func(id string, refs ...string) {
			var entries []string
			for _, ref := range refs {
				entries = append(entries, `{"item":{"reference":"`+ref+`"}}`)
			}
			c.do("PUT", "/List/"+id, `{"resourceType":"List","id":"`+id+`","status":"current","mode":"working","entry":[`+strings.Join(entries, ",")+`]}`).want(t, http.StatusCreated)
		}
		list("l1", "Patient/a", c.base+"/Patient/b/_history/1", "Observation/a", "Patient/c")
		list("l2", "Patient/c")
		list("gone", "Patient/a")
		c.do("DELETE", "/List/gone", "").want(t, http.StatusNoContent)

		r := c.do("GET", "/Patient?_list=l1", "")
		wantIDs(t, "_list=l1", r, "Patient/a", "Patient/b", "Patient/c")
		if self := str(get(r.json(t), "link", 0), "url"); !strings.HasSuffix(self, "/Patient?_list=l1") {
			t.Errorf("self link %s does not state _list", self)
		}
		wantIDs(t, "_list and gender", c.do("GET", "/Patient?_list=l1&gender=male", ""), "Patient/b")
		wantIDs(t, "_list of either", c.do("GET", "/Patient?_list=List/l2,gone", ""), "Patient/c")
		wantIDs(t, "_list of both", c.do("GET", "/Patient?_list=l1&_list=l2", ""), "Patient/c")
		wantIDs(t, "_list of Observations", c.do("GET", "/Observation?_list=l1", ""))
		wantIDs(t, "_list of a deleted List", c.do("GET", "/Patient?_list=gone", ""))
		wantIDs(t, "_list of no List", c.do("GET", "/Patient?_list=nothing", ""))
		// Across types, each type keeps what the List names of it.
		putObservation(t, c, "oa", `{"text":"x"}`, `,"subject":{"reference":"Patient/a"}`)
		list("mixed", "Patient/a", "Observation/oa")
		wantIDs(t, "_list across types", c.do("POST", "/_search", "_type=Patient,Observation&_list=mixed", "Content-Type", "application/x-www-form-urlencoded"),
			"Patient/a", "Observation/oa")
		// A functional list is not kept here: refused under strict
		// handling, ignored and reported otherwise, as R4's own batch
		// example (Bundle-bundle-request-medsallergies) expects.
		c.do("GET", "/Patient?_list=$current-problems", "", "Prefer", "handling=strict").want(t, http.StatusBadRequest).outcome(t, "not-supported", "_list")
		r = c.do("GET", "/Patient?_list=$current-problems&_list=l2", "").want(t, http.StatusOK)
		wantIDs(t, "_list of a functional list, ignored", r, "Patient/c")
		if !strings.Contains(string(r.body), `"mode":"outcome"`) || !strings.Contains(string(r.body), "$current-problems") {
			t.Errorf("the ignored functional list is not reported: %s", r.body)
		}
		// Each List named is a read: repeating _list does not name more
		// than one parameter's values may.
		many := strings.TrimSuffix(strings.Repeat("x,", 600), ",")
		c.do("GET", "/Patient?_list="+many+"&_list="+many, "").want(t, http.StatusBadRequest).outcome(t, "too-costly", "_list")
		// A transaction's GET entry, processed after its writes, reads
		// the List an entry of it wrote.
		out := c.bundle(txBundle("transaction",
			txEntry("", "GET", "Patient?_list=lt", ""),
			txEntry("", "PUT", "List/lt", `{"resourceType":"List","id":"lt","status":"current","mode":"working","entry":[{"item":{"reference":"Patient/b"}}]}`)))
		wantIDs(t, "_list of a List the transaction wrote", &response{status: http.StatusOK, body: out.Entry[0].Resource}, "Patient/b")
	})
}

func TestSearchHTTP(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		putPatient(t, c, "a", "Ó Briain", "1970-03-01", `,"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}],"generalPractitioner":[{"reference":"Organization/o1"}]`)
		putPatient(t, c, "b", "Smith", "1970-12-31", `,"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000017"}]`)
		putPatient(t, c, "c", "Smyth", "1985-07-15", "")
		r := c.do("PUT", "/Organization/o1", `{"resourceType":"Organization","id":"o1","name":"Leeds Medical Practice"}`)
		r.want(t, http.StatusCreated)
		r = c.do("PUT", "/Observation/ob1", `{"resourceType":"Observation","id":"ob1","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"subject":{"reference":"Patient/a"},"valueQuantity":{"value":120.5,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}`)
		r.want(t, http.StatusCreated)
		// A subject with Patient a's id that is not Patient a.
		c.do("PUT", "/Observation/ob2", `{"resourceType":"Observation","id":"ob2","status":"final","code":{"text":"group"},"subject":{"reference":"Group/a"}}`).want(t, http.StatusCreated)

		tests := []struct {
			name, path string
			match      string
			include    string
		}{
			{"identifier", "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9000000017", "Patient/b", ""},
			{"id", "/Patient?_id=a,c", "Patient/a Patient/c", ""},
			{"name prefix with accents", "/Patient?name=o%20bri", "Patient/a", ""},
			{"family or", "/Patient?family=smith,smyth", "Patient/b Patient/c", ""},
			{"birthdate year", "/Patient?birthdate=1970", "Patient/a Patient/b", ""},
			{"sort", "/Patient?_sort=-birthdate", "Patient/c Patient/b Patient/a", ""},
			{"chain", "/Observation?subject:Patient.name=o%20briain", "Observation/ob1", ""},
			{"reference by id alone, to any type", "/Observation?subject=a", "Observation/ob1 Observation/ob2", ""},
			{"reference by id and type", "/Observation?subject:Group=a", "Observation/ob2", ""},
			{"has", "/Patient?_has:Observation:patient:code=8480-6", "Patient/a", ""},
			{"include", "/Patient?_id=a&_include=Patient:general-practitioner", "Patient/a", "Organization/o1"},
			{"revinclude", "/Patient?_id=a&_revinclude=Observation:subject", "Patient/a", "Observation/ob1"},
			{"revinclude of every parameter of a type", "/Patient?_id=a&_revinclude=Observation:*", "Patient/a", "Observation/ob1"},
			{"quantity", "/Observation?value-quantity=gt120||mm[Hg]", "Observation/ob1", ""},
			{"compartment", "/Patient/a/Observation", "Observation/ob1", ""},
			{"compartment of another patient", "/Patient/b/Observation", "", ""},
			{"compartment, every type", "/Patient/a/*", "Observation/ob1", ""},
			{"compartment, every type, narrowed", "/Patient/a/*?_lastUpdated=gt2000-01-01&_type=Observation,Patient", "Observation/ob1", ""},
			{"compartment, every type, of another patient", "/Patient/c/*", "", ""},
			{"system search", "?_type=Patient,Organization&_id=a,o1", "Patient/a Organization/o1", ""},
			{"NUL in a prefix", "/Patient?name=o%00", "", ""},
			{"NUL in contains", "/Patient?name:contains=%00", "", ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				b := c.do("GET", tt.path, "").searchset(t)
				if got := b.ids("match"); got != tt.match {
					t.Errorf("GET %s: matches %q, want %q", tt.path, got, tt.match)
				}
				if got := b.ids("include"); got != tt.include {
					t.Errorf("GET %s: included %q, want %q", tt.path, got, tt.include)
				}
			})
		}

		t.Run("search across types takes the parameters common to them", func(t *testing.T) {
			// family is a Patient parameter only: ignoring it for the
			// Observations would answer every one of them.
			c.do("GET", "?_type=Patient,Observation&family=smith", "").want(t, http.StatusBadRequest).outcome(t, "not-supported", "family")
			c.do("GET", "?family=smith", "").want(t, http.StatusBadRequest).outcome(t, "not-supported", "family")
			// A parameter none of them has is ignored, with one warning.
			b := c.do("GET", "?_type=Patient,Organization&_id=a,o1&shoe-size=9", "").searchset(t)
			if got := b.ids("match"); got != "Patient/a Organization/o1" || strings.Count(b.ids("outcome"), "OperationOutcome") != 1 || strings.Contains(b.link("self"), "shoe-size") {
				t.Errorf("matches %q, outcomes %q, self %q", got, b.ids("outcome"), b.link("self"))
			}
			c.do("GET", "?_type=Patient,Organization&shoe-size=9", "", "Prefer", "handling=strict").want(t, http.StatusBadRequest).outcome(t, "not-supported", "shoe-size")
		})
		t.Run("elements across types", func(t *testing.T) {
			// Each type keeps the elements it has, with its id and meta
			// and mandatory elements.
			resp := c.do("GET", "?_type=Patient,Observation&_id=a,ob1&_elements=name,subject", "")
			if got := resp.searchset(t).ids("match"); got != "Patient/a Observation/ob1" {
				t.Fatalf("matches %q", got)
			}
			for _, e := range get(resp.json(t), "entry").([]any) {
				r, _ := get(e, "resource").(map[string]any)
				switch r["resourceType"] {
				case "Patient":
					if r["name"] == nil || r["birthDate"] != nil {
						t.Errorf("Patient: %v", r)
					}
				case "Observation":
					if r["subject"] == nil || r["status"] == nil || r["valueQuantity"] != nil {
						t.Errorf("Observation: %v", r)
					}
				}
			}
			c.do("GET", "?_type=Patient,Observation&_elements=shoeSize", "").want(t, http.StatusBadRequest).outcome(t, "invalid", "_elements")
		})
		t.Run("include across types", func(t *testing.T) {
			// An _include follows the references of the type it names.
			b := c.do("GET", "?_type=Patient,Observation&_id=b,ob1&_include=Observation:subject", "").searchset(t)
			if got, inc := b.ids("match"), b.ids("include"); got != "Patient/b Observation/ob1" || inc != "Patient/a" {
				t.Errorf("matches %q, included %q", got, inc)
			}
			if self := b.link("self"); !strings.Contains(self, "_include=Observation%3Asubject") {
				t.Errorf("self link %s", self)
			}
			c.do("GET", "?_type=Patient,Organization&_include=Observation:subject", "").want(t, http.StatusBadRequest).outcome(t, "invalid", "_include")
		})
		t.Run("compartment of every type refuses", func(t *testing.T) {
			c.do("GET", "/Patient/a/*?_type=Organization", "").want(t, http.StatusBadRequest).outcome(t, "not-supported", "_type")
			c.do("GET", "/Patient/a/*?family=smith", "").want(t, http.StatusBadRequest).outcome(t, "not-supported", "family")
			c.do("GET", "/Organization/o1/*", "").want(t, http.StatusNotFound)
		})
		t.Run("revinclude of any type", func(t *testing.T) {
			// It names no type to look in: ignored with a warning, and
			// left out of the self link, or refused when strict.
			b := c.do("GET", "/Patient?_id=a&_revinclude=*", "").searchset(t)
			if got := b.ids("include"); got != "" || strings.Contains(b.link("self"), "_revinclude") || b.ids("outcome") == "" {
				t.Errorf("included %q, self link %q, outcome %q", got, b.link("self"), b.ids("outcome"))
			}
			c.do("GET", "/Patient?_id=a&_revinclude=*", "", "Prefer", "handling=strict").want(t, http.StatusBadRequest).outcome(t, "not-supported", "_revinclude")
		})
		t.Run("POST _search", func(t *testing.T) {
			b := c.do("POST", "/Patient/_search", "family=smith&_count=5", "Content-Type", "application/x-www-form-urlencoded").searchset(t)
			if got := b.ids("match"); got != "Patient/b" {
				t.Errorf("matches %q, want Patient/b", got)
			}
			if self := b.link("self"); !strings.Contains(self, "/Patient?") || !strings.Contains(self, "family=smith") {
				t.Errorf("self link %q is not a GET of the applied parameters", self)
			}
		})
		t.Run("POST _search needs a form", func(t *testing.T) {
			c.do("POST", "/Patient/_search", `{"family":"smith"}`).want(t, http.StatusUnsupportedMediaType)
			c.do("POST", "/Patient/_search", "family=smith", "Content-Type", "").want(t, http.StatusUnsupportedMediaType)
		})
		t.Run("POST _search with _format and _pretty in the form", func(t *testing.T) {
			r := c.do("POST", "/Patient/_search", "family=smith&_format=xml&_pretty=true", "Content-Type", "application/x-www-form-urlencoded").want(t, http.StatusOK)
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+xml") || !strings.Contains(string(r.body), "\n  <") {
				t.Errorf("Content-Type %q, body %.200s: want indented XML", ct, r.body)
			}
			// The URL's _format wins over the form's.
			r = c.do("POST", "/Patient/_search?_format=json", "family=smith&_format=xml", "Content-Type", "application/x-www-form-urlencoded").want(t, http.StatusOK)
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
				t.Errorf("Content-Type %q, want the URL's JSON", ct)
			}
			c.do("POST", "/Patient/_search", "family=smith&_format=turtle", "Content-Type", "application/x-www-form-urlencoded").want(t, http.StatusNotAcceptable)
		})
		t.Run("POST _search with its parameters in the URL alone", func(t *testing.T) {
			// No body and no Content-Type, as some clients send it.
			b := c.do("POST", "/Patient/_search?family=smith", "").searchset(t)
			if got := b.ids("match"); got != "Patient/b" {
				t.Errorf("matches %q, want Patient/b", got)
			}
		})
		t.Run("paging", func(t *testing.T) {
			b := c.do("GET", "/Patient?_count=1&_total=accurate", "").searchset(t)
			// Every page's first link is the first page's self link.
			first := b.link("self")
			if !strings.HasPrefix(first, c.base+"/Patient?") || strings.Contains(first, "_cursor") {
				t.Errorf("the first page's self link %q", first)
			}
			var seen []string
			for n := 0; ; n++ {
				if b.Total == nil || *b.Total != 3 {
					t.Fatalf("page %d: total %v, want 3", n, b.Total)
				}
				if got := b.link("first"); got != first {
					t.Errorf("page %d: first link %q, want %q", n, got, first)
				}
				seen = append(seen, b.ids("match"))
				next := b.link("next")
				if next == "" || n > 5 {
					break
				}
				if !strings.HasPrefix(next, c.base+"/Patient?") {
					t.Fatalf("next link %q is not on this server", next)
				}
				b = c.do("GET", next, "").searchset(t)
			}
			if !slices.Equal(seen, []string{"Patient/a", "Patient/b", "Patient/c"}) {
				t.Errorf("pages %v", seen)
			}
			if prev := b.link("previous"); prev == "" {
				t.Error("the last page has no previous link")
			} else if got := c.do("GET", prev, "").searchset(t).ids("match"); got != "Patient/b" {
				t.Errorf("previous page %q, want Patient/b", got)
			}
		})
		t.Run("summary count", func(t *testing.T) {
			b := c.do("GET", "/Patient?_summary=count", "").searchset(t)
			if b.Total == nil || *b.Total != 3 || len(b.Entry) != 0 {
				t.Errorf("total %v with %d entries, want 3 and none", b.Total, len(b.Entry))
			}
		})
		t.Run("elements", func(t *testing.T) {
			b := c.do("GET", "/Patient?_id=a&_elements=birthDate", "").searchset(t)
			if len(b.Entry) != 1 || b.Entry[0].Resource.BirthDate == "" || b.Entry[0].Resource.Name != nil {
				t.Errorf("entries %+v, want birthDate without name", b.Entry)
			}
		})
		t.Run("lenient reports ignored parameters", func(t *testing.T) {
			b := c.do("GET", "/Patient?shoe-size=9&_id=a", "").searchset(t)
			if got := b.ids("match"); got != "Patient/a" {
				t.Errorf("matches %q", got)
			}
			if got := b.ids("outcome"); got != "OperationOutcome/" {
				t.Fatalf("outcome entries %q, want one", got)
			}
			if self := b.link("self"); strings.Contains(self, "shoe-size") {
				t.Errorf("self link %q keeps the ignored parameter", self)
			}
		})
		t.Run("strict refuses unknown parameters", func(t *testing.T) {
			c.do("GET", "/Patient?shoe-size=9", "", "Prefer", "handling=strict").want(t, http.StatusBadRequest).outcome(t, "not-supported", "shoe-size")
		})
		for _, bad := range []struct{ query, code, expression string }{
			{"birthdate=1970-13", "invalid", "birthdate"},
			{"_count=-1", "invalid", "_count"},
			{"_cursor=forged", "invalid", "_cursor"},
			{"subject:Questionnaire.name=x", "", ""},
		} {
			t.Run("400 "+bad.query, func(t *testing.T) {
				path := "/Patient?" + bad.query
				if strings.HasPrefix(bad.query, "subject") {
					path = "/Observation?" + bad.query
				}
				c.do("GET", path, "").want(t, http.StatusBadRequest).outcome(t, bad.code, bad.expression)
			})
		}
		t.Run("unknown type", func(t *testing.T) {
			c.do("GET", "/Spaceship?name=x", "").want(t, http.StatusNotFound)
		})
		t.Run("escaped values round-trip through links", func(t *testing.T) {
			b := c.do("GET", "/Patient?family="+url.QueryEscape("o'b")+"&_count=1", "").searchset(t)
			if got := b.ids("match"); got != "" {
				t.Errorf("matches %q, want none", got)
			}
			if self := b.link("self"); !strings.Contains(self, "family=o%27b") {
				t.Errorf("self link %q", self)
			}
		})
	})
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// The CapabilityStatement lists the search parameters the server answers.
func TestCapabilitiesSearch(t *testing.T) {
	c := newClient(t, engines[0].Open(t))
	var cs struct {
		Rest []struct {
			Interaction []struct{ Code string }
			Compartment []string
			Resource    []struct {
				Type             string
				SearchParam      []struct{ Name, Type, Definition string }
				SearchInclude    []string
				SearchRevInclude []string
			}
		}
	}
	if err := jsonUnmarshal(c.do("GET", "/metadata", "").want(t, http.StatusOK).body, &cs); err != nil {
		t.Fatal(err)
	}
	params := map[string]string{}
	var includes, revincludes []string
	for _, r := range cs.Rest[0].Resource {
		for _, p := range r.SearchParam {
			params[r.Type+"."+p.Name] = p.Type
		}
		if r.Type == "Patient" {
			includes, revincludes = r.SearchInclude, r.SearchRevInclude
		}
	}
	for name, typ := range map[string]string{"Patient.name": "string", "Patient.birthdate": "date", "Patient._id": "token",
		"Observation.code-value-concept": "composite", "Observation.value-quantity": "quantity", "ValueSet.url": "uri",
		"Patient._list": "string", "Observation._list": "string"} {
		if params[name] != typ {
			t.Errorf("%s: type %q, want %q", name, params[name], typ)
		}
	}
	if params["Observation.code-value-quantity"] != "composite" {
		t.Error("code-value-quantity is not listed")
	}
	if !slices.Contains(includes, "Patient:general-practitioner") || !slices.Contains(revincludes, "Observation:subject") {
		t.Errorf("Patient includes %v, revincludes %v", includes, revincludes)
	}
	var system []string
	for _, i := range cs.Rest[0].Interaction {
		system = append(system, i.Code)
	}
	if !slices.Contains(system, "search-system") {
		t.Errorf("system interactions %v lack search-system", system)
	}
	// Patient/[id]/[type] and Patient/[id]/* search through it.
	if got := cs.Rest[0].Compartment; !slices.Equal(got, []string{"http://hl7.org/fhir/CompartmentDefinition/patient"}) {
		t.Errorf("compartments %v, want the Patient's", got)
	}
}

// searchCase is a search and the Type/id of its matches, in order.
type searchCase struct{ path, match string }

// wantMatches runs each search and checks its matches.
func wantMatches(t *testing.T, c *client, cases []searchCase) {
	t.Helper()
	for _, tt := range cases {
		b := c.do("GET", tt.path, "").searchset(t)
		if got := b.ids("match"); got != tt.match {
			t.Errorf("GET %s: matches %q, want %q", tt.path, got, tt.match)
		}
	}
}

// putObservation writes Observation id with the given code and value
// elements (JSON members after the code, each with its leading comma).
func putObservation(t *testing.T, c *client, id, code, extra string) {
	t.Helper()
	body := fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","code":%s%s}`, id, code, extra)
	c.do("PUT", "/Observation/"+id, body).want(t, http.StatusCreated)
}

// ucumValue is a valueQuantity member in UCUM units.
func ucumValue(value, unit string) string {
	return fmt.Sprintf(`,"valueQuantity":{"value":%s,"unit":%q,"system":"http://unitsofmeasure.org","code":%q}`, value, unit, unit)
}

// The prefix ne finds resources with a value of the parameter, in the unit
// asked for, other than the one given: not those without a value, nor those
// in other units.
func TestSearchNotEqual(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		putPatient(t, c, "a", "Ames", "1970-03-01", "")
		putPatient(t, c, "b", "Bell", "1985-07-15", "")
		c.do("PUT", "/Patient/c", `{"resourceType":"Patient","id":"c","name":[{"family":"Cole"}]}`).want(t, http.StatusCreated)
		bp := `{"coding":[{"system":"http://loinc.org","code":"8480-6"}]}`
		weight := `{"coding":[{"system":"http://loinc.org","code":"29463-7"}]}`
		putObservation(t, c, "bp100", bp, ucumValue("100", "mm[Hg]"))
		putObservation(t, c, "bp120", bp, ucumValue("120", "mm[Hg]"))
		putObservation(t, c, "kg", weight, ucumValue("70", "kg"))
		putObservation(t, c, "g", weight, ucumValue("70000", "g"))
		putObservation(t, c, "lb", weight, ucumValue("180", "[lb_av]"))
		putObservation(t, c, "cel", `{"text":"temperature"}`, ucumValue("37", "Cel"))
		putObservation(t, c, "none", bp, "")
		putObservation(t, c, "bps", `{"text":"blood pressure"}`, `,"component":[`+
			`{"code":`+bp+`,"valueQuantity":{"value":100,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}},`+
			`{"code":`+bp+`,"valueQuantity":{"value":130,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]`)
		wantMatches(t, c, []searchCase{
			{"/Patient?birthdate=ne1970", "Patient/b"},
			{"/Observation?value-quantity=ne100|http://unitsofmeasure.org|mm[Hg]", "Observation/bp120"},
			{"/Observation?value-quantity=ne70|http://unitsofmeasure.org|kg", "Observation/lb"},
			{"/Observation?value-quantity=ne100||mm[Hg]", "Observation/bp120"},
			// Any value of a resource that is not equal will do.
			{"/Observation?component-value-quantity=ne100", "Observation/bps"},
		})
		t.Run("in a list of values and in composites", func(t *testing.T) {
			wantMatches(t, c, []searchCase{
				{"/Patient?birthdate=ne1970,ne1971", "Patient/a Patient/b"},
				{"/Patient?birthdate=ne1970,1970", "Patient/a Patient/b"},
				{"/Observation?code-value-quantity=8480-6$ne100", "Observation/bp120"},
				{"/Observation?code-value-quantity=8480-6$ne100,29463-7$ne70|http://unitsofmeasure.org|kg", "Observation/bp120 Observation/lb"},
			})
			for _, path := range []string{"/Patient?birthdate=ne1970,ne1971", "/Observation?code-value-quantity=8480-6$ne100"} {
				b := c.do("GET", path, "", "Prefer", "handling=strict").searchset(t)
				if b.ids("outcome") != "" {
					t.Errorf("GET %s: outcome %q", path, b.ids("outcome"))
				}
			}
		})
	})
}

// "|code" in a composite, as in a token parameter, names a code without a
// system.
func TestSearchCompositeCodeWithoutSystem(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		putObservation(t, c, "loinc", `{"coding":[{"system":"http://loinc.org","code":"29463-7"}]}`, ucumValue("70.5", "kg"))
		putObservation(t, c, "bare", `{"coding":[{"code":"29463-7"}]}`, ucumValue("70.5", "kg"))
		wantMatches(t, c, []searchCase{
			{"/Observation?code=|29463-7", "Observation/bare"},
			{"/Observation?code-value-quantity=|29463-7$70.5", "Observation/bare"},
			{"/Observation?code-value-quantity=29463-7$70.5", "Observation/bare Observation/loinc"},
			{"/Observation?code-value-quantity=http://loinc.org|29463-7$70.5", "Observation/loinc"},
		})
	})
}

// A composite's string component left empty is refused where it is
// given, as its code component left empty is and as an empty string
// parameter is: it matched nothing, an answer to a search never asked.
func TestSearchCompositeEmptyString(t *testing.T) {
	c := newClient(t, engines[0].Open(t))
	putObservation(t, c, "note", `{"coding":[{"system":"http://loinc.org","code":"8251-1"}]}`, `,"valueString":"well"`)
	for _, value := range []string{"8251-1$", "8251-1$%20", "$well"} {
		c.do("GET", "/Observation?code-value-string="+value, "").want(t, http.StatusBadRequest).outcome(t, "invalid", "code-value-string")
	}
	wantMatches(t, c, []searchCase{{"/Observation?code-value-string=8251-1$well", "Observation/note"}})
}

// The string part of a composite is matched as a string parameter is:
// its value starts the string, case and accents aside (R4 search.html,
// composite: each part is matched by its own type).
func TestSearchCompositeStringPrefix(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		putObservation(t, c, "note", `{"coding":[{"system":"http://loinc.org","code":"8251-1"}]}`, `,"valueString":"Feeling unwell$ today"`)
		putObservation(t, c, "other", `{"coding":[{"system":"http://loinc.org","code":"8251-2"}]}`, `,"valueString":"Feeling unwell today"`)
		wantMatches(t, c, []searchCase{
			{"/Observation?code-value-string=8251-1$feeling", "Observation/note"},
			{"/Observation?code-value-string=8251-1$F%C3%89ELING%20UNW", "Observation/note"},
			{"/Observation?code-value-string=8251-1$feeling%20unwell\\$", "Observation/note"},
			{"/Observation?code-value-string=8251-1$feeling%20unwell\\$%20today", "Observation/note"},
			{"/Observation?code-value-string=8251-1$unwell", ""},
			{"/Observation?code-value-string=8251-1$feeling%20unwell%20today%20and", ""},
			{"/Observation?code-value-string=http://loinc.org|8251-2$feel", "Observation/other"},
		})
	})
}

// A number in exponential form has the precision of its mantissa's
// significant digits, as R4 has 1.00e2 as precise as 100 and 5.40e-3 g as
// 0.0054 ± 0.000005 g; a one-digit mantissa has the precision R4's table
// gives 1e2, [95, 105), one place finer than its digit.
func TestSearchExponent(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		bp := `{"coding":[{"system":"http://loinc.org","code":"8480-6"}]}`
		for _, v := range []string{"60", "96", "100", "100.4", "104.9", "105", "140"} {
			putObservation(t, c, "v"+strings.ReplaceAll(v, ".", "-"), bp, ucumValue(v, "mm[Hg]"))
		}
		glucose := `{"coding":[{"system":"http://loinc.org","code":"2345-7"}]}`
		putObservation(t, c, "g5403", glucose, ucumValue("0.005403", "g"))
		putObservation(t, c, "g541", glucose, ucumValue("0.00541", "g"))
		wantMatches(t, c, []searchCase{
			{"/Observation?value-quantity=1e2", "Observation/v100 Observation/v100-4 Observation/v104-9 Observation/v96"},
			{"/Observation?value-quantity=1.0e2", "Observation/v100 Observation/v100-4 Observation/v104-9 Observation/v96"},
			{"/Observation?value-quantity=1.00e2", "Observation/v100 Observation/v100-4"},
			{"/Observation?value-quantity=100", "Observation/v100 Observation/v100-4"},
			{"/Observation?value-quantity=5.40e-3|http://unitsofmeasure.org|g", "Observation/g5403"},
			{"/Observation?value-quantity=5.40e-3", "Observation/g5403"},
			{"/Observation?value-quantity=ne5.40e-3", "Observation/g541 Observation/v100 Observation/v100-4 Observation/v104-9 Observation/v105 Observation/v140 Observation/v60 Observation/v96"},
			{"/Observation?value-quantity=1e2|http://unitsofmeasure.org|mm[Hg]", "Observation/v100 Observation/v100-4 Observation/v104-9 Observation/v96"},
			{"/Observation?code-value-quantity=8480-6$1e2", "Observation/v100 Observation/v100-4 Observation/v104-9 Observation/v96"},
		})
	})
}

// R4 ignores the search value's precision for gt, lt, ge, le, sa and eb:
// sa5.4 is above 5.4 exactly, as gt5.4 is, and finds 5.449, inside the
// range [5.35, 5.45) that eq5.4 uses; eb5.4 finds 5.35. A Range starts
// after the value or ends before it.
func TestSearchStartsAfterEndsBeforeExact(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		code := `{"coding":[{"system":"http://loinc.org","code":"2345-7"}]}`
		for _, v := range []string{"5.3", "5.35", "5.4", "5.449", "5.45", "6"} {
			putObservation(t, c, "v"+strings.ReplaceAll(v, ".", "-"), code, ucumValue(v, "mg"))
		}
		putOnset(t, c, "above", `,"onsetRange":{"low":`+ucumAge("45.3", "a")+`,"high":`+ucumAge("50", "a")+`}`)
		putOnset(t, c, "from", `,"onsetRange":{"low":`+ucumAge("45", "a")+`,"high":`+ucumAge("50", "a")+`}`)
		putOnset(t, c, "below", `,"onsetRange":{"low":`+ucumAge("40", "a")+`,"high":`+ucumAge("44.8", "a")+`}`)
		putOnset(t, c, "to", `,"onsetRange":{"low":`+ucumAge("40", "a")+`,"high":`+ucumAge("45", "a")+`}`)
		const a = "|http://unitsofmeasure.org|a"
		wantMatches(t, c, []searchCase{
			{"/Observation?value-quantity=sa5.4", "Observation/v5-449 Observation/v5-45 Observation/v6"},
			{"/Observation?value-quantity=eb5.4", "Observation/v5-3 Observation/v5-35"},
			{"/Observation?value-quantity=sa5.4|http://unitsofmeasure.org|mg", "Observation/v5-449 Observation/v5-45 Observation/v6"},
			{"/Observation?value-quantity=eb0.0054|http://unitsofmeasure.org|g", "Observation/v5-3 Observation/v5-35"},
			{"/Observation?value-quantity=sa5.4||mg", "Observation/v5-449 Observation/v5-45 Observation/v6"},
			{"/Observation?code-value-quantity=2345-7$eb5.4", "Observation/v5-3 Observation/v5-35"},
			{"/Observation?code-value-quantity=2345-7$sa5.4|http://unitsofmeasure.org|mg", "Observation/v5-449 Observation/v5-45 Observation/v6"},
			{"/Observation?value-quantity=gt5.4", "Observation/v5-449 Observation/v5-45 Observation/v6"},
			{"/Observation?value-quantity=lt5.4", "Observation/v5-3 Observation/v5-35"},
			{"/Observation?value-quantity=ge5.4", "Observation/v5-4 Observation/v5-449 Observation/v5-45 Observation/v6"},
			{"/Observation?value-quantity=le5.4", "Observation/v5-3 Observation/v5-35 Observation/v5-4"},
			{"/Observation?value-quantity=5.4", "Observation/v5-35 Observation/v5-4 Observation/v5-449"},
			{"/Condition?onset-age=sa45" + a, "Condition/above"},
			{"/Condition?onset-age=eb45" + a, "Condition/below"},
			{"/Condition?onset-age=sa45", "Condition/above"},
			{"/Condition?onset-age=eb45", "Condition/below"},
		})
	})
}

// code-value-date pairs a code with a value that is a dateTime as well as
// a Period: R4 writes its component value.as(DateTime), the FHIRPath
// System type, which a FHIR dateTime is.
func TestSearchCompositeDateTime(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		code := `{"coding":[{"system":"http://loinc.org","code":"21612-7"}]}`
		putObservation(t, c, "day", code, `,"valueDateTime":"2020-01-15"`)
		putObservation(t, c, "instant", code, `,"valueDateTime":"2020-01-15T10:00:00Z"`)
		putObservation(t, c, "period", code, `,"valuePeriod":{"start":"2020-01-10"}`)
		wantMatches(t, c, []searchCase{
			{"/Observation?code-value-date=21612-7$2020-01-15", "Observation/day Observation/instant"},
			{"/Observation?code-value-date=http://loinc.org|21612-7$2020-01-15T10:00:00Z", "Observation/instant"},
			{"/Observation?code-value-date=21612-7$eb2020-01-16", "Observation/day Observation/instant"},
			{"/Observation?code-value-date=21612-7$gt2020-01-15", "Observation/period"},
			{"/Observation?code-value-date=8480-6$2020-01-15", ""},
		})
	})
}

// A string search is case-insensitive in Greek too: a name ending in the
// final sigma ς is found by the same name in capitals, which have Σ alone,
// and the other way round, where Σ was lower-cased to σ and ς kept, so
// that neither found the other.
func TestSearchStringFinalSigma(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		putPatient(t, c, "lower", "Παπαδόπουλος", "1970", "")
		putPatient(t, c, "upper", "ΠΑΠΑΔΟΠΟΥΛΟΣ", "1970", "")
		putPatient(t, c, "other", "Παπαδοπούλου", "1970", "")
		q := func(param, value string) string { return "/Patient?" + param + "=" + url.QueryEscape(value) }
		wantMatches(t, c, []searchCase{
			{q("family", "ΠΑΠΑΔΟΠΟΥΛΟΣ"), "Patient/lower Patient/upper"},
			{q("family", "παπαδόπουλος"), "Patient/lower Patient/upper"},
			{q("family", "Παπαδοπουλος"), "Patient/lower Patient/upper"},
			{q("family:contains", "ουλος"), "Patient/lower Patient/upper"},
			{q("family:exact", "Παπαδόπουλος"), "Patient/lower"},
		})
	})
}

// ap widens a date by a tenth of its distance from now however far it is:
// a date some centuries ahead is found by ap of itself, and one some
// centuries back by ap of a date within that tenth, where a distance
// beyond what a time.Duration holds (292 years) found nothing ahead and
// widened by 29 years at most behind.
func TestSearchDateApproximatelyFarFromNow(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		code := `{"text":"review"}`
		putObservation(t, c, "ahead", code, `,"effectiveDateTime":"2600-06-15"`)
		putObservation(t, c, "behind", code, `,"effectiveDateTime":"1400-06-15"`)
		wantMatches(t, c, []searchCase{
			{"/Observation?date=ap2600-06-15", "Observation/ahead"},
			{"/Observation?date=ap9999", ""},
			// 1450 is some 576 years back: ap1450 reaches 57 years either side.
			{"/Observation?date=ap1450-06-15", "Observation/behind"},
			{"/Observation?date=ap1600", ""},
		})
	})
}

// A reference parameter is searched by any type its definition names,
// served or not: Observation.subject may be a Device, which this server
// does not serve but a stored Observation may name. Only a chain needs the
// type served, to search its resources.
func TestSearchReferenceToUnservedType(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		putObservation(t, c, "reading", `{"text":"reading"}`, `,"subject":{"reference":"Device/d1"},"device":{"reference":"Device/d1"}`)
		putObservation(t, c, "other", `{"text":"reading"}`, `,"subject":{"reference":"Patient/d1"}`)
		wantMatches(t, c, []searchCase{
			{"/Observation?subject=Device/d1", "Observation/reading"},
			{"/Observation?subject:Device=d1", "Observation/reading"},
			{"/Observation?device:Device=d1", "Observation/reading"},
			{"/Observation?subject=d1", "Observation/other Observation/reading"},
		})
		for _, tt := range []struct{ path, expression, says string }{
			{"/Observation?subject=Practitioner/d1", "subject", "subject cannot refer to a Practitioner"},
			{"/Observation?subject:Practitioner=d1", "subject:Practitioner", "subject cannot refer to \"Practitioner\""},
			{"/Observation?device=Patient/d1", "device", "device cannot refer to a Patient"},
			{"/Observation?subject:Device.device-name=x", "subject:Device.device-name", "Device is not served here"},
		} {
			diag := c.do("GET", tt.path, "").want(t, http.StatusBadRequest).outcome(t, "", tt.expression)
			if !strings.Contains(diag, tt.says) {
				t.Errorf("GET %s: diagnostics %q, want it to say %q", tt.path, diag, tt.says)
			}
		}
	})
}

// A server given no base URL (on a wildcard address, its links built from
// each request's Host) indexes an absolute reference as the URL it is, not
// knowing its own base. A reference search for a resource held here finds
// it written either way, relative or absolute under the base the request
// came in by, as the fullUrls the server answers with are.
func TestSearchAbsoluteReferenceWithoutBaseURL(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("PUT", "/Patient/p1", `{"resourceType":"Patient","id":"p1"}`).want(t, http.StatusCreated)
		putObservation(t, c, "absolute", `{"text":"reading"}`, `,"subject":{"reference":"`+c.base+`/Patient/p1"}`)
		putObservation(t, c, "relative", `{"text":"reading"}`, `,"subject":{"reference":"Patient/p1"}`)
		putObservation(t, c, "elsewhere", `{"text":"reading"}`, `,"subject":{"reference":"https://other.example/fhir/Patient/p1"}`)
		wantMatches(t, c, []searchCase{
			{"/Observation?subject=Patient/p1", "Observation/absolute Observation/relative"},
			{"/Observation?subject=" + c.base + "/Patient/p1", "Observation/absolute Observation/relative"},
			{"/Observation?subject:Patient=p1", "Observation/absolute Observation/relative"},
			{"/Observation?patient=p1", "Observation/absolute Observation/relative"},
			{"/Observation?subject=https://other.example/fhir/Patient/p1", "Observation/elsewhere"},
		})
	})
}

// :of-type matches identifiers by their type; R4 defines it on Identifiers
// alone, so on another token parameter it is an unsupported modifier, and
// refused as they all are.
func TestSearchOfType(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		putPatient(t, c, "a", "Ames", "1970-03-01", `,"identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]},"system":"https://example.org/mrn","value":"446053"}]`)
		putObservation(t, c, "o", `{"coding":[{"system":"http://loinc.org","code":"8480-6"}]}`, ucumValue("120", "mm[Hg]"))
		wantMatches(t, c, []searchCase{
			{"/Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053", "Patient/a"},
			{"/Observation?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053", ""},
		})
		for _, prefer := range []string{"handling=lenient", "handling=strict"} {
			c.do("GET", "/Observation?code:of-type=http://loinc.org|8480-6|x", "", "Prefer", prefer).
				want(t, http.StatusBadRequest).outcome(t, "not-supported", "code:of-type")
		}
	})
}

// A canonical url with "|version" finds the resource of that url and
// version, as R4 has servers do.
func TestSearchCanonicalVersion(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		const vs1 = "http://example.org/fhir/ValueSet/vs1"
		for _, v := range []string{"1.0", "2.0"} {
			id := "vs1-" + strings.ReplaceAll(v, ".", "-")
			c.do("PUT", "/ValueSet/"+id, `{"resourceType":"ValueSet","id":"`+id+`","url":"`+vs1+`","version":"`+v+`","status":"active"}`).want(t, http.StatusCreated)
		}
		c.do("PUT", "/Questionnaire/q", `{"resourceType":"Questionnaire","id":"q","url":"http://example.org/fhir/Questionnaire/pam","version":"13","status":"active"}`).want(t, http.StatusCreated)
		wantMatches(t, c, []searchCase{
			{"/ValueSet?url=" + vs1, "ValueSet/vs1-1-0 ValueSet/vs1-2-0"},
			{"/ValueSet?url=" + vs1 + "|1.0", "ValueSet/vs1-1-0"},
			{"/ValueSet?url=" + vs1 + "|2.0," + vs1 + "|3.0", "ValueSet/vs1-2-0"},
			{"/ValueSet?url=" + vs1 + "|3.0", ""},
			{"/Questionnaire?url=http://example.org/fhir/Questionnaire/pam|13", "Questionnaire/q"},
		})
	})
}

// A reference to a canonical that names a version is found by the url
// alone and by the url with that version, not by another version (R4
// search.html, references to canonical); one without a version by the url
// alone.
func TestSearchReferenceToVersionedCanonical(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		const pam = "http://example.org/fhir/Questionnaire/pam"
		for id, canonical := range map[string]string{"v2": pam + "|2.0.0", "v1": pam + "|1.0.0", "bare": pam, "other": pam + "-other|2.0.0"} {
			c.do("PUT", "/QuestionnaireResponse/"+id, `{"resourceType":"QuestionnaireResponse","id":"`+id+`","status":"completed","questionnaire":"`+canonical+`"}`).
				want(t, http.StatusCreated)
		}
		wantMatches(t, c, []searchCase{
			{"/QuestionnaireResponse?questionnaire=" + pam, "QuestionnaireResponse/bare QuestionnaireResponse/v1 QuestionnaireResponse/v2"},
			{"/QuestionnaireResponse?questionnaire=" + pam + "|2.0.0", "QuestionnaireResponse/v2"},
			{"/QuestionnaireResponse?questionnaire=" + pam + "|3.0.0", ""},
			{"/QuestionnaireResponse?questionnaire=" + pam + "-other", "QuestionnaireResponse/other"},
		})
	})
}

// _include and _revinclude follow a canonical reference by url, as HAPI
// FHIR does: url|version to the resource of that url and version, a url
// alone to each of that url; and back from a resource with a url to those
// naming it with its version or none, :iterate going through them too.
func TestSearchIncludeCanonical(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		const pam = "http://example.org/fhir/Questionnaire/pam"
		for id, version := range map[string]string{"q1": "1", "q2": "2", "q3": "3"} {
			c.do("PUT", "/Questionnaire/"+id, `{"resourceType":"Questionnaire","id":"`+id+`","url":"`+pam+`","version":"`+version+`","status":"active"}`).
				want(t, http.StatusCreated)
		}
		c.do("DELETE", "/Questionnaire/q3", "").want(t, http.StatusNoContent)
		for id, canonical := range map[string]string{"r2": pam + "|2", "rall": pam, "r3": pam + "|3"} {
			c.do("PUT", "/QuestionnaireResponse/"+id, `{"resourceType":"QuestionnaireResponse","id":"`+id+`","status":"completed","questionnaire":"`+canonical+`"}`).
				want(t, http.StatusCreated)
		}
		c.do("PUT", "/CarePlan/cp", `{"resourceType":"CarePlan","id":"cp","status":"active","intent":"plan","subject":{"reference":"Patient/p1"},"instantiatesCanonical":["`+pam+`|1"]}`).
			want(t, http.StatusCreated)
		for _, tt := range []struct{ path, matches, included string }{
			{"/QuestionnaireResponse?_id=r2&_include=QuestionnaireResponse:questionnaire", "QuestionnaireResponse/r2", "Questionnaire/q2"},
			{"/QuestionnaireResponse?_id=rall&_include=QuestionnaireResponse:questionnaire", "QuestionnaireResponse/rall", "Questionnaire/q1 Questionnaire/q2"},
			{"/QuestionnaireResponse?_id=r3&_include=QuestionnaireResponse:questionnaire", "QuestionnaireResponse/r3", ""},
			{"/Questionnaire?_id=q2&_revinclude=QuestionnaireResponse:questionnaire", "Questionnaire/q2", "QuestionnaireResponse/r2 QuestionnaireResponse/rall"},
			{"/Questionnaire?_id=q1&_revinclude=QuestionnaireResponse:questionnaire", "Questionnaire/q1", "QuestionnaireResponse/rall"},
			{"/QuestionnaireResponse?_id=r2&_include=QuestionnaireResponse:questionnaire&_revinclude:iterate=QuestionnaireResponse:questionnaire",
				"QuestionnaireResponse/r2", "Questionnaire/q2 QuestionnaireResponse/rall"},
			{"/CarePlan?_include=CarePlan:instantiates-canonical&_revinclude:iterate=QuestionnaireResponse:questionnaire",
				"CarePlan/cp", "Questionnaire/q1 QuestionnaireResponse/rall"},
		} {
			b := c.do("GET", tt.path, "").searchset(t)
			if got := b.ids("match"); got != tt.matches {
				t.Errorf("GET %s: matches %q, want %q", tt.path, got, tt.matches)
			}
			got := strings.Fields(b.ids("include"))
			slices.Sort(got)
			if strings.Join(got, " ") != tt.included {
				t.Errorf("GET %s: includes %q, want %q", tt.path, strings.Join(got, " "), tt.included)
			}
		}
	})
}

// _elements reduces the matches of a search to elements of the searched
// type; the resources they include come whole, whether or not their type
// has the elements named.
func TestSearchElementsLeaveIncludesWhole(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		putPatient(t, c, "p1", "Ward", "1948-03-12", `,"gender":"female"`)
		putObservation(t, c, "o1", `{"text":"weight"}`, `,"subject":{"reference":"Patient/p1"}`+ucumValue("72", "kg"))
		for _, path := range []string{
			"/Observation?_elements=status&_include=Observation:subject",
			"/Observation?_elements=subject&_include=Observation:subject",
		} {
			r := c.do("GET", path, "")
			r.searchset(t)
			var b struct {
				Entry []struct {
					Resource map[string]any
					Search   struct{ Mode string }
				}
			}
			if err := json.Unmarshal(r.body, &b); err != nil || len(b.Entry) != 2 {
				t.Fatalf("GET %s: want a match and an include, got %s", path, truncate(r.body))
			}
			match, include := b.Entry[0].Resource, b.Entry[1].Resource
			if match["valueQuantity"] != nil || !strings.Contains(fmt.Sprint(get(match, "meta", "tag")), "SUBSETTED") {
				t.Errorf("GET %s: match %v, want it reduced and tagged SUBSETTED", path, match)
			}
			if include["gender"] != "female" || include["birthDate"] != "1948-03-12" || strings.Contains(fmt.Sprint(include["meta"]), "SUBSETTED") {
				t.Errorf("GET %s: included Patient %v, want it whole", path, include)
			}
		}
	})
}

// A search's _elements is checked against the searched type whether or not
// anything matches: an element the type does not have, or _elements beside
// _summary, is 400 on a search that finds nothing too.
func TestSearchElementsRefusedWithoutMatches(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		putPatient(t, c, "p1", "Ward", "1948-03-12", "")
		for _, family := range []string{"ward", "nobody"} {
			c.do("GET", "/Patient?family="+family+"&_elements=status", "").want(t, http.StatusBadRequest).outcome(t, "invalid", "_elements")
			c.do("GET", "/Patient?family="+family+"&_elements=name&_summary=true", "").want(t, http.StatusBadRequest).outcome(t, "invalid", "_elements")
			c.do("GET", "/Patient?family="+family+"&_elements=name&_summary=count", "").searchset(t)
		}
		batch := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient?family=nobody&_elements=status"}}]}`
		r := c.do("POST", "", batch).want(t, http.StatusOK)
		if got := str(r.json(t), "entry", 0, "response", "status"); !strings.HasPrefix(got, "400") {
			t.Errorf("batch search with _elements=status on Patient: entry status %q, want 400", got)
		}
	})
}

// _revinclude=Type:param:Target includes the resources whose param refers
// to a resource of Target alone: none for a search of another type, and,
// iterating, only those referring to the included resources of Target.
func TestSearchRevIncludeTarget(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		putPatient(t, c, "p1", "Ward", "1948-03-12", "")
		c.do("PUT", "/Encounter/e1", `{"resourceType":"Encounter","id":"e1","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/p1"}}`).want(t, http.StatusCreated)
		for id, target := range map[string]string{"pv1": "Patient/p1", "pv2": "Encounter/e1"} {
			body := fmt.Sprintf(`{"resourceType":"Provenance","id":%q,"target":[{"reference":%q}],"recorded":"2021-01-01T00:00:00Z","agent":[{"who":{"display":"x"}}]}`, id, target)
			c.do("PUT", "/Provenance/"+id, body).want(t, http.StatusCreated)
		}
		for path, want := range map[string]string{
			"/Patient?_revinclude=Provenance:target:Patient":                                        "Provenance/pv1",
			"/Patient?_revinclude=Provenance:target:Encounter":                                      "",
			"/Encounter?_include=Encounter:subject&_revinclude:iterate=Provenance:target:Patient":   "Patient/p1 Provenance/pv1",
			"/Encounter?_include=Encounter:subject&_revinclude:iterate=Provenance:target":           "Patient/p1 Provenance/pv1 Provenance/pv2",
			"/Encounter?_include=Encounter:subject&_revinclude:iterate=Provenance:target:Encounter": "Patient/p1 Provenance/pv2",
		} {
			b := c.do("GET", path, "").searchset(t)
			got := strings.Fields(b.ids("include"))
			slices.Sort(got)
			if strings.Join(got, " ") != want {
				t.Errorf("GET %s: includes %q, want %q", path, strings.Join(got, " "), want)
			}
		}
	})
}

// An _include or _revinclude that no server could follow (a part
// missing or too many, a type R4 does not have, a parameter that is not a
// reference, a target type the parameter cannot refer to) is 400 invalid
// naming it and its value, under lenient handling and in a batch too, as
// a bad value of any parameter is; one this server does not know (a
// parameter of its own elsewhere) is ignored with a warning unless strict.
func TestSearchIncludeRefused(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("PUT", "/QuestionnaireResponse/r1", `{"resourceType":"QuestionnaireResponse","id":"r1","status":"completed","questionnaire":"http://example.org/fhir/Questionnaire/pam"}`).
			want(t, http.StatusCreated)
		for _, tt := range []struct{ path, name, value string }{
			{"/QuestionnaireResponse", "_include", "QuestionnaireResponse:questionnaire:Patient"},
			{"/QuestionnaireResponse", "_include", ":questionnaire"},
			{"/QuestionnaireResponse", "_include", "QuestionnaireResponse:questionnaire:"},
			{"/QuestionnaireResponse", "_include", "QuestionnaireResponse::Questionnaire"},
			{"/QuestionnaireResponse", "_include", "QuestionnaireResponse:questionnaire:Questionnaire:x"},
			{"/QuestionnaireResponse", "_include", "QuestionaireResponse:questionnaire"},
			{"/QuestionnaireResponse", "_include", "QuestionnaireResponse:status"},
			{"/QuestionnaireResponse", "_include:iterate", "QuestionnaireResponse:questionnaire:Patient"},
			{"/Questionnaire", "_revinclude", "QuestionnaireResponse:questionnaire:Patient"},
			{"/Questionnaire", "_revinclude", ":questionnaire"},
			{"/Questionnaire", "_revinclude", "QuestionnaireResponse:status"},
		} {
			path := tt.path + "?" + url.Values{tt.name: {tt.value}}.Encode()
			for _, prefer := range []string{"handling=lenient", "handling=strict", ""} {
				r := c.do("GET", path, "", "Prefer", prefer).want(t, http.StatusBadRequest)
				if d := r.outcome(t, "invalid", tt.name); !strings.Contains(d, tt.value) {
					t.Errorf("GET %s (%s): diagnostics %q do not name the value", path, prefer, d)
				}
			}
			batch := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"` + path[1:] + `"}}]}`
			if got := str(c.do("POST", "", batch).want(t, http.StatusOK).json(t), "entry", 0, "response", "status"); !strings.HasPrefix(got, "400") {
				t.Errorf("batch GET %s: entry status %q, want 400", path, got)
			}
		}
		// A parameter not known here is ignored with a warning, or refused
		// when strict, as an unknown search parameter is.
		b := c.do("GET", "/QuestionnaireResponse?_include=QuestionnaireResponse:shoe", "").searchset(t)
		if got := b.ids("match"); got != "QuestionnaireResponse/r1" || b.ids("outcome") == "" {
			t.Errorf("unknown include parameter: matches %q, outcome %q; want r1 and a warning", got, b.ids("outcome"))
		}
		c.do("GET", "/QuestionnaireResponse?_include=QuestionnaireResponse:shoe", "", "Prefer", "handling=strict").
			want(t, http.StatusBadRequest).outcome(t, "not-supported", "_include")
	})
}

// :exact keeps case and accents but not the Unicode form they were sent
// in: a name written with a precomposed ü is found by one sent as u and a
// combining diaeresis, and the other way round.
func TestSearchExactUnicodeForms(t *testing.T) {
	const precomposed, decomposed = "M\u00fcller", "Mu\u0308ller"
	eachEngine(t, func(t *testing.T, c *client) {
		putPatient(t, c, "nfc", precomposed, "1970-01-01", "")
		putPatient(t, c, "nfd", "Gr"+decomposed, "1970-01-01", "")
		wantMatches(t, c, []searchCase{
			{"/Patient?family:exact=" + url.QueryEscape(decomposed), "Patient/nfc"},
			{"/Patient?family:exact=" + url.QueryEscape(precomposed), "Patient/nfc"},
			{"/Patient?family:exact=" + url.QueryEscape("Gr"+precomposed), "Patient/nfd"},
			{"/Patient?family:exact=Muller", ""},
			{"/Patient?family:exact=" + url.QueryEscape("m\u00fcller"), ""},
		})
	})
}

// _elements names a choice element by its definition name, as R4 lists
// base elements: value keeps valueQuantity, on a search, across types and
// on a read.
func TestSearchElementsChoice(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		putPatient(t, c, "p1", "Ward", "1948-03-12", `,"deceasedBoolean":false`)
		putObservation(t, c, "o1", `{"text":"weight"}`, `,"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2021-06-01"`+ucumValue("72", "kg"))
		check := func(path string, res map[string]any, kept, dropped string) {
			t.Helper()
			if res[kept] == nil || res[dropped] != nil {
				t.Errorf("GET %s: %v, want %s kept and %s left out", path, res, kept, dropped)
			}
		}
		for path, want := range map[string][2]string{
			"/Observation?_elements=value":                                {"valueQuantity", "effectiveDateTime"},
			"/Observation?_elements=effective,status":                     {"effectiveDateTime", "valueQuantity"},
			"/?_type=Patient,Observation&_elements=deceased":              {"deceasedBoolean", "birthDate"},
			"/Patient?_elements=deceased&_revinclude=Observation:subject": {"deceasedBoolean", "birthDate"},
		} {
			r := c.do("GET", path, "")
			r.searchset(t)
			check(path, get(r.json(t), "entry", 0, "resource").(map[string]any), want[0], want[1])
		}
		r := c.do("GET", "/Observation/o1?_elements=value", "").want(t, http.StatusOK)
		check("/Observation/o1?_elements=value", r.json(t), "valueQuantity", "effectiveDateTime")
		c.do("GET", "/Observation?_elements=val", "").want(t, http.StatusBadRequest).outcome(t, "invalid", "_elements")
	})
}

// TestSearchOpenPeriodEnds: a Period without an end goes on for ever and
// one without a start reaches back for ever (R4 search.html, dates), at
// the edges of what a date can name too: years 0000 and 9999, with zones
// that put the instant beyond them in UTC.
func TestSearchOpenPeriodEnds(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		encounter := func(id, period string) {
			c.do("PUT", "/Encounter/"+id, `{"resourceType":"Encounter","id":"`+id+`","status":"finished",`+
				`"class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"period":`+period+`}`).want(t, http.StatusCreated)
		}
		encounter("open-end", `{"start":"2020-01-01"}`)
		encounter("open-start", `{"end":"2020-01-01"}`)
		for _, tt := range []struct{ date, match string }{
			{"gt9999-12-31", "Encounter/open-end"},
			{"gt9999-12-31T23:00:00-05:00", "Encounter/open-end"},
			{"ge9999-12-31T23:59:59Z", "Encounter/open-end"},
			{"eb9999-12-31T23:00:00-05:00", "Encounter/open-start"},
			{"lt0001-01-01", "Encounter/open-start"},
			{"le0000", "Encounter/open-start"},
			{"lt0000-01-01T00:00:00+05:00", "Encounter/open-start"},
			{"sa0000-01-01T00:00:00+05:00", "Encounter/open-end"},
			{"eq9999", ""},
			{"eq0000", ""},
			{"ap9999", "Encounter/open-end"},
			{"ne2020-06", "Encounter/open-end Encounter/open-start"},
		} {
			path := "/Encounter?_sort=_id&date=" + url.QueryEscape(tt.date)
			if got := c.do("GET", path, "").searchset(t).ids("match"); got != tt.match {
				t.Errorf("date=%s: %q, want %q", tt.date, got, tt.match)
			}
		}
	})
}

// A search value that is not UTF-8 once %-decoded (a Latin-1 ü sent as
// %FC) is refused where it is given, on both engines and however many
// values a parameter lists, and so is a conditional write naming one:
// SQLite read such a value in a list of more than eight as the U+FFFD
// JSON put in its place, finding what holds that character, and as
// itself otherwise, finding nothing, as MongoDB did.
func TestSearchValueNotUTF8(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("PUT", "/Patient/p1", `{"resourceType":"Patient","id":"p1",`+
			`"identifier":[{"system":"urn:x","value":"a\ufffdb"}],"name":[{"family":"M\ufffdller"}]}`).want(t, http.StatusCreated)
		list := "urn:x|1,urn:x|2,urn:x|3,urn:x|4,urn:x|5,urn:x|6,urn:x|7,urn:x|8,"
		for _, tt := range []struct{ method, path, body, param string }{
			{"GET", "/Patient?identifier=urn:x|a%FFb", "", "identifier"},
			{"GET", "/Patient?identifier=" + list + "urn:x|a%FFb", "", "identifier"},
			{"GET", "/Patient?family=M%FCller", "", "family"},
			{"GET", "/Patient?_has:Observation:subject:code=%FF", "", "_has:Observation:subject:code"},
			{"POST", "/Patient/_search", "family=M%FCller", "family"},
			{"DELETE", "/Patient?identifier=urn:x|a%FFb", "", "identifier"},
		} {
			var r *response
			if tt.method == "POST" {
				r = c.do(tt.method, tt.path, tt.body, "Content-Type", "application/x-www-form-urlencoded")
			} else {
				r = c.do(tt.method, tt.path, tt.body)
			}
			r.want(t, http.StatusBadRequest).outcome(t, "invalid", tt.param)
		}
		c.do("GET", "/Patient/p1", "").want(t, http.StatusOK)
		got := c.do("GET", "/Patient?identifier="+list+url.QueryEscape("urn:x|a\ufffdb"), "").searchset(t).ids("match")
		if got != "Patient/p1" {
			t.Errorf("the value in UTF-8 finds %q, want Patient/p1", got)
		}
	})
}

// Every match and included resource of a searchset has the fullUrl
// base/Type/id, the base configured or, without one, the one the request
// came in by; an outcome entry has none. So in a search of one type, with
// _elements or _summary shaping the matches, across types and in a
// compartment.
func TestSearchFullURLs(t *testing.T) {
	const configured = "https://care.example.org/r4/fhir"
	for _, tt := range []struct {
		name string
		opts []config
	}{
		{"request base", nil},
		{"configured base", []config{func(cfg *server.Config) { cfg.BaseURL = configured + "/" }}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			eachEngine(t, func(t *testing.T, c *client) {
				base := c.base
				if tt.opts != nil {
					base = configured
				}
				putPatient(t, c, "p1", "Ames", "1970-03-01", "")
				putPatient(t, c, "p-2.b", "Ames", "1971-03-01", "")
				putObservation(t, c, "o1", `{"text":"reading"}`, `,"subject":{"reference":"Patient/p1"}`)
				putObservation(t, c, "o2", `{"text":"reading"}`, `,"subject":{"reference":"Patient/p-2.b"}`)
				modes := map[string]bool{}
				for _, path := range []string{
					"/Observation?_include=Observation:subject&unknown=1",
					"/Observation?_include=Observation:subject&_elements=status",
					"/Observation?_revinclude=Observation:subject&_summary=true",
					"/Patient?_revinclude=Observation:subject&_sort=-birthdate",
					"?_type=Patient,Observation&_count=3",
					"/Patient/p1/*",
				} {
					b := c.do("GET", path, "").searchset(t)
					if len(b.Entry) == 0 {
						t.Errorf("GET %s: no entries", path)
					}
					for i, e := range b.Entry {
						modes[e.Search.Mode] = true
						want := base + "/" + e.Resource.ResourceType + "/" + e.Resource.ID
						if e.Search.Mode == "outcome" {
							want = ""
						}
						if e.FullURL != want {
							t.Errorf("GET %s: entry %d (%s) has the fullUrl %q, want %q", path, i, e.Search.Mode, e.FullURL, want)
						}
					}
				}
				if !modes["match"] || !modes["include"] || !modes["outcome"] {
					t.Errorf("entries of the modes %v, want match, include and outcome", modes)
				}
			}, tt.opts...)
		})
	}
}

// TestSearchLinksKeepFormat: the links of a searchset carry the _format and
// _pretty the search was asked with, in its URL or in the form of a POST
// _search, so that the next page comes in the format of the first, as a
// history's next page does.
func TestSearchLinksKeepFormat(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		for _, id := range []string{"a", "b", "c"} {
			putPatient(t, c, id, "Format", "1970-01-01", "")
		}
		c.do("PUT", "/Observation/oa", `{"resourceType":"Observation","id":"oa","status":"final","code":{"text":"weight"},"subject":{"reference":"Patient/a"}}`).want(t, http.StatusCreated)
		form := "application/x-www-form-urlencoded"
		for _, tc := range []struct{ name, method, path, body string }{
			{"type", "GET", "/Patient?family=Format&_count=1&_format=xml&_pretty=true", ""},
			{"across types", "GET", "?_type=Patient&_count=1&_format=xml&_pretty=true", ""},
			{"compartment", "GET", "/Patient/a/*?_count=1&_format=xml&_pretty=true", ""},
			{"POST _search", "POST", "/Patient/_search", "family=Format&_count=1&_format=xml&_pretty=true"},
		} {
			r := c.do(tc.method, tc.path, tc.body, "Content-Type", form).want(t, http.StatusOK)
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+xml") {
				t.Fatalf("%s: first page in %q, want application/fhir+xml", tc.name, ct)
			}
			for _, rel := range []string{"self", "first", "next"} {
				link := xmlLink(t, r.body, rel)
				u, err := url.Parse(link)
				if err != nil {
					t.Fatalf("%s: %s link %q: %v", tc.name, rel, link, err)
				}
				if q := u.Query(); q.Get("_format") != "xml" || q.Get("_pretty") != "true" {
					t.Errorf("%s: %s link %s, want _format=xml and _pretty=true", tc.name, rel, link)
				}
			}
			next := c.do("GET", xmlLink(t, r.body, "next"), "").want(t, http.StatusOK)
			if ct := next.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+xml") {
				t.Errorf("%s: next page in %q, want application/fhir+xml as the first", tc.name, ct)
			}
		}
	})
}

// xmlLink returns the url of the link of relation rel of a Bundle in XML.
func xmlLink(t *testing.T, body []byte, rel string) string {
	t.Helper()
	var b struct {
		Link []struct {
			Relation struct {
				Value string `xml:"value,attr"`
			} `xml:"relation"`
			URL struct {
				Value string `xml:"value,attr"`
			} `xml:"url"`
		} `xml:"link"`
	}
	if err := xml.Unmarshal(body, &b); err != nil {
		t.Fatalf("not a Bundle in XML: %v: %s", err, truncate(body))
	}
	for _, l := range b.Link {
		if l.Relation.Value == rel {
			return l.URL.Value
		}
	}
	t.Fatalf("no %s link in %s", rel, truncate(body))
	return ""
}

// TestSearchRepeatedControlParameter: _count, _total, _summary and _cursor
// given twice with different values are refused with 400 naming the
// parameter, in the URL, in the form of a POST _search and beside it,
// as a history refuses them: the last value was applied while the links
// stated both. The same value twice is one.
func TestSearchRepeatedControlParameter(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		putPatient(t, c, "a", "Twice", "1970-01-01", "")
		for _, query := range []string{"_count=2&_count=5", "_total=accurate&_total=none", "_summary=true&_summary=count", "_cursor=a&_cursor=b"} {
			name, _, _ := strings.Cut(query, "=")
			c.do("GET", "/Patient?"+query, "").want(t, http.StatusBadRequest).outcome(t, "invalid", name)
			c.do("GET", "?_type=Patient&"+query, "").want(t, http.StatusBadRequest).outcome(t, "invalid", name)
			first, second, _ := strings.Cut(query, "&")
			c.do("POST", "/Patient/_search?"+first, second, "Content-Type", "application/x-www-form-urlencoded").want(t, http.StatusBadRequest).outcome(t, "invalid", name)
		}
		if b := c.do("GET", "/Patient?_count=5&_count=5&family=Twice", "").searchset(t); b.ids("match") != "Patient/a" {
			t.Errorf("_count=5 twice: %s", b.ids("match"))
		}
	})
}

// A Timing is searched by its outer limits, as R4 has it: the range from
// its first event, or the start of its bounds, to its last event or the
// end of its bounds, whatever the schedule between. Events of January and
// March are not a value in January: the Timing starts before February and
// ends after it.
func TestSearchTimingOuterLimits(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		code := `{"coding":[{"system":"http://loinc.org","code":"8867-4"}]}`
		putObservation(t, c, "events", code, `,"effectiveTiming":{"event":["2020-03-10","2020-01-10"]}`)
		putObservation(t, c, "bounded", code, `,"effectiveTiming":{"event":["2020-01-10"],"repeat":{"boundsPeriod":{"start":"2020-01-01","end":"2020-01-31"},"frequency":1,"period":1,"periodUnit":"d"}}`)
		putObservation(t, c, "open", code, `,"effectiveTiming":{"repeat":{"boundsPeriod":{"start":"2020-05-01"},"frequency":1,"period":1,"periodUnit":"wk"}}`)
		wantMatches(t, c, []searchCase{
			{"/Observation?_sort=_id&date=2020-01", "Observation/bounded"},
			{"/Observation?_sort=_id&date=2020-01-10", ""},
			{"/Observation?_sort=_id&date=2020", "Observation/bounded Observation/events"},
			{"/Observation?_sort=_id&date=sa2020-02-01", "Observation/open"},
			{"/Observation?_sort=_id&date=eb2020-02-01", "Observation/bounded"},
			{"/Observation?_sort=_id&date=eb2020-04-01", "Observation/bounded Observation/events"},
			{"/Observation?_sort=_id&date=ne2020-01", "Observation/events Observation/open"},
			{"/Observation?_sort=_id&date=ge2020-02-01&date=le2020-02-29", "Observation/events"},
			{"/Observation?_sort=_id&date=gt2021", "Observation/open"},
			{"/Observation?_sort=-date,_id", "Observation/open Observation/events Observation/bounded"},
		})
	})
}

// :missing=true finds the resources whose element of the parameter has no
// value, and :missing=false exactly the others, whatever the index could
// extract from the element: a Reference by identifier or display alone, or
// to a contained resource, a CodeableConcept of text alone, a Quantity
// without a value and a Period without a start are values. An element
// holding only extensions (a data-absent-reason) is not, nor a composite
// whose components make no combination.
func TestSearchMissingElementValue(t *testing.T) {
	const absent = `{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]}`
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("PUT", "/Patient/p", `{"resourceType":"Patient","id":"p","name":[{"family":"Bloggs"}]}`).want(t, http.StatusCreated)
		c.do("PUT", "/Patient/q", `{"resourceType":"Patient","id":"q","name":[{"_family":`+absent+`,"given":["Jo"]}]}`).want(t, http.StatusCreated)
		code := `{"coding":[{"system":"http://loinc.org","code":"29463-7"}]}`
		putObservation(t, c, "a", code, `,"subject":{"reference":"Patient/p"},"category":[{"coding":[{"code":"vital-signs"}]}]`+
			ucumValue("70", "kg")+`,"effectiveDateTime":"2024-01-01"`)
		putObservation(t, c, "b", code, `,"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}},`+
			`"category":[{"text":"vital signs"}],"valueQuantity":{"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"},`+
			`"effectivePeriod":{"end":"2024-01-02"}`)
		putObservation(t, c, "c", code, `,"subject":{"display":"Jo Bloggs"},"_effectiveDateTime":`+absent)
		putObservation(t, c, "d", code, `,"contained":[{"resourceType":"Patient","id":"pt","name":[{"family":"Bloggs"}]}],"subject":{"reference":"#pt"}`)
		putObservation(t, c, "e", code, "")
		putObservation(t, c, "f", code, `,"subject":`+absent)
		wantMatches(t, c, []searchCase{
			{"/Observation?subject:missing=true", "Observation/e Observation/f"},
			{"/Observation?subject:missing=false", "Observation/a Observation/b Observation/c Observation/d"},
			{"/Observation?category:missing=true", "Observation/c Observation/d Observation/e Observation/f"},
			{"/Observation?category:missing=false", "Observation/a Observation/b"},
			{"/Observation?value-quantity:missing=true", "Observation/c Observation/d Observation/e Observation/f"},
			{"/Observation?value-quantity:missing=false", "Observation/a Observation/b"},
			{"/Observation?date:missing=true", "Observation/c Observation/d Observation/e Observation/f"},
			{"/Observation?date:missing=false", "Observation/a Observation/b"},
			{"/Observation?subject:missing=false&category:missing=true", "Observation/c Observation/d"},
			// patient covers the subject that resolves to a Patient
			// (R4's Observation.subject.where(resolve() is Patient)): one
			// by identifier or display alone does not.
			{"/Observation?patient:missing=false", "Observation/a Observation/d"},
			// A composite's value is the combination of its components.
			{"/Observation?code-value-quantity:missing=false", "Observation/a"},
			{"/Observation?code-value-quantity:missing=true", "Observation/b Observation/c Observation/d Observation/e Observation/f"},
			{"/Patient?family:missing=true", "Patient/q"},
			{"/Patient?family:missing=false", "Patient/p"},
		})
	})
}
