package server

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"carefhir/fhir/search"
	"carefhir/server/access"
	"carefhir/store"
)

// audited begins the access state of every request under /fhir: the
// interaction it performs, which decides the permission each read and
// write below needs, and the Record of what it touches. After the request
// it hands the request's AuditEvent to the auditor, whatever the outcome:
// refused, failed and successful requests are all audited.
func (a *api) audited(c *gin.Context) {
	path := c.Request.URL.Path
	if path != "/fhir" && !strings.HasPrefix(path, "/fhir/") {
		c.Next()
		return
	}
	ev := interactionOf(c.Request.Method, path)
	st := stateOf(c)
	rec := st.access.Begin(ev.Interaction, a.cfg.Auditor == nil)
	ev.Recorded = st.start
	ev.Record = rec
	ev.RequestID = requestIDOf(c)
	if strings.HasPrefix(string(ev.Interaction), "search") {
		ev.Query = auditQuery(c.Request.URL.RawQuery)
	}
	st.trailWrite = access.ReadOnly(ev.Type) && ev.Interaction.Action() != "R" && ev.Interaction != access.InteractionOperation
	c.Next()
	if a.cfg.Auditor == nil {
		rec.Discard()
		return
	}
	ev.Principal = access.PrincipalFrom(c.Request.Context())
	// The connection's address, as authenticate takes it: Gin's ClientIP
	// would believe an X-Forwarded-For any client can write.
	ev.Address = clientAddress(c.Request)
	ev.Status = c.Writer.Status()
	if i := rec.Interaction(); i != "" {
		ev.Interaction = i
	}
	if q := rec.Query(); q != "" {
		ev.Query = auditQuery(q)
	}
	a.cfg.Auditor.Add(ev)
}

// auditQuery is the query string of a search as the trail records it:
// without an access token a client put there (refused by authenticate,
// and audited all the same), which every reader of the trail would see.
func auditQuery(raw string) string {
	if raw == "" {
		return raw
	}
	q, err := parseQuery(raw)
	switch {
	case err != nil:
		// Refused by checkQuery; what it holds cannot be told apart.
		return ""
	case !hasTokenParam(q):
		return raw
	}
	q.Del(tokenParam)
	return q.Encode()
}

// refuseTrailWrites answers 405 to a request that would create, update,
// patch or delete an AuditEvent, before its body is read. It runs after
// authentication, so that an attempt to change the trail is answered 401
// without a valid token, like any request, and is attributed to its agent
// in the trail it would have changed.
func (a *api) refuseTrailWrites(c *gin.Context) {
	if !stateOf(c).trailWrite {
		c.Next()
		return
	}
	err := errorf(http.StatusMethodNotAllowed, "not-supported", "AuditEvent resources are written by the server alone: the audit trail is read-only")
	err.Header = a.allowHeader(c)
	c.Error(err)
	c.Abort()
}

// interactionOf names the interaction a request under /fhir performs, and
// what it addresses, from its method and path alone. A Bundle posted to
// the base is a batch until it is read (see bundle).
func interactionOf(method, path string) *access.Event {
	rest := strings.Trim(strings.TrimPrefix(path, "/fhir"), "/")
	// The segments in an array on the stack, as every request names its
	// interaction; a path of more than four (which no route serves) is
	// split as it is.
	var seg [4]string
	segs := seg[:0]
	for s, more := rest, rest != ""; more; {
		if len(segs) == len(seg) {
			segs = strings.Split(rest, "/")
			break
		}
		var part string
		part, s, more = strings.Cut(s, "/")
		segs = append(segs, part)
	}
	ev := &access.Event{}
	if n := len(segs); n > 0 && strings.HasPrefix(segs[n-1], "$") {
		ev.Interaction = access.InteractionOperation
		ev.Operation = strings.TrimPrefix(segs[n-1], "$")
		if n >= 2 {
			ev.Type = segs[0]
		}
		if n == 3 || n == 5 && segs[2] == "_history" {
			ev.ID = segs[1] // on an instance, or a version of it
		}
		return ev
	}
	read := method == http.MethodGet || method == http.MethodHead
	switch len(segs) {
	case 0:
		ev.Interaction = access.InteractionBatch
		if read {
			ev.Interaction = access.InteractionSearchSystem
		}
		return ev
	case 1:
		switch segs[0] {
		case "metadata":
			ev.Interaction = access.InteractionCapabilities
			return ev
		case "_history":
			ev.Interaction = access.InteractionHistorySystem
			return ev
		case "_search":
			ev.Interaction = access.InteractionSearchSystem
			return ev
		}
		ev.Type = segs[0]
		ev.Interaction = writeInteraction(method, access.InteractionSearchType)
		return ev
	}
	ev.Type = segs[0]
	switch {
	case len(segs) == 2 && segs[1] == "_history":
		ev.Interaction = access.InteractionHistoryType
	case len(segs) == 2 && segs[1] == "_search":
		ev.Interaction = access.InteractionSearchType
	case len(segs) == 2:
		ev.ID = segs[1]
		ev.Interaction = writeInteraction(method, access.InteractionRead)
	case len(segs) == 3 && segs[2] == "_history":
		ev.ID = segs[1]
		ev.Interaction = access.InteractionHistoryInstance
	case len(segs) == 4 && segs[2] == "_history":
		ev.ID = segs[1]
		ev.Interaction = access.InteractionVRead
	default: // a compartment search, Patient/{id}/{type}
		ev.ID = segs[1]
		ev.Interaction = access.InteractionSearchType
	}
	return ev
}

// writeInteraction names the interaction of a method on a type or an
// instance; read is the interaction of GET and HEAD there.
func writeInteraction(method string, read access.Interaction) access.Interaction {
	switch method {
	case http.MethodPost:
		return access.InteractionCreate
	case http.MethodPut:
		return access.InteractionUpdate
	case http.MethodPatch:
		return access.InteractionPatch
	case http.MethodDelete:
		return access.InteractionDelete
	}
	return read
}

// scopeRestriction compiles the search restriction of a SMART v2 scope
// (patient/Observation.rs?category=laboratory) with the server's own
// search definitions, strictly: a restriction the server cannot apply
// refuses the scope rather than widening it. So does one with a parameter
// that selects nothing (_count, _elements, _sort, ...): it shapes a
// search's answer, which a restriction cannot, and would otherwise leave
// the scope granting every resource, whole.
func scopeRestriction(r *search.Registry) func(typ string, q url.Values) ([]store.Clause, error) {
	return func(typ string, q url.Values) ([]store.Clause, error) {
		for _, name := range slices.Sorted(maps.Keys(q)) {
			plan, err := r.Parse(typ, url.Values{name: q[name]}, search.Options{Strict: true})
			if err != nil {
				return nil, err
			}
			if len(plan.Query.Where) == 0 {
				return nil, fmt.Errorf("%s selects no resources: a restriction holds search criteria alone", name)
			}
		}
		plan, err := r.Parse(typ, q, search.Options{Strict: true})
		if err != nil {
			return nil, err
		}
		return plan.Query.Where, nil
	}
}
