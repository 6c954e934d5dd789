package hl7v2

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"carefhir/fhir"
)

// TestSeenKey checks that a message is known by its sender and control
// id: another sender may use the same control id.
func TestSeenKey(t *testing.T) {
	msg, err := os.ReadFile("testdata/uk/A28-register.hl7")
	if err != nil {
		t.Fatal(err)
	}
	other := bytes.Replace(msg, []byte("|EMISWEB|Y12345|"), []byte("|EMISWEB|Y99999|"), 1)
	a, b := Import(msg), Import(other)
	if SeenKey(a.Message) == SeenKey(b.Message) || SeenKey(a.Message) != SeenKey(Import(msg).Message) {
		t.Errorf("keys %q and %q", SeenKey(a.Message), SeenKey(b.Message))
	}
}

// TestAcknowledgeStoreFailure checks that a message the store failed to
// write is acknowledged AR, so that it is sent again, without the store's
// own words.
func TestAcknowledgeStoreFailure(t *testing.T) {
	msg, err := os.ReadFile("testdata/uk/A28-register.hl7")
	if err != nil {
		t.Fatal(err)
	}
	ack := string(Import(msg).Acknowledge(errors.New("database is locked"), time.Now()))
	if !strings.Contains(ack, "\rMSA|AR|MSG0001|") || strings.Contains(ack, "locked") {
		t.Errorf("a store failure gave %q, want AR without the store's own words", ack)
	}
}

// TestRefusedNotApplied checks that a message refused for what it holds
// has nothing to apply and is acknowledged AE or AR.
func TestRefusedNotApplied(t *testing.T) {
	for _, f := range []string{"uk/A28-invalid-nhs.hl7", "fhir-converter/ADT-A29-01.hl7"} {
		msg, err := os.ReadFile("testdata/" + f)
		if err != nil {
			t.Fatal(err)
		}
		im := Import(msg)
		if !im.Rejected && !im.Failed() {
			t.Errorf("%s: not refused", f)
		}
		ack := string(im.Acknowledge(nil, time.Now()))
		if !strings.Contains(ack, "\rMSA|AE|") && !strings.Contains(ack, "\rMSA|AR|") {
			t.Errorf("%s: ack = %q", f, ack)
		}
	}
}

// TestImpossibleDates sends messages whose dates pass a check of
// their digits but name no day or time that exists, or a death yet to
// come or before the birth: each is refused (AE)
// with ERR-2 naming the field and code 102, as a malformed date is, and
// never applied, rather than failing to store and being sent again.
func TestImpossibleDates(t *testing.T) {
	const pid = "PID|1||9990000018^^^NHS^NH||WARD^SARAH||"
	for _, tt := range []struct{ name, fields, where string }{
		{"30 February", "19700230|F", "PID^1^7"},
		{"29 February of a common year", "19010229|F", "PID^1^7"},
		{"a birth time at hour 24", "197001012400|F", "PID^1^7"},
		{"a birth time at minute 60", "197001011260|F", "PID^1^7"},
		{"month 13", "19701301|F", "PID^1^7"},
		{"a death at second 61", "19700101|F" + strings.Repeat("|", 21) + "20200101120061+0000", "PID^1^29"},
		{"a death at 31 April", "19700101|F" + strings.Repeat("|", 21) + "20200431+0000", "PID^1^29"},
		{"a death in a zone 15 hours from UTC", "19700101|F" + strings.Repeat("|", 21) + "202001011200+1500", "PID^1^29"},
		{"a death in the future", "19700101|F" + strings.Repeat("|", 21) + "20990101", "PID^1^29"},
		{"a death before the birth", "19700101|F" + strings.Repeat("|", 21) + "196912312359+0000", "PID^1^29"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			msg := "MSH|^~\\&|EMISWEB|Y12345|CAREFHIR|PCN01|20260301093000+0000||ADT^A28^ADT_A05|MSG0009|P|2.4\r" + pid + tt.fields + "\r"
			im := Import([]byte(msg))
			if !im.Failed() {
				t.Errorf("a message with an impossible date is not refused")
			}
			ack := string(im.Acknowledge(nil, time.Now()))
			if !strings.Contains(ack, "\rMSA|AE|MSG0009|") || !strings.Contains(ack, "\rERR||"+tt.where+"|102^Data type error^HL70357|E||||") {
				t.Errorf("ack = %q, want AE with ERR %s 102", ack, tt.where)
			}
		})
	}
	// The dates that exist still import.
	msg := "MSH|^~\\&|EMISWEB|Y12345|CAREFHIR|PCN01|20260301093000+0000||ADT^A28^ADT_A05|MSG0010|P|2.4\r" +
		pid + "200002291830|F" + strings.Repeat("|", 21) + "20240229115930.5+0000\r"
	im := Import([]byte(msg))
	if im.Bundle == nil {
		t.Fatalf("refused: %v", im.Issues)
	}
	p := im.Bundle.Entry[0].Resource.(*fhir.Patient)
	if p.BirthDate.Get() != "2000-02-29" || p.DeceasedDateTime.Get() != "2024-02-29T11:59:30+00:00" {
		t.Errorf("birth date %q, deceased %q", p.BirthDate.Get(), p.DeceasedDateTime.Get())
	}
}
