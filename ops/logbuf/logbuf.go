// Package logbuf keeps a log's lines in memory and writes them in the
// background, so that a request never waits on the file or pipe a log goes
// to: with one line per request, a write system call per line costs a
// read of a resource as much as reading it. Nothing is lost on Close,
// which writes every line given before it; a crash loses at most the
// lines of the last interval.
package logbuf

import (
	"io"
	"sync"
	"time"
)

// DefaultInterval is how long a line waits at most before it is written,
// when New is given no interval.
const DefaultInterval = 100 * time.Millisecond

// highWater is how many bytes of lines are kept before the writer of the
// line that reaches it writes them all itself: a burst of lines slows its
// writers down rather than growing the buffer without bound.
const highWater = 256 << 10

// Writer buffers whole writes (log lines, as log/slog handlers make them)
// and writes them to its destination in order, every interval or when
// highWater bytes are waiting. It is safe for concurrent use.
type Writer struct {
	out io.Writer

	mu     sync.Mutex // guards buf and closed
	buf    []byte     // lines not yet written
	closed bool

	writing sync.Mutex // held while lines go to out, so they go in order
	spare   []byte     // the buffer last written, reused; guarded by writing

	stop    chan struct{}
	closing sync.Once
	done    chan struct{}
}

// New returns a Writer writing to out every interval (DefaultInterval if
// not positive). Close it to write what is left.
func New(out io.Writer, interval time.Duration) *Writer {
	if interval <= 0 {
		interval = DefaultInterval
	}
	w := &Writer{out: out, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run(interval)
	return w
}

func (w *Writer) run(interval time.Duration) {
	defer close(w.done)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			w.Flush()
		case <-w.stop:
			return
		}
	}
}

// Write keeps p to be written; it never splits or reorders writes. Once
// the Writer is closed, p is written at once.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.writing.Lock()
		defer w.writing.Unlock()
		return w.out.Write(p)
	}
	w.buf = append(w.buf, p...)
	full := len(w.buf) >= highWater
	w.mu.Unlock()
	if full {
		if err := w.Flush(); err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

// Flush writes every line kept so far.
func (w *Writer) Flush() error {
	w.writing.Lock()
	defer w.writing.Unlock()
	w.mu.Lock()
	b := w.buf
	w.buf = w.spare[:0]
	w.mu.Unlock()
	if len(b) == 0 {
		w.spare = b
		return nil
	}
	_, err := w.out.Write(b)
	if cap(b) <= highWater {
		w.spare = b[:0]
	} else {
		w.spare = nil // a burst's buffer is let go
	}
	return err
}

// Close writes every line kept and stops the background writes; lines
// given later are written as they come, after those.
func (w *Writer) Close() error {
	w.closing.Do(func() { close(w.stop) })
	<-w.done
	w.writing.Lock()
	defer w.writing.Unlock()
	w.mu.Lock()
	w.closed = true
	b := w.buf
	w.buf = nil
	w.mu.Unlock()
	if len(b) == 0 {
		return nil
	}
	_, err := w.out.Write(b)
	return err
}
