package fhirxml_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/fhir/fhirxml"
)

// patient wraps elements in a Patient root in the FHIR namespace.
func patient(body string) string {
	return `<Patient xmlns="http://hl7.org/fhir">` + body + `</Patient>`
}

func TestUnmarshalRejects(t *testing.T) {
	deep := strings.Repeat(`<extension url="http://x.org/e">`, fhirxml.MaxDepth) +
		`<valueString value="x"/>` + strings.Repeat(`</extension>`, fhirxml.MaxDepth)
	tests := []struct {
		name   string
		input  string
		path   string // of the issue looked for
		msg    string // part of its message
		syntax bool
	}{
		{"unknown element", patient(`<foo value="x"/>`), "Patient.foo", `unknown element "foo"`, false},
		{"unknown nested element", patient(`<name><given value="a"/></name><name><nick value="b"/></name>`), "Patient.name[1].nick", `unknown element "nick"`, false},
		{"unknown attribute", patient(`<active value="true" foo="1"/>`), "Patient.active", `unknown attribute "foo"`, false},
		{"attribute in another namespace", patient(`<active xmlns:x="urn:x" x:foo="1" value="true"/>`), "Patient.active", `unknown attribute "foo" in namespace urn:x`, false},
		{"value on a complex element", patient(`<name value="x"><family value="a"/></name>`), "Patient.name[0]", `unknown attribute "value"`, false},
		{"id attribute on a resource", `<Patient xmlns="http://hl7.org/fhir" id="x"/>`, "Patient", `unknown attribute "id"`, false},
		{"duplicate attribute", patient(`<active value="true" value="false"/>`), "Patient.active", `duplicate attribute "value"`, false},
		{"bad date", patient(`<birthDate value="1974-13-01"/>`), "Patient.birthDate", `invalid date "1974-13-01"`, false},
		{"30 February", patient(`<birthDate value="2024-02-30"/>`), "Patient.birthDate", `invalid date "2024-02-30": 2024-02 has no day 30`, false},
		{"29 February of no leap year", patient(`<birthDate value="2023-02-29"/>`), "Patient.birthDate", "2023-02 has no day 29", false},
		{"31 April dateTime", patient(`<deceasedDateTime value="2024-04-31T10:00:00Z"/>`), "Patient.deceasedDateTime", `invalid dateTime "2024-04-31T10:00:00Z": 2024-04 has no day 31`, false},
		{"30 February instant", patient(`<meta><lastUpdated value="2024-02-30T10:00:00.000Z"/></meta>`), "Patient.meta.lastUpdated", `invalid instant "2024-02-30T10:00:00.000Z"`, false},
		{"bad boolean", patient(`<active value="yes"/>`), "Patient.active", `invalid boolean "yes"`, false},
		{"bad integer", patient(`<multipleBirthInteger value="1.5"/>`), "Patient.multipleBirthInteger", "invalid integer", false},
		{"bad decimal", `<Observation xmlns="http://hl7.org/fhir"><valueQuantity><value value="1,5"/></valueQuantity></Observation>`, "Observation.valueQuantity.value", `invalid decimal "1,5"`, false},
		{"empty value", patient(`<name><given value="a"/><given value=""/></name>`), "Patient.name[0].given[1]", "empty value attribute", false},
		{"primitive with nothing", patient(`<gender/>`), "Patient.gender", "no value attribute, id or extension", false},
		{"empty complex element", patient(`<name/>`), "Patient.name[0]", "empty element", false},
		{"bad extension url", patient(`<extension url="a b"><valueString value="x"/></extension>`), "Patient.extension[0]", "invalid uri", false},
		{"element twice", patient(`<gender value="male"/><gender value="female"/>`), "Patient.gender", "appears more than once", false},
		{"two choice variants", patient(`<deceasedBoolean value="true"/><deceasedDateTime value="2020"/>`), "Patient", `more than one value for choice element "deceased[x]"`, false},
		{"text in a primitive", patient(`<active value="true">yes</active>`), "Patient.active", "text content is not allowed", false},
		{"text in a resource", patient(`hello`), "Patient", "text content is not allowed", false},
		{"CDATA text", patient(`<name><![CDATA[Smith]]></name>`), "Patient.name[0]", "text content is not allowed", false},
		{"no namespace", `<Patient><active value="true"/></Patient>`, "", "not in the FHIR namespace", false},
		{"wrong namespace", `<Patient xmlns="http://hl7.org/fhir/x"/>`, "", "not in the FHIR namespace", false},
		{"child in another namespace", patient(`<x:active xmlns:x="urn:x" value="true"/>`), "Patient.active", "must be in the namespace http://hl7.org/fhir", false},
		{"unknown resource type", `<Foo xmlns="http://hl7.org/fhir"/>`, "", `unknown resource type "Foo"`, false},
		{"div outside XHTML", patient(`<text><status value="generated"/><div>hi</div></text>`), "Patient.text.div", "must be in the namespace http://www.w3.org/1999/xhtml", false},
		{"div with an undeclared prefix", patient(`<text><status value="generated"/><h:div>hi</h:div></text>`), "Patient.text.div", "must be in the namespace http://www.w3.org/1999/xhtml", false},
		{"two contained resources", patient(`<contained><Patient><id value="a"/></Patient><Patient><id value="b"/></Patient></contained>`), "Patient.contained[0]", "more than one resource", false},
		{"empty contained", patient(`<contained/>`), "Patient.contained[0]", "holds no resource", false},
		{"contained unknown type", patient(`<contained><Foo/></contained>`), "Patient.contained[0]", `unknown resource type "Foo"`, false},
		{"error inside a contained resource", patient(`<contained><Organization><name value=""/></Organization></contained>`), "Patient.contained[0].name", "empty value attribute", false},
		{"DOCTYPE", `<?xml version="1.0"?><!DOCTYPE Patient [<!ENTITY x SYSTEM "file:///etc/passwd">]>` + patient(`<id value="&x;"/>`), "", "document type declarations are not allowed", true},
		{"undefined entity", patient(`<id value="&x;"/>`), "", "invalid XML", true},
		{"other encoding", `<?xml version="1.0" encoding="ISO-8859-1"?>` + patient(`<active value="true"/>`), "", "only UTF-8", true},
		{"invalid UTF-8", patient("<id value=\"a\xffb\"/>"), "", "invalid XML", true},
		{"control character", patient("<id value=\"a\x01b\"/>"), "", "invalid XML", true},
		{"unclosed element", patient(`<active value="true">`), "", "invalid XML", true},
		{"mismatched end", `<Patient xmlns="http://hl7.org/fhir"><name></Patient>`, "", "invalid XML", true},
		{"second root", patient(``) + patient(``), "", "second root element", true},
		{"text after root", patient(``) + "x", "", "text after the root element", true},
		{"empty input", ``, "", "no root element", true},
		{"too deep", patient(deep), "Patient" + strings.Repeat(".extension[0]", fhirxml.MaxDepth), "nesting deeper than 100 levels", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := fhirxml.Unmarshal([]byte(tt.input))
			if err == nil {
				t.Fatalf("Unmarshal succeeded: %v", res)
			}
			var de *fhirjson.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T %v, want *fhirjson.DecodeError", err, err)
			}
			for _, is := range de.Issues {
				if is.Path == tt.path && strings.Contains(is.Message, tt.msg) && is.Syntax == tt.syntax {
					return
				}
			}
			t.Errorf("issues %q, want one at %q containing %q (syntax %v)", de.Issues, tt.path, tt.msg, tt.syntax)
		})
	}
}

func TestUnmarshalCollectsEveryIssue(t *testing.T) {
	_, err := fhirxml.Unmarshal([]byte(patient(`<foo/><active value="maybe"/><name><bar/></name>`)))
	var de *fhirjson.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error %v, want *fhirjson.DecodeError", err)
	}
	var got []string
	for _, is := range de.Issues {
		got = append(got, is.Path)
	}
	want := []string{"Patient.foo", "Patient.active", "Patient.name[0].bar"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("issue paths %q, want %q", got, want)
	}
}

func TestUnmarshalAs(t *testing.T) {
	data := []byte(patient(`<id value="p1"/>`))
	if _, err := fhirxml.UnmarshalAs(data, "Patient"); err != nil {
		t.Errorf("UnmarshalAs Patient: %v", err)
	}
	_, err := fhirxml.UnmarshalAs(data, "Observation")
	if err == nil || !strings.Contains(err.Error(), `resourceType is "Patient", expected "Observation"`) {
		t.Errorf("UnmarshalAs Observation: %v", err)
	}
}

func TestUnmarshal(t *testing.T) {
	tests := []struct {
		name  string
		input string
		json  string // the same resource in JSON
	}{
		{
			name: "prolog, comments, BOM and schemaLocation are ignored",
			input: "\xef\xbb\xbf" + `<?xml version="1.0" encoding="UTF-8"?>
<!-- a patient -->
<Patient xmlns="http://hl7.org/fhir" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://hl7.org/fhir patient.xsd">
  <!-- its id --><id value="p1"/>
  <active value="true"/>
</Patient>
<!-- done -->`,
			json: `{"resourceType":"Patient","id":"p1","active":true}`,
		},
		{
			name:  "decimals keep their text",
			input: `<Observation xmlns="http://hl7.org/fhir"><status value="final"/><code><text value="w"/></code><valueQuantity><value value="72.50"/><unit value="kg"/></valueQuantity></Observation>`,
			json:  `{"resourceType":"Observation","status":"final","code":{"text":"w"},"valueQuantity":{"value":72.50,"unit":"kg"}}`,
		},
		{
			name:  "element ids, primitive extensions and repeated primitives",
			input: patient(`<name id="n1"><given value="a"/><given id="g2"><extension url="http://x.org/e"><valueCode value="c"/></extension></given><given value="c"/></name><birthDate id="b" value="1970"/>`),
			json:  `{"resourceType":"Patient","name":[{"id":"n1","given":["a",null,"c"],"_given":[null,{"id":"g2","extension":[{"url":"http://x.org/e","valueCode":"c"}]},null]}],"birthDate":"1970","_birthDate":{"id":"b"}}`,
		},
		{
			name:  "element order is not significant",
			input: patient(`<gender value="male"/><id value="p1"/>`),
			json:  `{"resourceType":"Patient","id":"p1","gender":"male"}`,
		},
		{
			name:  "attribute escapes and white space",
			input: patient(`<name><text value="a &amp; &lt;b&gt; &quot;c&quot;&#10;d&#9;e"/></name>`),
			json:  `{"resourceType":"Patient","name":[{"text":"a & <b> \"c\"\nd\te"}]}`,
		},
		{
			// XML 1.0 §3.3.3: white space written as such in an attribute
			// value is a space; only a character reference is a line break.
			name:  "attribute values are normalised",
			input: patient("<name><text value=\"a\nb\tc\r\nd&#10;e\"/></name><?pi it's?><gender value=\"male\"/>"),
			json:  `{"resourceType":"Patient","name":[{"text":"a b c d\ne"}],"gender":"male"}`,
		},
		{
			name:  "attribute values in the narrative are normalised",
			input: patient("<text><status value=\"generated\"/><div xmlns=\"http://www.w3.org/1999/xhtml\"><p title=\"a\r\nb\">x\ny</p></div></text>"),
			json:  `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p title=\"a b\">x\ny</p></div>"}}`,
		},
		{
			name:  "narrative div is kept as written",
			input: patient(`<text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p class="x">a &amp; <b>b</b><!-- c --></p>` + "\r\n" + `<br/></div></text>`),
			json:  `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p class=\"x\">a &amp; <b>b</b><!-- c --></p>\n<br/></div>"}}`,
		},
		{
			name:  "contained resources",
			input: patient(`<contained><Organization><id value="o"/><name value="GP"/></Organization></contained><managingOrganization><reference value="#o"/></managingOrganization>`),
			json:  `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","name":"GP"}],"managingOrganization":{"reference":"#o"}}`,
		},
		{
			name:  "bundle entries",
			input: `<Bundle xmlns="http://hl7.org/fhir"><type value="collection"/><entry><fullUrl value="urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"/><resource><Patient><active value="true"/></Patient></resource></entry></Bundle>`,
			json:  `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0","resource":{"resourceType":"Patient","active":true}}]}`,
		},
		{
			name:  "parameters",
			input: `<Parameters xmlns="http://hl7.org/fhir"><parameter><name value="resource"/><resource><Patient><id value="p"/></Patient></resource></parameter><parameter><name value="mode"/><valueCode value="create"/></parameter></Parameters>`,
			json:  `{"resourceType":"Parameters","parameter":[{"name":"resource","resource":{"resourceType":"Patient","id":"p"}},{"name":"mode","valueCode":"create"}]}`,
		},
		{
			name:  "an empty resource",
			input: `<Patient xmlns="http://hl7.org/fhir"/>`,
			json:  `{"resourceType":"Patient"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := fhirxml.Unmarshal([]byte(tt.input))
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			want := canonicalJSON(t, []byte(tt.json))
			if got := mustJSON(t, res); !bytes.Equal(got, want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
			out, err := fhirxml.Marshal(res)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			back, err := fhirxml.Unmarshal(out)
			if err != nil {
				t.Fatalf("Unmarshal(Marshal): %v\n%s", err, out)
			}
			if got := mustJSON(t, back); !bytes.Equal(got, want) {
				t.Errorf("after Marshal %s\ngot  %s\nwant %s", out, got, want)
			}
		})
	}
}

func TestMarshal(t *testing.T) {
	p := &fhir.Patient{
		Id:        fhir.NewId("p1"),
		Active:    fhir.NewBoolean(true),
		Name:      []*fhir.HumanName{{Family: fhir.NewString(`O"Brien & <co>`), Given: []*fhir.String{fhir.NewString("a\nb")}}},
		BirthDate: &fhir.Date{Id: fhir.NewId("b").Value},
	}
	out, err := fhirxml.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	want := `<Patient xmlns="http://hl7.org/fhir"><id value="p1"/><active value="true"/>` +
		`<name><family value="O&quot;Brien &amp; &lt;co&gt;"/><given value="a&#10;b"/></name>` +
		`<birthDate id="b"/></Patient>`
	if string(out) != want {
		t.Errorf("Marshal:\n got %s\nwant %s", out, want)
	}
}

func TestMarshalRejects(t *testing.T) {
	narrative := func(div string) *fhir.Patient {
		return &fhir.Patient{Text: &fhir.Narrative{Status: fhir.NewCode("generated"), Div: fhir.NewXhtml(div)}}
	}
	tests := []struct {
		name string
		res  fhir.Resource
		msg  string
	}{
		{"nil resource", nil, "fhirxml: marshal: not a resource"},
		{"nil pointer", (*fhir.Patient)(nil), "not a resource"},
		{"invalid primitive", &fhir.Patient{BirthDate: fhir.NewDate("yesterday")}, `Patient.birthDate: invalid date "yesterday"`},
		{"two choice variants", &fhir.Patient{DeceasedBoolean: fhir.NewBoolean(true), DeceasedDateTime: fhir.NewDateTime("2020")}, "more than one value for choice element"},
		{"control character", &fhir.Patient{Name: []*fhir.HumanName{{Text: fhir.NewString("a\x01")}}}, "Patient.name[0].text: value holds the character U+0001"},
		{"invalid UTF-8", &fhir.Patient{Name: []*fhir.HumanName{{Text: fhir.NewString("a\xff")}}}, "not valid UTF-8"},
		{"bad extension url", &fhir.Patient{Extension: []*fhir.Extension{{Url: "a b", ValueString: fhir.NewString("x")}}}, "Patient.extension[0]: url: invalid uri"},
		{"div without namespace", narrative(`<div>x</div>`), "Patient.text.div: not a well-formed XHTML div"},
		{"div not a div", narrative(`<p xmlns="http://www.w3.org/1999/xhtml">x</p>`), "not a well-formed XHTML div"},
		{"div not well-formed", narrative(`<div xmlns="http://www.w3.org/1999/xhtml"><p>x</div>`), "not a well-formed XHTML div"},
		{"div with trailing text", narrative(`<div xmlns="http://www.w3.org/1999/xhtml">x</div>y`), "not a well-formed XHTML div"},
		{"div with DOCTYPE", narrative(`<!DOCTYPE div><div xmlns="http://www.w3.org/1999/xhtml">x</div>`), "not a well-formed XHTML div"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := fhirxml.Marshal(tt.res)
			if err == nil {
				t.Fatalf("Marshal succeeded: %s", out)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q, want it to contain %q", err, tt.msg)
			}
		})
	}
}
