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
	st, err := sqlite.Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	h := server.New(server.Config{Store: st, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), SoftwareVersion: "test"})
	for _, r := range []struct{ path, body string }{
		{"/fhir/Patient/a", `{"resourceType":"Patient","id":"a","name":[{"family":"Ó Briain"}],"birthDate":"1970-03-15","gender":"female"}`},
		{"/fhir/Patient/b", `{"resourceType":"Patient","id":"b","name":[{"family":"Smith"}],"birthDate":"1970"}`},
		{"/fhir/Observation/o", `{"resourceType":"Observation","id":"o","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},` +
			`"subject":{"reference":"Patient/a"},"effectiveDateTime":"2025-01-01T10:30:00+01:00","valueQuantity":{"value":125,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}`},
	} {
		req := httptest.NewRequest(http.MethodPut, r.path, strings.NewReader(r.body))
		req.Header.Set("Content-Type", "application/fhir+json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			f.Fatalf("PUT %s: %d %s", r.path, rec.Code, rec.Body)
		}
	}
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
	st, err := sqlite.Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	h := server.New(server.Config{Store: st, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), SoftwareVersion: "test"})
	req := httptest.NewRequest(http.MethodPut, "/fhir/Patient/a", strings.NewReader(`{"resourceType":"Patient","id":"a","active":false}`))
	req.Header.Set("Content-Type", "application/fhir+json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		f.Fatalf("PUT Patient/a: %d %s", rec.Code, rec.Body)
	}
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
