package profiles

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The R4 vital signs profiles (https://hl7.org/fhir/R4/observation-vitalsigns.html),
// vendored in conformance/r4-vitalsigns.json.gz.
const (
	bpProfile       = "http://hl7.org/fhir/StructureDefinition/bp"
	bodyTempProfile = "http://hl7.org/fhir/StructureDefinition/bodytemp"
)

// Parts of a blood pressure Observation valid against bp, which the cases
// of TestVitalSigns replace.
const (
	bpMeta      = `"meta":{"profile":["` + bpProfile + `"]},`
	bpCategory  = `"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],`
	bpCode      = `"code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},`
	bpSystolic  = `{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},`
	bpDiastolic = `{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}`
	bpValid     = `{"resourceType":"Observation",` + bpMeta + `"status":"final",` + bpCategory + bpCode +
		`"subject":{"reference":"Patient/1"},"effectiveDateTime":"2024-05-01T09:30:00Z",` +
		`"component":[` + bpSystolic + bpDiastolic + `]}`
	bodyTempValid = `{"resourceType":"Observation","meta":{"profile":["` + bodyTempProfile + `"]},"status":"final",` + bpCategory +
		`"code":{"coding":[{"system":"http://loinc.org","code":"8310-5"}]},` +
		`"subject":{"reference":"Patient/1"},"effectiveDateTime":"2024-05-01T09:30:00Z",` +
		`"valueQuantity":{"value":36.8,"unit":"Cel","system":"http://unitsofmeasure.org","code":"Cel"}}`
)

// TestVitalSigns checks that an Observation claiming a vital signs profile
// is validated against it (and one naming it as the profile to check, as
// $validate?profile= does): valid ones pass, and each way of breaking bp
// or bodytemp is reported at its element.
func TestVitalSigns(t *testing.T) {
	v := validator(t)
	for _, p := range []string{"vitalsigns", "bp", "bodytemp", "heartrate", "resprate", "oxygensat", "bodyheight", "bodyweight", "headcircum", "bmi", "vitalspanel"} {
		if v.StructureDefinition("http://hl7.org/fhir/StructureDefinition/"+p) == nil {
			t.Errorf("the vital signs profile %s is not loaded", p)
		}
	}
	for _, js := range []string{bpValid, bodyTempValid} {
		if errs := errorsOf(v.Validate(context.Background(), []byte(js))); len(errs) > 0 {
			t.Errorf("valid vital signs Observation rejected:%s\n%s", show(errs), js)
		}
	}
	tests := []struct {
		name     string
		valid    string // the valid resource the case changes
		old, new string // the change
		profile  string // the profile to check, besides those claimed
		// want is the location of each error, in the validator's order.
		want []string
		// words holds a word each error's message has, in the same order.
		words []string
	}{
		{"no systolic component", bpValid, bpSystolic, "", "",
			[]string{"Observation.component", "Observation.component"}, []string{"minimum required = 2", "SystolicBP"}},
		{"no diastolic component", bpValid, "," + bpDiastolic, "", "",
			[]string{"Observation.component", "Observation.component"}, []string{"minimum required = 2", "DiastolicBP"}},
		{"not a blood pressure code", bpValid, `"85354-9"`, `"8310-5"`, "",
			[]string{"Observation.code.coding"}, []string{"BPCode"}},
		{"no vital signs category", bpValid, bpCategory, "", "",
			[]string{"Observation.category", "Observation.category"}, []string{"Observation.category:", "VSCat"}},
		{"systolic not in mm[Hg]", bpValid, `"value":120,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"`, `"value":16,"unit":"kPa","system":"http://unitsofmeasure.org","code":"kPa"`, "",
			[]string{"Observation.component[0].value.ofType(Quantity).code", "Observation.component[0].value.ofType(Quantity)"}, []string{"mm[Hg]", "ucum-vitals-common"}},
		{"a value on the panel", bpValid, `"component":[`, `"valueQuantity":{"value":120,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"},"component":[`, "",
			[]string{"Observation.value.ofType(Quantity)"}, []string{"valueQuantity: max allowed = 0"}},
		{"profile named, not claimed", bpValid, bpMeta + `"status":"final",` + bpCategory, `"status":"final",`, bpProfile,
			[]string{"Observation.category", "Observation.category"}, []string{"Observation.category:", "VSCat"}},
		{"body temperature in kelvin", bodyTempValid, `"value":36.8,"unit":"Cel","system":"http://unitsofmeasure.org","code":"Cel"`, `"value":310,"unit":"K","system":"http://unitsofmeasure.org","code":"K"`, "",
			[]string{"Observation.value.ofType(Quantity).code"}, []string{"ucum-bodytemp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js := strings.Replace(tt.valid, tt.old, tt.new, 1)
			if js == tt.valid {
				t.Fatalf("the change %q is not in the resource", tt.old)
			}
			var profiles []string
			if tt.profile != "" {
				profiles = append(profiles, tt.profile)
			}
			errs := errorsOf(v.Validate(context.Background(), []byte(js), profiles...))
			var got []string
			for _, is := range errs {
				got = append(got, is.Expression)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("errors at %q, want %q:%s", got, tt.want, show(errs))
			}
			for i, is := range errs {
				if !strings.Contains(is.Message, tt.words[i]) {
					t.Errorf("error %d: %q does not say %q", i, is.Message, tt.words[i])
				}
			}
		})
	}
	// Without the claim, the same resource is a valid Observation: the
	// errors above come from the vital signs profiles.
	js := strings.Replace(bpValid, bpMeta+`"status":"final",`+bpCategory, `"status":"final",`, 1)
	if errs := errorsOf(v.Validate(context.Background(), []byte(js))); len(errs) > 0 {
		t.Errorf("an Observation claiming no profile rejected:%s", show(errs))
	}
}

// TestR4VitalSignsExamples validates the R4 vital signs examples, which
// claim only vitalsigns, against the profile of the vital sign each
// records: all conform.
func TestR4VitalSignsExamples(t *testing.T) {
	v := validator(t)
	for file, profile := range map[string]string{
		"Observation-blood-pressure.json":        "bp",
		"Observation-blood-pressure-dar.json":    "bp",
		"Observation-blood-pressure-cancel.json": "bp",
		"Observation-bmi.json":                   "bmi",
		"Observation-body-height.json":           "bodyheight",
		"Observation-body-length.json":           "bodyheight",
		"Observation-body-temperature.json":      "bodytemp",
		"Observation-head-circumference.json":    "headcircum",
		"Observation-heart-rate.json":            "heartrate",
		"Observation-respiratory-rate.json":      "resprate",
		"Observation-satO2.json":                 "oxygensat",
		"Observation-vitals-panel.json":          "vitalspanel",
	} {
		t.Run(file, func(t *testing.T) {
			js, err := os.ReadFile(filepath.Join("../testdata/r4-examples", file))
			if err != nil {
				t.Fatal(err)
			}
			url := "http://hl7.org/fhir/StructureDefinition/" + profile
			if v.StructureDefinition(url) == nil {
				t.Fatalf("%s is not loaded", url)
			}
			if errs := errorsOf(v.Validate(context.Background(), js, url)); len(errs) > 0 {
				t.Errorf("invalid against %s:%s", profile, show(errs))
			}
		})
	}
}
