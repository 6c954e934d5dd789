// Package jsontext appends JSON text byte for byte as encoding/json writes
// it, for the few places that build JSON by hand to spare encoding/json's
// reflection on a hot path (an AuditEvent for every request, a searchset
// entry for every match).
package jsontext

import "encoding/json"

// AppendString appends s as a JSON string as encoding/json writes it. A
// string of printable ASCII that needs no escape, as nearly all such
// strings are, is copied; any other is left to encoding/json, whose
// escapes (of <, > and &, of U+2028 and U+2029, of invalid UTF-8) are then
// the ones written.
func AppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plain[s[i]] {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	return append(append(append(b, '"'), s...), '"')
}

// plain holds the bytes a JSON string holds as they are: printable ASCII
// but for the quote, the backslash and the three encoding/json escapes
// for HTML. Looking a byte up costs less than comparing it seven times,
// on every byte of every fullUrl of a searchset.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = true
	}
	for _, c := range `"\<>&` {
		t[c] = false
	}
	return t
}()
