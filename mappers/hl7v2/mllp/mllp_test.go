package mllp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestReadFrame(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
		err  error
	}{
		{"one", "\x0bMSH|a\r\x1c\r", []string{"MSH|a\r"}, io.EOF},
		{"two back to back", "\x0bA\x1c\r\x0bB\x1c\r", []string{"A", "B"}, io.EOF},
		{"noise between frames", "\n\x0bA\x1c\r\r\n\x0bB\x1c\r", []string{"A", "B"}, io.EOF},
		{"0x1C inside", "\x0bA\x1cB\x1c\r", []string{"A\x1cB"}, io.EOF},
		{"cut inside", "\x0bA", nil, io.ErrUnexpectedEOF},
		{"cut after end block", "\x0bA\x1c", nil, io.ErrUnexpectedEOF},
		{"too long", "\x0b" + strings.Repeat("x", 100) + "\x1c\r", []string{"too long: " + strings.Repeat("x", 50)}, io.EOF},
		{"too long, then another", "\x0bMSH" + strings.Repeat("\x1cx", 50) + "\x1c\r\x0bB\x1c\r", []string{"too long: MSH" + strings.Repeat("\x1cx", 23) + "\x1c", "B"}, io.EOF},
		{"too long, cut inside", "\x0b" + strings.Repeat("x", 100), nil, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bufio.NewReaderSize(strings.NewReader(tt.in), 16)
			var got []string
			var err error
			for {
				var msg []byte
				msg, err = ReadFrame(r, 50)
				if errors.Is(err, ErrTooLong) {
					got = append(got, "too long: "+string(msg))
					continue
				}
				if err != nil {
					break
				}
				got = append(got, string(msg))
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || !errors.Is(err, tt.err) {
				t.Errorf("got %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: func(msg []byte) []byte { return append([]byte("ACK:"), msg...) }}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()

	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// Two messages in one write, then one split across writes.
	if _, err := c.Write(append(Frame([]byte("one")), Frame([]byte("two"))...)); err != nil {
		t.Fatal(err)
	}
	third := Frame([]byte("three"))
	c.Write(third[:3])
	c.Write(third[3:])
	r := bufio.NewReader(c)
	for _, want := range []string{"ACK:one", "ACK:two", "ACK:three"} {
		got, err := ReadFrame(r, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve returned %v, want ErrServerClosed", err)
	}
	if _, err := ReadFrame(r, 1<<20); err == nil {
		t.Errorf("the connection stayed open after Close")
	}
}

func TestFrame(t *testing.T) {
	if got := Frame([]byte("x")); !bytes.Equal(got, []byte{0x0b, 'x', 0x1c, 0x0d}) {
		t.Errorf("Frame = %q", got)
	}
}

// Shutdown closes the listener and the idle connections at once, lets the
// message being handled be acknowledged, and returns once it has been.
func TestShutdown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	s := &Server{Handler: func(msg []byte) []byte {
		close(started)
		<-release
		return append([]byte("ACK:"), msg...)
	}}
	go s.Serve(l)
	dial := func() net.Conn {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	busy, idle := dial(), dial()
	defer busy.Close()
	defer idle.Close()
	if _, err := busy.Write(Frame([]byte("in flight"))); err != nil {
		t.Fatal(err)
	}
	<-started

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(t.Context()) }()
	if _, err := ReadFrame(bufio.NewReader(idle), 1<<20); !errors.Is(err, io.EOF) {
		t.Errorf("the idle connection at shutdown: %v, want it closed", err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener still accepts after Shutdown")
		}
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a message in flight", err)
	case <-time.After(50 * time.Millisecond):
	}

	close(release)
	r := bufio.NewReader(busy)
	if got, err := ReadFrame(r, 1<<20); err != nil || string(got) != "ACK:in flight" {
		t.Errorf("the message in flight at shutdown: %q, %v; want its acknowledgement", got, err)
	}
	if _, err := ReadFrame(r, 1<<20); !errors.Is(err, io.EOF) {
		t.Errorf("after its acknowledgement: %v, want the connection closed", err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// pipeListener accepts one in-memory connection, whose writes wait until
// the other end reads them, as a TCP connection's do once its buffers are
// full.
type pipeListener struct {
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.UnixAddr{Name: "pipe", Net: "pipe"} }

// TestUnreadAcknowledgement: a sender that does not read its
// acknowledgements is disconnected once one has waited WriteTimeout to be
// sent, rather than holding its connection, and a Shutdown, for ever.
func TestUnreadAcknowledgement(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	l := &pipeListener{conns: make(chan net.Conn, 1), done: make(chan struct{})}
	l.conns <- server
	s := &Server{Handler: func(msg []byte) []byte { return msg }, WriteTimeout: 50 * time.Millisecond}
	go s.Serve(l)
	defer s.Close()
	client.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := client.Write(Frame([]byte("acknowledged to no one"))); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write(Frame([]byte("next"))); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("a write after an acknowledgement left unread: %v, want the connection closed", err)
	}
}
