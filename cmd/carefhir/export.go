package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// exportConfig is the configuration of the export subcommand.
type exportConfig struct {
	transferConfig
	Format       string `flag:"format" validate:"oneof=bundle csv gpconnect-appointment"`
	Patient      string `flag:"patient"`
	Appointment  string `flag:"appointment"`
	Provider     string `flag:"provider"`
	Organization string `flag:"organization"`
}

func parseExportConfig(args []string, getenv func(string) string, stderr io.Writer) (*exportConfig, error) {
	cfg := &exportConfig{}
	fs := newFlagSet("carefhir export",
		"Writes on stdout what $export-gp answers: a patient's care record as a collection Bundle or coded-entries CSV,\n"+
			"or an Appointment as a GP Connect booking request.", stderr)
	cfg.flags(fs)
	fs.StringVar(&cfg.Format, "format", "bundle", "`format`: bundle, csv or gpconnect-appointment")
	fs.StringVar(&cfg.Patient, "patient", "", "`id` of the Patient whose record is exported (bundle, csv)")
	fs.StringVar(&cfg.Appointment, "appointment", "", "`id` of the Appointment to book (gpconnect-appointment)")
	fs.StringVar(&cfg.Provider, "provider", "", "FHIR base `URL` of the GP Connect provider the appointment is booked with")
	fs.StringVar(&cfg.Organization, "organization", "", "ODS `code` of the booking organisation")
	if err := parseFlags(fs, args, getenv, cfg); err != nil {
		return nil, err
	}
	if cfg.Format == "gpconnect-appointment" && cfg.Appointment == "" || cfg.Format != "gpconnect-appointment" && cfg.Patient == "" {
		return nil, &usageError{err: errors.New("carefhir export: name --patient (bundle, csv) or --appointment (gpconnect-appointment)")}
	}
	return cfg, nil
}

// exportRecords writes what $export-gp answers on stdout.
func exportRecords(ctx context.Context, cfg *exportConfig, factories map[string]engineFactory, stdout io.Writer) error {
	client, base, closeFn, err := cfg.client(ctx, factories)
	if err != nil {
		return err
	}
	defer closeFn()
	target := base + "/Patient/" + url.PathEscape(cfg.Patient) + "/$export-gp?format=" + cfg.Format
	if cfg.Format == "gpconnect-appointment" {
		q := url.Values{"format": {"gpconnect"}, "provider": {cfg.Provider}, "organization": {cfg.Organization}}
		target = base + "/Appointment/" + url.PathEscape(cfg.Appointment) + "/$export-gp?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.Token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("export: refused (%d): %s", resp.StatusCode, msg)
	}
	_, err = io.Copy(stdout, resp.Body)
	return err
}
