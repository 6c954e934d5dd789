// Package mapperstest checks import results in the tests of the mapper
// packages: every resource an import writes must validate against R4 and
// the UK Core profile of its type.
package mapperstest

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/mappers"
	"carefhir/profiles"
)

var (
	once      sync.Once
	validator *profiles.Validator
	loadErr   error
)

// Validator returns the UK Core validator, built once per test binary.
func Validator(t testing.TB) *profiles.Validator {
	t.Helper()
	once.Do(func() { validator, loadErr = profiles.New(profiles.Options{}) })
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return validator
}

// ukCore are the profiles the resources imports write are checked
// against.
var ukCore = map[string]string{
	"Patient":      mappers.UKCorePatient,
	"Organization": mappers.UKCoreOrganization,
	"Practitioner": mappers.UKCorePractitioner,
	"Observation":  mappers.UKCoreObservation,
	"Condition":    mappers.UKCoreCondition,
	"Flag":         mappers.UKCoreFlag,
}

// Problems returns what is wrong with an import's Bundle: a transaction
// whose every entry has a urn:uuid full URL, a conditional request and a
// resource that encodes and validates with no error against R4 and the UK
// Core profile of its type, where one is bundled. Each problem is prefixed with the entry's
// position.
func Problems(t testing.TB, b *fhir.Bundle) []string {
	t.Helper()
	v := Validator(t)
	var out []string
	if b.Type.Get() != "transaction" {
		out = append(out, "Bundle.type is "+b.Type.Get())
	}
	for i, e := range b.Entry {
		at := "entry[" + strconv.Itoa(i) + "]"
		if !strings.HasPrefix(e.FullUrl.Get(), "urn:uuid:") {
			out = append(out, at+": fullUrl "+e.FullUrl.Get()+" is not a urn:uuid")
		}
		if e.Request == nil || !strings.Contains(e.Request.Url.Get()+e.Request.IfNoneExist.Get(), "identifier=") {
			out = append(out, at+": the request is not conditional on an identifier")
		}
		data, err := fhirjson.Marshal(e.Resource)
		if err != nil {
			out = append(out, at+": "+err.Error())
			continue
		}
		var profs []string
		// Only the profiles bundled: one named and not known is an error,
		// and UK Core's Condition and Flag are not bundled.
		if p, ok := ukCore[e.Resource.ResourceType()]; ok && v.StructureDefinition(p) != nil {
			profs = append(profs, p)
		}
		for _, is := range v.Validate(context.Background(), data, profs...) {
			if is.Severity == "error" || is.Severity == "fatal" {
				out = append(out, at+": "+is.Expression+": "+is.Message)
			}
		}
	}
	return out
}
