package fhirjson_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"github.com/google/fhir/go/jsonformat/errorreporter"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"carefhir/fhir/fhirjson"
	"carefhir/fhir/fhirxml"
)

// ukCoreDir holds the UK Core examples, authored upstream as XML only.
const ukCoreDir = "../../testdata/uk-core"

// oracle returns google/fhir's R4 JSON parser, an implementation of the R4
// JSON format independent of ours. It validates while parsing (primitive
// formats, required elements, reference targets). Unmarshaller is safe for
// concurrent use once built.
var oracle = sync.OnceValue(func() *jsonformat.Unmarshaller {
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		panic(err)
	}
	return u
})

// oracleRefuses lists the examples the oracle itself refuses, with the
// reason judged against the R4 spec. None of them is a JSON format problem:
// the oracle also checks reference targets, cardinality and URI syntax, which
// the format leaves to validation. These examples are still compared, with
// the oracle's validation errors required to be the same for the input and
// for our output; an entry whose example the oracle comes to accept fails, so
// the list cannot go stale.
var oracleRefuses = map[string]string{
	// Observation.performer allows Reference(Practitioner | PractitionerRole |
	// Organization | CareTeam | Patient | RelatedPerson); the example refers to
	// an Encounter. Valid JSON, not valid against the resource definition.
	"Observation-clinical-gender.json": "performer refers to an Encounter",
	// Questionnaire.item.linkId is 1..1; the example's nested display items
	// have none. Valid JSON, not valid against the resource definition.
	"Questionnaire-qs1.json": "nested items lack the required linkId",
	// Bundle.link.url is a uri, whose R4 regex is \S* (datatypes.html#uri);
	// the upstream example's "https://[base]/AllergyIntolerance?..." is one,
	// though not an RFC 3986 URI (the brackets are an IPv6 literal's). The
	// oracle checks RFC 3986; ours keeps it as R4 allows.
	"UKCore-Bundle-Sn-NoAllergyData-Example.xml": "link url https://[base]/... is no RFC 3986 URI",
}

// oracleParse parses doc with the oracle and returns the resource with the
// validation errors it reported apart; err is a parse error.
func oracleParse(doc []byte) (proto.Message, []string, error) {
	er := errorreporter.NewBasicErrorReporter()
	m, err := oracle().UnmarshalWithErrorReporter(doc, er)
	var invalid []string
	for _, e := range er.Errors {
		invalid = append(invalid, (*e).Error())
	}
	return m, invalid, err
}

// oracleRoundTrip parses doc with the oracle, decodes and re-encodes it with
// fhirjson, parses that output with the oracle and requires both protos to be
// equal, so that no element is lost, added or changed by our codec. refused
// is the reason the oracle refuses doc, "" when it accepts it.
func oracleRoundTrip(t *testing.T, doc []byte, refused string) {
	t.Helper()
	want, wantInvalid, err := oracleParse(doc)
	if err != nil {
		t.Fatalf("oracle cannot parse the input: %v", err)
	}
	switch {
	case refused == "" && len(wantInvalid) > 0:
		t.Fatalf("oracle refuses the input: %s", strings.Join(wantInvalid, "; "))
	case refused != "" && len(wantInvalid) == 0:
		t.Fatalf("oracle accepts the input, listed as refused (%s): drop the entry", refused)
	case refused != "":
		t.Logf("oracle refuses the input (%s): %s and %d more", refused, wantInvalid[0], len(wantInvalid)-1)
	}
	res, err := fhirjson.Unmarshal(doc)
	if err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	out, err := fhirjson.Marshal(res)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	got, gotInvalid, err := oracleParse(out)
	if err != nil {
		t.Fatalf("oracle cannot parse our output: %v\n%s", err, out)
	}
	if !slices.Equal(gotInvalid, wantInvalid) {
		t.Errorf("oracle's validation errors differ:\n ours: %q\ninput: %q", gotInvalid, wantInvalid)
	}
	if !proto.Equal(want, got) {
		t.Errorf("our round trip changes the resource (-input +ours):\n%s",
			cmp.Diff(want, got, protocmp.Transform()))
	}
}

// eachOracleFile runs oracleRoundTrip on every file matching pattern in dir,
// one parallel subtest each, after turning its contents into JSON with toJSON.
func eachOracleFile(t *testing.T, dir, pattern string, toJSON func(t *testing.T, data []byte) []byte) {
	files, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples in %s: %v", dir, err)
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			oracleRoundTrip(t, toJSON(t, data), oracleRefuses[name])
		})
	}
}

func TestOracleRoundTripR4Examples(t *testing.T) {
	eachOracleFile(t, examplesDir, "*.json", func(_ *testing.T, data []byte) []byte { return data })
}

// TestOracleRoundTripUKCore checks the UK Core examples. They exist only as
// XML, so each is read with fhirxml and written with fhirjson first; the
// oracle then judges that JSON as it judges the official JSON examples.
func TestOracleRoundTripUKCore(t *testing.T) {
	eachOracleFile(t, ukCoreDir, "*.xml", func(t *testing.T, data []byte) []byte {
		res, err := fhirxml.Unmarshal(data)
		if err != nil {
			t.Fatalf("fhirxml.Unmarshal: %v", err)
		}
		doc, err := fhirjson.Marshal(res)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		return doc
	})
}
