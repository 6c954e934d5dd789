package server_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"carefhir/server"
	"carefhir/store/sqlite"
)

// FuzzSearchHTTP sends any query string as a search, by GET and by POST
// _search, to the API over the SQLite engine: the answer is never a 5xx,
// and always JSON (a searchset Bundle or an OperationOutcome).
//
//	go test -run '^$' -fuzz '^FuzzSearchHTTP$' ./server/
func FuzzSearchHTTP(f *testing.F) {
	for _, q := range []string{
		"name=smi&birthdate=ge1970-03-01&birthdate=lt1970-04-01&_count=1",
		"_has:Observation:patient:code=8480-6&_revinclude=Observation:subject",
		"subject:Patient.name=o%20bri&_include=Observation:subject&_sort=-date",
		"value-quantity=gt120||mm[Hg]&_total=accurate&_summary=count",
		"_elements=name&_sort=family,-birthdate&_cursor=abc",
		"code:in=http://hl7.org/fhir/ValueSet/observation-vitalsignresult",
		"date=ap2025&_lastUpdated=lt2030&_format=xml",
		"name:exact=%C3%93%20Briain&gender:missing=false&_id=a,b",
	} {
		for _, typ := range []string{"Patient", "Observation"} {
			f.Add(typ, q)
		}
	}
	h := fuzzServer(f,
		[2]string{"/fhir/Patient/a", `{"resourceType":"Patient","id":"a","name":[{"family":"Ó Briain"}],"birthDate":"1970-03-15","gender":"female"}`},
		[2]string{"/fhir/Patient/b", `{"resourceType":"Patient","id":"b","name":[{"family":"Smith"}],"birthDate":"1970"}`},
		[2]string{"/fhir/Observation/o", `{"resourceType":"Observation","id":"o","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},` +
			`"subject":{"reference":"Patient/a"},"effectiveDateTime":"2025-01-01T10:30:00+01:00","valueQuantity":{"value":125,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}`},
	)
	f.Fuzz(func(t *testing.T, typ, query string) {
		if typ != "Patient" && typ != "Observation" {
			return
		}
		get := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/fhir/" + typ, RawQuery: query}, Header: http.Header{}}
		post := &http.Request{Method: http.MethodPost, URL: &url.URL{Path: "/fhir/" + typ + "/_search"},
			Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, Body: io.NopCloser(strings.NewReader(query)),
			ContentLength: int64(len(query))}
		for _, req := range []*http.Request{get, post} {
			req = req.WithContext(t.Context())
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("%s %s?%s: %d %s", req.Method, req.URL.Path, query, rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); strings.Contains(ct, "json") && !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%s %s?%s: %d, invalid JSON %s", req.Method, req.URL.Path, query, rec.Code, rec.Body)
			}
		}
	})
}

// FuzzBundleHTTP posts any body as a batch or transaction to the API over
// the SQLite engine: the answer is never a 5xx, and always JSON.
//
//	go test -run '^$' -fuzz '^FuzzBundleHTTP$' ./server/
func FuzzBundleHTTP(f *testing.F) {
	const ph = "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"
	for _, b := range []string{
		`{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"` + ph + `","resource":{"resourceType":"Patient","name":[{"family":"Ó Briain"}]},"request":{"method":"POST","url":"Patient","ifNoneExist":"name=briain"}},` +
			`{"resource":{"resourceType":"CarePlan","status":"active","intent":"plan","subject":{"reference":"` + ph + `"}},"request":{"method":"PUT","url":"CarePlan?subject=` + ph + `"}}]}`,
		`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient?name=smi&_include=Patient:organization"}},{"request":{"method":"DELETE","url":"Patient/a"}},` +
			`{"resource":{"resourceType":"Binary","contentType":"application/json-patch+json","data":"W3sib3AiOiJyZXBsYWNlIiwicGF0aCI6Ii9hY3RpdmUiLCJ2YWx1ZSI6dHJ1ZX1d"},"request":{"method":"PATCH","url":"Patient/a","ifMatch":"W/\"1\""}}]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"HEAD","url":"Patient/a/_history/1"}},{"request":{"method":"DELETE","url":"Patient?identifier=x|1"}}]}`,
	} {
		f.Add(b)
	}
	h := fuzzServer(f, [2]string{"/fhir/Patient/a", `{"resourceType":"Patient","id":"a","active":false}`})
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/fhir", strings.NewReader(body)).WithContext(t.Context())
		req.Header.Set("Content-Type", "application/fhir+json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("POST /fhir %q: %d %s", body, rec.Code, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("POST /fhir %q: %d, invalid JSON %s", body, rec.Code, rec.Body)
		}
	})
}

// FuzzPatchHTTP sends any body as a JSON Patch and as a FHIRPath Patch to
// a stored Patient: the answer is never a 5xx, and always JSON.
//
//	go test -run '^$' -fuzz '^FuzzPatchHTTP$' ./server/
func FuzzPatchHTTP(f *testing.F) {
	for _, b := range []string{
		`[{"op":"replace","path":"/name/0/family","value":"Smyth"},{"op":"test","path":"/gender","value":"female"}]`,
		`[{"op":"add","path":"/telecom/-","value":{"system":"phone","value":"01632 960587"}},{"op":"remove","path":"/name/0/given/1"}]`,
		`[{"op":"move","from":"/name/0","path":"/name/1"},{"op":"copy","from":"/birthDate","path":"/deceasedDateTime"}]`,
		`{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.name.family"},{"name":"value","valueString":"Jones"}]}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"insert"},{"name":"path","valueString":"Patient.name.given"},{"name":"index","valueInteger":0},{"name":"value","valueString":"Ann"}]}]}`,
	} {
		f.Add(b)
	}
	h := fuzzServer(f, [2]string{"/fhir/Patient/a",
		`{"resourceType":"Patient","id":"a","name":[{"family":"Ó Briain","given":["Siobhán","Mary"]}],"gender":"female","birthDate":"1970-03-15"}`})
	f.Fuzz(func(t *testing.T, body string) {
		for _, ct := range []string{"application/json-patch+json", "application/fhir+json"} {
			req := httptest.NewRequest(http.MethodPatch, "/fhir/Patient/a", strings.NewReader(body)).WithContext(t.Context())
			req.Header.Set("Content-Type", ct)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("PATCH (%s) %q: %d %s", ct, body, rec.Code, rec.Body)
			}
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("PATCH (%s) %q: %d, invalid JSON %s", ct, body, rec.Code, rec.Body)
			}
		}
	})
}

// fuzzServer returns the API over a new SQLite engine holding the
// resources of puts, each a path and a body stored by PUT.
func fuzzServer(f *testing.F, puts ...[2]string) http.Handler {
	st, err := sqlite.Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	h := server.New(server.Config{Store: st, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), SoftwareVersion: "test"})
	for _, p := range puts {
		req := httptest.NewRequest(http.MethodPut, p[0], strings.NewReader(p[1]))
		req.Header.Set("Content-Type", "application/fhir+json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			f.Fatalf("PUT %s: %d %s", p[0], rec.Code, rec.Body)
		}
	}
	return h
}
