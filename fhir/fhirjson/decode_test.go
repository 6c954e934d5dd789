package fhirjson_test

import (
	"errors"
	"strings"
	"testing"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
)

func TestUnmarshalRejects(t *testing.T) {
	deep := `{"resourceType":"Patient","extension":[` + strings.Repeat(`{"url":"http://x","extension":[`, 60) + `{"url":"http://x","valueString":"x"}` + strings.Repeat(`]}`, 60) + `]}`
	tests := []struct {
		name    string
		json    string
		as      string // UnmarshalAs type, or "" for Unmarshal
		path    string
		message string
		syntax  bool
	}{
		{name: "unknown element", json: `{"resourceType":"Patient","foo":1}`, path: "Patient.foo", message: `unknown element "foo"`},
		{name: "unknown nested element", json: `{"resourceType":"Patient","name":[{"family":"x"},{"family":"y","bar":true}]}`, path: "Patient.name[1].bar", message: `unknown element "bar"`},
		{name: "underscore on complex element", json: `{"resourceType":"Patient","_name":[{"id":"x"}]}`, path: "Patient._name", message: "unknown element"},
		{name: "unknown element in primitive extras", json: `{"resourceType":"Patient","_gender":{"foo":"x"}}`, path: "Patient.gender.foo", message: "unknown element"},
		{name: "string for decimal", json: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":"72.5"}}`, path: "Observation.valueQuantity.value", message: "expected a number, got string"},
		{name: "number for string", json: `{"resourceType":"Patient","name":[{"family":7}]}`, path: "Patient.name[0].family", message: "expected a string, got number"},
		{name: "object for array", json: `{"resourceType":"Patient","name":{"family":"x"}}`, path: "Patient.name", message: "expected an array, got object"},
		{name: "string for array", json: `{"resourceType":"Patient","name":[{"given":"x"}]}`, path: "Patient.name[0].given", message: "expected an array, got string"},
		{name: "array for single primitive", json: `{"resourceType":"Patient","gender":["male"]}`, path: "Patient.gender", message: "expected a string, got array"},
		{name: "array for single complex", json: `{"resourceType":"Patient","maritalStatus":[{"text":"x"}]}`, path: "Patient.maritalStatus", message: "expected an object, got array"},
		{name: "string for object", json: `{"resourceType":"Patient","maritalStatus":"married"}`, path: "Patient.maritalStatus", message: "expected an object, got string"},
		{name: "missing resourceType", json: `{"id":"x"}`, path: "", message: `missing "resourceType"`},
		{name: "unknown resourceType", json: `{"resourceType":"Foo","id":"x"}`, path: "", message: `unknown resourceType "Foo"`},
		{name: "resourceType not a string", json: `{"resourceType":1}`, path: "", message: "resourceType must be a string"},
		{name: "mismatched resourceType", json: `{"resourceType":"Patient","id":"x"}`, as: "Observation", path: "", message: `resourceType is "Patient", expected "Observation"`},
		{name: "contained without resourceType", json: `{"resourceType":"Patient","contained":[{"id":"x"}]}`, path: "Patient.contained[0]", message: `missing "resourceType"`},
		{name: "bundle entry of unknown type", json: `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Nope"}}]}`, path: "Bundle.entry[0].resource", message: `unknown resourceType "Nope"`},
		{name: "error inside bundle entry", json: `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","birthDate":"x"}}]}`, path: "Bundle.entry[0].resource.birthDate", message: "invalid date"},
		{name: "root not an object", json: `[{"resourceType":"Patient"}]`, path: "", message: "expected an object, got array"},
		{name: "empty string", json: `{"resourceType":"Patient","gender":""}`, path: "Patient.gender", message: "empty string"},
		{name: "empty element id", json: `{"resourceType":"Patient","name":[{"id":"","family":"x"}]}`, path: "Patient.name[0].id", message: "empty string"},
		{name: "empty object", json: `{"resourceType":"Patient","maritalStatus":{}}`, path: "Patient.maritalStatus", message: "empty object"},
		{name: "empty root object", json: `{}`, path: "", message: "empty object"},
		{name: "empty array", json: `{"resourceType":"Patient","name":[]}`, path: "Patient.name", message: "empty array"},
		{name: "null primitive", json: `{"resourceType":"Patient","gender":null}`, path: "Patient.gender", message: "null is not allowed"},
		{name: "null complex", json: `{"resourceType":"Patient","maritalStatus":null}`, path: "Patient.maritalStatus", message: "null is not allowed"},
		{name: "null in complex array", json: `{"resourceType":"Patient","name":[null]}`, path: "Patient.name[0]", message: "null is not allowed"},
		{name: "null in primitive array without extras", json: `{"resourceType":"Patient","name":[{"given":["a",null]}]}`, path: "Patient.name[0].given[1]", message: "null value without an id or extension"},
		{name: "null in both primitive arrays", json: `{"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,null]}]}`, path: "Patient.name[0].given[1]", message: "null value without an id or extension"},
		{name: "primitive arrays of different lengths", json: `{"resourceType":"Patient","name":[{"given":["a"],"_given":[null,{"id":"x"}]}]}`, path: "Patient.name[0].given", message: "different lengths"},
		{name: "two choice variants", json: `{"resourceType":"Patient","deceasedBoolean":true,"deceasedDateTime":"2020"}`, path: "Patient", message: `more than one value for choice element "deceased[x]"`},
		{name: "choice value and other extras", json: `{"resourceType":"Patient","deceasedBoolean":true,"_deceasedDateTime":{"id":"x"}}`, path: "Patient", message: "deceased[x]"},
		{name: "boolean as string", json: `{"resourceType":"Patient","active":"true"}`, path: "Patient.active", message: "expected a boolean, got string"},
		{name: "integer out of range", json: `{"resourceType":"Patient","multipleBirthInteger":3000000000}`, path: "Patient.multipleBirthInteger", message: "out of 32-bit range"},
		{name: "integer with fraction", json: `{"resourceType":"Patient","multipleBirthInteger":1.5}`, path: "Patient.multipleBirthInteger", message: "invalid integer"},
		{name: "integer with exponent", json: `{"resourceType":"Patient","multipleBirthInteger":1e2}`, path: "Patient.multipleBirthInteger", message: "invalid integer"},
		{name: "integer as string", json: `{"resourceType":"Patient","multipleBirthInteger":"2"}`, path: "Patient.multipleBirthInteger", message: "expected a number, got string"},
		{name: "positiveInt zero", json: `{"resourceType":"Patient","telecom":[{"value":"1","rank":0}]}`, path: "Patient.telecom[0].rank", message: "must be positive"},
		{name: "unsignedInt negative", json: `{"resourceType":"Bundle","type":"searchset","total":-1}`, path: "Bundle.total", message: "must not be negative"},
		{name: "invalid date", json: `{"resourceType":"Patient","birthDate":"1974-13-01"}`, path: "Patient.birthDate", message: `invalid date "1974-13-01"`},
		{name: "date with time", json: `{"resourceType":"Patient","birthDate":"1974-12-25T10:00:00Z"}`, path: "Patient.birthDate", message: "invalid date"},
		{name: "30 February", json: `{"resourceType":"Patient","birthDate":"2024-02-30"}`, path: "Patient.birthDate", message: `invalid date "2024-02-30": 2024-02 has no day 30`},
		{name: "29 February of no leap year", json: `{"resourceType":"Patient","birthDate":"2023-02-29"}`, path: "Patient.birthDate", message: "2023-02 has no day 29"},
		{name: "29 February of 1900", json: `{"resourceType":"Patient","birthDate":"1900-02-29"}`, path: "Patient.birthDate", message: "1900-02 has no day 29"},
		{name: "31 April", json: `{"resourceType":"Patient","birthDate":"2024-04-31"}`, path: "Patient.birthDate", message: "2024-04 has no day 31"},
		{name: "30 February dateTime", json: `{"resourceType":"Patient","deceasedDateTime":"2024-02-30T10:00:00Z"}`, path: "Patient.deceasedDateTime", message: `invalid dateTime "2024-02-30T10:00:00Z": 2024-02 has no day 30`},
		{name: "30 February instant", json: `{"resourceType":"Patient","meta":{"lastUpdated":"2024-02-30T10:00:00.000Z"}}`, path: "Patient.meta.lastUpdated", message: `invalid instant "2024-02-30T10:00:00.000Z"`},
		{name: "hour 24", json: `{"resourceType":"Patient","deceasedDateTime":"2024-02-28T24:00:00Z"}`, path: "Patient.deceasedDateTime", message: "invalid dateTime"},
		{name: "minute 60", json: `{"resourceType":"Patient","deceasedDateTime":"2024-02-28T23:60:00Z"}`, path: "Patient.deceasedDateTime", message: "invalid dateTime"},
		{name: "second 61", json: `{"resourceType":"Patient","deceasedDateTime":"2024-02-28T23:59:61Z"}`, path: "Patient.deceasedDateTime", message: "invalid dateTime"},
		{name: "dateTime without zone", json: `{"resourceType":"Patient","deceasedDateTime":"2020-01-01T10:00:00"}`, path: "Patient.deceasedDateTime", message: "invalid dateTime"},
		{name: "instant without time", json: `{"resourceType":"Patient","meta":{"lastUpdated":"2020-01-01"}}`, path: "Patient.meta.lastUpdated", message: "invalid instant"},
		{name: "invalid time", json: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueTime":"25:00:00"}`, path: "Observation.valueTime", message: "invalid time"},
		{name: "invalid id", json: `{"resourceType":"Patient","id":"a b"}`, path: "Patient.id", message: `invalid id "a b"`},
		{name: "id too long", json: `{"resourceType":"Patient","id":"` + strings.Repeat("a", 65) + `"}`, path: "Patient.id", message: "invalid id"},
		{name: "invalid code", json: `{"resourceType":"Patient","gender":" male"}`, path: "Patient.gender", message: "invalid code"},
		{name: "invalid uri", json: `{"resourceType":"Patient","implicitRules":"http://a b"}`, path: "Patient.implicitRules", message: "invalid uri"},
		{name: "invalid extension url", json: `{"resourceType":"Patient","extension":[{"url":"a b","valueString":"x"}]}`, path: "Patient.extension[0].url", message: "invalid uri"},
		{name: "invalid oid", json: `{"resourceType":"Patient","extension":[{"url":"http://x","valueOid":"1.2.3"}]}`, path: "Patient.extension[0].valueOid", message: "invalid oid"},
		{name: "invalid uuid", json: `{"resourceType":"Patient","extension":[{"url":"http://x","valueUuid":"urn:uuid:ABC"}]}`, path: "Patient.extension[0].valueUuid", message: "invalid uuid"},
		{name: "invalid base64Binary", json: `{"resourceType":"Patient","photo":[{"data":"abc"}]}`, path: "Patient.photo[0].data", message: "invalid base64Binary"},
		{name: "extensions on xhtml", json: `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"/>","_div":{"id":"x"}}}`, path: "Patient.text.div", message: "cannot have an id or extensions"},
		// An xhtml value is what the XML codec reads (narrative.html#xhtml),
		// so that every narrative can be served as XML.
		{name: "HTML entity in xhtml", json: `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">a&nbsp;b</div>"}}`, path: "Patient.text.div", message: "invalid character entity &nbsp;"},
		{name: "XML declaration before the div", json: `{"resourceType":"Patient","text":{"status":"generated","div":"<?xml version=\"1.0\"?><div xmlns=\"http://www.w3.org/1999/xhtml\">a</div>"}}`, path: "Patient.text.div", message: "content outside the div element"},
		{name: "xhtml without namespace", json: `{"resourceType":"Patient","text":{"status":"generated","div":"<div>a</div>"}}`, path: "Patient.text.div", message: "namespace"},
		{name: "xhtml not well-formed", json: `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>a</div>"}}`, path: "Patient.text.div", message: "closed by"},
		{name: "surrogate in xhtml", json: `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">&#xD800;</div>"}}`, path: "Patient.text.div", message: "surrogate"},
		{name: "duplicate key", json: `{"resourceType":"Patient","gender":"male","gender":"female"}`, path: "Patient.gender", message: `duplicate key "gender"`},
		{name: "duplicate resourceType", json: `{"resourceType":"Patient","resourceType":"Patient"}`, path: "Patient.resourceType", message: "duplicate key"},
		{name: "duplicate primitive extras", json: `{"resourceType":"Patient","_gender":{"id":"a"},"_gender":{"id":"b"}}`, path: "Patient._gender", message: "duplicate key"},
		{name: "nesting too deep", json: deep, path: "Patient" + strings.Repeat(".extension[0]", 50), message: "nesting deeper than 100 levels"},
		{name: "trailing data", json: `{"resourceType":"Patient"} {}`, message: "unexpected data after the top-level value", syntax: true},
		{name: "truncated", json: `{"resourceType":"Patient","name":[`, message: "unexpected end of input", syntax: true},
		{name: "missing colon", json: `{"resourceType" "Patient"}`, message: "expected ':'", syntax: true},
		{name: "trailing comma", json: `{"resourceType":"Patient","id":"x",}`, message: "invalid JSON", syntax: true},
		{name: "single quotes", json: `{'resourceType':'Patient'}`, message: "invalid JSON", syntax: true},
		{name: "invalid number", json: `{"resourceType":"Patient","multipleBirthInteger":01}`, message: "invalid JSON", syntax: true},
		{name: "invalid UTF-8", json: "{\"resourceType\":\"Patient\",\"gender\":\"\xff\"}", message: "invalid UTF-8", syntax: true},
		{name: "control character", json: "{\"resourceType\":\"Patient\",\"gender\":\"a\x01\"}", message: "control character", syntax: true},
		{name: "escaped control character", json: `{"resourceType":"Patient","name":[{"text":"a\u0001"}]}`, message: "control character", syntax: true},
		{name: "escaped form feed", json: `{"resourceType":"Patient","name":[{"text":"a\fb"}]}`, message: "control character", syntax: true},
		{name: "noncharacter U+FFFF", json: "{\"resourceType\":\"Patient\",\"gender\":\"a\uffff\"}", message: "noncharacter", syntax: true},
		{name: "escaped noncharacter U+FFFE", json: `{"resourceType":"Patient","name":[{"text":"a\ufffe"}]}`, message: "noncharacter", syntax: true},
		{name: "lone surrogate", json: `{"resourceType":"Patient","gender":"\ud800"}`, message: "surrogate", syntax: true},
		{name: "syntax error in unknown element", json: `{"resourceType":"Patient","foo":[1,}`, message: "invalid JSON", syntax: true},
		{name: "empty input", json: ``, message: "unexpected end of input", syntax: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.as != "" {
				_, err = fhirjson.UnmarshalAs([]byte(tc.json), tc.as)
			} else {
				_, err = fhirjson.Unmarshal([]byte(tc.json))
			}
			var de *fhirjson.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error = %v, want a *DecodeError", err)
			}
			for _, is := range de.Issues {
				if is.Path == tc.path && strings.Contains(is.Message, tc.message) {
					if is.Syntax != tc.syntax {
						t.Errorf("issue %q: Syntax = %v, want %v", is, is.Syntax, tc.syntax)
					}
					return
				}
			}
			t.Errorf("issues = %q, want one at %q containing %q", de.Issues, tc.path, tc.message)
		})
	}
}

func TestUnmarshalReportsEveryIssue(t *testing.T) {
	in := `{"resourceType":"Patient","foo":1,"active":"yes","name":[{"family":"x","given":[1]}],"birthDate":"soon"}`
	_, err := fhirjson.Unmarshal([]byte(in))
	var de *fhirjson.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error = %v, want a *DecodeError", err)
	}
	want := []string{"Patient.foo", "Patient.active", "Patient.name[0].given[0]", "Patient.birthDate"}
	var got []string
	for _, is := range de.Issues {
		got = append(got, is.Path)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("issue paths = %q, want %q", got, want)
	}
	if !strings.Contains(err.Error(), "Patient.birthDate: invalid date") {
		t.Errorf("Error() = %q, want it to list the birthDate issue", err.Error())
	}
}

// A version stored before the decoder checked the calendar, with a day its
// month lacks, still reads and writes back as it was, so it can be served.
func TestUnmarshalStoredKeepsDaylessDate(t *testing.T) {
	in := `{"resourceType":"Patient","birthDate":"2023-02-29"}`
	res, err := fhirjson.UnmarshalStored([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := fhirjson.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Errorf("Marshal = %s, want %s", out, in)
	}
}

func TestUnmarshalAs(t *testing.T) {
	res, err := fhirjson.UnmarshalAs([]byte(`{"resourceType":"Patient","id":"p1"}`), "Patient")
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := res.(*fhir.Patient); !ok || p.GetID() != "p1" {
		t.Errorf("UnmarshalAs = %#v, want *fhir.Patient with id p1", res)
	}
}

// TestUnmarshalValues checks that decoded values land in the right fields.
func TestUnmarshalValues(t *testing.T) {
	in := `{"resourceType":"Patient","id":"p1","_id":{"extension":[{"url":"http://x","valueCode":"c"}]},
		"meta":{"versionId":"3","lastUpdated":"2024-05-01T10:00:00.123+01:00","tag":[{"code":"t"}]},
		"active":true,"multipleBirthInteger":2,"birthDate":"1970","_birthDate":{"id":"bd"},
		"name":[{"given":["a",null,"c"],"_given":[null,{"extension":[{"url":"http://y","valueBoolean":false}]},null]}],
		"contained":[{"resourceType":"Observation","status":"final","code":{"text":"w"},"valueQuantity":{"value":72.50,"unit":"kg"}}],
		"extension":[{"url":"http://z","valueDecimal":1e3}]}`
	res, err := fhirjson.Unmarshal([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	p := res.(*fhir.Patient)
	obs, ok := p.Contained[0].(*fhir.Observation)
	checks := []struct {
		name      string
		got, want any
	}{
		{"id", p.GetID(), "p1"},
		{"id extension", p.Id.Extension[0].ValueCode.Get(), "c"},
		{"versionId", p.GetMeta().VersionId.Get(), "3"},
		{"lastUpdated", p.Meta.LastUpdated.Get(), "2024-05-01T10:00:00.123+01:00"},
		{"tag", p.Meta.Tag[0].Code.Get(), "t"},
		{"active", p.Active.Get(), true},
		{"multipleBirth", p.MultipleBirthInteger.Get(), int64(2)},
		{"birthDate", p.BirthDate.Get(), "1970"},
		{"birthDate id", *p.BirthDate.Id, "bd"},
		{"given count", len(p.Name[0].Given), 3},
		{"given[1] has no value", p.Name[0].Given[1].Value == nil, true},
		{"given[1] extension", p.Name[0].Given[1].Extension[0].Url, "http://y"},
		{"given[2]", p.Name[0].Given[2].Get(), "c"},
		{"contained", ok, true},
		{"decimal text", obs.ValueQuantity.Value.Get(), "72.50"},
		{"exponent text", p.Extension[0].ValueDecimal.Get(), "1e3"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}
