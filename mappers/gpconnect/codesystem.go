package gpconnect

import (
	"fmt"
	"strings"

	"carefhir/fhir/definitions"
	"carefhir/profiles/conformance"
)

// STU3 published HL7's code systems under http://hl7.org/fhir/. R4 moved
// most of them to http://terminology.hl7.org/CodeSystem/ (the v2 tables as
// v2-NNNN, the v3 code systems as v3-Name) and kept the others where they
// were (administrative-gender). A coding carried with its STU3 system is
// found by no search on the R4 system and matches no R4 or UK Core
// binding.
const (
	stu3CodeSystems = "http://hl7.org/fhir/"
	r4CodeSystems   = "http://terminology.hl7.org/CodeSystem/"
	// careConnectConditionCategory is CareConnect's copy of the STU3
	// condition categories; UK Core binds Condition.category to R4's.
	careConnectConditionCategory = "https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-ConditionCategory-1"
)

// codeSystems holds the canonical URLs of the CodeSystems R4 defines.
type codeSystems map[string]bool

// r4CodeSystemURLs reads the URLs of the R4 CodeSystems bundled with
// carefhir.
func r4CodeSystemURLs() (codeSystems, error) {
	const name = "r4-terminology.json.gz"
	var b struct {
		Entry []struct {
			Resource struct {
				ResourceType string `json:"resourceType"`
				URL          string `json:"url"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := definitions.DecodeJSON(conformance.FS, name, &b); err != nil {
		return nil, fmt.Errorf("gpconnect: R4 code systems: %w", err)
	}
	cs := codeSystems{}
	for _, e := range b.Entry {
		if e.Resource.ResourceType == "CodeSystem" {
			cs[e.Resource.URL] = true
		}
	}
	return cs, nil
}

// r4 returns the R4 URL of the STU3 code system of a coding of code.
func (cs codeSystems) r4(system, code string) string {
	if system == careConnectConditionCategory && (code == "problem-list-item" || code == "encounter-diagnosis") {
		return r4CodeSystems + "condition-category"
	}
	id, ok := strings.CutPrefix(system, stu3CodeSystems)
	if !ok {
		return system
	}
	if table, ok := strings.CutPrefix(id, "v2/"); ok {
		// v2/0443, or v2/0360/2.7 for a table of one version.
		table, _, _ = strings.Cut(table, "/")
		if len(table) == 4 && digits(table) == 4 {
			return r4CodeSystems + "v2-" + table
		}
		return system
	}
	if name, ok := strings.CutPrefix(id, "v3/"); ok {
		if alphanumeric(name) {
			return r4CodeSystems + "v3-" + name
		}
		return system
	}
	if cs[r4CodeSystems+id] && !cs[system] {
		return r4CodeSystems + id
	}
	return system
}

func alphanumeric(s string) bool {
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return false
		}
	}
	return s != ""
}
