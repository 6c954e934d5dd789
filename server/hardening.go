package server

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"carefhir/server/access"
)

// securityHeaders sets the headers that keep browsers from misreading or
// framing API responses, and, under TLS, from ever using plain HTTP again.
func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	// The names are written in their canonical form, so that no request
	// pays for canonicalising them; the values are shared and never
	// changed (their capacity is their length: an Add copies them).
	h["X-Content-Type-Options"] = nosniff
	h["X-Frame-Options"] = denyFraming
	h["Content-Security-Policy"] = noContent
	h["Referrer-Policy"] = noReferrer
	if c.Request.TLS != nil {
		h["Strict-Transport-Security"] = httpsOnly
	}
	c.Next()
}

var (
	nosniff     = []string{"nosniff"}
	denyFraming = []string{"DENY"}
	noContent   = []string{"default-src 'none'; frame-ancestors 'none'"}
	noReferrer  = []string{"no-referrer"}
	httpsOnly   = []string{"max-age=63072000"}
)

// corsAllowedHeaders are the request headers a browser app may send.
const corsAllowedHeaders = "Authorization, Content-Type, Accept, If-Match, If-None-Match, If-None-Exist, " +
	"If-Modified-Since, If-Unmodified-Since, Prefer, X-Request-Id, X-Provenance"

// corsExposedHeaders are the response headers a browser app may read.
const corsExposedHeaders = "Location, Content-Location, ETag, Last-Modified, X-Request-Id, WWW-Authenticate, Retry-After"

// cors lets the browser apps of origins call the API (the Fetch
// standard's CORS protocol). It answers preflight requests itself, before
// authentication: browsers send them without the Authorization header.
// Requests from other origins get no CORS headers, so browsers withhold
// the responses from the page.
func cors(origins []string) gin.HandlerFunc {
	if len(origins) == 0 {
		return func(c *gin.Context) { c.Next() }
	}
	anyOrigin := slices.Contains(origins, "*")
	return func(c *gin.Context) {
		origin := c.GetHeader("Origin")
		c.Writer.Header().Add("Vary", "Origin")
		if origin == "" || !anyOrigin && !slices.Contains(origins, origin) {
			c.Next()
			return
		}
		h := c.Writer.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		if c.Request.Method == http.MethodOptions && c.GetHeader("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE")
			h.Set("Access-Control-Allow-Headers", corsAllowedHeaders)
			h.Set("Access-Control-Max-Age", "600")
			c.AbortWithStatus(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", corsExposedHeaders)
		c.Next()
	}
}

// RateLimit is a token bucket per client: PerSecond requests a second on
// average, in bursts of up to Burst. Zero PerSecond: no limit.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// limiter holds each client of the API, and of the token endpoint, to the
// rate limit: a client is its token's client_id, else its subject, else
// (open servers, anonymous requests, refused tokens) its address. Beyond
// it requests get 429 with Retry-After.
type limiter struct {
	limit   RateLimit
	buckets *buckets // nil: no limit
}

func newLimiter(limit RateLimit) *limiter {
	l := &limiter{limit: limit}
	if limit.PerSecond > 0 {
		l.buckets = newBuckets(limit, time.Now)
	}
	return l
}

// throttle spends a request of p's bucket, and reports whether the
// request is beyond the limit, refused with the 429 recorded on c.
func (l *limiter) throttle(c *gin.Context, p *access.Principal) bool {
	if l.buckets == nil {
		return false
	}
	path := c.Request.URL.Path
	if !strings.HasPrefix(path, "/fhir") && !strings.HasPrefix(path, "/auth/") {
		return false
	}
	wait, ok := l.buckets.take(rateKey(p))
	if ok {
		return false
	}
	e := errorf(http.StatusTooManyRequests, "throttled", "too many requests: at most %g a second are served to each client; retry after %d s",
		l.limit.PerSecond, wait)
	e.Header = http.Header{"Retry-After": {fmt.Sprint(wait)}}
	c.Error(e)
	c.Abort()
	return true
}

// rateLimit holds the requests authenticate let through to the limit of
// their client; those it refused it held to their address's limit itself.
func (l *limiter) rateLimit(c *gin.Context) {
	if l.buckets == nil || !l.throttle(c, access.PrincipalFrom(c.Request.Context())) {
		c.Next()
	}
}

// rateKey names the bucket of a request's principal.
func rateKey(p *access.Principal) string {
	switch {
	case p == nil:
		return "address:"
	case p.ClientID != "":
		return "client:" + p.Issuer + "\x00" + p.ClientID
	case p.Subject != "":
		return "subject:" + p.Issuer + "\x00" + p.Subject
	}
	return "address:" + p.Address
}

// buckets are the token buckets of the clients seen recently. Buckets
// idle long enough to be full again are dropped, so the map holds only
// the clients of the last minutes.
type buckets struct {
	limit     RateLimit
	now       func() time.Time
	mu        sync.Mutex
	byKey     map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	used time.Time
}

func newBuckets(limit RateLimit, now func() time.Time) *buckets {
	if limit.Burst <= 0 {
		limit.Burst = max(1, int(math.Ceil(limit.PerSecond)))
	}
	return &buckets{limit: limit, now: now, byKey: map[string]*bucket{}, lastSweep: now()}
}

// take spends a token of key's bucket. Without one it reports how many
// whole seconds to wait for the next.
func (bs *buckets) take(key string) (waitSeconds int, ok bool) {
	now := bs.now()
	bs.mu.Lock()
	b, found := bs.byKey[key]
	if !found {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(bs.limit.PerSecond), bs.limit.Burst)}
		bs.byKey[key] = b
	}
	b.used = now
	// A bucket idle this long has refilled: dropping it loses nothing.
	idle := time.Duration(float64(bs.limit.Burst)/bs.limit.PerSecond*float64(time.Second)) + time.Minute
	if now.Sub(bs.lastSweep) > time.Minute {
		for k, other := range bs.byKey {
			if now.Sub(other.used) > idle {
				delete(bs.byKey, k)
			}
		}
		bs.lastSweep = now
	}
	bs.mu.Unlock()
	if b.lim.AllowN(now, 1) {
		return 0, true
	}
	r := b.lim.ReserveN(now, 1)
	delay := r.DelayFrom(now)
	r.CancelAt(now)
	return max(1, int(math.Ceil(delay.Seconds()))), false
}
