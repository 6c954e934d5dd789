package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"carefhir/profiles"
	"carefhir/server"
)

// validator is built once for the package's tests: it loads every bundled
// definition, which takes about a second.
var validator = sync.OnceValues(func() (*profiles.Validator, error) {
	return profiles.New(profiles.Options{})
})

func withValidator(writes bool) config {
	return func(cfg *server.Config) {
		v, err := validator()
		if err != nil {
			panic(err)
		}
		cfg.Validator, cfg.ValidateWrites = v, writes
	}
}

const badNHSNumber = `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000008"}],"gender":"female"}`

func TestValidateOperation(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		valid(t, c.do("POST", "/Patient/$validate", patient).want(t, 200))
		if cs := c.do("GET", "/metadata", "").want(t, 200); !strings.Contains(string(cs.body), `"name":"validate"`) {
			t.Errorf("CapabilityStatement does not list $validate")
		}

		r := c.do("POST", "/Patient/$validate", badNHSNumber).want(t, 200)
		if msg := r.outcome(t, "", ""); msg == "" || !strings.Contains(string(r.body), `"severity":"error"`) {
			t.Errorf("invalid NHS number not reported: %s", r.body)
		}
		if !strings.Contains(string(r.body), "Patient.identifier[0]") {
			t.Errorf("issue without the identifier's expression: %s", r.body)
		}
		params := `{"resourceType":"Parameters","parameter":[{"name":"mode","valueCode":"create"},{"name":"resource","resource":` + badNHSNumber + `}]}`
		if r := c.do("POST", "/Patient/$validate", params).want(t, 200); !strings.Contains(string(r.body), `"severity":"error"`) {
			t.Errorf("Parameters form: %s", r.body)
		}
		c.do("POST", "/Patient/$validate", `{"resourceType":"Parameters","parameter":[{"name":"mode","valueCode":"create"}]}`).want(t, 400).outcome(t, "required", "")
		// A create of a resource holding nothing but its type is stored,
		// given an id and meta, so mode create finds no fault in it.
		valid(t, c.do("POST", "/Patient/$validate?mode=create", `{"resourceType":"Patient"}`).want(t, 200))
		c.do("POST", "/Observation/$validate", patient).want(t, 400).outcome(t, "invalid", "")
		c.do("POST", "/Patient/$expunge", patient).want(t, 404)
		c.do("POST", "/Patient/nope/$validate", patient).want(t, 404).outcome(t, "not-found", "")
		id := str(c.create("Patient", patient), "id")
		c.do("POST", "/Patient/"+id+"/$validate", `{"resourceType":"Parameters","parameter":[{"name":"mode","valueCode":"delete"}]}`).want(t, 200).outcome(t, "informational", "")
		valid(t, c.do("POST", "/Patient/$validate", `<Patient xmlns="http://hl7.org/fhir"><gender value="female"/></Patient>`, "Content-Type", "application/fhir+xml", "Accept", "application/fhir+json").want(t, 200))
	}, withValidator(false))
}

// TestValidateDeleteWithoutBody checks that mode delete, which R4 asks
// about with no resource, is answered when POST [type]/[id]/$validate
// names it in the URL and sends no body, and that what needs a resource
// still says so.
func TestValidateDeleteWithoutBody(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", patient), "id")
		c.do("POST", "/Patient/"+id+"/$validate?mode=delete", "").want(t, http.StatusOK).outcome(t, "informational", "")
		c.do("POST", "/Patient/missing/$validate?mode=delete", "").want(t, http.StatusNotFound).outcome(t, "not-found", "")
		c.do("POST", "/Patient/$validate?mode=delete", "").want(t, http.StatusBadRequest).outcome(t, "required", "Parameters.parameter")
		c.do("POST", "/Patient/"+id+"/$validate", "").want(t, http.StatusBadRequest).outcome(t, "required", "Parameters.parameter")
		c.do("POST", "/Patient/"+id+"/$validate?mode=update", "").want(t, http.StatusBadRequest).outcome(t, "required", "Parameters.parameter")
	}, withValidator(false))
}

// TestValidateDeletedInstance checks that $validate on a deleted resource
// is 410, as a read of it is, but for mode delete, which a DELETE of it
// again answers too.
func TestValidateDeletedInstance(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("Patient", patient), "id")
		c.do("DELETE", "/Patient/"+id, "").want(t, http.StatusNoContent)
		c.do("POST", "/Patient/"+id+"/$validate", patient).want(t, http.StatusGone).outcome(t, "deleted", "")
		c.do("POST", "/Patient/"+id+"/$validate?mode=create", patient).want(t, http.StatusGone).outcome(t, "deleted", "")
		c.do("POST", "/Patient/"+id+"/$validate?mode=delete", "").want(t, http.StatusOK).outcome(t, "informational", "")
	}, withValidator(false))
}

// TestValidateOptionTypes checks that the mode and profile of $validate
// in a Parameters body are read whichever string type they are given as,
// and that one without such a value is 400 naming it, rather than read as
// absent: the resource would be reported valid against no profile.
func TestValidateOptionTypes(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		params := func(option, resource string) string {
			return `{"resourceType":"Parameters","parameter":[` + option + `,{"name":"resource","resource":` + resource + `}]}`
		}
		const unknown = "http://example.org/StructureDefinition/unknown"
		for _, option := range []string{
			`{"name":"profile","valueUri":"` + unknown + `"}`,
			`{"name":"profile","valueCanonical":"` + unknown + `"}`,
			`{"name":"profile","valueString":"` + unknown + `"}`,
		} {
			c.do("POST", "/Patient/$validate", params(option, patient)).want(t, http.StatusOK).outcome(t, "not-supported", "Patient")
		}
		id := str(c.create("Patient", patient), "id")
		c.do("POST", "/Patient/"+id+"/$validate", `{"resourceType":"Parameters","parameter":[{"name":"mode","valueString":"delete"}]}`).
			want(t, http.StatusOK).outcome(t, "informational", "")
		for _, option := range []string{
			`{"name":"profile","valueBoolean":true}`,
			`{"name":"profile","part":[{"name":"url","valueUri":"` + unknown + `"}]}`,
			`{"name":"mode","valueInteger":1}`,
		} {
			name := "profile"
			if strings.Contains(option, `"mode"`) {
				name = "mode"
			}
			at := "Parameters.parameter.where(name='" + name + "')"
			c.do("POST", "/Patient/$validate", params(option, patient)).want(t, http.StatusBadRequest).outcome(t, "invalid", at)
			// So too beside a resource the model cannot read.
			c.do("POST", "/Patient/$validate", params(option, `{"resourceType":"Patient","foo":1}`)).want(t, http.StatusBadRequest).outcome(t, "invalid", at)
		}
	}, withValidator(false))
}

// TestValidateUnreadableResource checks that $validate reports, with 200,
// the faults of a resource the model cannot hold (R4: "returns 200 OK
// whether or not the resource is valid"), and refuses only what it cannot
// validate at all.
func TestValidateUnreadableResource(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		for _, tc := range []struct{ body, code, expression string }{
			{`{"resourceType":"Patient","birthDate":"2020-13-01"}`, "value", "Patient.birthDate"},
			{`{"resourceType":"Patient","id":"p1","foo":1}`, "structure", "Patient"},
			{`{"resourceType":"Patient","gender":5}`, "structure", "Patient.gender"},
			{`{"resourceType":"Parameters","parameter":[{"name":"mode","valueCode":"create"},
 {"name":"resource","resource":{"resourceType":"Patient","birthDate":"2020-02-30"}}]}`, "value", "Patient.birthDate"},
		} {
			r := c.do("POST", "/Patient/$validate", tc.body).want(t, 200)
			if !strings.Contains(string(r.body), `"severity":"error"`) {
				t.Errorf("%s: no error reported: %s", tc.body, r.body)
			}
			r.outcome(t, tc.code, tc.expression)
		}
		// An update needs the resource's id to be the instance's, whether
		// the instance exists or the update would create it; that is a
		// finding, not a refusal.
		id := str(c.create("Patient", patient), "id")
		for _, at := range []string{id, "other"} {
			r := c.do("POST", "/Patient/"+at+"/$validate?mode=update", `{"resourceType":"Patient","id":"p1","foo":1}`).want(t, 200)
			r.outcome(t, "invalid", "Patient.id")
			r.outcome(t, "structure", "Patient")
		}
		valid(t, c.do("POST", "/Patient/new1/$validate?mode=update", `{"resourceType":"Patient","id":"new1","gender":"male"}`).want(t, 200))
		// An update names its resource: without an id there is none.
		c.do("POST", "/Patient/$validate?mode=update", `{"resourceType":"Patient","gender":"male"}`).want(t, 200).outcome(t, "required", "Patient.id")
		valid(t, c.do("POST", "/Patient/$validate?mode=update", `{"resourceType":"Patient","id":"new2","gender":"male"}`).want(t, 200))
		c.do("POST", "/Patient/new1/$validate?mode=create", `{"resourceType":"Patient","gender":"male"}`).want(t, 404)
		// What cannot be validated at all is still 400.
		for _, body := range []string{`{"resourceType":"Patient",`, `{"gender":"male"}`, `[1,2]`,
			`{"resourceType":"Observation","foo":1}`,
			`{"resourceType":"Parameters","parameter":[{"name":"resource","resource":[1]}]}`} {
			c.do("POST", "/Patient/$validate", body).want(t, 400)
		}
		c.do("POST", "/Patient/$validate", `<Patient xmlns="http://hl7.org/fhir"><foo value="1"/></Patient>`, "Content-Type", "application/fhir+xml").want(t, 400)
	}, withValidator(false))
}

// A date that is not one (a month 13, a day 30 of February) is a finding of
// $validate in XML as in JSON, located at its element, while a create or
// update of one is refused in either format.
func TestValidateXMLValueFaults(t *testing.T) {
	const xmlType = "application/fhir+xml"
	eachEngine(t, func(t *testing.T, c *client) {
		for _, date := range []string{"2023-02-30", "2023-13-01", "2023-02-3"} {
			asJSON := `{"resourceType":"Patient","id":"d","birthDate":"` + date + `"}`
			asXML := `<Patient xmlns="http://hl7.org/fhir"><id value="d"/><birthDate value="` + date + `"/></Patient>`
			inParameters := `<Parameters xmlns="http://hl7.org/fhir"><parameter><name value="mode"/><valueCode value="create"/></parameter>` +
				`<parameter><name value="resource"/><resource>` + asXML + `</resource></parameter></Parameters>`
			for _, v := range []struct{ body, contentType string }{{asJSON, "application/fhir+json"}, {asXML, xmlType}, {inParameters, xmlType}} {
				r := c.do("POST", "/Patient/$validate", v.body, "Content-Type", v.contentType, "Accept", "application/fhir+json").want(t, http.StatusOK)
				if msg := r.outcome(t, "value", "Patient.birthDate"); !strings.Contains(msg, date) {
					t.Errorf("%s: diagnostics %q do not name %s", v.body, msg, date)
				}
			}
			for _, v := range []struct{ body, contentType string }{{asJSON, "application/fhir+json"}, {asXML, xmlType}} {
				c.do("POST", "/Patient", v.body, "Content-Type", v.contentType).want(t, http.StatusBadRequest)
				c.do("PUT", "/Patient/d", v.body, "Content-Type", v.contentType).want(t, http.StatusBadRequest)
			}
		}
		c.do("GET", "/Patient/d", "").want(t, http.StatusNotFound)
	}, withValidator(false))
}

// TestWriteDaylessDate: a date, dateTime or instant on a day its month
// lacks is no date (R4 datatypes.html#date: "SHALL be valid dates"). A
// create or update holding one is refused with 400 and one issue at its
// element, in JSON and XML, whether writes are validated or not, as one
// with month 13 is; nothing is stored. 29 February of a leap year, and a
// year or a month alone, are written.
func TestWriteDaylessDate(t *testing.T) {
	const xmlType = "application/fhir+xml"
	for _, validate := range []bool{false, true} {
		var opts []config
		if validate {
			opts = append(opts, withValidator(true))
		}
		t.Run(fmt.Sprintf("validate=%v", validate), func(t *testing.T) {
			eachEngine(t, func(t *testing.T, c *client) {
				for _, tc := range []struct{ typ, element, value, at string }{
					{"Patient", "birthDate", "2024-02-30", "Patient.birthDate"},
					{"Patient", "birthDate", "2023-02-29", "Patient.birthDate"},
					{"Patient", "birthDate", "1900-02-29", "Patient.birthDate"},
					{"Patient", "birthDate", "2024-04-31", "Patient.birthDate"},
					{"Patient", "birthDate", "2024-13-01", "Patient.birthDate"},
					{"Patient", "deceasedDateTime", "2024-02-30T10:00:00Z", "Patient.deceasedDateTime"},
					{"Patient", "deceasedDateTime", "2024-02-28T24:00:00Z", "Patient.deceasedDateTime"},
					{"Patient", "deceasedDateTime", "2024-02-28T23:60:00Z", "Patient.deceasedDateTime"},
					{"Observation", "issued", "2024-02-30T10:00:00.000Z", "Observation.issued"},
				} {
					// An Observation's mandatory elements, before the date.
					jsonHead, xmlHead := "", ""
					if tc.typ == "Observation" {
						jsonHead, xmlHead = `"status":"final","code":{"text":"x"},`, `<status value="final"/><code><text value="x"/></code>`
					}
					asJSON := `{"resourceType":"` + tc.typ + `","id":"d",` + jsonHead + `"` + tc.element + `":"` + tc.value + `"}`
					asXML := `<` + tc.typ + ` xmlns="http://hl7.org/fhir"><id value="d"/>` + xmlHead + `<` + tc.element + ` value="` + tc.value + `"/></` + tc.typ + `>`
					for _, r := range []*response{
						c.do("POST", "/"+tc.typ, asJSON),
						c.do("PUT", "/"+tc.typ+"/d", asJSON),
						c.do("PUT", "/"+tc.typ+"/d", asXML, "Content-Type", xmlType, "Accept", "application/fhir+json"),
					} {
						r.want(t, http.StatusBadRequest)
						if msg := r.outcome(t, "structure", tc.at); !strings.Contains(msg, tc.value) {
							t.Errorf("%s: diagnostics %q do not name it", tc.value, msg)
						}
						if n := strings.Count(string(r.body), `"severity"`); n != 1 {
							t.Errorf("%s: %d issues, want 1: %s", tc.value, n, r.body)
						}
					}
					c.do("GET", "/"+tc.typ+"/d", "").want(t, http.StatusNotFound)
					if n := c.do("GET", "/"+tc.typ+"?_summary=count", "").want(t, http.StatusOK).json(t)["total"]; n != 0.0 {
						t.Errorf("%s: %v %s stored, want 0", tc.value, n, tc.typ)
					}
				}
				for _, date := range []string{"2024-02-29", "2000-02-29", "2024-02", "2024"} {
					c.do("PUT", "/Patient/p", `{"resourceType":"Patient","id":"p","birthDate":"`+date+`"}`)
					if got := c.do("GET", "/Patient/p", "").want(t, http.StatusOK).json(t)["birthDate"]; got != date {
						t.Errorf("birthDate %v stored, want %s", got, date)
					}
				}
			}, opts...)
		})
	}
}

// TestValidateUnknownProfile checks that a profile named to $validate and
// not known here is an error, not a warning that leaves the resource valid:
// R4 "If a profile is nominated, and the server cannot validate against the
// nominated profile, it SHALL return an error".
func TestValidateUnknownProfile(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("POST", "/Patient/$validate?profile=http://example.org/StructureDefinition/nope", patient).want(t, 200)
		if msg := r.outcome(t, "not-supported", "Patient"); !strings.Contains(msg, "http://example.org/StructureDefinition/nope") {
			t.Errorf("the issue does not name the profile: %s", msg)
		}
		if !strings.Contains(string(r.body), `"severity":"error"`) {
			t.Errorf("an unknown nominated profile is not an error: %s", r.body)
		}
		// A profile the resource claims and the server lacks stays a warning.
		claimed := `{"resourceType":"Patient","meta":{"profile":["http://example.org/StructureDefinition/nope"]},"gender":"female"}`
		valid(t, c.do("POST", "/Patient/$validate", claimed).want(t, 200))
	}, withValidator(false))
}

// TestClaimedProfileOfHeldResource checks that a resource held in another
// (a Bundle entry's, a contained one) is validated against the profiles it
// claims in meta.profile, as it is when sent alone: a UK Core Patient with
// two NHS numbers in a collection Bundle is refused, the issue at the entry.
func TestClaimedProfileOfHeldResource(t *testing.T) {
	const twoNHSNumbers = `{"resourceType":"Patient","meta":{"profile":["` + ukCorePatient + `"]},
 "identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"},{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000017"}]}`
	const collection = `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:5e0c6a4e-2c1f-4a51-9d43-2f4f2b8a1c01","resource":` + twoNHSNumbers + `}]}`
	const slice = "Patient.identifier:nhsNumber: max allowed = 1, but found 2"
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("POST", "/Patient", twoNHSNumbers).want(t, http.StatusUnprocessableEntity)
		if msg := r.outcome(t, "structure", "Patient.identifier"); msg != slice {
			t.Errorf("alone: %q, want %q", msg, slice)
		}
		r = c.do("POST", "/Bundle", collection).want(t, http.StatusUnprocessableEntity)
		if msg := r.outcome(t, "structure", "Bundle.entry[0].resource.identifier"); msg != slice {
			t.Errorf("in a Bundle: %q, want %q", msg, slice)
		}
		r = c.do("POST", "/Bundle/$validate", collection).want(t, http.StatusOK)
		r.outcome(t, "structure", "Bundle.entry[0].resource.identifier")
		if n := c.do("GET", "/Bundle?_summary=count", "").want(t, http.StatusOK).json(t)["total"]; n != 0.0 {
			t.Errorf("%v Bundles stored, want 0", n)
		}
	}, withValidator(true))
}

// bpWithoutSystolic is a blood pressure Observation without the systolic
// component the R4 bp profile requires: a valid Observation otherwise.
const bpWithoutSystolic = `{"resourceType":"Observation","status":"final",
 "category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
 "code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
 "subject":{"reference":"Patient/1"},"effectiveDateTime":"2024-05-01T09:30:00Z",
 "component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},
  "valueQuantity":{"value":80,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`

// TestValidateVitalSigns checks that $validate applies an R4 vital signs
// profile named by its profile parameter.
func TestValidateVitalSigns(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		valid(t, c.do("POST", "/Observation/$validate", bpWithoutSystolic).want(t, 200))
		params := `{"resourceType":"Parameters","parameter":[{"name":"resource","resource":` + bpWithoutSystolic + `},
 {"name":"profile","valueCanonical":"http://hl7.org/fhir/StructureDefinition/bp"}]}`
		r := c.do("POST", "/Observation/$validate", params).want(t, 200)
		r.outcome(t, "required", "Observation.component")
		if !strings.Contains(string(r.body), "Observation.component:SystolicBP: minimum required = 1") {
			t.Errorf("the missing systolic component is not reported: %s", r.body)
		}
		// The resource as the body, the profile in the URL.
		const bp = "http%3A%2F%2Fhl7.org%2Ffhir%2FStructureDefinition%2Fbp"
		r = c.do("POST", "/Observation/$validate?profile="+bp, bpWithoutSystolic).want(t, 200)
		if !strings.Contains(string(r.body), "Observation.component:SystolicBP: minimum required = 1") {
			t.Errorf("?profile= is not validated against: %s", r.body)
		}
		// The same profile in both places is one; two profiles are refused.
		c.do("POST", "/Observation/$validate?profile="+bp, params).want(t, 200)
		c.do("POST", "/Observation/$validate?profile=http%3A%2F%2Fhl7.org%2Ffhir%2FStructureDefinition%2Fbodytemp", params).want(t, 400).outcome(t, "invalid", "Parameters.parameter")
		c.do("POST", "/Observation/$validate?mode=replace", bpWithoutSystolic).want(t, 400).outcome(t, "code-invalid", "Parameters.parameter")
	}, withValidator(false))
}

func TestValidateWrites(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.create("Patient", patient)
		r := c.do("POST", "/Patient", `{"resourceType":"Patient","gender":"unknown-x"}`).want(t, http.StatusUnprocessableEntity)
		r.outcome(t, "", "Patient.gender")
		c.do("POST", "/Patient", badNHSNumber).want(t, http.StatusUnprocessableEntity)
		// A date its month does not have is no date: refused as one with
		// month 13 is, validated or not (TestWriteDaylessDate).
		c.do("POST", "/Patient", `{"resourceType":"Patient","birthDate":"2021-02-29"}`).
			want(t, http.StatusBadRequest).outcome(t, "structure", "Patient.birthDate")
		id := str(c.create("Patient", patient), "id")
		c.do("PUT", "/Patient/"+id, `{"resourceType":"Patient","id":"`+id+`","gender":"unknown-x"}`).want(t, http.StatusUnprocessableEntity)
		// An update without the id of its URL is 400 (R4 http.html#update),
		// whatever else is wrong with it.
		c.do("PUT", "/Patient/"+id, `{"resourceType":"Patient","gender":"unknown-x"}`).want(t, http.StatusBadRequest).outcome(t, "required", "Patient.id")
		c.do("PUT", "/Patient/"+id, `{"resourceType":"Patient"}`).want(t, http.StatusBadRequest).outcome(t, "required", "Patient.id")
		c.do("PUT", "/Patient/"+id, `{"resourceType":"Patient","id":"other","gender":"unknown-x"}`).want(t, http.StatusBadRequest).outcome(t, "invalid", "Patient.id")
		obs := str(c.create("Observation", `{"resourceType":"Observation","status":"final","code":{"text":"weight"}}`), "id")
		c.do("PUT", "/Observation/"+obs, `{"resourceType":"Observation","code":{"text":"weight"}}`).want(t, http.StatusBadRequest).outcome(t, "required", "Observation.id")
		// The narrative and the extensions of a write are checked too.
		c.do("POST", "/Patient", `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p ONCLICK=\"x()\">Grace</p></div>"}}`).
			want(t, http.StatusUnprocessableEntity).outcome(t, "value", "Patient.text.div")
		r = c.do("POST", "/Patient", `{"resourceType":"Patient","extension":[{"url":"http://example.org/x","valueString":"a","extension":[{"url":"y","valueString":"b"}]}]}`).
			want(t, http.StatusUnprocessableEntity)
		if d := r.outcome(t, "invariant", "Patient.extension[0]"); !strings.HasPrefix(d, "ext-1:") {
			t.Errorf("extension with a value and extensions: %q, want ext-1", d)
		}
		c.create("Patient", `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Grace Okafor, <b>born</b> 14 Feb 1961</p></div>"},`+
			`"extension":[{"url":"http://example.org/x","extension":[{"url":"y","valueString":"b"}]}],"birthDate":"1961-02-14"}`)
		// Nothing of the refused writes was stored.
		if n := get(c.do("GET", "/Patient/_history", "").want(t, 200).json(t), "total"); n != 3.0 {
			t.Errorf("history total %v, want 3", n)
		}
	}, withValidator(true))
}

// TestNarrativeText checks that the words of a narrative are not read as
// markup by txt-1 and txt-2: a Condition's "onset = 3 days" or a warning
// about javascript: links is stored, while a script hidden in a comment
// that an HTML parser ends at once is refused, and nothing of it stored.
func TestNarrativeText(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		narrative := func(div string) string {
			return `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">` + div + `</div>"}}`
		}
		for _, div := range []string{
			`<p>Symptoms: onset = 3 days ago</p>`,
			`<p>Do not follow javascript: links</p>`,
			`<!-- reviewed --><p>Grace Okafor</p>`,
		} {
			c.do("POST", "/Patient", narrative(div)).want(t, http.StatusCreated)
		}
		r := c.do("POST", "/Patient", narrative(`<!--><script>alert(1)</script>--><p>Grace</p>`)).want(t, http.StatusUnprocessableEntity)
		if d := r.outcome(t, "invariant", "Patient.text.div"); !strings.HasPrefix(d, "txt-1:") {
			t.Errorf("a script after <!-->: %q, want txt-1", d)
		}
		if n := get(c.do("GET", "/Patient?_summary=count", "").want(t, 200).json(t), "total"); n != 3.0 {
			t.Errorf("%v Patients stored, want 3", n)
		}
	}, withValidator(true))
}

// TestNarrativeWithoutContent checks txt-2, "The narrative SHALL have some
// non-whitespace content": an empty div, or one of whitespace and empty
// elements, is refused and nothing stored; text or an image is content.
func TestNarrativeWithoutContent(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		narrative := func(div string) string {
			return `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">` + div + `</div>"}}`
		}
		for _, div := range []string{``, `   `, `\n  <p> </p>\n`, `<!-- Grace Okafor -->`} {
			r := c.do("POST", "/Patient", narrative(div)).want(t, http.StatusUnprocessableEntity)
			if d := r.outcome(t, "invariant", "Patient.text.div"); !strings.HasPrefix(d, "txt-2:") {
				t.Errorf("div %q: %q, want txt-2", div, d)
			}
		}
		c.create("Patient", narrative(`<p>Grace Okafor</p>`))
		c.create("Patient", narrative(`<img src=\"#photo\" alt=\"\"/>`))
		if n := get(c.do("GET", "/Patient/_history", "").want(t, 200).json(t), "total"); n != 2.0 {
			t.Errorf("history total %v, want 2", n)
		}
	}, withValidator(true))
}

// TestContainedSharingAnID checks that an Observation whose subject names
// one of two contained resources sharing an id is indexed and stored, with
// and without validation, where indexing its patient parameter
// (subject.where(resolve() is Patient)) failed with a 500.
func TestContainedSharingAnID(t *testing.T) {
	const obs = `{"resourceType":"Observation","status":"final","code":{"text":"Blood pressure"},` +
		`"contained":[{"resourceType":"Patient","id":"p1"},{"resourceType":"Practitioner","id":"p1"}],` +
		`"subject":{"reference":"#p1"},"performer":[{"reference":"#p1"}]}`
	for name, validate := range map[string]bool{"unvalidated": false, "validated": true} {
		t.Run(name, func(t *testing.T) {
			eachEngine(t, func(t *testing.T, c *client) {
				c.create("Observation", obs)
				if n := get(c.do("GET", "/Observation?_summary=count", "").want(t, 200).json(t), "total"); n != 1.0 {
					t.Errorf("%v Observations stored, want 1", n)
				}
			}, withValidator(validate))
		})
	}
}

// TestLogicalReferenceType checks that a reference by identifier alone is
// held to the target types of its element through Reference.type: an
// Observation's subject of type Practitioner is refused and nothing stored,
// while a GP practice named by its ODS code is a Patient's general
// practitioner.
func TestLogicalReferenceType(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"Pulse"},`+
			`"subject":{"type":"Practitioner","identifier":{"system":"https://fhir.hl7.org.uk/Id/gmc-number","value":"C1234567"}}}`).want(t, http.StatusUnprocessableEntity)
		if d := r.outcome(t, "structure", "Observation.subject"); !strings.Contains(d, "Practitioner") {
			t.Errorf("refusal %q does not name the type", d)
		}
		r = c.do("POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"Pulse"},`+
			`"subject":{"type":"Practitioner","reference":"urn:uuid:8f2b6c1e-3c2a-4b8e-9f43-0a3f4d5e6b7c"}}`).want(t, http.StatusUnprocessableEntity)
		r.outcome(t, "structure", "Observation.subject")
		c.create("Patient", `{"resourceType":"Patient","generalPractitioner":[{"type":"Organization",`+
			`"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"Y12345"}}]}`)
		if n := get(c.do("GET", "/Observation?_summary=count", "").want(t, 200).json(t), "total"); n != 0.0 {
			t.Errorf("%v Observations stored, want 0", n)
		}
	}, withValidator(true))
}

// A required binding (UK Core birth sex, of HL7 v3 AdministrativeGender)
// refuses a code of a system the value set does not draw on.
func TestValidateBindingOtherSystem(t *testing.T) {
	const birthSex = `{"resourceType":"Patient","extension":[{"url":"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-BirthSex",` +
		`"valueCodeableConcept":{"coding":[{"system":"%s","code":"%s"}]}}]}`
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("POST", "/Patient", fmt.Sprintf(birthSex, "http://hl7.org/fhir/administrative-gender", "female")).want(t, http.StatusUnprocessableEntity)
		if d := r.outcome(t, "code-invalid", "Patient.extension[0].value.ofType(CodeableConcept)"); !strings.Contains(d, "UKCore-BirthSex") {
			t.Errorf("refusal %q does not name the value set", d)
		}
		c.create("Patient", fmt.Sprintf(birthSex, "http://terminology.hl7.org/CodeSystem/v3-AdministrativeGender", "F"))
		// PDS still sends the language system UK Core had before BCP 47: a warning.
		r = c.do("POST", "/Patient/$validate", `{"resourceType":"Patient","meta":{"profile":["`+ukCorePatient+`"]},"communication":[{"language":{"coding":[`+
			`{"system":"https://fhir.hl7.org.uk/CodeSystem/UKCore-HumanLanguage","code":"en"}]}}]}`).want(t, http.StatusOK)
		valid(t, r)
		if d := r.outcome(t, "code-invalid", "Patient.communication[0].language.coding[0].system"); !strings.Contains(d, "retired") {
			t.Errorf("retired language system: %q", d)
		}
		if n := get(c.do("GET", "/Patient/_history", "").want(t, 200).json(t), "total"); n != 1.0 {
			t.Errorf("history total %v, want 1", n)
		}
	}, withValidator(true))
}

// A required binding is met by a code from its value set alone: an
// AllergyIntolerance whose clinical status is text, or a Coding with a
// display and no code, is refused and nothing stored; an extensible binding
// (its code) takes text, and a status absent for a reason is no concept.
func TestValidateRequiredBindingWithoutCode(t *testing.T) {
	const allergy = `{"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/1"},"code":{"text":"Penicillin"},"clinicalStatus":%s}`
	eachEngine(t, func(t *testing.T, c *client) {
		for _, status := range []string{`{"text":"active"}`, `{"coding":[{"display":"Active"}]}`} {
			r := c.do("POST", "/AllergyIntolerance", fmt.Sprintf(allergy, status)).want(t, http.StatusUnprocessableEntity)
			if d := r.outcome(t, "code-invalid", "AllergyIntolerance.clinicalStatus"); !strings.Contains(d, "allergyintolerance-clinical") {
				t.Errorf("clinicalStatus %s: refusal %q does not name the value set", status, d)
			}
		}
		c.create("AllergyIntolerance", fmt.Sprintf(allergy, `{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"active"}],"text":"Active"}`))
		c.create("AllergyIntolerance", fmt.Sprintf(allergy, `{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]}`))
		if n := get(c.do("GET", "/AllergyIntolerance/_history", "").want(t, 200).json(t), "total"); n != 2.0 {
			t.Errorf("history total %v, want 2", n)
		}
	}, withValidator(true))
}

// A code its bundled code system does not define is refused whatever the
// binding: here an extensible one (UK Core ethnic category) and none.
func TestValidateUnknownCode(t *testing.T) {
	const ethnic = `{"resourceType":"Patient","extension":[{"url":"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory",` +
		`"valueCodeableConcept":{"coding":[{"system":"https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland","code":"%s"}]}}]}`
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("POST", "/Patient", fmt.Sprintf(ethnic, "ZZ")).want(t, http.StatusUnprocessableEntity)
		if d := r.outcome(t, "code-invalid", "Patient.extension[0].value.ofType(CodeableConcept).coding[0].code"); !strings.Contains(d, "UKCore-EthnicCategoryEngland") {
			t.Errorf("refusal %q does not name the code system", d)
		}
		c.create("Patient", fmt.Sprintf(ethnic, "A"))
		r = c.do("POST", "/Observation/$validate", `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://hl7.org/fhir/administrative-gender","code":"bogus"}]}}`).want(t, http.StatusOK)
		r.outcome(t, "code-invalid", "Observation.code.coding[0].code")
		if n := get(c.do("GET", "/Patient/_history", "").want(t, 200).json(t), "total"); n != 1.0 {
			t.Errorf("history total %v, want 1", n)
		}
	}, withValidator(true))
}

// An element with only extensions, such as a data-absent-reason, has no
// value: the invariants over it are evaluated with its value empty, not
// skipped, so that what they check of the other elements still holds
// (here bdl-7, two entries with one fullUrl, beside an entry whose
// fullUrl is absent for a reason).
func TestValidateValuelessPrimitives(t *testing.T) {
	const absent = `{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]}`
	eachEngine(t, func(t *testing.T, c *client) {
		entry := `{"fullUrl":"urn:uuid:9d4c3e0a-1b2c-4d5e-8f90-123456789abc","resource":{"resourceType":"Patient","active":true}}`
		bundle := `{"resourceType":"Bundle","type":"collection","entry":[` + entry + `,` + entry +
			`,{"_fullUrl":` + absent + `,"resource":{"resourceType":"Patient","active":true}}]}`
		r := c.do("POST", "/Bundle/$validate", bundle).want(t, http.StatusOK)
		if !strings.Contains(string(r.body), `"bdl-7: `) || strings.Contains(string(r.body), "not evaluated") {
			t.Errorf("bdl-7 not evaluated over an entry without a fullUrl value: %s", r.body)
		}
		obs := `{"resourceType":"Observation","status":"final","code":{"text":"weight"},"subject":{"_reference":` + absent + `,"display":"unknown"}}`
		r = c.do("POST", "/Observation/$validate", obs).want(t, http.StatusOK)
		valid(t, r)
		if strings.Contains(string(r.body), "not evaluated") {
			t.Errorf("ref-1 not evaluated over a reference without a value: %s", r.body)
		}
	}, withValidator(false))
}

// valid checks a $validate answer is an OperationOutcome without errors.
func valid(t *testing.T, r *response) {
	t.Helper()
	r.outcome(t, "", "")
	if strings.Contains(string(r.body), `"severity":"error"`) || strings.Contains(string(r.body), `"severity":"fatal"`) {
		t.Errorf("valid resource reported with errors: %s", r.body)
	}
}

// TestValidateTodayInTheUK validates, at 23:30 UTC on a summer night, when
// it is already the next day in the UK, a Patient claiming a profile
// whose invariant says birthDate <= today(): born on that UK date, it is
// valid, as the importers and care coordination reckon the date; born the
// day after, it is refused.
func TestValidateTodayInTheUK(t *testing.T) {
	profile := `{"resourceType":"StructureDefinition","url":"https://example.org/fhir/StructureDefinition/BornByToday","name":"BornByToday","status":"active",
		"kind":"resource","abstract":false,"type":"Patient","baseDefinition":"http://hl7.org/fhir/StructureDefinition/Patient","derivation":"constraint",
		"differential":{"element":[{"id":"Patient","path":"Patient","constraint":[{"key":"born-1","severity":"error","human":"Born by today",
			"expression":"birthDate.empty() or birthDate <= today()"}]}]}}`
	night := time.Date(2026, 7, 1, 23, 30, 0, 0, time.UTC)
	v, err := profiles.New(profiles.Options{Resources: [][]byte{[]byte(profile)}, Now: func() time.Time { return night }})
	if err != nil {
		t.Fatal(err)
	}
	born := func(date string) string {
		return `{"resourceType":"Patient","meta":{"profile":["https://example.org/fhir/StructureDefinition/BornByToday"]},"birthDate":"` + date + `"}`
	}
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("POST", "/Patient", born("2026-07-02")).want(t, http.StatusCreated)
		r := c.do("POST", "/Patient", born("2026-07-03")).want(t, http.StatusUnprocessableEntity)
		if !strings.Contains(string(r.body), "born-1") {
			t.Errorf("a birth after today refused without naming born-1: %s", r.body)
		}
		if n := c.do("GET", "/Patient?_summary=count", "").want(t, http.StatusOK).json(t)["total"]; n != float64(1) {
			t.Errorf("%v Patients stored, want 1", n)
		}
	}, func(cfg *server.Config) { cfg.Validator, cfg.ValidateWrites = v, true })
}

// TestValidateWritesRefusesOneDigitNHSNumbers: 0000000000 and 9999999999
// pass the Modulus 11 check but are no NHS numbers; a write of either is
// refused as one with a wrong check digit is, and nothing is stored.
func TestValidateWritesRefusesOneDigitNHSNumbers(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		for _, number := range []string{"0000000000", "9999999999", "4444444444"} {
			body := strings.Replace(badNHSNumber, "9000000008", number, 1)
			r := c.do("POST", "/Patient", body).want(t, http.StatusUnprocessableEntity)
			r.outcome(t, "value", "Patient.identifier[0].value")
			if want := `\"` + number + `\" is not a valid NHS number: it must be 10 digits with a correct Modulus 11 check digit`; !strings.Contains(string(r.body), want) {
				t.Errorf("%s: %s", number, r.body)
			}
		}
		if b := c.do("GET", "/Patient?_summary=count", "").want(t, http.StatusOK).json(t); b["total"] != float64(0) {
			t.Errorf("total %v after the refused creates, want 0", b["total"])
		}
	}, withValidator(true))
}
