package auth

import (
	"fmt"
	"time"

	"carefhir/server/access"
)

// LapsedError says why the authorisation a principal's token carried is
// no longer in place.
type LapsedError struct{ Reason string }

func (e *LapsedError) Error() string { return "authorisation lapsed: " + e.Reason }

func lapsed(format string, args ...any) *LapsedError {
	return &LapsedError{Reason: fmt.Sprintf(format, args...)}
}

// Reauthorize checks, for work the server does later on a principal's
// behalf (the notifications of a Subscription it wrote), that the
// authorisation its token carried is still in place at now, and returns
// the principal narrowed to what it may still do, or a *LapsedError.
//
// A backend-services client of this server's token endpoint is authorised
// by its registration, which outlives its five-minute tokens: it must
// still be registered, for the same organisation, and keeps the scopes of
// its token that the registration still allows. A token of another issuer
// stands for an authorisation this server cannot see (a user's session,
// an app's refresh token): the issuer must still be trusted, and the
// authorisation lasts until the token expires. The open principal, of a
// server that ran without authorisation, has lapsed now that it has one;
// the system principal (the server itself) never lapses.
func (s *Service) Reauthorize(p *access.Principal, now time.Time) (*access.Principal, error) {
	switch {
	case p.System:
		return p, nil
	case p.Open:
		return nil, lapsed("it was written while the server ran without authorisation")
	}
	if p.Issuer == s.tokens.issuer {
		cl, ok := s.tokens.clients[p.ClientID]
		switch {
		case !ok:
			return nil, lapsed("client %s is no longer registered with this server", p.ClientID)
		case cl.organization != p.Organization:
			return nil, lapsed("client %s is now registered for organisation %q, not %q", p.ClientID, cl.organization, p.Organization)
		}
		scopes := access.Within(p.Scopes, cl.scopes)
		if len(scopes) == 0 {
			return nil, lapsed("client %s is no longer allowed any of the scopes %q", p.ClientID, p.ScopeString())
		}
		np := *p
		np.Scopes = scopes
		return &np, nil
	}
	if _, ok := s.issuers[p.Issuer]; !ok {
		return nil, lapsed("the issuer %s of the token is no longer trusted", p.Issuer)
	}
	switch {
	case p.Expires.IsZero():
		return nil, lapsed("the expiry of the token was not recorded")
	case now.After(p.Expires.Add(maxSkew)):
		return nil, lapsed("the token expired at %s", p.Expires.UTC().Format(time.RFC3339))
	}
	return p, nil
}
