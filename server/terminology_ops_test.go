package server_test

import (
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"carefhir/profiles"
	"carefhir/server"
	"carefhir/store"
)

// expansion returns the codes of an $expand answer and its total.
func expansion(t *testing.T, r *response) (codes []string, total float64) {
	t.Helper()
	vs := r.want(t, http.StatusOK).json(t)
	if str(vs, "resourceType") != "ValueSet" || get(vs, "compose") != nil {
		t.Fatalf("not an expanded ValueSet without its compose: %s", truncate(r.body))
	}
	contains, _ := get(vs, "expansion", "contains").([]any)
	for _, c := range contains {
		codes = append(codes, str(c, "code"))
	}
	total, _ = get(vs, "expansion", "total").(float64)
	return codes, total
}

// param returns the named parameter of a Parameters answer, or nil.
func param(res map[string]any, name string) map[string]any {
	ps, _ := res["parameter"].([]any)
	for _, p := range ps {
		if m, _ := p.(map[string]any); str(m, "name") == name {
			return m
		}
	}
	return nil
}

func TestTerminologyExpand(t *testing.T) {
	gender := "/ValueSet/$expand?url=" + url.QueryEscape(genderVS)
	eachEngine(t, func(t *testing.T, c *client) {
		tests := []struct {
			name, method, path, body string
			codes                    []string
			total                    float64
		}{
			{"by url", "GET", gender, "", []string{"female", "male", "other", "unknown"}, 4},
			{"filter", "GET", gender + "&filter=fem", "", []string{"female"}, 1},
			{"count", "GET", gender + "&count=2", "", []string{"female", "male"}, 4},
			{"count and offset", "GET", gender + "&count=2&offset=3", "", []string{"unknown"}, 4},
			{"instance", "GET", "/ValueSet/administrative-gender/$expand?filter=unk", "", []string{"unknown"}, 1},
			{"POST Parameters", "POST", "/ValueSet/$expand", `{"resourceType":"Parameters","parameter":[
				{"name":"url","valueUri":"` + genderVS + `"},{"name":"count","valueInteger":1},{"name":"offset","valueInteger":1}]}`, []string{"male"}, 4},
			{"version", "GET", gender + "&valueSetVersion=4.0.1&count=0", "", nil, 4},
			{"inline ValueSet", "POST", "/ValueSet/$expand", `{"resourceType":"Parameters","parameter":[{"name":"valueSet","resource":
				{"resourceType":"ValueSet","status":"draft","compose":{"include":[{"system":"` + genderCS + `","concept":[{"code":"other"}]}]}}}]}`, []string{"other"}, 1},
			{"large value set paged", "GET", "/ValueSet/$expand?url=" + url.QueryEscape("http://hl7.org/fhir/ValueSet/c80-doc-typecodes") + "&count=3", "", nil, -1},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				codes, total := expansion(t, c.do(tt.method, tt.path, tt.body))
				if tt.total < 0 {
					if len(codes) != 3 || total < 1000 {
						t.Errorf("codes %v of %v", codes, total)
					}
					return
				}
				if !slices.Equal(codes, tt.codes) || total != tt.total {
					t.Errorf("codes %v of %v, want %v of %v", codes, total, tt.codes, tt.total)
				}
			})
		}

		// A stored ValueSet, expanded by id and by url.
		stored := `{"resourceType":"ValueSet","url":"http://example.org/fhir/ValueSet/binary-gender","status":"draft",
			"compose":{"include":[{"system":"` + genderCS + `","concept":[{"code":"female"},{"code":"male"}]}]}}`
		id := str(c.create("ValueSet", stored), "id")
		for _, path := range []string{"/ValueSet/" + id + "/$expand", "/ValueSet/$expand?url=" + url.QueryEscape("http://example.org/fhir/ValueSet/binary-gender")} {
			if codes, _ := expansion(t, c.do("GET", path, "")); !slices.Equal(codes, []string{"female", "male"}) {
				t.Errorf("%s: %v", path, codes)
			}
		}

		errs := []struct {
			name, path string
			status     int
			code, expr string
		}{
			{"no url", "/ValueSet/$expand", http.StatusBadRequest, "required", "url"},
			{"unknown url", "/ValueSet/$expand?url=http://example.org/none", http.StatusNotFound, "not-found", "url"},
			{"unknown version", gender + "&valueSetVersion=1.0", http.StatusNotFound, "not-found", "url"},
			{"unknown instance", "/ValueSet/none/$expand", http.StatusNotFound, "not-found", ""},
			{"bad count", gender + "&count=-1", http.StatusBadRequest, "invalid", "count"},
			{"too large", "/ValueSet/$expand?url=" + url.QueryEscape("http://hl7.org/fhir/ValueSet/c80-doc-typecodes"), http.StatusUnprocessableEntity, "too-costly", ""},
			{"external code system", "/ValueSet/$expand?url=" + url.QueryEscape("http://hl7.org/fhir/ValueSet/condition-code"), http.StatusUnprocessableEntity, "not-supported", ""},
			{"not on CodeSystem", "/CodeSystem/$expand?url=" + url.QueryEscape(genderVS), http.StatusNotFound, "not-supported", ""},
		}
		for _, tt := range errs {
			t.Run(tt.name, func(t *testing.T) {
				c.do("GET", tt.path, "").want(t, tt.status).outcome(t, tt.code, termAt(tt.expr))
			})
		}
	}, withValidator(false), withDefinitions)
}

// wantValidation checks a $validate-code answer: its result, its display
// and its message, which contains message (none when message is "").
func wantValidation(t *testing.T, r *response, result bool, display, message string) {
	t.Helper()
	res := r.want(t, http.StatusOK).json(t)
	if str(res, "resourceType") != "Parameters" || get(param(res, "result"), "valueBoolean") != result {
		t.Fatalf("want result %v: %v", result, res)
	}
	if got := str(param(res, "display"), "valueString"); got != display {
		t.Errorf("display %q, want %q", got, display)
	}
	if got := str(param(res, "message"), "valueString"); !strings.Contains(got, message) || (message == "") != (got == "") {
		t.Errorf("message %q, want one containing %q", got, message)
	}
}

func TestTerminologyValidateCode(t *testing.T) {
	base := "/ValueSet/$validate-code?url=" + url.QueryEscape(genderVS) + "&system=" + url.QueryEscape(genderCS)
	eachEngine(t, func(t *testing.T, c *client) {
		tests := []struct {
			name, method, path, body string
			result                   bool
			display, message         string
		}{
			{"valid code", "GET", base + "&code=female", "", true, "Female", ""},
			{"code with context, without system", "GET", "/ValueSet/$validate-code?url=" + url.QueryEscape(genderVS) + "&code=male&context=Patient.gender", "", true, "Male", ""},
			{"instance", "GET", "/ValueSet/administrative-gender/$validate-code?code=other&system=" + url.QueryEscape(genderCS), "", true, "Other", ""},
			{"unknown code", "GET", base + "&code=f", "", false, "", "not in the value set"},
			{"other system", "GET", "/ValueSet/$validate-code?url=" + url.QueryEscape(genderVS) + "&system=http://example.org&code=female", "", false, "", "not in the value set"},
			{"wrong display", "GET", base + "&code=female&display=Male", "", false, "Female", "display"},
			{"display case ignored", "GET", base + "&code=female&display=FEMALE", "", true, "Female", ""},
			{"coding", "POST", "/ValueSet/$validate-code", `{"resourceType":"Parameters","parameter":[{"name":"url","valueUri":"` + genderVS + `"},
				{"name":"coding","valueCoding":{"system":"` + genderCS + `","code":"unknown"}}]}`, true, "Unknown", ""},
			{"codeableConcept", "POST", "/ValueSet/$validate-code", `{"resourceType":"Parameters","parameter":[{"name":"url","valueUri":"` + genderVS + `"},
				{"name":"codeableConcept","valueCodeableConcept":{"coding":[{"system":"http://example.org","code":"x"},{"system":"` + genderCS + `","code":"male"}]}}]}`, true, "Male", ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				wantValidation(t, c.do(tt.method, tt.path, tt.body), tt.result, tt.display, tt.message)
			})
		}
		c.do("GET", "/ValueSet/$validate-code?url="+url.QueryEscape(genderVS), "").want(t, http.StatusBadRequest).outcome(t, "required", termAt("code"))
		c.do("GET", "/ValueSet/$validate-code?url="+url.QueryEscape(genderVS)+"&code=male", "").want(t, http.StatusBadRequest).outcome(t, "required", termAt("system"))
		c.do("POST", "/ValueSet/$validate-code", `{"resourceType":"Parameters","parameter":[{"name":"url","valueUri":"`+genderVS+`"},
			{"name":"code","valueCode":"male"},{"name":"system","valueUri":"`+genderCS+`"},
			{"name":"coding","valueCoding":{"system":"`+genderCS+`","code":"female"}}]}`).want(t, http.StatusBadRequest).outcome(t, "invalid", termAt("code"))
		c.do("POST", "/ValueSet/$validate-code", `{"resourceType":"Parameters","parameter":[{"name":"url","valueUri":"`+genderVS+`"},
			{"name":"coding","valueCoding":{"system":"`+genderCS+`","code":"female"}},
			{"name":"codeableConcept","valueCodeableConcept":{"coding":[{"system":"`+genderCS+`","code":"female"}]}}]}`).want(t, http.StatusBadRequest).outcome(t, "invalid", termAt("coding"))
		c.do("GET", "/ValueSet/$validate-code?url=http://example.org/none&code=x", "").want(t, http.StatusNotFound).outcome(t, "not-found", termAt("url"))
		c.do("GET", "/ValueSet/$validate-code?url="+url.QueryEscape("http://hl7.org/fhir/ValueSet/condition-code")+"&system=http://snomed.info/sct&code=x", "").want(t, http.StatusUnprocessableEntity).outcome(t, "not-supported", "")
		// SNOMED CT is not bundled, but a LOINC code is outside a value set of SNOMED CT codes.
		res := c.do("GET", "/ValueSet/$validate-code?url="+url.QueryEscape("http://hl7.org/fhir/ValueSet/condition-code")+"&system=http://loinc.org&code=x", "").want(t, http.StatusOK).json(t)
		if get(param(res, "result"), "valueBoolean") != false {
			t.Errorf("a LOINC code in a value set of SNOMED CT codes: %v", res)
		}
		c.do("POST", "/ValueSet/$validate-code", `{"resourceType":"Patient"}`).want(t, http.StatusBadRequest).outcome(t, "invalid", "")
	}, withValidator(false), withDefinitions)
}

func TestTerminologyLookup(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		res := c.do("GET", "/CodeSystem/$lookup?system="+url.QueryEscape(genderCS)+"&code=female", "").want(t, http.StatusOK).json(t)
		for name, want := range map[string]string{"name": "AdministrativeGender", "version": "4.0.1", "display": "Female"} {
			if got := str(param(res, name), "valueString"); got != want {
				t.Errorf("%s %q, want %q", name, got, want)
			}
		}
		// issue-type nests its codes: structure is a kind of invalid.
		res = c.do("POST", "/CodeSystem/$lookup", `{"resourceType":"Parameters","parameter":[
			{"name":"coding","valueCoding":{"system":"http://hl7.org/fhir/issue-type","code":"structure"}}]}`).want(t, http.StatusOK).json(t)
		prop := param(res, "property")
		if str(param(res, "display"), "valueString") != "Structural Issue" || str(get(prop, "part", 0), "valueCode") != "parent" || str(get(prop, "part", 1), "valueCode") != "invalid" {
			t.Errorf("lookup of issue-type#structure: %v", res)
		}
		res = c.do("GET", "/CodeSystem/$lookup?system=http://hl7.org/fhir/issue-type&code=invalid&property=child", "").want(t, http.StatusOK).json(t)
		if p := param(res, "property"); str(get(p, "part", 0), "valueCode") != "child" {
			t.Errorf("property=child: %v", res)
		}

		// definition is a property of every code system.
		const defined = "http://example.org/fhir/CodeSystem/defined"
		c.create("CodeSystem", `{"resourceType":"CodeSystem","url":"`+defined+`","status":"draft","content":"complete",
			"concept":[{"code":"p","display":"Parent","definition":"The top.","concept":[{"code":"c","display":"Child"}]}]}`)
		for _, query := range []string{"", "&property=definition"} {
			res = c.do("GET", "/CodeSystem/$lookup?system="+defined+"&code=p"+query, "").want(t, http.StatusOK).json(t)
			if p := param(res, "property"); str(get(p, "part", 0), "valueCode") != "definition" || str(get(p, "part", 1), "valueString") != "The top." {
				t.Errorf("lookup of p%s: %v", query, res)
			}
		}
		res = c.do("GET", "/CodeSystem/$lookup?system="+defined+"&code=p&property=child", "").want(t, http.StatusOK).json(t)
		if p := param(res, "property"); str(get(p, "part", 0), "valueCode") != "child" {
			t.Errorf("lookup of p, property=child: %v", res)
		}

		// A stored CodeSystem.
		c.create("CodeSystem", `{"resourceType":"CodeSystem","url":"http://example.org/fhir/CodeSystem/tiers","name":"Tiers","status":"draft","content":"complete",
			"concept":[{"code":"1","display":"Tier one","designation":[{"language":"cy","value":"Haen un"}]}]}`)
		res = c.do("GET", "/CodeSystem/$lookup?system=http://example.org/fhir/CodeSystem/tiers&code=1", "").want(t, http.StatusOK).json(t)
		if str(param(res, "name"), "valueString") != "Tiers" || str(get(param(res, "designation"), "part", 1), "valueString") != "Haen un" {
			t.Errorf("stored CodeSystem: %v", res)
		}

		// displayLanguage picks the display among the designations.
		c.create("CodeSystem", probeCodeSystem)
		for lang, want := range map[string]string{"": "Alpha", "de": "Alfa-de", "fr-CA": "Alfa-fr", "en": "Alpha"} {
			res := c.do("GET", "/CodeSystem/$lookup?system="+url.QueryEscape(probeCS)+"&code=A&displayLanguage="+lang, "").want(t, http.StatusOK).json(t)
			if got := str(param(res, "display"), "valueString"); got != want {
				t.Errorf("displayLanguage %q: display %q, want %q", lang, got, want)
			}
		}

		// SNOMED CT is bundled as a definition without its codes.
		d := c.do("GET", "/CodeSystem/$lookup?system=http://snomed.info/sct&code=27113001", "").want(t, http.StatusUnprocessableEntity).outcome(t, "not-supported", "")
		if !strings.Contains(d, "code system not available here") || strings.Contains(d, "value set") {
			t.Errorf("SNOMED CT lookup: %q", d)
		}

		errs := []struct {
			name, path string
			status     int
			code, expr string
		}{
			{"no code", "/CodeSystem/$lookup?system=" + url.QueryEscape(genderCS), http.StatusBadRequest, "required", "code"},
			{"no system", "/CodeSystem/$lookup?code=female", http.StatusBadRequest, "required", "system"},
			{"coding in the query string", "/CodeSystem/$lookup?coding=" + url.QueryEscape(genderCS+"|female"), http.StatusBadRequest, "invalid", "coding"},
			{"unknown system", "/CodeSystem/$lookup?system=http://example.org/none&code=x", http.StatusNotFound, "not-found", "system"},
			{"unknown version", "/CodeSystem/$lookup?system=" + url.QueryEscape(genderCS) + "&version=3.0&code=female", http.StatusNotFound, "not-found", "system"},
			{"unknown code", "/CodeSystem/$lookup?system=" + url.QueryEscape(genderCS) + "&code=f", http.StatusNotFound, "not-found", "code"},
			{"on an instance", "/CodeSystem/administrative-gender/$lookup?code=female", http.StatusNotFound, "not-supported", ""},
		}
		for _, tt := range errs {
			t.Run(tt.name, func(t *testing.T) {
				c.do("GET", tt.path, "").want(t, tt.status).outcome(t, tt.code, termAt(tt.expr))
			})
		}

		ops := map[string][]string{}
		resources, _ := get(c.do("GET", "/metadata", "").want(t, http.StatusOK).json(t), "rest", 0, "resource").([]any)
		for _, r := range resources {
			list, _ := get(r, "operation").([]any)
			for _, op := range list {
				ops[str(r, "type")] = append(ops[str(r, "type")], str(op, "name"))
			}
		}
		for typ, want := range map[string][]string{"ValueSet": {"expand", "validate-code"}, "CodeSystem": {"lookup"}} {
			for _, op := range want {
				if !slices.Contains(ops[typ], op) {
					t.Errorf("CapabilityStatement does not list $%s on %s: %v", op, typ, ops[typ])
				}
			}
		}
		if slices.Contains(ops["Patient"], "expand") {
			t.Errorf("CapabilityStatement lists $expand on Patient")
		}
	}, withValidator(false), withDefinitions)
}

// The probe CodeSystem: A has designations in German and French, B is
// inactive by property, C retired by status, D deprecated but active.
const (
	probeCS         = "http://example.org/cs/probe"
	probeCodeSystem = `{"resourceType":"CodeSystem","url":"` + probeCS + `","version":"1","name":"Probe","status":"active","content":"complete",
		"property":[{"code":"inactive","type":"boolean"},{"code":"status","type":"code"}],
		"concept":[
			{"code":"A","display":"Alpha","designation":[{"language":"de","value":"Alfa-de"},
				{"language":"fr","use":{"system":"http://terminology.hl7.org/CodeSystem/designation-usage","code":"display"},"value":"Alfa-fr"}]},
			{"code":"B","display":"Bravo","property":[{"code":"inactive","valueBoolean":true}]},
			{"code":"C","display":"Charlie","property":[{"code":"status","valueCode":"retired"}]},
			{"code":"D","display":"Delta","property":[{"code":"status","valueCode":"deprecated"}]}]}`
)

// storeProbe stores the probe CodeSystem and ValueSets over it: probe
// (the whole system), probe-active (compose.inactive false) and
// probe-listed (A, with a Welsh designation, and B).
func storeProbe(c *client) {
	c.create("CodeSystem", probeCodeSystem)
	for name, compose := range map[string]string{
		"probe":        `{"include":[{"system":"` + probeCS + `"}]}`,
		"probe-active": `{"inactive":false,"include":[{"system":"` + probeCS + `"}]}`,
		"probe-listed": `{"include":[{"system":"` + probeCS + `","concept":[{"code":"A","designation":[{"language":"cy","value":"Alffa"}]},{"code":"B"}]}]}`,
	} {
		c.create("ValueSet", `{"resourceType":"ValueSet","url":"http://example.org/vs/`+name+`","status":"active","compose":`+compose+`}`)
	}
}

func TestTerminologyExpandInactiveAndLanguages(t *testing.T) {
	expand := func(c *client, query string) map[string]any {
		t.Helper()
		return c.do("GET", "/ValueSet/$expand?"+query, "").want(t, http.StatusOK).json(t)
	}
	// entries describes each contains: code, then "inactive", the display
	// and the languages of the designations, as they are there.
	entries := func(vs map[string]any) []string {
		var out []string
		contains, _ := get(vs, "expansion", "contains").([]any)
		for _, c := range contains {
			e := str(c, "code")
			if get(c, "inactive") == true {
				e += " inactive"
			}
			e += " " + str(c, "display")
			des, _ := get(c, "designation").([]any)
			for _, d := range des {
				e += " " + str(d, "language") + ":" + str(d, "value")
				if code := str(d, "use", "code"); code != "" {
					e += "(" + code + ")"
				}
			}
			out = append(out, e)
		}
		return out
	}
	parameters := func(vs map[string]any) map[string]any {
		out := map[string]any{}
		ps, _ := get(vs, "expansion", "parameter").([]any)
		for _, p := range ps {
			for k, v := range p.(map[string]any) {
				if k != "name" {
					out[str(p, "name")] = v
				}
			}
		}
		return out
	}
	eachEngine(t, func(t *testing.T, c *client) {
		storeProbe(c)
		probe := "url=" + url.QueryEscape("http://example.org/vs/probe")
		tests := []struct {
			name, query string
			entries     []string
			params      map[string]any
		}{
			{"inactive marked", probe, []string{"A Alpha", "B inactive Bravo", "C inactive Charlie", "D Delta"}, map[string]any{}},
			{"activeOnly", probe + "&activeOnly=true", []string{"A Alpha", "D Delta"}, map[string]any{"activeOnly": true}},
			{"activeOnly false", probe + "&activeOnly=false", []string{"A Alpha", "B inactive Bravo", "C inactive Charlie", "D Delta"}, map[string]any{"activeOnly": false}},
			{"includeDesignations", probe + "&includeDesignations=true&count=1", []string{"A Alpha de:Alfa-de fr:Alfa-fr(display)"},
				map[string]any{"includeDesignations": true, "count": 1.0}},
			{"displayLanguage", probe + "&displayLanguage=de", []string{"A Alfa-de", "B inactive Bravo", "C inactive Charlie", "D Delta"}, map[string]any{"displayLanguage": "de"}},
			{"displayLanguage by primary subtag", probe + "&displayLanguage=fr-CA&count=1", []string{"A Alfa-fr"}, map[string]any{"displayLanguage": "fr-CA", "count": 1.0}},
			{"compose.inactive false", "url=" + url.QueryEscape("http://example.org/vs/probe-active"), []string{"A Alpha", "D Delta"}, map[string]any{}},
			{"compose.inactive false over activeOnly false", "url=" + url.QueryEscape("http://example.org/vs/probe-active") + "&activeOnly=false",
				[]string{"A Alpha", "D Delta"}, map[string]any{"activeOnly": false}},
			{"listed concepts", "url=" + url.QueryEscape("http://example.org/vs/probe-listed") + "&includeDesignations=true",
				[]string{"A Alpha cy:Alffa de:Alfa-de fr:Alfa-fr(display)", "B inactive Bravo"}, map[string]any{"includeDesignations": true}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				vs := expand(c, tt.query)
				if got := entries(vs); !slices.Equal(got, tt.entries) {
					t.Errorf("contains %q, want %q", got, tt.entries)
				}
				params := parameters(vs)
				delete(params, "offset")
				if !reflect.DeepEqual(params, tt.params) {
					t.Errorf("parameters %v, want %v", params, tt.params)
				}
			})
		}

		vs := c.do("POST", "/ValueSet/$expand", `{"resourceType":"Parameters","parameter":[{"name":"url","valueUri":"http://example.org/vs/probe"},
			{"name":"activeOnly","valueBoolean":true},{"name":"displayLanguage","valueCode":"de"}]}`).want(t, http.StatusOK).json(t)
		if got, want := entries(vs), []string{"A Alfa-de", "D Delta"}; !slices.Equal(got, want) {
			t.Errorf("POST: contains %q, want %q", got, want)
		}
		c.do("GET", "/ValueSet/$expand?"+probe+"&activeOnly=yes", "").want(t, http.StatusBadRequest).outcome(t, "invalid", termAt("activeOnly"))

		// The bundled v3 NullFlavor has a retired code, NP.
		nullFlavor := "url=" + url.QueryEscape("http://terminology.hl7.org/ValueSet/v3-NullFlavor")
		var inactive []string
		for _, e := range entries(expand(c, nullFlavor)) {
			if strings.Contains(e, " inactive ") {
				inactive = append(inactive, e)
			}
		}
		if !slices.Equal(inactive, []string{"NP inactive not present"}) {
			t.Errorf("v3-NullFlavor inactive codes %q", inactive)
		}
		codes, total := expansion(t, c.do("GET", "/ValueSet/$expand?"+nullFlavor+"&activeOnly=true", ""))
		if slices.Contains(codes, "NP") || int(total) != len(codes) || total < 10 {
			t.Errorf("v3-NullFlavor activeOnly: %v of %v", codes, total)
		}
	}, withValidator(false), withDefinitions)
}

func TestTerminologyValidateCodeDisplaysAndVersions(t *testing.T) {
	base := "/ValueSet/$validate-code?url=" + url.QueryEscape("http://example.org/vs/probe") + "&system=" + url.QueryEscape(probeCS)
	coding := func(parameter string) string {
		return `{"resourceType":"Parameters","parameter":[{"name":"url","valueUri":"http://example.org/vs/probe"},` + parameter + `]}`
	}
	eachEngine(t, func(t *testing.T, c *client) {
		storeProbe(c)
		tests := []struct {
			name, method, path, body string
			result                   bool
			display, message         string
		}{
			{"designation as display", "GET", base + "&code=A&display=Alfa-de", "", true, "Alpha", ""},
			{"designation of another language, case aside", "GET", base + "&code=A&display=ALFA-FR&displayLanguage=de", "", true, "Alfa-de", ""},
			{"displayLanguage", "GET", base + "&code=A&displayLanguage=de", "", true, "Alfa-de", ""},
			{"displayLanguage without a designation", "GET", base + "&code=D&displayLanguage=de", "", true, "Delta", ""},
			{"wrong display", "GET", base + "&code=A&display=Bravo", "", false, "Alpha", `the display "Bravo"`},
			{"systemVersion held", "GET", base + "&code=A&systemVersion=1", "", true, "Alpha", ""},
			{"systemVersion unknown", "GET", base + "&code=A&systemVersion=9", "", false, "", `version "9" of the code system ` + probeCS},
			{"coding version unknown", "POST", "/ValueSet/$validate-code",
				coding(`{"name":"coding","valueCoding":{"system":"` + probeCS + `","version":"2","code":"A"}}`), false, "", `version "2" of the code system`},
			{"coding without a system", "POST", "/ValueSet/$validate-code", coding(`{"name":"coding","valueCoding":{"code":"A"}}`), false, "", "coding has no system"},
			{"codeableConcept with a coding without a system", "POST", "/ValueSet/$validate-code",
				coding(`{"name":"codeableConcept","valueCodeableConcept":{"coding":[{"code":"B"},{"system":"` + probeCS + `","code":"A"}]}}`), true, "Alpha", ""},
			{"codeableConcept with a wrong display", "POST", "/ValueSet/$validate-code",
				coding(`{"name":"codeableConcept","valueCodeableConcept":{"coding":[{"system":"` + probeCS + `","code":"A","display":"Beta"},
					{"system":"` + probeCS + `","code":"B","display":"Bravo"}]}}`), true, "Bravo", `the display "Beta" is not that of ` + probeCS + `#A`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				wantValidation(t, c.do(tt.method, tt.path, tt.body), tt.result, tt.display, tt.message)
			})
		}
	}, withValidator(false), withDefinitions)
}

// A ValueSet naming a large code system many times is refused as too
// costly once its expansion goes through a million codes, by $expand,
// $validate-code and :in alike, within the request's deadline, instead of
// reading the code system once an include and expanding it for minutes.
func TestTerminologyCostlyExpansionIsRefused(t *testing.T) {
	const system = "http://example.org/cs/large"
	concepts := make([]string, 2000)
	for i := range concepts {
		concepts[i] = fmt.Sprintf(`{"code":"c%d"}`, i)
	}
	includes := strings.TrimSuffix(strings.Repeat(`{"system":"`+system+`"},`, 501), ",")
	eachEngine(t, func(t *testing.T, c *client) {
		c.create("CodeSystem", `{"resourceType":"CodeSystem","url":"`+system+`","status":"active","content":"complete","concept":[`+strings.Join(concepts, ",")+`]}`)
		c.create("ValueSet", `{"resourceType":"ValueSet","url":"http://example.org/vs/large","status":"active","compose":{"include":[{"system":"`+system+`"}]}}`)
		c.create("ValueSet", `{"resourceType":"ValueSet","url":"http://example.org/vs/costly","status":"active","compose":{"include":[`+includes+`]}}`)

		r := c.do("GET", "/ValueSet/$expand?url=http://example.org/vs/large&count=2", "").want(t, http.StatusOK)
		if _, total := expansion(t, r); total != 2000 {
			t.Errorf("total %v, want 2000", total)
		}
		c.do("GET", "/ValueSet/$expand?url=http://example.org/vs/costly&count=2", "").
			want(t, http.StatusUnprocessableEntity).outcome(t, "too-costly", "")
		c.do("GET", "/ValueSet/$validate-code?url=http://example.org/vs/costly&system="+system+"&code=c1", "").
			want(t, http.StatusUnprocessableEntity).outcome(t, "too-costly", "")
		c.do("GET", "/Observation?code:in=http://example.org/vs/costly", "").
			want(t, http.StatusBadRequest).outcome(t, "too-costly", "code:in")
	}, withValidator(false), withDefinitions)
}

// A code system that is not case sensitive (CodeSystem.caseSensitive
// false) names a concept by its code in any case, in $validate-code,
// $lookup and validation; one that is, or does not say, only by its code.
func TestTerminologyCaseInsensitiveCodeSystem(t *testing.T) {
	const (
		anyCase = "http://example.org/fhir/CodeSystem/wards"
		exact   = "http://example.org/fhir/CodeSystem/beds"
	)
	codeSystem := func(url, caseSensitive string) string {
		return `{"resourceType":"CodeSystem","id":"` + url[strings.LastIndex(url, "/")+1:] + `","url":"` + url + `","name":"Places","status":"draft","content":"complete"` + caseSensitive + `,
			"concept":[{"code":"ward-a","display":"Ward A","concept":[{"code":"bay-1","display":"Bay 1"}]}]}`
	}
	valueSet := func(id, system string) string {
		return `{"resourceType":"ValueSet","url":"http://example.org/fhir/ValueSet/` + id + `","status":"draft","compose":{"include":[{"system":"` + system + `"}]}}`
	}
	sources := []string{
		codeSystem(anyCase, `,"caseSensitive":false`), valueSet("wards", anyCase),
		codeSystem(exact, `,"caseSensitive":true`), valueSet("beds", exact),
	}
	v, err := profiles.New(profiles.Options{Resources: [][]byte{[]byte(sources[0]), []byte(sources[2])}})
	if err != nil {
		t.Fatal(err)
	}
	eachEngine(t, func(t *testing.T, c *client) {
		for i, s := range sources {
			c.create([]string{"CodeSystem", "ValueSet"}[i%2], s)
		}
		for _, tt := range []struct {
			valueSet, system, code string
			in                     bool
		}{
			{"wards", anyCase, "WARD-A", true},
			{"wards", anyCase, "Bay-1", true},
			{"wards", anyCase, "ward-b", false},
			{"beds", exact, "WARD-A", false},
			{"beds", exact, "ward-a", true},
		} {
			path := "/ValueSet/$validate-code?url=" + url.QueryEscape("http://example.org/fhir/ValueSet/"+tt.valueSet) + "&system=" + url.QueryEscape(tt.system) + "&code=" + tt.code
			res := c.do("GET", path, "").want(t, http.StatusOK).json(t)
			if got := get(param(res, "result"), "valueBoolean"); got != tt.in {
				t.Errorf("%s %s#%s: result %v, want %v", tt.valueSet, tt.system, tt.code, got, tt.in)
			}
		}

		res := c.do("GET", "/CodeSystem/$lookup?system="+url.QueryEscape(anyCase)+"&code=WARD-A", "").want(t, http.StatusOK).json(t)
		if got := str(param(res, "display"), "valueString"); got != "Ward A" {
			t.Errorf("$lookup of WARD-A: display %q, want Ward A: %v", got, res)
		}
		if p := param(res, "property"); str(get(p, "part", 1), "valueCode") != "bay-1" {
			t.Errorf("$lookup of WARD-A: its child bay-1 is not listed: %v", res)
		}
		c.do("GET", "/CodeSystem/$lookup?system="+url.QueryEscape(exact)+"&code=WARD-A", "").want(t, http.StatusNotFound).outcome(t, "not-found", termAt("code"))

		observation := func(system string) string {
			return `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"` + system + `","code":"WARD-A"}]}}`
		}
		r := c.do("POST", "/Observation/$validate", observation(anyCase)).want(t, http.StatusOK)
		if strings.Contains(string(r.body), `"severity":"error"`) {
			t.Errorf("WARD-A of a code system that is not case sensitive is refused: %s", r.body)
		}
		c.do("POST", "/Observation/$validate", observation(exact)).want(t, http.StatusOK).outcome(t, "code-invalid", "Observation.code.coding[0].code")
	}, func(cfg *server.Config) { cfg.Validator = v })
}

// A ValueSet whose include pins a version of a stored CodeSystem is
// expanded and validated with that version's concepts, whichever other
// versions of it are stored.
func TestTerminologyPinnedCodeSystemVersion(t *testing.T) {
	const system = "http://example.org/cs/versioned"
	eachEngine(t, func(t *testing.T, c *client) {
		for version, display := range map[string]string{"1": "Green one", "2": "Green two"} {
			c.create("CodeSystem", `{"resourceType":"CodeSystem","url":"`+system+`","version":"`+version+`","status":"active","content":"complete",
				"concept":[{"code":"g","display":"`+display+`"}]}`)
			c.create("ValueSet", `{"resourceType":"ValueSet","url":"http://example.org/vs/pinned-`+version+`","status":"active",
				"compose":{"include":[{"system":"`+system+`","version":"`+version+`"}]}}`)
		}
		for version, display := range map[string]string{"1": "Green one", "2": "Green two"} {
			vs := "http://example.org/vs/pinned-" + version
			res := c.do("GET", "/ValueSet/$expand?url="+url.QueryEscape(vs), "").want(t, http.StatusOK).json(t)
			if got := str(get(res, "expansion", "contains", 0), "display"); got != display {
				t.Errorf("$expand of %s: display %q, want %q", vs, got, display)
			}
			res = c.do("GET", "/ValueSet/$validate-code?url="+url.QueryEscape(vs)+"&system="+system+"&code=g&display="+url.QueryEscape(display), "").
				want(t, http.StatusOK).json(t)
			if get(param(res, "result"), "valueBoolean") != true || str(param(res, "display"), "valueString") != display {
				t.Errorf("$validate-code in %s of display %q: %v", vs, display, res)
			}
		}
	}, withValidator(false), withDefinitions)
}

// A ValueSet or CodeSystem named by url alone, stored in several
// versions, is the newest: of the highest version, numbers compared by
// value (1.10.0 after 1.9.0), whatever was stored first or updated last.
// :in, $expand, $validate-code and $lookup all take that one.
func TestTerminologyNewestVersion(t *testing.T) {
	const (
		vs     = "http://example.org/vs/versions"
		system = "http://example.org/cs/versions"
	)
	eachEngine(t, func(t *testing.T, c *client) {
		for _, r := range []struct{ id, version, code string }{{"a", "1.9.0", "old"}, {"b", "1.10.0", "new"}, {"c", "1.2.0", "oldest"}} {
			c.do("PUT", "/CodeSystem/"+r.id, `{"resourceType":"CodeSystem","id":"`+r.id+`","url":"`+system+`","version":"`+r.version+`","status":"active","content":"complete",
				"concept":[{"code":"old","display":"Old `+r.version+`"},{"code":"new","display":"New `+r.version+`"},{"code":"oldest","display":"Oldest `+r.version+`"}]}`).want(t, http.StatusCreated)
			c.do("PUT", "/ValueSet/"+r.id, `{"resourceType":"ValueSet","id":"`+r.id+`","url":"`+vs+`","version":"`+r.version+`","status":"active",
				"compose":{"include":[{"system":"`+system+`","version":"`+r.version+`","concept":[{"code":"`+r.code+`"}]}]}}`).want(t, http.StatusCreated)
			c.do("PUT", "/Observation/"+r.code, `{"resourceType":"Observation","id":"`+r.code+`","status":"final","code":{"coding":[{"system":"`+system+`","code":"`+r.code+`"}]}}`).
				want(t, http.StatusCreated)
		}
		if codes, _ := expansion(t, c.do("GET", "/ValueSet/$expand?url="+url.QueryEscape(vs), "")); !slices.Equal(codes, []string{"new"}) {
			t.Errorf("$expand: %v, want [new], of version 1.10.0", codes)
		}
		if codes, _ := expansion(t, c.do("GET", "/ValueSet/$expand?url="+url.QueryEscape(vs+"|1.9.0"), "")); !slices.Equal(codes, []string{"old"}) {
			t.Errorf("$expand of version 1.9.0: %v, want [old]", codes)
		}
		if got := c.do("GET", "/Observation?code:in="+url.QueryEscape(vs), "").searchset(t).ids("match"); got != "Observation/new" {
			t.Errorf(":in matches %q, want Observation/new, of version 1.10.0", got)
		}
		if got := c.do("GET", "/Observation?code:not-in="+url.QueryEscape(vs), "").searchset(t).ids("match"); got != "Observation/old Observation/oldest" {
			t.Errorf(":not-in matches %q, want Observation/old Observation/oldest", got)
		}
		res := c.do("GET", "/ValueSet/$validate-code?url="+url.QueryEscape(vs)+"&system="+url.QueryEscape(system)+"&code=old", "").want(t, http.StatusOK).json(t)
		if get(param(res, "result"), "valueBoolean") != false {
			t.Errorf("$validate-code of old, which version 1.10.0 leaves out: %v", res)
		}
		res = c.do("GET", "/CodeSystem/$lookup?system="+url.QueryEscape(system)+"&code=new", "").want(t, http.StatusOK).json(t)
		if got := str(param(res, "display"), "valueString"); got != "New 1.10.0" {
			t.Errorf("$lookup: display %q, want that of version 1.10.0", got)
		}
	}, withValidator(false), withDefinitions)
}

// A url named without a version is resolved to the newest of at most
// Limits.CanonicalVersions stored resources, each read whole to compare
// versions: one stored in more is refused as too costly, by $expand,
// $validate-code, $lookup and :in alike, rather than reading them all at
// every request; naming the version still finds it.
func TestTerminologyCanonicalVersionsBounded(t *testing.T) {
	const (
		vs     = "http://example.org/vs/many"
		system = "http://example.org/cs/many"
	)
	eachEngine(t, func(t *testing.T, c *client) {
		put := func(i int) {
			version := fmt.Sprintf("1.%d.0", i)
			c.do("PUT", fmt.Sprintf("/CodeSystem/many%d", i), `{"resourceType":"CodeSystem","id":"many`+strconv.Itoa(i)+`","url":"`+system+`","version":"`+version+`","status":"active","content":"complete",
				"concept":[{"code":"c`+strconv.Itoa(i)+`","display":"Code `+version+`"}]}`).want(t, http.StatusCreated)
			c.do("PUT", fmt.Sprintf("/ValueSet/many%d", i), `{"resourceType":"ValueSet","id":"many`+strconv.Itoa(i)+`","url":"`+vs+`","version":"`+version+`","status":"active",
				"compose":{"include":[{"system":"`+system+`","version":"`+version+`"}]}}`).want(t, http.StatusCreated)
		}
		for i := range 3 {
			put(i)
		}
		c.do("PUT", "/Observation/o2", `{"resourceType":"Observation","id":"o2","status":"final","code":{"coding":[{"system":"`+system+`","code":"c2"}]}}`).want(t, http.StatusCreated)
		if codes, _ := expansion(t, c.do("GET", "/ValueSet/$expand?url="+url.QueryEscape(vs), "")); !slices.Equal(codes, []string{"c2"}) {
			t.Errorf("$expand of 3 versions: %v, want [c2], of version 1.2.0", codes)
		}
		put(3)
		for _, path := range []string{
			"/ValueSet/$expand?url=" + url.QueryEscape(vs),
			"/ValueSet/$validate-code?url=" + url.QueryEscape(vs) + "&system=" + url.QueryEscape(system) + "&code=c3",
			"/CodeSystem/$lookup?system=" + url.QueryEscape(system) + "&code=c3",
		} {
			if msg := c.do("GET", path, "").want(t, http.StatusUnprocessableEntity).outcome(t, "too-costly", ""); !strings.Contains(msg, "url|version") {
				t.Errorf("GET %s: %q does not say to name the version", path, msg)
			}
		}
		c.do("GET", "/Observation?code:in="+url.QueryEscape(vs), "").
			want(t, http.StatusBadRequest).outcome(t, "too-costly", "code:in")
		if codes, _ := expansion(t, c.do("GET", "/ValueSet/$expand?url="+url.QueryEscape(vs+"|1.2.0"), "")); !slices.Equal(codes, []string{"c2"}) {
			t.Errorf("$expand of version 1.2.0: %v, want [c2]", codes)
		}
		if got := c.do("GET", "/Observation?code:in="+url.QueryEscape(vs+"|1.2.0"), "").searchset(t).ids("match"); got != "Observation/o2" {
			t.Errorf(":in of version 1.2.0 matches %q, want Observation/o2", got)
		}
	}, withValidator(false), withDefinitions, func(cfg *server.Config) { cfg.Limits.CanonicalVersions = 3 })
}

// A stored ValueSet that imports stored ValueSets (compose.include.valueSet,
// directly or not, even in a circle) is expanded with their codes, by
// $expand, $validate-code and :in alike.
func TestTerminologyStoredValueSetImports(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		storeProbe(c)
		for name, compose := range map[string]string{
			"imports-listed": `{"include":[{"valueSet":["http://example.org/vs/probe-listed"]}]}`,
			"imports-twice":  `{"include":[{"valueSet":["http://example.org/vs/imports-listed"]}],"exclude":[{"system":"` + probeCS + `","concept":[{"code":"B"}]}]}`,
			"circle":         `{"include":[{"valueSet":["http://example.org/vs/imports-listed"]},{"valueSet":["http://example.org/vs/circle"]}]}`,
		} {
			c.create("ValueSet", `{"resourceType":"ValueSet","url":"http://example.org/vs/`+name+`","status":"active","compose":`+compose+`}`)
		}
		for name, want := range map[string][]string{"imports-listed": {"A", "B"}, "imports-twice": {"A"}} {
			vs := url.QueryEscape("http://example.org/vs/" + name)
			if codes, _ := expansion(t, c.do("GET", "/ValueSet/$expand?url="+vs, "")); !slices.Equal(codes, want) {
				t.Errorf("$expand of %s: %v, want %v", name, codes, want)
			}
			res := c.do("GET", "/ValueSet/$validate-code?url="+vs+"&system="+url.QueryEscape(probeCS)+"&code=A", "").want(t, http.StatusOK).json(t)
			if get(param(res, "result"), "valueBoolean") != true {
				t.Errorf("$validate-code of A in %s: %v", name, res)
			}
		}
		c.do("GET", "/Observation?code:in="+url.QueryEscape("http://example.org/vs/imports-twice"), "").want(t, http.StatusOK)
		c.do("GET", "/ValueSet/$expand?url="+url.QueryEscape("http://example.org/vs/circle"), "").
			want(t, http.StatusUnprocessableEntity).outcome(t, "not-supported", "")
	}, withValidator(false), withDefinitions)
}

// CodeSystem/$validate-code tells whether a CodeSystem, bundled, stored or
// sent, defines a code, and is listed with its own OperationDefinition.
func TestTerminologyCodeSystemValidateCode(t *testing.T) {
	probe := "/CodeSystem/$validate-code?url=" + url.QueryEscape(probeCS)
	parameters := func(params string) string {
		return `{"resourceType":"Parameters","parameter":[` + params + `]}`
	}
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("CodeSystem", probeCodeSystem), "id")
		tests := []struct {
			name, method, path, body string
			result                   bool
			display, message         string
		}{
			{"bundled", "GET", "/CodeSystem/$validate-code?url=" + url.QueryEscape(genderCS) + "&code=male", "", true, "Male", ""},
			{"bundled instance", "GET", "/CodeSystem/administrative-gender/$validate-code?code=other&display=Other", "", true, "Other", ""},
			{"stored", "GET", probe + "&code=A&display=Alfa-de&displayLanguage=fr", "", true, "Alfa-fr", ""},
			{"stored instance", "GET", "/CodeSystem/" + id + "/$validate-code?code=B", "", true, "Bravo", ""},
			{"version", "GET", probe + "&code=A&version=1", "", true, "Alpha", ""},
			{"unknown code", "GET", probe + "&code=Z", "", false, "", probeCS + "#Z is not defined by the code system"},
			{"wrong display", "GET", probe + "&code=A&display=Bravo", "", false, "Alpha", `the display "Bravo"`},
			{"other version", "GET", "/CodeSystem/" + id + "/$validate-code?code=A&version=2", "", false, "", `version "2" of the code system`},
			{"coding of another system", "POST", "/CodeSystem/$validate-code", parameters(`{"name":"url","valueUri":"` + probeCS + `"},
				{"name":"coding","valueCoding":{"system":"` + genderCS + `","code":"A"}}`), false, "", "is not in the code system " + probeCS},
			{"codeableConcept", "POST", "/CodeSystem/" + id + "/$validate-code", parameters(`{"name":"codeableConcept","valueCodeableConcept":{"coding":[
				{"system":"` + genderCS + `","code":"male"},{"system":"` + probeCS + `","code":"D"}]}}`), true, "Delta", ""},
			{"codeSystem sent", "POST", "/CodeSystem/$validate-code", parameters(`{"name":"codeSystem","resource":{"resourceType":"CodeSystem",
				"url":"http://example.org/cs/sent","status":"draft","content":"complete","concept":[{"code":"s","display":"Sent"}]}},
				{"name":"code","valueCode":"s"}`), true, "Sent", ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				wantValidation(t, c.do(tt.method, tt.path, tt.body), tt.result, tt.display, tt.message)
			})
		}

		errs := []struct {
			name, path string
			status     int
			code, expr string
		}{
			{"no url", "/CodeSystem/$validate-code?code=A", http.StatusBadRequest, "required", "url"},
			{"no code", probe, http.StatusBadRequest, "required", "code"},
			{"unknown url", "/CodeSystem/$validate-code?url=http://example.org/none&code=A", http.StatusNotFound, "not-found", "url"},
			{"unknown version", probe + "&version=9&code=A", http.StatusNotFound, "not-found", "url"},
			{"unknown instance", "/CodeSystem/none/$validate-code?code=A", http.StatusNotFound, "not-found", ""},
			{"code system without its codes", "/CodeSystem/$validate-code?url=http://snomed.info/sct&code=27113001", http.StatusUnprocessableEntity, "not-supported", ""},
		}
		for _, tt := range errs {
			t.Run(tt.name, func(t *testing.T) {
				c.do("GET", tt.path, "").want(t, tt.status).outcome(t, tt.code, termAt(tt.expr))
			})
		}

		definitions := map[string]string{}
		resources, _ := get(c.do("GET", "/metadata", "").want(t, http.StatusOK).json(t), "rest", 0, "resource").([]any)
		for _, r := range resources {
			list, _ := get(r, "operation").([]any)
			for _, op := range list {
				if str(op, "name") == "validate-code" {
					definitions[str(r, "type")] = str(op, "definition")
				}
			}
		}
		want := map[string]string{
			"ValueSet":   "http://hl7.org/fhir/OperationDefinition/ValueSet-validate-code",
			"CodeSystem": "http://hl7.org/fhir/OperationDefinition/CodeSystem-validate-code",
		}
		if !reflect.DeepEqual(definitions, want) {
			t.Errorf("$validate-code listed as %v, want %v", definitions, want)
		}
	}, withValidator(false), withDefinitions)
}

// The filters of a ValueSet's compose over a stored CodeSystem: on the
// hierarchy, on the code, the display and the concepts' properties.
func TestTerminologyExpandFilters(t *testing.T) {
	const system = "http://example.org/cs/colours"
	eachEngine(t, func(t *testing.T, c *client) {
		c.create("CodeSystem", `{"resourceType":"CodeSystem","url":"`+system+`","status":"active","content":"complete",
			"property":[{"code":"tone","type":"code"},{"code":"rank","type":"integer"},{"code":"inactive","type":"boolean"}],
			"concept":[
				{"code":"warm","display":"Warm","concept":[
					{"code":"red","display":"Red","property":[{"code":"tone","valueCode":"bright"},{"code":"rank","valueInteger":1}]},
					{"code":"orange","display":"Orange","property":[{"code":"rank","valueInteger":2}]}]},
				{"code":"cool","display":"Cool","concept":[
					{"code":"blue","display":"Blue","property":[{"code":"tone","valueCode":"dark"},{"code":"inactive","valueBoolean":false}]},
					{"code":"green","display":"Green"}]}]}`)
		tests := []struct {
			filter string
			codes  []string
		}{
			{`{"property":"concept","op":"is-a","value":"warm"}`, []string{"orange", "red", "warm"}},
			{`{"property":"concept","op":"generalizes","value":"red"}`, []string{"red", "warm"}},
			{`{"property":"concept","op":"in","value":"red, blue"}`, []string{"blue", "red"}},
			{`{"property":"code","op":"not-in","value":"red,blue,warm,cool"}`, []string{"green", "orange"}},
			{`{"property":"code","op":"regex","value":"[a-z]+e"}`, []string{"blue", "orange"}},
			{`{"property":"display","op":"regex","value":"(?i)g.*"}`, []string{"green"}},
			{`{"property":"tone","op":"=","value":"bright"}`, []string{"red"}},
			{`{"property":"rank","op":"in","value":"1,2"}`, []string{"orange", "red"}},
			{`{"property":"inactive","op":"=","value":"false"}`, []string{"blue"}},
			{`{"property":"tone","op":"exists","value":"false"},{"property":"concept","op":"descendent-of","value":"cool"}`, []string{"green"}},
		}
		for _, tt := range tests {
			t.Run(tt.filter, func(t *testing.T) {
				r := c.do("POST", "/ValueSet/$expand", `{"resourceType":"Parameters","parameter":[{"name":"valueSet","resource":{"resourceType":"ValueSet",
					"status":"draft","compose":{"include":[{"system":"`+system+`","filter":[`+tt.filter+`]}]}}}]}`)
				if codes, _ := expansion(t, r); !slices.Equal(codes, tt.codes) {
					t.Errorf("codes %v, want %v", codes, tt.codes)
				}
			})
		}
		for _, filter := range []string{`{"property":"code","op":"regex","value":"("}`, `{"property":"tone","op":"is-a","value":"dark"}`} {
			c.do("POST", "/ValueSet/$expand", `{"resourceType":"Parameters","parameter":[{"name":"valueSet","resource":{"resourceType":"ValueSet",
				"status":"draft","compose":{"include":[{"system":"`+system+`","filter":[`+filter+`]}]}}}]}`).
				want(t, http.StatusUnprocessableEntity).outcome(t, "not-supported", "")
		}
	}, withValidator(false), withDefinitions)
}

// CodeSystem/$subsumes relates two codes of a bundled or stored code
// system by its hierarchy.
func TestTerminologySubsumes(t *testing.T) {
	const (
		issues = "http://hl7.org/fhir/issue-type"
		family = "http://example.org/cs/family"
	)
	eachEngine(t, func(t *testing.T, c *client) {
		id := str(c.create("CodeSystem", `{"resourceType":"CodeSystem","url":"`+family+`","status":"active","content":"complete",
			"concept":[{"code":"grandparent","concept":[{"code":"parent","concept":[{"code":"child"}]}]},
				{"code":"adopted","property":[{"code":"parent","valueCode":"parent"}]},{"code":"stranger"}]}`), "id")
		codings := func(a, b string) string {
			return `{"resourceType":"Parameters","parameter":[{"name":"codingA","valueCoding":` + a + `},{"name":"codingB","valueCoding":` + b + `}]}`
		}
		tests := []struct {
			name, method, path, body, outcome string
		}{
			{"equivalent", "GET", "/CodeSystem/$subsumes?system=" + family + "&codeA=child&codeB=child", "", "equivalent"},
			{"subsumes", "GET", "/CodeSystem/$subsumes?system=" + family + "&codeA=grandparent&codeB=child", "", "subsumes"},
			{"subsumed-by", "GET", "/CodeSystem/$subsumes?system=" + family + "&codeA=child&codeB=grandparent", "", "subsumed-by"},
			{"by parent property", "GET", "/CodeSystem/" + id + "/$subsumes?codeA=grandparent&codeB=adopted", "", "subsumes"},
			{"not-subsumed", "GET", "/CodeSystem/" + id + "/$subsumes?codeA=child&codeB=stranger", "", "not-subsumed"},
			{"bundled, codings", "POST", "/CodeSystem/$subsumes", codings(`{"system":"`+issues+`","code":"structure"}`, `{"system":"`+issues+`","code":"invalid"}`), "subsumed-by"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res := c.do(tt.method, tt.path, tt.body).want(t, http.StatusOK).json(t)
				if got := str(param(res, "outcome"), "valueCode"); got != tt.outcome {
					t.Errorf("outcome %q, want %q: %v", got, tt.outcome, res)
				}
			})
		}

		errs := []struct {
			name, method, path, body string
			status                   int
			code, expr               string
		}{
			{"no codeB", "GET", "/CodeSystem/$subsumes?system=" + family + "&codeA=child", "", http.StatusBadRequest, "required", "codeB"},
			{"no system", "GET", "/CodeSystem/$subsumes?codeA=child&codeB=parent", "", http.StatusBadRequest, "required", "system"},
			{"unknown system", "GET", "/CodeSystem/$subsumes?system=http://example.org/none&codeA=a&codeB=b", "", http.StatusNotFound, "not-found", "system"},
			{"unknown code", "GET", "/CodeSystem/$subsumes?system=" + family + "&codeA=nobody&codeB=child", "", http.StatusNotFound, "not-found", "codeA"},
			{"codings of two systems", "POST", "/CodeSystem/$subsumes", codings(`{"system":"`+family+`","code":"child"}`, `{"system":"`+issues+`","code":"invalid"}`),
				http.StatusBadRequest, "invalid", "codingB"},
			{"instance of another system", "GET", "/CodeSystem/" + id + "/$subsumes?system=" + issues + "&codeA=child&codeB=parent", "", http.StatusBadRequest, "invalid", "system"},
			{"code system without its codes", "GET", "/CodeSystem/$subsumes?system=http://snomed.info/sct&codeA=1&codeB=2", "", http.StatusUnprocessableEntity, "not-supported", ""},
		}
		for _, tt := range errs {
			t.Run(tt.name, func(t *testing.T) {
				c.do(tt.method, tt.path, tt.body).want(t, tt.status).outcome(t, tt.code, termAt(tt.expr))
			})
		}

		resources, _ := get(c.do("GET", "/metadata", "").want(t, http.StatusOK).json(t), "rest", 0, "resource").([]any)
		listed := false
		for _, r := range resources {
			list, _ := get(r, "operation").([]any)
			for _, op := range list {
				listed = listed || str(r, "type") == "CodeSystem" && str(op, "definition") == "http://hl7.org/fhir/OperationDefinition/CodeSystem-subsumes"
			}
		}
		if !listed {
			t.Error("the CapabilityStatement does not list $subsumes on CodeSystem")
		}
	}, withValidator(false), withDefinitions)
}

// TestTerminologyUKCoreOnHL7V3 checks the UK Core value sets drawing on HL7
// v3 code systems: UKCore-BirthSex expands to its codes, and the required
// binding of the birth sex extension refuses a code outside it.
func TestTerminologyUKCoreOnHL7V3(t *testing.T) {
	const (
		birthSexVS = "https://fhir.hl7.org.uk/ValueSet/UKCore-BirthSex"
		v3Gender   = "http://terminology.hl7.org/CodeSystem/v3-AdministrativeGender"
		nullFlavor = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
	)
	withBirthSex := func(system, code string) string {
		return `{"resourceType":"Patient","meta":{"profile":["` + ukCorePatient + `"]},"extension":[{
			"url":"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-BirthSex",
			"valueCodeableConcept":{"coding":[{"system":"` + system + `","code":"` + code + `"}]}}],"name":[{"family":"Ramsay"}]}`
	}
	const at = "Patient.extension[0].value.ofType(CodeableConcept)"
	eachEngine(t, func(t *testing.T, c *client) {
		codes, total := expansion(t, c.do("GET", "/ValueSet/$expand?url="+url.QueryEscape(birthSexVS), ""))
		if want := []string{"F", "M", "UN", "UNK"}; !slices.Equal(codes, want) || total != 4 {
			t.Errorf("UKCore-BirthSex expands to %v of %v, want %v of 4", codes, total, want)
		}
		validateCode := "/ValueSet/$validate-code?url=" + url.QueryEscape(birthSexVS) + "&system=" + url.QueryEscape(v3Gender)
		wantValidation(t, c.do("GET", validateCode+"&code=F", ""), true, "Female", "")
		wantValidation(t, c.do("GET", validateCode+"&code=X", ""), false, "", "not in the value set")

		// A code not in the code system, and a code of a code system the
		// value set draws on but not in the value set.
		for _, body := range []string{withBirthSex(v3Gender, "X"), withBirthSex(nullFlavor, "ASKU")} {
			c.do("POST", "/Patient", body).want(t, http.StatusUnprocessableEntity).outcome(t, "code-invalid", at)
			r := c.do("POST", "/Patient/$validate", body).want(t, http.StatusOK)
			if diag := r.outcome(t, "code-invalid", at); !strings.Contains(diag, birthSexVS) {
				t.Errorf("$validate names no value set at %s: %s", at, diag)
			}
		}
		if res := c.do("GET", "/Patient?_summary=count", "").want(t, http.StatusOK).json(t); get(res, "total") != float64(0) {
			t.Errorf("refused Patients stored: %v", res)
		}
		for _, code := range []string{"F", "UN"} {
			c.create("Patient", withBirthSex(v3Gender, code))
		}
		c.create("Patient", withBirthSex(nullFlavor, "UNK"))
	}, withValidator(true), withDefinitions)
}

// TestTerminologyUKCoreOnHL7V2 checks the UK Core value sets drawing on HL7
// v2 tables: they expand, and a code the table does not define is refused.
func TestTerminologyUKCoreOnHL7V2(t *testing.T) {
	const (
		relationshipVS = "https://fhir.hl7.org.uk/ValueSet/UKCore-PersonRelationshipType"
		reasonVS       = "https://fhir.hl7.org.uk/ValueSet/UKCore-AppointmentReasonCode"
		v2Relationship = "http://terminology.hl7.org/CodeSystem/v2-0131"
	)
	withContact := func(code string) string {
		return `{"resourceType":"Patient","meta":{"profile":["` + ukCorePatient + `"]},"contact":[{"relationship":[{"coding":[
			{"system":"` + v2Relationship + `","code":"` + code + `"}]}],"name":{"family":"Ramsay"}}]}`
	}
	const at = "Patient.contact[0].relationship[0].coding[0].code"
	eachEngine(t, func(t *testing.T, c *client) {
		codes, total := expansion(t, c.do("GET", "/ValueSet/$expand?url="+url.QueryEscape(reasonVS), ""))
		if want := []string{"CHECKUP", "EMERGENCY", "FOLLOWUP", "ROUTINE", "WALKIN", "urgent-follow-up"}; !slices.Equal(codes, want) || total != 6 {
			t.Errorf("UKCore-AppointmentReasonCode expands to %v of %v, want %v of 6", codes, total, want)
		}
		codes, _ = expansion(t, c.do("GET", "/ValueSet/$expand?url="+url.QueryEscape(relationshipVS)+"&count=3", ""))
		if want := []string{"BP", "C", "CP"}; !slices.Equal(codes, want) {
			t.Errorf("UKCore-PersonRelationshipType begins %v, want %v", codes, want)
		}
		validateCode := "/ValueSet/$validate-code?url=" + url.QueryEscape(relationshipVS) + "&system=" + url.QueryEscape(v2Relationship)
		wantValidation(t, c.do("GET", validateCode+"&code=N", ""), true, "Next-of-Kin", "")
		wantValidation(t, c.do("GET", validateCode+"&code=ZZ", ""), false, "", "not in the value set")

		c.do("POST", "/Patient", withContact("ZZ")).want(t, http.StatusUnprocessableEntity).outcome(t, "code-invalid", at)
		c.do("POST", "/Patient/$validate", withContact("ZZ")).want(t, http.StatusOK).outcome(t, "code-invalid", at)
		if res := c.do("GET", "/Patient?_summary=count", "").want(t, http.StatusOK).json(t); get(res, "total") != float64(0) {
			t.Errorf("refused Patient stored: %v", res)
		}
		c.create("Patient", withContact("N"))
	}, withValidator(true), withDefinitions)
}

// A parameter the operation takes once at most, given twice, is refused
// naming it, rather than answered for the first.
func TestTerminologyRepeatedParameterIsRefused(t *testing.T) {
	vs, cs := url.QueryEscape(genderVS), url.QueryEscape(genderCS)
	eachEngine(t, func(t *testing.T, c *client) {
		for _, tt := range []struct{ path, param string }{
			{"/ValueSet/$expand?url=" + vs + "&url=" + url.QueryEscape("http://hl7.org/fhir/ValueSet/c80-doc-typecodes"), "url"},
			{"/ValueSet/$expand?url=" + vs + "&count=1&count=2", "count"},
			{"/ValueSet/$validate-code?url=" + vs + "&system=" + cs + "&code=female&code=x", "code"},
			{"/CodeSystem/$validate-code?url=" + cs + "&code=female&code=x", "code"},
			{"/CodeSystem/$lookup?system=" + cs + "&code=female&code=male", "code"},
			{"/CodeSystem/$subsumes?system=" + cs + "&codeA=female&codeB=male&codeB=female", "codeB"},
		} {
			c.do("GET", tt.path, "").want(t, http.StatusBadRequest).outcome(t, "invalid", "Parameters.parameter.where(name='"+tt.param+"')")
		}
		// Only the current definitions are held: a date is refused.
		for _, path := range []string{
			"/ValueSet/$validate-code?url=" + vs + "&system=" + cs + "&code=female&date=2020-01-01",
			"/CodeSystem/$validate-code?url=" + cs + "&code=female&date=2020-01-01",
			"/CodeSystem/$lookup?system=" + cs + "&code=female&date=2020-01-01",
		} {
			c.do("GET", path, "").want(t, http.StatusUnprocessableEntity).outcome(t, "not-supported", termAt("date"))
		}
		c.do("POST", "/ValueSet/$validate-code", `{"resourceType":"Parameters","parameter":[{"name":"url","valueUri":"`+genderVS+`"},
			{"name":"coding","valueCoding":{"system":"`+genderCS+`","code":"female"}},
			{"name":"coding","valueCoding":{"system":"`+genderCS+`","code":"x"}}]}`).want(t, http.StatusBadRequest).outcome(t, "invalid", "Parameters.parameter.where(name='coding')")
		// property may be repeated.
		c.do("GET", "/CodeSystem/$lookup?system="+cs+"&code=female&property=parent&property=child", "").want(t, http.StatusOK)
	}, withValidator(false), withDefinitions)
}

// A parameter the definition gives a string type, sent in a Parameters
// body with a value of another type, is 400 naming it: read as absent, a
// filter of the wrong type would expand the whole ValueSet.
func TestTerminologyWrongTypedParameterIsRefused(t *testing.T) {
	urlParam := `{"name":"url","valueUri":"` + genderVS + `"}`
	eachEngine(t, func(t *testing.T, c *client) {
		for _, tt := range []struct{ path, params, param string }{
			{"/ValueSet/$expand", urlParam + `,{"name":"filter","valueInteger":5}`, "filter"},
			{"/ValueSet/$expand", urlParam + `,{"name":"filter","valueCoding":{"code":"fem"}}`, "filter"},
			{"/ValueSet/$expand", urlParam + `,{"name":"displayLanguage","valueBoolean":true}`, "displayLanguage"},
			{"/ValueSet/$expand", urlParam + `,{"name":"exclude-system","part":[{"name":"system","valueUri":"` + genderCS + `"}]}`, "exclude-system"},
			{"/ValueSet/$expand", `{"name":"url","valueBoolean":true}`, "url"},
			{"/ValueSet/$validate-code", urlParam + `,{"name":"system","valueUri":"` + genderCS + `"},{"name":"code","valueCoding":{"code":"female"}}`, "code"},
			{"/CodeSystem/$validate-code", `{"name":"url","valueUri":"` + genderCS + `"},{"name":"code","valueInteger":1}`, "code"},
			{"/CodeSystem/$lookup", `{"name":"system","valueUri":"` + genderCS + `"},{"name":"code","valueCoding":{"code":"female"}}`, "code"},
			{"/CodeSystem/$subsumes", `{"name":"system","valueUri":"` + genderCS + `"},{"name":"codeA","valueCode":"female"},{"name":"codeB","valueBoolean":false}`, "codeB"},
		} {
			body := `{"resourceType":"Parameters","parameter":[` + tt.params + `]}`
			c.do("POST", tt.path, body).want(t, http.StatusBadRequest).outcome(t, "invalid", "Parameters.parameter.where(name='"+tt.param+"')")
		}
		// Each string type a parameter may be given as is read.
		codes, _ := expansion(t, c.do("POST", "/ValueSet/$expand", `{"resourceType":"Parameters","parameter":[`+urlParam+`,{"name":"filter","valueCode":"fem"}]}`))
		if !slices.Equal(codes, []string{"female"}) {
			t.Errorf("filter as valueCode: %v, want [female]", codes)
		}
	}, withValidator(false), withDefinitions)
}

// On an instance, the operation works on it: a url naming another
// ValueSet or CodeSystem, or one sent as a resource, is 400 naming it,
// rather than ignored for an answer about the instance.
func TestTerminologyInstanceNamedOtherwise(t *testing.T) {
	const languages = "http://hl7.org/fhir/ValueSet/languages"
	eachEngine(t, func(t *testing.T, c *client) {
		stored := c.create("ValueSet", `{"resourceType":"ValueSet","url":"http://example.org/fhir/ValueSet/local","status":"draft",
			"compose":{"include":[{"system":"`+genderCS+`","concept":[{"code":"male"}]}]}}`)
		local := "/ValueSet/" + str(stored, "id")
		inline := `{"resourceType":"Parameters","parameter":[{"name":"valueSet","resource":{"resourceType":"ValueSet","status":"draft",
			"compose":{"include":[{"system":"` + genderCS + `","concept":[{"code":"other"}]}]}}}]}`
		for _, tt := range []struct{ method, path, body, param string }{
			{"GET", "/ValueSet/administrative-gender/$expand?url=" + url.QueryEscape(languages), "", "url"},
			{"GET", local + "/$expand?url=" + url.QueryEscape(genderVS), "", "url"},
			{"POST", "/ValueSet/administrative-gender/$expand", inline, "valueSet"},
			{"GET", "/ValueSet/administrative-gender/$validate-code?url=" + url.QueryEscape(languages) + "&system=" + url.QueryEscape(genderCS) + "&code=male", "", "url"},
			{"GET", "/CodeSystem/administrative-gender/$validate-code?url=" + url.QueryEscape("http://example.org/other") + "&code=male", "", "url"},
			{"POST", "/CodeSystem/administrative-gender/$validate-code", `{"resourceType":"Parameters","parameter":[{"name":"code","valueCode":"male"},
				{"name":"codeSystem","resource":{"resourceType":"CodeSystem","url":"http://example.org/other","status":"draft","content":"complete","concept":[{"code":"male"}]}}]}`, "codeSystem"},
		} {
			c.do(tt.method, tt.path, tt.body).want(t, http.StatusBadRequest).outcome(t, "invalid", "Parameters.parameter.where(name='"+tt.param+"')")
		}
		// The instance's own url, with or without its version, is its own.
		c.do("GET", "/ValueSet/administrative-gender/$expand?url="+url.QueryEscape(genderVS+"|4.0.1"), "").want(t, http.StatusOK)
		c.do("GET", local+"/$expand?url="+url.QueryEscape("http://example.org/fhir/ValueSet/local"), "").want(t, http.StatusOK)
		c.do("GET", "/CodeSystem/administrative-gender/$validate-code?url="+url.QueryEscape(genderCS)+"&code=male", "").want(t, http.StatusOK)
	}, withValidator(false), withDefinitions)
}

// A url beside a ValueSet or CodeSystem sent as a resource must be the
// resource's own: naming another, which of the two was meant is not known,
// and it is 400 rather than ignored.
func TestTerminologyURLBesideResource(t *testing.T) {
	const local = "http://example.org/fhir/ValueSet/local"
	vs := `{"name":"valueSet","resource":{"resourceType":"ValueSet","url":"` + local + `","status":"draft",
		"compose":{"include":[{"system":"` + genderCS + `","concept":[{"code":"other"}]}]}}}`
	cs := `{"name":"codeSystem","resource":{"resourceType":"CodeSystem","url":"http://example.org/cs","status":"draft","content":"complete","concept":[{"code":"zzz"}]}}`
	params := func(ps ...string) string {
		return `{"resourceType":"Parameters","parameter":[` + strings.Join(ps, ",") + `]}`
	}
	eachEngine(t, func(t *testing.T, c *client) {
		for _, tt := range []struct{ path, body string }{
			{"/ValueSet/$expand", params(`{"name":"url","valueUri":"`+genderVS+`"}`, vs)},
			{"/ValueSet/$validate-code", params(`{"name":"url","valueUri":"`+genderVS+`"}`, vs, `{"name":"system","valueUri":"`+genderCS+`"}`, `{"name":"code","valueCode":"male"}`)},
			{"/CodeSystem/$validate-code", params(`{"name":"url","valueUri":"`+genderCS+`"}`, cs, `{"name":"code","valueCode":"zzz"}`)},
		} {
			c.do("POST", tt.path, tt.body).want(t, http.StatusBadRequest).outcome(t, "invalid", "Parameters.parameter.where(name='url')")
		}
		codes, _ := expansion(t, c.do("POST", "/ValueSet/$expand", params(`{"name":"url","valueUri":"`+local+`"}`, vs)))
		if !slices.Equal(codes, []string{"other"}) {
			t.Errorf("url beside its own ValueSet: %v, want [other]", codes)
		}
	}, withValidator(false), withDefinitions)
}

// A POST whose body is a ValueSet, or for CodeSystem/$validate-code a
// CodeSystem, takes it as the definition's parameter of that type, with
// the other parameters in the query string, as the dispatcher does.
func TestTerminologyResourceBody(t *testing.T) {
	vs := `{"resourceType":"ValueSet","url":"http://example.org/fhir/ValueSet/local","status":"draft",
		"compose":{"include":[{"system":"` + genderCS + `","concept":[{"code":"other"},{"code":"male"}]}]}}`
	cs := `{"resourceType":"CodeSystem","url":"http://example.org/cs","status":"draft","content":"complete","concept":[{"code":"zzz"}]}`
	eachEngine(t, func(t *testing.T, c *client) {
		codes, _ := expansion(t, c.do("POST", "/ValueSet/$expand?filter=oth", vs))
		if !slices.Equal(codes, []string{"other"}) {
			t.Errorf("$expand of a posted ValueSet: %v, want [other]", codes)
		}
		r := c.do("POST", "/ValueSet/$validate-code?system="+url.QueryEscape(genderCS)+"&code=male", vs).want(t, http.StatusOK).json(t)
		if get(param(r, "result"), "valueBoolean") != true {
			t.Errorf("$validate-code in a posted ValueSet: %v", r)
		}
		r = c.do("POST", "/CodeSystem/$validate-code?code=zzz", cs).want(t, http.StatusOK).json(t)
		if get(param(r, "result"), "valueBoolean") != true {
			t.Errorf("$validate-code in a posted CodeSystem: %v", r)
		}
		// A resource the operation takes no parameter of is refused.
		c.do("POST", "/ValueSet/$expand", cs).want(t, http.StatusBadRequest).outcome(t, "invalid", "")
		c.do("POST", "/CodeSystem/$lookup?code=zzz", cs).want(t, http.StatusBadRequest).outcome(t, "invalid", "")
	}, withValidator(false), withDefinitions)
}

// A concept its code system marks notSelectable (item-type's question)
// is abstract: an expansion marks it, excludeNotForUI leaves it out, and
// $validate-code finds it valid only with abstract true.
func TestTerminologyAbstractConcepts(t *testing.T) {
	const itemTypeVS, itemTypeCS = "http://hl7.org/fhir/ValueSet/item-type", "http://hl7.org/fhir/item-type"
	expand := "/ValueSet/$expand?url=" + url.QueryEscape(itemTypeVS)
	eachEngine(t, func(t *testing.T, c *client) {
		vs := c.do("GET", expand, "").want(t, http.StatusOK).json(t)
		contains, _ := get(vs, "expansion", "contains").([]any)
		var abstract []string
		for _, e := range contains {
			if get(e, "abstract") == true {
				abstract = append(abstract, str(e, "code"))
			}
		}
		if !slices.Equal(abstract, []string{"question"}) {
			t.Errorf("abstract concepts %v, want [question]", abstract)
		}
		codes, total := expansion(t, c.do("GET", expand+"&excludeNotForUI=true", ""))
		if slices.Contains(codes, "question") || total != float64(len(contains)-1) {
			t.Errorf("excludeNotForUI: %v of %v", codes, total)
		}
		vs = c.do("GET", expand+"&excludeNotForUI=true", "").json(t)
		if ps, _ := get(vs, "expansion", "parameter").([]any); len(ps) != 1 || str(ps[0], "name") != "excludeNotForUI" || get(ps[0], "valueBoolean") != true {
			t.Errorf("expansion.parameter %v", ps)
		}

		vsCode := "/ValueSet/$validate-code?url=" + url.QueryEscape(itemTypeVS) + "&system=" + url.QueryEscape(itemTypeCS) + "&code="
		csCode := "/CodeSystem/$validate-code?url=" + url.QueryEscape(itemTypeCS) + "&code="
		for _, base := range []string{vsCode, csCode} {
			wantValidation(t, c.do("GET", base+"question", ""), false, "", "abstract")
			wantValidation(t, c.do("GET", base+"question&abstract=false", ""), false, "", "abstract")
			wantValidation(t, c.do("GET", base+"question&abstract=true", ""), true, "Question", "")
			wantValidation(t, c.do("GET", base+"string", ""), true, "String", "")
			c.do("GET", base+"question&abstract=maybe", "").want(t, http.StatusBadRequest).outcome(t, "invalid", termAt("abstract"))
		}
	}, withValidator(false), withDefinitions)
}

// The parameters of $expand that name code systems change the answer or
// refuse it, and are recorded in expansion.parameter; those this server
// does not honour are refused, naming them.
func TestTerminologyExpandSystemParameters(t *testing.T) {
	expand := "/ValueSet/$expand?url=" + url.QueryEscape(genderVS) + "&"
	held, other := url.QueryEscape(genderCS+"|4.0.1"), url.QueryEscape(genderCS+"|3.0.0")
	eachEngine(t, func(t *testing.T, c *client) {
		for _, tt := range []struct {
			query string
			codes []string
		}{
			{"exclude-system=" + url.QueryEscape(genderCS), nil},
			{"exclude-system=" + held, nil},
			{"exclude-system=" + other, []string{"female", "male", "other", "unknown"}},
			{"exclude-system=http://example.org/other", []string{"female", "male", "other", "unknown"}},
			{"system-version=" + held + "&filter=fem", []string{"female"}},
			{"force-system-version=" + held + "&filter=fem", []string{"female"}},
			{"check-system-version=" + held + "&filter=fem", []string{"female"}},
		} {
			r := c.do("GET", expand+tt.query, "")
			codes, _ := expansion(t, r)
			if !slices.Equal(codes, tt.codes) {
				t.Errorf("%s: codes %v, want %v", tt.query, codes, tt.codes)
			}
			name, value, _ := strings.Cut(strings.Split(tt.query, "&")[0], "=")
			value, _ = url.QueryUnescape(value)
			found := false
			ps, _ := get(r.json(t), "expansion", "parameter").([]any)
			for _, p := range ps {
				found = found || str(p, "name") == name && str(p, "valueUri") == value
			}
			if !found {
				t.Errorf("%s: expansion.parameter %v lacks it", tt.query, ps)
			}
		}
		for _, tt := range []struct{ query, code, param string }{
			{"system-version=" + other, "not-supported", "system-version"},
			{"force-system-version=" + other, "not-supported", "force-system-version"},
			{"check-system-version=" + other, "business-rule", "check-system-version"},
			{"system-version=" + url.QueryEscape(genderCS), "invalid", "system-version"},
			{"date=2020-01-01", "not-supported", "date"},
			{"designation=" + url.QueryEscape("urn:ietf:bcp:47|en"), "not-supported", "designation"},
			{"context=Patient.gender", "not-supported", "context"},
		} {
			want := http.StatusUnprocessableEntity
			if tt.code == "invalid" {
				want = http.StatusBadRequest
			}
			c.do("GET", expand+tt.query, "").want(t, want).outcome(t, tt.code, termAt(tt.param))
		}
	}, withValidator(false), withDefinitions)
}

// A POST takes the parameters of its query string beside those of its
// Parameters body, as every operation does: none is left unread, and one
// given in both places is given twice.
func TestTerminologyQueryBesideParametersBody(t *testing.T) {
	body := `{"resourceType":"Parameters","parameter":[{"name":"url","valueUri":"` + genderVS + `"}]}`
	eachEngine(t, func(t *testing.T, c *client) {
		if codes, total := expansion(t, c.do("POST", "/ValueSet/$expand?filter=fem", body)); !slices.Equal(codes, []string{"female"}) || total != 1 {
			t.Errorf("POST $expand?filter=fem: %v of %v, want [female] of 1", codes, total)
		}
		c.do("POST", "/ValueSet/$expand?url="+url.QueryEscape(genderVS), body).want(t, http.StatusBadRequest).
			outcome(t, "invalid", "Parameters.parameter.where(name='url')")
		lookup := `{"resourceType":"Parameters","parameter":[{"name":"system","valueUri":"` + genderCS + `"}]}`
		if res := c.do("POST", "/CodeSystem/$lookup?code=male", lookup).want(t, http.StatusOK).json(t); get(param(res, "display"), "valueString") != "Male" {
			t.Errorf("POST $lookup?code=male: %v", res)
		}
	}, withValidator(false), withDefinitions)
}

// termAt is where an OperationOutcome locates the parameter named by a
// case: "" for none, and a name as the path of a Parameters body's
// parameter.
func termAt(name string) string {
	if name == "" || strings.HasPrefix(name, "Parameters.") {
		return name
	}
	return "Parameters.parameter.where(name='" + name + "')"
}

// TestTerminologyExpandStoredDaylessDate: a ValueSet stored before writes
// refused a date on a day its month lacks (dated 2023-02-29) is expanded,
// its date as stored, where $expand was 400 naming the stored date.
func TestTerminologyExpandStoredDaylessDate(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		body := `{"resourceType":"ValueSet","id":"old","meta":{"versionId":"1","lastUpdated":"2023-03-01T00:00:00.000Z"},"url":"http://example.org/fhir/ValueSet/old","status":"active","date":"2023-02-29",` +
			`"compose":{"include":[{"system":"` + genderCS + `","concept":[{"code":"other"}]}]}}`
		w := &store.Write{Type: "ValueSet", ID: "old", LastUpdated: time.Date(2023, 3, 1, 0, 0, 0, 0, time.UTC), JSON: []byte(body)}
		if err := c.st.Put(t.Context(), w); err != nil {
			t.Fatal(err)
		}
		r := c.do("GET", "/ValueSet/old/$expand", "")
		if codes, _ := expansion(t, r); !slices.Equal(codes, []string{"other"}) {
			t.Errorf("codes %v, want other", codes)
		}
		if date := str(r.json(t), "date"); date != "2023-02-29" {
			t.Errorf("date %q, want the stored 2023-02-29", date)
		}
	}, withValidator(false), withDefinitions)
}
