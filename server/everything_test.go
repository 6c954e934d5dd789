package server_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"carefhir/care/synth"
)

// record is a patient's record as the $everything tests write it: each
// resource as Type/id and its JSON.
type record []struct{ ref, body string }

// put writes every resource of the record with PUT.
func (rec record) put(t *testing.T, c *client) {
	t.Helper()
	for _, r := range rec {
		resp := c.do("PUT", "/"+r.ref, r.body)
		if resp.status != http.StatusCreated && resp.status != http.StatusOK {
			t.Fatalf("PUT %s: %d %s", r.ref, resp.status, truncate(resp.body))
		}
	}
}

// observation returns an Observation of a patient.
func observation(id, patient, extra string) struct{ ref, body string } {
	return struct{ ref, body string }{"Observation/" + id, fmt.Sprintf(
		`{"resourceType":"Observation","id":%q,"status":"final","code":{"coding":[{"system":"http://snomed.info/sct","code":"27113001"}]},"subject":{"reference":"Patient/%s"}%s}`,
		id, patient, extra)}
}

// twoPatients is the record of Patient p1, with a Patient p2 whose data must
// stay out of it: p1's observation o1 names p2's observation o3, and the
// appointment ap3 is of both patients.
var twoPatients = record{
	{"Organization/org1", `{"resourceType":"Organization","id":"org1","name":"Leeds Medical Practice"}`},
	{"Organization/org2", `{"resourceType":"Organization","id":"org2","name":"Unreferenced Practice"}`},
	{"Practitioner/gp1", `{"resourceType":"Practitioner","id":"gp1","name":[{"family":"Okafor"}]}`},
	{"Practitioner/gp2", `{"resourceType":"Practitioner","id":"gp2","name":[{"family":"Ní Bhriain"}]}`},
	{"Location/loc1", `{"resourceType":"Location","id":"loc1","name":"Surgery"}`},
	{"Patient/p1", `{"resourceType":"Patient","id":"p1","name":[{"family":"O'Neill"}],"generalPractitioner":[{"reference":"Practitioner/gp1"}],"managingOrganization":{"reference":"Organization/org1"}}`},
	{"Patient/p2", `{"resourceType":"Patient","id":"p2","name":[{"family":"Smith"}],"generalPractitioner":[{"reference":"Practitioner/gp2"}]}`},
	{"Patient/p1b", `{"resourceType":"Patient","id":"p1b","name":[{"family":"O'Neill"}],"link":[{"other":{"reference":"Patient/p1"},"type":"seealso"}]}`},
	observation("o1", "p1", `,"performer":[{"reference":"Practitioner/gp1"}],"hasMember":[{"reference":"Observation/o3"}]`),
	observation("o2", "p1", ""),
	observation("o3", "p2", ""),
	{"Condition/c1", `{"resourceType":"Condition","id":"c1","code":{"text":"Type 2 diabetes"},"subject":{"reference":"Patient/p1"}}`},
	{"Condition/c2", `{"resourceType":"Condition","id":"c2","code":{"text":"Asthma"},"subject":{"reference":"Patient/p2"}}`},
	{"CarePlan/cp1", `{"resourceType":"CarePlan","id":"cp1","status":"active","intent":"plan","subject":{"reference":"Patient/p1"}}`},
	{"CareTeam/ct1", `{"resourceType":"CareTeam","id":"ct1","status":"active","participant":[{"member":{"reference":"Patient/p1"}},{"member":{"reference":"Practitioner/gp1"}}]}`},
	{"Encounter/e1", `{"resourceType":"Encounter","id":"e1","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/p1"},"location":[{"location":{"reference":"Location/loc1"}}]}`},
	{"Appointment/ap1", `{"resourceType":"Appointment","id":"ap1","status":"booked","participant":[{"actor":{"reference":"Patient/p1"},"status":"accepted"},{"actor":{"reference":"Practitioner/gp1"},"status":"accepted"}]}`},
	{"Appointment/ap2", `{"resourceType":"Appointment","id":"ap2","status":"booked","participant":[{"actor":{"reference":"Patient/p2"},"status":"accepted"}]}`},
	{"Appointment/ap3", `{"resourceType":"Appointment","id":"ap3","status":"booked","participant":[{"actor":{"reference":"Patient/p1"},"status":"accepted"},{"actor":{"reference":"Patient/p2"},"status":"accepted"}]}`},
	{"QuestionnaireResponse/qr1", `{"resourceType":"QuestionnaireResponse","id":"qr1","status":"completed","subject":{"reference":"Patient/p1"}}`},
	{"QuestionnaireResponse/qr2", `{"resourceType":"QuestionnaireResponse","id":"qr2","status":"completed","subject":{"reference":"Patient/p2"}}`},
}

// p1Record is what $everything on Patient p1 matches, in its order: the
// Patient, then the compartment by type name and id.
const p1Record = "Patient/p1 Appointment/ap1 Appointment/ap3 CarePlan/cp1 CareTeam/ct1 Condition/c1 Encounter/e1 " +
	"Observation/o1 Observation/o2 Patient/p1b QuestionnaireResponse/qr1"

// walkPages follows the next links from path, failing the test when a
// resource is matched twice, and returns the matches of every page and the
// pages.
func walkPages(t *testing.T, c *client, method, path, body string, between func()) ([]string, []*searchset) {
	t.Helper()
	var (
		matches []string
		pages   []*searchset
	)
	seen := map[string]bool{}
	r := c.do(method, path, body)
	for {
		b := r.searchset(t)
		pages = append(pages, b)
		for _, ref := range strings.Fields(b.ids("match")) {
			if seen[ref] {
				t.Fatalf("page %d: %s matched again", len(pages), ref)
			}
			seen[ref] = true
			matches = append(matches, ref)
		}
		next := b.link("next")
		if next == "" {
			return matches, pages
		}
		if len(pages) > 100 {
			t.Fatal("more than 100 pages")
		}
		if between != nil {
			between()
		}
		r = c.do("GET", next, "")
	}
}

func TestEverythingInstance(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		twoPatients.put(t, c)
		params := func(ps ...string) string {
			var b strings.Builder
			b.WriteString(`{"resourceType":"Parameters","parameter":[`)
			b.WriteString(strings.Join(ps, ","))
			b.WriteString("]}")
			return b.String()
		}
		tests := []struct {
			name, method, path, body string
			match, include           string
		}{
			{"whole record", "GET", "/Patient/p1/$everything", "", p1Record, "Organization/org1 Practitioner/gp1 Location/loc1"},
			{"POST without parameters", "POST", "/Patient/p1/$everything", "", p1Record, "Organization/org1 Practitioner/gp1 Location/loc1"},
			{"the other patient", "GET", "/Patient/p2/$everything", "",
				"Patient/p2 Appointment/ap2 Appointment/ap3 Condition/c2 Observation/o3 QuestionnaireResponse/qr2", "Practitioner/gp2"},
			{"_type", "GET", "/Patient/p1/$everything?_type=Observation,Condition", "", "Patient/p1 Condition/c1 Observation/o1 Observation/o2", ""},
			{"_type repeated", "GET", "/Patient/p1/$everything?_type=Observation&_type=Practitioner", "", "Patient/p1 Observation/o1 Observation/o2", "Practitioner/gp1"},
			{"_type Patient", "GET", "/Patient/p1/$everything?_type=Patient,Organization", "", "Patient/p1 Patient/p1b", "Organization/org1"},
			{"POST Parameters", "POST", "/Patient/p1/$everything",
				params(`{"name":"_type","valueCode":"CarePlan"}`, `{"name":"_type","valueCode":"Encounter,Location"}`, `{"name":"_count","valueInteger":5}`),
				"Patient/p1 CarePlan/cp1 Encounter/e1", "Location/loc1"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				b := c.do(tt.method, tt.path, tt.body).searchset(t)
				if got := b.ids("match"); got != tt.match {
					t.Errorf("matches %q, want %q", got, tt.match)
				}
				if got := b.ids("include"); got != tt.include {
					t.Errorf("included %q, want %q", got, tt.include)
				}
				if b.link("self") == "" || b.link("first") == "" || b.link("next") != "" {
					t.Errorf("links %+v: want self and first, and no next", b.Link)
				}
			})
		}
	})
}

// TestEverythingBinaries checks that $everything returns the Binaries a
// record's attachments name (R4: "any resource referenced from those,
// including binaries and attachments"), and no other Binary.
func TestEverythingBinaries(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		binary := func(id string) struct{ ref, body string } {
			return struct{ ref, body string }{"Binary/" + id, fmt.Sprintf(`{"resourceType":"Binary","id":%q,"contentType":"text/plain","data":"aGVsbG8="}`, id)}
		}
		record{
			{"Patient/p1", `{"resourceType":"Patient","id":"p1"}`},
			{"Patient/p2", `{"resourceType":"Patient","id":"p2"}`},
			binary("letter"), binary("scan"), binary("other"), binary("theirs"),
			{"DocumentReference/d1", `{"resourceType":"DocumentReference","id":"d1","status":"current","subject":{"reference":"Patient/p1"},
 "content":[{"attachment":{"contentType":"text/plain","url":"Binary/letter"}},{"attachment":{"contentType":"text/plain","url":"` + c.base + `/Binary/scan"}},
  {"attachment":{"contentType":"text/plain","url":"https://elsewhere.example.org/fhir/Binary/other"}}]}`},
			{"DocumentReference/d2", `{"resourceType":"DocumentReference","id":"d2","status":"current","subject":{"reference":"Patient/p2"},
 "content":[{"attachment":{"contentType":"text/plain","url":"Binary/theirs"}}]}`},
		}.put(t, c)
		b := c.do("GET", "/Patient/p1/$everything", "").searchset(t)
		if got := b.ids("include"); got != "Binary/letter Binary/scan" {
			t.Errorf("included %q, want Binary/letter Binary/scan", got)
		}
		b = c.do("GET", "/Patient/p1/$everything?_type=DocumentReference", "").searchset(t)
		if got := b.ids("include"); got != "" {
			t.Errorf("_type without Binary: included %q", got)
		}
	})
}

func TestEverythingErrors(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		twoPatients.put(t, c)
		putPatient(t, c, "gone", "Gone", "1950-01-01", "")
		c.do("DELETE", "/Patient/gone", "").want(t, http.StatusNoContent)

		tests := []struct {
			name, method, path, body string
			headers                  []string
			status                   int
			code, expression         string
		}{
			{"unknown patient", "GET", "/Patient/nobody/$everything", "", nil, 404, "not-found", ""},
			{"deleted patient", "GET", "/Patient/gone/$everything", "", nil, 410, "deleted", ""},
			{"deleted patient, POST", "POST", "/Patient/gone/$everything", "", nil, 410, "deleted", ""},
			{"other type", "GET", "/Observation/o1/$everything", "", nil, 404, "not-supported", ""},
			{"bad _since", "GET", "/Patient/p1/$everything?_since=yesterday", "", nil, 400, "invalid", "_since"},
			{"repeated _count", "GET", "/Patient/p1/$everything?_count=1&_count=2", "", nil, 400, "invalid", "_count"},
			{"bad _count", "GET", "/Patient/p1/$everything?_count=-1", "", nil, 400, "invalid", "_count"},
			{"bad _type", "GET", "/Patient/p1/$everything?_type=Observation,Nothing", "", nil, 400, "not-supported", "_type"},
			{"bad cursor", "GET", "/Patient/p1/$everything?_cursor=xyz", "", nil, 400, "invalid", "_cursor"},
			{"bad type-level cursor", "GET", "/Patient/$everything?_cursor=e30", "", nil, 400, "invalid", "_cursor"},
			{"strict start", "GET", "/Patient/p1/$everything?start=2024-01-01", "", []string{"Prefer", "handling=strict"}, 400, "not-supported", "start"},
			{"strict _offset", "GET", "/Patient/p1/$everything?_offset=10", "", []string{"Prefer", "handling=strict"}, 400, "not-supported", "_offset"},
			{"not Parameters", "POST", "/Patient/p1/$everything", `{"resourceType":"Basic"}`, nil, 400, "invalid", ""},
			{"bad POST _since", "POST", "/Patient/p1/$everything",
				`{"resourceType":"Parameters","parameter":[{"name":"_since","valueString":"soon"}]}`, nil, 400, "invalid", "_since"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c.do(tt.method, tt.path, tt.body, tt.headers...).want(t, tt.status).outcome(t, tt.code, tt.expression)
			})
		}

		t.Run("cursor of another patient", func(t *testing.T) {
			b := c.do("GET", "/Patient/p1/$everything?_count=1", "").searchset(t)
			next := b.link("next")
			if next == "" {
				t.Fatal("no next link")
			}
			c.do("GET", strings.Replace(next, "/Patient/p1/", "/Patient/p2/", 1), "").want(t, 400).outcome(t, "invalid", "_cursor")
		})

		t.Run("ignored parameters", func(t *testing.T) {
			b := c.do("GET", "/Patient/p1/$everything?start=2024-01-01&end=2024-12-31&colour=blue&_offset=2", "").searchset(t)
			if got := b.ids("match"); got != p1Record {
				t.Errorf("matches %q, want %q", got, p1Record)
			}
			var expressions []string
			diagnostics := map[string]string{}
			for _, e := range b.Entry {
				if e.Search.Mode == "outcome" {
					for _, is := range e.Resource.Issue {
						if ex, ok := is["expression"].([]any); ok && len(ex) == 1 && is["severity"] == "warning" {
							expressions = append(expressions, fmt.Sprint(ex[0]))
							diagnostics[fmt.Sprint(ex[0])] = fmt.Sprint(is["diagnostics"])
						}
					}
				}
			}
			if got := strings.Join(expressions, " "); got != "_offset colour end start" {
				t.Errorf("outcome reports %q, want _offset colour end start", got)
			}
			// R4 defines _offset, which is not supported; colour it does not define.
			if d := diagnostics["_offset"]; strings.Contains(d, "unknown") || !strings.Contains(d, "not supported") {
				t.Errorf("_offset reported as %q", d)
			}
			if d := diagnostics["colour"]; !strings.Contains(d, "unknown parameter") {
				t.Errorf("colour reported as %q", d)
			}
			if self := b.link("self"); strings.Contains(self, "start=") || strings.Contains(self, "colour=") || strings.Contains(self, "_offset=") {
				t.Errorf("self link %q carries an ignored parameter", self)
			}
		})
	})
}

func TestEverythingSince(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		twoPatients.put(t, c)
		// Every write so far is older than since; the writes after it are not.
		since := time.Now().UTC().Truncate(time.Millisecond).Add(time.Millisecond)
		for !time.Now().After(since) {
			time.Sleep(time.Millisecond)
		}
		record{
			observation("o2", "p1", `,"valueString":"revised"`),
			observation("o4", "p1", ""),
			observation("o5", "p2", ""),
		}.put(t, c)
		at := since.Format("2006-01-02T15:04:05.000Z")
		tests := []struct {
			name, method, path, body string
			match                    string
		}{
			{"GET", "GET", "/Patient/p1/$everything?_since=" + at, "", "Observation/o2 Observation/o4"},
			{"with _type", "GET", "/Patient/p1/$everything?_type=Condition&_since=" + at, "", ""},
			// The + of a time zone sent unencoded reads as a space.
			{"time zone", "GET", "/Patient/p1/$everything?_since=" + since.In(time.FixedZone("BST", 3600)).Format("2006-01-02T15:04:05.000-07:00"), "",
				"Observation/o2 Observation/o4"},
			{"POST", "POST", "/Patient/p1/$everything",
				`{"resourceType":"Parameters","parameter":[{"name":"_since","valueInstant":"` + at + `"}]}`, "Observation/o2 Observation/o4"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				b := c.do(tt.method, tt.path, tt.body).searchset(t)
				if got := b.ids("match"); got != tt.match {
					t.Errorf("matches %q, want %q", got, tt.match)
				}
				if tt.match != "" && !strings.Contains(b.link("self"), "_since=") {
					t.Errorf("self link %q lacks _since", b.link("self"))
				}
			})
		}
	})
}

func TestEverythingPaging(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		twoPatients.put(t, c)
		want := strings.Fields(p1Record)
		for _, count := range []int{1, 2, 3, 5, 11, 12} {
			t.Run(fmt.Sprintf("_count=%d", count), func(t *testing.T) {
				matches, pages := walkPages(t, c, "GET", fmt.Sprintf("/Patient/p1/$everything?_count=%d", count), "", nil)
				if got := strings.Join(matches, " "); got != p1Record {
					t.Errorf("matches %q, want %q", got, p1Record)
				}
				if n := (len(want) + count - 1) / count; len(pages) != n {
					t.Errorf("%d pages, want %d", len(pages), n)
				}
				for i, b := range pages {
					if n := len(strings.Fields(b.ids("match"))); i < len(pages)-1 && n != count {
						t.Errorf("page %d has %d matches, want %d", i+1, n, count)
					}
				}
			})
		}
		t.Run("POST then GET pages", func(t *testing.T) {
			matches, _ := walkPages(t, c, "POST", "/Patient/p1/$everything",
				`{"resourceType":"Parameters","parameter":[{"name":"_count","valueInteger":4}]}`, nil)
			if got := strings.Join(matches, " "); got != p1Record {
				t.Errorf("matches %q, want %q", got, p1Record)
			}
		})
		t.Run("concurrent writes", func(t *testing.T) {
			n := 0
			between := func() {
				// New resources before and after the walk's position, and
				// an update of one already read.
				n++
				record{
					observation(fmt.Sprintf("new%02d", n), "p1", ""),
					{"AllergyIntolerance/a" + fmt.Sprint(n), fmt.Sprintf(`{"resourceType":"AllergyIntolerance","id":"a%d","patient":{"reference":"Patient/p1"}}`, n)},
					{"Condition/c1", fmt.Sprintf(`{"resourceType":"Condition","id":"c1","code":{"text":"Type 2 diabetes, revision %d"},"subject":{"reference":"Patient/p1"}}`, n)},
				}.put(t, c)
			}
			matches, _ := walkPages(t, c, "GET", "/Patient/p1/$everything?_count=2", "", between)
			for _, ref := range want {
				if !slices.Contains(matches, ref) {
					t.Errorf("%s is missing from %v", ref, matches)
				}
			}
			for _, ref := range matches {
				if !strings.HasPrefix(ref, "Observation/new") && !strings.HasPrefix(ref, "AllergyIntolerance/") && !slices.Contains(want, ref) {
					t.Errorf("%s does not belong to the record", ref)
				}
			}
		})
	})
}

// TestEverythingReferenced: the practitioners, organisations, roles,
// locations and medications a record refers to are included, also through
// elements no search parameter indexes, and what an included role refers
// to in turn; nothing of another patient.
func TestEverythingReferenced(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		record{
			{"Practitioner/gp3", `{"resourceType":"Practitioner","id":"gp3"}`},
			{"Practitioner/gp4", `{"resourceType":"Practitioner","id":"gp4"}`},
			{"Practitioner/gp5", `{"resourceType":"Practitioner","id":"gp5"}`},
			{"Organization/org3", `{"resourceType":"Organization","id":"org3","name":"Community Nursing"}`},
			{"Organization/org4", `{"resourceType":"Organization","id":"org4","name":"PCN"}`},
			{"PractitionerRole/pr1", `{"resourceType":"PractitionerRole","id":"pr1","practitioner":{"reference":"Practitioner/gp4"},"organization":{"reference":"Organization/org4"}}`},
			{"Patient/p9", `{"resourceType":"Patient","id":"p9"}`},
			{"Patient/p10", `{"resourceType":"Patient","id":"p10"}`},
			observation("o10", "p10", ""),
			{"Condition/c9", `{"resourceType":"Condition","id":"c9","code":{"text":"Asthma"},"subject":{"reference":"Patient/p9"},"recorder":{"reference":"Practitioner/gp3"}}`},
			{"CarePlan/cp9", `{"resourceType":"CarePlan","id":"cp9","status":"active","intent":"plan","subject":{"reference":"Patient/p9"},"author":{"reference":"Organization/org3"}}`},
			{"Goal/g9", `{"resourceType":"Goal","id":"g9","lifecycleStatus":"active","description":{"text":"Walk daily"},"subject":{"reference":"Patient/p9"},"expressedBy":{"reference":"PractitionerRole/pr1"}}`},
			observation("o9", "p9", `,"derivedFrom":[{"reference":"Observation/o10"}],"note":[{"authorReference":{"reference":"Practitioner/gp5/_history/1"},"text":"x"}]`),
		}.put(t, c)
		for _, count := range []int{1, 100} {
			b := c.do("GET", fmt.Sprintf("/Patient/p9/$everything?_count=%d", count), "").searchset(t)
			var included []string
			for _, page := range walkIncludes(t, c, b) {
				included = append(included, strings.Fields(page)...)
			}
			slices.Sort(included)
			included = slices.Compact(included)
			if got, want := strings.Join(included, " "), "Organization/org3 Organization/org4 Practitioner/gp3 Practitioner/gp4 PractitionerRole/pr1"; got != want {
				t.Errorf("_count=%d: included %q, want %q", count, got, want)
			}
		}
		// _type narrows what is included too.
		b := c.do("GET", "/Patient/p9/$everything?_type=Condition,Goal,PractitionerRole", "").searchset(t)
		if got := b.ids("include"); got != "PractitionerRole/pr1" {
			t.Errorf("_type: included %q", got)
		}
	})
}

// walkIncludes follows the next links from page b and returns the
// included entries of each page.
func walkIncludes(t *testing.T, c *client, b *searchset) []string {
	t.Helper()
	out := []string{b.ids("include")}
	for next := b.link("next"); next != ""; next = b.link("next") {
		b = c.do("GET", next, "").searchset(t)
		out = append(out, b.ids("include"))
	}
	return out
}

// TestEverythingMerged: a patient's record holds the records merged into
// it (its links of type replaces, and theirs in turn), each resource once
// over the pages, and not a record it only links to otherwise.
func TestEverythingMerged(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		record{
			{"Patient/ps", `{"resourceType":"Patient","id":"ps","link":[{"other":{"reference":"Patient/pm"},"type":"replaces"}]}`},
			{"Patient/pm", `{"resourceType":"Patient","id":"pm","active":false,"link":[{"other":{"reference":"Patient/ps"},"type":"replaced-by"},` +
				`{"other":{"reference":"Patient/pold"},"type":"replaces"}]}`},
			{"Patient/pold", `{"resourceType":"Patient","id":"pold","active":false,"link":[{"other":{"reference":"Patient/pm"},"type":"replaced-by"}]}`},
			{"Patient/px", `{"resourceType":"Patient","id":"px","link":[{"other":{"reference":"Patient/ps"},"type":"seealso"}]}`},
			{"Patient/py", `{"resourceType":"Patient","id":"py","link":[{"other":{"reference":"Patient/pgone"},"type":"replaces"}]}`},
			{"Patient/pz", `{"resourceType":"Patient","id":"pz","link":[{"other":{"reference":"` + c.base + `/Patient/pz1"},"type":"replaces"},` +
				`{"other":{"reference":"Patient/pz2/_history/1"},"type":"replaces"}]}`},
			{"Patient/pz1", `{"resourceType":"Patient","id":"pz1","active":false}`},
			{"Patient/pz2", `{"resourceType":"Patient","id":"pz2","active":false}`},
			observation("oz1", "pz1", ""),
			observation("os1", "ps", ""),
			observation("om1", "pm", ""),
			observation("oold", "pold", ""),
			observation("ox", "px", ""),
			observation("oy", "py", ""),
			{"Condition/cm", `{"resourceType":"Condition","id":"cm","code":{"text":"Asthma"},"subject":{"reference":"Patient/pm"}}`},
		}.put(t, c)
		for _, tt := range []struct{ patient, want string }{
			{"ps", "Patient/ps Patient/pm Patient/pold Condition/cm Observation/om1 Observation/oold Observation/os1 Patient/px"},
			{"pm", "Patient/pm Patient/pold Condition/cm Observation/om1 Observation/oold Patient/ps"},
			{"pold", "Patient/pold Observation/oold Patient/pm"},
			{"px", "Patient/px Observation/ox"},
			{"py", "Patient/py Observation/oy"}, // a replaced record not held
			{"pz", "Patient/pz Patient/pz1 Patient/pz2 Observation/oz1"},
		} {
			for _, count := range []int{1, 3, 100} {
				matches, _ := walkPages(t, c, "GET", fmt.Sprintf("/Patient/%s/$everything?_count=%d", tt.patient, count), "", nil)
				if got := strings.Join(matches, " "); got != tt.want {
					t.Errorf("%s, _count=%d: %q, want %q", tt.patient, count, got, tt.want)
				}
			}
		}
	})
}

// TestEverythingCompartment checks that $everything and compartment search
// agree on what is in a patient's compartment, type by type.
func TestEverythingCompartment(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		twoPatients.put(t, c)
		record{
			{"Flag/f1", `{"resourceType":"Flag","id":"f1","status":"active","code":{"text":"Hearing impaired"},"subject":{"reference":"Patient/p1"}}`},
			{"Goal/g1", `{"resourceType":"Goal","id":"g1","lifecycleStatus":"active","description":{"text":"Walk daily"},"subject":{"reference":"Patient/p1"}}`},
			{"RelatedPerson/rp1", `{"resourceType":"RelatedPerson","id":"rp1","patient":{"reference":"Patient/p1"}}`},
			{"Task/t1", `{"resourceType":"Task","id":"t1","status":"requested","intent":"order","for":{"reference":"Patient/p1"}}`},
			{"Task/t2", `{"resourceType":"Task","id":"t2","status":"requested","intent":"order","focus":{"reference":"Observation/o1"}}`},
			{"Group/gr1", `{"resourceType":"Group","id":"gr1","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/p1"}}]}`},
			{"Schedule/s1", `{"resourceType":"Schedule","id":"s1","actor":[{"reference":"Patient/p1"}]}`},
			{"Communication/cm1", `{"resourceType":"Communication","id":"cm1","status":"completed","recipient":[{"reference":"Patient/p1"}]}`},
		}.put(t, c)
		b := c.do("GET", "/Patient/p1/$everything?_count=1000", "").searchset(t)
		byType := map[string][]string{}
		for _, ref := range strings.Fields(b.ids("match")) {
			typ, _, _ := strings.Cut(ref, "/")
			if ref != "Patient/p1" {
				byType[typ] = append(byType[typ], ref)
			}
		}
		if len(byType) < 15 {
			t.Fatalf("only %d types in the record: %v", len(byType), byType)
		}
		for _, typ := range compartmentTypes {
			r := c.do("GET", "/Patient/p1/"+typ+"?_count=1000", "").searchset(t)
			if got, want := r.ids("match"), strings.Join(byType[typ], " "); got != want {
				t.Errorf("%s: compartment search %q, $everything %q", typ, got, want)
			}
			delete(byType, typ)
		}
		if len(byType) > 0 {
			t.Errorf("$everything returned types outside the compartment: %v", byType)
		}
	})
}

// compartmentTypes are the served types of the Patient compartment.
var compartmentTypes = []string{
	"AllergyIntolerance", "Appointment", "AuditEvent", "CarePlan", "CareTeam", "Communication", "Condition",
	"Consent", "DocumentReference", "Encounter", "EpisodeOfCare", "Flag", "Goal", "Group", "MedicationStatement",
	"Observation", "Patient", "Provenance", "QuestionnaireResponse", "RelatedPerson", "Schedule", "ServiceRequest", "Task",
}

func TestEverythingType(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		rec := record{
			{"Practitioner/gp1", `{"resourceType":"Practitioner","id":"gp1","name":[{"family":"Okafor"}]}`},
			{"Patient/pa", `{"resourceType":"Patient","id":"pa","generalPractitioner":[{"reference":"Practitioner/gp1"}]}`},
			{"Patient/pb", `{"resourceType":"Patient","id":"pb"}`},
			{"Patient/pc", `{"resourceType":"Patient","id":"pc"}`},
			{"Patient/pgone", `{"resourceType":"Patient","id":"pgone"}`},
			observation("oa1", "pa", ""),
			observation("oa2", "pa", ""),
			observation("ob1", "pb", ""),
			observation("oc1", "pc", ""),
			observation("ogone", "pgone", ""),
			{"Condition/ca1", `{"resourceType":"Condition","id":"ca1","subject":{"reference":"Patient/pa"}}`},
			{"Condition/cc1", `{"resourceType":"Condition","id":"cc1","subject":{"reference":"Patient/pc"}}`},
			{"CarePlan/pc1", `{"resourceType":"CarePlan","id":"pc1","status":"active","intent":"plan","subject":{"reference":"Patient/pc"}}`},
		}
		rec.put(t, c)
		c.do("DELETE", "/Patient/pgone", "").want(t, http.StatusNoContent)
		c.do("DELETE", "/Observation/ogone", "").want(t, http.StatusNoContent)

		// Patients in id order, each followed by its record.
		const all = "Patient/pa Condition/ca1 Observation/oa1 Observation/oa2 " +
			"Patient/pb Observation/ob1 " +
			"Patient/pc CarePlan/pc1 Condition/cc1 Observation/oc1"
		for _, count := range []int{1, 2, 3, 4, 10, 20} {
			t.Run(fmt.Sprintf("_count=%d", count), func(t *testing.T) {
				matches, pages := walkPages(t, c, "GET", fmt.Sprintf("/Patient/$everything?_count=%d", count), "", nil)
				if got := strings.Join(matches, " "); got != all {
					t.Errorf("matches %q, want %q", got, all)
				}
				for i, b := range pages[:len(pages)-1] {
					if n := len(strings.Fields(b.ids("match"))); n != count {
						t.Errorf("page %d has %d matches, want %d", i+1, n, count)
					}
				}
				if len(pages[len(pages)-1].Entry) == 0 {
					t.Error("the last page is empty")
				}
			})
		}
		t.Run("include", func(t *testing.T) {
			b := c.do("GET", "/Patient/$everything?_count=2", "").searchset(t)
			if got := b.ids("include"); got != "Practitioner/gp1" {
				t.Errorf("included %q, want Practitioner/gp1", got)
			}
		})
		t.Run("_type", func(t *testing.T) {
			matches, _ := walkPages(t, c, "GET", "/Patient/$everything?_type=Condition&_count=1", "", nil)
			if got := strings.Join(matches, " "); got != "Patient/pa Condition/ca1 Patient/pb Patient/pc Condition/cc1" {
				t.Errorf("matches %q", got)
			}
		})
		t.Run("POST", func(t *testing.T) {
			matches, _ := walkPages(t, c, "POST", "/Patient/$everything",
				`{"resourceType":"Parameters","parameter":[{"name":"_type","valueCode":"Patient"},{"name":"_count","valueInteger":2}]}`, nil)
			if got := strings.Join(matches, " "); got != "Patient/pa Patient/pb Patient/pc" {
				t.Errorf("matches %q", got)
			}
		})
		t.Run("concurrent writes", func(t *testing.T) {
			n := 0
			between := func() {
				// A patient before the walk's position and one after it, and
				// new resources of a patient read already and of one to come.
				n++
				record{
					{fmt.Sprintf("Patient/p%02d", n), fmt.Sprintf(`{"resourceType":"Patient","id":"p%02d"}`, n)},
					{fmt.Sprintf("Patient/pz%02d", n), fmt.Sprintf(`{"resourceType":"Patient","id":"pz%02d"}`, n)},
					observation(fmt.Sprintf("oa%02d", n), "pa", ""),
					observation(fmt.Sprintf("oc%02d", n), "pc", ""),
				}.put(t, c)
			}
			matches, _ := walkPages(t, c, "GET", "/Patient/$everything?_count=3", "", between)
			for _, ref := range strings.Fields(all) {
				if !slices.Contains(matches, ref) {
					t.Errorf("%s is missing from %v", ref, matches)
				}
			}
		})
	})
}

// TestEverythingSynth reads generated UK records: the type-level walk is
// every patient's own $everything, one after the other, and no record holds
// a resource of another patient's record.
func TestEverythingSynth(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		err := synth.Generate(synth.Options{Patients: 3, Seed: 7}, func(typ, id string, body []byte) error {
			r := c.do("PUT", "/"+typ+"/"+id, string(body))
			if r.status != http.StatusCreated {
				return fmt.Errorf("PUT %s/%s: %d %s", typ, id, r.status, truncate(r.body))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		patients := strings.Fields(c.do("GET", "/Patient?_count=100&_elements=id", "").searchset(t).ids("match"))
		if len(patients) != 3 {
			t.Fatalf("patients %v, want 3", patients)
		}
		var want []string
		owner := map[string]string{}
		for _, p := range patients {
			matches, _ := walkPages(t, c, "GET", "/"+p+"/$everything?_count=50", "", nil)
			if len(matches) < 5 || matches[0] != p {
				t.Errorf("%s: record %v", p, matches)
			}
			for _, ref := range matches {
				if o, ok := owner[ref]; ok {
					t.Errorf("%s is in the records of %s and %s", ref, o, p)
				}
				owner[ref] = p
			}
			want = append(want, matches...)
		}
		for _, count := range []int{7, 1000} {
			got, _ := walkPages(t, c, "GET", fmt.Sprintf("/Patient/$everything?_count=%d", count), "", nil)
			if !slices.Equal(got, want) {
				t.Errorf("_count=%d: type-level walk\n%v\nwant\n%v", count, got, want)
			}
		}
	})
}

// TestEverythingCapabilities checks that the CapabilityStatement offers
// $everything on Patient and on no other type.
func TestEverythingCapabilities(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		cs := c.do("GET", "/metadata", "").want(t, http.StatusOK).json(t)
		resources, _ := get(cs, "rest", 0, "resource").([]any)
		var on []string
		for _, r := range resources {
			ops, _ := get(r, "operation").([]any)
			for _, op := range ops {
				if str(op, "name") == "everything" {
					if def := str(op, "definition"); def != "http://hl7.org/fhir/OperationDefinition/Patient-everything" {
						t.Errorf("definition %q", def)
					}
					on = append(on, str(r, "type"))
				}
			}
		}
		if !slices.Equal(on, []string{"Patient"}) {
			t.Errorf("$everything offered on %v, want Patient only", on)
		}
	})
}
