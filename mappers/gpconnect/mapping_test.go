package gpconnect

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"carefhir/mappers"
)

// record wraps STU3 resources in a collection Bundle, with a Patient and
// practice to key them on.
func stu3Record(resources ...string) []byte {
	all := append([]string{
		`{"resourceType":"Patient","id":"p","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9690937286"}],"managingOrganization":{"reference":"Organization/o"}}`,
		`{"resourceType":"Organization","id":"o","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"A82038"}],"name":"Temple Sowerby"}`,
	}, resources...)
	var entries []string
	for _, r := range all {
		entries = append(entries, `{"resource":`+r+`}`)
	}
	return []byte(`{"resourceType":"Bundle","type":"collection","entry":[` + strings.Join(entries, ",") + `]}`)
}

// r4 returns the JSON of the imported resource of type typ.
func r4(t *testing.T, res mappers.Result, typ string) map[string]any {
	t.Helper()
	all := r4All(t, res, typ)
	if len(all) == 0 {
		t.Fatalf("no %s imported", typ)
	}
	return all[0]
}

// r4All returns the JSON of every imported resource of type typ.
func r4All(t *testing.T, res mappers.Result, typ string) []map[string]any {
	t.Helper()
	if res.Bundle == nil {
		t.Fatalf("refused: %s", firstError(res))
	}
	var out []map[string]any
	for _, e := range res.Bundle.Entry {
		if e.Resource.ResourceType() == typ {
			var m map[string]any
			if err := json.Unmarshal(encode(t, e.Resource), &m); err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
		}
	}
	return out
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestMapping(t *testing.T) {
	im, err := importer()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		payload []byte
		check   func(t *testing.T, res mappers.Result)
	}{
		{"Condition statuses become CodeableConcepts; assertedDate an extension", stu3Record(
			`{"resourceType":"Condition","id":"c","clinicalStatus":"active","verificationStatus":"confirmed","assertedDate":"2020-01-02",
			"code":{"text":"Asthma"},"subject":{"reference":"Patient/p"}}`),
			func(t *testing.T, res mappers.Result) {
				c := r4(t, res, "Condition")
				if got := jsonOf(c["clinicalStatus"]); got != `{"coding":[{"code":"active","system":"http://terminology.hl7.org/CodeSystem/condition-clinical"}]}` {
					t.Errorf("clinicalStatus %s", got)
				}
				if got := jsonOf(c["verificationStatus"]); got != `{"coding":[{"code":"confirmed","system":"http://terminology.hl7.org/CodeSystem/condition-ver-status"}]}` {
					t.Errorf("verificationStatus %s", got)
				}
				if got := jsonOf(c["extension"]); got != `[{"url":"http://hl7.org/fhir/StructureDefinition/condition-assertedDate","valueDateTime":"2020-01-02"}]` {
					t.Errorf("extension %s", got)
				}
				if got := jsonOf(c["subject"]); !strings.Contains(got, "urn:uuid:") {
					t.Errorf("subject %s does not point at the Patient entry", got)
				}
			}},
		{"a status R4 lacks is reported, not guessed", stu3Record(
			`{"resourceType":"Condition","id":"c","clinicalStatus":"active","verificationStatus":"unknown","code":{"text":"x"},"subject":{"reference":"Patient/p"}}`),
			func(t *testing.T, res mappers.Result) {
				if c := r4(t, res, "Condition"); c["verificationStatus"] != nil {
					t.Errorf("verificationStatus %v", c["verificationStatus"])
				}
				if !contains(issuesAt(res, "Bundle.entry[2].resource.verificationStatus"), mappers.Warning, `"unknown" has no equal`) {
					t.Errorf("issues %v", res.Issues)
				}
			}},
		{"an element without a mapping is reported by its STU3 path", stu3Record(
			`{"resourceType":"Patient","id":"p2","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9990000018"}],
			"animal":{"species":{"text":"dog"}},"extension":[{"url":"https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-RegistrationDetails-1",
			"extension":[{"url":"registrationPeriod","valuePeriod":{"start":"2001-01-01"}}]}]}`),
			func(t *testing.T, res mappers.Result) {
				if !contains(issuesAt(res, "Bundle.entry[2].resource.animal"), mappers.Warning, "Patient.animal is not mapped") {
					t.Errorf("animal: %v", res.Issues)
				}
				if !contains(issuesAt(res, "Bundle.entry[2].resource.extension[0]"), mappers.Warning, "RegistrationDetails-1 is not mapped") {
					t.Errorf("registration details: %v", res.Issues)
				}
			}},
		{"NHS number verification status becomes UK Core's", stu3Record(
			`{"resourceType":"Patient","id":"p2","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9990000018",
			"extension":[{"url":"https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-NHSNumberVerificationStatus-1",
			"valueCodeableConcept":{"coding":[{"system":"https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-NHSNumberVerificationStatus-1","code":"01","display":"Number present and verified"}]}}]}]}`),
			func(t *testing.T, res mappers.Result) {
				want := `[{"extension":[{"url":"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus","valueCodeableConcept":{"coding":[{"code":"01","display":"Number present and verified","system":"https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"}]}}],"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9990000018"}]`
				var p map[string]any
				for _, e := range res.Bundle.Entry {
					if strings.HasSuffix(e.Request.Url.Get(), "9990000018") {
						json.Unmarshal(encode(t, e.Resource), &p)
					}
				}
				if got := jsonOf(p["identifier"]); got != want {
					t.Errorf("identifier %s\nwant %s", got, want)
				}
			}},
		{"STU3 dose[x] moves into doseAndRate", stu3Record(
			`{"resourceType":"MedicationStatement","id":"m","status":"active","taken":"y","subject":{"reference":"Patient/p"},
			"medicationCodeableConcept":{"text":"Salbutamol"},"dosage":[{"text":"2 puffs","doseQuantity":{"value":2,"unit":"puff"}}]}`),
			func(t *testing.T, res mappers.Result) {
				m := r4(t, res, "MedicationStatement")
				if got := jsonOf(m["dosage"]); got != `[{"doseAndRate":[{"doseQuantity":{"unit":"puff","value":2}}],"text":"2 puffs"}]` {
					t.Errorf("dosage %s", got)
				}
			}},
		{"a vaccination not given is not-done, though GP Connect sends status completed", stu3Record(
			`{"resourceType":"Immunization","id":"i","status":"completed","notGiven":true,"primarySource":true,"date":"2021-03-01",
			"vaccineCode":{"coding":[{"system":"http://snomed.info/sct","code":"1324681000000101"}]},"patient":{"reference":"Patient/p"},
			"explanation":{"reasonNotGiven":[{"text":"Patient declined"}]}}`,
			`{"resourceType":"Immunization","id":"e","status":"entered-in-error","notGiven":true,"primarySource":true,"date":"2021-03-02",
			"vaccineCode":{"text":"Influenza"},"patient":{"reference":"Patient/p"}}`),
			func(t *testing.T, res mappers.Result) {
				statuses := map[string]any{}
				for _, m := range r4All(t, res, "Immunization") {
					statuses[jsonOf(m["occurrenceDateTime"])] = m["status"]
					if m["occurrenceDateTime"] == "2021-03-01" && jsonOf(m["statusReason"]) != `{"text":"Patient declined"}` {
						t.Errorf("statusReason %s", jsonOf(m["statusReason"]))
					}
				}
				if got := jsonOf(statuses); got != `{"\"2021-03-01\"":"not-done","\"2021-03-02\"":"entered-in-error"}` {
					t.Errorf("statuses by date %s", got)
				}
			}},
		{"taken n is status not-taken; GP Connect's unk keeps the status, as information", stu3Record(
			`{"resourceType":"MedicationStatement","id":"n","status":"completed","taken":"n","subject":{"reference":"Patient/p"},
			"medicationCodeableConcept":{"text":"Salbutamol"},"reasonNotTaken":[{"text":"Side effects"}]}`,
			`{"resourceType":"MedicationStatement","id":"u","status":"active","taken":"unk","subject":{"reference":"Patient/p"},
			"medicationCodeableConcept":{"text":"Aspirin"}}`,
			`{"resourceType":"MedicationStatement","id":"e","status":"entered-in-error","taken":"n","subject":{"reference":"Patient/p"},
			"medicationCodeableConcept":{"text":"Ibuprofen"}}`,
			`{"resourceType":"MedicationStatement","id":"a","status":"active","taken":"na","subject":{"reference":"Patient/p"},
			"medicationCodeableConcept":{"text":"Paracetamol"}}`),
			func(t *testing.T, res mappers.Result) {
				got := map[string]string{}
				for _, m := range r4All(t, res, "MedicationStatement") {
					got[jsonOf(m["medicationCodeableConcept"].(map[string]any)["text"])] = fmt.Sprint(m["status"], " ", jsonOf(m["statusReason"]))
				}
				want := `{"\"Aspirin\"":"active null","\"Ibuprofen\"":"entered-in-error null","\"Paracetamol\"":"active null","\"Salbutamol\"":"not-taken [{\"text\":\"Side effects\"}]"}`
				if jsonOf(got) != want {
					t.Errorf("status and reason by medication %s\nwant %s", jsonOf(got), want)
				}
				if is := issuesAt(res, "Bundle.entry[3].resource.taken"); len(is) != 1 || !contains(is, mappers.Information, "leaves the status active") {
					t.Errorf("unk: %v", is)
				}
				if !contains(issuesAt(res, "Bundle.entry[5].resource.taken"), mappers.Warning, "has no taken (na)") {
					t.Errorf("na: %v", res.Issues)
				}
				if errs := validate(t, res); len(errs) > 0 {
					t.Errorf("does not validate: %v", errs)
				}
			}},
		{"codings in STU3 systems R4 moved take their R4 systems; the others and identifiers keep theirs", stu3Record(
			`{"resourceType":"Condition","id":"c","clinicalStatus":"active","subject":{"reference":"Patient/p"},"code":{"text":"Asthma"},
			"category":[{"coding":[{"system":"http://hl7.org/fhir/condition-category","code":"problem-list-item"},
				{"system":"https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-ConditionCategory-1","code":"encounter-diagnosis"}]}],
			"identifier":[{"system":"http://hl7.org/fhir/v2/0203","value":"x1"}]}`,
			`{"resourceType":"Observation","id":"o","status":"final","subject":{"reference":"Patient/p"},
			"category":[{"coding":[{"system":"http://hl7.org/fhir/observation-category","code":"survey"}]}],
			"code":{"coding":[{"system":"http://hl7.org/fhir/v2/0360/2.7","code":"MD"},{"system":"http://hl7.org/fhir/v3/ParticipationType","code":"PPRF"},
				{"system":"http://hl7.org/fhir/administrative-gender","code":"female"},{"system":"http://hl7.org/fhir/no-such-system","code":"x"}]},
			"dataAbsentReason":{"coding":[{"system":"http://hl7.org/fhir/v3/NullFlavor","code":"UNK"}]}}`,
			`{"resourceType":"List","status":"current","mode":"snapshot","subject":{"reference":"Patient/p"},
			"orderedBy":{"coding":[{"system":"http://hl7.org/fhir/list-order","code":"event-date"}]}}`),
			func(t *testing.T, res mappers.Result) {
				c := r4(t, res, "Condition")
				if got := jsonOf(c["category"]); got != `[{"coding":[{"code":"problem-list-item","system":"http://terminology.hl7.org/CodeSystem/condition-category"},{"code":"encounter-diagnosis","system":"http://terminology.hl7.org/CodeSystem/condition-category"}]}]` {
					t.Errorf("Condition.category %s", got)
				}
				if got := jsonOf(c["identifier"]); got != `[{"system":"http://hl7.org/fhir/v2/0203","value":"x1"}]` {
					t.Errorf("Condition.identifier %s", got)
				}
				o := r4(t, res, "Observation")
				if got := jsonOf(o["category"]); got != `[{"coding":[{"code":"survey","system":"http://terminology.hl7.org/CodeSystem/observation-category"}]}]` {
					t.Errorf("Observation.category %s", got)
				}
				want := `{"coding":[{"code":"MD","system":"http://terminology.hl7.org/CodeSystem/v2-0360"},` +
					`{"code":"PPRF","system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType"},` +
					`{"code":"female","system":"http://hl7.org/fhir/administrative-gender"},{"code":"x","system":"http://hl7.org/fhir/no-such-system"}]}`
				if got := jsonOf(o["code"]); got != want {
					t.Errorf("Observation.code %s\nwant %s", got, want)
				}
				if got := jsonOf(o["dataAbsentReason"]); !strings.Contains(got, `"http://terminology.hl7.org/CodeSystem/v3-NullFlavor"`) {
					t.Errorf("Observation.dataAbsentReason %s", got)
				}
				if got := jsonOf(r4(t, res, "List")["orderedBy"]); got != `{"coding":[{"code":"event-date","system":"http://terminology.hl7.org/CodeSystem/list-order"}]}` {
					t.Errorf("List.orderedBy %s", got)
				}
			}},
		{"a repeat prescription is a continuing course of therapy; an ended allergy keeps its end as a note", stu3Record(
			`{"resourceType":"MedicationRequest","id":"m","status":"active","intent":"plan","subject":{"reference":"Patient/p"},
			"medicationCodeableConcept":{"text":"Salbutamol"},"extension":[{"url":"https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-PrescriptionType-1",
			"valueCodeableConcept":{"coding":[{"system":"https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-PrescriptionType-1","code":"repeat","display":"Repeat"}]}}]}`,
			`{"resourceType":"AllergyIntolerance","id":"a","clinicalStatus":"resolved","verificationStatus":"confirmed","patient":{"reference":"Patient/p"},
			"code":{"text":"Penicillin"},"extension":[{"url":"https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-AllergyIntoleranceEnd-1",
			"extension":[{"url":"endDate","valueDateTime":"2023-07-31"},{"url":"reasonEnded","valueString":"No longer reacts"}]}]}`),
			func(t *testing.T, res mappers.Result) {
				m := r4(t, res, "MedicationRequest")
				if got := jsonOf(m["courseOfTherapyType"]); got != `{"coding":[{"code":"continuous","system":"http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy"}],"text":"Repeat"}` {
					t.Errorf("courseOfTherapyType %s", got)
				}
				a := r4(t, res, "AllergyIntolerance")
				if got := jsonOf(a["note"]); got != `[{"text":"Ended 2023-07-31: No longer reacts"}]` {
					t.Errorf("note %s", got)
				}
				if got := jsonOf(a["clinicalStatus"]); !strings.Contains(got, `"resolved"`) {
					t.Errorf("clinicalStatus %s", got)
				}
			}},
		{"no known allergies: an empty list keeps its reason, a 716186003 entry is an allergy record", stu3Record(
			`{"resourceType":"List","status":"current","mode":"snapshot","title":"Active Allergies","subject":{"reference":"Patient/p"},
			"code":{"coding":[{"system":"http://snomed.info/sct","code":"886921000000105","display":"Allergies and adverse reaction"}]},
			"emptyReason":{"coding":[{"system":"https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-ListEmptyReasonCode-1","code":"no-content-recorded","display":"No Content Recorded"}]}}`,
			`{"resourceType":"AllergyIntolerance","id":"nka","clinicalStatus":"active","verificationStatus":"confirmed","patient":{"reference":"Patient/p"},
			"code":{"coding":[{"system":"http://snomed.info/sct","code":"716186003","display":"No known allergy"}]}}`),
			func(t *testing.T, res mappers.Result) {
				l := r4(t, res, "List")
				if got := jsonOf(l["emptyReason"]); !strings.Contains(got, `"no-content-recorded"`) || l["entry"] != nil {
					t.Errorf("emptyReason %s, entries %v", got, l["entry"])
				}
				if got := jsonOf(r4(t, res, "AllergyIntolerance")["code"]); !strings.Contains(got, `"716186003"`) {
					t.Errorf("code %s", got)
				}
				if errs := validate(t, res); len(errs) > 0 {
					t.Errorf("does not validate: %v", errs)
				}
			}},
		{"the same practitioner twice is written once", stu3Record(
			`{"resourceType":"Practitioner","id":"d1","identifier":[{"system":"https://fhir.nhs.uk/Id/sds-user-id","value":"G13579135"}]}`,
			`{"resourceType":"Practitioner","id":"d2","identifier":[{"system":"https://fhir.nhs.uk/Id/sds-user-id","value":"G13579135"}]}`,
			`{"resourceType":"Condition","id":"c","clinicalStatus":"active","code":{"text":"x"},"subject":{"reference":"Patient/p"},"asserter":{"reference":"Practitioner/d2"}}`),
			func(t *testing.T, res mappers.Result) {
				n := 0
				for _, e := range res.Bundle.Entry {
					if e.Resource.ResourceType() == "Practitioner" {
						n++
					}
				}
				if n != 1 {
					t.Errorf("%d Practitioners", n)
				}
				if c := r4(t, res, "Condition"); !strings.Contains(jsonOf(c["asserter"]), "urn:uuid:") {
					t.Errorf("asserter %v", c["asserter"])
				}
			}},
		{"an invalid NHS number is refused", []byte(`{"resourceType":"Patient","id":"x","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9690937287"}]}`),
			func(t *testing.T, res mappers.Result) {
				if got := firstError(res); got != `Bundle.entry[0].resource.identifier: NHS number "9690937287" fails its check digit or is not 10 digits` {
					t.Errorf("got %q", got)
				}
			}},
		{"invalid STU3 is refused where it is invalid", stu3Record(`{"resourceType":"Condition","id":"c","clinicalStatus":"active","subject":{"reference":"Patient/p"},"onsetDateTime":"yesterday"}`),
			func(t *testing.T, res mappers.Result) {
				if got := firstError(res); !strings.HasPrefix(got, "Bundle.entry[2].resource.onsetDateTime: invalid STU3") {
					t.Errorf("got %q", got)
				}
			}},
		{"a modifier extension not understood refuses the record", stu3Record(
			`{"resourceType":"Condition","id":"c","clinicalStatus":"active","code":{"text":"x"},"subject":{"reference":"Patient/p"},"modifierExtension":[{"url":"https://example.org/negated","valueBoolean":true}]}`),
			func(t *testing.T, res mappers.Result) {
				if got := firstError(res); !strings.HasPrefix(got, "Bundle.entry[2].resource.modifierExtension[0]: modifier extension https://example.org/negated is not understood") {
					t.Errorf("got %q", got)
				}
			}},
		{"STU3 XML is refused", []byte(`<Bundle xmlns="http://hl7.org/fhir"><type value="collection"/></Bundle>`),
			func(t *testing.T, res mappers.Result) {
				if got := firstError(res); !strings.Contains(got, "STU3 XML is not supported") {
					t.Errorf("got %q", got)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, im.Import(tc.payload))
		})
	}
}
