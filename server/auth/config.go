package auth

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/go-playground/validator/v10"
	"github.com/goccy/go-yaml"

	"carefhir/server/access"
)

// Config is the auth file: who may issue access tokens for this server,
// which machine clients may ask its token endpoint for them, and the limits
// browsers and clients are held to. It is YAML, or JSON (which is YAML).
type Config struct {
	// Audience is the aud every access token must name; empty: the
	// server's FHIR base URL.
	Audience string `json:"audience,omitempty" validate:"omitempty,http_url"`
	// Issuers are the external OpenID Connect or OAuth servers whose tokens
	// are accepted (NHS CIS2, Keycloak, ...).
	Issuers []Issuer `json:"issuers,omitempty" validate:"dive"`
	// Clients are the backend-services clients of the token endpoint.
	Clients []Client `json:"clients,omitempty" validate:"dive"`
	// Policy decides access beyond the scopes: "scopes" (the default) or
	// "care-team".
	Policy string `json:"policy,omitempty" validate:"omitempty,oneof=scopes care-team"`
	// CORS lists the origins of browser apps allowed to call the API, such
	// as https://app.example.nhs.uk; "*" allows any.
	CORS []string `json:"cors,omitempty" validate:"dive,origin"`
	// RateLimit bounds the requests of each client.
	RateLimit *RateLimit `json:"rate_limit,omitempty"`
	// TokenLifetime is how long the access tokens the server issues last;
	// zero: DefaultTokenLifetime. At least a minute: a shorter token
	// reports expires_in 0 yet the clock allowance still accepts it.
	TokenLifetime time.Duration `json:"token_lifetime,omitempty" validate:"omitempty,gte=1m,lte=1h"`

	// dir is the directory of the file, against which its paths are read.
	dir string
}

// Issuer is an external token issuer and where its signing keys are.
type Issuer struct {
	// Issuer is the iss its tokens carry, exactly.
	Issuer string `json:"issuer" validate:"required,http_url"`
	// JWKS is its public keys: a file (relative to the auth file), or an
	// https URL fetched, cached and refreshed.
	JWKS string `json:"jwks" validate:"required"`
	// Audience is the aud this issuer's tokens carry when it is not the
	// server's (an OpenID provider may name its client id); empty: the
	// top-level audience.
	Audience string `json:"audience,omitempty" validate:"omitempty,max=2000"`
}

// Client is a machine client of the token endpoint (SMART Backend
// Services), such as a GP system.
type Client struct {
	// ID is the client_id, and the iss and sub of its assertions.
	ID string `json:"id" validate:"required,printascii,excludes= ,max=200"`
	// JWKS is the file of the client's public keys (relative to the auth
	// file), or an https URL.
	JWKS string `json:"jwks" validate:"required"`
	// Scopes are the system/ scopes the client may be granted.
	Scopes []string `json:"scopes" validate:"required,min=1"`
	// Organization is the ODS code of the organisation the client acts
	// for, carried in its tokens' organization claim; optional.
	Organization string `json:"organization,omitempty" validate:"omitempty,alphanum,max=12"`
}

// RateLimit is a token bucket per client: PerSecond requests a second on
// average, in bursts of up to Burst.
type RateLimit struct {
	PerSecond float64 `json:"per_second" validate:"gte=0"`
	Burst     int     `json:"burst,omitempty" validate:"gte=0"`
}

// DefaultTokenLifetime is how long issued access tokens last unless the
// auth file says otherwise: five minutes, as SMART Backend Services
// recommends.
const DefaultTokenLifetime = 5 * time.Minute

// Load reads and checks the auth file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth file: %w", err)
	}
	cfg, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("auth file %s: %w", path, err)
	}
	abs, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("auth file %s: %w", path, err)
	}
	cfg.dir = abs
	return cfg, nil
}

// Parse decodes and checks an auth file's content. Unknown fields are
// errors: a misspelt key in a security configuration must not be ignored.
func Parse(b []byte) (*Config, error) {
	var cfg Config
	if len(bytes.TrimSpace(b)) > 0 {
		if err := yaml.UnmarshalWithOptions(b, &cfg, yaml.DisallowUnknownField()); err != nil {
			return nil, errors.New(yaml.FormatError(err, false, true))
		}
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// Path resolves a path written in the auth file against its directory.
// URLs and absolute paths are returned as they are.
func (c *Config) Path(p string) string {
	if isURL(p) || filepath.IsAbs(p) || c.dir == "" {
		return p
	}
	return filepath.Join(c.dir, p)
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")
}

// check validates the struct tags, then what they cannot say.
func (c *Config) check() error {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		return name
	})
	if err := v.RegisterValidation("origin", isOrigin); err != nil {
		return err
	}
	err := v.Struct(c)
	var fieldErrs validator.ValidationErrors
	if errors.As(err, &fieldErrs) {
		errs := make([]error, len(fieldErrs))
		for i, fe := range fieldErrs {
			errs[i] = fmt.Errorf("%s: %v fails %s", strings.TrimPrefix(fe.Namespace(), "Config."), fe.Value(), describeTag(fe))
		}
		return errors.Join(errs...)
	} else if err != nil {
		return err
	}
	var errs []error
	issuers := map[string]bool{}
	for i, is := range c.Issuers {
		if issuers[is.Issuer] {
			errs = append(errs, fmt.Errorf("issuers[%d]: %s is listed twice", i, is.Issuer))
		}
		issuers[is.Issuer] = true
		if strings.HasPrefix(is.JWKS, "http://") {
			errs = append(errs, fmt.Errorf("issuers[%d].jwks: keys are fetched over https only", i))
		}
	}
	ids := map[string]bool{}
	for i, cl := range c.Clients {
		if ids[cl.ID] {
			errs = append(errs, fmt.Errorf("clients[%d]: client %s is listed twice", i, cl.ID))
		}
		ids[cl.ID] = true
		if strings.HasPrefix(cl.JWKS, "http://") {
			errs = append(errs, fmt.Errorf("clients[%d].jwks: keys are fetched over https only", i))
		}
		if _, err := clientScopes(cl.Scopes); err != nil {
			errs = append(errs, fmt.Errorf("clients[%d].scopes: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// clientScopes parses the scopes a backend-services client is registered
// for: system/ resource scopes only.
func clientScopes(list []string) ([]access.Scope, error) {
	scopes, other, err := access.ParseScopeList(list)
	if err != nil {
		return nil, err
	}
	if len(other) > 0 {
		return nil, fmt.Errorf("%q is not a resource scope such as system/Patient.rs", other[0])
	}
	for _, s := range scopes {
		if s.Context != access.SystemContext {
			return nil, fmt.Errorf("%s: a backend-services client is granted system/ scopes only", s.Raw)
		}
	}
	return scopes, nil
}

func describeTag(fe validator.FieldError) string {
	switch fe.Tag() {
	case "required":
		return "required: it must be given"
	case "http_url":
		return "http_url: want an absolute http or https URL"
	case "origin":
		return "origin: want scheme://host[:port], such as https://app.example.nhs.uk, or *"
	case "oneof":
		return "oneof: want one of " + strings.ReplaceAll(fe.Param(), " ", ", ")
	case "gte":
		return "gte=" + fe.Param() + ": want at least " + fe.Param()
	case "lte":
		return "lte=" + fe.Param() + ": want at most " + fe.Param()
	}
	if fe.Param() != "" {
		return fe.Tag() + "=" + fe.Param()
	}
	return fe.Tag()
}

// isOrigin accepts a web origin as browsers send it in the Origin header,
// or "*".
func isOrigin(fl validator.FieldLevel) bool {
	s := fl.Field().String()
	if s == "*" {
		return true
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" &&
		u.Path == "" && u.RawQuery == "" && u.Fragment == "" && u.User == nil
}
