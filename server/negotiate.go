package server

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

const (
	mimeFHIRJSON = "application/fhir+json"
	mimeJSON     = "application/json"
)

// jsonTypes are the media types carefhir reads and writes, in preference
// order; xmlTypes are FHIR's XML forms, recognised so that a client asking for
// XML gets a precise 406/415 rather than JSON it did not ask for.
var (
	jsonTypes = map[string]bool{mimeFHIRJSON: true, mimeJSON: true, "application/json+fhir": true, "text/json": true}
	xmlTypes  = map[string]bool{"application/fhir+xml": true, "application/xml": true, "text/xml": true, "application/xml+fhir": true}
)

// formatAliases maps the short and long values of the _format parameter to a
// media type.
var formatAliases = map[string]string{
	"json": mimeFHIRJSON, mimeFHIRJSON: mimeFHIRJSON, mimeJSON: mimeJSON,
	"application/json+fhir": mimeFHIRJSON, "text/json": mimeJSON,
	"xml": "application/fhir+xml", "application/fhir+xml": "application/fhir+xml",
	"application/xml": "application/fhir+xml", "text/xml": "application/fhir+xml",
	"application/xml+fhir": "application/fhir+xml",
}

// negotiate decides the response media type from _format (which wins, as
// the spec requires) and the Accept header. It stores the answer on the
// context for render, or fails with 406.
func negotiate(c *gin.Context) {
	mediaType, err := responseType(c.Query("_format"), c.GetHeader("Accept"))
	if err != nil {
		c.Error(err)
		c.Abort()
		return
	}
	c.Set(ctxMediaType, mediaType)
	c.Next()
}

const ctxMediaType = "carefhir.mediaType"

func responseType(format, accept string) (string, error) {
	if format != "" {
		mt, ok := formatAliases[strings.ToLower(strings.TrimSpace(strings.SplitN(format, ";", 2)[0]))]
		if !ok || !jsonTypes[mt] {
			return "", errorf(http.StatusNotAcceptable, "not-supported",
				"_format %q is not supported: this server answers in application/fhir+json", format).at("_format")
		}
		return mt, nil
	}
	if strings.TrimSpace(accept) == "" {
		return mimeFHIRJSON, nil
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if params["q"] == "0" {
			continue
		}
		switch {
		case mt == mimeJSON || mt == "text/json":
			return mimeJSON, nil
		case jsonTypes[mt], mt == "*/*", mt == "application/*":
			return mimeFHIRJSON, nil
		}
	}
	return "", errorf(http.StatusNotAcceptable, "not-supported",
		"none of the media types in Accept %q is supported: this server answers in application/fhir+json", accept)
}

// checkContentType accepts FHIR JSON request bodies and refuses others with
// 415.
func checkContentType(c *gin.Context) error {
	ct := c.GetHeader("Content-Type")
	if ct == "" {
		return errorf(http.StatusUnsupportedMediaType, "not-supported",
			"Content-Type is missing: send application/fhir+json")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !jsonTypes[mt] {
		return errorf(http.StatusUnsupportedMediaType, "not-supported",
			"Content-Type %q is not supported: send application/fhir+json", ct)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return errorf(http.StatusUnsupportedMediaType, "not-supported",
			"charset %q is not supported: FHIR JSON is UTF-8", cs)
	}
	return nil
}

// writeJSON writes a FHIR JSON body with the negotiated media type,
// indenting it when _pretty=true.
func writeJSON(c *gin.Context, status int, body []byte) {
	mt := c.GetString(ctxMediaType)
	if mt == "" {
		mt = mimeFHIRJSON
	}
	if c.Query("_pretty") == "true" {
		var buf bytes.Buffer
		if err := json.Indent(&buf, body, "", "  "); err == nil {
			body = buf.Bytes()
		}
	}
	c.Data(status, mt+"; charset=utf-8", body)
}
