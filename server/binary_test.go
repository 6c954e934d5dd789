package server_test

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"carefhir/server"
)

// pdf is the content of the Binaries below: not UTF-8, and starting with
// what a UTF-8 byte order mark is, which must be kept as it is.
var pdf = "\xef\xbb\xbf%PDF-1.4\n\xff\xfe\x00binary"

// A Binary created from raw content is a resource whose data is that
// content in base64, under the Content-Type it was sent with, and whose
// securityContext is the X-Security-Context header.
func TestBinaryRawCreate(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		r := c.do("POST", "/Binary", pdf, "Content-Type", "application/pdf", "X-Security-Context", "Patient/p1")
		r.want(t, http.StatusCreated)
		id := r.json(t)["id"].(string)
		b := c.do("GET", "/Binary/"+id, "", "Accept", "application/fhir+json").want(t, http.StatusOK).json(t)
		if b["contentType"] != "application/pdf" || b["data"] != base64.StdEncoding.EncodeToString([]byte(pdf)) {
			t.Errorf("stored Binary: %v", b)
		}
		if got := get(b, "securityContext", "reference"); got != "Patient/p1" {
			t.Errorf("securityContext %v, want Patient/p1", got)
		}

		// An update with raw content replaces the data at the URL's id.
		c.do("PUT", "/Binary/"+id, "%PDF-1.5", "Content-Type", "application/pdf").want(t, http.StatusOK)
		r = c.do("GET", "/Binary/"+id, "", "Accept", "application/pdf").want(t, http.StatusOK)
		if string(r.body) != "%PDF-1.5" || r.header.Get("ETag") != `W/"2"` {
			t.Errorf("after update: ETag %s, body %q", r.header.Get("ETag"), r.body)
		}

		// A resource type other than Binary still takes FHIR only, and a
		// Content-Type that is no media type is refused.
		c.do("POST", "/Patient", pdf, "Content-Type", "application/pdf").want(t, http.StatusUnsupportedMediaType)
		c.do("POST", "/Binary", pdf, "Content-Type", "pdf").want(t, http.StatusUnsupportedMediaType).outcome(t, "not-supported", "")
	})
}

// A read of a Binary that asks for no FHIR format gets its content, under
// its contentType, sandboxed; one that asks for FHIR gets the resource.
func TestBinaryRawRead(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		data := base64.StdEncoding.EncodeToString([]byte(pdf))
		c.do("PUT", "/Binary/scan", `{"resourceType":"Binary","id":"scan","contentType":"application/pdf","securityContext":{"reference":"Patient/p1"},"data":"`+data+`"}`).
			want(t, http.StatusCreated)
		for _, accept := range []string{"", "*/*", "application/pdf", "application/*;q=0.5, image/png", "application/fhir+json;q=0, */*", "application/fhir+json;q=0.0, */*"} {
			r := c.do("GET", "/Binary/scan", "", "Accept", accept).want(t, http.StatusOK)
			if string(r.body) != pdf {
				t.Errorf("Accept %q: body %q, want the content", accept, r.body)
			}
			for name, want := range map[string]string{
				"Content-Type": "application/pdf", "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
				"X-Content-Type-Options": "nosniff", "ETag": `W/"1"`, "X-Security-Context": "Patient/p1", "Content-Disposition": "",
			} {
				if got := r.header.Get(name); got != want {
					t.Errorf("Accept %q: %s %q, want %q", accept, name, got, want)
				}
			}
			if r.header.Get("Last-Modified") == "" {
				t.Errorf("Accept %q: no Last-Modified", accept)
			}
		}
		r := c.do("GET", "/Binary/scan/_history/1", "", "Accept", "application/pdf").want(t, http.StatusOK)
		if string(r.body) != pdf {
			t.Errorf("vread: body %q", r.body)
		}
		c.do("GET", "/Binary/scan", "", "If-None-Match", `W/"1"`).want(t, http.StatusNotModified)

		// FHIR asked for, by Accept or by _format (which wins).
		for _, q := range []struct{ path, accept, ct string }{
			{"/Binary/scan", "application/fhir+json", "application/fhir+json"},
			{"/Binary/scan", "application/json", "application/json"},
			{"/Binary/scan", "application/fhir+xml", "application/fhir+xml"},
			{"/Binary/scan?_format=json", "application/pdf", "application/fhir+json"},
			{"/Binary/scan/_history/1", "application/fhir+json", "application/fhir+json"},
		} {
			r := c.do("GET", q.path, "", "Accept", q.accept).want(t, http.StatusOK)
			if got := r.header.Get("Content-Type"); got != q.ct+"; charset=utf-8" {
				t.Errorf("%s, Accept %s: Content-Type %q, want %s", q.path, q.accept, got, q.ct)
			}
		}

		// A type the Binary is not: 406, as HTTP has it for content that
		// cannot be had in any type asked for.
		r = c.do("GET", "/Binary/scan", "", "Accept", "image/png").want(t, http.StatusNotAcceptable)
		r.outcome(t, "not-supported", "")
		// Nor one whose weight, however written, is zero.
		c.do("GET", "/Binary/scan", "", "Accept", "application/pdf;q=0.00, image/png").want(t, http.StatusNotAcceptable)
		c.do("GET", "/Binary/absent", "", "Accept", "image/png").want(t, http.StatusNotFound).outcome(t, "not-found", "")
	})
}

// Content a browser would render as a scriptable document is sent to be
// saved, not shown.
func TestBinaryRawReadActiveContent(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		page := "<html><script>alert(document.cookie)</script></html>"
		for _, ct := range []string{"text/html", "image/svg+xml", "application/xhtml+xml"} {
			r := c.do("POST", "/Binary", page, "Content-Type", ct).want(t, http.StatusCreated)
			id := r.json(t)["id"].(string)
			r = c.do("GET", "/Binary/"+id, "", "Accept", "*/*").want(t, http.StatusOK)
			if r.header.Get("Content-Disposition") != "attachment" || r.header.Get("Content-Type") != ct ||
				r.header.Get("Content-Security-Policy") != "default-src 'none'; frame-ancestors 'none'; sandbox" {
				t.Errorf("%s: headers %v", ct, r.header)
			}
		}
	})
}

// Raw content is bounded by --max-body as any body is: 413, nothing stored.
func TestBinaryRawCreateTooBig(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("POST", "/Binary", strings.Repeat("x", 2048), "Content-Type", "application/octet-stream").
			want(t, http.StatusRequestEntityTooLarge)
		if n := c.do("GET", "/Binary?_summary=count", "").want(t, http.StatusOK).json(t)["total"]; n != 0.0 {
			t.Errorf("%v Binaries stored, want 0", n)
		}
	}, func(cfg *server.Config) { cfg.MaxBodyBytes = 1024 })
}

// A base64Binary whose "=" is not the final padding (RFC 4648, which R4
// names) is no base64 any decoder reads: a Binary holding one is refused
// at its data, in JSON and XML, and nothing is stored, where it was stored
// and its content read was a 500.
func TestBinaryMalformedBase64(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		for _, data := range []string{"AA=A", "A===", "aGVs=bG8="} {
			asJSON := `{"resourceType":"Binary","contentType":"text/plain","data":"` + data + `"}`
			asXML := `<Binary xmlns="http://hl7.org/fhir"><contentType value="text/plain"/><data value="` + data + `"/></Binary>`
			for _, v := range []struct{ body, contentType string }{{asJSON, "application/fhir+json"}, {asXML, "application/fhir+xml"}} {
				r := c.do("POST", "/Binary", v.body, "Content-Type", v.contentType, "Accept", "application/fhir+json").want(t, http.StatusBadRequest)
				if msg := r.outcome(t, "", "Binary.data"); !strings.Contains(msg, data) {
					t.Errorf("%s: diagnostics %q do not name %s", v.body, msg, data)
				}
				c.do("PUT", "/Binary/b", v.body, "Content-Type", v.contentType).want(t, http.StatusBadRequest)
			}
		}
		if n := c.do("GET", "/Binary?_summary=count", "").want(t, http.StatusOK).json(t)["total"]; n != 0.0 {
			t.Errorf("%v Binaries stored, want 0", n)
		}
		c.do("GET", "/Binary/b", "").want(t, http.StatusNotFound)
	})
}

// A base64Binary may hold spaces, tabs and line breaks between its groups
// of four characters (R4 regex (\s*([0-9a-zA-Z\+/=]){4}\s*)+): the content of a
// Binary whose data has them is served, and a PATCH entry whose Binary
// has them is applied, where the read was a 500 and the entry a 400.
func TestBinaryBase64Whitespace(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		for i, data := range []string{`aGVs bG8=`, `aGVs\tbG8=`, `aGVs\r\nbG8=`, ` aGVs bG8= `} {
			id := "b" + strconv.Itoa(i)
			c.do("PUT", "/Binary/"+id, `{"resourceType":"Binary","id":"`+id+`","contentType":"text/plain","data":"`+data+`"}`).
				want(t, http.StatusCreated)
			r := c.do("GET", "/Binary/"+id, "", "Accept", "*/*").want(t, http.StatusOK)
			if string(r.body) != "hello" || r.header.Get("Content-Length") != "5" {
				t.Errorf("data %s: body %q, Content-Length %s; want hello, 5", data, r.body, r.header.Get("Content-Length"))
			}
		}

		c.do("PUT", "/Patient/p", patientWith("p", "1", "Before")).want(t, http.StatusCreated)
		var spaced strings.Builder
		for i, ch := range b64(`[{"op":"replace","path":"/name/0/family","value":"After"}]`) {
			if i > 0 && i%4 == 0 {
				spaced.WriteString(" ")
			}
			spaced.WriteRune(ch)
		}
		resp := c.bundle(txBundle("transaction",
			txEntry("", "PATCH", "Patient/p", `{"resourceType":"Binary","contentType":"application/json-patch+json","data":"`+spaced.String()+`"}`)))
		checkStatuses(t, resp, "200 OK")
		if got := str(resp.resource(t, 0), "name", 0, "family"); got != "After" {
			t.Errorf("patched family %q, want After", got)
		}
	})
}
