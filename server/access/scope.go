package access

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Perm is a set of the interactions a scope allows, as SMART App Launch 2.0
// spells them: c(reate), r(ead), u(pdate), d(elete), s(earch).
type Perm uint8

// The permissions, in the order SMART v2 requires their letters.
const (
	Create Perm = 1 << iota
	Read
	Update
	Delete
	Search
)

// AllPerms is every permission: SMART v1 ".*", v2 ".cruds".
const AllPerms = Create | Read | Update | Delete | Search

const permLetters = "cruds"

// String writes p as SMART v2 letters, such as "rs".
func (p Perm) String() string {
	var b strings.Builder
	for i := range len(permLetters) {
		if p&(1<<i) != 0 {
			b.WriteByte(permLetters[i])
		}
	}
	return b.String()
}

// Context is whose data a scope reaches: one patient's (patient/), what
// the user may see (user/), or what a machine client may (system/).
type Context string

// The scope contexts.
const (
	PatientContext Context = "patient"
	UserContext    Context = "user"
	SystemContext  Context = "system"
)

// Scope is one SMART resource scope, such as patient/Observation.rs or
// system/*.read.
type Scope struct {
	Context Context
	Type    string // a resource type, or "*" for every type
	Perms   Perm
	// Query restricts the scope to resources matching these search
	// parameters (SMART v2 "patient/Observation.rs?category=laboratory");
	// empty when unrestricted.
	Query url.Values
	// Raw is the scope as granted, for error messages and audit.
	Raw string
}

// String returns the scope as it was written.
func (s Scope) String() string { return s.Raw }

// Covers reports whether s reaches resources of typ.
func (s Scope) Covers(typ string) bool { return s.Type == "*" || s.Type == typ }

// ParseScope parses one scope. Scopes that grant no resource access
// (openid, fhirUser, launch, launch/patient, offline_access, online_access)
// return ok false and no error: they are valid but not for this server to
// enforce. A scope that looks like a resource scope but is malformed is an
// error.
func ParseScope(raw string) (s Scope, ok bool, err error) {
	ctx, rest, found := strings.Cut(raw, "/")
	switch Context(ctx) {
	case PatientContext, UserContext, SystemContext:
	default:
		return Scope{}, false, nil
	}
	if !found || rest == "" {
		return Scope{}, false, fmt.Errorf("scope %q: no resource type after %q", raw, ctx+"/")
	}
	typAndPerms, query, hasQuery := strings.Cut(rest, "?")
	typ, perms, found := strings.Cut(typAndPerms, ".")
	if !found {
		return Scope{}, false, fmt.Errorf("scope %q: no permissions after the resource type (such as .read or .rs)", raw)
	}
	if typ != "*" && !isTypeName(typ) {
		return Scope{}, false, fmt.Errorf("scope %q: %q is not a resource type", raw, typ)
	}
	s = Scope{Context: Context(ctx), Type: typ, Raw: raw}
	if s.Perms, err = parsePerms(perms); err != nil {
		return Scope{}, false, fmt.Errorf("scope %q: %w", raw, err)
	}
	if hasQuery {
		q, err := url.ParseQuery(query)
		if err != nil || len(q) == 0 {
			return Scope{}, false, fmt.Errorf("scope %q: the restriction after ? is not a search query", raw)
		}
		s.Query = q
	}
	return s, true, nil
}

// parsePerms reads SMART v1 (read, write, *) or v2 (letters of cruds, in
// that order, each at most once) permissions.
func parsePerms(p string) (Perm, error) {
	switch p {
	case "read":
		return Read | Search, nil
	case "write":
		return Create | Update | Delete, nil
	case "*":
		return AllPerms, nil
	case "":
		return 0, fmt.Errorf("no permissions")
	}
	var perms Perm
	next := 0
	for i := range len(p) {
		at := strings.IndexByte(permLetters[next:], p[i])
		if at < 0 {
			return 0, fmt.Errorf("permissions %q are not read, write, * or letters of %q in that order", p, permLetters)
		}
		next += at + 1
		perms |= 1 << (next - 1)
	}
	return perms, nil
}

// isTypeName reports whether s could be a FHIR resource type name: a
// capital letter, then letters and digits.
func isTypeName(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' || len(s) > 64 {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ParseScopes parses a space-separated scope list, as in an access token's
// scope claim or a token request. It returns the resource scopes and the
// others (openid, launch/patient, ...) as written; a malformed resource
// scope is an error.
func ParseScopes(list string) (resource []Scope, other []string, err error) {
	return parseScopeList(strings.Fields(list))
}

// ParseScopeList is ParseScopes for scopes already split, as in a token's
// scp claim.
func ParseScopeList(list []string) (resource []Scope, other []string, err error) {
	return parseScopeList(list)
}

func parseScopeList(list []string) (resource []Scope, other []string, err error) {
	const maxScopes = 256
	if len(list) > maxScopes {
		return nil, nil, fmt.Errorf("%d scopes: at most %d are accepted", len(list), maxScopes)
	}
	for _, raw := range list {
		s, ok, err := ParseScope(raw)
		switch {
		case err != nil:
			return nil, nil, err
		case ok:
			resource = append(resource, s)
		default:
			other = append(other, raw)
		}
	}
	return resource, other, nil
}

// Within returns the part of requested that allowed grants: of each
// requested scope, what each allowed scope of its context grants of it
// (the types both cover, the permissions both give, the restriction of
// either, or of both when they are the same), those of one type and
// restriction joined. A wildcard asked for (system/*.rs) is so granted
// as the types allowed. It is how a token endpoint grants the
// intersection of what a client asks for and what it is registered for.
func Within(requested, allowed []Scope) []Scope {
	var granted []Scope
	for _, r := range requested {
		var parts []Scope
		for _, a := range allowed {
			g, ok := intersect(r, a)
			if !ok {
				continue
			}
			i := slices.IndexFunc(parts, func(p Scope) bool { return p.Type == g.Type && sameQuery(p.Query, g.Query) })
			if i < 0 {
				parts = append(parts, g)
				continue
			}
			parts[i].Perms |= g.Perms
		}
		for _, g := range parts {
			if g.Type != r.Type || g.Perms != r.Perms || !sameQuery(g.Query, r.Query) {
				g.Raw = formatScope(g)
			}
			if slices.ContainsFunc(granted, func(e Scope) bool { return e.Raw == g.Raw }) {
				// Granted already, as system/Patient.rs is when asked
				// for besides system/*.rs: written once. A scope that
				// grants less than one granted (system/Patient.r) is
				// still granted as it was asked for.
				continue
			}
			granted = append(granted, g)
		}
	}
	return granted
}

// intersect returns what allowed scope a grants of requested scope r;
// ok false when nothing.
func intersect(r, a Scope) (g Scope, ok bool) {
	if r.Context != a.Context {
		return Scope{}, false
	}
	g = r
	switch {
	case a.Type == r.Type || a.Type == "*":
	case r.Type == "*":
		g.Type = a.Type
	default:
		return Scope{}, false
	}
	switch {
	case len(a.Query) == 0:
	case len(r.Query) == 0:
		g.Query = a.Query
	case !sameQuery(a.Query, r.Query):
		return Scope{}, false
	}
	g.Perms = r.Perms & a.Perms
	return g, g.Perms != 0
}

func sameQuery(a, b url.Values) bool { return a.Encode() == b.Encode() }

// formatScope writes s in SMART v2 form.
func formatScope(s Scope) string {
	raw := string(s.Context) + "/" + s.Type + "." + s.Perms.String()
	if len(s.Query) > 0 {
		raw += "?" + s.Query.Encode()
	}
	return raw
}

// Reaches reports whether p reaches, of typ with perm, everything had
// reached: each scope of had granting perm on typ is matched by one of p
// of the same context granting perm on typ, unrestricted or with the same
// restriction, for the same patient (patient/) or the same user acting for
// the same organisation (user/). It is how work done under one token (the
// files of a bulk export) is given only to a later token allowed at least
// as much, when the two are of one client whose scopes may have narrowed.
func (p *Principal) Reaches(had *Principal, typ string, perm Perm) bool {
	switch {
	case p.unrestricted():
		return true
	case had.unrestricted():
		return false
	}
	for _, h := range had.Scopes {
		if h.Perms&perm == 0 || !h.Covers(typ) {
			continue
		}
		if !slices.ContainsFunc(p.Scopes, func(s Scope) bool {
			return s.Context == h.Context && s.Perms&perm != 0 && s.Covers(typ) &&
				(len(s.Query) == 0 || sameQuery(s.Query, h.Query)) && p.sameParty(had, s.Context)
		}) {
			return false
		}
	}
	return true
}

// sameParty reports whether scopes of context reach the same records for
// p as for other: a patient/ scope is of the patient in context, a user/
// scope of the user and the organisation they act for.
func (p *Principal) sameParty(other *Principal, context Context) bool {
	switch context {
	case PatientContext:
		return p.Patient == other.Patient
	case UserContext:
		return p.FHIRUser == other.FHIRUser && p.Organization == other.Organization
	}
	return true
}
