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
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	return append(append(append(b, '"'), s...), '"')
}
