package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// probeConfig is the configuration of the probe subcommand.
type probeConfig struct {
	Addr    string        `flag:"addr" validate:"required,listen_addr"`
	Path    string        `flag:"path" validate:"oneof=/livez /readyz"`
	Timeout time.Duration `flag:"timeout" validate:"gt=0"`
	// TLSCert is the certificate file the server serves HTTPS with: the
	// same CAREFHIR_TLS_CERT sets both.
	TLSCert string `flag:"tls-cert"`
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
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate `file` the server serves HTTPS with (its --tls-cert): ask over HTTPS, trusting the server that presents this certificate")
	if err := parseFlags(fs, args, getenv, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// probeURL returns the URL of path on the server listening on addr,
// through loopback when addr names every interface, over HTTPS when secure.
func probeURL(addr, path string, secure bool) string {
	host, port, _ := net.SplitHostPort(addr) // validated as host:port
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	scheme := "http://"
	if secure {
		scheme = "https://"
	}
	return scheme + net.JoinHostPort(host, port) + path
}

// pinnedClient returns a client that accepts only a server presenting one
// of the certificates in the PEM file certFile. The server's certificate is
// issued for its public name, not for the loopback address the probe asks,
// and whether it has expired is no question for a health check: the probe
// trusts the certificate the server was given instead of a name and a date.
func pinnedClient(certFile string) (*http.Client, error) {
	b, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	var certs [][]byte
	for block, rest := pem.Decode(b); block != nil; block, rest = pem.Decode(rest) {
		if block.Type == "CERTIFICATE" {
			certs = append(certs, block.Bytes)
		}
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", certFile)
	}
	cfg := &tls.Config{
		// Verified by VerifyConnection instead.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			for _, c := range certs {
				if len(cs.PeerCertificates) > 0 && bytes.Equal(cs.PeerCertificates[0].Raw, c) {
					return nil
				}
			}
			return errors.New("the server presents a certificate that is not in " + certFile)
		},
	}
	return &http.Client{Transport: directTransport(cfg)}, nil
}

// directTransport returns a transport that connects to the server itself,
// with tlsConfig for HTTPS. The probe asks a server on this host: a proxy
// the environment names (HTTP_PROXY, as a container's often does for its
// outbound traffic) would answer for the server, or fail where it is fine,
// whenever --addr is a name other than localhost.
func directTransport(tlsConfig *tls.Config) *http.Transport {
	return &http.Transport{Proxy: nil, TLSClientConfig: tlsConfig}
}

// probe asks the probe and prints its answer; an answer other than 200 is
// an error.
func probe(ctx context.Context, cfg *probeConfig, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	client := &http.Client{Transport: directTransport(nil)}
	if cfg.TLSCert != "" {
		var err error
		if client, err = pinnedClient(cfg.TLSCert); err != nil {
			return fmt.Errorf("probe: %w", err)
		}
	}
	url := probeURL(cfg.Addr, cfg.Path, cfg.TLSCert != "")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	resp, err := client.Do(req)
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
