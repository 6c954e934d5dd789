package lexical

import (
	"bufio"
	"bytes"
	"io"
)

// utf8BOM is the UTF-8 byte order mark, which Windows editors and
// spreadsheets write at the start of text files; JSON (RFC 8259 §8.1), XML
// and the GP systems' exports let a reader ignore it.
var utf8BOM = []byte("\xef\xbb\xbf")

// TrimBOM returns b without the UTF-8 byte order mark it may begin with.
func TrimBOM(b []byte) []byte {
	return bytes.TrimPrefix(b, utf8BOM)
}

// SkipBOM returns a reader of r without the UTF-8 byte order mark it may
// begin with, and whether it had one.
func SkipBOM(r io.Reader) (*bufio.Reader, bool) {
	br := bufio.NewReader(r)
	if b, err := br.Peek(len(utf8BOM)); err == nil && bytes.Equal(b, utf8BOM) {
		br.Discard(len(utf8BOM))
		return br, true
	}
	return br, false
}
