package server

import (
	"compress/gzip"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"carefhir/server/contentcoding"
)

// Content codings (RFC 9110, section 8.4): a FHIR body is sent gzipped to
// a client whose Accept-Encoding allows it, as HAPI FHIR and Firely
// Server do; searchsets, $everything and the CapabilityStatement shrink
// to a fifth or less. A request body may be gzipped too.

// gzipMin is the smallest body sent gzipped: under about one packet the
// compression saves no round trip and costs CPU.
const gzipMin = 1400

var gzipHeader = []string{"gzip"}

// encodeBody returns what to send as the body of a response with the
// headers h: body itself, or body gzipped (from gz when it is not nil)
// when the request accepts it, with Content-Encoding set. A body large
// enough to be compressed varies with Accept-Encoding, whichever is sent.
func encodeBody(c *gin.Context, h http.Header, body, gz []byte) []byte {
	if len(body) < gzipMin {
		return body
	}
	h.Add("Vary", "Accept-Encoding")
	if !contentcoding.AcceptsGzip(c.Request.Header.Get("Accept-Encoding")) {
		return body
	}
	if gz == nil {
		gz = contentcoding.Gzip(body)
	}
	h["Content-Encoding"] = gzipHeader
	return gz
}

// decodeContent reads a request body sent gzipped (Content-Encoding: gzip)
// as the body itself, bounded by limit once decompressed as well, so that
// a small body cannot expand past what the server reads. Another coding is
// 415 (RFC 9110, section 15.5.16).
func decodeContent(limit int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		coding := strings.ToLower(strings.TrimSpace(c.Request.Header.Get("Content-Encoding")))
		switch coding {
		case "", "identity":
			c.Next()
			return
		case "gzip", "x-gzip":
		default:
			c.Error(errorf(http.StatusUnsupportedMediaType, "not-supported",
				"Content-Encoding %q is not supported: send the body as it is, or gzip", truncate(coding, 40)))
			c.Abort()
			return
		}
		zr, err := gzip.NewReader(c.Request.Body)
		if err != nil {
			c.Error(errorf(http.StatusBadRequest, "invalid", "the request body is not gzip, as its Content-Encoding says: %v", err))
			c.Abort()
			return
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, struct {
			io.Reader
			io.Closer
		}{zr, c.Request.Body}, limit)
		// The length is the compressed one: unknown once decompressed.
		c.Request.ContentLength = -1
		c.Request.Header.Del("Content-Encoding")
		c.Next()
	}
}
