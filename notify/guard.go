package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// metadataAddrs are the instance metadata services of the cloud platforms
// that are not already link-local (169.254.169.254 is).
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("fd00:ec2::254"),   // AWS over IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
}

// nat64 is the well-known prefix of NAT64 (RFC 6052): an address in it
// reaches, through a NAT64 gateway, the IPv4 address in its last 32 bits.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// forbiddenAddr reports why a subscription endpoint may not be reached at
// a, or "" when it may: never link-local (which holds the metadata service
// of most clouds), a metadata address, unspecified or multicast; nor the
// NAT64 form of an IPv4 address refused, which reaches it as well.
func forbiddenAddr(a netip.Addr) string {
	a = a.Unmap()
	if nat64.Contains(a) {
		b := a.As16()
		if why := forbiddenAddr(netip.AddrFrom4([4]byte(b[12:]))); why != "" {
			return why + " in its NAT64 form"
		}
	}
	switch {
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return "a link-local address"
	case a.IsUnspecified():
		return "an unspecified address"
	case a.IsMulticast():
		return "a multicast address"
	}
	for _, m := range metadataAddrs {
		if a == m {
			return "a cloud metadata address"
		}
	}
	return ""
}

// CheckEndpoint reports why a rest-hook endpoint is refused, or nil: it
// must be an absolute https URL, or http on a loopback host unless
// allowHTTP, without credentials or a fragment, with a port (if any) that
// can be connected to, and not at a forbidden address written literally.
// Names are checked again once resolved, when dialled.
func CheckEndpoint(raw string, allowHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("endpoint %q is not an absolute URL", raw)
	}
	if strings.Contains(raw, "#") {
		// A fragment is never sent, and the resource of a full payload is
		// addressed below the endpoint's path: dropping it would notify a
		// URL other than the one written.
		return fmt.Errorf("endpoint %q has a fragment, which a request cannot carry", raw)
	}
	if u.User != nil {
		return fmt.Errorf("endpoint %q carries credentials; send them in channel.header", u.Redacted())
	}
	if p := u.Port(); p != "" {
		// url.Parse takes any digits as a port; no connection can be
		// made to one outside 1-65535, so every delivery would fail.
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("endpoint %q has port %s, not one from 1 to 65535", raw, p)
		}
	}
	host := u.Hostname()
	addr, perr := netip.ParseAddr(strings.Trim(host, "[]"))
	literal := perr == nil
	if literal {
		if why := forbiddenAddr(addr); why != "" {
			return fmt.Errorf("endpoint %q is %s", raw, why)
		}
	}
	switch u.Scheme {
	case "https":
	case "http":
		loopback := host == "localhost" || (literal && addr.Unmap().IsLoopback())
		if !loopback && !allowHTTP {
			return fmt.Errorf("endpoint %q must use https (http is allowed on loopback only)", raw)
		}
	default:
		return fmt.Errorf("endpoint %q must be an https URL", raw)
	}
	return nil
}

// errForbidden is a dial to an address CheckEndpoint would refuse, reached
// through a name.
var errForbidden = errors.New("forbidden address")

// guardedClient returns the HTTP client of deliveries: no proxy from the
// environment, no redirects (a redirect could lead anywhere), every
// address checked once resolved, and a timeout per request.
func guardedClient(timeout time.Duration) *http.Client {
	dialer := &net.Dialer{
		Timeout: 10 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("dial %s: %w", address, err)
			}
			if why := forbiddenAddr(ap.Addr()); why != "" {
				return fmt.Errorf("dial %s: %w: %s", address, errForbidden, why)
			}
			return nil
		},
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         func(ctx context.Context, n, a string) (net.Conn, error) { return dialer.DialContext(ctx, n, a) },
			MaxIdleConnsPerHost: 8,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
