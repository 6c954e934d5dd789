// Package mllp serves the Minimal Lower Layer Protocol (HL7 v2.5
// Implementation Guide, appendix C): each message travels between a
// start byte 0x0B and the end bytes 0x1C 0x0D, and each is answered, in
// the same framing, on the same connection, in order.
package mllp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Frame bytes.
const (
	StartBlock     = 0x0B
	EndBlock       = 0x1C
	CarriageReturn = 0x0D
)

// DefaultMaxMessage bounds a message when Server.MaxMessage is 0.
const DefaultMaxMessage = 4 << 20

// DefaultWriteTimeout bounds the sending of an acknowledgement when
// Server.WriteTimeout is 0.
const DefaultWriteTimeout = time.Minute

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("mllp: server closed")

// Server accepts MLLP connections and answers each message with what
// Handler returns for it.
type Server struct {
	// Handler answers one message (the bytes between the frame bytes)
	// with its acknowledgement. It is called for one message of a
	// connection at a time.
	Handler func(msg []byte) (ack []byte)
	// MaxMessage bounds the size of a message. 0 means DefaultMaxMessage.
	MaxMessage int
	// TooLarge answers a message over MaxMessage from its first
	// MaxMessage bytes (the rest of it is read and dropped), so that its
	// sender is told rather than left to send it again for ever. When it
	// is nil, such a message closes the connection unanswered.
	TooLarge func(head []byte) (ack []byte)
	// IdleTimeout closes a connection that sends nothing for this long; 0
	// means never.
	IdleTimeout time.Duration
	// WriteTimeout closes a connection whose acknowledgement could not be
	// sent for this long: its sender reads none, and would otherwise hold
	// the connection, and a Shutdown, for ever. 0 means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]bool // true while a message of it is handled
	closed    bool
	wg        sync.WaitGroup
}

// ListenAndServe listens on the TCP address addr and serves it.
func (s *Server) ListenAndServe(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("mllp: %w", err)
	}
	return s.Serve(l)
}

// Serve accepts connections on l until Close, serving each in its own
// goroutine. It returns ErrServerClosed after Close.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[net.Conn]bool{}
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("mllp: accept: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return ErrServerClosed
		}
		s.conns[c] = false
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

// Close stops the listeners, closes the connections and waits for the
// messages being handled to be answered.
func (s *Server) Close() error {
	s.mu.Lock()
	err := s.stopListening()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// Shutdown stops the listeners and closes the connections waiting for a
// message; a connection whose message is being handled sends its
// acknowledgement and is closed then. It returns once every connection is
// closed, or when ctx is done, closing the rest as Close does.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	err := s.stopListening()
	for c, busy := range s.conns {
		if !busy {
			c.Close()
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return err
	case <-ctx.Done():
		return errors.Join(ctx.Err(), s.Close())
	}
}

// stopListening marks s closed and closes its listeners. s.mu is held.
func (s *Server) stopListening() error {
	s.closed = true
	var err error
	for l := range s.listeners {
		if e := l.Close(); e != nil && err == nil {
			err = e
		}
	}
	return err
}

// handling marks c as handling a message, or not, and reports whether the
// connection is to go on: not once the server is shut down and c is idle.
func (s *Server) handling(c net.Conn, busy bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = busy
	return true
}

func (s *Server) serveConn(c net.Conn) {
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	max := s.MaxMessage
	if max <= 0 {
		max = DefaultMaxMessage
	}
	writeTimeout := s.WriteTimeout
	if writeTimeout <= 0 {
		writeTimeout = DefaultWriteTimeout
	}
	r := bufio.NewReader(c)
	for {
		if s.IdleTimeout > 0 {
			c.SetReadDeadline(time.Now().Add(s.IdleTimeout))
		}
		msg, err := ReadFrame(r, max)
		handle := s.Handler
		switch {
		case errors.Is(err, ErrTooLong) && s.TooLarge != nil:
			handle = s.TooLarge
		case err != nil:
			return
		}
		// A message read once the server is shut down is not handled:
		// the sender, acknowledged nothing, sends it again.
		if !s.handling(c, true) {
			return
		}
		ack := Frame(handle(msg))
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := c.Write(ack); err != nil {
			return
		}
		if !s.handling(c, false) {
			return
		}
	}
}

// ErrTooLong is returned by ReadFrame for a message over the limit.
var ErrTooLong = errors.New("mllp: message too long")

// ReadFrame reads one framed message from r and returns what is between
// the frame bytes. Bytes before the start byte (such as a line break the
// sender left after the previous frame) are skipped. A message longer
// than max bytes is read to its end and dropped: ReadFrame returns its
// first max bytes and ErrTooLong, and r is at the next frame. It returns
// io.EOF when r ends between frames and io.ErrUnexpectedEOF when it ends
// inside one.
func ReadFrame(r *bufio.Reader, max int) ([]byte, error) {
	for {
		b, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		if b == StartBlock {
			break
		}
	}
	var msg []byte
	tooLong := false
	for {
		chunk, err := r.ReadSlice(EndBlock)
		if !tooLong && len(msg)+len(chunk) > max+1 {
			// Keep the start, for an answer addressed to the sender, and
			// drop the rest.
			tooLong = true
			if room := max - len(msg); room > 0 {
				msg = append(msg, chunk[:room]...)
			}
		}
		if !tooLong {
			msg = append(msg, chunk...)
		}
		switch {
		case err == nil:
			next, err := r.ReadByte()
			if err != nil {
				return nil, unexpected(err)
			}
			if next == CarriageReturn && tooLong {
				return msg[:min(len(msg), max)], ErrTooLong
			}
			if next == CarriageReturn {
				return msg[:len(msg)-1], nil
			}
			// A 0x1C not followed by 0x0D is content.
			if err := r.UnreadByte(); err != nil {
				return nil, err
			}
		case errors.Is(err, bufio.ErrBufferFull):
		default:
			return nil, unexpected(err)
		}
	}
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Frame wraps msg in the MLLP frame bytes.
func Frame(msg []byte) []byte {
	out := make([]byte, 0, len(msg)+3)
	out = append(out, StartBlock)
	out = append(out, msg...)
	return append(out, EndBlock, CarriageReturn)
}
