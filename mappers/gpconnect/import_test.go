package gpconnect

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"carefhir/fhir/fhirjson"
	"carefhir/mappers"
	"carefhir/profiles"
)

var validator = sync.OnceValues(func() (*profiles.Validator, error) {
	return profiles.New(profiles.Options{})
})

var importer = sync.OnceValues(NewImporter)

// fixture reads a payload from testdata, without the Jekyll template
// lines the specification's examples are wrapped in.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		switch strings.TrimSpace(string(line)) {
		case "{% highlight json %}", "{% endhighlight %}":
			continue
		}
		out = append(out, line)
	}
	return bytes.Join(out, []byte("\n"))
}

// ukCoreProfile returns the UK Core profile of typ, if UK Core has one.
func ukCoreProfile(v *profiles.Validator, typ string) []string {
	u := "https://fhir.hl7.org.uk/StructureDefinition/UKCore-" + typ
	if v.StructureDefinition(u) != nil {
		return []string{u}
	}
	return nil
}

// validate checks every resource of an imported Bundle against R4 and
// UK Core and returns the errors.
func validate(t *testing.T, res mappers.Result) []string {
	t.Helper()
	v, err := validator()
	if err != nil {
		t.Fatal(err)
	}
	var errs []string
	for i, e := range res.Bundle.Entry {
		data, err := fhirjson.Marshal(e.Resource)
		if err != nil {
			t.Fatal(err)
		}
		for _, is := range v.Validate(context.Background(), data, ukCoreProfile(v, e.Resource.ResourceType())...) {
			if is.Severity == "error" || is.Severity == "fatal" {
				errs = append(errs, e.Request.Url.Get()+" entry "+string(rune('0'+i%10))+": "+is.Expression+": "+is.Message)
			}
		}
	}
	return errs
}

func TestSurvey(t *testing.T) {
	im, err := importer()
	if err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir("testdata", func(p string, d fs.DirEntry, err error) error {
		if d.IsDir() || strings.HasSuffix(p, ".md") {
			return nil
		}
		name := strings.TrimPrefix(p, "testdata/")
		res := im.Import(fixture(t, name))
		if res.Failed() {
			var first []string
			for _, is := range res.Issues {
				if is.Severity == mappers.Error && len(first) < 3 {
					first = append(first, is.String())
				}
			}
			t.Logf("REFUSED %s: %s", name, strings.Join(first, " | "))
			return nil
		}
		errs := validate(t, res)
		t.Logf("IMPORTED %s: %d entries, %d issues, %d validation errors", name, len(res.Bundle.Entry), len(res.Issues), len(errs))
		for i, e := range errs {
			if i < 8 {
				t.Logf("    %s", e)
			}
		}
		return nil
	})
}
