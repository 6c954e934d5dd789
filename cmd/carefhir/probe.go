package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// probeConfig is the configuration of the probe subcommand.
type probeConfig struct {
	Addr    string        `flag:"addr" validate:"required,listen_addr"`
	Path    string        `flag:"path" validate:"oneof=/livez /readyz"`
	Timeout time.Duration `flag:"timeout" validate:"gt=0"`
}

func parseProbeConfig(args []string, getenv func(string) string, stderr io.Writer) (*probeConfig, error) {
	cfg := &probeConfig{Addr: "127.0.0.1:8080", Path: "/livez", Timeout: 5 * time.Second}
	fs := newFlagSet("carefhir probe",
		"Asks a carefhir server on this host whether it is live (/livez) or ready (/readyz),\n"+
			"and exits with status 0 if it is, 1 if not: a container health check for an image\n"+
			"with no shell or curl. --addr is the server's: an address on every interface\n"+
			"(0.0.0.0:8080, :8080) is probed on the loopback interface.", stderr)
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "TCP `host:port` the server listens on")
	fs.StringVar(&cfg.Path, "path", cfg.Path, "probe to ask: /livez or /readyz")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "how long to wait for the answer")
	if err := parseFlags(fs, args, getenv, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// probeURL returns the URL of path on the server listening on addr,
// through loopback when addr names every interface.
func probeURL(addr, path string) string {
	host, port, _ := net.SplitHostPort(addr) // validated as host:port
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port) + path
}

// probe asks the probe and prints its answer; an answer other than 200 is
// an error.
func probe(ctx context.Context, cfg *probeConfig, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	url := probeURL(cfg.Addr, cfg.Path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("probe: GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe: GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	_, err = stdout.Write(body)
	return err
}
