package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"sync"
	"time"

	"carefhir/mappers/hl7v2"
	"carefhir/mappers/hl7v2/mllp"
	"carefhir/mappers/importop"
	"carefhir/server/access"
)

// startMLLP serves HL7 v2 messages over MLLP on addr: each is posted to
// $import?format=hl7v2 through h, the server's own handler, acting for the
// system principal "mllp", so that a message is imported exactly as one
// posted there (in one unit of work that keeps the merges earlier messages
// made), and the access layer, validation and the audit trail see it as
// any write; the acknowledgement $import answers is the one sent back. The
// import writes a receipt with the message (a MessageHeader named by its
// sender and control id), so a message sent again, even after a restart,
// is acknowledged again without being applied twice.
//
// When ctx is done it stops listening and closes the connections waiting
// for a message, as the HTTP server does, and the messages being imported
// are finished and acknowledged within timeout; stop waits for that, so
// that the store is closed after them.
func startMLLP(ctx context.Context, addr string, h http.Handler, timeout time.Duration, logger *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serve: mllp: %w", err)
	}
	// An import is not cut short by the shutdown, which waits for it.
	actAs := access.WithPrincipal(context.WithoutCancel(ctx), access.SystemPrincipal("mllp"))
	client := &http.Client{Transport: handlerTransport{h}}
	handle := func(msg []byte) []byte {
		ack, err := importMessage(actAs, client, msg)
		if err != nil {
			// Not acknowledged by the import (the store failed, or a
			// concurrent write stopped it): AE, so the sender tries again.
			logger.Error("mllp: the message was not imported", "err", err)
			return hl7v2.Import(msg).Acknowledge(err, time.Now())
		}
		return ack
	}
	srv := &mllp.Server{Handler: handle, IdleTimeout: 10 * time.Minute}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, mllp.ErrServerClosed) {
			logger.Error("mllp listener stopped", "err", err)
		}
	}()
	logger.Info("listening for HL7 v2 over MLLP", "addr", ln.Addr().String())
	shutdown := sync.OnceFunc(func() {
		sctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			logger.Warn("mllp: shutdown", "err", err)
		}
	})
	unregister := context.AfterFunc(ctx, shutdown)
	return func() {
		unregister()
		shutdown()
	}, nil
}

// importMessage posts msg to $import?format=hl7v2 and returns the
// acknowledgement it answers (AA, AE or AR alike), or an error when it
// answers none.
func importMessage(ctx context.Context, client *http.Client, msg []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://mllp.local/fhir/$import?format=hl7v2", bytes.NewReader(msg))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", importop.HL7v2MediaType)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != importop.HL7v2MediaType {
		return nil, fmt.Errorf("$import answered %s: %.500s", resp.Status, body)
	}
	return body, nil
}
