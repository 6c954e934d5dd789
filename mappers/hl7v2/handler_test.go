package hl7v2

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestHandlerDuplicates(t *testing.T) {
	msg, err := os.ReadFile("testdata/uk/A28-register.hl7")
	if err != nil {
		t.Fatal(err)
	}
	applied := 0
	apply := func(_ context.Context, im *Imported) error {
		applied++
		return nil
	}
	clock := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	now := func() time.Time { clock = clock.Add(time.Second); return clock }
	h := Handler(context.Background(), apply, &MemorySeen{}, now)
	first := h(msg)
	again := h(msg)
	if applied != 1 {
		t.Errorf("applied %d times, want once", applied)
	}
	if !bytes.Equal(first, again) {
		t.Errorf("the repeated message got a different acknowledgement:\n%q\n%q", first, again)
	}
	if !bytes.Contains(first, []byte("\rMSA|AA|MSG0001\r")) {
		t.Errorf("ack = %q", first)
	}
	// Another sender may use the same control id.
	other := bytes.Replace(msg, []byte("|EMISWEB|Y12345|"), []byte("|EMISWEB|Y99999|"), 1)
	h(other)
	if applied != 2 {
		t.Errorf("a message from another sender with the same control id was not applied")
	}
}

func TestHandlerRetriesAfterFailure(t *testing.T) {
	msg, err := os.ReadFile("testdata/uk/A28-register.hl7")
	if err != nil {
		t.Fatal(err)
	}
	fail := true
	applied := 0
	apply := func(context.Context, *Imported) error {
		if fail {
			return errors.New("database is locked")
		}
		applied++
		return nil
	}
	h := Handler(context.Background(), apply, &MemorySeen{}, time.Now)
	ack := string(h(msg))
	if !strings.Contains(ack, "\rMSA|AE|MSG0001|") || strings.Contains(ack, "locked") {
		t.Errorf("a store failure gave %q, want AE without the store's own words", ack)
	}
	fail = false
	if ack := string(h(msg)); !strings.Contains(ack, "\rMSA|AA|MSG0001\r") || applied != 1 {
		t.Errorf("the retry gave %q, applied %d", ack, applied)
	}
}

func TestHandlerRefusedNotApplied(t *testing.T) {
	for _, f := range []string{"uk/A28-invalid-nhs.hl7", "fhir-converter/ADT-A29-01.hl7"} {
		msg, err := os.ReadFile("testdata/" + f)
		if err != nil {
			t.Fatal(err)
		}
		apply := func(context.Context, *Imported) error {
			t.Errorf("%s: a refused message was applied", f)
			return nil
		}
		ack := string(Handler(context.Background(), apply, &MemorySeen{}, time.Now)(msg))
		if !strings.Contains(ack, "\rMSA|AE|") && !strings.Contains(ack, "\rMSA|AR|") {
			t.Errorf("%s: ack = %q", f, ack)
		}
	}
}

func TestMemorySeenBound(t *testing.T) {
	s := &MemorySeen{Max: 2}
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c"} {
		s.Remember(ctx, k, []byte(k))
	}
	if _, ok, _ := s.Lookup(ctx, "a"); ok {
		t.Errorf("the oldest key is kept beyond Max")
	}
	if ack, ok, _ := s.Lookup(ctx, "c"); !ok || string(ack) != "c" {
		t.Errorf("the newest key is lost")
	}
}
