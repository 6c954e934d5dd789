package hl7v2

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"testing"
	"time"

	"carefhir/mappers/hl7v2/mllp"
)

// TestOverMLLP sends a message twice over MLLP, as a sender that missed
// the first acknowledgement does: each is acknowledged AA.
func TestOverMLLP(t *testing.T) {
	msg, err := os.ReadFile("testdata/uk/A28-register.hl7")
	if err != nil {
		t.Fatal(err)
	}
	acks := overMLLP(t, acknowledge, msg, msg)
	if !bytes.Equal(acks[0], acks[1]) || !bytes.Contains(acks[0], []byte("\rMSA|AA|MSG0001\r")) {
		t.Errorf("acks:\n%q\n%q", acks[0], acks[1])
	}
}

// TestOverMLLPImpossibleDate sends over MLLP a registration born on 30
// February: the message is refused for its content (AE, ERR at PID-7,
// 102), so the sender is not told to send it again.
func TestOverMLLPImpossibleDate(t *testing.T) {
	msg := "MSH|^~\\&|EMISWEB|Y12345|CAREFHIR|PCN01|20260301093000+0000||ADT^A28^ADT_A05|MSG0011|P|2.4\r" +
		"PID|1||9990000018^^^NHS^NH||WARD^SARAH||19700230|F\r"
	ack := overMLLP(t, acknowledge, []byte(msg))[0]
	if !bytes.Contains(ack, []byte("\rMSA|AE|MSG0011|")) || !bytes.Contains(ack, []byte("\rERR||PID^1^7|102^Data type error^HL70357|E||||")) ||
		bytes.Contains(ack, []byte("send it again")) {
		t.Errorf("ack = %q, want AE for PID-7 with code 102", ack)
	}
}

// acknowledge is a host that imports each message and stores nothing.
func acknowledge(msg []byte) []byte {
	return Import(msg).Acknowledge(nil, time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC))
}

// overMLLP serves h over MLLP and sends it msgs on one connection, one
// at a time, returning the acknowledgements.
func overMLLP(t *testing.T, h func([]byte) []byte, msgs ...[]byte) [][]byte {
	t.Helper()
	srv := &mllp.Server{Handler: h}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	var acks [][]byte
	for _, msg := range msgs {
		if _, err := c.Write(mllp.Frame(msg)); err != nil {
			t.Fatal(err)
		}
		ack, err := mllp.ReadFrame(r, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, ack)
	}
	return acks
}
