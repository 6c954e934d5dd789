package main

import (
	"io"
	"net/http"
	"sync"
)

// streamTransport serves requests with an in-process handler, as
// handlerTransport does, but hands the response body to the caller as the
// handler writes it: the report of a large import reaches the terminal
// without being held whole. The caller must read or close each body. A
// request whose context ends before its answer begins fails with the
// context's error, as over the network: the handler's answer to a request
// cut short (its deadline's 503) would say what did not happen.
type streamTransport struct{ h http.Handler }

func (t streamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	pr, pw := io.Pipe()
	w := &streamWriter{header: http.Header{}, body: pw, started: make(chan struct{})}
	go func() {
		t.h.ServeHTTP(w, req)
		w.WriteHeader(http.StatusOK)
		if req.Body != nil {
			req.Body.Close()
		}
		pw.Close()
	}()
	<-w.started
	if err := req.Context().Err(); err != nil {
		pr.CloseWithError(err) // the handler's writes fail, and it ends
		return nil, err
	}
	return &http.Response{
		Status:        http.StatusText(w.status),
		StatusCode:    w.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.sent,
		Body:          pr,
		ContentLength: -1,
		Request:       req,
	}, nil
}

// streamWriter is the http.ResponseWriter of streamTransport: the status
// and headers are sent when the handler writes them, the body through a
// pipe.
type streamWriter struct {
	header  http.Header
	sent    http.Header // the headers as they were when the status was written
	status  int
	once    sync.Once
	started chan struct{}
	body    *io.PipeWriter
}

func (w *streamWriter) Header() http.Header { return w.header }

func (w *streamWriter) WriteHeader(status int) {
	w.once.Do(func() {
		w.status, w.sent = status, w.header.Clone()
		close(w.started)
	})
}

func (w *streamWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}
