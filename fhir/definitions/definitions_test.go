package definitions

import (
	"testing"
	"testing/fstest"
)

func TestDecodeJSON(t *testing.T) {
	var compartment struct{ ResourceType, Code string }
	if err := DecodeJSON(FS, "compartmentdefinition-patient.json", &compartment); err != nil {
		t.Fatal(err)
	}
	if compartment.ResourceType != "CompartmentDefinition" || compartment.Code != "Patient" {
		t.Errorf("compartment = %+v", compartment)
	}
	var bundle struct {
		Entry []struct{ Resource struct{ ResourceType string } }
	}
	if err := DecodeJSON(FS, "search-parameters.json.gz", &bundle); err != nil {
		t.Fatal(err)
	}
	if len(bundle.Entry) < 1000 || bundle.Entry[0].Resource.ResourceType != "SearchParameter" {
		t.Errorf("search parameters: %d entries", len(bundle.Entry))
	}
	bad := fstest.MapFS{"x.json.gz": {Data: []byte("not gzip")}, "y.json": {Data: []byte("{")}}
	for _, name := range []string{"x.json.gz", "y.json", "missing.json"} {
		if err := DecodeJSON(bad, name, &bundle); err == nil {
			t.Errorf("DecodeJSON(%s) succeeded", name)
		}
	}
}
