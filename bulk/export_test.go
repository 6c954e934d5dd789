package bulk

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"carefhir/fhir/search"
	"carefhir/mappers/pds"
	"carefhir/operation"
	"carefhir/profiles/conformance"
	"carefhir/server"
	"carefhir/server/access"
	"carefhir/store"
	"carefhir/store/mongo"
	"carefhir/store/mongo/ferrettest"
)

// TestSystemExport: the kick-off, status and manifest exchange of the IG,
// header by header, and files for the principal that started the job only.
func TestSystemExport(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		for i := range 20 {
			e.put(fmt.Sprintf("/Patient/p%02d", i), patient(fmt.Sprintf("p%02d", i)))
		}
		e.put("/Observation/o1", observation("o1", "p01", "laboratory"))
		e.put("/Observation/o2", observation("o2", "p02", "vital-signs"))

		status := e.kickOff("admin", "/$export?_type=Patient,%20Observation&_outputFormat=application/fhir%2Bndjson")
		if !strings.HasPrefix(status, e.base+"/$export-status?_jobId=") {
			t.Fatalf("Content-Location %s", status)
		}
		m := e.wait("admin", status)
		if _, err := time.Parse(time.RFC3339, m.TransactionTime); err != nil || !m.RequiresAccessToken || len(m.Error) != 0 {
			t.Errorf("manifest %+v", m)
		}
		if !strings.HasPrefix(m.Request, e.base+"/$export?") || !strings.Contains(m.Request, "_type=Patient%2C+Observation") {
			t.Errorf("manifest request %q", m.Request)
		}
		ids := e.ids("admin", m)
		if len(ids["Patient"]) != 20 || fmt.Sprint(ids["Observation"]) != "[o1 o2]" || len(m.Output) != 2 {
			t.Errorf("exported %v", ids)
		}

		// A whole file is sent gzipped to a client that accepts gzip, and as
		// it is for a range, so that a lost download can be resumed.
		plain := e.do("admin", "GET", m.Output[0].URL, "", "Accept-Encoding", "identity")
		zipped := e.do("admin", "GET", m.Output[0].URL, "", "Accept-Encoding", "gzip")
		if plain.header.Get("Content-Encoding") != "" || zipped.header.Get("Content-Encoding") != "gzip" || len(zipped.body) >= len(plain.body) {
			t.Errorf("file: Content-Encoding %q (%d bytes) and %q (%d bytes)", plain.header.Get("Content-Encoding"), len(plain.body),
				zipped.header.Get("Content-Encoding"), len(zipped.body))
		} else if zr, err := gzip.NewReader(strings.NewReader(zipped.body)); err != nil {
			t.Error(err)
		} else if unzipped, err := io.ReadAll(zr); err != nil || string(unzipped) != plain.body {
			t.Errorf("gzipped file: %v, %d bytes, want the %d of the file", err, len(unzipped), len(plain.body))
		}
		// HEAD answers as GET, without the body, for the file and the status.
		if h := e.do("admin", "HEAD", m.Output[0].URL, "", "Accept-Encoding", "identity"); h.status != 200 || h.body != "" ||
			h.header.Get("Content-Length") != fmt.Sprint(len(plain.body)) {
			t.Errorf("HEAD file: %d, Content-Length %q of %d bytes, body %q", h.status, h.header.Get("Content-Length"), len(plain.body), h.body)
		}
		if h := e.do("admin", "HEAD", m.Output[0].URL, "", "Accept-Encoding", "gzip"); h.status != 200 || h.body != "" || h.header.Get("Content-Encoding") != "gzip" {
			t.Errorf("HEAD file with gzip: %d, Content-Encoding %q, body %q", h.status, h.header.Get("Content-Encoding"), h.body)
		}
		if h := e.do("admin", "HEAD", status, ""); h.status != 200 || h.body != "" {
			t.Errorf("HEAD status: %d, body %q", h.status, h.body)
		}
		part := e.do("admin", "GET", m.Output[0].URL, "", "Accept-Encoding", "gzip", "Range", "bytes=0-9")
		if part.status != http.StatusPartialContent || part.header.Get("Content-Encoding") != "" || part.body != plain.body[:10] {
			t.Errorf("range: %d, Content-Encoding %q, %q", part.status, part.header.Get("Content-Encoding"), part.body)
		}

		// The files and status are the owner's alone.
		for _, who := range []string{"other", ""} {
			if r := e.do(who, "GET", m.Output[0].URL, ""); r.status != 404 && r.status != 401 {
				t.Errorf("file as %q: %d", who, r.status)
			}
			if r := e.do(who, "GET", status, ""); r.status != 404 && r.status != 401 {
				t.Errorf("status as %q: %d", who, r.status)
			}
		}
		if r := e.do("admin", "GET", e.base+"/$export-file?_jobId=nope&file=Patient.ndjson", ""); r.status != 404 {
			t.Errorf("unknown job: %d", r.status)
		}

		// DELETE removes the job and its files.
		if r := e.do("admin", "DELETE", status, ""); r.status != 202 {
			t.Fatalf("DELETE: %d %s", r.status, r.body)
		}
		if r := e.do("admin", "GET", status, ""); r.status != 404 {
			t.Errorf("status after DELETE: %d", r.status)
		}
		if r := e.do("admin", "GET", m.Output[0].URL, ""); r.status != 404 {
			t.Errorf("file after DELETE: %d", r.status)
		}
	})
}

// TestFilesNeedTheScopesOfTheExport: a later token of the client that
// started an export, allowed less (its registration narrowed, or fewer
// scopes asked for), reads the status but is refused each file holding a
// type it may not search as far as the token of the kick-off could.
func TestFilesNeedTheScopesOfTheExport(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		e.put("/Patient/p1", patient("p1"))
		e.put("/Observation/o1", observation("o1", "p1", "laboratory"))
		e.put("/Observation/o2", observation("o2", "p1", "vital-signs"))
		since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
		status := e.kickOff("admin", "/$export?_type=Patient,Observation&_since="+since)
		m := e.wait("admin", status)
		if len(m.Output) != 2 || len(m.Deleted) != 0 {
			t.Fatalf("manifest %+v", m)
		}
		for _, who := range []string{"admin-patients", "admin-lab", "admin-vitals"} {
			if r := e.do(who, "GET", status, ""); r.status != 200 {
				t.Errorf("status as %s: %d %s", who, r.status, r.body)
			}
		}
		for _, o := range m.Output {
			for who, want := range map[string]int{"admin": 200, "admin-patients": 403, "admin-lab": 403, "admin-vitals": 403} {
				if o.Type == "Patient" && who != "admin-vitals" {
					want = 200
				}
				r := e.do(who, "GET", o.URL, "")
				if r.status != want || want == 403 && (strings.Contains(r.body, `"o1"`) || !strings.Contains(r.body, "OperationOutcome") ||
					r.header.Get("WWW-Authenticate") != `Bearer error="insufficient_scope"`) {
					t.Errorf("%s file as %s: %d %s, want %d", o.Type, who, r.status, r.body, want)
				}
			}
		}

		// An export under a restricted scope is for a token restricted as
		// much, or unrestricted.
		m = e.wait("admin-lab", e.kickOff("admin-lab", "/$export?_type=Observation"))
		if len(m.Output) != 1 || m.Output[0].Count != 1 {
			t.Fatalf("restricted export: %+v", m)
		}
		for who, want := range map[string]int{"admin": 200, "admin-lab": 200, "admin-vitals": 403, "admin-patients": 403} {
			if r := e.do(who, "GET", m.Output[0].URL, ""); r.status != want {
				t.Errorf("restricted export's file as %s: %d, want %d", who, r.status, want)
			}
		}

		// The deleted file names resources of every type exported.
		if r := e.do("admin", "DELETE", "/Observation/o2", ""); r.status != 200 && r.status != 204 {
			t.Fatalf("DELETE: %d", r.status)
		}
		m = e.wait("admin", e.kickOff("admin", "/$export?_type=Patient,Observation&_since="+since))
		if len(m.Deleted) != 1 {
			t.Fatalf("manifest %+v", m)
		}
		for who, want := range map[string]int{"admin": 200, "admin-patients": 403} {
			if r := e.do(who, "GET", m.Deleted[0].URL, ""); r.status != want {
				t.Errorf("deleted file as %s: %d, want %d", who, r.status, want)
			}
		}
	})
}

// TestManifestListsTheFilesOfTheToken: a later token of the client that
// started an export, allowed less, polls the status and is shown only the
// output and deleted files it may download; the error file is shown to any.
func TestManifestListsTheFilesOfTheToken(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		e.put("/Patient/p1", patient("p1"))
		e.put("/Observation/o1", observation("o1", "p1", "laboratory"))
		e.put("/Observation/o2", observation("o2", "p1", "vital-signs"))
		if r := e.do("admin", "DELETE", "/Observation/o2", ""); r.status != 200 && r.status != 204 {
			t.Fatalf("DELETE: %d", r.status)
		}
		since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
		status := e.kickOff("admin", "/$export?_type=Patient,Observation&_since="+since)
		if m := e.wait("admin", status); len(m.Output) != 2 || len(m.Deleted) != 1 {
			t.Fatalf("manifest as admin: %+v", m)
		}
		for _, who := range []string{"admin-patients", "admin-lab"} {
			m := e.wait(who, status)
			if len(m.Output) != 1 || m.Output[0].Type != "Patient" || m.Output[0].Count != 1 || len(m.Deleted) != 0 {
				t.Errorf("manifest as %s: %+v, want the Patient file only", who, m)
				continue
			}
			if r := e.do(who, "GET", m.Output[0].URL, ""); r.status != 200 {
				t.Errorf("listed file as %s: %d %s", who, r.status, r.body)
			}
		}
		if m := e.wait("admin-vitals", status); len(m.Output) != 0 || len(m.Deleted) != 0 {
			t.Errorf("manifest as admin-vitals: %+v, want no file", m)
		}

		// The error file names no resource: every token of the owner sees it.
		status = e.kickOff("admin-lab", "/$export?_type=Observation,Condition")
		if m := e.wait("admin-lab", status); len(m.Output) != 1 || len(m.Error) != 1 {
			t.Fatalf("manifest as admin-lab: %+v", m)
		}
		if m := e.wait("admin-vitals", status); len(m.Output) != 0 || len(m.Error) != 1 {
			t.Errorf("manifest as admin-vitals: %+v, want the error file only", m)
		}
	})
}

// TestExportRefused: bulk export needs system/ scopes; bad parameters are
// 400 and start nothing.
func TestExportRefused(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		if r := e.do("nurse", "GET", "/$export", ""); r.status != 403 {
			t.Errorf("user/ scopes: %d %s", r.status, r.body)
		}
		if r := e.do("", "GET", "/$export", ""); r.status != 401 {
			t.Errorf("no token: %d", r.status)
		}
		for _, q := range []string{"_outputFormat=text/csv", "_since=yesterday", "_type=Spaceship", "_typeFilter=Observation%3Fcolour%3Dred",
			"_type=Patient&_typeFilter=Observation%3Fcategory%3Dlaboratory", "includeAssociatedData=LatestProvenanceResources",
			// Parameters the export does not apply: left out, each would
			// export more than was asked for.
			"_elements=id", "patient=Patient/p1", "organizeOutputBy=Patient", "shoe-size=9",
			// Parameters that shape a search's results are not filters.
			"_typeFilter=" + url.QueryEscape("Observation?_count=1"), "_typeFilter=" + url.QueryEscape("Observation?category=laboratory&_elements=id"),
			"_typeFilter=" + url.QueryEscape("Observation?_sort=-date"), "_typeFilter=" + url.QueryEscape("Observation?_summary=true"),
			"_typeFilter=" + url.QueryEscape("Observation?_include:iterate=Observation:subject")} {
			if r := e.do("admin", "GET", "/$export?"+q, ""); r.status != 400 || !strings.Contains(r.body, "OperationOutcome") {
				t.Errorf("%s: %d %s", q, r.status, r.body)
			}
		}
		post := `{"resourceType":"Parameters","parameter":[{"name":"patient","valueReference":{"reference":"Patient/p1"}}]}`
		if r := e.do("admin", "POST", "/Patient/$export", post, "Prefer", "respond-async"); r.status != 400 || !strings.Contains(r.body, "patient") {
			t.Errorf("POST with patient: %d %s", r.status, r.body)
		}
		if r := e.do("admin", "GET", "/Observation/$export", ""); r.status != 400 && r.status != 404 {
			t.Errorf("Observation/$export: %d", r.status)
		}
		// Prefer: respond-async is required, alone or with another
		// preference.
		if r := e.do("admin", "GET", "/$export?_type=Patient", "", "Prefer", "handling=lenient"); r.status != 400 || !strings.Contains(r.body, "respond-async") {
			t.Errorf("without Prefer: respond-async: %d %s", r.status, r.body)
		}
		// A HEAD, a safe method, starts no job.
		if r := e.do("admin", "HEAD", "/$export?_type=Patient", "", "Prefer", "respond-async"); r.status != 405 || r.header.Get("Allow") != "GET, POST" {
			t.Errorf("HEAD kick-off: %d, Allow %q, want 405 with GET, POST", r.status, r.header.Get("Allow"))
		}
		if e.x.Jobs() != 0 {
			t.Errorf("%d jobs started", e.x.Jobs())
		}
		e.wait("admin", e.do("admin", "GET", "/$export?_type=Patient", "", "Prefer", "handling=lenient, respond-async").header.Get("Content-Location"))
	})
}

// TestTypeFilterBounded: a kick-off carries at most as many _typeFilter
// queries as one search carries parameters (each is a search the export
// runs), and each query is held to the server's bounds on one search; past
// either it is 400 and starts nothing.
func TestTypeFilterBounded(t *testing.T) {
	filters := func(n int) string {
		var q []string
		for i := range n {
			q = append(q, "_typeFilter="+url.QueryEscape(fmt.Sprintf("Observation?code=c%d", i)))
		}
		return "/$export?_type=Observation&" + strings.Join(q, "&")
	}
	eachEngine(t, func(t *testing.T, e *env) {
		r := e.do("admin", "GET", filters(search.DefaultLimits.Params+1), "", "Prefer", "respond-async")
		if r.status != 400 || !strings.Contains(r.body, "too-costly") || !strings.Contains(r.body, "_typeFilter") {
			t.Errorf("%d _typeFilter queries: %d %s, want 400 too-costly", search.DefaultLimits.Params+1, r.status, r.body)
		}
		if e.x.Jobs() != 0 {
			t.Errorf("%d jobs started", e.x.Jobs())
		}
		e.wait("admin", e.kickOff("admin", filters(search.DefaultLimits.Params)))
	})
	// The server's limits, given to the export as carefhir serve gives
	// them.
	for _, eng := range engines {
		t.Run("server limits/"+eng.Name, func(t *testing.T) {
			e := newEnvWith(t, eng.Open(t), func(x *Config) { x.SearchLimits.Values = 2 }, func(c *server.Config) { c.Limits.Search.Values = 2 })
			r := e.do("admin", "GET", "/$export?_type=Observation&_typeFilter="+url.QueryEscape("Observation?code=a,b,c"), "", "Prefer", "respond-async")
			if r.status != 400 || !strings.Contains(r.body, "_typeFilter") {
				t.Errorf("a _typeFilter of 3 values, past the server's 2: %d %s, want 400", r.status, r.body)
			}
			e.wait("admin", e.kickOff("admin", "/$export?_type=Observation&_typeFilter="+url.QueryEscape("Observation?code=a,b")))
		})
	}
}

// TestTypeFilterBadEscape: a _typeFilter query of the form Type?search
// whose search does not parse (a bad percent-escape) is 400 saying so and
// quoting the escape, and starts nothing.
func TestTypeFilterBadEscape(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		r := e.do("admin", "GET", "/$export?_type=Patient&_typeFilter="+url.QueryEscape("Patient?_id=%zz"), "", "Prefer", "respond-async")
		if r.status != 400 || !strings.Contains(r.body, `"expression":["_typeFilter"]`) || !strings.Contains(r.body, `invalid URL escape \"%zz\"`) || strings.Contains(r.body, "Type?search") {
			t.Errorf("a _typeFilter with a bad escape: %d %s, want 400 naming the escape", r.status, r.body)
		}
		if e.x.Jobs() != 0 {
			t.Errorf("%d jobs started", e.x.Jobs())
		}
	})
}

// TestKickOffParameterWithoutValue: a kick-off parameter given without a
// value (empty, or with parts in place of one) is 400 naming it, lenient
// or not, and starts nothing: read as absent, it would export every type.
func TestKickOffParameterWithoutValue(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		for _, prefer := range []string{"respond-async", "handling=lenient, respond-async"} {
			for _, q := range []string{"_type=", "_typeFilter=", "_type=Patient&_type="} {
				if r := e.do("admin", "GET", "/$export?"+q, "", "Prefer", prefer); r.status != 400 || !strings.Contains(r.body, `"expression":["_type`) {
					t.Errorf("%s (%s): %d %s, want 400 naming the parameter", q, prefer, r.status, r.body)
				}
			}
			post := `{"resourceType":"Parameters","parameter":[{"name":"_type","part":[{"name":"type","valueString":"Patient"}]}]}`
			if r := e.do("admin", "POST", "/$export", post, "Prefer", prefer); r.status != 400 || !strings.Contains(r.body, `"expression":["_type"]`) {
				t.Errorf("POST _type with parts (%s): %d %s, want 400 naming _type", prefer, r.status, r.body)
			}
		}
		if n := e.jobRecords(); n != 0 {
			t.Errorf("%d jobs recorded, want none", n)
		}
	})
}

// TestExportBodyIsParameters: served as carefhir serve serves it, with
// the IG's OperationDefinitions, a POST kick-off whose body is not a
// Parameters resource is 400 and starts nothing: taken as no parameters,
// it would export every type.
func TestExportBodyIsParameters(t *testing.T) {
	cat, err := conformance.Load()
	if err != nil {
		t.Fatal(err)
	}
	defs, err := operation.Definitions(OperationDefinitions())
	if err != nil {
		t.Fatal(err)
	}
	if cat, err = cat.With(defs...); err != nil {
		t.Fatal(err)
	}
	for _, eng := range engines {
		t.Run(eng.Name, func(t *testing.T) {
			e := newEnv(t, eng.Open(t), func(c *server.Config) { c.Definitions = cat })
			for _, path := range []string{"/$export", "/Patient/$export"} {
				if r := e.do("admin", "POST", path, patient("p1"), "Prefer", "respond-async"); r.status != 400 || !strings.Contains(r.body, "Parameters") {
					t.Errorf("POST %s of a Patient: %d %s, want 400", path, r.status, r.body)
				}
			}
			if n := e.jobRecords(); n != 0 {
				t.Errorf("%d jobs recorded", n)
			}
			post := `{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Patient"}]}`
			r := e.do("admin", "POST", "/$export", post, "Prefer", "respond-async")
			if r.status != 202 {
				t.Fatalf("POST of Parameters: %d %s", r.status, r.body)
			}
			e.wait("admin", r.header.Get("Content-Location"))
		})
	}
}

// TestOutputFormats: each form of NDJSON the IG names is accepted, the
// full one with its "+" encoded or not.
func TestOutputFormats(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		e.put("/Patient/p1", patient("p1"))
		for _, f := range []string{"application/fhir%2Bndjson", "application/fhir+ndjson", "application/ndjson", "ndjson"} {
			got := e.ids("admin", e.wait("admin", e.kickOff("admin", "/$export?_type=Patient&_outputFormat="+f)))
			if fmt.Sprint(got) != "map[Patient:[p1]]" {
				t.Errorf("_outputFormat=%s: %v", f, got)
			}
		}
	})
}

// TestExportMasksChannelHeaders: an exported Subscription shows the names
// of its channel headers, not their values, as every answer of the API.
func TestExportMasksChannelHeaders(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		e.put("/Subscription/s1", `{"resourceType":"Subscription","id":"s1","status":"off","reason":"test","criteria":"Patient?active=true",`+
			`"channel":{"type":"rest-hook","endpoint":"https://rx.test/hook","header":["Authorization: Bearer s3cret"]}}`)
		file := e.files("admin", e.wait("admin", e.kickOff("admin", "/$export?_type=Subscription")))["Subscription"]
		if strings.Contains(file, "s3cret") || !strings.Contains(file, `"Authorization: ****"`) {
			t.Errorf("exported %s", file)
		}
	})
}

// TestExportLenient: under Prefer: handling=lenient a parameter the export
// does not apply is ignored rather than refused.
func TestExportLenient(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		e.put("/Patient/p1", `{"resourceType":"Patient","id":"p1","name":[{"family":"Lenient"}]}`)
		r := e.do("admin", "GET", "/$export?_type=Patient&_elements=id", "", "Prefer", "respond-async, handling=lenient")
		if r.status != 202 {
			t.Fatalf("kick-off: %d %s", r.status, r.body)
		}
		files := e.files("admin", e.wait("admin", r.header.Get("Content-Location")))
		if !strings.Contains(files["Patient"], `"Lenient"`) {
			t.Errorf("the Patient was exported subsetted, or not at all: %v", files)
		}
	})
}

// TestExportFilters: _type, _since, _typeFilter, and the scopes of the
// owner narrow what is exported.
func TestExportFilters(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		e.put("/Patient/p1", patient("p1"))
		e.put("/Observation/o1", observation("o1", "p1", "laboratory"))
		e.put("/Observation/o2", observation("o2", "p1", "vital-signs"))
		time.Sleep(5 * time.Millisecond) // lastUpdated has millisecond precision
		since := time.Now().UTC()
		time.Sleep(5 * time.Millisecond)
		e.put("/Observation/o3", observation("o3", "p1", "laboratory"))

		got := e.ids("admin", e.wait("admin", e.kickOff("admin", "/$export?_type=Observation&_typeFilter="+url.QueryEscape("Observation?category=laboratory"))))
		if fmt.Sprint(got) != "map[Observation:[o1 o3]]" {
			t.Errorf("_typeFilter: %v", got)
		}
		// A filter's own commas (either value) are not taken for the
		// commas between filters.
		e.put("/Observation/o4", observation("o4", "p1", "social-history"))
		for _, filter := range []string{
			"Observation?category=laboratory,social-history",
			"Observation?category=laboratory,social-history,Observation?_id=o2",
		} {
			got = e.ids("admin", e.wait("admin", e.kickOff("admin", "/$export?_type=Observation&_typeFilter="+url.QueryEscape(filter))))
			want := "map[Observation:[o1 o3 o4]]"
			if strings.Contains(filter, "o2") {
				want = "map[Observation:[o1 o2 o3 o4]]"
			}
			if fmt.Sprint(got) != want {
				t.Errorf("_typeFilter=%s: %v, want %s", filter, got, want)
			}
		}
		if r := e.do("admin", "DELETE", "/Observation/o4", ""); r.status != 200 && r.status != 204 {
			t.Fatalf("DELETE o4: %d", r.status)
		}
		got = e.ids("admin", e.wait("admin", e.kickOff("admin", "/$export?_since="+url.QueryEscape(since.Format(time.RFC3339Nano)))))
		if fmt.Sprint(got) != "map[Observation:[o3]]" {
			t.Errorf("_since: %v", got)
		}
		// The + of a time zone, unencoded, reads as a space.
		inLondon := since.In(time.FixedZone("BST", 3600)).Format(time.RFC3339Nano)
		got = e.ids("admin", e.wait("admin", e.kickOff("admin", "/$export?_since="+strings.ReplaceAll(url.QueryEscape(inLondon), "%2B", "+"))))
		if fmt.Sprint(got) != "map[Observation:[o3]]" {
			t.Errorf("_since=%s: %v", inLondon, got)
		}
		// POST, with _since of the type the IG's OperationDefinition has.
		post := `{"resourceType":"Parameters","parameter":[{"name":"_since","valueInstant":"` + since.Format(time.RFC3339Nano) + `"},` +
			`{"name":"_type","valueString":"Observation"}]}`
		r := e.do("admin", "POST", "/$export", post, "Prefer", "respond-async")
		if r.status != 202 {
			t.Fatalf("POST kick-off: %d %s", r.status, r.body)
		}
		got = e.ids("admin", e.wait("admin", r.header.Get("Content-Location")))
		if fmt.Sprint(got) != "map[Observation:[o3]]" {
			t.Errorf("POST _since valueInstant: %v", got)
		}
		got = e.ids("lab", e.wait("lab", e.kickOff("lab", "/$export")))
		if fmt.Sprint(got) != "map[Observation:[o1 o2 o3]]" {
			t.Errorf("system/Observation.rs: %v", got)
		}
		// A type named by _type outside the token's scopes is an error of
		// the manifest: an OperationOutcome in the error file.
		m := e.wait("lab", e.kickOff("lab", "/$export?_type=Patient,Observation"))
		if len(m.Output) != 1 || len(m.Error) != 1 {
			t.Fatalf("manifest %+v", m)
		}
		var ef struct {
			Type, URL string
			Count     int
		}
		json.Unmarshal(m.Error[0], &ef)
		r = e.do("lab", "GET", ef.URL, "")
		if ef.Type != "OperationOutcome" || ef.Count != 1 || r.header.Get("Content-Type") != "application/fhir+ndjson" ||
			!strings.Contains(r.body, `"resourceType":"OperationOutcome"`) || !strings.Contains(r.body, "Patient was not exported") {
			t.Errorf("error file %+v: %s", ef, r.body)
		}
	})
}

// TestExportDeletedSince: an export _since an instant lists, in its
// deleted file, a transaction Bundle deleting each resource in its scope
// that was deleted since then, and not those created again.
func TestExportDeletedSince(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		e.put("/Patient/p1", patient("p1"))
		e.put("/Location/l1", `{"resourceType":"Location","id":"l1","name":"Ward 1"}`)
		for _, id := range []string{"o1", "o2", "o3"} {
			e.put("/Observation/"+id, observation(id, "p1", "laboratory"))
		}
		e.put("/Observation/ward", `{"resourceType":"Observation","id":"ward","status":"final","code":{"text":"x"},"subject":{"reference":"Location/l1"}}`)
		time.Sleep(5 * time.Millisecond)
		since := time.Now().UTC()
		time.Sleep(5 * time.Millisecond)
		for _, id := range []string{"o1", "o2", "ward"} {
			if r := e.do("admin", "DELETE", "/Observation/"+id, ""); r.status != 200 && r.status != 204 {
				t.Fatalf("DELETE %s: %d %s", id, r.status, r.body)
			}
		}
		e.put("/Observation/o2", observation("o2", "p1", "vital-signs"))

		for _, tt := range []struct{ path, want string }{
			{"/$export?_type=Observation&_since=", "[Observation/o1 Observation/ward]"},
			{"/Patient/$export?_type=Observation&_since=", "[Observation/o1]"},
		} {
			status := e.kickOff("admin", tt.path+url.QueryEscape(since.Format(time.RFC3339Nano)))
			m := e.wait("admin", status)
			if got := e.ids("admin", m); fmt.Sprint(got) != "map[Observation:[o2]]" {
				t.Errorf("%s: output %v", tt.path, got)
			}
			// Its download is audited per patient, from the list beside it.
			job := strings.TrimPrefix(status, e.base+"/$export-status?_jobId=")
			if b, err := os.ReadFile(filepath.Join(e.x.jobDir(job), deletedFile+patientsSuffix)); err != nil || string(b) != "p1\n" {
				t.Errorf("%s: patients of the deleted file %q, %v; want p1", tt.path, b, err)
			}
			if len(m.Deleted) != 1 || m.Deleted[0].Type != "Bundle" {
				t.Fatalf("%s: deleted %+v", tt.path, m.Deleted)
			}
			r := e.do("admin", "GET", m.Deleted[0].URL, "")
			if r.status != 200 || r.header.Get("Content-Type") != "application/fhir+ndjson" {
				t.Fatalf("%s: deleted file %d %q %s", tt.path, r.status, r.header.Get("Content-Type"), r.body)
			}
			var deleted []string
			for _, line := range strings.Split(strings.TrimSpace(r.body), "\n") {
				var b struct {
					ResourceType, Type string
					Entry              []struct{ Request struct{ Method, URL string } }
				}
				if err := json.Unmarshal([]byte(line), &b); err != nil || b.ResourceType != "Bundle" || b.Type != "transaction" || len(b.Entry) != 1 || b.Entry[0].Request.Method != "DELETE" {
					t.Fatalf("%s: deleted line %s", tt.path, line)
				}
				deleted = append(deleted, b.Entry[0].Request.URL)
			}
			sort.Strings(deleted)
			if fmt.Sprint(deleted) != tt.want || m.Deleted[0].Count != len(deleted) {
				t.Errorf("%s: deleted %v (count %d), want %s", tt.path, deleted, m.Deleted[0].Count, tt.want)
			}
		}
		// Without _since nothing is listed as deleted.
		if m := e.wait("admin", e.kickOff("admin", "/$export?_type=Observation")); len(m.Deleted) != 0 {
			t.Errorf("deleted without _since: %+v", m.Deleted)
		}
	})
}

// readCounter is the server's store as the exporter is given it, counting
// the resources its searches return.
type readCounter struct {
	operation.Store
	found *atomic.Int64
}

func (c readCounter) Find(ctx context.Context, q store.Query) (*store.Page, error) {
	p, err := c.Store.Find(ctx, q)
	if err == nil {
		c.found.Add(int64(len(p.Matches)))
	}
	return p, err
}

func (c readCounter) Records() store.Tx { return c.Store.(recorder).Records() }

func (c readCounter) VRead(ctx context.Context, typ, id string, version int64) (*store.Version, error) {
	return c.Store.(versionReader).VRead(ctx, typ, id, version)
}

func (c readCounter) History(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	return c.Store.(versionReader).History(ctx, q)
}

// TestSinceReadsOnlyChanges: an export _since reads what changed since,
// not the whole of each type, so that a shared care record exporting
// every few minutes does not read every record each time.
func TestSinceReadsOnlyChanges(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.Name, func(t *testing.T) {
			var found atomic.Int64
			e := newEnv(t, eng.Open(t), func(c *server.Config) {
				attach := c.Attach[0]
				c.Attach[0] = func(st operation.Store) { attach(readCounter{st, &found}) }
			})
			for i := range 30 {
				e.put(fmt.Sprintf("/Patient/p%02d", i), patient(fmt.Sprintf("p%02d", i)))
			}
			time.Sleep(5 * time.Millisecond)
			since := time.Now().UTC()
			time.Sleep(5 * time.Millisecond)
			e.put("/Patient/p01", `{"resourceType":"Patient","id":"p01","gender":"female"}`)
			e.put("/Patient/new", patient("new"))
			found.Store(0)
			m := e.wait("admin", e.kickOff("admin", "/$export?_type=Patient&_since="+url.QueryEscape(since.Format(time.RFC3339Nano))))
			if got := e.ids("admin", m); fmt.Sprint(got) != "map[Patient:[new p01]]" {
				t.Errorf("exported %v", got)
			}
			if n := found.Load(); n != 2 {
				t.Errorf("the export read %d Patients to find the 2 changed since", n)
			}
		})
	}
}

// TestGroupAndPatientExport: a Group's export holds its members' records
// only; Patient/$export holds the compartment types.
func TestGroupAndPatientExport(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		e.put("/Patient/p1", patient("p1"))
		e.put("/Patient/p2", patient("p2"))
		e.put("/Observation/o1", observation("o1", "p1", "laboratory"))
		e.put("/Observation/o2", observation("o2", "p2", "laboratory"))
		e.put("/Organization/org", `{"resourceType":"Organization","id":"org","name":"PCN"}`)
		e.put("/Group/g", `{"resourceType":"Group","id":"g","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/p1"}}]}`)

		got := e.ids("admin", e.wait("admin", e.kickOff("admin", "/Group/g/$export")))
		if fmt.Sprint(got) != "map[Group:[g] Observation:[o1] Patient:[p1]]" { // the Group is in its member's compartment
			t.Errorf("Group/g: %v", got)
		}

		// A Group not held, deleted, or that the token cannot read is
		// refused at kick-off, and no job is recorded.
		e.put("/Group/old", `{"resourceType":"Group","id":"old","type":"person","actual":true}`)
		if r := e.do("admin", "DELETE", "/Group/old", ""); r.status != 200 && r.status != 204 {
			t.Fatalf("DELETE Group/old: %d %s", r.status, r.body)
		}
		jobs := e.jobRecords()
		for _, tt := range []struct {
			who, path string
			status    int
		}{
			{"admin", "/Group/nope/$export", 404},
			{"admin", "/Group/old/$export", 404},
			{"lab", "/Group/g/$export", 403},
		} {
			r := e.do(tt.who, "GET", tt.path, "", "Prefer", "respond-async")
			if r.status != tt.status || !strings.Contains(r.body, `"resourceType":"OperationOutcome"`) || r.header.Get("Content-Location") != "" {
				t.Errorf("%s as %s: %d %s %v", tt.path, tt.who, r.status, r.body, r.header)
			}
		}
		if r := e.do("admin", "GET", "/Group/nope/$export", ""); !strings.Contains(r.body, "Group/nope is not known") {
			t.Errorf("Group/nope: %s", r.body)
		}
		if n := e.jobRecords(); n != jobs {
			t.Errorf("%d job records after refused kick-offs, %d before", n, jobs)
		}
		got = e.ids("admin", e.wait("admin", e.kickOff("admin", "/Patient/$export")))
		if fmt.Sprint(got) != "map[Group:[g] Observation:[o1 o2] Patient:[p1 p2]]" && fmt.Sprint(got) != "map[Observation:[o1 o2] Patient:[p1 p2]]" {
			t.Errorf("Patient/$export: %v", got)
		}
		if _, ok := got["Organization"]; ok {
			t.Errorf("Patient/$export holds Organizations: %v", got)
		}
	})
}

// TestGroupWrittenByAProcessAhead: a Group just written by a process
// whose clock is ahead of the kick-off's, every version of it later than
// the transaction time, is exported with the members it was written
// with, not refused as unknown.
func TestGroupWrittenByAProcessAhead(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		e.put("/Patient/p1", patient("p1"))
		e.put("/Patient/p2", patient("p2"))
		e.putRecordAt("Group", "g", `{"resourceType":"Group","id":"g","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/p1"}}]}`,
			time.Now().Add(time.Hour))
		got := e.ids("admin", e.wait("admin", e.kickOff("admin", "/Group/g/$export?_type=Patient")))
		if fmt.Sprint(got) != "map[Patient:[p1]]" {
			t.Errorf("Group/g written ahead: %v, want its member p1", got)
		}
	})
}

// whereabouts are a Patient's elements that say where the person is.
const whereabouts = `"address":[{"line":["1 Hidden Lane"],"postalCode":"LS1 1AA"}],"telecom":[{"system":"phone","value":"0113 000 0000"}]`

// label is the meta of a resource labelled with a v3-Confidentiality code.
func label(code string) string {
	return `"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"` + code + `"}]}`
}

// TestRestrictedPatientWhereabouts: a restricted (R or V) Patient whose
// record still holds where the person is, stored before such records were
// kept without it, is exported without its address, telecoms, contacts
// and practice, as PDS withholds them; another Patient is exported as
// stored.
func TestRestrictedPatientWhereabouts(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		e.x.cfg.Redact = pds.RedactJSON
		e.put("/Patient/r", `{"resourceType":"Patient","id":"r",`+label("R")+`,`+whereabouts+`}`)
		e.put("/Patient/v", `{"resourceType":"Patient","id":"v",`+label("V")+`,`+whereabouts+`}`)
		e.put("/Patient/n", `{"resourceType":"Patient","id":"n",`+label("N")+`,`+whereabouts+`}`)
		m := e.wait("admin", e.kickOff("admin", "/$export?_type=Patient"))
		for _, line := range strings.Split(strings.TrimSpace(e.files("admin", m)["Patient"]), "\n") {
			var p struct {
				ID      string
				Address []any
				Telecom []any
			}
			if err := json.Unmarshal([]byte(line), &p); err != nil {
				t.Fatal(err)
			}
			if restricted := p.ID != "n"; restricted != (len(p.Address) == 0 && len(p.Telecom) == 0) {
				t.Errorf("Patient/%s exported as %s", p.ID, line)
			}
		}
	})
}

// TestRestrictedPatientNested: a restricted Patient inside another
// resource, an entry of a stored Bundle or contained in a resource
// labelled restricted (R4 lets a contained resource carry no label of its
// own), is exported without its whereabouts as one on its own is; the
// resources around it, and a Patient not restricted, as stored.
func TestRestrictedPatientNested(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		e.x.cfg.Redact = pds.RedactJSON
		e.put("/Bundle/b", `{"resourceType":"Bundle","id":"b","type":"collection","entry":[`+
			`{"fullUrl":"urn:uuid:0b3c1f62-3f0e-4c8e-9f55-1d2a7d6f3a01","resource":{"resourceType":"Patient",`+label("R")+`,`+whereabouts+`}},`+
			`{"fullUrl":"urn:uuid:0b3c1f62-3f0e-4c8e-9f55-1d2a7d6f3a02","resource":{"resourceType":"Patient",`+label("N")+`,`+whereabouts+`}}]}`)
		e.putRecord("Observation", "o", `{"resourceType":"Observation","id":"o",`+label("V")+`,`+
			`"contained":[{"resourceType":"Patient","id":"p",`+whereabouts+`}],"status":"final","code":{"text":"x"},"subject":{"reference":"#p"}}`)
		e.putRecord("Observation", "plain", `{"resourceType":"Observation","id":"plain",`+label("N")+`,`+
			`"contained":[{"resourceType":"Patient","id":"p",`+whereabouts+`}],"status":"final","code":{"text":"x"},"subject":{"reference":"#p"}}`)
		files := e.files("admin", e.wait("admin", e.kickOff("admin", "/$export?_type=Bundle,Observation")))
		var b struct {
			Entry []struct {
				Resource struct {
					Meta    struct{ Security []struct{ Code string } }
					Address []any
					Telecom []any
				}
			}
		}
		if err := json.Unmarshal([]byte(strings.TrimSpace(files["Bundle"])), &b); err != nil || len(b.Entry) != 2 {
			t.Fatalf("Bundle exported as %s (%v)", files["Bundle"], err)
		}
		for _, en := range b.Entry {
			if restricted := en.Resource.Meta.Security[0].Code == "R"; restricted != (len(en.Resource.Address) == 0 && len(en.Resource.Telecom) == 0) {
				t.Errorf("Bundle exported as %s", files["Bundle"])
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(files["Observation"]), "\n") {
			var o struct {
				ID        string
				Status    string
				Contained []struct {
					ID      string
					Address []any
					Telecom []any
				}
			}
			if err := json.Unmarshal([]byte(line), &o); err != nil || len(o.Contained) != 1 {
				t.Fatalf("Observation exported as %s (%v)", line, err)
			}
			c := o.Contained[0]
			if restricted := o.ID == "o"; restricted != (len(c.Address) == 0 && len(c.Telecom) == 0) || c.ID != "p" || o.Status != "final" {
				t.Errorf("Observation/%s exported as %s", o.ID, line)
			}
		}
	})
}

// TestGroupMembers: a Group's export leaves out the members it flags
// inactive and those whose period in it has ended or not begun, and reads
// its member references as search does.
func TestGroupMembers(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		for _, id := range []string{"now", "left", "ended", "later", "open"} {
			e.put("/Patient/"+id, patient(id))
			e.put("/Observation/o-"+id, observation("o-"+id, id, "laboratory"))
		}
		e.put("/Group/g", `{"resourceType":"Group","id":"g","type":"person","actual":true,"member":[`+
			`{"entity":{"reference":"Patient/now"},"inactive":false},`+
			`{"entity":{"reference":"Patient/left"},"inactive":true},`+
			`{"entity":{"reference":"Patient/ended"},"period":{"start":"2020-01-01","end":"2024-06"}},`+
			`{"entity":{"reference":"Patient/later"},"period":{"start":"2999-01-01"}},`+
			`{"entity":{"reference":"Patient/open"},"period":{"start":"2020-01-01"}}]}`)
		got := e.ids("admin", e.wait("admin", e.kickOff("admin", "/Group/g/$export?_type=Patient,Observation")))
		if fmt.Sprint(got) != "map[Observation:[o-now o-open] Patient:[now open]]" {
			t.Errorf("Group/g: %v", got)
		}
		// A member referred to by this server's URL, or with a version, is
		// a member as search reads it; another server's Patient is not.
		e.put("/Group/abs", `{"resourceType":"Group","id":"abs","type":"person","actual":true,"member":[`+
			`{"entity":{"reference":"`+e.base+`/Patient/now"}},{"entity":{"reference":"Patient/open/_history/1"}},`+
			`{"entity":{"reference":"https://elsewhere.example/fhir/Patient/left"}}]}`)
		got = e.ids("admin", e.wait("admin", e.kickOff("admin", "/Group/abs/$export?_type=Patient,Observation")))
		if fmt.Sprint(got) != "map[Observation:[o-now o-open] Patient:[now open]]" {
			t.Errorf("Group/abs: %v", got)
		}
	})
}

// TestGroupStoredDaylessPeriod: a Group stored before writes refused a date
// on a day its month lacks is still exported: a member whose period starts
// on 29 February of a year without one is a member, a bound no calendar has
// limiting nothing, as an unreadable bound always did.
func TestGroupStoredDaylessPeriod(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		for _, id := range []string{"now", "odd"} {
			e.put("/Patient/"+id, patient(id))
		}
		e.putRecord("Group", "g", `{"resourceType":"Group","id":"g","meta":{"versionId":"1","lastUpdated":"2020-01-02T03:04:05.000Z"},"type":"person","actual":true,"member":[`+
			`{"entity":{"reference":"Patient/now"}},{"entity":{"reference":"Patient/odd"},"period":{"start":"2023-02-29"}}]}`)
		got := e.ids("admin", e.wait("admin", e.kickOff("admin", "/Group/g/$export?_type=Patient")))
		if fmt.Sprint(got) != "map[Patient:[now odd]]" {
			t.Errorf("Group/g: %v", got)
		}
	})
}

// TestPatientExportCompartments: Patient/$export holds, of each type, what
// is in some Patient's compartment: not an Observation of a Location nor
// one of no subject, not an AuditEvent that names no patient, which the
// system export holds.
func TestPatientExportCompartments(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		e.put("/Patient/p1", patient("p1"))
		e.put("/Location/l1", `{"resourceType":"Location","id":"l1","name":"Ward 1"}`)
		e.put("/Observation/o1", observation("o1", "p1", "laboratory"))
		e.put("/Observation/gone", observation("gone", "gone", "laboratory")) // of a Patient not (or no longer) held
		e.put("/Observation/ward", `{"resourceType":"Observation","id":"ward","status":"final","code":{"text":"x"},"subject":{"reference":"Location/l1"}}`)
		e.put("/Observation/none", `{"resourceType":"Observation","id":"none","status":"final","code":{"text":"x"}}`)
		e.put("/Observation/perf", `{"resourceType":"Observation","id":"perf","status":"final","code":{"text":"x"},"subject":{"reference":"Location/l1"},"performer":[{"reference":"Patient/p1"}]}`)
		audit := func(id, who string) string {
			return `{"resourceType":"AuditEvent","id":"` + id + `","type":{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest"},` +
				`"recorded":"2026-01-01T00:00:00Z","agent":[{"requestor":true,"who":{"reference":"` + who + `"}}],"source":{"observer":{"display":"carefhir"}}}`
		}
		e.putRecord("AuditEvent", "a-patient", audit("a-patient", "Patient/p1"))
		e.putRecord("AuditEvent", "a-system", audit("a-system", "Device/d1"))

		got := e.ids("admin", e.wait("admin", e.kickOff("admin", "/Patient/$export?_type=Patient,Observation,AuditEvent")))
		if fmt.Sprint(got) != "map[AuditEvent:[a-patient] Observation:[gone o1 perf] Patient:[p1]]" {
			t.Errorf("Patient/$export: %v", got)
		}
		got = e.ids("admin", e.wait("admin", e.kickOff("admin", "/Patient/$export?_type=Observation&_typeFilter="+url.QueryEscape("Observation?category=laboratory"))))
		if fmt.Sprint(got) != "map[Observation:[gone o1]]" {
			t.Errorf("Patient/$export with _typeFilter: %v", got)
		}
		got = e.ids("admin", e.wait("admin", e.kickOff("admin", "/$export?_type=Observation,AuditEvent")))
		if fmt.Sprint(got) != "map[AuditEvent:[a-patient a-system] Observation:[gone none o1 perf ward]]" {
			t.Errorf("$export: %v", got)
		}
	})
}

// TestSnapshot: writes after the transaction time do not appear; the
// version current at that time does.
func TestSnapshot(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		e.put("/Patient/p1", patient("p1"))
		e.put("/Patient/p2", patient("p2"))
		time.Sleep(5 * time.Millisecond)
		e.clock.set(time.Now().UTC().Truncate(time.Millisecond))
		time.Sleep(5 * time.Millisecond)
		e.put("/Patient/p1", `{"resourceType":"Patient","id":"p1","gender":"female"}`)
		e.put("/Patient/p3", patient("p3"))
		m := e.wait("admin", e.kickOff("admin", "/$export?_type=Patient"))
		got := e.ids("admin", m)
		if fmt.Sprint(got) != "map[Patient:[p1 p2]]" {
			t.Fatalf("snapshot: %v", got)
		}
		body := e.do("admin", "GET", m.Output[0].URL, "").body
		if strings.Contains(body, "female") {
			t.Errorf("a version written after the transaction time was exported: %s", body)
		}
	})
}

// TestSnapshotMatchesAsOfTransactionTime: a resource written after the
// transaction time is exported as it was then only if it was then what
// the export selects: an Observation moved to a member of the Group, or
// into a _typeFilter, since then is not in the export.
func TestSnapshotMatchesAsOfTransactionTime(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		e.put("/Patient/p1", patient("p1"))
		e.put("/Patient/p2", patient("p2"))
		e.put("/Group/g", `{"resourceType":"Group","id":"g","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/p1"}}]}`)
		e.put("/Observation/o1", observation("o1", "p1", "laboratory"))
		e.put("/Observation/moved", observation("moved", "p2", "laboratory"))
		e.put("/Observation/recoded", observation("recoded", "p1", "vital-signs"))
		time.Sleep(5 * time.Millisecond)
		e.clock.set(time.Now().UTC().Truncate(time.Millisecond))
		time.Sleep(5 * time.Millisecond)
		e.put("/Observation/moved", observation("moved", "p1", "laboratory"))
		e.put("/Observation/recoded", observation("recoded", "p1", "laboratory"))

		for _, path := range []string{"/Group/g/$export?_type=Observation",
			"/$export?_type=Observation&_typeFilter=" + url.QueryEscape("Observation?category=laboratory")} {
			m := e.wait("admin", e.kickOff("admin", path))
			want := "map[Observation:[o1 recoded]]"
			if strings.HasPrefix(path, "/$export") {
				want = "map[Observation:[moved o1]]"
			}
			if got := e.ids("admin", m); fmt.Sprint(got) != want {
				t.Errorf("%s: %v, want %s", path, got, want)
			}
		}
	})
}

// TestJobLeftByAQuickRestart: a job whose process stopped and started
// again within the heartbeat's staleness, under a new holder, is found in
// progress by the settling at the restart, its heartbeat fresh; once the
// heartbeat is stale its status is failed, not in progress for good.
func TestJobLeftByAQuickRestart(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		t0 := time.Now()
		status := e.exportLeftRunning("before the restart", t0)
		e.clock.set(t0)
		e.x.Attach(e.x.st) // what a restarted process does
		if r := e.do("admin", "GET", status, ""); r.status != 202 {
			t.Fatalf("at the restart, the heartbeat fresh: %d %s", r.status, r.body)
		}
		e.clock.set(t0.Add(stale + time.Second))
		if r := e.do("admin", "GET", status, ""); r.status != 500 || !strings.Contains(r.body, "stopped") {
			t.Errorf("once the heartbeat is stale: %d %s, want 500 saying the server stopped", r.status, r.body)
		}
	})
}

// jobReads is an engine whose reads of the export jobs (made outside any
// HTTP request) of Patient, Observation and Group wait until release is
// closed, so that a test changes resources between kick-off and the
// job's first read.
type jobReads struct {
	store.Store
	store.Finder
	release chan struct{}
}

func (p *jobReads) hold(ctx context.Context, typ string) {
	if ctx.Value(http.ServerContextKey) == nil && (typ == "Patient" || typ == "Observation" || typ == "Group") {
		<-p.release
	}
}

func (p *jobReads) Find(ctx context.Context, q store.Query) (*store.Page, error) {
	p.hold(ctx, q.Type)
	return p.Finder.Find(ctx, q)
}

func (p *jobReads) Read(ctx context.Context, typ, id string) (*store.Version, error) {
	p.hold(ctx, typ)
	return p.Store.Read(ctx, typ, id)
}

// newPausedEnv serves an engine whose export jobs read nothing until the
// returned function is called.
func newPausedEnv(t *testing.T, st store.Store) (*env, func()) {
	p := &jobReads{Store: st, Finder: st.(store.Finder), release: make(chan struct{})}
	e := newEnv(t, p)
	var once sync.Once
	release := func() { once.Do(func() { close(p.release) }) }
	t.Cleanup(release) // before the server's cleanup waits for the jobs
	return e, release
}

// versionReads is the server's store as the exporter is given it,
// counting its reads of a resource's earlier versions: each VRead, and
// each history of one resource.
type versionReads struct {
	operation.Store
	n *atomic.Int64
}

func (c versionReads) Records() store.Tx { return c.Store.(recorder).Records() }

func (c versionReads) VRead(ctx context.Context, typ, id string, version int64) (*store.Version, error) {
	c.n.Add(1)
	return c.Store.(versionReader).VRead(ctx, typ, id, version)
}

func (c versionReads) History(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	if q.ID != "" {
		c.n.Add(1)
	}
	return c.Store.(versionReader).History(ctx, q)
}

// TestBusyResourceReadBackOnce: a resource updated many times during an
// export is exported at its version of the transaction time, found in one
// read, not read back one version at a time.
func TestBusyResourceReadBackOnce(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.Name, func(t *testing.T) {
			st := eng.Open(t)
			p := &jobReads{Store: st, Finder: st.(store.Finder), release: make(chan struct{})}
			var reads atomic.Int64
			e := newEnv(t, p, func(c *server.Config) {
				attach := c.Attach[0]
				c.Attach[0] = func(st operation.Store) { attach(versionReads{st, &reads}) }
			})
			var once sync.Once
			release := func() { once.Do(func() { close(p.release) }) }
			t.Cleanup(release) // before the server's cleanup waits for the job
			e.put("/Patient/p1", patient("p1"))
			status := e.kickOff("admin", "/$export?_type=Patient")
			time.Sleep(5 * time.Millisecond) // lastUpdated has millisecond precision
			for i := range 20 {
				e.put("/Patient/p1", fmt.Sprintf(`{"resourceType":"Patient","id":"p1","birthDate":"19%02d-01-01"}`, 50+i))
			}
			release()
			m := e.wait("admin", status)
			if body := e.files("admin", m)["Patient"]; !strings.Contains(body, `"versionId":"1"`) || strings.Contains(body, "birthDate") {
				t.Errorf("exported %s, want Patient/p1 at version 1", body)
			}
			if n := reads.Load(); n > 1 {
				t.Errorf("the export read earlier versions %d times to find Patient/p1 as of the transaction time, want once", n)
			}
		})
	}
}

// TestSnapshotKeepsWhatNoLongerMatches: a resource that matched the
// export as of its transaction time is exported at its version then,
// although it was changed after the kick-off, before the job read it, so
// that it no longer matches: recoded out of the _typeFilter, moved to a
// patient outside the Group or to no patient, or deleted.
func TestSnapshotKeepsWhatNoLongerMatches(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.Name, func(t *testing.T) {
			e, release := newPausedEnv(t, eng.Open(t))
			e.put("/Patient/p1", patient("p1"))
			e.put("/Patient/p2", patient("p2"))
			e.put("/Group/g", `{"resourceType":"Group","id":"g","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/p1"}}]}`)
			for _, id := range []string{"deleted", "kept", "moved", "orphaned", "recoded"} {
				e.put("/Observation/"+id, observation(id, "p1", "laboratory"))
			}
			exports := map[string]string{
				"/$export?_type=Observation&_typeFilter=" + url.QueryEscape("Observation?category=laboratory"): "admin",
				"/Group/g/$export?_type=Observation": "admin",
				"/Patient/$export?_type=Observation": "other",
				// A chain is decided for the current version, as the
				// search found it: moved, orphaned and deleted fail it now.
				"/$export?_type=Observation&_typeFilter=" + url.QueryEscape("Observation?subject:Patient._id=p1"): "other",
			}
			statuses := map[string]string{}
			for path, who := range exports {
				statuses[path] = e.kickOff(who, path)
			}
			time.Sleep(5 * time.Millisecond) // lastUpdated has millisecond precision
			e.put("/Observation/recoded", observation("recoded", "p1", "vital-signs"))
			e.put("/Observation/moved", observation("moved", "p2", "laboratory"))
			e.put("/Observation/orphaned", `{"resourceType":"Observation","id":"orphaned","status":"final","code":{"text":"x"}}`)
			e.put("/Observation/late", observation("late", "p1", "laboratory"))
			if r := e.do("admin", "DELETE", "/Observation/deleted", ""); r.status != 200 && r.status != 204 {
				t.Fatalf("DELETE: %d %s", r.status, r.body)
			}
			release()
			for path, who := range exports {
				m := e.wait(who, statuses[path])
				want := "map[Observation:[deleted kept moved orphaned recoded]]"
				if strings.Contains(path, "subject") {
					want = "map[Observation:[kept recoded]]"
				}
				if got := e.ids(who, m); fmt.Sprint(got) != want {
					t.Errorf("%s: %v, want %s: every Observation of p1 as of the transaction time", path, got, want)
					continue
				}
				body := e.files(who, m)["Observation"]
				if strings.Contains(body, "vital-signs") || strings.Contains(body, "Patient/p2") || strings.Count(body, "Patient/p1") != len(m.Output)*m.Output[0].Count {
					t.Errorf("%s: versions written after the transaction time exported: %s", path, body)
				}
			}
		})
	}
}

// TestGroupMembersAsOfTransactionTime: a Group export exports the
// members the Group had at the transaction time, though the job reads the
// Group after members were removed and added, or after it was deleted.
func TestGroupMembersAsOfTransactionTime(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.Name, func(t *testing.T) {
			e, release := newPausedEnv(t, eng.Open(t))
			group := func(id string, members ...string) string {
				var refs []string
				for _, m := range members {
					refs = append(refs, `{"entity":{"reference":"Patient/`+m+`"}}`)
				}
				return `{"resourceType":"Group","id":"` + id + `","type":"person","actual":true,"member":[` + strings.Join(refs, ",") + `]}`
			}
			for _, p := range []string{"p1", "p2", "p3"} {
				e.put("/Patient/"+p, patient(p))
			}
			e.put("/Group/changed", group("changed", "p1", "p2"))
			e.put("/Group/deleted", group("deleted", "p1"))
			changed := e.kickOff("admin", "/Group/changed/$export?_type=Patient")
			deleted := e.kickOff("admin", "/Group/deleted/$export?_type=Patient")
			time.Sleep(5 * time.Millisecond) // lastUpdated has millisecond precision
			e.put("/Group/changed", group("changed", "p2", "p3"))
			if r := e.do("admin", "DELETE", "/Group/deleted", ""); r.status != 200 && r.status != 204 {
				t.Fatalf("DELETE: %d %s", r.status, r.body)
			}
			release()
			if got := e.ids("admin", e.wait("admin", changed)); fmt.Sprint(got) != "map[Patient:[p1 p2]]" {
				t.Errorf("Group changed after the kick-off: %v, want its members then, p1 and p2", got)
			}
			if got := e.ids("admin", e.wait("admin", deleted)); fmt.Sprint(got) != "map[Patient:[p1]]" {
				t.Errorf("Group deleted after the kick-off: %v, want its member then, p1", got)
			}
		})
	}
}

// exportLeftRunning runs an export of Patient to its end and rewinds its
// record to running, held by holder, a process that died, with heartbeat;
// it returns the status URL.
func (e *env) exportLeftRunning(holder string, heartbeat time.Time) string {
	e.t.Helper()
	e.put("/Patient/p1", patient("p1"))
	status := e.kickOff("admin", "/$export?_type=Patient")
	e.wait("admin", status)
	id := strings.TrimPrefix(status, e.base+"/$export-status?_jobId=")
	recs, _ := e.x.records()
	j, ver, err := readJob(context.Background(), recs, id)
	if err != nil {
		e.t.Fatal(err)
	}
	j.State, j.Holder, j.Heartbeat = stateRunning, holder, heartbeat
	if _, err := putJob(context.Background(), recs, id, ver, j, time.Now()); err != nil {
		e.t.Fatal(err)
	}
	return status
}

// TestJobLeftRunning: a job whose process stopped is failed after a
// restart, once the restarted process has seen its heartbeat unrenewed
// for the staleness period, however old the heartbeat's time; never
// listed as complete.
func TestJobLeftRunning(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		status := e.exportLeftRunning("dead", time.Now().Add(-time.Hour))
		t0 := time.Now()
		e.clock.set(t0)
		e.x.Attach(e.x.st) // what a restarted process does
		if r := e.do("admin", "GET", status, ""); r.status != 202 {
			t.Errorf("at the restart: %d %s, want 202 until the heartbeat has been seen unrenewed for %s", r.status, r.body, stale)
		}
		e.clock.set(t0.Add(stale))
		if r := e.do("admin", "GET", status, ""); r.status != 500 || !strings.Contains(r.body, "stopped") {
			t.Errorf("after the restart: %d %s", r.status, r.body)
		}
	})
}

// pausing is an engine whose searches of Patient pages after the first
// wait, each, until the test lets them go.
type pausing struct {
	store.Store
	store.Finder
	reached, release chan struct{}
}

func (p *pausing) Find(ctx context.Context, q store.Query) (*store.Page, error) {
	if q.Type == "Patient" && q.Cursor != "" {
		p.reached <- struct{}{}
		<-p.release
	}
	return p.Finder.Find(ctx, q)
}

// finishing is an engine whose searches of Patient wait until the first
// read of a running job's record, which lets them go and waits, before
// it answers, until the job has finished and given back its place: a
// status request reads the record of a job that finishes before the
// request checks whether the job runs here.
type finishing struct {
	stalled
	jobs func() int // the jobs running in the exporter
	once sync.Once
}

func (f *finishing) Read(ctx context.Context, typ, id string) (*store.Version, error) {
	v, err := f.Store.Read(ctx, typ, id)
	if typ == jobType && err == nil && strings.Contains(string(v.JSON), `"state":"running"`) {
		f.once.Do(func() {
			close(f.release)
			for f.jobs() > 0 {
				time.Sleep(time.Millisecond)
			}
		})
	}
	return v, err
}

// TestStatusAsTheJobFinishes: a status request that reads the record of a
// running job, which then finishes before the request checks whether it
// runs in this process, answers the export complete, as it is recorded,
// not failed for the server having stopped.
func TestStatusAsTheJobFinishes(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.Name, func(t *testing.T) {
			st := eng.Open(t)
			f := &finishing{stalled: stalled{Store: st, Finder: st.(store.Finder), release: make(chan struct{})}}
			e := newEnv(t, f)
			f.jobs = e.x.Jobs
			t.Cleanup(func() { f.once.Do(func() { close(f.release) }) }) // before the server's cleanup waits for the job
			e.put("/Patient/p1", patient("p1"))
			status := e.kickOff("admin", "/$export?_type=Patient")
			r := e.do("admin", "GET", status, "")
			if r.status != 200 {
				t.Fatalf("status as the job finishes: %d %s, want 200 with the manifest", r.status, r.body)
			}
			if m := e.wait("admin", status); len(m.Output) != 1 || m.Output[0].Count != 1 {
				t.Errorf("manifest output %+v, want the Patient", m.Output)
			}
		})
	}
}

// TestLongTypeKeepsItsJob: a job exporting one type for longer than
// another process waits for a heartbeat renews it between pages, so a
// process starting meanwhile leaves the job to the one running it.
func TestLongTypeKeepsItsJob(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.Name, func(t *testing.T) {
			st := eng.Open(t)
			p := &pausing{Store: st, Finder: st.(store.Finder), reached: make(chan struct{}), release: make(chan struct{})}
			e := newEnv(t, p)
			for i := range 20 { // three pages of 7
				e.put(fmt.Sprintf("/Patient/p%02d", i), patient(fmt.Sprintf("p%02d", i)))
			}
			t0 := time.Now()
			e.clock.set(t0)
			status := e.kickOff("admin", "/$export?_type=Patient")
			<-p.reached // the second page
			e.clock.set(t0.Add(3 * time.Minute))
			p.release <- struct{}{}
			<-p.reached // the third page
			// Another process starts, and settles the jobs left running.
			other, err := New(Config{Dir: t.TempDir(), BaseURL: e.base, Registry: e.x.cfg.Registry, Index: e.x.cfg.Index, Now: e.clock.Now, Holder: "other"})
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			other.Attach(e.x.st)
			other.ensureSettled(t.Context())
			p.release <- struct{}{}
			m := e.wait("admin", status)
			if len(m.Output) != 1 || m.Output[0].Count != 20 {
				t.Errorf("manifest output %+v, want the 20 Patients", m.Output)
			}
		})
	}
}

// TestExpiry: a finished job's status and files are gone after Expire.
func TestExpiry(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		e.put("/Patient/p1", patient("p1"))
		status := e.kickOff("admin", "/$export?_type=Patient")
		m := e.wait("admin", status)
		e.clock.set(time.Now().Add(2 * time.Hour))
		if r := e.do("admin", "GET", m.Output[0].URL, ""); r.status != 404 {
			t.Errorf("file after expiry: %d", r.status)
		}
		if r := e.do("admin", "GET", status, ""); r.status != 404 {
			t.Errorf("status after expiry: %d", r.status)
		}
	})
}

// exportedPatientDir exports one Patient as admin and returns the
// directory of the job's files.
func (e *env) exportedPatientDir() string {
	e.t.Helper()
	e.put("/Patient/p1", patient("p1"))
	status := e.kickOff("admin", "/$export?_type=Patient")
	e.wait("admin", status)
	return e.x.jobDir(strings.TrimPrefix(status, e.base+"/$export-status?_jobId="))
}

// TestExpiredRemoved: the record and files of an expired job are removed
// even when its client never comes back for them.
func TestExpiredRemoved(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		dir := e.exportedPatientDir()
		if _, err := os.Stat(dir); err != nil {
			t.Fatal(err)
		}
		e.clock.set(time.Now().Add(2 * time.Hour))
		e.wait("other", e.kickOff("other", "/$export?_type=Patient"))
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the files of the expired job: %v", err)
		}
		if n := e.jobRecords(); n != 1 {
			t.Errorf("%d job records, want the new one", n)
		}
	})
}

// TestExpiredRemovedByAnotherProcess: the files of an expired job are
// removed by the process that ran it, when another process on the same
// store removed the job's record first.
func TestExpiredRemovedByAnotherProcess(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		dir := e.exportedPatientDir()
		other, err := New(Config{Dir: t.TempDir(), BaseURL: e.base, Registry: e.x.cfg.Registry, Index: e.x.cfg.Index, Now: e.clock.Now, Holder: "other"})
		if err != nil {
			t.Fatal(err)
		}
		other.Attach(e.x.st)
		defer other.Close()
		// The other process sees the job finished, and again once it has
		// for longer than Expire.
		if err := other.sweep(t.Context()); err != nil {
			t.Fatal(err)
		}
		e.clock.set(time.Now().Add(2 * time.Hour))
		if err := other.sweep(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := e.jobRecords(); n != 0 {
			t.Fatalf("%d job records after the other process's sweep", n)
		}
		// Not a job's: left alone.
		mine := filepath.Join(e.x.cfg.Dir, "notes")
		if err := os.Mkdir(mine, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := e.x.sweep(t.Context()); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the files of the expired job: %v", err)
		}
		if _, err := os.Stat(mine); err != nil {
			t.Errorf("a directory not a job's: %v", err)
		}
	})
}

// TestRoundTrip: export, import into an empty server, export again: the
// same resources.
func TestRoundTrip(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.Name, func(t *testing.T) {
			a := newEnv(t, eng.Open(t))
			for i := range 30 {
				a.put(fmt.Sprintf("/Patient/p%02d", i), fmt.Sprintf(`{"resourceType":"Patient","id":"p%02d","gender":"female","birthDate":"1950-01-%02d"}`, i, i%28+1))
				a.put(fmt.Sprintf("/Observation/o%02d", i), observation(fmt.Sprintf("o%02d", i), fmt.Sprintf("p%02d", i), "laboratory"))
			}
			first := a.files("admin", a.wait("admin", a.kickOff("admin", "/$export?_type=Patient,Observation")))

			b := newEnv(t, eng.Open(t))
			var res ImportResult
			im := &Importer{BaseURL: b.base, Token: b.tokens["admin"], Batch: 7}
			for typ, body := range first {
				if err := im.Import(context.Background(), typ+".ndjson", strings.NewReader(body), &res); err != nil {
					t.Fatal(err)
				}
			}
			if res.Loaded != 60 || len(res.Failed) != 0 {
				t.Fatalf("import: %+v", res)
			}
			second := b.files("admin", b.wait("admin", b.kickOff("admin", "/$export?_type=Patient,Observation")))
			for typ := range first {
				if got, want := withoutMeta(t, second[typ]), withoutMeta(t, first[typ]); got != want {
					t.Errorf("%s after the round trip:\n%s\nwant\n%s", typ, got, want)
				}
			}
		})
	}
}

// TestImportRefusals: lines that are not resources, and resources the
// server refuses, are reported with where they are; the rest loads.
func TestImportRefusals(t *testing.T) {
	e := newEnv(t, engines[0].Open(t))
	in := patient("ok1") + "\n\nnot json\n" + `{"resourceType":"Patient"}` + "\n" + `{"resourceType":"Patient","id":"bad","colour":"blue"}` + "\n" + patient("ok2") + "\n"
	var res ImportResult
	if err := (&Importer{BaseURL: e.base, Token: e.tokens["admin"]}).Import(context.Background(), "in.ndjson", strings.NewReader(in), &res); err != nil {
		t.Fatal(err)
	}
	if res.Loaded != 2 || len(res.Failed) != 3 || !strings.HasPrefix(res.Failed[0], "in.ndjson:3:") || !strings.HasPrefix(res.Failed[2], "in.ndjson:5: 4") {
		t.Errorf("import: %+v", res)
	}
}

// TestImportBatchWithinBodyLimit: resources that would make a Bundle of
// Batch of them larger than the server takes are sent in smaller Bundles,
// rather than the import stopping at the server's 413.
func TestImportBatchWithinBodyLimit(t *testing.T) {
	const limit = 64 << 10
	e := newEnv(t, engines[0].Open(t), func(c *server.Config) { c.MaxBodyBytes = limit })
	var in strings.Builder
	for i := range 20 { // of 10 KB each: 200 KB
		fmt.Fprintf(&in, `{"resourceType":"Patient","id":"p%d","name":[{"text":"%s"}]}`+"\n", i, strings.Repeat("x", 10_000))
	}
	var res ImportResult
	im := &Importer{BaseURL: e.base, Token: e.tokens["admin"], MaxLine: limit}
	if err := im.Import(t.Context(), "in.ndjson", strings.NewReader(in.String()), &res); err != nil {
		t.Fatal(err)
	}
	if res.Loaded != 20 || len(res.Failed) != 0 {
		t.Errorf("import: %d loaded, refused %v; want the 20 Patients loaded", res.Loaded, res.Failed)
	}
}

// TestFileDownloadAudited: downloading an export file is audited as a
// disclosure of the records of each patient in it, by one AuditEvent per
// patient, found by AuditEvent?patient=.
func TestFileDownloadAudited(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.Name, func(t *testing.T) {
			st := eng.Open(t)
			// Batches of two: the events of one download span several.
			auditor := access.NewAuditor(st, access.AuditConfig{Source: "test", Batch: 2})
			e := newEnv(t, st, func(c *server.Config) { c.Auditor = auditor })
			t.Cleanup(auditor.Close)
			for _, p := range []string{"p1", "p2", "p3", "p4"} {
				e.put("/Patient/"+p, patient(p))
			}
			for i, p := range []string{"p1", "p2", "p3", "p1"} {
				e.put(fmt.Sprintf("/Observation/o%d", i), observation(fmt.Sprintf("o%d", i), p, "laboratory"))
			}
			m := e.wait("admin", e.kickOff("admin", "/$export?_type=Patient,Observation"))
			var file string
			for _, o := range m.Output {
				if o.Type == "Observation" {
					file = o.URL
				}
			}
			if h := e.do("admin", "HEAD", file, ""); h.status != 200 {
				t.Fatalf("HEAD %s: %d", file, h.status)
			}
			if r := e.do("admin", "GET", file, "", "X-Request-Id", "download"); r.status != 200 {
				t.Fatalf("GET %s: %d %s", file, r.status, r.body)
			}
			// about returns the AuditEvents found by AuditEvent?patient=
			// that name the file, once there are want of them.
			about := func(patient string, want int) []map[string]any {
				t.Helper()
				var found []map[string]any
				for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
					auditor.Flush()
					r := e.do("admin", "GET", "/AuditEvent?_count=100&patient=Patient/"+patient, "")
					var b struct {
						Entry []struct{ Resource map[string]any }
					}
					if err := json.Unmarshal([]byte(r.body), &b); r.status != 200 || err != nil {
						t.Fatalf("AuditEvent?patient=Patient/%s: %d %s", patient, r.status, r.body)
					}
					found = found[:0]
					for _, en := range b.Entry {
						if strings.Contains(fmt.Sprint(en.Resource["entity"]), file) {
							found = append(found, en.Resource)
						}
					}
					if len(found) >= want {
						break
					}
				}
				return found
			}
			for _, p := range []string{"p1", "p2", "p3"} {
				evs := about(p, 1)
				if len(evs) != 1 {
					t.Errorf("Patient/%s: %d AuditEvents of the download of %s, want 1", p, len(evs), file)
					continue
				}
				ev, _ := json.Marshal(evs[0])
				for _, want := range []string{`"reference":"Patient/` + p + `"`, `"value":"download"`, `"code":"operation"`, `"code":"$export-file"`, `"outcome":"0"`} {
					if !strings.Contains(string(ev), want) {
						t.Errorf("Patient/%s: the AuditEvent of the download lacks %s: %s", p, want, ev)
					}
				}
				if strings.Count(string(ev), `"Patient/`) != 1 || strings.Contains(string(ev), "Observation/") {
					t.Errorf("Patient/%s: the AuditEvent of the download names more than the patient and the file: %s", p, ev)
				}
			}
			if evs := about("p4", 0); len(evs) != 0 {
				t.Errorf("Patient/p4, of no Observation: %d AuditEvents of the download of %s", len(evs), file)
			}
		})
	}
}

// TestGroupKickOffAuditedNamingNoResource: the kick-off of a Group's
// export reads the Group to refuse one not held, but sends nothing of it:
// its AuditEvent names no resource and no patient, as docs/bulk-export.md
// has it, and no member's trail holds it. The downloads of the files are
// what disclose them.
func TestGroupKickOffAuditedNamingNoResource(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.Name, func(t *testing.T) {
			st := eng.Open(t)
			auditor := access.NewAuditor(st, access.AuditConfig{Source: "test"})
			e := newEnv(t, st, func(c *server.Config) { c.Auditor = auditor })
			t.Cleanup(auditor.Close)
			e.put("/Patient/p1", patient("p1"))
			e.put("/Group/g", `{"resourceType":"Group","id":"g","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/p1"}}]}`)
			e.kickOff("admin", "/Group/g/$export")
			var kickOffs []map[string]any
			for deadline := time.Now().Add(30 * time.Second); len(kickOffs) == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				auditor.Flush()
				r := e.do("admin", "GET", "/AuditEvent?subtype=$export", "")
				var b struct {
					Entry []struct{ Resource map[string]any }
				}
				if err := json.Unmarshal([]byte(r.body), &b); r.status != 200 || err != nil {
					t.Fatalf("AuditEvent?subtype=$export: %d %s", r.status, r.body)
				}
				for _, en := range b.Entry {
					kickOffs = append(kickOffs, en.Resource)
				}
			}
			if len(kickOffs) != 1 {
				t.Fatalf("%d AuditEvents of the kick-off, want 1", len(kickOffs))
			}
			if ev, _ := json.Marshal(kickOffs[0]); strings.Contains(string(ev), `"reference"`) {
				t.Errorf("the AuditEvent of the kick-off names resources: %s", ev)
			}
			if r := e.do("admin", "GET", "/AuditEvent?subtype=$export&patient=Patient/p1", ""); r.status != 200 || strings.Contains(r.body, `"entry"`) {
				t.Errorf("the trail of the Group's member holds the kick-off: %d %s", r.status, r.body)
			}
		})
	}
}

// reading closes done once the first page of Patients has been read.
type reading struct {
	store.Store
	store.Finder
	once sync.Once
	done chan struct{}
}

func (r *reading) Find(ctx context.Context, q store.Query) (*store.Page, error) {
	p, err := r.Finder.Find(ctx, q)
	if q.Type == "Patient" {
		r.once.Do(func() { close(r.done) })
	}
	return p, err
}

// TestExportWaitsForWrites: a write stamped before an export's
// transaction time that commits after the kick-off (a request still
// validating it, a transaction Bundle still writing) is in the export, so
// that a copy kept up to date by exports _since the last transaction time
// never misses it: the job starts reading once Settle has passed. The
// test gives a job that does not wait a second to start reading, then
// writes; Settle leaves that write nine seconds more, which a loaded
// machine may need.
func TestExportWaitsForWrites(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.Name, func(t *testing.T) {
			st := eng.Open(t)
			r := &reading{Store: st, Finder: st.(store.Finder), done: make(chan struct{})}
			e := newEnv(t, r)
			e.x.cfg.Settle = 10 * time.Second
			e.put("/Patient/early", patient("early"))
			t0 := time.Now().UTC().Truncate(time.Millisecond)
			e.clock.set(t0)
			status := e.kickOff("admin", "/$export?_type=Patient")
			select {
			case <-r.done: // the job read at once
			case <-time.After(time.Second):
			}
			body := []byte(patient("late"))
			ix, err := e.ix.IndexJSON("Patient", body)
			if err != nil {
				t.Fatal(err)
			}
			late := &store.Write{Type: "Patient", ID: "late", LastUpdated: t0.Add(-time.Millisecond), JSON: body, Index: ix}
			if err := st.Put(t.Context(), late); err != nil {
				t.Fatal(err)
			}
			m := e.wait("admin", status)
			if got := e.ids("admin", m); fmt.Sprint(got) != "map[Patient:[early late]]" {
				t.Errorf("exported %v, want the Patient stamped before the transaction time and written after the kick-off too", got)
			}
		})
	}
}

// jobGate holds the record of each new export job until release is
// closed, counting those it holds.
type jobGate struct {
	store.Store
	store.Finder
	release chan struct{}
	mu      sync.Mutex
	held    int
}

func (g *jobGate) Put(ctx context.Context, w *store.Write) error {
	if w.Type == jobType && w.Expected == 0 && !w.Deleted {
		g.mu.Lock()
		g.held++
		g.mu.Unlock()
		<-g.release
	}
	return g.Store.Put(ctx, w)
}

func (g *jobGate) holding() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held
}

// TestConcurrentKickOffs: kick-offs of several clients arriving together
// start at most maxJobs exports, as kick-offs arriving one after another
// do; the others are 429.
func TestConcurrentKickOffs(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.Name, func(t *testing.T) {
			st := eng.Open(t)
			g := &jobGate{Store: st, Finder: st.(store.Finder), release: make(chan struct{})}
			e := newEnv(t, g)
			// Of clients enough that the places of one process run out
			// before each client's share of them, in whatever order the
			// kick-offs arrive: two each, a client's share. (With three
			// clients, one client's third kick-off could be among the four
			// the process let through, and be refused by its share.)
			clients := []string{"admin", "other", "backup", "archive"}
			const tries = 2 * maxJobs
			statuses := make(chan int, tries)
			for i := range tries {
				go func() {
					req, _ := http.NewRequest("GET", e.base+"/$export?_type=Patient", nil)
					req.Header.Set("Authorization", "Bearer "+e.tokens[clients[i%len(clients)]])
					req.Header.Set("Prefer", "respond-async")
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						statuses <- 0
						return
					}
					resp.Body.Close()
					if resp.StatusCode == 429 && resp.Header.Get("Retry-After") != "30" {
						statuses <- -429 // the client is not told when to try again
						return
					}
					statuses <- resp.StatusCode
				}()
			}
			// No job is recorded, and so none starts, until every kick-off
			// is either recording its job or answered.
			got := map[int]int{}
			answered := 0
			for answered+g.holding() < tries {
				select {
				case s := <-statuses:
					got[s]++
					answered++
				case <-time.After(10 * time.Millisecond):
				}
			}
			close(g.release)
			for ; answered < tries; answered++ {
				got[<-statuses]++
			}
			if got[202] != maxJobs || got[429] != tries-maxJobs {
				t.Errorf("%d kick-offs at once answered %v, want %d × 202 and the rest 429 with Retry-After", tries, got, maxJobs)
			}
		})
	}
}

// stalled is an engine whose searches of Patient wait until release is
// closed, so that the exports started meanwhile keep their places.
type stalled struct {
	store.Store
	store.Finder
	release chan struct{}
}

func (s *stalled) Find(ctx context.Context, q store.Query) (*store.Page, error) {
	if q.Type == "Patient" {
		<-s.release
	}
	return s.Finder.Find(ctx, q)
}

// TestOneClientCannotTakeEveryPlace: a client running maxJobsPerOwner
// exports is answered 429 with Retry-After for another, while another
// client still starts one.
func TestOneClientCannotTakeEveryPlace(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.Name, func(t *testing.T) {
			st := eng.Open(t)
			s := &stalled{Store: st, Finder: st.(store.Finder), release: make(chan struct{})}
			e := newEnv(t, s)
			var once sync.Once
			release := func() { once.Do(func() { close(s.release) }) }
			t.Cleanup(release) // before the server's cleanup waits for the jobs
			checkOneClientLimit(t, e, e, release)
		})
	}
}

// TestTwoProcessesOneClientLimit: with two processes on one MongoDB
// database, a client running maxJobsPerOwner exports in one of them is
// answered 429 with Retry-After by the other, which still starts another
// client's; once they finish, the client starts one in either.
func TestTwoProcessesOneClientLimit(t *testing.T) {
	a, b, release := twoStalledProcesses(t)
	checkOneClientLimit(t, a, b, release)
}

// TestTwoProcessesOneClientLimitAtOnce: kick-offs of one client sent to
// two processes on one MongoDB database at once, with its places held by
// exports that have finished, start no more exports than one client may
// run; the others are 429.
func TestTwoProcessesOneClientLimitAtOnce(t *testing.T) {
	a, b, release := twoStalledProcesses(t)
	for range maxJobsPerOwner { // exports of Observations, which do not stall
		a.wait("admin", a.kickOff("admin", "/$export?_type=Observation"))
	}
	const each = maxJobs - 1
	statuses := make([]int, 2*each)
	var wg sync.WaitGroup
	for i := range statuses {
		wg.Go(func() {
			statuses[i] = []*env{a, b}[i%2].do("admin", "GET", "/$export?_type=Patient", "", "Prefer", "respond-async").status
		})
	}
	wg.Wait()
	release()
	started := 0
	for _, s := range statuses {
		switch s {
		case 202:
			started++
		case 429:
		default:
			t.Errorf("kick-off at once: %d, want 202 or 429", s)
		}
	}
	if started == 0 || started > maxJobsPerOwner {
		t.Errorf("kick-offs of one client at once through two processes: %v, want 1 to %d started (202), the others 429", statuses, maxJobsPerOwner)
	}
}

// twoStalledProcesses serves two processes, holders a and b, on one
// MongoDB database, whose job searches of Patient wait until release is
// called.
func twoStalledProcesses(t *testing.T) (a, b *env, release func()) {
	uri := ferrettest.Start(t)
	stall := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(stall) }) }
	t.Cleanup(release) // before the servers' cleanups wait for the jobs
	newProcess := func(holder string) *env {
		st, err := mongo.Open(t.Context(), uri)
		if err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, &stalled{Store: st, Finder: st, release: stall})
		e.x.cfg.Holder = holder
		return e
	}
	return newProcess("a"), newProcess("b"), release
}

// TestTwoProcessesClocksApart: with two processes on one MongoDB database
// whose clocks are two hours apart, the one whose clock is ahead takes
// the exports running in the other for live ones: their status is in
// progress, and their client may start no more than it may run; it takes
// one for dead only once it has itself seen its heartbeat unrenewed for
// the staleness period.
func TestTwoProcessesClocksApart(t *testing.T) {
	a, b, release := twoStalledProcesses(t)
	ahead := time.Now().Add(2 * time.Hour)
	b.clock.set(ahead)
	var running []string
	for range maxJobsPerOwner {
		running = append(running, a.kickOff("admin", "/$export?_type=Patient"))
	}
	status := strings.Replace(running[0], a.base, b.base, 1) // asked of b
	if r := b.do("admin", "GET", status, ""); r.status != 202 {
		t.Errorf("status of a running export, asked of the process ahead: %d %s, want 202", r.status, r.body)
	}
	if r := b.do("admin", "GET", "/$export?_type=Patient", "", "Prefer", "respond-async"); r.status != 429 {
		t.Errorf("kick-off %d of one client, asked of the process ahead: %d %s, want 429", maxJobsPerOwner+1, r.status, r.body)
	}
	b.clock.set(ahead.Add(stale)) // a stalled: its heartbeats unrenewed since b saw them
	if r := b.do("admin", "GET", status, ""); r.status != 500 || !strings.Contains(r.body, "stopped") {
		t.Errorf("status once b saw the heartbeat unrenewed for %s: %d %s, want 500 saying the server stopped", stale, r.status, r.body)
	}
	release()
}

// TestFinishedKeptByAProcessAhead: with two processes on one MongoDB
// database whose clocks are two hours apart, the one whose clock is ahead
// keeps an export the other finished for as long as it has itself seen it
// finished, by its own clock: its status is complete, from either, until
// that process has seen it finished for Expire.
func TestFinishedKeptByAProcessAhead(t *testing.T) {
	a, b, release := twoStalledProcesses(t)
	release()
	ahead := time.Now().Add(2 * time.Hour)
	b.clock.set(ahead)
	a.put("/Patient/p1", patient("p1"))
	status := a.kickOff("admin", "/$export?_type=Patient")
	a.wait("admin", status)
	atB := strings.Replace(status, a.base, b.base, 1)
	if r := b.do("admin", "GET", atB, ""); r.status != 200 {
		t.Errorf("status of a finished export, asked of the process ahead: %d %s, want 200", r.status, r.body)
	}
	if err := b.x.sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := a.do("admin", "GET", status, ""); r.status != 200 {
		t.Errorf("status once the process ahead looked for expired jobs: %d %s, want 200", r.status, r.body)
	}
	b.clock.set(ahead.Add(b.x.cfg.Expire + time.Second)) // b has seen it finished for Expire
	if r := b.do("admin", "GET", atB, ""); r.status != 404 {
		t.Errorf("status once the process ahead saw it finished for %s: %d %s, want 404", b.x.cfg.Expire, r.status, r.body)
	}
	if r := a.do("admin", "GET", status, ""); r.status != 404 {
		t.Errorf("status asked of the process that ran it, once expired: %d %s, want 404", r.status, r.body)
	}
}

// checkOneClientLimit starts maxJobsPerOwner exports of admin in first,
// whose jobs wait until release is called, and checks that second answers
// admin's next kick-off 429 with Retry-After, starts another client's, and
// starts admin's once its exports have finished.
func checkOneClientLimit(t *testing.T, first, second *env, release func()) {
	var started []string
	for range maxJobsPerOwner {
		started = append(started, first.kickOff("admin", "/$export?_type=Patient"))
	}
	r := second.do("admin", "GET", "/$export?_type=Patient", "", "Prefer", "respond-async")
	if r.status != 429 || r.header.Get("Retry-After") != "30" || !strings.Contains(r.body, "throttled") {
		t.Errorf("kick-off %d of one client: %d Retry-After %q %s, want 429 with Retry-After: 30",
			maxJobsPerOwner+1, r.status, r.header.Get("Retry-After"), r.body)
	}
	other := second.kickOff("other", "/$export?_type=Patient")
	release()
	for _, status := range started {
		first.wait("admin", status)
	}
	second.wait("other", other)
	// Its exports finished, the client starts another.
	second.wait("admin", second.kickOff("admin", "/$export?_type=Patient"))
}

// progressing is an engine whose job searches of Patient wait until
// release is closed, and on which the record of a job moves on, as a
// running job records its progress, between a cancel's read of it and its
// removal.
type progressing struct {
	stalled
	once sync.Once
}

func (p *progressing) Put(ctx context.Context, w *store.Write) error {
	if w.Type == jobType && w.Deleted {
		p.once.Do(func() {
			v, err := p.Store.Read(ctx, jobType, w.ID)
			if err != nil {
				panic(err)
			}
			beat := &store.Write{Type: jobType, ID: w.ID, Expected: v.VersionID, LastUpdated: w.LastUpdated, JSON: v.JSON}
			if err := p.Store.Put(ctx, beat); err != nil {
				panic(err)
			}
		})
	}
	return p.Store.Put(ctx, w)
}

// TestCancelWhileTheJobRecordsProgress: a DELETE of a running export is
// 202 and its status 404 from then on, though the job recorded its
// progress between the cancel's read of its record and its removal.
func TestCancelWhileTheJobRecordsProgress(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.Name, func(t *testing.T) {
			st := eng.Open(t)
			p := &progressing{stalled: stalled{Store: st, Finder: st.(store.Finder), release: make(chan struct{})}}
			e := newEnv(t, p)
			t.Cleanup(func() { close(p.release) }) // before the server's cleanup waits for the job
			status := e.kickOff("admin", "/$export?_type=Patient")
			if r := e.do("admin", "DELETE", status, ""); r.status != 202 {
				t.Fatalf("DELETE: %d %s", r.status, r.body)
			}
			if r := e.do("admin", "GET", status, ""); r.status != 404 {
				t.Errorf("status after DELETE: %d %s, want 404", r.status, r.body)
			}
			if n := e.jobRecords(); n != 0 {
				t.Errorf("%d job records after DELETE, want none", n)
			}
		})
	}
}

// TestKickOffAfterClose: once the exporter is closed, as the server
// stops, a kick-off is 503 and records no job: Close has waited for the
// jobs, and one started after it would outlive it.
func TestKickOffAfterClose(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		e.x.Close()
		r := e.do("admin", "GET", "/$export?_type=Patient", "", "Prefer", "respond-async")
		if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "OperationOutcome") || r.header.Get("Retry-After") == "" {
			t.Errorf("kick-off after Close: %d %v %s, want 503 with Retry-After and an OperationOutcome", r.status, r.header, r.body)
		}
		jobs, err := e.st.Search(t.Context(), store.Query{Type: jobType})
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) != 0 {
			t.Errorf("%d jobs recorded after Close, want none", len(jobs))
		}
	})
}

// TestSystemHistoryLeavesOutRecords: the export jobs and claims an export
// records, and any other record of the server (a notification outbox),
// are not in a history of the system, nor in its total: it holds the types
// the CapabilityStatement lists alone, for every reader.
func TestSystemHistoryLeavesOutRecords(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		e.put("/Patient/p1", patient("p1"))
		e.put("/Observation/o1", observation("o1", "p1", "laboratory"))
		e.wait("admin", e.kickOff("admin", "/$export?_type=Patient"))
		w := &store.Write{Type: "NotifyOutbox", ID: "n1", LastUpdated: time.Now().UTC().Truncate(time.Millisecond), JSON: []byte(`{"topic":"x"}`)}
		if err := e.st.Put(t.Context(), w); err != nil {
			t.Fatal(err)
		}

		var capability struct {
			Rest []struct{ Resource []struct{ Type string } }
		}
		if err := json.Unmarshal([]byte(e.do("admin", "GET", "/metadata", "").body), &capability); err != nil || len(capability.Rest) == 0 {
			t.Fatalf("metadata: %v", err)
		}
		served := map[string]bool{}
		for _, r := range capability.Rest[0].Resource {
			served[r.Type] = true
		}
		for _, who := range []string{"admin", "nurse"} {
			for _, query := range []string{"?_count=100", "?_count=1", "?_since=2000-01-01&_count=100", "?_at=2100&_count=100"} {
				var types []string
				next := "/_history" + query
				for next != "" {
					r := e.do(who, "GET", next, "")
					if r.status != 200 {
						t.Fatalf("%s: GET %s: %d %s", who, next, r.status, r.body)
					}
					var b struct {
						Link  []struct{ Relation, URL string }
						Entry []struct{ FullURL string }
					}
					if err := json.Unmarshal([]byte(r.body), &b); err != nil {
						t.Fatal(err)
					}
					for _, entry := range b.Entry {
						typ := path.Base(path.Dir(entry.FullURL))
						types = append(types, typ)
						if !served[typ] {
							t.Errorf("%s: GET /_history%s holds %s", who, query, entry.FullURL)
						}
					}
					next = ""
					for _, l := range b.Link {
						if l.Relation == "next" {
							next = l.URL
						}
					}
				}
				if len(types) != 2 {
					t.Errorf("%s: GET /_history%s: %v, want Observation and Patient", who, query, types)
				}
			}
		}
		var count struct{ Total int }
		if err := json.Unmarshal([]byte(e.do("admin", "GET", "/_history?_summary=count", "").body), &count); err != nil || count.Total != 2 {
			t.Errorf("GET /_history?_summary=count: total %d (%v), want 2", count.Total, err)
		}
		// Nor does a history or search of a record's type reach them.
		for target, status := range map[string]int{"/BulkExportJob/_history": 404, "/NotifyOutbox/n1/_history": 404, "?_type=BulkExportJob": 400} {
			if r := e.do("admin", "GET", target, ""); r.status != status {
				t.Errorf("GET %s: %d, want %d", target, r.status, status)
			}
		}
	})
}

// TestExpiresHoldsAcrossProcesses: with two processes on one MongoDB
// database, the second of which first sees a finished export half an
// hour after the first finished it, the Expires header each answers is
// true of both: once the process that answered it has made its passes
// over the expired jobs, the status asked of the other is 404 after it.
func TestExpiresHoldsAcrossProcesses(t *testing.T) {
	a, b, release := twoStalledProcesses(t)
	release()
	a.put("/Patient/p1", patient("p1"))
	setClocks := func(at time.Time) {
		a.clock.set(at)
		b.clock.set(at)
	}
	for _, c := range []struct {
		name           string
		answers, other *env
	}{
		{"the process that ran it", a, b},
		{"the process that saw it finished later", b, a},
	} {
		t.Run(c.name, func(t *testing.T) {
			t0 := time.Now().Add(time.Minute).Truncate(time.Second) // after p1 was written
			setClocks(t0)
			status := a.kickOff("admin", "/$export?_type=Patient")
			a.wait("admin", status)
			setClocks(t0.Add(30 * time.Minute))
			r := c.answers.do("admin", "GET", strings.Replace(status, a.base, c.answers.base, 1), "")
			expires, err := http.ParseTime(r.header.Get("Expires"))
			if r.status != 200 || err != nil {
				t.Fatalf("status: %d Expires %q (%v) %s", r.status, r.header.Get("Expires"), err, r.body)
			}
			// The answering process's passes run every sweepInterval: one
			// falls in the last sweepInterval before Expires.
			setClocks(expires.Add(-sweepInterval + time.Second))
			if err := c.answers.x.sweep(t.Context()); err != nil {
				t.Fatal(err)
			}
			setClocks(expires.Add(time.Second))
			if r := c.other.do("admin", "GET", strings.Replace(status, a.base, c.other.base, 1), ""); r.status != 404 {
				t.Errorf("status asked of the other process after Expires %s: %d %s, want 404", expires, r.status, r.body)
			}
		})
	}
}

// failing is an engine whose searches of Patient fail with an error
// naming the database's file, as an engine's errors do.
type failing struct {
	store.Store
	store.Finder
}

// engineFault is the error failing answers.
const engineFault = "sqlite: open /var/lib/carefhir/carefhir.db: disk I/O error (*sqlite.Error)"

func (f *failing) Find(ctx context.Context, q store.Query) (*store.Page, error) {
	if q.Type == "Patient" {
		return nil, errors.New(engineFault)
	}
	return f.Finder.Find(ctx, q)
}

// TestFailedExportStatusKeepsInternals: the status of an export the
// engine failed answers 500 with an OperationOutcome saying to start it
// again, naming the job, and none of the engine's error (its file path);
// the log keeps that error at error level beside the job id and the
// status request's id. A job recorded failed before causes were kept
// apart, its reason the error itself, is answered the same way.
func TestFailedExportStatusKeepsInternals(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.Name, func(t *testing.T) {
			st := eng.Open(t)
			// A file, as the process's log: written by the exporter's
			// goroutines and the server's handlers, read by the test.
			logs, err := os.Create(filepath.Join(t.TempDir(), "log"))
			if err != nil {
				t.Fatal(err)
			}
			defer logs.Close()
			log := slog.New(slog.NewJSONHandler(logs, nil))
			e := newEnvWith(t, &failing{Store: st, Finder: st.(store.Finder)},
				func(c *Config) { c.Logger = log }, func(c *server.Config) { c.Logger = log })
			e.put("/Patient/p1", patient("p1"))
			status := e.kickOff("admin", "/$export?_type=Patient")
			id := strings.TrimPrefix(status, e.base+"/$export-status?_jobId=")
			var r *response
			for range 2000 {
				if r = e.do("admin", "GET", status, "", "X-Request-Id", "poll-1"); r.status != 202 {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			checkFailedStatus(t, r, id)
			// The request's line is written once the answer is sent.
			var found bool
			var text []byte
			for i := 0; i < 200 && !found; i++ {
				time.Sleep(10 * time.Millisecond)
				text, _ = os.ReadFile(logs.Name())
				for _, line := range strings.Split(string(text), "\n") {
					found = found || strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, "/var/lib/carefhir/carefhir.db") &&
						strings.Contains(line, id) && strings.Contains(line, `"request_id":"poll-1"`)
				}
			}
			if !found {
				t.Errorf("no error line with the cause, the job id and the request id; log:\n%s", text)
			}

			// A record of the former kind: the error as its reason.
			recs, _ := e.x.records()
			j, ver, err := readJob(t.Context(), recs, id)
			if err != nil {
				t.Fatal(err)
			}
			j.Reason, j.Cause = engineFault, ""
			if _, err := putJob(t.Context(), recs, id, ver, j, time.Now()); err != nil {
				t.Fatal(err)
			}
			checkFailedStatus(t, e.do("admin", "GET", status, ""), id)
		})
	}
}

// checkFailedStatus checks r is the status of failed job id, holding none
// of engineFault.
func checkFailedStatus(t *testing.T, r *response, id string) {
	t.Helper()
	var oo struct {
		ResourceType string
		Issue        []struct{ Severity, Code, Diagnostics string }
	}
	if r.status != 500 || json.Unmarshal([]byte(r.body), &oo) != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 {
		t.Fatalf("status of the failed export: %d %s, want 500 with an OperationOutcome", r.status, r.body)
	}
	if d := oo.Issue[0].Diagnostics; !strings.Contains(d, "start it again") || !strings.Contains(d, id) {
		t.Errorf("diagnostics %q, want the job id and to start it again", d)
	}
	for _, internal := range []string{"/var/lib", "sqlite", "carefhir.db", "*"} {
		if strings.Contains(r.body, internal) {
			t.Errorf("the status holds %q: %s", internal, r.body)
		}
	}
}
