package floorbench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"
)

// Load sends GETs of path to addr over conns keep-alive connections, each
// with one request in flight, for d, and counts the 200 answers read in
// full. It is as lean as a client can be (one request written as prepared
// bytes, the response read by its framing alone), so that the client's
// own cost, shared with the server on the same machine, weighs little in
// a ratio: it speaks HTTP/1.1 as wrk does. Anything but 200 is an error.
// The Side also holds the CPU time this process used meanwhile: the
// client's and, when the server runs in this process, the server's.
func Load(ctx context.Context, addr, path string, conns int, d time.Duration) (Side, error) {
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: carefhir-bench\r\nAccept: */*\r\n\r\n")
	dialer := net.Dialer{Timeout: 10 * time.Second}
	cs := make([]net.Conn, 0, conns)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	for range conns {
		c, err := dialer.DialContext(ctx, "tcp", addr)
		if err != nil {
			return Side{}, err
		}
		cs = append(cs, c)
	}
	start, cpu := time.Now(), processCPU()
	deadline := start.Add(d)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int
		first error
	)
	for _, c := range cs {
		wg.Go(func() {
			var n int
			var err error
			pprof.Do(ctx, pprof.Labels("side", "load"), func(ctx context.Context) {
				n, err = drive(ctx, c, req, deadline)
			})
			mu.Lock()
			defer mu.Unlock()
			total += n
			if err != nil && first == nil {
				first = err
			}
		})
	}
	wg.Wait()
	elapsed, used := time.Since(start), processCPU()-cpu
	if first != nil {
		return Side{}, first
	}
	return Side{Requests: total, Elapsed: elapsed, CPU: used}, nil
}

// drive sends req on c and reads each answer until deadline, returning how
// many were answered 200.
func drive(ctx context.Context, c net.Conn, req []byte, deadline time.Time) (int, error) {
	// A stalled server fails the run rather than hanging it.
	c.SetDeadline(deadline.Add(30 * time.Second))
	r := bufio.NewReaderSize(c, 64<<10)
	n := 0
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if _, err := c.Write(req); err != nil {
			return n, fmt.Errorf("write request: %w", err)
		}
		if err := readResponse(r); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// readResponse reads one HTTP/1.1 response from r, its body by
// Content-Length or chunked, and discards it; anything but 200 is an
// error.
func readResponse(r *bufio.Reader) error {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("read status line: %w", err)
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("response %q: want HTTP/1.1 200", bytes.TrimSpace(line))
	}
	length, chunked := -1, false
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("read header: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return fmt.Errorf("Content-Length %q: %w", value, err)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		}
	}
	switch {
	case chunked:
		return discardChunks(r)
	case length >= 0:
		_, err := r.Discard(length)
		return err
	}
	return errors.New("a response with neither Content-Length nor chunked framing: the connection cannot be kept")
}

// discardChunks reads a chunked body and its trailers.
func discardChunks(r *bufio.Reader) error {
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("read chunk size: %w", err)
		}
		size, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("chunk size %q: want hexadecimal", size)
		}
		if n == 0 {
			break
		}
		if _, err := r.Discard(int(n)); err != nil {
			return err
		}
		if _, err := r.Discard(2); err != nil { // the chunk's CRLF
			return err
		}
	}
	for { // trailers, up to the empty line
		line, err := r.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("read trailer: %w", err)
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return nil
		}
	}
}
