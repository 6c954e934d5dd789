package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"carefhir/fhir/fhirjson"
	"carefhir/fhir/fhirxml"
	"carefhir/server"
	"carefhir/store"
)

// TestXML exchanges resources in FHIR XML: accepted on create, served on
// read, history and errors, equal to the JSON form of the same resource.
func TestXML(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		const xmlPatient = `<Patient xmlns="http://hl7.org/fhir"><identifier><system value="https://fhir.nhs.uk/Id/nhs-number"/><value value="9000000009"/></identifier>` +
			`<name><family value="O'Brien"/><given value="Siân"/></name><birthDate value="1970-03-01"><extension url="http://example.org/x"><valueString value="y"/></extension></birthDate></Patient>`
		created := c.do("POST", "/Patient", xmlPatient, "Content-Type", "application/fhir+xml", "Accept", "application/fhir+xml").want(t, 201)
		if ct := created.header.Get("Content-Type"); ct != "application/fhir+xml; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
		res, err := fhirxml.UnmarshalAs(created.body, "Patient")
		if err != nil {
			t.Fatalf("created body is not a Patient in XML: %v\n%s", err, created.body)
		}
		asJSON := c.do("GET", strings.TrimPrefix(created.header.Get("Location"), c.base), "").want(t, 200)
		want, err := fhirjson.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		if !jsonEqual(t, want, asJSON.body) {
			t.Errorf("XML and JSON forms differ:\n%s\n%s", want, asJSON.body)
		}
		if str(asJSON.json(t), "_birthDate", "extension", 0, "valueString") != "y" {
			t.Errorf("primitive extension lost: %s", asJSON.body)
		}

		h := c.do("GET", "/Patient/_history?_format=xml", "").want(t, 200)
		if _, err := fhirxml.UnmarshalAs(h.body, "Bundle"); err != nil {
			t.Errorf("history in XML: %v\n%s", err, h.body)
		}
		nf := c.do("GET", "/Patient/unknown", "", "Accept", "application/fhir+xml").want(t, 404)
		if _, err := fhirxml.UnmarshalAs(nf.body, "OperationOutcome"); err != nil {
			t.Errorf("error in XML: %v\n%s", err, nf.body)
		}
		meta := c.do("GET", "/metadata?_format=xml", "").want(t, 200)
		if _, err := fhirxml.UnmarshalAs(meta.body, "CapabilityStatement"); err != nil {
			t.Errorf("CapabilityStatement in XML: %v", err)
		}
	})
}

// TestUKCoreExamplesXML posts every UK Core example (published in XML) of a
// served type as XML and reads it back as XML: the same resource, apart
// from what the server assigns.
func TestUKCoreExamplesXML(t *testing.T) {
	files, err := filepath.Glob("../testdata/uk-core/*.xml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no UK Core examples: %v", err)
	}
	eachEngine(t, func(t *testing.T, c *client) {
		posted := 0
		for _, file := range files {
			sent, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			res, err := fhirxml.Unmarshal(sent)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			r := c.do("POST", "/"+res.ResourceType(), string(sent), "Content-Type", "application/fhir+xml")
			if r.status == http.StatusNotFound {
				continue // a type carefhir does not serve
			}
			posted++
			r.want(t, 201)
			back := c.do("GET", strings.TrimPrefix(r.header.Get("Location"), c.base), "", "Accept", "application/fhir+xml").want(t, 200)
			got, err := fhirxml.Unmarshal(back.body)
			if err != nil {
				t.Fatalf("%s: read back: %v", file, err)
			}
			wantJSON, _ := fhirjson.Marshal(res)
			gotJSON, _ := fhirjson.Marshal(got)
			if !reflect.DeepEqual(comparable(t, wantJSON), comparable(t, gotJSON)) {
				t.Errorf("%s changed:\nsent %s\ngot  %s", filepath.Base(file), wantJSON, gotJSON)
			}
		}
		if posted < 80 {
			t.Errorf("only %d UK Core examples posted", posted)
		}
	})
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	if err := da.Decode(&x); err != nil {
		t.Fatal(err)
	}
	if err := db.Decode(&y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}

// A string with a control character other than tab and line breaks is
// refused, as FHIR strings hold none, and so is one with U+FFFE or U+FFFF:
// every stored resource can then be served as XML, which cannot carry them.
func TestControlCharacterRefused(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("PUT", "/Patient/a", `{"resourceType":"Patient","id":"a","name":[{"family":"x\u0001y"}]}`)
		r.want(t, http.StatusBadRequest)
		r.outcome(t, "invalid", "")
		// Nor can XML carry the noncharacters U+FFFE and U+FFFF, raw or escaped.
		for _, family := range []string{"x\uffffy", `x\ufffey`} {
			c.do("POST", "/Patient", `{"resourceType":"Patient","name":[{"family":"`+family+`"}]}`).
				want(t, http.StatusBadRequest).outcome(t, "invalid", "")
		}
		if total := get(c.do("GET", "/Patient?_summary=count", "").want(t, http.StatusOK).json(t), "total"); total != 0.0 {
			t.Errorf("%v Patients stored after refused writes, want 0", total)
		}
		c.do("PUT", "/Patient/a", `{"resourceType":"Patient","id":"a","name":[{"family":"x\ty"}]}`).want(t, http.StatusCreated)
		c.do("GET", "/Patient/a?_format=xml", "").want(t, http.StatusOK)
	})
}

// TestStoredNoncharacterServedAsXML: a string holding what XML cannot
// carry (U+FFFE, U+FFFF, a control character), stored before writes were
// refused it, is served as XML with U+FFFD in its place, as JSON with the
// stored bytes, where the XML read answered an error.
func TestStoredNoncharacterServedAsXML(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		// As JSON escapes, and U+FFFE as the character itself.
		for i, family := range []string{`x\ufffey`, `x\uffffy`, `x\u0001y`, `x\fy`, "x\uFFFEy"} {
			id := fmt.Sprintf("old%d", i)
			body := `{"resourceType":"Patient","id":"` + id + `","meta":{"versionId":"1","lastUpdated":"2020-01-01T00:00:00.000Z"},"name":[{"family":"` + family + `"}]}`
			if err := c.st.Put(t.Context(), &store.Write{Type: "Patient", ID: id, LastUpdated: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), JSON: []byte(body)}); err != nil {
				t.Fatal(err)
			}
			r := c.do("GET", "/Patient/"+id+"?_format=xml", "").want(t, http.StatusOK)
			if want := "<family value=\"x\uFFFDy\"/>"; !strings.Contains(string(r.body), want) {
				t.Errorf("%s as XML: %s, want %s", family, r.body, want)
			}
			if got := c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK).body; !bytes.Equal(got, []byte(body)) {
				t.Errorf("%s as JSON: %s, want the stored %s", family, got, body)
			}
		}
		b := c.do("GET", "/Patient?_format=xml", "").want(t, http.StatusOK)
		if n := strings.Count(string(b.body), "\uFFFD"); n != 5 {
			t.Errorf("a search as XML holds %d U+FFFD, want 5: %s", n, b.body)
		}
	})
}

// A JSON narrative must be what XML can carry (R4 narrative.html#xhtml: no
// HTML entities such as &nbsp;, nothing before the div): one that is not
// is refused on every write, so that every stored resource can be served
// as XML, and one that is can be read as XML and posted back unchanged.
func TestNarrativeServedAsXML(t *testing.T) {
	const div = `<div xmlns=\"http://www.w3.org/1999/xhtml\">%s</div>`
	narrative := func(content string) string {
		return `{"resourceType":"Patient","id":"n","text":{"status":"generated","div":"` + fmt.Sprintf(div, content) + `"}}`
	}
	eachEngine(t, func(t *testing.T, c *client) {
		for _, bad := range []string{
			narrative("a&nbsp;b"),
			narrative("&copy; NHS"),
			strings.Replace(narrative("a"), `"div":"`, `"div":"<?xml version=\"1.0\"?>`, 1),
		} {
			c.do("POST", "/Patient", bad).want(t, http.StatusBadRequest).outcome(t, "structure", "Patient.text.div")
			c.do("PUT", "/Patient/n", bad).want(t, http.StatusBadRequest).outcome(t, "structure", "Patient.text.div")
		}
		c.do("GET", "/Patient/n", "").want(t, http.StatusNotFound)

		c.do("PUT", "/Patient/n", narrative("a&#160;b &amp; &lt;c&gt;")).want(t, http.StatusCreated)
		patch := `[{"op":"replace","path":"/text/div","value":"` + fmt.Sprintf(div, "a&nbsp;b") + `"}]`
		c.do("PATCH", "/Patient/n", patch, "Content-Type", "application/json-patch+json").want(t, http.StatusUnprocessableEntity).outcome(t, "structure", "Patient.text.div")
		asXML := c.do("GET", "/Patient/n?_format=xml", "").want(t, http.StatusOK)
		c.do("PUT", "/Patient/n", string(asXML.body), "Content-Type", "application/fhir+xml").want(t, http.StatusOK)
		back := c.do("GET", "/Patient/n", "").want(t, http.StatusOK).json(t)
		if got, want := str(back, "text", "div"), strings.ReplaceAll(fmt.Sprintf(div, "a&#160;b &amp; &lt;c&gt;"), `\"`, `"`); got != want {
			t.Errorf("div after an XML round trip %q, want %q", got, want)
		}
		if v := str(back, "meta", "versionId"); v != "1" {
			t.Errorf("the XML round trip wrote version %s", v)
		}
	})
}

// A narrative stored before writes refused HTML named entities and XML
// declarations in the div (or imported since) is still served as XML: the
// entities as numeric character references of the same characters, the
// declaration dropped; its JSON form is served as stored.
func TestStoredNarrativeServedAsXML(t *testing.T) {
	const div = `<div xmlns=\"http://www.w3.org/1999/xhtml\">%s</div>`
	stored := []struct{ div, want string }{
		{fmt.Sprintf(div, "a&nbsp;b &copy; NHS &amp; &#160;"), "a&#160;b &#169; NHS &amp; &#160;"},
		{`<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n` + fmt.Sprintf(div, "a &lt; b"), "a &lt; b"},
		{`<?xml version=\"1.0\"?>` + fmt.Sprintf(div, `<p title=\"&eacute;\">caf&eacute;<!-- &nbsp; --></p>`), `<p title="&#233;">caf&#233;<!-- &nbsp; --></p>`},
	}
	eachEngine(t, func(t *testing.T, c *client) {
		for i, tc := range stored {
			id := fmt.Sprintf("old%d", i)
			body := `{"resourceType":"Patient","id":"` + id + `","meta":{"versionId":"1","lastUpdated":"2020-01-02T03:04:05.000Z"},"text":{"status":"generated","div":"` + tc.div + `"}}`
			lu := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
			if err := c.st.Put(t.Context(), &store.Write{Type: "Patient", ID: id, LastUpdated: lu, JSON: []byte(body)}); err != nil {
				t.Fatal(err)
			}
			for _, path := range []string{"/Patient/" + id, "/Patient/" + id + "/_history/1", "/Patient/_history"} {
				r := c.do("GET", path, "", "Accept", "application/fhir+xml").want(t, http.StatusOK)
				want := `<div xmlns="http://www.w3.org/1999/xhtml">` + tc.want + `</div>`
				if !bytes.Contains(r.body, []byte(want)) {
					t.Errorf("GET %s as XML does not hold %s:\n%s", path, want, r.body)
				}
			}
			if r := c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK); !jsonEqual(t, []byte(body), r.body) {
				t.Errorf("JSON read %s, want the stored %s", r.body, body)
			}
		}
	})
}

// A date on a day its month lacks, stored before writes refused it, is
// still served, as XML and as JSON, as it was stored.
func TestStoredDaylessDateServed(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		body := `{"resourceType":"Patient","id":"old","meta":{"versionId":"1","lastUpdated":"2020-01-02T03:04:05.000Z"},"birthDate":"2023-02-29"}`
		lu := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
		if err := c.st.Put(t.Context(), &store.Write{Type: "Patient", ID: "old", LastUpdated: lu, JSON: []byte(body)}); err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"/Patient/old", "/Patient/old/_history/1", "/Patient/_history"} {
			r := c.do("GET", path, "", "Accept", "application/fhir+xml").want(t, http.StatusOK)
			if !bytes.Contains(r.body, []byte(`<birthDate value="2023-02-29"/>`)) {
				t.Errorf("GET %s as XML does not hold the birthDate:\n%s", path, r.body)
			}
		}
		if r := c.do("GET", "/Patient/old", "").want(t, http.StatusOK); !jsonEqual(t, []byte(body), r.body) {
			t.Errorf("JSON read %s, want the stored %s", r.body, body)
		}
	})
}

// An XML attribute value reads as XML defines it (XML 1.0 §3.3.3): a line
// break or tab written as such is a space, and only a character reference
// is a line break, so the resource stored is the one any XML reader sees,
// and reading it back as XML gives that resource again.
func TestXMLAttributeWhiteSpace(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		sent := "<Patient xmlns=\"http://hl7.org/fhir\"><id value=\"w\"/><address><line value=\"1 High\r\n Street\"/><line value=\"Flat\t2&#10;Rear\"/></address></Patient>"
		c.do("PUT", "/Patient/w", sent, "Content-Type", "application/fhir+xml").want(t, http.StatusCreated)
		got := c.do("GET", "/Patient/w", "").want(t, http.StatusOK).json(t)
		if line := str(got, "address", 0, "line", 0); line != "1 High  Street" {
			t.Errorf("line 0 %q, want %q", line, "1 High  Street")
		}
		if line := str(got, "address", 0, "line", 1); line != "Flat 2\nRear" {
			t.Errorf("line 1 %q, want %q", line, "Flat 2\nRear")
		}
		back := c.do("GET", "/Patient/w?_format=xml", "").want(t, http.StatusOK)
		c.do("PUT", "/Patient/w", string(back.body), "Content-Type", "application/fhir+xml").want(t, http.StatusOK)
		if v := str(c.do("GET", "/Patient/w", "").want(t, http.StatusOK).json(t), "meta", "versionId"); v != "1" {
			t.Errorf("the XML read back is another resource: version %s written", v)
		}
	})
}

// An XML element whose only content is refused is reported once, at the
// content: a Quantity whose value is not a decimal is not also called an
// empty element, nor a primitive whose only child is refused an element with
// no value, as the JSON form of the same resource is not.
func TestXMLRefusedContentNotEmpty(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		for _, tt := range []struct{ body, at string }{
			{`<Observation xmlns="http://hl7.org/fhir"><status value="final"/><code><text value="x"/></code><valueQuantity><value value="+1.5"/></valueQuantity></Observation>`,
				"Observation.valueQuantity.value"},
			{`<Observation xmlns="http://hl7.org/fhir"><status value="final"/><code><coding><code value=""/></coding></code></Observation>`,
				"Observation.code.coding[0].code"},
			{`<Observation xmlns="http://hl7.org/fhir"><status><valueString value="final"/></status><code><text value="x"/></code></Observation>`,
				"Observation.status.valueString"},
		} {
			r := c.do("POST", "/Observation", tt.body, "Content-Type", "application/fhir+xml", "Accept", "application/fhir+json").want(t, http.StatusBadRequest)
			r.outcome(t, "structure", tt.at)
			var oo struct {
				Issue []struct{ Diagnostics string }
			}
			if err := json.Unmarshal(r.body, &oo); err != nil {
				t.Fatal(err)
			}
			if len(oo.Issue) != 1 {
				t.Errorf("%d issues, want the one at %s: %s", len(oo.Issue), tt.at, r.body)
			}
		}
		if n := c.do("GET", "/Observation?_summary=count", "").want(t, http.StatusOK).json(t)["total"]; n != 0.0 {
			t.Errorf("%v Observations stored, want 0", n)
		}
	})
}

// A narrative sent in JSON with carriage returns is stored with the line
// ends XML reads in it (XML 1.0 §2.11), so that its XML form read back is
// the same resource, as it is for any other.
func TestNarrativeLineEndsReadBackFromXML(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		sent := `{"resourceType":"Patient","id":"n","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">line 1\r\nline 2\rline 3</div>"}}`
		c.do("PUT", "/Patient/n", sent).want(t, http.StatusCreated)
		want := `<div xmlns="http://www.w3.org/1999/xhtml">line 1` + "\n" + `line 2` + "\n" + `line 3</div>`
		if div := str(c.do("GET", "/Patient/n", "").want(t, http.StatusOK).json(t), "text", "div"); div != want {
			t.Errorf("div %q, want %q", div, want)
		}
		back := c.do("GET", "/Patient/n?_format=xml", "").want(t, http.StatusOK)
		c.do("PUT", "/Patient/n", string(back.body), "Content-Type", "application/fhir+xml").want(t, http.StatusOK)
		if v := str(c.do("GET", "/Patient/n", "").want(t, http.StatusOK).json(t), "meta", "versionId"); v != "1" {
			t.Errorf("the XML read back is another resource: version %s written", v)
		}
	})
}

// An error raised before the answer's format is negotiated (by the router,
// the body limit, the query check, the content coding, the X-Provenance
// header or the audit trail's guard) is an OperationOutcome in the XML the
// client asked for with _format or Accept, as every other answer is.
func TestEarlyErrorsInXML(t *testing.T) {
	c := newClient(t, engines[0].Open(t), func(cfg *server.Config) { cfg.MaxBodyBytes = 1 << 10 })
	big := `{"resourceType":"Patient","name":[{"family":"` + strings.Repeat("a", 2<<10) + `"}]}`
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		headers                  []string
	}{
		{"no endpoint", "GET", "/Patient/p/a/b/c", "", http.StatusNotFound, []string{"Accept", "application/fhir+xml"}},
		{"method not allowed", "PUT", "/Patient/p/_history/1?_format=xml", "", http.StatusMethodNotAllowed, nil},
		{"query that does not parse", "GET", "/Patient?_format=xml&name=%zz", "", http.StatusBadRequest, nil},
		{"body over the limit", "POST", "/Patient", big, http.StatusRequestEntityTooLarge, []string{"Accept", "application/fhir+xml"}},
		{"content coding", "POST", "/Patient?_format=xml", `{"resourceType":"Patient"}`, http.StatusUnsupportedMediaType, []string{"Content-Encoding", "br"}},
		{"X-Provenance", "POST", "/Patient?_format=xml", `{"resourceType":"Patient"}`, http.StatusBadRequest, []string{"X-Provenance", "{"}},
		{"audit trail", "POST", "/AuditEvent", `{"resourceType":"AuditEvent"}`, http.StatusMethodNotAllowed, []string{"Accept", "application/fhir+xml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do(tc.method, tc.path, tc.body, tc.headers...).want(t, tc.status)
			if ct := r.header.Get("Content-Type"); ct != "application/fhir+xml; charset=utf-8" {
				t.Errorf("Content-Type %q, want application/fhir+xml", ct)
			}
			if _, err := fhirxml.UnmarshalAs(r.body, "OperationOutcome"); err != nil {
				t.Errorf("not an OperationOutcome in XML: %v\n%s", err, r.body)
			}
		})
	}
	// A _format the server cannot answer in is still refused in JSON.
	r := c.do("GET", "/Patient?_format=turtle&name=%zz", "").want(t, http.StatusBadRequest)
	if ct := r.header.Get("Content-Type"); ct != "application/fhir+json; charset=utf-8" {
		t.Errorf("Content-Type %q, want application/fhir+json", ct)
	}
}

// A narrative div may use the XHTML namespace as declared on an ancestor,
// the root element most often: the declarations it uses are written into
// the div stored, which is then the same XHTML read alone, as JSON and XML
// serve it.
func TestNarrativeNamespaceDeclaredOnAncestor(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		for _, tc := range []struct{ id, sent, div string }{
			{"prefix",
				`<Patient xmlns="http://hl7.org/fhir" xmlns:h="http://www.w3.org/1999/xhtml"><id value="prefix"/><text><status value="generated"/><h:div><h:p>Ann</h:p></h:div></text></Patient>`,
				`<h:div xmlns:h="http://www.w3.org/1999/xhtml"><h:p>Ann</h:p></h:div>`},
			{"default",
				`<f:Patient xmlns:f="http://hl7.org/fhir" xmlns="http://www.w3.org/1999/xhtml"><f:id value="default"/><f:text><f:status value="generated"/><div><p>Ann</p></div></f:text></f:Patient>`,
				`<div xmlns="http://www.w3.org/1999/xhtml"><p>Ann</p></div>`},
			{"child",
				`<Patient xmlns="http://hl7.org/fhir" xmlns:h="http://www.w3.org/1999/xhtml"><id value="child"/><text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><h:b>Ann</h:b></div></text></Patient>`,
				`<div xmlns:h="http://www.w3.org/1999/xhtml" xmlns="http://www.w3.org/1999/xhtml"><h:b>Ann</h:b></div>`},
		} {
			t.Run(tc.id, func(t *testing.T) {
				c.do("PUT", "/Patient/"+tc.id, tc.sent, "Content-Type", "application/fhir+xml").want(t, http.StatusCreated)
				got := c.do("GET", "/Patient/"+tc.id, "").want(t, http.StatusOK).json(t)
				if div := str(got, "text", "div"); div != tc.div {
					t.Errorf("div %q, want %q", div, tc.div)
				}
				back := c.do("GET", "/Patient/"+tc.id+"?_format=xml", "").want(t, http.StatusOK)
				c.do("PUT", "/Patient/"+tc.id, string(back.body), "Content-Type", "application/fhir+xml").want(t, http.StatusOK)
				if v := str(c.do("GET", "/Patient/"+tc.id, "").want(t, http.StatusOK).json(t), "meta", "versionId"); v != "1" {
					t.Errorf("the XML read back is another resource: version %s written", v)
				}
			})
		}
	})
}
