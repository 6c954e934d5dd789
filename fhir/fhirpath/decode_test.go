package fhirpath

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// decodeTests are inputs on which DecodeJSON must agree with encoding/json's
// Decoder with UseNumber, errors included.
var decodeTests = []struct {
	name string
	in   string
}{
	{"resource", `{"resourceType":"Patient","id":"p","active":true,"multipleBirthInteger":2,
		"name":[{"family":"Ab","given":["C","D"]}],"_birthDate":{"extension":[]},"photo":null}`},
	{"exact decimals", `{"value":1.50,"low":-0.0E-2,"high":1e5,"zero":0}`},
	{"white space", " \t\r\n{ \"a\" : [ 1 , 2 ] } \n"},
	{"empty containers", `{"a":{},"b":[]}`},
	{"repeated key keeps the last", `{"a":1,"a":"two"}`},
	{"escapes", `"a\"b\\c\/d\b\f\n\r\t\u00e9\u20AC"`},
	{"surrogate pair", `"\ud83d\ude00"`},
	{"lone surrogate", `"\ud800"`},
	{"surrogate then letter", `"\ud800\u0041"`},
	{"low surrogate first", `"\udc00\ud800x"`},
	{"non-ASCII", `"Zoë 東京"`},
	{"invalid UTF-8", "\"a\xffb\xc3\""},
	{"trailing data is not read", `{"a":1} {`},
	{"number then letter", `1x`},
	{"leading zero", `01`},
	{"literal then letter", `truex`},
	{"empty", ``},
	{"only space", `  `},
	{"truncated object", `{"a":1`},
	{"truncated string", `"abc`},
	{"truncated escape", `"\u12`},
	{"bad escape", `"\x"`},
	{"control character", "\"a\nb\""},
	{"trailing comma", `[1,]`},
	{"missing colon", `{"a" 1}`},
	{"unquoted key", `{a:1}`},
	{"bad literal", `nul`},
	{"lone minus", `-`},
	{"bad fraction", `1.`},
	{"bad exponent", `1e+`},
	{"plus sign", `+1`},
}

func decodeStd(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}

func checkDecode(t *testing.T, in []byte) {
	t.Helper()
	want, wantErr := decodeStd(in)
	got, err := DecodeJSON(in)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("DecodeJSON(%q): error %v, encoding/json says %v", in, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Errorf("DecodeJSON(%q) = %#v, encoding/json gives %#v", in, got, want)
	}
}

func TestDecodeJSON(t *testing.T) {
	for _, tt := range decodeTests {
		t.Run(tt.name, func(t *testing.T) { checkDecode(t, []byte(tt.in)) })
	}
}

func TestDecodeJSONDepth(t *testing.T) {
	for _, tt := range []struct {
		name  string
		depth int
	}{
		{"at the limit", maxJSONDepth},
		{"beyond the limit", maxJSONDepth + 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			checkDecode(t, []byte(strings.Repeat("[", tt.depth)+strings.Repeat("]", tt.depth)))
		})
	}
}

// FuzzDecodeJSON checks that DecodeJSON agrees with encoding/json.
func FuzzDecodeJSON(f *testing.F) {
	for _, tt := range decodeTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkDecode(t, in) })
}
