package server_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"carefhir/care/synth"
	"carefhir/server"
	"carefhir/store/mongo"
)

// txResponse is a transaction-response or batch-response Bundle.
type txResponse struct {
	ResourceType string
	Type         string
	Entry        []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Response struct {
			Status       string          `json:"status"`
			Location     string          `json:"location"`
			Etag         string          `json:"etag"`
			LastModified string          `json:"lastModified"`
			Outcome      json.RawMessage `json:"outcome"`
		} `json:"response"`
	}
}

// bundle posts a transaction or batch and decodes the response Bundle,
// failing the test unless it is 200 and of the type answering kind.
func (c *client) bundle(body string, headers ...string) *txResponse {
	c.t.Helper()
	r := c.do("POST", "", body, headers...).want(c.t, http.StatusOK)
	var out txResponse
	if err := json.Unmarshal(r.body, &out); err != nil {
		c.t.Fatalf("response is not a Bundle: %v: %s", err, truncate(r.body))
	}
	if out.ResourceType != "Bundle" || !strings.HasSuffix(out.Type, "-response") {
		c.t.Fatalf("want a transaction-response or batch-response, got %s %s", out.ResourceType, out.Type)
	}
	return &out
}

// statuses returns the response status of each entry.
func (b *txResponse) statuses() []string {
	out := make([]string, len(b.Entry))
	for i, e := range b.Entry {
		out[i] = e.Response.Status
	}
	return out
}

// resource decodes the resource of entry i.
func (b *txResponse) resource(t *testing.T, i int) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b.Entry[i].Resource, &m); err != nil {
		t.Fatalf("entry %d has no resource: %v", i, err)
	}
	return m
}

// txBundle builds a Bundle of type kind from entries given as JSON.
func txBundle(kind string, entries ...string) string {
	return `{"resourceType":"Bundle","type":"` + kind + `","entry":[` + strings.Join(entries, ",") + `]}`
}

// txEntry builds one entry: fullUrl and resource may be empty; request
// holds the members of request after method and url.
func txEntry(fullURL, method, url, resource string, request ...string) string {
	var b strings.Builder
	b.WriteString("{")
	if fullURL != "" {
		fmt.Fprintf(&b, `"fullUrl":%q,`, fullURL)
	}
	if resource != "" {
		fmt.Fprintf(&b, `"resource":%s,`, resource)
	}
	fmt.Fprintf(&b, `"request":{"method":%q,"url":%q`, method, url)
	for i := 0; i+1 < len(request); i += 2 {
		fmt.Fprintf(&b, `,%q:%q`, request[i], request[i+1])
	}
	b.WriteString("}}")
	return b.String()
}

func readExample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../testdata/r4-examples/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// patientWith is a Patient with an identifier and a family name.
func patientWith(id, identifier, family string) string {
	idPart := ""
	if id != "" {
		idPart = `"id":"` + id + `",`
	}
	return `{"resourceType":"Patient",` + idPart + `"identifier":[{"system":"urn:test","value":"` + identifier + `"}],"name":[{"family":"` + family + `"}]}`
}

// checkStatuses compares the entries' statuses with want.
func checkStatuses(t *testing.T, b *txResponse, want ...string) {
	t.Helper()
	got := b.statuses()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("statuses\n got %q\nwant %q", got, want)
	}
}

// mustNotExist fails unless typ/id was never stored: no read, no history.
func mustNotExist(t *testing.T, c *client, typ, id string) {
	t.Helper()
	c.do("GET", "/"+typ+"/"+id, "").want(t, http.StatusNotFound)
	c.do("GET", "/"+typ+"/"+id+"/_history", "").want(t, http.StatusNotFound)
}

func TestTransactionOfficialExample(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		example := readExample(t, "Bundle-bundle-transaction.json")

		// As published, entry 7 invokes ValueSet/$lookup, which a transaction
		// here does not run: the whole transaction fails and stores nothing.
		r := c.do("POST", "", example).want(t, http.StatusBadRequest)
		if d := r.outcome(t, "not-supported", "Bundle.entry[7]"); !strings.Contains(d, "Bundle.entry[7] (POST ValueSet/$lookup)") {
			t.Errorf("diagnostics %q do not name the entry and its request", d)
		}
		search := c.do("GET", "/Patient", "").want(t, http.StatusOK).json(t)
		if n := len(list(get(search, "entry"))); n != 0 {
			t.Fatalf("%d Patients stored by a failed transaction", n)
		}

		// Without the operation, and with the resources it expects.
		var b map[string]any
		if err := json.Unmarshal([]byte(example), &b); err != nil {
			t.Fatal(err)
		}
		entries := b["entry"].([]any)
		b["entry"] = append(entries[:7:7], entries[8:]...)
		c.do("PUT", "/Patient/123a", `{"resourceType":"Patient","id":"123a"}`).want(t, http.StatusCreated)
		c.do("PUT", "/Patient/123a", `{"resourceType":"Patient","id":"123a","active":true}`).want(t, http.StatusOK)
		c.do("PUT", "/Patient/234", `{"resourceType":"Patient","id":"234"}`).want(t, http.StatusCreated)
		gone := c.create("Patient", `{"resourceType":"Patient","identifier":[{"value":"123456"}]}`)
		for i := range 4 {
			c.do("PUT", "/Patient/12334", fmt.Sprintf(`{"resourceType":"Patient","id":"12334","name":[{"family":"Other %d"}]}`, i))
		}
		body, _ := json.Marshal(b)
		resp := c.bundle(string(body))
		if resp.Type != "transaction-response" {
			t.Errorf("type %q", resp.Type)
		}
		checkStatuses(t, resp, "201 Created", "201 Created", "201 Created", "201 Created", "200 OK",
			"204 No Content", "204 No Content", "200 OK", "304 Not Modified")
		if got := resp.Entry[4].Response.Location; got != "Patient/123a/_history/3" {
			t.Errorf("location of the versioned update = %q", got)
		}
		if got := resp.Entry[4].Response.Etag; got != `W/"3"` {
			t.Errorf("etag of the versioned update = %q", got)
		}
		if got := resp.Entry[8].Response.Etag; got != `W/"4"` || resp.Entry[8].Resource != nil {
			t.Errorf("not-modified read: etag %q, resource %s", got, resp.Entry[8].Resource)
		}
		c.do("GET", "/Patient/234", "").want(t, http.StatusGone)
		c.do("GET", "/Patient/"+str(gone, "id"), "").want(t, http.StatusGone)
		// The search runs after the writes and sees the five Peters.
		set := resp.resource(t, 7)
		if str(set, "type") != "searchset" || len(list(get(set, "entry"))) != 5 {
			t.Errorf("search in the transaction: %v", set)
		}
		for i := range 5 {
			loc := resp.Entry[i].Response.Location
			p := c.do("GET", "/"+loc, "").want(t, http.StatusOK).json(t)
			if str(p, "name", 0, "given", 0) != "Peter" {
				t.Errorf("entry %d: %s holds %v", i, loc, p)
			}
		}
	})
}

func TestTransactionVersionAwareUpdate(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("PUT", "/Patient/p", patientWith("p", "1", "One")).want(t, http.StatusCreated)
		c.do("PUT", "/Patient/p", patientWith("p", "1", "Two")).want(t, http.StatusOK)
		tx := func(version string) string {
			return txBundle("transaction",
				txEntry("", "PUT", "Patient/q", patientWith("q", "2", "New")),
				txEntry("", "PUT", "Patient/p", patientWith("p", "1", "Three"), "ifMatch", `W/"`+version+`"`))
		}
		r := c.do("POST", "", tx("1")).want(t, http.StatusPreconditionFailed)
		r.outcome(t, "conflict", "Bundle.entry[1]")
		mustNotExist(t, c, "Patient", "q")
		resp := c.bundle(tx("2"))
		checkStatuses(t, resp, "201 Created", "200 OK")
		if resp.Entry[1].Response.Etag != `W/"3"` {
			t.Errorf("etag %q", resp.Entry[1].Response.Etag)
		}
	})
}

func TestTransactionFailureLeavesNoTrace(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("PUT", "/Patient/kept", patientWith("kept", "k", "Kept")).want(t, http.StatusCreated)
		c.do("PUT", "/Patient/changed", patientWith("changed", "c", "Before")).want(t, http.StatusCreated)
		const size = 40
		for _, fail := range []int{2, size / 2, size - 1} {
			t.Run(fmt.Sprint("entry ", fail), func(t *testing.T) {
				var entries []string
				entries = append(entries, txEntry("", "DELETE", "Patient/kept", ""))
				entries = append(entries, txEntry("", "PUT", "Patient/changed", patientWith("changed", "c", "After")))
				for i := len(entries); i < size; i++ {
					id := fmt.Sprintf("n%d-%d", fail, i)
					switch {
					case i == fail:
						// A versioned update of a resource that does not exist:
						// it fails after every create and update before it.
						entries = append(entries, txEntry("", "PUT", "Patient/"+id, patientWith(id, id, "X"), "ifMatch", `W/"1"`))
					case i%2 == 0:
						entries = append(entries, txEntry("urn:uuid:"+fmt.Sprintf("00000000-0000-4000-8000-%012d", i), "POST", "Patient", patientWith("", id, "Created")))
					default:
						entries = append(entries, txEntry("", "PUT", "Patient/"+id, patientWith(id, id, "Put")))
					}
				}
				r := c.do("POST", "", txBundle("transaction", entries...)).want(t, http.StatusPreconditionFailed)
				r.outcome(t, "", fmt.Sprintf("Bundle.entry[%d]", fail))
				for i := 2; i < size; i++ {
					mustNotExist(t, c, "Patient", fmt.Sprintf("n%d-%d", fail, i))
				}
				created := c.do("GET", "/Patient?family=Created", "").want(t, http.StatusOK).json(t)
				if es := list(get(created, "entry")); len(es) != 0 {
					t.Errorf("%d created Patients kept", len(es))
				}
				for _, id := range []string{"kept", "changed"} {
					p := c.do("GET", "/Patient/"+id, "").want(t, http.StatusOK).json(t)
					if str(p, "meta", "versionId") != "1" {
						t.Errorf("Patient/%s is at version %s", id, str(p, "meta", "versionId"))
					}
					h := c.do("GET", "/Patient/"+id+"/_history", "").want(t, http.StatusOK).json(t)
					if get(h, "total") != 1.0 {
						t.Errorf("Patient/%s has %v versions", id, get(h, "total"))
					}
				}
			})
		}
	})
}

func TestTransactionPlaceholders(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		const (
			pat = "urn:uuid:8f0c5b2e-2f3a-4c5d-9e6f-7a8b9c0d1e2f"
			org = "urn:oid:1.2.3.4.5"
			bin = "urn:uuid:0d6f4a2e-1111-4c5d-9e6f-7a8b9c0d1e2f"
		)
		resp := c.bundle(txBundle("transaction",
			txEntry("", "POST", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"weight"},
				"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"`+pat+`\">patient</a> <img src=\"`+bin+`\"/></div>"},
				"contained":[{"resourceType":"Provenance","id":"prov","target":[{"reference":"`+pat+`"}],"recorded":"2026-01-05T10:00:00Z","agent":[{"who":{"reference":"`+org+`"}}]}],
				"extension":[{"url":"http://example.org/ext","valueReference":{"reference":"`+org+`"}},{"url":"http://example.org/uri","valueUri":"`+bin+`"}],
				"subject":{"reference":"`+pat+`"},"performer":[{"reference":"`+org+`"}],
				"identifier":[{"system":"urn:ietf:rfc:3986","value":"`+pat+`"}]}`),
			txEntry(pat, "POST", "Patient", patientWith("", "p1", "Placeholder")),
			txEntry(org, "POST", "Organization", `{"resourceType":"Organization","name":"Surgery"}`),
			txEntry(bin, "POST", "Binary", `{"resourceType":"Binary","contentType":"text/plain","data":"aGk="}`),
		))
		checkStatuses(t, resp, "201 Created", "201 Created", "201 Created", "201 Created")
		patRef := "Patient/" + str(resp.resource(t, 1), "id")
		orgRef := "Organization/" + str(resp.resource(t, 2), "id")
		binRef := "Binary/" + str(resp.resource(t, 3), "id")
		obs := c.do("GET", "/"+resp.Entry[0].Response.Location, "").want(t, http.StatusOK).json(t)
		checks := []struct {
			name string
			got  any
			want string
		}{
			{"subject", get(obs, "subject", "reference"), patRef},
			{"performer", get(obs, "performer", 0, "reference"), orgRef},
			{"extension reference", get(obs, "extension", 0, "valueReference", "reference"), orgRef},
			{"uri", get(obs, "extension", 1, "valueUri"), binRef},
			{"contained reference", get(obs, "contained", 0, "target", 0, "reference"), patRef},
			{"contained nested reference", get(obs, "contained", 0, "agent", 0, "who", "reference"), orgRef},
			{"identifier value, a string", get(obs, "identifier", 0, "value"), pat},
		}
		for _, ch := range checks {
			if ch.got != ch.want {
				t.Errorf("%s = %v, want %s", ch.name, ch.got, ch.want)
			}
		}
		div := str(obs, "text", "div")
		if !strings.Contains(div, `href="`+patRef+`"`) || !strings.Contains(div, `src="`+binRef+`"`) {
			t.Errorf("narrative links not resolved: %s", div)
		}
		// Searching by the resolved reference finds the Observation.
		found := c.do("GET", "/Observation?subject="+patRef, "").want(t, http.StatusOK).json(t)
		if es := list(get(found, "entry")); len(es) != 1 {
			t.Errorf("search by the resolved subject found %d", len(es))
		}
	})
}

func TestTransactionRESTfulFullURLs(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		// The published ifNoneExist names an identifier the Patient it
		// carries does not have; this one matches it once it is stored.
		example := strings.Replace(readExample(t, "Bundle-xds.json"), "Patient?identifier=http://acme.org/xds/patients!89765a87b", "Patient?identifier=MRN", 1)
		resp := c.bundle(example)
		checkStatuses(t, resp, "201 Created", "201 Created", "201 Created", "201 Created", "201 Created")
		ids := make([]string, 5)
		for i := range ids {
			ids[i] = strings.SplitN(resp.Entry[i].Response.Location, "/_history", 2)[0]
		}
		doc := c.do("GET", "/"+ids[0], "").want(t, http.StatusOK).json(t)
		if got := str(doc, "subject", "reference"); got != ids[1] {
			t.Errorf("subject = %q, want %q", got, ids[1])
		}
		if got := str(doc, "author", 1, "reference"); got != ids[3] {
			t.Errorf("author = %q, want %q", got, ids[3])
		}
		if got := str(doc, "content", 0, "attachment", "url"); got != ids[4] {
			t.Errorf("attachment url = %q, want %q", got, ids[4])
		}
		if div := str(doc, "text", "div"); !strings.Contains(div, `href="`+ids[4]+`"`) {
			t.Errorf("narrative link not resolved: %s", div)
		}
		if got := str(doc, "masterIdentifier", "value"); got != "urn:oid:129.6.58.92.88336" {
			t.Errorf("masterIdentifier.value, a string, changed to %q", got)
		}

		// Sent again, the conditional create finds the Patient: 200, and
		// the new DocumentReference points to it.
		again := c.bundle(example)
		if again.Entry[1].Response.Status != "200 OK" || strings.SplitN(again.Entry[1].Response.Location, "/_history", 2)[0] != ids[1] {
			t.Fatalf("conditional create: %s %s", again.Entry[1].Response.Status, again.Entry[1].Response.Location)
		}
		doc2 := c.do("GET", "/"+again.Entry[0].Response.Location, "").want(t, http.StatusOK).json(t)
		if got := str(doc2, "subject", "reference"); got != ids[1] {
			t.Errorf("subject = %q, want the existing %q", got, ids[1])
		}
	})
}

// TestTransactionVersionReferences references entries by version: R4 keeps
// such references version-specific when it rewrites them, with the
// version the transaction writes, whatever version the client chose
// (http.html, 3.1.0.11.3 and bundle.html, 2.36.4.1).
func TestTransactionVersionReferences(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("PUT", "/Patient/upd", patientWith("upd", "u", "Before")).want(t, http.StatusCreated)
		c.do("PUT", "/Patient/same", patientWith("same", "s", "Same")).want(t, http.StatusCreated)
		c.do("PUT", "/Patient/pat", patientWith("pat", "p", "Before")).want(t, http.StatusCreated)
		obs := func(ref string) string {
			return txEntry("", "POST", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"`+ref+`"}}`)
		}
		jsonPatch := `[{"op":"replace","path":"/name/0/family","value":"Patched"}]`
		resp := c.bundle(txBundle("transaction",
			obs("Patient/tmpA/_history/1"),
			obs("http://host/fhir/Patient/tmpA/_history/7"),
			obs("http://host/fhir/Patient/upd/_history/1"),
			obs("http://host/fhir/Patient/same/_history/1"),
			txEntry("http://host/fhir/Patient/tmpA", "POST", "Patient", patientWith("", "a", "A")),
			txEntry("http://host/fhir/Patient/upd", "PUT", "Patient/upd", patientWith("upd", "u", "After")),
			txEntry("http://host/fhir/Patient/same", "PUT", "Patient/same", patientWith("same", "s", "Same")),
			txEntry("http://host/fhir/Patient/pat", "PATCH", "Patient/pat", `{"resourceType":"Binary","contentType":"application/json-patch+json","data":"`+b64(jsonPatch)+`"}`),
			obs("http://host/fhir/Patient/pat/_history/3"),
		))
		checkStatuses(t, resp, "201 Created", "201 Created", "201 Created", "201 Created", "201 Created", "200 OK", "200 OK", "200 OK", "201 Created")
		created := "Patient/" + str(resp.resource(t, 4), "id")
		want := map[int]string{
			0: created + "/_history/1",
			1: created + "/_history/1",
			2: "Patient/upd/_history/2",
			// The update changes nothing, but another entry names the
			// version it writes: it writes it.
			3: "Patient/same/_history/2",
			8: "Patient/pat/_history/2",
		}
		for i, ref := range want {
			got := str(c.do("GET", "/"+resp.Entry[i].Response.Location, "").want(t, http.StatusOK).json(t), "subject", "reference")
			if got != ref {
				t.Errorf("entry %d: subject %q, want %q", i, got, ref)
				continue
			}
			// The version referenced exists.
			c.do("GET", "/"+ref, "").want(t, http.StatusOK)
		}
		if got := resp.Entry[6].Response.Location; got != "Patient/same/_history/2" {
			t.Errorf("the update named by version: location %q", got)
		}
	})
}

func TestTransactionOtherExamples(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		// PUT with absolute URLs of another server.
		resp := c.bundle(readExample(t, "Bundle-ussg-fht.json"))
		for i, s := range resp.statuses() {
			if s != "201 Created" {
				t.Errorf("entry %d: %s", i, s)
			}
		}
		vs := c.do("GET", "/ValueSet/LL1-9", "").want(t, http.StatusOK).json(t)
		if str(vs, "id") != "LL1-9" {
			t.Errorf("ValueSet/LL1-9: %v", vs)
		}
		// MolecularSequence is not served: the transaction fails as a whole,
		// its DiagnosticReport (entry 0) and Observations with it.
		r := c.do("POST", "", readExample(t, "Bundle-hla-1.json")).want(t, http.StatusNotFound)
		r.outcome(t, "not-supported", "Bundle.entry[1]")
		for _, typ := range []string{"Observation", "DiagnosticReport"} {
			found := c.do("GET", "/"+typ, "").want(t, http.StatusOK).json(t)
			if es := list(get(found, "entry")); len(es) != 0 {
				t.Errorf("%d %ss kept", len(es), typ)
			}
		}
	})
}

func TestBatchOfficialExamples(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("PUT", "/Patient/example", readExample(t, "Patient-example.json")).want(t, http.StatusCreated)
		c.create("Condition", `{"resourceType":"Condition","subject":{"reference":"Patient/example"},"code":{"text":"asthma"}}`)
		for _, name := range []string{"Bundle-bundle-request-simplesummary.json", "Bundle-bundle-request-medsallergies.json"} {
			t.Run(name, func(t *testing.T) {
				resp := c.bundle(readExample(t, name))
				if resp.Type != "batch-response" {
					t.Errorf("type %q", resp.Type)
				}
				for i, s := range resp.statuses() {
					if s != "200 OK" {
						t.Errorf("entry %d: %s", i, s)
					}
				}
				if p := resp.resource(t, 0); str(p, "id") != "example" || resp.Entry[0].Response.Etag != `W/"1"` {
					t.Errorf("read: %v, etag %q", p, resp.Entry[0].Response.Etag)
				}
				for i := 1; i < len(resp.Entry); i++ {
					if set := resp.resource(t, i); str(set, "type") != "searchset" {
						t.Errorf("entry %d is not a searchset: %v", i, set)
					}
				}
			})
		}
		conditions := c.bundle(readExample(t, "Bundle-bundle-request-simplesummary.json")).resource(t, 1)
		if str(conditions, "entry", 0, "resource", "code", "text") != "asthma" {
			t.Errorf("Condition search: %v", conditions)
		}
	})
}

func TestBatchMixedResults(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("PUT", "/Patient/old", patientWith("old", "o", "Old")).want(t, http.StatusCreated)
		c.do("PUT", "/Patient/v2", patientWith("v2", "v", "V")).want(t, http.StatusCreated)
		c.do("PUT", "/Patient/v2", patientWith("v2", "v", "V2")).want(t, http.StatusOK)
		const other = "urn:uuid:4b6f2a1c-3d5e-4f70-8a9b-0c1d2e3f4a5b"
		resp := c.bundle(txBundle("batch",
			txEntry("", "POST", "Patient", patientWith("", "b1", "Batch")),
			txEntry("", "POST", "Observation", `{"resourceType":"Observation","code":{"text":"x"}}`),
			txEntry("", "PUT", "Patient/v2", patientWith("v2", "v", "Stale"), "ifMatch", `W/"1"`),
			txEntry("", "GET", "Patient/missing", ""),
			txEntry("", "GET", "Patient?family=Batch", ""),
			txEntry("", "DELETE", "Patient/old", ""),
			txEntry(other, "POST", "Patient", patientWith("", "b2", "Other")),
			txEntry("", "POST", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"`+other+`"}}`),
			txEntry("", "PATCH", "Patient", ""),
			`{"request":{"method":"FETCH","url":"Patient"}}`,
		))
		if resp.Type != "batch-response" {
			t.Errorf("type %q", resp.Type)
		}
		checkStatuses(t, resp, "201 Created", "422 Unprocessable Entity", "412 Precondition Failed", "404 Not Found",
			"200 OK", "204 No Content", "201 Created", "400 Bad Request", "400 Bad Request", "400 Bad Request")
		for _, i := range []int{1, 2, 3, 7, 8, 9} {
			var oo map[string]any
			if err := json.Unmarshal(resp.Entry[i].Response.Outcome, &oo); err != nil || str(oo, "resourceType") != "OperationOutcome" {
				t.Errorf("entry %d: no OperationOutcome: %s", i, resp.Entry[i].Response.Outcome)
			}
		}
		if d := string(resp.Entry[7].Response.Outcome); !strings.Contains(d, "Bundle.entry[6]") {
			t.Errorf("reference to another entry: %s", d)
		}
		if !strings.Contains(string(resp.Entry[1].Response.Outcome), "Bundle.entry[1].resource.status") {
			t.Errorf("missing status: %s", resp.Entry[1].Response.Outcome)
		}
		// The GET ran after the POST, and saw it.
		if set := resp.resource(t, 4); len(list(get(set, "entry"))) != 1 {
			t.Errorf("search: %v", set)
		}
		c.do("GET", "/"+resp.Entry[0].Response.Location, "").want(t, http.StatusOK)
		c.do("GET", "/Patient/old", "").want(t, http.StatusGone)
		if p := c.do("GET", "/Patient/v2", "").want(t, http.StatusOK).json(t); str(p, "name", 0, "family") != "V2" {
			t.Errorf("stale update applied: %v", p)
		}
	})
}

// TestBundleRequestUnknownElement: an entry whose request holds a member
// that is no element of Bundle.entry.request (a misspelt ifNoneExist, or
// ifMatch in another case, as FHIR JSON names are exact) is refused at it
// with 400, and nothing is written for it: ignored, the conditional create
// created a second Patient and the update replaced whatever was current.
// The entry's extensions and id are no such member.
func TestBundleRequestUnknownElement(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		const cond = "identifier=urn:test|u-1"
		c.do("POST", "/Patient", patientWith("", "u-1", "Unknown")).want(t, http.StatusCreated)
		c.do("PUT", "/Patient/v", patientWith("v", "v", "V1")).want(t, http.StatusCreated)
		c.do("PUT", "/Patient/v", patientWith("v", "v", "V2")).want(t, http.StatusOK)
		resp := c.bundle(txBundle("batch",
			txEntry("", "POST", "Patient", patientWith("", "u-1", "Unknown"), "ifNoneExists", cond),
			txEntry("", "PUT", "Patient/v", patientWith("v", "v", "Stale"), "IfMatch", `W/"1"`),
			txEntry("", "POST", "Patient", patientWith("", "u-1", "Unknown"), "ifNoneExist", cond, "_ifNoneExist", "{}", "id", "r1"),
		))
		checkStatuses(t, resp, "400 Bad Request", "400 Bad Request", "200 OK")
		for i, member := range []string{"ifNoneExists", "IfMatch"} {
			var oo struct {
				Issue []struct {
					Code, Diagnostics string
					Expression        []string
				}
			}
			if err := json.Unmarshal(resp.Entry[i].Response.Outcome, &oo); err != nil || len(oo.Issue) == 0 ||
				oo.Issue[0].Code != "structure" || !slices.Contains(oo.Issue[0].Expression, fmt.Sprintf("Bundle.entry[%d].request.%s", i, member)) {
				t.Errorf("entry %d: outcome %s, want structure at Bundle.entry[%d].request.%s", i, resp.Entry[i].Response.Outcome, i, member)
			}
		}
		if n := len(list(get(c.do("GET", "/Patient?"+cond, "").json(t), "entry"))); n != 1 {
			t.Errorf("%d Patients with the identifier, want the one created before", n)
		}
		if p := c.do("GET", "/Patient/v", "").want(t, http.StatusOK).json(t); str(p, "name", 0, "family") != "V2" {
			t.Errorf("update with an unread precondition applied: %v", p)
		}
		r := c.do("POST", "", txBundle("transaction", txEntry("", "POST", "Patient", patientWith("", "u-1", "Unknown"), "ifNoneExists", cond))).want(t, http.StatusBadRequest)
		r.outcome(t, "structure", "Bundle.entry[0].request.ifNoneExists")
	})
}

// TestBatchEntriesNameNoOtherEntry refuses, entry by entry, what names
// another entry of a batch by its urn:uuid fullUrl wherever a transaction
// would resolve it: a uri or url element, conditional criteria, a GET
// query, a conditional reference (R4 3.1.0.11.1: no interdependencies
// between the entries of a batch). Left as written, each would store a
// link to nothing or search for a value nothing holds; the other entries
// are processed.
func TestBatchEntriesNameNoOtherEntry(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		const pat = "urn:uuid:4b6f2a1c-3d5e-4f70-8a9b-0c1d2e3f4a60"
		observation := `{"resourceType":"Observation","status":"final","code":{"text":"x"}}`
		resp := c.bundle(txBundle("batch",
			txEntry(pat, "POST", "Patient", patientWith("", "bl1", "Linked")),
			txEntry("", "POST", "DocumentReference", `{"resourceType":"DocumentReference","status":"current","content":[{"attachment":{"url":"`+pat+`"}}]}`),
			txEntry("", "POST", "Observation", observation, "ifNoneExist", "subject="+pat),
			txEntry("", "PUT", "Observation?subject="+pat, observation),
			txEntry("", "DELETE", "Observation?subject="+pat, ""),
			txEntry("", "GET", "Observation?subject="+pat, ""),
			txEntry("", "POST", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"hasMember":[{"reference":"Observation?subject=`+pat+`"}]}`),
			txEntry("", "GET", "Patient?identifier="+pat, "")))
		checkStatuses(t, resp, "201 Created", "400 Bad Request", "400 Bad Request", "400 Bad Request", "400 Bad Request",
			"400 Bad Request", "400 Bad Request", "200 OK")
		for i, where := range map[int]string{
			1: "Bundle.entry[1].resource.content[0].attachment.url",
			2: "Bundle.entry[2].request.ifNoneExist",
			3: "Bundle.entry[3].request.url",
			4: "Bundle.entry[4].request.url",
			5: "Bundle.entry[5].request.url",
			6: "Bundle.entry[6].resource.hasMember[0].reference",
		} {
			var oo map[string]any
			if err := json.Unmarshal(resp.Entry[i].Response.Outcome, &oo); err != nil {
				t.Fatalf("entry %d: no OperationOutcome: %v", i, err)
			}
			if got := fmt.Sprint(get(oo, "issue", 0, "expression")); str(oo, "issue", 0, "code") != "invalid" ||
				!strings.Contains(got, where) || !strings.Contains(str(oo, "issue", 0, "diagnostics"), "Bundle.entry[0]") {
				t.Errorf("entry %d: %s, want invalid at %s naming Bundle.entry[0]", i, resp.Entry[i].Response.Outcome, where)
			}
		}
		for _, q := range []string{"/DocumentReference?_summary=count", "/Observation?_summary=count"} {
			if b := c.do("GET", q, "").want(t, http.StatusOK).json(t); b["total"] != float64(0) {
				t.Errorf("%s: %v stored by refused entries", q, b["total"])
			}
		}
	})
}

func TestTransactionConditionalReferences(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		p := c.create("Patient", patientWith("", "one", "One"))
		c.create("Patient", patientWith("", "two", "Two"))
		c.create("Patient", patientWith("", "two", "Twin"))
		obs := func(ref string) string {
			return txBundle("transaction",
				txEntry("", "PUT", "Patient/bystander", patientWith("bystander", "b", "B")),
				txEntry("", "POST", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"`+ref+`"}}`))
		}
		resp := c.bundle(obs("Patient?identifier=urn:test|one"))
		stored := c.do("GET", "/"+resp.Entry[1].Response.Location, "").want(t, http.StatusOK).json(t)
		if got, want := str(stored, "subject", "reference"), "Patient/"+str(p, "id"); got != want {
			t.Errorf("subject = %q, want %q", got, want)
		}
		c.do("DELETE", "/Patient/bystander", "")
		tests := []struct {
			name, ref string
			status    int
			code      string
		}{
			{"no match", "Patient?identifier=urn:test|none", http.StatusPreconditionFailed, "not-found"},
			{"two matches", "Patient?identifier=urn:test|two", http.StatusPreconditionFailed, "multiple-matches"},
			{"unknown parameter", "Patient?colour=blue", http.StatusBadRequest, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := c.do("POST", "", obs(tt.ref)).want(t, tt.status)
				r.outcome(t, tt.code, "Bundle.entry[1]")
				if tt.status == http.StatusPreconditionFailed {
					r.outcome(t, tt.code, "Bundle.entry[1].resource.subject.reference")
				}
				if p := c.do("GET", "/Patient/bystander", "").json(t); str(p, "resourceType") == "Patient" {
					t.Errorf("Patient/bystander written by a failed transaction")
				}
			})
		}
	})
}

// A conditional reference names a resource that a conditional create or
// update of the same transaction writes when its criteria match nothing:
// R4 resolves conditional references after the creates and updates
// (http.html, 3.1.0.11.2), so a bundle may create a patient if absent and
// reference it by the same identifier.
func TestTransactionConditionalReferenceToItsOwnCreate(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		obs := func(ref string) string {
			return txEntry("", "POST", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"`+ref+`"}}`)
		}
		subjectOf := func(resp *txResponse, i int) string {
			return str(c.do("GET", "/"+resp.Entry[i].Response.Location, "").want(t, http.StatusOK).json(t), "subject", "reference")
		}
		// The criteria written the same, and written otherwise (encoded,
		// and the parameters in another order).
		createIfAbsent := txBundle("transaction",
			txEntry("urn:uuid:11111111-2222-4333-8444-000000000001", "POST", "Patient", patientWith("", "new1", "New"), "ifNoneExist", "identifier=urn:test|new1"),
			obs("Patient?identifier=urn:test|new1"),
			obs("Patient?identifier=urn%3Atest%7Cnew1"))
		resp := c.bundle(createIfAbsent)
		checkStatuses(t, resp, "201 Created", "201 Created", "201 Created")
		created := "Patient/" + str(resp.resource(t, 0), "id")
		for _, i := range []int{1, 2} {
			if got := subjectOf(resp, i); got != created {
				t.Errorf("entry %d: subject %q, want %q, the Patient the transaction created", i, got, created)
			}
		}
		// Posted again, the Patient exists: nothing is created, and the
		// references name it.
		resp = c.bundle(createIfAbsent)
		checkStatuses(t, resp, "200 OK", "201 Created", "201 Created")
		if got := subjectOf(resp, 1); got != created {
			t.Errorf("again: subject %q, want %q", got, created)
		}
		if b := c.do("GET", "/Patient?identifier=urn:test|new1&_summary=count", "").want(t, 200).json(t); b["total"] != float64(1) {
			t.Errorf("%v Patients new1, want 1", b["total"])
		}

		// A conditional update that matches nothing creates, and is named
		// the same way.
		resp = c.bundle(txBundle("transaction",
			obs("Patient?identifier=urn:test|new2"),
			txEntry("", "PUT", "Patient?identifier=urn:test|new2", patientWith("", "new2", "Put"))))
		checkStatuses(t, resp, "201 Created", "201 Created")
		if got, want := subjectOf(resp, 0), "Patient/"+str(resp.resource(t, 1), "id"); got != want {
			t.Errorf("conditional update: subject %q, want %q", got, want)
		}

		// Two entries that each create one when it is absent: the second
		// finds what the first creates (see
		// TestTransactionConditionalCreateTwice), and the reference names it.
		resp = c.bundle(txBundle("transaction",
			txEntry("", "POST", "Patient", patientWith("", "new3", "A"), "ifNoneExist", "identifier=urn:test|new3"),
			txEntry("", "POST", "Patient", patientWith("", "new3", "B"), "ifNoneExist", "identifier=urn:test|new3"),
			obs("Patient?identifier=urn:test|new3")))
		checkStatuses(t, resp, "201 Created", "200 OK", "201 Created")
		if got, want := subjectOf(resp, 2), "Patient/"+str(resp.resource(t, 0), "id"); got != want {
			t.Errorf("two conditional creates: subject %q, want %q", got, want)
		}
	})
}

// TestTransactionConditionalCreateTwice writes one resource twice
// conditionally in a transaction. Two conditional creates with the same
// criteria make one resource: the second finds what the first creates and
// answers 200 with it, as when it was stored before. Conditional updates
// whose criteria match the resource another entry writes would write it
// twice, which a transaction never does (400), whatever the order of the
// entries.
func TestTransactionConditionalCreateTwice(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		const (
			ph1 = "urn:uuid:11111111-2222-4333-8444-000000000011"
			ph2 = "urn:uuid:11111111-2222-4333-8444-000000000012"
		)
		resp := c.bundle(txBundle("transaction",
			txEntry("", "POST", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"`+ph2+`"},"performer":[{"reference":"`+ph1+`"}]}`),
			txEntry(ph1, "POST", "Patient", patientWith("", "twice", "First"), "ifNoneExist", "identifier=urn:test|twice"),
			txEntry(ph2, "POST", "Patient", patientWith("", "twice", "Second"), "ifNoneExist", "identifier=urn%3Atest%7Ctwice")))
		checkStatuses(t, resp, "201 Created", "201 Created", "200 OK")
		first := resp.Entry[1].Response
		if got := resp.Entry[2].Response; got.Location != first.Location || got.Etag != first.Etag || str(resp.resource(t, 2), "name", 0, "family") != "First" {
			t.Errorf("second conditional create: %+v, want the first's %+v", got, first)
		}
		id := "Patient/" + str(resp.resource(t, 1), "id")
		stored := c.do("GET", "/"+resp.Entry[0].Response.Location, "").want(t, http.StatusOK).json(t)
		if str(stored, "subject", "reference") != id || str(stored, "performer", 0, "reference") != id {
			t.Errorf("references %q and %q, want both %q", str(stored, "subject", "reference"), str(stored, "performer", 0, "reference"), id)
		}
		// One Patient, which a later conditional create finds.
		if b := c.do("GET", "/Patient?identifier=urn:test|twice&_summary=count", "").want(t, 200).json(t); b["total"] != float64(1) {
			t.Errorf("%v Patients, want 1", b["total"])
		}
		c.do("POST", "/Patient", patientWith("", "twice", "Later"), "If-None-Exist", "identifier=urn:test|twice").want(t, http.StatusOK)

		// A conditional create beside a plain create it matches finds it.
		resp = c.bundle(txBundle("transaction",
			txEntry("", "POST", "Patient", patientWith("", "plain", "Conditional"), "ifNoneExist", "identifier=urn:test|plain"),
			txEntry("", "POST", "Patient", patientWith("", "plain", "Plain"))))
		checkStatuses(t, resp, "200 OK", "201 Created")
		if resp.Entry[0].Response.Location != resp.Entry[1].Response.Location {
			t.Errorf("conditional create %q beside the plain create %q", resp.Entry[0].Response.Location, resp.Entry[1].Response.Location)
		}

		// Conditional updates of what nothing stored matches, and one with a
		// conditional create: the same resource written twice.
		put := func(family string) string {
			return txEntry("", "PUT", "Patient?identifier=urn:test|put2", patientWith("", "put2", family))
		}
		create := txEntry("", "POST", "Patient", patientWith("", "put2", "Created"), "ifNoneExist", "identifier=urn:test|put2")
		for name, entries := range map[string][]string{
			"two updates":         {put("A"), txEntry("", "GET", "Patient", ""), put("B")},
			"update, then create": {put("A"), txEntry("", "GET", "Patient", ""), create},
			"create, then update": {create, txEntry("", "GET", "Patient", ""), put("A")},
		} {
			t.Run(name, func(t *testing.T) {
				r := c.do("POST", "", txBundle("transaction", entries...)).want(t, http.StatusBadRequest)
				r.outcome(t, "invalid", "Bundle.entry[0]")
				d := r.outcome(t, "invalid", "Bundle.entry[2]")
				if !strings.Contains(d, "would write the same Patient") {
					t.Errorf("diagnostics %q", d)
				}
				if b := c.do("GET", "/Patient?identifier=urn:test|put2&_summary=count", "").want(t, 200).json(t); b["total"] != float64(0) {
					t.Errorf("%v Patients written by a failed transaction", b["total"])
				}
			})
		}
	})
}

// TestTransactionConditionalReferenceToWrites resolves conditional
// references after the creates and updates, as R4 orders them (http.html,
// 3.1.0.11.2): the criteria find what plain POSTs and PUTs of the same
// transaction write, whatever the order of the entries, beside what is
// stored.
func TestTransactionConditionalReferenceToWrites(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		obs := txEntry("", "POST", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient?identifier=urn:test|w1"}}`)
		subjectOf := func(resp *txResponse, i int) string {
			return str(c.do("GET", "/"+resp.Entry[i].Response.Location, "").want(t, http.StatusOK).json(t), "subject", "reference")
		}
		post := txEntry("", "POST", "Patient", patientWith("", "w1", "Posted"))
		resp := c.bundle(txBundle("transaction", obs, post))
		if got, want := subjectOf(resp, 0), "Patient/"+str(resp.resource(t, 1), "id"); got != want {
			t.Errorf("POST after the reference: subject %q, want %q", got, want)
		}
		c.do("DELETE", "/Patient?identifier=urn:test|w1", "").want(t, http.StatusNoContent)
		resp = c.bundle(txBundle("transaction", post, obs))
		if got, want := subjectOf(resp, 1), "Patient/"+str(resp.resource(t, 0), "id"); got != want {
			t.Errorf("POST before the reference: subject %q, want %q", got, want)
		}
		c.do("DELETE", "/Patient?identifier=urn:test|w1", "").want(t, http.StatusNoContent)
		resp = c.bundle(txBundle("transaction", obs, txEntry("", "PUT", "Patient/w1", patientWith("w1", "w1", "Put"))))
		if got := subjectOf(resp, 0); got != "Patient/w1" {
			t.Errorf("PUT: subject %q, want Patient/w1", got)
		}
		// Updated again, the resource stored and written is one match.
		resp = c.bundle(txBundle("transaction", obs, txEntry("", "PUT", "Patient/w1", patientWith("w1", "w1", "Again"))))
		if got := subjectOf(resp, 0); got != "Patient/w1" {
			t.Errorf("PUT of the stored match: subject %q, want Patient/w1", got)
		}
		// A match stored and one written, or two written, are two.
		for name, entries := range map[string][]string{
			"stored and written": {obs, post},
			"two written":        {obs, txEntry("", "PUT", "Patient/w2", patientWith("w2", "w2", "A")), txEntry("", "PUT", "Patient/w3", patientWith("w3", "w2", "B"))},
		} {
			if name == "two written" {
				entries[0] = strings.Replace(obs, "w1", "w2", 1)
			}
			r := c.do("POST", "", txBundle("transaction", entries...)).want(t, http.StatusPreconditionFailed)
			r.outcome(t, "multiple-matches", "Bundle.entry[0].resource.subject.reference")
		}
		mustNotExist(t, c, "Patient", "w2")
		if b := c.do("GET", "/Patient?identifier=urn:test|w1&_summary=count", "").want(t, 200).json(t); b["total"] != float64(1) {
			t.Errorf("%v Patients w1, want 1", b["total"])
		}
	})
}

func TestTransactionConditionalCreate(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		existing := c.create("Patient", patientWith("", "nhs1", "Existing"))
		const ph = "urn:uuid:11111111-2222-4333-8444-555555555555"
		resp := c.bundle(txBundle("transaction",
			txEntry(ph, "POST", "Patient", patientWith("", "nhs1", "Ignored"), "ifNoneExist", "identifier=urn:test|nhs1"),
			txEntry("", "POST", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"`+ph+`"}}`),
		))
		checkStatuses(t, resp, "200 OK", "201 Created")
		if got := str(resp.resource(t, 0), "name", 0, "family"); got != "Existing" {
			t.Errorf("conditional create returned %q, want the existing resource", got)
		}
		if resp.Entry[0].Response.Location != "Patient/"+str(existing, "id")+"/_history/1" {
			t.Errorf("location %q", resp.Entry[0].Response.Location)
		}
		obs := c.do("GET", "/"+resp.Entry[1].Response.Location, "").want(t, http.StatusOK).json(t)
		if got := str(obs, "subject", "reference"); got != "Patient/"+str(existing, "id") {
			t.Errorf("subject = %q", got)
		}
	})
}

func TestTransactionDuplicateTargets(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.create("Patient", patientWith("", "dup", "Dup"))
		tests := []struct {
			name    string
			entries []string
		}{
			{"two updates", []string{
				txEntry("", "PUT", "Patient/a", patientWith("a", "1", "A")),
				txEntry("", "GET", "Patient/a", ""),
				txEntry("", "PUT", "Patient/a", patientWith("a", "1", "B")),
			}},
			{"delete and update", []string{
				txEntry("", "PUT", "Patient/a", patientWith("a", "1", "A")),
				txEntry("", "GET", "Patient", ""),
				txEntry("", "DELETE", "Patient/a", ""),
			}},
			{"conditional update on a resource updated by id", []string{
				txEntry("", "POST", "Patient", patientWith("", "x", "X"), "ifNoneExist", "identifier=urn:test|dup"),
				txEntry("", "GET", "Patient", ""),
				txEntry("", "PUT", "Patient?identifier=urn:test|dup", patientWith("", "dup", "Y")),
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := c.do("POST", "", txBundle("transaction", tt.entries...)).want(t, http.StatusBadRequest)
				r.outcome(t, "invalid", "Bundle.entry[0]")
				d := r.outcome(t, "invalid", "Bundle.entry[2]")
				if !strings.Contains(d, "Bundle.entry[0]") || !strings.Contains(d, "Bundle.entry[2]") {
					t.Errorf("diagnostics %q do not name both entries", d)
				}
				c.do("GET", "/Patient/a", "").want(t, http.StatusNotFound)
			})
		}
		// Two entries with one fullUrl.
		const ph = "urn:uuid:11111111-2222-4333-8444-555555555555"
		r := c.do("POST", "", txBundle("transaction",
			txEntry(ph, "POST", "Patient", patientWith("", "1", "A")),
			txEntry(ph, "POST", "Patient", patientWith("", "2", "B")))).want(t, http.StatusBadRequest)
		r.outcome(t, "invalid", "Bundle.entry[1].fullUrl")
	})
}

// TestBatchDuplicateFullURLs: a batch whose entries share a fullUrl breaks
// bdl-7 as a transaction does: 400 at the second entry's fullUrl, and no
// entry runs. It ran every entry.
func TestBatchDuplicateFullURLs(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		const ph = "urn:uuid:21111111-2222-4333-8444-555555555555"
		r := c.do("POST", "", txBundle("batch",
			txEntry("", "PUT", "Patient/first", patientWith("first", "1", "First")),
			txEntry(ph, "POST", "Patient", patientWith("", "dup1", "A")),
			txEntry(ph, "POST", "Patient", patientWith("", "dup2", "B")))).want(t, http.StatusBadRequest)
		d := r.outcome(t, "invalid", "Bundle.entry[2].fullUrl")
		if !strings.Contains(d, "Bundle.entry[1]") || !strings.Contains(d, ph) {
			t.Errorf("diagnostics %q do not name the first entry and the fullUrl", d)
		}
		mustNotExist(t, c, "Patient", "first")
		if set := c.do("GET", "/Patient?identifier=urn:test|dup1,urn:test|dup2", "").want(t, http.StatusOK).json(t); len(list(get(set, "entry"))) != 0 {
			t.Errorf("a Patient of the refused batch was stored: %v", set)
		}
	})
}

// TestTransactionProcessingOrder runs a transaction that deletes a Patient
// and creates it again under a condition the delete makes true: deletes run
// before creates, and reads after both, whatever the order of the entries.
func TestTransactionProcessingOrder(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		old := c.create("Patient", patientWith("", "re", "Old"))
		resp := c.bundle(txBundle("transaction",
			txEntry("", "GET", "Patient?identifier=urn:test|re", ""),
			txEntry("", "POST", "Patient", patientWith("", "re", "New"), "ifNoneExist", "identifier=urn:test|re"),
			txEntry("", "DELETE", "Patient?identifier=urn:test|re", ""),
		))
		checkStatuses(t, resp, "200 OK", "201 Created", "204 No Content")
		set := resp.resource(t, 0)
		if es := list(get(set, "entry")); len(es) != 1 || str(es[0], "resource", "name", 0, "family") != "New" {
			t.Errorf("the search saw %v", set)
		}
		if !strings.HasPrefix(resp.Entry[2].Response.Etag, `W/"2"`) {
			t.Errorf("delete etag %q", resp.Entry[2].Response.Etag)
		}
		c.do("GET", "/Patient/"+str(old, "id"), "").want(t, http.StatusGone)
	})
}

func TestTransactionPatch(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("PUT", "/Patient/p", patientWith("p", "1", "Before")).want(t, http.StatusCreated)
		c.do("PUT", "/Observation/o", `{"resourceType":"Observation","id":"o","status":"preliminary","code":{"text":"x"}}`).want(t, http.StatusCreated)
		const ph = "urn:uuid:9a8b7c6d-0000-4111-8222-333344445555"
		jsonPatch := `[{"op":"replace","path":"/name/0/family","value":"After"}]`
		fhirpathPatch := `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"add"},{"name":"path","valueString":"Observation"},{"name":"name","valueString":"subject"},{"name":"value","valueReference":{"reference":"` + ph + `"}}]}]}`
		resp := c.bundle(txBundle("transaction",
			txEntry("", "PATCH", "Patient/p", `{"resourceType":"Binary","contentType":"application/json-patch+json","data":"`+b64(jsonPatch)+`"}`, "ifMatch", `W/"1"`),
			txEntry("", "PATCH", "Observation?_id=o", fhirpathPatch),
			txEntry(ph, "POST", "Patient", patientWith("", "2", "New")),
		))
		checkStatuses(t, resp, "200 OK", "200 OK", "201 Created")
		if got := str(resp.resource(t, 0), "name", 0, "family"); got != "After" {
			t.Errorf("JSON Patch: family %q", got)
		}
		newRef := "Patient/" + str(resp.resource(t, 2), "id")
		if got := str(resp.resource(t, 1), "subject", "reference"); got != newRef {
			t.Errorf("FHIRPath Patch: subject %q, want %q", got, newRef)
		}
		r := c.do("POST", "", txBundle("transaction",
			txEntry("", "PUT", "Patient/q", patientWith("q", "3", "Q")),
			txEntry("", "PATCH", "Patient/p", `{"resourceType":"Binary","contentType":"application/json-patch+json","data":"`+b64(jsonPatch)+`"}`, "ifMatch", `W/"1"`),
		)).want(t, http.StatusPreconditionFailed)
		r.outcome(t, "conflict", "Bundle.entry[1]")
		mustNotExist(t, c, "Patient", "q")
	})
}

func TestTransactionPrefer(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		tx := txBundle("transaction",
			txEntry("", "POST", "Patient", patientWith("", "1", "A")),
			txEntry("", "DELETE", "Patient/none", ""))
		minimal := c.bundle(tx, "Prefer", "return=minimal")
		if minimal.Entry[0].Resource != nil || minimal.Entry[0].Response.Location == "" {
			t.Errorf("minimal: %+v", minimal.Entry[0])
		}
		oo := c.bundle(tx, "Prefer", "return=OperationOutcome")
		if oo.Entry[0].Resource != nil || !strings.Contains(string(oo.Entry[0].Response.Outcome), "Created") {
			t.Errorf("OperationOutcome: %+v", oo.Entry[0])
		}
		if oo.Entry[1].Response.Status != "200 OK" || !strings.Contains(string(oo.Entry[1].Response.Outcome), "nothing to delete") {
			t.Errorf("delete with OperationOutcome: %+v", oo.Entry[1])
		}
		full := c.bundle(tx)
		if got := str(full.resource(t, 0), "meta", "versionId"); got != "1" || !strings.HasSuffix(full.Entry[0].FullURL, strings.TrimSuffix(full.Entry[0].Response.Location, "/_history/1")) {
			t.Errorf("representation: version %q, fullUrl %q", got, full.Entry[0].FullURL)
		}
		if full.Entry[0].Response.LastModified == "" || full.Entry[0].Response.Etag != `W/"1"` {
			t.Errorf("response %+v", full.Entry[0].Response)
		}
	})
}

func TestTransactionRejects(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		var many strings.Builder
		many.WriteString(`{"resourceType":"Bundle","type":"batch","entry":[`)
		for i := range 10001 {
			if i > 0 {
				many.WriteString(",")
			}
			many.WriteString(`{"request":{"method":"GET","url":"Patient/x"}}`)
		}
		many.WriteString("]}")
		tests := []struct {
			name, body       string
			status           int
			code, expression string
		}{
			{"not a bundle", patient, 400, "invalid", ""},
			{"collection", `{"resourceType":"Bundle","type":"collection"}`, 400, "invalid", "Bundle.type"},
			{"not json", `{"resourceType":"Bundle",`, 400, "invalid", ""},
			{"too many entries", many.String(), 413, "too-costly", "Bundle.entry"},
			{"no request", txBundle("transaction", `{"resource":`+patient+`}`), 400, "required", "Bundle.entry[0]"},
			{"unknown method", txBundle("transaction", txEntry("", "FETCH", "Patient", "")), 400, "invalid", "Bundle.entry[0]"},
			{"no resource", txBundle("transaction", txEntry("", "POST", "Patient", "")), 400, "required", "Bundle.entry[0].resource"},
			{"type mismatch", txBundle("transaction", txEntry("", "POST", "Observation", patient)), 400, "invalid", "Bundle.entry[0].resource"},
			{"bad element", txBundle("transaction", txEntry("", "POST", "Patient", `{"resourceType":"Patient","foo":1}`)), 400, "structure", "Bundle.entry[0].resource.foo"},
			{"update without id", txBundle("transaction", txEntry("", "PUT", "Patient/x", patientWith("", "1", "A"))), 400, "required", "Bundle.entry[0]"},
			{"update of another id", txBundle("transaction", txEntry("", "PUT", "Patient/x", patientWith("y", "1", "A"))), 400, "invalid", "Bundle.entry[0]"},
			{"bad id", txBundle("transaction", txEntry("", "GET", "Patient/a_b", "")), 400, "value", "Bundle.entry[0]"},
			{"unserved type", txBundle("transaction", txEntry("", "GET", "Unicorn/1", "")), 404, "not-supported", "Bundle.entry[0]"},
			{"post with id", txBundle("transaction", txEntry("", "POST", "Patient/1", patient)), 400, "invalid", "Bundle.entry[0]"},
			{"delete of a type", txBundle("transaction", txEntry("", "DELETE", "Patient", "")), 400, "invalid", "Bundle.entry[0]"},
			{"bad ifMatch", txBundle("transaction", txEntry("", "DELETE", "Patient/1", "", "ifMatch", "x")), 400, "invalid", "Bundle.entry[0]"},
			{"create with ifMatch", txBundle("transaction", txEntry("", "POST", "Patient", patient, "ifMatch", `W/"1"`)), 400, "invalid", "Bundle.entry[0].request.ifMatch"},
			{"unresolved placeholder", txBundle("transaction", txEntry("", "POST", "Observation",
				`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:00000000-0000-4000-8000-000000000000"}}`)),
				400, "not-found", "Bundle.entry[0].resource.subject.reference"},
			{"history", txBundle("transaction", txEntry("", "GET", "Patient/1/_history", "")), 400, "not-supported", "Bundle.entry[0]"},
			{"system search", txBundle("transaction", txEntry("", "GET", "?_type=Patient", "")), 400, "not-supported", "Bundle.entry[0]"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := c.do("POST", "", tt.body).want(t, tt.status)
				r.outcome(t, tt.code, tt.expression)
			})
		}
		// An entry is named by what it has of method and url, never "( )".
		for body, want := range map[string]string{
			txBundle("transaction", `{"resource":`+patient+`}`):            "Bundle.entry[0]: ",
			txBundle("transaction", `{"request":{"method":"GET"}}`):        "Bundle.entry[0] (GET): ",
			txBundle("transaction", `{"request":{"url":"Patient/1"}}`):     "Bundle.entry[0] (Patient/1): ",
			txBundle("transaction", txEntry("", "GET", "Patient/a_b", "")): "Bundle.entry[0] (GET Patient/a_b): ",
		} {
			if d := c.do("POST", "", body).want(t, http.StatusBadRequest).outcome(t, "", ""); !strings.HasPrefix(d, want) {
				t.Errorf("diagnostics %q, want them to begin %q", d, want)
			}
		}
		c.do("POST", "", txBundle("transaction"), "Content-Type", "text/plain").want(t, http.StatusUnsupportedMediaType)
		empty := c.bundle(txBundle("transaction"))
		if len(empty.Entry) != 0 || empty.Type != "transaction-response" {
			t.Errorf("empty transaction: %+v", empty)
		}
	})
}

// TestBundleBodyNotABundle: a body posted to the base that is JSON but no
// Bundle object (an array, a string, null), or whose elements are of
// another JSON type than FHIR's, is 400 saying so in FHIR's terms at the
// element, where the message named the Go types it was decoded into.
func TestBundleBodyNotABundle(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		for _, tt := range []struct{ body, expression, says string }{
			{`[1,2]`, "Bundle", "the body is a JSON array: POST /fhir takes a Bundle, a JSON object with resourceType Bundle"},
			{`"x"`, "Bundle", "the body is a JSON string"},
			{`null`, "Bundle", "the body has no resourceType"},
			{`{}`, "Bundle", "the body has no resourceType"},
			{`{"resourceType":"Bundle","type":1}`, "Bundle.type", "Bundle.type is a JSON number, not a string"},
			{`{"resourceType":"Bundle","type":"batch","entry":{}}`, "Bundle.entry", "Bundle.entry is a JSON object, not an array"},
			{`{"resourceType":"Bundle","type":"batch","entry":[{"fullUrl":2}]}`, "Bundle.entry.fullUrl", "Bundle.entry.fullUrl is a JSON number, not a string"},
			{`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":1}}]}`, "Bundle.entry.request.method", "Bundle.entry.request.method is a JSON number, not a string"},
			{`{"resourceType":"Bundle","type":"batch","entry":[{"request":[]}]}`, "Bundle.entry.request", "Bundle.entry.request is a JSON array, not an object"},
		} {
			r := c.do("POST", "", tt.body).want(t, http.StatusBadRequest)
			d := r.outcome(t, "invalid", tt.expression)
			if !strings.Contains(d, tt.says) || strings.Contains(d, "Go ") || strings.Contains(d, "wire") || strings.Contains(d, "json:") {
				t.Errorf("%s: diagnostics %q, want them to say %q and name no Go type", tt.body, d, tt.says)
			}
		}
	})
}

func TestTransactionBodyLimit(t *testing.T) {
	small := func(cfg *server.Config) { cfg.MaxBodyBytes = 4096 }
	eachEngine(t, func(t *testing.T, c *client) {
		big := txBundle("transaction", txEntry("", "POST", "Patient", `{"resourceType":"Patient","name":[{"family":"`+strings.Repeat("x", 5000)+`"}]}`))
		c.do("POST", "", big).want(t, http.StatusRequestEntityTooLarge).outcome(t, "too-costly", "")
	}, small)
}

func TestTransactionXML(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		body := `<Bundle xmlns="http://hl7.org/fhir"><type value="transaction"/>
<entry><fullUrl value="urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"/><resource><Patient><name><family value="Xml"/></name></Patient></resource><request><method value="POST"/><url value="Patient"/></request></entry>
<entry><resource><Observation><status value="final"/><code><text value="x"/></code><subject><reference value="urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"/></subject></Observation></resource><request><method value="POST"/><url value="Observation"/></request></entry>
</Bundle>`
		r := c.do("POST", "", body, "Content-Type", "application/fhir+xml", "Accept", "application/fhir+json").want(t, http.StatusOK)
		var resp txResponse
		if err := json.Unmarshal(r.body, &resp); err != nil {
			t.Fatal(err)
		}
		checkStatuses(t, &resp, "201 Created", "201 Created")
		obs := c.do("GET", "/"+resp.Entry[1].Response.Location, "").want(t, http.StatusOK).json(t)
		if got, want := str(obs, "subject", "reference"), strings.SplitN(resp.Entry[0].Response.Location, "/_history", 2)[0]; got != want {
			t.Errorf("subject %q, want %q", got, want)
		}
		x := c.do("POST", "", txBundle("batch", txEntry("", "GET", "Patient", "")), "Accept", "application/fhir+xml").want(t, http.StatusOK)
		if !strings.Contains(string(x.body), `<type value="batch-response"/>`) {
			t.Errorf("XML response: %s", truncate(x.body))
		}
	})
}

func TestTransactionGetConditions(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("PUT", "/Patient/g", patientWith("g", "1", "G")).want(t, http.StatusCreated)
		resp := c.bundle(txBundle("batch",
			txEntry("", "GET", "Patient/g", "", "ifNoneMatch", `W/"1"`),
			txEntry("", "GET", "Patient/g", "", "ifNoneMatch", `W/"2"`),
			txEntry("", "GET", "Patient/g", "", "ifModifiedSince", "2999-01-01T00:00:00Z"),
			txEntry("", "GET", "Patient/g", "", "ifModifiedSince", "2000-01-01T00:00:00Z"),
			txEntry("", "GET", "Patient/g/_history/1", ""),
			txEntry("", "HEAD", "Patient/g", ""),
			txEntry("", "GET", "Patient/g?_elements=name", ""),
			txEntry("", "GET", "Patient/g/Observation", ""),
		))
		checkStatuses(t, resp, "304 Not Modified", "200 OK", "304 Not Modified", "200 OK", "200 OK", "200 OK", "200 OK", "200 OK")
		if resp.Entry[5].Resource != nil || resp.Entry[5].Response.Etag != `W/"1"` {
			t.Errorf("HEAD: %+v", resp.Entry[5])
		}
		if p := resp.resource(t, 6); get(p, "identifier") != nil || get(p, "name") == nil {
			t.Errorf("_elements: %v", p)
		}
		if set := resp.resource(t, 7); str(set, "type") != "searchset" {
			t.Errorf("compartment search: %v", set)
		}
	})
}

// TestTransactionSizes loads generated records as transactions of 1, 100
// and 1,000 entries and reads every resource back. 1,000 entries run on
// SQLite only: the FerretDB test engine decodes every stored document on
// each query, which makes that unit of work take about 20 s there.
func TestTransactionSizes(t *testing.T) {
	all, err := synth.All(synth.Options{Patients: 120, PracticeSize: 120})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 1000 {
		t.Fatalf("only %d generated resources", len(all))
	}
	eachEngine(t, func(t *testing.T, c *client) {
		for _, n := range []int{1, 100, 1000} {
			if n > 100 && strings.HasSuffix(t.Name(), "mongo") {
				continue
			}
			t.Run(fmt.Sprint(n), func(t *testing.T) {
				entries := all[:n]
				body, err := synth.Transaction(entries)
				if err != nil {
					t.Fatal(err)
				}
				resp := c.bundle(string(body))
				if len(resp.Entry) != n {
					t.Fatalf("%d response entries for %d", len(resp.Entry), n)
				}
				for i, e := range entries {
					if s := resp.Entry[i].Response.Status; s != "201 Created" && s != "200 OK" {
						t.Fatalf("entry %d (%s/%s): %s %s", i, e.Type, e.ID, s, resp.Entry[i].Response.Outcome)
					}
					if want := e.Type + "/" + e.ID + "/_history/"; !strings.HasPrefix(resp.Entry[i].Response.Location, want) {
						t.Errorf("entry %d: location %q", i, resp.Entry[i].Response.Location)
					}
				}
				for _, e := range entries {
					c.do("GET", "/"+e.Type+"/"+e.ID, "").want(t, http.StatusOK)
				}
			})
		}
	})
}

// TestTransactionGeneratedPlaceholders sends generated records with POST
// and urn:uuid placeholders in place of every id, and checks on the stored
// JSON that every reference names the resource created for its entry.
func TestTransactionGeneratedPlaceholders(t *testing.T) {
	all, err := synth.All(synth.Options{Patients: 3, PracticeSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	entries := all[:min(len(all), 100)]
	urn := func(typ, id string) string {
		return fmt.Sprintf("urn:uuid:%08x-0000-4000-8000-%012x", len(typ), hashID(typ+"/"+id))
	}
	var parts []string
	for _, e := range entries {
		body := string(e.JSON)
		body = strings.Replace(body, `"id":"`+e.ID+`",`, "", 1)
		for _, o := range entries {
			body = strings.ReplaceAll(body, `"reference":"`+o.Type+"/"+o.ID+`"`, `"reference":"`+urn(o.Type, o.ID)+`"`)
		}
		parts = append(parts, txEntry(urn(e.Type, e.ID), "POST", e.Type, body))
	}
	eachEngine(t, func(t *testing.T, c *client) {
		resp := c.bundle(txBundle("transaction", parts...))
		created := map[string]string{} // generated Type/id → created Type/id
		for i, e := range entries {
			if resp.Entry[i].Response.Status != "201 Created" {
				t.Fatalf("entry %d: %s %s", i, resp.Entry[i].Response.Status, resp.Entry[i].Response.Outcome)
			}
			created[e.Type+"/"+e.ID] = strings.SplitN(resp.Entry[i].Response.Location, "/_history", 2)[0]
		}
		refs := 0
		for i, e := range entries {
			stored := c.do("GET", "/"+created[e.Type+"/"+e.ID], "").want(t, http.StatusOK)
			if strings.Contains(string(stored.body), "urn:uuid:") {
				t.Errorf("entry %d: a placeholder is left: %s", i, truncate(stored.body))
			}
			for _, o := range entries {
				if strings.Contains(string(e.JSON), `"reference":"`+o.Type+"/"+o.ID+`"`) {
					refs++
					if !strings.Contains(string(stored.body), `"reference":"`+created[o.Type+"/"+o.ID]+`"`) {
						t.Errorf("%s/%s: the reference to %s/%s is not %s", e.Type, e.ID, o.Type, o.ID, created[o.Type+"/"+o.ID])
					}
				}
			}
		}
		if refs < 20 {
			t.Errorf("only %d references checked", refs)
		}
	})
}

func hashID(s string) uint64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h & 0xffffffffffff
}

// TestConcurrentTransactions runs transactions that each update the same
// two Patients: none is lost, each Patient's versions increase strictly,
// and the two always move together.
func TestConcurrentTransactions(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("PUT", "/Patient/a", patientWith("a", "a", "start")).want(t, http.StatusCreated)
		c.do("PUT", "/Patient/b", patientWith("b", "b", "start")).want(t, http.StatusCreated)
		const workers, each = 4, 5
		type write struct {
			marker       string
			va, vb, step string
		}
		var (
			mu     sync.Mutex
			writes []write
			wg     sync.WaitGroup
		)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					marker := fmt.Sprintf("w%d-%d", w, i)
					r := c.do("POST", "", txBundle("transaction",
						txEntry("", "PUT", "Patient/a", patientWith("a", "a", marker)),
						txEntry("", "PUT", "Patient/b", patientWith("b", "b", marker))))
					if r.status != http.StatusOK {
						t.Errorf("%s: %d %s", marker, r.status, truncate(r.body))
						return
					}
					var resp txResponse
					json.Unmarshal(r.body, &resp)
					mu.Lock()
					writes = append(writes, write{marker: marker, va: resp.Entry[0].Response.Etag, vb: resp.Entry[1].Response.Etag})
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		seen := map[string]string{}
		for _, w := range writes {
			if w.va != w.vb {
				t.Errorf("%s: Patient/a at %s but Patient/b at %s", w.marker, w.va, w.vb)
			}
			if other, dup := seen[w.va]; dup {
				t.Errorf("%s and %s both got version %s", other, w.marker, w.va)
			}
			seen[w.va] = w.marker
		}
		for _, id := range []string{"a", "b"} {
			h := c.do("GET", "/Patient/"+id+"/_history?_count=100", "").want(t, http.StatusOK).json(t)
			if got, want := get(h, "total"), float64(workers*each+1); got != want {
				t.Errorf("Patient/%s: %v versions, want %v", id, got, want)
			}
			for _, e := range list(get(h, "entry")) {
				v := str(e, "resource", "meta", "versionId")
				family := str(e, "resource", "name", 0, "family")
				if v != "1" && seen[`W/"`+v+`"`] != family {
					t.Errorf("Patient/%s version %s holds %q, written by %q", id, v, family, seen[`W/"`+v+`"`])
				}
			}
		}
	})
}

func TestCapabilitiesTransaction(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		cs := c.do("GET", "/metadata", "").want(t, http.StatusOK)
		for _, code := range []string{`{"code":"transaction"}`, `{"code":"batch"}`} {
			if !strings.Contains(string(cs.body), code) {
				t.Errorf("CapabilityStatement lacks %s", code)
			}
		}
		// POST on the base is a bundle, POST on _search a search.
		c.do("POST", "/_search", "_type=Patient", "Content-Type", "application/x-www-form-urlencoded").want(t, http.StatusOK)
	})
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// list returns v as a JSON array, nil when it is not one.
func list(v any) []any {
	a, _ := v.([]any)
	return a
}

// Every version a transaction writes, whatever its method, carries the
// transaction's time: its lastUpdated in meta and in the response.
func TestTransactionOneTime(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("PUT", "/Patient/gone", patientWith("gone", "1", "Gone")).want(t, http.StatusCreated)
		c.do("PUT", "/Patient/p", patientWith("p", "2", "Before")).want(t, http.StatusCreated)
		jsonPatch := `[{"op":"replace","path":"/name/0/family","value":"After"}]`
		resp := c.bundle(txBundle("transaction",
			txEntry("", "DELETE", "Patient/gone", ""),
			txEntry("", "POST", "Patient", patientWith("", "3", "New")),
			txEntry("", "PUT", "Patient/q", patientWith("q", "4", "Q")),
			txEntry("", "PATCH", "Patient/p", `{"resourceType":"Binary","contentType":"application/json-patch+json","data":"`+b64(jsonPatch)+`"}`),
		))
		checkStatuses(t, resp, "204 No Content", "201 Created", "201 Created", "200 OK")
		times := map[string]bool{}
		for i, e := range resp.Entry {
			if e.Response.LastModified == "" && i > 0 {
				t.Errorf("entry %d has no lastModified", i)
			}
			if i > 0 {
				times[e.Response.LastModified] = true
				if got := str(resp.resource(t, i), "meta", "lastUpdated"); got != e.Response.LastModified {
					t.Errorf("entry %d: meta.lastUpdated %q, lastModified %q", i, got, e.Response.LastModified)
				}
			}
		}
		// The deletion's time, from the history of the deleted Patient.
		var history struct {
			Entry []struct {
				Request  struct{ Method string } `json:"request"`
				Response struct {
					LastModified string `json:"lastModified"`
				} `json:"response"`
			} `json:"entry"`
		}
		r := c.do("GET", "/Patient/gone/_history", "")
		r.want(t, http.StatusOK)
		if err := json.Unmarshal(r.body, &history); err != nil {
			t.Fatal(err)
		}
		for _, e := range history.Entry {
			if e.Request.Method == "DELETE" {
				times[e.Response.LastModified] = true
			}
		}
		if len(times) != 1 {
			t.Errorf("the transaction's versions carry %d times, want one: %v", len(times), times)
		}
	})
}

// A search inside a transaction sorts, includes and pages on every engine
// while the transaction has not written what it reads. Once it has,
// MongoDB without multi-document transactions (here FerretDB) answers the
// criteria without sort or includes, or refuses those with 400; SQLite
// sees the transaction's own writes in the full search.
func TestTransactionSearch(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("PUT", "/Organization/o1", `{"resourceType":"Organization","id":"o1","name":"Riverside Surgery"}`).want(t, http.StatusCreated)
		for _, p := range []struct{ id, family string }{{"a", "Adams"}, {"b", "Baker"}, {"c", "Clark"}} {
			c.do("PUT", "/Practitioner/"+p.id, `{"resourceType":"Practitioner","id":"`+p.id+`","name":[{"family":"`+p.family+`"}]}`).want(t, http.StatusCreated)
			c.do("PUT", "/PractitionerRole/r"+p.id, `{"resourceType":"PractitionerRole","id":"r`+p.id+`","practitioner":{"reference":"Practitioner/`+p.id+`"},"organization":{"reference":"Organization/o1"}}`).want(t, http.StatusCreated)
		}
		resp := c.bundle(txBundle("transaction",
			txEntry("", "PUT", "Patient/p", patientWith("p", "1", "Pryce")),
			txEntry("", "GET", "Practitioner?_sort=-family&_count=2&_revinclude=PractitionerRole:practitioner", ""),
		))
		checkStatuses(t, resp, "201 Created", "200 OK")
		set := resp.resource(t, 1)
		var matches, included []string
		for _, e := range get(set, "entry").([]any) {
			entry := e.(map[string]any)
			id := str(entry, "resource", "id")
			switch str(entry, "search", "mode") {
			case "match":
				matches = append(matches, id)
			case "include":
				included = append(included, id)
			}
		}
		if strings.Join(matches, " ") != "c b" || strings.Join(included, " ") != "rb rc" && strings.Join(included, " ") != "rc rb" {
			t.Errorf("sorted search in a transaction: matches %v, included %v; want [c b] and their roles", matches, included)
		}
		hasNext := false
		for _, l := range get(set, "link").([]any) {
			hasNext = hasNext || str(l.(map[string]any), "relation") == "next"
		}
		if !hasNext {
			t.Errorf("no next link: %v", get(set, "link"))
		}

		// A search without sort, includes or pages finds what the
		// transaction wrote on every engine.
		resp = c.bundle(txBundle("transaction",
			txEntry("", "PUT", "Practitioner/e", `{"resourceType":"Practitioner","id":"e","name":[{"family":"Evans"}]}`),
			txEntry("", "GET", "Practitioner?family=evans", ""),
		))
		checkStatuses(t, resp, "201 Created", "200 OK")
		if got := str(resp.resource(t, 1), "entry", 0, "resource", "id"); got != "e" {
			t.Errorf("search for what the transaction wrote: %q, want e", got)
		}

		// The transaction wrote a Practitioner: SQLite sorts it in;
		// MongoDB without transactions (FerretDB here, whose units of
		// work buffer their writes) refuses the sort, as it says.
		r := c.do("POST", "", txBundle("transaction",
			txEntry("", "PUT", "Practitioner/d", `{"resourceType":"Practitioner","id":"d","name":[{"family":"Young"}]}`),
			txEntry("", "GET", "Practitioner?_sort=-family&_count=1", ""),
		))
		if _, buffered := c.st.(*mongo.Store); buffered {
			r.want(t, http.StatusBadRequest)
			r.outcome(t, "not-supported", "")
			mustNotExist(t, c, "Practitioner", "d")
			return
		}
		r.want(t, http.StatusOK)
		var b txResponse
		if err := json.Unmarshal(r.body, &b); err != nil {
			t.Fatal(err)
		}
		if got := str(b.resource(t, 1), "entry", 0, "resource", "id"); got != "d" {
			t.Errorf("first Practitioner by family descending %q, want the one the transaction wrote", got)
		}
	})
}

func TestTransactionPutIfNoneMatch(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("PUT", "/Patient/n", patientWith("n", "1", "First")).want(t, http.StatusCreated)
		// In a batch, each entry's precondition is decided on its own: * over
		// a current version is 412, over a new id it creates.
		resp := c.bundle(txBundle("batch",
			txEntry("", "PUT", "Patient/n", patientWith("n", "1", "Second"), "ifNoneMatch", "*"),
			txEntry("", "PUT", "Patient/m", patientWith("m", "2", "New"), "ifNoneMatch", "*"),
			txEntry("", "PUT", "Patient/n", patientWith("n", "1", "Second"), "ifNoneMatch", `W/"1"`),
		))
		checkStatuses(t, resp, "412 Precondition Failed", "201 Created", "412 Precondition Failed")
		// In a transaction, the refusal fails the whole.
		c.do("POST", "", txBundle("transaction",
			txEntry("", "PUT", "Patient/k", patientWith("k", "3", "Kept out"), ""),
			txEntry("", "PUT", "Patient/n", patientWith("n", "1", "Second"), "ifNoneMatch", "*"),
		)).want(t, http.StatusPreconditionFailed)
		mustNotExist(t, c, "Patient", "k")
		if family := str(c.do("GET", "/Patient/n", "").want(t, http.StatusOK).json(t), "name", 0, "family"); family != "First" {
			t.Errorf("family %q after refused updates, want First", family)
		}
		// A precondition no write takes is refused, not ignored.
		resp = c.bundle(txBundle("batch",
			txEntry("", "DELETE", "Patient/n", "", "ifNoneMatch", "*"),
			txEntry("", "PUT", "Patient?identifier=1", patientWith("", "1", "Second"), "ifNoneMatch", "*"),
		))
		checkStatuses(t, resp, "400 Bad Request", "400 Bad Request")
		c.do("GET", "/Patient/n", "").want(t, http.StatusOK)
	})
}

// A uuid or oid element naming an entry keeps its value: the Type/id the
// entry is given is neither a uuid nor an oid, so writing it there would
// make the resource invalid.
func TestTransactionPlaceholderInUuidOrOid(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		const (
			pat = "urn:uuid:3b5e1c2a-7d4f-4e6a-9b8c-1d2e3f4a5b6c"
			org = "urn:oid:1.2.3.4.6"
		)
		resp := c.bundle(txBundle("transaction",
			txEntry(pat, "POST", "Patient", patientWith("", "u1", "Uuid")),
			txEntry(org, "POST", "Organization", `{"resourceType":"Organization","name":"Oid Surgery"}`),
			txEntry("", "POST", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"weight"},
				"subject":{"reference":"`+pat+`"},
				"extension":[{"url":"http://example.org/uuid","valueUuid":"`+pat+`"},{"url":"http://example.org/oid","valueOid":"`+org+`"}]}`),
		))
		checkStatuses(t, resp, "201 Created", "201 Created", "201 Created")
		obs := c.do("GET", "/"+resp.Entry[2].Response.Location, "").want(t, http.StatusOK).json(t)
		if got, want := str(obs, "subject", "reference"), "Patient/"+str(resp.resource(t, 0), "id"); got != want {
			t.Errorf("subject = %q, want %q", got, want)
		}
		if got := str(obs, "extension", 0, "valueUuid"); got != pat {
			t.Errorf("valueUuid = %q, want %q", got, pat)
		}
		if got := str(obs, "extension", 1, "valueOid"); got != org {
			t.Errorf("valueOid = %q, want %q", got, org)
		}
	})
}

// A narrative with as many links as the body limit allows is rewritten in
// one pass, within withCostBound: after each link, the other
// attribute was looked for again up to the end of the narrative, stopping
// at each "src=" that is not one, so such a transaction took tens of
// minutes of CPU, where it now takes about a second.
func TestTransactionNarrativeOfManyLinks(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		const pat = "urn:uuid:5d6e7f80-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
		div := `<div xmlns=\"http://www.w3.org/1999/xhtml\">` + strings.Repeat(`<a href=\"#x\">src=</a> `, 320000) +
			`<img src='` + pat + `'/> <a href="` + pat + `">p</a></div>`
		resp := c.bundle(txBundle("transaction",
			txEntry(pat, "POST", "Patient", patientWith("", "n1", "Linked")),
			txEntry("", "POST", "Patient", `{"resourceType":"Patient","text":{"status":"generated","div":"`+strings.ReplaceAll(div, `"`+pat+`"`, `\"`+pat+`\"`)+`"}}`)))
		checkStatuses(t, resp, "201 Created", "201 Created")
		patRef := "Patient/" + str(resp.resource(t, 0), "id")
		got := str(c.do("GET", "/"+resp.Entry[1].Response.Location, "").want(t, http.StatusOK).json(t), "text", "div")
		if !strings.HasSuffix(got, `<img src='`+patRef+`'/> <a href="`+patRef+`">p</a></div>`) {
			t.Errorf("the links after the others are not resolved: …%s", got[max(0, len(got)-200):])
		}
	}, withCostBound)
}

// TestBundleUpdateChecksIDFirst: a PUT entry whose resource lacks the id
// of its request.url, or holds another, is 400 whatever else it lacks, as
// an update over HTTP is (R4 http.html#update), in a batch and a
// transaction alike.
func TestBundleUpdateChecksIDFirst(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		noID := `{"resourceType":"Observation","code":{"text":"weight"}}`
		otherID := `{"resourceType":"Observation","id":"other","code":{"text":"weight"}}`
		b := c.bundle(txBundle("batch", txEntry("", "PUT", "Observation/o1", noID), txEntry("", "PUT", "Observation/o1", otherID)))
		for i, e := range b.Entry {
			if !strings.HasPrefix(e.Response.Status, "400") {
				t.Errorf("batch entry %d: status %q, want 400; outcome %s", i, e.Response.Status, e.Response.Outcome)
			}
			if !strings.Contains(string(e.Response.Outcome), "resource.id") {
				t.Errorf("batch entry %d: outcome %s, want one at its resource.id", i, e.Response.Outcome)
			}
		}
		c.do("POST", "", txBundle("transaction", txEntry("", "PUT", "Observation/o1", noID))).want(t, http.StatusBadRequest).outcome(t, "required", "Bundle.entry[0].resource.id")
		c.do("POST", "", txBundle("transaction", txEntry("", "PUT", "Observation/o1", otherID))).want(t, http.StatusBadRequest).outcome(t, "invalid", "Bundle.entry[0].resource.id")
		c.do("GET", "/Observation/o1", "").want(t, http.StatusNotFound)
	})
}

// TestBundleEntryTrailingSlash: a request.url ending in a slash is served
// as the URL without it, as the same URL is over HTTP.
func TestBundleEntryTrailingSlash(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		b := c.bundle(txBundle("batch",
			txEntry("", "POST", "Patient/", patientWith("", "slash", "Slash")),
			txEntry("", "PUT", "Patient/p1/", patientWith("p1", "p1", "One")),
			txEntry("", "GET", "Patient/p1/", ""),
			txEntry("", "GET", "Patient/?identifier=urn:test|slash", ""),
		))
		if got := strings.Join(b.statuses(), ","); got != "201 Created,201 Created,200 OK,200 OK" {
			t.Fatalf("statuses %s: %s", got, b.Entry[0].Response.Outcome)
		}
		if got := list(get(b.resource(t, 3), "entry")); len(got) != 1 {
			t.Errorf("GET Patient/?identifier=…: %d entries, want 1", len(got))
		}
		tx := c.bundle(txBundle("transaction", txEntry("", "PUT", "Patient/p2/", patientWith("p2", "p2", "Two"))))
		if got := tx.Entry[0].Response.Status; got != "201 Created" {
			t.Errorf("transaction PUT Patient/p2/: %s", got)
		}
	})
}

// TestBundleEntryOtherBase: a GET, HEAD, PATCH or DELETE entry whose
// request.url is absolute on another base names another server's
// resource: a batch answers that entry 400 with an OperationOutcome and
// runs the others, a transaction is 400 with nothing stored. A GET read,
// and a DELETE deleted, this server's resource of that id. An absolute URL
// under this server's base, a query holding a URL, and a PUT carrying the
// resource to store here (TestTransactionOtherExamples) are read as before.
func TestBundleEntryOtherBase(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("PUT", "/Patient/1", `{"resourceType":"Patient","id":"1","identifier":[{"system":"http://acme.org/mrn","value":"1"}]}`).want(t, http.StatusCreated)
		const other = "http://other.example.org/fhir/"
		b := c.bundle(txBundle("batch",
			txEntry("", "GET", other+"Patient/1", ""),
			txEntry("", "GET", c.base+"/Patient/1", ""),
			txEntry("", "PATCH", other+"Patient/1", `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.identifier"}]}]}`),
			txEntry("", "DELETE", other+"Patient/1", ""),
			txEntry("", "GET", "Patient?identifier=http://acme.org/mrn|1", ""),
		))
		checkStatuses(t, b, "400 Bad Request", "200 OK", "400 Bad Request", "400 Bad Request", "200 OK")
		for _, i := range []int{0, 2, 3} {
			o := string(b.Entry[i].Response.Outcome)
			if !strings.Contains(o, `"OperationOutcome"`) || !strings.Contains(o, fmt.Sprintf("Bundle.entry[%d]", i)) || !strings.Contains(o, "another base") {
				t.Errorf("entry %d: outcome %s, want one at the entry saying the base is another", i, o)
			}
		}
		if got := list(get(b.resource(t, 4), "entry")); len(got) != 1 {
			t.Errorf("search with a URL in its query: %d entries, want 1", len(got))
		}
		if p := c.do("GET", "/Patient/1", "").want(t, http.StatusOK).json(t); str(p, "meta", "versionId") != "1" {
			t.Errorf("Patient/1 changed: %v", p)
		}

		r := c.do("POST", "", txBundle("transaction",
			txEntry("", "PUT", "Patient/3", patientWith("3", "3", "Three")),
			txEntry("", "GET", other+"Patient/1", ""))).want(t, http.StatusBadRequest)
		if d := r.outcome(t, "invalid", ""); !strings.Contains(d, "Bundle.entry[1]") || !strings.Contains(d, "another base") {
			t.Errorf("transaction: diagnostics %q", d)
		}
		mustNotExist(t, c, "Patient", "3")
	})
}

// TestConditionalReferenceOutsideTransaction: a conditional reference
// (Patient?identifier=…) in a resource written on its own, by POST, PUT,
// conditional PUT or a PATCH that adds it, is 400 at the reference and
// nothing is stored: R4 resolves them in a transaction, and stored as
// written the reference named no resource. In a transaction it is
// resolved, as before.
func TestConditionalReferenceOutsideTransaction(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("PUT", "/Patient/p", patientWith("p", "cr-1", "Ref")).want(t, http.StatusCreated)
		obs := func(id, ref string) string {
			idPart := ""
			if id != "" {
				idPart = `"id":"` + id + `",`
			}
			return `{"resourceType":"Observation",` + idPart + `"status":"final","code":{"text":"x"},"subject":{"reference":"` + ref + `"}}`
		}
		const cond = "Patient?identifier=urn:test|cr-1"
		c.do("POST", "/Observation", obs("", cond)).want(t, http.StatusBadRequest).outcome(t, "not-supported", "Observation.subject.reference")
		c.do("PUT", "/Observation/o1", obs("o1", cond)).want(t, http.StatusBadRequest).outcome(t, "not-supported", "Observation.subject.reference")
		c.do("PUT", "/Observation?code:text=x", obs("", cond)).want(t, http.StatusBadRequest).outcome(t, "not-supported", "Observation.subject.reference")
		if b := c.do("GET", "/Observation?_summary=count", "").want(t, http.StatusOK).json(t); b["total"] != float64(0) {
			t.Errorf("%v Observations stored, want none", b["total"])
		}
		c.do("PUT", "/Observation/o2", obs("o2", "Patient/p")).want(t, http.StatusCreated)
		c.do("PATCH", "/Observation/o2", `[{"op":"replace","path":"/subject/reference","value":"`+cond+`"}]`, "Content-Type", "application/json-patch+json").
			want(t, http.StatusBadRequest).outcome(t, "not-supported", "Observation.subject.reference")
		if o := c.do("GET", "/Observation/o2", "").want(t, http.StatusOK).json(t); str(o, "subject", "reference") != "Patient/p" || str(o, "meta", "versionId") != "1" {
			t.Errorf("Observation/o2 after the refused patch: %v", o)
		}
		b := c.bundle(txBundle("transaction", txEntry("", "POST", "Observation", obs("", cond))))
		if got := str(b.resource(t, 0), "subject", "reference"); got != "Patient/p" {
			t.Errorf("in a transaction: subject %q, want Patient/p", got)
		}
	})
}
