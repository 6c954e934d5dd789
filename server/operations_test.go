package server_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestOperationDispatch(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("GET", "/Patient/$validate", "").want(t, 405).outcome(t, "not-supported", "")
		c.do("POST", "/$validate", patient).want(t, 404).outcome(t, "not-supported", "")
		c.do("POST", "/$nothing", patient).want(t, 404).outcome(t, "not-supported", "")
		c.do("POST", "/Unknown/$validate", patient).want(t, 404).outcome(t, "not-supported", "")
		c.do("POST", "/Patient/1/$nothing", patient).want(t, 404).outcome(t, "not-supported", "")
		c.do("POST", "/Patient/bad$id/$validate", patient).want(t, 400).outcome(t, "value", "")
		c.do("POST", "/Patient/missing/$validate", patient).want(t, 404).outcome(t, "not-found", "")
	}, withValidator(false))
}

// TestOperationParametersFromDefinitions: the parameters of every
// operation are checked against its OperationDefinition where it is
// invoked, GET query and POST Parameters (JSON or XML) alike: one the
// definition does not state is 400 naming it, one it allows once given
// twice is 400, one it requires missing is 400; and nothing is written.
func TestOperationParametersFromDefinitions(t *testing.T) {
	vs, cs := url.QueryEscape(genderVS), url.QueryEscape(genderCS)
	at := func(name string) string { return "Parameters.parameter.where(name='" + name + "')" }
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("PUT", "/Patient/p1", `{"resourceType":"Patient","id":"p1"}`).want(t, http.StatusCreated)
		for _, tt := range []struct{ method, path, body, code, param string }{
			{"GET", "/ValueSet/$expand?url=" + vs + "&filtr=fem", "", "not-supported", "filtr"},
			{"POST", "/ValueSet/$expand", `{"resourceType":"Parameters","parameter":[{"name":"url","valueUri":"` + genderVS + `"},{"name":"filtr","valueString":"fem"}]}`, "not-supported", "filtr"},
			{"POST", "/ValueSet/$expand", `<Parameters xmlns="http://hl7.org/fhir"><parameter><name value="url"/><valueUri value="` + genderVS + `"/></parameter><parameter><name value="filtr"/><valueString value="fem"/></parameter></Parameters>`, "not-supported", "filtr"},
			{"POST", "/ValueSet/$expand", `<Parameters xmlns="http://hl7.org/fhir"><parameter><name value="url"/><valueUri value="` + genderVS + `"/></parameter><parameter><name value="filter"/><valueString value="a"/></parameter><parameter><name value="filter"/><valueString value="b"/></parameter></Parameters>`, "invalid", "filter"},
			{"GET", "/ValueSet/$validate-code?url=" + vs + "&system=" + cs + "&code=female&version=1", "", "not-supported", "version"},
			// systemVersion is ValueSet's; CodeSystem/$validate-code has its own definition.
			{"GET", "/CodeSystem/$validate-code?url=" + cs + "&code=female&systemVersion=4.0.1", "", "not-supported", "systemVersion"},
			{"GET", "/CodeSystem/$lookup?system=" + cs + "&code=female&langauge=de", "", "not-supported", "langauge"},
			{"GET", "/CodeSystem/$subsumes?system=" + cs + "&codeA=female&codeB=male&codeC=other", "", "not-supported", "codeC"},
			{"GET", "/Patient/p1/$everything?_summary=true", "", "not-supported", "_summary"},
			{"GET", "/Patient/p1/$meta?x=1", "", "not-supported", "x"},
			{"GET", "/Patient/p1/_history/1/$meta?x=1", "", "not-supported", "x"},
			{"POST", "/Patient/p1/_history/1/$meta", `{"resourceType":"Parameters","parameter":[{"name":"x","valueString":"1"}]}`, "not-supported", "x"},
			{"POST", "/Patient/p1/$meta-add", `{"resourceType":"Parameters"}`, "required", "meta"},
			{"POST", "/Patient/p1/$meta-add", `{"resourceType":"Parameters","parameter":[{"name":"meta","valueMeta":{"tag":[{"code":"a"}]}},{"name":"meta","valueMeta":{"tag":[{"code":"b"}]}}]}`, "invalid", "meta"},
			{"POST", "/Patient/$validate?mode=create&profil=x", patient, "not-supported", "profil"},
		} {
			headers := []string{}
			if strings.HasPrefix(tt.body, "<") {
				headers = []string{"Content-Type", "application/fhir+xml", "Accept", "application/fhir+json"}
			}
			r := c.do(tt.method, tt.path, tt.body, headers...).want(t, http.StatusBadRequest)
			if says := r.outcome(t, tt.code, at(tt.param)); !strings.Contains(says, tt.param) {
				t.Errorf("%s %s: %q does not name %s", tt.method, tt.path, says, tt.param)
			}
		}
		// A body other than Parameters stands for a parameter of its type;
		// one the definition has none of for is refused, not read as none.
		for _, path := range []string{"/CodeSystem/$lookup?system=" + cs + "&code=female", "/Patient/p1/$meta"} {
			r := c.do("POST", path, patient).want(t, http.StatusBadRequest)
			if says := r.outcome(t, "invalid", ""); !strings.Contains(says, "Parameters") {
				t.Errorf("POST %s of a Patient: %q", path, says)
			}
		}
		if v := c.do("GET", "/Patient/p1", "").want(t, http.StatusOK).json(t); get(v, "meta", "versionId") != "1" {
			t.Errorf("Patient/p1 at version %v after refused invocations, want 1", get(v, "meta", "versionId"))
		}
		// What the definitions state, and the general parameters, are taken.
		for _, path := range []string{
			"/ValueSet/$expand?url=" + vs + "&filter=fem&_format=json&_pretty=true",
			"/CodeSystem/$lookup?system=" + cs + "&code=female&property=parent&property=child",
			"/CodeSystem/$validate-code?url=" + cs + "&code=female&version=4.0.1",
			"/Patient/p1/$everything?_count=1&_type=Patient",
			"/Patient/p1/$meta?_format=json",
			"/Patient/p1/_history/1/$meta?_pretty=true",
		} {
			c.do("GET", path, "").want(t, http.StatusOK)
		}
		// The cursor of its next-page links is $everything's own.
		page := c.do("GET", "/Patient/$everything?_count=1", "").want(t, http.StatusOK).json(t)
		for _, l := range get(page, "link").([]any) {
			if str(l, "relation") == "next" {
				next := str(l, "url")
				c.do("GET", next[strings.Index(next, "/Patient/"):], "").want(t, http.StatusOK)
			}
		}
	}, withValidator(false), withDefinitions)
}

// TestOperationParametersLenient: with Prefer: handling=lenient, a
// parameter the operation's definition does not state is ignored, GET
// query and POST Parameters alike, as a search ignores one: the answer is
// the one without it. A known parameter given wrongly (too many times, a
// value the operation cannot read) and a required one missing are refused
// still.
func TestOperationParametersLenient(t *testing.T) {
	vs := url.QueryEscape(genderVS)
	lenient := []string{"Prefer", "handling=lenient"}
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("PUT", "/Patient/p1", `{"resourceType":"Patient","id":"p1"}`).want(t, http.StatusCreated)
		want := c.do("GET", "/ValueSet/$expand?url="+vs+"&filter=fem", "").want(t, http.StatusOK).json(t)
		wantCodes := codes(want)
		for _, tt := range []struct{ method, path, body string }{
			{"GET", "/ValueSet/$expand?url=" + vs + "&filter=fem&colour=blue", ""},
			{"POST", "/ValueSet/$expand?colour=blue", `{"resourceType":"Parameters","parameter":[{"name":"url","valueUri":"` + genderVS + `"},{"name":"filter","valueString":"fem"},{"name":"colour","valueString":"blue"}]}`},
		} {
			got := c.do(tt.method, tt.path, tt.body, lenient...).want(t, http.StatusOK).json(t)
			if g := codes(got); g != wantCodes {
				t.Errorf("%s %s: expansion %s, want %s as without the unknown parameter", tt.method, tt.path, g, wantCodes)
			}
		}
		// A body parameter named as a general one is unknown to the
		// operation, and ignored; the query string's still shapes the
		// answer.
		generalInBody := `{"resourceType":"Parameters","parameter":[{"name":"url","valueUri":"` + genderVS + `"},{"name":"_pretty","valueString":"true"},{"name":"_format","valueString":"json"}]}`
		if r := c.do("POST", "/ValueSet/$expand?_pretty=true", generalInBody, lenient...).want(t, http.StatusOK); !strings.Contains(string(r.body), "\n  \"") {
			t.Errorf("POST $expand?_pretty=true with _pretty also in the body: answer not indented: %.120s", r.body)
		}
		if r := c.do("POST", "/ValueSet/$expand?_format=xml", generalInBody, lenient...).want(t, http.StatusOK); !strings.HasPrefix(r.header.Get("Content-Type"), "application/fhir+xml") {
			t.Errorf("POST $expand?_format=xml with _format also in the body: Content-Type %q, want XML", r.header.Get("Content-Type"))
		}
		c.do("GET", "/Patient/p1/$meta?x=1", "", lenient...).want(t, http.StatusOK)
		c.do("GET", "/Patient/p1/$everything?colour=blue&_count=1", "", lenient...).want(t, http.StatusOK)
		at := func(name string) string { return "Parameters.parameter.where(name='" + name + "')" }
		c.do("GET", "/ValueSet/$expand?url="+vs+"&filter=a&filter=b&colour=blue", "", lenient...).want(t, http.StatusBadRequest).outcome(t, "invalid", at("filter"))
		c.do("POST", "/Patient/p1/$meta-add", `{"resourceType":"Parameters","parameter":[{"name":"colour","valueString":"blue"}]}`, lenient...).want(t, http.StatusBadRequest).outcome(t, "required", at("meta"))
		c.do("GET", "/Patient/p1/$everything?colour=blue&_count=x", "", lenient...).want(t, http.StatusBadRequest).outcome(t, "invalid", "_count")
		if v := c.do("GET", "/Patient/p1", "").want(t, http.StatusOK).json(t); get(v, "meta", "versionId") != "1" {
			t.Errorf("Patient/p1 at version %v after refused invocations, want 1", get(v, "meta", "versionId"))
		}
	}, withValidator(false), withDefinitions)
}

// codes lists the codes of an expansion, in order.
func codes(valueSet map[string]any) string {
	var out []string
	for _, c := range list(get(valueSet, "expansion", "contains")) {
		out = append(out, str(c, "code"))
	}
	return strings.Join(out, ",")
}

// An operation invoked with POST and an empty body of unknown length (sent
// chunked, as Node's http.request sends a POST it writes nothing to) is
// invoked as with Content-Length: 0, its parameters in the query string.
func TestOperationEmptyChunkedBody(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", `{"resourceType":"Patient","name":[{"family":"Ward"}]}`), "id")
		u, err := url.Parse(c.base)
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{
			"/Patient/" + id + "/$everything",
			"/Patient/$count-family?family=Ward",
			"/ValueSet/$expand?url=" + url.QueryEscape(genderVS),
		} {
			r := postChunked(t, u.Host, u.Path+path, "")
			if r.StatusCode != http.StatusOK {
				body, _ := io.ReadAll(r.Body)
				t.Errorf("POST %s with an empty chunked body: status %d, want 200; body: %s", path, r.StatusCode, body)
			}
			r.Body.Close()
		}
	}, withExtensions, withDefinitions, withValidator(false))
}

// postChunked sends a POST of body to path at host with Transfer-Encoding:
// chunked, which net/http's client does not send for an empty body.
func postChunked(t *testing.T, host, path, body string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	chunks := "0\r\n\r\n"
	if body != "" {
		chunks = fmt.Sprintf("%x\r\n%s\r\n", len(body), body) + chunks
	}
	req := "POST " + path + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/fhir+json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	r, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A parameter holding more than one of a value, a resource and parts,
// which Parameters forbids (inv-1), is 400 naming it, in a part too, for
// every operation, in JSON and XML: read, one of them would be left unread
// without saying so. Nothing is written.
func TestOperationParameterOfTwoContents(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", `{"resourceType":"Patient","name":[{"family":"Ward"}]}`), "id")
		const tag = `{"tag":[{"system":"http://example.org/tags","code":"a"}]}`
		for _, tt := range []struct{ path, params, at string }{
			{"/ValueSet/$expand", `{"name":"url","valueUri":"` + genderVS + `"},{"name":"filter","valueString":"fem","part":[{"name":"x","valueString":"y"}]}`,
				"Parameters.parameter.where(name='filter')"},
			{"/Patient/$validate", `{"name":"resource","resource":{"resourceType":"Patient"},"valueString":"x"}`,
				"Parameters.parameter.where(name='resource')"},
			{"/Patient/$count-family", `{"name":"family","valueString":"Ward","resource":{"resourceType":"Patient"}}`,
				"Parameters.parameter.where(name='family')"},
			{"/Patient/" + id + "/$meta-add", `{"name":"meta","valueMeta":` + tag + `,"part":[{"name":"x","valueString":"y"}]}`,
				"Parameters.parameter.where(name='meta')"},
			{"/Patient/" + id + "/$everything", `{"name":"_type","part":[{"name":"x","valueString":"y","part":[{"name":"z","valueString":"w"}]}]}`,
				"Parameters.parameter.where(name='_type').part.where(name='x')"},
		} {
			body := `{"resourceType":"Parameters","parameter":[` + tt.params + `]}`
			c.do("POST", tt.path, body).want(t, http.StatusBadRequest).outcome(t, "invalid", tt.at)
		}
		xml := `<Parameters xmlns="http://hl7.org/fhir"><parameter><name value="family"/><valueString value="Ward"/>` +
			`<part><name value="x"/><valueString value="y"/></part></parameter></Parameters>`
		c.do("POST", "/Patient/$count-family", xml, "Content-Type", "application/fhir+xml", "Accept", "application/fhir+json").
			want(t, http.StatusBadRequest).outcome(t, "invalid", "Parameters.parameter.where(name='family')")
		if v := str(c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK).json(t), "meta", "versionId"); v != "1" {
			t.Errorf("refused $meta-add wrote version %s", v)
		}
	}, withExtensions, withDefinitions, withValidator(false))
}

// A parameter whose content is not of the type its definition gives it is
// refused at the parameter, for every operation, rather than read as
// absent or as something else; a value of another type of the same kind,
// or text standing for a number, is taken.
func TestOperationParameterOfAnotherType(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", `{"resourceType":"Patient","name":[{"family":"Ward"}]}`), "id")
		for _, tt := range []struct{ path, params, at string }{
			{"/ValueSet/$validate-code", `{"name":"url","valueUri":"` + genderVS + `"},{"name":"coding","valueCodeableConcept":{"coding":[{"system":"http://hl7.org/fhir/administrative-gender","code":"female"}]}}`,
				"Parameters.parameter.where(name='coding')"},
			{"/ValueSet/$expand", `{"name":"url","valueUri":"` + genderVS + `"},{"name":"filter","valueInteger":5}`,
				"Parameters.parameter.where(name='filter')"},
			{"/ValueSet/$expand", `{"name":"url","valueUri":"` + genderVS + `"},{"name":"count","valueBoolean":true}`,
				"Parameters.parameter.where(name='count')"},
			{"/ValueSet/$expand", `{"name":"url","valueUri":"` + genderVS + `"},{"name":"valueSet","valueString":"x"}`,
				"Parameters.parameter.where(name='valueSet')"},
			{"/Patient/$validate", `{"name":"resource","valueString":"x"}`,
				"Parameters.parameter.where(name='resource')"},
			{"/Patient/" + id + "/$meta-add", `{"name":"meta","valueCoding":{"system":"http://example.org/tags","code":"a"}}`,
				"Parameters.parameter.where(name='meta')"},
		} {
			body := `{"resourceType":"Parameters","parameter":[` + tt.params + `]}`
			c.do("POST", tt.path, body).want(t, http.StatusBadRequest).outcome(t, "invalid", tt.at)
		}
		if v := str(c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK).json(t), "meta", "versionId"); v != "1" {
			t.Errorf("refused $meta-add wrote version %s", v)
		}
		for _, params := range []string{
			`{"name":"url","valueUri":"` + genderVS + `"},{"name":"count","valueString":"2"}`,
			`{"name":"url","valueCanonical":"` + genderVS + `"},{"name":"count","valueUnsignedInt":2}`,
		} {
			body := `{"resourceType":"Parameters","parameter":[` + params + `]}`
			got := c.do("POST", "/ValueSet/$expand", body).want(t, http.StatusOK).json(t)
			if n := len(got["expansion"].(map[string]any)["contains"].([]any)); n != 2 {
				t.Errorf("%s: expanded to %d codes, want the 2 of count", params, n)
			}
		}
	}, withDefinitions, withValidator(false))
}
