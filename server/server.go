// Package server is carefhir's FHIR R4 REST API: Gin handlers under /fhir
// that parse, hand the work to the interaction logic and render FHIR
// responses. Every error a client sees is an OperationOutcome with the
// status the FHIR specification gives it.
package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"carefhir/care/calendar"
	"carefhir/fhir/search"
	ext "carefhir/operation"
	"carefhir/profiles/conformance"
	"carefhir/server/access"
	"carefhir/store"
)

// Config is what the API needs from its host.
type Config struct {
	Store store.Store
	// BaseURL is the public base of the API including /fhir, such as
	// http://127.0.0.1:8080/fhir. Empty: derived from each request's Host.
	BaseURL string
	// MaxBodyBytes bounds request bodies (413 beyond it); 0 means 10 MiB.
	MaxBodyBytes int64
	// Logger receives one line per request; nil discards.
	Logger *slog.Logger
	// SoftwareVersion is reported in the CapabilityStatement.
	SoftwareVersion string
	// Validator, when set, serves $validate; with ValidateWrites it also
	// checks every create and update, refusing invalid resources with 422.
	// Its terminology, when it has one (a *profiles.Validator does), answers
	// the search modifiers :in, :not-in, :above and :below on tokens.
	Validator      Validator
	ValidateWrites bool
	// RequiredProfiles lists, by resource type, the canonical URLs of the
	// profiles every resource of that type must conform to, such as
	// "Patient": {UKCore-Patient}. They are enforced with ValidateWrites, on
	// every write and by $validate; the host checks that the Validator knows
	// them.
	RequiredProfiles map[string][]string
	// Definitions, when set, are the conformance resources bundled with the
	// server, served read-only beside the stored StructureDefinitions,
	// ValueSets and CodeSystems (see definitions.go). The Validator's
	// terminology also answers ValueSet/$expand, ValueSet/$validate-code
	// and CodeSystem/$lookup (see terminology_ops.go).
	Definitions *conformance.Catalogue
	// SearchParameters are the host's own search parameters (JSON
	// SearchParameters, such as care coordination's), searched by beside
	// the official ones. Every server and indexer (NewIndexer) of one store
	// must be given the same: what one leaves out is missing from the
	// search values it writes. The host serves them among its Definitions.
	SearchParameters [][]byte
	// AccessPolicy is how user/ scopes are narrowed (access.ScopesPolicy
	// when empty; access.CareTeamPolicy for the legitimate-relationship
	// rule).
	AccessPolicy access.Policy
	// Auditor, when set, receives the AuditEvent of every request under
	// /fhir; the host closes it after the server stops serving.
	Auditor *access.Auditor
	// Auth, when set, requires a valid bearer token on the FHIR API and
	// serves the token endpoint and SMART configuration (authenticate.go).
	// Without it every request acts for the open principal.
	Auth Auth
	// CORSOrigins are the origins of the browser apps allowed to call the
	// API; "*" allows any (hardening.go).
	CORSOrigins []string
	// RateLimit bounds the requests of each client (hardening.go).
	RateLimit RateLimit
	// Operations are served beside the server's own (see extend.go), and
	// Hooks run on every write of their types, in its unit of work (see
	// hooks.go): how the host adds what its mission packages provide.
	Operations []ext.Operation
	Hooks      []ext.Hook
	// Routes are plain HTTP endpoints beside the FHIR API, behind its
	// authentication and audit (see routes.go); Attach are given, once the
	// API is built, the store of operations for work done outside any
	// request (delivering notifications, running exports, reminders): each
	// call's context needs an access principal (access.Begin and
	// access.WithPrincipal, such as access.SystemPrincipal).
	Routes []Route
	Attach []func(ext.Store)
	// Limits bound what one request may cost; zero fields take their
	// defaults (see limits.go and docs/limits.md).
	Limits Limits
	// Writes keeps the writes under way, which a history's
	// meta.lastUpdated stays before, so that a client polling _since it
	// misses none (history.go); nil: the server keeps its own. The host
	// shares one with the Auditor, which writes AuditEvents in batches.
	Writes *store.InFlight
	// HistorySettle is the longest a write of another process sharing the
	// database may take from its lastUpdated to its commit, which a
	// history's meta.lastUpdated stays before too: 0 when no other
	// process writes (SQLite).
	HistorySettle time.Duration
	// FHIRPathNow is the clock of FHIRPath's now(), today() and
	// timeOfDay() in the paths of a FHIRPath Patch and in the expressions
	// of search parameters (SearchParameters); nil means time.Now.
	// FHIRPathZone is where they are reckoned; nil means Europe/London
	// (calendar.UK), where the validator (profiles.Options) and care
	// coordination reckon today's date, whatever the zone of the host.
	FHIRPathNow  func() time.Time
	FHIRPathZone *time.Location
}

// DefaultMaxBodyBytes is the request body limit when Config leaves it unset.
const DefaultMaxBodyBytes = 10 << 20

// api carries the dependencies of the handlers.
type api struct {
	svc   *service
	guard *access.Store // the store behind access decisions, as svc holds it
	// capsCache holds the CapabilityStatement once built (capabilities.go).
	capsCache statementCache
	// termCapsCache holds the TerminologyCapabilities once built.
	termCapsCache statementCache
	cfg           Config
	started       time.Time
	caps          *capabilities
	search        *search.Registry
	terms         search.Terminology // the bundled terminology, nil without a validator
	// operations are the $operations served, by name (see operations.go).
	operations map[string]operation
	// fhirpathClock gives FHIRPath's now() in the zone of Config.FHIRPathZone.
	fhirpathClock func() time.Time
	// defs serves the bundled definitions (definitions.go), nil without.
	defs *definitions
}

// New returns the HTTP handler of the FHIR API, rooted at /fhir.
func New(cfg Config) http.Handler {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Writes == nil {
		cfg.Writes = &store.InFlight{}
	}
	fhirpathClock := calendar.Clock(cfg.FHIRPathNow, cfg.FHIRPathZone)
	index, err := newIndexer(cfg.BaseURL, fhirpathClock, cfg.SearchParameters...)
	if err != nil {
		// The definitions are embedded in the binary and tested to load;
		// the host's are its own, installed with them.
		panic(fmt.Sprintf("server: %v", err))
	}
	terms := searchTerminology(cfg.Validator)
	registry := index.Registry().WithTerminology(terms)
	guarded := access.NewStore(cfg.Store, access.Rules{
		Policy:      cfg.AccessPolicy,
		Search:      registry,
		Restriction: scopeRestriction(registry),
		Index:       index.IndexJSON,
		Types:       servedTypes,
	})
	a := &api{
		guard:         guarded,
		svc:           &service{store: guarded, index: index, now: time.Now, hooks: cfg.Hooks, hold: cfg.Limits.UnitOfWork, writes: cfg.Writes},
		cfg:           cfg,
		started:       time.Now().UTC(),
		caps:          newCapabilities(),
		search:        registry,
		terms:         terms,
		fhirpathClock: fhirpathClock,
	}
	a.svc.validate = a.validateWrite
	a.svc.bind = func(tx store.Tx) ext.Store { return &opStore{a: a, tx: tx, ends: a.svc.unitEnds(tx)} }
	limit := newLimiter(cfg.RateLimit)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	r.RemoveExtraSlash = false
	// The deadline encloses the rendering of errors, which tells a
	// stopped query from a failed one by the context.
	r.Use(beginRequest(cfg.Limits.Deadline), a.trackWrites(cfg.Writes), logRequests(cfg.Logger), a.audited, recoverOutcome, renderErrors,
		securityHeaders, cors(cfg.CORSOrigins), authenticate(cfg.Auth, cfg.Logger, limit), limit.rateLimit, a.refuseTrailWrites, collectWarnings,
		limitBody(cfg.MaxBodyBytes), decodeContent(cfg.MaxBodyBytes), takeTurns(cfg.Limits.LargeBodies), checkQuery, a.readProvenance)
	r.NoRoute(func(c *gin.Context) {
		c.Error(noEndpoint(c))
	})
	r.NoMethod(func(c *gin.Context) {
		// The router's Allow names the methods of every route matching
		// the path, some of which do not serve it (see allowedOn); the
		// host's routes keep it.
		if strings.HasPrefix(c.Request.URL.Path, "/fhir/") && !a.hostRoute(c.Request.URL.Path) {
			c.Error(a.notAllowed(c))
			return
		}
		c.Error(errorf(http.StatusMethodNotAllowed, "not-supported", "%s is not allowed on %s", c.Request.Method, c.Request.URL.Path))
	})
	a.registerAuth(r)
	fhir := r.Group("/fhir", negotiate)
	a.registerConformance(fhir)
	a.registerSystem(fhir)
	a.registerInstance(fhir)
	a.registerType(fhir)
	a.registerPatch(fhir)
	a.registerOperationRoutes(fhir)
	a.registerValidate()
	a.registerEverything()
	a.registerVersions()
	a.registerMeta(fhir)
	a.registerExtensions()
	a.registerSearch(fhir)
	a.registerBundle(fhir)
	a.registerRoutes(r)
	return literalSemicolons(trimTrailingSlash(r))
}

// literalSemicolons escapes each semicolon in the query string of a path
// under /fhir, so that it stays part of the value that holds it
// (_format=application/fhir+json;fhirVersion=4.0, an identifier a;b):
// RFC 3986 allows it in a query and FHIR gives it no meaning, where
// net/url would drop the parameter holding it. It runs before the router,
// so that every reader of the query sees it so.
func literalSemicolons(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.RawQuery, ";") || r.URL.Path != "/fhir" && !strings.HasPrefix(r.URL.Path, "/fhir/") {
			h.ServeHTTP(w, r)
			return
		}
		u := *r.URL
		u.RawQuery = escapeSemicolons(u.RawQuery)
		r2 := *r
		r2.URL = &u
		h.ServeHTTP(w, &r2)
	})
}

// escapeSemicolons writes each semicolon of a query string as %3B.
func escapeSemicolons(query string) string {
	return strings.ReplaceAll(query, ";", "%3B")
}

// parseQuery parses a query string as url.ParseQuery does, a semicolon
// being part of the value that holds it (see literalSemicolons): for the
// query strings a request carries elsewhere than in its URL
// (If-None-Exist, a Bundle entry's url, a form body).
func parseQuery(query string) (url.Values, error) {
	return url.ParseQuery(escapeSemicolons(query))
}

// trimTrailingSlash serves a path under /fhir ending in one slash as the
// path without it (GET /fhir/Patient/ searches Patients, GET
// /fhir/Patient/123/ reads one), as HAPI FHIR and clients that join a base
// and a path expect. It runs before the router, so that routing, access
// decisions, the audit trail and the links of the answer all see the one
// path; the base itself, /fhir/, is served as it is.
func trimTrailingSlash(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if len(p) <= len("/fhir/") || !strings.HasPrefix(p, "/fhir/") || !strings.HasSuffix(p, "/") {
			h.ServeHTTP(w, r)
			return
		}
		u := *r.URL
		u.Path = strings.TrimSuffix(p, "/")
		u.RawPath = strings.TrimSuffix(u.RawPath, "/")
		r2 := *r
		r2.URL = &u
		h.ServeHTTP(w, &r2)
	})
}
