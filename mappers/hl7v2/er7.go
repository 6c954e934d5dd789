// Package hl7v2 reads HL7 version 2 messages in their pipe-and-hat (ER7)
// encoding, maps ADT person-administration events to UK Core resources,
// and builds the acknowledgements a sender expects back.
//
// The parser follows HL7 v2.5 chapter 2 (2.5 "Message construction
// rules"): the separators are those the message declares in MSH-1 and
// MSH-2, escape sequences are decoded after splitting, segments may end
// with CR, LF or CRLF, and segments the mapping does not use (Z segments
// included) are parsed and left alone.
package hl7v2

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"

	"carefhir/fhir/lexical"
	"carefhir/mappers"
)

// Delimiters are the separators a message declares in MSH-1 and MSH-2.
type Delimiters struct {
	Field, Component, Repetition, Escape, Subcomponent byte
}

// Standard are the delimiters HL7 recommends, |^~\&, used for the
// acknowledgements this package builds.
var Standard = Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '\\', Subcomponent: '&'}

// Message is one parsed message: its delimiters and its segments in order.
type Message struct {
	Delimiters Delimiters
	Segments   []*Segment
}

// Segment is one segment: its three-character name and its fields.
// Fields[n] is field n as HL7 numbers them (PID-3 is Fields[3]); Fields[0]
// is unused. In MSH, Fields[1] holds the field separator and Fields[2]
// the encoding characters, as the standard numbers them.
type Segment struct {
	Name   string
	Fields []Field
	// Line is the segment's position in the message, from 1, for error
	// locations.
	Line int
}

// Field is the repetitions of one field.
type Field []Repetition

// Repetition is one occurrence of a field: its components, each a list
// of sub-components, escape sequences decoded.
type Repetition [][]string

// ParseError says where and why a message could not be parsed.
type ParseError struct {
	Line int // the segment, from 1; 0 for the message as a whole
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Line == 0 {
		return "hl7v2: " + e.Msg
	}
	return fmt.Sprintf("hl7v2: segment %d: %s", e.Line, e.Msg)
}

// maxSegments bounds the work one message can cause.
const maxSegments = 10000

// maxParts bounds the fields, repetitions, components and sub-components
// of one message: each costs an allocation when parsed, so a few
// megabytes of separators would otherwise take gigabytes of memory. An
// ADT message has a few hundred.
const maxParts = 200_000

// Parse parses one message. A UTF-8 byte-order mark and blank lines are
// ignored; trailing spaces at the end of a segment are dropped, as some
// senders pad segments. Text that is not UTF-8 is read as Windows-1252,
// the superset of ISO 8859-1 that v2 senders in England use when they
// are not on UTF-8. Control characters other than tab, and U+FFFE and
// U+FFFF, are refused: FHIR strings cannot hold them.
func Parse(data []byte) (*Message, error) {
	lines := segmentLines(data)
	if len(lines) == 0 {
		return nil, &ParseError{Msg: "empty message"}
	}
	if len(lines) > maxSegments {
		return nil, &ParseError{Msg: fmt.Sprintf("more than %d segments", maxSegments)}
	}
	d, err := delimiters(lines[0])
	if err != nil {
		return nil, err
	}
	if n := d.parts(lines); n > maxParts {
		return nil, &ParseError{Msg: fmt.Sprintf("more than %d fields, repetitions and components (%d separators)", maxParts, n)}
	}
	m := &Message{Delimiters: d}
	for i, line := range lines {
		if j := strings.IndexFunc(line, mappers.NotText); j >= 0 {
			r, _ := utf8.DecodeRuneInString(line[j:])
			return nil, &ParseError{Line: i + 1, Msg: fmt.Sprintf("character %U at byte %d, which FHIR text cannot hold", r, j+1)}
		}
		seg, err := d.segment(line, i+1)
		if err != nil {
			return nil, err
		}
		if i > 0 && seg.Name == "MSH" {
			return nil, &ParseError{Line: i + 1, Msg: "a second MSH: one message at a time (see Split)"}
		}
		m.Segments = append(m.Segments, seg)
	}
	return m, nil
}

// parseHeader parses the MSH segment of data alone: a message that Parse
// refuses for a later segment is still acknowledged to the sender it
// names, quoting its control id. It returns nil when MSH itself does not
// parse.
func parseHeader(data []byte) *Message {
	lines := segmentLines(data)
	if len(lines) == 0 || strings.IndexFunc(lines[0], mappers.NotText) >= 0 {
		return nil
	}
	d, err := delimiters(lines[0])
	if err != nil {
		return nil
	}
	msh, err := d.segment(lines[0], 1)
	if err != nil {
		return nil
	}
	return &Message{Delimiters: d, Segments: []*Segment{msh}}
}

// segmentLines decodes data (without its byte-order mark; as
// Windows-1252 when it is not UTF-8) and cuts it into segments.
func segmentLines(data []byte) []string {
	data = lexical.TrimBOM(data)
	if !utf8.Valid(data) {
		if dec, err := charmap.Windows1252.NewDecoder().Bytes(data); err == nil {
			data = dec
		}
	}
	return splitSegments(data)
}

// Split cuts a stream of messages (such as a file of several) at each
// segment that starts with MSH. Batch envelopes (FHS, BHS, BTS, FTS) are
// dropped.
func Split(data []byte) [][]byte {
	data = lexical.TrimBOM(data)
	var msgs [][]byte
	var cur []byte
	for len(data) > 0 {
		end := bytes.IndexAny(data, "\r\n")
		line := data
		if end >= 0 {
			line, data = data[:end+1], data[end+1:]
		} else {
			data = nil
		}
		switch {
		case bytes.HasPrefix(line, []byte("MSH")):
			if len(bytes.TrimSpace(cur)) > 0 {
				msgs = append(msgs, cur)
			}
			cur = append([]byte(nil), line...)
		case batchSegment(line):
		default:
			cur = append(cur, line...)
		}
	}
	if len(bytes.TrimSpace(cur)) > 0 {
		msgs = append(msgs, cur)
	}
	return msgs
}

func batchSegment(line []byte) bool {
	for _, n := range []string{"FHS", "BHS", "BTS", "FTS"} {
		if bytes.HasPrefix(line, []byte(n)) {
			return true
		}
	}
	return false
}

// splitSegments cuts data at CR, LF or CRLF, dropping blank lines and
// trailing spaces.
func splitSegments(data []byte) []string {
	var lines []string
	for len(data) > 0 {
		end := bytes.IndexAny(data, "\r\n")
		line := data
		if end >= 0 {
			line, data = data[:end], data[end+1:]
		} else {
			data = nil
		}
		line = bytes.TrimRight(line, " \t")
		if len(line) > 0 {
			lines = append(lines, string(line))
		}
	}
	return lines
}

// delimiters reads MSH-1 and MSH-2 from the first segment.
func delimiters(msh string) (Delimiters, error) {
	if !strings.HasPrefix(msh, "MSH") {
		return Delimiters{}, &ParseError{Line: 1, Msg: fmt.Sprintf("a message starts with MSH, not %q", clip(msh, 3))}
	}
	if len(msh) < 8 {
		return Delimiters{}, &ParseError{Line: 1, Msg: "MSH too short to hold the field separator and the encoding characters (MSH-1, MSH-2)"}
	}
	d := Delimiters{Field: msh[3], Component: msh[4], Repetition: msh[5], Escape: msh[6], Subcomponent: msh[7]}
	seen := map[byte]bool{}
	for _, c := range []byte{d.Field, d.Component, d.Repetition, d.Escape, d.Subcomponent} {
		if seen[c] || c < 0x21 || c > 0x7e || isAlnum(c) {
			return Delimiters{}, &ParseError{Line: 1, Msg: fmt.Sprintf("MSH-1 and MSH-2 must be five distinct punctuation characters, not %q", msh[3:8])}
		}
		seen[c] = true
	}
	return d, nil
}

// parts counts the separators of lines, each of which starts a field,
// repetition, component or sub-component.
func (d Delimiters) parts(lines []string) int {
	n := 0
	for _, line := range lines {
		for _, sep := range []byte{d.Field, d.Repetition, d.Component, d.Subcomponent} {
			n += strings.Count(line, string(sep))
		}
	}
	return n
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

func (d Delimiters) segment(line string, n int) (*Segment, error) {
	if len(line) < 3 || !isSegmentName(line[:3]) || len(line) > 3 && line[3] != d.Field {
		return nil, &ParseError{Line: n, Msg: fmt.Sprintf("%q does not start with a segment name (three upper-case letters or digits) and a field separator", clip(line, 8))}
	}
	s := &Segment{Name: line[:3], Line: n}
	rest := ""
	if len(line) > 4 {
		rest = line[4:]
	}
	s.Fields = []Field{nil}
	if s.Name == "MSH" {
		// MSH-1 is the field separator itself and MSH-2 the encoding
		// characters, up to the next field separator; neither is split.
		enc, after, more := strings.Cut(rest, string(d.Field))
		s.Fields = append(s.Fields, Field{{{string(d.Field)}}}, Field{{{enc}}})
		if !more {
			return s, nil
		}
		rest = after
	}
	for _, f := range strings.Split(rest, string(d.Field)) {
		s.Fields = append(s.Fields, d.field(f))
	}
	return s, nil
}

func isSegmentName(s string) bool {
	if s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < 3; i++ {
		if !(s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9') {
			return false
		}
	}
	return true
}

func (d Delimiters) field(s string) Field {
	if s == "" {
		return nil
	}
	var f Field
	for _, r := range strings.Split(s, string(d.Repetition)) {
		var rep Repetition
		for _, c := range strings.Split(r, string(d.Component)) {
			subs := strings.Split(c, string(d.Subcomponent))
			for i, sc := range subs {
				subs[i] = d.unescape(sc)
			}
			rep = append(rep, subs)
		}
		f = append(f, rep)
	}
	return f
}

// unescape decodes HL7 escape sequences (HL7 v2.5 section 2.7): \F\ \S\
// \T\ \R\ \E\ stand for the delimiters, \Xhh…\ for bytes in hexadecimal
// and \.br\ for a line break. Formatting and character-set sequences
// (\H\ \N\ \C…\ \M…\ and other \.xx\) are dropped. A sequence not closed,
// or one not defined, is kept as written.
func (d Delimiters) unescape(s string) string {
	if strings.IndexByte(s, d.Escape) < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != d.Escape {
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(s[i+1:], d.Escape)
		if end < 0 {
			b.WriteString(s[i:])
			break
		}
		seq := s[i+1 : i+1+end]
		if out, ok := d.decodeEscape(seq); ok {
			b.WriteString(out)
			i += end + 1
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func (d Delimiters) decodeEscape(seq string) (string, bool) {
	switch seq {
	case "F":
		return string(d.Field), true
	case "S":
		return string(d.Component), true
	case "T":
		return string(d.Subcomponent), true
	case "R":
		return string(d.Repetition), true
	case "E":
		return string(d.Escape), true
	case "H", "N", ".br":
		if seq == ".br" {
			return "\n", true
		}
		return "", true
	case "":
		return "", false
	}
	switch seq[0] {
	case 'X':
		hex := seq[1:]
		if len(hex)%2 != 0 || hex == "" {
			return "", false
		}
		out := make([]byte, 0, len(hex)/2)
		for i := 0; i < len(hex); i += 2 {
			v, err := strconv.ParseUint(hex[i:i+2], 16, 8)
			if err != nil {
				return "", false
			}
			out = append(out, byte(v))
		}
		// The bytes are text in the message's character set: UTF-8, or
		// else Windows-1252, as the message itself is read (a sender on
		// ISO 8859-1 writes é as \XE9\). What FHIR text cannot hold is not
		// carried.
		if !utf8.Valid(out) {
			dec, err := charmap.Windows1252.NewDecoder().Bytes(out)
			if err != nil {
				return "", false
			}
			out = dec
		}
		return strings.Map(func(r rune) rune {
			if mappers.NotText(r) || r == utf8.RuneError {
				return -1
			}
			return r
		}, strings.ToValidUTF8(string(out), "")), true
	case 'C', 'M', 'Z', '.':
		return "", true
	}
	return "", false
}

// escape encodes the delimiters in s, so s can be written as one
// sub-component.
func (d Delimiters) escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case d.Field:
			b.WriteString(string(d.Escape) + "F" + string(d.Escape))
		case d.Component:
			b.WriteString(string(d.Escape) + "S" + string(d.Escape))
		case d.Subcomponent:
			b.WriteString(string(d.Escape) + "T" + string(d.Escape))
		case d.Repetition:
			b.WriteString(string(d.Escape) + "R" + string(d.Escape))
		case d.Escape:
			b.WriteString(string(d.Escape) + "E" + string(d.Escape))
		case '\r', '\n':
			b.WriteString(string(d.Escape) + ".br" + string(d.Escape))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// clip cuts s to at most n bytes, at a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Segment returns the first segment named name, or nil.
func (m *Message) Segment(name string) *Segment {
	for _, s := range m.Segments {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// sequence returns the position of seg among the segments of its name,
// from 1 (HL7's segment sequence, ERL-2); 0 when seg is nil or not in m.
func (m *Message) sequence(seg *Segment) int {
	n := 0
	for _, s := range m.Segments {
		if seg != nil && s.Name == seg.Name {
			n++
			if s == seg {
				return n
			}
		}
	}
	return 0
}

// Field returns field n, or nil when the segment is shorter.
func (s *Segment) Field(n int) Field {
	if s == nil || n <= 0 || n >= len(s.Fields) {
		return nil
	}
	return s.Fields[n]
}

// Get returns component comp (from 1) of the first repetition of field n,
// its first sub-component, or "" when absent.
func (s *Segment) Get(n, comp int) string {
	f := s.Field(n)
	if len(f) == 0 {
		return ""
	}
	return f[0].Get(comp)
}

// Get returns the first sub-component of component comp (from 1), or "".
func (r Repetition) Get(comp int) string { return r.Sub(comp, 1) }

// Sub returns sub-component sub of component comp (both from 1), or "".
func (r Repetition) Sub(comp, sub int) string {
	if comp <= 0 || comp > len(r) || sub <= 0 || sub > len(r[comp-1]) {
		return ""
	}
	return r[comp-1][sub-1]
}

// Empty reports whether every component of r is empty.
func (r Repetition) Empty() bool {
	for _, c := range r {
		for _, s := range c {
			if s != "" {
				return false
			}
		}
	}
	return true
}
