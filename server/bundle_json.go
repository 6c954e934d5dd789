package server

import (
	"bytes"
	"encoding/json"
	"fmt"

	"carefhir/internal/jsontext"
)

// encode returns the JSON of the Bundle with its resources as they are.
// Through encoding/json, every resource body, already compact JSON the
// server wrote, would be scanned and copied again to check and compact it
// (also when returned by a MarshalJSON method): for a page of searchset
// matches, most of the cost of writing the answer.
func (b *bundle) encode() ([]byte, error) {
	head := *b
	head.Entry = nil
	out, err := json.Marshal(head)
	if err != nil || len(b.Entry) == 0 {
		return out, err
	}
	// One buffer, sized for the resources and what surrounds each.
	size := len(out) + len(entryMember) + 2
	for i := range b.Entry {
		size += len(b.Entry[i].Resource) + len(b.Entry[i].FullURL) + 128
	}
	out = append(append(make([]byte, 0, size), out[:len(out)-1]...), entryMember...)
	for i := range b.Entry {
		if i > 0 {
			out = append(out, ',')
		}
		if out, err = b.Entry[i].appendJSON(out); err != nil {
			return nil, fmt.Errorf("Bundle.entry[%d]: %w", i, err)
		}
	}
	return append(out, "]}"...), nil
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

// appendJSON appends the entry to dst, its resource as it is.
func (e *bundleEntry) appendJSON(dst []byte) ([]byte, error) {
	var tail []byte
	if e.Request == nil && e.Response == nil && e.Search != nil {
		// A searchset's entry: its search.mode is all that follows the
		// resource.
		tail = append(jsontext.AppendString(append([]byte(nil), `{"search":{"mode":`...), e.Search.Mode), "}}"...)
	} else {
		rest := *e
		rest.FullURL, rest.Resource = "", nil
		var err error
		if tail, err = json.Marshal(rest); err != nil {
			return nil, err
		}
	}
	dst = append(dst, '{')
	if e.FullURL != "" {
		dst = jsontext.AppendString(append(dst, `"fullUrl":`...), e.FullURL)
	}
	if len(e.Resource) > 0 {
		if e.FullURL != "" {
			dst = append(dst, ',')
		}
		dst = append(append(dst, `"resource":`...), bytes.TrimSpace(e.Resource)...)
	}
	if tail = tail[1 : len(tail)-1]; len(tail) > 0 {
		if e.FullURL != "" || len(e.Resource) > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, tail...)
	}
	return append(dst, '}'), nil
}
