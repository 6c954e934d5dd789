// Package access decides who may do what to which records, and keeps the
// audit trail of what was done. Every read and write of the FHIR API, of
// every endpoint, passes through it once: the server wraps its store in an
// access-checking Store (see store.go) and puts the Principal of each request
// in its context, so handlers, operations, imports and exports never check
// scopes themselves.
package access

import (
	"context"
	"strings"
	"time"
)

// Principal is who a request acts for: the verified claims of its access
// token, or the open principal of a server without authorisation.
type Principal struct {
	// Subject is the token's sub: the user, or the machine client.
	Subject string
	// ClientID is the OAuth client the token was issued to.
	ClientID string
	// FHIRUser is the user's own resource, such as Practitioner/123.
	FHIRUser string
	// Patient is the patient context (a Patient id) that confines
	// patient/ scopes to one compartment; empty without one.
	Patient string
	// Organization is the ODS code of the organisation the user acts for,
	// from the token's organization claim.
	Organization string
	// Scopes are the resource scopes granted.
	Scopes []Scope
	// Issuer is who issued the token.
	Issuer string
	// Expires is when the token expires (its exp); zero for a principal
	// without a token, such as the open and system ones.
	Expires time.Time
	// Address is the network address the request came from.
	Address string
	// Open marks the principal of a server running without authorisation:
	// it may do everything.
	Open bool
	// System marks the server acting for itself (installing definitions,
	// deriving records such as PAM Observations on a write it was allowed).
	System bool
}

// OpenPrincipal is who every request acts for on a server running without
// authorisation.
func OpenPrincipal(address string) *Principal {
	return &Principal{Open: true, Address: address}
}

// SystemPrincipal is the server acting for itself, named for the audit
// trail by what it does (such as "pam-scoring").
func SystemPrincipal(name string) *Principal {
	return &Principal{System: true, Subject: name}
}

// unrestricted reports whether p passes every check.
func (p *Principal) unrestricted() bool { return p.Open || p.System }

// Who names the principal for logs and audit: the user's resource, else
// the subject, else the client.
func (p *Principal) Who() string {
	switch {
	case p.FHIRUser != "":
		return p.FHIRUser
	case p.Subject != "":
		return p.Subject
	case p.ClientID != "":
		return p.ClientID
	case p.Open:
		return "anonymous"
	}
	return "unknown"
}

// ScopeString lists the granted resource scopes, space-separated.
func (p *Principal) ScopeString() string {
	raw := make([]string, len(p.Scopes))
	for i, s := range p.Scopes {
		raw[i] = s.Raw
	}
	return strings.Join(raw, " ")
}

type principalKey struct{}

// WithPrincipal returns ctx acting for p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns who ctx acts for, or nil.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}
