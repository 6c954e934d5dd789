package server_test

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"testing"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/mappers"
	mcsv "carefhir/mappers/csv"
	"carefhir/mappers/hl7v2"
	"carefhir/mappers/pds"
	"carefhir/profiles"
	"carefhir/server"
)

// importBundles maps a few payloads of each format the mappers read, as
// transaction Bundles.
func importBundles(t *testing.T) (names []string, bundles []string) {
	t.Helper()
	add := func(name string, r mappers.Result) {
		if r.Bundle == nil {
			t.Fatalf("%s refused: %v", name, r.Issues)
		}
		js, err := fhirjson.Marshal(r.Bundle)
		if err != nil {
			t.Fatal(err)
		}
		names, bundles = append(names, name), append(bundles, string(js))
	}
	read := func(name string) []byte {
		data, err := os.ReadFile("../mappers/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	for _, f := range []string{"uk/A28-register.hl7", "uk/A31-update-escapes.hl7", "uk/A40-merge.hl7"} {
		add(f, hl7v2.Import(read("hl7v2/testdata/"+f)).Result)
	}
	for _, f := range []string{"sandbox-mocks/Patient.json", "karate-stubs/searchResponses/fuzzy_multimatch_searchset.json", "sandbox-mocks/Sensitive_Patient.json"} {
		add(f, pds.Import(read("pds/testdata/"+f)))
	}
	m, err := mcsv.Layout("emis-patient-list")
	if err != nil {
		t.Fatal(err)
	}
	im, err := mcsv.NewImporter(strings.NewReader(string(read("csv/testdata/synthetic/emis-patient-list.csv"))), m, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; ; i++ {
		r, err := im.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		add(fmt.Sprintf("emis-patient-list.csv batch %d", i), *r)
	}
	return names, bundles
}

// TestMapperImports posts the Bundles the HL7 v2, PDS and CSV importers
// make to the transaction endpoint, with every write validated against UK
// Core where it has a profile of the type (no UK Core Condition is
// bundled), twice: each is accepted, and the second round changes no count,
// since every write is conditional on an identifier the source owns.
func TestMapperImports(t *testing.T) {
	v, err := profiles.New(profiles.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const ukcore = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-"
	required := map[string][]string{}
	for _, typ := range []string{"Patient", "Organization", "Practitioner", "Observation", "Condition"} {
		if v.StructureDefinition(ukcore+typ) != nil {
			required[typ] = []string{ukcore + typ}
		}
	}
	if len(required) != 4 {
		t.Fatalf("UK Core profiles bundled: %v", required)
	}
	names, bundles := importBundles(t)
	eachEngine(t, func(t *testing.T, c *client) {
		counts := func() string {
			var s []string
			for _, typ := range []string{"Patient", "Organization", "Practitioner", "Observation", "Condition"} {
				s = append(s, fmt.Sprintf("%s=%v", typ, c.do("GET", "/"+typ+"?_summary=count", "").want(t, 200).json(t)["total"]))
			}
			return strings.Join(s, " ")
		}
		// 4 HL7 v2 patients (one merged away) and 22 from PDS; the CSV
		// rows update the four HL7 v2 patients, whose NHS numbers they share.
		const want = "Patient=26 Organization=3 Practitioner=2 Observation=3 Condition=2"
		for round := 1; round <= 2; round++ {
			for i, b := range bundles {
				if r := c.do("POST", "", b); r.status != 200 {
					t.Fatalf("round %d, %s: %d %s", round, names[i], r.status, truncate(r.body))
				}
				if names[i] == "uk/A40-merge.hl7" {
					checkMerged(t, c)
				}
			}
			if got := counts(); got != want {
				t.Errorf("after round %d: %s, want %s", round, got, want)
			}
		}
	}, func(cfg *server.Config) {
		cfg.Validator, cfg.ValidateWrites, cfg.RequiredProfiles = v, true, required
	})
}

// checkMerged checks the record A40-merge.hl7 merged away: inactive, and
// linked to the survivor by a reference the transaction resolved.
func checkMerged(t *testing.T, c *client) {
	t.Helper()
	found := c.do("GET", "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000042", "").want(t, 200).json(t)
	entries, _ := found["entry"].([]any)
	if len(entries) != 1 {
		t.Fatalf("%d records with the merged NHS number", len(entries))
	}
	p := entries[0].(map[string]any)["resource"].(map[string]any)
	links, _ := p["link"].([]any)
	if p["active"] != false || len(links) != 1 {
		t.Fatalf("the merged record is %v", p)
	}
	link := links[0].(map[string]any)
	ref, _ := link["other"].(map[string]any)["reference"].(string)
	if link["type"] != "replaced-by" || !strings.HasPrefix(ref, "Patient/") {
		t.Errorf("the merged record's link is %v", link)
	}
	survivor := c.do("GET", "/"+ref, "").want(t, 200).json(t)
	if fmt.Sprint(survivor["identifier"]) == "" || !strings.Contains(fmt.Sprint(survivor["link"]), "replaces") {
		t.Errorf("the survivor %s is %v", ref, survivor)
	}
}

// TestMapperConditionalWritesEscapeIdentifiers posts a transaction of the
// mappers' conditional writes keyed on identifiers holding what a token
// search gives a meaning to (',', '|', '$', '\'): each matches its own
// identifier alone, so a record holding another identifier, here one
// whose value is what follows the comma, is left as it was.
func TestMapperConditionalWritesEscapeIdentifiers(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		bystander, _ := c.do("POST", "/Organization", `{"resourceType":"Organization","name":"Bystander","identifier":[{"system":"urn:other","value":"B"}]}`).want(t, 201).json(t)["id"].(string)
		tx := mappers.NewTransaction()
		for _, v := range []string{`A,B`, `C|D`, `E$F`, `G\H`} {
			for _, sys := range []string{"urn:local", "urn:ensured"} {
				org := &fhir.Organization{Name: fhir.NewString(sys + " " + v), Identifier: []*fhir.Identifier{{System: fhir.NewUri(sys), Value: fhir.NewString(v)}}}
				if sys == "urn:local" {
					tx.Put(org, sys, v)
				} else {
					tx.Ensure(org, sys, v)
				}
			}
		}
		js, err := fhirjson.Marshal(tx.Bundle())
		if err != nil {
			t.Fatal(err)
		}
		for round := 1; round <= 2; round++ {
			c.do("POST", "", string(js)).want(t, 200)
			if got := c.do("GET", "/Organization?_summary=count", "").want(t, 200).json(t)["total"]; got != float64(9) {
				t.Errorf("round %d: %v Organizations, want the bystander and 8 imported", round, got)
			}
			for _, v := range []string{`A\,B`, `C\|D`, `E\$F`, `G\\H`} {
				for _, sys := range []string{"urn:local", "urn:ensured"} {
					if got := c.do("GET", "/Organization?_summary=count&identifier="+url.QueryEscape(sys+"|"+v), "").want(t, 200).json(t)["total"]; got != float64(1) {
						t.Errorf("round %d: %s|%s held by %v Organizations, want 1", round, sys, v, got)
					}
				}
			}
			if got := c.do("GET", "/Organization/"+bystander, "").want(t, 200).json(t)["name"]; got != "Bystander" {
				t.Errorf("round %d: the bystander is now named %v", round, got)
			}
		}
	})
}
