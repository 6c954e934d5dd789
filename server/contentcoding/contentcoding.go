// Package contentcoding is the gzip content coding of HTTP (RFC 9110,
// section 8.4) as the FHIR API and its files use it: whether a request's
// Accept-Encoding allows gzip, and gzip writers kept for reuse, as their
// compression state is large.
package contentcoding

import (
	"bytes"
	"compress/gzip"
	"io"
	"strconv"
	"strings"
	"sync"
)

// AcceptsGzip reports whether an Accept-Encoding header allows gzip: it
// names gzip (or x-gzip), or *, with a weight above 0 (RFC 9110, section
// 12.5.3).
func AcceptsGzip(header string) bool {
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

// writers keeps gzip writers at the level responses are sent with: the
// fastest, as a response is compressed while its client waits.
var writers = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return zw
}}

// Writer is a gzip writer that goes back to be reused once closed.
type Writer struct{ zw *gzip.Writer }

// NewWriter returns a Writer compressing into w.
func NewWriter(w io.Writer) *Writer {
	zw := writers.Get().(*gzip.Writer)
	zw.Reset(w)
	return &Writer{zw: zw}
}

func (w *Writer) Write(p []byte) (int, error) { return w.zw.Write(p) }

// Close writes the end of the gzip stream and gives the writer back; w
// is not to be used after.
func (w *Writer) Close() error {
	err := w.zw.Close()
	writers.Put(w.zw)
	w.zw = nil
	return err
}

// Gzip returns body compressed.
func Gzip(body []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(body)/4 + 64)
	w := NewWriter(&buf)
	// Writes to a bytes.Buffer do not fail.
	w.Write(body)
	w.Close()
	return buf.Bytes()
}
