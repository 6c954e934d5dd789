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

// startMLLP serves HL7 v2 messages over MLLP on ln: each is posted to
// $import?format=hl7v2 through h, the server's own handler, acting for the
// system principal "mllp", so that a message is imported exactly as one
// posted there (in one unit of work that keeps the merges earlier messages
// made), and the access layer, validation and the audit trail see it as
// any write; the acknowledgement $import answers is the one sent back. The
// import writes a receipt with the message (a Provenance whose id derives
// from its sender and control id), so a message sent again, even after a
// restart, is acknowledged again without being applied twice.
//
// When ctx is done it stops listening and closes the connections waiting
// for a message, as the HTTP server does, and the messages being imported
// are finished and acknowledged within timeout; stop waits for that, so
// that the store is closed after them.
func startMLLP(ctx context.Context, ln net.Listener, h http.Handler, timeout time.Duration, logger *slog.Logger) (stop func()) {
	// An import is not cut short by the shutdown, which waits for it.
	actAs := access.WithPrincipal(context.WithoutCancel(ctx), access.SystemPrincipal("mllp"))
	client := &http.Client{Transport: handlerTransport{h}}
	handle := func(msg []byte) []byte {
		ack, err := importMessage(actAs, client, msg)
		if err != nil {
			// Not acknowledged by the import: the store refused the
			// writes (AE, not to be sent again unchanged), or could not
			// take them now (AR, to be sent again later).
			logger.Error("mllp: the message was not imported", "err", err)
			return hl7v2.Import(msg).Acknowledge(err, time.Now())
		}
		return ack
	}
	tooLarge := func(head []byte) []byte {
		return hl7v2.AcknowledgeTooLarge(head, mllp.DefaultMaxMessage, time.Now())
	}
	srv := &mllp.Server{Handler: handle, TooLarge: tooLarge, IdleTimeout: 10 * time.Minute}
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
	}
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
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == importop.HL7v2MediaType {
		// The acknowledgement is read whole, however many ERR segments
		// it has: one cut short would end inside a segment.
		return io.ReadAll(resp.Body)
	}
	// Any other answer is the server's own words, of which the log
	// keeps the start.
	body, err := io.ReadAll(io.LimitReader(resp.Body, 500))
	if err != nil {
		return nil, err
	}
	err = fmt.Errorf("$import answered %s: %s", resp.Status, body)
	if reason := refusalReason(resp.StatusCode); reason != "" {
		return nil, &hl7v2.Refusal{Reason: reason, Err: err}
	}
	return nil, err
}

// refusalReason says why the store refused a message's writes when
// $import answered status for them and the same message sent again would
// be refused again; it is empty for a status that leaves the message to
// be sent again later (409: another write changed a record meanwhile;
// 429, 5xx: the store is busy or unavailable).
func refusalReason(status int) string {
	const unchanged = "; it is not to be sent again unchanged"
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return "the message was not applied: the records it makes are not valid" + unchanged
	case http.StatusForbidden:
		return "the message was not applied: its sender may not write the records it makes" + unchanged
	case http.StatusPreconditionFailed:
		return "the message was not applied: the records it makes match more than one stored record, or none that a reference needs" + unchanged
	case http.StatusRequestEntityTooLarge:
		return "the message was not applied: it is larger than the server takes" + unchanged
	}
	return ""
}
