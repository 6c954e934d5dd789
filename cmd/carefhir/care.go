package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"carefhir/care"
	"carefhir/operation"
	"carefhir/server/access"
)

// careFlags are the serve flags of care coordination.
type careFlags struct {
	PAMWording     string        `flag:"pam-wording" validate:"omitempty,file"`
	PAMCalibration string        `flag:"pam-calibration" validate:"omitempty,file"`
	PAMMinAnswered int           `flag:"pam-min-answered" validate:"min=0,max=13"`
	CareCodes      string        `flag:"care-codes" validate:"omitempty,file"`
	RemindersEvery time.Duration `flag:"reminders-every" validate:"min=0"`
}

// loadCare reads the files the care flags name and returns care
// coordination configured with them.
func loadCare(f careFlags) (*care.Care, error) {
	cfg := care.Config{PAM: care.PAMConfig{MinAnswered: f.PAMMinAnswered}}
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
		if err := json.Unmarshal(b, &cfg.Codes); err != nil {
			return nil, fmt.Errorf("--care-codes %s: %w", f.CareCodes, err)
		}
	}
	return care.New(cfg)
}

// runReminders returns the function, attached to the server, that creates the
// reminders due every period until ctx is done, acting for the server
// itself; a period of 0 runs nothing.
func runReminders(ctx context.Context, c *care.Care, every time.Duration, logger *slog.Logger) func(operation.Store) {
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
				rctx, _ := access.Begin(ctx)
				rctx = access.WithPrincipal(rctx, access.SystemPrincipal("reminders"))
				var n int
				err := s.Transact(rctx, func(tx operation.Store) error {
					created, err := c.Reminders(rctx, tx, time.Now().UTC().Truncate(24*time.Hour))
					n = len(created)
					return err
				})
				if err != nil {
					logger.Error("reminders", "err", err)
					continue
				}
				logger.Info("reminders", "created", n)
			}
		}()
	}
}
