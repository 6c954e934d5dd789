package hl7v2

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"testing"
	"time"

	"carefhir/mappers/hl7v2/mllp"
)

// TestOverMLLP sends a message twice over MLLP, as a sender that missed
// the first acknowledgement does: it is applied once and acknowledged
// twice alike.
func TestOverMLLP(t *testing.T) {
	msg, err := os.ReadFile("testdata/uk/A28-register.hl7")
	if err != nil {
		t.Fatal(err)
	}
	applied := make(chan *Imported, 2)
	apply := func(_ context.Context, im *Imported) error {
		applied <- im
		return nil
	}
	srv := &mllp.Server{Handler: Handler(context.Background(), apply, &MemorySeen{}, time.Now)}
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
	for range 2 {
		if _, err := c.Write(mllp.Frame(msg)); err != nil {
			t.Fatal(err)
		}
		ack, err := mllp.ReadFrame(r, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, ack)
	}
	if len(applied) != 1 {
		t.Errorf("applied %d times, want once", len(applied))
	}
	if !bytes.Equal(acks[0], acks[1]) || !bytes.Contains(acks[0], []byte("\rMSA|AA|MSG0001\r")) {
		t.Errorf("acks:\n%q\n%q", acks[0], acks[1])
	}
}
