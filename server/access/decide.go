package access

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"carefhir/store"
)

// Interaction is the FHIR RESTful interaction a request (or one entry of a
// batch or transaction) performs. It decides which permission a read or a
// search below it needs: reading the current version of a resource to
// update it needs the update permission, not the read one.
type Interaction string

// The interactions, named as in the FHIR R4 CapabilityStatement.
const (
	InteractionRead            Interaction = "read"
	InteractionVRead           Interaction = "vread"
	InteractionSearchType      Interaction = "search-type"
	InteractionSearchSystem    Interaction = "search-system"
	InteractionHistoryInstance Interaction = "history-instance"
	InteractionHistoryType     Interaction = "history-type"
	InteractionHistorySystem   Interaction = "history-system"
	InteractionCreate          Interaction = "create"
	InteractionUpdate          Interaction = "update"
	InteractionPatch           Interaction = "patch"
	InteractionDelete          Interaction = "delete"
	InteractionBatch           Interaction = "batch"
	InteractionTransaction     Interaction = "transaction"
	InteractionCapabilities    Interaction = "capabilities"
	InteractionOperation       Interaction = "operation"
)

// Action is the AuditEvent action of the interaction: C, R, U, D or E.
func (i Interaction) Action() string {
	switch i {
	case InteractionCreate:
		return "C"
	case InteractionUpdate, InteractionPatch:
		return "U"
	case InteractionDelete:
		return "D"
	case InteractionBatch, InteractionTransaction, InteractionOperation:
		return "E"
	}
	return "R"
}

type interactionKey struct{}

// WithInteraction returns ctx performing interaction i.
func WithInteraction(ctx context.Context, i Interaction) context.Context {
	return context.WithValue(ctx, interactionKey{}, i)
}

// InteractionFrom returns the interaction ctx performs ("" when unknown).
func InteractionFrom(ctx context.Context) Interaction {
	i, _ := ctx.Value(interactionKey{}).(Interaction)
	return i
}

// Denied is a request the principal may not make. Status is 403, or 405
// for a write to the read-only audit trail; a resource outside the
// principal's reach is store.ErrNotFound instead, so that the answer does
// not reveal that it exists.
type Denied struct {
	Status  int
	Message string
}

func (d *Denied) Error() string { return d.Message }

func forbidden(format string, args ...any) *Denied {
	return &Denied{Status: http.StatusForbidden, Message: fmt.Sprintf(format, args...)}
}

// Policy is how user/ scopes are narrowed.
type Policy string

// The policies.
const (
	// ScopesPolicy: a user/ scope reaches every resource of its type.
	ScopesPolicy Policy = "scopes"
	// CareTeamPolicy: a user/ scope of a Practitioner reaches only the
	// records of patients they have a legitimate relationship with: those
	// whose active CareTeam they (or one of their PractitionerRoles) take
	// part in now, and those registered at the organisation of their token.
	CareTeamPolicy Policy = "care-team"
)

// Definitions is how the access layer reads the search definitions of the
// server: compiling a scope's restriction and finding the Patient
// compartment. *search.Registry has these methods.
type Definitions interface {
	// Compartment returns the clause keeping resources of typ in the
	// compartment of Patient id; ok false when typ has no compartment.
	Compartment(typ, id string) (store.Clause, bool)
	// CompartmentParams names the parameters of typ that place its
	// resources in a Patient's compartment.
	CompartmentParams(typ string) []string
}

// Rules are what decisions are made with.
type Rules struct {
	Policy Policy
	Search Definitions
	// Restriction compiles the search restriction of a SMART v2 scope,
	// such as category=laboratory on Observation, into clauses.
	Restriction func(typ string, q url.Values) ([]store.Clause, error)
	// Index extracts the search values of a version, to decide about
	// versions the store is not asked to search: history, writes.
	Index func(typ string, body []byte) (store.Index, error)
	// Types are the resource types served: those a history of the
	// system holds.
	Types []string
	// Now is the clock deciding whether a part in a CareTeam is current;
	// nil means time.Now.
	Now func() time.Time
	// Zone is where the dates of a part's period are reckoned; nil
	// means Europe/London, the UK's dates.
	Zone *time.Location
}

// odsSystem is the identifier system of ODS organisation codes.
const odsSystem = "https://fhir.nhs.uk/Id/ods-organization-code"

// grant is what a principal may reach of one resource type with one
// permission: everything (all), or the resources matching every clause of
// one of its alternatives.
type grant struct {
	typ  string
	all  bool
	alts []alternative
}

// alternative is the reach of one scope: a compartment (patient context,
// or the patients of a care team) and the scope's own restriction.
type alternative struct {
	patient  string         // patient context: only this patient's compartment
	careTeam bool           // care-team policy: only related patients
	where    []store.Clause // the scope's restriction
	// securityContext: care-team policy, Binary: only Binaries whose
	// securityContext the principal may read, or that have none. The
	// engine does not index securityContext, so these are decided one by
	// one and cannot be searched.
	securityContext bool
	// entries: Bundle, for a principal who may not read every resource:
	// only Bundles each of whose resources they may read (see
	// entriesHold), decided one by one like securityContext.
	entries bool
}

// decider makes the decisions of one request.
type decider struct {
	rules *Rules
	p     *Principal

	mu sync.Mutex
	// first is the first grant made, for firstKey, and grants the others:
	// most requests need one, for which no map is made.
	first    *grant
	firstKey grantKey
	grants   map[grantKey]*grant
	patients map[string]bool // care-team decisions by patient id
	// lapsed are the active CareTeams naming the practitioner in which
	// their part is not current (see lapsedTeams), once a search needs
	// them; roles are the practitioner's PractitionerRoles, once a part
	// needs telling whose it is.
	lapsed *[]string
	roles  *[]store.ReferenceMatch
	// context is the Patient of the patient context as held here (nil
	// when it is not, a tombstone when it is deleted), once read (see
	// contextPatient), with contextIx its index once a list naming
	// patients by identifier needs it.
	contextRead bool
	context     *store.Version
	contextIx   *store.Index
}

type grantKey struct {
	typ  string
	perm Perm
}

// grant returns what p may reach of typ with perm, or a Denied error.
func (d *decider) grant(typ string, perm Perm) (*grant, error) {
	key := grantKey{typ, perm}
	d.mu.Lock()
	g, ok := d.first, d.first != nil && d.firstKey == key
	if !ok {
		g, ok = d.grants[key]
	}
	d.mu.Unlock()
	if ok {
		return g, nil
	}
	g, err := d.newGrant(typ, perm)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	switch {
	case d.first == nil:
		d.first, d.firstKey = g, key
	case d.firstKey != key:
		if d.grants == nil {
			d.grants = make(map[grantKey]*grant)
		}
		d.grants[key] = g
	}
	d.mu.Unlock()
	return g, nil
}

func (d *decider) newGrant(typ string, perm Perm) (*grant, error) {
	g := &grant{typ: typ}
	if d.p.unrestricted() {
		g.all = true
		return g, nil
	}
	inCompartment := len(d.rules.Search.CompartmentParams(typ)) > 0
	// refused explains a denial when the only scopes covering typ have
	// restrictions that cannot be applied to it.
	var refused *Denied
	for _, s := range d.p.Scopes {
		if s.Perms&perm == 0 || !s.Covers(typ) {
			continue
		}
		var alt alternative
		switch s.Context {
		case PatientContext:
			// A patient/ scope reaches one patient's compartment: without a
			// patient context, or for a type outside the compartment, it
			// reaches nothing.
			if d.p.Patient == "" || !inCompartment {
				continue
			}
			alt.patient = d.p.Patient
		case UserContext:
			if d.rules.Policy == CareTeamPolicy && inCompartment {
				if !strings.HasPrefix(d.p.FHIRUser, "Practitioner/") {
					continue
				}
				alt.careTeam = true
			}
			if d.rules.Policy == CareTeamPolicy && typ == "Binary" {
				alt.securityContext = true
			}
		}
		alt.entries = typ == "Bundle" && !d.readsEveryResource()
		if len(s.Query) > 0 {
			where, err := d.rules.Restriction(typ, s.Query)
			if err != nil {
				// This scope grants nothing of typ, never more than it
				// says; another scope may still grant it.
				if refused == nil {
					refused = forbidden("the restriction of scope %s cannot be applied: %v", s.Raw, err)
				}
				continue
			}
			alt.where = where
		}
		if alt.patient == "" && !alt.careTeam && alt.where == nil && !alt.securityContext && !alt.entries {
			g.all = true
			g.alts = nil
			return g, nil
		}
		g.alts = append(g.alts, alt)
	}
	if len(g.alts) == 0 {
		if refused != nil {
			return nil, refused
		}
		return nil, forbidden("the access token's scopes do not allow %s on %s", permName(perm), typ)
	}
	return g, nil
}

// oneByOne reports whether the resources g reaches can be decided only
// one by one, not searched: some alternative holds by a securityContext,
// or by the resources a Bundle holds.
func (g *grant) oneByOne() bool {
	return slices.ContainsFunc(g.alts, func(alt alternative) bool { return alt.securityContext || alt.entries })
}

// rule says what a version must be for g to reach it, for a write
// refused: each alternative's condition, any of which reaches it.
func (g *grant) rule() string {
	var rules []string
	for _, alt := range g.alts {
		var must []string
		switch {
		case alt.patient != "":
			must = append(must, "stay in the compartment of the token's patient, and of no other patient")
		case alt.careTeam:
			must = append(must, "stay in the compartments of patients the token's practitioner is related to, and of no other patient")
		}
		if len(alt.where) > 0 {
			must = append(must, "match the restriction of the token's scope on "+g.typ)
		}
		if alt.securityContext {
			must = append(must, "have a securityContext the token may read")
		}
		if alt.entries {
			must = append(must, "hold only resources the token may read")
		}
		if r := strings.Join(must, " and "); !slices.Contains(rules, r) {
			rules = append(rules, r)
		}
	}
	return strings.Join(rules, ", or ")
}

// readsEveryResource reports whether the principal may read every
// resource of every type: a user/ or system/ scope of every type without
// a restriction, a user/ one not narrowed by the care-team rule.
func (d *decider) readsEveryResource() bool {
	return slices.ContainsFunc(d.p.Scopes, func(s Scope) bool {
		return s.Type == "*" && s.Perms&Read != 0 && len(s.Query) == 0 &&
			(s.Context == SystemContext || s.Context == UserContext && d.rules.Policy != CareTeamPolicy)
	})
}

func permName(p Perm) string {
	switch p {
	case Create:
		return "create"
	case Read:
		return "read"
	case Update:
		return "update"
	case Delete:
		return "delete"
	case Search:
		return "search"
	}
	return p.String()
}

// clauses returns what a search of g.typ must add to its criteria to
// stay within the grant: nothing for a grant of everything, else one
// clause that holds when some alternative holds.
func (d *decider) clauses(ctx context.Context, r store.Reader, g *grant) ([]store.Clause, error) {
	if g.all {
		return nil, nil
	}
	if g.oneByOne() {
		by := "whose securityContext the access token may read"
		if g.typ == "Bundle" {
			by = "each of whose resources the access token may read"
		}
		return nil, forbidden("a search of %s cannot be narrowed to those %s: "+
			"read each %s by its id, as the resources that refer to it give it", g.typ, by, g.typ)
	}
	var alts [][]store.Clause
	for _, alt := range g.alts {
		var where []store.Clause
		switch {
		case alt.patient != "":
			deleted, err := d.contextDeleted(ctx, r)
			if err != nil {
				return nil, err
			}
			if deleted {
				where = append(where, nobody())
				break
			}
			where = append(where, d.compartment(g.typ, alt.patient))
		case alt.careTeam:
			c, err := d.careTeamClause(ctx, r, g.typ)
			if err != nil {
				return nil, err
			}
			where = append(where, c)
		}
		alts = append(alts, append(where, alt.where...))
	}
	if len(alts) == 1 {
		return alts[0], nil
	}
	// Several alternatives: a clause per alternative under one Any. Any
	// takes single clauses, so alternatives of several clauses share what
	// they have in common and differ in at most one clause.
	common := alts[0]
	for _, a := range alts[1:] {
		common = commonPrefix(common, a)
	}
	out := slices.Clone(common)
	var any []store.Clause
	for _, a := range alts {
		rest := a[len(common):]
		switch len(rest) {
		case 0:
			return out, nil // one alternative is the common part itself
		case 1:
			any = append(any, rest[0])
		default:
			return nil, forbidden("the access token's scopes on %s combine restrictions this server cannot apply together", g.typ)
		}
	}
	return append(out, store.Clause{Param: "_access", Any: any}), nil
}

// commonPrefix returns the clauses a and b begin with alike: those of the
// same compartment (compartment clauses are built the same way each time).
func commonPrefix(a, b []store.Clause) []store.Clause {
	n := 0
	for n < len(a) && n < len(b) && sameClause(a[n], b[n]) {
		n++
	}
	return a[:n]
}

func sameClause(a, b store.Clause) bool { return reflect.DeepEqual(a, b) }

// compartment is the clause keeping resources of typ in the compartment of
// Patient id, the Patient itself included.
func (d *decider) compartment(typ, id string) store.Clause {
	c, _ := d.rules.Search.Compartment(typ, id)
	if typ == "Patient" && !slices.ContainsFunc(c.Any, func(x store.Clause) bool { return x.Param == "_id" }) {
		c.Any = append([]store.Clause{idClause(id)}, c.Any...)
	}
	return c
}

// careTeamClause is the clause keeping resources of typ in the compartment
// of a patient the principal's practitioner has a legitimate relationship
// with.
func (d *decider) careTeamClause(ctx context.Context, r store.Reader, typ string) (store.Clause, error) {
	lapsed, err := d.allLapsedTeams(ctx, r)
	if err != nil {
		return store.Clause{}, err
	}
	related := d.relatedPatient(lapsed)
	if typ == "Patient" {
		return related, nil
	}
	// The compartment params of a type refer to the Patient; a Patient's
	// own (link) to other Patients, which carry their own relationship.
	c := store.Clause{Param: "_access"}
	params := d.rules.Search.CompartmentParams(typ)
	for _, p := range params {
		c.Any = append(c.Any, store.Clause{Param: p, Chain: &store.Chain{Types: []string{"Patient"}, Where: []store.Clause{related}}})
	}
	if listsMembers(typ) {
		// A list of no one (see careTeamHolds): none of the parameters
		// has a value, by reference or by identifier.
		named := store.Clause{Param: "_access"}
		for _, p := range params {
			named.Any = append(named.Any, store.Clause{Param: p, Presence: store.Present}, store.Clause{Param: p + ":identifier", Presence: store.Present})
		}
		named.Not = true
		c.Any = append(c.Any, named)
	}
	return c, nil
}

// relatedPatient is the clause selecting the Patients the principal's
// practitioner has a legitimate relationship with, but through the
// CareTeams lapsed (ids) in which their part is not current.
func (d *decider) relatedPatient(lapsed []string) store.Clause {
	team := d.teamsNamingPractitioner()
	if len(lapsed) > 0 {
		notLapsed := idClause(lapsed...)
		notLapsed.Not = true
		team = append(team, notLapsed)
	}
	related := store.Clause{Param: "_access", Any: []store.Clause{
		{Param: "_has", Has: &store.Has{Type: "CareTeam", Param: "subject", Where: team}},
	}}
	if d.p.Organization != "" {
		ods := []store.TokenMatch{{System: odsSystem, Code: d.p.Organization}}
		registered := []store.Clause{{Param: "identifier", Tokens: ods}}
		related.Any = append(related.Any,
			store.Clause{Param: "general-practitioner:identifier", Tokens: ods},
			store.Clause{Param: "organization", Chain: &store.Chain{Types: []string{"Organization"}, Where: registered}},
			store.Clause{Param: "general-practitioner", Chain: &store.Chain{Types: []string{"Organization"}, Where: registered}},
		)
	}
	return related
}

// reaches reports whether version v of a resource of g.typ (its JSON, or,
// for a write, its index) is within g. r is read from to decide about the
// resources v refers to.
func (d *decider) reaches(ctx context.Context, r store.Reader, g *grant, id string, lastUpdated time.Time, body []byte, ix *store.Index) (bool, error) {
	if g.all {
		return true, nil
	}
	write := ix != nil
	if ix == nil {
		x, err := d.rules.Index(g.typ, body)
		if err != nil {
			return false, fmt.Errorf("access: index %s/%s: %w", g.typ, id, err)
		}
		ix = &x
	}
	for _, alt := range g.alts {
		ok, err := d.alternativeHolds(ctx, r, g.typ, alt, id, lastUpdated, body, ix, write)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

func (d *decider) alternativeHolds(ctx context.Context, r store.Reader, typ string, alt alternative, id string, lastUpdated time.Time, body []byte, ix *store.Index, write bool) (bool, error) {
	var where []store.Clause
	if alt.patient != "" {
		where = append(where, d.compartment(typ, alt.patient))
	}
	where = append(where, alt.where...)
	for i := range where {
		m, ok := store.Match(&where[i], id, lastUpdated, ix)
		if !ok {
			// A restriction through a chain or _has: only the engine can
			// tell, and only of what it holds.
			found, err := r.Search(ctx, store.Query{Type: typ, Count: 1, Where: []store.Clause{idClause(id), where[i]}})
			if err != nil {
				return false, err
			}
			m = len(found) == 1
		}
		if !m {
			return false, nil
		}
	}
	if alt.patient != "" {
		// The record of a deleted patient is no one's to reach, their own
		// token's included, as under the care-team rule, whose chains to
		// the Patient find no deleted one.
		if deleted, err := d.contextDeleted(ctx, r); err != nil || deleted {
			return false, err
		}
	}
	// whole: every patient whose compartment the version is in must be
	// within reach, not one of them.
	whole := write || listsMembers(typ)
	if whole && alt.patient != "" && d.inOtherCompartment(typ, id, alt.patient, ix) {
		// A version written in the context of one patient is that
		// patient's alone: one also in another's compartment (a CareTeam
		// of another patient naming this one as participant) would write
		// into that patient's record.
		return false, nil
	}
	ok := true
	var err error
	switch {
	case alt.careTeam:
		ok, err = d.careTeamHolds(ctx, r, typ, id, ix, whole)
	case alt.securityContext:
		ok, err = d.securityContextHolds(ctx, r, body)
	case alt.entries:
		ok, err = d.entriesHold(ctx, r, body)
	}
	if !ok || err != nil || !listsMembers(typ) || alt.patient == "" && !alt.careTeam {
		return ok, err
	}
	return d.listedHolds(ctx, r, typ, alt, ix)
}

// listedParam names the search parameter by which resources of typ list
// resources that may be of several patients: a Group its members, a List
// the items of its entries; "" for the other types. What such a resource
// says of one patient (who else is in a cohort, what else is on a list)
// is about every patient whose resource it lists.
func listedParam(typ string) string {
	switch typ {
	case "Group":
		return "member"
	case "List":
		return "item"
	}
	return ""
}

// listsMembers reports whether resources of typ list resources of
// patients (see listedParam): such a resource is read only by a token
// that reaches every patient it names or lists a resource of, as it is
// written, in the compartment of each patient it names and listing only
// resources of patients within reach (see listedHolds).
func listsMembers(typ string) bool { return listedParam(typ) != "" }

// byMembers reports whether g reaches resources listing patients by the
// patients they name (see listsMembers), which a search narrowed in the
// engine, holding when one of them is reached, cannot decide.
func (g *grant) byMembers() bool {
	return listsMembers(g.typ) && slices.ContainsFunc(g.alts, func(alt alternative) bool { return alt.patient != "" || alt.careTeam })
}

// listedHolds reports whether every patient whose resources a version of
// typ with index ix lists (see listedParam) is within alt: the context
// patient, or a patient the practitioner is related to. A resource listed
// whose patients cannot be told (one not held here, or named by an
// absolute reference) is within no one's reach, as a patient not held is.
func (d *decider) listedHolds(ctx context.Context, r store.Reader, typ string, alt alternative, ix *store.Index) (bool, error) {
	ids, identifiers, known, err := d.listedPatients(ctx, r, listedParam(typ), ix)
	if err != nil || !known {
		return false, err
	}
	if alt.careTeam {
		if err := d.relateAll(ctx, r, ids); err != nil {
			return false, err
		}
	}
	for _, id := range ids {
		ok := id == alt.patient
		if ok {
			// A patient not held here is no one's to reach, as under the
			// care-team rule (relatedTo): a list naming them is not
			// disclosed, not even to their token.
			if ok, err = d.contextHeld(ctx, r); err != nil {
				return false, err
			}
		}
		if alt.careTeam {
			if ok, err = d.relatedTo(ctx, r, id); err != nil {
				return false, err
			}
		}
		if !ok {
			return false, nil
		}
	}
	if len(identifiers) == 0 {
		return true, nil
	}
	if alt.careTeam {
		return d.relatedByIdentifiers(ctx, r, identifiers)
	}
	return d.contextHasIdentifiers(ctx, r, identifiers)
}

// contextHasIdentifiers reports whether the Patient of the principal's
// patient context, held and not deleted, has every identifier of toks
// (see identifierMatch), read and indexed once per request, not searched
// for each.
func (d *decider) contextHasIdentifiers(ctx context.Context, r store.Reader, toks []store.Token) (bool, error) {
	held, err := d.contextHeld(ctx, r)
	if err != nil || !held {
		return false, err
	}
	d.mu.Lock()
	v, ix := d.context, d.contextIx
	d.mu.Unlock()
	if ix == nil {
		x, err := d.rules.Index("Patient", v.JSON)
		if err != nil {
			return false, fmt.Errorf("access: index the Patient of the patient context: %w", err)
		}
		ix = &x
		d.mu.Lock()
		d.contextIx = ix
		d.mu.Unlock()
	}
	for _, tok := range toks {
		if !hasIdentifier(v.ID, ix, tok) {
			return false, nil
		}
	}
	return true, nil
}

// hasIdentifier reports whether Patient id with index ix has the
// identifier tok, as a search by it would find it.
func hasIdentifier(id string, ix *store.Index, tok store.Token) bool {
	c := store.Clause{Param: "identifier", Tokens: []store.TokenMatch{identifierMatch(tok)}}
	m, _ := store.Match(&c, id, time.Time{}, ix)
	return m
}

// contextPatient returns the Patient of the principal's patient context
// as held here, read once per request: nil when it is not held, a
// tombstone when it is deleted.
func (d *decider) contextPatient(ctx context.Context, r store.Reader) (*store.Version, error) {
	d.mu.Lock()
	read, v := d.contextRead, d.context
	d.mu.Unlock()
	if read {
		return v, nil
	}
	v, err := r.Read(ctx, "Patient", d.p.Patient)
	if errors.Is(err, store.ErrNotFound) {
		v, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("access: read the Patient of the patient context: %w", err)
	}
	d.mu.Lock()
	d.contextRead, d.context = true, v
	d.mu.Unlock()
	return v, nil
}

// contextHeld reports whether the Patient of the principal's patient
// context is held here and not deleted.
func (d *decider) contextHeld(ctx context.Context, r store.Reader) (bool, error) {
	v, err := d.contextPatient(ctx, r)
	return v != nil && !v.Deleted, err
}

// contextDeleted reports whether the Patient of the principal's patient
// context is deleted here.
func (d *decider) contextDeleted(ctx context.Context, r store.Reader) (bool, error) {
	v, err := d.contextPatient(ctx, r)
	return v != nil && v.Deleted, err
}

// listedPatients returns the patients whose resources a version with
// index ix lists under param: the Patients it lists, and the patients of
// the other resources it lists of a type in the Patient compartment, by
// id, or by identifier where a reference has nothing else. known is false
// when a resource listed is not held here (a deleted one is decided by the
// version it deleted) or is named by an absolute reference. The resources
// listed are read ahead, besides those r already reads ahead (see
// Store.keep), and each is looked into once however many lists of r
// list it.
func (d *decider) listedPatients(ctx context.Context, r store.Reader, param string, ix *store.Index) (ids []string, identifiers []store.Token, known bool, err error) {
	ids, refs, known := listedRefs(d.rules, param, ix)
	if !known {
		return nil, nil, false, nil
	}
	identifiers = identifiersOf(ix, []string{param})
	if len(refs) == 0 {
		return ids, identifiers, true, nil
	}
	ahead, err := readingAhead(ctx, r, refs)
	if err != nil {
		return nil, nil, false, err
	}
	for _, ref := range refs {
		of, ok := ahead.listed[ref]
		if !ok {
			if of, err = d.patientsOfListed(ctx, ahead, ref); err != nil {
				return nil, nil, false, err
			}
			ahead.listed[ref] = of
		}
		if !of.known {
			return nil, nil, false, nil
		}
		ids = append(ids, of.ids...)
		identifiers = append(identifiers, of.identifiers...)
	}
	return ids, identifiers, true, nil
}

// listedRefs returns what a version with index ix lists under param: the
// Patients by id, and the other resources of a type in the Patient
// compartment, each Type/id. known is false when it lists a resource by
// an absolute reference.
func listedRefs(rules *Rules, param string, ix *store.Index) (patients, refs []string, known bool) {
	for _, ref := range ix.References {
		switch {
		case ref.Param != param:
		case ref.URL != "":
			return nil, nil, false
		case ref.Type == "Patient":
			patients = append(patients, ref.ID)
		case len(rules.Search.CompartmentParams(ref.Type)) > 0:
			refs = append(refs, ref.Type+"/"+ref.ID)
		}
	}
	return patients, refs, true
}

// listedOf is whom a resource a list lists belongs to (see
// listedPatients).
type listedOf struct {
	ids         []string
	identifiers []store.Token
	known       bool
}

// patientsOfListed returns whom the resource ref (Type/id), listed,
// belongs to, read from r: its patients by reference and by identifier
// in its compartment parameters, as it is or as it was before its
// deletion.
func (d *decider) patientsOfListed(ctx context.Context, r store.Reader, ref string) (listedOf, error) {
	typ, id, _ := strings.Cut(ref, "/")
	v, err := r.Read(ctx, typ, id)
	if errors.Is(err, store.ErrNotFound) {
		return listedOf{}, nil
	}
	if err != nil {
		return listedOf{}, fmt.Errorf("access: read %s, listed: %w", ref, err)
	}
	if v.Deleted {
		if v.VersionID < 2 {
			return listedOf{}, nil
		}
		if v, err = r.VRead(ctx, typ, id, v.VersionID-1); err != nil {
			return listedOf{}, fmt.Errorf("access: read the version %s had before its deletion, listed: %w", ref, err)
		}
	}
	x, err := d.rules.Index(typ, v.JSON)
	if err != nil {
		return listedOf{}, fmt.Errorf("access: index %s, listed: %w", ref, err)
	}
	params := d.rules.Search.CompartmentParams(typ)
	of := listedOf{identifiers: identifiersOf(&x, params), known: true}
	for _, pr := range x.References {
		if pr.Type == "Patient" && slices.Contains(params, pr.Param) {
			of.ids = append(of.ids, pr.ID)
		}
	}
	return of, nil
}

// identifiersOf returns the identifiers by which a version with index ix
// names resources under params, in references having nothing else.
func identifiersOf(ix *store.Index, params []string) []store.Token {
	var out []store.Token
	for _, tok := range ix.Tokens {
		if p, ok := strings.CutSuffix(tok.Param, ":identifier"); ok && slices.Contains(params, p) {
			out = append(out, tok)
		}
	}
	return out
}

// identifierMatch is the match of identifier tok: its system and value,
// any system when it has none.
func identifierMatch(tok store.Token) store.TokenMatch {
	return store.TokenMatch{System: tok.System, Code: tok.Code, AnySystem: tok.System == ""}
}

// securityContextHolds reports whether the principal may read the
// resource a Binary (its JSON) names as its securityContext, which R4
// uses "as proxy when enforcing access control"; a Binary without one
// follows the scopes alone. A securityContext this server cannot read
// (an identifier, an absolute or contained reference, another Binary, a
// resource not held) holds for no one: it is not known to be anyone's to
// read.
func (d *decider) securityContextHolds(ctx context.Context, r store.Reader, body []byte) (bool, error) {
	ref, named, err := securityContextOf(body)
	if err != nil || !named {
		return !named, err
	}
	typ, id, ok := d.heldRef(ref)
	if !ok {
		return false, nil
	}
	g, err := d.grant(typ, Read)
	var denied *Denied
	if errors.As(err, &denied) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	v, err := r.Read(ctx, typ, id)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("access: read the securityContext %s/%s of a Binary: %w", typ, id, err)
	}
	if v.Deleted {
		return false, nil
	}
	return d.reaches(ctx, r, g, id, v.LastUpdated, v.JSON, nil)
}

// entriesHold reports whether the principal may read each resource a
// Bundle (its JSON) holds, decided as it would be were it stored: a
// Bundle holds whole resources of the patients it is about (a document,
// a collection), though it is in no patient's compartment. A resource of
// a type not served is read by no one decided so.
func (d *decider) entriesHold(ctx context.Context, r store.Reader, body []byte) (bool, error) {
	var b struct {
		Entry []struct{ Resource json.RawMessage }
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return false, fmt.Errorf("access: read the entries of a Bundle: %w", err)
	}
	for _, e := range b.Entry {
		if len(e.Resource) == 0 {
			continue
		}
		var res struct{ ResourceType, ID string }
		if err := json.Unmarshal(e.Resource, &res); err != nil {
			return false, fmt.Errorf("access: read an entry of a Bundle: %w", err)
		}
		if !slices.Contains(d.rules.Types, res.ResourceType) {
			// A type not served (a RiskAssessment) has no compartment
			// the server knows of, so whose record it is cannot be told.
			return false, nil
		}
		g, err := d.grant(res.ResourceType, Read)
		var denied *Denied
		if errors.As(err, &denied) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if ok, err := d.reaches(ctx, r, g, res.ID, time.Time{}, e.Resource, nil); !ok || err != nil {
			return false, err
		}
	}
	return true, nil
}

// securityContextOf returns the reference a Binary (its JSON) names as its
// securityContext, without a version; named false when it names none.
func securityContextOf(body []byte) (ref string, named bool, err error) {
	if !bytes.Contains(body, []byte(`"securityContext"`)) {
		// Stored JSON writes its names as they are: a Binary without
		// the name has none, and its content need not be decoded again.
		return "", false, nil
	}
	var b struct {
		SecurityContext *struct{ Reference string }
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return "", false, fmt.Errorf("access: read the securityContext of a Binary: %w", err)
	}
	if b.SecurityContext == nil {
		return "", false, nil
	}
	ref, _, _ = strings.Cut(b.SecurityContext.Reference, "/_history/")
	return ref, true, nil
}

// heldRef returns the type and id of ref when it is the relative
// reference of a resource of a type served, other than a Binary: what a
// securityContext must name to be read.
func (d *decider) heldRef(ref string) (typ, id string, ok bool) {
	typ, id, ok = strings.Cut(ref, "/")
	if !ok || id == "" || strings.Contains(id, "/") || typ == "Binary" || !slices.Contains(d.rules.Types, typ) {
		return "", "", false
	}
	return typ, id, true
}

// inOtherCompartment reports whether version id of typ with index ix is
// in the compartment of a Patient other than Patient patient: a Patient
// is in its own, besides those it links to.
func (d *decider) inOtherCompartment(typ, id, patient string, ix *store.Index) bool {
	if typ == "Patient" && id != patient {
		return true
	}
	params := d.rules.Search.CompartmentParams(typ)
	return slices.ContainsFunc(ix.References, func(ref store.Reference) bool {
		return ref.Type == "Patient" && ref.ID != patient && slices.Contains(params, ref.Param)
	})
}

// careTeamHolds reports whether a resource of typ with index ix is in the
// compartment of a patient the practitioner is related to; whole, in the
// compartments of related patients only. A version being written must be
// whole: one also in another patient's compartment, such as a CareTeam of
// that patient that names a related patient as a participant, would let
// the practitioner write themselves into that patient's care.
func (d *decider) careTeamHolds(ctx context.Context, r store.Reader, typ, id string, ix *store.Index, whole bool) (bool, error) {
	if typ == "Patient" {
		if ok, err := d.relatedTo(ctx, r, id); ok || err != nil {
			return ok, err
		}
		// A Patient being registered at the organisation, as written.
		return d.registeredHere(ctx, r, ix)
	}
	params := d.rules.Search.CompartmentParams(typ)
	if listsMembers(typ) && !hasValue(ix, params) {
		// A list of no one (an empty cohort) names no patient: it
		// follows the scopes alone, as the records of no patient do.
		return true, nil
	}
	if whole {
		// Every patient named is decided: a page of them at a time.
		var ids []string
		for _, ref := range ix.References {
			if ref.Type == "Patient" && slices.Contains(params, ref.Param) {
				ids = append(ids, ref.ID)
			}
		}
		if err := d.relateAll(ctx, r, ids); err != nil {
			return false, err
		}
	}
	held, named := false, false
	for _, ref := range ix.References {
		if ref.Type != "Patient" || !slices.Contains(params, ref.Param) {
			continue
		}
		named = true
		ok, err := d.relatedTo(ctx, r, ref.ID)
		switch {
		case err != nil:
			return false, err
		case ok && !whole:
			return true, nil
		case !ok && whole:
			return false, nil
		}
		held = held || ok
	}
	if named {
		return held, nil
	}
	// A resource may name its patient by identifier alone (a PAM
	// response's subject by NHS number, which its hook resolves). It is
	// then in no patient's compartment, so it cannot reach into an
	// unrelated patient's record; it is the practitioner's when a patient
	// they are related to has that identifier.
	for _, tok := range identifiersOf(ix, params) {
		if ok, err := d.relatedByIdentifier(ctx, r, tok); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

// hasValue reports whether a version with index ix has a value of one of
// params, a reference or an identifier.
func hasValue(ix *store.Index, params []string) bool {
	return slices.ContainsFunc(params, func(p string) bool {
		return store.HasValue(ix, p) || store.HasValue(ix, p+":identifier")
	})
}

// relatedByIdentifier reports whether a patient the practitioner is
// related to has the identifier tok (system and value; any system when it
// has none).
func (d *decider) relatedByIdentifier(ctx context.Context, r store.Reader, tok store.Token) (bool, error) {
	lapsed, err := d.allLapsedTeams(ctx, r)
	if err != nil {
		return false, err
	}
	found, err := r.Search(ctx, store.Query{Type: "Patient", Count: 1, Where: []store.Clause{
		{Param: "identifier", Tokens: []store.TokenMatch{identifierMatch(tok)}}, d.relatedPatient(lapsed),
	}})
	if err != nil {
		return false, fmt.Errorf("access: find a related patient by identifier: %w", err)
	}
	return len(found) == 1, nil
}

// relatedByIdentifiers reports whether each identifier of toks is had by
// a patient the practitioner is related to, as relatedByIdentifier
// decides, by a search of a page of identifiers at a time rather than one
// for each. An identifier a page cut short leaves undecided is searched
// for alone.
func (d *decider) relatedByIdentifiers(ctx context.Context, r store.Reader, toks []store.Token) (bool, error) {
	if len(toks) == 1 {
		return d.relatedByIdentifier(ctx, r, toks[0])
	}
	lapsed, err := d.allLapsedTeams(ctx, r)
	if err != nil {
		return false, err
	}
	for page := range slices.Chunk(toks, readAheadIDs) {
		matches := make([]store.TokenMatch, len(page))
		for i, tok := range page {
			matches[i] = identifierMatch(tok)
		}
		found, err := r.Search(ctx, store.Query{Type: "Patient", Count: len(page), Where: []store.Clause{
			{Param: "identifier", Tokens: matches}, d.relatedPatient(lapsed),
		}})
		if err != nil {
			return false, fmt.Errorf("access: find related patients by %d identifiers: %w", len(page), err)
		}
		indexes := make([]store.Index, len(found))
		for i, v := range found {
			if indexes[i], err = d.rules.Index(v.Type, v.JSON); err != nil {
				return false, fmt.Errorf("access: index Patient/%s: %w", v.ID, err)
			}
		}
		for _, tok := range page {
			had := false
			for i, v := range found {
				had = had || hasIdentifier(v.ID, &indexes[i], tok)
			}
			if !had && len(found) == len(page) {
				// The page may have been cut before a patient having tok.
				if had, err = d.relatedByIdentifier(ctx, r, tok); err != nil {
					return false, err
				}
			}
			if !had {
				return false, nil
			}
		}
	}
	return true, nil
}

// claimsRelationship reports whether a version of typ with index ix makes
// the care-team rule hold for the principal's practitioner wherever it
// refers to it: a PractitionerRole that is theirs (a CareTeam naming the
// role takes them in), an Organization with the ODS code of their token
// (its registered patients become theirs), a Patient registered at that
// organisation (the records naming the patient become theirs).
func (d *decider) claimsRelationship(ctx context.Context, r store.Reader, typ string, ix *store.Index) (bool, error) {
	switch typ {
	case "PractitionerRole":
		practitioner := strings.TrimPrefix(d.p.FHIRUser, "Practitioner/")
		return slices.ContainsFunc(ix.References, func(ref store.Reference) bool {
			return ref.Param == "practitioner" && ref.Type == "Practitioner" && ref.ID == practitioner
		}), nil
	case "Organization":
		return d.p.Organization != "" && slices.ContainsFunc(ix.Tokens, func(t store.Token) bool {
			return t.Param == "identifier" && t.System == odsSystem && t.Code == d.p.Organization
		}), nil
	case "Patient":
		return d.registeredHere(ctx, r, ix)
	}
	return false, nil
}

// narrowedByCareTeam reports whether the care-team rule narrows some of
// the principal's scopes: user/ scopes of a Practitioner under that
// policy.
func (d *decider) narrowedByCareTeam() bool {
	return d.rules.Policy == CareTeamPolicy && !d.p.unrestricted() && strings.HasPrefix(d.p.FHIRUser, "Practitioner/") &&
		slices.ContainsFunc(d.p.Scopes, func(s Scope) bool { return s.Context == UserContext })
}

// relatedTo reports whether the practitioner is related to Patient id,
// deciding once per request.
func (d *decider) relatedTo(ctx context.Context, r store.Reader, id string) (bool, error) {
	d.mu.Lock()
	ok, known := d.patients[id]
	d.mu.Unlock()
	if known {
		return ok, nil
	}
	lapsed, err := d.lapsedTeamsOf(ctx, r, id)
	if err != nil {
		return false, err
	}
	found, err := r.Search(ctx, store.Query{Type: "Patient", Count: 1, Where: []store.Clause{idClause(id), d.relatedPatient(lapsed)}})
	if err != nil {
		return false, err
	}
	ok = len(found) == 1
	d.mu.Lock()
	if d.patients == nil {
		d.patients = make(map[string]bool)
	}
	d.patients[id] = ok
	d.mu.Unlock()
	return ok, nil
}

// relateAll decides, as relatedTo does, whether the practitioner is
// related to each of the Patients ids not yet decided in the request, by
// a search of a page of them at a time rather than one or two for each:
// for a list of patients, every one of whom is decided. The CareTeams in
// which their part lapsed are those of every patient, read once.
func (d *decider) relateAll(ctx context.Context, r store.Reader, ids []string) error {
	seen := map[string]bool{}
	var todo []string
	d.mu.Lock()
	for _, id := range ids {
		if _, known := d.patients[id]; !known && !seen[id] {
			seen[id] = true
			todo = append(todo, id)
		}
	}
	d.mu.Unlock()
	if len(todo) < 2 {
		return nil // relatedTo decides one as cheaply
	}
	lapsed, err := d.allLapsedTeams(ctx, r)
	if err != nil {
		return err
	}
	related := map[string]bool{}
	for page := range slices.Chunk(todo, readAheadIDs) {
		found, err := r.Search(ctx, store.Query{Type: "Patient", Count: len(page), Where: []store.Clause{idClause(page...), d.relatedPatient(lapsed)}})
		if err != nil {
			return fmt.Errorf("access: decide %d patients: %w", len(page), err)
		}
		for _, v := range found {
			related[v.ID] = true
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.patients == nil {
		d.patients = make(map[string]bool)
	}
	for _, id := range todo {
		d.patients[id] = related[id]
	}
	return nil
}

// registeredHere reports whether a Patient with index ix names the
// principal's organisation as its registered practice.
func (d *decider) registeredHere(ctx context.Context, r store.Reader, ix *store.Index) (bool, error) {
	if d.p.Organization == "" {
		return false, nil
	}
	for _, t := range ix.Tokens {
		if t.Param == "general-practitioner:identifier" && t.System == odsSystem && t.Code == d.p.Organization {
			return true, nil
		}
	}
	for _, ref := range ix.References {
		if ref.Type != "Organization" || ref.Param != "organization" && ref.Param != "general-practitioner" {
			continue
		}
		found, err := r.Search(ctx, store.Query{Type: "Organization", Count: 1, Where: []store.Clause{
			idClause(ref.ID), {Param: "identifier", Tokens: []store.TokenMatch{{System: odsSystem, Code: d.p.Organization}}},
		}})
		if err != nil || len(found) == 1 {
			return len(found) == 1, err
		}
	}
	return false, nil
}

// nobody returns a clause no resource matches (an Any of no clauses): the
// reach of a patient context whose Patient is deleted.
func nobody() store.Clause { return store.Clause{Param: "_access", Any: []store.Clause{}} }

func idClause(ids ...string) store.Clause {
	c := store.Clause{Param: "_id"}
	for _, id := range ids {
		c.Tokens = append(c.Tokens, store.TokenMatch{Code: id, AnySystem: true})
	}
	return c
}
