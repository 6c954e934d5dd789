package main

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"carefhir/profiles"
)

// profileRequirements is the repeatable --require-profile flag: by resource
// type, the canonical URLs of the profiles every resource of that type must
// conform to. Each value is Type=URL. It implements flag.Value.
type profileRequirements map[string][]string

func (p *profileRequirements) String() string {
	if p == nil {
		return ""
	}
	var out []string
	for _, typ := range slices.Sorted(maps.Keys(*p)) {
		for _, url := range (*p)[typ] {
			out = append(out, typ+"="+url)
		}
	}
	return strings.Join(out, " ")
}

func (p *profileRequirements) Set(s string) error {
	typ, url, ok := strings.Cut(s, "=")
	if !ok || typ == "" || url == "" {
		return errors.New("want Type=URL, such as Patient=https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient")
	}
	if *p == nil {
		*p = profileRequirements{}
	}
	(*p)[typ] = append((*p)[typ], url)
	return nil
}

// checkRequiredProfiles reports each required profile that v does not know
// or that constrains another resource type than the one it is required of.
func checkRequiredProfiles(v *profiles.Validator, required profileRequirements) error {
	var errs []error
	for _, typ := range slices.Sorted(maps.Keys(required)) {
		for _, url := range required[typ] {
			switch sd := v.StructureDefinition(url); {
			case sd == nil:
				errs = append(errs, fmt.Errorf("serve: --require-profile %s=%s: no such profile is bundled", typ, url))
			case sd.Type != typ:
				errs = append(errs, fmt.Errorf("serve: --require-profile %s=%s: the profile is for %s, not %s", typ, url, sd.Type, typ))
			}
		}
	}
	if len(errs) > 0 {
		return &usageError{err: errors.Join(errs...)}
	}
	return nil
}
