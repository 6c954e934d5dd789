package hl7v2

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"carefhir/fhir"
	"carefhir/mappers"
	"carefhir/mappers/mapperstest"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		// want is PID-5[1] rendered as component/sub-component text.
		seg, want string
		field     int
		comp, sub int
	}{
		{name: "CR endings", in: "MSH|^~\\&|A|B\rPID|1||123^^^NHS^NH\r", seg: "PID", field: 3, comp: 4, sub: 1, want: "NHS"},
		{name: "LF endings", in: "MSH|^~\\&|A|B\nPID|1||123^^^NHS^NH\n", seg: "PID", field: 3, comp: 5, sub: 1, want: "NH"},
		{name: "CRLF and blank lines", in: "MSH|^~\\&|A|B\r\n\r\nPID|1||123^^^NHS^NH\r\n", seg: "PID", field: 3, comp: 1, sub: 1, want: "123"},
		{name: "byte-order mark", in: "\xef\xbb\xbfMSH|^~\\&|A|B\rPID|1||123\r", seg: "MSH", field: 3, comp: 1, sub: 1, want: "A"},
		{name: "trailing spaces", in: "MSH|^~\\&|A|B   \rPID|1||123   \r", seg: "PID", field: 3, comp: 1, sub: 1, want: "123"},
		{name: "escapes", in: "MSH|^~\\&|A\rPID|1||x\\F\\y\\S\\z\\T\\w\\R\\v\\E\\u", seg: "PID", field: 3, comp: 1, sub: 1, want: "x|y^z&w~v\\u"},
		{name: "hex escape of a control character dropped", in: "MSH|^~\\&|A\rPID|1||a\\X01\\b", seg: "PID", field: 3, comp: 1, sub: 1, want: "ab"},
		{name: "hex escape of a noncharacter dropped", in: "MSH|^~\\&|A\rPID|1||a\\XEFBFBE\\b", seg: "PID", field: 3, comp: 1, sub: 1, want: "ab"},
		{name: "Windows-1252 text", in: "MSH|^~\\&|A\rPID|1||Ren\xe9", seg: "PID", field: 3, comp: 1, sub: 1, want: "René"},
		{name: "hex escape", in: "MSH|^~\\&|A\rPID|1||caf\\XC3A9\\", seg: "PID", field: 3, comp: 1, sub: 1, want: "café"},
		{name: "hex escape of ISO 8859-1 text", in: "MSH|^~\\&|A||||||||||||||8859/1\rPID|1||Ren\\XE9\\ Zo\\XEB\\", seg: "PID", field: 3, comp: 1, sub: 1, want: "René Zoë"},
		{name: "line break and highlight", in: "MSH|^~\\&|A\rNTE|1||a\\.br\\b\\H\\c\\N\\", seg: "NTE", field: 3, comp: 1, sub: 1, want: "a\nbc"},
		{name: "unclosed escape kept", in: "MSH|^~\\&|A\rPID|1||a\\Fb", seg: "PID", field: 3, comp: 1, sub: 1, want: "a\\Fb"},
		{name: "undefined escape kept", in: "MSH|^~\\&|A\rPID|1||a\\Q\\b", seg: "PID", field: 3, comp: 1, sub: 1, want: "a\\Q\\b"},
		{name: "sub-components", in: "MSH|^~\\&|A\rPV1|1|I|W1^B2^&&1234", seg: "PV1", field: 3, comp: 3, sub: 3, want: "1234"},
		{name: "MSH-1 and MSH-2", in: "MSH|^~\\&|A", seg: "MSH", field: 2, comp: 1, sub: 1, want: "^~\\&"},
		{name: "non-standard delimiters", in: "MSH^~|\\&^APP^FAC\rPID^1^^11111~~~FOO&&0363|22222^^SMITH~JOHN", seg: "PID", field: 3, comp: 4, sub: 3, want: "0363"},
		{name: "Z segment kept", in: "MSH|^~\\&|A\rZU1|x|y^z", seg: "ZU1", field: 2, comp: 2, sub: 1, want: "z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			f := m.Segment(tt.seg).Field(tt.field)
			if len(f) == 0 {
				t.Fatalf("%s-%d is empty", tt.seg, tt.field)
			}
			if got := f[0].Sub(tt.comp, tt.sub); got != tt.want {
				t.Errorf("%s-%d.%d.%d = %q, want %q", tt.seg, tt.field, tt.comp, tt.sub, got, tt.want)
			}
		})
	}
}

func TestParseRepetitions(t *testing.T) {
	m, err := Parse([]byte("MSH^~|\\&^APP\rPID^1^^11111~~~FOO|22222~~~BAR^^SMITH~JOHN"))
	if err != nil {
		t.Fatal(err)
	}
	f := m.Segment("PID").Field(3)
	if len(f) != 2 || f[1].Get(1) != "22222" || f[1].Get(4) != "BAR" {
		t.Errorf("PID-3 = %q, want two repetitions, the second 22222 of BAR", f)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "\r\n", "empty message"},
		{"not MSH", "PID|1||x", "starts with MSH"},
		{"short MSH", "MSH|^~", "too short"},
		{"repeated delimiter", "MSH|^^\\&|A", "distinct"},
		{"letter delimiter", "MSH|^~\\A|A", "distinct"},
		{"bad segment name", "MSH|^~\\&|A\rpid|1", "segment name"},
		{"segment without separator", "MSH|^~\\&|A\rPIDX1", "segment name"},
		{"second MSH", "MSH|^~\\&|A\rMSH|^~\\&|B", "second MSH"},
		{"second MSH, its name alone", "MSH|^~\\&|A\rMSH", "second MSH"},
		{"control character", "MSH|^~\\&|A\rPID|1||a\x01b", "segment 2: character U+0001"},
		{"noncharacter", "MSH|^~\\&|A\rPID|1||a\uFFFEb", "segment 2: character U+FFFE at byte 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q) error = %v, want one saying %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	in := "\xef\xbb\xbfFHS|^~\\&\rMSH|^~\\&|A|||||||1\rPID|1\n\nMSH|^~\\&|B|||||||2\rPID|2\r\nBTS|2\r"
	msgs := Split([]byte(in))
	if len(msgs) != 2 {
		t.Fatalf("Split gave %d messages, want 2: %q", len(msgs), msgs)
	}
	for i, want := range []string{"A", "B"} {
		m, err := Parse(msgs[i])
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Segments[0].Get(3, 1); got != want || len(m.Segments) != 2 {
			t.Errorf("message %d: MSH-3 %q with %d segments, want %q with 2", i, got, len(m.Segments), want)
		}
	}
}

// fixtureOutcomes says what becomes of the messages of each file under
// testdata: how many import, and for those refused the reasons expected.
var fixtureOutcomes = map[string]struct {
	imported int
	refused  map[string]int // reason substring → number of messages
}{
	"simhospital/messages.out": {400, map[string]int{
		`message type "ORU" is not handled`: 610,
		`message type "MDM" is not handled`: 2,
		// Simulated Hospital merges by hospital number only.
		"MRG-1 holds no NHS number": 1,
	}},
	// The US and international samples identify patients by local
	// numbers only, and records are matched on NHS numbers.
	"fhir-converter/ADT-A08-01.hl7":    {0, map[string]int{"no NHS number": 1}},
	"fhir-converter/ADT-A28-01.hl7":    {0, map[string]int{"no NHS number": 1}},
	"fhir-converter/ADT-A31-01.hl7":    {0, map[string]int{"no NHS number": 1}},
	"fhir-converter/ADT-A40-01.hl7":    {0, map[string]int{"no NHS number": 1}},
	"fhir-converter/ADT-A40-02.hl7":    {0, map[string]int{"no NHS number": 1}},
	"fhir-converter/ADT01-23.hl7":      {0, map[string]int{"no NHS number": 1}},
	"fhir-converter/ADT01-28.hl7":      {0, map[string]int{"no NHS number": 1}},
	"fhir-converter/ADT04-23.hl7":      {0, map[string]int{"no NHS number": 1}},
	"fhir-converter/ADT04-251.hl7":     {0, map[string]int{"no NHS number": 1}},
	"fhir-converter/ADT04-28.hl7":      {0, map[string]int{"no NHS number": 1}},
	"hapi-hl7v2/ADT_A01.txt":           {0, map[string]int{"no NHS number": 1}},
	"fhir-converter/ADT-A29-01.hl7":    {0, map[string]int{`ADT event "A29" is not handled`: 1}},
	"fhir-converter/ADT-A47-01.hl7":    {0, map[string]int{`ADT event "A47" is not handled`: 1}},
	"hapi-hl7v2/adt_a03.txt":           {0, map[string]int{`ADT event "A03" is not handled`: 1}},
	"hapi-hl7v2/segmentfinder_a24.hl7": {0, map[string]int{`ADT event "A24" is not handled`: 1}},
	"uk/A28-register.hl7":              {1, nil},
	"uk/A31-update-escapes.hl7":        {1, nil},
	"uk/A40-merge.hl7":                 {1, nil},
	"uk/A28-invalid-nhs.hl7":           {0, map[string]int{`"9990000019" is not a valid NHS number`: 1}},
	"uk/A04-no-nhs-number.hl7":         {0, map[string]int{"no NHS number": 1}},
}

// TestFixtures imports every message under testdata: each either gives
// writes that validate against UK Core, or is refused with its reason.
func TestFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/*/*")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, f := range files {
		name, _ := filepath.Rel("testdata", f)
		name = filepath.ToSlash(name)
		if strings.HasSuffix(name, ".md") {
			continue
		}
		want, ok := fixtureOutcomes[name]
		if !ok {
			t.Errorf("%s: no expected outcome", name)
			continue
		}
		seen++
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			imported, refused := 0, map[string]int{}
			for i, msg := range Split(data) {
				im := Import(msg)
				if im.Bundle == nil {
					if !im.Failed() {
						t.Errorf("message %d: no Bundle and no error", i+1)
					}
					reason := ""
					for _, is := range im.Issues {
						if is.Severity == mappers.Error {
							reason = is.Message
							break
						}
					}
					matched := false
					for r := range want.refused {
						if strings.Contains(reason, r) {
							refused[r]++
							matched = true
						}
					}
					if !matched {
						t.Errorf("message %d refused for an unexpected reason: %v", i+1, im.Issues)
					}
					continue
				}
				imported++
				if len(im.Bundle.Entry) == 0 {
					t.Errorf("message %d: an empty Bundle", i+1)
				}
				for _, p := range mapperstest.Problems(t, im.Bundle) {
					t.Errorf("message %d: %s", i+1, p)
				}
			}
			if imported != want.imported {
				t.Errorf("%d messages imported, want %d", imported, want.imported)
			}
			for r, n := range want.refused {
				if refused[r] != n {
					t.Errorf("%d messages refused for %q, want %d", refused[r], r, n)
				}
			}
		})
	}
	if seen != len(fixtureOutcomes) {
		t.Errorf("%d files under testdata, %d expected", seen, len(fixtureOutcomes))
	}
}

func importFile(t *testing.T, name string) *Imported {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return Import(data)
}

func TestRegisterMapping(t *testing.T) {
	im := importFile(t, "uk/A28-register.hl7")
	if im.Bundle == nil {
		t.Fatalf("refused: %v", im.Issues)
	}
	b := im.Bundle
	if len(b.Entry) != 3 {
		t.Fatalf("%d entries, want the practice, the GP and the patient", len(b.Entry))
	}
	org, gp, pe := b.Entry[0], b.Entry[1], b.Entry[2]
	if got := org.Request.IfNoneExist.Get(); org.Request.Method.Get() != "POST" || got != "identifier=https://fhir.nhs.uk/Id/ods-organization-code|Y12345" {
		t.Errorf("practice request = %s If-None-Exist %q", org.Request.Method.Get(), got)
	}
	if name := org.Resource.(*fhir.Organization).Name.Get(); name != "THE HIGH STREET SURGERY" {
		t.Errorf("practice name = %q", name)
	}
	if got := gp.Request.IfNoneExist.Get(); got != "identifier=https://fhir.hl7.org.uk/Id/gmp-number|G1234567" {
		t.Errorf("GP If-None-Exist = %q", got)
	}
	if pe.Request.Method.Get() != "PUT" || pe.Request.Url.Get() != "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018" {
		t.Errorf("patient request = %s %s", pe.Request.Method.Get(), pe.Request.Url.Get())
	}
	p := pe.Resource.(*fhir.Patient)
	if len(p.Identifier) != 1 {
		t.Fatalf("identifiers = %d, want the NHS number only", len(p.Identifier))
	}
	ext := p.Identifier[0].Extension
	if len(ext) != 1 || ext[0].ValueCodeableConcept.Coding[0].Code.Get() != "01" {
		t.Errorf("verification status not 01 from PID-32 NSTS01")
	}
	n := p.Name[0]
	if n.Family.Get() != "WARD" || len(n.Given) != 2 || n.Given[1].Get() != "ANNE" || n.Prefix[0].Get() != "MRS" || n.Use.Get() != "official" {
		t.Errorf("name = %+v", n)
	}
	if p.BirthDate.Get() != "1948-03-12" || p.Gender.Get() != "female" {
		t.Errorf("birth date %q, gender %q", p.BirthDate.Get(), p.Gender.Get())
	}
	ad := p.Address[0]
	if ad.PostalCode.Get() != "LS1 4AP" || ad.City.Get() != "LEEDS" || ad.Use.Get() != "home" || len(ad.Line) != 2 {
		t.Errorf("address = %+v", ad)
	}
	var tel []string
	for _, c := range p.Telecom {
		tel = append(tel, c.System.Get()+":"+c.Use.Get()+":"+c.Value.Get())
	}
	want := "phone:home:01132 496000,phone:mobile:07700 900123,email::sarah.ward@example.com,phone:work:01132 496999"
	if strings.Join(tel, ",") != want {
		t.Errorf("telecom = %s, want %s", strings.Join(tel, ","), want)
	}
	if len(p.GeneralPractitioner) != 2 || p.GeneralPractitioner[0].Reference.Get() != org.FullUrl.Get() || p.GeneralPractitioner[1].Reference.Get() != gp.FullUrl.Get() {
		t.Errorf("generalPractitioner does not reference the practice and the GP entries")
	}
}

func TestUpdateWithEscapes(t *testing.T) {
	im := importFile(t, "uk/A31-update-escapes.hl7")
	if im.Bundle == nil {
		t.Fatalf("refused: %v", im.Issues)
	}
	var p *fhir.Patient
	var org *fhir.Organization
	for _, e := range im.Bundle.Entry {
		switch r := e.Resource.(type) {
		case *fhir.Patient:
			p = r
		case *fhir.Organization:
			org = r
		}
	}
	if got := p.Name[0].Given[0].Get(); got != "MARY^JANE" {
		t.Errorf("given = %q, want the escaped component separator decoded", got)
	}
	if got := p.Address[0].Line[0].Get(); got != "1 MILL LANE & CO" {
		t.Errorf("line = %q", got)
	}
	if got := p.Identifier[0].Extension[0].ValueCodeableConcept.Coding[0].Code.Get(); got != "02" {
		t.Errorf("status = %q, want 02 from PID-32", got)
	}
	if org == nil || org.Identifier[0].Value.Get() != "B82005" {
		t.Errorf("practice from XON-10 not found")
	}
}

func TestMerge(t *testing.T) {
	im := importFile(t, "uk/A40-merge.hl7")
	if im.Bundle == nil {
		t.Fatalf("refused: %v", im.Issues)
	}
	if len(im.Bundle.Entry) != 2 {
		t.Fatalf("%d entries, want 2", len(im.Bundle.Entry))
	}
	s, o := im.Bundle.Entry[0], im.Bundle.Entry[1]
	sp, op := s.Resource.(*fhir.Patient), o.Resource.(*fhir.Patient)
	if mappers.NHSNumberOf(sp) != "9990000034" || mappers.NHSNumberOf(op) != "9990000042" {
		t.Fatalf("survivor %s, merged %s", mappers.NHSNumberOf(sp), mappers.NHSNumberOf(op))
	}
	if len(sp.Link) != 1 || sp.Link[0].Type.Get() != "replaces" || sp.Link[0].Other.Reference.Get() != o.FullUrl.Get() {
		t.Errorf("survivor link = %+v", sp.Link)
	}
	if len(op.Link) != 1 || op.Link[0].Type.Get() != "replaced-by" || op.Link[0].Other.Reference.Get() != s.FullUrl.Get() {
		t.Errorf("merged link = %+v", op.Link)
	}
	if op.Active == nil || op.Active.Get() {
		t.Errorf("the merged record is not made inactive")
	}
	if u := o.Request.Url.Get(); u != "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000042" {
		t.Errorf("merged record request %s", u)
	}
}

func TestAck(t *testing.T) {
	now := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	tests := []struct {
		name, file string
		in         string
		want       []string // segments expected, in order
	}{
		{name: "accepted", file: "uk/A28-register.hl7", want: []string{
			"MSH|^~\\&|CAREFHIR|PCN01|EMISWEB|Y12345|20260301093000+0000||ACK^A28^ACK|AMSG0001|P|2.4",
			"MSA|AA|MSG0001",
		}},
		{name: "invalid NHS number", file: "uk/A28-invalid-nhs.hl7", want: []string{
			"MSH|^~\\&|CAREFHIR|PCN01|EMISWEB|Y12345|20260301093000+0000||ACK^A28^ACK|AMSG0004|P|2.4",
			`MSA|AE|MSG0004|"9990000019" is not a valid NHS number: it must be 10 digits with a correct Modu`,
			`ERR||PID^1^3^1^1|102^Data type error^HL70357|E||||"9990000019" is not a valid NHS number: it must be 10 digits with a correct Modulus 11 check digit`,
		}},
		{name: "unsupported event", file: "fhir-converter/ADT-A29-01.hl7", want: []string{
			"MSH|^~\\&|EHRApp^1.Edu^ISO|GHHRFacility^2.16.840.1.1122848.1.32^ISO|ADTApp|GHHSFacility^2.16.840.1.122848.1.30^ISO|20260301093000+0000||ACK^A29^ACK|AMSG00001|P|2.8",
			`MSA|AR|MSG00001|ADT event "A29" is not handled: only A01, A04, A08, A28, A31, A34 and A40 are`,
			`ERR||MSH^1^9^1^2|201^Unsupported event code^HL70357|E||||ADT event "A29" is not handled: only A01, A04, A08, A28, A31, A34 and A40 are`,
		}},
		{name: "no NHS number", file: "uk/A04-no-nhs-number.hl7", want: []string{
			"MSH|^~\\&|CAREFHIR|PCN01|PAS|RXX|20260301093000+0000||ACK^A04^ACK|AMSG0005|P|2.3",
			"MSA|AE|MSG0005|no NHS number among the patient identifiers (a repetition with identifier type N",
			"ERR||PID^1^3|101^Required field missing^HL70357|E||||no NHS number among the patient identifiers (a repetition with identifier type NH or assigning authority NHS): records are matched on it",
		}},
		{name: "no control id", in: "MSH|^~\\&|PAS|RXX|CF|PCN|20260101120000||ADT^A28^ADT_A05||P|2.5\rEVN|A28\rPID|1||9434760046^^^NHS^NH", want: []string{
			"MSH|^~\\&|CF|PCN|PAS|RXX|20260301093000+0000||ACK^A28^ACK|A|P|2.5",
			`MSA|AR||the message control id is empty`,
			`ERR||MSH^1^10|101^Required field missing^HL70357|E||||the message control id is empty`,
		}},
		{name: "a control character after MSH", in: "MSH|^~\\&|PAS|RXX|CF|PCN|20260101120000||ADT^A28^ADT_A05|G7|P|2.5\rEVN|A28\rPID|1||a\x01b", want: []string{
			"MSH|^~\\&|CF|PCN|PAS|RXX|20260301093000+0000||ACK^A28^ACK|AG7|P|2.5",
			`MSA|AR|G7|segment 3: character U+0001 at byte 9, which FHIR text cannot hold`,
			`ERR|||100^Segment sequence error^HL70357|E||||segment 3: character U+0001 at byte 9, which FHIR text cannot hold`,
		}},
		{name: "a second MSH", in: "MSH|^~\\&|PAS|RXX|CF|PCN|20260101120000||ADT^A31^ADT_A05|G8|P|2.4\rMSH|^~\\&|PAS", want: []string{
			"MSH|^~\\&|CF|PCN|PAS|RXX|20260301093000+0000||ACK^A31^ACK|AG8|P|2.4",
			`MSA|AR|G8|segment 2: a second MSH: one message at a time (see Split)`,
			`ERR|||100^Segment sequence error^HL70357|E||||segment 2: a second MSH: one message at a time (see Split)`,
		}},
		{name: "a control character in MSH", in: "MSH|^~\\&|PAS|RXX|CF|PCN|20260101120000||ADT^A28^ADT_A05|G\x019|P|2.5\rPID|1", want: []string{
			"MSH|^~\\&|||||20260301093000+0000||ACK^^ACK|A|P|2.5",
			`MSA|AR||segment 1: character U+0001 at byte 58, which FHIR text cannot hold`,
			`ERR|||100^Segment sequence error^HL70357|E||||segment 1: character U+0001 at byte 58, which FHIR text cannot hold`,
		}},
		{name: "not a message", in: "hello", want: []string{
			"MSH|^~\\&|||||20260301093000+0000||ACK^^ACK|A|P|2.5",
			`MSA|AR||segment 1: a message starts with MSH, not "hel"`,
			`ERR|||100^Segment sequence error^HL70357|E||||segment 1: a message starts with MSH, not "hel"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var im *Imported
			if tt.file != "" {
				im = importFile(t, tt.file)
			} else {
				im = Import([]byte(tt.in))
			}
			got := strings.Split(strings.TrimSuffix(string(im.Acknowledge(nil, now)), "\r"), "\r")
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("ack =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if _, err := Parse([]byte(strings.Join(got, "\r"))); err != nil {
				t.Errorf("the ack does not parse: %v", err)
			}
		})
	}
}

// TestAckErrCapped: a message with thousands of problems, one for each of
// its segments or of a field's repetitions, is acknowledged with the
// first 100 as ERR segments and one more ERR counting the rest, so that
// the acknowledgement stays small whatever the message holds.
func TestAckErrCapped(t *testing.T) {
	now := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	const msh = "MSH|^~\\&|PAS|RXX|CF|PCN|20260101120000||ADT^A40^ADT_A39|G9|P|2.5\rEVN|A40|20260101\r"
	var pairs strings.Builder
	for n := range 3000 {
		fmt.Fprintf(&pairs, "PID|%d||9434760119^^^NHS^NH||PAIR^ONE||19800101|M\rMRG|%010d^^^NHS^NH\r", n+1, 1000000000+n)
	}
	names := "MSH|^~\\&|PAS|RXX|CF|PCN|20260101120000||ADT^A28^ADT_A05|G10|P|2.5\rEVN|A28\rPID|1||9434760046^^^NHS^NH||" +
		strings.Repeat("^^^MR~", 5000) + "DOE^JANE||19800101|F"
	for _, tt := range []struct {
		name, msg, code, sev string
		issues               int
	}{
		{"errors", msh + pairs.String(), "AE", "E", 2000},
		{"warnings", names, "AA", "W", 5000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			im := Import([]byte(tt.msg))
			if len(im.Issues) < tt.issues {
				t.Fatalf("%d issues, want at least %d", len(im.Issues), tt.issues)
			}
			ack := im.Acknowledge(nil, now)
			m, err := Parse(ack)
			if err != nil {
				t.Fatalf("the ack does not parse: %v", err)
			}
			if got := m.Segments[1].Get(1, 1); got != tt.code {
				t.Errorf("MSA-1 %s, want %s", got, tt.code)
			}
			var errs []*Segment
			for _, s := range m.Segments {
				if s.Name == "ERR" {
					errs = append(errs, s)
				}
			}
			if len(errs) != 101 {
				t.Fatalf("%d ERR segments, want 101 (100 and one counting the rest)", len(errs))
			}
			last := errs[100]
			want := fmt.Sprintf("%d more errors and warnings, not listed", len(im.Issues)-100)
			if !strings.HasPrefix(last.Get(8, 1), want) || last.Get(4, 1) != tt.sev || last.Get(3, 1) == "" {
				t.Errorf("last ERR %q, want ERR-8 %q…, ERR-4 %s and an ERR-3 code", last.Get(8, 1), want, tt.sev)
			}
			if len(ack) > 40_000 {
				t.Errorf("the ack is %d bytes", len(ack))
			}
		})
	}
}

// mergeOutcome returns the Patients of a merge's Bundle by NHS number, each with
// its active flag and its links as "type NHS number".
func mergeOutcome(t *testing.T, im *Imported) map[string]string {
	t.Helper()
	if im.Bundle == nil {
		t.Fatalf("refused: %v", im.Issues)
	}
	byURL := map[string]string{}
	for _, e := range im.Bundle.Entry {
		byURL[e.FullUrl.Get()] = mappers.NHSNumberOf(e.Resource.(*fhir.Patient))
	}
	out := map[string]string{}
	for _, e := range im.Bundle.Entry {
		p := e.Resource.(*fhir.Patient)
		s := "active"
		if p.Active != nil && !p.Active.Get() {
			s = "inactive"
		}
		for _, l := range p.Link {
			s += ", " + l.Type.Get() + " " + byURL[l.Other.Reference.Get()]
		}
		out[mappers.NHSNumberOf(p)] = s
	}
	return out
}

func TestMergeSeveral(t *testing.T) {
	const msh = "MSH|^~\\&|PAS|RXX|CF|PCN|20260101120000||ADT^A40^ADT_A39|G6|P|2.5\rEVN|A40|20260101\r"
	pair := func(n int, survivor, merged string) string {
		return fmt.Sprintf("PID|%d||%s^^^NHS^NH||PAIR^ONE||19800101|M\rMRG|%s^^^NHS^NH\r", n, survivor, merged)
	}
	const a, b, c = "9434760119", "9434760127", "9434760089"
	for _, tt := range []struct {
		name, msg string
		want      map[string]string
		warning   string
	}{
		{"two records merged into one survivor", msh + pair(1, a, b) + pair(2, a, c), map[string]string{
			a: "active, replaces " + b + ", replaces " + c,
			b: "inactive, replaced-by " + a,
			c: "inactive, replaced-by " + a,
		}, ""},
		{"a survivor then merged away", msh + pair(1, b, c) + pair(2, a, b), map[string]string{
			a: "active, replaces " + b,
			b: "inactive, replaces " + c + ", replaced-by " + a,
			c: "inactive, replaced-by " + b,
		}, ""},
		{"a record merged away then named as a survivor", msh + pair(1, a, b) + pair(2, b, c), map[string]string{
			a: "active, replaces " + b,
			b: "inactive, replaced-by " + a + ", replaces " + c,
			c: "inactive, replaced-by " + b,
		}, "stays inactive, replaced by " + a},
	} {
		t.Run(tt.name, func(t *testing.T) {
			im := Import([]byte(tt.msg))
			got := mergeOutcome(t, im)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
			var warnings []string
			for _, is := range im.Issues {
				warnings = append(warnings, is.String())
			}
			if tt.warning == "" && len(warnings) > 0 || tt.warning != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], tt.warning)) {
				t.Errorf("issues %v, want %q", warnings, tt.warning)
			}
			for _, p := range mapperstest.Problems(t, im.Bundle) {
				t.Error(p)
			}
		})
	}
	for _, tt := range []struct{ name, msg, want string }{
		{"a record merged twice", msh + pair(1, a, b) + pair(2, c, b), "a record is merged once"},
		{"two records merged into each other", msh + pair(1, a, b) + pair(2, b, a), "each would replace the other"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			im := Import([]byte(tt.msg))
			if im.Bundle != nil || !im.Failed() || !strings.Contains(fmt.Sprint(im.Issues), tt.want) {
				t.Errorf("issues %v, want a refusal saying %q", im.Issues, tt.want)
			}
		})
	}
}

// TestRegisteredGPNameType reads the GP's name type from XCN-10, where an
// XCN holds it, and not from XCN-8, the source table of the GP's id.
func TestRegisteredGPNameType(t *testing.T) {
	for _, tc := range []struct{ name, pd1, use string }{
		{"XCN-10 official", `PD1|||THE HIGH STREET SURGERY^^Y12345|G1234567^SMITH^JOHN^^^DR^^^^L`, "official"},
		{"XCN-10 usual", `PD1|||THE HIGH STREET SURGERY^^Y12345|G1234567^SMITH^JOHN^^^DR^^^^D`, "usual"},
		{"a source table in XCN-8 is no name type", `PD1|||THE HIGH STREET SURGERY^^Y12345|G1234567^SMITH^JOHN^^^DR^^L`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := "MSH|^~\\&|EMISWEB|Y12345|CAREFHIR|PCN01|20260301093000+0000||ADT^A28^ADT_A05|MSG0001|P|2.4\r" +
				"EVN|A28|20260301093000+0000\r" +
				"PID|1||9990000018^^^NHS^NH||WARD^SARAH^^^MRS^^L||19480312|F\r" +
				tc.pd1 + "\r"
			im := Import([]byte(msg))
			if im.Bundle == nil {
				t.Fatalf("refused: %v", im.Issues)
			}
			gp, ok := im.Bundle.Entry[1].Resource.(*fhir.Practitioner)
			if !ok || len(gp.Name) != 1 {
				t.Fatalf("entry 1 is %T, want the GP's Practitioner with a name", im.Bundle.Entry[1].Resource)
			}
			if got := gp.Name[0].Use.Get(); got != tc.use || gp.Name[0].Family.Get() != "SMITH" || gp.Name[0].Prefix[0].Get() != "DR" {
				t.Errorf("GP name = use %q, %s %v, want use %q, SMITH, DR", got, gp.Name[0].Family.Get(), gp.Name[0].Prefix, tc.use)
			}
		})
	}
}
