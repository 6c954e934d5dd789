package xmljson

import (
	"encoding/json"
	"testing"
)

// TestConvertKeepsInvalidInput keeps what is wrong in an instance visible
// to validation instead of repairing it.
func TestConvertKeepsInvalidInput(t *testing.T) {
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		xml  string
		key  string
		want string
	}{
		{"single element written twice becomes an array", `<Patient xmlns="http://hl7.org/fhir"><gender value="male"/><gender value="female"/></Patient>`, "gender", `["male","female"]`},
		{"repeating element stays an array", `<Patient xmlns="http://hl7.org/fhir"><name><family value="a"/></name></Patient>`, "name", `[{"family":"a"}]`},
		{"boolean", `<Patient xmlns="http://hl7.org/fhir"><active value="false"/></Patient>`, "active", `false`},
		{"boolean that is not one stays text", `<Patient xmlns="http://hl7.org/fhir"><active value="yes"/></Patient>`, "active", `"yes"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js, err := c.Convert([]byte(tt.xml))
			if err != nil {
				t.Fatal(err)
			}
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(js, &obj); err != nil {
				t.Fatal(err)
			}
			var got, want any
			if err := json.Unmarshal(obj[tt.key], &got); err != nil {
				t.Fatalf("%s: %v in %s", tt.key, err, js)
			}
			json.Unmarshal([]byte(tt.want), &want)
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(want)
			if string(g) != string(w) {
				t.Errorf("%s = %s, want %s", tt.key, g, w)
			}
		})
	}
}
