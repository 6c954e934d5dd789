package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"carefhir/server/access"
	"carefhir/server/auth"
)

// Auth is the authorisation of the API. *auth.Service is one.
type Auth interface {
	// Authenticate returns who the request's bearer token speaks for:
	// auth.ErrNoToken without one, an *auth.Error when it is refused.
	Authenticate(r *http.Request) (*access.Principal, error)
	// TokenEndpoint serves POST /auth/token for backend services.
	TokenEndpoint() http.Handler
	// JWKS serves the public keys of the server's own tokens.
	JWKS() http.Handler
	// SMARTConfiguration is the discovery document.
	SMARTConfiguration() auth.SMARTConfiguration
}

// registerAuth serves the token endpoint, the server's keys and the SMART
// configuration, none of which needs a token.
func (a *api) registerAuth(r *gin.Engine) {
	if a.cfg.Auth == nil {
		return
	}
	r.POST("/auth/token", wrapHandler(a.cfg.Auth.TokenEndpoint()))
	getAndHead(r, "/auth/jwks", gin.WrapH(a.cfg.Auth.JWKS()))
	getAndHead(r, "/.well-known/smart-configuration", a.smartConfiguration)
	getAndHead(r, "/fhir/.well-known/smart-configuration", a.smartConfiguration)
}

func (a *api) smartConfiguration(c *gin.Context) {
	c.JSON(http.StatusOK, a.cfg.Auth.SMARTConfiguration())
}

// authenticate puts the Principal of each request in its context. Without
// Auth every request acts for the open principal. With it, the FHIR API
// needs a valid bearer token (RFC 6750), except for the
// CapabilityStatement and the SMART configuration, which clients read to
// learn how to get one; requests that need none act for an anonymous
// principal with no scopes.
//
// Why a token was refused is logged for the operator (never the token
// itself), and never told to the client. A refused request is anonymous,
// held to its address's rate limit: one sending no token, or a refused
// one, again and again is throttled (429) as any client is, not answered
// 401 without end.
func authenticate(au Auth, log *slog.Logger, limit *limiter) gin.HandlerFunc {
	return func(c *gin.Context) {
		addr := clientAddress(c.Request)
		st := stateOf(c)
		var p *access.Principal
		switch {
		case inProcessSystem(c.Request.Context()):
			// A request the host made in process for one of its own
			// services (such as the MLLP listener) acts for it; requests
			// from the network never carry a principal.
			p = access.PrincipalFrom(c.Request.Context())
		case au == nil:
			st.access.SetOpenPrincipal(addr)
			c.Next()
			return
		case hasTokenParam(c.Request.URL.Query()):
			// RFC 6750 §2.3 lets a server read a token from the query
			// string; this one does not, since URLs end up in logs,
			// histories and the audit trail. A token there is refused
			// whether or not a header carries one too, so that a client
			// learns to stop sending it.
			if !limit.throttle(c, &access.Principal{Address: addr}) {
				c.Error(tokenParamError())
				c.Abort()
			}
			return
		case !needsToken(c.Request.URL.Path):
			p = &access.Principal{Address: addr}
		default:
			var err error
			if p, err = au.Authenticate(c.Request); err != nil {
				if !errors.Is(err, auth.ErrNoToken) {
					log.LogAttrs(c.Request.Context(), slog.LevelInfo, "bearer token refused",
						slog.String("reason", err.Error()), slog.String("request_id", requestIDOf(c)))
				}
				if !limit.throttle(c, &access.Principal{Address: addr}) {
					c.Error(bearerError(err))
					c.Abort()
				}
				return
			}
			p.Address = addr
			c.Set(ctxBearer, true)
			// Responses for a token are for its holder only.
			c.Header("Cache-Control", "no-store")
		}
		st.access.SetPrincipal(p)
		c.Next()
	}
}

// ctxBearer marks a request authenticated by a bearer token.
const ctxBearer = "carefhir.bearer"

// tokenParam is the parameter RFC 6750 §2.2 and §2.3 name for an access
// token in a form body or a query string.
const tokenParam = "access_token"

// hasTokenParam reports whether params carry an access token.
func hasTokenParam(params url.Values) bool { return params.Has(tokenParam) }

// tokenParamError refuses an access token sent as a parameter: RFC 6750
// §3.1 invalid_request, 400.
func tokenParamError() *Error {
	e := errorf(http.StatusBadRequest, "invalid",
		"access tokens are accepted in the Authorization header only (Authorization: Bearer ...), never as the %s parameter", tokenParam).at(tokenParam)
	e.Header = http.Header{"Www-Authenticate": {`Bearer error="invalid_request", error_description="send the access token in the Authorization header, not as a parameter"`}}
	return e
}

// needsToken reports whether a path is behind authentication: the FHIR API
// and the metrics, but not the CapabilityStatement, the discovery
// documents, the token endpoint or the health checks.
func needsToken(path string) bool {
	switch {
	case path == "/fhir/metadata", strings.HasPrefix(path, "/fhir/.well-known/"):
		return false
	case path == "/fhir", strings.HasPrefix(path, "/fhir/"), path == "/metrics":
		return true
	}
	return false
}

// bearerError is the answer to a refused token: which check failed is
// never told, only the RFC 6750 error code.
func bearerError(err error) *Error {
	var ae *auth.Error
	switch {
	case errors.Is(err, auth.ErrNoToken):
		e := errorf(http.StatusUnauthorized, "login", "this server requires a bearer access token (Authorization: Bearer ...)")
		e.Header = http.Header{"Www-Authenticate": {"Bearer"}}
		return e
	case errors.As(err, &ae) && ae.Code == "invalid_request":
		e := errorf(http.StatusBadRequest, "invalid", "the Authorization header is malformed: want Bearer and one token")
		e.Header = http.Header{"Www-Authenticate": {`Bearer error="invalid_request"`}}
		return e
	}
	e := errorf(http.StatusUnauthorized, "login", "the bearer token is not valid")
	e.Header = http.Header{"Www-Authenticate": {`Bearer error="invalid_token"`}}
	return e
}

// clientAddress is the IP address the request came from. Forwarding
// headers are not read: any client can write them.
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// capSecurity is CapabilityStatement.rest.security.
type capSecurity struct {
	Extension   []capExtension `json:"extension,omitempty"`
	CORS        bool           `json:"cors"`
	Service     []capConcept   `json:"service,omitempty"`
	Description string         `json:"description"`
}

type capExtension struct {
	URL       string         `json:"url"`
	ValueURI  string         `json:"valueUri,omitempty"`
	Extension []capExtension `json:"extension,omitempty"`
}

type capConcept struct {
	Coding []capCoding `json:"coding"`
	Text   string      `json:"text,omitempty"`
}

type capCoding struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

// security describes the API's authorisation in the CapabilityStatement:
// the SMART on FHIR service and its oauth-uris extension (SMART App
// Launch, "Using CapabilityStatement"), or nothing on an open server.
func (a *api) security() *capSecurity {
	if a.cfg.Auth == nil {
		return nil
	}
	smart := a.cfg.Auth.SMARTConfiguration()
	return &capSecurity{
		Extension: []capExtension{{
			URL:       "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
			Extension: []capExtension{{URL: "token", ValueURI: smart.TokenEndpoint}},
		}},
		CORS: len(a.cfg.CORSOrigins) > 0,
		Service: []capConcept{{
			Coding: []capCoding{{System: "http://terminology.hl7.org/CodeSystem/restful-security-service", Code: "SMART-on-FHIR"}},
			Text:   "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
		}},
		Description: "Requests need a bearer access token (RFC 6750) from a trusted issuer, or from this server's " +
			"token endpoint for SMART Backend Services clients, as [base]/.well-known/smart-configuration describes",
	}
}

// inProcessSystem reports whether ctx already acts for a system principal.
func inProcessSystem(ctx context.Context) bool {
	p := access.PrincipalFrom(ctx)
	return p != nil && p.System
}
