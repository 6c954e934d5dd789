package profiles

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"carefhir/profiles/internal/xmljson"
)

// ukCoreServed are the root types of the UK Core examples the server serves.
var ukCoreServed = map[string]bool{
	"Patient": true, "Observation": true, "Appointment": true, "CarePlan": true, "CareTeam": true,
	"QuestionnaireResponse": true, "Questionnaire": true, "Practitioner": true, "PractitionerRole": true,
	"Organization": true, "Location": true, "Bundle": true, "OperationOutcome": true, "Slot": true, "Schedule": true,
}

// ukCoreKnown lists UK Core examples with upstream defects, and why.
var ukCoreKnown = map[string]string{
	"UKCore-Patient-BabyPatient-Example.xml":      "NHS number 9912003890 fails the Modulus 11 check (its check digit would be 6)",
	"UKCore-Bundle-NEWS2Observations-Example.xml": "the 8 entries have relative fullUrls (Observation/<uuid>); Bundle.entry.fullUrl is an absolute URL",
}

// declaredProfile returns the UK Core profile an example illustrates: the
// longest profile name its file name starts with, or for the extension
// examples the UK Core profile of its resource type. The examples carry no
// meta.profile.
func declaredProfile(v *Validator, file, resourceType string) string {
	const base = "https://fhir.hl7.org.uk/StructureDefinition/"
	name := strings.TrimSuffix(file, "-Example.xml")
	if strings.HasPrefix(name, "Extension-") {
		return base + "UKCore-" + resourceType
	}
	best := ""
	for _, u := range v.StructureDefinitions() {
		p, ok := strings.CutPrefix(u, base)
		if ok && strings.HasPrefix(name, p) && len(p) > len(best) && v.StructureDefinition(u).Type == resourceType {
			best = p
		}
	}
	if best == "" {
		return base + "UKCore-" + resourceType
	}
	return base + best
}

// readExample reads an example resource, in JSON or (conv not nil) in XML,
// and returns it as JSON with its resource type.
func readExample(t *testing.T, conv *xmljson.Converter, file string) ([]byte, string) {
	t.Helper()
	js, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if conv != nil {
		if js, err = conv.Convert(js); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	if err := json.Unmarshal(js, &head); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return js, head.ResourceType
}

// TestUKCoreExamples validates every UK Core example against its base
// definition and the profiles it declares: none may have an error, and
// every invariant is evaluated.
func TestUKCoreExamples(t *testing.T) {
	v := validator(t)
	conv, err := xmljson.New()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("../testdata/uk-core/*.xml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	valid, served := 0, 0
	defer func() {
		t.Logf("UK Core examples: %d of %d of a served type valid against their base definition and profile (%d examples in all)", valid, served, len(files))
	}()
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			js, resourceType := readExample(t, conv, f)
			if !ukCoreServed[resourceType] {
				t.Skipf("%s is not served", resourceType)
			}
			profile := declaredProfile(v, name, resourceType)
			if v.StructureDefinition(profile) == nil {
				t.Fatalf("no profile %s", profile)
			}
			issues := v.Validate(context.Background(), js, profile)
			served++
			if !HasErrors(issues) {
				valid++
			}
			for _, is := range notEvaluated(issues) {
				t.Errorf("%s: %s", is.Expression, is.Message)
			}
			errs := errorsOf(issues)
			if reason, ok := ukCoreKnown[name]; ok {
				if len(errs) == 0 {
					t.Errorf("known failure (%s) now passes: remove it from ukCoreKnown", reason)
				}
				return
			}
			for _, is := range errs {
				t.Errorf("%s %s %s: %s (profile %s)", is.Severity, is.Code, is.Expression, is.Message, profile)
			}
		})
	}
}
