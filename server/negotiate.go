package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"carefhir/fhir"
	"carefhir/fhir/fhirjson"
	"carefhir/fhir/fhirxml"
)

const (
	mimeFHIRJSON = "application/fhir+json"
	mimeJSON     = "application/json"
	mimeFHIRXML  = "application/fhir+xml"
	mimeXML      = "application/xml"
)

// jsonTypes and xmlTypes are the media types of FHIR's two wire formats
// that carefhir reads and writes.
var (
	jsonTypes = map[string]bool{mimeFHIRJSON: true, mimeJSON: true, "application/json+fhir": true, "text/json": true}
	xmlTypes  = map[string]bool{mimeFHIRXML: true, mimeXML: true, "text/xml": true, "application/xml+fhir": true}
)

// formatAliases maps the short and long values of the _format parameter to a
// media type.
var formatAliases = map[string]string{
	"json": mimeFHIRJSON, mimeFHIRJSON: mimeFHIRJSON, mimeJSON: mimeJSON,
	"application/json+fhir": mimeFHIRJSON, "text/json": mimeJSON,
	"xml": mimeFHIRXML, mimeFHIRXML: mimeFHIRXML, mimeXML: mimeXML, "text/xml": mimeXML,
	"application/xml+fhir": mimeFHIRXML,
}

// negotiate decides the response media type from _format (which wins, as
// the spec requires) and the Accept header. It stores the answer on the
// context for render, or fails with 406.
func negotiate(c *gin.Context) {
	format, accept := requestedFormat(c)
	mediaType, err := answerType(c, format, accept)
	if rawBinaryRead(c, format, accept) {
		// The Binary's content is the answer; errors are FHIR JSON.
		c.Set(ctxRawAccept, accept)
		mediaType, err = mimeFHIRJSON, nil
	}
	if err != nil {
		c.Error(err)
		c.Abort()
		return
	}
	stateOf(c).mediaType = mediaType
	c.Next()
}

// requestedFormat returns what the request asks its answer to be: the
// _format parameter and the Accept header.
func requestedFormat(c *gin.Context) (format, accept string) {
	return queryOf(c).Get("_format"), c.Request.Header.Get("Accept")
}

// answerType returns the media type of the answer to c, from format and
// accept (see responseType), or from the body's when they ask for no type
// in particular.
func answerType(c *gin.Context, format, accept string) (string, error) {
	mediaType, err := responseType(format, accept)
	if format == "" && anyType(accept) {
		// R4 leaves the answer's format open when neither _format nor Accept
		// asks for one; a client that sent XML reads XML, as HAPI answers.
		if ct, _, ok := parseMediaType(c.GetHeader("Content-Type")); ok && xmlTypes[ct] {
			mediaType, _ = answerTo(ct)
		}
	}
	return mediaType, err
}

// errorType returns the media type of an error answered before negotiate
// ran: refused by a middleware (authentication, the body limit, a query
// that does not parse) or by the router (no endpoint, a method not
// allowed). Under /fhir it is negotiated as negotiate would, so that a
// client that asked for XML reads the OperationOutcome in XML; elsewhere,
// or when negotiation fails, it is FHIR JSON.
func errorType(c *gin.Context) string {
	if p := c.Request.URL.Path; p != "/fhir" && !strings.HasPrefix(p, "/fhir/") {
		return mimeFHIRJSON
	}
	format, accept := requestedFormat(c)
	if rawBinaryRead(c, format, accept) {
		return mimeFHIRJSON // as negotiate answers a Binary's errors
	}
	mt, err := answerType(c, format, accept)
	if err != nil {
		return mimeFHIRJSON
	}
	return mt
}

// ctxPretty is set when _pretty=true came other than in the query string:
// in the form of a POST _search.
const ctxPretty = "carefhir.pretty"

func responseType(format, accept string) (string, error) {
	if format != "" {
		name, params, _ := strings.Cut(format, ";")
		// A media type holds no space: one in _format is a "+" the
		// client sent unencoded (_format=application/fhir+json), as FHIR
		// clients do, which the query decoder read as a space.
		name = strings.ReplaceAll(strings.TrimSpace(name), " ", "+")
		mt, ok := formatAliases[strings.ToLower(name)]
		if !ok {
			return "", errorf(http.StatusNotAcceptable, "not-supported",
				"_format %q is not supported: use json or xml", truncate(format, 40)).at("_format")
		}
		if _, p, err := mime.ParseMediaType("a/b;" + params); params != "" && err == nil {
			if v, other := otherVersion(p); other {
				return "", versionNotServed(http.StatusNotAcceptable, v).at("_format")
			}
		}
		return mt, nil
	}
	if strings.TrimSpace(accept) == "" {
		return mimeFHIRJSON, nil
	}
	if !strings.ContainsAny(accept, ",;") {
		// One media type without parameters, as most clients send: every
		// type answered is well formed, so parsing can be skipped.
		if mt, ok := answerTo(strings.ToLower(strings.TrimSpace(accept))); ok {
			return mt, nil
		}
	}
	// The acceptable media type of highest weight wins (RFC 9110, section
	// 12.5.1); of equal weights, the first listed.
	var (
		version string // a FHIR version asked for and not served
		best    string
		bestQ   float64
	)
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if w, ok := params["q"]; ok {
			// A weight that is not one (q=abc, q=2) is read as the
			// default rather than refusing the type: a sloppy client
			// still gets an answer.
			if q, err = strconv.ParseFloat(w, 64); err != nil || !(q >= 0 && q <= 1) {
				q = 1
			}
		}
		if q == 0 || q <= bestQ {
			continue
		}
		answer, ok := answerTo(mt)
		if ok && strings.HasSuffix(mt, "/*") {
			// A range stands for the types it covers but those the client
			// refused by name (q=0): RFC 9110, section 12.5.1. Accept is
			// read for them only when it holds a range.
			if refused := refusedTypes(accept); refused[answer] {
				answer, ok = unrefused(refused)
			}
		}
		if !ok {
			continue
		}
		if v, other := otherVersion(params); other {
			version = v
			continue
		}
		best, bestQ = answer, q
	}
	if best != "" {
		return best, nil
	}
	if version != "" {
		return "", versionNotServed(http.StatusNotAcceptable, version)
	}
	return "", errorf(http.StatusNotAcceptable, "not-supported",
		"none of the media types in Accept %q is supported: use application/fhir+json or application/fhir+xml", truncate(accept, 200))
}

// refusedTypes returns the answers to the media types that accept names
// with weight 0 (application/fhir+json;q=0), which no range in it stands
// for; nil when there are none.
func refusedTypes(accept string) map[string]bool {
	var refused map[string]bool
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || strings.HasSuffix(mt, "/*") {
			continue
		}
		if q, err := strconv.ParseFloat(params["q"], 64); err != nil || q != 0 {
			continue
		}
		if answer, ok := answerTo(mt); ok {
			if refused == nil {
				refused = map[string]bool{}
			}
			refused[answer] = true
		}
	}
	return refused
}

// unrefused returns the first media type the server writes that is not
// among refused, in the order of preference of a range (*/*).
func unrefused(refused map[string]bool) (string, bool) {
	for _, mt := range [...]string{mimeFHIRJSON, mimeFHIRXML, mimeJSON, mimeXML} {
		if !refused[mt] {
			return mt, true
		}
	}
	return "", false
}

// servedVersion is the FHIR version served, as the fhirVersion parameter
// of a media type names it: major.minor (https://hl7.org/fhir/R4/versioning.html).
const servedVersion = "4.0"

// otherVersion returns the FHIR version that the fhirVersion parameter
// among params names, if it is not the one served (4.0, or a patch of it
// such as 4.0.1). A client that names STU3 (3.0), as GP Connect's do,
// must not get R4 content it would read as STU3.
func otherVersion(params map[string]string) (string, bool) {
	v, ok := params["fhirversion"]
	if !ok || v == servedVersion || strings.HasPrefix(v, servedVersion+".") {
		return "", false
	}
	return v, true
}

// versionNotServed is the refusal of a request naming FHIR version v:
// 406 for the answer it accepts, 415 for the body it sends.
func versionNotServed(status int, v string) *Error {
	return errorf(status, "not-supported",
		"FHIR version %q is not served here: this server reads and writes FHIR %s (R4) only, as $versions lists", truncate(v, 20), servedVersion)
}

// anyType reports whether accept asks for no type in particular: absent,
// or */* alone.
func anyType(accept string) bool {
	accept = strings.TrimSpace(accept)
	return accept == "" || accept == "*/*"
}

// answerTo returns the media type of the answer to a client accepting mt.
func answerTo(mt string) (string, bool) {
	switch {
	case mt == mimeJSON || mt == "text/json":
		return mimeJSON, true
	case jsonTypes[mt], mt == "*/*", mt == "application/*":
		return mimeFHIRJSON, true
	case mt == mimeXML || mt == "text/xml":
		return mimeXML, true
	case xmlTypes[mt]:
		return mimeFHIRXML, true
	}
	return "", false
}

// decodeBody reads a request body in the format its Content-Type names,
// refusing other media types with 415. typ "" accepts any resource type.
func decodeBody(c *gin.Context, body []byte, typ string) (fhir.Resource, error) {
	mt, err := bodyType(c)
	if err != nil {
		return nil, err
	}
	switch {
	case xmlTypes[mt] && typ == "":
		return fhirxml.Unmarshal(body)
	case xmlTypes[mt]:
		return fhirxml.UnmarshalAs(body, typ)
	case typ == "":
		return fhirjson.Unmarshal(body)
	default:
		return fhirjson.UnmarshalAs(body, typ)
	}
}

// bodyType returns the media type of the request body, refusing with 415
// a body that is not FHIR JSON or XML in UTF-8.
func bodyType(c *gin.Context) (string, error) {
	ct := c.GetHeader("Content-Type")
	if ct == "" {
		return "", errorf(http.StatusUnsupportedMediaType, "not-supported",
			"Content-Type is missing: send application/fhir+json or application/fhir+xml")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !jsonTypes[mt] && !xmlTypes[mt] {
		return "", errorf(http.StatusUnsupportedMediaType, "not-supported",
			"Content-Type %q is not supported: send application/fhir+json or application/fhir+xml", truncate(ct, 80))
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return "", errorf(http.StatusUnsupportedMediaType, "not-supported",
			"charset %q is not supported: FHIR is exchanged in UTF-8", truncate(cs, 40))
	}
	if v, other := otherVersion(params); other {
		return "", versionNotServed(http.StatusUnsupportedMediaType, v)
	}
	return mt, nil
}

// parseMediaType parses a media type, type/subtype and parameters; the
// mime package also takes a value without a subtype ("pdf"), which names
// no content.
func parseMediaType(v string) (string, map[string]string, bool) {
	if v == "" {
		return "", nil, false // most requests, reads: nothing to parse
	}
	mt, params, err := mime.ParseMediaType(v)
	if err != nil || !strings.Contains(mt, "/") {
		return "", nil, false
	}
	return mt, params, true
}

// writeFHIR writes a resource, given as its JSON form, in the negotiated
// format: JSON as it is, or XML; either indented when _pretty=true.
func writeFHIR(c *gin.Context, status int, body []byte) {
	writeFHIRWith(c, status, body, nil)
}

// prettyAsked reports whether the request asks for its answer indented:
// _pretty=true in its query string, or in the form of a POST _search.
func prettyAsked(c *gin.Context) bool {
	return c.GetBool(ctxPretty) || queryOf(c).Get("_pretty") == "true"
}

// writeFHIRWith is writeFHIR of a body whose gzipped form, when not nil,
// is gz: sent as it is to a client accepting gzip when the answer is body
// itself (JSON, not indented), rather than compressed again.
func writeFHIRWith(c *gin.Context, status int, body, gz []byte) {
	mt := stateOf(c).mediaType
	if mt == "" {
		mt = mimeFHIRJSON
	}
	pretty := prettyAsked(c)
	if xmlTypes[mt] {
		indent := ""
		if pretty {
			indent = "  "
		}
		xml, err := toXML(body, indent)
		if err != nil {
			// Only a resource this server wrote reaches here; failing to
			// convert it is a bug, reported without internals.
			c.Error(err)
			mt, body, status = mimeFHIRJSON, newOutcome(Issue{Severity: "fatal", Code: "exception",
				Diagnostics: "internal server error"}).marshal(), http.StatusInternalServerError
		} else {
			body = xml
		}
		gz = nil
	} else if pretty {
		var buf bytes.Buffer
		if err := json.Indent(&buf, body, "", "  "); err == nil {
			body = buf.Bytes()
		}
		gz = nil
	}
	ct, ok := contentTypes[mt]
	if !ok || status < http.StatusOK || status == http.StatusNoContent || status == http.StatusNotModified {
		c.Data(status, mt+"; charset=utf-8", body)
		return
	}
	// What c.Data does, with a Content-Type made once rather than for
	// every response (shared, and never changed), and the length of the
	// body, which is whole here: without it net/http chunks any body over
	// 2 KiB, which costs a write of its own per chunk and leaves clients
	// without the size of what is coming. A smaller body's length net/http
	// gives itself, outside the header map: a read's answer then holds
	// eight headers there, which a Go map keeps in one group, where a
	// ninth grows it into a table, in the map and in the copy net/http
	// takes of it when the status is written.
	h := c.Writer.Header()
	h["Content-Type"] = ct
	body = encodeBody(c, h, body, gz)
	if len(body) >= smallBody {
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
	}
	c.Status(status)
	if _, err := c.Writer.Write(body); err != nil {
		c.Error(err)
		c.Abort()
	}
}

// smallBody is the size under which net/http holds a body until the
// handler returns and then gives its Content-Length itself (its
// bufferBeforeChunkingSize).
const smallBody = 2048

// contentTypes are the Content-Type headers of the media types written,
// made once rather than for every response.
var contentTypes = map[string][]string{
	mimeFHIRJSON: {mimeFHIRJSON + "; charset=utf-8"},
	mimeJSON:     {mimeJSON + "; charset=utf-8"},
	mimeFHIRXML:  {mimeFHIRXML + "; charset=utf-8"},
	mimeXML:      {mimeXML + "; charset=utf-8"},
}

// toXML converts a resource's JSON form to XML, indented by indent when it
// is not empty. The JSON may hold stored resources whose narrative an
// older write let through with what XML cannot carry (fhirjson.UnmarshalStored).
func toXML(jsonBody []byte, indent string) ([]byte, error) {
	res, err := fhirjson.UnmarshalStored(jsonBody)
	if err != nil {
		return nil, fmt.Errorf("convert to XML: %w", err)
	}
	b, err := fhirxml.MarshalIndent(res, indent)
	if err != nil {
		return nil, fmt.Errorf("convert to XML: %w", err)
	}
	return b, nil
}
