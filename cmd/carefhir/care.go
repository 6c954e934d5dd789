package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/google/uuid"

	"carefhir/care"
	"carefhir/operation"
	"carefhir/server"
	"carefhir/server/access"
)

// careFlags are the serve flags of care coordination.
type careFlags struct {
	PAMWording     string        `flag:"pam-wording" validate:"omitempty,file"`
	PAMCalibration string        `flag:"pam-calibration" validate:"omitempty,file"`
	PAMMinAnswered int           `flag:"pam-min-answered" validate:"min=1,max=13"`
	CareCodes      string        `flag:"care-codes" validate:"omitempty,file"`
	RemindersEvery time.Duration `flag:"reminders-every" validate:"min=0"`
}

// loadCare reads the files the care flags name and returns care
// coordination configured with them, serving under baseURL with the
// server's limits.
func loadCare(f careFlags, baseURL string, limits server.Limits) (*care.Care, error) {
	cfg := care.Config{BaseURL: baseURL, PAM: care.PAMConfig{MinAnswered: f.PAMMinAnswered}, CanonicalVersions: limits.CanonicalVersions}
	if f.PAMWording != "" {
		r, err := os.Open(f.PAMWording)
		if err != nil {
			return nil, fmt.Errorf("--pam-wording: %w", err)
		}
		cfg.PAM.Wording, err = care.ReadPAMWording(r)
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("--pam-wording %s: %w", f.PAMWording, err)
		}
	}
	if f.PAMCalibration != "" {
		r, err := os.Open(f.PAMCalibration)
		if err != nil {
			return nil, fmt.Errorf("--pam-calibration: %w", err)
		}
		cfg.PAM.Calibration, err = care.ReadCalibration(r)
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("--pam-calibration %s: %w", f.PAMCalibration, err)
		}
	}
	if f.CareCodes != "" {
		b, err := os.ReadFile(f.CareCodes)
		if err != nil {
			return nil, fmt.Errorf("--care-codes: %w", err)
		}
		cfg.Codes = care.DefaultCodes()
		// A misspelt key would leave its default code in use with
		// nothing said: caseloads and scores would miss the local code.
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg.Codes); err != nil {
			return nil, fmt.Errorf("--care-codes %s: %w", f.CareCodes, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("--care-codes %s: more than one JSON object", f.CareCodes)
		}
		if err := cfg.Codes.Check(); err != nil {
			return nil, fmt.Errorf("--care-codes %s: %w", f.CareCodes, err)
		}
	}
	return care.New(cfg)
}

// runReminders returns the function, attached to the server, that creates the
// reminders due every period until ctx is done, acting for the server
// itself; a period of 0 runs nothing. Each run reads and writes patients'
// records, so auditor (nil when the trail is off) records it as the
// $generate-reminders it performs, as it would a client's.
func runReminders(ctx context.Context, c *care.Care, every time.Duration, auditor *access.Auditor, logger *slog.Logger) func(operation.Store) {
	if every <= 0 {
		return nil
	}
	return func(s operation.Store) {
		go func() {
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				remind(ctx, c, s, auditor, logger)
			}
		}()
	}
}

// remind runs the reminders due today once, as the server's own principal:
// today in the UK (care.Care.Today), which on a summer night is already
// the next day while it is still the day before in UTC.
func remind(ctx context.Context, c *care.Care, s operation.Store, auditor *access.Auditor, logger *slog.Logger) {
	rctx, rec := access.Begin(ctx)
	who := access.SystemPrincipal("reminders")
	rctx = access.WithPrincipal(rctx, who)
	started := time.Now()
	// The run's id stands for a request id: it is in its AuditEvents and
	// its log line, to lead from one to the other.
	run := uuid.Must(uuid.NewV7()).String()
	var n int
	err := s.Transact(rctx, func(tx operation.Store) error {
		created, err := c.Reminders(rctx, tx, c.Today())
		n = len(created)
		return err
	})
	if auditor != nil {
		status := http.StatusOK
		if err != nil {
			status = http.StatusInternalServerError
		}
		auditor.Add(&access.Event{Interaction: access.InteractionOperation, Type: "Task", Operation: "generate-reminders",
			Principal: who, RequestID: run, Status: status, Recorded: started, Record: rec})
	}
	if err != nil {
		logger.Error("reminders", "run", run, "err", err)
		return
	}
	logger.Info("reminders", "run", run, "created", n)
}
