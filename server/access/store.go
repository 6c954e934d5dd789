package access

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"carefhir/care/calendar"
	"carefhir/store"
)

// Store is a store.Store that decides every read, search, history and
// write against the principal of its context (see Begin), narrows
// searches to what the principal may reach, filters what they may not
// from included resources and history, and records what each request
// touched for its AuditEvent.
type Store struct {
	next  store.Store
	rules Rules
	seal  *cursorSeal
}

// NewStore returns next behind the access decisions made by rules.
func NewStore(next store.Store, rules Rules) *Store {
	if rules.Policy == "" {
		rules.Policy = ScopesPolicy
	}
	if rules.Now == nil {
		rules.Now = time.Now
	}
	if rules.Zone == nil {
		rules.Zone = calendar.UK()
	}
	return &Store{next: next, rules: rules, seal: newCursorSeal()}
}

// Unwrap returns the store without access decisions, for the server's
// own work that no request asked for (such as writing the audit trail).
func (s *Store) Unwrap() store.Store { return s.next }

// request is the access state of one request.
type request struct {
	decider
	record *Record
}

type requestKey struct{}

// Begin returns ctx for one request, with a new Record of what it
// touches. Every read and write through a Store needs it, and a Principal
// in the context (WithPrincipal) by the time of the first.
func Begin(ctx context.Context) (context.Context, *Record) {
	return begin(ctx, false)
}

// BeginUnaudited is Begin for a server that keeps no audit trail: the
// Record keeps the interaction, the query and what is disclosed, but not
// the resources touched, whose patients it would look for in each body.
func BeginUnaudited(ctx context.Context) (context.Context, *Record) {
	return begin(ctx, true)
}

// begin begins a request held in a context value of its own, as a Holder
// begins one held by its owner.
func begin(ctx context.Context, unaudited bool) (context.Context, *Record) {
	var h Holder
	rec := h.Begin("", unaudited)
	return context.WithValue(ctx, requestKey{}, &h.state.request), rec
}

// RecordFrom returns the Record of ctx's request, or nil.
func RecordFrom(ctx context.Context) *Record {
	if r, ok := ctx.Value(requestKey{}).(*request); ok {
		return r.record
	}
	return nil
}

// errNoPrincipal is a read or write outside any request: a programming
// error, refused rather than let through.
var errNoPrincipal = errors.New("access: no principal in the context of a store call")

func (s *Store) request(ctx context.Context) (*request, error) {
	r, ok := ctx.Value(requestKey{}).(*request)
	if !ok {
		return nil, errNoPrincipal
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.p == nil {
		if r.p = PrincipalFrom(ctx); r.p == nil {
			return nil, errNoPrincipal
		}
	}
	if r.rules == nil {
		r.rules = &s.rules
	}
	return r, nil
}

// Allow reports, as a Denied error, whether the principal of ctx may do
// anything with perm on resources of typ at all: the check of operations,
// whose reads and writes below are decided one by one besides.
func (s *Store) Allow(ctx context.Context, typ string, perm Perm) error {
	req, err := s.request(ctx)
	if err != nil {
		return err
	}
	_, err = req.grant(typ, perm)
	return err
}

// ReadOnly reports whether resources of typ are written by the server
// alone: the audit trail.
func ReadOnly(typ string) bool { return typ == "AuditEvent" }

// readPerm is the permission a read of the current version needs in the
// interaction ctx performs.
func readPerm(ctx context.Context) Perm {
	switch InteractionFrom(ctx) {
	case InteractionUpdate, InteractionPatch:
		return Update
	case InteractionDelete:
		return Delete
	}
	return Read
}

// filtering reports whether, in the interaction of ctx, resources of a
// type the principal may not reach are left out silently rather than
// refused: an operation such as $everything gathers what it may, unless
// it is one whose answer rests on what it does not find (Unfiltered).
func filtering(ctx context.Context) bool {
	return InteractionFrom(ctx) == InteractionOperation && ctx.Value(unfilteredKey{}) == nil
}

type unfilteredKey struct{}

// Unfiltered returns ctx for an operation that draws conclusions from the
// records its searches do not find, such as a cohort of the patients
// without an active plan: its searches and reads of a type the principal
// may not reach are refused, as outside operations, rather than finding
// nothing, which would make its answer wrong without saying so.
func Unfiltered(ctx context.Context) context.Context {
	return context.WithValue(ctx, unfilteredKey{}, true)
}

// Read implements store.Reader.
func (s *Store) Read(ctx context.Context, typ, id string) (*store.Version, error) {
	return s.read(ctx, s.next, typ, id)
}

func (s *Store) read(ctx context.Context, r store.Reader, typ, id string) (*store.Version, error) {
	v, err := s.readStored(ctx, r, typ, id)
	if err != nil {
		return nil, err
	}
	return s.shownOne(ctx, r, v)
}

// shownOne is shownTo for one version, in the request of ctx.
func (s *Store) shownOne(ctx context.Context, r store.Reader, v *store.Version) (*store.Version, error) {
	req, err := s.request(ctx)
	if err != nil {
		return nil, err
	}
	vs, err := s.shownTo(ctx, req, r, []*store.Version{v})
	if err != nil {
		return nil, err
	}
	return vs[0], nil
}

// readStored is read returning the version as stored, which only the
// access layer may look into: it is never given to a reader (see shown).
func (s *Store) readStored(ctx context.Context, r store.Reader, typ, id string) (*store.Version, error) {
	req, err := s.request(ctx)
	if err != nil {
		return nil, err
	}
	v, err := s.decideRead(ctx, req, r, readPerm(ctx), typ, id, 0)
	if err != nil {
		return nil, err
	}
	if err := s.touch(ctx, req, r, v); err != nil {
		return nil, err
	}
	return v, nil
}

// decideRead returns version version of typ/id (0: the current one) when
// the principal may read it with perm: the one decision of a read, a
// vread, and of whether an AuditEvent may name the resource to them (see
// reachesRef). An earlier version is read only while the current one is
// within reach too (see withinNow). It answers store.ErrNotFound for a
// resource not held or out of reach, and a *Denied when perm on typ is not
// granted, store.ErrNotFound instead in an operation gathering what it
// may (see filtering). It records nothing: a read and a vread audit what
// they give, a check must not.
func (s *Store) decideRead(ctx context.Context, req *request, r store.Reader, perm Perm, typ, id string, version int64) (*store.Version, error) {
	g, err := req.grant(typ, perm)
	if err != nil {
		if filtering(ctx) {
			return nil, store.ErrNotFound
		}
		return nil, err
	}
	var v *store.Version
	if version == 0 {
		v, err = r.Read(ctx, typ, id)
	} else {
		v, err = r.VRead(ctx, typ, id, version)
	}
	if err != nil {
		return nil, err
	}
	if err := s.within(ctx, req, r, g, v); err != nil {
		return nil, err
	}
	if version != 0 {
		if err := s.withinNow(ctx, req, r, g, v); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// within answers store.ErrNotFound for a version outside g. A tombstone
// is decided by the version it deleted.
func (s *Store) within(ctx context.Context, req *request, r store.Reader, g *grant, v *store.Version) error {
	if g.all {
		return nil
	}
	body := v.JSON
	if v.Deleted {
		if v.VersionID < 2 {
			return store.ErrNotFound
		}
		prev, err := r.VRead(ctx, v.Type, v.ID, v.VersionID-1)
		if err != nil {
			return err
		}
		body = prev.JSON
	}
	ok, err := req.reaches(ctx, r, g, v.ID, v.LastUpdated, body, nil)
	if err != nil {
		return err
	}
	if !ok {
		return store.ErrNotFound
	}
	return nil
}

// VRead implements store.Reader.
func (s *Store) VRead(ctx context.Context, typ, id string, version int64) (*store.Version, error) {
	return s.vread(ctx, s.next, typ, id, version)
}

func (s *Store) vread(ctx context.Context, r store.Reader, typ, id string, version int64) (*store.Version, error) {
	req, err := s.request(ctx)
	if err != nil {
		return nil, err
	}
	v, err := s.decideRead(ctx, req, r, Read, typ, id, version)
	if err != nil {
		return nil, err
	}
	if err := s.touch(ctx, req, r, v); err != nil {
		return nil, err
	}
	return s.shownOne(ctx, r, v)
}

// Held reports whether version version of typ/id (0: the current one)
// is a deletion, when the principal of ctx may read it as a read or a
// vread decides; store.ErrNotFound when it is not held or out of reach.
// It records nothing: the server asks it to describe what it sends (that
// a resource whose history it sends is held, that a version of that
// history recreated its resource), not to send the version, which the
// request's AuditEvents would otherwise name with its patients.
func (s *Store) Held(ctx context.Context, typ, id string, version int64) (deleted bool, err error) {
	req, err := s.request(ctx)
	if err != nil {
		return false, err
	}
	v, err := s.decideRead(ctx, req, s.next, Read, typ, id, version)
	if err != nil {
		return false, err
	}
	return v.Deleted, nil
}

// withinNow answers store.ErrNotFound for an earlier version v of a
// resource whose current version is outside g: a resource moved to
// another patient, or labelled out of a scope's restriction, takes its
// earlier versions with it, as its read and its history do.
func (s *Store) withinNow(ctx context.Context, req *request, r store.Reader, g *grant, v *store.Version) error {
	if g.all {
		return nil
	}
	cur, err := r.Read(ctx, v.Type, v.ID)
	if err != nil {
		return err
	}
	if cur.VersionID == v.VersionID {
		return nil
	}
	return s.within(ctx, req, r, g, cur)
}

// History implements store.Reader. A history of the system needs the
// read permission on every type served (Rules.Types), as a search of the
// system without _type needs the search permission on each.
//
// A principal who may not read every version the history selects gets
// the versions they may, read historyScan versions at a time at least:
// a page is short of q.Count, or empty, with a next cursor only when that
// many versions in a row were left out, so the pages do not count what
// was. The total is the number of versions kept when the whole history
// was read, and otherwise not known (store.HistoryPage.Total -1): the
// engine's counts what the principal may not read, and counting what they
// may would mean reading every version. The cursors are sealed (see
// cursorSeal), since the engine's name the version they follow.
func (s *Store) History(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	return s.history(ctx, s.next, q, true)
}

// HistoryTotal is History for its total alone (_summary=count, _count=0),
// decided as History decides it: -1 when not known. It records nothing, as
// a search counting its matches names none of them: no version is sent.
func (s *Store) HistoryTotal(ctx context.Context, q store.HistoryQuery) (int, error) {
	page, err := s.history(ctx, s.next, q, false)
	if err != nil {
		return 0, err
	}
	return page.Total, nil
}

// historyScan is the fewest versions a page of a history read by a
// principal who may not read them all reads.
const historyScan = 500

// history is History, recording the versions of the page as touched when
// touch is set.
func (s *Store) history(ctx context.Context, r store.Reader, q store.HistoryQuery, touch bool) (*store.HistoryPage, error) {
	req, err := s.request(ctx)
	if err != nil {
		return nil, err
	}
	types := s.rules.Types
	if q.Type != "" {
		types = []string{q.Type}
	}
	// all: every version the history selects is within reach.
	all := len(types) > 0
	for _, t := range types {
		g, err := req.grant(t, Read)
		if err != nil {
			if q.Type == "" {
				return nil, forbidden("a history of the system holds every type: the access token's scopes do not allow read on %s", t)
			}
			return nil, err
		}
		all = all && g.all
	}
	if all {
		page, err := r.History(ctx, q)
		if err != nil {
			return nil, err
		}
		return s.touchedPage(ctx, req, r, page, touch)
	}
	page, err := s.filteredHistory(ctx, req, r, q)
	if err != nil {
		return nil, err
	}
	return s.touchedPage(ctx, req, r, page, touch)
}

// touchedPage returns page as a reader is given it (shownPage), its
// versions recorded as touched when touch is set; otherwise page itself,
// whose versions are not given to anyone.
func (s *Store) touchedPage(ctx context.Context, req *request, r store.Reader, page *store.HistoryPage, touch bool) (*store.HistoryPage, error) {
	if !touch {
		return page, nil
	}
	if err := s.touch(ctx, req, r, page.Versions...); err != nil {
		return nil, err
	}
	return s.shownPage(ctx, req, r, page)
}

// shownPage returns page with its versions as a reader is given them
// (see shown).
func (s *Store) shownPage(ctx context.Context, req *request, r store.Reader, page *store.HistoryPage) (*store.HistoryPage, error) {
	vs, err := s.shownTo(ctx, req, r, page.Versions)
	if err != nil {
		return nil, err
	}
	out := *page
	out.Versions = vs
	return &out, nil
}

// filteredHistory returns a page of up to q.Count versions of the history
// q selects that req's principal may read, and its sealed cursor.
func (s *Store) filteredHistory(ctx context.Context, req *request, r store.Reader, q store.HistoryQuery) (*store.HistoryPage, error) {
	level := historyLevel(q)
	scan := q
	if q.Cursor != "" {
		var err error
		if scan.Cursor, err = s.seal.open(q.Cursor, level); err != nil {
			return nil, err
		}
	}
	scan.Count = max(q.Count, historyScan)
	page, err := r.History(ctx, scan)
	if err != nil {
		return nil, err
	}
	// The current version of each resource of the page decides its
	// earlier ones (see withinNow): read ahead, a search for the page.
	ahead, err := readingAhead(ctx, r, refsOf(page.Versions))
	if err != nil {
		return nil, err
	}
	kept, err := s.reachable(ctx, req, ahead, page.Versions)
	if err != nil {
		return nil, err
	}
	if kept, err = s.reachableNow(ctx, req, ahead, kept); err != nil {
		return nil, err
	}
	out := &store.HistoryPage{Versions: kept, Next: page.Next, Total: -1}
	if q.Cursor == "" && page.Next == "" {
		out.Total = len(kept)
	}
	if len(kept) > q.Count {
		// The page ends at the last version kept: read up to it again
		// for the engine's cursor there. Versions written in between
		// (on a first page) move that cursor to a newer version, so the
		// next page may repeat versions, never skip one.
		out.Versions = kept[:q.Count]
		scan.Count = slices.Index(page.Versions, kept[q.Count-1]) + 1
		cut, err := r.History(ctx, scan)
		if err != nil {
			return nil, err
		}
		out.Next = cut.Next
	}
	if out.Next != "" {
		out.Next = s.seal.close(out.Next, level)
	}
	return out, nil
}

// historyLevel names what q is a history of, which a sealed cursor is
// bound to.
func historyLevel(q store.HistoryQuery) string { return q.Type + "/" + q.ID }

// Search implements store.Reader.
func (s *Store) Search(ctx context.Context, q store.Query) ([]*store.Version, error) {
	return s.search(ctx, s.next, q)
}

func (s *Store) search(ctx context.Context, r store.Reader, q store.Query) ([]*store.Version, error) {
	req, err := s.request(ctx)
	if err != nil {
		return nil, err
	}
	q, err = s.narrow(ctx, req, r, q)
	if errors.Is(err, errNothing) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	found, err := r.Search(ctx, q)
	if err != nil {
		return nil, err
	}
	if found, err = s.wholeMembers(ctx, req, r, q.Type, found); err != nil {
		return nil, err
	}
	if err := s.touch(ctx, req, r, found...); err != nil {
		return nil, err
	}
	return s.shownTo(ctx, req, r, found)
}

// errNothing is a search an operation makes of a type the principal may
// not reach: it finds nothing.
var errNothing = errors.New("access: nothing reachable")

// narrow returns q restricted to what the principal may reach: its own
// type, the types its chains and _has pass through, the types it includes.
// r is read from to decide what the care-team rule reaches.
func (s *Store) narrow(ctx context.Context, req *request, r store.Reader, q store.Query) (store.Query, error) {
	if req.p.unrestricted() {
		return q, nil
	}
	g, where, err := s.narrowInner(ctx, req, r, q)
	if err != nil {
		return q, err
	}
	extra, err := req.clauses(ctx, r, g)
	if err != nil {
		return q, err
	}
	q.Where = append(where, extra...)
	// Included resources are filtered one by one after the search (see
	// find): a type the principal cannot read adds none.
	return q, nil
}

// narrowInner returns the principal's grant of search on q's type and the
// clauses of q with what they pass through narrowed: the audit trail's
// entities, the types of chains and _has clauses. It leaves to the caller
// what the grant adds to the type's own resources.
func (s *Store) narrowInner(ctx context.Context, req *request, r store.Reader, q store.Query) (*grant, []store.Clause, error) {
	g, err := req.grant(q.Type, Search)
	if err != nil {
		if filtering(ctx) {
			return nil, nil, errNothing
		}
		return nil, nil, err
	}
	where := q.Where
	if q.Type == "AuditEvent" {
		if where, err = s.trailClauses(ctx, req, r, where); err != nil {
			return nil, nil, err
		}
	}
	where, err = s.narrowClauses(ctx, req, r, where)
	if err != nil {
		return nil, nil, err
	}
	return g, where, nil
}

// MatchCriteria finds what the criteria of a conditional create or
// update match, for the principal of ctx. These create a resource when
// they match none, so they are matched over every resource of the type,
// not only those the principal reaches: matched among those alone, a
// match they cannot see would be no match, and a second record would be
// created beside it (a second Observation, or Patient, with its
// identifier). A match outside the principal's reach is refused (403):
// the principal may neither change it nor create beside it, and it is not
// shown to them. The criteria need the search permission on the type as a
// search does, and their chains and _has clauses pass only through what
// the principal may reach, as a search's do.
func (s *Store) MatchCriteria(ctx context.Context, q store.Query) ([]*store.Version, error) {
	return s.matchCriteria(ctx, s.next, q)
}

func (s *Store) matchCriteria(ctx context.Context, r store.Reader, q store.Query) ([]*store.Version, error) {
	req, err := s.request(ctx)
	if err != nil {
		return nil, err
	}
	if req.p.unrestricted() {
		return s.search(ctx, r, q)
	}
	g, where, err := s.narrowInner(ctx, req, r, q)
	if errors.Is(err, errNothing) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	q.Where = where
	found, err := r.Search(ctx, q)
	if err != nil {
		return nil, err
	}
	reached, err := s.keep(ctx, req, r, found, func(string) (*grant, error) { return g, nil })
	if err != nil {
		return nil, err
	}
	if len(reached) < len(found) {
		// Which resource it is, and whose, is not told.
		return nil, forbidden("the criteria match a resource of type %s outside what the access token may reach: "+
			"a conditional create or update by it neither changes that resource nor creates another beside it", q.Type)
	}
	if err := s.touch(ctx, req, r, found...); err != nil {
		return nil, err
	}
	return s.shownTo(ctx, req, r, found)
}

// narrowClauses narrows the queries inside chains and _has clauses to what
// the principal may reach: a chain through a type they may not search is
// refused, since its answer would reveal what they cannot read.
func (s *Store) narrowClauses(ctx context.Context, req *request, r store.Reader, where []store.Clause) ([]store.Clause, error) {
	out := make([]store.Clause, len(where))
	for i, c := range where {
		switch {
		case c.Chain != nil:
			inner := c.Chain.Where
			if slices.Contains(c.Chain.Types, "AuditEvent") {
				var err error
				if inner, err = s.trailClauses(ctx, req, r, inner); err != nil {
					return nil, err
				}
			}
			inner, err := s.narrowClauses(ctx, req, r, inner)
			if err != nil {
				return nil, err
			}
			// The chain passes through the types the principal may
			// search, each narrowed by its own grant: through one chain
			// of those types when none is narrowed, else through one
			// chain per type, so that what narrows one type does not
			// apply to the others.
			var types []string
			var each []store.Clause
			narrowed := false
			for _, t := range c.Chain.Types {
				g, err := req.grant(t, Search)
				if err != nil || g.byMembers() {
					// Not through a type the principal may not search,
					// nor through resources they reach only as a whole
					// (see grant.byMembers), which the engine cannot
					// narrow a chain to.
					continue
				}
				extra, err := req.clauses(ctx, r, g)
				if err != nil {
					return nil, err
				}
				narrowed = narrowed || len(extra) > 0
				types = append(types, t)
				each = append(each, store.Clause{Param: c.Param, Chain: &store.Chain{Types: []string{t}, Where: append(slices.Clip(inner), extra...)}})
			}
			switch {
			case len(types) == 0:
				return nil, forbidden("the chain %s passes only through types the access token's scopes do not allow searching, "+
					"or that it reaches only where it reaches every patient one names (Group, List)", c.Param)
			case !narrowed:
				c.Chain = &store.Chain{Types: types, Where: inner}
			case len(each) == 1:
				c = each[0]
			default:
				c = store.Clause{Param: "_access", Any: each}
			}
		case c.Has != nil:
			has := *c.Has
			g, err := req.grant(has.Type, Search)
			if err != nil {
				return nil, forbidden("_has:%s searches %s, which the access token's scopes do not allow searching", has.Type, has.Type)
			}
			if g.byMembers() {
				return nil, forbidden("_has:%s searches %s, which the access token reaches only where it reaches every patient one names: "+
					"a search cannot be narrowed to those", has.Type, has.Type)
			}
			inner := has.Where
			if has.Type == "AuditEvent" {
				if inner, err = s.trailClauses(ctx, req, r, inner); err != nil {
					return nil, err
				}
			}
			inner, err = s.narrowClauses(ctx, req, r, inner)
			if err != nil {
				return nil, err
			}
			extra, err := req.clauses(ctx, r, g)
			if err != nil {
				return nil, err
			}
			has.Where = append(inner, extra...)
			c.Has = &has
		case c.Any != nil:
			any, err := s.narrowClauses(ctx, req, r, c.Any)
			if err != nil {
				return nil, err
			}
			c.Any = any
		}
		out[i] = c
	}
	return out, nil
}

// Find implements store.Finder when the wrapped store does.
func (s *Store) Find(ctx context.Context, q store.Query) (*store.Page, error) {
	f, ok := s.next.(store.Finder)
	if !ok {
		return nil, fmt.Errorf("access: the store does not search plans")
	}
	return s.find(ctx, f, s.next, q)
}

func (s *Store) find(ctx context.Context, f store.Finder, r store.Reader, q store.Query) (*store.Page, error) {
	req, err := s.request(ctx)
	if err != nil {
		return nil, err
	}
	if q.IDsOnly && q.Type != "Patient" {
		// The audit names the patients a request read, which only the
		// bodies say; a Patient's id is enough.
		q.IDsOnly = false
	}
	nq, err := s.narrow(ctx, req, r, q)
	oneByOne := false
	if isDenied(err) && filtering(ctx) {
		// An operation gathers by id the Binaries it may read, which
		// cannot be searched for (see grant.oneByOne): it finds them
		// all and keeps those the principal may read.
		if g, gerr := req.grant(q.Type, Search); gerr == nil && g.oneByOne() {
			nq, oneByOne = q, true
			nq.Where, err = s.narrowClauses(ctx, req, r, q.Where)
		}
	}
	if errors.Is(err, errNothing) || err != nil && filtering(ctx) && isDenied(err) {
		return &store.Page{Total: 0}, nil
	}
	if err != nil {
		return nil, err
	}
	restricted := !req.p.unrestricted()
	// A page whose matches are decided after the engine found them may
	// begin or end at one the principal may not read, which the engine's
	// cursors name (its id and sort values): they are sealed, as those of
	// a history filtered so.
	sealed := oneByOne || restricted && s.decidedAfter(req, q.Type)
	if sealed && q.Cursor != "" {
		if nq.Cursor, err = s.seal.open(q.Cursor, searchLevel(q.Type)); err != nil {
			return nil, err
		}
	}
	if restricted && q.Iterates() {
		// The engine would follow :iterate includes from what it
		// included, reachable or not: it makes the first round alone,
		// and the others follow only what the principal may read.
		nq.Include, nq.RevInclude = firstRound(nq.Include), firstRound(nq.RevInclude)
	}
	page, err := f.Find(ctx, nq)
	if err != nil {
		return nil, err
	}
	if oneByOne {
		if page.Matches, err = s.reachable(ctx, req, r, page.Matches); err != nil {
			return nil, err
		}
		page.Total = -1
	}
	if restricted {
		if err := s.keepWholeMembers(ctx, req, f, r, nq, page); err != nil {
			return nil, err
		}
		if page.Included, err = s.reachable(ctx, req, r, page.Included); err != nil {
			return nil, err
		}
		if q.Iterates() {
			if err := s.iterate(ctx, req, f, r, q, page); err != nil {
				return nil, err
			}
		}
	}
	touched := page.Matches
	if len(page.Included) > 0 {
		touched = slices.Concat(page.Matches, page.Included)
	}
	if err := s.touch(ctx, req, r, touched...); err != nil {
		return nil, err
	}
	out := *page
	if out.Matches, err = s.shownTo(ctx, req, r, page.Matches); err != nil {
		return nil, err
	}
	if out.Included, err = s.shownTo(ctx, req, r, page.Included); err != nil {
		return nil, err
	}
	if sealed {
		// The previous page's cursor names the first match the engine
		// found, which may be one left out too.
		for _, cursor := range []*string{&out.Next, &out.Prev} {
			if *cursor != "" {
				*cursor = s.seal.close(*cursor, searchLevel(q.Type))
			}
		}
	}
	return &out, nil
}

// decidedAfter reports whether the matches of a search of typ are decided
// one by one once the engine has found them (see grant.byMembers), so
// that the engine's page may end at one the principal may not read.
func (s *Store) decidedAfter(req *request, typ string) bool {
	g, err := req.grant(typ, Search)
	return err == nil && g.byMembers()
}

// searchLevel names what a sealed search cursor is bound to: a search of
// typ.
func searchLevel(typ string) string { return "search " + typ }

// The bounds of :iterate includes the access layer follows, those of the
// engines: rounds after the first, and resources included in all.
const (
	iterateRounds = 3
	maxIncluded   = 1000
)

// firstRound returns incs without :iterate, so that an engine includes
// what they name from the matches alone.
func firstRound(incs []store.Include) []store.Include {
	out := slices.Clone(incs)
	for i := range out {
		out[i].Iterate = false
	}
	return out
}

// iterate adds to page the rounds of q's :iterate includes after the
// first, each following only the resources of the round before that the
// principal may read: what a round adds from a resource they may not read
// would reveal what that resource refers to, or what refers to it. Each
// round is a search by id of the resources it follows, of each type, whose
// includes the engine makes.
func (s *Store) iterate(ctx context.Context, req *request, f store.Finder, r store.Reader, q store.Query, page *store.Page) error {
	rule := store.Query{Include: iterating(q.Include), RevInclude: iterating(q.RevInclude)}
	seen := map[string]bool{}
	for _, v := range slices.Concat(page.Matches, page.Included) {
		seen[v.Type+"/"+v.ID] = true
	}
	from := page.Included
	for round := 0; len(from) > 0; round++ {
		if round == iterateRounds || len(page.Included) >= maxIncluded {
			page.IncludedCut = true
			return nil
		}
		var added []*store.Version
		for _, typ := range typesOf(from) {
			var ids []string
			for _, v := range from {
				if v.Type == typ {
					ids = append(ids, v.ID)
				}
			}
			byID := rule
			byID.Type, byID.Where, byID.Count = typ, []store.Clause{idClause(ids...)}, len(ids)
			next, err := f.Find(ctx, byID)
			if err != nil {
				return err
			}
			kept, err := s.reachable(ctx, req, r, next.Included)
			if err != nil {
				return err
			}
			page.IncludedCut = page.IncludedCut || next.IncludedCut
			for _, v := range kept {
				if key := v.Type + "/" + v.ID; !seen[key] {
					seen[key] = true
					added = append(added, v)
				}
			}
		}
		if room := maxIncluded - len(page.Included); len(added) > room {
			added, page.IncludedCut = added[:room], true
		}
		page.Included = append(page.Included, added...)
		from = added
	}
	return nil
}

// iterating returns the :iterate includes of incs, as rules of one round.
func iterating(incs []store.Include) []store.Include {
	var out []store.Include
	for _, inc := range incs {
		if inc.Iterate {
			inc.Iterate = false
			out = append(out, inc)
		}
	}
	return out
}

// typesOf returns the types of vs, each once, in the order they come.
func typesOf(vs []*store.Version) []string {
	var types []string
	for _, v := range vs {
		if !slices.Contains(types, v.Type) {
			types = append(types, v.Type)
		}
	}
	return types
}

func isDenied(err error) bool {
	var d *Denied
	return errors.As(err, &d)
}

// wholeMembers returns the versions of vs, found by a search of typ
// narrowed in the engine, that the principal reaches when typ lists
// patients (see grant.byMembers): the engine kept those naming one patient
// within reach, and the principal must reach every one they name.
func (s *Store) wholeMembers(ctx context.Context, req *request, r store.Reader, typ string, vs []*store.Version) ([]*store.Version, error) {
	g, err := req.grant(typ, Search)
	if err != nil || !g.byMembers() {
		return vs, nil
	}
	return s.keep(ctx, req, r, vs, func(string) (*grant, error) { return g, nil })
}

// keepWholeMembers leaves out of page, found by q, the matches the
// principal does not reach as a whole (see wholeMembers), and what q
// included from them. The page may be short of q.Count, and its total is
// not known: the engine's counts the matches left out.
func (s *Store) keepWholeMembers(ctx context.Context, req *request, f store.Finder, r store.Reader, q store.Query, page *store.Page) error {
	if g, err := req.grant(q.Type, Search); err != nil || !g.byMembers() {
		return nil
	}
	page.Total = -1
	kept, err := s.wholeMembers(ctx, req, r, q.Type, page.Matches)
	if err != nil {
		return err
	}
	if len(kept) == len(page.Matches) {
		return nil
	}
	page.Matches = kept
	if len(q.Include) == 0 && len(q.RevInclude) == 0 {
		return nil
	}
	// Include again from the matches kept alone: what the others refer
	// to, or what refers to them, would tell who else they name.
	page.Included, page.IncludedCut = nil, false
	if len(kept) == 0 {
		return nil
	}
	ids := make([]string, len(kept))
	for i, v := range kept {
		ids[i] = v.ID
	}
	byID := store.Query{Type: q.Type, Where: []store.Clause{idClause(ids...)}, Count: len(ids), Include: q.Include, RevInclude: q.RevInclude}
	again, err := f.Find(ctx, byID)
	if err != nil {
		return err
	}
	page.Included, page.IncludedCut = again.Included, again.IncludedCut
	return nil
}

// reachable returns the versions of vs the principal may read.
func (s *Store) reachable(ctx context.Context, req *request, r store.Reader, vs []*store.Version) ([]*store.Version, error) {
	return s.keep(ctx, req, r, vs, func(typ string) (*grant, error) { return req.grant(typ, Read) })
}

// keep returns the versions of vs within the grant grantOf returns for
// their type; none of a type it refuses.
func (s *Store) keep(ctx context.Context, req *request, r store.Reader, vs []*store.Version, grantOf func(typ string) (*grant, error)) ([]*store.Version, error) {
	contexts, err := req.securityContexts(vs)
	if err != nil {
		return nil, err
	}
	listed, err := req.listedResources(vs, grantOf)
	if err != nil {
		return nil, err
	}
	if ahead := append(contexts, listed...); len(ahead) > 0 {
		// Each Binary is decided by its securityContext, each List by
		// the resources it lists: those of vs are read ahead, not one
		// by one.
		if r, err = readingAhead(ctx, r, ahead); err != nil {
			return nil, err
		}
	}
	kept := vs[:0:0]
	for _, v := range vs {
		g, err := grantOf(v.Type)
		if err != nil {
			continue
		}
		switch err := s.within(ctx, req, r, g, v); {
		case errors.Is(err, store.ErrNotFound):
			continue
		case err != nil:
			return nil, err
		}
		kept = append(kept, v)
	}
	return kept, nil
}

// reachableNow returns the versions of vs whose resources the principal
// may read as they are now (see withinNow), deciding each resource once.
func (s *Store) reachableNow(ctx context.Context, req *request, r store.Reader, vs []*store.Version) ([]*store.Version, error) {
	now := map[string]bool{} // by Type/id
	kept := vs[:0:0]
	for _, v := range vs {
		key := v.Type + "/" + v.ID
		ok, known := now[key]
		if !known {
			g, err := req.grant(v.Type, Read)
			if err != nil {
				return nil, err
			}
			switch err := s.withinNow(ctx, req, r, g, v); {
			case err == nil:
				ok = true
			case !errors.Is(err, store.ErrNotFound):
				return nil, err
			}
			now[key] = ok
		}
		if ok {
			kept = append(kept, v)
		}
	}
	return kept, nil
}

// Put implements store.Writer.
func (s *Store) Put(ctx context.Context, w *store.Write) error {
	return s.put(ctx, s.next, s.next, nil, w)
}

// PutGated implements store.GatedWriter: the access decision is made
// first, then the write is handed to the engine gated when it can begin
// writes so, else once ready allows it.
func (s *Store) PutGated(ctx context.Context, w *store.Write, ready func() error) error {
	g, ok := s.next.(store.GatedWriter)
	if !ok {
		if err := ready(); err != nil {
			return err
		}
		return s.put(ctx, s.next, s.next, nil, w)
	}
	return s.put(ctx, s.next, gated{g, ready}, nil, w)
}

// gated is a store.Writer whose Put is a GatedWriter's PutGated.
type gated struct {
	w     store.GatedWriter
	ready func() error
}

func (g gated) Put(ctx context.Context, w *store.Write) error { return g.w.PutGated(ctx, w, g.ready) }

// put decides w and writes it through wr, recording it in unit when it is
// written in a unit of work (else unit is nil), for the request's
// AuditEvents once the unit ends.
//
// A Subscription is written with its channel headers as keepHeaders has
// them, a value a client sent back masked being the one stored, and w is
// left holding the version as a reader is given it (see shown), for the
// answer to the write and for its hooks. The engine gets a Write of its
// own: a unit of work may hold on to it until it commits.
func (s *Store) put(ctx context.Context, r store.Reader, wr store.Writer, unit *unitWrites, w *store.Write) error {
	if err := s.allowWrite(ctx, r, w); err != nil {
		return err
	}
	stored := w
	if !w.Deleted && mayHoldHeaders(w.Type, w.JSON) {
		body, err := keepHeaders(ctx, r, w)
		if err != nil {
			return err
		}
		copied := *w
		copied.JSON = body
		stored = &copied
	}
	var named []string
	if RecordFrom(ctx).keeps() {
		// Whom the write names by identifier alone is for the audit trail.
		var err error
		if named, err = s.identifiedPatients(ctx, r, w.Type, &w.Index); err != nil {
			return err
		}
	}
	if err := wr.Put(ctx, stored); err != nil {
		// Refused by the engine: no version was stored.
		recordAttempt(ctx, w, named)
		return s.concealConflict(ctx, r, w, err)
	}
	if unit != nil {
		unit.add(ctx, w, named)
	} else {
		recordWrite(ctx, w, named)
	}
	if stored != w {
		body, err := maskHeaders(stored.JSON)
		if err != nil {
			return fmt.Errorf("access: mask the headers of %s/%s: %w", w.Type, w.ID, err)
		}
		w.JSON = body
	}
	return nil
}

// concealConflict turns the conflict of a create whose id is taken by a
// resource outside the principal's reach into store.ErrNotFound: the
// resource was hidden from the read before the write, and a conflict would
// reveal that it exists.
func (s *Store) concealConflict(ctx context.Context, r store.Reader, w *store.Write, err error) error {
	var conflict *store.ConflictError
	if w.Expected != 0 || !errors.As(err, &conflict) {
		return err
	}
	req, rerr := s.request(ctx)
	if rerr != nil || req.p.unrestricted() {
		return err
	}
	g, gerr := req.grant(w.Type, Read)
	if gerr != nil {
		return store.ErrNotFound
	}
	cur, rerr := r.Read(ctx, w.Type, w.ID)
	if rerr != nil {
		return err
	}
	if s.within(ctx, req, r, g, cur) != nil {
		return store.ErrNotFound
	}
	return err
}

// AllowWrite decides w as Put would, writing nothing: for what runs
// before a write and may report what it reads, such as the checks of
// write hooks, which must not run for a write the principal may not make.
func (s *Store) AllowWrite(ctx context.Context, w *store.Write) error {
	return s.allowWrite(ctx, s.next, w)
}

// allowWrite decides a write: the permission its kind needs, the version
// it replaces within reach (else 404), and the version it writes within
// reach (else 403). The audit trail is written by the server alone.
func (s *Store) allowWrite(ctx context.Context, r store.Reader, w *store.Write) error {
	req, err := s.request(ctx)
	if err != nil {
		return err
	}
	if ReadOnly(w.Type) && !req.p.System {
		return &Denied{Status: http.StatusMethodNotAllowed, Message: "AuditEvents are written by the server alone: the audit trail is read-only"}
	}
	perm := Update
	switch {
	case w.Deleted:
		perm = Delete
	case w.Expected == 0:
		perm = Create
	}
	g, err := req.grant(w.Type, perm)
	if err != nil {
		return err
	}
	if err := s.keepRelationships(ctx, req, r, w); err != nil {
		return err
	}
	if g.all {
		return nil
	}
	if w.Expected > 0 {
		cur, err := r.Read(ctx, w.Type, w.ID)
		if err != nil {
			return err
		}
		if err := s.within(ctx, req, r, g, cur); err != nil {
			return err
		}
		if w.Deleted && !cur.Deleted {
			// A deletion removes the resource from the record of every
			// patient it is in: it is decided as a write of the version
			// it removes.
			return s.mayWrite(ctx, req, r, g, cur.ID, cur.LastUpdated, cur.JSON, nil, "is outside what the access token may delete")
		}
	}
	if w.Deleted {
		return nil
	}
	return s.mayWrite(ctx, req, r, g, w.ID, w.LastUpdated, w.JSON, &w.Index, "would be outside what the access token may write")
}

// mayWrite answers a Denied error unless version id of g's type, with
// body and index ix (indexed from body when nil), is within g as a write
// needs it (see alternativeHolds); outside says of the version refused
// what it is outside of.
func (s *Store) mayWrite(ctx context.Context, req *request, r store.Reader, g *grant, id string, lastUpdated time.Time, body []byte, ix *store.Index, outside string) error {
	if ix == nil {
		x, err := s.rules.Index(g.typ, body)
		if err != nil {
			return fmt.Errorf("access: index %s/%s: %w", g.typ, id, err)
		}
		ix = &x
	}
	ok, err := req.reaches(ctx, r, g, id, lastUpdated, body, ix)
	if err != nil {
		return err
	}
	if !ok {
		return forbidden("%s/%s %s: it must %s", g.typ, id, outside, g.rule())
	}
	return nil
}

// keepRelationships refuses a write by which a practitioner narrowed by
// the care-team rule would give themselves a relationship: a
// PractitionerRole made theirs, an Organization given their ODS code, a
// Patient registered at their organisation. The rule reads these to
// decide whose records the practitioner reaches. A version that already
// made the claim may be updated; a resource created with an id the server
// chose, which nothing refers to yet, may make it, while one created at
// an id of the client's choosing may be one records already name.
func (s *Store) keepRelationships(ctx context.Context, req *request, r store.Reader, w *store.Write) error {
	if w.Deleted || !req.narrowedByCareTeam() {
		return nil
	}
	if claims, err := req.claimsRelationship(ctx, r, w.Type, &w.Index); err != nil || !claims {
		return err
	}
	if w.Expected == 0 && InteractionFrom(ctx) == InteractionCreate {
		return nil
	}
	if w.Expected > 0 {
		cur, err := r.Read(ctx, w.Type, w.ID)
		if err != nil {
			return err
		}
		if !cur.Deleted {
			ix, err := s.rules.Index(w.Type, cur.JSON)
			if err != nil {
				return fmt.Errorf("access: index %s/%s: %w", w.Type, w.ID, err)
			}
			if claimed, err := req.claimsRelationship(ctx, r, w.Type, &ix); err != nil || claimed {
				return err
			}
		}
	}
	return forbidden("%s/%s would give the access token's practitioner a relationship with the patients it reaches "+
		"(policy care-team): their PractitionerRoles, their organisation and the patients registered there are assigned by another client", w.Type, w.ID)
}

// recordWrite records w as written by ctx's request, belonging, besides
// the patients it refers to, to the patients named (see
// identifiedPatients).
func recordWrite(ctx context.Context, w *store.Write, named []string) {
	if rec := RecordFrom(ctx); rec.keeps() {
		rec.touchEntity(writeEntity(w, named))
	}
}

// recordAttempt records w as a write ctx's request attempted that stored
// nothing: the resource is named with no version, as none was created
// (IHE BALP: the AuditEvent's outcome says the request failed).
func recordAttempt(ctx context.Context, w *store.Write, named []string) {
	if rec := RecordFrom(ctx); rec.keeps() {
		e := writeEntity(w, named)
		e.Version = 0
		rec.touchEntity(e)
	}
}

// unitWrites holds the writes of one run of a unit of work until it ends:
// the versions exist only if the unit commits.
type unitWrites struct {
	mu     sync.Mutex
	writes []unitWrite
}

type unitWrite struct {
	rec *Record
	e   Entity
}

func (u *unitWrites) add(ctx context.Context, w *store.Write, named []string) {
	rec := RecordFrom(ctx)
	if !rec.keeps() {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.writes = append(u.writes, unitWrite{rec, writeEntity(w, named)})
}

// record records the unit's writes in their requests' Records: at the
// versions written if the unit committed, else with no version.
func (u *unitWrites) record(committed bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, uw := range u.writes {
		if !committed {
			uw.e.Version = 0
		}
		uw.rec.touchEntity(uw.e)
	}
}

// Transact implements store.Store: the unit's reads and writes are decided
// like any others. Its writes are recorded for the audit trail when it
// ends, as versions written only if it committed.
func (s *Store) Transact(ctx context.Context, fn func(tx store.Tx) error) error {
	// runs holds the writes of each run: an engine may run fn again
	// after a conflict, and only the last run's writes are committed.
	var runs []*unitWrites
	err := s.next.Transact(ctx, func(tx store.Tx) error {
		unit := &unitWrites{}
		runs = append(runs, unit)
		t := &tx_{s: s, tx: tx, unit: unit}
		if f, ok := tx.(store.Finder); ok {
			return fn(&finderTx{tx_: t, f: f})
		}
		return fn(t)
	})
	for i, unit := range runs {
		unit.record(err == nil && i == len(runs)-1)
	}
	return err
}

// Close implements store.Store.
func (s *Store) Close() error { return s.next.Close() }

// tx_ is a unit of work behind the access decisions.
type tx_ struct {
	s    *Store
	tx   store.Tx
	unit *unitWrites
}

func (t *tx_) Read(ctx context.Context, typ, id string) (*store.Version, error) {
	return t.s.read(ctx, t.tx, typ, id)
}

func (t *tx_) VRead(ctx context.Context, typ, id string, version int64) (*store.Version, error) {
	return t.s.vread(ctx, t.tx, typ, id, version)
}

func (t *tx_) History(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	return t.s.history(ctx, t.tx, q, true)
}

func (t *tx_) Search(ctx context.Context, q store.Query) ([]*store.Version, error) {
	return t.s.search(ctx, t.tx, q)
}

// MatchCriteria is Store.MatchCriteria in the unit of work.
func (t *tx_) MatchCriteria(ctx context.Context, q store.Query) ([]*store.Version, error) {
	return t.s.matchCriteria(ctx, t.tx, q)
}

// finderTx is a unit of work that executes whole search plans.
type finderTx struct {
	*tx_
	f store.Finder
}

func (t *finderTx) Find(ctx context.Context, q store.Query) (*store.Page, error) {
	return t.s.find(ctx, t.f, t.tx, q)
}

func (t *tx_) Put(ctx context.Context, w *store.Write) error {
	return t.s.put(ctx, t.tx, t.tx, t.unit, w)
}

// AllowWrite is Store.AllowWrite in the unit of work.
func (t *tx_) AllowWrite(ctx context.Context, w *store.Write) error {
	return t.s.allowWrite(ctx, t.tx, w)
}

func (t *tx_) SameAsStored(ctx context.Context, cur *store.Version, body []byte) (bool, error) {
	return t.s.sameAsStored(ctx, t.tx, cur, body)
}
