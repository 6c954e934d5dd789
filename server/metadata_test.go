package server_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"slices"
	"testing"
)

// TestMetadataFromCache: the CapabilityStatement is built once for each
// base URL. What it states comes from the server's routes and bundled
// definitions alone: a SearchParameter stored through the API is a record,
// not a parameter the server searches by, so the statement served from the
// cache stays true after one is written.
func TestMetadataFromCache(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		first := c.do("GET", "/metadata", "").want(t, http.StatusOK).body
		c.create("SearchParameter", `{"resourceType":"SearchParameter","url":"https://example.org/SearchParameter/nickname",
			"name":"nickname","status":"active","description":"A nickname","code":"nickname","base":["Patient"],
			"type":"string","expression":"Patient.name.given"}`)
		if again := c.do("GET", "/metadata", "").want(t, http.StatusOK).body; !bytes.Equal(first, again) {
			t.Errorf("the CapabilityStatement changed after a SearchParameter was stored")
		}
		if bytes.Contains(first, []byte(`"nickname"`)) {
			t.Errorf("the CapabilityStatement names a parameter it does not search by")
		}
		c.do("GET", "/Patient?nickname=Ann", "", "Prefer", "handling=strict").want(t, http.StatusBadRequest)

		// Without a configured base URL each Host gets a statement naming it.
		req, err := http.NewRequest("GET", c.base+"/metadata", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "other.example:8080"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if !bytes.Contains(body, []byte(`"url":"http://other.example:8080/fhir/metadata"`)) || bytes.Contains(body, []byte(c.base)) {
			t.Errorf("metadata asked of other.example:8080 names another base:\n%.300s", body)
		}
	})
}

// TestCapabilitiesFormats: the CapabilityStatement lists the formats and
// patch formats served, each of which a client can use, and says that
// versions are tracked without demanding If-Match on updates.
func TestCapabilitiesFormats(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		cs := c.do("GET", "/metadata", "").want(t, http.StatusOK).json(t)
		var formats, patchFormats []string
		for _, f := range list(get(cs, "format")) {
			formats = append(formats, f.(string))
		}
		for _, f := range list(get(cs, "patchFormat")) {
			patchFormats = append(patchFormats, f.(string))
		}
		if want := []string{"application/fhir+json", "application/fhir+xml", "json", "xml"}; !slices.Equal(formats, want) {
			t.Errorf("format %v, want %v", formats, want)
		}
		if want := []string{jsonPatch, fhirJSON, fhirXML}; !slices.Equal(patchFormats, want) {
			t.Errorf("patchFormat %v, want %v", patchFormats, want)
		}
		for _, r := range list(get(cs, "rest", 0, "resource")) {
			if v := str(r, "versioning"); v != "versioned" {
				t.Errorf("%s versioning %q, want versioned", str(r, "type"), v)
			}
		}

		id := str(c.create("Patient", patient), "id")
		for _, f := range formats {
			c.do("GET", "/Patient/"+id+"?_format="+url.QueryEscape(f), "").want(t, http.StatusOK)
		}
		// versioned, not versioned-update: an update need not name the
		// version it replaces.
		c.do("PUT", "/Patient/"+id, `{"resourceType":"Patient","id":"`+id+`","gender":"male"}`).want(t, http.StatusOK)
	})
}

// TestMetadataTerminology: the capabilities interaction with
// mode=terminology answers a TerminologyCapabilities (R4 http.html), valid
// against its definition, listing the code systems the terminology
// operations answer from, as a terminology client such as the HL7
// validator asks for it; the other modes get the CapabilityStatement.
func TestMetadataTerminology(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("GET", "/metadata?mode=terminology", "").want(t, http.StatusOK)
		tc := r.json(t)
		if str(tc, "resourceType") != "TerminologyCapabilities" || str(tc, "kind") != "instance" {
			t.Fatalf("mode=terminology answered %s of kind %s", str(tc, "resourceType"), str(tc, "kind"))
		}
		var systems []string
		for _, cs := range get(tc, "codeSystem").([]any) {
			systems = append(systems, str(cs, "uri"))
		}
		for _, want := range []string{"http://hl7.org/fhir/administrative-gender", "http://terminology.hl7.org/CodeSystem/v2-0203",
			"https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"} {
			if !slices.Contains(systems, want) {
				t.Errorf("codeSystem does not list %s", want)
			}
		}
		v, err := validator()
		if err != nil {
			t.Fatal(err)
		}
		for _, issue := range v.Validate(t.Context(), r.body) {
			if issue.Severity == "error" || issue.Severity == "fatal" {
				t.Errorf("the TerminologyCapabilities is invalid: %+v", issue)
			}
		}
		if x := c.do("GET", "/metadata?mode=terminology&_format=xml", "").want(t, http.StatusOK).body; !bytes.HasPrefix(x, []byte(`<TerminologyCapabilities xmlns="http://hl7.org/fhir">`)) {
			t.Errorf("mode=terminology in XML: %.200s", x)
		}
		for _, mode := range []string{"full", "normative"} {
			if got := str(c.do("GET", "/metadata?mode="+mode, "").want(t, http.StatusOK).json(t), "resourceType"); got != "CapabilityStatement" {
				t.Errorf("mode=%s answered %s", mode, got)
			}
		}
	}, withValidator(false))
}

// TestMetadataTerminologyNone: a server without a terminology refuses
// mode=terminology rather than answer a CapabilityStatement for it.
func TestMetadataTerminologyNone(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("GET", "/metadata?mode=terminology", "").want(t, http.StatusBadRequest).outcome(t, "not-supported", "mode")
	})
}

// TestCapabilitiesReadOnlyTrail: the CapabilityStatement says of
// AuditEvent what the server does with it, the audit trail being written
// by the server alone: read, vread, history and search, no create, update,
// patch or delete, conditional or not, and no $meta-add or $meta-delete;
// each write it leaves out is 405. Other types keep every interaction.
func TestCapabilitiesReadOnlyTrail(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		cs := c.do("GET", "/metadata", "").want(t, http.StatusOK).json(t)
		byType := map[string]any{}
		for _, r := range list(get(cs, "rest", 0, "resource")) {
			byType[str(r, "type")] = r
		}
		interactions := func(typ string) (out []string) {
			for _, i := range list(get(byType[typ], "interaction")) {
				out = append(out, str(i, "code"))
			}
			return out
		}
		operations := func(typ string) (out []string) {
			for _, op := range list(get(byType[typ], "operation")) {
				out = append(out, str(op, "name"))
			}
			return out
		}
		if got, want := interactions("AuditEvent"), []string{"read", "vread", "history-instance", "history-type", "search-type"}; !slices.Equal(got, want) {
			t.Errorf("AuditEvent interactions %v, want %v", got, want)
		}
		trail := byType["AuditEvent"]
		for _, flag := range []string{"updateCreate", "conditionalCreate", "conditionalUpdate"} {
			if get(trail, flag) != false {
				t.Errorf("AuditEvent %s %v, want false", flag, get(trail, flag))
			}
		}
		if got := str(trail, "conditionalDelete"); got != "not-supported" {
			t.Errorf("AuditEvent conditionalDelete %q, want not-supported", got)
		}
		if ops := operations("AuditEvent"); slices.Contains(ops, "meta-add") || slices.Contains(ops, "meta-delete") || !slices.Contains(ops, "meta") {
			t.Errorf("AuditEvent operations %v, want $meta without $meta-add and $meta-delete", ops)
		}
		for _, want := range []string{"create", "update", "patch", "delete"} {
			if !slices.Contains(interactions("Patient"), want) {
				t.Errorf("Patient interactions %v lack %s", interactions("Patient"), want)
			}
		}
		if ops := operations("Patient"); !slices.Contains(ops, "meta-add") || !slices.Contains(ops, "meta-delete") {
			t.Errorf("Patient operations %v lack $meta-add or $meta-delete", ops)
		}
		if get(byType["Patient"], "conditionalCreate") != true || str(byType["Patient"], "conditionalDelete") != "single" {
			t.Errorf("Patient conditional writes %v, %v, want true and single", get(byType["Patient"], "conditionalCreate"), get(byType["Patient"], "conditionalDelete"))
		}

		// What the statement leaves out is refused.
		c.do("POST", "/AuditEvent", `{"resourceType":"AuditEvent"}`).want(t, http.StatusMethodNotAllowed)
		c.do("PUT", "/AuditEvent/x", `{"resourceType":"AuditEvent","id":"x"}`).want(t, http.StatusMethodNotAllowed)
		c.do("PUT", "/AuditEvent?_id=x", `{"resourceType":"AuditEvent"}`).want(t, http.StatusMethodNotAllowed)
		c.do("DELETE", "/AuditEvent?_id=x", "").want(t, http.StatusMethodNotAllowed)
		c.do("PATCH", "/AuditEvent/x", `[]`, "Content-Type", jsonPatch).want(t, http.StatusMethodNotAllowed)
	})
}
