package server

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"carefhir/fhir"
	"carefhir/fhir/lexical"
	"carefhir/store"
)

// A Binary is served as its content as well as as a resource
// (https://hl7.org/fhir/R4/binary.html#rest): a read that does not ask for
// a FHIR format explicitly gets the bytes under the Binary's contentType,
// and a create or update whose body is not FHIR JSON or XML stores the
// body as a Binary's data. These functions are that exception; negotiate,
// writeVersion and decodeResource call them, and the rest of the read or
// write (access control, audit, ETags, size limits) is that of any
// resource.

// ctxRawAccept holds, on a read of a Binary served as its content, the
// Accept header the content must satisfy.
const ctxRawAccept = "carefhir.rawBinaryAccept"

// rawBinaryRead reports whether c reads or vreads a Binary and asks for no
// FHIR format: no _format, and no FHIR media type named in Accept (an
// absent Accept, */* or image/png asks for the content).
func rawBinaryRead(c *gin.Context, format, accept string) bool {
	if format != "" || c.Param("type") != "Binary" || strings.HasPrefix(c.Param("id"), "$") {
		return false
	}
	if m := c.Request.Method; m != http.MethodGet && m != http.MethodHead {
		return false
	}
	if p := c.FullPath(); p != "/fhir/:type/:id" && p != "/fhir/:type/:id/_history/:vid" {
		return false
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || mt == "*/*" || mt == "application/*" || refused(params) {
			continue
		}
		if _, ok := answerTo(mt); ok {
			return false
		}
	}
	return true
}

// writeRawBinary writes the content of the stored Binary v, or 406 when
// accept does not take its contentType. Stored content is the client's,
// not the server's: it is sandboxed (no script runs in the server's
// origin), never sniffed, and HTML, SVG and XML, which a browser would
// render and could script, are sent to be saved rather than shown.
func writeRawBinary(c *gin.Context, status int, v *store.Version, accept string) {
	var b struct {
		ContentType     string
		Data            string // base64, with the whitespace R4 allows in it
		SecurityContext struct{ Reference string }
	}
	if err := json.Unmarshal(v.JSON, &b); err != nil {
		c.Error(fmt.Errorf("read stored Binary/%s: %w", v.ID, err))
		return
	}
	data, err := lexical.DecodeBase64Binary(b.Data)
	if err != nil {
		c.Error(fmt.Errorf("read stored Binary/%s: data: %w", v.ID, err))
		return
	}
	mt, _, ok := parseMediaType(b.ContentType)
	if !ok {
		mt, b.ContentType = "application/octet-stream", "application/octet-stream"
	}
	if !accepts(accept, mt) {
		c.Error(errorf(http.StatusNotAcceptable, "not-supported",
			"Binary/%s holds %s, which Accept %q does not take: accept it, or application/fhir+json for the resource",
			v.ID, truncate(mt, 80), truncate(accept, 200)))
		return
	}
	setVersionHeaders(c, v)
	h := c.Writer.Header()
	h["Content-Type"] = []string{b.ContentType}
	h["Content-Security-Policy"] = sandboxed
	h["X-Content-Type-Options"] = nosniff
	if activeContent(mt) {
		h["Content-Disposition"] = attachment
	}
	if ref := b.SecurityContext.Reference; ref != "" {
		h.Set("X-Security-Context", ref)
	}
	h["Content-Length"] = []string{strconv.Itoa(len(data))}
	c.Status(status)
	if _, err := c.Writer.Write(data); err != nil {
		c.Error(err)
		c.Abort()
	}
}

var (
	sandboxed  = []string{"default-src 'none'; frame-ancestors 'none'; sandbox"}
	attachment = []string{"attachment"}
)

// accepts reports whether an Accept header takes media type mt; no Accept
// takes anything.
func accepts(accept, mt string) bool {
	if strings.TrimSpace(accept) == "" {
		return true
	}
	major, _, _ := strings.Cut(mt, "/")
	for _, part := range strings.Split(accept, ",") {
		a, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || refused(params) {
			continue
		}
		if a == "*/*" || a == mt || a == major+"/*" {
			return true
		}
	}
	return false
}

// refused reports whether the parameters of a media type in Accept give
// it weight 0 (q=0, q=0.0, q=0.000: RFC 9110, section 12.4.2), which
// makes it not acceptable.
func refused(params map[string]string) bool {
	q, ok := params["q"]
	if !ok {
		return false
	}
	w, err := strconv.ParseFloat(q, 64)
	return err == nil && w == 0
}

// activeContent reports whether a browser would render content of media
// type mt as a document that can run script: HTML, and XML, which may be
// XHTML or SVG or name a stylesheet.
func activeContent(mt string) bool {
	return mt == "text/html" || mt == "text/xml" || mt == "application/xml" || strings.HasSuffix(mt, "+xml")
}

// rawBinaryBody reports whether the body of a write of typ is the content
// of a Binary rather than a resource: typ is Binary and the body's
// Content-Type is a media type other than FHIR JSON or XML.
func rawBinaryBody(c *gin.Context, typ string) bool {
	if typ != "Binary" {
		return false
	}
	mt, _, ok := parseMediaType(c.GetHeader("Content-Type"))
	return ok && !jsonTypes[mt] && !xmlTypes[mt]
}

// readRawBinary reads the request body, byte for byte, as the data of a
// Binary of its Content-Type, with the X-Security-Context header as its
// securityContext. On an update the Binary has the id of the URL.
func readRawBinary(c *gin.Context) (*fhir.Binary, error) {
	body, err := readAll(c)
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, errorf(http.StatusBadRequest, "required", "the request body is empty: send the content of the Binary")
	}
	mt, params, _ := parseMediaType(c.GetHeader("Content-Type"))
	ct := mime.FormatMediaType(mt, params)
	data := base64.StdEncoding.EncodeToString(body)
	b := &fhir.Binary{ContentType: &fhir.Code{Value: &ct}, Data: &fhir.Base64Binary{Value: &data}}
	if id := c.Param("id"); id != "" {
		b.Id = &fhir.Id{Value: &id}
	}
	if ref := c.GetHeader("X-Security-Context"); ref != "" {
		b.SecurityContext = &fhir.Reference{Reference: &fhir.String{Value: &ref}}
	}
	return b, nil
}
