package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestTransactionPlaceholdersInCriteria names entries by their fullUrl in
// conditional criteria and GET queries: the value stands for the Type/id
// the entry's resource is given, so a Bundle loaded twice creates each
// resource once, and a conditional update finds the Observation of the
// patient a conditional create finds.
func TestTransactionPlaceholdersInCriteria(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		const (
			pat = "urn:uuid:6a1d0c3e-0000-4000-8000-000000000001"
			obs = "urn:uuid:6a1d0c3e-0000-4000-8000-000000000002"
		)
		observation := func(value string) string {
			return `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"` + pat + `"},"valueString":"` + value + `"}`
		}
		// The Observation comes first: its criteria settle the Patient's
		// identity before its own.
		load := txBundle("transaction",
			txEntry(obs, "POST", "Observation", observation("first"), "ifNoneExist", "subject="+pat+"&code=http://loinc.org|8867-4"),
			txEntry(pat, "POST", "Patient", patientWith("", "ph1", "Placeholder"), "ifNoneExist", "identifier=urn:test|ph1"),
			txEntry("", "GET", "Observation?subject="+pat, ""))
		first := c.bundle(load)
		checkStatuses(t, first, "201 Created", "201 Created", "200 OK")
		patient := "Patient/" + str(first.resource(t, 1), "id")
		if got := str(first.resource(t, 0), "subject", "reference"); got != patient {
			t.Errorf("subject %q, want %q", got, patient)
		}
		if got, _ := first.resource(t, 2)["entry"].([]any); len(got) != 1 {
			t.Errorf("GET Observation?subject=placeholder: %d entries, want 1", len(got))
		}
		again := c.bundle(load)
		checkStatuses(t, again, "200 OK", "200 OK", "200 OK")
		if again.Entry[0].Response.Location != first.Entry[0].Response.Location {
			t.Errorf("loaded again: Observation %q, want %q", again.Entry[0].Response.Location, first.Entry[0].Response.Location)
		}
		for _, q := range []string{"/Patient?identifier=urn:test|ph1&_summary=count", "/Observation?subject=" + patient + "&_summary=count"} {
			if b := c.do("GET", q, "").want(t, http.StatusOK).json(t); b["total"] != float64(1) {
				t.Errorf("%s: %v, want 1", q, b["total"])
			}
		}

		// A conditional update naming the patient found finds its
		// Observation.
		resp := c.bundle(txBundle("transaction",
			txEntry(pat, "POST", "Patient", patientWith("", "ph1", "Placeholder"), "ifNoneExist", "identifier=urn:test|ph1"),
			txEntry("", "PUT", "Observation?subject="+pat+"&code=http://loinc.org|8867-4", observation("updated"))))
		checkStatuses(t, resp, "200 OK", "200 OK")
		if resp.Entry[1].Response.Location != strings.Replace(first.Entry[0].Response.Location, "/_history/1", "/_history/2", 1) {
			t.Errorf("conditional update wrote %q, want version 2 of %q", resp.Entry[1].Response.Location, first.Entry[0].Response.Location)
		}

		// Only references stand for an entry: an identifier whose value is
		// the entry's own fullUrl is searched as it is.
		const doc = "urn:uuid:6a1d0c3e-0000-4000-8000-000000000003"
		byIdentifier := txBundle("transaction", txEntry(doc, "POST", "Patient",
			`{"resourceType":"Patient","identifier":[{"system":"urn:ietf:rfc:3986","value":"`+doc+`"}]}`, "ifNoneExist", "identifier="+doc))
		checkStatuses(t, c.bundle(byIdentifier), "201 Created")
		checkStatuses(t, c.bundle(byIdentifier), "200 OK")

		// Criteria that name each other, their own entry, or an entry a
		// later step settles, cannot be resolved: 400 saying where.
		for name, tc := range map[string]struct {
			entries []string
			where   string
		}{
			"cycle": {[]string{
				txEntry(pat, "POST", "Patient", patientWith("", "ph2", "Cycle"), "ifNoneExist", "identifier=urn:test|ph2&link="+obs),
				txEntry(obs, "POST", "Observation", observation("cycle"), "ifNoneExist", "subject="+pat),
			}, "Bundle.entry[1].request.ifNoneExist"},
			"own entry": {[]string{
				txEntry(pat, "PUT", "Patient?identifier=urn:test|ph2&link="+pat, patientWith("", "ph2", "Own")),
			}, "Bundle.entry[0].request.url"},
			"delete before the create": {[]string{
				txEntry("", "DELETE", "Observation?subject="+pat, ""),
				txEntry(pat, "POST", "Patient", patientWith("", "ph2", "Later"), "ifNoneExist", "identifier=urn:test|ph2"),
			}, "Bundle.entry[0].request.url"},
		} {
			t.Run(name, func(t *testing.T) {
				r := c.do("POST", "", txBundle("transaction", tc.entries...)).want(t, http.StatusBadRequest)
				r.outcome(t, "invalid", tc.where)
				if b := c.do("GET", "/Patient?identifier=urn:test|ph2&_summary=count", "").want(t, http.StatusOK).json(t); b["total"] != float64(0) {
					t.Errorf("%v Patients written by a failed transaction", b["total"])
				}
			})
		}
		if b := c.do("GET", "/Observation?subject="+patient+"&_summary=count", "").want(t, http.StatusOK).json(t); b["total"] != float64(1) {
			t.Errorf("%v Observations, want 1", b["total"])
		}
	})
}

// TestTransactionConditionalWritesByToken matches conditional criteria
// against the resources a transaction writes, where those are looked up by
// their token values: codes with or without a system, criteria with a
// token and another clause, criteria without a token, and two writes that
// the criteria match (412), or two conditional updates matching each other
// (400).
func TestTransactionConditionalWritesByToken(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		plain := func(value, family string) string {
			return txEntry("", "POST", "Patient", patientWith("", value, family))
		}
		ensure := func(criteria, value, family string) string {
			return txEntry("", "POST", "Patient", patientWith("", value, family), "ifNoneExist", criteria)
		}
		resp := c.bundle(txBundle("transaction",
			plain("t1", "One"),
			ensure("identifier=t1", "t1", "AnySystem"),
			ensure("identifier=urn:test|t1&family=Other", "t1x", "Other"),
			ensure("family=One", "t1y", "ByName"),
			ensure("identifier=urn:other|t1", "t1z", "OtherSystem"),
			ensure("identifier=urn:test|t2", "t2", "Two"),
			ensure("identifier=urn:test|t2,urn:test|t3", "t2", "TwoAgain")))
		checkStatuses(t, resp, "201 Created", "200 OK", "201 Created", "200 OK", "201 Created", "201 Created", "200 OK")
		one := resp.Entry[0].Response.Location
		for _, i := range []int{1, 3} {
			if got := resp.Entry[i].Response.Location; got != one {
				t.Errorf("entry %d found %q, want %q", i, got, one)
			}
		}
		if resp.Entry[6].Response.Location != resp.Entry[5].Response.Location {
			t.Errorf("entry 6 found %q, want %q", resp.Entry[6].Response.Location, resp.Entry[5].Response.Location)
		}

		r := c.do("POST", "", txBundle("transaction", plain("t4", "A"), plain("t4", "B"),
			ensure("identifier=urn:test|t4", "t4", "C"))).want(t, http.StatusPreconditionFailed)
		r.outcome(t, "multiple-matches", "Bundle.entry[2]")
		r = c.do("POST", "", txBundle("transaction",
			txEntry("", "PUT", "Patient?identifier=urn:test|t5", patientWith("", "t6", "A")),
			txEntry("", "PUT", "Patient?identifier=urn:test|t6", patientWith("", "t5", "B")))).want(t, http.StatusBadRequest)
		r.outcome(t, "invalid", "Bundle.entry[1]")
		for _, v := range []string{"t4", "t5", "t6"} {
			if b := c.do("GET", "/Patient?identifier=urn:test|"+v+"&_summary=count", "").want(t, http.StatusOK).json(t); b["total"] != float64(0) {
				t.Errorf("%s: %v Patients written by a failed transaction", v, b["total"])
			}
		}
	})
}

// TestTransactionCriteriaMatchResolvedReferences matches conditional
// criteria against the resources a transaction writes as they will be
// stored: an Observation sent with subject urn:uuid:… is found by criteria
// naming the Patient that placeholder resolves to, by its Type/id or by
// the placeholder, as a search finds it once stored (R4 3.1.0.11.2
// resolves references before processing).
func TestTransactionCriteriaMatchResolvedReferences(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		const (
			created = "urn:uuid:6a1d0c3e-0000-4000-8000-000000000011"
			put     = "urn:uuid:6a1d0c3e-0000-4000-8000-000000000012"
		)
		observation := func(subject, value string) string {
			return `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"` + subject + `"},"valueString":"` + value + `"}`
		}
		resp := c.bundle(txBundle("transaction",
			txEntry(created, "POST", "Patient", patientWith("", "rr1", "Created")),
			txEntry("", "POST", "Observation", observation(created, "first")),
			txEntry("", "POST", "Observation", observation(created, "again"), "ifNoneExist", "subject="+created+"&code=http://loinc.org|8867-4"),
			txEntry(put, "PUT", "Patient/rr-put", patientWith("rr-put", "rr2", "Put")),
			txEntry("", "POST", "Observation", observation(put, "first")),
			txEntry("", "POST", "Observation", observation(put, "again"), "ifNoneExist", "subject=Patient/rr-put&code=http://loinc.org|8867-4"),
			txEntry("", "POST", "DiagnosticReport",
				`{"resourceType":"DiagnosticReport","status":"final","code":{"text":"heart rate"},"result":[{"reference":"Observation?subject=Patient/rr-put&code=http://loinc.org|8867-4&status=final"}]}`)))
		checkStatuses(t, resp, "201 Created", "201 Created", "200 OK", "201 Created", "201 Created", "200 OK", "201 Created")
		for _, pair := range [][2]int{{2, 1}, {5, 4}} {
			if got, want := resp.Entry[pair[0]].Response.Location, resp.Entry[pair[1]].Response.Location; got != want {
				t.Errorf("entry %d found %q, want the Observation of entry %d, %q", pair[0], got, pair[1], want)
			}
		}
		want := "Observation/" + str(resp.resource(t, 4), "id")
		if got := str(get(resp.resource(t, 6), "result", 0), "reference"); got != want {
			t.Errorf("DiagnosticReport.result %q, want %q", got, want)
		}
		for _, subject := range []string{"Patient/" + str(resp.resource(t, 0), "id"), "Patient/rr-put"} {
			if b := c.do("GET", "/Observation?subject="+subject+"&_summary=count", "").want(t, http.StatusOK).json(t); b["total"] != float64(1) {
				t.Errorf("Observations of %s: %v, want 1", subject, b["total"])
			}
		}
	})
}

// TestTransactionCriteriaAsStored matches conditional criteria against a
// resource the same transaction writes as the same search matches it once
// stored: token modifiers and forms find it or not alike, and criteria
// with a chain or _has clause, which memory cannot follow, are refused
// where the written resource meets their other clauses, rather than miss
// it.
func TestTransactionCriteriaAsStored(t *testing.T) {
	const written = `{"resourceType":"Patient","identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}],"text":"Medical record"},"system":"urn:test","value":"as1"}],"gender":"male","name":[{"family":"Stored"}]}`
	ensure := func(criteria string) string {
		return txEntry("", "POST", "Patient", patientWith("", "other", "Other"), "ifNoneExist", criteria)
	}
	deleteAll := func(t *testing.T, c *client, search string) {
		for _, e := range c.do("GET", search, "").want(t, http.StatusOK).json(t)["entry"].([]any) {
			c.do("DELETE", "/Patient/"+str(e, "resource", "id"), "").want(t, http.StatusNoContent)
		}
	}
	eachEngine(t, func(t *testing.T, c *client) {
		for _, tc := range []struct {
			criteria string
			found    bool
		}{
			{"identifier=urn:test|as1", true},
			{"identifier=as1", true},
			{"identifier=|as1", false},
			{"identifier=urn:test|", true},
			{"identifier=URN:TEST|AS1", false},
			{"identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|as1", true},
			{"identifier:text=medical", true},
			{"identifier:not=urn:test|zz", true},
			{"identifier:missing=false&gender:not=female", true},
			{"gender:not=male", false},
			{"gender:in=http://hl7.org/fhir/ValueSet/administrative-gender", true},
			{"gender:below=http://hl7.org/fhir/administrative-gender|male", true},
			{"gender=|male", true},
		} {
			t.Run(tc.criteria, func(t *testing.T) {
				// Once stored: the written resource is deleted again after.
				c.create("Patient", written)
				r := c.do("POST", "/Patient", patientWith("", "other", "Other"), "If-None-Exist", tc.criteria)
				if found := r.status == http.StatusOK; found != tc.found || r.status != http.StatusOK && r.status != http.StatusCreated {
					t.Errorf("stored: %d, want found %v: %s", r.status, tc.found, r.body)
				}
				deleteAll(t, c, "/Patient?name=Stored,Other")
				// Written by the same transaction.
				resp := c.bundle(txBundle("transaction", txEntry("", "POST", "Patient", written), ensure(tc.criteria)))
				if found := resp.Entry[1].Response.Status == "200 OK"; found != tc.found {
					t.Errorf("in the transaction: %s, want found %v", resp.Entry[1].Response.Status, tc.found)
				}
				deleteAll(t, c, "/Patient?name=Stored,Other")
			})
		}

		// Chains and _has: refused where the written resource meets the
		// other clauses, whatever the entry (conditional create, update
		// or reference).
		const org = "urn:uuid:6a1d0c3e-0000-4000-8000-000000000021"
		const pat = "urn:uuid:6a1d0c3e-0000-4000-8000-000000000022"
		orgEntry := txEntry(org, "POST", "Organization", `{"resourceType":"Organization","name":"Acme Surgery"}`)
		patEntry := txEntry(pat, "POST", "Patient", `{"resourceType":"Patient","identifier":[{"system":"urn:test","value":"ch1"}],"managingOrganization":{"reference":"`+org+`"}}`)
		obsEntry := txEntry("", "POST", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"`+pat+`"}}`)
		for name, tc := range map[string]struct {
			entries []string
			where   string
		}{
			"chain": {[]string{orgEntry, patEntry, ensure("organization.name=acme")}, "Bundle.entry[2].request.ifNoneExist"},
			"_has":  {[]string{orgEntry, patEntry, obsEntry, ensure("_has:Observation:subject:status=final")}, "Bundle.entry[3].request.ifNoneExist"},
			"conditional update": {[]string{orgEntry, patEntry,
				txEntry("", "PUT", "Patient?organization.name=acme", patientWith("", "ch2", "Put"))}, "Bundle.entry[2].request.url"},
			"conditional reference": {[]string{orgEntry, patEntry, txEntry("", "POST", "Observation",
				`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient?organization.name=acme"}}`)},
				"Bundle.entry[2].resource.subject.reference"},
		} {
			t.Run(name, func(t *testing.T) {
				r := c.do("POST", "", txBundle("transaction", tc.entries...)).want(t, http.StatusBadRequest)
				r.outcome(t, "not-supported", tc.where)
				for _, q := range []string{"/Organization?_summary=count", "/Patient?_summary=count", "/Observation?_summary=count"} {
					if b := c.do("GET", q, "").want(t, http.StatusOK).json(t); b["total"] != float64(0) {
						t.Errorf("%s: %v written by a failed transaction", q, b["total"])
					}
				}
			})
		}
		// A chain whose other clauses exclude what the transaction writes
		// is matched against the store alone.
		stored := c.create("Organization", `{"resourceType":"Organization","name":"Acme Surgery"}`)
		c.create("Patient", `{"resourceType":"Patient","identifier":[{"system":"urn:test","value":"ch3"}],"managingOrganization":{"reference":"Organization/`+str(stored, "id")+`"}}`)
		resp := c.bundle(txBundle("transaction", orgEntry, patEntry, ensure("identifier=urn:test|ch3&organization.name=acme")))
		checkStatuses(t, resp, "201 Created", "201 Created", "200 OK")
	}, withValidator(false))
}

// TestTransactionCriteriaSharedCode loads twice a transaction of
// conditional creates whose criteria share their code and differ by
// subject: the first load creates each Observation once, the second
// finds each and creates nothing.
func TestTransactionCriteriaSharedCode(t *testing.T) {
	const n = 60
	eachEngine(t, func(t *testing.T, c *client) {
		entries := make([]string, n)
		for i := range entries {
			subject := fmt.Sprintf("Patient/sc%d", i)
			entries[i] = txEntry("", "POST", "Observation",
				`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"`+subject+`"}}`,
				"ifNoneExist", "subject="+subject+"&code=http://loinc.org|8867-4")
		}
		load := txBundle("transaction", entries...)
		for _, want := range []string{"201 Created", "200 OK"} {
			resp := c.bundle(load)
			locations := make(map[string]bool)
			for i, e := range resp.Entry {
				if e.Response.Status != want {
					t.Fatalf("entry %d: %s, want %s", i, e.Response.Status, want)
				}
				locations[e.Response.Location] = true
			}
			if len(locations) != n {
				t.Errorf("%d Observations answered, want %d", len(locations), n)
			}
		}
		if b := c.do("GET", "/Observation?code=http://loinc.org|8867-4&_summary=count", "").want(t, http.StatusOK).json(t); b["total"] != float64(n) {
			t.Errorf("%v Observations stored, want %d", b["total"], n)
		}
	})
}
