package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/gin-gonic/gin"

	"carefhir/internal/jsontext"
)

// appendEncoded appends the JSON of the Bundle, with its resources as they
// are, to dst, growing it once to the size it needs. Through
// encoding/json, every resource body, already compact JSON the server
// wrote, would be scanned and copied again to check and compact it (also
// when returned by a MarshalJSON method): for a page of searchset
// matches, most of the cost of writing the answer.
func (b *bundle) appendEncoded(dst []byte) ([]byte, error) {
	// Room for the head, the resources and what surrounds each.
	size := 256 + len(entryMember) + 2
	for _, l := range b.Link {
		size += len(l.URL) + 32
	}
	for i := range b.Entry {
		size += len(b.Entry[i].Resource) + len(b.Entry[i].FullURL) + 128
	}
	out := b.appendHead(slices.Grow(dst, size))
	if len(b.Entry) == 0 {
		return append(out, '}'), nil
	}
	out = append(out, entryMember...)
	for i := range b.Entry {
		if i > 0 {
			out = append(out, ',')
		}
		var err error
		if out, err = b.Entry[i].appendJSON(out); err != nil {
			return nil, fmt.Errorf("Bundle.entry[%d]: %w", i, err)
		}
	}
	return append(out, "]}"...), nil
}

// appendHead appends the Bundle but for its entries and its closing brace,
// byte for byte as encoding/json writes it, which costs more than all of
// a searchset's entries together.
func (b *bundle) appendHead(dst []byte) []byte {
	dst = jsontext.AppendString(append(dst, `{"resourceType":`...), b.ResourceType)
	dst = jsontext.AppendString(append(dst, `,"id":`...), b.ID)
	dst = jsontext.AppendString(append(dst, `,"meta":{"lastUpdated":`...), b.Meta.LastUpdated)
	dst = jsontext.AppendString(append(dst, `},"type":`...), b.Type)
	if b.Total != nil {
		dst = strconv.AppendInt(append(dst, `,"total":`...), int64(*b.Total), 10)
	}
	if len(b.Link) > 0 {
		dst = append(dst, `,"link":[`...)
		for i, l := range b.Link {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = jsontext.AppendString(append(dst, `{"relation":`...), l.Relation)
			dst = append(jsontext.AppendString(append(dst, `,"url":`...), l.URL), '}')
		}
		dst = append(dst, ']')
	}
	return dst
}

// entryMember starts Bundle.entry, the last member of a Bundle.
const entryMember = `,"entry":[`

// withEntries adds entries, encoded, to the encoded Bundle b, which has
// none: what encoding the Bundle with them gives, as entry is its last
// element.
func withEntries(b []byte, entries [][]byte) []byte {
	if len(entries) == 0 {
		return b
	}
	size := len(b) + len(entryMember) + len(entries) + 1
	for _, e := range entries {
		size += len(e)
	}
	out := make([]byte, 0, size)
	out = append(append(out, b[:len(b)-1]...), entryMember...)
	for i, e := range entries {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, e...)
	}
	return append(out, "]}"...)
}

// appendJSON appends the entry to dst, its resource as it is. A searchset
// entry (search alone after the resource) is appended member by member;
// the others' request and response by encoding/json.
func (e *bundleEntry) appendJSON(dst []byte) ([]byte, error) {
	dst = append(dst, '{')
	first := true
	member := func(name string) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(append(append(dst, '"'), name...), `":`...)
	}
	if e.FullURL != "" {
		member("fullUrl")
		dst = jsontext.AppendString(dst, e.FullURL)
	}
	if len(e.Resource) > 0 {
		member("resource")
		dst = append(dst, bytes.TrimSpace(e.Resource)...)
	}
	if e.Request == nil && e.Response == nil {
		if e.Search != nil {
			member("search")
			dst = append(jsontext.AppendString(append(dst, `{"mode":`...), e.Search.Mode), '}')
		}
		return append(dst, '}'), nil
	}
	rest := *e
	rest.FullURL, rest.Resource = "", nil
	tail, err := json.Marshal(rest)
	if err != nil {
		return nil, err
	}
	if tail = tail[1 : len(tail)-1]; len(tail) > 0 {
		if !first {
			dst = append(dst, ',')
		}
		dst = append(dst, tail...)
	}
	return append(dst, '}'), nil
}

// bundleBuffers holds the buffers searchsets and histories are encoded
// into, each written to the connection and then free again: a page of
// matches is the largest allocation of a search, and the collector's work
// grows with what requests allocate.
var bundleBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBundle is the largest buffer kept for another Bundle: a rare
// large page's buffer is left to the collector rather than held.
const maxPooledBundle = 256 << 10

// writeBundle encodes b into a pooled buffer and writes it as writeFHIR
// does (an io.Writer keeps nothing of what it is given once Write returns).
func writeBundle(c *gin.Context, status int, b *bundle) error {
	buf := bundleBuffers.Get().(*[]byte)
	body, err := b.appendEncoded((*buf)[:0])
	if err != nil {
		bundleBuffers.Put(buf)
		return err
	}
	writeFHIR(c, status, body)
	if cap(body) <= maxPooledBundle {
		*buf = body
		bundleBuffers.Put(buf)
	}
	return nil
}
