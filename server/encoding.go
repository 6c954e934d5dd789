package server

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
)

// Content codings (RFC 9110, section 8.4): a FHIR body is sent gzipped to
// a client whose Accept-Encoding allows it, as HAPI FHIR and Firely
// Server do; searchsets, $everything and the CapabilityStatement shrink
// to a fifth or less. A request body may be gzipped too.

// gzipMin is the smallest body sent gzipped: under about one packet the
// compression saves no round trip and costs CPU.
const gzipMin = 1400

var (
	gzipHeader = []string{"gzip"}
	// gzipWriters keeps the writers, whose compression state is large, for
	// the next response.
	gzipWriters = sync.Pool{New: func() any {
		zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
		return zw
	}}
)

// acceptsGzip reports whether an Accept-Encoding header allows gzip: it
// names gzip (or x-gzip), or *, with a weight above 0 (RFC 9110, section
// 12.5.3).
func acceptsGzip(header string) bool {
	if header == "" {
		return false
	}
	star := false
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding != "gzip" && coding != "x-gzip" && coding != "*" {
			continue
		}
		allowed := !zeroWeight(params)
		if coding != "*" {
			return allowed
		}
		star = allowed
	}
	return star
}

// zeroWeight reports whether the parameters of an Accept-Encoding member
// give it q=0, which refuses the coding.
func zeroWeight(params string) bool {
	for _, p := range strings.Split(params, ";") {
		name, value, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(name), "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			return err == nil && q == 0
		}
	}
	return false
}

// gzipped returns body compressed with gzip.
func gzipped(body []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(body)/4 + 64)
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&buf)
	// Writes to a bytes.Buffer do not fail.
	zw.Write(body)
	zw.Close()
	return buf.Bytes()
}

// encodeBody returns what to send as the body of a response with the
// headers h: body itself, or body gzipped (from gz when it is not nil)
// when the request accepts it, with Content-Encoding set. A body large
// enough to be compressed varies with Accept-Encoding, whichever is sent.
func encodeBody(c *gin.Context, h http.Header, body, gz []byte) []byte {
	if len(body) < gzipMin {
		return body
	}
	h.Add("Vary", "Accept-Encoding")
	if !acceptsGzip(c.Request.Header.Get("Accept-Encoding")) {
		return body
	}
	if gz == nil {
		gz = gzipped(body)
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
