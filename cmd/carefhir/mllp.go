package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"carefhir/fhir/fhirjson"
	"carefhir/mappers/hl7v2"
	"carefhir/mappers/hl7v2/mllp"
	"carefhir/server/access"
)

// startMLLP serves HL7 v2 messages over MLLP on addr: each is imported as
// $import?format=hl7v2 imports it and applied as a transaction through h,
// the server's own handler, acting for the system principal "mllp", so
// that the access layer, validation and the audit trail see it as any
// write. Each message's transaction writes its receipt too (a
// MessageHeader named by its sender and control id), so a message sent
// again, even after a restart, is acknowledged again without being
// applied twice.
func startMLLP(ctx context.Context, addr string, h http.Handler, logger *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serve: mllp: %w", err)
	}
	actAs := access.WithPrincipal(ctx, access.SystemPrincipal("mllp"))
	client := &http.Client{Transport: handlerTransport{h}}
	apply := func(ctx context.Context, im *hl7v2.Imported) error {
		im.AddReceipt(time.Now())
		body, err := fhirjson.Marshal(im.Bundle)
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://mllp.local/fhir", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/fhir+json")
		req.Header.Set("Prefer", "return=minimal")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("the transaction was refused (%d): %s", resp.StatusCode, out)
		}
		return nil
	}
	seen := hl7v2.ReceiptSeen{Exists: func(ctx context.Context, id string) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, "http://mllp.local/fhir/"+hl7v2.ReceiptType+"/"+id, nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			return true, nil
		case http.StatusNotFound, http.StatusGone:
			return false, nil
		}
		return false, fmt.Errorf("reading the receipt %s: %s", id, resp.Status)
	}}
	srv := &mllp.Server{Handler: hl7v2.Handler(actAs, apply, seen, time.Now), IdleTimeout: 10 * time.Minute}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, mllp.ErrServerClosed) {
			logger.Error("mllp listener stopped", "err", err)
		}
	}()
	logger.Info("listening for HL7 v2 over MLLP", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}
